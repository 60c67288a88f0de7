//! Deterministic pseudo-random test data (xorshift): never all zeros, the same on every run.
#![allow(dead_code, unreachable_pub)]

/// `n` pseudo-random bytes from `seed`.
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
