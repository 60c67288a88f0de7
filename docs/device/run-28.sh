#!/usr/bin/env bash
# Device run 28 (issue 12): random 256² patches into GPU memory after the batch path was
# changed (each batch read on the CPU into a kept page-locked buffer, small uncompressed
# windows copied out of a mapping of the file, one copy to the GPU per batch), against
# cuCIM's batch read_region in the same call; the per-call cost of small read_region calls.
# Carry [".device", ".whl"] with .whl = cuCIM, nvImageCodec and the tiledio wheel.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
nproc
timeout 100 bash $B python3 python/benchmarks/patches_vs_cucim.py --make 20000 20000 256 --compression none --file /tmp/p_raw.tif --count 16 --repeats 1 --tools tiledio 2>&1 | tail -2
echo "=== uncompressed 256² tiles, 10,000 patches, batch 64, 8 workers; cuCIM reads to host (its GPU path takes JPEG only)"
timeout 150 bash $B python3 python/benchmarks/patches_vs_cucim.py --file /tmp/p_raw.tif --count 10000 --batch-size 64 --workers 8 --repeats 5 --cucim-device cpu 2>&1 | tail -3
echo "=== the same, 16 workers"
timeout 150 bash $B python3 python/benchmarks/patches_vs_cucim.py --file /tmp/p_raw.tif --count 10000 --batch-size 64 --workers 16 --repeats 5 --cucim-device cpu 2>&1 | tail -3
echo "=== per-call cost of small read_region calls (NumPy), 4096² slide, tiles of 512 and 256"
timeout 60 bash $B python3 python/benchmarks/read_overhead.py --tile 512 2>&1 | tail -4
timeout 60 bash $B python3 python/benchmarks/read_overhead.py --tile 256 2>&1 | tail -4
timeout 60 bash $B python3 python/benchmarks/read_overhead.py --tile 512 --out 2>&1 | tail -4
echo "=== JPEG tiles (tiledio.convert q90), cuCIM on the CPU too"
timeout 120 bash $B python3 -c "
import tiledio, time; t = time.perf_counter()
tiledio.convert('/tmp/p_raw.tif', '/tmp/p_jpeg.tif', tile=256, compression='jpeg', quality=90, levels=1); print('convert %.1f s' % (time.perf_counter() - t))"
timeout 150 bash $B python3 python/benchmarks/patches_vs_cucim.py --file /tmp/p_jpeg.tif --count 10000 --batch-size 64 --workers 8 --repeats 3 --cucim-device cpu 2>&1 | tail -3
