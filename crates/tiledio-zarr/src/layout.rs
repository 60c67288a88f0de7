//! Geometry of moving elements between a row-major "window" of an array (a whole array, a
//! region, a tile) and chunk-major staging, where each *unit* (a chunk, or a shard) occupies one
//! slot and, inside it, the unit's *inner chunks* follow each other in C order, each in C order.
//!
//! The same description drives the CPU loops here and the GPU kernel in `kernels.rs`.

use rayon::prelude::*;

/// Whether staging is filled from the window or the window from staging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Window → staging; staging elements outside the array or window get the fill value.
    Gather,
    /// Staging → window; only elements inside both the array and the window are written.
    Scatter,
}

/// A copy plan between a window and unit staging (already normalised: trailing dimensions that
/// are whole in the array, the window, the unit and the inner chunk are merged into the element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Array shape.
    pub shape: Vec<u64>,
    /// Unit shape (chunk or shard).
    pub unit: Vec<u64>,
    /// Inner chunk shape (divides `unit`; equal to it for plain C-order unit staging).
    pub inner: Vec<u64>,
    /// Window origin and shape, in array coordinates.
    pub win_origin: Vec<u64>,
    /// Window shape.
    pub win_shape: Vec<u64>,
    /// Bytes per (merged) element.
    pub esize: usize,
    /// Bytes per staging slot (unit data plus any trailing extra bytes, e.g. a shard index).
    pub slot_bytes: usize,
}

impl Layout {
    /// Builds a plan, merging trailing dimensions where everything is whole.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shape: &[u64],
        unit: &[u64],
        inner: &[u64],
        win_origin: &[u64],
        win_shape: &[u64],
        esize: usize,
        extra_slot_bytes: usize,
    ) -> Layout {
        // Callers pass geometry checked when the array was opened or created (unit bytes fit
        // in an isize); saturating arithmetic keeps a bad call from wrapping to a small size.
        let unit_bytes =
            usize::try_from(unit.iter().fold(esize as u64, |a, &u| a.saturating_mul(u))).unwrap_or(usize::MAX);
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
                esize = esize.saturating_mul(usize::try_from(shape[d]).unwrap_or(usize::MAX));
                for v in [&mut shape, &mut unit, &mut inner, &mut wo, &mut ws] {
                    v.pop();
                }
            } else {
                break;
            }
        }
        Layout {
            shape,
            unit,
            inner,
            win_origin: wo,
            win_shape: ws,
            esize,
            slot_bytes: unit_bytes.saturating_add(extra_slot_bytes),
        }
    }

    pub(crate) fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The unit grid's shape.
    pub(crate) fn unit_grid(&self) -> Vec<u64> {
        self.shape.iter().zip(&self.unit).map(|(s, u)| s.div_ceil(*u)).collect()
    }

    /// Inner chunks per unit, per dimension.
    pub(crate) fn inner_grid(&self) -> Vec<u64> {
        self.unit.iter().zip(&self.inner).map(|(u, c)| u / c).collect()
    }

    /// Rows (runs along the last dimension of an inner chunk) per unit.
    pub(crate) fn rows_per_unit(&self) -> u64 {
        let r = self.rank();
        self.inner_grid().iter().product::<u64>() * self.inner[..r - 1].iter().product::<u64>()
    }

    fn row_bytes(&self) -> usize {
        self.inner[self.rank() - 1] as usize * self.esize
    }

    /// Calls `f(offset in slot, global start coordinates)` for every row of the unit at grid
    /// coordinates `uc`, in staging order.
    fn for_each_row(&self, uc: &[u64], mut f: impl FnMut(usize, &[u64])) {
        let r = self.rank();
        let ig = self.inner_grid();
        let n_inner: u64 = ig.iter().product();
        let rows_per_inner: u64 = self.inner[..r - 1].iter().product();
        let rb = self.row_bytes();
        let mut g = vec![0u64; r];
        let mut ic = vec![0u64; r];
        let mut rc = vec![0u64; r.saturating_sub(1)];
        for ii in 0..n_inner {
            unravel(ii, &ig, &mut ic);
            for ri in 0..rows_per_inner {
                unravel(ri, &self.inner[..r - 1], &mut rc);
                for d in 0..r {
                    let within = if d + 1 < r { rc[d] } else { 0 };
                    g[d] = uc[d] * self.unit[d] + ic[d] * self.inner[d] + within;
                }
                f(((ii * rows_per_inner + ri) as usize) * rb, &g);
            }
        }
    }

    /// For a row starting at global `g`: the window byte offset of its first valid element and
    /// the number of valid elements (inside the array and the window); `None` if none are.
    #[allow(clippy::needless_range_loop)]
    fn row_window(&self, g: &[u64]) -> Option<(usize, usize, usize)> {
        let r = self.rank();
        let mut off = 0u64;
        for d in 0..r - 1 {
            if g[d] >= self.shape[d]
                || g[d] < self.win_origin[d]
                || g[d] >= self.win_origin[d].saturating_add(self.win_shape[d])
            {
                return None;
            }
            off = off * self.win_shape[d] + (g[d] - self.win_origin[d]);
        }
        let last = r - 1;
        let start = g[last].max(self.win_origin[last]);
        let end = (g[last].saturating_add(self.inner[last]))
            .min(self.shape[last])
            .min(self.win_origin[last].saturating_add(self.win_shape[last]));
        if start >= end {
            return None;
        }
        off = off * self.win_shape[last] + (start - self.win_origin[last]);
        // (window offset, skip within the row, count)
        Some((
            off as usize * self.esize,
            (start - g[last]) as usize,
            (end - start) as usize,
        ))
    }

    /// CPU gather or scatter for the units `units` (linear indices in the unit grid); staging
    /// slot `i` belongs to `units[i]`. `fill` is the fill value of one original element.
    pub(crate) fn copy_host(&self, dir: Direction, window: WindowPtr, staging: &mut [u8], units: &[u64], fill: &[u8]) {
        let grid = self.unit_grid();
        let slot_data = self.unit.iter().product::<u64>() as usize * self.esize;
        let rb = self.row_bytes();
        staging
            .par_chunks_mut(self.slot_bytes)
            .zip(units.par_iter())
            .for_each(|(slot, &u)| {
                let mut uc = vec![0u64; self.rank()];
                unravel(u, &grid, &mut uc);
                let slot = &mut slot[..slot_data];
                self.for_each_row(&uc, |so, g| {
                    let row = &mut slot[so..so + rb];
                    match (dir, self.row_window(g)) {
                        (Direction::Gather, None) => fill_pattern(row, fill),
                        (Direction::Gather, Some((wo, skip, n))) => {
                            let (a, b) = (skip * self.esize, (skip + n) * self.esize);
                            fill_pattern(&mut row[..a], fill);
                            // SAFETY: (wo, n) lies inside the window (row_window checks the bounds),
                            // and gathers only read the window.
                            let src = unsafe { std::slice::from_raw_parts(window.ptr().add(wo), b - a) };
                            row[a..b].copy_from_slice(src);
                            fill_pattern(&mut row[b..], fill);
                        }
                        (Direction::Scatter, None) => {}
                        (Direction::Scatter, Some((wo, skip, n))) => {
                            let (a, b) = (skip * self.esize, (skip + n) * self.esize);
                            // SAFETY: inside the window; units are disjoint, so no two threads write
                            // the same window bytes.
                            unsafe { std::ptr::copy_nonoverlapping(row[a..b].as_ptr(), window.ptr().add(wo), b - a) };
                        }
                    }
                });
            });
    }
}

/// A raw pointer to window bytes shared between the CPU workers (they touch disjoint bytes).
#[derive(Clone, Copy)]
pub(crate) struct WindowPtr(pub *mut u8);

impl WindowPtr {
    /// The pointer (a method, so closures capture the whole `Send + Sync` wrapper).
    fn ptr(self) -> *mut u8 {
        self.0
    }
}
// SAFETY: workers access disjoint parts (see copy_host).
unsafe impl Send for WindowPtr {}
// SAFETY: as above.
unsafe impl Sync for WindowPtr {}

/// Unravels a C-order linear index.
pub(crate) fn unravel(mut i: u64, shape: &[u64], out: &mut [u64]) {
    for d in (0..shape.len()).rev() {
        out[d] = i % shape[d];
        i /= shape[d];
    }
}

/// Ravels C-order coordinates.
pub(crate) fn ravel(c: &[u64], shape: &[u64]) -> u64 {
    c.iter().zip(shape).fold(0, |acc, (c, s)| acc * s + c)
}

/// Fills `dst` with repetitions of `pattern` (one element's fill value).
pub(crate) fn fill_pattern(dst: &mut [u8], pattern: &[u8]) {
    if pattern.iter().all(|b| *b == pattern[0]) {
        dst.fill(pattern[0]);
    } else {
        for (i, b) in dst.iter_mut().enumerate() {
            *b = pattern[i % pattern.len()];
        }
    }
}

/// Linear indices of the grid cells of `cell` shape that intersect the box [origin, origin+shape).
pub(crate) fn cells_in_box(array_shape: &[u64], cell: &[u64], origin: &[u64], shape: &[u64]) -> Vec<u64> {
    let r = array_shape.len();
    let grid: Vec<u64> = array_shape.iter().zip(cell).map(|(s, c)| s.div_ceil(*c)).collect();
    if shape.contains(&0) {
        return Vec::new();
    }
    let lo: Vec<u64> = (0..r).map(|d| origin[d] / cell[d]).collect();
    let hi: Vec<u64> = (0..r)
        .map(|d| (origin[d] + shape[d]).div_ceil(cell[d]).min(grid[d]))
        .collect();
    let ext: Vec<u64> = (0..r).map(|d| hi[d].saturating_sub(lo[d])).collect();
    // at most as many cells as elements in the box, which the caller holds a buffer for
    let n: u64 = ext.iter().fold(1u64, |a, &e| a.saturating_mul(e));
    let mut out = Vec::new();
    // reserved when possible (a refusal is not an error: pushing grows it)
    let _ = out.try_reserve_exact(usize::try_from(n).unwrap_or(usize::MAX));
    let mut c = vec![0u64; r];
    for i in 0..n {
        unravel(i, &ext, &mut c);
        for d in 0..r {
            c[d] += lo[d];
        }
        out.push(ravel(&c, &grid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(shape: &[u64], unit: &[u64], inner: &[u64], esize: usize) {
        let n = shape.iter().product::<u64>() as usize * esize;
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        let zeros = vec![0u64; shape.len()];
        let l = Layout::new(shape, unit, inner, &zeros, shape, esize, 5);
        let units: Vec<u64> = (0..l.unit_grid().iter().product()).collect();
        let mut staging = vec![0u8; units.len() * l.slot_bytes];
        let mut src = data.clone();
        l.copy_host(
            Direction::Gather,
            WindowPtr(src.as_mut_ptr()),
            &mut staging,
            &units,
            &vec![9u8; esize],
        );
        let mut back = vec![0u8; n];
        l.copy_host(
            Direction::Scatter,
            WindowPtr(back.as_mut_ptr()),
            &mut staging,
            &units,
            &vec![9u8; esize],
        );
        assert_eq!(back, data, "{shape:?} {unit:?} {inner:?}");
    }

    #[test]
    fn gather_scatter_roundtrip() {
        roundtrip(&[37, 45, 3], &[16, 16, 3], &[16, 16, 3], 1);
        roundtrip(&[37, 45, 3], &[32, 32, 3], &[16, 16, 3], 2);
        roundtrip(&[5, 7, 9], &[2, 4, 4], &[1, 2, 2], 4);
        roundtrip(&[100], &[64], &[16], 1);
        roundtrip(&[8, 8], &[8, 8], &[8, 8], 1);
    }

    #[test]
    fn shard_inner_order() {
        // 4x4 array, shard 4x4, inner 2x2: staging holds the 4 inner chunks in C order.
        let data: Vec<u8> = (0..16).collect();
        let l = Layout::new(&[4, 4], &[4, 4], &[2, 2], &[0, 0], &[4, 4], 1, 0);
        let mut st = vec![0u8; 16];
        let mut src = data.clone();
        l.copy_host(Direction::Gather, WindowPtr(src.as_mut_ptr()), &mut st, &[0], &[0]);
        assert_eq!(st, [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
    }

    #[test]
    fn edge_padding_and_cells() {
        let l = Layout::new(&[3], &[4], &[4], &[0], &[3], 1, 0);
        let mut src = vec![1u8, 2, 3];
        let mut st = vec![0u8; 4];
        l.copy_host(Direction::Gather, WindowPtr(src.as_mut_ptr()), &mut st, &[0], &[7]);
        assert_eq!(st, [1, 2, 3, 7]);
        assert_eq!(
            cells_in_box(&[10, 10], &[4, 4], &[3, 3], &[2, 6]),
            vec![0, 1, 2, 3, 4, 5]
        );
    }
}
