//! 2× area-average downsampling (pyramid levels): CPU reference and GPU kernel
//! (`cu/downsample.cu`), with the same arithmetic.

use crate::launch::LaunchArgs;
use crate::{Result, blocks, invalid, kernel};
use rayon::prelude::*;
use tiledio_io::ElementType;
use tiledio_io::gpu::DeviceBuffer;

const SRC: &str = include_str!("cu/downsample.cu");

/// One output row from two input rows `r0`, `r1` (the same row for the last row of an odd
/// height), each `w × c` samples of `t` in native byte order: every output pixel is the mean
/// of the up to 2×2 input pixels it covers (odd widths repeat the last column). Integers are
/// rounded half up: `(a + b + c + d + 2)` floor-divided by 4 in a wider type; floats are
/// `(((a + b) + c) + d) / 4` in their own type. `out` holds `ceil(w / 2) × c` samples.
///
/// ```
/// use tiledio_io::ElementType;
/// let mut out = [0u8; 2];
/// tiledio_kernels::half_row(&[0, 3, 10], &[1, 2, 11], 3, 1, ElementType::U8, &mut out);
/// assert_eq!(out, [2, 11]); // (0+3+1+2+2)/4 = 2, (10+10+11+11+2)/4 = 11
/// ```
///
/// # Panics
/// If a row or `out` is shorter than its size.
pub fn half_row(r0: &[u8], r1: &[u8], w: usize, c: usize, t: ElementType, out: &mut [u8]) {
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
        ElementType::U8 => avg!(u8, u32, |v: [u32; 4]| ((v.iter().sum::<u32>() + 2) / 4) as u8),
        ElementType::U16 => avg!(u16, u32, |v: [u32; 4]| ((v.iter().sum::<u32>() + 2) / 4) as u16),
        ElementType::U32 => avg!(u32, u64, |v: [u64; 4]| ((v.iter().sum::<u64>() + 2) / 4) as u32),
        ElementType::U64 => avg!(u64, u128, |v: [u128; 4]| ((v.iter().sum::<u128>() + 2) / 4) as u64),
        ElementType::I8 => avg!(i8, i32, |v: [i32; 4]| (v.iter().sum::<i32>() + 2).div_euclid(4) as i8),
        ElementType::I16 => avg!(i16, i32, |v: [i32; 4]| (v.iter().sum::<i32>() + 2).div_euclid(4) as i16),
        ElementType::I32 => avg!(i32, i64, |v: [i64; 4]| (v.iter().sum::<i64>() + 2).div_euclid(4) as i32),
        ElementType::I64 => avg!(i64, i128, |v: [i128; 4]| (v.iter().sum::<i128>() + 2).div_euclid(4)
            as i64),
        ElementType::F32 => avg!(f32, f32, |v: [f32; 4]| (((v[0] + v[1]) + v[2]) + v[3]) / 4.0),
        ElementType::F64 => avg!(f64, f64, |v: [f64; 4]| (((v[0] + v[1]) + v[2]) + v[3]) / 4.0),
        _ => out.fill(0),
    }
}

/// The output shape `(ceil(h / 2), ceil(w / 2))` and checks of a 2× downsample.
fn check(src: usize, dst: usize, h: usize, w: usize, c: usize, t: ElementType) -> Result<(usize, usize)> {
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let need = |a: usize, b: usize| {
        a.checked_mul(b)
            .and_then(|v| v.checked_mul(c))
            .and_then(|v| v.checked_mul(t.size()))
    };
    match (need(h, w), need(oh, ow)) {
        (Some(n), Some(m)) if src >= n && dst >= m => Ok((oh, ow)),
        _ => Err(invalid(format!(
            "downsample of {h}x{w}x{c} {t}: source of {src} bytes, destination of {dst} bytes"
        ))),
    }
}

/// The whole-image 2× area average (CPU, rayon over output rows): `src` is `h × w × c`
/// samples of `t`, `dst` gets `ceil(h/2) × ceil(w/2) × c` (see [`half_row`]).
///
/// ```
/// use tiledio_io::ElementType;
/// let src: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_ne_bytes()).collect();
/// let mut dst = vec![0u8; 2 * 4];
/// tiledio_kernels::downsample2x(&src, &mut dst, 3, 2, 1, ElementType::F32)?; // 3 rows, 2 columns
/// assert_eq!(f32::from_ne_bytes(dst[..4].try_into().unwrap()), 2.5);
/// assert_eq!(f32::from_ne_bytes(dst[4..].try_into().unwrap()), 5.5);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`crate::KernelError::Invalid`] if a buffer is too small.
pub fn downsample2x(src: &[u8], dst: &mut [u8], h: usize, w: usize, c: usize, t: ElementType) -> Result<()> {
    let (oh, ow) = check(src.len(), dst.len(), h, w, c, t)?;
    let (rb, ob) = (w * c * t.size(), ow * c * t.size());
    if ob == 0 {
        return Ok(());
    }
    dst[..oh * ob].par_chunks_mut(ob).enumerate().for_each(|(oy, o)| {
        let (y0, y1) = (2 * oy, (2 * oy + 1).min(h - 1));
        half_row(&src[y0 * rb..(y0 + 1) * rb], &src[y1 * rb..(y1 + 1) * rb], w, c, t, o);
    });
    Ok(())
}

/// [`downsample2x`] on the GPU: `src` holds `h × w × c` samples of `t`, `dst` gets
/// `ceil(h/2) × ceil(w/2) × c`, bit-identical to the CPU result.
///
/// ```no_run
/// use tiledio_io::{ElementType, gpu::DeviceBuffer};
/// let src = DeviceBuffer::from_host(&[0, 3, 1, 2])?;
/// let mut dst = DeviceBuffer::new(1)?;
/// tiledio_kernels::downsample2x_device(&src, &mut dst, 2, 2, 1, ElementType::U8)?;
/// assert_eq!(dst.to_host_vec()?, vec![2]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`crate::KernelError::Invalid`] if a buffer is too small or the type unknown;
/// [`crate::KernelError::Io`] without a GPU or for a CUDA or NVRTC error.
pub fn downsample2x_device(
    src: &DeviceBuffer,
    dst: &mut DeviceBuffer,
    h: usize,
    w: usize,
    c: usize,
    t: ElementType,
) -> Result<()> {
    let (oh, ow) = check(src.len(), dst.len(), h, w, c, t)?;
    let n = (oh * ow * c) as u64;
    if n == 0 {
        return Ok(());
    }
    let func = match t {
        ElementType::U8 => "downsample2x_u8",
        ElementType::U16 => "downsample2x_u16",
        ElementType::U32 => "downsample2x_u32",
        ElementType::U64 => "downsample2x_u64",
        ElementType::I8 => "downsample2x_i8",
        ElementType::I16 => "downsample2x_i16",
        ElementType::I32 => "downsample2x_i32",
        ElementType::I64 => "downsample2x_i64",
        ElementType::F32 => "downsample2x_f32",
        ElementType::F64 => "downsample2x_f64",
        other => return Err(invalid(format!("no downsample kernel for {other}"))),
    };
    let k = kernel("tiledio_downsample", SRC, func)?;
    let args = LaunchArgs::new()
        .read(src)
        .write(dst)
        .scalar(h as u64)
        .scalar(w as u64)
        .scalar(c as u64);
    // SAFETY: downsampleN(const T* src, T* dst, u64 h, u64 w, u64 c) reads h*w*c and writes
    // oh*ow*c samples of T, inside the buffers (checked above).
    unsafe { args.launch(&k, blocks(n, 256, 1 << 16), 256) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|x| f(*x)).collect()
    }

    #[test]
    fn integers_round_half_up_with_floor_for_negatives() {
        let mut o = [0u8; 1];
        half_row(
            &bytes(&[-1i8, -2], i8::to_ne_bytes),
            &bytes(&[-1i8, -1], i8::to_ne_bytes),
            2,
            1,
            ElementType::I8,
            &mut o,
        );
        assert_eq!(o[0] as i8, -1); // (-5 + 2) / 4 = -0.75 -> floor -1
        let mut o = [0u8; 8];
        let m = u64::MAX;
        half_row(
            &bytes(&[m, m], u64::to_ne_bytes),
            &bytes(&[m, m - 1], u64::to_ne_bytes),
            2,
            1,
            ElementType::U64,
            &mut o,
        );
        assert_eq!(u64::from_ne_bytes(o), m); // 4m - 1 + 2 = 4m + 1 -> m
        let mut o = [0u8; 8];
        let v = [i64::MIN, i64::MIN + 1];
        half_row(
            &bytes(&v, i64::to_ne_bytes),
            &bytes(&v, i64::to_ne_bytes),
            2,
            1,
            ElementType::I64,
            &mut o,
        );
        assert_eq!(i64::from_ne_bytes(o), i64::MIN + 1); // (4 MIN + 2 + 2) / 4
    }

    #[test]
    fn odd_sizes_repeat_the_last_row_and_column() {
        // 3x3 of u16: output 2x2
        let src = bytes(&[1u16, 2, 3, 4, 5, 6, 7, 8, 9], u16::to_ne_bytes);
        let mut dst = vec![0u8; 8];
        downsample2x(&src, &mut dst, 3, 3, 1, ElementType::U16).unwrap();
        let got: Vec<u16> = dst.chunks(2).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect();
        assert_eq!(
            got,
            [
                (1 + 2 + 4 + 5 + 2) / 4,
                (3 + 3 + 6 + 6 + 2) / 4,
                (7 + 8 + 7 + 8 + 2) / 4,
                9
            ]
        );
        assert!(downsample2x(&src, &mut dst[..7], 3, 3, 1, ElementType::U16).is_err());
    }

    #[test]
    fn floats_sum_in_order() {
        let v = [1e8f32, 1.0, -1e8, 1.0];
        let src = bytes(&v, f32::to_ne_bytes);
        let mut dst = [0u8; 4];
        downsample2x(&src, &mut dst, 2, 2, 1, ElementType::F32).unwrap();
        assert_eq!(f32::from_ne_bytes(dst), (((1e8f32 + 1.0) + -1e8) + 1.0) / 4.0);
    }
}
