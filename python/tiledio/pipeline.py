"""Whole slides filtered tile by tile: a TIFF level or a Zarr array in, OME-Zarr (with its
pyramid) or a tiled TIFF out, in bounded memory, on the GPU or the CPU.

Each output tile is computed from its source window plus the filter's halo taken from the
neighbouring tiles (1 pixel for Sobel), so the tiled result equals the whole-image result
bit for bit; reads and kernels overlap with the writes of the previous tile.

>>> import tiledio.pipeline
>>> report = tiledio.pipeline.sobel("slide.svs", "edges.zarr", tile=4096, device="auto")
>>> report["tiles"], report["on_gpu"]
(99, True)
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

from . import _tiledio

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["sobel", "rgb2hed", "rgb2gray", "normalize_stains"]


def _run(filter: str, src: PathLike, dst: PathLike, **kw: Any) -> Dict[str, Any]:
    return _tiledio.pipeline_run(filter, os.fspath(src), os.fspath(dst), **kw)


def sobel(
    src: PathLike,
    dst: PathLike,
    tile: Optional[int] = 4096,
    device: str = "auto",
    *,
    level: int = 0,
    output: str = "magnitude",
    chunk: Optional[int] = None,
    codec: Optional[str] = None,
    budget_mib: int = 2048,
) -> Dict[str, Any]:
    """Sobel edges (``skimage.filters.sobel`` of the grey image; ``output="h"`` / ``"v"`` for
    ``sobel_h`` / ``sobel_v``) of a whole slide level or Zarr array, as float32.

    Args:
        src: a tiled TIFF / SVS / OME-TIFF (level ``level``), or a Zarr array or OME-Zarr
            image folder.
        dst: a ``.zarr`` folder (OME-Zarr 0.5 with its 2x pyramid) or a ``.tif`` file; it must
            not exist. Nothing appears there until it is complete.
        tile: output tile edge in pixels, or None to read, filter and write the whole level at
            once (needs memory for all of it).
        device: ``"auto"`` (the GPU when there is one), ``"cuda"`` or ``"cpu"``.
        level: the TIFF level (or OME-Zarr level folder) to read.
        output: ``"magnitude"``, ``"h"`` or ``"v"``.
        chunk: Zarr output chunk edge (the tile must be a multiple of it; default 512).
        codec: Zarr output codec (``"none"`` by default; ``"zstd"``, ...).
        budget_mib: GPU memory the tiles in flight may take.

    Returns:
        A report: ``output``, ``on_gpu``, ``cpu_reason``, ``tiles``, ``seconds``,
        ``pyramid_seconds``, ``peak_device_bytes``, ``bytes_read``, ``bytes_written``.

    Raises:
        TiledioError: unreadable input, an output that exists or cannot be written,
            ``device="cuda"`` without a GPU.
        ValueError: an input type the filter does not take, a tile that is not a multiple of
            the chunk.

    Example:
        >>> tiledio.pipeline.sobel("slide.svs", "edges.zarr", tile=4096, device="cuda")
        >>> tiledio.open_zarr("edges.zarr").shape     # level 0 of the output
        (32914, 46000)
    """
    return _run(
        "sobel", src, dst, tile=tile, device=device, level=level, output=output, chunk=chunk,
        codec=codec, budget_mib=budget_mib,
    )


def rgb2hed(
    src: PathLike,
    dst: PathLike,
    tile: Optional[int] = 4096,
    device: str = "auto",
    *,
    level: int = 0,
    chunk: Optional[int] = None,
    codec: Optional[str] = None,
    budget_mib: int = 2048,
) -> Dict[str, Any]:
    """Colour deconvolution (``skimage.color.rgb2hed``) of a whole RGB slide into float32 H, E,
    D planes; arguments and result as :func:`sobel`."""
    return _run(
        "rgb2hed", src, dst, tile=tile, device=device, level=level, chunk=chunk, codec=codec,
        budget_mib=budget_mib,
    )


def rgb2gray(
    src: PathLike,
    dst: PathLike,
    tile: Optional[int] = 4096,
    device: str = "auto",
    *,
    level: int = 0,
    chunk: Optional[int] = None,
    codec: Optional[str] = None,
    budget_mib: int = 2048,
) -> Dict[str, Any]:
    """``skimage.color.rgb2gray`` of a whole RGB slide, as float32; arguments and result as
    :func:`sobel`."""
    return _run(
        "rgb2gray", src, dst, tile=tile, device=device, level=level, chunk=chunk, codec=codec,
        budget_mib=budget_mib,
    )


def normalize_stains(
    src: PathLike,
    dst: PathLike,
    tile: Optional[int] = 4096,
    device: str = "auto",
    *,
    reference: Optional[PathLike] = None,
    level: int = 0,
    chunk: Optional[int] = None,
    codec: Optional[str] = None,
    budget_mib: int = 2048,
) -> Dict[str, Any]:
    """Macenko stain normalisation (cuCIM's ``normalize_colors_pca``) of a whole RGB uint8
    slide: the statistics are gathered over all tiles (bounded memory), then every tile is
    mapped. ``reference`` is a slide whose stains become the target (default: cuCIM's
    reference values). Other arguments and the result as :func:`sobel`; RGB uint8 output."""
    return _run(
        "normalize_stains", src, dst, tile=tile, device=device, level=level, chunk=chunk,
        codec=codec, budget_mib=budget_mib,
        reference=None if reference is None else os.fspath(reference),
    )
