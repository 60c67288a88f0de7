//! A live ptychography stream end to end, in one process: how long a frame takes from the
//! detector to the reconstruction's loader, and how many frames a second get through.
//!
//! Three threads and the pipeline, all talking ZeroMQ over the loopback, as they would across
//! machines:
//!
//! 1. **detector**: a [`tiledio::ptycho::stream::Sender`] sends simulated frames
//!    ([`tiledio::ptycho::simulate`]: a test object, a Fermat-spiral scan, Poisson noise, a
//!    dark map; made before the clock starts) in tiledio JSON or DECTRIS Stream V2, optionally
//!    compressed, optionally at a fixed rate;
//! 2. **pipeline** (this thread): [`tiledio::ptycho::stream::run_pipeline`] receives them,
//!    subtracts the simulator's dark map, crops and bins them in batches (GPU when there is
//!    one) and hands them to a [`tiledio::ptycho::stream::Publisher`];
//! 3. **loader**: a PtyPy `DiamondZMQLoader` stand-in asks the publisher's metadata socket
//!    for `Start` and pulls `[frame, posx, posy]` messages.
//!
//! It prints frames/s and per-frame latency percentiles (p50/p90/p99) from the moment a frame
//! is handed to the sender to the moment the loader has it, the pipeline's own report
//! (arrival → published), and checks every frame the loader got against the CPU preprocessor
//! run on the same frames in this process.
//!
//! ```sh
//! cargo run --release --example ptycho_stream -- --frames 200
//! cargo run --release --example ptycho_stream -- --frames 1000 --shape 512,512 --crop 256 --wire stream-v2 --compression bslz4 --rate 500
//! cargo run --release --example ptycho_stream -- --help
//! ```

use rayon::prelude::*;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tiledio::io::ElementType;
use tiledio::ptycho::simulate::{Simulation, SimulationOptions};
use tiledio::ptycho::stream::zmtp::{Socket, SocketOptions, SocketType};
use tiledio::ptycho::stream::{
    Compression, Endpoint, PipelineOptions, Publisher, Receiver, ReceiverOptions, Sender, SenderOptions, Sinks,
    WireFormat, run_pipeline,
};
use tiledio::ptycho::{BatchPreprocessor, Device, PreprocessOptions};

const USAGE: &str = "\
ptycho_stream: a simulated detector -> ZeroMQ -> run_pipeline -> PtyPy publisher -> a loader,
in one process; prints frames/s and per-frame latency percentiles.

Usage: cargo run --release --example ptycho_stream -- [OPTIONS]

Options:
  --frames N            frames to send [default: 200]
  --shape H,W           detector frame shape [default: 256,256]
  --pattern D           diffraction pattern side [default: a quarter of the smaller side]
  --crop S              crop side [default: half the smaller side]
  --bin B               bin factor [default: 2]
  --batch N             frames per preprocessing batch [default: 16]
  --wire json|stream-v2 wire format [default: json]
  --compression none|bslz4|lz4
                        Stream V2 image compression [default: none]
  --rate FPS            send at this rate [default: as fast as the pipeline takes them]
  --device auto|gpu|cpu where the kernel runs [default: auto]
  -h, --help            this text";

struct Args {
    frames: u64,
    shape: (usize, usize),
    pattern: Option<usize>,
    crop: Option<usize>,
    bin: usize,
    batch: usize,
    wire: WireFormat,
    compression: Compression,
    rate: Option<f64>,
    device: Device,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        frames: 200,
        shape: (256, 256),
        pattern: None,
        crop: None,
        bin: 2,
        batch: 16,
        wire: WireFormat::Tiledio,
        compression: Compression::None,
        rate: None,
        device: Device::Auto,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<usize>().map_err(|_| format!("{flag}: not a number: {v:?}"));
        match flag.as_str() {
            "--frames" => a.frames = num(&v)? as u64,
            "--shape" => {
                let (h, w) = v
                    .split_once(',')
                    .ok_or_else(|| format!("--shape: expected H,W, got {v:?}"))?;
                a.shape = (num(h)?, num(w)?);
            }
            "--pattern" => a.pattern = Some(num(&v)?),
            "--crop" => a.crop = Some(num(&v)?),
            "--bin" => a.bin = num(&v)?,
            "--batch" => a.batch = num(&v)?.max(1),
            "--wire" => {
                a.wire = match v.as_str() {
                    "json" => WireFormat::Tiledio,
                    "stream-v2" => WireFormat::StreamV2,
                    _ => return Err(format!("--wire: json or stream-v2, not {v:?}")),
                }
            }
            "--compression" => {
                a.compression = match v.as_str() {
                    "none" => Compression::None,
                    "bslz4" => Compression::Bslz4,
                    "lz4" => Compression::Lz4,
                    _ => return Err(format!("--compression: none, bslz4 or lz4, not {v:?}")),
                }
            }
            "--rate" => {
                let r: f64 = v.parse().map_err(|_| format!("--rate: not a number: {v:?}"))?;
                if !(r.is_finite() && r > 0.0) {
                    return Err(format!("--rate {r} is not a positive number of frames/s"));
                }
                a.rate = Some(r);
            }
            "--device" => {
                a.device = match v.as_str() {
                    "auto" => Device::Auto,
                    "gpu" => Device::Gpu,
                    "cpu" => Device::Cpu,
                    _ => return Err(format!("--device: auto, gpu or cpu, not {v:?}")),
                }
            }
            _ => return Err(format!("unknown option {flag:?} (--help lists them)")),
        }
    }
    if a.frames == 0 {
        return Err("--frames must be at least 1".into());
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(Some(a)) => match run(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ptycho_stream: error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ptycho_stream: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The value at percentile `p` of sorted `v` (nearest rank).
fn percentile(v: &[Duration], p: f64) -> Duration {
    let i = ((v.len() as f64 * p / 100.0).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let (h, w) = a.shape;
    let n = a.frames;
    let pattern = a.pattern.unwrap_or((h.min(w) / 4).max(8));
    let crop = a.crop.unwrap_or(h.min(w) / 2);
    let mut so = SimulationOptions::new(n, a.shape, pattern);
    so.photons = 1e6;
    let sim = Simulation::new(&so)?;
    let px = h * w;
    // the frames, as the detector would send them (little-endian u16), made before the clock
    let t = Instant::now();
    let mut frames = vec![0u8; n as usize * px * 2];
    frames
        .par_chunks_mut(px * 2)
        .enumerate()
        .try_for_each(|(i, dst)| -> tiledio::ptycho::Result<()> {
            let (f, _) = sim.frame(i as u64)?;
            for (d, v) in dst.chunks_exact_mut(2).zip(f) {
                d.copy_from_slice(&v.to_le_bytes());
            }
            Ok(())
        })?;
    println!(
        "simulated {n} frames of {h}x{w} u16 (pattern {pattern}) in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let mut opts = PreprocessOptions::new(crop, a.bin);
    opts.batch = a.batch;
    opts.device = a.device;
    let dark = sim.dark_map().to_vec();
    let sock = SocketOptions {
        timeout: Some(Duration::from_secs(30)),
        ..SocketOptions::default()
    };
    let rx = Receiver::new(
        &Endpoint::Listen("tcp://127.0.0.1:*".into()),
        ReceiverOptions {
            socket: sock.clone(),
            channel: None,
        },
    )?;
    let mut publisher = Publisher::bind("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", sock.clone())?;
    let (meta_ep, data_ep) = (
        publisher.meta_endpoint().to_string(),
        publisher.data_endpoint().to_string(),
    );
    let mut so = SenderOptions::new(a.wire);
    so.socket = sock.clone();
    so.compression = a.compression;
    let mut tx = Sender::new(&Endpoint::Connect(rx.endpoint().to_string()), so)?;
    // when each frame was handed to the sender
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));

    let report = std::thread::scope(|s| -> Result<_, Box<dyn std::error::Error>> {
        let sent_w = sent.clone();
        let frames = &frames;
        let positions = sim.positions();
        let rate = a.rate;
        let detector = s.spawn(move || -> Result<(), tiledio::ptycho::stream::StreamError> {
            tx.start(n, (h, w), ElementType::U16)?;
            let t0 = Instant::now();
            for (i, f) in frames.chunks(px * 2).enumerate() {
                if let Some(r) = rate {
                    let due = t0 + Duration::from_secs_f64(i as f64 / r);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                sent_w.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
                let (x, y) = positions[i];
                tx.image(i as u64, x, y, f)?;
            }
            tx.end()
        });
        let sock = sock.clone();
        let loader = s.spawn(
            move || -> Result<(Vec<u8>, Vec<Instant>), tiledio::ptycho::stream::StreamError> {
                let mut req = Socket::open(SocketType::Req, &Endpoint::Connect(meta_ep), sock.clone())?;
                req.send_multipart(&[b"Start"])?;
                let mut parts = Vec::new();
                req.recv_multipart(&mut parts)?; // a pickled {"dtype", "shape"}
                let mut pull = Socket::open(SocketType::Pull, &Endpoint::Connect(data_ep), sock)?;
                let (mut got, mut when) = (Vec::new(), Vec::with_capacity(n as usize));
                for _ in 0..n {
                    pull.recv_multipart(&mut parts)?;
                    when.push(Instant::now());
                    got.extend_from_slice(&parts[0]);
                }
                req.send_multipart(&[b"Stop"])?;
                req.recv_multipart(&mut parts)?;
                Ok((got, when))
            },
        );
        let sinks = Sinks {
            zarr: None,
            publisher: Some(&mut publisher),
        };
        let report = run_pipeline(
            rx,
            &opts,
            Some(&dark),
            sinks,
            &PipelineOptions::default(),
            &mut |_, _| {},
        );
        let d = detector.join().map_err(|_| "the detector thread panicked")?;
        let l = loader.join().map_err(|_| "the loader thread panicked")?;
        let report = report?;
        d?;
        Ok((report, l?))
    })?;
    let (report, (got, received)) = report;
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();

    // the loader's frames against the CPU preprocessor on the same frames
    let mut cpu = opts.clone();
    cpu.device = Device::Cpu;
    let pre = BatchPreprocessor::new((h, w), ElementType::U16, Some(&dark), &cpu)?;
    let rows = pre.rows();
    let row_bytes = w * 2;
    let mut input = Vec::with_capacity(n as usize * rows.len() * row_bytes);
    for f in frames.chunks(px * 2) {
        input.extend_from_slice(&f[rows.start * row_bytes..rows.end * row_bytes]);
    }
    let mut want = vec![0u8; n as usize * pre.params().out_frame_bytes()];
    pre.run_host(&input, n as usize, &mut want)?;
    let equal = got == want;

    let mut lat: Vec<Duration> = sent.iter().zip(&received).map(|(s, r)| *r - *s).collect();
    lat.sort();
    let span = received.last().copied().unwrap_or(sent[0]) - sent[0];
    let side = report.side;
    println!(
        "{} of {} frames {h}x{w} -> crop {crop}, bin {} -> {side}x{side} {}, batches of {}, on the {}, wire {}{}",
        report.frames,
        report.expected,
        a.bin,
        report.dtype.element_type(),
        a.batch,
        if report.gpu { "GPU" } else { "CPU" },
        match a.wire {
            WireFormat::Tiledio => "tiledio JSON",
            WireFormat::StreamV2 => "Stream V2",
        },
        match a.compression {
            Compression::None => "",
            Compression::Bslz4 => " (bslz4)",
            Compression::Lz4 => " (lz4)",
        },
    );
    println!(
        "sender -> loader: {:.1} frames/s, latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        n as f64 / span.as_secs_f64().max(1e-9),
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 90.0)),
        ms(percentile(&lat, 99.0)),
        ms(lat.last().copied().unwrap_or_default()),
    );
    println!(
        "pipeline (arrival -> published): {:.1} frames/s, latency p50 {:.2} ms, p99 {:.2} ms",
        report.fps,
        ms(report.latency_p50),
        ms(report.latency_p99),
    );
    println!(
        "loader's frames {} the CPU preprocessor's",
        if equal { "equal" } else { "DIFFER FROM" }
    );
    if !equal {
        return Err("the published frames differ from the CPU preprocessor's".into());
    }
    Ok(())
}
