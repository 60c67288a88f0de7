#!/usr/bin/env bash
# Device run 29: the GPU tests of the kernels, I/O and TIFF crates after the de-duplication
# (shared CUDA prologues in ptycho.cu and colour.cu, shared read/write planning), then the
# benchmark suite's read part on 24576² slides with tiles of 256 and 512 and a JPEG one
# (peers: tifffile + CuPy, KvikIO, cuCIM where it imports). Carry [".device", ".whl"]
# (.whl: KvikIO, libkvikio, rapids_logger, cuCIM, the tiledio wheel).
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "=== GPU tests"
for t in test-kernels_gpu test-filters_gpu test-ptycho_gpu test-gpu test-tiff_gpu; do
  timeout 120 bash $B $t --include-ignored 2>&1 | grep -E "test result|panicked|FAILED|failed"
done
echo "=== bench all --parts read"
mkdir -p /tmp/tb
timeout 480 bash $B tiledio bench all --parts read --dir /tmp/tb --tiles 256,512 --jpeg-tiles 512 --out /tmp/read-a 2>&1 | grep -v "^\s*$" | tail -60
tar czf $OUT/read-a.tgz -C /tmp read-a 2>/dev/null; ls -la /tmp/read-a
