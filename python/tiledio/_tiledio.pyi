"""Type stubs of tiledio's extension module (the documented API is in ``tiledio``)."""

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "AssociatedImages",
    "CudaArray",
    "FrameBatches",
    "FrameStore",
    "RegionBatches",
    "Slide",
    "TiledioError",
    "ZarrArray",
    "ZarrWriter",
    "_HostDlpack",
    "__version__",
    "_host_dlpack",
    "convert",
    "cuda_status",
    "normalize_stains",
    "open_slide",
    "open_zarr",
    "pipeline_run",
    "ptycho_preprocess",
    "rgb2hed",
    "sobel",
]

_Path = Union[str, "os.PathLike[str]"]
_Device = str  # "cpu", "cuda" or "cuda:N"
_Array = Any  # a NumPy array, or a GPU array (CuPy, PyTorch, JAX, Numba, CudaArray)
_Pair = Union[Tuple[int, int], Sequence[int], npt.NDArray[np.integer]]

class TiledioError(OSError):
    """An I/O, format or GPU problem; the message is one line naming the file."""

@final
class CudaArray:
    """An array in GPU memory owned by tiledio; DLPack and CUDA array interface v3."""

    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def ndim(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def __cuda_array_interface__(self) -> Dict[str, Any]: ...
    def __dlpack_device__(self) -> Tuple[int, int]: ...
    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Optional[Tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any: ...
    def get(self) -> npt.NDArray[Any]: ...
    def __array__(self, dtype: Any = None, copy: Any = None) -> None: ...
    def __len__(self) -> int: ...

@final
class AssociatedImages(Mapping[str, npt.NDArray[Any]]):
    def __getitem__(self, key: str, /) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def __contains__(self, key: object, /) -> bool: ...
    def keys(self) -> List[str]: ...  # type: ignore[override]
    def values(self) -> List[npt.NDArray[Any]]: ...  # type: ignore[override]
    def items(self) -> List[Tuple[str, npt.NDArray[Any]]]: ...  # type: ignore[override]
    def get(self, name: str, default: Any = None) -> Any: ...
    def dimensions(self) -> Dict[str, Tuple[int, int]]: ...

@final
class RegionBatches(Iterator[Any]):
    def __iter__(self) -> "RegionBatches": ...
    def __next__(self) -> Any: ...
    def __len__(self) -> int: ...

@final
class Slide:
    def __new__(cls, path: _Path) -> "Slide": ...
    @property
    def path(self) -> str: ...
    @property
    def level_count(self) -> int: ...
    @property
    def level_dimensions(self) -> List[Tuple[int, int]]: ...
    @property
    def dimensions(self) -> Tuple[int, int]: ...
    @property
    def level_downsamples(self) -> List[float]: ...
    @property
    def level_tile_sizes(self) -> List[Tuple[int, int]]: ...
    @property
    def channels(self) -> int: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def properties(self) -> Dict[str, str]: ...
    @property
    def associated_images(self) -> AssociatedImages: ...
    def get_best_level_for_downsample(self, downsample: float) -> int: ...
    def read_region(
        self, location: _Pair, level: int, size: _Pair, device: _Device = "cpu", out: Optional[_Array] = None
    ) -> Any: ...
    def read_level_region(
        self, level: int, location: _Pair, size: _Pair, device: _Device = "cpu", out: Optional[_Array] = None
    ) -> Any: ...
    def read_level(self, level: int = 0, device: _Device = "cpu", out: Optional[_Array] = None) -> Any: ...
    def read_regions(
        self,
        locations: Union[Sequence[_Pair], npt.NDArray[np.integer]],
        level: int,
        size: _Pair,
        device: _Device = "cpu",
        batch_size: int = 1,
        num_workers: int = 0,
    ) -> RegionBatches: ...
    def __enter__(self) -> "Slide": ...
    def __exit__(self, a: Any, b: Any, c: Any) -> None: ...

@final
class ZarrArray:
    def __new__(cls, path: _Path, level: Optional[int] = None) -> "ZarrArray": ...
    @property
    def path(self) -> str: ...
    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def chunks(self) -> Tuple[int, ...]: ...
    @property
    def shards(self) -> Optional[Tuple[int, ...]]: ...
    @property
    def ndim(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def zarr_format(self) -> int: ...
    @property
    def attrs(self) -> Dict[str, Any]: ...
    def __getitem__(self, key: Any, /) -> Any: ...
    def read(self, region: Any = None, device: _Device = "cpu", out: Optional[_Array] = None) -> Any: ...
    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...

@final
class ZarrWriter:
    def __new__(
        cls,
        path: _Path,
        shape: Sequence[int],
        dtype: Any,
        chunks: Union[None, int, Sequence[int]] = None,
        shard: Union[None, int, Sequence[int]] = None,
        codec: str = "zstd",
        ome: bool = False,
        levels: Optional[int] = None,
    ) -> "ZarrWriter": ...
    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def chunks(self) -> List[int]: ...
    @property
    def unit(self) -> List[int]: ...
    def write(self, origin: Sequence[int], array: _Array) -> None: ...
    def finish(self) -> str: ...
    def abort(self) -> None: ...

@final
class FrameStore:
    def __new__(
        cls,
        spec: _Path,
        *,
        raw_shape: Optional[Tuple[int, int]] = None,
        raw_dtype: Any = None,
        raw_header: int = 0,
        raw_stride: Optional[int] = None,
        raw_frames: Optional[int] = None,
    ) -> "FrameStore": ...
    @property
    def name(self) -> str: ...
    @property
    def frames(self) -> int: ...
    @property
    def frame_shape(self) -> Tuple[int, int]: ...
    @property
    def shape(self) -> Tuple[int, int, int]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    def __len__(self) -> int: ...
    def read(
        self,
        start: int = 0,
        stop: Optional[int] = None,
        *,
        rows: Optional[Tuple[int, int]] = None,
        device: _Device = "cpu",
        out: Optional[_Array] = None,
    ) -> Any: ...
    def __getitem__(self, key: Union[int, slice], /) -> npt.NDArray[Any]: ...
    def batches(
        self, batch_size: int = 64, *, device: _Device = "cpu", rows: Optional[Tuple[int, int]] = None
    ) -> "FrameBatches": ...
    def mean(self, start: int = 0, stop: Optional[int] = None) -> npt.NDArray[np.float32]: ...

@final
class FrameBatches(Iterator[Any]):
    def __iter__(self) -> "FrameBatches": ...
    def __next__(self) -> Any: ...
    def __len__(self) -> int: ...

def open_slide(path: _Path) -> Slide: ...
def open_zarr(path: _Path, level: Optional[int] = None) -> ZarrArray: ...
def convert(
    src: _Path,
    dst: _Path,
    *,
    levels: Optional[int] = None,
    tile: Optional[int] = None,
    compression: Optional[str] = None,
    quality: Optional[int] = None,
    chunk: Optional[int] = None,
    shard: Optional[int] = None,
    codec: Optional[str] = None,
) -> Dict[str, Any]: ...
def sobel(array: _Array, output: str = "magnitude") -> Any: ...
def rgb2hed(array: _Array) -> Any: ...
def normalize_stains(
    array: _Array,
    reference: Optional[_Array] = None,
    *,
    source_intensity: float = 240.0,
    alpha: float = 1.0,
    beta: float = 0.345,
    reference_stains: Optional[List[List[float]]] = None,
    reference_max_concentrations: Optional[List[float]] = None,
) -> Any: ...
def pipeline_run(
    filter: str,
    src: _Path,
    dst: _Path,
    *,
    tile: Optional[int] = ...,
    device: str = "auto",
    level: int = 0,
    chunk: Optional[int] = None,
    codec: Optional[str] = None,
    output: str = "magnitude",
    budget_mib: int = 2048,
    reference: Optional[_Path] = None,
) -> Dict[str, Any]: ...
def ptycho_preprocess(
    stack: Any,
    crop: int,
    bin: int,
    *,
    dark: Any = None,
    flat: Any = None,
    mask: Any = None,
    center: Any = None,
    reduce: str = "sum",
    clamp: str = "pixel",
    orientation: int = 0,
    dtype: Any = None,
    batch: int = 64,
    device: str = "cpu",
    out: Optional[_Path] = None,
    raw_shape: Optional[Tuple[int, int]] = None,
    raw_dtype: Any = None,
    raw_header: int = 0,
    raw_stride: Optional[int] = None,
    raw_frames: Optional[int] = None,
    return_info: bool = False,
) -> Any: ...
def cuda_status() -> Optional[str]: ...

@final
class _HostDlpack:
    def __dlpack_device__(self) -> Tuple[int, int]: ...
    def __dlpack__(
        self,
        *,
        stream: Optional[Any] = None,
        max_version: Optional[Tuple[int, int]] = None,
        dl_device: Optional[Tuple[int, int]] = None,
        copy: Optional[bool] = None,
    ) -> Any: ...

def _host_dlpack(array: _Array) -> _HostDlpack: ...
