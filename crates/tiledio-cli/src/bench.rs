//! `tiledio bench`: throughput tables measured on the machine at hand.

use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tiledio::io::gpu::DeviceBuffer;
use tiledio::io::{BackendChoice, FileHandle, ReadRange, Settings};
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

/// Tile offsets and byte counts of level 0, read back to back.
fn tile_ranges(path: &Path) -> anyhow::Result<Vec<ReadRange>> {
    let tiles = Slide::open(path)?.tile_ranges(0)?;
    let mut dst = 0usize;
    tiles
        .into_iter()
        .map(|(o, c)| {
            let len = usize::try_from(c)?;
            let r = ReadRange {
                file_offset: o,
                len,
                dst_offset: dst,
            };
            dst = dst.checked_add(len).context("tile bytes overflow")?;
            Ok(r)
        })
        .collect()
}

fn drop_caches() -> anyhow::Result<()> {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc_sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| anyhow::anyhow!("cannot drop the page cache (needs root): {e}"))
}

unsafe extern "C" {
    #[link_name = "sync"]
    fn libc_sync();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
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
    let ranges = tile_ranges(path)?;
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
                    let fh = FileHandle::open_with(path, &s)?;
                    let to_gpu = b != "host";
                    if to_gpu && dev.is_none() {
                        continue;
                    }
                    if to_gpu {
                        tiledio::io::prewarm(&s)?;
                    }
                    let mut times = Vec::new();
                    let mut used = String::new();
                    for rep in 0..=repeats {
                        if is_cold {
                            drop_caches()?;
                        }
                        let t = Instant::now();
                        let st = if to_gpu {
                            fh.read_ranges(&ranges, dev.as_mut().expect("checked"))?
                        } else {
                            fh.read_ranges(&ranges, &mut host)?
                        };
                        let dt = t.elapsed().as_secs_f64();
                        if rep == 0 {
                            // The first read checks the bytes and warms up (not timed).
                            let ok = if to_gpu {
                                dev.as_ref().expect("checked").to_host_vec()? == reference
                            } else {
                                host == reference
                            };
                            anyhow::ensure!(ok, "{b}: bytes differ from the reference read");
                            used = if to_gpu {
                                fh.backend_report()?.to_string()
                            } else {
                                st.backend.to_string()
                            };
                            continue;
                        }
                        times.push(dt);
                    }
                    let m = median(times);
                    println!(
                        "{:<16} {:>7} {:>7}Mi {:>6} {:>7} {:>9.2} {:>9.1}  {}",
                        b,
                        th,
                        tm,
                        if is_cold { "cold" } else { "warm" },
                        fh.direct_io(),
                        total as f64 / m / 1e9,
                        m * 1e3,
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
                let slide = Slide::open_with(path, &s)?;
                let mut times = Vec::new();
                for rep in 0..=repeats {
                    if is_cold {
                        drop_caches()?;
                    }
                    let start = Instant::now();
                    let ok = if t == "gpu" {
                        let img = slide.read_level_device(level)?;
                        let dt = start.elapsed().as_secs_f64();
                        if rep == 0 {
                            anyhow::ensure!(
                                img.to_host()?.bytes() == reference.bytes(),
                                "GPU read differs from host read"
                            );
                        }
                        times.push(dt);
                        true
                    } else {
                        let img = slide.read_level(level)?;
                        times.push(start.elapsed().as_secs_f64());
                        img.bytes().len() == pixels
                    };
                    anyhow::ensure!(ok, "read returned the wrong size");
                }
                times.remove(0); // the first read checks the bytes and warms up
                let m = median(times);
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
