//! Zarr write/read throughput: an N×N RGB u8 array in GPU memory (host memory when there is
//! no GPU) written as uncompressed chunks of each size asked for, and as 512² chunks in 4096²
//! shards; warm (page cache, no flush) and with a final sync; then read back whole into GPU
//! (or host) memory and checked. Prints a table (chunk, layout, mode, GB/s).
//!
//! The default is a small run (1024², a few MB, under a second); the figures in the README
//! come from `--size 24576` (1.81 GB).
//!
//! ```text
//! cargo run --release -p tiledio-zarr --example zarr_bench -- --help
//! cargo run --release -p tiledio-zarr --example zarr_bench -- [--size 1024] [--dir DIR] [--chunks 256,512]
//! cargo run --release -p tiledio-zarr --example zarr_bench -- --size 24576 --dir /tmp/zb --chunks 256,512,1024,2048
//! ```
//!
//! The arrays are written in a new folder inside `--dir` (created if missing), removed at the
//! end: nothing already in `--dir` is touched.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tiledio_io::Source;
use tiledio_io::gpu::{self, DeviceBuffer};
use tiledio_zarr::{ArraySpec, DataType, Durability, WriteOptions, ZarrArray};

const USAGE: &str = "\
zarr_bench: Zarr write and read throughput of an N x N RGB u8 array (GPU memory, or host
memory without a GPU): chunk files of each size, 512-pixel chunks in 4096-pixel shards, written
warm and with a final sync, then read back whole and checked.

Usage: cargo run --release -p tiledio-zarr --example zarr_bench -- [OPTIONS]

Options:
  --size N        array side in pixels [default: 1024, a few MB; the README's figures: 24576]
  --dir DIR       where a temporary folder for the arrays is made [default: the system
                  temporary directory]; nothing already in DIR is touched
  --chunks A,B,.. chunk sides to try [default: 256,512]
  -h, --help      this text";

struct Args {
    size: u64,
    dir: PathBuf,
    chunks: Vec<u64>,
}

fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut a = Args {
        size: 1024,
        dir: std::env::temp_dir(),
        chunks: vec![256, 512],
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--size" => {
                let v = value()?;
                a.size = v.parse().map_err(|_| format!("--size {v:?}: not a whole number"))?;
            }
            "--dir" => a.dir = PathBuf::from(value()?),
            "--chunks" => {
                let v = value()?;
                a.chunks = v
                    .split(',')
                    .map(|s| s.trim().parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--chunks {v:?}: expected whole numbers such as 256,512"))?
            }
            _ => return Err(format!("unknown option {flag:?} (--help lists them)")),
        }
    }
    if a.size == 0 || a.chunks.contains(&0) {
        return Err("--size and --chunks must be at least 1".into());
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Some(a)) => match run(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("zarr_bench: error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zarr_bench: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let n = args.size;
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    // a folder of our own inside --dir, removed when done (or on error)
    let scratch = tempfile::Builder::new()
        .prefix("zarr_bench-")
        .tempdir_in(&args.dir)
        .map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let dir = scratch.path().join("a.zarr");
    let shape = [n, n, 3];
    let bytes = usize::try_from(n * n * 3)?;
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
        "array {n}x{n}x3 u8 = {:.3} GB, source: {}, dir: {}",
        bytes as f64 / 1e9,
        if use_gpu { "GPU" } else { "host" },
        scratch.path().display()
    );
    println!(
        "{:>6} {:>16} {:>12} {:>9} {:>8}",
        "chunk", "layout", "mode", "GB/s", "s"
    );
    let gbs = |secs: f64| bytes as f64 / 1e9 / secs;
    let mut cases: Vec<(u64, Option<u64>)> = args.chunks.iter().map(|&c| (c, None)).collect();
    cases.push((512, Some(4096)));
    for (c, shard) in cases {
        let layout = match shard {
            Some(s) => format!("{c}² in {s}² shards"),
            None => "chunk files".into(),
        };
        for (mode, durability) in [("write warm", Durability::None), ("write+sync", Durability::AtEnd)] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
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
                    if rep == 0 && d.to_host_vec()? != host {
                        return Err("read back differs".into());
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
                    if rep == 0 && h != host {
                        return Err("read back differs".into());
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
    Ok(())
}
