//! Smoke tests of the `tiledio` binary: conversions in every direction, options honoured or
//! refused, outputs that cannot hurt (special files, the input, interruption, concurrent
//! writers), and errors that print as one line.

mod common;

use common::{assert_no_temporaries, names, ok, run, run_with_env, s, stderr, stdout, tiledio};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> String {
    common::testdata("tiff", name)
}

/// The one line a failed command printed (leaving out the read's progress note), at most
/// 1,000 characters.
fn one_error_line(o: &Output) -> String {
    let line = common::one_error_line_of(o, |l| !l.starts_with("reading into host memory"));
    assert!(line.len() < 1000, "{line}");
    line
}

#[test]
fn converts_in_every_direction_and_follows_the_extension() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, c, e) = (
        d.path().join("a.zarr"),
        d.path().join("b.zarr"),
        d.path().join("c.tif"),
        d.path().join("e.tif"),
    );
    let src = fixture("tifffile_deflate_rgb8.tif");
    let (a, b, c, e) = (s(&a), s(&b), s(&c), s(&e));
    for (from, to, opts) in [
        (&src, &a, &["--chunk", "64"][..]),
        (&a, &b, &["--chunk", "32", "--codec", "none"]),
        (&b, &c, &["--tile", "32", "--compression", "zstd", "--levels", "2"]),
        (&c, &e, &["--tile", "64", "--compression", "lzw"]),
    ] {
        ok(&run(&[&["convert", from.as_str(), to.as_str()], opts].concat()));
        if to == &b {
            assert!(
                Path::new(&b).join("zarr.json").is_file(),
                "a.zarr -> b.zarr writes a Zarr group"
            );
        }
    }
    let info = stdout(&run(&["info", &c]));
    assert!(
        info.contains("2 level(s)") && info.contains("32x32") && info.contains("zstd"),
        "{info}"
    );
    let info = stdout(&run(&["info", &e]));
    assert!(info.contains("64x64") && info.contains("lzw"), "{info}");
    // the pixels made it through every step
    let (r1, r2) = (d.path().join("r1.npy"), d.path().join("r2.npy"));
    for (from, to) in [(&src, &r1), (&e, &r2)] {
        ok(&run(&["read", from, "--out", &s(to), "--device", "cpu"]));
    }
    assert_eq!(std::fs::read(&r1).unwrap(), std::fs::read(&r2).unwrap());
    let msg = one_error_line(&run(&["convert", &a, &s(&d.path().join("x.png"))]));
    assert!(msg.contains("unknown output format"), "{msg}");
    assert!(!d.path().join("x.png").exists());
}

#[test]
fn options_are_honoured_or_refused() {
    let d = tempfile::tempdir().unwrap();
    let src = fixture("tifffile_deflate_rgb8.tif");
    for (out, args, want) in [
        ("o.tif", &["--tile", "100"][..], "multiple of 16"),
        ("o.tif", &["--chunk", "64"], "--chunk applies to Zarr"),
        ("o.tif", &["--codec", "zstd"], "--codec applies to Zarr"),
        ("o.tif", &["--compression", "webp"], "unknown compression"),
        ("o.tif", &["--levels", "0"], "at least 1"),
        ("o.zarr", &["--tile", "256"], "--tile applies to TIFF"),
        ("o.zarr", &["--chunk", "64", "--shard", "100"], "multiple of --chunk"),
        ("o.zarr", &["--levels", "5"], "the input has 1 level"),
    ] {
        let out = s(&d.path().join(out));
        let msg = one_error_line(&run(&[&["convert", src.as_str(), out.as_str()], args].concat()));
        assert!(msg.contains(want), "{args:?}: {msg}");
    }
    assert_eq!(
        names(d.path()),
        Vec::<String>::new(),
        "a refused convert leaves nothing"
    );
}

#[test]
fn outputs_that_would_hurt_are_refused_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.tif");
    std::fs::copy(fixture("tifffile_deflate_rgb8.tif"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    // the input itself, by path and through another name
    let msg = one_error_line(&run(&["convert", &s(&input), &s(&input)]));
    assert!(msg.contains("is the input"), "{msg}");
    std::fs::hard_link(&input, d.path().join("same.tif")).unwrap();
    let msg = one_error_line(&run(&["convert", &s(&input), &s(&d.path().join("same.tif"))]));
    assert!(msg.contains("is the input"), "{msg}");
    assert_eq!(std::fs::read(&input).unwrap(), before);
    // a FIFO, a symlink and a device are never replaced
    let fifo = d.path().join("out.tif");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let msg = one_error_line(&run(&["convert", &s(&input), &s(&fifo)]));
    assert!(msg.contains("FIFO"), "{msg}");
    let msg = one_error_line(&run(&["read", &s(&input), "--out", "/dev/full", "--device", "cpu"]));
    assert!(msg.contains("character device"), "{msg}");
    let link = d.path().join("link.npy");
    std::os::unix::fs::symlink(d.path().join("target.npy"), &link).unwrap();
    let msg = one_error_line(&run(&["read", &s(&input), "--out", &s(&link), "--device", "cpu"]));
    assert!(msg.contains("symbolic link"), "{msg}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    // an existing directory is found before the work, not at the final rename
    let dir_out = d.path().join("dir.tif");
    std::fs::create_dir(&dir_out).unwrap();
    let msg = one_error_line(&run(&["convert", &s(&input), &s(&dir_out)]));
    assert!(msg.contains("existing directory"), "{msg}");
    let full = d.path().join("full.zarr");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    let msg = one_error_line(&run(&["convert", &s(&input), &s(&full)]));
    assert!(msg.contains("not empty"), "{msg}");
}

#[test]
fn errors_a_person_can_read() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing.tif");
    let msg = one_error_line(&run(&["info", &s(&missing)]));
    assert!(msg.contains(&s(&missing)) && msg.contains("No such file"), "{msg}");
    assert_eq!(msg.matches("No such file").count(), 1, "OS error repeated: {msg}");
    let msg = one_error_line(&run(&["bench", "read", &s(&missing)]));
    assert!(msg.contains(&s(&missing)), "{msg}");
    let src = fixture("tifffile_deflate_rgb8.tif");
    let msg = one_error_line(&run_with_env(&["info", &src], "TILEDIO_THREADS", "0"));
    assert!(msg.contains("TILEDIO_THREADS"), "{msg}");
    // Zarr writes report a bad TILEDIO_* value instead of ignoring it
    let (z, b) = (s(&d.path().join("a.zarr")), s(&d.path().join("b.zarr")));
    ok(&run(&["convert", &src, &z, "--chunk", "64"]));
    let msg = one_error_line(&run_with_env(&["convert", &z, &b], "TILEDIO_THREADS", "many"));
    assert!(msg.contains("TILEDIO_THREADS"), "{msg}");
    assert!(!d.path().join("b.zarr").exists());
    let msg = one_error_line(&run(&["demo", "--size-mib", "18446744073709551615"]));
    assert!(msg.contains("too large"), "{msg}");
    let out = stdout(&run(&["backends"]));
    assert!(!out.contains("no GPU: no GPU"), "{out}");
    // negative locations need no `=`
    let npy = s(&d.path().join("r.npy"));
    ok(&run(&[
        "read",
        &src,
        "--region",
        "-100,-100,200,200",
        "--out",
        &npy,
        "--device",
        "cpu",
    ]));
}

/// A slide big enough that converting it takes a while (a second or more in a debug build):
/// 2048 x 2048 RGB of non-repeating bytes, written as our own pyramid.
fn big_slide(dir: &Path) -> PathBuf {
    let p = dir.join("big.tif");
    let (h, w) = (2048usize, 2048usize);
    // the shared xorshift bytes; this seed starts the generator at 0x2545F4914F6CDD1D
    let data = tiledio_test_support::random::random_bytes(h * w * 3, 0x4232_db54_aa7f_b6e9);
    let img = tiledio::tiff::HostImage::from_u8(h, w, 3, data).unwrap();
    tiledio::tiff::write_pyramid(&p, &img, &tiledio::tiff::WriteOptions::default().tile(256)).unwrap();
    p
}

#[test]
fn interrupted_converts_leave_nothing_and_rerun_succeeds() {
    let d = tempfile::tempdir().unwrap();
    let src = big_slide(d.path());
    for (sig, out_name) in [
        ("-KILL", "k.zarr"),
        ("-TERM", "t.zarr"),
        ("-INT", "i.tif"),
        ("-KILL", "k2.tif"),
    ] {
        let out = d.path().join(out_name);
        let zarr = out_name.ends_with(".zarr");
        let mut interrupted = 0;
        for delay_ms in [50u64, 300, 900] {
            let mut child = tiledio()
                .args(["convert", &s(&src), &s(&out)])
                .args(if zarr {
                    vec!["--chunk", "128", "--codec", "zstd:19"]
                } else {
                    vec!["--tile", "128", "--compression", "zstd"]
                })
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = Command::new("kill").arg(sig).arg(child.id().to_string()).status();
            let st = child.wait().unwrap();
            if st.success() {
                // it finished before the signal: the output is complete; start over
                std::fs::remove_dir_all(&out)
                    .or_else(|_| std::fs::remove_file(&out))
                    .unwrap();
                continue;
            }
            interrupted += 1;
            assert!(!out.exists(), "{sig} after {delay_ms} ms left {}", out.display());
            if sig != "-KILL" {
                // caught signals clean up at once
                assert_no_temporaries(d.path(), format_args!("{sig} after {delay_ms} ms"));
            }
        }
        assert!(
            interrupted > 0,
            "{sig}: every convert finished before the signal; nothing tested"
        );
        // a re-run succeeds and removes what a killed run left behind
        let size_opt = if zarr { "--chunk" } else { "--tile" };
        ok(&run(&["convert", &s(&src), &s(&out), size_opt, "256"]));
        assert_no_temporaries(d.path(), format_args!("{sig}: after the re-run"));
    }
}

#[test]
fn concurrent_converts_to_one_output_never_mix() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.tif");
    let b = d.path().join("b.tif");
    std::fs::copy(fixture("tifffile_deflate_rgb8.tif"), &a).unwrap();
    std::fs::copy(fixture("tifffile_zstd_f32.tif"), &b).unwrap();
    for round in 0..3 {
        let out = d.path().join(format!("o{round}.zarr"));
        let start = Instant::now();
        let children: Vec<_> = [&a, &b, &a, &b]
            .iter()
            .map(|src| {
                tiledio()
                    .args(["convert", &s(src), &s(&out), "--chunk", "16", "--codec", "none"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let results: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        assert!(start.elapsed() < Duration::from_secs(120));
        let winners = results.iter().filter(|o| o.status.success()).count();
        assert!(winners >= 1, "round {round}: nobody won");
        for o in results.iter().filter(|o| !o.status.success()) {
            let e = stderr(o);
            assert!(
                e.contains("someone else") || e.contains("not empty"),
                "round {round}: a loser failed for another reason: {e}"
            );
        }
        // the output is exactly one of the inputs, whole
        let back = d.path().join(format!("back{round}.tif"));
        ok(&run(&["convert", &s(&out), &s(&back)]));
        let got = tiledio::tiff::Slide::open(&back).unwrap().read_level(0).unwrap();
        let ia = tiledio::tiff::Slide::open(&a).unwrap().read_level(0).unwrap();
        let ib = tiledio::tiff::Slide::open(&b).unwrap().read_level(0).unwrap();
        assert!(got == ia || got == ib, "round {round}: the output mixes the inputs");
        assert_no_temporaries(d.path(), format_args!("round {round}"));
    }
}

/// A few-KB TIFF declaring 16777216×16 RGB whose 256 tiles all point at one small deflate
/// tile: converting it must not grow without bound (it passed 15 GB before).
#[test]
fn a_huge_declared_level_is_refused_against_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.tif");
    let (tw, th, n) = (65536u32, 16u32, 256u32);
    let tile = {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; (tw * th * 3) as usize]).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(&bomb, tiff_bytes(tw * n, th, tw, th, &tile, n)).unwrap();
    assert!(std::fs::metadata(&bomb).unwrap().len() < 16 << 10);
    // the process's budget is read from the environment by every call
    for out in ["b.tif", "b.zarr"] {
        let o = run_with_env(
            &["convert", &s(&bomb), &s(&dir.path().join(out))],
            "TILEDIO_MAX_MEMORY",
            "512M",
        );
        let err = stderr(&o);
        assert!(!o.status.success() && err.contains("memory budget"), "{out}: {err}");
        assert!(!dir.path().join(out).exists());
    }
}

/// A classic little-endian tiled RGB TIFF whose `n` tiles all point at the same bytes.
fn tiff_bytes(w: u32, h: u32, tw: u32, th: u32, tile: &[u8], n: u32) -> Vec<u8> {
    let mut entries: Vec<(u16, u16, u32, u32)> = vec![
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 3, 0), // -> bps array
        (259, 3, 1, 8),
        (262, 3, 1, 2),
        (277, 3, 1, 3),
        (284, 3, 1, 1),
        (322, 4, 1, tw),
        (323, 4, 1, th),
        (324, 4, n, 0), // -> offsets array
        (325, 4, n, 0), // -> counts array
    ];
    let ifd_at = 8u32;
    let ifd_len = 2 + 12 * entries.len() as u32 + 4;
    let bps_at = ifd_at + ifd_len;
    let offs_at = bps_at + 8;
    let counts_at = offs_at + 4 * n;
    let tile_at = counts_at + 4 * n;
    entries[2].3 = bps_at;
    entries[9].3 = offs_at;
    entries[10].3 = counts_at;
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&ifd_at.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, typ, count, value) in &entries {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&typ.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        if *typ == 3 && *count == 1 {
            b.extend_from_slice(&(*value as u16).to_le_bytes());
            b.extend_from_slice(&[0, 0]);
        } else {
            b.extend_from_slice(&value.to_le_bytes());
        }
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    for _ in 0..3 {
        b.extend_from_slice(&8u16.to_le_bytes());
    }
    b.extend_from_slice(&[0, 0]);
    for _ in 0..n {
        b.extend_from_slice(&tile_at.to_le_bytes());
    }
    for _ in 0..n {
        b.extend_from_slice(&(tile.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(tile);
    b
}

/// A BitsPerSample tag of 400,000 values made a 1.2 MB error message: errors stay one short
/// line whatever the file holds.
#[test]
fn a_huge_tag_gives_a_short_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bps.tif");
    let n = 400_000u32;
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 5] = [
        (256, 4, 1, 16),
        (257, 4, 1, 16),
        (258, 3, n, 0),
        (273, 4, 1, 0),
        (279, 4, 1, 16),
    ];
    let data_at = 8 + 2 + 12 * entries.len() as u32 + 4;
    b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, typ, count, value) in entries {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&typ.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        let v = if tag == 258 || tag == 273 { data_at } else { value };
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    for i in 0..n {
        b.extend_from_slice(&(if i % 2 == 0 { 8u16 } else { 16 }).to_le_bytes());
    }
    std::fs::write(&p, &b).unwrap();
    let msg = one_error_line(&run(&["info", &s(&p)]));
    assert!(msg.contains("BitsPerSample"), "{msg}");
    assert!(msg.len() < 300, "{} characters: {msg}", msg.len());
}
