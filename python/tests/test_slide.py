"""Slides written by tifffile read equal to tifffile: levels, regions (inside, across the
edges, outside; level-0 coordinates as OpenSlide), batches, associated images, properties,
preallocated outputs, and the GIL released during reads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tifffile

import tiledio
from conftest import halves, rgb_image, write_pyramid


def padded_region(level: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """`level[y:y+h, x:x+w]` with zeros outside the image (OpenSlide's background)."""
    out = np.zeros((h, w) + level.shape[2:], level.dtype)
    H, W = level.shape[:2]
    y0, y1, x0, x1 = max(y, 0), min(y + h, H), max(x, 0), min(x + w, W)
    if y0 < y1 and x0 < x1:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = level[y0:y1, x0:x1]
    return out


def tifffile_levels(path):
    with tifffile.TiffFile(path) as t:
        return [lv.asarray() for lv in t.series[0].levels]


@pytest.mark.parametrize("compression", [None, "zlib", "lzw", "zstd", "packbits", "jpeg"])
def test_levels_equal_tifffile(tmp_path, compression):
    levels = halves(rgb_image(200, 330, seed=1), 3)
    path = write_pyramid(tmp_path / "s.tif", levels, tile=64, compression=compression)
    want = tifffile_levels(path)
    s = tiledio.open_slide(path)
    assert s.level_count == 3
    assert s.level_dimensions == [(lv.shape[1], lv.shape[0]) for lv in want]
    assert s.dimensions == s.level_dimensions[0]
    assert s.level_downsamples[0] == 1.0
    assert s.level_downsamples[1] == pytest.approx(2.0, rel=0.01)
    assert s.channels == 3 and s.dtype == np.uint8
    assert s.level_tile_sizes == [(64, 64)] * 3
    for i, lv in enumerate(want):
        got = s.read_level(i)
        assert got.shape == lv.shape and got.dtype == lv.dtype
        # JPEG too: tiledio decodes with libjpeg-turbo exactly as imagecodecs does
        np.testing.assert_array_equal(got, lv)


@pytest.mark.parametrize("subifds", [False, True])
def test_regions_equal_tifffile(rgb_slide, tmp_path, subifds):
    _, levels = rgb_slide
    path = write_pyramid(tmp_path / "p.tif", levels, tile=64, compression="zlib", subifds=subifds)
    want = tifffile_levels(path)
    s = tiledio.open_slide(path)
    rng = np.random.default_rng(7)
    for level in range(s.level_count):
        lv = want[level]
        H, W = lv.shape[:2]
        ds = round(s.level_downsamples[level])
        cases = [(0, 0, W, H), (5, 7, 1, 1), (W - 10, H - 3, 40, 20), (-13, -9, 30, 25), (W + 5, 0, 8, 8)]
        cases += [(int(rng.integers(-20, W)), int(rng.integers(-20, H)), int(rng.integers(1, 90)),
                   int(rng.integers(1, 90))) for _ in range(12)]
        for x, y, w, h in cases:
            # OpenSlide: the location in level-0 pixels, the size in pixels of the level
            got = s.read_region((x * ds, y * ds), level, (w, h))
            assert got.shape == (h, w, 3)
            np.testing.assert_array_equal(got, padded_region(lv, x, y, w, h), err_msg=f"level {level} {(x, y, w, h)}")
            own = s.read_level_region(level, (x, y), (w, h))
            np.testing.assert_array_equal(own, got)


def test_grey_u16_and_float_slides(tmp_path):
    rng = np.random.default_rng(3)
    u16 = rng.integers(0, 65535, (150, 170), dtype=np.uint16)
    f32 = rng.normal(size=(90, 130)).astype(np.float32)
    for name, img, comp in [("u16.tif", u16, "zlib"), ("f32.tif", f32, "zstd"), ("be.tif", u16, None)]:
        kw = {"byteorder": ">"} if name == "be.tif" else {}
        path = tmp_path / name
        tifffile.imwrite(path, img, tile=(32, 32), compression=comp, photometric="minisblack", metadata=None, **kw)
        s = tiledio.open_slide(path)
        assert s.channels == 1 and s.dtype == img.dtype
        got = s.read_region((-4, 10), 0, (60, 50))
        assert got.dtype == img.dtype and got.shape == (50, 60, 1)
        np.testing.assert_array_equal(got[..., 0], padded_region(img, -4, 10, 60, 50))


def test_region_into_preallocated_out(rgb_slide):
    path, levels = rgb_slide
    s = tiledio.open_slide(path)
    out = np.full((40, 50, 3), 77, np.uint8)
    r = s.read_region((400, 290), 0, (50, 40), out=out)
    assert r is out
    np.testing.assert_array_equal(out, padded_region(levels[0], 400, 290, 50, 40))
    # the wrong dtype, shape, a read-only or non-contiguous array: ValueError, out untouched
    with pytest.raises(ValueError, match="uint8"):
        s.read_region((0, 0), 0, (50, 40), out=np.zeros((40, 50, 3), np.uint16))
    with pytest.raises(ValueError, match=r"\[40, 50, 3\]"):
        s.read_region((0, 0), 0, (50, 40), out=np.zeros((50, 40, 3), np.uint8))
    ro = np.zeros((40, 50, 3), np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        s.read_region((0, 0), 0, (50, 40), out=ro)
    with pytest.raises(ValueError, match="C-contiguous"):
        s.read_region((0, 0), 0, (50, 40), out=np.zeros((40, 100, 3), np.uint8)[:, ::2])
    with pytest.raises(TypeError):
        s.read_region((0, 0), 0, (50, 40), out=[0] * 10)
    lvl = np.empty((150, 210, 3), np.uint8)
    assert s.read_level(1, out=lvl) is lvl
    np.testing.assert_array_equal(lvl, levels[1])


@pytest.mark.parametrize("workers", [0, 1, 3])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_read_regions_batches(rgb_slide, workers, batch_size):
    path, levels = rgb_slide
    s = tiledio.open_slide(path)
    rng = np.random.default_rng(11)
    locs = np.stack([rng.integers(-30, 420, 10), rng.integers(-30, 300, 10)], axis=1)
    it = s.read_regions(locs, 0, (48, 32), batch_size=batch_size, num_workers=workers)
    assert len(it) == -(-10 // batch_size)
    batches = list(it)
    assert [b.shape[0] for b in batches] == [min(batch_size, 10 - i) for i in range(0, 10, batch_size)]
    got = np.concatenate(batches)
    assert got.shape == (10, 32, 48, 3)
    for k, (x, y) in enumerate(locs):
        np.testing.assert_array_equal(got[k], padded_region(levels[0], int(x), int(y), 48, 32))
    # level 1, locations at level 0, as read_region
    b = next(iter(s.read_regions([(64, 32)], 1, (20, 10))))
    np.testing.assert_array_equal(b[0], s.read_region((64, 32), 1, (20, 10)))


def test_read_regions_stopped_early_and_errors(rgb_slide):
    path, _ = rgb_slide
    s = tiledio.open_slide(path)
    it = s.read_regions([(i, i) for i in range(40)], 0, (64, 64), batch_size=2, num_workers=4)
    assert next(it).shape == (2, 64, 64, 3)
    del it  # the readers stop and are joined; nothing hangs
    assert list(s.read_regions([], 0, (8, 8))) == []
    with pytest.raises(ValueError, match="batch_size"):
        s.read_regions([(0, 0)], 0, (8, 8), batch_size=0)
    with pytest.raises(ValueError, match="level 7"):
        s.read_regions([(0, 0)], 7, (8, 8))
    with pytest.raises((TypeError, ValueError)):
        s.read_regions([(0, 0, 0)], 0, (8, 8))


def test_properties_and_best_level(rgb_slide):
    path, levels = rgb_slide
    s = tiledio.open_slide(path)
    p = s.properties
    assert isinstance(p, dict)
    assert p["openslide.level-count"] == "3"
    assert p["openslide.vendor"] == "generic-tiff"
    for i, lv in enumerate(levels):
        assert p[f"openslide.level[{i}].width"] == str(lv.shape[1])
        assert p[f"openslide.level[{i}].height"] == str(lv.shape[0])
    assert s.get_best_level_for_downsample(1.0) == 0
    assert s.get_best_level_for_downsample(2.5) == 1
    assert s.get_best_level_for_downsample(100) == 2
    assert "tiledio.Slide" in repr(s)
    with tiledio.open_slide(path) as t:
        assert t.level_count == 3


def test_svs_associated_images_and_aperio_properties(tmp_path):
    """An SVS-like file (as testdata/tiff/make_fixtures.py writes one): label and macro pages,
    a stripped thumbnail, Aperio's description."""
    rgb = rgb_image(250, 333, seed=5)
    label = rgb_image(60, 80, seed=6)
    macro = rgb_image(70, 120, seed=8)
    thumb = np.ascontiguousarray(rgb[::4, ::4])
    desc = ("Aperio Image Library v12.0.15 \r\n333x250 [0,0 333x250] (64x64) JPEG/RGB Q=70"
            "|AppMag = 20|MPP = 0.4990|Date = 12/29/09")
    path = tmp_path / "s.svs"
    with tifffile.TiffWriter(path) as tw:
        tw.write(rgb, tile=(64, 64), photometric="rgb", compression="zlib", description=desc, metadata=None)
        tw.write(thumb, photometric="rgb", compression="zlib", rowsperstrip=16, metadata=None,
                 description="Aperio Image Library v12.0.15 \r\n333x250 -> 83x63 - |AppMag = 20")
        tw.write(np.ascontiguousarray(rgb[::2, ::2]), tile=(64, 64), photometric="rgb", compression="zlib",
                 metadata=None, description="Aperio Image Library v12.0.15 \r\n333x250 -> 167x125 - ")
        tw.write(label, photometric="rgb", compression="lzw", subfiletype=1, metadata=None,
                 description="Aperio Image Library v12.0.15\r\nlabel 80x60")
        tw.write(macro, photometric="rgb", compression="zlib", subfiletype=9, metadata=None,
                 description="Aperio Image Library v12.0.15\r\nmacro 120x70")
    s = tiledio.open_slide(path)
    assert s.level_count == 2
    assert s.properties["openslide.vendor"] == "aperio"
    assert float(s.properties["openslide.mpp-x"]) == 0.499
    assert s.properties["aperio.AppMag"] == "20"
    a = s.associated_images
    import collections.abc

    assert isinstance(a, collections.abc.Mapping)
    assert sorted(a) == ["label", "macro", "thumbnail"] and len(a) == 3
    assert "label" in a and "slide" not in a
    with tifffile.TiffFile(path) as t:
        want = {"thumbnail": t.pages[1].asarray(), "label": t.pages[3].asarray(), "macro": t.pages[4].asarray()}
    for name, img in want.items():
        np.testing.assert_array_equal(a[name], img)
    assert a.dimensions()["label"] == (80, 60)
    assert a.get("nothing") is None
    with pytest.raises(KeyError):
        a["nothing"]
    d = dict(a.items())
    np.testing.assert_array_equal(d["macro"], macro)


def test_reads_release_the_gil(tmp_path):
    """Another Python thread runs while a long read is in progress: it could not if the read
    held the GIL."""
    img = rgb_image(2048, 3072, seed=9)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, img, tile=(256, 256), photometric="rgb", compression="zlib", metadata=None)
    s = tiledio.open_slide(path)
    ticks: list = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    time.sleep(0.02)
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            got = s.read_level(0)
            t1 = time.perf_counter()
            if t1 - t0 > 0.02:
                break
    finally:
        stop.set()
        t.join()
    np.testing.assert_array_equal(got, img)
    margin = (t1 - t0) * 0.25
    inside = [x for x in ticks if t0 + margin < x < t1 - margin]
    assert inside, f"no tick of the other thread during the {t1 - t0:.3f} s read"


def test_concurrent_reads_from_threads(rgb_slide):
    path, levels = rgb_slide
    s = tiledio.open_slide(path)
    errors = []

    def work(k):
        try:
            for i in range(20):
                x, y = (k * 37 + i * 13) % 400, (k * 11 + i * 7) % 280
                np.testing.assert_array_equal(s.read_region((x, y), 0, (33, 21)), padded_region(levels[0], x, y, 33, 21))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
