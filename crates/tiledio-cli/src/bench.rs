//! `tiledio bench`: throughput tables measured on the machine at hand.

use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use tiledio::bench::{self, ReadInto};
use tiledio::io::gpu::DeviceBuffer;
use tiledio::io::{BackendChoice, FileHandle, Settings};
use tiledio::tiff::Slide;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Read the tiles of a tiled TIFF (page 0) into one GPU buffer (or host buffer) with each
    /// backend and setting; prints backend, threads, task size, cache state and GB/s (median).
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
    Slide {
        /// A tiled TIFF.
        file: PathBuf,
        /// The level.
        #[arg(long, default_value_t = 0)]
        level: usize,
        /// gpu, cpu, or both.
        #[arg(long, default_value = "both", value_parser = ["gpu", "cpu", "both"])]
        device: String,
        #[command(flatten)]
        runs: Runs,
    },
    /// The round trip of the seeds' comparison: read only, write only, tiled and global
    /// read + Sobel + uncompressed Zarr write of a level, medians over repeats.
    ///
    /// Example: tiledio bench pipeline slide.tif --dir /scratch --tile 2048
    Pipeline {
        /// A tiled TIFF (level 0) or a Zarr array.
        file: PathBuf,
        /// Where the outputs go (removed after each repeat).
        #[arg(long)]
        dir: PathBuf,
        /// Tile edge.
        #[arg(long, default_value_t = 2048)]
        tile: u64,
        /// GPU memory the tiles in flight may take, in MiB.
        #[arg(long, default_value_t = 2048)]
        budget_mib: u64,
        /// gpu or cpu.
        #[arg(long, default_value = "gpu", value_parser = ["gpu", "cpu"])]
        device: String,
        /// Timed repeats per row (the median is printed).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
    },
}

/// How each benchmark row is run.
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
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Pipeline {
            file,
            dir,
            tile,
            budget_mib,
            device,
            repeats,
        } => {
            use tiledio::pipeline::{Device, Filter, Input, Mode, PipelineOptions, compare};
            let input = Input::open(&file, 0)?;
            let mut o = PipelineOptions::new(Filter::sobel());
            o.mode = Mode::Tiled { tile };
            o.budget = budget_mib.saturating_mul(1 << 20);
            o.device = if device == "cpu" { Device::Cpu } else { Device::Gpu };
            // writes land in the page cache, as `zarr_bench`'s "write warm" rows
            o.durable = false;
            let [h, w] = input.shape();
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
            for r in compare(&input, &dir, &o, repeats)? {
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
            runs: r,
        } => slide(&file, level, &device, &r.threads, r.repeats, r.cold, r.direct),
        BenchCommand::Read {
            file,
            backends,
            task_mib,
            runs: r,
        } => read(&file, &backends, &r.threads, &task_mib, r.repeats, r.cold, r.direct),
    }
}

#[allow(clippy::too_many_arguments)]
fn read(
    path: &Path,
    backends: &[String],
    threads: &[usize],
    task_mib: &[usize],
    repeats: usize,
    cold: bool,
    direct: bool,
) -> anyhow::Result<()> {
    let ranges = bench::tile_ranges(path, 0)?;
    let total: usize = ranges.iter().map(|r| r.len).sum();
    println!(
        "{}: {} tiles, {:.2} GB of tile data",
        path.display(),
        ranges.len(),
        total as f64 / 1e9
    );
    let gpu = tiledio::io::gpu::gpu();
    match &gpu {
        Ok(g) => println!("GPU: {}", g.name()),
        Err(e) => println!("GPU: none ({e})"),
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
    let states: &[bool] = if cold { &[false, true] } else { &[false] };
    println!(
        "\n{:<16} {:>7} {:>9} {:>6} {:>7} {:>9} {:>9}  backend used",
        "backend", "threads", "task", "cache", "direct", "GB/s", "ms"
    );
    for b in backends {
        for &th in threads {
            for &tm in task_mib {
                for &is_cold in states {
                    let use_direct = direct && is_cold;
                    let choice = match b.as_str() {
                        "host" => BackendChoice::Auto,
                        other => other.parse()?,
                    };
                    let s = Settings {
                        threads: th,
                        task_size: tm << 20,
                        backend: choice,
                        direct_io: use_direct,
                        ..Settings::default()
                    };
                    let to_gpu = b != "host";
                    if to_gpu {
                        tiledio::io::prewarm(&s)?;
                    }
                    let into = match (&mut dev, to_gpu) {
                        (Some(d), true) => ReadInto::Device(d),
                        (None, true) => continue,
                        (_, false) => ReadInto::Host(&mut host),
                    };
                    let (t, used) = bench::time_ranges(path, &s, &ranges, into, &reference, repeats, is_cold)
                        .with_context(|| format!("backend {b}"))?;
                    println!(
                        "{:<16} {:>7} {:>7}Mi {:>6} {:>7} {:>9.2} {:>9.1}  {}",
                        b,
                        th,
                        tm,
                        if is_cold { "cold" } else { "warm" },
                        use_direct,
                        t.rate(total as u64) / 1e9,
                        t.median * 1e3,
                        used.split(';').next().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn slide(
    path: &Path,
    level: usize,
    device: &str,
    threads: &[usize],
    repeats: usize,
    cold: bool,
    direct: bool,
) -> anyhow::Result<()> {
    let probe = Slide::open(path)?;
    let (w, h) = probe.level_dimensions()[level];
    let file_len = std::fs::metadata(path)?.len();
    println!(
        "{}: level {level} is {w}x{h}, file {:.2} GB",
        path.display(),
        file_len as f64 / 1e9
    );
    let reference = probe.read_level(level)?;
    let pixels = reference.bytes().len();
    let gpu = tiledio::io::gpu::gpu();
    match &gpu {
        Ok(g) => println!("GPU: {}", g.name()),
        Err(e) => println!("GPU: none ({e})"),
    }
    let targets: &[&str] = match device {
        "both" => &["gpu", "cpu"],
        "gpu" => &["gpu"],
        _ => &["cpu"],
    };
    let states: &[bool] = if cold { &[false, true] } else { &[false] };
    println!(
        "\n{:<6} {:>7} {:>6} {:>7} {:>10} {:>9} {:>9}",
        "target", "threads", "cache", "direct", "MPix/s", "GB/s", "ms"
    );
    for &t in targets {
        if t == "gpu" && gpu.is_err() {
            continue;
        }
        for &th in threads {
            for &is_cold in states {
                let s = Settings {
                    threads: th,
                    direct_io: direct && is_cold,
                    ..Settings::default()
                };
                if t == "gpu" {
                    tiledio::io::prewarm(&s)?;
                }
                let m = bench::time_level(path, level, &s, t == "gpu", reference.bytes(), repeats, is_cold)?.median;
                println!(
                    "{:<6} {:>7} {:>6} {:>7} {:>10.0} {:>9.2} {:>9.1}",
                    t,
                    th,
                    if is_cold { "cold" } else { "warm" },
                    direct && is_cold,
                    (w * h) as f64 / m / 1e6,
                    pixels as f64 / m / 1e9,
                    m * 1e3
                );
            }
        }
    }
    Ok(())
}
