// Interleaved (n x c, "HWC" with n = h * w pixels) <-> planar (c x n, "CHW") transposes of
// elements of any size: T is a word type the element size is a multiple of (esize / sizeof(T)
// words per element). One thread per output word.
typedef unsigned long long u64;

template <typename T>
__device__ void transpose(const T* src, T* dst, u64 n, u64 c, u64 words, int to_planar) {
    const u64 total = n * c * words;
    for (u64 o = blockIdx.x * (u64)blockDim.x + threadIdx.x; o < total; o += (u64)gridDim.x * blockDim.x) {
        const u64 e = o / words, k = o % words;
        u64 s;
        if (to_planar) {  // output element e = ch * n + i  <-  input i * c + ch
            const u64 ch = e / n, i = e % n;
            s = i * c + ch;
        } else {          // output element e = i * c + ch  <-  input ch * n + i
            const u64 i = e / c, ch = e % c;
            s = ch * n + i;
        }
        dst[o] = src[s * words + k];
    }
}

#define TRANSPOSE(name, T) \
    extern "C" __global__ void name(const T* src, T* dst, u64 n, u64 c, u64 words, int to_planar) { \
        transpose<T>(src, dst, n, c, words, to_planar); }

TRANSPOSE(transpose_w1, unsigned char)
TRANSPOSE(transpose_w2, unsigned short)
TRANSPOSE(transpose_w4, unsigned int)
TRANSPOSE(transpose_w8, u64)
