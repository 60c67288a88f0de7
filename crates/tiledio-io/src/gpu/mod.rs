//! The GPU, found and started at run time: nothing from CUDA is linked at build time.
//!
//! [`gpu()`] loads libcuda on first use and says why when there is no usable GPU; the buffer
//! types here ([`DeviceBuffer`], [`PinnedBuffer`]) and [`Module`]/[`Kernel`] (NVRTC-compiled
//! CUDA C) are what the format and kernel layers build on.

mod buffers;
mod kernel;

pub use buffers::{DeviceBuffer, PinnedBuffer, device_bytes, peak_device_bytes, reset_peak_device_bytes};
pub use kernel::{Kernel, Module};

use crate::error::{IoError, Result};
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The GPU this process uses (device 0 of those `CUDA_VISIBLE_DEVICES` shows).
///
/// ```
/// match tiledio_io::gpu::gpu() {
///     Ok(g) => println!("{} with {} bytes", g.name(), g.total_memory()),
///     Err(e) => println!("CPU only: {e}"),
/// }
/// ```
pub struct Gpu {
    ordinal: i32,
    ctx: sys::CUcontext,
    name: String,
    total_memory: u64,
    compute_capability: (i32, i32),
    modules: Mutex<HashMap<String, Arc<Module>>>,
}

// SAFETY: a CUcontext handle may be used from any thread once made current there (bind()).
unsafe impl Send for Gpu {}
// SAFETY: as above; the module cache is behind a Mutex.
unsafe impl Sync for Gpu {}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ordinal)
            .field("name", &self.name)
            .finish()
    }
}

static GPU: OnceLock<std::result::Result<Gpu, String>> = OnceLock::new();

/// The process's GPU, started on first call.
///
/// # Errors
/// [`IoError::NoGpu`] saying why: libcuda not found, a driver symbol missing, no device, or the
/// driver failed to start. The answer is the same for the life of the process.
pub fn gpu() -> Result<&'static Gpu> {
    let g = GPU
        .get_or_init(probe)
        .as_ref()
        .map_err(|reason| IoError::NoGpu { reason: reason.clone() })?;
    g.bind()?;
    Ok(g)
}

/// Whether a usable GPU is present (see [`gpu()`] for why not).
pub fn available() -> bool {
    gpu().is_ok()
}

fn probe() -> std::result::Result<Gpu, String> {
    if std::env::var_os("TILEDIO_NO_GPU").is_some_and(|v| v != "0") {
        return Err("disabled by TILEDIO_NO_GPU".into());
    }
    // SAFETY: only tries to dlopen the candidate library names.
    if !unsafe { sys::is_culib_present() } {
        return Err("libcuda not found (no NVIDIA driver on this machine)".into());
    }
    // cudarc panics on a missing symbol: contain that and report it as a reason.
    let started = std::panic::catch_unwind(|| -> std::result::Result<Gpu, String> {
        result::init().map_err(|e| format!("cuInit failed: {e}"))?;
        let count = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e}"))?;
        if count == 0 {
            return Err("the driver reports no CUDA device".into());
        }
        let ordinal = match std::env::var("TILEDIO_DEVICE") {
            Ok(v) => crate::settings::device_ordinal(&v).map_err(|e| e.to_string())?,
            Err(_) => 0,
        };
        if ordinal >= count {
            return Err(format!(
                "TILEDIO_DEVICE={ordinal}, but the driver reports {count} device(s)"
            ));
        }
        let dev = result::device::get(ordinal).map_err(|e| format!("cuDeviceGet({ordinal}) failed: {e}"))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown GPU".into());
        // SAFETY: dev is a valid device handle from cuDeviceGet.
        let total_memory =
            unsafe { result::device::total_mem(dev) }.map_err(|e| format!("cuDeviceTotalMem failed: {e}"))? as u64;
        // SAFETY: as above.
        let cc = unsafe {
            (
                result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                )
                .unwrap_or(0),
                result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                )
                .unwrap_or(0),
            )
        };
        // SAFETY: retains the primary context of a valid device; released never (process-wide).
        let ctx =
            unsafe { result::primary_ctx::retain(dev) }.map_err(|e| format!("cuDevicePrimaryCtxRetain failed: {e}"))?;
        Ok(Gpu {
            ordinal,
            ctx,
            name,
            total_memory,
            compute_capability: cc,
            modules: Mutex::new(HashMap::new()),
        })
    });
    match started {
        Ok(r) => r,
        Err(p) => Err(format!(
            "the CUDA driver library could not be used: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

pub(crate) fn cuda_err(op: &'static str, e: result::DriverError) -> IoError {
    IoError::Cuda {
        op,
        message: e.to_string(),
    }
}

impl Gpu {
    /// Makes this GPU's context current on the calling thread (cheap; done by every call here).
    /// The current context is checked each time, not remembered per thread: in a process where
    /// PyTorch or CuPy switch contexts, tiledio still runs in its own.
    ///
    /// # Errors
    /// [`IoError::Cuda`] if the driver refuses.
    pub fn bind(&self) -> Result<()> {
        let current = result::ctx::get_current().map_err(|e| cuda_err("cuCtxGetCurrent", e))?;
        if current != Some(self.ctx) {
            // SAFETY: ctx is the retained primary context, valid for the process.
            unsafe { result::ctx::set_current(self.ctx) }.map_err(|e| cuda_err("cuCtxSetCurrent", e))?;
        }
        Ok(())
    }

    /// The device ordinal (`TILEDIO_DEVICE`).
    pub fn ordinal(&self) -> i32 {
        self.ordinal
    }

    /// The device's name, e.g. "NVIDIA H200".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of memory on the device.
    pub fn total_memory(&self) -> u64 {
        self.total_memory
    }

    /// Compute capability (major, minor), e.g. (9, 0) for Hopper.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// Free and total device memory now, in bytes.
    ///
    /// # Errors
    /// [`IoError::Cuda`] if the driver refuses.
    pub fn memory_info(&self) -> Result<(u64, u64)> {
        self.bind()?;
        let (free, total) = result::mem_get_info().map_err(|e| cuda_err("cuMemGetInfo", e))?;
        Ok((free as u64, total as u64))
    }

    /// Waits for all work queued on the device to finish.
    ///
    /// # Errors
    /// [`IoError::Cuda`] with the error of any failed asynchronous work.
    pub fn synchronize(&self) -> Result<()> {
        self.bind()?;
        result::ctx::synchronize().map_err(|e| cuda_err("cuCtxSynchronize", e))
    }
}

/// A CUDA stream: work queued on it runs in order, and runs concurrently with other streams'
/// work. Reads ([`crate::FileHandle::read_ranges_async`]) and copies take a caller's stream so
/// they order with the caller's kernels without waiting on the host; a stream of another
/// library (CuPy, PyTorch) is taken through [`Stream::from_raw`].
///
/// ```no_run
/// use tiledio_io::gpu::{DeviceBuffer, Stream};
/// let s = Stream::new()?;
/// let mut d = DeviceBuffer::new(1 << 20)?;
/// # let path = "f.bin";
/// let fh = tiledio_io::FileHandle::open(path)?;
/// fh.read_ranges_async(&[tiledio_io::ReadRange { file_offset: 0, len: 1 << 20, dst_offset: 0 }], &mut d, &s)?;
/// // ... queue kernels that use `d` on `s` ...
/// s.synchronize()?;
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
pub struct Stream {
    pub(crate) handle: sys::CUstream,
    owned: bool,
}

// SAFETY: stream handles are usable from any thread with the context current.
unsafe impl Send for Stream {}
// SAFETY: as above; queueing work on a stream from several threads is allowed by the driver.
unsafe impl Sync for Stream {}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stream({:p})", self.handle)
    }
}

impl Stream {
    /// A new non-blocking stream (it does not synchronise with the legacy default stream).
    ///
    /// # Errors
    /// [`IoError::NoGpu`] without a GPU; [`IoError::Cuda`].
    pub fn new() -> Result<Stream> {
        gpu()?;
        result::stream::create(result::stream::StreamKind::NonBlocking)
            .map(|handle| Stream { handle, owned: true })
            .map_err(|e| cuda_err("cuStreamCreate", e))
    }

    /// A new stream that orders with the legacy default stream (its work waits for work queued
    /// there before, and the default stream's later work waits for it): for code whose other
    /// steps (synchronous copies, memsets) run on the default stream.
    ///
    /// # Errors
    /// [`IoError::NoGpu`] without a GPU; [`IoError::Cuda`].
    pub fn new_ordered_with_default() -> Result<Stream> {
        gpu()?;
        result::stream::create(result::stream::StreamKind::Default)
            .map(|handle| Stream { handle, owned: true })
            .map_err(|e| cuda_err("cuStreamCreate", e))
    }

    /// A stream someone else created (e.g. `cupy.cuda.Stream().ptr`, `torch.cuda.Stream().cuda_stream`;
    /// 0 is the legacy default stream). Not destroyed on drop.
    ///
    /// # Safety
    /// `handle` must be a valid stream of tiledio's context (the device's primary context) for
    /// as long as this value is used.
    pub unsafe fn from_raw(handle: u64) -> Stream {
        Stream {
            handle: handle as sys::CUstream,
            owned: false,
        }
    }

    /// The raw `CUstream` handle, for other CUDA libraries.
    pub fn as_raw(&self) -> u64 {
        self.handle as u64
    }

    /// Waits on the host until all work queued on the stream has finished.
    ///
    /// # Errors
    /// [`IoError::Cuda`] with the error of any failed work on the stream.
    pub fn synchronize(&self) -> Result<()> {
        gpu()?;
        // SAFETY: valid stream.
        unsafe { result::stream::synchronize(self.handle) }.map_err(|e| cuda_err("cuStreamSynchronize", e))
    }

    /// Makes work queued on this stream from now on wait until `event` has happened (no host
    /// wait).
    ///
    /// # Errors
    /// [`IoError::Cuda`].
    pub fn wait(&self, event: &Event) -> Result<()> {
        // SAFETY: valid stream and event.
        unsafe { result::stream::wait_event(self.handle, event.0, sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT) }
            .map_err(|e| cuda_err("cuStreamWaitEvent", e))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.owned && gpu().is_ok() {
            // SAFETY: a stream we created, destroyed once.
            let _ = unsafe { result::stream::destroy(self.handle) };
        }
    }
}

/// A CUDA event (no timing) marking when the work queued on a stream before it is done.
///
/// ```no_run
/// use tiledio_io::gpu::{Event, Stream};
/// let (a, b) = (Stream::new()?, Stream::new()?);
/// let e = Event::new()?;
/// e.record(&a)?;   // after a's work so far ...
/// b.wait(&e)?;     // ... b's next work runs
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
pub struct Event(sys::CUevent);

// SAFETY: event handles are usable from any thread with the context current.
unsafe impl Send for Event {}
// SAFETY: as above.
unsafe impl Sync for Event {}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Event({:p})", self.0)
    }
}

impl Event {
    /// A new event (timing disabled: cheaper to record and wait on).
    ///
    /// # Errors
    /// [`IoError::NoGpu`] without a GPU; [`IoError::Cuda`].
    pub fn new() -> Result<Event> {
        gpu()?;
        result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
            .map(Event)
            .map_err(|e| cuda_err("cuEventCreate", e))
    }

    /// Marks the point after the work queued on `s` so far.
    ///
    /// # Errors
    /// [`IoError::Cuda`].
    pub fn record(&self, s: &Stream) -> Result<()> {
        // SAFETY: valid event and stream.
        unsafe { result::event::record(self.0, s.handle) }.map_err(|e| cuda_err("cuEventRecord", e))
    }

    /// Waits on the host until the event has happened.
    ///
    /// # Errors
    /// [`IoError::Cuda`] with the error of any failed work before it.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: valid event.
        unsafe { result::event::synchronize(self.0) }.map_err(|e| cuda_err("cuEventSynchronize", e))
    }

    /// Whether the event has happened (never waits).
    ///
    /// # Errors
    /// [`IoError::Cuda`] with the error of any failed work before it.
    pub fn is_done(&self) -> Result<bool> {
        // SAFETY: valid event.
        match unsafe { sys::cuEventQuery(self.0) } {
            sys::CUresult::CUDA_SUCCESS => Ok(true),
            sys::CUresult::CUDA_ERROR_NOT_READY => Ok(false),
            e => Err(cuda_err("cuEventQuery", result::DriverError(e))),
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if gpu().is_ok() {
            // SAFETY: valid event, destroyed once.
            let _ = unsafe { result::event::destroy(self.0) };
        }
    }
}
