#!/usr/bin/env python3
"""A whole level 0 into one CuPy array from Python (``Slide.read_region(..., device="cuda")``)
against the Rust benchmark (``tiledio bench slide FILE --device gpu --json``) in the same call,
on the same file, warm page cache, the same thread count. Prints one JSON line with both
medians and their ratio (the Python binding's target: within 5% of Rust).

The Python side times what a user's call costs: ``read_region`` of the whole level into a new
GPU array, taken by CuPy without a copy (``cupy.asarray``), and a device synchronise before
the clock stops (the read has finished on return; the synchronise only makes that visible).
Both sides read with ``--threads`` I/O threads (``TILEDIO_THREADS``; the CLI's ``--threads``).

Needs: a GPU, CuPy, tiledio (the wheel) and the ``tiledio`` CLI (``--cli PATH``, default
``tiledio`` on PATH) built from the same commit.

    python3 level0_vs_rust.py /scratch/slide.tif --threads 16 --repeats 7 --cli ./target/release/tiledio
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def python_side(path: str, level: int, repeats: int) -> dict:
    import cupy as cp

    import tiledio

    s = tiledio.open_slide(path)
    w, h = s.level_dimensions[level]
    ref = None

    def once():
        t = time.perf_counter()
        x = cp.asarray(s.read_region((0, 0), level, (w, h), device="cuda"))
        cp.cuda.Device().synchronize()
        return time.perf_counter() - t, x

    _, x = once()  # warm-up: page cache, staging, contexts
    ref = int(cp.asnumpy(x[:: max(1, h // 64), :: max(1, w // 64)].sum()))
    del x
    times = []
    for _ in range(repeats):
        dt, x = once()
        del x
        times.append(dt)
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
            "times_ms": [t * 1e3 for t in times], "checksum": ref, "width": w, "height": h}


def rust_side(cli: str, path: str, level: int, threads: int, repeats: int) -> dict:
    r = subprocess.run([cli, "bench", "slide", path, "--level", str(level), "--device", "gpu",
                        "--threads", str(threads), "--repeats", str(repeats), "--json"],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        return {"error": f"exit {r.returncode}", "stderr_tail": r.stderr[-2000:]}
    doc = json.loads(r.stdout)
    rows = [row for row in doc.get("rows", []) if row.get("target") == "gpu" and row.get("threads") == threads]
    if not rows:
        return {"error": "no gpu row in the CLI's JSON", "json": doc}
    return {"median_ms": rows[0]["median_ms"], "min_ms": rows[0].get("min_ms"), "row": rows[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--level", type=int, default=0)
    ap.add_argument("--threads", type=int, default=16, help="I/O threads of both sides (default 16, the CLI's)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--cli", default="tiledio", help="the tiledio CLI to run")
    ap.add_argument("--order", choices=["python-first", "rust-first"], default="rust-first")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(python_side(a.file, a.level, a.repeats)))
        return
    with open(a.file, "rb") as f:  # warm the page cache once for both
        while f.read(64 << 20):
            pass
    env = dict(os.environ, TILEDIO_THREADS=str(a.threads))

    def py():
        # a fresh process, as the CLI is: neither side inherits the other's pools or caches
        r = subprocess.run([sys.executable, os.path.abspath(__file__), a.file, "--worker", "--level", str(a.level),
                            "--repeats", str(a.repeats)], capture_output=True, text=True, env=env, timeout=3600)
        if r.returncode != 0:
            return {"error": f"exit {r.returncode}", "stderr_tail": r.stderr[-2000:]}
        return json.loads(r.stdout.strip().splitlines()[-1])

    if a.order == "rust-first":
        rust, python = rust_side(a.cli, a.file, a.level, a.threads, a.repeats), py()
    else:
        python, rust = py(), rust_side(a.cli, a.file, a.level, a.threads, a.repeats)
    out = {"file": a.file, "level": a.level, "threads": a.threads, "repeats": a.repeats,
           "python": python, "rust": rust}
    if "median_ms" in python and "median_ms" in rust:
        out["python_over_rust"] = python["median_ms"] / rust["median_ms"]
        out["within_5_percent"] = out["python_over_rust"] <= 1.05
    print(json.dumps(out))


if __name__ == "__main__":
    main()
