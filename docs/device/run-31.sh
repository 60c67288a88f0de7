#!/usr/bin/env bash
# Device run 31 (after merging the de-duplication branches and the mapped small reads): GPU
# tests of the I/O, TIFF, Zarr and stream crates and the Python package; issue 8's figures
# (level 0 into GPU memory beside KvikIO-16, Zarr 512² chunk reads, sharded writes), issue 12's
# (Python level 0 against the Rust bench, per-call cost), the suite's write and pipeline parts.
# Carry [".device", ".whl"] (.whl: KvikIO, libkvikio, rapids_logger, pytest and its needs,
# pyzmq, the tiledio wheel).
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "=== GPU tests"
for t in test-gpu test-tiff_gpu test-zarr_gpu test-stream; do
  timeout 120 bash $B $t --include-ignored 2>&1 | grep -E "test result|panicked|FAILED|failed"
done
echo "=== Python GPU tests"
timeout 150 bash $B python3 -m pytest python/tests/test_gpu.py python/tests/test_dlpack.py python/tests/test_small_reads.py python/tests/test_slide.py -q -ra -p no:cacheprovider 2>&1 | tail -6
echo "=== issue 8: level 0 of the 1.81 GB slide into GPU memory: KvikIO-16, ours, KvikIO-16"
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
timeout 120 bash $B tiledio bench slide /tmp/slide.tif --device gpu --threads 8,16 --repeats 7 2>&1 | tail -4
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --only kvikio-16threads
echo "=== issue 12: Python level 0 against the Rust bench; per-call cost"
timeout 150 bash $B python3 python/benchmarks/level0_vs_rust.py /tmp/slide.tif --threads 8 --repeats 7 --cli .device/bin/tiledio 2>&1 | tail -4
timeout 60 bash $B python3 python/benchmarks/read_overhead.py --tile 512 2>&1 | tail -1
echo "=== issue 8: Zarr 512² chunk files and 512² chunks in 4096² shards"
timeout 100 bash $B zarr_bench --size 24576 --dir /tmp/zb --chunks 512 2>&1 | tail -10
echo "=== bench all --parts write,pipeline"
rm -f /tmp/slide.tif
mkdir -p /tmp/tb
timeout 330 bash $B tiledio bench all --parts write,pipeline --dir /tmp/tb --tiles 512 --jpeg-tiles 0 --out /tmp/wp 2>&1 | tail -45
tar czf $OUT/wp.tgz -C /tmp wp 2>/dev/null
