// Sobel edge filter as scikit-image defines it (skimage.filters.sobel / sobel_h / sobel_v), in
// one fused pass without shared memory: each thread computes V adjacent output columns of RPT
// consecutive rows, walking down the rows with the last three rows' smoothed and differenced
// values in registers; the V + 2 input columns of each row are read through the read-only
// cache, where the neighbouring threads' reads of the same lines hit, so every input pixel
// comes from global memory once (converted to float grey on the way). On an H200 this ran at
// 1.7x a device-to-device copy of the image (16384^2 f32), against 3.2x for the earlier
// shared-memory tile with a barrier per tile (docs/device/run-15.log, sobel_regs.py).
//
// Geometry (image coordinates): the source buffer holds a *window* (wy0, wx0, wh, ww) of an
// image of ih x iw pixels (c = 1 or 3 interleaved channels); the kernel writes the output
// rectangle (oy0, ox0, oh, ow) to dst (oh x ow floats, row-major). A neighbour's global index
// is reflected against the FULL image (scipy mode='reflect': -1 -> 0, n -> n-1), then the
// window origin is subtracted: a tile with a halo taken from its neighbours gives exactly the
// whole-image result. The host checks that every index so reached lies inside the window.
//
// Arithmetic, identical to the CPU reference (sobel.rs) bit for bit; every operation is an
// explicit round-to-nearest intrinsic, so NVRTC's FMA contraction cannot change a result:
//   grey   u8: v / 255, u16: v / 65535 (f32 division), f32: v;
//          RGB: (0.2125 r + 0.7154 g) + 0.0721 b in double from the converted channels
//          (r = v / 255 etc. in double), rounded once to float;
//   sm(r)  = (0.25 a + 0.5 b) + 0.25 c   for the pixels x-1, x, x+1 of row r;
//   d(r)   = c - a;
//   h      = sm(y+1) - sm(y-1);             (sobel_h, axis 0)
//   v      = (0.25 d(y-1) + 0.5 d(y)) + 0.25 d(y+1);   (sobel_v, axis 1)
//   mag    = sqrt(h * h + v * v) / sqrt(2)  (correctly rounded sqrt and division).
typedef long long i64;

#define BX 128  // threads per block (one row of threads)
#define RPT 64  // output rows per thread
// adjacent output columns per thread: 2 for grey input, 4 for RGB (more work per load)
#define COLS(C) ((C) == 1 ? 2 : 4)

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

// half-sample symmetric reflection of a 1-pixel halo index into [0, n)
__device__ __forceinline__ i64 reflect(i64 i, i64 n) { return i < 0 ? -i - 1 : (i >= n ? 2 * n - 1 - i : i); }

__device__ __forceinline__ float smooth(float a, float b, float c) {
    return __fadd_rn(__fadd_rn(__fmul_rn(0.25f, a), __fmul_rn(0.5f, b)), __fmul_rn(0.25f, c));
}

template <typename T, int C>
__device__ void sobel(const T* __restrict__ src, float* __restrict__ dst, i64 ih, i64 iw, i64 wy0, i64 wx0, i64 ww,
                      i64 oy0, i64 ox0, i64 oh, i64 ow, int what) {
    constexpr int V = COLS(C);
    const i64 lx0 = ((i64)blockIdx.x * BX + threadIdx.x) * V;  // first output column, in the rectangle
    if (lx0 >= ow) return;
    // the input columns x-1 .. x+V of the image, clamped to the one after the rectangle's last
    // (its halo), reflected at the image border, then made window-relative
    i64 col[V + 2];
#pragma unroll
    for (int k = 0; k < V + 2; k++) col[k] = (reflect(min(ox0 + lx0 - 1 + k, ox0 + ow), iw) - wx0) * C;
    for (i64 ly0 = (i64)blockIdx.y * RPT; ly0 < oh; ly0 += (i64)gridDim.y * RPT) {
        float sm0[V], d0[V], sm1[V], d1[V];
        {
            const T* ra = src + (reflect(oy0 + ly0 - 1, ih) - wy0) * ww * C;
            const T* rb = src + (reflect(oy0 + ly0, ih) - wy0) * ww * C;
            float a[V + 2], b[V + 2];
#pragma unroll
            for (int k = 0; k < V + 2; k++) {
                a[k] = grey<T, C>(ra + col[k]);
                b[k] = grey<T, C>(rb + col[k]);
            }
#pragma unroll
            for (int k = 0; k < V; k++) {
                sm0[k] = smooth(a[k], a[k + 1], a[k + 2]);
                d0[k] = __fsub_rn(a[k + 2], a[k]);
                sm1[k] = smooth(b[k], b[k + 1], b[k + 2]);
                d1[k] = __fsub_rn(b[k + 2], b[k]);
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
                else out = __fdiv_rn(__fsqrt_rn(__fadd_rn(__fmul_rn(h, h), __fmul_rn(v, v))), 1.41421356237309515f);
                if (lx0 + k < ow) o[k] = out;
                sm0[k] = sm1[k];
                sm1[k] = sm2;
                d0[k] = d1[k];
                d1[k] = d2;
            }
        }
    }
}

#define SOBEL(name, T, C)                                                                                           \
    extern "C" __global__ void __launch_bounds__(BX) name(const T* src, float* dst, i64 ih, i64 iw, i64 wy0,    \
                                                               i64 wx0, i64 ww, i64 oy0, i64 ox0, i64 oh, i64 ow,   \
                                                               int what) {                                          \
        sobel<T, C>(src, dst, ih, iw, wy0, wx0, ww, oy0, ox0, oh, ow, what);                                        \
    }

SOBEL(sobel_u8_c1, unsigned char, 1)
SOBEL(sobel_u8_c3, unsigned char, 3)
SOBEL(sobel_u16_c1, unsigned short, 1)
SOBEL(sobel_u16_c3, unsigned short, 3)
SOBEL(sobel_f32_c1, float, 1)
SOBEL(sobel_f32_c3, float, 3)
