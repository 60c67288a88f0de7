//! Frame stores named as the command line and the Python package name them: one spelling for
//! every kind of store ([`open_store`]).
//!
//! - `FILE.h5:/path/to/dataset` (any file name, split at the last `:/`, unless the whole
//!   spelling is an existing file): an HDF5 dataset;
//! - `FILE.h5` / `.hdf5` / `.hdf` / `.nxs` / `.cxi` alone: `SCAN_master.h5` as a DECTRIS Eiger
//!   master, any other file at `/entry/data/data`;
//! - `FILE.npy`: NumPy `(N, H, W)` or `(H, W)`;
//! - a folder (or a name ending in `.zarr`): a 3-D Zarr array;
//! - anything else: a raw stack, described by a [`RawLayout`].

use crate::error::{Result, usage};
use crate::hdf5::Hdf5Store;
use crate::store::{FrameStore, NpyStore, RawLayout, RawStore, ZarrStore};
use std::path::{Path, PathBuf};

/// Which kind of store a spelling names ([`store_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `FILE:/dataset`: an HDF5 dataset.
    Hdf5Dataset,
    /// `SCAN_master.h5`: a DECTRIS Eiger master (its `data_NNNNNN` links as one stack).
    EigerMaster,
    /// Another HDF5 file name: its `/entry/data/data`.
    Hdf5File,
    /// A `.npy` file.
    Npy,
    /// A folder or `.zarr`: a 3-D Zarr array.
    Zarr,
    /// Anything else: a raw stack (needs a [`RawLayout`]).
    Raw,
}

/// Whether a path names an HDF5 file by its extension.
fn is_hdf5_name(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("h5" | "hdf5" | "hdf" | "nxs" | "cxi")
    )
}

/// The kind of store a spelling names (see the module docs); looks at the file system only to
/// tell an existing file or folder from a `FILE:/dataset` spelling.
///
/// ```
/// use tiledio_ptycho::{StoreKind, store_kind};
/// assert_eq!(store_kind("/no/scan.h5:/entry/data/data"), StoreKind::Hdf5Dataset);
/// assert_eq!(store_kind("/no/scan_master.h5"), StoreKind::EigerMaster);
/// assert_eq!(store_kind("/no/frames.npy"), StoreKind::Npy);
/// assert_eq!(store_kind("/no/frames.zarr"), StoreKind::Zarr);
/// assert_eq!(store_kind("/no/frames.raw"), StoreKind::Raw);
/// ```
pub fn store_kind(spec: &str) -> StoreKind {
    let path = Path::new(spec);
    if spec.contains(":/") && !path.exists() {
        return StoreKind::Hdf5Dataset;
    }
    if path.is_dir() {
        return StoreKind::Zarr;
    }
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("zarr") => StoreKind::Zarr,
        Some("npy") => StoreKind::Npy,
        _ if is_hdf5_name(path) => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with("_master.h5") {
                StoreKind::EigerMaster
            } else {
                StoreKind::Hdf5File
            }
        }
        _ => StoreKind::Raw,
    }
}

/// Opens the store a spelling names (see the module docs); `raw` describes a raw stack.
///
/// ```
/// use tiledio_ptycho::{FrameStore, RawLayout, open_store};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("frames.raw");
/// std::fs::write(&path, [0u8; 2 * 3 * 4])?;
/// let raw = RawLayout::new(0, (3, 4), tiledio_io::ElementType::U8);
/// let s = open_store(path.to_str().unwrap(), Some(&raw))?;
/// assert_eq!((s.frames(), s.shape()), (2, (3, 4)));
/// assert!(open_store(path.to_str().unwrap(), None).is_err()); // a raw stack needs its layout
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`crate::PtychoError::Usage`] for an empty spelling or a raw stack without `raw`; the
/// stores' own errors (a missing file, a malformed header, a dataset that is not there).
pub fn open_store(spec: &str, raw: Option<&RawLayout>) -> Result<Box<dyn FrameStore>> {
    if spec.is_empty() {
        return Err(usage("an empty store name"));
    }
    let path = Path::new(spec);
    Ok(match store_kind(spec) {
        StoreKind::Hdf5Dataset => Box::new(Hdf5Store::open_spec(spec)?),
        // a missing folder: the Zarr reader names it
        StoreKind::Zarr => Box::new(ZarrStore::open(path)?),
        StoreKind::Npy => Box::new(NpyStore::open(path)?),
        StoreKind::EigerMaster => Box::new(Hdf5Store::open_eiger_master(path)?),
        StoreKind::Hdf5File => Box::new(Hdf5Store::open(path, "/entry/data/data")?),
        StoreKind::Raw => {
            let Some(l) = raw else {
                return Err(usage(format!(
                    "{spec}: not FILE.h5:/dataset, .h5, .npy or a Zarr folder; a raw stack needs its layout (frame shape H,W, element type, header)"
                )));
            };
            Box::new(RawStore::open(path, l.clone())?)
        }
    })
}

/// The file-system path of a store spelling (`FILE` of `FILE:/dataset`): what an output must
/// not be.
///
/// ```
/// assert_eq!(tiledio_ptycho::store_path("/no/scan.h5:/entry/data"), std::path::PathBuf::from("/no/scan.h5"));
/// ```
pub fn store_path(spec: &str) -> PathBuf {
    let p = Path::new(spec);
    if !p.exists()
        && let Some(i) = spec.rfind(":/")
    {
        return PathBuf::from(&spec[..i]);
    }
    p.to_path_buf()
}
