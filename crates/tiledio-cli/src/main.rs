//! `tiledio`: the command-line tool. `tiledio demo` runs the main job on generated data;
//! `tiledio bench` measures; the format subcommands inspect, read and convert files.

mod bench;
mod bench_suite;
mod cmd_convert;
mod cmd_docs;
mod cmd_filter;
mod cmd_ptycho;
mod cmd_tiff;
mod demo;
mod opts;

use clap::{CommandFactory, Parser, Subcommand};
use opts::{BackendArg, Placement};
use std::path::PathBuf;
use std::process::ExitCode;

/// Tiled images from storage into GPU memory and back: whole-slide TIFF, Zarr and detector
/// frames, read and written with GPU-direct I/O, filtered with CUDA kernels (each with a CPU
/// reference, used when there is no GPU).
#[derive(Parser)]
#[command(
    name = "tiledio",
    version,
    about = "Tiled images from storage into GPU memory and back",
    after_help = "\
Examples:
  tiledio demo                                   # the main job on generated data, PNG previews in demo-out/
  tiledio info slide.svs --json                  # levels, tiles, compression, as JSON
  tiledio sobel slide.svs edges.zarr             # Sobel tile by tile -> OME-Zarr, GPU if present
  tiledio completions bash > ~/.local/share/bash-completion/completions/tiledio
  tiledio man --out ~/.local/share/man/man1

Settings: TILEDIO_* environment variables (README, \"Settings\"); --backend sets TILEDIO_BACKEND."
)]
struct Cli {
    /// On error, print each cause on its own line (and debug detail) instead of one line.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// No progress bars and no reports, only errors (info, backends, bench, completions and
    /// man still print what they are for).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

// parsed once per run: the size of the largest variant costs nothing
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// The main job on generated data: a synthetic H&E-like slide through Sobel into OME-Zarr
    /// and through Macenko normalisation, a simulated ptychography scan through frame
    /// preprocessing, on the GPU if there is one (else the CPU, saying why); a generated file
    /// read back through each backend, every byte verified. Prints what ran where, how fast,
    /// which backend and why, and writes PNG previews (slide, edges, normalised colours,
    /// preprocessed frames) whose paths it prints.
    #[command(after_help = "\
Examples:
  tiledio demo                                   # into demo-out/ (a re-run replaces it)
  tiledio demo --out /tmp/demo --side 4096 --device cpu --size-mib 64")]
    Demo {
        #[command(flatten)]
        args: demo::DemoArgs,
    },
    /// Benchmarks (print a table, or JSON with --json).
    #[command(after_help = "\
Examples:
  tiledio bench slide slide.tif --device gpu --threads 8,16 --json
  tiledio bench ptycho --quick")]
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Show the GPU, cuFile's state, and (for FILE) which backend GPU reads would use and why.
    #[command(after_help = "\
Examples:
  tiledio backends
  tiledio backends slide.tif --backend cufile   # what asking for cuFile would give, and why")]
    Backends {
        /// A file to report on.
        file: Option<PathBuf>,
        /// The backend asked for (default: auto, or TILEDIO_BACKEND).
        #[arg(long, value_enum, value_name = "BACKEND")]
        backend: Option<BackendArg>,
    },
    /// Describe a tiled TIFF: levels, tile sizes, compression, properties, associated images.
    #[command(after_help = "\
Examples:
  tiledio info slide.svs
  tiledio info slide.svs --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"levels\"][0])'")]
    Info {
        /// The TIFF / BigTIFF / SVS / OME-TIFF file.
        file: PathBuf,
        /// Print one JSON object (path, levels, associated images, properties) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read a region (or a whole level) of a slide into a NumPy `.npy` file.
    #[command(after_help = "\
Examples:
  tiledio read slide.svs --level 1 --region 1000,2000,512,512 --out region.npy
  tiledio read slide.svs --out level0.npy --device cpu")]
    Read {
        /// The slide.
        file: PathBuf,
        /// Pyramid level (0 = full resolution).
        #[arg(long, default_value_t = 0)]
        level: usize,
        /// X,Y,W,H: location at level 0, size at LEVEL (OpenSlide convention; X and Y may be
        /// negative). Default: the whole level.
        #[arg(long, value_parser = parse_region, allow_hyphen_values = true)]
        region: Option<(i64, i64, u64, u64)>,
        /// The output `.npy` file (H×W×C).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        placement: Placement,
    },
    /// Sobel edge magnitude (scikit-image's `sobel`) of a slide level or Zarr array, tile by
    /// tile with halos, into OME-Zarr (with its pyramid) or a tiled TIFF of float32.
    #[command(after_help = "\
Examples:
  tiledio sobel slide.svs edges.zarr --tile 4096 --device auto
  tiledio sobel slide.svs edges_h.tif --output-kind h --device cpu")]
    Sobel {
        #[command(flatten)]
        args: cmd_filter::FilterArgs,
        /// Which output: magnitude (`sobel`), h (`sobel_h`), v (`sobel_v`).
        #[arg(long, default_value = "magnitude", value_parser = ["magnitude", "h", "v"])]
        output_kind: String,
    },
    /// Colour deconvolution (scikit-image's `rgb2hed`) of an RGB slide: float32 H, E, D.
    #[command(after_help = "\
Example:
  tiledio hed slide.svs hed.zarr --codec zstd")]
    Hed {
        #[command(flatten)]
        args: cmd_filter::FilterArgs,
    },
    /// Macenko stain normalisation (cuCIM's `normalize_colors_pca`) of an RGB u8 slide: the
    /// statistics over all tiles, then the map, both in bounded memory; RGB u8 output.
    #[command(after_help = "\
Examples:
  tiledio normalize slide.svs normalized.tif
  tiledio normalize slide.svs normalized.zarr --reference target.svs")]
    Normalize {
        #[command(flatten)]
        args: cmd_filter::FilterArgs,
        /// A slide whose stains and concentrations become the target (default: cuCIM's
        /// reference values).
        #[arg(long)]
        reference: Option<PathBuf>,
    },
    /// Ptychography: preprocess detector frame stacks into Zarr, preprocess live ZeroMQ
    /// streams (to Zarr and/or PtyPy), simulate a detector.
    #[command(after_help = "\
Examples:
  tiledio ptycho simulate --out scan.npy --frames 200 --shape 512,512 --dark dark.npy
  tiledio ptycho preprocess scan.npy --dark dark.npy --crop 256 --bin 2 --out frames.zarr")]
    Ptycho {
        #[command(subcommand)]
        what: cmd_ptycho::PtychoCommand,
    },
    /// Convert between tiled TIFF pyramids and (OME-)Zarr, in bounded memory: IN.tif OUT.tif,
    /// IN.tif OUT.zarr, IN.zarr OUT.tif, IN.zarr OUT.zarr. The output's format follows its
    /// extension; an option that does not apply to it is an error.
    #[command(after_help = "\
Examples:
  tiledio convert slide.svs slide.zarr --chunk 512 --shard 4096 --codec zstd
  tiledio convert slide.zarr back.tif --tile 256 --compression zstd --levels 4")]
    Convert {
        /// Input: a tiled TIFF / SVS / OME-TIFF, or a Zarr array / OME-Zarr group (a directory).
        input: PathBuf,
        /// Output: a `.tif`/`.tiff` file or a `.zarr` directory (must not exist, or be empty).
        output: PathBuf,
        /// TIFF output: tile size, a multiple of 16 [default: 512].
        #[arg(long)]
        tile: Option<u32>,
        /// TIFF output: compression: none, deflate, zstd, lzw, jpeg [default: none].
        #[arg(long)]
        compression: Option<String>,
        /// TIFF output: JPEG quality 1-100 [default: 90].
        #[arg(long)]
        quality: Option<u8>,
        /// Levels to write (TIFF: made by halving, default down to one tile; Zarr: the
        /// input's first levels, default all).
        #[arg(long)]
        levels: Option<usize>,
        /// Zarr output: chunk size in pixels per side [default: 512].
        #[arg(long)]
        chunk: Option<u64>,
        /// Zarr output: shard size in pixels per side (v3 sharding codec).
        #[arg(long)]
        shard: Option<u64>,
        /// Zarr output: codec: none, zstd[:level], gzip[:level], blosc[:level] [default: zstd].
        #[arg(long)]
        codec: Option<String>,
    },
    /// Print a shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "\
Examples:
  tiledio completions bash > ~/.local/share/bash-completion/completions/tiledio
  tiledio completions zsh > ~/.zfunc/_tiledio
  tiledio completions fish > ~/.config/fish/completions/tiledio.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of tiledio, or write one page per subcommand into DIR.
    #[command(after_help = "\
Examples:
  tiledio man | man -l -
  tiledio man --out ~/.local/share/man/man1")]
    Man {
        /// Write tiledio.1, tiledio-info.1, tiledio-bench-read.1, ... into this folder (made if
        /// missing) instead of printing tiledio.1.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

impl Command {
    /// The `--backend` given to this command, if any.
    fn backend(&self) -> Option<BackendArg> {
        match self {
            Command::Read { placement, .. } => placement.backend,
            Command::Demo { args } => args.placement.backend,
            Command::Sobel { args, .. } | Command::Hed { args } | Command::Normalize { args, .. } => {
                args.placement.backend
            }
            Command::Backends { backend, .. } => *backend,
            Command::Bench { what } => what.backend(),
            Command::Ptycho { what } => what.backend(),
            _ => None,
        }
    }
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

/// The error and its causes as one line (each cause whose text the line already holds is
/// left out), long messages cut short: errors print as one line a person can act on.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let line = line.replace(['\n', '\r'], " ");
    const MAX: usize = 600;
    if line.chars().count() > MAX {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut}... ({} more characters; -v for all)", line.chars().count() - MAX)
    } else {
        line
    }
}

/// SIGINT, SIGTERM and SIGHUP remove the temporary files and folders of writes in flight, so
/// an interrupted run leaves no partial output and a re-run succeeds.
fn clean_up_on_signals() {
    let _ = ctrlc::set_handler(|| {
        tiledio::io::remove_temporaries();
        eprintln!("tiledio: interrupted; partial output removed");
        std::process::exit(130);
    });
}

fn main() -> ExitCode {
    // `tiledio info x.tif | head` ends quietly, as other command-line tools do, instead of
    // panicking on a closed pipe
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    opts::set_quiet(cli.quiet);
    if let Some(v) = cli.command.backend().and_then(BackendArg::env_value) {
        // SAFETY: no other thread exists yet (the signal handler's starts below), so nothing
        // reads the environment while it changes; every later read sees the choice.
        unsafe { std::env::set_var("TILEDIO_BACKEND", v) };
    }
    clean_up_on_signals();
    let verbose = cli.verbose;
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if verbose {
                eprintln!("tiledio: error: {e}");
                for cause in e.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
                eprintln!("  detail: {e:?}");
            } else {
                eprintln!("tiledio: error: {}", one_line(&e));
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo { args } => demo::run(args),
        Command::Sobel { args, output_kind } => {
            let what = match output_kind.as_str() {
                "h" => tiledio::kernels::SobelOutput::Horizontal,
                "v" => tiledio::kernels::SobelOutput::Vertical,
                _ => tiledio::kernels::SobelOutput::Magnitude,
            };
            cmd_filter::run_filter(&args, Some(tiledio::pipeline::Filter::Sobel(what)), None)
        }
        Command::Hed { args } => cmd_filter::run_filter(&args, Some(tiledio::pipeline::Filter::Hed), None),
        Command::Normalize { args, reference } => cmd_filter::run_filter(&args, None, reference.as_ref()),
        Command::Bench { what } => bench::run(what),
        Command::Ptycho { what } => cmd_ptycho::run(what),
        Command::Backends { file, backend } => backends(file, backend),
        Command::Info { file, json } => cmd_tiff::info(&file, json),
        Command::Read {
            file,
            level,
            region,
            out,
            placement,
        } => {
            let gpu = match placement.device()? {
                opts::DeviceArg::Auto => match tiledio::io::gpu::gpu() {
                    Ok(_) => true,
                    Err(e) => {
                        if !opts::quiet() {
                            eprintln!("reading into host memory: {e}");
                        }
                        false
                    }
                },
                d => d == opts::DeviceArg::Gpu,
            };
            cmd_tiff::read(&file, level, region, &out, gpu)
        }
        Command::Convert {
            input,
            output,
            tile,
            compression,
            quality,
            levels,
            chunk,
            shard,
            codec,
        } => {
            let opts = cmd_convert::options(tile, compression, quality, levels, chunk, shard, codec)?;
            cmd_convert::run(&input, &output, &opts)
        }
        Command::Completions { shell } => cmd_docs::completions(shell, Cli::command()),
        Command::Man { out } => cmd_docs::man(Cli::command(), out.as_deref(), opts::quiet()),
    }
}

fn backends(file: Option<PathBuf>, backend: Option<BackendArg>) -> anyhow::Result<()> {
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
        if backend == Some(BackendArg::Host) {
            // no GPU backend is asked for: the file is only checked for reading
            tiledio::io::FileHandle::open(&f)?;
            println!(
                "{}: host reads (--backend host: parallel pread into host memory)",
                f.display()
            );
            return Ok(());
        }
        let fh = tiledio::io::FileHandle::open(&f)?;
        match fh.backend_report() {
            Ok(r) => println!("{}: {r}", f.display()),
            Err(e) => println!("{}: host reads only ({e})", f.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand, nested ones included, shows an example in its help.
    #[test]
    fn every_subcommand_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>, seen: &mut usize) {
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                *seen += 1;
                let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                if !(help.contains("Example") && help.contains(&name)) {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing, seen);
            }
        }
        let (mut missing, mut seen) = (Vec::new(), 0);
        walk(&Cli::command(), "tiledio", &mut missing, &mut seen);
        assert!(seen >= 19, "only {seen} subcommands found");
        assert!(missing.is_empty(), "no example in the help of: {missing:?}");
    }
}
