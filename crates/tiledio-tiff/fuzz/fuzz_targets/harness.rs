//! The TIFF fuzz harness, shared by the `cargo fuzz` target (`slide_open.rs`) and the corpus
//! replay in the normal test run (`tests/fuzz_replay.rs`, through `#[path]`).
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use tiledio_io::Settings;
use tiledio_tiff::Slide;

/// Most pixels one read may ask for (a huge but valid image must not allocate gigabytes).
const MAX_PIXELS: u64 = 1 << 20;

/// Writes `data` to `p`, opens it as a slide with `settings` and reads it every way; any
/// result is fine but a panic.
pub fn run(p: &Path, settings: &Settings, data: &[u8]) {
    if std::fs::write(p, data).is_err() {
        return;
    }
    let Ok(s) = Slide::open_with(p, settings) else {
        return;
    };
    let n = s.level_count();
    let dims = s.level_dimensions();
    assert_eq!(dims.len(), n);
    assert!(n >= 1);
    let _ = s.level_downsamples();
    let _ = s.level_tile_sizes();
    let _ = s.channels();
    let _ = s.sample_type();
    let _ = s.properties().len();
    let _ = s.get_best_level_for_downsample(2.0);
    let _ = s.get_best_level_for_downsample(1e9);
    let (w0, h0) = dims[0];
    let last = n - 1;
    let (wl, hl) = dims[last];
    let ds = s.level_downsamples()[last];
    let clamp = |w: u64, h: u64| (w.min(64), h.min(64));
    // a small region at the top left of level 0 and of the last level
    let _ = s.read_region((0, 0), 0, clamp(w0, h0));
    let _ = s.read_region((0, 0), last, clamp(wl, hl));
    // partly outside: before the top left, and over the bottom right edge (level-0 coordinates)
    let _ = s.read_region((-17, -5), 0, (48, 40));
    let bx = ((wl as f64 - 20.0) * ds) as i64;
    let by = ((hl as f64 - 10.0) * ds) as i64;
    let _ = s.read_region((bx, by), last, (48, 40));
    // middle of level 0
    let _ = s.read_region(((w0 / 2) as i64, (h0 / 2) as i64), 0, (33, 31));
    // errors, not panics, for bad arguments
    assert!(s.read_level(n).is_err());
    assert!(s.read_region((0, 0), 0, (u64::MAX, 1)).is_err());
    // whole levels and associated images only when small
    if wl.saturating_mul(hl) <= MAX_PIXELS {
        let _ = s.read_level(last);
    }
    for name in s.associated_images() {
        if let Some((w, h)) = s.associated_image_dimensions(name)
            && w.saturating_mul(h) <= MAX_PIXELS
        {
            let _ = s.read_associated_image(name);
        }
    }
    assert!(s.read_associated_image("no such image").is_err());
}
