//! CUDA C kernels compiled at run time with NVRTC (no CUDA toolkit needed to build).

use super::{Gpu, cuda_err, gpu};
use crate::error::{IoError, Result};
use cudarc::driver::{result, sys};
use std::ffi::c_void;
use std::sync::Arc;

/// A compiled and loaded CUDA module.
pub struct Module {
    module: sys::CUmodule,
}

// SAFETY: module handles are usable from any thread with the context current.
unsafe impl Send for Module {}
// SAFETY: as above; loading functions does not mutate the module.
unsafe impl Sync for Module {}

/// A kernel function of a [`Module`].
pub struct Kernel {
    func: sys::CUfunction,
    _module: Arc<Module>,
}

// SAFETY: function handles are usable from any thread with the context current.
unsafe impl Send for Kernel {}
// SAFETY: as above.
unsafe impl Sync for Kernel {}

impl Gpu {
    /// Compiles CUDA C source with NVRTC for this GPU and loads it; cached by `name`, the
    /// source and the compiler options, so a second call with the same source costs nothing
    /// and a changed source under the same name is compiled anew.
    ///
    /// ```no_run
    /// let g = tiledio_io::gpu::gpu()?;
    /// let m = g.compile("fill", r#"extern "C" __global__ void fill(unsigned char* p, unsigned long long n) {
    ///     unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    ///     if (i < n) p[i] = 7; }"#)?;
    /// let k = m.function("fill")?;
    /// # Ok::<(), tiledio_io::IoError>(())
    /// ```
    ///
    /// # Errors
    /// [`IoError::NoGpu`] if libnvrtc is missing; [`IoError::Compile`] with the compiler log.
    pub fn compile(&self, name: &str, cuda_src: &str) -> Result<Arc<Module>> {
        self.bind()?;
        let (major, minor) = self.compute_capability;
        let options = vec![
            format!("--gpu-architecture=compute_{major}{minor}"),
            "-default-device".to_string(),
        ];
        let key = cache_key(name, cuda_src, &options);
        let mut cache = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        // SAFETY: only tries to dlopen candidate names.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(IoError::NoGpu {
                reason: "libnvrtc not found: kernels cannot be compiled".into(),
            });
        }
        let opts = cudarc::nvrtc::CompileOptions {
            options,
            name: Some(format!("{name}.cu")),
            ..Default::default()
        };
        let ptx = std::panic::catch_unwind(|| cudarc::nvrtc::compile_ptx_with_opts(cuda_src, opts))
            .map_err(|_| IoError::NoGpu {
                reason: "libnvrtc could not be used (missing symbol)".into(),
            })?
            .map_err(|e| IoError::Compile {
                name: name.into(),
                log: format!("{e:?}"),
            })?;
        let src = std::ffi::CString::new(ptx.to_src()).map_err(|_| IoError::Compile {
            name: name.into(),
            log: "PTX holds a NUL byte".into(),
        })?;
        // SAFETY: src is NUL-terminated PTX text.
        let module = unsafe { result::module::load_data(src.as_ptr() as *const c_void) }
            .map_err(|e| cuda_err("cuModuleLoadData", e))?;
        let m = Arc::new(Module { module });
        cache.insert(key, m.clone());
        Ok(m)
    }
}

/// The module cache's key: the name, then a hash of the source and the NVRTC options.
fn cache_key(name: &str, src: &str, options: &[String]) -> String {
    use std::hash::{Hash, Hasher};
    // a fixed-key hasher: the same inputs give the same key for the life of the process
    let mut h = std::collections::hash_map::DefaultHasher::new();
    src.hash(&mut h);
    options.hash(&mut h);
    format!("{name}\0{:016x}", h.finish())
}

impl Module {
    /// Looks up a kernel by its `extern "C"` name.
    ///
    /// # Errors
    /// [`IoError::Cuda`] if the module has no such function.
    pub fn function(self: &Arc<Self>, name: &str) -> Result<Kernel> {
        gpu()?;
        let cname = std::ffi::CString::new(name).map_err(|_| IoError::Cuda {
            op: "cuModuleGetFunction",
            message: "name holds a NUL byte".into(),
        })?;
        // SAFETY: valid module and NUL-terminated name.
        let func = unsafe { result::module::get_function(self.module, cname) }
            .map_err(|e| cuda_err("cuModuleGetFunction", e))?;
        Ok(Kernel {
            func,
            _module: self.clone(),
        })
    }
}

impl Kernel {
    /// Launches the kernel on the default stream (asynchronously; [`Gpu::synchronize`] waits).
    ///
    /// # Safety
    /// `args` must point to values whose types and count match the kernel's parameters, and
    /// every device pointer among them must be valid for what the kernel accesses.
    ///
    /// # Errors
    /// [`IoError::Cuda`] if the launch is refused.
    pub unsafe fn launch(
        &self,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        // SAFETY: the legacy default stream; the caller's guarantees.
        unsafe { self.launch_raw(std::ptr::null_mut(), grid, block, shared_bytes, args) }
    }

    /// Queues the kernel on `stream` (no host wait: the stream orders it with the caller's
    /// other work; the argument values are copied at the call).
    ///
    /// # Safety
    /// As [`Kernel::launch`], and every buffer the kernel touches must stay allocated and
    /// untouched by other streams and the host until the kernel has run.
    ///
    /// # Errors
    /// [`IoError::Cuda`] if the launch is refused.
    pub unsafe fn launch_on(
        &self,
        stream: &super::Stream,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        // SAFETY: a valid stream; the caller's guarantees.
        unsafe { self.launch_raw(stream.handle, grid, block, shared_bytes, args) }
    }

    /// # Safety
    /// As [`Kernel::launch_on`], with `stream` a valid stream handle (null: the default one).
    unsafe fn launch_raw(
        &self,
        stream: cudarc::driver::sys::CUstream,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        shared_bytes: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        gpu()?;
        // SAFETY: the caller guarantees the arguments match the kernel and outlive its run.
        unsafe { result::launch_kernel(self.func, grid, block, shared_bytes, stream, args) }
            .map_err(|e| cuda_err("cuLaunchKernel", e))
    }
}

#[cfg(test)]
mod tests {
    use super::cache_key;

    #[test]
    fn cache_key_covers_name_source_and_options() {
        let o = vec!["-a".to_string()];
        let k = cache_key("m", "src", &o);
        assert_eq!(k, cache_key("m", "src", &o));
        assert_ne!(k, cache_key("n", "src", &o));
        assert_ne!(k, cache_key("m", "src2", &o));
        assert_ne!(k, cache_key("m", "src", &["-b".to_string()]));
    }
}
