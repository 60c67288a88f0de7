//! Live streams: Rust and pyzmq peers in both directions and both wire formats, cbor2-made
//! Stream V2 messages, the PtyPy loader protocol, stream → preprocess → Zarr against
//! `preprocess` of the same frames from a file, gaps, malformed input, disconnects and
//! timeouts. Every wait is bounded (socket timeouts here, socket timeouts and an alarm in the
//! Python peers), so a broken peer fails a test instead of hanging it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use tiledio_io::ElementType;
use tiledio_ptycho::stream::zmtp::{Socket, SocketOptions, SocketType};
use tiledio_ptycho::stream::{
    Compression, Endpoint, GapPolicy, Message, PipelineOptions, Publisher, Receiver, ReceiverOptions, Sender,
    SenderOptions, Sinks, StreamError, StreamErrorKind, WireFormat, run_pipeline, run_pipeline_parallel,
};
use tiledio_ptycho::{
    Center, Device, Frames, NpyStore, Output, OutputType, PreprocessOptions, PtychoError, Reduce, preprocess,
};
use tiledio_test_support::python::run_python;

const PEER: &str = include_str!("py/stream_peer.py");

fn opts(timeout_ms: u64) -> SocketOptions {
    SocketOptions {
        timeout: Some(Duration::from_millis(timeout_ms)),
        ..SocketOptions::default()
    }
}

fn rx_opts() -> ReceiverOptions {
    ReceiverOptions {
        socket: opts(20_000),
        channel: None,
    }
}

fn listen_rx() -> Receiver {
    Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), rx_opts()).unwrap()
}

/// Runs the Python peer with `args` on a thread of its own.
fn python_peer(args: Vec<String>) -> std::thread::JoinHandle<std::process::Output> {
    std::thread::spawn(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(PEER, &a)
    })
}

/// The Python peer as a PtyPy loader of what `p` publishes, saving it to `out`.
fn ptypy_loader(p: &Publisher, out: &Path) -> std::thread::JoinHandle<std::process::Output> {
    python_peer(vec![
        "ptypy".to_string(),
        p.meta_endpoint().into(),
        p.data_endpoint().into(),
        out.to_str().unwrap().into(),
    ])
}

fn sender(ep: Endpoint, format: WireFormat, compression: Compression) -> Sender {
    let mut o = SenderOptions::new(format);
    o.socket = opts(20_000);
    o.compression = compression;
    Sender::new(&ep, o).unwrap()
}

/// A free TCP port on the loopback (bound and released: for peers that must bind themselves).
fn random_frames(n: usize, h: usize, w: usize, t: ElementType, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = tiledio_test_support::random::Rng(seed);
    (0..n)
        .map(|_| {
            (0..h * w)
                .flat_map(|p| {
                    // a third of the rows zero: compressible, like a detector frame
                    let v = if p < h / 3 * w { 0 } else { rng.below(1000) };
                    let b = v.to_le_bytes();
                    b[..t.size()].to_vec()
                })
                .collect()
        })
        .collect()
}

/// Sends a series of `n` frames of `shape` and `t`: `image(i)` gives frame `i`'s pixels and its
/// position `(x, y)`.
fn send_each<B: AsRef<[u8]>>(
    tx: &mut Sender,
    n: u64,
    shape: (usize, usize),
    t: ElementType,
    image: impl Fn(u64) -> (B, f64, f64),
) -> Result<(), StreamError> {
    tx.start(n, shape, t)?;
    for i in 0..n {
        let (data, x, y) = image(i);
        tx.image(i, x, y, data.as_ref())?;
    }
    tx.end()
}

/// Sends `frames` as a series, frame `i` at position `(i / 2, -i / 4)`.
fn send_series(tx: &mut Sender, frames: &[Vec<u8>], shape: (usize, usize), t: ElementType) -> Result<(), StreamError> {
    send_each(tx, frames.len() as u64, shape, t, |i| {
        (&frames[i as usize], i as f64 * 0.5, -(i as f64) * 0.25)
    })
}

/// Receives one series and checks it against `frames`.
fn expect_series(rx: &mut Receiver, frames: &[Vec<u8>], shape: (usize, usize), t: ElementType, positions: bool) {
    match rx.recv().unwrap() {
        Message::Start {
            frames: n, shape: s, ..
        } => assert_eq!((n, s), (frames.len() as u64, shape)),
        other => panic!("expected start, got {other:?}"),
    }
    for (i, want) in frames.iter().enumerate() {
        match rx.recv().unwrap() {
            Message::Image {
                frame,
                posx,
                posy,
                shape: s,
                dtype,
                data,
            } => {
                assert_eq!((frame, s, dtype), (i as u64, shape, t));
                assert!(data.bytes() == &want[..], "frame {i} differs");
                if positions {
                    assert_eq!((posx, posy), (i as f64 * 0.5, -(i as f64) * 0.25));
                }
                rx.recycle(data);
            }
            other => panic!("expected image {i}, got {other:?}"),
        }
    }
    assert_eq!(rx.recv().unwrap(), Message::End);
}

#[test]
fn rust_sender_to_rust_receiver_in_every_format_and_direction() {
    let cases = [
        (WireFormat::Tiledio, Compression::None, ElementType::U16),
        (WireFormat::StreamV2, Compression::None, ElementType::U16),
        (WireFormat::StreamV2, Compression::Bslz4, ElementType::U16),
        (WireFormat::StreamV2, Compression::Lz4, ElementType::U16),
        (WireFormat::StreamV2, Compression::Bslz4, ElementType::U32),
        (WireFormat::StreamV2, Compression::Bslz4, ElementType::U8),
        (WireFormat::Tiledio, Compression::None, ElementType::F32),
    ];
    for (k, (format, comp, t)) in cases.into_iter().enumerate() {
        let shape = (37, 53); // not a multiple of 8 elements: bslz4's raw tail
        let frames = random_frames(5, shape.0, shape.1, t, k as u64);
        // receiver listens, sender connects
        let mut rx = listen_rx();
        let mut tx = sender(Endpoint::Connect(rx.endpoint().into()), format, comp);
        let f2 = frames.clone();
        let th = std::thread::spawn(move || send_series(&mut tx, &f2, shape, t));
        expect_series(&mut rx, &frames, shape, t, true);
        th.join().unwrap().unwrap();
        // sender listens (as a detector does), receiver connects
        let mut tx = sender(Endpoint::Listen("tcp://127.0.0.1:*".into()), format, comp);
        let ep = Endpoint::Connect(tx.endpoint().into());
        let f2 = frames.clone();
        let th = std::thread::spawn(move || send_series(&mut tx, &f2, shape, t));
        let mut rx = Receiver::new(&ep, ReceiverOptions::default()).unwrap();
        expect_series(&mut rx, &frames, shape, t, true);
        th.join().unwrap().unwrap();
    }
    // ipc://
    let dir = tempfile::tempdir().unwrap();
    let ep = format!("ipc://{}", dir.path().join("s.ipc").display());
    let mut rx = Receiver::new(&Endpoint::Listen(ep.clone()), ReceiverOptions::default()).unwrap();
    let frames = random_frames(3, 16, 16, ElementType::U16, 9);
    let f2 = frames.clone();
    let mut tx = sender(Endpoint::Connect(ep), WireFormat::StreamV2, Compression::Lz4);
    let th = std::thread::spawn(move || send_series(&mut tx, &f2, (16, 16), ElementType::U16));
    expect_series(&mut rx, &frames, (16, 16), ElementType::U16, true);
    th.join().unwrap().unwrap();
}

/// Reads `frames` and `pos` from a NumPy `.npz` written by the peer (through Python: the
/// frames as raw bytes, the positions as text).
fn read_npz(path: &Path) -> (Vec<u8>, Vec<[f64; 2]>) {
    let out = run_python(
        "import sys, numpy as np\nz = np.load(sys.argv[1])\nopen(sys.argv[1] + '.raw', 'wb').write(np.ascontiguousarray(z['frames']).tobytes())\nprint(' '.join(repr(float(v)) for v in z['pos'].ravel()))",
        &[path.to_str().unwrap()],
    );
    let raw = std::fs::read(format!("{}.raw", path.display())).unwrap();
    let v: Vec<f64> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    (raw, v.chunks(2).map(|c| [c[0], c[1]]).collect())
}

#[test]
fn pyzmq_push_to_our_pull_binding_and_connecting_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (n, h, w) = (4usize, 29usize, 41usize);
    for (k, fmt) in ["tiledio", "v2", "v2-lz4", "v2-bslz4"].into_iter().enumerate() {
        for mode in ["connect", "bind"] {
            let out = dir.path().join(format!("{fmt}-{mode}.npz"));
            let (mut rx, ep) = if mode == "connect" {
                // python connects to our listening PULL
                let rx = listen_rx();
                let ep = rx.endpoint().to_string();
                (rx, ep)
            } else {
                // python binds (as a detector does); we connect
                let ep = format!("tcp://127.0.0.1:{}", tiledio_test_support::net::free_tcp_port());
                (Receiver::new(&Endpoint::Connect(ep.clone()), rx_opts()).unwrap(), ep)
            };
            let th = python_peer(vec![
                "push".into(),
                ep,
                mode.into(),
                fmt.into(),
                n.to_string(),
                h.to_string(),
                w.to_string(),
                "uint16".into(),
                out.to_str().unwrap().into(),
            ]);
            let mut got = Vec::new();
            let mut pos = Vec::new();
            match rx.recv().unwrap() {
                Message::Start { frames, shape, .. } => assert_eq!((frames, shape), (n as u64, (h, w))),
                m => panic!("{fmt} {mode}: {m:?}"),
            }
            loop {
                match rx.recv().unwrap() {
                    Message::Image {
                        frame,
                        posx,
                        posy,
                        dtype,
                        data,
                        ..
                    } => {
                        assert_eq!((frame, dtype), (pos.len() as u64, ElementType::U16));
                        got.extend_from_slice(&data);
                        pos.push([posx, posy]);
                    }
                    Message::End => break,
                    m => panic!("{m:?}"),
                }
            }
            th.join().unwrap();
            let (want, want_pos) = read_npz(&out);
            assert!(got == want, "{fmt} {mode} (case {k}): frames differ");
            assert_eq!(pos, want_pos, "{fmt} {mode}");
        }
    }
}

#[test]
fn our_push_to_pyzmq_pull_binding_and_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let shape = (23, 31);
    let cases = [
        (WireFormat::Tiledio, Compression::None, "connect"),
        (WireFormat::Tiledio, Compression::None, "bind"),
        (WireFormat::StreamV2, Compression::None, "connect"),
        (WireFormat::StreamV2, Compression::Bslz4, "bind"),
        (WireFormat::StreamV2, Compression::Lz4, "connect"),
    ];
    for (k, (format, comp, mode)) in cases.into_iter().enumerate() {
        let frames = random_frames(4, shape.0, shape.1, ElementType::U16, 100 + k as u64);
        let out = dir.path().join(format!("{k}.npz"));
        let (mut tx, ep) = if mode == "connect" {
            let tx = sender(Endpoint::Listen("tcp://127.0.0.1:*".into()), format, comp);
            let ep = tx.endpoint().to_string();
            (tx, ep)
        } else {
            let ep = format!("tcp://127.0.0.1:{}", tiledio_test_support::net::free_tcp_port());
            (sender(Endpoint::Connect(ep.clone()), format, comp), ep)
        };
        let th = python_peer(vec!["pull".to_string(), ep, mode.into(), out.to_str().unwrap().into()]);
        send_series(&mut tx, &frames, shape, ElementType::U16).unwrap();
        th.join().unwrap();
        let (got, pos) = read_npz(&out);
        assert!(got == frames.concat(), "case {k}: frames differ");
        let want: Vec<[f64; 2]> = (0..4).map(|i| [i as f64 * 0.5, -(i as f64) * 0.25]).collect();
        assert_eq!(pos, want, "case {k}");
    }
}

#[test]
fn a_ptypy_loader_reads_what_the_publisher_sends() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::bind("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", opts(20_000)).unwrap();
    let out = dir.path().join("ptypy.npz");
    let th = ptypy_loader(&p, &out);
    // the loader may ask before the series is known: begin() answers it then
    std::thread::sleep(Duration::from_millis(200));
    p.begin(5, (4, 3), "float32");
    let mut all = Vec::new();
    for i in 0..5 {
        let f: Vec<u8> = (0..12)
            .flat_map(|v| ((i * 12 + v) as f32 * 0.5).to_le_bytes())
            .collect();
        p.send(&f, i as f64 + 0.125, -(i as f64)).unwrap();
        all.extend(f);
    }
    let o = th.join().unwrap();
    let meta = String::from_utf8(o.stdout).unwrap();
    assert!(meta.contains(r#""dtype": "float32", "shape": [5, 4, 3]"#), "{meta}");
    let (got, pos) = read_npz(&out);
    assert_eq!(got, all);
    // the loader stores (posy, posx)
    let want: Vec<[f64; 2]> = (0..5).map(|i| [-(i as f64), i as f64 + 0.125]).collect();
    assert_eq!(pos, want);
    assert_eq!(p.starts_answered(), 1);
    let t = Instant::now();
    while !p.stop_received() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(p.stop_received());
    // the pickle with large ints reads back in Python too
    let pk = tiledio_ptycho::stream::pickle_meta("uint16", &[1 << 40, 2, 3]);
    let hex: String = pk.iter().map(|b| format!("{b:02x}")).collect();
    let o = run_python(
        "import sys, pickle; print(pickle.loads(bytes.fromhex(sys.argv[1])))",
        &[&hex],
    );
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().trim(),
        "{'dtype': 'uint16', 'shape': (1099511627776, 2, 3)}"
    );
}

fn write_npy(path: &Path, frames: &[Vec<u8>], shape: (usize, usize)) {
    let dims = [frames.len() as u64, shape.0 as u64, shape.1 as u64];
    tiledio_ptycho::simulate::write_npy_array(path, ElementType::U16, &dims, &frames.concat()).unwrap();
}

fn read_zarr(path: &Path) -> Vec<u8> {
    let z = tiledio_zarr::ZarrArray::open(path).unwrap();
    let n: u64 = z.shape().iter().product::<u64>() * z.element_size() as u64;
    let mut v = vec![0u8; n as usize];
    z.read_all(&mut v[..]).unwrap();
    v
}

fn pipeline_opts(device: Device) -> PreprocessOptions {
    let mut o = PreprocessOptions::new(24, 3);
    o.center = Center::At(20, 27);
    o.reduce = Reduce::Mean;
    o.output = OutputType::F32;
    o.batch = 4;
    o.device = device;
    o
}

/// `n` random 45x52 u16 frames (seed `seed`) written to `f.npy` in `dir`, and what `preprocess`
/// with [`pipeline_opts`] on the CPU and `dark` makes of that file.
fn frames_and_reference(dir: &Path, n: usize, seed: u64, dark: Option<&[f32]>) -> (Vec<Vec<u8>>, Vec<u8>) {
    let frames = random_frames(n, 45, 52, ElementType::U16, seed);
    let npy = dir.join("f.npy");
    write_npy(&npy, &frames, (45, 52));
    let o = pipeline_opts(Device::Cpu);
    let want = preprocess(&NpyStore::open(&npy).unwrap(), dark, &o, Output::Host, &mut |_, _| {}).unwrap();
    let Frames::Host(want) = want.data else { panic!() };
    (frames, want)
}

/// The pipeline's output as Zarr at `out`.
fn zarr_sink(out: &Path) -> Sinks<'static> {
    Sinks {
        zarr: Some(out.to_path_buf()),
        publisher: None,
    }
}

/// Streams `frames` in wire format `wire` into `run_pipeline` with `sinks`; checks its progress
/// calls.
fn stream_into(
    frames: &[Vec<u8>],
    shape: (usize, usize),
    wire: (WireFormat, Compression),
    o: &PreprocessOptions,
    dark: Option<&[f32]>,
    sinks: Sinks<'_>,
) -> tiledio_ptycho::stream::StreamReport {
    let rx = listen_rx();
    let mut tx = sender(Endpoint::Connect(rx.endpoint().into()), wire.0, wire.1);
    let f2 = frames.to_vec();
    let th = std::thread::spawn(move || send_series(&mut tx, &f2, shape, ElementType::U16));
    let mut calls = 0;
    let r = run_pipeline(rx, o, dark, sinks, &PipelineOptions::default(), &mut |done, total| {
        calls += 1;
        assert!(done <= total);
    })
    .unwrap();
    assert!(calls >= 1);
    th.join().unwrap().unwrap();
    r
}

#[test]
fn stream_to_zarr_equals_preprocess_of_the_same_frames_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let shape = (45, 52);
    let dark: Vec<f32> = (0..shape.0 * shape.1).map(|i| (i % 5) as f32 * 0.5).collect();
    let (frames, want) = frames_and_reference(dir.path(), 10, 42, Some(&dark));
    let o = pipeline_opts(Device::Cpu);
    for (k, (format, comp)) in [
        (WireFormat::Tiledio, Compression::None),
        (WireFormat::StreamV2, Compression::Bslz4),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.path().join(format!("out{k}.zarr"));
        let r = stream_into(&frames, shape, (format, comp), &o, Some(&dark), zarr_sink(&out));
        assert_eq!((r.frames, r.expected, r.side, r.gpu), (10, 10, 8, false));
        assert!(r.gaps.is_empty() && r.fps > 0.0 && r.latency_p99 >= r.latency_p50);
        assert_eq!(read_zarr(&out), want, "{format:?} {comp:?}");
    }
}

#[test]
fn stream_to_a_ptypy_loader_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (frames, want) = frames_and_reference(dir.path(), 6, 44, None);
    let o = pipeline_opts(Device::Cpu);
    let mut p = Publisher::bind("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", opts(20_000)).unwrap();
    let out = dir.path().join("ptypy.npz");
    let py = ptypy_loader(&p, &out);
    let sinks = Sinks {
        zarr: None,
        publisher: Some(&mut p),
    };
    let wire = (WireFormat::StreamV2, Compression::Lz4);
    let r = stream_into(&frames, (45, 52), wire, &o, None, sinks);
    assert_eq!(r.frames, 6);
    let meta = String::from_utf8(py.join().unwrap().stdout).unwrap();
    assert!(meta.contains(r#""dtype": "float32", "shape": [6, 8, 8]"#), "{meta}");
    let (got, pos) = read_npz(&out);
    assert_eq!(got, want);
    let want_pos: Vec<[f64; 2]> = (0..6).map(|i| [-(i as f64) * 0.25, i as f64 * 0.5]).collect();
    assert_eq!(pos, want_pos);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn stream_on_the_gpu_equals_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let shape = (45, 52);
    let frames = random_frames(10, shape.0, shape.1, ElementType::U16, 43);
    let dark: Vec<f32> = (0..shape.0 * shape.1).map(|i| (i % 3) as f32).collect();
    let cpu = dir.path().join("cpu.zarr");
    let gpu = dir.path().join("gpu.zarr");
    let fmt = (WireFormat::StreamV2, Compression::Bslz4);
    let on = |device, out: &Path| stream_into(&frames, shape, fmt, &pipeline_opts(device), Some(&dark), zarr_sink(out));
    let (rc, rg) = (on(Device::Cpu, &cpu), on(Device::Gpu, &gpu));
    assert!(!rc.gpu && rg.gpu);
    assert_eq!(read_zarr(&gpu), read_zarr(&cpu));
}

/// Runs the pipeline on a hand-made sequence of tiledio messages.
fn pipeline_on(msgs: Vec<Vec<Vec<u8>>>, gaps: GapPolicy) -> Result<tiledio_ptycho::stream::StreamReport, PtychoError> {
    let rx = listen_rx();
    let mut tx = sender(
        Endpoint::Connect(rx.endpoint().into()),
        WireFormat::Tiledio,
        Compression::None,
    );
    let th = std::thread::spawn(move || {
        for m in msgs {
            let parts: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
            if tx.send_raw(&parts).is_err() {
                return;
            }
        }
        // keep the connection until the receiver is done
        std::thread::sleep(Duration::from_millis(300));
    });
    let mut o = PreprocessOptions::new(4, 2);
    o.device = Device::Cpu;
    let p = PipelineOptions {
        queue: 2,
        gaps,
        ..PipelineOptions::default()
    };
    let r = run_pipeline(rx, &o, None, Sinks::default(), &p, &mut |_, _| {});
    th.join().unwrap();
    r
}

fn start_msg(n: u64) -> Vec<Vec<u8>> {
    vec![format!(r#"{{"type":"start","frames":{n},"shape":[4,4],"dtype":"uint8"}}"#).into_bytes()]
}
fn image_msg(i: u64) -> Vec<Vec<u8>> {
    vec![
        format!(r#"{{"type":"image","frame":{i},"posx":0,"posy":0}}"#).into_bytes(),
        vec![i as u8; 16],
    ]
}
fn end_msg() -> Vec<Vec<u8>> {
    vec![br#"{"type":"end"}"#.to_vec()]
}

fn stream_kind(e: &PtychoError) -> StreamErrorKind {
    match e {
        PtychoError::Stream(s) => s.kind,
        other => panic!("not a stream error: {other}"),
    }
}

#[test]
fn gaps_repeats_and_early_ends_are_reported() {
    let seq = |idx: &[u64], n: u64, end: bool| {
        let mut v = vec![start_msg(n)];
        v.extend(idx.iter().map(|i| image_msg(*i)));
        if end {
            v.push(end_msg());
        }
        v
    };
    let e = pipeline_on(seq(&[0, 1, 3, 4], 5, true), GapPolicy::Error).unwrap_err();
    assert_eq!(stream_kind(&e), StreamErrorKind::Gap);
    assert!(
        e.to_string().contains("frame 3 after frame 1: frames 2..3 missing"),
        "{e}"
    );
    assert!(e.to_string().starts_with("tcp://127.0.0.1:"), "{e}");
    let r = pipeline_on(seq(&[0, 1, 3, 4], 5, true), GapPolicy::Record).unwrap();
    assert_eq!((r.frames, r.gaps.len(), r.gaps[0].clone()), (4, 1, 2..3));
    let e = pipeline_on(seq(&[0, 1, 1, 2], 3, true), GapPolicy::Record).unwrap_err();
    assert!(e.to_string().contains("frame 1 after frame 1: repeated"), "{e}");
    let e = pipeline_on(seq(&[0, 1], 3, true), GapPolicy::Error).unwrap_err();
    assert!(e.to_string().contains("ended after frame 1 of 3"), "{e}");
    let e = pipeline_on(seq(&[0, 5], 3, true), GapPolicy::Record).unwrap_err();
    assert!(e.to_string().contains("frame 5 in a series of 3"), "{e}");
    let r = pipeline_on(seq(&[0, 1, 2], 3, true), GapPolicy::Error).unwrap();
    assert_eq!((r.frames, r.side), (3, 2));
}

/// Runs the pipeline on several connections, each fed its own hand-made message sequence;
/// the output goes to a Zarr array, returned with the report.
fn parallel_on(
    conns: Vec<Vec<Vec<Vec<u8>>>>,
    gaps: GapPolicy,
) -> (
    Result<tiledio_ptycho::stream::StreamReport, PtychoError>,
    Option<Vec<u8>>,
) {
    let rxs: Vec<Receiver> = conns.iter().map(|_| listen_rx()).collect();
    let threads: Vec<_> = conns
        .into_iter()
        .zip(&rxs)
        .map(|(msgs, rx)| {
            let mut tx = sender(
                Endpoint::Connect(rx.endpoint().into()),
                WireFormat::Tiledio,
                Compression::None,
            );
            std::thread::spawn(move || {
                for m in msgs {
                    let parts: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
                    if tx.send_raw(&parts).is_err() {
                        return;
                    }
                }
                // keep the connection (silent) until the receiver is done
                std::thread::sleep(Duration::from_millis(600));
            })
        })
        .collect();
    let mut o = PreprocessOptions::new(4, 2);
    o.device = Device::Cpu;
    let p = PipelineOptions {
        queue: 2,
        gaps,
        drain: Duration::from_millis(200),
    };
    let dir = tempfile::tempdir().unwrap();
    let zarr = dir.path().join("out.zarr");
    let sinks = Sinks {
        zarr: Some(zarr.clone()),
        publisher: None,
    };
    let r = run_pipeline_parallel(rxs, &o, None, sinks, &p, &mut |_, _| {});
    for t in threads {
        t.join().unwrap();
    }
    let out = r.is_ok().then(|| read_zarr(&zarr));
    (r, out)
}

/// The Stream V2 messages of a series of `n` 4x4 u8 frames of value i, made by our sender and
/// captured raw.
fn v2_series(n: u64) -> Vec<Vec<Vec<u8>>> {
    let mut pull = Socket::open(
        SocketType::Pull,
        &Endpoint::Listen("tcp://127.0.0.1:*".into()),
        opts(20_000),
    )
    .unwrap();
    let mut tx = sender(
        Endpoint::Connect(pull.endpoint().into()),
        WireFormat::StreamV2,
        Compression::None,
    );
    let th = std::thread::spawn(move || {
        send_each(&mut tx, n, (4, 4), ElementType::U8, |i| ([i as u8; 16], 0.0, 0.0)).unwrap();
        // keep the connection until everything is read
        std::thread::sleep(Duration::from_millis(200));
    });
    let msgs = (0..n + 2)
        .map(|_| {
            let mut parts = Vec::new();
            pull.recv_multipart(&mut parts).unwrap();
            parts
        })
        .collect();
    th.join().unwrap();
    msgs
}

/// Frame i preprocessed (4x4 of value i, crop 4, bin 2, sum): 2x2 f32 of 4·i.
fn expected_frames(idx: &[u64], n: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            let v = if idx.contains(&i) { 4.0 * (i as u8) as f32 } else { 0.0 };
            std::iter::repeat_n(v, 4).flat_map(f32::to_ne_bytes)
        })
        .collect()
}

#[test]
fn several_connections_merge_into_frame_order() {
    // three senders, each with its own start and end and every third frame
    let n = 10;
    let conns: Vec<_> = (0..3u64)
        .map(|c| {
            let mut v = vec![start_msg(n)];
            v.extend((c..n).step_by(3).map(image_msg));
            v.push(end_msg());
            v
        })
        .collect();
    let (r, out) = parallel_on(conns, GapPolicy::Error);
    let r = r.unwrap();
    assert_eq!((r.frames, r.gaps.len()), (n, 0));
    assert_eq!(out.unwrap(), expected_frames(&(0..n).collect::<Vec<_>>(), n));

    // one PUSH socket round-robin (Stream V2, whose images describe themselves): the start
    // on the first connection, the end on the second, the third connection falls silent (it
    // ends after the drain)
    let mut v2 = v2_series(7).into_iter();
    let mut conns = vec![vec![v2.next().unwrap()], vec![], vec![]];
    for i in 0..7 {
        conns[i % 3].push(v2.next().unwrap());
    }
    conns[1].push(v2.next().unwrap());
    let (r, out) = parallel_on(conns, GapPolicy::Error);
    assert_eq!(r.unwrap().frames, 7);
    assert_eq!(out.unwrap(), expected_frames(&(0..7).collect::<Vec<_>>(), 7));

    // round-robin where the first connection has said everything while the end waits behind
    // an image on the second: the next frame is taken without waiting for the silent one
    let v2 = v2_series(2);
    let conns = vec![vec![v2[0].clone(), v2[1].clone()], vec![v2[2].clone(), v2[3].clone()]];
    let (r, out) = parallel_on(conns, GapPolicy::Error);
    assert_eq!(r.unwrap().frames, 2);
    assert_eq!(out.unwrap(), expected_frames(&[0, 1], 2));

    // a frame lost on one connection: a gap (recorded) or an error, never a wrong frame
    let lost = |gaps| {
        let v2 = v2_series(6);
        let mut conns = vec![vec![v2[0].clone()], vec![]];
        for i in [0, 1, 2, 4, 5] {
            conns[i % 2].push(v2[1 + i].clone());
        }
        conns[0].push(v2[7].clone());
        parallel_on(conns, gaps)
    };
    let (r, out) = lost(GapPolicy::Record);
    let r = r.unwrap();
    assert_eq!((r.frames, r.gaps.len(), r.gaps[0].clone()), (5, 1, 3..4));
    assert_eq!(out.unwrap(), expected_frames(&[0, 1, 2, 4, 5], 6));
    let (r, _) = lost(GapPolicy::Error);
    let e = r.unwrap_err();
    assert_eq!(stream_kind(&e), StreamErrorKind::Gap);
    assert!(e.to_string().contains("frames 3..4 missing"), "{e}");

    // connections that disagree about the series
    let conns = vec![
        vec![start_msg(4), image_msg(0), image_msg(2), end_msg()],
        vec![start_msg(5), image_msg(1), image_msg(3), end_msg()],
    ];
    let (r, _) = parallel_on(conns, GapPolicy::Error);
    let e = r.unwrap_err();
    assert_eq!(stream_kind(&e), StreamErrorKind::Malformed);
    // whichever start came first is the series
    let m = e.to_string();
    assert!(
        m.contains("a start of 5 frames of (4, 4) in a series of 4 frames")
            || m.contains("a start of 4 frames of (4, 4) in a series of 5 frames"),
        "{e}"
    );
}

fn cbor(hex: &str) -> Vec<u8> {
    let hex = hex.replace(' ', "");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A Stream V2 image `{"type": "image", "image_id": 0, "data": {"threshold_1":
/// 40([[1, 2], TAG(payload)])}}` (hand-encoded: the tests own the bytes).
fn v2_image(typed_tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = cbor(
        "a3 64 74797065 65 696d616765 68 696d6167655f6964 00 64 64617461 a1 6b 7468726573686f6c645f31 d828 82 82 01 02 d8",
    );
    m.push(typed_tag);
    m.push(0x40 | payload.len() as u8);
    m.extend(payload);
    m
}

#[test]
fn malformed_messages_are_typed_errors_and_the_receiver_goes_on() {
    let mut rx = listen_rx();
    let mut tx = sender(
        Endpoint::Connect(rx.endpoint().into()),
        WireFormat::Tiledio,
        Compression::None,
    );
    let bad: Vec<(Vec<Vec<u8>>, StreamErrorKind, &str)> = vec![
        (vec![b"{not json".to_vec()], StreamErrorKind::Malformed, "JSON header"),
        (image_msg(0), StreamErrorKind::Malformed, "image 0 before a start"),
        (
            vec![br#"{"type":"nope"}"#.to_vec()],
            StreamErrorKind::Malformed,
            "unknown message type",
        ),
        (
            vec![br#"{"type":"start","frames":1,"shape":[4,4],"dtype":"complex64"}"#.to_vec()],
            StreamErrorKind::Unsupported,
            "complex64",
        ),
        (
            vec![br#"{"type":"start","frames":1,"shape":[100000,100000],"dtype":"uint64"}"#.to_vec()],
            StreamErrorKind::Limit,
            "over the",
        ),
        (start_msg(2), StreamErrorKind::Usage, ""), // valid: accepted
        (
            vec![br#"{"type":"image","frame":0}"#.to_vec(), vec![0; 15]],
            StreamErrorKind::Malformed,
            "15 data bytes",
        ),
        (
            vec![vec![0xa1, 0x64]],
            StreamErrorKind::Malformed,
            "CBOR: text string of 4 at byte 1",
        ),
        (
            vec![vec![0xa1, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]],
            StreamErrorKind::Malformed,
            "longer than",
        ),
        (
            vec![cbor("a1 64 74797065 01")],
            StreamErrorKind::Malformed,
            "without a text",
        ),
        (
            vec![cbor(
                "a46474797065657374617274706e756d6265725f6f665f696d61676573016c696d6167655f73697a655f78026c696d6167655f73697a655f7901",
            )],
            StreamErrorKind::Usage,
            "",
        ), // a valid V2 start
        (
            vec![v2_image(0x41, &[0, 1, 0, 2])],
            StreamErrorKind::Unsupported,
            "typed-array tag 65",
        ),
        (
            vec![v2_image(0x45, &[1, 0, 2])],
            StreamErrorKind::Malformed,
            "3 data bytes",
        ),
        (
            vec![v2_image(0x45, &[1, 0, 2, 0]), vec![1]],
            StreamErrorKind::Malformed,
            "2 parts",
        ),
    ];
    let th = {
        let msgs: Vec<Vec<Vec<u8>>> = bad.iter().map(|b| b.0.clone()).collect();
        std::thread::spawn(move || {
            for m in msgs {
                let parts: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
                tx.send_raw(&parts).unwrap();
            }
            // a corrupt bslz4 payload in a valid V2 image
            let mut img = v2_image(0x45, &[]);
            img.truncate(img.len() - 1);
            let mut c = tiledio_ptycho::declared_size(&[0; 12]).map(|_| Vec::new()).unwrap();
            c.extend(4u64.to_be_bytes());
            c.extend(8192u32.to_be_bytes());
            c.extend([9, 9, 9]); // 2 elements: a raw tail of 4 bytes expected, 3 given
            img.extend([0xd9, 0xdc, 0xb4, 0x83, 0x65]);
            img.extend(b"bslz4");
            img.extend([0x02, 0x40 | c.len() as u8]);
            img.extend(&c);
            tx.send_raw(&[&img]).unwrap();
            tx.send_raw(&[&v2_image(0x45, &[1, 0, 2, 0])]).unwrap();
            tx
        })
    };
    for (i, (_, kind, text)) in bad.iter().enumerate() {
        match rx.recv() {
            Ok(m) => assert!(text.is_empty(), "message {i} decoded: {m:?}"),
            Err(e) => {
                assert_eq!(e.kind, *kind, "message {i}: {e}");
                assert!(e.to_string().contains(text), "message {i}: {e}");
                assert!(e.to_string().contains(&format!("message {i}:")), "{e}");
            }
        }
    }
    let e = rx.recv().unwrap_err();
    assert!(e.to_string().contains("Bslz4 payload"), "{e}");
    // and the receiver still decodes the next good message
    match rx.recv().unwrap() {
        Message::Image { data, shape, .. } => assert_eq!((shape, data.bytes()), ((1, 2), &[1u8, 0, 2, 0][..])),
        m => panic!("{m:?}"),
    }
    drop(th.join().unwrap());
}

/// A raw TCP peer speaking our greeting and READY as `kind`.
fn raw_peer(ep: &str, kind: &str) -> TcpStream {
    let addr = ep.trim_start_matches("tcp://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    s.write_all(&g).unwrap();
    let mut r = [0u8; 64];
    s.read_exact(&mut r).unwrap();
    let mut cmd = vec![5u8];
    cmd.extend(b"READY");
    cmd.push(11);
    cmd.extend(b"Socket-Type");
    cmd.extend((kind.len() as u32).to_be_bytes());
    cmd.extend(kind.as_bytes());
    s.write_all(&[4, cmd.len() as u8]).unwrap();
    s.write_all(&cmd).unwrap();
    s
}

/// Runs `peer` on a thread against `rx`'s endpoint and returns the error `rx` receives (after
/// the peer has finished).
fn error_from_peer(rx: &mut Receiver, peer: impl FnOnce(String) + Send + 'static) -> StreamError {
    let ep = rx.endpoint().to_string();
    let th = std::thread::spawn(move || peer(ep));
    let e = rx.recv().unwrap_err();
    th.join().unwrap();
    e
}

#[test]
fn protocol_errors_limits_disconnects_and_timeouts() {
    // nothing connects: a timeout, not a hang
    let mut o = ReceiverOptions {
        socket: opts(200),
        ..ReceiverOptions::default()
    };
    let mut rx = Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), o.clone()).unwrap();
    let t = Instant::now();
    assert_eq!(rx.recv().unwrap_err().kind, StreamErrorKind::Timeout);
    assert!(t.elapsed() < Duration::from_secs(5));
    // connecting to nothing: a timeout too
    let ep = format!("tcp://127.0.0.1:{}", tiledio_test_support::net::free_tcp_port());
    let mut c = Receiver::new(&Endpoint::Connect(ep), o.clone()).unwrap();
    assert_eq!(c.recv().unwrap_err().kind, StreamErrorKind::Timeout);
    // a declared frame over the limit: an error, not an allocation
    o.socket.max_frame = 1 << 20;
    let mut rx = Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), o.clone()).unwrap();
    // (then, on the same receiver) a peer that disconnects mid-message; the wrong socket type;
    // reserved flag bits. Each: (socket type, bytes sent, stays connected a while, the error).
    let cases = [
        (
            "PUSH",
            [&[2u8][..], &(1u64 << 62).to_be_bytes()].concat(),
            true,
            StreamErrorKind::Limit,
            "4611686018427387904 bytes (limit 1048576)",
        ),
        ("PUSH", vec![0, 100, 1, 2, 3], false, StreamErrorKind::Disconnected, ""),
        (
            "PULL",
            vec![],
            true,
            StreamErrorKind::Protocol,
            "a PULL socket cannot talk to a PULL socket",
        ),
        ("PUSH", vec![0x80, 1, 0], true, StreamErrorKind::Protocol, ""),
    ];
    for (kind, bytes, linger, want, msg) in cases {
        let e = error_from_peer(&mut rx, move |ep| {
            let mut s = raw_peer(&ep, kind);
            s.write_all(&bytes).unwrap();
            if linger {
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        assert_eq!(e.kind, want, "{e}");
        assert!(e.to_string().contains(msg), "{e}");
    }
    // a bad greeting
    let e = error_from_peer(&mut rx, |ep| {
        let mut s = TcpStream::connect(ep.trim_start_matches("tcp://")).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n and some more bytes to fill a greeting.......")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    assert_eq!(e.kind, StreamErrorKind::Protocol);
    // after all that, a good peer is served
    let ep = Endpoint::Connect(rx.endpoint().into());
    let frames = random_frames(2, 8, 8, ElementType::U8, 1);
    let f2 = frames.clone();
    let th = std::thread::spawn(move || {
        let mut tx = sender(ep, WireFormat::Tiledio, Compression::None);
        send_series(&mut tx, &f2, (8, 8), ElementType::U8)
    });
    rx.recv().ok(); // (a leftover timeout is fine)
    th.join().unwrap().unwrap();
}

#[test]
fn a_slow_consumer_slows_the_sender_and_loses_nothing() {
    let mut rx = listen_rx();
    let shape = (1024, 1024);
    let n = 24;
    let frames = random_frames(2, shape.0, shape.1, ElementType::U32, 5);
    let mut tx = sender(
        Endpoint::Connect(rx.endpoint().into()),
        WireFormat::Tiledio,
        Compression::None,
    );
    let f2 = frames.clone();
    let th = std::thread::spawn(move || {
        let t = Instant::now();
        send_each(&mut tx, n, shape, ElementType::U32, |i| (&f2[i as usize % 2], 0.0, 0.0))?;
        Ok::<Duration, StreamError>(t.elapsed())
    });
    rx.recv().unwrap();
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(25));
        match rx.recv().unwrap() {
            Message::Image { frame, data, .. } => {
                assert_eq!(frame, i);
                assert!(data.bytes() == &frames[i as usize % 2][..]);
            }
            m => panic!("{m:?}"),
        }
    }
    assert_eq!(rx.recv().unwrap(), Message::End);
    let sent_in = th.join().unwrap().unwrap();
    // 24 x 4 MiB cannot all sit in socket buffers: the sender waited for the consumer
    assert!(sent_in > Duration::from_millis(250), "sender finished in {sent_in:?}");
}

#[test]
fn a_rate_limited_sender_keeps_its_rate() {
    let mut rx = listen_rx();
    let mut o = SenderOptions::new(WireFormat::StreamV2);
    o.rate = Some(100.0);
    let mut tx = Sender::new(&Endpoint::Connect(rx.endpoint().into()), o).unwrap();
    let th = std::thread::spawn(move || {
        let t = Instant::now();
        send_each(&mut tx, 21, (4, 4), ElementType::U8, |_| ([0u8; 16], 0.0, 0.0))?;
        Ok::<Duration, StreamError>(t.elapsed())
    });
    for _ in 0..23 {
        rx.recv().unwrap();
    }
    let d = th.join().unwrap().unwrap();
    assert!(d >= Duration::from_millis(195) && d < Duration::from_secs(2), "{d:?}");
}

/// Loopback throughput of 8 MiB messages, Rust → Rust (release mode:
/// `cargo test --release -p tiledio-ptycho --test stream -- --ignored --nocapture loopback`).
#[test]
#[ignore = "a measurement, not a check"]
fn loopback_throughput_8mib() {
    let n = 2000u64;
    let frame = random_frames(1, 2048, 2048, ElementType::U16, 3).remove(0);
    let mut rx = listen_rx();
    let mut tx = sender(
        Endpoint::Connect(rx.endpoint().into()),
        WireFormat::Tiledio,
        Compression::None,
    );
    let th = std::thread::spawn(move || {
        send_each(&mut tx, n, (2048, 2048), ElementType::U16, |_| (&frame, 0.0, 0.0)).unwrap();
    });
    rx.recv().unwrap();
    let mut t0 = Instant::now();
    for i in 0..n {
        let Message::Image { frame, data, .. } = rx.recv().unwrap() else {
            panic!()
        };
        assert_eq!(frame, i);
        if i == 0 {
            t0 = Instant::now();
        }
        rx.recycle(data);
    }
    let dt = t0.elapsed().as_secs_f64();
    th.join().unwrap();
    println!(
        "rust -> rust: {:.0} frames/s of 8 MiB, {:.0} MB/s",
        (n - 1) as f64 / dt,
        (n - 1) as f64 * 8.0 * 1048576.0 / dt / 1e6
    );
    let ep = format!("tcp://127.0.0.1:{}", tiledio_test_support::net::free_tcp_port());
    let o = run_python(PEER, &["bench", &ep, "2000", &(8 << 20).to_string()]);
    println!("pyzmq -> pyzmq: {}", String::from_utf8_lossy(&o.stdout).trim());
    let _ = SocketType::Pull;
    let _: Option<Socket> = None;
}
