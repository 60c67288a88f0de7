// Per-pixel colour kernels (RGB interleaved in, float32 out), bit-identical to colour.rs and
// macenko.rs: every value is computed in double with explicit round-to-nearest intrinsics (no
// FMA contraction) and rounded once at the end; ln and exp are our own (det_ln, det_exp), the
// same operations in the same order as in Rust, so CPU and GPU agree bit for bit.
//   gray   (0.2125 r + 0.7154 g) + 0.0721 b                       (skimage rgb2gray)
//   od     -ln(clamp(v, lo, s) / s)  lo = 1 (integers) or s/255 (f32) (cuCIM image_to_absorbance)
//   hed    max(sum_k ln(max(x_k, 1e-6)) / ln(1e-6) * M[k][j], 0)  (skimage rgb2hed)
//   hed2rgb clip(exp(-sum_j (s_j * -ln(1e-6)) * R[j][k]), 0, 1)  (skimage hed2rgb)
//   macenko  u8 = rint(clamp(exp(-ref . (f * (P . od))) * s, 0, 255))   (cuCIM normalize_colors_pca)
// with x = v / 255 (u8), v / 65535 (u16), v (f32).
typedef unsigned long long u64;
typedef long long i64;

#define ADD __dadd_rn
#define SUB __dsub_rn
#define MUL __dmul_rn
#define DIV __ddiv_rn

// c[0] x^(N-1) + ... + c[N-1] by Horner's rule, highest power first: p = c[0], then
// p = c[i] + x * p for i = 1 .. N-1, each step rounded (as the Rust polynomials are).
template <int N> __device__ __forceinline__ double horner(const double (&c)[N], double x) {
    double p = c[0];
#pragma unroll
    for (int i = 1; i < N; i++) p = ADD(c[i], MUL(x, p));
    return p;
}

__device__ __forceinline__ double det_ln(double x) {
    if (!(x > 0.0)) return x == 0.0 ? -__longlong_as_double(0x7ff0000000000000LL) : __longlong_as_double(0x7ff8000000000000LL);
    if (x == __longlong_as_double(0x7ff0000000000000LL)) return x;
    u64 bits = (u64)__double_as_longlong(x);
    i64 e = 0;
    if (bits < (1ULL << 52)) {  // subnormal
        bits = (u64)__double_as_longlong(MUL(x, 18014398509481984.0));  // 2^54
        e = -54;
    }
    e += (i64)((bits >> 52) & 0x7ff) - 1023;
    double m = __longlong_as_double((i64)((bits & ((1ULL << 52) - 1)) | (1023ULL << 52)));
    if (m > 1.4142135623730951) {
        m = MUL(m, 0.5);
        e += 1;
    }
    const double f = SUB(m, 1.0);
    const double s = DIV(f, ADD(2.0, f));
    const double z = MUL(s, s);
    const double c[10] = {0.09523809523809523, 0.10526315789473684, 0.11764705882352941, 0.13333333333333333,
                          0.15384615384615385, 0.18181818181818182, 0.2222222222222222,  0.2857142857142857,
                          0.4,                 0.6666666666666666};
    const double p = horner(c, z);
    const double lnm = ADD(MUL(2.0, s), MUL(s, MUL(z, p)));
    return ADD(MUL((double)e, 0.6931471805599453), lnm);
}

__device__ __forceinline__ double pow2(i64 k) { return __longlong_as_double((k + 1023) << 52); }

__device__ __forceinline__ double det_exp(double x) {
    if (x != x) return x;
    if (x > 709.782712893384) return __longlong_as_double(0x7ff0000000000000LL);
    if (x < -745.1332191019412) return 0.0;
    const double k = floor(ADD(MUL(x, 1.4426950408889634), 0.5));
    const double r = SUB(SUB(x, MUL(k, 0.6931471803691238)), MUL(k, 1.9082149292705877e-10));
    const double c[14] = {1.6059043836821613e-10, 2.08767569878681e-09,   2.505210838544172e-08,
                          2.755731922398589e-07,  2.7557319223985893e-06, 2.48015873015873e-05,
                          0.0001984126984126984,  0.001388888888888889,   0.008333333333333333,
                          0.041666666666666664,   0.16666666666666666,    0.5,
                          1.0,                    1.0};
    const double p = horner(c, r);
    const i64 ki = (i64)k;
    if (ki > 1023) return MUL(MUL(p, pow2(1023)), pow2(ki - 1023));
    if (ki < -1022) return MUL(MUL(p, pow2(ki + 600)), pow2(-600));
    return MUL(p, pow2(ki));
}

__device__ __forceinline__ double unit(unsigned char v) { return DIV((double)v, 255.0); }
__device__ __forceinline__ double unit(unsigned short v) { return DIV((double)v, 65535.0); }
__device__ __forceinline__ double unit(float v) { return (double)v; }
__device__ __forceinline__ double raw(unsigned char v) { return (double)v; }
__device__ __forceinline__ double raw(unsigned short v) { return (double)v; }
__device__ __forceinline__ double raw(float v) { return (double)v; }

#define LN_1E6 (-13.815510557964274)
__constant__ double HED_FROM_RGB[3][3] = {{1.8779827368521356, -1.0076786862855642, -0.5561158181996246},
                                          {-0.06590806222356334, 1.1347303724996625, -0.13552179862837116},
                                          {-0.6019073634392891, -0.4804141884970579, 1.5735880719641926}};
__constant__ double RGB_FROM_HED[3][3] = {{0.65, 0.7, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}};

#define GRID_STRIDE(i, n) for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

template <typename T> __device__ void gray(const T* src, float* dst, u64 n) {
    GRID_STRIDE(i, n) {
        const T* p = src + 3 * i;
        dst[i] = (float)ADD(ADD(MUL(0.2125, unit(p[0])), MUL(0.7154, unit(p[1]))), MUL(0.0721, unit(p[2])));
    }
}

template <typename T> __device__ void od(const T* src, float* dst, u64 n, double s, double lo) {
    GRID_STRIDE(i, n) {
        for (int k = 0; k < 3; k++) {
            const double v = fmin(fmax(raw(src[3 * i + k]), lo), s);
            dst[3 * i + k] = (float)(-det_ln(DIV(v, s)));
        }
    }
}

template <typename T> __device__ void hed(const T* src, float* dst, u64 n) {
    GRID_STRIDE(i, n) {
        double l[3];
        for (int k = 0; k < 3; k++) l[k] = DIV(det_ln(fmax(unit(src[3 * i + k]), 1e-6)), LN_1E6);
        for (int j = 0; j < 3; j++) {
            const double v =
                ADD(ADD(MUL(l[0], HED_FROM_RGB[0][j]), MUL(l[1], HED_FROM_RGB[1][j])), MUL(l[2], HED_FROM_RGB[2][j]));
            dst[3 * i + j] = (float)(v > 0.0 ? v : 0.0);  // never -0.0; NaN -> 0
        }
    }
}

extern "C" __global__ void hed2rgb_f32(const float* src, float* dst, u64 n) {
    GRID_STRIDE(i, n) {
        double s[3];
        for (int j = 0; j < 3; j++) s[j] = MUL((double)src[3 * i + j], -LN_1E6);
        for (int k = 0; k < 3; k++) {
            const double l = ADD(ADD(MUL(s[0], RGB_FROM_HED[0][k]), MUL(s[1], RGB_FROM_HED[1][k])), MUL(s[2], RGB_FROM_HED[2][k]));
            dst[3 * i + k] = (float)fmin(fmax(det_exp(-l), 0.0), 1.0);
        }
    }
}

#define PER_TYPE(T, t)                                                                                           \
    extern "C" __global__ void gray_##t(const T* src, float* dst, u64 n) { gray<T>(src, dst, n); }                 \
    extern "C" __global__ void od_##t(const T* src, float* dst, u64 n, double s, double lo) { od<T>(src, dst, n, s, lo); } \
    extern "C" __global__ void hed_##t(const T* src, float* dst, u64 n) { hed<T>(src, dst, n); }

PER_TYPE(unsigned char, u8)
PER_TYPE(unsigned short, u16)
PER_TYPE(float, f32)

// Macenko's map pass: p = the source stains' pseudo-inverse (2 x 3, row-major), f = the
// concentration factors, r = the reference stains (3 x 2, row-major), s = source intensity.
extern "C" __global__ void macenko_u8(const unsigned char* src, unsigned char* dst, u64 n, double p00, double p01,
                                      double p02, double p10, double p11, double p12, double f0, double f1, double r00,
                                      double r01, double r10, double r11, double r20, double r21, double s) {
    GRID_STRIDE(i, n) {
        double a[3];
        for (int k = 0; k < 3; k++) a[k] = -det_ln(DIV(fmin(fmax((double)src[3 * i + k], 1.0), s), s));
        const double c0 = MUL(ADD(ADD(MUL(p00, a[0]), MUL(p01, a[1])), MUL(p02, a[2])), f0);
        const double c1 = MUL(ADD(ADD(MUL(p10, a[0]), MUL(p11, a[1])), MUL(p12, a[2])), f1);
        const double o[3] = {ADD(MUL(r00, c0), MUL(r01, c1)), ADD(MUL(r10, c0), MUL(r11, c1)),
                             ADD(MUL(r20, c0), MUL(r21, c1))};
        for (int k = 0; k < 3; k++) dst[3 * i + k] = (unsigned char)rint(fmin(fmax(MUL(det_exp(-o[k]), s), 0.0), 255.0));
    }
}
