//! Zarr write/read throughput: an N×N RGB u8 array (default 24576², 1.81 GB) in GPU memory
//! (host memory when there is no GPU) written as uncompressed chunks of 256²–2048², and as
//! 512² chunks in 4096² shards; warm (page cache, no flush) and with a final sync; then read
//! back whole into GPU (or host) memory. Prints a table (chunk, layout, mode, GB/s).
//!
//! ```text
//! cargo run --release -p tiledio-zarr --example zarr_bench -- [--size 24576] [--dir /tmp/zb] [--chunks 256,512,1024,2048]
//! ```

use std::time::Instant;
use tiledio_io::Source;
use tiledio_io::gpu::{self, DeviceBuffer};
use tiledio_zarr::{ArraySpec, DataType, Durability, WriteOptions, ZarrArray};

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter().position(|x| x == name).and_then(|i| a.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = arg("--size").map(|s| s.parse()).transpose()?.unwrap_or(24576);
    let dir = std::path::PathBuf::from(
        arg("--dir").unwrap_or_else(|| std::env::temp_dir().join("tiledio_zarr_bench").display().to_string()),
    );
    let chunks: Vec<u64> = arg("--chunks")
        .unwrap_or_else(|| "256,512,1024,2048".into())
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let shape = [n, n, 3];
    let bytes = (n * n * 3) as usize;
    let host: Vec<u8> = (0..bytes).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let use_gpu = gpu::available();
    let dev = if use_gpu {
        Some(DeviceBuffer::from_host(&host)?)
    } else {
        None
    };
    let src = || -> Source<'_> {
        match &dev {
            Some(d) => Source::Device(d),
            None => Source::Host(&host),
        }
    };
    println!(
        "array {n}x{n}x3 u8 = {:.2} GB, source: {}, dir: {}",
        bytes as f64 / 1e9,
        if use_gpu { "GPU" } else { "host" },
        dir.display()
    );
    println!(
        "{:>6} {:>16} {:>12} {:>9} {:>8}",
        "chunk", "layout", "mode", "GB/s", "s"
    );
    let gbs = |secs: f64| bytes as f64 / 1e9 / secs;
    let mut cases: Vec<(u64, Option<u64>)> = chunks.iter().map(|&c| (c, None)).collect();
    cases.push((512, Some(4096)));
    for (c, shard) in cases {
        let layout = match shard {
            Some(s) => format!("{c}² in {s}² shards"),
            None => "chunk files".into(),
        };
        for (mode, durability) in [("write warm", Durability::None), ("write+sync", Durability::AtEnd)] {
            let _ = std::fs::remove_dir_all(&dir);
            let mut spec = ArraySpec::new(&shape, &[c, c, 3], DataType::U8);
            if let Some(s) = shard {
                spec = spec.with_shards(&[s, s, 3]);
            }
            let opts = WriteOptions {
                durability,
                batch_bytes: 2 << 30,
                ..Default::default()
            };
            let t0 = Instant::now();
            let a = ZarrArray::create(&dir, &spec)?;
            a.write_all(src(), &opts)?;
            a.finish()?;
            let s = t0.elapsed().as_secs_f64();
            println!("{c:>6} {layout:>16} {mode:>12} {:>9.2} {s:>8.3}", gbs(s));
        }
        let a = ZarrArray::open(&dir)?;
        for rep in 0..2 {
            let t0 = Instant::now();
            match &dev {
                Some(_) => {
                    let mut d = DeviceBuffer::new(bytes)?;
                    let t1 = Instant::now();
                    a.read_all(&mut d)?;
                    let s = t1.elapsed().as_secs_f64();
                    if rep == 0 {
                        assert!(d.to_host_vec()? == host, "read back differs");
                    }
                    println!(
                        "{c:>6} {layout:>16} {:>12} {:>9.2} {s:>8.3}",
                        if rep == 0 { "read GPU" } else { "read GPU 2" },
                        gbs(s)
                    );
                }
                None => {
                    let mut h = vec![0u8; bytes];
                    a.read_all(&mut h)?;
                    let s = t0.elapsed().as_secs_f64();
                    if rep == 0 {
                        assert!(h == host, "read back differs");
                    }
                    println!(
                        "{c:>6} {layout:>16} {:>12} {:>9.2} {s:>8.3}",
                        if rep == 0 { "read host" } else { "read host 2" },
                        gbs(s)
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
