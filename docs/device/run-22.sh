#!/usr/bin/env bash
# Device run 22: after uncompressed TIFF tiles are read by the rows a window needs, the
# register-resident ptycho kernels for bins 1/2/4, and the double-buffered pinned GPU path for
# compressed frame stores: the GPU tests of those parts, then the ptycho kernel against JAX's
# (same call), the hdf5 row, and the pipeline comparison three times (9 repeats each).
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in test-ptycho_gpu test-tiff_gpu test-hdf5_write test-pipeline; do
  echo "== $t"
  timeout 200 bash $B $t --include-ignored --nocapture 2>&1 | grep -E "test result|panicked|FAILED|µs/frame|^test .*(ok|FAILED)$" | head -30
done
echo "== JAX, the same kernel on a GPU-resident stack (512 frames, crop 1024, bin 2)"
timeout 200 bash $B python3 .device/peers/ptycho_peers.py 512 1024 2 2>&1 | grep -v "^$" | tail -8
echo "== tiledio bench ptycho (kernel, hdf5, peers)"
mkdir -p /tmp/pt
timeout 300 bash $B tiledio bench ptycho --dir /tmp/pt --device gpu --frames 1024 --repeats 5 --rows kernel,hdf5
echo "== pipeline"
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
mkdir -p /tmp/pipe
for i in 1 2 3; do
  timeout 250 bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile 4096 --repeats 9
done
