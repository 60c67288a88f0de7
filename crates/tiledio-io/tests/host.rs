//! Host-memory reads and writes checked against `std` on random data and random range sets.

use proptest::prelude::*;
use std::path::PathBuf;
use tiledio_io::{FileHandle, FileWriter, IoError, ReadRange, Settings, WriteRange};
use tiledio_test_support::random::random_bytes;

/// A scratch directory on the build's file system (not tmpfs), so O_DIRECT is really exercised.
fn scratch_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// `len` bytes at `file_offset` of the file, to `dst_offset` of the destination.
fn range(file_offset: u64, len: usize, dst_offset: usize) -> ReadRange {
    ReadRange {
        file_offset,
        len,
        dst_offset,
    }
}

/// A file `name` holding `data` in a new scratch directory, opened with the default settings.
fn file_of(name: &str, data: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf, FileHandle) {
    let dir = scratch_dir();
    let path = dir.path().join(name);
    std::fs::write(&path, data).unwrap();
    let fh = FileHandle::open(&path).unwrap();
    (dir, path, fh)
}

fn settings(threads: usize, task_pages: usize, gap: u64, direct: bool) -> Settings {
    Settings {
        threads,
        task_size: task_pages * 4096,
        coalesce_gap: gap,
        direct_io: direct,
        ..Settings::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random ranges, unordered and overlapping in the file, read into disjoint destinations.
    #[test]
    fn read_ranges_equals_std(
        file_len in 1usize..300_000,
        seed in any::<u64>(),
        raw in proptest::collection::vec((any::<u32>(), 0usize..40_000), 0..40),
        threads in 1usize..8,
        task_pages in 1usize..6,
        gap in prop_oneof![Just(0u64), Just(4096u64), Just(1u64 << 20)],
        direct in any::<bool>(),
    ) {
        let dir = scratch_dir();
        let path = dir.path().join("data.bin");
        let data = random_bytes(file_len, seed);
        std::fs::write(&path, &data).unwrap();
        let mut ranges = Vec::new();
        let mut dst_len = 0;
        for (off, len) in raw {
            let off = off as usize % file_len;
            let len = len.min(file_len - off);
            ranges.push(ReadRange { file_offset: off as u64, len, dst_offset: dst_len });
            dst_len += len;
        }
        let fh = FileHandle::open_with(&path, &settings(threads, task_pages, gap, direct)).unwrap();
        let mut got = vec![0xA5u8; dst_len];
        fh.read_ranges(&ranges, &mut got).unwrap();
        let mut want = vec![0u8; dst_len];
        for r in &ranges {
            want[r.dst_offset..r.dst_offset + r.len].copy_from_slice(&data[r.file_offset as usize..r.file_offset as usize + r.len]);
        }
        prop_assert_eq!(got, want);
    }

    /// Random disjoint ranges written from a random source, read back with `std`.
    #[test]
    fn write_ranges_then_std_read(
        seed in any::<u64>(),
        lens in proptest::collection::vec(0usize..30_000, 1..30),
        threads in 1usize..8,
        task_pages in 1usize..4,
        shuffle in any::<u64>(),
    ) {
        let dir = scratch_dir();
        let path = dir.path().join("out.bin");
        let total: usize = lens.iter().sum();
        let src = random_bytes(total, seed);
        // File layout: ranges back to back; source layout: the same ranges in a shuffled order.
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by_key(|&i| (i as u64).wrapping_mul(shuffle | 1).rotate_left(17));
        let mut file_off = vec![0usize; lens.len()];
        let mut acc = 0;
        for (i, l) in lens.iter().enumerate() { file_off[i] = acc; acc += l; }
        let mut ranges = Vec::new();
        let mut so = 0;
        for &i in &order {
            ranges.push(WriteRange { file_offset: file_off[i] as u64, len: lens[i], src_offset: so });
            so += lens[i];
        }
        let w = FileWriter::create_with(&path, &settings(threads, task_pages, 0, false)).unwrap();
        w.write_ranges(&ranges, &src).unwrap();
        prop_assert!(!path.exists(), "the file must not appear before finish");
        w.finish(true).unwrap();
        let got = std::fs::read(&path).unwrap();
        let mut want = vec![0u8; total];
        for r in &ranges { want[r.file_offset as usize..r.file_offset as usize + r.len].copy_from_slice(&src[r.src_offset..r.src_offset + r.len]); }
        prop_assert_eq!(got, want);
    }
}

#[test]
fn range_past_eof_is_a_typed_error() {
    let (_dir, path, fh) = file_of("short.bin", vec![1u8; 1000]);
    let mut buf = vec![0u8; 100];
    let err = fh.read_ranges(&[range(950, 100, 0)], &mut buf).unwrap_err();
    match err {
        IoError::PastEof {
            offset,
            len,
            file_len,
            path: p,
        } => {
            assert_eq!((offset, len, file_len), (950, 100, 1000));
            assert_eq!(p, path);
        }
        e => panic!("wrong error {e}"),
    }
    // An offset whose end overflows u64 is refused too, not wrapped.
    let err = fh.read_ranges(&[range(u64::MAX - 10, 100, 0)], &mut buf).unwrap_err();
    assert!(matches!(err, IoError::PastEof { .. }), "{err}");
    assert!(err.to_string().contains("short.bin"), "error names the file: {err}");
}

#[test]
fn zero_length_ranges_and_empty_files_are_fine() {
    let (_dir, _, fh) = file_of("empty.bin", b"");
    assert!(fh.is_empty());
    let mut buf = vec![9u8; 4];
    let st = fh.read_ranges(&[range(0, 0, 2)], &mut buf).unwrap();
    assert_eq!((st.bytes_read, st.pieces), (0, 0));
    assert_eq!(buf, [9, 9, 9, 9]);
}

#[test]
fn destination_errors_are_typed() {
    let (_dir, _, fh) = file_of("d.bin", vec![3u8; 100]);
    let mut buf = vec![0u8; 10];
    let err = fh.read_ranges(&[range(0, 8, 5)], &mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            IoError::BufferTooSmall {
                start: 5,
                end: 13,
                capacity: 10
            }
        ),
        "{err}"
    );
    let err = fh
        .read_ranges(&[range(0, 6, 0), range(50, 4, 4)], &mut buf)
        .unwrap_err();
    assert!(matches!(err, IoError::OverlappingDestinations { at: 4 }), "{err}");
}

#[test]
fn file_shrinking_after_open_gives_short_read() {
    let (_dir, path, fh) = file_of("shrink.bin", random_bytes(100_000, 7));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(50_000)
        .unwrap();
    let mut buf = vec![0u8; 100_000];
    let err = fh.read_at(0, &mut buf).unwrap_err();
    assert!(matches!(err, IoError::ShortRead { .. }), "{err}");
}

#[test]
fn direct_io_reads_unaligned_ranges() {
    let dir = scratch_dir();
    let path = dir.path().join("direct.bin");
    let data = random_bytes(1 << 20, 11);
    std::fs::write(&path, &data).unwrap();
    let fh = FileHandle::open_with(&path, &settings(4, 2, 0, true)).unwrap();
    // The build directory's file system takes O_DIRECT here and in CI (ext4/overlay).
    assert!(fh.direct_io(), "O_DIRECT was refused for {}", path.display());
    let ranges = [
        range(1, 4095, 0),
        range(12_345, 100_001, 4095),
        range((1 << 20) - 7, 7, 104_096),
    ];
    let mut got = vec![0u8; 104_103];
    fh.read_ranges(&ranges, &mut got).unwrap();
    for r in ranges {
        assert_eq!(
            &got[r.dst_offset..r.dst_offset + r.len],
            &data[r.file_offset as usize..r.file_offset as usize + r.len]
        );
    }
}

#[test]
fn unfinished_writer_leaves_nothing() {
    let dir = scratch_dir();
    let path = dir.path().join("never.bin");
    {
        let w = FileWriter::create(&path).unwrap();
        w.write_at(0, &b"partial"[..]).unwrap();
    }
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temporary file left behind"
    );
}

#[test]
fn write_files_writes_each_file_whole() {
    let dir = scratch_dir();
    let src = random_bytes(300_000, 5);
    let files: Vec<tiledio_io::FileWrite> = (0..30)
        .map(|i| tiledio_io::FileWrite {
            path: dir.path().join(format!("c/{i}")),
            src_offset: i * 10_000,
            len: 10_000,
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    let st = tiledio_io::write_files(&files, &src, &settings(4, 1, 0, false), true).unwrap();
    assert_eq!((st.files, st.bytes_written), (30, 300_000));
    let reads: Vec<tiledio_io::FileRead> = files
        .iter()
        .rev()
        .enumerate()
        .map(|(k, f)| tiledio_io::FileRead {
            path: f.path.clone(),
            file_offset: 0,
            len: f.len,
            dst_offset: k * 10_000,
        })
        .collect();
    let mut back = vec![0u8; 300_000];
    tiledio_io::read_files(&reads, &mut back, &settings(4, 1, 0, false)).unwrap();
    for (k, f) in files.iter().rev().enumerate() {
        assert_eq!(
            &back[k * 10_000..(k + 1) * 10_000],
            &src[f.src_offset..f.src_offset + f.len]
        );
    }
    // A missing directory: the error names the file, and no file of the batch is half-written.
    let bad = [tiledio_io::FileWrite {
        path: dir.path().join("nope/x"),
        src_offset: 0,
        len: 10,
    }];
    let err = tiledio_io::write_files(&bad, &src, &Settings::default(), false).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
