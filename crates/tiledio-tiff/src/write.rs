//! The pyramidal tiled TIFF writer: levels by 2× area averaging, tiles compressed in
//! parallel, classic TIFF or BigTIFF (automatic past 4 GiB), reduced levels as chained pages
//! (NewSubfileType=1) or as SubIFDs (OME-TIFF), written to a temporary name and renamed.

use crate::downsample::half;
use crate::error::{Result, TiffError};
use crate::image::{HostImage, SampleType};
use crate::page::Compression;
use crate::tags::{Entry, encode_ifd, ifd_size};
use rayon::prelude::*;
use std::borrow::Cow;
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
        }
    }
}

impl WriteOptions {
    /// Sets the tile size.
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::WriteOptions::default().tile(128).tile, 128);
    /// ```
    pub fn tile(mut self, tile: u32) -> Self {
        self.tile = tile;
        self
    }
    /// Sets the compression.
    ///
    /// ```
    /// use tiledio_tiff::{Compression, WriteOptions};
    /// assert_eq!(WriteOptions::default().compression(Compression::Deflate).compression, Compression::Deflate);
    /// ```
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    /// Sets the JPEG quality.
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::WriteOptions::default().quality(75).quality, 75);
    /// ```
    pub fn quality(mut self, q: u8) -> Self {
        self.quality = q;
        self
    }
    /// Sets the number of levels.
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::WriteOptions::default().levels(2).levels, Some(2));
    /// ```
    pub fn levels(mut self, n: usize) -> Self {
        self.levels = Some(n);
        self
    }
    /// Sets the BigTIFF choice.
    ///
    /// ```
    /// use tiledio_tiff::{BigTiff, WriteOptions};
    /// assert_eq!(WriteOptions::default().bigtiff(BigTiff::Always).bigtiff, BigTiff::Always);
    /// ```
    pub fn bigtiff(mut self, b: BigTiff) -> Self {
        self.bigtiff = b;
        self
    }
    /// Writes reduced levels as SubIFDs (OME-TIFF).
    ///
    /// ```
    /// assert!(tiledio_tiff::WriteOptions::default().subifds(true).subifds);
    /// ```
    pub fn subifds(mut self, yes: bool) -> Self {
        self.subifds = yes;
        self
    }
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
    write_pyramid_with_progress(path, image, opts, &|_, _| {})
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
    let (h, w, c) = image.shape();
    let t = image.dtype();
    if opts.tile == 0 || !opts.tile.is_multiple_of(16) || opts.tile > 65536 {
        return Err(TiffError::InvalidArgument(format!(
            "tile size {} is not a multiple of 16 in 16..=65536",
            opts.tile
        )));
    }
    if h == 0 || w == 0 {
        return Err(TiffError::InvalidArgument("empty image".into()));
    }
    match opts.compression {
        Compression::None | Compression::Deflate | Compression::Zstd | Compression::Lzw => {}
        Compression::Jpeg if t == SampleType::U8 && (c == 1 || c == 3) => {}
        other => {
            return Err(TiffError::InvalidArgument(format!(
                "cannot write {} tiles of {c} x {}",
                other.name(),
                t.name()
            )));
        }
    }
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
        return Err(TiffError::InvalidArgument(format!("{n_levels} levels")));
    }
    let mut dims = vec![(w, h)];
    for _ in 1..n_levels {
        let (lw, lh) = *dims.last().unwrap_or(&(w, h));
        dims.push((lw.div_ceil(2), lh.div_ceil(2)));
    }
    let total_tiles: u64 = dims
        .iter()
        .map(|&(lw, lh)| (lw.div_ceil(tile) * lh.div_ceil(tile)) as u64)
        .sum();
    let writer = FileWriter::create(path)?;
    let align = opts.align.max(1);
    let mut pos = align.max(16);
    let mut done = 0u64;
    let mut level_tiles: Vec<(Vec<u64>, Vec<u64>)> = Vec::new();
    let mut current: Cow<'_, HostImage> = Cow::Borrowed(image);
    for l in 0..n_levels {
        if l > 0 {
            current = Cow::Owned(half(&current));
        }
        let img: &HostImage = &current;
        let (lh, lw, _) = img.shape();
        let (across, down) = (lw.div_ceil(tile), lh.div_ceil(tile));
        let mut offsets = Vec::with_capacity(across * down);
        let mut counts = Vec::with_capacity(across * down);
        pos = pos.next_multiple_of(align);
        // a band of tile rows at a time: compress in parallel, write as one piece
        let rows_per_band = (256 / across.max(1)).max(1);
        for band in (0..down).step_by(rows_per_band) {
            let band_end = (band + rows_per_band).min(down);
            let idx: Vec<(usize, usize)> = (band..band_end)
                .flat_map(|ty| (0..across).map(move |tx| (tx, ty)))
                .collect();
            let tiles: Vec<Vec<u8>> = idx
                .par_iter()
                .map(|&(tx, ty)| encode_tile(&extract(img, tx, ty, tile), tile, img.shape().2, t, opts))
                .collect::<Result<_>>()?;
            let mut buf = Vec::new();
            let start = pos;
            for tb in &tiles {
                if opts.compression == Compression::None {
                    let p = pos.next_multiple_of(align);
                    buf.resize(buf.len() + (p - pos) as usize, 0);
                    pos = p;
                }
                offsets.push(pos);
                counts.push(tb.len() as u64);
                buf.extend_from_slice(tb);
                pos += tb.len() as u64;
            }
            writer.write_at(start, &buf)?;
            done += tiles.len() as u64;
            progress(done, total_tiles);
        }
        level_tiles.push((offsets, counts));
    }
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

/// One full tile (zero-padded at the edges), little-endian samples.
fn extract(img: &HostImage, tx: usize, ty: usize, tile: usize) -> Vec<u8> {
    let (h, w, c) = img.shape();
    let px = c * img.dtype().size();
    let mut out = vec![0u8; tile * tile * px];
    let (x0, y0) = (tx * tile, ty * tile);
    let cw = tile.min(w - x0) * px;
    let src = img.bytes();
    for r in 0..tile.min(h - y0) {
        let s = ((y0 + r) * w + x0) * px;
        out[r * tile * px..r * tile * px + cw].copy_from_slice(&src[s..s + cw]);
    }
    if cfg!(target_endian = "big") && img.dtype().size() > 1 {
        crate::codec::swap_bytes(&mut out, img.dtype().size());
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
    let fmt = if t == SampleType::F32 { 3 } else { 1 };
    let photometric = if c >= 3 && t == SampleType::U8 { 2 } else { 1 };
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
    if let Some(d) = desc {
        e.push(Entry::ascii(270, d));
    }
    if let Some(mpp) = opts.mpp.filter(|m| *m > 0.0) {
        let res = 10_000.0 / (mpp * (1u64 << level) as f64);
        e.push(Entry::rational(282, res));
        e.push(Entry::rational(283, res));
        e.push(Entry::shorts(296, &[3]));
    }
    if c == 2 || c == 4 && photometric == 2 || c > 4 && photometric == 2 {
        let extra = if photometric == 2 { c - 3 } else { c - 1 };
        let mut v = vec![0u16; extra];
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
