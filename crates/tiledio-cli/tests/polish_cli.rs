//! The shared command-line conventions: `--json` output that scripts parse (`info`, `bench`),
//! `--quiet`, `--device` / `--backend` and the combinations refused, examples in every help,
//! and progress bars that stay off stderr when it is not a terminal.

mod common;

use common::{json, ok, ok_quiet, one_error_line, run, s, stderr, testdata};
use serde_json::Value;

fn fixture(name: &str) -> String {
    testdata("tiff", name)
}

#[test]
fn info_json_holds_levels_associated_images_and_properties() {
    let path = fixture("svs_like.svs");
    let v = json(&run(&["info", &path, "--json"]));
    assert_eq!(v["path"], path.as_str());
    assert_eq!(v["channels"], 3);
    assert_eq!(v["sample_type"], "uint8");
    assert_eq!(v["level_count"], 2);
    let levels = v["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    assert_eq!(
        (levels[0]["width"].as_u64(), levels[0]["height"].as_u64()),
        (Some(333), Some(250))
    );
    assert_eq!(
        (levels[1]["width"].as_u64(), levels[1]["height"].as_u64()),
        (Some(167), Some(125))
    );
    assert_eq!(levels[0]["tile_width"], 64);
    assert_eq!(levels[0]["compression"], "jpeg");
    assert_eq!(levels[1]["page"], 2);
    assert!((levels[1]["downsample"].as_f64().unwrap() - 1.997).abs() < 0.001);
    let assoc: Vec<&str> = v["associated_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(assoc, ["label", "macro", "thumbnail"]);
    assert_eq!(v["properties"]["aperio.AppMag"], "20");
    assert!((v["mpp"]["x"].as_f64().unwrap() - 0.499).abs() < 1e-9, "{}", v["mpp"]);
    // a file without MPP: null, not a missing key
    let v = json(&run(&["info", &fixture("tifffile_deflate_rgb8.tif"), "--json"]));
    assert!(v["mpp"].is_null() && v.get("mpp").is_some(), "{v}");
}

/// `tiledio bench WHAT PATH OPTS --repeats 1 --json`, which must succeed with one JSON document.
fn bench_json(what: &str, path: &str, opts: &[&str]) -> Value {
    let mut args = vec!["bench", what, path];
    args.extend(opts);
    args.extend(["--repeats", "1", "--json"]);
    json(&run(&args))
}

#[test]
fn bench_json_rows_parse() {
    let path = fixture("tifffile_none_rgb8.tif");
    let v = bench_json("slide", &path, &["--device", "cpu", "--threads", "1,2"]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for (row, threads) in rows.iter().zip([1, 2]) {
        assert_eq!(row["target"], "cpu");
        assert_eq!(row["threads"], threads);
        assert!(row["median_ms"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["gbps"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert_eq!(v["level"], 0);
    assert!(v["width"].as_u64().unwrap() > 0);
    assert!(v["gpu"].is_string() || v["no_gpu_reason"].is_string(), "{v}");

    let v = bench_json("read", &path, &["--backends", "host", "--threads", "2"]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["backend"], "host");
    assert_eq!(rows[0]["cache"], "warm");
    assert!(
        v["tiles"].as_u64().unwrap() > 0 && v["bytes"].as_u64().unwrap() > 0,
        "{v}"
    );

    let d = tempfile::tempdir().unwrap();
    let v = bench_json(
        "pipeline",
        &path,
        &["--dir", &s(d.path()), "--tile", "64", "--device", "cpu"],
    );
    let rows = v["rows"].as_array().unwrap();
    assert!(rows.len() >= 3, "{v}");
    assert!(rows.iter().all(|r| r["median_ms"].as_f64().unwrap() > 0.0), "{v}");
    // an unknown backend name is refused before any row runs
    let msg = one_error_line(&run(&["bench", "read", &path, "--backends", "host,warp", "--json"]));
    assert!(msg.contains("warp"), "{msg}");
}

#[test]
fn quiet_prints_nothing_but_errors() {
    let d = tempfile::tempdir().unwrap();
    let src = fixture("tifffile_deflate_rgb8.tif");
    let (npy, z, e) = (d.path().join("r.npy"), d.path().join("a.zarr"), d.path().join("e.zarr"));
    assert_eq!(ok_quiet(&run(&["read", &src, "--out", &s(&npy), "--quiet"])), "");
    assert!(npy.is_file());
    assert_eq!(ok(&run(&["-q", "convert", &src, &s(&z)])), "");
    assert!(z.join("zarr.json").is_file());
    assert_eq!(ok_quiet(&run(&["sobel", &src, &s(&e), "--tile", "64", "--quiet"])), "");
    // errors still print
    one_error_line(&run(&["info", &s(&d.path().join("missing.tif")), "--quiet"]));
}

#[test]
fn without_a_terminal_no_progress_bar_reaches_stderr() {
    let d = tempfile::tempdir().unwrap();
    let src = fixture("tifffile_deflate_rgb8.tif");
    ok_quiet(&run(&["convert", &src, &s(&d.path().join("a.zarr"))]));
    let h = s(&d.path().join("h.zarr"));
    let out = ok_quiet(&run(&["hed", &src, &h, "--tile", "64", "--device", "cpu"]));
    assert!(out.contains("on the CPU (--device cpu)"), "{out}");
}

#[test]
fn device_and_backend_combinations() {
    let d = tempfile::tempdir().unwrap();
    let src = fixture("tifffile_deflate_rgb8.tif");
    let out = s(&d.path().join("o.zarr"));
    let msg = one_error_line(&run(&["sobel", &src, &out, "--backend", "host", "--device", "gpu"]));
    assert!(msg.contains("--backend host") && msg.contains("--device gpu"), "{msg}");
    let msg = one_error_line(&run(&["sobel", &src, &out, "--backend", "mmap", "--device", "cpu"]));
    assert!(msg.contains("--backend mmap") && msg.contains("--device cpu"), "{msg}");
    let msg = one_error_line(&run(&[
        "read",
        &src,
        "--out",
        &out,
        "--backend",
        "cufile",
        "--device",
        "cpu",
    ]));
    assert!(msg.contains("--backend cufile"), "{msg}");
    let o = run(&["sobel", &src, &out, "--backend", "warp"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("staged"), "{o:?}");
    assert!(!d.path().join("o.zarr").exists());
    // host means the CPU, and says so
    let report = ok(&run(&["sobel", &src, &out, "--tile", "64", "--backend", "host"]));
    assert!(report.contains("on the CPU (--backend host)"), "{report}");
    let r = ok(&run(&["backends", &src, "--backend", "host"]));
    assert!(r.contains("host reads"), "{r}");
    // a GPU backend is accepted where it applies (the GPU itself may be absent here)
    let r = ok(&run(&["backends", &src, "--backend", "staged"]));
    assert!(r.contains("GPU:") && r.contains("cuFile:"), "{r}");
    let npy = d.path().join("r.npy");
    let r = ok(&run(&["read", &src, "--out", &s(&npy), "--backend", "host"]));
    assert!(r.contains("into host memory"), "{r}");
}

#[test]
fn every_help_shows_an_example() {
    for path in [
        &["demo"][..],
        &["info"],
        &["read"],
        &["convert"],
        &["sobel"],
        &["hed"],
        &["normalize"],
        &["backends"],
        &["completions"],
        &["man"],
        &["bench"],
        &["bench", "read"],
        &["bench", "slide"],
        &["bench", "pipeline"],
        &["bench", "ptycho"],
        &["bench", "write"],
        &["bench", "all"],
        &["ptycho"],
        &["ptycho", "preprocess"],
        &["ptycho", "stream"],
        &["ptycho", "simulate"],
    ] {
        for flag in ["--help", "-h"] {
            let mut args = path.to_vec();
            args.push(flag);
            let text = ok(&run(&args));
            let want = format!("tiledio {}", path.join(" "));
            assert!(
                text.contains("Example") && text.contains(&want),
                "{args:?}: no example:\n{text}"
            );
        }
    }
    for sub in ["read", "sobel", "hed", "normalize", "demo"] {
        let text = ok(&run(&[sub, "--help"]));
        assert!(
            text.contains("--device") && text.contains("--backend"),
            "{sub}:\n{text}"
        );
    }
    let text = ok(&run(&["--help"]));
    assert!(text.contains("--quiet") && text.contains("tiledio demo"), "{text}");
}
