//! The HDF5 reader against the fixtures of `testdata/ptycho/make_fixtures.py` (h5py +
//! hdf5plugin; `frames.npy` holds the expected frames): every layout, chunk index and filter it
//! reads, Eiger masters, the typed errors, truncated and byte-flipped files (errors, never
//! panics or wrong data), and preprocessing from a bitshuffle-LZ4 file.

use std::path::{Path, PathBuf};
use tiledio_io::ElementType;
use tiledio_ptycho::{
    Center, ClampOrder, Device, FrameStore, Frames, Hdf5Store, NpyStore, Orientation, Output, OutputType,
    PreprocessOptions, PtychoError, Reduce, dark_frame, preprocess,
};

const FB: usize = 64 * 80 * 2; // bytes of one u16 frame

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/ptycho")
        .join(name)
}

fn spec(file: &str, dataset: &str) -> String {
    format!("{}:{dataset}", fixture(file).display())
}

/// The six reference frames, u16 little-endian.
fn reference() -> Vec<u8> {
    NpyStore::open(fixture("frames.npy"))
        .unwrap()
        .read_frames_to_vec(0..6, None)
        .unwrap()
}

/// Rows `rows` of frames `frames` of a stack of whole frames `all` (`fb` bytes each, `rb` per
/// row).
fn band(all: &[u8], frames: std::ops::Range<usize>, rows: std::ops::Range<usize>, fb: usize, rb: usize) -> Vec<u8> {
    frames
        .flat_map(|f| all[f * fb + rows.start * rb..f * fb + rows.end * rb].to_vec())
        .collect()
}

/// Checks whole frames, row bands and frame sub-ranges of `s` against `want` (whole frames).
fn check_store(s: &Hdf5Store, want: &[u8], label: &str) {
    let (h, w) = s.shape();
    let rb = w * s.dtype().size();
    let fb = h * rb;
    let n = s.frames() as usize;
    assert_eq!(want.len(), n * fb, "{label}: frame count");
    assert!(
        s.read_frames_to_vec(0..n as u64, None).unwrap() == want,
        "{label}: all frames"
    );
    for (f, r) in [
        (0..n, 0..h),
        (n / 2..n, 10.min(h)..h),
        (0..1, h / 3..h / 3 + 1),
        (1.min(n)..n, 25.min(h)..47.min(h)),
    ] {
        let got = s
            .read_frames_to_vec(f.start as u64..f.end as u64, Some(r.clone()))
            .unwrap();
        assert!(
            got == band(want, f.clone(), r.clone(), fb, rb),
            "{label}: frames {f:?} rows {r:?}"
        );
    }
    assert!(s.read_frames_to_vec(n as u64..n as u64, None).unwrap().is_empty());
    assert!(matches!(
        s.read_frames_to_vec(0..n as u64 + 1, None),
        Err(PtychoError::Usage(_))
    ));
    assert!(matches!(
        s.read_frames_to_vec(0..1, Some(0..h + 1)),
        Err(PtychoError::Usage(_))
    ));
    // a longer host destination: the rest is left alone
    let mut dst = vec![0xaau8; fb + 3];
    s.read_frames(0..1, None, (&mut dst[..]).into()).unwrap();
    assert!(
        dst[..fb] == want[..fb] && dst[fb..] == [0xaa; 3],
        "{label}: longer destination"
    );
}

#[test]
fn every_fixture_reads_back_the_frames() {
    let want = reference();
    for (file, rows) in [
        ("h5_contiguous.h5", true),
        ("h5_chunked.h5", true),
        ("h5_chunked_latest.h5", true),
        ("h5_bslz4.h5", false),
        ("h5_lz4.h5", false),
    ] {
        let s = Hdf5Store::open_spec(&spec(file, "/entry/data/data")).unwrap();
        assert_eq!(
            (s.frames(), s.shape(), s.dtype()),
            (6, (64, 80), ElementType::U16),
            "{file}"
        );
        assert_eq!(s.reads_rows(), rows, "{file}");
        assert!(s.name().ends_with("h5:/entry/data/data"), "{}", s.name());
        check_store(&s, &want, file);
        // open() with a path and a relative dataset name is the same store
        let t = Hdf5Store::open(fixture(file), "entry/data/data").unwrap();
        assert!(t.read_frames_to_vec(3..5, Some(7..9)).unwrap() == band(&want, 3..5, 7..9, FB, 160));
    }
}

#[test]
fn an_eiger_master_is_the_concatenation_of_its_data_files() {
    let want = reference();
    let a = Hdf5Store::open_eiger_master(fixture("eiger_master.h5")).unwrap();
    let b = Hdf5Store::open_spec(&spec("eiger_master.h5", "/entry/data")).unwrap();
    for s in [&a, &b] {
        assert_eq!((s.frames(), s.datasets()), (6, 2));
        assert!(!s.reads_rows());
        check_store(s, &want, "eiger master");
        // frames 2..5 span both data files
        assert!(s.read_frames_to_vec(2..5, Some(5..40)).unwrap() == band(&want, 2..5, 5..40, FB, 160));
    }
    // one link, followed to its data file
    let one = Hdf5Store::open_spec(&spec("eiger_master.h5", "/entry/data/data_000002")).unwrap();
    check_store(&one, &want[3 * FB..], "data_000002 through its link");
}

/// `frames` (u16 LE) as another type, little-endian.
fn convert(frames: &[u8], t: ElementType) -> Vec<u8> {
    frames
        .chunks_exact(2)
        .flat_map(|b| {
            let v = u16::from_le_bytes([b[0], b[1]]);
            match t {
                ElementType::U16 => v.to_le_bytes().to_vec(),
                ElementType::I32 => i32::from(v).to_le_bytes().to_vec(),
                ElementType::F32 => f32::from(v).to_le_bytes().to_vec(),
                _ => unreachable!(),
            }
        })
        .collect()
}

#[test]
fn layouts_indexes_filters_and_links_read_back() {
    let all = reference();
    let f3 = &all[..3 * FB];
    let sevens: Vec<u8> = std::iter::repeat_n(7u16.to_le_bytes(), 64 * 80).flatten().collect();
    let fill_v0 = [&all[..FB], &sevens, &sevens].concat();
    let fill_ea = [&all[..FB], &sevens, &all[2 * FB..3 * FB]].concat();
    let (i32s, f32s) = (
        convert(&all[..FB], ElementType::I32),
        convert(&all[..FB], ElementType::F32),
    );
    // per file: (dataset, element type, frames, whether it reads rows)
    type Dataset = (&'static str, ElementType, Vec<u8>, bool);
    let cases: [(&str, Vec<Dataset>); 2] = [
        // v0 file: v1 B-tree, symbol-table groups
        (
            "h5_variants_v0.h5",
            vec![
                ("/edge", ElementType::U16, f3.to_vec(), false),
                ("/fill", ElementType::U16, fill_v0, true),
                ("/be", ElementType::U16, f3.to_vec(), false),
                ("/be_contiguous", ElementType::I32, i32s, false),
                ("/f32", ElementType::F32, f32s, true),
                ("/two_d", ElementType::U16, all[..FB].to_vec(), true),
                ("/soft", ElementType::U16, f3.to_vec(), false),
                ("/g/rel", ElementType::U16, f3.to_vec(), false),
            ],
        ),
        // latest file: the 1.10 chunk indexes
        (
            "h5_variants_latest.h5",
            vec![
                ("/a/single", ElementType::U16, f3.to_vec(), true),
                ("/a/single_bslz4", ElementType::U16, f3.to_vec(), false),
                ("/a/implicit", ElementType::U16, f3.to_vec(), true),
                ("/a/paged", ElementType::U16, f3.to_vec(), true),
                ("/b/ext", ElementType::U16, f3.to_vec(), true),
                ("/b/ext_many", ElementType::U16, f3.to_vec(), true),
                ("/b/ext_bslz4", ElementType::U16, f3.to_vec(), false),
                ("/b/ext_fill", ElementType::U16, fill_ea, true),
                ("/b/edge_lz4", ElementType::U16, f3.to_vec(), false),
                ("/a/soft", ElementType::U16, f3.to_vec(), true),
            ],
        ),
    ];
    for (file, datasets) in cases {
        for (ds, t, want, rows) in datasets {
            let label = format!("{file}:{ds}");
            let s = Hdf5Store::open(fixture(file), ds).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!((s.shape(), s.dtype(), s.reads_rows()), ((64, 80), t, rows), "{label}");
            check_store(&s, &want, &label);
        }
    }
}

fn err(file: &Path, ds: &str) -> PtychoError {
    match Hdf5Store::open(file, ds) {
        Ok(s) => panic!("{}:{ds} opened: {s:?}", file.display()),
        Err(e) => e,
    }
}

#[test]
fn errors_are_typed_one_line_and_name_file_and_dataset() {
    let v0 = fixture("h5_variants_v0.h5");
    let latest = fixture("h5_variants_latest.h5");
    let one_line = |e: &PtychoError| {
        let m = e.to_string();
        assert!(!m.contains('\n'), "{m}");
        m
    };
    // missing dataset, missing group on the way, a group that is no dataset
    for (ds, part) in [
        ("/nope", "'nope'"),
        ("/entry/data/nope", "'entry'"),
        ("/g", "data_NNNNNN"),
    ] {
        let e = err(&v0, ds);
        let m = one_line(&e);
        assert!(matches!(e, PtychoError::NotFound { .. }), "{m}");
        assert!(
            m.contains("h5_variants_v0.h5") && m.contains(ds) && m.contains(part),
            "{m}"
        );
    }
    // a dataset through a path component that is a dataset
    assert!(matches!(err(&v0, "/edge/x"), PtychoError::NotFound { .. }));
    // unsupported filter: the id, its name and the dataset
    let e = err(&v0, "/lzf");
    let m = one_line(&e);
    assert!(matches!(e, PtychoError::Unsupported { .. }), "{m}");
    assert!(m.contains("32000") && m.contains("lzf") && m.contains("/lzf"), "{m}");
    // a 1-D dataset is no frame stack
    let m = one_line(&err(&v0, "/one_d"));
    assert!(m.contains("/one_d") && m.contains("[10]"), "{m}");
    // dense link storage, the v2 B-tree chunk index
    let e = err(&latest, "/dense/d01");
    assert!(
        matches!(e, PtychoError::Unsupported { .. }) && one_line(&e).contains("dense"),
        "{e}"
    );
    let e = err(&latest, "/unlimited2");
    assert!(
        matches!(e, PtychoError::Unsupported { .. }) && one_line(&e).contains("v2 B-tree"),
        "{e}"
    );
    // link cycles: soft links in one file, external links across files
    let m = one_line(&err(&v0, "/g/loop1"));
    assert!(m.contains("more than 8"), "{m}");
    let m = one_line(&err(&fixture("h5_link_loop.h5"), "/a"));
    assert!(m.contains("more than 8"), "{m}");
    // a master whose second data file is missing
    let e = Hdf5Store::open_eiger_master(fixture("eiger_broken_master.h5")).unwrap_err();
    let m = one_line(&e);
    assert!(matches!(e, PtychoError::ExternalLink { .. }), "{m}");
    assert!(m.contains("eiger_data_missing.h5") && m.contains("data_000002"), "{m}");
    assert!(std::error::Error::source(&e).is_some());
    // not HDF5, a directory, a spec without a dataset
    assert!(matches!(err(&fixture("frames.npy"), "/x"), PtychoError::Format { .. }));
    assert!(matches!(err(&fixture(""), "/x"), PtychoError::Io(_)));
    assert!(matches!(Hdf5Store::open_spec("file.h5"), Err(PtychoError::Usage(_))));
}

/// Opens and reads every frame of `spec`-like (`path`, `dataset`); an error or the frames.
fn open_and_read(path: &Path, ds: &str) -> Result<Vec<u8>, PtychoError> {
    let s = Hdf5Store::open(path, ds)?;
    let n = s.frames().min(8);
    if s.frame_bytes() > 1 << 24 {
        return Ok(Vec::new());
    }
    s.read_frames_to_vec(0..n, None)
}

#[test]
fn truncated_files_are_errors_never_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    for (file, ds) in [
        ("h5_contiguous.h5", "/entry/data/data"),
        ("h5_chunked.h5", "/entry/data/data"),
        ("h5_chunked_latest.h5", "/entry/data/data"),
        ("h5_bslz4.h5", "/entry/data/data"),
        ("h5_lz4.h5", "/entry/data/data"),
    ] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        let len = bytes.len();
        for cut in [
            0,
            7,
            8,
            40,
            100,
            300,
            800,
            2048,
            len / 4,
            len / 2,
            3 * len / 4,
            len - 100,
            len - 1,
        ] {
            let p = dir.path().join(file);
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let r = open_and_read(&p, ds);
            assert!(r.is_err(), "{file} cut at {cut} of {len} read");
            assert!(!r.unwrap_err().to_string().contains('\n'));
        }
    }
}

#[test]
fn a_corrupted_chunk_is_a_chunk_error_with_its_index_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("h5_bslz4.h5")).unwrap();
    // bitshuffle-LZ4 chunks start with their size (10240, big-endian) and block size
    let head = 10240u64.to_be_bytes();
    let starts: Vec<usize> = (0..bytes.len() - 12).filter(|&i| bytes[i..i + 8] == head).collect();
    assert_eq!(starts.len(), 6, "one chunk per frame");
    // the third chunk in the file: its first block's compressed length made wrong
    let at = starts[2];
    bytes[at + 12..at + 16].copy_from_slice(&1u32.to_be_bytes());
    let p = dir.path().join("corrupt.h5");
    std::fs::write(&p, &bytes).unwrap();
    let s = Hdf5Store::open(&p, "/entry/data/data").unwrap();
    let want = reference();
    let mut bad = 0;
    for f in 0..6u64 {
        match s.read_frames_to_vec(f..f + 1, None) {
            Ok(v) => assert!(v == want[f as usize * FB..(f as usize + 1) * FB], "frame {f}"),
            Err(e @ PtychoError::Chunk { .. }) => {
                let PtychoError::Chunk { chunk, offset, .. } = &e else {
                    unreachable!()
                };
                assert_eq!((*chunk, *offset), (f, at as u64));
                let m = e.to_string();
                assert!(
                    m.contains(&format!("corrupt.h5:/entry/data/data: chunk {f} at byte {at}: ")),
                    "{m}"
                );
                bad += 1;
            }
            Err(e) => panic!("frame {f}: {e}"),
        }
    }
    assert_eq!(bad, 1);
    // the whole stack fails the same way
    assert!(matches!(
        s.read_frames_to_vec(0..6, None),
        Err(PtychoError::Chunk { .. })
    ));
}

#[test]
fn flipped_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["eiger_data_000001.h5", "eiger_data_000002.h5"] {
        std::fs::copy(fixture(f), dir.path().join(f)).unwrap();
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (file, ds) in [
        ("h5_chunked.h5", "/entry/data/data"),
        ("h5_chunked_latest.h5", "/entry/data/data"),
        ("h5_bslz4.h5", "/entry/data/data"),
        ("h5_lz4.h5", "/entry/data/data"),
        ("h5_contiguous.h5", "/entry/data/data"),
        ("eiger_master.h5", "/entry/data"),
        ("h5_variants_latest.h5", "/b/ext_many"),
        ("h5_variants_latest.h5", "/a/paged"),
        ("h5_variants_v0.h5", "/edge"),
    ] {
        let good = std::fs::read(fixture(file)).unwrap();
        for _ in 0..150 {
            let mut b = good.clone();
            // mostly the metadata at the start, sometimes anywhere
            let span = if next() % 4 == 0 { b.len() } else { b.len().min(4096) };
            for _ in 0..1 + next() % 3 {
                let i = (next() % span as u64) as usize;
                b[i] ^= 1 << (next() % 8);
            }
            let p = dir.path().join(file);
            std::fs::write(&p, &b).unwrap();
            // an error or some frames, never a panic (the links of the master point beside the
            // copy: eiger_data_* are copied too)
            let _ = open_and_read(&p, ds);
        }
    }
}

#[test]
fn preprocessing_a_bitshuffle_file_equals_the_numpy_reference() {
    let darks = NpyStore::open(fixture("darks.npy")).unwrap();
    let dark = dark_frame(&darks, 0..4).unwrap();
    let mut o = PreprocessOptions::new(32, 2);
    o.device = Device::Cpu;
    o.batch = 4;
    o.center = Center::Frame;
    o.reduce = Reduce::Sum;
    o.clamp = ClampOrder::ClampThenBin;
    o.orientation = Orientation::from_bits(0).unwrap();
    o.output = OutputType::F32;
    let want = NpyStore::open(fixture("ref_sum_centre.npy"))
        .unwrap()
        .read_frames_to_vec(0..6, None)
        .unwrap();
    for spec in [
        spec("h5_bslz4.h5", "/entry/data/data"),
        spec("h5_contiguous.h5", "/entry/data/data"),
        spec("eiger_master.h5", "/entry/data"),
    ] {
        let s = Hdf5Store::open_spec(&spec).unwrap();
        let r = preprocess(&s, Some(&dark), &o, Output::Host, &mut |_, _| {}).unwrap();
        let Frames::Host(v) = r.data else { panic!() };
        assert!(v == want, "{spec}");
    }
}

#[test]
fn a_master_of_many_data_files_is_read_by_the_dectris_naming() {
    // more than 8 links: dense storage, which the reader refuses by name
    let e = Hdf5Store::open(fixture("eiger_dense_master.h5"), "/entry/data").unwrap_err();
    assert!(
        matches!(e, PtychoError::Unsupported { .. }) && e.to_string().contains("dense"),
        "{e}"
    );
    // no eiger_dense_data_* beside it: the same error from open_eiger_master
    let e = Hdf5Store::open_eiger_master(fixture("eiger_dense_master.h5")).unwrap_err();
    assert!(matches!(e, PtychoError::Unsupported { .. }), "{e}");
    // SCAN_master.h5 with SCAN_data_000001.h5, SCAN_data_000002.h5 beside it
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("scan_master.h5");
    std::fs::copy(fixture("eiger_dense_master.h5"), &master).unwrap();
    for i in 1..=2 {
        std::fs::copy(
            fixture(&format!("eiger_data_{i:06}.h5")),
            dir.path().join(format!("scan_data_{i:06}.h5")),
        )
        .unwrap();
    }
    let s = Hdf5Store::open_eiger_master(&master).unwrap();
    assert_eq!((s.frames(), s.datasets()), (6, 2));
    check_store(&s, &reference(), "master by name");
    // a gap in the numbering is an error
    std::fs::rename(
        dir.path().join("scan_data_000002.h5"),
        dir.path().join("scan_data_000003.h5"),
    )
    .unwrap();
    let e = Hdf5Store::open_eiger_master(&master).unwrap_err();
    assert!(
        matches!(e, PtychoError::Format { .. }) && e.to_string().contains("number 3"),
        "{e}"
    );
}
