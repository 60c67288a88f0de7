//! Reading a rectangle of one page: which tiles, one batched range read of their bytes,
//! parallel decode into a tile-major buffer, then one placement step into the output.

use crate::codec::{decode_tile, swap_bytes};
use crate::error::{Result, TiffError};
use crate::page::{Compression, Page};
use rayon::prelude::*;
use tiledio_io::{FileHandle, ReadRange};

/// A buffer of `len` bytes set to `value`, or an error (not an abort) if memory runs out.
pub(crate) fn alloc(len: usize, value: u8) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    // A zeroed allocation against the memory budget: large ones come from fresh zero pages,
    // which fault in lazily on the decode threads instead of being written once, serially,
    // here (a memset of a whole level took as long as decoding it on 16 cores).
    let mut v = tiledio_io::try_alloc_zeroed(len, "the pixels of the region")?;
    if value != 0 {
        v.par_chunks_mut(1 << 20).for_each(|c| c.fill(value));
    }
    Ok(v)
}

/// One tile's part of the output: where its slot is and which rectangle it fills.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job {
    pub(crate) tile: usize,
    pub(crate) slot: usize,
    pub(crate) src_x: u64,
    pub(crate) src_y: u64,
    pub(crate) dst_x: u64,
    pub(crate) dst_y: u64,
    pub(crate) w: u64,
    pub(crate) h: u64,
}

/// The tiles a window `(x, y, w, h)` of the page (in page pixels, may extend past the image)
/// touches, cropped to the image and the window, in tile-row order.
pub(crate) fn plan(page: &Page, x: i64, y: i64, w: u64, h: u64) -> Vec<Job> {
    let x0 = x.max(0) as u64;
    let y0 = y.max(0) as u64;
    let x1 = (x as i128 + w as i128).clamp(0, page.width as i128) as u64;
    let y1 = (y as i128 + h as i128).clamp(0, page.height as i128) as u64;
    let mut jobs = Vec::new();
    if x0 >= x1 || y0 >= y1 {
        return jobs;
    }
    for ty in y0 / page.tile_h..y1.div_ceil(page.tile_h) {
        for tx in x0 / page.tile_w..x1.div_ceil(page.tile_w) {
            let (gx, gy) = (tx * page.tile_w, ty * page.tile_h);
            let cx0 = gx.max(x0);
            let cy0 = gy.max(y0);
            let cx1 = (gx + page.tile_w).min(x1);
            let cy1 = (gy + page.tile_h).min(y1);
            jobs.push(Job {
                tile: (ty * page.across + tx) as usize,
                slot: jobs.len(),
                src_x: cx0 - gx,
                src_y: cy0 - gy,
                dst_x: (cx0 as i128 - x as i128) as u64,
                dst_y: (cy0 as i128 - y as i128) as u64,
                w: cx1 - cx0,
                h: cy1 - cy0,
            });
        }
    }
    jobs
}

/// Checks the stored bytes of the tiles the jobs need: none empty, uncompressed ones long enough.
pub(crate) fn check_tiles(fh: &FileHandle, page: &Page, jobs: &[Job]) -> Result<()> {
    for j in jobs {
        let c = page.counts[j.tile];
        let bad = |reason: String| TiffError::BadTile {
            path: fh.path().to_path_buf(),
            page: page.index,
            tile: j.tile,
            reason,
        };
        if c == 0 {
            return Err(bad("byte count is zero".into()));
        }
        if page.compression == Compression::None {
            let need = uncompressed_len(page, j.tile);
            if c < need as u64 {
                return Err(bad(format!("{c} stored bytes, {need} needed")));
            }
        }
    }
    Ok(())
}

/// Bytes an uncompressed tile or strip holds.
pub(crate) fn uncompressed_len(page: &Page, tile: usize) -> usize {
    page.stored_rows(tile) as usize * page.tile_w as usize * page.pixel_bytes()
}

/// The range reads that put each uncompressed tile in its slot of a tile-major buffer: only
/// the rows of the tile the window needs (a tile's rows lie one after another in the file), at
/// their place in the slot. A tile pipeline's halo of one row then costs one row of each tile
/// above and below, not whole tiles; whole tiles still coalesce into one read.
pub(crate) fn slot_ranges(page: &Page, jobs: &[Job]) -> Vec<ReadRange> {
    let tb = page.tile_bytes();
    let row = page.tile_w as usize * page.pixel_bytes();
    jobs.iter()
        .map(|j| {
            // `check_tiles` made sure the stored bytes hold `stored_rows`; a job's rows lie
            // inside them (the plan crops jobs to the image)
            let stored = page.stored_rows(j.tile);
            let first = j.src_y.min(stored);
            let rows = j.h.min(stored - first);
            ReadRange {
                file_offset: page.offsets[j.tile].saturating_add(first * row as u64),
                len: rows as usize * row,
                dst_offset: j.slot * tb + first as usize * row,
            }
        })
        .collect()
}

/// The range reads that put an uncompressed window straight into `out` (`out_w` pixels
/// wide): for every output row, the row segment of each tile it crosses, in output order (so
/// the destinations rise and are checked in one pass). No tile-major scratch is filled and
/// copied again, and only the window's columns are read, not whole tile rows. `None` when a
/// job needs rows its tile does not store (a short last strip: the general path leaves them 0).
pub(crate) fn window_ranges(page: &Page, jobs: &[Job], out_w: u64) -> Option<Vec<ReadRange>> {
    let px = page.pixel_bytes() as u64;
    let tile_row = page.tile_w * px;
    let out_row = out_w * px;
    let rows: u64 = jobs.iter().map(|j| j.h).sum();
    let mut ranges = Vec::with_capacity(usize::try_from(rows).ok()?);
    // jobs come in tile-row order; the jobs of one tile row share their rows of the window
    for band in jobs.chunk_by(|a, b| a.dst_y == b.dst_y) {
        if band.iter().any(|j| j.src_y + j.h > page.stored_rows(j.tile)) {
            return None;
        }
        for row in 0..band[0].h {
            for j in band {
                ranges.push(ReadRange {
                    // a hostile offset saturates and the read reports it past the end of the file
                    file_offset: page.offsets[j.tile].saturating_add((j.src_y + row) * tile_row + j.src_x * px),
                    len: (j.w * px) as usize,
                    dst_offset: ((j.dst_y + row) * out_row + j.dst_x * px) as usize,
                });
            }
        }
    }
    Some(ranges)
}

/// Reads the compressed bytes of every needed tile (one batched call) and decodes them in
/// parallel into a tile-major buffer of `jobs.len()` full tiles.
pub(crate) fn read_decode(fh: &FileHandle, page: &Page, jobs: &[Job]) -> Result<Vec<u8>> {
    let tb = page.tile_bytes();
    if page.compression == Compression::None {
        let mut slots = alloc(jobs.len() * tb, 0)?;
        fh.read_ranges(&slot_ranges(page, jobs), &mut slots)?;
        return Ok(slots);
    }
    // the caller bands the jobs (gpu.rs: ~64 MiB); here every slot is decode scratch in flight
    let budget = scratch_budget();
    if let Some(j) = jobs.first() {
        check_tile_fits(fh, page, j.tile, budget)?;
    }
    let total = jobs.len().saturating_mul(tb);
    if total as u64 > budget {
        return Err(too_much(
            format!("decoding {} tiles of page {}", jobs.len(), page.index),
            total as u64,
            budget,
        ));
    }
    let (raw, ranges) = read_raw(fh, page, jobs)?;
    let mut slots = tiledio_io::try_alloc_zeroed(total, "decoded tiles")?;
    slots
        .par_chunks_mut(tb.max(1))
        .zip(jobs.par_iter().zip(ranges.par_iter()))
        .try_for_each(|(slot, (j, r))| decode_tile(fh, page, j.tile, &raw[r.dst_offset..r.dst_offset + r.len], slot))?;
    Ok(slots)
}

/// Copies each job's rectangle from the tile-major `slots` (job `i` in slot `i`) into `out` (a
/// `w`-pixel-wide row-major window): the CPU chunk scatter of [`tiledio_kernels::ChunkLayout`],
/// the reference of the GPU placement. The window's origin follows from any job (its tile's
/// position plus its source offset, minus its destination offset).
pub(crate) fn place(page: &Page, jobs: &[Job], slots: &[u8], out: &mut [u8], out_w: u64) -> Result<()> {
    let out_row = out_w as usize * page.pixel_bytes();
    let Some(j) = jobs.first().filter(|_| out_row > 0) else {
        return Ok(());
    };
    let tx = (j.tile as u64 % page.across) * page.tile_w;
    let ty = (j.tile as u64 / page.across) * page.tile_h;
    let x = (tx + j.src_x) as i64 - j.dst_x as i64;
    let y = (ty + j.src_y) as i64 - j.dst_y as i64;
    let h = (out.len() / out_row) as u64;
    debug_assert!(jobs.iter().enumerate().all(|(i, j)| j.slot == i));
    let units: Vec<u64> = jobs.iter().map(|j| j.tile as u64).collect();
    crate::gpu::tile_layout(page, x, y, out_w, h, false)?
        .scatter_host(slots, out, &units)
        .map_err(crate::gpu::kernel_err)
}

/// Bytes of a `w × h` window of `page`; refused when it could not be allocated.
pub(crate) fn window_bytes(page: &Page, w: u64, h: u64) -> Result<usize> {
    w.checked_mul(h)
        .and_then(|v| v.checked_mul(page.pixel_bytes() as u64))
        .filter(|&v| v <= isize::MAX as u64 / 2)
        .map(|v| v as usize)
        .ok_or_else(|| TiffError::InvalidArgument(format!("region of {w}x{h} pixels is too large")))
}

/// Whether the window lies inside the image, so its tiles cover every pixel and only a window
/// reaching past the image needs the background filled first.
pub(crate) fn window_inside(page: &Page, x: i64, y: i64, w: u64, h: u64) -> bool {
    x >= 0
        && y >= 0
        && (x as u64).checked_add(w).is_some_and(|e| e <= page.width)
        && (y as u64).checked_add(h).is_some_and(|e| e <= page.height)
}

/// The output size of a window and the tiles it needs, checked against the file.
pub(crate) fn window_jobs(fh: &FileHandle, page: &Page, x: i64, y: i64, w: u64, h: u64) -> Result<(usize, Vec<Job>)> {
    let len = window_bytes(page, w, h)?;
    let jobs = plan(page, x, y, w, h);
    check_tiles(fh, page, &jobs)?;
    Ok((len, jobs))
}

/// Reads a window of a page into a new host buffer (row-major, `w × h × spp` samples).
pub(crate) fn read_window(
    fh: &FileHandle,
    page: &Page,
    x: i64,
    y: i64,
    w: u64,
    h: u64,
    background: u8,
) -> Result<Vec<u8>> {
    // zeroed pages fault in lazily where the window is written (see `alloc`)
    let mut out = alloc(window_bytes(page, w, h)?, 0)?;
    read_window_into(fh, page, x, y, w, h, background, &mut out)?;
    Ok(out)
}

/// Bytes of output up to which an uncompressed window is read on the calling thread, its row
/// segments straight into the output (one I/O task's worth, the default `task_size`, which is
/// also the most a mapped read copies): a hand-off to the compute threads and their wake-up,
/// and a tile-major copy of whole tile rows, took longer than copying such a window out of the
/// page cache (a 1024² RGB window: 2.9 ms through the compute threads on 16 cores, run 28).
const SMALL_WINDOW: usize = 4 << 20;

/// Whether a window of `len` output bytes is read on the calling thread (see [`SMALL_WINDOW`]).
fn small_window(page: &Page, len: usize) -> bool {
    page.compression == Compression::None && len <= SMALL_WINDOW
}

/// Reads a window of a page into a caller's buffer of exactly its size (row-major,
/// `w × h × spp` samples). Every byte is written: the tiles cover the part inside the image,
/// and a window reaching outside is filled with `background` first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_window_into(
    fh: &FileHandle,
    page: &Page,
    x: i64,
    y: i64,
    w: u64,
    h: u64,
    background: u8,
    out: &mut [u8],
) -> Result<()> {
    let (len, jobs) = window_jobs(fh, page, x, y, w, h)?;
    if out.len() != len {
        return Err(TiffError::InvalidArgument(format!(
            "a buffer of {} bytes for a {w}x{h} region of {len} bytes",
            out.len()
        )));
    }
    let inside = window_inside(page, x, y, w, h);
    let small = small_window(page, len);
    on_compute_threads_if(!small, fh, || {
        if !inside {
            if small {
                out.fill(background);
            } else {
                out.par_chunks_mut(1 << 20).for_each(|c| c.fill(background));
            }
        }
        fill_window(fh, page, &jobs, out, w)
    })
}

/// Reads and places the tiles of `jobs` into the window `out` (`out_w` pixels wide).
fn fill_window(fh: &FileHandle, page: &Page, jobs: &[Job], out: &mut [u8], out_w: u64) -> Result<()> {
    if page.compression == Compression::None {
        let direct = if small_window(page, out.len()) {
            window_ranges(page, jobs, out_w)
        } else {
            None
        };
        match direct {
            // a small window: each row segment straight from the file into `out`
            Some(ranges) => {
                fh.read_ranges(&ranges, &mut *out)?;
            }
            None => {
                let slots = read_decode(fh, page, jobs)?;
                place(page, jobs, &slots, out, out_w)?;
            }
        }
        if page.big_endian && page.dtype.size() > 1 {
            swap_bytes(out, page.dtype.size());
        }
    } else {
        decode_place(fh, page, jobs, out, out_w)?;
    }
    Ok(())
}

/// Runs `f` (decoding, placement) on the compute threads of the handle's settings
/// ([`tiledio_io::Context::compute`]), not on rayon's global pool.
pub(crate) fn on_compute_threads<R: Send>(fh: &FileHandle, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    tiledio_io::Context::for_settings(fh.settings())?.compute(f)
}

/// [`on_compute_threads`] when `parallel`, else `f` on the calling thread (for small work that
/// uses no parallel iterator).
fn on_compute_threads_if<R: Send>(parallel: bool, fh: &FileHandle, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    if parallel { on_compute_threads(fh, f) } else { f() }
}

/// The decode scratch allowed in flight at once: a quarter of the memory budget
/// (`TILEDIO_MAX_MEMORY`, default half of physical memory), at least 1 MiB.
pub(crate) fn scratch_budget() -> u64 {
    (tiledio_io::memory_budget() / 4).max(1 << 20)
}

fn too_much(what: String, bytes: u64, budget: u64) -> TiffError {
    TiffError::Io(tiledio_io::IoError::OutOfMemory { what, bytes, budget })
}

/// A tile whose decoded size alone exceeds the scratch budget (a hostile file can declare
/// 65536x65536 tiles of a few stored bytes) is refused before anything is allocated.
fn check_tile_fits(fh: &FileHandle, page: &Page, tile: usize, budget: u64) -> Result<()> {
    let tb = page.tile_bytes() as u64;
    if tb > budget {
        return Err(too_much(
            format!(
                "{}: page {}, tile {}: decoding a {}x{} tile",
                fh.path().display(),
                page.index,
                tile,
                page.tile_w,
                page.tile_h
            ),
            tb,
            budget,
        ));
    }
    Ok(())
}

/// Compressed tiles, host target: one batched read of the raw bytes, then decoding workers,
/// each with its own scratch slot of one decoded tile, take tiles in turn and copy the
/// cropped rectangle straight into `out` (no tile-major buffer of the whole window). The
/// workers are as many as the threads, or fewer, so that their slots fit `scratch_budget`.
fn decode_place(fh: &FileHandle, page: &Page, jobs: &[Job], out: &mut [u8], out_w: u64) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let Some(first) = jobs.first() else {
        return Ok(());
    };
    let tb = page.tile_bytes();
    let budget = scratch_budget();
    check_tile_fits(fh, page, first.tile, budget)?;
    let workers = rayon::current_num_threads()
        .min((budget / tb.max(1) as u64).max(1) as usize)
        .min(jobs.len())
        .max(1);
    let (raw, ranges) = read_raw(fh, page, jobs)?;
    let px = page.pixel_bytes();
    let tile_row = page.tile_w as usize * px;
    let out_row = out_w as usize * px;
    let out = tiledio_io::DisjointBytes::new(out);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    (0..workers).into_par_iter().try_for_each(|_| -> Result<()> {
        let mut slot = tiledio_io::try_alloc_zeroed(tb, "a decoded tile")?;
        loop {
            let n = next.fetch_add(1, Relaxed);
            let (Some(j), Some(r)) = (jobs.get(n), ranges.get(n)) else {
                return Ok(());
            };
            if failed.load(Relaxed) {
                return Ok(());
            }
            let placed = (|| -> Result<()> {
                decode_tile(fh, page, j.tile, &raw[r.dst_offset..r.dst_offset + r.len], &mut slot)?;
                let n = j.w as usize * px;
                for row in 0..j.h as usize {
                    let s = (j.src_y as usize + row) * tile_row + j.src_x as usize * px;
                    let d = (j.dst_y as usize + row) * out_row + j.dst_x as usize * px;
                    let src = slot.get(s..s + n).ok_or_else(|| {
                        TiffError::Internal(format!("tile {} placement outside its decoded tile", j.tile))
                    })?;
                    // SAFETY: plan() gives each job a rectangle of `out` no other job touches,
                    // so no two threads write the same bytes (the view checks the bounds).
                    unsafe { out.slice_mut(d, n) }
                        .map_err(|e| TiffError::Internal(format!("tile {}: {e}", j.tile)))?
                        .copy_from_slice(src);
                }
                Ok(())
            })();
            if placed.is_err() {
                failed.store(true, Relaxed);
                return placed;
            }
        }
    })
}

/// One batched read of the stored bytes of every job's tile, packed; with the ranges used.
fn read_raw(fh: &FileHandle, page: &Page, jobs: &[Job]) -> Result<(Vec<u8>, Vec<ReadRange>)> {
    let mut ranges = Vec::with_capacity(jobs.len());
    let mut total = 0usize;
    for j in jobs {
        let len = page.counts[j.tile] as usize;
        ranges.push(ReadRange {
            file_offset: page.offsets[j.tile],
            len,
            dst_offset: total,
        });
        total += len;
    }
    let mut raw = alloc(total, 0)?;
    fh.read_ranges(&ranges, &mut raw)?;
    Ok((raw, ranges))
}
