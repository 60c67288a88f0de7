//! The image kernels on arrays (`tiledio.sobel`, `rgb2hed`, `normalize_stains`) and the
//! whole-slide pipeline (`tiledio.pipeline`).

use crate::arrays::{Init, new_array};
use crate::device::{DevicePtr, Input, input, parse_run_device, wrap};
use crate::errors::{Failure, Res, detach, guarded};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use tiledio::io::{Context, DeviceArray, ElementType};
use tiledio::kernels::{ColourMap, ColourOp, MacenkoNormalizer, MacenkoParams, Sobel, SobelOutput};

/// `(H, W)` and channels of an image array: `(H, W)`, `(H, W, 1)` or `(H, W, 3)` when `rgb` is
/// not required, `(H, W, 3)` when it is.
fn image_shape(shape: &[u64], rgb_only: bool, what: &str) -> PyResult<([u64; 2], usize)> {
    match *shape {
        [h, w] if !rgb_only => Ok(([h, w], 1)),
        [h, w, 1] if !rgb_only => Ok(([h, w], 1)),
        [h, w, 3] => Ok(([h, w], 3)),
        _ => Err(PyValueError::new_err(format!(
            "{what}: an image of shape {shape:?}; expected {}",
            if rgb_only {
                "(H, W, 3) RGB"
            } else {
                "(H, W) grey or (H, W, 3) RGB"
            }
        ))),
    }
}

fn sobel_output(s: &str) -> PyResult<SobelOutput> {
    match s {
        "magnitude" => Ok(SobelOutput::Magnitude),
        "h" | "horizontal" => Ok(SobelOutput::Horizontal),
        "v" | "vertical" => Ok(SobelOutput::Vertical),
        _ => Err(PyValueError::new_err(format!(
            "output {s:?}: expected \"magnitude\", \"h\" or \"v\""
        ))),
    }
}

/// Runs a kernel that maps an input array to a new `f32`/`u8` array of `out_shape`, on the
/// input's device: `host(src, dst)` on the CPU (on the compute threads), `device(src, dst)` on
/// the GPU.
fn run_map<'py>(
    py: Python<'py>,
    src: Input<'py>,
    out_type: ElementType,
    out_shape: Vec<u64>,
    host: impl FnOnce(&[u8], &mut [u8]) -> Res<()> + Send,
    device: impl FnOnce(&tiledio::io::gpu::DeviceBuffer, &mut tiledio::io::gpu::DeviceBuffer) -> Res<()> + Send,
    what: &str,
) -> PyResult<Bound<'py, PyAny>> {
    match src {
        Input::Host(h) => {
            let (a, dst) = new_array(py, out_type, &out_shape, Init::Zeroed)?;
            let sb = h.bytes;
            detach(py, move || {
                // SAFETY: both arrays are held by this frame; `a` is new, `h` only read.
                let (s, d) = unsafe { (sb.get(), dst.get_mut()) };
                Context::from_env()?.compute(|| host(s, d))
            })?;
            drop(h);
            Ok(a)
        }
        Input::Device(d) => {
            let p: DevicePtr = d.ptr();
            let what = what.to_string();
            let out = detach(py, move || {
                // SAFETY: `d` keeps the array alive for this call; only read.
                let sbuf = unsafe { p.contiguous(&what)? };
                let mut o = DeviceArray::zeros(out_type, &out_shape)?;
                device(&sbuf, o.buffer_mut())?;
                Ok(o)
            })?;
            drop(d);
            wrap(py, out)
        }
    }
}

/// Sobel edges of an image (see ``tiledio.sobel``).
#[pyfunction]
#[pyo3(signature = (array, output="magnitude"))]
pub(crate) fn sobel<'py>(py: Python<'py>, array: &Bound<'py, PyAny>, output: &str) -> PyResult<Bound<'py, PyAny>> {
    let what = sobel_output(output)?;
    let src = input(array, "sobel")?;
    let (hw, c) = image_shape(src.shape(), false, "sobel")?;
    let s = Sobel::whole(src.dtype(), c, hw, what).map_err(Failure::from)?;
    run_map(
        py,
        src,
        ElementType::F32,
        hw.to_vec(),
        move |a, b| {
            // SAFETY: NumPy allocated `b` for float32 values.
            let out = unsafe { as_f32(b)? };
            Ok(s.host(a, out)?)
        },
        move |a, b| Ok(s.device(a, b)?),
        "sobel",
    )
}

/// `b` as `f32` values (NumPy's float32 allocations are aligned).
///
/// # Safety
/// `b` must be the bytes of a float32 array.
unsafe fn as_f32(b: &mut [u8]) -> Res<&mut [f32]> {
    if !(b.as_ptr() as usize).is_multiple_of(4) || !b.len().is_multiple_of(4) {
        return Err(Failure::io(
            "internal error (a bug in tiledio): a float32 output that is not aligned",
        ));
    }
    // SAFETY: aligned, whole values; the caller's guarantee that they are float32.
    Ok(unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<f32>(), b.len() / 4) })
}

/// Colour deconvolution into H, E, D (see ``tiledio.rgb2hed``).
#[pyfunction]
pub(crate) fn rgb2hed<'py>(py: Python<'py>, array: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let src = input(array, "rgb2hed")?;
    let ([h, w], _) = image_shape(src.shape(), true, "rgb2hed")?;
    let px =
        usize::try_from(h.saturating_mul(w)).map_err(|_| PyValueError::new_err("rgb2hed: the image is too large"))?;
    let m = ColourMap::new(ColourOp::RgbToHed, src.dtype(), px).map_err(Failure::from)?;
    run_map(
        py,
        src,
        ElementType::F32,
        vec![h, w, 3],
        move |a, b| {
            // SAFETY: NumPy allocated `b` for float32 values.
            let out = unsafe { as_f32(b)? };
            Ok(m.host(a, out)?)
        },
        move |a, b| Ok(m.device(a, b)?),
        "rgb2hed",
    )
}

/// Macenko parameters from the keyword arguments.
fn macenko_params(
    source_intensity: f64,
    alpha: f64,
    beta: f64,
    reference_stains: Option<Vec<Vec<f64>>>,
    reference_max_concentrations: Option<Vec<f64>>,
) -> PyResult<MacenkoParams> {
    let mut p = MacenkoParams {
        source_intensity,
        alpha,
        beta,
        ..MacenkoParams::default()
    };
    if let Some(s) = reference_stains {
        let ok = s.len() == 3 && s.iter().all(|r| r.len() == 2);
        if !ok {
            return Err(PyValueError::new_err(
                "reference_stains: expected 3 rows (R, G, B) of 2 columns (H, E)",
            ));
        }
        p.reference_stains = [[s[0][0], s[0][1]], [s[1][0], s[1][1]], [s[2][0], s[2][1]]];
    }
    if let Some(m) = reference_max_concentrations {
        let [a, b] = m[..] else {
            return Err(PyValueError::new_err(
                "reference_max_concentrations: expected 2 values (H, E)",
            ));
        };
        p.reference_max_concentrations = [a, b];
    }
    Ok(p)
}

/// The bytes of an RGB u8 image on the host (a GPU image is copied for the fit).
fn rgb_bytes_for_fit(py: Python<'_>, src: &Input<'_>) -> PyResult<Vec<u8>> {
    match src {
        Input::Host(h) => {
            let b = h.bytes;
            // SAFETY: `h` is alive for this call (borrowed); only read.
            detach(py, move || Ok(unsafe { b.get() }.to_vec()))
        }
        Input::Device(d) => {
            let p = d.ptr();
            detach(py, move || {
                // SAFETY: `d` (borrowed by the caller) keeps the array alive; only read.
                let buf = unsafe { p.contiguous("normalize_stains")? };
                Ok(buf.to_host_vec()?)
            })
        }
    }
}

/// Macenko stain normalisation (see ``tiledio.normalize_stains``).
#[pyfunction]
#[pyo3(signature = (array, reference=None, *, source_intensity=240.0, alpha=1.0, beta=0.345, reference_stains=None, reference_max_concentrations=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn normalize_stains<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
    reference: Option<&Bound<'py, PyAny>>,
    source_intensity: f64,
    alpha: f64,
    beta: f64,
    reference_stains: Option<Vec<Vec<f64>>>,
    reference_max_concentrations: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut params = macenko_params(
        source_intensity,
        alpha,
        beta,
        reference_stains,
        reference_max_concentrations,
    )?;
    if let Some(r) = reference {
        let rin = input(r, "reference")?;
        image_shape(rin.shape(), true, "reference")?;
        if rin.dtype() != ElementType::U8 {
            return Err(PyTypeError::new_err(
                "reference: Macenko normalisation takes RGB uint8 images",
            ));
        }
        let rb = rgb_bytes_for_fit(py, &rin)?;
        let p = params;
        let fit = detach(py, move || {
            Ok(Context::from_env()?.compute(|| MacenkoNormalizer::fit(&rb, p))?)
        })?;
        params.reference_stains = fit.stains;
        params.reference_max_concentrations = fit.max_concentrations;
    }
    let src = input(array, "normalize_stains")?;
    let ([h, w], _) = image_shape(src.shape(), true, "normalize_stains")?;
    if src.dtype() != ElementType::U8 {
        return Err(PyTypeError::new_err(format!(
            "normalize_stains: Macenko normalisation takes RGB uint8 images, not {}",
            src.dtype()
        )));
    }
    let bytes = rgb_bytes_for_fit(py, &src)?;
    let n = detach(py, move || {
        Ok(Context::from_env()?.compute(|| MacenkoNormalizer::fit(&bytes, params))?)
    })?;
    let len = usize::try_from(h * w * 3).map_err(|_| PyValueError::new_err("the image is too large"))?;
    run_map(
        py,
        src,
        ElementType::U8,
        vec![h, w, 3],
        move |a, b| Ok(n.host(a, b)?),
        move |a, b| Ok(n.device(a, b, len)?),
        "normalize_stains",
    )
}

/// A whole-slide filter tile by tile (see ``tiledio.pipeline``).
#[pyfunction]
#[pyo3(signature = (filter, src, dst, *, tile=Some(4096), device="auto", level=0, chunk=None, codec=None, output="magnitude", budget_mib=2048, reference=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pipeline_run<'py>(
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
) -> PyResult<Bound<'py, PyDict>> {
    use tiledio::pipeline::{Device, Filter, Input as PInput, Mode, Output, PipelineOptions, fit_macenko, run};
    let dev = match parse_run_device(device)? {
        None => Device::Auto,
        Some(crate::device::Device::Cpu) => Device::Cpu,
        Some(crate::device::Device::Cuda) => Device::Gpu,
    };
    let kind = match filter {
        "sobel" => Some(Filter::Sobel(sobel_output(output)?)),
        "rgb2hed" => Some(Filter::Hed),
        "rgb2gray" => Some(Filter::Gray),
        "normalize_stains" => None,
        other => return Err(PyValueError::new_err(format!("unknown filter {other:?}"))),
    };
    let mode = match tile {
        Some(0) => {
            return Err(PyValueError::new_err(
                "tile must be at least 1 (or None for the whole level at once)",
            ));
        }
        Some(t) => Mode::Tiled { tile: t },
        None => Mode::Global,
    };
    if dev == Device::Gpu {
        // the same TiledioError as every other device="cuda" call without a GPU
        crate::device::gpu()?;
    }
    let compression = codec
        .map(tiledio::zarr::Compression::parse)
        .transpose()
        .map_err(Failure::from)?;
    let report = detach(py, move || {
        let input = PInput::open(&src, level)?;
        let filter = match kind {
            Some(f) => f,
            None => {
                let mut params = MacenkoParams::default();
                let fit_tile = match mode {
                    Mode::Tiled { tile } => tile,
                    Mode::Global => 4096,
                };
                if let Some(r) = &reference {
                    let rin = PInput::open(r, 0)?;
                    let fit = fit_macenko(&rin, params, fit_tile, &mut |_, _| {})?;
                    params.reference_stains = fit.stains;
                    params.reference_max_concentrations = fit.max_concentrations;
                }
                Filter::Normalize(fit_macenko(&input, params, fit_tile, &mut |_, _| {})?)
            }
        };
        let mut opts = PipelineOptions::new(filter);
        opts.mode = mode;
        opts.device = dev;
        opts.budget = budget_mib.saturating_mul(1 << 20);
        let out = match Output::from_path(&dst) {
            Output::Zarr { path, .. } => Output::Zarr {
                path,
                chunk,
                compression: compression.unwrap_or(tiledio::zarr::Compression::None),
            },
            tiff => {
                if chunk.is_some() || compression.is_some() {
                    return Err(Failure::argument(format!(
                        "chunk and codec apply to Zarr outputs, not {}",
                        dst.display()
                    )));
                }
                tiff
            }
        };
        Ok(run(&input, &out, &opts, &mut |_, _| {})?)
    })?;
    guarded(|| {
        let d = PyDict::new(py);
        d.set_item("output", crate::arrays::path_str(&report.output))?;
        d.set_item("on_gpu", report.on_gpu)?;
        d.set_item("cpu_reason", report.cpu_reason.clone())?;
        d.set_item("tiles", report.tiles)?;
        d.set_item("seconds", report.seconds)?;
        d.set_item("pyramid_seconds", report.pyramid_seconds)?;
        d.set_item("peak_device_bytes", report.peak_device_bytes)?;
        d.set_item("bytes_read", report.bytes_read)?;
        d.set_item("bytes_written", report.bytes_written)?;
        Ok(d)
    })
}
