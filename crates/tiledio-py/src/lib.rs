//! Python bindings of tiledio: the `tiledio._tiledio` extension module, wrapped by the
//! `tiledio` package in `python/tiledio/` (which holds the documented public API).
//!
//! The binding only adapts: Python arguments to the library's types, NumPy and GPU arrays to
//! byte buffers and device views, library errors to Python exceptions ([`errors`]). Every
//! library call runs without the GIL, with panics caught ([`errors::detach`]).
//!
//! The module's functions are the `#[pyfunction]`s of the modules that implement them (their
//! Python signatures are declared once, there); this file registers them.

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
    m.add_function(wrap_pyfunction!(zarr::open_zarr, m)?)?;
    m.add_function(wrap_pyfunction!(zarr::convert, m)?)?;
    m.add_function(wrap_pyfunction!(kernels::sobel, m)?)?;
    m.add_function(wrap_pyfunction!(kernels::rgb2hed, m)?)?;
    m.add_function(wrap_pyfunction!(kernels::normalize_stains, m)?)?;
    m.add_function(wrap_pyfunction!(kernels::pipeline_run, m)?)?;
    m.add_function(wrap_pyfunction!(ptycho::ptycho_preprocess, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_status, m)?)?;
    m.add_class::<device::HostDlpack>()?;
    m.add_function(wrap_pyfunction!(device::_host_dlpack, m)?)?;
    Ok(())
}
