//! The GPU, found and started at run time: nothing from CUDA is linked at build time.
//!
//! [`gpu()`] loads libcuda on first use and says why when there is no usable GPU; the buffer
//! types here ([`DeviceBuffer`], [`PinnedBuffer`]) and [`Module`]/[`Kernel`] (NVRTC-compiled
//! CUDA C) are what the format and kernel layers build on.

mod buffers;
mod kernel;

pub use buffers::{DeviceBuffer, PinnedBuffer};
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
        let dev = result::device::get(0).map_err(|e| format!("cuDeviceGet(0) failed: {e}"))?;
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
            ordinal: 0,
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

/// A CUDA stream owned by this crate's engines.
pub(crate) struct Stream(pub(crate) sys::CUstream);

// SAFETY: stream handles are usable from any thread with the context current.
unsafe impl Send for Stream {}

impl Stream {
    pub(crate) fn new() -> Result<Stream> {
        gpu()?;
        result::stream::create(result::stream::StreamKind::NonBlocking)
            .map(Stream)
            .map_err(|e| cuda_err("cuStreamCreate", e))
    }

    pub(crate) fn synchronize(&self) -> Result<()> {
        // SAFETY: valid stream.
        unsafe { result::stream::synchronize(self.0) }.map_err(|e| cuda_err("cuStreamSynchronize", e))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if gpu().is_ok() {
            // SAFETY: valid stream, destroyed once.
            let _ = unsafe { result::stream::destroy(self.0) };
        }
    }
}

/// A CUDA event (no timing) marking when queued work on a stream is done.
pub(crate) struct Event(sys::CUevent);

// SAFETY: event handles are usable from any thread with the context current.
unsafe impl Send for Event {}

impl Event {
    pub(crate) fn new() -> Result<Event> {
        gpu()?;
        result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
            .map(Event)
            .map_err(|e| cuda_err("cuEventCreate", e))
    }

    pub(crate) fn record(&self, s: &Stream) -> Result<()> {
        // SAFETY: valid event and stream.
        unsafe { result::event::record(self.0, s.0) }.map_err(|e| cuda_err("cuEventRecord", e))
    }

    pub(crate) fn synchronize(&self) -> Result<()> {
        // SAFETY: valid event.
        unsafe { result::event::synchronize(self.0) }.map_err(|e| cuda_err("cuEventSynchronize", e))
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
