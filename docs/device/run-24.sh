#!/usr/bin/env bash
# Device run 24: the Python package on the GPU (issue 12): its GPU pytest suite (zero-copy into
# CuPy, PyTorch and JAX by pointer, out= into a CuPy array, non-default streams), then its
# performance figures in one call: level 0 of the 1.81 GB slide from Python against the Rust
# bench and KvikIO-16, 10,000 random 256² patches against cuCIM, the per-call overhead.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "== pytest python/tests/test_gpu.py python/tests/test_dlpack.py"
timeout 240 bash $B python3 -m pytest python/tests/test_gpu.py python/tests/test_dlpack.py -ra -q -p no:cacheprovider 2>&1 | tail -25
echo "== slides"
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
bash $B python3 -c "
import numpy as np, tifffile
img = np.random.default_rng(1).integers(0, 255, size=(16384, 16384, 3), dtype=np.uint8)
tifffile.imwrite('/tmp/patch.tif', img, tile=(256, 256), photometric='rgb', bigtiff=False, compression=None)
print('made /tmp/patch.tif (classic TIFF, 256² tiles)')"
echo "== Rust: tiledio bench slide (same call)"
timeout 120 bash $B tiledio bench slide /tmp/slide.tif --device gpu --threads 8,16 --repeats 7 2>&1 | tail -8
echo "== Python"
timeout 400 bash $B python3 docs/device/py_perf.py /tmp/slide.tif /tmp/patch.tif
