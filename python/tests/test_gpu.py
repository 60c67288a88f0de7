"""GPU side (run on a GPU machine; skipped here with the reason ``-ra`` prints): reads into
GPU memory taken by CuPy / PyTorch / JAX without a copy, DLPack (legacy and versioned,
streams) and ``__cuda_array_interface__`` v3, GPU inputs through both protocols, ``out=``
filling a caller's array, kernels on GPU inputs equal to the CPU, Zarr and ptycho on the GPU,
Dask with CuPy chunks."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import tiledio
from conftest import TESTDATA, requires_gpu, rgb_image, write_pyramid

pytestmark = requires_gpu


@pytest.fixture(scope="module")
def cp():
    import cupy

    return cupy


@pytest.fixture
def slide(tmp_path):
    img = rgb_image(300, 420, seed=3)
    return tiledio.open_slide(write_pyramid(tmp_path / "s.tif", [img, img[::2, ::2].copy()], tile=64,
                                            compression="zlib")), img


def capsule_name(cap) -> str:
    f = ctypes.pythonapi.PyCapsule_GetName
    f.restype = ctypes.c_char_p
    f.argtypes = [ctypes.py_object]
    return f(cap).decode()


def test_read_region_to_gpu_is_taken_without_a_copy(slide, cp):
    s, img = slide
    g = s.read_region((10, 20), 0, (64, 48), device="cuda")
    assert isinstance(g, tiledio.CudaArray)
    assert g.shape == (48, 64, 3) and g.dtype == np.uint8 and g.device.startswith("cuda:")
    cai = g.__cuda_array_interface__
    assert cai["version"] == 3 and cai["typestr"] == "|u1" and cai["stream"] is None and cai["strides"] is None
    x = cp.asarray(g)
    assert x.data.ptr == cai["data"][0]  # no copy
    np.testing.assert_array_equal(cp.asnumpy(x), img[20:68, 10:74])
    np.testing.assert_array_equal(g.get(), img[20:68, 10:74])
    y = cp.from_dlpack(g)
    assert y.data.ptr == cai["data"][0]
    with pytest.raises(TypeError, match="get"):
        np.asarray(g)
    # the memory lives as long as a consumer holds it
    del g
    import gc

    gc.collect()
    np.testing.assert_array_equal(cp.asnumpy(y), img[20:68, 10:74])


def test_dlpack_capsules_and_streams(slide, cp):
    s, _ = slide
    g = s.read_region((0, 0), 0, (32, 32), device="cuda")
    assert g.__dlpack_device__()[0] == 2
    assert capsule_name(g.__dlpack__()) == "dltensor"
    assert capsule_name(g.__dlpack__(max_version=(1, 0))) == "dltensor_versioned"
    for stream in (None, -1, 1, 2, cp.cuda.Stream(non_blocking=True).ptr):
        g.__dlpack__(stream=stream, max_version=(1, 0))
    with pytest.raises(ValueError):
        g.__dlpack__(stream=0)
    with pytest.raises(BufferError):
        g.__dlpack__(dl_device=(1, 0))
    with pytest.raises(BufferError):
        g.__dlpack__(copy=True)
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: torch.from_dlpack not checked")
    t = torch.from_dlpack(g)
    assert t.is_cuda and tuple(t.shape) == (32, 32, 3)
    np.testing.assert_array_equal(t.cpu().numpy(), g.get())


def test_jax_takes_cuda_arrays(slide):
    jax = pytest.importorskip("jax", reason="JAX is not installed: jax.dlpack.from_dlpack not checked")
    s, img = slide
    g = s.read_region((5, 5), 0, (16, 16), device="cuda")
    j = jax.dlpack.from_dlpack(g)
    np.testing.assert_array_equal(np.asarray(j), img[5:21, 5:21])


def test_out_fills_a_cupy_array_and_rejects_wrong_ones(slide, cp):
    s, img = slide
    out = cp.zeros((40, 50, 3), cp.uint8)
    assert s.read_region((400, 290), 0, (50, 40), device="cuda", out=out) is out
    want = np.zeros((40, 50, 3), np.uint8)
    want[:10, :20] = img[290:300, 400:420]
    np.testing.assert_array_equal(cp.asnumpy(out), want)
    with pytest.raises(ValueError):
        s.read_region((0, 0), 0, (50, 40), device="cuda", out=cp.zeros((40, 50, 3), cp.uint16))
    with pytest.raises(ValueError, match="C-contiguous"):
        s.read_region((0, 0), 0, (50, 40), device="cuda", out=cp.zeros((40, 100, 3), cp.uint8)[:, ::2])
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: out= a torch tensor not checked")
    t = torch.zeros((40, 50, 3), dtype=torch.uint8, device="cuda")
    s.read_region((400, 290), 0, (50, 40), device="cuda", out=t)
    np.testing.assert_array_equal(t.cpu().numpy(), want)


def test_read_regions_to_gpu(slide, cp):
    s, img = slide
    batches = list(s.read_regions([(0, 0), (64, 32), (128, 64)], 0, (32, 32), device="cuda", batch_size=2,
                                  num_workers=2))
    assert [b.shape for b in batches] == [(2, 32, 32, 3), (1, 32, 32, 3)]
    np.testing.assert_array_equal(batches[1].get()[0], img[64:96, 128:160])


@pytest.mark.parametrize("output", ["magnitude", "h", "v"])
def test_kernels_on_gpu_inputs_equal_the_cpu(cp, output):
    img = rgb_image(200, 300, seed=4)
    g = cp.asarray(img)
    r = tiledio.sobel(g, output=output)
    assert isinstance(r, tiledio.CudaArray)
    np.testing.assert_array_equal(r.get(), tiledio.sobel(img, output=output))  # bit for bit
    np.testing.assert_array_equal(tiledio.rgb2hed(g).get(), tiledio.rgb2hed(img))
    np.testing.assert_array_equal(tiledio.normalize_stains(g).get(), tiledio.normalize_stains(img))
    # through DLPack only (a JAX-like producer) and through the CAI only
    class DlpackOnly:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    np.testing.assert_array_equal(tiledio.sobel(DlpackOnly(g), output=output).get(), tiledio.sobel(img, output=output))
    with pytest.raises(ValueError, match="C-contiguous"):
        tiledio.sobel(g[:, ::2])


def _read_back(path, level=None):
    """The array with zarr-python where it imports (CI), else with our reader (the GPU machine
    has no zarr-python; our reader is held to zarr-python's in test_zarr.py)."""
    try:
        import zarr
    except ImportError:
        return tiledio.open_zarr(path, level=level)[:]
    return zarr.open_array(path, mode="r")[:] if level is None else zarr.open_group(path, mode="r")[str(level)][:]


def test_zarr_on_the_gpu(tmp_path, cp):
    a = np.random.default_rng(5).integers(0, 60000, (130, 90), dtype=np.uint16)
    p = tiledio.write_zarr(tmp_path / "g.zarr", cp.asarray(a), chunks=32, codec="none")
    np.testing.assert_array_equal(_read_back(p), a)
    q = tiledio.write_zarr(tmp_path / "g.ome.zarr", cp.asarray(rgb_image(64, 80)), chunks=32, ome=True)
    np.testing.assert_array_equal(_read_back(q, 0), np.moveaxis(rgb_image(64, 80), 2, 0))
    z = tiledio.open_zarr(p)
    r = z.read(np.s_[10:70, 5:88], device="cuda")
    np.testing.assert_array_equal(cp.asnumpy(cp.asarray(r)), a[10:70, 5:88])
    out = cp.empty((60, 83), cp.uint16)
    z.read(np.s_[10:70, 5:88], device="cuda", out=out)
    np.testing.assert_array_equal(cp.asnumpy(out), a[10:70, 5:88])


def test_ptycho_on_the_gpu_equals_the_cpu(cp):
    frames = np.load(TESTDATA / "ptycho" / "frames.npy")
    dark = np.load(TESTDATA / "ptycho" / "darks.npy").astype(np.float64).mean(0).astype(np.float32)
    cpu = tiledio.ptycho.preprocess(frames, dark=dark, crop=32, bin=2, device="cpu")
    gpu = tiledio.ptycho.preprocess(cp.asarray(frames), dark=cp.asarray(dark), crop=32, bin=2, device="cuda")
    assert isinstance(gpu, tiledio.CudaArray)
    np.testing.assert_array_equal(gpu.get(), cpu)
    path = tiledio.ptycho.preprocess(TESTDATA / "ptycho" / "frames.npy", dark=dark, crop=32, bin=2, device="cuda")
    np.testing.assert_array_equal(path.get(), cpu)
    store = tiledio.ptycho.FrameStore(TESTDATA / "ptycho" / "frames.npy")
    np.testing.assert_array_equal(store.read(1, 3, device="cuda").get(), frames[1:3])


def test_pipeline_on_the_gpu_equals_the_cpu(tmp_path):
    img = rgb_image(150, 170, seed=12)
    src = write_pyramid(tmp_path / "in.tif", [img], tile=32)
    r = tiledio.pipeline.sobel(src, tmp_path / "g.zarr", tile=64, device="cuda", chunk=32)
    assert r["on_gpu"] is True
    np.testing.assert_array_equal(_read_back(tmp_path / "g.zarr", 0), tiledio.sobel(img))


def test_dask_with_cupy_chunks(slide, cp):
    pytest.importorskip("dask.array")
    import tiledio.dask

    s, img = slide
    x = tiledio.dask.from_slide(s.path, chunks=64, device="cuda")
    assert isinstance(x._meta, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(x.compute()), img)


def test_dask_graph_on_cupy_chunks_equals_the_cpu(slide, cp, tmp_path):
    pytest.importorskip("dask.array")
    import tiledio.dask

    s, img = slide
    g = tiledio.dask.from_slide(s.path, chunks=(64, 96), device="cuda")
    c = tiledio.dask.from_slide(s.path, chunks=(64, 96))
    assert isinstance(g._meta, cp.ndarray) and isinstance(c._meta, np.ndarray)

    def graph(x):
        # a reduction across chunks, an elementwise step and an overlap (halo) step
        grey = x.astype(np.float32).mean(axis=2)
        # halos from the neighbouring chunks (concatenated CuPy blocks on the GPU)
        edges = grey.map_overlap(lambda b: b * 2 - b.max(), depth=1, boundary="none")
        return (edges - grey.mean()).sum(axis=0), x.max(axis=(0, 1))

    gs, gm = graph(g)
    cs, cm = graph(c)
    gs, gm = gs.compute(), gm.compute()
    assert isinstance(gs, cp.ndarray) and isinstance(gm, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(gs), cs.compute(), rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(cp.asnumpy(gm), cm.compute())
    # Zarr: a level written by tiledio, read back as CuPy chunks
    p = tiledio.write_zarr(tmp_path / "z.ome.zarr", img, chunks=64, ome=True)
    for level in (0, 1):
        z = tiledio.dask.from_zarr(p, level=level, device="cuda")
        zc = tiledio.dask.from_zarr(p, level=level)
        assert isinstance(z._meta, cp.ndarray)
        blocks = z.blocks[0, 0, 0].compute()
        assert isinstance(blocks, cp.ndarray)
        np.testing.assert_array_equal(cp.asnumpy(z.compute()), zc.compute())
        np.testing.assert_array_equal(cp.asnumpy((z.astype(np.uint32) * 2).sum(axis=0).compute()),
                                      (zc.astype(np.uint32) * 2).sum(axis=0).compute())
