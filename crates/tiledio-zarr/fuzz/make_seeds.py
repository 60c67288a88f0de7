"""Seeds for the zarr_open fuzz target, from the fixtures in testdata/zarr.

Each seed is a file tree in the harness's record format (fuzz_targets/harness.rs):
name length (1 byte) | name | data length (u32 LE) | data. Run from this folder:

    python3 make_seeds.py corpus/zarr_open

Seeds: every fixture array of at most 64 KiB, each also wrapped as level "0" of an OME-Zarr
group (0.5 for v3 arrays, 0.4 for v2 ones), and the malformed fixtures (if given --malformed).
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTDATA = HERE.parent.parent.parent / "testdata" / "zarr"


def encode(files):
    out = bytearray()
    for name, data in files:
        n = name.encode()
        out += bytes([len(n)]) + n + len(data).to_bytes(4, "little") + data
    return bytes(out)


def tree(root, prefix=""):
    files = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            files.append((prefix + p.relative_to(root).as_posix(), p.read_bytes()))
    return files


def ome_group(files, v3):
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    ds = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}]
    if v3:
        g = {"zarr_format": 3, "node_type": "group",
             "attributes": {"ome": {"version": "0.5", "multiscales": [{"axes": axes, "datasets": ds}]}}}
        return [("zarr.json", json.dumps(g).encode())] + files
    attrs = {"multiscales": [{"version": "0.4", "axes": axes, "datasets": ds}]}
    return [(".zgroup", b'{"zarr_format": 2}'), (".zattrs", json.dumps(attrs).encode())] + files


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    dirs = sorted(TESTDATA.glob("*.zarr"))
    if "--malformed" in sys.argv:
        dirs += sorted((TESTDATA / "malformed").glob("*.zarr"))
    for d in dirs:
        files = tree(d)
        if sum(len(b) for _, b in files) > 65536:
            continue
        (out / d.name).write_bytes(encode(files))
        v3 = any(n == "zarr.json" for n, _ in files)
        level = tree(d, "0/")
        (out / ("ome-" + d.name)).write_bytes(encode(ome_group(level, v3)))


if __name__ == "__main__":
    main()
