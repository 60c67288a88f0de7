//! `tiledio convert` between whole-slide TIFF pyramids and OME-Zarr.
//!
//! The Zarr side lives in `tiledio_zarr::ome` (`write_pyramid`, `read_levels_hwc`, tested
//! there); this file adapts `tiledio_tiff`'s slide reader and pyramid writer to it.

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use tiledio::tiff::Slide;
use tiledio::zarr::ome::{OmeVersion, PyramidOptions, PyramidSource, write_pyramid};
use tiledio::zarr::{Compression, WriteOptions};

/// A slide seen as bands of rows per level.
struct SlideSource(Slide);

impl PyramidSource for SlideSource {
    fn level_count(&self) -> usize {
        self.0.level_count()
    }
    fn level_dimensions(&self, level: usize) -> (u64, u64) {
        let (w, h) = self.0.level_dimensions()[level];
        (w, h)
    }
    fn channels(&self) -> u64 {
        self.0.channels() as u64
    }
    fn read_band(&self, level: usize, y0: u64, rows: u64) -> Result<Vec<u8>, String> {
        let (w, _) = self.level_dimensions(level);
        let ds = self.0.level_downsamples()[level];
        // read_region takes the location in level-0 coordinates and the size at `level`.
        let img = self
            .0
            .read_region((0, (y0 as f64 * ds) as i64), level, (w, rows))
            .map_err(|e| e.to_string())?;
        Ok(img.into_bytes())
    }
}

fn progress_bar(total: u64) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// `tiledio convert IN OUT`: `slide.tif → out.zarr` writes OME-Zarr 0.5 (v3; `--shard` gives
/// sharded arrays), `in.zarr → out.tif` writes a tiled TIFF pyramid from an OME-Zarr group or a
/// plain array. `codec`: none, zstd[:level], gzip[:level], blosc[:level].
///
/// # Errors
/// Unreadable input, unknown codec, write failures.
pub(crate) fn convert(input: &Path, output: &Path, chunk: u64, shard: Option<u64>, codec: &str) -> anyhow::Result<()> {
    let is_zarr = |p: &Path| {
        p.extension().is_some_and(|e| e == "zarr")
            || p.join("zarr.json").is_file()
            || p.join(".zarray").is_file()
            || p.join(".zgroup").is_file()
    };
    if is_zarr(input) {
        let levels =
            tiledio::zarr::ome::read_levels_hwc(input).with_context(|| format!("reading {}", input.display()))?;
        let (w, h, c, bytes) = levels.into_iter().next().context("no levels")?;
        let img = tiledio::tiff::HostImage::from_u8(h as usize, w as usize, c as usize, bytes)?;
        tiledio::tiff::write_pyramid(output, &img, &Default::default())
            .with_context(|| format!("writing {}", output.display()))?;
        return Ok(());
    }
    if chunk == 0 || shard.is_some_and(|s| s % chunk != 0) {
        bail!("--shard must be a multiple of --chunk, and --chunk positive");
    }
    let slide = Slide::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mpp = slide
        .properties()
        .get("openslide.mpp-x")
        .and_then(|v| v.parse::<f64>().ok());
    let src = SlideSource(slide);
    let total: u64 = (0..src.level_count())
        .map(|l| {
            let (w, h) = src.level_dimensions(l);
            w * h * src.channels()
        })
        .sum();
    let pb = progress_bar(total);
    let opts = PyramidOptions {
        chunk,
        shard,
        compression: Compression::parse(codec)?,
        version: OmeVersion::V05,
        mpp,
        write: WriteOptions::default(),
    };
    write_pyramid(&src, output, &opts, &mut |done, _| pb.set_position(done))
        .with_context(|| format!("writing {}", output.display()))?;
    pb.finish_and_clear();
    Ok(())
}
