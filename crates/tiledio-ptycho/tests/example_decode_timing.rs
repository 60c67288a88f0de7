//! The `decode_timing` example: `--help` prints its usage and exits at once, a bad option is an
//! error with exit status 2, and a short run prints its timing.

use std::process::Command;
use std::time::{Duration, Instant};

fn exe() -> std::path::PathBuf {
    tiledio_test_support::example_binary("decode_timing", "crates/tiledio-ptycho/examples/decode_timing.rs")
}

#[test]
fn help_prints_usage_and_exits() {
    let t = Instant::now();
    let o = Command::new(exe()).arg("--help").output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Usage:") && out.contains("--reps"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(5));
    for bad in [&["--reps", "0"][..], &["--reps"], &["extra"]] {
        let o = Command::new(exe()).args(bad).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {o:?}");
    }
}

#[test]
fn a_short_run_prints_its_timing() {
    let o = Command::new(exe()).args(["--reps", "2"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("ms/frame"), "{out}");
}
