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
use tiledio_kernels::{
    ColourMap, ColourOp, MacenkoNormalizer, MacenkoParams, Rect, Sobel, SobelOutput, StainAngles, StainConcentrations,
    StainCovariance,
};
use tiledio_test_support::npy::Npy;
use tiledio_test_support::random::random_samples;

/// A kernels fixture in `testdata/kernels/`.
fn load(name: &str) -> Npy {
    Npy::load(&tiledio_test_support::testdata("kernels").join(name))
}

/// The element type of a fixture's dtype.
fn element(n: &Npy) -> ElementType {
    match n.descr.as_str() {
        "<u1" | "|u1" => ElementType::U8,
        "<u2" => ElementType::U16,
        "<f4" => ElementType::F32,
        d => panic!("unexpected dtype {d}"),
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
    if element(img) == ElementType::F32 {
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
        let img = load(&format!("sobel_{name}.npy"));
        let channels = if img.shape.len() == 3 { 3 } else { 1 };
        let shape = [img.shape[0], img.shape[1]];
        let scale = grey_scale(&img);
        for (tag, what) in [
            ("mag", SobelOutput::Magnitude),
            ("h", SobelOutput::Horizontal),
            ("v", SobelOutput::Vertical),
        ] {
            let want = load(&format!("sobel_{name}_{tag}.npy")).f64s();
            let s = Sobel::whole(element(&img), channels, shape, what).unwrap();
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

#[test]
fn colour_matches_scikit_image() {
    let rgb = load("colour_rgb_u8.npy");
    let pixels = (rgb.shape[0] * rgb.shape[1]) as usize;
    for (op, file) in [
        (ColourOp::Gray, "colour_gray.npy"),
        (ColourOp::RgbToHed, "colour_hed.npy"),
        (
            ColourOp::OpticalDensity {
                source_intensity: 240.0,
            },
            "colour_od.npy",
        ),
    ] {
        let m = ColourMap::new(op, ElementType::U8, pixels).unwrap();
        let mut got = vec![0f32; m.output_values()];
        m.host(&rgb.data, &mut got).unwrap();
        let err = max_rel(&got, &load(file).f64s(), 1.0);
        println!("{op:?}: max |ours - reference| / (|reference| + 1) = {err:.3e}");
        assert!(err <= 1e-6, "{op:?}: {err:e}");
    }
    let hed = load("colour_hed_f32.npy");
    let m = ColourMap::new(ColourOp::HedToRgb, ElementType::F32, pixels).unwrap();
    let mut got = vec![0f32; m.output_values()];
    m.host(&hed.data, &mut got).unwrap();
    let err = max_rel(&got, &load("colour_hed2rgb.npy").f64s(), 1.0);
    println!("hed2rgb: max |ours - skimage| / (|skimage| + 1) = {err:.3e}");
    assert!(err <= 1e-6, "hed2rgb: {err:e}");
}

#[test]
fn colour_input_types_agree() {
    // the same image as u8, as u16 (v * 257) and as f32 (v / 255 in f32) gives the same grey
    // and stains to within float32 rounding of the input
    let rgb = load("colour_rgb_u8.npy").u8s();
    let n = rgb.len() / 3;
    let u16s: Vec<u8> = rgb.iter().flat_map(|&v| (v as u16 * 257).to_ne_bytes()).collect();
    let f32s: Vec<u8> = rgb.iter().flat_map(|&v| (v as f32 / 255.0).to_ne_bytes()).collect();
    for op in [ColourOp::Gray, ColourOp::RgbToHed] {
        let run = |t: ElementType, src: &[u8]| {
            let m = ColourMap::new(op, t, n).unwrap();
            let mut o = vec![0f32; m.output_values()];
            m.host(src, &mut o).unwrap();
            o
        };
        let a = run(ElementType::U8, &rgb);
        assert_eq!(a, run(ElementType::U16, &u16s), "{op:?}");
        let b = run(ElementType::F32, &f32s);
        let want: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        assert!(max_rel(&b, &want, 1.0) < 1e-6, "{op:?}");
    }
}

#[test]
fn colour_refuses_bad_arguments() {
    let bad =
        |r: tiledio_kernels::Result<ColourMap>| assert!(matches!(r, Err(tiledio_kernels::KernelError::Invalid(_))));
    bad(ColourMap::new(ColourOp::Gray, ElementType::F64, 1));
    bad(ColourMap::new(ColourOp::HedToRgb, ElementType::U8, 1));
    bad(ColourMap::new(
        ColourOp::OpticalDensity { source_intensity: 0.5 },
        ElementType::U8,
        1,
    ));
    bad(ColourMap::new(
        ColourOp::OpticalDensity {
            source_intensity: f64::NAN,
        },
        ElementType::U8,
        1,
    ));
    bad(ColourMap::new(ColourOp::Gray, ElementType::F32, usize::MAX / 4));
    let m = ColourMap::new(ColourOp::RgbToHed, ElementType::U8, 2).unwrap();
    assert!(m.host(&[0; 5], &mut [0.0; 6]).is_err());
    assert!(m.host(&[0; 6], &mut [0.0; 5]).is_err());
    ColourMap::new(ColourOp::Gray, ElementType::U8, 0)
        .unwrap()
        .host(&[], &mut [])
        .unwrap();
}

#[test]
fn macenko_matches_cucim_algorithm() {
    let img = load("macenko_rgb_u8.npy").u8s();
    let n = MacenkoNormalizer::fit(&img, MacenkoParams::default()).unwrap();
    let want_stain = load("macenko_stain.npy").f64s();
    let want_max = load("macenko_maxc.npy").f64s();
    let stain_err = (0..6)
        .map(|i| (n.stains[i / 2][i % 2] - want_stain[i]).abs())
        .fold(0.0, f64::max);
    let max_err = (0..2)
        .map(|i| (n.max_concentrations[i] - want_max[i]).abs() / want_max[i])
        .fold(0.0, f64::max);
    let mut out = vec![0u8; img.len()];
    n.host(&img, &mut out).unwrap();
    let want = load("macenko_out.npy").u8s();
    let diffs: Vec<i32> = out
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as i32 - b as i32).abs())
        .collect();
    let off = diffs.iter().filter(|&&d| d > 0).count();
    let worst = diffs.iter().max().copied().unwrap_or(0);
    println!(
        "macenko vs cuCIM's algorithm: stain matrix max abs error {stain_err:.2e}, max concentrations max rel error \
         {max_err:.2e}, output: {off} of {} values differ, by at most {worst}",
        out.len()
    );
    assert!(stain_err < 2e-3, "{stain_err:e}");
    assert!(max_err < 5e-3, "{max_err:e}");
    assert!(worst <= 2 && off * 50 < out.len(), "{off} values off, worst {worst}");
}

#[test]
fn macenko_tile_by_tile_equals_whole_image() {
    let img = load("macenko_rgb_u8.npy").u8s();
    let p = MacenkoParams::default();
    let whole = MacenkoNormalizer::fit(&img, p).unwrap();
    // tiles of uneven sizes (whole pixels), accumulated by two "workers" and merged
    let cuts = [0usize, 3 * 17, 3 * 1000, 3 * 1001, 3 * 2500, img.len()];
    let tiles: Vec<&[u8]> = cuts.windows(2).map(|w| &img[w[0]..w[1]]).collect();
    let (mut c1, mut c2) = (StainCovariance::new(p).unwrap(), StainCovariance::new(p).unwrap());
    for (i, t) in tiles.iter().enumerate() {
        if i % 2 == 0 { &mut c1 } else { &mut c2 }.accumulate(t).unwrap();
    }
    c1.merge(&c2);
    let plane = c1.finish().unwrap();
    let (mut a1, mut a2) = (StainAngles::new(plane), StainAngles::new(plane));
    for (i, t) in tiles.iter().enumerate() {
        if i % 2 == 0 { &mut a1 } else { &mut a2 }.accumulate(t).unwrap();
    }
    a1.merge(&a2);
    let stains = a1.finish().unwrap();
    let mut k = StainConcentrations::new(stains).unwrap();
    for t in &tiles {
        k.accumulate(t).unwrap();
    }
    let tiled = k.finish().unwrap();
    for i in 0..6 {
        assert!((tiled.stains[i / 2][i % 2] - whole.stains[i / 2][i % 2]).abs() < 1e-9);
    }
    for i in 0..2 {
        assert!((tiled.max_concentrations[i] / whole.max_concentrations[i] - 1.0).abs() < 1e-9);
    }
}

#[test]
fn macenko_refuses_bad_input() {
    let p = MacenkoParams::default();
    // all background: no tissue pixel
    assert!(MacenkoNormalizer::fit(&[240; 300], p).is_err());
    assert!(MacenkoNormalizer::fit(&[], p).is_err());
    let mut c = StainCovariance::new(p).unwrap();
    assert!(c.accumulate(&[1, 2]).is_err());
    for bad in [
        MacenkoParams { alpha: 101.0, ..p },
        MacenkoParams { beta: -1.0, ..p },
        MacenkoParams {
            source_intensity: 0.0,
            ..p
        },
        MacenkoParams {
            reference_max_concentrations: [f64::NAN, 1.0],
            ..p
        },
    ] {
        assert!(StainCovariance::new(bad).is_err());
    }
    let n = MacenkoNormalizer::fit(&load("macenko_rgb_u8.npy").u8s(), p).unwrap();
    assert!(n.host(&[0; 4], &mut [0; 4]).is_err());
    assert!(n.host(&[0; 6], &mut [0; 5]).is_err());
}
