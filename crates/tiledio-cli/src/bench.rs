//! `tiledio bench`: throughput tables measured on the machine at hand.

use crate::opts::{self, BackendArg, Placement};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use tiledio::bench::{self, ReadInto};
use tiledio::io::gpu::DeviceBuffer;
use tiledio::io::{BackendChoice, FileHandle, Settings};
use tiledio::tiff::Slide;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Read the tiles of a tiled TIFF (page 0) into one GPU buffer (or host buffer) with each
    /// backend and setting; prints backend, threads, task size, cache state and GB/s (median).
    #[command(after_help = "\
Examples:
  tiledio bench read slide.tif --backends staged,cufile,mmap,host --threads 8,16,32 --task-mib 1,4,16
  tiledio bench read slide.tif --backends staged --threads 32 --cold --direct --json")]
    Read {
        /// A tiled TIFF or BigTIFF.
        file: PathBuf,
        /// Backends: staged, cufile, mmap, host.
        #[arg(long, value_delimiter = ',', default_value = "staged,cufile,mmap,host")]
        backends: Vec<String>,
        /// Task sizes in MiB to try.
        #[arg(long, value_delimiter = ',', default_value = "4")]
        task_mib: Vec<usize>,
        #[command(flatten)]
        runs: Runs,
    },
    /// Read a whole slide level into one GPU array (or host array) with `Slide::read_level_device`
    /// (`read_level`): tile reads, decode if compressed, placement. Prints the median.
    #[command(after_help = "\
Examples:
  tiledio bench slide slide.tif --device gpu --threads 8,16 --repeats 7
  tiledio bench slide slide.tif --device cpu --json")]
    Slide {
        /// A tiled TIFF.
        file: PathBuf,
        /// The level.
        #[arg(long, default_value_t = 0)]
        level: usize,
        /// Where to read into: both (GPU rows when there is a GPU, and CPU rows), auto (the GPU
        /// if there is one, else the CPU), gpu, cpu.
        #[arg(long, default_value = "both", value_parser = ["both", "auto", "gpu", "cpu"])]
        device: String,
        /// How file bytes reach GPU memory: auto, cufile, staged, mmap; host: CPU rows only.
        /// Sets TILEDIO_BACKEND for this run [default: auto, or TILEDIO_BACKEND].
        #[arg(long, value_enum, value_name = "BACKEND")]
        backend: Option<BackendArg>,
        #[command(flatten)]
        runs: Runs,
    },
    /// The round trip of the seeds' comparison: read only, write only, tiled and global
    /// read + Sobel + uncompressed Zarr write of a level, medians over repeats.
    ///
    #[command(after_help = "\
Examples:
  tiledio bench pipeline slide.tif --dir /scratch --tile 4096
  tiledio bench pipeline slide.tif --dir /tmp/pipe --device cpu --repeats 3 --json")]
    Pipeline {
        /// A tiled TIFF (level 0) or a Zarr array.
        file: PathBuf,
        /// Where the outputs go (removed after each repeat).
        #[arg(long)]
        dir: PathBuf,
        /// Tile edge.
        #[arg(long, default_value_t = 4096)]
        tile: u64,
        /// GPU memory the tiles in flight may take, in MiB.
        #[arg(long, default_value_t = 2048)]
        budget_mib: u64,
        #[command(flatten)]
        placement: Placement,
        /// Timed repeats per row (the median is printed).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Print one JSON object (the input, the rows) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The ptychography targets: a page-cached .npy stack → preprocess → GPU memory (file), the
    /// fused kernel on a resident batch (kernel), loopback ZeroMQ → pipeline in the tiledio JSON
    /// format (stream) and as DECTRIS Stream V2 with bitshuffle-LZ4 (bslz4), the same Eiger-like
    /// frames from an HDF5 file of bitshuffle-LZ4 chunks (hdf5), and pyzmq / JAX beside ours
    /// (peers). Medians of the repeats with min and max; each row says its device and
    /// I/O path. Generated inputs are removed afterwards (unless --keep).
    ///
    #[command(after_help = "\
Examples:
  tiledio bench ptycho --rows file,stream --device gpu --json
  tiledio bench ptycho --quick")]
    Ptycho {
        /// Where the inputs are generated (default: the system temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the generated inputs in --dir (and reuse them next time).
        #[arg(long)]
        keep: bool,
        /// Frames of the stack and the stream (default 512; --quick: 32). The bslz4 and hdf5 rows
        /// take four times as many (smaller) frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Frame shape H,W.
        #[arg(long, value_parser = parse_shape)]
        shape: Option<(usize, usize)>,
        /// Crop side (default 1024).
        #[arg(long)]
        crop: Option<usize>,
        /// Bin factor (default 2).
        #[arg(long)]
        bin: Option<usize>,
        /// Timed repeats per row (default 5; --quick: 1).
        #[arg(long)]
        repeats: Option<usize>,
        /// Frames per batch of the file, stream, bslz4 and hdf5 rows (default 64).
        #[arg(long)]
        batch: Option<usize>,
        /// Loopback connections of the stream and bslz4 rows, each received and decoded on its
        /// own thread (default 4).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
        connections: Option<u16>,
        #[command(flatten)]
        placement: Placement,
        /// Rows: file, kernel, stream, bslz4, hdf5, peers, or all.
        #[arg(long, default_value = "all")]
        rows: String,
        /// A tiny run (32 frames, one repeat) for CI.
        #[arg(long)]
        quick: bool,
        /// Print the rows as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write an RGB u8 image from GPU memory (host memory on the CPU) into Zarr v3 by chunk
    /// size, sharded or not, and codec; KvikIO and TensorStore beside ours where they import.
    /// Medians of the repeats with min and max; --out DIR writes a report with plots.
    #[command(after_help = "\
Examples:
  tiledio bench write --side 8192 --chunks 256,512,1024 --codecs none,zstd --out bench-write
  tiledio bench write --side 2048 --no-shards --no-peers --json")]
    Write(crate::bench_suite::WriteArgs),
    /// Everything: reads of generated slides (uncompressed and JPEG, by tile size, backend,
    /// threads, warm and cold), Zarr writes, the Sobel round trip and ptychography frames/s,
    /// with the Python peers (tifffile, tifffile + CuPy, KvikIO, cuCIM, TensorStore, CuPy
    /// ndimage, scikit-image, pyzmq, JAX) in the same table; a missing peer is a row saying
    /// why. --out DIR writes report.md, rows.csv, rows.json, machine.json and PNG plots.
    #[command(after_help = "\
Examples:
  tiledio bench all --quick --out bench-quick          # seconds, no GPU needed
  tiledio bench all --dir /scratch/tiledio-bench --out bench-h100
  tiledio bench all --parts read --files slide.svs --out bench-svs")]
    All(crate::bench_suite::AllArgs),
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let v: Vec<&str> = s.split(',').map(str::trim).collect();
    match v[..] {
        [h, w] => Ok((
            h.parse().map_err(|e| format!("height {h:?}: {e}"))?,
            w.parse().map_err(|e| format!("width {w:?}: {e}"))?,
        )),
        _ => Err(format!("{s:?} is not H,W")),
    }
}

/// How each row of `bench read` and `bench slide` is run, and how the rows are printed.
#[derive(clap::Args)]
pub(crate) struct Runs {
    /// Thread counts to try.
    #[arg(long, value_delimiter = ',', default_value = "16")]
    threads: Vec<usize>,
    /// Timed repeats per row (the median is printed).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Also measure with a cold page cache (drops caches before each repeat; needs root).
    #[arg(long)]
    cold: bool,
    /// Use O_DIRECT (for the cold rows).
    #[arg(long)]
    direct: bool,
    /// Print one JSON object (the file, the GPU, the rows) instead of a table.
    #[arg(long)]
    json: bool,
}

impl Runs {
    /// The page-cache states measured: warm, and cold too with --cold.
    fn cache_states(&self) -> &'static [bool] {
        if self.cold { &[false, true] } else { &[false] }
    }
}

/// The rows of `bench read` or `bench slide` as they are measured: a table line each on
/// stdout under a spinner (unless --json), and a JSON object each for the --json document.
struct Rows {
    json: bool,
    pb: indicatif::ProgressBar,
    rows: Vec<Value>,
}

impl Rows {
    /// Prints the table's `header` (unless --json) and starts the spinner.
    fn start(json: bool, header: &str) -> Self {
        if !json {
            println!("{header}");
        }
        Rows {
            json,
            pb: opts::spinner(""),
            rows: Vec::new(),
        }
    }

    /// Adds a row: its table `line` (made and printed unless --json) and its JSON object.
    fn push(&mut self, line: impl FnOnce() -> String, row: Value) {
        if !self.json {
            self.pb.suspend(|| println!("{}", line()));
        }
        self.rows.push(row);
    }

    /// Clears the spinner and returns the rows' JSON objects.
    fn finish(self) -> Vec<Value> {
        self.pb.finish_and_clear();
        self.rows
    }
}

impl BenchCommand {
    /// The `--backend` given, if any.
    pub(crate) fn backend(&self) -> Option<BackendArg> {
        match self {
            BenchCommand::Read { .. } | BenchCommand::Write(_) | BenchCommand::All(_) => None,
            BenchCommand::Slide { backend, .. } => *backend,
            BenchCommand::Pipeline { placement, .. } | BenchCommand::Ptycho { placement, .. } => placement.backend,
        }
    }
}

/// Prints the one JSON document of `bench read`, `slide` or `pipeline`: `file`, the fields of
/// the object `about`, the GPU's name (`gpu`) or why there is none (`no_gpu_reason`), the
/// fields of the object `more`, and the `rows`.
fn print_report(file: &Path, about: Value, more: Value, rows: Value) -> anyhow::Result<()> {
    let (gpu, no_gpu) = match tiledio::io::gpu::gpu() {
        Ok(g) => (json!(g.name()), Value::Null),
        Err(e) => (Value::Null, json!(e.to_string())),
    };
    let mut doc = serde_json::Map::new();
    doc.insert("file".into(), json!(file.display().to_string()));
    if let Value::Object(about) = about {
        doc.extend(about);
    }
    doc.insert("gpu".into(), gpu);
    doc.insert("no_gpu_reason".into(), no_gpu);
    if let Value::Object(more) = more {
        doc.extend(more);
    }
    doc.insert("rows".into(), rows);
    print_json(&Value::Object(doc))
}

/// Prints `v` as the command's one JSON document.
fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Write(a) => crate::bench_suite::write(a),
        BenchCommand::All(a) => crate::bench_suite::all(a),
        BenchCommand::Ptycho {
            dir,
            keep,
            frames,
            shape,
            crop,
            bin,
            repeats,
            batch,
            connections,
            placement,
            rows,
            quick,
            json,
        } => {
            use tiledio::bench::ptycho::{PtychoBenchOptions, RowKind};
            let mut o = if quick {
                PtychoBenchOptions::quick()
            } else {
                PtychoBenchOptions::default()
            };
            o.dir = dir;
            o.keep = keep;
            if let Some(n) = frames {
                o.set_frames(n);
            }
            o.shape = shape.unwrap_or(o.shape);
            o.crop = crop.unwrap_or(o.crop);
            o.bin = bin.unwrap_or(o.bin);
            o.repeats = repeats.unwrap_or(o.repeats);
            o.batch = batch.unwrap_or(o.batch);
            o.connections = connections.map_or(o.connections, usize::from);
            o.device = placement.ptycho_device()?;
            o.rows = RowKind::parse_list(&rows)?;
            ptycho(&o, json)
        }
        BenchCommand::Pipeline {
            file,
            dir,
            tile,
            budget_mib,
            placement,
            repeats,
            json,
        } => {
            use tiledio::pipeline::{Filter, Input, Mode, PipelineOptions, compare};
            let input = Input::open(&file, 0)?;
            let mut o = PipelineOptions::new(Filter::sobel());
            o.mode = Mode::Tiled { tile };
            o.budget = budget_mib.saturating_mul(1 << 20);
            o.device = placement.pipeline_device()?;
            // writes land in the page cache, as `zarr_bench`'s "write warm" rows
            o.durable = false;
            let [h, w] = input.shape();
            let pb = opts::spinner("timing the pipeline rows");
            let rows = compare(&input, &dir, &o, repeats);
            pb.finish_and_clear();
            let rows = rows?;
            if json {
                let about = json!({
                    "width": w,
                    "height": h,
                    "channels": input.channels(),
                    "element_type": input.element_type().to_string(),
                    "filter": "sobel magnitude",
                    "tile": tile,
                    "repeats": repeats,
                    "durable": false,
                });
                let rows = rows.iter().map(|r| {
                    json!({
                        "what": r.what,
                        "median_ms": r.timing.median * 1e3,
                        "min_ms": r.timing.min * 1e3,
                        "max_ms": r.timing.max * 1e3,
                        "peak_device_bytes": r.peak_device_bytes,
                    })
                });
                return print_report(&file, about, json!({}), json!(rows.collect::<Vec<_>>()));
            }
            println!(
                "{} ({w} x {h} x {} {}), Sobel magnitude, {repeats} repeats, writes to the page cache (no fsync)",
                file.display(),
                input.channels(),
                input.element_type()
            );
            println!(
                "{:<44} {:>10} {:>10} {:>10} {:>12}",
                "", "median ms", "min ms", "max ms", "peak GPU MiB"
            );
            for r in rows {
                println!(
                    "{:<44} {:>10.1} {:>10.1} {:>10.1} {:>12}",
                    r.what,
                    r.timing.median * 1e3,
                    r.timing.min * 1e3,
                    r.timing.max * 1e3,
                    r.peak_device_bytes >> 20
                );
            }
            Ok(())
        }
        BenchCommand::Slide {
            file,
            level,
            device,
            backend,
            runs: r,
        } => {
            let device = match (backend, device.as_str()) {
                (Some(BackendArg::Host), "gpu") => {
                    bail!("--backend host reads into host memory: drop --device gpu or choose another backend")
                }
                (Some(BackendArg::Host), _) => "cpu".to_string(),
                (_, "auto") if tiledio::io::gpu::gpu().is_ok() => "gpu".to_string(),
                (_, "auto") => "cpu".to_string(),
                (_, d) => d.to_string(),
            };
            slide(&file, level, &device, &r)
        }
        BenchCommand::Read {
            file,
            backends,
            task_mib,
            runs: r,
        } => read(&file, &backends, &task_mib, &r),
    }
}

fn read(path: &Path, backends: &[String], task_mib: &[usize], runs: &Runs) -> anyhow::Result<()> {
    let (threads, repeats, direct, json) = (&runs.threads, runs.repeats, runs.direct, runs.json);
    // every name checked before the first (long) row
    let choices: Vec<Option<BackendChoice>> = backends
        .iter()
        .map(|b| match b.as_str() {
            "host" => Ok(None),
            other => other.parse().map(Some).with_context(|| format!("--backends {other}")),
        })
        .collect::<anyhow::Result<_>>()?;
    let ranges = bench::tile_ranges(path, 0)?;
    let total: usize = ranges.iter().map(|r| r.len).sum();
    let gpu = tiledio::io::gpu::gpu();
    if !json {
        println!(
            "{}: {} tiles, {:.2} GB of tile data",
            path.display(),
            ranges.len(),
            total as f64 / 1e9
        );
        match &gpu {
            Ok(g) => println!("GPU: {}", g.name()),
            Err(e) => println!("GPU: none ({e})"),
        }
    }
    let reference: Vec<u8> = {
        let mut v = vec![0u8; total];
        FileHandle::open_with(path, &Settings::default())?.read_ranges(&ranges, &mut v)?;
        v
    };
    let mut dev = if gpu.is_ok() {
        Some(DeviceBuffer::new(total)?)
    } else {
        None
    };
    let mut host = vec![0u8; total];
    let mut rows = Rows::start(
        json,
        &format!(
            "\n{:<16} {:>7} {:>9} {:>6} {:>7} {:>9} {:>9}  backend used",
            "backend", "threads", "task", "cache", "direct", "GB/s", "ms"
        ),
    );
    let mut skipped = Vec::new();
    for (b, choice) in backends.iter().zip(&choices) {
        for &th in threads {
            for &tm in task_mib {
                for &is_cold in runs.cache_states() {
                    let use_direct = direct && is_cold;
                    let s = Settings {
                        threads: th,
                        task_size: tm << 20,
                        backend: choice.unwrap_or(BackendChoice::Auto),
                        direct_io: use_direct,
                        ..Settings::default()
                    };
                    let to_gpu = choice.is_some();
                    let into = match (&mut dev, to_gpu) {
                        (Some(d), true) => ReadInto::Device(d),
                        (None, true) => {
                            if !skipped.contains(b) {
                                skipped.push(b.clone());
                            }
                            continue;
                        }
                        (_, false) => ReadInto::Host(&mut host),
                    };
                    if to_gpu {
                        tiledio::io::prewarm(&s)?;
                    }
                    let cache = if is_cold { "cold" } else { "warm" };
                    rows.pb
                        .set_message(format!("{b}, {th} threads, {tm} MiB tasks, {cache}"));
                    let (t, used) = bench::time_ranges(path, &s, &ranges, into, &reference, repeats, is_cold)
                        .with_context(|| format!("backend {b}"))?;
                    let used = used.split(';').next().unwrap_or("").to_string();
                    let gbps = t.rate(total as u64) / 1e9;
                    let line = || {
                        format!(
                            "{:<16} {:>7} {:>7}Mi {:>6} {:>7} {:>9.2} {:>9.1}  {}",
                            b,
                            th,
                            tm,
                            cache,
                            use_direct,
                            gbps,
                            t.median * 1e3,
                            used
                        )
                    };
                    rows.push(
                        line,
                        json!({
                            "backend": b,
                            "threads": th,
                            "task_mib": tm,
                            "cache": cache,
                            "direct": use_direct,
                            "gbps": gbps,
                            "median_ms": t.median * 1e3,
                            "min_ms": t.min * 1e3,
                            "max_ms": t.max * 1e3,
                            "backend_used": used,
                        }),
                    );
                }
            }
        }
    }
    let rows = rows.finish();
    if json {
        let about = json!({"tiles": ranges.len(), "bytes": total, "repeats": repeats});
        return print_report(path, about, json!({"skipped_without_gpu": skipped}), json!(rows));
    }
    if !skipped.is_empty() {
        println!("not measured without a GPU: {}", skipped.join(", "));
    }
    Ok(())
}

fn slide(path: &Path, level: usize, device: &str, runs: &Runs) -> anyhow::Result<()> {
    let (threads, repeats, direct, json) = (&runs.threads, runs.repeats, runs.direct, runs.json);
    let probe = Slide::open(path)?;
    let Some(&(w, h)) = probe.level_dimensions().get(level) else {
        bail!(
            "{}: level {level} does not exist ({} levels)",
            path.display(),
            probe.level_count()
        );
    };
    let file_len = std::fs::metadata(path)?.len();
    let gpu = tiledio::io::gpu::gpu();
    if !json {
        println!(
            "{}: level {level} is {w}x{h}, file {:.2} GB",
            path.display(),
            file_len as f64 / 1e9
        );
        match &gpu {
            Ok(g) => println!("GPU: {}", g.name()),
            Err(e) => println!("GPU: none ({e})"),
        }
    }
    if device == "gpu"
        && let Err(e) = &gpu
    {
        bail!("--device gpu: {e}");
    }
    let reference = probe.read_level(level)?;
    let pixels = reference.bytes().len();
    let targets: &[&str] = match device {
        "both" => &["gpu", "cpu"],
        "gpu" => &["gpu"],
        _ => &["cpu"],
    };
    let mut rows = Rows::start(
        json,
        &format!(
            "\n{:<6} {:>7} {:>6} {:>7} {:>10} {:>9} {:>9}",
            "target", "threads", "cache", "direct", "MPix/s", "GB/s", "ms"
        ),
    );
    for &t in targets {
        if t == "gpu" && gpu.is_err() {
            continue;
        }
        for &th in threads {
            for &is_cold in runs.cache_states() {
                let s = Settings {
                    threads: th,
                    direct_io: direct && is_cold,
                    ..Settings::from_env()?
                };
                if t == "gpu" {
                    tiledio::io::prewarm(&s)?;
                }
                let cache = if is_cold { "cold" } else { "warm" };
                rows.pb.set_message(format!("{t}, {th} threads, {cache}"));
                let timing = bench::time_level(path, level, &s, t == "gpu", reference.bytes(), repeats, is_cold)?;
                let m = timing.median;
                let (mpix, gbps) = ((w * h) as f64 / m / 1e6, pixels as f64 / m / 1e9);
                let line = || {
                    format!(
                        "{:<6} {:>7} {:>6} {:>7} {:>10.0} {:>9.2} {:>9.1}",
                        t,
                        th,
                        cache,
                        direct && is_cold,
                        mpix,
                        gbps,
                        m * 1e3
                    )
                };
                rows.push(
                    line,
                    json!({
                        "target": t,
                        "threads": th,
                        "cache": cache,
                        "direct": direct && is_cold,
                        "mpix_per_s": mpix,
                        "gbps": gbps,
                        "median_ms": m * 1e3,
                        "min_ms": timing.min * 1e3,
                        "max_ms": timing.max * 1e3,
                    }),
                );
            }
        }
    }
    let rows = rows.finish();
    if json {
        let about = json!({
            "level": level,
            "width": w,
            "height": h,
            "file_bytes": file_len,
            "repeats": repeats,
        });
        return print_report(path, about, json!({}), json!(rows));
    }
    Ok(())
}

fn ptycho(o: &tiledio::bench::ptycho::PtychoBenchOptions, json: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    use tiledio::bench::ptycho::{self, RowStatus};
    let tty = std::io::stderr().is_terminal() && !opts::quiet();
    let rows = ptycho::run(o, &mut |m| {
        if tty {
            eprintln!("{m}");
        }
    })?;
    if json {
        println!("{}", ptycho::to_json(&rows));
    } else {
        println!(
            "{} frames of {}x{} u16, crop {}, bin {}; bslz4: {} frames of {}x{}, crop {}, bin {}; {} repeats (median, min-max)",
            o.frames,
            o.shape.0,
            o.shape.1,
            o.crop,
            o.bin,
            o.eiger_frames,
            o.eiger_shape.0,
            o.eiger_shape.1,
            o.eiger_crop,
            o.eiger_bin,
            o.repeats
        );
        println!(
            "\n{:<20} {:<5} {:>7} {:>10} {:>19} {:>8} {:>9} {:>5} {:>15} {:>6}  target",
            "row", "dev", "frames", "frames/s", "min-max", "GB/s", "us/frame", "lost", "p50/p99 ms", "ratio"
        );
        for r in &rows {
            let dev = if r.device.starts_with("gpu") {
                "gpu"
            } else if r.device.starts_with("cpu") {
                "cpu"
            } else {
                "-"
            };
            let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
            let target = r.goal.as_ref().map_or(String::new(), |g| {
                format!(
                    "{} {}",
                    g.text,
                    match g.met {
                        Some(true) => "(met)",
                        Some(false) => "(NOT met)",
                        None => "",
                    }
                )
            });
            match &r.status {
                RowStatus::Measured => println!(
                    "{:<20} {:<5} {:>7} {:>10} {:>19} {:>8} {:>9} {:>5} {:>15} {:>6}  {}",
                    r.name,
                    dev,
                    r.frames,
                    opt(r.fps(), 0),
                    r.fps_range().map_or("-".into(), |(a, b)| format!("{a:.0}-{b:.0}")),
                    opt(r.gbps(), 2),
                    opt(r.us_per_frame(), 1),
                    r.lost.map_or("-".into(), |l| l.to_string()),
                    match (r.latency_p50, r.latency_p99) {
                        (Some(a), Some(b)) => format!("{:.1}/{:.1}", a.as_secs_f64() * 1e3, b.as_secs_f64() * 1e3),
                        _ => "-".into(),
                    },
                    opt(r.ratio, 2),
                    target.trim_end()
                ),
                RowStatus::Missing(why) => println!("{:<20} missing: {why}", r.name),
                RowStatus::Failed(why) => println!("{:<20} FAILED: {why}", r.name),
            }
        }
        println!();
        for r in &rows {
            println!("{}: {}", r.name, r.what);
            if !r.device.is_empty() {
                println!("    device: {}", r.device);
            }
            if !r.io.is_empty() {
                println!("    I/O: {}", r.io);
            }
            if !r.note.is_empty() {
                println!("    {}", r.note);
            }
        }
    }
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.status {
            RowStatus::Failed(why) => Some(format!("{}: {why}", r.name)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("{} row(s) failed: {}", failed.len(), failed.join("; "));
    }
    Ok(())
}
