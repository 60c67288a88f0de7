//! `tiledio bench all --quick --out DIR` end to end (a debug build, two cores, maybe no GPU):
//! the report, the CSV, the JSON rows, machine.json and the PNG plots exist and agree (one
//! report line per CSV row), GPU rows without a GPU say why, every peer has a row (measured or
//! missing), nothing failed; and `bench write --json` prints rows in the same shape.

mod common;

use common::{ok, one_line_failure, run, s};
use std::path::Path;

/// (width, height) from a PNG's header.
fn png_size(path: &Path) -> (u32, u32) {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    let r = png::Decoder::new(f).read_info().unwrap();
    (r.info().width, r.info().height)
}

/// Splits one CSV record (RFC 4180 quoting) into fields.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut q, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, q) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => q = !q,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn bench_all_quick_writes_a_consistent_report() {
    let d = tempfile::tempdir().unwrap();
    let (dir, out) = (d.path().join("inputs"), d.path().join("report"));
    let t = std::time::Instant::now();
    let o = run(&["bench", "all", "--quick", "--dir", &s(&dir), "--out", &s(&out), "--log"]);
    // --log: each step with the seconds since the start, and the report rewritten per part
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(log.matches("report updated: ").count(), 4, "{log}");
    assert!(
        log.lines().any(|l| l.starts_with('[') && l.contains(" s] read: ")),
        "{log}"
    );
    let text = ok(&o);
    let secs = t.elapsed().as_secs_f64();
    eprintln!("bench all --quick: {secs:.1} s");
    assert!(secs < 120.0, "--quick took {secs:.0} s");
    assert!(text.contains("report:"), "{text}");

    // CSV: a header and one record per row, each with the header's columns
    let csv = std::fs::read_to_string(out.join("rows.csv")).unwrap();
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let records: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert!(records.len() > 20, "{} rows", records.len());
    for r in &records {
        assert_eq!(r.len(), header.len(), "{r:?}");
    }
    // the report has one table line per row, the JSON one object per row
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let table_lines = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| case |"))
        .count();
    assert_eq!(table_lines, records.len(), "report lines vs CSV rows");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("rows.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), records.len());
    for b in ["read", "write", "pipeline", "ptycho"] {
        assert!(md.contains(&format!("## {b}")), "no {b} section");
        assert!(records.iter().any(|r| r[col("bench")] == b), "no {b} rows");
    }

    // statuses: nothing failed; measured rows have figures; GPU rows without a GPU say why
    let gpu = text.lines().all(|l| !l.contains("no GPU:"));
    for r in &records {
        let st = &r[col("status")];
        assert!(!st.starts_with("failed"), "{r:?}");
        assert!(
            !st.starts_with("skipped") || r[col("bench")] == "ptycho" || st.starts_with("skipped: cold"),
            "{r:?}"
        );
        if st == "measured" {
            let med: f64 = r[col("median_s")].parse().unwrap();
            let (lo, hi): (f64, f64) = (r[col("min_s")].parse().unwrap(), r[col("max_s")].parse().unwrap());
            assert!(lo <= med && med <= hi && lo > 0.0, "{r:?}");
        }
        if !gpu && r[col("tool")] == "tiledio" && r[col("device")] == "gpu" {
            assert!(st.starts_with("no GPU: "), "{r:?}");
        }
    }
    // CPU rows of every part are measured here
    for b in ["read", "write", "pipeline", "ptycho"] {
        assert!(
            records
                .iter()
                .any(|r| r[col("bench")] == b && r[col("tool")] == "tiledio" && r[col("status")] == "measured"),
            "no measured tiledio {b} row"
        );
    }
    // every peer has rows, measured or saying what is missing
    for peer in [
        "tifffile",
        "tifffile+cupy",
        "kvikio",
        "kvikio+cufile",
        "cucim",
        "tensorstore",
        "cupyx",
        "scikit-image",
        "jax kernel",
    ] {
        let rows: Vec<&Vec<String>> = records.iter().filter(|r| r[col("tool")] == peer).collect();
        assert!(!rows.is_empty(), "no {peer} row");
        for r in rows {
            let st = &r[col("status")];
            assert!(st == "measured" || st.starts_with("missing: "), "{r:?}");
        }
    }
    // the Sobel kernel alone: ours, the copy beside it, and both GPU peers
    for (case, tool) in [
        ("Sobel kernel alone (device-resident f32)", "tiledio"),
        ("device-to-device copy (the limit)", "tiledio"),
        ("Sobel kernel alone (device-resident f32)", "cupyx"),
        ("Sobel kernel alone (device-resident f32)", "cucim"),
    ] {
        assert!(
            records.iter().any(|r| r[col("case")] == case && r[col("tool")] == tool),
            "no {case} row of {tool}"
        );
    }
    // cold rows say how the cache was emptied (or why it could not be)
    for r in records
        .iter()
        .filter(|r| r[col("cache")] == "cold" && r[col("tool")] == "tiledio")
    {
        let (st, note) = (&r[col("status")], &r[col("note")]);
        assert!(
            note.contains("cold: ") || st.starts_with("skipped: cold") || st.starts_with("no GPU"),
            "{r:?}"
        );
    }

    // machine.json
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("machine.json")).unwrap()).unwrap();
    assert!(m["cpu_cores"].as_u64().unwrap() >= 1, "{m}");
    assert!(m["cufile"]["mode"].is_string() && m["cufile"]["why"].is_string(), "{m}");
    assert!(m["gpu"]["value"].is_string() || m["gpu"]["why_not"].is_string(), "{m}");
    assert!(m["file_system"]["type"].is_string(), "{m}");

    // the plots: PNGs of the plot width, named in the report
    for p in [
        "read_relative.png",
        "read_throughput.png",
        "write_throughput.png",
        "pipeline.png",
        "ptycho_fps.png",
    ] {
        let (w, h) = png_size(&out.join(p));
        assert_eq!(w, 1200, "{p}");
        assert!((300..5000).contains(&h), "{p}: height {h}");
        assert!(md.contains(&format!("]({p})")), "{p} not in the report");
    }
    // the generated slides stay in --dir (the next run reuses them)
    let slides: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tif"))
        .collect();
    assert_eq!(slides.len(), 3, "raw slides of two tile sizes and a JPEG one");
}

#[test]
fn bench_write_json_rows() {
    let d = tempfile::tempdir().unwrap();
    let text = ok(&run(&[
        "bench",
        "write",
        "--dir",
        &s(d.path()),
        "--side",
        "256",
        "--chunks",
        "64,128",
        "--codecs",
        "none",
        "--no-shards",
        "--repeats",
        "1",
        "--threads",
        "2",
        "--no-peers",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{text}");
    for r in rows {
        assert_eq!(r["bench"], "write");
        assert!(r["chunk"].as_u64().is_some());
        let st = r["status"].as_str().unwrap();
        if r["device"] == "cpu" {
            assert_eq!(st, "measured", "{r}");
            assert!(r["gb_per_s"].as_f64().unwrap() > 0.0);
        } else {
            assert!(st == "measured" || st == "no_gpu", "{r}");
        }
    }
}

#[test]
fn bench_all_refuses_bad_arguments_in_one_line() {
    for args in [
        &["bench", "all", "--quick", "--parts", "reed"][..],
        &["bench", "all", "--quick", "--backends", "warp"],
        &["bench", "all", "--quick", "--files", "/nonexistent.tif"],
    ] {
        one_line_failure(&run(args), args);
    }
}
