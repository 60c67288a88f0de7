//! Times bitshuffle-LZ4 decoding of an Eiger-size u16 frame of sparse counts on one thread,
//! and its LZ4 blocks alone (a fraction of a second in a release build).
//!
//! ```text
//! cargo run --release -p tiledio-ptycho --example decode_timing -- [--reps 200]
//! cargo run --release -p tiledio-ptycho --example decode_timing -- --help
//! ```

use std::process::ExitCode;

const USAGE: &str = "\
decode_timing: bitshuffle-LZ4 decoding of one 514x1030 u16 Eiger-like frame of sparse counts,
on one thread, and its LZ4 blocks alone; prints ms per frame.

Usage: cargo run --release -p tiledio-ptycho --example decode_timing -- [OPTIONS]

Options:
  --reps N      timed decodes [default: 200]
  -h, --help    this text";

/// The repeats asked for, `None` for `--help`.
fn parse(args: &[String]) -> Result<Option<usize>, String> {
    let mut reps = 200;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--reps" => {
                let v = it.next().ok_or("--reps needs a value")?;
                reps = v
                    .parse()
                    .ok()
                    .filter(|&r| r > 0)
                    .ok_or_else(|| format!("--reps {v:?}: expected a whole number above 0"))?;
            }
            _ => return Err(format!("unknown option {flag:?} (--help lists them)")),
        }
    }
    Ok(Some(reps))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Some(reps)) => {
            time(reps);
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("decode_timing: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn time(reps: usize) {
    let n = 514 * 1030;
    let mut data = vec![0u8; n * 2];
    let mut s = 1u64;
    for i in 0..n {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: u16 = if (s >> 33).is_multiple_of(7) {
            ((s >> 40) % 5) as u16
        } else {
            0
        };
        data[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
    }
    let chunk = tiledio_ptycho::encode_bitshuffle_lz4(&data, 2, 0).expect("encode");
    let mut out = vec![0u8; n * 2];
    let t = std::time::Instant::now();
    for _ in 0..reps {
        tiledio_ptycho::decode_bitshuffle_lz4(&chunk, 2, &mut out).expect("decode");
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    assert_eq!(out, data);
    let mut pos = 12;
    let mut blocks = Vec::new();
    while pos + 4 <= chunk.len() && blocks.len() * 8192 < n * 2 {
        let l = u32::from_be_bytes([chunk[pos], chunk[pos + 1], chunk[pos + 2], chunk[pos + 3]]) as usize;
        blocks.push(&chunk[pos + 4..pos + 4 + l]);
        pos += 4 + l;
    }
    let mut scratch = vec![0u8; 8192];
    let t = std::time::Instant::now();
    for _ in 0..reps {
        for b in &blocks {
            let _ = lz4_flex::block::decompress_into(b, &mut scratch);
        }
    }
    let dl = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{} bytes compressed; decode {:.3} ms/frame ({:.0} frames/s on one thread); its LZ4 blocks alone {:.3} ms",
        chunk.len(),
        dt * 1e3,
        1.0 / dt,
        dl * 1e3
    );
}
