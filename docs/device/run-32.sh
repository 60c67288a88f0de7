#!/usr/bin/env bash
# Device run 32: the suite's pipeline part (the 1.81 GB slide, global vs tiled Sobel round trip,
# peers) and a reduced write part (16384² RGB from GPU memory, chunks of 512, 1024 and 4096,
# sharded or not, none and zstd, peers), each with its own report: run 31 showed the default
# write and pipeline parts together do not fit one 10-minute device call.
# Carry [".device", ".whl"] as in run 31.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/tb
echo "=== bench all --parts pipeline"
timeout 250 bash $B tiledio bench all --parts pipeline --dir /tmp/tb --tiles 512 --jpeg-tiles 0 --out /tmp/pipeline 2>&1 | tail -20
tar czf $OUT/pipeline.tgz -C /tmp pipeline 2>/dev/null
rm -rf /tmp/tb/*.tif
echo "=== bench all --parts write"
timeout 270 bash $B tiledio bench all --parts write --dir /tmp/tb --chunks 512,1024,4096 --codecs none,zstd --out /tmp/write 2>&1 | tail -40
tar czf $OUT/write.tgz -C /tmp write 2>/dev/null
