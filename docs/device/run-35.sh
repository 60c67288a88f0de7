#!/usr/bin/env bash
# Device run 35, call 1: the whole benchmark suite with its default options
# (`tiledio bench all --out /tmp/all --log`), started in its own session so that it runs on
# across the next calls (one call is limited to 10 minutes; the suite takes longer). It runs
# from a copy of the tree in /tmp/tio, so a later call's carry cannot replace the binary under
# it. `--out` is rewritten after each part. The polls are run-35-poll.sh.
# Carry [".device", ".whl"] (.whl: KvikIO, libkvikio, rapids_logger, cuCIM, pyzmq, pytest).
set -u
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
nproc; free -g | head -2; df -h /tmp | tail -1
rm -rf /tmp/tio && cp -r . /tmp/tio && cd /tmp/tio
mkdir -p /tmp/tb /tmp/bg
OUT=/tmp/bg setsid nohup bash .device/on-device.sh tiledio bench all --dir /tmp/tb --out /tmp/all --log \
  > /tmp/all.log 2>&1 < /dev/null &
sleep 5
bash docs/device/run-35-poll.sh 540
