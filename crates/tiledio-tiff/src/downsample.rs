//! 2× area-average downsampling for pyramid levels, a band of rows at a time.

use crate::image::SampleType;

/// One output row from two input rows `r0`, `r1` (the same row for the last row of an odd
/// height), each `w × c` samples of `t`: every output pixel is the mean of the up to 2×2 input
/// pixels it covers (odd widths repeat the last column). Integers are rounded half up
/// (`(a + b + c + d + 2) / 4`, floor division for signed ones), floats are `sum / 4`.
pub(crate) fn half_row(r0: &[u8], r1: &[u8], w: usize, c: usize, t: SampleType, out: &mut [u8]) {
    let es = t.size();
    let ow = w.div_ceil(2);
    macro_rules! avg {
        ($ty:ty, $wide:ty, $f:expr) => {{
            let get = |r: &[u8], i: usize| <$ty>::from_ne_bytes(r[i * es..(i + 1) * es].try_into().unwrap_or_default());
            for ox in 0..ow {
                let x0 = ox * 2;
                let x1 = (x0 + 1).min(w - 1);
                for k in 0..c {
                    let v = [
                        get(r0, x0 * c + k),
                        get(r0, x1 * c + k),
                        get(r1, x0 * c + k),
                        get(r1, x1 * c + k),
                    ];
                    let m: $ty = $f(v.map(|x| x as $wide));
                    let d = (ox * c + k) * es;
                    out[d..d + es].copy_from_slice(&m.to_ne_bytes());
                }
            }
        }};
    }
    match t {
        SampleType::U8 => avg!(u8, u32, |v: [u32; 4]| ((v.iter().sum::<u32>() + 2) / 4) as u8),
        SampleType::U16 => avg!(u16, u32, |v: [u32; 4]| ((v.iter().sum::<u32>() + 2) / 4) as u16),
        SampleType::U32 => avg!(u32, u64, |v: [u64; 4]| ((v.iter().sum::<u64>() + 2) / 4) as u32),
        SampleType::U64 => avg!(u64, u128, |v: [u128; 4]| ((v.iter().sum::<u128>() + 2) / 4) as u64),
        SampleType::I8 => avg!(i8, i32, |v: [i32; 4]| (v.iter().sum::<i32>() + 2).div_euclid(4) as i8),
        SampleType::I16 => avg!(i16, i32, |v: [i32; 4]| (v.iter().sum::<i32>() + 2).div_euclid(4) as i16),
        SampleType::I32 => avg!(i32, i64, |v: [i64; 4]| (v.iter().sum::<i64>() + 2).div_euclid(4) as i32),
        SampleType::I64 => avg!(i64, i128, |v: [i128; 4]| (v.iter().sum::<i128>() + 2).div_euclid(4)
            as i64),
        SampleType::F32 => avg!(f32, f32, |v: [f32; 4]| v.iter().sum::<f32>() / 4.0),
        SampleType::F64 => avg!(f64, f64, |v: [f64; 4]| v.iter().sum::<f64>() / 4.0),
        _ => out.fill(0),
    }
}
