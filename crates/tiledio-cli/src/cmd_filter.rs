//! `tiledio sobel|hed|normalize IN OUT`: argument parsing and a progress bar around
//! [`tiledio::pipeline::run`], where the pipeline lives.

use crate::opts::{self, Placement};
use clap::Args;
use std::path::PathBuf;
use tiledio::pipeline::{Filter, Input, Mode, Output, PipelineOptions, fit_macenko, run};

/// The options every filter command shares.
#[derive(Args)]
pub(crate) struct FilterArgs {
    /// Input: a tiled TIFF / SVS / OME-TIFF (level LEVEL), or a Zarr array / OME-Zarr group.
    pub input: PathBuf,
    /// Output: a `.zarr` folder (OME-Zarr with its pyramid) or a `.tif` file; must not exist.
    pub output: PathBuf,
    /// Tile edge in pixels (tiles are filtered with a halo from their neighbours: the result
    /// equals --global exactly).
    #[arg(long, default_value_t = 4096, conflicts_with = "global")]
    pub tile: u64,
    /// Read the whole level, filter it and write it at once (needs memory for all of it).
    #[arg(long)]
    pub global: bool,
    #[command(flatten)]
    pub placement: Placement,
    /// The pyramid level of a TIFF input (or the level folder of an OME-Zarr group).
    #[arg(long, default_value_t = 0)]
    pub level: usize,
    /// Zarr output: chunk edge (the tile must be a multiple of it) [default: 512].
    #[arg(long)]
    pub chunk: Option<u64>,
    /// Zarr output: codec: none, zstd[:level], gzip[:level], blosc[:level] [default: none].
    #[arg(long)]
    pub codec: Option<String>,
    /// GPU memory the tiles in flight may take, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub budget_mib: u64,
}

/// Runs `filter` (for `normalize`, fitted first) with the shared arguments.
pub(crate) fn run_filter(a: &FilterArgs, filter: Option<Filter>, reference: Option<&PathBuf>) -> anyhow::Result<()> {
    let device = a.placement.pipeline_device()?;
    let input = Input::open(&a.input, a.level)?;
    let mode = if a.global {
        Mode::Global
    } else {
        Mode::Tiled { tile: a.tile }
    };
    let pb = opts::bar("");
    let filter = match filter {
        Some(f) => f,
        None => {
            // Macenko: the reference's stains (cuCIM's defaults without --reference), then the
            // input's statistics, both tile by tile
            let mut params = tiledio::kernels::MacenkoParams::default();
            if let Some(r) = reference {
                pb.set_message("fitting the reference");
                let rin = Input::open(r, 0)?;
                let fit = fit_macenko(&rin, params, a.tile, &mut |d, t| {
                    pb.set_length(t);
                    pb.set_position(d);
                })?;
                params.reference_stains = fit.stains;
                params.reference_max_concentrations = fit.max_concentrations;
            }
            pb.set_message("fitting the input");
            let n = fit_macenko(&input, params, a.tile, &mut |d, t| {
                pb.set_length(t);
                pb.set_position(d);
            })?;
            Filter::Normalize(n)
        }
    };
    let mut opts = PipelineOptions::new(filter);
    opts.mode = mode;
    opts.device = device;
    opts.budget = a.budget_mib.saturating_mul(1 << 20);
    let output = match Output::from_path(&a.output) {
        Output::Zarr { path, .. } => Output::Zarr {
            path,
            chunk: a.chunk,
            compression: a
                .codec
                .as_deref()
                .map(tiledio::zarr::Compression::parse)
                .transpose()?
                .unwrap_or(tiledio::zarr::Compression::None),
        },
        tiff => {
            anyhow::ensure!(
                a.chunk.is_none() && a.codec.is_none(),
                "--chunk and --codec apply to Zarr outputs, not {}",
                a.output.display()
            );
            tiff
        }
    };
    pb.set_message("filtering");
    let r = run(&input, &output, &opts, &mut |d, t| {
        pb.set_length(t);
        pb.set_position(d);
    });
    pb.finish_and_clear();
    let r = r?;
    if !opts::quiet() {
        let [h, w] = input.shape();
        let on = if r.on_gpu {
            "GPU".to_string()
        } else {
            match (&r.cpu_reason, a.placement.cpu_note()) {
                (Some(why), _) => format!("CPU ({why})"),
                (None, Some(why)) => format!("CPU ({why})"),
                (None, None) => "CPU (--device cpu)".to_string(),
            }
        };
        println!(
            "{} ({w} x {h}) -> {}: {} tile(s) on the {on}, {:.3} s ({:.2} GB/s read), pyramid {:.3} s, peak GPU memory {} MiB",
            a.input.display(),
            r.output.display(),
            r.tiles,
            r.seconds,
            r.bytes_read as f64 / r.seconds.max(1e-9) / 1e9,
            r.pyramid_seconds,
            r.peak_device_bytes >> 20
        );
    }
    Ok(())
}
