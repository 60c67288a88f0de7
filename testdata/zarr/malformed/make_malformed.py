"""Writes the malformed Zarr fixtures in this folder (hostile metadata and shard indexes).

Each must give a typed error from tiledio-zarr, never a panic or an abort (tests/zarr_malformed.rs).
They are written by hand (json + struct), not by zarr-python, which refuses most of them.
Run from this folder:

    python3 make_malformed.py

FIFOs and symlinks to /dev/zero are made by the tests themselves (git keeps neither well).
"""
import json
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
U64_MAX = 2**64 - 1


def crc32c(data: bytes) -> int:
    """Castagnoli CRC (the crc32c codec), bitwise: small inputs only."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def v3(shape, chunks, dtype="uint8", codecs=None, node_type="array", attributes=None):
    return {
        "zarr_format": 3,
        "node_type": node_type,
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": codecs if codecs is not None else [{"name": "bytes"}],
        "attributes": attributes or {},
    }


def sharding(inner, inner_codecs):
    return [{
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": inner,
            "codecs": inner_codecs,
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": "end",
        },
    }]


def write(name, meta, files=None):
    d = HERE / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    (d / "zarr.json").write_text(json.dumps(meta, indent=2))
    for rel, data in (files or {}).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return d


def shard_with_index(body: bytes, entries) -> bytes:
    idx = b"".join(struct.pack("<QQ", o, n) for o, n in entries)
    return body + idx + struct.pack("<I", crc32c(idx))


def main():
    # shape of 2^64 - 1 elements.
    write("shape_u64_max.zarr", v3([U64_MAX], [64]))
    # a chunk shape near 2^63 (its byte count, and the chunk grid's extent, overflow).
    write("chunk_near_2p63.zarr", v3([100, 100], [2**63 - 1, 4]))
    # a chunk shape whose element count wraps to 0 in 64 bits (2^32 * 2^32), with a chunk file.
    write("chunk_product_wraps.zarr", v3([64, 64, 3], [2**32, 2**32, 3]),
          {"c/0/0/0": bytes(49152)})
    # a sharded array (zstd inner chunks: the codec path) whose index holds an offset near
    # 2^64, with a valid crc32c.
    body = bytes(64)
    write("shard_offset_near_2p64.zarr",
          v3([8, 8], [8, 8], codecs=sharding([4, 4], [{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}])),
          {"c/0/0": shard_with_index(body, [(U64_MAX - 7, 16), (0, 16), (U64_MAX, U64_MAX), (16, 16)])})
    # the same index in a raw sharded array (the direct path).
    write("shard_raw_offset_near_2p64.zarr",
          v3([8, 8], [8, 8], codecs=sharding([4, 4], [{"name": "bytes"}])),
          {"c/0/0": shard_with_index(bytes(64), [(U64_MAX - 7, 16), (0, 16), (U64_MAX, U64_MAX), (16, 16)])})
    # a shard index whose chunk reaches past the shard body (into the index).
    write("shard_chunk_past_end.zarr",
          v3([8, 8], [8, 8], codecs=sharding([4, 4], [{"name": "bytes"}, {"name": "zstd", "configuration": {"level": 1, "checksum": False}}])),
          {"c/0/0": shard_with_index(bytes(64), [(0, 16), (16, 16), (32, 16), (60, 16)])})
    # 100000 x 100000 x 3 bytes (30 GB) declared by an 8 KB zarr.json: reading it whole must
    # be refused against the memory budget, not abort.
    meta = v3([100000, 100000, 3], [1024, 1024, 3])
    meta["attributes"] = {"padding": "x" * (8192 - len(json.dumps(meta, indent=2)) - 40)}
    write("huge_declared.zarr", meta)
    # OME-Zarr 0.5 groups: a level of shape [2, 2^32, 2^31]; dataset paths escaping the group.
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]

    def ome(paths):
        return {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", "multiscales": [{
            "axes": axes,
            "datasets": [{"path": p, "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]} for p in paths],
        }]}}}

    g = write("ome_level_huge.zarr", ome(["0"]))
    (g / "0").mkdir()
    (g / "0" / "zarr.json").write_text(json.dumps(v3([2, 2**32, 2**31], [1, 256, 256]), indent=2))
    g = write("ome_path_escape.zarr", ome(["../shape_u64_max.zarr"]))
    g = write("ome_path_absolute.zarr", ome(["/etc"]))
    g = write("ome_path_dotdot_inside.zarr", ome(["0/../../huge_declared.zarr"]))
    # a dataset path that names a group, not an array.
    g = write("ome_path_group.zarr", ome(["0"]))
    (g / "0").mkdir()
    (g / "0" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))


if __name__ == "__main__":
    main()
