//! `tiledio convert IN OUT`: argument checks and a progress bar around
//! [`tiledio::convert::convert`], where the conversions live.

use crate::opts;
use std::path::Path;
use std::time::Instant;
use tiledio::convert::{ConvertOptions, convert};

/// The library's options from the command line's.
///
/// # Errors
/// An unknown compression or codec name.
pub(crate) fn options(
    tile: Option<u32>,
    compression: Option<String>,
    quality: Option<u8>,
    levels: Option<usize>,
    chunk: Option<u64>,
    shard: Option<u64>,
    codec: Option<String>,
) -> anyhow::Result<ConvertOptions> {
    Ok(ConvertOptions {
        tile,
        compression: compression.map(|c| c.parse()).transpose()?,
        quality,
        levels,
        chunk,
        shard,
        codec: codec.map(|c| tiledio::zarr::Compression::parse(&c)).transpose()?,
    })
}

/// Runs the conversion with a progress bar on a terminal and prints what was written.
///
/// # Errors
/// Whatever the conversion fails with (nothing is left at `output` then).
pub(crate) fn run(input: &Path, output: &Path, opts: &ConvertOptions) -> anyhow::Result<()> {
    let pb = opts::bar("converting");
    let t = Instant::now();
    let r = convert(input, output, opts, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    let r = r?;
    if opts::quiet() {
        return Ok(());
    }
    println!(
        "{} -> {} ({:?}): {} level(s) {:?}, {} x {}, in {:.2} s",
        input.display(),
        output.display(),
        r.format,
        r.levels.len(),
        r.levels,
        r.channels,
        r.element_type,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
