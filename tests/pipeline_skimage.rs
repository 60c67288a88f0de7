//! `tiledio::pipeline` end to end against scikit-image: the fixture TIFF in `testdata/pipeline/`
//! (118 × 104 RGB u8, 64² tiles; made with its expected outputs by `make_fixtures.py` there) run
//! on the CPU tiled by 48 and by 100 (neither divides the image) and globally, into OME-Zarr,
//! read back with tiledio's Zarr reader and compared with `skimage.color.rgb2gray`,
//! `skimage.filters.sobel` / `sobel_h` / `sobel_v` of that grey image, `skimage.color.rgb2hed`
//! and cuCIM's Macenko (a NumPy port of its code). Tiled outputs equal the global one bit for bit.
//!
//! Tolerance (grey, Sobel, HED): `|ours - skimage| <= TOL * (|skimage| + 1)`, `TOL = 2.5e-7`.
//! scikit-image computes in float64 from the u8 values; the kernels compute in float32 (Sobel:
//! the grey value rounded to float32, then weighted sums and differences of neighbours) or in
//! float64 rounded once to float32 (grey, HED); the fixtures hold scikit-image's result rounded
//! to float32. So the difference is float32 rounding: half an ulp of the stored value plus, for
//! Sobel, a few roundings of terms as large as the grey values (up to 1 for u8 input), hence the
//! `+ 1` in the scale: the error of a difference scales with what is differenced, not with the
//! result (as in `crates/tiledio-kernels/tests/filters_cpu.rs`). Measured on this fixture
//! (`--nocapture` prints them), the same in every mode: grey 0 and HED 0 (our float32 is
//! NumPy's rounding of scikit-image's float64, every value), Sobel magnitude 9.2e-8, sobel_h
//! 1.32e-7, sobel_v 4.9e-8 (against the unrounded float64 results: 9.3e-8, 1.33e-7, 6.7e-8
//! absolute). `TOL` is two float32 ulps of 1.0 (2.4e-7), about twice the largest measured value:
//! room for another summation order in the kernel, yet 4x tighter than filters_cpu.rs's 1e-6.
//!
//! Macenko: the pipeline's fit (tile by tile, percentiles from 65536-bin histograms) against
//! cuCIM's algorithm on the whole image (exact float32 percentiles), with filters_cpu.rs's bounds
//! and reasons (the histogram bins: stain matrix within 2e-3, maximum concentrations within 5e-3
//! relative, the u8 output at most 2 off in fewer than 2% of values; measured: 2.5e-5, 3.5e-5,
//! 101 of 36816 values off by 1); the tile-by-tile fit equal to the whole-image fit (1e-9), and
//! the pipeline's output equal bit for bit to the library's CPU map of the whole image.

use tiledio::kernels::{MacenkoNormalizer, MacenkoParams, SobelOutput};
use tiledio::pipeline::{Device, Filter, Input, Mode, Output, PipelineOptions, fit_macenko, run};
use tiledio::tiff::Slide;
use tiledio::zarr::ZarrArray;
use tiledio_test_support::npy::Npy;

/// Rows and columns of the fixture.
const H: usize = 118;
const W: usize = 104;
/// The bound of `|ours - skimage| / (|skimage| + 1)` for grey, Sobel and HED (see above).
const TOL: f64 = 2.5e-7;
/// The modes every filter runs in: the whole image first, then tiles that divide neither 118
/// nor 104.
const MODES: [Mode; 3] = [Mode::Global, Mode::Tiled { tile: 48 }, Mode::Tiled { tile: 100 }];

/// A pipeline fixture's array.
fn load(name: &str) -> Npy {
    Npy::load(&fixture(name))
}

fn fixture(name: &str) -> std::path::PathBuf {
    tiledio_test_support::testdata("pipeline").join(name)
}

/// The fixture's pixels as tiledio reads them (`H × W × 3`).
fn pixels() -> Vec<u8> {
    let img = Slide::open(fixture("he_rgb_u8.tif")).unwrap().read_level(0).unwrap();
    img.as_u8().unwrap().to_vec()
}

/// Runs `filter` in `mode` on the CPU into a new OME-Zarr under `dir` and returns level 0's
/// shape and bytes.
fn run_to_zarr(dir: &std::path::Path, filter: Filter, mode: Mode) -> (Vec<u64>, Vec<u8>) {
    let input = Input::open(&fixture("he_rgb_u8.tif"), 0).unwrap();
    assert_eq!((input.shape(), input.channels()), ([H as u64, W as u64], 3));
    let name = match mode {
        Mode::Tiled { tile } => format!("tiled{tile}"),
        Mode::Global => "global".into(),
    };
    let out = dir.join(format!("{}-{name}.zarr", dir.read_dir().unwrap().count()));
    let mut opts = PipelineOptions::new(filter);
    opts.mode = mode;
    opts.device = Device::Cpu;
    let mut last = (0, 0);
    let r = run(&input, &Output::zarr(&out), &opts, &mut |d, t| last = (d, t)).unwrap();
    assert!(!r.on_gpu);
    let tiles = match mode {
        Mode::Tiled { tile } => (H as u64).div_ceil(tile) * (W as u64).div_ceil(tile),
        Mode::Global => 1,
    };
    assert_eq!((r.tiles, last), (tiles, (tiles, tiles)), "{mode:?}");
    let a = ZarrArray::open(out.join("0")).unwrap();
    (a.shape().to_vec(), a.read_to_vec().unwrap())
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

/// The largest `|got - want| / (|want| + 1)`.
fn max_rel(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (w.abs() + 1.0))
        .fold(0.0, f64::max)
}

/// Runs a float filter (one channel, or three written as planes) in every mode: each output
/// within `TOL` of scikit-image's in `want_file`, the tiled ones equal to the global one bit for
/// bit.
fn check_float(filter: Filter, want_file: &str, chw_from_hwc: bool) {
    let dir = tempfile::tempdir().unwrap();
    let npy = load(want_file);
    let mut want = npy.floats();
    let c = filter.out_channels();
    if chw_from_hwc {
        // scikit-image's (H, W, C) → the OME-Zarr output's (C, H, W)
        assert_eq!(npy.shape, [H as u64, W as u64, c as u64]);
        want = (0..c * H * W).map(|i| want[(i % (H * W)) * c + i / (H * W)]).collect();
    } else {
        assert_eq!(npy.shape, [H as u64, W as u64]);
    }
    let shape: Vec<u64> = if c > 1 {
        vec![c as u64, H as u64, W as u64]
    } else {
        vec![H as u64, W as u64]
    };
    let mut global = None;
    for mode in MODES {
        let (s, bytes) = run_to_zarr(dir.path(), filter, mode);
        assert_eq!(s, shape, "{filter:?} {mode:?}");
        let got = f32s(&bytes);
        let err = max_rel(&got, &want);
        println!("{want_file} {mode:?}: max |pipeline - skimage| / (|skimage| + 1) = {err:.3e}");
        assert!(err <= TOL, "{want_file} {mode:?}: {err:e} > {TOL:e}");
        match &global {
            None => global = Some(bytes),
            Some(g) => assert!(*g == bytes, "{filter:?}: {mode:?} differs from the global run"),
        }
    }
}

#[test]
fn sobel_matches_scikit_image_tiled_and_global() {
    for (what, file) in [
        (SobelOutput::Magnitude, "sobel.npy"),
        (SobelOutput::Horizontal, "sobel_h.npy"),
        (SobelOutput::Vertical, "sobel_v.npy"),
    ] {
        check_float(Filter::Sobel(what), file, false);
    }
}

#[test]
fn gray_matches_scikit_image_tiled_and_global() {
    check_float(Filter::Gray, "gray.npy", false);
}

#[test]
fn hed_matches_scikit_image_tiled_and_global() {
    check_float(Filter::Hed, "hed.npy", true);
}

/// Macenko: fitted tile by tile like the whole image, close to cuCIM's algorithm, and the
/// pipeline's map (every mode) equal to the library's CPU map of the whole image.
#[test]
fn macenko_matches_the_whole_image_and_cucim() {
    let px = pixels();
    let p = MacenkoParams::default();
    let whole = MacenkoNormalizer::fit(&px, p).unwrap();
    let input = Input::open(&fixture("he_rgb_u8.tif"), 0).unwrap();
    let fits: Vec<MacenkoNormalizer> = [48, 100]
        .into_iter()
        .map(|tile| fit_macenko(&input, p, tile, &mut |_, _| {}).unwrap())
        .collect();
    for tiled in &fits {
        for i in 0..6 {
            assert!((tiled.stains[i / 2][i % 2] - whole.stains[i / 2][i % 2]).abs() < 1e-9);
        }
        for i in 0..2 {
            assert!((tiled.max_concentrations[i] / whole.max_concentrations[i] - 1.0).abs() < 1e-9);
        }
    }
    // the tile-by-tile fit and its map against cuCIM's algorithm on the whole image
    let fit = fits[0];
    let want_stain = load("macenko_stain.npy").f64s();
    let want_max = load("macenko_maxc.npy").f64s();
    let stain_err = (0..6)
        .map(|i| (fit.stains[i / 2][i % 2] - want_stain[i]).abs())
        .fold(0.0, f64::max);
    let max_err = (0..2)
        .map(|i| (fit.max_concentrations[i] - want_max[i]).abs() / want_max[i])
        .fold(0.0, f64::max);
    let mut want = vec![0u8; px.len()];
    fit.host(&px, &mut want).unwrap();
    let cucim = load("macenko_out.npy");
    assert_eq!(cucim.shape, [H as u64, W as u64, 3]);
    let cucim = cucim.u8s();
    let diffs: Vec<u8> = want.iter().zip(&cucim).map(|(&a, &b)| a.abs_diff(b)).collect();
    let off = diffs.iter().filter(|&&d| d > 0).count();
    let worst = diffs.iter().max().copied().unwrap_or(0);
    println!(
        "macenko (fitted by tiles of 48) vs cuCIM's algorithm: stain matrix max abs error {stain_err:.2e}, max \
         concentrations max rel error {max_err:.2e}, output: {off} of {} values differ, by at most {worst}",
        want.len()
    );
    assert!(stain_err < 2e-3, "{stain_err:e}");
    assert!(max_err < 5e-3, "{max_err:e}");
    assert!(worst <= 2 && off * 50 < want.len(), "{off} values off, worst {worst}");
    // the pipeline: planar (c, y, x) u8, equal to the whole-image CPU map in every mode
    let dir = tempfile::tempdir().unwrap();
    let want_chw: Vec<u8> = (0..3 * H * W).map(|i| want[(i % (H * W)) * 3 + i / (H * W)]).collect();
    for mode in MODES {
        let (s, bytes) = run_to_zarr(dir.path(), Filter::Normalize(fit), mode);
        assert_eq!(s, [3, H as u64, W as u64]);
        assert!(bytes == want_chw, "Macenko {mode:?} differs from the whole-image map");
    }
}
