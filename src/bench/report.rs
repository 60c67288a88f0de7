//! The suite's outputs in a folder (`tiledio bench ... --out DIR`): `report.md` (the machine
//! and a table per benchmark), `rows.csv` and `rows.json` (every row), `machine.json`, and PNG
//! plots drawn with `plotters` and a bundled font (DejaVu Sans, its licence beside it in
//! `src/bench/font/`), in the manner of cuCIM's `gds_whole_slide` figures:
//!
//! - `read_relative.png`: speed of each method relative to tifffile + CuPy (tifffile into host
//!   memory when CuPy is missing), reading a whole level 0, warm, per input file;
//! - `read_throughput.png`: GB/s against the TIFF tile size, per method and compression;
//! - `write_throughput.png`: GB/s against the Zarr chunk size, per tool, layout and codec;
//! - `pipeline.png`: global against tiled Sobel round trips (and read only, write only, peers);
//! - `ptycho_fps.png`: frames/s of each ptychography row.
//!
//! A plot without measured rows still exists and says so.

use super::machine::Machine;
use super::row::{self, Row, Status};
use crate::preview::Preview;
use crate::zarr::serde_json;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The PNG plots [`write_report`] writes, and their sizes in pixels (width, height).
pub const PLOTS: [&str; 5] = [
    "read_relative.png",
    "read_throughput.png",
    "write_throughput.png",
    "pipeline.png",
    "ptycho_fps.png",
];

/// Width of every plot in pixels.
pub const PLOT_WIDTH: u32 = 1200;

/// What [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// Every file written, report first.
    pub files: Vec<PathBuf>,
}

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Drawing or encoding a plot failed.
    #[error("plot {path}: {message}")]
    Plot {
        /// The plot's file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `report.md`, `rows.csv`, `rows.json`, `machine.json` and the [`PLOTS`] into `out`
/// (made if missing; files of the same names are replaced). `title` heads the report.
///
/// ```no_run
/// use tiledio::bench::{machine::Machine, report::write_report, row::Row};
/// let out = std::path::Path::new("bench-out");
/// let rows = vec![Row::new("read", "tile bytes", "tiledio", "cpu", "host")];
/// write_report(out, "tiledio bench", &rows, &Machine::probe(out))?;
/// # Ok::<(), tiledio::bench::report::ReportError>(())
/// ```
///
/// # Errors
/// [`ReportError`] when a file cannot be written or a plot drawn.
pub fn write_report(out: &Path, title: &str, rows: &[Row], machine: &Machine) -> Result<Written, ReportError> {
    std::fs::create_dir_all(out).map_err(|source| ReportError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    let md = out.join("report.md");
    write_file(&md, markdown(title, rows, machine).as_bytes())?;
    files.push(md);
    let csv = out.join("rows.csv");
    write_file(&csv, row::to_csv(rows).as_bytes())?;
    files.push(csv);
    let js = out.join("rows.json");
    let text = serde_json::to_string_pretty(&row::to_json(rows)).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    write_file(&js, text.as_bytes())?;
    files.push(js);
    let mj = out.join("machine.json");
    let text = serde_json::to_string_pretty(&machine.to_json()).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    write_file(&mj, text.as_bytes())?;
    files.push(mj);
    for name in PLOTS {
        let p = out.join(name);
        let r = match name {
            "read_relative.png" => plot_read_relative(&p, rows),
            "read_throughput.png" => plot_read_throughput(&p, rows),
            "write_throughput.png" => plot_write_throughput(&p, rows),
            "pipeline.png" => plot_pipeline(&p, rows),
            _ => plot_ptycho(&p, rows),
        };
        r.map_err(|message| ReportError::Plot {
            path: p.clone(),
            message,
        })?;
        files.push(p);
    }
    Ok(Written { files })
}

/// A Markdown table cell (pipes escaped, line breaks removed).
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The Markdown report: the machine, then one table per benchmark with every row (one table
/// line per row, in order), then the plots.
pub fn markdown(title: &str, rows: &[Row], machine: &Machine) -> String {
    let mut s = format!("# {title}\n\n## Machine\n\n{}\n", machine.to_markdown());
    let measured = rows.iter().filter(|r| r.is_measured()).count();
    s.push_str(&format!(
        "{} rows: {measured} measured, {} not (each says why). Figures: median of the repeats, with min and max.\n",
        rows.len(),
        rows.len() - measured
    ));
    let mut benches: Vec<&str> = Vec::new();
    for r in rows {
        if !benches.contains(&r.bench.as_str()) {
            benches.push(&r.bench);
        }
    }
    for b in benches {
        s.push_str(&format!(
            "\n## {b}\n\n| case | tool | device | backend | threads | tile | chunk | shard | codec | cache | MB | median ms | min ms | max ms | GB/s | items/s | status | note |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        ));
        for r in rows.iter().filter(|r| r.bench == b) {
            let o = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
            let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
            let t = r.timing;
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |\n",
                cell(&r.case),
                cell(&r.tool),
                cell(&r.device),
                cell(&r.backend),
                o(r.params.threads.map(|t| t as u64)),
                o(r.params.tile),
                o(r.params.chunk),
                o(r.params.shard),
                cell(&r.params.codec),
                cell(&r.params.cache),
                r.bytes as f64 / 1e6,
                f(t.map(|t| t.median * 1e3), 2),
                f(t.map(|t| t.min * 1e3), 2),
                f(t.map(|t| t.max * 1e3), 2),
                f(r.gbps(), 3),
                f(r.per_second(), 0),
                cell(&r.status.to_string()),
                cell(&r.note),
            ));
        }
    }
    s.push_str("\n## Plots\n\n");
    for p in PLOTS {
        s.push_str(&format!("![{p}]({p})\n\n"));
    }
    s
}

/// Registers the bundled font once (plotters' `ab_glyph` backend needs no system fonts).
fn font() -> Result<(), String> {
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, include_bytes!("font/DejaVuSans.ttf"))
            .map_err(|_| "the bundled font is not a valid TrueType font".to_string())
    })
    .clone()
}

/// Draws with `draw` on a white `PLOT_WIDTH × height` RGB canvas and writes it as PNG.
fn render(
    path: &Path,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), String> {
    font()?;
    let mut buf = vec![255u8; (PLOT_WIDTH * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (PLOT_WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Preview::new(height as usize, PLOT_WIDTH as usize, 3, buf)
        .and_then(|p| p.write_png(path))
        .map_err(|e| e.to_string())
}

/// One bar of [`bars`]: label, value, (min, max) whiskers, series index.
struct Bar {
    label: String,
    value: f64,
    range: Option<(f64, f64)>,
    series: usize,
}

/// A horizontal bar chart (the labels on the left, as in cuCIM's figures), or a note when
/// there are no bars.
fn bars(path: &Path, title: &str, x_label: &str, bars: &[Bar], series: &[String]) -> Result<(), String> {
    let height = (140 + 26 * bars.len() as u32).max(360);
    render(path, height, |root| {
        if bars.is_empty() {
            return empty(root, title);
        }
        let max = bars
            .iter()
            .map(|b| b.range.map_or(b.value, |r| r.1).max(b.value))
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.15;
        let n = bars.len();
        let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(430)
            .build_cartesian_2d(0f64..max, 0f64..n as f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n.max(1) * 2 + 1)
            .y_label_formatter(&|y| {
                let i = (n as f64 - y - 0.5).round();
                if (n as f64 - y - 0.5 - i).abs() < 0.05 && i >= 0.0 && (i as usize) < n {
                    labels[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .x_desc(x_label)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, b) in bars.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let c = Palette99::pick(b.series).to_rgba();
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y + 0.15), (b.value, y + 0.85)],
                    c.filled(),
                )))
                .map_err(|e| e.to_string())?;
            if let Some((lo, hi)) = b.range {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(lo, y + 0.5), (hi, y + 0.5)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    if b.value >= 100.0 {
                        format!("{:.0}", b.value)
                    } else if b.value >= 10.0 {
                        format!("{:.1}", b.value)
                    } else {
                        format!("{:.3}", b.value)
                    },
                    (b.range.map_or(b.value, |r| r.1.max(b.value)) + max * 0.01, y + 0.3),
                    ("sans-serif", 12),
                )))
                .map_err(|e| e.to_string())?;
        }
        if series.len() > 1 {
            for (k, s) in series.iter().enumerate() {
                let c = Palette99::pick(k).to_rgba();
                chart
                    .draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (0.0, 0.0)], c.filled())))
                    .map_err(|e| e.to_string())?
                    .label(s.clone())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// A line chart over a log₂ x axis, one line per series, or a note when there is nothing.
fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    render(path, 700, |root| {
        let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
        if pts.is_empty() {
            return empty(root, title);
        }
        let (x0, x1) = pts
            .iter()
            .fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0.log2()), a.1.max(p.0.log2())));
        let ymax = pts.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((x0 - 0.5)..(x1 + 0.5), 0f64..ymax)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(((x1 - x0) as usize + 2).max(2))
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 0.05 {
                    format!("{}", 2f64.powf(x.round()) as u64)
                } else {
                    String::new()
                }
            })
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (name, pts)) in series.iter().enumerate() {
            let c = Palette99::pick(k).to_rgba();
            let p: Vec<(f64, f64)> = pts.iter().map(|(x, y)| (x.log2(), *y)).collect();
            chart
                .draw_series(LineSeries::new(p.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
            chart
                .draw_series(p.into_iter().map(|q| Circle::new(q, 4, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A plot that says it has nothing to show.
fn empty(root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, title: &str) -> Result<(), String> {
    root.titled(title, ("sans-serif", 22)).map_err(|e| e.to_string())?;
    root.draw(&Text::new(
        "no measured rows for this plot in this run (see report.md for why)",
        (40, 120),
        ("sans-serif", 18),
    ))
    .map_err(|e| e.to_string())
}

/// The method of a read row: tool, device, backend.
fn method(r: &Row) -> String {
    if r.tool == "tiledio" {
        format!("tiledio {} ({})", r.device, r.backend)
    } else {
        r.tool.clone()
    }
}

/// The input a read row is about: codec and tile.
fn input(r: &Row) -> String {
    format!(
        "{}, tile {}",
        r.params.codec,
        r.params.tile.map_or("-".into(), |t| t.to_string())
    )
}

/// The fastest measured row per key (the best thread count), as (median, min, max).
fn best_by<K: Ord>(rows: &[&Row], key: impl Fn(&Row) -> K) -> BTreeMap<K, (f64, f64, f64, u64)> {
    let mut m: BTreeMap<K, (f64, f64, f64, u64)> = BTreeMap::new();
    for r in rows {
        if let Some(t) = r.timing.filter(|_| r.is_measured()) {
            let e = m.entry(key(r)).or_insert((f64::MAX, 0.0, 0.0, r.bytes));
            if t.median < e.0 {
                *e = (t.median, t.min, t.max, r.bytes);
            }
        }
    }
    m
}

fn plot_read_relative(path: &Path, rows: &[Row]) -> Result<(), String> {
    let level: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bench == "read" && r.case.starts_with("level") && r.params.cache == "warm")
        .collect();
    let best = best_by(&level, |r| (input(r), method(r)));
    let inputs: Vec<String> = {
        let mut v: Vec<String> = best.keys().map(|k| k.0.clone()).collect();
        v.dedup();
        v
    };
    let has_cupy = best.keys().any(|k| k.1 == "tifffile+cupy");
    let base_name = if has_cupy { "tifffile+cupy" } else { "tifffile" };
    let mut out = Vec::new();
    let mut series = Vec::new();
    for inp in &inputs {
        let Some(base) = best.get(&(inp.clone(), base_name.to_string())).map(|b| b.0) else {
            continue;
        };
        series.push(inp.clone());
        for ((i, m), (med, lo, hi, _)) in &best {
            if i == inp {
                out.push(Bar {
                    label: format!("{m} [{inp}]"),
                    value: base / med,
                    range: Some((base / hi, base / lo)),
                    series: series.len() - 1,
                });
            }
        }
    }
    bars(
        path,
        &format!("Whole level 0 read, warm: speed relative to {base_name} (higher is faster)"),
        &format!("× {base_name} (median; whiskers: min-max)"),
        &out,
        &series,
    )
}

fn plot_read_throughput(path: &Path, rows: &[Row]) -> Result<(), String> {
    let rs: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bench == "read" && r.params.cache == "warm" && r.params.tile.is_some())
        .collect();
    let best = best_by(&rs, |r| {
        (
            format!("{} {} ({})", method(r), r.case, r.params.codec),
            r.params.tile.unwrap_or(0),
        )
    });
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((name, tile), (med, _, _, bytes)) in best {
        if bytes > 0 && med > 0.0 {
            series
                .entry(name)
                .or_default()
                .push((tile as f64, bytes as f64 / med / 1e9));
        }
    }
    lines(
        path,
        "Read throughput against the TIFF tile size (warm, best thread count)",
        "tile edge (pixels)",
        "GB/s (decoded bytes for level rows, stored bytes for tile-byte rows)",
        &series.into_iter().collect::<Vec<_>>(),
    )
}

fn plot_write_throughput(path: &Path, rows: &[Row]) -> Result<(), String> {
    let rs: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bench == "write" && r.params.chunk.is_some())
        .collect();
    let best = best_by(&rs, |r| {
        (
            format!(
                "{} {} {} {}",
                r.tool,
                r.device,
                if r.params.shard.is_some() { "sharded" } else { "files" },
                r.params.codec
            ),
            r.params.chunk.unwrap_or(0),
        )
    });
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((name, chunk), (med, _, _, bytes)) in best {
        if bytes > 0 && med > 0.0 {
            series
                .entry(name)
                .or_default()
                .push((chunk as f64, bytes as f64 / med / 1e9));
        }
    }
    lines(
        path,
        "Zarr write throughput against the chunk size (page cache, no fsync)",
        "chunk edge (pixels)",
        "GB/s",
        &series.into_iter().collect::<Vec<_>>(),
    )
}

fn plot_pipeline(path: &Path, rows: &[Row]) -> Result<(), String> {
    let mut out = Vec::new();
    let mut series: Vec<String> = Vec::new();
    // the round trips only: the kernel-alone rows take milliseconds, a scale of their own
    let round_trip = |r: &&Row| !r.case.starts_with("Sobel kernel") && !r.case.starts_with("device-to-device");
    for r in rows
        .iter()
        .filter(|r| r.bench == "pipeline" && r.is_measured())
        .filter(round_trip)
    {
        let Some(t) = r.timing else { continue };
        let s = format!("{} {}", r.tool, r.device);
        let k = series.iter().position(|x| *x == s).unwrap_or_else(|| {
            series.push(s.clone());
            series.len() - 1
        });
        out.push(Bar {
            label: format!("{} ({} {})", r.case, r.tool, r.device),
            value: t.median * 1e3,
            range: Some((t.min * 1e3, t.max * 1e3)),
            series: k,
        });
    }
    bars(
        path,
        "Sobel round trip: global against tiled (lower is faster)",
        "ms (median; whiskers: min-max)",
        &out,
        &series,
    )
}

fn plot_ptycho(path: &Path, rows: &[Row]) -> Result<(), String> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.bench == "ptycho" && r.is_measured()) {
        let (Some(fps), Some(t), Some(n)) = (r.per_second(), r.timing, r.items) else {
            continue;
        };
        out.push(Bar {
            label: format!("{} ({})", r.case, r.device),
            value: fps,
            range: Some((n as f64 / t.max, n as f64 / t.min)),
            series: usize::from(r.device.starts_with("gpu")),
        });
    }
    bars(
        path,
        "Ptychography frames/s (higher is faster)",
        "frames/s (median; whiskers: min-max)",
        &out,
        &[],
    )
}

/// Rows that are not [`Status::Measured`], as `bench/case/tool: status` lines (for a summary).
pub fn unmeasured(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.status != Status::Measured)
        .map(|r| format!("{}/{}/{}: {}", r.bench, r.case, r.tool, r.status))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Timing;

    #[test]
    fn writes_every_file_and_valid_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Row::new("read", "level 0 decode + place", "tiledio", "cpu", "host");
        a.params.tile = Some(256);
        a.params.codec = "none".into();
        a.params.cache = "warm".into();
        a.bytes = 1 << 20;
        a.set_timing(Timing {
            median: 0.01,
            min: 0.009,
            max: 0.012,
        });
        let mut b = a.clone();
        b.tool = "tifffile".into();
        b.set_timing(Timing {
            median: 0.02,
            min: 0.02,
            max: 0.03,
        });
        let c = Row::new("write", "zarr", "kvikio", "gpu", "python").with_status(Status::Missing("No module".into()));
        let rows = vec![a, b, c];
        let w = write_report(dir.path(), "t", &rows, &Machine::probe(dir.path())).unwrap();
        assert_eq!(w.files.len(), 4 + PLOTS.len());
        for p in PLOTS {
            let f = std::fs::File::open(dir.path().join(p)).unwrap();
            let r = png::Decoder::new(std::io::BufReader::new(f)).read_info().unwrap();
            assert_eq!(r.info().width, PLOT_WIDTH);
        }
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("missing: No module"));
        assert_eq!(
            md.lines()
                .filter(|l| l.starts_with("| level") || l.starts_with("| zarr"))
                .count(),
            3
        );
    }
}
