#!/usr/bin/env python3
"""Random 256x256 patches of level 0 into GPU memory: tiledio's batch ``read_regions`` against
cuCIM's batch ``CuImage.read_region``, on the same file and the same locations.

Each tool runs in its own subprocess (cuCIM's batch reader aborts the process on files it
cannot read; the abort is reported, not fatal): a warm-up pass, then ``--repeats`` timed passes
over all locations, every batch taken as a CuPy array and the GPU synchronised at the end of
a pass; the median is reported. A few patches are copied back and compared across the tools
(exactly for uncompressed and deflate tiles; JPEG tiles, decoded by libjpeg in tiledio and
by nvJPEG in cuCIM, are compared within ``--jpeg-tolerance``). Prints one JSON line.

Which files cuCIM reads: its batch path to ``device="cuda"`` (several locations, or
``num_workers > 0``) decodes tiles with nvJPEG and throws, from a worker thread, i.e. aborts
the process, for any compression but JPEG (``cuslide/tiff/ifd.cpp``, ``read_region_tiles``:
"Unsupported compression method"). So the default file made here has JPEG tiles (RGB, 8-bit,
tifffile ``compression='jpeg'``). ``--compression none|deflate`` makes files that cuCIM's
single-location and CPU paths read, and its batch GPU path does not: run them with
``--cucim-device cpu`` (cuCIM reads to host, then ``cupy.asarray``) to compare anyway.

Needs: a GPU, CuPy, tiledio (the wheel), tifffile and imagecodecs (for --make), cucim.

    python3 patches_vs_cucim.py --make 40000 40000 256 --file /scratch/patches_jpeg.tif
    python3 patches_vs_cucim.py --file /scratch/patches_jpeg.tif --count 10000 \\
        --batch-size 64 --workers 8 --repeats 5
    python3 patches_vs_cucim.py --make 40000 40000 256 --compression none \\
        --file /scratch/patches_raw.tif --cucim-device cpu
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def make(path: str, h: int, w: int, tile: int, compression: str) -> None:
    """A classic (non-Big when it fits) tiled RGB TIFF with a smooth, textured pattern (JPEG
    tiles of noise would be unusually large), written band by band."""
    import numpy as np
    import tifffile

    comp = {"none": None, "jpeg": "jpeg", "deflate": "zlib"}[compression]
    raw = h * w * 3
    bigtiff = raw > (3 << 30) if compression == "none" else raw > (12 << 30)

    def tiles():
        yy, xx = np.mgrid[0:tile, 0:tile]
        for ty in range(0, h, tile):
            for tx in range(0, w, tile):
                y, x = yy + ty, xx + tx
                t = np.empty((tile, tile, 3), np.uint8)
                t[..., 0] = (x * 7 + y * 3) % 251
                t[..., 1] = ((x // 8) * 13 ^ (y // 8) * 29) % 256
                t[..., 2] = (128 + 100 * np.sin(x / 97.0) * np.cos(y / 61.0)).astype(np.uint8)
                yield t

    kw = {"compressionargs": {"level": 90}} if compression == "jpeg" else {}
    tifffile.imwrite(path, tiles(), shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", compression=comp, bigtiff=bigtiff, **kw)


def compression_of(path: str) -> str:
    """The level-0 page's compression as --compression names it (tifffile's name otherwise)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as t:
            name = t.pages[0].compression.name.lower()
    except Exception as e:  # reported, not fatal: only the comparison's tolerance depends on it
        return f"unknown ({e})"
    return {"none": "none", "jpeg": "jpeg", "adobe_deflate": "deflate", "deflate": "deflate"}.get(name, name)


def warm(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def measure(a, one_pass, count: int, sample_path: str) -> list:
    """A warm-up pass that keeps its batches: checks it gave ``count`` patches and saves the
    first ``a.verify`` (RGB) to ``sample_path`` for the cross-check; then ``a.repeats`` timed
    passes. Returns their times in seconds."""
    import cupy as cp
    import numpy as np

    kept = []
    got = one_pass(kept)
    if got != count:
        raise RuntimeError(f"{got} patches for {count} locations")
    np.save(sample_path, cp.asnumpy(cp.concatenate(kept)[: a.verify])[..., :3])
    del kept
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - t)
    return times


def run_tiledio(a, locs, out_dir):
    import cupy as cp

    import tiledio

    s = tiledio.open_slide(a.file)
    size = (a.patch, a.patch)

    def one_pass(keep=None):
        n = 0
        for batch in s.read_regions(locs, 0, size, device="cuda", batch_size=a.batch_size,
                                    num_workers=a.workers):
            x = cp.asarray(batch)
            if keep is not None:
                keep.append(x)
            n += x.shape[0]
        cp.cuda.Device().synchronize()
        return n

    return measure(a, one_pass, len(locs), os.path.join(out_dir, "tiledio.npy"))


def run_cucim(a, locs, out_dir):
    import cupy as cp
    import numpy as np
    from cucim import CuImage

    img = CuImage(a.file)
    size = (a.patch, a.patch)
    dev = a.cucim_device

    # the location forms cuCIM's batch read_region has taken across versions: an (N, 2) int64
    # array, the same flattened, a list of [x, y] lists; the first it accepts is used
    forms = [np.ascontiguousarray(locs, dtype=np.int64), np.ascontiguousarray(locs, dtype=np.int64).reshape(-1),
             [[int(x), int(y)] for x, y in locs]]

    def start():
        errors = []
        for f in forms:
            try:
                return img.read_region(f, size, 0, device=dev, num_workers=a.workers, batch_size=a.batch_size)
            except (ValueError, TypeError) as e:
                errors.append(f"{type(f).__name__}{getattr(f, 'shape', '')}: {e}")
        raise RuntimeError("cuCIM took no form of the locations: " + "; ".join(errors))

    def one_pass(keep=None):
        n = 0
        it = start()
        for batch in it:
            x = cp.asarray(batch) if dev == "cuda" else cp.asarray(np.asarray(batch))
            if x.ndim == 3:
                x = x[None]
            if keep is not None:
                keep.append(x)
            n += x.shape[0]
        cp.cuda.Device().synchronize()
        return n

    return measure(a, one_pass, len(locs), os.path.join(out_dir, "cucim.npy"))


def worker(a) -> None:
    import numpy as np

    locs_arr = np.load(a.locations)
    locs = [tuple(int(v) for v in p) for p in locs_arr]
    fn = {"tiledio": run_tiledio, "cucim": run_cucim}[a.worker]
    times = fn(a, locs if a.worker == "tiledio" else locs_arr.astype(np.int64), a.out_dir)
    print(json.dumps({"times_s": times}), flush=True)


def subprocess_run(tool: str, a, locs_path: str, out_dir: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", tool, "--locations", locs_path,
           "--out-dir", out_dir, "--file", a.file, "--patch", str(a.patch),
           "--batch-size", str(a.batch_size), "--workers", str(a.workers),
           "--repeats", str(a.repeats), "--verify", str(a.verify), "--cucim-device", a.cucim_device]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    if r.returncode != 0:
        why = f"signal {-r.returncode}" if r.returncode < 0 else f"exit {r.returncode}"
        if r.returncode in (-6, 134):
            why += " (aborted: cuCIM's batch GPU reader throws from a worker thread on this file)" if tool == "cucim" else " (aborted)"
        return {"error": why, "stderr_tail": r.stderr[-2000:]}
    line = [l for l in r.stdout.splitlines() if l.startswith("{")][-1]
    times = json.loads(line)["times_s"]
    med = statistics.median(times)
    return {"median_s": med, "min_s": min(times), "times_s": times,
            "patches_per_s": a.count / med, "gbps": a.count * a.patch * a.patch * 3 / med / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", help="the TIFF (made by --make when given)")
    ap.add_argument("--make", type=int, nargs=3, metavar=("H", "W", "TILE"),
                    help="write FILE first: H x W RGB, TILE x TILE tiles")
    ap.add_argument("--compression", choices=["jpeg", "none", "deflate"], default="jpeg",
                    help="tiles of the made file (default jpeg: the only one cuCIM's batch GPU path reads)")
    ap.add_argument("--count", type=int, default=10_000, help="patches per pass")
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=8, help="num_workers of both tools")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", type=int, default=16, help="patches compared across the tools")
    ap.add_argument("--jpeg-tolerance", type=int, default=3,
                    help="largest difference allowed between the two JPEG decoders")
    ap.add_argument("--cucim-device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tools", default="tiledio,cucim")
    ap.add_argument("--timeout", type=int, default=1800)
    # internal: one tool's run
    ap.add_argument("--worker", choices=["tiledio", "cucim"], help=argparse.SUPPRESS)
    ap.add_argument("--locations", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    import numpy as np

    tmp = tempfile.TemporaryDirectory()
    if a.file is None:
        if a.make is None:
            ap.error("give --file, --make H W TILE, or both")
        a.file = os.path.join(tmp.name, f"patches_{a.compression}.tif")
    if a.make:
        t = time.perf_counter()
        make(a.file, *a.make, a.compression)
        print(f"made {a.file} in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    import tiledio

    s = tiledio.open_slide(a.file)
    w, h = s.dimensions
    if w < a.patch or h < a.patch:
        ap.error(f"{a.file}: level 0 ({w}x{h}) is smaller than a patch")
    rng = np.random.default_rng(a.seed)
    locs = np.stack([rng.integers(0, w - a.patch + 1, a.count), rng.integers(0, h - a.patch + 1, a.count)], 1)
    locs_path = os.path.join(tmp.name, "locations.npy")
    np.save(locs_path, locs)
    warm(a.file)
    result = {"file": a.file, "file_bytes": os.path.getsize(a.file), "level0": [w, h],
              "tile": list(s.level_tile_sizes[0]), "compression": compression_of(a.file),
              "count": a.count, "patch": a.patch, "batch_size": a.batch_size, "workers": a.workers,
              "repeats": a.repeats, "cucim_device": a.cucim_device}
    for tool in a.tools.split(","):
        result[tool] = subprocess_run(tool, a, locs_path, tmp.name)
    if all("median_s" in result.get(t, {}) for t in ("tiledio", "cucim")):
        result["speedup_tiledio_vs_cucim"] = result["cucim"]["median_s"] / result["tiledio"]["median_s"]
        x = np.load(os.path.join(tmp.name, "tiledio.npy")).astype(np.int16)
        y = np.load(os.path.join(tmp.name, "cucim.npy")).astype(np.int16)
        diff = int(np.abs(x - y).max()) if x.shape == y.shape else None
        jpeg = result["compression"] == "jpeg"
        tol = a.jpeg_tolerance if jpeg else 0
        result["verify"] = {"patches": int(min(len(x), len(y))), "shapes": [list(x.shape), list(y.shape)],
                            "max_abs_diff": diff, "tolerance": tol,
                            "equal": diff is not None and diff <= tol}
    print(json.dumps(result))
    tmp.cleanup()


if __name__ == "__main__":
    main()
