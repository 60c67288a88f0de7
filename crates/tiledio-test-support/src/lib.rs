//! Helpers shared by the tests of the tiledio crates (a dev-dependency only): deterministic
//! random data, the workspace's `testdata/` folder, `.npy` fixtures, and the Python interpreter with the interop
//! packages (tifffile, zarr-python, OpenSlide), installed on first use so a fresh machine needs
//! nothing set up by hand.
//!
//! ```
//! let a = tiledio_test_support::random::random_bytes(16, 7);
//! assert_eq!(a, tiledio_test_support::random::random_bytes(16, 7));
//! assert!(tiledio_test_support::testdata("tiff").is_dir());
//! ```

use std::path::PathBuf;

pub mod net;
pub mod npy;
pub mod python;

/// Deterministic pseudo-random test data.
pub mod random {
    /// A small deterministic generator (xorshift), for random test cases.
    pub struct Rng(pub u64);

    impl Rng {
        /// The next 64 random bits.
        #[allow(clippy::should_implement_trait)]
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A number in `0..n` (`n` > 0).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// `n` pseudo-random bytes from `seed` (xorshift): never all zeros, the same on every run.
    pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// `n` pseudo-random samples of `size` bytes (native order) from `seed`: random bits for
    /// integers; for floats (`float`, `size` 4 or 8) finite values, since NaN never compares
    /// equal.
    pub fn random_samples(n: usize, size: usize, float: bool, seed: u64) -> Vec<u8> {
        let mut b = random_bytes(n * size, seed);
        if float {
            for (i, ch) in b.chunks_exact_mut(size).enumerate() {
                let v = (i % 997) as f64 * 0.25 - 50.0;
                if size == 4 {
                    ch.copy_from_slice(&(v as f32).to_ne_bytes());
                } else {
                    ch.copy_from_slice(&v.to_ne_bytes());
                }
            }
        }
        b
    }
}

/// The variable that marks a test re-run in a child process by [`run_in_child`].
const CHILD: &str = "TILEDIO_TEST_CHILD";

/// Whether this process is a child started by [`run_in_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs this test binary's test `name` again in a child process with `env` set (settings such
/// as `TILEDIO_MAX_MEMORY` are read from the environment, which a test must not change in its
/// own process), and fails unless the child ran that one test and it passed. `extra` adds
/// arguments for the test harness (e.g. `--ignored`). Returns at once in the child itself.
///
/// ```no_run
/// # fn my_test() {
/// tiledio_test_support::run_in_child("my_test", &[("TILEDIO_MAX_MEMORY", "8M")], &[]);
/// if !tiledio_test_support::is_child() { return; }
/// // ... the part that runs under the small budget ...
/// # }
/// ```
///
/// # Panics
/// When the child fails or did not run the test (the message holds its output).
pub fn run_in_child(name: &str, env: &[(&str, &str)], extra: &[&str]) {
    if is_child() {
        return;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test binary: {e}"));
    let out = std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .args(extra)
        .env(CHILD, "1")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot start the child for {name}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {name} failed:\n{text}");
    assert!(text.contains("1 passed"), "child {name} did not run:\n{text}");
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A folder of the workspace's `testdata/` (`"tiff"`, `"zarr"`, `"fuzz/zarr"`, ...).
pub fn testdata(sub: &str) -> PathBuf {
    workspace_root().join("testdata").join(sub)
}

/// The built example `name` whose source is `source` (a path from the workspace root, such as
/// `"examples/tiled_sobel.rs"`): `target/<profile>/examples/<name>`, beside this test binary's
/// `deps/` folder. `cargo test` builds a crate's examples before running its tests; a test run
/// alone with `--test NAME` does not, so a missing or older-than-its-source binary fails here
/// with what to run, never a silent skip.
///
/// ```no_run
/// let exe = tiledio_test_support::example_binary("zarr_bench", "crates/tiledio-zarr/examples/zarr_bench.rs");
/// let out = std::process::Command::new(exe).arg("--help").output().unwrap();
/// assert!(out.status.success());
/// ```
///
/// # Panics
/// When the binary is missing or older than its source.
pub fn example_binary(name: &str, source: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("cannot find the test binary: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("{}: not in target/<profile>/deps", exe.display()));
    let bin = profile_dir.join("examples").join(name);
    let how = "run `cargo test` for its crate (it builds the examples), or `cargo build --examples` first";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("example {name} not built at {} ({e}): {how}", bin.display()));
    let src = workspace_root().join(source);
    let written = std::fs::metadata(&src)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    assert!(
        built >= written,
        "example {name} at {} is older than {source}: {how}",
        bin.display()
    );
    bin
}
