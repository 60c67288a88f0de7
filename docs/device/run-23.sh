#!/usr/bin/env bash
# Device run 23: the stream rows after recv(MSG_WAITALL) for large ZMTP frames and the
# parallel bitshuffle-LZ4 block decode, with pyzmq and JAX in the same call; the decode rows
# again with batches of 256.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/pt
timeout 330 bash $B tiledio bench ptycho --dir /tmp/pt --keep --device gpu --frames 1024 --repeats 5 --rows stream,bslz4,hdf5,peers
timeout 200 bash $B tiledio bench ptycho --dir /tmp/pt --keep --device gpu --frames 1024 --repeats 5 --rows bslz4,hdf5 --batch 256
