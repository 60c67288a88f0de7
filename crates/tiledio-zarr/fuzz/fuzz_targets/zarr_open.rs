//! Fuzz target: any little file tree (see `harness.rs`), opened and read as a Zarr array (v2,
//! v3, sharded) and as an OME-Zarr group, must give a result or a typed `ZarrError`, never a
//! panic, an abort, a hang or unbounded memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "harness.rs"]
mod harness;

/// One folder per process under /dev/shm, rewritten for every input; a 64 MiB memory budget
/// and one I/O thread.
fn root() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        // SAFETY: set once, before the library reads the environment or starts threads.
        unsafe {
            std::env::set_var("TILEDIO_MAX_MEMORY", "64M");
            std::env::set_var("TILEDIO_THREADS", "1");
            std::env::set_var("RAYON_NUM_THREADS", "1");
        }
        PathBuf::from(format!("/dev/shm/tiledio-zarr-fuzz-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    harness::run(root(), data);
});
