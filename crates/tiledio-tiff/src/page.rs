//! One image (IFD) interpreted: dimensions, tile or strip grid, sample layout, compression.

use crate::error::{Result, TiffError};
use crate::ifd::{Ifd, malformed};
use crate::image::SampleType;
use tiledio_io::FileHandle;

/// Largest width or height of an image we accept.
pub(crate) const MAX_DIM: u64 = 1 << 24;
/// Largest decoded tile or strip we accept (bytes).
pub(crate) const MAX_TILE_BYTES: u64 = 1 << 30;
/// Most samples per pixel we read (and so write).
pub(crate) const MAX_SAMPLES: usize = 64;

/// How tile bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// 1: stored as is.
    None,
    /// 5: LZW (TIFF flavour, MSB first).
    Lzw,
    /// 7: JPEG ("new style", optional shared JPEGTables).
    Jpeg,
    /// 8 (Adobe) or 32946 (old): zlib/deflate.
    Deflate,
    /// 32773: PackBits run-length.
    PackBits,
    /// 50000: Zstandard.
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = TiffError;
    /// Parses a compression name: none (raw), deflate (zlib), zstd, lzw, jpeg (jpg), packbits.
    ///
    /// ```
    /// use tiledio_tiff::Compression;
    /// assert_eq!("zstd".parse::<Compression>()?, Compression::Zstd);
    /// assert!("webp".parse::<Compression>().is_err());
    /// # Ok::<(), tiledio_tiff::TiffError>(())
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "raw" => Ok(Compression::None),
            "deflate" | "zlib" => Ok(Compression::Deflate),
            "zstd" => Ok(Compression::Zstd),
            "lzw" => Ok(Compression::Lzw),
            "jpeg" | "jpg" => Ok(Compression::Jpeg),
            "packbits" => Ok(Compression::PackBits),
            other => Err(TiffError::InvalidArgument(format!(
                "unknown compression {other:?} (none, deflate, zstd, lzw, jpeg)"
            ))),
        }
    }
}

impl Compression {
    /// The TIFF Compression tag value.
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::Compression::Zstd.code(), 50000);
    /// ```
    pub fn code(self) -> u16 {
        match self {
            Compression::None => 1,
            Compression::Lzw => 5,
            Compression::Jpeg => 7,
            Compression::Deflate => 8,
            Compression::PackBits => 32773,
            Compression::Zstd => 50000,
        }
    }

    /// A short name ("none", "lzw", "jpeg", "deflate", "packbits", "zstd").
    ///
    /// ```
    /// assert_eq!(tiledio_tiff::Compression::Jpeg.name(), "jpeg");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lzw => "lzw",
            Compression::Jpeg => "jpeg",
            Compression::Deflate => "deflate",
            Compression::PackBits => "packbits",
            Compression::Zstd => "zstd",
        }
    }
}

/// Names the compressions we do not decode, for the error message.
fn unsupported_compression(code: u64) -> String {
    let name = match code {
        2 => "CCITT RLE",
        3 => "CCITT Group 3 fax",
        4 => "CCITT Group 4 fax",
        6 => "old-style JPEG",
        33003 => "Aperio JPEG 2000 YCbCr",
        33005 => "Aperio JPEG 2000 RGB",
        34712 => "JPEG 2000",
        34887 => "LERC",
        34925 => "LZMA",
        50001 => "WebP",
        50002 | 52546 => "JPEG XL",
        _ => "unknown",
    };
    format!("compression {code} ({name})")
}

/// A page's image, ready to be read tile by tile (strips are tiles as wide as the image).
#[derive(Clone, Debug)]
pub(crate) struct Page {
    pub(crate) index: usize,
    pub(crate) width: u64,
    pub(crate) height: u64,
    pub(crate) tile_w: u64,
    pub(crate) tile_h: u64,
    pub(crate) tiled: bool,
    pub(crate) across: u64,
    pub(crate) spp: usize,
    pub(crate) dtype: SampleType,
    pub(crate) big_endian: bool,
    pub(crate) compression: Compression,
    pub(crate) predictor: u16,
    pub(crate) jpeg_tables: Option<Vec<u8>>,
    pub(crate) offsets: Vec<u64>,
    pub(crate) counts: Vec<u64>,
}

impl Page {
    /// Bytes per pixel (all samples).
    pub(crate) fn pixel_bytes(&self) -> usize {
        self.spp * self.dtype.size()
    }
    /// Bytes of one decoded tile (full tile size).
    pub(crate) fn tile_bytes(&self) -> usize {
        (self.tile_w * self.tile_h) as usize * self.pixel_bytes()
    }
    /// Rows of tile `i` actually stored (strips at the bottom may be shorter).
    pub(crate) fn stored_rows(&self, i: usize) -> u64 {
        if self.tiled {
            self.tile_h
        } else {
            let y0 = (i as u64 / self.across) * self.tile_h;
            self.tile_h.min(self.height.saturating_sub(y0))
        }
    }

    /// Interprets an IFD. `file` is for messages and for checking tile offsets.
    pub(crate) fn from_ifd(fh: &FileHandle, big_endian: bool, index: usize, ifd: &Ifd) -> Result<Page> {
        let bad = |r: String| malformed(fh, index, r);
        let unsupported = |what: String| TiffError::Unsupported {
            path: fh.path().to_path_buf(),
            page: index,
            what,
        };
        let width = ifd.uint(256).ok_or_else(|| bad("no ImageWidth".into()))?;
        let height = ifd.uint(257).ok_or_else(|| bad("no ImageLength".into()))?;
        if width == 0 || height == 0 || width > MAX_DIM || height > MAX_DIM {
            return Err(bad(format!(
                "image of {width}x{height} pixels (allowed 1..={MAX_DIM} each way)"
            )));
        }
        if ifd.uint(32997).unwrap_or(1) > 1 {
            return Err(unsupported("volumetric (ImageDepth > 1) images".into()));
        }
        let spp = ifd.uint(277).unwrap_or(1);
        if spp == 0 || spp > MAX_SAMPLES as u64 {
            return Err(bad(format!("SamplesPerPixel {spp}")));
        }
        let bps = ifd.uints(258).unwrap_or_else(|| vec![1]);
        let bits = bps.first().copied().unwrap_or(1);
        if bps.iter().any(|&b| b != bits) {
            return Err(unsupported(format!(
                "mixed BitsPerSample ({} values, the first {:?})",
                bps.len(),
                &bps[..bps.len().min(8)]
            )));
        }
        let fmt = ifd.uint(339).unwrap_or(1);
        let dtype = match (fmt, bits) {
            (1, 8) => SampleType::U8,
            (1, 16) => SampleType::U16,
            (1, 32) => SampleType::U32,
            (1, 64) => SampleType::U64,
            (2, 8) => SampleType::I8,
            (2, 16) => SampleType::I16,
            (2, 32) => SampleType::I32,
            (2, 64) => SampleType::I64,
            (3, 32) => SampleType::F32,
            (3, 64) => SampleType::F64,
            _ => {
                return Err(unsupported(format!(
                    "{bits}-bit samples of SampleFormat {fmt} (supported: 8 to 64-bit integers, 32 and 64-bit floats)"
                )));
            }
        };
        let planar = ifd.uint(284).unwrap_or(1);
        if planar == 2 && spp > 1 {
            return Err(unsupported("planar-separate samples (PlanarConfiguration=2)".into()));
        }
        let code = ifd.uint(259).unwrap_or(1);
        let compression = match code {
            1 => Compression::None,
            5 => Compression::Lzw,
            7 => Compression::Jpeg,
            8 | 32946 => Compression::Deflate,
            32773 => Compression::PackBits,
            50000 => Compression::Zstd,
            c => return Err(unsupported(unsupported_compression(c))),
        };
        let photometric = ifd.uint(262).unwrap_or(if spp >= 3 { 2 } else { 1 }) as u16;
        if photometric == 6 && compression != Compression::Jpeg {
            return Err(unsupported("YCbCr pixels outside JPEG".into()));
        }
        if compression == Compression::Jpeg && (dtype != SampleType::U8 || !(spp == 1 || spp == 3)) {
            return Err(unsupported(format!("JPEG with {spp} samples of {}", dtype.name())));
        }
        let predictor = ifd.uint(317).unwrap_or(1) as u16;
        if !matches!(predictor, 1..=3) {
            return Err(unsupported(format!("predictor {predictor}")));
        }
        let (tiled, tile_w, tile_h, offsets, counts) = if ifd.tags.contains_key(&322) || ifd.tags.contains_key(&324) {
            let tw = ifd.uint(322).ok_or_else(|| bad("no TileWidth".into()))?;
            let th = ifd.uint(323).ok_or_else(|| bad("no TileLength".into()))?;
            if tw == 0 || th == 0 || tw > 65536 || th > 65536 {
                return Err(bad(format!("tile of {tw}x{th} pixels")));
            }
            let o = ifd.uints(324).ok_or_else(|| bad("no TileOffsets".into()))?;
            let c = ifd.uints(325).ok_or_else(|| bad("no TileByteCounts".into()))?;
            (true, tw, th, o, c)
        } else {
            let rps = ifd.uint(278).unwrap_or(height).clamp(1, height);
            let o = ifd
                .uints(273)
                .ok_or_else(|| bad("neither TileOffsets nor StripOffsets".into()))?;
            let c = ifd.uints(279).ok_or_else(|| bad("no StripByteCounts".into()))?;
            (false, width, rps, o, c)
        };
        let tile_bytes = tile_w * tile_h * spp * dtype.size() as u64;
        if tile_bytes > MAX_TILE_BYTES {
            return Err(unsupported(format!(
                "tiles or strips of {tile_bytes} bytes (at most {MAX_TILE_BYTES})"
            )));
        }
        let across = width.div_ceil(tile_w);
        let expected = across * height.div_ceil(tile_h);
        if offsets.len() as u64 != expected || counts.len() as u64 != expected {
            return Err(bad(format!(
                "{} offsets and {} byte counts for {expected} {} ({width}x{height} in {tile_w}x{tile_h})",
                offsets.len(),
                counts.len(),
                if tiled { "tiles" } else { "strips" }
            )));
        }
        for (i, (&o, &c)) in offsets.iter().zip(&counts).enumerate() {
            if o.checked_add(c).is_none_or(|end| end > fh.len()) {
                return Err(TiffError::TileOutOfFile {
                    path: fh.path().to_path_buf(),
                    page: index,
                    tile: i,
                    offset: o,
                    len: c,
                    file_len: fh.len(),
                });
            }
        }
        Ok(Page {
            index,
            width,
            height,
            tile_w,
            tile_h,
            tiled,
            across,
            spp: spp as usize,
            dtype,
            big_endian,
            compression,
            predictor,
            jpeg_tables: ifd.bytes(347),
            offsets,
            counts,
        })
    }
}
