//! Fuzz target: any bytes, opened as a slide and read, must give a result or a typed
//! `TiffError`, never a panic, an abort or unbounded memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use tiledio_io::Settings;

#[path = "harness.rs"]
mod harness;

/// One file per process under /dev/shm, rewritten for every input.
fn path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| PathBuf::from(format!("/dev/shm/tiledio-fuzz-{}.tif", std::process::id())))
}

fn settings() -> &'static Settings {
    static S: OnceLock<Settings> = OnceLock::new();
    S.get_or_init(|| Settings {
        threads: 1,
        ..Default::default()
    })
}

fuzz_target!(|data: &[u8]| {
    harness::run(path(), settings(), data);
});
