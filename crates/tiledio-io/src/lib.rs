//! Byte-range I/O between files and host or GPU memory, as fast as the machine allows.
//!
//! One handle type, [`FileHandle`], reads many ranges of a file in one call
//! ([`FileHandle::read_ranges`]) into host memory or GPU memory ([`gpu::DeviceBuffer`]); the
//! same call picks the fastest working backend for the file and says why it passed over the
//! others ([`FileHandle::backend_report`]):
//!
//! - [`Backend::CuFile`]: NVIDIA cuFile (GPUDirect Storage), where nvidia-fs is loaded;
//! - [`Backend::Staged`]: our parallel POSIX engine — worker threads `pread` task-sized pieces
//!   into preallocated pinned buffers and copy them to the GPU asynchronously, overlapped;
//! - [`Backend::Mmap`]: a registered `mmap` copied straight to the GPU (on request);
//! - [`Backend::Host`]: parallel `pread` into host memory.
//!
//! Writes go through [`FileWriter`] (a temporary file renamed into place when complete) and
//! [`write_files`] (many whole files, e.g. chunk files). Nothing from CUDA is linked at build
//! time: libcuda, libnvrtc and libcufile are loaded at run time, and every host path works
//! without them.
//!
//! Settings have defaults and `TILEDIO_*` environment overrides ([`Settings`]).

mod array;
mod backend;
mod context;
mod cufile;
mod disjoint;
mod element;
mod engine;
mod error;
mod file;
pub mod gpu;
mod mapped;
mod memory;
mod output;
mod plan;
mod posix;
mod settings;

pub use array::{ArrayLayout, Border, DeviceArray, DeviceView, HostArray, Region};
pub use backend::{Backend, BackendReport};
pub use context::{Context, Scratch};
pub use disjoint::{DisjointBytes, OutOfBounds};
pub use element::ElementType;
pub use engine::prewarm;
pub use error::{IoError, Result};
pub use file::{
    FileHandle, FileRead, FileWrite, FileWriter, ReadStats, Source, Target, WriteStats, read_files, write_files,
};
pub use memory::{check_memory, memory_budget, try_alloc_zeroed};
pub use output::{OutputDir, OutputKind, check_output, file_kind, remove_stale_temporaries, remove_temporaries};
pub use plan::{ReadRange, WriteRange};
pub use settings::{BackendChoice, Settings};

/// Why cuFile cannot be used on this machine, or `None` when its driver opened. The answer is
/// about the library and driver only; registering a particular file may still fail
/// ([`FileHandle::backend_report`] says so per file).
pub fn cufile_status() -> Option<String> {
    match cufile::api() {
        Ok(api) if api.compat_mode => Some(format!(
            "{} loaded, driver open, but nvidia-fs is not loaded: compatibility mode",
            api.loaded
        )),
        Ok(_) => None,
        Err(why) => Some(why),
    }
}
