//! Files written by tiledio-tiff, read back by tifffile and OpenSlide (pixel-exact for
//! lossless codecs), and by our own reader.

use tiledio_test_support::python;

use tiledio_tiff::{BigTiff, Compression, HostImage, Slide, WriteOptions, write_pyramid};

fn noise(h: usize, w: usize, c: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..h * w * c)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

fn smooth(h: usize, w: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(h * w * 3);
    for y in 0..h {
        for x in 0..w {
            for k in 0..3 {
                v.push((128.0 + 100.0 * ((x as f64 / 19.0 + k as f64).sin() * (y as f64 / 13.0).cos())) as u8);
            }
        }
    }
    v
}

const CHECK: &str = r#"
import sys, json, numpy as np, tifffile
path, npy, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ref = np.load(npy)
with tifffile.TiffFile(path) as t:
    s = t.series[0]
    a = s.levels[0].asarray()
    if a.ndim == 2: a = a[..., None]
    info = dict(levels=[list(l.shape[:2]) for l in s.levels], bigtiff=t.is_bigtiff, ome=t.is_ome,
                aligned=all(o % 4096 == 0 for o in t.pages[0].dataoffsets), compression=int(t.pages[0].compression))
if mode == "exact":
    assert a.shape == ref.shape and a.dtype == ref.dtype, (a.shape, ref.shape, a.dtype, ref.dtype)
    assert np.array_equal(a, ref), "pixels differ"
else:
    d = np.abs(a.astype(int) - ref.astype(int))
    info["max"], info["mean"] = int(d.max()), float(d.mean())
    assert d.mean() < 3, info
if len(sys.argv) > 4:
    import openslide
    o = openslide.OpenSlide(path)
    info["os_levels"] = [list(d) for d in o.level_dimensions]
    r = np.asarray(o.read_region((0, 0), 0, o.level_dimensions[0]))[..., :3]
    d = np.abs(r.astype(int) - ref.astype(int))
    info["os_max"] = int(d.max())
    if mode == "exact":
        assert d.max() == 0, "openslide pixels differ"
    for k in range(1, o.level_count):
        assert o.read_region((0, 0), k, o.level_dimensions[k]).size == tuple(o.level_dimensions[k])
print(json.dumps(info))
"#;

fn check(img: &HostImage, opts: &WriteOptions, mode: &str, openslide: bool) -> serde_like::Info {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.tif");
    let npy = dir.path().join("ref.npy");
    write_pyramid(&path, img, opts).unwrap();
    img.write_npy(&npy).unwrap();
    let mut args = vec![path.to_str().unwrap(), npy.to_str().unwrap(), mode];
    if openslide {
        args.push("openslide");
    }
    let out = python::run_python(CHECK, &args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // our own reader too
    let s = Slide::open(&path).unwrap();
    let back = s.read_level(0).unwrap();
    if mode == "exact" {
        assert!(back == *img, "our reader disagrees");
    }
    serde_like::Info(text)
}

/// Tiny helpers over the JSON line the script prints (no JSON dependency in this package).
mod serde_like {
    pub(crate) struct Info(pub(crate) String);
    impl Info {
        pub(crate) fn has(&self, s: &str) -> bool {
            self.0.contains(s)
        }
    }
}

#[test]
fn tiff_interop_uncompressed_rgb_pyramid_tifffile_and_openslide() {
    let img = HostImage::from_u8(300, 260, 3, noise(300, 260, 3, 1)).unwrap();
    let info = check(&img, &WriteOptions::default().tile(64), "exact", true);
    assert!(
        info.has(r#""levels": [[300, 260], [150, 130], [75, 65], [38, 33]]"#),
        "{}",
        info.0
    );
    assert!(info.has(r#""aligned": true"#), "{}", info.0);
    assert!(
        info.has(r#""os_levels": [[260, 300], [130, 150], [65, 75], [33, 38]]"#),
        "{}",
        info.0
    );
}

#[test]
fn tiff_interop_deflate_zstd_lzw_lossless() {
    let img = HostImage::from_u8(130, 200, 3, noise(130, 200, 3, 2)).unwrap();
    for c in [Compression::Deflate, Compression::Zstd, Compression::Lzw] {
        let info = check(
            &img,
            &WriteOptions::default().tile(32).compression(c),
            "exact",
            c != Compression::Zstd,
        );
        assert!(info.has(&format!(r#""compression": {}"#, c.code())), "{}", info.0);
    }
    let u16s: Vec<u16> = noise(90, 70, 2, 3)
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let f: Vec<f32> = (0..50 * 40 * 2).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
    for (img, c) in [
        (HostImage::from_u16(90, 70, 1, u16s).unwrap(), Compression::Zstd),
        (HostImage::from_f32(50, 40, 2, f).unwrap(), Compression::Deflate),
    ] {
        check(&img, &WriteOptions::default().tile(16).compression(c), "exact", false);
    }
}

#[test]
fn tiff_interop_bigtiff_and_ome_subifds() {
    let img = HostImage::from_u8(200, 150, 3, noise(200, 150, 3, 4)).unwrap();
    let info = check(
        &img,
        &WriteOptions::default().tile(64).bigtiff(BigTiff::Always),
        "exact",
        true,
    );
    assert!(info.has(r#""bigtiff": true"#), "{}", info.0);
    let info = check(
        &img,
        &WriteOptions::default().tile(64).subifds(true).mpp(0.5),
        "exact",
        false,
    );
    assert!(
        info.has(r#""ome": true"#) && info.has(r#""levels": [[200, 150], [100, 75], [50, 38]]"#),
        "{}",
        info.0
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("o.tif");
    write_pyramid(&p, &img, &WriteOptions::default().tile(64).subifds(true).mpp(0.5)).unwrap();
    let s = Slide::open(&p).unwrap();
    assert_eq!(s.level_count(), 3);
    assert_eq!(s.properties()["openslide.mpp-x"], "0.5");
}

#[test]
fn tiff_interop_jpeg_written_reads_in_tifffile_openslide_and_ours() {
    let img = HostImage::from_u8(200, 240, 3, smooth(200, 240)).unwrap();
    let info = check(
        &img,
        &WriteOptions::default()
            .tile(64)
            .compression(Compression::Jpeg)
            .quality(95),
        "close",
        true,
    );
    assert!(info.has(r#""compression": 7"#), "{}", info.0);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("j.tif");
    write_pyramid(
        &p,
        &img,
        &WriteOptions::default()
            .tile(64)
            .compression(Compression::Jpeg)
            .quality(95),
    )
    .unwrap();
    let back = Slide::open(&p).unwrap().read_level(0).unwrap();
    let mean: f64 = back
        .bytes()
        .iter()
        .zip(img.bytes())
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / img.bytes().len() as f64;
    assert!(mean < 3.0, "mean abs error {mean}");
    // our decode is libjpeg-turbo's: bit-exact with tifffile (imagecodecs) and with OpenSlide
    // (libtiff + libjpeg), now that the writer tags YCbCr-coded streams Photometric YCbCr
    let npy = dir.path().join("ours.npy");
    back.write_npy(&npy).unwrap();
    let same = r#"
import sys, numpy as np, tifffile
ours = np.load(sys.argv[2]).astype(int)
ref = tifffile.imread(sys.argv[1]).reshape(ours.shape).astype(int)
assert np.abs(ours - ref).max() == 0, ("tifffile", int(np.abs(ours - ref).max()))
import openslide
o = openslide.OpenSlide(sys.argv[1])
os = np.asarray(o.read_region((0, 0), 0, o.level_dimensions[0]))[..., :3].astype(int)
assert np.abs(ours - os).max() == 0, ("openslide", int(np.abs(ours - os).max()))
"#;
    python::run_python(same, &[p.to_str().unwrap(), npy.to_str().unwrap()]);
}
