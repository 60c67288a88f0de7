//! Zarr v3/v2 arrays to and from GPU or host memory (in progress).
