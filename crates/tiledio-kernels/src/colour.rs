//! Per-pixel colour transforms of RGB images: scikit-image's `rgb2gray`, `rgb2hed` and
//! `hed2rgb`, and cuCIM's optical density, fused per pixel (RGB in → float → log → stains in
//! one pass): CPU reference (rayon) and GPU kernels (`cu/colour.cu`), bit-identical.
//!
//! Every value is computed in float64 (the intermediate values as scikit-image has them),
//! with the operations in a fixed order, no fused multiply-add and our own `ln` and `exp`
//! (a few float64 ulps from the correctly rounded ones), and rounded once to float32. So
//! against scikit-image (float64) the difference is one float32 rounding:
//! `|ours - skimage| <= 1e-6 * (|skimage| + 1)` (the fixtures test measures it).
//!
//! Input: `pixels` RGB pixels, channels interleaved, `u8`, `u16` or `f32` (integers scaled to
//! [0, 1] as `img_as_float` does: `v / 255`, `v / 65535`), native byte order.

use crate::launch::LaunchArgs;
use crate::{Result, blocks, invalid, kernel};
use rayon::prelude::*;
use tiledio_io::ElementType;
use tiledio_io::gpu::{DeviceBuffer, Stream};

pub(crate) const SRC: &str = include_str!("cu/colour.cu");

/// `ln(1e-6)`, as `np.log(1e-6)`.
const LN_1E6: f64 = -13.815510557964274;

/// scikit-image's `hed_from_rgb` (`linalg.inv(rgb_from_hed)`), row-major.
pub const HED_FROM_RGB: [[f64; 3]; 3] = [
    [1.8779827368521356, -1.0076786862855642, -0.5561158181996246],
    [-0.06590806222356334, 1.1347303724996625, -0.13552179862837116],
    [-0.6019073634392891, -0.4804141884970579, 1.5735880719641926],
];

/// scikit-image's `rgb_from_hed` (rows: the haematoxylin, eosin and DAB colours).
pub const RGB_FROM_HED: [[f64; 3]; 3] = [[0.65, 0.7, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]];

/// The natural logarithm with a fixed sequence of float64 operations (the GPU kernels run
/// the same one): `x = m · 2^e`, `m` in [√½, √2], `ln m = 2 atanh(s)`, `s = (m-1)/(m+1)`, by
/// its series to `s²¹`. Within a few ulps of the correctly rounded result.
pub(crate) fn det_ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut e: i64 = 0;
    if bits < (1 << 52) {
        bits = (x * 18014398509481984.0).to_bits();
        e = -54;
    }
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut p = 0.09523809523809523;
    for c in [
        0.10526315789473684,
        0.11764705882352941,
        0.13333333333333333,
        0.15384615384615385,
        0.18181818181818182,
        0.2222222222222222,
        0.2857142857142857,
        0.4,
        0.6666666666666666,
    ] {
        p = c + z * p;
    }
    let lnm = 2.0 * s + s * (z * p);
    e as f64 * std::f64::consts::LN_2 + lnm
}

fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `e^x` with a fixed sequence of float64 operations (as [`det_ln`]): `x = k ln 2 + r`,
/// `|r| <= ln(2) / 2`, `e^r` by its Taylor series to `r¹³`, times `2^k`.
pub(crate) fn det_exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.782712893384 {
        return f64::INFINITY;
    }
    if x < -745.1332191019412 {
        return 0.0;
    }
    let k = (x * std::f64::consts::LOG2_E + 0.5).floor();
    let r = (x - k * 0.6931471803691238) - k * 1.9082149292705877e-10;
    let mut p = 1.6059043836821613e-10;
    for c in [
        2.08767569878681e-09,
        2.505210838544172e-08,
        2.755731922398589e-07,
        2.7557319223985893e-06,
        2.48015873015873e-05,
        0.0001984126984126984,
        0.001388888888888889,
        0.008333333333333333,
        0.041666666666666664,
        0.16666666666666666,
        0.5,
        1.0,
        1.0,
    ] {
        p = c + r * p;
    }
    let ki = k as i64;
    if ki > 1023 {
        p * pow2(1023) * pow2(ki - 1023)
    } else if ki < -1022 {
        p * pow2(ki + 600) * pow2(-600)
    } else {
        p * pow2(ki)
    }
}

/// Which per-pixel transform [`ColourMap`] applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColourOp {
    /// `skimage.color.rgb2gray`: `0.2125 R + 0.7154 G + 0.0721 B` of the float image; one
    /// value a pixel.
    Gray,
    /// Optical density (absorbance) as cuCIM's `image_to_absorbance` defines it, the one its
    /// Macenko normalisation uses: `-ln(clamp(v, lo, source_intensity) / source_intensity)`
    /// of the raw values (not scaled), `lo = 1` for integers and `source_intensity / 255` for
    /// `f32`; natural log (multiply by `1 / ln 10` for the decadic optical density of
    /// Macenko's paper). Three values a pixel, `>= 0`.
    OpticalDensity {
        /// The transmitted light intensity (cuCIM: 255 for `image_to_absorbance`, 240 in its
        /// stain normalisation); at least 1.
        source_intensity: f64,
    },
    /// `skimage.color.rgb2hed`: `max(ln(max(x, 1e-6)) / ln(1e-6) @ hed_from_rgb, 0)`; three
    /// values (H, E, D) a pixel.
    RgbToHed,
    /// `skimage.color.hed2rgb`: `clip(exp(-(s · -ln(1e-6)) @ rgb_from_hed), 0, 1)` of `f32`
    /// stains (three a pixel); three values (R, G, B) a pixel.
    HedToRgb,
}

/// A checked per-pixel colour transform of `pixels` pixels of three interleaved channels
/// (see [`ColourOp`] for the output values); run with [`ColourMap::host`],
/// [`ColourMap::device`] or [`ColourMap::device_on`], all bit-identical.
///
/// ```
/// use tiledio_io::ElementType;
/// use tiledio_kernels::{ColourMap, ColourOp};
/// let m = ColourMap::new(ColourOp::Gray, ElementType::U8, 2)?;
/// let mut grey = [0f32; 2];
/// m.host(&[255, 255, 255, 255, 0, 0], &mut grey)?;
/// assert_eq!(grey, [1.0, 0.2125]);
/// let hed = ColourMap::new(ColourOp::RgbToHed, ElementType::U8, 1)?;
/// let mut s = [0f32; 3];
/// hed.host(&[255, 255, 255], &mut s)?;
/// assert_eq!(s, [0.0, 0.0, 0.0]); // white: no stain
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColourMap {
    op: ColourOp,
    element: ElementType,
    pixels: usize,
    src_bytes: usize,
    out_values: usize,
}

impl ColourMap {
    /// Checks the arguments: `element` `U8`, `U16` or `F32` (only `F32` for
    /// [`ColourOp::HedToRgb`]); a finite `source_intensity >= 1`.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] otherwise, or when the sizes overflow.
    pub fn new(op: ColourOp, element: ElementType, pixels: usize) -> Result<ColourMap> {
        let bad = |why: &str| invalid(format!("{op:?} of {pixels} {element} pixels: {why}"));
        let ok_type = match op {
            ColourOp::HedToRgb => element == ElementType::F32,
            _ => matches!(element, ElementType::U8 | ElementType::U16 | ElementType::F32),
        };
        if !ok_type {
            return Err(bad("unsupported element type"));
        }
        if let ColourOp::OpticalDensity { source_intensity: s } = op
            && !(s.is_finite() && s >= 1.0)
        {
            return Err(bad("source intensity must be finite and at least 1"));
        }
        let src_bytes = pixels
            .checked_mul(3 * element.size())
            .ok_or_else(|| bad("too many pixels"))?;
        let per = if op == ColourOp::Gray { 1 } else { 3 };
        let out_values = pixels
            .checked_mul(per)
            .filter(|v| v.checked_mul(4).is_some())
            .ok_or_else(|| bad("too many pixels"))?;
        Ok(ColourMap {
            op,
            element,
            pixels,
            src_bytes,
            out_values,
        })
    }

    /// The source's bytes (`pixels × 3 × element size`).
    pub fn src_bytes(&self) -> usize {
        self.src_bytes
    }

    /// The output's `f32` values (`pixels` for [`ColourOp::Gray`], else `3 × pixels`).
    pub fn output_values(&self) -> usize {
        self.out_values
    }

    /// Runs on the CPU (rayon): `src` holds the pixels, `out` gets the values.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if a buffer is too short.
    pub fn host(&self, src: &[u8], out: &mut [f32]) -> Result<()> {
        if src.len() < self.src_bytes || out.len() < self.out_values {
            return Err(invalid(format!(
                "{:?}: source of {} bytes (needs {}), output of {} values (needs {})",
                self.op,
                src.len(),
                self.src_bytes,
                out.len(),
                self.out_values
            )));
        }
        let es = self.element.size();
        let t = self.element;
        let sample = move |px: &[u8], k: usize| -> (f64, f64) {
            let b = &px[k * es..(k + 1) * es];
            match t {
                ElementType::U8 => (b[0] as f64 / 255.0, b[0] as f64),
                ElementType::U16 => {
                    let v = u16::from_ne_bytes([b[0], b[1]]) as f64;
                    (v / 65535.0, v)
                }
                _ => {
                    let v = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f64;
                    (v, v)
                }
            }
        };
        let per = if self.op == ColourOp::Gray { 1 } else { 3 };
        let src = &src[..self.src_bytes];
        let op = self.op;
        out[..self.out_values]
            .par_chunks_mut(per * 4096)
            .zip(src.par_chunks(3 * es * 4096))
            .for_each(|(o, s)| {
                for (o, px) in o.chunks_exact_mut(per).zip(s.chunks_exact(3 * es)) {
                    let unit = |k: usize| sample(px, k).0;
                    match op {
                        ColourOp::Gray => {
                            o[0] = ((0.2125 * unit(0) + 0.7154 * unit(1)) + 0.0721 * unit(2)) as f32;
                        }
                        ColourOp::OpticalDensity { source_intensity: si } => {
                            let lo = if t == ElementType::F32 { si / 255.0 } else { 1.0 };
                            for (k, v) in o.iter_mut().enumerate() {
                                *v = (-det_ln(sample(px, k).1.max(lo).min(si) / si)) as f32;
                            }
                        }
                        ColourOp::RgbToHed => {
                            let l = [0, 1, 2].map(|k| det_ln(unit(k).max(1e-6)) / LN_1E6);
                            for (j, v) in o.iter_mut().enumerate() {
                                let m = &HED_FROM_RGB;
                                let s = (l[0] * m[0][j] + l[1] * m[1][j]) + l[2] * m[2][j];
                                *v = if s > 0.0 { s as f32 } else { 0.0 };
                            }
                        }
                        ColourOp::HedToRgb => {
                            let s = [0, 1, 2].map(|j| unit(j) * -LN_1E6);
                            for (k, v) in o.iter_mut().enumerate() {
                                let m = &RGB_FROM_HED;
                                let l = (s[0] * m[0][k] + s[1] * m[1][k]) + s[2] * m[2][k];
                                // not clamp(): NaN -> 0 as the GPU's fmin(fmax(..))
                                #[allow(clippy::manual_clamp)]
                                let c = det_exp(-l).max(0.0).min(1.0);
                                *v = c as f32;
                            }
                        }
                    }
                }
            });
        Ok(())
    }

    fn launch_parts<'a>(
        &self,
        src: &'a DeviceBuffer,
        dst: &'a mut DeviceBuffer,
    ) -> Result<(LaunchArgs<'a>, tiledio_io::gpu::Kernel)> {
        if src.len() < self.src_bytes || dst.len() / 4 < self.out_values {
            return Err(invalid(format!(
                "{:?}: device source of {} bytes (needs {}), destination of {} bytes (needs {})",
                self.op,
                src.len(),
                self.src_bytes,
                dst.len(),
                self.out_values * 4
            )));
        }
        let t = match self.element {
            ElementType::U8 => "u8",
            ElementType::U16 => "u16",
            _ => "f32",
        };
        let name = match self.op {
            ColourOp::Gray => format!("gray_{t}"),
            ColourOp::OpticalDensity { .. } => format!("od_{t}"),
            ColourOp::RgbToHed => format!("hed_{t}"),
            ColourOp::HedToRgb => "hed2rgb_f32".to_string(),
        };
        let k = kernel("tiledio_colour", SRC, &name)?;
        let mut args = LaunchArgs::new().read(src).write(dst).scalar(self.pixels as u64);
        if let ColourOp::OpticalDensity { source_intensity: si } = self.op {
            let lo = if self.element == ElementType::F32 {
                si / 255.0
            } else {
                1.0
            };
            args = args.scalar(si).scalar(lo);
        }
        Ok((args, k))
    }

    /// Queues the GPU kernel on `stream` and returns at once (`src` and `dst` as in
    /// [`ColourMap::host`], on the device; `dst` holds `f32` values).
    ///
    /// # Safety
    /// Nothing waits here: `src` and `dst` must stay allocated, `dst` unread and `src`
    /// unwritten by the host and other streams, until the kernel has run.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if a buffer is too short; [`crate::KernelError::Io`]
    /// without a GPU, or for a CUDA or NVRTC error.
    pub unsafe fn device_on(&self, src: &DeviceBuffer, dst: &mut DeviceBuffer, stream: &Stream) -> Result<()> {
        let (args, k) = self.launch_parts(src, dst)?;
        if self.pixels == 0 {
            return Ok(());
        }
        // SAFETY: the kernel (const T* src, float* dst, u64 n[, double s, double lo]) reads
        // 3n samples and writes out_values floats, inside the buffers (checked); the caller
        // keeps them alive until it ran.
        unsafe { args.launch_on(&k, blocks(self.pixels as u64, 256, 1 << 16), 256, stream) }
    }

    /// [`ColourMap::device_on`], waited for.
    ///
    /// ```no_run
    /// use tiledio_io::{ElementType, gpu::DeviceBuffer};
    /// use tiledio_kernels::{ColourMap, ColourOp};
    /// let m = ColourMap::new(ColourOp::RgbToHed, ElementType::U8, 1)?;
    /// let src = DeviceBuffer::from_host(&[120, 60, 200])?;
    /// let mut dst = DeviceBuffer::new(m.output_values() * 4)?;
    /// m.device(&src, &mut dst)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`ColourMap::device_on`].
    pub fn device(&self, src: &DeviceBuffer, dst: &mut DeviceBuffer) -> Result<()> {
        let (args, k) = self.launch_parts(src, dst)?;
        if self.pixels == 0 {
            return Ok(());
        }
        // SAFETY: as in device_on; launch waits for the kernel.
        unsafe { args.launch(&k, blocks(self.pixels as u64, 256, 1 << 16), 256) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_ln_and_exp_are_accurate() {
        let mut worst: f64 = 0.0;
        for i in 0..20000 {
            let x = 1e-7 * 1.0017f64.powi(i);
            let e = (det_ln(x) - x.ln()).abs() / x.ln().abs().max(1e-300);
            worst = worst.max(e);
            let y = (i as f64 - 10000.0) * 0.07;
            let e = (det_exp(y) - y.exp()).abs() / y.exp();
            worst = worst.max(e);
        }
        assert!(worst < 1e-14, "{worst:e}");
        assert_eq!(det_ln(1.0), 0.0);
        assert_eq!(det_exp(0.0), 1.0);
        assert_eq!(det_exp(-800.0), 0.0);
        assert_eq!(det_exp(800.0), f64::INFINITY);
        assert!(det_ln(-1.0).is_nan() && det_exp(f64::NAN).is_nan());
        assert!((det_exp(-740.0) / (-740f64).exp() - 1.0).abs() < 1e-3); // subnormal
        assert!((det_ln(1e-310) - (1e-310f64).ln()).abs() < 1e-12);
    }
}
