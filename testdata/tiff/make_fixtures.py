#!/usr/bin/env python3
"""Writes the TIFF fixtures of tiledio-tiff and `expected.txt`, the pixels each file holds as
decoded by tifffile (crc32 of the C-order little-endian array).

Run from anywhere: python3 testdata/tiff/make_fixtures.py  (`... make_fixtures.py codecs`: only the
codec files of `codec_fixtures`)
Needs tifffile, imagecodecs, numpy, and the `vips` and `tiffcp` command-line tools
(apt: libvips-tools, libtiff-tools). Every file is small (the folder stays well under a few MB).

expected.txt lines:
  level FILE LEVEL HEIGHT WIDTH CHANNELS DTYPE CRC32
  assoc FILE NAME HEIGHT WIDTH CHANNELS DTYPE CRC32
  lossy FILE           (JPEG: also compared live against tifffile's decode; bit-exact)
"""
import functools
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
MAL = os.path.join(HERE, "malformed")
os.makedirs(MAL, exist_ok=True)
rng = np.random.default_rng(1234)


def p(name):
    return os.path.join(HERE, name)


def smooth_rgb(h, w, c=3):
    """A smooth image with a little noise: JPEG-friendly, not trivially compressible."""
    y, x = np.mgrid[0:h, 0:w]
    chans = [
        128 + 100 * np.sin(x / 23.0 + k) * np.cos(y / 17.0 - k) + rng.normal(0, 4, (h, w))
        for k in range(c)
    ]
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def half(a):
    """2x area average (the last odd row/column kept as is)."""
    h, w = a.shape[:2]
    f = a.astype(np.float64)
    f = np.pad(f, ((0, h % 2), (0, w % 2)) + ((0, 0),) * (a.ndim - 2), mode="edge")
    out = (f[0::2, 0::2] + f[1::2, 0::2] + f[0::2, 1::2] + f[1::2, 1::2]) / 4
    return np.round(out).astype(a.dtype) if a.dtype != np.float32 else out.astype(np.float32)


def pyramid(path, data, levels, **kw):
    with tifffile.TiffWriter(path, bigtiff=kw.pop("bigtiff", False)) as tw:
        a = data
        for i in range(levels):
            tw.write(a, subfiletype=0 if i == 0 else 1, **kw)
            a = half(a)


def codec_fixtures():
    """Small tiled files, one per codec, for the mutation oracle of tests/tiff_codecs.rs
    (testdata/tiff/codecs/), and the strict-codec regression files in malformed/: tiles whose
    streams decode to more than the tile, or are damaged after filling it."""
    import imagecodecs

    crng = np.random.default_rng(99)
    cdir = os.path.join(HERE, "codecs")
    os.makedirs(cdir, exist_ok=True)
    y, x = np.mgrid[0:40, 0:56]
    base = np.stack([(120 + 90 * np.sin(x / 9.0 + k) * np.cos(y / 7.0)) for k in range(3)], -1)
    rgb8 = np.clip(base + crng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
    runs = (rgb8[..., 0] // 32 * 32).astype(np.uint8)  # long runs, and some literals below
    runs[::5] = rgb8[::5, :, 1]
    u16 = (rgb8[..., 1].astype(np.uint16) * 97 + crng.integers(0, 50, (40, 56))).astype(np.uint16)
    c = lambda n: os.path.join(cdir, n)
    tifffile.imwrite(c("deflate_rgb8.tif"), rgb8, tile=(16, 16), photometric="rgb", compression="zlib")
    tifffile.imwrite(c("zstd_u16.tif"), u16, tile=(16, 32), compression="zstd", predictor=True)
    tifffile.imwrite(c("lzw_rgb8.tif"), rgb8, tile=(16, 16), photometric="rgb", compression="lzw", predictor=True)
    tifffile.imwrite(c("packbits_gray8.tif"), runs, tile=(16, 16), compression="packbits")
    tifffile.imwrite(c("packbits_strips_gray8.tif"), runs, rowsperstrip=16, compression="packbits")
    tifffile.imwrite(c("jpeg_rgb8.tif"), rgb8, tile=(16, 16), photometric="rgb", compression="jpeg")

    # one 16x16 RGB tile, its stream given: each must be refused (tifffile refuses all but
    # the LZW one, which it silently truncates)
    tile = rgb8[:16, :16].tobytes()
    z = zlib.compress(tile)
    zs = imagecodecs.zstd_encode(tile)
    bad = {
        "deflate-more-than-tile.tif": (zlib.compress(tile + b"extra bytes"), "zlib"),
        "deflate-bad-adler32.tif": (z[:-1] + bytes([z[-1] ^ 0x55]), "zlib"),
        "deflate-truncated.tif": (z[:-6], "zlib"),
        "zstd-more-than-tile.tif": (imagecodecs.zstd_encode(tile + b"extra bytes"), "zstd"),
        "zstd-trailing-data.tif": (zs + b"\x01\x02\x03\x04", "zstd"),
        "packbits-more-than-tile.tif": (imagecodecs.packbits_encode(tile + b"extra bytes"), "packbits"),
        "lzw-more-than-tile.tif": (imagecodecs.lzw_encode(tile + b"extra bytes"), "lzw"),
    }
    for name, (blob, comp) in bad.items():
        tifffile.imwrite(os.path.join(MAL, name), iter([blob]), shape=(16, 16, 3), dtype="uint8",
                         tile=(16, 16), photometric="rgb", compression=comp)
    # a JPEG tile cut short: libjpeg only warns ("premature end") and fills the rest with grey
    with tifffile.TiffFile(c("jpeg_rgb8.tif")) as t:
        pg = t.pages[0]
        tables = pg.jpegtables
        t.filehandle.seek(pg.dataoffsets[0])
        j = t.filehandle.read(pg.databytecounts[0])
    tifffile.imwrite(os.path.join(MAL, "jpeg-truncated.tif"), iter([j[: len(j) - 6]]), shape=(16, 16, 3),
                     dtype="uint8", tile=(16, 16), photometric="rgb", compression="jpeg", jpegtables=tables)


if sys.argv[1:] == ["codecs"]:
    codec_fixtures()
    sys.exit(0)

rgb = smooth_rgb(250, 333)
gray16 = (rng.integers(0, 4000, (190, 210)) + np.arange(210) * 100).astype(np.uint16)
f32 = rng.normal(0, 1, (130, 150)).astype(np.float32)

# tifffile: uncompressed pyramid (chained pages, NewSubfileType=1), deflate, LZW+predictor,
# zstd, JPEG, BigTIFF, big-endian, stripped, planar separate, OME-TIFF with SubIFDs.
pyramid(p("tifffile_none_rgb8.tif"), rgb, 3, tile=(64, 64), photometric="rgb")
tifffile.imwrite(p("tifffile_deflate_rgb8.tif"), rgb, tile=(64, 64), photometric="rgb", compression="adobe_deflate")
tifffile.imwrite(p("tifffile_lzw_pred_u16.tif"), gray16, tile=(32, 48), compression="lzw", predictor=True)
tifffile.imwrite(p("tifffile_zstd_f32.tif"), f32, tile=(32, 32), compression="zstd")
tifffile.imwrite(p("tifffile_deflate_fpred_f32.tif"), f32, tile=(32, 32), compression="deflate", predictor=3)
tifffile.imwrite(p("tifffile_jpeg_rgb8.tif"), rgb, tile=(64, 64), photometric="rgb", compression="jpeg")
tifffile.imwrite(p("tifffile_jpeg_gray8.tif"), rgb[..., 0], tile=(64, 64), compression="jpeg")
tifffile.imwrite(p("tifffile_bigtiff_gray8.tif"), rgb[..., 1], tile=(48, 64), bigtiff=True)
tifffile.imwrite(p("tifffile_bigendian_u16.tif"), gray16, tile=(64, 64), byteorder=">")
tifffile.imwrite(p("tifffile_strips_rgb8.tif"), rgb, photometric="rgb", rowsperstrip=40, compression="lzw")
tifffile.imwrite(p("tifffile_rgba8.tif"), smooth_rgb(100, 90, 4), tile=(32, 32), photometric="rgb", extrasamples=[2])
tifffile.imwrite(p("unsupported_planar_separate.tif"), np.moveaxis(rgb, -1, 0), tile=(64, 64), photometric="rgb", planarconfig="separate")
with tifffile.TiffWriter(p("tifffile_ome_subifds.ome.tif"), ome=True) as tw:
    tw.write(rgb, tile=(64, 64), photometric="rgb", subifds=2, metadata={"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
    tw.write(half(rgb), tile=(64, 64), photometric="rgb", subfiletype=1)
    tw.write(half(half(rgb)), tile=(64, 64), photometric="rgb", subfiletype=1)

# An Aperio-SVS-like layout: tiled JPEG level 0, stripped thumbnail as page 2, a tiled reduced
# level, then label and macro pages named in their descriptions.
svs_desc = ("Aperio Image Library v12.0.15 \r\n333x250 [0,0 333x250] (64x64) JPEG/RGB Q=70"
            "|AppMag = 20|StripeWidth = 2040|ScanScope ID = SS1234|Filename = test|MPP = 0.4990"
            "|Left = 25.0|Top = 23.5|Date = 12/29/09|Time = 09:59:15")
with tifffile.TiffWriter(p("svs_like.svs")) as tw:
    tw.write = functools.partial(tw.write, metadata=None)
    tw.write(rgb, tile=(64, 64), photometric="rgb", compression="jpeg", description=svs_desc)
    tw.write(half(half(rgb)), photometric="rgb", compression="jpeg", description="Aperio Image Library v12.0.15 \r\n333x250 -> 83x62 - |AppMag = 20|MPP = 0.4990", rowsperstrip=16)
    tw.write(half(rgb), tile=(64, 64), photometric="rgb", compression="jpeg", description="Aperio Image Library v12.0.15 \r\n333x250 -> 167x125 - ", subfiletype=0)
    tw.write(smooth_rgb(60, 80), photometric="rgb", compression="lzw", subfiletype=1, description="Aperio Image Library v12.0.15\r\nlabel 80x60")
    tw.write(smooth_rgb(70, 120), photometric="rgb", compression="jpeg", subfiletype=9, description="Aperio Image Library v12.0.15\r\nmacro 120x70")

# libvips and libtiff.
src = os.path.join(MAL, "_vips_src.tif")
tifffile.imwrite(src, smooth_rgb(300, 400), photometric="rgb", metadata=None)
subprocess.run(["vips", "tiffsave", src, p("vips_jpeg_pyramid.tif"), "--tile", "--pyramid", "--compression", "jpeg", "--Q", "90", "--tile-width", "64", "--tile-height", "64"], check=True)
subprocess.run(["vips", "tiffsave", src, p("vips_deflate_pyramid.tif"), "--tile", "--pyramid", "--compression", "deflate", "--tile-width", "64", "--tile-height", "64"], check=True)
subprocess.run(["tiffcp", "-t", "-w", "64", "-l", "64", "-c", "lzw:2", p("tifffile_strips_rgb8.tif"), p("tiffcp_tiled_lzw.tif")], check=True)
os.remove(src)

# JPEG 2000 (Aperio 33003): an uncompressed file with its Compression tag patched, enough to
# check the error message names the compression.
tifffile.imwrite(p("unsupported_jp2k_33003.tif"), rgb[:64, :64], tile=(64, 64), photometric="rgb")


def entry(path, tagname, page=0):
    with tifffile.TiffFile(path) as t:
        tag = t.pages[page].tags[tagname]
        return tag.offset, tag.valueoffset


def patch(path, offset, fmt, value, out=None):
    data = bytearray(open(path, "rb").read())
    struct.pack_into(fmt, data, offset, *value if isinstance(value, tuple) else (value,))
    open(out or path, "wb").write(data)


# Aperio writes JPEG tiles coded YCbCr but tags the page Photometric=RGB: do the same.
with tifffile.TiffFile(p("svs_like.svs")) as t:
    photo = [pg.tags["PhotometricInterpretation"].offset for pg in t.pages if pg.compression == 7]
for o in photo:
    patch(p("svs_like.svs"), o + 8, "<H", 2)

off, _ = entry(p("unsupported_jp2k_33003.tif"), "Compression")
patch(p("unsupported_jp2k_33003.tif"), off + 8, "<H", 33003)

# Malformed files, all derived from one small valid tiled file.
base = os.path.join(MAL, "_base.tif")
tifffile.imwrite(base, rgb[:100, :120], tile=(32, 32), photometric="rgb")
raw = open(base, "rb").read()
open(os.path.join(MAL, "truncated.tif"), "wb").write(raw[: len(raw) // 2])
_, voff = entry(base, "TileOffsets")
patch(base, voff + 4, "<I", 0x7FFF0000, os.path.join(MAL, "offset_past_eof.tif"))
_, voff = entry(base, "TileByteCounts")
patch(base, voff + 8, "<I", 0, os.path.join(MAL, "zero_bytecount.tif"))
eoff, _ = entry(base, "ImageWidth")
patch(base, eoff + 2, "<HII", (4, 1, 500), os.path.join(MAL, "tile_count_mismatch.tif"))
patch(base, eoff + 2, "<HII", (4, 1, 0xFFFFFFFF), os.path.join(MAL, "absurd_dimensions.tif"))
with tifffile.TiffFile(base) as t:
    ifd = t.pages[0].offset
    n = struct.unpack_from("<H", raw, ifd)[0]
patch(base, ifd + 2 + 12 * n, "<I", ifd, os.path.join(MAL, "ifd_loop.tif"))
open(os.path.join(MAL, "not_a_tiff.tif"), "wb").write(b"GIF89a" + bytes(100))
open(os.path.join(MAL, "empty.tif"), "wb").write(b"")
os.remove(base)

# Expected pixels, as tifffile decodes them.
lines = []
for name in sorted(os.listdir(HERE)):
    if not name.endswith((".tif", ".svs")) or name.startswith("unsupported"):
        continue
    with tifffile.TiffFile(p(name)) as t:
        s = t.series[0]
        for i, lvl in enumerate(s.levels):
            a = lvl.asarray()
            if a.ndim == 2:
                a = a[..., None]
            a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
            lines.append(f"level {name} {i} {a.shape[0]} {a.shape[1]} {a.shape[2]} {a.dtype.name} {zlib.crc32(a.tobytes()):08x}")
        if name.endswith(".svs"):
            for ser in t.series[1:]:
                a = ser.asarray()
                lines.append(f"assoc {name} {ser.name.lower()} {a.shape[0]} {a.shape[1]} {a.shape[2]} {a.dtype.name} {zlib.crc32(a.tobytes()):08x}")
        if any(pg.compression == 7 for pg in t.pages):
            lines.append(f"lossy {name}")
open(p("expected.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
