//! Sobel edges of a whole-slide image, tile by tile, into OME-Zarr.
//!
//! Shows [`tiledio::pipeline`] with [`Filter::Sobel`]: a TIFF level is read tile by tile, each
//! tile with a one-pixel halo taken from its neighbours (so the result equals a run on the whole
//! image bit for bit), filtered on the GPU (or the CPU) as `skimage.filters.sobel` of
//! `skimage.color.rgb2gray` would, and written as an OME-Zarr 0.5 image with its pyramid while
//! the next tiles are read. It prints the progress, the elapsed time, the device the kernels ran
//! on (and why, when it is the CPU) and the peak GPU memory of the run.
//!
//! ```sh
//! cargo run --release --example tiled_sobel -- SLIDE OUT.zarr [--tile N] [--device auto|gpu|cpu] [--level L]
//! cargo run --release --example tiled_sobel -- --help
//! cargo run --release --example tiled_sobel   # no arguments: a small synthetic slide, in a second or two
//! ```
//!
//! `SLIDE` is a tiled TIFF / SVS / OME-TIFF (or a Zarr array); `OUT.zarr` must not exist.
//! Errors are one line on stderr: exit status 2 for bad arguments, 1 for a failed run.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tiledio::demo::{SyntheticHe, synthetic_he_slide};
use tiledio::kernels::SobelOutput;
use tiledio::pipeline::{Device, Filter, Input, Mode, Output, PipelineOptions, PipelineReport, run};
use tiledio::zarr::ZarrArray;

const USAGE: &str = "\
usage: tiled_sobel SLIDE OUT.zarr [--tile N] [--device auto|gpu|cpu] [--level L]
       tiled_sobel            (no arguments: runs on a small synthetic slide in a temporary folder)

Sobel magnitude of a slide level (scikit-image's sobel of rgb2gray), tile by tile with halos,
into an OME-Zarr image with its pyramid.

  SLIDE            a tiled TIFF / SVS / OME-TIFF (or a Zarr array)
  OUT.zarr         the OME-Zarr output folder (must not exist)
  --tile N         tile edge in pixels (default 4096, at least 16)
  --device D       auto (the GPU if there is one, default), gpu, or cpu
  --level L        the slide level to filter (default 0)
  -h, --help       this text";

/// The parsed command line.
struct Args {
    slide: PathBuf,
    out: PathBuf,
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
    let (mut tile, mut device, mut level) = (4096u64, Device::Auto, 0usize);
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
            "--device" => device = parse_device(&value("--device")?)?,
            "--level" => {
                let v = value("--level")?;
                level = v.parse().map_err(|_| format!("--level {v}: not a whole number"))?;
            }
            f if f.starts_with('-') && f.len() > 1 => return Err(format!("unknown option {f}")),
            _ => paths.push(PathBuf::from(a)),
        }
    }
    match <[PathBuf; 2]>::try_from(paths) {
        Ok([slide, out]) => Ok(Cli::Run(Args {
            slide,
            out,
            tile,
            device,
            level,
        })),
        Err(p) => Err(format!("expected SLIDE and OUT.zarr, got {} path(s)", p.len())),
    }
}

fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "auto" => Ok(Device::Auto),
        "gpu" => Ok(Device::Gpu),
        "cpu" => Ok(Device::Cpu),
        _ => Err(format!("--device {s}: expected auto, gpu or cpu")),
    }
}

/// The Zarr chunk edge for a tile (a tile must be whole chunks): the tile itself up to 512,
/// else 512 or a power of two dividing it.
fn chunk_for(tile: u64) -> u64 {
    if tile <= 512 {
        return tile;
    }
    [512u64, 256, 128, 64, 32, 16]
        .into_iter()
        .find(|c| tile.is_multiple_of(*c))
        .unwrap_or(tile)
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
            eprint!("\r{what}: {done}/{total} tiles");
            if done == total {
                eprintln!();
            }
        } else if done == total || done / step != self.last / step {
            eprintln!("{what}: {done}/{total} tiles");
        }
        self.last = done;
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn device_line(r: &PipelineReport) -> String {
    if r.on_gpu {
        match tiledio::io::gpu::gpu() {
            Ok(g) => format!("the GPU ({})", g.name()),
            Err(_) => "the GPU".into(),
        }
    } else {
        match &r.cpu_reason {
            Some(why) => format!("the CPU ({why})"),
            None => "the CPU (as asked)".into(),
        }
    }
}

fn sobel(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if matches!(Output::from_path(&a.out), Output::Tiff { .. }) {
        return Err(format!(
            "{}: this example writes OME-Zarr (a folder such as OUT.zarr); `tiledio sobel` writes TIFF too",
            a.out.display()
        )
        .into());
    }
    let input = Input::open(&a.slide, a.level)?;
    let [h, w] = input.shape();
    println!(
        "{} level {}: {w} x {h} pixels, {} channel(s) of {}",
        a.slide.display(),
        a.level,
        input.channels(),
        input.element_type()
    );
    let mut opts = PipelineOptions::new(Filter::Sobel(SobelOutput::Magnitude));
    opts.mode = Mode::Tiled { tile: a.tile };
    opts.device = a.device;
    let out = Output::Zarr {
        path: a.out.clone(),
        chunk: Some(chunk_for(a.tile)),
        compression: tiledio::zarr::Compression::None,
    };
    let mut progress = Progress::new();
    let t0 = Instant::now();
    let r = run(&input, &out, &opts, &mut |d, t| progress.update("sobel", d, t))?;
    let total = t0.elapsed().as_secs_f64();
    let mut levels = Vec::new();
    for l in tiledio::zarr::ome::read_multiscales(&r.output)?.levels {
        let s = ZarrArray::open(r.output.join(&l.path))?.shape().to_vec();
        levels.push(format!("{} x {}", s[1], s[0]));
    }
    println!(
        "wrote {} (OME-Zarr 0.5, float32 Sobel magnitude; levels {})",
        r.output.display(),
        levels.join(", ")
    );
    println!(
        "{} tile(s) of {} ({} in flight) on {}",
        r.tiles,
        a.tile,
        r.in_flight,
        device_line(&r)
    );
    println!(
        "elapsed {total:.3} s: level 0 {:.3} s (read {}, wrote {}), pyramid {:.3} s",
        r.seconds,
        mib(r.bytes_read),
        mib(r.bytes_written),
        r.pyramid_seconds
    );
    println!("peak GPU memory: {}", mib(r.peak_device_bytes));
    Ok(())
}

/// A small H&E-like slide in a temporary folder, filtered there.
fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let slide = dir.path().join("synthetic_he.tif");
    let (h, w) = (768, 1024);
    let he = SyntheticHe {
        stains: [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]],
        strength: 1.0,
        state: 0x9e37_79b9_7f4a_7c15,
        tile: 256,
    };
    synthetic_he_slide(&slide, h, w, &he)?;
    println!(
        "no arguments: a synthetic {w} x {h} H&E-like slide in {} (removed at exit); \
         run with --help for the usage",
        dir.path().display()
    );
    sobel(&Args {
        slide,
        out: dir.path().join("edges.zarr"),
        tile: 256,
        device: Device::Auto,
        level: 0,
    })
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
        Ok(Cli::Run(a)) => sobel(&a),
        Err(e) => {
            eprintln!("tiled_sobel: {e} (--help for the usage)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tiled_sobel: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
