//! `tiledio bench ptycho` in its quick form on the CPU: every row comes back measured with sane
//! figures (or, for a Python peer that cannot run, says why), nothing generated is left behind,
//! and bad options are errors. Small frames, so that a debug build runs it in seconds.

use tiledio::bench::ptycho::{PtychoBenchOptions, RowKind, RowStatus, run, to_json};
use tiledio::ptycho::Device;
use tiledio::zarr::serde_json::{self, Value};

fn small(dir: &std::path::Path) -> PtychoBenchOptions {
    let mut o = PtychoBenchOptions::quick();
    o.dir = Some(dir.to_path_buf());
    o.device = Device::Cpu;
    o.shape = (256, 256);
    o.crop = 128;
    o.bin = 2;
    o.kernel_frames = 16;
    o.eiger_frames = 64;
    o.eiger_shape = (130, 258);
    o.eiger_crop = 128;
    o.eiger_bin = 4;
    o
}

#[test]
fn the_quick_bench_on_the_cpu_returns_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let o = small(dir.path());
    let mut said = 0;
    let rows = run(&o, &mut |_| said += 1).unwrap();
    assert!(said > 0);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "file",
            "kernel",
            "stream",
            "bslz4",
            "hdf5",
            "peers: tiledio zmtp",
            "peers: pyzmq",
            "peers: jax",
            "peers: jax kernel"
        ]
    );
    for r in &rows {
        match &r.status {
            RowStatus::Measured => {
                let t = r.timing.unwrap_or_else(|| panic!("{}: no timing", r.name));
                assert!(
                    t.min > 0.0 && t.min <= t.median && t.median <= t.max,
                    "{}: {t:?}",
                    r.name
                );
                assert!(r.frames > 0, "{}", r.name);
                let fps = r.fps().unwrap();
                assert!(fps.is_finite() && fps > 0.0, "{}: {fps}", r.name);
                let (lo, hi) = r.fps_range().unwrap();
                assert!(lo <= fps && fps <= hi, "{}", r.name);
                assert!(r.us_per_frame().unwrap() > 0.0);
                assert!(!r.what.is_empty() && !r.io.is_empty() && !r.device.is_empty(), "{r:?}");
                if r.kind != RowKind::Peers {
                    assert!(r.device.starts_with("cpu ("), "{}: {}", r.name, r.device);
                    assert!(r.gbps().unwrap() > 0.0, "{}", r.name);
                }
            }
            RowStatus::Missing(why) => {
                assert!(
                    r.name == "peers: pyzmq" || r.name.starts_with("peers: jax"),
                    "{} missing: {why}",
                    r.name
                );
                assert!(why.len() > 5, "{}: {why:?}", r.name);
            }
            RowStatus::Failed(why) => panic!("{} failed: {why}", r.name),
        }
    }
    for r in rows
        .iter()
        .filter(|r| matches!(r.kind, RowKind::Stream | RowKind::Bslz4))
    {
        assert_eq!(r.lost, Some(0), "{}", r.name);
        let (p50, p99) = (r.latency_p50.unwrap(), r.latency_p99.unwrap());
        assert!(p50 <= p99, "{}: {p50:?} {p99:?}", r.name);
        assert!(r.goal.as_ref().unwrap().met.is_some());
    }
    // the file target is a GPU target: not judged on the CPU
    assert_eq!(rows[0].goal.as_ref().unwrap().met, None);
    assert_eq!(
        (rows[0].frames, rows[2].frames, rows[3].frames, rows[4].frames),
        (32, 32, 64, 64)
    );
    let py = &rows[6];
    if py.status == RowStatus::Measured {
        assert!(py.ratio.unwrap() > 0.0);
    }
    // JSON: one object per row, the derived figures included
    let v: Value = serde_json::from_str(&to_json(&rows)).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), rows.len());
    assert_eq!(a[2]["row"], "stream");
    assert_eq!(a[2]["lost"], 0);
    assert!(a[0]["fps"].as_f64().unwrap() > 0.0);
    assert_eq!(a[4]["row"], "hdf5");
    // nothing generated is left
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_python_that_is_not_there_makes_missing_peer_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = small(dir.path());
    o.rows = vec![RowKind::Peers];
    o.python = Some("/nonexistent/python3".into());
    let rows = run(&o, &mut |_| {}).unwrap();
    // our loopback, then pyzmq, JAX and JAX's kernel row: missing, each saying why
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].status, RowStatus::Measured);
    for r in &rows[1..] {
        match &r.status {
            RowStatus::Missing(why) => assert!(why.contains("/nonexistent/python3 not found"), "{why}"),
            other => panic!("{}: {other:?}", r.name),
        }
    }
}

#[test]
fn bad_options_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = small(dir.path());
    o.crop = 100;
    o.bin = 3;
    let e = run(&o, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("crop 100 is not divisible by bin 3"), "{e}");
    let mut o = small(dir.path());
    o.eiger_crop = 200;
    let e = run(&o, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("larger than the 130x258 frame"), "{e}");
    let mut o = small(dir.path());
    o.repeats = 0;
    assert!(run(&o, &mut |_| {}).is_err());
    assert!(
        RowKind::parse_list("file,disk")
            .unwrap_err()
            .to_string()
            .contains("disk")
    );
    if !tiledio::io::gpu::available() {
        let mut o = small(dir.path());
        o.device = Device::Gpu;
        assert!(run(&o, &mut |_| {}).unwrap_err().to_string().contains("--device gpu"));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
