//! Reads into GPU memory. Uncompressed tiles: one batched range read straight into a
//! tile-major device buffer, then the chunk scatter kernel of [`tiledio_kernels`] places them
//! (crop, stride, byte order).
//! Compressed tiles: raw bytes read to the host in one batch, decoded in parallel on the CPU
//! in bands, each band uploaded while the next decodes, then the same kernel.

use crate::error::{Result, TiffError};
use crate::image::{HostImage, SampleType};
use crate::page::{Compression, Page};
use crate::region::{Job, read_decode, slot_ranges, window_bytes, window_inside, window_jobs};
use crate::slide::{ReadOptions, Slide, region_readers};
use crate::write::{WriteOptions, WriteReport, write_pyramid};
use std::path::Path;
use tiledio_io::gpu::DeviceBuffer;
use tiledio_io::{Border, DeviceArray, DeviceView, FileHandle, Region};
use tiledio_kernels::{ChunkLayout, KernelError};

/// An image in GPU memory: `height × width × channels` samples, row-major, native order.
///
/// ```no_run
/// let s = tiledio_tiff::Slide::open("slide.tif")?;
/// let img = s.read_level_device(0)?;
/// let host = img.to_host()?;
/// # Ok::<(), tiledio_tiff::TiffError>(())
/// ```
pub struct DeviceImage {
    /// The pixels.
    pub buffer: DeviceBuffer,
    /// `(height, width, channels)`.
    pub shape: (usize, usize, usize),
    /// The sample type.
    pub dtype: SampleType,
}

impl DeviceImage {
    /// Copies the image to host memory.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// assert_eq!(s.read_level_device(0)?.to_host()?, s.read_level(0)?);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::Io`] for a CUDA error.
    pub fn to_host(&self) -> Result<HostImage> {
        let v = self.buffer.to_host_vec()?;
        HostImage::from_bytes(self.shape.0, self.shape.1, self.shape.2, self.dtype, v)
    }

    /// Uploads a host image.
    ///
    /// ```no_run
    /// let img = tiledio_tiff::HostImage::from_u8(1, 1, 1, vec![3])?;
    /// let d = tiledio_tiff::DeviceImage::from_host(&img)?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::Io`] without a GPU or for a CUDA error.
    pub fn from_host(img: &HostImage) -> Result<DeviceImage> {
        Ok(DeviceImage {
            buffer: DeviceBuffer::from_host(img.bytes())?,
            shape: img.shape(),
            dtype: img.dtype(),
        })
    }

    /// The image as an `height × width × channels` [`DeviceArray`] (the vocabulary shared with
    /// the Zarr crate and the kernels).
    ///
    /// # Errors
    /// [`TiffError::Io`] if the buffer is shorter than the shape (never for images of ours).
    pub fn into_array(self) -> Result<DeviceArray> {
        let (h, w, c) = self.shape;
        Ok(DeviceArray::from_buffer(
            self.buffer,
            self.dtype,
            &[h as u64, w as u64, c as u64],
        )?)
    }
}

/// Writes a GPU image as a tiled pyramidal TIFF (copied to the host, then [`write_pyramid`]).
///
/// ```no_run
/// let s = tiledio_tiff::Slide::open("in.tif")?;
/// let img = s.read_level_device(0)?;
/// tiledio_tiff::write_pyramid_device("out.tif".as_ref(), &img, &Default::default())?;
/// # Ok::<(), tiledio_tiff::TiffError>(())
/// ```
///
/// # Errors
/// As [`write_pyramid`], and CUDA errors.
pub fn write_pyramid_device(path: &Path, image: &DeviceImage, opts: &WriteOptions) -> Result<WriteReport> {
    write_pyramid(path, &image.to_host()?, opts)
}

/// The tiles of a page as a [`ChunkLayout`]: the page is a `height × width` array of pixels
/// (`pixel_bytes` each) in units of `tile_h × tile_w` (strips are tiles as wide as the page),
/// each stored whole in a slot of `tile_bytes`; the window is the region at `(x, y)` (which may
/// start before the image or reach past it), `w × h` pixels.
pub(crate) fn tile_layout(page: &Page, x: i64, y: i64, w: u64, h: u64, swap: bool) -> Result<ChunkLayout> {
    let l = ChunkLayout::new(
        &[page.height, page.width],
        &[page.tile_h, page.tile_w],
        &[page.tile_h, page.tile_w],
        &[y, x],
        &[h, w],
        page.pixel_bytes(),
        0,
    )
    .and_then(|l| l.with_byte_swap(if swap { page.dtype.size() } else { 0 }))
    .map_err(kernel_err)?;
    debug_assert_eq!(l.slot_bytes(), page.tile_bytes());
    Ok(l)
}

/// A kernel error as this crate's error.
pub(crate) fn kernel_err(e: KernelError) -> TiffError {
    match e {
        KernelError::Io(e) => TiffError::Io(e),
        // the layout is built here from a checked page: a refusal is our bug
        other => TiffError::Internal(other.to_string()),
    }
}

/// Places the jobs' tiles from a device tile-major buffer (job `i` in slot `i`) into `out`, the
/// window `(x, y, w, h)` of the page, swapping sample bytes when `swap`: the chunk scatter
/// kernel of [`tiledio_kernels`]. Window pixels outside the image are left as they are.
#[allow(clippy::too_many_arguments)]
fn place_device(
    page: &Page,
    jobs: &[Job],
    slots: &DeviceBuffer,
    out: &mut DeviceBuffer,
    (x, y): (i64, i64),
    (w, h): (u64, u64),
    swap: bool,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    debug_assert!(jobs.iter().enumerate().all(|(i, j)| j.slot == i));
    let units: Vec<u64> = jobs.iter().map(|j| j.tile as u64).collect();
    tile_layout(page, x, y, w, h, swap)?
        .scatter_device(slots, out, &units)
        .map_err(kernel_err)
}

/// Reads a window of a page into a new device buffer.
fn read_window_device(
    fh: &FileHandle,
    page: &Page,
    at: (i64, i64),
    size: (u64, u64),
    background: u8,
) -> Result<DeviceBuffer> {
    let mut out = DeviceBuffer::new(window_bytes(page, size.0, size.1)?)?;
    read_window_device_into(fh, page, at, size, background, &mut out)?;
    Ok(out)
}

/// Reads a window of a page into the first bytes of `out` (a buffer of ours or a view of a
/// framework's memory).
fn read_window_device_into(
    fh: &FileHandle,
    page: &Page,
    (x, y): (i64, i64),
    (w, h): (u64, u64),
    background: u8,
    out: &mut DeviceBuffer,
) -> Result<()> {
    let (len, jobs) = window_jobs(fh, page, x, y, w, h)?;
    if out.len() < len {
        return Err(TiffError::InvalidArgument(format!(
            "a {w}x{h} region needs {len} bytes; the destination holds {}",
            out.len()
        )));
    }
    if !window_inside(page, x, y, w, h) || jobs.is_empty() {
        // the region's bytes only: a caller's buffer may be longer
        tiledio_kernels::fill_device(out, len, &[background]).map_err(kernel_err)?;
    }
    if jobs.is_empty() {
        return Ok(());
    }
    let tb = page.tile_bytes();
    // the tile-major scratch is kept by the handle's context between calls (allocating a
    // level-sized buffer costs milliseconds of a read that takes tens), within its cap
    let ctx = tiledio_io::Context::for_settings(fh.settings())?;
    let mut slots = ctx.scratch(jobs.len() * tb)?;
    if page.compression == Compression::None {
        fh.read_ranges(&slot_ranges(page, &jobs), &mut *slots)?;
        let swap = page.big_endian && page.dtype.size() > 1;
        place_device(page, &jobs, &slots, out, (x, y), (w, h), swap)?;
        return Ok(());
    }
    // compressed: decode bands of ~64 MiB on the CPU; upload each while the next decodes
    let per_band = ((64usize << 20) / tb.max(1)).max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(1);
    std::thread::scope(|s| -> Result<()> {
        let slots_ref = &mut slots;
        let uploader = s.spawn(move || -> Result<()> {
            for (first, band) in rx {
                slots_ref.copy_from_host_at(first * tb, &band)?;
            }
            Ok(())
        });
        let mut result = Ok(());
        for (b, chunk) in jobs.chunks(per_band).enumerate() {
            // decode with slots numbered from 0 within the band
            let local: Vec<Job> = chunk.iter().enumerate().map(|(i, j)| Job { slot: i, ..*j }).collect();
            match ctx.compute(|| read_decode(fh, page, &local)) {
                Ok(band) => {
                    if tx.send((b * per_band, band)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        drop(tx);
        let up = uploader
            .join()
            .unwrap_or_else(|_| Err(TiffError::Internal("the upload thread panicked".into())));
        result.and(up)
    })?;
    place_device(page, &jobs, &slots, out, (x, y), (w, h), false)?;
    Ok(())
}

region_readers! {
    /// Reads a region into GPU memory (OpenSlide semantics, as [`Slide::read_region`]).
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let img = s.read_region_device((0, 0), 0, (1024, 1024))?;
    /// assert_eq!(img.shape.0, 1024);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region`]; [`TiffError::Io`] with `IoError::NoGpu` without a GPU.
    fn read_region_device;

    /// [`Slide::read_region_device`] with options.
    ///
    /// ```no_run
    /// use tiledio_tiff::{ReadOptions, Slide};
    /// let s = Slide::open("slide.tif")?;
    /// let img = s.read_region_device_with((-5, 0), 0, (64, 64), &ReadOptions::with_background(255))?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region_device`].
    fn read_region_device_with -> DeviceImage = |slide, page, at, size, background| {
        let buffer = read_window_device(slide.file(), page, at, size, background)?;
        Ok(DeviceImage {
            buffer,
            shape: (size.1 as usize, size.0 as usize, page.spp),
            dtype: page.dtype,
        })
    };
}

impl Slide {
    /// [`Slide::read_region_device`] into a GPU array the caller owns: a [`DeviceArray`] of
    /// ours, or an array allocated by CuPy or PyTorch seen through [`DeviceView::from_raw`]. The
    /// array must be C-order `height × width × channels` of the slide's sample type.
    ///
    /// ```no_run
    /// use tiledio_io::DeviceArray;
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let mut a = DeviceArray::zeros(s.sample_type(), &[512, 512, s.channels() as u64])?;
    /// s.read_region_device_into((0, 0), 0, (512, 512), &mut a.view_mut())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region_device`]; [`TiffError::Io`] with `InvalidArgument` when the
    /// array's type, shape or strides differ.
    pub fn read_region_device_into(
        &self,
        location: (i64, i64),
        level: usize,
        size: (u64, u64),
        out: &mut DeviceView<'_>,
    ) -> Result<()> {
        let (page, x, y) = self.window(location, level, size)?;
        let out = out.expect_mut(page.dtype, &[size.1, size.0, page.spp as u64])?;
        read_window_device_into(self.file(), page, (x, y), size, 0, out)
    }

    /// Reads a region of a level, in that level's pixel coordinates (as
    /// [`Slide::read_level_region`]), into a GPU array the caller owns: C-order
    /// `rows × columns × channels` of the slide's sample type. Tile pipelines read their
    /// windows (a tile and its halo) this way.
    ///
    /// ```no_run
    /// use tiledio_io::{Border, DeviceArray, Region};
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let mut a = DeviceArray::zeros(s.sample_type(), &[256, 512, s.channels() as u64])?;
    /// s.read_level_region_device_into(1, &Region::new(&[100, 0], &[256, 512]), Border::Fill, &mut a.view_mut())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_level_region`]; [`TiffError::Io`] with `InvalidArgument` when the
    /// array's type, shape or strides differ.
    pub fn read_level_region_device_into(
        &self,
        level: usize,
        region: &Region,
        border: Border,
        out: &mut DeviceView<'_>,
    ) -> Result<()> {
        let (page, (x, y), (w, h)) = self.level_window(level, region, border)?;
        let out = out.expect_mut(page.dtype, &[h, w, page.spp as u64])?;
        read_window_device_into(self.file(), page, (x, y), (w, h), 0, out)
    }

    /// Reads a whole level into GPU memory.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let img = s.read_level_device(0)?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region_device`].
    pub fn read_level_device(&self, level: usize) -> Result<DeviceImage> {
        let page = self.page(level)?;
        let buffer = read_window_device(self.file(), page, (0, 0), (page.width, page.height), 0)?;
        Ok(DeviceImage {
            buffer,
            shape: (page.height as usize, page.width as usize, page.spp),
            dtype: page.dtype,
        })
    }
}
