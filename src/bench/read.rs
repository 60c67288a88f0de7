//! `tiledio bench read` of the suite: tiled TIFF slides (generated, or the user's) into GPU or
//! host memory, by backend, threads, tile size, compression and page-cache state.
//!
//! Two cases per file:
//! - **tile bytes**: the stored bytes of every tile of level 0, packed into one buffer (no
//!   decode), through cuFile, the staged POSIX engine or mmap into GPU memory, or host reads;
//! - **level**: the whole level 0 decoded and placed into one array ([`Slide::read_level_device`]
//!   on the GPU, [`Slide::read_level`] on the CPU), what a user of a slide reader waits for.
//!
//! Every timed read is checked against a reference read first. GPU rows on a machine without a
//! GPU are rows that say `no GPU: <reason>`.

use super::row::{Row, Status};
use super::{BenchError, Timing};
use crate::io::gpu::DeviceBuffer;
use crate::io::{BackendChoice, FileHandle, Settings};
use crate::tiff::{Compression, HostImage, RowSource, SampleType, Slide, WriteOptions};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A synthetic H&E-like RGB u8 slide computed row by row (no memory for the whole image), for
/// generated inputs of any size: smooth stain fields, nuclei-like discs on a grid with
/// pseudo-random positions, grain, and a bright background corner. Deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSlide {
    /// Edge of the square slide in pixels.
    pub side: u64,
}

/// A 64-bit mix of `x` (splitmix64's finaliser).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform value in [0, 1) from `(a, b, salt)`.
pub(crate) fn unit(a: u64, b: u64, salt: u64) -> f32 {
    (mix(a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ salt) >> 40) as f32
        / (1u64 << 24) as f32
}

impl SyntheticSlide {
    /// Row `y` as RGB bytes (`3 × side`).
    pub fn row(&self, y: u64, out: &mut [u8]) {
        const H: [f32; 3] = [0.65, 0.70, 0.29];
        const E: [f32; 3] = [0.07, 0.99, 0.11];
        const CELL: u64 = 48;
        let s = self.side as f32;
        let fy = y as f32 / s;
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            let x = x as u64;
            let background = y < self.side / 4 && x >= self.side - self.side / 3;
            if background {
                let n = unit(x, y, 7);
                px.fill((241.0 + 4.0 * n) as u8);
                continue;
            }
            let fx = x as f32 / s;
            let mut ch = 0.25 + 0.25 * (6.0 * fx + 4.0 * fy).sin();
            let ce = 0.45 + 0.45 * (5.0 * fy - 3.0 * fx).cos();
            // a nucleus per grid cell: centre and radius from the cell's hash
            let (cx, cy) = (x / CELL, y / CELL);
            let ox = (cx * CELL) as f32 + CELL as f32 * unit(cx, cy, 1);
            let oy = (cy * CELL) as f32 + CELL as f32 * unit(cx, cy, 2);
            let r = 4.0 + 8.0 * unit(cx, cy, 3);
            let (dx, dy) = (x as f32 - ox, y as f32 - oy);
            if dx * dx + dy * dy <= r * r {
                ch += 0.8 + 0.6 * unit(cx, cy, 4);
            }
            let grain = 0.7 + 0.3 * unit(x, y, 5);
            for k in 0..3 {
                let v = 240.0 * (-(grain * (ch * H[k] + ce * E[k]))).exp() + 4.0 * (unit(x, y, 6 + k as u64) - 0.5);
                px[k] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// Writes the slide as a one-level tiled TIFF (BigTIFF when needed) with `tile` and
    /// `compression` (JPEG at quality 90).
    ///
    /// ```
    /// use tiledio::bench::read::SyntheticSlide;
    /// use tiledio::tiff::Compression;
    /// let dir = tempfile::tempdir()?;
    /// let p = dir.path().join("s.tif");
    /// SyntheticSlide { side: 128 }.write(&p, 64, Compression::Jpeg)?;
    /// assert_eq!(tiledio::tiff::Slide::open(&p)?.level_dimensions()[0], (128, 128));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The TIFF writer's.
    pub fn write(&self, path: &Path, tile: u32, compression: Compression) -> Result<(), BenchError> {
        let o = WriteOptions::default().tile(tile).compression(compression).levels(1);
        crate::tiff::write_pyramid_from(path, self, &o, &|_, _| {})?;
        Ok(())
    }
}

impl RowSource for SyntheticSlide {
    fn dimensions(&self) -> (u64, u64) {
        (self.side, self.side)
    }
    fn channels(&self) -> usize {
        3
    }
    fn sample_type(&self) -> SampleType {
        SampleType::U8
    }
    fn read_rows(&self, y0: u64, rows: u64) -> crate::tiff::Result<HostImage> {
        let w = self.side as usize * 3;
        let mut v = vec![0u8; w * rows as usize];
        v.par_chunks_mut(w)
            .enumerate()
            .for_each(|(i, r)| self.row(y0 + i as u64, r));
        HostImage::from_u8(rows as usize, self.side as usize, 3, v)
    }
}

/// The generated slide for `side`, `tile` and compression in `dir` (written unless a valid one
/// is there already: generated inputs are reused between runs).
///
/// # Errors
/// The TIFF writer's, or I/O errors.
pub fn generated_slide(dir: &Path, side: u64, tile: u32, jpeg: bool) -> Result<PathBuf, BenchError> {
    let name = format!("slide-{side}-t{tile}-{}.tif", if jpeg { "jpeg" } else { "raw" });
    let path = dir.join(name);
    let ok = Slide::open(&path).is_ok_and(|s| s.level_dimensions().first() == Some(&(side, side)));
    if !ok {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::Setup(format!("{}: {e}", dir.display())))?;
        let tmp = dir.join(format!(
            ".{}.part",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("slide")
        ));
        let c = if jpeg { Compression::Jpeg } else { Compression::None };
        SyntheticSlide { side }.write(&tmp, tile, c)?;
        std::fs::rename(&tmp, &path).map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
    }
    Ok(path)
}

/// How the page cache was emptied for a cold repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdMethod {
    /// `3 > /proc/sys/vm/drop_caches` (root).
    DropCaches,
    /// `posix_fadvise(POSIX_FADV_DONTNEED)` on each file (drops its clean cached pages).
    Fadvise,
}

impl std::fmt::Display for ColdMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColdMethod::DropCaches => "cold: page cache dropped (/proc/sys/vm/drop_caches)",
            ColdMethod::Fadvise => {
                "cold: posix_fadvise(DONTNEED) per file (no rights to drop_caches; the file's clean pages only)"
            }
        })
    }
}

/// Empties the page cache of `files`: drops the whole cache when it has the rights, else
/// `posix_fadvise(DONTNEED)` on each file. Returns the method used, or why neither worked.
///
/// ```no_run
/// let how = tiledio::bench::read::make_cold(&[std::path::Path::new("slide.tif")]);
/// println!("{how:?}");
/// ```
///
/// # Errors
/// A line saying why neither way worked.
pub fn make_cold(files: &[&Path]) -> Result<ColdMethod, String> {
    let why = match super::drop_page_cache() {
        Ok(()) => return Ok(ColdMethod::DropCaches),
        Err(e) => e.to_string(),
    };
    fadvise_dontneed(files).map_err(|e| format!("{why}; {e}"))?;
    Ok(ColdMethod::Fadvise)
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)` on each of `files` (after `fdatasync`): the fallback
/// of [`make_cold`] without the rights to drop the whole page cache.
fn fadvise_dontneed(files: &[&Path]) -> Result<(), String> {
    for f in files {
        let file = std::fs::File::open(f).map_err(|e| format!("open {}: {e}", f.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: fdatasync and posix_fadvise on a descriptor owned by `file` for the call.
        let rc = unsafe {
            libc::fdatasync(file.as_raw_fd());
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
        };
        if rc != 0 {
            return Err(format!(
                "posix_fadvise(DONTNEED) on {}: {}",
                f.display(),
                std::io::Error::from_raw_os_error(rc)
            ));
        }
    }
    Ok(())
}

/// Options of [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Backends: `cufile`, `staged`, `mmap` (GPU), `host` (host memory).
    pub backends: Vec<String>,
    /// Thread counts (default: the machine's cores).
    pub threads: Vec<usize>,
    /// Timed repeats per row.
    pub repeats: usize,
    /// Also cold-cache rows.
    pub cold: bool,
    /// The tile-bytes case (raw stored bytes of every tile).
    pub tile_bytes: bool,
    /// The level case (decode + placement of level 0).
    pub level: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            backends: vec!["cufile".into(), "staged".into(), "mmap".into(), "host".into()],
            // one count, the machine's cores: each count repeats every row of every slide (two
            // took the default read part past 8 minutes on a 16-core machine); `--threads 1,16`
            // adds the seeds' one-thread comparison
            threads: vec![std::thread::available_parallelism().map_or(16, |n| n.get())],
            repeats: 3,
            cold: true,
            tile_bytes: true,
            level: true,
        }
    }
}

/// [`timed`] into a row: its timing and the cold method's note, or the status saying why it
/// has none.
fn time_row(r: &mut Row, file: &Path, repeats: usize, cold: bool, f: &mut dyn FnMut() -> Result<(), BenchError>) {
    match timed(file, repeats, cold, f) {
        Ok((t, note)) => {
            r.set_timing(t);
            if !note.is_empty() {
                r.note = format!("{}; {note}", r.note);
            }
        }
        Err(st) => r.status = st,
    }
}

/// Times `f` `repeats` times, emptying the cache of `file` before each when `cold`.
/// Returns the timing and the cold method's note.
fn timed(
    file: &Path,
    repeats: usize,
    cold: bool,
    f: &mut dyn FnMut() -> Result<(), BenchError>,
) -> Result<(Timing, String), Status> {
    let mut times = Vec::new();
    let mut note = String::new();
    for _ in 0..repeats.max(1) {
        if cold {
            let m =
                make_cold(&[file]).map_err(|e| Status::Skipped(format!("cold: cannot empty the page cache: {e}")))?;
            note = m.to_string();
        }
        let t = Instant::now();
        f().map_err(|e| Status::Failed(e.to_string()))?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((
        Timing::of(&times).unwrap_or(Timing {
            median: 0.0,
            min: 0.0,
            max: 0.0,
        }),
        note,
    ))
}

/// (tile edge, codec name, level-0 bytes decoded, (width, height)) of a slide.
type Described = (Option<u64>, String, u64, (u64, u64));

/// Describes a slide file.
fn describe(path: &Path) -> Result<Described, BenchError> {
    let s = Slide::open(path)?;
    let (w, h) = s.level_dimensions().first().copied().unwrap_or((0, 0));
    let info = s.levels().first();
    let tile = info.filter(|i| i.tiled).map(|i| i.tile_width);
    let codec = info.map_or("?".to_string(), |i| format!("{:?}", i.compression).to_lowercase());
    let c = (s.channels() * s.sample_type().size()) as u64;
    Ok((tile, codec, w * h * c, (w, h)))
}

/// The read rows for `file` (a tiled TIFF): tile bytes by backend × threads × cache, and the
/// decoded level on the GPU and the CPU by threads × cache. `progress` gets a line per row.
///
/// ```no_run
/// use tiledio::bench::read::{ReadOptions, run};
/// let rows = run(std::path::Path::new("slide.tif"), &ReadOptions::default(), &mut |m| eprintln!("{m}"))?;
/// # Ok::<(), tiledio::bench::BenchError>(())
/// ```
///
/// # Errors
/// When the file cannot be opened as a slide or its reference read fails; a row's own failure
/// is its [`Status::Failed`].
pub fn run(file: &Path, o: &ReadOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>, BenchError> {
    let (tile, codec, level_bytes, (w, h)) = describe(file)?;
    let gpu = crate::io::gpu::gpu().map(|_| ()).map_err(|e| e.to_string());
    let name = file
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let caches: &[bool] = if o.cold { &[false, true] } else { &[false] };
    let mut rows = Vec::new();
    let base = |case: &str, device: &str, backend: &str| {
        let mut r = Row::new("read", case, "tiledio", device, backend);
        r.params.tile = tile;
        r.params.codec = codec.clone();
        r.note = format!("{name} ({w}x{h})");
        r
    };
    if o.tile_bytes {
        let ranges = super::tile_ranges(file, 0)?;
        let total: usize = ranges.iter().map(|r| r.len).sum();
        let mut reference = vec![0u8; total];
        FileHandle::open(file)?.read_ranges(&ranges, &mut reference)?;
        let mut host = vec![0u8; total];
        let mut dev: Option<DeviceBuffer> = None;
        for b in &o.backends {
            let to_gpu = b != "host";
            let device = if to_gpu { "gpu" } else { "cpu" };
            let choice = if to_gpu {
                match b.parse::<BackendChoice>() {
                    Ok(c) => c,
                    Err(e) => {
                        rows.push(base("tile bytes", device, b).with_status(Status::Failed(e.to_string())));
                        continue;
                    }
                }
            } else {
                BackendChoice::Auto
            };
            if to_gpu && let Err(why) = &gpu {
                let mut r = base("tile bytes", device, b).with_status(Status::NoGpu(why.clone()));
                r.bytes = total as u64;
                rows.push(r);
                continue;
            }
            if to_gpu && dev.is_none() {
                dev = Some(DeviceBuffer::new(total.max(1))?);
            }
            for &th in &o.threads {
                for &cold in caches {
                    let s = Settings {
                        threads: th,
                        backend: choice,
                        ..Settings::default()
                    };
                    let mut r = base("tile bytes", device, b);
                    r.params.threads = Some(th);
                    r.params.cache = if cold { "cold" } else { "warm" }.into();
                    r.bytes = total as u64;
                    progress(&format!(
                        "read: {name} tile bytes, {b}, {th} threads, {}",
                        r.params.cache
                    ));
                    let fh = match FileHandle::open_with(file, &s) {
                        Ok(f) => f,
                        Err(e) => {
                            rows.push(r.with_status(Status::Failed(e.to_string())));
                            continue;
                        }
                    };
                    // the untimed checked read, which also says which backend was used
                    let mut check = || -> Result<String, BenchError> {
                        if to_gpu {
                            crate::io::prewarm(&s)?;
                            let d = dev
                                .as_mut()
                                .ok_or_else(|| BenchError::Mismatch("no device buffer".into()))?;
                            fh.read_ranges(&ranges, &mut *d)?;
                            if d.to_host_vec()?[..total] != reference[..] {
                                return Err(BenchError::Mismatch(format!("{name} ({b})")));
                            }
                            Ok(fh.backend_report()?.to_string())
                        } else {
                            let used = fh.read_ranges(&ranges, &mut host[..])?.backend.to_string();
                            if host != reference {
                                return Err(BenchError::Mismatch(format!("{name} ({b})")));
                            }
                            Ok(used)
                        }
                    };
                    let used = match check() {
                        Ok(u) => u,
                        Err(e) => {
                            rows.push(r.with_status(Status::Failed(e.to_string())));
                            continue;
                        }
                    };
                    r.backend = used.split(';').next().unwrap_or(b).trim().to_string();
                    let mut once = || -> Result<(), BenchError> {
                        if to_gpu {
                            if let Some(d) = dev.as_mut() {
                                fh.read_ranges(&ranges, &mut *d)?;
                            }
                        } else {
                            fh.read_ranges(&ranges, &mut host[..])?;
                        }
                        Ok(())
                    };
                    time_row(&mut r, file, o.repeats, cold, &mut once);
                    rows.push(r);
                }
            }
        }
    }
    if o.level {
        let reference = Slide::open(file)?.read_level(0)?.into_bytes();
        for device in ["gpu", "cpu"] {
            if device == "gpu"
                && let Err(why) = &gpu
            {
                let mut r = base("level 0 decode + place", device, "auto");
                r.bytes = level_bytes;
                rows.push(r.with_status(Status::NoGpu(why.clone())));
                continue;
            }
            for &th in &o.threads {
                for &cold in caches {
                    let s = Settings {
                        threads: th,
                        ..Settings::default()
                    };
                    let mut r = base(
                        "level 0 decode + place",
                        device,
                        if device == "gpu" { "auto" } else { "host" },
                    );
                    r.params.threads = Some(th);
                    r.params.cache = if cold { "cold" } else { "warm" }.into();
                    r.bytes = level_bytes;
                    progress(&format!(
                        "read: {name} level 0 on the {device}, {th} threads, {}",
                        r.params.cache
                    ));
                    let slide = match Slide::open_with(file, &s) {
                        Ok(sl) => sl,
                        Err(e) => {
                            rows.push(r.with_status(Status::Failed(e.to_string())));
                            continue;
                        }
                    };
                    let read = |slide: &Slide| -> Result<Vec<u8>, BenchError> {
                        Ok(if device == "gpu" {
                            slide.read_level_device(0)?.to_host()?.into_bytes()
                        } else {
                            slide.read_level(0)?.into_bytes()
                        })
                    };
                    match read(&slide) {
                        Ok(v) if v == reference => {}
                        Ok(_) => {
                            rows.push(r.with_status(Status::Failed(format!(
                                "{name}: the pixels differ from the reference read"
                            ))));
                            continue;
                        }
                        Err(e) => {
                            rows.push(r.with_status(Status::Failed(e.to_string())));
                            continue;
                        }
                    }
                    if device == "gpu" {
                        r.backend = FileHandle::open_with(file, &s)
                            .and_then(|f| f.backend_report())
                            .map_or_else(|_| "auto".into(), |b| b.backend.to_string());
                    }
                    let mut once = || -> Result<(), BenchError> {
                        if device == "gpu" {
                            drop(slide.read_level_device(0)?);
                        } else {
                            drop(slide.read_level(0)?);
                        }
                        Ok(())
                    };
                    time_row(&mut r, file, o.repeats, cold, &mut once);
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
    fn generated_slides_read_back_in_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = generated_slide(dir.path(), 256, 128, false).unwrap();
        let again = generated_slide(dir.path(), 256, 128, false).unwrap();
        assert_eq!(p, again);
        let o = ReadOptions {
            threads: vec![2],
            repeats: 1,
            ..ReadOptions::default()
        };
        let rows = run(&p, &o, &mut |_| {}).unwrap();
        assert!(
            rows.iter()
                .any(|r| r.case == "tile bytes" && r.device == "cpu" && r.is_measured())
        );
        assert!(
            rows.iter()
                .any(|r| r.case.starts_with("level") && r.device == "cpu" && r.is_measured())
        );
        for r in &rows {
            assert!(!matches!(r.status, Status::Failed(_)), "{r:?}");
            if r.device == "gpu" && !crate::io::gpu::available() {
                assert!(matches!(r.status, Status::NoGpu(_)), "{r:?}");
            }
        }
        let j = generated_slide(dir.path(), 256, 128, true).unwrap();
        assert_eq!(describe(&j).unwrap().1, "jpeg");
        // the fallback without root works on a file, and says which file when it cannot
        fadvise_dontneed(&[&p, &j]).unwrap();
        let e = fadvise_dontneed(&[&dir.path().join("none.tif")]).unwrap_err();
        assert!(e.contains("none.tif"), "{e}");
        assert!(make_cold(&[&p]).is_ok());
    }
}
