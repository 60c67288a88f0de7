//! `tiledio bench ptycho`: the measurements behind the ptychography targets (frames from a file,
//! the fused kernel, live streams, bitshuffle-LZ4 streams, and the Python peers), as a library.
//!
//! Rows ([`RowKind`]), each checked against an independent reference before it is timed, then
//! timed `repeats` times (median, minimum and maximum: [`Timing`]):
//!
//! - **file**: a page-cached `.npy` stack of `frames` × `H × W` `u16` frames (generated once,
//!   read once to warm the page cache) through [`preprocess`] (crop `S`, bin `B` by sum,
//!   `f32`, a dark map) into GPU memory ([`Output::Device`]), or host memory on the CPU. Only
//!   the crop's rows are read. Target on the GPU: ≥ 8,000 frames/s.
//! - **kernel**: the fused kernel alone on a resident batch of whole frames (up to 256): GPU
//!   memory ([`PtychoDevice`], launches timed by a stream synchronisation around them) or, on
//!   the CPU, the reference ([`PtychoPlan::run_host`]) on host memory.
//! - **stream**: a loopback ZeroMQ series (tcp 127.0.0.1, free ports) on
//!   [`PtychoBenchOptions::connections`] connections: a [`Sender`] thread per connection in
//!   the tiledio JSON wire format → [`run_pipeline_parallel`] (preprocessing on the GPU or the
//!   CPU, no sink). Frames/s, frames lost (must be 0: the row fails otherwise), p50/p99 latency.
//!   Target: ≥ 1,000 frames/s.
//! - **bslz4**: Eiger-size frames (514 × 1030 `u16`, Poisson photon counts: a bright-field
//!   disc, a halo, a sparse background) as DECTRIS Stream V2 with bitshuffle-LZ4, encoded once
//!   before timing (as a detector sends them) and replayed over loopback connections →
//!   decode on each connection's thread + [`run_pipeline_parallel`] (crop 512 about the centre (257, 515): rows 1..513, bin 2). Target:
//!   ≥ 5,000 frames/s.
//! - **hdf5**: the bslz4 row's frames written by [`Hdf5Writer`] as an HDF5 file of one
//!   bitshuffle-LZ4 chunk per frame (`/entry/data/data`, as DECTRIS writes them), page-cached,
//!   through [`preprocess`] from [`Hdf5Store`] (chunks read raw, decoded in parallel on the
//!   CPU) into GPU (host) memory. Held to the bslz4 target.
//! - **peers**: our raw loopback (messages of the stream row's size, no preprocessing) beside
//!   the same with pyzmq (PUSH and PULL in two processes, `copy=False`) through `python3`
//!   (the script is embedded); the ratio of the stream row (all its connections, with
//!   preprocessing) to pyzmq's one connection (target ≥ 0.9), and the raw single-connection
//!   ratio beside it. Also a JAX row when `jax`
//!   imports: dark-subtract + crop + sum-rebin of the file row's `.npy` in batches of 64, with
//!   the ratio file row / JAX. A peer that cannot run is a row that says `missing: <why>`.
//!
//! Generated inputs live in a folder under [`PtychoBenchOptions::dir`] that is removed at the
//! end, unless [`PtychoBenchOptions::keep`] (then they stay, and are reused by the next run).
//!
//! A row that fails (bytes that differ, lost frames, a stream error) is returned with
//! [`RowStatus::Failed`] so that the other rows still run; invalid options and failures to
//! generate the inputs are errors.
//!
//! ```no_run
//! use tiledio::bench::ptycho::{PtychoBenchOptions, RowKind, run};
//! let mut o = PtychoBenchOptions::quick();
//! o.rows = vec![RowKind::File, RowKind::Stream];
//! for row in run(&o, &mut |msg| eprintln!("{msg}"))? {
//!     println!("{}: {:?} frames/s", row.name, row.fps());
//! }
//! # Ok::<(), tiledio::bench::ptycho::PtychoBenchError>(())
//! ```

use super::Timing;
use crate::io::ElementType;
use crate::io::gpu::{DeviceBuffer, Stream};
use crate::kernels::{PtychoDevice, PtychoParams, PtychoPlan};
use crate::ptycho::stream::zmtp::{Socket, SocketOptions, SocketType};
use crate::ptycho::stream::{
    Compression, Endpoint, GapPolicy, Message, PipelineOptions, Receiver, ReceiverOptions, Sender, SenderOptions,
    Sinks, StreamReport, WireFormat, run_pipeline_parallel,
};
use crate::ptycho::{
    Device, FrameStore, Frames, Hdf5Layout, Hdf5Store, Hdf5Writer, NpyStore, Output, PreprocessOptions, preprocess,
};
use crate::zarr::serde_json::{self, Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The pyzmq and JAX peers (`python3 -c` this).
const PEER: &str = include_str!("ptycho_peer.py");

/// The file row's target on the GPU, frames/s.
pub const TARGET_FILE_FPS: f64 = 8000.0;
/// The stream row's target, frames/s.
pub const TARGET_STREAM_FPS: f64 = 1000.0;
/// The bslz4 row's target, frames/s.
pub const TARGET_BSLZ4_FPS: f64 = 5000.0;
/// The peers row's target: our loopback over pyzmq's.
pub const TARGET_PEER_RATIO: f64 = 0.9;

/// How long a socket of the bench waits for its peer.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

/// What can stop the bench as a whole (a row's own failure is [`RowStatus::Failed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PtychoBenchError {
    /// Invalid options.
    #[error("{0}")]
    Usage(String),
    /// Generating or reading the inputs failed.
    #[error("{0}: {1}")]
    File(PathBuf, std::io::Error),
    /// A library error outside a row (opening the GPU, the generated stack).
    #[error(transparent)]
    Ptycho(#[from] crate::ptycho::PtychoError),
    /// An I/O layer error outside a row.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
}

type Result<T, E = PtychoBenchError> = std::result::Result<T, E>;

fn usage(m: impl Into<String>) -> PtychoBenchError {
    PtychoBenchError::Usage(m.into())
}

/// One kind of row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// `.npy` stack → preprocess → GPU (host) memory.
    File,
    /// The fused kernel alone on a resident batch.
    Kernel,
    /// Loopback tiledio JSON stream → pipeline.
    Stream,
    /// Loopback Stream V2 bitshuffle-LZ4 → decode → pipeline.
    Bslz4,
    /// The bslz4 row's frames in an HDF5 file of bitshuffle-LZ4 chunks → preprocess.
    Hdf5,
    /// pyzmq (and JAX) beside ours.
    Peers,
}

impl RowKind {
    /// Every row, in the order they run.
    pub const ALL: [RowKind; 6] = [
        RowKind::File,
        RowKind::Kernel,
        RowKind::Stream,
        RowKind::Bslz4,
        RowKind::Hdf5,
        RowKind::Peers,
    ];

    /// The row's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RowKind::File => "file",
            RowKind::Kernel => "kernel",
            RowKind::Stream => "stream",
            RowKind::Bslz4 => "bslz4",
            RowKind::Hdf5 => "hdf5",
            RowKind::Peers => "peers",
        }
    }

    /// Parses a comma-separated list of row names (`all`: every row), in the order of
    /// [`RowKind::ALL`] without repeats.
    ///
    /// ```
    /// use tiledio::bench::ptycho::RowKind;
    /// assert_eq!(RowKind::parse_list("stream,file")?, [RowKind::File, RowKind::Stream]);
    /// assert_eq!(RowKind::parse_list("all")?.len(), 6);
    /// assert!(RowKind::parse_list("disk").is_err());
    /// # Ok::<(), tiledio::bench::ptycho::PtychoBenchError>(())
    /// ```
    ///
    /// # Errors
    /// [`PtychoBenchError::Usage`] for an unknown name or an empty list.
    pub fn parse_list(s: &str) -> Result<Vec<RowKind>> {
        let mut want = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                want.extend(RowKind::ALL);
            } else {
                want.push(name.parse()?);
            }
        }
        if want.is_empty() {
            return Err(usage("no rows given"));
        }
        Ok(RowKind::ALL.into_iter().filter(|k| want.contains(k)).collect())
    }
}

impl std::str::FromStr for RowKind {
    type Err = PtychoBenchError;
    fn from_str(s: &str) -> Result<RowKind> {
        RowKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            usage(format!(
                "unknown row {s:?} (file, kernel, stream, bslz4, hdf5, peers or all)"
            ))
        })
    }
}

impl std::fmt::Display for RowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Options of [`run`].
#[derive(Clone, Debug, PartialEq)]
pub struct PtychoBenchOptions {
    /// Where the generated inputs go (a folder of their own inside; default: the system's
    /// temporary directory).
    pub dir: Option<PathBuf>,
    /// Keep the generated inputs in `dir` (and reuse them when they are there).
    pub keep: bool,
    /// Frames of the `.npy` stack and of the stream series.
    pub frames: u64,
    /// Frame shape `(H, W)` of the file, kernel, stream and peers rows.
    pub shape: (usize, usize),
    /// Crop side `S`.
    pub crop: usize,
    /// Bin factor `B`.
    pub bin: usize,
    /// Timed repeats per row.
    pub repeats: usize,
    /// GPU, CPU, or the GPU when there is one.
    pub device: Device,
    /// Which rows.
    pub rows: Vec<RowKind>,
    /// Frames per batch of the preprocessing.
    pub batch: usize,
    /// Frames of the kernel row's resident batch (at most `frames`).
    pub kernel_frames: usize,
    /// Frames of the bslz4 series.
    pub eiger_frames: u64,
    /// Frame shape of the bslz4 row.
    pub eiger_shape: (usize, usize),
    /// Crop of the bslz4 row.
    pub eiger_crop: usize,
    /// Bin of the bslz4 row.
    pub eiger_bin: usize,
    /// The Python interpreter of the peers (default: `$TILEDIO_PYTHON`, else `python3`).
    pub python: Option<PathBuf>,
    /// Loopback connections of the stream and bslz4 rows ([`run_pipeline_parallel`]): each
    /// sender sends its share of the series (every `connections`-th frame) with its own start
    /// and end, and each connection is received and decoded on its own thread.
    pub connections: usize,
}

impl Default for PtychoBenchOptions {
    /// 512 frames of 2048² `u16`, crop 1024, bin 2, 5 repeats, every row, the GPU when there is
    /// one, batches of 64, a kernel batch of 256, 2048 Eiger frames of 514 × 1030 cropped to
    /// 512 and binned by 2, 4 loopback connections.
    fn default() -> Self {
        PtychoBenchOptions {
            dir: None,
            keep: false,
            frames: 512,
            shape: (2048, 2048),
            crop: 1024,
            bin: 2,
            repeats: 5,
            device: Device::Auto,
            rows: RowKind::ALL.to_vec(),
            batch: 64,
            kernel_frames: 256,
            eiger_frames: 2048,
            eiger_shape: (514, 1030),
            eiger_crop: 512,
            eiger_bin: 2,
            python: None,
            connections: 4,
        }
    }
}

impl PtychoBenchOptions {
    /// A tiny run for CI: 32 frames (128 Eiger frames), one repeat; the rest as
    /// [`PtychoBenchOptions::default`].
    ///
    /// ```
    /// let o = tiledio::bench::ptycho::PtychoBenchOptions::quick();
    /// assert_eq!((o.frames, o.repeats), (32, 1));
    /// o.validate()?;
    /// # Ok::<(), tiledio::bench::ptycho::PtychoBenchError>(())
    /// ```
    pub fn quick() -> PtychoBenchOptions {
        PtychoBenchOptions {
            frames: 32,
            repeats: 1,
            kernel_frames: 32,
            eiger_frames: 128,
            ..PtychoBenchOptions::default()
        }
    }

    /// Sets the frame count as `--frames` does: `n` frames of the stack and the stream, `4 n`
    /// (smaller) frames of the bslz4 and hdf5 rows, a kernel batch of up to 256 of them.
    ///
    /// ```
    /// let mut o = tiledio::bench::ptycho::PtychoBenchOptions::quick();
    /// o.set_frames(1000);
    /// assert_eq!((o.frames, o.eiger_frames, o.kernel_frames), (1000, 4000, 256));
    /// ```
    pub fn set_frames(&mut self, n: u64) {
        self.frames = n;
        self.eiger_frames = n.saturating_mul(4);
        self.kernel_frames = usize::try_from(n).map_or(256, |n| n.min(256));
    }

    /// Checks the options; the message names the first bad one.
    ///
    /// ```
    /// let mut o = tiledio::bench::ptycho::PtychoBenchOptions::quick();
    /// o.crop = 1000;
    /// o.bin = 3;
    /// assert!(o.validate().unwrap_err().to_string().contains("not divisible"));
    /// ```
    ///
    /// # Errors
    /// [`PtychoBenchError::Usage`].
    pub fn validate(&self) -> Result<()> {
        if self.frames == 0 || self.eiger_frames == 0 {
            return Err(usage("--frames must be at least 1"));
        }
        if self.repeats == 0 {
            return Err(usage("--repeats must be at least 1"));
        }
        if self.batch == 0 || self.kernel_frames == 0 {
            return Err(usage("the batch and the kernel batch must be at least 1 frame"));
        }
        if self.rows.is_empty() {
            return Err(usage("no rows to run"));
        }
        let geometry = [
            ("", self.shape, self.crop, self.bin),
            ("Eiger ", self.eiger_shape, self.eiger_crop, self.eiger_bin),
        ];
        for (what, (h, w), crop, bin) in geometry {
            if h == 0 || w == 0 {
                return Err(usage(format!("{what}frame shape {h}x{w} is empty")));
            }
            if crop > h || crop > w {
                return Err(usage(format!("{what}crop {crop} is larger than the {h}x{w} frame")));
            }
            PtychoParams::new((h, w), crop, bin)
                .validate()
                .map_err(|e| usage(format!("{what}{e}")))?;
        }
        let (h, w) = self.shape;
        if (h as u64)
            .checked_mul(w as u64)
            .and_then(|p| p.checked_mul(2 * self.frames))
            .is_none_or(|b| b > 1 << 46)
        {
            return Err(usage(format!("{} frames of {h}x{w} are too many bytes", self.frames)));
        }
        Ok(())
    }
}

/// Whether a row was measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowStatus {
    /// Measured (its bytes checked first).
    Measured,
    /// Not measured because something it needs is missing (a Python module): why.
    Missing(String),
    /// The row failed: why (bytes that differ, frames lost, a stream error).
    Failed(String),
}

/// A target and whether the row met it.
#[derive(Clone, Debug, PartialEq)]
pub struct Goal {
    /// The target in words (`≥ 8000 frames/s on a GPU`).
    pub text: String,
    /// Whether it was met (`None`: not measured, or not meaningful here, e.g. a GPU target on
    /// the CPU).
    pub met: Option<bool>,
}

/// One measured row.
#[derive(Clone, Debug, PartialEq)]
pub struct PtychoRow {
    /// The kind of row.
    pub kind: RowKind,
    /// Its name (`file`, `peers: pyzmq`, …).
    pub name: String,
    /// What it measures, in words.
    pub what: String,
    /// Which processor: `gpu: NAME` or `cpu (N compute threads)`.
    pub device: String,
    /// How the bytes moved: for GPU reads the I/O backend used and why not the others.
    pub io: String,
    /// Frames per timed run.
    pub frames: u64,
    /// Seconds per timed run (median, min, max over the repeats).
    pub timing: Option<Timing>,
    /// Bytes per timed run that the GB/s figure counts (0: none).
    pub bytes: u64,
    /// Frames lost (stream rows).
    pub lost: Option<u64>,
    /// Median of the repeats' median latency (stream rows).
    pub latency_p50: Option<Duration>,
    /// Median of the repeats' 99th percentile latency (stream rows).
    pub latency_p99: Option<Duration>,
    /// Ours over the peer's frames/s (peer rows).
    pub ratio: Option<f64>,
    /// The target, if the row has one.
    pub goal: Option<Goal>,
    /// Measured, missing or failed.
    pub status: RowStatus,
    /// Anything else worth saying (the figures behind a ratio, compression, the peer's device).
    pub note: String,
}

impl PtychoRow {
    fn new(kind: RowKind, name: impl Into<String>, device: &str) -> PtychoRow {
        PtychoRow {
            kind,
            name: name.into(),
            what: String::new(),
            device: device.to_string(),
            io: String::new(),
            frames: 0,
            timing: None,
            bytes: 0,
            lost: None,
            latency_p50: None,
            latency_p99: None,
            ratio: None,
            goal: None,
            status: RowStatus::Measured,
            note: String::new(),
        }
    }

    /// Frames per second at the median.
    pub fn fps(&self) -> Option<f64> {
        self.timing
            .filter(|t| t.median > 0.0)
            .map(|t| self.frames as f64 / t.median)
    }

    /// Frames per second of the slowest and the fastest run.
    pub fn fps_range(&self) -> Option<(f64, f64)> {
        self.timing
            .filter(|t| t.min > 0.0)
            .map(|t| (self.frames as f64 / t.max, self.frames as f64 / t.min))
    }

    /// Microseconds per frame at the median.
    pub fn us_per_frame(&self) -> Option<f64> {
        self.timing
            .filter(|_| self.frames > 0)
            .map(|t| t.median * 1e6 / self.frames as f64)
    }

    /// GB/s (10⁹ bytes) of [`PtychoRow::bytes`] at the median.
    pub fn gbps(&self) -> Option<f64> {
        self.timing
            .filter(|t| t.median > 0.0 && self.bytes > 0)
            .map(|t| t.rate(self.bytes) / 1e9)
    }

    /// The row as a JSON object (the figures derived too: `fps`, `fps_min`, `fps_max`,
    /// `us_per_frame`, `gbps`; durations in milliseconds).
    pub fn to_json(&self) -> Value {
        let (status, reason) = match &self.status {
            RowStatus::Measured => ("measured", None),
            RowStatus::Missing(w) => ("missing", Some(w.clone())),
            RowStatus::Failed(w) => ("failed", Some(w.clone())),
        };
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        json!({
            "row": self.kind.name(),
            "name": self.name,
            "status": status,
            "reason": reason,
            "what": self.what,
            "device": self.device,
            "io": self.io,
            "frames": self.frames,
            "seconds": self.timing.map(|t| json!({"median": t.median, "min": t.min, "max": t.max})),
            "fps": self.fps(),
            "fps_min": self.fps_range().map(|r| r.0),
            "fps_max": self.fps_range().map(|r| r.1),
            "us_per_frame": self.us_per_frame(),
            "bytes": self.bytes,
            "gbps": self.gbps(),
            "lost": self.lost,
            "latency_p50_ms": ms(self.latency_p50),
            "latency_p99_ms": ms(self.latency_p99),
            "ratio": self.ratio,
            "target": self.goal.as_ref().map(|g| json!({"text": g.text, "met": g.met})),
            "note": self.note,
        })
    }
}

/// Every row as a JSON array ([`PtychoRow::to_json`]), pretty-printed.
///
/// ```
/// let s = tiledio::bench::ptycho::to_json(&[]);
/// assert_eq!(s, "[]");
/// ```
pub fn to_json(rows: &[PtychoRow]) -> String {
    let v = Value::Array(rows.iter().map(PtychoRow::to_json).collect());
    serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Runs the rows of `opts` and returns them in order (a peer row may become two: pyzmq and
/// JAX). `progress` gets a line on what is being done (for a terminal).
///
/// # Errors
/// [`PtychoBenchError::Usage`] for invalid options or [`Device::Gpu`] without a GPU;
/// [`PtychoBenchError::File`] when the inputs cannot be written. A row's own failure is its
/// [`RowStatus::Failed`].
pub fn run(opts: &PtychoBenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<PtychoRow>> {
    opts.validate()?;
    let gpu = match opts.device {
        Device::Cpu => false,
        Device::Gpu => {
            crate::io::gpu::gpu().map_err(|e| usage(format!("--device gpu: {e}")))?;
            true
        }
        Device::Auto => crate::io::gpu::available(),
    };
    let device = if gpu {
        format!("gpu: {}", crate::io::gpu::gpu()?.name())
    } else {
        format!(
            "cpu ({} compute threads)",
            crate::io::Context::from_env()?.compute_threads()
        )
    };
    let work = Workdir::new(opts)?;
    let b = Bench {
        opts,
        gpu,
        device,
        dir: work.path.clone(),
    };
    let needs_stack = opts
        .rows
        .iter()
        .any(|k| matches!(k, RowKind::File | RowKind::Kernel | RowKind::Peers));
    let stack = if needs_stack { Some(b.stack(progress)?) } else { None };
    let dark = dark_map(opts.shape);
    let mut rows = Vec::new();
    for &kind in &opts.rows {
        progress(&format!("{kind}: running"));
        match kind {
            RowKind::File => rows.push(b.file_row(stack.as_deref().unwrap_or(Path::new("")), &dark)),
            RowKind::Kernel => rows.push(b.kernel_row(stack.as_deref().unwrap_or(Path::new("")), &dark)),
            RowKind::Stream => rows.push(b.stream_row(&dark)),
            RowKind::Bslz4 => rows.push(b.bslz4_row(progress)),
            RowKind::Hdf5 => rows.push(b.hdf5_row(progress)),
            RowKind::Peers => {
                let file_fps = rows
                    .iter()
                    .find(|r: &&PtychoRow| r.kind == RowKind::File && r.status == RowStatus::Measured)
                    .and_then(PtychoRow::fps);
                let stream_fps = rows
                    .iter()
                    .find(|r: &&PtychoRow| r.kind == RowKind::Stream && r.status == RowStatus::Measured)
                    .and_then(PtychoRow::fps);
                let kernel_fps = rows
                    .iter()
                    .find(|r: &&PtychoRow| r.kind == RowKind::Kernel && r.status == RowStatus::Measured)
                    .and_then(PtychoRow::fps);
                rows.extend(b.peer_rows(
                    stack.as_deref().unwrap_or(Path::new("")),
                    &dark,
                    Rates {
                        file: file_fps,
                        stream: stream_fps,
                        kernel: kernel_fps,
                    },
                    progress,
                ));
            }
        }
    }
    drop(work);
    Ok(rows)
}

/// Frames per second of our rows that peers are compared with.
#[derive(Debug, Clone, Copy)]
struct Rates {
    file: Option<f64>,
    stream: Option<f64>,
    kernel: Option<f64>,
}

/// The folder of the generated inputs: removed on drop unless kept.
struct Workdir {
    path: PathBuf,
    remove: bool,
}

impl Workdir {
    fn new(opts: &PtychoBenchOptions) -> Result<Workdir> {
        let base = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
        let path = if opts.keep {
            base.join("tiledio-bench-ptycho")
        } else {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            base.join(format!("tiledio-bench-ptycho-{}-{t:08x}", std::process::id()))
        };
        std::fs::create_dir_all(&path).map_err(|e| PtychoBenchError::File(path.clone(), e))?;
        Ok(Workdir {
            path,
            remove: !opts.keep,
        })
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

struct Bench<'a> {
    opts: &'a PtychoBenchOptions,
    gpu: bool,
    device: String,
    dir: PathBuf,
}

/// A 64-bit mix (splitmix64's finaliser): deterministic noise without a dependency.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The dark map of the sCMOS-like frames: 100 counts with a small fixed pattern.
fn dark_map((h, w): (usize, usize)) -> Vec<f32> {
    (0..h * w)
        .map(|p| 100.0 + ((p / w * 13 + p % w * 7) % 11) as f32 * 0.5)
        .collect()
}

/// The frames' fixed background: the dark level plus up to 15 counts of noise.
fn background((h, w): (usize, usize)) -> Vec<u16> {
    (0..h * w).map(|p| 100 + (mix(p as u64) % 16) as u16).collect()
}

/// Frame `i` (little-endian `u16` bytes): the background shifted by an offset of its own, and a
/// bright beam (a disc with a speckle-like modulation) near the centre, moving a little from
/// frame to frame.
fn sc_frame(i: u64, (h, w): (usize, usize), bg: &[u16], out: &mut [u8]) {
    let len = h * w;
    let off = (mix(i ^ 0xA5A5) % len as u64) as usize;
    for (k, d) in out.chunks_exact_mut(2).enumerate() {
        let j = if k + off < len { k + off } else { k + off - len };
        d.copy_from_slice(&bg[j].to_le_bytes());
    }
    let r = (h.min(w) / 16).max(2) as i64;
    let cy = (h / 2) as i64 + (i * 37 % 41) as i64 - 20;
    let cx = (w / 2) as i64 + (i * 53 % 41) as i64 - 20;
    for y in (cy - r).max(0)..(cy + r).min(h as i64) {
        for x in (cx - r).max(0)..(cx + r).min(w as i64) {
            let d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
            if d2 >= r * r {
                continue;
            }
            let k = y as usize * w + x as usize;
            let beam = 2000 * (r * r - d2) / (r * r);
            let speckle = mix(i << 40 ^ k as u64) % 400;
            let v = (u16::from_le_bytes([out[2 * k], out[2 * k + 1]]) as i64 + beam + speckle as i64).min(65535);
            out[2 * k..2 * k + 2].copy_from_slice(&(v as u16).to_le_bytes());
        }
    }
}

/// A Poisson sample of mean `lambda` from two uniforms in (0, 1): inversion for small means,
/// the normal approximation (Box-Muller) above 30.
fn poisson(lambda: f64, u: f64, v: f64) -> u16 {
    if lambda > 30.0 {
        let z = (-2.0 * u.max(1e-300).ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        return (lambda + lambda.sqrt() * z).round().clamp(0.0, 65535.0) as u16;
    }
    let mut p = (-lambda).exp();
    let mut s = p;
    let mut k = 0u16;
    while u > s && k < 1000 {
        k += 1;
        p *= lambda / k as f64;
        s += p;
    }
    k
}

/// Eiger-like frame `i` (little-endian `u16` photon counts) of a ptychography scan: a
/// bright-field disc (radius `min(H, W)/16`, 200 photons a pixel) near the centre, moving a
/// little from frame to frame, a scattering halo falling as `r⁻³` from 5 photons at the disc's
/// edge out to `0.4 min(H, W)`, and 0.05 photons a pixel of background: most pixels count
/// nothing, as on a real detector, and bitshuffle-LZ4 compresses it about as much.
fn eiger_frame(i: u64, (h, w): (usize, usize)) -> Vec<u8> {
    const BACKGROUND: f64 = 0.05;
    let mut out = vec![0u8; h * w * 2];
    let uni = |k: u64| ((mix(i << 40 ^ k) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let p0 = (-BACKGROUND).exp();
    for (k, d) in out.chunks_exact_mut(2).enumerate() {
        let u = uni(k as u64);
        if u > p0 {
            d.copy_from_slice(&poisson(BACKGROUND, u, 0.5).to_le_bytes());
        }
    }
    let side = h.min(w) as f64;
    let disc = (side / 16.0).max(1.0);
    let halo = side * 0.4;
    let cy = (h / 2) as i64 + (i * 7 % 9) as i64 - 4;
    let cx = (w / 2) as i64 + (i * 5 % 9) as i64 - 4;
    let r = halo.ceil() as i64;
    for y in (cy - r).max(0)..(cy + r).min(h as i64) {
        for x in (cx - r).max(0)..(cx + r).min(w as i64) {
            let d = (((y - cy) * (y - cy) + (x - cx) * (x - cx)) as f64).sqrt();
            let lambda = if d < disc {
                200.0
            } else if d < halo {
                5.0 * (disc / d).powi(3)
            } else {
                continue;
            };
            let k = y as usize * w + x as usize;
            let n = poisson(lambda, uni(k as u64 ^ 1 << 39), uni(k as u64 ^ 1 << 38));
            let v = u16::from_le_bytes([out[2 * k], out[2 * k + 1]]).saturating_add(n);
            out[2 * k..2 * k + 2].copy_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// The preprocessing of one whole frame (`u16` LE) computed here, independently of the
/// library: crop `crop` about `(H/2, W/2)` (outside the frame: 0), `max(raw - dark, 0)`, the
/// sum of each `bin × bin` block in row-major order, as `f32` native-endian bytes.
fn reference(frame: &[u8], (h, w): (usize, usize), dark: Option<&[f32]>, crop: usize, bin: usize) -> Vec<u8> {
    let n = crop / bin;
    let (y0, x0) = ((h / 2) as i64 - (crop / 2) as i64, (w / 2) as i64 - (crop / 2) as i64);
    let mut out = Vec::with_capacity(n * n * 4);
    for by in 0..n {
        for bx in 0..n {
            let mut sum = 0f32;
            for dy in 0..bin {
                let y = y0 + (by * bin + dy) as i64;
                if y < 0 || y >= h as i64 {
                    continue;
                }
                for dx in 0..bin {
                    let x = x0 + (bx * bin + dx) as i64;
                    if x < 0 || x >= w as i64 {
                        continue;
                    }
                    let k = y as usize * w + x as usize;
                    let raw = u16::from_le_bytes([frame[2 * k], frame[2 * k + 1]]) as f32;
                    let p = raw - dark.map_or(0.0, |d| d[k]);
                    sum += if p > 0.0 { p } else { 0.0 };
                }
            }
            out.extend_from_slice(&sum.to_ne_bytes());
        }
    }
    out
}

/// Compares output frame `i` with its reference; `Err` says where they differ.
fn same(what: &str, i: u64, got: &[u8], want: &[u8]) -> std::result::Result<(), String> {
    if got == want {
        return Ok(());
    }
    let f = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (g, w) = (f(got), f(want));
    let (k, d) = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0f32), |m, (k, d)| if d > m.1 { (k, d) } else { m });
    Err(format!(
        "{what}: frame {i} differs from the reference (max |diff| {d} at value {k} of {}; {} vs {} values)",
        w.len(),
        g.len(),
        w.len()
    ))
}

/// Frames per second of [`crate::ptycho::decode_bitshuffle_lz4`] alone on this thread, over
/// `frames` (little-endian `u16`) encoded by [`crate::ptycho::encode_bitshuffle_lz4`] (each
/// decoded back and checked first), for about 0.2 s.
fn decode_rate(frames: &[Vec<u8>]) -> std::result::Result<f64, String> {
    let chunks = frames
        .iter()
        .map(|f| crate::ptycho::encode_bitshuffle_lz4(f, 2, 0))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = vec![0u8; frames.first().map_or(0, Vec::len)];
    for (c, f) in chunks.iter().zip(frames) {
        crate::ptycho::decode_bitshuffle_lz4(c, 2, &mut out)?;
        if &out != f {
            return Err("bitshuffle-LZ4 does not decode to the frame it encoded".into());
        }
    }
    let t = Instant::now();
    let mut n = 0u64;
    while n < 16 || t.elapsed() < Duration::from_millis(200) {
        crate::ptycho::decode_bitshuffle_lz4(&chunks[n as usize % chunks.len()], 2, &mut out)?;
        n += 1;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Frames to check: the first two, the middle and the last.
fn probes(n: u64) -> Vec<u64> {
    let mut v = vec![0, 1.min(n - 1), n / 2, n - 1];
    v.dedup();
    v.sort_unstable();
    v.dedup();
    v
}

fn timing(times: &[f64]) -> Option<Timing> {
    Timing::of(times)
}

/// Median of durations.
fn median_duration(v: &mut [Duration]) -> Option<Duration> {
    v.sort();
    v.get(v.len() / 2).copied()
}

fn err_text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Bench<'_> {
    fn popts(&self, crop: usize, bin: usize) -> PreprocessOptions {
        let mut o = PreprocessOptions::new(crop, bin);
        o.batch = self.opts.batch;
        o.device = if self.gpu { Device::Gpu } else { Device::Cpu };
        o
    }

    fn what_pre(&self, crop: usize, bin: usize, dark: bool) -> String {
        format!(
            "crop {crop} about the centre, bin {bin} by sum, f32{}",
            if dark {
                ", dark subtracted (clamped at 0)"
            } else {
                ", no dark"
            }
        )
    }

    /// The `.npy` stack (generated, or reused when kept), then read once to warm the cache.
    fn stack(&self, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let o = self.opts;
        let (h, w) = o.shape;
        let path = self.dir.join(format!("stack-{}x{h}x{w}-u16.npy", o.frames));
        let header = crate::ptycho::simulate::npy_header(ElementType::U16, &[o.frames, h as u64, w as u64]);
        let fb = h * w * 2;
        let want_len = header.len() as u64 + o.frames * fb as u64;
        let fail = |p: &Path, e: std::io::Error| PtychoBenchError::File(p.to_path_buf(), e);
        let reuse = o.keep && std::fs::metadata(&path).is_ok_and(|m| m.len() == want_len);
        if !reuse {
            progress(&format!(
                "generating {} frames of {h}x{w} u16 ({:.1} GB) in {}",
                o.frames,
                want_len as f64 / 1e9,
                self.dir.display()
            ));
            let part = path.with_extension("npy.part");
            let mut f =
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&part).map_err(|e| fail(&part, e))?);
            f.write_all(&header).map_err(|e| fail(&part, e))?;
            let bg = background(o.shape);
            let mut buf = vec![0u8; fb];
            for i in 0..o.frames {
                sc_frame(i, o.shape, &bg, &mut buf);
                f.write_all(&buf).map_err(|e| fail(&part, e))?;
            }
            f.into_inner().map_err(|e| fail(&part, e.into_error()))?;
            std::fs::rename(&part, &path).map_err(|e| fail(&path, e))?;
        }
        progress("reading the stack once (page cache)");
        let mut f = std::fs::File::open(&path).map_err(|e| fail(&path, e))?;
        let mut buf = vec![0u8; 16 << 20];
        while f.read(&mut buf).map_err(|e| fail(&path, e))? > 0 {}
        Ok(path)
    }

    fn file_row(&self, path: &Path, dark: &[f32]) -> PtychoRow {
        let o = self.opts;
        let mut row = PtychoRow::new(RowKind::File, "file", &self.device);
        let (h, w) = o.shape;
        row.what = format!(
            "{} frames of {h}x{w} u16 from a page-cached .npy → {} → {} memory",
            o.frames,
            self.what_pre(o.crop, o.bin, true),
            if self.gpu { "GPU" } else { "host" }
        );
        row.goal = Some(Goal {
            text: format!("≥ {TARGET_FILE_FPS:.0} frames/s on a GPU"),
            met: None,
        });
        if let Err(e) = self.file_inner(path, dark, &mut row) {
            row.status = RowStatus::Failed(e);
        }
        row
    }

    fn file_inner(&self, path: &Path, dark: &[f32], row: &mut PtychoRow) -> std::result::Result<(), String> {
        let o = self.opts;
        let store = NpyStore::open(path).map_err(err_text)?;
        let popts = self.popts(o.crop, o.bin);
        let output = if self.gpu { Output::Device } else { Output::Host };
        let rows = PtychoParams::new(o.shape, o.crop, o.bin).rows_needed();
        let w = o.shape.1;
        row.io = if self.gpu {
            let b = crate::io::FileHandle::open(path)
                .and_then(|f| f.backend_report())
                .map_err(err_text)?;
            format!("{b}; rows {rows:?} of each frame read")
        } else {
            format!("host pread through the page cache; rows {rows:?} of each frame read")
        };
        // checked before timing: a few frames against the reference computed here
        let r = preprocess(&store, Some(dark), &popts, output.clone(), &mut |_, _| {}).map_err(err_text)?;
        if r.gpu != self.gpu || r.frames != o.frames {
            return Err(format!(
                "ran on the {} with {} frames",
                if r.gpu { "GPU" } else { "CPU" },
                r.frames
            ));
        }
        let ofb = (o.crop / o.bin).pow(2) * 4;
        for i in probes(o.frames) {
            let frame = store.read_frames_to_vec(i..i + 1, None).map_err(err_text)?;
            let want = reference(&frame, o.shape, Some(dark), o.crop, o.bin);
            let at = i as usize * ofb;
            let got = match &r.data {
                Frames::Host(v) => v[at..at + ofb].to_vec(),
                Frames::Device(d) => {
                    let mut v = vec![0u8; ofb];
                    d.copy_to_host_at(at, &mut v).map_err(err_text)?;
                    v
                }
                Frames::Zarr(_) => return Err("no output in memory".into()),
            };
            same("file", i, &got, &want)?;
        }
        drop(r);
        let mut times = Vec::new();
        for _ in 0..o.repeats {
            let t = Instant::now();
            // preprocess returns once the last kernel has run (it waits for the saturated count)
            let r = preprocess(&store, Some(dark), &popts, output.clone(), &mut |_, _| {}).map_err(err_text)?;
            times.push(t.elapsed().as_secs_f64());
            drop(r);
        }
        row.frames = o.frames;
        row.bytes = o.frames * (rows.len() * w * 2) as u64;
        row.timing = timing(&times);
        row.note = format!("GB/s counts the bytes read (rows {rows:?}); batches of {}", o.batch);
        if let (Some(fps), Some(g)) = (row.fps(), row.goal.as_mut()) {
            g.met = self.gpu.then_some(fps >= TARGET_FILE_FPS);
        }
        Ok(())
    }

    fn kernel_row(&self, path: &Path, dark: &[f32]) -> PtychoRow {
        let o = self.opts;
        let k = o.kernel_frames.min(o.frames as usize);
        let mut row = PtychoRow::new(RowKind::Kernel, "kernel", &self.device);
        let (h, w) = o.shape;
        row.what = format!(
            "the fused kernel alone on {k} whole {h}x{w} u16 frames resident in {} memory → {}",
            if self.gpu { "GPU" } else { "host" },
            self.what_pre(o.crop, o.bin, true)
        );
        row.io = if self.gpu {
            "none (device-resident input and output)".into()
        } else {
            "none (host-resident input and output)".into()
        };
        if let Err(e) = self.kernel_inner(path, dark, k, &mut row) {
            row.status = RowStatus::Failed(e);
        }
        row
    }

    fn kernel_inner(
        &self,
        path: &Path,
        dark: &[f32],
        k: usize,
        row: &mut PtychoRow,
    ) -> std::result::Result<(), String> {
        let o = self.opts;
        let (h, _) = o.shape;
        let store = NpyStore::open(path).map_err(err_text)?;
        let host = store.read_frames_to_vec(0..k as u64, None).map_err(err_text)?;
        let plan =
            PtychoPlan::new(PtychoParams::new(o.shape, o.crop, o.bin), Some(dark), None, None).map_err(err_text)?;
        let ofb = plan.params().out_frame_bytes();
        let fb = store.frame_bytes();
        let check = |out: &[u8]| -> std::result::Result<(), String> {
            for i in probes(k as u64) {
                let at = i as usize;
                let want = reference(&host[at * fb..(at + 1) * fb], o.shape, Some(dark), o.crop, o.bin);
                same("kernel", i, &out[at * ofb..(at + 1) * ofb], &want)?;
            }
            Ok(())
        };
        let mut times = Vec::new();
        let passes;
        if self.gpu {
            let d_in = DeviceBuffer::from_host(&host).map_err(err_text)?;
            let mut d_out = DeviceBuffer::new(k * ofb).map_err(err_text)?;
            let mut dev = PtychoDevice::new(&plan).map_err(err_text)?;
            let stream = Stream::new().map_err(err_text)?;
            crate::io::gpu::gpu().and_then(|g| g.synchronize()).map_err(err_text)?;
            dev.run(&d_in, k, 0, h, &mut d_out, &stream).map_err(err_text)?;
            dev.take_saturated(&stream).map_err(err_text)?;
            check(&d_out.to_host_vec().map_err(err_text)?)?;
            // at least 8192 frames per timed run: many launches, one synchronisation
            passes = 8192usize.div_ceil(k).clamp(4, 256);
            for _ in 0..o.repeats {
                let t = Instant::now();
                for _ in 0..passes {
                    dev.run(&d_in, k, 0, h, &mut d_out, &stream).map_err(err_text)?;
                }
                stream.synchronize().map_err(err_text)?;
                times.push(t.elapsed().as_secs_f64());
            }
            row.note = format!("{passes} launches of {k} frames per timed run, one stream synchronisation");
        } else {
            let ctx = crate::io::Context::from_env().map_err(err_text)?;
            let mut out = vec![0u8; k * ofb];
            ctx.compute(|| plan.run_host(&host, k, 0, h, &mut out))
                .map_err(err_text)?;
            check(&out)?;
            passes = 1;
            for _ in 0..o.repeats {
                let t = Instant::now();
                ctx.compute(|| plan.run_host(&host, k, 0, h, &mut out))
                    .map_err(err_text)?;
                times.push(t.elapsed().as_secs_f64());
            }
            row.note = format!("the CPU reference on the context's compute threads, {k} frames per timed run");
        }
        row.frames = (passes * k) as u64;
        row.bytes = row.frames * (o.crop * o.crop * 2) as u64;
        row.note += "; GB/s counts the crop's input bytes";
        row.timing = timing(&times);
        Ok(())
    }

    fn receiver(&self) -> crate::ptycho::stream::StreamResult<Receiver> {
        let ro = ReceiverOptions {
            socket: SocketOptions {
                timeout: Some(SOCKET_TIMEOUT),
                ..SocketOptions::default()
            },
            channel: None,
        };
        Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), ro)
    }

    fn sender_opts(format: WireFormat) -> SenderOptions {
        let mut so = SenderOptions::new(format);
        so.socket.timeout = Some(SOCKET_TIMEOUT);
        so
    }

    /// One series through [`run_pipeline_parallel`] on `self.opts.connections` loopback
    /// connections; `send(k, sender)` runs on a thread of its own per connection `k`. Lost
    /// frames are counted ([`GapPolicy::Record`]), not errors.
    fn series<F>(
        &self,
        popts: &PreprocessOptions,
        dark: Option<&[f32]>,
        zarr: Option<PathBuf>,
        format: WireFormat,
        send: F,
    ) -> std::result::Result<StreamReport, String>
    where
        F: Fn(usize, &mut Sender) -> crate::ptycho::stream::StreamResult<()> + Send + Sync + 'static,
    {
        let send = Arc::new(send);
        let mut rxs = Vec::new();
        let mut threads = Vec::new();
        for k in 0..self.opts.connections.max(1) {
            let rx = self.receiver().map_err(err_text)?;
            let mut tx = Sender::new(&Endpoint::Connect(rx.endpoint().to_string()), Self::sender_opts(format))
                .map_err(err_text)?;
            let send = send.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("tiledio-bench-send-{k}"))
                    .spawn(move || send(k, &mut tx))
                    .map_err(err_text)?,
            );
            rxs.push(rx);
        }
        let sinks = Sinks { zarr, publisher: None };
        let p = PipelineOptions {
            gaps: GapPolicy::Record,
            ..PipelineOptions::default()
        };
        // on an error the senders end by their socket timeout: not waited for
        let r = run_pipeline_parallel(rxs, popts, dark, sinks, &p, &mut |_, _| {}).map_err(err_text)?;
        for th in threads {
            th.join()
                .map_err(|_| "a sender thread panicked".to_string())?
                .map_err(|e| format!("sender: {e}"))?;
        }
        Ok(r)
    }

    /// Checks a series written to `zarr` against the reference of `frame(i)`.
    #[allow(clippy::too_many_arguments)]
    fn check_zarr(
        what: &str,
        zarr: &Path,
        n: u64,
        shape: (usize, usize),
        dark: Option<&[f32]>,
        crop: usize,
        bin: usize,
        frame: &dyn Fn(u64) -> Vec<u8>,
    ) -> std::result::Result<(), String> {
        let z = crate::zarr::ZarrArray::open(zarr).map_err(err_text)?;
        let ofb = (crop / bin).pow(2) * 4;
        let mut all = vec![0u8; n as usize * ofb];
        z.read_all(&mut all[..]).map_err(err_text)?;
        drop(z);
        let _ = std::fs::remove_dir_all(zarr);
        for i in 0..n {
            let want = reference(&frame(i), shape, dark, crop, bin);
            same(what, i, &all[i as usize * ofb..(i as usize + 1) * ofb], &want)?;
        }
        Ok(())
    }

    fn stream_row(&self, dark: &[f32]) -> PtychoRow {
        let o = self.opts;
        let (h, w) = o.shape;
        let mut row = PtychoRow::new(RowKind::Stream, "stream", &self.device);
        row.what = format!(
            "loopback ZeroMQ (tcp 127.0.0.1), tiledio JSON, {} frames of {h}x{w} u16 → run_pipeline → {} (no sink)",
            o.frames,
            self.what_pre(o.crop, o.bin, true)
        );
        row.io = if self.gpu {
            "our ZMTP over TCP, one receiving thread per connection, frames merged into order; each batch's \
             crop rows gathered in one of two page-locked buffers, copied to the GPU asynchronously and \
             preprocessed there (no sink: the frames stay in GPU memory)"
                .into()
        } else {
            "our ZMTP over TCP into host buffers; preprocessed on the CPU".into()
        };
        row.goal = Some(Goal {
            text: format!("≥ {TARGET_STREAM_FPS:.0} frames/s"),
            met: None,
        });
        if let Err(e) = self.stream_inner(dark, &mut row) {
            row.status = RowStatus::Failed(e);
        }
        row
    }

    fn stream_inner(&self, dark: &[f32], row: &mut PtychoRow) -> std::result::Result<(), String> {
        let o = self.opts;
        let shape = o.shape;
        let bg = background(shape);
        let distinct = o.frames.min(8);
        let content: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..distinct)
                .map(|i| {
                    let mut f = vec![0u8; shape.0 * shape.1 * 2];
                    sc_frame(i, shape, &bg, &mut f);
                    f
                })
                .collect(),
        );
        let popts = self.popts(o.crop, o.bin);
        let conns = self.opts.connections.max(1);
        // each connection: its own start and end, and every conns-th frame
        let send_n = |n: u64, content: Arc<Vec<Vec<u8>>>| {
            move |k: usize, tx: &mut Sender| {
                tx.start(n, shape, ElementType::U16)?;
                for i in (k as u64..n).step_by(conns) {
                    tx.image(i, i as f64, 0.0, &content[(i % content.len() as u64) as usize])?;
                }
                tx.end()
            }
        };
        // checked first: a short series into Zarr
        let zarr = self.dir.join("stream-check.zarr");
        let k = distinct;
        let r = self.series(
            &popts,
            Some(dark),
            Some(zarr.clone()),
            WireFormat::Tiledio,
            send_n(k, content.clone()),
        )?;
        if r.frames != k || r.gpu != self.gpu {
            return Err(format!("check series: {} of {k} frames (gpu {})", r.frames, r.gpu));
        }
        let c2 = content.clone();
        Self::check_zarr("stream", &zarr, k, shape, Some(dark), o.crop, o.bin, &|i| {
            c2[(i % c2.len() as u64) as usize].clone()
        })?;
        let mut times = Vec::new();
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        let mut lost = 0;
        for _ in 0..o.repeats {
            let r = self.series(
                &popts,
                Some(dark),
                None,
                WireFormat::Tiledio,
                send_n(o.frames, content.clone()),
            )?;
            lost += r.expected - r.frames;
            if r.fps > 0.0 {
                times.push(r.frames as f64 / r.fps);
            }
            p50.push(r.latency_p50);
            p99.push(r.latency_p99);
        }
        row.frames = o.frames;
        row.bytes = o.frames * (shape.0 * shape.1 * 2) as u64;
        row.timing = timing(&times);
        row.lost = Some(lost);
        row.latency_p50 = median_duration(&mut p50);
        row.latency_p99 = median_duration(&mut p99);
        row.note = format!(
            "frames/s from the first frame's arrival to the last frame's output (StreamReport); GB/s counts the \
             frames' bytes on the wire; batches of {}; {} connections",
            o.batch, o.connections
        );
        if lost > 0 {
            return Err(format!("{lost} frames lost over {} series", o.repeats));
        }
        if let (Some(fps), Some(g)) = (row.fps(), row.goal.as_mut()) {
            g.met = Some(fps >= TARGET_STREAM_FPS);
        }
        Ok(())
    }

    /// The Stream V2 messages (start, images, end) of a bslz4 series of `n` frames, encoded
    /// by our [`Sender`] and captured raw from a ZMTP PULL socket, several senders in parallel.
    fn encode_v2(
        n: u64,
        shape: (usize, usize),
        content: &Arc<Vec<Vec<u8>>>,
    ) -> std::result::Result<Vec<Vec<u8>>, String> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |v| v.get())
            .min(n as usize)
            .max(1);
        let per = n.div_ceil(threads as u64);
        // no empty share: each sender has at least one image
        let threads = n.div_ceil(per) as usize;
        let parts: Vec<std::result::Result<Vec<Vec<u8>>, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|t| {
                    let content = content.clone();
                    s.spawn(move || -> std::result::Result<Vec<Vec<u8>>, String> {
                        let range = t * per..((t + 1) * per).min(n);
                        let so = SocketOptions {
                            timeout: Some(SOCKET_TIMEOUT),
                            ..SocketOptions::default()
                        };
                        let mut pull =
                            Socket::open(SocketType::Pull, &Endpoint::Listen("tcp://127.0.0.1:*".into()), so)
                                .map_err(err_text)?;
                        let mut so = Self::sender_opts(WireFormat::StreamV2);
                        so.compression = Compression::Bslz4;
                        let mut tx =
                            Sender::new(&Endpoint::Connect(pull.endpoint().to_string()), so).map_err(err_text)?;
                        let r2 = range.clone();
                        let send = std::thread::spawn(move || -> crate::ptycho::stream::StreamResult<()> {
                            tx.start(n, shape, ElementType::U16)?;
                            for i in r2 {
                                tx.image(i, i as f64, 0.0, &content[(i % content.len() as u64) as usize])?;
                            }
                            tx.end()
                        });
                        let mut msgs = Vec::new();
                        for _ in 0..range.end - range.start + 2 {
                            let mut parts = Vec::new();
                            pull.recv_multipart(&mut parts).map_err(err_text)?;
                            if parts.len() != 1 {
                                return Err(format!("a Stream V2 message of {} parts", parts.len()));
                            }
                            msgs.push(parts.swap_remove(0));
                        }
                        send.join()
                            .map_err(|_| "an encoding sender panicked".to_string())?
                            .map_err(err_text)?;
                        Ok(msgs)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("an encoder panicked".into())))
                .collect()
        });
        let mut out = Vec::with_capacity(n as usize + 2);
        let mut end = None;
        for (t, p) in parts.into_iter().enumerate() {
            let mut p = p?;
            let e = p.pop();
            if t == 0 {
                end = e;
                out.push(p.remove(0));
            } else {
                p.remove(0);
            }
            out.extend(p);
        }
        out.push(end.ok_or("no end message")?);
        Ok(out)
    }

    fn bslz4_row(&self, progress: &mut dyn FnMut(&str)) -> PtychoRow {
        let o = self.opts;
        let (h, w) = o.eiger_shape;
        let mut row = PtychoRow::new(RowKind::Bslz4, "bslz4", &self.device);
        row.what = format!(
            "loopback ZeroMQ, DECTRIS Stream V2 with bitshuffle-LZ4, {} Eiger-like frames of {h}x{w} u16 \
             (Poisson photon counts, encoded before timing) → decode → run_pipeline → {} (no sink)",
            o.eiger_frames,
            self.what_pre(o.eiger_crop, o.eiger_bin, false)
        );
        row.io = if self.gpu {
            "our ZMTP over TCP; bitshuffle-LZ4 decoded on each connection's receiving thread (CPU), frames \
             merged into order; each batch gathered in page-locked memory, copied to the GPU asynchronously and \
             preprocessed there (no sink: the frames stay in GPU memory)"
                .into()
        } else {
            "our ZMTP over TCP; bitshuffle-LZ4 decoded on each connection's receiving thread; preprocessed on the \
             CPU"
            .into()
        };
        row.goal = Some(Goal {
            text: format!("≥ {TARGET_BSLZ4_FPS:.0} frames/s"),
            met: None,
        });
        if let Err(e) = self.bslz4_inner(&mut row, progress) {
            row.status = RowStatus::Failed(e);
        }
        row
    }

    fn bslz4_inner(&self, row: &mut PtychoRow, progress: &mut dyn FnMut(&str)) -> std::result::Result<(), String> {
        let o = self.opts;
        let shape = o.eiger_shape;
        let distinct = o.eiger_frames.min(16);
        let content: Arc<Vec<Vec<u8>>> = Arc::new((0..distinct).map(|i| eiger_frame(i, shape)).collect());
        let popts = self.popts(o.eiger_crop, o.eiger_bin);
        let conns = o.connections.max(1);
        // connection k replays the start, every conns-th image from image k, and the end
        let replay = |msgs: Arc<Vec<Vec<u8>>>| {
            move |k: usize, tx: &mut Sender| {
                let n = msgs.len().saturating_sub(2);
                let images = (1 + k..1 + n).step_by(conns);
                std::iter::once(0)
                    .chain(images)
                    .chain(std::iter::once(n + 1))
                    .try_for_each(|i| tx.send_raw(&[msgs[i].as_slice()]))
            }
        };
        let k = distinct.min(8);
        let check = Arc::new(Self::encode_v2(k, shape, &content)?);
        let zarr = self.dir.join("bslz4-check.zarr");
        let r = self.series(&popts, None, Some(zarr.clone()), WireFormat::StreamV2, replay(check))?;
        if r.frames != k {
            return Err(format!("check series: {} of {k} frames", r.frames));
        }
        Self::check_zarr("bslz4", &zarr, k, shape, None, o.eiger_crop, o.eiger_bin, &|i| {
            content[(i % content.len() as u64) as usize].clone()
        })?;
        progress(&format!("bslz4: encoding {} frames", o.eiger_frames));
        let msgs = Arc::new(Self::encode_v2(o.eiger_frames, shape, &content)?);
        let wire: u64 = msgs.iter().map(|m| m.len() as u64).sum();
        progress("bslz4: running");
        let mut times = Vec::new();
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        let mut lost = 0;
        for _ in 0..o.repeats {
            let r = self.series(&popts, None, None, WireFormat::StreamV2, replay(msgs.clone()))?;
            lost += r.expected - r.frames;
            if r.fps > 0.0 {
                times.push(r.frames as f64 / r.fps);
            }
            p50.push(r.latency_p50);
            p99.push(r.latency_p99);
        }
        let raw = o.eiger_frames * (shape.0 * shape.1 * 2) as u64;
        row.frames = o.eiger_frames;
        row.bytes = raw;
        row.timing = timing(&times);
        row.lost = Some(lost);
        row.latency_p50 = median_duration(&mut p50);
        row.latency_p99 = median_duration(&mut p99);
        let decode = decode_rate(&content)?;
        row.note = format!(
            "{:.1} MB on the wire for {:.1} MB of frames (compression {:.1}x); GB/s counts the decoded bytes; \
             bitshuffle-LZ4 decoding alone on one thread (as each receiving thread does it): {decode:.0} frames/s; \
             {conns} connections",
            wire as f64 / 1e6,
            raw as f64 / 1e6,
            raw as f64 / wire.max(1) as f64
        );
        if lost > 0 {
            return Err(format!("{lost} frames lost over {} series", o.repeats));
        }
        if let (Some(fps), Some(g)) = (row.fps(), row.goal.as_mut()) {
            g.met = Some(fps >= TARGET_BSLZ4_FPS);
        }
        Ok(())
    }

    fn hdf5_row(&self, progress: &mut dyn FnMut(&str)) -> PtychoRow {
        let o = self.opts;
        let (h, w) = o.eiger_shape;
        let mut row = PtychoRow::new(RowKind::Hdf5, "hdf5", &self.device);
        row.what = format!(
            "{} Eiger-like frames of {h}x{w} u16 (the bslz4 row's) in a page-cached HDF5 file, one bitshuffle-LZ4 \
             chunk per frame → preprocess from Hdf5Store → {} → {} memory",
            o.eiger_frames,
            self.what_pre(o.eiger_crop, o.eiger_bin, false),
            if self.gpu { "GPU" } else { "host" }
        );
        row.io = if self.gpu {
            "whole chunks read raw (host pread) and decoded on the CPU threads into one of two page-locked \
             buffers in turn; each batch copied to the GPU asynchronously and preprocessed there while the next \
             decodes"
                .into()
        } else {
            "whole chunks read raw (host pread) and decoded on the CPU compute threads; preprocessed on the CPU".into()
        };
        row.goal = Some(Goal {
            text: format!("≥ {TARGET_BSLZ4_FPS:.0} frames/s (the bslz4 target)"),
            met: None,
        });
        if let Err(e) = self.hdf5_inner(&mut row, progress) {
            row.status = RowStatus::Failed(e);
        }
        row
    }

    fn hdf5_inner(&self, row: &mut PtychoRow, progress: &mut dyn FnMut(&str)) -> std::result::Result<(), String> {
        let o = self.opts;
        let shape = o.eiger_shape;
        let (h, w) = shape;
        let n = o.eiger_frames;
        let distinct = n.min(16);
        let content: Vec<Vec<u8>> = (0..distinct).map(|i| eiger_frame(i, shape)).collect();
        let frame = |i: u64| &content[(i % distinct) as usize];
        let path = self.dir.join(format!("eiger-{n}x{h}x{w}-bslz4.h5"));
        let reuse = o.keep && path.is_file();
        if !reuse {
            progress(&format!("hdf5: writing {n} frames with bitshuffle-LZ4 chunks"));
            let mut wr = Hdf5Writer::create(
                &path,
                "/entry/data/data",
                shape,
                ElementType::U16,
                Hdf5Layout::BitshuffleLz4 { block: 0 },
            )
            .map_err(err_text)?;
            let mut batch = Vec::new();
            for i in 0..n {
                batch.extend_from_slice(frame(i));
                if batch.len() >= 64 * h * w * 2 || i + 1 == n {
                    wr.push_frames(&batch).map_err(err_text)?;
                    batch.clear();
                }
            }
            wr.finish().map_err(err_text)?;
        }
        // read once: the file's size, and a warm page cache
        let size = std::fs::read(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len() as u64;
        let store = Hdf5Store::open(&path, "/entry/data/data").map_err(err_text)?;
        if (store.frames(), store.shape(), store.dtype()) != (n, shape, ElementType::U16) {
            return Err(format!(
                "{}: {} frames of {:?} {} read back",
                path.display(),
                store.frames(),
                store.shape(),
                store.dtype()
            ));
        }
        let popts = self.popts(o.eiger_crop, o.eiger_bin);
        let output = if self.gpu { Output::Device } else { Output::Host };
        let r = preprocess(&store, None, &popts, output.clone(), &mut |_, _| {}).map_err(err_text)?;
        let ofb = (o.eiger_crop / o.eiger_bin).pow(2) * 4;
        for i in probes(n) {
            let want = reference(frame(i), shape, None, o.eiger_crop, o.eiger_bin);
            let at = i as usize * ofb;
            let got = match &r.data {
                Frames::Host(v) => v[at..at + ofb].to_vec(),
                Frames::Device(d) => {
                    let mut v = vec![0u8; ofb];
                    d.copy_to_host_at(at, &mut v).map_err(err_text)?;
                    v
                }
                Frames::Zarr(_) => return Err("no output in memory".into()),
            };
            same("hdf5", i, &got, &want)?;
        }
        drop(r);
        let mut times = Vec::new();
        for _ in 0..o.repeats {
            let t = Instant::now();
            let r = preprocess(&store, None, &popts, output.clone(), &mut |_, _| {}).map_err(err_text)?;
            times.push(t.elapsed().as_secs_f64());
            drop(r);
        }
        let raw = n * (h * w * 2) as u64;
        row.frames = n;
        row.bytes = raw;
        row.timing = timing(&times);
        row.note = format!(
            "file of {:.1} MB for {:.1} MB of frames (compression {:.1}x); GB/s counts the decoded bytes; batches \
             of {}",
            size as f64 / 1e6,
            raw as f64 / 1e6,
            raw as f64 / size.max(1) as f64,
            o.batch
        );
        if !o.keep {
            let _ = std::fs::remove_file(&path);
        }
        if let (Some(fps), Some(g)) = (row.fps(), row.goal.as_mut()) {
            g.met = Some(fps >= TARGET_BSLZ4_FPS);
        }
        Ok(())
    }

    fn python(&self) -> PathBuf {
        self.opts
            .python
            .clone()
            .or_else(|| std::env::var_os("TILEDIO_PYTHON").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("python3"))
    }

    /// Runs the peer script; its last stdout line as JSON, or why not.
    fn peer(&self, args: &[&str]) -> std::result::Result<Value, String> {
        let py = self.python();
        let out = Command::new(&py)
            .arg("-c")
            .arg(PEER)
            .args(args)
            .env("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
            .output()
            .map_err(|e| format!("{} not found or not runnable: {e}", py.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            return Err(format!(
                "{} {}: {} ({})",
                py.display(),
                args[0],
                last.trim(),
                out.status
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        serde_json::from_str(line).map_err(|e| format!("{} {}: output {line:?}: {e}", py.display(), args[0]))
    }

    /// Our raw loopback: the stream row's messages without preprocessing, timed on the
    /// receiver from the first image to the last (as the pyzmq peer).
    fn our_loopback(&self, content: &Arc<Vec<Vec<u8>>>) -> std::result::Result<f64, String> {
        let o = self.opts;
        let shape = o.shape;
        let n = o.frames;
        let mut rx = self.receiver().map_err(err_text)?;
        let mut tx = Sender::new(
            &Endpoint::Connect(rx.endpoint().to_string()),
            Self::sender_opts(WireFormat::Tiledio),
        )
        .map_err(err_text)?;
        let c = content.clone();
        let th = std::thread::spawn(move || -> crate::ptycho::stream::StreamResult<()> {
            tx.start(n, shape, ElementType::U16)?;
            for i in 0..n {
                tx.image(i, 0.0, 0.0, &c[(i % c.len() as u64) as usize])?;
            }
            tx.end()
        });
        rx.expect_start().map_err(err_text)?;
        let mut t0 = Instant::now();
        for i in 0..n {
            match rx.recv().map_err(err_text)? {
                Message::Image { frame, data, .. } => {
                    if frame != i || data.len() != shape.0 * shape.1 * 2 {
                        return Err(format!("loopback: frame {frame} of {} bytes at {i}", data.len()));
                    }
                    if i == 0 {
                        t0 = Instant::now();
                    }
                    rx.recycle(data);
                }
                m => return Err(format!("loopback: unexpected {m:?} at frame {i}")),
            }
        }
        let dt = t0.elapsed().as_secs_f64();
        if rx.recv().map_err(err_text)? != Message::End {
            return Err("loopback: no end message".into());
        }
        th.join()
            .map_err(|_| "the sender panicked".to_string())?
            .map_err(err_text)?;
        Ok(dt)
    }

    fn peer_rows(&self, stack: &Path, dark: &[f32], rates: Rates, progress: &mut dyn FnMut(&str)) -> Vec<PtychoRow> {
        let Rates {
            file: file_fps,
            stream: stream_fps,
            kernel: kernel_fps,
        } = rates;
        let o = self.opts;
        let (h, w) = o.shape;
        let size = h * w * 2;
        let cpu = "cpu (loopback)";
        let mut ours = PtychoRow::new(RowKind::Peers, "peers: tiledio zmtp", cpu);
        ours.what = format!(
            "our loopback alone: {} two-part messages (JSON header + {size} bytes), Sender thread → Receiver, no \
             preprocessing; timed on the receiver from the first message to the last",
            o.frames
        );
        ours.io = "our ZMTP over TCP 127.0.0.1".into();
        let mut py = PtychoRow::new(RowKind::Peers, "peers: pyzmq", cpu);
        py.what = format!(
            "pyzmq loopback: PUSH (this process) → PULL (a forked process), {} two-part messages of the same size, \
             copy=False; timed on the receiver from the first message to the last",
            o.frames
        );
        py.io = "libzmq over TCP 127.0.0.1".into();
        py.goal = Some(Goal {
            text: format!("the stream row ≥ {:.0}% of pyzmq", TARGET_PEER_RATIO * 100.0),
            met: None,
        });
        let bg = background(o.shape);
        let content: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..o.frames.min(8))
                .map(|i| {
                    let mut f = vec![0u8; size];
                    sc_frame(i, o.shape, &bg, &mut f);
                    f
                })
                .collect(),
        );
        let mut times = Vec::new();
        progress("peers: our loopback");
        for _ in 0..o.repeats {
            match self.our_loopback(&content) {
                Ok(t) => times.push(t),
                Err(e) => {
                    ours.status = RowStatus::Failed(e);
                    break;
                }
            }
        }
        if ours.status == RowStatus::Measured {
            ours.frames = o.frames.saturating_sub(1);
            ours.bytes = ours.frames * size as u64;
            ours.timing = timing(&times);
        }
        progress("peers: pyzmq");
        match self.peer(&["check", "zmq"]) {
            Err(e) => py.status = RowStatus::Missing(format!("pyzmq: {e}")),
            Ok(v) => {
                let reps = o.repeats.to_string();
                match self.peer(&["zmq", &o.frames.to_string(), &size.to_string(), &reps]) {
                    Err(e) => py.status = RowStatus::Failed(e),
                    Ok(r) => {
                        let secs: Vec<f64> = r["seconds"]
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_f64).collect())
                            .unwrap_or_default();
                        py.frames = r["messages"].as_u64().unwrap_or(0);
                        py.bytes = py.frames * size as u64;
                        py.timing = timing(&secs);
                        py.device = format!("cpu (pyzmq {}, libzmq {})", v["pyzmq"], v["libzmq"]).replace('"', "");
                        if py.timing.is_none() {
                            py.status = RowStatus::Failed(format!("no timings in {r}"));
                        }
                    }
                }
            }
        }
        // the target compares what a user gets: our stream (every connection, preprocessing
        // included) against pyzmq's one PUSH → PULL; the raw single-connection ratio is noted
        if let Some(b) = py.fps() {
            let mut notes = Vec::new();
            if let Some(s) = stream_fps {
                py.ratio = Some(s / b);
                if let Some(g) = py.goal.as_mut() {
                    g.met = Some(s / b >= TARGET_PEER_RATIO);
                }
                notes.push(format!(
                    "ratio = the stream row {s:.0} frames/s ({} connections, with preprocessing) / pyzmq {b:.0} \
                     messages/s",
                    o.connections
                ));
            }
            if let Some(a) = ours.fps() {
                notes.push(format!(
                    "one connection, no preprocessing: ours {a:.0} / pyzmq {b:.0} = {:.2}",
                    a / b
                ));
            }
            py.note = notes.join("; ");
        }
        let mut rows = vec![ours, py];
        // JAX, when it imports
        let mut jx = PtychoRow::new(RowKind::Peers, "peers: jax", "");
        jx.what = format!(
            "JAX: np.load(mmap) of the file row's .npy, batches of {} through jax.device_put and a jitted dark \
             subtract (clamped) + crop {} + sum-rebin {}",
            o.batch, o.crop, o.bin
        );
        jx.io = "numpy memory map (page cache) → jax.device_put".into();
        // the fused kernel's peer: the same jitted function on resident frames, when our kernel
        // row ran on the GPU (JAX's CPU backend against our kernel would say nothing)
        let mut jk = PtychoRow::new(RowKind::Peers, "peers: jax kernel", "");
        let k = o.kernel_frames.min(o.frames as usize);
        jk.what = format!(
            "JAX: the same jitted function alone on {k} frames resident in GPU memory, launched as our kernel row (calls per timed run, one block_until_ready)"
        );
        jk.io = "none (device-resident input and output)".into();
        jk.goal = Some(Goal {
            text: "our kernel's time ≤ 1.1× JAX's".into(),
            met: None,
        });
        let kernel_passes = (self.gpu && kernel_fps.is_some()).then(|| 8192usize.div_ceil(k.max(1)).clamp(4, 256));
        progress("peers: jax");
        match self.peer(&["check", "jax"]) {
            Err(e) => {
                jx.status = RowStatus::Missing(format!("jax: {e}"));
                jk.status = RowStatus::Missing(format!("jax: {e}"));
            }
            Ok(_) => match self.jax(stack, dark, &mut jx, kernel_passes.map(|p| (k, p, &mut jk))) {
                Ok(()) => {
                    if let (Some(ours), Some(theirs)) = (file_fps, jx.fps()) {
                        jx.ratio = Some(ours / theirs);
                        jx.note += &format!("; ratio = file row {ours:.0} / jax {theirs:.0} frames/s");
                    } else {
                        jx.note += "; no ratio: the file row did not run";
                    }
                    match (kernel_fps, jk.fps()) {
                        _ if kernel_passes.is_none() => {
                            jk.status = RowStatus::Missing("our kernel row did not run on the GPU".into());
                        }
                        (Some(ours), Some(theirs)) if jk.status == RowStatus::Measured => {
                            // time per frame, ours over JAX's: ≤ 1.1 is the target
                            let r = theirs / ours;
                            jk.ratio = Some(r);
                            if let Some(g) = jk.goal.as_mut() {
                                g.met = Some(r <= 1.1);
                            }
                            jk.note += &format!(
                                "; ratio = our kernel's time per frame / JAX's = {:.2} / {:.2} µs",
                                1e6 / ours,
                                1e6 / theirs
                            );
                        }
                        // the row says why it has no figures (jax() set its status)
                        _ => {}
                    }
                }
                Err(e) => {
                    jk.status = RowStatus::Failed(e.clone());
                    jx.status = RowStatus::Failed(e);
                }
            },
        }
        rows.push(jx);
        rows.push(jk);
        rows
    }

    /// The JAX peer's row, and with `kernel` (frames, calls per timed run, row) its kernel-only row.
    fn jax(
        &self,
        stack: &Path,
        dark: &[f32],
        row: &mut PtychoRow,
        kernel: Option<(usize, usize, &mut PtychoRow)>,
    ) -> std::result::Result<(), String> {
        let o = self.opts;
        let (h, w) = o.shape;
        let dark_path = self.dir.join("dark-f32.npy");
        let bytes: Vec<u8> = dark.iter().flat_map(|v| v.to_ne_bytes()).collect();
        crate::ptycho::simulate::write_npy_array(&dark_path, ElementType::F32, &[h as u64, w as u64], &bytes)
            .map_err(err_text)?;
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut args = vec![
            "jax".to_string(),
            s(stack),
            s(&dark_path),
            o.crop.to_string(),
            o.bin.to_string(),
            o.batch.to_string(),
            o.repeats.to_string(),
        ];
        if let Some((k, passes, _)) = &kernel {
            args.extend([k.to_string(), passes.to_string()]);
        }
        let r = self.peer(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let _ = std::fs::remove_file(&dark_path);
        let r = r?;
        let secs: Vec<f64> = r["seconds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        row.frames = r["frames"].as_u64().unwrap_or(0);
        row.bytes = row.frames * (PtychoParams::new(o.shape, o.crop, o.bin).rows_needed().len() * w * 2) as u64;
        row.timing = timing(&secs);
        row.device = format!("jax {}: {}", r["jax"], r["device"]).replace('"', "");
        let err = r["max_abs_err_frame0"].as_f64().unwrap_or(f64::NAN);
        row.note = format!("max |jax - numpy| on frame 0: {err:.3e}; GB/s counts the crop's rows");
        if row.timing.is_none() {
            return Err(format!("no timings in {r}"));
        }
        // integer counts less a dark of halves, summed in f32: any order is within rounding
        if err.is_nan() || err > 0.5 {
            return Err(format!("jax differs from numpy on frame 0 by {err}"));
        }
        if let Some((_, passes, kr)) = kernel {
            let secs: Vec<f64> = r["kernel_seconds"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            kr.frames = r["kernel_frames"].as_u64().unwrap_or(0);
            kr.bytes = kr.frames * (o.crop * o.crop * 2) as u64;
            kr.timing = timing(&secs);
            kr.device = row.device.clone();
            let kerr = r["kernel_max_abs_err_frame0"].as_f64().unwrap_or(f64::NAN);
            kr.note = format!(
                "{passes} calls per timed run; max |jax - numpy| on frame 0: {kerr:.3e}; GB/s counts the crop's input \
                 bytes"
            );
            if kr.timing.is_none() || kerr.is_nan() || kerr > 0.5 {
                kr.status = RowStatus::Failed(format!("jax kernel: no timings or frame 0 differs by {kerr}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_matches_the_library_on_the_cpu() {
        let shape = (40, 52);
        let bg = background(shape);
        let dark = dark_map(shape);
        let mut f = vec![0u8; shape.0 * shape.1 * 2];
        sc_frame(3, shape, &bg, &mut f);
        let plan = PtychoPlan::new(PtychoParams::new(shape, 24, 3), Some(&dark), None, None).unwrap();
        let mut out = vec![0u8; 8 * 8 * 4];
        plan.run_host(&f, 1, 0, shape.0, &mut out).unwrap();
        assert_eq!(out, reference(&f, shape, Some(&dark), 24, 3));
        // sparse: most pixels of an Eiger-like frame count nothing
        let e = eiger_frame(1, (514, 1030));
        let zeros: usize = e.chunks(2).filter(|c| c == &[0, 0]).count();
        assert!(zeros > 514 * 1030 * 9 / 10, "{zeros}");
        assert_eq!(probes(1), [0]);
        assert_eq!(probes(10), [0, 1, 5, 9]);
    }
}
