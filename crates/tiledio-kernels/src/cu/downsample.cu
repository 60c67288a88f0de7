// 2x area-average downsampling of an h x w x c image (row-major, interleaved): each output
// sample is the mean of the up to 2x2 input samples it covers; an odd last row or column
// pairs with itself. Integers: (a + b + c + d + 2) floor-divided by 4, computed exactly;
// floats: ((a + b) + c) + d, then / 4, in the element's own type (IEEE, no fast math).
typedef unsigned long long u64;
typedef long long i64;

// exact floor((a + b + c + d + 2) / 4) without a wider type: x = 4 * (x >> 2) + (x & 3)
template <typename T> __device__ __forceinline__ T avg4_64(T a, T b, T c, T d) {
    const T q = (a >> 2) + (b >> 2) + (c >> 2) + (d >> 2);
    const T r = (a & 3) + (b & 3) + (c & 3) + (d & 3) + 2;
    return q + (r >> 2);
}

template <typename T, typename W> __device__ __forceinline__ T avg4(T a, T b, T c, T d) {
    // W holds the sum; >> on a signed W is an arithmetic shift, i.e. floor division by 4
    return (T)(((W)a + (W)b + (W)c + (W)d + 2) >> 2);
}
template <> __device__ __forceinline__ u64 avg4<u64, u64>(u64 a, u64 b, u64 c, u64 d) { return avg4_64(a, b, c, d); }
template <> __device__ __forceinline__ i64 avg4<i64, i64>(i64 a, i64 b, i64 c, i64 d) { return avg4_64(a, b, c, d); }
template <> __device__ __forceinline__ float avg4<float, float>(float a, float b, float c, float d) {
    return (((a + b) + c) + d) / 4.0f;
}
template <> __device__ __forceinline__ double avg4<double, double>(double a, double b, double c, double d) {
    return (((a + b) + c) + d) / 4.0;
}

template <typename T, typename W>
__device__ void half(const T* src, T* dst, u64 h, u64 w, u64 c) {
    const u64 oh = (h + 1) / 2, ow = (w + 1) / 2, n = oh * ow * c;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
        const u64 k = i % c, px = i / c, ox = px % ow, oy = px / ow;
        const u64 x0 = ox * 2, y0 = oy * 2;
        const u64 x1 = x0 + 1 < w ? x0 + 1 : w - 1, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        const T* r0 = src + y0 * w * c;
        const T* r1 = src + y1 * w * c;
        dst[i] = avg4<T, W>(r0[x0 * c + k], r0[x1 * c + k], r1[x0 * c + k], r1[x1 * c + k]);
    }
}

#define HALF(name, T, W) \
    extern "C" __global__ void name(const T* src, T* dst, u64 h, u64 w, u64 c) { half<T, W>(src, dst, h, w, c); }

HALF(downsample2x_u8, unsigned char, unsigned int)
HALF(downsample2x_u16, unsigned short, unsigned int)
HALF(downsample2x_u32, unsigned int, u64)
HALF(downsample2x_u64, u64, u64)
HALF(downsample2x_i8, signed char, int)
HALF(downsample2x_i16, short, int)
HALF(downsample2x_i32, int, i64)
HALF(downsample2x_i64, i64, i64)
HALF(downsample2x_f32, float, float)
HALF(downsample2x_f64, double, double)
