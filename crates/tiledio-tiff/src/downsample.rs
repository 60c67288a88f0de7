//! 2× area-average downsampling for pyramid levels.

use crate::image::{HostImage, SampleType};
use rayon::prelude::*;

/// Halves an image (each output pixel is the mean of the up to 2×2 input pixels it covers;
/// odd sizes round up). Integers are rounded to nearest.
pub(crate) fn half(img: &HostImage) -> HostImage {
    let (h, w, c) = img.shape();
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let t = img.dtype();
    let es = t.size();
    let src = img.bytes();
    let mut out = vec![0u8; oh * ow * c * es];
    out.par_chunks_mut((ow * c * es).max(1))
        .enumerate()
        .for_each(|(oy, row)| {
            let y0 = oy * 2;
            let y1 = (y0 + 1).min(h - 1);
            for ox in 0..ow {
                let x0 = ox * 2;
                let x1 = (x0 + 1).min(w - 1);
                for k in 0..c {
                    let at = |y: usize, x: usize| ((y * w + x) * c + k) * es;
                    let idx = [at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)];
                    let d = (ox * c + k) * es;
                    match t {
                        SampleType::U8 => {
                            let s: u32 = idx.iter().map(|&i| src[i] as u32).sum();
                            row[d] = ((s + 2) / 4) as u8;
                        }
                        SampleType::U16 => {
                            let s: u32 = idx
                                .iter()
                                .map(|&i| u16::from_ne_bytes([src[i], src[i + 1]]) as u32)
                                .sum();
                            row[d..d + 2].copy_from_slice(&(((s + 2) / 4) as u16).to_ne_bytes());
                        }
                        SampleType::F32 => {
                            let s: f32 = idx
                                .iter()
                                .map(|&i| f32::from_ne_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]))
                                .sum();
                            row[d..d + 4].copy_from_slice(&(s / 4.0).to_ne_bytes());
                        }
                    }
                }
            }
        });
    HostImage::from_bytes(oh, ow, c, t, out).expect("shape computed above")
}
