#!/usr/bin/env python3
"""Writes the ptychography frame-store fixtures of tiledio-ptycho's tests (a few hundred KB).

Run from this folder: `python3 make_fixtures.py` (numpy; h5py and hdf5plugin for the HDF5
files). Frames: 6 frames of 64x80 uint16 (a bright spot on Poisson noise over a dark level);
a dark stack of 4 frames. The preprocessing reference is written step by step in NumPy with
integer-valued data, so float32 sums are exact and the comparison is bitwise.
"""
import json
import os
import sys

import numpy as np

ONLY_EXTRA = "--only-extra" in sys.argv  # write only the HDF5 reader's extra fixtures

rng = np.random.default_rng(1234)
N, H, W = 6, 64, 80
yy, xx = np.mgrid[:H, :W]
spot = 3000.0 * np.exp(-((yy - 30) ** 2 + (xx - 44) ** 2) / 40.0)
dark_level = 100 + rng.integers(0, 5, size=(H, W))
frames = np.stack([rng.poisson(spot) + dark_level + rng.integers(-3, 4, size=(H, W)) for _ in range(N)]).astype(np.uint16)
darks = np.stack([dark_level + rng.integers(-2, 3, size=(H, W)) for _ in range(4)]).astype(np.uint16)

if ONLY_EXTRA:
    assert (np.load("frames.npy") == frames).all()
np.save("frames.npy", frames) if not ONLY_EXTRA else None
np.save("darks.npy", darks) if not ONLY_EXTRA else None
# raw: a 512-byte header, frames at a stride of the frame size + 64 bytes of padding
with open("frames.raw" if not ONLY_EXTRA else os.devnull, "wb") as f:
    f.write(b"\xab" * 512)
    for fr in frames:
        f.write(fr.astype("<u2").tobytes())
        f.write(b"\xcd" * 64)


def preprocess(frames, dark, crop, bin_, center, reduce, clamp_first, orientation, out):
    """The documented semantics: crop (zero outside), dark, clamp, bin, orient, convert."""
    cy, cx = center if center is not None else (H // 2, W // 2)
    y0, x0 = cy - crop // 2, cx - crop // 2
    res = []
    for fr in frames:
        win = np.zeros((crop, crop), np.float32)
        valid = np.zeros((crop, crop), bool)
        for u in range(crop):
            for v in range(crop):
                y, x = y0 + u, x0 + v
                if 0 <= y < H and 0 <= x < W:
                    win[u, v] = np.float32(fr[y, x]) - np.float32(dark[y, x])
                    valid[u, v] = True
        if clamp_first:
            win = np.where(win > 0, win, np.float32(0))
        win[~valid] = 0
        n = crop // bin_
        b = win.reshape(n, bin_, n, bin_).sum(axis=(1, 3), dtype=np.float32)
        if not clamp_first:
            b = np.where(b > 0, b, np.float32(0))
        if reduce == "mean":
            b = b / np.float32(bin_ * bin_)
        t, ud, lr = orientation & 4, orientation & 2, orientation & 1
        if t:
            b = b.T
        if ud:
            b = b[::-1, :]
        if lr:
            b = b[:, ::-1]
        if out == "uint16":
            b = np.clip(np.rint(b), 0, 65535).astype(np.uint16)
        res.append(np.ascontiguousarray(b))
    return np.stack(res)


dark = darks.astype(np.float64).mean(axis=0).astype(np.float32)
cases = [
    dict(name="sum_centre", crop=32, bin=2, center=None, reduce="sum", clamp_first=True, orientation=0, out="float32"),
    dict(name="mean_edge", crop=40, bin=4, center=[10, 70], reduce="mean", clamp_first=False, orientation=5, out="float32"),
    dict(name="sum_u16", crop=48, bin=3, center=[30, 40], reduce="sum", clamp_first=True, orientation=6, out="uint16"),
]
for c in (cases if not ONLY_EXTRA else []):
    ref = preprocess(frames, dark, c["crop"], c["bin"], c["center"], c["reduce"], c["clamp_first"], c["orientation"], c["out"])
    np.save(f"ref_{c['name']}.npy", ref)
with open("cases.json" if not ONLY_EXTRA else os.devnull, "w") as f:
    json.dump(cases, f, indent=1)

try:
    import h5py
    import hdf5plugin
except ImportError:  # the HDF5 fixtures need h5py and hdf5plugin
    raise SystemExit(0)




def extra_fixtures():
    """The HDF5 reader's variants and malformed/unsupported cases (tests/hdf5.rs): the first
    3 frames of frames.npy in each layout."""
    f3 = frames[:3]
    # default (earliest) format: v1 B-tree chunks with partial edge chunks, deflate + shuffle,
    # a fill value with unwritten chunks, big-endian and float data, a 2-D frame, soft links
    with h5py.File("h5_variants_v0.h5", "w") as f:
        f.create_dataset("edge", data=f3, chunks=(2, 30, 30), compression="gzip", shuffle=True)
        d = f.create_dataset("fill", shape=f3.shape, dtype=np.uint16, chunks=(1, 64, 80), fillvalue=7)
        d[0:1] = f3[0:1]
        f.create_dataset("be", data=f3.astype(">u2"), chunks=(3, 32, 80))
        f.create_dataset("be_contiguous", data=frames[:1].astype(">i4"))
        f.create_dataset("f32", data=frames[:1].astype(np.float32))
        f.create_dataset("two_d", data=frames[0])
        f["soft"] = h5py.SoftLink("/edge")
        g = f.create_group("g")
        g["inner"] = f["edge"]  # a second hard link
        g["rel"] = h5py.SoftLink("inner")  # relative to /g
        g["loop1"] = h5py.SoftLink("/g/loop2")
        g["loop2"] = h5py.SoftLink("/g/loop1")
        f.create_dataset("lzf", data=frames[:1], chunks=(1, 64, 80), compression="lzf")
        f.create_dataset("one_d", data=np.arange(10, dtype=np.uint16))
    # latest format: single chunk, implicit, fixed array (paged), extensible array (super
    # blocks), filtered indexes, a dense group, two unlimited dimensions (v2 B-tree index)
    with h5py.File("h5_variants_latest.h5", "w", libver="latest") as f:
        # at most 8 links per group: more go to dense storage (an unsupported-error case below)
        a = f.create_group("a")
        a.create_dataset("single", data=f3, chunks=f3.shape)
        a.create_dataset("single_bslz4", data=f3, chunks=f3.shape, **hdf5plugin.Bitshuffle(cname="lz4"))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((2, 32, 40))
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        sid = h5py.h5s.create_simple(f3.shape)
        did = h5py.h5d.create(a.id, b"implicit", h5py.h5t.STD_U16LE, sid, dcpl=dcpl)
        did.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(f3))
        a.create_dataset("paged", data=f3, chunks=(1, 2, 4))
        a["soft"] = h5py.SoftLink("/b/ext")
        b = f.create_group("b")
        b.create_dataset("ext", data=f3, chunks=(1, 8, 8), maxshape=(None, 64, 80))
        b.create_dataset("ext_many", data=f3, chunks=(1, 2, 4), maxshape=(None, 64, 80))
        b.create_dataset("ext_bslz4", data=f3, chunks=(1, 64, 80), maxshape=(None, 64, 80), **hdf5plugin.Bitshuffle(cname="lz4"))
        d = b.create_dataset("ext_fill", shape=(0, 64, 80), dtype=np.uint16, chunks=(1, 64, 80), maxshape=(None, 64, 80), fillvalue=7)
        d.resize((3, 64, 80))
        d[0:1] = f3[0:1]
        d[2:3] = f3[2:3]
        b.create_dataset("edge_lz4", data=f3, chunks=(2, 30, 30), **hdf5plugin.LZ4())
        g = f.create_group("dense")
        for i in range(20):
            g.create_dataset(f"d{i:02d}", data=np.zeros((1, 2, 2), np.uint8))
        f.create_dataset("unlimited2", data=frames[:1], chunks=(1, 64, 80), maxshape=(None, None, 80))
    # an Eiger master whose second data file is missing, and links that loop across files
    with h5py.File("eiger_broken_master.h5", "w") as f:
        g = f.create_group("entry/data")
        g["data_000001"] = h5py.ExternalLink("eiger_data_000001.h5", "/entry/data/data")
        g["data_000002"] = h5py.ExternalLink("eiger_data_missing.h5", "/entry/data/data")
    # a master of 10 data files keeps its links in dense storage (read by the DECTRIS naming)
    with h5py.File("eiger_dense_master.h5", "w") as f:
        g = f.create_group("entry/data")
        for i in range(1, 11):
            g[f"data_{i:06d}"] = h5py.ExternalLink(f"eiger_dense_data_{i:06d}.h5", "/entry/data/data")
    with h5py.File("h5_link_loop.h5", "w") as f:
        f["a"] = h5py.ExternalLink("h5_link_loop.h5", "/b")
        f["b"] = h5py.ExternalLink("h5_link_loop.h5", "/a")


if ONLY_EXTRA:
    extra_fixtures()
    raise SystemExit(0)

with h5py.File("h5_contiguous.h5", "w") as f:
    f.create_dataset("entry/data/data", data=frames)
with h5py.File("h5_chunked.h5", "w") as f:
    f.create_dataset("entry/data/data", data=frames, chunks=(1, H, W))
with h5py.File("h5_chunked_latest.h5", "w", libver="latest") as f:
    f.create_dataset("entry/data/data", data=frames, chunks=(1, H, W))
with h5py.File("h5_bslz4.h5", "w") as f:
    f.create_dataset("entry/data/data", data=frames, chunks=(1, H, W), **hdf5plugin.Bitshuffle(cname="lz4"))
with h5py.File("h5_lz4.h5", "w") as f:
    f.create_dataset("entry/data/data", data=frames, chunks=(1, H, W), **hdf5plugin.LZ4())
# Eiger-like: a data file with frames 0..3 and one with 3..6, a master linking to both
for i, (a, b) in enumerate([(0, 3), (3, 6)], start=1):
    with h5py.File(f"eiger_data_{i:06d}.h5", "w") as f:
        f.create_dataset("entry/data/data", data=frames[a:b], chunks=(1, H, W), **hdf5plugin.Bitshuffle(cname="lz4"))
with h5py.File("eiger_master.h5", "w") as f:
    g = f.create_group("entry/data")
    for i in (1, 2):
        g[f"data_{i:06d}"] = h5py.ExternalLink(f"eiger_data_{i:06d}.h5", "/entry/data/data")
extra_fixtures()
print("fixtures written:", sorted(os.listdir(".")))
