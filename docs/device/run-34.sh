#!/usr/bin/env bash
# Device run 34 (issue 10): the stream, bslz4 and hdf5 rows with run 25's settings (1,024
# frames, 5 repeats, 4 connections), after the stream-merge fix (frames taken as soon as any
# connection shows the next one), then bslz4 on 2 and 6 connections. Carry [".device", ".whl"].
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/pt
timeout 300 bash $B tiledio bench ptycho --dir /tmp/pt --keep --device gpu --frames 1024 --repeats 5 --rows stream,bslz4,hdf5,peers 2>&1 | grep -vE "^\s+(device|I/O):"
for c in 2 6; do
  timeout 90 bash $B tiledio bench ptycho --dir /tmp/pt --keep --device gpu --frames 1024 --repeats 3 --rows bslz4 --connections $c 2>&1 | grep -E "^(ptycho|bslz4)|frames/s" | head -3
done
