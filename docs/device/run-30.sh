#!/usr/bin/env bash
# Device run 30: the benchmark suite's read part on the 1.81 GB 24576² slide (tiles of 512)
# and a JPEG one (tiles of 512), 16 threads, warm and cold, 3 repeats, with the peers that
# import (tifffile + CuPy, KvikIO, cuCIM). Run 29 showed the default read part (four tile
# sizes, 16 and 32 threads) does not fit one 10-minute device call.
# Carry [".device", ".whl"] (.whl: KvikIO, libkvikio, rapids_logger, cuCIM, the tiledio wheel).
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/tb
timeout 540 bash $B tiledio bench all --parts read --dir /tmp/tb --tiles 512 --jpeg-tiles 512 --threads 16 --out /tmp/read 2>&1 | tail -60
tar czf $OUT/read.tgz -C /tmp read 2>/dev/null; ls /tmp/read
