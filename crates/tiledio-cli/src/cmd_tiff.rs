//! `tiledio info`, `tiledio read` and `tiledio convert` for whole-slide TIFF files.

use crate::opts;
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use tiledio::tiff::Slide;

/// `tiledio info FILE --json`: one JSON object with the same facts as the table, properties
/// in full.
fn info_json(path: &Path, s: &Slide) -> serde_json::Value {
    let levels: Vec<serde_json::Value> = s
        .levels()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "level": i,
                "width": l.width,
                "height": l.height,
                "downsample": l.downsample,
                "tiled": l.tiled,
                "tile_width": l.tile_width,
                "tile_height": l.tile_height,
                "compression": l.compression.name(),
                "page": l.page,
            })
        })
        .collect();
    json!({
        "path": path.display().to_string(),
        "channels": s.channels(),
        "sample_type": s.sample_type().name(),
        "level_count": s.level_count(),
        "levels": levels,
        "mpp": s.mpp().map(|(x, y)| json!({"x": x, "y": y})),
        "associated_images": s.associated_images(),
        "properties": s.properties(),
    })
}

/// `tiledio info FILE`: levels, tile sizes, compression, properties, associated images; with
/// `json`, one JSON object on stdout instead.
///
/// # Errors
/// The file cannot be opened or parsed.
pub(crate) fn info(path: &Path, json: bool) -> anyhow::Result<()> {
    let s = Slide::open(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info_json(path, &s))?);
        return Ok(());
    }
    println!(
        "{}: {} x {}, {} level(s)",
        path.display(),
        s.channels(),
        s.sample_type().name(),
        s.level_count()
    );
    println!(
        "{:>5} {:>10} {:>10} {:>10} {:>11} {:>9} {:>5}",
        "level", "width", "height", "downsample", "tile", "compress", "page"
    );
    for (i, l) in s.levels().iter().enumerate() {
        let tile = if l.tiled {
            format!("{}x{}", l.tile_width, l.tile_height)
        } else {
            format!("strip {}", l.tile_height)
        };
        println!(
            "{i:>5} {:>10} {:>10} {:>10.3} {tile:>11} {:>9} {:>5}",
            l.width,
            l.height,
            l.downsample,
            l.compression.name(),
            l.page
        );
    }
    let assoc = s.associated_images();
    println!(
        "associated images: {}",
        if assoc.is_empty() {
            "none".to_string()
        } else {
            assoc.join(", ")
        }
    );
    println!("properties:");
    for (k, v) in s.properties() {
        let v = v.replace(['\r', '\n'], " ");
        let v = if v.chars().count() > 100 {
            format!("{}...", v.chars().take(100).collect::<String>())
        } else {
            v
        };
        println!("  {k} = {v}");
    }
    Ok(())
}

/// `tiledio read FILE --level L --region X,Y,W,H --out region.npy --device gpu|cpu`: reads a
/// region (X,Y at level 0, W,H at level L, OpenSlide style; the whole level without `region`)
/// into GPU or host memory and saves it as a NumPy `.npy` file.
///
/// # Errors
/// Unreadable file, a level that does not exist, no GPU with `gpu`, write failure.
pub(crate) fn read(
    path: &Path,
    level: usize,
    region: Option<(i64, i64, u64, u64)>,
    out: &Path,
    gpu: bool,
) -> anyhow::Result<()> {
    // the output is checked before the work, not found unusable after it
    tiledio::io::check_output(out, &[path], tiledio::io::OutputKind::File)?;
    let s = Slide::open(path)?;
    if gpu {
        // start CUDA and compile the placement kernel before timing
        tiledio::io::gpu::gpu()?;
        s.read_region_device((0, 0), level, (1, 1))?;
    }
    let pb = opts::spinner(&format!("reading into {} memory", if gpu { "GPU" } else { "host" }));
    let t = Instant::now();
    let (img, secs) = match (region, gpu) {
        (Some((x, y, w, h)), false) => (s.read_region((x, y), level, (w, h))?, t.elapsed().as_secs_f64()),
        (None, false) => (s.read_level(level)?, t.elapsed().as_secs_f64()),
        (Some((x, y, w, h)), true) => {
            let d = s.read_region_device((x, y), level, (w, h))?;
            let secs = t.elapsed().as_secs_f64();
            (d.to_host()?, secs)
        }
        (None, true) => {
            let d = s.read_level_device(level)?;
            let secs = t.elapsed().as_secs_f64();
            (d.to_host()?, secs)
        }
    };
    pb.set_message("writing the .npy");
    let written = img.write_npy(out);
    pb.finish_and_clear();
    written?;
    if opts::quiet() {
        return Ok(());
    }
    let (h, w, c) = img.shape();
    let bytes = img.bytes().len() as f64;
    println!(
        "read {h}x{w}x{c} {} into {} memory in {:.3} s ({:.2} GB/s of pixels)",
        img.dtype().name(),
        if gpu { "GPU" } else { "host" },
        secs,
        bytes / secs.max(1e-9) / 1e9
    );
    if gpu && let Ok(r) = s.file().backend_report() {
        println!("backend: {r}");
    }
    println!("wrote {}", out.display());
    Ok(())
}
