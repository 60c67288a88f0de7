"""Shared fixtures of the tiledio Python tests: slides written by tifffile, the repository's
test data, and the GPU marker (GPU tests are skipped, with the reason printed by ``-ra``, on
machines without CuPy or without a GPU)."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import tifffile

import tiledio

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTDATA = REPO / "testdata"


def _gpu_reason():
    try:
        import cupy  # noqa: F401
    except Exception as e:  # ImportError, or a CUDA library missing underneath
        return f"needs CuPy and a CUDA GPU: cupy cannot be imported ({type(e).__name__}: {e})"
    status = tiledio.cuda_status()
    if status is not None:
        return f"needs a CUDA GPU: tiledio says {status}"
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return f"needs a CUDA GPU: CuPy cannot use one ({e})"
    return None


GPU_REASON = _gpu_reason()
requires_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=GPU_REASON or "")


def rgb_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB u8 image with noise (compresses, and JPEG stays meaningful)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = np.stack(
        [
            128 + 100 * np.sin(xx / 17.0 + k) * np.cos(yy / 23.0 - k)
            for k in range(3)
        ],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def write_pyramid(path, levels, tile=64, compression=None, photometric=None, subifds=False, **kw):
    """Writes `levels` (largest first) with tifffile: chained reduced pages (subfiletype 1) or
    SubIFDs of page 0."""
    photometric = photometric or ("rgb" if levels[0].ndim == 3 and levels[0].shape[2] == 3 else "minisblack")
    with tifffile.TiffWriter(path, bigtiff=kw.pop("bigtiff", False)) as tw:
        if subifds:
            tw.write(levels[0], tile=(tile, tile), photometric=photometric, compression=compression,
                     subifds=len(levels) - 1, metadata=None, **kw)
            for lv in levels[1:]:
                tw.write(lv, tile=(tile, tile), photometric=photometric, compression=compression,
                         subfiletype=1, metadata=None)
        else:
            for i, lv in enumerate(levels):
                tw.write(lv, tile=(tile, tile), photometric=photometric, compression=compression,
                         subfiletype=0 if i == 0 else 1, metadata=None, **(kw if i == 0 else {}))
    return os.fspath(path)


def halves(img: np.ndarray, n: int):
    """`img` and `n - 1` successive 2x subsamplings (any reduction is fine: the levels are
    compared with what tifffile reads, not with a resampling)."""
    out = [img]
    for _ in range(n - 1):
        out.append(np.ascontiguousarray(out[-1][::2, ::2]))
    return out


@pytest.fixture
def rgb_slide(tmp_path):
    """A 3-level deflate RGB pyramid written by tifffile, and its levels."""
    levels = halves(rgb_image(300, 420), 3)
    path = write_pyramid(tmp_path / "rgb.tif", levels, tile=64, compression="zlib")
    return path, levels
