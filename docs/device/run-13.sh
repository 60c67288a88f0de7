#!/usr/bin/env bash
# Device run 13 (compute pool, scratch policy, pipeline): the GPU tests, the slide read beside
# KvikIO, the pipeline comparison on the 1.81 GB slide, Sobel variants beside cupyx and the
# D2D copy. Run on the GPU machine after
#   ../shared/device/pack.sh --only tiledio,test-gpu,test-tiff_gpu,test-zarr_gpu,test-filters_gpu,test-pipeline,zarr_bench --exclude tiledio-ptycho
#   ../shared/peers/fetch-wheels.sh
# with carry [".device", ".whl"]:  bash docs/device/run-13.sh
set -u
B=.device/on-device.sh
echo "=== GPU tests"
for t in test-gpu test-tiff_gpu test-zarr_gpu test-filters_gpu test-pipeline; do
  timeout 150 bash $B $t --include-ignored 2>&1 | grep -E "^test |test result|panicked|sobel magnitude"
done
echo "=== slide: peer, ours, peer (1.81 GB uncompressed 24576^2 RGB, 512^2 tiles, warm)"
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --make 24576 24576 512 --only kvikio-16threads
bash $B tiledio bench slide /tmp/slide.tif --device gpu --threads 8,16 --repeats 7
bash $B python3 .device/peers/wsi_read_peers.py /tmp/slide.tif --only kvikio-16threads
echo "=== pipeline: read + Sobel + uncompressed Zarr write of level 0 (tiles of 2048, 4096; budget 2 GiB)"
mkdir -p /tmp/pipe
bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile 2048 --repeats 5
bash $B tiledio bench pipeline /tmp/slide.tif --dir /tmp/pipe --tile 4096 --repeats 5
echo "=== CLI: sobel of the slide into OME-Zarr with its pyramid"
bash $B tiledio sobel /tmp/slide.tif /tmp/pipe/edges.zarr --tile 4096
echo "=== Sobel variants (16384^2 f32) beside the D2D copy and cupyx"
bash $B python3 docs/device/sobel_variants.py crates/tiledio-kernels/src/cu/sobel.cu 16384
echo "=== zarr (512^2 chunk files, 512^2 in 4096^2 shards)"
bash $B zarr_bench --size 24576 --dir /tmp/zb --chunks 512
