//! `tiledio::pipeline`: tiled output equals the global output of the same kernel bit for bit
//! (every tile size, partial edge tiles, sizes that do not divide the image), on the CPU and,
//! with `--include-ignored` on a GPU machine, on the GPU; TIFF and Zarr sources and sinks; the
//! OME-Zarr pyramid; errors that leave no output.

use tiledio::io::ElementType;
use tiledio::kernels::{ColourMap, ColourOp, MacenkoParams, Sobel, SobelOutput};
use tiledio::pipeline::{Device, Filter, Input, Mode, Output, PipelineError, PipelineOptions, fit_macenko, run};
use tiledio::tiff::{HostImage, Slide, WriteOptions, write_pyramid};
use tiledio::zarr::{ArraySpec, DataType, ZarrArray};
use tiledio_test_support::random::random_bytes;

const H: usize = 77;
const W: usize = 100;

/// An RGB u8 TIFF with H&E-like colours (dark pixels count as tissue for Macenko).
fn rgb_tiff(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let mut px = random_bytes(H * W * 3, 5);
    for p in px.chunks_mut(3) {
        p[0] = 120 + p[0] % 100;
        p[1] = 40 + p[1] % 120;
        p[2] = 100 + p[2] % 110;
    }
    let path = dir.join("rgb.tif");
    write_pyramid(
        &path,
        &HostImage::from_u8(H, W, 3, px.clone()).unwrap(),
        &WriteOptions::default().tile(16),
    )
    .unwrap();
    (path, px)
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn read_level0(path: &std::path::Path) -> (Vec<u64>, Vec<u8>) {
    let a = ZarrArray::open(path.join("0")).unwrap();
    (a.shape().to_vec(), a.read_to_vec().unwrap())
}

fn opts(filter: Filter, mode: Mode, device: Device) -> PipelineOptions {
    let mut o = PipelineOptions::new(filter);
    o.mode = mode;
    o.device = device;
    o
}

fn sobel_global(px: &[u8], t: ElementType, c: usize, what: SobelOutput) -> Vec<f32> {
    let s = Sobel::whole(t, c, [H as u64, W as u64], what).unwrap();
    let mut out = vec![0f32; s.output_pixels()];
    s.host(px, &mut out).unwrap();
    out
}

fn tiled_equals_global(device: Device) {
    let dir = tempfile::tempdir().unwrap();
    let (tif, px) = rgb_tiff(dir.path());
    let input = Input::open(&tif, 0).unwrap();
    for what in [SobelOutput::Magnitude, SobelOutput::Horizontal, SobelOutput::Vertical] {
        let want = sobel_global(&px, ElementType::U8, 3, what);
        for mode in [
            Mode::Global,
            Mode::Tiled { tile: 16 },
            Mode::Tiled { tile: 48 },
            Mode::Tiled { tile: 1024 },
        ] {
            let out = dir
                .path()
                .join(format!("{what:?}-{mode:?}.zarr").replace([' ', '{', '}', ':'], ""));
            let chunk = match mode {
                Mode::Tiled { tile } => Some(16.min(tile)),
                Mode::Global => Some(16),
            };
            let o = Output::Zarr {
                path: out.clone(),
                chunk,
                compression: Default::default(),
            };
            let r = run(&input, &o, &opts(Filter::Sobel(what), mode, device), &mut |_, _| {}).unwrap();
            assert_eq!(r.on_gpu, device == Device::Gpu);
            let (shape, bytes) = read_level0(&out);
            assert_eq!(shape, [H as u64, W as u64]);
            assert_eq!(f32s(&bytes), want, "{what:?} {mode:?} {device:?}");
        }
    }
}

#[test]
fn tiled_sobel_equals_global_on_the_cpu() {
    tiled_equals_global(Device::Cpu);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn tiled_sobel_equals_global_on_the_gpu() {
    tiled_equals_global(Device::Gpu);
}

/// A grey u16 Zarr source, tiles that do not divide the image, and the pyramid: level 1 is the
/// 2× mean of level 0.
#[test]
fn zarr_source_and_ome_pyramid() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("grey.zarr");
    let a = ZarrArray::create(&src, &ArraySpec::new(&[H as u64, W as u64], &[20, 20], DataType::U16)).unwrap();
    let px = random_bytes(H * W * 2, 9);
    a.write_all(&px[..], &Default::default()).unwrap();
    a.finish().unwrap();
    let input = Input::open(&src, 0).unwrap();
    assert_eq!((input.shape(), input.channels()), ([H as u64, W as u64], 1));
    let out = dir.path().join("edges.zarr");
    let o = Output::Zarr {
        path: out.clone(),
        chunk: Some(16),
        compression: tiledio::zarr::Compression::Zstd { level: 1 },
    };
    let mut calls = Vec::new();
    let r = run(
        &input,
        &o,
        &opts(Filter::sobel(), Mode::Tiled { tile: 32 }, Device::Cpu),
        &mut |d, t| calls.push((d, t)),
    )
    .unwrap();
    assert_eq!(r.tiles, 3 * 4);
    assert_eq!(calls.last(), Some(&(12, 12)));
    let want = sobel_global(&px, ElementType::U16, 1, SobelOutput::Magnitude);
    let (_, l0) = read_level0(&out);
    assert_eq!(f32s(&l0), want);
    // levels until one fits a chunk: 77x100 -> 39x50 -> 20x25 -> 10x13
    let m = tiledio::zarr::ome::read_multiscales(&out).unwrap();
    assert_eq!(m.levels.len(), 4);
    assert_eq!(m.levels[1].scale, [2.0, 2.0]);
    let l1 = ZarrArray::open(out.join("1")).unwrap();
    assert_eq!(l1.shape(), &[39, 50]);
    let mut half = vec![0u8; 39 * 50 * 4];
    tiledio::kernels::downsample2x(&l0, &mut half, H, W, 1, ElementType::F32).unwrap();
    assert_eq!(l1.read_to_vec().unwrap(), half);
}

/// rgb2hed into planar (c, y, x) OME-Zarr and into a TIFF; both equal the kernel on the
/// whole image.
#[test]
fn hed_to_zarr_and_tiff() {
    let dir = tempfile::tempdir().unwrap();
    let (tif, px) = rgb_tiff(dir.path());
    let input = Input::open(&tif, 0).unwrap();
    let m = ColourMap::new(ColourOp::RgbToHed, ElementType::U8, H * W).unwrap();
    let mut hwc = vec![0f32; m.output_values()];
    m.host(&px, &mut hwc).unwrap();
    let out = dir.path().join("hed.zarr");
    run(
        &input,
        &Output::zarr(&out),
        &opts(Filter::Hed, Mode::Tiled { tile: 32 }, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap();
    let (shape, bytes) = read_level0(&out);
    assert_eq!(shape, [3, H as u64, W as u64]);
    let chw = f32s(&bytes);
    for (i, v) in hwc.iter().enumerate() {
        let (p, c) = (i / 3, i % 3);
        assert_eq!(chw[c * H * W + p], *v);
    }
    let out_tif = dir.path().join("hed.tif");
    let r = run(
        &input,
        &Output::Tiff {
            path: out_tif.clone(),
            tile: 16,
        },
        &opts(Filter::Hed, Mode::Tiled { tile: 32 }, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(r.tiles >= 3, "bands: {}", r.tiles);
    let back = Slide::open(&out_tif).unwrap().read_level(0).unwrap();
    assert_eq!(back.to_f32().unwrap(), hwc);
}

/// Macenko fitted tile by tile maps the image like the normaliser fitted on the whole image.
#[test]
fn macenko_tiled_fit_and_map() {
    let dir = tempfile::tempdir().unwrap();
    let (tif, px) = rgb_tiff(dir.path());
    let input = Input::open(&tif, 0).unwrap();
    let whole = tiledio::kernels::MacenkoNormalizer::fit(&px, MacenkoParams::default()).unwrap();
    let tiled = fit_macenko(&input, MacenkoParams::default(), 32, &mut |_, _| {}).unwrap();
    for (a, b) in whole.stains.iter().flatten().zip(tiled.stains.iter().flatten()) {
        assert!((a - b).abs() < 1e-9, "{whole:?} vs {tiled:?}");
    }
    let out = dir.path().join("norm.tif");
    run(
        &input,
        &Output::Tiff {
            path: out.clone(),
            tile: 16,
        },
        &opts(Filter::Normalize(tiled), Mode::Tiled { tile: 32 }, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap();
    let mut want = vec![0u8; px.len()];
    tiled.host(&px, &mut want).unwrap();
    assert_eq!(
        Slide::open(&out).unwrap().read_level(0).unwrap().as_u8().unwrap(),
        &want[..]
    );
}

#[test]
fn bad_arguments_are_usage_errors_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (tif, _) = rgb_tiff(dir.path());
    let input = Input::open(&tif, 0).unwrap();
    let out = dir.path().join("x.zarr");
    let o = Output::Zarr {
        path: out.clone(),
        chunk: Some(24),
        compression: Default::default(),
    };
    let e = run(
        &input,
        &o,
        &opts(Filter::sobel(), Mode::Tiled { tile: 32 }, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(e, PipelineError::Usage(_)) && e.to_string().contains("multiple of the chunk"),
        "{e}"
    );
    assert!(!out.exists());
    // the input as the output
    let e = run(
        &input,
        &Output::from_path(&tif),
        &opts(Filter::sobel(), Mode::Global, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("replace the input"), "{e}");
    // a filter the input does not suit
    let grey = dir.path().join("g.tif");
    write_pyramid(
        &grey,
        &HostImage::from_u8(8, 8, 1, vec![1; 64]).unwrap(),
        &WriteOptions::default().tile(16),
    )
    .unwrap();
    let e = run(
        &Input::open(&grey, 0).unwrap(),
        &Output::zarr(&out),
        &opts(Filter::Hed, Mode::Global, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot take 1-channel"), "{e}");
    // no level 9
    assert!(matches!(Input::open(&tif, 9), Err(PipelineError::Usage(_))));
    // a GPU asked for where there is none is an error, not a silent CPU run
    if !tiledio::io::gpu::available() {
        let e = run(
            &input,
            &Output::zarr(&out),
            &opts(Filter::sobel(), Mode::Global, Device::Gpu),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("--device gpu"), "{e}");
    }
    assert!(!out.exists());
}

/// A source chunk that fails to decode mid-run: the error names it and nothing is left at the
/// output path, so a re-run after fixing the input succeeds.
#[test]
fn a_failed_run_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("grey.zarr");
    let a = ZarrArray::create(
        &src,
        &ArraySpec::new(&[64, 64], &[16, 16], DataType::U8)
            .with_compression(tiledio::zarr::Compression::Zstd { level: 1 }),
    )
    .unwrap();
    a.write_all(&random_bytes(64 * 64, 2)[..], &Default::default()).unwrap();
    a.finish().unwrap();
    std::fs::write(src.join("c/3/3"), b"not zstd").unwrap();
    let input = Input::open(&src, 0).unwrap();
    let out = dir.path().join("edges.zarr");
    let e = run(
        &input,
        &Output::zarr(&out),
        &opts(Filter::sobel(), Mode::Tiled { tile: 16 }, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, PipelineError::Zarr(_)), "{e}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporaries left");
}

/// A write that fails while the reader is tiles ahead (its queue full) ends the run with the
/// error: the reader is released, not left blocked (which hung the run before).
#[test]
fn a_failed_write_with_tiles_in_flight_ends_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tif, _) = rgb_tiff(dir.path());
    let out = dir.path().join("edges.zarr");
    let (tx, rx) = std::sync::mpsc::channel();
    let parent = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let input = Input::open(&tif, 0).unwrap();
        let r = run(
            &input,
            &Output::zarr(&out),
            &opts(Filter::sobel(), Mode::Tiled { tile: 16 }, Device::Cpu),
            &mut |done, _| {
                if done == 1 {
                    // let the reader fill its queue, then take the output folder away
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    for e in std::fs::read_dir(&parent).unwrap().flatten() {
                        if e.path().is_dir() {
                            std::fs::remove_dir_all(e.path()).unwrap();
                        }
                    }
                }
            },
        );
        let _ = tx.send(r.map(|_| ()).map_err(|e| e.to_string()));
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the run hung after a failed write");
    assert!(r.is_err(), "a run whose output folder vanished succeeded");
}

/// The seeds' comparison on the CPU: four rows (read only, write only, tiled, global), each
/// timed, and no output left behind in the scratch folder.
#[test]
fn compare_times_four_rows_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (tif, _) = rgb_tiff(dir.path());
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let input = Input::open(&tif, 0).unwrap();
    let mut o = opts(Filter::sobel(), Mode::Tiled { tile: 32 }, Device::Cpu);
    o.durable = false;
    let rows = tiledio::pipeline::compare(&input, &scratch, &o, 2).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.what.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["read", "write", "tiled", "global"]);
    for r in &rows {
        assert!(
            r.timing.min > 0.0 && r.timing.min <= r.timing.median && r.timing.median <= r.timing.max,
            "{r:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "outputs left in the scratch folder"
    );
}

/// zarr-python reads the OME-Zarr output (the multiscales and level 0's values).
#[test]
fn zarr_python_reads_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let (tif, px) = rgb_tiff(dir.path());
    let out = dir.path().join("edges.zarr");
    run(
        &Input::open(&tif, 0).unwrap(),
        &Output::zarr(&out),
        &opts(Filter::sobel(), Mode::Tiled { tile: 32 }, Device::Cpu),
        &mut |_, _| {},
    )
    .unwrap();
    let want = sobel_global(&px, ElementType::U8, 3, SobelOutput::Magnitude);
    let sum: f64 = want.iter().map(|&v| v as f64).sum();
    let o = tiledio_test_support::python::run_python(
        r#"
import sys, zarr, numpy as np
g = zarr.open_group(sys.argv[1], mode="r")
ms = g.attrs["ome"]["multiscales"][0]
a = g[ms["datasets"][0]["path"]]
print(a.shape, a.dtype, float(np.asarray(a[:], dtype=np.float64).sum()))
"#,
        &[&out.display().to_string()],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text} {}", String::from_utf8_lossy(&o.stderr));
    let got: f64 = text.split_whitespace().last().unwrap().parse().unwrap();
    assert!(text.starts_with(&format!("({H}, {W}) float32")), "{text}");
    assert!((got - sum).abs() <= 1e-9 * sum.abs().max(1.0), "{got} vs {sum}");
}
