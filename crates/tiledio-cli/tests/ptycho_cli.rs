//! `tiledio ptycho preprocess|stream|simulate` end to end: the binary's outputs equal
//! `tiledio::ptycho::preprocess` called in this process on the same input (bit for bit), the
//! stores' command-line spellings (npy, raw, Zarr, HDF5 dataset, Eiger master) against the
//! NumPy reference fixtures, two processes streaming to each other over tcp and ipc (with a
//! PtyPy-style loader reading the publisher), and bad input as one error line with no output
//! left behind.

mod common;

use common::{names, ok, run, run_owned, s, tiledio};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};
use tiledio::io::ElementType;
use tiledio::ptycho::stream::zmtp::{Socket, SocketOptions, SocketType};
use tiledio::ptycho::stream::{Endpoint, Sender, SenderOptions, WireFormat, pickle_meta};
use tiledio::ptycho::{
    Center, ClampOrder, Device, FrameStore, Frames, NpyStore, Orientation, Output as POutput, OutputType,
    PreprocessOptions, Reduce, ZarrStore, dark_frame, preprocess,
};

fn fixture(name: &str) -> String {
    common::testdata("ptycho", name)
}

/// The one line a failed command printed; fails unless it exited with 1 and printed exactly
/// one line on stderr.
fn one_error_line(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {o:?}");
    common::one_error_line(o)
}

/// The command line `ptycho COMMAND SOURCE.. --crop CROP --bin BIN OPTS.. --out OUT`: a
/// preprocessing run (`preprocess INPUT`, `stream --listen|--connect EP`) writing to OUT.
fn ptycho(command: &str, source: &[&str], crop_bin: [usize; 2], opts: &[&str], out: &Path) -> Vec<String> {
    let [crop, bin] = crop_bin.map(|v| v.to_string());
    let out = s(out);
    let fixed = ["--crop", &crop, "--bin", &bin];
    [&["ptycho", command], source, &fixed, opts, &["--out", &out]]
        .concat()
        .into_iter()
        .map(String::from)
        .collect()
}

/// Runs `tiledio ptycho preprocess SOURCE.. --crop .. --bin .. OPTS.. --out OUT` (see [`ptycho`]).
fn run_preprocess(source: &[&str], crop_bin: [usize; 2], opts: &[&str], out: &Path) -> Output {
    run_owned(&ptycho("preprocess", source, crop_bin, opts, out))
}

/// `--device cpu` and then `opts`.
fn on_cpu<'a>(opts: &[&'a str]) -> Vec<&'a str> {
    [&["--device", "cpu"][..], opts].concat()
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

/// The command line `ptycho simulate --seed SEED` of the small simulation ([`SIM`]), then `extra`.
fn simulation<'a>(seed: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    [&["ptycho", "simulate", "--seed", seed][..], &SIM, extra].concat()
}

/// Runs the small simulation of `seed` into `out`, with `extra` options; what it printed.
fn simulate(out: &Path, seed: u64, extra: &[&str]) -> String {
    let (seed, o) = (seed.to_string(), s(out));
    ok(&run(&simulation(&seed, &[&["--out", &o][..], extra].concat())))
}

/// `ptycho simulate` of 2 frames of 32x32 (the default pattern), then `extra`.
fn tiny_simulation<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [&["ptycho", "simulate", "--frames", "2", "--shape", "32,32"][..], extra].concat()
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
        let opts = on_cpu(&[&["--batch", "6"][..], &extra].concat());
        let said = ok(&run_preprocess(&[&input, "--dark", &dark_s], [32, 2], &opts, &out));
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
    let (flat_s, mask_s) = (s(&flat_p), s(&mask_p));
    let opts = on_cpu(&[
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
        &flat_s,
        "--mask",
        &mask_s,
        "--batch",
        "7",
    ]);
    let said = ok(&run_preprocess(&[&s(&npy), "--dark", &dark_s], [24, 3], &opts, &out));
    assert!(said.contains("20 frames of 8x8 uint16"), "{said}");
    assert_eq!(read_zarr(&out), want);
    // a fixed centre, printed back
    let mut o = cpu_opts(16, 4);
    o.center = Center::At(30, 35);
    let want = library(&stack, None, &o);
    let out = p.join("fixed.zarr");
    let opts = on_cpu(&["--center", "30,35"]);
    let said = ok(&run_preprocess(&[&s(&npy)], [16, 4], &opts, &out));
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
    let darks = fixture("darks.npy");
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
        let opts = on_cpu(&["--batch", "4"]);
        ok(&run_preprocess(&[&stack, "--dark", &darks], [32, 2], &opts, &out));
        assert_eq!(read_zarr(&out), want, "{stack}");
    }
    // the raw fixture: a 512-byte header and 64 bytes between frames
    let out = d.path().join("raw.zarr");
    let opts = on_cpu(&["--raw-shape", "64,80", "--raw-header", "512", "--raw-stride", "10304"]);
    let raw = fixture("frames.raw");
    ok(&run_preprocess(&[&raw, "--dark", &darks], [32, 2], &opts, &out));
    assert_eq!(read_zarr(&out), want);
}

/// Runs `args`, expects one error line containing every one of `parts`, and checks that the
/// folder holds exactly `before` afterwards (no output, no temporary).
fn fails(dir: &Path, args: &[impl AsRef<str> + std::fmt::Debug], parts: &[&str]) {
    let before = names(dir);
    let line = one_error_line(&run(&args.iter().map(AsRef::as_ref).collect::<Vec<&str>>()));
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
    let small_s = s(&small_dark);
    ok(&run(&tiny_simulation(&["--pattern", "16", "--out", &small_s])));
    let out = d.path().join("out.zarr");
    let pre = |stack: &str, extra: &[&str]| ptycho("preprocess", &[stack], [32, 2], &on_cpu(extra), &out);
    let npy_s = s(&npy);
    // crop not divisible by bin
    let a = ptycho("preprocess", &[&npy_s], [30, 4], &on_cpu(&[]), &out);
    fails(d.path(), &a, &["30", "not divisible", "4"]);
    // a missing dataset, a missing file, an unsupported filter; a dark (and a flat) of another
    // frame shape; a raw file without its layout, a layout that does not fit the file; a
    // centre far outside the frame
    for (stack, extra, parts) in [
        (
            fixture("h5_contiguous.h5") + ":/entry/data/nope",
            &[][..],
            &["h5_contiguous.h5", "/entry/data/nope", "not found"][..],
        ),
        (s(&ip.join("missing.npy")), &[], &["missing.npy"]),
        (
            fixture("h5_variants_v0.h5") + ":/lzf",
            &[],
            &["unsupported", "32000", "lzf"],
        ),
        (
            npy_s.clone(),
            &["--dark", &small_s],
            &["--dark", "small.npy", "32x32", "64x64", "shapes differ"],
        ),
        (npy_s.clone(), &["--flat", &small_s], &["--flat", "shapes differ"]),
        (fixture("frames.raw"), &[], &["frames.raw", "--raw-shape"]),
        (
            fixture("frames.raw"),
            &["--raw-shape", "64,80", "--raw-frames", "100"],
            &["frames.raw", "100 frames"],
        ),
        (npy_s.clone(), &["--center", "-99999999999,0"], &["far outside"]),
    ] {
        fails(d.path(), &pre(&stack, extra), parts);
    }
    // the output exists: a non-empty folder is left as it was
    let existing = d.path().join("existing.zarr");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("keep"), b"mine").unwrap();
    let a = ptycho("preprocess", &[&npy_s], [32, 2], &on_cpu(&[]), &existing);
    fails(d.path(), &a, &["existing.zarr"]);
    assert_eq!(std::fs::read(existing.join("keep")).unwrap(), b"mine");
    // simulate: an existing output, bad options
    let file = d.path().join("f.npy");
    std::fs::write(&file, b"x").unwrap();
    let (f, g_npy, g_png) = (s(&file), s(&d.path().join("g.npy")), s(&d.path().join("g.png")));
    fails(d.path(), &tiny_simulation(&["--out", &f]), &["f.npy", "already exists"]);
    for (opts, parts) in [
        (
            &["--pattern", "64", "--out", &g_npy][..],
            &["pattern side 64", "larger than the frame"][..],
        ),
        (&["--out", &g_png], &["--format"]),
    ] {
        fails(
            d.path(),
            &[&["ptycho", "simulate", "--shape", "32,32"][..], opts].concat(),
            parts,
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    // a stream cannot find its centre beforehand
    let stream = [
        "ptycho",
        "stream",
        "--listen",
        "tcp://127.0.0.1:*",
        "--crop",
        "32",
        "--bin",
        "2",
    ];
    fails(
        d.path(),
        &[&stream[..], &["--center", "auto"]].concat(),
        &["--center auto"],
    );
    // nobody to send to: the timeout ends it
    let nobody = format!("ipc://{}", s(&d.path().join("nobody")));
    let t0 = Instant::now();
    fails(
        d.path(),
        &tiny_simulation(&["--send", &nobody, "--timeout", "1"]),
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
    let a = ptycho("preprocess", &[&s(&zarr)], [32, 2], &on_cpu(&["--batch", "4"]), &out);
    fails(d.path(), &a, &["s.zarr"]);
    assert!(!out.exists());

    // a stream that ends early: 2 of 5 frames, then the end message
    let ep = format!("ipc://{}", s(&d.path().join("early")));
    let opts = on_cpu(&["--batch", "1", "--timeout", "20"]);
    let mut child = tiledio()
        .args(ptycho("stream", &["--listen", &ep], [16, 2], &opts, &out))
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

/// Starts `tiledio ARGS` with stdout and stderr piped (read by [`wait`]).
fn spawn(args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>) -> Child {
    tiledio()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `ptycho stream SOURCE.. --dark DARK` with the options of [`reference`] (crop 32, bin
/// 2, mean) on the CPU with a 30 s timeout, then `opts`, writing OUT.
fn spawn_reference_stream(source: &[&str], dark: &Path, opts: &[&str], out: &Path) -> Child {
    let dark = s(dark);
    let opts = on_cpu(&[&["--reduce", "mean", "--timeout", "30"][..], opts].concat());
    spawn(ptycho(
        "stream",
        &[source, &["--dark", &dark]].concat(),
        [32, 2],
        &opts,
        out,
    ))
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
    let ep = format!("tcp://127.0.0.1:{}", tiledio_test_support::net::free_tcp_port());
    let mut rx = spawn_reference_stream(&["--listen", &ep], &dark, &["--batch", "4"], &out);
    let mut tx = spawn(simulation("5", &["--send", &ep, "--wire", "json", "--timeout", "30"]));
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
    let pos_s = s(&pos);
    let mut tx = spawn(simulation(
        "6",
        &[
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
        ],
    ));
    let out = d.path().join("live.zarr");
    let publish = ["--batch", "3", "--publish-meta", &meta, "--publish-data", &data];
    let mut rx = spawn_reference_stream(&["--connect", &ep], &dark, &publish, &out);
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
    let opts = on_cpu(&["--batch", "2", "--gaps", "record", "--timeout", "20"]);
    let mut child = spawn(ptycho("stream", &["--listen", &ep], [16, 2], &opts, &out));
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
    let npy = s(&npy);
    // `ptycho preprocess NPY --crop 32 --bin 2 OPTS --out OUT`
    let pre = |opts: &[&str], out: &Path| run_preprocess(&[&npy], [32, 2], opts, out);
    let out = d.path().join("auto.zarr");
    let said = ok(&pre(&[], &out));
    if gpu {
        assert!(said.contains("on the GPU"), "{said}");
    } else {
        assert!(said.contains("on the CPU (--device auto: "), "{said}");
    }
    let out = d.path().join("gpu.zarr");
    let o = pre(&["--device", "gpu"], &out);
    if gpu {
        assert!(ok(&o).contains("(--device gpu)"));
        // the GPU's frames equal the CPU's, bit for bit
        let cpu = d.path().join("cpu.zarr");
        ok(&pre(&on_cpu(&[]), &cpu));
        assert_eq!(read_zarr(&out), read_zarr(&cpu));
    } else {
        one_error_line(&o);
        assert!(!out.exists());
    }
}
