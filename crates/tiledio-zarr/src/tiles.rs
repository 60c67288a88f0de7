//! [`TileWriter`]: write an array tile by tile, in any order and alignment.

use crate::array::{WriteOptions, ZarrArray};
use crate::error::{Result, usage};
use crate::layout;
use std::collections::HashMap;
use tiledio_io::Source;

struct Pending {
    origin: Vec<u64>,
    shape: Vec<u64>,
    buf: Vec<u8>,
    remaining: u64,
}

/// Writes an array from tiles that arrive in any order, of any size and alignment (a tiled
/// pipeline streaming its results). Each storage unit (chunk, or shard) is buffered until all
/// its elements have arrived, then written; memory is bounded by the units in progress, not by
/// the image. Tiles must not overlap. Units never completed are written by
/// [`TileWriter::finish`] with the fill value where no tile came.
///
/// ```
/// use tiledio_zarr::{ArraySpec, DataType, TileWriter, ZarrArray};
/// # let dir = tempfile::tempdir()?;
/// let a = ZarrArray::create(dir.path().join("t.zarr"), &ArraySpec::new(&[10, 10], &[4, 4], DataType::U8))?;
/// let mut w = TileWriter::new(&a, Default::default());
/// w.write_tile(&[0, 0], &[10, 5], &[1u8; 50][..])?;
/// w.write_tile(&[0, 5], &[10, 5], &[2u8; 50][..])?;
/// w.finish()?;
/// let a = a.finish()?;
/// assert_eq!(a.read_to_vec()?[..10], [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TileWriter<'a> {
    array: &'a ZarrArray,
    opts: WriteOptions,
    pending: HashMap<u64, Pending>,
    ready: Vec<Pending>,
    ready_bytes: usize,
}

impl<'a> TileWriter<'a> {
    /// A writer for `array`.
    pub fn new(array: &'a ZarrArray, opts: WriteOptions) -> TileWriter<'a> {
        TileWriter {
            array,
            opts,
            pending: HashMap::new(),
            ready: Vec::new(),
            ready_bytes: 0,
        }
    }

    /// Units buffered now (for watching memory use).
    pub fn units_in_progress(&self) -> usize {
        self.pending.len() + self.ready.len()
    }

    /// Adds a tile (C order; GPU tiles are copied to the host first).
    ///
    /// # Errors
    /// [`crate::ZarrError::Usage`] for a tile outside the array or of the wrong size; write
    /// errors when completed units are flushed.
    pub fn write_tile<'s>(&mut self, origin: &[u64], shape: &[u64], src: impl Into<Source<'s>>) -> Result<()> {
        let a = self.array;
        let host_copy;
        let data: &[u8] = match src.into() {
            Source::Host(b) => b,
            Source::Device(d) => {
                host_copy = d.to_host_vec()?;
                &host_copy
            }
        };
        let r = a.shape().len();
        let esize = a.element_size();
        if origin.len() != r
            || shape.len() != r
            || (0..r).any(|d| origin[d].checked_add(shape[d]).is_none_or(|e| e > a.shape()[d]))
        {
            return Err(usage(format!(
                "tile {origin:?}+{shape:?} lies outside array shape {:?}",
                a.shape()
            )));
        }
        if data.len() != shape.iter().product::<u64>() as usize * esize {
            return Err(usage(format!("tile of {} bytes for shape {shape:?}", data.len())));
        }
        let unit = a.shard_shape().unwrap_or(a.chunk_shape()).to_vec();
        let grid: Vec<u64> = a.shape().iter().zip(&unit).map(|(s, u)| s.div_ceil(*u)).collect();
        for u in layout::cells_in_box(a.shape(), &unit, origin, shape) {
            let p = self.pending.entry(u).or_insert_with(|| {
                let mut c = vec![0u64; r];
                layout::unravel(u, &grid, &mut c);
                let uo: Vec<u64> = (0..r).map(|d| c[d] * unit[d]).collect();
                let us: Vec<u64> = (0..r).map(|d| unit[d].min(a.shape()[d] - uo[d])).collect();
                let n = us.iter().product::<u64>();
                let mut buf = vec![0u8; n as usize * esize];
                layout::fill_pattern(&mut buf, a.fill_bytes());
                Pending {
                    origin: uo,
                    shape: us,
                    buf,
                    remaining: n,
                }
            });
            // The intersection of tile and unit, copied from the tile window to the unit window.
            let lo: Vec<u64> = (0..r).map(|d| origin[d].max(p.origin[d])).collect();
            let hi: Vec<u64> = (0..r)
                .map(|d| (origin[d] + shape[d]).min(p.origin[d] + p.shape[d]))
                .collect();
            let box_shape: Vec<u64> = (0..r).map(|d| hi[d] - lo[d]).collect();
            copy_box(
                data, origin, shape, &mut p.buf, &p.origin, &p.shape, &lo, &box_shape, esize,
            );
            p.remaining = p.remaining.saturating_sub(box_shape.iter().product());
            if p.remaining == 0
                && let Some(p) = self.pending.remove(&u)
            {
                self.ready_bytes += p.buf.len();
                self.ready.push(p);
            }
        }
        if self.ready_bytes >= self.opts.batch_bytes.min(256 << 20)
            || self.ready.len() >= rayon::current_num_threads().max(4)
        {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let ready = std::mem::take(&mut self.ready);
        self.ready_bytes = 0;
        // Each unit is its own aligned region; write them in parallel.
        use rayon::prelude::*;
        ready
            .par_iter()
            .try_for_each(|p| self.array.write_region(&p.origin, &p.shape, &p.buf, &self.opts))
    }

    /// Writes every buffered unit (incomplete ones with the fill value where no tile came).
    ///
    /// # Errors
    /// Write errors.
    pub fn finish(mut self) -> Result<()> {
        // Unwritten elements of incomplete units hold the fill value already.
        let pending: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        self.ready.extend(pending);
        self.flush()
    }
}

/// Copies the box `[lo, lo+box_shape)` from one row-major window to another.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_box(
    src: &[u8],
    so: &[u64],
    ss: &[u64],
    dst: &mut [u8],
    dorig: &[u64],
    ds: &[u64],
    lo: &[u64],
    box_shape: &[u64],
    esize: usize,
) {
    let r = lo.len();
    if box_shape.contains(&0) {
        return;
    }
    let run = box_shape[r - 1] as usize * esize;
    let rows: u64 = box_shape[..r - 1].iter().product();
    let mut c = vec![0u64; r.saturating_sub(1)];
    for i in 0..rows {
        layout::unravel(i, &box_shape[..r - 1], &mut c);
        let (mut s_off, mut d_off) = (0u64, 0u64);
        for d in 0..r {
            let g = lo[d] + if d + 1 < r { c[d] } else { 0 };
            s_off = s_off * ss[d] + (g - so[d]);
            d_off = d_off * ds[d] + (g - dorig[d]);
        }
        let (s, d) = (s_off as usize * esize, d_off as usize * esize);
        dst[d..d + run].copy_from_slice(&src[s..s + run]);
    }
}
