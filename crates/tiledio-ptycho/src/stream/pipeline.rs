//! [`run_pipeline`]: one series from a [`Receiver`] through the [`BatchPreprocessor`] into a
//! Zarr array and/or a [`Publisher`].

use super::error::{StreamError, StreamErrorKind as K};
use super::merge::Merge;
use super::message::{ImageMeta, Message};
use super::publisher::Publisher;
use super::receiver::{Receiver, kind_name};
use crate::error::{Result, usage};
use crate::preprocess::{BatchPreprocessor, Center, PreprocessOptions};
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tiledio_io::ElementType;
use tiledio_io::gpu::{DeviceBuffer, Event, PinnedBuffer};
use tiledio_kernels::OutputType;

/// Where the preprocessed frames go (either, both, or neither for a dry run).
#[derive(Debug, Default)]
pub struct Sinks<'a> {
    /// A new Zarr array `(N, S/B, S/B)`, one chunk per frame, complete only when the series
    /// is (an interrupted series leaves nothing at the path).
    pub zarr: Option<PathBuf>,
    /// A PtyPy publisher, fed each batch as it is done.
    pub publisher: Option<&'a mut Publisher>,
}

/// What to do about missing frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GapPolicy {
    /// A missing frame is an error (the default).
    #[default]
    Error,
    /// Missing frames are listed in [`StreamReport::gaps`] (the Zarr array keeps its fill
    /// value there; the publisher sends only the frames received). Repeated or backward frame
    /// indices are errors either way.
    Record,
}

/// Options of [`run_pipeline`] beyond the preprocessing.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Frames received but not yet preprocessed, at most (the bounded queue between the
    /// socket thread and the preprocessor: when it is full the socket is not read, and the
    /// sender is slowed down). `0`: twice the batch.
    pub queue: usize,
    /// Missing frames.
    pub gaps: GapPolicy,
    /// After an end message, how long to wait for frames still missing on the other
    /// connections ([`run_pipeline_parallel`]) before they count as gaps.
    pub drain: Duration,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            queue: 0,
            gaps: GapPolicy::Error,
            drain: Duration::from_secs(1),
        }
    }
}

/// What [`run_pipeline`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamReport {
    /// Frames the start message announced.
    pub expected: u64,
    /// Frames received and preprocessed.
    pub frames: u64,
    /// Missing frame ranges ([`GapPolicy::Record`]; empty otherwise).
    pub gaps: Vec<Range<u64>>,
    /// Frames per second, from the first image's arrival to the last frame's output.
    pub fps: f64,
    /// Median time from a frame's arrival to its output (written / published).
    pub latency_p50: Duration,
    /// 99th percentile of the same.
    pub latency_p99: Duration,
    /// Output side `S/B`.
    pub side: usize,
    /// Output element type.
    pub dtype: OutputType,
    /// Output values that saturated.
    pub saturated: u64,
    /// Whether the kernel ran on the GPU.
    pub gpu: bool,
}

/// Runs one series: waits for its start message, preprocesses the frames in batches of
/// `opts.batch` with one [`BatchPreprocessor`] (GPU when `opts.device` allows, else CPU),
/// writes each batch to the sinks, and returns at the end message. The socket is read on a
/// thread of its own into a bounded queue ([`PipelineOptions::queue`]); frame indices must
/// arrive in order from 0 (see [`GapPolicy`]). `progress(done, total)` runs after each batch.
/// Every wait, including the one for the start message, is bounded by the receiver's socket
/// timeout ([`super::ReceiverOptions::socket`]; `None` waits for ever).
///
/// ```
/// use tiledio_ptycho::stream::{Endpoint, PipelineOptions, Receiver, ReceiverOptions, Sender, SenderOptions, Sinks, WireFormat, run_pipeline};
/// use tiledio_ptycho::{Device, PreprocessOptions};
/// let rx = Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), ReceiverOptions::default())?;
/// let mut tx = Sender::new(&Endpoint::Connect(rx.endpoint().to_string()), SenderOptions::new(WireFormat::Tiledio))?;
/// let t = std::thread::spawn(move || -> Result<(), tiledio_ptycho::stream::StreamError> {
///     tx.start(3, (8, 8), tiledio_io::ElementType::U8)?;
///     for i in 0..3 {
///         tx.image(i, i as f64, 0.0, &[1u8; 64])?;
///     }
///     tx.end()
/// });
/// let mut o = PreprocessOptions::new(4, 2);
/// o.device = Device::Cpu;
/// let dir = tempfile::tempdir()?;
/// let sinks = Sinks { zarr: Some(dir.path().join("out.zarr")), publisher: None };
/// let r = run_pipeline(rx, &o, None, sinks, &PipelineOptions::default(), &mut |_, _| {})?;
/// assert_eq!((r.frames, r.side), (3, 2));
/// t.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`crate::PtychoError::Stream`] for socket errors, malformed messages, a missing or
/// repeated frame, a series that ends early, or frames of another shape or type than the
/// first; [`crate::PtychoError::Usage`] for [`Center::Auto`] (a stream has no frames to look
/// at beforehand); preprocessing and Zarr errors.
pub fn run_pipeline(
    receiver: Receiver,
    opts: &PreprocessOptions,
    dark: Option<&[f32]>,
    sinks: Sinks<'_>,
    popts: &PipelineOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<StreamReport> {
    run_pipeline_parallel(vec![receiver], opts, dark, sinks, popts, progress)
}

/// [`run_pipeline`] on one series arriving over several connections at once: the frames of a
/// PUSH socket that hands them round-robin to several PULL connections (as a detector's
/// Stream V2 stream does when several receivers connect: its images describe themselves), or
/// the shares of several senders, each with its own start and end (a tiledio-format image
/// needs a start on its own connection). Each connection is read (and its frames decoded) on a thread of its
/// own, and the frames are merged back into index order before batching. The series ends at
/// an end message once every frame has come, or every connection has ended, or the others
/// stayed silent for [`PipelineOptions::drain`].
///
/// ```
/// use tiledio_ptycho::stream::{Endpoint, PipelineOptions, Receiver, ReceiverOptions, Sender, SenderOptions, Sinks, WireFormat, run_pipeline_parallel};
/// use tiledio_ptycho::{Device, PreprocessOptions};
/// let listen = || Receiver::new(&Endpoint::Listen("tcp://127.0.0.1:*".into()), ReceiverOptions::default());
/// let rxs = vec![listen()?, listen()?];
/// // two senders, each with every other frame of a series of 6
/// let senders: Vec<_> = rxs.iter().enumerate().map(|(k, rx)| {
///     let at = Endpoint::Connect(rx.endpoint().to_string());
///     std::thread::spawn(move || -> Result<(), tiledio_ptycho::stream::StreamError> {
///         let mut tx = Sender::new(&at, SenderOptions::new(WireFormat::Tiledio))?;
///         tx.start(6, (8, 8), tiledio_io::ElementType::U8)?;
///         for i in (k as u64..6).step_by(2) {
///             tx.image(i, i as f64, 0.0, &[i as u8; 64])?;
///         }
///         tx.end()
///     })
/// }).collect();
/// let mut o = PreprocessOptions::new(4, 2);
/// o.device = Device::Cpu;
/// let r = run_pipeline_parallel(rxs, &o, None, Sinks::default(), &PipelineOptions::default(), &mut |_, _| {})?;
/// assert_eq!((r.frames, r.gaps.len()), (6, 0));
/// for t in senders {
///     t.join().unwrap()?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`run_pipeline`]; `Malformed` when two connections' start messages disagree.
pub fn run_pipeline_parallel(
    receivers: Vec<Receiver>,
    opts: &PreprocessOptions,
    dark: Option<&[f32]>,
    sinks: Sinks<'_>,
    popts: &PipelineOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<StreamReport> {
    if matches!(opts.center, Center::Auto(_)) {
        return Err(usage(
            "a stream needs a fixed crop centre (Center::Frame or Center::At)",
        ));
    }
    let n = receivers.len().max(1);
    let queue = if popts.queue == 0 {
        opts.batch.max(1) * 2
    } else {
        popts.queue
    };
    let mut merge = Merge::start(receivers, queue.div_ceil(n), popts.drain)?;
    let endpoint = merge.endpoint().to_string();
    // on an error the receiving threads end at their next message or timeout; not waited for
    Pipeline::new(&endpoint, opts, dark, sinks, popts).run(&mut merge, progress)
}

struct Pipeline<'a> {
    endpoint: &'a str,
    opts: &'a PreprocessOptions,
    dark: Option<&'a [f32]>,
    sinks: Sinks<'a>,
    popts: &'a PipelineOptions,
    pre: Option<BatchPreprocessor>,
    /// Series: frames, shape, dtype (once known).
    frames: u64,
    shape: (usize, usize),
    dtype: Option<ElementType>,
    side: usize,
    ofb: usize,
    zarr: Option<tiledio_zarr::ZarrArray>,
    /// The batch's input rows, on the CPU path.
    batch_in: Vec<u8>,
    /// The batch's input rows and buffers, on the GPU path.
    gpu: Option<GpuBatches>,
    /// Bytes of one frame's input rows.
    in_frame: usize,
    /// Frames of the batch: index, posx, posy, arrival.
    batch: Vec<(u64, f64, f64, Instant)>,
    out: Vec<u8>,
    next: u64,
    done: u64,
    gaps: Vec<Range<u64>>,
    latencies: Vec<Duration>,
    first: Option<Instant>,
    saturated: u64,
}

impl<'a> Pipeline<'a> {
    fn new(
        endpoint: &'a str,
        opts: &'a PreprocessOptions,
        dark: Option<&'a [f32]>,
        sinks: Sinks<'a>,
        popts: &'a PipelineOptions,
    ) -> Pipeline<'a> {
        Pipeline {
            endpoint,
            opts,
            dark,
            sinks,
            popts,
            pre: None,
            frames: 0,
            shape: (0, 0),
            dtype: None,
            side: 0,
            ofb: 0,
            zarr: None,
            batch_in: Vec::new(),
            gpu: None,
            in_frame: 0,
            batch: Vec::new(),
            out: Vec::new(),
            next: 0,
            done: 0,
            gaps: Vec::new(),
            latencies: Vec::new(),
            first: None,
            saturated: 0,
        }
    }

    fn err(&self, kind: K, m: impl Into<String>) -> crate::PtychoError {
        StreamError::new(self.endpoint, kind, m).into()
    }

    fn run(mut self, merge: &mut Merge, progress: &mut dyn FnMut(u64, u64)) -> Result<StreamReport> {
        match merge.next()? {
            (
                Message::Start {
                    frames, shape, dtype, ..
                },
                _,
                _,
            ) => self.start(frames, shape, dtype)?,
            (other, _, _) => {
                return Err(self.err(
                    K::Malformed,
                    format!("expected a start message, got {}", kind_name(&other)),
                ));
            }
        }
        loop {
            let (m, t, from) = merge.next()?;
            match m.into_image() {
                Ok((meta, data)) => {
                    self.first.get_or_insert(t);
                    self.image(&meta, &data, t, progress)?;
                    merge.recycle(from, data);
                }
                Err(Message::End) => break,
                Err(m) => {
                    return Err(self.err(
                        K::Malformed,
                        format!("{} inside a series (after frame {})", kind_name(&m), self.next),
                    ));
                }
            }
        }
        self.flush(progress)?;
        self.finish_gpu()?;
        let received_or_missing = self.done + self.gaps.iter().map(|g| g.end - g.start).sum::<u64>();
        if received_or_missing < self.frames {
            return Err(self.err(
                K::Gap,
                format!(
                    "the series ended after frame {} of {} (frames {}..{} missing)",
                    self.next as i64 - 1,
                    self.frames,
                    self.next,
                    self.frames
                ),
            ));
        }
        if let Some(z) = self.zarr.take() {
            z.finish()?;
        }
        let elapsed = self.first.map(|t| t.elapsed()).unwrap_or_default();
        let mut l = std::mem::take(&mut self.latencies);
        l.sort();
        let pct = |p: usize| l.get((l.len().max(1) - 1) * p / 100).copied().unwrap_or_default();
        Ok(StreamReport {
            expected: self.frames,
            frames: self.done,
            gaps: self.gaps.clone(),
            fps: if elapsed.is_zero() {
                0.0
            } else {
                self.done as f64 / elapsed.as_secs_f64()
            },
            latency_p50: pct(50),
            latency_p99: pct(99),
            side: self.side,
            dtype: self.opts.output,
            saturated: self.saturated,
            gpu: self.pre.as_ref().is_some_and(|p| p.on_gpu()),
        })
    }

    fn start(&mut self, frames: u64, shape: (usize, usize), dtype: Option<ElementType>) -> Result<()> {
        self.frames = frames;
        self.shape = shape;
        let bin = self.opts.bin.max(1);
        self.side = self.opts.crop / bin;
        if dtype.is_some() {
            self.dtype = dtype;
            self.build()?;
        }
        if let Some(path) = &self.sinks.zarr {
            let side = self.side as u64;
            let spec =
                tiledio_zarr::ArraySpec::new(&[frames, side, side], &[1, side, side], self.opts.output.element_type());
            self.zarr = Some(tiledio_zarr::ZarrArray::create(path, &spec)?);
        }
        if let Some(p) = self.sinks.publisher.as_deref_mut() {
            p.begin(frames, (self.side, self.side), self.opts.output.element_type().name());
        }
        Ok(())
    }

    /// Makes the preprocessor once the element type is known.
    fn build(&mut self) -> Result<()> {
        let Some(dtype) = self.dtype else { return Ok(()) };
        let pre = BatchPreprocessor::new(self.shape, dtype, self.dark, self.opts)?;
        self.side = pre.params().out_side();
        self.ofb = pre.params().out_frame_bytes();
        self.in_frame = pre
            .rows()
            .len()
            .checked_mul(self.shape.1 * dtype.size())
            .ok_or_else(|| usage("frame size overflows"))?;
        if pre.on_gpu() {
            self.gpu = Some(GpuBatches::new(self.opts.batch.max(1), self.in_frame, self.ofb)?);
        }
        self.pre = Some(pre);
        Ok(())
    }

    fn image(
        &mut self,
        meta: &ImageMeta,
        data: &[u8],
        arrived: Instant,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let ImageMeta {
            frame,
            posx,
            posy,
            shape,
            dtype,
        } = *meta;
        if shape != self.shape {
            return Err(self.err(
                K::Malformed,
                format!("frame {frame}: shape {shape:?} in a {:?} series", self.shape),
            ));
        }
        match self.dtype {
            None => {
                self.dtype = Some(dtype);
                self.build()?;
            }
            Some(t) if t != dtype => {
                return Err(self.err(K::Malformed, format!("frame {frame}: {dtype} in a {t} series")));
            }
            Some(_) => {}
        }
        if frame >= self.frames {
            return Err(self.err(K::Gap, format!("frame {frame} in a series of {} frames", self.frames)));
        }
        if frame < self.next {
            return Err(self.err(
                K::Gap,
                format!("frame {frame} after frame {}: repeated or out of order", self.next - 1),
            ));
        }
        if frame > self.next {
            if self.popts.gaps == GapPolicy::Error {
                return Err(self.err(
                    K::Gap,
                    format!(
                        "frame {frame} after frame {}: frames {}..{frame} missing",
                        self.next as i64 - 1,
                        self.next
                    ),
                ));
            }
            self.flush(progress)?;
            self.gaps.push(self.next..frame);
        }
        self.next = frame + 1;
        let pre = self.pre.as_ref().ok_or_else(|| usage("no preprocessor"))?;
        let row = shape.1 * dtype.size();
        let rows = pre.rows();
        let need = data.get(rows.start * row..rows.end * row).ok_or_else(|| {
            StreamError::new(
                self.endpoint,
                K::Malformed,
                format!("frame {frame}: {} bytes, rows {rows:?} needed", data.len()),
            )
        })?;
        match self.gpu.as_mut() {
            Some(g) => g.put(self.batch.len(), need)?,
            None => self.batch_in.extend_from_slice(need),
        }
        self.batch.push((frame, posx, posy, arrived));
        if self.batch.len() >= self.opts.batch.max(1) {
            self.flush(progress)?;
        }
        Ok(())
    }

    fn flush(&mut self, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        let k = self.batch.len();
        if k == 0 {
            return Ok(());
        }
        let ofb = self.ofb;
        let pre = self.pre.as_mut().ok_or_else(|| usage("no preprocessor"))?;
        let host_sinks = self.sinks.zarr.is_some() || self.sinks.publisher.is_some();
        match self.gpu.as_mut() {
            Some(g) => {
                let arrivals = self.batch.iter().map(|b| b.3).collect();
                if host_sinks {
                    g.run(pre, k, arrivals)?;
                    self.saturated += pre.take_saturated()?;
                    self.out.resize(k * ofb, 0);
                    g.d_out
                        .copy_to_host_at(0, &mut self.out[..k * ofb])
                        .map_err(tiledio_kernels::KernelError::from)?;
                    // waited for by take_saturated; the latencies count the sinks too (below)
                    g.pending = None;
                } else {
                    // no host sink: the frames stay in GPU memory, and the batch before this
                    // one is waited for only now, so copies and kernels overlap the receiving
                    self.latencies.extend(g.finished()?);
                    g.run(pre, k, arrivals)?;
                    self.done += k as u64;
                    self.batch.clear();
                    progress(self.done, self.frames);
                    return Ok(());
                }
            }
            None => {
                self.out.resize(k * ofb, 0);
                self.saturated += pre.run_host(&self.batch_in, k, &mut self.out)?;
            }
        }
        let f0 = self.batch[0].0;
        if let Some(z) = &self.zarr {
            let side = self.side as u64;
            z.write_region(
                &[f0, 0, 0],
                &[k as u64, side, side],
                &self.out[..],
                &tiledio_zarr::WriteOptions::default(),
            )?;
        }
        if let Some(p) = self.sinks.publisher.as_deref_mut() {
            for (i, (frame, x, y, _)) in self.batch.iter().enumerate() {
                p.send(&self.out[i * ofb..(i + 1) * ofb], *x, *y)
                    .map_err(|e| e.context(format!("publishing frame {frame}")))?;
            }
        }
        let now = Instant::now();
        self.latencies.extend(self.batch.iter().map(|b| now - b.3));
        self.done += k as u64;
        self.batch.clear();
        self.batch_in.clear();
        progress(self.done, self.frames);
        Ok(())
    }

    /// Waits for the GPU's last batch; its latencies and the saturated count.
    fn finish_gpu(&mut self) -> Result<()> {
        if let (Some(g), Some(pre)) = (self.gpu.as_mut(), self.pre.as_mut()) {
            self.latencies.extend(g.finished()?);
            self.saturated += pre.take_saturated()?;
        }
        Ok(())
    }
}

/// The GPU path's buffers: the batch's input rows are gathered in one of two page-locked
/// buffers in turn, copied to the GPU asynchronously on the preprocessor's stream, and
/// preprocessed there while the next batch is gathered in the other buffer.
struct GpuBatches {
    pinned: [PinnedBuffer; 2],
    /// Recorded after the copy out of `pinned[i]`: the buffer may be written again.
    copied: [Event; 2],
    slot: usize,
    in_frame: usize,
    d_in: DeviceBuffer,
    d_out: DeviceBuffer,
    /// The batch queued last: recorded after its kernel, and its frames' arrivals.
    pending: Option<(Event, Vec<Instant>)>,
}

impl GpuBatches {
    fn new(cap: usize, in_frame: usize, ofb: usize) -> Result<GpuBatches> {
        let bytes = cap
            .checked_mul(in_frame)
            .ok_or_else(|| usage("batch size overflows"))?
            .max(1);
        let out = cap
            .checked_mul(ofb)
            .ok_or_else(|| usage("batch size overflows"))?
            .max(1);
        Ok(GpuBatches {
            pinned: [
                PinnedBuffer::new(bytes).map_err(crate::error::gpu)?,
                PinnedBuffer::new(bytes).map_err(crate::error::gpu)?,
            ],
            copied: [
                Event::new().map_err(crate::error::gpu)?,
                Event::new().map_err(crate::error::gpu)?,
            ],
            slot: 0,
            in_frame,
            d_in: DeviceBuffer::new(bytes)?,
            d_out: DeviceBuffer::new(out)?,
            pending: None,
        })
    }

    /// Puts frame `i` of the current batch (its input rows).
    fn put(&mut self, i: usize, rows: &[u8]) -> Result<()> {
        if i == 0 {
            // the copy that last read this buffer (two batches ago) must be done
            self.copied[self.slot].synchronize().map_err(crate::error::gpu)?;
        }
        let at = i * self.in_frame;
        let dst = self.pinned[self.slot]
            .get_mut(at..at + rows.len())
            .ok_or_else(|| usage("a frame beyond the batch"))?;
        dst.copy_from_slice(rows);
        Ok(())
    }

    /// Queues the copy and the kernel of the current batch of `k` frames; switches buffers.
    fn run(&mut self, pre: &mut BatchPreprocessor, k: usize, arrivals: Vec<Instant>) -> Result<()> {
        let stream = pre.stream().ok_or_else(|| usage("no GPU stream"))?;
        let slot = self.slot;
        // SAFETY: `pinned[slot]` lives as long as `self`, whose drop comes after `finished`
        // or the end of the stream's work (Event::synchronize in `put` before any rewrite);
        // `d_in` is rewritten only by later copies on the same stream, after this kernel.
        unsafe {
            self.d_in
                .copy_from_host_async(0, &self.pinned[slot][..k * self.in_frame], stream)
        }
        .map_err(crate::error::gpu)?;
        self.copied[slot].record(stream).map_err(crate::error::gpu)?;
        pre.run_device(&self.d_in, k, &mut self.d_out)?;
        let done = Event::new().map_err(crate::error::gpu)?;
        let stream = pre.stream().ok_or_else(|| usage("no GPU stream"))?;
        done.record(stream).map_err(crate::error::gpu)?;
        self.pending = Some((done, arrivals));
        self.slot = 1 - slot;
        Ok(())
    }

    /// Waits for the batch queued last (if any); the latencies of its frames.
    fn finished(&mut self) -> Result<Vec<Duration>> {
        let Some((done, arrivals)) = self.pending.take() else {
            return Ok(Vec::new());
        };
        done.synchronize().map_err(crate::error::gpu)?;
        let now = Instant::now();
        Ok(arrivals.into_iter().map(|t| now - t).collect())
    }
}

impl Drop for GpuBatches {
    fn drop(&mut self) {
        // queued copies may still read the page-locked buffers
        let _ = self.finished();
        for e in &self.copied {
            let _ = e.synchronize();
        }
    }
}
