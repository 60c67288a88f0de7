//! `tiledio`: the command-line tool. `tiledio demo` runs the main job on generated data;
//! `tiledio bench` measures; the format subcommands inspect, read and convert files.

mod bench;
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { size_mib, dir } => demo::run(size_mib, dir),
        Command::Bench { what } => bench::run(what),
        Command::Backends { file } => backends(file),
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
