//! What the round-trip tests on the CPU (zarr_roundtrip.rs) and on the GPU (zarr_gpu.rs)
//! share: the cases every codec × data type round trip covers, and sharding where a case asks
//! for it.

use tiledio_zarr::{ArraySpec, BloscCompressor, Compression, DataType, ZarrVersion};

/// The codecs every round trip covers.
pub(crate) const CODECS: [Compression; 4] = [
    Compression::None,
    Compression::Zstd { level: 3 },
    Compression::Gzip { level: 5 },
    Compression::Blosc {
        cname: BloscCompressor::Lz4,
        level: 5,
        shuffle: true,
    },
];

/// The data types every round trip covers.
pub(crate) const DTYPES: [DataType; 4] = [DataType::U8, DataType::U16, DataType::U32, DataType::F32];

/// One case of a codec × data type round trip.
pub(crate) struct Case<const N: usize> {
    /// The case's number, from 1 (a seed and a file name).
    pub(crate) n: u64,
    /// The format version.
    pub(crate) version: ZarrVersion,
    /// The shard shape, if sharded.
    pub(crate) shards: Option<[u64; N]>,
    /// The codec.
    pub(crate) codec: Compression,
    /// The data type.
    pub(crate) dtype: DataType,
}

impl<const N: usize> Case<N> {
    /// The spec of an array of `shape` in chunks of `chunk` for this case.
    pub(crate) fn spec(&self, shape: &[u64; N], chunk: &[u64; N]) -> ArraySpec {
        let spec = ArraySpec::new(shape, chunk, self.dtype)
            .with_compression(self.codec)
            .with_version(self.version);
        sharded_if(spec, self.shards)
    }
}

/// Every codec × data type, for v3 without and with shards of `shard` and for v2 (which has
/// no shards), numbered from 1 in that order.
pub(crate) fn codec_cases<const N: usize>(shard: [u64; N]) -> Vec<Case<N>> {
    let layouts = [
        (ZarrVersion::V3, None),
        (ZarrVersion::V3, Some(shard)),
        (ZarrVersion::V2, None),
    ];
    let mut out = Vec::new();
    for (version, shards) in layouts {
        for codec in CODECS {
            for dtype in DTYPES {
                let n = out.len() as u64 + 1;
                out.push(Case {
                    n,
                    version,
                    shards,
                    codec,
                    dtype,
                });
            }
        }
    }
    out
}

/// `spec`, sharded in `shards` where given.
pub(crate) fn sharded_if<const N: usize>(spec: ArraySpec, shards: Option<[u64; N]>) -> ArraySpec {
    match shards {
        Some(s) => spec.with_shards(&s),
        None => spec,
    }
}
