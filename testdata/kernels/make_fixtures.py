#!/usr/bin/env python3
"""Writes the scikit-image (and cuCIM-algorithm) fixtures of tiledio-kernels' filter tests.

Run from anywhere: `python3 testdata/kernels/make_fixtures.py` (needs numpy, scipy and
scikit-image >= 0.19; written with scikit-image 0.26, scipy 1.17, numpy 2.4). The inputs are
seeded, so a run reproduces the files. Every expected output is float64 computed from the
exact input values:

- sobel_{in}.npy and sobel_{in}_{mag,h,v}.npy: skimage.filters.sobel / sobel_h / sobel_v of a
  grey u8, u16 or f32 image; rgb_{u8,u16,f32} inputs go through skimage.color.rgb2gray first.
  f32 inputs are passed to scikit-image as float64 (the same values), so the reference is the
  float64 result, not scikit-image's float32 one.
- colour_rgb_u8.npy: an RGB u8 image; colour_gray.npy = rgb2gray, colour_hed.npy = rgb2hed,
  colour_od.npy = the optical density (cuCIM's image_to_absorbance: -ln(clip(I, 1, 240) / 240));
  colour_hed_f32.npy (rgb2hed as float32) and colour_hed2rgb.npy = hed2rgb of it (float64).
- macenko_rgb_u8.npy: a synthetic H&E-like tile (with background); macenko_stain.npy (3x2,
  H and E columns), macenko_maxc.npy (the 99th percentiles of the concentrations) and
  macenko_out.npy (u8): cuCIM's stain_extraction_pca / normalize_colors_pca with the default
  parameters, ported line by line from cupy to numpy (float32, as cuCIM computes).
"""
import math
import os

import numpy as np
from skimage.color import hed2rgb, rgb2gray, rgb2hed
from skimage.filters import sobel, sobel_h, sobel_v

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261121)


def save(name, a):
    np.save(os.path.join(HERE, name), np.ascontiguousarray(a))


def sobel_fixtures():
    h, w = 29, 41
    inputs = {
        "u8": rng.integers(0, 256, (h, w), dtype=np.uint8),
        "u16": rng.integers(0, 65536, (h, w), dtype=np.uint16),
        "f32": (rng.standard_normal((h, w)) * 100).astype(np.float32),
        "rgb_u8": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "rgb_u16": rng.integers(0, 65536, (h, w, 3), dtype=np.uint16),
        "rgb_f32": rng.random((h, w, 3)).astype(np.float32),
    }
    for name, img in inputs.items():
        save(f"sobel_{name}.npy", img)
        x = img.astype(np.float64) if img.dtype == np.float32 else img
        if img.ndim == 3:
            x = rgb2gray(x)
        for tag, f in (("mag", sobel), ("h", sobel_h), ("v", sobel_v)):
            out = f(x)
            assert out.dtype == np.float64
            save(f"sobel_{name}_{tag}.npy", out)


def od_cucim(rgb, source_intensity=240.0):
    # cucim.core.operations.color.image_to_absorbance for an integer image, in float64
    x = np.clip(rgb.astype(np.float64), 1.0, source_intensity)
    return -np.log(x / source_intensity)


def colour_fixtures():
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rgb[0, :4] = [[0, 0, 0], [255, 255, 255], [1, 2, 3], [250, 128, 0]]
    save("colour_rgb_u8.npy", rgb)
    save("colour_gray.npy", rgb2gray(rgb))
    save("colour_hed.npy", rgb2hed(rgb))
    save("colour_od.npy", od_cucim(rgb))
    hed32 = rgb2hed(rgb).astype(np.float32)
    hed32[0, 4:8] = [[-1.0, 0.5, 0.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.0], [1e-3, 2e-2, 0.3]]
    save("colour_hed_f32.npy", hed32)
    save("colour_hed2rgb.npy", hed2rgb(hed32.astype(np.float64)))


def synthetic_he(h=64, w=64):
    """An H&E-like tile: smooth random stain concentrations, white background, noise."""
    hv = np.array([0.65, 0.70, 0.29])
    ev = np.array([0.07, 0.99, 0.11])
    hv, ev = hv / np.linalg.norm(hv), ev / np.linalg.norm(ev)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ch = 1.2 * (0.5 + 0.5 * np.sin(7 * xx + 3 * yy)) * (0.6 + 0.4 * rng.random((h, w)))
    ce = 0.8 * (0.5 + 0.5 * np.cos(5 * yy - 2 * xx)) * (0.6 + 0.4 * rng.random((h, w)))
    od = ch[..., None] * hv + ce[..., None] * ev
    img = 240.0 * np.exp(-od) + rng.normal(0, 2.0, (h, w, 3))
    img[: h // 5, : w // 3] = 245  # background
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def cucim_macenko(image, source_intensity=240.0, alpha=1.0, beta=0.345,
                  ref_stain=((0.5626, 0.2159), (0.7201, 0.8012), (0.4062, 0.5581)),
                  ref_max_conc=(1.9705, 1.0308)):
    """cuCIM's normalize_colors_pca (channel_axis=-1 image), cupy replaced by numpy."""
    # image_to_absorbance (float32, integer input: clip to [1, source_intensity])
    x = image.reshape(-1, 3).T.astype(np.float32)
    x = np.maximum(np.minimum(x, np.float32(source_intensity)), np.float32(1.0))
    absorbance = -np.log(x / np.float32(source_intensity))
    # stain_extraction_pca
    a = absorbance[:, np.all(absorbance > beta, axis=0)]
    X = a.astype(np.float32).copy()
    X -= X.mean(axis=1, keepdims=True)
    cov = (X @ X.T) * np.float32(1 / float(X.shape[1] - 1))
    _, ev = np.linalg.eigh(cov.astype(np.float32))
    ev = ev[:, [2, 1]]
    if ev[0, 0] < 0:
        ev[:, 0] *= -1
    if ev[0, 1] < 0:
        ev[:, 1] *= -1
    proj = ev.T @ a
    phi = np.arctan2(proj[1], proj[0])
    min_phi, max_phi = np.percentile(phi, (alpha, 100 - alpha))
    v_min = np.array([math.cos(min_phi), math.sin(min_phi)], dtype=np.float32)
    v_max = np.array([math.cos(max_phi), math.sin(max_phi)], dtype=np.float32)
    v1, v2 = ev @ v_min, ev @ v_max
    if v1[0] < v2[0]:
        v1, v2 = v2, v1
    stain = np.stack((v1, v2), axis=-1)
    stain /= np.linalg.norm(stain, axis=0, keepdims=True)
    # _get_raw_concentrations (pseudo-inverse) over ALL pixels
    pinv = np.linalg.inv(stain.T @ stain) @ stain.T
    conc = pinv @ absorbance
    max_conc = np.array([np.percentile(c, 100 - alpha) for c in conc])
    conc = conc * (np.asarray(ref_max_conc) / max_conc)[:, None]
    od_norm = np.asarray(ref_stain).dot(conc)
    rgb = np.exp(-od_norm) * source_intensity
    rgb = np.round(np.minimum(np.maximum(rgb, 0), 255)).astype(np.uint8)
    return stain, max_conc, rgb.T.reshape(image.shape)


def macenko_fixtures():
    img = synthetic_he()
    stain, max_conc, out = cucim_macenko(img)
    save("macenko_rgb_u8.npy", img)
    save("macenko_stain.npy", stain.astype(np.float64))
    save("macenko_maxc.npy", max_conc.astype(np.float64))
    save("macenko_out.npy", out)


if __name__ == "__main__":
    sobel_fixtures()
    colour_fixtures()
    macenko_fixtures()
