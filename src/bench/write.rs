//! `tiledio bench write`: an RGB u8 image resident in GPU memory (or host memory on the CPU)
//! written as a Zarr v3 array, by chunk size, sharded or not, and codec. Writes land in the
//! page cache (no fsync), as the peers' write figures; each repeat writes a new array, removed
//! afterwards (untimed), after a flush of the output's file system. The first repeat's array is
//! read back and checked against the source.

use super::read::SyntheticSlide;
use super::row::{Row, Status};
use super::{BenchError, Timing};
use crate::io::gpu::DeviceBuffer;
use crate::tiff::RowSource;
use crate::zarr::{ArraySpec, Compression, DataType, Durability, Region, ZarrArray};
use std::path::Path;
use std::time::Instant;

/// Options of [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Edge of the square RGB u8 image.
    pub side: u64,
    /// Chunk edges to try.
    pub chunks: Vec<u64>,
    /// Also sharded rows (shards of `max(4096, 2 × chunk)`, capped to the image).
    pub sharded: bool,
    /// Codecs (as [`Compression::parse`]: `none`, `zstd`, `blosc`, ...).
    pub codecs: Vec<String>,
    /// Timed repeats per row.
    pub repeats: usize,
    /// I/O threads.
    pub threads: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            side: 16384,
            chunks: vec![256, 512, 1024, 2048, 4096],
            sharded: true,
            // blosc too with `--codecs none,zstd,blosc`: each compressed codec adds about two
            // minutes to the write part on a 16-core machine, and zstd shows the trend
            codecs: vec!["none".into(), "zstd".into()],
            repeats: 3,
            threads: 16,
        }
    }
}

/// The shard edge used with `chunk` on an image of `side` (a multiple of the chunk).
///
/// ```
/// assert_eq!(tiledio::bench::write::shard_for(512, 24576), 4096);
/// assert_eq!(tiledio::bench::write::shard_for(4096, 24576), 8192);
/// assert_eq!(tiledio::bench::write::shard_for(512, 1024), 1024);
/// ```
pub fn shard_for(chunk: u64, side: u64) -> u64 {
    let want = 4096.max(2 * chunk);
    let cap = side.div_ceil(chunk) * chunk;
    want.min(cap).max(chunk)
}

/// Flushes the file system holding `dir` (best effort).
fn flush_fs(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on a descriptor owned by `f` for the call.
        unsafe {
            libc::syncfs(f.as_raw_fd());
        }
    }
}

/// The write rows: for each chunk × (one file per chunk, sharded) × codec, the image written
/// from GPU memory (a `no GPU` row without a GPU) and from host memory, into arrays under
/// `dir`. `progress` gets a line per row.
///
/// ```no_run
/// use tiledio::bench::write::{WriteOptions, run};
/// let o = WriteOptions { side: 2048, chunks: vec![512], ..WriteOptions::default() };
/// let rows = run(std::path::Path::new("/tmp/bench"), &o, &mut |m| eprintln!("{m}"))?;
/// # Ok::<(), tiledio::bench::BenchError>(())
/// ```
///
/// # Errors
/// When `dir` cannot be made or the source image cannot be allocated; a row's own failure is
/// its [`Status::Failed`].
pub fn run(dir: &Path, o: &WriteOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>, BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::Setup(format!("{}: {e}", dir.display())))?;
    let side = o.side;
    let img = SyntheticSlide { side }.read_rows(0, side)?.into_bytes();
    let bytes = img.len() as u64;
    let gpu = crate::io::gpu::gpu().map(|_| ()).map_err(|e| e.to_string());
    let dev = match &gpu {
        Ok(()) => Some(DeviceBuffer::from_host(&img)?),
        Err(_) => None,
    };
    let mut rows = Vec::new();
    let mut settings = crate::io::Settings::from_env()?;
    settings.threads = o.threads;
    let wo = crate::zarr::WriteOptions {
        durability: Durability::None,
        settings,
        ..crate::zarr::WriteOptions::from_env()?
    };
    for &chunk in &o.chunks {
        let shards: Vec<Option<u64>> = if o.sharded {
            vec![None, Some(shard_for(chunk, side))]
        } else {
            vec![None]
        };
        for shard in shards {
            for codec in &o.codecs {
                for device in ["gpu", "cpu"] {
                    let case = if shard.is_some() {
                        "zarr v3, sharded"
                    } else {
                        "zarr v3, file per chunk"
                    };
                    let mut r = Row::new(
                        "write",
                        case,
                        "tiledio",
                        device,
                        if device == "gpu" { "auto" } else { "host" },
                    );
                    r.params.chunk = Some(chunk);
                    r.params.shard = shard;
                    r.params.codec = codec.clone();
                    r.params.threads = Some(o.threads);
                    r.params.cache = "page cache".into();
                    r.bytes = bytes;
                    r.note = format!("{side}x{side}x3 u8, no fsync");
                    if device == "gpu"
                        && let Err(why) = &gpu
                    {
                        rows.push(r.with_status(Status::NoGpu(why.clone())));
                        continue;
                    }
                    let c = match Compression::parse(codec) {
                        Ok(c) => c,
                        Err(e) => {
                            rows.push(r.with_status(Status::Failed(e.to_string())));
                            continue;
                        }
                    };
                    progress(&format!(
                        "write: chunk {chunk}{}, {codec}, from {device} memory",
                        shard.map_or(String::new(), |s| format!(" in {s} shards"))
                    ));
                    let mut spec =
                        ArraySpec::new(&[side, side, 3], &[chunk, chunk, 3], DataType::U8).with_compression(c);
                    if let Some(s) = shard {
                        spec = spec.with_shards(&[s, s, 3]);
                    }
                    let mut times = Vec::new();
                    let mut failed = None;
                    for k in 0..o.repeats.max(1) {
                        let path = dir.join(format!(
                            "write-{chunk}-{}-{codec}-{device}-{k}.zarr",
                            shard.unwrap_or(0)
                        ));
                        let _ = std::fs::remove_dir_all(&path);
                        flush_fs(dir);
                        let t = Instant::now();
                        let res = (|| -> Result<(), crate::zarr::ZarrError> {
                            let a = ZarrArray::create(&path, &spec)?;
                            match &dev {
                                Some(d) if device == "gpu" => a.write_all(d, &wo)?,
                                _ => a.write_all(&img[..], &wo)?,
                            }
                            a.finish()?;
                            Ok(())
                        })();
                        times.push(t.elapsed().as_secs_f64());
                        let checked = res.map_err(|e| e.to_string()).and_then(|()| {
                            if k > 0 {
                                return Ok(());
                            }
                            let a = ZarrArray::open(&path).map_err(|e| e.to_string())?;
                            let mut back = vec![0u8; img.len()];
                            let region = Region::new(&[0, 0, 0], &[side, side, 3]);
                            a.read_region(&region, crate::zarr::Border::Reject, &mut back[..])
                                .map_err(|e| e.to_string())?;
                            if back == img {
                                Ok(())
                            } else {
                                Err("the array read back differs from the source".into())
                            }
                        });
                        let _ = std::fs::remove_dir_all(&path);
                        if let Err(e) = checked {
                            failed = Some(e);
                            break;
                        }
                    }
                    match (failed, Timing::of(&times)) {
                        (Some(e), _) => r.status = Status::Failed(e),
                        (None, Some(t)) => r.set_timing(t),
                        (None, None) => r.status = Status::Failed("no repeats".into()),
                    }
                    rows.push(r);
                }
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_check_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let o = WriteOptions {
            side: 256,
            chunks: vec![128],
            codecs: vec!["none".into(), "zstd".into()],
            repeats: 2,
            threads: 2,
            sharded: true,
        };
        let rows = run(dir.path(), &o, &mut |_| {}).unwrap();
        assert_eq!(rows.len(), 8);
        for r in &rows {
            if r.device == "cpu" || crate::io::gpu::available() {
                assert!(r.is_measured(), "{r:?}");
            } else {
                assert!(matches!(r.status, Status::NoGpu(_)), "{r:?}");
            }
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
