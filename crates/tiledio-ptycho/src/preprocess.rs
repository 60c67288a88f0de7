//! Dark frames, the batch preprocessor (shared by stores and, later, live streams) and
//! [`preprocess`]: a whole store, batch by batch, into host memory, GPU memory or a Zarr array.

use crate::error::{Result, usage};
use crate::store::FrameStore;
use std::ops::Range;
use std::path::PathBuf;
use tiledio_io::ElementType;
use tiledio_io::gpu::{DeviceBuffer, Stream};
use tiledio_kernels::{ClampOrder, Orientation, OutputType, PtychoDevice, PtychoParams, PtychoPlan, Reduce};

/// The mean (`f32`) of frames `frames` of a store: a dark map of `H × W` pixels. One frame gives
/// that frame as `f32`.
///
/// ```
/// use tiledio_ptycho::{RawLayout, RawStore, dark_frame};
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("dark.raw");
/// std::fs::write(&path, [1u8, 2, 3, 5])?; // two 1x2 u8 frames
/// let s = RawStore::open(&path, RawLayout::new(0, (1, 2), tiledio_io::ElementType::U8))?;
/// assert_eq!(dark_frame(&s, 0..2)?, vec![2.0, 3.5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`crate::PtychoError::Usage`] for an empty range; errors of [`FrameStore::read_frames`].
pub fn dark_frame(store: &dyn FrameStore, frames: Range<u64>) -> Result<Vec<f32>> {
    if frames.is_empty() {
        return Err(usage(format!("{}: no dark frames in {frames:?}", store.name())));
    }
    let (h, w) = store.shape();
    let px = h * w;
    let t = store.dtype();
    let mut acc = vec![0f64; px];
    let batch = (((64u64 << 20) / store.frame_bytes().max(1) as u64).max(1)).min(frames.end - frames.start);
    let mut f = frames.start;
    while f < frames.end {
        let e = (f + batch).min(frames.end);
        let buf = store.read_frames_to_vec(f..e, None)?;
        for k in 0..(e - f) as usize {
            let fr = &buf[k * px * t.size()..(k + 1) * px * t.size()];
            add_frame(fr, t, &mut acc).map_err(|m| usage(format!("{}: {m}", store.name())))?;
        }
        f = e;
    }
    let n = (frames.end - frames.start) as f64;
    Ok(acc.iter().map(|v| (v / n) as f32).collect())
}

fn add_frame(fr: &[u8], t: ElementType, acc: &mut [f64]) -> std::result::Result<(), String> {
    macro_rules! add {
        ($ty:ty) => {{
            let es = std::mem::size_of::<$ty>();
            for (a, c) in acc.iter_mut().zip(fr.chunks_exact(es)) {
                *a += <$ty>::from_ne_bytes(c.try_into().unwrap_or_default()) as f64;
            }
        }};
    }
    match t {
        ElementType::U8 => add!(u8),
        ElementType::U16 => add!(u16),
        ElementType::U32 => add!(u32),
        ElementType::U64 => add!(u64),
        ElementType::I8 => add!(i8),
        ElementType::I16 => add!(i16),
        ElementType::I32 => add!(i32),
        ElementType::I64 => add!(i64),
        ElementType::F32 => add!(f32),
        ElementType::F64 => add!(f64),
        other => return Err(format!("no dark from {other}")),
    }
    Ok(())
}

/// Where the crop is centred.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Center {
    /// The frame centre `(H/2, W/2)`.
    #[default]
    Frame,
    /// A given `(Y, X)`.
    At(i64, i64),
    /// The centre of mass of the first `n` frames (dark-subtracted, negatives clamped), rounded
    /// ([`auto_center`]).
    Auto(u64),
}

/// Which processor runs the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The GPU when there is one, else the CPU.
    #[default]
    Auto,
    /// The GPU (an error without one).
    Gpu,
    /// The CPU (rayon).
    Cpu,
}

/// Options of [`preprocess`] (the kernel's order of operations is in [`tiledio_kernels`]'s
/// `PtychoPlan` docs).
#[derive(Clone, Debug)]
pub struct PreprocessOptions {
    /// Crop side `S`.
    pub crop: usize,
    /// Bin factor `B`.
    pub bin: usize,
    /// Crop centre.
    pub center: Center,
    /// Sum (I08-1) or mean (PtyPy) over a bin.
    pub reduce: Reduce,
    /// Clamp each pixel then bin (I08-1), or bin then clamp.
    pub clamp: ClampOrder,
    /// Orientation of the output frames.
    pub orientation: Orientation,
    /// Output element type.
    pub output: OutputType,
    /// Flat field (`H × W`), divided by.
    pub flat: Option<Vec<f32>>,
    /// Bad-pixel mask (`H × W`, nonzero = bad).
    pub mask: Option<Vec<u8>>,
    /// Frames per batch (one read and one kernel launch each).
    pub batch: usize,
    /// CPU or GPU.
    pub device: Device,
}

impl PreprocessOptions {
    /// Crop `crop` about the frame centre, bin `bin` by sum, clamp then bin, `f32`, batches of
    /// 64 frames, GPU when there is one.
    ///
    /// ```
    /// let o = tiledio_ptycho::PreprocessOptions::new(1024, 2);
    /// assert_eq!(o.batch, 64);
    /// ```
    pub fn new(crop: usize, bin: usize) -> PreprocessOptions {
        PreprocessOptions {
            crop,
            bin,
            center: Center::Frame,
            reduce: Reduce::Sum,
            clamp: ClampOrder::ClampThenBin,
            orientation: Orientation::default(),
            output: OutputType::F32,
            flat: None,
            mask: None,
            batch: 64,
            device: Device::Auto,
        }
    }
}

/// The centre of mass `(Y, X)`, rounded, of the first `n` frames of a store after subtracting
/// `dark`; the frame centre when they are empty.
///
/// # Errors
/// Errors of [`FrameStore::read_frames`]; [`crate::PtychoError::Kernel`] for a dark of the
/// wrong size.
pub fn auto_center(store: &dyn FrameStore, dark: Option<&[f32]>, n: u64) -> Result<(i64, i64)> {
    let (h, w) = store.shape();
    let n = n.clamp(1, store.frames().max(1)).min(store.frames());
    let buf = store.read_frames_to_vec(0..n, None)?;
    let c = tiledio_kernels::center_of_mass(&buf, n as usize, h, w, store.dtype(), dark)?;
    Ok(c.map_or((h as i64 / 2, w as i64 / 2), |(y, x)| {
        (y.round() as i64, x.round() as i64)
    }))
}

/// Preprocesses batches of frames on the CPU or the GPU with one plan: the part a file store
/// and a live stream share. Feed it the rows [`BatchPreprocessor::rows`] of each frame.
#[derive(Debug)]
pub struct BatchPreprocessor {
    plan: PtychoPlan,
    gpu: Option<(PtychoDevice, Stream)>,
}

impl BatchPreprocessor {
    /// A preprocessor for frames of `shape` and `dtype` with `dark` (`H × W`, optional).
    ///
    /// ```
    /// use tiledio_ptycho::{BatchPreprocessor, Device, PreprocessOptions};
    /// let mut o = PreprocessOptions::new(4, 2);
    /// o.device = Device::Cpu;
    /// let mut p = BatchPreprocessor::new((4, 6), tiledio_io::ElementType::U8, None, &o)?;
    /// let frame: Vec<u8> = (0..24).collect();
    /// let rows = p.rows();
    /// let mut out = vec![0u8; 4 * 4];
    /// p.run_host(&frame[rows.start * 6..rows.end * 6], 1, &mut out)?;
    /// let v: Vec<f32> = out.chunks(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect();
    /// assert_eq!(v, [1.0 + 2.0 + 7.0 + 8.0, 3.0 + 4.0 + 9.0 + 10.0, 13.0 + 14.0 + 19.0 + 20.0, 15.0 + 16.0 + 21.0 + 22.0]);
    /// # Ok::<(), tiledio_ptycho::PtychoError>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::PtychoError::Kernel`] for invalid options or calibration shapes; with
    /// [`Device::Gpu`], [`crate::PtychoError::Kernel`] without a GPU.
    pub fn new(
        shape: (usize, usize),
        dtype: ElementType,
        dark: Option<&[f32]>,
        opts: &PreprocessOptions,
    ) -> Result<BatchPreprocessor> {
        let mut p = PtychoParams::new(shape, opts.crop, opts.bin);
        p.input = dtype;
        p.center = match opts.center {
            Center::At(y, x) => Some((y, x)),
            _ => None,
        };
        p.reduce = opts.reduce;
        p.clamp = opts.clamp;
        p.orientation = opts.orientation;
        p.output = opts.output;
        let plan = PtychoPlan::new(p, dark, opts.flat.as_deref(), opts.mask.as_deref())?;
        let gpu = match opts.device {
            Device::Cpu => None,
            Device::Gpu => Some((
                PtychoDevice::new(&plan)?,
                Stream::new().map_err(tiledio_kernels::KernelError::from)?,
            )),
            Device::Auto if tiledio_io::gpu::available() => match (PtychoDevice::new(&plan), Stream::new()) {
                (Ok(d), Ok(s)) => Some((d, s)),
                _ => None,
            },
            Device::Auto => None,
        };
        Ok(BatchPreprocessor { plan, gpu })
    }

    /// The frame rows the crop needs (read only these).
    pub fn rows(&self) -> Range<usize> {
        self.plan.params().rows_needed()
    }

    /// Whether batches run on the GPU.
    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// The kernel's options.
    pub fn params(&self) -> &PtychoParams {
        self.plan.params()
    }

    /// Preprocesses `frames` frames (rows [`BatchPreprocessor::rows`] of each) on the CPU into
    /// `out`; returns the saturated count.
    ///
    /// # Errors
    /// [`crate::PtychoError::Kernel`] for buffers of the wrong size.
    pub fn run_host(&self, input: &[u8], frames: usize, out: &mut [u8]) -> Result<u64> {
        let r = self.rows();
        // on the compute threads of the environment's settings, not rayon's global pool
        let ctx = tiledio_io::Context::from_env()?;
        Ok(ctx.compute(|| self.plan.run_host(input, frames, r.start, r.len(), out))?)
    }

    /// Queues the preprocessing of `frames` frames already in GPU memory on this
    /// preprocessor's stream ([`BatchPreprocessor::stream`]).
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] when the preprocessor runs on the CPU;
    /// [`crate::PtychoError::Kernel`].
    pub fn run_device(&mut self, input: &DeviceBuffer, frames: usize, out: &mut DeviceBuffer) -> Result<()> {
        let r = self.rows();
        self.run_device_rows(input, frames, r, out)
    }

    /// [`BatchPreprocessor::run_device`] on frames holding rows `rows` of each frame (which
    /// must include [`BatchPreprocessor::rows`]): whole frames (`0..H`) need no cropping first.
    ///
    /// # Errors
    /// As [`BatchPreprocessor::run_device`]; [`crate::PtychoError::Kernel`] when `rows` misses
    /// some of the crop's rows.
    pub fn run_device_rows(
        &mut self,
        input: &DeviceBuffer,
        frames: usize,
        rows: Range<usize>,
        out: &mut DeviceBuffer,
    ) -> Result<()> {
        let (dev, stream) = self
            .gpu
            .as_mut()
            .ok_or_else(|| usage("the preprocessor runs on the CPU"))?;
        dev.run(input, frames, rows.start, rows.len(), out, stream)?;
        Ok(())
    }

    /// The GPU stream batches run on.
    pub fn stream(&self) -> Option<&Stream> {
        self.gpu.as_ref().map(|g| &g.1)
    }

    /// Waits for the GPU work and returns (and resets) its saturated count; 0 on the CPU.
    ///
    /// # Errors
    /// [`crate::PtychoError::Kernel`] for a CUDA error.
    pub fn take_saturated(&mut self) -> Result<u64> {
        match self.gpu.as_mut() {
            Some((dev, stream)) => Ok(dev.take_saturated(stream)?),
            None => Ok(0),
        }
    }
}

/// Where [`preprocess`] puts its result.
#[derive(Clone, Debug)]
pub enum Output {
    /// A host vector.
    Host,
    /// A GPU buffer (needs the GPU).
    Device,
    /// A new Zarr array at this path, shape `(N, S/B, S/B)`, one chunk per frame.
    Zarr(PathBuf),
}

/// The preprocessed stack.
#[derive(Debug)]
pub enum Frames {
    /// In host memory (native-endian elements).
    Host(Vec<u8>),
    /// In GPU memory.
    Device(DeviceBuffer),
    /// Written to a Zarr array.
    Zarr(PathBuf),
}

/// What [`preprocess`] made.
#[derive(Debug)]
pub struct Preprocessed {
    /// The frames, `(frames, side, side)` elements of `dtype`.
    pub data: Frames,
    /// Frame count `N`.
    pub frames: u64,
    /// Output side `S/B`.
    pub side: usize,
    /// Output element type.
    pub dtype: OutputType,
    /// Output values that saturated (`u16`/`u32` outputs).
    pub saturated: u64,
    /// Whether the kernel ran on the GPU.
    pub gpu: bool,
    /// The crop centre used `(Y, X)`.
    pub center: (i64, i64),
}

/// Preprocesses every frame of `store`: reads batches of `opts.batch` frames (only the crop's
/// rows where the store can), runs the fused kernel per batch (GPU or CPU), and returns or
/// writes the `(N, S/B, S/B)` stack. `progress(done, total)` is called after each batch.
///
/// ```
/// use tiledio_ptycho::{Device, Frames, Output, PreprocessOptions, RawLayout, RawStore, preprocess};
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("s.raw");
/// let frames: Vec<u8> = (0..3 * 8 * 8).map(|i| (i % 13) as u8).collect();
/// std::fs::write(&path, &frames)?;
/// let s = RawStore::open(&path, RawLayout::new(0, (8, 8), tiledio_io::ElementType::U8))?;
/// let mut o = PreprocessOptions::new(4, 2);
/// o.device = Device::Cpu;
/// let dark = vec![1.0f32; 64];
/// let r = preprocess(&s, Some(&dark), &o, Output::Host, &mut |_, _| {})?;
/// assert_eq!((r.frames, r.side), (3, 2));
/// let Frames::Host(v) = r.data else { unreachable!() };
/// assert_eq!(v.len(), 3 * 2 * 2 * 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`crate::PtychoError::Kernel`] for invalid options (crop not divisible by bin, a dark of
/// another shape); store read errors; [`crate::PtychoError::Zarr`] when writing the output; an
/// interrupted Zarr output leaves nothing at its path.
pub fn preprocess(
    store: &dyn FrameStore,
    dark: Option<&[f32]>,
    opts: &PreprocessOptions,
    output: Output,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Preprocessed> {
    let mut opts = opts.clone();
    let (h, w) = store.shape();
    let center = match opts.center {
        Center::Auto(n) => {
            let (y, x) = auto_center(store, dark, n)?;
            opts.center = Center::At(y, x);
            (y, x)
        }
        Center::At(y, x) => (y, x),
        Center::Frame => (h as i64 / 2, w as i64 / 2),
    };
    if matches!(output, Output::Device) && opts.device == Device::Auto {
        opts.device = Device::Gpu;
    }
    let mut pre = BatchPreprocessor::new((h, w), store.dtype(), dark, &opts)?;
    let n = store.frames();
    let side = pre.params().out_side();
    let ofb = pre.params().out_frame_bytes();
    let batch = opts.batch.max(1) as u64;
    let rows = if store.reads_rows() { pre.rows() } else { 0..h };
    // the kernel takes the rows it is given: when a store reads whole frames, tell it row 0
    let (row0, nrows) = (rows.start, rows.len());
    let need = pre.rows();
    let whole = row0 != need.start || nrows != need.len();
    let in_frame = nrows * w * store.dtype().size();
    let total_out = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(ofb))
        .ok_or_else(|| usage("output size overflows"))?;

    let mut zarr = match &output {
        Output::Zarr(path) => {
            let spec = tiledio_zarr::ArraySpec::new(
                &[n, side as u64, side as u64],
                &[1, side as u64, side as u64],
                opts.output.element_type(),
            );
            Some(tiledio_zarr::ZarrArray::create(path, &spec)?)
        }
        _ => None,
    };
    let mut host_out = match output {
        Output::Host => Some(tiledio_io::try_alloc_zeroed(total_out, "preprocessed frames")?),
        _ => None,
    };
    let mut dev_out = match output {
        Output::Device => Some(DeviceBuffer::new(total_out.max(1))?),
        _ => None,
    };
    let wopts = tiledio_zarr::WriteOptions::default();
    let mut saturated = 0u64;
    let bcap = batch.min(n.max(1)) as usize;
    if pre.on_gpu() && whole {
        saturated = decoded_to_gpu(
            store,
            &mut pre,
            Batches {
                n,
                batch,
                bcap,
                ofb,
                side,
            },
            dev_out.as_mut(),
            host_out.as_deref_mut(),
            zarr.as_mut(),
            &wopts,
            progress,
        )?;
    } else if pre.on_gpu() {
        let mut d_in = DeviceBuffer::new((bcap * in_frame).max(1))?;
        let mut d_batch = DeviceBuffer::new((bcap * ofb).max(1))?;
        let mut host_batch = Vec::new();
        let mut f = 0u64;
        while f < n {
            let e = (f + batch).min(n);
            let k = (e - f) as usize;
            // the previous batch's kernel reads d_in: wait for it before overwriting
            saturated += pre.take_saturated()?;
            store.read_frames(f..e, Some(rows.clone()), tiledio_io::Target::Device(&mut d_in))?;
            match dev_out.as_mut() {
                Some(out) => {
                    // SAFETY: a view of bytes f*ofb .. e*ofb of `out`, alive for this launch
                    let mut view = unsafe { DeviceBuffer::from_raw_parts(out.device_ptr() + f * ofb as u64, k * ofb) };
                    pre.run_device(&d_in, k, &mut view)?;
                }
                None => {
                    pre.run_device(&d_in, k, &mut d_batch)?;
                    saturated += pre.take_saturated()?;
                    host_batch.resize(k * ofb, 0);
                    d_batch
                        .copy_to_host(&mut host_batch)
                        .map_err(tiledio_kernels::KernelError::from)?;
                    emit(
                        &host_batch,
                        f,
                        k,
                        side,
                        ofb,
                        host_out.as_deref_mut(),
                        zarr.as_mut(),
                        &wopts,
                    )?;
                }
            }
            f = e;
            progress(f, n);
        }
        saturated += pre.take_saturated()?;
    } else {
        let mut out_batch = vec![0u8; bcap * ofb];
        let mut f = 0u64;
        while f < n {
            let e = (f + batch).min(n);
            let k = (e - f) as usize;
            let mut input = store.read_frames_to_vec(f..e, Some(rows.clone()))?;
            let input = if whole {
                crop_rows(
                    &mut input,
                    k,
                    nrows,
                    w * store.dtype().size(),
                    need.start - row0..need.end - row0,
                )
            } else {
                &input[..]
            };
            match host_out.as_mut() {
                Some(all) => {
                    let dst = &mut all[f as usize * ofb..e as usize * ofb];
                    saturated += pre.run_host(input, k, dst)?;
                }
                None => {
                    saturated += pre.run_host(input, k, &mut out_batch[..k * ofb])?;
                    emit(&out_batch[..k * ofb], f, k, side, ofb, None, zarr.as_mut(), &wopts)?;
                }
            }
            f = e;
            progress(f, n);
        }
    }
    let gpu = pre.on_gpu();
    let data = match (host_out, dev_out, zarr.take(), output) {
        (Some(v), _, _, _) => Frames::Host(v),
        (_, Some(d), _, _) => Frames::Device(d),
        (_, _, Some(z), Output::Zarr(path)) => {
            z.finish()?;
            Frames::Zarr(path)
        }
        _ => return Err(usage("no output")),
    };
    Ok(Preprocessed {
        data,
        frames: n,
        side,
        dtype: opts.output,
        saturated,
        gpu,
        center,
    })
}

/// The batch geometry of [`preprocess`].
#[derive(Clone, Copy)]
struct Batches {
    n: u64,
    batch: u64,
    bcap: usize,
    ofb: usize,
    side: usize,
}

/// The GPU path for stores that give whole frames (compressed chunks decoded on the CPU):
/// each batch is decoded into one of two page-locked buffers in turn, copied to the GPU and
/// preprocessed there on the preprocessor's stream, whole frames (no cropping on the CPU), while
/// the CPU decodes the next batch into the other buffer. Returns the saturated count.
#[allow(clippy::too_many_arguments)]
fn decoded_to_gpu(
    store: &dyn FrameStore,
    pre: &mut BatchPreprocessor,
    g: Batches,
    mut dev_out: Option<&mut DeviceBuffer>,
    mut host_out: Option<&mut [u8]>,
    mut zarr: Option<&mut tiledio_zarr::ZarrArray>,
    wopts: &tiledio_zarr::WriteOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    use tiledio_io::gpu::{Event, PinnedBuffer};
    let (h, _) = store.shape();
    let fb = store.frame_bytes();
    let cap = g
        .bcap
        .checked_mul(fb)
        .ok_or_else(|| usage("batch size overflows"))?
        .max(1);
    let mut pinned = [
        PinnedBuffer::new(cap).map_err(crate::error::gpu)?,
        PinnedBuffer::new(cap).map_err(crate::error::gpu)?,
    ];
    let copied = [
        Event::new().map_err(crate::error::gpu)?,
        Event::new().map_err(crate::error::gpu)?,
    ];
    let mut d_in = DeviceBuffer::new(cap)?;
    let mut d_batch = DeviceBuffer::new((g.bcap * g.ofb).max(1))?;
    let mut host_batch = Vec::new();
    let mut saturated = 0u64;
    let (mut f, mut b) = (0u64, 0usize);
    while f < g.n {
        let e = (f + g.batch).min(g.n);
        let k = (e - f) as usize;
        let slot = b % 2;
        // the copy that last read this buffer (two batches ago) must be done before it is
        // overwritten; the decode of this batch then overlaps the GPU's work on the last one
        copied[slot].synchronize().map_err(crate::error::gpu)?;
        let host = &mut pinned[slot][..k * fb];
        store.read_frames(f..e, None, tiledio_io::Target::Host(host))?;
        let stream = pre.stream().ok_or_else(|| usage("no GPU stream"))?;
        // SAFETY: `pinned[slot]` lives until the end of this function, after the final
        // synchronisation, and is not written again before `copied[slot]` has passed; `d_in`
        // is reused only by later copies on the same stream, ordered after this batch's kernel.
        unsafe { d_in.copy_from_host_async(0, &pinned[slot][..k * fb], stream) }.map_err(crate::error::gpu)?;
        copied[slot].record(stream).map_err(crate::error::gpu)?;
        match dev_out.as_deref_mut() {
            Some(out) => {
                // SAFETY: a view of bytes f*ofb .. e*ofb of `out`, alive for this launch
                let mut view = unsafe { DeviceBuffer::from_raw_parts(out.device_ptr() + f * g.ofb as u64, k * g.ofb) };
                pre.run_device_rows(&d_in, k, 0..h, &mut view)?;
            }
            None => {
                pre.run_device_rows(&d_in, k, 0..h, &mut d_batch)?;
                saturated += pre.take_saturated()?;
                host_batch.resize(k * g.ofb, 0);
                d_batch
                    .copy_to_host(&mut host_batch)
                    .map_err(tiledio_kernels::KernelError::from)?;
                emit(
                    &host_batch,
                    f,
                    k,
                    g.side,
                    g.ofb,
                    host_out.as_deref_mut(),
                    zarr.as_deref_mut(),
                    wopts,
                )?;
            }
        }
        f = e;
        b += 1;
        progress(f, g.n);
    }
    saturated += pre.take_saturated()?;
    Ok(saturated)
}

/// Moves rows `keep` of each of `k` frames of `rows_in` rows (`row_bytes` each) to the front of
/// `buf`, frame after frame; returns that part.
fn crop_rows(buf: &mut [u8], k: usize, rows_in: usize, row_bytes: usize, keep: Range<usize>) -> &[u8] {
    let fb_in = rows_in * row_bytes;
    let fb_out = keep.len() * row_bytes;
    for i in 0..k {
        let src = i * fb_in + keep.start * row_bytes;
        buf.copy_within(src..src + fb_out, i * fb_out);
    }
    &buf[..k * fb_out]
}

#[allow(clippy::too_many_arguments)]
fn emit(
    batch: &[u8],
    f: u64,
    k: usize,
    side: usize,
    ofb: usize,
    host: Option<&mut [u8]>,
    zarr: Option<&mut tiledio_zarr::ZarrArray>,
    wopts: &tiledio_zarr::WriteOptions,
) -> Result<()> {
    if let Some(all) = host {
        all[f as usize * ofb..(f as usize + k) * ofb].copy_from_slice(&batch[..k * ofb]);
    }
    if let Some(z) = zarr {
        z.write_region(
            &[f, 0, 0],
            &[k as u64, side as u64, side as u64],
            &batch[..k * ofb],
            wopts,
        )?;
    }
    Ok(())
}
