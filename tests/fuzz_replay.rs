//! Replays the small checked-in fuzz corpora (testdata/fuzz/zarr, testdata/fuzz/tiff) through
//! the same harnesses as the `cargo fuzz` targets (crates/tiledio-zarr/fuzz,
//! crates/tiledio-tiff/fuzz): every input must give a result or an error, never a panic. Each
//! replay runs in a child process with a 256 MiB memory budget (`TILEDIO_MAX_MEMORY`), as the
//! fuzz targets do.

use std::path::{Path, PathBuf};

#[path = "../crates/tiledio-zarr/fuzz/fuzz_targets/harness.rs"]
mod zarr_harness;

#[path = "../crates/tiledio-tiff/fuzz/fuzz_targets/harness.rs"]
mod tiff_harness;

fn corpus(name: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fuzz").join(name);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "md"))
        .collect();
    v.sort();
    v
}

/// Runs this binary's test `name` again in a child with the fuzz targets' environment; true in
/// the child.
fn in_child(name: &str) -> bool {
    tiledio_test_support::run_in_child(name, &[("TILEDIO_MAX_MEMORY", "256M"), ("TILEDIO_THREADS", "2")], &[]);
    tiledio_test_support::is_child()
}

#[test]
fn fuzz_replay_zarr() {
    if !in_child("fuzz_replay_zarr") {
        return;
    }
    let files = corpus("zarr");
    assert!(files.len() >= 20, "corpus too small: {}", files.len());
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        eprintln!("{}", f.display());
        let data = std::fs::read(&f).unwrap();
        zarr_harness::run(&dir.path().join("t"), &data);
    }
}

#[test]
fn fuzz_replay_tiff() {
    if !in_child("fuzz_replay_tiff") {
        return;
    }
    let files = corpus("tiff");
    assert!(files.len() >= 10, "corpus too small: {}", files.len());
    let dir = tempfile::tempdir().unwrap();
    let settings = tiledio::io::Settings {
        threads: 1,
        ..Default::default()
    };
    for f in files {
        eprintln!("{}", f.display());
        let data = std::fs::read(&f).unwrap();
        tiff_harness::run(&dir.path().join("t.tif"), &settings, &data);
    }
}
