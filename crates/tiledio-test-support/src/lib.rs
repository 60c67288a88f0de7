//! Helpers shared by the tests of the tiledio crates (a dev-dependency only): deterministic
//! random data, the workspace's `testdata/` folder, and the Python interpreter with the interop
//! packages (tifffile, zarr-python, OpenSlide), installed on first use so a fresh machine needs
//! nothing set up by hand.
//!
//! ```
//! let a = tiledio_test_support::random::random_bytes(16, 7);
//! assert_eq!(a, tiledio_test_support::random::random_bytes(16, 7));
//! assert!(tiledio_test_support::testdata("tiff").is_dir());
//! ```

use std::path::PathBuf;

pub mod python;

/// Deterministic pseudo-random test data.
pub mod random {
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
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A folder of the workspace's `testdata/` (`"tiff"`, `"zarr"`, `"fuzz/zarr"`, ...).
pub fn testdata(sub: &str) -> PathBuf {
    workspace_root().join("testdata").join(sub)
}
