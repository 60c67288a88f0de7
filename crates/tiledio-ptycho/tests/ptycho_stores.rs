//! Frame stores and preprocessing against the fixtures of `testdata/ptycho/make_fixtures.py`
//! (NumPy reference, integer-valued data: compared bit for bit), and malformed inputs.

use std::path::PathBuf;
use tiledio_io::ElementType;
use tiledio_ptycho::{
    Center, ClampOrder, Device, FrameStore, Frames, NpyStore, Orientation, Output, OutputType, PreprocessOptions,
    PtychoError, RawLayout, RawStore, Reduce, ZarrStore, dark_frame, preprocess,
};
use tiledio_zarr::serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/ptycho")
        .join(name)
}

fn raw_store() -> RawStore {
    let mut l = RawLayout::new(512, (64, 80), ElementType::U16);
    l.stride = Some(64 * 80 * 2 + 64);
    RawStore::open(fixture("frames.raw"), l).unwrap()
}

#[test]
fn raw_and_npy_stores_read_the_same_frames_and_rows() {
    let npy = NpyStore::open(fixture("frames.npy")).unwrap();
    let raw = raw_store();
    assert_eq!(
        (npy.frames(), npy.shape(), npy.dtype()),
        (6, (64, 80), ElementType::U16)
    );
    assert_eq!(raw.frames(), 6);
    let all = npy.read_frames_to_vec(0..6, None).unwrap();
    assert_eq!(raw.read_frames_to_vec(0..6, None).unwrap(), all);
    // rows 10..20 of frames 2..5
    let part = raw.read_frames_to_vec(2..5, Some(10..20)).unwrap();
    let fb = 64 * 80 * 2;
    let want: Vec<u8> = (2..5)
        .flat_map(|f| all[f * fb + 10 * 160..f * fb + 20 * 160].to_vec())
        .collect();
    assert_eq!(part, want);
    assert!(matches!(raw.read_frames_to_vec(5..7, None), Err(PtychoError::Usage(_))));
    assert!(matches!(
        raw.read_frames_to_vec(0..1, Some(60..65)),
        Err(PtychoError::Usage(_))
    ));
}

#[test]
fn preprocessing_equals_the_numpy_reference() {
    let cases: Value = tiledio_zarr::serde_json::from_slice(&std::fs::read(fixture("cases.json")).unwrap()).unwrap();
    let darks = NpyStore::open(fixture("darks.npy")).unwrap();
    let dark = dark_frame(&darks, 0..4).unwrap();
    let stores: Vec<Box<dyn FrameStore>> = vec![
        Box::new(NpyStore::open(fixture("frames.npy")).unwrap()),
        Box::new(raw_store()),
    ];
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let mut o = PreprocessOptions::new(
            c["crop"].as_u64().unwrap() as usize,
            c["bin"].as_u64().unwrap() as usize,
        );
        o.device = Device::Cpu;
        o.batch = 4; // two batches, the second partial
        if let Some(cc) = c["center"].as_array() {
            o.center = Center::At(cc[0].as_i64().unwrap(), cc[1].as_i64().unwrap());
        }
        o.reduce = if c["reduce"] == "mean" {
            Reduce::Mean
        } else {
            Reduce::Sum
        };
        o.clamp = if c["clamp_first"] == true {
            ClampOrder::ClampThenBin
        } else {
            ClampOrder::BinThenClamp
        };
        o.orientation = Orientation::from_bits(c["orientation"].as_u64().unwrap() as u8).unwrap();
        o.output = if c["out"] == "uint16" {
            OutputType::U16
        } else {
            OutputType::F32
        };
        let want = NpyStore::open(fixture(&format!("ref_{name}.npy"))).unwrap();
        let want_bytes = want.read_frames_to_vec(0..6, None).unwrap();
        for s in &stores {
            let mut calls = Vec::new();
            let r = preprocess(s.as_ref(), Some(&dark), &o, Output::Host, &mut |d, t| {
                calls.push((d, t))
            })
            .unwrap();
            assert_eq!(calls, [(4, 6), (6, 6)]);
            assert_eq!((r.frames, r.side), (6, want.shape().0));
            let Frames::Host(v) = r.data else { panic!() };
            assert!(v == want_bytes, "{name} from {}", s.name());
        }
        // the same through a Zarr array written and read back
        let dir = tempfile::tempdir().unwrap();
        let zpath = dir.path().join("out.zarr");
        preprocess(
            stores[0].as_ref(),
            Some(&dark),
            &o,
            Output::Zarr(zpath.clone()),
            &mut |_, _| {},
        )
        .unwrap();
        let z = ZarrStore::open(&zpath).unwrap();
        assert_eq!(z.read_frames_to_vec(0..6, None).unwrap(), want_bytes, "{name} via Zarr");
    }
}

#[test]
fn a_zarr_stack_is_a_store() {
    let npy = NpyStore::open(fixture("frames.npy")).unwrap();
    let all = npy.read_frames_to_vec(0..6, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stack.zarr");
    let a = tiledio_zarr::ZarrArray::create(
        &p,
        &tiledio_zarr::ArraySpec::new(&[6, 64, 80], &[2, 32, 80], ElementType::U16),
    )
    .unwrap();
    a.write_all(&all, &Default::default()).unwrap();
    a.finish().unwrap();
    let z = ZarrStore::open(&p).unwrap();
    assert_eq!(
        z.read_frames_to_vec(1..4, Some(5..40)).unwrap(),
        NpyStore::open(fixture("frames.npy"))
            .unwrap()
            .read_frames_to_vec(1..4, Some(5..40))
            .unwrap()
    );
}

#[test]
fn malformed_inputs_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("frames.npy")).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    // truncated data
    let e = NpyStore::open(write("short.npy", &good[..good.len() - 1])).unwrap_err();
    assert!(matches!(e, PtychoError::Format { .. }), "{e}");
    // bad magic, bad version, header past the end, fortran order, big-endian, bad shape
    let mut b = good.clone();
    b[1] = b'X';
    assert!(matches!(
        NpyStore::open(write("magic.npy", &b)),
        Err(PtychoError::Format { .. })
    ));
    let mut b = good.clone();
    b[6] = 9;
    assert!(
        NpyStore::open(write("version.npy", &b))
            .unwrap_err()
            .to_string()
            .contains("version")
    );
    let mut b = good.clone();
    b[8] = 0xff;
    b[9] = 0xff;
    assert!(matches!(
        NpyStore::open(write("hlen.npy", &b[..200])),
        Err(PtychoError::Format { .. })
    ));
    let text = String::from_utf8_lossy(&good[10..128]).to_string();
    for (from, to, unsupported) in [
        ("'fortran_order': False", "'fortran_order': True ", true),
        ("'<u2'", "'>u2'", true),
        ("(6, 64, 80)", "(6, 64, 8x)", false),
        ("'descr'", "'desc' ", false),
    ] {
        assert!(text.contains(from), "{text}");
        let mut b = good.clone();
        let t = text.replacen(from, to, 1);
        b[10..128].copy_from_slice(t.as_bytes());
        let e = NpyStore::open(write("edit.npy", &b)).unwrap_err();
        if unsupported {
            assert!(matches!(e, PtychoError::Unsupported { .. }), "{from}: {e}");
        } else {
            assert!(matches!(e, PtychoError::Format { .. }), "{from}: {e}");
        }
    }
    // raw: more frames than the file holds, header past the end
    let mut l = RawLayout::new(0, (64, 80), ElementType::U16);
    l.frames = Some(100);
    assert!(matches!(
        RawStore::open(fixture("frames.raw"), l),
        Err(PtychoError::Format { .. })
    ));
    let l = RawLayout::new(1 << 40, (64, 80), ElementType::U16);
    assert!(matches!(
        RawStore::open(fixture("frames.raw"), l),
        Err(PtychoError::Format { .. })
    ));
    // a directory is not a frame file
    assert!(RawStore::open(dir.path(), RawLayout::new(0, (1, 1), ElementType::U8)).is_err());
    // preprocessing: crop not divisible by bin, dark of another shape
    let npy = NpyStore::open(fixture("frames.npy")).unwrap();
    let mut o = PreprocessOptions::new(30, 4);
    o.device = Device::Cpu;
    let e = preprocess(&npy, None, &o, Output::Host, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("not divisible"), "{e}");
    let o = {
        let mut o = PreprocessOptions::new(32, 4);
        o.device = Device::Cpu;
        o
    };
    let e = preprocess(&npy, Some(&[0.0; 10]), &o, Output::Host, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("dark"), "{e}");
}
