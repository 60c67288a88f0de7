#!/usr/bin/env bash
# Device run 14: the pipeline comparison (bench pipeline; the global row needed the fix of
# in_flight for one tile) on the 1.81 GB slide, and a stack dump of the GPU pipeline test that
# ran past 150 s in run 13. Binaries from run 13 plus a rebuilt tiledio.
set -u
B=.device/on-device.sh
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
mkdir -p /tmp/pipe
for t in 2048 4096; do
  bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile $t --repeats 5
done
echo "=== GPU pipeline test, stacks after 40 s"
(bash $B test-pipeline --include-ignored tiled_sobel_equals_global_on_the_gpu --nocapture > /tmp/t.log 2>&1 &)
sleep 40
tail -5 /tmp/t.log
P=$(pgrep -f "test-pipeline" | head -1)
if command -v gdb >/dev/null && [ -n "$P" ]; then
  gdb -batch -p $P -ex "thread apply all bt 12" 2>/dev/null | grep -E "^#|^Thread" | grep -v "in ?? ()" | head -120
else
  echo "no gdb or no process ($P)"; cat /proc/$P/task/*/stat 2>/dev/null | awk '{print $2,$3}' | sort | uniq -c
fi
pkill -f test-pipeline
