//! Gather/scatter between a row-major window of an N-d array and unit-major staging, on the
//! CPU (rayon) and on the GPU (`cu/chunk_copy.cu`), with identical results.

use crate::launch::{LaunchArgs, ParamBlock};
use crate::{Result, blocks, invalid, kernel};
use rayon::prelude::*;
use tiledio_io::DisjointBytes;
use tiledio_io::gpu::DeviceBuffer;

const SRC: &str = include_str!("cu/chunk_copy.cu");
const MODULE: &str = "tiledio_chunk_copy";
/// Bytes of a row one GPU block handles (a multiple of 16, so segments stay aligned).
const GPU_SEGMENT: u64 = 16 << 10;
/// Bytes one CPU task handles (whole rows, or one segment of a longer row).
const HOST_TASK: usize = 256 << 10;
/// Host copies of at most this many bytes run on the calling thread, not in parallel.
const SEQUENTIAL_COPY: usize = 1 << 20;
/// The most dimensions the GPU kernel handles.
const MAX_RANK: usize = 16;
const HEADER: usize = 10;

/// Which way a copy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Window → staging; staging cells outside the array or the window get the fill value.
    Gather,
    /// Staging → window; only window cells inside the array are written.
    Scatter,
}

/// How the cells of an N-d array are laid out in *staging*: the array (of `shape`, row-major)
/// is cut into storage *units* (Zarr chunks or shards, TIFF tiles or strips) of shape `unit`;
/// each unit listed in a copy occupies one staging slot of [`ChunkLayout::slot_bytes`] bytes,
/// in which the unit's *inner chunks* (of shape `inner`, which divides `unit`; equal to it for
/// plain units) follow each other in C order, each in C order. Units at the array's edge are
/// stored whole: their cells past the array are padding.
///
/// The *window* is a row-major buffer holding the box of cells at `win_origin` (signed: it may
/// start before the array) of shape `win_shape` (it may reach past the array).
/// [`ChunkLayout::gather_host`] fills staging from the window (cells outside the array or the
/// window get the fill value); [`ChunkLayout::scatter_host`] writes the window's cells inside
/// the array from staging (other window cells are left as they are). The `_device` versions do
/// the same on the GPU, byte for byte. Trailing dimensions that are whole in the array, the
/// window, the unit and the inner chunk are merged into the element on construction.
///
/// ```
/// use tiledio_kernels::ChunkLayout;
/// // a 3×5 image of 2-byte elements in 2×2 tiles; window: 2×4 cells from (-1, 2)
/// let l = ChunkLayout::new(&[3, 5], &[2, 2], &[2, 2], &[-1, 2], &[2, 4], 2, 0)?;
/// assert_eq!(l.slot_bytes(), 8);
/// let tiles: Vec<u8> = (0..6 * 8).map(|i| i as u8).collect(); // all 6 tiles, tile-major
/// let mut window = vec![0xAAu8; 2 * 4 * 2];
/// l.scatter_host(&tiles, &mut window, &[0, 1, 2, 3, 4, 5])?;
/// // row -1 lies outside the image: untouched; row 0, columns 2..5: tiles 1 and 2
/// assert_eq!(&window[..8], &[0xAA; 8]);
/// assert_eq!(&window[8..], &[8, 9, 10, 11, 16, 17, 0xAA, 0xAA]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLayout {
    shape: Vec<u64>,
    unit: Vec<u64>,
    inner: Vec<u64>,
    win_origin: Vec<i64>,
    win_shape: Vec<u64>,
    esize: usize,
    slot_bytes: usize,
    unit_bytes: usize,
    swap: usize,
}

impl ChunkLayout {
    /// A layout of an array of `shape` in units of `unit` (inner chunks `inner`), a window at
    /// `win_origin` of `win_shape`, `esize` bytes per element, and `extra_slot_bytes` after each
    /// unit's data in its slot (e.g. a shard index).
    ///
    /// ```
    /// let l = tiledio_kernels::ChunkLayout::new(&[10, 8, 3], &[4, 8, 3], &[4, 8, 3], &[0, 0, 0], &[10, 8, 3], 1, 16)?;
    /// assert_eq!(l.shape(), &[10]); // whole trailing dimensions merged into the element
    /// assert_eq!(l.element_bytes(), 24);
    /// assert_eq!(l.slot_bytes(), 4 * 8 * 3 + 16);
    /// # Ok::<(), tiledio_kernels::KernelError>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] when the ranks differ or are 0 or above 16, an extent
    /// of `unit` or `inner` is 0, `inner` does not divide `unit`, `esize` is 0, or a slot, the
    /// window or a coordinate does not fit in memory or an `i64`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shape: &[u64],
        unit: &[u64],
        inner: &[u64],
        win_origin: &[i64],
        win_shape: &[u64],
        esize: usize,
        extra_slot_bytes: usize,
    ) -> Result<ChunkLayout> {
        let r = shape.len();
        if r == 0 || r > MAX_RANK || [unit.len(), inner.len(), win_origin.len(), win_shape.len()] != [r; 4] {
            return Err(invalid(format!(
                "ranks {r}, {}, {}, {}, {} (equal, 1 to {MAX_RANK})",
                unit.len(),
                inner.len(),
                win_origin.len(),
                win_shape.len()
            )));
        }
        if esize == 0 {
            return Err(invalid("element size 0"));
        }
        let limit = isize::MAX as u64;
        for d in 0..r {
            if unit[d] == 0 || inner[d] == 0 || !unit[d].is_multiple_of(inner[d]) {
                return Err(invalid(format!(
                    "dimension {d}: unit {} and inner chunk {} (non-zero, inner divides unit)",
                    unit[d], inner[d]
                )));
            }
            let end = i64::try_from(win_shape[d])
                .ok()
                .and_then(|s| win_origin[d].checked_add(s));
            if shape[d] > limit || end.is_none() {
                return Err(invalid(format!(
                    "dimension {d}: array extent {} or window {}+{} too large",
                    shape[d], win_origin[d], win_shape[d]
                )));
            }
        }
        let bytes = |v: &[u64]| {
            v.iter()
                .try_fold(esize as u64, |a, &x| a.checked_mul(x))
                .filter(|&b| b <= limit)
        };
        let unit_bytes = bytes(unit).ok_or_else(|| invalid(format!("unit {unit:?} too large")))? as usize;
        bytes(win_shape).ok_or_else(|| invalid(format!("window {win_shape:?} too large")))?;
        let slot_bytes = unit_bytes
            .checked_add(extra_slot_bytes)
            .filter(|&s| s as u64 <= limit)
            .ok_or_else(|| invalid("slot too large"))?;
        let (mut shape, mut unit, mut inner, mut wo, mut ws) = (
            shape.to_vec(),
            unit.to_vec(),
            inner.to_vec(),
            win_origin.to_vec(),
            win_shape.to_vec(),
        );
        let mut esize = esize;
        while shape.len() > 1 {
            let d = shape.len() - 1;
            if unit[d] == shape[d] && inner[d] == shape[d] && ws[d] == shape[d] && wo[d] == 0 {
                // fits: a unit (holding this whole dimension) fits in memory
                esize *= shape[d] as usize;
                shape.pop();
                unit.pop();
                inner.pop();
                wo.pop();
                ws.pop();
            } else {
                break;
            }
        }
        Ok(ChunkLayout {
            shape,
            unit,
            inner,
            win_origin: wo,
            win_shape: ws,
            esize,
            slot_bytes,
            unit_bytes,
            swap: 0,
        })
    }

    /// The same layout, reversing the bytes of every `size`-byte sample on the way (in both
    /// directions; for big-endian data). `size` 0 or 1 means no swap.
    ///
    /// ```
    /// let l = tiledio_kernels::ChunkLayout::new(&[2], &[2], &[2], &[0], &[2], 2, 0)?.with_byte_swap(2)?;
    /// let mut win = [0u8; 4];
    /// l.scatter_host(&[1, 2, 3, 4], &mut win, &[0])?;
    /// assert_eq!(win, [2, 1, 4, 3]);
    /// # Ok::<(), tiledio_kernels::KernelError>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] unless `size` divides the element size (and 16).
    pub fn with_byte_swap(mut self, size: usize) -> Result<ChunkLayout> {
        let size = if size <= 1 { 0 } else { size };
        if size > 0 && (!self.esize.is_multiple_of(size) || !16usize.is_multiple_of(size)) {
            return Err(invalid(format!("swap size {size} for {}-byte elements", self.esize)));
        }
        self.swap = size;
        Ok(self)
    }

    /// The array's shape (after merging whole trailing dimensions).
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The unit's shape (after merging).
    pub fn unit(&self) -> &[u64] {
        &self.unit
    }

    /// Bytes per (merged) element.
    pub fn element_bytes(&self) -> usize {
        self.esize
    }

    /// Bytes of one staging slot: a whole unit plus the extra bytes after it.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Bytes of a unit's data (at the start of its slot).
    pub fn unit_bytes(&self) -> usize {
        self.unit_bytes
    }

    /// Bytes of the window.
    pub fn window_bytes(&self) -> usize {
        self.win_shape.iter().product::<u64>() as usize * self.esize
    }

    /// The number of dimensions (after merging).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The unit grid's shape: units per dimension.
    ///
    /// ```
    /// let l = tiledio_kernels::ChunkLayout::new(&[10, 7], &[4, 4], &[4, 4], &[0, 0], &[1, 1], 1, 0)?;
    /// assert_eq!(l.unit_grid(), vec![3, 2]);
    /// # Ok::<(), tiledio_kernels::KernelError>(())
    /// ```
    pub fn unit_grid(&self) -> Vec<u64> {
        self.shape.iter().zip(&self.unit).map(|(s, u)| s.div_ceil(*u)).collect()
    }

    /// Inner chunks per unit, per dimension.
    pub fn inner_grid(&self) -> Vec<u64> {
        self.unit.iter().zip(&self.inner).map(|(u, c)| u / c).collect()
    }

    /// Rows (runs along the last dimension of an inner chunk) per unit.
    pub fn rows_per_unit(&self) -> u64 {
        let r = self.rank();
        self.inner_grid().iter().product::<u64>() * self.inner[..r - 1].iter().product::<u64>()
    }

    fn row_bytes(&self) -> usize {
        self.inner[self.rank() - 1] as usize * self.esize
    }

    /// Checks the buffers and units of a copy.
    fn check(&self, dir: Direction, window_len: usize, staging_len: usize, units: &[u64], fill: &[u8]) -> Result<()> {
        let need = self.window_bytes();
        if window_len < need {
            return Err(invalid(format!("window of {window_len} bytes, {need} needed")));
        }
        let need = units.len() as u128 * self.slot_bytes as u128;
        if (staging_len as u128) < need {
            return Err(invalid(format!(
                "staging of {staging_len} bytes, {need} needed for {} units",
                units.len()
            )));
        }
        let total: u64 = self.unit_grid().iter().product();
        if let Some(u) = units.iter().find(|&&u| u >= total) {
            return Err(invalid(format!("unit {u} outside the grid of {total} units")));
        }
        match dir {
            Direction::Gather => {
                if fill.is_empty() || !self.esize.is_multiple_of(fill.len()) {
                    return Err(invalid(format!(
                        "fill value of {} bytes for {}-byte elements",
                        fill.len(),
                        self.esize
                    )));
                }
            }
            Direction::Scatter => {
                // two slots of one unit would write the same window bytes at once
                let mut sorted = units.to_vec();
                sorted.sort_unstable();
                if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                    return Err(invalid(format!("unit {} listed twice", w[0])));
                }
            }
        }
        Ok(())
    }

    /// The array coordinates of the first cell of row `row` of the unit at grid coordinates
    /// `uc`, and the row's byte offset in its slot.
    /// `ig` is [`ChunkLayout::inner_grid`], `rpi` the rows per inner chunk.
    fn row_start(&self, uc: &[u64], ig: &[u64], rpi: u64, row: u64, g: &mut [u64; MAX_RANK]) -> usize {
        let r = self.rank();
        let (mut ti, mut tr) = (row / rpi, row % rpi);
        for d in (0..r).rev() {
            let ic = ti % ig[d];
            ti /= ig[d];
            let mut rc = 0;
            if d + 1 < r {
                rc = tr % self.inner[d];
                tr /= self.inner[d];
            }
            g[d] = uc[d] * self.unit[d] + ic * self.inner[d] + rc;
        }
        row as usize * self.row_bytes()
    }

    /// For a row starting at `g`: the bytes `[a, b)` of the row inside the array and the window,
    /// and the window byte offset of row byte `a`; `None` when there are none.
    #[allow(clippy::needless_range_loop)]
    fn row_window(&self, g: &[u64]) -> Option<(usize, usize, usize)> {
        let r = self.rank();
        let mut off = 0u64;
        for d in 0..r - 1 {
            let gd = g[d] as i64;
            let (o, s) = (self.win_origin[d], self.win_shape[d]);
            if g[d] >= self.shape[d] || gd < o || gd >= o + s as i64 {
                return None;
            }
            off = off * s + (gd - o) as u64;
        }
        let l = r - 1;
        let gl = g[l] as i64;
        let start = gl.max(self.win_origin[l]);
        let end = (gl + self.inner[l] as i64)
            .min(self.shape[l] as i64)
            .min(self.win_origin[l] + self.win_shape[l] as i64);
        if start >= end {
            return None;
        }
        off = off * self.win_shape[l] + (start - self.win_origin[l]) as u64;
        Some((
            off as usize * self.esize,
            (start - gl) as usize * self.esize,
            (end - gl) as usize * self.esize,
        ))
    }

    /// The CPU copy: tasks of whole rows of one unit (or one segment of a long row). A gather
    /// reads `window` and writes `staging`; a scatter reads `staging` and writes `window`.
    fn copy_host(&self, dir: Direction, src: &[u8], dst: &mut [u8], units: &[u64], fill: &[u8]) -> Result<()> {
        let rb = self.row_bytes();
        let rpu = self.rows_per_unit();
        let (rows_per_task, seg) = if rb > HOST_TASK {
            (1u64, HOST_TASK)
        } else {
            (((HOST_TASK / rb.max(1)) as u64).clamp(1, rpu.max(1)), rb)
        };
        let segs = rb.div_ceil(seg.max(1)).max(1) as u64;
        let tasks_per_unit = rpu.div_ceil(rows_per_task) * segs;
        let grid = self.unit_grid();
        let ig = self.inner_grid();
        let rpi: u64 = self.inner[..self.rank() - 1].iter().product();
        let sw = self.swap;
        // a copy of a few tasks runs on the calling thread: a parallel iterator hands its work
        // to a pool (rayon's global one outside a pool), which costs more than a small copy
        let small = dst.len().min(src.len()) <= SEQUENTIAL_COPY;
        let dst = DisjointBytes::new(dst);
        let tasks = units.len() as u64 * tasks_per_unit;
        let task = |t: u64| -> Result<()> {
            let ui = (t / tasks_per_unit) as usize;
            let rem = t % tasks_per_unit;
            let (chunk, s) = (rem / segs, (rem % segs) as usize);
            let (lo, hi) = (s * seg, ((s + 1) * seg).min(rb));
            let mut uc = [0u64; MAX_RANK];
            unravel(units[ui], &grid, &mut uc[..self.rank()]);
            let mut g = [0u64; MAX_RANK];
            let slot = ui * self.slot_bytes;
            for row in chunk * rows_per_task..((chunk + 1) * rows_per_task).min(rpu) {
                let so = slot + self.row_start(&uc, &ig, rpi, row, &mut g);
                let (va, vb, wa) = match self.row_window(&g[..self.rank()]) {
                    Some((wo, a, b)) if a.max(lo) < b.min(hi) => {
                        let va = a.max(lo);
                        (va, b.min(hi), wo + (va - a))
                    }
                    _ => (hi, hi, 0),
                };
                // SAFETY (disjointness): tasks cover disjoint staging bytes (one unit's
                // rows, or one segment of a row) and, units being distinct for scatters
                // (`check`), disjoint window bytes. The view checks the bounds.
                match dir {
                    Direction::Gather => {
                        let out = unsafe { dst.slice_mut(so + lo, hi - lo) }.map_err(tiledio_io::IoError::from)?;
                        fill_from(&mut out[..va - lo], lo, fill);
                        copy_bytes(&mut out[va - lo..vb - lo], bytes(src, wa, vb - va)?, sw);
                        fill_from(&mut out[vb - lo..], vb, fill);
                    }
                    Direction::Scatter => {
                        let out = unsafe { dst.slice_mut(wa, vb - va) }.map_err(tiledio_io::IoError::from)?;
                        copy_bytes(out, bytes(src, so + va, vb - va)?, sw);
                    }
                }
            }
            Ok(())
        };
        if small {
            (0..tasks).try_for_each(task)
        } else {
            (0..tasks).into_par_iter().try_for_each(task)
        }
    }

    /// CPU gather: staging slot `i` gets unit `units[i]` (a linear index in the unit grid,
    /// [`ChunkLayout::unit_grid`]) from `window`; cells outside the array or the window get
    /// `fill` (one element's bytes, as stored in staging). The bytes after each unit's data in
    /// its slot are left as they are.
    ///
    /// ```
    /// let l = tiledio_kernels::ChunkLayout::new(&[3], &[4], &[4], &[0], &[3], 1, 0)?;
    /// let mut st = [0u8; 4];
    /// l.gather_host(&[1, 2, 3], &mut st, &[0], &[7])?;
    /// assert_eq!(st, [1, 2, 3, 7]);
    /// # Ok::<(), tiledio_kernels::KernelError>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if a buffer is too small, a unit lies outside the grid,
    /// or `fill` is empty or does not divide the element size.
    pub fn gather_host(&self, window: &[u8], staging: &mut [u8], units: &[u64], fill: &[u8]) -> Result<()> {
        self.check(Direction::Gather, window.len(), staging.len(), units, fill)?;
        self.copy_host(Direction::Gather, window, staging, units, fill)
    }

    /// CPU scatter: the window cells inside the array and inside unit `units[i]` get their
    /// values from staging slot `i`; other window cells are left as they are.
    ///
    /// ```
    /// let l = tiledio_kernels::ChunkLayout::new(&[3], &[2], &[2], &[0], &[3], 1, 0)?;
    /// let mut win = [0u8; 3];
    /// l.scatter_host(&[5, 6, 7, 8], &mut win, &[1, 0])?;
    /// assert_eq!(win, [7, 8, 5]);
    /// # Ok::<(), tiledio_kernels::KernelError>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::KernelError::Invalid`] if a buffer is too small, a unit lies outside the grid
    /// or is listed twice.
    pub fn scatter_host(&self, staging: &[u8], window: &mut [u8], units: &[u64]) -> Result<()> {
        self.check(Direction::Scatter, window.len(), staging.len(), units, &[])?;
        self.copy_host(Direction::Scatter, staging, window, units, &[])
    }

    /// [`ChunkLayout::gather_host`] on the GPU (same arguments, same result).
    ///
    /// ```no_run
    /// use tiledio_io::gpu::DeviceBuffer;
    /// let l = tiledio_kernels::ChunkLayout::new(&[3], &[4], &[4], &[0], &[3], 1, 0)?;
    /// let win = DeviceBuffer::from_host(&[1, 2, 3])?;
    /// let mut st = DeviceBuffer::new(4)?;
    /// l.gather_device(&win, &mut st, &[0], &[7])?;
    /// assert_eq!(st.to_host_vec()?, vec![1, 2, 3, 7]);
    /// # Ok::<(), tiledio_kernels::KernelError>(())
    /// ```
    ///
    /// # Errors
    /// As [`ChunkLayout::gather_host`]; [`crate::KernelError::Io`] without a GPU or for a CUDA
    /// or NVRTC error.
    pub fn gather_device(
        &self,
        window: &DeviceBuffer,
        staging: &mut DeviceBuffer,
        units: &[u64],
        fill: &[u8],
    ) -> Result<()> {
        self.check(Direction::Gather, window.len(), staging.len(), units, fill)?;
        // SAFETY: chunk_copy(u8* win, u8* staging, const u64* p, u64 items) reads the window
        // and writes the staging only inside the bounds `check` verified; it writes nothing
        // to the window when gathering.
        unsafe {
            self.copy_device(
                Direction::Gather,
                LaunchArgs::new().read(window).write(staging),
                units,
                fill,
            )
        }
    }

    /// [`ChunkLayout::scatter_host`] on the GPU (same arguments, same result).
    ///
    /// ```no_run
    /// use tiledio_io::gpu::DeviceBuffer;
    /// let l = tiledio_kernels::ChunkLayout::new(&[3], &[2], &[2], &[0], &[3], 1, 0)?;
    /// let st = DeviceBuffer::from_host(&[5, 6, 7, 8])?;
    /// let mut win = DeviceBuffer::zeroed(3)?;
    /// l.scatter_device(&st, &mut win, &[1, 0])?;
    /// assert_eq!(win.to_host_vec()?, vec![7, 8, 5]);
    /// # Ok::<(), tiledio_kernels::KernelError>(())
    /// ```
    ///
    /// # Errors
    /// As [`ChunkLayout::scatter_host`]; [`crate::KernelError::Io`] without a GPU or for a
    /// CUDA or NVRTC error.
    pub fn scatter_device(&self, staging: &DeviceBuffer, window: &mut DeviceBuffer, units: &[u64]) -> Result<()> {
        self.check(Direction::Scatter, window.len(), staging.len(), units, &[])?;
        // SAFETY: as in gather_device, with the window written and the staging read; units
        // are distinct (checked), so no two blocks write the same window bytes.
        unsafe {
            self.copy_device(
                Direction::Scatter,
                LaunchArgs::new().write(window).read(staging),
                units,
                &[0],
            )
        }
    }

    /// Launches `chunk_copy` for `units` (nothing for none), `window_staging` holding the window
    /// and the staging buffer, in that order, read or written as `dir` says; the parameter
    /// block and item count are added here.
    ///
    /// # Safety
    /// The arguments have been checked (`check`) against these buffers, and the
    /// buffer `dir` writes is passed as written (the caller's SAFETY says why the kernel stays
    /// inside it).
    unsafe fn copy_device(
        &self,
        dir: Direction,
        window_staging: LaunchArgs<'_>,
        units: &[u64],
        fill: &[u8],
    ) -> Result<()> {
        if units.is_empty() {
            return Ok(());
        }
        let (p, items) = self.device_params(dir, units, fill)?;
        let k = kernel(MODULE, SRC, "chunk_copy")?;
        let args = window_staging.read(p.buffer()).scalar(items);
        // SAFETY: the caller's: chunk_copy(u8* win, u8* staging, const u64* p, u64 items) with
        // the buffers checked against `p`.
        unsafe { args.launch(&k, blocks(items, 1, 1 << 20), 128) }
    }

    /// The kernel's parameter block (header, geometry, units, fill) and its item count.
    fn device_params(&self, dir: Direction, units: &[u64], fill: &[u8]) -> Result<(ParamBlock, u64)> {
        let rb = self.row_bytes() as u64;
        let (seg, segs) = if rb > GPU_SEGMENT {
            (GPU_SEGMENT, rb.div_ceil(GPU_SEGMENT))
        } else {
            (rb, 1)
        };
        let rpu = self.rows_per_unit();
        let mut p: Vec<u64> = vec![
            self.rank() as u64,
            self.esize as u64,
            self.slot_bytes as u64,
            rpu,
            units.len() as u64,
            (dir == Direction::Scatter) as u64,
            fill.len() as u64,
            self.swap as u64,
            seg,
            segs,
        ];
        debug_assert_eq!(p.len(), HEADER);
        for v in [&self.shape, &self.unit, &self.inner] {
            p.extend_from_slice(v);
        }
        p.extend(self.win_origin.iter().map(|&o| o as u64));
        p.extend_from_slice(&self.win_shape);
        p.extend_from_slice(&self.unit_grid());
        p.extend_from_slice(&self.inner_grid());
        p.extend_from_slice(units);
        let mut bytes: Vec<u8> = p.iter().flat_map(|x| x.to_ne_bytes()).collect();
        bytes.extend_from_slice(fill);
        let items = rpu
            .checked_mul(units.len() as u64)
            .and_then(|r| r.checked_mul(segs))
            .ok_or_else(|| invalid("too many rows"))?;
        Ok((ParamBlock::upload(&bytes)?, items))
    }
}

/// `src[at..at + len]`, or an internal error when a planned range leaves the buffer.
fn bytes(src: &[u8], at: usize, len: usize) -> Result<&[u8]> {
    at.checked_add(len).and_then(|end| src.get(at..end)).ok_or_else(|| {
        tiledio_io::IoError::from(tiledio_io::OutOfBounds {
            offset: at,
            len,
            buf_len: src.len(),
        })
        .into()
    })
}

/// Fills `dst`, which starts at byte `from` of a row, with the repeated element `fill`
/// (`row[i] = fill[i % fill.len()]`).
fn fill_from(dst: &mut [u8], from: usize, fill: &[u8]) {
    if dst.is_empty() {
        return;
    }
    if fill.iter().all(|b| *b == fill[0]) {
        dst.fill(fill[0]);
    } else {
        for (i, b) in dst.iter_mut().enumerate() {
            *b = fill[(from + i) % fill.len()];
        }
    }
}

/// Copies `src` into `dst` (same length), reversing each `sw`-byte sample when `sw > 1`.
fn copy_bytes(dst: &mut [u8], src: &[u8], sw: usize) {
    if sw > 1 {
        for (dc, sc) in dst.chunks_exact_mut(sw).zip(src.chunks_exact(sw)) {
            for (i, b) in dc.iter_mut().enumerate() {
                *b = sc[sw - 1 - i];
            }
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Unravels a C-order linear index `i` in a grid of `shape` into `out`.
///
/// ```
/// let mut c = [0u64; 2];
/// tiledio_kernels::unravel(7, &[3, 4], &mut c);
/// assert_eq!(c, [1, 3]);
/// ```
pub fn unravel(mut i: u64, shape: &[u64], out: &mut [u64]) {
    for d in (0..shape.len()).rev() {
        out[d] = i % shape[d];
        i /= shape[d];
    }
}

/// Ravels C-order coordinates `c` in a grid of `shape`.
///
/// ```
/// assert_eq!(tiledio_kernels::ravel(&[1, 3], &[3, 4]), 7);
/// ```
pub fn ravel(c: &[u64], shape: &[u64]) -> u64 {
    c.iter().zip(shape).fold(0, |acc, (c, s)| acc * s + c)
}

/// Fills `dst` with repetitions of `pattern` (one element's bytes; no-op when empty).
///
/// ```
/// let mut b = [0u8; 5];
/// tiledio_kernels::fill_host(&mut b, &[1, 2]);
/// assert_eq!(b, [1, 2, 1, 2, 1]);
/// ```
pub fn fill_host(dst: &mut [u8], pattern: &[u8]) {
    if pattern.is_empty() {
        return;
    }
    fill_from(dst, 0, pattern);
}

/// [`fill_host`] on the GPU: fills the first `len` bytes of `dst` with repetitions of `pattern`.
///
/// ```no_run
/// let mut d = tiledio_io::gpu::DeviceBuffer::new(5)?;
/// tiledio_kernels::fill_device(&mut d, 5, &[1, 2])?;
/// assert_eq!(d.to_host_vec()?, vec![1, 2, 1, 2, 1]);
/// # Ok::<(), tiledio_kernels::KernelError>(())
/// ```
///
/// # Errors
/// [`crate::KernelError::Io`] if `len` exceeds the buffer, without a GPU, or for a CUDA error.
pub fn fill_device(dst: &mut DeviceBuffer, len: usize, pattern: &[u8]) -> Result<()> {
    if len > dst.len() {
        return Err(tiledio_io::IoError::BufferTooSmall {
            start: 0,
            end: len as u64,
            capacity: dst.len() as u64,
        }
        .into());
    }
    if len == 0 || pattern.is_empty() {
        return Ok(());
    }
    let k = kernel(MODULE, SRC, "chunk_fill")?;
    let f = ParamBlock::upload(pattern)?;
    let args = LaunchArgs::new()
        .write(dst)
        .scalar(len as u64)
        .read(f.buffer())
        .scalar(pattern.len() as u64);
    // SAFETY: chunk_fill(u8* p, u64 n, const u8* fill, u64 fill_len) writes n <= dst.len()
    // bytes and reads fill_len bytes of `f`.
    unsafe { args.launch(&k, blocks(len as u64, 256, 1 << 16), 256) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(shape: &[u64], unit: &[u64], inner: &[u64], esize: usize, extra: usize) -> ChunkLayout {
        let zeros = vec![0i64; shape.len()];
        ChunkLayout::new(shape, unit, inner, &zeros, shape, esize, extra).unwrap()
    }

    fn roundtrip(shape: &[u64], unit: &[u64], inner: &[u64], esize: usize) {
        let n = shape.iter().product::<u64>() as usize * esize;
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        let l = l(shape, unit, inner, esize, 5);
        let units: Vec<u64> = (0..l.unit_grid().iter().product()).collect();
        let mut staging = vec![0u8; units.len() * l.slot_bytes];
        l.gather_host(&data, &mut staging, &units, &vec![9u8; esize]).unwrap();
        let mut back = vec![0u8; n];
        l.scatter_host(&staging, &mut back, &units).unwrap();
        assert_eq!(back, data, "{shape:?} {unit:?} {inner:?}");
    }

    #[test]
    fn gather_scatter_roundtrip() {
        roundtrip(&[37, 45, 3], &[16, 16, 3], &[16, 16, 3], 1);
        roundtrip(&[37, 45, 3], &[32, 32, 3], &[16, 16, 3], 2);
        roundtrip(&[5, 7, 9], &[2, 4, 4], &[1, 2, 2], 4);
        roundtrip(&[100], &[64], &[16], 1);
        roundtrip(&[8, 8], &[8, 8], &[8, 8], 1);
        // rows longer than a CPU task: cut into segments
        roundtrip(&[3, 200_000], &[2, 200_000], &[2, 200_000], 2);
    }

    #[test]
    fn shard_inner_order() {
        // 4x4 array, shard 4x4, inner 2x2: staging holds the 4 inner chunks in C order.
        let data: Vec<u8> = (0..16).collect();
        let l = l(&[4, 4], &[4, 4], &[2, 2], 1, 0);
        let mut st = vec![0u8; 16];
        l.gather_host(&data, &mut st, &[0], &[0]).unwrap();
        assert_eq!(st, [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
    }

    #[test]
    fn edge_padding() {
        let l = l(&[3], &[4], &[4], 1, 0);
        let mut st = vec![0u8; 4];
        l.gather_host(&[1u8, 2, 3], &mut st, &[0], &[7]).unwrap();
        assert_eq!(st, [1, 2, 3, 7]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let l = l(&[4], &[2], &[2], 1, 0);
        let mut st = vec![0u8; 4];
        assert!(l.gather_host(&[0; 3], &mut st, &[0, 1], &[0]).is_err()); // window too small
        assert!(l.gather_host(&[0; 4], &mut st[..3], &[0, 1], &[0]).is_err()); // staging
        assert!(l.gather_host(&[0; 4], &mut st, &[0, 2], &[0]).is_err()); // unit past the grid
        assert!(l.gather_host(&[0; 4], &mut st, &[0, 1], &[]).is_err()); // no fill
        assert!(l.scatter_host(&st, &mut [0; 4], &[1, 1]).is_err()); // unit twice
        assert!(ChunkLayout::new(&[4], &[4], &[3], &[0], &[4], 1, 0).is_err());
        assert!(ChunkLayout::new(&[4, 4], &[4], &[4], &[0], &[4], 1, 0).is_err());
        assert!(ChunkLayout::new(&[4], &[4], &[4], &[i64::MAX], &[4], 1, 0).is_err());
    }

    /// A straightforward cell-by-cell model of gather and scatter.
    fn model(l: &ChunkLayout, dir: Direction, window: &mut [u8], staging: &mut [u8], units: &[u64], fill: &[u8]) {
        let r = l.rank();
        let (es, sw) = (l.esize, l.swap.max(1));
        let grid = l.unit_grid();
        let ig = l.inner_grid();
        let cells_inner: u64 = l.inner.iter().product();
        for (i, &u) in units.iter().enumerate() {
            let mut uc = vec![0; r];
            unravel(u, &grid, &mut uc);
            let cells_unit: u64 = l.unit.iter().product();
            for k in 0..cells_unit {
                let (ii, ci) = (k / cells_inner, k % cells_inner);
                let (mut icv, mut ccv) = (vec![0; r], vec![0; r]);
                unravel(ii, &ig, &mut icv);
                unravel(ci, &l.inner, &mut ccv);
                let g: Vec<u64> = (0..r)
                    .map(|d| uc[d] * l.unit[d] + icv[d] * l.inner[d] + ccv[d])
                    .collect();
                let s = i * l.slot_bytes + k as usize * es;
                let inside = (0..r).all(|d| {
                    let gd = g[d] as i64;
                    g[d] < l.shape[d] && gd >= l.win_origin[d] && gd < l.win_origin[d] + l.win_shape[d] as i64
                });
                let wc: Vec<u64> = (0..r).map(|d| (g[d] as i64 - l.win_origin[d]).max(0) as u64).collect();
                let w = if inside {
                    ravel(&wc, &l.win_shape) as usize * es
                } else {
                    0
                };
                for b in 0..es {
                    let sb = b - b % sw + (sw - 1 - b % sw);
                    match (dir, inside) {
                        (Direction::Gather, true) => staging[s + b] = window[w + sb],
                        (Direction::Gather, false) => staging[s + b] = fill[b % fill.len()],
                        (Direction::Scatter, true) => window[w + b] = staging[s + sb],
                        (Direction::Scatter, false) => {}
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn host_copies_equal_the_cell_model(
            dims in proptest::collection::vec((1u64..9, 1u64..4, 1u64..3, -4i64..6, 0u64..9), 1..4),
            es in proptest::sample::select(vec![1usize, 2, 4, 8]),
            swap in proptest::bool::ANY,
            seed in 0u64..1000,
        ) {
            let shape: Vec<u64> = dims.iter().map(|d| d.0).collect();
            let inner: Vec<u64> = dims.iter().map(|d| d.2).collect();
            let unit: Vec<u64> = dims.iter().map(|d| d.2 * d.1).collect();
            let wo: Vec<i64> = dims.iter().map(|d| d.3).collect();
            let ws: Vec<u64> = dims.iter().map(|d| d.4).collect();
            let mut l = ChunkLayout::new(&shape, &unit, &inner, &wo, &ws, es, 3).unwrap();
            if swap {
                l = l.with_byte_swap(es).unwrap();
            }
            let total: u64 = l.unit_grid().iter().product();
            let units: Vec<u64> = (0..total).rev().filter(|u| (u + seed) % 3 != 0).collect();
            let mut rng = seed | 1;
            let mut noise = |n: usize| -> Vec<u8> {
                (0..n).map(|_| { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng as u8 }).collect()
            };
            let fill: Vec<u8> = noise(es);
            let window = noise(l.window_bytes());
            let staging0 = noise(units.len() * l.slot_bytes);
            let (mut st_a, mut st_b) = (staging0.clone(), staging0.clone());
            l.gather_host(&window, &mut st_a, &units, &fill).unwrap();
            model(&l, Direction::Gather, &mut window.clone(), &mut st_b, &units, &fill);
            proptest::prop_assert_eq!(&st_a, &st_b);
            let (mut w_a, mut w_b) = (window.clone(), window.clone());
            l.scatter_host(&staging0, &mut w_a, &units).unwrap();
            model(&l, Direction::Scatter, &mut w_b, &mut staging0.clone(), &units, &fill);
            proptest::prop_assert_eq!(w_a, w_b);
        }
    }
}
