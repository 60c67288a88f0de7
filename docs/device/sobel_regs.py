"""Times a register-only Sobel (no shared memory: each thread walks down RPT rows of V adjacent
columns, the three input columns it needs read through the read-only cache, the last three rows'
smoothed and differenced values kept in registers) against the shipped sobel.cu, on a
device-resident N x N float32 image and an RGB u8 one, beside a device-to-device copy (the
memory-bound limit) and cupyx.scipy.ndimage. Outputs are checked bit for bit against the shipped
kernel (same arithmetic). Usage: python3 sobel_regs.py SOBEL_CU [N]"""
import sys, time
import numpy as np, cupy as cp

shipped = open(sys.argv[1]).read()
n = int(sys.argv[2]) if len(sys.argv) > 2 else 16384

REGS = r"""
typedef long long i64;
__device__ __forceinline__ float to_float(unsigned char v) { return __fdiv_rn((float)v, 255.0f); }
__device__ __forceinline__ float to_float(unsigned short v) { return __fdiv_rn((float)v, 65535.0f); }
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ double to_double(unsigned char v) { return __ddiv_rn((double)v, 255.0); }
__device__ __forceinline__ double to_double(unsigned short v) { return __ddiv_rn((double)v, 65535.0); }
__device__ __forceinline__ double to_double(float v) { return (double)v; }
template <typename T, int C> __device__ __forceinline__ float grey(const T* __restrict__ p) {
    if (C == 1) return to_float(__ldg(p));
    const double r = to_double(__ldg(p)), g = to_double(__ldg(p + 1)), b = to_double(__ldg(p + 2));
    return (float)__dadd_rn(__dadd_rn(__dmul_rn(0.2125, r), __dmul_rn(0.7154, g)), __dmul_rn(0.0721, b));
}
__device__ __forceinline__ i64 reflect(i64 i, i64 n) { return i < 0 ? -i - 1 : (i >= n ? 2 * n - 1 - i : i); }
__device__ __forceinline__ float smooth(float a, float b, float c) {
    return __fadd_rn(__fadd_rn(__fmul_rn(0.25f, a), __fmul_rn(0.5f, b)), __fmul_rn(0.25f, c));
}
// V adjacent output columns per thread, RPT rows
template <typename T, int C, int V, int RPT>
__device__ void sobel_regs(const T* __restrict__ src, float* __restrict__ dst, i64 ih, i64 iw, i64 wy0, i64 wx0,
                           i64 ww, i64 oy0, i64 ox0, i64 oh, i64 ow, int what) {
    const i64 lx0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (lx0 >= ow) return;
    i64 col[V + 2];
#pragma unroll
    for (int k = 0; k < V + 2; k++) col[k] = (reflect(min(ox0 + lx0 - 1 + k, ox0 + ow), iw) - wx0) * C;
    const i64 rows_per_block_row = (i64)blockDim.y * RPT;
    for (i64 ly0 = ((i64)blockIdx.y * blockDim.y + threadIdx.y) * RPT; ly0 < oh; ly0 += (i64)gridDim.y * rows_per_block_row) {
        float sm0[V], d0[V], sm1[V], d1[V];
        {
            const T* ra = src + (reflect(oy0 + ly0 - 1, ih) - wy0) * ww * C;
            const T* rb = src + (reflect(oy0 + ly0, ih) - wy0) * ww * C;
            float a[V + 2], b[V + 2];
#pragma unroll
            for (int k = 0; k < V + 2; k++) { a[k] = grey<T, C>(ra + col[k]); b[k] = grey<T, C>(rb + col[k]); }
#pragma unroll
            for (int k = 0; k < V; k++) {
                sm0[k] = smooth(a[k], a[k + 1], a[k + 2]); d0[k] = __fsub_rn(a[k + 2], a[k]);
                sm1[k] = smooth(b[k], b[k + 1], b[k + 2]); d1[k] = __fsub_rn(b[k + 2], b[k]);
            }
        }
#pragma unroll 4
        for (int r = 0; r < RPT; r++) {
            const i64 ly = ly0 + r;
            if (ly >= oh) break;
            const T* rc = src + (reflect(min(oy0 + ly + 1, oy0 + oh), ih) - wy0) * ww * C;
            float c[V + 2];
#pragma unroll
            for (int k = 0; k < V + 2; k++) c[k] = grey<T, C>(rc + col[k]);
            float* o = dst + ly * ow + lx0;
#pragma unroll
            for (int k = 0; k < V; k++) {
                const float sm2 = smooth(c[k], c[k + 1], c[k + 2]);
                const float d2 = __fsub_rn(c[k + 2], c[k]);
                const float h = __fsub_rn(sm2, sm0[k]);
                const float v = smooth(d0[k], d1[k], d2);
                float out;
                if (what == 1) out = h;
                else if (what == 2) out = v;
                else out = HYPOT;
                if (lx0 + k < ow) o[k] = out;
                sm0[k] = sm1[k]; sm1[k] = sm2; d0[k] = d1[k]; d1[k] = d2;
            }
        }
    }
}
#define K(name, T, C) extern "C" __global__ void name(const T* src, float* dst, i64 ih, i64 iw, i64 wy0, i64 wx0, \
    i64 ww, i64 oy0, i64 ox0, i64 oh, i64 ow, int what) { sobel_regs<T, C, VV, RR>(src, dst, ih, iw, wy0, wx0, ww, oy0, ox0, oh, ow, what); }
K(regs_f32_c1, float, 1)
K(regs_u8_c3, unsigned char, 3)
"""
EXACT = "__fdiv_rn(__fsqrt_rn(__fadd_rn(__fmul_rn(h, h), __fmul_rn(v, v))), 1.41421356237309515f)"
HALF = "__fsqrt_rn(__fmul_rn(__fadd_rn(__fmul_rn(h, h), __fmul_rn(v, v)), 0.5f))"


def bench(fn, reps=20):
    fn(); cp.cuda.runtime.deviceSynchronize()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); cp.cuda.runtime.deviceSynchronize(); ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2] * 1e3


I = np.int64
g = cp.random.random((n, n), dtype=cp.float32)
rgb = cp.random.randint(0, 256, (n, n, 3), dtype=cp.uint8)
out = cp.empty_like(g)
print(f"D2D copy {n}x{n} f32: {bench(lambda: out.__setitem__(slice(None), g)):.3f} ms")
rgb_copy = cp.empty_like(rgb)
print(f"D2D copy {n}x{n} RGB u8: {bench(lambda: rgb_copy.__setitem__(slice(None), rgb)):.3f} ms")


def args(src, o):
    return (src, o, I(n), I(n), I(0), I(0), I(n), I(0), I(0), I(n), I(n), np.int32(0))


m0 = cp.RawModule(code=shipped, options=("--std=c++17",))
refs = {}
for kname, src in [("sobel_f32_c1", g), ("sobel_u8_c3", rgb)]:
    k = m0.get_function(kname)
    o = cp.empty((n, n), cp.float32)
    grid = ((n + 31) // 32, min((n + 63) // 64, 65535), 1)
    t = bench(lambda: k(grid, (32, 8, 1), args(src, o)))
    refs[kname] = o
    print(f"shipped {kname:<14} {t:.3f} ms")

for v in (1, 2, 4):
    for rpt in (16, 32, 64):
        for bx, by in ((128, 1), (64, 2), (32, 4)):
            code = REGS.replace("VV", str(v)).replace("RR", str(rpt)).replace("HYPOT", EXACT)
            m = cp.RawModule(code=code, options=("--std=c++17",))
            line = f"regs V{v} RPT{rpt} block {bx}x{by}:"
            for kname, src, ref in [("regs_f32_c1", g, refs["sobel_f32_c1"]), ("regs_u8_c3", rgb, refs["sobel_u8_c3"])]:
                k = m.get_function(kname)
                o = cp.empty((n, n), cp.float32)
                grid = ((n + bx * v - 1) // (bx * v), min((n + by * rpt - 1) // (by * rpt), 65535), 1)
                t = bench(lambda: k(grid, (bx, by, 1), args(src, o)))
                same = bool(cp.array_equal(o, ref))
                line += f"  {kname[5:]} {t:.3f} ms{'' if same else ' DIFFERS'}"
            print(line, flush=True)
