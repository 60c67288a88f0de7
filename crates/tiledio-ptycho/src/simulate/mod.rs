//! A simulated ptychography detector: a test object, a focused probe, a Fermat-spiral scan,
//! far-field diffraction with Poisson noise on a detector frame with a dark map and read noise.
//!
//! ## The model
//!
//! - **Object** (`object_shape()` pixels, complex): `exp(-μ + iφ)` with the absorption `μ`
//!   from smooth Gaussian blobs and the phase `φ` from blobs and thin rings, placed at random
//!   (deterministic from the seed) with sizes relative to the probe diameter.
//! - **Probe** (`D × D`, the pattern side): the far field of a circular aperture of radius
//!   `aperture` detector pixels with a defocus phase (a focused beam seen off focus) chosen so
//!   that the beam's geometric (ray-optics) diameter is `probe_diameter` object pixels. The
//!   diffraction pattern is a bright-field disc of radius `aperture` with the object's speckle.
//! - **Scan**: a Fermat spiral, `r_n = c·√n`, `θ_n = n · 137.508°`, with `c` chosen so that the
//!   median nearest-neighbour distance is `step = (1 − overlap) · probe_diameter` (the usual
//!   linear overlap of Bunk et al. 2008). Positions are **object pixels** from the scan centre,
//!   `x` along columns, `y` along rows, sub-pixel (the probe is shifted by a Fourier phase
//!   ramp); [`Simulation::positions_m`] multiplies them by `pixel_size` metres.
//! - **Frame** `i`: exit wave `ψ = P(r − δ) · O(patch)`, intensity `|FFT(ψ)|²` (rustfft,
//!   unnormalised), fftshifted so zero frequency is at `(D/2, D/2)`, scaled to a mean of
//!   `photons` in total, Poisson-sampled, placed with `(D/2, D/2)` at the beam centre
//!   `center = (cy, cx)` of an `H × W` frame (clipped at its edges), plus the dark map and
//!   Gaussian read noise (4096 quantiles: tails at ±3.5σ), rounded and clipped to `u16` (values
//!   above 65535 counted as saturated).
//! - **Dark map**: `dark_level` with a ±4 % gradient, ±2 % column pattern and ±1 % pixel
//!   pattern (fixed, from the seed); dark frames are the map plus read noise.
//!
//! Every frame's noise comes from random streams keyed by `(seed, index)`: a frame is the same
//! whichever thread makes it and in whatever order, so frames are made in parallel (rayon;
//! the FFT plans are shared, each worker has its own scratch).

mod hdf5;
mod rng;
mod write;

use crate::error::{Result, usage};
use rng::{Rng, STREAM_DARK_FRAMES, STREAM_DARK_MAP, STREAM_OBJECT, STREAM_PHOTONS, STREAM_READ};
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

pub use rustfft::num_complex::Complex;
pub use write::{Written, npy_header, write_npy_array};

/// The golden angle in radians (the Fermat spiral's turn between points).
const GOLDEN_ANGLE: f64 = 2.399_963_229_728_653;

/// Options of a [`Simulation`].
#[derive(Clone, Debug, PartialEq)]
pub struct SimulationOptions {
    /// Number of frames (scan positions) `N`.
    pub frames: u64,
    /// Detector frame shape `(H, W)`.
    pub frame_shape: (usize, usize),
    /// Side `D` of the diffraction pattern (and of the probe window, in object pixels); any
    /// size from 8 up to the frame's smaller side.
    pub pattern: usize,
    /// Where the pattern's zero frequency `(D/2, D/2)` lies in the frame, `(cy, cx)`; a pattern
    /// partly outside the frame is clipped.
    pub center: (i64, i64),
    /// Mean photon count of one whole pattern.
    pub photons: f64,
    /// Mean dark level in counts.
    pub dark_level: f64,
    /// Standard deviation of the Gaussian read noise in counts.
    pub read_noise: f64,
    /// Seed of everything random (object, dark map, noise).
    pub seed: u64,
    /// Linear overlap of neighbouring probe positions, in (0, 1): step = (1 − overlap) ×
    /// probe diameter.
    pub overlap: f64,
    /// Geometric probe diameter in object pixels (`None`: `D/4`), at most `D`.
    pub probe_diameter: Option<f64>,
    /// Radius of the bright-field disc (the aperture) in detector pixels (`None`: `D/8`), at
    /// most `D/2`.
    pub aperture: Option<f64>,
    /// Size of an object pixel in metres, for [`Simulation::positions_m`] (default 10 nm).
    pub pixel_size: f64,
}

impl Default for SimulationOptions {
    /// 100 frames of a 256² pattern at the centre of a 1024² frame, 10⁶ photons a frame, dark
    /// level 100, read noise 2, seed 0, overlap 0.7.
    fn default() -> Self {
        SimulationOptions::new(100, (1024, 1024), 256)
    }
}

impl SimulationOptions {
    /// `frames` frames of `frame_shape` with a `pattern`-pixel diffraction pattern at the frame
    /// centre `(H/2, W/2)`; the rest as [`SimulationOptions::default`].
    ///
    /// ```
    /// let o = tiledio_ptycho::simulate::SimulationOptions::new(64, (2048, 2048), 512);
    /// assert_eq!(o.center, (1024, 1024));
    /// ```
    pub fn new(frames: u64, frame_shape: (usize, usize), pattern: usize) -> SimulationOptions {
        SimulationOptions {
            frames,
            frame_shape,
            pattern,
            center: ((frame_shape.0 / 2) as i64, (frame_shape.1 / 2) as i64),
            photons: 1e6,
            dark_level: 100.0,
            read_noise: 2.0,
            seed: 0,
            overlap: 0.7,
            probe_diameter: None,
            aperture: None,
            pixel_size: 10e-9,
        }
    }

    /// Checks the options; the message names the first bad one.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`].
    pub fn validate(&self) -> Result<()> {
        let (h, w) = self.frame_shape;
        let d = self.pattern;
        if self.frames == 0 {
            return Err(usage("simulation: frames must be at least 1"));
        }
        if h == 0 || w == 0 {
            return Err(usage(format!("simulation: frame shape {h}x{w} is empty")));
        }
        if d < 8 {
            return Err(usage(format!("simulation: pattern side {d} is below 8")));
        }
        if d > h || d > w {
            return Err(usage(format!(
                "simulation: pattern side {d} is larger than the frame ({h}x{w})"
            )));
        }
        let (cy, cx) = self.center;
        let half = (d / 2) as i64;
        let outside = |c: i64, n: usize| c.checked_add(d as i64 - half).is_none_or(|e| e <= 0) || c - half >= n as i64;
        if outside(cy, h) || outside(cx, w) {
            return Err(usage(format!(
                "simulation: a {d}-pixel pattern centred at ({cy}, {cx}) lies wholly outside the {h}x{w} frame"
            )));
        }
        if !(self.overlap > 0.0 && self.overlap < 1.0) {
            return Err(usage(format!("simulation: overlap {} is outside (0, 1)", self.overlap)));
        }
        let finite_nonneg = |v: f64, name: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(usage(format!("simulation: {name} {v} is not a finite number >= 0")))
            }
        };
        finite_nonneg(self.photons, "photons")?;
        finite_nonneg(self.dark_level, "dark level")?;
        finite_nonneg(self.read_noise, "read noise")?;
        if self.dark_level > 65535.0 {
            return Err(usage(format!(
                "simulation: dark level {} is above 65535",
                self.dark_level
            )));
        }
        if !(self.pixel_size.is_finite() && self.pixel_size > 0.0) {
            return Err(usage(format!(
                "simulation: pixel size {} m is not positive",
                self.pixel_size
            )));
        }
        let pd = self.probe_diameter();
        if !(pd.is_finite() && pd >= 1.0 && pd <= d as f64) {
            return Err(usage(format!(
                "simulation: probe diameter {pd} is outside 1..={d} pixels"
            )));
        }
        let ap = self.aperture();
        if !(ap.is_finite() && ap >= 1.0 && ap <= d as f64 / 2.0) {
            return Err(usage(format!(
                "simulation: aperture radius {ap} is outside 1..={} pixels",
                d / 2
            )));
        }
        let frame_px = h
            .checked_mul(w)
            .ok_or_else(|| usage(format!("simulation: frame shape {h}x{w} overflows")))?;
        frame_px
            .checked_mul(2)
            .and_then(|b| usize::try_from(self.frames).ok()?.checked_mul(b))
            .ok_or_else(|| usage(format!("simulation: {} frames of {h}x{w} overflow", self.frames)))?;
        d.checked_mul(d)
            .and_then(|v| v.checked_mul(16))
            .ok_or_else(|| usage(format!("simulation: pattern side {d} overflows")))?;
        Ok(())
    }

    fn probe_diameter(&self) -> f64 {
        self.probe_diameter.unwrap_or(self.pattern as f64 / 4.0)
    }

    fn aperture(&self) -> f64 {
        self.aperture.unwrap_or(self.pattern as f64 / 8.0)
    }
}

/// A simulated detector: the object, probe, scan and dark map of a [`SimulationOptions`], and
/// frames made on request (deterministic per index).
///
/// ```
/// use tiledio_ptycho::simulate::{Simulation, SimulationOptions};
/// let mut o = SimulationOptions::new(16, (128, 160), 64);
/// o.photons = 1e5;
/// let sim = Simulation::new(&o)?;
/// let (frame, (x, y)) = sim.frame(3)?; // 128x160 u16, position in object pixels
/// assert_eq!(frame.len(), 128 * 160);
/// assert_eq!((x, y), sim.positions()[3]);
/// assert_eq!(sim.frame(3)?.0, frame); // the same frame every time
/// let darks = sim.dark_frames(4)?; // 4 dark frames to average
/// assert_eq!(darks.len(), 4 * 128 * 160);
/// # let dir = tempfile::tempdir()?;
/// sim.write_npy(dir.path().join("frames.npy"), &mut |done, total| eprintln!("{done}/{total}"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Simulation {
    opts: SimulationOptions,
    d: usize,
    fwd: Arc<dyn Fft<f64>>,
    inv: Arc<dyn Fft<f64>>,
    fft_scratch: usize,
    /// The aperture with its defocus, in FFT order, scaled so the probe has unit power.
    pupil: Vec<Complex<f64>>,
    object: Vec<Complex<f32>>,
    object_side: usize,
    /// The object pixel of scan position (0, 0).
    object_center: f64,
    positions: Vec<(f64, f64)>,
    dark: Vec<f32>,
    step: f64,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("opts", &self.opts)
            .field("object_side", &self.object_side)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// Per-worker buffers.
struct Scratch {
    buf: Vec<Complex<f64>>,
    fft: Vec<Complex<f64>>,
    counts: Vec<u32>,
}

/// What [`Simulation::frame_into`] made besides the pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameInfo {
    /// The scan position `(x, y)` in object pixels.
    pub position: (f64, f64),
    /// Photons recorded inside the frame (before dark and read noise).
    pub photons: u64,
    /// Pixels above 65535, clipped.
    pub saturated: u64,
}

impl Simulation {
    /// Builds the object, probe, scan and dark map.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] for invalid options ([`SimulationOptions::validate`]);
    /// [`crate::PtychoError::Io`] when the object or the dark map is over the memory budget.
    pub fn new(opts: &SimulationOptions) -> Result<Simulation> {
        opts.validate()?;
        let d = opts.pattern;
        let (h, w) = opts.frame_shape;
        let diameter = opts.probe_diameter();
        let step = (1.0 - opts.overlap) * diameter;
        let positions = fermat_spiral(opts.frames, step)?;
        let max_r = positions.iter().map(|&(x, y)| x.hypot(y)).fold(0.0, f64::max);
        // the patch of a position p spans floor(p + c) - D/2 .. + D: inside the object
        let oc = (max_r.ceil() as usize)
            .checked_add(d / 2 + 2)
            .ok_or_else(|| usage("simulation: scan too large"))?;
        let object_side = oc
            .checked_mul(2)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(|| usage("simulation: scan too large"))?;
        let object_px = object_side
            .checked_mul(object_side)
            .ok_or_else(|| usage("simulation: scan too large"))?;
        tiledio_io::check_memory(
            (object_px as u64).saturating_mul(8),
            &format!("simulated object of {object_side}x{object_side}"),
        )?;
        tiledio_io::check_memory((h as u64).saturating_mul(w as u64 * 4), "simulated dark map")?;

        let mut planner = FftPlanner::new();
        let fwd = planner.plan_fft_forward(d);
        let inv = planner.plan_fft_inverse(d);
        let fft_scratch = fwd.get_inplace_scratch_len().max(inv.get_inplace_scratch_len());
        let pupil = pupil(d, opts.aperture(), diameter);
        let object = make_object(opts.seed, object_side, diameter);
        let dark = dark_map(opts.seed, opts.frame_shape, opts.dark_level);
        Ok(Simulation {
            opts: opts.clone(),
            d,
            fwd,
            inv,
            fft_scratch,
            pupil,
            object,
            object_side,
            object_center: oc as f64,
            positions,
            dark,
            step,
        })
    }

    /// The options.
    pub fn options(&self) -> &SimulationOptions {
        &self.opts
    }

    /// The number of frames.
    pub fn frames(&self) -> u64 {
        self.opts.frames
    }

    /// The scan positions `(x, y)` in object pixels from the scan centre (x along columns,
    /// y along rows).
    pub fn positions(&self) -> &[(f64, f64)] {
        &self.positions
    }

    /// The scan positions `(x, y)` in metres (object pixels × `pixel_size`).
    pub fn positions_m(&self) -> Vec<(f64, f64)> {
        let s = self.opts.pixel_size;
        self.positions.iter().map(|&(x, y)| (x * s, y * s)).collect()
    }

    /// The geometric probe diameter in object pixels.
    pub fn probe_diameter(&self) -> f64 {
        self.opts.probe_diameter()
    }

    /// The scan step `(1 − overlap) × probe diameter` (the median nearest-neighbour distance).
    pub fn step(&self) -> f64 {
        self.step
    }

    /// The object, `side × side` row-major, and its side; scan position `(x, y)` is object
    /// pixel `(y + c, x + c)` with `c = side_center()`.
    pub fn object(&self) -> (&[Complex<f32>], usize) {
        (&self.object, self.object_side)
    }

    /// The object pixel of scan position (0, 0) (on both axes).
    pub fn side_center(&self) -> f64 {
        self.object_center
    }

    /// The probe, `D × D` row-major, centred at `(D/2, D/2)`, with unit power (`Σ|P|² = 1`).
    pub fn probe(&self) -> Vec<Complex<f64>> {
        let mut s = self.scratch();
        self.probe_into(0.0, 0.0, &mut s);
        s.buf
    }

    /// The dark map (`H × W`, the mean of the dark frames).
    pub fn dark_map(&self) -> &[f32] {
        &self.dark
    }

    fn scratch(&self) -> Scratch {
        let n = self.d * self.d;
        Scratch {
            buf: vec![Complex::new(0.0, 0.0); n],
            fft: vec![Complex::new(0.0, 0.0); self.fft_scratch],
            counts: vec![0; n],
        }
    }

    fn check_index(&self, i: u64) -> Result<()> {
        if i >= self.opts.frames {
            return Err(usage(format!("simulation: frame {i} outside 0..{}", self.opts.frames)));
        }
        Ok(())
    }

    /// Frame `i` (`H × W`, row-major) and its scan position `(x, y)` in object pixels.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] for an index past the last frame.
    pub fn frame(&self, i: u64) -> Result<(Vec<u16>, (f64, f64))> {
        let (h, w) = self.opts.frame_shape;
        let mut out = vec![0u16; h * w];
        let info = self.frame_into(i, &mut out)?;
        Ok((out, info.position))
    }

    /// Frame `i` into `out` (`H × W`).
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] for an index past the last frame or an `out` of another
    /// size.
    pub fn frame_into(&self, i: u64, out: &mut [u16]) -> Result<FrameInfo> {
        self.check_index(i)?;
        self.check_out(out.len())?;
        let mut s = self.scratch();
        Ok(self.render(i, &mut s, out))
    }

    fn check_out(&self, len: usize) -> Result<()> {
        let (h, w) = self.opts.frame_shape;
        if len != h * w {
            return Err(usage(format!("simulation: a frame buffer of {len} pixels for {h}x{w}")));
        }
        Ok(())
    }

    /// The exit wave `ψ` of frame `i` (`D × D`): the shifted probe times the object patch.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] for an index past the last frame.
    pub fn exit_wave(&self, i: u64) -> Result<Vec<Complex<f64>>> {
        self.check_index(i)?;
        let mut s = self.scratch();
        self.exit_wave_into(i, &mut s);
        Ok(s.buf)
    }

    /// The noiseless far-field intensity `|FFT(ψ)|²` of frame `i` (`D × D`, rustfft's
    /// unnormalised transform, fftshifted: zero frequency at `(D/2, D/2)`), before scaling to
    /// the photon count. Its sum is `D² · Σ|ψ|²`.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] for an index past the last frame.
    pub fn intensity(&self, i: u64) -> Result<Vec<f64>> {
        self.check_index(i)?;
        let mut s = self.scratch();
        self.exit_wave_into(i, &mut s);
        fft2(&*self.fwd, &mut s.buf, &mut s.fft, self.d);
        let d = self.d;
        let mut out = vec![0f64; d * d];
        for (j, o) in out.iter_mut().enumerate() {
            *o = s.buf[unshift(j / d, d) * d + unshift(j % d, d)].norm_sqr();
        }
        Ok(out)
    }

    /// `n` dark frames (`n × H × W`): the dark map plus read noise, rounded and clipped.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] when the size overflows; [`crate::PtychoError::Io`] over the
    /// memory budget.
    pub fn dark_frames(&self, n: u64) -> Result<Vec<u16>> {
        let (h, w) = self.opts.frame_shape;
        let len = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(h * w))
            .ok_or_else(|| usage(format!("simulation: {n} dark frames overflow")))?;
        tiledio_io::check_memory((len as u64).saturating_mul(2), "simulated dark frames")?;
        let mut out = vec![0u16; len];
        use rayon::prelude::*;
        out.par_chunks_mut((h * w).max(1)).enumerate().for_each(|(j, f)| {
            self.dark_frame_into(j as u64, f);
        });
        Ok(out)
    }

    /// Dark frame `j` (noise keyed by `(seed, j)`); returns the saturated count.
    fn dark_frame_into(&self, j: u64, out: &mut [u16]) -> u64 {
        let mut rng = Rng::new(self.opts.seed, STREAM_DARK_FRAMES, j);
        self.fill(&mut rng, None, out)
    }

    /// The probe shifted by `(dx, dy)` pixels from `(D/2, D/2)` into `s.buf`.
    fn probe_into(&self, dx: f64, dy: f64, s: &mut Scratch) {
        let d = self.d;
        let ramp = |shift: f64| -> Vec<Complex<f64>> {
            (0..d)
                .map(|j| {
                    let k = signed(j, d) as f64;
                    Complex::from_polar(1.0, -2.0 * std::f64::consts::PI * k * shift / d as f64)
                })
                .collect()
        };
        let (rx, ry) = (ramp((d / 2) as f64 + dx), ramp((d / 2) as f64 + dy));
        for (row, (b, p)) in s.buf.chunks_exact_mut(d).zip(self.pupil.chunks_exact(d)).enumerate() {
            for ((b, p), r) in b.iter_mut().zip(p).zip(&rx) {
                *b = p * r * ry[row];
            }
        }
        fft2(&*self.inv, &mut s.buf, &mut s.fft, d);
    }

    fn exit_wave_into(&self, i: u64, s: &mut Scratch) {
        let d = self.d;
        let (x, y) = self.positions[i as usize];
        let (ox, oy) = (x + self.object_center, y + self.object_center);
        let (fx, fy) = (ox.floor(), oy.floor());
        self.probe_into(ox - fx, oy - fy, s);
        let (tx, ty) = (fx as usize - d / 2, fy as usize - d / 2);
        for (r, b) in s.buf.chunks_exact_mut(d).enumerate() {
            let start = (ty + r) * self.object_side + tx;
            for (b, o) in b.iter_mut().zip(&self.object[start..start + d]) {
                *b *= Complex::new(o.re as f64, o.im as f64);
            }
        }
    }

    /// Frame `i` into `out`.
    fn render(&self, i: u64, s: &mut Scratch, out: &mut [u16]) -> FrameInfo {
        let d = self.d;
        self.exit_wave_into(i, s);
        fft2(&*self.fwd, &mut s.buf, &mut s.fft, d);
        let total: f64 = s.buf.iter().map(|c| c.norm_sqr()).sum();
        let scale = if total > 0.0 { self.opts.photons / total } else { 0.0 };
        // the pattern's rows and columns inside the frame
        let (h, w) = self.opts.frame_shape;
        let (cy, cx) = self.opts.center;
        let (top, left) = (cy - (d / 2) as i64, cx - (d / 2) as i64);
        let rows = clip(top, d, h);
        let cols = clip(left, d, w);
        let mut rng = Rng::new(self.opts.seed, STREAM_PHOTONS, i);
        let mut photons = 0u64;
        for py in rows.clone() {
            let ky = unshift(py, d);
            for px in cols.clone() {
                let lambda = s.buf[ky * d + unshift(px, d)].norm_sqr() * scale;
                let c = rng::poisson(&mut rng, lambda).min(u32::MAX as u64);
                photons += c;
                s.counts[py * d + px] = c as u32;
            }
        }
        let region = Region {
            rows: (top + rows.start as i64) as usize..(top + rows.end as i64) as usize,
            cols: (left + cols.start as i64) as usize..(left + cols.end as i64) as usize,
            top,
            left,
            d,
            counts: &s.counts,
        };
        let mut rng = Rng::new(self.opts.seed, STREAM_READ, i);
        let saturated = self.fill(&mut rng, Some(region), out);
        FrameInfo {
            position: self.positions[i as usize],
            photons,
            saturated,
        }
    }

    /// Dark map + read noise (+ the counts of `region`), rounded and clipped; returns the
    /// saturated count.
    fn fill(&self, rng: &mut Rng, region: Option<Region<'_>>, out: &mut [u16]) -> u64 {
        let (_, w) = self.opts.frame_shape;
        let sigma = self.opts.read_noise as f32;
        let table = rng::gauss_table();
        let mut saturated = 0u64;
        let mut row = vec![0u32; w];
        for (y, (orow, drow)) in out.chunks_exact_mut(w).zip(self.dark.chunks_exact(w)).enumerate() {
            // dark + read noise, rounded half up and clamped at 0 (`as` truncates towards 0);
            // one random u64 gives the noise of five pixels
            let round = |v: f32| (v + 0.5).max(0.0) as u32;
            if sigma > 0.0 {
                const MASK: u64 = (1 << rng::GAUSS_BITS) - 1;
                for (o, d) in row.chunks_mut(5).zip(drow.chunks(5)) {
                    let mut bits = rng.next_u64();
                    for (o, &d) in o.iter_mut().zip(d) {
                        *o = round(d + sigma * table[(bits & MASK) as usize]);
                        bits >>= rng::GAUSS_BITS;
                    }
                }
            } else {
                for (o, &d) in row.iter_mut().zip(drow) {
                    *o = round(d);
                }
            }
            if let Some(r) = region.as_ref().filter(|r| r.rows.contains(&y)) {
                let py = (y as i64 - r.top) as usize;
                let px0 = (r.cols.start as i64 - r.left) as usize;
                let counts = &r.counts[py * r.d + px0..][..r.cols.len()];
                for (o, &c) in row[r.cols.clone()].iter_mut().zip(counts) {
                    *o = o.saturating_add(c);
                }
            }
            for (o, &v) in orow.iter_mut().zip(&row) {
                saturated += (v > u16::MAX as u32) as u64;
                *o = v.min(u16::MAX as u32) as u16;
            }
        }
        saturated
    }
}

/// Where a pattern's counts lie in the frame.
struct Region<'a> {
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    top: i64,
    left: i64,
    d: usize,
    counts: &'a [u32],
}

/// The pattern indices `0..d` (placed from frame index `start`) that fall inside `0..n`.
fn clip(start: i64, d: usize, n: usize) -> std::ops::Range<usize> {
    let lo = (-start).clamp(0, d as i64) as usize;
    let hi = (n as i64 - start).clamp(0, d as i64) as usize;
    lo..hi.max(lo)
}

/// The signed frequency of FFT index `j` of `d`.
fn signed(j: usize, d: usize) -> i64 {
    if j < d.div_ceil(2) {
        j as i64
    } else {
        j as i64 - d as i64
    }
}

/// The FFT index of fftshifted index `j` (zero frequency at `d/2`).
fn unshift(j: usize, d: usize) -> usize {
    (j + d - d / 2) % d
}

/// A 2-D FFT of a `d × d` row-major buffer in place: rows, transpose, rows, transpose.
fn fft2(f: &dyn Fft<f64>, buf: &mut [Complex<f64>], scratch: &mut [Complex<f64>], d: usize) {
    f.process_with_scratch(buf, scratch);
    transpose(buf, d);
    f.process_with_scratch(buf, scratch);
    transpose(buf, d);
}

/// Transposes a square `d × d` matrix in place, in 32 × 32 blocks.
fn transpose<T>(m: &mut [T], d: usize) {
    const B: usize = 32;
    for bi in (0..d).step_by(B) {
        for bj in (bi..d).step_by(B) {
            for i in bi..(bi + B).min(d) {
                let j0 = if bi == bj { i + 1 } else { bj };
                for j in j0..(bj + B).min(d) {
                    m.swap(i * d + j, j * d + i);
                }
            }
        }
    }
}

/// `n` Fermat-spiral positions whose median nearest-neighbour distance is `step`.
fn fermat_spiral(n: u64, step: f64) -> Result<Vec<(f64, f64)>> {
    let n = usize::try_from(n).map_err(|_| usage(format!("simulation: {n} frames")))?;
    tiledio_io::check_memory((n as u64).saturating_mul(16), "scan positions")?;
    let unit: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let (r, t) = ((k as f64).sqrt(), k as f64 * GOLDEN_ANGLE);
            (r * t.cos(), r * t.sin())
        })
        .collect();
    // the spacing of the unit spiral, from its first points (it is the same further out)
    let m = n.min(1500);
    let mut nn: Vec<f64> = (0..m)
        .map(|i| {
            (0..m)
                .filter(|&j| j != i)
                .map(|j| (unit[i].0 - unit[j].0).hypot(unit[i].1 - unit[j].1))
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    nn.sort_by(f64::total_cmp);
    let c = if m >= 2 { step / nn[m / 2] } else { step };
    Ok(unit.into_iter().map(|(x, y)| (x * c, y * c)).collect())
}

/// The aperture of radius `radius` (pattern pixels) with the defocus that makes the beam's
/// geometric diameter `diameter` object pixels, in FFT order, scaled to unit probe power.
///
/// A phase `π w (k/r)²` sends frequency `k` to `x = D w k / r²`: the edge ray lands at
/// `D w / r`, so `w = diameter · r / (2 D)` waves.
fn pupil(d: usize, radius: f64, diameter: f64) -> Vec<Complex<f64>> {
    let waves = diameter * radius / (2.0 * d as f64);
    let mut p = vec![Complex::new(0.0, 0.0); d * d];
    let mut power = 0f64;
    for (j, v) in p.iter_mut().enumerate() {
        let (ky, kx) = (signed(j / d, d) as f64, signed(j % d, d) as f64);
        let rho2 = (kx * kx + ky * ky) / (radius * radius);
        if rho2 <= 1.0 {
            *v = Complex::from_polar(1.0, std::f64::consts::PI * waves * rho2);
            power += 1.0;
        }
    }
    // the unnormalised inverse FFT multiplies the power by D²
    let s = 1.0 / (d as f64 * power.sqrt());
    p.iter_mut().for_each(|v| *v *= s);
    p
}

/// A feature of the test object.
struct Feature {
    x: f64,
    y: f64,
    /// Blob: σ; ring: radius.
    size: f64,
    /// Ring width (σ of its profile); 0 for a blob.
    width: f64,
    absorb: f64,
    phase: f64,
}

impl Feature {
    fn extent(&self) -> f64 {
        if self.width == 0.0 {
            3.0 * self.size
        } else {
            self.size + 3.0 * self.width
        }
    }
    fn profile(&self, x: f64, y: f64) -> f64 {
        let r2 = (x - self.x).powi(2) + (y - self.y).powi(2);
        if self.width == 0.0 {
            (-r2 / (2.0 * self.size * self.size)).exp()
        } else {
            let dr = r2.sqrt() - self.size;
            (-dr * dr / (2.0 * self.width * self.width)).exp()
        }
    }
}

/// The test object `exp(-μ + iφ)`: Gaussian blobs (absorbing, phase shifting) and thin phase
/// rings, sizes relative to the probe diameter, about eight features per probe area.
fn make_object(seed: u64, side: usize, diameter: f64) -> Vec<Complex<f32>> {
    use rayon::prelude::*;
    let mut rng = Rng::new(seed, STREAM_OBJECT, 0);
    let area = (side * side) as f64;
    let per_probe = area / (diameter * diameter);
    let n_blobs = (per_probe * 6.0).ceil() as usize;
    let n_rings = (per_probe * 2.0).ceil() as usize;
    let mut u = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform();
    let mut features = Vec::with_capacity(n_blobs + n_rings);
    for _ in 0..n_blobs {
        features.push(Feature {
            x: u(0.0, side as f64),
            y: u(0.0, side as f64),
            size: u((diameter / 40.0).max(1.0), (diameter / 6.0).max(1.5)),
            width: 0.0,
            absorb: u(0.0, 0.3),
            phase: u(-0.6, 0.6),
        });
    }
    for _ in 0..n_rings {
        features.push(Feature {
            x: u(0.0, side as f64),
            y: u(0.0, side as f64),
            size: u((diameter / 10.0).max(2.0), (diameter / 2.0).max(3.0)),
            width: u(0.7, (diameter / 30.0).max(1.0)),
            absorb: u(0.0, 0.1),
            phase: u(0.2, 0.8),
        });
    }
    // features by bands of 64 rows, so a row looks only at those that may reach it
    const BAND: usize = 64;
    let mut bands: Vec<Vec<usize>> = vec![Vec::new(); side.div_ceil(BAND)];
    for (k, f) in features.iter().enumerate() {
        let lo = ((f.y - f.extent()).floor().max(0.0) as usize) / BAND;
        let hi = ((f.y + f.extent()).ceil().max(0.0) as usize / BAND).min(bands.len().saturating_sub(1));
        for b in bands.iter_mut().take(hi + 1).skip(lo) {
            b.push(k);
        }
    }
    let mut object = vec![Complex::new(1.0f32, 0.0); side * side];
    object.par_chunks_mut(side).enumerate().for_each(|(y, row)| {
        let yf = y as f64;
        let (mut mu, mut phi) = (vec![0f64; side], vec![0f64; side]);
        let near = bands[y / BAND].iter().map(|&k| &features[k]);
        for f in near.filter(|f| (f.y - yf).abs() <= f.extent()) {
            let lo = (f.x - f.extent()).floor().max(0.0) as usize;
            let hi = ((f.x + f.extent()).ceil().max(0.0) as usize).min(side);
            for x in lo..hi {
                let p = f.profile(x as f64, yf);
                mu[x] += f.absorb * p;
                phi[x] += f.phase * p;
            }
        }
        for ((o, m), p) in row.iter_mut().zip(&mu).zip(&phi) {
            let c = Complex::from_polar((-m).exp(), *p);
            *o = Complex::new(c.re as f32, c.im as f32);
        }
    });
    object
}

/// The fixed dark pattern: `level` × (1 + a ±4 % gradient + a ±2 % column pattern + a ±1 %
/// pixel pattern).
fn dark_map(seed: u64, (h, w): (usize, usize), level: f64) -> Vec<f32> {
    use rayon::prelude::*;
    let hash =
        |stream: u64, k: u64| Rng::new(seed, STREAM_DARK_MAP, stream.wrapping_mul(1 << 40) ^ k).uniform() * 2.0 - 1.0;
    let columns: Vec<f64> = (0..w as u64).map(|x| hash(1, x)).collect();
    let mut dark = vec![0f32; h * w];
    dark.par_chunks_mut(w.max(1)).enumerate().for_each(|(y, row)| {
        let mut rng = Rng::new(seed, STREAM_DARK_MAP, (2u64 << 40) ^ y as u64);
        let gy = 0.5 * (y as f64 / h as f64 - 0.5);
        for (x, v) in row.iter_mut().enumerate() {
            let g = 0.05 * ((x as f64 / w as f64 - 0.5) + gy);
            let p = rng.uniform() * 2.0 - 1.0;
            *v = (level * (1.0 + g + 0.02 * columns[x] + 0.01 * p)) as f32;
        }
    });
    dark
}
