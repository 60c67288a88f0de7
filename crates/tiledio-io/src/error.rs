//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong moving bytes between files and host or GPU memory.
///
/// Each variant says what failed and where: the file, the byte offset and the length.
/// Bad input gives one of these, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The file could not be opened or created.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The operating system refused access to the file.
    #[error("{}: permission denied", path.display())]
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// A read failed in the operating system.
    #[error("{}: read of {len} bytes at offset {offset} failed: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Where the read started.
        offset: u64,
        /// How many bytes were asked for.
        len: u64,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A write failed in the operating system.
    #[error("{}: write of {len} bytes at offset {offset} failed: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Where the write started.
        offset: u64,
        /// How many bytes were to be written.
        len: u64,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file ended before a read was complete (it shrank after it was opened).
    #[error("{}: short read: got {got} of {len} bytes at offset {offset}", path.display())]
    ShortRead {
        /// The file.
        path: PathBuf,
        /// Where the read started.
        offset: u64,
        /// How many bytes were asked for.
        len: u64,
        /// How many bytes the file gave.
        got: u64,
    },
    /// A requested range ends past the end of the file.
    #[error("{}: range of {len} bytes at offset {offset} ends past the end of the file ({file_len} bytes)", path.display())]
    PastEof {
        /// The file.
        path: PathBuf,
        /// Where the range starts.
        offset: u64,
        /// The range's length.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A range does not fit in the destination or source buffer.
    #[error("buffer of {capacity} bytes too small: a range needs bytes {start}..{end}")]
    BufferTooSmall {
        /// First byte the range touches in the buffer.
        start: u64,
        /// One past the last byte the range touches.
        end: u64,
        /// The buffer's length.
        capacity: u64,
    },
    /// Two ranges of one read write the same destination bytes.
    #[error("destination ranges overlap at byte {at}")]
    OverlappingDestinations {
        /// First destination byte written by both.
        at: u64,
    },
    /// No usable GPU: the driver library is missing, no device, or the driver failed to start.
    #[error("no GPU: {reason}")]
    NoGpu {
        /// Why.
        reason: String,
    },
    /// A GPU allocation failed for lack of memory.
    #[error("out of GPU memory: asked for {requested} bytes, {free} of {total} free")]
    OutOfDeviceMemory {
        /// Bytes asked for.
        requested: u64,
        /// Bytes free on the device at the time.
        free: u64,
        /// Bytes on the device.
        total: u64,
    },
    /// A CUDA driver call failed.
    #[error("CUDA error in {op}: {message}")]
    Cuda {
        /// The driver call.
        op: &'static str,
        /// The driver's name and description of the error.
        message: String,
    },
    /// Compiling a GPU kernel with NVRTC failed.
    #[error("NVRTC could not compile {name}: {log}")]
    Compile {
        /// The kernel source's name.
        name: String,
        /// The compiler log.
        log: String,
    },
    /// A cuFile (GPUDirect Storage) call failed after the backend was chosen.
    #[error("{}: cuFile {op} of {len} bytes at offset {offset} failed: {message}", path.display())]
    CuFile {
        /// The file.
        path: PathBuf,
        /// The cuFile call.
        op: &'static str,
        /// Where the transfer started.
        offset: u64,
        /// Its length.
        len: u64,
        /// cuFile's error.
        message: String,
    },
    /// A finished file could not be moved into place.
    #[error("{}: cannot move the finished file into place from {}: {source}", path.display(), temp.display())]
    Commit {
        /// The file's final name.
        path: PathBuf,
        /// The temporary file.
        temp: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A buffer would exceed the memory budget (`TILEDIO_MAX_MEMORY`), or the system refused it.
    #[error(
        "{what}: {bytes} bytes exceed the memory budget of {budget} bytes (raise TILEDIO_MAX_MEMORY, or read a smaller region)"
    )]
    OutOfMemory {
        /// What the buffer was for.
        what: String,
        /// Its size.
        bytes: u64,
        /// The budget in force.
        budget: u64,
    },
    /// A path that must be a regular file is something else (a FIFO, a device, a directory).
    #[error("{}: not a regular file ({kind}); only regular files are read or replaced", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// An output path cannot be used (it is the input, an existing directory, ...).
    #[error("{}: {reason}", path.display())]
    BadOutput {
        /// The output path.
        path: PathBuf,
        /// Why it cannot be written.
        reason: String,
    },
    /// A setting (or its `TILEDIO_*` environment variable) has a value that cannot be used.
    #[error("invalid setting {name}={value:?}: {reason}")]
    Setting {
        /// The setting or environment variable.
        name: &'static str,
        /// The value given.
        value: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// Arguments that do not describe a valid array, view or region.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An invariant of tiledio itself failed (a bug, not a problem with the input): a placement
    /// planned outside its buffer.
    #[error("internal error (please report): {0}")]
    Internal(#[from] crate::disjoint::OutOfBounds),
}

impl IoError {
    /// Maps an `open(2)` failure, turning `EACCES`/`EPERM` into [`IoError::PermissionDenied`].
    pub(crate) fn open(path: &std::path::Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            IoError::PermissionDenied {
                path: path.to_path_buf(),
            }
        } else {
            IoError::Open {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_are_their_own_variant() {
        let p = std::path::Path::new("/data/slide.tif");
        let e = IoError::open(p, std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(matches!(&e, IoError::PermissionDenied { path } if path == p));
        assert_eq!(e.to_string(), "/data/slide.tif: permission denied");
        let e = IoError::open(p, std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(matches!(e, IoError::Open { .. }));
    }
}
