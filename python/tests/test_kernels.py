"""The kernels equal scikit-image (and cuCIM's Macenko, through the repository's NumPy-port
fixtures) on the CPU: Sobel (magnitude, h, v; grey and RGB; u8, u16, f32), rgb2hed, Macenko;
and the whole-slide pipeline (tiled == whole image, bit for bit).

Tolerance: ``|ours - skimage| <= TOL * (|skimage| + 1)`` with ``TOL = 1e-6``: scikit-image
computes in float64, tiledio in float32 (Sobel) or float64 rounded once to float32 (HED), so
the difference is float32 rounding of values (and of differences of terms) up to about 1; see
crates/tiledio-kernels/tests/filters_cpu.rs and tests/pipeline_skimage.rs, which measure it.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from skimage import color, filters

import tiledio
from conftest import TESTDATA, rgb_image, write_pyramid

TOL = 1e-6


def close(ours, ref, tol=TOL):
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    err = np.abs(ours - ref) / (np.abs(ref) + 1)
    assert err.max() <= tol, f"max relative error {err.max():.3g} > {tol}"


def as_float(img):
    """scikit-image's img_as_float, in float64."""
    if img.dtype == np.uint8:
        return img / 255.0
    if img.dtype == np.uint16:
        return img / 65535.0
    return img.astype(np.float64)


def grey_ref(img):
    f = as_float(img)
    return color.rgb2gray(f) if f.ndim == 3 and f.shape[2] == 3 else (f[..., 0] if f.ndim == 3 else f)


def images():
    rgb = rgb_image(67, 91, seed=1)
    rng = np.random.default_rng(2)
    return {
        "u8_grey": rgb[..., 1].copy(),
        "u8_rgb": rgb,
        "u16_rgb": (rgb.astype(np.uint16) * 257 + rng.integers(0, 256, rgb.shape)).astype(np.uint16),
        "u16_grey1": rng.integers(0, 65535, (40, 33, 1), dtype=np.uint16),
        "f32_grey": rng.random((50, 61), dtype=np.float32),
        "f32_rgb": rng.random((29, 47, 3), dtype=np.float32),
    }


@pytest.mark.parametrize("name", list(images()))
@pytest.mark.parametrize("output", ["magnitude", "h", "v"])
def test_sobel_equals_skimage(name, output):
    img = images()[name]
    ref_fn = {"magnitude": filters.sobel, "h": filters.sobel_h, "v": filters.sobel_v}[output]
    ref = ref_fn(grey_ref(img))
    got = tiledio.sobel(img, output=output)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == img.shape[:2]
    close(got, ref)


def test_sobel_repository_fixtures():
    """The kernels crate's fixtures (made by testdata/kernels/make_fixtures.py with
    scikit-image) through the Python API."""
    for name in ["sobel_u8", "sobel_rgb_u8", "sobel_u16", "sobel_rgb_f32"]:
        img = np.load(TESTDATA / "kernels" / f"{name}.npy")
        for suffix, output in [("mag", "magnitude"), ("h", "h"), ("v", "v")]:
            ref = np.load(TESTDATA / "kernels" / f"{name}_{suffix}.npy")
            close(tiledio.sobel(img, output=output), ref)


@pytest.mark.parametrize("name", ["u8_rgb", "u16_rgb", "f32_rgb"])
def test_rgb2hed_equals_skimage(name):
    img = images()[name]
    ref = color.rgb2hed(as_float(img))
    got = tiledio.rgb2hed(img)
    assert got.dtype == np.float32 and got.shape == img.shape
    close(got, ref)


def test_kernel_inputs_any_layout_and_bad_shapes():
    img = images()["u8_rgb"]
    # a non-contiguous view and a list are taken (NumPy makes them contiguous)
    close(tiledio.sobel(img[::2, ::2]), filters.sobel(grey_ref(np.ascontiguousarray(img[::2, ::2]))))
    grid = [[0.0, 0.5, 1.0], [0.25, 0.75, 0.5]]
    close(tiledio.sobel(np.array(grid, np.float32)), filters.sobel(np.array(grid)))
    with pytest.raises(ValueError, match="u8, u16 or f32"):
        tiledio.sobel(grid)  # float64: the kernels take u8, u16 or f32
    with pytest.raises(ValueError, match="shape"):
        tiledio.sobel(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="RGB"):
        tiledio.rgb2hed(np.zeros((4, 4), np.uint8))
    with pytest.raises(TypeError, match="bool"):
        tiledio.sobel(np.zeros((4, 4), bool))
    with pytest.raises(ValueError):
        tiledio.sobel(np.zeros((4, 4), np.int32))  # the kernels take u8, u16, f32
    with pytest.raises(ValueError, match="output"):
        tiledio.sobel(img, output="diagonal")


def test_normalize_stains_equals_cucim_port():
    """Against the kernels crate's fixture: cuCIM's Macenko (a line-by-line NumPy port, exact
    percentiles) on an H&E-like image. Bounds from filters_cpu.rs: tiledio's percentiles come
    from 65536-bin histograms, so a u8 output value is at most 2 off, in under 2% of values."""
    rgb = np.load(TESTDATA / "kernels" / "macenko_rgb_u8.npy")
    ref = np.load(TESTDATA / "kernels" / "macenko_out.npy")
    got = tiledio.normalize_stains(rgb)
    assert got.dtype == np.uint8 and got.shape == rgb.shape
    diff = np.abs(got.astype(int) - ref.astype(int).reshape(got.shape))
    assert diff.max() <= 2
    assert (diff > 0).mean() < 0.02
    # a reference image: its own stains and concentrations become the target, so the image
    # normalised to itself moves less than normalised to cuCIM's reference values
    same = tiledio.normalize_stains(rgb, reference=rgb)
    moved = lambda a: np.abs(a.astype(int) - rgb.astype(int)).mean()  # noqa: E731
    assert moved(same) < moved(got)
    with pytest.raises(TypeError, match="uint8"):
        tiledio.normalize_stains(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="reference_stains"):
        tiledio.normalize_stains(rgb, reference_stains=[[1, 2, 3]])
    with pytest.raises(ValueError, match="tissue"):
        tiledio.normalize_stains(np.full((16, 16, 3), 255, np.uint8))  # nothing to fit


def test_pipeline_sobel_tiled_equals_whole_image(tmp_path):
    img = rgb_image(150, 170, seed=12)
    src = write_pyramid(tmp_path / "in.tif", [img], tile=32, compression="zlib")
    r = tiledio.pipeline.sobel(src, tmp_path / "edges.zarr", tile=64, device="cpu", chunk=32)
    assert r["tiles"] == 3 * 3 and r["on_gpu"] is False
    g = zarr.open_group(tmp_path / "edges.zarr", mode="r")
    level0 = g["0"][:]
    # tiled with halos from the neighbours == the kernel on the whole image, bit for bit
    np.testing.assert_array_equal(level0, tiledio.sobel(img))
    close(level0, filters.sobel(grey_ref(img)))
    assert "1" in g  # the pyramid
    r = tiledio.pipeline.rgb2hed(src, tmp_path / "hed.zarr", tile=None, device="cpu")
    assert r["tiles"] == 1
    hed = zarr.open_group(tmp_path / "hed.zarr", mode="r")["0"][:]
    np.testing.assert_array_equal(hed, np.moveaxis(tiledio.rgb2hed(img), 2, 0))
    r = tiledio.pipeline.normalize_stains(src, tmp_path / "norm.tif", tile=64, device="cpu")
    assert r["output"].endswith("norm.tif")
    with pytest.raises(ValueError, match="chunk"):
        tiledio.pipeline.sobel(src, tmp_path / "e.tif", chunk=32)
    with pytest.raises(tiledio.TiledioError, match="missing.tif"):
        tiledio.pipeline.sobel(tmp_path / "missing.tif", tmp_path / "e2.zarr")
