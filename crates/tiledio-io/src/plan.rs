//! Turns many byte ranges into few large reads: sort, coalesce nearby ranges, split into
//! task-sized pieces, and remember where each piece's bytes go.

use crate::error::{IoError, Result};

/// One range to read: `len` bytes at `file_offset` in the file, stored at `dst_offset` in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadRange {
    /// Where the bytes start in the file.
    pub file_offset: u64,
    /// How many bytes.
    pub len: usize,
    /// Where they go in the destination buffer.
    pub dst_offset: usize,
}

/// One range to write: `len` bytes from `src_offset` in the source, stored at `file_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteRange {
    /// Where the bytes go in the file.
    pub file_offset: u64,
    /// How many bytes.
    pub len: usize,
    /// Where they start in the source buffer.
    pub src_offset: usize,
}

/// Part of a piece that belongs to one caller range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Offset inside the piece.
    pub piece_offset: usize,
    /// Length.
    pub len: usize,
    /// Offset in the caller's buffer.
    pub buf_offset: usize,
}

/// One read or write a worker performs: a contiguous byte range of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Index of the file in the call's file list.
    pub file: usize,
    /// Start in the file.
    pub file_offset: u64,
    /// Length in the file.
    pub len: usize,
    /// Where the piece's bytes come from or go to in the caller's buffer.
    pub segs: Vec<Segment>,
}

impl Piece {
    /// The single buffer offset when the piece maps onto one contiguous stretch of the buffer.
    pub(crate) fn dense_offset(&self) -> Option<usize> {
        match self.segs.as_slice() {
            [s] if s.piece_offset == 0 && s.len == self.len => Some(s.buf_offset),
            _ => None,
        }
    }
}

/// A range of one file in the call, before planning.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item {
    pub file: usize,
    pub file_offset: u64,
    pub len: usize,
    pub buf_offset: usize,
}

/// Checks that no two items use the same buffer bytes (reads) or file bytes (writes).
pub(crate) fn check_disjoint(mut spans: Vec<(usize, u64, u64)>) -> Result<()> {
    spans.sort_unstable();
    for w in spans.windows(2) {
        let ((ka, sa, ea), (kb, sb, _)) = (w[0], w[1]);
        if ka == kb && sb < ea {
            return Err(IoError::OverlappingDestinations { at: sb.max(sa) });
        }
    }
    Ok(())
}

/// Checks every `(offset, len)` span fits in a buffer of `buf_len` bytes.
pub(crate) fn check_buffer(spans: impl IntoIterator<Item = (usize, usize)>, buf_len: usize) -> Result<()> {
    for (at, len) in spans {
        let end = at as u64 + len as u64;
        if end > buf_len as u64 {
            return Err(IoError::BufferTooSmall {
                start: at as u64,
                end,
                capacity: buf_len as u64,
            });
        }
    }
    Ok(())
}

/// Plans `items`: within each file, ranges separated by at most `gap` bytes are read as one
/// run, and runs are cut into pieces at multiples of `task_size` in the file (so pieces stay
/// aligned for direct I/O). Zero-length items are dropped.
///
/// `allow_gaps = false` (writes) coalesces only ranges that touch in the file.
pub(crate) fn plan(items: &[Item], gap: u64, task_size: usize, allow_gaps: bool) -> Vec<Piece> {
    let mut sorted: Vec<Item> = items.iter().copied().filter(|i| i.len > 0).collect();
    sorted.sort_unstable_by_key(|i| (i.file, i.file_offset));
    let gap = if allow_gaps { gap } else { 0 };
    let ts = task_size as u64;
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        // One run: items of the same file whose starts fall within `gap` of the run's end.
        let (file, start) = (sorted[i].file, sorted[i].file_offset);
        let mut end = start + sorted[i].len as u64;
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].file == file && sorted[j].file_offset <= end + gap {
            end = end.max(sorted[j].file_offset + sorted[j].len as u64);
            j += 1;
        }
        let first = start / ts;
        let last = (end - 1) / ts;
        let base = pieces.len();
        for p in first..=last {
            let ps = (p * ts).max(start);
            let pe = ((p + 1) * ts).min(end);
            pieces.push(Piece {
                file,
                file_offset: ps,
                len: (pe - ps) as usize,
                segs: Vec::new(),
            });
        }
        for it in &sorted[i..j] {
            let (is, ie) = (it.file_offset, it.file_offset + it.len as u64);
            for p in (is / ts).max(first)..=((ie - 1) / ts) {
                let piece = &mut pieces[base + (p - first) as usize];
                let s = is.max(piece.file_offset);
                let e = ie.min(piece.file_offset + piece.len as u64);
                piece.segs.push(Segment {
                    piece_offset: (s - piece.file_offset) as usize,
                    len: (e - s) as usize,
                    buf_offset: it.buf_offset + (s - is) as usize,
                });
            }
        }
        i = j;
    }
    // Pieces inside gaps larger than a task hold no segment: nothing to read there.
    pieces.retain(|p| !p.segs.is_empty());
    for p in &mut pieces {
        // Trim the piece to the bytes its segments need.
        let lo = p.segs.iter().map(|s| s.piece_offset).min().unwrap_or(0);
        let hi = p.segs.iter().map(|s| s.piece_offset + s.len).max().unwrap_or(0);
        if lo > 0 {
            for s in &mut p.segs {
                s.piece_offset -= lo;
            }
        }
        p.file_offset += lo as u64;
        p.len = hi - lo;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(file_offset: u64, len: usize, buf_offset: usize) -> Item {
        Item {
            file: 0,
            file_offset,
            len,
            buf_offset,
        }
    }

    #[test]
    fn adjacent_ranges_become_one_dense_piece() {
        let p = plan(&[item(100, 50, 0), item(150, 50, 50)], 0, 4096, true);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].file_offset, p[0].len), (100, 100));
        assert_eq!(p[0].segs.len(), 2);
    }

    #[test]
    fn near_ranges_coalesce_far_ones_do_not() {
        let p = plan(
            &[item(0, 10, 0), item(20, 10, 10), item(10_000, 10, 20)],
            16,
            1 << 20,
            true,
        );
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].file_offset, p[0].len), (0, 30));
        let p = plan(&[item(0, 10, 0), item(20, 10, 10)], 16, 1 << 20, false);
        assert_eq!(p.len(), 2, "writes never span gaps");
    }

    #[test]
    fn long_ranges_split_at_task_boundaries() {
        let p = plan(&[item(1000, 10_000, 0)], 0, 4096, true);
        let starts: Vec<u64> = p.iter().map(|p| p.file_offset).collect();
        assert_eq!(starts, vec![1000, 4096, 8192]);
        assert_eq!(p.iter().map(|p| p.len).sum::<usize>(), 10_000);
        assert!(p.iter().all(|p| p.dense_offset().is_some()));
    }

    #[test]
    fn overlapping_destinations_are_refused() {
        assert!(check_disjoint(vec![(0, 0, 10), (0, 5, 15)]).is_err());
        assert!(check_disjoint(vec![(0, 0, 10), (0, 10, 15), (1, 0, 10)]).is_ok());
    }
}
