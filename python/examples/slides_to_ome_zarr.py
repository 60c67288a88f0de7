#!/usr/bin/env python3
"""Process a folder of whole-slide images with Dask and write one OME-Zarr per slide.

For every slide in INPUT (``*.tif``, ``*.tiff``, ``*.svs``, ``*.btf``), level LEVEL is read by
tiledio as a Dask array (chunks read in parallel by the cluster's workers), optionally
filtered chunk by chunk, and written as ``OUTPUT/<name>.ome.zarr`` (OME-Zarr 0.5, zstd) by
tiledio, a band of chunks at a time, so memory stays bounded whatever the slide's size:

- ``--filter none``: the pixels (axes c, y, x);
- ``--filter sobel``: ``tiledio.sobel`` of each chunk with a 1-pixel halo from its neighbours
  (Dask's ``map_overlap``), equal to the Sobel filter of the whole image (axes y, x);
- ``--filter hed``: ``tiledio.rgb2hed`` per chunk (axes c, y, x; float32 H, E, D).

Without ``--scheduler`` a local Dask cluster of threads runs in this process
(``LocalCluster(processes=False)``); with it, the slides are processed on that cluster.

Usage::

    python slides_to_ome_zarr.py SLIDES/ OUT/ [--level 0] [--chunk 1024] [--filter sobel]
        [--device cpu|cuda] [--workers 4] [--scheduler tcp://host:8786]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import List, Optional

import numpy as np

import tiledio
import tiledio.dask

SUFFIXES = {".tif", ".tiff", ".svs", ".btf"}


def _sobel_block(block):
    return tiledio.sobel(block)


def _hed_block(block):
    return tiledio.rgb2hed(block)


def process_slide(path: pathlib.Path, out_dir: pathlib.Path, level: int = 0, chunk: int = 1024,
                  filter: str = "none", device: str = "cpu") -> pathlib.Path:
    """Reads `path` at `level`, filters it and writes `out_dir/<name>.ome.zarr`; returns that."""
    x = tiledio.dask.from_slide(path, level=level, chunks=chunk, device=device)
    if filter == "sobel":
        meta = x._meta.sum(axis=2, dtype=np.float32)
        # a 1-pixel halo from the neighbouring chunks; at the image's border the kernel's own
        # reflection applies, as on the whole image ("none": no padding there)
        y = x.map_overlap(_sobel_block, depth={0: 1, 1: 1, 2: 0}, boundary="none",
                          drop_axis=2, dtype=np.float32, meta=meta)
    elif filter == "hed":
        y = x.map_blocks(_hed_block, dtype=np.float32, meta=x._meta.astype(np.float32))
    elif filter == "none":
        y = x
    else:
        raise ValueError(f"unknown filter {filter!r}: none, sobel or hed")
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", *SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    out = out_dir / f"{name}.ome.zarr"
    tiledio.write_zarr(out, y, chunks=chunk, codec="zstd", ome=True)
    return out


def slides_in(folder: pathlib.Path) -> List[pathlib.Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def main(argv: Optional[List[str]] = None) -> List[pathlib.Path]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", type=pathlib.Path, help="folder of slides")
    ap.add_argument("output", type=pathlib.Path, help="folder for the OME-Zarr images (created)")
    ap.add_argument("--level", type=int, default=0, help="pyramid level to read (0: full resolution)")
    ap.add_argument("--chunk", type=int, default=1024, help="chunk edge in pixels (Dask and Zarr)")
    ap.add_argument("--filter", choices=["none", "sobel", "hed"], default="none")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where chunks are read to")
    ap.add_argument("--workers", type=int, default=2, help="threads of the local cluster")
    ap.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    a = ap.parse_args(argv)

    from dask.distributed import Client, LocalCluster

    slides = slides_in(a.input)
    if not slides:
        ap.error(f"{a.input}: no slides ({', '.join(sorted(SUFFIXES))})")
    a.output.mkdir(parents=True, exist_ok=True)
    cluster = None if a.scheduler else LocalCluster(processes=False, n_workers=1,
                                                    threads_per_worker=a.workers, dashboard_address=None)
    written = []
    with Client(a.scheduler or cluster) as client:
        print(f"dask: {client}", flush=True)
        for p in slides:
            t0 = time.perf_counter()
            try:
                out = process_slide(p, a.output, a.level, a.chunk, a.filter, a.device)
            except (tiledio.TiledioError, ValueError) as e:
                print(f"{p}: skipped: {e}", file=sys.stderr, flush=True)
                continue
            written.append(out)
            print(f"{p} -> {out} in {time.perf_counter() - t0:.2f} s", flush=True)
    if cluster is not None:
        cluster.close()
    return written


if __name__ == "__main__":
    main()
