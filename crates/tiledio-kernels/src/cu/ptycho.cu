// Fused ptychography frame preprocessing: dark subtraction (clamped to 0 per pixel, or after
// binning), crop to an S x S window about a centre (zero outside the frame), optional flat-field
// divide and bad-pixel mask (folded on the host into one `div` window: 0 = pixel contributes
// nothing, else the pixel is divided by it), B x B rebin by sum or mean, orientation (transpose,
// then flip up-down, then flip left-right) and conversion to f32, u32 or u16 (rounded half to
// even, saturated and counted).
//
// The input holds `rows` rows (frame rows row0 .. row0 + rows) of each of `nf` frames of width
// W, frame after frame. One thread per output pixel of a frame; a block's threads cover
// consecutive output pixels, so a warp reads consecutive input columns (coalesced), and each
// thread walks the frames of its frame group, reusing its index arithmetic. The arithmetic and
// its order are exactly those of the CPU reference (`ptycho.rs`): for each input pixel of the
// bin in row-major order, p = (float)raw - dark; clamp-first: p = p > 0 ? p : 0; with div:
// skip the pixel when !(d > 0), else p = p / d; s += p. Then bin-then-clamp: s = s > 0 ? s : 0;
// mean: s = s / (float)(B * B). No fast math, no contraction (there is no multiply-add).
typedef unsigned long long u64;
typedef unsigned int u32;
typedef long long i64;

template <typename T> __device__ __forceinline__ float load(const T* p) { return (float)__ldg(p); }

template <typename O> __device__ __forceinline__ O convert(float s, u32& sat);
template <> __device__ __forceinline__ float convert<float>(float s, u32&) { return s; }
template <> __device__ __forceinline__ u32 convert<u32>(float s, u32& sat) {
    const float r = rintf(s);
    if (!(r > 0.0f)) return 0u;
    if (r >= 4294967296.0f) { sat++; return 0xffffffffu; }
    return (u32)r;
}
template <> __device__ __forceinline__ unsigned short convert<unsigned short>(float s, u32& sat) {
    const float r = rintf(s);
    if (!(r > 0.0f)) return 0;
    if (r > 65535.0f) { sat++; return 0xffff; }
    return (unsigned short)r;
}

// One thread's share of the work: the output pixel it computes and the frames it walks.
struct Pixel {
    u32 nn;       // output pixels per frame (n * n)
    u32 by, bx;   // the bin (row, column) the thread sums, before orientation
    u32 o;        // where that bin lands in the output frame, after orientation
    u32 f0, f1;   // the frames of the thread's frame group, [f0, f1)
    u64 fstride;  // input elements per frame (rows * W)
};

// Fills `px` for this thread; false when the thread has no output pixel (its block is the
// last of a frame group and the pixels ran out), in which case it has nothing to do.
// flags: 4 = transpose, 8 = flip up-down, 16 = flip left-right
__device__ __forceinline__ bool output_pixel(u32 nf, u32 n, u32 W, u32 rows, u32 flags, u32 pixel_blocks,
                                             u32 frames_per_group, Pixel& px) {
    px.nn = n * n;
    const u32 pb = blockIdx.x % pixel_blocks;
    const u32 group = blockIdx.x / pixel_blocks;
    const u32 r = pb * blockDim.x + threadIdx.x;
    if (r >= px.nn) return false;
    px.by = r / n;
    px.bx = r - px.by * n;
    u32 oy = px.by, ox = px.bx;
    if (flags & 4) { oy = px.bx; ox = px.by; }
    if (flags & 8) oy = n - 1 - oy;
    if (flags & 16) ox = n - 1 - ox;
    px.o = oy * n + ox;
    px.fstride = (u64)rows * W;
    px.f0 = group * frames_per_group;
    px.f1 = min(nf, px.f0 + frames_per_group);
    return true;
}

// The end of the sum `s` of a bin of `bin_pixels` = B * B pixels, the same for every kernel:
// bin-then-clamp (unless each pixel was clamped first, flags & 1), then the mean (flags & 2).
__device__ __forceinline__ float finish(float s, u32 flags, u32 bin_pixels) {
    if (!(flags & 1)) s = s > 0.0f ? s : 0.0f;
    if (flags & 2) s = s / (float)bin_pixels;
    return s;
}

// flags: 1 = clamp each pixel first (else clamp after binning), 2 = mean (else sum),
// 4 = transpose, 8 = flip up-down, 16 = flip left-right
template <typename T, typename O>
__device__ void preprocess(const T* __restrict__ in, O* __restrict__ out, const float* __restrict__ dark,
                           const float* __restrict__ div, u64* sat_count, u32 nf, u32 n, u32 S, u32 B, i64 y0,
                           i64 x0, u32 H, u32 W, u32 row0, u32 rows, u32 flags, u32 pixel_blocks,
                           u32 frames_per_group) {
    Pixel px;
    if (!output_pixel(nf, n, W, rows, flags, pixel_blocks, frames_per_group, px)) return;
    const bool clamp_first = flags & 1;
    u32 sat = 0;
    for (u32 f = px.f0; f < px.f1; f++) {
        const T* fr = in + (u64)f * px.fstride;
        float s = 0.0f;
        for (u32 dy = 0; dy < B; dy++) {
            const u32 u = px.by * B + dy;
            const i64 y = y0 + (i64)u;
            if (y < 0 || y >= (i64)H) continue;
            const T* row = fr + (u64)(y - (i64)row0) * W;
            const float* drow = dark + (u64)u * S;
            const float* vrow = div ? div + (u64)u * S : 0;
            for (u32 dx = 0; dx < B; dx++) {
                const u32 v = px.bx * B + dx;
                const i64 x = x0 + (i64)v;
                if (x < 0 || x >= (i64)W) continue;
                float p = load(row + x) - drow[v];
                if (clamp_first) p = p > 0.0f ? p : 0.0f;
                if (vrow) {
                    const float d = vrow[v];
                    if (!(d > 0.0f)) continue;
                    p = p / d;
                }
                s += p;
            }
        }
        out[(u64)f * px.nn + px.o] = convert<O>(finish(s, flags, B * B), sat);
    }
    if (sat) atomicAdd(sat_count, (u64)sat);
}

// The same for a bin of BB x BB known at compile time (1, 2 or 4): each thread keeps its bin's
// dark and div values and input offsets in registers (read once, not once per frame), and
// walks its frames four at a time so more loads are in flight per thread (the kernel is bound
// by memory latency, not arithmetic). Same arithmetic in the same order as above.
template <typename T, typename O, int BB>
__device__ void preprocess_bin(const T* __restrict__ in, O* __restrict__ out, const float* __restrict__ dark,
                               const float* __restrict__ div, u64* sat_count, u32 nf, u32 n, u32 S, i64 y0,
                               i64 x0, u32 H, u32 W, u32 row0, u32 rows, u32 flags, u32 pixel_blocks,
                               u32 frames_per_group) {
    Pixel px;
    if (!output_pixel(nf, n, W, rows, flags, pixel_blocks, frames_per_group, px)) return;
    const bool clamp_first = flags & 1;
    // the bin's pixels, row-major; a pixel outside the frame, or with a div that is not > 0,
    // contributes nothing (valid = false)
    float dk[BB * BB], dv[BB * BB];
    u64 off[BB * BB];
    bool valid[BB * BB];
#pragma unroll
    for (int dy = 0; dy < BB; dy++) {
#pragma unroll
        for (int dx = 0; dx < BB; dx++) {
            const int k = dy * BB + dx;
            const u32 u = px.by * BB + dy, v = px.bx * BB + dx;
            const i64 y = y0 + (i64)u, x = x0 + (i64)v;
            valid[k] = y >= 0 && y < (i64)H && x >= 0 && x < (i64)W;
            off[k] = valid[k] ? (u64)(y - (i64)row0) * W + (u64)x : 0;
            dk[k] = dark[(u64)u * S + v];
            dv[k] = div ? div[(u64)u * S + v] : 1.0f;
            if (div && !(dv[k] > 0.0f)) valid[k] = false;
        }
    }
    u32 sat = 0;
#pragma unroll 4
    for (u32 f = px.f0; f < px.f1; f++) {
        const T* fr = in + (u64)f * px.fstride;
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < BB * BB; k++) {
            if (!valid[k]) continue;
            float p = load(fr + off[k]) - dk[k];
            if (clamp_first) p = p > 0.0f ? p : 0.0f;
            if (div) p = p / dv[k];
            s += p;
        }
        out[(u64)f * px.nn + px.o] = convert<O>(finish(s, flags, BB * BB), sat);
    }
    if (sat) atomicAdd(sat_count, (u64)sat);
}

#define PRE_BIN(name, T, O, BB)                                                                                \
    extern "C" __global__ void name(const T* in, O* out, const float* dark, const float* div, u64* sat, u32 nf, \
                                    u32 n, u32 S, u32, i64 y0, i64 x0, u32 H, u32 W, u32 row0, u32 rows,       \
                                    u32 flags, u32 pixel_blocks, u32 frames_per_group) {                       \
        preprocess_bin<T, O, BB>(in, out, dark, div, sat, nf, n, S, y0, x0, H, W, row0, rows, flags,           \
                                 pixel_blocks, frames_per_group);                                              \
    }
#define PRE_BINS(T, O, tn, on)                \
    PRE_BIN(ptycho_b1_##tn##_##on, T, O, 1) \
    PRE_BIN(ptycho_b2_##tn##_##on, T, O, 2) \
    PRE_BIN(ptycho_b4_##tn##_##on, T, O, 4)

PRE_BINS(unsigned char, float, u8, f32)
PRE_BINS(unsigned char, u32, u8, u32)
PRE_BINS(unsigned char, unsigned short, u8, u16)
PRE_BINS(unsigned short, float, u16, f32)
PRE_BINS(unsigned short, u32, u16, u32)
PRE_BINS(unsigned short, unsigned short, u16, u16)
PRE_BINS(u32, float, u32, f32)
PRE_BINS(u32, u32, u32, u32)
PRE_BINS(u32, unsigned short, u32, u16)
PRE_BINS(float, float, f32, f32)
PRE_BINS(float, u32, f32, u32)
PRE_BINS(float, unsigned short, f32, u16)

#define PRE(name, T, O)                                                                                        \
    extern "C" __global__ void name(const T* in, O* out, const float* dark, const float* div, u64* sat, u32 nf, \
                                    u32 n, u32 S, u32 B, i64 y0, i64 x0, u32 H, u32 W, u32 row0, u32 rows,     \
                                    u32 flags, u32 pixel_blocks, u32 frames_per_group) {                       \
        preprocess<T, O>(in, out, dark, div, sat, nf, n, S, B, y0, x0, H, W, row0, rows, flags, pixel_blocks,  \
                         frames_per_group);                                                                    \
    }

PRE(ptycho_u8_f32, unsigned char, float)
PRE(ptycho_u8_u32, unsigned char, u32)
PRE(ptycho_u8_u16, unsigned char, unsigned short)
PRE(ptycho_u16_f32, unsigned short, float)
PRE(ptycho_u16_u32, unsigned short, u32)
PRE(ptycho_u16_u16, unsigned short, unsigned short)
PRE(ptycho_u32_f32, u32, float)
PRE(ptycho_u32_u32, u32, u32)
PRE(ptycho_u32_u16, u32, unsigned short)
PRE(ptycho_f32_f32, float, float)
PRE(ptycho_f32_u32, float, u32)
PRE(ptycho_f32_u16, float, unsigned short)
