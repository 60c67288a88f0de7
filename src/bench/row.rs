//! The one row type of the benchmark suite ([`Row`]): every subcommand of `tiledio bench` that
//! writes a report, and every peer, produces these, serialised to CSV and JSON.

use super::Timing;
use crate::zarr::serde_json::{Value, json};

/// Whether a row was measured, and if not, why.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Timed; [`Row::timing`] holds the figures.
    Measured,
    /// A GPU row on a machine without a usable GPU (the reason).
    NoGpu(String),
    /// A peer that could not run (the import error, or why Python could not start).
    Missing(String),
    /// Could not be measured here for another reason (e.g. no way to drop the page cache).
    Skipped(String),
    /// Ran and failed (the error; bytes that differ from the reference included).
    Failed(String),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Measured => f.write_str("measured"),
            // the GPU layer's own messages already start with "no GPU: "
            Status::NoGpu(w) if w.starts_with("no GPU") => f.write_str(w),
            Status::NoGpu(w) => write!(f, "no GPU: {w}"),
            Status::Missing(w) => write!(f, "missing: {w}"),
            Status::Skipped(w) => write!(f, "skipped: {w}"),
            Status::Failed(w) => write!(f, "failed: {w}"),
        }
    }
}

/// The settings a row was measured with (`None` / empty: does not apply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// I/O or compute threads.
    pub threads: Option<usize>,
    /// TIFF tile edge, or the pipeline's tile edge.
    pub tile: Option<u64>,
    /// Zarr chunk edge.
    pub chunk: Option<u64>,
    /// Zarr shard edge (`None`: one file per chunk).
    pub shard: Option<u64>,
    /// Codec or compression (`none`, `jpeg`, `zstd`, ...).
    pub codec: String,
    /// Page cache state: `warm`, `cold`, or empty.
    pub cache: String,
}

/// One measurement (or the reason there is none) of the benchmark suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The benchmark: `read`, `write`, `pipeline`, `ptycho`.
    pub bench: String,
    /// What was measured (e.g. `level 0 decode + place`, `tile bytes`).
    pub case: String,
    /// `tiledio`, or the peer's name (`tifffile+cupy`, `kvikio`, ...).
    pub tool: String,
    /// Where the data ends up: `gpu`, `cpu` (host memory).
    pub device: String,
    /// How the bytes moved (`cufile`, `staged`, `mmap`, `host`, ...; what was used).
    pub backend: String,
    /// The settings.
    pub params: Params,
    /// Bytes moved per repeat (the throughput's numerator; 0 when it does not apply).
    pub bytes: u64,
    /// Items per repeat for a rate in items/s (frames for ptycho), when it applies.
    pub items: Option<u64>,
    /// Median, minimum and maximum seconds of the repeats (measured rows only).
    pub timing: Option<Timing>,
    /// Measured, or why not.
    pub status: Status,
    /// Anything else worth saying (the cold-cache method, the input file, a target).
    pub note: String,
}

/// The CSV header of [`Row::csv_record`].
pub const CSV_HEADER: &str = "bench,case,tool,device,backend,threads,tile,chunk,shard,codec,cache,bytes,items,median_s,min_s,max_s,gb_per_s,items_per_s,status,note";

impl Row {
    /// A row of `bench`/`case` by `tool` on `device` through `backend`, not yet measured
    /// (status [`Status::Skipped`] with an empty reason until a timing or a status is set).
    ///
    /// ```
    /// use tiledio::bench::{Timing, row::{Row, Status}};
    /// let mut r = Row::new("read", "tile bytes", "tiledio", "cpu", "host");
    /// r.bytes = 2_000_000_000;
    /// r.set_timing(Timing { median: 1.0, min: 0.9, max: 1.2 });
    /// assert_eq!(r.status, Status::Measured);
    /// assert_eq!(r.gbps(), Some(2.0));
    /// ```
    pub fn new(bench: &str, case: &str, tool: &str, device: &str, backend: &str) -> Row {
        Row {
            bench: bench.into(),
            case: case.into(),
            tool: tool.into(),
            device: device.into(),
            backend: backend.into(),
            params: Params::default(),
            bytes: 0,
            items: None,
            timing: None,
            status: Status::Skipped(String::new()),
            note: String::new(),
        }
    }

    /// Sets the timing and marks the row measured.
    pub fn set_timing(&mut self, t: Timing) {
        self.timing = Some(t);
        self.status = Status::Measured;
    }

    /// Returns the row with `status`.
    pub fn with_status(mut self, status: Status) -> Row {
        self.status = status;
        self
    }

    /// GB/s (10⁹ bytes per second) at the median, for measured rows that move bytes.
    pub fn gbps(&self) -> Option<f64> {
        self.timing
            .filter(|t| t.median > 0.0 && self.bytes > 0)
            .map(|t| t.rate(self.bytes) / 1e9)
    }

    /// Items per second at the median (frames/s), where [`Row::items`] applies.
    pub fn per_second(&self) -> Option<f64> {
        match (self.timing, self.items) {
            (Some(t), Some(n)) if t.median > 0.0 => Some(n as f64 / t.median),
            _ => None,
        }
    }

    /// Whether the row holds figures.
    pub fn is_measured(&self) -> bool {
        self.status == Status::Measured && self.timing.is_some()
    }

    /// The row as one CSV record (RFC 4180 quoting; no trailing newline), in the columns of
    /// [`CSV_HEADER`].
    ///
    /// ```
    /// use tiledio::bench::row::{CSV_HEADER, Row};
    /// let r = Row::new("read", "a, \"b\"", "tiledio", "cpu", "host");
    /// assert_eq!(r.csv_record().matches(',').count(), CSV_HEADER.matches(',').count() + 1);
    /// assert!(r.csv_record().starts_with("read,\"a, \"\"b\"\"\","));
    /// ```
    pub fn csv_record(&self) -> String {
        let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
        let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6e}"));
        let p = &self.params;
        let fields = [
            self.bench.clone(),
            self.case.clone(),
            self.tool.clone(),
            self.device.clone(),
            self.backend.clone(),
            opt(p.threads.map(|t| t as u64)),
            opt(p.tile),
            opt(p.chunk),
            opt(p.shard),
            p.codec.clone(),
            p.cache.clone(),
            self.bytes.to_string(),
            opt(self.items),
            f(self.timing.map(|t| t.median)),
            f(self.timing.map(|t| t.min)),
            f(self.timing.map(|t| t.max)),
            f(self.gbps()),
            f(self.per_second()),
            self.status.to_string(),
            self.note.clone(),
        ];
        fields.iter().map(|s| csv_field(s)).collect::<Vec<_>>().join(",")
    }

    /// The row as a JSON object (figures derived too: `gb_per_s`, `items_per_s`).
    pub fn to_json(&self) -> Value {
        let p = &self.params;
        let (status, reason) = match &self.status {
            Status::Measured => ("measured", None),
            Status::NoGpu(w) => ("no_gpu", Some(w)),
            Status::Missing(w) => ("missing", Some(w)),
            Status::Skipped(w) => ("skipped", Some(w)),
            Status::Failed(w) => ("failed", Some(w)),
        };
        json!({
            "bench": self.bench,
            "case": self.case,
            "tool": self.tool,
            "device": self.device,
            "backend": self.backend,
            "threads": p.threads,
            "tile": p.tile,
            "chunk": p.chunk,
            "shard": p.shard,
            "codec": p.codec,
            "cache": p.cache,
            "bytes": self.bytes,
            "items": self.items,
            "seconds": self.timing.map(|t| json!({"median": t.median, "min": t.min, "max": t.max})),
            "gb_per_s": self.gbps(),
            "items_per_s": self.per_second(),
            "status": status,
            "reason": reason,
            "note": self.note,
        })
    }
}

/// One CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Every row as CSV: [`CSV_HEADER`], then one record per row, each line ending in `\n`.
///
/// ```
/// use tiledio::bench::row::{Row, to_csv};
/// let csv = to_csv(&[Row::new("write", "chunks", "tiledio", "cpu", "host")]);
/// assert_eq!(csv.lines().count(), 2);
/// ```
pub fn to_csv(rows: &[Row]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&r.csv_record());
        s.push('\n');
    }
    s
}

/// Every row as a JSON array of [`Row::to_json`].
pub fn to_json(rows: &[Row]) -> Value {
    Value::Array(rows.iter().map(Row::to_json).collect())
}
