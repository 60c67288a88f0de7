//! tiledio: tiled images (whole-slide TIFF, Zarr, detector frames) from storage into GPU memory
//! and back, as fast as the hardware allows.
//!
//! This facade re-exports the layers:
//! - [`io`]: byte-range I/O into host or GPU memory (cuFile, the parallel pinned-staging POSIX
//!   engine, host reads), with the backend chosen per file and the reason reported;
//! - [`tiff`]: tiled TIFF / BigTIFF whole-slide images;
//! - [`zarr`]: Zarr v3/v2 arrays and OME-Zarr;
//! - [`kernels`]: the CUDA kernels (chunk gather/scatter, fill, 2× downsample, HWC/CHW
//!   transposes), each with its CPU reference;
//! - [`ptycho`]: detector frame stores (raw, `.npy`, Zarr, HDF5 incl. Eiger bitshuffle-LZ4),
//!   fused ptychography preprocessing, the simulated detector and live ZeroMQ streams;
//! - [`convert`]: TIFF ⇄ (OME-)Zarr conversions in bounded memory;
//! - [`bench`]: the checked, timed measurements behind `tiledio bench`;
//! - [`pipeline`]: whole-slide filters tile by tile with halos (source → kernel → OME-Zarr
//!   or TIFF), overlapped, in a GPU memory budget;
//! - [`demo`]: the work behind `tiledio demo`;
//! - [`preview`]: 8-bit PNG previews of images (scaled, shrunk, tiled into montages).
//!
//! ```
//! use tiledio::io::{FileHandle, ReadRange};
//! # let dir = tempfile::tempdir()?; let path = dir.path().join("f");
//! # std::fs::write(&path, b"abcdef")?;
//! let mut buf = vec![0u8; 2];
//! FileHandle::open(&path)?.read_ranges(&[ReadRange { file_offset: 4, len: 2, dst_offset: 0 }], &mut buf)?;
//! assert_eq!(buf, b"ef");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use tiledio_io as io;
pub use tiledio_kernels as kernels;
pub use tiledio_ptycho as ptycho;
pub use tiledio_tiff as tiff;
pub use tiledio_zarr as zarr;

pub mod bench;
pub mod convert;
pub mod demo;
pub mod pipeline;
pub mod preview;
