#!/usr/bin/env bash
# Device run 36: after run 35 (the whole suite), the Sobel-kernel rows again with the
# device-to-device copy waited for (run 35 timed only its launch), through the suite's pipeline
# part on the small test slide; then the ptycho kernel against JAX's jitted function a second
# time, with the bslz4 and hdf5 rows (run 35: 4,144 and 4,576 frames/s, run 34: 5,203, 5,162).
# Carry [".device", ".whl"].
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/tk
timeout 200 bash $B tiledio bench all --parts pipeline --files testdata/pipeline/he_rgb_u8.tif --dir /tmp/tk --out /tmp/k --log 2>&1 | grep -vE "^\[" | tail -16
cp -r /tmp/k "$OUT/kernel"; rm -f "$OUT"/kernel/*.png "$OUT"/kernel/rows.json
timeout 300 bash $B tiledio bench ptycho --dir /tmp/pt --device gpu --frames 1024 --repeats 5 --rows kernel,bslz4,hdf5,peers 2>&1 | grep -vE "^\s+(device|I/O):" | tail -14
