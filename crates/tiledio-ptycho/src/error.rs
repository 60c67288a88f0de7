//! The error type of frame stores and preprocessing.

use std::path::PathBuf;

/// What can go wrong reading a frame store or preprocessing frames. Messages are one line and
/// name the file (and for HDF5 the dataset, chunk and byte offset).
///
/// ```
/// let e = tiledio_ptycho::NpyStore::open("/nonexistent.npy").unwrap_err();
/// assert!(matches!(e, tiledio_ptycho::PtychoError::Io(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PtychoError {
    /// Reading a file, GPU memory, the memory budget ([`tiledio_io`]).
    #[error(transparent)]
    Io(#[from] tiledio_io::IoError),
    /// Invalid preprocessing options or a kernel failure ([`tiledio_kernels`]).
    #[error(transparent)]
    Kernel(#[from] tiledio_kernels::KernelError),
    /// Reading or writing a Zarr array ([`tiledio_zarr`]).
    #[error(transparent)]
    Zarr(#[from] tiledio_zarr::ZarrError),
    /// A file whose header or metadata is malformed (raw, `.npy`, HDF5 structure).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the byte offset where it applies.
        message: String,
    },
    /// A chunk of an HDF5 dataset that does not decode to exactly its size.
    #[error("{path}:{dataset}: chunk {chunk} at byte {offset}: {message}")]
    Chunk {
        /// The file holding the chunk.
        path: PathBuf,
        /// The dataset.
        dataset: String,
        /// The chunk's index (frame order).
        chunk: u64,
        /// The chunk's file offset.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A valid file using a feature this reader does not implement (a filter, a layout, a
    /// big-endian type).
    #[error("{path}: unsupported: {what}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature.
        what: String,
    },
    /// An HDF5 object (dataset or group) that is not in the file: a missing link, or a link to
    /// something that is not a group on the way.
    #[error("{path}: {object}: not found: {reason}")]
    NotFound {
        /// The file searched.
        path: PathBuf,
        /// The path asked for.
        object: String,
        /// Which part is missing.
        reason: String,
    },
    /// Following an HDF5 external link failed (its file is missing or not HDF5, or its target
    /// does not resolve).
    #[error("{path}: external link {link} to {target}: {source}")]
    ExternalLink {
        /// The file holding the link.
        path: PathBuf,
        /// The link's path in that file.
        link: String,
        /// Where it points (`FILE:/path`).
        target: String,
        /// Why it could not be followed.
        #[source]
        source: Box<PtychoError>,
    },
    /// A live stream failed (socket, protocol, malformed message, missing frames):
    /// [`crate::stream::StreamError`] names the endpoint and the message or frame.
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
    /// A request that does not fit the store (frames past the end, rows outside the frame, a
    /// destination of the wrong size, a missing dataset name).
    #[error("{0}")]
    Usage(String),
}

/// The result type of this crate.
pub type Result<T, E = PtychoError> = std::result::Result<T, E>;

pub(crate) fn format_err(path: &std::path::Path, message: impl Into<String>) -> PtychoError {
    PtychoError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A CUDA failure of the preprocessing's own GPU work (page-locked buffers, events, copies),
/// reported as the kernel layer reports its own.
pub(crate) fn gpu(e: tiledio_io::IoError) -> PtychoError {
    PtychoError::Kernel(tiledio_kernels::KernelError::from(e))
}

pub(crate) fn usage(message: impl Into<String>) -> PtychoError {
    PtychoError::Usage(message.into())
}

pub(crate) fn unsupported(path: &std::path::Path, what: impl Into<String>) -> PtychoError {
    PtychoError::Unsupported {
        path: path.to_path_buf(),
        what: what.into(),
    }
}
