//! The pyramidal tiled TIFF writer: levels by 2× area averaging, tiles compressed in
//! parallel, classic TIFF or BigTIFF (automatic past 4 GiB), reduced levels as chained pages
//! (NewSubfileType=1) or as SubIFDs (OME-TIFF), written to a temporary name and renamed.

use crate::downsample::half_row;
use crate::error::{Result, TiffError};
use crate::image::{HostImage, SampleType};
use crate::page::Compression;
use crate::tags::{Entry, encode_ifd, ifd_size};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;
use tiledio_io::FileWriter;

/// Whether to write BigTIFF.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BigTiff {
    /// BigTIFF only when offsets would pass 4 GiB (the default).
    #[default]
    Auto,
    /// Always BigTIFF.
    Always,
    /// Never BigTIFF: a file that would pass 4 GiB is an error.
    Never,
}

/// How to write a pyramid. Build with the methods from [`WriteOptions::default`].
///
/// ```
/// use tiledio_tiff::{BigTiff, Compression, WriteOptions};
/// let o = WriteOptions::default().tile(256).compression(Compression::Zstd).levels(3).bigtiff(BigTiff::Always);
/// assert_eq!(o.tile, 256);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Tile width and height in pixels (a multiple of 16). Default 512.
    pub tile: u32,
    /// Tile compression: `None`, `Deflate`, `Zstd`, `Lzw` or `Jpeg` (u8, 1 or 3 channels). Default none.
    pub compression: Compression,
    /// JPEG quality 1..=100 (default 90); deflate/zstd use their default levels.
    pub quality: u8,
    /// Number of levels; `None` halves until the level fits in one tile.
    pub levels: Option<usize>,
    /// BigTIFF choice.
    pub bigtiff: BigTiff,
    /// Reduced levels as SubIFDs of the first page with an OME-XML description (OME-TIFF),
    /// instead of chained pages (which OpenSlide needs).
    pub subifds: bool,
    /// ImageDescription of the first page (default: none, or OME-XML with `subifds`).
    pub description: Option<String>,
    /// Microns per pixel at level 0 (written as resolution in centimetres).
    pub mpp: Option<f64>,
    /// Alignment of uncompressed tiles and of each level's data, in bytes (default 4096).
    pub align: u64,
    /// Level-0 bytes read from the source per band by the streaming writer (default 64 MiB,
    /// at least one row of tiles): the memory a write holds is a few bands.
    pub band_bytes: usize,
    /// Settings of the write: its encoding runs on their compute threads
    /// (`TILEDIO_COMPUTE_THREADS`, [`tiledio_io::Context::compute`]).
    pub settings: tiledio_io::Settings,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            tile: 512,
            compression: Compression::None,
            quality: 90,
            levels: None,
            bigtiff: BigTiff::Auto,
            subifds: false,
            description: None,
            mpp: None,
            align: 4096,
            band_bytes: 64 << 20,
            settings: tiledio_io::Settings::default(),
        }
    }
}

/// A builder method `name(value)` setting the field of the same name.
macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $t:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, $name: $t) -> Self {
            self.$name = $name;
            self
        }
    };
}

impl WriteOptions {
    setter!(
        /// Sets the tile size.
        ///
        /// ```
        /// assert_eq!(tiledio_tiff::WriteOptions::default().tile(128).tile, 128);
        /// ```
        tile: u32
    );
    setter!(
        /// Sets the compression.
        ///
        /// ```
        /// use tiledio_tiff::{Compression, WriteOptions};
        /// assert_eq!(WriteOptions::default().compression(Compression::Deflate).compression, Compression::Deflate);
        /// ```
        compression: Compression
    );
    setter!(
        /// Sets the JPEG quality.
        ///
        /// ```
        /// assert_eq!(tiledio_tiff::WriteOptions::default().quality(75).quality, 75);
        /// ```
        quality: u8
    );
    setter!(
        /// Sets the settings whose compute threads encode the tiles.
        ///
        /// ```
        /// let s = tiledio_io::Settings { compute_threads: 2, ..Default::default() };
        /// assert_eq!(tiledio_tiff::WriteOptions::default().settings(s).settings.compute_threads, 2);
        /// ```
        settings: tiledio_io::Settings
    );
    /// Sets the number of levels.
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::WriteOptions::default().levels(2).levels, Some(2));
    /// ```
    pub fn levels(mut self, n: usize) -> Self {
        self.levels = Some(n);
        self
    }
    setter!(
        /// Sets the BigTIFF choice.
        ///
        /// ```
        /// use tiledio_tiff::{BigTiff, WriteOptions};
        /// assert_eq!(WriteOptions::default().bigtiff(BigTiff::Always).bigtiff, BigTiff::Always);
        /// ```
        bigtiff: BigTiff
    );
    setter!(
        /// Writes reduced levels as SubIFDs (OME-TIFF).
        ///
        /// ```
        /// assert!(tiledio_tiff::WriteOptions::default().subifds(true).subifds);
        /// ```
        subifds: bool
    );
    /// Sets the first page's ImageDescription.
    ///
    /// ```
    /// let o = tiledio_tiff::WriteOptions::default().description("hello");
    /// assert_eq!(o.description.as_deref(), Some("hello"));
    /// ```
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Sets the level-0 pixel size in microns.
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::WriteOptions::default().mpp(0.25).mpp, Some(0.25));
    /// ```
    pub fn mpp(mut self, mpp: f64) -> Self {
        self.mpp = Some(mpp);
        self
    }
}

/// What a write produced.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WriteReport {
    /// `(width, height)` of each level written.
    pub levels: Vec<(u64, u64)>,
    /// File size in bytes.
    pub bytes: u64,
    /// Whether the file is BigTIFF.
    pub bigtiff: bool,
}

/// Rows of the image to write as level 0 of a pyramid, read a band at a time: what the
/// streaming writer ([`write_pyramid_from`]) converts in bounded memory. Implemented by
/// [`HostImage`] (an image in memory) and by a slide level ([`Slide::level_rows`](crate::Slide::level_rows)).
pub trait RowSource: Sync {
    /// `(width, height)` in pixels.
    fn dimensions(&self) -> (u64, u64);
    /// Samples per pixel.
    fn channels(&self) -> usize;
    /// The sample type.
    fn sample_type(&self) -> SampleType;
    /// Rows `y0..y0 + rows`, full width, as a `rows × width × channels` image.
    ///
    /// # Errors
    /// Whatever reading the source fails with.
    fn read_rows(&self, y0: u64, rows: u64) -> Result<HostImage>;
}

impl RowSource for HostImage {
    fn dimensions(&self) -> (u64, u64) {
        let (h, w, _) = self.shape();
        (w as u64, h as u64)
    }
    fn channels(&self) -> usize {
        self.shape().2
    }
    fn sample_type(&self) -> SampleType {
        self.dtype()
    }
    fn read_rows(&self, y0: u64, rows: u64) -> Result<HostImage> {
        let (h, w, c) = self.shape();
        let row = w * c * self.dtype().size();
        let (y0, rows) = (y0 as usize, rows as usize);
        if y0.checked_add(rows).is_none_or(|e| e > h) {
            return Err(TiffError::InvalidArgument(format!(
                "rows {y0}+{rows} of an image of {h}"
            )));
        }
        let data = self.bytes()[y0 * row..(y0 + rows) * row].to_vec();
        HostImage::from_bytes(rows, w, c, self.dtype(), data)
    }
}

/// Writes `image` as a tiled pyramidal TIFF.
///
/// ```
/// use tiledio_tiff::{Compression, HostImage, Slide, WriteOptions, write_pyramid};
/// let dir = tempfile::tempdir()?;
/// let img = HostImage::from_u16(100, 80, 1, (0..8000).map(|i| i as u16).collect())?;
/// let r = write_pyramid(&dir.path().join("a.tif"), &img, &WriteOptions::default().tile(32).compression(Compression::Zstd))?;
/// assert_eq!(r.levels, vec![(80, 100), (40, 50), (20, 25)]);
/// assert_eq!(Slide::open(dir.path().join("a.tif"))?.read_level(0)?, img);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`TiffError::InvalidArgument`] for a bad tile size or a compression that cannot hold the
/// image (JPEG of u16, ...); [`TiffError::Encode`]; [`TiffError::Io`].
pub fn write_pyramid(path: &Path, image: &HostImage, opts: &WriteOptions) -> Result<WriteReport> {
    write_pyramid_from(path, image, opts, &|_, _| {})
}

/// [`write_pyramid`] calling `progress(tiles_done, tiles_total)` as tiles are written.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tiledio_tiff::{HostImage, WriteOptions, write_pyramid_with_progress};
/// let dir = tempfile::tempdir()?;
/// let img = HostImage::from_u8(64, 64, 1, vec![7; 4096])?;
/// let done = AtomicU64::new(0);
/// write_pyramid_with_progress(&dir.path().join("a.tif"), &img, &WriteOptions::default().tile(16).levels(1),
///     &|d, _| { done.store(d, Ordering::Relaxed); })?;
/// assert_eq!(done.load(Ordering::Relaxed), 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`write_pyramid`].
pub fn write_pyramid_with_progress(
    path: &Path,
    image: &HostImage,
    opts: &WriteOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<WriteReport> {
    write_pyramid_from(path, image, opts, progress)
}

/// Checks that an image of `w × h × c` samples of `t` can be written with `opts` and read back
/// (by us, tifffile, libtiff and OpenSlide), before any work is done.
///
/// # Errors
/// [`TiffError::InvalidArgument`] saying what cannot be written.
pub fn check_writable(w: u64, h: u64, c: usize, t: SampleType, opts: &WriteOptions) -> Result<()> {
    if opts.tile == 0 || !opts.tile.is_multiple_of(16) || opts.tile > 65536 {
        return Err(TiffError::InvalidArgument(format!(
            "tile size {} is not a multiple of 16 in 16..=65536",
            opts.tile
        )));
    }
    if h == 0 || w == 0 {
        return Err(TiffError::InvalidArgument("empty image".into()));
    }
    if w > crate::page::MAX_DIM || h > crate::page::MAX_DIM {
        return Err(TiffError::InvalidArgument(format!(
            "an image of {w}x{h} pixels (at most {} each way)",
            crate::page::MAX_DIM
        )));
    }
    if c == 0 || c > crate::page::MAX_SAMPLES {
        return Err(TiffError::InvalidArgument(format!(
            "{c} samples per pixel (a readable TIFF has 1 to {})",
            crate::page::MAX_SAMPLES
        )));
    }
    let tile_bytes = (opts.tile as u64).pow(2) * (c * t.size()) as u64;
    if tile_bytes > crate::page::MAX_TILE_BYTES {
        return Err(TiffError::InvalidArgument(format!(
            "tiles of {tile_bytes} bytes (at most {}): use a smaller tile",
            crate::page::MAX_TILE_BYTES
        )));
    }
    match opts.compression {
        Compression::None | Compression::Deflate | Compression::Zstd | Compression::Lzw => Ok(()),
        Compression::Jpeg if t == SampleType::U8 && (c == 1 || c == 3) => Ok(()),
        other => Err(TiffError::InvalidArgument(format!(
            "cannot write {} tiles of {c} x {} (JPEG holds 1 or 3 samples of uint8)",
            other.name(),
            t.name()
        ))),
    }
}

/// One level of the pyramid being written: rows arrive from the source (level 0) or from
/// halving the level above, and leave as tile rows once complete.
struct LevelState {
    w: usize,
    h: usize,
    /// Rows received and not yet written as tiles (fewer than a band's worth).
    pending: Vec<u8>,
    pending_rows: usize,
    /// Rows received so far.
    received: usize,
    /// A row waiting for its pair before the next level's row can be made.
    carry: Option<Vec<u8>>,
    offsets: Vec<u64>,
    counts: Vec<u64>,
}

struct Pyramid<'a> {
    writer: FileWriter,
    opts: &'a WriteOptions,
    c: usize,
    t: SampleType,
    levels: Vec<LevelState>,
    /// Tile rows written at once (encoded in parallel).
    band_tile_rows: usize,
    pos: u64,
    done: u64,
    total: u64,
    progress: &'a (dyn Fn(u64, u64) + Sync),
}

impl Pyramid<'_> {
    fn row_bytes(&self, l: usize) -> usize {
        self.levels[l].w * self.c * self.t.size()
    }

    /// Takes `rows` full rows of level `l`: queues them for tiles, writes complete tile rows,
    /// and passes halved rows on to level `l + 1`.
    fn feed(&mut self, l: usize, data: &[u8], rows: usize) -> Result<()> {
        let rb = self.row_bytes(l);
        let tile = self.opts.tile as usize;
        {
            let st = &mut self.levels[l];
            st.pending.extend_from_slice(&data[..rows * rb]);
            st.pending_rows += rows;
            st.received += rows;
        }
        let complete = self.levels[l].received == self.levels[l].h;
        let ready = if complete {
            self.levels[l].pending_rows
        } else {
            self.levels[l].pending_rows / tile * tile
        };
        if ready >= self.band_tile_rows * tile || (complete && ready > 0) {
            self.write_rows(l, ready)?;
        }
        if l + 1 < self.levels.len() {
            let next = self.halve(l, data, rows, complete);
            let n = next.len() / self.row_bytes(l + 1).max(1);
            if n > 0 {
                self.feed(l + 1, &next, n)?;
            }
        }
        Ok(())
    }

    /// Level `l + 1` rows from these rows of level `l` and the carried one.
    fn halve(&mut self, l: usize, data: &[u8], rows: usize, complete: bool) -> Vec<u8> {
        let rb = self.row_bytes(l);
        let (w, c, t) = (self.levels[l].w, self.c, self.t);
        let mut src: Vec<&[u8]> = Vec::with_capacity(rows + 1);
        let carry = self.levels[l].carry.take();
        if let Some(cr) = carry.as_deref() {
            src.push(cr);
        }
        src.extend((0..rows).map(|r| &data[r * rb..(r + 1) * rb]));
        let pairs = src.len() / 2;
        let last_alone = src.len() % 2 == 1;
        let ob = self.row_bytes(l + 1);
        let n_out = pairs + usize::from(last_alone && complete);
        let mut out = vec![0u8; n_out * ob];
        out.par_chunks_mut(ob.max(1)).enumerate().for_each(|(i, o)| {
            let (a, b) = if i < pairs {
                (src[2 * i], src[2 * i + 1])
            } else {
                (src[2 * i], src[2 * i]) // the last row of an odd height pairs with itself
            };
            half_row(a, b, w, c, t, o);
        });
        if last_alone && !complete {
            self.levels[l].carry = src.last().map(|r| r.to_vec());
        }
        out
    }

    /// Encodes and writes the first `rows` pending rows of level `l` (whole tile rows, or
    /// the rest of the level) as tiles.
    fn write_rows(&mut self, l: usize, rows: usize) -> Result<()> {
        let tile = self.opts.tile as usize;
        let rb = self.row_bytes(l);
        let (w, c, t) = (self.levels[l].w, self.c, self.t);
        let align = self.opts.align.max(1);
        let mut pending = std::mem::take(&mut self.levels[l].pending);
        let band = &pending[..rows * rb];
        let (across, down) = (w.div_ceil(tile), rows.div_ceil(tile));
        let idx: Vec<(usize, usize)> = (0..down).flat_map(|ty| (0..across).map(move |tx| (tx, ty))).collect();
        let opts = self.opts;
        // tiles are encoded in parallel a batch at a time: a band of a few rows of a very wide
        // level makes full-size tiles whose total can be far larger than the band itself
        let per_batch = ((64usize << 20) / (tile * tile * c * t.size()).max(1)).max(rayon::current_num_threads());
        for batch in idx.chunks(per_batch) {
            let tiles: Vec<Vec<u8>> = batch
                .par_iter()
                .map(|&(tx, ty)| encode_tile(&extract(band, rows, w, c, t, tx, ty, tile), tile, c, t, opts))
                .collect::<Result<_>>()?;
            let mut buf = Vec::new();
            let start = self.pos;
            let st = &mut self.levels[l];
            for tb in &tiles {
                if opts.compression == Compression::None {
                    let p = self.pos.next_multiple_of(align);
                    buf.resize(buf.len() + (p - self.pos) as usize, 0);
                    self.pos = p;
                }
                st.offsets.push(self.pos);
                st.counts.push(tb.len() as u64);
                buf.extend_from_slice(tb);
                self.pos += tb.len() as u64;
            }
            self.writer.write_at(start, &buf)?;
            self.done += tiles.len() as u64;
            (self.progress)(self.done, self.total);
        }
        pending.drain(..rows * rb);
        let st = &mut self.levels[l];
        st.pending = pending;
        st.pending_rows -= rows;
        Ok(())
    }
}

/// Writes the rows of `src` as a tiled pyramidal TIFF in bounded memory: level 0 is read a
/// band of tile rows at a time, each reduced level is made by 2× area averaging of the level
/// above as its rows arrive (the same pixels as halving whole levels), and only about two
/// bands per level are held at once. Tiles are compressed in parallel; the IFDs and header
/// are written last and the file renamed into place when complete.
///
/// ```
/// use tiledio_tiff::{HostImage, Slide, WriteOptions, write_pyramid_from};
/// let dir = tempfile::tempdir()?;
/// let img = HostImage::from_u8(70, 50, 3, (0..70 * 50 * 3).map(|i| (i % 251) as u8).collect())?;
/// let r = write_pyramid_from(&dir.path().join("a.tif"), &img, &WriteOptions::default().tile(16), &|_, _| {})?;
/// assert_eq!(r.levels, vec![(50, 70), (25, 35), (13, 18), (7, 9)]);
/// assert_eq!(Slide::open(dir.path().join("a.tif"))?.read_level(0)?, img);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`write_pyramid`], and whatever `src` fails with.
pub fn write_pyramid_from(
    path: &Path,
    src: &dyn RowSource,
    opts: &WriteOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<WriteReport> {
    // downsampling and encoding run on the compute threads of the write's settings
    tiledio_io::Context::for_settings(&opts.settings)?.compute(|| write_pyramid_on_pool(path, src, opts, progress))
}

fn write_pyramid_on_pool(
    path: &Path,
    src: &dyn RowSource,
    opts: &WriteOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<WriteReport> {
    let (w64, h64) = src.dimensions();
    let c = src.channels();
    let t = src.sample_type();
    check_writable(w64, h64, c, t, opts)?;
    let (w, h) = (w64 as usize, h64 as usize);
    let tile = opts.tile as usize;
    let n_levels = opts.levels.unwrap_or_else(|| {
        let (mut lw, mut lh, mut n) = (w, h, 1);
        while lw.max(lh) > tile && lw.min(lh) > 1 {
            lw = lw.div_ceil(2);
            lh = lh.div_ceil(2);
            n += 1;
        }
        n
    });
    if n_levels == 0 || n_levels > 40 {
        return Err(TiffError::InvalidArgument(format!("{n_levels} levels (1 to 40)")));
    }
    let mut dims = vec![(w, h)];
    for _ in 1..n_levels {
        let (lw, lh) = *dims.last().unwrap_or(&(w, h));
        dims.push((lw.div_ceil(2), lh.div_ceil(2)));
    }
    let total: u64 = dims
        .iter()
        .map(|&(lw, lh)| (lw.div_ceil(tile) * lh.div_ceil(tile)) as u64)
        .sum();
    // about 64 MiB of level-0 rows per band (at least one tile row): enough tiles to keep
    // every core encoding, little enough to stream slides of any size
    let row0 = w * c * t.size();
    let band_tile_rows = (opts.band_bytes / (row0 * tile).max(1)).clamp(1, 64);
    // a band, the rows pending at each level (about one band in all) and the encoded tiles
    let band_rows = (band_tile_rows * tile).min(h) as u64;
    tiledio_io::check_memory(
        band_rows.saturating_mul(row0 as u64).saturating_mul(4),
        &format!("{}: the bands of rows of the pyramid being written", path.display()),
    )?;
    let mut p = Pyramid {
        writer: FileWriter::create(path)?,
        opts,
        c,
        t,
        levels: dims
            .iter()
            .map(|&(lw, lh)| LevelState {
                w: lw,
                h: lh,
                pending: Vec::new(),
                pending_rows: 0,
                received: 0,
                carry: None,
                offsets: Vec::new(),
                counts: Vec::new(),
            })
            .collect(),
        band_tile_rows,
        pos: opts.align.max(16),
        done: 0,
        total,
        progress,
    };
    let band = band_tile_rows * tile;
    let mut y = 0;
    while y < h {
        let rows = band.min(h - y);
        let img = src.read_rows(y as u64, rows as u64)?;
        if img.shape() != (rows, w, c) || img.dtype() != t {
            return Err(TiffError::InvalidArgument(format!(
                "the source gave {:?} of {} for rows {y}+{rows}, expected ({rows}, {w}, {c}) of {}",
                img.shape(),
                img.dtype().name(),
                t.name()
            )));
        }
        p.feed(0, img.bytes(), rows)?;
        y += rows;
    }
    let Pyramid {
        writer, levels, pos, ..
    } = p;
    let level_tiles: Vec<(Vec<u64>, Vec<u64>)> = levels.into_iter().map(|l| (l.offsets, l.counts)).collect();
    // IFDs after the data; the header last, once we know classic or BigTIFF
    let ifd_start = pos.next_multiple_of(8);
    let desc = opts
        .description
        .clone()
        .or_else(|| opts.subifds.then(|| ome_xml(w, h, c, t, opts.mpp)));
    let layout = |big: bool, offs: &[u64]| -> Vec<Vec<Entry>> {
        (0..n_levels)
            .map(|l| {
                let subs: Vec<u64> = if opts.subifds && l == 0 {
                    offs[1..].to_vec()
                } else {
                    Vec::new()
                };
                level_entries(
                    l,
                    dims[l],
                    c,
                    t,
                    opts,
                    &level_tiles[l],
                    big,
                    &subs,
                    if l == 0 { desc.as_deref() } else { None },
                )
            })
            .collect()
    };
    let plan = |big: bool| -> (Vec<u64>, u64) {
        let placeholder = vec![0u64; n_levels];
        let sizes: Vec<u64> = layout(big, &placeholder).iter().map(|e| ifd_size(e, big)).collect();
        let mut offs = Vec::new();
        let mut p = ifd_start;
        for s in sizes {
            offs.push(p);
            p = (p + s).next_multiple_of(8);
        }
        (offs, p)
    };
    let (offs_c, end_c) = plan(false);
    let big = match opts.bigtiff {
        BigTiff::Always => true,
        BigTiff::Auto => end_c > u32::MAX as u64,
        BigTiff::Never if end_c > u32::MAX as u64 => {
            return Err(TiffError::InvalidArgument(format!(
                "{end_c} bytes do not fit classic TIFF (BigTiff::Never)"
            )));
        }
        BigTiff::Never => false,
    };
    let (offs, end) = if big { plan(true) } else { (offs_c, end_c) };
    let entries = layout(big, &offs);
    let mut tail = Vec::with_capacity((end - ifd_start) as usize);
    for (l, e) in entries.iter().enumerate() {
        let next = if !opts.subifds && l + 1 < n_levels {
            offs[l + 1]
        } else {
            0
        };
        let bytes = encode_ifd(e, offs[l], big, next);
        tail.resize((offs[l] - ifd_start) as usize, 0);
        tail.extend_from_slice(&bytes);
    }
    tail.resize((end - ifd_start) as usize, 0);
    writer.write_at(ifd_start, &tail)?;
    let mut header = Vec::new();
    if big {
        header.extend_from_slice(b"II\x2b\x00\x08\x00\x00\x00");
        header.extend_from_slice(&offs[0].to_le_bytes());
    } else {
        header.extend_from_slice(b"II\x2a\x00");
        header.extend_from_slice(&(offs[0] as u32).to_le_bytes());
    }
    writer.write_at(0, &header)?;
    writer.finish(false)?;
    Ok(WriteReport {
        levels: dims.iter().map(|&(a, b)| (a as u64, b as u64)).collect(),
        bytes: end,
        bigtiff: big,
    })
}

/// One full tile (zero-padded at the edges), little-endian samples, from a band of `rows`
/// rows of `w × c` samples of `t` (`ty` counts tile rows within the band).
#[allow(clippy::too_many_arguments)]
fn extract(band: &[u8], rows: usize, w: usize, c: usize, t: SampleType, tx: usize, ty: usize, tile: usize) -> Vec<u8> {
    let px = c * t.size();
    let mut out = vec![0u8; tile * tile * px];
    let (x0, y0) = (tx * tile, ty * tile);
    let cw = tile.min(w - x0) * px;
    for r in 0..tile.min(rows - y0) {
        let s = ((y0 + r) * w + x0) * px;
        out[r * tile * px..r * tile * px + cw].copy_from_slice(&band[s..s + cw]);
    }
    if cfg!(target_endian = "big") && t.size() > 1 {
        crate::codec::swap_bytes(&mut out, t.size());
    }
    out
}

fn encode_tile(raw: &[u8], tile: usize, c: usize, t: SampleType, opts: &WriteOptions) -> Result<Vec<u8>> {
    let enc = |codec: &'static str| move |e: String| TiffError::Encode { codec, reason: e };
    match opts.compression {
        Compression::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).map_err(|e| enc("deflate")(e.to_string()))?;
            e.finish().map_err(|e| enc("deflate")(e.to_string()))
        }
        Compression::Zstd => zstd::bulk::compress(raw, 3).map_err(|e| enc("zstd")(e.to_string())),
        Compression::Lzw => weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .encode(raw)
            .map_err(|e| enc("lzw")(e.to_string())),
        Compression::Jpeg => {
            let mut out = Vec::new();
            let mut e = jpeg_encoder::Encoder::new(&mut out, opts.quality.clamp(1, 100));
            e.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
            let ct = if c == 1 {
                jpeg_encoder::ColorType::Luma
            } else {
                jpeg_encoder::ColorType::Rgb
            };
            e.encode(raw, tile as u16, tile as u16, ct)
                .map_err(|e| enc("jpeg")(e.to_string()))?;
            let _ = t;
            Ok(out)
        }
        _ => Ok(raw.to_vec()),
    }
}

#[allow(clippy::too_many_arguments)]
fn level_entries(
    level: usize,
    (w, h): (usize, usize),
    c: usize,
    t: SampleType,
    opts: &WriteOptions,
    (offsets, counts): &(Vec<u64>, Vec<u64>),
    big: bool,
    subifds: &[u64],
    desc: Option<&str>,
) -> Vec<Entry> {
    let bits = (t.size() * 8) as u16;
    let fmt = if t.is_float() {
        3
    } else if t.is_signed_int() {
        2
    } else {
        1
    };
    // JPEG encodes three samples as YCbCr (JFIF): say so (Photometric 6, no subsampling), or
    // libtiff, and so OpenSlide, decodes the streams as RGB-coded and gets the colours wrong
    let ycbcr = opts.compression == Compression::Jpeg && c == 3;
    let photometric = if ycbcr {
        6
    } else if c >= 3 && t == SampleType::U8 {
        2
    } else {
        1
    };
    let mut e = vec![
        Entry::long(254, if level > 0 { 1 } else { 0 }),
        Entry::long(256, w as u32),
        Entry::long(257, h as u32),
        Entry::shorts(258, &vec![bits; c]),
        Entry::shorts(259, &[opts.compression.code()]),
        Entry::shorts(262, &[photometric]),
        Entry::shorts(277, &[c as u16]),
        Entry::shorts(284, &[1]),
        Entry::ascii(305, "tiledio"),
        Entry::long(322, opts.tile),
        Entry::long(323, opts.tile),
        Entry::offsets(324, offsets, big),
        Entry::offsets(325, counts, big),
        Entry::shorts(339, &vec![fmt; c]),
    ];
    if ycbcr {
        e.push(Entry::shorts(530, &[1, 1])); // YCbCrSubsampling: none
    }
    if let Some(d) = desc {
        e.push(Entry::ascii(270, d));
    }
    if let Some(mpp) = opts.mpp.filter(|m| *m > 0.0) {
        let res = 10_000.0 / (mpp * (1u64 << level) as f64);
        e.push(Entry::rational(282, res));
        e.push(Entry::rational(283, res));
        e.push(Entry::shorts(296, &[3]));
    }
    // samples beyond the colour ones are ExtraSamples (libtiff requires the tag then)
    let colour = if photometric == 1 { 1 } else { 3 };
    if c > colour {
        let mut v = vec![0u16; c - colour];
        if c == 4 && photometric == 2 {
            v[0] = 2; // unassociated alpha
        }
        e.push(Entry::shorts(338, &v));
    }
    if !subifds.is_empty() {
        e.push(Entry::ifds(330, subifds, big));
    }
    e.sort_by_key(|x| x.tag);
    e
}

/// A minimal OME-XML description for one image of `w × h × c` samples.
fn ome_xml(w: usize, h: usize, c: usize, t: SampleType, mpp: Option<f64>) -> String {
    let phys = mpp
        .map(|m| format!(r#" PhysicalSizeX="{m}" PhysicalSizeY="{m}""#))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0" Name="tiledio"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="{}" SizeX="{w}" SizeY="{h}" SizeC="{c}" SizeZ="1" SizeT="1"{phys}><Channel ID="Channel:0:0" SamplesPerPixel="{c}"/><TiffData IFD="0" PlaneCount="1"/></Pixels></Image></OME>"#,
        t.name()
    )
}
