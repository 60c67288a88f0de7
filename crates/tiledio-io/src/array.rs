//! The array vocabulary every crate shares: an element type with a shape and strides
//! ([`ArrayLayout`]), owned arrays in host and GPU memory ([`HostArray`], [`DeviceArray`]), a
//! view of GPU memory someone else owns ([`DeviceView`]: a CuPy, PyTorch or JAX array), and an
//! N-d [`Region`] of an array with its [`Border`] policy.
//!
//! Strides are counted in elements, as DLPack counts them; C order (the last axis fastest) is the
//! default and what every tiledio read writes.

use crate::element::ElementType;
use crate::error::{IoError, Result};
use crate::gpu::DeviceBuffer;
use std::marker::PhantomData;

fn invalid(what: String) -> IoError {
    IoError::InvalidArgument(what)
}

/// Element type, shape and strides (in elements) of an N-d array.
///
/// ```
/// use tiledio_io::{ArrayLayout, ElementType};
/// let l = ArrayLayout::contiguous(ElementType::U16, &[4, 5, 3])?;
/// assert_eq!(l.strides(), &[15, 3, 1]);
/// assert_eq!(l.nbytes(), 120);
/// assert!(l.is_contiguous());
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArrayLayout {
    dtype: ElementType,
    shape: Vec<u64>,
    strides: Vec<i64>,
}

impl ArrayLayout {
    /// A C-order (row-major) layout.
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] when the size in bytes overflows.
    pub fn contiguous(dtype: ElementType, shape: &[u64]) -> Result<ArrayLayout> {
        let mut strides = vec![0i64; shape.len()];
        let mut acc: i64 = 1;
        for d in (0..shape.len()).rev() {
            strides[d] = acc;
            acc = i64::try_from(shape[d])
                .ok()
                .and_then(|n| acc.checked_mul(n.max(1)))
                .ok_or_else(|| invalid(format!("array shape {shape:?} is too large")))?;
        }
        Self::strided(dtype, shape, &strides)
    }

    /// A layout with explicit strides (elements), e.g. from a framework's array.
    ///
    /// ```
    /// use tiledio_io::{ArrayLayout, ElementType};
    /// let l = ArrayLayout::strided(ElementType::F32, &[2, 3], &[1, 2])?; // Fortran order
    /// assert!(!l.is_contiguous());
    /// assert_eq!(l.span_bytes(), 24);
    /// assert!(ArrayLayout::strided(ElementType::F32, &[2, 3], &[-3, 1]).is_err());
    /// # Ok::<(), tiledio_io::IoError>(())
    /// ```
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] for a rank mismatch, a negative stride (not supported), or a
    /// size that overflows.
    pub fn strided(dtype: ElementType, shape: &[u64], strides: &[i64]) -> Result<ArrayLayout> {
        if shape.len() != strides.len() {
            return Err(invalid(format!(
                "shape {shape:?} and strides {strides:?} differ in rank"
            )));
        }
        if strides.iter().any(|s| *s < 0) {
            return Err(invalid(format!("negative strides {strides:?} are not supported")));
        }
        let l = ArrayLayout {
            dtype,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
        };
        l.checked_span()
            .ok_or_else(|| invalid(format!("array shape {shape:?} with strides {strides:?} is too large")))?;
        Ok(l)
    }

    /// The element type.
    pub fn dtype(&self) -> ElementType {
        self.dtype
    }

    /// The shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &[i64] {
        &self.strides
    }

    /// The number of elements.
    pub fn len(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of the elements (`len × element size`).
    pub fn nbytes(&self) -> u64 {
        self.len() * self.dtype.size() as u64
    }

    /// Whether the elements lie in C order without gaps (axes of length 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1i64;
        for d in (0..self.shape.len()).rev() {
            if self.shape[d] != 1 && self.strides[d] != acc {
                return false;
            }
            acc = acc.saturating_mul(self.shape[d] as i64);
        }
        true
    }

    /// The bytes from the first element to the end of the last one (what a buffer holding the
    /// array must have).
    pub fn span_bytes(&self) -> u64 {
        self.checked_span().unwrap_or(u64::MAX)
    }

    fn checked_span(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        let mut last = 0u64;
        for (n, s) in self.shape.iter().zip(&self.strides) {
            last = last.checked_add((n - 1).checked_mul(*s as u64)?)?;
        }
        last.checked_add(1)?.checked_mul(self.dtype.size() as u64)
    }

    /// Checks that this layout is a C-order array of `dtype` and `shape` (what a read into a
    /// caller's array needs).
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] naming what differs.
    pub fn expect(&self, dtype: ElementType, shape: &[u64]) -> Result<()> {
        if self.dtype != dtype || self.shape != shape {
            return Err(invalid(format!(
                "array of {} {:?} given where {} {:?} is needed",
                self.dtype, self.shape, dtype, shape
            )));
        }
        if !self.is_contiguous() {
            return Err(invalid(format!(
                "array with strides {:?} is not C-contiguous; tiledio writes C-order arrays",
                self.strides
            )));
        }
        Ok(())
    }
}

/// An array in host memory, owned, C order.
///
/// ```
/// use tiledio_io::{ElementType, HostArray};
/// let a = HostArray::zeros(ElementType::U16, &[2, 3])?;
/// assert_eq!(a.bytes().len(), 12);
/// let b = HostArray::from_bytes(ElementType::U8, &[2, 2], vec![1, 2, 3, 4])?;
/// assert_eq!(b.layout().shape(), &[2, 2]);
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostArray {
    layout: ArrayLayout,
    data: Vec<u8>,
}

impl HostArray {
    /// A zeroed array, allocated fallibly against the memory budget (`TILEDIO_MAX_MEMORY`).
    ///
    /// # Errors
    /// [`IoError::OutOfMemory`] beyond the budget; [`IoError::InvalidArgument`] for a shape
    /// whose size overflows.
    pub fn zeros(dtype: ElementType, shape: &[u64]) -> Result<HostArray> {
        let layout = ArrayLayout::contiguous(dtype, shape)?;
        let n = usize::try_from(layout.nbytes()).map_err(|_| invalid(format!("array shape {shape:?} is too large")))?;
        let data = crate::memory::try_alloc_zeroed(n, &format!("a {dtype} array of shape {shape:?}"))?;
        Ok(HostArray { layout, data })
    }

    /// An array over `data` (native byte order, C order).
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] when `data` does not hold exactly the array's bytes.
    pub fn from_bytes(dtype: ElementType, shape: &[u64], data: Vec<u8>) -> Result<HostArray> {
        let layout = ArrayLayout::contiguous(dtype, shape)?;
        if layout.nbytes() != data.len() as u64 {
            return Err(invalid(format!(
                "{} bytes do not make a {dtype} array of shape {shape:?}",
                data.len()
            )));
        }
        Ok(HostArray { layout, data })
    }

    /// The layout.
    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }

    /// The elements' bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The elements' bytes, for writing.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The bytes, giving up the array.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }
}

/// An array in GPU memory: owned ([`DeviceArray::zeros`], [`DeviceArray::from_buffer`]).
///
/// ```no_run
/// use tiledio_io::{DeviceArray, ElementType};
/// let a = DeviceArray::zeros(ElementType::F32, &[512, 512])?;
/// assert_eq!(a.to_host()?.bytes().len(), 512 * 512 * 4);
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
#[derive(Debug)]
pub struct DeviceArray {
    layout: ArrayLayout,
    buf: DeviceBuffer,
}

impl DeviceArray {
    /// A zeroed C-order array.
    ///
    /// # Errors
    /// [`IoError::NoGpu`], [`IoError::OutOfDeviceMemory`], [`IoError::InvalidArgument`].
    pub fn zeros(dtype: ElementType, shape: &[u64]) -> Result<DeviceArray> {
        let layout = ArrayLayout::contiguous(dtype, shape)?;
        let n = usize::try_from(layout.nbytes()).map_err(|_| invalid(format!("array shape {shape:?} is too large")))?;
        let buf = DeviceBuffer::new(n)?;
        buf.fill(0)?;
        Ok(DeviceArray { layout, buf })
    }

    /// An array over a buffer holding its elements in C order.
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] when the buffer is shorter than the array.
    pub fn from_buffer(buf: DeviceBuffer, dtype: ElementType, shape: &[u64]) -> Result<DeviceArray> {
        let layout = ArrayLayout::contiguous(dtype, shape)?;
        if (buf.len() as u64) < layout.nbytes() {
            return Err(invalid(format!(
                "device buffer of {} bytes is too small for a {dtype} array of shape {shape:?}",
                buf.len()
            )));
        }
        Ok(DeviceArray { layout, buf })
    }

    /// Uploads a host array.
    ///
    /// # Errors
    /// As [`DeviceBuffer::from_host`].
    pub fn from_host(a: &HostArray) -> Result<DeviceArray> {
        Ok(DeviceArray {
            layout: a.layout.clone(),
            buf: DeviceBuffer::from_host(a.bytes())?,
        })
    }

    /// Copies the array to host memory.
    ///
    /// # Errors
    /// [`IoError::Cuda`].
    pub fn to_host(&self) -> Result<HostArray> {
        let mut v = vec![0u8; self.layout.nbytes() as usize];
        self.buf.copy_to_host(&mut v)?;
        HostArray::from_bytes(self.layout.dtype, &self.layout.shape, v)
    }

    /// The layout.
    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }

    /// The memory (at least [`ArrayLayout::nbytes`] long).
    pub fn buffer(&self) -> &DeviceBuffer {
        &self.buf
    }

    /// The memory, for writing.
    pub fn buffer_mut(&mut self) -> &mut DeviceBuffer {
        &mut self.buf
    }

    /// The memory, giving up the array.
    pub fn into_buffer(self) -> DeviceBuffer {
        self.buf
    }

    /// A view of the whole array, borrowed mutably (what the `*_into` reads take).
    pub fn view_mut(&mut self) -> DeviceView<'_> {
        DeviceView {
            layout: self.layout.clone(),
            // SAFETY: the view borrows `self` mutably for its lifetime, so the memory outlives
            // it and nothing else touches it meanwhile.
            buf: unsafe { DeviceBuffer::from_raw_parts(self.buf.device_ptr(), self.buf.len()) },
            _owner: PhantomData,
        }
    }
}

/// A GPU array that tiledio does not own: a borrowed [`DeviceArray`], or memory a framework
/// allocated (a CuPy, PyTorch or JAX array), seen through [`DeviceView::from_raw`] — as cudarc's
/// `upgrade_device_ptr`. Reads fill it in place; dropping it frees nothing.
///
/// ```no_run
/// use tiledio_io::{DeviceArray, DeviceView, ElementType};
/// let owner = DeviceArray::zeros(ElementType::U8, &[256, 256, 3])?; // stands for a CuPy array
/// // SAFETY: the memory outlives the view and nothing else uses it meanwhile.
/// let view = unsafe {
///     DeviceView::from_raw(owner.buffer().device_ptr(), ElementType::U8, &[256, 256, 3], None)?
/// };
/// assert!(view.layout().is_contiguous());
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
#[derive(Debug)]
pub struct DeviceView<'a> {
    layout: ArrayLayout,
    buf: DeviceBuffer,
    _owner: PhantomData<&'a mut DeviceBuffer>,
}

impl<'a> DeviceView<'a> {
    /// A view of device memory at `ptr` holding an array of `dtype` and `shape`, with `strides`
    /// in elements (`None`: C order), as DLPack and `__cuda_array_interface__` describe it.
    ///
    /// # Safety
    /// `ptr` must be device memory of the current CUDA context (or unified memory), valid for
    /// [`ArrayLayout::span_bytes`] bytes for all of `'a`, and not used by anyone else while the
    /// view writes it (order a framework's stream with the work through events).
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] for a layout that is not supported (negative strides,
    /// overflow).
    pub unsafe fn from_raw(ptr: u64, dtype: ElementType, shape: &[u64], strides: Option<&[i64]>) -> Result<Self> {
        let layout = match strides {
            Some(s) => ArrayLayout::strided(dtype, shape, s)?,
            None => ArrayLayout::contiguous(dtype, shape)?,
        };
        let len =
            usize::try_from(layout.span_bytes()).map_err(|_| invalid(format!("array shape {shape:?} is too large")))?;
        Ok(DeviceView {
            layout,
            // SAFETY: the caller's guarantees.
            buf: unsafe { DeviceBuffer::from_raw_parts(ptr, len) },
            _owner: PhantomData,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &ArrayLayout {
        &self.layout
    }

    /// The device address of the first element.
    pub fn device_ptr(&self) -> u64 {
        self.buf.device_ptr()
    }

    /// The memory as a (non-owning) buffer of [`ArrayLayout::span_bytes`] bytes, for the calls
    /// that take a [`DeviceBuffer`].
    pub fn buffer_mut(&mut self) -> &mut DeviceBuffer {
        &mut self.buf
    }

    /// The memory, after checking that it is a C-order array of `dtype` and `shape` (what reads
    /// into a caller's array use).
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] naming what differs.
    pub fn expect_mut(&mut self, dtype: ElementType, shape: &[u64]) -> Result<&mut DeviceBuffer> {
        self.layout.expect(dtype, shape)?;
        Ok(&mut self.buf)
    }
}

/// What a read does with the cells of a [`Region`] that lie outside the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Border {
    /// A region reaching outside the array is an error (Zarr's default).
    #[default]
    Reject,
    /// Cells outside the array get the source's fill value: the background of a slide (OpenSlide
    /// semantics, 0 unless set), the `fill_value` of a Zarr array.
    Fill,
}

/// An N-d box of an array: `origin` (may be negative, or past the end, with [`Border::Fill`])
/// and `shape`, axis by axis in the array's order (`[y, x]` for a slide level).
///
/// ```
/// use tiledio_io::{Border, Region};
/// let r = Region::new(&[-2, 5], &[4, 10]);
/// assert!(r.check(&[100, 12], Border::Reject).is_err());
/// let inside = r.check(&[100, 12], Border::Fill)?.unwrap();
/// assert_eq!((inside.origin(), inside.shape()), (&[0i64, 5][..], &[2u64, 7][..]));
/// assert_eq!(Region::new(&[200, 0], &[1, 1]).check(&[100, 12], Border::Fill)?, None);
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region {
    origin: Vec<i64>,
    shape: Vec<u64>,
}

impl Region {
    /// The box `[origin, origin + shape)`.
    pub fn new(origin: &[i64], shape: &[u64]) -> Region {
        Region {
            origin: origin.to_vec(),
            shape: shape.to_vec(),
        }
    }

    /// The whole of an array of `shape`.
    pub fn whole(shape: &[u64]) -> Region {
        Region::new(&vec![0; shape.len()], shape)
    }

    /// The box at a non-negative origin.
    pub fn at(origin: &[u64], shape: &[u64]) -> Region {
        Region {
            origin: origin.iter().map(|o| i64::try_from(*o).unwrap_or(i64::MAX)).collect(),
            shape: shape.to_vec(),
        }
    }

    /// The origin.
    pub fn origin(&self) -> &[i64] {
        &self.origin
    }

    /// The shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The number of cells, or `None` on overflow.
    pub fn cells(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |a, n| a.checked_mul(*n))
    }

    /// Checks the region against an array of `array_shape` under `border` and returns the part
    /// inside the array (`None` when nothing is inside; all of it under [`Border::Reject`]).
    ///
    /// # Errors
    /// [`IoError::InvalidArgument`] for a rank mismatch, an end that overflows, or (with
    /// [`Border::Reject`]) a region not wholly inside the array.
    pub fn check(&self, array_shape: &[u64], border: Border) -> Result<Option<Region>> {
        let r = array_shape.len();
        if self.origin.len() != r || self.shape.len() != r {
            return Err(invalid(format!(
                "region {:?}+{:?} has the wrong rank for array shape {array_shape:?}",
                self.origin, self.shape
            )));
        }
        let mut lo = vec![0i64; r];
        let mut n = vec![0u64; r];
        for d in 0..r {
            let end = i64::try_from(self.shape[d])
                .ok()
                .and_then(|s| self.origin[d].checked_add(s))
                .ok_or_else(|| invalid(format!("region {:?}+{:?} overflows", self.origin, self.shape)))?;
            let size = i64::try_from(array_shape[d]).unwrap_or(i64::MAX);
            let (a, b) = (self.origin[d].clamp(0, size), end.clamp(0, size));
            if border == Border::Reject && (a != self.origin[d] || b != end) {
                return Err(invalid(format!(
                    "region {:?}+{:?} lies outside array shape {array_shape:?}",
                    self.origin, self.shape
                )));
            }
            lo[d] = a;
            n[d] = (b - a) as u64;
        }
        if n.contains(&0) && !self.shape.contains(&0) {
            return Ok(None);
        }
        Ok(Some(Region { origin: lo, shape: n }))
    }

    /// Whether the region lies wholly inside an array of `array_shape`.
    pub fn is_inside(&self, array_shape: &[u64]) -> bool {
        self.check(array_shape, Border::Reject).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_check_their_sizes() {
        assert!(ArrayLayout::contiguous(ElementType::U64, &[u64::MAX, 2]).is_err());
        assert!(ArrayLayout::strided(ElementType::U8, &[2], &[1, 1]).is_err());
        let l = ArrayLayout::contiguous(ElementType::U8, &[3, 0, 2]).unwrap();
        assert_eq!((l.nbytes(), l.span_bytes()), (0, 0));
        let l = ArrayLayout::strided(ElementType::U16, &[1, 4], &[99, 1]).unwrap();
        assert!(l.is_contiguous());
        assert!(l.expect(ElementType::U16, &[1, 4]).is_ok());
        assert!(l.expect(ElementType::U8, &[1, 4]).is_err());
        assert!(HostArray::from_bytes(ElementType::U16, &[3], vec![0; 5]).is_err());
    }

    #[test]
    fn regions_follow_their_border_policy() {
        let shape = [10u64, 10];
        let inside = Region::new(&[2, 3], &[4, 4]);
        assert_eq!(inside.check(&shape, Border::Reject).unwrap(), Some(inside.clone()));
        assert!(Region::new(&[8, 0], &[4, 4]).check(&shape, Border::Reject).is_err());
        assert_eq!(
            Region::new(&[8, -1], &[4, 4]).check(&shape, Border::Fill).unwrap(),
            Some(Region::new(&[8, 0], &[2, 3]))
        );
        assert_eq!(
            Region::new(&[-5, 0], &[5, 4]).check(&shape, Border::Fill).unwrap(),
            None
        );
        assert!(
            Region::new(&[i64::MAX, 0], &[5, 4])
                .check(&shape, Border::Fill)
                .is_err()
        );
        assert!(Region::new(&[0], &[5]).check(&shape, Border::Fill).is_err());
        assert!(Region::whole(&shape).is_inside(&shape));
    }
}
