//! `tiledio ptycho preprocess|stream|simulate`: argument parsing, stores opened from their
//! command-line spelling, progress bars and reports around [`tiledio::ptycho`], where the
//! work is done.
//!
//! A frame store is named as follows (STACK, `--dark`, `--flat`, `--mask`):
//!
//! - `FILE.h5:/path/to/dataset` (any file name, split at the last `:/`): an HDF5 dataset;
//! - `FILE.h5` / `.hdf5` / `.nxs` / `.cxi` alone: `SCAN_master.h5` as a DECTRIS Eiger master,
//!   any other file at `/entry/data/data`;
//! - `FILE.npy`: NumPy `(N, H, W)` or `(H, W)`;
//! - a folder (`x.zarr`): a 3-D Zarr array;
//! - anything else: a raw stack, described by `--raw-shape H,W` (and `--raw-dtype`,
//!   `--raw-header`, `--raw-stride`, `--raw-frames`), the same description for every raw file
//!   of the command.

use crate::opts::{BackendArg, DeviceArg, Placement};
use anyhow::{anyhow, bail, ensure};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tiledio::io::{ElementType, OutputKind, check_output};
use tiledio::ptycho::simulate::{Simulation, SimulationOptions};
use tiledio::ptycho::stream::zmtp::SocketOptions;
use tiledio::ptycho::stream::{
    Compression, Endpoint, GapPolicy, PipelineOptions, Publisher, Receiver, ReceiverOptions, Sender, SenderOptions,
    Sinks, WireFormat, run_pipeline_parallel,
};
use tiledio::ptycho::{
    Center, ClampOrder, FrameStore, Orientation, Output, OutputType, PreprocessOptions, RawLayout, Reduce, StoreKind,
    dark_frame, preprocess, store_kind, store_path,
};

/// The `tiledio ptycho` subcommands.
#[derive(Subcommand)]
pub(crate) enum PtychoCommand {
    /// Preprocess a frame stack (dark, crop, flat, mask, rebin, orientation, output type) into
    /// a Zarr array of shape (N, S/B, S/B), batch by batch on the GPU or the CPU.
    ///
    /// STACK, --dark, --flat and --mask are frame stores: FILE.h5:/entry/data/data (an HDF5
    /// dataset), SCAN_master.h5 (a DECTRIS Eiger master), x.npy, x.zarr (a 3-D Zarr array), or
    /// a raw file described by --raw-shape H,W [--raw-dtype] [--raw-header] [--raw-stride].
    /// A dark, flat or mask stack is averaged (mean) over its frames.
    #[command(after_help = "\
Examples:
  tiledio ptycho preprocess scan_master.h5 --dark dark.npy --crop 256 --bin 2 --center auto --out scan.zarr
  tiledio ptycho preprocess scan.raw --raw-shape 1024,1024 --crop 512 --bin 2 --device cpu --out frames.zarr")]
    Preprocess(PreprocessArgs),
    /// Receive live frames over ZeroMQ (tiledio JSON or DECTRIS Stream V2, recognised per
    /// message), preprocess them in batches and write a Zarr array and/or publish them to
    /// PtyPy's DiamondZMQLoader, until the series' end message; then print frames, frames
    /// lost, frames/s and latency.
    #[command(after_help = "\
Examples:
  tiledio ptycho stream --connect tcp://dcu:31001 --dark dark.npy --crop 256 --bin 2 --out scan.zarr --publish-meta tcp://*:5553 --publish-data tcp://*:5552
  tiledio ptycho stream --listen tcp://0.0.0.0:5555 --crop 512 --bin 2 --out live.zarr")]
    Stream(StreamArgs),
    /// Simulate a ptychography detector (a test object, a defocused probe, a Fermat-spiral
    /// scan, Poisson noise, a dark map and read noise; u16 frames) and write the stack (.npy,
    /// raw or Zarr), dark frames and scan positions, or stream the frames to a receiver.
    #[command(after_help = "\
Examples:
  tiledio ptycho simulate --out scan.npy --frames 200 --shape 512,512 --pattern 128 --dark dark.npy --positions pos.npy
  tiledio ptycho simulate --send tcp://127.0.0.1:5555 --wire stream-v2 --compression bslz4 --rate 1000")]
    Simulate(SimulateArgs),
}

/// How raw stacks lie in their files (shared by every raw store of a command).
#[derive(Args, Clone)]
pub(crate) struct RawArgs {
    /// Raw stacks: frame shape H,W (needed to read a raw file).
    #[arg(long, value_name = "H,W", value_parser = parse_pair::<usize>)]
    raw_shape: Option<(usize, usize)>,
    /// Raw stacks: element type (NumPy name, little-endian in the file).
    #[arg(long, value_name = "TYPE", default_value = "uint16")]
    raw_dtype: ElementType,
    /// Raw stacks: bytes before the first frame.
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    raw_header: u64,
    /// Raw stacks: bytes from one frame's start to the next [default: the frame size].
    #[arg(long, value_name = "BYTES")]
    raw_stride: Option<u64>,
    /// Raw stacks: frame count [default: as many whole frames as the file holds].
    #[arg(long, value_name = "N")]
    raw_frames: Option<u64>,
}

/// Where the crop is centred, as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CenterArg {
    Frame,
    At(i64, i64),
    Auto(u64),
}

/// Frames `--center auto` looks at by default.
const AUTO_CENTER_FRAMES: u64 = 32;

fn parse_center(s: &str) -> Result<CenterArg, String> {
    match s {
        "frame" => Ok(CenterArg::Frame),
        "auto" => Ok(CenterArg::Auto(AUTO_CENTER_FRAMES)),
        _ => {
            if let Some(n) = s.strip_prefix("auto:") {
                return match n.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(CenterArg::Auto(n)),
                    _ => Err(format!("expected auto:N with N > 0 frames, got {s:?}")),
                };
            }
            parse_pair::<i64>(s)
                .map(|(y, x)| CenterArg::At(y, x))
                .map_err(|_| format!("expected Y,X, frame, auto or auto:N, got {s:?}"))
        }
    }
}

fn parse_pair<T: std::str::FromStr>(s: &str) -> Result<(T, T), String> {
    let v: Vec<&str> = s.split(',').map(str::trim).collect();
    match v[..] {
        [a, b] => match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(format!("expected two numbers A,B, got {s:?}")),
        },
        _ => Err(format!("expected two numbers A,B, got {s:?}")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ReduceArg {
    Sum,
    Mean,
}

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    F32,
    U32,
    U16,
}

/// The preprocessing options `preprocess` and `stream` share.
#[derive(Args)]
pub(crate) struct KernelArgs {
    /// Dark frames (a store; a stack is averaged), subtracted from every frame.
    #[arg(long, value_name = "STORE")]
    dark: Option<String>,
    /// Crop side S in detector pixels (a multiple of --bin).
    #[arg(long, value_name = "S")]
    crop: usize,
    /// Bin factor B: the output frames are S/B x S/B.
    #[arg(long, value_name = "B")]
    bin: usize,
    /// Crop centre: Y,X in frame pixels, `frame` (H/2, W/2), or (preprocess only) `auto`
    /// (the centre of mass of the first 32 dark-subtracted frames) or `auto:N` (of N frames).
    #[arg(long, value_name = "Y,X|frame|auto[:N]", default_value = "frame", value_parser = parse_center, allow_hyphen_values = true)]
    center: CenterArg,
    /// How a bin's B x B pixels are combined: sum (Diamond I08-1) or mean (PtyPy's rebin_2d).
    #[arg(long, value_enum, default_value = "sum")]
    reduce: ReduceArg,
    /// Clamp each dark-subtracted pixel to 0 before binning (I08-1's order; the default).
    #[arg(long, conflicts_with = "bin_then_clamp")]
    clamp_then_bin: bool,
    /// Clamp the binned value to 0 instead (noise around the dark level averages out first).
    #[arg(long)]
    bin_then_clamp: bool,
    /// Orientation of the output frames as PtyPy's 0-7: 4 transpose, 2 flip up-down, 1 flip
    /// left-right (applied in that order).
    #[arg(long, value_name = "0-7", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..8))]
    orientation: u8,
    /// Output element type (u32/u16 are rounded half to even and saturate, counted).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Where the kernel runs: auto (the GPU if there is one, else the CPU, saying why), gpu,
    /// cpu.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Flat field (a store; a stack is averaged): frames are divided by it (pixels <= 0 count
    /// as bad).
    #[arg(long, value_name = "STORE")]
    flat: Option<String>,
    /// Bad-pixel mask (a store; nonzero = bad, a stack is averaged first): bad pixels add
    /// nothing to their bin.
    #[arg(long, value_name = "STORE")]
    mask: Option<String>,
    /// Frames per batch (one read and one kernel launch each).
    #[arg(long, value_name = "N", default_value_t = 64)]
    batch: usize,
    #[command(flatten)]
    raw: RawArgs,
}

/// `tiledio ptycho preprocess`.
#[derive(Args)]
pub(crate) struct PreprocessArgs {
    /// The frame stack (a store: FILE.h5:/entry/data/data, SCAN_master.h5, x.npy, x.zarr, raw).
    #[arg(value_name = "STACK")]
    stack: String,
    #[command(flatten)]
    kernel: KernelArgs,
    /// The output Zarr array (N, S/B, S/B); must not exist (or be an empty folder).
    #[arg(long, value_name = "OUT.zarr")]
    out: PathBuf,
    /// How the stack's bytes reach GPU memory: auto (chosen per file, the reason reported),
    /// cufile, staged, mmap; host reads into host memory, so the kernel runs on the CPU. Sets
    /// TILEDIO_BACKEND for this run [default: auto, or TILEDIO_BACKEND].
    #[arg(long, value_enum, value_name = "BACKEND")]
    backend: Option<BackendArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum GapsArg {
    /// A missing frame is an error.
    Error,
    /// Missing frames are counted as lost (the Zarr array keeps its fill value there).
    Record,
}

/// `tiledio ptycho stream`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("endpoint").required(true).args(["listen", "connect"]))]
pub(crate) struct StreamArgs {
    /// Bind a PULL socket here and wait for a sender: tcp://HOST:PORT (PORT * picks one),
    /// tcp://*:PORT, ipc:///path.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Connect a PULL socket to a sender that listens (a DECTRIS detector does).
    #[arg(long, value_name = "ADDR")]
    connect: Option<String>,
    /// Receive on N connections at once, each read and decoded on its own thread, frames
    /// merged back into order: with --connect, N sockets to the same sender (a PUSH socket
    /// hands its Stream V2 messages round-robin to them); with --listen, N sockets on N ports
    /// (give PORT as * to have them picked), one per sender, each sending its own start.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,
    #[command(flatten)]
    kernel: KernelArgs,
    /// Write the preprocessed frames to this new Zarr array (N, S/B, S/B), complete only when
    /// the series is.
    #[arg(long, value_name = "OUT.zarr")]
    out: Option<PathBuf>,
    /// Serve PtyPy's DiamondZMQLoader: its metadata (REP) endpoint, bound here.
    #[arg(long, value_name = "ADDR", requires = "publish_data")]
    publish_meta: Option<String>,
    /// Serve PtyPy's DiamondZMQLoader: its data (PUSH) endpoint, bound here.
    #[arg(long, value_name = "ADDR", requires = "publish_meta")]
    publish_data: Option<String>,
    /// Seconds any one wait may last (for the sender, a message, the loader); 0 waits for ever.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
    /// Stream V2: the channel to read [default: the first].
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
    /// Missing frames: an error, or recorded and reported as lost.
    #[arg(long, value_enum, default_value = "error")]
    gaps: GapsArg,
    /// Frames received but not yet preprocessed, at most [default: twice --batch].
    #[arg(long, value_name = "N", default_value_t = 0)]
    queue: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Npy,
    Raw,
    Zarr,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WireArg {
    /// tiledio's multipart JSON header + raw frame.
    Json,
    /// DECTRIS Stream V2 (CBOR).
    StreamV2,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CompressionArg {
    None,
    Bslz4,
    Lz4,
}

/// `tiledio ptycho simulate`.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["out", "send"]))]
pub(crate) struct SimulateArgs {
    /// Write the frames here: .npy, .zarr (a new folder) or a raw file (.raw, .bin, .dat: N
    /// frames of H x W little-endian u16, no header).
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// The format of --out [default: from its extension].
    #[arg(long, value_enum, requires = "out")]
    format: Option<FormatArg>,
    /// Send the frames to a receiver at ADDR (tcp://HOST:PORT, ipc:///path) instead.
    #[arg(long, value_name = "ADDR")]
    send: Option<String>,
    /// With --send: bind ADDR and wait for the receiver to connect (as a detector does)
    /// instead of connecting to it.
    #[arg(long, requires = "send")]
    bind: bool,
    /// With --send: the wire format.
    #[arg(long, value_enum, default_value = "json", requires = "send")]
    wire: WireArg,
    /// With --send --wire stream-v2: compression of the images.
    #[arg(long, value_enum, default_value = "none", requires = "send")]
    compression: CompressionArg,
    /// With --send: frames per second [default: as fast as the receiver takes them].
    #[arg(long, value_name = "FPS", requires = "send")]
    rate: Option<f64>,
    /// With --send: seconds any one wait may last (for the receiver, for it to take a frame);
    /// 0 waits for ever.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, requires = "send")]
    timeout: f64,
    /// Number of frames (scan positions).
    #[arg(long, value_name = "N", default_value_t = 100)]
    frames: u64,
    /// Detector frame shape H,W.
    #[arg(long, value_name = "H,W", default_value = "1024,1024", value_parser = parse_pair::<usize>)]
    shape: (usize, usize),
    /// Side D of the diffraction pattern (and of the probe window) [default: a quarter of the
    /// frame's smaller side, at least 8].
    #[arg(long, value_name = "D")]
    pattern: Option<usize>,
    /// Where the pattern's zero frequency lies in the frame, Y,X [default: the frame centre].
    #[arg(long, value_name = "Y,X", value_parser = parse_pair::<i64>, allow_hyphen_values = true)]
    center: Option<(i64, i64)>,
    /// Mean photon count of one whole pattern.
    #[arg(long, value_name = "P", default_value_t = 1e6)]
    photons: f64,
    /// Mean dark level in counts.
    #[arg(long, value_name = "COUNTS", default_value_t = 100.0)]
    dark_level: f64,
    /// Standard deviation of the Gaussian read noise in counts.
    #[arg(long, value_name = "COUNTS", default_value_t = 2.0)]
    read_noise: f64,
    /// Seed of everything random (object, dark map, noise): the same seed, the same frames.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Linear overlap of neighbouring probe positions, in (0, 1).
    #[arg(long, value_name = "O", default_value_t = 0.7)]
    overlap: f64,
    /// Geometric probe diameter in object pixels [default: D/4].
    #[arg(long, value_name = "PX")]
    probe_diameter: Option<f64>,
    /// Radius of the bright-field disc in detector pixels [default: D/8].
    #[arg(long, value_name = "PX")]
    aperture: Option<f64>,
    /// Size of an object pixel in metres (for the positions in a Zarr output's attributes).
    #[arg(long, value_name = "METRES", default_value_t = 10e-9)]
    pixel_size: f64,
    /// Also write dark frames (the dark map plus read noise) as a .npy (n, H, W) of u16.
    #[arg(long, value_name = "PATH.npy")]
    dark: Option<PathBuf>,
    /// How many dark frames --dark writes.
    #[arg(long, value_name = "N", default_value_t = 16, requires = "dark")]
    dark_frames: u64,
    /// Also write the scan positions as a .npy (N, 2) of f64: x, y in object pixels per
    /// frame (the positions --send puts in each image message too).
    #[arg(long, value_name = "PATH.npy")]
    positions: Option<PathBuf>,
}

impl PtychoCommand {
    /// The `--backend` given, if any.
    pub(crate) fn backend(&self) -> Option<BackendArg> {
        match self {
            PtychoCommand::Preprocess(a) => a.backend,
            _ => None,
        }
    }
}

/// Runs a `tiledio ptycho` subcommand.
pub(crate) fn run(cmd: PtychoCommand) -> anyhow::Result<()> {
    match cmd {
        PtychoCommand::Preprocess(a) => run_preprocess(&a),
        PtychoCommand::Stream(a) => run_stream(&a),
        PtychoCommand::Simulate(a) => run_simulate(&a),
    }
}

impl RawArgs {
    /// The raw layout these options describe, when `--raw-shape` was given.
    fn layout(&self) -> Option<RawLayout> {
        let shape = self.raw_shape?;
        let mut l = RawLayout::new(self.raw_header, shape, self.raw_dtype);
        l.stride = self.raw_stride;
        l.frames = self.raw_frames;
        Some(l)
    }
}

/// Opens a frame store from its command-line spelling (see the module docs): the library's
/// [`tiledio::ptycho::open_store`], with a raw file's missing layout named as the options
/// that give it.
fn open_store(spec: &str, raw: &RawArgs) -> anyhow::Result<Box<dyn FrameStore>> {
    ensure!(!spec.is_empty(), "an empty store name");
    let layout = raw.layout();
    if layout.is_none() && store_kind(spec) == StoreKind::Raw {
        bail!(
            "{spec}: not FILE.h5:/dataset, .h5, .npy or a Zarr folder; a raw stack needs --raw-shape H,W (and --raw-dtype, --raw-header)"
        );
    }
    Ok(tiledio::ptycho::open_store(spec, layout.as_ref())?)
}

/// The mean of every frame of a calibration store (`--dark`, `--flat`, `--mask`), checked
/// against the frame shape when it is known.
fn calibration(
    what: &str,
    spec: &str,
    raw: &RawArgs,
    shape: Option<(usize, usize)>,
) -> anyhow::Result<(Vec<f32>, (usize, usize))> {
    let s = open_store(spec, raw)?;
    let (h, w) = s.shape();
    if let Some((fh, fw)) = shape {
        ensure!(
            (h, w) == (fh, fw),
            "{what} {}: frames of {h}x{w}, the stack's are {fh}x{fw}: shapes differ",
            s.name()
        );
    }
    ensure!(s.frames() > 0, "{what} {}: no frames", s.name());
    Ok((dark_frame(&*s, 0..s.frames())?, (h, w)))
}

/// Calibration maps from the options.
struct Calibration {
    dark: Option<Vec<f32>>,
    flat: Option<Vec<f32>>,
    mask: Option<Vec<u8>>,
}

fn calibrations(k: &KernelArgs, shape: Option<(usize, usize)>) -> anyhow::Result<Calibration> {
    // with no stack, the first map's shape is the one the others must match
    let mut shape = shape;
    let mut load = |what: &str, spec: &Option<String>| -> anyhow::Result<Option<Vec<f32>>> {
        spec.as_deref()
            .map(|s| {
                let (v, sh) = calibration(what, s, &k.raw, shape)?;
                shape.get_or_insert(sh);
                Ok(v)
            })
            .transpose()
    };
    let dark = load("--dark", &k.dark)?;
    let flat = load("--flat", &k.flat)?;
    let mask = load("--mask", &k.mask)?.map(|m| m.iter().map(|&v| u8::from(v != 0.0)).collect());
    Ok(Calibration { dark, flat, mask })
}

fn preprocess_options(k: &KernelArgs, device: DeviceArg, c: &mut Calibration) -> anyhow::Result<PreprocessOptions> {
    ensure!(k.crop > 0 && k.bin > 0, "--crop and --bin must be positive");
    ensure!(
        k.crop.is_multiple_of(k.bin),
        "--crop {} is not divisible by --bin {}",
        k.crop,
        k.bin
    );
    ensure!(k.batch > 0, "--batch must be positive");
    let mut o = PreprocessOptions::new(k.crop, k.bin);
    o.center = match k.center {
        CenterArg::Frame => Center::Frame,
        CenterArg::At(y, x) => Center::At(y, x),
        CenterArg::Auto(n) => Center::Auto(n),
    };
    o.reduce = match k.reduce {
        ReduceArg::Sum => Reduce::Sum,
        ReduceArg::Mean => Reduce::Mean,
    };
    o.clamp = if k.bin_then_clamp {
        ClampOrder::BinThenClamp
    } else {
        ClampOrder::ClampThenBin
    };
    o.orientation = Orientation::from_bits(k.orientation).ok_or_else(|| anyhow!("--orientation is 0 to 7"))?;
    o.output = match k.dtype {
        DtypeArg::F32 => OutputType::F32,
        DtypeArg::U32 => OutputType::U32,
        DtypeArg::U16 => OutputType::U16,
    };
    o.flat = c.flat.take();
    o.mask = c.mask.take();
    o.batch = k.batch;
    o.device = crate::opts::ptycho_device(device);
    Ok(o)
}

/// "the GPU (why)" or "the CPU (why)" for a run that did or did not use the GPU.
fn device_used(asked: DeviceArg, gpu: bool) -> String {
    match (gpu, asked) {
        (true, DeviceArg::Gpu) => format!("GPU{} (--device gpu)", gpu_name()),
        (true, _) => format!("GPU{} (--device auto: a GPU is present)", gpu_name()),
        (false, DeviceArg::Cpu) => "CPU (--device cpu)".into(),
        (false, _) => match tiledio::io::gpu::gpu() {
            Err(e) => format!("CPU (--device auto: {e})"),
            Ok(_) => "CPU (--device auto: the GPU kernel could not be set up)".into(),
        },
    }
}

fn gpu_name() -> String {
    tiledio::io::gpu::gpu()
        .map(|g| format!(" {}", g.name()))
        .unwrap_or_default()
}

/// Refuses an output that exists (a non-empty folder for a Zarr array, any file), before any
/// work, as well as outputs [`check_output`] refuses (special files, an input, no folder).
fn check_new_output(out: &Path, inputs: &[&Path], kind: OutputKind) -> anyhow::Result<()> {
    check_output(out, inputs, kind)?;
    if kind == OutputKind::File && std::fs::symlink_metadata(out).is_ok() {
        bail!("{}: already exists; remove it or choose another output", out.display());
    }
    Ok(())
}

fn run_preprocess(a: &PreprocessArgs) -> anyhow::Result<()> {
    let k = &a.kernel;
    let placement = Placement {
        device: k.device,
        backend: a.backend,
    };
    let device = placement.device()?;
    let mut inputs = vec![store_path(&a.stack)];
    inputs.extend([&k.dark, &k.flat, &k.mask].into_iter().flatten().map(|s| store_path(s)));
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    check_new_output(&a.out, &refs, OutputKind::Directory)?;
    let stack = open_store(&a.stack, &k.raw)?;
    let (h, w) = stack.shape();
    ensure!(stack.frames() > 0, "{}: no frames", stack.name());
    let mut cal = calibrations(k, Some((h, w)))?;
    let opts = preprocess_options(k, device, &mut cal)?;
    let pb = crate::opts::bar("preprocessing");
    let t0 = Instant::now();
    let r = preprocess(
        &*stack,
        cal.dark.as_deref(),
        &opts,
        Output::Zarr(a.out.clone()),
        &mut crate::opts::progress(&pb),
    );
    pb.finish_and_clear();
    let r = r?;
    let secs = t0.elapsed().as_secs_f64();
    if !crate::opts::quiet() {
        println!(
            "{} ({} frames of {h}x{w} {}) -> {}: {} frames of {s}x{s} {}, centre ({}, {}), {secs:.3} s, {:.1} frames/s, on the {}, {} saturated",
            stack.name(),
            stack.frames(),
            stack.dtype(),
            a.out.display(),
            r.frames,
            r.dtype.element_type(),
            r.center.0,
            r.center.1,
            r.frames as f64 / secs.max(1e-9),
            match placement.cpu_note() {
                Some(why) if !r.gpu => format!("CPU ({why})"),
                _ => device_used(device, r.gpu),
            },
            r.saturated,
            s = r.side,
        );
    }
    Ok(())
}

fn socket_options(timeout: f64) -> anyhow::Result<SocketOptions> {
    ensure!(
        timeout.is_finite() && timeout >= 0.0,
        "--timeout {timeout} is not a number of seconds >= 0"
    );
    Ok(SocketOptions {
        timeout: (timeout > 0.0).then(|| Duration::from_secs_f64(timeout)),
        ..SocketOptions::default()
    })
}

fn run_stream(a: &StreamArgs) -> anyhow::Result<()> {
    let k = &a.kernel;
    if matches!(k.center, CenterArg::Auto(_)) {
        bail!("--center auto needs the frames beforehand; a stream needs --center Y,X or frame");
    }
    if let Some(out) = &a.out {
        let inputs: Vec<PathBuf> = [&k.dark, &k.flat, &k.mask]
            .into_iter()
            .flatten()
            .map(|s| store_path(s))
            .collect();
        let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
        check_new_output(out, &refs, OutputKind::Directory)?;
    }
    let sock = socket_options(a.timeout)?;
    let mut cal = calibrations(k, None)?;
    let opts = preprocess_options(k, k.device, &mut cal)?;
    let endpoint = match (&a.listen, &a.connect) {
        (Some(l), None) => Endpoint::Listen(l.clone()),
        (None, Some(c)) => Endpoint::Connect(c.clone()),
        _ => bail!("give one of --listen and --connect"),
    };
    let rxs = (0..a.connections)
        .map(|_| {
            Receiver::new(
                &endpoint,
                ReceiverOptions {
                    socket: sock.clone(),
                    channel: a.channel.clone(),
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let endpoints = rxs.iter().map(|r| r.endpoint()).collect::<Vec<_>>().join(", ");
    let mut publisher = match (&a.publish_meta, &a.publish_data) {
        (Some(m), Some(d)) => Some(Publisher::bind(m, d, sock)?),
        _ => None,
    };
    if !crate::opts::quiet() {
        let verb = if a.listen.is_some() {
            "listening on"
        } else {
            "connecting to"
        };
        println!("{verb} {endpoints}");
        if let Some(p) = &publisher {
            println!(
                "PtyPy loader: metadata {}, data {}",
                p.meta_endpoint(),
                p.data_endpoint()
            );
        }
        let _ = std::io::stdout().flush();
    }
    let popts = PipelineOptions {
        queue: a.queue,
        gaps: match a.gaps {
            GapsArg::Error => GapPolicy::Error,
            GapsArg::Record => GapPolicy::Record,
        },
        ..PipelineOptions::default()
    };
    let sinks = Sinks {
        zarr: a.out.clone(),
        publisher: publisher.as_mut(),
    };
    let pb = crate::opts::bar("receiving");
    let r = run_pipeline_parallel(
        rxs,
        &opts,
        cal.dark.as_deref(),
        sinks,
        &popts,
        &mut crate::opts::progress(&pb),
    );
    pb.finish_and_clear();
    let r = r?;
    if !crate::opts::quiet() {
        let lost: u64 = r.gaps.iter().map(|g| g.end - g.start).sum();
        let out = match (&a.out, &publisher) {
            (Some(o), Some(_)) => format!("{} and the PtyPy loader", o.display()),
            (Some(o), None) => o.display().to_string(),
            (None, Some(_)) => "the PtyPy loader".into(),
            (None, None) => "nowhere (dry run)".into(),
        };
        println!(
            "{} of {} frames -> {out}: {s}x{s} {}, {lost} lost, {:.1} frames/s, latency p50 {:.2} ms p99 {:.2} ms, on the {}, {} saturated",
            r.frames,
            r.expected,
            r.dtype.element_type(),
            r.fps,
            r.latency_p50.as_secs_f64() * 1e3,
            r.latency_p99.as_secs_f64() * 1e3,
            device_used(k.device, r.gpu),
            r.saturated,
            s = r.side,
        );
        if !r.gaps.is_empty() {
            let g: Vec<String> = r.gaps.iter().map(|g| format!("{}..{}", g.start, g.end)).collect();
            println!("lost frames: {}", g.join(", "));
        }
    }
    Ok(())
}

fn simulation_options(a: &SimulateArgs) -> SimulationOptions {
    let (h, w) = a.shape;
    let pattern = a.pattern.unwrap_or((h.min(w) / 4).max(8));
    let mut o = SimulationOptions::new(a.frames, a.shape, pattern);
    if let Some(c) = a.center {
        o.center = c;
    }
    o.photons = a.photons;
    o.dark_level = a.dark_level;
    o.read_noise = a.read_noise;
    o.seed = a.seed;
    o.overlap = a.overlap;
    o.probe_diameter = a.probe_diameter;
    o.aperture = a.aperture;
    o.pixel_size = a.pixel_size;
    o
}

fn run_simulate(a: &SimulateArgs) -> anyhow::Result<()> {
    let format = match (&a.out, a.format) {
        (Some(_), Some(f)) => Some(f),
        (Some(out), None) => {
            let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            Some(match ext.as_deref() {
                Some("npy") => FormatArg::Npy,
                Some("zarr") => FormatArg::Zarr,
                Some("raw" | "bin" | "dat") => FormatArg::Raw,
                _ => bail!(
                    "{}: give --format npy|raw|zarr (the extension is not .npy, .zarr, .raw, .bin or .dat)",
                    out.display()
                ),
            })
        }
        _ => None,
    };
    // every output checked before any work
    let mut outputs: Vec<(&Path, OutputKind)> = Vec::new();
    if let (Some(out), Some(f)) = (&a.out, format) {
        outputs.push((
            out,
            if f == FormatArg::Zarr {
                OutputKind::Directory
            } else {
                OutputKind::File
            },
        ));
    }
    outputs.extend(a.dark.iter().map(|p| (p.as_path(), OutputKind::File)));
    outputs.extend(a.positions.iter().map(|p| (p.as_path(), OutputKind::File)));
    for (i, (p, kind)) in outputs.iter().enumerate() {
        check_new_output(p, &[], *kind)?;
        for (q, _) in &outputs[..i] {
            ensure!(p != q, "{}: named twice as an output", p.display());
        }
    }
    if a.dark.is_some() {
        ensure!(a.dark_frames > 0, "--dark-frames must be at least 1");
    }
    let opts = simulation_options(a);
    let sim = Simulation::new(&opts)?;
    let (h, w) = opts.frame_shape;
    let mut notes = Vec::new();
    if let Some(d) = &a.dark {
        sim.write_dark_npy(d, a.dark_frames)?;
        notes.push(format!("{} dark frames to {}", a.dark_frames, d.display()));
    }
    if let Some(p) = &a.positions {
        sim.write_positions_npy(p)?;
        notes.push(format!("positions to {}", p.display()));
    }
    let t0 = Instant::now();
    let (target, saturated) = match (&a.out, format, &a.send) {
        (Some(out), Some(f), _) => {
            let pb = crate::opts::bar("simulating");
            let r = match f {
                FormatArg::Npy => sim.write_npy(out, &mut crate::opts::progress(&pb)),
                FormatArg::Raw => sim.write_raw(out, &mut crate::opts::progress(&pb)),
                FormatArg::Zarr => sim.write_zarr(out, &mut crate::opts::progress(&pb)),
            };
            pb.finish_and_clear();
            let r = r?;
            let what = match f {
                FormatArg::Npy => "npy".to_string(),
                FormatArg::Zarr => "Zarr".to_string(),
                FormatArg::Raw => format!("raw: read with --raw-shape {h},{w} --raw-dtype uint16"),
            };
            (format!("{} ({what})", out.display()), r.saturated)
        }
        (_, _, Some(addr)) => send(a, &sim, addr)?,
        _ => bail!("give --out PATH or --send ADDR"),
    };
    if !crate::opts::quiet() {
        let secs = t0.elapsed().as_secs_f64();
        let extra = if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join(", "))
        };
        println!(
            "{} frames of {h}x{w} uint16 (pattern {}, seed {}) -> {target} in {secs:.3} s ({:.1} frames/s), {saturated} saturated pixels{extra}",
            opts.frames,
            opts.pattern,
            opts.seed,
            opts.frames as f64 / secs.max(1e-9),
        );
    }
    Ok(())
}

/// Renders frames `first .. first + k` into `out` (`k` frames of `px` pixels) on `threads`
/// threads; returns the saturated count.
fn render(sim: &Simulation, first: u64, k: usize, px: usize, out: &mut [u16], threads: usize) -> anyhow::Result<u64> {
    let per = k.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = out[..k * px]
            .chunks_mut(per * px)
            .enumerate()
            .map(|(t, part)| {
                s.spawn(move || -> anyhow::Result<u64> {
                    let mut sat = 0;
                    for (j, f) in part.chunks_mut(px).enumerate() {
                        sat += sim.frame_into(first + (t * per + j) as u64, f)?.saturated;
                    }
                    Ok(sat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a simulation thread panicked"))?)
            .sum()
    })
}

/// Streams every frame to `addr`, making the next batch while the current one is sent.
fn send(a: &SimulateArgs, sim: &Simulation, addr: &str) -> anyhow::Result<(String, u64)> {
    let opts = sim.options();
    let (h, w) = opts.frame_shape;
    let px = h * w;
    let n = opts.frames;
    let endpoint = if a.bind {
        Endpoint::Listen(addr.to_string())
    } else {
        Endpoint::Connect(addr.to_string())
    };
    let mut so = SenderOptions::new(match a.wire {
        WireArg::Json => WireFormat::Tiledio,
        WireArg::StreamV2 => WireFormat::StreamV2,
    });
    so.socket = socket_options(a.timeout)?;
    so.compression = match a.compression {
        CompressionArg::None => Compression::None,
        CompressionArg::Bslz4 => Compression::Bslz4,
        CompressionArg::Lz4 => Compression::Lz4,
    };
    if let Some(r) = a.rate {
        ensure!(
            r.is_finite() && r > 0.0,
            "--rate {r} is not a positive number of frames/s"
        );
    }
    so.rate = a.rate;
    let mut tx = Sender::new(&endpoint, so)?;
    if !crate::opts::quiet() && a.bind {
        println!("sending from {}", tx.endpoint());
        let _ = std::io::stdout().flush();
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // batches of about 64 MiB, at least one frame per thread
    let batch = ((64usize << 20) / (px * 2).max(1)).max(threads).max(1).min(n as usize);
    let mut cur = vec![0u16; batch * px];
    let mut next = vec![0u16; batch * px];
    let mut bytes = vec![0u8; px * 2];
    let positions = sim.positions();
    let pb = crate::opts::bar("sending");
    pb.set_length(n);
    let r = (|| -> anyhow::Result<u64> {
        tx.start(n, (h, w), ElementType::U16)?;
        let mut f = 0u64;
        let mut k = batch.min(n as usize);
        let mut saturated = render(sim, 0, k, px, &mut cur, threads)?;
        while f < n {
            let e = f + k as u64;
            let k2 = batch.min((n - e) as usize);
            let (sent, sat) = std::thread::scope(|s| {
                let maker = s.spawn(|| render(sim, e, k2, px, &mut next, threads));
                let sent = (|| -> anyhow::Result<()> {
                    for (j, frame) in cur[..k * px].chunks(px).enumerate() {
                        let i = f + j as u64;
                        for (b, v) in bytes.chunks_exact_mut(2).zip(frame) {
                            b.copy_from_slice(&v.to_le_bytes());
                        }
                        let (x, y) = positions[i as usize];
                        tx.image(i, x, y, &bytes)?;
                        pb.set_position(i + 1);
                    }
                    Ok(())
                })();
                let sat = maker.join().map_err(|_| anyhow!("a simulation thread panicked"));
                (sent, sat)
            });
            sent?;
            saturated += sat??;
            std::mem::swap(&mut cur, &mut next);
            f = e;
            k = k2;
        }
        tx.end()?;
        Ok(saturated)
    })();
    pb.finish_and_clear();
    let saturated = r?;
    Ok((format!("{} ({})", tx.endpoint(), wire_name(a)), saturated))
}

fn wire_name(a: &SimulateArgs) -> &'static str {
    match (a.wire, a.compression) {
        (WireArg::Json, _) => "tiledio JSON",
        (WireArg::StreamV2, CompressionArg::None) => "Stream V2",
        (WireArg::StreamV2, CompressionArg::Bslz4) => "Stream V2, bslz4",
        (WireArg::StreamV2, CompressionArg::Lz4) => "Stream V2, lz4",
    }
}
