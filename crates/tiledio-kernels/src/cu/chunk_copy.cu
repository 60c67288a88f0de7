// Gather/scatter between a row-major window of an N-d array and unit-major staging
// (tiledio_kernels::ChunkLayout), and a fill with a repeated element pattern.
//
// One block per row segment: a row is a run along the last dimension of an inner chunk
// (rb bytes), cut into segments of `seg` bytes (one segment when rb <= seg). Window cells are
// at signed origin `wo`, so a window may start before the array or end past it.
typedef unsigned long long u64;
typedef long long i64;

// p: [0] rank R, [1] element bytes, [2] slot bytes, [3] rows per unit, [4] units,
//    [5] direction (0 gather, 1 scatter), [6] fill bytes, [7] swap size (0: none),
//    [8] segment bytes, [9] segments per row, then R values each of: shape, unit, inner,
//    window origin (signed), window shape, unit grid, inner grid; then the units' linear
//    indices in the unit grid (staging slot i holds unit i), then the fill bytes.
#define HDR 10

// d[j] = s[j] for j < n, or the bytes of each `sw`-byte element reversed when sw > 1.
__device__ __forceinline__ void copy_range(unsigned char* d, const unsigned char* s, u64 n, u64 sw) {
    if (sw > 1) {
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) {
            const u64 k = j % sw;
            d[j] = s[j - k + (sw - 1 - k)];
        }
    } else if (((((u64)d) | ((u64)s) | n) & 15) == 0) {
        const uint4* s4 = (const uint4*)s;
        uint4* d4 = (uint4*)d;
        for (u64 j = threadIdx.x; j < n / 16; j += blockDim.x) d4[j] = s4[j];
    } else {
        for (u64 j = threadIdx.x; j < n; j += blockDim.x) d[j] = s[j];
    }
}

extern "C" __global__ void chunk_copy(unsigned char* win, unsigned char* staging, const u64* p,
                                      u64 total_items) {
    const int R = (int)p[0];
    const u64 esize = p[1], slot = p[2], rpu = p[3];
    const int dir = (int)p[5];
    const u64 fill_len = p[6], sw = p[7], seg = p[8], segs = p[9];
    const u64* shape = p + HDR; const u64* unit = shape + R; const u64* inner = unit + R;
    const i64* wo = (const i64*)(inner + R);
    const u64* ws = (const u64*)(wo + R); const u64* ug = ws + R; const u64* ig = ug + R;
    const u64* units = ig + R;
    const unsigned char* fill = (const unsigned char*)(units + p[4]);
    u64 rpi = 1;
    for (int d = 0; d < R - 1; ++d) rpi *= inner[d];
    const int L = R - 1;
    const u64 rb = inner[L] * esize;
    // The index arithmetic (64-bit divisions) is done once per row by thread 0 and shared:
    // done by every thread it cost more than the copy of a short row.
    __shared__ u64 sh[7];  // staging row offset, window row offset, a, va, vb, lo, hi
    for (u64 item = blockIdx.x; item < total_items; item += gridDim.x) {
        if (threadIdx.x == 0) {
            u64 row = item, lo = 0, hi = rb;
            if (segs > 1) {
                row = item / segs;
                lo = (item % segs) * seg;
                hi = lo + seg < rb ? lo + seg : rb;
            }
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
            const u64 soff = ui * slot + (ii * rpi + ri) * rb;
            bool valid = t == 0;  // a unit index past the grid has no cells in the array
            u64 off = 0;
            for (int d = 0; d < L; ++d) {
                const i64 gd = (i64)g[d];
                if (g[d] >= shape[d] || gd < wo[d] || gd >= wo[d] + (i64)ws[d]) valid = false;
                off = off * ws[d] + (u64)(gd - wo[d]);
            }
            const i64 gl = (i64)g[L];
            i64 start = gl > wo[L] ? gl : wo[L];
            i64 end = gl + (i64)inner[L];
            if (end > (i64)shape[L]) end = (i64)shape[L];
            if (end > wo[L] + (i64)ws[L]) end = wo[L] + (i64)ws[L];
            if (start >= end) valid = false;
            // row bytes [a, b) are inside the array and the window; row byte i <-> wrow[i - a]
            u64 a = 0, b = 0, woff = 0;
            if (valid) {
                off = off * ws[L] + (u64)(start - wo[L]);
                woff = off * esize;
                a = (u64)(start - gl) * esize;
                b = (u64)(end - gl) * esize;
            }
            u64 va = a > lo ? a : lo, vb = b < hi ? b : hi;
            if (!valid || va >= vb) va = vb = hi;
            sh[0] = soff; sh[1] = woff; sh[2] = a; sh[3] = va; sh[4] = vb; sh[5] = lo; sh[6] = hi;
        }
        __syncthreads();
        unsigned char* srow = staging + sh[0];
        unsigned char* wrow = win + sh[1];
        const u64 a = sh[2], va = sh[3], vb = sh[4], lo = sh[5], hi = sh[6];
        if (dir == 0) {
            for (u64 i = lo + threadIdx.x; i < va; i += blockDim.x) srow[i] = fill[i % fill_len];
            for (u64 i = vb + threadIdx.x; i < hi; i += blockDim.x) srow[i] = fill[i % fill_len];
            copy_range(srow + va, wrow + (va - a), vb - va, sw);
        } else {
            copy_range(wrow + (va - a), srow + va, vb - va, sw);
        }
        __syncthreads();  // sh is rewritten for the next row
    }
}

extern "C" __global__ void chunk_fill(unsigned char* p, u64 n, const unsigned char* fill, u64 fill_len) {
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x)
        p[i] = fill[i % fill_len];
}
