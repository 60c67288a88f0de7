//! Small host reads copied out of a read-only mapping of the file.
//!
//! A read of a few hundred kilobytes scattered over many short ranges (a 256² window of a
//! slide: a row segment of each tile it touches, for every row) costs more in `pread` calls,
//! or in reading whole tile rows to throw most of each away, than in copying the bytes. Copying
//! the ranges out of a mapping of the file (the page cache's own pages) moves only the bytes
//! asked for and makes no system call once the pages are mapped.
//!
//! The one hazard of a mapping is a file truncated by another process while it is copied: the
//! kernel then signals the process (`SIGBUS`) instead of returning a short read. The file's
//! length is checked against the ranges before every copy, which turns the usual case (the file
//! replaced or cut between open and read) into [`IoError::ShortRead`]; a cut in the
//! microseconds of the copy itself is not caught. `TILEDIO_MAPPED_READS=off`
//! ([`crate::Settings::mapped_reads`]) reads with `pread` only.

use crate::error::{IoError, Result};
use crate::plan::ReadRange;
use std::fs::File;
use std::path::Path;

/// A read-only shared mapping of a whole file, unmapped on drop; the one mapping of a file
/// tiledio makes (the GPU's mmap backend registers it with the driver).
pub(crate) struct FileMap {
    /// The mapped bytes. `'static` only inside this type: the slice is handed out borrowed from
    /// `self` and unmapped in `drop`.
    bytes: &'static [u8],
}

impl FileMap {
    /// Maps `len` bytes of `file`, or says why not (an empty file, one larger than the address
    /// space, or the system's refusal).
    pub(crate) fn new(file: &File, len: u64) -> std::result::Result<FileMap, String> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(len).map_err(|_| "file too large to map".to_string())?;
        if len == 0 {
            return Err("empty file".into());
        }
        // SAFETY: maps a file we hold open, read-only; the pointer is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap failed: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `ptr..ptr + len` is a live read-only mapping until `drop` unmaps it.
        let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
        Ok(FileMap { bytes })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// Copies each range out of the mapping into `buf`, in the given order.
    ///
    /// The ranges were checked against the file's length at open; here they are checked
    /// against the buffer, against each other (destinations must not overlap, as for every
    /// read), and against the file's length now.
    pub(crate) fn copy(&self, file: &File, path: &Path, ranges: &[ReadRange], buf: &mut [u8]) -> Result<()> {
        check_destinations(ranges, buf.len())?;
        let end = ranges.iter().map(|r| r.file_offset + r.len as u64).max().unwrap_or(0);
        let now = file.metadata().map_err(|e| IoError::open(path, e))?.len();
        if end > now.min(self.bytes.len() as u64) {
            let first = ranges
                .iter()
                .find(|r| r.file_offset + r.len as u64 > now)
                .unwrap_or(&ranges[0]);
            return Err(IoError::ShortRead {
                path: path.to_path_buf(),
                offset: first.file_offset,
                len: first.len as u64,
                got: now.saturating_sub(first.file_offset).min(first.len as u64),
            });
        }
        for r in ranges.iter().filter(|r| r.len > 0) {
            let at = r.file_offset as usize; // below the mapping's length, checked above
            buf[r.dst_offset..r.dst_offset + r.len].copy_from_slice(&self.bytes[at..at + r.len]);
        }
        Ok(())
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: mapped in new(), unmapped once; no borrow of `bytes` outlives `self`.
        unsafe { libc::munmap(self.bytes.as_ptr() as *mut _, self.bytes.len()) };
    }
}

/// Checks the ranges' destinations fit in `capacity` bytes and do not overlap: in one pass
/// when they come in increasing order (as a window's row segments do), else by sorting.
fn check_destinations(ranges: &[ReadRange], capacity: usize) -> Result<()> {
    let spans = || ranges.iter().filter(|r| r.len > 0).map(|r| (r.dst_offset, r.len));
    crate::plan::check_buffer(spans(), capacity)?;
    let mut last_end = 0;
    let rising = spans().all(|(at, len)| std::mem::replace(&mut last_end, at + len) <= at);
    if rising {
        return Ok(());
    }
    crate::plan::check_disjoint(spans().map(|(at, len)| (0, at as u64, (at + len) as u64)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, bytes).unwrap();
        let f = File::open(&path).unwrap();
        (dir, path, f)
    }

    #[test]
    fn copies_ranges_in_any_order_and_refuses_overlaps() {
        let data: Vec<u8> = (0..=255u8).collect();
        let (_d, path, f) = file_of(&data);
        let m = FileMap::new(&f, data.len() as u64).unwrap();
        let mut buf = [0u8; 6];
        let range = |file_offset, len, dst_offset| ReadRange {
            file_offset,
            len,
            dst_offset,
        };
        m.copy(&f, &path, &[range(200, 2, 4), range(10, 4, 0)], &mut buf)
            .unwrap();
        assert_eq!(buf, [10, 11, 12, 13, 200, 201]);
        let overlap = m.copy(&f, &path, &[range(0, 4, 2), range(0, 4, 0)], &mut buf);
        assert!(matches!(overlap, Err(IoError::OverlappingDestinations { .. })));
        let past = m.copy(&f, &path, &[range(0, 7, 0)], &mut buf);
        assert!(matches!(past, Err(IoError::BufferTooSmall { .. })));
    }

    #[test]
    fn a_file_cut_after_mapping_is_a_short_read_not_a_signal() {
        let data = vec![7u8; 10_000];
        let (_d, path, f) = file_of(&data);
        let m = FileMap::new(&f, data.len() as u64).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        let mut buf = [0u8; 16];
        let r = [ReadRange {
            file_offset: 8000,
            len: 16,
            dst_offset: 0,
        }];
        match m.copy(&f, &path, &r, &mut buf) {
            Err(IoError::ShortRead {
                offset: 8000, got: 0, ..
            }) => {}
            other => panic!("expected a short read, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_file_is_not_mapped() {
        let (_d, _path, f) = file_of(&[]);
        assert!(FileMap::new(&f, 0).is_err());
    }
}
