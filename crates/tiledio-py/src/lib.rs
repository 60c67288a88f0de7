//! Python bindings of tiledio: the `tiledio._tiledio` extension module, wrapped by the
//! `tiledio` package in `python/tiledio/` (which holds the documented public API).
//!
//! The binding only adapts: Python arguments to the library's types, NumPy and GPU arrays to
//! byte buffers and device views, library errors to Python exceptions ([`errors`]). Every
//! library call runs without the GIL, with panics caught ([`errors::detach`]).

mod arrays;
mod device;
mod errors;
mod kernels;
mod ptycho;
mod slide;
mod zarr;

use pyo3::prelude::*;
use std::path::PathBuf;

/// Opens a whole-slide image (see ``tiledio.open_slide``).
#[pyfunction]
fn open_slide(py: Python<'_>, path: PathBuf) -> PyResult<slide::PySlide> {
    slide::open_slide(py, path)
}

/// Opens a Zarr array or an OME-Zarr image's level (see ``tiledio.open_zarr``).
#[pyfunction]
#[pyo3(signature = (path, level=None))]
fn open_zarr(py: Python<'_>, path: PathBuf, level: Option<usize>) -> PyResult<zarr::PyZarr> {
    zarr::open_zarr(py, path, level)
}

/// Converts between TIFF pyramids and (OME-)Zarr (see ``tiledio.convert``).
#[pyfunction]
#[pyo3(signature = (src, dst, *, levels=None, tile=None, compression=None, quality=None, chunk=None, shard=None, codec=None))]
#[allow(clippy::too_many_arguments)]
fn convert<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    levels: Option<usize>,
    tile: Option<u32>,
    compression: Option<&str>,
    quality: Option<u8>,
    chunk: Option<u64>,
    shard: Option<u64>,
    codec: Option<&str>,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    zarr::convert(py, src, dst, levels, tile, compression, quality, chunk, shard, codec)
}

/// Sobel edges of an image (see ``tiledio.sobel``).
#[pyfunction]
#[pyo3(signature = (array, output="magnitude"))]
fn sobel<'py>(py: Python<'py>, array: &Bound<'py, PyAny>, output: &str) -> PyResult<Bound<'py, PyAny>> {
    kernels::sobel(py, array, output)
}

/// Colour deconvolution into H, E, D (see ``tiledio.rgb2hed``).
#[pyfunction]
fn rgb2hed<'py>(py: Python<'py>, array: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    kernels::rgb2hed(py, array)
}

/// Macenko stain normalisation (see ``tiledio.normalize_stains``).
#[pyfunction]
#[pyo3(signature = (array, reference=None, *, source_intensity=240.0, alpha=1.0, beta=0.345, reference_stains=None, reference_max_concentrations=None))]
#[allow(clippy::too_many_arguments)]
fn normalize_stains<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
    reference: Option<&Bound<'py, PyAny>>,
    source_intensity: f64,
    alpha: f64,
    beta: f64,
    reference_stains: Option<Vec<Vec<f64>>>,
    reference_max_concentrations: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyAny>> {
    kernels::normalize_stains(
        py,
        array,
        reference,
        source_intensity,
        alpha,
        beta,
        reference_stains,
        reference_max_concentrations,
    )
}

/// A whole-slide filter tile by tile (see ``tiledio.pipeline``).
#[pyfunction]
#[pyo3(signature = (filter, src, dst, *, tile=Some(4096), device="auto", level=0, chunk=None, codec=None, output="magnitude", budget_mib=2048, reference=None))]
#[allow(clippy::too_many_arguments)]
fn pipeline_run<'py>(
    py: Python<'py>,
    filter: &str,
    src: PathBuf,
    dst: PathBuf,
    tile: Option<u64>,
    device: &str,
    level: usize,
    chunk: Option<u64>,
    codec: Option<&str>,
    output: &str,
    budget_mib: u64,
    reference: Option<PathBuf>,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    kernels::pipeline_run(
        py, filter, src, dst, tile, device, level, chunk, codec, output, budget_mib, reference,
    )
}

/// Ptychography preprocessing (see ``tiledio.ptycho.preprocess``).
#[pyfunction]
#[pyo3(signature = (stack, crop, bin, *, dark=None, flat=None, mask=None, center=None, reduce="sum", clamp="pixel", orientation=0, dtype=None, batch=64, device="cpu", out=None, raw_shape=None, raw_dtype=None, raw_header=0, raw_stride=None, raw_frames=None, return_info=false))]
#[allow(clippy::too_many_arguments)]
fn ptycho_preprocess<'py>(
    py: Python<'py>,
    stack: &Bound<'py, PyAny>,
    crop: usize,
    bin: usize,
    dark: Option<&Bound<'py, PyAny>>,
    flat: Option<&Bound<'py, PyAny>>,
    mask: Option<&Bound<'py, PyAny>>,
    center: Option<&Bound<'py, PyAny>>,
    reduce: &str,
    clamp: &str,
    orientation: u8,
    dtype: Option<&Bound<'py, PyAny>>,
    batch: usize,
    device: &str,
    out: Option<PathBuf>,
    raw_shape: Option<(usize, usize)>,
    raw_dtype: Option<&Bound<'py, PyAny>>,
    raw_header: u64,
    raw_stride: Option<u64>,
    raw_frames: Option<u64>,
    return_info: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let raw = ptycho::raw_from_kwargs(py, raw_shape, raw_dtype, raw_header, raw_stride, raw_frames)?;
    let f32s = "float32".into_pyobject(py)?.into_any();
    ptycho::preprocess_py(
        py,
        stack,
        crop,
        bin,
        dark,
        flat,
        mask,
        center,
        reduce,
        clamp,
        orientation,
        dtype.unwrap_or(&f32s),
        batch,
        device,
        out,
        raw,
        return_info,
    )
}

/// None when a CUDA GPU is usable, else why not (one line).
#[pyfunction]
fn cuda_status() -> Option<String> {
    tiledio::io::gpu::gpu().err().map(|e| e.to_string())
}

/// The extension module.
#[pymodule]
fn _tiledio(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TiledioError", py.get_type::<errors::TiledioError>())?;
    m.add_class::<slide::PySlide>()?;
    m.add_class::<slide::AssociatedImages>()?;
    m.add_class::<slide::RegionBatches>()?;
    m.add_class::<zarr::PyZarr>()?;
    m.add_class::<zarr::ZarrWriter>()?;
    m.add_class::<device::CudaArray>()?;
    m.add_class::<ptycho::PyFrameStore>()?;
    m.add_class::<ptycho::FrameBatches>()?;
    m.add_function(wrap_pyfunction!(open_slide, m)?)?;
    m.add_function(wrap_pyfunction!(open_zarr, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(sobel, m)?)?;
    m.add_function(wrap_pyfunction!(rgb2hed, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_stains, m)?)?;
    m.add_function(wrap_pyfunction!(pipeline_run, m)?)?;
    m.add_function(wrap_pyfunction!(ptycho_preprocess, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_status, m)?)?;
    m.add_class::<device::HostDlpack>()?;
    m.add_function(wrap_pyfunction!(device::_host_dlpack, m)?)?;
    Ok(())
}
