//! Measurements behind `tiledio bench` and `tiledio demo`, as a library so that the CLI only
//! parses arguments and prints, and the Python package can run the same measurements.
//!
//! Every measurement checks its bytes against a reference read before it is timed, then times
//! `repeats` runs and reports the median with the minimum and maximum ([`Timing`]).
//!
//! The rows of `tiledio bench ptycho` are in [`ptycho`] (frames from a `.npy` file, the fused
//! kernel, loopback ZeroMQ streams, bitshuffle-LZ4 streams, pyzmq and JAX peers).
//!
//! The suite behind `tiledio bench all` and `--out DIR`: one row type ([`row::Row`]) for every
//! measurement and peer, the read ([`read`]) and write ([`write`]) benchmarks on generated
//! inputs, the Python peers ([`peers`]), the machine's description ([`machine`]), the whole
//! run ([`suite`]) and its report with CSV, JSON and PNG plots ([`report`]).

use crate::io::gpu::DeviceBuffer;
use crate::io::{FileHandle, ReadRange, Settings};
use crate::tiff::Slide;
use std::path::Path;
use std::time::Instant;

pub mod machine;
pub mod peers;
pub mod ptycho;
pub mod read;
pub mod report;
pub mod row;
pub mod suite;
pub mod write;

/// What can stop a measurement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A read or open failed.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// The slide could not be read.
    #[error(transparent)]
    Tiff(#[from] crate::tiff::TiffError),
    /// A timed read returned other bytes than the reference read.
    #[error("{0}: the bytes differ from the reference read")]
    Mismatch(String),
    /// A cold-cache run was asked for without the rights to drop the page cache.
    #[error("cannot drop the page cache (needs root): {0}")]
    DropCaches(std::io::Error),
    /// A Zarr array could not be written or read.
    #[error(transparent)]
    Zarr(#[from] crate::zarr::ZarrError),
    /// The inputs or output folders of the suite could not be made (the message says which).
    #[error("{0}")]
    Setup(String),
}

/// The median, minimum and maximum of repeated timings, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// The median.
    pub median: f64,
    /// The fastest run.
    pub min: f64,
    /// The slowest run.
    pub max: f64,
}

impl Timing {
    /// The median, minimum and maximum of `times` (seconds; `None` when empty).
    ///
    /// ```
    /// let t = tiledio::bench::Timing::of(&[3.0, 1.0, 2.0]).unwrap();
    /// assert_eq!((t.median, t.min, t.max), (2.0, 1.0, 3.0));
    /// ```
    pub fn of(times: &[f64]) -> Option<Timing> {
        let mut v = times.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        Some(Timing {
            median: *v.get(v.len() / 2)?,
            min: *v.first()?,
            max: *v.last()?,
        })
    }

    /// Bytes per second at the median.
    pub fn rate(&self, bytes: u64) -> f64 {
        bytes as f64 / self.median
    }
}

/// Drops the page cache (`sync`, then `3 > /proc/sys/vm/drop_caches`), for cold-cache runs.
///
/// # Errors
/// [`BenchError::DropCaches`] without the rights to (not root, or in a container).
pub fn drop_page_cache() -> Result<(), BenchError> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(BenchError::DropCaches)
}

/// The stored bytes of every tile of a slide level as ranges packed back to back (what
/// `tiledio bench read` moves).
///
/// # Errors
/// As [`Slide::open`] and [`Slide::tile_ranges`].
pub fn tile_ranges(path: &Path, level: usize) -> Result<Vec<ReadRange>, BenchError> {
    let mut dst = 0usize;
    let mut out = Vec::new();
    for (o, c) in Slide::open(path)?.tile_ranges(level)? {
        let len = usize::try_from(c).map_err(|_| crate::io::IoError::InvalidArgument(format!("tile of {c} bytes")))?;
        out.push(ReadRange {
            file_offset: o,
            len,
            dst_offset: dst,
        });
        dst = dst
            .checked_add(len)
            .ok_or_else(|| crate::io::IoError::InvalidArgument("tile bytes overflow".into()))?;
    }
    Ok(out)
}

/// Where a measured read puts its bytes.
#[derive(Debug)]
pub enum ReadInto<'a> {
    /// Host memory.
    Host(&'a mut [u8]),
    /// GPU memory.
    Device(&'a mut DeviceBuffer),
}

/// Times `ranges` of `path` read with `settings` into `into`: one untimed read whose bytes must
/// equal `reference`, then `repeats` timed reads (the page cache dropped before each when
/// `cold`). Returns the timing and the backend report (what was used, and why not the others).
///
/// # Errors
/// [`BenchError::Mismatch`] when the bytes differ; I/O errors; [`BenchError::DropCaches`].
pub fn time_ranges(
    path: &Path,
    settings: &Settings,
    ranges: &[ReadRange],
    mut into: ReadInto<'_>,
    reference: &[u8],
    repeats: usize,
    cold: bool,
) -> Result<(Timing, String), BenchError> {
    let fh = FileHandle::open_with(path, settings)?;
    let read = |into: &mut ReadInto<'_>| -> Result<String, BenchError> {
        Ok(match into {
            ReadInto::Host(b) => fh.read_ranges(ranges, &mut **b)?.backend.to_string(),
            ReadInto::Device(d) => {
                fh.read_ranges(ranges, &mut **d)?;
                fh.backend_report()?.to_string()
            }
        })
    };
    let used = read(&mut into)?;
    let same = match &into {
        ReadInto::Host(b) => &b[..] == reference,
        ReadInto::Device(d) => d.to_host_vec()? == reference,
    };
    if !same {
        return Err(BenchError::Mismatch(format!("{} ({used})", path.display())));
    }
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        if cold {
            drop_page_cache()?;
        }
        let t = Instant::now();
        read(&mut into)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((
        Timing::of(&times).unwrap_or(Timing {
            median: 0.0,
            min: 0.0,
            max: 0.0,
        }),
        used,
    ))
}

/// Times whole reads of a slide level into GPU memory (`gpu`) or host memory with `settings`:
/// one untimed read checked against `reference` (the level's pixels), then `repeats` timed.
///
/// # Errors
/// [`BenchError::Mismatch`] when the pixels differ; read errors; [`BenchError::DropCaches`].
pub fn time_level(
    path: &Path,
    level: usize,
    settings: &Settings,
    gpu: bool,
    reference: &[u8],
    repeats: usize,
    cold: bool,
) -> Result<Timing, BenchError> {
    let slide = Slide::open_with(path, settings)?;
    let read = || -> Result<Vec<u8>, BenchError> {
        Ok(if gpu {
            slide.read_level_device(level)?.to_host()?.into_bytes()
        } else {
            slide.read_level(level)?.into_bytes()
        })
    };
    if read()? != reference {
        return Err(BenchError::Mismatch(format!("{} level {level}", path.display())));
    }
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        if cold {
            drop_page_cache()?;
        }
        let t = Instant::now();
        if gpu {
            drop(slide.read_level_device(level)?);
        } else {
            drop(slide.read_level(level)?);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(Timing::of(&times).unwrap_or(Timing {
        median: 0.0,
        min: 0.0,
        max: 0.0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_and_checked_reads() {
        assert_eq!(Timing::of(&[]), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let ranges = [ReadRange {
            file_offset: 2,
            len: 3,
            dst_offset: 0,
        }];
        let mut buf = [0u8; 3];
        let s = Settings::default();
        let (t, used) = time_ranges(&p, &s, &ranges, ReadInto::Host(&mut buf), b"234", 3, false).unwrap();
        assert!(t.min <= t.median && t.median <= t.max);
        assert_eq!(used, "host-pread");
        let e = time_ranges(&p, &s, &ranges, ReadInto::Host(&mut buf), b"999", 1, false).unwrap_err();
        assert!(matches!(e, BenchError::Mismatch(_)), "{e}");
    }
}
