//! Malformed and hostile Zarr arrays and OME-Zarr groups give typed errors, never a panic, an
//! abort or a hang: the fixtures in testdata/zarr/malformed (made by make_malformed.py), and
//! FIFOs and symlinks to /dev/zero made here.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use tiledio_zarr::{Border, Region, ZarrArray, ZarrError, ome};

fn mal(name: &str) -> PathBuf {
    tiledio_test_support::workspace_root()
        .join("testdata/zarr/malformed")
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    tiledio_test_support::workspace_root().join("testdata/zarr").join(name)
}

/// Opens and reads the whole array; the first error.
fn open_and_read(path: &Path) -> Result<Vec<u8>, ZarrError> {
    ZarrArray::open(path)?.read_to_vec()
}

/// Runs `f` on another thread and fails the test if it takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("no answer in time: the read blocked or ran away")
}

/// One line, no panic text.
fn one_line(e: &ZarrError) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "{m}");
    m
}

/// Copies a fixture folder into a temporary one.
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// Runs this test binary's test `name` in a child process with `TILEDIO_MAX_MEMORY=budget`.
fn in_child_with_budget(name: &str, budget: &str) {
    tiledio_test_support::run_in_child(name, &[("TILEDIO_MAX_MEMORY", budget)], &[]);
}

fn is_child() -> bool {
    tiledio_test_support::is_child()
}

#[test]
fn zarr_malformed_shape_u64_max() {
    let e = open_and_read(&mal("shape_u64_max.zarr")).unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("shape_u64_max.zarr"), "{m}");
}

#[test]
fn zarr_malformed_chunk_near_2p63() {
    let e = open_and_read(&mal("chunk_near_2p63.zarr")).unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("overflow"), "{m}");
    // A region read as well.
    if let Ok(a) = ZarrArray::open(mal("chunk_near_2p63.zarr")) {
        let mut b = [0u8; 4];
        assert!(
            a.read_region(&Region::at(&[0, 0], &[2, 2]), Border::Reject, &mut b[..])
                .is_err()
        );
    }
}

#[test]
fn zarr_malformed_chunk_product_wraps() {
    let e = open_and_read(&mal("chunk_product_wraps.zarr")).unwrap_err();
    let m = one_line(&e);
    assert!(
        m.contains("overflow"),
        "the message says the chunk shape overflows: {m}"
    );
    assert!(!m.contains("expected 0"), "{m}");
}

#[test]
fn zarr_malformed_shard_offset_near_2p64() {
    for name in ["shard_offset_near_2p64.zarr", "shard_raw_offset_near_2p64.zarr"] {
        let e = open_and_read(&mal(name)).unwrap_err();
        let m = one_line(&e);
        assert!(matches!(e, ZarrError::Chunk { .. }), "{name}: {m}");
        assert!(m.contains("c/0/0") && m.contains("inner chunk 0"), "{name}: {m}");
    }
}

#[test]
fn zarr_malformed_shard_chunk_past_end() {
    let e = open_and_read(&mal("shard_chunk_past_end.zarr")).unwrap_err();
    let m = one_line(&e);
    assert!(matches!(e, ZarrError::Chunk { .. }), "{m}");
    assert!(m.contains("inner chunk 3"), "{m}");
}

#[test]
fn zarr_malformed_huge_declared_is_refused() {
    // 100000 x 100000 x 3 bytes declared by an 8 KB zarr.json, read whole under a 1 GiB budget.
    in_child_with_budget("zarr_malformed_huge_declared_is_refused", "1G");
    if !is_child() {
        return;
    }
    assert!(std::fs::metadata(mal("huge_declared.zarr/zarr.json")).unwrap().len() <= 8192);
    let a = ZarrArray::open(mal("huge_declared.zarr")).unwrap();
    assert_eq!(a.shape(), [100000, 100000, 3]);
    let e = a.read_to_vec().unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("memory budget"), "{m}");
    // A small region still reads (all fill value).
    let mut b = [1u8; 12];
    a.read_region(&Region::at(&[5, 5, 0], &[2, 2, 3]), Border::Reject, &mut b[..])
        .unwrap();
    assert_eq!(b, [0; 12]);
}

#[test]
fn zarr_malformed_ome_level_huge() {
    in_child_with_budget("zarr_malformed_ome_level_huge", "1G");
    if !is_child() {
        return;
    }
    let e = ome::read_levels_hwc(mal("ome_level_huge.zarr")).unwrap_err();
    one_line(&e);
}

#[test]
fn zarr_malformed_ome_paths_escaping_the_group() {
    for name in [
        "ome_path_escape.zarr",
        "ome_path_absolute.zarr",
        "ome_path_dotdot_inside.zarr",
    ] {
        let e = ome::read_multiscales(mal(name)).unwrap_err();
        let m = one_line(&e);
        assert!(m.contains("dataset path"), "{name}: {m}");
        let e = ome::read_levels_hwc(mal(name)).unwrap_err();
        let m2 = one_line(&e);
        assert!(m2.contains("dataset path"), "{name}: {m2}");
    }
}

#[test]
fn zarr_malformed_ome_path_symlink_escaping() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.zarr");
    copy_tree(&mal("ome_path_group.zarr"), &g);
    std::fs::remove_dir_all(g.join("0")).unwrap();
    // level 0 is a symlink to an array outside the group
    std::os::unix::fs::symlink(fixture("v3_u8_raw.zarr"), g.join("0")).unwrap();
    let e = ome::read_levels_hwc(&g).unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("dataset path") && m.contains("outside"), "{m}");
    // a symlink inside the group is fine
    let g2 = dir.path().join("g2.zarr");
    copy_tree(&mal("ome_path_group.zarr"), &g2);
    std::fs::remove_dir_all(g2.join("0")).unwrap();
    copy_tree(&fixture("v3_u8_raw.zarr"), &g2.join("real"));
    std::os::unix::fs::symlink("real", g2.join("0")).unwrap();
    ome::read_multiscales(&g2).unwrap();
}

#[test]
fn zarr_malformed_ome_path_not_an_array() {
    let e = ome::read_levels_hwc(mal("ome_path_group.zarr")).unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("OME multiscales dataset path \"0\""), "{m}");
    assert!(m.contains("not a Zarr array"), "{m}");
}

/// Replaces one chunk (or shard) file of a copy of fixture `name` by what `make` creates.
fn with_chunk(name: &str, chunk: &str, make: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join(name);
    copy_tree(&fixture(name), &a);
    let c = a.join(chunk);
    std::fs::remove_file(&c).unwrap();
    make(&c);
    (dir, a)
}

fn mkfifo(p: &Path) {
    let ok = std::process::Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {}", p.display());
}

fn dev_zero(p: &Path) {
    std::os::unix::fs::symlink("/dev/zero", p).unwrap();
}

const CHUNK_CASES: [(&str, &str); 5] = [
    ("v3_u8_raw.zarr", "c/0/0/0"),
    ("v2_u8_raw.zarr", "0.0"),
    ("v3_u16_zstd.zarr", "c/0/0"),
    ("v2_u16_zlib.zarr", "0.0"),
    ("v3_u8_sharded_raw.zarr", "c/0/0"),
];

/// A FIFO as a chunk does not block a read, and `/dev/zero` is not read as data: both are
/// refused as not regular files.
#[test]
fn zarr_malformed_chunk_fifo_or_dev_zero_is_refused_without_blocking() {
    for make in [mkfifo as fn(&Path), dev_zero] {
        for (name, chunk) in CHUNK_CASES.into_iter().chain([("v3_u16_sharded_zstd.zarr", "c/0/0")]) {
            let (_d, a) = with_chunk(name, chunk, make);
            let r = within(20, move || open_and_read(&a).map(|_| ()));
            let e = r.unwrap_err();
            let m = one_line(&e);
            assert!(m.contains("not a regular file"), "{name}: {m}");
        }
    }
}

#[test]
fn zarr_malformed_compressed_chunk_too_large() {
    // a compressed chunk file far larger than its chunk could ever need
    let (_d, a) = with_chunk("v3_u16_zstd.zarr", "c/0/0", |p| {
        std::fs::write(p, vec![0u8; 8 << 20]).unwrap();
    });
    let e = open_and_read(&a).unwrap_err();
    let m = one_line(&e);
    assert!(matches!(e, ZarrError::Chunk { .. }), "{m}");
    assert!(m.contains("too large"), "{m}");
}

#[test]
fn zarr_malformed_metadata_fifo_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.zarr");
    std::fs::create_dir(&a).unwrap();
    mkfifo(&a.join("zarr.json"));
    let r = within(20, move || ZarrArray::open(&a).map(|_| ()));
    let e = r.unwrap_err();
    one_line(&e);
    // v2 attributes (.zattrs), which zarrs read from the store itself before
    let (_d, a) = with_chunk("v2_u8_raw.zarr", ".zattrs", mkfifo);
    let r = within(20, move || ZarrArray::open(&a).map(|_| ()));
    let e = r.unwrap_err();
    let m = one_line(&e);
    assert!(m.contains("not a regular file") && m.contains(".zattrs"), "{m}");
}

#[test]
fn zarr_malformed_spec_sizes_are_checked() {
    use tiledio_zarr::{ArraySpec, DataType};
    let dir = tempfile::tempdir().unwrap();
    for spec in [
        ArraySpec::new(&[10, 10], &[1 << 32, 1 << 32], DataType::U8),
        ArraySpec::new(&[10], &[1 << 62], DataType::U16),
        ArraySpec::new(&[u64::MAX], &[64], DataType::U8),
        ArraySpec::new(&[64, 64], &[8, 8], DataType::U8).with_shards(&[1 << 40, 1 << 40]),
    ] {
        let e = ZarrArray::create(dir.path().join("a.zarr"), &spec).unwrap_err();
        let m = one_line(&e);
        assert!(matches!(e, ZarrError::Usage { .. }), "{m}");
        assert!(m.contains("overflows") || m.contains("2^63"), "{m}");
    }
}
