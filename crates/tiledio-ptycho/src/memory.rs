//! Frame stacks already in memory as [`FrameStore`]s: a host buffer ([`HostStack`]) or GPU
//! memory ([`DeviceStack`]), e.g. a NumPy or CuPy array handed to [`crate::preprocess`].

use crate::error::{Result, usage};
use crate::store::{FrameStore, checked_request, stack_geometry};
use std::ops::Range;
use tiledio_io::gpu::DeviceBuffer;
use tiledio_io::{ElementType, Target};

/// Checks a stack's geometry against its buffer and returns the bytes of one frame.
fn frame_bytes(name: &str, len: usize, frames: u64, shape: (usize, usize), dtype: ElementType) -> Result<usize> {
    let fb = shape
        .0
        .checked_mul(shape.1)
        .and_then(|v| v.checked_mul(dtype.size()))
        .ok_or_else(|| usage(format!("{name}: frame shape {shape:?} overflows")))?;
    let total = usize::try_from(frames)
        .ok()
        .and_then(|n| n.checked_mul(fb))
        .ok_or_else(|| usage(format!("{name}: {frames} frames overflow")))?;
    if total != len {
        return Err(usage(format!(
            "{name}: {len} bytes do not make {frames} frames of {}x{} {dtype}",
            shape.0, shape.1
        )));
    }
    Ok(fb)
}

/// The byte ranges `(source offset, length)` of `rows` of `frames`, frame after frame: one range
/// when whole frames are asked for.
fn ranges(frames: &Range<u64>, rows: &Range<usize>, h: usize, row_bytes: usize) -> Vec<(usize, usize)> {
    let fb = h * row_bytes;
    let (f0, n) = (frames.start as usize, (frames.end - frames.start) as usize);
    if rows.start == 0 && rows.end == h {
        return vec![(f0 * fb, n * fb)];
    }
    (0..n)
        .map(|k| ((f0 + k) * fb + rows.start * row_bytes, rows.len() * row_bytes))
        .collect()
}

/// Memory a [`MemoryStack`] can hold its frames in: a host buffer (`[u8]`) or GPU memory
/// ([`DeviceBuffer`]). Sealed: only those two.
pub trait StackMemory: Sync + std::fmt::Debug + sealed::Sealed {
    /// Bytes held.
    fn byte_len(&self) -> usize;

    /// Copies bytes `[off, off + len)` to byte `at` of `dst`.
    ///
    /// # Errors
    /// [`crate::PtychoError::Io`] from a GPU copy.
    fn copy_out(&self, off: usize, len: usize, dst: &mut Target<'_>, at: usize) -> Result<()>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for [u8] {}
    impl Sealed for tiledio_io::gpu::DeviceBuffer {}
}

impl StackMemory for [u8] {
    fn byte_len(&self) -> usize {
        self.len()
    }
    fn copy_out(&self, off: usize, len: usize, dst: &mut Target<'_>, at: usize) -> Result<()> {
        let src = &self[off..off + len];
        match dst {
            Target::Host(b) => b[at..at + len].copy_from_slice(src),
            Target::Device(d) => d.copy_from_host_at(at, src)?,
        }
        Ok(())
    }
}

impl StackMemory for DeviceBuffer {
    fn byte_len(&self) -> usize {
        self.len()
    }
    fn copy_out(&self, off: usize, len: usize, dst: &mut Target<'_>, at: usize) -> Result<()> {
        match dst {
            Target::Host(b) => self.copy_to_host_at(off, &mut b[at..at + len])?,
            Target::Device(d) => d.copy_from_device(at, self, off, len)?,
        }
        Ok(())
    }
}

/// `(N, H, W)` frames already in memory `M` (C order, native byte order), borrowed: see
/// [`HostStack`] and [`DeviceStack`].
#[derive(Debug)]
pub struct MemoryStack<'a, M: StackMemory + ?Sized> {
    mem: &'a M,
    frames: u64,
    shape: (usize, usize),
    dtype: ElementType,
    name: String,
}

/// `(N, H, W)` frames in a host buffer (C order, native byte order), borrowed.
///
/// ```
/// use tiledio_ptycho::{FrameStore, HostStack};
/// let data: Vec<u8> = (0..2 * 3 * 4).collect();
/// let s = HostStack::new(&data, 2, (3, 4), tiledio_io::ElementType::U8, "stack")?;
/// let mut row = vec![0u8; 4];
/// s.read_frames(1..2, Some(2..3), (&mut row).into())?;
/// assert_eq!(row, [20, 21, 22, 23]);
/// # Ok::<(), tiledio_ptycho::PtychoError>(())
/// ```
pub type HostStack<'a> = MemoryStack<'a, [u8]>;

/// `(N, H, W)` frames in GPU memory (C order), borrowed: a CuPy, PyTorch or JAX array seen
/// through a non-owning [`DeviceBuffer`].
pub type DeviceStack<'a> = MemoryStack<'a, DeviceBuffer>;

impl<'a, M: StackMemory + ?Sized> MemoryStack<'a, M> {
    /// `frames` frames of `shape` and `dtype` in `mem` (exactly those bytes), named `name` in
    /// messages.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] when `mem` does not hold exactly those frames.
    pub fn new(
        mem: &'a M,
        frames: u64,
        shape: (usize, usize),
        dtype: ElementType,
        name: impl Into<String>,
    ) -> Result<MemoryStack<'a, M>> {
        let name = name.into();
        frame_bytes(&name, mem.byte_len(), frames, shape, dtype)?;
        Ok(MemoryStack {
            mem,
            frames,
            shape,
            dtype,
            name,
        })
    }
}

impl<M: StackMemory + ?Sized> FrameStore for MemoryStack<'_, M> {
    stack_geometry!();
    fn read_frames(&self, frames: Range<u64>, rows: Option<Range<usize>>, dst: Target<'_>) -> Result<()> {
        let rows = checked_request(self, &frames, rows, &dst)?;
        let mut at = 0usize;
        let mut dst = dst;
        for (off, len) in ranges(&frames, &rows, self.shape.0, self.shape.1 * self.dtype.size()) {
            self.mem.copy_out(off, len, &mut dst, at)?;
            at += len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_stacks_read_rows_and_frames() {
        let data: Vec<u8> = (0..3 * 4 * 2 * 2).map(|i| i as u8).collect(); // 3 frames of 4x2 u16
        let s = HostStack::new(&data, 3, (4, 2), ElementType::U16, "s").unwrap();
        assert_eq!(s.read_frames_to_vec(0..3, None).unwrap(), data);
        // rows 1..3 of frames 1 and 2: 2 rows x 4 bytes each
        let v = s.read_frames_to_vec(1..3, Some(1..3)).unwrap();
        assert_eq!(v, [&data[16 + 4..16 + 12], &data[32 + 4..32 + 12]].concat());
        assert!(s.read_frames_to_vec(2..4, None).is_err());
        assert!(s.read_frames_to_vec(0..1, Some(3..5)).is_err());
        let mut short = vec![0u8; 3];
        assert!(s.read_frames(0..1, None, (&mut short).into()).is_err());
        assert!(HostStack::new(&data, 4, (4, 2), ElementType::U16, "s").is_err());
        assert!(HostStack::new(&data, 1, (usize::MAX, 2), ElementType::U16, "s").is_err());
    }
}
