"""Ptychography: detector frame stacks read by frame (HDF5 with bitshuffle-LZ4 and DECTRIS
Eiger masters, ``.npy``, Zarr, raw) and the fused preprocessing kernel (dark subtraction,
crop, flat field, bad-pixel mask, rebinning by sum or mean, orientation, output type), on the
GPU or the CPU.

>>> from tiledio import ptycho
>>> frames = ptycho.preprocess("scan_master.h5", dark="dark.npy", crop=512, bin=2,
...                            center="auto", device="cuda")
>>> frames.shape                                  # a tiledio.CudaArray
(4096, 256, 256)
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple, Union

from . import _tiledio
from ._tiledio import FrameBatches, FrameStore

__all__ = ["FrameStore", "FrameBatches", "preprocess"]

Stack = Union[str, "os.PathLike[str]", FrameStore, Any]


def _spec(x: Any) -> Any:
    if isinstance(x, (str, os.PathLike)):
        return os.fspath(x)
    return x


def preprocess(
    stack: Stack,
    *,
    crop: int,
    bin: int,
    dark: Optional[Stack] = None,
    flat: Optional[Stack] = None,
    mask: Optional[Stack] = None,
    center: Union[None, str, Tuple[int, int]] = None,
    reduce: str = "sum",
    clamp: str = "pixel",
    orientation: int = 0,
    dtype: Any = "float32",
    batch: int = 64,
    device: str = "cpu",
    out: Optional[Union[str, "os.PathLike[str]"]] = None,
    raw_shape: Optional[Tuple[int, int]] = None,
    raw_dtype: Any = "uint16",
    raw_header: int = 0,
    raw_stride: Optional[int] = None,
    raw_frames: Optional[int] = None,
    return_info: bool = False,
) -> Any:
    """Preprocess every frame of a stack, batch by batch, with one fused kernel:
    ``dark`` subtracted, an ``S x S`` crop about ``center``, divided by ``flat``, ``mask``ed
    pixels left out, ``B x B`` bins summed (Diamond I08-1) or averaged (PtyPy's ``rebin_2d``),
    oriented, converted to ``dtype``.

    Args:
        stack: a store spelling as on the command line (``"scan.h5:/entry/data/data"``,
            ``"scan_master.h5"``, ``"frames.npy"``, ``"frames.zarr"``, a raw file with
            ``raw_shape``), a :class:`FrameStore`, or an array ``(N, H, W)`` (or one frame
            ``(H, W)``): NumPy, or a GPU array (CuPy, PyTorch, JAX).
        crop: the crop side ``S`` in detector pixels (a multiple of ``bin``).
        bin: the bin factor ``B``: output frames are ``S/B x S/B``.
        dark, flat, mask: calibration maps, each a store spelling, a :class:`FrameStore` or an
            array; a stack is averaged over its frames. ``flat`` divides (pixels <= 0 count as
            bad); ``mask`` nonzero marks bad pixels.
        center: ``(y, x)`` in frame pixels; None or ``"frame"`` for ``(H/2, W/2)``;
            ``"auto"`` (``"auto:N"``) for the centre of mass of the first 32 (N)
            dark-subtracted frames.
        reduce: ``"sum"`` or ``"mean"`` over a bin.
        clamp: ``"pixel"`` clamps each dark-subtracted pixel at 0 before binning (I08-1's
            order), ``"bin"`` clamps the binned value.
        orientation: PtyPy's 0-7: 4 transpose, 2 flip up-down, 1 flip left-right.
        dtype: ``float32``, ``uint32`` or ``uint16`` (integers rounded half to even and
            saturated; ``return_info`` counts them).
        batch: frames per read and kernel launch.
        device: where the kernel runs and the result lives: ``"cpu"`` (NumPy), ``"cuda"``
            (a :class:`tiledio.CudaArray`), or ``"auto"`` (the GPU when there is one, the result
            in NumPy).
        out: a new Zarr array ``(N, S/B, S/B)`` to write instead of returning the frames (its
            path is returned).
        raw_shape, raw_dtype, raw_header, raw_stride, raw_frames: the layout of raw files.
        return_info: return ``(frames, info)`` with ``info`` a dict: ``center`` used,
            ``saturated`` count, ``gpu`` (whether the kernel ran on the GPU), ``frames``,
            ``side``.

    Returns:
        The ``(N, S/B, S/B)`` frames (or the Zarr path with ``out``).

    Raises:
        TiledioError: an unreadable store, ``device="cuda"`` without a GPU.
        ValueError: a crop not divisible by the bin, calibration maps of another frame
            shape, a centre far outside the frame.

    Example:
        >>> frames = ptycho.preprocess("scan.npy", dark="dark.npy", crop=256, bin=2)
        >>> frames.shape, frames.dtype
        ((200, 128, 128), dtype('float32'))
        >>> import cupy
        >>> g = ptycho.preprocess(cupy.asarray(stack), crop=256, bin=4, reduce="mean",
        ...                       device="cuda")
    """
    return _tiledio.ptycho_preprocess(
        _spec(stack),
        crop,
        bin,
        dark=_spec(dark),
        flat=_spec(flat),
        mask=_spec(mask),
        center=center,
        reduce=reduce,
        clamp=clamp,
        orientation=orientation,
        dtype=dtype,
        batch=batch,
        device=device,
        out=None if out is None else os.fspath(out),
        raw_shape=raw_shape,
        raw_dtype=raw_dtype,
        raw_header=raw_header,
        raw_stride=raw_stride,
        raw_frames=raw_frames,
        return_info=return_info,
    )
