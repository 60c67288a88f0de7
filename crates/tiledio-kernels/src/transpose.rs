//! Interleaved ⇄ planar transposes (`h × w × c` "HWC" ⇄ `c × h × w` "CHW") for elements of
//! any size: CPU references and the GPU kernel (`cu/transpose.cu`).

use crate::launch::LaunchArgs;
use crate::{Result, blocks, invalid, kernel};
use rayon::prelude::*;
use tiledio_io::gpu::DeviceBuffer;

const SRC: &str = include_str!("cu/transpose.cu");

fn check(src: usize, dst: usize, n: usize, c: usize, es: usize) -> Result<usize> {
    match n.checked_mul(c).and_then(|v| v.checked_mul(es)) {
        Some(len) if es > 0 && src >= len && dst >= len => Ok(len),
        _ => Err(invalid(format!(
            "transpose of {n} pixels x {c} channels of {es} bytes: source of {src} bytes, destination of {dst}"
        ))),
    }
}

/// Interleaved `n × c` elements of `es` bytes (`n = h × w` pixels, "HWC") to planar `c × n`
/// ("CHW"), on the CPU.
///
/// ```
/// let mut chw = [0u8; 6];
/// tiledio_kernels::hwc_to_chw(&[1, 10, 2, 20, 3, 30], &mut chw, 3, 2, 1)?;
/// assert_eq!(chw, [1, 2, 3, 10, 20, 30]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`crate::KernelError::Invalid`] if a buffer is too small or `es` is 0.
pub fn hwc_to_chw(hwc: &[u8], chw: &mut [u8], n: usize, c: usize, es: usize) -> Result<()> {
    let len = check(hwc.len(), chw.len(), n, c, es)?;
    if len == 0 {
        return Ok(());
    }
    chw[..len].par_chunks_mut(n * es).enumerate().for_each(|(ch, plane)| {
        plane.par_chunks_mut(es * 4096).enumerate().for_each(|(blk, part)| {
            for (j, p) in part.chunks_exact_mut(es).enumerate() {
                let s = ((blk * 4096 + j) * c + ch) * es;
                p.copy_from_slice(&hwc[s..s + es]);
            }
        });
    });
    Ok(())
}

/// Planar `c × n` elements of `es` bytes ("CHW") to interleaved `n × c` ("HWC"), on the CPU.
///
/// ```
/// let mut hwc = [0u8; 6];
/// tiledio_kernels::chw_to_hwc(&[1, 2, 3, 10, 20, 30], &mut hwc, 3, 2, 1)?;
/// assert_eq!(hwc, [1, 10, 2, 20, 3, 30]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`crate::KernelError::Invalid`] if a buffer is too small or `es` is 0.
pub fn chw_to_hwc(chw: &[u8], hwc: &mut [u8], n: usize, c: usize, es: usize) -> Result<()> {
    let len = check(chw.len(), hwc.len(), n, c, es)?;
    if len == 0 {
        return Ok(());
    }
    hwc[..len]
        .par_chunks_mut(c * es * 4096)
        .enumerate()
        .for_each(|(blk, o)| {
            for (j, px) in o.chunks_exact_mut(c * es).enumerate() {
                let i = blk * 4096 + j;
                for ch in 0..c {
                    let s = (ch * n + i) * es;
                    px[ch * es..(ch + 1) * es].copy_from_slice(&chw[s..s + es]);
                }
            }
        });
    Ok(())
}

fn transpose_device(
    src: &DeviceBuffer,
    dst: &mut DeviceBuffer,
    n: usize,
    c: usize,
    es: usize,
    to_planar: bool,
) -> Result<()> {
    let len = check(src.len(), dst.len(), n, c, es)?;
    if len == 0 {
        return Ok(());
    }
    let word = [8, 4, 2, 1].into_iter().find(|w| es.is_multiple_of(*w)).unwrap_or(1);
    let k = kernel("tiledio_transpose", SRC, &format!("transpose_w{word}"))?;
    let words = (es / word) as u64;
    let args = LaunchArgs::new()
        .read(src)
        .write(dst)
        .scalar(n as u64)
        .scalar(c as u64)
        .scalar(words)
        .scalar(to_planar as i32);
    // SAFETY: transpose_wN(const T* src, T* dst, u64 n, u64 c, u64 words, int to_planar)
    // reads and writes n*c*words words of N bytes = len bytes of each buffer (checked);
    // device buffers are 256-byte aligned.
    unsafe { args.launch(&k, blocks((len / word) as u64, 256, 1 << 16), 256) }
}

/// [`hwc_to_chw`] on the GPU.
///
/// ```no_run
/// use tiledio_io::gpu::DeviceBuffer;
/// let src = DeviceBuffer::from_host(&[1, 10, 2, 20, 3, 30])?;
/// let mut dst = DeviceBuffer::new(6)?;
/// tiledio_kernels::hwc_to_chw_device(&src, &mut dst, 3, 2, 1)?;
/// assert_eq!(dst.to_host_vec()?, vec![1, 2, 3, 10, 20, 30]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// As [`hwc_to_chw`]; [`crate::KernelError::Io`] without a GPU or for a CUDA or NVRTC error.
pub fn hwc_to_chw_device(src: &DeviceBuffer, dst: &mut DeviceBuffer, n: usize, c: usize, es: usize) -> Result<()> {
    transpose_device(src, dst, n, c, es, true)
}

/// [`chw_to_hwc`] on the GPU.
///
/// ```no_run
/// use tiledio_io::gpu::DeviceBuffer;
/// let src = DeviceBuffer::from_host(&[1, 2, 3, 10, 20, 30])?;
/// let mut dst = DeviceBuffer::new(6)?;
/// tiledio_kernels::chw_to_hwc_device(&src, &mut dst, 3, 2, 1)?;
/// assert_eq!(dst.to_host_vec()?, vec![1, 10, 2, 20, 3, 30]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// As [`chw_to_hwc`]; [`crate::KernelError::Io`] without a GPU or for a CUDA or NVRTC error.
pub fn chw_to_hwc_device(src: &DeviceBuffer, dst: &mut DeviceBuffer, n: usize, c: usize, es: usize) -> Result<()> {
    transpose_device(src, dst, n, c, es, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_invert_each_other() {
        for (n, c, es) in [
            (5000usize, 3usize, 1usize),
            (7, 4, 2),
            (9000, 2, 8),
            (3, 5, 3),
            (1, 1, 16),
        ] {
            let hwc: Vec<u8> = (0..n * c * es).map(|i| (i * 31 % 251) as u8).collect();
            let mut chw = vec![0u8; hwc.len()];
            hwc_to_chw(&hwc, &mut chw, n, c, es).unwrap();
            // element (pixel i, channel ch) is at (ch * n + i) in the planar layout
            let (i, ch) = (n - 1, c - 1);
            assert_eq!(chw[(ch * n + i) * es..][..es], hwc[(i * c + ch) * es..][..es]);
            let mut back = vec![0u8; hwc.len()];
            chw_to_hwc(&chw, &mut back, n, c, es).unwrap();
            assert_eq!(back, hwc);
        }
        assert!(hwc_to_chw(&[0; 5], &mut [0; 6], 3, 2, 1).is_err());
    }
}
