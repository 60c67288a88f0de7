#!/usr/bin/env python3
"""Writes the fixtures of tests/pipeline_skimage.rs: a small tiled RGB TIFF and what
scikit-image (and cuCIM's Macenko algorithm) make of it.

Run from anywhere: `python3 testdata/pipeline/make_fixtures.py` (needs numpy, tifffile and
scikit-image; written with scikit-image 0.26, tifffile 2026.3, numpy 2.4). The input is seeded,
so a run reproduces the files.

- he_rgb_u8.tif: a 118 x 104 (rows x columns) RGB u8 image with H&E-like colours (smooth
  haematoxylin and eosin fields, dark nuclei, a white background corner, sensor noise), written
  by tifffile as one uncompressed page of 64 x 64 tiles: neither size divides the tile edge,
  so the right and bottom tiles are partial.
- gray.npy, sobel.npy, sobel_h.npy, sobel_v.npy: skimage.color.rgb2gray of the image, and
  skimage.filters.sobel / sobel_h / sobel_v of that grey image, (118, 104).
- hed.npy: skimage.color.rgb2hed of the image, (118, 104, 3), channels H, E, D.
  scikit-image computes all of these in float64; they are stored rounded to float32 (half the
  bytes; the rounding is at most half a float32 ulp, well inside the tests' tolerance).
- macenko_stain.npy (3 x 2, float64), macenko_maxc.npy (2, float64), macenko_out.npy
  ((118, 104, 3) u8): cuCIM's stain_extraction_pca / normalize_colors_pca with its default
  parameters, through the line-by-line NumPy port in ../kernels/make_fixtures.py
  (`cucim_macenko`), on the whole image.
"""
import importlib.util
import os

import numpy as np
import tifffile
from skimage.color import rgb2gray, rgb2hed
from skimage.filters import sobel, sobel_h, sobel_v

HERE = os.path.dirname(os.path.abspath(__file__))
H, W, TILE = 118, 104, 64


def save(name, a):
    np.save(os.path.join(HERE, name), np.ascontiguousarray(a))


def kernels_fixtures():
    """The kernels' fixture module (for its NumPy port of cuCIM's Macenko)."""
    path = os.path.join(HERE, "..", "kernels", "make_fixtures.py")
    spec = importlib.util.spec_from_file_location("kernels_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synthetic_he(rng, h=H, w=W):
    """Smooth H and E concentrations, round dark nuclei, a background corner, noise."""
    hv = np.array([0.65, 0.70, 0.29])
    ev = np.array([0.07, 0.99, 0.11])
    hv, ev = hv / np.linalg.norm(hv), ev / np.linalg.norm(ev)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ch = 0.5 * (0.5 + 0.5 * np.sin(6 * xx + 4 * yy)) * (0.7 + 0.3 * rng.random((h, w)))
    ce = 0.9 * (0.5 + 0.5 * np.cos(5 * yy - 3 * xx)) * (0.7 + 0.3 * rng.random((h, w)))
    yi, xi = np.mgrid[0:h, 0:w]
    for _ in range(18):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(3, 7)
        ch[(yi - cy) ** 2 + (xi - cx) ** 2 <= r * r] += rng.uniform(0.8, 1.4)
    od = ch[..., None] * hv + ce[..., None] * ev
    img = 240.0 * np.exp(-od) + rng.normal(0, 2.0, (h, w, 3))
    img[: h // 4, w - w // 3 :] = 243 + rng.normal(0, 1.5, (h // 4, w // 3, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(20261122)
    img = synthetic_he(rng)
    tifffile.imwrite(
        os.path.join(HERE, "he_rgb_u8.tif"),
        img,
        tile=(TILE, TILE),
        photometric="rgb",
        compression=None,
        metadata=None,
    )
    assert np.array_equal(tifffile.imread(os.path.join(HERE, "he_rgb_u8.tif")), img)
    gray = rgb2gray(img)
    assert gray.dtype == np.float64
    save("gray.npy", gray.astype(np.float32))
    for name, f in (("sobel", sobel), ("sobel_h", sobel_h), ("sobel_v", sobel_v)):
        out = f(gray)
        assert out.dtype == np.float64
        save(f"{name}.npy", out.astype(np.float32))
    hed = rgb2hed(img)
    assert hed.dtype == np.float64
    save("hed.npy", hed.astype(np.float32))
    stain, max_conc, out = kernels_fixtures().cucim_macenko(img)
    save("macenko_stain.npy", stain.astype(np.float64))
    save("macenko_maxc.npy", max_conc.astype(np.float64))
    save("macenko_out.npy", out)


if __name__ == "__main__":
    main()
