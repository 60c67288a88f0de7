//! Conversions between tiled TIFF pyramids and (OME-)Zarr, in both directions and Zarr to
//! Zarr, in bounded memory: sources are read a band of rows at a time by each level's own
//! coordinates, and outputs are written under temporary names and moved into place when
//! complete ([`tiledio_io::FileWriter`], [`tiledio_io::OutputDir`]).
//!
//! - to TIFF: level 0 of the source, streamed into [`tiff::write_pyramid_from`], which makes
//!   the reduced levels by 2× area averaging (`tile`, `compression`, `levels` honoured);
//! - to Zarr: the source's own levels (a slide's pyramid, or an OME-Zarr group's), written as
//!   OME-Zarr 0.5 with axes `c, y, x` (`chunk`, `shard`, `codec`, `levels` honoured).
//!
//! The output format follows the output's extension (`.tif`/`.tiff`, `.zarr`); the input's is
//! found from the file itself (a folder with Zarr metadata, else TIFF). Every element type
//! both formats hold (u8–u64, i8–i64, f32, f64; any number of samples a TIFF can hold)
//! converts both ways, pixel-exact.
//!
//! ```
//! use tiledio::convert::{ConvertOptions, convert};
//! use tiledio::tiff::{HostImage, WriteOptions, write_pyramid};
//! let dir = tempfile::tempdir()?;
//! let img = HostImage::from_u16(70, 90, 1, (0..6300).map(|i| i as u16).collect())?;
//! write_pyramid(&dir.path().join("in.tif"), &img, &WriteOptions::default().tile(32))?;
//! let opts = ConvertOptions { chunk: Some(32), ..Default::default() };
//! convert(&dir.path().join("in.tif"), &dir.path().join("out.zarr"), &opts, &|_, _| {})?;
//! convert(&dir.path().join("out.zarr"), &dir.path().join("back.tif"), &Default::default(), &|_, _| {})?;
//! let back = tiledio::tiff::Slide::open(dir.path().join("back.tif"))?;
//! assert_eq!(back.read_level(0)?, img);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::io::{Border, ElementType, OutputKind, Region, check_output};
use crate::tiff::{self, HostImage, RowSource, Slide};
use crate::zarr::ome::{self, OmeVersion, PyramidOptions, PyramidSource};
use crate::zarr::{self, DataType, ZarrArray};
use std::path::{Path, PathBuf};

/// Why a conversion failed: the format layers' errors, with their sources kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// An option or path that cannot be used (checked before any work).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a TIFF.
    #[error(transparent)]
    Tiff(#[from] tiff::TiffError),
    /// Reading or writing Zarr.
    #[error(transparent)]
    Zarr(#[from] zarr::ZarrError),
    /// The I/O layer (an output that cannot be written, the memory budget).
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
}

/// Shorthand for results of this module.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

/// A file format tiledio converts between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A tiled (pyramidal) TIFF / BigTIFF file.
    Tiff,
    /// A Zarr array or OME-Zarr group (a folder).
    Zarr,
}

impl Format {
    /// The format an output path asks for, by its extension (`.tif`, `.tiff`, `.zarr`).
    ///
    /// ```
    /// use tiledio::convert::Format;
    /// assert_eq!(Format::of_output("a/b.ome.tif".as_ref()).unwrap(), Format::Tiff);
    /// assert_eq!(Format::of_output("b.zarr".as_ref()).unwrap(), Format::Zarr);
    /// assert!(Format::of_output("b.png".as_ref()).is_err());
    /// ```
    ///
    /// # Errors
    /// [`ConvertError::Usage`] for any other extension.
    pub fn of_output(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "tif" | "tiff" => Ok(Format::Tiff),
            "zarr" => Ok(Format::Zarr),
            other => Err(ConvertError::Usage(format!(
                "{}: unknown output format {:?}; use .tif/.tiff (tiled TIFF pyramid) or .zarr (OME-Zarr)",
                path.display(),
                other
            ))),
        }
    }

    /// The format of an existing input: a folder with Zarr metadata (or named `.zarr`) is Zarr,
    /// anything else is read as TIFF.
    pub fn of_input(path: &Path) -> Format {
        let zarr = path.is_dir()
            && (path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zarr"))
                || ["zarr.json", ".zarray", ".zgroup"]
                    .iter()
                    .any(|m| path.join(m).is_file()));
        if zarr { Format::Zarr } else { Format::Tiff }
    }
}

/// What to write. `None` leaves the default; an option that does not apply to the output's
/// format is an error, not silently ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvertOptions {
    /// Levels to write (TIFF: made by halving, default down to one tile; Zarr: the source's
    /// first levels, default all).
    pub levels: Option<usize>,
    /// TIFF tile size (multiple of 16; default 512).
    pub tile: Option<u32>,
    /// TIFF compression (default none: 4 KiB-aligned tiles for the GPU-direct path).
    pub compression: Option<tiff::Compression>,
    /// JPEG quality for TIFF JPEG tiles (default 90).
    pub quality: Option<u8>,
    /// Zarr chunk edge in pixels (default 512).
    pub chunk: Option<u64>,
    /// Zarr shard edge in pixels (a multiple of the chunk; v3 sharding codec).
    pub shard: Option<u64>,
    /// Zarr chunk codec (default zstd).
    pub codec: Option<zarr::Compression>,
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConvertReport {
    /// The output's format.
    pub format: Format,
    /// `(width, height)` of each level written.
    pub levels: Vec<(u64, u64)>,
    /// Samples per pixel.
    pub channels: usize,
    /// The element type.
    pub element_type: ElementType,
}

/// Converts `input` to `output` (see the [module](self) docs). `progress(done, total)` is
/// called as work completes (tiles for TIFF outputs, bytes for Zarr outputs). Everything that
/// can be checked is checked before work starts: the output's format and options, that the
/// output is not the input, not a special file, not an existing directory (TIFF) or a
/// non-empty one (Zarr).
///
/// # Errors
/// [`ConvertError::Usage`] for options that do not apply or cannot be written; the format
/// layers' errors for unreadable inputs and failed writes. A failed or interrupted conversion
/// leaves nothing at `output`.
pub fn convert(
    input: &Path,
    output: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ConvertReport> {
    let to = Format::of_output(output)?;
    let usage = |s: String| ConvertError::Usage(s);
    let check_unused = |name: &str, set: bool, applies: &str| {
        if set {
            Err(usage(format!(
                "{name} applies to {applies} outputs, not to {}",
                output.display()
            )))
        } else {
            Ok(())
        }
    };
    if opts.levels == Some(0) {
        return Err(usage("--levels must be at least 1".into()));
    }
    match to {
        Format::Tiff => {
            check_unused("--chunk", opts.chunk.is_some(), "Zarr")?;
            check_unused("--shard", opts.shard.is_some(), "Zarr")?;
            check_unused("--codec", opts.codec.is_some(), "Zarr")?;
            check_output(output, &[input], OutputKind::File)?;
        }
        Format::Zarr => {
            check_unused("--tile", opts.tile.is_some(), "TIFF")?;
            check_unused("--compression", opts.compression.is_some(), "TIFF")?;
            check_unused("--quality", opts.quality.is_some(), "TIFF")?;
            let chunk = opts.chunk.unwrap_or(512);
            if chunk == 0 || opts.shard.is_some_and(|s| s == 0 || s % chunk != 0) {
                return Err(usage(format!(
                    "--shard ({}) must be a positive multiple of --chunk ({chunk})",
                    opts.shard.unwrap_or(0)
                )));
            }
            check_output(output, &[input], OutputKind::Directory)?;
        }
    }
    let source: Box<dyn Pyramid> = match Format::of_input(input) {
        Format::Tiff => Box::new(SlidePyramid(Slide::open(input)?)),
        Format::Zarr => Box::new(ZarrPyramid::open(input)?),
    };
    match to {
        Format::Tiff => to_tiff(source.as_ref(), output, opts, progress),
        Format::Zarr => to_zarr(source.as_ref(), output, opts, progress),
    }
}

/// A pyramid to convert from: levels of interleaved `height × width × channels` elements.
trait Pyramid: Sync {
    fn level_count(&self) -> usize;
    /// `(width, height)`.
    fn dims(&self, level: usize) -> (u64, u64);
    fn channels(&self) -> usize;
    fn element_type(&self) -> ElementType;
    /// Rows of a level by its own coordinates, full width.
    fn rows(&self, level: usize, y0: u64, rows: u64) -> Result<HostImage>;
    fn mpp(&self) -> Option<f64>;
}

/// Level 0 of a [`Pyramid`] as the TIFF writer's row source.
struct Level0<'a>(&'a dyn Pyramid);

impl RowSource for Level0<'_> {
    fn dimensions(&self) -> (u64, u64) {
        self.0.dims(0)
    }
    fn channels(&self) -> usize {
        self.0.channels()
    }
    fn sample_type(&self) -> ElementType {
        self.0.element_type()
    }
    fn read_rows(&self, y0: u64, rows: u64) -> tiff::Result<HostImage> {
        self.0.rows(0, y0, rows).map_err(|e| match e {
            ConvertError::Tiff(t) => t,
            other => tiff::TiffError::Source(Box::new(other)),
        })
    }
}

fn to_tiff(
    src: &dyn Pyramid,
    output: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ConvertReport> {
    let mut w = tiff::WriteOptions::default()
        .tile(opts.tile.unwrap_or(512))
        .compression(opts.compression.unwrap_or(tiff::Compression::None))
        .quality(opts.quality.unwrap_or(90))
        .bigtiff(tiff::BigTiff::Auto)
        .settings(tiledio_io::Settings::from_env()?);
    if let Some(n) = opts.levels {
        w = w.levels(n);
    }
    if let Some(m) = src.mpp() {
        w = w.mpp(m);
    }
    let r = tiff::write_pyramid_from(output, &Level0(src), &w, progress)?;
    Ok(ConvertReport {
        format: Format::Tiff,
        levels: r.levels,
        channels: src.channels(),
        element_type: src.element_type(),
    })
}

/// A [`Pyramid`]'s first `levels` levels as the OME-Zarr writer's source.
struct ZarrSource<'a> {
    src: &'a dyn Pyramid,
    levels: usize,
}

impl PyramidSource for ZarrSource<'_> {
    fn data_type(&self) -> DataType {
        self.src.element_type()
    }
    fn level_count(&self) -> usize {
        self.levels
    }
    fn level_dimensions(&self, level: usize) -> (u64, u64) {
        self.src.dims(level)
    }
    fn channels(&self) -> u64 {
        self.src.channels() as u64
    }
    fn read_band(&self, level: usize, y0: u64, rows: u64) -> std::result::Result<Vec<u8>, String> {
        self.src
            .rows(level, y0, rows)
            .map(HostImage::into_bytes)
            .map_err(|e| e.to_string())
    }
}

fn to_zarr(
    src: &dyn Pyramid,
    output: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ConvertReport> {
    let n = src.level_count();
    let levels = opts.levels.unwrap_or(n);
    if levels > n {
        return Err(ConvertError::Usage(format!(
            "--levels {levels}: the input has {n} level(s); Zarr outputs keep the input's levels"
        )));
    }
    let p = PyramidOptions {
        chunk: opts.chunk.unwrap_or(512),
        shard: opts.shard,
        compression: opts.codec.unwrap_or(zarr::Compression::Zstd { level: 3 }),
        version: OmeVersion::V05,
        mpp: src.mpp(),
        write: zarr::WriteOptions::from_env()?,
    };
    ome::write_pyramid(&ZarrSource { src, levels }, output, &p, &mut |d, t| progress(d, t))?;
    Ok(ConvertReport {
        format: Format::Zarr,
        levels: (0..levels).map(|l| src.dims(l)).collect(),
        channels: src.channels(),
        element_type: src.element_type(),
    })
}

struct SlidePyramid(Slide);

impl Pyramid for SlidePyramid {
    fn level_count(&self) -> usize {
        self.0.level_count()
    }
    fn dims(&self, level: usize) -> (u64, u64) {
        self.0.level_dimensions()[level]
    }
    fn channels(&self) -> usize {
        self.0.channels()
    }
    fn element_type(&self) -> ElementType {
        self.0.sample_type()
    }
    fn rows(&self, level: usize, y0: u64, rows: u64) -> Result<HostImage> {
        Ok(self.0.level_rows(level)?.read_rows(y0, rows)?)
    }
    fn mpp(&self) -> Option<f64> {
        self.0.mpp().map(|(x, _)| x)
    }
}

/// An OME-Zarr group (axes `c, y, x` or `y, x`) or a plain array (`y, x` or `y, x, c`).
struct ZarrPyramid {
    path: PathBuf,
    arrays: Vec<ZarrArray>,
    channel_first: bool,
    element_type: ElementType,
    mpp: Option<f64>,
}

impl ZarrPyramid {
    fn open(path: &Path) -> Result<ZarrPyramid> {
        let (arrays, channel_first, mpp) = match ome::read_multiscales(path) {
            Ok(m) => {
                let cf = m.axes.first().is_some_and(|a| a.kind == "channel");
                let arrays = m
                    .levels
                    .iter()
                    .map(|l| ZarrArray::open(path.join(&l.path)))
                    .collect::<zarr::Result<Vec<_>>>()?;
                let unit_um = m.axes.last().is_some_and(|a| a.unit.as_deref() == Some("micrometer"));
                let mpp = m
                    .levels
                    .first()
                    .and_then(|l| l.scale.last().copied())
                    .filter(|_| unit_um);
                (arrays, cf, mpp)
            }
            // not an OME group: a plain array (its own error if it is not one either)
            Err(_) => (vec![ZarrArray::open(path)?], false, None),
        };
        let Some(first) = arrays.first() else {
            return Err(ConvertError::Usage(format!(
                "{}: an image without levels",
                path.display()
            )));
        };
        let dt = first.data_type().ok_or_else(|| {
            ConvertError::Usage(format!(
                "{}: its element type cannot be written to TIFF (u8-u64, i8-i64, f32, f64 can)",
                path.display()
            ))
        })?;
        let z = ZarrPyramid {
            path: path.to_path_buf(),
            channel_first,
            element_type: dt,
            mpp,
            arrays,
        };
        for (l, a) in z.arrays.iter().enumerate() {
            if a.data_type() != Some(dt) {
                return Err(ConvertError::Usage(format!(
                    "{}: level {l} has another element type than level 0",
                    a.path().display()
                )));
            }
            let ok = match (a.shape().len(), channel_first) {
                (2, _) => true,
                (3, _) => (1..=64).contains(&a.shape()[if channel_first { 0 } else { 2 }]),
                _ => false,
            };
            if !ok || a.shape().contains(&0) {
                return Err(ConvertError::Usage(format!(
                    "{}: shape {:?} is not an image (y, x), (y, x, c) or OME (c, y, x) with 1 to 64 channels",
                    a.path().display(),
                    a.shape()
                )));
            }
            if z.channels_of(a) != z.channels_of(&z.arrays[0]) {
                return Err(ConvertError::Usage(format!(
                    "{}: level {l} has another number of channels than level 0",
                    a.path().display()
                )));
            }
        }
        Ok(z)
    }

    fn channels_of(&self, a: &ZarrArray) -> usize {
        match (a.shape().len(), self.channel_first) {
            (3, true) => a.shape()[0] as usize,
            (3, false) => a.shape()[2] as usize,
            _ => 1,
        }
    }
}

impl Pyramid for ZarrPyramid {
    fn level_count(&self) -> usize {
        self.arrays.len()
    }
    fn dims(&self, level: usize) -> (u64, u64) {
        let s = self.arrays[level].shape();
        match (s.len(), self.channel_first) {
            (3, true) => (s[2], s[1]),
            _ => (s[1], s[0]),
        }
    }
    fn channels(&self) -> usize {
        self.channels_of(&self.arrays[0])
    }
    fn element_type(&self) -> ElementType {
        self.element_type
    }
    fn rows(&self, level: usize, y0: u64, rows: u64) -> Result<HostImage> {
        let a = &self.arrays[level];
        let (w, _) = self.dims(level);
        let c = self.channels();
        let es = self.element_type.size();
        let len = (rows as usize)
            .checked_mul(w as usize)
            .and_then(|v| v.checked_mul(c * es))
            .ok_or_else(|| ConvertError::Usage(format!("{}: band size overflows", self.path.display())))?;
        let mut buf = crate::io::try_alloc_zeroed(len, "a band of the Zarr input")?;
        let data = match (a.shape().len(), self.channel_first) {
            (3, true) => {
                a.read_region(&Region::at(&[0, y0, 0], &[c as u64, rows, w]), Border::Reject, &mut buf)?;
                chw_to_hwc(&buf, rows as usize * w as usize, c, es)?
            }
            (3, false) => {
                a.read_region(&Region::at(&[y0, 0, 0], &[rows, w, c as u64]), Border::Reject, &mut buf)?;
                buf
            }
            _ => {
                a.read_region(&Region::at(&[y0, 0], &[rows, w]), Border::Reject, &mut buf)?;
                buf
            }
        };
        Ok(HostImage::from_bytes(
            rows as usize,
            w as usize,
            c,
            self.element_type,
            data,
        )?)
    }
    fn mpp(&self) -> Option<f64> {
        self.mpp
    }
}

/// Planar `c × n` elements of `es` bytes to interleaved `n × c` ([`crate::kernels::chw_to_hwc`]).
fn chw_to_hwc(chw: &[u8], n: usize, c: usize, es: usize) -> Result<Vec<u8>> {
    let mut out = crate::io::try_alloc_zeroed(chw.len(), "a band of the Zarr input")?;
    crate::kernels::chw_to_hwc(chw, &mut out, n, c, es).map_err(|e| ConvertError::Usage(e.to_string()))?;
    Ok(out)
}
