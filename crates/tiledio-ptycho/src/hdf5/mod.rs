//! HDF5 datasets as frame stores: a bounded, pure-Rust reader of the metadata (superblock,
//! object headers, groups and links, dataset messages, chunk indexes); the bytes themselves go
//! through [`FileHandle::read_ranges`](tiledio_io::FileHandle::read_ranges) like every other
//! store. See the crate docs ("HDF5: the choice") for why.

mod chunks;
mod dataset;
mod filters;
mod format;
mod group;
mod write;

use crate::error::{PtychoError, Result, format_err, usage};
use crate::store::{FrameStore, checked_request, stack_geometry};
use chunks::{Geometry, Loc, Table, chunk_err};
use dataset::{Info, Layout};
use filters::Pipeline;
use format::{H5File, UNDEF};
use group::{Link, Resolver};
use rayon::prelude::*;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use tiledio_io::{DisjointBytes, ElementType, ReadRange, Target};
pub use write::{Hdf5ExternalLink, Hdf5Layout, Hdf5Writer, write_hdf5_links};

/// The largest chunk (decoded) this reader accepts.
const MAX_CHUNK_BYTES: u64 = 1 << 30;

/// An HDF5 dataset `(N, H, W)` (or `(H, W)`: one frame) read as a stack of frames, or the
/// `data_NNNNNN` external links of a DECTRIS Eiger master file concatenated in order.
///
/// Read: superblock versions 0, 2 and 3; object headers v1 and v2 (continuations, checksums);
/// symbol-table groups and compact link groups with hard, soft and external links (at most 8
/// followed per path); integers of 1 to 8 bytes and IEEE `f32`/`f64`, either byte order;
/// contiguous and chunked layouts with the v1 B-tree, single-chunk, implicit, fixed-array and
/// extensible-array chunk indexes; the filters bitshuffle-LZ4 (32008), LZ4 (32004), deflate (1)
/// and shuffle (2). Chunks never written read as the fill value. Anything else (dense link
/// storage, the v2 B-tree chunk index, compact or virtual layouts, other filters) is a
/// [`PtychoError::Unsupported`] naming it.
///
/// Uncompressed little-endian data is read row band by row band straight into the destination
/// (host or GPU); compressed chunks are read raw in one batch and decoded in parallel.
///
/// ```
/// use tiledio_ptycho::{FrameStore, Hdf5Store};
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ptycho");
/// let s = Hdf5Store::open_spec(&format!("{dir}/h5_bslz4.h5:/entry/data/data"))?;
/// assert_eq!((s.frames(), s.shape()), (6, (64, 80)));
/// let rows = s.read_frames_to_vec(2..4, Some(10..20))?; // rows 10..20 of frames 2 and 3
/// assert_eq!(rows.len(), 2 * 10 * 80 * 2);
/// // a DECTRIS master file: its data_NNNNNN links, one stack
/// let m = Hdf5Store::open_eiger_master(format!("{dir}/eiger_master.h5"))?;
/// assert_eq!(m.frames(), 6);
/// # Ok::<(), tiledio_ptycho::PtychoError>(())
/// ```
#[derive(Debug)]
pub struct Hdf5Store {
    name: String,
    parts: Vec<Part>,
    frames: u64,
    shape: (usize, usize),
    dtype: ElementType,
}

/// One dataset of the stack.
#[derive(Debug)]
struct Part {
    file: Arc<H5File>,
    /// `FILE:/path` for messages.
    obj: String,
    /// The dataset's path in its file.
    ds: String,
    first: u64,
    frames: u64,
    h: usize,
    w: usize,
    esize: usize,
    dtype: ElementType,
    big_endian: bool,
    /// One element of the fill value, file byte order (zeros when none).
    fill: Vec<u8>,
    data: Data,
    pipeline: Pipeline,
}

#[derive(Debug)]
enum Data {
    /// The absolute offset of the block (`None`: never written).
    Contiguous(Option<u64>),
    Chunked(Table),
}

impl Hdf5Store {
    /// Opens dataset `dataset` (a path such as `/entry/data/data`) of the HDF5 file `path`, or
    /// when `dataset` is a group of `data_NNNNNN` links (an Eiger master's `/entry/data`), all
    /// of them as one stack.
    ///
    /// # Errors
    /// [`PtychoError::Io`] for a file that cannot be opened (regular files only);
    /// [`PtychoError::NotFound`] for a missing dataset; [`PtychoError::ExternalLink`] for a link
    /// that cannot be followed; [`PtychoError::Format`] for malformed metadata or a dataset that
    /// is not 2-D or 3-D; [`PtychoError::Unsupported`]; [`PtychoError::Chunk`] for a chunk
    /// outside the file.
    pub fn open(path: impl AsRef<Path>, dataset: &str) -> Result<Hdf5Store> {
        let path = path.as_ref();
        let mut r = Resolver::default();
        let file = r.open(path)?;
        let found = r.resolve(file, dataset, dataset)?;
        let name = format!("{}:{dataset}", path.display());
        if found.msgs.iter().any(|m| m.kind == 0x08) {
            let part = Part::open(found.file, &found.path, &found.msgs, 0)?;
            return Self::assemble(name, vec![part]);
        }
        // a group: its data_NNNNNN links in order
        let mut names: Vec<(u64, String)> = group::links(&found.file, dataset, &found.path, &found.msgs)?
            .into_iter()
            .filter_map(|(n, _): (String, Link)| {
                let num = n.strip_prefix("data_")?;
                (num.len() >= 6 && num.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| num.parse().ok().map(|v| (v, n.clone())))?
            })
            .collect();
        if names.is_empty() {
            return Err(PtychoError::NotFound {
                path: path.to_path_buf(),
                object: dataset.to_string(),
                reason: "a group without a dataset or data_NNNNNN links".into(),
            });
        }
        names.sort();
        let base = dataset.trim_end_matches('/');
        let mut parts = Vec::with_capacity(names.len());
        let mut first = 0u64;
        for (_, n) in names {
            let file = r.open(path)?;
            let full = format!("{base}/{n}");
            let f = r.resolve(file, &full, &full)?;
            if !f.msgs.iter().any(|m| m.kind == 0x08) {
                return Err(format_err(path, format!("{full} is not a dataset")));
            }
            let p = Part::open(f.file, &f.path, &f.msgs, first)?;
            first = first
                .checked_add(p.frames)
                .ok_or_else(|| format_err(path, "frame count overflows"))?;
            parts.push(p);
        }
        Self::assemble(name, parts)
    }

    /// Opens `FILE:/path/in/file` (split at the last `:` followed by `/`), as
    /// [`Hdf5Store::open`].
    ///
    /// # Errors
    /// [`PtychoError::Usage`] for a spec without `:/`; otherwise as [`Hdf5Store::open`].
    pub fn open_spec(spec: &str) -> Result<Hdf5Store> {
        let i = spec
            .rfind(":/")
            .ok_or_else(|| usage(format!("'{spec}' is not FILE.h5:/path/to/dataset")))?;
        Self::open(&spec[..i], &spec[i + 1..])
    }

    /// Opens a DECTRIS Eiger master file: the datasets its `/entry/data/data_NNNNNN` external
    /// links point to, concatenated in order as one stack.
    ///
    /// A master of more than 8 data files keeps these links in dense storage (a fractal heap),
    /// which this reader does not read; then, for a master named `SCAN_master.h5`, the data
    /// files are taken by the DECTRIS naming instead: `SCAN_data_000001.h5`,
    /// `SCAN_data_000002.h5`, … beside it (numbered from 1 without a gap), each read at
    /// `/entry/data/data`.
    ///
    /// # Errors
    /// As [`Hdf5Store::open`]; [`PtychoError::Format`] when the data files disagree on frame
    /// shape or type, or when the data files found by name are not numbered 1, 2, ….
    pub fn open_eiger_master(path: impl AsRef<Path>) -> Result<Hdf5Store> {
        let path = path.as_ref();
        match Self::open(path, "/entry/data") {
            Err(e @ PtychoError::Unsupported { .. }) if e.to_string().contains("dense storage") => {
                Self::eiger_by_name(path).unwrap_or(Err(e))
            }
            r => r,
        }
    }

    /// The data files of `SCAN_master.h5` by name (`None`: not so named, or none found).
    fn eiger_by_name(path: &Path) -> Option<Result<Hdf5Store>> {
        let stem = path.file_name()?.to_str()?.strip_suffix("_master.h5")?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let prefix = format!("{stem}_data_");
        let mut found: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().into_string().ok()?;
                let num = name.strip_prefix(&prefix)?.strip_suffix(".h5")?;
                (num.len() >= 6 && num.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| num.parse().ok().map(|n| (n, e.path())))?
            })
            .collect();
        if found.is_empty() {
            return None;
        }
        found.sort();
        Some((|| {
            if let Some((i, (n, p))) = found.iter().enumerate().find(|(i, (n, _))| *n != *i as u64 + 1) {
                return Err(format_err(
                    path,
                    format!("data file {} is number {n} where {} belongs", p.display(), i + 1),
                ));
            }
            let mut r = Resolver::default();
            let mut parts = Vec::with_capacity(found.len());
            let mut first = 0u64;
            for (_, p) in &found {
                let file = r.open(p)?;
                let f = r.resolve(file, "/entry/data/data", "/entry/data/data")?;
                let part = Part::open(f.file, &f.path, &f.msgs, first)?;
                first = first
                    .checked_add(part.frames)
                    .ok_or_else(|| format_err(path, "frame count overflows"))?;
                parts.push(part);
            }
            Self::assemble(format!("{}:/entry/data", path.display()), parts)
        })())
    }

    fn assemble(name: String, parts: Vec<Part>) -> Result<Hdf5Store> {
        let p0 = &parts[0];
        let (shape, dtype) = ((p0.h, p0.w), p0.dtype_of());
        for p in &parts[1..] {
            if (p.h, p.w) != shape || p.dtype_of() != dtype {
                return Err(format_err(
                    &p.file.path,
                    format!(
                        "{}: frames of {}x{} {} where the first data file has {}x{} {}",
                        p.obj,
                        p.h,
                        p.w,
                        p.dtype_of().name(),
                        shape.0,
                        shape.1,
                        dtype.name()
                    ),
                ));
            }
        }
        let frames = parts.last().map_or(0, |p| p.first + p.frames);
        Ok(Hdf5Store {
            name,
            parts,
            frames,
            shape,
            dtype,
        })
    }

    /// The number of datasets the stack is made of (the data files of an Eiger master).
    pub fn datasets(&self) -> usize {
        self.parts.len()
    }
}

impl FrameStore for Hdf5Store {
    stack_geometry!();
    fn reads_rows(&self) -> bool {
        self.parts.iter().all(Part::raw_rows)
    }
    fn read_frames(&self, frames: Range<u64>, rows: Option<Range<usize>>, dst: Target<'_>) -> Result<()> {
        let rows = checked_request(self, &frames, rows, &dst)?;
        let per_frame = rows.len() * self.shape.1 * self.dtype.size();
        let mut dst = dst;
        for p in &self.parts {
            let a = frames.start.max(p.first);
            let b = frames.end.min(p.first + p.frames);
            if a >= b {
                continue;
            }
            let off = (a - frames.start) as usize * per_frame;
            let len = (b - a) as usize * per_frame;
            let local = a - p.first..b - p.first;
            match &mut dst {
                Target::Host(h) => p.read(local, rows.clone(), Target::Host(&mut h[off..off + len]))?,
                Target::Device(d) => {
                    // SAFETY: a non-owning view of bytes [off, off + len) of a live allocation
                    // (checked above to hold n >= off + len bytes), dropped before `d` is used
                    // again.
                    let mut view =
                        unsafe { tiledio_io::gpu::DeviceBuffer::from_raw_parts(d.device_ptr() + off as u64, len) };
                    p.read(local, rows.clone(), Target::Device(&mut view))?;
                }
            }
        }
        Ok(())
    }
}

impl Part {
    fn open(file: Arc<H5File>, path: &str, msgs: &[format::Message], first: u64) -> Result<Part> {
        let obj = path.to_string();
        let info: Info = dataset::parse(&file, &obj, msgs)?;
        let (frames, h, w) = match info.dims[..] {
            [n, h, w] => (n, h, w),
            [h, w] => (1, h, w),
            _ => {
                return Err(file.err(&obj, 0, format!("shape {:?} is not (N, H, W) or (H, W)", info.dims)));
            }
        };
        let esize = info.dtype.size();
        let dim = |v: u64| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v.checked_mul(esize).is_some())
                .ok_or_else(|| file.err(&obj, 0, format!("dimension {v} too large")))
        };
        let (h, w) = (dim(h)?, dim(w)?);
        let frame_bytes = (h as u64)
            .checked_mul(w as u64)
            .and_then(|v| v.checked_mul(esize as u64))
            .filter(|&v| usize::try_from(v).is_ok())
            .ok_or_else(|| file.err(&obj, 0, format!("frames of {h}x{w} overflow")))?;
        let total = frame_bytes
            .checked_mul(frames)
            .ok_or_else(|| file.err(&obj, 0, "dataset size overflows"))?;
        let pipeline = Pipeline::new(&file, &obj, &info.filters, esize)?;
        let data = match &info.layout {
            Layout::Contiguous { addr, size } => {
                if *addr == UNDEF {
                    Data::Contiguous(None)
                } else {
                    if *size < total {
                        return Err(file.err(
                            &obj,
                            *addr,
                            format!("contiguous block of {size} bytes for {total} bytes of data"),
                        ));
                    }
                    let a = file.abs_opt(*addr, total).ok_or_else(|| {
                        file.err(
                            &obj,
                            *addr,
                            format!(
                                "data block of {total} bytes runs past the end of the file ({} bytes)",
                                file.len
                            ),
                        )
                    })?;
                    Data::Contiguous(Some(a))
                }
            }
            Layout::Chunked { chunk, index } => {
                let g = Geometry {
                    dims: &info.dims,
                    maxdims: &info.maxdims,
                    chunk,
                    esize,
                    filtered: !pipeline.is_empty(),
                    max_stored: 0,
                };
                let cb = chunk
                    .iter()
                    .try_fold(esize as u64, |a, &b| a.checked_mul(b))
                    .filter(|&v| v <= MAX_CHUNK_BYTES)
                    .ok_or_else(|| file.err(&obj, 0, format!("chunks of {chunk:?} elements are too large")))?;
                let g = Geometry {
                    max_stored: cb.saturating_mul(2).saturating_add(1 << 20),
                    ..g
                };
                Data::Chunked(chunks::table(&file, &obj, &g, index)?)
            }
        };
        let fill = info.fill.clone().unwrap_or_else(|| vec![0; esize]);
        Ok(Part {
            obj: format!("{}:{obj}", file.path.display()),
            ds: obj,
            file,
            first,
            frames,
            h,
            w,
            esize,
            dtype: info.dtype,
            big_endian: info.big_endian,
            fill,
            data,
            pipeline,
        })
    }

    fn dtype_of(&self) -> ElementType {
        self.dtype
    }

    fn raw_rows(&self) -> bool {
        self.pipeline.is_empty() && !self.big_endian
    }

    fn row_bytes(&self) -> usize {
        self.w * self.esize
    }

    /// The ranges reading `rows` of `frames` straight from the file, or `None` when some data
    /// needs decoding, swapping or filling.
    fn direct_ranges(&self, frames: &Range<u64>, rows: &Range<usize>) -> Option<Vec<ReadRange>> {
        if !self.raw_rows() {
            return None;
        }
        let rb = self.row_bytes();
        let nrows = rows.len();
        match &self.data {
            Data::Contiguous(None) => None,
            Data::Contiguous(Some(a)) => Some(
                (frames.start..frames.end)
                    .enumerate()
                    .map(|(k, i)| ReadRange {
                        file_offset: a + i * (self.h * rb) as u64 + (rows.start * rb) as u64,
                        len: nrows * rb,
                        dst_offset: k * nrows * rb,
                    })
                    .collect(),
            ),
            Data::Chunked(t) => {
                let [c0, c1, c2] = t.chunk;
                let (c1, c2) = (c1 as usize, c2 as usize);
                let mut v = Vec::new();
                for f in frames.clone() {
                    let i = f / c0;
                    let fo = (f - i * c0) as usize;
                    for j in rows.start / c1..rows.end.div_ceil(c1) {
                        let r0 = rows.start.max(j * c1);
                        let r1 = rows.end.min((j + 1) * c1);
                        for k in 0..t.grid[2] as usize {
                            let loc = t.locs[((i * t.grid[1] + j as u64) * t.grid[2] + k as u64) as usize];
                            if loc.addr == UNDEF {
                                return None;
                            }
                            let cols = c2.min(self.w - k * c2);
                            let in_chunk = |r: usize| ((fo * c1 + (r - j * c1)) * c2 * self.esize) as u64;
                            let dst = |r: usize| {
                                ((f - frames.start) as usize * nrows + (r - rows.start)) * rb + k * c2 * self.esize
                            };
                            if c2 == self.w {
                                v.push(ReadRange {
                                    file_offset: loc.addr + in_chunk(r0),
                                    len: (r1 - r0) * rb,
                                    dst_offset: dst(r0),
                                });
                            } else {
                                for r in r0..r1 {
                                    v.push(ReadRange {
                                        file_offset: loc.addr + in_chunk(r),
                                        len: cols * self.esize,
                                        dst_offset: dst(r),
                                    });
                                }
                            }
                        }
                    }
                }
                Some(v)
            }
        }
    }

    fn read(&self, frames: Range<u64>, rows: Range<usize>, dst: Target<'_>) -> Result<()> {
        if frames.is_empty() || rows.is_empty() {
            return Ok(());
        }
        if let Some(ranges) = self.direct_ranges(&frames, &rows) {
            self.file.fh.read_ranges(&ranges, dst)?;
            return Ok(());
        }
        let n = frames.end.saturating_sub(frames.start) as usize * rows.len() * self.row_bytes();
        match dst {
            Target::Host(h) => self.decode_into(&frames, &rows, &mut h[..n]),
            Target::Device(d) => {
                let mut h = tiledio_io::try_alloc_zeroed(n, &format!("{}: decoded frames", self.obj))?;
                self.decode_into(&frames, &rows, &mut h)?;
                d.copy_from_host(&h)?;
                Ok(())
            }
        }
    }

    fn fill(&self, seg: &mut [u8]) {
        if self.fill.iter().all(|&b| b == 0) {
            seg.fill(0);
        } else {
            for e in seg.chunks_mut(self.esize) {
                e.copy_from_slice(&self.fill[..e.len()]);
            }
        }
    }

    /// Reads `rows` of `frames` into `out` (exactly their size) through host memory: chunks
    /// decoded in parallel, missing ones filled, big-endian elements swapped.
    fn decode_into(&self, frames: &Range<u64>, rows: &Range<usize>, out: &mut [u8]) -> Result<()> {
        let rb = self.row_bytes();
        let nrows = rows.len();
        match &self.data {
            Data::Contiguous(None) => self.fill(out),
            Data::Contiguous(Some(a)) => {
                let ranges: Vec<ReadRange> = (frames.start..frames.end)
                    .enumerate()
                    .map(|(k, i)| ReadRange {
                        file_offset: a + i * (self.h * rb) as u64 + (rows.start * rb) as u64,
                        len: nrows * rb,
                        dst_offset: k * nrows * rb,
                    })
                    .collect();
                self.file.fh.read_ranges(&ranges, Target::Host(out))?;
            }
            Data::Chunked(t) => self.decode_chunks(t, frames, rows, out)?,
        }
        if self.big_endian {
            let e = self.esize;
            out.par_chunks_mut(1 << 16)
                .for_each(|c| c.chunks_exact_mut(e).for_each(|x| x.reverse()));
        }
        Ok(())
    }

    fn decode_chunks(&self, t: &Table, frames: &Range<u64>, rows: &Range<usize>, out: &mut [u8]) -> Result<()> {
        let [c0, c1, c2] = t.chunk;
        let (c1, c2) = (c1 as usize, c2 as usize);
        let es = self.esize;
        let rb = self.row_bytes();
        let nrows = rows.len();
        let cb = (c0 as usize) * c1 * c2 * es;
        // the chunks the request touches, and where their raw bytes go
        struct Job {
            t: u64,
            i: u64,
            j: usize,
            k: usize,
            loc: Loc,
            raw: usize,
        }
        let mut jobs = Vec::new();
        let mut ranges = Vec::new();
        let mut raw_len = 0usize;
        for i in frames.start / c0..frames.end.div_ceil(c0) {
            for j in rows.start / c1..rows.end.div_ceil(c1) {
                for k in 0..t.grid[2] as usize {
                    let ti = (i * t.grid[1] + j as u64) * t.grid[2] + k as u64;
                    let loc = t.locs[ti as usize];
                    let raw = raw_len;
                    if loc.addr != UNDEF {
                        let len = loc.size as usize;
                        ranges.push(ReadRange {
                            file_offset: loc.addr,
                            len,
                            dst_offset: raw,
                        });
                        raw_len = raw_len
                            .checked_add(len)
                            .ok_or_else(|| usage(format!("{}: request too large", self.obj)))?;
                    }
                    jobs.push(Job {
                        t: ti,
                        i,
                        j,
                        k,
                        loc,
                        raw,
                    });
                }
            }
        }
        let mut raw = tiledio_io::try_alloc_zeroed(raw_len, &format!("{}: raw chunks", self.obj))?;
        if !ranges.is_empty() {
            self.file.fh.read_ranges(&ranges, Target::Host(&mut raw))?;
        }
        let view = DisjointBytes::new(out);
        let full_frames = c1 == self.h && c2 == self.w && rows.start == 0 && rows.end == self.h;
        jobs.par_iter().try_for_each_init(
            || (Vec::new(), [Vec::new(), Vec::new()]),
            |(scratch, tmp), job| -> Result<()> {
                let f0 = frames.start.max(job.i * c0);
                let f1 = frames.end.min((job.i + 1) * c0);
                let r0 = rows.start.max(job.j * c1);
                let r1 = rows.end.min((job.j + 1) * c1);
                let col = job.k * c2;
                let cols = c2.min(self.w - col);
                let dst_of =
                    |f: u64, r: usize| ((f - frames.start) as usize * nrows + (r - rows.start)) * rb + col * es;
                let internal =
                    |e: tiledio_io::OutOfBounds| chunk_err(&self.file, &self.ds, job.t, job.loc.addr, e.to_string());
                if job.loc.addr == UNDEF {
                    for f in f0..f1 {
                        for r in r0..r1 {
                            // SAFETY: chunks partition the array: this (frame, row, column
                            // range) belongs to this chunk alone.
                            let seg = unsafe { view.slice_mut(dst_of(f, r), cols * es) }.map_err(internal)?;
                            self.fill(seg);
                        }
                    }
                    return Ok(());
                }
                let src = &raw[job.raw..job.raw + job.loc.size as usize];
                let decode = |o: &mut [u8], tmp: &mut [Vec<u8>; 2]| {
                    self.pipeline
                        .decode(src, job.loc.mask, o, tmp)
                        .map_err(|m| chunk_err(&self.file, &self.ds, job.t, job.loc.addr, m))
                };
                if full_frames && f0 == job.i * c0 && f1 == (job.i + 1) * c0 {
                    // whole frames: decode straight into the output
                    // SAFETY: these frames belong to this chunk alone.
                    let o = unsafe { view.slice_mut(dst_of(f0, 0), cb) }.map_err(internal)?;
                    return decode(o, tmp);
                }
                scratch.resize(cb, 0);
                decode(scratch, tmp)?;
                for f in f0..f1 {
                    for r in r0..r1 {
                        let s = (((f - job.i * c0) as usize * c1 + (r - job.j * c1)) * c2) * es;
                        // SAFETY: as above, this segment belongs to this chunk alone.
                        let seg = unsafe { view.slice_mut(dst_of(f, r), cols * es) }.map_err(internal)?;
                        seg.copy_from_slice(&scratch[s..s + cols * es]);
                    }
                }
                Ok(())
            },
        )
    }
}
