// Sobel edge filter as scikit-image defines it (skimage.filters.sobel / sobel_h / sobel_v), in
// one fused pass: each block loads its output tile plus a 1-pixel halo into shared memory once
// (every input pixel read once from global memory, converted to float grey on the way), then
// each thread slides down RPT consecutive rows of one column with the last three rows'
// smoothed and differenced values in registers.
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

#define TX 32   // block width = tile width
#define TY 8    // block height
#define RPT 8   // rows per thread: a tile is TX x (TY * RPT) = 32 x 64 output pixels
#define TH (TY * RPT)
#define SW (TX + 2)
#define SH (TH + 2)

__device__ __forceinline__ float to_float(unsigned char v) { return __fdiv_rn((float)v, 255.0f); }
__device__ __forceinline__ float to_float(unsigned short v) { return __fdiv_rn((float)v, 65535.0f); }
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ double to_double(unsigned char v) { return __ddiv_rn((double)v, 255.0); }
__device__ __forceinline__ double to_double(unsigned short v) { return __ddiv_rn((double)v, 65535.0); }
__device__ __forceinline__ double to_double(float v) { return (double)v; }

template <typename T, int C> __device__ __forceinline__ float grey(const T* p) {
    if (C == 1) return to_float(p[0]);
    const double r = to_double(p[0]), g = to_double(p[1]), b = to_double(p[2]);
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
    __shared__ float s[SH][SW];
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * TX + tx;
    const i64 nbx = (ow + TX - 1) / TX, nby = (oh + TH - 1) / TH;
    for (i64 by = blockIdx.y; by < nby; by += gridDim.y) {
        for (i64 bx = blockIdx.x; bx < nbx; bx += gridDim.x) {
            const i64 ty0 = oy0 + by * TH, tx0 = ox0 + bx * TX;  // tile origin (image coordinates)
            __syncthreads();  // the previous tile's reads of s are done
            // Shared row ly holds image row ty0 - 1 + ly, column lx image column tx0 - 1 + lx;
            // both clamped to what the output rectangle needs, then reflected at the image
            // border. Each thread loads column tx (and the two halo columns 32, 33 for tx < 2)
            // of every TY-th row: no division, one load a row, coalesced along the row.
            const i64 xend = ox0 + ow, yend = oy0 + oh;
            const i64 c0 = (reflect(min(tx0 - 1 + tx, xend), iw) - wx0) * C;
            const i64 c1 = (reflect(min(tx0 - 1 + TX + tx, xend), iw) - wx0) * C;
#pragma unroll
            for (int j = 0; j < (SH + TY - 1) / TY; j++) {
                const int ly = ty + j * TY;
                if (ly < SH) {
                    const i64 gy = reflect(min(ty0 - 1 + ly, yend), ih) - wy0;
                    const T* row = src + gy * ww * C;
                    s[ly][tx] = grey<T, C>(row + c0);
                    if (tx < 2) s[ly][TX + tx] = grey<T, C>(row + c1);
                }
            }
            __syncthreads();
            const i64 x = tx0 + tx;
            if (x >= ox0 + ow) continue;  // no barrier until the next tile: safe
            const int ry = ty * RPT;      // first output row of this thread, in the tile
            float sm0 = smooth(s[ry][tx], s[ry][tx + 1], s[ry][tx + 2]);
            float d0 = __fsub_rn(s[ry][tx + 2], s[ry][tx]);
            float sm1 = smooth(s[ry + 1][tx], s[ry + 1][tx + 1], s[ry + 1][tx + 2]);
            float d1 = __fsub_rn(s[ry + 1][tx + 2], s[ry + 1][tx]);
#pragma unroll
            for (int r = 0; r < RPT; r++) {
                const i64 y = ty0 + ry + r;
                if (y >= oy0 + oh) break;
                const int l = ry + r + 2;
                const float sm2 = smooth(s[l][tx], s[l][tx + 1], s[l][tx + 2]);
                const float d2 = __fsub_rn(s[l][tx + 2], s[l][tx]);
                const float h = __fsub_rn(sm2, sm0);
                const float v = smooth(d0, d1, d2);
                float out;
                if (what == 1) out = h;
                else if (what == 2) out = v;
                else out = __fdiv_rn(__fsqrt_rn(__fadd_rn(__fmul_rn(h, h), __fmul_rn(v, v))), 1.41421356237309515f);
                dst[(y - oy0) * ow + (x - ox0)] = out;
                sm0 = sm1; sm1 = sm2; d0 = d1; d1 = d2;
            }
        }
    }
}

#define SOBEL(name, T, C)                                                                                           \
    extern "C" __global__ void __launch_bounds__(TX * TY) name(const T* src, float* dst, i64 ih, i64 iw, i64 wy0,    \
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
