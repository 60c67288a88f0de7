//! `tiledio`: the command-line tool. `tiledio demo` runs the main job on generated data;
//! `tiledio bench` measures; the format subcommands inspect, read and convert files.

mod bench;
mod cmd_tiff;
mod cmd_zarr;
mod demo;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Tiled images from storage into GPU memory and back.
#[derive(Parser)]
#[command(name = "tiledio", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write generated data, read it back into GPU (or host) memory with each backend, verify
    /// the bytes, and print throughput and which backend was used and why.
    Demo {
        /// Size of the generated file in MiB.
        #[arg(long, default_value_t = 512)]
        size_mib: usize,
        /// Directory for the generated file (default: the system temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Benchmarks (print a table).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Show the GPU, cuFile's state, and (for FILE) which backend GPU reads would use and why.
    Backends {
        /// A file to report on.
        file: Option<PathBuf>,
    },
    /// Describe a tiled TIFF: levels, tile sizes, compression, properties, associated images.
    Info {
        /// The TIFF / BigTIFF / SVS / OME-TIFF file.
        file: PathBuf,
    },
    /// Read a region (or a whole level) of a slide into a NumPy `.npy` file.
    Read {
        /// The slide.
        file: PathBuf,
        /// Pyramid level (0 = full resolution).
        #[arg(long, default_value_t = 0)]
        level: usize,
        /// X,Y,W,H: location at level 0, size at LEVEL (OpenSlide convention). Default: the whole level.
        #[arg(long, value_parser = parse_region)]
        region: Option<(i64, i64, u64, u64)>,
        /// The output `.npy` file (H×W×C).
        #[arg(long)]
        out: PathBuf,
        /// Where to read into: gpu (then copied out), cpu, or auto (the GPU if there is one).
        #[arg(long, default_value = "auto", value_parser = ["auto", "gpu", "cpu"])]
        device: String,
    },
    /// Convert between tiled TIFF pyramids and (OME-)Zarr: IN.tif OUT.tif, IN.tif OUT.zarr, IN.zarr OUT.tif.
    Convert {
        /// Input: a tiled TIFF, or a Zarr array / OME-Zarr group (a directory).
        input: PathBuf,
        /// Output: a `.tif`/`.tiff` file or a `.zarr` directory.
        output: PathBuf,
        /// TIFF tile size.
        #[arg(long, default_value_t = 512)]
        tile: u32,
        /// TIFF compression: none, deflate, zstd, lzw, jpeg.
        #[arg(long, default_value = "none")]
        compression: String,
        /// TIFF pyramid levels (default: down to one tile).
        #[arg(long)]
        levels: Option<usize>,
        /// Zarr chunk size (pixels per side).
        #[arg(long, default_value_t = 512)]
        chunk: u64,
        /// Zarr shard size (pixels per side; v3 sharding codec).
        #[arg(long)]
        shard: Option<u64>,
        /// Zarr codec: none, zstd, gzip, blosc.
        #[arg(long, default_value = "zstd")]
        codec: String,
    },
}

fn parse_region(s: &str) -> Result<(i64, i64, u64, u64), String> {
    let v: Vec<&str> = s.split(',').map(str::trim).collect();
    let bad = || format!("expected X,Y,W,H (e.g. 1024,2048,512,512), got {s:?}");
    if v.len() != 4 {
        return Err(bad());
    }
    Ok((
        v[0].parse().map_err(|_| bad())?,
        v[1].parse().map_err(|_| bad())?,
        v[2].parse().map_err(|_| bad())?,
        v[3].parse().map_err(|_| bad())?,
    ))
}

fn is_zarr(p: &std::path::Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("zarr"))
        || p.join("zarr.json").exists()
        || p.join(".zarray").exists()
        || p.join(".zgroup").exists()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { size_mib, dir } => demo::run(size_mib, dir),
        Command::Bench { what } => bench::run(what),
        Command::Backends { file } => backends(file),
        Command::Info { file } => cmd_tiff::info(&file),
        Command::Read {
            file,
            level,
            region,
            out,
            device,
        } => {
            let gpu = match device.as_str() {
                "auto" => match tiledio::io::gpu::gpu() {
                    Ok(_) => true,
                    Err(e) => {
                        eprintln!("reading into host memory: {e}");
                        false
                    }
                },
                d => d == "gpu",
            };
            cmd_tiff::read(&file, level, region, &out, gpu)
        }
        Command::Convert {
            input,
            output,
            tile,
            compression,
            levels,
            chunk,
            shard,
            codec,
        } => {
            if is_zarr(&output) || is_zarr(&input) {
                cmd_zarr::convert(&input, &output, chunk, shard, &codec)
            } else {
                cmd_tiff::convert(&input, &output, tile, &compression, levels)
            }
        }
    }
}

fn backends(file: Option<PathBuf>) -> anyhow::Result<()> {
    match tiledio::io::gpu::gpu() {
        Ok(g) => println!(
            "GPU: {} ({:.1} GiB, compute {}.{})",
            g.name(),
            g.total_memory() as f64 / (1u64 << 30) as f64,
            g.compute_capability().0,
            g.compute_capability().1
        ),
        Err(e) => println!("GPU: none ({e})"),
    }
    match tiledio::io::cufile_status() {
        None => println!("cuFile: driver open, nvidia-fs loaded (GPUDirect Storage)"),
        Some(why) => println!("cuFile: {why}"),
    }
    if let Some(f) = file {
        let fh = tiledio::io::FileHandle::open(&f)?;
        match fh.backend_report() {
            Ok(r) => println!("{}: {r}", f.display()),
            Err(e) => println!("{}: host reads only ({e})", f.display()),
        }
    }
    Ok(())
}
