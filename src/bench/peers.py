"""tiledio bench peers: the suite's measurements through the Python packages users would otherwise
use, one peer per process (a peer that aborts takes only its own row). Embedded in tiledio
(src/bench/peers.py) and run as `python3 -c <this> KIND ARGS...`; prints one JSON line:
  {"times": [seconds...], "bytes": N, "device": "gpu"|"cpu", "note": "..."}   measured
  {"missing": "<import error>"}                                                cannot run here
Exceptions other than a missing package end the process with the error on stderr.

Kinds:
  read FILE PEER REPEATS COLD THREADS   level 0 of a tiled TIFF into GPU (host) memory;
                                        PEER: tifffile, tifffile+cupy, kvikio, cucim
  write SRC SIDE CHUNK SHARD CODEC DIR REPEATS PEER
                                        an RGB u8 image (SRC: raw bytes) from GPU memory into
                                        Zarr v3; PEER: kvikio (file per chunk, raw), tensorstore
  sobel FILE REPEATS PEER               global Sobel round trip of level 0: read, Sobel magnitude
                                        per channel (float32), result to host memory;
                                        PEER: cupyx (CuPy's ndimage on the GPU), scikit-image
"""
import json, os, sys, time, shutil


def missing(e):
    print(json.dumps({"missing": f"{type(e).__name__}: {e}"}))
    sys.exit(0)


def need(*names):
    """Imports the modules or reports the first import error as a missing peer."""
    mods = []
    for n in names:
        try:
            mods.append(__import__(n, fromlist=["_"]))
        except Exception as e:  # ImportError, or a CUDA library that fails to load
            missing(e)
    return mods


def gpu_ok(cp):
    try:
        cp.cuda.runtime.getDeviceCount()
        cp.zeros(1).sum()
    except Exception as e:
        missing(e)


def cold(path):
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return "cold: drop_caches"
    except OSError:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return "cold: posix_fadvise(DONTNEED)"


def timed(fn, repeats, sync=lambda: None, before=lambda: ""):
    fn()
    sync()
    ts, note = [], ""
    for _ in range(repeats):
        note = before() or note
        sync()
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return ts, note


def tiff_reference(path):
    (tifffile,) = need("tifffile")
    try:
        return tifffile.imread(path, key=0)
    except ValueError as e:  # a codec without imagecodecs
        if "imagecodecs" in str(e):
            missing(e)
        raise


def read(path, peer, repeats, is_cold, threads):
    before = (lambda: cold(path)) if is_cold else (lambda: "")
    if peer == "tifffile":
        (tifffile,) = need("tifffile")
        ref = tiff_reference(path)
        ts, note = timed(lambda: tifffile.imread(path, key=0), repeats, before=before)
        return {"times": ts, "bytes": int(ref.nbytes), "device": "cpu", "note": note}
    cp, tifffile = need("cupy", "tifffile")
    gpu_ok(cp)
    sync = cp.cuda.runtime.deviceSynchronize
    ref = tiff_reference(path)
    if peer == "tifffile+cupy":
        fn = lambda: cp.asarray(tifffile.imread(path, key=0))
    elif peer == "kvikio":
        (kvikio,) = need("kvikio")
        import kvikio.defaults
        if hasattr(kvikio.defaults, "set"):
            kvikio.defaults.set("num_threads", threads)
        else:
            kvikio.defaults.num_threads_reset(threads)
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.compression != 1:
                missing(RuntimeError(f"kvikio reads raw tiles only (compression {page.compression.name})"))
            offs, cnts = page.dataoffsets, page.databytecounts
            th, tw, spp = page.tilelength, page.tilewidth, page.samplesperpixel
            H, W = page.shape[:2]
        ty, tx = -(-H // th), -(-W // tw)
        tsz = th * tw * spp

        def fn():
            buf = cp.empty((ty * tx, th, tw, spp), dtype=cp.uint8)
            flat = buf.reshape(-1)
            with kvikio.CuFile(path, "r") as f:
                futs = [f.pread(flat[i * tsz:(i + 1) * tsz], cnts[i], offs[i]) for i in range(len(offs))]
                for fu in futs:
                    fu.get()
            out = buf.reshape(ty, tx, th, tw, spp).transpose(0, 2, 1, 3, 4).reshape(ty * th, tx * tw, spp)[:H, :W]
            return cp.ascontiguousarray(out)
    elif peer == "cucim":
        (cucim,) = need("cucim")
        from cucim import CuImage

        def fn():
            img = CuImage(path)
            return cp.asarray(img.read_region((0, 0), img.size("XY"), 0, num_workers=threads, device="cuda"))
    else:
        raise SystemExit(f"unknown read peer {peer}")
    out = fn()
    if out.shape != ref.shape or not bool((out == cp.asarray(ref)).all()):
        raise SystemExit(f"{peer}: the pixels differ from tifffile's")
    del out
    ts, note = timed(fn, repeats, sync, before)
    return {"times": ts, "bytes": int(ref.nbytes), "device": "gpu", "note": note}


def write(src, side, chunk, shard, codec, out_dir, repeats, peer):
    import numpy as np
    host = np.fromfile(src, dtype=np.uint8).reshape(side, side, 3)
    try:
        import cupy as cp
        gpu_ok(cp)
        img, sync, to_host, device = cp.asarray(host), cp.cuda.runtime.deviceSynchronize, cp.asnumpy, "gpu"
    except SystemExit:
        raise
    except Exception:
        cp, img, sync, to_host, device = None, host, (lambda: None), np.asarray, "cpu"
    path = os.path.join(out_dir, f"peer-{peer}.zarr")
    if peer == "kvikio":
        if cp is None:
            missing(ImportError("kvikio writes from GPU memory: cupy did not import"))
        (kvikio,) = need("kvikio")
        import kvikio.defaults
        if shard or codec != "none":
            missing(RuntimeError("kvikio writes raw chunk files only (no shards, no codecs)"))

        def fn():
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(os.path.join(path, "c"))
            pending = []
            for i in range(0, side, chunk):
                for j in range(0, side, chunk):
                    blk = cp.zeros((chunk, chunk, 3), cp.uint8)
                    part = img[i:i + chunk, j:j + chunk]
                    blk[:part.shape[0], :part.shape[1]] = part
                    f = kvikio.CuFile(os.path.join(path, "c", f"{i // chunk}.{j // chunk}.0"), "w")
                    pending.append((f, f.pwrite(blk), blk))
                    if len(pending) >= 256:
                        for f, fu, _ in pending:
                            fu.get(); f.close()
                        pending = []
            for f, fu, _ in pending:
                fu.get(); f.close()
    elif peer == "tensorstore":
        (ts,) = need("tensorstore")
        inner = [{"name": "bytes"}]
        if codec == "zstd":
            inner.append({"name": "zstd", "configuration": {"level": 3}})
        elif codec != "none":
            missing(RuntimeError(f"codec {codec} not mapped for tensorstore"))
        if shard:
            grid, codecs = [shard, shard, 3], [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": [chunk, chunk, 3], "codecs": inner,
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}]
        else:
            grid, codecs = [chunk, chunk, 3], inner
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}, "create": True,
                "delete_existing": True, "metadata": {"shape": [side, side, 3], "data_type": "uint8",
                "codecs": codecs, "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}}}}

        def fn():
            ts.open(spec).result().write(to_host(img)).result()
    else:
        raise SystemExit(f"unknown write peer {peer}")
    times = []
    fn()
    for _ in range(repeats):
        shutil.rmtree(path, ignore_errors=True)
        sync()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    shutil.rmtree(path, ignore_errors=True)
    return {"times": times, "bytes": int(host.nbytes), "device": device, "note": "no fsync"}


def sobel(path, repeats, peer):
    ref = tiff_reference(path)
    if peer == "cupyx":
        cp, tifffile = need("cupy", "tifffile")
        gpu_ok(cp)
        import cupyx.scipy.ndimage as ndi
        s = cp.array([1, 2, 1], cp.float32) / 4
        d = cp.array([1, 0, -1], cp.float32)

        def fn():
            img = cp.asarray(tifffile.imread(path, key=0)).astype(cp.float32) / 255
            out = []
            for c in range(img.shape[2]):
                g = img[:, :, c]
                h = ndi.correlate1d(ndi.correlate1d(g, s, axis=0, mode="reflect"), d, axis=1, mode="reflect")
                v = ndi.correlate1d(ndi.correlate1d(g, s, axis=1, mode="reflect"), d, axis=0, mode="reflect")
                out.append(cp.asnumpy(cp.sqrt((h * h + v * v) / 2)))
            return out
        ts, _ = timed(fn, repeats, cp.cuda.runtime.deviceSynchronize)
        return {"times": ts, "bytes": int(ref.nbytes), "device": "gpu", "note": "read + Sobel, to host memory, no write"}
    if peer == "scikit-image":
        tifffile, filters = need("tifffile", "skimage.filters")

        def fn():
            img = tifffile.imread(path, key=0).astype("float32") / 255
            return [filters.sobel(img[:, :, c]) for c in range(img.shape[2])]
        ts, _ = timed(fn, repeats)
        return {"times": ts, "bytes": int(ref.nbytes), "device": "cpu", "note": "read + Sobel, no write"}
    raise SystemExit(f"unknown sobel peer {peer}")


def main(argv):
    kind = argv[0]
    if kind == "read":
        r = read(argv[1], argv[2], int(argv[3]), argv[4] == "1", int(argv[5]))
    elif kind == "write":
        r = write(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5], argv[6], int(argv[7]), argv[8])
    elif kind == "sobel":
        r = sobel(argv[1], int(argv[2]), argv[3])
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1:])
