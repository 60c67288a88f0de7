//! The Sobel edge filter of scikit-image (`skimage.filters.sobel`, `sobel_h`, `sobel_v`) on a
//! window of an image, with the halo rule that makes tiled output equal the whole-image
//! output: CPU reference (rayon) and one fused GPU pass (`cu/sobel.cu`), bit-identical.
//!
//! # Definition
//! For an image `I` (converted to float as `img_as_float` does: `u8 / 255`, `u16 / 65535`,
//! `f32` as is; RGB first reduced with `rgb2gray`'s weights `0.2125, 0.7154, 0.0721`) and
//! neighbours reflected at the image border as scipy's `mode='reflect'` does (index `-1` is
//! `0`, index `n` is `n - 1`):
//!
//! - `sm(r) = (I[r, x-1] + 2 I[r, x] + I[r, x+1]) / 4`, `d(r) = I[r, x+1] - I[r, x-1]`;
//! - [`SobelOutput::Horizontal`] (`sobel_h`, the derivative along rows, axis 0):
//!   `h = sm(y+1) - sm(y-1)`;
//! - [`SobelOutput::Vertical`] (`sobel_v`, along columns, axis 1):
//!   `v = (d(y-1) + 2 d(y) + d(y+1)) / 4`;
//! - [`SobelOutput::Magnitude`] (`sobel`): `sqrt(h² + v²) / sqrt(2)`.
//!
//! These are scipy's `ndi.convolve` with scikit-image's kernels (convolution flips the
//! kernel, so `sobel_h` is the row below minus the row above). scikit-image computes in
//! float64 for integer input; we compute in float32 (the RGB reduction in float64, rounded
//! once), with the operations in a fixed order and no fused multiply-add, so the CPU and the
//! GPU agree bit for bit. Against scikit-image the difference is float32 rounding:
//! `|ours - skimage| <= 1e-6 * (|skimage| + s)`, where `s` is the largest absolute grey value
//! of the image (1 for integer input); the fixtures test measures it (see
//! `tests/filters_cpu.rs`).
//!
//! # Windows and halos
//! The source holds a *window* of the image ([`Rect`] in image coordinates, row-major,
//! channels interleaved); the output is another rectangle. A neighbour's index is reflected
//! against the FULL image, then the window origin is subtracted, so a window that holds the
//! output rectangle plus one pixel on each side (less at the true image border: see
//! [`Rect::with_halo`]) gives exactly the whole-image result, whatever the tiling.

use crate::launch::LaunchArgs;
use crate::{Result, invalid, kernel};
use rayon::prelude::*;
use tiledio_io::ElementType;
use tiledio_io::gpu::{DeviceBuffer, Stream};

const SRC: &str = include_str!("cu/sobel.cu");

/// A rectangle of pixels of a 2-D image: `origin` (row, column) and `shape` (rows, columns),
/// in image coordinates.
///
/// ```
/// use tiledio_kernels::Rect;
/// let tile = Rect::new([64, 0], [64, 64]);
/// // what a 3×3 filter needs of a 100×100 image for that tile: one pixel more on each side,
/// // less at the image border
/// assert_eq!(tile.with_halo([100, 100], 1), Rect::new([63, 0], [37, 65]));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    /// First row and column.
    pub origin: [u64; 2],
    /// Rows and columns.
    pub shape: [u64; 2],
}

impl Rect {
    /// The rectangle at `origin` of `shape`.
    pub const fn new(origin: [u64; 2], shape: [u64; 2]) -> Rect {
        Rect { origin, shape }
    }

    /// The whole of an image of `shape`.
    pub const fn whole(shape: [u64; 2]) -> Rect {
        Rect { origin: [0, 0], shape }
    }

    /// One past the last row and column, or `None` if that overflows.
    pub fn end(&self) -> Option<[u64; 2]> {
        Some([
            self.origin[0].checked_add(self.shape[0])?,
            self.origin[1].checked_add(self.shape[1])?,
        ])
    }

    /// How many pixels.
    pub fn pixels(&self) -> Option<u64> {
        self.shape[0].checked_mul(self.shape[1])
    }

    /// Whether it holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0 || self.shape[1] == 0
    }

    /// Whether `other` lies inside this rectangle (an empty `other` inside a valid rectangle
    /// lies anywhere within its bounds).
    pub fn contains(&self, other: &Rect) -> bool {
        match (self.end(), other.end()) {
            (Some(a), Some(b)) => (0..2).all(|i| other.origin[i] >= self.origin[i] && b[i] <= a[i]),
            _ => false,
        }
    }

    /// This rectangle grown by `halo` pixels on each side and clipped to an image of
    /// `image` shape: the window a neighbourhood kernel of radius `halo` needs to compute
    /// this rectangle (at the image border, reflection stays inside the image).
    pub fn with_halo(&self, image: [u64; 2], halo: u64) -> Rect {
        let span = |i: usize| {
            let lo = self.origin[i].saturating_sub(halo).min(image[i]);
            let hi = self.origin[i]
                .saturating_add(self.shape[i])
                .saturating_add(halo)
                .min(image[i])
                .max(lo);
            (lo, hi - lo)
        };
        let ((y, h), (x, w)) = (span(0), span(1));
        Rect::new([y, x], [h, w])
    }
}

/// Which Sobel result to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SobelOutput {
    /// `skimage.filters.sobel`: `sqrt(h² + v²) / sqrt(2)`.
    #[default]
    Magnitude,
    /// `skimage.filters.sobel_h`: the derivative along rows (horizontal edges).
    Horizontal,
    /// `skimage.filters.sobel_v`: the derivative along columns (vertical edges).
    Vertical,
}

impl SobelOutput {
    fn code(self) -> i32 {
        match self {
            SobelOutput::Magnitude => 0,
            SobelOutput::Horizontal => 1,
            SobelOutput::Vertical => 2,
        }
    }
}

/// A checked Sobel operation: the input's element type and channels (1 grey or 3 RGB), the
/// image's shape, the window the source holds and the output rectangle (see the module
/// docs). Run it with [`Sobel::host`] (CPU), [`Sobel::device`] (GPU, blocking) or
/// [`Sobel::device_on`] (GPU, queued on a stream); all give the same bits.
///
/// ```
/// use tiledio_io::ElementType;
/// use tiledio_kernels::{Rect, Sobel, SobelOutput};
/// // a 3×4 u8 image with a vertical step: strongest response along the step
/// let img = [0u8, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255];
/// let s = Sobel::whole(ElementType::U8, 1, [3, 4], SobelOutput::Vertical)?;
/// let mut out = vec![0f32; s.output_pixels()];
/// s.host(&img, &mut out)?;
/// assert_eq!(&out[..4], &[0.0, 1.0, 1.0, 0.0]); // right minus left
/// // the same rows 1..3 from a window holding rows 0..3 (the halo) of that image
/// let t = Sobel::new(ElementType::U8, 1, [3, 4], Rect::whole([3, 4]), Rect::new([1, 0], [2, 4]), SobelOutput::Vertical)?;
/// let mut part = vec![0f32; t.output_pixels()];
/// t.host(&img, &mut part)?;
/// assert_eq!(&part[..], &out[4..]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sobel {
    element: ElementType,
    channels: usize,
    image: [u64; 2],
    window: Rect,
    output: Rect,
    what: SobelOutput,
    src_bytes: usize,
    out_pixels: usize,
}

/// Threads per GPU block (one row of threads) and output rows per thread, as `sobel.cu`'s
/// `BX` and `RPT`; a thread computes 2 adjacent columns of grey input, 4 of RGB (`COLS`).
const BLOCK: u32 = 128;
const ROWS_PER_THREAD: u64 = 64;

impl Sobel {
    /// Checks the arguments: `element` `U8`, `U16` or `F32`; `channels` 1 or 3; `window` and
    /// `output` inside the `image`; the window holds `output` plus its 1-pixel halo
    /// ([`Rect::with_halo`]).
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] for any other arguments, or sizes that overflow.
    pub fn new(
        element: ElementType,
        channels: usize,
        image: [u64; 2],
        window: Rect,
        output: Rect,
        what: SobelOutput,
    ) -> Result<Sobel> {
        let bad = |why: &str| {
            invalid(format!(
                "sobel of {element} x{channels} image {image:?}, window {window:?}, output {output:?}: {why}"
            ))
        };
        if !matches!(element, ElementType::U8 | ElementType::U16 | ElementType::F32) {
            return Err(bad("element type must be u8, u16 or f32"));
        }
        if channels != 1 && channels != 3 {
            return Err(bad("channels must be 1 (grey) or 3 (RGB)"));
        }
        let whole = Rect::whole(image);
        if image.iter().any(|&d| d > i64::MAX as u64 / 4) {
            return Err(bad("image too large"));
        }
        if !whole.contains(&window) || !whole.contains(&output) {
            return Err(bad("window and output must lie inside the image"));
        }
        if !output.is_empty() && !window.contains(&output.with_halo(image, 1)) {
            return Err(bad("the window must hold the output rectangle and its 1-pixel halo"));
        }
        let src_bytes = window
            .pixels()
            .and_then(|p| p.checked_mul((channels * element.size()) as u64))
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| bad("window too large"))?;
        let out_pixels = output
            .pixels()
            .and_then(|p| usize::try_from(p).ok())
            .filter(|p| p.checked_mul(4).is_some())
            .ok_or_else(|| bad("output too large"))?;
        Ok(Sobel {
            element,
            channels,
            image,
            window,
            output,
            what,
            src_bytes,
            out_pixels,
        })
    }

    /// The whole image in, the whole image out.
    ///
    /// # Errors
    /// As [`Sobel::new`].
    pub fn whole(element: ElementType, channels: usize, image: [u64; 2], what: SobelOutput) -> Result<Sobel> {
        Sobel::new(element, channels, image, Rect::whole(image), Rect::whole(image), what)
    }

    /// The bytes of the source window (`rows × columns × channels × element size`).
    pub fn src_bytes(&self) -> usize {
        self.src_bytes
    }

    /// The output's pixels (`f32` values; 4 bytes each on the device).
    pub fn output_pixels(&self) -> usize {
        self.out_pixels
    }

    /// The window the source holds.
    pub fn window(&self) -> Rect {
        self.window
    }

    /// The output rectangle.
    pub fn output(&self) -> Rect {
        self.output
    }

    /// The grey value of window pixel `i` (row-major index into the window).
    #[inline]
    fn grey(&self, src: &[u8], i: usize) -> f32 {
        let es = self.element.size();
        let at = |k: usize| {
            let o = (i * self.channels + k) * es;
            &src[o..o + es]
        };
        let f32_of = |b: &[u8]| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        if self.channels == 1 {
            let b = at(0);
            match self.element {
                ElementType::U8 => b[0] as f32 / 255.0,
                ElementType::U16 => u16::from_ne_bytes([b[0], b[1]]) as f32 / 65535.0,
                _ => f32_of(b),
            }
        } else {
            let ch = |k: usize| {
                let b = at(k);
                match self.element {
                    ElementType::U8 => b[0] as f64 / 255.0,
                    ElementType::U16 => u16::from_ne_bytes([b[0], b[1]]) as f64 / 65535.0,
                    _ => f32_of(b) as f64,
                }
            };
            ((0.2125 * ch(0) + 0.7154 * ch(1)) + 0.0721 * ch(2)) as f32
        }
    }

    /// Runs on the CPU (rayon over output rows): `src` holds the window
    /// ([`Sobel::src_bytes`], native byte order), `out` gets the output rectangle row-major.
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if `src` or `out` is too short.
    pub fn host(&self, src: &[u8], out: &mut [f32]) -> Result<()> {
        if src.len() < self.src_bytes || out.len() < self.out_pixels {
            return Err(invalid(format!(
                "sobel: source of {} bytes (needs {}), output of {} values (needs {})",
                src.len(),
                self.src_bytes,
                out.len(),
                self.out_pixels
            )));
        }
        if self.out_pixels == 0 {
            return Ok(());
        }
        let [ih, iw] = self.image.map(|v| v as i64);
        let [wy0, wx0] = self.window.origin.map(|v| v as i64);
        let ww = self.window.shape[1] as i64;
        let [oy0, ox0] = self.output.origin.map(|v| v as i64);
        let ow = self.output.shape[1] as usize;
        let reflect = |i: i64, n: i64| {
            if i < 0 {
                -i - 1
            } else if i >= n {
                2 * n - 1 - i
            } else {
                i
            }
        };
        // window columns of output columns -1 ..= ow (reflected at the image border)
        let cols: Vec<i64> = (0..ow as i64 + 2).map(|j| reflect(ox0 - 1 + j, iw) - wx0).collect();
        let smooth = |a: f32, b: f32, c: f32| (0.25 * a + 0.5 * b) + 0.25 * c;
        out[..self.out_pixels].par_chunks_mut(ow).enumerate().for_each_init(
            || [vec![0f32; ow + 2], vec![0f32; ow + 2], vec![0f32; ow + 2]],
            |rows, (j, o)| {
                let y = oy0 + j as i64;
                for (k, row) in rows.iter_mut().enumerate() {
                    let wy = reflect(y - 1 + k as i64, ih) - wy0;
                    for (g, &c) in row.iter_mut().zip(&cols) {
                        *g = self.grey(src, (wy * ww + c) as usize);
                    }
                }
                let [r0, r1, r2] = &*rows;
                for (x, px) in o.iter_mut().enumerate() {
                    let sm0 = smooth(r0[x], r0[x + 1], r0[x + 2]);
                    let sm2 = smooth(r2[x], r2[x + 1], r2[x + 2]);
                    let d = |r: &[f32]| r[x + 2] - r[x];
                    let h = sm2 - sm0;
                    let v = smooth(d(r0), d(r1), d(r2));
                    *px = match self.what {
                        SobelOutput::Horizontal => h,
                        SobelOutput::Vertical => v,
                        SobelOutput::Magnitude => (h * h + v * v).sqrt() / std::f32::consts::SQRT_2,
                    };
                }
            },
        );
        Ok(())
    }

    fn check_device(&self, src: &DeviceBuffer, dst: &DeviceBuffer) -> Result<()> {
        if src.len() < self.src_bytes || dst.len() / 4 < self.out_pixels {
            return Err(invalid(format!(
                "sobel: device source of {} bytes (needs {}), destination of {} bytes (needs {})",
                src.len(),
                self.src_bytes,
                dst.len(),
                self.out_pixels * 4
            )));
        }
        Ok(())
    }

    /// Queues the fused GPU kernel on `stream` and returns at once: `src` holds the window
    /// ([`Sobel::src_bytes`]), `dst` gets the output rectangle as row-major `f32`. The result
    /// is bit-identical to [`Sobel::host`]. This is the call to time: nothing is allocated,
    /// copied or synchronised.
    ///
    /// ```no_run
    /// use tiledio_io::{ElementType, gpu::{DeviceBuffer, Stream}};
    /// use tiledio_kernels::{Sobel, SobelOutput};
    /// let s = Sobel::whole(ElementType::F32, 1, [4096, 4096], SobelOutput::Magnitude)?;
    /// let src = DeviceBuffer::zeroed(s.src_bytes())?;
    /// let mut dst = DeviceBuffer::new(s.output_pixels() * 4)?;
    /// let stream = Stream::new()?;
    /// // SAFETY: the buffers outlive the kernel: the stream is waited for below.
    /// unsafe { s.device_on(&src, &mut dst, &stream)? };
    /// stream.synchronize()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    /// Nothing waits here: `src` and `dst` must stay allocated, `dst` unread and `src`
    /// unwritten by the host and other streams, until the kernel has run (synchronise
    /// `stream`, or order the other work after it with an event).
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if a buffer is too short; [`crate::KernelError::Io`]
    /// without a GPU, or for a CUDA or NVRTC error.
    pub unsafe fn device_on(&self, src: &DeviceBuffer, dst: &mut DeviceBuffer, stream: &Stream) -> Result<()> {
        self.check_device(src, dst)?;
        if self.out_pixels == 0 {
            return Ok(());
        }
        let (args, grid, k) = self.args(src, dst)?;
        // SAFETY: see launch_args; the caller keeps the buffers alive until the kernel ran.
        unsafe { args.launch_on_dims(&k, grid, (BLOCK, 1, 1), 0, stream) }
    }

    /// [`Sobel::device_on`], waited for (on a stream of the calling thread's that orders with
    /// the default stream).
    ///
    /// ```no_run
    /// use tiledio_io::{ElementType, gpu::DeviceBuffer};
    /// use tiledio_kernels::{Sobel, SobelOutput};
    /// let s = Sobel::whole(ElementType::U8, 1, [1, 3], SobelOutput::Vertical)?;
    /// let src = DeviceBuffer::from_host(&[0, 0, 255])?;
    /// let mut dst = DeviceBuffer::new(12)?;
    /// s.device(&src, &mut dst)?;
    /// let v: Vec<f32> = dst.to_host_vec()?.chunks(4).map(|b| f32::from_ne_bytes(b.try_into().unwrap())).collect();
    /// assert_eq!(v, [0.0, 1.0, 1.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Sobel::device_on`].
    pub fn device(&self, src: &DeviceBuffer, dst: &mut DeviceBuffer) -> Result<()> {
        self.check_device(src, dst)?;
        if self.out_pixels == 0 {
            return Ok(());
        }
        let (args, grid, k) = self.args(src, dst)?;
        // SAFETY: see args; launch_dims waits for the kernel.
        unsafe { args.launch_dims(&k, grid, (BLOCK, 1, 1), 0) }
    }

    /// The kernel, its arguments and grid. The kernel `sobel_<t>_c<c>(const T* src, float*
    /// dst, i64 ih, iw, wy0, wx0, ww, oy0, ox0, oh, ow, int what)` reads only window pixels
    /// (the halo check of `new`) and writes `oh × ow` floats: inside the buffers (checked).
    fn args<'a>(
        &self,
        src: &'a DeviceBuffer,
        dst: &'a mut DeviceBuffer,
    ) -> Result<(LaunchArgs<'a>, (u32, u32, u32), tiledio_io::gpu::Kernel)> {
        let t = match self.element {
            ElementType::U8 => "u8",
            ElementType::U16 => "u16",
            _ => "f32",
        };
        let k = kernel("tiledio_sobel", SRC, &format!("sobel_{t}_c{}", self.channels))?;
        let i = |v: u64| v as i64;
        let args = LaunchArgs::new()
            .read(src)
            .write(dst)
            .scalar(i(self.image[0]))
            .scalar(i(self.image[1]))
            .scalar(i(self.window.origin[0]))
            .scalar(i(self.window.origin[1]))
            .scalar(i(self.window.shape[1]))
            .scalar(i(self.output.origin[0]))
            .scalar(i(self.output.origin[1]))
            .scalar(i(self.output.shape[0]))
            .scalar(i(self.output.shape[1]))
            .scalar(self.what.code());
        let cols = if self.channels == 1 { 2 } else { 4 };
        let gx = self.output.shape[1]
            .div_ceil(u64::from(BLOCK) * cols)
            .clamp(1, i32::MAX as u64) as u32;
        // rows beyond 65535 blocks are walked by a grid-stride loop in the kernel
        let gy = self.output.shape[0].div_ceil(ROWS_PER_THREAD).clamp(1, 65535) as u32;
        Ok((args, (gx, gy, 1), k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halo_rect_is_clipped_to_the_image() {
        assert_eq!(Rect::new([0, 0], [5, 5]).with_halo([5, 5], 1), Rect::whole([5, 5]));
        assert_eq!(
            Rect::new([2, 1], [1, 1]).with_halo([5, 5], 1),
            Rect::new([1, 0], [3, 3])
        );
        assert!(!Rect::new([u64::MAX, 0], [2, 1]).contains(&Rect::default()));
    }

    #[test]
    fn single_pixel_and_single_row_images_reflect_onto_themselves() {
        let s = Sobel::whole(ElementType::F32, 1, [1, 1], SobelOutput::Magnitude).unwrap();
        let mut o = [1f32];
        s.host(&5f32.to_ne_bytes(), &mut o).unwrap();
        assert_eq!(o, [0.0]);
        let s = Sobel::whole(ElementType::F32, 1, [1, 3], SobelOutput::Vertical).unwrap();
        let src: Vec<u8> = [1f32, 2.0, 4.0].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mut o = [0f32; 3];
        s.host(&src, &mut o).unwrap();
        assert_eq!(o, [1.0, 3.0, 2.0]); // reflect: [1] 1 2 4 [4]
    }
}
