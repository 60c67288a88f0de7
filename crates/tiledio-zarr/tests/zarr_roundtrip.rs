//! Round trips of random (not zero) data through tiledio-zarr on the CPU: every codec × data
//! type, sharded and not, v3 and v2; regions; tile-by-tile writes; crash safety.

mod common;

use common::{codec_cases, sharded_if};
use tiledio_zarr::{
    ArraySpec, Border, Compression, DataType, Durability, Region, TileWriter, WriteOptions, ZarrArray, ZarrError,
    ZarrVersion,
};

use random::random_bytes;
use tiledio_test_support::random;

/// Random elements; floats kept finite so comparisons are of bytes anyway.
fn random_data(dt: DataType, n_elems: usize, seed: u64) -> Vec<u8> {
    let mut b = random_bytes(n_elems * dt.size(), seed);
    if matches!(dt, DataType::F32) {
        for c in b.chunks_mut(4) {
            let v = (u32::from_le_bytes(c.try_into().unwrap()) % 1_000_000) as f32 * 0.25 - 1000.0;
            c.copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

fn opts() -> WriteOptions {
    WriteOptions {
        durability: Durability::None,
        batch_bytes: 20_000,
        ..Default::default()
    }
}

#[test]
fn every_codec_dtype_sharded_or_not_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let shape = [45u64, 37, 3];
    for case in codec_cases([32u64, 32, 3]) {
        let (version, shards, c, dt) = (case.version, case.shards, case.codec, case.dtype);
        let n = shape.iter().product::<u64>() as usize;
        let data = random_data(dt, n, case.n);
        let spec = case.spec(&shape, &[16, 16, 3]).with_fill_value(1.0);
        let path = t.path().join(format!("a{}.zarr", case.n));
        let a = ZarrArray::create(&path, &spec).unwrap();
        a.write_all(&data, &opts())
            .unwrap_or_else(|e| panic!("{version:?} {shards:?} {c:?} {dt:?}: {e}"));
        a.finish().unwrap();
        let b = ZarrArray::open(&path).unwrap();
        assert_eq!(b.is_raw(), c == Compression::None, "{c:?}");
        assert_eq!(b.data_type(), Some(dt));
        let got = b.read_to_vec().unwrap();
        assert!(got == data, "{version:?} {shards:?} {c:?} {dt:?}: data differ");
        // A region across chunk and shard edges.
        let (o, s) = ([10u64, 14, 1], [30u64, 20, 2]);
        let mut reg = vec![0u8; (s.iter().product::<u64>() as usize) * dt.size()];
        b.read_region(&Region::at(&o, &s), Border::Reject, &mut reg).unwrap();
        let es = dt.size();
        let mut k = 0;
        for y in 0..s[0] {
            for x in 0..s[1] {
                for ch in 0..s[2] {
                    let lin = (((o[0] + y) * shape[1] + o[1] + x) * shape[2] + o[2] + ch) as usize;
                    assert_eq!(reg[k..k + es], data[lin * es..lin * es + es], "{c:?} {dt:?} region");
                    k += es;
                }
            }
        }
    }
}

#[test]
fn tile_writer_unaligned_tiles_round_trip_with_bounded_buffering() {
    // TileWriter flushes once max(rayon threads, 4) units are complete; pin the pool to two
    // threads so the bound checked below is the same on a 2-core CI machine and a 16-core one.
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(tile_writer_round_trip_in_pool);
}

fn tile_writer_round_trip_in_pool() {
    let t = tempfile::tempdir().unwrap();
    for (i, shards) in [None, Some([40u64, 40])].into_iter().enumerate() {
        for c in [Compression::None, Compression::Zstd { level: 1 }] {
            let shape = [100u64, 90];
            let spec = ArraySpec::new(&shape, &[20, 20], DataType::U16)
                .with_compression(c)
                .with_fill_value(9.0);
            let spec = sharded_if(spec, shards);
            let path = t.path().join(format!("t{i}{c:?}.zarr"));
            let a = ZarrArray::create(&path, &spec).unwrap();
            let data = random_data(DataType::U16, 100 * 90, 7);
            let mut w = TileWriter::new(&a, opts());
            let mut max_units = 0;
            // 33×30 tiles, row by row, leaving the last band (rows 99..100) unwritten.
            for ty in (0..99).step_by(33) {
                for tx in (0..90).step_by(30) {
                    let (h, wd) = (33.min(99 - ty), 30.min(90 - tx));
                    let mut tile = Vec::new();
                    for y in ty..ty + h {
                        let s = ((y * 90 + tx) * 2) as usize;
                        tile.extend_from_slice(&data[s..s + wd as usize * 2]);
                    }
                    w.write_tile(&[ty, tx], &[h, wd], &tile[..]).unwrap();
                    max_units = max_units.max(w.units_in_progress());
                }
            }
            w.finish().unwrap();
            let a = a.finish().unwrap();
            let got = a.read_to_vec().unwrap();
            assert!(got[..99 * 90 * 2] == data[..99 * 90 * 2], "{shards:?} {c:?}");
            assert!(
                got[99 * 90 * 2..]
                    .chunks(2)
                    .all(|e| u16::from_ne_bytes([e[0], e[1]]) == 9),
                "unwritten rows hold the fill value"
            );
            let grid_units = if shards.is_some() { 3 * 3 } else { 5 * 5 };
            assert!(max_units < grid_units, "buffered {max_units} of {grid_units} units");
        }
    }
}

#[test]
fn interrupted_write_is_not_an_array_and_leaves_no_partial_chunks() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("x.zarr");
    let a = ZarrArray::create(&path, &ArraySpec::new(&[64, 64], &[16, 16], DataType::U8)).unwrap();
    a.write_region(&[0, 0], &[16, 64], &random_bytes(16 * 64, 3), &opts())
        .unwrap();
    drop(a); // no finish: the write is abandoned
    assert!(matches!(ZarrArray::open(&path), Err(ZarrError::NotFound { .. })));
    // nothing at the path, and no temporary folder or chunk left beside it
    assert!(!path.exists());
    assert!(walk(t.path()).is_empty(), "{:?}", walk(t.path()));
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    // and a new write to the same path succeeds
    let a = ZarrArray::create(&path, &ArraySpec::new(&[64, 64], &[16, 16], DataType::U8)).unwrap();
    a.write_all(&random_bytes(64 * 64, 4), &opts()).unwrap();
    a.finish().unwrap();
    assert_eq!(
        ZarrArray::open(&path).unwrap().read_to_vec().unwrap(),
        random_bytes(64 * 64, 4)
    );
}

fn walk(p: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e.to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn durability_modes_and_missing_chunks_read_as_fill() {
    let t = tempfile::tempdir().unwrap();
    for (i, d) in [Durability::None, Durability::AtEnd, Durability::PerChunk]
        .into_iter()
        .enumerate()
    {
        for shards in [None, Some([32u64, 32])] {
            let path = t.path().join(format!("d{i}{}.zarr", shards.is_some()));
            let spec = sharded_if(
                ArraySpec::new(&[64, 64], &[16, 16], DataType::U32).with_fill_value(77.0),
                shards,
            );
            let a = ZarrArray::create(&path, &spec).unwrap();
            let data = random_data(DataType::U32, 32 * 64, 5);
            a.write_region(
                &[0, 0],
                &[32, 64],
                &data,
                &WriteOptions {
                    durability: d,
                    ..opts()
                },
            )
            .unwrap();
            let a = a.finish().unwrap();
            let got = a.read_to_vec().unwrap();
            assert!(got[..data.len()] == data);
            assert!(
                got[data.len()..]
                    .chunks(4)
                    .all(|e| u32::from_ne_bytes(e.try_into().unwrap()) == 77)
            );
        }
    }
}

#[test]
fn bad_requests_are_typed_errors() {
    let t = tempfile::tempdir().unwrap();
    let a = ZarrArray::create(
        t.path().join("b.zarr"),
        &ArraySpec::new(&[10, 10], &[4, 4], DataType::U8),
    )
    .unwrap();
    let buf = [0u8; 100];
    assert!(matches!(
        a.write_region(&[1, 0], &[4, 4], &buf[..16], &opts()),
        Err(ZarrError::Usage { .. })
    ));
    assert!(matches!(a.write_all(&buf[..99], &opts()), Err(ZarrError::Usage { .. })));
    let mut out = vec![0u8; 4];
    assert!(matches!(
        a.read_region(&Region::at(&[9, 9], &[2, 2]), Border::Reject, &mut out),
        Err(ZarrError::Usage { .. })
    ));
    assert!(matches!(
        a.read_region(&Region::at(&[0], &[2]), Border::Reject, &mut out),
        Err(ZarrError::Usage { .. })
    ));
    assert!(ZarrArray::create(t.path().join("c.zarr"), &ArraySpec::new(&[10], &[0], DataType::U8)).is_err());
    assert!(
        ZarrArray::create(
            t.path().join("c.zarr"),
            &ArraySpec::new(&[10], &[4], DataType::U8).with_shards(&[6])
        )
        .is_err()
    );
    let v2s = ArraySpec::new(&[10], &[4], DataType::U8)
        .with_shards(&[8])
        .with_version(ZarrVersion::V2);
    assert!(ZarrArray::create(t.path().join("d.zarr"), &v2s).is_err());
    std::fs::create_dir_all(t.path().join("full.zarr")).unwrap();
    std::fs::write(t.path().join("full.zarr/x"), b"x").unwrap();
    assert!(matches!(
        ZarrArray::create(t.path().join("full.zarr"), &ArraySpec::new(&[4], &[4], DataType::U8)),
        Err(ZarrError::AlreadyExists { .. })
    ));
}

#[test]
fn corrupt_chunks_and_shards_are_typed_errors() {
    let t = tempfile::tempdir().unwrap();
    let spec = ArraySpec::new(&[8, 8], &[4, 4], DataType::U8);
    let flip_index_byte = |p: &std::path::Path| {
        let mut b = std::fs::read(p.join("c/0/0")).unwrap();
        let n = b.len();
        b[n - 10] ^= 0xff;
        std::fs::write(p.join("c/0/0"), &b).unwrap();
    };
    // how a written array is damaged
    type Damage = fn(&std::path::Path);
    let cases: [(&str, ArraySpec, Damage); 3] = [
        // Raw chunk of the wrong size.
        ("r.zarr", spec.clone(), |p| {
            std::fs::write(p.join("c/0/0"), b"short").unwrap()
        }),
        // Shard with a damaged index.
        ("s.zarr", spec.clone().with_shards(&[8, 8]), flip_index_byte),
        // Compressed chunk with garbage.
        ("z.zarr", spec.with_compression(Compression::Zstd { level: 1 }), |p| {
            std::fs::write(p.join("c/0/1"), b"garbage").unwrap()
        }),
    ];
    for (name, spec, damage) in cases {
        let p = t.path().join(name);
        let a = ZarrArray::create(&p, &spec).unwrap();
        a.write_all(&random_bytes(64, 1), &opts()).unwrap();
        a.finish().unwrap();
        damage(&p);
        assert!(
            matches!(ZarrArray::open(&p).unwrap().read_to_vec(), Err(ZarrError::Chunk { .. })),
            "{name}"
        );
    }
}

/// `Border::Fill`: the cells of a region outside the array read as the fill value, the cells
/// inside as the data, for regions reaching past every edge, and a region wholly outside reads
/// as fill only; `Border::Reject` refuses the same regions.
#[test]
fn regions_past_the_edge_read_the_fill_value_under_border_fill() {
    let t = tempfile::tempdir().unwrap();
    let (h, w) = (23u64, 17u64);
    let data: Vec<u8> = (0..h * w).map(|i| (i % 200) as u8 + 1).collect();
    for (k, shards) in [None, Some([16u64, 16])].into_iter().enumerate() {
        let spec = sharded_if(
            ArraySpec::new(&[h, w], &[8, 8], DataType::U8).with_fill_value(255.0),
            shards,
        );
        let path = t.path().join(format!("f{k}.zarr"));
        let a = ZarrArray::create(&path, &spec).unwrap();
        a.write_all(&data[..], &opts()).unwrap();
        a.finish().unwrap();
        let a = ZarrArray::open(&path).unwrap();
        for (origin, shape) in [
            ([-3i64, -2i64], [9u64, 7u64]),
            ([20, 10], [6, 12]),
            ([-1, -1], [25, 19]),
            ([30, 0], [2, 2]),
        ] {
            let r = Region::new(&origin, &shape);
            let mut got = vec![0u8; (shape[0] * shape[1]) as usize];
            a.read_region(&r, Border::Fill, &mut got[..]).unwrap();
            for y in 0..shape[0] as i64 {
                for x in 0..shape[1] as i64 {
                    let (gy, gx) = (origin[0] + y, origin[1] + x);
                    let want = if (0..h as i64).contains(&gy) && (0..w as i64).contains(&gx) {
                        data[(gy as u64 * w + gx as u64) as usize]
                    } else {
                        255
                    };
                    assert_eq!(
                        got[(y * shape[1] as i64 + x) as usize],
                        want,
                        "{origin:?}+{shape:?} at {y},{x}"
                    );
                }
            }
            assert!(matches!(
                a.read_region(&r, Border::Reject, &mut got[..]),
                Err(ZarrError::Usage { .. })
            ));
        }
    }
}

/// Writes and reads run their CPU work on the compute threads of their settings: with one
/// compute thread (the case where a write holding a compute thread while its producer waits
/// for another would deadlock) a compressed, batched round trip still completes and matches.
#[test]
fn one_compute_thread_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let settings = tiledio_io::Settings {
        compute_threads: 1,
        threads: 2,
        ..Default::default()
    };
    for c in [Compression::None, Compression::Zstd { level: 3 }] {
        let path = dir
            .path()
            .join(format!("a{c:?}.zarr").replace([' ', '{', '}', ':'], ""));
        let spec = ArraySpec::new(&[70, 90], &[16, 16], DataType::U16).with_compression(c);
        let a = ZarrArray::create(&path, &spec).unwrap();
        let data = random_data(DataType::U16, 70 * 90, 11);
        let w = WriteOptions {
            settings: settings.clone(),
            ..opts()
        };
        a.write_all(&data[..], &w).unwrap();
        a.finish().unwrap();
        let back = ZarrArray::open_with(&path, &settings).unwrap();
        let mut out = vec![0u8; data.len()];
        back.read_all(&mut out[..]).unwrap();
        assert_eq!(out, data, "{c:?}");
    }
}
