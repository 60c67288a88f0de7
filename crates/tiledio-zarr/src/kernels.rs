//! The GPU side of [`crate::layout`]: one NVRTC kernel that gathers a row-major window into
//! chunk-major staging (or scatters it back), and one that fills a buffer with a fill value.

use crate::error::{Result, usage};
use crate::layout::{Direction, Layout};
use std::ffi::c_void;
use tiledio_io::gpu::{self, DeviceBuffer};

const SRC: &str = r#"
typedef unsigned long long u64;
extern "C" __global__ void zarr_copy(unsigned char* win, unsigned char* staging, const u64* p,
                                     const u64* units, const unsigned char* fill, u64 total_rows) {
    const int R = (int)p[0];
    const u64 esize = p[1], slot = p[2], rpu = p[3];
    const int dir = (int)p[5];
    const u64 fill_len = p[6];
    const u64* shape = p + 7; const u64* unit = shape + R; const u64* inner = unit + R;
    const u64* wo = inner + R; const u64* ws = wo + R; const u64* ug = ws + R; const u64* ig = ug + R;
    u64 rpi = 1;
    for (int d = 0; d < R - 1; ++d) rpi *= inner[d];
    const int L = R - 1;
    const u64 rb = inner[L] * esize;
    for (u64 row = blockIdx.x; row < total_rows; row += gridDim.x) {
        const u64 ui = row / rpu, r = row % rpu;
        const u64 ii = r / rpi, ri = r % rpi;
        u64 t = units[ui], ti = ii, tr = ri;
        u64 g[16];
        for (int d = R - 1; d >= 0; --d) {
            u64 uc = t % ug[d]; t /= ug[d];
            u64 ic = ti % ig[d]; ti /= ig[d];
            u64 rc = 0;
            if (d < L) { rc = tr % inner[d]; tr /= inner[d]; }
            g[d] = uc * unit[d] + ic * inner[d] + rc;
        }
        unsigned char* srow = staging + ui * slot + (ii * rpi + ri) * rb;
        bool valid = true;
        u64 off = 0;
        for (int d = 0; d < L; ++d) {
            if (g[d] >= shape[d] || g[d] < wo[d] || g[d] >= wo[d] + ws[d]) valid = false;
            off = off * ws[d] + (g[d] - wo[d]);
        }
        u64 start = g[L] > wo[L] ? g[L] : wo[L];
        u64 end = g[L] + inner[L];
        if (end > shape[L]) end = shape[L];
        if (end > wo[L] + ws[L]) end = wo[L] + ws[L];
        if (start >= end) valid = false;
        u64 a = 0, b = 0;
        unsigned char* wrow = win;
        if (valid) {
            off = off * ws[L] + (start - wo[L]);
            wrow = win + off * esize;
            a = (start - g[L]) * esize;
            b = (end - g[L]) * esize;
        }
        const bool vec = valid && a == 0 && b == rb &&
            ((((u64)wrow) | ((u64)srow) | rb) & 15) == 0;
        if (dir == 0) {
            if (vec) {
                const uint4* s = (const uint4*)wrow; uint4* d = (uint4*)srow;
                for (u64 i = threadIdx.x; i < rb / 16; i += blockDim.x) d[i] = s[i];
            } else {
                for (u64 i = threadIdx.x; i < rb; i += blockDim.x)
                    srow[i] = (i >= a && i < b) ? wrow[i - a] : fill[i % fill_len];
            }
        } else if (valid) {
            if (vec) {
                const uint4* s = (const uint4*)srow; uint4* d = (uint4*)wrow;
                for (u64 i = threadIdx.x; i < rb / 16; i += blockDim.x) d[i] = s[i];
            } else {
                for (u64 i = a + threadIdx.x; i < b; i += blockDim.x) wrow[i - a] = srow[i];
            }
        }
    }
}

extern "C" __global__ void zarr_fill(unsigned char* p, u64 n, const unsigned char* fill, u64 fill_len) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        p[i] = fill[i % fill_len];
}
"#;

fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// GPU gather/scatter between `window` and `staging` (see [`Layout::copy_host`]).
pub(crate) fn copy_device(
    l: &Layout,
    dir: Direction,
    window: u64,
    window_len: usize,
    staging: &DeviceBuffer,
    units: &[u64],
    fill: &[u8],
) -> Result<()> {
    if units.is_empty() {
        return Ok(());
    }
    let r = l.rank();
    if r > 16 {
        return Err(usage("GPU copies handle at most 16 dimensions"));
    }
    let need_win = l.win_shape.iter().product::<u64>() as usize * l.esize;
    if window_len < need_win || staging.len() < units.len() * l.slot_bytes {
        return Err(usage(format!(
            "GPU buffer too small: window {window_len} < {need_win} or staging {} < {}",
            staging.len(),
            units.len() * l.slot_bytes
        )));
    }
    let g = gpu::gpu()?;
    let k = g.compile("tiledio_zarr_copy", SRC)?.function("zarr_copy")?;
    let rpu = l.rows_per_unit();
    let mut params = vec![
        r as u64,
        l.esize as u64,
        l.slot_bytes as u64,
        rpu,
        units.len() as u64,
        (dir == Direction::Scatter) as u64,
        fill.len() as u64,
    ];
    for v in [
        &l.shape,
        &l.unit,
        &l.inner,
        &l.win_origin,
        &l.win_shape,
        &l.unit_grid(),
        &l.inner_grid(),
    ] {
        params.extend_from_slice(v);
    }
    let p = DeviceBuffer::from_host(&u64_bytes(&params))?;
    let u = DeviceBuffer::from_host(&u64_bytes(units))?;
    let f = DeviceBuffer::from_host(fill)?;
    let total_rows = rpu * units.len() as u64;
    let (mut a0, mut a1, mut a2, mut a3, mut a4, mut a5) = (
        window,
        staging.device_ptr(),
        p.device_ptr(),
        u.device_ptr(),
        f.device_ptr(),
        total_rows,
    );
    let mut args: [*mut c_void; 6] = [
        (&raw mut a0).cast(),
        (&raw mut a1).cast(),
        (&raw mut a2).cast(),
        (&raw mut a3).cast(),
        (&raw mut a4).cast(),
        (&raw mut a5).cast(),
    ];
    let blocks = total_rows.clamp(1, 1 << 20) as u32;
    // SAFETY: argument types match the kernel (five pointers, one u64); the buffers were checked
    // to hold every byte the kernel touches; `p`, `u`, `f` live until the synchronize below.
    unsafe { k.launch((blocks, 1, 1), (128, 1, 1), 0, &mut args)? };
    g.synchronize()?;
    Ok(())
}

/// Fills `len` bytes at device address `ptr` with repetitions of `fill`.
pub(crate) fn fill_device(ptr: u64, len: usize, fill: &[u8]) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let g = gpu::gpu()?;
    let k = g.compile("tiledio_zarr_copy", SRC)?.function("zarr_fill")?;
    let f = DeviceBuffer::from_host(fill)?;
    let (mut a0, mut a1, mut a2, mut a3) = (ptr, len as u64, f.device_ptr(), fill.len() as u64);
    let mut args: [*mut c_void; 4] = [
        (&raw mut a0).cast(),
        (&raw mut a1).cast(),
        (&raw mut a2).cast(),
        (&raw mut a3).cast(),
    ];
    let blocks = (len as u64).div_ceil(256).clamp(1, 1 << 16) as u32;
    // SAFETY: types match; the caller passes a live device range of `len` bytes.
    unsafe { k.launch((blocks, 1, 1), (256, 1, 1), 0, &mut args)? };
    g.synchronize()?;
    Ok(())
}
