//! The shared command-line conventions: `--json` output that scripts parse (`info`, `bench`),
//! `--quiet`, `--device` / `--backend` and the combinations refused, examples in every help,
//! and progress bars that stay off stderr when it is not a terminal.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiledio"))
        .args(args)
        .output()
        .expect("run tiledio")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/tiff")
        .join(name)
        .display()
        .to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

/// The one error line of a failed run.
fn one_error_line(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "not one line:\n{err}");
    assert!(err.starts_with("tiledio: error: "), "{err}");
    err
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

#[test]
fn bench_json_rows_parse() {
    let path = fixture("tifffile_none_rgb8.tif");
    let v = json(&run(&[
        "bench",
        "slide",
        &path,
        "--device",
        "cpu",
        "--threads",
        "1,2",
        "--repeats",
        "1",
        "--json",
    ]));
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

    let v = json(&run(&[
        "bench",
        "read",
        &path,
        "--backends",
        "host",
        "--threads",
        "2",
        "--repeats",
        "1",
        "--json",
    ]));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["backend"], "host");
    assert_eq!(rows[0]["cache"], "warm");
    assert!(
        v["tiles"].as_u64().unwrap() > 0 && v["bytes"].as_u64().unwrap() > 0,
        "{v}"
    );

    let d = tempfile::tempdir().unwrap();
    let v = json(&run(&[
        "bench",
        "pipeline",
        &path,
        "--dir",
        &s(d.path()),
        "--tile",
        "64",
        "--device",
        "cpu",
        "--repeats",
        "1",
        "--json",
    ]));
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
    let npy = d.path().join("r.npy");
    let o = run(&[
        "read",
        &fixture("tifffile_deflate_rgb8.tif"),
        "--out",
        &s(&npy),
        "--quiet",
    ]);
    assert_eq!(ok(&o), "");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(npy.is_file());
    let z = d.path().join("a.zarr");
    let o = run(&["-q", "convert", &fixture("tifffile_deflate_rgb8.tif"), &s(&z)]);
    assert_eq!(ok(&o), "");
    assert!(z.join("zarr.json").is_file());
    let e = d.path().join("e.zarr");
    let o = run(&[
        "sobel",
        &fixture("tifffile_deflate_rgb8.tif"),
        &s(&e),
        "--tile",
        "64",
        "--quiet",
    ]);
    assert_eq!(ok(&o), "");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    // errors still print
    one_error_line(&run(&["info", &s(&d.path().join("missing.tif")), "--quiet"]));
}

#[test]
fn without_a_terminal_no_progress_bar_reaches_stderr() {
    let d = tempfile::tempdir().unwrap();
    let z = d.path().join("a.zarr");
    let o = run(&["convert", &fixture("tifffile_deflate_rgb8.tif"), &s(&z)]);
    ok(&o);
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "hed",
        &fixture("tifffile_deflate_rgb8.tif"),
        &s(&d.path().join("h.zarr")),
        "--tile",
        "64",
        "--device",
        "cpu",
    ]);
    let out = ok(&o);
    assert!(out.contains("on the CPU (--device cpu)"), "{out}");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
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
    assert!(String::from_utf8_lossy(&o.stderr).contains("staged"), "{o:?}");
    assert!(!d.path().join("o.zarr").exists());
    // host means the CPU, and says so
    let report = ok(&run(&["sobel", &src, &out, "--tile", "64", "--backend", "host"]));
    assert!(report.contains("on the CPU (--backend host)"), "{report}");
    let r = ok(&run(&["backends", &src, "--backend", "host"]));
    assert!(r.contains("host reads"), "{r}");
    // a GPU backend is accepted where it applies (the GPU itself may be absent here)
    let o = run(&["backends", &src, "--backend", "staged"]);
    let r = ok(&o);
    assert!(r.contains("GPU:") && r.contains("cuFile:"), "{r}");
    let npy = d.path().join("r.npy");
    let o = run(&["read", &src, "--out", &s(&npy), "--backend", "host"]);
    let r = ok(&o);
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
