#!/usr/bin/env bash
# Device run 15: after the pipeline fixes (MultiscaleWriter durability, the hang on a write
# error, reused buffers longer than an edge tile): the GPU pipeline test, the pipeline bench,
# the slide read against KvikIO in the same call, and register-only Sobel variants.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "=== GPU pipeline test"
timeout 180 bash $B test-pipeline --include-ignored 2>&1 | tail -15
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
bash $B tiledio bench slide /tmp/slide.tif --device gpu --threads 8,16 --repeats 7
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --only kvikio-16threads
mkdir -p /tmp/pipe
for t in 2048 4096; do
  timeout 200 bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile $t --repeats 5
done
echo "=== Sobel variants"
timeout 200 python3 docs/device/sobel_regs.py crates/tiledio-kernels/src/cu/sobel.cu 16384
