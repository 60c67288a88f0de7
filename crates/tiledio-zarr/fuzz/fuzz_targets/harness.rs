//! The Zarr fuzz harness, shared by the `cargo fuzz` target (`zarr_open.rs`) and the corpus
//! replay in the normal test run (`tests/fuzz_replay.rs`, through `#[path]`).
//!
//! An input is a little file tree: records of `name length (1 byte) | name | data length
//! (4 bytes, little-endian, cut to what is left) | data`. Names are relative paths made of
//! `[A-Za-z0-9._-]` components (others are skipped), e.g. `zarr.json`, `.zarray`, `c/0/0`,
//! `0/zarr.json`. The tree is written into a fresh folder, which is then opened as a Zarr
//! array (and its first level `0`) and read, and as an OME-Zarr group. Any result is fine but
//! a panic, an abort, a hang or unbounded memory (the caller caps the memory budget with
//! `TILEDIO_MAX_MEMORY`).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use tiledio_zarr::{Border, Region, ZarrArray, ome};

/// Most bytes a whole-array read may take (a valid but huge array must not allocate much).
const MAX_WHOLE: usize = 4 << 20;

/// Splits an input into `(relative path, data)` records; bad names are skipped.
pub fn records(mut data: &[u8]) -> Vec<(PathBuf, &[u8])> {
    let mut out = Vec::new();
    while let Some((&nl, rest)) = data.split_first() {
        let nl = (nl as usize).min(rest.len());
        let (name, rest) = rest.split_at(nl);
        let (len, rest) = if rest.len() >= 4 {
            let (l, r) = rest.split_at(4);
            (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize, r)
        } else {
            (rest.len(), &rest[rest.len()..])
        };
        let len = len.min(rest.len());
        let (body, rest) = rest.split_at(len);
        data = rest;
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let ok = !name.is_empty()
            && name.split('/').count() <= 8
            && name.split('/').all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if ok {
            out.push((PathBuf::from(name), body));
        }
    }
    out
}

/// Serialises a file tree into an input (the inverse of [`records`]), for seeding.
pub fn encode(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Writes the records under `root` (emptied first). Later records with a name that is also a
/// folder are skipped.
pub fn materialise(root: &Path, data: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root)?;
    for (name, body) in records(data) {
        let p = root.join(name);
        if let Some(parent) = p.parent()
            && std::fs::create_dir_all(parent).is_err()
        {
            continue;
        }
        let _ = std::fs::write(&p, body);
    }
    Ok(())
}

/// Opens `path` as an array and reads it: a small region at each corner, and the whole array
/// when small.
pub fn exercise_array(path: &Path) {
    let Ok(a) = ZarrArray::open(path) else {
        return;
    };
    let shape = a.shape().to_vec();
    let _ = a.chunk_shape();
    let _ = a.shard_shape();
    let _ = a.attributes().len();
    let _ = a.data_type();
    let es = a.element_size();
    let n = a.nbytes();
    if n <= MAX_WHOLE {
        let _ = a.read_to_vec();
    }
    // Up to 3 elements along each dimension at the origin and at the far corner.
    let small: Vec<u64> = shape.iter().map(|&s| s.min(3)).collect();
    let count = small.iter().try_fold(es as u64, |acc, &s| acc.checked_mul(s));
    if let Some(count) = count.filter(|&c| c <= MAX_WHOLE as u64) {
        let mut buf = vec![0u8; count as usize];
        let zeros = vec![0u64; shape.len()];
        let _ = a.read_region(&Region::at(&zeros, &small), Border::Reject, &mut buf[..]);
        let far: Vec<u64> = shape.iter().zip(&small).map(|(s, r)| s - r).collect();
        let _ = a.read_region(&Region::at(&far, &small), Border::Reject, &mut buf[..]);
        // Bad arguments give errors.
        let mut one = vec![0u8; es];
        let ones = vec![1u64; shape.len()];
        let past: Vec<u64> = shape.clone();
        assert!(
            a.read_region(&Region::at(&past, &ones), Border::Reject, &mut one[..])
                .is_err()
        );
    }
    assert!(
        a.read_region(&Region::at(&[], &[]), Border::Reject, &mut [][..])
            .is_err()
            || shape.is_empty()
    );
}

/// The whole harness: write the tree, then open and read it every way.
pub fn run(root: &Path, data: &[u8]) {
    if materialise(root, data).is_err() {
        return;
    }
    exercise_array(root);
    exercise_array(&root.join("0"));
    if let Ok(m) = ome::read_multiscales(root) {
        assert!(!m.levels.is_empty());
    }
    let _ = ome::read_levels_hwc(root);
}
