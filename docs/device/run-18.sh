#!/usr/bin/env bash
# Device run 18: ptychography on the GPU (the fused kernel's and the stream's GPU tests; the
# frame rates of issue 10 with pyzmq and JAX in the same call: tiledio bench ptycho), then the
# pipeline comparison with interleaved repeats (tiles of 2048 and 4096) and the GPU pipeline test.
set -u
B=.device/on-device.sh
# test binaries built in /work/main (ptycho) and /tmp/wt (the rest): both paths lead here
[ -e /work/main ] || { mkdir -p /work && ln -sfn "$PWD" /work/main; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 120 bash $B test-ptycho_gpu --include-ignored 2>&1 | tail -3
timeout 200 bash $B test-stream --include-ignored --nocapture stream_on_the_gpu 2>&1 | tail -3
timeout 120 bash $B test-pipeline --include-ignored --skip zarr_python 2>&1 | tail -3
mkdir -p /tmp/pt
timeout 400 bash $B tiledio bench ptycho --dir /tmp/pt --device gpu --frames 1024 --repeats 5
timeout 300 bash $B python3 .device/peers/ptycho_peers.py 512 1024 2
python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads >/dev/null 2>&1 || bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
mkdir -p /tmp/pipe
for t in 2048 4096; do
  timeout 200 bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile $t --repeats 5
done
