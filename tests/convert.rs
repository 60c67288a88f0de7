//! `tiledio::convert` against independent readers: a pyramid whose levels are not exact halves
//! converts level by level exactly; every element type goes TIFF → Zarr → TIFF pixel-exact and
//! zarr-python / tifffile read what we wrote.

use tiledio_test_support::python;
use tiledio_test_support::random;

use tiledio::convert::{ConvertOptions, convert};
use tiledio::tiff::{Compression, HostImage, SampleType, Slide, WriteOptions, write_pyramid};

/// The issue's case: 9001×7003 with levels by `//2`, converted to OME-Zarr at 256-pixel
/// chunks; every level must equal tifffile's (rows shifted by one from row 256 on, before).
#[test]
fn uneven_pyramid_converts_level_by_level_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let tif = dir.path().join("uneven.tif");
    let zarr = dir.path().join("uneven.zarr");
    let t = tif.display().to_string();
    python::run_python(
        r#"
import sys, numpy as np, tifffile
h, w = 7003, 9001
y, x = np.mgrid[0:h, 0:w]
img = ((y * 7 + x * 3) % 251).astype(np.uint8)
with tifffile.TiffWriter(sys.argv[1], bigtiff=False) as tw:
    level = img
    for i in range(3):
        tw.write(level, tile=(256, 256), subfiletype=1 if i else 0, compression='zlib')
        level = level[::2, ::2][: level.shape[0] // 2, : level.shape[1] // 2]
"#,
        &[&t],
    );
    let s = Slide::open(&tif).unwrap();
    assert_eq!(s.level_dimensions(), vec![(9001, 7003), (4500, 3501), (2250, 1750)]);
    let o = ConvertOptions {
        chunk: Some(256),
        codec: Some(tiledio::zarr::Compression::None),
        ..Default::default()
    };
    let r = convert(&tif, &zarr, &o, &|_, _| {}).unwrap();
    assert_eq!(r.levels.len(), 3);
    let out = python::run_python(
        r#"
import sys, numpy as np, tifffile, zarr
tif, z = sys.argv[1], sys.argv[2]
g = zarr.open_group(z, mode='r')
with tifffile.TiffFile(tif) as t:
    for i, page in enumerate(t.pages):
        want = page.asarray()
        got = np.asarray(g[str(i)])
        assert got.shape == (1,) + want.shape, (i, got.shape, want.shape)
        bad = np.nonzero((got[0] != want).any(axis=1))[0]
        assert bad.size == 0, f"level {i}: rows {bad[:5]} differ"
print("ok")
"#,
        &[&t, &zarr.display().to_string()],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

fn image(t: SampleType, h: usize, w: usize, c: usize, seed: u64) -> HostImage {
    let b = random::random_samples(h * w * c, t.size(), t.is_float(), seed);
    HostImage::from_bytes(h, w, c, t, b).unwrap()
}

#[test]
fn every_element_type_converts_both_ways_pixel_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (i, t) in SampleType::ALL.into_iter().enumerate() {
        let c = [1, 3, 2, 1, 4][i % 5];
        let img = image(t, 45, 37, c, i as u64);
        let src = dir.path().join(format!("{}.tif", t.name()));
        write_pyramid(
            &src,
            &img,
            &WriteOptions::default().tile(16).compression(Compression::Zstd),
        )
        .unwrap();
        let z = dir.path().join(format!("{}.zarr", t.name()));
        let o = ConvertOptions {
            chunk: Some(16),
            ..Default::default()
        };
        convert(&src, &z, &o, &|_, _| {}).unwrap();
        let back = dir.path().join(format!("{}-back.tif", t.name()));
        let o = ConvertOptions {
            tile: Some(32),
            compression: Some(Compression::Deflate),
            ..Default::default()
        };
        let r = convert(&z, &back, &o, &|_, _| {}).unwrap();
        assert_eq!(r.element_type, t);
        assert_eq!(Slide::open(&back).unwrap().read_level(0).unwrap(), img, "{t:?}");
        let npy = dir.path().join(format!("{}.npy", t.name()));
        img.write_npy(&npy).unwrap();
        args.extend([z.display().to_string(), npy.display().to_string()]);
    }
    // zarr-python reads our OME-Zarr levels (c, y, x) with the same dtype and values
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python::run_python(
        r#"
import sys, numpy as np, zarr
a = sys.argv[1:]
for z, npy in zip(a[0::2], a[1::2]):
    ref = np.load(npy)
    got = np.asarray(zarr.open_group(z, mode='r')['0'])
    assert got.dtype == ref.dtype, (z, got.dtype, ref.dtype)
    assert np.array_equal(np.moveaxis(got, 0, -1), ref), z
print("ok", len(a) // 2)
"#,
        &argv,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 10");
}
