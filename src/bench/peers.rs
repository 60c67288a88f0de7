//! The Python peers of the suite (tifffile, tifffile + CuPy, KvikIO, cuCIM, TensorStore,
//! CuPy's ndimage, scikit-image), run through `python3` (or `TILEDIO_PYTHON`) with an
//! embedded script, one process per peer and case. A peer that cannot run here is a row that
//! says `missing: <import error>`, never left out.

use super::Timing;
use super::row::{Row, Status};
use crate::zarr::serde_json::{self, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The peer script (`python3 -c` this).
pub const SCRIPT: &str = include_str!("peers.py");

/// The read peers, in table order: `kvikio` is KvikIO's POSIX path (`KVIKIO_COMPAT_MODE=ON`,
/// the seeds' "KvikIO without GDS"), `kvikio+cufile` lets KvikIO go through cuFile (GDS where
/// the machine has it, cuFile's compatibility mode where it does not).
pub const READ_PEERS: [&str; 5] = ["tifffile", "tifffile+cupy", "kvikio", "kvikio+cufile", "cucim"];
/// The write peers.
pub const WRITE_PEERS: [&str; 2] = ["kvikio", "tensorstore"];
/// The Sobel round-trip peers (scikit-image on a 4096² corner: it runs float64 on one core).
pub const SOBEL_PEERS: [&str; 3] = ["cupyx", "cucim", "scikit-image"];
/// The peers of the Sobel kernel alone (device-resident input).
pub const SOBEL_KERNEL_PEERS: [&str; 2] = ["cupyx", "cucim"];

/// The Python interpreter: `python`, else `TILEDIO_PYTHON`, else `python3`.
pub fn python(python: Option<&Path>) -> PathBuf {
    python
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TILEDIO_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Peers known to be missing in this process (key: interpreter and peer; value: the import
/// error), so that a missing package costs one Python start, not one per row.
static MISSING: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Whether a reason is about the interpreter or an import (the same for every case of a peer).
fn is_import_error(why: &str) -> bool {
    [
        "ModuleNotFoundError",
        "ImportError",
        "not runnable",
        "CUDARuntimeError",
        "CompileException",
    ]
    .iter()
    .any(|k| why.contains(k))
}

/// Runs the peer `args[0]`/`peer` with `args`, or answers at once for a peer known to be
/// missing.
fn call_cached(py: &Path, peer: &str, args: &[String]) -> Result<(Timing, u64, String, String), Status> {
    let key = format!("{}\u{0}{peer}", py.display());
    if let Ok(m) = MISSING.lock()
        && let Some((_, why)) = m.iter().find(|(k, _)| *k == key)
    {
        return Err(Status::Missing(why.clone()));
    }
    let r = call(py, args);
    if let Err(Status::Missing(why)) = &r
        && is_import_error(why)
        && let Ok(mut m) = MISSING.lock()
    {
        m.push((key, why.clone()));
    }
    r
}

/// Runs the script with `args`; the figures, or the row's status when there are none.
fn call(py: &Path, args: &[String]) -> Result<(Timing, u64, String, String), Status> {
    let out = Command::new(py)
        .arg("-c")
        .arg(SCRIPT)
        .args(args)
        .env("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        .output()
        .map_err(|e| Status::Missing(format!("{} not runnable: {e}", py.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(Status::Failed(format!("{} ({})", last.trim(), out.status)));
    }
    let v: Value = serde_json::from_str(line).map_err(|e| Status::Failed(format!("output {line:?}: {e}")))?;
    if let Some(m) = v.get("missing").and_then(Value::as_str) {
        return Err(Status::Missing(m.to_string()));
    }
    let times: Vec<f64> = v["times"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let t = Timing::of(&times).ok_or_else(|| Status::Failed(format!("no times in {line:?}")))?;
    Ok((
        t,
        v["bytes"].as_u64().unwrap_or(0),
        v["device"].as_str().unwrap_or("").to_string(),
        v["note"].as_str().unwrap_or("").to_string(),
    ))
}

/// Fills `row` from a peer call.
fn fill(mut row: Row, py: &Path, args: &[String]) -> Row {
    let peer = row.tool.clone();
    match call_cached(py, &peer, args) {
        Ok((t, bytes, device, note)) => {
            row.set_timing(t);
            if bytes > 0 {
                row.bytes = bytes;
            }
            if !device.is_empty() {
                row.device = device;
            }
            if !note.is_empty() {
                row.note = if row.note.is_empty() {
                    note
                } else {
                    format!("{}; {note}", row.note)
                };
            }
        }
        Err(s) => row.status = s,
    }
    row
}

/// The read peers on `file` (level 0 into GPU memory; tifffile into host memory), warm and,
/// when `cold`, cold. `tile` and `codec` label the rows as the tiledio rows of the same file.
#[allow(clippy::too_many_arguments)]
pub fn read_rows(
    py: &Path,
    file: &Path,
    tile: Option<u64>,
    codec: &str,
    repeats: usize,
    cold: bool,
    threads: usize,
    progress: &mut dyn FnMut(&str),
) -> Vec<Row> {
    let name = file
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut rows = Vec::new();
    for peer in READ_PEERS {
        for is_cold in if cold { &[false, true][..] } else { &[false][..] } {
            let cache = if *is_cold { "cold" } else { "warm" };
            progress(&format!("read peer {peer}: {name}, {cache}"));
            let device = if peer == "tifffile" { "cpu" } else { "gpu" };
            let mut r = Row::new("read", "level 0 decode + place", peer, device, "python");
            r.params.tile = tile;
            r.params.codec = codec.to_string();
            r.params.cache = cache.into();
            if peer.starts_with("kvikio") || peer == "cucim" {
                r.params.threads = Some(threads);
            }
            r.note = name.clone();
            let args = [
                "read".to_string(),
                file.display().to_string(),
                peer.to_string(),
                repeats.to_string(),
                if *is_cold { "1" } else { "0" }.to_string(),
                threads.to_string(),
            ];
            rows.push(fill(r, py, &args));
        }
    }
    rows
}

/// The write peers: `src` holds the `side × side × 3` image's bytes; arrays go under `dir`.
#[allow(clippy::too_many_arguments)]
pub fn write_rows(
    py: &Path,
    src: &Path,
    side: u64,
    chunk: u64,
    shard: Option<u64>,
    codec: &str,
    dir: &Path,
    repeats: usize,
    progress: &mut dyn FnMut(&str),
) -> Vec<Row> {
    let mut rows = Vec::new();
    for peer in WRITE_PEERS {
        progress(&format!("write peer {peer}: chunk {chunk}, {codec}"));
        let case = if shard.is_some() {
            "zarr v3, sharded"
        } else {
            "zarr v3, file per chunk"
        };
        let mut r = Row::new("write", case, peer, "gpu", "python");
        r.params.chunk = Some(chunk);
        r.params.shard = shard;
        r.params.codec = codec.to_string();
        r.params.cache = "page cache".into();
        r.bytes = side * side * 3;
        let args = [
            "write".to_string(),
            src.display().to_string(),
            side.to_string(),
            chunk.to_string(),
            shard.unwrap_or(0).to_string(),
            codec.to_string(),
            dir.display().to_string(),
            repeats.to_string(),
            peer.to_string(),
        ];
        rows.push(fill(r, py, &args));
    }
    rows
}

/// The Sobel round-trip peers on `file` (global: the whole level at once).
pub fn sobel_rows(py: &Path, file: &Path, repeats: usize, progress: &mut dyn FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    for peer in SOBEL_PEERS {
        progress(&format!("pipeline peer {peer}"));
        let device = if peer == "scikit-image" { "cpu" } else { "gpu" };
        let r = Row::new("pipeline", "global read + Sobel (no write)", peer, device, "python");
        let args = [
            "sobel".to_string(),
            file.display().to_string(),
            repeats.to_string(),
            peer.to_string(),
        ];
        rows.push(fill(r, py, &args));
    }
    rows
}

/// The peers of the Sobel kernel alone: the magnitude of a device-resident `side²` float32
/// image, as [`super::suite`]'s `Sobel kernel alone` row of ours.
pub fn sobel_kernel_rows(py: &Path, side: u64, repeats: usize, progress: &mut dyn FnMut(&str)) -> Vec<Row> {
    let mut rows = Vec::new();
    for peer in SOBEL_KERNEL_PEERS {
        progress(&format!("Sobel kernel peer {peer}"));
        let mut r = Row::new("pipeline", SOBEL_KERNEL_CASE, peer, "gpu", "none");
        r.bytes = side * side * 4;
        r.note = format!("{side}x{side} float32 image");
        let args = [
            "sobel-kernel".to_string(),
            side.to_string(),
            repeats.to_string(),
            peer.to_string(),
        ];
        rows.push(fill(r, py, &args));
    }
    rows
}

/// The case name of the Sobel-kernel rows (ours and the peers').
pub const SOBEL_KERNEL_CASE: &str = "Sobel kernel alone (device-resident f32)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interpreter_is_a_missing_row() {
        let rows = sobel_rows(Path::new("/nonexistent/python3"), Path::new("x.tif"), 1, &mut |_| {});
        assert_eq!(rows.len(), SOBEL_PEERS.len());
        for r in rows {
            assert!(
                matches!(&r.status, Status::Missing(w) if w.contains("not runnable")),
                "{r:?}"
            );
        }
    }
}
