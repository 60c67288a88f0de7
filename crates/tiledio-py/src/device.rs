//! GPU arrays: [`CudaArray`] (a tiledio device buffer that leaves through DLPack and
//! `__cuda_array_interface__`), GPU inputs of other libraries (CuPy, PyTorch, JAX, Numba) taken
//! through the same protocols, and the `device=` argument.
//!
//! Every tiledio call that writes GPU memory has finished (its streams synchronised) when it
//! returns, so a [`CudaArray`] never has pending work: any consumer stream may use it at once,
//! and its `__cuda_array_interface__` says `stream: None` (no synchronisation needed).
//! Foreign inputs are taken on the legacy default stream (DLPack `stream=1`; CAI v3 `stream`
//! synchronised) and that stream is waited for before tiledio touches them.

use crate::arrays::{HostIn, host_input, np_dtype};
use crate::errors::{Failure, Res, TiledioError, detach};
use dlpark::ffi::{DLDataType, DLDataTypeCode, DLDevice, DLDeviceType, DLManagedTensor, DLManagedTensorVersioned};
use dlpark::python::{DlpackExporter, DlpackStream, ExportRequest, ImportedDlpack, StreamArg};
use dlpark::{DlpackFlags, Managed, ManagedTensorBase};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::Arc;
use tiledio::io::gpu::{DeviceBuffer, Stream};
use tiledio::io::{DeviceArray, DeviceView, ElementType};

/// Where an array lives, from `device=`: `"cpu"`, `"cuda"` or `"cuda:N"` (N must be tiledio's
/// device, `TILEDIO_DEVICE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Device {
    /// Host memory: NumPy arrays.
    Cpu,
    /// GPU memory: [`CudaArray`].
    Cuda,
}

impl Device {
    /// Parses `device=`.
    pub(crate) fn parse(s: &str) -> PyResult<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            _ => {
                if let Some(n) = s.strip_prefix("cuda:") {
                    let n: i32 = n.parse().map_err(|_| {
                        PyValueError::new_err(format!("device {s:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""))
                    })?;
                    // a GPU is needed to say which one tiledio uses; without one the read says so
                    if let Ok(g) = tiledio::io::gpu::gpu()
                        && g.ordinal() != n
                    {
                        return Err(PyValueError::new_err(format!(
                            "device {s:?}: tiledio uses CUDA device {} in this process (set TILEDIO_DEVICE before the first GPU call to choose another)",
                            g.ordinal()
                        )));
                    }
                    return Ok(Device::Cuda);
                }
                Err(PyValueError::new_err(format!(
                    "device {s:?}: expected \"cpu\", \"cuda\" or \"cuda:N\""
                )))
            }
        }
    }
}

/// Where the kernels of a whole-slide or frame pipeline run: `"auto"`, `"cpu"`, `"cuda"`.
pub(crate) fn parse_run_device(s: &str) -> PyResult<Option<Device>> {
    match s {
        "auto" => Ok(None),
        other => Device::parse(other).map(Some),
    }
}

/// The DLPack data type of an element type.
fn dl_dtype(t: ElementType) -> DLDataType {
    use ElementType as E;
    match t {
        E::U8 => DLDataType::U8,
        E::U16 => DLDataType::U16,
        E::U32 => DLDataType::U32,
        E::U64 => DLDataType::U64,
        E::I8 => DLDataType::I8,
        E::I16 => DLDataType::I16,
        E::I32 => DLDataType::I32,
        E::I64 => DLDataType::I64,
        E::F32 => DLDataType::F32,
        _ => DLDataType::F64,
    }
}

/// The element type of a DLPack data type.
fn element_of_dl(d: DLDataType) -> Option<ElementType> {
    use ElementType as E;
    if d.lanes != 1 {
        return None;
    }
    Some(match (d.code, d.bits) {
        (DLDataTypeCode::UINT, 8) => E::U8,
        (DLDataTypeCode::UINT, 16) => E::U16,
        (DLDataTypeCode::UINT, 32) => E::U32,
        (DLDataTypeCode::UINT, 64) => E::U64,
        (DLDataTypeCode::INT, 8) => E::I8,
        (DLDataTypeCode::INT, 16) => E::I16,
        (DLDataTypeCode::INT, 32) => E::I32,
        (DLDataTypeCode::INT, 64) => E::I64,
        (DLDataTypeCode::FLOAT, 32) => E::F32,
        (DLDataTypeCode::FLOAT, 64) => E::F64,
        _ => return None,
    })
}

/// The `__cuda_array_interface__` type string of an element type (little-endian).
fn typestr(t: ElementType) -> &'static str {
    t.npy_descr()
}

/// The element type of a `__cuda_array_interface__` type string.
fn element_of_typestr(s: &str) -> Option<ElementType> {
    let little = cfg!(target_endian = "little");
    let (order, rest) = s.split_at_checked(1)?;
    let native = match order {
        "|" => true,
        "<" => little,
        ">" => !little,
        "=" => true,
        _ => false,
    };
    if !native {
        return None;
    }
    ElementType::ALL.into_iter().find(|t| &t.npy_descr()[1..] == rest)
}

/// The GPU tiledio uses, or the reason there is none (a [`TiledioError`]).
pub(crate) fn gpu() -> Res<&'static tiledio::io::gpu::Gpu> {
    Ok(tiledio::io::gpu::gpu()?)
}

/// An array in GPU memory, made by tiledio (a read with `device="cuda"`, a kernel on a GPU
/// input). It owns its memory; CuPy, PyTorch, JAX and Numba take it without a copy through
/// DLPack (`cupy.from_dlpack(x)`, `torch.from_dlpack(x)`, `jax.dlpack.from_dlpack(x)`) or
/// `__cuda_array_interface__` (`cupy.asarray(x)`, `numba.cuda.as_cuda_array(x)`); the memory
/// stays alive as long as any of them uses it.
///
/// ``x.get()`` copies it into a new NumPy array. Converting it implicitly
/// (``numpy.asarray(x)``) is refused, as CuPy refuses it.
///
/// The data is complete when tiledio returns it: no stream needs to wait for it.
#[pyclass(module = "tiledio", name = "CudaArray", frozen)]
pub(crate) struct CudaArray {
    array: Arc<DeviceArray>,
    ordinal: i32,
}

impl CudaArray {
    /// Wraps a tiledio device array.
    pub(crate) fn new(array: DeviceArray) -> Res<CudaArray> {
        let ordinal = gpu()?.ordinal();
        Ok(CudaArray {
            array: Arc::new(array),
            ordinal,
        })
    }

    fn dl_device(&self) -> DLDevice {
        DLDevice {
            device_type: DLDeviceType::CUDA,
            device_id: self.ordinal,
        }
    }

    fn managed<M: ManagedTensorBase>(&self) -> PyResult<Managed<M>> {
        let ptr = self.array.buffer().device_ptr();
        let layout = self.array.layout().clone();
        // SAFETY: the pointer is the array's device memory, which the Arc keeps alive.
        unsafe { export_managed(ptr, &layout, self.dl_device(), Arc::clone(&self.array)) }
    }
}

/// A fresh managed DLPack tensor (legacy or versioned) over `ptr` with `layout` on `device`,
/// owning `owner` until the consumer calls its deleter (on any thread).
///
/// # Safety
/// `ptr` must be valid for the layout's span for as long as `owner` is alive.
unsafe fn export_managed<M: ManagedTensorBase, O: dlpark::OpaqueContext>(
    ptr: u64,
    layout: &tiledio::io::ArrayLayout,
    device: DLDevice,
    owner: O,
) -> PyResult<Managed<M>> {
    let shape: Vec<i64> = layout.shape().iter().map(|&n| n as i64).collect();
    let strides: Vec<i64> = layout.strides().to_vec();
    let mut init = dlpark::metadata::Dynamic::new(shape, strides)
        .initialize_as::<M>(owner)
        .map_err(|e| TiledioError::new_err(format!("DLPack export: {e}")))?;
    init.set_data(ptr as *mut std::ffi::c_void)
        .set_dtype(dl_dtype(layout.dtype()))
        .set_device(device);
    // SAFETY: the caller's guarantee for the data; shape and strides are copied into the
    // tensor; writable memory (no READ_ONLY), not a copy made for this export (no IS_COPIED).
    Ok(unsafe { init.finish() })
}

impl DlpackExporter for CudaArray {
    fn device(&self) -> DLDevice {
        self.dl_device()
    }

    fn flags(&self) -> DlpackFlags {
        DlpackFlags::empty()
    }

    fn prepare_export(&self, _py: Python<'_>, request: &ExportRequest<'_>) -> PyResult<()> {
        // tiledio's work on the array finished before it was returned: whatever stream the
        // consumer names (or none), there is nothing to order; the argument is still checked.
        request.cuda_stream()?;
        Ok(())
    }

    fn export_legacy(&self, _py: Python<'_>) -> PyResult<Managed<DLManagedTensor>> {
        self.managed()
    }

    fn export_versioned(&self, _py: Python<'_>) -> PyResult<Managed<DLManagedTensorVersioned>> {
        self.managed()
    }
}

#[pymethods]
impl CudaArray {
    /// The shape, a tuple of ints.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.array.layout().shape())
    }

    /// The element type, a ``numpy.dtype``.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        np_dtype(py, self.array.layout().dtype())
    }

    /// The number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.array.layout().shape().len()
    }

    /// The number of elements.
    #[getter]
    fn size(&self) -> u64 {
        self.array.layout().len()
    }

    /// The bytes of the elements.
    #[getter]
    fn nbytes(&self) -> u64 {
        self.array.layout().nbytes()
    }

    /// ``"cuda:N"``: the CUDA device holding the array.
    #[getter]
    fn device(&self) -> String {
        format!("cuda:{}", self.ordinal)
    }

    /// The CUDA array interface, version 3 (the data is ready: ``stream`` is None).
    #[getter]
    fn __cuda_array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let l = self.array.layout();
        let d = PyDict::new(py);
        d.set_item("shape", PyTuple::new(py, l.shape())?)?;
        d.set_item("typestr", typestr(l.dtype()))?;
        let ptr = if l.is_empty() {
            0
        } else {
            self.array.buffer().device_ptr()
        };
        d.set_item("data", (ptr, false))?;
        d.set_item("strides", py.None())?;
        d.set_item("version", 3)?;
        d.set_item("stream", py.None())?;
        Ok(d)
    }

    /// ``(2, N)``: DLPack's ``kDLCUDA`` and the device number.
    fn __dlpack_device__(&self) -> (u32, i32) {
        (DLDeviceType::CUDA.0, self.ordinal)
    }

    /// Exports the array as a DLPack capsule (the Python array API's protocol): a versioned
    /// capsule (``dltensor_versioned``) when ``max_version`` is ``(1, x)`` or later, the legacy one
    /// otherwise. ``stream`` is the consumer's stream (``-1``, ``1``, ``2`` or a pointer); the
    /// data is already complete, so nothing is queued on it. ``copy=True`` and other devices are
    /// refused (``BufferError``): the export never copies.
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        stream: Option<Bound<'py, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(u32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let request = ExportRequest::parse(stream.as_ref(), max_version, dl_device, copy)?;
        dlpark::python::export_dlpack(self, py, request)
    }

    /// Copies the array into a new NumPy array.
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let l = self.array.layout().clone();
        let (a, bytes) = crate::arrays::new_array(py, l.dtype(), l.shape(), crate::arrays::Init::Zeroed)?;
        let arr = Arc::clone(&self.array);
        detach(py, move || {
            // SAFETY: `a` is alive (held above) and new: nothing else uses it.
            let dst = unsafe { bytes.get_mut() };
            arr.buffer().copy_to_host(dst)?;
            Ok(())
        })?;
        Ok(a)
    }

    /// Refused: a GPU array is not converted to a NumPy array implicitly; call ``.get()``.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__(&self, dtype: Option<Bound<'_, PyAny>>, copy: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let _ = (dtype, copy);
        Err(PyTypeError::new_err(
            "implicit conversion of a tiledio.CudaArray to a NumPy array is not allowed: call .get() to copy it to the host",
        ))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.array
            .layout()
            .shape()
            .first()
            .map(|&n| n as usize)
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d array"))
    }

    fn __repr__(&self) -> String {
        let l = self.array.layout();
        format!(
            "tiledio.CudaArray(shape={}, dtype={}, device='cuda:{}')",
            crate::arrays::tuple_repr(l.shape()),
            l.dtype(),
            self.ordinal
        )
    }
}

/// The consumer stream tiledio asks DLPack producers for: the legacy default stream, which is
/// then waited for on the host before tiledio's own streams touch the memory.
struct LegacyDefault;

// SAFETY: the legacy default stream exists for every CUDA context; `1` is its DLPack sentinel.
unsafe impl DlpackStream for LegacyDefault {
    fn as_python_arg(&self, _py: Python<'_>, _device: DLDevice) -> PyResult<StreamArg> {
        Ok(dlpark::python::consumer::stream::cuda(std::ptr::null_mut()))
    }
}

/// What keeps a foreign GPU array alive while tiledio uses it.
#[allow(dead_code)] // held for its Drop
enum Keep {
    /// The object exposing `__cuda_array_interface__`.
    Object(Py<PyAny>),
    /// The managed DLPack tensor (its deleter runs when this is dropped).
    Dlpack(ImportedDlpack),
    /// One of ours.
    Ours(Arc<DeviceArray>),
}

/// A GPU array of another library (or ours), seen as a device pointer with a layout.
pub(crate) struct DeviceIn {
    _keep: Keep,
    /// The device address of element 0.
    pub(crate) ptr: u64,
    /// The element type.
    pub(crate) dtype: ElementType,
    /// The shape.
    pub(crate) shape: Vec<u64>,
    /// Strides in elements (`None`: C order).
    pub(crate) strides: Option<Vec<i64>>,
    /// Whether the producer says it must not be written.
    pub(crate) read_only: bool,
}

/// The parts of a [`DeviceIn`] the library calls need, usable without the GIL.
#[derive(Clone, Debug)]
pub(crate) struct DevicePtr {
    /// The device address of element 0.
    pub(crate) ptr: u64,
    /// The element type.
    pub(crate) dtype: ElementType,
    /// The shape.
    pub(crate) shape: Vec<u64>,
    /// Strides in elements (`None`: C order).
    pub(crate) strides: Option<Vec<i64>>,
}

impl DevicePtr {
    /// A view for library calls.
    ///
    /// # Safety
    /// The array this came from must be alive (its [`DeviceIn`] held) and not used by anyone
    /// else while the view is.
    pub(crate) unsafe fn view(&self) -> Res<DeviceView<'static>> {
        // SAFETY: the caller's guarantee.
        Ok(unsafe { DeviceView::from_raw(self.ptr, self.dtype, &self.shape, self.strides.as_deref())? })
    }

    /// The memory as a (non-owning) C-order buffer, refusing other layouts.
    ///
    /// # Safety
    /// As [`DevicePtr::view`].
    pub(crate) unsafe fn contiguous(&self, what: &str) -> Res<DeviceBuffer> {
        // SAFETY: the caller's guarantee.
        let v = unsafe { self.view()? };
        if !v.layout().is_contiguous() {
            return Err(Failure::argument(format!(
                "{what}: the GPU array is not C-contiguous (strides {:?}); make it so first (cupy.ascontiguousarray, tensor.contiguous())",
                v.layout().strides()
            )));
        }
        let len = usize::try_from(v.layout().nbytes()).map_err(|_| Failure::argument(format!("{what}: too large")))?;
        // SAFETY: the caller's guarantee; contiguous, so these are exactly its bytes.
        Ok(unsafe { DeviceBuffer::from_raw_parts(self.ptr, len) })
    }
}

impl DeviceIn {
    /// The parts usable without the GIL.
    pub(crate) fn ptr(&self) -> DevicePtr {
        DevicePtr {
            ptr: self.ptr,
            dtype: self.dtype,
            shape: self.shape.clone(),
            strides: self.strides.clone(),
        }
    }
}

/// Waits on the host for a CUDA stream given as the protocols spell it: `1` the legacy default
/// stream, `2` the per-thread default stream, anything larger a `cudaStream_t`.
fn wait_for_stream(s: u64) -> Res<()> {
    let handle = match s {
        0 => {
            return Err(Failure::argument(
                "__cuda_array_interface__: stream 0 is not allowed (ambiguous)",
            ));
        }
        1 => 0,
        other => other,
    };
    // SAFETY: a stream of the current context named by the array's producer, used only for a
    // synchronisation here.
    let stream = unsafe { Stream::from_raw(handle) };
    Ok(stream.synchronize()?)
}

fn device_from_cai(obj: &Bound<'_, PyAny>, cai: &Bound<'_, PyAny>) -> PyResult<DeviceIn> {
    let py = obj.py();
    let what = "__cuda_array_interface__";
    let d = cai
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("{what} is not a dict")))?;
    let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
        d.get_item(k)?
            .ok_or_else(|| PyValueError::new_err(format!("{what} has no {k:?}")))
    };
    let shape: Vec<u64> = get("shape")?.extract()?;
    let ts: String = get("typestr")?.extract()?;
    let dtype = element_of_typestr(&ts).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "GPU arrays of {ts:?} are not supported (uint8..uint64, int8..int64, float32, float64, native order)"
        ))
    })?;
    let (ptr, read_only): (u64, bool) = get("data")?.extract()?;
    if let Some(m) = d.get_item("mask")?
        && !m.is_none()
    {
        return Err(PyValueError::new_err("masked GPU arrays are not supported"));
    }
    let strides = match d.get_item("strides")? {
        Some(s) if !s.is_none() => {
            let b: Vec<i64> = s.extract()?;
            let es = dtype.size() as i64;
            if b.iter().any(|v| v % es != 0) {
                return Err(PyValueError::new_err(format!(
                    "GPU array strides {b:?} (bytes) are not whole elements"
                )));
            }
            Some(b.iter().map(|v| v / es).collect())
        }
        _ => None,
    };
    // the device: where the object says (CuPy, PyTorch, Numba), compared with tiledio's
    if let Ok(dev) = obj.call_method0("__dlpack_device__") {
        let (t, id): (u32, i32) = dev.extract()?;
        check_device(DLDevice {
            device_type: DLDeviceType(t),
            device_id: id,
        })?;
    } else {
        gpu()?;
    }
    if let Some(s) = d.get_item("stream")?
        && !s.is_none()
    {
        let s: u64 = s.extract()?;
        let _ = py;
        wait_for_stream(s)?;
    }
    Ok(DeviceIn {
        _keep: Keep::Object(obj.clone().unbind()),
        ptr,
        dtype,
        shape,
        strides,
        read_only,
    })
}

/// Refuses memory of another device than tiledio's GPU.
fn check_device(dev: DLDevice) -> Res<()> {
    let g = gpu()?;
    let cuda = dev.device_type == DLDeviceType::CUDA || dev.device_type == DLDeviceType::CUDAMANAGED;
    if !cuda || (dev.device_type == DLDeviceType::CUDA && dev.device_id != g.ordinal()) {
        return Err(Failure::argument(format!(
            "the array is on DLPack device ({}, {}); tiledio uses CUDA device {} (TILEDIO_DEVICE)",
            dev.device_type.0,
            dev.device_id,
            g.ordinal()
        )));
    }
    Ok(())
}

fn device_from_dlpack(obj: &Bound<'_, PyAny>) -> PyResult<DeviceIn> {
    // the device first (a GPU must be there, and be tiledio's), then the import
    let request = dlpark::python::ImportRequest::new(obj.as_borrowed())?;
    match request.device() {
        Ok(dev) => check_device(dev)?,
        Err(_) => {
            gpu()?;
        }
    }
    let imported = request.import(Some(&LegacyDefault), None)?;
    let read_only = imported.flags().contains(DlpackFlags::READ_ONLY);
    let (ptr, dtype, shape, strides) = {
        let t = imported
            .validate()
            .map_err(|e| PyValueError::new_err(format!("DLPack tensor: {e}")))?;
        check_device(t.device())?;
        let dtype = element_of_dl(t.dtype()).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "DLPack tensors of type code {} with {} bits are not supported (uint8..uint64, int8..int64, float32, float64)",
                t.dtype().code.0,
                t.dtype().bits
            ))
        })?;
        let shape = t
            .shape()
            .iter()
            .map(|&n| u64::try_from(n).map_err(|_| PyValueError::new_err("DLPack tensor with a negative dimension")))
            .collect::<PyResult<Vec<u64>>>()?;
        let strides = t.strides().map(<[i64]>::to_vec);
        let ptr = (t.data_ptr() as u64)
            .checked_add(t.byte_offset())
            .ok_or_else(|| PyValueError::new_err("DLPack tensor: the data pointer overflows"))?;
        (ptr, dtype, shape, strides)
    };
    // the producer ordered its work before the legacy default stream: wait for that stream
    wait_for_stream(1)?;
    Ok(DeviceIn {
        _keep: Keep::Dlpack(imported),
        ptr,
        dtype,
        shape,
        strides,
        read_only,
    })
}

/// Whether `obj` is a GPU array: one of ours, one with `__cuda_array_interface__`, or one
/// whose `__dlpack_device__` is CUDA.
pub(crate) fn is_gpu_array(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    if obj.cast::<CudaArray>().is_ok() || obj.hasattr("__cuda_array_interface__")? {
        return Ok(true);
    }
    if let Ok(dev) = obj.call_method0("__dlpack_device__")
        && let Ok((t, _)) = dev.extract::<(u32, i32)>()
    {
        return Ok(t == DLDeviceType::CUDA.0 || t == DLDeviceType::CUDAMANAGED.0);
    }
    Ok(false)
}

/// A GPU array of any library as a [`DeviceIn`].
pub(crate) fn device_input(obj: &Bound<'_, PyAny>) -> PyResult<DeviceIn> {
    if let Ok(ours) = obj.cast::<CudaArray>() {
        let a = Arc::clone(&ours.get().array);
        let l = a.layout().clone();
        return Ok(DeviceIn {
            ptr: a.buffer().device_ptr(),
            _keep: Keep::Ours(a),
            dtype: l.dtype(),
            shape: l.shape().to_vec(),
            strides: None,
            read_only: false,
        });
    }
    if let Ok(cai) = obj.getattr("__cuda_array_interface__") {
        return device_from_cai(obj, &cai);
    }
    device_from_dlpack(obj)
}

/// An input array: in host memory (NumPy, or anything NumPy takes) or GPU memory.
pub(crate) enum Input<'py> {
    /// Host memory.
    Host(HostIn<'py>),
    /// GPU memory.
    Device(DeviceIn),
}

impl Input<'_> {
    /// The element type.
    pub(crate) fn dtype(&self) -> ElementType {
        match self {
            Input::Host(h) => h.dtype,
            Input::Device(d) => d.dtype,
        }
    }

    /// The shape.
    pub(crate) fn shape(&self) -> &[u64] {
        match self {
            Input::Host(h) => &h.shape,
            Input::Device(d) => &d.shape,
        }
    }
}

/// `obj` as an input: GPU arrays through `__cuda_array_interface__` or DLPack, CPU DLPack
/// producers through `numpy.from_dlpack` (no copy), anything else through NumPy.
pub(crate) fn input<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Input<'py>> {
    if is_gpu_array(obj)? {
        return Ok(Input::Device(device_input(obj)?));
    }
    let is_numpy = obj.cast::<numpy::PyUntypedArray>().is_ok();
    if !is_numpy && obj.hasattr("__dlpack__")? && !obj.hasattr("__array__")? && !obj.hasattr("__array_interface__")? {
        let a = crate::arrays::numpy(obj.py())?.call_method1("from_dlpack", (obj,))?;
        return Ok(Input::Host(host_input(&a, what)?));
    }
    Ok(Input::Host(host_input(obj, what)?))
}

/// A caller's GPU array to fill (`out=` with `device="cuda"`): checked for type, shape,
/// C order and writability.
pub(crate) fn device_out(obj: &Bound<'_, PyAny>, dtype: ElementType, shape: &[u64]) -> PyResult<DeviceIn> {
    if !is_gpu_array(obj)? {
        return Err(PyTypeError::new_err(
            "out: with device=\"cuda\", expected a GPU array (CuPy, PyTorch, JAX, Numba or tiledio.CudaArray)",
        ));
    }
    let d = device_input(obj)?;
    if d.read_only {
        return Err(PyValueError::new_err("out: the GPU array is read-only"));
    }
    // SAFETY: only the layout is looked at here.
    let v = unsafe { d.ptr().view()? };
    v.layout()
        .expect(dtype, shape)
        .map_err(|e| Failure::argument(format!("out: {e}")))?;
    Ok(d)
}

/// A new [`CudaArray`] as a Python object.
pub(crate) fn wrap(py: Python<'_>, a: DeviceArray) -> PyResult<Bound<'_, PyAny>> {
    Ok(Bound::new(py, CudaArray::new(a)?)?.into_any())
}

/// Where [`read_into`] has a read write: the bytes of a host array, or a GPU array.
pub(crate) enum ReadDst<'a, 'v> {
    /// A NumPy array's bytes (C order).
    Host(&'a mut [u8]),
    /// A C-contiguous GPU array: the caller's `out`, or a new [`CudaArray`].
    Device(&'a mut DeviceView<'v>),
}

/// A read of `dtype` and `shape` on `device`, into `out` when given (checked), else into a new
/// NumPy array or [`CudaArray`], which is returned (`out` itself when given). `read` runs
/// without the GIL and is skipped for an empty shape.
pub(crate) fn read_into<'py>(
    py: Python<'py>,
    device: Device,
    out: Option<&Bound<'py, PyAny>>,
    dtype: ElementType,
    shape: &[u64],
    read: impl FnOnce(ReadDst<'_, '_>) -> Res<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    let empty = shape.contains(&0);
    match (device, out) {
        (Device::Cpu, out) => {
            let (a, bytes) = crate::arrays::out_or_new(py, out, dtype, shape)?;
            if !empty {
                // SAFETY: `a` is held by this frame and written only here.
                detach(py, move || read(ReadDst::Host(unsafe { bytes.get_mut() })))?;
            }
            Ok(a)
        }
        (Device::Cuda, Some(o)) => {
            let d = device_out(o, dtype, shape)?;
            let p = d.ptr();
            if !empty {
                // SAFETY: `d` keeps the caller's array alive for this call.
                detach(py, move || read(ReadDst::Device(&mut unsafe { p.view()? })))?;
            }
            drop(d);
            Ok(o.clone())
        }
        (Device::Cuda, None) => {
            let shape = shape.to_vec();
            let a = detach(py, move || {
                let mut a = DeviceArray::zeros(dtype, &shape)?;
                if !empty {
                    read(ReadDst::Device(&mut a.view_mut()))?;
                }
                Ok(a)
            })?;
            wrap(py, a)
        }
    }
}

/// A host array owned by tiledio exported through the same DLPack code as [`CudaArray`]
/// (`kDLCPU`): what the tests use to check the exports (shape, strides, type, legacy and
/// versioned capsules, ownership) on machines without a GPU. Not public API.
#[pyclass(module = "tiledio._tiledio", name = "_HostDlpack", frozen)]
pub(crate) struct HostDlpack {
    array: Arc<tiledio::io::HostArray>,
}

impl DlpackExporter for HostDlpack {
    fn device(&self) -> DLDevice {
        DLDevice {
            device_type: DLDeviceType::CPU,
            device_id: 0,
        }
    }

    fn flags(&self) -> DlpackFlags {
        DlpackFlags::empty()
    }

    fn prepare_export(&self, _py: Python<'_>, request: &ExportRequest<'_>) -> PyResult<()> {
        if request.stream().is_some_and(|s| !s.is_none()) {
            return Err(PyValueError::new_err("a CPU array takes no stream"));
        }
        Ok(())
    }

    fn export_legacy(&self, _py: Python<'_>) -> PyResult<Managed<DLManagedTensor>> {
        self.managed()
    }

    fn export_versioned(&self, _py: Python<'_>) -> PyResult<Managed<DLManagedTensorVersioned>> {
        self.managed()
    }
}

impl HostDlpack {
    fn managed<M: ManagedTensorBase>(&self) -> PyResult<Managed<M>> {
        let ptr = self.array.bytes().as_ptr() as u64;
        // SAFETY: the host bytes live as long as the Arc the tensor owns.
        unsafe { export_managed(ptr, self.array.layout(), self.device(), Arc::clone(&self.array)) }
    }
}

#[pymethods]
impl HostDlpack {
    fn __dlpack_device__(&self) -> (u32, i32) {
        (DLDeviceType::CPU.0, 0)
    }

    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        stream: Option<Bound<'py, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(u32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let request = ExportRequest::parse(stream.as_ref(), max_version, dl_device, copy)?;
        dlpark::python::export_dlpack(self, py, request)
    }
}

/// Copies a host array into tiledio-owned memory exported as [`HostDlpack`] (tests only).
#[pyfunction]
pub(crate) fn _host_dlpack(array: &Bound<'_, PyAny>) -> PyResult<HostDlpack> {
    let h = host_input(array, "array")?;
    // SAFETY: `h` holds the array; only read.
    let bytes = unsafe { h.bytes.get() }.to_vec();
    let a = tiledio::io::HostArray::from_bytes(h.dtype, &h.shape, bytes).map_err(Failure::from)?;
    Ok(HostDlpack { array: Arc::new(a) })
}
