//! The `zarr_bench` example: `--help` prints its usage and exits at once, a bad option is a
//! one-line error with exit status 2, and without arguments it runs only its small default
//! (1024², a few MB), leaving nothing behind in the temporary directory.

use std::process::Command;
use std::time::{Duration, Instant};

fn exe() -> std::path::PathBuf {
    tiledio_test_support::example_binary("zarr_bench", "crates/tiledio-zarr/examples/zarr_bench.rs")
}

#[test]
fn help_prints_usage_and_exits() {
    for flag in ["--help", "-h"] {
        let t = Instant::now();
        let o = Command::new(exe()).arg(flag).output().unwrap();
        assert!(o.status.success(), "{o:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("Usage:") && out.contains("--size"), "{out}");
        assert!(t.elapsed() < Duration::from_secs(5), "--help took {:?}", t.elapsed());
    }
    let o = Command::new(exe()).arg("--frobnicate").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown option \"--frobnicate\""));
}

#[test]
fn no_arguments_run_the_small_default_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(exe()).env("TMPDIR", tmp.path()).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("array 1024x1024x3 u8"), "{out}");
    assert!(out.contains("read host") || out.contains("read GPU"), "{out}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn dir_is_never_emptied() {
    // the old example removed --dir itself before each write
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("keep.txt");
    std::fs::write(&mine, b"mine").unwrap();
    let o = Command::new(exe())
        .args(["--size", "64", "--chunks", "32", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&mine).unwrap(), b"mine");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keep.txt"]);
}
