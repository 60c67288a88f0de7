//! Every CUDA kernel of tiledio, in one place, each with its CPU reference.
//!
//! Each kernel's CUDA C source is a `.cu` file under `src/cu/`, embedded in the binary and
//! compiled once per process with NVRTC through [`tiledio_io::gpu::Gpu::compile`] (nothing
//! from CUDA is needed to build). Every GPU function has a CPU function (rayon) with the same
//! semantics, byte for byte; the tests compare them on random data. The CPU functions run on
//! the rayon pool they are called in: the format crates call them inside
//! [`tiledio_io::Context::compute`], so they use the context's compute threads
//! (`TILEDIO_COMPUTE_THREADS`); call them there too to keep them off rayon's global pool.
//!
//! - [`ChunkLayout`]: gather/scatter between a row-major *window* of an N-d array and
//!   unit-major *staging* (Zarr chunks and shards, TIFF tiles and strips), with a fill value
//!   for cells outside the array and an optional byte swap; [`fill_host`] / [`fill_device`].
//! - [`downsample2x`]: 2× area average of an `h × w × c` image of any [`ElementType`]
//!   (CPU reference [`half_row`], GPU [`downsample2x_device`]).
//! - [`hwc_to_chw`] / [`chw_to_hwc`]: interleaved ⇄ planar transposes for any element size
//!   (GPU: [`hwc_to_chw_device`], [`chw_to_hwc_device`]).
//! - [`PtychoPlan`] / [`PtychoDevice`]: fused ptychography frame preprocessing (dark, crop,
//!   flat, mask, rebin, orientation, output type) in one pass; [`center_of_mass`].
//! - [`Sobel`]: scikit-image's Sobel filter (magnitude, `sobel_h`, `sobel_v`) of u8/u16/f32
//!   grey or RGB images in one fused GPU pass, on a window of the image with the halo rule
//!   that makes tiled output bit-identical to whole-image output ([`Rect`], [`SobelOutput`]).
//! - [`ColourMap`] ([`ColourOp`]): scikit-image's `rgb2gray`, `rgb2hed`, `hed2rgb` and cuCIM's
//!   optical density, per pixel (RGB → float → log → stains fused), CPU and GPU bit-identical.
//! - Macenko stain normalisation as cuCIM does it, tile by tile in bounded memory: reduction
//!   passes [`StainCovariance`] → [`StainAngles`] → [`StainConcentrations`], then the map pass
//!   [`MacenkoNormalizer`] on the CPU or the GPU ([`MacenkoParams`]: cuCIM's defaults).
//! - [`LaunchArgs`]: typed kernel arguments (`&DeviceBuffer` read, `&mut DeviceBuffer` written,
//!   typed scalars) instead of raw pointer arrays.
//!
//! ```
//! use tiledio_kernels::ChunkLayout;
//! // a 4×6 array of bytes in 2×4 chunks; the whole array is the window
//! let l = ChunkLayout::new(&[4, 6], &[2, 4], &[2, 4], &[0, 0], &[4, 6], 1, 0)?;
//! let window: Vec<u8> = (0..24).collect();
//! let units = [0, 1, 2, 3];
//! let mut staging = vec![0u8; units.len() * l.slot_bytes()];
//! l.gather_host(&window, &mut staging, &units, &[255])?;
//! assert_eq!(&staging[8..16], &[4, 5, 255, 255, 10, 11, 255, 255]); // chunk 1, padded
//! let mut back = vec![0u8; 24];
//! l.scatter_host(&staging, &mut back, &units)?;
//! assert_eq!(back, window);
//! # Ok::<(), tiledio_kernels::KernelError>(())
//! ```
//!
//! [`ElementType`]: tiledio_io::ElementType

mod chunk;
mod colour;
mod downsample;
mod launch;
mod macenko;
mod ptycho;
mod sobel;
mod transpose;

pub use chunk::{ChunkLayout, Direction, fill_device, fill_host, ravel, unravel};
pub use colour::{ColourMap, ColourOp, HED_FROM_RGB, RGB_FROM_HED};
pub use downsample::{downsample2x, downsample2x_device, half_row};
pub use launch::{LaunchArgs, Scalar};
pub use macenko::{
    MacenkoNormalizer, MacenkoParams, StainAngles, StainConcentrations, StainCovariance, StainMatrix, StainPlane,
};
pub use ptycho::{ClampOrder, Orientation, OutputType, PtychoDevice, PtychoParams, PtychoPlan, Reduce, center_of_mass};
pub use sobel::{Rect, Sobel, SobelOutput};
pub use transpose::{chw_to_hwc, chw_to_hwc_device, hwc_to_chw, hwc_to_chw_device};

/// What can go wrong in a kernel or its CPU reference.
///
/// ```
/// let e = tiledio_kernels::ChunkLayout::new(&[4], &[0], &[0], &[0], &[4], 1, 0).unwrap_err();
/// assert!(matches!(e, tiledio_kernels::KernelError::Invalid(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// No GPU, a CUDA or NVRTC error, or a buffer too small (from [`tiledio_io`]).
    #[error(transparent)]
    Io(#[from] tiledio_io::IoError),
    /// Arguments that do not describe a valid operation (shapes, lengths, element sizes).
    #[error("invalid kernel arguments: {0}")]
    Invalid(String),
}

/// The result type of this crate.
pub type Result<T, E = KernelError> = std::result::Result<T, E>;

pub(crate) fn invalid(what: impl Into<String>) -> KernelError {
    KernelError::Invalid(what.into())
}

/// Compiles (once per process: [`tiledio_io::gpu::Gpu::compile`] caches it) the module `name`
/// from `src` and returns its function `func`.
pub(crate) fn kernel(name: &str, src: &str, func: &str) -> Result<tiledio_io::gpu::Kernel> {
    let g = tiledio_io::gpu::gpu()?;
    Ok(g.compile(name, src)?.function(func)?)
}

/// Grid size for a grid-stride loop over `items` with `block` threads per block, at most
/// `max_blocks` blocks.
pub(crate) fn blocks(items: u64, per_block: u64, max_blocks: u64) -> u32 {
    items.div_ceil(per_block.max(1)).clamp(1, max_blocks) as u32
}
