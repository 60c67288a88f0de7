//! Finds a Python interpreter with the interop packages (tifffile, zarr, openslide, ...) for the
//! interoperability tests, installing them into `target/pydeps` from PyPI on first use, so that
//! `cargo test --workspace` needs nothing set up by hand. A test that cannot get them fails with the
//! reason: it never skips silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The PyPI packages the interop tests use, with the module each provides.
const PACKAGES: &[(&str, &str)] = &[
    ("numpy", "numpy"),
    ("tifffile", "tifffile"),
    ("imagecodecs", "imagecodecs"),
    ("zarr", "zarr"),
    ("numcodecs", "numcodecs"),
    ("openslide-python", "openslide"),
    ("openslide-bin", "openslide_bin"),
];

fn pydeps_dir() -> PathBuf {
    crate::workspace_root().join("target").join("pydeps")
}

fn python() -> String {
    std::env::var("TILEDIO_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn has_modules(extra_path: Option<&Path>) -> bool {
    let imports = PACKAGES.iter().map(|(_, m)| *m).collect::<Vec<_>>().join(", ");
    let mut cmd = Command::new(python());
    cmd.args(["-c", &format!("import {imports}")]);
    if let Some(p) = extra_path {
        cmd.env("PYTHONPATH", p);
    }
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

/// The `PYTHONPATH` to run the interop scripts with (`None`: the interpreter already has them).
///
/// # Panics
/// When no interpreter is found or the packages cannot be installed; the message says which.
pub fn pythonpath() -> Option<PathBuf> {
    static PATH: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        if has_modules(None) {
            return Ok(None);
        }
        let dir = pydeps_dir();
        if has_modules(Some(&dir)) {
            return Ok(Some(dir));
        }
        // Several test binaries may get here at once: take a lock file so one installs.
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let lock = dir.join(".install.lock");
        let lock_file = std::fs::File::create(&lock).map_err(|e| e.to_string())?;
        // SAFETY: flock on a valid descriptor we own; released when the file closes.
        unsafe_flock(&lock_file);
        if !has_modules(Some(&dir)) {
            let out = Command::new(python())
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--target"])
                .arg(&dir)
                .args(PACKAGES.iter().map(|(p, _)| *p))
                .output()
                .map_err(|e| format!("cannot run {} -m pip: {e}", python()))?;
            if !out.status.success() {
                return Err(format!(
                    "pip install of the interop packages failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        if has_modules(Some(&dir)) {
            Ok(Some(dir))
        } else {
            Err("interop packages installed but not importable".into())
        }
    })
    .clone()
    .unwrap_or_else(|e| panic!("interop tests need Python with {PACKAGES:?}: {e}"))
}

fn unsafe_flock(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn flock(fd: i32, op: i32) -> i32;
    }
    // SAFETY: the descriptor is open for the duration of the call; LOCK_EX = 2.
    unsafe {
        flock(f.as_raw_fd(), 2);
    }
}

/// Runs a Python snippet with the interop packages; `args` become `sys.argv[1:]`.
/// Returns the output; panics (failing the test) with stderr if the script fails.
pub fn run_python(script: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).args(args);
    if let Some(p) = pythonpath() {
        cmd.env("PYTHONPATH", p);
    }
    let out = cmd.output().expect("run python3");
    assert!(
        out.status.success(),
        "python script failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
