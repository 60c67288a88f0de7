//! [`FileHandle`] for reads, [`FileWriter`] for writes, and many-file calls.

use crate::backend::{self, Backend, BackendReport, DeviceIo};
use crate::context::Context;
use crate::disjoint::DisjointBytes;
use crate::engine::{self, FileRef, HostScratch, Pool, StagingSet};
use crate::error::{IoError, Result};
use crate::gpu::DeviceBuffer;
use crate::output;
use crate::plan::{self, Item, ReadRange, WriteRange};
use crate::posix;
use crate::settings::{BackendChoice, Settings};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where read bytes go: host memory or GPU memory.
#[derive(Debug)]
pub enum Target<'a> {
    /// Host memory.
    Host(&'a mut [u8]),
    /// GPU memory.
    Device(&'a mut DeviceBuffer),
}

impl<'a> From<&'a mut [u8]> for Target<'a> {
    fn from(b: &'a mut [u8]) -> Self {
        Target::Host(b)
    }
}
impl<'a> From<&'a mut Vec<u8>> for Target<'a> {
    fn from(b: &'a mut Vec<u8>) -> Self {
        Target::Host(b.as_mut_slice())
    }
}
impl<'a> From<&'a mut DeviceBuffer> for Target<'a> {
    fn from(b: &'a mut DeviceBuffer) -> Self {
        Target::Device(b)
    }
}
impl<'a> From<&'a mut crate::gpu::PinnedBuffer> for Target<'a> {
    fn from(b: &'a mut crate::gpu::PinnedBuffer) -> Self {
        Target::Host(b)
    }
}

impl Target<'_> {
    fn len(&self) -> usize {
        match self {
            Target::Host(b) => b.len(),
            Target::Device(d) => d.len(),
        }
    }
}

/// Where written bytes come from: host memory or GPU memory.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Host memory.
    Host(&'a [u8]),
    /// GPU memory.
    Device(&'a DeviceBuffer),
}

impl<'a> From<&'a [u8]> for Source<'a> {
    fn from(b: &'a [u8]) -> Self {
        Source::Host(b)
    }
}
impl<'a> From<&'a Vec<u8>> for Source<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        Source::Host(b.as_slice())
    }
}
impl<'a> From<&'a DeviceBuffer> for Source<'a> {
    fn from(b: &'a DeviceBuffer) -> Self {
        Source::Device(b)
    }
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Host(b) => b.len(),
            Source::Device(d) => d.len(),
        }
    }
}

/// What a read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    /// The backend that moved the bytes.
    pub backend: Backend,
    /// Bytes read from storage (including small gaps read to coalesce ranges).
    pub bytes_read: u64,
    /// Reads issued after coalescing and splitting.
    pub pieces: usize,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// The backend that moved the bytes.
    pub backend: Backend,
    /// Bytes written.
    pub bytes_written: u64,
    /// Files written.
    pub files: usize,
}

/// A file open for reading into host or GPU memory.
///
/// One handle, one call for any destination: [`FileHandle::read_ranges`] reads many ranges at
/// once, coalescing nearby ones and keeping `threads` reads in flight; for GPU memory it uses
/// the backend chosen for this file ([`FileHandle::backend_report`] says which and why).
///
/// ```
/// use tiledio_io::{FileHandle, ReadRange};
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("f.bin");
/// std::fs::write(&path, (0..=255u8).collect::<Vec<_>>())?;
/// let fh = FileHandle::open(&path)?;
/// let mut buf = vec![0u8; 8];
/// fh.read_ranges(&[ReadRange { file_offset: 10, len: 4, dst_offset: 0 },
///                  ReadRange { file_offset: 200, len: 4, dst_offset: 4 }], &mut buf)?;
/// assert_eq!(buf, [10, 11, 12, 13, 200, 201, 202, 203]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileHandle {
    path: PathBuf,
    file: File,
    direct: Option<File>,
    len: u64,
    settings: Settings,
    device: OnceLock<std::result::Result<(DeviceIo, BackendReport), String>>,
    /// The file mapped for small host reads ([`Settings::mapped_reads`]), made on first use.
    map: OnceLock<Option<crate::mapped::FileMap>>,
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHandle")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish()
    }
}

impl FileHandle {
    /// Opens `path` with [`Settings::from_env`].
    ///
    /// # Errors
    /// [`IoError::Open`], [`IoError::PermissionDenied`], or [`IoError::Setting`] for a bad
    /// `TILEDIO_*` variable.
    pub fn open(path: impl AsRef<Path>) -> Result<FileHandle> {
        Self::open_with(path, &Settings::from_env()?)
    }

    /// Opens `path` with the given settings.
    ///
    /// # Errors
    /// [`IoError::Open`], [`IoError::PermissionDenied`], [`IoError::Setting`].
    pub fn open_with(path: impl AsRef<Path>, settings: &Settings) -> Result<FileHandle> {
        let path = checked_path(path, settings)?;
        let file = backend::open_read(&path)?;
        let len = file.metadata().map_err(|e| IoError::open(&path, e))?.len();
        // O_DIRECT refused (tmpfs, some FUSE): read through the page cache instead.
        let direct = if settings.direct_io {
            posix::open_direct(&path).ok()
        } else {
            None
        };
        Ok(FileHandle {
            path,
            file,
            direct,
            len,
            settings: settings.clone(),
            device: OnceLock::new(),
            map: OnceLock::new(),
        })
    }

    /// The file's length in bytes when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings this handle uses.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether reads bypass the page cache (O_DIRECT was asked for and the file system took it).
    pub fn direct_io(&self) -> bool {
        self.direct.is_some()
    }

    fn device_io(&self) -> Result<&(DeviceIo, BackendReport)> {
        self.device
            .get_or_init(|| {
                backend::choose(&self.path, &self.file, self.len, &self.settings).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|reason| IoError::NoGpu {
                // the chooser's own "no GPU: ..." is not said twice
                reason: reason.strip_prefix("no GPU: ").unwrap_or(reason).to_string(),
            })
    }

    /// Which backend GPU reads of this file use, and why the others are not used.
    ///
    /// # Errors
    /// [`IoError::NoGpu`] when there is no GPU.
    pub fn backend_report(&self) -> Result<BackendReport> {
        Ok(self.device_io()?.1.clone())
    }

    /// Reads many ranges of the file into `dst` in one call.
    ///
    /// Ranges may come in any order and overlap in the file; their destinations must not
    /// overlap. Zero-length ranges are allowed and do nothing.
    ///
    /// # Errors
    /// [`IoError::PastEof`] for a range past the end of the file, [`IoError::BufferTooSmall`],
    /// [`IoError::OverlappingDestinations`], [`IoError::ShortRead`] if the file shrank,
    /// [`IoError::Read`], and for GPU targets [`IoError::Cuda`] / [`IoError::CuFile`].
    pub fn read_ranges<'a>(&self, ranges: &[ReadRange], dst: impl Into<Target<'a>>) -> Result<ReadStats> {
        self.read_ranges_ordered(ranges, dst.into(), None)
    }

    /// [`FileHandle::read_ranges`] into GPU memory in the order of `stream` (KvikIO's
    /// `read_async`): the bytes are written after the work queued on `stream` before this call,
    /// and work queued on `stream` after it sees them. The call returns once every read is
    /// issued: the file is read on the host (the I/O threads), the copies into `dst` may still
    /// be in flight, and nothing waits for the device as a whole. Synchronise `stream` (or
    /// queue the consumer on it) before using the bytes on the host. Freeing `dst` waits for
    /// the copies, as `cuMemFree` does.
    ///
    /// With the cuFile backend (synchronous per call) the stream is first waited for on the
    /// host; with the mmap backend the call waits for its copies (the mapping may go with the
    /// handle).
    ///
    /// ```no_run
    /// use tiledio_io::{FileHandle, ReadRange, gpu::{DeviceBuffer, Stream}};
    /// let fh = FileHandle::open("slide.tif")?;
    /// let (s, mut d) = (Stream::new()?, DeviceBuffer::new(4096)?);
    /// fh.read_ranges_async(&[ReadRange { file_offset: 0, len: 4096, dst_offset: 0 }], &mut d, &s)?;
    /// s.synchronize()?;
    /// # Ok::<(), tiledio_io::IoError>(())
    /// ```
    ///
    /// # Errors
    /// As [`FileHandle::read_ranges`]; an error of a copy in flight surfaces on `stream`.
    pub fn read_ranges_async(
        &self,
        ranges: &[ReadRange],
        dst: &mut DeviceBuffer,
        stream: &crate::gpu::Stream,
    ) -> Result<ReadStats> {
        self.read_ranges_ordered(ranges, Target::Device(dst), Some(stream))
    }

    /// The mapping a host read of `ranges` copies from: for reads of at most one task's
    /// bytes (which the calling thread would read alone) when mapped reads are on and the page
    /// cache is not bypassed; `None` otherwise, or when the file could not be mapped.
    fn small_read_map(&self, ranges: &[ReadRange]) -> Option<&crate::mapped::FileMap> {
        if !self.settings.mapped_reads || self.direct.is_some() {
            return None;
        }
        let bytes = ranges.iter().map(|r| r.len).fold(0usize, usize::saturating_add);
        if bytes > self.settings.task_size {
            return None;
        }
        self.map
            .get_or_init(|| crate::mapped::FileMap::new(&self.file, self.len).ok())
            .as_ref()
    }

    fn read_ranges_ordered(
        &self,
        ranges: &[ReadRange],
        mut dst: Target<'_>,
        order: Option<&crate::gpu::Stream>,
    ) -> Result<ReadStats> {
        for r in ranges {
            if r.file_offset.checked_add(r.len as u64).is_none_or(|end| end > self.len) {
                return Err(IoError::PastEof {
                    path: self.path.clone(),
                    offset: r.file_offset,
                    len: r.len as u64,
                    file_len: self.len,
                });
            }
        }
        if let Target::Host(buf) = &mut dst
            && let Some(map) = self.small_read_map(ranges)
        {
            map.copy(&self.file, &self.path, ranges, buf)?;
            return Ok(ReadStats {
                backend: Backend::Host,
                bytes_read: ranges.iter().map(|r| r.len as u64).sum(),
                pieces: ranges.len(),
            });
        }
        let items: Vec<Item> = ranges
            .iter()
            .map(|r| item(0, r.file_offset, r.len, r.dst_offset))
            .collect();
        let files = [FileRef {
            path: &self.path,
            file: Some(&self.file),
            direct: self.direct.as_ref(),
        }];
        run_read(
            &files,
            &items,
            self.settings.coalesce_gap,
            &mut dst,
            &self.settings,
            order,
            || {
                let (io, report) = self.device_io()?;
                Ok((io, report.backend))
            },
        )
    }

    /// Reads `dst.len()` bytes starting at `offset`.
    ///
    /// # Errors
    /// As [`FileHandle::read_ranges`].
    pub fn read_at<'a>(&self, offset: u64, dst: impl Into<Target<'a>>) -> Result<ReadStats> {
        let dst = dst.into();
        let len = dst.len();
        self.read_ranges(
            &[ReadRange {
                file_offset: offset,
                len,
                dst_offset: 0,
            }],
            dst,
        )
    }
}

/// Checks `settings` and takes `path` as the file a handle or writer works on.
fn checked_path(path: impl AsRef<Path>, settings: &Settings) -> Result<PathBuf> {
    settings.validate()?;
    Ok(path.as_ref().to_path_buf())
}

/// `len` bytes at `file_offset` of file `file` of a call, and at `buf_offset` of its buffer.
fn item(file: usize, file_offset: u64, len: usize, buf_offset: usize) -> Item {
    Item {
        file,
        file_offset,
        len,
        buf_offset,
    }
}

/// Checks a transfer between one buffer of `buf_len` bytes and a file, then plans it: the
/// buffer must hold every item, and the items must not overlap where they are written (in the
/// buffer for a read, in the file for a write). Returns the pieces and their bytes in all; a
/// read may bridge gaps of up to `gap` bytes, a write never does.
fn check_and_plan(
    items: &[Item],
    buf_len: usize,
    gap: u64,
    task_size: usize,
    read: bool,
) -> Result<(Vec<plan::Piece>, u64)> {
    plan::check_buffer(items.iter().map(|i| (i.buf_offset, i.len)), buf_len)?;
    let written = |i: &Item| {
        if read {
            (0, i.buf_offset as u64, (i.buf_offset + i.len) as u64)
        } else {
            (0, i.file_offset, i.file_offset + i.len as u64)
        }
    };
    plan::check_disjoint(items.iter().filter(|i| i.len > 0).map(written).collect())?;
    let pieces = plan::plan(items, gap, task_size, read);
    let bytes = pieces.iter().map(|p| p.len as u64).sum();
    Ok((pieces, bytes))
}

/// Checks a read's destinations, plans it and runs it; `device` names the backend for GPU
/// targets (asked only when the target is GPU memory).
fn run_read<'f>(
    files: &[FileRef<'_>],
    items: &[Item],
    gap: u64,
    dst: &mut Target<'_>,
    settings: &Settings,
    order: Option<&crate::gpu::Stream>,
    device: impl FnOnce() -> Result<(&'f DeviceIo, Backend)>,
) -> Result<ReadStats> {
    let (pieces, bytes_read) = check_and_plan(items, dst.len(), gap, settings.task_size, true)?;
    let backend = match dst {
        Target::Host(buf) => {
            read_host(files, &pieces, buf, settings)?;
            Backend::Host
        }
        Target::Device(d) => {
            let (io, backend) = device()?;
            read_device(files, &pieces, d, io, settings, order)?;
            backend
        }
    };
    Ok(ReadStats {
        backend,
        bytes_read,
        pieces: pieces.len(),
    })
}

/// Runs `job` on each of `pieces` on `pool`, with the CUDA context current on every worker (as
/// cuFile needs).
fn run_cufile(
    ctx: &Context,
    pool: Pool,
    pieces: &[plan::Piece],
    job: impl Fn(&plan::Piece) -> Result<()> + Sync,
) -> Result<()> {
    engine::run(
        ctx,
        pool,
        pieces.len(),
        || crate::gpu::gpu().map(|_| ()),
        |(), i| job(&pieces[i]),
        |()| Ok(()),
    )
}

/// Moves segment `sg` of piece `p` between the file of `h` (named `path` in errors) and GPU
/// memory at `base` with cuFile: a write when `write`, else a read. A failed call is
/// [`IoError::CuFile`]; fewer bytes than asked are [`IoError::ShortRead`] for a read (the file
/// shrank) and [`IoError::CuFile`] for a write.
fn cufile_segment(
    h: &crate::cufile::CuFileHandle,
    write: bool,
    base: u64,
    p: &plan::Piece,
    sg: &plan::Segment,
    path: &Path,
) -> Result<()> {
    let off = p.file_offset + sg.piece_offset as u64;
    let op = if write { "write" } else { "read" };
    let cufile_err = |message: String| IoError::CuFile {
        path: path.into(),
        op,
        offset: off,
        len: sg.len as u64,
        message,
    };
    let n = h
        .transfer(write, base, sg.buf_offset, sg.len, off)
        .map_err(cufile_err)?;
    if n >= sg.len {
        Ok(())
    } else if write {
        Err(cufile_err(format!("wrote {n} of {} bytes", sg.len)))
    } else {
        Err(IoError::ShortRead {
            path: path.into(),
            offset: off,
            len: sg.len as u64,
            got: n as u64,
        })
    }
}

fn read_host(files: &[FileRef<'_>], pieces: &[plan::Piece], buf: &mut [u8], s: &Settings) -> Result<()> {
    let ctx = Context::for_settings(s)?;
    let dst = DisjointBytes::new(buf);
    // a read of at most one task's bytes is one task, read by the calling thread (as KvikIO
    // splits reads into tasks of `task_size`): handing a small read to the pool, and waking
    // its threads, cost more than the read from the page cache
    let bytes: usize = pieces.iter().map(|p| p.len).fold(0, usize::saturating_add);
    let threads = if bytes <= s.task_size { 1 } else { s.threads };
    engine::run_on(
        &ctx,
        Pool::Reads,
        threads,
        pieces.len(),
        || Ok(HostScratch::new(s.task_size)),
        |scratch, i| {
            let p = &pieces[i];
            let f = files[p.file].open(s.direct_io)?;
            engine::host_read_piece(&f, files[p.file].path, p, &dst, scratch)
        },
        |_| Ok(()),
    )
}

fn read_device(
    files: &[FileRef<'_>],
    pieces: &[plan::Piece],
    d: &mut DeviceBuffer,
    io: &DeviceIo,
    s: &Settings,
    order: Option<&crate::gpu::Stream>,
) -> Result<()> {
    let ctx = Context::for_settings(s)?;
    let base = d.device_ptr();
    // stream order: the workers' copies start after the caller's earlier work, and the
    // caller's later work waits for the copies; no host wait
    let start = match order {
        Some(caller) if !matches!(io, DeviceIo::CuFile(_)) => {
            let e = crate::gpu::Event::new()?;
            e.record(caller)?;
            Some(e)
        }
        Some(caller) => {
            caller.synchronize()?;
            None
        }
        None => None,
    };
    let take = |slots: usize| -> Result<StagingSet> {
        let set = StagingSet::take(&ctx, s.task_size, slots)?;
        if let Some(e) = &start {
            set.stream.wait(e)?;
        }
        Ok(set)
    };
    let give_back = |set: StagingSet| match order {
        Some(caller) => set.give_back_ordered(caller),
        None => set.give_back(),
    };
    match io {
        DeviceIo::Staged => engine::run(
            &ctx,
            Pool::Reads,
            pieces.len(),
            || take(s.staging_slots),
            |set, i| {
                let p = &pieces[i];
                let f = files[p.file].open(s.direct_io)?;
                engine::staged_read_piece(&f, files[p.file].path, p, base, set)
            },
            give_back,
        ),
        DeviceIo::CuFile(h) => run_cufile(&ctx, Pool::Reads, pieces, |p| {
            let path = files[p.file].path;
            let whole = [plan::Segment {
                piece_offset: 0,
                len: p.len,
                buf_offset: p.dense_offset().unwrap_or(0),
            }];
            let segs = if p.dense_offset().is_some() {
                &whole[..]
            } else {
                &p.segs[..]
            };
            segs.iter()
                .try_for_each(|sg| cufile_segment(h, false, base, p, sg, path))
        }),
        DeviceIo::Mmap(m) => engine::run(
            &ctx,
            Pool::Reads,
            pieces.len(),
            || take(1),
            |set, i| {
                let p = &pieces[i];
                for sg in &p.segs {
                    // SAFETY: the mapping covers the file; the range was checked against its length.
                    let src = unsafe { m.ptr().add(p.file_offset as usize + sg.piece_offset) };
                    // SAFETY: the mapping outlives the call, which waits for the stream in give_back
                    // (also for ordered reads: the file handle, and so the mapping, may be dropped
                    // right after the call).
                    unsafe { engine::htod_async(base + sg.buf_offset as u64, src, sg.len, &set.stream)? };
                }
                Ok(())
            },
            StagingSet::give_back,
        ),
    }
}

/// One file of a [`read_files`] call: `len` bytes at `file_offset` of `path`, to `dst_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    /// The file.
    pub path: PathBuf,
    /// Where the bytes start in the file.
    pub file_offset: u64,
    /// How many bytes.
    pub len: usize,
    /// Where they go in the destination.
    pub dst_offset: usize,
}

/// Reads parts of many files (e.g. the chunk files of a Zarr array) into one destination, with
/// `settings.threads` files in flight. GPU targets go through the staged engine.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let (a, b) = (dir.path().join("a"), dir.path().join("b"));
/// std::fs::write(&a, b"hello")?;
/// std::fs::write(&b, b"world")?;
/// let mut out = vec![0u8; 10];
/// tiledio_io::read_files(&[
///     tiledio_io::FileRead { path: a, file_offset: 0, len: 5, dst_offset: 0 },
///     tiledio_io::FileRead { path: b, file_offset: 0, len: 5, dst_offset: 5 },
/// ], &mut out, &Default::default())?;
/// assert_eq!(&out, b"helloworld");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`FileHandle::read_ranges`]; a file shorter than its range gives [`IoError::ShortRead`].
pub fn read_files<'a>(reads: &[FileRead], dst: impl Into<Target<'a>>, settings: &Settings) -> Result<ReadStats> {
    settings.validate()?;
    let mut dst = dst.into();
    let items: Vec<Item> = reads
        .iter()
        .enumerate()
        .map(|(i, r)| item(i, r.file_offset, r.len, r.dst_offset))
        .collect();
    let files: Vec<FileRef<'_>> = reads
        .iter()
        .map(|r| FileRef {
            path: &r.path,
            file: None,
            direct: None,
        })
        .collect();
    // Each range is its own file, so there is nothing to coalesce.
    run_read(&files, &items, 0, &mut dst, settings, None, || {
        Ok((&DeviceIo::Staged, Backend::Staged))
    })
}

fn create_temp(path: &Path) -> Result<(File, PathBuf)> {
    let temp = output::temp_name(path);
    let f = output::create_registered(&temp, || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| IoError::open(&temp, e))
    })?;
    Ok((f, temp))
}

/// Removes an unfinished temporary file.
fn discard_temp(temp: &Path) {
    output::unregister(temp);
    let _ = std::fs::remove_file(temp);
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| IoError::Write {
        path: dir.into(),
        offset: 0,
        len: 0,
        source: e,
    })
}

fn commit(file: &File, temp: &Path, path: &Path, sync: bool) -> Result<()> {
    // a device, FIFO or symlink that appeared at the target meanwhile is never replaced
    if let Ok(m) = std::fs::symlink_metadata(path)
        && !m.is_file()
    {
        return Err(IoError::NotRegularFile {
            path: path.into(),
            kind: output::file_kind(m.file_type()),
        });
    }
    if sync {
        file.sync_all().map_err(|e| IoError::Write {
            path: path.into(),
            offset: 0,
            len: 0,
            source: e,
        })?;
    }
    std::fs::rename(temp, path).map_err(|e| IoError::Commit {
        path: path.into(),
        temp: temp.into(),
        source: e,
    })?;
    output::unregister(temp);
    Ok(())
}

/// A file being written: bytes go to a temporary file beside the target, which
/// [`FileWriter::finish`] renames into place. Dropped unfinished, the temporary file is removed,
/// so the target is either complete or absent.
///
/// ```
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("out.bin");
/// let w = tiledio_io::FileWriter::create(&path)?;
/// w.write_at(0, &b"hello"[..])?;
/// assert!(!path.exists());
/// w.finish(false)?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileWriter {
    path: PathBuf,
    temp: PathBuf,
    file: File,
    settings: Settings,
    cufile: OnceLock<Option<crate::cufile::CuFileHandle>>,
    done: bool,
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileWriter({} via {})", self.path.display(), self.temp.display())
    }
}

impl FileWriter {
    /// Starts writing `path` with [`Settings::from_env`].
    ///
    /// # Errors
    /// [`IoError::Open`] / [`IoError::PermissionDenied`] if the temporary file cannot be created.
    pub fn create(path: impl AsRef<Path>) -> Result<FileWriter> {
        Self::create_with(path, &Settings::from_env()?)
    }

    /// Starts writing `path` with the given settings. The target is checked first
    /// ([`crate::check_output`]): a device, FIFO, symlink or directory there is refused, never
    /// replaced; temporaries left beside it by killed processes are removed.
    ///
    /// # Errors
    /// As [`FileWriter::create`]; [`IoError::NotRegularFile`] / [`IoError::BadOutput`] for a
    /// target that cannot be replaced.
    pub fn create_with(path: impl AsRef<Path>, settings: &Settings) -> Result<FileWriter> {
        let path = checked_path(path, settings)?;
        output::check_output(&path, &[], output::OutputKind::File)?;
        output::remove_stale_temporaries(&path);
        let (file, temp) = create_temp(&path)?;
        Ok(FileWriter {
            path,
            temp,
            file,
            settings: settings.clone(),
            cufile: OnceLock::new(),
            done: false,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes many ranges of `src` into the file in one call, in parallel.
    ///
    /// # Errors
    /// [`IoError::BufferTooSmall`], [`IoError::OverlappingDestinations`] for ranges that overlap
    /// in the file, [`IoError::Write`], and for GPU sources [`IoError::Cuda`].
    pub fn write_ranges<'a>(&self, ranges: &[WriteRange], src: impl Into<Source<'a>>) -> Result<WriteStats> {
        let src = src.into();
        let items: Vec<Item> = ranges
            .iter()
            .map(|r| item(0, r.file_offset, r.len, r.src_offset))
            .collect();
        let (pieces, bytes_written) = check_and_plan(&items, src.len(), 0, self.settings.task_size, false)?;
        let ctx = Context::for_settings(&self.settings)?;
        // cuFile is asked for (and the file registered with it) only for GPU sources
        let cufile = match src {
            Source::Device(d) => self.cufile_for_writes().map(|h| (h, d.device_ptr())),
            Source::Host(_) => None,
        };
        let backend = match cufile {
            Some((h, base)) => {
                run_cufile(&ctx, Pool::Writes, &pieces, |p| {
                    p.segs
                        .iter()
                        .try_for_each(|sg| cufile_segment(h, true, base, p, sg, &self.temp))
                })?;
                Backend::CuFile
            }
            None => run_writes(&ctx, &self.settings, src, pieces.len(), |i, put| {
                put(&self.file, &self.temp, &pieces[i])
            })?,
        };
        Ok(WriteStats {
            backend,
            bytes_written,
            files: 1,
        })
    }

    /// A cuFile handle on the temporary file when GPU writes should use cuFile: on request
    /// (`backend = CuFile`), or in auto mode where nvidia-fs makes it a real direct path.
    fn cufile_for_writes(&self) -> Option<&crate::cufile::CuFileHandle> {
        self.cufile
            .get_or_init(|| {
                let wanted = match self.settings.backend {
                    BackendChoice::CuFile => true,
                    BackendChoice::Auto => crate::cufile::api().is_ok_and(|a| !a.compat_mode),
                    _ => false,
                };
                if !wanted {
                    return None;
                }
                use std::os::unix::fs::OpenOptionsExt;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(&self.temp)
                    .ok()?;
                crate::cufile::CuFileHandle::register(f).ok()
            })
            .as_ref()
    }

    /// Writes all of `src` at `offset`.
    ///
    /// # Errors
    /// As [`FileWriter::write_ranges`].
    pub fn write_at<'a>(&self, offset: u64, src: impl Into<Source<'a>>) -> Result<WriteStats> {
        let src = src.into();
        self.write_ranges(
            &[WriteRange {
                file_offset: offset,
                len: src.len(),
                src_offset: 0,
            }],
            src,
        )
    }

    /// Finishes the file: optionally flushes it to storage (`sync`), then renames it into place
    /// (and with `sync`, flushes the directory so the rename is durable too).
    ///
    /// # Errors
    /// [`IoError::Write`] if the flush fails; [`IoError::Commit`] if the rename fails. The
    /// temporary file is removed on error.
    pub fn finish(mut self, sync: bool) -> Result<()> {
        self.done = true;
        // Deregister from cuFile before the rename.
        self.cufile.take();
        let r = commit(&self.file, &self.temp, &self.path, sync)
            .and_then(|()| if sync { sync_dir(&self.path) } else { Ok(()) });
        if r.is_err() {
            discard_temp(&self.temp);
        }
        r
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.done {
            discard_temp(&self.temp);
        }
    }
}

/// Writes one piece of a write job: `put(file, path, piece)`, `path` naming the file in errors.
type PutPiece<'p> = dyn FnMut(&File, &Path, &plan::Piece) -> Result<()> + 'p;

/// Runs `jobs` write jobs on the write pool, from host memory, or from GPU memory through
/// staging buffers: `job(i, put)` does job `i`, writing each of its pieces with `put`. Returns
/// the backend used.
fn run_writes(
    ctx: &std::sync::Arc<Context>,
    s: &Settings,
    src: Source<'_>,
    jobs: usize,
    job: impl Fn(usize, &mut PutPiece<'_>) -> Result<()> + Sync,
) -> Result<Backend> {
    match src {
        Source::Host(buf) => {
            engine::run(
                ctx,
                Pool::Writes,
                jobs,
                || Ok(()),
                |(), i| job(i, &mut |f, t, p| engine::host_write_piece(f, t, p, buf)),
                |()| Ok(()),
            )?;
            Ok(Backend::Host)
        }
        Source::Device(d) => {
            let base = d.device_ptr();
            engine::run(
                ctx,
                Pool::Writes,
                jobs,
                || StagingSet::take(ctx, s.task_size, s.staging_slots),
                |set, i| job(i, &mut |f, t, p| engine::staged_write_piece(f, t, p, base, set)),
                StagingSet::give_back,
            )?;
            Ok(Backend::Staged)
        }
    }
}

/// One file of a [`write_files`] call: the whole file is `len` bytes of the source from `src_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// The file to create (replaced if it exists).
    pub path: PathBuf,
    /// Where its bytes start in the source.
    pub src_offset: usize,
    /// Its length.
    pub len: usize,
}

/// The order to write `files` in: round-robin over their directories. Creating and renaming a
/// file takes its directory's lock, so workers that all write into one directory at a time
/// (chunk keys in order: `c/0/0`, `c/0/1`, ...) queue on that lock; spread over directories
/// they do not.
fn interleave_by_directory(files: &[FileWrite]) -> Vec<usize> {
    let mut groups: Vec<(&Path, Vec<usize>)> = Vec::new();
    let mut index: std::collections::HashMap<&Path, usize> = std::collections::HashMap::new();
    for (i, f) in files.iter().enumerate() {
        let dir = f.path.parent().unwrap_or(Path::new(""));
        let g = *index.entry(dir).or_insert_with(|| {
            groups.push((dir, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let longest = groups.iter().map(|g| g.1.len()).max().unwrap_or(0);
    (0..longest)
        .flat_map(|k| groups.iter().filter_map(move |g| g.1.get(k).copied()))
        .collect()
}

/// Writes many whole files (e.g. chunk files) from one source, `settings.threads` at a time.
/// Each file is written under a temporary name and renamed when complete, so after an error
/// every file is either complete or absent. With `sync`, each file and its directory are flushed
/// to storage before the call returns.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let data = b"aaaabbbb".to_vec();
/// let files = [
///     tiledio_io::FileWrite { path: dir.path().join("0"), src_offset: 0, len: 4 },
///     tiledio_io::FileWrite { path: dir.path().join("1"), src_offset: 4, len: 4 },
/// ];
/// tiledio_io::write_files(&files, &data, &Default::default(), false)?;
/// assert_eq!(std::fs::read(dir.path().join("1"))?, b"bbbb");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`IoError::BufferTooSmall`], [`IoError::Open`], [`IoError::Write`], [`IoError::Commit`],
/// [`IoError::Cuda`].
pub fn write_files<'a>(
    files: &[FileWrite],
    src: impl Into<Source<'a>>,
    settings: &Settings,
    sync: bool,
) -> Result<WriteStats> {
    settings.validate()?;
    let src = src.into();
    let items: Vec<Item> = files
        .iter()
        .enumerate()
        .map(|(i, f)| item(i, 0, f.len, f.src_offset))
        .collect();
    plan::check_buffer(items.iter().map(|i| (i.buf_offset, i.len)), src.len())?;
    let s = settings;
    let ctx = Context::for_settings(s)?;
    let order = interleave_by_directory(files);
    // One job per file: a worker creates it, writes it in task-sized pieces, and renames it.
    let write_one = |job: usize, put: &mut PutPiece<'_>| -> Result<()> {
        let fw = &files[order[job]];
        let (file, temp) = create_temp(&fw.path)?;
        let r = plan::plan(&[item(0, 0, fw.len, fw.src_offset)], 0, s.task_size, false)
            .iter()
            .try_for_each(|p| put(&file, &temp, p))
            .and_then(|()| commit(&file, &temp, &fw.path, sync));
        if r.is_err() {
            discard_temp(&temp);
        }
        r
    };
    let backend = run_writes(&ctx, s, src, files.len(), write_one)?;
    if sync {
        let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.path.parent()).collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            sync_dir(&d.join("x"))?;
        }
    }
    Ok(WriteStats {
        backend,
        bytes_written: files.iter().map(|f| f.len as u64).sum(),
        files: files.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_visits_every_file_once_alternating_directories() {
        let f = |p: &str| FileWrite {
            path: PathBuf::from(p),
            src_offset: 0,
            len: 0,
        };
        let files = [f("c/0/0"), f("c/0/1"), f("c/0/2"), f("c/1/0"), f("c/1/1"), f("x")];
        assert_eq!(interleave_by_directory(&files), vec![0, 3, 5, 1, 4, 2]);
    }
}
