#!/usr/bin/env bash
# Device run 33: the suite's ptycho part (file, kernel, stream, bslz4 and hdf5 rows, the pyzmq
# and JAX peers; 4 connections), the bslz4 stream on 6 connections, then the pipeline part on a
# 8192² slide (run 32: on the 1.81 GB slide the CPU rows and the scikit-image peer, float64 on
# one core, did not finish in 250 s). Carry [".device", ".whl"] as in run 31.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/tb
echo "=== bench all --parts ptycho"
timeout 300 bash $B tiledio bench all --parts ptycho --dir /tmp/tb --out /tmp/ptycho 2>&1 | tail -14
tar czf $OUT/ptycho.tgz -C /tmp ptycho 2>/dev/null
echo "=== bslz4 stream, 6 connections"
timeout 80 bash $B tiledio bench ptycho --dir /tmp/tb --keep --device gpu --repeats 3 --rows bslz4 --connections 6 2>&1 | tail -3
echo "=== bench all --parts pipeline (8192²)"
timeout 170 bash $B tiledio bench all --parts pipeline --dir /tmp/tb --side 8192 --tiles 512 --jpeg-tiles 0 --out /tmp/pipeline 2>&1 | tail -14
tar czf $OUT/pipeline.tgz -C /tmp pipeline 2>/dev/null
