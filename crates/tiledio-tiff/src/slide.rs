//! The slide: levels (main IFD chain or SubIFDs), properties, associated images, reads.

use crate::error::{Result, TiffError};
use crate::ifd::{Ifd, Reader, read_header};
use crate::image::{HostImage, SampleType};
use crate::page::{Compression, Page};
use crate::props;
use crate::region::{read_window, read_window_into};
use std::collections::BTreeMap;
use std::path::Path;
use tiledio_io::{Border, FileHandle, Region, Settings};

/// One resolution level of a slide.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LevelInfo {
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Tile width (the image width for strips).
    pub tile_width: u64,
    /// Tile height (rows per strip for strips).
    pub tile_height: u64,
    /// Whether the level is tiled (else stored in strips).
    pub tiled: bool,
    /// Level-0 size over this level's size (the mean of both axes, as OpenSlide computes it).
    pub downsample: f64,
    /// How the tiles are compressed.
    pub compression: Compression,
    /// The page (IFD index; SubIFDs numbered after the main chain).
    pub page: usize,
}

/// Options of a read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The byte every sample outside the image is filled with (default 0).
    pub background: u8,
}

impl ReadOptions {
    /// Options with the given background byte.
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::ReadOptions::with_background(255).background, 255);
    /// ```
    pub fn with_background(background: u8) -> ReadOptions {
        ReadOptions { background }
    }
}

/// A page and a window of it in its own pixels: the origin `(x, y)` (which may be outside the
/// page) and the size `(w, h)`.
pub(crate) type PageWindow<'a> = (&'a Page, (i64, i64), (u64, u64));

/// Declares the two OpenSlide-style region readers of one kind of memory (host, or GPU in
/// `gpu.rs`), which differ only in how the window is read: `$plain(location, level, size)`
/// reads with the default [`ReadOptions`]; `$with(location, level, size, opts)` finds the
/// level's window ([`Slide::window`]) and evaluates `$read` with `$slide` (the slide), `$page`,
/// `$at` (the window's `(x, y)` in the page's own pixels), `$size` and `$background` bound.
/// Each reader's doc comment comes before its name.
macro_rules! region_readers {
    (
        $(#[$plain_doc:meta])*
        fn $plain:ident;
        $(#[$with_doc:meta])*
        fn $with:ident -> $image:ty = |$slide:ident, $page:ident, $at:pat, $size:ident, $background:ident| $read:expr;
    ) => {
        impl Slide {
            $(#[$plain_doc])*
            pub fn $plain(&self, location: (i64, i64), level: usize, size: (u64, u64)) -> Result<$image> {
                self.$with(location, level, size, &ReadOptions::default())
            }

            $(#[$with_doc])*
            pub fn $with(
                &self,
                location: (i64, i64),
                level: usize,
                size: (u64, u64),
                opts: &ReadOptions,
            ) -> Result<$image> {
                let ($page, x, y) = self.window(location, level, size)?;
                let ($slide, $at, $size, $background) = (self, (x, y), size, opts.background);
                $read
            }
        }
    };
}
pub(crate) use region_readers;

region_readers! {
    /// Reads a region into host memory, OpenSlide style: `location` is the top-left corner in
    /// level-0 pixels, `size` is `(width, height)` in pixels of `level`. Parts outside the
    /// image are filled with 0. Returns `height × width × channels` samples.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let img = s.read_region((1000, 2000), 1, (512, 512))?;
    /// assert_eq!(img.shape().0, 512);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] for a level that does not exist or an oversized region;
    /// [`TiffError::BadTile`], [`TiffError::Decode`], [`TiffError::Io`].
    fn read_region;

    /// [`Slide::read_region`] with options (background value).
    ///
    /// ```no_run
    /// use tiledio_tiff::{ReadOptions, Slide};
    /// let s = Slide::open("slide.svs")?;
    /// let img = s.read_region_with((-10, -10), 0, (64, 64), &ReadOptions::with_background(255))?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region`].
    fn read_region_with -> HostImage = |slide, page, (x, y), size, background| {
        let data = read_window(&slide.fh, page, x, y, size.0, size.1, background)?;
        HostImage::from_bytes(size.1 as usize, size.0 as usize, page.spp, page.dtype, data)
    };
}

/// A whole-slide image (tiled TIFF, BigTIFF, SVS-like, OME-TIFF) with OpenSlide-style access.
///
/// ```
/// use tiledio_tiff::{HostImage, Slide, WriteOptions, write_pyramid};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("s.tif");
/// let img = HostImage::from_u8(300, 200, 3, (0..300 * 200 * 3).map(|i| i as u8).collect())?;
/// write_pyramid(&path, &img, &WriteOptions::default().tile(64))?;
/// let slide = Slide::open(&path)?;
/// assert_eq!(slide.level_dimensions()[0], (200, 300));
/// let region = slide.read_region((190, 0), 0, (20, 10))?; // 10 columns past the right edge
/// assert_eq!(region.shape(), (10, 20, 3));
/// assert_eq!(&region.bytes()[..3], &img.bytes()[190 * 3..190 * 3 + 3]);
/// assert_eq!(region.bytes()[10 * 3], 0); // background
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Slide {
    fh: FileHandle,
    levels: Vec<Page>,
    info: Vec<LevelInfo>,
    associated: BTreeMap<String, Page>,
    properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for Slide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slide")
            .field("path", &self.fh.path())
            .field("levels", &self.info)
            .field("associated", &self.associated.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn is_tiled(ifd: &Ifd) -> bool {
    ifd.tags.contains_key(&322) || ifd.tags.contains_key(&324)
}

fn dims(ifd: &Ifd) -> (u64, u64) {
    (ifd.uint(256).unwrap_or(0), ifd.uint(257).unwrap_or(0))
}

/// The associated-image name a description gives, as OpenSlide's SVS driver reads it.
fn assoc_name(desc: &str) -> Option<&'static str> {
    let second = desc.lines().nth(1).unwrap_or(desc).trim_start();
    ["label", "macro", "thumbnail"]
        .into_iter()
        .find(|n| second.starts_with(n))
}

impl Slide {
    /// Opens a slide with the I/O settings from the environment ([`Settings::from_env`]).
    ///
    /// ```
    /// let err = tiledio_tiff::Slide::open("/nonexistent.tif").unwrap_err();
    /// assert!(err.to_string().contains("nonexistent"));
    /// ```
    ///
    /// # Errors
    /// [`TiffError::Io`], [`TiffError::NotTiff`], [`TiffError::Malformed`],
    /// [`TiffError::TileOutOfFile`], [`TiffError::Unsupported`] (level pages only).
    pub fn open(path: impl AsRef<Path>) -> Result<Slide> {
        let settings = Settings::from_env()?;
        Self::open_with(path, &settings)
    }

    /// Opens a slide with the given I/O settings.
    ///
    /// ```
    /// let s = tiledio_io::Settings::default();
    /// assert!(tiledio_tiff::Slide::open_with("/nonexistent.tif", &s).is_err());
    /// ```
    ///
    /// # Errors
    /// As [`Slide::open`].
    pub fn open_with(path: impl AsRef<Path>, settings: &Settings) -> Result<Slide> {
        let fh = FileHandle::open_with(path.as_ref(), settings)?;
        let header = read_header(&fh)?;
        let ifds = Reader { fh: &fh, header }.read_all()?;
        let be = header.big_endian;
        let first = &ifds[0].0;
        let desc0 = first.ascii(270);
        let aperio = props::is_aperio(desc0.as_deref());
        let ome = desc0.as_deref().is_some_and(|d| d.contains("<OME"));
        // levels: page 0 plus its SubIFDs (OME-TIFF), else the tiled main-chain pages
        let subs: Vec<usize> = (0..ifds.len()).filter(|&i| ifds[i].1 == Some(0)).collect();
        let mut level_pages: Vec<usize> = if !subs.is_empty() {
            std::iter::once(0).chain(subs).collect()
        } else {
            let main: Vec<usize> = (0..ifds.len()).filter(|&i| ifds[i].1.is_none()).collect();
            let tiled: Vec<usize> = main
                .iter()
                .copied()
                .filter(|&i| is_tiled(&ifds[i].0))
                .filter(|&i| i == 0 || ifds[i].0.ascii(270).as_deref().and_then(assoc_name).is_none())
                .collect();
            if tiled.is_empty() { vec![0] } else { tiled }
        };
        level_pages.sort_by_key(|&i| std::cmp::Reverse(dims(&ifds[i].0).0));
        // keep strictly shrinking pages (drops same-size pages such as extra channels)
        let mut kept: Vec<usize> = Vec::new();
        for i in level_pages {
            if kept.last().is_none_or(|&l| dims(&ifds[i].0).0 < dims(&ifds[l].0).0) {
                kept.push(i);
            }
        }
        let mut levels = Vec::with_capacity(kept.len());
        for &i in &kept {
            let page = Page::from_ifd(&fh, be, i, &ifds[i].0)?;
            if let Some(l0) = levels.first() {
                let l0: &Page = l0;
                if page.spp != l0.spp || page.dtype != l0.dtype {
                    continue;
                }
            }
            levels.push(page);
        }
        let (w0, h0) = (levels[0].width as f64, levels[0].height as f64);
        let info: Vec<LevelInfo> = levels
            .iter()
            .map(|p| LevelInfo {
                width: p.width,
                height: p.height,
                tile_width: p.tile_w,
                tile_height: p.tile_h,
                tiled: p.tiled,
                downsample: (w0 / p.width as f64 + h0 / p.height as f64) / 2.0,
                compression: p.compression,
                page: p.index,
            })
            .collect();
        // associated images
        let level_set: Vec<usize> = info.iter().map(|l| l.page).collect();
        let mut associated = BTreeMap::new();
        for (i, (ifd, parent)) in ifds.iter().enumerate() {
            if parent.is_some() || level_set.contains(&i) || i == 0 {
                continue;
            }
            let name = match ifd.ascii(270).as_deref().and_then(assoc_name) {
                Some(n) if aperio || ifd.uint(254).unwrap_or(0) & 1 == 1 => Some(n),
                _ if aperio && i == 1 && !is_tiled(ifd) => Some("thumbnail"),
                _ => None,
            };
            if let Some(n) = name
                && !associated.contains_key(n)
                && let Ok(p) = Page::from_ifd(&fh, be, i, ifd)
            {
                associated.insert(n.to_string(), p);
            }
        }
        // properties
        let mut p = BTreeMap::new();
        props::tiff_props(first, &mut p);
        if aperio {
            p.insert("openslide.vendor".into(), "aperio".into());
            props::aperio_props(desc0.as_deref().unwrap_or(""), &mut p);
        } else {
            p.insert("openslide.vendor".into(), "generic-tiff".into());
            if ome {
                props::ome_props(desc0.as_deref().unwrap_or(""), &mut p);
            } else {
                props::mpp_from_resolution(first, &mut p);
            }
        }
        if let Some(d) = &desc0 {
            p.insert("openslide.comment".into(), d.clone());
        }
        p.insert("openslide.level-count".into(), info.len().to_string());
        for (k, l) in info.iter().enumerate() {
            p.insert(format!("openslide.level[{k}].width"), l.width.to_string());
            p.insert(format!("openslide.level[{k}].height"), l.height.to_string());
            p.insert(format!("openslide.level[{k}].downsample"), props::fmt_f64(l.downsample));
            p.insert(format!("openslide.level[{k}].tile-width"), l.tile_width.to_string());
            p.insert(format!("openslide.level[{k}].tile-height"), l.tile_height.to_string());
        }
        Ok(Slide {
            fh,
            levels,
            info,
            associated,
            properties: p,
        })
    }

    /// The file.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// println!("{}", s.path().display());
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn path(&self) -> &Path {
        self.fh.path()
    }

    /// The I/O handle (to ask which backend GPU reads use and why).
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// println!("{} bytes", s.file().len());
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn file(&self) -> &FileHandle {
        &self.fh
    }

    /// Number of levels.
    ///
    /// ```no_run
    /// assert!(tiledio_tiff::Slide::open("slide.tif")?.level_count() >= 1);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn level_count(&self) -> usize {
        self.info.len()
    }

    /// `(width, height)` of each level, largest first.
    ///
    /// ```no_run
    /// let (w, h) = tiledio_tiff::Slide::open("slide.tif")?.level_dimensions()[0];
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn level_dimensions(&self) -> Vec<(u64, u64)> {
        self.info.iter().map(|l| (l.width, l.height)).collect()
    }

    /// Downsample factor of each level relative to level 0 (level 0 is 1.0).
    ///
    /// ```no_run
    /// assert_eq!(tiledio_tiff::Slide::open("slide.tif")?.level_downsamples()[0], 1.0);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn level_downsamples(&self) -> Vec<f64> {
        self.info.iter().map(|l| l.downsample).collect()
    }

    /// `(tile width, tile height)` of each level.
    ///
    /// ```no_run
    /// let (tw, th) = tiledio_tiff::Slide::open("slide.tif")?.level_tile_sizes()[0];
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn level_tile_sizes(&self) -> Vec<(u64, u64)> {
        self.info.iter().map(|l| (l.tile_width, l.tile_height)).collect()
    }

    /// Everything known about each level.
    ///
    /// ```no_run
    /// for l in tiledio_tiff::Slide::open("slide.tif")?.levels() { println!("{l:?}"); }
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn levels(&self) -> &[LevelInfo] {
        &self.info
    }

    /// Samples per pixel (3 for RGB, 4 for RGBA, 1 for grey, ...).
    ///
    /// ```no_run
    /// assert_eq!(tiledio_tiff::Slide::open("rgb.tif")?.channels(), 3);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn channels(&self) -> usize {
        self.levels[0].spp
    }

    /// The sample type of the levels.
    ///
    /// ```no_run
    /// let t = tiledio_tiff::Slide::open("slide.tif")?.sample_type();
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn sample_type(&self) -> SampleType {
        self.levels[0].dtype
    }

    /// Properties with OpenSlide's names: `openslide.vendor`, `openslide.mpp-x/y`,
    /// `openslide.objective-power`, `openslide.level[i].*`, `tiff.ImageDescription`, ...,
    /// and `aperio.*` keys for Aperio files.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.svs")?;
    /// println!("{:?}", s.properties().get("openslide.mpp-x"));
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// Names of the associated images ("label", "macro", "thumbnail"), as OpenSlide finds them.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.svs")?;
    /// assert!(s.associated_images().contains(&"label"));
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn associated_images(&self) -> Vec<&str> {
        self.associated.keys().map(|s| s.as_str()).collect()
    }

    /// `(width, height)` of an associated image, `None` for an unknown name (to check its size
    /// before [`Slide::read_associated_image`] reads it whole).
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.svs")?;
    /// if let Some((w, h)) = s.associated_image_dimensions("label") { println!("{w}x{h}"); }
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn associated_image_dimensions(&self, name: &str) -> Option<(u64, u64)> {
        self.associated.get(name).map(|p| (p.width, p.height))
    }

    /// Reads a whole associated image.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.svs")?;
    /// let label = s.read_associated_image("label")?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] for an unknown name; decode and I/O errors.
    pub fn read_associated_image(&self, name: &str) -> Result<HostImage> {
        let p = self
            .associated
            .get(name)
            .ok_or_else(|| TiffError::InvalidArgument(format!("no associated image named {name:?}")))?;
        let data = read_window(&self.fh, p, 0, 0, p.width, p.height, 0)?;
        HostImage::from_bytes(p.height as usize, p.width as usize, p.spp, p.dtype, data)
    }

    /// The level to read for a wanted downsample factor, as OpenSlide chooses it: the largest
    /// level whose downsample does not exceed the factor.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// assert_eq!(s.get_best_level_for_downsample(1.0), 0);
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn get_best_level_for_downsample(&self, downsample: f64) -> usize {
        let d = self.level_downsamples();
        if downsample < d[0] {
            return 0;
        }
        for (i, &v) in d.iter().enumerate().skip(1) {
            if downsample < v {
                return i - 1;
            }
        }
        d.len() - 1
    }

    pub(crate) fn page(&self, level: usize) -> Result<&Page> {
        self.levels.get(level).ok_or_else(|| {
            TiffError::InvalidArgument(format!(
                "level {level} does not exist (the slide has {})",
                self.levels.len()
            ))
        })
    }

    /// The window in level pixels for an OpenSlide-style request (location at level 0).
    pub(crate) fn window(&self, location: (i64, i64), level: usize, size: (u64, u64)) -> Result<(&Page, i64, i64)> {
        let page = self.page(level)?;
        let ds = self.info[level].downsample;
        if size.0 > crate::page::MAX_DIM * 4 || size.1 > crate::page::MAX_DIM * 4 {
            return Err(TiffError::InvalidArgument(format!(
                "region of {}x{} pixels is too large",
                size.0, size.1
            )));
        }
        // OpenSlide: truncating division of the level-0 location by the downsample
        Ok((page, (location.0 as f64 / ds) as i64, (location.1 as f64 / ds) as i64))
    }

    /// [`Slide::read_region`] into a caller's buffer (a NumPy array's memory, a reused buffer)
    /// instead of a new image: exactly `height × width × channels` samples of the slide's
    /// sample type, native order. Every byte is written (0 outside the image).
    ///
    /// ```
    /// use tiledio_tiff::{HostImage, Slide, WriteOptions, write_pyramid};
    /// # let dir = tempfile::tempdir()?; let path = dir.path().join("s.tif");
    /// let img = HostImage::from_u8(64, 64, 3, (0..64 * 64 * 3).map(|i| (i % 251) as u8).collect())?;
    /// write_pyramid(&path, &img, &WriteOptions::default().tile(16))?;
    /// let s = Slide::open(&path)?;
    /// let mut buf = vec![0xffu8; 20 * 10 * 3];
    /// s.read_region_into((50, -2), 0, (20, 10), &mut buf)?;
    /// assert_eq!(buf, s.read_region((50, -2), 0, (20, 10))?.into_bytes());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region`]; [`TiffError::InvalidArgument`] for a buffer of another size.
    pub fn read_region_into(&self, location: (i64, i64), level: usize, size: (u64, u64), out: &mut [u8]) -> Result<()> {
        let (page, x, y) = self.window(location, level, size)?;
        read_window_into(&self.fh, page, x, y, size.0, size.1, 0, out)
    }

    /// Reads a region of a level by that level's own pixel coordinates: `region` is `[y, x]`
    /// origin and `[height, width]` shape in pixels of `level` (no round trip through level-0
    /// coordinates, so levels that are not exact halves read exactly). Pixels outside the level
    /// are 0 under [`Border::Fill`]; under [`Border::Reject`] such a region is an error — the
    /// same [`Region`] and policy as a Zarr array's `read_region`.
    ///
    /// ```no_run
    /// use tiledio_io::{Border, Region};
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let w = s.level_dimensions()[2].0;
    /// let band = s.read_level_region(2, &Region::new(&[256, 0], &[256, w]), Border::Fill)?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region`]; [`TiffError::InvalidArgument`] for a region of rank other
    /// than 2, or outside the level under [`Border::Reject`].
    pub fn read_level_region(&self, level: usize, region: &Region, border: Border) -> Result<HostImage> {
        let (page, (x, y), (w, h)) = self.level_window(level, region, border)?;
        let data = read_window(&self.fh, page, x, y, w, h, 0)?;
        HostImage::from_bytes(h as usize, w as usize, page.spp, page.dtype, data)
    }

    /// [`Slide::read_level_region`] into a caller's buffer (a NumPy array's memory, a reused
    /// buffer): exactly `rows × columns × channels` samples of the slide's sample type, native
    /// order, every byte written.
    ///
    /// ```
    /// use tiledio_io::{Border, Region};
    /// use tiledio_tiff::{HostImage, Slide, WriteOptions, write_pyramid};
    /// # let dir = tempfile::tempdir()?; let path = dir.path().join("s.tif");
    /// let img = HostImage::from_u8(40, 50, 1, (0..2000).map(|i| i as u8).collect())?;
    /// write_pyramid(&path, &img, &WriteOptions::default().tile(16))?;
    /// let s = Slide::open(&path)?;
    /// let mut buf = vec![7u8; 3 * 4]; // old contents are overwritten
    /// s.read_level_region_into(0, &Region::new(&[38, 48], &[3, 4]), Border::Fill, &mut buf)?;
    /// assert_eq!(buf, [156, 157, 0, 0, 206, 207, 0, 0, 0, 0, 0, 0]); // 0 outside the level
    /// assert!(s.read_level_region_into(0, &Region::new(&[0, 0], &[3, 4]), Border::Fill, &mut buf[..5]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_level_region`]; [`TiffError::InvalidArgument`] for a buffer of another
    /// size.
    pub fn read_level_region_into(&self, level: usize, region: &Region, border: Border, out: &mut [u8]) -> Result<()> {
        let (page, (x, y), (w, h)) = self.level_window(level, region, border)?;
        read_window_into(&self.fh, page, x, y, w, h, 0, out)
    }

    /// The page and window of a level region, checked.
    pub(crate) fn level_window(&self, level: usize, region: &Region, border: Border) -> Result<PageWindow<'_>> {
        let page = self.page(level)?;
        region
            .check(&[page.height, page.width], border)
            .map_err(|e| TiffError::InvalidArgument(format!("{}: level {level}: {e}", self.path().display())))?;
        let (&[y, x], &[h, w]) = (region.origin(), region.shape()) else {
            return Err(TiffError::Internal("a checked region has rank 2".into()));
        };
        self.window((0, 0), level, (w, h))?;
        Ok((page, (x, y), (w, h)))
    }

    /// Where the stored bytes of each tile (or strip) of a level lie in the file, in tile order
    /// (row-major): `(file offset, byte count)`, as the file declares them (checked against the
    /// file's length when it was opened). For benchmarks and tools that move raw tiles.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let bytes: u64 = s.tile_ranges(0)?.iter().map(|&(_, n)| n).sum();
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] for a level that does not exist.
    pub fn tile_ranges(&self, level: usize) -> Result<Vec<(u64, u64)>> {
        let page = self.page(level)?;
        Ok(page.offsets.iter().copied().zip(page.counts.iter().copied()).collect())
    }

    /// Microns per pixel at level 0, `(x, y)`, from `openslide.mpp-x`/`-y` (Aperio, OME or the
    /// resolution tags), when the file says and the values are positive.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.svs")?;
    /// if let Some((x, _)) = s.mpp() { println!("{x} µm per pixel"); }
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    pub fn mpp(&self) -> Option<(f64, f64)> {
        let get = |k: &str| {
            self.properties
                .get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|m| m.is_finite() && *m > 0.0)
        };
        let x = get("openslide.mpp-x")?;
        Some((x, get("openslide.mpp-y").unwrap_or(x)))
    }

    /// Level `level` as a [`RowSource`](crate::RowSource), read a band of rows at a time: the
    /// input of the streaming pyramid writer ([`write_pyramid_from`](crate::write_pyramid_from)).
    ///
    /// ```no_run
    /// use tiledio_tiff::{Slide, WriteOptions, write_pyramid_from};
    /// let s = Slide::open("slide.svs")?;
    /// write_pyramid_from("copy.tif".as_ref(), &s.level_rows(0)?, &WriteOptions::default(), &|_, _| {})?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// [`TiffError::InvalidArgument`] for a level that does not exist.
    pub fn level_rows(&self, level: usize) -> Result<LevelRows<'_>> {
        self.page(level)?;
        Ok(LevelRows { slide: self, level })
    }

    /// Reads a whole level into host memory.
    ///
    /// ```no_run
    /// let s = tiledio_tiff::Slide::open("slide.tif")?;
    /// let lvl = s.read_level(s.level_count() - 1)?;
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Slide::read_region`].
    pub fn read_level(&self, level: usize) -> Result<HostImage> {
        let page = self.page(level)?;
        let data = read_window(&self.fh, page, 0, 0, page.width, page.height, 0)?;
        HostImage::from_bytes(page.height as usize, page.width as usize, page.spp, page.dtype, data)
    }
}

/// One level of a slide read as bands of rows ([`Slide::level_rows`]).
#[derive(Debug, Clone, Copy)]
pub struct LevelRows<'a> {
    slide: &'a Slide,
    level: usize,
}

impl crate::RowSource for LevelRows<'_> {
    fn dimensions(&self) -> (u64, u64) {
        self.slide.level_dimensions()[self.level]
    }
    fn channels(&self) -> usize {
        self.slide.channels()
    }
    fn sample_type(&self) -> SampleType {
        self.slide.sample_type()
    }
    fn read_rows(&self, y0: u64, rows: u64) -> Result<HostImage> {
        let (w, _) = self.dimensions();
        let y0 = i64::try_from(y0).map_err(|_| TiffError::InvalidArgument(format!("row {y0}")))?;
        self.slide
            .read_level_region(self.level, &Region::new(&[y0, 0], &[rows, w]), Border::Reject)
    }
}
