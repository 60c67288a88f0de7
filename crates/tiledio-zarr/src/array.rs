//! [`ZarrArray`]: create, open, write and read.

use crate::error::{Result, ZarrError, fs_err, internal, usage};
use crate::layout::{self, kernel_err};
use crate::spec::ZarrDataType;
use crate::spec::{ArraySpec, DataType, ZarrVersion};
use rayon::prelude::*;
use serde_json::Value;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tiledio_io::gpu::DeviceBuffer;
use tiledio_io::{Border, DeviceView, FileRead, FileWrite, Region, Settings, Source, Target};
use zarrs::array::{Array, ArrayBytes, ArrayMetadata, ArrayToBytesCodecTraits, CodecOptions};
use zarrs::filesystem::FilesystemStore;

/// When written data is flushed to storage.
///
/// ```
/// assert_eq!(tiledio_zarr::Durability::default(), tiledio_zarr::Durability::AtEnd);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Never flushed by us (the page cache decides): fastest, for scratch data.
    None,
    /// One flush of the file system when the array is finished ([`ZarrArray::finish`]), before
    /// the metadata is written: the default.
    #[default]
    AtEnd,
    /// Every chunk file is flushed before it is renamed into place.
    PerChunk,
}

/// Options for writes.
///
/// ```
/// let o = tiledio_zarr::WriteOptions::default();
/// assert!(o.batch_bytes >= 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Durability of the chunk files.
    pub durability: Durability,
    /// Staging memory per batch of chunks (or shards); one unit at least.
    pub batch_bytes: usize,
    /// I/O settings (threads, task size, backend).
    pub settings: Settings,
}

impl Default for WriteOptions {
    /// The built-in defaults, I/O settings included (no environment: see
    /// [`WriteOptions::from_env`], which reports a bad `TILEDIO_*` value instead of ignoring it).
    fn default() -> Self {
        WriteOptions {
            durability: Durability::AtEnd,
            batch_bytes: 1 << 30,
            settings: Settings::default(),
        }
    }
}

impl WriteOptions {
    /// The defaults with the I/O settings of the `TILEDIO_*` environment variables.
    ///
    /// ```
    /// let o = tiledio_zarr::WriteOptions::from_env()?;
    /// assert_eq!(o.durability, tiledio_zarr::Durability::AtEnd);
    /// # Ok::<(), tiledio_zarr::ZarrError>(())
    /// ```
    ///
    /// # Errors
    /// [`ZarrError::Io`] naming the variable whose value cannot be used.
    pub fn from_env() -> Result<WriteOptions> {
        Ok(WriteOptions {
            settings: Settings::from_env()?,
            ..WriteOptions::default()
        })
    }

    /// These options with the given I/O settings (threads, task size, backend).
    ///
    /// ```
    /// let s = tiledio_io::Settings { threads: 4, ..Default::default() };
    /// assert_eq!(tiledio_zarr::WriteOptions::default().with_settings(s).settings.threads, 4);
    /// ```
    pub fn with_settings(mut self, settings: Settings) -> WriteOptions {
        self.settings = settings;
        self
    }
}

/// A Zarr array on the local file system (v3 or v2), read and written through `tiledio-io`.
///
/// Chunk files are written under a temporary name and renamed when complete, so each is
/// complete or absent. A new array's metadata is written by [`ZarrArray::finish`], after all
/// chunks: an interrupted write leaves no metadata and is not mistaken for an array.
///
/// ```
/// use tiledio_zarr::{ArraySpec, Border, DataType, Region, ZarrArray};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("a.zarr");
/// let data: Vec<u8> = (0..100 * 70).map(|i| (i % 251) as u8).collect();
/// let a = ZarrArray::create(&path, &ArraySpec::new(&[100, 70], &[32, 32], DataType::U8))?;
/// a.write_all(&data, &Default::default())?;
/// a.finish()?;
/// let b = ZarrArray::open(&path)?;
/// assert_eq!(b.read_to_vec()?, data);
/// let mut region = vec![0u8; 4];
/// b.read_region(&Region::at(&[1, 2], &[2, 2]), Border::Reject, &mut region)?;
/// assert_eq!(region, [data[72], data[73], data[142], data[143]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ZarrArray {
    path: PathBuf,
    store: Arc<FilesystemStore>,
    array: Array<FilesystemStore>,
    version: ZarrVersion,
    /// Metadata still to write ([`ZarrArray::finish`]): `(file name, document)`.
    pending_metadata: Vec<(&'static str, Value)>,
    durability: std::sync::Mutex<Durability>,
    shape: Vec<u64>,
    /// Storage unit (chunk, or shard) shape.
    unit: Vec<u64>,
    /// Inner chunk shape when sharded.
    inner: Option<Vec<u64>>,
    esize: usize,
    dtype: Option<DataType>,
    fill: Vec<u8>,
    /// Chunks are raw little-endian bytes (and shards have the standard index at the end).
    raw: bool,
    /// The shard index format, when sharded.
    shard_index: Option<ShardIndex>,
    /// For a new array: the temporary folder it is written in, renamed into place by
    /// [`ZarrArray::finish`].
    output: Option<tiledio_io::OutputDir>,
    /// I/O settings of reads ([`ZarrArray::open_with`]; writes take theirs from
    /// [`WriteOptions`]).
    settings: Settings,
}

impl std::fmt::Debug for ZarrArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZarrArray")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("shape", &self.shape)
            .field("unit", &self.unit)
            .field("inner", &self.inner)
            .field("esize", &self.esize)
            .field("raw", &self.raw)
            .finish()
    }
}

/// Writes a small file atomically (temporary name + rename), flushed when `sync`.
pub(crate) fn write_small(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    let w = tiledio_io::FileWriter::create_with(path, &Settings::default())?;
    if !bytes.is_empty() {
        w.write_at(0, bytes)?;
    }
    w.finish(sync)?;
    Ok(())
}

/// Most bytes of one metadata document (`zarr.json`, `.zarray`, `.zattrs`, `.zgroup`).
pub(crate) const MAX_METADATA_BYTES: u64 = 64 << 20;

/// [`ZarrError::AlreadyExists`] when `path` is a folder with something in it.
fn refuse_non_empty(path: &Path) -> Result<()> {
    if path.is_dir() && std::fs::read_dir(path).map_err(fs_err(path, "list"))?.next().is_some() {
        return Err(ZarrError::AlreadyExists { path: path.into() });
    }
    Ok(())
}

/// The temporary folder a new array or group at `path` is written in (see
/// [`tiledio_io::OutputDir`]); a non-empty folder at `path` is [`ZarrError::AlreadyExists`].
pub(crate) fn new_output_dir(path: &Path) -> Result<tiledio_io::OutputDir> {
    refuse_non_empty(path)?;
    Ok(tiledio_io::OutputDir::create(path)?)
}

pub(crate) fn read_json(path: &Path) -> Result<Option<Value>> {
    let Some(b) = read_regular(path, MAX_METADATA_BYTES, |n| ZarrError::Metadata {
        path: path.into(),
        message: format!("{n} bytes of metadata (at most {MAX_METADATA_BYTES})"),
    })?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&b).map(Some).map_err(|e| ZarrError::Metadata {
        path: path.into(),
        message: e.to_string(),
    })
}

/// Opens a file that must be a regular file (symlinks to one are fine): never blocks (a FIFO
/// is opened with `O_NONBLOCK` and refused), and returns its length from `fstat`. `None` when
/// it does not exist.
pub(crate) fn open_regular(path: &Path) -> Result<Option<(std::fs::File, u64)>> {
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = |t| {
        ZarrError::Io(tiledio_io::IoError::NotRegularFile {
            path: path.into(),
            kind: tiledio_io::file_kind(t),
        })
    };
    // stat first: devices are refused without being opened
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(not_regular(m.file_type())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fs_err(path, "stat")(e)),
    }
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fs_err(path, "open")(e)),
    };
    // fstat: what was opened, whatever the path names now
    let m = f.metadata().map_err(fs_err(path, "stat"))?;
    if !m.is_file() {
        return Err(not_regular(m.file_type()));
    }
    Ok(Some((f, m.len())))
}

/// Reads a whole regular file of at most `max` bytes ([`open_regular`]); a longer one gives
/// `too_large(length)`. The buffer is allocated against the memory budget. `None` when absent.
pub(crate) fn read_regular(path: &Path, max: u64, too_large: impl FnOnce(u64) -> ZarrError) -> Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    let Some((f, len)) = open_regular(path)? else {
        return Ok(None);
    };
    if len > max {
        return Err(too_large(len));
    }
    let n = usize::try_from(len).map_err(|_| too_large(len))?;
    let mut buf = tiledio_io::try_alloc_zeroed(n, &format!("{}", path.display()))?;
    f.read_exact_at(&mut buf, 0).map_err(fs_err(path, "read"))?;
    Ok(Some(buf))
}

/// Flushes the whole file system holding `dir` (one `syncfs`).
pub(crate) fn sync_fs(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir).map_err(fs_err(dir, "open for syncfs"))?;
    // SAFETY: a valid descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(fs_err(dir, "syncfs")(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn nz(shape: &[u64]) -> Vec<NonZeroU64> {
    shape
        .iter()
        .map(|&s| NonZeroU64::new(s.max(1)).unwrap_or(NonZeroU64::MIN))
        .collect()
}

fn prod(s: &[u64]) -> u64 {
    s.iter().product()
}

/// Whether a codec list (v3 JSON) is the bytes codec alone, little-endian (or 1-byte data).
fn raw_bytes_codecs(codecs: &Value, esize: usize) -> bool {
    let Some(list) = codecs.as_array() else {
        return false;
    };
    if list.len() != 1 || list[0]["name"] != "bytes" {
        return false;
    }
    let endian = &list[0]["configuration"]["endian"];
    endian == "little" || (esize == 1 && (endian.is_null() || endian == "big"))
}

/// How a shard's index is stored (the `index_codecs` and `index_location` of the sharding
/// codec): `bytes` (either endianness), optionally followed by `crc32c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShardIndex {
    /// At the end of the shard (else at the start).
    at_end: bool,
    /// Followed by a crc32c of the entries.
    crc: bool,
    /// Offsets and lengths are big-endian.
    big_endian: bool,
    /// Entries (inner chunks per shard).
    entries: usize,
    /// Bytes of the index, checksum included.
    bytes: usize,
}

impl ShardIndex {
    /// Checks a whole shard's index (checksum; every entry empty or inside the shard's chunk
    /// data) before any codec sees it; the `(offset, length)` entries, `None` for empty ones.
    fn check(&self, shard: &[u8], corrupt: impl Fn(String) -> ZarrError) -> Result<Vec<Option<(u64, u64)>>> {
        let len = shard.len();
        if len < self.bytes {
            return Err(corrupt(format!(
                "shard of {len} bytes is shorter than its index ({} bytes)",
                self.bytes
            )));
        }
        let (idx, body) = if self.at_end {
            (&shard[len - self.bytes..], 0..(len - self.bytes) as u64)
        } else {
            (&shard[..self.bytes], self.bytes as u64..len as u64)
        };
        self.entries(idx, body, corrupt)
    }

    /// Checks an index read on its own (`idx`: exactly `self.bytes`); `body` is the range of
    /// the shard file that holds chunk data.
    fn entries(
        &self,
        idx: &[u8],
        body: std::ops::Range<u64>,
        corrupt: impl Fn(String) -> ZarrError,
    ) -> Result<Vec<Option<(u64, u64)>>> {
        let n = self.entries * 16;
        if idx.len() != self.bytes || n > idx.len() {
            return Err(corrupt(format!(
                "shard index of {} bytes, expected {}",
                idx.len(),
                self.bytes
            )));
        }
        let (entries, crc) = idx.split_at(n);
        if self.crc && crc32c::crc32c(entries).to_le_bytes()[..] != crc[..4.min(crc.len())] {
            return Err(corrupt("shard index checksum mismatch".into()));
        }
        let word = |b: &[u8]| {
            let a: [u8; 8] = b.try_into().unwrap_or_default();
            if self.big_endian {
                u64::from_be_bytes(a)
            } else {
                u64::from_le_bytes(a)
            }
        };
        entries
            .chunks_exact(16)
            .enumerate()
            .map(|(i, e)| {
                let (off, n) = (word(&e[..8]), word(&e[8..]));
                if off == u64::MAX && n == u64::MAX {
                    return Ok(None);
                }
                if off < body.start || off.checked_add(n).is_none_or(|end| end > body.end) {
                    return Err(corrupt(format!(
                        "inner chunk {i}: {n} bytes at offset {off} lie outside the shard's chunk data (bytes {}..{})",
                        body.start, body.end
                    )));
                }
                Ok(Some((off, n)))
            })
            .collect()
    }
}

/// The storage geometry of an array, checked: every size the reader computes from it (unit
/// and chunk bytes, the unit grid, the shard index) fits without overflow.
struct Geometry {
    unit: Vec<u64>,
    inner: Option<Vec<u64>>,
    index: Option<ShardIndex>,
}

/// The largest extent of an array or its chunk grid (NumPy's and zarr-python's limit).
const MAX_EXTENT: u64 = i64::MAX as u64;

/// Bytes per element from the metadata's data type name (1 when it is not one of ours:
/// zarrs decides, and `from_parts` checks again with its size).
fn meta_element_size(meta: &Value, version: ZarrVersion) -> usize {
    let name = match version {
        ZarrVersion::V3 => meta["data_type"].as_str(),
        ZarrVersion::V2 => meta["dtype"].as_str(),
    };
    name.and_then(DataType::from_name).map_or(1, DataType::size)
}

/// Runs a call into zarrs, turning a panic inside it into an error (a last line of defence:
/// the metadata and shard indexes are checked before zarrs sees them).
fn no_panic<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ZarrError::Zarrs {
            path: path.into(),
            message: format!("zarrs failed {what}: {}", msg.replace('\n', " ")),
        })
    })
}

impl Geometry {
    fn of(path: &Path, version: ZarrVersion, meta: &Value, shape: &[u64], esize: usize) -> Result<Geometry> {
        let file = path.join(if version == ZarrVersion::V3 {
            "zarr.json"
        } else {
            ".zarray"
        });
        let bad = |message: String| ZarrError::Metadata {
            path: file.clone(),
            message,
        };
        let unsupported = |what: String| ZarrError::Unsupported {
            what: format!("{}: {what}", file.display()),
        };
        let r = shape.len();
        if r == 0 {
            return Err(unsupported("0-dimensional arrays".into()));
        }
        if let Some(d) = shape.iter().position(|&s| s > MAX_EXTENT) {
            return Err(bad(format!("shape {shape:?}: dimension {d} is larger than 2^63 - 1")));
        }
        let (unit_json, sharding) = match version {
            ZarrVersion::V3 => {
                if meta["chunk_grid"]["name"] != "regular" {
                    return Err(unsupported(format!(
                        "chunk grid {} (only regular grids)",
                        meta["chunk_grid"]["name"]
                    )));
                }
                let codecs = meta["codecs"].as_array().map(Vec::as_slice).unwrap_or_default();
                let shard_at = codecs.iter().position(|c| c["name"] == "sharding_indexed");
                match shard_at {
                    Some(0) if codecs.len() == 1 => (
                        &meta["chunk_grid"]["configuration"]["chunk_shape"],
                        Some(&codecs[0]["configuration"]),
                    ),
                    Some(_) => return Err(unsupported("sharding_indexed with other codecs around it".into())),
                    None => (&meta["chunk_grid"]["configuration"]["chunk_shape"], None),
                }
            }
            ZarrVersion::V2 => (&meta["chunks"], None),
        };
        let unit: Vec<u64> = serde_json::from_value(unit_json.clone()).map_err(|e| bad(format!("chunk shape: {e}")))?;
        if unit.len() != r || unit.contains(&0) {
            return Err(bad(format!("chunk shape {unit:?} does not fit shape {shape:?}")));
        }
        // the unit grid, and the extent it covers, stay within 2^63 - 1 per dimension
        let mut units = 1u64;
        for d in 0..r {
            let g = shape[d].div_ceil(unit[d]);
            if g.checked_mul(unit[d]).is_none_or(|e| e > MAX_EXTENT) {
                return Err(bad(format!(
                    "chunk shape {unit:?} overflows: its grid over shape {shape:?} reaches past 2^63 - 1 in dimension {d}"
                )));
            }
            units = units.checked_mul(g.max(1)).ok_or_else(|| {
                bad(format!(
                    "chunk shape {unit:?} overflows: more than 2^64 chunks in shape {shape:?}"
                ))
            })?;
        }
        let elements_bytes = |s: &[u64], what: &str| {
            s.iter()
                .try_fold(esize as u64, |a, &x| a.checked_mul(x))
                .filter(|&b| b <= isize::MAX as u64)
                .ok_or_else(|| {
                    bad(format!(
                        "{what} shape {s:?} overflows: one {what} of {esize}-byte elements would exceed 2^63 bytes"
                    ))
                })
        };
        elements_bytes(&unit, if sharding.is_some() { "shard" } else { "chunk" })?;
        let Some(cfg) = sharding else {
            return Ok(Geometry {
                unit,
                inner: None,
                index: None,
            });
        };
        let inner: Vec<u64> = serde_json::from_value(cfg["chunk_shape"].clone())
            .map_err(|e| bad(format!("sharding chunk_shape: {e}")))?;
        if inner.len() != r || inner.contains(&0) {
            return Err(bad(format!("inner chunk shape {inner:?} does not fit shape {shape:?}")));
        }
        if unit.iter().zip(&inner).any(|(u, c)| u % c != 0) {
            return Err(bad(format!(
                "shard shape {unit:?} is not a multiple of chunk shape {inner:?}"
            )));
        }
        elements_bytes(&inner, "chunk")?;
        if cfg["codecs"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["name"] == "sharding_indexed"))
        {
            return Err(unsupported("nested sharding".into()));
        }
        let idx = cfg["index_codecs"].as_array().map(Vec::as_slice).unwrap_or_default();
        let endian = &idx
            .first()
            .map(|c| &c["configuration"]["endian"])
            .unwrap_or(&Value::Null);
        let known = idx.first().is_some_and(|c| c["name"] == "bytes")
            && (*endian == "little" || *endian == "big")
            && (idx.len() == 1 || (idx.len() == 2 && idx[1]["name"] == "crc32c"));
        if !known {
            return Err(unsupported(format!(
                "shard index codecs {} (bytes, optionally then crc32c, are supported)",
                cfg["index_codecs"]
            )));
        }
        let loc = &cfg["index_location"];
        if !(loc.is_null() || loc == "end" || loc == "start") {
            return Err(bad(format!("index_location {loc}")));
        }
        let entries = unit
            .iter()
            .zip(&inner)
            .try_fold(1u64, |a, (u, c)| a.checked_mul(u / c))
            .and_then(|n| n.checked_mul(16))
            .and_then(|b| b.checked_add(4))
            .filter(|&b| b <= isize::MAX as u64)
            .ok_or_else(|| {
                bad(format!(
                    "shard shape {unit:?} overflows: too many inner chunks of {inner:?}"
                ))
            })?;
        let n = ((entries - 4) / 16) as usize;
        let crc = idx.len() == 2;
        Ok(Geometry {
            unit,
            inner: Some(inner),
            index: Some(ShardIndex {
                at_end: !(loc == "start"),
                crc,
                big_endian: *endian == "big",
                entries: n,
                bytes: n * 16 + if crc { 4 } else { 0 },
            }),
        })
    }
}

/// The metadata document we built, as zarrs' typed metadata (v3 or v2).
fn parse_meta<T: serde::de::DeserializeOwned>(path: &Path, meta: &Value) -> Result<T> {
    serde_json::from_value(meta.clone()).map_err(|e| ZarrError::Metadata {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl ZarrArray {
    /// Prepares a new array at `path` (which must not exist, or be an empty folder). The array
    /// is written in a hidden temporary folder beside `path` and renamed into place by
    /// [`ZarrArray::finish`], metadata last: an interrupted write leaves nothing at `path`
    /// (the temporary is removed on drop, on SIGINT/SIGTERM through
    /// [`tiledio_io::remove_temporaries`], or by the next write after a kill), and of two
    /// concurrent writers to one path one wins, the other gets an error; never a mix.
    ///
    /// # Errors
    /// [`ZarrError::Usage`] for an invalid spec, [`ZarrError::AlreadyExists`],
    /// [`ZarrError::Io`] for a path that cannot be an output, [`ZarrError::Fs`] if the folder
    /// cannot be created.
    pub fn create(path: impl AsRef<Path>, spec: &ArraySpec) -> Result<ZarrArray> {
        spec.metadata()?;
        let out = new_output_dir(path.as_ref())?;
        let mut a = Self::create_in_place(out.path(), spec)?;
        a.output = Some(out);
        Ok(a)
    }

    /// [`ZarrArray::create`] writing straight into `path` (a level inside a group that is
    /// itself being written in a temporary folder).
    pub(crate) fn create_in_place(path: impl AsRef<Path>, spec: &ArraySpec) -> Result<ZarrArray> {
        let path = path.as_ref().to_path_buf();
        let meta = spec.metadata()?;
        refuse_non_empty(&path)?;
        // this folder only, never its parents: the parent is a temporary folder that a signal
        // may have removed, and it must stay removed (create_dir_all would bring it back)
        match std::fs::create_dir(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(fs_err(&path, "create folder")(e));
            }
            _ => {}
        }
        let meta_for_parts = meta.clone();
        let (zmeta, pending) = match spec.version {
            ZarrVersion::V3 => (ArrayMetadata::V3(parse_meta(&path, &meta)?), vec![("zarr.json", meta)]),
            ZarrVersion::V2 => {
                let attrs = Value::Object(spec.attributes.clone());
                (
                    ArrayMetadata::V2(parse_meta(&path, &meta)?),
                    vec![(".zattrs", attrs), (".zarray", meta)],
                )
            }
        };
        let store = Arc::new(FilesystemStore::new(&path).map_err(|e| ZarrError::Zarrs {
            path: path.clone(),
            message: e.to_string(),
        })?);
        let array = Array::new_with_metadata(store.clone(), "/", zmeta).map_err(|e| ZarrError::Zarrs {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut a = Self::from_parts(path, store, array, spec.version, meta_for_parts)?;
        a.pending_metadata = pending;
        Ok(a)
    }

    /// Opens an existing array (v3 `zarr.json`, or v2 `.zarray`).
    ///
    /// # Errors
    /// [`ZarrError::NotFound`] when there is no array metadata, [`ZarrError::Metadata`] /
    /// [`ZarrError::Zarrs`] when it is invalid, [`ZarrError::Unsupported`] for variable-length
    /// data types.
    pub fn open(path: impl AsRef<Path>) -> Result<ZarrArray> {
        Self::open_with(path, &Settings::from_env()?)
    }

    /// [`ZarrArray::open`] with the I/O settings its reads use (threads, task size, backend),
    /// instead of the `TILEDIO_*` environment.
    ///
    /// ```no_run
    /// let s = tiledio_io::Settings { threads: 4, ..Default::default() };
    /// let a = tiledio_zarr::ZarrArray::open_with("image.zarr", &s)?;
    /// # Ok::<(), tiledio_zarr::ZarrError>(())
    /// ```
    ///
    /// # Errors
    /// As [`ZarrArray::open`]; [`ZarrError::Io`] for settings out of range.
    pub fn open_with(path: impl AsRef<Path>, settings: &Settings) -> Result<ZarrArray> {
        settings.validate()?;
        let path = path.as_ref().to_path_buf();
        // The metadata is read here (regular files, bounded), checked, and only then given to
        // zarrs, which never reads it from the store itself.
        let (version, meta, zmeta) = if let Some(m) = read_json(&path.join("zarr.json"))? {
            let file = path.join("zarr.json");
            if m["node_type"] != "array" {
                return Err(ZarrError::Metadata {
                    path: file,
                    message: format!(
                        "node_type is {}: a Zarr group or other node, not an array",
                        m["node_type"]
                    ),
                });
            }
            let z: zarrs::array::ArrayMetadataV3 =
                serde_json::from_value(m.clone()).map_err(|e| ZarrError::Metadata {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
            if let Some((name, _)) = z.additional_fields.iter().find(|(_, f)| f.must_understand()) {
                return Err(ZarrError::Unsupported {
                    what: format!("{}: field {name:?} (must_understand)", file.display()),
                });
            }
            (ZarrVersion::V3, m, ArrayMetadata::V3(z))
        } else if let Some(m) = read_json(&path.join(".zarray"))? {
            let file = path.join(".zarray");
            let mut z: zarrs::array::ArrayMetadataV2 =
                serde_json::from_value(m.clone()).map_err(|e| ZarrError::Metadata {
                    path: file.clone(),
                    message: e.to_string(),
                })?;
            let attrs_file = path.join(".zattrs");
            match read_json(&attrs_file)? {
                None => {}
                Some(Value::Object(a)) => z.attributes = a,
                Some(_) => {
                    return Err(ZarrError::Metadata {
                        path: attrs_file,
                        message: "attributes must be a JSON object".into(),
                    });
                }
            }
            (ZarrVersion::V2, m, ArrayMetadata::V2(z))
        } else {
            return Err(ZarrError::NotFound { path });
        };
        // Sizes are checked before zarrs builds its chunk grid and codecs from them.
        let shape: Vec<u64> = serde_json::from_value(meta["shape"].clone()).map_err(|e| ZarrError::Metadata {
            path: path.clone(),
            message: format!("shape: {e}"),
        })?;
        let esize = meta_element_size(&meta, version);
        Geometry::of(&path, version, &meta, &shape, esize)?;
        let store = Arc::new(FilesystemStore::new(&path).map_err(|e| ZarrError::Zarrs {
            path: path.clone(),
            message: e.to_string(),
        })?);
        let array = no_panic(&path, "building the array from its metadata", || {
            Array::new_with_metadata(store.clone(), "/", zmeta).map_err(|e| ZarrError::Zarrs {
                path: path.clone(),
                message: e.to_string(),
            })
        })?;
        let mut a = Self::from_parts(path, store, array, version, meta)?;
        a.settings = settings.clone();
        Ok(a)
    }

    fn from_parts(
        path: PathBuf,
        store: Arc<FilesystemStore>,
        array: Array<FilesystemStore>,
        version: ZarrVersion,
        meta: Value,
    ) -> Result<ZarrArray> {
        let shape = array.shape().to_vec();
        let esize = array.data_type().fixed_size().ok_or_else(|| ZarrError::Unsupported {
            what: format!("{}: variable-length data type", path.display()),
        })?;
        let (unit, inner, raw, dtype) = match version {
            ZarrVersion::V3 => {
                let unit: Vec<u64> = serde_json::from_value(meta["chunk_grid"]["configuration"]["chunk_shape"].clone())
                    .map_err(|e| ZarrError::Metadata {
                        path: path.clone(),
                        message: format!("chunk grid: {e} (only regular grids)"),
                    })?;
                let codecs = &meta["codecs"];
                let st_empty = meta["storage_transformers"].as_array().is_none_or(|v| v.is_empty());
                let c0 = &codecs[0];
                if codecs.as_array().is_some_and(|l| l.len() == 1) && c0["name"] == "sharding_indexed" {
                    let cfg = &c0["configuration"];
                    let inner: Vec<u64> =
                        serde_json::from_value(cfg["chunk_shape"].clone()).map_err(|e| ZarrError::Metadata {
                            path: path.clone(),
                            message: format!("sharding chunk_shape: {e}"),
                        })?;
                    let idx = &cfg["index_codecs"];
                    let idx_std = idx.as_array().is_some_and(|l| {
                        l.len() == 2
                            && l[0]["name"] == "bytes"
                            && l[0]["configuration"]["endian"] == "little"
                            && l[1]["name"] == "crc32c"
                    });
                    let at_end = cfg["index_location"].is_null() || cfg["index_location"] == "end";
                    let raw = st_empty && idx_std && at_end && raw_bytes_codecs(&cfg["codecs"], esize);
                    (
                        unit,
                        Some(inner),
                        raw,
                        DataType::from_name(meta["data_type"].as_str().unwrap_or("")),
                    )
                } else {
                    (
                        unit,
                        None,
                        st_empty && raw_bytes_codecs(codecs, esize),
                        DataType::from_name(meta["data_type"].as_str().unwrap_or("")),
                    )
                }
            }
            ZarrVersion::V2 => {
                let unit: Vec<u64> =
                    serde_json::from_value(meta["chunks"].clone()).map_err(|e| ZarrError::Metadata {
                        path: path.clone(),
                        message: format!("chunks: {e}"),
                    })?;
                let dt = meta["dtype"].as_str().unwrap_or("");
                let le = dt.starts_with('<') || dt.starts_with('|');
                let no_filters = meta["filters"].as_array().is_none_or(|v| v.is_empty());
                let raw = meta["compressor"].is_null() && no_filters && meta["order"] == "C" && le;
                (unit, None, raw, DataType::from_name(dt))
            }
        };
        let g = Geometry::of(&path, version, &meta, &shape, esize)?;
        debug_assert!(g.unit == unit && g.inner == inner);
        let fill = array.fill_value().as_ne_bytes().to_vec();
        if fill.len() != esize {
            return Err(ZarrError::Unsupported {
                what: format!(
                    "{}: fill value of {} bytes for {esize}-byte elements",
                    path.display(),
                    fill.len()
                ),
            });
        }
        Ok(ZarrArray {
            path,
            store,
            array,
            version,
            pending_metadata: Vec::new(),
            durability: std::sync::Mutex::new(Durability::None),
            shape,
            unit,
            inner,
            esize,
            dtype,
            fill,
            raw: raw && cfg!(target_endian = "little"),
            shard_index: g.index,
            output: None,
            settings: Settings::default(),
        })
    }

    /// The array folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The array shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The chunk shape (inner chunk shape when sharded).
    pub fn chunk_shape(&self) -> &[u64] {
        self.inner.as_deref().unwrap_or(&self.unit)
    }

    /// The shard shape, when sharded.
    pub fn shard_shape(&self) -> Option<&[u64]> {
        self.inner.as_ref().map(|_| self.unit.as_slice())
    }

    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.esize
    }

    /// The data type, when it is one of [`DataType`]'s (others are read and written as raw
    /// elements of [`ZarrArray::element_size`] bytes).
    pub fn data_type(&self) -> Option<DataType> {
        self.dtype
    }

    /// The format version.
    pub fn version(&self) -> ZarrVersion {
        self.version
    }

    /// Whether chunks are raw bytes, moved by the direct (no-codec) path.
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The array's user attributes.
    pub fn attributes(&self) -> &serde_json::Map<String, Value> {
        self.array.attributes()
    }

    /// The fill value of one element (native-endian bytes).
    pub fn fill_bytes(&self) -> &[u8] {
        &self.fill
    }

    /// Bytes of the whole array in memory (`usize::MAX` when that does not fit in a `usize`).
    pub fn nbytes(&self) -> usize {
        self.region_bytes(&self.shape).unwrap_or(usize::MAX)
    }

    /// Bytes of a region of `shape` in memory, checked.
    fn region_bytes(&self, shape: &[u64]) -> Result<usize> {
        shape
            .iter()
            .try_fold(self.esize as u64, |a, &s| a.checked_mul(s))
            .and_then(|b| usize::try_from(b).ok())
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| {
                usage(format!(
                    "{}: a region of shape {shape:?} ({}-byte elements) is larger than memory can address",
                    self.path.display(),
                    self.esize
                ))
            })
    }

    fn unit_path(&self, u: u64) -> PathBuf {
        let grid: Vec<u64> = self.shape.iter().zip(&self.unit).map(|(s, c)| s.div_ceil(*c)).collect();
        let mut c = vec![0u64; grid.len()];
        layout::unravel(u, &grid, &mut c);
        self.store.key_to_fspath(&self.array.chunk_key(&c))
    }

    fn unit_coords(&self, u: u64) -> Vec<u64> {
        let grid: Vec<u64> = self.shape.iter().zip(&self.unit).map(|(s, c)| s.div_ceil(*c)).collect();
        let mut c = vec![0u64; grid.len()];
        layout::unravel(u, &grid, &mut c);
        c
    }

    fn check_box(&self, origin: &[u64], shape: &[u64], buf_len: usize) -> Result<()> {
        let r = self.shape.len();
        if origin.len() != r || shape.len() != r {
            return Err(usage(format!(
                "region {origin:?}+{shape:?} has the wrong rank for array shape {:?}",
                self.shape
            )));
        }
        if (0..r).any(|d| origin[d].checked_add(shape[d]).is_none_or(|e| e > self.shape[d])) {
            return Err(usage(format!(
                "region {origin:?}+{shape:?} lies outside array shape {:?}",
                self.shape
            )));
        }
        let need = self.region_bytes(shape)?;
        if buf_len != need {
            return Err(usage(format!("buffer of {buf_len} bytes for a region of {need} bytes")));
        }
        Ok(())
    }

    /// Bytes of a shard index plus its crc32c, and the number of inner chunks per shard.
    fn shard_index_bytes(&self) -> (usize, usize) {
        match &self.inner {
            Some(i) => {
                let n = self.unit.iter().zip(i).map(|(u, c)| u / c).product::<u64>() as usize;
                (n * 16 + 4, n)
            }
            None => (0, 0),
        }
    }

    /// The index of a shard whose inner chunks are all stored, in order, uncompressed.
    fn full_shard_index(&self) -> Vec<u8> {
        let (bytes, n) = self.shard_index_bytes();
        let chunk_bytes = prod(self.chunk_shape()) * self.esize as u64;
        let mut idx = Vec::with_capacity(bytes);
        for i in 0..n as u64 {
            idx.extend_from_slice(&(i * chunk_bytes).to_le_bytes());
            idx.extend_from_slice(&chunk_bytes.to_le_bytes());
        }
        let crc = crc32c::crc32c(&idx);
        idx.extend_from_slice(&crc.to_le_bytes());
        idx
    }

    fn set_durability(&self, d: Durability) {
        let mut g = self.durability.lock().unwrap_or_else(|e| e.into_inner());
        if d != Durability::None && *g == Durability::None {
            *g = Durability::AtEnd;
        }
        if d == Durability::AtEnd {
            *g = Durability::AtEnd;
        }
    }

    /// Writes the whole array from host memory (C order, native-endian elements) or GPU memory.
    ///
    /// # Errors
    /// As [`ZarrArray::write_region`].
    pub fn write_all<'a>(&self, src: impl Into<Source<'a>>, opts: &WriteOptions) -> Result<()> {
        let zeros = vec![0; self.shape.len()];
        let shape = self.shape.clone();
        self.write_region(&zeros, &shape, src, opts)
    }

    /// Writes a region that covers whole storage units (chunks, or shards when sharded): its
    /// origin is a multiple of the unit shape and its end is one too or the array's end. The
    /// source holds the region in C order. Units are written in batches of
    /// `opts.batch_bytes`; raw chunks go straight from the source (GPU or host) through
    /// staging to their files, compressed ones are encoded on the CPU in parallel, overlapped
    /// with the gathering (and GPU→host copy) of the next batch.
    ///
    /// # Errors
    /// [`ZarrError::Usage`] for a region outside the array, unaligned, or a source of the wrong
    /// size; [`ZarrError::Chunk`] when encoding fails; [`ZarrError::Io`].
    pub fn write_region<'a>(
        &self,
        origin: &[u64],
        shape: &[u64],
        src: impl Into<Source<'a>>,
        opts: &WriteOptions,
    ) -> Result<()> {
        let src = src.into();
        // gathering and encoding run on the compute threads of the settings; the producer
        // thread below hands them work, so the call itself does not hold a compute thread
        // (with one compute thread that would deadlock)
        let ctx = tiledio_io::Context::for_settings(&opts.settings)?;
        let len = match src {
            Source::Host(b) => b.len(),
            Source::Device(d) => d.len(),
        };
        self.check_box(origin, shape, len)?;
        for d in 0..self.shape.len() {
            let end = origin[d] + shape[d];
            if !origin[d].is_multiple_of(self.unit[d]) || (!end.is_multiple_of(self.unit[d]) && end != self.shape[d]) {
                return Err(usage(format!(
                    "region {origin:?}+{shape:?} is not aligned to the {} shape {:?}",
                    if self.inner.is_some() { "shard" } else { "chunk" },
                    self.unit
                )));
            }
        }
        self.set_durability(opts.durability);
        let units = layout::cells_in_box(&self.shape, &self.unit, origin, shape);
        if units.is_empty() {
            return Ok(());
        }
        let (extra, _) = if self.raw { self.shard_index_bytes() } else { (0, 0) };
        let inner = if self.raw {
            self.inner.clone().unwrap_or_else(|| self.unit.clone())
        } else {
            self.unit.clone()
        };
        let l = layout::plan(&self.shape, &self.unit, &inner, origin, shape, self.esize, extra)?;
        let per_batch = (opts.batch_bytes / l.slot_bytes()).clamp(1, units.len());
        let batches: Vec<&[u64]> = units.chunks(per_batch).collect();
        match (src, self.raw) {
            (Source::Host(b), true) => {
                let mut staging = vec![0u8; per_batch * l.slot_bytes()];
                for batch in batches {
                    let st = &mut staging[..batch.len() * l.slot_bytes()];
                    ctx.compute(|| {
                        l.gather_host(b, st, batch, &self.fill)?;
                        self.put_index_host(st, l.slot_bytes());
                        Ok(())
                    })
                    .map_err(kernel_err)?;
                    self.write_raw(batch, Source::Host(st), l.slot_bytes(), opts)?;
                }
            }
            (Source::Device(d), true) => {
                // kept by the context between calls: a tile pipeline writes one region a tile
                let mut staging = ctx.scratch(per_batch * l.slot_bytes())?;
                for batch in batches {
                    l.gather_device(d, &mut staging, batch, &self.fill)
                        .map_err(kernel_err)?;
                    if extra > 0 {
                        let idx = self.full_shard_index();
                        for i in 0..batch.len() {
                            staging.copy_from_host_at(i * l.slot_bytes() + l.slot_bytes() - extra, &idx)?;
                        }
                    }
                    self.write_raw(batch, Source::Device(&staging), l.slot_bytes(), opts)?;
                }
            }
            (src, false) => {
                // Producer (gather, GPU→host copy) and consumer (encode, write) overlap.
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(usize, Vec<u8>)>>(1);
                let mut staging_dev = match src {
                    Source::Device(_) => Some(DeviceBuffer::new(per_batch * l.slot_bytes())?),
                    Source::Host(_) => None,
                };
                std::thread::scope(|s| -> Result<()> {
                    let l = &l;
                    let batches = &batches;
                    let ctx = &ctx;
                    s.spawn(move || {
                        for (bi, batch) in batches.iter().enumerate() {
                            let mut host = vec![0u8; batch.len() * l.slot_bytes()];
                            let r = match (src, &mut staging_dev) {
                                (Source::Host(b), _) => ctx
                                    .compute(|| l.gather_host(b, &mut host, batch, &self.fill))
                                    .map_err(kernel_err),
                                (Source::Device(d), Some(st)) => l
                                    .gather_device(d, st, batch, &self.fill)
                                    .map_err(kernel_err)
                                    .and_then(|()| st.copy_to_host_at(0, &mut host).map_err(ZarrError::from)),
                                (Source::Device(_), None) => {
                                    Err(internal("no device staging buffer for a device transfer"))
                                }
                            };
                            let failed = r.is_err();
                            if tx.send(r.map(|()| (bi, host))).is_err() || failed {
                                return;
                            }
                        }
                    });
                    let consume_all = || -> Result<()> {
                        for msg in rx.iter() {
                            let (bi, host) = msg?;
                            ctx.compute(|| self.encode_and_write(batches[bi], &host, l.slot_bytes(), opts))?;
                        }
                        Ok(())
                    };
                    let r = consume_all();
                    // on an error the producer may be blocked sending a batch: dropping the
                    // receiver ends its send, so the scope can join it (else: a hang)
                    drop(rx);
                    r
                })?;
            }
        }
        Ok(())
    }

    fn put_index_host(&self, staging: &mut [u8], slot: usize) {
        let (extra, _) = self.shard_index_bytes();
        if extra == 0 {
            return;
        }
        let idx = self.full_shard_index();
        staging
            .par_chunks_mut(slot)
            .for_each(|s| s[slot - extra..].copy_from_slice(&idx));
    }

    fn write_raw(&self, units: &[u64], src: Source<'_>, slot: usize, opts: &WriteOptions) -> Result<()> {
        let files: Vec<FileWrite> = units
            .iter()
            .enumerate()
            .map(|(i, &u)| FileWrite {
                path: self.unit_path(u),
                src_offset: i * slot,
                len: slot,
            })
            .collect();
        self.make_dirs(&files)?;
        tiledio_io::write_files(&files, src, &opts.settings, opts.durability == Durability::PerChunk)?;
        Ok(())
    }

    fn make_dirs(&self, files: &[FileWrite]) -> Result<()> {
        let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.path.parent()).collect();
        dirs.dedup();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            // folders below the array's only: never re-create the array's own folder (a
            // temporary one removed on a signal must stay removed)
            let rel = d.strip_prefix(&self.path).unwrap_or(Path::new(""));
            let mut p = self.path.clone();
            for c in rel.components() {
                p.push(c);
                match std::fs::create_dir(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(fs_err(&p, "create folder")(e));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Encodes units staged in C order (one slot each) with the array's codecs, in parallel,
    /// and writes them.
    fn encode_and_write(&self, units: &[u64], host: &[u8], slot: usize, opts: &WriteOptions) -> Result<()> {
        let codecs = self.array.codecs();
        let shape = nz(&self.unit);
        let copts = CodecOptions::default();
        let encoded: Vec<Vec<u8>> = host
            .par_chunks(slot)
            .zip(units.par_iter())
            .map(|(bytes, &u)| {
                codecs
                    .encode(
                        ArrayBytes::new_flen(bytes),
                        &shape,
                        self.array.data_type(),
                        self.array.fill_value(),
                        &copts,
                    )
                    .map(|c| c.into_owned())
                    .map_err(|e| ZarrError::Chunk {
                        path: self.unit_path(u),
                        chunk: self.unit_coords(u),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_>>()?;
        let mut all = Vec::with_capacity(encoded.iter().map(Vec::len).sum());
        let mut files = Vec::with_capacity(units.len());
        for (e, &u) in encoded.iter().zip(units) {
            files.push(FileWrite {
                path: self.unit_path(u),
                src_offset: all.len(),
                len: e.len(),
            });
            all.extend_from_slice(e);
        }
        self.make_dirs(&files)?;
        tiledio_io::write_files(&files, &all, &opts.settings, opts.durability == Durability::PerChunk)?;
        Ok(())
    }

    /// Writes the metadata of a new array (after flushing its chunks when the writes asked for
    /// [`Durability::AtEnd`]); for an opened array, only flushes. Until this is called a new
    /// array is not an array to readers.
    ///
    /// # Errors
    /// [`ZarrError::Io`] / [`ZarrError::Fs`] when flushing or writing fails.
    pub fn finish(mut self) -> Result<ZarrArray> {
        let d = *self.durability.lock().unwrap_or_else(|e| e.into_inner());
        if d != Durability::None {
            sync_fs(&self.path)?;
        }
        for (name, doc) in std::mem::take(&mut self.pending_metadata) {
            let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| ZarrError::Metadata {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
            write_small(&self.path.join(name), &bytes, d != Durability::None)?;
        }
        match self.output.take() {
            // a new array: into place now that it is complete, then opened where it lies
            Some(out) => ZarrArray::open(out.commit()?),
            None => Ok(self),
        }
    }

    /// Reads the whole array into a new host vector (C order, native-endian elements).
    ///
    /// # Errors
    /// As [`ZarrArray::read_region`].
    pub fn read_to_vec(&self) -> Result<Vec<u8>> {
        let n = self.region_bytes(&self.shape)?;
        let mut v = tiledio_io::try_alloc_zeroed(n, &format!("{}: the whole array", self.path.display()))?;
        self.read_all(&mut v)?;
        Ok(v)
    }

    /// Reads the whole array into `dst` (host or GPU memory).
    ///
    /// # Errors
    /// As [`ZarrArray::read_region`].
    pub fn read_all<'a>(&self, dst: impl Into<Target<'a>>) -> Result<()> {
        self.read_region(&Region::whole(&self.shape), Border::Reject, dst)
    }

    /// Reads a region into a new GPU buffer.
    ///
    /// # Errors
    /// As [`ZarrArray::read_region`]; [`ZarrError::Io`] when there is no GPU.
    pub fn read_region_to_device(&self, region: &Region, border: Border) -> Result<DeviceBuffer> {
        let n = self.region_bytes(region.shape())?;
        let mut d = DeviceBuffer::new(n.max(1))?;
        self.read_region(region, border, Target::Device(&mut d))?;
        Ok(d)
    }

    /// Reads a region into a GPU array the caller owns (a [`DeviceArray`](tiledio_io::DeviceArray)
    /// of ours, or a CuPy/PyTorch array seen through [`DeviceView::from_raw`]), checking its
    /// element type and shape.
    ///
    /// ```no_run
    /// use tiledio_io::{Border, DeviceArray, Region};
    /// let a = tiledio_zarr::ZarrArray::open("image.zarr")?;
    /// let mut out = DeviceArray::zeros(a.data_type().unwrap(), &[256, 256])?;
    /// a.read_region_into_view(&Region::at(&[0, 0], &[256, 256]), Border::Reject, &mut out.view_mut())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`ZarrError::Io`] with `InvalidArgument` when the view's type or shape differs (or the
    /// array's type has no [`DataType`]); as [`ZarrArray::read_region`] otherwise.
    pub fn read_region_into_view(&self, region: &Region, border: Border, out: &mut DeviceView<'_>) -> Result<()> {
        let dtype = self.dtype.ok_or_else(|| {
            usage(format!(
                "{}: the array's data type has no tiledio element type",
                self.path.display()
            ))
        })?;
        let buf = out.expect_mut(dtype, region.shape())?;
        self.read_region(region, border, Target::Device(buf))
    }

    /// Reads `region` into `dst` (C order; host or GPU memory; exactly the region's bytes).
    /// Missing chunks read as the fill value. Under [`Border::Fill`] the cells of the region
    /// outside the array read as the fill value too; under [`Border::Reject`] such a region is
    /// an error. Raw chunks are read straight into staging (GPU staging for GPU targets) and
    /// placed by one gather pass; compressed chunks are read and decoded in parallel on the CPU.
    ///
    /// ```no_run
    /// use tiledio_io::{Border, Region};
    /// let a = tiledio_zarr::ZarrArray::open("image.zarr")?;
    /// let mut tile = vec![0u8; 64 * 64 * a.element_size()];
    /// // a tile with a 1-pixel halo at the array's corner: the outside cells get the fill value
    /// a.read_region(&Region::new(&[-1, -1], &[64, 64]), Border::Fill, &mut tile[..])?;
    /// # Ok::<(), tiledio_zarr::ZarrError>(())
    /// ```
    ///
    /// # Errors
    /// [`ZarrError::Usage`] for a region of the wrong rank, outside the array under
    /// [`Border::Reject`], or a buffer of the wrong size; [`ZarrError::Chunk`] for a chunk that
    /// is malformed (wrong size, bad shard index, codec failure); [`ZarrError::Io`].
    pub fn read_region<'a>(&self, region: &Region, border: Border, dst: impl Into<Target<'a>>) -> Result<()> {
        let mut dst = dst.into();
        let len = match &dst {
            Target::Host(b) => b.len(),
            Target::Device(d) => d.len(),
        };
        let inside = region
            .check(&self.shape, border)
            .map_err(|e| usage(format!("{}: {e}", self.path.display())))?;
        let need = self.region_bytes(region.shape())?;
        if len != need {
            return Err(usage(format!("buffer of {len} bytes for a region of {need} bytes")));
        }
        let Some(inside) = inside else {
            return self.fill_target(&mut dst, len);
        };
        let at: Vec<u64> = inside.origin().iter().map(|o| *o as u64).collect();
        if inside == *region {
            return self.read_region_into(&at, inside.shape(), dst, len);
        }
        // partly outside: the fill value everywhere, then the inside part read on its own and
        // placed at its offset by the chunk scatter (the inside block as the only unit of an
        // array whose window is the region)
        self.fill_target(&mut dst, len)?;
        let n = self.region_bytes(inside.shape())?;
        let offset: Vec<i64> = region
            .origin()
            .iter()
            .zip(inside.origin())
            .map(|(r, i)| r - i)
            .collect();
        let l = layout::Layout::new(
            inside.shape(),
            inside.shape(),
            inside.shape(),
            &offset,
            region.shape(),
            self.esize,
            0,
        )
        .map_err(kernel_err)?;
        match dst {
            Target::Host(out) => {
                let mut part = tiledio_io::try_alloc_zeroed(n, &format!("{}: a region", self.path.display()))?;
                self.read_region_into(&at, inside.shape(), Target::Host(&mut part), n)?;
                l.scatter_host(&part, out, &[0]).map_err(kernel_err)
            }
            Target::Device(out) => {
                let mut part = DeviceBuffer::new(n.max(1))?;
                self.read_region_into(&at, inside.shape(), Target::Device(&mut part), n)?;
                l.scatter_device(&part, out, &[0]).map_err(kernel_err)
            }
        }
    }

    fn read_region_into(&self, origin: &[u64], shape: &[u64], dst: Target<'_>, len: usize) -> Result<()> {
        self.check_box(origin, shape, len)?;
        if len == 0 {
            return Ok(());
        }
        // planning, decoding and placement run on the compute threads of the read settings
        tiledio_io::Context::for_settings(&self.settings)?.compute(|| self.read_region_on_pool(origin, shape, dst, len))
    }

    fn read_region_on_pool(&self, origin: &[u64], shape: &[u64], mut dst: Target<'_>, len: usize) -> Result<()> {
        let settings = &self.settings;
        if self.raw {
            let (units, reads, missing) = match &self.inner {
                None => self.plan_raw_chunks(origin, shape)?,
                Some(_) => self.plan_raw_shards(origin, shape)?,
            };
            let chunk = self.chunk_shape().to_vec();
            let l = layout::plan(&self.shape, &chunk, &chunk, origin, shape, self.esize, 0)?;
            if missing {
                self.fill_target(&mut dst, len)?;
            }
            if units.is_empty() {
                return Ok(());
            }
            let staging_len = units.len().checked_mul(l.slot_bytes()).ok_or_else(|| {
                usage(format!(
                    "{}: staging for {} chunks overflows",
                    self.path.display(),
                    units.len()
                ))
            })?;
            match dst {
                Target::Host(b) => {
                    let mut st = tiledio_io::try_alloc_zeroed(
                        staging_len,
                        &format!("{}: staging for {} chunks", self.path.display(), units.len()),
                    )?;
                    tiledio_io::read_files(&reads, &mut st, settings)?;
                    l.scatter_host(&st, b, &units).map_err(kernel_err)?;
                }
                Target::Device(d) => {
                    let mut st = DeviceBuffer::new(staging_len)?;
                    tiledio_io::read_files(&reads, &mut st, settings)?;
                    l.scatter_device(&st, d, &units).map_err(kernel_err)?;
                }
            }
            return Ok(());
        }
        // Codec path: decode whole units on the CPU.
        let units = layout::cells_in_box(&self.shape, &self.unit, origin, shape);
        let l = layout::plan(&self.shape, &self.unit, &self.unit, origin, shape, self.esize, 0)?;
        let budget = 1usize << 30;
        let per_batch = (budget / l.slot_bytes()).clamp(1, units.len().max(1));
        let mut host = tiledio_io::try_alloc_zeroed(
            per_batch.min(units.len()) * l.slot_bytes(),
            &format!("{}: decoded chunks", self.path.display()),
        )?;
        let mut dev = match &dst {
            Target::Device(_) => Some(DeviceBuffer::new(host.len().max(1))?),
            Target::Host(_) => None,
        };
        for batch in units.chunks(per_batch) {
            let st = &mut host[..batch.len() * l.slot_bytes()];
            self.decode_units(batch, st, l.slot_bytes())?;
            match (&mut dst, &mut dev) {
                (Target::Host(b), _) => l.scatter_host(st, b, batch).map_err(kernel_err)?,
                (Target::Device(d), Some(sd)) => {
                    sd.copy_from_host_at(0, st)?;
                    l.scatter_device(sd, d, batch).map_err(kernel_err)?;
                }
                (Target::Device(_), None) => return Err(internal("no device staging buffer for a device transfer")),
            }
        }
        Ok(())
    }

    fn fill_target(&self, dst: &mut Target<'_>, len: usize) -> Result<()> {
        match dst {
            Target::Host(b) => layout::fill_pattern(b, &self.fill),
            Target::Device(d) => tiledio_kernels::fill_device(d, len, &self.fill).map_err(kernel_err)?,
        }
        Ok(())
    }

    /// Raw unsharded chunks: one read per present chunk; `missing` when any is absent.
    fn plan_raw_chunks(&self, origin: &[u64], shape: &[u64]) -> Result<(Vec<u64>, Vec<FileRead>, bool)> {
        let all = layout::cells_in_box(&self.shape, &self.unit, origin, shape);
        let slot = prod(&self.unit) as usize * self.esize;
        let sizes: Vec<Option<u64>> = all
            .par_iter()
            .map(|&u| {
                let p = self.unit_path(u);
                match std::fs::metadata(&p) {
                    Ok(m) if !m.is_file() => Err(ZarrError::Io(tiledio_io::IoError::NotRegularFile {
                        path: p,
                        kind: tiledio_io::file_kind(m.file_type()),
                    })),
                    Ok(m) => Ok(Some(m.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(fs_err(p, "stat")(e)),
                }
            })
            .collect::<Result<_>>()?;
        let mut units = Vec::with_capacity(all.len());
        let mut reads = Vec::with_capacity(all.len());
        let mut missing = false;
        for (&u, size) in all.iter().zip(sizes) {
            match size {
                None => missing = true,
                Some(n) if n as usize != slot => {
                    return Err(ZarrError::Chunk {
                        path: self.unit_path(u),
                        chunk: self.unit_coords(u),
                        message: format!(
                            "chunk file of {n} bytes, expected {slot} (an uncompressed chunk of shape {:?} with {}-byte elements)",
                            self.unit, self.esize
                        ),
                    });
                }
                Some(_) => {
                    reads.push(FileRead {
                        path: self.unit_path(u),
                        file_offset: 0,
                        len: slot,
                        dst_offset: units.len() * slot,
                    });
                    units.push(u);
                }
            }
        }
        Ok((units, reads, missing))
    }

    /// Raw shards: read each shard's index, then one read per present inner chunk. Units are
    /// linear indices in the inner chunk grid.
    fn plan_raw_shards(&self, origin: &[u64], shape: &[u64]) -> Result<(Vec<u64>, Vec<FileRead>, bool)> {
        let inner = self.chunk_shape().to_vec();
        let r = self.shape.len();
        let (idx_bytes, n_inner) = self.shard_index_bytes();
        let ig: Vec<u64> = self.unit.iter().zip(&inner).map(|(u, c)| u / c).collect();
        let cgrid: Vec<u64> = self.shape.iter().zip(&inner).map(|(s, c)| s.div_ceil(*c)).collect();
        let chunk_bytes = prod(&inner) as usize * self.esize;
        let wanted: std::collections::HashSet<u64> = layout::cells_in_box(&self.shape, &inner, origin, shape)
            .into_iter()
            .collect();
        let shards = layout::cells_in_box(&self.shape, &self.unit, origin, shape);
        type Entries = Vec<(u64, Option<(u64, PathBuf)>)>;
        let per_shard: Vec<Entries> = shards
            .par_iter()
            .map(|&s| -> Result<Entries> {
                let p = self.unit_path(s);
                let sc = self.unit_coords(s);
                let corrupt = |message: String| ZarrError::Chunk {
                    path: p.clone(),
                    chunk: sc.clone(),
                    message,
                };
                let index = match open_regular(&p)? {
                    Some((f, flen)) => {
                        use std::os::unix::fs::FileExt;
                        if flen < idx_bytes as u64 {
                            return Err(corrupt(format!(
                                "shard of {flen} bytes is shorter than its index ({idx_bytes} bytes)"
                            )));
                        }
                        let mut idx =
                            tiledio_io::try_alloc_zeroed(idx_bytes, &format!("{}: shard index", p.display()))?;
                        f.read_exact_at(&mut idx, flen - idx_bytes as u64)
                            .map_err(fs_err(&p, "read shard index"))?;
                        let fmt = ShardIndex {
                            at_end: true,
                            crc: true,
                            big_endian: false,
                            entries: n_inner,
                            bytes: idx_bytes,
                        };
                        Some(fmt.entries(&idx, 0..flen - idx_bytes as u64, corrupt)?)
                    }
                    None => None,
                };
                let mut out = Vec::new();
                let mut ic = vec![0u64; r];
                let mut gc = vec![0u64; r];
                for i in 0..n_inner as u64 {
                    layout::unravel(i, &ig, &mut ic);
                    for d in 0..r {
                        gc[d] = sc[d] * ig[d] + ic[d];
                    }
                    if (0..r).any(|d| gc[d] >= cgrid[d]) {
                        continue;
                    }
                    let g = layout::ravel(&gc, &cgrid);
                    if !wanted.contains(&g) {
                        continue;
                    }
                    match index.as_ref().and_then(|e| e[i as usize]) {
                        None => out.push((g, None)),
                        Some((off, n)) => {
                            if n != chunk_bytes as u64 {
                                return Err(corrupt(format!(
                                    "inner chunk {i}: {n} bytes at offset {off}, expected {chunk_bytes} (uncompressed)"
                                )));
                            }
                            out.push((g, Some((off, p.clone()))));
                        }
                    }
                }
                Ok(out)
            })
            .collect::<Result<_>>()?;
        let mut units = Vec::new();
        let mut reads = Vec::new();
        let mut missing = false;
        for (g, e) in per_shard.into_iter().flatten() {
            match e {
                None => missing = true,
                Some((off, path)) => {
                    reads.push(FileRead {
                        path,
                        file_offset: off,
                        len: chunk_bytes,
                        dst_offset: units.len() * chunk_bytes,
                    });
                    units.push(g);
                }
            }
        }
        // Shards missing altogether.
        let covered: usize = units.len();
        if covered < wanted.len() {
            missing = true;
        }
        Ok((units, reads, missing))
    }

    /// Reads and decodes units (C-order slots), fill value for missing ones.
    fn decode_units(&self, units: &[u64], staging: &mut [u8], slot: usize) -> Result<()> {
        let codecs = self.array.codecs();
        let shape = nz(&self.unit);
        let copts = CodecOptions::default();
        // A compressed chunk (or shard) file may be a little larger than its data, never much.
        let index = self.shard_index.map_or(0, |i| i.bytes as u64);
        let max_file = (slot as u64)
            .saturating_mul(2)
            .saturating_add(index)
            .saturating_add(1 << 20);
        staging
            .par_chunks_mut(slot)
            .zip(units.par_iter())
            .try_for_each(|(dst, &u)| {
                let p = self.unit_path(u);
                let cerr = |message: String| ZarrError::Chunk {
                    path: p.clone(),
                    chunk: self.unit_coords(u),
                    message,
                };
                let Some(bytes) = read_regular(&p, max_file, |n| {
                    cerr(format!(
                        "chunk file of {n} bytes is too large for a chunk of {slot} bytes (at most {max_file})"
                    ))
                })?
                else {
                    layout::fill_pattern(dst, &self.fill);
                    return Ok(());
                };
                if let Some(ix) = &self.shard_index {
                    ix.check(&bytes, cerr)?;
                }
                let dec = no_panic(&p, "decoding a chunk", || {
                    codecs
                        .decode(
                            bytes.into(),
                            &shape,
                            self.array.data_type(),
                            self.array.fill_value(),
                            &copts,
                        )
                        .map_err(|e| cerr(e.to_string()))?
                        .into_fixed()
                        .map(|d| d.into_owned())
                        .map_err(|e| cerr(e.to_string()))
                })?;
                if dec.len() != dst.len() {
                    return Err(cerr(format!("decoded to {} bytes, expected {}", dec.len(), dst.len())));
                }
                dst.copy_from_slice(&dec);
                Ok(())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_never_recreates_a_removed_parent_folder() {
        // a signal's clean-up removed the group's temporary folder while a writer was about to
        // start its next level: the level fails instead of bringing the temporary back
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join(".out.zarr.tiledio-1-0.tmp");
        let spec = ArraySpec::new(&[4, 4], &[2, 2], DataType::U8);
        assert!(ZarrArray::create_in_place(gone.join("1"), &spec).is_err());
        assert!(!gone.exists());
        // an existing parent is fine
        std::fs::create_dir(&gone).unwrap();
        ZarrArray::create_in_place(gone.join("1"), &spec).unwrap();
        assert!(gone.join("1").is_dir());
    }
}
