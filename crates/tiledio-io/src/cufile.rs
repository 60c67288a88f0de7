//! cuFile (GPUDirect Storage), loaded at run time.
//!
//! We load libcufile ourselves rather than through cudarc: cudarc does not look for the real
//! soname `libcufile.so.0` (pip's nvidia-cufile wheel ships only that) and panics on a missing
//! library or symbol, where we need a reason to report and a fallback.

use std::ffi::{c_int, c_void};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

/// `CUfileError_t`: the op error and the CUDA driver error. Plain ints, so an unknown code
/// from a newer library is still a valid value.
#[repr(C)]
#[derive(Clone, Copy)]
struct Status {
    err: c_int,
    cu_err: c_int,
}

/// `CUfileDescr_t` for an opaque file descriptor.
#[repr(C)]
struct Descr {
    kind: c_int,
    handle: Handle,
    fs_ops: *const c_void,
}

#[repr(C)]
union Handle {
    fd: c_int,
    _ptr: *mut c_void,
}

const CU_FILE_HANDLE_TYPE_OPAQUE_FD: c_int = 1;

type DriverOpen = unsafe extern "C" fn() -> Status;
type HandleRegister = unsafe extern "C" fn(*mut *mut c_void, *mut Descr) -> Status;
type HandleDeregister = unsafe extern "C" fn(*mut c_void);
type ReadFn = unsafe extern "C" fn(*mut c_void, *mut c_void, usize, libc::off_t, libc::off_t) -> isize;
type WriteFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, libc::off_t, libc::off_t) -> isize;

/// The loaded library and the calls we use.
pub(crate) struct CuFileApi {
    _lib: libloading::Library,
    handle_register: HandleRegister,
    handle_deregister: HandleDeregister,
    read: ReadFn,
    write: WriteFn,
    /// Which file was loaded.
    pub(crate) loaded: String,
    /// True when nvidia-fs is not loaded and cuFile runs in its compatibility mode (POSIX).
    pub(crate) compat_mode: bool,
}

/// Names tried, in order; `TILEDIO_CUFILE_LIB` (a path or name) goes first when set.
fn candidates() -> Vec<String> {
    let mut c: Vec<String> = std::env::var("TILEDIO_CUFILE_LIB").ok().into_iter().collect();
    c.extend(["libcufile.so.0", "libcufile.so", "libcufile.so.1"].map(String::from));
    c
}

fn describe(s: Status) -> String {
    let name = match s.err {
        0 => "CU_FILE_SUCCESS",
        5001 => "CU_FILE_DRIVER_NOT_INITIALIZED",
        5007 => "CU_FILE_PLATFORM_NOT_SUPPORTED",
        5008 => "CU_FILE_IO_NOT_SUPPORTED",
        5009 => "CU_FILE_DEVICE_NOT_SUPPORTED",
        5010 => "CU_FILE_NVFS_DRIVER_ERROR",
        5011 => "CU_FILE_CUDA_DRIVER_ERROR",
        5016 => "CU_FILE_INVALID_FILE_TYPE",
        5017 => "CU_FILE_INVALID_FILE_OPEN_FLAG",
        5018 => "CU_FILE_DIO_NOT_SET",
        5026 => "CU_FILE_INTERNAL_ERROR",
        5030 => "CU_FILE_NVFS_SETUP_ERROR",
        _ => "cuFile error",
    };
    if s.cu_err != 0 {
        format!("{name} ({}; CUDA error {})", s.err, s.cu_err)
    } else {
        format!("{name} ({})", s.err)
    }
}

static API: OnceLock<Result<CuFileApi, String>> = OnceLock::new();

/// The cuFile driver, opened on first use; `Err` says why it cannot be used.
pub(crate) fn api() -> Result<&'static CuFileApi, String> {
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<CuFileApi, String> {
    crate::gpu::gpu().map_err(|e| e.to_string())?;
    let names = candidates();
    let (lib, loaded) = names
        .iter()
        // SAFETY: loading libcufile runs its initialisers, which only set up the library.
        .find_map(|n| unsafe { libloading::Library::new(n) }.ok().map(|l| (l, n.clone())))
        .ok_or_else(|| format!("libcufile not found (tried {})", names.join(", ")))?;
    // SAFETY: the symbol types match the cuFile C API (cufile.h).
    let api = unsafe {
        let sym = |name: &str| format!("{loaded} has no symbol {name}");
        let driver_open: DriverOpen = *lib.get(b"cuFileDriverOpen\0").map_err(|_| sym("cuFileDriverOpen"))?;
        let handle_register: HandleRegister = *lib
            .get(b"cuFileHandleRegister\0")
            .map_err(|_| sym("cuFileHandleRegister"))?;
        let handle_deregister: HandleDeregister = *lib
            .get(b"cuFileHandleDeregister\0")
            .map_err(|_| sym("cuFileHandleDeregister"))?;
        let read: ReadFn = *lib.get(b"cuFileRead\0").map_err(|_| sym("cuFileRead"))?;
        let write: WriteFn = *lib.get(b"cuFileWrite\0").map_err(|_| sym("cuFileWrite"))?;
        let st = driver_open();
        if st.err != 0 {
            return Err(format!("cuFileDriverOpen failed: {}", describe(st)));
        }
        CuFileApi {
            _lib: lib,
            handle_register,
            handle_deregister,
            read,
            write,
            loaded,
            compat_mode: !std::path::Path::new("/proc/driver/nvidia-fs").exists(),
        }
    };
    Ok(api)
}

/// A file registered with cuFile; deregistered on drop.
pub(crate) struct CuFileHandle {
    handle: *mut c_void,
    _file: File,
}

// SAFETY: cuFile handles are thread-safe for concurrent reads and writes (cufile.h).
unsafe impl Send for CuFileHandle {}
// SAFETY: as above.
unsafe impl Sync for CuFileHandle {}

impl CuFileHandle {
    /// Registers `file` (opened with O_DIRECT for the GPUDirect path).
    pub(crate) fn register(file: File) -> Result<CuFileHandle, String> {
        let api = api()?;
        let mut descr = Descr {
            kind: CU_FILE_HANDLE_TYPE_OPAQUE_FD,
            handle: Handle { fd: file.as_raw_fd() },
            fs_ops: std::ptr::null(),
        };
        let mut handle = std::ptr::null_mut();
        // SAFETY: descr describes an open descriptor that outlives the handle (kept in self).
        let st = unsafe { (api.handle_register)(&mut handle, &mut descr) };
        if st.err != 0 {
            return Err(format!(
                "cuFileHandleRegister refused the file: {} (cufile.log gives the cause, e.g. 'udev property not found: ID_FS_USAGE' where the VM has no udev data for the block device)",
                describe(st)
            ));
        }
        Ok(CuFileHandle { handle, _file: file })
    }

    /// `cuFileWrite` (`write`) or `cuFileRead` of `size` bytes between the file at
    /// `file_offset` and device memory at `dev_base + dev_offset`.
    pub(crate) fn transfer(
        &self,
        write: bool,
        dev_base: u64,
        dev_offset: usize,
        size: usize,
        file_offset: u64,
    ) -> Result<usize, String> {
        let api = api()?;
        let (off, dev_off) = (file_offset as libc::off_t, dev_offset as libc::off_t);
        // SAFETY: the caller guarantees the device range is valid; the handle is registered.
        let n = unsafe {
            if write {
                (api.write)(self.handle, dev_base as *const c_void, size, off, dev_off)
            } else {
                (api.read)(self.handle, dev_base as *mut c_void, size, off, dev_off)
            }
        };
        if n < 0 {
            Err(format!(
                "{} returned {n}",
                if write { "cuFileWrite" } else { "cuFileRead" }
            ))
        } else {
            Ok(n as usize)
        }
    }
}

impl Drop for CuFileHandle {
    fn drop(&mut self) {
        if let Ok(api) = api() {
            // SAFETY: registered in register(), deregistered once.
            unsafe { (api.handle_deregister)(self.handle) };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn searches_the_real_soname_first() {
        let c = super::candidates();
        let real = c
            .iter()
            .position(|n| n == "libcufile.so.0")
            .expect("libcufile.so.0 searched");
        let dev = c
            .iter()
            .position(|n| n == "libcufile.so")
            .expect("libcufile.so searched");
        assert!(real < dev);
    }
}
