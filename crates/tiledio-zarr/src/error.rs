//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing a Zarr array or group.
///
/// Each variant says what failed and where (the path, and the chunk where there is one).
/// Bad input gives one of these, never a panic.
///
/// ```
/// let e = tiledio_zarr::ZarrError::Usage { what: "region outside the array".into() };
/// assert!(e.to_string().contains("region"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZarrError {
    /// Moving bytes between files and memory failed (the I/O layer says where).
    #[error(transparent)]
    Io(#[from] tiledio_io::IoError),
    /// A file-system operation (create a folder, stat, read a small file) failed.
    #[error("{}: {op}: {source}", path.display())]
    Fs {
        /// The path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The array or group metadata is missing, unreadable or invalid.
    #[error("{}: invalid Zarr metadata: {message}", path.display())]
    Metadata {
        /// The array or group folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Nothing to open: no `zarr.json`, `.zarray` or `.zgroup` there, e.g. an interrupted write
    /// (metadata is written last).
    #[error("{}: not a Zarr array or group (no metadata; an interrupted write leaves none)", path.display())]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// The target of a create already holds data.
    #[error("{}: already exists and is not empty", path.display())]
    AlreadyExists {
        /// The path.
        path: PathBuf,
    },
    /// A chunk or shard could not be encoded or decoded, or is malformed.
    #[error("{}: chunk {chunk:?}: {message}", path.display())]
    Chunk {
        /// The chunk (or shard) file.
        path: PathBuf,
        /// Its grid indices.
        chunk: Vec<u64>,
        /// What is wrong.
        message: String,
    },
    /// zarrs refused to build the array from its metadata (unknown codec, bad chunk grid, ...).
    #[error("{}: {message}", path.display())]
    Zarrs {
        /// The array folder.
        path: PathBuf,
        /// What zarrs said.
        message: String,
    },
    /// The request does not fit the array: wrong rank, region outside it, buffer of the wrong
    /// size, unaligned region for an aligned write.
    #[error("invalid use: {what}")]
    Usage {
        /// What is wrong.
        what: String,
    },
    /// An internal invariant failed: a bug in tiledio, not a problem with the input.
    #[error("internal error (a bug in tiledio): {0}")]
    Internal(String),
    /// A feature of the array that this crate does not handle (variable-length data types, ...).
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported.
        what: String,
    },
}

/// The crate's result type.
pub type Result<T, E = ZarrError> = std::result::Result<T, E>;

/// An internal invariant failed (a bug in tiledio, not in the input).
pub(crate) fn internal(what: impl Into<String>) -> ZarrError {
    ZarrError::Internal(what.into())
}

pub(crate) fn usage(what: impl Into<String>) -> ZarrError {
    ZarrError::Usage { what: what.into() }
}

pub(crate) fn fs_err(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(std::io::Error) -> ZarrError {
    let path = path.into();
    move |source| ZarrError::Fs { path, op, source }
}
