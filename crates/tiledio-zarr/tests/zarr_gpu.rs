//! GPU round trips (run on the device with `--include-ignored`): random data written from GPU
//! memory and read back into GPU memory, every codec × data type, sharded and not, plus
//! zarr-python fixtures read into GPU memory.

mod common;

use common::codec_cases;
use tiledio_io::gpu::DeviceBuffer;
use tiledio_zarr::{Border, DataType, Durability, Region, WriteOptions, ZarrArray};

use random::random_bytes;
use tiledio_test_support::random;

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_round_trips_every_codec_dtype_sharded_or_not() {
    assert!(tiledio_io::gpu::available(), "no GPU");
    let t = tempfile::tempdir().unwrap();
    let shape = [301u64, 257, 3];
    for case in codec_cases([128u64, 128, 3]) {
        let (version, shards, c, dt) = (case.version, case.shards, case.codec, case.dtype);
        let n = shape.iter().product::<u64>() as usize * dt.size();
        let mut data = random_bytes(n, case.n);
        if dt == DataType::F32 {
            for c in data.chunks_mut(4) {
                let v = c[0] as f32 * 0.5 - 7.0;
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        let dev = DeviceBuffer::from_host(&data).unwrap();
        let spec = case.spec(&shape, &[64, 64, 3]);
        let path = t.path().join(format!("g{}.zarr", case.n));
        let a = ZarrArray::create(&path, &spec).unwrap();
        a.write_all(
            &dev,
            &WriteOptions {
                durability: Durability::None,
                batch_bytes: 300_000,
                ..Default::default()
            },
        )
        .unwrap();
        let a = a.finish().unwrap();
        // Host read of what the GPU wrote.
        assert!(
            a.read_to_vec().unwrap() == data,
            "{version:?} {shards:?} {c:?} {dt:?}: host read"
        );
        // GPU read of the whole array and of a region.
        let mut back = DeviceBuffer::new(n).unwrap();
        a.read_all(&mut back).unwrap();
        assert!(
            back.to_host_vec().unwrap() == data,
            "{version:?} {shards:?} {c:?} {dt:?}: GPU read"
        );
        let (o, s) = ([70u64, 33, 0], [150u64, 200, 3]);
        let reg = a
            .read_region_to_device(&Region::at(&o, &s), Border::Reject)
            .unwrap()
            .to_host_vec()
            .unwrap();
        let mut host = vec![0u8; reg.len()];
        a.read_region(&Region::at(&o, &s), Border::Reject, &mut host).unwrap();
        assert!(reg == host, "{c:?} {dt:?}: GPU region");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_reads_zarr_python_fixtures() {
    assert!(tiledio_io::gpu::available(), "no GPU");
    let dir = tiledio_test_support::workspace_root().join("testdata/zarr");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "zarr") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let want = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
            let a = ZarrArray::open(&p).unwrap();
            let mut d = DeviceBuffer::new(want.len()).unwrap();
            a.read_all(&mut d).unwrap();
            assert!(d.to_host_vec().unwrap() == want, "{name}");
        }
    }
}
