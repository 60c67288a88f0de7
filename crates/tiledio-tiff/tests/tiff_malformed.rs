//! Malformed and hostile files give typed errors, never panics: the fixtures in
//! testdata/tiff/malformed, plus random mutations of valid fixtures (a proptest stand-in for
//! `cargo fuzz`, which needs a nightly toolchain this project does not use).

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use tiledio_tiff::{Slide, TiffError};

fn mal(name: &str) -> PathBuf {
    tiledio_test_support::workspace_root()
        .join("testdata/tiff/malformed")
        .join(name)
}

/// Opens and reads every level and associated image; the first error.
fn open_and_read(path: &Path) -> Result<(), TiffError> {
    let s = Slide::open(path)?;
    for l in 0..s.level_count() {
        s.read_level(l)?;
        s.read_region((-7, -3), l, (50, 40))?;
    }
    for a in s.associated_images() {
        s.read_associated_image(a)?;
    }
    Ok(())
}

/// One test per malformed fixture: `test: file => pattern,` checks that opening and reading
/// the file fails with an error matching the pattern (and its guard).
macro_rules! malformed_tests {
    ($($(#[$doc:meta])* $test:ident: $file:literal => $err:pat $(if $guard:expr)?,)*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $test() {
                let e = open_and_read(&mal($file)).unwrap_err();
                assert!(matches!(&e, $err $(if $guard)?), "{e}");
            }
        )*
    };
}

malformed_tests! {
    tiff_malformed_truncated: "truncated.tif" => TiffError::TileOutOfFile { .. } | TiffError::Malformed { .. },
    tiff_malformed_offset_past_eof: "offset_past_eof.tif" => TiffError::TileOutOfFile { tile: 1, .. },
    tiff_malformed_zero_bytecount: "zero_bytecount.tif" => TiffError::BadTile { reason, .. } if reason.contains("zero"),
    tiff_malformed_tile_count_mismatch: "tile_count_mismatch.tif"
        => TiffError::Malformed { reason, .. } if reason.contains("offsets"),
    tiff_malformed_absurd_dimensions: "absurd_dimensions.tif"
        => TiffError::Malformed { reason, .. } if reason.contains("4294967295"),
    tiff_malformed_ifd_loop: "ifd_loop.tif" => TiffError::Malformed { reason, .. } if reason.contains("loop"),
    /// Thousands of SubIFDs, each loading the same ImageDescription of nearly the whole file out of
    /// line: once 4 GiB loaded from a 256 KiB file (an out-of-memory of the `slide_open` fuzz
    /// target), now bounded by the file's length plus a margin.
    tiff_malformed_fuzz_value_bomb: "fuzz-value-bomb.tif"
        => TiffError::Malformed { reason, .. } if reason.contains("add up to"),
    /// JPEGTables with a frame header of 65471x1472 pixels for 64x64 tiles: every tile was decoded
    /// at that size (33 s under the `slide_open` fuzz target); now a decode error.
    tiff_malformed_fuzz_jpeg_huge_frame: "fuzz-jpeg-huge-frame.tif"
        => TiffError::Decode { codec: "jpeg", reason, .. } if reason.contains("65471x1472 for a 64x64 tile"),
}

#[test]
fn tiff_malformed_not_a_tiff_and_empty() {
    for f in ["not_a_tiff.tif", "empty.tif"] {
        let e = open_and_read(&mal(f)).unwrap_err();
        assert!(matches!(e, TiffError::NotTiff { .. }), "{f}: {e}");
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(tiledio_test_support::workspace_root().join("testdata/tiff").join(name)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256), ..ProptestConfig::default() })]

    /// Random byte and word overwrites and truncations of valid files: any result but a panic.
    #[test]
    fn tiff_mutated_files_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<u32>(), any::<u32>(), 0u8..3), 1..8),
        cut in proptest::option::of(any::<u32>()),
    ) {
        let names = [
            "tifffile_none_rgb8.tif", "tifffile_lzw_pred_u16.tif", "svs_like.svs",
            "tifffile_bigtiff_gray8.tif", "tifffile_ome_subifds.ome.tif", "vips_jpeg_pyramid.tif",
        ];
        let mut data = fixture(names[which]);
        // aim most edits at the structure: the header and the IFDs near the end of tifffile files
        for (pos, val, kind) in edits {
            let n = data.len();
            let at = match kind { 0 => pos as usize % 64, 1 => n - 1 - (pos as usize % n.min(2048)), _ => pos as usize % n };
            let bytes = val.to_le_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if at + i < n { data[at + i] = *b; }
            }
        }
        if let Some(c) = cut { let n = data.len(); data.truncate(c as usize % n); }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.tif");
        std::fs::write(&p, &data).unwrap();
        let _ = open_and_read(&p);
    }
}
