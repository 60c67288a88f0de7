//! The [`FrameStore`] trait and the uncompressed stores: raw stacks, NumPy `.npy`, Zarr.

use crate::error::{Result, format_err, unsupported, usage};
use std::ops::Range;
use std::path::{Path, PathBuf};
use tiledio_io::{ElementType, FileHandle, ReadRange, Target};

/// A stack of 2-D detector frames `(N, H, W)` read by frame index into host or GPU memory.
///
/// Every store reduces a request to byte ranges of its file(s) and reads them with one
/// [`FileHandle::read_ranges`] call per file (many frames in flight). Uncompressed stores read
/// only the rows asked for, one contiguous range per frame; compressed stores (HDF5 with
/// bitshuffle-LZ4 or LZ4) read whole chunks raw in one batch and decode them in parallel.
///
/// ```
/// use tiledio_ptycho::{FrameStore, RawLayout, RawStore};
/// use tiledio_io::ElementType;
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("stack.raw");
/// // 3 frames of 2x4 u8 after a 16-byte header
/// let mut bytes = vec![0xffu8; 16];
/// bytes.extend(0..24u8);
/// std::fs::write(&path, &bytes)?;
/// let s = RawStore::open(&path, RawLayout::new(16, (2, 4), ElementType::U8))?;
/// assert_eq!((s.frames(), s.shape()), (3, (2, 4)));
/// let mut dst = vec![0u8; 2 * 4];
/// s.read_frames(1..3, Some(1..2), (&mut dst).into())?; // row 1 of frames 1 and 2
/// assert_eq!(dst, [12, 13, 14, 15, 20, 21, 22, 23]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait FrameStore: Send + Sync + std::fmt::Debug {
    /// The store's name for messages (a path, `FILE.h5:/entry/data/data`).
    fn name(&self) -> String;

    /// The number of frames `N`.
    fn frames(&self) -> u64;

    /// The frame shape `(H, W)`.
    fn shape(&self) -> (usize, usize);

    /// The element type (native byte order in memory).
    fn dtype(&self) -> ElementType;

    /// Whether reading a band of rows costs less than reading the whole frame (uncompressed
    /// stores); compressed stores decode whole chunks anyway.
    fn reads_rows(&self) -> bool {
        true
    }

    /// Reads rows `rows` (all when `None`) of frames `frames` into `dst`, frame after frame,
    /// row-major: `frames.len() × rows.len() × W` elements. `dst` may be longer.
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] for frames or rows out of range or a short destination;
    /// [`crate::PtychoError::Io`] from the read; [`crate::PtychoError::Chunk`] for a chunk that
    /// does not decode.
    fn read_frames(&self, frames: Range<u64>, rows: Option<Range<usize>>, dst: Target<'_>) -> Result<()>;

    /// Bytes of one whole frame.
    fn frame_bytes(&self) -> usize {
        let (h, w) = self.shape();
        h * w * self.dtype().size()
    }

    /// [`FrameStore::read_frames`] into a new host vector (checked against the memory budget).
    ///
    /// # Errors
    /// As [`FrameStore::read_frames`].
    fn read_frames_to_vec(&self, frames: Range<u64>, rows: Option<Range<usize>>) -> Result<Vec<u8>> {
        let n = request_bytes(self, &frames, rows.as_ref())?;
        let mut v = tiledio_io::try_alloc_zeroed(n, &format!("{}: frames {frames:?}", self.name()))?;
        self.read_frames(frames, rows, Target::Host(&mut v))?;
        Ok(v)
    }

    /// Reads frames into a new GPU buffer.
    ///
    /// # Errors
    /// As [`FrameStore::read_frames`]; [`crate::PtychoError::Io`] without a GPU.
    fn read_frames_to_device(
        &self,
        frames: Range<u64>,
        rows: Option<Range<usize>>,
    ) -> Result<tiledio_io::gpu::DeviceBuffer> {
        let n = request_bytes(self, &frames, rows.as_ref())?;
        let mut d = tiledio_io::gpu::DeviceBuffer::new(n.max(1))?;
        self.read_frames(frames, rows, Target::Device(&mut d))?;
        Ok(d)
    }
}

/// Checks a request against a store and returns its size in bytes.
pub(crate) fn request_bytes<S: FrameStore + ?Sized>(
    s: &S,
    frames: &Range<u64>,
    rows: Option<&Range<usize>>,
) -> Result<usize> {
    let (h, w) = s.shape();
    if frames.start > frames.end || frames.end > s.frames() {
        return Err(usage(format!(
            "{}: frames {}..{} outside 0..{}",
            s.name(),
            frames.start,
            frames.end,
            s.frames()
        )));
    }
    let nrows = match rows {
        Some(r) if r.start > r.end || r.end > h => {
            return Err(usage(format!(
                "{}: rows {}..{} outside 0..{h}",
                s.name(),
                r.start,
                r.end
            )));
        }
        Some(r) => r.len(),
        None => h,
    };
    usize::try_from(frames.end - frames.start)
        .ok()
        .and_then(|n| n.checked_mul(nrows))
        .and_then(|v| v.checked_mul(w))
        .and_then(|v| v.checked_mul(s.dtype().size()))
        .ok_or_else(|| usage(format!("{}: request of {frames:?} overflows", s.name())))
}

/// [`request_bytes`], and a destination that holds them: the checks every
/// [`FrameStore::read_frames`] starts with. Returns the rows to read (all when `rows` is `None`).
pub(crate) fn checked_request<S: FrameStore + ?Sized>(
    s: &S,
    frames: &Range<u64>,
    rows: Option<Range<usize>>,
    dst: &Target<'_>,
) -> Result<Range<usize>> {
    let n = request_bytes(s, frames, rows.as_ref())?;
    if target_len(dst) < n {
        return Err(usage(format!(
            "{}: destination of {} bytes for {n}",
            s.name(),
            target_len(dst)
        )));
    }
    Ok(rows.unwrap_or(0..s.shape().0))
}

/// The [`FrameStore`] getters of a store that keeps its geometry in fields `name: String`,
/// `frames: u64`, `shape: (usize, usize)` and `dtype: ElementType` (written inside the impl).
macro_rules! stack_geometry {
    () => {
        fn name(&self) -> String {
            self.name.clone()
        }
        fn frames(&self) -> u64 {
            self.frames
        }
        fn shape(&self) -> (usize, usize) {
            self.shape
        }
        fn dtype(&self) -> ElementType {
            self.dtype
        }
    };
}
pub(crate) use stack_geometry;

pub(crate) fn target_len(t: &Target<'_>) -> usize {
    match t {
        Target::Host(b) => b.len(),
        Target::Device(d) => d.len(),
    }
}

/// How a raw stack lies in its file: a header, then frames at a fixed stride.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLayout {
    /// Bytes before the first frame.
    pub header: u64,
    /// Frame shape `(H, W)`.
    pub shape: (usize, usize),
    /// Element type (little-endian in the file).
    pub dtype: ElementType,
    /// Bytes from one frame's start to the next (`None` = the frame size).
    pub stride: Option<u64>,
    /// Frame count (`None` = as many whole frames as the file holds).
    pub frames: Option<u64>,
}

impl RawLayout {
    /// Frames of `shape` and `dtype` back to back after `header` bytes.
    ///
    /// ```
    /// let l = tiledio_ptycho::RawLayout::new(0, (2048, 2048), tiledio_io::ElementType::U16);
    /// assert_eq!(l.stride, None);
    /// ```
    pub fn new(header: u64, shape: (usize, usize), dtype: ElementType) -> RawLayout {
        RawLayout {
            header,
            shape,
            dtype,
            stride: None,
            frames: None,
        }
    }
}

/// Frames at a fixed stride in one file: raw stacks, and `.npy` through [`NpyStore`].
#[derive(Debug)]
pub struct RawStore {
    fh: FileHandle,
    name: String,
    header: u64,
    shape: (usize, usize),
    dtype: ElementType,
    stride: u64,
    frames: u64,
}

impl RawStore {
    /// Opens a raw stack (a regular file only).
    ///
    /// # Errors
    /// [`crate::PtychoError::Io`] if the file cannot be opened;
    /// [`crate::PtychoError::Format`] if the layout does not fit the file (frames past its end,
    /// a stride shorter than a frame, sizes that overflow).
    pub fn open(path: impl AsRef<Path>, layout: RawLayout) -> Result<RawStore> {
        let fh = FileHandle::open(path.as_ref())?;
        Self::with_handle(fh, layout)
    }

    pub(crate) fn with_handle(fh: FileHandle, l: RawLayout) -> Result<RawStore> {
        let path = fh.path().to_path_buf();
        let (h, w) = l.shape;
        let fbytes = h
            .checked_mul(w)
            .and_then(|v| v.checked_mul(l.dtype.size()))
            .filter(|&v| v > 0)
            .ok_or_else(|| format_err(&path, format!("frame shape {h}x{w} is empty or overflows")))?
            as u64;
        let stride = l.stride.unwrap_or(fbytes);
        if stride < fbytes {
            return Err(format_err(
                &path,
                format!("stride {stride} is shorter than a frame ({fbytes} bytes)"),
            ));
        }
        let len = fh.len();
        let avail = len.checked_sub(l.header).ok_or_else(|| {
            format_err(
                &path,
                format!("header of {} bytes is longer than the file ({len})", l.header),
            )
        })?;
        // whole frames: the last one needs only its own bytes, not a full stride
        let fit = if avail < fbytes {
            0
        } else {
            (avail - fbytes) / stride + 1
        };
        let frames = match l.frames {
            Some(n) if n > fit => {
                return Err(format_err(
                    &path,
                    format!(
                        "{n} frames of {fbytes} bytes (stride {stride}) after byte {} do not fit {len} bytes",
                        l.header
                    ),
                ));
            }
            Some(n) => n,
            None => fit,
        };
        if usize::try_from(fbytes).is_err() {
            return Err(format_err(&path, "frame larger than the address space"));
        }
        Ok(RawStore {
            name: path.display().to_string(),
            fh,
            header: l.header,
            shape: l.shape,
            dtype: l.dtype,
            stride,
            frames,
        })
    }

    /// The file offset of row `row` of frame `i`.
    pub fn row_offset(&self, i: u64, row: usize) -> u64 {
        self.header + i * self.stride + (row * self.shape.1 * self.dtype.size()) as u64
    }
}

impl FrameStore for RawStore {
    stack_geometry!();
    fn read_frames(&self, frames: Range<u64>, rows: Option<Range<usize>>, dst: Target<'_>) -> Result<()> {
        let rows = checked_request(self, &frames, rows, &dst)?;
        let len = rows.len() * self.shape.1 * self.dtype.size();
        let ranges: Vec<ReadRange> = (frames.start..frames.end)
            .enumerate()
            .map(|(k, i)| ReadRange {
                file_offset: self.row_offset(i, rows.start),
                len,
                dst_offset: k * len,
            })
            .collect();
        self.fh.read_ranges(&ranges, dst)?;
        Ok(())
    }
}

/// A NumPy `.npy` file of shape `(N, H, W)` (or `(H, W)`: one frame), C order, little-endian
/// or single-byte elements. The header is parsed strictly: magic, version 1/2/3, a dict with
/// exactly `descr`, `fortran_order: False` and `shape`.
///
/// ```
/// use tiledio_ptycho::{FrameStore, NpyStore};
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("a.npy");
/// let mut f = b"\x93NUMPY\x01\x00".to_vec();
/// let dict = "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 1, 3), }";
/// let mut header = dict.to_string();
/// while (10 + header.len() + 1) % 64 != 0 { header.push(' '); }
/// header.push('\n');
/// f.extend((header.len() as u16).to_le_bytes());
/// f.extend(header.as_bytes());
/// f.extend((0..6u16).flat_map(|v| v.to_le_bytes()));
/// std::fs::write(&path, f)?;
/// let s = NpyStore::open(&path)?;
/// assert_eq!((s.frames(), s.shape()), (2, (1, 3)));
/// assert_eq!(s.read_frames_to_vec(1..2, None)?, [3, 0, 4, 0, 5, 0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct NpyStore {
    raw: RawStore,
}

/// A parsed `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: ElementType,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Byte offset of the data.
    pub data_offset: u64,
}

/// Parses the start of a `.npy` file (`bytes` must hold the whole header).
///
/// ```
/// let e = tiledio_ptycho::parse_npy_header(std::path::Path::new("x.npy"), b"\x93NUMPX\x01\x00").unwrap_err();
/// assert!(e.to_string().contains("magic"));
/// ```
///
/// # Errors
/// [`crate::PtychoError::Format`] for anything but a well-formed header;
/// [`crate::PtychoError::Unsupported`] for big-endian, Fortran order or other types.
pub fn parse_npy_header(path: &Path, bytes: &[u8]) -> Result<NpyHeader> {
    let bad = |m: String| format_err(path, m);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (bad magic)".into()));
    }
    let (hlen, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated .npy header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(format!(".npy version {v}.{} is not 1, 2 or 3", bytes[7]))),
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad(format!(".npy header of {hlen} bytes runs past the file")))?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad(".npy header is not text".into()))?;
    let t = text.trim_end_matches([' ', '\n', '\x00']).trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad(format!(".npy header is not a dict: {t:.80}")))?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = quoted(rest).ok_or_else(|| bad(format!("bad .npy header key at: {rest:.40}")))?;
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| bad(format!("missing ':' after '{key}' in the .npy header")))?
            .trim_start();
        let after = match key {
            "descr" => {
                let (v, a) = quoted(after).ok_or_else(|| bad("bad .npy descr".into()))?;
                descr = Some(v.to_string());
                a
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("False") {
                    fortran = Some(false);
                    a
                } else if let Some(a) = after.strip_prefix("True") {
                    fortran = Some(true);
                    a
                } else {
                    return Err(bad("fortran_order is neither True nor False".into()));
                }
            }
            "shape" => {
                let close = after.find(')').ok_or_else(|| bad("unterminated .npy shape".into()))?;
                let body = after
                    .strip_prefix('(')
                    .ok_or_else(|| bad("the .npy shape is not a tuple".into()))?;
                let body = &body[..close - 1];
                let dims: std::result::Result<Vec<u64>, _> = body
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim_end_matches('L').parse::<u64>())
                    .collect();
                shape = Some(dims.map_err(|_| bad(format!("bad .npy shape ({body})")))?);
                &after[close + 1..]
            }
            other => return Err(bad(format!("unexpected key '{other}' in the .npy header"))),
        };
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(bad(".npy header lacks descr, fortran_order or shape".into()));
    };
    if fortran {
        return Err(unsupported(path, "Fortran-order .npy"));
    }
    let (order, name) = descr.split_at(descr.len().min(1));
    let dtype = match (order, name) {
        ("<" | "|" | "=", n) => ElementType::ALL.into_iter().find(|t| t.npy_descr()[1..] == *n),
        _ => None,
    }
    .filter(|t| order != "|" || t.size() == 1)
    .ok_or_else(|| {
        unsupported(
            path,
            format!(".npy dtype '{descr}' (little-endian integers and floats only)"),
        )
    })?;
    Ok(NpyHeader {
        dtype,
        shape,
        data_offset: end as u64,
    })
}

fn quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let e = body.find(q)?;
    Some((&body[..e], &body[e + 1..]))
}

impl NpyStore {
    /// Opens a `.npy` file (a regular file only) and parses its header.
    ///
    /// # Errors
    /// [`crate::PtychoError::Io`], [`crate::PtychoError::Format`] (bad header, data shorter than
    /// the shape, not 2-D or 3-D), [`crate::PtychoError::Unsupported`].
    pub fn open(path: impl AsRef<Path>) -> Result<NpyStore> {
        let path = path.as_ref();
        let fh = FileHandle::open(path)?;
        let mut head = vec![0u8; fh.len().min(1 << 16) as usize];
        fh.read_at(0, &mut head)?;
        let h = parse_npy_header(path, &head)?;
        let (n, hh, ww) = match h.shape[..] {
            [n, hh, ww] => (n, hh, ww),
            [hh, ww] => (1, hh, ww),
            _ => {
                return Err(format_err(
                    path,
                    format!("shape {:?} is not (N, H, W) or (H, W)", h.shape),
                ));
            }
        };
        let dim = |v: u64| usize::try_from(v).map_err(|_| format_err(path, format!("dimension {v} too large")));
        let mut layout = RawLayout::new(h.data_offset, (dim(hh)?, dim(ww)?), h.dtype);
        layout.frames = Some(n);
        Ok(NpyStore {
            raw: RawStore::with_handle(fh, layout)?,
        })
    }
}

impl FrameStore for NpyStore {
    fn name(&self) -> String {
        self.raw.name()
    }
    fn frames(&self) -> u64 {
        self.raw.frames()
    }
    fn shape(&self) -> (usize, usize) {
        self.raw.shape()
    }
    fn dtype(&self) -> ElementType {
        self.raw.dtype()
    }
    fn read_frames(&self, frames: Range<u64>, rows: Option<Range<usize>>, dst: Target<'_>) -> Result<()> {
        self.raw.read_frames(frames, rows, dst)
    }
}

/// A 3-D Zarr array `(N, H, W)` (v2 or v3, any chunking and codec `tiledio-zarr` reads), read
/// by region: raw chunks go straight through staging, compressed ones are decoded in parallel.
#[derive(Debug)]
pub struct ZarrStore {
    path: PathBuf,
    array: tiledio_zarr::ZarrArray,
    dtype: ElementType,
}

impl ZarrStore {
    /// Opens a Zarr array folder.
    ///
    /// # Errors
    /// [`crate::PtychoError::Zarr`] for a missing or malformed array;
    /// [`crate::PtychoError::Format`] if it is not 3-D or its type is not a plain number.
    pub fn open(path: impl AsRef<Path>) -> Result<ZarrStore> {
        let path = path.as_ref().to_path_buf();
        let array = tiledio_zarr::ZarrArray::open(&path)?;
        if array.shape().len() != 3 {
            return Err(format_err(
                &path,
                format!("Zarr array of shape {:?} is not (N, H, W)", array.shape()),
            ));
        }
        let dtype = array
            .data_type()
            .ok_or_else(|| unsupported(&path, "Zarr data type without an element type"))?;
        for &d in &array.shape()[1..] {
            usize::try_from(d).map_err(|_| format_err(&path, format!("frame dimension {d} too large")))?;
        }
        Ok(ZarrStore { path, array, dtype })
    }
}

impl FrameStore for ZarrStore {
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn frames(&self) -> u64 {
        self.array.shape()[0]
    }
    fn shape(&self) -> (usize, usize) {
        (self.array.shape()[1] as usize, self.array.shape()[2] as usize)
    }
    fn dtype(&self) -> ElementType {
        self.dtype
    }
    fn reads_rows(&self) -> bool {
        self.array.is_raw()
    }
    fn read_frames(&self, frames: Range<u64>, rows: Option<Range<usize>>, dst: Target<'_>) -> Result<()> {
        let n = request_bytes(self, &frames, rows.as_ref())?;
        let rows = rows.unwrap_or(0..self.shape().0);
        let region = tiledio_io::Region::new(
            &[frames.start as i64, rows.start as i64, 0],
            &[frames.end - frames.start, rows.len() as u64, self.shape().1 as u64],
        );
        let dst = match dst {
            Target::Host(b) if b.len() >= n => Target::Host(&mut b[..n]),
            Target::Device(d) if d.len() == n => Target::Device(d),
            Target::Device(d) if d.len() > n => {
                // SAFETY: a non-owning view of the first n bytes of a live allocation, dropped
                // before `d` is used again.
                let mut view = unsafe { tiledio_io::gpu::DeviceBuffer::from_raw_parts(d.device_ptr(), n) };
                self.array
                    .read_region(&region, tiledio_io::Border::Reject, Target::Device(&mut view))?;
                return Ok(());
            }
            other => {
                return Err(usage(format!(
                    "{}: destination of {} bytes for {n}",
                    self.name(),
                    target_len(&other)
                )));
            }
        };
        self.array.read_region(&region, tiledio_io::Border::Reject, dst)?;
        Ok(())
    }
}
