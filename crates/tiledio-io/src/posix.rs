//! POSIX file primitives: positioned reads and writes that finish or say why, direct I/O, and
//! page-aligned buffers for it.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment O_DIRECT needs for offsets, lengths and buffer addresses on the file systems we meet.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn pread_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes all of `buf` at `offset`.
pub(crate) fn pwrite_all(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
}

/// Opens `path` for reading as data: non-blocking, so a FIFO cannot hang the open, then
/// refused unless it is a regular file (a FIFO, a device such as /dev/zero behind a symlink,
/// a directory or a socket is never read as data).
pub(crate) fn open_regular(path: &Path) -> crate::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| crate::IoError::open(path, e))?;
    let ft = f.metadata().map_err(|e| crate::IoError::open(path, e))?.file_type();
    if !ft.is_file() {
        return Err(crate::IoError::NotRegularFile {
            path: path.to_path_buf(),
            kind: crate::output::file_kind(ft),
        });
    }
    Ok(f)
}

/// Opens `path` read-only with O_DIRECT (page cache bypassed).
pub(crate) fn open_direct(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Rounds `x` down to the direct-I/O alignment.
pub(crate) fn align_down(x: u64) -> u64 {
    x & !(DIRECT_ALIGN as u64 - 1)
}

/// Rounds `x` up to the direct-I/O alignment.
pub(crate) fn align_up(x: u64) -> u64 {
    (x + DIRECT_ALIGN as u64 - 1) & !(DIRECT_ALIGN as u64 - 1)
}

/// Reads `[offset, offset+len)` through an O_DIRECT descriptor into `scratch`, which must be
/// page-aligned and at least `len + 2 * DIRECT_ALIGN` long. Returns where the wanted bytes start
/// in `scratch` and how many of them the file had.
pub(crate) fn pread_direct(direct: &File, scratch: &mut [u8], offset: u64, len: usize) -> io::Result<(usize, usize)> {
    let a_off = align_down(offset);
    let a_end = align_up(offset + len as u64);
    let a_len = (a_end - a_off) as usize;
    debug_assert!(scratch.len() >= a_len && (scratch.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN));
    let got = pread_full(direct, &mut scratch[..a_len], a_off)?;
    let delta = (offset - a_off) as usize;
    Ok((delta, got.saturating_sub(delta).min(len)))
}

/// A heap buffer aligned to [`DIRECT_ALIGN`], for direct I/O into host memory.
pub(crate) struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    pub(crate) fn new(len: usize) -> AlignedBuf {
        let len = len.max(DIRECT_ALIGN);
        let layout = std::alloc::Layout::from_size_align(len, DIRECT_ALIGN).expect("valid layout");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        let ptr = std::ptr::NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, len }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes for the life of self (bytes may be uninitialised
        // garbage from the allocator but u8 has no invalid values once written; we only read
        // what a read filled).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in Deref, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, DIRECT_ALIGN).expect("valid layout");
        // SAFETY: allocated in new() with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}
