//! `tiledio bench write` and `tiledio bench all`: the suite's rows ([`tiledio::bench::row::Row`])
//! printed as a table or JSON, and with `--out DIR` a report (Markdown, CSV, JSON, PNG plots,
//! machine.json). The measurements are in `tiledio::bench::{suite, read, write, peers}`.

use crate::opts;
use anyhow::Context;
use std::path::PathBuf;
use tiledio::bench::machine::Machine;
use tiledio::bench::report;
use tiledio::bench::row::{self, Row};
use tiledio::bench::suite::{Part, SuiteOptions};
use tiledio::bench::write::WriteOptions;

/// Arguments of `tiledio bench write`.
#[derive(clap::Args)]
pub(crate) struct WriteArgs {
    /// Where the arrays are written (removed after each repeat) [default: a folder in the
    /// system's temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Side of the square RGB u8 image [default: 16384].
    #[arg(long)]
    side: Option<u64>,
    /// Chunk edges [default: 256,512,1024,2048,4096].
    #[arg(long, value_delimiter = ',')]
    chunks: Option<Vec<u64>>,
    /// Codecs: none, zstd[:level], gzip[:level], blosc[:level], blosc-zstd[:level]
    /// [default: none,zstd].
    #[arg(long, value_delimiter = ',')]
    codecs: Option<Vec<String>>,
    /// Only one file per chunk (no sharded rows).
    #[arg(long)]
    no_shards: bool,
    /// Timed repeats per row [default: 3].
    #[arg(long)]
    repeats: Option<usize>,
    /// I/O threads [default: 16].
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    common: Common,
}

/// Arguments of `tiledio bench all`.
#[derive(clap::Args)]
pub(crate) struct AllArgs {
    /// A small run (1024² slides, 1-2 repeats, a tiny ptycho run): seconds on two cores.
    #[arg(long)]
    quick: bool,
    /// Where generated inputs are kept (and reused next time) and outputs written
    /// [default: tiledio-bench in the system's temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Parts: read, write, pipeline, ptycho, or all.
    #[arg(long, default_value = "all")]
    parts: String,
    /// The user's slides (tiled TIFF) for the read and pipeline parts instead of generated ones.
    #[arg(long, value_delimiter = ',')]
    files: Vec<PathBuf>,
    /// Side of the generated slides [default: 24576; --quick: 1024].
    #[arg(long)]
    side: Option<u64>,
    /// Tile edges of the generated slides [default: 256,512,1024,2048; --quick: 256,512].
    #[arg(long, value_delimiter = ',')]
    tiles: Option<Vec<u32>>,
    /// Tile edges of the generated JPEG slides; 0: none [default: 512].
    #[arg(long, value_delimiter = ',')]
    jpeg_tiles: Option<Vec<u32>>,
    /// Read backends: cufile, staged, mmap, host.
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// Thread counts of the read rows [default: the machine's cores; --quick: 2]; 1,16 adds the one-thread rows.
    #[arg(long, value_delimiter = ',')]
    threads: Option<Vec<usize>>,
    /// Timed repeats per read row [default: 3; --quick: 2].
    #[arg(long)]
    repeats: Option<usize>,
    /// Warm rows only (no cold-cache rows).
    #[arg(long)]
    no_cold: bool,
    /// Chunk edges of the write rows [default: 256,512,1024,2048,4096; --quick: 256,512].
    #[arg(long, value_delimiter = ',')]
    chunks: Option<Vec<u64>>,
    /// Codecs of the write rows [default: none,zstd].
    #[arg(long, value_delimiter = ',')]
    codecs: Option<Vec<String>>,
    #[command(flatten)]
    common: Common,
}

/// Options shared by `bench write` and `bench all`.
#[derive(clap::Args)]
struct Common {
    /// Write report.md, rows.csv, rows.json, machine.json and PNG plots into this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// No Python peers (they run by default where Python and the packages import).
    #[arg(long)]
    no_peers: bool,
    /// The Python interpreter of the peers [default: TILEDIO_PYTHON, else python3].
    #[arg(long)]
    python: Option<PathBuf>,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print each step to stderr with the seconds since the start (for logs of long runs, where
    /// the progress bar is hidden).
    #[arg(long)]
    log: bool,
}

fn default_dir() -> PathBuf {
    std::env::temp_dir().join("tiledio-bench")
}

pub(crate) fn write(a: WriteArgs) -> anyhow::Result<()> {
    let dir = a.dir.unwrap_or_else(default_dir);
    let d = WriteOptions::default();
    let o = WriteOptions {
        side: a.side.unwrap_or(d.side),
        chunks: a.chunks.unwrap_or(d.chunks),
        codecs: a.codecs.unwrap_or(d.codecs),
        sharded: !a.no_shards,
        repeats: a.repeats.unwrap_or(d.repeats),
        threads: a.threads.unwrap_or(d.threads),
    };
    let mut s = SuiteOptions::full(&dir);
    s.parts = vec![Part::Write];
    s.write = o;
    s.peers = !a.common.no_peers;
    s.python = a.common.python.clone();
    finish(&s, &a.common, "tiledio bench write")
}

pub(crate) fn all(a: AllArgs) -> anyhow::Result<()> {
    let dir = a.dir.unwrap_or_else(default_dir);
    let mut s = if a.quick {
        SuiteOptions::quick(&dir)
    } else {
        SuiteOptions::full(&dir)
    };
    s.parts = Part::parse_list(&a.parts).map_err(anyhow::Error::msg)?;
    s.files = a.files;
    for f in &s.files {
        anyhow::ensure!(f.is_file(), "--files {}: not a file", f.display());
    }
    s.side = a.side.unwrap_or(s.side);
    s.tiles = a.tiles.unwrap_or(s.tiles);
    if let Some(j) = a.jpeg_tiles {
        s.jpeg_tiles = j.into_iter().filter(|&t| t != 0).collect();
    }
    if let Some(b) = a.backends {
        for x in &b {
            anyhow::ensure!(
                ["cufile", "staged", "mmap", "host"].contains(&x.as_str()),
                "--backends {x}: expected cufile, staged, mmap or host"
            );
        }
        s.read.backends = b;
    }
    s.read.threads = a.threads.unwrap_or(s.read.threads);
    s.read.repeats = a.repeats.unwrap_or(s.read.repeats);
    s.read.cold = !a.no_cold;
    s.write.chunks = a.chunks.unwrap_or(s.write.chunks);
    s.write.codecs = a.codecs.unwrap_or(s.write.codecs);
    s.peers = !a.common.no_peers;
    s.python = a.common.python.clone();
    anyhow::ensure!(s.side >= 16, "--side {}: at least 16", s.side);
    for t in s.tiles.iter().chain(&s.jpeg_tiles) {
        anyhow::ensure!(*t >= 16 && t % 16 == 0, "tile {t}: a multiple of 16 (at least 16)");
    }
    let title = if a.quick {
        "tiledio bench all --quick"
    } else {
        "tiledio bench all"
    };
    finish(&s, &a.common, title)
}

/// Runs the suite part by part, prints the rows (table or JSON) and writes the report. With
/// `--out` the report is rewritten after each part, so a run cut short keeps the parts it
/// finished.
fn finish(s: &SuiteOptions, c: &Common, title: &str) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let pb = opts::spinner("");
    let machine = c.out.as_ref().map(|_| Machine::probe(&s.dir));
    let mut rows = Vec::new();
    let mut written = None;
    for &part in &s.parts {
        let one = SuiteOptions {
            parts: vec![part],
            ..s.clone()
        };
        let got = tiledio::bench::suite::run(&one, &mut |m| {
            pb.set_message(m.to_string());
            if c.log {
                pb.suspend(|| eprintln!("[{:7.1} s] {m}", t0.elapsed().as_secs_f64()));
            }
        });
        rows.extend(got?);
        if let (Some(out), Some(m)) = (&c.out, &machine) {
            let w = report::write_report(out, title, &rows, m).with_context(|| format!("--out {}", out.display()))?;
            if c.log {
                pb.suspend(|| {
                    eprintln!(
                        "[{:7.1} s] report updated: {}",
                        t0.elapsed().as_secs_f64(),
                        out.display()
                    )
                });
            }
            written = Some(w);
        }
    }
    pb.finish_and_clear();
    if c.json {
        println!("{}", tiledio::zarr::serde_json::to_string_pretty(&row::to_json(&rows))?);
    } else {
        print_table(&rows);
    }
    if let (Some(out), Some(w)) = (&c.out, written)
        && !c.json
        && !opts::quiet()
    {
        println!(
            "\n{} rows in {:.1} s; report: {}",
            rows.len(),
            t0.elapsed().as_secs_f64(),
            w.files
                .first()
                .map_or_else(|| out.display().to_string(), |p| p.display().to_string())
        );
        for f in w.files.iter().skip(1) {
            println!("  {}", f.display());
        }
    }
    Ok(())
}

/// The rows as a table: one line per row; rows without figures say why.
pub(crate) fn print_table(rows: &[Row]) {
    println!(
        "{:<8} {:<30} {:<14} {:<4} {:<16} {:>3} {:>5} {:>5} {:>5} {:<6} {:<5} {:>9} {:>9} {:>17}",
        "bench",
        "case",
        "tool",
        "dev",
        "backend",
        "thr",
        "tile",
        "chunk",
        "shard",
        "codec",
        "cache",
        "GB/s",
        "items/s",
        "median (min-max) ms"
    );
    for r in rows {
        let o = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let head = format!(
            "{:<8} {:<30} {:<14} {:<4} {:<16} {:>3} {:>5} {:>5} {:>5} {:<6} {:<5}",
            r.bench,
            trunc(&r.case, 30),
            trunc(&r.tool, 14),
            r.device,
            trunc(&r.backend, 16),
            o(r.params.threads.map(|t| t as u64)),
            o(r.params.tile),
            o(r.params.chunk),
            o(r.params.shard),
            trunc(&r.params.codec, 6),
            trunc(&r.params.cache, 5),
        );
        match r.timing.filter(|_| r.is_measured()) {
            Some(t) => println!(
                "{head} {:>9} {:>9} {:>7.1} ({:.1}-{:.1})",
                r.gbps().map_or("-".into(), |g| format!("{g:.3}")),
                r.per_second().map_or("-".into(), |g| format!("{g:.0}")),
                t.median * 1e3,
                t.min * 1e3,
                t.max * 1e3
            ),
            None => println!("{head} {}", r.status),
        }
    }
}

/// `s` cut to `n` characters.
fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars()
            .take(n.saturating_sub(1))
            .chain(std::iter::once('…'))
            .collect()
    }
}
