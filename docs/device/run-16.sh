#!/usr/bin/env bash
# Device run 16: the register-only Sobel kernel (sobel.cu rewritten after run 15's variants):
# the kernel GPU tests (GPU == CPU bit for bit on random windows), then the kernel beside cuCIM,
# cupyx.scipy.ndimage and a D2D copy on a 24576^2 float32 image (the size), in one process.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 bash $B test-filters_gpu --include-ignored 2>&1 | tail -4
timeout 200 bash $B test-kernels_gpu --include-ignored 2>&1 | tail -4

bash $B python3 docs/device/sobel_compare.py crates/tiledio-kernels/src/cu/sobel.cu 24576
bash $B python3 docs/device/sobel_compare.py crates/tiledio-kernels/src/cu/sobel.cu 16384
