//! Rust errors as Python exceptions, and the one way the binding runs library calls:
//! without the GIL, with panics caught.
//!
//! Every library error becomes one of two Python exceptions, with the library's one-line
//! message:
//!
//! - [`TiledioError`] (a subclass of `OSError`) for I/O, format, GPU and file-system problems:
//!   a missing or malformed file, a decode failure, no GPU, an output that exists;
//! - `ValueError` for arguments that cannot work: a level or region that does not exist, a
//!   buffer of the wrong type or shape, an unknown codec name.
//!
//! A panic inside a library call becomes a [`TiledioError`] saying so (never an abort, and
//! never `pyo3_runtime.PanicException`, which `except Exception` would not catch).

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use std::panic::AssertUnwindSafe;
use tiledio::convert::ConvertError;
use tiledio::io::IoError;
use tiledio::kernels::KernelError;
use tiledio::pipeline::PipelineError;
use tiledio::ptycho::PtychoError;
use tiledio::tiff::TiffError;
use tiledio::zarr::ZarrError;

pyo3::create_exception!(
    tiledio,
    TiledioError,
    PyOSError,
    "An I/O, format or GPU problem reported by tiledio (a subclass of OSError).\n\n\
     The message is one line naming the file (and where it applies the page, tile, chunk and\n\
     byte offset), e.g. ``slide.tif: page 2, tile 17: deflate decode failed: ...``.\n\
     Arguments that cannot work raise ValueError instead."
);

/// Which Python exception a library error becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `ValueError`: the caller's arguments cannot work.
    Argument,
    /// [`TiledioError`]: everything else.
    Io,
}

/// A library error, classified, with its one-line message.
#[derive(Debug)]
pub(crate) struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    /// A `ValueError` with this message.
    pub(crate) fn argument(message: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Argument,
            message: message.into(),
        }
    }

    /// A [`TiledioError`] with this message.
    pub(crate) fn io(message: impl Into<String>) -> Failure {
        Failure {
            kind: Kind::Io,
            message: message.into(),
        }
    }

    fn of(kind: Kind, e: &dyn std::error::Error) -> Failure {
        Failure {
            kind,
            message: one_line(&e.to_string()),
        }
    }
}

/// The message with line breaks (a compiler log, a multi-line description) folded into one line.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, l) in s
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str(" | ");
        }
        out.push_str(if i > 0 { l.trim_start() } else { l });
    }
    out
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        match f.kind {
            Kind::Argument => PyValueError::new_err(f.message),
            Kind::Io => TiledioError::new_err(f.message),
        }
    }
}

/// How a library error is classified: [`Kind::Argument`] for the variants that say the
/// caller's arguments cannot work, the kind of the wrapped error for the variants that wrap
/// another library error, [`Kind::Io`] for the rest.
trait Classify {
    /// The exception this error becomes.
    fn kind(&self) -> Kind;
}

/// Implements [`Classify`] for each error type from its table row: `argument` lists the
/// patterns of its `ValueError` variants, `nested` the variants wrapping another error.
macro_rules! classify {
    ($($t:ty { argument: [$($arg:pat),*], nested: [$($wrap:path),*] })*) => {$(
        impl Classify for $t {
            fn kind(&self) -> Kind {
                match self {
                    $($arg => Kind::Argument,)*
                    $($wrap(inner) => inner.kind(),)*
                    #[allow(unreachable_patterns)]
                    _ => Kind::Io,
                }
            }
        }
    )*};
}

classify! {
    IoError { argument: [IoError::InvalidArgument(_)], nested: [] }
    TiffError { argument: [TiffError::InvalidArgument(_)], nested: [TiffError::Io] }
    ZarrError { argument: [ZarrError::Usage { .. }], nested: [ZarrError::Io] }
    KernelError { argument: [KernelError::Invalid(_)], nested: [KernelError::Io] }
    PtychoError {
        argument: [PtychoError::Usage(_)],
        nested: [PtychoError::Io, PtychoError::Kernel, PtychoError::Zarr]
    }
    ConvertError {
        argument: [ConvertError::Usage(_)],
        nested: [ConvertError::Io, ConvertError::Zarr, ConvertError::Tiff]
    }
    PipelineError {
        argument: [PipelineError::Usage(_)],
        nested: [PipelineError::Io, PipelineError::Zarr, PipelineError::Kernel, PipelineError::Tiff]
    }
}

impl<E: Classify + std::error::Error> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::of(e.kind(), &e)
    }
}

/// The result of a library call made by the binding.
pub(crate) type Res<T> = std::result::Result<T, Failure>;

/// What a caught panic said.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "no message".into())
}

/// The [`TiledioError`] a caught panic becomes.
fn panic_error(p: &(dyn std::any::Any + Send)) -> PyErr {
    TiledioError::new_err(format!(
        "internal error (a bug in tiledio, please report it): a Rust panic: {}",
        one_line(&panic_message(p))
    ))
}

/// Runs `f` without the GIL (other Python threads run meanwhile) and turns its error into a
/// Python exception, and a panic into a [`TiledioError`].
pub(crate) fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> Res<T> + Send) -> PyResult<T> {
    match py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(f))) {
        Ok(r) => r.map_err(PyErr::from),
        Err(p) => Err(panic_error(&*p)),
    }
}

/// [`detach`] for work that must keep the GIL (it calls back into Python): errors and panics
/// become exceptions the same way.
pub(crate) fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(&*p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(one_line("a\nb\n\n  c  \n"), "a | b | c");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn library_errors_are_classified() {
        let e: Failure = IoError::InvalidArgument("bad".into()).into();
        assert_eq!(e.kind, Kind::Argument);
        let e: Failure = IoError::NoGpu { reason: "none".into() }.into();
        assert_eq!((e.kind, e.message.as_str()), (Kind::Io, "no GPU: none"));
        let e: Failure = tiledio::tiff::TiffError::InvalidArgument("level 9".into()).into();
        assert_eq!(e.kind, Kind::Argument);
        let e: Failure = tiledio::tiff::TiffError::Io(IoError::NoGpu { reason: "x".into() }).into();
        assert_eq!(e.kind, Kind::Io);
        let e: Failure = tiledio::zarr::ZarrError::Usage { what: "w".into() }.into();
        assert_eq!(e.kind, Kind::Argument);
        let e: Failure = tiledio::ptycho::PtychoError::Usage("u".into()).into();
        assert_eq!(e.kind, Kind::Argument);
        let e: Failure = tiledio::kernels::KernelError::Invalid("k".into()).into();
        assert_eq!(e.kind, Kind::Argument);
    }
}
