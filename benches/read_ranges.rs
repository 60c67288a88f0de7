//! Host-target `read_ranges` of tile-like ranges (768 KiB, shuffled) from a warm file, at several
//! thread counts, against one sequential `std` read of the same bytes. GPU-target figures come
//! from `tiledio bench read` on a GPU machine.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::io::{Read, Seek, SeekFrom};
use tiledio::io::{FileHandle, Settings};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiles.bin");
    let tile = 786_432usize;
    let n = 128;
    let mut x = 88172645463325252u64;
    let data: Vec<u8> = (0..n * tile)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &data).unwrap();
    let ranges = tiledio::demo::shuffled_tiles(n, tile);
    let mut out = vec![0u8; n * tile];
    let mut g = c.benchmark_group("read_ranges_host");
    g.throughput(Throughput::Bytes((n * tile) as u64));
    g.sample_size(20);
    for threads in [1, 4, 16] {
        let fh = FileHandle::open_with(
            &path,
            &Settings {
                threads,
                ..Settings::default()
            },
        )
        .unwrap();
        g.bench_function(format!("tiledio_{threads}_threads"), |b| {
            b.iter(|| fh.read_ranges(&ranges, &mut out).unwrap())
        });
    }
    g.bench_function("std_per_tile_seek_read", |b| {
        let mut f = std::fs::File::open(&path).unwrap();
        b.iter(|| {
            for r in &ranges {
                f.seek(SeekFrom::Start(r.file_offset)).unwrap();
                f.read_exact(&mut out[r.dst_offset..r.dst_offset + r.len]).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
