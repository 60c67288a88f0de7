//! The one way tiledio lets several threads write one buffer: a view that hands out disjoint
//! mutable sub-slices, bounds-checked, with the disjointness promised by the caller.
//!
//! Every parallel placement (the engine's workers scattering pieces into a caller's buffer,
//! decode threads placing tiles into a region, chunk gather/scatter tasks) goes through
//! [`DisjointBytes`], so the single `unsafe` promise that matters — no two live slices overlap —
//! is stated and checked in one place. Compare zarrs' `ArrayBytesFixedDisjointView`.

use std::marker::PhantomData;

/// A byte buffer borrowed mutably and shared by threads, each of which writes only its own
/// bytes.
///
/// Creating the view is safe (it borrows the buffer mutably, so nothing else can touch it while
/// the view lives); taking a sub-slice is `unsafe` because the compiler cannot see that two
/// threads' ranges do not overlap. Ranges are always bounds-checked: a wrong offset is an
/// `Err`, never a write outside the buffer.
///
/// ```
/// use tiledio_io::DisjointBytes;
/// let mut buf = vec![0u8; 8];
/// let view = DisjointBytes::new(&mut buf);
/// std::thread::scope(|s| {
///     for half in 0..2 {
///         let v = &view;
///         s.spawn(move || {
///             // SAFETY: each thread takes its own half.
///             let part = unsafe { v.slice_mut(half * 4, 4) }.unwrap();
///             part.fill(half as u8 + 1);
///         });
///     }
/// });
/// assert!(unsafe { view.slice_mut(6, 4) }.is_err()); // past the end: refused
/// drop(view);
/// assert_eq!(buf, [1, 1, 1, 1, 2, 2, 2, 2]);
/// ```
pub struct DisjointBytes<'a> {
    ptr: *mut u8,
    len: usize,
    _buf: PhantomData<&'a mut [u8]>,
}

// SAFETY: the view is a `&mut [u8]` split among threads; `slice_mut`'s contract makes every
// thread's bytes its own, which is what `&mut [u8]: Send` needs.
unsafe impl Send for DisjointBytes<'_> {}
// SAFETY: as above: shared references only hand out disjoint slices (the caller's promise).
unsafe impl Sync for DisjointBytes<'_> {}

impl std::fmt::Debug for DisjointBytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DisjointBytes({} bytes)", self.len)
    }
}

/// A sub-slice asked of a [`DisjointBytes`] that does not lie inside it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bytes [{offset}, {offset} + {len}) are outside a buffer of {buf_len} bytes")]
pub struct OutOfBounds {
    /// Start of the range asked for.
    pub offset: usize,
    /// Its length.
    pub len: usize,
    /// The buffer's length.
    pub buf_len: usize,
}

impl<'a> DisjointBytes<'a> {
    /// A view of `buf` for the duration of its borrow.
    pub fn new(buf: &'a mut [u8]) -> Self {
        DisjointBytes {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            _buf: PhantomData,
        }
    }

    /// The buffer's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes `[offset, offset + len)` of the buffer, for writing (and reading back what this
    /// thread wrote).
    ///
    /// # Safety
    /// While the returned slice lives, no other slice taken from this view may overlap it (each
    /// thread writes bytes that are its own alone). The bounds need no promise: they are checked.
    ///
    /// # Errors
    /// [`OutOfBounds`] when the range does not lie inside the buffer.
    // Handing out disjoint `&mut` from `&self` is the purpose of the type.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: usize, len: usize) -> Result<&'a mut [u8], OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: in bounds (checked); the borrow `'a` keeps the buffer alive and
                // otherwise untouched; overlap is excluded by the caller's promise.
                Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(offset), len) })
            }
            _ => Err(OutOfBounds {
                offset,
                len,
                buf_len: self.len,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let mut b = [0u8; 10];
        let v = DisjointBytes::new(&mut b);
        // SAFETY: one slice at a time.
        unsafe {
            assert!(v.slice_mut(0, 10).is_ok());
            assert!(v.slice_mut(10, 0).is_ok());
            assert_eq!(
                v.slice_mut(5, 6).unwrap_err(),
                OutOfBounds {
                    offset: 5,
                    len: 6,
                    buf_len: 10
                }
            );
            assert!(v.slice_mut(usize::MAX, 2).is_err());
        }
    }
}
