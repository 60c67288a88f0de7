//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing a TIFF file.
///
/// Each variant says what failed and where (file, page, tag, tile, byte offset). A malformed
/// or hostile file gives one of these, never a panic.
///
/// ```
/// let err = tiledio_tiff::Slide::open("/no/such/file.tif").unwrap_err();
/// assert!(matches!(err, tiledio_tiff::TiffError::Io(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TiffError {
    /// The byte-range I/O layer failed (open, read past the end, short read, GPU, ...).
    #[error(transparent)]
    Io(#[from] tiledio_io::IoError),
    /// The file does not start with a TIFF or BigTIFF header.
    #[error("{}: not a TIFF file: {reason}", path.display())]
    NotTiff {
        /// The file.
        path: PathBuf,
        /// What was wrong with the header.
        reason: String,
    },
    /// The file's structure is broken: an IFD, a tag or a tile table that cannot be right.
    #[error("{}: malformed TIFF (page {page}): {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The page (IFD index in reading order; SubIFDs follow their parent).
        page: usize,
        /// What is wrong.
        reason: String,
    },
    /// A tile or strip points outside the file.
    #[error("{}: page {page}, tile {tile}: {len} bytes at offset {offset} end past the end of the file ({file_len} bytes)", path.display())]
    TileOutOfFile {
        /// The file.
        path: PathBuf,
        /// The page.
        page: usize,
        /// The tile (or strip) index.
        tile: usize,
        /// Where the tile's bytes start.
        offset: u64,
        /// The tile's byte count.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A tile or strip the read needs has no bytes (byte count zero) or too few bytes.
    #[error("{}: page {page}, tile {tile}: {reason}", path.display())]
    BadTile {
        /// The file.
        path: PathBuf,
        /// The page.
        page: usize,
        /// The tile (or strip) index.
        tile: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A tile's compressed bytes could not be decoded.
    #[error("{}: page {page}, tile {tile} (at byte offset {offset}): {codec} decode failed: {reason}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The page.
        page: usize,
        /// The tile (or strip) index.
        tile: usize,
        /// Where the tile's stored bytes start in the file.
        offset: u64,
        /// The codec.
        codec: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A valid TIFF feature this crate does not handle (JPEG 2000, planar-separate, 1-bit...).
    #[error("{}: page {page}: unsupported: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The page.
        page: usize,
        /// What is not supported, e.g. "compression 33003 (Aperio JPEG 2000 YCbCr)".
        what: String,
    },
    /// The caller asked for something that does not exist or does not fit.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An internal invariant failed: a bug in tiledio, not a problem with the file.
    #[error("internal error (a bug in tiledio): {0}")]
    Internal(String),
    /// Reading the source of a streaming write failed ([`crate::RowSource`]).
    #[error("{0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Encoding a tile for writing failed.
    #[error("encoding with {codec} failed: {reason}")]
    Encode {
        /// The codec.
        codec: &'static str,
        /// What the encoder said.
        reason: String,
    },
}

/// Shorthand for `Result<T, TiffError>`.
pub type Result<T, E = TiffError> = std::result::Result<T, E>;
