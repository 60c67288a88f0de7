"""Ptychography preprocessing equal to a NumPy reference (the documented semantics, written
step by step as testdata/ptycho/make_fixtures.py does), on a path, a FrameStore and an array;
frame stores read equal to NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import tiledio
from tiledio import ptycho
from conftest import TESTDATA

PT = TESTDATA / "ptycho"


def reference(frames, dark, crop, bin_, center=None, reduce="sum", clamp_first=True, orientation=0,
              out="float32", flat=None, mask=None):
    """Crop about the centre (zero outside the frame), subtract the dark, divide by the flat,
    drop masked pixels, clamp at 0 before (or after) binning, sum (or mean) BxB bins, orient
    (4 transpose, 2 flip up-down, 1 flip left-right), convert."""
    n_, H, W = frames.shape
    cy, cx = center if center is not None else (H // 2, W // 2)
    y0, x0 = cy - crop // 2, cx - crop // 2
    ys, xs = np.arange(y0, y0 + crop), np.arange(x0, x0 + crop)
    valid = ((ys >= 0) & (ys < H))[:, None] & ((xs >= 0) & (xs < W))[None, :]
    yc, xc = np.clip(ys, 0, H - 1), np.clip(xs, 0, W - 1)
    win = frames[:, yc][:, :, xc].astype(np.float32)
    if dark is not None:
        win = win - dark[yc][:, xc].astype(np.float32)
    if flat is not None:
        f = flat[yc][:, xc].astype(np.float32)
        valid = valid & (f > 0)
        win = win / np.where(f > 0, f, np.float32(1))
    if mask is not None:
        valid = valid & (mask[yc][:, xc] == 0)
    if clamp_first:
        win = np.where(win > 0, win, np.float32(0))
    win = np.where(valid[None], win, np.float32(0))
    n = crop // bin_
    b = win.reshape(n_, n, bin_, n, bin_).sum(axis=(2, 4), dtype=np.float32)
    if not clamp_first:
        b = np.where(b > 0, b, np.float32(0))
    if reduce == "mean":
        b = b / np.float32(bin_ * bin_)
    if orientation & 4:
        b = b.transpose(0, 2, 1)
    if orientation & 2:
        b = b[:, ::-1, :]
    if orientation & 1:
        b = b[:, :, ::-1]
    if out == "uint16":
        b = np.clip(np.rint(b), 0, 65535).astype(np.uint16)
    return np.ascontiguousarray(b)


@pytest.fixture(scope="module")
def stack():
    frames = np.load(PT / "frames.npy")
    darks = np.load(PT / "darks.npy")
    dark = darks.astype(np.float64).mean(axis=0).astype(np.float32)
    return frames, darks, dark


CASES = [
    dict(crop=32, bin_=2),
    dict(crop=40, bin_=4, center=(10, 70), reduce="mean", clamp_first=False, orientation=5),
    dict(crop=48, bin_=3, center=(30, 40), orientation=6, out="uint16"),
    dict(crop=24, bin_=2, center=(-5, 3), orientation=3),
]


@pytest.mark.parametrize("case", CASES)
def test_preprocess_equals_numpy_reference(stack, case):
    frames, darks, dark = stack
    want = reference(frames, dark, **case)
    kw = dict(crop=case["crop"], bin=case["bin_"], center=case.get("center"), reduce=case.get("reduce", "sum"),
              clamp="pixel" if case.get("clamp_first", True) else "bin", orientation=case.get("orientation", 0),
              dtype=case.get("out", "float32"), device="cpu", batch=4)
    # a path and the dark stack's path (averaged), as the command line takes them
    got = ptycho.preprocess(str(PT / "frames.npy"), dark=PT / "darks.npy", **kw)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # a NumPy stack, a (H, W) dark map
    np.testing.assert_array_equal(ptycho.preprocess(frames, dark=dark, **kw), want)
    # a FrameStore and a dark FrameStore
    np.testing.assert_array_equal(
        ptycho.preprocess(ptycho.FrameStore(PT / "frames.npy"), dark=ptycho.FrameStore(PT / "darks.npy"), **kw), want)


def test_preprocess_checked_fixtures_and_other_stores(stack):
    frames, _, _ = stack
    # the repository's references (tests of the Rust crates use them too)
    want = np.load(PT / "ref_sum_centre.npy")
    np.testing.assert_array_equal(ptycho.preprocess(PT / "frames.npy", dark=PT / "darks.npy", crop=32, bin=2), want)
    # the raw stack: 512-byte header, frames 64 bytes apart
    raw = dict(raw_shape=(64, 80), raw_dtype="uint16", raw_header=512, raw_stride=64 * 80 * 2 + 64)
    np.testing.assert_array_equal(
        ptycho.preprocess(PT / "frames.raw", dark=PT / "darks.npy", crop=32, bin=2, **raw), want)
    # HDF5 (chunked, bitshuffle-LZ4) through the same spelling as the CLI
    np.testing.assert_array_equal(
        ptycho.preprocess(f"{PT / 'h5_bslz4.h5'}:/entry/data/data", dark=PT / "darks.npy", crop=32, bin=2), want)


def test_preprocess_flat_mask_info_and_zarr_output(stack, tmp_path):
    frames, _, dark = stack
    rng = np.random.default_rng(3)
    flat = rng.uniform(0.5, 2.0, frames.shape[1:]).astype(np.float32)
    flat[5, 5] = 0  # counts as bad
    mask = np.zeros(frames.shape[1:], np.uint8)
    mask[30:33, 40:45] = 1
    want = reference(frames, dark, 32, 2, flat=flat, mask=mask, center=(31, 42))
    got, info = ptycho.preprocess(frames, dark=dark, flat=flat, mask=mask, crop=32, bin=2, center=(31, 42),
                                  return_info=True)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    assert info["center"] == (31, 42) and info["gpu"] is False and info["side"] == 16 and info["frames"] == 6
    # auto centre: the centre of mass of the dark-subtracted frames
    _, info = ptycho.preprocess(frames, dark=dark, crop=32, bin=2, center="auto", return_info=True)
    assert abs(info["center"][0] - 30) <= 2 and abs(info["center"][1] - 44) <= 2
    # u16 saturation is counted
    _, info = ptycho.preprocess(frames * 0 + 65535, crop=32, bin=4, dtype="uint16", return_info=True)
    assert info["saturated"] == 6 * 8 * 8
    out = ptycho.preprocess(frames, dark=dark, crop=32, bin=2, out=tmp_path / "p.zarr")
    assert out == str(tmp_path / "p.zarr")
    np.testing.assert_array_equal(zarr.open_array(out, mode="r")[:], reference(frames, dark, 32, 2))


def test_preprocess_errors(stack, tmp_path):
    frames, _, dark = stack
    with pytest.raises(ValueError, match="divisible"):
        ptycho.preprocess(frames, crop=30, bin=4)
    with pytest.raises(ValueError, match="shapes differ"):
        ptycho.preprocess(frames, dark=dark[:32, :32], crop=32, bin=2)
    with pytest.raises(ValueError, match="raw_shape"):
        ptycho.preprocess(PT / "frames.raw", crop=32, bin=2)
    with pytest.raises(ValueError, match="reduce"):
        ptycho.preprocess(frames, crop=32, bin=2, reduce="max")
    with pytest.raises(ValueError, match="float32, uint32 or uint16"):
        ptycho.preprocess(frames, crop=32, bin=2, dtype="int8")
    with pytest.raises(ValueError, match="center"):
        ptycho.preprocess(frames, crop=32, bin=2, center="middle")
    with pytest.raises(tiledio.TiledioError, match="missing.npy"):
        ptycho.preprocess(tmp_path / "missing.npy", crop=32, bin=2)
    with pytest.raises(tiledio.TiledioError, match="no GPU"):
        ptycho.preprocess(frames, crop=32, bin=2, device="cuda") if tiledio.cuda_status() else pytest.skip(
            "a GPU is present: device='cuda' works here")


def test_frame_store_reads(stack, tmp_path):
    frames, darks, _ = stack
    s = ptycho.FrameStore(PT / "frames.npy")
    assert s.shape == frames.shape and s.frames == 6 and len(s) == 6
    assert s.frame_shape == (64, 80) and s.dtype == np.uint16
    assert "frames.npy" in s.name and "FrameStore" in repr(s)
    np.testing.assert_array_equal(s[2], frames[2])
    np.testing.assert_array_equal(s[-1], frames[-1])
    np.testing.assert_array_equal(s[1:4], frames[1:4])
    np.testing.assert_array_equal(s[::2], frames[::2])
    np.testing.assert_array_equal(s[::-2], frames[::-2])
    np.testing.assert_array_equal(s.read(2, 5, rows=(10, 20)), frames[2:5, 10:20])
    out = np.zeros((6, 64, 80), np.uint16)
    assert s.read(out=out) is out
    np.testing.assert_array_equal(out, frames)
    batches = list(s.batches(4))
    assert [b.shape[0] for b in batches] == [4, 2]
    np.testing.assert_array_equal(np.concatenate(batches), frames)
    np.testing.assert_array_equal(ptycho.FrameStore(PT / "darks.npy").mean(), darks.astype(np.float64).mean(0).astype(np.float32))
    with pytest.raises(IndexError):
        s[6]
    with pytest.raises(IndexError):
        s.read(4, 9)
    with pytest.raises(IndexError):
        s.read(rows=(60, 70))
    # a Zarr stack written by zarr-python; a raw stack; HDF5
    z = zarr.create_array(tmp_path / "f.zarr", shape=frames.shape, chunks=(2, 32, 80), dtype=frames.dtype)
    z[...] = frames
    np.testing.assert_array_equal(ptycho.FrameStore(tmp_path / "f.zarr")[:], frames)
    raw = ptycho.FrameStore(PT / "frames.raw", raw_shape=(64, 80), raw_header=512, raw_stride=64 * 80 * 2 + 64)
    np.testing.assert_array_equal(raw[:], frames)
    h5 = ptycho.FrameStore(f"{PT / 'h5_chunked.h5'}:/entry/data/data")
    np.testing.assert_array_equal(h5[:], frames)
    with pytest.raises(ValueError, match="raw_shape"):
        ptycho.FrameStore(PT / "frames.raw")
    with pytest.raises(tiledio.TiledioError, match="not found"):
        ptycho.FrameStore(f"{PT / 'h5_chunked.h5'}:/entry/nope")
