"""Zarr both ways with zarr-python: arrays zarr-python writes (v2, v3, sharded, compressed,
every dtype) read equal through tiledio (indexing and ``read``), arrays and OME-Zarr images
tiledio writes read equal through zarr-python; conversions."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
import zarr

import tiledio
from conftest import halves, rgb_image, write_pyramid

DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"]


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def zarr_python_array(path, a, chunks, zarr_format=3, shards=None, compressors="auto"):
    z = zarr.create_array(path, shape=a.shape, chunks=chunks, shards=shards, dtype=a.dtype,
                          zarr_format=zarr_format, compressors=compressors, fill_value=0)
    z[...] = a
    return os.fspath(path)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zarr_python_v3_read_by_tiledio(tmp_path, dtype):
    a = data((37, 51), dtype)
    p = zarr_python_array(tmp_path / "a.zarr", a, chunks=(16, 16))
    z = tiledio.open_zarr(p)
    assert z.shape == a.shape and z.dtype == a.dtype and z.chunks == (16, 16)
    assert z.zarr_format == 3 and z.shards is None and z.ndim == 2 and len(z) == 37
    np.testing.assert_array_equal(z[...], a)
    np.testing.assert_array_equal(np.asarray(z), a)


@pytest.mark.parametrize(
    "kind",
    ["v2_raw", "v2_zstd", "v2_blosc", "v3_raw", "v3_gzip", "v3_blosc", "v3_sharded_zstd", "v3_sharded_raw"],
)
def test_zarr_python_variants_read_by_tiledio(tmp_path, kind):
    from zarr.codecs import BloscCodec, GzipCodec, ZstdCodec

    a = data((70, 45, 3), "uint16", seed=2)
    fmt = 2 if kind.startswith("v2") else 3
    if fmt == 2:
        import numcodecs

        comp = {"v2_raw": None, "v2_zstd": numcodecs.Zstd(level=3), "v2_blosc": numcodecs.Blosc()}[kind]
        p = zarr_python_array(tmp_path / "a.zarr", a, chunks=(16, 16, 3), zarr_format=2, compressors=comp)
    else:
        comp = {"v3_raw": None, "v3_gzip": GzipCodec(), "v3_blosc": BloscCodec(), "v3_sharded_zstd": ZstdCodec(),
                "v3_sharded_raw": None}[kind]
        shards = (32, 32, 3) if "sharded" in kind else None
        p = zarr_python_array(tmp_path / "a.zarr", a, chunks=(16, 16, 3), shards=shards, compressors=comp)
    z = tiledio.open_zarr(p)
    assert z.zarr_format == fmt
    if "sharded" in kind:
        assert z.shards == (32, 32, 3) and z.chunks == (16, 16, 3)
    np.testing.assert_array_equal(z[:], a)
    keys = [
        np.s_[5:20, 7:40],
        np.s_[-10:, ..., 1],
        np.s_[3, :, 2],
        np.s_[::7, 2::5, ::-1],
        np.s_[60:10:-3, ::-4],
        np.s_[...],
        np.s_[69, 44, 2],
        np.s_[10:10],
        np.s_[-1],
    ]
    for k in keys:
        got = z[k]
        np.testing.assert_array_equal(got, a[k], err_msg=str(k))
        assert np.asarray(got).shape == a[k].shape, k


def test_read_region_and_out(tmp_path):
    a = data((64, 80), "float32", seed=4)
    p = zarr_python_array(tmp_path / "a.zarr", a, chunks=(16, 32))
    z = tiledio.open_zarr(p)
    np.testing.assert_array_equal(z.read(), a)
    np.testing.assert_array_equal(z.read(np.s_[10:30, 5:77]), a[10:30, 5:77])
    np.testing.assert_array_equal(z.read(np.s_[..., -8:]), a[:, -8:])
    out = np.zeros((20, 72), np.float32)
    assert z.read(np.s_[10:30, 5:77], out=out) is out
    np.testing.assert_array_equal(out, a[10:30, 5:77])
    with pytest.raises(ValueError, match="step 1"):
        z.read(np.s_[::2])
    with pytest.raises(ValueError):
        z.read(np.s_[0:4, 0:4], out=np.zeros((4, 4), np.float64))
    with pytest.raises(IndexError):
        z[64]
    with pytest.raises(IndexError):
        z[0, 0, 0]
    with pytest.raises(IndexError):
        z[[1, 2]]
    with pytest.raises(IndexError):
        z[None]


def test_missing_chunks_read_as_fill_value(tmp_path):
    z = zarr.create_array(tmp_path / "f.zarr", shape=(40, 40), chunks=(10, 10), dtype="int16", fill_value=-7)
    z[0:10, 0:10] = 3
    t = tiledio.open_zarr(tmp_path / "f.zarr")
    want = np.full((40, 40), -7, np.int16)
    want[0:10, 0:10] = 3
    np.testing.assert_array_equal(t[:], want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("codec", ["none", "zstd", "gzip:4", "blosc"])
def test_write_zarr_read_by_zarr_python(tmp_path, dtype, codec):
    a = data((45, 33, 2), dtype, seed=5)
    p = tiledio.write_zarr(tmp_path / "w.zarr", a, chunks=16, codec=codec)
    assert p == os.fspath(tmp_path / "w.zarr")
    z = zarr.open_array(p, mode="r")
    assert z.shape == a.shape and z.dtype == a.dtype and z.chunks == (16, 16, 2)
    np.testing.assert_array_equal(z[:], a)
    np.testing.assert_array_equal(tiledio.open_zarr(p)[:], a)


def test_write_zarr_sharded_and_per_axis_chunks(tmp_path):
    a = data((100, 90), "uint8", seed=6)
    p = tiledio.write_zarr(tmp_path / "s.zarr", a, chunks=(10, 15), shard=(40, 45), codec="zstd")
    z = zarr.open_array(p, mode="r")
    assert z.chunks == (10, 15) and z.shards == (40, 45)
    np.testing.assert_array_equal(z[:], a)
    with pytest.raises(ValueError):
        tiledio.write_zarr(tmp_path / "bad.zarr", a, chunks=(10,))
    with pytest.raises(ValueError):
        tiledio.write_zarr(tmp_path / "bad.zarr", a, codec="lzma")
    with pytest.raises(ValueError):
        tiledio.write_zarr(tmp_path / "bad.zarr", a, chunks=0)
    assert not (tmp_path / "bad.zarr").exists()


def test_write_zarr_ome_read_by_zarr_python(tmp_path):
    rgb = rgb_image(130, 150)
    p = tiledio.write_zarr(tmp_path / "img.ome.zarr", rgb, chunks=64, ome=True)
    g = zarr.open_group(p, mode="r")
    ms = g.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["c", "y", "x"]
    assert ms["datasets"][0]["path"] == "0"
    level0 = g["0"]
    assert level0.shape == (3, 130, 150) and level0.chunks == (1, 64, 64)
    np.testing.assert_array_equal(level0[:], np.moveaxis(rgb, 2, 0))
    # tiledio opens the image's level 0
    np.testing.assert_array_equal(tiledio.open_zarr(p)[:], np.moveaxis(rgb, 2, 0))
    grey = rgb[..., 0]
    q = tiledio.write_zarr(tmp_path / "grey.ome.zarr", grey, chunks=32, ome=True, codec="none")
    g = zarr.open_group(q, mode="r")
    assert [a["name"] for a in g.attrs["ome"]["multiscales"][0]["axes"]] == ["y", "x"]
    np.testing.assert_array_equal(g["0"][:], grey)
    with pytest.raises(ValueError, match="ome=True"):
        tiledio.write_zarr(tmp_path / "bad.zarr", np.zeros((2, 3, 4, 5), np.uint8), ome=True)


def half_mean(a):
    """A 2x2 area average as tiledio's pyramids make it: sides rounded up (the last row and
    column repeated), integers rounded half up."""
    h, w = a.shape[-2:]
    p = np.pad(a.astype(np.uint64), [(0, 0)] * (a.ndim - 2) + [(0, h % 2), (0, w % 2)], mode="edge")
    s = p[..., 0::2, 0::2] + p[..., 0::2, 1::2] + p[..., 1::2, 0::2] + p[..., 1::2, 1::2]
    return ((s + 2) // 4).astype(a.dtype)


def test_write_zarr_ome_pyramid(tmp_path):
    rgb = rgb_image(301, 250)
    p = tiledio.write_zarr(tmp_path / "pyr.ome.zarr", rgb, chunks=64, ome=True)
    g = zarr.open_group(p, mode="r")
    ms = g.attrs["ome"]["multiscales"][0]
    # 301x250 -> 151x125 -> 76x63: a side fits in one 64 chunk
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    shapes = [g[d["path"]].shape for d in ms["datasets"]]
    assert shapes == [(3, 301, 250), (3, 151, 125), (3, 76, 63)]
    for d, (_, h, w) in zip(ms["datasets"], shapes):
        (t,) = d["coordinateTransformations"]
        assert t["type"] == "scale"
        assert t["scale"] == [1.0, 301 / h, 250 / w]
    assert all(g[d["path"]].chunks == (1, 64, 64) for d in ms["datasets"])
    level0 = g["0"][:]
    np.testing.assert_array_equal(level0, np.moveaxis(rgb, 2, 0))
    np.testing.assert_array_equal(g["1"][:], half_mean(level0))
    np.testing.assert_array_equal(g["2"][:], half_mean(g["1"][:]))
    # tiledio reads the levels too
    np.testing.assert_array_equal(tiledio.open_zarr(p, level=2)[:], g["2"][:])
    # levels= fixes the count; float and 2-D images
    f = data((40, 70), "float32", seed=3)
    q = tiledio.write_zarr(tmp_path / "f.ome.zarr", f, chunks=16, ome=True, levels=4, codec="none")
    g = zarr.open_group(q, mode="r")
    assert [d["path"] for d in g.attrs["ome"]["multiscales"][0]["datasets"]] == ["0", "1", "2", "3"]
    assert g["3"].shape == (5, 9)
    expect = ((f[0::2, 0::2] + f[0::2, 1::2]) + f[1::2, 0::2] + f[1::2, 1::2]) / np.float32(4)
    np.testing.assert_array_equal(g["1"][:], expect)
    one = tiledio.write_zarr(tmp_path / "one.ome.zarr", f, chunks=16, ome=True, levels=1)
    assert len(zarr.open_group(one, mode="r").attrs["ome"]["multiscales"][0]["datasets"]) == 1
    with pytest.raises(ValueError, match="levels"):
        tiledio.write_zarr(tmp_path / "bad.ome.zarr", f, ome=True, levels=0)
    with pytest.raises(ValueError, match="ome=True"):
        tiledio.write_zarr(tmp_path / "bad.zarr", f, levels=2)
    assert not (tmp_path / "bad.ome.zarr").exists() and not (tmp_path / "bad.zarr").exists()


def test_write_zarr_from_dask(tmp_path):
    da = pytest.importorskip("dask.array")
    a = data((130, 70, 3), "uint16", seed=8)
    x = da.from_array(a, chunks=(25, 70, 3))
    p = tiledio.write_zarr(tmp_path / "d.zarr", x, chunks=(32, 32, 3), codec="zstd")
    np.testing.assert_array_equal(zarr.open_array(p, mode="r")[:], a)
    q = tiledio.write_zarr(tmp_path / "d.ome.zarr", x, chunks=32, ome=True)
    np.testing.assert_array_equal(zarr.open_group(q, mode="r")["0"][:], np.moveaxis(a, 2, 0))


def test_zarr_writer_regions(tmp_path):
    w = tiledio.ZarrWriter(tmp_path / "r.zarr", (50, 40), "float32", chunks=(10, 20), codec="none")
    assert w.unit == [10, 20]
    a = data((50, 40), "float32", seed=9)
    w.write((0, 0), a[:30])
    w.write((30, 20), a[30:, 20:])
    with pytest.raises(ValueError, match="aligned"):
        w.write((5, 0), a[5:15])
    with pytest.raises(ValueError, match="float64"):
        w.write((30, 0), a[30:, :20].astype(np.float64))
    assert not (tmp_path / "r.zarr").exists()  # nothing until finish
    w.finish()
    want = a.copy()
    want[30:, :20] = 0  # never written: the fill value
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "r.zarr", mode="r")[:], want)
    with pytest.raises(ValueError, match="finished"):
        w.write((0, 0), a[:10])
    # an aborted writer leaves nothing
    v = tiledio.ZarrWriter(tmp_path / "gone.zarr", (4, 4), "uint8", chunks=2)
    v.write((0, 0), np.ones((2, 4), np.uint8))
    v.abort()
    assert not (tmp_path / "gone.zarr").exists()


def test_zarr_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(tiledio.TiledioError, match="empty"):
        tiledio.open_zarr(tmp_path / "empty")
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text("{not json")
    with pytest.raises(tiledio.TiledioError, match="bad.zarr"):
        tiledio.open_zarr(bad)
    a = data((8, 8), "uint8")
    p = tiledio.write_zarr(tmp_path / "x.zarr", a, chunks=4, codec="none")
    # a chunk cut short: an error naming the chunk, never wrong data
    chunk = os.path.join(p, "c", "0", "0")
    with open(chunk, "r+b") as f:
        f.truncate(5)
    with pytest.raises(tiledio.TiledioError, match="chunk"):
        tiledio.open_zarr(p)[:]
    with pytest.raises(tiledio.TiledioError, match="x.zarr"):
        tiledio.write_zarr(p, a)  # exists and is not empty


def test_convert_tiff_zarr_tiff(tmp_path):
    levels = halves(rgb_image(200, 260, seed=10), 3)
    src = write_pyramid(tmp_path / "in.tif", levels, tile=64, compression="zlib")
    r = tiledio.convert(src, tmp_path / "out.zarr", chunk=64, codec="zstd")
    assert r["format"] == "zarr" and r["channels"] == 3 and r["dtype"] == "uint8"
    assert r["levels"][0] == (260, 200)  # (width, height)
    g = zarr.open_group(tmp_path / "out.zarr", mode="r")
    np.testing.assert_array_equal(g["0"][:], np.moveaxis(levels[0], 2, 0))
    np.testing.assert_array_equal(g["1"][:], np.moveaxis(levels[1], 2, 0))
    r = tiledio.convert(tmp_path / "out.zarr", tmp_path / "back.tif", tile=64, compression="zstd")
    assert r["format"] == "tiff"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "back.tif"), levels[0])
    with pytest.raises(ValueError, match="png"):
        tiledio.convert(src, tmp_path / "x.png")
    with pytest.raises(TypeError, match="unknown options"):
        tiledio.convert(src, tmp_path / "y.zarr", chunks=64)
    with pytest.raises(ValueError):
        tiledio.convert(src, tmp_path / "z.zarr", tile=64)  # a TIFF option for a Zarr output
    assert not (tmp_path / "z.zarr").exists()


def test_attrs(tmp_path):
    z = zarr.create_array(tmp_path / "a.zarr", shape=(4,), chunks=(2,), dtype="uint8")
    z.attrs["note"] = {"k": [1, 2]}
    assert tiledio.open_zarr(tmp_path / "a.zarr").attrs == {"note": {"k": [1, 2]}}
    assert json.dumps(tiledio.open_zarr(tmp_path / "a.zarr").attrs)
