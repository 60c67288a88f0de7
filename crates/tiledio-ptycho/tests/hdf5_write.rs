//! The HDF5 writer: every layout (contiguous, chunked, LZ4, bitshuffle-LZ4) and element type
//! read back exactly by `Hdf5Store` and by h5py + hdf5plugin (filters' client data as
//! hdf5plugin writes them; libhdf5 appending to the files and adding a group), a chunk B-tree
//! of three levels, Eiger-like masters (external links, more than 8 of them), the simulator's
//! HDF5 writers, temporary files never left behind, typed errors.

use std::path::{Path, PathBuf};
use tiledio_io::ElementType;
use tiledio_ptycho::simulate::{Simulation, SimulationOptions};
use tiledio_ptycho::{FrameStore, Hdf5ExternalLink, Hdf5Layout, Hdf5Store, Hdf5Writer, PtychoError, write_hdf5_links};
use tiledio_test_support::python::run_python;

const DS: &str = "/entry/data/data";

/// Deterministic frames: even frames small counts (compressible), odd ones random bits (LZ4
/// stores those blocks as they are), floats finite.
fn frames(n: usize, h: usize, w: usize, t: ElementType, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::with_capacity(n * h * w * t.size());
    for f in 0..n {
        for p in 0..h * w {
            let r = next();
            let small = (r % 7) + if p % 97 == 0 { 300 } else { 0 };
            let v = if f % 2 == 0 { small } else { r };
            match t {
                ElementType::U8 => out.push(v as u8),
                ElementType::U16 => out.extend((v as u16).to_ne_bytes()),
                ElementType::U32 => out.extend((v as u32).to_ne_bytes()),
                ElementType::I16 => out.extend((v as i16).to_ne_bytes()),
                ElementType::F32 => {
                    let x = if f % 2 == 0 {
                        small as f32
                    } else {
                        (r % 1_000_000) as f32 * 0.37 - 1e5
                    };
                    out.extend(x.to_ne_bytes())
                }
                ElementType::F64 => out.extend(((r % 1_000_000) as f64 * 1e-3).to_ne_bytes()),
                _ => unreachable!(),
            }
        }
    }
    out
}

fn npy_dtype(t: ElementType) -> &'static str {
    t.npy_descr()
}

fn layout_name(l: Hdf5Layout) -> (&'static str, usize) {
    match l {
        Hdf5Layout::Contiguous => ("contiguous", 0),
        Hdf5Layout::Chunked => ("chunked", 0),
        Hdf5Layout::Lz4 => ("lz4", 0),
        Hdf5Layout::BitshuffleLz4 { block } => ("bslz4", block),
        _ => unreachable!(),
    }
}

/// One file for the Python check.
struct Case {
    file: PathBuf,
    dataset: String,
    raw: PathBuf,
    dtype: ElementType,
    shape: [usize; 3],
    layout: Hdf5Layout,
    /// Let libhdf5 append a frame (the given one, raw) and add a group, then read it back here.
    append: Option<PathBuf>,
}

const PY_CHECK: &str = r#"
import json, sys
import numpy as np, h5py, hdf5plugin
cases = json.load(open(sys.argv[1]))
for c in cases:
    shape = tuple(c["shape"])
    want = np.fromfile(c["raw"], dtype=c["dtype"]).reshape(shape)
    with h5py.File(c["file"], "r") as f:
        d = f[c["dataset"]]
        where = c["file"]
        assert d.shape == shape and d.dtype == np.dtype(c["dtype"]), (where, d.shape, d.dtype)
        assert d[()].tobytes() == want.tobytes(), where
        for i in sorted({0, shape[0] // 2, shape[0] - 1, min(64, shape[0] - 1)}):
            assert d[i].tobytes() == want[i].tobytes(), (where, i)
        pl = d.id.get_create_plist()
        n = pl.get_nfilters()
        if c["layout"] == "contiguous":
            assert d.chunks is None and n == 0 and d.maxshape == shape, (where, d.chunks, d.maxshape)
        else:
            assert d.chunks == (1,) + shape[1:], (where, d.chunks)
            assert d.maxshape == (None,) + shape[1:], (where, d.maxshape)
        if c["layout"] == "chunked":
            assert n == 0, where
        if c["layout"] == "lz4":
            fid, flags, cd, name = pl.get_filter(0)
            assert n == 1 and fid == 32004, (where, fid)
            assert cd == hdf5plugin.LZ4(nbytes=1 << 20).filter_options, (where, cd)
        if c["layout"] == "bslz4":
            fid, flags, cd, name = pl.get_filter(0)
            es = np.dtype(c["dtype"]).itemsize
            assert n == 1 and fid == 32008, (where, fid)
            # (major, minor, element size) then what hdf5plugin passes: (block, 2 = LZ4)
            assert cd[:3] == (0, 2, es), (where, cd)
            assert cd[3:] == hdf5plugin.Bitshuffle(nelems=c["block"], cname="lz4").filter_options, (where, cd)
    if c["append"]:
        extra = np.fromfile(c["append"], dtype=c["dtype"]).reshape((1,) + shape[1:])
        with h5py.File(c["file"], "r+") as f:
            d = f[c["dataset"]]
            d.resize(shape[0] + 1, axis=0)
            d[shape[0]] = extra[0]
            f.create_group("extra/deeper")
        with h5py.File(c["file"], "r") as f:
            assert f[c["dataset"]][()].tobytes() == np.concatenate([want, extra]).tobytes(), c["file"]
            assert "deeper" in f["extra"]
print("ok", len(cases))
"#;

/// Runs the h5py check over `cases` (one Python process).
fn h5py_check(dir: &Path, cases: &[Case]) {
    let list: Vec<String> = cases
        .iter()
        .map(|c| {
            let (layout, block) = layout_name(c.layout);
            format!(
                r#"{{"file": "{}", "dataset": "{}", "raw": "{}", "dtype": "{}", "shape": [{}, {}, {}], "layout": "{layout}", "block": {block}, "append": {}}}"#,
                c.file.display(),
                c.dataset,
                c.raw.display(),
                npy_dtype(c.dtype),
                c.shape[0],
                c.shape[1],
                c.shape[2],
                c.append.as_ref().map_or("null".to_string(), |p| format!("\"{}\"", p.display()))
            )
        })
        .collect();
    let json = dir.join("cases.json");
    std::fs::write(&json, format!("[{}]", list.join(",\n"))).unwrap();
    let out = run_python(PY_CHECK, &[json.to_str().unwrap()]);
    // libhdf5 printed no diagnostics
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok {}", cases.len())
    );
}

/// Writes `data` (whole frames) pushing them in batches of 1, 3, then the rest.
fn write(path: &Path, ds: &str, shape: (usize, usize), t: ElementType, layout: Hdf5Layout, data: &[u8]) -> u64 {
    let mut w = Hdf5Writer::create(path, ds, shape, t, layout).unwrap();
    let fb = w.frame_bytes();
    let mut rest = data;
    for k in [1, 3, usize::MAX] {
        let take = rest.len().min(k.saturating_mul(fb));
        w.push_frames(&rest[..take]).unwrap();
        rest = &rest[take..];
    }
    assert_eq!(w.frames() as usize, data.len() / fb);
    assert!(!path.exists(), "the file is at its name before finish");
    let bytes = w.finish().unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len(), bytes);
    bytes
}

fn check_store(s: &Hdf5Store, n: u64, shape: (usize, usize), t: ElementType, data: &[u8], label: &str) {
    assert_eq!((s.frames(), s.shape(), s.dtype()), (n, shape, t), "{label}");
    assert_eq!(s.read_frames_to_vec(0..n, None).unwrap(), data, "{label}");
    if n > 2 {
        // the middle third of the rows of frames 1 and 2
        let (h, w) = shape;
        let rows = h / 3..(2 * h / 3).max(h / 3 + 1);
        let rb = w * t.size();
        let got = s.read_frames_to_vec(1..3, Some(rows.clone())).unwrap();
        let want: Vec<u8> = (1..3)
            .flat_map(|f| data[(f * h + rows.start) * rb..(f * h + rows.end) * rb].to_vec())
            .collect();
        assert_eq!(got, want, "{label} rows");
    }
}

#[test]
fn every_layout_and_type_reads_back_in_the_store_and_in_h5py() {
    let dir = tempfile::tempdir().unwrap();
    let (n, h, w) = (10usize, 64usize, 96usize);
    let layouts = [
        Hdf5Layout::Contiguous,
        Hdf5Layout::Chunked,
        Hdf5Layout::Lz4,
        Hdf5Layout::BitshuffleLz4 { block: 0 },
        Hdf5Layout::BitshuffleLz4 { block: 256 },
    ];
    let mut cases = Vec::new();
    for (ti, t) in [
        ElementType::U16,
        ElementType::U32,
        ElementType::F32,
        ElementType::U8,
        ElementType::I16,
    ]
    .into_iter()
    .enumerate()
    {
        let data = frames(n, h, w, t, ti as u64 + 1);
        let raw = dir.path().join(format!("{t}.bin"));
        std::fs::write(&raw, &data).unwrap();
        for (li, layout) in layouts.into_iter().enumerate() {
            // the element types beyond u16 and u32 in two layouts each, to keep this fast
            if ti >= 2 && !matches!(li, 0 | 3) {
                continue;
            }
            let file = dir.path().join(format!("{t}_{li}.h5"));
            // a dataset path of another depth now and then
            let ds = if li == 1 { "/frames".to_string() } else { DS.to_string() };
            write(&file, &ds, (h, w), t, layout, &data);
            let s = Hdf5Store::open(&file, &ds).unwrap();
            check_store(&s, n as u64, (h, w), t, &data, &format!("{t} {layout:?}"));
            // contiguous and unfiltered frames are read as rows straight from the file
            assert_eq!(
                s.reads_rows(),
                matches!(layout, Hdf5Layout::Contiguous | Hdf5Layout::Chunked)
            );
            let append = (t == ElementType::U16 && li > 0).then(|| {
                let p = dir.path().join(format!("{t}_{li}_extra.bin"));
                std::fs::write(&p, frames(1, h, w, t, 99)).unwrap();
                p
            });
            cases.push(Case {
                file,
                dataset: ds,
                raw: raw.clone(),
                dtype: t,
                shape: [n, h, w],
                layout,
                append: append.clone(),
            });
        }
    }
    // f64 and the other integers, contiguous
    for (i, t) in [
        ElementType::F64,
        ElementType::U64,
        ElementType::I8,
        ElementType::I32,
        ElementType::I64,
    ]
    .into_iter()
    .enumerate()
    {
        let data: Vec<u8> = if t == ElementType::F64 {
            frames(3, 8, 12, t, 7)
        } else {
            frames(3, 8, 12, ElementType::U8, 7 + i as u64)
                .iter()
                .flat_map(|&b| std::iter::repeat_n(b, t.size()))
                .collect()
        };
        let file = dir.path().join(format!("{t}.h5"));
        let raw = dir.path().join(format!("{t}.bin"));
        std::fs::write(&raw, &data).unwrap();
        write(&file, DS, (8, 12), t, Hdf5Layout::Contiguous, &data);
        check_store(
            &Hdf5Store::open(&file, DS).unwrap(),
            3,
            (8, 12),
            t,
            &data,
            &format!("{t}"),
        );
        cases.push(Case {
            file,
            dataset: DS.into(),
            raw,
            dtype: t,
            shape: [3, 8, 12],
            layout: Hdf5Layout::Contiguous,
            append: None,
        });
    }
    h5py_check(dir.path(), &cases);
    // what libhdf5 appended (a frame, a group) reads back here too
    for c in cases.iter().filter(|c| c.append.is_some()) {
        let s = Hdf5Store::open(&c.file, &c.dataset).unwrap();
        let mut want = std::fs::read(&c.raw).unwrap();
        want.extend(std::fs::read(c.append.as_ref().unwrap()).unwrap());
        check_store(
            &s,
            11,
            (h, w),
            c.dtype,
            &want,
            &format!("{} after h5py", c.file.display()),
        );
    }
}

#[test]
fn many_frames_make_a_chunk_btree_of_three_levels() {
    // 4200 chunks: 66 leaves of at most 64, 2 nodes above them, a root
    let dir = tempfile::tempdir().unwrap();
    let (n, h, w) = (4200usize, 3usize, 5usize);
    let data = frames(n, h, w, ElementType::U8, 5);
    let raw = dir.path().join("tiny.bin");
    std::fs::write(&raw, &data).unwrap();
    let mut cases = Vec::new();
    for (i, layout) in [Hdf5Layout::Chunked, Hdf5Layout::BitshuffleLz4 { block: 0 }]
        .into_iter()
        .enumerate()
    {
        let file = dir.path().join(format!("tiny_{i}.h5"));
        write(&file, DS, (h, w), ElementType::U8, layout, &data);
        let s = Hdf5Store::open(&file, DS).unwrap();
        check_store(&s, n as u64, (h, w), ElementType::U8, &data, &format!("{layout:?}"));
        for f in [0u64, 63, 64, 4095, 4096, 4199] {
            let fb = h * w;
            assert_eq!(
                s.read_frames_to_vec(f..f + 1, None).unwrap(),
                &data[f as usize * fb..(f as usize + 1) * fb]
            );
        }
        cases.push(Case {
            file,
            dataset: DS.into(),
            raw: raw.clone(),
            dtype: ElementType::U8,
            shape: [n, h, w],
            layout,
            append: None,
        });
    }
    h5py_check(dir.path(), &cases);
}

#[test]
fn no_frames_make_an_empty_dataset() {
    let dir = tempfile::tempdir().unwrap();
    for (i, layout) in [Hdf5Layout::Contiguous, Hdf5Layout::Lz4].into_iter().enumerate() {
        let file = dir.path().join(format!("empty_{i}.h5"));
        write(&file, DS, (4, 6), ElementType::U16, layout, &[]);
        let s = Hdf5Store::open(&file, DS).unwrap();
        assert_eq!((s.frames(), s.shape()), (0, (4, 6)));
        let out = run_python(
            "import sys, h5py, hdf5plugin\nd = h5py.File(sys.argv[1], 'r')['/entry/data/data']\nprint(d.shape, d[()].size)",
            &[file.to_str().unwrap()],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "(0, 4, 6) 0");
    }
}

#[test]
fn an_unfinished_writer_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.h5");
    let listing = || std::fs::read_dir(dir.path()).unwrap().count();
    for layout in [Hdf5Layout::Contiguous, Hdf5Layout::BitshuffleLz4 { block: 0 }] {
        let mut w = Hdf5Writer::create(&path, DS, (8, 8), ElementType::U16, layout).unwrap();
        w.push_frames(&frames(3, 8, 8, ElementType::U16, 1)).unwrap();
        // a push of a partial frame is refused and changes nothing
        let e = w.push_frames(&[0u8; 7]).unwrap_err();
        assert!(matches!(e, PtychoError::Usage(_)), "{e}");
        assert_eq!(w.frames(), 3);
        assert_eq!(listing(), 1, "only the temporary file");
        drop(w);
        assert!(!path.exists());
        assert_eq!(listing(), 0, "the temporary file is removed");
    }
    // an existing file at the target stays as it was until finish replaces it
    std::fs::write(&path, b"old").unwrap();
    let mut w = Hdf5Writer::create(&path, DS, (8, 8), ElementType::U16, Hdf5Layout::Chunked).unwrap();
    w.push_frames(&frames(1, 8, 8, ElementType::U16, 2)).unwrap();
    drop(w);
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(listing(), 1);
}

#[test]
fn errors_are_typed_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.h5");
    let create = |ds: &str, shape: (usize, usize), layout: Hdf5Layout| {
        Hdf5Writer::create(&p, ds, shape, ElementType::U16, layout).map(|_| ())
    };
    for (ds, shape, layout) in [
        ("", (4, 4), Hdf5Layout::Contiguous),
        ("/", (4, 4), Hdf5Layout::Contiguous),
        ("/entry/./data", (4, 4), Hdf5Layout::Contiguous),
        ("/entry/da\0ta", (4, 4), Hdf5Layout::Contiguous),
        (DS, (0, 4), Hdf5Layout::Contiguous),
        (DS, (4, 4), Hdf5Layout::BitshuffleLz4 { block: 12 }),
        (DS, (1 << 16, 1 << 16), Hdf5Layout::Chunked), // 8 GiB chunks
        (DS, (usize::MAX, 2), Hdf5Layout::Contiguous),
    ] {
        let e = create(ds, shape, layout).unwrap_err();
        assert!(matches!(e, PtychoError::Usage(_)), "{ds:?} {shape:?}: {e}");
        assert!(e.to_string().contains("e.h5"), "{e}");
    }
    assert!(!p.exists());
    // a folder where the file belongs is refused, never replaced
    let d = dir.path().join("folder.h5");
    std::fs::create_dir(&d).unwrap();
    let e = Hdf5Writer::create(&d, DS, (4, 4), ElementType::U16, Hdf5Layout::Contiguous).unwrap_err();
    assert!(matches!(e, PtychoError::Io(_)), "{e}");
    assert!(d.is_dir());
    // links: duplicate names, empty targets, bad group
    let link = |name: &str, file: &str| Hdf5ExternalLink {
        name: name.into(),
        file: file.into(),
        path: DS.into(),
    };
    for (group, links) in [
        ("/entry/data", vec![link("a", "x.h5"), link("a", "y.h5")]),
        ("/entry/data", vec![link("a", "")]),
        ("/entry/data", vec![link("a/b", "x.h5")]),
        ("", vec![link("a", "x.h5")]),
    ] {
        let e = write_hdf5_links(&p, group, &links).unwrap_err();
        assert!(matches!(e, PtychoError::Usage(_)), "{e}");
    }
    assert!(!p.exists());
    // layouts by name
    for (s, l) in [
        ("contiguous", Hdf5Layout::Contiguous),
        ("chunked", Hdf5Layout::Chunked),
        ("lz4", Hdf5Layout::Lz4),
        ("bslz4", Hdf5Layout::BitshuffleLz4 { block: 0 }),
        ("bslz4:512", Hdf5Layout::BitshuffleLz4 { block: 512 }),
    ] {
        assert_eq!(s.parse::<Hdf5Layout>().unwrap(), l);
    }
    for s in ["", "gzip", "bslz4:", "bslz4:x"] {
        assert!(matches!(s.parse::<Hdf5Layout>(), Err(PtychoError::Usage(_))), "{s}");
    }
}

#[test]
fn eiger_masters_read_as_one_stack_here_and_in_h5py() {
    let dir = tempfile::tempdir().unwrap();
    let (h, w) = (16usize, 24usize);
    // 11 data files (more than 8 links: compact storage all the same) of 1 or 2 frames
    let mut all = Vec::new();
    let mut links = Vec::new();
    for i in 1..=11u64 {
        let k = 1 + (i % 2) as usize;
        let data = frames(k, h, w, ElementType::U32, 100 + i);
        let file = format!("scan_data_{i:06}.h5");
        write(
            &dir.path().join(&file),
            DS,
            (h, w),
            ElementType::U32,
            Hdf5Layout::BitshuffleLz4 { block: 0 },
            &data,
        );
        all.extend(data);
        links.push(Hdf5ExternalLink {
            name: format!("data_{i:06}"),
            file,
            path: DS.into(),
        });
    }
    let master = dir.path().join("scan_master.h5");
    let bytes = write_hdf5_links(&master, "/entry/data", &links).unwrap();
    assert_eq!(std::fs::metadata(&master).unwrap().len(), bytes);
    let n = (all.len() / (h * w * 4)) as u64;
    let s = Hdf5Store::open_eiger_master(&master).unwrap();
    assert_eq!(s.datasets(), 11);
    check_store(&s, n, (h, w), ElementType::U32, &all, "master");
    let raw = dir.path().join("all.bin");
    std::fs::write(&raw, &all).unwrap();
    // h5py follows the links to the files beside the master, from another working directory
    let script = r#"
import os, sys
import numpy as np, h5py, hdf5plugin
master, raw, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.chdir("/")
want = np.fromfile(raw, dtype="<u4").reshape(-1, h, w)
with h5py.File(master, "r") as f:
    g = f["/entry/data"]
    names = sorted(g.keys())
    assert names == ["data_%06d" % i for i in range(1, 12)], names
    link = g.get(names[0], getlink=True)
    assert isinstance(link, h5py.ExternalLink) and link.filename == "scan_data_000001.h5" and link.path == "/entry/data/data", link
    got = np.concatenate([g[n][()] for n in names])
assert got.tobytes() == want.tobytes()
print("ok", got.shape[0])
"#;
    let out = run_python(
        script,
        &[
            master.to_str().unwrap(),
            raw.to_str().unwrap(),
            &h.to_string(),
            &w.to_string(),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("ok {n}"));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_simulator_writes_hdf5_and_eiger_file_sets() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = SimulationOptions::new(5, (64, 96), 32);
    o.photons = 1e5;
    o.seed = 3;
    let sim = Simulation::new(&o).unwrap();
    let want: Vec<u8> = (0..5)
        .flat_map(|i| sim.frame(i).unwrap().0)
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let raw = dir.path().join("sim.bin");
    std::fs::write(&raw, &want).unwrap();
    let mut cases = Vec::new();
    for (i, layout) in [
        Hdf5Layout::Contiguous,
        Hdf5Layout::Chunked,
        Hdf5Layout::Lz4,
        Hdf5Layout::BitshuffleLz4 { block: 0 },
    ]
    .into_iter()
    .enumerate()
    {
        let file = dir.path().join(format!("sim_{i}.h5"));
        let mut calls = 0;
        let written = sim.write_hdf5(&file, layout, &mut |_, _| calls += 1).unwrap();
        assert!(calls >= 1);
        assert_eq!(written.frames, 5);
        assert_eq!(written.bytes, std::fs::metadata(&file).unwrap().len());
        let s = Hdf5Store::open(&file, DS).unwrap();
        check_store(&s, 5, (64, 96), ElementType::U16, &want, &format!("sim {layout:?}"));
        cases.push(Case {
            file,
            dataset: DS.into(),
            raw: raw.clone(),
            dtype: ElementType::U16,
            shape: [5, 64, 96],
            layout,
            append: None,
        });
    }
    h5py_check(dir.path(), &cases);
    // an Eiger-like set: 2 frames per data file, the master last
    let master = dir.path().join("run7_master.h5");
    let written = sim
        .write_eiger(&master, 2, Hdf5Layout::BitshuffleLz4 { block: 0 }, &mut |_, _| {})
        .unwrap();
    let files: u64 = (1..=3)
        .map(|i| {
            std::fs::metadata(dir.path().join(format!("run7_data_{i:06}.h5")))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(written.bytes, files + std::fs::metadata(&master).unwrap().len());
    assert!(!dir.path().join("run7_data_000004.h5").exists());
    let s = Hdf5Store::open_eiger_master(&master).unwrap();
    assert_eq!(s.datasets(), 3);
    check_store(&s, 5, (64, 96), ElementType::U16, &want, "eiger");
    let out = run_python(
        "import sys, numpy as np, h5py, hdf5plugin\nf = h5py.File(sys.argv[1], 'r')['/entry/data']\nprint(int(sum(f[k][()].astype(np.uint64).sum() for k in f)), sum(f[k].shape[0] for k in f))",
        &[master.to_str().unwrap()],
    );
    let sum: u64 = want.chunks(2).map(|b| u16::from_ne_bytes([b[0], b[1]]) as u64).sum();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{sum} 5"));
    // a master not named *_master.h5, or no frames per file: refused before anything is written
    for (m, k) in [(dir.path().join("run8.h5"), 2), (dir.path().join("run8_master.h5"), 0)] {
        let e = sim.write_eiger(&m, k, Hdf5Layout::Chunked, &mut |_, _| {}).unwrap_err();
        assert!(matches!(e, PtychoError::Usage(_)), "{e}");
    }
    assert!(!dir.path().join("run8_data_000001.h5").exists());
}

/// Compressed stores give whole frames, which the GPU path decodes into two page-locked
/// buffers in turn and preprocesses on the GPU whole (no crop on the CPU) while the next batch
/// decodes: equal to the CPU for every output (GPU memory, host, Zarr), batches that do not
/// divide the stack, a centre off the middle and a dark frame.
#[test]
#[ignore = "needs a CUDA GPU"]
fn compressed_stacks_preprocess_on_the_gpu_as_on_the_cpu() {
    use tiledio_ptycho::{Center, Device, Frames, Output, PreprocessOptions, preprocess};
    let dir = tempfile::tempdir().unwrap();
    let (n, h, w) = (37usize, 70usize, 90usize);
    let mut state = 0x1234_5678_9abc_def1u64;
    let data: Vec<u8> = (0..n * h * w)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // photon-count-like: mostly small numbers, so LZ4 has something to compress
            ((state >> 40) as u16 % 9).to_ne_bytes()
        })
        .collect();
    let path = dir.path().join("stack.h5");
    write(
        &path,
        DS,
        (h, w),
        ElementType::U16,
        Hdf5Layout::BitshuffleLz4 { block: 0 },
        &data,
    );
    let store = Hdf5Store::open(&path, DS).unwrap();
    let dark: Vec<f32> = (0..h * w).map(|i| (i % 3) as f32).collect();
    let run = |device: Device, output: Output| {
        let mut o = PreprocessOptions::new(48, 2);
        o.center = Center::At(33, 41);
        o.batch = 8;
        o.device = device;
        preprocess(&store, Some(&dark), &o, output, &mut |_, _| {}).unwrap()
    };
    let Frames::Host(want) = run(Device::Cpu, Output::Host).data else {
        panic!("host frames")
    };
    let r = run(Device::Gpu, Output::Host);
    assert!(r.gpu, "ran on the GPU");
    let Frames::Host(got) = r.data else {
        panic!("host frames")
    };
    assert!(got == want, "GPU → host differs from the CPU");
    let Frames::Device(d) = run(Device::Gpu, Output::Device).data else {
        panic!("device frames")
    };
    assert!(
        d.to_host_vec().unwrap()[..want.len()] == want[..],
        "GPU → GPU memory differs"
    );
    let z = dir.path().join("out.zarr");
    let Frames::Zarr(p) = run(Device::Gpu, Output::Zarr(z.clone())).data else {
        panic!("zarr")
    };
    let a = tiledio_zarr::ZarrArray::open(&p).unwrap();
    assert!(a.read_to_vec().unwrap() == want, "GPU → Zarr differs");
}
