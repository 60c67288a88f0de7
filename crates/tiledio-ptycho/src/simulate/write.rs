//! Writing a simulation: `.npy`, raw and Zarr frame stacks, dark frames, positions. Every file
//! goes through [`tiledio_io::FileWriter`] (a temporary beside the target, renamed when
//! complete; a non-regular target is refused) and every Zarr array through
//! [`tiledio_zarr::ZarrArray::create`] (a temporary folder, metadata last).

use super::{Scratch, Simulation};
use crate::error::{Result, usage};
use rayon::prelude::*;
use std::path::Path;
use tiledio_io::{ElementType, FileWriter};

/// What a writer wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Frames written.
    pub frames: u64,
    /// Pixels above 65535 (clipped) over all frames.
    pub saturated: u64,
    /// Bytes of the file(s).
    pub bytes: u64,
}

/// A NumPy `.npy` version 1.0 header (little-endian `dtype`, C order) for an array of `shape`,
/// padded so the data starts at a multiple of 64 bytes.
///
/// ```
/// let h = tiledio_ptycho::simulate::npy_header(tiledio_io::ElementType::U16, &[3, 4, 5]);
/// assert_eq!(h.len() % 64, 0);
/// assert!(String::from_utf8_lossy(&h).contains("'shape': (3, 4, 5)"));
/// ```
pub fn npy_header(dtype: ElementType, shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({}{}), }}",
        dtype.npy_descr(),
        dims.join(", "),
        if shape.len() == 1 { "," } else { "" }
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out
}

/// Writes `data` (native-endian elements of `dtype`, C order) as a `.npy` file of `shape`.
///
/// ```
/// # let dir = tempfile::tempdir()?; let path = dir.path().join("a.npy");
/// use tiledio_io::ElementType;
/// let v: Vec<u8> = [1.5f32, 2.5].iter().flat_map(|v| v.to_ne_bytes()).collect();
/// tiledio_ptycho::simulate::write_npy_array(&path, ElementType::F32, &[2], &v)?;
/// let h = tiledio_ptycho::parse_npy_header(&path, &std::fs::read(&path)?)?;
/// assert_eq!((h.dtype, h.shape), (ElementType::F32, vec![2]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`crate::PtychoError::Usage`] when `data` does not hold `shape`; [`crate::PtychoError::Io`]
/// from the write (a target that is not a regular file is refused).
pub fn write_npy_array(path: impl AsRef<Path>, dtype: ElementType, shape: &[u64], data: &[u8]) -> Result<()> {
    let need = shape
        .iter()
        .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| usage(format!("{}: shape {shape:?} overflows", path.as_ref().display())))?;
    if need != data.len() as u64 {
        return Err(usage(format!(
            "{}: {} bytes for shape {shape:?} of {dtype}",
            path.as_ref().display(),
            data.len()
        )));
    }
    let header = npy_header(dtype, shape);
    let w = FileWriter::create(path)?;
    w.write_at(0, &header[..])?;
    if cfg!(target_endian = "big") {
        let le: Vec<u8> = data
            .chunks_exact(dtype.size())
            .flat_map(|c| c.iter().rev().copied())
            .collect();
        w.write_at(header.len() as u64, &le[..])?;
    } else {
        w.write_at(header.len() as u64, data)?;
    }
    w.finish(false)?;
    Ok(())
}

/// Where [`Simulation::stream_frames`] hands a batch: `(first frame, count, bytes)`.
type Sink<'a> = dyn Fn(u64, u64, &[u8]) -> Result<()> + Sync + 'a;

/// Frames per batch: about 64 MiB, at least one per thread.
fn batch_frames(frame_bytes: usize, n: u64) -> u64 {
    let k = ((64usize << 20) / frame_bytes.max(1))
        .max(rayon::current_num_threads())
        .max(1);
    (k as u64).min(n.max(1))
}

impl Simulation {
    /// Frames `f..e` as little-endian (`le`) or native `u16` bytes into `out`, in parallel;
    /// returns the saturated count.
    fn render_batch(&self, f: u64, out: &mut [u8], le: bool) -> u64 {
        let (h, w) = self.opts.frame_shape;
        out.par_chunks_mut(h * w * 2)
            .enumerate()
            .map_init(
                || (self.scratch(), vec![0u16; h * w]),
                |(s, px): &mut (Scratch, Vec<u16>), (k, dst)| {
                    let info = self.render(f + k as u64, s, px);
                    for (d, v) in dst.chunks_exact_mut(2).zip(px.iter()) {
                        d.copy_from_slice(&if le { v.to_le_bytes() } else { v.to_ne_bytes() });
                    }
                    info.saturated
                },
            )
            .sum()
    }

    /// Makes every frame batch by batch (in parallel) and hands each batch to `sink(first,
    /// count, bytes)` while the next one is made.
    pub(super) fn stream_frames(&self, le: bool, progress: &mut dyn FnMut(u64, u64), sink: &Sink<'_>) -> Result<u64> {
        let (h, w) = self.opts.frame_shape;
        let fb = h * w * 2;
        let n = self.opts.frames;
        let batch = batch_frames(fb, n);
        let cap = (batch as usize)
            .checked_mul(fb)
            .ok_or_else(|| usage("simulation: batch size overflows"))?;
        let mut cur = tiledio_io::try_alloc_zeroed(cap, "simulated frames")?;
        let mut next = tiledio_io::try_alloc_zeroed(cap, "simulated frames")?;
        let mut f = 0u64;
        let mut k = batch.min(n);
        let mut saturated = self.render_batch(f, &mut cur[..k as usize * fb], le);
        while f < n {
            let e = f + k;
            let k2 = batch.min(n - e);
            let (written, sat) = rayon::join(
                || sink(f, k, &cur[..k as usize * fb]),
                || self.render_batch(e, &mut next[..k2 as usize * fb], le),
            );
            written?;
            saturated += sat;
            progress(e, n);
            std::mem::swap(&mut cur, &mut next);
            f = e;
            k = k2;
        }
        Ok(saturated)
    }

    /// Writes every frame as a `.npy` file `(N, H, W)` of `<u2` (made in parallel, written batch
    /// by batch under a temporary name, renamed when complete); `progress(done, total)` after
    /// each batch.
    ///
    /// # Errors
    /// [`crate::PtychoError::Io`] from the write (a target that is not a regular file is
    /// refused; nothing is left at the path on error).
    pub fn write_npy(&self, path: impl AsRef<Path>, progress: &mut dyn FnMut(u64, u64)) -> Result<Written> {
        let (h, w) = self.opts.frame_shape;
        let header = npy_header(ElementType::U16, &[self.opts.frames, h as u64, w as u64]);
        self.write_file(path.as_ref(), &header, progress)
    }

    /// Writes every frame as a raw file: `N` frames of `H × W` little-endian `u16`, no header
    /// (read back with [`crate::RawStore`] and `RawLayout::new(0, (H, W), U16)`).
    ///
    /// # Errors
    /// As [`Simulation::write_npy`].
    pub fn write_raw(&self, path: impl AsRef<Path>, progress: &mut dyn FnMut(u64, u64)) -> Result<Written> {
        self.write_file(path.as_ref(), &[], progress)
    }

    fn write_file(&self, path: &Path, header: &[u8], progress: &mut dyn FnMut(u64, u64)) -> Result<Written> {
        let (h, w) = self.opts.frame_shape;
        let fb = (h * w * 2) as u64;
        let writer = FileWriter::create(path)?;
        writer.write_at(0, header)?;
        let base = header.len() as u64;
        let saturated = self.stream_frames(true, progress, &|f, _, bytes| {
            writer.write_at(base + f * fb, bytes)?;
            Ok(())
        })?;
        writer.finish(false)?;
        Ok(Written {
            frames: self.opts.frames,
            saturated,
            bytes: base + self.opts.frames * fb,
        })
    }

    /// Writes every frame as a new Zarr v3 array `(N, H, W)` of `uint16`, one chunk per frame,
    /// with the scan in its attributes (`positions_px`: `[x, y]` per frame in object pixels,
    /// `pixel_size_m`, and the options under `simulation`).
    ///
    /// # Errors
    /// [`crate::PtychoError::Zarr`] from the write (an existing non-empty path is refused; an
    /// interrupted write leaves nothing at the path).
    pub fn write_zarr(&self, path: impl AsRef<Path>, progress: &mut dyn FnMut(u64, u64)) -> Result<Written> {
        use tiledio_zarr::serde_json::{Value, json};
        let (h, w) = self.opts.frame_shape;
        let n = self.opts.frames;
        let mut spec =
            tiledio_zarr::ArraySpec::new(&[n, h as u64, w as u64], &[1, h as u64, w as u64], ElementType::U16);
        let o = &self.opts;
        let positions: Vec<Value> = self.positions.iter().map(|&(x, y)| json!([x, y])).collect();
        spec.attributes.insert("positions_px".into(), Value::Array(positions));
        spec.attributes.insert("pixel_size_m".into(), json!(o.pixel_size));
        spec.attributes.insert(
            "simulation".into(),
            json!({
                "pattern": o.pattern, "center": [o.center.0, o.center.1], "photons": o.photons,
                "dark_level": o.dark_level, "read_noise": o.read_noise, "seed": o.seed,
                "overlap": o.overlap, "probe_diameter_px": self.probe_diameter(),
                "aperture_px": o.aperture(), "step_px": self.step,
            }),
        );
        let array = tiledio_zarr::ZarrArray::create(path.as_ref(), &spec)?;
        let wopts = tiledio_zarr::WriteOptions::default();
        let saturated = self.stream_frames(false, progress, &|f, k, bytes| {
            array.write_region(&[f, 0, 0], &[k, h as u64, w as u64], bytes, &wopts)?;
            Ok(())
        })?;
        array.finish()?;
        Ok(Written {
            frames: n,
            saturated,
            bytes: n * (h * w * 2) as u64,
        })
    }

    /// Writes `n` dark frames ([`Simulation::dark_frames`]) as a `.npy` file `(n, H, W)` of
    /// `<u2`.
    ///
    /// # Errors
    /// As [`Simulation::dark_frames`] and [`write_npy_array`].
    pub fn write_dark_npy(&self, path: impl AsRef<Path>, n: u64) -> Result<Written> {
        let (h, w) = self.opts.frame_shape;
        let frames = self.dark_frames(n)?;
        let bytes: Vec<u8> = frames.iter().flat_map(|v| v.to_ne_bytes()).collect();
        write_npy_array(path, ElementType::U16, &[n, h as u64, w as u64], &bytes)?;
        Ok(Written {
            frames: n,
            saturated: 0,
            bytes: bytes.len() as u64,
        })
    }

    /// Writes the scan positions as a `.npy` file `(N, 2)` of `<f8`: `[x, y]` per frame in
    /// object pixels ([`Simulation::positions`]).
    ///
    /// # Errors
    /// As [`write_npy_array`].
    pub fn write_positions_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes: Vec<u8> = self
            .positions
            .iter()
            .flat_map(|&(x, y)| [x, y])
            .flat_map(f64::to_ne_bytes)
            .collect();
        write_npy_array(path, ElementType::F64, &[self.opts.frames, 2], &bytes)
    }
}
