"""Per-call cost of small ``Slide.read_region`` calls into NumPy (no GPU needed).

Writes (or takes) an uncompressed tiled TIFF and prints microseconds per call for regions of
1x1, 256x256 and 1024x1024 pixels at random level-0 locations, warm page cache, one line each
and a JSON line at the end. Not a test: nothing is asserted.

    python3 python/benchmarks/read_overhead.py                 # a 4096x4096 RGB slide in /tmp
    python3 python/benchmarks/read_overhead.py --slide s.tif --sizes 1 256 1024 --tile 512
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import timeit

import numpy

import tiledio


def make_slide(path: str, height: int, width: int, tile: int, bigtiff: bool) -> None:
    import tifffile

    rng = numpy.random.default_rng(0)
    img = rng.integers(0, 256, size=(height, width, 3), dtype=numpy.uint8)
    tifffile.imwrite(path, img, tile=(tile, tile), photometric="rgb", bigtiff=bigtiff)


def per_call_us(slide: tiledio.Slide, size: int, number: int, repeat: int, out: bool) -> float:
    w, h = slide.dimensions
    rng = random.Random(size)
    locs = [(rng.randrange(0, max(1, w - size)), rng.randrange(0, max(1, h - size))) for _ in range(64)]
    buf = numpy.empty((size, size, slide.channels), slide.dtype) if out else None
    it = iter(locs * (number * repeat // len(locs) + 2))

    def call() -> None:
        slide.read_region(next(it), 0, (size, size), out=buf)

    for _ in range(8):  # warm the page cache, the thread pools
        call()
    times = timeit.repeat(call, number=number, repeat=repeat)
    return min(times) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slide", help="a TIFF to read (default: write one)")
    ap.add_argument("--size", type=int, nargs=2, default=(4096, 4096), metavar=("H", "W"))
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--bigtiff", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 256, 1024])
    ap.add_argument("--number", type=int, default=0, help="calls per timing (default: by size)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", action="store_true", help="read into a reused out= array")
    a = ap.parse_args()
    tmp = None
    path = a.slide
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "overhead.tif")
        make_slide(path, a.size[0], a.size[1], a.tile, a.bigtiff)
    slide = tiledio.open_slide(path)
    res = {}
    for s in a.sizes:
        n = a.number or max(5, min(2000, 4_000_000 // max(1, s * s)))
        us = per_call_us(slide, s, n, a.repeat, a.out)
        res[f"{s}x{s}"] = round(us, 1)
        print(f"{s:>5}x{s:<5} {us:10.1f} us/call")
    tile = list(slide.level_tile_sizes[0])
    print(json.dumps({"slide": path if a.slide else "generated", "tile": tile, "out": a.out, "us_per_call": res}))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
