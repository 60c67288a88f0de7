//! Small 8-bit previews of images, written as PNG: an RGB or grey image, a float image (an edge
//! map, a diffraction pattern) scaled into 0–255, shrunk by box averaging to fit a size, or
//! tiled into a montage. `tiledio demo` shows its results with them.
//!
//! ```
//! use tiledio::preview::{Preview, Scale};
//! let edges: Vec<f32> = (0..64 * 32).map(|i| (i % 64) as f32).collect();
//! let p = Preview::from_f32(32, 64, &edges, Scale::Linear)?.fit(16);
//! assert_eq!((p.height(), p.width(), p.channels()), (8, 16, 1));
//! let dir = tempfile::tempdir()?;
//! p.write_png(&dir.path().join("edges.png"))?;
//! assert_eq!(Preview::read_png(&dir.path().join("edges.png"))?, p);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::io::FileWriter;
use std::path::Path;

/// What can go wrong making or writing a preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The pixels do not match the shape given, or a montage's tiles differ.
    #[error("preview: {0}")]
    Shape(String),
    /// PNG encoding or decoding failed.
    #[error("{path}: PNG: {message}")]
    Png {
        /// The file.
        path: String,
        /// What the PNG codec said.
        message: String,
    },
    /// Writing or reading the file failed.
    #[error(transparent)]
    Io(#[from] crate::io::IoError),
}

/// How [`Preview::from_f32`] maps values to 0–255.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear from the smallest value to the 99.5th percentile (a few bright outliers do not
    /// darken the rest); values above it are white.
    Linear,
    /// `ln(1 + max(v, 0))`, then linear from 0 to its 99.9th percentile: for diffraction
    /// patterns, whose intensities span decades.
    Log,
}

/// An 8-bit image of 1 (grey) or 3 (RGB) interleaved channels, `height × width`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    height: usize,
    width: usize,
    channels: usize,
    pixels: Vec<u8>,
}

impl Preview {
    /// An image from `height × width × channels` bytes (`channels` 1 or 3).
    ///
    /// # Errors
    /// [`PreviewError::Shape`] for another channel count, an empty image or a wrong length.
    pub fn new(height: usize, width: usize, channels: usize, pixels: Vec<u8>) -> Result<Preview, PreviewError> {
        if channels != 1 && channels != 3 {
            return Err(PreviewError::Shape(format!("{channels} channels; 1 (grey) or 3 (RGB)")));
        }
        if height == 0 || width == 0 || u32::try_from(height.max(width)).is_err() {
            return Err(PreviewError::Shape(format!("{height} x {width} pixels")));
        }
        let want = height
            .checked_mul(width)
            .and_then(|n| n.checked_mul(channels))
            .ok_or_else(|| PreviewError::Shape(format!("{height} x {width} overflows")))?;
        if pixels.len() != want {
            return Err(PreviewError::Shape(format!(
                "{} bytes for {height} x {width} x {channels} ({want} needed)",
                pixels.len()
            )));
        }
        Ok(Preview {
            height,
            width,
            channels,
            pixels,
        })
    }

    /// A grey image of `height × width` floats scaled by `scale` (NaN shows black).
    ///
    /// ```
    /// use tiledio::preview::{Preview, Scale};
    /// let p = Preview::from_f32(1, 3, &[0.0, 1.0, 2.0], Scale::Linear)?;
    /// assert_eq!(p.pixels()[0], 0);
    /// assert_eq!(p.pixels()[2], 255);
    /// # Ok::<(), tiledio::preview::PreviewError>(())
    /// ```
    ///
    /// # Errors
    /// As [`Preview::new`].
    pub fn from_f32(height: usize, width: usize, values: &[f32], scale: Scale) -> Result<Preview, PreviewError> {
        let mapped: Vec<f32> = match scale {
            Scale::Linear => values.to_vec(),
            Scale::Log => values.iter().map(|&v| v.max(0.0).ln_1p()).collect(),
        };
        let mut finite: Vec<f32> = mapped.iter().copied().filter(|v| v.is_finite()).collect();
        let (lo, hi) = if finite.is_empty() {
            (0.0, 1.0)
        } else {
            let mut at = |q: f64| {
                let k = ((finite.len() - 1) as f64 * q).round() as usize;
                *finite.select_nth_unstable_by(k, f32::total_cmp).1
            };
            match scale {
                Scale::Linear => (at(0.0), at(0.995)),
                Scale::Log => (0.0, at(0.999)),
            }
        };
        let span = if hi > lo { hi - lo } else { 1.0 };
        let pixels = mapped
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    0
                } else {
                    ((v - lo) / span * 255.0).round().clamp(0.0, 255.0) as u8
                }
            })
            .collect();
        Preview::new(height, width, 1, pixels)
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// 1 (grey) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The bytes, row by row, channels interleaved.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The image shrunk by the smallest whole factor `f` that makes both sides at most
    /// `max_side` (each pixel the rounded mean of an `f × f` box; the last row and column of
    /// boxes may be partial): sides become `ceil(side / f)`. An image that fits is returned
    /// as it is.
    ///
    /// ```
    /// let p = tiledio::preview::Preview::new(2, 4, 1, vec![0, 2, 4, 6, 2, 4, 6, 9])?.fit(2);
    /// assert_eq!((p.height(), p.width()), (1, 2));
    /// assert_eq!(p.pixels(), [2, 6]);
    /// # Ok::<(), tiledio::preview::PreviewError>(())
    /// ```
    pub fn fit(&self, max_side: usize) -> Preview {
        let f = self.height.max(self.width).div_ceil(max_side.max(1)).max(1);
        if f == 1 {
            return self.clone();
        }
        let (h, w, c) = (self.height.div_ceil(f), self.width.div_ceil(f), self.channels);
        let mut pixels = vec![0u8; h * w * c];
        for y in 0..h {
            let ys = y * f..((y + 1) * f).min(self.height);
            for x in 0..w {
                let xs = x * f..((x + 1) * f).min(self.width);
                let n = (ys.len() * xs.len()) as u32;
                for k in 0..c {
                    let mut sum = 0u32;
                    for yy in ys.clone() {
                        for xx in xs.clone() {
                            sum += u32::from(self.pixels[(yy * self.width + xx) * c + k]);
                        }
                    }
                    pixels[(y * w + x) * c + k] = ((sum + n / 2) / n) as u8;
                }
            }
        }
        Preview {
            height: h,
            width: w,
            channels: c,
            pixels,
        }
    }

    /// Tiles of one size laid out row by row, `columns` to a row, `gap` pixels of black
    /// between them: `rows × h + (rows − 1) × gap` by `columns × w + (columns − 1) × gap`,
    /// with `rows = ceil(tiles / columns)`.
    ///
    /// ```
    /// use tiledio::preview::Preview;
    /// let t = Preview::new(2, 3, 1, vec![9; 6])?;
    /// let m = Preview::montage(&[t.clone(), t.clone(), t], 2, 1)?;
    /// assert_eq!((m.height(), m.width()), (5, 7));
    /// # Ok::<(), tiledio::preview::PreviewError>(())
    /// ```
    ///
    /// # Errors
    /// [`PreviewError::Shape`] for no tiles, zero columns, or tiles of different shapes.
    pub fn montage(tiles: &[Preview], columns: usize, gap: usize) -> Result<Preview, PreviewError> {
        let first = tiles
            .first()
            .ok_or_else(|| PreviewError::Shape("a montage of no tiles".into()))?;
        if columns == 0 {
            return Err(PreviewError::Shape("a montage of zero columns".into()));
        }
        let (th, tw, c) = (first.height, first.width, first.channels);
        if let Some(t) = tiles.iter().find(|t| (t.height, t.width, t.channels) != (th, tw, c)) {
            return Err(PreviewError::Shape(format!(
                "montage tiles differ: {th} x {tw} x {c} and {} x {} x {}",
                t.height, t.width, t.channels
            )));
        }
        let cols = columns.min(tiles.len());
        let rows = tiles.len().div_ceil(cols);
        let (h, w) = (rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap);
        let mut pixels = vec![0u8; h * w * c];
        for (i, t) in tiles.iter().enumerate() {
            let (y0, x0) = ((i / cols) * (th + gap), (i % cols) * (tw + gap));
            for y in 0..th {
                let dst = ((y0 + y) * w + x0) * c;
                pixels[dst..dst + tw * c].copy_from_slice(&t.pixels[y * tw * c..(y + 1) * tw * c]);
            }
        }
        Preview::new(h, w, c, pixels)
    }

    /// The PNG file's bytes (8-bit grey or RGB).
    ///
    /// # Errors
    /// [`PreviewError::Png`] if the encoder fails.
    pub fn to_png(&self) -> Result<Vec<u8>, PreviewError> {
        let png_err = |e: png::EncodingError| PreviewError::Png {
            path: "(in memory)".into(),
            message: e.to_string(),
        };
        let mut out = Vec::new();
        {
            // the sides were checked to fit u32 in `new`
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(if self.channels == 3 {
                png::ColorType::Rgb
            } else {
                png::ColorType::Grayscale
            });
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut w = enc.write_header().map_err(png_err)?;
            w.write_image_data(&self.pixels).map_err(png_err)?;
            w.finish().map_err(png_err)?;
        }
        Ok(out)
    }

    /// Writes the PNG to `path` under a temporary name renamed into place (an existing
    /// regular file is replaced; a directory, symlink or special file there is refused).
    ///
    /// # Errors
    /// [`PreviewError::Png`]; [`PreviewError::Io`] for the write.
    pub fn write_png(&self, path: &Path) -> Result<(), PreviewError> {
        let bytes = self.to_png()?;
        let w = FileWriter::create(path)?;
        w.write_at(0, bytes.as_slice())?;
        w.finish(false)?;
        Ok(())
    }

    /// Reads an 8-bit grey or RGB PNG (as [`Preview::write_png`] writes them).
    ///
    /// # Errors
    /// [`PreviewError::Png`] for another kind of PNG or a damaged file; [`PreviewError::Io`].
    pub fn read_png(path: &Path) -> Result<Preview, PreviewError> {
        let bytes = std::fs::read(path).map_err(|source| crate::io::IoError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let png_err = |message: String| PreviewError::Png {
            path: path.display().to_string(),
            message,
        };
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .map_err(|e| png_err(e.to_string()))?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| png_err("image too large".into()))?;
        let mut buf = vec![0u8; size];
        let info = reader.next_frame(&mut buf).map_err(|e| png_err(e.to_string()))?;
        let channels = match (info.color_type, info.bit_depth) {
            (png::ColorType::Grayscale, png::BitDepth::Eight) => 1,
            (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
            (c, d) => return Err(png_err(format!("{c:?} {d:?}; 8-bit grey or RGB expected"))),
        };
        buf.truncate(info.buffer_size());
        Preview::new(info.height as usize, info.width as usize, channels, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Preview::new(2, 2, 2, vec![0; 8]).is_err());
        assert!(Preview::new(2, 2, 3, vec![0; 11]).is_err());
        assert!(Preview::new(0, 2, 1, vec![]).is_err());
        let a = Preview::new(2, 2, 1, vec![0; 4]).unwrap();
        let b = Preview::new(2, 3, 1, vec![0; 6]).unwrap();
        assert!(Preview::montage(&[a.clone(), b], 2, 0).is_err());
        assert!(Preview::montage(&[], 2, 0).is_err());
        assert!(Preview::montage(&[a], 0, 0).is_err());
    }

    #[test]
    fn fit_averages_boxes_and_keeps_partial_ones() {
        // 3 x 5 RGB, factor 2: 2 x 3, the last row and column of boxes partial
        let px: Vec<u8> = (0..3 * 5 * 3).map(|i| (i * 5) as u8).collect();
        let p = Preview::new(3, 5, 3, px.clone()).unwrap().fit(3);
        assert_eq!((p.height(), p.width(), p.channels()), (2, 3, 3));
        let at = |y: usize, x: usize, k: usize| f64::from(px[(y * 5 + x) * 3 + k]);
        let mean00 = (at(0, 0, 1) + at(0, 1, 1) + at(1, 0, 1) + at(1, 1, 1)) / 4.0;
        assert_eq!(p.pixels()[1], mean00.round() as u8);
        // the corner box is the single pixel (2, 4)
        assert_eq!(p.pixels()[(3 + 2) * 3 + 2], px[(2 * 5 + 4) * 3 + 2]);
        let same = Preview::new(3, 5, 3, px).unwrap();
        assert_eq!(same.fit(5), same);
    }

    #[test]
    fn scales_ignore_outliers_and_nan() {
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32 / 999.0).collect();
        v[10] = 1e9;
        v[11] = f32::NAN;
        let p = Preview::from_f32(1, 1000, &v, Scale::Linear).unwrap();
        assert_eq!(p.pixels()[10], 255);
        assert_eq!(p.pixels()[11], 0);
        // the outlier does not squash the rest into black
        assert!(p.pixels()[500] > 100, "{}", p.pixels()[500]);
        let p = Preview::from_f32(1, 4, &[-5.0, 0.0, 10.0, 1000.0], Scale::Log).unwrap();
        assert_eq!(&p.pixels()[..2], [0, 0]);
        assert!(p.pixels()[2] > 50 && p.pixels()[3] == 255, "{:?}", p.pixels());
    }

    #[test]
    fn png_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        for c in [1, 3] {
            let px: Vec<u8> = (0..7 * 5 * c).map(|i| (i * 37 % 256) as u8).collect();
            let p = Preview::new(7, 5, c, px).unwrap();
            let path = dir.path().join(format!("p{c}.png"));
            p.write_png(&path).unwrap();
            assert_eq!(Preview::read_png(&path).unwrap(), p);
        }
        std::fs::write(dir.path().join("bad.png"), b"not a png").unwrap();
        assert!(matches!(
            Preview::read_png(&dir.path().join("bad.png")),
            Err(PreviewError::Png { .. })
        ));
    }
}
