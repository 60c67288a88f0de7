//! Macenko stain normalisation as cuCIM's `stain_extraction_pca` / `normalize_colors_pca` do
//! it, split for whole slides into three reduction passes whose statistics are accumulated
//! tile by tile in bounded memory (`accumulate` each tile, `merge` partial results from other
//! threads or processes, `finish`), then a per-pixel map pass (CPU reference and GPU kernel,
//! bit-identical).
//!
//! 1. [`StainCovariance`]: optical density `od = -ln(clamp(v, 1, s) / s)` of each RGB `u8`
//!    pixel (`s` the source intensity, 240); the tissue pixels (every channel's `od > beta`,
//!    as cuCIM: `all`, beta 0.345) give the mean and covariance of `od` (merged with Chan's
//!    formula); `finish` gives the plane of the two largest eigenvectors ([`StainPlane`],
//!    signs as cuCIM: first coordinate positive).
//! 2. [`StainAngles`]: the angle `atan2(od·e2, od·e1)` of every tissue pixel in that plane,
//!    in a histogram of 65536 bins over [-π, π]; `finish` takes the `alpha` and `100 - alpha`
//!    percentiles (alpha 1), turns them back into stain vectors, haematoxylin first (larger
//!    red), columns normalised: the source stain matrix ([`StainMatrix`]).
//! 3. [`StainConcentrations`]: the concentrations `pinv(S) · od` of EVERY pixel (as cuCIM),
//!    a 65536-bin histogram per stain over the range they can take; `finish` takes the
//!    `100 - alpha` percentiles (the source's maximum concentrations) and gives the
//!    [`MacenkoNormalizer`].
//! 4. [`MacenkoNormalizer::host`] / [`MacenkoNormalizer::device`]: per pixel
//!    `rint(clamp(exp(-R · (f ∘ (pinv(S) · od))) · s, 0, 255))`, with `R` the reference
//!    stains and `f` the reference maximum concentrations over the source's (cuCIM's
//!    defaults in [`MacenkoParams::default`]).
//!
//! # Approximation
//! cuCIM sorts all values for its percentiles; we use fixed-bin histograms so a pass needs
//! bounded memory. Each order statistic is estimated inside its own bin (spread uniformly
//! within the bin), so a percentile is off by less than one bin width: `2π / 65536 ≈ 9.6e-5`
//! radians for the angles (the stain vectors' components move by less than that), and
//! `2 B / 65536` for a concentration, where `B = ln(s) · Σ_j |pinv_ij|` bounds it (about
//! `1.5e-3` relative to typical maxima). The covariance is float64 (cuCIM: float32). The
//! fixtures test compares with a line-by-line NumPy port of cuCIM's code.

use crate::colour::{SRC, det_exp, det_ln};
use crate::launch::LaunchArgs;
use crate::{Result, blocks, invalid, kernel};
use rayon::prelude::*;
use tiledio_io::gpu::{DeviceBuffer, Stream};

/// Bins of the percentile histograms.
const BINS: usize = 1 << 16;
/// Pixels a rayon task takes.
const CHUNK: usize = 4096;

/// The parameters of Macenko normalisation, cuCIM's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MacenkoParams {
    /// The transmitted light intensity (cuCIM: 240); values are clipped to `[1, s]`.
    pub source_intensity: f64,
    /// The percentile range `[alpha, 100 - alpha]` of the robust min and max (cuCIM: 1).
    pub alpha: f64,
    /// Pixels with an optical density `<= beta` in any channel are background (cuCIM: 0.345,
    /// Macenko's 0.15 for natural logarithms).
    pub beta: f64,
    /// The reference stain matrix: rows R, G, B; columns H, E.
    pub reference_stains: [[f64; 2]; 3],
    /// The reference maximum concentrations of H and E.
    pub reference_max_concentrations: [f64; 2],
}

impl Default for MacenkoParams {
    /// cuCIM's `normalize_colors_pca` defaults.
    fn default() -> Self {
        MacenkoParams {
            source_intensity: 240.0,
            alpha: 1.0,
            beta: 0.345,
            reference_stains: [[0.5626, 0.2159], [0.7201, 0.8012], [0.4062, 0.5581]],
            reference_max_concentrations: [1.9705, 1.0308],
        }
    }
}

impl MacenkoParams {
    fn check(&self) -> Result<()> {
        let finite = self.reference_stains.iter().flatten().all(|v| v.is_finite())
            && self.reference_max_concentrations.iter().all(|v| v.is_finite());
        let ok = self.source_intensity.is_finite()
            && self.source_intensity >= 1.0
            && (0.0..=100.0).contains(&self.alpha)
            && self.beta.is_finite()
            && self.beta >= 0.0
            && finite;
        if !ok {
            return Err(invalid(format!("Macenko parameters out of range: {self:?}")));
        }
        Ok(())
    }

    fn od(&self, px: &[u8]) -> [f64; 3] {
        let s = self.source_intensity;
        [0, 1, 2].map(|k| -det_ln((px[k] as f64).max(1.0).min(s) / s))
    }

    fn tissue(&self, od: &[f64; 3]) -> bool {
        od.iter().all(|&v| v > self.beta)
    }
}

fn pixels_of(rgb: &[u8]) -> Result<&[u8]> {
    if !rgb.len().is_multiple_of(3) {
        return Err(invalid(format!("RGB tile of {} bytes: not whole pixels", rgb.len())));
    }
    Ok(rgb)
}

/// Count, mean and co-moments (`Σ (x - mean)(x - mean)ᵀ`: xx, xy, xz, yy, yz, zz).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Moments {
    n: u64,
    mean: [f64; 3],
    m2: [f64; 6],
}

const PAIRS: [(usize, usize); 6] = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];

impl Moments {
    /// Two passes over a chunk's values.
    fn of(v: &[[f64; 3]]) -> Moments {
        let n = v.len();
        if n == 0 {
            return Moments::default();
        }
        let mut mean = [0.0; 3];
        for x in v {
            for k in 0..3 {
                mean[k] += x[k];
            }
        }
        mean = mean.map(|s| s / n as f64);
        let mut m2 = [0.0; 6];
        for x in v {
            for (p, &(a, b)) in PAIRS.iter().enumerate() {
                m2[p] += (x[a] - mean[a]) * (x[b] - mean[b]);
            }
        }
        Moments { n: n as u64, mean, m2 }
    }

    /// Chan et al.'s pairwise combination.
    fn merge(&mut self, o: &Moments) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let (na, nb) = (self.n as f64, o.n as f64);
        let d = [0, 1, 2].map(|k| o.mean[k] - self.mean[k]);
        for (p, &(a, b)) in PAIRS.iter().enumerate() {
            self.m2[p] += o.m2[p] + d[a] * d[b] * na * nb / n as f64;
        }
        for (m, dk) in self.mean.iter_mut().zip(d) {
            *m += dk * nb / n as f64;
        }
        self.n = n;
    }
}

/// Pass 1: the covariance of the tissue pixels' optical densities.
///
/// ```
/// use tiledio_kernels::{MacenkoParams, StainCovariance};
/// let p = MacenkoParams::default();
/// let mut whole = StainCovariance::new(p)?;
/// let mut a = StainCovariance::new(p)?;
/// let mut b = StainCovariance::new(p)?;
/// let img: Vec<u8> = (0..300u32).map(|i| (i * 37 % 120) as u8 + 20).collect();
/// whole.accumulate(&img)?;
/// a.accumulate(&img[..150])?; // tiles: any split into whole pixels
/// b.accumulate(&img[150..])?;
/// a.merge(&b);
/// assert_eq!(a.tissue_pixels(), whole.tissue_pixels());
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StainCovariance {
    params: MacenkoParams,
    m: Moments,
}

impl StainCovariance {
    /// An empty accumulator.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] for parameters out of range.
    pub fn new(params: MacenkoParams) -> Result<StainCovariance> {
        params.check()?;
        Ok(StainCovariance {
            params,
            m: Moments::default(),
        })
    }

    /// Adds a tile of RGB `u8` pixels (interleaved; any number of whole pixels).
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if `rgb` is not whole pixels.
    pub fn accumulate(&mut self, rgb: &[u8]) -> Result<()> {
        let p = self.params;
        let parts: Vec<Moments> = pixels_of(rgb)?
            .par_chunks(3 * CHUNK)
            .map(|c| {
                let v: Vec<[f64; 3]> = c.chunks_exact(3).map(|px| p.od(px)).filter(|o| p.tissue(o)).collect();
                Moments::of(&v)
            })
            .collect();
        for m in &parts {
            self.m.merge(m);
        }
        Ok(())
    }

    /// Adds another accumulator's pixels (same parameters).
    pub fn merge(&mut self, other: &StainCovariance) {
        self.m.merge(&other.m);
    }

    /// The tissue pixels seen so far.
    pub fn tissue_pixels(&self) -> u64 {
        self.m.n
    }

    /// The covariance matrix (`ddof = 1`), row-major.
    pub fn covariance(&self) -> Option<[[f64; 3]; 3]> {
        if self.m.n < 2 {
            return None;
        }
        let mut c = [[0.0; 3]; 3];
        for (p, &(a, b)) in PAIRS.iter().enumerate() {
            c[a][b] = self.m.m2[p] / (self.m.n - 1) as f64;
            c[b][a] = c[a][b];
        }
        Some(c)
    }

    /// The plane of the two principal axes.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] with fewer than 2 tissue pixels (cuCIM: "All pixels of
    /// the input image are below the threshold").
    pub fn finish(&self) -> Result<StainPlane> {
        let c = self
            .covariance()
            .ok_or_else(|| invalid(format!("Macenko: {} tissue pixels, fewer than 2", self.m.n)))?;
        let (vals, vecs) = jacobi_eigen(c);
        // eigh's ascending order; take the largest two
        let mut order = [0usize, 1, 2];
        order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
        let mut ev = [[0.0; 2]; 3];
        for (col, &which) in [order[2], order[1]].iter().enumerate() {
            let sign = if vecs[0][which] < 0.0 { -1.0 } else { 1.0 };
            for r in 0..3 {
                ev[r][col] = sign * vecs[r][which];
            }
        }
        Ok(StainPlane {
            params: self.params,
            vectors: ev,
        })
    }
}

/// Eigenvalues and eigenvectors (columns) of a symmetric 3×3 matrix, by Jacobi rotations.
#[allow(clippy::needless_range_loop)]
fn jacobi_eigen(mut a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..64 {
        let off = a[0][1].abs() + a[0][2].abs() + a[1][2].abs();
        if off <= 1e-300 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            for k in 0..3 {
                let (akp, akq) = (a[k][p], a[k][q]);
                a[k][p] = c * akp - s * akq;
                a[k][q] = s * akp + c * akq;
            }
            for k in 0..3 {
                let (apk, aqk) = (a[p][k], a[q][k]);
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
            for row in v.iter_mut() {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// The plane of the tissue optical densities' two principal axes (the result of pass 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StainPlane {
    params: MacenkoParams,
    /// Columns: the first and second principal axes (rows R, G, B), first coordinates >= 0.
    pub vectors: [[f64; 2]; 3],
}

/// A 65536-bin histogram over `[lo, hi]` and its percentiles.
#[derive(Clone, Debug, PartialEq)]
struct Histogram {
    lo: f64,
    hi: f64,
    counts: Vec<u64>,
}

impl Histogram {
    fn new(lo: f64, hi: f64) -> Histogram {
        Histogram {
            lo,
            hi,
            counts: vec![0; BINS],
        }
    }

    fn bin(&self, v: f64) -> usize {
        let b = ((v - self.lo) / (self.hi - self.lo) * BINS as f64).floor();
        if b >= 0.0 { (b as usize).min(BINS - 1) } else { 0 }
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Order statistic `j` (0-based), spread uniformly within its bin.
    fn order(&self, j: u64) -> f64 {
        let w = (self.hi - self.lo) / BINS as f64;
        let mut before = 0u64;
        for (b, &c) in self.counts.iter().enumerate() {
            if j < before + c {
                return self.lo + w * (b as f64 + ((j - before) as f64 + 0.5) / c as f64);
            }
            before += c;
        }
        self.hi
    }

    /// NumPy's linear percentile `q` (0–100).
    fn percentile(&self, q: f64) -> Option<f64> {
        let n = self.total();
        if n == 0 {
            return None;
        }
        let rank = q / 100.0 * (n - 1) as f64;
        let j = rank.floor() as u64;
        let frac = rank - j as f64;
        let a = self.order(j);
        if frac == 0.0 || j + 1 >= n {
            return Some(a);
        }
        Some(a + frac * (self.order(j + 1) - a))
    }
}

/// Pass 2: the histogram of the tissue pixels' angles in the [`StainPlane`].
#[derive(Clone, Debug, PartialEq)]
pub struct StainAngles {
    plane: StainPlane,
    hist: Histogram,
}

impl StainAngles {
    /// An empty histogram for `plane` (the result of pass 1).
    pub fn new(plane: StainPlane) -> StainAngles {
        StainAngles {
            plane,
            hist: Histogram::new(-std::f64::consts::PI, std::f64::consts::PI),
        }
    }

    /// Adds a tile of RGB `u8` pixels.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if `rgb` is not whole pixels.
    pub fn accumulate(&mut self, rgb: &[u8]) -> Result<()> {
        let (p, e) = (self.plane.params, self.plane.vectors);
        let h0 = Histogram::new(self.hist.lo, self.hist.hi);
        let part = pixels_of(rgb)?
            .par_chunks(3 * CHUNK)
            .fold(
                || h0.clone(),
                |mut h, c| {
                    for px in c.chunks_exact(3) {
                        let od = p.od(px);
                        if p.tissue(&od) {
                            let proj = [0, 1].map(|k| (e[0][k] * od[0] + e[1][k] * od[1]) + e[2][k] * od[2]);
                            let b = h.bin(proj[1].atan2(proj[0]));
                            h.counts[b] += 1;
                        }
                    }
                    h
                },
            )
            .reduce(
                || h0.clone(),
                |mut a, b| {
                    a.merge(&b);
                    a
                },
            );
        self.hist.merge(&part);
        Ok(())
    }

    /// Adds another accumulator's pixels (same plane).
    pub fn merge(&mut self, other: &StainAngles) {
        self.hist.merge(&other.hist);
    }

    /// The source stain matrix.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if no tissue pixel was seen.
    pub fn finish(&self) -> Result<StainMatrix> {
        let alpha = self.plane.params.alpha;
        let (lo, hi) = match (self.hist.percentile(alpha), self.hist.percentile(100.0 - alpha)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(invalid("Macenko: no tissue pixels for the angle percentiles")),
        };
        let e = self.plane.vectors;
        let back = |phi: f64| [0, 1, 2].map(|r| e[r][0] * phi.cos() + e[r][1] * phi.sin());
        let (mut v1, mut v2) = (back(lo), back(hi));
        if v1[0] < v2[0] {
            std::mem::swap(&mut v1, &mut v2);
        }
        let norm = |v: [f64; 3]| {
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            v.map(|x| x / n)
        };
        let (v1, v2) = (norm(v1), norm(v2));
        Ok(StainMatrix {
            params: self.plane.params,
            stains: [[v1[0], v2[0]], [v1[1], v2[1]], [v1[2], v2[2]]],
        })
    }
}

/// The source's stain matrix (the result of pass 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StainMatrix {
    params: MacenkoParams,
    /// Rows R, G, B; columns haematoxylin, eosin; unit columns.
    pub stains: [[f64; 2]; 3],
}

impl StainMatrix {
    /// The pseudo-inverse `(SᵀS)⁻¹ Sᵀ` (2×3), or `None` if `SᵀS` is singular.
    pub fn pseudo_inverse(&self) -> Option<[[f64; 3]; 2]> {
        let s = self.stains;
        let g = |a: usize, b: usize| (0..3).map(|r| s[r][a] * s[r][b]).sum::<f64>();
        let (a, b, d) = (g(0, 0), g(0, 1), g(1, 1));
        let det = a * d - b * b;
        if det.is_nan() || det.abs() <= 1e-12 {
            return None;
        }
        let inv = [[d / det, -b / det], [-b / det, a / det]];
        Some([0, 1].map(|i| [0, 1, 2].map(|r| inv[i][0] * s[r][0] + inv[i][1] * s[r][1])))
    }
}

/// Pass 3: the histograms of every pixel's stain concentrations.
#[derive(Clone, Debug, PartialEq)]
pub struct StainConcentrations {
    stains: StainMatrix,
    pinv: [[f64; 3]; 2],
    hist: [Histogram; 2],
}

impl StainConcentrations {
    /// Empty histograms for `stains` (the result of pass 2).
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if the stain vectors are parallel.
    pub fn new(stains: StainMatrix) -> Result<StainConcentrations> {
        let pinv = stains
            .pseudo_inverse()
            .ok_or_else(|| invalid("Macenko: the stain vectors are parallel"))?;
        let ln_s = stains.params.source_intensity.ln();
        let hist = [0, 1].map(|i| {
            let b = ln_s * pinv[i].iter().map(|v| v.abs()).sum::<f64>() * (1.0 + 1e-9) + 1e-12;
            Histogram::new(-b, b)
        });
        Ok(StainConcentrations { stains, pinv, hist })
    }

    /// Adds a tile of RGB `u8` pixels.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if `rgb` is not whole pixels.
    pub fn accumulate(&mut self, rgb: &[u8]) -> Result<()> {
        let (p, m) = (self.stains.params, self.pinv);
        let h0 = self.hist.clone();
        let empty = || {
            let mut h = h0.clone();
            h.iter_mut().for_each(|h| h.counts.fill(0));
            h
        };
        let part = pixels_of(rgb)?
            .par_chunks(3 * CHUNK)
            .fold(empty, |mut h, c| {
                for px in c.chunks_exact(3) {
                    let od = p.od(px);
                    for (i, h) in h.iter_mut().enumerate() {
                        let v = (m[i][0] * od[0] + m[i][1] * od[1]) + m[i][2] * od[2];
                        let b = h.bin(v);
                        h.counts[b] += 1;
                    }
                }
                h
            })
            .reduce(empty, |mut a, b| {
                a[0].merge(&b[0]);
                a[1].merge(&b[1]);
                a
            });
        self.hist[0].merge(&part[0]);
        self.hist[1].merge(&part[1]);
        Ok(())
    }

    /// Adds another accumulator's pixels (same stain matrix).
    pub fn merge(&mut self, other: &StainConcentrations) {
        self.hist[0].merge(&other.hist[0]);
        self.hist[1].merge(&other.hist[1]);
    }

    /// The normaliser.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if no pixel was seen or a maximum concentration is not
    /// positive.
    pub fn finish(&self) -> Result<MacenkoNormalizer> {
        let p = self.stains.params;
        let mut max = [0.0; 2];
        for (i, h) in self.hist.iter().enumerate() {
            max[i] = h
                .percentile(100.0 - p.alpha)
                .filter(|v| *v > 0.0)
                .ok_or_else(|| invalid("Macenko: no pixels, or a maximum concentration <= 0"))?;
        }
        Ok(MacenkoNormalizer {
            params: p,
            stains: self.stains.stains,
            pinv: self.pinv,
            max_concentrations: max,
            factors: [0, 1].map(|i| p.reference_max_concentrations[i] / max[i]),
        })
    }
}

/// The map pass of Macenko normalisation: RGB `u8` in, RGB `u8` out.
///
/// ```
/// use tiledio_kernels::{MacenkoNormalizer, MacenkoParams};
/// // a small pinkish-purple tile
/// let rgb: Vec<u8> = (0..4096u32)
///     .flat_map(|i| {
///         let (h, e) = ((i % 64) as f64 / 40.0, (i / 64) as f64 / 60.0);
///         [(0.65, 0.07), (0.70, 0.99), (0.29, 0.11)]
///             .map(|(a, b)| (240.0 * (-(a * h + b * e) as f64).exp()) as u8)
///     })
///     .collect();
/// let n = MacenkoNormalizer::fit(&rgb, MacenkoParams::default())?;
/// let mut out = vec![0u8; rgb.len()];
/// n.host(&rgb, &mut out)?;
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MacenkoNormalizer {
    params: MacenkoParams,
    /// The source stain matrix (rows R, G, B; columns H, E).
    pub stains: [[f64; 2]; 3],
    /// Its pseudo-inverse.
    pub pinv: [[f64; 3]; 2],
    /// The source's maximum concentrations (`100 - alpha` percentiles).
    pub max_concentrations: [f64; 2],
    /// The reference maximum concentrations over the source's.
    pub factors: [f64; 2],
}

impl MacenkoNormalizer {
    /// The three passes over one image in memory (for a whole slide, run [`StainCovariance`],
    /// [`StainAngles`] and [`StainConcentrations`] tile by tile instead).
    ///
    /// # Errors
    /// As the passes' `accumulate` and `finish`.
    pub fn fit(rgb: &[u8], params: MacenkoParams) -> Result<MacenkoNormalizer> {
        let mut c = StainCovariance::new(params)?;
        c.accumulate(rgb)?;
        let mut a = StainAngles::new(c.finish()?);
        a.accumulate(rgb)?;
        let mut k = StainConcentrations::new(a.finish()?)?;
        k.accumulate(rgb)?;
        k.finish()
    }

    /// The parameters.
    pub fn params(&self) -> &MacenkoParams {
        &self.params
    }

    fn check(&self, src: usize, dst: usize) -> Result<()> {
        if !src.is_multiple_of(3) || dst < src {
            return Err(invalid(format!(
                "Macenko map: source of {src} bytes (whole RGB pixels), destination of {dst}"
            )));
        }
        Ok(())
    }

    /// Normalises RGB `u8` pixels on the CPU (rayon): `out` gets as many bytes as `rgb` has.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if `rgb` is not whole pixels or `out` is shorter.
    pub fn host(&self, rgb: &[u8], out: &mut [u8]) -> Result<()> {
        self.check(rgb.len(), out.len())?;
        let (p, f, r, s) = (
            self.pinv,
            self.factors,
            self.params.reference_stains,
            self.params.source_intensity,
        );
        out[..rgb.len()]
            .par_chunks_mut(3 * CHUNK)
            .zip(rgb.par_chunks(3 * CHUNK))
            .for_each(|(o, i)| {
                for (o, px) in o.chunks_exact_mut(3).zip(i.chunks_exact(3)) {
                    let a = [0, 1, 2].map(|k| -det_ln((px[k] as f64).max(1.0).min(s) / s));
                    let c = [0, 1].map(|i| ((p[i][0] * a[0] + p[i][1] * a[1]) + p[i][2] * a[2]) * f[i]);
                    for (k, v) in o.iter_mut().enumerate() {
                        let od = r[k][0] * c[0] + r[k][1] * c[1];
                        // not clamp(): NaN -> 0 as the GPU's fmin(fmax(..))
                        #[allow(clippy::manual_clamp)]
                        let c = (det_exp(-od) * s).max(0.0).min(255.0);
                        *v = c.round_ties_even() as u8;
                    }
                }
            });
        Ok(())
    }

    fn launch_parts<'a>(
        &self,
        src: &'a DeviceBuffer,
        dst: &'a mut DeviceBuffer,
        len: usize,
    ) -> Result<(LaunchArgs<'a>, tiledio_io::gpu::Kernel)> {
        self.check(len, len)?;
        if src.len() < len || dst.len() < len {
            return Err(invalid(format!(
                "Macenko map of {len} bytes: device source of {}, destination of {}",
                src.len(),
                dst.len()
            )));
        }
        let k = kernel("tiledio_colour", SRC, "macenko_u8")?;
        let (p, f, r) = (self.pinv, self.factors, self.params.reference_stains);
        let mut args = LaunchArgs::new().read(src).write(dst).scalar((len / 3) as u64);
        for v in [
            p[0][0], p[0][1], p[0][2], p[1][0], p[1][1], p[1][2], f[0], f[1], r[0][0], r[0][1], r[1][0], r[1][1],
            r[2][0], r[2][1],
        ] {
            args = args.scalar(v);
        }
        Ok((args.scalar(self.params.source_intensity), k))
    }

    /// Queues the map pass on the GPU on `stream`: the first `len` bytes (whole RGB pixels)
    /// of `src` normalised into `dst`, bit-identical to [`MacenkoNormalizer::host`].
    ///
    /// # Safety
    /// Nothing waits here: `src` and `dst` must stay allocated, `dst` unread and `src`
    /// unwritten by the host and other streams, until the kernel has run.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if `len` is not whole pixels or longer than a buffer;
    /// [`crate::KernelError::Io`] without a GPU, or for a CUDA or NVRTC error.
    pub unsafe fn device_on(
        &self,
        src: &DeviceBuffer,
        dst: &mut DeviceBuffer,
        len: usize,
        stream: &Stream,
    ) -> Result<()> {
        let (args, k) = self.launch_parts(src, dst, len)?;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: macenko_u8(const u8*, u8*, u64 n, 15 doubles) reads and writes 3n bytes,
        // inside the buffers (checked); the caller keeps them alive until it ran.
        unsafe { args.launch_on(&k, blocks((len / 3) as u64, 256, 1 << 16), 256, stream) }
    }

    /// [`MacenkoNormalizer::device_on`], waited for.
    ///
    /// ```no_run
    /// use tiledio_io::gpu::DeviceBuffer;
    /// use tiledio_kernels::{MacenkoNormalizer, MacenkoParams};
    /// # let rgb = vec![0u8; 3];
    /// let n = MacenkoNormalizer::fit(&rgb, MacenkoParams::default())?;
    /// let src = DeviceBuffer::from_host(&rgb)?;
    /// let mut dst = DeviceBuffer::new(rgb.len())?;
    /// n.device(&src, &mut dst, rgb.len())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`MacenkoNormalizer::device_on`].
    pub fn device(&self, src: &DeviceBuffer, dst: &mut DeviceBuffer, len: usize) -> Result<()> {
        let (args, k) = self.launch_parts(src, dst, len)?;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: as in device_on; launch waits for the kernel.
        unsafe { args.launch(&k, blocks((len / 3) as u64, 256, 1 << 16), 256) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_the_eigenvectors() {
        let a = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]];
        let (vals, v) = jacobi_eigen(a);
        for (i, &l) in vals.iter().enumerate() {
            for r in 0..3 {
                let av: f64 = (0..3).map(|k| a[r][k] * v[k][i]).sum();
                assert!((av - l * v[r][i]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn histogram_percentiles_are_within_a_bin() {
        let mut h = Histogram::new(0.0, 1.0);
        let vals: Vec<f64> = (0..10007).map(|i| ((i * 7919) % 10007) as f64 / 10007.0).collect();
        for &v in &vals {
            let b = h.bin(v);
            h.counts[b] += 1;
        }
        let mut s = vals.clone();
        s.sort_by(f64::total_cmp);
        for q in [0.0, 1.0, 50.0, 99.0, 100.0] {
            let rank = q / 100.0 * (s.len() - 1) as f64;
            let (j, fr) = (rank.floor() as usize, rank.fract());
            let exact = if j + 1 < s.len() {
                s[j] + fr * (s[j + 1] - s[j])
            } else {
                s[j]
            };
            assert!((h.percentile(q).unwrap() - exact).abs() < 1.0 / BINS as f64, "{q}");
        }
    }
}
