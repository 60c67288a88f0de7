//! Which backend serves GPU transfers for a file, and why the others were not used.

use crate::cufile::{self, CuFileHandle};
use crate::error::Result;
use crate::gpu::cuda_err;
use crate::mapped::FileMap;
use crate::settings::{BackendChoice, Settings};
use std::fs::File;
use std::path::Path;

/// A way of moving bytes between a file and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// cuFile (GPUDirect Storage): file to GPU memory without a host copy where nvidia-fs is loaded.
    CuFile,
    /// Parallel `pread` into pinned staging buffers, overlapped with asynchronous host→GPU copies.
    Staged,
    /// The file `mmap`ed and registered with the driver, copied straight to GPU memory.
    Mmap,
    /// Parallel `pread`/`pwrite` to and from host memory.
    Host,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::CuFile => "cufile",
            Backend::Staged => "posix-staged",
            Backend::Mmap => "mmap-registered",
            Backend::Host => "host-pread",
        })
    }
}

/// The backend chosen for GPU transfers of one file, with the reason each other one was not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendReport {
    /// The backend used.
    pub backend: Backend,
    /// A note on the chosen backend (e.g. cuFile running in compatibility mode).
    pub note: Option<String>,
    /// Backends passed over, each with why.
    pub rejected: Vec<(Backend, String)>,
}

impl std::fmt::Display for BackendReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.backend)?;
        if let Some(n) = &self.note {
            write!(f, " ({n})")?;
        }
        for (b, why) in &self.rejected {
            write!(f, "; not {b}: {why}")?;
        }
        Ok(())
    }
}

/// A file mapped into memory and registered with the driver (read-only), for [`Backend::Mmap`].
pub(crate) struct Mapping {
    map: FileMap,
}

impl Mapping {
    fn new(file: &File, len: u64) -> std::result::Result<Mapping, String> {
        let map = FileMap::new(file, len)?;
        crate::gpu::gpu().map_err(|e| e.to_string())?;
        let bytes = map.bytes();
        // SAFETY: the bytes are a live mapping; read-only registration suits a PROT_READ map.
        let r = unsafe {
            cudarc::driver::sys::cuMemHostRegister_v2(
                bytes.as_ptr() as *mut _,
                bytes.len(),
                cudarc::driver::sys::CU_MEMHOSTREGISTER_READ_ONLY,
            )
        }
        .result();
        // refused: the mapping is unmapped as `map` drops
        r.map_err(|e| {
            format!(
                "cuMemHostRegister refused the mapping: {}",
                cuda_err("cuMemHostRegister", e)
            )
        })?;
        Ok(Mapping { map })
    }

    /// The first byte of the mapped (and registered) file.
    pub(crate) fn ptr(&self) -> *const u8 {
        self.map.bytes().as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if crate::gpu::gpu().is_ok() {
            // SAFETY: registered in new(); the mapping itself is unmapped after, as `map` drops.
            let _ = unsafe { cudarc::driver::sys::cuMemHostUnregister(self.ptr() as *mut _) };
        }
    }
}

/// What a file's GPU transfers go through.
pub(crate) enum DeviceIo {
    CuFile(CuFileHandle),
    Staged,
    Mmap(Mapping),
}

/// Chooses the backend for GPU transfers of `path` under `settings`.
pub(crate) fn choose(path: &Path, file: &File, len: u64, settings: &Settings) -> Result<(DeviceIo, BackendReport)> {
    crate::gpu::gpu()?;
    let want = settings.backend;
    let mut rejected = Vec::new();
    let mut note = None;
    let mut chosen = None;

    if matches!(want, BackendChoice::Auto | BackendChoice::CuFile) {
        match try_cufile(path) {
            Ok(h) => {
                let compat = cufile::api().map(|a| a.compat_mode).unwrap_or(true);
                if compat && want == BackendChoice::Auto {
                    rejected.push((
                        Backend::CuFile,
                        "nvidia-fs is not loaded, so cuFile would run in compatibility mode (POSIX reads through its own bounce buffers), slower than the staged engine; set TILEDIO_BACKEND=cufile to use it anyway".into(),
                    ));
                } else {
                    if compat {
                        note = Some("compatibility mode: nvidia-fs is not loaded".to_string());
                    }
                    chosen = Some(DeviceIo::CuFile(h));
                }
            }
            Err(why) => rejected.push((Backend::CuFile, why)),
        }
    } else {
        rejected.push((Backend::CuFile, format!("not requested (backend {want:?})")));
    }

    if chosen.is_none() && want == BackendChoice::Mmap {
        match Mapping::new(file, len) {
            Ok(m) => chosen = Some(DeviceIo::Mmap(m)),
            Err(why) => rejected.push((Backend::Mmap, why)),
        }
    } else if want != BackendChoice::Mmap {
        rejected.push((Backend::Mmap, "used only on request (TILEDIO_BACKEND=mmap): registering the mapping pins the whole file, about 24 ms per GiB".into()));
    }

    let io = chosen.unwrap_or(DeviceIo::Staged);
    let backend = match io {
        DeviceIo::CuFile(_) => Backend::CuFile,
        DeviceIo::Staged => Backend::Staged,
        DeviceIo::Mmap(_) => Backend::Mmap,
    };
    if backend != Backend::Staged {
        rejected.push((Backend::Staged, format!("{backend} preferred")));
    }
    Ok((
        io,
        BackendReport {
            backend,
            note,
            rejected,
        },
    ))
}

fn try_cufile(path: &Path) -> std::result::Result<CuFileHandle, String> {
    cufile::api()?;
    let direct = crate::posix::open_direct(path).map_err(|e| format!("O_DIRECT refused by the file system: {e}"))?;
    CuFileHandle::register(direct)
}

/// Opens a regular file for reading, mapping permission errors.
pub(crate) fn open_read(path: &Path) -> Result<File> {
    crate::posix::open_regular(path)
}
