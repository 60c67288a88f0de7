#!/usr/bin/env bash
# Device run 11 (array vocabulary, Context, DisjointBytes; Sobel/colour and ptycho kernels): every GPU test, then the wave-1 figures
# re-measured beside the peer in the same call. Run on the GPU machine after
#   ../shared/device/pack.sh --only tiledio,test-gpu,test-kernels_gpu,test-tiff_gpu,test-zarr_gpu,test-filters_gpu,test-ptycho_gpu,zarr_bench
#   ../shared/peers/fetch-wheels.sh
# with carry [".device", ".whl"]:  bash docs/device/run-11.sh
set -u
B=.device/on-device.sh
echo "=== GPU tests"
for t in test-gpu test-kernels_gpu test-tiff_gpu test-zarr_gpu test-filters_gpu test-ptycho_gpu; do
  bash $B $t --include-ignored 2>&1 | grep -E "^test |test result|panicked" 
done
echo "=== cuFile fallback reason without the udev entry"
rm -f /run/udev/data/b*   # the entry the runs above added
CUFILE_UDEV=0 bash $B test-gpu --include-ignored cufile 2>&1 | grep -E "^test |test result"
echo "=== slide: peer, ours, peer (1.81 GB uncompressed 24576^2 RGB, 512^2 tiles, warm)"
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
bash $B tiledio bench slide /tmp/slide.tif --device gpu --threads 8,16 --repeats 7
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --only kvikio-16threads
echo "=== zarr (512^2 chunk files, 512^2 in 4096^2 shards)"
bash $B zarr_bench --size 24576 --dir /tmp/zb --chunks 512
