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

/// A read-only shared mapping of a whole file, unmapped on drop.
pub(crate) struct FileMap {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by the struct; shared references only read it.
unsafe impl Send for FileMap {}
// SAFETY: as above.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps `len` bytes of `file`; `None` for an empty file or when the system refuses (the
    /// reads then use `pread`: a mapping is only a faster way to the same bytes).
    pub(crate) fn new(file: &File, len: u64) -> Option<FileMap> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
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
        (ptr != libc::MAP_FAILED).then_some(FileMap {
            ptr: ptr as *const u8,
            len,
        })
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
        if end > now.min(self.len as u64) {
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
            // SAFETY: `file_offset + len <= self.len` (checked above) lies inside the mapping,
            // which lives as long as `self`.
            let src = unsafe { std::slice::from_raw_parts(self.ptr.add(r.file_offset as usize), r.len) };
            buf[r.dst_offset..r.dst_offset + r.len].copy_from_slice(src);
        }
        Ok(())
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: mapped in new(), unmapped once.
        unsafe { libc::munmap(self.ptr as *mut _, self.len) };
    }
}

/// Checks the ranges' destinations fit in `capacity` bytes and do not overlap: in one pass
/// when they come in increasing order (as a window's row segments do), else by sorting.
fn check_destinations(ranges: &[ReadRange], capacity: usize) -> Result<()> {
    let mut sorted = true;
    let mut last_end = 0usize;
    for r in ranges.iter().filter(|r| r.len > 0) {
        let end = r.dst_offset as u64 + r.len as u64;
        if end > capacity as u64 {
            return Err(IoError::BufferTooSmall {
                start: r.dst_offset as u64,
                end,
                capacity: capacity as u64,
            });
        }
        sorted &= r.dst_offset >= last_end;
        last_end = end as usize;
    }
    if sorted {
        return Ok(());
    }
    crate::plan::check_disjoint(
        ranges
            .iter()
            .filter(|r| r.len > 0)
            .map(|r| (0, r.dst_offset as u64, (r.dst_offset + r.len) as u64))
            .collect(),
    )
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
        let rs = [
            ReadRange {
                file_offset: 200,
                len: 2,
                dst_offset: 4,
            },
            ReadRange {
                file_offset: 10,
                len: 4,
                dst_offset: 0,
            },
        ];
        m.copy(&f, &path, &rs, &mut buf).unwrap();
        assert_eq!(buf, [10, 11, 12, 13, 200, 201]);
        let overlap = [
            ReadRange {
                file_offset: 0,
                len: 4,
                dst_offset: 2,
            },
            ReadRange {
                file_offset: 0,
                len: 4,
                dst_offset: 0,
            },
        ];
        assert!(matches!(
            m.copy(&f, &path, &overlap, &mut buf),
            Err(IoError::OverlappingDestinations { .. })
        ));
        let past = [ReadRange {
            file_offset: 0,
            len: 7,
            dst_offset: 0,
        }];
        assert!(matches!(
            m.copy(&f, &path, &past, &mut buf),
            Err(IoError::BufferTooSmall { .. })
        ));
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
        assert!(FileMap::new(&f, 0).is_none());
    }
}
