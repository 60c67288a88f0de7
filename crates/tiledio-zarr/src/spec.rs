//! What an array to create looks like: shape, chunks, shards, data type, compression, version.

use crate::error::{Result, usage};
use serde_json::{Value, json};

/// Zarr format version.
///
/// ```
/// assert_eq!(tiledio_zarr::ZarrVersion::default(), tiledio_zarr::ZarrVersion::V3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZarrVersion {
    /// Zarr v2 (`.zarray`, `.zattrs`; no sharding).
    V2,
    /// Zarr v3 (`zarr.json`), the default.
    #[default]
    V3,
}

/// Element data type (stored little-endian): tiledio's one element-type enum
/// ([`tiledio_io::ElementType`]), with Zarr's names through [`ZarrDataType`].
///
/// ```
/// use tiledio_zarr::{DataType, ZarrDataType};
/// assert_eq!(DataType::U16.size(), 2);
/// assert_eq!(DataType::from_name("float32"), Some(DataType::F32));
/// assert_eq!(DataType::from_name("<u4"), Some(DataType::U32));
/// ```
pub use tiledio_io::ElementType as DataType;

/// Zarr's names of an element type.
pub trait ZarrDataType: Sized {
    /// The Zarr v3 name (`"uint8"`, `"float32"`, ...).
    fn v3_name(self) -> &'static str;
    /// The Zarr v2 (NumPy) name, little-endian (`"|u1"`, `"<f4"`, ...).
    fn v2_name(self) -> &'static str;
    /// Parses a v3 name or a v2 NumPy name of either byte order (`">u2"` gives `U16`).
    fn from_name(name: &str) -> Option<Self>;
}

impl ZarrDataType for DataType {
    fn v3_name(self) -> &'static str {
        self.name()
    }

    fn v2_name(self) -> &'static str {
        self.npy_descr()
    }

    fn from_name(name: &str) -> Option<DataType> {
        let v2 = name.trim_start_matches(['<', '>', '|', '=']);
        DataType::ALL
            .into_iter()
            .find(|d| d.v3_name() == name || d.v2_name().trim_start_matches(['<', '|']) == v2)
    }
}

/// The fill value `v` as Zarr metadata writes it for elements of `t`.
fn fill_json(t: DataType, v: f64) -> Value {
    if t.is_float() {
        if v.is_nan() {
            json!("NaN")
        } else if v.is_infinite() {
            json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            json!(v)
        }
    } else if t.is_signed_int() {
        json!(v as i64)
    } else {
        json!(v as u64)
    }
}

/// Blosc's inner compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BloscCompressor {
    Lz4,
    Lz4hc,
    Blosclz,
    Zstd,
    Zlib,
}

impl BloscCompressor {
    fn name(self) -> &'static str {
        match self {
            BloscCompressor::Lz4 => "lz4",
            BloscCompressor::Lz4hc => "lz4hc",
            BloscCompressor::Blosclz => "blosclz",
            BloscCompressor::Zstd => "zstd",
            BloscCompressor::Zlib => "zlib",
        }
    }
}

/// How chunks are compressed.
///
/// ```
/// use tiledio_zarr::Compression;
/// assert_eq!(Compression::parse("zstd")?, Compression::Zstd { level: 3 });
/// assert_eq!(Compression::parse("gzip:6")?, Compression::Gzip { level: 6 });
/// assert_eq!(Compression::parse("none")?, Compression::None);
/// # Ok::<(), tiledio_zarr::ZarrError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Raw little-endian bytes (the `bytes` codec alone): the fast GPU path.
    #[default]
    None,
    /// Zstandard at `level`.
    Zstd {
        /// Compression level (1–22; negative for fast modes).
        level: i32,
    },
    /// gzip at `level` (0–9).
    Gzip {
        /// Compression level.
        level: u32,
    },
    /// Blosc with byte shuffle.
    Blosc {
        /// Inner compressor.
        cname: BloscCompressor,
        /// Level 0–9.
        level: u8,
        /// Byte shuffle on.
        shuffle: bool,
    },
}

impl Compression {
    /// Parses `none`, `zstd[:level]`, `gzip[:level]`, `blosc[:level]` (lz4 + shuffle),
    /// `blosc-zstd[:level]`.
    ///
    /// # Errors
    /// [`crate::ZarrError::Usage`] for anything else.
    pub fn parse(s: &str) -> Result<Compression> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (
                n,
                Some(
                    l.parse::<i32>()
                        .map_err(|_| usage(format!("bad compression level in {s:?}")))?,
                ),
            ),
            None => (s, None),
        };
        Ok(match name {
            "none" | "raw" | "bytes" => Compression::None,
            "zstd" => Compression::Zstd {
                level: level.unwrap_or(3),
            },
            "gzip" => Compression::Gzip {
                level: level.unwrap_or(5).clamp(0, 9) as u32,
            },
            "blosc" | "blosc-lz4" => Compression::Blosc {
                cname: BloscCompressor::Lz4,
                level: level.unwrap_or(5).clamp(0, 9) as u8,
                shuffle: true,
            },
            "blosc-zstd" => Compression::Blosc {
                cname: BloscCompressor::Zstd,
                level: level.unwrap_or(3).clamp(0, 9) as u8,
                shuffle: true,
            },
            _ => {
                return Err(usage(format!(
                    "unknown compression {s:?} (none, zstd, gzip, blosc, blosc-zstd)"
                )));
            }
        })
    }

    fn v3_codec(self, esize: usize) -> Option<Value> {
        match self {
            Compression::None => None,
            Compression::Zstd { level } => {
                Some(json!({"name": "zstd", "configuration": {"level": level, "checksum": false}}))
            }
            Compression::Gzip { level } => Some(json!({"name": "gzip", "configuration": {"level": level}})),
            Compression::Blosc { cname, level, shuffle } => Some(json!({"name": "blosc", "configuration": {
                "cname": cname.name(), "clevel": level, "shuffle": if shuffle { "shuffle" } else { "noshuffle" },
                "typesize": esize, "blocksize": 0}})),
        }
    }

    fn v2_compressor(self) -> Value {
        match self {
            Compression::None => Value::Null,
            Compression::Zstd { level } => json!({"id": "zstd", "level": level}),
            Compression::Gzip { level } => json!({"id": "gzip", "level": level}),
            Compression::Blosc { cname, level, shuffle } => {
                json!({"id": "blosc", "cname": cname.name(), "clevel": level, "shuffle": u8::from(shuffle), "blocksize": 0})
            }
        }
    }
}

/// The description of an array to create.
///
/// ```
/// use tiledio_zarr::{ArraySpec, Compression, DataType};
/// let spec = ArraySpec::new(&[1000, 800, 3], &[256, 256, 3], DataType::U8)
///     .with_shards(&[1024, 1024, 3])
///     .with_compression(Compression::Zstd { level: 3 });
/// assert_eq!(spec.metadata()?["codecs"][0]["name"], "sharding_indexed");
/// # Ok::<(), tiledio_zarr::ZarrError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ArraySpec {
    /// Array shape.
    pub shape: Vec<u64>,
    /// Chunk shape (the inner chunk shape when sharded).
    pub chunk_shape: Vec<u64>,
    /// Shard shape (v3 sharding codec): a multiple of `chunk_shape` in every dimension.
    pub shard_shape: Option<Vec<u64>>,
    /// Element type.
    pub data_type: DataType,
    /// Chunk compression.
    pub compression: Compression,
    /// Format version.
    pub version: ZarrVersion,
    /// Fill value (converted to the data type).
    pub fill_value: f64,
    /// Dimension names (v3 `dimension_names`; ignored for v2).
    pub dimension_names: Option<Vec<String>>,
    /// User attributes.
    pub attributes: serde_json::Map<String, Value>,
}

impl ArraySpec {
    /// A v3 array, uncompressed, fill value 0.
    pub fn new(shape: &[u64], chunk_shape: &[u64], data_type: DataType) -> ArraySpec {
        ArraySpec {
            shape: shape.to_vec(),
            chunk_shape: chunk_shape.to_vec(),
            shard_shape: None,
            data_type,
            compression: Compression::None,
            version: ZarrVersion::V3,
            fill_value: 0.0,
            dimension_names: None,
            attributes: Default::default(),
        }
    }

    /// Sets the shard shape (v3 only).
    #[must_use]
    pub fn with_shards(mut self, shard_shape: &[u64]) -> Self {
        self.shard_shape = Some(shard_shape.to_vec());
        self
    }

    /// Sets the compression.
    #[must_use]
    pub fn with_compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }

    /// Sets the format version.
    #[must_use]
    pub fn with_version(mut self, v: ZarrVersion) -> Self {
        self.version = v;
        self
    }

    /// Sets the fill value.
    #[must_use]
    pub fn with_fill_value(mut self, v: f64) -> Self {
        self.fill_value = v;
        self
    }

    /// Sets dimension names.
    #[must_use]
    pub fn with_dimension_names(mut self, names: &[&str]) -> Self {
        self.dimension_names = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Checks the spec: ranks agree, no zero chunk, shards are multiples of chunks, no v2 shards.
    ///
    /// # Errors
    /// [`crate::ZarrError::Usage`] saying what is wrong.
    pub fn validate(&self) -> Result<()> {
        let r = self.shape.len();
        if r == 0 || r > 16 {
            return Err(usage(format!("rank {r}: 1 to 16 dimensions are supported")));
        }
        if self.chunk_shape.len() != r {
            return Err(usage(format!(
                "chunk shape {:?} does not match rank {r}",
                self.chunk_shape
            )));
        }
        if self.chunk_shape.contains(&0) {
            return Err(usage("chunk shape has a zero"));
        }
        if self.shape.iter().any(|&s| s > i64::MAX as u64) {
            return Err(usage(format!(
                "shape {:?} has a dimension larger than 2^63 - 1",
                self.shape
            )));
        }
        let unit = self.shard_shape.as_deref().unwrap_or(&self.chunk_shape);
        let bytes = unit
            .iter()
            .try_fold(self.data_type.size() as u64, |a, &u| a.checked_mul(u));
        if bytes.is_none_or(|b| b > isize::MAX as u64) {
            return Err(usage(format!(
                "{} shape {unit:?} overflows: one would exceed 2^63 bytes",
                if self.shard_shape.is_some() { "shard" } else { "chunk" }
            )));
        }
        if let Some(s) = &self.shard_shape {
            if self.version == ZarrVersion::V2 {
                return Err(usage("sharding needs Zarr v3"));
            }
            if s.len() != r || s.iter().zip(&self.chunk_shape).any(|(s, c)| *s == 0 || s % c != 0) {
                return Err(usage(format!(
                    "shard shape {s:?} must be a multiple of chunk shape {:?}",
                    self.chunk_shape
                )));
            }
        }
        if let Some(n) = &self.dimension_names
            && n.len() != r
        {
            return Err(usage(format!("{} dimension names for rank {r}", n.len())));
        }
        Ok(())
    }

    /// The shape of the storage unit: the shard when sharded, else the chunk.
    pub fn unit_shape(&self) -> &[u64] {
        self.shard_shape.as_deref().unwrap_or(&self.chunk_shape)
    }

    /// The metadata document (`zarr.json` for v3, `.zarray` for v2; v2 attributes go to `.zattrs`).
    ///
    /// # Errors
    /// As [`ArraySpec::validate`].
    pub fn metadata(&self) -> Result<Value> {
        self.validate()?;
        let dt = self.data_type;
        let fill = fill_json(dt, self.fill_value);
        Ok(match self.version {
            ZarrVersion::V3 => {
                let bytes = if dt.size() == 1 {
                    json!({"name": "bytes"})
                } else {
                    json!({"name": "bytes", "configuration": {"endian": "little"}})
                };
                let mut inner = vec![bytes];
                inner.extend(self.compression.v3_codec(dt.size()));
                let codecs = match &self.shard_shape {
                    None => inner,
                    Some(_) => vec![json!({"name": "sharding_indexed", "configuration": {
                        "chunk_shape": self.chunk_shape, "codecs": inner,
                        "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
                        "index_location": "end"}})],
                };
                let mut m = json!({
                    "zarr_format": 3, "node_type": "array", "shape": self.shape, "data_type": dt.v3_name(),
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": self.unit_shape()}},
                    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                    "fill_value": fill, "codecs": codecs, "attributes": self.attributes,
                });
                if let Some(n) = &self.dimension_names {
                    m["dimension_names"] = json!(n);
                }
                m
            }
            ZarrVersion::V2 => json!({
                "zarr_format": 2, "shape": self.shape, "chunks": self.chunk_shape, "dtype": dt.v2_name(),
                "compressor": self.compression.v2_compressor(), "fill_value": fill, "order": "C",
                "filters": null, "dimension_separator": ".",
            }),
        })
    }
}
