"""tiledio bench peers: the suite's measurements through the Python packages users would otherwise
use, one peer per process (a peer that aborts takes only its own row). Embedded in tiledio
(src/bench/peers.py) and run as `python3 -c <this> KIND ARGS...`; prints one JSON line:
  {"times": [seconds...], "bytes": N, "device": "gpu"|"cpu", "note": "..."}   measured
  {"missing": "<import error>"}                                                cannot run here
Exceptions other than a missing package end the process with the error on stderr.

Kinds:
  read FILE PEER REPEATS COLD THREADS   level 0 of a tiled TIFF into GPU (host) memory;
                                        PEER: tifffile, tifffile+cupy, kvikio (POSIX:
                                        KVIKIO_COMPAT_MODE=ON, KvikIO without GDS),
                                        kvikio+cufile (KVIKIO_COMPAT_MODE=AUTO: through cuFile,
                                        GDS where the machine has it), cucim
  write SRC SIDE CHUNK SHARD CODEC DIR REPEATS PEER
                                        an RGB u8 image (SRC: raw bytes) from GPU memory into
                                        Zarr v3; PEER: kvikio (file per chunk, raw), tensorstore
  sobel FILE REPEATS PEER               global Sobel round trip of level 0: read, Sobel magnitude
                                        per channel (float32), result to host memory;
                                        PEER: cupyx (CuPy's ndimage on the GPU), cucim
                                        (cucim.skimage.filters.sobel), scikit-image (on the
                                        top-left 4096² only: float64 on one core)
  sobel-kernel SIDE REPEATS PEER        the Sobel magnitude alone of a device-resident SIDE²
                                        float32 image (random, seed 1); PEER: cupyx, cucim;
                                        checked against scikit-image on a 256² corner
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
    elif peer in ("kvikio", "kvikio+cufile"):
        # read before the import: "kvikio" is KvikIO's POSIX path (no cuFile), "kvikio+cufile"
        # lets KvikIO pick cuFile (on a machine without nvidia-fs: cuFile's compatibility mode)
        os.environ["KVIKIO_COMPAT_MODE"] = "ON" if peer == "kvikio" else "AUTO"
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

        # cuCIM's GPU read_region decodes JPEG only (uncompressed tiles: "Unsupported compression
        # method"), and a whole level to device="cuda" aborted here: read into host memory, then
        # copy, as its users do for such files
        def fn():
            img = CuImage(path)
            return cp.asarray(img.read_region((0, 0), img.size("XY"), 0, num_workers=threads))
    else:
        raise SystemExit(f"unknown read peer {peer}")
    note_mode = ""
    if peer.startswith("kvikio"):
        import kvikio.defaults
        mode = kvikio.defaults.get("compat_mode") if hasattr(kvikio.defaults, "get") else kvikio.defaults.compat_mode()
        note_mode = f"KVIKIO_COMPAT_MODE={os.environ['KVIKIO_COMPAT_MODE']} ({mode})"
    elif peer == "cucim":
        note_mode = "into host memory, then cupy.asarray"
    out = fn()
    if out.shape != ref.shape or not bool((out == cp.asarray(ref)).all()):
        raise SystemExit(f"{peer}: the pixels differ from tifffile's")
    del out
    ts, note = timed(fn, repeats, sync, before)
    note = "; ".join(n for n in (note_mode, note) if n)
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


def cupyx_sobel(cp, g):
    """scikit-image's Sobel magnitude through CuPy's ndimage (reflect borders)."""
    import cupyx.scipy.ndimage as ndi
    s = cp.array([1, 2, 1], cp.float32) / 4
    d = cp.array([1, 0, -1], cp.float32)
    h = ndi.correlate1d(ndi.correlate1d(g, s, axis=0, mode="reflect"), d, axis=1, mode="reflect")
    v = ndi.correlate1d(ndi.correlate1d(g, s, axis=1, mode="reflect"), d, axis=0, mode="reflect")
    return cp.sqrt((h * h + v * v) / 2)


def gpu_sobel(peer):
    """(cupy, the peer's Sobel of a 2-D float32 CuPy array)."""
    (cp,) = need("cupy")
    gpu_ok(cp)
    if peer == "cupyx":
        need("cupyx.scipy.ndimage")
        return cp, lambda g: cupyx_sobel(cp, g)
    if peer == "cucim":
        (filters,) = need("cucim.skimage.filters")
        return cp, filters.sobel
    raise SystemExit(f"unknown GPU sobel peer {peer}")


SKIMAGE_CROP = 4096


def sobel(path, repeats, peer):
    ref = tiff_reference(path)
    (tifffile,) = need("tifffile")
    if peer in ("cupyx", "cucim"):
        cp, fn_sobel = gpu_sobel(peer)

        def fn():
            img = cp.asarray(tifffile.imread(path, key=0)).astype(cp.float32) / 255
            return [cp.asnumpy(fn_sobel(img[:, :, c])) for c in range(img.shape[2])]
        ts, _ = timed(fn, repeats, cp.cuda.runtime.deviceSynchronize)
        return {"times": ts, "bytes": int(ref.nbytes), "device": "gpu",
                "note": "read (tifffile) + Sobel per channel, to host memory, no write"}
    if peer == "scikit-image":
        (filters,) = need("skimage.filters")
        c = SKIMAGE_CROP

        # float64 on one core: the whole level takes minutes, so a corner of it
        def fn():
            img = tifffile.imread(path, key=0)[:c, :c].astype("float32") / 255
            return [filters.sobel(img[:, :, k]) for k in range(img.shape[2])]
        ts, _ = timed(fn, repeats)
        crop = ref[:c, :c]
        return {"times": ts, "bytes": int(crop.nbytes), "device": "cpu",
                "note": f"read (tifffile) + Sobel of the top-left {crop.shape[0]}x{crop.shape[1]} only, no write"}
    raise SystemExit(f"unknown sobel peer {peer}")


def sobel_kernel(side, repeats, peer):
    cp, fn_sobel = gpu_sobel(peer)
    img = cp.random.default_rng(1).random((side, side), dtype=cp.float32)
    out = fn_sobel(img)
    corner = min(side, 256)
    try:
        from skimage import filters
    except Exception:  # the kernel is timed unchecked, and the row says so
        filters = None
    if filters is None:
        check = "not checked: scikit-image did not import"
    else:
        # the corner's interior (the image's own border rows are reflected in both)
        want = filters.sobel(cp.asnumpy(img[:corner + 1, :corner + 1]).astype("float64"))[:corner - 1, :corner - 1]
        err = float(abs(cp.asnumpy(out[:corner - 1, :corner - 1]) - want).max())
        if err > 1e-5:
            raise SystemExit(f"{peer}: Sobel differs from scikit-image by {err}")
        check = f"max |{peer} - scikit-image| on a {corner}² corner: {err:.1e}"
    del out
    ts, _ = timed(lambda: fn_sobel(img), repeats, cp.cuda.runtime.deviceSynchronize)
    return {"times": ts, "bytes": int(img.nbytes), "device": "gpu", "note": check}


def main(argv):
    kind = argv[0]
    if kind == "read":
        r = read(argv[1], argv[2], int(argv[3]), argv[4] == "1", int(argv[5]))
    elif kind == "write":
        r = write(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5], argv[6], int(argv[7]), argv[8])
    elif kind == "sobel":
        r = sobel(argv[1], int(argv[2]), argv[3])
    elif kind == "sobel-kernel":
        r = sobel_kernel(int(argv[1]), int(argv[2]), argv[3])
    else:
        raise SystemExit(f"unknown kind {kind}")
    print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1:])
