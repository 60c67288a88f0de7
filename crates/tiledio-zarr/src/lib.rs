//! Zarr v3 and v2 arrays to and from GPU or host memory, with the v3 sharding codec and
//! OME-Zarr multiscales.
//!
//! [`zarrs`] provides metadata, chunk keys and codecs; the chunk bytes move through
//! [`tiledio_io`]: raw (uncompressed) chunks and shards are gathered from a GPU or host array
//! into chunk-major staging by one pass (an NVRTC kernel on the GPU, a rayon loop on the CPU)
//! and written as many files in flight ([`tiledio_io::write_files`]), each under a temporary
//! name renamed when complete; reads go the other way ([`tiledio_io::read_files`]). Compressed
//! chunks are encoded and decoded by zarrs' codecs on the CPU in parallel.
//!
//! - [`ZarrArray`]: create (v3 default, v2), open, write a whole array or unit-aligned
//!   regions ([`ZarrArray::write_region`]), read whole arrays or any region
//!   ([`ZarrArray::read_region`]) into host or GPU memory.
//! - [`TileWriter`]: tiles in any order and alignment, memory bounded by the units in progress.
//! - [`ome`]: OME-Zarr 0.4 / 0.5 multiscale groups.
//!
//! Crash safety: chunk files are complete or absent, and a new array's metadata is written
//! last ([`ZarrArray::finish`]), so an interrupted write is not an array. Durability is
//! explicit ([`Durability`]).

mod array;
mod error;
mod layout;
pub mod ome;
mod spec;
mod tiles;

pub use array::{Durability, WriteOptions, ZarrArray};
pub use error::{Result, ZarrError};
/// The JSON crate of the metadata and attribute types ([`ArraySpec::attributes`]).
pub use serde_json;
pub use spec::{ArraySpec, BloscCompressor, Compression, DataType, ZarrDataType, ZarrVersion};
pub use tiledio_io::{Border, Region};
pub use tiles::TileWriter;
