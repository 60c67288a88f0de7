//! NumPy arrays on the Rust side: element types, new arrays that reads fill in place, and a
//! caller's array (`out=`, inputs) seen as bytes.

use crate::errors::{Failure, Res};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tiledio::io::ElementType;

/// Bytes of a NumPy array, usable without the GIL. The array they belong to is kept alive by
/// whoever made this (a `Bound` held across the call).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawBytes {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the bytes belong to an array kept alive by the caller for the duration of the call;
// tiledio writes them from its own threads as a C extension does after releasing the GIL.
unsafe impl Send for RawBytes {}
// SAFETY: as above.
unsafe impl Sync for RawBytes {}

impl RawBytes {
    /// The bytes, for reading.
    ///
    /// # Safety
    /// The array must be alive and not resized while the slice is used.
    pub(crate) unsafe fn get<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the caller's guarantee; ptr..ptr+len is the array's data.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The bytes, for writing.
    ///
    /// # Safety
    /// As [`RawBytes::get`], and nothing else may use the bytes meanwhile.
    pub(crate) unsafe fn get_mut<'a>(self) -> &'a mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: the caller's guarantee.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// The NumPy module.
pub(crate) fn numpy(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("numpy")
}

/// The NumPy dtype of an element type.
pub(crate) fn np_dtype<'py>(py: Python<'py>, t: ElementType) -> PyResult<Bound<'py, PyAny>> {
    numpy(py)?.getattr("dtype")?.call1((t.name(),))
}

/// The element type of a NumPy dtype (native byte order), or `None` for one tiledio does not
/// hold (bool, float16, complex, strings, ...).
pub(crate) fn element_type_of(d: &Bound<'_, PyArrayDescr>) -> Option<ElementType> {
    if d.is_native_byteorder() == Some(false) || d.has_fields() || d.has_subarray() {
        return None;
    }
    Some(match (d.kind(), d.itemsize()) {
        (b'u', 1) => ElementType::U8,
        (b'u', 2) => ElementType::U16,
        (b'u', 4) => ElementType::U32,
        (b'u', 8) => ElementType::U64,
        (b'i', 1) => ElementType::I8,
        (b'i', 2) => ElementType::I16,
        (b'i', 4) => ElementType::I32,
        (b'i', 8) => ElementType::I64,
        (b'f', 4) => ElementType::F32,
        (b'f', 8) => ElementType::F64,
        _ => return None,
    })
}

/// An element type from a dtype-like (`"uint16"`, `numpy.float32`, a dtype).
pub(crate) fn element_type_from(py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<ElementType> {
    let d = numpy(py)?.getattr("dtype")?.call1((dtype,))?;
    let d = d.cast_into::<PyArrayDescr>()?;
    element_type_of(&d).ok_or_else(|| {
        PyValueError::new_err(format!(
            "dtype {} is not one tiledio holds (uint8..uint64, int8..int64, float32, float64)",
            d.str().map(|s| s.to_string()).unwrap_or_default()
        ))
    })
}

fn flags(a: &Bound<'_, PyUntypedArray>) -> i32 {
    // SAFETY: a live NumPy array object.
    unsafe { (*a.as_array_ptr()).fields.flags }
}

fn data_ptr(a: &Bound<'_, PyUntypedArray>) -> *mut u8 {
    // SAFETY: a live NumPy array object.
    unsafe { (*a.as_array_ptr()).fields.data.cast::<u8>() }
}

fn shape_u64(a: &Bound<'_, PyUntypedArray>) -> Vec<u64> {
    a.shape().iter().map(|&n| n as u64).collect()
}

/// A C-contiguous host array of a tiledio element type: an input.
#[derive(Debug)]
pub(crate) struct HostIn<'py> {
    /// The array (kept alive while the bytes are used).
    pub(crate) _array: Bound<'py, PyUntypedArray>,
    /// Its element type.
    pub(crate) dtype: ElementType,
    /// Its shape.
    pub(crate) shape: Vec<u64>,
    /// Its bytes.
    pub(crate) bytes: RawBytes,
}

/// `obj` (a NumPy array or anything `numpy.asarray` takes) as a C-contiguous, aligned,
/// native-order array (a copy only when it is not one already).
pub(crate) fn host_input<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<HostIn<'py>> {
    let py = obj.py();
    let np = numpy(py)?;
    let mut a = np.call_method1("ascontiguousarray", (obj,))?;
    let descr = a.getattr("dtype")?.cast_into::<PyArrayDescr>()?;
    if descr.is_native_byteorder() == Some(false) {
        a = a.call_method1("astype", (descr.call_method1("newbyteorder", ("=",))?,))?;
    }
    let a = a.cast_into::<PyUntypedArray>()?;
    let dtype = element_type_of(&a.dtype()).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{what}: arrays of {} are not supported (uint8..uint64, int8..int64, float32, float64)",
            a.dtype().str().map(|s| s.to_string()).unwrap_or_default()
        ))
    })?;
    if flags(&a) & numpy::npyffi::NPY_ARRAY_ALIGNED == 0 {
        let c = np.call_method1("array", (&a,))?.cast_into::<PyUntypedArray>()?;
        return host_input(c.as_any(), what);
    }
    let shape = shape_u64(&a);
    let bytes = RawBytes {
        ptr: data_ptr(&a),
        len: a.len() * dtype.size(),
    };
    Ok(HostIn {
        _array: a,
        dtype,
        shape,
        bytes,
    })
}

/// A caller's array to fill (`out=`): it must be a writeable, aligned, C-contiguous NumPy array
/// of exactly `dtype` and `shape`; returns its bytes.
pub(crate) fn host_out(out: &Bound<'_, PyAny>, dtype: ElementType, shape: &[u64]) -> PyResult<RawBytes> {
    let a = out.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "out: expected a NumPy array (or a CUDA array with device=\"cuda\"), got {}",
            out.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    let have = element_type_of(&a.dtype());
    let have_shape = shape_u64(a);
    if have != Some(dtype) || have_shape != shape {
        return Err(PyValueError::new_err(format!(
            "out: array of {} {:?} given where {} {:?} is needed",
            a.dtype().str().map(|s| s.to_string()).unwrap_or_default(),
            have_shape,
            dtype,
            shape
        )));
    }
    let f = flags(a);
    if f & numpy::npyffi::NPY_ARRAY_WRITEABLE == 0 {
        return Err(PyValueError::new_err("out: the array is read-only"));
    }
    if f & numpy::npyffi::NPY_ARRAY_C_CONTIGUOUS == 0 || f & numpy::npyffi::NPY_ARRAY_ALIGNED == 0 {
        return Err(PyValueError::new_err(
            "out: the array is not C-contiguous and aligned; tiledio writes C-order arrays",
        ));
    }
    Ok(RawBytes {
        ptr: data_ptr(a),
        len: a.len() * dtype.size(),
    })
}

/// Checks a buffer size against the memory budget (`TILEDIO_MAX_MEMORY`) before NumPy
/// allocates it, so an oversized request is a clear error, not an abort.
fn check_budget(dtype: ElementType, shape: &[u64]) -> Res<usize> {
    let n = shape
        .iter()
        .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d))
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| Failure::argument(format!("an array of {dtype} {shape:?} is too large")))?;
    tiledio::io::check_memory(n as u64, &format!("a {dtype} array of shape {shape:?}"))?;
    Ok(n)
}

/// How the bytes of a [`new_array`] start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Init {
    /// Zero (`numpy.zeros`).
    Zeroed,
    /// Not set (`numpy.empty`), for a read that writes every byte (a slide's regions: 0 outside
    /// the image): no zeroing pass over memory the read overwrites. If the read fails the array
    /// is dropped unseen.
    Unset,
}

/// A new NumPy array of `dtype` and `shape` and its bytes (filled by the caller).
pub(crate) fn new_array<'py>(
    py: Python<'py>,
    dtype: ElementType,
    shape: &[u64],
    init: Init,
) -> PyResult<(Bound<'py, PyAny>, RawBytes)> {
    let len = check_budget(dtype, shape)?;
    let dims = PyTuple::new(py, shape)?;
    let how = match init {
        Init::Zeroed => "zeros",
        Init::Unset => "empty",
    };
    let a = numpy(py)?.call_method1(how, (dims, dtype.name()))?;
    let u = a.cast::<PyUntypedArray>()?;
    let bytes = RawBytes { ptr: data_ptr(u), len };
    Ok((a, bytes))
}

/// [`new_array`] with its bytes [`Init::Unset`].
pub(crate) fn new_array_for_overwrite<'py>(
    py: Python<'py>,
    dtype: ElementType,
    shape: &[u64],
) -> PyResult<(Bound<'py, PyAny>, RawBytes)> {
    new_array(py, dtype, shape, Init::Unset)
}

/// `out` when given (checked), else a new array: what a read fills.
pub(crate) fn out_or_new<'py>(
    py: Python<'py>,
    out: Option<&Bound<'py, PyAny>>,
    dtype: ElementType,
    shape: &[u64],
) -> PyResult<(Bound<'py, PyAny>, RawBytes)> {
    match out {
        Some(o) => Ok((o.clone(), host_out(o, dtype, shape)?)),
        None => new_array(py, dtype, shape, Init::Zeroed),
    }
}

/// A NumPy array of `dtype` and `shape` over `bytes` (native order), without a copy.
pub(crate) fn array_from_vec<'py>(
    py: Python<'py>,
    dtype: ElementType,
    shape: &[u64],
    bytes: Vec<u8>,
) -> PyResult<Bound<'py, PyAny>> {
    let want = shape.iter().try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d));
    if want != Some(bytes.len() as u64) {
        return Err(crate::errors::TiledioError::new_err(format!(
            "internal error (a bug in tiledio): {} bytes for a {dtype} array of shape {shape:?}",
            bytes.len()
        )));
    }
    let aligned = (bytes.as_ptr() as usize).is_multiple_of(dtype.size());
    let flat = numpy::PyArray1::<u8>::from_vec(py, bytes).into_any();
    let a = flat
        .call_method1("view", (dtype.name(),))?
        .call_method1("reshape", (PyTuple::new(py, shape)?,))?;
    if aligned { Ok(a) } else { a.call_method0("copy") }
}

/// A pair of integers from any 2-item iterable (a tuple, a list, a NumPy row).
pub(crate) fn pair<T: for<'a> FromPyObject<'a, 'a> + Copy>(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(T, T)> {
    let v: Vec<T> = obj
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("{what}: expected a pair of numbers")))?
        .map(|x| x.and_then(|x| x.extract::<T>().map_err(Into::into)))
        .collect::<PyResult<_>>()
        .map_err(|e| PyTypeError::new_err(format!("{what}: expected a pair of integers ({e})")))?;
    match v[..] {
        [a, b] => Ok((a, b)),
        _ => Err(PyValueError::new_err(format!(
            "{what}: expected a pair of numbers, got {} of them",
            v.len()
        ))),
    }
}

/// A path as a Python `str` (lossy only for names that are not UTF-8).
pub(crate) fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A shape as Python writes a tuple: `(3,)`, `(2, 4)`.
pub(crate) fn tuple_repr(shape: &[u64]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}
