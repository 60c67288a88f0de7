"""tiledio: tiled images from storage into NumPy arrays or GPU memory, and back.

Whole-slide images (tiled TIFF, BigTIFF, SVS, OME-TIFF), Zarr arrays (v2, v3, sharded,
OME-Zarr) and detector frame stacks (HDF5 with bitshuffle-LZ4, ``.npy``, Zarr, raw) are read
by region into NumPy arrays (``device="cpu"``) or GPU memory (``device="cuda"``: a
:class:`CudaArray`, which CuPy, PyTorch and JAX take without a copy through DLPack or
``__cuda_array_interface__``), written back, and filtered (Sobel, colour deconvolution,
Macenko stain normalisation, ptychography preprocessing) on the CPU or the GPU.

>>> import tiledio
>>> slide = tiledio.open_slide("slide.svs")
>>> slide.level_dimensions
[(46000, 32914), (11500, 8228), (2875, 2057)]
>>> tile = slide.read_region((1024, 2048), 0, (512, 512))   # (512, 512, 3) uint8 NumPy array
>>> edges = tiledio.sobel(tile)                              # (512, 512) float32

Errors are :class:`TiledioError` (a subclass of ``OSError``) for files that cannot be read or
written, formats and the GPU, and ``ValueError`` for arguments that cannot work; messages
are one line naming the file. Every call releases the GIL while it works.

Submodules: :mod:`tiledio.pipeline` (whole slides tile by tile), :mod:`tiledio.ptycho`
(detector frames), :mod:`tiledio.dask` (Dask arrays read by tiledio; imports Dask).
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Tuple, Union

from . import _tiledio
from ._tiledio import (
    AssociatedImages,
    CudaArray,
    RegionBatches,
    Slide,
    TiledioError,
    ZarrArray,
    ZarrWriter,
    __version__,
)

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "AssociatedImages",
    "CudaArray",
    "RegionBatches",
    "Slide",
    "TiledioError",
    "ZarrArray",
    "ZarrWriter",
    "__version__",
    "convert",
    "cuda_available",
    "cuda_status",
    "normalize_stains",
    "open_slide",
    "open_zarr",
    "pipeline",
    "ptycho",
    "rgb2hed",
    "sobel",
    "write_zarr",
]


def _register_mapping() -> None:
    import collections.abc

    collections.abc.Mapping.register(AssociatedImages)


_register_mapping()


def open_slide(path: PathLike) -> Slide:
    """Open a whole-slide image: a tiled TIFF, BigTIFF, Aperio SVS or OME-TIFF pyramid.

    The result has OpenSlide's attributes and methods, reading into NumPy arrays
    (``device="cpu"``) or GPU memory (``device="cuda"``):

    - ``level_count``, ``level_dimensions`` (``(width, height)`` per level, largest first),
      ``level_downsamples``, ``dimensions``, ``level_tile_sizes``, ``channels``, ``dtype``;
    - ``properties``: a dict with OpenSlide's names (``openslide.mpp-x``,
      ``openslide.objective-power``, ``tiff.ImageDescription``, ``aperio.*``, ...);
    - ``associated_images``: a mapping of name (``label``, ``macro``, ``thumbnail``) to
      ``(height, width, channels)`` array, each read when looked up;
    - ``read_region((x, y), level, (width, height), device="cpu", out=None)``: OpenSlide's
      coordinates and argument order (``(x, y)`` in level-0 pixels, the size in pixels of
      ``level``), a ``(height, width, channels)`` array of the slide's dtype; pixels outside
      the image are 0; ``out`` fills a preallocated array instead;
    - ``read_regions(locations, level, size, device=..., batch_size=..., num_workers=...)``:
      an iterator of ``(n, height, width, channels)`` batches, as cuCIM's batch read;
    - ``read_level(level)``, ``read_level_region(level, (x, y), (w, h))`` (the level's own
      coordinates), ``get_best_level_for_downsample(d)``.

    Only the tiles a region needs are read (in one batched call), and decoded in parallel;
    JPEG tiles decode bit-exactly as libjpeg-turbo (OpenSlide, tifffile) decode them.

    Args:
        path: the file.

    Returns:
        A :class:`Slide`; it may also be used as a context manager.

    Raises:
        TiledioError: the file is missing, unreadable, not a TIFF, or malformed (the message
            names the file, page and tile).

    Example:
        >>> slide = tiledio.open_slide("slide.svs")
        >>> slide.level_count, slide.level_dimensions[0]
        (3, (46000, 32914))
        >>> region = slide.read_region((1000, 2000), 1, (512, 512))
        >>> region.shape, region.dtype
        ((512, 512, 3), dtype('uint8'))
        >>> gpu = slide.read_region((1000, 2000), 0, (512, 512), device="cuda")
        >>> import cupy; x = cupy.asarray(gpu)        # no copy
        >>> for batch in slide.read_regions([(0, 0), (512, 0), (1024, 0)], 0, (256, 256),
        ...                                 batch_size=2, num_workers=2):
        ...     print(batch.shape)
        (2, 256, 256, 3)
        (1, 256, 256, 3)
    """
    return _tiledio.open_slide(os.fspath(path))


def open_zarr(path: PathLike, level: Optional[int] = None) -> ZarrArray:
    """Open a Zarr array (v2 or v3; any chunking, sharding and codec tiledio reads), or one
    level of an OME-Zarr multiscale image (``level``, default 0).

    The result has ``shape``, ``dtype``, ``chunks``, ``shards``, ``attrs``; NumPy-style
    indexing (ints, slices with any step, ``...``) reads only the chunks it touches into a
    NumPy array, and ``read(region, device="cpu"|"cuda", out=None)`` reads a box (a tuple of
    step-1 slices) into NumPy or GPU memory.

    Raises:
        TiledioError: no Zarr metadata there (an interrupted write leaves none), invalid
            metadata, a malformed chunk when read.
        ValueError: a level that does not exist.

    Example:
        >>> a = tiledio.open_zarr("image.zarr")
        >>> a.shape, a.dtype, a.chunks
        ((3, 8192, 8192), dtype('uint8'), (1, 512, 512))
        >>> tile = a[:, 1024:1536, 2048:2560]                  # NumPy (3, 512, 512)
        >>> g = a.read(numpy.s_[:, 0:4096, 0:4096], device="cuda")
    """
    return _tiledio.open_zarr(os.fspath(path), level)


def _is_dask(array: Any) -> bool:
    mod = type(array).__module__ or ""
    return mod.startswith("dask.") and hasattr(array, "chunks") and hasattr(array, "compute")


def write_zarr(
    path: PathLike,
    array: Any,
    chunks: Union[int, Sequence[int]] = 512,
    shard: Union[None, int, Sequence[int]] = None,
    codec: str = "zstd",
    ome: bool = False,
    levels: Optional[int] = None,
) -> str:
    """Write an array as a new Zarr v3 array, or with ``ome=True`` an OME-Zarr 0.5 image.

    ``array`` may be a NumPy array, a GPU array (CuPy, PyTorch, JAX, :class:`CudaArray`: the
    chunks are gathered on the GPU) or a Dask array (computed a band of storage units at a
    time, so memory stays bounded by one band).

    Args:
        path: the new array's folder; it must not exist (or be an empty folder). Nothing
            appears there until the array is complete.
        array: the data.
        chunks: chunk edge for every axis (clipped to the axis), or one edge per axis.
        shard: None, or the shard shape (an int or one edge per axis; a multiple of
            ``chunks``): Zarr v3 sharding, few files for small chunks.
        codec: ``"none"``, ``"zstd[:level]"``, ``"gzip[:level]"``, ``"blosc[:level]"`` or
            ``"blosc-zstd[:level]"``.
        ome: write an OME-Zarr multiscale image group instead of a plain array: ``array`` is
            ``(H, W)`` (axes y, x) or ``(H, W, C)`` (stored channel first, axes c, y, x);
            ``chunks`` and ``shard`` apply to y and x. Level ``"0"`` is ``array``; levels
            ``"1"``, ``"2"``... are 2× area averages of the level above (sides rounded up,
            integers rounded half up, as tiledio's TIFF pyramids), made until a side fits in
            one chunk, each with the same chunks and codec, listed in the ``multiscales``
            metadata with their scale.
        levels: with ``ome=True``, the number of levels in all (1 to 40) instead.

    Returns:
        The path written.

    Raises:
        TiledioError: the output exists or cannot be written.
        ValueError: chunks, shard, codec, levels or shapes that cannot work.

    Example:
        >>> tiledio.write_zarr("edges.zarr", edges, chunks=512, codec="zstd")
        'edges.zarr'
        >>> tiledio.write_zarr("slide.ome.zarr", slide.read_level(0), chunks=1024, ome=True)
        'slide.ome.zarr'
        >>> zarr.open_array("edges.zarr")[:]   # zarr-python reads it
    """
    path = os.fspath(path)
    if _is_dask(array):
        return _write_zarr_dask(path, array, chunks, shard, codec, ome, levels)
    w = ZarrWriter(path, tuple(array.shape), _dtype_of(array), chunks, shard, codec, ome, levels)
    try:
        if all(n > 0 for n in array.shape):
            w.write((0,) * len(array.shape), array)
        return w.finish()
    except BaseException:
        w.abort()
        raise


def _dtype_of(array: Any) -> Any:
    import numpy

    dt = getattr(array, "dtype", None)
    if dt is None:
        return numpy.asarray(array).dtype
    try:
        return numpy.dtype(dt)
    except TypeError:
        # torch dtypes: torch.float32 -> "float32"
        return numpy.dtype(str(dt).rsplit(".", 1)[-1])


def _write_zarr_dask(
    path: str, x: Any, chunks: Any, shard: Any, codec: str, ome: bool, levels: Optional[int]
) -> str:
    import numpy

    shape = tuple(int(n) for n in x.shape)
    w = ZarrWriter(path, shape, numpy.dtype(x.dtype), chunks, shard, codec, ome, levels)
    try:
        if all(n > 0 for n in shape):
            band = int(w.unit[0])
            # a few storage units of rows per computation: enough for the cluster to work in
            # parallel, bounded memory
            rows = band * max(1, (64 << 20) // max(1, band * int(numpy.prod(shape[1:])) * x.dtype.itemsize))
            for y0 in range(0, shape[0], rows):
                part = x[y0 : y0 + rows].compute()
                w.write((y0,) + (0,) * (len(shape) - 1), numpy.asarray(part) if not hasattr(part, "__cuda_array_interface__") else part)
        return w.finish()
    except BaseException:
        w.abort()
        raise


def convert(src: PathLike, dst: PathLike, **options: Any) -> dict:
    """Convert between tiled TIFF pyramids and (OME-)Zarr, in bounded memory, as
    ``tiledio convert`` does: TIFF -> TIFF, TIFF -> OME-Zarr, Zarr -> TIFF, Zarr -> Zarr. The
    output's format follows its extension (``.tif``/``.tiff`` or ``.zarr``); it must not exist.

    Keyword options (an option that does not apply to the output's format is a ValueError):

    - TIFF output: ``tile`` (multiple of 16, default 512), ``compression`` (``"none"``,
      ``"deflate"``, ``"zstd"``, ``"lzw"``, ``"jpeg"``), ``quality`` (JPEG), ``levels``;
    - Zarr output: ``chunk`` (default 512), ``shard``, ``codec`` (as :func:`write_zarr`),
      ``levels``.

    Returns:
        ``{"format": "tiff"|"zarr", "levels": [(width, height), ...], "channels": int,
        "dtype": str}``.

    Example:
        >>> tiledio.convert("slide.svs", "slide.zarr", chunk=512, shard=4096, codec="zstd")
        {'format': 'zarr', 'levels': [(46000, 32914), ...], 'channels': 3, 'dtype': 'uint8'}
    """
    allowed = {"levels", "tile", "compression", "quality", "chunk", "shard", "codec"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"convert() got unknown options {sorted(unknown)}; expected {sorted(allowed)}")
    return _tiledio.convert(os.fspath(src), os.fspath(dst), **options)


def sobel(array: Any, output: str = "magnitude") -> Any:
    """Sobel edges of an image, as ``skimage.filters.sobel`` (``sobel_h``, ``sobel_v``) of its
    grey image (``skimage.color.rgb2gray`` for RGB), border mode ``reflect``.

    Args:
        array: ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8, uint16 or float32 (integers scaled
            to [0, 1] as ``img_as_float`` does); NumPy, or a GPU array.
        output: ``"magnitude"`` (``sobel``), ``"h"`` (``sobel_h``) or ``"v"`` (``sobel_v``).

    Returns:
        ``(H, W)`` float32 on the input's device: NumPy for host input, a :class:`CudaArray`
        for GPU input. Equal to scikit-image within float32 rounding.

    Example:
        >>> edges = tiledio.sobel(slide.read_region((0, 0), 0, (1024, 1024)))
        >>> edges_gpu = tiledio.sobel(cupy_image)              # runs on the GPU
    """
    return _tiledio.sobel(array, output)


def rgb2hed(array: Any) -> Any:
    """Colour deconvolution into haematoxylin, eosin and DAB, as ``skimage.color.rgb2hed``.

    Args:
        array: ``(H, W, 3)`` RGB, uint8, uint16 or float32; NumPy or a GPU array.

    Returns:
        ``(H, W, 3)`` float32 (H, E, D) on the input's device; equal to scikit-image within
        float32 rounding.

    Example:
        >>> hed = tiledio.rgb2hed(tile)
        >>> haematoxylin = hed[..., 0]
    """
    return _tiledio.rgb2hed(array)


def normalize_stains(
    array: Any,
    reference: Any = None,
    *,
    source_intensity: float = 240.0,
    alpha: float = 1.0,
    beta: float = 0.345,
    reference_stains: Optional[Sequence[Sequence[float]]] = None,
    reference_max_concentrations: Optional[Sequence[float]] = None,
) -> Any:
    """Macenko stain normalisation, as cuCIM's ``normalize_colors_pca``: the stain matrix and
    maximum concentrations of ``array`` are fitted (on the CPU; a GPU image is copied for the
    fit), then every pixel is mapped to the reference stains (on the input's device).

    Args:
        array: ``(H, W, 3)`` RGB uint8; NumPy or a GPU array.
        reference: an RGB uint8 image whose fitted stains and concentrations become the target
            (default: cuCIM's reference values, or ``reference_stains`` /
            ``reference_max_concentrations``).
        source_intensity, alpha, beta: cuCIM's parameters (240, 1, 0.345).
        reference_stains: the target stain matrix, 3 rows (R, G, B) of 2 columns (H, E).
        reference_max_concentrations: the target maximum concentrations of H and E.

    Returns:
        ``(H, W, 3)`` uint8 on the input's device.

    Raises:
        ValueError: an image with no tissue pixels (nothing to fit), wrong shapes.

    Example:
        >>> normalized = tiledio.normalize_stains(tile)
        >>> matched = tiledio.normalize_stains(tile, reference=target_tile)
    """
    return _tiledio.normalize_stains(
        array,
        reference,
        source_intensity=source_intensity,
        alpha=alpha,
        beta=beta,
        reference_stains=None if reference_stains is None else [list(r) for r in reference_stains],
        reference_max_concentrations=None
        if reference_max_concentrations is None
        else list(reference_max_concentrations),
    )


def cuda_status() -> Optional[str]:
    """None when a CUDA GPU is usable, else why not, in one line (e.g. ``"no GPU: libcuda not
    found (no NVIDIA driver on this machine)"``). ``TILEDIO_NO_GPU=1`` disables the GPU and
    ``TILEDIO_DEVICE`` chooses it."""
    return _tiledio.cuda_status()


def cuda_available() -> bool:
    """Whether ``device="cuda"`` can work here (see :func:`cuda_status` for why not)."""
    return cuda_status() is None


from . import pipeline, ptycho  # noqa: E402  (submodules use the names above)


def __getattr__(name: str) -> Any:
    if name == "dask":
        import importlib

        return importlib.import_module(".dask", __name__)
    raise AttributeError(f"module 'tiledio' has no attribute {name!r}")
