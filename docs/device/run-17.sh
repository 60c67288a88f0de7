#!/usr/bin/env bash
# Device run 17: the pipeline after reads and writes got their own I/O pools: the GPU pipeline
# test, then the seeds' comparison (read only, write only, tiled, global) with the staged POSIX
# engine and with cuFile (compatibility mode here: no nvidia-fs), tiles of 2048 and 4096.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 120 bash $B test-pipeline --include-ignored --skip zarr_python 2>&1 | tail -3
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
mkdir -p /tmp/pipe
for t in 2048 4096; do
  timeout 200 bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile $t --repeats 5
done
echo "=== with cuFile (TILEDIO_BACKEND=cufile)"
TILEDIO_BACKEND=cufile timeout 200 bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile 2048 --repeats 5
bash $B tiledio backends /tmp/slide.tif
echo "=== threads 8 / 32"
for n in 8 32; do
  TILEDIO_THREADS=$n timeout 200 bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile 2048 --repeats 5 | tail -4
done
