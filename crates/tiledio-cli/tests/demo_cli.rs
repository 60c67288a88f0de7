//! `tiledio demo` end to end (small sizes for a debug build): the PNG previews decode with the
//! expected sizes, the OME-Zarr and the other outputs exist, the report names what ran where
//! and the files it wrote; a re-run replaces the demo's own folder, a folder of someone
//! else's is refused.

mod common;

use common::{names, ok, ok_quiet, one_line_failure, run, s, stderr, stdout};
use std::path::Path;

/// (width, height, colour type) of a PNG, decoded in full.
fn png_info(path: &Path) -> (u32, u32, png::ColorType) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    // not a blank image
    let data = &buf[..info.buffer_size()];
    assert!(data.iter().any(|&b| b != data[0]), "{} is uniform", path.display());
    (info.width, info.height, info.color_type)
}

const SMALL: [&str; 8] = [
    "--side",
    "600",
    "--frames",
    "6",
    "--frame-side",
    "64",
    "--size-mib",
    "2",
];

#[test]
fn the_demo_writes_previews_and_outputs_and_says_what_ran_where() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo-out");
    let mut args = vec!["demo", "--out", &s(&out)]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend(SMALL.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = ok_quiet(&run(&argv));

    // 600 pixels fit the 1024-pixel previews whole; 6 frames of 64 cropped to 32, binned by
    // 2: 16 x 16 each, 4 to a row with 2-pixel gaps -> 70 x 34
    for (name, w, h, colour) in [
        ("slide.png", 600, 600, png::ColorType::Rgb),
        ("edges.png", 600, 600, png::ColorType::Grayscale),
        ("normalized.png", 600, 600, png::ColorType::Rgb),
        ("frames.png", 4 * 16 + 3 * 2, 2 * 16 + 2, png::ColorType::Grayscale),
    ] {
        let path = out.join(name);
        assert_eq!(png_info(&path), (w, h, colour), "{name}");
        assert!(text.contains(&s(&path)), "{name} not printed:\n{text}");
    }
    // the OME-Zarr with its pyramid, and the other outputs
    let ome = std::fs::read_to_string(out.join("edges.zarr/zarr.json")).unwrap();
    assert!(ome.contains("multiscales"), "{ome}");
    assert!(out.join("edges.zarr/0/zarr.json").is_file());
    // 600 pixels in 512-pixel chunks: a second level of 300
    assert!(out.join("edges.zarr/1/zarr.json").is_file(), "no pyramid level 1");
    assert!(out.join("frames.zarr/zarr.json").is_file());
    for f in [
        "slide.tif",
        "normalized.tif",
        "scan.npy",
        "dark.npy",
        "tiledio-demo.txt",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // nothing else: no temporaries, the tour's scratch removed
    assert_eq!(
        names(&out),
        [
            "dark.npy",
            "edges.png",
            "edges.zarr",
            "frames.png",
            "frames.zarr",
            "normalized.png",
            "normalized.tif",
            "scan.npy",
            "slide.png",
            "slide.tif",
            "tiledio-demo.txt"
        ]
    );
    // what ran where, how fast, which backend and why
    for want in [
        "GPU:",
        "slide reads:",
        "backend tour",
        "host memory",
        "Sobel -> OME-Zarr",
        "Macenko normalisation -> TIFF",
        "frame preprocessing -> Zarr",
        "frames/s",
        "GB/s",
        "done in",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    if text.contains("GPU: none") {
        // without a GPU the reason is given and the kernels ran on the CPU
        assert!(text.contains("the kernels run on the CPU"), "{text}");
        for step in [
            "Sobel -> OME-Zarr",
            "Macenko normalisation -> TIFF",
            "frame preprocessing -> Zarr",
        ] {
            let line = text.lines().find(|l| l.contains(step)).unwrap();
            let device = line[line.find(step).unwrap() + step.len()..].split_whitespace().next();
            assert_eq!(device, Some("CPU"), "{line}");
        }
    }

    // a re-run replaces the demo's own folder
    let before = std::fs::metadata(out.join("slide.png")).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(&run(&argv));
    let after = std::fs::metadata(out.join("slide.png")).unwrap().modified().unwrap();
    assert!(after > before, "slide.png not rewritten");
    assert_eq!(png_info(&out.join("frames.png")).0, 70);
}

#[test]
fn a_folder_of_someone_else_is_refused_and_kept() {
    let d = tempfile::tempdir().unwrap();
    let theirs = d.path().join("mine");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), b"keep").unwrap();
    let mut args = vec!["demo", "--out"];
    let t = s(&theirs);
    args.push(&t);
    args.extend(SMALL);
    let err = one_line_failure(&run(&args), &args);
    assert!(err.contains("not made by the demo"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&theirs).unwrap().collect();
    assert_eq!(names.len(), 1);
    assert_eq!(std::fs::read(theirs.join("notes.txt")).unwrap(), b"keep");
    // a file where the folder should be
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let f = s(&file);
    let o = run(&["demo", "--out", &f, "--size-mib", "0"]);
    assert!(stderr(&o).contains("not a folder"), "{o:?}");
    // --device gpu: on a machine without a GPU, refused before anything is written
    let gpu_out = d.path().join("gpu");
    let g = s(&gpu_out);
    let mut args = vec!["demo", "--out", &g, "--device", "gpu"];
    args.extend(SMALL);
    let o = run(&args);
    if o.status.success() {
        assert!(gpu_out.join("frames.png").is_file());
        let text = stdout(&o);
        let line = text.lines().find(|l| l.contains("Sobel -> OME-Zarr")).unwrap();
        assert!(line.contains(" GPU "), "{line}");
    } else {
        let err = stderr(&o);
        assert!(err.contains("the GPU was asked for"), "{err}");
        assert!(!gpu_out.exists(), "a refused run made {}", gpu_out.display());
    }
    // options that cannot work are one line each, before any work
    for (opt, val, want) in [
        ("--side", "10", "at least 64"),
        ("--frame-side", "30", "multiple of 4"),
        ("--frames", "0", "at least 1"),
    ] {
        let out = s(&d.path().join(format!("o{opt}")));
        let o = run(&["demo", "--out", &out, opt, val]);
        let err = stderr(&o);
        assert!(!o.status.success() && err.contains(want), "{opt} {val}: {err}");
        assert!(!Path::new(&out).exists(), "{opt} {val} made {out}");
    }
}
