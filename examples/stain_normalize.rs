//! Macenko stain normalisation of a whole-slide image, fitted and mapped tile by tile.
//!
//! Shows [`tiledio::pipeline::fit_macenko`] and [`Filter::Normalize`]: the slide's stain matrix
//! and maximum concentrations are fitted tile by tile in bounded memory (three passes: optical
//! density covariance, stain angles, concentrations; cuCIM's `normalize_colors_pca` algorithm
//! and defaults), optionally the reference stains are fitted the same way from a reference
//! slide, and then every tile is mapped to the reference stains (on the GPU, or the CPU) and
//! written as a tiled pyramidal TIFF or an OME-Zarr image. It prints the fitted stain matrix
//! (rows R, G, B; columns haematoxylin, eosin) and the maximum concentrations.
//!
//! ```sh
//! cargo run --release --example stain_normalize -- SLIDE OUT.tif|OUT.zarr [--reference REF] [--tile N] [--device auto|gpu|cpu] [--level L]
//! cargo run --release --example stain_normalize -- --help
//! cargo run --release --example stain_normalize   # no arguments: small synthetic slides, in a second or two
//! ```
//!
//! Outputs ending in `.tif` / `.tiff` are TIFF (an existing regular file is replaced),
//! anything else OME-Zarr (must not exist). With a TIFF output the pipeline reports its progress
//! once, at the end. Errors are one line on stderr: exit status 2 for bad arguments, 1 for a
//! failed run.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tiledio::demo::{SyntheticHe, synthetic_he_slide};
use tiledio::kernels::{MacenkoNormalizer, MacenkoParams};
use tiledio::pipeline::{Device, Filter, Input, Mode, Output, PipelineOptions, fit_macenko, run};

const USAGE: &str = "\
usage: stain_normalize SLIDE OUT.tif|OUT.zarr [--reference REF] [--tile N] [--device auto|gpu|cpu] [--level L]
       stain_normalize        (no arguments: runs on small synthetic slides in a temporary folder)

Macenko stain normalisation (cuCIM's algorithm), fitted tile by tile, then mapped tile by tile
into a tiled TIFF or an OME-Zarr image.

  SLIDE            an RGB u8 tiled TIFF / SVS / OME-TIFF (or a Zarr array)
  OUT              .tif/.tiff: a pyramidal tiled TIFF (replaced if it exists);
                   anything else: an OME-Zarr folder (must not exist)
  --reference REF  fit the target stains from this slide's level 0 (default: cuCIM's
                   reference stain matrix and maximum concentrations)
  --tile N         tile edge in pixels (default 4096, at least 16)
  --device D       auto (the GPU if there is one, default), gpu, or cpu (the map; fits run on the CPU)
  --level L        the slide level to normalise (default 0)
  -h, --help       this text";

/// The parsed command line.
struct Args {
    slide: PathBuf,
    out: PathBuf,
    reference: Option<PathBuf>,
    tile: u64,
    device: Device,
    level: usize,
}

/// What to do.
enum Cli {
    Help,
    Demo,
    Run(Args),
}

fn parse(args: &[String]) -> Result<Cli, String> {
    if args.is_empty() {
        return Ok(Cli::Demo);
    }
    let (mut tile, mut device, mut level, mut reference) = (4096u64, Device::Auto, 0usize, None);
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Cli::Help),
            "--tile" => {
                let v = value("--tile")?;
                tile = v.parse().map_err(|_| format!("--tile {v}: not a whole number"))?;
            }
            "--device" => {
                device = match value("--device")?.as_str() {
                    "auto" => Device::Auto,
                    "gpu" => Device::Gpu,
                    "cpu" => Device::Cpu,
                    s => return Err(format!("--device {s}: expected auto, gpu or cpu")),
                }
            }
            "--level" => {
                let v = value("--level")?;
                level = v.parse().map_err(|_| format!("--level {v}: not a whole number"))?;
            }
            "--reference" => reference = Some(PathBuf::from(value("--reference")?)),
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("unknown option {f}")),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    match <[PathBuf; 2]>::try_from(paths) {
        Ok([slide, out]) => Ok(Cli::Run(Args {
            slide,
            out,
            reference,
            tile,
            device,
            level,
        })),
        Err(p) => Err(format!("expected SLIDE and OUT, got {} path(s)", p.len())),
    }
}

/// Progress on stderr: one updating line on a terminal, a line per tenth otherwise.
struct Progress {
    tty: bool,
    last: u64,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            last: 0,
        }
    }

    fn update(&mut self, what: &str, done: u64, total: u64) {
        let step = (total / 10).max(1);
        if self.tty {
            eprint!("\r{what}: {done}/{total}");
            if done == total {
                eprintln!();
            }
        } else if done == total || done / step != self.last / step {
            eprintln!("{what}: {done}/{total}");
        }
        self.last = done;
    }
}

fn print_fit(what: &str, n: &MacenkoNormalizer) {
    println!("{what}: stain matrix (columns H, E)");
    for (row, name) in n.stains.iter().zip(["R", "G", "B"]) {
        println!("  {name}  {:9.6}  {:9.6}", row[0], row[1]);
    }
    println!(
        "  maximum concentrations (the {}th percentile): H {:.6}, E {:.6}",
        100.0 - n.params().alpha,
        n.max_concentrations[0],
        n.max_concentrations[1]
    );
}

fn normalize(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let input = Input::open(&a.slide, a.level)?;
    let [h, w] = input.shape();
    println!(
        "{} level {}: {w} x {h} pixels, {} channel(s) of {}",
        a.slide.display(),
        a.level,
        input.channels(),
        input.element_type()
    );
    let t0 = Instant::now();
    let mut progress = Progress::new();
    let mut params = MacenkoParams::default();
    if let Some(r) = &a.reference {
        let reference = Input::open(r, 0)?;
        let fit = fit_macenko(&reference, params, a.tile, &mut |d, t| {
            progress.update("fitting the reference (3 passes)", d, t)
        })?;
        print_fit(&format!("reference {}", r.display()), &fit);
        params.reference_stains = fit.stains;
        params.reference_max_concentrations = fit.max_concentrations;
    } else {
        println!("reference: cuCIM's default stain matrix and maximum concentrations");
    }
    let fit = fit_macenko(&input, params, a.tile, &mut |d, t| {
        progress.update("fitting the slide (3 passes)", d, t)
    })?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    print_fit("slide", &fit);
    println!(
        "  concentration factors (reference / slide): H {:.6}, E {:.6}",
        fit.factors[0], fit.factors[1]
    );
    let mut opts = PipelineOptions::new(Filter::Normalize(fit));
    opts.mode = Mode::Tiled { tile: a.tile };
    opts.device = a.device;
    let out = match Output::from_path(&a.out) {
        // a tile must be whole chunks: the tile itself up to 512, else 512 or a power of two
        // dividing it
        Output::Zarr { path, compression, .. } => Output::Zarr {
            path,
            chunk: Some(if a.tile <= 512 {
                a.tile
            } else {
                [512u64, 256, 128, 64, 32, 16]
                    .into_iter()
                    .find(|c| a.tile.is_multiple_of(*c))
                    .unwrap_or(a.tile)
            }),
            compression,
        },
        // TIFF tiles are multiples of 16; the bands of the pipeline need not be whole tiles
        Output::Tiff { path, .. } => Output::Tiff {
            path,
            tile: (a.tile.clamp(16, 512) / 16 * 16) as u32,
        },
    };
    let t1 = Instant::now();
    let r = run(&input, &out, &opts, &mut |d, t| progress.update("normalising", d, t))?;
    let device = if r.on_gpu {
        match tiledio::io::gpu::gpu() {
            Ok(g) => format!("the GPU ({})", g.name()),
            Err(_) => "the GPU".into(),
        }
    } else {
        match &r.cpu_reason {
            Some(why) => format!("the CPU ({why})"),
            None => "the CPU (as asked)".into(),
        }
    };
    match &out {
        Output::Zarr { .. } => println!(
            "wrote {} (OME-Zarr 0.5, RGB u8 planes, with its pyramid): {} tile(s) of {} on {device}",
            r.output.display(),
            r.tiles,
            a.tile
        ),
        Output::Tiff { .. } => println!(
            "wrote {} (pyramidal tiled TIFF, RGB u8): {} band(s) of rows on {device}",
            r.output.display(),
            r.tiles
        ),
    }
    println!(
        "elapsed {:.3} s: fits {fit_seconds:.3} s, normalisation {:.3} s, peak GPU memory {:.1} MiB",
        t0.elapsed().as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        r.peak_device_bytes as f64 / (1u64 << 20) as f64
    );
    Ok(())
}

/// Small H&E-like slides in a temporary folder: one stained bluer and paler, normalised to the
/// stains of a second, pinker one.
fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (h, w) = (384, 512);
    let slide = dir.path().join("synthetic_he.tif");
    let reference = dir.path().join("synthetic_reference.tif");
    let he = |stains: [[f64; 3]; 2], strength, seed: u64| SyntheticHe {
        stains: stains.map(unit),
        strength,
        state: seed.wrapping_mul(0x2545_f491_4f6c_dd1d),
        tile: 128,
    };
    synthetic_he_slide(&slide, h, w, &he([[0.55, 0.75, 0.36], [0.12, 0.95, 0.20]], 0.7, 1))?;
    synthetic_he_slide(
        &reference,
        256,
        256,
        &he([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]], 1.0, 2),
    )?;
    println!(
        "no arguments: a synthetic {w} x {h} H&E-like slide, normalised to the stains of a second one, \
         in {} (removed at exit); run with --help for the usage",
        dir.path().display()
    );
    normalize(&Args {
        slide,
        out: dir.path().join("normalized.tif"),
        reference: Some(reference),
        tile: 128,
        device: Device::Auto,
        level: 0,
    })
}

/// `v` scaled to unit length (stain vectors are directions).
fn unit(v: [f64; 3]) -> [f64; 3] {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    [v[0] / n, v[1] / n, v[2] / n]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse(&args) {
        Ok(Cli::Help) => {
            // a closed pipe (`--help | head`) is not an error
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Demo) => demo(),
        Ok(Cli::Run(a)) => normalize(&a),
        Err(e) => {
            eprintln!("stain_normalize: {e} (--help for the usage)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stain_normalize: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
