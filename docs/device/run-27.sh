#!/usr/bin/env bash
# Device run 27 (issue 12): 10,000 random 256² patches into GPU memory, tiledio's read_regions
# against cuCIM's batch read_region on the same JPEG-tiled file and locations (each tool in a
# subprocess), then level 0 of the 1.81 GB slide from Python beside KvikIO-16 in the same call.
# Carry [".device", ".whl"] with .whl = cuCIM, nvImageCodec, KvikIO and the tiledio wheel.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
# tifffile needs imagecodecs (not on the GPU machine) to write JPEG: write the slide uncompressed
# with tifffile, then JPEG tiles (q90, 256²) with tiledio.convert
timeout 200 bash $B python3 python/benchmarks/patches_vs_cucim.py --make 20000 20000 256 --compression none --file /tmp/p_raw.tif --count 16 --repeats 1 --tools tiledio 2>&1 | tail -3
timeout 200 bash $B python3 -c "
import tiledio, time; t = time.perf_counter()
print(tiledio.convert('/tmp/p_raw.tif', '/tmp/p_jpeg.tif', tile=256, compression='jpeg', quality=90, levels=1), '%.1f s' % (time.perf_counter() - t))"
timeout 400 bash $B python3 python/benchmarks/patches_vs_cucim.py --file /tmp/p_jpeg.tif --count 10000 --batch-size 64 --workers 8 --repeats 5 2>&1 | tail -15
echo "=== uncompressed, cuCIM on the CPU (its GPU path takes JPEG only)"
timeout 300 bash $B python3 python/benchmarks/patches_vs_cucim.py --file /tmp/p_raw.tif --count 10000 --batch-size 64 --workers 8 --repeats 3 --cucim-device cpu 2>&1 | tail -15
echo "=== level 0 from Python beside KvikIO-16"
[ -f /tmp/slide.tif ] || bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --only kvikio-16threads
bash $B python3 -c "
import time, statistics, cupy as cp, tiledio
s = tiledio.open_slide('/tmp/slide.tif'); w, h = s.level_dimensions[0]
t = []
for i in range(8):
    cp.cuda.runtime.deviceSynchronize(); t0 = time.perf_counter()
    x = s.read_region((0, 0), 0, (w, h), device='cuda'); cp.cuda.runtime.deviceSynchronize()
    t.append(time.perf_counter() - t0); del x
print('python read_region level 0 -> cuda: median %.1f ms (min %.1f)' % (statistics.median(t[1:]) * 1e3, min(t[1:]) * 1e3))"
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --only kvikio-16threads
