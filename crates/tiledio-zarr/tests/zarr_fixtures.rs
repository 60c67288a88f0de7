//! Arrays written by zarr-python (testdata/zarr, made by make_fixtures.py) read back exactly:
//! whole arrays, regions, into host memory (and GPU memory in zarr_gpu.rs).

use std::path::PathBuf;
use tiledio_zarr::{Border, Region, ZarrArray};

fn fixtures() -> Vec<(String, PathBuf, Vec<u8>)> {
    let dir = tiledio_test_support::workspace_root().join("testdata/zarr");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("testdata/zarr") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "zarr") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let expected = std::fs::read(dir.join(format!("{name}.bin"))).expect("expected .bin");
            out.push((name, p, expected));
        }
    }
    out.sort();
    assert!(out.len() >= 13, "fixtures missing: {}", out.len());
    out
}

/// The expected bytes are little-endian; the host is too (checked).
#[test]
fn every_fixture_reads_back_exactly() {
    const { assert!(cfg!(target_endian = "little")) };
    for (name, path, expected) in fixtures() {
        let a = ZarrArray::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = a.read_to_vec().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), expected.len(), "{name}");
        assert!(got == expected, "{name}: bytes differ");
    }
}

#[test]
fn fixture_regions_read_back_exactly() {
    for (name, path, expected) in fixtures() {
        let a = ZarrArray::open(&path).unwrap();
        let shape = a.shape().to_vec();
        let es = a.element_size();
        // A region straddling chunk (and shard) edges.
        let origin: Vec<u64> = shape.iter().map(|s| s / 3).collect();
        let rs: Vec<u64> = shape.iter().zip(&origin).map(|(s, o)| ((s - o) / 2).max(1)).collect();
        let mut got = vec![0u8; rs.iter().product::<u64>() as usize * es];
        a.read_region(&Region::at(&origin, &rs), Border::Reject, &mut got)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Expected by indexing the whole array.
        let r = shape.len();
        let n: u64 = rs.iter().product();
        let mut want = Vec::with_capacity(got.len());
        for i in 0..n {
            let mut rem = i;
            let mut c = vec![0u64; r];
            for d in (0..r).rev() {
                c[d] = rem % rs[d] + origin[d];
                rem /= rs[d];
            }
            let lin = c.iter().zip(&shape).fold(0u64, |acc, (c, s)| acc * s + c) as usize;
            want.extend_from_slice(&expected[lin * es..(lin + 1) * es]);
        }
        assert!(got == want, "{name}: region {origin:?}+{rs:?} differs");
    }
}

#[test]
fn fixture_kinds_take_the_expected_paths() {
    let dir = tiledio_test_support::workspace_root().join("testdata/zarr");
    let raw = |n: &str| ZarrArray::open(dir.join(format!("{n}.zarr"))).unwrap().is_raw();
    assert!(raw("v3_u8_raw") && raw("v3_u8_sharded_raw") && raw("v2_u8_raw") && raw("v3_u8_sharded_partial"));
    assert!(!raw("v3_u16_zstd") && !raw("v2_u16_bigendian") && !raw("v3_u16_sharded_zstd"));
    let s = ZarrArray::open(dir.join("v3_u8_sharded_raw.zarr")).unwrap();
    assert_eq!(s.shard_shape(), Some(&[32u64, 32][..]));
    assert_eq!(s.chunk_shape(), &[16, 16]);
}

#[test]
fn not_an_array_is_a_typed_error() {
    let t = tempfile::tempdir().unwrap();
    assert!(matches!(
        ZarrArray::open(t.path()),
        Err(tiledio_zarr::ZarrError::NotFound { .. })
    ));
    std::fs::write(t.path().join("zarr.json"), b"{not json").unwrap();
    assert!(ZarrArray::open(t.path()).is_err());
}
