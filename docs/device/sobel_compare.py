"""Our Sobel kernel (crates/tiledio-kernels/src/cu/sobel.cu, compiled by NVRTC through CuPy with the
launch geometry of sobel.rs) beside cuCIM's sobel (when its wheel is installed), cupyx.scipy.ndimage and a
device-to-device copy (the memory-bound limit), on one device-resident N x N float32 image, in one process;
each output compared with scikit-image on a 2048^2 corner. Medians of 20 runs (5 for the peers).
Usage: python3 sobel_compare.py SOBEL_CU [N]"""
import sys, time
import numpy as np, cupy as cp
import cupyx.scipy.ndimage as ndi
from skimage.filters import sobel as csobel

src = open(sys.argv[1]).read()
n = int(sys.argv[2]) if len(sys.argv) > 2 else 24576


def bench(fn, reps):
    fn(); cp.cuda.runtime.deviceSynchronize(); ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); cp.cuda.runtime.deviceSynchronize(); ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2] * 1e3


def cupyx_sobel(img):
    s = cp.array([1, 2, 1], cp.float32) / 4; d = cp.array([1, 0, -1], cp.float32)
    h = ndi.correlate1d(ndi.correlate1d(img, s, axis=0, mode="reflect"), d, axis=1, mode="reflect")
    v = ndi.correlate1d(ndi.correlate1d(img, s, axis=1, mode="reflect"), d, axis=0, mode="reflect")
    return cp.sqrt((h * h + v * v) / 2)


k = cp.RawModule(code=src, options=("--std=c++17",)).get_function("sobel_f32_c1")


def ours(img):
    h, w = img.shape
    o = cp.empty((h, w), cp.float32)
    I = np.int64
    grid = ((w + 255) // 256, min((h + 63) // 64, 65535), 1)  # BLOCK 128 x 2 columns, 64 rows a thread
    k(grid, (128, 1, 1), (img, o, I(h), I(w), I(0), I(0), I(w), I(0), I(0), I(h), I(w), np.int32(0)))
    return o


g = cp.random.random((n, n), dtype=cp.float32)
out = cp.empty_like(g)
m = 2048
ref = csobel(cp.asnumpy(g[:m, :m]))
t_copy = bench(lambda: out.__setitem__(slice(None), g), 20)
print(f"D2D copy {n}x{n} float32: {t_copy:.2f} ms")
peers = [("tiledio", ours, 20), ("cupyx.ndimage", cupyx_sobel, 5)]
try:
    from cucim.skimage.filters import sobel as gsobel
    peers.insert(1, ("cucim", gsobel, 5))
except Exception as e:
    print(f"cucim: missing ({type(e).__name__}: {e})")
times = {}
for name, fn, reps in peers:
    times[name] = bench(lambda: fn(g), reps)
    d = float(cp.abs(fn(cp.ascontiguousarray(g[:m, :m])) - cp.asarray(ref)).max())
    print(f"{name:<14} sobel {n}x{n} float32: {times[name]:8.2f} ms  max|diff| vs skimage {d:.1e}")
t = times["tiledio"]
print(f"tiledio / D2D copy: {t / t_copy:.2f}x;  " + ";  ".join(f"{p} / tiledio: {times[p] / t:.1f}x" for p in times if p != "tiledio"))
