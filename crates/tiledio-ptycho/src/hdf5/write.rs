//! Writing HDF5: one file holding one 3-D dataset of frames `(N, H, W)` under nested groups
//! ([`Hdf5Writer`]), or a group of external links, a DECTRIS Eiger-like master
//! ([`write_hdf5_links`]).
//!
//! The format is the oldest every HDF5 reader knows (what libhdf5 writes with
//! `libver="earliest"`): superblock version 0 (offsets and lengths of 8 bytes), version-1 object
//! headers, symbol-table groups (local heap, v1 B-tree node, one symbol table node), the data
//! layout message version 3 with one contiguous block or one chunk per frame indexed by a v1
//! B-tree (type 1), the filter pipeline message version 1 for LZ4 (32004) and bitshuffle-LZ4
//! (32008). A link group is a new-style group (link info, group info and link messages in its
//! header), as libhdf5 writes a group holding external links in a version-0 file.
//!
//! On disk: the superblock at 0, the frames from byte [`DATA_START`] as they are pushed, then
//! the metadata (chunk B-tree, object headers, groups), written with the superblock by
//! [`Hdf5Writer::finish`]. Every B-tree and symbol table node takes the full size libhdf5 reads
//! for it (2K entries). The file is written under a temporary name and renamed into place when
//! complete ([`FileWriter`]).

use crate::bslz4::{LZ4_BLOCK, encode_bitshuffle_lz4_into, encode_lz4_into};
use crate::error::{PtychoError, Result, usage};
use rayon::prelude::*;
use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use tiledio_io::{ElementType, FileWriter};

/// The undefined address.
const UNDEF: u64 = u64::MAX;
/// Where the frames start: one page after the superblock, so that contiguous frames of a whole
/// number of pages are page-aligned for direct reads.
const DATA_START: u64 = 4096;
/// Symbol table node capacity: 2 × the superblock's group leaf node K.
const GROUP_LEAF_K: u16 = 4;
/// Group B-tree node capacity: 2 × the superblock's group internal node K.
const GROUP_INTERNAL_K: u16 = 16;
/// Chunk B-tree node capacity: 2 × the indexed-storage K a version-0 superblock implies.
const CHUNK_K: usize = 32;
/// The longest group, dataset or link name accepted.
const MAX_NAME: usize = 1024;
/// The most links of one link group (each is one message of its object header).
const MAX_LINKS: usize = 4000;

/// How the frames of an [`Hdf5Writer`] are stored.
///
/// Parsed from `contiguous`, `chunked`, `lz4`, `bslz4` or `bslz4:BLOCK` (bitshuffle block in
/// elements):
///
/// ```
/// use tiledio_ptycho::Hdf5Layout;
/// assert_eq!("bslz4".parse::<Hdf5Layout>()?, Hdf5Layout::BitshuffleLz4 { block: 0 });
/// assert_eq!("bslz4:1024".parse::<Hdf5Layout>()?, Hdf5Layout::BitshuffleLz4 { block: 1024 });
/// assert!("gzip".parse::<Hdf5Layout>().is_err());
/// # Ok::<(), tiledio_ptycho::PtychoError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hdf5Layout {
    /// One block, frame after frame (uncompressed rows read straight from the file).
    Contiguous,
    /// One chunk `(1, H, W)` per frame, no filter.
    Chunked,
    /// One chunk per frame, LZ4 (filter 32004, client data: the block size, 1 MiB).
    Lz4,
    /// One chunk per frame, bitshuffle + LZ4 (filter 32008, client data `(0, 2, element size,
    /// block, 2)` as DECTRIS detectors write them).
    BitshuffleLz4 {
        /// Elements per bitshuffle block: a multiple of 8, or 0 for bitshuffle's default (8 KiB
        /// of elements, at least 128), the one the chunk header then records.
        block: usize,
    },
}

impl FromStr for Hdf5Layout {
    type Err = PtychoError;
    fn from_str(s: &str) -> Result<Hdf5Layout> {
        let bad = || {
            usage(format!(
                "HDF5 layout '{s}': contiguous, chunked, lz4, bslz4 or bslz4:BLOCK"
            ))
        };
        Ok(match s {
            "contiguous" => Hdf5Layout::Contiguous,
            "chunked" => Hdf5Layout::Chunked,
            "lz4" => Hdf5Layout::Lz4,
            "bslz4" => Hdf5Layout::BitshuffleLz4 { block: 0 },
            _ => {
                let block = s.strip_prefix("bslz4:").ok_or_else(bad)?.parse().map_err(|_| bad())?;
                Hdf5Layout::BitshuffleLz4 { block }
            }
        })
    }
}

/// An external link of a link group ([`write_hdf5_links`]): `name` in the group points to
/// `path` in the HDF5 file `file` (a name relative to the linking file's folder, as DECTRIS
/// masters write them, or an absolute path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hdf5ExternalLink {
    /// The link's name in its group (`data_000001`).
    pub name: String,
    /// The file it points into (`scan_data_000001.h5`).
    pub file: String,
    /// The object's path in that file (`/entry/data/data`).
    pub path: String,
}

/// Where one frame's chunk is.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    addr: u64,
    size: u32,
}

/// Writes an HDF5 file holding one dataset `(N, H, W)` of little-endian integers or IEEE floats,
/// frames pushed in order and written as they come ([`Hdf5Layout`]: one contiguous block, or
/// one chunk per frame, unfiltered, LZ4 or bitshuffle-LZ4, compressed in parallel), under
/// groups made from the dataset's path.
///
/// Memory is bounded by what one push holds, and 16 bytes per frame for the chunk index (about
/// 100 while [`Hdf5Writer::finish`] writes the chunk B-tree): the B-tree, object headers and
/// groups are written after the frames. The file is written under a temporary name beside the target and
/// renamed into place by `finish`: the target is complete or absent; a writer dropped without
/// `finish` (or after an error) removes its temporary file.
///
/// What it writes reads back with [`crate::Hdf5Store`], and with h5py (hdf5plugin for the
/// filters); see the module docs for the format.
///
/// ```
/// use tiledio_io::ElementType;
/// use tiledio_ptycho::{FrameStore, Hdf5Layout, Hdf5Store, Hdf5Writer};
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("frames.h5");
/// let (h, w) = (16, 24);
/// let mut wr = Hdf5Writer::create(&path, "/entry/data/data", (h, w), ElementType::U16,
///     Hdf5Layout::BitshuffleLz4 { block: 0 })?;
/// for i in 0..5u16 {
///     let frame: Vec<u8> = (0..(h * w) as u16).flat_map(|v| (v % 50 + i).to_ne_bytes()).collect();
///     wr.push_frames(&frame)?;
/// }
/// assert!(!path.exists()); // written under a temporary name until finished
/// wr.finish()?;
/// let s = Hdf5Store::open(&path, "/entry/data/data")?;
/// assert_eq!((s.frames(), s.shape(), s.dtype()), (5, (16, 24), ElementType::U16));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Hdf5Writer {
    file: FileWriter,
    /// The dataset's path, in parts.
    dataset: Vec<String>,
    shape: (usize, usize),
    dtype: ElementType,
    layout: Hdf5Layout,
    frame_bytes: usize,
    frames: u64,
    /// The file offset of the next frame's bytes.
    pos: u64,
    /// Chunked layouts: each frame's chunk.
    chunks: Vec<Chunk>,
    /// Encoded chunks of one push, back to back.
    buf: Vec<u8>,
    /// A push failed: the file is not finished.
    failed: bool,
}

impl Hdf5Writer {
    /// Starts writing `path` (replaced when it exists; a target that is not a regular file is
    /// refused) with dataset `dataset` (a path such as `/entry/data/data`: its groups are made)
    /// of frames `H × W` of `dtype` stored as `layout`.
    ///
    /// # Errors
    /// [`PtychoError::Usage`] for a dataset path without a name, a name that is empty, `.`,
    /// longer than 1024 bytes or holds a NUL, a frame with no pixel, frames whose size
    /// overflows (or a chunk over 4 GiB), an element type other than integers and IEEE floats,
    /// a bitshuffle block that is not a multiple of 8; [`PtychoError::Io`] when the temporary
    /// file cannot be created.
    pub fn create(
        path: impl AsRef<Path>,
        dataset: &str,
        frame_shape: (usize, usize),
        dtype: ElementType,
        layout: Hdf5Layout,
    ) -> Result<Hdf5Writer> {
        let path = path.as_ref();
        let ctx = |m: String| usage(format!("{}: {m}", path.display()));
        let parts = components(dataset).map_err(ctx)?;
        datatype_message(dtype).map_err(ctx)?;
        let (h, w) = frame_shape;
        let es = dtype.size();
        let frame_bytes = h
            .checked_mul(w)
            .and_then(|v| v.checked_mul(es))
            .filter(|&v| v > 0 && u64::try_from(v).is_ok())
            .ok_or_else(|| ctx(format!("frames of {h}x{w} {dtype}")))?;
        if layout != Hdf5Layout::Contiguous && u32::try_from(frame_bytes).is_err() {
            return Err(ctx(format!(
                "chunks of {frame_bytes} bytes (one {h}x{w} frame): HDF5 chunks are under 4 GiB"
            )));
        }
        if let Hdf5Layout::BitshuffleLz4 { block } = layout
            && (!block.is_multiple_of(8) || block.checked_mul(es).is_none_or(|b| b > 1 << 30))
        {
            return Err(ctx(format!(
                "bitshuffle block of {block} elements (a multiple of 8, at most 1 GiB)"
            )));
        }
        let file = FileWriter::create(path)?;
        Ok(Hdf5Writer {
            file,
            dataset: parts,
            shape: frame_shape,
            dtype,
            layout,
            frame_bytes,
            frames: 0,
            pos: DATA_START,
            chunks: Vec::new(),
            buf: Vec::new(),
            failed: false,
        })
    }

    /// The file being written (its final path).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Appends one or more whole frames: `frames` holds `k × H × W` native-endian elements
    /// (stored little-endian), C order. Chunks are compressed in parallel and written in one
    /// write.
    ///
    /// # Errors
    /// [`PtychoError::Usage`] for bytes that are not whole frames, a compressed chunk over
    /// 4 GiB, a file that would pass 2⁶⁴ bytes, or a writer whose earlier push failed;
    /// [`PtychoError::Io`] from the write (the writer is then unusable: drop it).
    pub fn push_frames(&mut self, frames: &[u8]) -> Result<()> {
        if self.failed {
            return Err(self.err("an earlier write failed; the file cannot be finished"));
        }
        if !frames.len().is_multiple_of(self.frame_bytes) {
            return Err(self.err(format!(
                "{} bytes is not a whole number of {}x{} {} frames",
                frames.len(),
                self.shape.0,
                self.shape.1,
                self.dtype
            )));
        }
        let r = self.push(frames);
        self.failed = r.is_err();
        r
    }

    fn err(&self, m: impl std::fmt::Display) -> PtychoError {
        usage(format!("{}: {m}", self.file.path().display()))
    }

    fn push(&mut self, frames: &[u8]) -> Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let fb = self.frame_bytes;
        let es = self.dtype.size();
        let k = (frames.len() / fb) as u64;
        let data = little_endian(frames, es);
        let encoded: Option<&[u8]> = match self.layout {
            Hdf5Layout::Contiguous | Hdf5Layout::Chunked => None,
            Hdf5Layout::Lz4 | Hdf5Layout::BitshuffleLz4 { .. } => {
                let layout = self.layout;
                let chunks: Vec<Vec<u8>> = data
                    .par_chunks(fb)
                    .map(|f| -> std::result::Result<Vec<u8>, String> {
                        let mut out = Vec::with_capacity(f.len() / 2 + 64);
                        match layout {
                            Hdf5Layout::BitshuffleLz4 { block } => encode_bitshuffle_lz4_into(f, es, block, &mut out)?,
                            _ => encode_lz4_into(f, &mut out),
                        }
                        Ok(out)
                    })
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| self.err(format!("frame {}: {e}", self.frames)))?;
                self.buf.clear();
                let mut at = self.pos;
                for c in &chunks {
                    let size = u32::try_from(c.len())
                        .map_err(|_| self.err(format!("a compressed chunk of {} bytes", c.len())))?;
                    self.chunks.push(Chunk { addr: at, size });
                    at = at
                        .checked_add(c.len() as u64)
                        .ok_or_else(|| self.err("the file would pass 2^64 bytes"))?;
                    self.buf.extend_from_slice(c);
                }
                Some(&self.buf[..])
            }
        };
        let bytes = encoded.unwrap_or(&data[..]);
        let end = self
            .pos
            .checked_add(bytes.len() as u64)
            .ok_or_else(|| self.err("the file would pass 2^64 bytes"))?;
        if self.layout == Hdf5Layout::Chunked {
            self.chunks.extend((0..k).map(|i| Chunk {
                addr: self.pos + i * fb as u64,
                size: fb as u32,
            }));
        }
        self.file.write_at(self.pos, bytes)?;
        self.pos = end;
        self.frames += k;
        Ok(())
    }

    /// Writes the metadata after the frames and the superblock, and renames the file into
    /// place; returns its size in bytes.
    ///
    /// # Errors
    /// [`PtychoError::Usage`] for a writer whose push failed or metadata that would pass 2⁶⁴
    /// bytes; [`PtychoError::Io`] from the write or the rename (the temporary file is removed).
    pub fn finish(self) -> Result<u64> {
        if self.failed {
            return Err(self.err("an earlier write failed; the file cannot be finished"));
        }
        let (h, w) = (self.shape.0 as u64, self.shape.1 as u64);
        let es = self.dtype.size() as u64;
        let n = self.frames;
        let base = self
            .pos
            .checked_next_multiple_of(8)
            .ok_or_else(|| self.err("the file would pass 2^64 bytes"))?;
        let mut meta = Meta { base, buf: Vec::new() };
        let chunked = self.layout != Hdf5Layout::Contiguous;
        let layout = if chunked {
            let btree = if n == 0 {
                UNDEF
            } else {
                chunk_btree(&mut meta, &self.chunks, [n, h, w, es]).map_err(|m| self.err(m))?
            };
            let mut m = vec![3u8, 2, 4];
            m.extend(btree.to_le_bytes());
            for d in [1, h, w, es] {
                m.extend((d as u32).to_le_bytes());
            }
            m
        } else {
            let mut m = vec![3u8, 1];
            m.extend(if n == 0 { UNDEF } else { DATA_START }.to_le_bytes());
            m.extend((self.pos - DATA_START).to_le_bytes()); // n frames
            m
        };
        // dataspace version 1: (N, H, W); chunked data may grow along N
        let mut space = vec![1u8, 3, 1, 0, 0, 0, 0, 0];
        for d in [n, h, w] {
            space.extend(d.to_le_bytes());
        }
        for d in [if chunked { UNDEF } else { n }, h, w] {
            space.extend(d.to_le_bytes());
        }
        // fill value version 2: allocated late (contiguous) or incrementally (chunks), written
        // if set, the default value (zeros)
        let fill = vec![2u8, if chunked { 3 } else { 2 }, 2, 1, 0, 0, 0, 0];
        let mut msgs = vec![
            Msg::new(0x0001, 0, space),
            Msg::new(0x0003, 1, datatype_message(self.dtype).map_err(|m| self.err(m))?),
            Msg::new(0x0005, 1, fill),
        ];
        match self.layout {
            Hdf5Layout::Lz4 => msgs.push(Msg::new(0x000B, 1, pipeline(32004, "lz4", &[LZ4_BLOCK as u32]))),
            Hdf5Layout::BitshuffleLz4 { block } => msgs.push(Msg::new(
                0x000B,
                1,
                pipeline(32008, "bitshuffle", &[0, 2, es as u32, block as u32, 2]),
            )),
            Hdf5Layout::Contiguous | Hdf5Layout::Chunked => {}
        }
        msgs.push(Msg::new(0x0008, 0, layout));
        let (eof, sb) = (|| -> std::result::Result<_, String> {
            let oh = meta.push(&object_header(&msgs)?)?;
            let (name, groups) = self.dataset.split_last().ok_or("a dataset path without a name")?;
            let root = groups_above(&mut meta, groups, name, Child::Object(oh))?;
            let eof = meta.end()?;
            Ok((eof, superblock(eof, &root)))
        })()
        .map_err(|m| self.err(m))?;
        self.file.write_at(meta.base, &meta.buf[..])?;
        self.file.write_at(0, &sb[..])?;
        self.file.finish(false)?;
        Ok(eof)
    }
}

/// Writes an HDF5 file whose group `group` (a path such as `/entry/data`; the groups above it
/// are made) holds the external links `links`, in order; returns the file's size. With links
/// `data_000001`, `data_000002`, … to `/entry/data/data` of the data files this is a DECTRIS
/// Eiger-like master, which [`crate::Hdf5Store::open_eiger_master`] reads as one stack (and
/// h5py follows, looking for the files beside the master first).
///
/// The links are link messages of the group's header (compact storage, whatever their number:
/// the group info message records a compact limit of at least that many), so readers that
/// do not read dense link storage read them too.
///
/// ```
/// use tiledio_io::ElementType;
/// use tiledio_ptycho::{FrameStore, Hdf5ExternalLink, Hdf5Layout, Hdf5Store, Hdf5Writer, write_hdf5_links};
/// # let dir = tempfile::tempdir()?;
/// let mut links = Vec::new();
/// for i in 1..=2 {
///     let file = format!("scan_data_{i:06}.h5");
///     let mut w = Hdf5Writer::create(dir.path().join(&file), "/entry/data/data", (4, 6), ElementType::U32,
///         Hdf5Layout::BitshuffleLz4 { block: 0 })?;
///     w.push_frames(&[i as u8; 3 * 4 * 6 * 4])?; // 3 frames
///     w.finish()?;
///     links.push(Hdf5ExternalLink { name: format!("data_{i:06}"), file, path: "/entry/data/data".into() });
/// }
/// let master = dir.path().join("scan_master.h5");
/// write_hdf5_links(&master, "/entry/data", &links)?;
/// let s = Hdf5Store::open_eiger_master(&master)?;
/// assert_eq!((s.frames(), s.datasets()), (6, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`PtychoError::Usage`] for a group path without a name, an invalid name (as
/// [`Hdf5Writer::create`]), two links of one name, a link without a file or path (or with a
/// NUL in them, or longer than 64 KiB together), more than 4000 links; [`PtychoError::Io`] from
/// the write (nothing is left at `path`).
pub fn write_hdf5_links(path: impl AsRef<Path>, group: &str, links: &[Hdf5ExternalLink]) -> Result<u64> {
    let path = path.as_ref();
    let ctx = |m: String| usage(format!("{}: {m}", path.display()));
    let parts = components(group).map_err(ctx)?;
    if links.len() > MAX_LINKS {
        return Err(ctx(format!("{} links (at most {MAX_LINKS})", links.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for l in links {
        check_name(&l.name).map_err(ctx)?;
        if !seen.insert(l.name.as_str()) {
            return Err(ctx(format!("two links named '{}'", l.name)));
        }
        if l.file.is_empty() || l.path.is_empty() || l.file.contains('\0') || l.path.contains('\0') {
            return Err(ctx(format!("link '{}' to '{}:{}'", l.name, l.file, l.path)));
        }
    }
    let mut meta = Meta {
        base: SUPERBLOCK_LEN as u64,
        buf: Vec::new(),
    };
    let (eof, sb) = (|| -> std::result::Result<_, String> {
        let g = link_group(&mut meta, links)?;
        let (name, groups) = parts.split_last().ok_or("a group path without a name")?;
        let root = groups_above(&mut meta, groups, name, Child::Object(g))?;
        let eof = meta.end()?;
        Ok((eof, superblock(eof, &root)))
    })()
    .map_err(ctx)?;
    let w = FileWriter::create(path)?;
    w.write_at(0, &sb[..])?;
    w.write_at(meta.base, &meta.buf[..])?;
    w.finish(false)?;
    Ok(eof)
}

/// The superblock's size (version 0, 8-byte offsets and lengths, with the root's entry).
const SUPERBLOCK_LEN: usize = 96;

/// Metadata placed from `base` on, every block at a multiple of 8 bytes.
struct Meta {
    base: u64,
    buf: Vec<u8>,
}

impl Meta {
    /// The address the next block gets.
    fn next(&self) -> std::result::Result<u64, String> {
        self.base
            .checked_add(self.buf.len().next_multiple_of(8) as u64)
            .ok_or_else(|| "the metadata would pass 2^64 bytes".to_string())
    }

    /// Places `b`; returns its address.
    fn push(&mut self, b: &[u8]) -> std::result::Result<u64, String> {
        let a = self.next()?;
        self.buf.resize(self.buf.len().next_multiple_of(8), 0);
        self.buf.extend_from_slice(b);
        self.end()?;
        Ok(a)
    }

    /// The end of the metadata: the file's size.
    fn end(&self) -> std::result::Result<u64, String> {
        self.base
            .checked_add(self.buf.len() as u64)
            .ok_or_else(|| "the metadata would pass 2^64 bytes".to_string())
    }
}

/// One object header message.
struct Msg {
    kind: u16,
    flags: u8,
    data: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u8, data: Vec<u8>) -> Msg {
        Msg { kind, flags, data }
    }
}

/// A version-1 object header holding `msgs`, each padded to a multiple of 8 bytes.
fn object_header(msgs: &[Msg]) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    for m in msgs {
        let size = m.data.len().next_multiple_of(8);
        let size16 = u16::try_from(size).map_err(|_| format!("an object header message of {size} bytes"))?;
        body.extend(m.kind.to_le_bytes());
        body.extend(size16.to_le_bytes());
        body.extend([m.flags, 0, 0, 0]);
        body.extend(&m.data);
        body.resize(body.len() + size - m.data.len(), 0);
    }
    let n = u16::try_from(msgs.len()).map_err(|_| format!("{} object header messages", msgs.len()))?;
    let size = u32::try_from(body.len()).map_err(|_| format!("an object header of {} bytes", body.len()))?;
    let mut oh = vec![1u8, 0];
    oh.extend(n.to_le_bytes());
    oh.extend(1u32.to_le_bytes()); // reference count
    oh.extend(size.to_le_bytes());
    oh.extend([0u8; 4]); // messages start 8-byte aligned
    oh.extend(body);
    Ok(oh)
}

/// A filter pipeline message (version 1) of one filter, applied always (not optional).
fn pipeline(id: u16, name: &str, cd: &[u32]) -> Vec<u8> {
    let name_len = (name.len() + 1).next_multiple_of(8);
    let mut m = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
    m.extend(id.to_le_bytes());
    m.extend((name_len as u16).to_le_bytes());
    m.extend(0u16.to_le_bytes()); // flags: mandatory
    m.extend((cd.len() as u16).to_le_bytes());
    m.extend(name.as_bytes());
    m.resize(m.len() + name_len - name.len(), 0);
    for v in cd {
        m.extend(v.to_le_bytes());
    }
    if cd.len() % 2 == 1 {
        m.extend([0u8; 4]);
    }
    m
}

/// The datatype message (version 1) of a little-endian integer or IEEE float.
fn datatype_message(dtype: ElementType) -> std::result::Result<Vec<u8>, String> {
    use ElementType as E;
    let size = dtype.size() as u32;
    let int = |signed: bool| {
        let mut m = vec![0x10u8, if signed { 0x08 } else { 0 }, 0, 0];
        m.extend(size.to_le_bytes());
        m.extend(0u16.to_le_bytes()); // bit offset
        m.extend((size as u16 * 8).to_le_bytes()); // precision
        m
    };
    // sign bit, exponent location and size, mantissa size, exponent bias
    let float = |(sign, exp_at, exp_bits, mant_bits, bias): (u8, u8, u8, u8, u32)| {
        // bit fields: little-endian, no padding, implied leading mantissa bit
        let mut m = vec![0x11u8, 0x20, sign, 0];
        m.extend(size.to_le_bytes());
        m.extend(0u16.to_le_bytes());
        m.extend((size as u16 * 8).to_le_bytes());
        m.extend([exp_at, exp_bits, 0, mant_bits]);
        m.extend(bias.to_le_bytes());
        m
    };
    Ok(match dtype {
        E::U8 | E::U16 | E::U32 | E::U64 => int(false),
        E::I8 | E::I16 | E::I32 | E::I64 => int(true),
        E::F32 => float((31, 23, 8, 23, 127)),
        E::F64 => float((63, 52, 11, 52, 1023)),
        other => return Err(format!("element type {other}: integers and IEEE floats are written")),
    })
}

/// Checks one name of a path or link.
fn check_name(n: &str) -> std::result::Result<(), String> {
    if n.is_empty() || n == "." || n.contains('\0') || n.contains('/') || n.len() > MAX_NAME {
        return Err(format!(
            "name '{n}' (not empty or '.', no '/' or NUL, at most {MAX_NAME} bytes)"
        ));
    }
    Ok(())
}

/// The parts of an object's path (`/entry/data/data` → `entry`, `data`, `data`).
fn components(path: &str) -> std::result::Result<Vec<String>, String> {
    let parts: Vec<String> = path.split('/').filter(|c| !c.is_empty()).map(str::to_string).collect();
    if parts.is_empty() {
        return Err(format!("'{path}' names no object (a path such as /entry/data/data)"));
    }
    if parts.len() > 32 {
        return Err(format!("'{path}' is more than 32 groups deep"));
    }
    for p in &parts {
        check_name(p).map_err(|e| format!("'{path}': {e}"))?;
    }
    Ok(parts)
}

/// Native-endian elements of `es` bytes as little-endian bytes.
fn little_endian(b: &[u8], es: usize) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "big") && es > 1 {
        Cow::Owned(b.chunks_exact(es).flat_map(|e| e.iter().rev().copied()).collect())
    } else {
        Cow::Borrowed(b)
    }
}

/// Writes the chunk B-tree (type 1) over `chunks` (chunk `i` is frame `i`) of a dataset of
/// `dims` = `(N, H, W, element size)`, nodes of at most 2K entries filled evenly, level by level
/// with their siblings linked; returns the root's address.
fn chunk_btree(meta: &mut Meta, chunks: &[Chunk], dims: [u64; 4]) -> std::result::Result<u64, String> {
    const KEY: usize = 4 + 4 + 4 * 8;
    const NODE: usize = 24 + 2 * CHUNK_K * 8 + (2 * CHUNK_K + 1) * KEY;
    /// A key: a chunk's stored size and its offset (filter mask 0: every filter applied).
    #[derive(Clone, Copy)]
    struct Key {
        size: u32,
        offs: [u64; 4],
    }
    let put_key = |b: &mut Vec<u8>, k: &Key| {
        b.extend(k.size.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        for o in k.offs {
            b.extend(o.to_le_bytes());
        }
    };
    let mut entries: Vec<(Key, u64)> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = Key {
                size: c.size,
                offs: [i as u64, 0, 0, 0],
            };
            (key, c.addr)
        })
        .collect();
    // the right key of the last chunk: its offset plus the chunk's size, in each dimension
    let right = Key { size: 0, offs: dims };
    let mut level = 0u8;
    loop {
        let m = entries.len();
        let nodes = m.div_ceil(2 * CHUNK_K).max(1);
        let first = meta.next()?;
        let addr = |j: usize| {
            (j as u64)
                .checked_mul(NODE as u64)
                .and_then(|o| first.checked_add(o))
                .ok_or_else(|| "the chunk B-tree would pass 2^64 bytes".to_string())
        };
        let mut parents = Vec::with_capacity(nodes);
        let mut start = 0;
        for j in 0..nodes {
            let cnt = m / nodes + usize::from(j < m % nodes);
            let mut b = Vec::with_capacity(NODE);
            b.extend(b"TREE");
            b.extend([1, level]);
            b.extend((cnt as u16).to_le_bytes());
            b.extend(if j > 0 { addr(j - 1)? } else { UNDEF }.to_le_bytes());
            b.extend(if j + 1 < nodes { addr(j + 1)? } else { UNDEF }.to_le_bytes());
            for (k, child) in &entries[start..start + cnt] {
                put_key(&mut b, k);
                b.extend(child.to_le_bytes());
            }
            put_key(&mut b, entries.get(start + cnt).map_or(&right, |e| &e.0));
            b.resize(NODE, 0);
            let at = meta.push(&b)?;
            debug_assert_eq!(Ok(at), addr(j));
            parents.push((entries[start].0, at));
            start += cnt;
        }
        if nodes == 1 {
            return Ok(parents[0].1);
        }
        entries = parents;
        level = level.checked_add(1).ok_or("a chunk B-tree of more than 255 levels")?;
    }
}

/// A symbol-table group's addresses: its header, and the B-tree and local heap its symbol table
/// entry caches.
#[derive(Clone, Copy, Debug)]
struct Group {
    header: u64,
    btree: u64,
    heap: u64,
}

/// What a group entry points to.
enum Child {
    Group(Group),
    /// Any other object's header (a dataset, a link group).
    Object(u64),
}

/// Writes a symbol-table group of at most 8 entries (one symbol table node): local heap, symbol
/// table node, B-tree node, object header.
fn symbol_group(meta: &mut Meta, mut entries: Vec<(String, Child)>) -> std::result::Result<Group, String> {
    const ENTRY: usize = 8 + 8 + 4 + 4 + 16;
    let cap = 2 * GROUP_LEAF_K as usize;
    if entries.len() > cap {
        return Err(format!("a group of {} entries (at most {cap})", entries.len()));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    // local heap: the empty name at 0, then each name NUL-terminated, padded to 8 bytes
    let mut names = vec![0u8; 8];
    let mut offs = Vec::with_capacity(entries.len());
    for (n, _) in &entries {
        offs.push(names.len() as u64);
        names.extend(n.as_bytes());
        names.push(0);
        names.resize(names.len().next_multiple_of(8), 0);
    }
    let heap = meta.next()?;
    let mut h = b"HEAP".to_vec();
    h.extend([0u8, 0, 0, 0]);
    h.extend((names.len() as u64).to_le_bytes());
    h.extend(1u64.to_le_bytes()); // no free block (libhdf5's H5HL_FREE_NULL)
    let data = heap.checked_add(32).ok_or("the metadata would pass 2^64 bytes")?;
    h.extend(data.to_le_bytes());
    h.extend(&names);
    meta.push(&h)?;
    let snod = if entries.is_empty() {
        None
    } else {
        let mut s = b"SNOD".to_vec();
        s.extend([1u8, 0]);
        s.extend((entries.len() as u16).to_le_bytes());
        for ((_, child), off) in entries.iter().zip(&offs) {
            s.extend(off.to_le_bytes());
            match child {
                Child::Group(g) => {
                    s.extend(g.header.to_le_bytes());
                    s.extend(1u32.to_le_bytes()); // cache: the group's B-tree and heap
                    s.extend(0u32.to_le_bytes());
                    s.extend(g.btree.to_le_bytes());
                    s.extend(g.heap.to_le_bytes());
                }
                Child::Object(a) => {
                    s.extend(a.to_le_bytes());
                    s.extend([0u8; 24]);
                }
            }
        }
        s.resize(8 + cap * ENTRY, 0);
        Some(meta.push(&s)?)
    };
    // B-tree node (type 0, a leaf): key 0 the empty name, child 0 the symbol table node, key 1
    // its last name
    let mut t = b"TREE".to_vec();
    t.extend([0u8, 0]);
    t.extend(u16::from(snod.is_some()).to_le_bytes());
    t.extend(UNDEF.to_le_bytes());
    t.extend(UNDEF.to_le_bytes());
    t.extend(0u64.to_le_bytes());
    if let (Some(s), Some(last)) = (snod, offs.last()) {
        t.extend(s.to_le_bytes());
        t.extend(last.to_le_bytes());
    }
    let k = 2 * GROUP_INTERNAL_K as usize;
    t.resize(24 + k * 8 + (k + 1) * 8, 0);
    let btree = meta.push(&t)?;
    let mut stab = btree.to_le_bytes().to_vec();
    stab.extend(heap.to_le_bytes());
    let header = meta.push(&object_header(&[Msg::new(0x0011, 0, stab)])?)?;
    Ok(Group { header, btree, heap })
}

/// Writes the groups `groups` (outermost first) above the object `name` (`leaf`), innermost
/// first, then the root group; returns the root.
fn groups_above(meta: &mut Meta, groups: &[String], name: &str, leaf: Child) -> std::result::Result<Group, String> {
    let mut entry = (name.to_string(), leaf);
    for g in groups.iter().rev() {
        let group = symbol_group(meta, vec![entry])?;
        entry = (g.clone(), Child::Group(group));
    }
    symbol_group(meta, vec![entry])
}

/// Writes a new-style group of external links (link info, group info and one link message
/// each); returns its header's address.
fn link_group(meta: &mut Meta, links: &[Hdf5ExternalLink]) -> std::result::Result<u64, String> {
    // link info: no creation order, no fractal heap, no name index (compact storage)
    let mut linfo = vec![0u8, 0];
    linfo.extend(UNDEF.to_le_bytes());
    linfo.extend(UNDEF.to_le_bytes());
    // group info: link phase change values stored: compact up to max(links, 8), dense from 6
    let max_compact = links.len().max(8) as u16;
    let mut ginfo = vec![0u8, 1];
    ginfo.extend(max_compact.to_le_bytes());
    ginfo.extend(6u16.to_le_bytes());
    let mut msgs = vec![Msg::new(0x0002, 0, linfo), Msg::new(0x000A, 1, ginfo)];
    for l in links {
        let name = l.name.as_bytes();
        let long = name.len() > 255;
        let utf8 = !l.name.is_ascii();
        // flags: link type present, name length of 1 (or 2) bytes, character set if UTF-8
        let mut m = vec![1u8, 0x08 | u8::from(long) | if utf8 { 0x10 } else { 0 }, 64];
        if utf8 {
            m.push(1);
        }
        if long {
            m.extend((name.len() as u16).to_le_bytes());
        } else {
            m.push(name.len() as u8);
        }
        m.extend(name);
        let info = 1 + l.file.len() + 1 + l.path.len() + 1;
        let info = u16::try_from(info).map_err(|_| format!("link '{}': {info} bytes of target", l.name))?;
        m.extend(info.to_le_bytes());
        m.push(0); // external link version and flags
        m.extend(l.file.as_bytes());
        m.push(0);
        m.extend(l.path.as_bytes());
        m.push(0);
        msgs.push(Msg::new(0x0006, 0, m));
    }
    meta.push(&object_header(&msgs)?)
}

/// The superblock (version 0): base address 0, no free-space info or driver block, the end of
/// file at `eof`, the root group's symbol table entry caching its B-tree and heap.
fn superblock(eof: u64, root: &Group) -> Vec<u8> {
    let mut b = b"\x89HDF\r\n\x1a\n".to_vec();
    // superblock, free space, root entry versions 0, reserved, shared header version 0, sizes
    // of offsets and lengths 8, reserved
    b.extend([0u8, 0, 0, 0, 0, 8, 8, 0]);
    b.extend(GROUP_LEAF_K.to_le_bytes());
    b.extend(GROUP_INTERNAL_K.to_le_bytes());
    b.extend(0u32.to_le_bytes()); // file consistency flags
    for a in [0, UNDEF, eof, UNDEF] {
        b.extend(a.to_le_bytes());
    }
    b.extend(0u64.to_le_bytes()); // link name offset
    b.extend(root.header.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(root.btree.to_le_bytes());
    b.extend(root.heap.to_le_bytes());
    debug_assert_eq!(b.len(), SUPERBLOCK_LEN);
    b
}
