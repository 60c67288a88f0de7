//! Counter-based random numbers: every stream is keyed by (seed, stream, index), so a frame's
//! noise depends on its index only, never on the order or thread that makes it.

use std::sync::OnceLock;

/// The splitmix64 finaliser: a bijective 64-bit mix.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Streams of one seed.
pub(super) const STREAM_OBJECT: u64 = 1;
pub(super) const STREAM_DARK_MAP: u64 = 2;
pub(super) const STREAM_PHOTONS: u64 = 3;
pub(super) const STREAM_READ: u64 = 4;
pub(super) const STREAM_DARK_FRAMES: u64 = 5;

/// splitmix64 from a key derived from (seed, stream, index).
pub(super) struct Rng {
    state: u64,
}

impl Rng {
    pub(super) fn new(seed: u64, stream: u64, index: u64) -> Rng {
        let k = mix(seed ^ 0x6a09_e667_f3bc_c908);
        let k = mix(k ^ stream.wrapping_mul(0xbb67_ae85_84ca_a73b));
        let k = mix(k.wrapping_add(index.wrapping_mul(0x3c6e_f372_fe94_f82b)));
        Rng { state: k }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in (0, 1), never 0 or 1.
    pub(super) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }
}

/// `ln k!`: a table below 32, Stirling's series above (error below 1e-15 relative).
fn ln_factorial(k: f64) -> f64 {
    static TABLE: OnceLock<[f64; 32]> = OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0f64; 32];
        for i in 1..32 {
            t[i] = t[i - 1] + (i as f64).ln();
        }
        t
    });
    if k < 32.0 {
        return t[k as usize];
    }
    let r = 1.0 / k;
    let r2 = r * r;
    k * k.ln() - k + 0.5 * (2.0 * std::f64::consts::PI * k).ln() + r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 / 1260.0))
}

/// A Poisson sample of mean `lambda` (0 for a mean that is not positive): inversion below 10,
/// Hörmann's transformed rejection (PTRS, as NumPy) above.
pub(super) fn poisson(rng: &mut Rng, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda < 10.0 {
        let u = rng.uniform();
        let mut p = (-lambda).exp();
        let (mut s, mut k) = (p, 0u64);
        while u > s {
            k += 1;
            p *= lambda / k as f64;
            if p <= s * f64::EPSILON {
                break; // the tail no longer changes the sum
            }
            s += p;
        }
        return k;
    }
    let slam = lambda.sqrt();
    let loglam = lambda.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let invalpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + invalpha.ln() - (a / (us * us) + b).ln() <= -lambda + k * loglam - ln_factorial(k) {
            return k as u64;
        }
    }
}

/// Acklam's inverse of the standard normal CDF (relative error below 1.2e-9).
fn inv_norm_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - 0.02425 {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// Bits of a read-noise sample: [`gauss_table`] has `1 << GAUSS_BITS` entries.
pub(super) const GAUSS_BITS: u32 = 12;

/// 4096 quantiles of the standard normal distribution (at the bin centres, 16 KiB: it stays in
/// the L1 cache): 12 random bits pick one, so one `u64` gives five read-noise samples. The tails
/// end at ±3.5σ and the variance is 0.997.
pub(super) fn gauss_table() -> &'static [f32; 1 << GAUSS_BITS] {
    static T: OnceLock<[f32; 1 << GAUSS_BITS]> = OnceLock::new();
    T.get_or_init(|| {
        let n = (1u32 << GAUSS_BITS) as f64;
        let mut t = [0f32; 1 << GAUSS_BITS];
        for (j, v) in t.iter_mut().enumerate() {
            *v = inv_norm_cdf((j as f64 + 0.5) / n) as f32;
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(lambda: f64, n: usize) -> (f64, f64) {
        let mut r = Rng::new(7, 9, lambda.to_bits());
        let v: Vec<f64> = (0..n).map(|_| poisson(&mut r, lambda) as f64).collect();
        let m = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        (m, var)
    }

    #[test]
    fn poisson_mean_and_variance() {
        for lambda in [0.01, 0.5, 3.0, 9.9, 10.0, 30.0, 1000.0, 1e6] {
            let n = 200_000;
            let (m, var) = moments(lambda, n);
            let se = (lambda / n as f64).sqrt();
            assert!((m - lambda).abs() < 5.0 * se, "lambda {lambda}: mean {m}");
            assert!((var / lambda - 1.0).abs() < 0.03, "lambda {lambda}: variance {var}");
        }
        assert_eq!(poisson(&mut Rng::new(0, 0, 0), 0.0), 0);
        assert_eq!(poisson(&mut Rng::new(0, 0, 0), f64::NAN), 0);
    }

    #[test]
    fn ln_factorial_matches_the_sum() {
        let mut s = 0f64;
        for k in 1..200 {
            s += (k as f64).ln();
            assert!((ln_factorial(k as f64) - s).abs() < 1e-12 * s.max(1.0), "{k}");
        }
    }

    #[test]
    fn gauss_table_is_standard_normal() {
        let t = gauss_table();
        let n = t.len() as f64;
        let m = t.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = t.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
        assert!(m.abs() < 1e-6 && (var - 1.0).abs() < 4e-3, "{m} {var}");
        assert!((inv_norm_cdf(0.975) - 1.959_963_985).abs() < 1e-8);
    }
}
