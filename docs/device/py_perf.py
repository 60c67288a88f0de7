"""Issue 12's performance figures, in one process on the GPU machine (device run 24).

1. The whole level 0 of a slide into a CuPy array from Python (tiledio.open_slide(...).read_level
   with device="cuda"), against KvikIO-16 per-tile reads + CuPy assembly (as
   ../shared/peers/wsi_read_peers.py does it), interleaved, medians of 7. The Rust figure of the
   same read comes from `tiledio bench slide` in the same device call (see run-24.sh).
2. 10,000 random 256x256 patches of level 0 into GPU memory: tiledio read_regions (batches of
   256, 16 workers) against cuCIM's batch read_region (same batch size and workers), each in a
   child process so that a crash of one (cuCIM aborts on some tifffile BigTIFFs) cannot end the
   run. Medians of 3.
3. Python overhead of a small call: 10,000 read_region calls of 256x256 to host memory, per call.

Usage: python3 py_perf.py SLIDE [PATCH_SLIDE]
"""
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def median_ms(f, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), min(ts), max(ts)


def level0(path):
    import cupy as cp
    import kvikio
    import tifffile
    import tiledio

    s = tiledio.open_slide(path)
    w, h = s.level_dimensions[0]

    def ours():
        a = cp.asarray(s.read_level(0, device="cuda"))
        cp.cuda.runtime.deviceSynchronize()
        return a

    with tifffile.TiffFile(path) as t:
        page = t.pages[0]
        offs, cnts = page.dataoffsets, page.databytecounts
        th, tw, spp = page.tilelength, page.tilewidth, page.samplesperpixel

    def kvik():
        ty, tx = -(-h // th), -(-w // tw)
        buf = cp.empty((ty * tx, th, tw, spp), dtype=cp.uint8)
        flat = buf.reshape(-1)
        tsz = th * tw * spp
        with kvikio.CuFile(path, "r") as f:
            futs = [f.pread(flat[i * tsz:(i + 1) * tsz], cnts[i], offs[i]) for i in range(len(offs))]
            for fu in futs:
                fu.get()
        out = buf.reshape(ty, tx, th, tw, spp).transpose(0, 2, 1, 3, 4).reshape(ty * th, tx * tw, spp)[:h, :w]
        out = cp.ascontiguousarray(out)
        cp.cuda.runtime.deviceSynchronize()
        return out

    import kvikio.defaults

    if hasattr(kvikio.defaults, "set"):
        kvikio.defaults.set("num_threads", 16)
    else:
        kvikio.defaults.num_threads_reset(16)
    a, b = ours(), kvik()
    equal = bool(cp.array_equal(a, b))
    del a, b
    t_ours, t_kvik = [], []
    for _ in range(7):
        t_ours.append(median_ms(ours, 1)[0])
        t_kvik.append(median_ms(kvik, 1)[0])
    mo, mk = statistics.median(t_ours), statistics.median(t_kvik)
    print(f"level 0 {w}x{h} -> CuPy: tiledio (Python) {mo:.1f} ms (min {min(t_ours):.1f}), "
          f"KvikIO-16 + CuPy {mk:.1f} ms (min {min(t_kvik):.1f}): {mk / mo:.2f}x; equal={equal}")


def patches_child(which, path, n, size, batch, workers):
    rng = np.random.default_rng(7)
    import cupy as cp

    if which == "tiledio":
        import tiledio

        s = tiledio.open_slide(path)
        w, h = s.level_dimensions[0]
        locs = np.stack([rng.integers(0, w - size, n), rng.integers(0, h - size, n)], axis=1)

        def run():
            k = 0
            for b in s.read_regions(locs, 0, (size, size), device="cuda", batch_size=batch, num_workers=workers):
                k += cp.asarray(b).shape[0]
            cp.cuda.runtime.deviceSynchronize()
            assert k == n, k
    else:
        from cucim import CuImage

        img = CuImage(path)
        w, h = img.size("XY")
        locs = np.stack([rng.integers(0, w - size, n), rng.integers(0, h - size, n)], axis=1)

        def run():
            k = 0
            it = img.read_region(locs.tolist(), (size, size), 0, num_workers=workers, batch_size=batch, device="cuda")
            for b in it:
                k += cp.asarray(b).shape[0]
            cp.cuda.runtime.deviceSynchronize()
            assert k == n, k
    run()  # warm
    m, lo, hi = median_ms(run, 3)
    print(json.dumps({"ms": m, "min": lo, "max": hi}))


def patches(path):
    n, size, batch, workers = 10000, 256, 256, 16
    res = {}
    for which in ("tiledio", "cucim"):
        p = subprocess.run([sys.executable, __file__, "--patches-child", which, path, str(n), str(size), str(batch),
                            str(workers)], capture_output=True, text=True, timeout=240)
        last = p.stdout.strip().splitlines()[-1:] if p.stdout.strip() else []
        if p.returncode == 0 and last:
            res[which] = json.loads(last[0])
            print(f"{n} random {size}^2 patches -> GPU, batches of {batch}, {workers} workers: {which} "
                  f"{res[which]['ms']:.1f} ms (min {res[which]['min']:.1f}, max {res[which]['max']:.1f})")
        else:
            print(f"{which}: failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-600:]}")
    if "tiledio" in res and "cucim" in res:
        print(f"patches: cuCIM / tiledio = {res['cucim']['ms'] / res['tiledio']['ms']:.2f}x")


def overhead(path):
    import tiledio

    s = tiledio.open_slide(path)
    rng = np.random.default_rng(3)
    w, h = s.level_dimensions[0]
    locs = list(zip(rng.integers(0, w - 256, 10000).tolist(), rng.integers(0, h - 256, 10000).tolist()))
    out = np.empty((256, 256, s.read_region((0, 0), 0, (1, 1)).shape[2]), dtype=np.uint8)
    for x, y in locs[:500]:
        s.read_region((x, y), 0, (256, 256), out=out)
    t = time.perf_counter()
    for x, y in locs:
        s.read_region((x, y), 0, (256, 256), out=out)
    per = (time.perf_counter() - t) / len(locs) * 1e6
    t = time.perf_counter()
    for x, y in locs[:2000]:
        s.read_region((x, y), 0, (1, 1))
    tiny = (time.perf_counter() - t) / 2000 * 1e6
    print(f"read_region 256^2 to host (out=), page-cached: {per:.1f} us per call; a 1x1 read_region (the "
          f"binding's fixed cost plus one tile read): {tiny:.1f} us per call")


if __name__ == "__main__":
    if sys.argv[1] == "--patches-child":
        w, p, n, size, batch, workers = sys.argv[2:8]
        patches_child(w, p, int(n), int(size), int(batch), int(workers))
        sys.exit(0)
    slide = sys.argv[1]
    patch_slide = sys.argv[2] if len(sys.argv) > 2 else slide
    level0(slide)
    overhead(slide)
    patches(patch_slide)
