//! The CPU references of the filter kernels (Sobel, colour, Macenko) against scikit-image's
//! (and cuCIM's algorithm's) outputs in `testdata/kernels/` (made by `make_fixtures.py`
//! there), tiled-vs-whole-image bit identity, and argument errors.
//!
//! Tolerances: scikit-image computes in float64, we in float32 (Sobel) or in float64 rounded
//! once to float32 (colour), so the difference is float32 rounding. For Sobel the error of a
//! difference of neighbours scales with the values differenced, not the result, so the bound
//! is `1e-6 * (|expected| + s)` with `s` the largest absolute grey value (1 for integers);
//! colour: `1e-6 * (|expected| + 1)`. The measured maxima are printed (`--nocapture`).

use tiledio_io::ElementType;
use tiledio_kernels::{Rect, Sobel, SobelOutput};
use tiledio_test_support::random::random_samples;

/// A `.npy` array: its dtype descr (`<u1`, `<u2`, `<f4`, `<f8`), shape and raw data.
struct Npy {
    descr: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

impl Npy {
    fn load(name: &str) -> Npy {
        let path = tiledio_test_support::testdata("kernels").join(name);
        let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&b[..6], b"\x93NUMPY", "{name}: not a .npy file");
        let (hlen, start) = if b[6] == 1 {
            (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
        } else {
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        };
        let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
        let field = |key: &str| {
            let at = header.find(key).unwrap_or_else(|| panic!("{name}: no {key}")) + key.len();
            header[at..].trim_start_matches([' ', ':']).to_string()
        };
        let descr = field("'descr'")[1..4].to_string();
        assert!(field("'fortran_order'").starts_with("False"), "{name}: Fortran order");
        let s = field("'shape'");
        let shape = s[1..s.find(')').unwrap()]
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().parse().unwrap())
            .collect();
        Npy {
            descr,
            shape,
            data: b[start + hlen..].to_vec(),
        }
    }

    fn f64s(&self) -> Vec<f64> {
        assert_eq!(self.descr, "<f8");
        self.data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn element(&self) -> ElementType {
        match self.descr.as_str() {
            "<u1" | "|u1" => ElementType::U8,
            "<u2" => ElementType::U16,
            "<f4" => ElementType::F32,
            d => panic!("unexpected dtype {d}"),
        }
    }
}

/// The largest `|got - want| / (|want| + scale)`.
fn max_rel(got: &[f32], want: &[f64], scale: f64) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (w.abs() + scale))
        .fold(0.0, f64::max)
}

fn grey_scale(img: &Npy) -> f64 {
    if img.element() == ElementType::F32 {
        img.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()).abs() as f64)
            .fold(0.0, f64::max)
    } else {
        1.0
    }
}

#[test]
fn sobel_matches_scikit_image() {
    for name in ["u8", "u16", "f32", "rgb_u8", "rgb_u16", "rgb_f32"] {
        let img = Npy::load(&format!("sobel_{name}.npy"));
        let channels = if img.shape.len() == 3 { 3 } else { 1 };
        let shape = [img.shape[0], img.shape[1]];
        let scale = grey_scale(&img);
        for (tag, what) in [
            ("mag", SobelOutput::Magnitude),
            ("h", SobelOutput::Horizontal),
            ("v", SobelOutput::Vertical),
        ] {
            let want = Npy::load(&format!("sobel_{name}_{tag}.npy")).f64s();
            let s = Sobel::whole(img.element(), channels, shape, what).unwrap();
            let mut got = vec![0f32; s.output_pixels()];
            s.host(&img.data, &mut got).unwrap();
            let err = max_rel(&got, &want, scale);
            println!("sobel {name} {tag}: max |ours - skimage| / (|skimage| + {scale}) = {err:.3e}");
            assert!(err <= 1e-6, "sobel {name} {tag}: {err:e}");
        }
    }
}

/// Runs `s` over `image` (the whole image's bytes) tile by tile with `tile` output tiles,
/// each tile's source cut out of the image with its halo, and returns the assembled output.
fn tiled_sobel(image: &[u8], t: ElementType, c: usize, shape: [u64; 2], tile: [u64; 2], what: SobelOutput) -> Vec<f32> {
    let px = c * t.size();
    let mut out = vec![f32::NAN; (shape[0] * shape[1]) as usize];
    for ty in (0..shape[0]).step_by(tile[0] as usize) {
        for tx in (0..shape[1]).step_by(tile[1] as usize) {
            let o = Rect::new([ty, tx], [tile[0].min(shape[0] - ty), tile[1].min(shape[1] - tx)]);
            let w = o.with_halo(shape, 1);
            let mut src = Vec::new();
            for y in w.origin[0]..w.origin[0] + w.shape[0] {
                let a = ((y * shape[1] + w.origin[1]) as usize) * px;
                src.extend_from_slice(&image[a..a + w.shape[1] as usize * px]);
            }
            let s = Sobel::new(t, c, shape, w, o, what).unwrap();
            let mut part = vec![0f32; s.output_pixels()];
            s.host(&src, &mut part).unwrap();
            for (j, row) in part.chunks(o.shape[1] as usize).enumerate() {
                let a = ((ty + j as u64) * shape[1] + tx) as usize;
                out[a..a + row.len()].copy_from_slice(row);
            }
        }
    }
    out
}

#[test]
fn tiled_sobel_is_bit_identical_to_whole_image() {
    let shape = [67u64, 131u64];
    for (t, c) in [
        (ElementType::U8, 1),
        (ElementType::U16, 3),
        (ElementType::F32, 1),
        (ElementType::U8, 3),
    ] {
        let n = (shape[0] * shape[1]) as usize * c;
        let img = random_samples(n, t.size(), t == ElementType::F32, 7 + c as u64);
        for what in [SobelOutput::Magnitude, SobelOutput::Horizontal, SobelOutput::Vertical] {
            let s = Sobel::whole(t, c, shape, what).unwrap();
            let mut whole = vec![0f32; s.output_pixels()];
            s.host(&img, &mut whole).unwrap();
            for tile in [
                [1, 1],
                [2, 2],
                [7, 7],
                [64, 64],
                [13, 50],
                [67, 1],
                [1, 131],
                [100, 200],
            ] {
                let tiled = tiled_sobel(&img, t, c, shape, tile, what);
                let same = tiled.iter().zip(&whole).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{t} x{c} {what:?}: tile {tile:?} differs from the whole image");
            }
        }
    }
}

#[test]
fn sobel_refuses_bad_arguments() {
    let img = Rect::whole([10, 10]);
    let e = |r: tiledio_kernels::Result<Sobel>| assert!(matches!(r, Err(tiledio_kernels::KernelError::Invalid(_))));
    e(Sobel::whole(ElementType::U32, 1, [10, 10], SobelOutput::Magnitude));
    e(Sobel::whole(ElementType::F64, 1, [10, 10], SobelOutput::Magnitude));
    e(Sobel::whole(ElementType::U8, 2, [10, 10], SobelOutput::Magnitude));
    e(Sobel::whole(ElementType::U8, 4, [10, 10], SobelOutput::Magnitude));
    e(Sobel::whole(ElementType::U8, 1, [u64::MAX, 2], SobelOutput::Magnitude));
    e(Sobel::whole(
        ElementType::U8,
        3,
        [1 << 40, 1 << 40],
        SobelOutput::Magnitude,
    ));
    // window or output outside the image, overflowing, or a window without the halo
    e(Sobel::new(
        ElementType::U8,
        1,
        [10, 10],
        Rect::new([1, 0], [10, 10]),
        img,
        SobelOutput::Vertical,
    ));
    e(Sobel::new(
        ElementType::U8,
        1,
        [10, 10],
        img,
        Rect::new([5, 5], [6, 1]),
        SobelOutput::Vertical,
    ));
    e(Sobel::new(
        ElementType::U8,
        1,
        [10, 10],
        img,
        Rect::new([u64::MAX, 5], [2, 1]),
        SobelOutput::Vertical,
    ));
    let w = Rect::new([2, 2], [4, 4]);
    e(Sobel::new(ElementType::U8, 1, [10, 10], w, w, SobelOutput::Vertical));
    e(Sobel::new(
        ElementType::U8,
        1,
        [10, 10],
        w,
        Rect::new([3, 2], [2, 2]),
        SobelOutput::Vertical,
    ));
    // at the image border no halo beyond it is needed
    Sobel::new(
        ElementType::U8,
        1,
        [10, 10],
        Rect::new([0, 0], [4, 4]),
        Rect::new([0, 0], [3, 3]),
        SobelOutput::Vertical,
    )
    .unwrap();
    // empty outputs are fine; short buffers are errors
    let s = Sobel::new(
        ElementType::U8,
        1,
        [10, 10],
        w,
        Rect::new([3, 3], [0, 2]),
        SobelOutput::Vertical,
    )
    .unwrap();
    s.host(&[0; 16], &mut []).unwrap();
    let s = Sobel::whole(ElementType::U16, 1, [10, 10], SobelOutput::Magnitude).unwrap();
    assert!(s.host(&[0; 199], &mut [0.0; 100]).is_err());
    assert!(s.host(&[0; 200], &mut [0.0; 99]).is_err());
    s.host(&[0; 200], &mut [0.0; 100]).unwrap();
}
