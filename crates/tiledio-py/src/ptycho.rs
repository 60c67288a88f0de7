//! Detector frame stacks (`tiledio.ptycho.FrameStore`) and ptychography preprocessing
//! (`tiledio.ptycho.preprocess`).

use crate::arrays::{array_from_vec, np_dtype};
use crate::device::{Device, Input, ReadDst, input, parse_run_device, read_into, wrap};
use crate::errors::{Failure, Res, detach, guarded};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PySlice, PyTuple};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tiledio::io::{DeviceArray, ElementType, Target};
use tiledio::ptycho::{
    Center, ClampOrder, DeviceStack, FrameStore, Frames, HostStack, Orientation, Output, OutputType, PreprocessOptions,
    RawLayout, Reduce, StoreKind, dark_frame, open_store, preprocess,
};

/// How raw stacks lie in their files, from the keyword arguments (`raw_dtype` defaults to
/// uint16).
fn raw_layout(
    py: Python<'_>,
    raw_shape: Option<(usize, usize)>,
    raw_dtype: Option<&Bound<'_, PyAny>>,
    raw_header: u64,
    raw_stride: Option<u64>,
    raw_frames: Option<u64>,
) -> PyResult<Option<RawLayout>> {
    let Some(shape) = raw_shape else {
        return Ok(None);
    };
    let t = match raw_dtype {
        Some(d) => crate::arrays::element_type_from(py, d)?,
        None => ElementType::U16,
    };
    let mut l = RawLayout::new(raw_header, shape, t);
    l.stride = raw_stride;
    l.frames = raw_frames;
    Ok(Some(l))
}

/// Opens a store spelled as on the command line; a raw file without its layout is a
/// `ValueError` naming the keyword to give.
fn open_spec(py: Python<'_>, spec: String, raw: Option<RawLayout>) -> PyResult<Arc<dyn FrameStore>> {
    if raw.is_none() && tiledio::ptycho::store_kind(&spec) == StoreKind::Raw {
        return Err(PyValueError::new_err(format!(
            "{spec}: not FILE.h5:/dataset, .h5, .npy or a Zarr folder; a raw stack needs raw_shape=(H, W) (and raw_dtype, raw_header)"
        )));
    }
    let s = detach(py, move || Ok(open_store(&spec, raw.as_ref())?))?;
    Ok(Arc::from(s))
}

/// A stack of detector frames ``(N, H, W)`` in a file, read by frame: ``FILE.h5:/entry/data/data``
/// (an HDF5 dataset), ``SCAN_master.h5`` (a DECTRIS Eiger master), ``x.npy``, ``x.zarr`` (a 3-D
/// Zarr array), or a raw file described by ``raw_shape=(H, W)`` (and ``raw_dtype``,
/// ``raw_header``, ``raw_stride``, ``raw_frames``) — the same spellings as
/// ``tiledio ptycho preprocess``.
///
/// >>> store = tiledio.ptycho.FrameStore("scan.npy")
/// >>> store.shape
/// (200, 512, 512)
/// >>> frames = store[10:20]          # (10, 512, 512) NumPy array
#[pyclass(module = "tiledio.ptycho", name = "FrameStore", frozen)]
pub(crate) struct PyFrameStore {
    store: Arc<dyn FrameStore>,
}

impl PyFrameStore {
    fn check_frames(&self, start: u64, stop: Option<u64>) -> PyResult<Range<u64>> {
        let n = self.store.frames();
        let stop = stop.unwrap_or(n);
        if start > stop || stop > n {
            return Err(PyIndexError::new_err(format!(
                "{}: frames {start}..{stop} outside 0..{n}",
                self.store.name()
            )));
        }
        Ok(start..stop)
    }

    fn read_range<'py>(
        &self,
        py: Python<'py>,
        frames: Range<u64>,
        rows: Option<Range<usize>>,
        device: Device,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (h, w) = self.store.shape();
        let r = rows.clone().unwrap_or(0..h);
        if r.start > r.end || r.end > h {
            return Err(PyIndexError::new_err(format!(
                "{}: rows {}..{} outside 0..{h}",
                self.store.name(),
                r.start,
                r.end
            )));
        }
        let shape = [frames.end - frames.start, r.len() as u64, w as u64];
        let st = Arc::clone(&self.store);
        read_into(py, device, out, self.store.dtype(), &shape, move |dst| {
            let target = match dst {
                ReadDst::Host(b) => Target::Host(b),
                ReadDst::Device(v) => Target::Device(v.buffer_mut()),
            };
            Ok(st.read_frames(frames, rows, target)?)
        })
    }
}

#[pymethods]
impl PyFrameStore {
    /// Opens a store (see the class documentation for the spellings).
    #[new]
    #[pyo3(signature = (spec, *, raw_shape=None, raw_dtype=None, raw_header=0, raw_stride=None, raw_frames=None))]
    fn new(
        py: Python<'_>,
        spec: PathBuf,
        raw_shape: Option<(usize, usize)>,
        raw_dtype: Option<&Bound<'_, PyAny>>,
        raw_header: u64,
        raw_stride: Option<u64>,
        raw_frames: Option<u64>,
    ) -> PyResult<Self> {
        let raw = raw_layout(py, raw_shape, raw_dtype, raw_header, raw_stride, raw_frames)?;
        let spec = spec
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| PyValueError::new_err("the store's name is not valid UTF-8"))?;
        Ok(PyFrameStore {
            store: open_spec(py, spec, raw)?,
        })
    }

    /// The store's name (a path, ``FILE.h5:/entry/data/data``).
    #[getter]
    fn name(&self) -> String {
        self.store.name()
    }

    /// The number of frames ``N``.
    #[getter]
    fn frames(&self) -> u64 {
        self.store.frames()
    }

    /// ``(H, W)``.
    #[getter]
    fn frame_shape(&self) -> (usize, usize) {
        self.store.shape()
    }

    /// ``(N, H, W)``.
    #[getter]
    fn shape(&self) -> (u64, usize, usize) {
        let (h, w) = self.store.shape();
        (self.store.frames(), h, w)
    }

    /// The element type (a ``numpy.dtype``).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        np_dtype(py, self.store.dtype())
    }

    fn __len__(&self) -> usize {
        self.store.frames() as usize
    }

    /// Frames ``start:stop`` (rows ``rows`` of each, a ``(first, end)`` pair, or all) as an
    /// ``(n, rows, W)`` array: NumPy with ``device="cpu"``, a :class:`tiledio.CudaArray` with
    /// ``device="cuda"``, or ``out`` filled.
    #[pyo3(signature = (start=0, stop=None, *, rows=None, device="cpu", out=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        start: u64,
        stop: Option<u64>,
        rows: Option<(usize, usize)>,
        device: &str,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = self.check_frames(start, stop)?;
        let dev = Device::parse(device)?;
        self.read_range(py, f, rows.map(|(a, b)| a..b), dev, out)
    }

    /// ``store[i]`` is frame ``i`` ``(H, W)``; ``store[a:b:s]`` frames as ``(n, H, W)`` (NumPy).
    fn __getitem__<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let n = self.store.frames();
        if let Ok(s) = key.cast::<PySlice>() {
            let ind = s.indices(isize::try_from(n).map_err(|_| PyIndexError::new_err("too many frames"))?)?;
            let (start, step, count) = (ind.start as i64, ind.step as i64, ind.slicelength as u64);
            if step == 1 || count <= 1 {
                let lo = if count == 0 { 0 } else { start as u64 };
                return self.read_range(py, lo..lo + count, None, Device::Cpu, None);
            }
            let (lo, hi) = if step > 0 {
                (start as u64, start as u64 + (count - 1) * step as u64 + 1)
            } else {
                ((start + (count as i64 - 1) * step) as u64, start as u64 + 1)
            };
            let boxed = self.read_range(py, lo..hi, None, Device::Cpu, None)?;
            let first = if step > 0 { 0 } else { hi - 1 - lo };
            let sl = py
                .import("builtins")?
                .getattr("slice")?
                .call1((first, py.None(), step))?;
            let picked = boxed.get_item(sl)?;
            // a copy (C order), so the result does not keep the whole box alive
            return picked.call_method0("copy");
        }
        let i: i64 = key
            .extract()
            .map_err(|_| PyTypeError::new_err("frame stores are indexed by an int or a slice"))?;
        let j = if i < 0 { i + n as i64 } else { i };
        if j < 0 || j as u64 >= n {
            return Err(PyIndexError::new_err(format!("frame {i} outside 0..{n}")));
        }
        let a = self.read_range(py, j as u64..j as u64 + 1, None, Device::Cpu, None)?;
        a.get_item(0)
    }

    /// An iterator of ``(n, H, W)`` batches of ``batch_size`` frames (the last may be
    /// smaller), each read when it is asked for, on ``device``.
    #[pyo3(signature = (batch_size=64, *, device="cpu", rows=None))]
    fn batches(&self, batch_size: u64, device: &str, rows: Option<(usize, usize)>) -> PyResult<FrameBatches> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        Ok(FrameBatches {
            store: Arc::clone(&self.store),
            batch: batch_size,
            device: Device::parse(device)?,
            rows: rows.map(|(a, b)| a..b),
            next: Mutex::new(0),
        })
    }

    /// The mean of frames ``start:stop`` as a ``float32`` ``(H, W)`` array: a dark (or flat)
    /// map.
    #[pyo3(signature = (start=0, stop=None))]
    fn mean<'py>(&self, py: Python<'py>, start: u64, stop: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
        let f = self.check_frames(start, stop)?;
        let st = Arc::clone(&self.store);
        let v = detach(py, move || Ok(dark_frame(&*st, f)?))?;
        let (h, w) = self.store.shape();
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
        array_from_vec(py, ElementType::F32, &[h as u64, w as u64], bytes)
    }

    fn __repr__(&self) -> String {
        let (h, w) = self.store.shape();
        format!(
            "tiledio.ptycho.FrameStore({:?}, frames={}, frame_shape=({h}, {w}), dtype={})",
            self.store.name(),
            self.store.frames(),
            self.store.dtype()
        )
    }
}

/// The iterator of :meth:`FrameStore.batches`.
#[pyclass(module = "tiledio.ptycho", name = "FrameBatches", frozen)]
pub(crate) struct FrameBatches {
    store: Arc<dyn FrameStore>,
    batch: u64,
    device: Device,
    rows: Option<Range<usize>>,
    next: Mutex<u64>,
}

impl FrameBatches {
    /// The frames of the next batch (`None` after the last), taken from the cursor.
    fn claim(&self) -> PyResult<Option<Range<u64>>> {
        let mut g = self
            .next
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("this batch iterator is in use by another thread"))?;
        let n = self.store.frames();
        if *g >= n {
            return Ok(None);
        }
        let e = (*g + self.batch).min(n);
        let f = *g..e;
        *g = e;
        Ok(Some(f))
    }
}

#[pymethods]
impl FrameBatches {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(f) = self.claim()? else {
            return Ok(None);
        };
        let ps = PyFrameStore {
            store: Arc::clone(&self.store),
        };
        ps.read_range(py, f, self.rows.clone(), self.device, None).map(Some)
    }

    fn __len__(&self) -> usize {
        self.store.frames().div_ceil(self.batch) as usize
    }
}

/// A stack given to `preprocess` (or a calibration map): a store, or an array borrowed.
enum StackArg<'py> {
    Store(Arc<dyn FrameStore>),
    Array(Input<'py>),
}

fn stack_arg<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    raw: &Option<RawLayout>,
    what: &str,
) -> PyResult<StackArg<'py>> {
    if let Ok(s) = obj.cast::<PyFrameStore>() {
        return Ok(StackArg::Store(Arc::clone(&s.get().store)));
    }
    if let Ok(p) = obj.extract::<PathBuf>()
        && !obj.hasattr("__array_interface__")?
        && !crate::device::is_gpu_array(obj)?
    {
        let spec = p
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| PyValueError::new_err(format!("{what}: the store's name is not valid UTF-8")))?;
        return Ok(StackArg::Store(open_spec(py, spec, raw.clone())?));
    }
    let a = input(obj, what)?;
    match a.shape().len() {
        2 | 3 => Ok(StackArg::Array(a)),
        _ => Err(PyValueError::new_err(format!(
            "{what}: an array of shape {:?}; expected (N, H, W) frames or one (H, W) frame",
            a.shape()
        ))),
    }
}

/// `(frames, (H, W))` of an array stack.
fn array_dims(shape: &[u64]) -> Res<(u64, (usize, usize))> {
    let dim = |v: u64| usize::try_from(v).map_err(|_| Failure::argument("a frame dimension is too large"));
    match *shape {
        [n, h, w] => Ok((n, (dim(h)?, dim(w)?))),
        [h, w] => Ok((1, (dim(h)?, dim(w)?))),
        _ => Err(Failure::argument(format!("frames of shape {shape:?}"))),
    }
}

/// Runs `f` with the stack as a [`FrameStore`] (an array borrowed as one), without the GIL.
fn with_store<T: Send>(
    py: Python<'_>,
    arg: &StackArg<'_>,
    name: &str,
    f: impl FnOnce(&dyn FrameStore) -> Res<T> + Send,
) -> PyResult<T> {
    match arg {
        StackArg::Store(s) => {
            let s = Arc::clone(s);
            detach(py, move || f(&*s))
        }
        StackArg::Array(Input::Host(h)) => {
            let (n, shape) = array_dims(&h.shape)?;
            let (b, t) = (h.bytes, h.dtype);
            let name = name.to_string();
            detach(py, move || {
                // SAFETY: the array is held by the caller's frame; only read.
                let store = HostStack::new(unsafe { b.get() }, n, shape, t, name)?;
                f(&store)
            })
        }
        StackArg::Array(Input::Device(d)) => {
            let (n, shape) = array_dims(&d.shape)?;
            let p = d.ptr();
            let name = name.to_string();
            detach(py, move || {
                // SAFETY: the array is held by the caller's frame; only read.
                let buf = unsafe { p.contiguous(&name)? };
                let store = DeviceStack::new(&buf, n, shape, p.dtype, name)?;
                f(&store)
            })
        }
    }
}

/// The mean frame of a calibration argument, checked against the stack's frame shape.
fn calibration(
    py: Python<'_>,
    obj: Option<&Bound<'_, PyAny>>,
    raw: &Option<RawLayout>,
    shape: (usize, usize),
    what: &str,
) -> PyResult<Option<Vec<f32>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let arg = stack_arg(py, obj, raw, what)?;
    let what_s = what.to_string();
    let v = with_store(py, &arg, what, move |s| {
        let (h, w) = s.shape();
        if (h, w) != shape {
            return Err(Failure::argument(format!(
                "{what_s} {}: frames of {h}x{w}, the stack's are {}x{}: shapes differ",
                s.name(),
                shape.0,
                shape.1
            )));
        }
        if s.frames() == 0 {
            return Err(Failure::argument(format!("{what_s} {}: no frames", s.name())));
        }
        Ok(dark_frame(s, 0..s.frames())?)
    })?;
    Ok(Some(v))
}

fn parse_center(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Center> {
    let Some(c) = obj.filter(|o| !o.is_none()) else {
        return Ok(Center::Frame);
    };
    if let Ok(s) = c.extract::<String>() {
        return match s.as_str() {
            "frame" => Ok(Center::Frame),
            "auto" => Ok(Center::Auto(32)),
            _ => match s.strip_prefix("auto:").map(str::parse::<u64>) {
                Some(Ok(n)) if n > 0 => Ok(Center::Auto(n)),
                _ => Err(PyValueError::new_err(format!(
                    "center {s:?}: expected (y, x), \"frame\", \"auto\" or \"auto:N\""
                ))),
            },
        };
    }
    let (y, x) = crate::arrays::pair::<i64>(c, "center")?;
    Ok(Center::At(y, x))
}

/// Ptychography preprocessing (see ``tiledio.ptycho.preprocess``).
#[pyfunction]
#[pyo3(signature = (stack, crop, bin, *, dark=None, flat=None, mask=None, center=None, reduce="sum", clamp="pixel", orientation=0, dtype=None, batch=64, device="cpu", out=None, raw_shape=None, raw_dtype=None, raw_header=0, raw_stride=None, raw_frames=None, return_info=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn ptycho_preprocess<'py>(
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
    let raw = raw_layout(py, raw_shape, raw_dtype, raw_header, raw_stride, raw_frames)?;
    if crop == 0 || bin == 0 || batch == 0 {
        return Err(PyValueError::new_err("crop, bin and batch must be positive"));
    }
    if !crop.is_multiple_of(bin) {
        return Err(PyValueError::new_err(format!(
            "crop {crop} is not divisible by bin {bin}"
        )));
    }
    let s = stack_arg(py, stack, &raw, "stack")?;
    let shape = with_store(py, &s, "stack", |st| Ok(st.shape()))?;
    let mut o = PreprocessOptions::new(crop, bin);
    o.center = parse_center(center)?;
    o.reduce = match reduce {
        "sum" => Reduce::Sum,
        "mean" => Reduce::Mean,
        _ => {
            return Err(PyValueError::new_err(format!(
                "reduce {reduce:?}: expected \"sum\" or \"mean\""
            )));
        }
    };
    o.clamp = match clamp {
        "pixel" | "clamp_then_bin" => ClampOrder::ClampThenBin,
        "bin" | "bin_then_clamp" => ClampOrder::BinThenClamp,
        _ => {
            return Err(PyValueError::new_err(format!(
                "clamp {clamp:?}: expected \"pixel\" (clamp each pixel, then bin) or \"bin\" (bin, then clamp)"
            )));
        }
    };
    o.orientation = Orientation::from_bits(orientation)
        .ok_or_else(|| PyValueError::new_err(format!("orientation {orientation}: expected 0 to 7")))?;
    let dtype = dtype.map(|d| crate::arrays::element_type_from(py, d)).transpose()?;
    o.output = match dtype.unwrap_or(ElementType::F32) {
        ElementType::F32 => OutputType::F32,
        ElementType::U32 => OutputType::U32,
        ElementType::U16 => OutputType::U16,
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype {other}: the output is float32, uint32 or uint16"
            )));
        }
    };
    o.batch = batch;
    let run_dev = parse_run_device(device)?;
    o.device = match run_dev {
        None => tiledio::ptycho::Device::Auto,
        Some(Device::Cpu) => tiledio::ptycho::Device::Cpu,
        Some(Device::Cuda) => tiledio::ptycho::Device::Gpu,
    };
    let dark_v = calibration(py, dark, &raw, shape, "dark")?;
    o.flat = calibration(py, flat, &raw, shape, "flat")?;
    o.mask = calibration(py, mask, &raw, shape, "mask")?.map(|m| m.iter().map(|&v| u8::from(v != 0.0)).collect());
    let output = match (&out, run_dev) {
        (Some(p), _) => Output::Zarr(p.clone()),
        (None, Some(Device::Cuda)) => Output::Device,
        (None, _) => Output::Host,
    };
    let r = with_store(py, &s, "stack", move |st| {
        Ok(preprocess(st, dark_v.as_deref(), &o, output, &mut |_, _| {})?)
    })?;
    drop(s);
    guarded(|| {
        let shape = [r.frames, r.side as u64, r.side as u64];
        let t = r.dtype.element_type();
        let data = match r.data {
            Frames::Host(v) => array_from_vec(py, t, &shape, v)?,
            Frames::Device(b) => wrap(py, DeviceArray::from_buffer(b, t, &shape).map_err(Failure::from)?)?,
            Frames::Zarr(p) => crate::arrays::path_str(&p).into_pyobject(py)?.into_any(),
        };
        if !return_info {
            return Ok(data);
        }
        let d = PyDict::new(py);
        d.set_item("center", r.center)?;
        d.set_item("saturated", r.saturated)?;
        d.set_item("gpu", r.gpu)?;
        d.set_item("frames", r.frames)?;
        d.set_item("side", r.side)?;
        Ok(PyTuple::new(py, [data, d.into_any()])?.into_any())
    })
}
