"""Dask arrays whose chunks tiledio reads: a whole-slide level (:func:`from_slide`) or a Zarr
array (:func:`from_zarr`), chunk by chunk, in host memory (NumPy chunks) or GPU memory
(``device="cuda"``: CuPy chunks, ``meta`` a CuPy array, for Dask-CUDA).

The graph holds only paths, so it runs on any scheduler (threads, processes, a distributed
cluster); each worker opens a file once and keeps it open (per process).

>>> import tiledio.dask
>>> x = tiledio.dask.from_slide("slide.svs", level=0, chunks=2048)
>>> x
dask.array<tiledio-slide, shape=(32914, 46000, 3), dtype=uint8, chunksize=(2048, 2048, 3), ...>
>>> grey = x.mean(axis=2).compute()

This module imports Dask (``pip install "dask[array]"``).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Optional, Sequence, Tuple, Union

import dask.array as da
import numpy
from dask.base import tokenize

from . import _tiledio

__all__ = ["from_slide", "from_zarr"]

PathLike = Union[str, "os.PathLike[str]"]


@functools.lru_cache(maxsize=128)
def _open_slide(path: str) -> Any:
    return _tiledio.open_slide(path)


@functools.lru_cache(maxsize=128)
def _open_zarr(path: str, level: Optional[int]) -> Any:
    return _tiledio.open_zarr(path, level)


def _stamp(path: str) -> Tuple[float, int]:
    """What identifies a file's contents for Dask's names: its modification time and size."""
    try:
        st = os.stat(path)
        return (st.st_mtime, st.st_size)
    except OSError:
        return (0.0, 0)


def _to_device(a: Any, device: str) -> Any:
    if device == "cpu":
        return a
    import cupy

    return cupy.asarray(a)


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda"):
        raise ValueError(f'device {device!r}: expected "cpu" or "cuda"')
    if device == "cuda":
        status = _tiledio.cuda_status()
        if status is not None:
            raise _tiledio.TiledioError(status)


def _meta(ndim: int, dtype: numpy.dtype, device: str) -> Any:
    if device == "cpu":
        return numpy.empty((0,) * ndim, dtype=dtype)
    import cupy

    return cupy.empty((0,) * ndim, dtype=dtype)


def _bounds(s: slice, n: int) -> Tuple[int, int]:
    start, stop, step = s.indices(n)
    if step != 1:
        raise IndexError("tiledio Dask chunks are read by step-1 slices")
    return start, max(start, stop)


class _SlideLevel:
    """A slide level as the array-like ``dask.array.from_array`` reads chunks from (pickles
    as its path, level and device)."""

    def __init__(self, path: str, level: int, device: str):
        self.path, self.level, self.device = path, level, device
        s = _open_slide(path)
        if not 0 <= level < s.level_count:
            raise ValueError(f"{path}: level {level} does not exist (the slide has {s.level_count})")
        w, h = s.level_dimensions[level]
        self.shape = (h, w, s.channels)
        self.dtype = numpy.dtype(s.dtype)
        self.ndim = 3

    def __reduce__(self) -> Any:
        return (_SlideLevel, (self.path, self.level, self.device))

    def __dask_tokenize__(self) -> Any:
        return ("tiledio-slide", self.path, _stamp(self.path), self.level, self.device)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        (y0, y1), (x0, x1) = _bounds(key[0], self.shape[0]), _bounds(key[1], self.shape[1])
        s = _open_slide(self.path)
        if y1 == y0 or x1 == x0:
            out = numpy.zeros((y1 - y0, x1 - x0, self.shape[2]), self.dtype)
            return _to_device(out, self.device)[:, :, key[2]]
        a = s.read_level_region(self.level, (x0, y0), (x1 - x0, y1 - y0), device=self.device)
        a = _to_device(a, self.device)
        return a if key[2] == slice(None) else a[:, :, key[2]]


def from_slide(
    path: PathLike,
    level: int = 0,
    chunks: Union[int, Tuple[int, int]] = 1024,
    device: str = "cpu",
) -> da.Array:
    """A slide level as a ``(height, width, channels)`` Dask array whose chunks tiledio reads.

    Args:
        path: a tiled TIFF / BigTIFF / SVS / OME-TIFF.
        level: the pyramid level (0 = full resolution).
        chunks: the chunk edge in pixels, or ``(rows, columns)``; channels are one chunk.
            Multiples of the slide's tile size read fewest bytes.
        device: ``"cpu"`` (NumPy chunks) or ``"cuda"`` (CuPy chunks; ``meta`` is a CuPy
            array).

    Returns:
        A ``dask.array.Array``.

    Example:
        >>> x = tiledio.dask.from_slide("slide.svs", level=1, chunks=1024)
        >>> tissue = (x.min(axis=2) < 200).sum().compute()
        >>> edges = x.map_overlap(lambda b: tiledio.sobel(b), depth={0: 1, 1: 1, 2: 0},
        ...                       boundary="none", drop_axis=2, dtype="float32")
    """
    path = os.fspath(path)
    _check_device(device)
    lvl = _SlideLevel(path, level, device)
    ch, cw = (chunks, chunks) if isinstance(chunks, int) else tuple(chunks)
    name = "tiledio-slide-" + tokenize(lvl, ch, cw)
    return da.from_array(
        lvl,
        chunks=(ch, cw, lvl.shape[2]),
        name=name,
        lock=False,
        asarray=False,
        fancy=False,
        meta=_meta(3, lvl.dtype, device),
    )


class _ZarrSource:
    """A Zarr array as the array-like ``dask.array.from_array`` reads chunks from."""

    def __init__(self, path: str, level: Optional[int], device: str):
        self.path, self.level, self.device = path, level, device
        a = _open_zarr(path, level)
        self.shape = tuple(a.shape)
        self.dtype = numpy.dtype(a.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(a.chunks)
        self.shards = None if a.shards is None else tuple(a.shards)

    def __reduce__(self) -> Any:
        return (_ZarrSource, (self.path, self.level, self.device))

    def __dask_tokenize__(self) -> Any:
        return ("tiledio-zarr", self.path, _stamp(os.path.join(self.path, "zarr.json")),
                _stamp(os.path.join(self.path, ".zarray")), self.level, self.device)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        region = tuple(slice(*_bounds(k, n)) for k, n in zip(key, self.shape))
        a = _open_zarr(self.path, self.level)
        return _to_device(a.read(region, device=self.device), self.device)


def from_zarr(
    path: PathLike,
    chunks: Union[None, int, Sequence[int]] = None,
    level: Optional[int] = None,
    device: str = "cpu",
) -> da.Array:
    """A Zarr array (or an OME-Zarr image's level ``level``) as a Dask array whose chunks
    tiledio reads.

    Args:
        path: the array (or image group) folder.
        chunks: Dask's chunks; default the array's shards when sharded, else its chunks
            (reading whole storage units). An int applies to every axis.
        level: the OME-Zarr level (default 0) when ``path`` is a multiscale image.
        device: ``"cpu"`` (NumPy chunks) or ``"cuda"`` (CuPy chunks, CuPy ``meta``).

    Returns:
        A ``dask.array.Array``.

    Example:
        >>> x = tiledio.dask.from_zarr("edges.zarr/0")
        >>> x.max().compute()
    """
    path = os.fspath(path)
    _check_device(device)
    src = _ZarrSource(path, level, device)
    if chunks is None:
        chunks = src.shards or src.chunks
    name = "tiledio-zarr-" + tokenize(src, chunks)
    return da.from_array(
        src,
        chunks=chunks,
        name=name,
        lock=False,
        asarray=False,
        fancy=False,
        meta=_meta(src.ndim, src.dtype, device),
    )
