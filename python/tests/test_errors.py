"""Errors are Python exceptions with the library's one-line messages: TiledioError (an
OSError) for files, formats and the GPU, ValueError for arguments; device="cuda" without a GPU
says so clearly."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tifffile

import tiledio
from conftest import TESTDATA, rgb_image, write_pyramid

MALFORMED = TESTDATA / "tiff" / "malformed"


def one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg and msg.strip() == msg and msg, repr(msg)
    return msg


def test_tiledio_error_is_an_oserror():
    assert issubclass(tiledio.TiledioError, OSError)
    assert tiledio.TiledioError.__module__ == "tiledio"
    with pytest.raises(OSError):
        tiledio.open_slide("/no/such/slide.tif")


@pytest.mark.parametrize(
    "name",
    [
        "not_a_tiff.tif",
        "empty.tif",
        "truncated.tif",
        "offset_past_eof.tif",
        "zero_bytecount.tif",
        "tile_count_mismatch.tif",
        "absurd_dimensions.tif",
        "ifd_loop.tif",
        "deflate-truncated.tif",
        "deflate-bad-adler32.tif",
        "jpeg-truncated.tif",
        "zstd-trailing-data.tif",
        "lzw-more-than-tile.tif",
        "fuzz-value-bomb.tif",
    ],
)
def test_malformed_tiffs_raise_tiledio_error_naming_the_file(name):
    path = MALFORMED / name
    with pytest.raises(tiledio.TiledioError) as e:
        s = tiledio.open_slide(path)
        for level in range(s.level_count):
            s.read_level(level)
    assert name in one_line(e.value)


def test_unsupported_features_name_themselves():
    with pytest.raises(tiledio.TiledioError, match="33003"):
        s = tiledio.open_slide(TESTDATA / "tiff" / "unsupported_jp2k_33003.tif")
        s.read_level(0)


def test_a_file_damaged_after_opening(tmp_path):
    img = rgb_image(128, 128)
    path = write_pyramid(tmp_path / "s.tif", [img], tile=64, compression="zlib")
    s = tiledio.open_slide(path)
    with open(path, "r+b") as f:
        f.truncate(2000)
    with pytest.raises(tiledio.TiledioError) as e:
        s.read_level(0)
    assert "s.tif" in one_line(e.value)


def test_bad_arguments_raise_value_error(tmp_path):
    img = rgb_image(64, 64)
    path = write_pyramid(tmp_path / "s.tif", [img], tile=32)
    s = tiledio.open_slide(path)
    with pytest.raises(ValueError, match="level 3 does not exist"):
        s.read_region((0, 0), 3, (8, 8))
    with pytest.raises(ValueError, match="negative"):
        s.read_region((0, 0), 0, (-8, 8))
    with pytest.raises(ValueError, match="device"):
        s.read_region((0, 0), 0, (8, 8), device="tpu")
    with pytest.raises(TypeError):
        s.read_region((0, 0), 0, "big")
    # the memory budget (TILEDIO_MAX_MEMORY) refuses a region before anything is allocated
    with pytest.raises(tiledio.TiledioError, match="TILEDIO_MAX_MEMORY"):
        s.read_region((0, 0), 0, (1_000_000, 1_000_000))


def test_cuda_without_a_gpu_is_a_clear_tiledio_error(tmp_path):
    if tiledio.cuda_available():
        pytest.skip("a GPU is present here: device='cuda' works (tests/test_gpu.py runs it)")
    status = tiledio.cuda_status()
    assert status.startswith("no GPU: ")
    img = rgb_image(64, 64)
    path = write_pyramid(tmp_path / "s.tif", [img], tile=32)
    s = tiledio.open_slide(path)
    z = tiledio.open_zarr(tiledio.write_zarr(tmp_path / "z.zarr", img))
    calls = [
        lambda: s.read_region((0, 0), 0, (8, 8), device="cuda"),
        lambda: list(s.read_regions([(0, 0)], 0, (8, 8), device="cuda")),
        lambda: next(s.read_regions([(0, 0), (1, 1)], 0, (8, 8), device="cuda", num_workers=2)),
        lambda: z.read(device="cuda"),
        lambda: tiledio.ptycho.preprocess(np.zeros((2, 8, 8), np.uint16), crop=4, bin=2, device="cuda"),
        lambda: tiledio.ptycho.FrameStore(TESTDATA / "ptycho" / "frames.npy").read(device="cuda"),
        lambda: tiledio.pipeline.sobel(path, tmp_path / "e.zarr", device="cuda"),
    ]
    if importlib.util.find_spec("dask") is not None:
        tdask = importlib.import_module("tiledio.dask")
        calls.append(lambda: tdask.from_slide(path, device="cuda"))
        calls.append(lambda: tdask.from_zarr(tmp_path / "z.zarr", device="cuda"))
    for call in calls:
        with pytest.raises(tiledio.TiledioError) as e:
            call()
        msg = one_line(e.value)
        assert "GPU" in msg, msg


class FakeCudaArray:
    """Claims GPU memory it does not have: tiledio must refuse it cleanly without a GPU."""

    shape = (4, 4)
    dtype = np.dtype(np.uint8)
    __cuda_array_interface__ = {"shape": (4, 4), "typestr": "|u1", "data": (12345678, False), "version": 3,
                                "strides": None}


class FakeDlpack:
    shape = (4, 4)
    dtype = np.dtype(np.float32)

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kw):  # pragma: no cover - never reached without a GPU
        raise AssertionError("tiledio must check the GPU before importing")


def test_gpu_inputs_without_a_gpu_are_refused(tmp_path):
    if tiledio.cuda_available():
        pytest.skip("a GPU is present here")
    for fake in (FakeCudaArray(), FakeDlpack()):
        with pytest.raises(tiledio.TiledioError, match="no GPU"):
            tiledio.sobel(fake)
        with pytest.raises(tiledio.TiledioError, match="no GPU"):
            tiledio.write_zarr(tmp_path / "f.zarr", fake)
    assert not (tmp_path / "f.zarr").exists()


def test_out_on_cuda_must_be_a_gpu_array(tmp_path):
    img = rgb_image(64, 64)
    path = write_pyramid(tmp_path / "s.tif", [img], tile=32)
    s = tiledio.open_slide(path)
    with pytest.raises(TypeError, match="GPU array"):
        s.read_region((0, 0), 0, (8, 8), device="cuda", out=np.zeros((8, 8, 3), np.uint8))
