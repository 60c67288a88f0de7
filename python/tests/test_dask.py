"""tiledio.dask: slide levels and Zarr arrays as Dask arrays read by tiledio, equal to
tifffile and zarr-python; and the worked example (a folder of slides -> one OME-Zarr each) on a
local distributed cluster."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
import tifffile
import zarr

pytest.importorskip("dask.array", reason="tiledio.dask needs Dask (.ci/run installs dask[array,distributed])")

import dask  # noqa: E402
import dask.array as da  # noqa: E402

import tiledio  # noqa: E402
import tiledio.dask  # noqa: E402
from conftest import REPO, halves, rgb_image, write_pyramid  # noqa: E402


def test_from_slide_equals_tifffile(rgb_slide):
    path, _ = rgb_slide
    with tifffile.TiffFile(path) as t:
        want = [lv.asarray() for lv in t.series[0].levels]
    for level, lv in enumerate(want):
        x = tiledio.dask.from_slide(path, level=level, chunks=(50, 70))
        assert isinstance(x, da.Array)
        assert x.shape == lv.shape and x.dtype == lv.dtype
        assert x.chunks[0][0] == min(50, lv.shape[0]) and x.chunks[2] == (3,)
        assert isinstance(x._meta, np.ndarray)
        np.testing.assert_array_equal(x.compute(scheduler="threads"), lv)
        np.testing.assert_array_equal(x[10:97, 33:141].compute(), lv[10:97, 33:141])
    # deterministic names; graphs pickle (for process schedulers)
    assert tiledio.dask.from_slide(path).name == tiledio.dask.from_slide(path).name
    x = tiledio.dask.from_slide(path, chunks=128)
    y = pickle.loads(pickle.dumps(x))
    np.testing.assert_array_equal(y.compute(scheduler="processes"), want[0])
    with pytest.raises(ValueError, match="level 5"):
        tiledio.dask.from_slide(path, level=5)
    with pytest.raises(ValueError, match="device"):
        tiledio.dask.from_slide(path, device="tpu")


def test_from_zarr_equals_zarr_python(tmp_path):
    a = np.random.default_rng(1).integers(0, 1000, (90, 77, 2), dtype=np.int32)
    z = zarr.create_array(tmp_path / "a.zarr", shape=a.shape, chunks=(20, 20, 2), shards=(40, 40, 2), dtype=a.dtype)
    z[...] = a
    x = tiledio.dask.from_zarr(tmp_path / "a.zarr")
    assert x.chunks[0][0] == 40  # the shards
    np.testing.assert_array_equal(x.compute(), a)
    y = tiledio.dask.from_zarr(tmp_path / "a.zarr", chunks=(25, 33, 1))
    np.testing.assert_array_equal((y + 1).sum(axis=2).compute(), (a + 1).sum(axis=2))
    # an OME-Zarr image's level
    p = tiledio.write_zarr(tmp_path / "i.ome.zarr", a[..., 0].astype(np.uint16), chunks=32, ome=True)
    np.testing.assert_array_equal(tiledio.dask.from_zarr(p).compute(), a[..., 0])


def test_dask_filters_with_halos_equal_the_whole_image(rgb_slide):
    path, levels = rgb_slide
    x = tiledio.dask.from_slide(path, chunks=64)
    y = x.map_overlap(tiledio.sobel, depth={0: 1, 1: 1, 2: 0}, boundary="none", drop_axis=2,
                      dtype=np.float32, meta=np.empty((0, 0), np.float32))
    np.testing.assert_array_equal(y.compute(), tiledio.sobel(levels[0]))


def load_example():
    spec = importlib.util.spec_from_file_location("slides_to_ome_zarr", REPO / "python" / "examples" / "slides_to_ome_zarr.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_folder_of_slides_on_a_local_cluster(tmp_path):
    pytest.importorskip("dask.distributed", reason="the example runs on dask.distributed")
    ex = load_example()
    src = tmp_path / "slides"
    src.mkdir()
    imgs = {}
    for k, (h, w) in enumerate([(170, 230), (96, 300)]):
        img = rgb_image(h, w, seed=20 + k)
        imgs[f"slide{k}"] = img
        write_pyramid(src / f"slide{k}.tif", halves(img, 2), tile=32, compression="zlib")
    (src / "notes.txt").write_text("not a slide")
    out = tmp_path / "out"
    written = ex.main([str(src), str(out), "--chunk", "64", "--workers", "2"])
    assert sorted(p.name for p in written) == ["slide0.ome.zarr", "slide1.ome.zarr"]
    for name, img in imgs.items():
        g = zarr.open_group(out / f"{name}.ome.zarr", mode="r")
        ms = g.attrs["ome"]["multiscales"][0]
        assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
        level0 = g[ms["datasets"][0]["path"]]
        assert level0.chunks == (1, 64, 64)
        np.testing.assert_array_equal(level0[:], np.moveaxis(img, 2, 0))
    # the Sobel filter, with halos between chunks: equal to the whole image's
    out2 = tmp_path / "edges"
    ex.main([str(src), str(out2), "--chunk", "64", "--filter", "sobel", "--workers", "2"])
    for name, img in imgs.items():
        g = zarr.open_group(out2 / f"{name}.ome.zarr", mode="r")
        np.testing.assert_array_equal(g["0"][:], tiledio.sobel(img))
    # level 1 and the HED filter
    out3 = tmp_path / "hed"
    ex.main([str(src), str(out3), "--level", "1", "--chunk", "32", "--filter", "hed"])
    g = zarr.open_group(out3 / "slide0.ome.zarr", mode="r")
    np.testing.assert_array_equal(g["0"][:], np.moveaxis(tiledio.rgb2hed(halves(imgs["slide0"], 2)[1]), 2, 0))


