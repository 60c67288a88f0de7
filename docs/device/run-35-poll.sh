#!/usr/bin/env bash
# Device run 35, a poll: waits up to $1 seconds (default 560) for the suite started by
# run-35.sh, then copies its log and report (as far as it got) into $OUT.
set -u
limit=${1:-560}
t=0
while pgrep -f "tiledio bench all" > /dev/null && [ "$t" -lt "$limit" ]; do sleep 10; t=$((t + 10)); done
if pgrep -f "tiledio bench all" > /dev/null; then echo "=== still running after ${t} s"; else echo "=== finished"; fi
grep -E "^\[" /tmp/all.log | tail -8
grep -vE "^\[" /tmp/all.log | tail -150
mkdir -p "$OUT/all" && cp -r /tmp/all/. "$OUT/all/" 2>/dev/null; cp /tmp/all.log "$OUT/" 2>/dev/null
ls "$OUT/all"
