//! Reads every fixture in testdata/tiff (written by tifffile, libvips and libtiff) and checks
//! the pixels against tifffile's decode: crc32 of every level and associated image
//! (testdata/tiff/expected.txt), JPEG included (we decode with libjpeg-turbo, as imagecodecs
//! does: bit-exact), plus a live comparison with tifffile at test time for the JPEG files.

use tiledio_test_support::python;

use std::path::PathBuf;
use tiledio_tiff::{HostImage, SampleType, Slide, TiffError};

fn dir() -> PathBuf {
    tiledio_test_support::workspace_root().join("testdata/tiff")
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    let mut c = !0u32;
    for &b in data {
        c = table[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// Little-endian bytes of an image, as numpy's `tobytes()` on a `<` array gives them.
fn le_bytes(img: &HostImage) -> Vec<u8> {
    let mut b = img.bytes().to_vec();
    if cfg!(target_endian = "big") && img.dtype().size() > 1 {
        for c in b.chunks_exact_mut(img.dtype().size()) {
            c.reverse();
        }
    }
    b
}

struct Expect {
    kind: String,
    file: String,
    key: String,
    shape: (usize, usize, usize),
    dtype: String,
    crc: u32,
}

fn expected() -> Vec<Expect> {
    let text = std::fs::read_to_string(dir().join("expected.txt")).expect("expected.txt");
    text.lines()
        .filter(|l| l.starts_with("level") || l.starts_with("assoc"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Expect {
                kind: f[0].into(),
                file: f[1].into(),
                key: f[2].into(),
                shape: (f[3].parse().unwrap(), f[4].parse().unwrap(), f[5].parse().unwrap()),
                dtype: f[6].into(),
                crc: u32::from_str_radix(f[7], 16).unwrap(),
            }
        })
        .collect()
}

fn lossy() -> Vec<String> {
    let text = std::fs::read_to_string(dir().join("expected.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("lossy ").map(str::to_string))
        .collect()
}

#[test]
fn tiff_fixtures_levels_match_tifffile() {
    let mut checked = 0;
    for e in expected() {
        let slide = Slide::open(dir().join(&e.file)).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        let img = if e.kind == "level" {
            let level: usize = e.key.parse().unwrap();
            assert!(
                level < slide.level_count(),
                "{}: level {level} of {}",
                e.file,
                slide.level_count()
            );
            let (w, h) = slide.level_dimensions()[level];
            assert_eq!(
                (h as usize, w as usize),
                (e.shape.0, e.shape.1),
                "{} level {level}",
                e.file
            );
            slide
                .read_level(level)
                .unwrap_or_else(|err| panic!("{} level {level}: {err}", e.file))
        } else {
            assert!(
                slide.associated_images().contains(&e.key.as_str()),
                "{}: {:?}",
                e.file,
                slide.associated_images()
            );
            slide.read_associated_image(&e.key).unwrap()
        };
        assert_eq!(img.shape(), e.shape, "{} {}", e.file, e.key);
        assert_eq!(img.dtype().name(), e.dtype, "{} {}", e.file, e.key);
        assert_eq!(
            crc32(&le_bytes(&img)),
            e.crc,
            "{} {} pixels differ from tifffile's",
            e.file,
            e.key
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} checks");
}

/// JPEG tiles decode bit-exactly as tifffile (imagecodecs, libjpeg-turbo) decodes them.
#[test]
fn tiff_fixtures_jpeg_bit_exact_with_tifffile() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for e in expected() {
        if !lossy().contains(&e.file) {
            continue;
        }
        let slide = Slide::open(dir().join(&e.file)).unwrap();
        let (img, what) = if e.kind == "level" {
            (slide.read_level(e.key.parse().unwrap()).unwrap(), format!("L{}", e.key))
        } else {
            (slide.read_associated_image(&e.key).unwrap(), e.key.clone())
        };
        let npy = tmp.path().join(format!("{}.{what}.npy", e.file));
        img.write_npy(&npy).unwrap();
        args.push(format!(
            "{}|{}|{}|{}",
            dir().join(&e.file).display(),
            e.kind,
            e.key,
            npy.display()
        ));
    }
    assert!(args.len() >= 8, "{args:?}");
    let script = r#"
import sys, numpy as np, tifffile
worst = 0.0
for a in sys.argv[1:]:
    path, kind, key, npy = a.split("|")
    ours = np.load(npy).astype(np.int32)
    with tifffile.TiffFile(path) as t:
        if kind == "level":
            ref = t.series[0].levels[int(key)].asarray()
        else:
            ref = [s for s in t.series if s.name.lower() == key][0].asarray()
    ref = ref.reshape(ours.shape).astype(np.int32)
    d = np.abs(ours - ref)
    print(path.split("/")[-1], kind, key, "max", d.max(), "mean", round(float(d.mean()), 3))
    assert d.max() == 0, (path, key, d.max(), d.mean())
"#;
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python::run_python(script, &refs);
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn tiff_fixture_metadata_like_openslide() {
    let svs = Slide::open(dir().join("svs_like.svs")).unwrap();
    assert_eq!(svs.level_count(), 2);
    assert_eq!(svs.level_dimensions(), vec![(333, 250), (167, 125)]);
    assert_eq!(svs.level_tile_sizes(), vec![(64, 64), (64, 64)]);
    assert_eq!(svs.associated_images(), vec!["label", "macro", "thumbnail"]);
    let p = svs.properties();
    assert_eq!(p["openslide.vendor"], "aperio");
    assert_eq!(p["openslide.mpp-x"], "0.4990");
    assert_eq!(p["openslide.objective-power"], "20");
    assert_eq!(p["aperio.ScanScope ID"], "SS1234");
    assert!(p["tiff.ImageDescription"].starts_with("Aperio Image Library"));
    assert_eq!(svs.get_best_level_for_downsample(1.5), 0);
    assert_eq!(svs.get_best_level_for_downsample(2.5), 1);
    assert_eq!(svs.get_best_level_for_downsample(100.0), 1);

    let ome = Slide::open(dir().join("tifffile_ome_subifds.ome.tif")).unwrap();
    assert_eq!(ome.level_dimensions(), vec![(333, 250), (167, 125), (84, 63)]);
    assert_eq!(ome.properties()["openslide.mpp-x"], "0.25");
    let vips = Slide::open(dir().join("vips_jpeg_pyramid.tif")).unwrap();
    assert_eq!(vips.level_count(), 4);
    assert_eq!(vips.sample_type(), SampleType::U8);
    assert!((vips.level_downsamples()[1] - 2.0).abs() < 1e-9);
}

#[test]
fn tiff_fixture_regions_crop_and_fill_background() {
    let slide = Slide::open(dir().join("tifffile_none_rgb8.tif")).unwrap();
    let full = slide.read_level(0).unwrap();
    let (_, w, c) = full.shape();
    // straddles the top-left corner: 10 rows and columns of background, then pixels
    let r = slide.read_region((-10, -10), 0, (100, 70)).unwrap();
    assert_eq!(r.shape(), (70, 100, 3));
    for y in 0..70usize {
        for x in 0..100usize {
            for k in 0..c {
                let got = r.bytes()[(y * 100 + x) * c + k];
                let want = if y < 10 || x < 10 {
                    0
                } else {
                    full.bytes()[((y - 10) * w + (x - 10)) * c + k]
                };
                assert_eq!(got, want, "({x},{y},{k})");
            }
        }
    }
    // level 1 region with the location given at level 0
    let l1 = slide.read_level(1).unwrap();
    let r = slide
        .read_region_with((40, 20), 1, (30, 30), &tiledio_tiff::ReadOptions::with_background(255))
        .unwrap();
    let l1w = l1.shape().1;
    assert_eq!(
        &r.bytes()[..3],
        &l1.bytes()[(10 * l1w + 20) * 3..(10 * l1w + 20) * 3 + 3]
    );
    // entirely outside
    let r = slide.read_region((10_000, 10_000), 0, (8, 8)).unwrap();
    assert!(r.bytes().iter().all(|&b| b == 0));
    // a level that does not exist
    assert!(matches!(
        slide.read_region((0, 0), 9, (8, 8)),
        Err(TiffError::InvalidArgument(_))
    ));
}

/// Reads into a caller's buffer give the same bytes as reads into a new image, whatever the
/// buffer held before: inside the image (every codec), across its edge and outside it, at
/// level 0 and a reduced level.
#[test]
fn tiff_fixture_reads_into_caller_buffers_overwrite_every_byte() {
    let names = [
        "tifffile_none_rgb8.tif",
        "tifffile_deflate_rgb8.tif",
        "tifffile_jpeg_rgb8.tif",
        "tifffile_lzw_pred_u16.tif",
        "tifffile_bigendian_u16.tif",
        "tifffile_zstd_f32.tif",
        "tifffile_strips_rgb8.tif",
        "vips_jpeg_pyramid.tif",
    ];
    for name in names {
        let slide = Slide::open(dir().join(name)).unwrap();
        let (w0, h0) = slide.level_dimensions()[0];
        let (w0, h0) = (w0 as i64, h0 as i64);
        let last = slide.level_count() - 1;
        let cases = [
            ((3, 5), 0, (40u64, 30u64)),
            ((w0 - 20, h0 - 10), 0, (50, 40)),
            ((-7, -9), 0, (25, 25)),
            ((w0 + 5, 0), 0, (8, 8)),
            ((0, 0), last, (33, 17)),
        ];
        for (loc, level, size) in cases {
            let want = slide.read_region(loc, level, size).unwrap();
            for fill in [0u8, 0xa5] {
                let mut buf = vec![fill; want.bytes().len()];
                slide.read_region_into(loc, level, size, &mut buf).unwrap();
                assert!(
                    buf == want.bytes(),
                    "{name} {loc:?} level {level} {size:?} (buffer of {fill:#x})"
                );
            }
        }
        let mut short = vec![0u8; 10];
        assert!(matches!(
            slide.read_region_into((0, 0), 0, (8, 8), &mut short),
            Err(TiffError::InvalidArgument(_))
        ));
    }
}

#[test]
fn tiff_fixture_unsupported_features_name_themselves() {
    let e = Slide::open(dir().join("unsupported_jp2k_33003.tif")).unwrap_err();
    assert!(matches!(e, TiffError::Unsupported { .. }), "{e}");
    assert!(
        e.to_string().contains("33003") && e.to_string().contains("JPEG 2000"),
        "{e}"
    );
    let e = Slide::open(dir().join("unsupported_planar_separate.tif")).unwrap_err();
    assert!(e.to_string().contains("planar-separate"), "{e}");
}
