//! The streaming pyramid writer: reduced levels equal whole-level 2× halving for every
//! element type, band size and odd shape; every element type round-trips and is read equal by
//! tifffile; levels that are not exact halves read by their own coordinates.

use tiledio_test_support::python;
use tiledio_test_support::random;

use tiledio_tiff::{Compression, HostImage, SampleType, Slide, WriteOptions, write_pyramid, write_pyramid_from};

/// Whole-level halving, the reference: mean of the up-to-2×2 block, edges repeated; integers
/// `(sum + 2)` floor-divided by 4, floats `((a + b) + c + d) / 4`.
fn half_ref(img: &HostImage) -> HostImage {
    let (h, w, c) = img.shape();
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let t = img.dtype();
    let es = t.size();
    let b = img.bytes();
    let get = |y: usize, x: usize, k: usize| -> [u8; 8] {
        let i = ((y * w + x) * c + k) * es;
        let mut v = [0u8; 8];
        v[..es].copy_from_slice(&b[i..i + es]);
        v
    };
    let mut out = Vec::with_capacity(oh * ow * c * es);
    for oy in 0..oh {
        for ox in 0..ow {
            for k in 0..c {
                let (y0, x0) = (2 * oy, 2 * ox);
                let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
                let q = [get(y0, x0, k), get(y0, x1, k), get(y1, x0, k), get(y1, x1, k)];
                let bytes: Vec<u8> = match t {
                    SampleType::U8 => vec![((q.iter().map(|v| v[0] as i128).sum::<i128>() + 2).div_euclid(4)) as u8],
                    SampleType::I8 => {
                        vec![((q.iter().map(|v| v[0] as i8 as i128).sum::<i128>() + 2).div_euclid(4)) as i8 as u8]
                    }
                    SampleType::U16 => (((q.iter().map(|v| u16::from_ne_bytes([v[0], v[1]]) as i128).sum::<i128>() + 2)
                        .div_euclid(4)) as u16)
                        .to_ne_bytes()
                        .to_vec(),
                    SampleType::I32 => (((q
                        .iter()
                        .map(|v| i32::from_ne_bytes([v[0], v[1], v[2], v[3]]) as i128)
                        .sum::<i128>()
                        + 2)
                    .div_euclid(4)) as i32)
                        .to_ne_bytes()
                        .to_vec(),
                    SampleType::U64 => (((q.iter().map(|v| u64::from_ne_bytes(*v) as i128).sum::<i128>() + 2)
                        .div_euclid(4)) as u64)
                        .to_ne_bytes()
                        .to_vec(),
                    SampleType::I64 => (((q.iter().map(|v| i64::from_ne_bytes(*v) as i128).sum::<i128>() + 2)
                        .div_euclid(4)) as i64)
                        .to_ne_bytes()
                        .to_vec(),
                    SampleType::F32 => {
                        let f = |v: &[u8; 8]| f32::from_ne_bytes([v[0], v[1], v[2], v[3]]);
                        ((f(&q[0]) + f(&q[1]) + f(&q[2]) + f(&q[3])) / 4.0)
                            .to_ne_bytes()
                            .to_vec()
                    }
                    SampleType::F64 => {
                        let f = |v: &[u8; 8]| f64::from_ne_bytes(*v);
                        ((f(&q[0]) + f(&q[1]) + f(&q[2]) + f(&q[3])) / 4.0)
                            .to_ne_bytes()
                            .to_vec()
                    }
                    other => panic!("no reference for {other:?}"),
                };
                out.extend_from_slice(&bytes);
            }
        }
    }
    HostImage::from_bytes(oh, ow, c, t, out).unwrap()
}

/// Random samples; floats kept finite (random bits could be NaN, which never compare equal).
fn random_image(h: usize, w: usize, c: usize, t: SampleType, seed: u64) -> HostImage {
    let b = random::random_samples(h * w * c, t.size(), t.is_float(), seed);
    HostImage::from_bytes(h, w, c, t, b).unwrap()
}

#[test]
fn streamed_levels_equal_whole_level_halving() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (53, 37, 1, SampleType::U8),
        (70, 101, 3, SampleType::U16),
        (33, 17, 2, SampleType::I8),
        (47, 45, 1, SampleType::F32),
        (19, 66, 1, SampleType::I32),
        (40, 23, 1, SampleType::F64),
        (25, 31, 1, SampleType::U64),
        (29, 30, 1, SampleType::I64),
    ];
    for (i, &(h, w, c, t)) in cases.iter().enumerate() {
        let img = random_image(h, w, c, t, i as u64);
        // one tile row per band (rows carried across bands), and everything in one band
        for band_bytes in [1, 64 << 20] {
            let path = dir.path().join(format!("s{i}-{band_bytes}.tif"));
            let mut opts = WriteOptions::default()
                .tile(16)
                .compression(Compression::Zstd)
                .levels(4);
            opts.band_bytes = band_bytes;
            let r = write_pyramid_from(&path, &img, &opts, &|_, _| {}).unwrap();
            assert_eq!(r.levels.len(), 4);
            let s = Slide::open(&path).unwrap();
            let mut want = img.clone();
            for l in 0..4 {
                assert_eq!(
                    s.read_level(l).unwrap(),
                    want,
                    "case {i} ({t:?}) level {l} band {band_bytes}"
                );
                want = half_ref(&want);
            }
        }
    }
}

#[test]
fn every_element_type_round_trips_and_tifffile_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (i, t) in SampleType::ALL.into_iter().enumerate() {
        let img = random_image(40, 30, 2, t, 100 + i as u64);
        let path = dir.path().join(format!("{}.tif", t.name()));
        write_pyramid(
            &path,
            &img,
            &WriteOptions::default().tile(16).compression(Compression::Deflate),
        )
        .unwrap();
        assert_eq!(Slide::open(&path).unwrap().read_level(0).unwrap(), img, "{t:?}");
        let npy = dir.path().join(format!("{}.npy", t.name()));
        img.write_npy(&npy).unwrap();
        args.push(path.display().to_string());
        args.push(npy.display().to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python::run_python(
        r#"
import sys, numpy as np, tifffile
a = sys.argv[1:]
for tif, npy in zip(a[0::2], a[1::2]):
    ref = np.load(npy)
    got = tifffile.imread(tif)
    assert got.dtype == ref.dtype, (tif, got.dtype, ref.dtype)
    assert np.array_equal(got.reshape(ref.shape), ref), tif
print("ok", len(a) // 2)
"#,
        &argv,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 10");
}

#[test]
fn unreadable_shapes_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.tif");
    let img = HostImage::from_bytes(2, 2, 1000, SampleType::U8, vec![0; 4000]).unwrap();
    let e = write_pyramid(&path, &img, &WriteOptions::default()).unwrap_err();
    assert!(e.to_string().contains("1000 samples per pixel"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
    let e = write_pyramid(
        &path,
        &random_image(4, 4, 1, SampleType::U8, 1),
        &WriteOptions::default().tile(100),
    )
    .unwrap_err();
    assert!(e.to_string().contains("multiple of 16"), "{e}");
}

/// A 9001×7003 pyramid with levels by `//2` (not exact halves): reading a level by its own
/// coordinates gives exactly that level's rows (a level-0 round trip truncated twice and
/// shifted rows by one from the first band boundary).
#[test]
fn uneven_levels_read_by_level_coordinates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uneven.tif");
    let (w, h) = (901usize, 703usize);
    let mut levels = Vec::new();
    let (mut lw, mut lh) = (w, h);
    for l in 0..3 {
        let data: Vec<u8> = (0..lh * lw).map(|i| ((i / lw) % 251) as u8 ^ l as u8).collect();
        levels.push(HostImage::from_u8(lh, lw, 1, data).unwrap());
        lw /= 2;
        lh /= 2;
    }
    let npys: Vec<String> = levels
        .iter()
        .enumerate()
        .map(|(l, img)| {
            let p = dir.path().join(format!("l{l}.npy"));
            img.write_npy(&p).unwrap();
            p.display().to_string()
        })
        .collect();
    let p = path.display().to_string();
    python::run_python(
        r#"
import sys, numpy as np, tifffile
out, l0, l1, l2 = sys.argv[1:]
with tifffile.TiffWriter(out) as t:
    for i, f in enumerate((l0, l1, l2)):
        t.write(np.load(f)[..., 0], tile=(64, 64), subfiletype=1 if i else 0)
"#,
        &[&p, &npys[0], &npys[1], &npys[2]],
    );
    let s = Slide::open(&path).unwrap();
    assert_eq!(s.level_dimensions(), vec![(901, 703), (450, 351), (225, 175)]);
    for (l, want) in levels.iter().enumerate() {
        let (lw, lh) = s.level_dimensions()[l];
        for y0 in [0u64, 63, 64, 128, lh - 7] {
            let rows = 7.min(lh - y0);
            let got = s
                .read_level_region(
                    l,
                    &tiledio_io::Region::new(&[y0 as i64, 0], &[rows, lw]),
                    tiledio_io::Border::Reject,
                )
                .unwrap();
            let row = lw as usize;
            assert_eq!(
                got.bytes(),
                &want.bytes()[y0 as usize * row..(y0 + rows) as usize * row],
                "level {l} rows {y0}+{rows}"
            );
        }
    }
}

/// `read_level_region` follows the region's border policy: `Fill` gives 0 outside the level and
/// the level's pixels inside; `Reject` refuses a region reaching outside, and a region of the
/// wrong rank is an error either way.
#[test]
fn level_regions_follow_the_border_policy() {
    use tiledio_io::{Border, Region};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.tif");
    let (h, w) = (40usize, 30usize);
    let px: Vec<u8> = (0..h * w).map(|i| (i % 250) as u8 + 1).collect();
    let img = tiledio_tiff::HostImage::from_u8(h, w, 1, px.clone()).unwrap();
    tiledio_tiff::write_pyramid(&path, &img, &tiledio_tiff::WriteOptions::default().tile(16).levels(1)).unwrap();
    let s = tiledio_tiff::Slide::open(&path).unwrap();
    let r = Region::new(&[-2, 25], &[5, 8]);
    let got = s.read_level_region(0, &r, Border::Fill).unwrap();
    for y in 0..5i64 {
        for x in 0..8i64 {
            let (gy, gx) = (y - 2, x + 25);
            let want = if gy >= 0 && gx < w as i64 {
                px[gy as usize * w + gx as usize]
            } else {
                0
            };
            assert_eq!(got.bytes()[(y * 8 + x) as usize], want, "at {y},{x}");
        }
    }
    let e = s.read_level_region(0, &r, Border::Reject).unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
    assert!(s.read_level_region(0, &Region::new(&[0], &[4]), Border::Fill).is_err());
    let inside = s
        .read_level_region(0, &Region::new(&[3, 4], &[2, 2]), Border::Reject)
        .unwrap();
    assert_eq!(
        inside.bytes(),
        &[px[3 * w + 4], px[3 * w + 5], px[4 * w + 4], px[4 * w + 5]]
    );
}

/// Uncompressed tiles are read by the rows a window needs (a halo of one row costs one row of
/// the tiles above and below): windows starting and ending inside tiles, one row high, at the
/// last (partial) tile row, in every element size, equal the same rows cut from the whole
/// level, and so do windows reaching past the image (background outside), read through a
/// mapping of the file or with `pread`.
#[test]
fn windows_inside_uncompressed_tiles_equal_the_whole_level() {
    let dir = tempfile::tempdir().unwrap();
    for (t, c, tile) in [
        (SampleType::U8, 3, 64u32),
        (SampleType::U16, 1, 16),
        (SampleType::F64, 2, 32),
    ] {
        let (h, w) = (203usize, 150usize);
        let img = random_image(h, w, c, t, 11);
        let path = dir.path().join(format!("w{}-{c}.tif", t.size()));
        let opts = WriteOptions::default()
            .tile(tile)
            .compression(Compression::None)
            .levels(1);
        write_pyramid(&path, &img, &opts).unwrap();
        let px = c * t.size();
        // small windows are copied out of a mapping of the file, or read with pread when
        // mapped reads are off: both give the same bytes
        for mapped in [true, false] {
            let settings = tiledio_io::Settings {
                mapped_reads: mapped,
                ..Default::default()
            };
            let s = Slide::open_with(&path, &settings).unwrap();
            for (y0, rows, x0, cols) in [
                (1i64, 1u64, 0i64, 150u64),
                (63, 3, 5, 70),
                (17, 120, 31, 1),
                (202, 1, 0, 150),
                (190, 13, 149, 1),
                (0, 203, 0, 150),
                // reaching past every edge: the outside is the background (0)
                (-7, 40, -3, 20),
                (180, 40, 140, 30),
                (-1, 205, -1, 152),
            ] {
                let got = s
                    .read_level_region(
                        0,
                        &tiledio_io::Region::new(&[y0, x0], &[rows, cols]),
                        tiledio_io::Border::Fill,
                    )
                    .unwrap();
                let mut want = Vec::new();
                for y in y0..y0 + rows as i64 {
                    for x in x0..x0 + cols as i64 {
                        if (0..h as i64).contains(&y) && (0..w as i64).contains(&x) {
                            let start = (y as usize * w + x as usize) * px;
                            want.extend_from_slice(&img.bytes()[start..start + px]);
                        } else {
                            want.extend(std::iter::repeat_n(0u8, px));
                        }
                    }
                }
                assert!(
                    got.bytes() == want.as_slice(),
                    "{t:?}×{c} tile {tile}, mapped {mapped}: rows {y0}+{rows}, columns {x0}+{cols}"
                );
            }
        }
    }
}
