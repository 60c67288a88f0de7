//! Tiled TIFF / BigTIFF whole-slide images, read into host or GPU memory and written back.
//!
//! - [`Slide`]: OpenSlide-style access to pyramidal tiled TIFF, BigTIFF, Aperio SVS-like and
//!   OME-TIFF (SubIFD) files: `level_count`, `level_dimensions`, `level_downsamples`,
//!   `properties`, `associated_images`, `get_best_level_for_downsample`, and
//!   [`Slide::read_region`] / [`Slide::read_level`] into a [`HostImage`] or, with a GPU,
//!   [`Slide::read_region_device`] into a [`DeviceImage`].
//! - Uncompressed tiles go in one batched range read (through [`tiledio_io::FileHandle`]) into a
//!   tile-major buffer, then one placement step (a GPU kernel, or rayon on the host).
//!   Compressed tiles (JPEG with JPEGTables, deflate, LZW, zstd, PackBits) are read in one batch
//!   and decoded in parallel on the CPU.
//! - [`write_pyramid`]: tiled pyramidal TIFF (none, deflate, zstd, LZW, JPEG), BigTIFF when
//!   needed, reduced levels as chained pages or SubIFDs, tiles 4 KiB aligned, written to a
//!   temporary name and renamed.
//!
//! The file is never trusted: every count, size and offset is bounded and checked, IFD loops
//! are detected, and bad input gives a [`TiffError`], never a panic.
//!
//! ```
//! use tiledio_tiff::{Compression, HostImage, Slide, WriteOptions, write_pyramid};
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("slide.tif");
//! let img = HostImage::from_u8(256, 320, 3, (0..256 * 320 * 3).map(|i| (i % 251) as u8).collect())?;
//! write_pyramid(&path, &img, &WriteOptions::default().tile(64).compression(Compression::Deflate))?;
//! let slide = Slide::open(&path)?;
//! assert_eq!(slide.level_dimensions(), vec![(320, 256), (160, 128), (80, 64), (40, 32)]);
//! assert_eq!(slide.read_level(0)?, img);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod downsample;
mod error;
mod gpu;
mod ifd;
mod image;
mod page;
mod props;
mod region;
mod slide;
mod tags;
mod write;

pub use error::{Result, TiffError};
pub use gpu::{DeviceImage, write_pyramid_device};
pub use image::{HostImage, SampleType};
pub use page::Compression;
pub use slide::{LevelInfo, LevelRows, ReadOptions, Slide};
pub use write::{
    BigTiff, RowSource, WriteOptions, WriteReport, check_writable, write_pyramid, write_pyramid_from,
    write_pyramid_with_progress,
};
