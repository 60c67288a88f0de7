//! The root package's examples (`tiled_sobel`, `stain_normalize`, `ptycho_stream`): `--help`
//! prints the usage and exits 0 at once, without starting a run; an unknown option is an error
//! with exit status 2.

use std::process::Command;
use std::time::{Duration, Instant};

const EXAMPLES: [&str; 3] = ["tiled_sobel", "stain_normalize", "ptycho_stream"];

fn exe(name: &str) -> std::path::PathBuf {
    tiledio_test_support::example_binary(name, &format!("examples/{name}.rs"))
}

#[test]
fn help_prints_usage_and_exits_at_once() {
    for name in EXAMPLES {
        for flag in ["--help", "-h"] {
            let t = Instant::now();
            let o = Command::new(exe(name)).arg(flag).output().unwrap();
            assert!(o.status.success(), "{name} {flag}: {o:?}");
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.to_lowercase().contains("usage"), "{name} {flag}: {out}");
            assert!(out.contains(name), "{name} {flag}: {out}");
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{name} {flag} took {:?}",
                t.elapsed()
            );
        }
    }
}

#[test]
fn an_unknown_option_is_refused() {
    for name in EXAMPLES {
        let o = Command::new(exe(name)).arg("--frobnicate").arg("1").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--frobnicate"),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
