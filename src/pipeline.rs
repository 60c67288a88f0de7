//! Whole-slide filters tile by tile: `source (TIFF level, Zarr array) → filter → sink
//! (OME-Zarr with its pyramid, or tiled TIFF)`, on the GPU or the CPU, in bounded memory.
//!
//! # How a tiled run goes
//! The output is cut into tiles of `tile × tile` pixels. For each tile the source *window* is
//! the tile plus the filter's halo ([`Filter::halo`]: 1 pixel for Sobel, taken from the
//! neighbouring tiles of the source, never made up; at the true image border the kernel's own
//! `reflect` mode applies), so the tiled output is bit-identical to the global one for every
//! tile size ([`tiledio_kernels::Rect::with_halo`]).
//!
//! Two stages overlap: a reader thread reads window `i + 1` (into GPU memory through the
//! direct path, or host memory) and runs the kernel on its own stream while the calling thread
//! writes tile `i` (GPU → Zarr chunks through staging, or TIFF bands). Tiles in flight are as
//! many as `budget` allows (at least 2, at most 8): the GPU memory the run allocates is
//! measured ([`tiledio_io::gpu::peak_device_bytes`]) and reported. [`Mode::Global`] reads the
//! whole level, filters it and writes it whole, for comparison.
//!
//! ```
//! use tiledio::pipeline::{Device, Filter, Input, Mode, Output, PipelineOptions, run};
//! use tiledio::tiff::{HostImage, WriteOptions, write_pyramid};
//! # let dir = tempfile::tempdir()?;
//! let rgb: Vec<u8> = (0..96 * 80 * 3).map(|i| (i * 7 % 251) as u8).collect();
//! write_pyramid(&dir.path().join("in.tif"), &HostImage::from_u8(80, 96, 3, rgb)?, &WriteOptions::default().tile(32))?;
//! let input = Input::open(&dir.path().join("in.tif"), 0)?;
//! let mut opts = PipelineOptions::new(Filter::sobel());
//! opts.mode = Mode::Tiled { tile: 32 };
//! opts.device = Device::Cpu;
//! let out = Output::zarr(dir.path().join("edges.zarr"));
//! let report = run(&input, &out, &opts, &mut |_, _| {})?;
//! assert_eq!(report.tiles, 3 * 3);
//! let edges = tiledio::zarr::ZarrArray::open(dir.path().join("edges.zarr/0"))?;
//! assert_eq!(edges.shape(), &[80, 96]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::io::gpu::{self, DeviceBuffer, Stream};
use crate::io::{Border, ElementType, Region, Settings};
use crate::kernels::{ColourMap, ColourOp, MacenkoNormalizer, MacenkoParams, Rect, Sobel, SobelOutput};
use crate::tiff::Slide;
use crate::zarr::ZarrArray;
use crate::zarr::ome::{Axis, Level, MultiscaleWriter, OmeVersion};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What can go wrong in a pipeline run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading or a GPU call failed.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
    /// The TIFF source or sink failed.
    #[error(transparent)]
    Tiff(#[from] crate::tiff::TiffError),
    /// The Zarr source or sink failed.
    #[error(transparent)]
    Zarr(#[from] crate::zarr::ZarrError),
    /// A kernel refused its arguments.
    #[error(transparent)]
    Kernel(#[from] crate::kernels::KernelError),
    /// The arguments cannot work (tile size, budget, input layout, element type).
    #[error("{0}")]
    Usage(String),
    /// An invariant of the pipeline itself failed (a bug, not the input).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, PipelineError>;

fn usage(s: impl Into<String>) -> PipelineError {
    PipelineError::Usage(s.into())
}

/// The filter a pipeline applies.
// one value a run: the size of the fitted normaliser costs nothing
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Filter {
    /// `skimage.filters.sobel` (or `sobel_h` / `sobel_v`) of the grey image: `f32`, one channel.
    Sobel(SobelOutput),
    /// `skimage.color.rgb2gray`: `f32`, one channel.
    Gray,
    /// `skimage.color.rgb2hed`: `f32`, three channels (H, E, D).
    Hed,
    /// Macenko stain normalisation with a fitted normaliser ([`fit_macenko`]): RGB `u8`.
    Normalize(MacenkoNormalizer),
}

impl Filter {
    /// The Sobel magnitude.
    pub fn sobel() -> Filter {
        Filter::Sobel(SobelOutput::Magnitude)
    }

    /// Pixels of neighbours each output pixel needs on each side.
    pub fn halo(&self) -> u64 {
        match self {
            Filter::Sobel(_) => 1,
            _ => 0,
        }
    }

    /// Channels of the output.
    pub fn out_channels(&self) -> usize {
        match self {
            Filter::Sobel(_) | Filter::Gray => 1,
            Filter::Hed | Filter::Normalize(_) => 3,
        }
    }

    /// Element type of the output.
    pub fn out_type(&self) -> ElementType {
        match self {
            Filter::Normalize(_) => ElementType::U8,
            _ => ElementType::F32,
        }
    }

    fn check_input(&self, t: ElementType, c: usize) -> Result<()> {
        let ok = match self {
            Filter::Sobel(_) => {
                matches!(t, ElementType::U8 | ElementType::U16 | ElementType::F32) && (c == 1 || c == 3)
            }
            Filter::Gray | Filter::Hed => matches!(t, ElementType::U8 | ElementType::U16 | ElementType::F32) && c == 3,
            Filter::Normalize(_) => t == ElementType::U8 && c == 3,
        };
        if ok {
            Ok(())
        } else {
            Err(usage(format!(
                "{self:?} cannot take {c}-channel {t} input (Sobel: grey or RGB u8/u16/f32; gray, hed: RGB; normalize: RGB u8)"
            )))
        }
    }
}

fn put_f32(v: &[f32], dst: &mut [u8]) {
    for (d, x) in dst.chunks_exact_mut(4).zip(v) {
        d.copy_from_slice(&x.to_ne_bytes());
    }
}

/// A 2-D image to filter: a level of a TIFF slide, or a Zarr array `(H, W)` or `(H, W, C)`.
// one value a run, never moved in a loop
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// A level of a tiled TIFF / SVS / OME-TIFF.
    Tiff {
        /// The slide.
        slide: Slide,
        /// The level.
        level: usize,
    },
    /// A Zarr array (v2 or v3), `(H, W)` or `(H, W, C)` with C 1 or 3.
    Zarr(ZarrArray),
}

impl Input {
    /// Opens `path`: a folder is a Zarr array (an OME-Zarr group's level `level` when it is
    /// one), anything else a TIFF slide's level `level`. Reads use the `TILEDIO_*` settings.
    ///
    /// # Errors
    /// The format crates' errors; [`PipelineError::Usage`] for a level that does not exist or
    /// an array of another layout.
    pub fn open(path: &Path, level: usize) -> Result<Input> {
        let settings = Settings::from_env()?;
        if path.is_dir() {
            let lvl = path.join(level.to_string());
            let p = if lvl.is_dir() { lvl } else { path.to_path_buf() };
            let a = ZarrArray::open_with(&p, &settings)?;
            let s = a.shape();
            if !(s.len() == 2 || (s.len() == 3 && (s[2] == 1 || s[2] == 3))) {
                return Err(usage(format!(
                    "{}: a Zarr array of shape {s:?}; the filters take (H, W) or (H, W, C) with C 1 or 3",
                    p.display()
                )));
            }
            if a.data_type().is_none() {
                return Err(usage(format!("{}: unsupported Zarr data type", p.display())));
            }
            return Ok(Input::Zarr(a));
        }
        let slide = Slide::open_with(path, &settings)?;
        if level >= slide.level_count() {
            return Err(usage(format!(
                "{}: level {level} does not exist ({} levels)",
                path.display(),
                slide.level_count()
            )));
        }
        Ok(Input::Tiff { slide, level })
    }

    /// `[rows, columns]`.
    pub fn shape(&self) -> [u64; 2] {
        match self {
            Input::Tiff { slide, level } => {
                let (w, h) = slide.level_dimensions()[*level];
                [h, w]
            }
            Input::Zarr(a) => [a.shape()[0], a.shape()[1]],
        }
    }

    /// Samples per pixel.
    pub fn channels(&self) -> usize {
        match self {
            Input::Tiff { slide, .. } => slide.channels(),
            Input::Zarr(a) => a.shape().get(2).map_or(1, |&c| c as usize),
        }
    }

    /// The element type.
    pub fn element_type(&self) -> ElementType {
        match self {
            Input::Tiff { slide, .. } => slide.sample_type(),
            Input::Zarr(a) => a.data_type().unwrap_or(ElementType::U8),
        }
    }

    /// Microns per pixel of this level, when the source says.
    pub fn mpp(&self) -> Option<f64> {
        match self {
            Input::Tiff { slide, level } => slide
                .mpp()
                .map(|(x, _)| x * slide.level_downsamples().get(*level).copied().unwrap_or(1.0)),
            Input::Zarr(_) => None,
        }
    }

    fn region(&self, r: Rect) -> Region {
        let mut shape = vec![r.shape[0], r.shape[1]];
        let mut origin = vec![r.origin[0], r.origin[1]];
        if let Input::Zarr(a) = self
            && a.shape().len() == 3
        {
            shape.push(a.shape()[2]);
            origin.push(0);
        }
        Region::at(&origin, &shape)
    }

    /// Reads rectangle `r` into host memory (`rows × columns × channels`).
    pub fn read_host(&self, r: Rect, dst: &mut [u8]) -> Result<()> {
        match self {
            Input::Tiff { slide, level } => {
                let img = slide.read_level_region(*level, &self.region(r), Border::Reject)?;
                let b = img.bytes();
                dst.get_mut(..b.len())
                    .ok_or_else(|| PipelineError::Internal("a host window buffer is short".into()))?
                    .copy_from_slice(b);
            }
            Input::Zarr(a) => a.read_region(&self.region(r), Border::Reject, dst)?,
        }
        Ok(())
    }

    /// Reads rectangle `r` into GPU memory (`rows × columns × channels`).
    fn read_device(&self, r: Rect, dst: &mut DeviceBuffer) -> Result<()> {
        let (t, c) = (self.element_type(), self.channels() as u64);
        let len = r.pixels().unwrap_or(0) * c * t.size() as u64;
        if (dst.len() as u64) < len {
            return Err(PipelineError::Internal("a device window buffer is short".into()));
        }
        // SAFETY: the view covers the first `len` bytes of `dst`, which outlives it and is not
        // used otherwise meanwhile.
        let mut view =
            unsafe { crate::io::DeviceView::from_raw(dst.device_ptr(), t, &[r.shape[0], r.shape[1], c], None)? };
        match self {
            Input::Tiff { slide, level } => {
                slide.read_level_region_device_into(*level, &self.region(r), Border::Reject, &mut view)?
            }
            Input::Zarr(a) => {
                let region = self.region(r);
                let mut v = unsafe { crate::io::DeviceView::from_raw(dst.device_ptr(), t, region.shape(), None)? };
                a.read_region_into_view(&region, Border::Reject, &mut v)?
            }
        }
        Ok(())
    }
}

/// Where the output goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// An OME-Zarr 0.5 image: level 0 written tile by tile, then its pyramid (2× means) until a
    /// level fits one chunk. Axes `y, x` for one channel, `c, y, x` for three.
    Zarr {
        /// The group folder (must not exist).
        path: PathBuf,
        /// Chunk edge; the tile must be a multiple of it (default 512, or the tile if smaller).
        chunk: Option<u64>,
        /// Chunk compression (default none: the fastest to write and read).
        compression: crate::zarr::Compression,
    },
    /// A tiled pyramidal TIFF (BigTIFF when large), written in bands.
    Tiff {
        /// The file (must not exist as a non-regular file; never the input).
        path: PathBuf,
        /// TIFF tile edge (default 512).
        tile: u32,
    },
}

impl Output {
    /// An uncompressed OME-Zarr output with the default chunk.
    pub fn zarr(path: impl Into<PathBuf>) -> Output {
        Output::Zarr {
            path: path.into(),
            chunk: None,
            compression: crate::zarr::Compression::None,
        }
    }

    /// `.tif` / `.tiff` / `.svs` paths are TIFF outputs, anything else OME-Zarr.
    pub fn from_path(path: impl Into<PathBuf>) -> Output {
        let path = path.into();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if matches!(ext.as_str(), "tif" | "tiff" | "btf" | "tf8") {
            Output::Tiff { path, tile: 512 }
        } else {
            Output::zarr(path)
        }
    }

    fn path(&self) -> &Path {
        match self {
            Output::Zarr { path, .. } | Output::Tiff { path, .. } => path,
        }
    }
}

/// Tile by tile, or the whole level at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Tiles of `tile × tile` output pixels (the last ones smaller).
    Tiled {
        /// The tile edge.
        tile: u64,
    },
    /// Read the whole level, filter, write: needs memory for all of it.
    Global,
}

/// Where the kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    /// The GPU when one is usable, else the CPU (the reason reported).
    #[default]
    Auto,
    /// The GPU, or an error.
    Gpu,
    /// The CPU (rayon on the compute threads).
    Cpu,
}

/// Options of [`run`].
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineOptions {
    /// The filter.
    pub filter: Filter,
    /// Tiled (default 4096: the halo rereads fewer source tiles than at 2048; run 18) or global.
    pub mode: Mode,
    /// Where the kernels run.
    pub device: Device,
    /// The most GPU memory the tiles in flight may take (default 2 GiB).
    pub budget: u64,
    /// Flush a Zarr output to storage at the end (default true); false leaves it in the page
    /// cache, as throughput benchmarks of writes measure.
    pub durable: bool,
}

impl PipelineOptions {
    /// `filter` tiled by 4096 on the best device within 2 GiB.
    pub fn new(filter: Filter) -> PipelineOptions {
        PipelineOptions {
            filter,
            mode: Mode::Tiled { tile: 4096 },
            device: Device::Auto,
            budget: 2 << 30,
            durable: true,
        }
    }
}

/// What [`run`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineReport {
    /// The output written.
    pub output: PathBuf,
    /// Whether the kernels ran on the GPU.
    pub on_gpu: bool,
    /// Why the CPU was used, when it was under [`Device::Auto`].
    pub cpu_reason: Option<String>,
    /// Tiles processed (1 in global mode).
    pub tiles: u64,
    /// Tiles in flight at most.
    pub in_flight: usize,
    /// Seconds of level 0 (read, filter, write, overlapped).
    pub seconds: f64,
    /// Seconds of the pyramid levels after level 0.
    pub pyramid_seconds: f64,
    /// The most GPU memory tiledio held during level 0 (bytes).
    pub peak_device_bytes: u64,
    /// Bytes read from the source (windows, halos included).
    pub bytes_read: u64,
    /// Bytes of level 0 written.
    pub bytes_written: u64,
}

/// Runs `input → opts.filter → output`, calling `progress(tiles done, tiles)`.
///
/// # Errors
/// [`PipelineError::Usage`] for arguments that cannot work (a filter the input's type does
/// not suit, a tile not a multiple of the chunk, a budget below two tiles, a GPU asked for and
/// absent, an output that is the input); the format and I/O crates' errors. A failed run leaves
/// nothing at the output path.
pub fn run(
    input: &Input,
    output: &Output,
    opts: &PipelineOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PipelineReport> {
    let (t, c) = (input.element_type(), input.channels());
    opts.filter.check_input(t, c)?;
    let image = input.shape();
    if image.contains(&0) {
        return Err(usage("the input is empty"));
    }
    if let Input::Tiff { slide, .. } = input
        && same_file(slide.path(), output.path())
    {
        return Err(usage(format!(
            "{}: the output would replace the input",
            output.path().display()
        )));
    }
    let (on_gpu, cpu_reason) = match (opts.device, gpu::gpu()) {
        (Device::Cpu, _) => (false, None),
        (_, Ok(_)) => (true, None),
        (Device::Gpu, Err(e)) => return Err(usage(format!("--device gpu: {e}"))),
        (Device::Auto, Err(e)) => (false, Some(e.to_string())),
    };
    let tile = match opts.mode {
        Mode::Tiled { tile } if tile >= 16 => tile,
        Mode::Tiled { tile } => return Err(usage(format!("tile {tile}: at least 16 pixels"))),
        Mode::Global => image[0].max(image[1]),
    };
    match output {
        Output::Zarr {
            path,
            chunk,
            compression,
        } => {
            let chunk = chunk.unwrap_or(512.min(tile));
            if chunk == 0 || (opts.mode != Mode::Global && !tile.is_multiple_of(chunk)) {
                return Err(usage(format!("tile {tile} must be a multiple of the chunk {chunk}")));
            }
            to_zarr(input, path, chunk, *compression, tile, on_gpu, opts, true, progress).map(|mut r| {
                r.cpu_reason = cpu_reason;
                r
            })
        }
        Output::Tiff { path, tile: tt } => to_tiff(input, path, *tt, tile, on_gpu, opts, progress).map(|mut r| {
            r.cpu_reason = cpu_reason;
            r
        }),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The output tiles of an image in raster order.
fn tiles(image: [u64; 2], tile: u64) -> Vec<Rect> {
    let mut v = Vec::new();
    let mut y = 0;
    while y < image[0] {
        let h = tile.min(image[0] - y);
        let mut x = 0;
        while x < image[1] {
            let w = tile.min(image[1] - x);
            v.push(Rect::new([y, x], [h, w]));
            x += w;
        }
        y += h;
    }
    v
}

/// A filtered tile on its way to the sink.
enum Filtered {
    Host(Vec<u8>),
    /// A reused buffer (it may be longer than the tile) and the tile's length in bytes.
    Device(DeviceBuffer, usize),
}

/// Geometry and sizes shared by the stages.
struct Plan<'a> {
    input: &'a Input,
    filter: Filter,
    image: [u64; 2],
    t: ElementType,
    c: usize,
    oc: usize,
    ot: ElementType,
}

impl<'a> Plan<'a> {
    fn new(input: &'a Input, filter: Filter) -> Plan<'a> {
        Plan {
            input,
            filter,
            image: input.shape(),
            t: input.element_type(),
            c: input.channels(),
            oc: filter.out_channels(),
            ot: filter.out_type(),
        }
    }

    /// The box of output tile `r` in the output array: `(y, x)`, or `(c, y, x)` when planar.
    fn out_box(&self, r: Rect) -> (Vec<u64>, Vec<u64>) {
        if self.oc > 1 {
            (
                vec![0, r.origin[0], r.origin[1]],
                vec![self.oc as u64, r.shape[0], r.shape[1]],
            )
        } else {
            (r.origin.to_vec(), r.shape.to_vec())
        }
    }

    /// Applies the filter to `window` (host, `window × channels` of `t`) writing `output`.
    fn filter_host(&self, window: Rect, output: Rect, src: &[u8], dst: &mut [u8]) -> Result<()> {
        let (t, c, image) = (self.t, self.c, self.image);
        let px = usize::try_from(output.pixels().unwrap_or(0)).map_err(|_| usage("tile too large"))?;
        match &self.filter {
            Filter::Sobel(what) => {
                let k = Sobel::new(t, c, image, window, output, *what)?;
                let mut out = vec![0f32; k.output_pixels()];
                k.host(src, &mut out)?;
                put_f32(&out, dst);
            }
            Filter::Gray | Filter::Hed => {
                let op = if self.filter == Filter::Gray {
                    ColourOp::Gray
                } else {
                    ColourOp::RgbToHed
                };
                let k = ColourMap::new(op, t, px)?;
                let mut out = vec![0f32; k.output_values()];
                k.host(src, &mut out)?;
                put_f32(&out, dst);
            }
            Filter::Normalize(n) => n.host(&src[..px * 3], &mut dst[..px * 3])?,
        }
        Ok(())
    }

    /// The GPU version of [`Plan::filter_host`], queued on `stream`.
    fn filter_device(
        &self,
        window: Rect,
        output: Rect,
        src: &DeviceBuffer,
        dst: &mut DeviceBuffer,
        stream: &Stream,
    ) -> Result<()> {
        let (t, c, image) = (self.t, self.c, self.image);
        let px = usize::try_from(output.pixels().unwrap_or(0)).map_err(|_| usage("tile too large"))?;
        // SAFETY (all three): `src` and `dst` outlive the kernel: the caller synchronises
        // `stream` before either buffer is reused or dropped.
        match &self.filter {
            Filter::Sobel(what) => unsafe {
                Sobel::new(t, c, image, window, output, *what)?.device_on(src, dst, stream)?
            },
            Filter::Gray | Filter::Hed => {
                let op = if self.filter == Filter::Gray {
                    ColourOp::Gray
                } else {
                    ColourOp::RgbToHed
                };
                unsafe { ColourMap::new(op, t, px)?.device_on(src, dst, stream)? }
            }
            Filter::Normalize(n) => unsafe { n.device_on(src, dst, px * 3, stream)? },
        }
        Ok(())
    }

    fn window(&self, out: Rect) -> Rect {
        let h = self.filter.halo();
        if h == 0 { out } else { out.with_halo(self.image, h) }
    }
    fn in_bytes(&self, r: Rect) -> u64 {
        r.pixels().unwrap_or(0) * (self.c * self.t.size()) as u64
    }
    fn out_bytes(&self, r: Rect) -> u64 {
        r.pixels().unwrap_or(0) * (self.oc * self.ot.size()) as u64
    }

    /// Reads the window of `out` and filters it, interleaved (`rows × cols × oc`). GPU
    /// buffers come from `bufs` (allocating and freeing per tile would synchronise the device).
    fn produce(&self, out: Rect, on_gpu: bool, stream: Option<&Stream>, bufs: &mut Buffers) -> Result<Filtered> {
        let win = self.window(out);
        let (ib, ob) = (self.in_bytes(win) as usize, self.out_bytes(out) as usize);
        if on_gpu {
            let stream = stream.ok_or_else(|| PipelineError::Internal("no stream for a GPU tile".into()))?;
            let mut src = bufs.take(ib)?;
            self.input.read_device(win, &mut src)?;
            let mut dst = bufs.take(ob)?;
            let r = self
                .filter_device(win, out, &src, &mut dst, stream)
                .and_then(|()| Ok(stream.synchronize()?));
            bufs.give(src);
            r?;
            Ok(Filtered::Device(dst, ob))
        } else {
            let mut src = crate::io::try_alloc_zeroed(ib, "a source window")?;
            self.input.read_host(win, &mut src)?;
            let mut dst = crate::io::try_alloc_zeroed(ob, "a filtered tile")?;
            let ctx = crate::io::Context::from_env()?;
            ctx.compute(|| self.filter_host(win, out, &src, &mut dst))?;
            Ok(Filtered::Host(dst))
        }
    }
}

/// Device buffers reused from tile to tile: the reader's own, and the tiles the writer gives
/// back after writing them.
struct Buffers {
    spare: Vec<DeviceBuffer>,
    back: Option<std::sync::mpsc::Receiver<DeviceBuffer>>,
}

impl Buffers {
    fn take(&mut self, len: usize) -> Result<DeviceBuffer> {
        if let Some(rx) = &self.back {
            self.spare.extend(rx.try_iter());
        }
        match self.spare.iter().position(|b| b.len() >= len.max(1)) {
            Some(i) => Ok(self.spare.swap_remove(i)),
            None => Ok(DeviceBuffer::new(len.max(1))?),
        }
    }
    fn give(&mut self, b: DeviceBuffer) {
        self.spare.push(b);
    }
}

/// Runs `produce` for every tile on a reader thread, at most `in_flight` tiles ahead, and
/// hands each to `consume` on this thread in order; device tiles go back to the reader.
fn overlapped(
    plan: &Plan<'_>,
    rects: &[Rect],
    on_gpu: bool,
    in_flight: usize,
    consume: &mut dyn FnMut(usize, Rect, &Filtered) -> Result<()>,
) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(usize, Filtered)>>(in_flight.saturating_sub(1).max(1));
    let (back_tx, back_rx) = std::sync::mpsc::channel::<DeviceBuffer>();
    std::thread::scope(|s| -> Result<()> {
        s.spawn(move || {
            let stream = if on_gpu {
                match Stream::new() {
                    Ok(st) => Some(st),
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                }
            } else {
                None
            };
            let mut bufs = Buffers {
                spare: Vec::new(),
                back: Some(back_rx),
            };
            for (i, &r) in rects.iter().enumerate() {
                let res = plan.produce(r, on_gpu, stream.as_ref(), &mut bufs).map(|f| (i, f));
                let failed = res.is_err();
                if tx.send(res).is_err() || failed {
                    return;
                }
            }
        });
        let mut consume_all = || -> Result<()> {
            for (expect, msg) in rx.iter().enumerate() {
                let (i, f) = msg?;
                if i != expect {
                    return Err(PipelineError::Internal(format!("tile {i} arrived as tile {expect}")));
                }
                consume(i, rects[i], &f)?;
                if let Filtered::Device(d, _) = f {
                    // the reader may have finished: then the buffer is simply freed
                    let _ = back_tx.send(d);
                }
            }
            Ok(())
        };
        let r = consume_all();
        // on an error the reader may be blocked sending a tile: dropping the receiver ends its
        // send with an error, so it returns and the scope can join it (else: a hang)
        drop(rx);
        r
    })
}

fn in_flight(plan: &Plan<'_>, tile: u64, on_gpu: bool, budget: u64) -> Result<usize> {
    if tile >= plan.image[0] && tile >= plan.image[1] {
        return Ok(1); // one tile: the global mode, which needs memory for all of it
    }
    let r = Rect::new([0, 0], [tile.min(plan.image[0]), tile.min(plan.image[1])]);
    // window + tile-major read scratch + output + the sink's staging of one tile
    let per = 2 * plan.in_bytes(plan.window(r)) + 2 * plan.out_bytes(r);
    if !on_gpu {
        return Ok(3);
    }
    let n = budget / per.max(1);
    if n < 2 {
        return Err(usage(format!(
            "a GPU budget of {} MiB holds fewer than two tiles of {tile} ({} MiB each): use a smaller --tile or a larger budget",
            budget >> 20,
            per >> 20
        )));
    }
    Ok(n.min(8) as usize)
}

#[allow(clippy::too_many_arguments)]
fn to_zarr(
    input: &Input,
    path: &Path,
    chunk: u64,
    compression: crate::zarr::Compression,
    tile: u64,
    on_gpu: bool,
    opts: &PipelineOptions,
    pyramid: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PipelineReport> {
    let plan = Plan::new(input, opts.filter);
    let [h, w] = plan.image;
    let mut write = crate::zarr::WriteOptions::from_env()?;
    if !opts.durable {
        write.durability = crate::zarr::Durability::None;
    }
    let group = MultiscaleWriter::create(path, OmeVersion::V05)?.with_durability(write.durability);
    let planar = plan.oc > 1;
    let (shape, chunks, names): (Vec<u64>, Vec<u64>, Vec<&str>) = if planar {
        (vec![plan.oc as u64, h, w], vec![1, chunk, chunk], vec!["c", "y", "x"])
    } else {
        (vec![h, w], vec![chunk, chunk], vec!["y", "x"])
    };
    let spec = crate::zarr::ArraySpec::new(&shape, &chunks, plan.ot)
        .with_compression(compression)
        .with_dimension_names(&names);
    let level0 = group.create_level("0", &spec)?;
    let rects = tiles(plan.image, tile);
    let n = rects.len() as u64;
    let flight = in_flight(&plan, tile, on_gpu, opts.budget)?;
    gpu::reset_peak_device_bytes();
    let base = gpu::device_bytes();
    let t0 = Instant::now();
    let (mut read, mut written) = (0u64, 0u64);
    let es = plan.ot.size();
    let mut planar_dev: Option<DeviceBuffer> = None;
    overlapped(&plan, &rects, on_gpu, flight, &mut |i, r, f| {
        let (origin, region) = plan.out_box(r);
        let px = r.pixels().unwrap_or(0) as usize;
        match f {
            Filtered::Host(b) => {
                if planar {
                    let mut p = vec![0u8; b.len()];
                    crate::kernels::hwc_to_chw(b, &mut p, px, plan.oc, es)?;
                    level0.write_region(&origin, &region, &p[..], &write)?;
                } else {
                    level0.write_region(&origin, &region, &b[..], &write)?;
                }
            }
            Filtered::Device(d, len) => {
                // the buffer is reused from a larger tile at times: write only this tile's bytes
                // SAFETY: a view of the first `len` bytes of `d`, which outlives it
                let d = &unsafe { DeviceBuffer::from_raw_parts(d.device_ptr(), *len) };
                if planar {
                    let need = d.len();
                    if planar_dev.as_ref().is_none_or(|p| p.len() < need) {
                        planar_dev = Some(DeviceBuffer::new(need)?);
                    }
                    let p = planar_dev
                        .as_mut()
                        .ok_or_else(|| PipelineError::Internal("no planar buffer".into()))?;
                    crate::kernels::hwc_to_chw_device(d, p, px, plan.oc, es)?;
                    // SAFETY: a view of the first d.len() bytes of `p`, which outlives it
                    let view = unsafe { DeviceBuffer::from_raw_parts(p.device_ptr(), need) };
                    level0.write_region(&origin, &region, &view, &write)?;
                } else {
                    level0.write_region(&origin, &region, d, &write)?;
                }
            }
        }
        read += plan.in_bytes(plan.window(r));
        written += plan.out_bytes(r);
        progress(i as u64 + 1, n);
        Ok(())
    })?;
    drop(planar_dev);
    level0.finish()?;
    let seconds = t0.elapsed().as_secs_f64();
    let peak = gpu::peak_device_bytes().saturating_sub(base);
    let t1 = Instant::now();
    let mut levels = vec![Level {
        path: "0".into(),
        scale: if planar { vec![1.0, 1.0, 1.0] } else { vec![1.0, 1.0] },
    }];
    let mut prev = ZarrArray::open(group.root().join("0"))?;
    let (mut lh, mut lw) = (h, w);
    let mut l = 1;
    while pyramid && lh.max(lw) > chunk && lh.min(lw) > 1 {
        let (nh, nw) = (lh.div_ceil(2), lw.div_ceil(2));
        let (s, ch): (Vec<u64>, Vec<u64>) = if planar {
            (vec![plan.oc as u64, nh, nw], vec![1, chunk, chunk])
        } else {
            (vec![nh, nw], vec![chunk, chunk])
        };
        let spec = crate::zarr::ArraySpec::new(&s, &ch, plan.ot)
            .with_compression(compression)
            .with_dimension_names(&names);
        let next = group.create_level(&l.to_string(), &spec)?;
        halve(&prev, &next, planar, plan.oc, plan.ot, chunk, &write)?;
        next.finish()?;
        let f = (1u64 << l) as f64;
        levels.push(Level {
            path: l.to_string(),
            scale: if planar { vec![1.0, f, f] } else { vec![f, f] },
        });
        prev = ZarrArray::open(group.root().join(l.to_string()))?;
        (lh, lw, l) = (nh, nw, l + 1);
    }
    let axes = if planar {
        vec![Axis::channel("c"), Axis::space("y", None), Axis::space("x", None)]
    } else {
        vec![Axis::space("y", None), Axis::space("x", None)]
    };
    let out = group.finish(None, axes, levels)?;
    Ok(PipelineReport {
        output: out,
        on_gpu,
        cpu_reason: None,
        tiles: n,
        in_flight: flight,
        seconds,
        pyramid_seconds: t1.elapsed().as_secs_f64(),
        peak_device_bytes: peak,
        bytes_read: read,
        bytes_written: written,
    })
}

/// Writes `next` as the 2× mean of `prev`, a band of `chunk` output rows at a time.
fn halve(
    prev: &ZarrArray,
    next: &ZarrArray,
    planar: bool,
    oc: usize,
    t: ElementType,
    chunk: u64,
    write: &crate::zarr::WriteOptions,
) -> Result<()> {
    let ps = prev.shape();
    let (ph, pw) = if planar { (ps[1], ps[2]) } else { (ps[0], ps[1]) };
    let (nh, nw) = (ph.div_ceil(2), pw.div_ceil(2));
    let planes = if planar { oc } else { 1 };
    let es = t.size();
    let mut y = 0;
    while y < nh {
        let rows = chunk.min(nh - y);
        let (sy, sh) = (2 * y, (2 * rows).min(ph - 2 * y));
        let mut out = vec![0u8; planes * (rows * nw) as usize * es];
        for p in 0..planes {
            let (o, s): (Vec<u64>, Vec<u64>) = if planar {
                (vec![p as u64, sy, 0], vec![1, sh, pw])
            } else {
                (vec![sy, 0], vec![sh, pw])
            };
            let mut band = vec![0u8; (sh * pw) as usize * es];
            prev.read_region(&Region::at(&o, &s), Border::Reject, &mut band[..])?;
            let plane = &mut out[p * (rows * nw) as usize * es..(p + 1) * (rows * nw) as usize * es];
            crate::kernels::downsample2x(&band, plane, sh as usize, pw as usize, 1, t)?;
        }
        let (o, s): (Vec<u64>, Vec<u64>) = if planar {
            (vec![0, y, 0], vec![oc as u64, rows, nw])
        } else {
            (vec![y, 0], vec![rows, nw])
        };
        next.write_region(&o, &s, &out[..], write)?;
        y += rows;
    }
    Ok(())
}

/// The filtered image as rows for the TIFF writer: each band is read with its halo and
/// filtered on the chosen device.
struct FilteredRows<'a> {
    plan: Plan<'a>,
    on_gpu: bool,
    stream: Option<Stream>,
    bands: std::sync::atomic::AtomicU64,
    read: std::sync::atomic::AtomicU64,
}

impl crate::tiff::RowSource for FilteredRows<'_> {
    fn dimensions(&self) -> (u64, u64) {
        (self.plan.image[1], self.plan.image[0])
    }
    fn channels(&self) -> usize {
        self.plan.oc
    }
    fn sample_type(&self) -> ElementType {
        self.plan.ot
    }
    fn read_rows(&self, y0: u64, rows: u64) -> crate::tiff::Result<crate::tiff::HostImage> {
        let r = Rect::new([y0, 0], [rows, self.plan.image[1]]);
        let as_tiff = |e: PipelineError| match e {
            PipelineError::Tiff(t) => t,
            other => crate::tiff::TiffError::Source(Box::new(other)),
        };
        let mut bufs = Buffers {
            spare: Vec::new(),
            back: None,
        };
        let f = self
            .plan
            .produce(r, self.on_gpu, self.stream.as_ref(), &mut bufs)
            .map_err(as_tiff)?;
        let bytes = match f {
            Filtered::Host(b) => b,
            Filtered::Device(d, len) => {
                let mut v = d.to_host_vec().map_err(crate::tiff::TiffError::Io)?;
                v.truncate(len);
                v
            }
        };
        self.bands.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.read.fetch_add(
            self.plan.in_bytes(self.plan.window(r)),
            std::sync::atomic::Ordering::Relaxed,
        );
        crate::tiff::HostImage::from_bytes(
            rows as usize,
            self.plan.image[1] as usize,
            self.plan.oc,
            self.plan.ot,
            bytes,
        )
    }
}

fn to_tiff(
    input: &Input,
    path: &Path,
    tiff_tile: u32,
    tile: u64,
    on_gpu: bool,
    opts: &PipelineOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PipelineReport> {
    let plan = Plan::new(input, opts.filter);
    let row_bytes = plan.image[1] * (plan.oc * plan.ot.size()) as u64;
    let src = FilteredRows {
        plan,
        on_gpu,
        stream: if on_gpu { Some(Stream::new()?) } else { None },
        bands: Default::default(),
        read: Default::default(),
    };
    let mut w = crate::tiff::WriteOptions::default()
        .tile(tiff_tile)
        .settings(Settings::from_env()?);
    // one band of `tile` rows at a time (the global mode: the whole image in one band)
    w.band_bytes = usize::try_from(row_bytes.saturating_mul(tile)).unwrap_or(usize::MAX);
    if let Some(m) = input.mpp() {
        w = w.mpp(m);
    }
    gpu::reset_peak_device_bytes();
    let base = gpu::device_bytes();
    let t0 = Instant::now();
    let total = std::sync::Mutex::new((0u64, 1u64));
    let r = crate::tiff::write_pyramid_from(path, &src, &w, &|d, t| {
        if let Ok(mut g) = total.lock() {
            *g = (d, t);
        }
    })?;
    let (d, t) = total.into_inner().unwrap_or((0, 1));
    progress(d, t);
    Ok(PipelineReport {
        output: path.to_path_buf(),
        on_gpu,
        cpu_reason: None,
        tiles: src.bands.load(std::sync::atomic::Ordering::Relaxed),
        in_flight: 1,
        seconds: t0.elapsed().as_secs_f64(),
        pyramid_seconds: 0.0,
        peak_device_bytes: gpu::peak_device_bytes().saturating_sub(base),
        bytes_read: src.read.load(std::sync::atomic::Ordering::Relaxed),
        bytes_written: r.levels.first().map_or(0, |&(h, w)| h * w) * (src.plan.oc * src.plan.ot.size()) as u64,
    })
}

/// Fits Macenko normalisation to a whole image tile by tile (three passes: OD covariance,
/// stain angles, concentrations), in bounded memory, on the CPU.
///
/// # Errors
/// [`PipelineError::Usage`] for input other than RGB `u8`; read and kernel errors (an image
/// with no tissue pixels is a kernel error).
pub fn fit_macenko(
    input: &Input,
    params: MacenkoParams,
    tile: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MacenkoNormalizer> {
    if input.element_type() != ElementType::U8 || input.channels() != 3 {
        return Err(usage("Macenko normalisation takes RGB u8 input"));
    }
    let rects = tiles(input.shape(), tile.max(16));
    let n = rects.len() as u64;
    let ctx = crate::io::Context::from_env()?;
    let each = |f: &mut dyn FnMut(&[u8]) -> Result<()>, pass: u64, progress: &mut dyn FnMut(u64, u64)| -> Result<()> {
        for (i, &r) in rects.iter().enumerate() {
            let mut buf = crate::io::try_alloc_zeroed(r.pixels().unwrap_or(0) as usize * 3, "a tile")?;
            input.read_host(r, &mut buf)?;
            f(&buf)?;
            progress(pass * n + i as u64 + 1, 3 * n);
        }
        Ok(())
    };
    let mut cov = crate::kernels::StainCovariance::new(params)?;
    each(&mut |b| Ok(ctx.compute(|| cov.accumulate(b))?), 0, progress)?;
    let mut ang = crate::kernels::StainAngles::new(cov.finish()?);
    each(&mut |b| Ok(ctx.compute(|| ang.accumulate(b))?), 1, progress)?;
    let mut con = crate::kernels::StainConcentrations::new(ang.finish()?)?;
    each(&mut |b| Ok(ctx.compute(|| con.accumulate(b))?), 2, progress)?;
    Ok(con.finish()?)
}

/// One row of [`compare`]: a way of doing level 0, its median time and peak GPU memory.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonRow {
    /// What was timed.
    pub what: String,
    /// Median, min and max over the repeats.
    pub timing: crate::bench::Timing,
    /// The most GPU memory tiledio held in a repeat (bytes).
    pub peak_device_bytes: u64,
}

/// The seeds' round-trip comparison, on `input`: reading every tile window alone, writing
/// every output tile alone (from GPU or host memory into an uncompressed Zarr array), the
/// tiled pipeline and the global one (level 0 only, no pyramid), `repeats` rounds of the four
/// in turn, each after a flush of `dir`'s file system; outputs under `dir`, removed after each
/// (neither flush nor removal timed).
///
/// # Errors
/// As [`run`].
pub fn compare(input: &Input, dir: &Path, opts: &PipelineOptions, repeats: usize) -> Result<Vec<ComparisonRow>> {
    let on_gpu = match opts.device {
        Device::Cpu => false,
        Device::Gpu => {
            gpu::gpu()?;
            true
        }
        Device::Auto => gpu::available(),
    };
    let tile = match opts.mode {
        Mode::Tiled { tile } => tile,
        Mode::Global => 2048,
    };
    let plan = Plan::new(input, opts.filter);
    plan.filter.check_input(plan.t, plan.c)?;
    let rects = tiles(plan.image, tile);
    let chunk = 512.min(tile);
    let mut write = crate::zarr::WriteOptions::from_env()?;
    if !opts.durable {
        write.durability = crate::zarr::Durability::None;
    }
    // Each row is a closure that does one repeat and returns the output to remove (outside
    // the timing). The repeats are interleaved (row 1, 2, 3, 4, row 1, 2, ...) and each starts
    // after a flush of the output's file system: the page cache's writeback of earlier writes
    // drifts over a run, and timing all repeats of one row before the next put that drift
    // into the ratios between rows.
    type Step<'s> = Box<dyn FnMut(usize) -> Result<Option<PathBuf>> + 's>;
    let dev = if on_gpu { "GPU" } else { "CPU" };
    let mut steps: Vec<(String, Step<'_>)> = Vec::new();
    // read only: every window, halo included, into one reused buffer
    let mut dbuf: Option<DeviceBuffer> = None;
    let mut host = Vec::new();
    let (plan_r, rects_r) = (&plan, &rects);
    steps.push((
        format!("read only ({dev}, tiles of {tile})"),
        Box::new(move |_| {
            for &r in rects_r {
                let win = plan_r.window(r);
                let n = plan_r.in_bytes(win) as usize;
                if on_gpu {
                    if dbuf.as_ref().is_none_or(|b| b.len() < n) {
                        dbuf = Some(DeviceBuffer::new(n.max(1))?);
                    }
                    if let Some(b) = dbuf.as_mut() {
                        input.read_device(win, b)?;
                    }
                } else {
                    host.resize(n, 0);
                    input.read_host(win, &mut host)?;
                }
            }
            Ok(None)
        }),
    ));
    // write only: the output tiles (zeros) from memory into a new array
    let planar = plan.oc > 1;
    let write_ref = &write;
    steps.push((
        format!("write only ({dev}, tiles of {tile})"),
        Box::new(move |k| {
            let path = dir.join(format!("write-only-{k}.zarr"));
            let [h, w] = plan_r.image;
            let (shape, chunks) = if planar {
                (vec![plan_r.oc as u64, h, w], vec![1, chunk, chunk])
            } else {
                (vec![h, w], vec![chunk, chunk])
            };
            let a = ZarrArray::create(&path, &crate::zarr::ArraySpec::new(&shape, &chunks, plan_r.ot))?;
            let full = plan_r.out_bytes(Rect::new([0, 0], [tile.min(h), tile.min(w)])) as usize;
            let dsrc = if on_gpu {
                Some(DeviceBuffer::zeroed(full.max(1))?)
            } else {
                None
            };
            let hsrc = vec![0u8; if on_gpu { 0 } else { full }];
            for &r in rects_r {
                let (o, s) = plan_r.out_box(r);
                let n = plan_r.out_bytes(r) as usize;
                match &dsrc {
                    Some(d) => {
                        // SAFETY: a view of the first n bytes of `d`, which outlives it
                        let v = unsafe { DeviceBuffer::from_raw_parts(d.device_ptr(), n) };
                        a.write_region(&o, &s, &v, write_ref)?;
                    }
                    None => a.write_region(&o, &s, &hsrc[..n], write_ref)?,
                }
            }
            a.finish()?;
            Ok(Some(path))
        }),
    ));
    for (name, mode) in [("tiled", Mode::Tiled { tile }), ("global", Mode::Global)] {
        let mut o = opts.clone();
        o.mode = mode;
        o.device = if on_gpu { Device::Gpu } else { Device::Cpu };
        steps.push((
            format!("{name} read + filter + write ({dev})"),
            Box::new(move |k| {
                let path = dir.join(format!("{name}-{k}.zarr"));
                let out = Output::Zarr {
                    path: path.clone(),
                    // one chunk: no pyramid level after level 0
                    chunk: Some(chunk),
                    compression: crate::zarr::Compression::None,
                };
                level0_only(input, &out, &o)?;
                Ok(Some(path))
            }),
        ));
    }
    let mut secs = vec![Vec::new(); steps.len()];
    let mut peaks = vec![0u64; steps.len()];
    for k in 0..repeats.max(1) {
        for (i, (_, step)) in steps.iter_mut().enumerate() {
            flush_fs(dir);
            gpu::reset_peak_device_bytes();
            let base = gpu::device_bytes();
            let t = Instant::now();
            let made = step(k)?;
            secs[i].push(t.elapsed().as_secs_f64());
            peaks[i] = peaks[i].max(gpu::peak_device_bytes().saturating_sub(base));
            if let Some(p) = made {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
    let mut rows = Vec::new();
    for (i, (what, _)) in steps.iter().enumerate() {
        rows.push(ComparisonRow {
            what: what.clone(),
            timing: crate::bench::Timing::of(&secs[i]).ok_or_else(|| PipelineError::Internal("no repeats".into()))?,
            peak_device_bytes: peaks[i],
        });
    }
    Ok(rows)
}

/// Flushes the file system holding `dir` (best effort: a benchmark's starting state, not data
/// safety).
fn flush_fs(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs on a descriptor this function owns for the call.
        unsafe {
            libc::syncfs(f.as_raw_fd());
        }
    }
}

/// [`run`] writing level 0 only (the comparison leaves the pyramid out of every row).
fn level0_only(input: &Input, out: &Output, opts: &PipelineOptions) -> Result<()> {
    let Output::Zarr {
        path,
        chunk,
        compression,
    } = out
    else {
        return Err(PipelineError::Internal("level0_only takes a Zarr output".into()));
    };
    let tile = match opts.mode {
        Mode::Tiled { tile } => tile,
        Mode::Global => input.shape()[0].max(input.shape()[1]),
    };
    let on_gpu = opts.device == Device::Gpu;
    let mut o = opts.clone();
    o.mode = Mode::Tiled { tile };
    let chunk = chunk.unwrap_or(512);
    to_zarr(
        input,
        path,
        chunk,
        *compression,
        tile,
        on_gpu,
        &o,
        false,
        &mut |_, _| {},
    )
    .map(|_| ())
}
