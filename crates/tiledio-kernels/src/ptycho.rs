//! Fused ptychography frame preprocessing (dark, crop, flat, mask, rebin, orientation, output
//! type) in one pass: CPU reference (rayon) and GPU kernel (`cu/ptycho.cu`), bit-identical.
//!
//! For each frame, in this order:
//!
//! 1. **crop** to an `S × S` window whose top-left frame pixel is `(cy - S/2, cx - S/2)` (PtyPy's
//!    `crop_pad_symmetric_2d` with an integer centre); window pixels outside the frame are 0;
//! 2. **dark**: `p = raw as f32 - dark` (the dark is a full-frame `f32` map, e.g. a mean of a
//!    dark stack); with [`ClampOrder::ClampThenBin`] (I08-1's order, the default) `p = max(p, 0)`
//!    for each pixel;
//! 3. **flat / mask**: a masked pixel (mask ≠ 0) and a pixel whose flat is not `> 0` contribute
//!    nothing; otherwise `p = p / flat`;
//! 4. **rebin** by `B`: the sum of the `B × B` pixels in row-major order (f32 additions in that
//!    order); with [`ClampOrder::BinThenClamp`] the sum is clamped to 0 here; [`Reduce::Mean`]
//!    divides by `B²` (PtyPy's `rebin_2d`), [`Reduce::Sum`] does not (I08-1);
//! 5. **orientation** of the `S/B × S/B` result: transpose first, then flip up-down, then flip
//!    left-right ([`Orientation`]);
//! 6. **output**: `f32` as is; `u32`/`u16` rounded half to even, negatives and NaN to 0, values
//!    above the type's maximum saturated and counted.
//!
//! The input of one call is a batch of frames of which only the rows `row0 .. row0 + rows` are
//! present (frame after frame, full width): a store can read just the crop's rows
//! ([`PtychoParams::rows_needed`]) and hand them over without a full frame.

// `!(x > 0.0)` is the CUDA source's test, NaN included; the same spelling keeps them in step
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use crate::launch::LaunchArgs;
use crate::{Result, invalid, kernel};
use rayon::prelude::*;
use std::ops::Range;
use tiledio_io::ElementType;
use tiledio_io::gpu::{DeviceBuffer, Stream};

const SRC: &str = include_str!("cu/ptycho.cu");

/// How the `B × B` pixels of a bin are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduce {
    /// Their sum (Diamond I08-1's preprocessing).
    #[default]
    Sum,
    /// Their mean: the sum divided by `B²` (PtyPy's `rebin_2d`).
    Mean,
}

/// When negative dark-subtracted values are clamped to 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClampOrder {
    /// Each pixel before binning (I08-1's order).
    #[default]
    ClampThenBin,
    /// The binned value (noise around the dark level averages out before the clamp).
    BinThenClamp,
}

/// The element type of preprocessed frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OutputType {
    /// 32-bit float (no rounding).
    #[default]
    F32,
    /// 32-bit unsigned, rounded half to even, saturated at `u32::MAX` (counted).
    U32,
    /// 16-bit unsigned, rounded half to even, saturated at 65535 (counted).
    U16,
}

impl OutputType {
    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(tiledio_kernels::OutputType::U16.size(), 2);
    /// ```
    pub fn size(self) -> usize {
        match self {
            OutputType::F32 | OutputType::U32 => 4,
            OutputType::U16 => 2,
        }
    }

    /// The matching [`ElementType`].
    pub fn element_type(self) -> ElementType {
        match self {
            OutputType::F32 => ElementType::F32,
            OutputType::U32 => ElementType::U32,
            OutputType::U16 => ElementType::U16,
        }
    }
}

/// Orientation of the binned frame, applied in this order: transpose, then flip up-down (rows
/// reversed), then flip left-right (columns reversed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Orientation {
    /// Swap rows and columns.
    pub transpose: bool,
    /// Reverse the row order.
    pub flip_ud: bool,
    /// Reverse the column order.
    pub flip_lr: bool,
}

impl Orientation {
    /// From PtyPy's integer `orientation` 0–7: bit 2 (4) transpose, bit 1 (2) flip up-down, bit 0
    /// (1) flip left-right; `None` above 7.
    ///
    /// ```
    /// let o = tiledio_kernels::Orientation::from_bits(5).unwrap();
    /// assert!(o.transpose && !o.flip_ud && o.flip_lr);
    /// ```
    pub fn from_bits(bits: u8) -> Option<Orientation> {
        (bits < 8).then_some(Orientation {
            transpose: bits & 4 != 0,
            flip_ud: bits & 2 != 0,
            flip_lr: bits & 1 != 0,
        })
    }

    fn flags(self) -> u32 {
        (self.transpose as u32) << 2 | (self.flip_ud as u32) << 3 | (self.flip_lr as u32) << 4
    }
}

/// The geometry and options of the preprocessing (see the [module](self) docs for the order).
#[derive(Clone, Debug, PartialEq)]
pub struct PtychoParams {
    /// Frame shape `(H, W)`.
    pub frame_shape: (usize, usize),
    /// Input element type: `u8`, `u16`, `u32` or `f32`.
    pub input: ElementType,
    /// Side `S` of the square crop window.
    pub crop: usize,
    /// Window centre `(Y, X)` in frame pixels; `None` = `(H/2, W/2)`.
    pub center: Option<(i64, i64)>,
    /// Bin factor `B` (`S` must be a multiple).
    pub bin: usize,
    /// Sum or mean over a bin.
    pub reduce: Reduce,
    /// When negatives are clamped.
    pub clamp: ClampOrder,
    /// Orientation of the result.
    pub orientation: Orientation,
    /// Output element type.
    pub output: OutputType,
}

impl PtychoParams {
    /// Defaults for a `(H, W)` frame of `u16`: centre of the frame, sum, clamp then bin, no
    /// orientation change, `f32` output.
    ///
    /// ```
    /// let p = tiledio_kernels::PtychoParams::new((2048, 2048), 1024, 2);
    /// assert_eq!(p.out_side(), 512);
    /// assert_eq!(p.window_origin(), (512, 512));
    /// ```
    pub fn new(frame_shape: (usize, usize), crop: usize, bin: usize) -> PtychoParams {
        PtychoParams {
            frame_shape,
            input: ElementType::U16,
            crop,
            center: None,
            bin,
            reduce: Reduce::Sum,
            clamp: ClampOrder::ClampThenBin,
            orientation: Orientation::default(),
            output: OutputType::F32,
        }
    }

    /// Side of an output frame, `S / B`.
    pub fn out_side(&self) -> usize {
        self.crop / self.bin.max(1)
    }

    /// Bytes of one output frame.
    pub fn out_frame_bytes(&self) -> usize {
        self.out_side() * self.out_side() * self.output.size()
    }

    /// The centre used: the given one, or `(H/2, W/2)`.
    pub fn center_or_default(&self) -> (i64, i64) {
        self.center
            .unwrap_or((self.frame_shape.0 as i64 / 2, self.frame_shape.1 as i64 / 2))
    }

    /// Frame coordinates `(y0, x0)` of the window's top-left pixel (may be negative).
    pub fn window_origin(&self) -> (i64, i64) {
        let (cy, cx) = self.center_or_default();
        let h = (self.crop / 2) as i64;
        (cy.saturating_sub(h), cx.saturating_sub(h))
    }

    /// The frame rows the window covers, clipped to the frame (empty when it misses the frame):
    /// the only rows a store needs to read.
    ///
    /// ```
    /// let mut p = tiledio_kernels::PtychoParams::new((100, 80), 40, 2);
    /// assert_eq!(p.rows_needed(), 30..70);
    /// p.center = Some((5, 40));
    /// assert_eq!(p.rows_needed(), 0..25);
    /// ```
    pub fn rows_needed(&self) -> Range<usize> {
        let (y0, _) = self.window_origin();
        let h = self.frame_shape.0 as i64;
        let a = y0.clamp(0, h);
        let b = y0.saturating_add(self.crop as i64).clamp(0, h);
        a as usize..b.max(a) as usize
    }

    /// Checks the options: a supported input type, `S > 0`, `B > 0`, `S` divisible by `B`,
    /// sizes that fit the kernel's 32-bit indices and a centre within reach of the frame.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] with a one-line message.
    pub fn validate(&self) -> Result<()> {
        let (h, w) = self.frame_shape;
        if !matches!(
            self.input,
            ElementType::U8 | ElementType::U16 | ElementType::U32 | ElementType::F32
        ) {
            return Err(invalid(format!(
                "ptycho input must be uint8, uint16, uint32 or float32, not {}",
                self.input
            )));
        }
        if h == 0 || w == 0 {
            return Err(invalid(format!("empty frame shape {h}x{w}")));
        }
        if self.crop == 0 || self.bin == 0 {
            return Err(invalid(format!(
                "crop {} and bin {} must be positive",
                self.crop, self.bin
            )));
        }
        if !self.crop.is_multiple_of(self.bin) {
            return Err(invalid(format!(
                "crop {} is not divisible by bin {}",
                self.crop, self.bin
            )));
        }
        const LIMIT: usize = 1 << 20;
        if h > LIMIT || w > LIMIT || self.crop > 1 << 15 {
            return Err(invalid(format!(
                "frame {h}x{w} or crop {} too large (frames up to {LIMIT} pixels a side, crop up to 32768)",
                self.crop
            )));
        }
        if let Some((cy, cx)) = self.center
            && (cy.unsigned_abs() > 1 << 32 || cx.unsigned_abs() > 1 << 32)
        {
            return Err(invalid(format!("centre {cy},{cx} is far outside the frame")));
        }
        Ok(())
    }
}

/// A validated preprocessing with its calibration (dark, flat, mask) cut to the crop window,
/// ready to run on the host ([`PtychoPlan::run_host`]) or, through [`PtychoDevice`], on the GPU.
///
/// ```
/// use tiledio_kernels::{PtychoParams, PtychoPlan, Reduce};
/// // two 4x4 u16 frames, crop 4 about the centre (2,2), bin 2 (sum), dark 1 everywhere
/// let mut p = PtychoParams::new((4, 4), 4, 2);
/// p.reduce = Reduce::Sum;
/// let dark = vec![1.0f32; 16];
/// let plan = PtychoPlan::new(p, Some(&dark), None, None)?;
/// let raw: Vec<u8> = (0..32u16).flat_map(|v| v.to_ne_bytes()).collect();
/// let mut out = vec![0u8; 2 * 2 * 2 * 4];
/// let saturated = plan.run_host(&raw, 2, 0, 4, &mut out)?;
/// let v: Vec<f32> = out.chunks(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect();
/// // first bin: max(0-1,0) + (1-1) + (4-1) + (5-1) = 7
/// assert_eq!(&v[..4], &[7.0, 14.0, 38.0, 46.0]); // then (2+3+6+7) - 4 = 14, ...
/// assert_eq!(saturated, 0);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
#[derive(Clone, Debug)]
pub struct PtychoPlan {
    params: PtychoParams,
    /// `S × S` dark values in window coordinates (0 outside the frame).
    dark: Vec<f32>,
    /// `S × S` divisors (0 = the pixel contributes nothing), when there is a flat or a mask.
    div: Option<Vec<f32>>,
}

impl PtychoPlan {
    /// Validates `params` and cuts the full-frame calibration maps (`H × W` each, row-major) to
    /// the window: `dark` (`None` = no dark subtraction), `flat` (divisor; pixels whose flat is
    /// not `> 0` become 0) and `mask` (nonzero = bad pixel → 0).
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] for invalid options or a map of the wrong size.
    pub fn new(
        params: PtychoParams,
        dark: Option<&[f32]>,
        flat: Option<&[f32]>,
        mask: Option<&[u8]>,
    ) -> Result<PtychoPlan> {
        params.validate()?;
        let (h, w) = params.frame_shape;
        let px = h * w;
        for (name, len) in [
            ("dark", dark.map(<[f32]>::len)),
            ("flat", flat.map(<[f32]>::len)),
            ("mask", mask.map(<[u8]>::len)),
        ] {
            if let Some(len) = len
                && len != px
            {
                return Err(invalid(format!(
                    "{name} has {len} pixels, the frames {h}x{w} = {px}: shapes differ"
                )));
            }
        }
        let s = params.crop;
        let (y0, x0) = params.window_origin();
        let at = |u: usize, v: usize| -> Option<usize> {
            let (y, x) = (y0 + u as i64, x0 + v as i64);
            (y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w).then(|| y as usize * w + x as usize)
        };
        let mut dwin = vec![0f32; s * s];
        if let Some(d) = dark {
            dwin.par_chunks_mut(s).enumerate().for_each(|(u, row)| {
                for (v, o) in row.iter_mut().enumerate() {
                    if let Some(i) = at(u, v) {
                        *o = d[i];
                    }
                }
            });
        }
        let div = (flat.is_some() || mask.is_some()).then(|| {
            let mut win = vec![0f32; s * s];
            win.par_chunks_mut(s).enumerate().for_each(|(u, row)| {
                for (v, o) in row.iter_mut().enumerate() {
                    if let Some(i) = at(u, v) {
                        let bad = mask.is_some_and(|m| m[i] != 0);
                        let f = flat.map_or(1.0, |f| f[i]);
                        *o = if bad || !(f > 0.0) { 0.0 } else { f };
                    }
                }
            });
            win
        });
        Ok(PtychoPlan {
            params,
            dark: dwin,
            div,
        })
    }

    /// The options.
    pub fn params(&self) -> &PtychoParams {
        &self.params
    }

    fn check_io(&self, input: usize, frames: usize, row0: usize, rows: usize, out: usize) -> Result<()> {
        let p = &self.params;
        let (h, w) = p.frame_shape;
        let es = p.input.size();
        if row0.checked_add(rows).is_none_or(|e| e > h) {
            return Err(invalid(format!(
                "rows {row0}..{} outside the frame height {h}",
                row0 + rows
            )));
        }
        let need = p.rows_needed();
        if !need.is_empty() && (need.start < row0 || need.end > row0 + rows) {
            return Err(invalid(format!(
                "the crop needs frame rows {}..{}, the input holds rows {row0}..{}",
                need.start,
                need.end,
                row0 + rows
            )));
        }
        let in_need = frames
            .checked_mul(rows)
            .and_then(|v| v.checked_mul(w))
            .and_then(|v| v.checked_mul(es));
        let out_need = frames.checked_mul(p.out_frame_bytes());
        match (in_need, out_need) {
            (Some(a), Some(b)) if input >= a && out >= b => {}
            _ => {
                return Err(invalid(format!(
                    "{frames} frames of {rows}x{w} {}: input of {input} bytes, output of {out} bytes",
                    p.input
                )));
            }
        }
        if frames > u32::MAX as usize {
            return Err(invalid(format!("{frames} frames in one batch")));
        }
        Ok(())
    }

    /// Preprocesses `frames` frames on the CPU (rayon). `input` holds rows `row0 .. row0 +
    /// rows` of each frame (native-endian elements of the input type, frame after frame);
    /// `out` receives `frames × S/B × S/B` elements of the output type. Returns how many output
    /// values saturated (always 0 for `f32`).
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if the rows present miss rows the crop needs, or a
    /// buffer is too small.
    pub fn run_host(&self, input: &[u8], frames: usize, row0: usize, rows: usize, out: &mut [u8]) -> Result<u64> {
        self.check_io(input.len(), frames, row0, rows, out.len())?;
        let p = &self.params;
        let n = p.out_side();
        let ob = p.out_frame_bytes();
        let fb = rows * p.frame_shape.1 * p.input.size();
        if ob == 0 || frames == 0 {
            return Ok(0);
        }
        let sat = out[..frames * ob]
            .par_chunks_mut(ob)
            .enumerate()
            .map(|(f, o)| {
                let src = &input[f * fb..(f + 1) * fb];
                let mut binned = vec![0f32; n * n];
                binned
                    .par_chunks_mut(n)
                    .enumerate()
                    .for_each(|(by, row)| match p.input {
                        ElementType::U8 => self.bin_row::<u8>(src, row0, by, row),
                        ElementType::U16 => self.bin_row::<u16>(src, row0, by, row),
                        ElementType::U32 => self.bin_row::<u32>(src, row0, by, row),
                        _ => self.bin_row::<f32>(src, row0, by, row),
                    });
                write_oriented(&binned, n, p.orientation, p.output, o)
            })
            .sum();
        Ok(sat)
    }

    /// One output row `by` (before orientation) of a frame whose rows start at `row0`.
    fn bin_row<T: Pixel>(&self, src: &[u8], row0: usize, by: usize, out: &mut [f32]) {
        let p = &self.params;
        let (h, w) = (p.frame_shape.0 as i64, p.frame_shape.1 as i64);
        let (s, b) = (p.crop, p.bin);
        let (y0, x0) = p.window_origin();
        let clamp_first = p.clamp == ClampOrder::ClampThenBin;
        let scale = (b * b) as f32;
        for (bx, o) in out.iter_mut().enumerate() {
            let mut sum = 0f32;
            for dy in 0..b {
                let u = by * b + dy;
                let y = y0 + u as i64;
                if y < 0 || y >= h {
                    continue;
                }
                let row = (y as usize - row0) * w as usize;
                for dx in 0..b {
                    let v = bx * b + dx;
                    let x = x0 + v as i64;
                    if x < 0 || x >= w {
                        continue;
                    }
                    let mut px = T::get(src, row + x as usize) - self.dark[u * s + v];
                    if clamp_first {
                        px = if px > 0.0 { px } else { 0.0 };
                    }
                    if let Some(div) = &self.div {
                        let d = div[u * s + v];
                        if !(d > 0.0) {
                            continue;
                        }
                        px /= d;
                    }
                    sum += px;
                }
            }
            if !clamp_first {
                sum = if sum > 0.0 { sum } else { 0.0 };
            }
            if p.reduce == Reduce::Mean {
                sum /= scale;
            }
            *o = sum;
        }
    }
}

/// Places a binned `n × n` frame into `out` with the orientation, converting to `t`; returns
/// the saturated count.
fn write_oriented(binned: &[f32], n: usize, o: Orientation, t: OutputType, out: &mut [u8]) -> u64 {
    let es = t.size();
    let mut sat = 0u64;
    for by in 0..n {
        for bx in 0..n {
            let (mut oy, mut ox) = if o.transpose { (bx, by) } else { (by, bx) };
            if o.flip_ud {
                oy = n - 1 - oy;
            }
            if o.flip_lr {
                ox = n - 1 - ox;
            }
            let s = binned[by * n + bx];
            let d = (oy * n + ox) * es;
            match t {
                OutputType::F32 => out[d..d + 4].copy_from_slice(&s.to_ne_bytes()),
                OutputType::U32 => {
                    let r = s.round_ties_even();
                    let v = if !(r > 0.0) {
                        0
                    } else if r >= 4_294_967_296.0 {
                        sat += 1;
                        u32::MAX
                    } else {
                        r as u32
                    };
                    out[d..d + 4].copy_from_slice(&v.to_ne_bytes());
                }
                OutputType::U16 => {
                    let r = s.round_ties_even();
                    let v = if !(r > 0.0) {
                        0
                    } else if r > 65535.0 {
                        sat += 1;
                        u16::MAX
                    } else {
                        r as u16
                    };
                    out[d..d + 2].copy_from_slice(&v.to_ne_bytes());
                }
            }
        }
    }
    sat
}

trait Pixel {
    const SIZE: usize;
    fn get(b: &[u8], i: usize) -> f32;
}
macro_rules! pixel {
    ($($t:ty),*) => {$(
        impl Pixel for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn get(b: &[u8], i: usize) -> f32 {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(&b[i * Self::SIZE..(i + 1) * Self::SIZE]);
                <$t>::from_ne_bytes(a) as f32
            }
        }
    )*};
}
pixel!(u8, u16, u32, f32);

/// The centre of mass `(Y, X)` (frame pixels, row-major) of `frames` frames of `h × w` elements
/// of `t` (`u8`, `u16`, `u32`, `f32`), after subtracting `dark` (`h × w`, optional) and
/// clamping negatives to 0: PtyPy's `auto_center`, summed over the frames. `None` when every
/// frame is empty (no positive value).
///
/// ```
/// use tiledio_io::ElementType;
/// let mut f = vec![0u16; 5 * 6];
/// f[2 * 6 + 3] = 10; // a single bright pixel at (2, 3)
/// let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_ne_bytes()).collect();
/// let c = tiledio_kernels::center_of_mass(&bytes, 1, 5, 6, ElementType::U16, None)?;
/// assert_eq!(c, Some((2.0, 3.0)));
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`crate::KernelError::Invalid`] for an unsupported type or buffers of the wrong size.
pub fn center_of_mass(
    input: &[u8],
    frames: usize,
    h: usize,
    w: usize,
    t: ElementType,
    dark: Option<&[f32]>,
) -> Result<Option<(f64, f64)>> {
    let px = h.checked_mul(w).ok_or_else(|| invalid("frame size overflows"))?;
    let need = px.checked_mul(frames).and_then(|v| v.checked_mul(t.size()));
    if need.is_none_or(|n| input.len() < n) || dark.is_some_and(|d| d.len() != px) {
        return Err(invalid(format!(
            "centre of mass of {frames} frames of {h}x{w} {t}: input of {} bytes",
            input.len()
        )));
    }
    fn rows<T: Pixel>(input: &[u8], frames: usize, h: usize, w: usize, dark: Option<&[f32]>) -> (f64, f64, f64) {
        (0..frames * h)
            .into_par_iter()
            .map(|fr| {
                let y = fr % h;
                let (mut m, mut my, mut mx) = (0f64, 0f64, 0f64);
                for x in 0..w {
                    let v = T::get(input, fr * w + x) - dark.map_or(0.0, |d| d[y * w + x]);
                    if v > 0.0 {
                        m += v as f64;
                        my += v as f64 * y as f64;
                        mx += v as f64 * x as f64;
                    }
                }
                (m, my, mx)
            })
            .reduce(|| (0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    }
    let (m, my, mx) = match t {
        ElementType::U8 => rows::<u8>(input, frames, h, w, dark),
        ElementType::U16 => rows::<u16>(input, frames, h, w, dark),
        ElementType::U32 => rows::<u32>(input, frames, h, w, dark),
        ElementType::F32 => rows::<f32>(input, frames, h, w, dark),
        other => return Err(invalid(format!("no centre of mass for {other}"))),
    };
    Ok((m > 0.0).then(|| (my / m, mx / m)))
}

/// A [`PtychoPlan`] on the GPU: its calibration windows uploaded once, a saturation counter,
/// and [`PtychoDevice::run`] queuing one fused kernel per batch on a caller's stream.
///
/// ```no_run
/// use tiledio_io::gpu::{DeviceBuffer, Stream};
/// use tiledio_kernels::{PtychoDevice, PtychoParams, PtychoPlan};
/// let p = PtychoParams::new((2048, 2048), 1024, 2);
/// let rows = p.rows_needed();
/// let mut dev = PtychoDevice::new(&PtychoPlan::new(p.clone(), None, None, None)?)?;
/// let frames = 64;
/// let input = DeviceBuffer::zeroed(frames * rows.len() * 2048 * 2)?; // the crop's rows only
/// let mut out = DeviceBuffer::new(frames * p.out_frame_bytes())?;
/// let stream = Stream::new()?;
/// dev.run(&input, frames, rows.start, rows.len(), &mut out, &stream)?;
/// assert_eq!(dev.take_saturated(&stream)?, 0);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
#[derive(Debug)]
pub struct PtychoDevice {
    plan: PtychoPlan,
    dark: DeviceBuffer,
    div: Option<DeviceBuffer>,
    saturated: DeviceBuffer,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

impl PtychoDevice {
    /// Uploads the plan's calibration windows and compiles the kernel (once per process).
    ///
    /// # Errors
    /// [`crate::KernelError::Io`] without a GPU or for a CUDA or NVRTC error.
    pub fn new(plan: &PtychoPlan) -> Result<PtychoDevice> {
        kernel("tiledio_ptycho", SRC, "ptycho_u16_f32")?;
        let dark = DeviceBuffer::from_host(&f32_bytes(&plan.dark))?;
        let div = plan
            .div
            .as_ref()
            .map(|d| DeviceBuffer::from_host(&f32_bytes(d)))
            .transpose()?;
        let saturated = DeviceBuffer::zeroed(8)?;
        // a synchronous copy from pageable memory may return before its DMA ends: wait once
        // here, so kernels on any stream see the windows
        tiledio_io::gpu::gpu()?.synchronize()?;
        Ok(PtychoDevice {
            plan: plan.clone(),
            dark,
            div,
            saturated,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &PtychoPlan {
        &self.plan
    }

    /// Queues the preprocessing of `frames` frames on `stream` and returns at once: `input`
    /// holds rows `row0 .. row0 + rows` of each frame (as [`PtychoPlan::run_host`]), `out`
    /// receives `frames × S/B × S/B` output elements, bit-identical to the CPU reference.
    /// Saturated values are added to a counter read by [`PtychoDevice::take_saturated`].
    ///
    /// `input` and `out` must stay allocated and untouched by other streams until the kernel
    /// has run (synchronise `stream` or order later work on it); freeing a [`DeviceBuffer`]
    /// waits for the device, so dropping them early is safe but slow.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] as [`PtychoPlan::run_host`]; [`crate::KernelError::Io`]
    /// without a GPU or if the launch is refused.
    pub fn run(
        &mut self,
        input: &DeviceBuffer,
        frames: usize,
        row0: usize,
        rows: usize,
        out: &mut DeviceBuffer,
        stream: &Stream,
    ) -> Result<()> {
        self.plan.check_io(input.len(), frames, row0, rows, out.len())?;
        let p = &self.plan.params;
        let n = p.out_side();
        let nn = n * n;
        if frames == 0 || nn == 0 {
            return Ok(());
        }
        // bins of 1, 2 and 4 have kernels that keep the bin's dark in registers
        let bin = match p.bin {
            1 | 2 | 4 => format!("b{}_", p.bin),
            _ => String::new(),
        };
        let func = format!(
            "ptycho_{bin}{}_{}",
            match p.input {
                ElementType::U8 => "u8",
                ElementType::U16 => "u16",
                ElementType::U32 => "u32",
                _ => "f32",
            },
            match p.output {
                OutputType::F32 => "f32",
                OutputType::U32 => "u32",
                OutputType::U16 => "u16",
            }
        );
        let k = kernel("tiledio_ptycho", SRC, &func)?;
        const BLOCK: usize = 256;
        let pixel_blocks = nn.div_ceil(BLOCK);
        // enough threads to fill a large GPU (~2^20 in flight); each walks its group's frames
        let groups = (((1usize << 20) / (pixel_blocks * BLOCK)).max(1)).min(frames);
        let per_group = frames.div_ceil(groups);
        let groups = frames.div_ceil(per_group);
        let grid = pixel_blocks * groups;
        if grid > i32::MAX as usize {
            return Err(invalid(format!("{frames} frames of {n}x{n}: too many blocks")));
        }
        let flags = (p.clamp == ClampOrder::ClampThenBin) as u32
            | ((p.reduce == Reduce::Mean) as u32) << 1
            | p.orientation.flags();
        let (y0, x0) = p.window_origin();
        let args = LaunchArgs::new().read(input).write(out).read(&self.dark);
        let args = match &self.div {
            Some(d) => args.read(d),
            None => args.scalar(0u64), // a null `const float*`
        };
        let args = args
            .write(&mut self.saturated)
            .scalar(frames as u32)
            .scalar(n as u32)
            .scalar(p.crop as u32)
            .scalar(p.bin as u32)
            .scalar(y0)
            .scalar(x0)
            .scalar(p.frame_shape.0 as u32)
            .scalar(p.frame_shape.1 as u32)
            .scalar(row0 as u32)
            .scalar(rows as u32)
            .scalar(flags)
            .scalar(pixel_blocks as u32)
            .scalar(per_group as u32);
        // SAFETY: ptycho_[b<B>_]<in>_<out>(const T* in, O* out, const float* dark, const float* div,
        // u64* sat, u32 nf, u32 n, u32 S, u32 B, i64 y0, i64 x0, u32 H, u32 W, u32 row0,
        // u32 rows, u32 flags, u32 pixel_blocks, u32 frames_per_group): the kernel reads
        // frames*rows*W input elements (checked by check_io, with the crop's rows inside the
        // rows present), S*S floats of dark and div, writes frames*n*n outputs (checked) and
        // one u64 counter (8 bytes).
        unsafe { args.launch_on(&k, grid as u32, BLOCK as u32, stream) }
    }

    /// Waits for `stream`, returns the number of saturated output values since the last call,
    /// and resets the counter.
    ///
    /// # Errors
    /// [`crate::KernelError::Io`] for a CUDA error.
    pub fn take_saturated(&mut self, stream: &Stream) -> Result<u64> {
        stream.synchronize()?;
        let mut b = [0u8; 8];
        self.saturated.copy_to_host(&mut b)?;
        self.saturated.fill(0)?;
        Ok(u64::from_ne_bytes(b))
    }
}
