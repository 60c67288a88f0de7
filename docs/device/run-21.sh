#!/usr/bin/env bash
# Device run 21: the I/O, Zarr and TIFF GPU tests after reads and writes got separate I/O pools
# (engine::Pool) and the Zarr write fixes.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for t in test-gpu test-zarr_gpu test-tiff_gpu; do
  echo "=== $t"
  timeout 180 bash $B $t --include-ignored 2>&1 | grep -E "^test |test result"
done
