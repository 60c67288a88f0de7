//! Zarr's side of the chunk geometry: which units (chunks or shards) a box touches, and the
//! [`tiledio_kernels::ChunkLayout`] (CPU and GPU gather/scatter between a row-major window and
//! unit-major staging) of a region of an array.

use crate::error::{Result, ZarrError, usage};
pub(crate) use tiledio_kernels::{ChunkLayout as Layout, fill_host as fill_pattern, ravel, unravel};

/// The layout of the region `origin + win_shape` of an array of `shape` in units of `unit`
/// (inner chunks `inner`), `esize` bytes per element, `extra_slot_bytes` after each unit.
pub(crate) fn plan(
    shape: &[u64],
    unit: &[u64],
    inner: &[u64],
    origin: &[u64],
    win_shape: &[u64],
    esize: usize,
    extra_slot_bytes: usize,
) -> Result<Layout> {
    let origin: Vec<i64> = origin
        .iter()
        .map(|&o| i64::try_from(o).map_err(|_| usage(format!("origin {o} too large"))))
        .collect::<Result<_>>()?;
    Layout::new(shape, unit, inner, &origin, win_shape, esize, extra_slot_bytes).map_err(kernel_err)
}

/// A kernel error as this crate's error.
pub(crate) fn kernel_err(e: tiledio_kernels::KernelError) -> ZarrError {
    match e {
        tiledio_kernels::KernelError::Io(e) => ZarrError::Io(e),
        other => usage(other.to_string()),
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

    #[test]
    fn cells() {
        assert_eq!(
            cells_in_box(&[10, 10], &[4, 4], &[3, 3], &[2, 6]),
            vec![0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn plan_merges_and_refuses_huge_origins() {
        let l = plan(&[4, 6, 3], &[2, 6, 3], &[2, 6, 3], &[0, 0, 0], &[4, 6, 3], 1, 0).unwrap();
        assert_eq!(l.shape(), &[4]);
        assert!(plan(&[4], &[2], &[2], &[u64::MAX], &[1], 1, 0).is_err());
    }
}
