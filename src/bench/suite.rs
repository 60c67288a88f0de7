//! `tiledio bench all`: every benchmark of the suite in one run, with the peers in the same
//! table, as [`Row`]s ([`run`]); [`super::report::write_report`] turns them into a report.
//!
//! - **read** ([`super::read`]): generated slides (a synthetic H&E-like RGB image of `side`²,
//!   one file per tile size, uncompressed and JPEG, written once into `dir` and reused) or the
//!   user's files; with the read peers (tifffile, tifffile + CuPy, KvikIO, cuCIM).
//! - **write** ([`super::write`]): the image from GPU (host) memory into Zarr v3 by chunk size,
//!   sharded or not, and codec; with KvikIO and TensorStore.
//! - **pipeline**: [`crate::pipeline::compare`] (read only, write only, tiled and global
//!   read + Sobel + write) on the uncompressed slide, on the GPU and the CPU; with CuPy's
//!   ndimage, cuCIM and scikit-image; and the Sobel kernel alone on a device-resident float32
//!   image beside a device-to-device copy (the memory-bound limit), CuPy's ndimage and cuCIM.
//! - **ptycho** ([`super::ptycho`]): frames/s from a file and from streams, with pyzmq and JAX.

use super::BenchError;
use super::ptycho::{PtychoBenchOptions, RowKind, RowStatus};
use super::read::{self, ReadOptions};
use super::row::{Row, Status};
use super::write::{self, WriteOptions};
use crate::pipeline::{Device, Filter, Input, Mode, PipelineOptions};
use std::path::{Path, PathBuf};

/// A part of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Tiled TIFF reads.
    Read,
    /// Zarr writes.
    Write,
    /// The Sobel round trip.
    Pipeline,
    /// Ptychography frames/s.
    Ptycho,
}

impl Part {
    /// Every part, in the order they run.
    pub const ALL: [Part; 4] = [Part::Read, Part::Write, Part::Pipeline, Part::Ptycho];

    /// Parses a comma-separated list of `read`, `write`, `pipeline`, `ptycho`, or `all`.
    ///
    /// ```
    /// use tiledio::bench::suite::Part;
    /// assert_eq!(Part::parse_list("read,ptycho").unwrap(), vec![Part::Read, Part::Ptycho]);
    /// assert_eq!(Part::parse_list("all").unwrap().len(), 4);
    /// assert!(Part::parse_list("reed").is_err());
    /// ```
    ///
    /// # Errors
    /// A line naming the unknown part.
    pub fn parse_list(s: &str) -> Result<Vec<Part>, String> {
        let mut v = Vec::new();
        for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p {
                "all" => return Ok(Part::ALL.to_vec()),
                "read" => v.push(Part::Read),
                "write" => v.push(Part::Write),
                "pipeline" => v.push(Part::Pipeline),
                "ptycho" => v.push(Part::Ptycho),
                other => {
                    return Err(format!(
                        "unknown part {other:?}: expected read, write, pipeline, ptycho or all"
                    ));
                }
            }
        }
        Ok(v)
    }
}

/// Options of [`run`]: [`SuiteOptions::full`] for a GPU machine, [`SuiteOptions::quick`] for a
/// small run (a few seconds on two cores without a GPU).
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteOptions {
    /// Where generated inputs live (kept and reused) and outputs are written (removed).
    pub dir: PathBuf,
    /// The parts to run.
    pub parts: Vec<Part>,
    /// The user's slides (read and pipeline parts); empty: generated ones.
    pub files: Vec<PathBuf>,
    /// Side of the generated slides.
    pub side: u64,
    /// Tile edges of the generated slides.
    pub tiles: Vec<u32>,
    /// Tile edges of the JPEG slides (empty: none).
    pub jpeg_tiles: Vec<u32>,
    /// The read part's options.
    pub read: ReadOptions,
    /// The write part's options.
    pub write: WriteOptions,
    /// The pipeline's tile edge.
    pub pipeline_tile: u64,
    /// Repeats of the pipeline rows.
    pub pipeline_repeats: usize,
    /// Edge of the float32 image of the Sobel-kernel rows (0: none).
    pub kernel_side: u64,
    /// The ptycho part's options.
    pub ptycho: PtychoBenchOptions,
    /// Run the Python peers.
    pub peers: bool,
    /// The Python interpreter (default: `TILEDIO_PYTHON`, else `python3`).
    pub python: Option<PathBuf>,
}

impl SuiteOptions {
    /// The full run: 24576² slides (1.8 GB uncompressed) with tiles of 256, 512, 1024 and
    /// 2048, and a JPEG one with tiles of 512; the machine's cores as threads, warm and cold, 3
    /// repeats; writes of a 16384² image in chunks of 256 to 4096, sharded or not, none and
    /// zstd; the pipeline in tiles of 4096 and the Sobel kernel on a 16384² float32 image; the
    /// ptycho defaults at 1,024 frames (4,096 Eiger frames: shorter series measure the
    /// start more than the flow); every peer.
    pub fn full(dir: &Path) -> SuiteOptions {
        SuiteOptions {
            dir: dir.to_path_buf(),
            parts: Part::ALL.to_vec(),
            files: Vec::new(),
            side: 24576,
            tiles: vec![256, 512, 1024, 2048],
            jpeg_tiles: vec![512],
            read: ReadOptions::default(),
            write: WriteOptions::default(),
            pipeline_tile: 4096,
            pipeline_repeats: 3,
            kernel_side: 16384,
            ptycho: {
                let mut p = PtychoBenchOptions {
                    dir: Some(dir.to_path_buf()),
                    keep: true,
                    ..PtychoBenchOptions::default()
                };
                p.set_frames(1024);
                p
            },
            peers: true,
            python: None,
        }
    }

    /// The quick run: 1024² slides with tiles of 256 and 512 (and a JPEG one with tiles of
    /// 512), 2 threads, warm and cold, 2 repeats; writes of a 1024² image in chunks of 256 and
    /// 512 (sharded or not, none and zstd); the pipeline in tiles of 512 and the Sobel kernel
    /// on a 512² image; a tiny ptycho run
    /// (16 frames of 512², crop 256; the bslz4 and hdf5 rows are listed as skipped); every peer.
    pub fn quick(dir: &Path) -> SuiteOptions {
        let mut ptycho = PtychoBenchOptions::quick();
        ptycho.dir = Some(dir.to_path_buf());
        ptycho.keep = true;
        ptycho.set_frames(16);
        ptycho.eiger_frames = 16;
        ptycho.shape = (512, 512);
        ptycho.crop = 256;
        ptycho.batch = 8;
        // the Eiger-size rows generate and encode frames for tens of seconds in a debug build
        ptycho.rows.retain(|k| !matches!(k, RowKind::Bslz4 | RowKind::Hdf5));
        SuiteOptions {
            side: 1024,
            tiles: vec![256, 512],
            jpeg_tiles: vec![512],
            read: ReadOptions {
                threads: vec![2],
                repeats: 2,
                ..ReadOptions::default()
            },
            write: WriteOptions {
                side: 1024,
                chunks: vec![256, 512],
                codecs: vec!["none".into(), "zstd".into()],
                repeats: 2,
                threads: 2,
                sharded: true,
            },
            pipeline_tile: 512,
            pipeline_repeats: 1,
            kernel_side: 512,
            ptycho,
            ..SuiteOptions::full(dir)
        }
    }
}

/// The slides the read and pipeline parts use: the user's, or generated ones in `o.dir`.
fn slides(o: &SuiteOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>, BenchError> {
    if !o.files.is_empty() {
        return Ok(o.files.clone());
    }
    let mut v = Vec::new();
    let raw = o.tiles.iter().map(|&t| (t, false));
    for (t, jpeg) in raw.chain(o.jpeg_tiles.iter().map(|&t| (t, true))) {
        progress(&format!(
            "generating (or reusing) a {}² slide, tiles of {t}, {}",
            o.side,
            if jpeg { "JPEG" } else { "uncompressed" }
        ));
        v.push(read::generated_slide(&o.dir, o.side, t, jpeg)?);
    }
    Ok(v)
}

/// Runs the parts of `o` and returns every row in order. `progress` gets a line on what is
/// being done.
///
/// ```no_run
/// use tiledio::bench::suite::{SuiteOptions, run};
/// let o = SuiteOptions::quick(std::path::Path::new("/tmp/tiledio-bench"));
/// for r in run(&o, &mut |m| eprintln!("{m}"))? {
///     println!("{} {} {}: {}", r.bench, r.case, r.tool, r.status);
/// }
/// # Ok::<(), tiledio::bench::BenchError>(())
/// ```
///
/// # Errors
/// When inputs cannot be generated or opened; a row's own failure is in the row.
pub fn run(o: &SuiteOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>, BenchError> {
    std::fs::create_dir_all(&o.dir).map_err(|e| BenchError::Setup(format!("{}: {e}", o.dir.display())))?;
    let py = super::peers::python(o.python.as_deref());
    let mut rows = Vec::new();
    let needs_slides = o.parts.contains(&Part::Read) || o.parts.contains(&Part::Pipeline);
    let files = if needs_slides { slides(o, progress)? } else { Vec::new() };
    if o.parts.contains(&Part::Read) {
        for f in &files {
            let mut r = read::run(f, &o.read, progress)?;
            if o.peers {
                let (tile, codec) = r
                    .first()
                    .map_or((None, String::new()), |r| (r.params.tile, r.params.codec.clone()));
                let th = o.read.threads.iter().copied().max().unwrap_or(16);
                r.extend(super::peers::read_rows(
                    &py,
                    f,
                    tile,
                    &codec,
                    o.read.repeats,
                    o.read.cold,
                    th,
                    progress,
                ));
            }
            rows.extend(r);
        }
    }
    if o.parts.contains(&Part::Write) {
        let out = o.dir.join("write-out");
        rows.extend(write::run(&out, &o.write, progress)?);
        if o.peers {
            rows.extend(write_peers(o, &py, &out, progress)?);
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    if o.parts.contains(&Part::Pipeline) {
        // the first uncompressed slide (or the first file)
        let name = |f: &PathBuf| {
            f.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        };
        let f = files
            .iter()
            .find(|f| name(f).ends_with("-t512-raw.tif"))
            .or_else(|| files.iter().find(|f| name(f).ends_with("-raw.tif")))
            .or(files.first())
            .cloned();
        if let Some(f) = f {
            rows.extend(pipeline_rows(o, &f, progress)?);
            if o.peers {
                rows.extend(super::peers::sobel_rows(&py, &f, o.pipeline_repeats, progress));
            }
        }
        if o.kernel_side > 0 {
            rows.extend(sobel_kernel_rows(o.kernel_side, o.pipeline_repeats, progress));
            if o.peers {
                rows.extend(super::peers::sobel_kernel_rows(
                    &py,
                    o.kernel_side,
                    KERNEL_REPEATS.max(o.pipeline_repeats),
                    progress,
                ));
            }
        }
    }
    if o.parts.contains(&Part::Ptycho) {
        rows.extend(ptycho_rows(o, progress));
    }
    Ok(rows)
}

/// The write peers over the same chunks, layouts and codecs as ours.
fn write_peers(
    o: &SuiteOptions,
    py: &Path,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Row>, BenchError> {
    use crate::tiff::RowSource;
    let w = &o.write;
    std::fs::create_dir_all(out).map_err(|e| BenchError::Setup(format!("{}: {e}", out.display())))?;
    let src = out.join("source.raw");
    let img = read::SyntheticSlide { side: w.side }.read_rows(0, w.side)?.into_bytes();
    std::fs::write(&src, &img).map_err(|e| BenchError::Setup(format!("{}: {e}", src.display())))?;
    drop(img);
    let mut rows = Vec::new();
    for &chunk in &w.chunks {
        let shards = if w.sharded {
            vec![None, Some(write::shard_for(chunk, w.side))]
        } else {
            vec![None]
        };
        for shard in shards {
            for codec in &w.codecs {
                rows.extend(super::peers::write_rows(
                    py, &src, w.side, chunk, shard, codec, out, w.repeats, progress,
                ));
            }
        }
    }
    let _ = std::fs::remove_file(&src);
    Ok(rows)
}

/// The pipeline comparison on the GPU (a `no GPU` row without one) and the CPU.
fn pipeline_rows(o: &SuiteOptions, file: &Path, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>, BenchError> {
    let input = Input::open(file, 0).map_err(|e| BenchError::Setup(e.to_string()))?;
    let [h, w] = input.shape();
    let bytes = h * w * input.channels() as u64 * input.element_type().size() as u64;
    let out = o.dir.join("pipeline-out");
    std::fs::create_dir_all(&out).map_err(|e| BenchError::Setup(format!("{}: {e}", out.display())))?;
    let name = file
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut rows = Vec::new();
    for (device, d) in [("gpu", Device::Gpu), ("cpu", Device::Cpu)] {
        let base = |case: &str| {
            let mut r = Row::new(
                "pipeline",
                case,
                "tiledio",
                device,
                if device == "gpu" { "auto" } else { "host" },
            );
            r.params.tile = Some(o.pipeline_tile);
            r.params.codec = "none".into();
            r.params.cache = "page cache".into();
            r.bytes = bytes;
            r.note = format!("{name}, Sobel magnitude, level 0 only, no fsync");
            r
        };
        if device == "gpu"
            && let Err(e) = crate::io::gpu::gpu()
        {
            for case in ["tiled read + Sobel + write", "global read + Sobel + write"] {
                rows.push(base(case).with_status(Status::NoGpu(e.to_string())));
            }
            continue;
        }
        progress(&format!(
            "pipeline: read only, write only, tiled and global on the {device}"
        ));
        let mut po = PipelineOptions::new(Filter::sobel());
        po.mode = Mode::Tiled { tile: o.pipeline_tile };
        po.device = d;
        po.durable = false;
        match crate::pipeline::compare(&input, &out, &po, o.pipeline_repeats) {
            Ok(cmp) => {
                for c in cmp {
                    // "tiled read + filter + write (GPU)" → "tiled read + Sobel + write"
                    let case = c.what.split(" (").next().unwrap_or(&c.what).replace("filter", "Sobel");
                    let mut r = base(&case);
                    r.set_timing(c.timing);
                    if c.peak_device_bytes > 0 {
                        r.note = format!("{}; peak GPU {} MiB", r.note, c.peak_device_bytes >> 20);
                    }
                    rows.push(r);
                }
            }
            Err(e) => {
                rows.push(base("tiled and global read + Sobel + write").with_status(Status::Failed(e.to_string())))
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(rows)
}

/// Timed launches of the Sobel-kernel rows (each a few milliseconds at 16384²).
const KERNEL_REPEATS: usize = 20;

/// The Sobel kernel alone on a device-resident `side²` float32 image (pseudo-random values in
/// [0, 1)), and a device-to-device copy of the same bytes: the memory-bound limit of a kernel
/// that reads the image once and writes as much. Without a GPU, rows that say so.
fn sobel_kernel_rows(side: u64, repeats: usize, progress: &mut dyn FnMut(&str)) -> Vec<Row> {
    use super::peers::SOBEL_KERNEL_CASE;
    let base = |case: &str| {
        let mut r = Row::new("pipeline", case, "tiledio", "gpu", "none");
        r.bytes = side * side * 4;
        r.note = format!("{side}x{side} float32 image");
        r
    };
    const COPY: &str = "device-to-device copy (the limit)";
    if let Err(e) = crate::io::gpu::gpu() {
        return [SOBEL_KERNEL_CASE, COPY]
            .iter()
            .map(|c| base(c).with_status(Status::NoGpu(e.to_string())))
            .collect();
    }
    progress(&format!("Sobel kernel alone on a {side}² float32 image"));
    let mut kernel = base(SOBEL_KERNEL_CASE);
    let mut copy = base(COPY);
    match sobel_kernel_times(side, KERNEL_REPEATS.max(repeats)) {
        Ok((k, c, note)) => {
            kernel.set_timing(k);
            kernel.note = format!("{}; {note}", kernel.note);
            copy.set_timing(c);
        }
        Err(e) => {
            kernel.status = Status::Failed(e.clone());
            copy.status = Status::Failed(e);
        }
    }
    vec![kernel, copy]
}

/// Times of [`sobel_kernel_rows`]: the kernel, the copy, and how the kernel's output was checked.
fn sobel_kernel_times(side: u64, repeats: usize) -> Result<(super::Timing, super::Timing, String), String> {
    use crate::io::ElementType;
    use crate::io::gpu::DeviceBuffer;
    use crate::kernels::{Rect, Sobel, SobelOutput};
    use rayon::prelude::*;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let n = usize::try_from(side)
        .ok()
        .and_then(|s| s.checked_mul(s))
        .and_then(|p| p.checked_mul(4))
        .ok_or("image too large")?;
    let mut host = Vec::new();
    host.try_reserve_exact(n)
        .map_err(|_| format!("cannot allocate {n} bytes for the image"))?;
    host.resize(n, 0u8);
    let row = side as usize * 4;
    host.par_chunks_mut(row).enumerate().for_each(|(y, r)| {
        for (x, px) in r.chunks_exact_mut(4).enumerate() {
            px.copy_from_slice(&read::unit(x as u64, y as u64, 11).to_ne_bytes());
        }
    });
    let src = DeviceBuffer::from_host(&host).map_err(|x| e(&x))?;
    let mut dst = DeviceBuffer::new(n).map_err(|x| e(&x))?;
    let s = Sobel::whole(ElementType::F32, 1, [side, side], SobelOutput::Magnitude).map_err(|x| e(&x))?;
    s.device(&src, &mut dst).map_err(|x| e(&x))?;
    // the first rows against the CPU reference (the same arithmetic: equal bit for bit)
    let k = side.min(256);
    let window = Rect::new([0, 0], [(k + 1).min(side), side]);
    let head = Sobel::new(
        ElementType::F32,
        1,
        [side, side],
        window,
        Rect::new([0, 0], [k, side]),
        SobelOutput::Magnitude,
    )
    .map_err(|x| e(&x))?;
    let mut want = vec![0f32; head.output_pixels()];
    head.host(&host[..head.src_bytes()], &mut want).map_err(|x| e(&x))?;
    let mut got = vec![0u8; want.len() * 4];
    dst.copy_to_host_at(0, &mut got).map_err(|x| e(&x))?;
    let err = got
        .chunks_exact(4)
        .zip(&want)
        .map(|(g, w)| (f32::from_ne_bytes([g[0], g[1], g[2], g[3]]) - w).abs())
        .fold(0f32, f32::max);
    if err > 1e-6 {
        return Err(format!(
            "the GPU Sobel differs from the CPU reference by {err} in the first {k} rows"
        ));
    }
    drop(host);
    let time = |f: &mut dyn FnMut() -> Result<(), String>| -> Result<super::Timing, String> {
        f()?;
        let mut ts = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t = std::time::Instant::now();
            f()?;
            ts.push(t.elapsed().as_secs_f64());
        }
        super::Timing::of(&ts).ok_or_else(|| "no repeats".to_string())
    };
    let kt = time(&mut || s.device(&src, &mut dst).map_err(|x| e(&x)))?;
    // a device-to-device cuMemcpyDtoD returns before the copy is done: wait for it
    let ct = time(&mut || {
        dst.copy_from_device(0, &src, 0, n).map_err(|x| e(&x))?;
        crate::io::gpu::gpu().and_then(|g| g.synchronize()).map_err(|x| e(&x))
    })?;
    Ok((
        kt,
        ct,
        format!(
            "{repeats} launches, each waited for; the first {k} rows equal the CPU reference (max |diff| {err:.1e})"
        ),
    ))
}

/// The ptycho rows as suite rows (frames as items), and a `no GPU` row without a GPU.
fn ptycho_rows(o: &SuiteOptions, progress: &mut dyn FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut po = o.ptycho.clone();
    if po.python.is_none() {
        po.python = o.python.clone();
    }
    if !o.peers {
        po.rows.retain(|k| *k != RowKind::Peers);
    }
    for k in [RowKind::Bslz4, RowKind::Hdf5] {
        if !po.rows.contains(&k) {
            let r = Row::new("ptycho", k.name(), "tiledio", "", "");
            rows.push(r.with_status(Status::Skipped(format!(
                "not in this run (tiledio bench ptycho --rows {} measures it)",
                k.name()
            ))));
        }
    }
    if let Err(e) = crate::io::gpu::gpu() {
        let mut r = Row::new(
            "ptycho",
            "file, kernel, stream, bslz4, hdf5 on the GPU",
            "tiledio",
            "gpu",
            "auto",
        );
        r.status = Status::NoGpu(e.to_string());
        rows.push(r);
    }
    let got = super::ptycho::run(&po, &mut |m| progress(&format!("ptycho: {m}")));
    match got {
        Ok(prs) => {
            for p in prs {
                let tool = match p.name.strip_prefix("peers: ") {
                    Some(peer) if !peer.starts_with("tiledio") => peer.to_string(),
                    _ => "tiledio".to_string(),
                };
                let device = if p.device.starts_with("gpu") {
                    "gpu"
                } else if p.device.starts_with("cpu") {
                    "cpu"
                } else {
                    ""
                };
                let mut r = Row::new("ptycho", &p.name, &tool, device, &p.io);
                r.bytes = p.bytes;
                r.items = Some(p.frames);
                r.params.cache = if p.kind == RowKind::File {
                    "warm".into()
                } else {
                    String::new()
                };
                r.timing = p.timing;
                r.status = match &p.status {
                    RowStatus::Measured if p.timing.is_some() => Status::Measured,
                    RowStatus::Measured => Status::Failed("no timing".into()),
                    RowStatus::Missing(w) => Status::Missing(w.clone()),
                    RowStatus::Failed(w) => Status::Failed(w.clone()),
                };
                let mut note = p.what.clone();
                if let Some(g) = &p.goal {
                    note.push_str(&format!(
                        "; target {}{}",
                        g.text,
                        match g.met {
                            Some(true) => " (met)",
                            Some(false) => " (NOT met)",
                            None => "",
                        }
                    ));
                }
                if let Some(x) = p.ratio {
                    note.push_str(&format!("; ratio {x:.2}"));
                }
                if let Some(l) = p.lost {
                    note.push_str(&format!("; lost {l}"));
                }
                if !p.note.is_empty() {
                    note.push_str(&format!("; {}", p.note));
                }
                r.note = note;
                rows.push(r);
            }
        }
        Err(e) => {
            rows.push(Row::new("ptycho", "all rows", "tiledio", "", "").with_status(Status::Failed(e.to_string())))
        }
    }
    rows
}
