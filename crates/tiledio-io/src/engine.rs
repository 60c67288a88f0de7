//! The worker pool that runs planned pieces: parallel `pread`/`pwrite` into host memory, and
//! for GPU memory either cuFile, the pinned-staging pipeline, or copies from a registered
//! `mmap`.
//!
//! Workers are scoped threads pulling pieces from a shared counter. GPU workers each hold one
//! [`StagingSet`] (a stream plus a few pinned slots) taken from a process-wide pool, so pinned
//! memory is allocated once, not per call (kvikio#629), and each worker reads its next piece
//! while the copy of the last one is still running (the double buffering kvikio#520 lacks).

use crate::context::Context;
use crate::disjoint::DisjointBytes;
use crate::error::{IoError, Result};
use crate::gpu::{Event, PinnedBuffer, Stream, cuda_err};
use crate::plan::{Piece, Segment};
use crate::posix::{self, AlignedBuf, DIRECT_ALIGN};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Which of the context's I/O pools runs the workers: reads and writes have their own, so a
/// pipeline that reads the next tile while it writes the last one runs both at full width
/// (in one pool, each call's workers run until its items are done and the other call waits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    /// Reads (`read_ranges`, `read_files`).
    Reads,
    /// Writes (`write_ranges`, `write_files`).
    Writes,
}

/// Runs `work` on every index in `0..n` over up to `settings.threads` workers on the context's
/// persistent I/O threads. Each worker builds its own state with `init` and hands it to `done`
/// at the end (also after an error, so GPU work in flight is waited for). The first error stops
/// the others early and is returned.
pub(crate) fn run<S>(
    ctx: &Context,
    pool: Pool,
    n: usize,
    init: impl Fn() -> Result<S> + Sync,
    work: impl Fn(&mut S, usize) -> Result<()> + Sync,
    done: impl Fn(S) -> Result<()> + Sync,
) -> Result<()> {
    // clamped to 1..=n in run_on, after the n == 0 case
    run_on(ctx, pool, ctx.settings().threads, n, init, work, done)
}

/// [`run`] over at most `threads` workers; with one, on the calling thread (no hand-off to the
/// pool: for a small read the hand-off and the wake-up of pool threads cost more than the read).
pub(crate) fn run_on<S>(
    ctx: &Context,
    pool: Pool,
    threads: usize,
    n: usize,
    init: impl Fn() -> Result<S> + Sync,
    work: impl Fn(&mut S, usize) -> Result<()> + Sync,
    done: impl Fn(S) -> Result<()> + Sync,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_err: Mutex<Option<IoError>> = Mutex::new(None);
    let fail = |e: IoError| {
        failed.store(true, Ordering::Relaxed);
        first_err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
    };
    let worker = || {
        let mut state = match init() {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            if let Err(e) = work(&mut state, i) {
                fail(e);
                break;
            }
        }
        if let Err(e) = done(state) {
            fail(e);
        }
    };
    let threads = threads.clamp(1, n);
    if threads == 1 {
        worker();
    } else {
        let worker = &worker;
        ctx.io_scope(pool, |s| {
            for _ in 0..threads {
                s.spawn(move |_| worker());
            }
        });
    }
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Where a piece's file comes from: an open handle, or a path each worker opens itself.
pub(crate) struct FileRef<'a> {
    pub(crate) path: &'a Path,
    pub(crate) file: Option<&'a File>,
    pub(crate) direct: Option<&'a File>,
}

/// A worker's open descriptors for a path-only [`FileRef`] (many-files calls).
pub(crate) enum Opened<'a> {
    Borrowed(&'a File, Option<&'a File>),
    Owned(File, Option<File>),
}

impl Opened<'_> {
    pub(crate) fn buffered(&self) -> &File {
        match self {
            Opened::Borrowed(f, _) => f,
            Opened::Owned(f, _) => f,
        }
    }
    pub(crate) fn direct(&self) -> Option<&File> {
        match self {
            Opened::Borrowed(_, d) => *d,
            Opened::Owned(_, d) => d.as_ref(),
        }
    }
}

impl<'a> FileRef<'a> {
    pub(crate) fn open(&self, direct_io: bool) -> Result<Opened<'a>> {
        if let Some(f) = self.file {
            return Ok(Opened::Borrowed(f, self.direct));
        }
        let f = posix::open_regular(self.path)?;
        // O_DIRECT refused (tmpfs, some FUSE file systems): read through the page cache.
        let d = if direct_io {
            posix::open_direct(self.path).ok()
        } else {
            None
        };
        Ok(Opened::Owned(f, d))
    }
}

/// Reads `len` bytes at `offset` into `out` (exactly `len` long): through the O_DIRECT
/// descriptor into `scratch` when there is one, else straight into `out`.
pub(crate) fn read_exact(
    f: &Opened<'_>,
    path: &Path,
    offset: u64,
    out: &mut [u8],
    scratch: &mut DirectScratch,
) -> Result<()> {
    let len = out.len();
    let rd = |e| IoError::Read {
        path: path.into(),
        offset,
        len: len as u64,
        source: e,
    };
    let got = match f.direct() {
        Some(d) => {
            let scratch = scratch.get();
            let (delta, got) = posix::pread_direct(d, scratch, offset, len).map_err(rd)?;
            out[..got].copy_from_slice(&scratch[delta..delta + got]);
            got
        }
        None => posix::pread_full(f.buffered(), out, offset).map_err(rd)?,
    };
    if got < len {
        return Err(IoError::ShortRead {
            path: path.into(),
            offset,
            len: len as u64,
            got: got as u64,
        });
    }
    Ok(())
}

/// The aligned buffer of O_DIRECT reads (a task plus alignment slack), allocated on the first
/// direct read: a read through the page cache never needs it, and allocating a task's worth
/// of memory per worker per call was most of the cost of a small read.
pub(crate) struct DirectScratch {
    len: usize,
    buf: Option<AlignedBuf>,
}

impl DirectScratch {
    /// A buffer of `task_size` bytes plus alignment slack, allocated when first used.
    pub(crate) fn new(task_size: usize) -> DirectScratch {
        DirectScratch {
            len: task_size + 2 * DIRECT_ALIGN,
            buf: None,
        }
    }

    fn get(&mut self) -> &mut AlignedBuf {
        let len = self.len;
        self.buf.get_or_insert_with(|| AlignedBuf::new(len))
    }
}

/// A host worker's scratch: one buffer for direct-I/O alignment slack, one for the bytes of
/// pieces that do not map onto one stretch of the destination (both allocated when needed).
pub(crate) struct HostScratch {
    direct: DirectScratch,
    piece: Vec<u8>,
}

impl HostScratch {
    pub(crate) fn new(task_size: usize) -> HostScratch {
        HostScratch {
            direct: DirectScratch::new(task_size),
            piece: Vec::new(),
        }
    }
}

/// Copies a piece's segments out of `src` (the piece's bytes) into the destination.
///
/// # Safety
/// Segments' destination ranges must not be touched by other workers.
pub(crate) unsafe fn scatter(segs: &[Segment], src: &[u8], dst: &DisjointBytes<'_>) -> Result<()> {
    for s in segs {
        // SAFETY: per the function's contract (the bounds are checked by the view).
        unsafe { dst.slice_mut(s.buf_offset, s.len)? }.copy_from_slice(&src[s.piece_offset..s.piece_offset + s.len]);
    }
    Ok(())
}

/// Reads one piece into host memory: straight into the destination when the piece maps onto
/// one stretch of it, else into scratch and scattered.
pub(crate) fn host_read_piece(
    f: &Opened<'_>,
    path: &Path,
    p: &Piece,
    dst: &DisjointBytes<'_>,
    scratch: &mut HostScratch,
) -> Result<()> {
    if let Some(off) = p.dense_offset() {
        // SAFETY: the piece's single destination range is checked and disjoint from others'.
        let out = unsafe { dst.slice_mut(off, p.len)? };
        return read_exact(f, path, p.file_offset, out, &mut scratch.direct);
    }
    scratch.piece.resize(p.len, 0);
    read_exact(f, path, p.file_offset, &mut scratch.piece[..p.len], &mut scratch.direct)?;
    // SAFETY: segment destinations are checked and disjoint from other pieces'.
    unsafe { scatter(&p.segs, &scratch.piece[..p.len], dst) }
}

/// One GPU worker's resources: a stream and pinned slots, each with an event marking when the
/// copy out of (or into) it has finished.
pub(crate) struct StagingSet {
    pub(crate) stream: Stream,
    slots: Vec<(PinnedBuffer, Event, bool)>,
    next: usize,
    slot_len: usize,
    /// The context whose pool it goes back to.
    home: Option<Arc<Context>>,
}

impl StagingSet {
    fn new(slot_len: usize, slots: usize) -> Result<StagingSet> {
        let stream = Stream::new()?;
        let slots = (0..slots)
            .map(|_| Ok((PinnedBuffer::new(slot_len)?, Event::new()?, false)))
            .collect::<Result<Vec<_>>>()?;
        Ok(StagingSet {
            stream,
            slots,
            next: 0,
            slot_len,
            home: None,
        })
    }

    /// Takes a set with slots of at least `task_size` bytes (plus direct-I/O slack) from the
    /// pool, or makes one.
    pub(crate) fn take(ctx: &Arc<Context>, task_size: usize, slots: usize) -> Result<StagingSet> {
        crate::gpu::gpu()?;
        let slot_len = task_size + 2 * DIRECT_ALIGN;
        let mut set = match ctx.take_staging(slot_len, slots) {
            Some(set) => set,
            None => StagingSet::new(slot_len, slots)?,
        };
        set.home = Some(ctx.clone());
        Ok(set)
    }

    /// Whether the set has at least `slots` slots of `slot_len` bytes.
    pub(crate) fn fits(&self, slot_len: usize, slots: usize) -> bool {
        self.slot_len >= slot_len && self.slots.len() >= slots
    }

    /// Back to the pool of the context it came from.
    fn keep(mut self) {
        if let Some(ctx) = self.home.take() {
            ctx.keep_staging(self);
        }
    }

    /// Returns the set to the pool without waiting for its queued copies: `caller` waits for
    /// them instead (stream order, no host wait). Each slot's event still guards its reuse.
    pub(crate) fn give_back_ordered(self, caller: &Stream) -> Result<()> {
        let done = Event::new()?;
        done.record(&self.stream)?;
        caller.wait(&done)?;
        self.keep();
        Ok(())
    }

    /// Waits for the set's queued copies and returns it to the pool.
    pub(crate) fn give_back(mut self) -> Result<()> {
        let r = self.stream.synchronize();
        for s in &mut self.slots {
            s.2 = false;
        }
        if r.is_ok() {
            self.keep();
        }
        r
    }

    /// The next slot, once the copy that last used it has finished.
    pub(crate) fn next_slot(&mut self) -> Result<(&mut PinnedBuffer, &Event, &Stream)> {
        let i = self.next;
        self.next = (self.next + 1) % self.slots.len();
        let (buf, ev, pending) = &mut self.slots[i];
        if *pending {
            ev.synchronize()?;
        }
        *pending = true;
        Ok((buf, ev, &self.stream))
    }
}

/// Allocates the pinned staging sets a call with `settings` will use, so the first GPU read
/// does not pay for them.
///
/// # Errors
/// [`IoError::NoGpu`] without a GPU; [`IoError::Cuda`] if pinned memory cannot be allocated.
pub fn prewarm(settings: &crate::Settings) -> Result<()> {
    let sets = (0..settings.threads)
        .map(|_| {
            StagingSet::take(
                &Context::for_settings(settings)?,
                settings.task_size,
                settings.staging_slots,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    for s in sets {
        s.give_back()?;
    }
    Ok(())
}

/// Queues a host→device copy on `stream`.
///
/// # Safety
/// `src` must stay valid and unchanged until the copy completes; the device range must be valid.
pub(crate) unsafe fn htod_async(dst: u64, src: *const u8, len: usize, stream: &Stream) -> Result<()> {
    // SAFETY: per the function's contract.
    unsafe { cudarc::driver::sys::cuMemcpyHtoDAsync_v2(dst, src as *const std::ffi::c_void, len, stream.handle) }
        .result()
        .map_err(|e| cuda_err("cuMemcpyHtoDAsync", e))
}

/// Queues a device→host copy on `stream`.
///
/// # Safety
/// `dst` must stay valid until the copy completes; the device range must be valid.
pub(crate) unsafe fn dtoh_async(dst: *mut u8, src: u64, len: usize, stream: &Stream) -> Result<()> {
    // SAFETY: per the function's contract.
    unsafe { cudarc::driver::sys::cuMemcpyDtoHAsync_v2(dst as *mut std::ffi::c_void, src, len, stream.handle) }
        .result()
        .map_err(|e| cuda_err("cuMemcpyDtoHAsync", e))
}

/// Reads one piece through a pinned slot and queues its copies to device memory at `dst`.
pub(crate) fn staged_read_piece(f: &Opened<'_>, path: &Path, p: &Piece, dst: u64, set: &mut StagingSet) -> Result<()> {
    let (slot, ev, stream) = set.next_slot()?;
    let rd = |e| IoError::Read {
        path: path.into(),
        offset: p.file_offset,
        len: p.len as u64,
        source: e,
    };
    let (delta, got) = match f.direct() {
        // Pinned slots are page-aligned and hold a piece plus alignment slack.
        Some(d) => posix::pread_direct(d, slot, p.file_offset, p.len).map_err(rd)?,
        None => (
            0,
            posix::pread_full(f.buffered(), &mut slot[..p.len], p.file_offset).map_err(rd)?,
        ),
    };
    if got < p.len {
        return Err(IoError::ShortRead {
            path: path.into(),
            offset: p.file_offset,
            len: p.len as u64,
            got: got as u64,
        });
    }
    for s in &p.segs {
        // SAFETY: the slot is not reused until `ev` fires; the device range was checked.
        unsafe {
            htod_async(
                dst + s.buf_offset as u64,
                slot.as_ptr().add(delta + s.piece_offset),
                s.len,
                stream,
            )?
        };
    }
    ev.record(stream)
}

/// Copies one piece's bytes from device memory at `src` into a pinned slot and writes them.
pub(crate) fn staged_write_piece(file: &File, path: &Path, p: &Piece, src: u64, set: &mut StagingSet) -> Result<()> {
    let (slot, ev, stream) = set.next_slot()?;
    for s in &p.segs {
        // SAFETY: the slot is ours until the event below has fired; the device range was checked.
        unsafe {
            dtoh_async(
                slot.as_mut_ptr().add(s.piece_offset),
                src + s.buf_offset as u64,
                s.len,
                stream,
            )?
        };
    }
    ev.record(stream)?;
    ev.synchronize()?;
    posix::pwrite_all(file, &slot[..p.len], p.file_offset).map_err(|e| IoError::Write {
        path: path.into(),
        offset: p.file_offset,
        len: p.len as u64,
        source: e,
    })
}

/// Writes one piece from host memory.
pub(crate) fn host_write_piece(file: &File, path: &Path, p: &Piece, src: &[u8]) -> Result<()> {
    let werr = |e| IoError::Write {
        path: path.into(),
        offset: p.file_offset,
        len: p.len as u64,
        source: e,
    };
    match p.dense_offset() {
        Some(off) => posix::pwrite_all(file, &src[off..off + p.len], p.file_offset).map_err(werr),
        None => {
            let mut tmp = vec![0u8; p.len];
            for s in &p.segs {
                tmp[s.piece_offset..s.piece_offset + s.len].copy_from_slice(&src[s.buf_offset..s.buf_offset + s.len]);
            }
            posix::pwrite_all(file, &tmp, p.file_offset).map_err(werr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads and writes run on their own pools, so one does not wait for the other's workers.
    #[test]
    fn reads_and_writes_run_on_their_own_pools() {
        let ctx = Context::for_settings(&crate::Settings {
            threads: 3,
            ..Default::default()
        })
        .unwrap();
        for (pool, prefix) in [(Pool::Reads, "tiledio-io-"), (Pool::Writes, "tiledio-write-")] {
            let names = Mutex::new(Vec::new());
            run(
                &ctx,
                pool,
                8,
                || Ok(()),
                |(), _| {
                    let name = std::thread::current().name().unwrap_or("").to_string();
                    names.lock().unwrap().push(name);
                    Ok(())
                },
                |()| Ok(()),
            )
            .unwrap();
            let names = names.into_inner().unwrap();
            assert_eq!(names.len(), 8);
            assert!(names.iter().all(|n| n.starts_with(prefix)), "{pool:?}: {names:?}");
        }
        // a read's workers and a write's workers at once: each waits for the other to start,
        // which deadlocks if they share one pool of 3 threads busy with the first call's items
        let (started_r, started_w) = (AtomicBool::new(false), AtomicBool::new(false));
        let wait_for = |flag: &AtomicBool| {
            let t = std::time::Instant::now();
            while !flag.load(Ordering::SeqCst) {
                if t.elapsed() > std::time::Duration::from_secs(20) {
                    return Err(IoError::InvalidArgument("the other pool never started".into()));
                }
                std::thread::yield_now();
            }
            Ok(())
        };
        // three items on `pool`, each saying it started and waiting for the other pool's
        let side = |pool: Pool, mine: &AtomicBool, other: &AtomicBool| {
            run(
                &ctx,
                pool,
                3,
                || Ok(()),
                |(), _| {
                    mine.store(true, Ordering::SeqCst);
                    wait_for(other)
                },
                |()| Ok(()),
            )
        };
        std::thread::scope(|s| {
            let r = s.spawn(|| side(Pool::Reads, &started_r, &started_w));
            let w = side(Pool::Writes, &started_w, &started_r);
            w.unwrap();
            r.join().unwrap().unwrap();
        });
    }
}
