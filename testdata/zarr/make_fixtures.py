"""Writes the Zarr fixtures in this folder with zarr-python (3.x) and numcodecs.

Each fixture `NAME.zarr` has a sibling `NAME.bin`: the array's expected contents, C order,
little-endian, as zarr-python reads them back. Run from this folder:

    python3 make_fixtures.py

The data are deterministic pseudo-random values (not zeros), so that misplaced chunks show.
"""
import shutil
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

HERE = Path(__file__).resolve().parent


def data(shape, dtype):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.uint64)
    if np.dtype(dtype).kind == "f":
        v = (np.arange(n, dtype=np.float32) * np.float32(0.37) - np.float32(11.5)).astype(dtype)
    else:
        v = ((i * np.uint64(2654435761) + np.uint64(12345)) % np.uint64(2**32)).astype(dtype)
    return v.reshape(shape)


def fixture(name, shape, dtype, chunks, zarr_format=3, shards=None, compressors=None,
            fill_value=0, write=None, **kw):
    path = HERE / f"{name}.zarr"
    shutil.rmtree(path, ignore_errors=True)
    a = zarr.create_array(store=str(path), shape=shape, dtype=dtype, chunks=chunks, shards=shards,
                          compressors=compressors, zarr_format=zarr_format, fill_value=fill_value,
                          **kw)
    d = data(shape, dtype)
    if write is None:
        a[...] = d
    else:  # only part written: the rest is fill value
        a[write] = d[write]
    back = zarr.open_array(str(path), mode="r")[...]
    back.astype(back.dtype.newbyteorder("<")).tofile(HERE / f"{name}.bin")


fixture("v3_u8_raw", (37, 45, 3), "uint8", (16, 16, 3), compressors=None)
fixture("v3_u16_zstd", (50, 33), "uint16", (16, 16), compressors=ZstdCodec(level=3))
fixture("v3_u32_blosc", (40, 21), "uint32", (8, 16),
        compressors=BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"))
fixture("v3_f32_gzip", (3, 20, 30), "float32", (2, 8, 8), compressors=GzipCodec(level=5))
fixture("v3_u8_fill", (40, 40), "uint8", (16, 16), compressors=None, fill_value=7,
        write=(slice(0, 16), slice(0, 40)))
fixture("v3_u8_sharded_raw", (70, 50), "uint8", (16, 16), shards=(32, 32), compressors=None)
fixture("v3_u16_sharded_zstd", (70, 50), "uint16", (16, 16), shards=(32, 32),
        compressors=ZstdCodec(level=1))
fixture("v3_u8_sharded_partial", (70, 50), "uint8", (16, 16), shards=(32, 32), compressors=None,
        fill_value=3, write=(slice(0, 20), slice(0, 50)))
fixture("v2_u8_raw", (37, 45), "uint8", (16, 16), zarr_format=2, compressors=None)
fixture("v2_u16_zlib", (50, 33), "uint16", (16, 16), zarr_format=2,
        compressors=__import__("numcodecs").Zlib(level=4))
fixture("v2_f32_blosc", (20, 30), "float32", (8, 8), zarr_format=2,
        compressors=__import__("numcodecs").Blosc(cname="zstd", clevel=3))
fixture("v2_u32_zstd_slash", (20, 30), "uint32", (8, 8), zarr_format=2,
        compressors=__import__("numcodecs").Zstd(level=2), chunk_key_encoding={"name": "v2", "separator": "/"})
fixture("v2_u16_bigendian", (20, 30), ">u2", (8, 8), zarr_format=2, compressors=None)
