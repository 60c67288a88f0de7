"""Times variants of crates/tiledio-kernels/src/cu/sobel.cu (f32 grey, magnitude) on a device-resident
N x N float32 image with CuPy, beside a device-to-device copy (the memory-bound limit) and
cupyx.scipy.ndimage's Sobel, all in one process. Each variant's output is checked against the
unchanged kernel (bitwise for the same arithmetic; within 1 ulp for the magnitude variant).
Usage: python3 sobel_variants.py SOBEL_CU [N]"""
import re, sys, time
import numpy as np, cupy as cp
import cupyx.scipy.ndimage as ndi

src0 = open(sys.argv[1]).read()
n = int(sys.argv[2]) if len(sys.argv) > 2 else 16384

def variant(ty=8, rpt=8, half_sqrt=False, i32=False):
    s = src0.replace("#define TY 8 ", f"#define TY {ty} ").replace("#define RPT 8 ", f"#define RPT {rpt} ")
    if half_sqrt:
        s = s.replace("__fdiv_rn(__fsqrt_rn(__fadd_rn(__fmul_rn(h, h), __fmul_rn(v, v))), 1.41421356237309515f)",
                      "__fsqrt_rn(__fmul_rn(__fadd_rn(__fmul_rn(h, h), __fmul_rn(v, v)), 0.5f))")
    return s, ty, rpt

def bench(fn, reps=20):
    fn(); cp.cuda.runtime.deviceSynchronize()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); cp.cuda.runtime.deviceSynchronize(); ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2] * 1e3

g = cp.random.random((n, n), dtype=cp.float32)
out = cp.empty_like(g)
print(f"D2D copy {n}x{n} f32: {bench(lambda: out.__setitem__(slice(None), g)):.3f} ms")

def cupyx_sobel(img):
    s = cp.array([1, 2, 1], cp.float32) / 4; d = cp.array([1, 0, -1], cp.float32)
    h = ndi.correlate1d(ndi.correlate1d(img, s, axis=0, mode="reflect"), d, axis=1, mode="reflect")
    v = ndi.correlate1d(ndi.correlate1d(img, s, axis=1, mode="reflect"), d, axis=0, mode="reflect")
    return cp.sqrt((h * h + v * v) / 2)
print(f"cupyx.ndimage sobel: {bench(lambda: cupyx_sobel(g), 5):.3f} ms")

ref = None
for name, (s, ty, rpt) in [
    ("as shipped (TY 8, RPT 8)", variant()),
    ("RPT 16", variant(rpt=16)),
    ("TY 4 RPT 16", variant(ty=4, rpt=16)),
    ("sqrt(x*0.5)", variant(half_sqrt=True)),
    ("sqrt(x*0.5) RPT 16", variant(rpt=16, half_sqrt=True)),
    ("sqrt(x*0.5) TY 4 RPT 16", variant(ty=4, rpt=16, half_sqrt=True)),
    ("sqrt(x*0.5) TY 16 RPT 4", variant(ty=16, rpt=4, half_sqrt=True)),
]:
    m = cp.RawModule(code=s, options=("--std=c++17",), name_expressions=None)
    k = m.get_function("sobel_f32_c1")
    o = cp.empty_like(g)
    th = ty * rpt
    grid = ((n + 31) // 32, min((n + th - 1) // th, 65535), 1)
    I = np.int64
    args = (g, o, I(n), I(n), I(0), I(0), I(n), I(0), I(0), I(n), I(n), np.int32(0))
    t = bench(lambda: k(grid, (32, ty, 1), args))
    if ref is None:
        ref = o.copy()
        d = 0.0
    else:
        d = float(cp.abs(o - ref).max())
    print(f"{name:<28} {t:.3f} ms  max|diff| vs shipped {d:.2e}")
