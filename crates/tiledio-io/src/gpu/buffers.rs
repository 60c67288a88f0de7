//! Owned device memory and page-locked host memory.

use super::{cuda_err, gpu};
use crate::error::{IoError, Result};
use cudarc::driver::{result, sys};

/// Memory on the GPU, freed on drop.
///
/// Allocated with plain `cuMemAlloc` (not a stream-ordered pool) so cuFile can register it.
///
/// ```no_run
/// use tiledio_io::gpu::DeviceBuffer;
/// let d = DeviceBuffer::from_host(&[1u8, 2, 3])?;
/// assert_eq!(d.to_host_vec()?, vec![1, 2, 3]);
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
pub struct DeviceBuffer {
    ptr: sys::CUdeviceptr,
    len: usize,
    /// Whether this buffer allocated the memory (and frees it on drop); `false` for a view of
    /// memory someone else owns ([`DeviceBuffer::from_raw_parts`]).
    owned: bool,
}

// SAFETY: the buffer owns its device allocation; access goes through &/&mut.
unsafe impl Send for DeviceBuffer {}
// SAFETY: shared references only read.
unsafe impl Sync for DeviceBuffer {}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuffer({:#x}, {} bytes)", self.ptr, self.len)
    }
}

impl DeviceBuffer {
    /// Allocates `len` bytes of uninitialised device memory.
    ///
    /// # Errors
    /// [`IoError::NoGpu`] without a GPU; [`IoError::OutOfDeviceMemory`] when the device is full.
    pub fn new(len: usize) -> Result<DeviceBuffer> {
        let g = gpu()?;
        if len == 0 {
            return Ok(DeviceBuffer {
                ptr: 0,
                len,
                owned: true,
            });
        }
        // SAFETY: plain allocation with the context current.
        match unsafe { result::malloc_sync(len) } {
            Ok(ptr) => {
                memory_stats::allocated(len);
                Ok(DeviceBuffer { ptr, len, owned: true })
            }
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                let (free, total) = g.memory_info().unwrap_or((0, g.total_memory()));
                Err(IoError::OutOfDeviceMemory {
                    requested: len as u64,
                    free,
                    total,
                })
            }
            Err(e) => Err(cuda_err("cuMemAlloc", e)),
        }
    }

    /// A view of `len` bytes of device memory that someone else allocated (CuPy, PyTorch, JAX,
    /// another CUDA library), so reads can fill it in place: the view never frees it. Every
    /// call that takes a [`DeviceBuffer`] takes the view (as cudarc's `upgrade_device_ptr`).
    ///
    /// ```no_run
    /// use tiledio_io::gpu::DeviceBuffer;
    /// let owner = DeviceBuffer::new(1024)?; // stands for memory a framework allocated
    /// // SAFETY: `owner` outlives the view and nothing else uses those bytes meanwhile.
    /// let mut view = unsafe { DeviceBuffer::from_raw_parts(owner.device_ptr(), owner.len()) };
    /// view.copy_from_host(&[7u8; 1024])?;
    /// drop(view); // frees nothing
    /// assert_eq!(owner.to_host_vec()?[0], 7);
    /// # Ok::<(), tiledio_io::IoError>(())
    /// ```
    ///
    /// # Safety
    /// `ptr..ptr + len` must be device memory of the context tiledio uses (the primary context of
    /// its GPU, which CuPy and PyTorch share), valid and not otherwise accessed while the view
    /// is used, and all work queued on it by its owner finished (or ordered before ours).
    pub unsafe fn from_raw_parts(ptr: u64, len: usize) -> DeviceBuffer {
        DeviceBuffer { ptr, len, owned: false }
    }

    /// Whether this buffer owns its memory (`false` for [`DeviceBuffer::from_raw_parts`]).
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Allocates `len` bytes set to zero.
    ///
    /// # Errors
    /// As [`DeviceBuffer::new`].
    pub fn zeroed(len: usize) -> Result<DeviceBuffer> {
        let d = Self::new(len)?;
        d.fill(0)?;
        Ok(d)
    }

    /// Copies `data` into a new device buffer.
    ///
    /// # Errors
    /// As [`DeviceBuffer::new`], or [`IoError::Cuda`] if the copy fails.
    pub fn from_host(data: &[u8]) -> Result<DeviceBuffer> {
        let mut d = Self::new(data.len())?;
        d.copy_from_host(data)?;
        Ok(d)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device address, for kernel arguments and driver calls.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// Sets every byte to `value`.
    ///
    /// # Errors
    /// [`IoError::Cuda`] if the driver fails.
    pub fn fill(&self, value: u8) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        gpu()?;
        // SAFETY: ptr is valid for len bytes.
        unsafe { result::memset_d8_sync(self.ptr, value, self.len) }.map_err(|e| cuda_err("cuMemsetD8", e))
    }

    /// Copies `src` into the start of the buffer.
    ///
    /// # Errors
    /// [`IoError::BufferTooSmall`] if `src` is longer than the buffer; [`IoError::Cuda`].
    pub fn copy_from_host(&mut self, src: &[u8]) -> Result<()> {
        self.copy_from_host_at(0, src)
    }

    /// Copies `src` into the buffer at byte `offset`.
    ///
    /// # Errors
    /// [`IoError::BufferTooSmall`] if it does not fit; [`IoError::Cuda`].
    pub fn copy_from_host_at(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        self.check(offset, src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        gpu()?;
        // SAFETY: destination range checked above.
        unsafe { result::memcpy_htod_sync(self.ptr + offset as u64, src) }.map_err(|e| cuda_err("cuMemcpyHtoD", e))
    }

    /// Queues a copy of `src` into the buffer at byte `offset` on `stream` and returns at once
    /// (from page-locked memory, such as a [`PinnedBuffer`]; from pageable memory the driver
    /// copies through its own staging and returns when `src` may be reused).
    ///
    /// ```no_run
    /// use tiledio_io::gpu::{DeviceBuffer, Event, PinnedBuffer, Stream};
    /// let stream = Stream::new()?;
    /// let mut host = PinnedBuffer::new(1 << 20)?;
    /// host[0] = 9;
    /// let mut d = DeviceBuffer::new(1 << 20)?;
    /// // SAFETY: `host` is neither freed nor written until the stream has passed the copy
    /// unsafe { d.copy_from_host_async(0, &host, &stream)? };
    /// let done = Event::new()?;
    /// done.record(&stream)?;
    /// done.synchronize()?; // now `host` may be written again
    /// # Ok::<(), tiledio_io::IoError>(())
    /// ```
    ///
    /// # Safety
    /// `src` must stay allocated and unmodified until `stream` has executed the copy
    /// (synchronise the stream, or an [`super::Event`] recorded after it), and the buffer must
    /// not be freed before then.
    ///
    /// # Errors
    /// [`IoError::BufferTooSmall`] if it does not fit; [`IoError::Cuda`].
    pub unsafe fn copy_from_host_async(&mut self, offset: usize, src: &[u8], stream: &super::Stream) -> Result<()> {
        self.check(offset, src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        gpu()?;
        // SAFETY: destination range checked above; the caller keeps `src` alive and unchanged
        // until the stream has run the copy.
        unsafe { crate::engine::htod_async(self.ptr + offset as u64, src.as_ptr(), src.len(), stream) }
    }

    /// Copies the start of the buffer into `dst`.
    ///
    /// # Errors
    /// [`IoError::BufferTooSmall`] if `dst` is longer than the buffer; [`IoError::Cuda`].
    pub fn copy_to_host(&self, dst: &mut [u8]) -> Result<()> {
        self.copy_to_host_at(0, dst)
    }

    /// Copies bytes starting at `offset` into `dst`.
    ///
    /// # Errors
    /// [`IoError::BufferTooSmall`] if the range is outside the buffer; [`IoError::Cuda`].
    pub fn copy_to_host_at(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.check(offset, dst.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        gpu()?;
        // SAFETY: source range checked above.
        unsafe { result::memcpy_dtoh_sync(dst, self.ptr + offset as u64) }.map_err(|e| cuda_err("cuMemcpyDtoH", e))
    }

    /// Copies the whole buffer into a new `Vec`.
    ///
    /// # Errors
    /// [`IoError::Cuda`].
    pub fn to_host_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.len];
        self.copy_to_host(&mut v)?;
        Ok(v)
    }

    /// Copies `len` bytes from `src` at `src_offset` to this buffer at `dst_offset`, on the device.
    /// Like CUDA's `cuMemcpyDtoD`, it may return before the copy is done: work on the default
    /// stream (and streams that order with it) sees the copied bytes; a host timer must
    /// synchronise first.
    ///
    /// # Errors
    /// [`IoError::BufferTooSmall`] if either range is outside its buffer; [`IoError::Cuda`].
    pub fn copy_from_device(
        &mut self,
        dst_offset: usize,
        src: &DeviceBuffer,
        src_offset: usize,
        len: usize,
    ) -> Result<()> {
        self.check(dst_offset, len)?;
        src.check(src_offset, len)?;
        if len == 0 {
            return Ok(());
        }
        gpu()?;
        // SAFETY: both ranges checked above.
        unsafe { result::memcpy_dtod_sync(self.ptr + dst_offset as u64, src.ptr + src_offset as u64, len) }
            .map_err(|e| cuda_err("cuMemcpyDtoD", e))
    }

    pub(crate) fn check(&self, offset: usize, len: usize) -> Result<()> {
        let end = offset as u64 + len as u64;
        if end > self.len as u64 {
            return Err(IoError::BufferTooSmall {
                start: offset as u64,
                end,
                capacity: self.len as u64,
            });
        }
        Ok(())
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.owned && self.ptr != 0 && gpu().is_ok() {
            // SAFETY: allocated by cuMemAlloc in new(), freed once. Pending async work on it was
            // synchronised by the call that queued it.
            let _ = unsafe { result::free_sync(self.ptr) };
            memory_stats::freed(self.len);
        }
    }
}

/// Device memory held by tiledio's own [`DeviceBuffer`]s (not views of memory others own):
/// now, and the most at once since the last [`reset_peak_device_bytes`]. A pipeline reports
/// its peak against the budget it was given.
mod memory_stats {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    pub(super) static NOW: AtomicU64 = AtomicU64::new(0);
    pub(super) static PEAK: AtomicU64 = AtomicU64::new(0);

    pub(super) fn allocated(len: usize) {
        let now = NOW.fetch_add(len as u64, Relaxed) + len as u64;
        PEAK.fetch_max(now, Relaxed);
    }

    pub(super) fn freed(len: usize) {
        NOW.fetch_sub(len as u64, Relaxed);
    }
}

/// Bytes of device memory tiledio's own buffers hold now.
///
/// ```
/// // no GPU here, or nothing allocated yet: either way a count, never an error
/// let _ = tiledio_io::gpu::device_bytes();
/// ```
pub fn device_bytes() -> u64 {
    memory_stats::NOW.load(std::sync::atomic::Ordering::Relaxed)
}

/// The most device memory tiledio's own buffers held at once since the last
/// [`reset_peak_device_bytes`] (or the start of the process).
pub fn peak_device_bytes() -> u64 {
    memory_stats::PEAK.load(std::sync::atomic::Ordering::Relaxed)
}

/// Starts a new peak from what is held now; returns the old peak.
pub fn reset_peak_device_bytes() -> u64 {
    let now = device_bytes();
    memory_stats::PEAK.swap(now, std::sync::atomic::Ordering::Relaxed)
}

/// Page-locked ("pinned") host memory: the GPU copies to and from it asynchronously at full
/// PCIe rate. Plain page-locked (not write-combined), so the CPU reads it at normal speed.
///
/// ```no_run
/// let mut p = tiledio_io::gpu::PinnedBuffer::new(4096)?;
/// p[0] = 7;
/// assert_eq!(p[0], 7);
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
pub struct PinnedBuffer {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for PinnedBuffer {}
// SAFETY: shared references only read.
unsafe impl Sync for PinnedBuffer {}

impl PinnedBuffer {
    /// Allocates `len` zeroed bytes of page-locked memory (page-aligned).
    ///
    /// # Errors
    /// [`IoError::NoGpu`] without a GPU; [`IoError::Cuda`] if the driver cannot lock the memory.
    pub fn new(len: usize) -> Result<PinnedBuffer> {
        gpu()?;
        let len = len.max(1);
        // SAFETY: plain allocation with the context current; PORTABLE so any context may use it.
        let ptr = unsafe { result::malloc_host(len, sys::CU_MEMHOSTALLOC_PORTABLE) }
            .map_err(|e| cuda_err("cuMemHostAlloc", e))? as *mut u8;
        // SAFETY: ptr is valid for len bytes.
        unsafe { std::ptr::write_bytes(ptr, 0, len) };
        Ok(PinnedBuffer { ptr, len })
    }
}

impl std::ops::Deref for PinnedBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: valid for len initialised bytes while self lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for PinnedBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, exclusive through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        if gpu().is_ok() {
            // SAFETY: allocated by cuMemHostAlloc, freed once.
            let _ = unsafe { result::free_host(self.ptr as *mut std::ffi::c_void) };
        }
    }
}
