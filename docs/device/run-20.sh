#!/usr/bin/env bash
# Device run 20: the pipeline comparison again at tiles of 4096 (the new default), twice, to see
# how stable run 18's 1.06x is (interleaved repeats, 7 each).
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
mkdir -p /tmp/pipe
for i in 1 2; do
  timeout 250 bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile 4096 --repeats 7
done
