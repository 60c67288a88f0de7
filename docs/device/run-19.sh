#!/usr/bin/env bash
# Device run 19: the ptychography rows again after the faster bitshuffle-LZ4 decoder (and the
# bench's more realistic Eiger frames: a bright disc and a halo, 14.5x compression), with pyzmq
# and JAX in the same run.
set -u
B=.device/on-device.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /tmp/pt
timeout 500 bash $B tiledio bench ptycho --dir /tmp/pt --device gpu --frames 1024 --repeats 5
