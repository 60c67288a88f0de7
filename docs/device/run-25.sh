#!/usr/bin/env bash
# Device run 25: GPU tests of what changed (streams on several connections with page-locked
# double-buffered batches; small reads on the calling thread), the Python GPU tests, then in
# one call: issue 8's figures (level 0 beside KvikIO-16, Zarr chunk reads and sharded writes),
# issue 12's (Python level 0 against the Rust bench, per-call overhead) and issue 10's stream
# rows beside pyzmq. Carry [".device", ".whl"] (.whl: KvikIO, pyzmq, pytest, the tiledio wheel).
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "=== GPU tests"
for t in test-stream test-gpu test-tiff_gpu; do
  timeout 120 bash $B $t --include-ignored 2>&1 | grep -E "^test |test result|panicked"
done
echo "=== Python GPU tests"
timeout 150 bash $B python3 -m pytest python/tests/test_gpu.py python/tests/test_dlpack.py python/tests/test_small_reads.py -q -ra -p no:cacheprovider 2>&1 | tail -8
echo "=== issue 8: level 0 of the 1.81 GB slide into GPU memory: KvikIO-16, ours, KvikIO-16"
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
timeout 120 bash $B tiledio bench slide /tmp/slide.tif --device gpu --threads 8,16 --repeats 7 2>&1 | tail -6
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --only kvikio-16threads
echo "=== issue 12: Python level 0 against the Rust bench; per-call overhead"
timeout 200 bash $B python3 python/benchmarks/level0_vs_rust.py /tmp/slide.tif --threads 16 --repeats 7
timeout 200 bash $B python3 python/benchmarks/level0_vs_rust.py /tmp/slide.tif --threads 8 --repeats 7 --order python-first
timeout 120 bash $B python3 python/benchmarks/read_overhead.py --slide /tmp/slide.tif --repeat 7
timeout 120 bash $B python3 python/benchmarks/read_overhead.py --slide /tmp/slide.tif --repeat 7 --out
echo "=== issue 8: Zarr 512² chunk files and 512² chunks in 4096² shards"
timeout 150 bash $B zarr_bench --size 24576 --dir /tmp/zb --chunks 512 2>&1 | tail -12
echo "=== issue 10: stream rows (4 connections) beside pyzmq"
mkdir -p /tmp/pt
timeout 300 bash $B tiledio bench ptycho --dir /tmp/pt --keep --device gpu --frames 1024 --repeats 5 --rows stream,bslz4,peers
timeout 150 bash $B tiledio bench ptycho --dir /tmp/pt --keep --device gpu --frames 1024 --repeats 3 --rows stream,bslz4 --connections 8
