//! `tiledio ptycho preprocess|stream|simulate` end to end: the binary's outputs equal
//! `tiledio::ptycho::preprocess` called in this process on the same input (bit for bit), the
//! stores' command-line spellings (npy, raw, Zarr, HDF5 dataset, Eiger master) against the
//! NumPy reference fixtures, two processes streaming to each other over tcp and ipc (with a
//! PtyPy-style loader reading the publisher), and bad input as one error line with no output
//! left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tiledio::io::ElementType;
use tiledio::ptycho::stream::zmtp::{Socket, SocketOptions, SocketType};
use tiledio::ptycho::stream::{Endpoint, Sender, SenderOptions, WireFormat, pickle_meta};
use tiledio::ptycho::{
    Center, ClampOrder, Device, FrameStore, Frames, NpyStore, Orientation, Output as POutput, OutputType,
    PreprocessOptions, Reduce, ZarrStore, dark_frame, preprocess,
};

fn tiledio() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tiledio"))
}

fn run(args: &[&str]) -> Output {
    tiledio().args(args).output().expect("run tiledio")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn fixture(name: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/ptycho")
        .join(name))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

/// The one line a failed command printed; fails unless it exited with 1 and printed exactly
/// one line on stderr.
fn one_error_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "error not on one line:\n{err}");
    assert!(lines[0].starts_with("tiledio: error: "), "{err}");
    lines[0].to_string()
}

/// Names in `dir` (hidden temporaries included).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The small simulation every test uses: 20 frames of 64x64, a 32-pixel pattern.
const SIM: [&str; 8] = [
    "--frames",
    "20",
    "--shape",
    "64,64",
    "--pattern",
    "32",
    "--photons",
    "2e5",
];

fn simulate(out: &Path, seed: u64, extra: &[&str]) -> String {
    let seed = seed.to_string();
    let mut a = vec!["ptycho", "simulate", "--seed", &seed];
    a.extend(SIM);
    let o = s(out);
    a.extend(["--out", &o]);
    a.extend(extra);
    ok(&run(&a))
}

/// Every element of a Zarr array `(N, S, S)`, through the ptycho Zarr store.
fn read_zarr(path: &Path) -> Vec<u8> {
    let z = ZarrStore::open(path).unwrap();
    z.read_frames_to_vec(0..z.frames(), None).unwrap()
}

/// `preprocess` in this process into host memory.
fn library(stack: &dyn FrameStore, dark: Option<&[f32]>, o: &PreprocessOptions) -> Vec<u8> {
    let r = preprocess(stack, dark, o, POutput::Host, &mut |_, _| {}).unwrap();
    let Frames::Host(v) = r.data else { panic!("host output") };
    v
}

fn cpu_opts(crop: usize, bin: usize) -> PreprocessOptions {
    let mut o = PreprocessOptions::new(crop, bin);
    o.device = Device::Cpu;
    o
}

fn npy_dark(path: &Path) -> Vec<f32> {
    let d = NpyStore::open(path).unwrap();
    dark_frame(&d, 0..d.frames()).unwrap()
}

#[test]
fn help_of_each_command_shows_an_example() {
    for args in [
        &["ptycho", "--help"][..],
        &["ptycho", "preprocess", "--help"],
        &["ptycho", "stream", "--help"],
        &["ptycho", "simulate", "--help"],
    ] {
        let out = ok(&run(args));
        // "Example(s):" then the command lines, indented
        let example = out.split_once("Example").map(|(_, rest)| rest).unwrap_or("");
        assert!(example.contains("\n  tiledio ptycho"), "{args:?}:\n{out}");
    }
    let out = ok(&run(&["ptycho", "preprocess", "--help"]));
    for flag in [
        "--dark",
        "--crop",
        "--bin",
        "--center",
        "--reduce",
        "--dtype",
        "--device",
        "--flat",
        "--mask",
        "--bin-then-clamp",
        "--raw-shape",
        "--out",
    ] {
        assert!(out.contains(flag), "{flag} missing:\n{out}");
    }
    let out = ok(&run(&["ptycho", "stream", "--help"]));
    for flag in ["--listen", "--connect", "--publish-meta", "--publish-data", "--out"] {
        assert!(out.contains(flag), "{flag} missing:\n{out}");
    }
}

#[test]
fn simulate_then_preprocess_equals_the_library_for_every_store_and_option() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let (npy, raw, zarr) = (p.join("s.npy"), p.join("s.raw"), p.join("s.zarr"));
    let (dark, pos) = (p.join("dark.npy"), p.join("pos.npy"));
    let said = simulate(
        &npy,
        3,
        &["--dark", &s(&dark), "--dark-frames", "4", "--positions", &s(&pos)],
    );
    assert!(said.contains("20 frames of 64x64 uint16"), "{said}");
    simulate(&raw, 3, &[]);
    simulate(&zarr, 3, &[]);
    let stack = NpyStore::open(&npy).unwrap();
    assert_eq!(
        (stack.frames(), stack.shape(), stack.dtype()),
        (20, (64, 64), ElementType::U16)
    );
    let darks = NpyStore::open(&dark).unwrap();
    assert_eq!((darks.frames(), darks.shape()), (4, (64, 64)));
    let positions = std::fs::read(&pos).unwrap();
    let h = tiledio::ptycho::parse_npy_header(&pos, &positions).unwrap();
    assert_eq!((h.dtype, h.shape), (ElementType::F64, vec![20, 2]));
    // the same seed makes the same frames in every format
    let frames = stack.read_frames_to_vec(0..20, None).unwrap();
    assert_eq!(
        ZarrStore::open(&zarr).unwrap().read_frames_to_vec(0..20, None).unwrap(),
        frames
    );
    assert_eq!(
        std::fs::read(&raw).unwrap(),
        frames,
        "raw: little-endian u16, no header"
    );
    assert!(frames.chunks(2).any(|c| c != [0, 0]), "the simulation made something");
    let dark_map = npy_dark(&dark);
    let dark_s = s(&dark);

    // defaults: crop 32 about the frame centre, bin 2, sum, f32
    let want = library(&stack, Some(&dark_map), &cpu_opts(32, 2));
    assert_eq!(want.len(), 20 * 16 * 16 * 4);
    for (i, (input, extra)) in [
        (s(&npy), vec![]),
        (s(&raw), vec!["--raw-shape", "64,64", "--raw-dtype", "uint16"]),
        (s(&zarr), vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        let out = p.join(format!("o{i}.zarr"));
        let mut a = vec![
            "ptycho",
            "preprocess",
            &input,
            "--dark",
            &dark_s,
            "--crop",
            "32",
            "--bin",
            "2",
        ];
        a.extend(["--device", "cpu", "--batch", "6"]);
        a.extend(extra);
        let o = s(&out);
        a.extend(["--out", &o]);
        let said = ok(&run(&a));
        assert!(
            said.contains("20 frames of 16x16 float32")
                && said.contains("frames/s")
                && said.contains("CPU (--device cpu)")
                && said.contains("0 saturated"),
            "{said}"
        );
        assert_eq!(read_zarr(&out), want, "{input}");
    }

    // every option at once: auto centre, mean, bin then clamp, orientation, u16, flat, mask
    let flat: Vec<f32> = (0..64 * 64).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    let mask: Vec<u8> = (0..64 * 64).map(|i| u8::from(i % 11 == 0)).collect();
    let (flat_p, mask_p) = (p.join("flat.npy"), p.join("mask.npy"));
    let fb: Vec<u8> = flat.iter().flat_map(|v| v.to_ne_bytes()).collect();
    tiledio::ptycho::simulate::write_npy_array(&flat_p, ElementType::F32, &[64, 64], &fb).unwrap();
    tiledio::ptycho::simulate::write_npy_array(&mask_p, ElementType::U8, &[1, 64, 64], &mask).unwrap();
    let mut o = cpu_opts(24, 3);
    o.center = Center::Auto(8);
    o.reduce = Reduce::Mean;
    o.clamp = ClampOrder::BinThenClamp;
    o.orientation = Orientation::from_bits(5).unwrap();
    o.output = OutputType::U16;
    o.flat = Some(flat);
    o.mask = Some(mask);
    o.batch = 7;
    let want = library(&stack, Some(&dark_map), &o);
    assert_eq!(want.len(), 20 * 8 * 8 * 2);
    let out = p.join("all.zarr");
    let said = ok(&run(&[
        "ptycho",
        "preprocess",
        &s(&npy),
        "--dark",
        &s(&dark),
        "--crop",
        "24",
        "--bin",
        "3",
        "--center",
        "auto:8",
        "--reduce",
        "mean",
        "--bin-then-clamp",
        "--orientation",
        "5",
        "--dtype",
        "u16",
        "--flat",
        &s(&flat_p),
        "--mask",
        &s(&mask_p),
        "--device",
        "cpu",
        "--batch",
        "7",
        "--out",
        &s(&out),
    ]));
    assert!(said.contains("20 frames of 8x8 uint16"), "{said}");
    assert_eq!(read_zarr(&out), want);
    // a fixed centre, printed back
    let mut o = cpu_opts(16, 4);
    o.center = Center::At(30, 35);
    let want = library(&stack, None, &o);
    let out = p.join("fixed.zarr");
    let said = ok(&run(&[
        "ptycho",
        "preprocess",
        &s(&npy),
        "--crop",
        "16",
        "--bin",
        "4",
        "--center",
        "30,35",
        "--device",
        "cpu",
        "--out",
        &s(&out),
    ]));
    assert!(said.contains("centre (30, 35)"), "{said}");
    assert_eq!(read_zarr(&out), want);
}

#[test]
fn hdf5_and_eiger_stores_equal_the_numpy_reference() {
    // testdata/ptycho/make_fixtures.py: case sum_centre (crop 32, bin 2, frame centre, sum,
    // clamp then bin, f32) with the mean of darks.npy, computed by NumPy
    let reference = std::fs::read(fixture("ref_sum_centre.npy")).unwrap();
    let h = tiledio::ptycho::parse_npy_header(Path::new("ref.npy"), &reference).unwrap();
    assert_eq!(h.shape, vec![6, 16, 16]);
    let want = &reference[h.data_offset as usize..];
    let d = tempfile::tempdir().unwrap();
    for (i, stack) in [
        fixture("h5_bslz4.h5") + ":/entry/data/data",
        fixture("h5_contiguous.h5") + ":/entry/data/data",
        fixture("h5_chunked.h5"),
        fixture("eiger_master.h5"),
        fixture("frames.npy"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = d.path().join(format!("o{i}.zarr"));
        ok(&run(&[
            "ptycho",
            "preprocess",
            &stack,
            "--dark",
            &fixture("darks.npy"),
            "--crop",
            "32",
            "--bin",
            "2",
            "--device",
            "cpu",
            "--batch",
            "4",
            "--out",
            &s(&out),
        ]));
        assert_eq!(read_zarr(&out), want, "{stack}");
    }
    // the raw fixture: a 512-byte header and 64 bytes between frames
    let out = d.path().join("raw.zarr");
    ok(&run(&[
        "ptycho",
        "preprocess",
        &fixture("frames.raw"),
        "--dark",
        &fixture("darks.npy"),
        "--crop",
        "32",
        "--bin",
        "2",
        "--device",
        "cpu",
        "--raw-shape",
        "64,80",
        "--raw-header",
        "512",
        "--raw-stride",
        "10304",
        "--out",
        &s(&out),
    ]));
    assert_eq!(read_zarr(&out), want);
}

/// Runs `args`, expects one error line containing every one of `parts`, and checks that the
/// folder holds exactly `before` afterwards (no output, no temporary).
fn fails(dir: &Path, args: &[&str], parts: &[&str]) {
    let before = names(dir);
    let line = one_error_line(&run(args));
    for p in parts {
        assert!(line.contains(p), "{p:?} not in: {line}");
    }
    assert_eq!(names(dir), before, "{args:?} left something behind");
}

#[test]
fn bad_input_is_one_line_exit_1_and_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let ip = inputs.path();
    let (npy, dark, small_dark) = (ip.join("s.npy"), ip.join("dark.npy"), ip.join("small.npy"));
    simulate(&npy, 1, &["--dark", &s(&dark), "--dark-frames", "2"]);
    ok(&run(&[
        "ptycho",
        "simulate",
        "--frames",
        "2",
        "--shape",
        "32,32",
        "--pattern",
        "16",
        "--out",
        &s(&small_dark),
    ]));
    let out = s(&d.path().join("out.zarr"));
    let pre = |stack: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "ptycho",
            "preprocess",
            stack,
            "--crop",
            "32",
            "--bin",
            "2",
            "--device",
            "cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--out".to_string(), out.clone()]);
        a
    };
    let call = |a: &[String], parts: &[&str]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        fails(d.path(), &a, parts);
    };
    // crop not divisible by bin
    let mut a = pre(&s(&npy), &[]);
    a[4] = "30".into();
    a[6] = "4".into();
    call(&a, &["30", "not divisible", "4"]);
    // a missing dataset, a missing file, an unsupported filter
    call(
        &pre(&(fixture("h5_contiguous.h5") + ":/entry/data/nope"), &[]),
        &["h5_contiguous.h5", "/entry/data/nope", "not found"],
    );
    call(&pre(&s(&ip.join("missing.npy")), &[]), &["missing.npy"]);
    call(
        &pre(&(fixture("h5_variants_v0.h5") + ":/lzf"), &[]),
        &["unsupported", "32000", "lzf"],
    );
    // a dark (and a flat) of another frame shape
    call(
        &pre(&s(&npy), &["--dark", &s(&small_dark)]),
        &["--dark", "small.npy", "32x32", "64x64", "shapes differ"],
    );
    call(
        &pre(&s(&npy), &["--flat", &s(&small_dark)]),
        &["--flat", "shapes differ"],
    );
    // a raw file without its layout; a layout that does not fit the file
    call(&pre(&fixture("frames.raw"), &[]), &["frames.raw", "--raw-shape"]);
    call(
        &pre(&fixture("frames.raw"), &["--raw-shape", "64,80", "--raw-frames", "100"]),
        &["frames.raw", "100 frames"],
    );
    // a centre far outside the frame
    call(&pre(&s(&npy), &["--center", "-99999999999,0"]), &["far outside"]);
    // the output exists: a non-empty folder is left as it was
    let existing = d.path().join("existing.zarr");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("keep"), b"mine").unwrap();
    let mut a = pre(&s(&npy), &[]);
    *a.last_mut().unwrap() = s(&existing);
    call(&a, &["existing.zarr"]);
    assert_eq!(std::fs::read(existing.join("keep")).unwrap(), b"mine");
    // simulate: an existing output, bad options
    let file = d.path().join("f.npy");
    std::fs::write(&file, b"x").unwrap();
    fails(
        d.path(),
        &[
            "ptycho",
            "simulate",
            "--frames",
            "2",
            "--shape",
            "32,32",
            "--out",
            &s(&file),
        ],
        &["f.npy", "already exists"],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    fails(
        d.path(),
        &[
            "ptycho",
            "simulate",
            "--shape",
            "32,32",
            "--pattern",
            "64",
            "--out",
            &s(&d.path().join("g.npy")),
        ],
        &["pattern side 64", "larger than the frame"],
    );
    fails(
        d.path(),
        &[
            "ptycho",
            "simulate",
            "--shape",
            "32,32",
            "--out",
            &s(&d.path().join("g.png")),
        ],
        &["--format"],
    );
    // a stream cannot find its centre beforehand
    fails(
        d.path(),
        &[
            "ptycho",
            "stream",
            "--listen",
            "tcp://127.0.0.1:*",
            "--crop",
            "32",
            "--bin",
            "2",
            "--center",
            "auto",
        ],
        &["--center auto"],
    );
    // nobody to send to: the timeout ends it
    let t0 = Instant::now();
    fails(
        d.path(),
        &[
            "ptycho",
            "simulate",
            "--frames",
            "2",
            "--shape",
            "32,32",
            "--send",
            &format!("ipc://{}", s(&d.path().join("nobody"))),
            "--timeout",
            "1",
        ],
        &["nobody"],
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(!d.path().join("out.zarr").exists());
}

#[test]
fn a_run_that_fails_half_way_leaves_no_output() {
    // a Zarr stack whose frame 13 chunk is damaged: batches 0..12 are written, then the read
    // fails; the output was written in a temporary folder and is removed
    let inputs = tempfile::tempdir().unwrap();
    let zarr = inputs.path().join("s.zarr");
    simulate(&zarr, 2, &[]);
    let chunk = zarr.join("c/13/0/0");
    let len = std::fs::metadata(&chunk).unwrap().len();
    std::fs::write(&chunk, vec![7u8; len as usize / 3]).unwrap();
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.zarr");
    fails(
        d.path(),
        &[
            "ptycho",
            "preprocess",
            &s(&zarr),
            "--crop",
            "32",
            "--bin",
            "2",
            "--device",
            "cpu",
            "--batch",
            "4",
            "--out",
            &s(&out),
        ],
        &["s.zarr"],
    );
    assert!(!out.exists());

    // a stream that ends early: 2 of 5 frames, then the end message
    let ep = format!("ipc://{}", s(&d.path().join("early")));
    let mut child = tiledio()
        .args([
            "ptycho",
            "stream",
            "--listen",
            &ep,
            "--crop",
            "16",
            "--bin",
            "2",
            "--device",
            "cpu",
            "--batch",
            "1",
            "--timeout",
            "20",
            "--out",
            &s(&out),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut o = SenderOptions::new(WireFormat::Tiledio);
    o.socket.timeout = Some(Duration::from_secs(20));
    let mut tx = Sender::new(&Endpoint::Connect(ep), o).unwrap();
    tx.start(5, (32, 32), ElementType::U16).unwrap();
    for i in 0..2 {
        tx.image(i, 0.0, 0.0, &[1u8; 32 * 32 * 2]).unwrap();
    }
    tx.end().unwrap();
    let o = wait(&mut child, Duration::from_secs(60));
    let line = one_error_line(&o);
    assert!(line.contains("ended after frame 1 of 5"), "{line}");
    assert!(!out.exists());
    assert_eq!(
        names(d.path()),
        Vec::<String>::new(),
        "no output, no temporary, no socket"
    );
}

/// Waits for a child (killing it after `limit`) and returns its output.
fn wait(child: &mut Child, limit: Duration) -> Output {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("the child ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut o = Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut e) = child.stdout.take() {
        e.read_to_end(&mut o.stdout).unwrap();
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_end(&mut o.stderr).unwrap();
    }
    o
}

fn spawn(args: &[&str]) -> Child {
    tiledio()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A free TCP port on the loopback (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The frames of seed `seed` as a `.npy` stack (by the CLI), their dark map, and
/// `preprocess` of them in this process (crop 32, bin 2, mean, f32).
fn reference(dir: &Path, seed: u64) -> (PathBuf, Vec<u8>) {
    let (npy, dark) = (dir.join("ref.npy"), dir.join("dark.npy"));
    simulate(&npy, seed, &["--dark", &s(&dark), "--dark-frames", "3"]);
    let mut o = cpu_opts(32, 2);
    o.reduce = Reduce::Mean;
    let want = library(&NpyStore::open(&npy).unwrap(), Some(&npy_dark(&dark)), &o);
    (dark, want)
}

#[test]
fn simulate_send_to_stream_listen_over_tcp_equals_preprocess() {
    let d = tempfile::tempdir().unwrap();
    let (dark, want) = reference(d.path(), 5);
    let out = d.path().join("live.zarr");
    let ep = format!("tcp://127.0.0.1:{}", free_port());
    let mut rx = spawn(&[
        "ptycho",
        "stream",
        "--listen",
        &ep,
        "--dark",
        &s(&dark),
        "--crop",
        "32",
        "--bin",
        "2",
        "--reduce",
        "mean",
        "--device",
        "cpu",
        "--batch",
        "4",
        "--timeout",
        "30",
        "--out",
        &s(&out),
    ]);
    let mut sim: Vec<&str> = vec!["ptycho", "simulate", "--seed", "5"];
    sim.extend(SIM);
    sim.extend(["--send", &ep, "--wire", "json", "--timeout", "30"]);
    let mut tx = spawn(&sim);
    let sent = wait(&mut tx, Duration::from_secs(120));
    let got = wait(&mut rx, Duration::from_secs(120));
    let said = ok(&got);
    let sent = ok(&sent);
    assert!(sent.contains("20 frames") && sent.contains("tiledio JSON"), "{sent}");
    assert!(said.contains(&format!("listening on {ep}")), "{said}");
    assert!(
        said.contains("20 of 20 frames") && said.contains("0 lost") && said.contains("latency p50"),
        "{said}"
    );
    assert_eq!(read_zarr(&out), want);
}

#[test]
fn simulate_bind_stream_v2_to_stream_connect_over_ipc_with_a_ptypy_loader() {
    let d = tempfile::tempdir().unwrap();
    let (dark, want) = reference(d.path(), 6);
    let pos = d.path().join("pos.npy");
    let ipc = |name: &str| format!("ipc://{}", s(&d.path().join(name)));
    let (ep, meta, data) = (ipc("frames"), ipc("meta"), ipc("data"));
    // the simulator binds, as a detector does; the stream connects
    let mut sim: Vec<&str> = vec!["ptycho", "simulate", "--seed", "6"];
    sim.extend(SIM);
    let pos_s = s(&pos);
    sim.extend([
        "--send",
        &ep,
        "--bind",
        "--wire",
        "stream-v2",
        "--compression",
        "bslz4",
        "--positions",
        &pos_s,
        "--timeout",
        "30",
    ]);
    let mut tx = spawn(&sim);
    let out = d.path().join("live.zarr");
    let mut rx = spawn(&[
        "ptycho",
        "stream",
        "--connect",
        &ep,
        "--dark",
        &s(&dark),
        "--crop",
        "32",
        "--bin",
        "2",
        "--reduce",
        "mean",
        "--device",
        "cpu",
        "--batch",
        "3",
        "--timeout",
        "30",
        "--out",
        &s(&out),
        "--publish-meta",
        &meta,
        "--publish-data",
        &data,
    ]);
    // a loader as PtyPy's DiamondZMQLoader: Start on the metadata socket, then pull frames
    let opts = SocketOptions {
        timeout: Some(Duration::from_secs(30)),
        ..SocketOptions::default()
    };
    let mut req = Socket::open(SocketType::Req, &Endpoint::Connect(meta), opts.clone()).unwrap();
    req.send_multipart(&[b"Start"]).unwrap();
    let mut parts = Vec::new();
    req.recv_multipart(&mut parts).unwrap();
    assert_eq!(parts, [pickle_meta("float32", &[20, 16, 16])]);
    let mut pull = Socket::open(SocketType::Pull, &Endpoint::Connect(data), opts).unwrap();
    let (mut frames, mut xy) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        pull.recv_multipart(&mut parts).unwrap();
        assert_eq!(parts.len(), 3);
        frames.extend_from_slice(&parts[0]);
        let num = |b: &[u8]| std::str::from_utf8(b).unwrap().parse::<f64>().unwrap();
        xy.push([num(&parts[1]), num(&parts[2])]);
    }
    req.send_multipart(&[b"Stop"]).unwrap();
    req.recv_multipart(&mut parts).unwrap();
    assert_eq!(parts, [b"OK".to_vec()]);
    let sent = ok(&wait(&mut tx, Duration::from_secs(120)));
    let said = ok(&wait(&mut rx, Duration::from_secs(120)));
    assert!(sent.contains("Stream V2, bslz4"), "{sent}");
    assert!(
        said.contains("20 of 20 frames") && said.contains("the PtyPy loader") && said.contains("0 lost"),
        "{said}"
    );
    assert_eq!(frames, want, "published frames");
    assert_eq!(read_zarr(&out), want, "Zarr frames");
    // the positions of each image message are the simulator's (x, y) in object pixels
    let p = std::fs::read(&pos).unwrap();
    let h = tiledio::ptycho::parse_npy_header(&pos, &p).unwrap();
    let want_xy: Vec<[f64; 2]> = p[h.data_offset as usize..]
        .chunks(16)
        .map(|c| {
            [
                f64::from_le_bytes(c[..8].try_into().unwrap()),
                f64::from_le_bytes(c[8..].try_into().unwrap()),
            ]
        })
        .collect();
    assert_eq!(xy, want_xy);
}

#[test]
fn missing_frames_are_counted_as_lost_with_gaps_record() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("gappy.zarr");
    let ep = format!("ipc://{}", s(&d.path().join("gappy")));
    let mut child = spawn(&[
        "ptycho",
        "stream",
        "--listen",
        &ep,
        "--crop",
        "16",
        "--bin",
        "2",
        "--device",
        "cpu",
        "--batch",
        "2",
        "--gaps",
        "record",
        "--timeout",
        "20",
        "--out",
        &s(&out),
    ]);
    let mut o = SenderOptions::new(WireFormat::StreamV2);
    o.socket.timeout = Some(Duration::from_secs(20));
    let mut tx = Sender::new(&Endpoint::Connect(ep), o).unwrap();
    tx.start(6, (32, 32), ElementType::U16).unwrap();
    let frame: Vec<u8> = (0..32 * 32u16).flat_map(|v| (v % 13).to_le_bytes()).collect();
    for i in [0, 1, 3, 5] {
        tx.image(i, 0.0, 0.0, &frame).unwrap();
    }
    tx.end().unwrap();
    let said = ok(&wait(&mut child, Duration::from_secs(60)));
    assert!(
        said.contains("4 of 6 frames") && said.contains("2 lost") && said.contains("lost frames: 2..3, 4..5"),
        "{said}"
    );
    // received frames are written, lost ones keep the fill value (0)
    let got = read_zarr(&out);
    let fb = 8 * 8 * 4;
    assert_eq!(got.len(), 6 * fb);
    let zero = vec![0u8; fb];
    for i in 0..6 {
        let lost = i == 2 || i == 4;
        assert_eq!(got[i * fb..(i + 1) * fb] == zero[..], lost, "frame {i}");
    }
}

#[test]
fn the_device_used_is_reported_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    let npy = d.path().join("s.npy");
    simulate(&npy, 4, &[]);
    let gpu = tiledio::io::gpu::available();
    let out = d.path().join("auto.zarr");
    let said = ok(&run(&[
        "ptycho",
        "preprocess",
        &s(&npy),
        "--crop",
        "32",
        "--bin",
        "2",
        "--out",
        &s(&out),
    ]));
    if gpu {
        assert!(said.contains("on the GPU"), "{said}");
    } else {
        assert!(said.contains("on the CPU (--device auto: "), "{said}");
    }
    let out = d.path().join("gpu.zarr");
    let o = run(&[
        "ptycho",
        "preprocess",
        &s(&npy),
        "--crop",
        "32",
        "--bin",
        "2",
        "--device",
        "gpu",
        "--out",
        &s(&out),
    ]);
    if gpu {
        assert!(ok(&o).contains("(--device gpu)"));
        // the GPU's frames equal the CPU's, bit for bit
        let cpu = d.path().join("cpu.zarr");
        ok(&run(&[
            "ptycho",
            "preprocess",
            &s(&npy),
            "--crop",
            "32",
            "--bin",
            "2",
            "--device",
            "cpu",
            "--out",
            &s(&cpu),
        ]));
        assert_eq!(read_zarr(&out), read_zarr(&cpu));
    } else {
        one_error_line(&o);
        assert!(!out.exists());
    }
}
