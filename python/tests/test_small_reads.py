"""Small reads (the calling thread's path: no hand-off to the I/O or compute threads) equal
large ones and tifffile: 1x1 to a few hundred pixels, inside, across tile and image edges,
outside, uncompressed (classic TIFF and BigTIFF, 16-bit) and compressed, fresh arrays and
reused ``out=`` arrays holding old bytes; and the per-call benchmark script runs (it prints
timings; nothing about them is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import tiledio
from conftest import REPO, rgb_image


def padded(img, x, y, w, h):
    out = np.zeros((h, w) + img.shape[2:], img.dtype)
    H, W = img.shape[:2]
    y0, y1, x0, x1 = max(y, 0), min(y + h, H), max(x, 0), min(x + w, W)
    if y0 < y1 and x0 < x1:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = img[y0:y1, x0:x1]
    return out


@pytest.mark.parametrize(
    "kind", ["raw", "bigtiff", "raw16", "zlib", "jpeg"],
)
def test_small_and_large_reads_equal_tifffile(tmp_path, kind):
    img = rgb_image(700, 900, seed=5)
    kw = {"tile": (128, 128), "photometric": "rgb"}
    if kind == "bigtiff":
        kw["bigtiff"] = True
    if kind == "raw16":
        img = img.astype(np.uint16) * 257
    if kind in ("zlib", "jpeg"):
        kw["compression"] = kind
    path = tmp_path / f"{kind}.tif"
    tifffile.imwrite(path, img, **kw)
    want = tifffile.imread(path)
    s = tiledio.open_slide(path)
    rng = np.random.default_rng(1)
    cases = [(0, 0, 1, 1), (899, 699, 1, 1), (127, 127, 2, 2), (-1, -1, 3, 3), (900, 700, 4, 4),
             (5000, 5000, 2, 2), (-300, 10, 256, 256), (100, 600, 256, 256), (0, 0, 900, 700),
             (-5, -5, 910, 710)]
    cases += [(int(rng.integers(-50, 900)), int(rng.integers(-50, 700)), int(rng.integers(1, 300)),
               int(rng.integers(1, 300))) for _ in range(40)]
    reuse = {}
    for x, y, w, h in cases:
        expect = padded(want, x, y, w, h)
        got = s.read_region((x, y), 0, (w, h))
        np.testing.assert_array_equal(got, expect, err_msg=f"{kind} {(x, y, w, h)}")
        # a reused out= array holding other bytes: every byte is written
        out = reuse.setdefault((w, h), np.full((h, w, 3), 77, want.dtype))
        assert s.read_region((x, y), 0, (w, h), out=out) is out
        np.testing.assert_array_equal(out, expect)
        np.testing.assert_array_equal(s.read_level_region(0, (x, y), (w, h)), expect)
    batches = list(s.read_regions([(3, 4), (-2, 690), (880, 10)], 0, (32, 16), batch_size=2, num_workers=1))
    np.testing.assert_array_equal(np.concatenate(batches),
                                  np.stack([padded(want, 3, 4, 32, 16), padded(want, -2, 690, 32, 16),
                                            padded(want, 880, 10, 32, 16)]))


def test_read_overhead_script_runs(tmp_path):
    script = REPO / "python" / "benchmarks" / "read_overhead.py"
    r = subprocess.run([sys.executable, str(script), "--size", "600", "700", "--sizes", "1", "64",
                        "--number", "5", "--repeat", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(doc["us_per_call"]) == {"1x1", "64x64"}
