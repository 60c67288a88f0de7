//! Typed kernel arguments: device buffers borrowed for reading or writing, and scalars with
//! their types, in the order of the kernel's parameters.

use crate::Result;
use std::ffi::c_void;
use std::marker::PhantomData;
use tiledio_io::gpu::{DeviceBuffer, Kernel, Stream};

mod sealed {
    pub trait Sealed {}
}

/// A scalar kernel parameter type: `u8`–`u64`, `i8`–`i64`, `f32`, `f64` (passed by value, as
/// the CUDA C parameter of the same width and kind).
pub trait Scalar: Copy + sealed::Sealed {
    /// The value's bytes in native order, at the start of an 8-byte slot.
    fn slot(self) -> u64;
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {
            fn slot(self) -> u64 {
                let mut b = [0u8; 8];
                let v = self.to_ne_bytes();
                b[..v.len()].copy_from_slice(&v);
                u64::from_ne_bytes(b)
            }
        }
    )*};
}
scalar!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

/// The arguments of one kernel launch. Buffers are borrowed for as long as the arguments live,
/// and [`LaunchArgs::launch`] waits for the kernel, so no buffer can be freed or changed by the
/// host while the kernel uses it; a buffer passed with [`LaunchArgs::write`] is borrowed
/// mutably, so it cannot also be passed for reading.
///
/// ```no_run
/// use tiledio_io::gpu::{self, DeviceBuffer};
/// use tiledio_kernels::LaunchArgs;
/// let g = gpu::gpu()?;
/// let k = g.compile("add_one", r#"extern "C" __global__ void add_one(const unsigned char* s,
///     unsigned char* d, unsigned long long n) {
///     unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
///     if (i < n) d[i] = s[i] + 1; }"#)?.function("add_one")?;
/// let src = DeviceBuffer::from_host(&[1, 2, 3])?;
/// let mut dst = DeviceBuffer::new(3)?;
/// // SAFETY: the kernel takes (const u8*, u8*, u64) and touches 3 bytes of each buffer.
/// unsafe { LaunchArgs::new().read(&src).write(&mut dst).scalar(3u64).launch(&k, 1, 32)? };
/// assert_eq!(dst.to_host_vec()?, vec![2, 3, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct LaunchArgs<'a> {
    slots: Vec<u64>,
    _borrows: PhantomData<&'a mut DeviceBuffer>,
}

impl std::fmt::Debug for LaunchArgs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchArgs").field("count", &self.slots.len()).finish()
    }
}

impl<'a> LaunchArgs<'a> {
    /// No arguments yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer the kernel reads (a `const T*` parameter).
    pub fn read(mut self, b: &'a DeviceBuffer) -> Self {
        self.slots.push(b.device_ptr());
        self
    }

    /// A buffer the kernel writes (a `T*` parameter).
    pub fn write(mut self, b: &'a mut DeviceBuffer) -> Self {
        self.slots.push(b.device_ptr());
        self
    }

    /// A scalar parameter of type `T` (`unsigned long long` for `u64`, `int` for `i32`, ...).
    pub fn scalar<T: Scalar>(mut self, v: T) -> Self {
        self.slots.push(v.slot());
        self
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Launches `kernel` on a 1-D grid of `grid` blocks of `block` threads and waits for it to
    /// finish (on a stream of the calling thread's that orders with the default stream: only
    /// this kernel is waited for, never the whole device).
    ///
    /// # Safety
    /// The kernel's parameters must be, in order, of the types pushed here (a pointer for each
    /// buffer), and the kernel must touch only bytes inside each buffer's length (reading those
    /// given with [`LaunchArgs::read`], writing those given with [`LaunchArgs::write`]).
    ///
    /// # Errors
    /// [`crate::KernelError::Io`] if the launch is refused or the kernel fails.
    pub unsafe fn launch(self, kernel: &Kernel, grid: u32, block: u32) -> Result<()> {
        thread_local!(static STREAM: std::cell::OnceCell<Option<Stream>> = const { std::cell::OnceCell::new() });
        STREAM.with(|cell| {
            // a stream that orders with the default stream, where the callers' fills and
            // synchronous copies before the launch run
            let stream = match cell.get_or_init(|| Stream::new_ordered_with_default().ok()) {
                Some(s) => s,
                None => &Stream::new_ordered_with_default()?, // say why there is none
            };
            // SAFETY: the caller's guarantees; the stream is waited for before returning, so
            // the borrowed buffers outlive the kernel's run.
            unsafe { self.launch_on(kernel, grid, block, stream)? };
            stream.synchronize()?;
            Ok(())
        })
    }

    /// Queues `kernel` on `stream` and returns at once: the stream orders it after the work
    /// queued on it before and before the work queued after (reads with
    /// [`tiledio_io::FileHandle::read_ranges_async`], copies, other kernels).
    ///
    /// # Safety
    /// As [`LaunchArgs::launch`]; and since nothing waits here, the buffers must stay allocated
    /// and must not be used by the host or other streams until the kernel has run (synchronise
    /// `stream`, or order the other work after it with an event).
    ///
    /// # Errors
    /// [`crate::KernelError::Io`] if the launch is refused.
    pub unsafe fn launch_on(mut self, kernel: &Kernel, grid: u32, block: u32, stream: &Stream) -> Result<()> {
        let mut ptrs: Vec<*mut c_void> = self.slots.iter_mut().map(|s| (s as *mut u64).cast()).collect();
        // SAFETY: each pointer points at an 8-byte slot holding the parameter's bytes at its
        // start, alive during the call (the driver copies the values); the caller guarantees
        // the rest.
        unsafe { kernel.launch_on(stream, (grid.max(1), 1, 1), (block, 1, 1), 0, &mut ptrs)? };
        Ok(())
    }

    /// [`LaunchArgs::launch_on`] with a 3-D grid and block and `shared_bytes` of dynamic
    /// shared memory: queues `kernel` on `stream` and returns at once.
    ///
    /// ```no_run
    /// use tiledio_io::gpu::{self, DeviceBuffer, Stream};
    /// use tiledio_kernels::LaunchArgs;
    /// let k = gpu::gpu()?.compile("two_d", r#"extern "C" __global__ void two_d(unsigned char* d) {
    ///     d[blockIdx.y * 4 + threadIdx.x] = blockIdx.y; }"#)?.function("two_d")?;
    /// let mut dst = DeviceBuffer::new(8)?;
    /// let stream = Stream::new()?;
    /// // SAFETY: the kernel takes (u8*) and writes bytes 0..8 of an 8-byte buffer.
    /// unsafe { LaunchArgs::new().write(&mut dst).launch_on_dims(&k, (1, 2, 1), (4, 1, 1), 0, &stream)? };
    /// stream.synchronize()?;
    /// assert_eq!(dst.to_host_vec()?, vec![0, 0, 0, 0, 1, 1, 1, 1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// As [`LaunchArgs::launch_on`]; `shared_bytes` must be what the kernel expects of its
    /// `extern __shared__` array.
    ///
    /// # Errors
    /// [`crate::KernelError::Io`] if the launch is refused (a dimension of 0 or over the
    /// device's limits, too much shared memory).
    pub unsafe fn launch_on_dims(
        mut self,
        kernel: &Kernel,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        stream: &Stream,
    ) -> Result<()> {
        let mut ptrs: Vec<*mut c_void> = self.slots.iter_mut().map(|s| (s as *mut u64).cast()).collect();
        // SAFETY: as in launch_on: each pointer points at a live 8-byte slot; the caller
        // guarantees the rest.
        unsafe { kernel.launch_on(stream, grid, block, shared_bytes, &mut ptrs)? };
        Ok(())
    }

    /// [`LaunchArgs::launch`] with a 3-D grid and block and dynamic shared memory: launches
    /// and waits for the kernel (on the calling thread's stream that orders with the default
    /// stream).
    ///
    /// # Safety
    /// As [`LaunchArgs::launch_on_dims`].
    ///
    /// # Errors
    /// [`crate::KernelError::Io`] if the launch is refused or the kernel fails.
    pub unsafe fn launch_dims(
        self,
        kernel: &Kernel,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
    ) -> Result<()> {
        thread_local!(static STREAM: std::cell::OnceCell<Option<Stream>> = const { std::cell::OnceCell::new() });
        STREAM.with(|cell| {
            let stream = match cell.get_or_init(|| Stream::new_ordered_with_default().ok()) {
                Some(s) => s,
                None => &Stream::new_ordered_with_default()?,
            };
            // SAFETY: the caller's guarantees; the stream is waited for before returning.
            unsafe { self.launch_on_dims(kernel, grid, block, shared_bytes, stream)? };
            stream.synchronize()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_slots_hold_the_value_bytes_first() {
        assert_eq!(7u8.slot().to_ne_bytes()[0], 7);
        assert_eq!((-2i32).slot().to_ne_bytes()[..4], (-2i32).to_ne_bytes());
        assert_eq!(1.5f64.slot(), 1.5f64.to_bits());
        assert_eq!(LaunchArgs::new().scalar(1u64).scalar(2i32).len(), 2);
    }
}

/// A kernel's parameter block (geometry, unit lists, fill patterns) in device memory, taken from
/// a buffer the calling thread keeps between launches: a launch costs one small copy, not an
/// allocation and a free (`cuMemFree` waits for the whole device). For blocking launches only
/// ([`LaunchArgs::launch`]): the buffer is reused by the thread's next launch.
pub(crate) struct ParamBlock(Option<DeviceBuffer>);

thread_local!(static PARAMS: std::cell::RefCell<Option<DeviceBuffer>> = const { std::cell::RefCell::new(None) });

/// Larger blocks are not kept (a one-off launch over millions of units).
const KEEP_PARAMS: usize = 16 << 20;

impl ParamBlock {
    /// `bytes` copied to the device.
    pub(crate) fn upload(bytes: &[u8]) -> Result<ParamBlock> {
        let cached = PARAMS.with(|c| c.borrow_mut().take());
        let mut buf = match cached {
            Some(b) if b.len() >= bytes.len() => b,
            _ => DeviceBuffer::new(bytes.len().max(64 << 10))?,
        };
        buf.copy_from_host_at(0, bytes)?;
        Ok(ParamBlock(Some(buf)))
    }

    /// The device buffer (at least as long as the block).
    pub(crate) fn buffer(&self) -> &DeviceBuffer {
        self.0.as_ref().unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl Drop for ParamBlock {
    fn drop(&mut self) {
        if let Some(b) = self.0.take()
            && b.len() <= KEEP_PARAMS
        {
            PARAMS.with(|c| {
                let mut c = c.borrow_mut();
                if c.as_ref().is_none_or(|old| old.len() < b.len()) {
                    *c = Some(b);
                }
            });
        }
    }
}
