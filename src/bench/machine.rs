//! A description of the machine a benchmark ran on (GPU, driver, CUDA, cuFile's mode and why,
//! CPU, memory, the file system of the inputs), written as `machine.json` by the suite.

use crate::zarr::serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// What the suite records about the machine. Every field is best effort: what could not be
/// found says why instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// The GPU's name, memory and compute capability, or why there is none.
    pub gpu: Result<String, String>,
    /// The NVIDIA driver version (from `nvidia-smi`), or why it is unknown.
    pub driver: Result<String, String>,
    /// The CUDA version the driver supports (from `nvidia-smi`), or why it is unknown.
    pub cuda: Result<String, String>,
    /// cuFile's mode (`gds`, `compatibility`, `unavailable`) and why.
    pub cufile: (String, String),
    /// The CPU model.
    pub cpu: String,
    /// Logical cores usable by this process.
    pub cores: usize,
    /// Total memory in bytes (0 when unknown).
    pub memory_bytes: u64,
    /// The file system holding the inputs: (mount point, type, device).
    pub file_system: (String, String, String),
    /// The kernel release.
    pub kernel: String,
    /// The tiledio version.
    pub tiledio: String,
}

impl Machine {
    /// Looks at the machine; `dir` is where the inputs live (for the file system).
    ///
    /// ```no_run
    /// let m = tiledio::bench::machine::Machine::probe(std::path::Path::new("/tmp"));
    /// println!("{}", m.to_json());
    /// ```
    pub fn probe(dir: &Path) -> Machine {
        let gpu = crate::io::gpu::gpu()
            .map(|g| {
                let (a, b) = g.compute_capability();
                format!(
                    "{} ({:.1} GiB, compute {a}.{b})",
                    g.name(),
                    g.total_memory() as f64 / (1u64 << 30) as f64
                )
            })
            .map_err(|e| e.to_string());
        let smi = nvidia_smi();
        let driver = smi.clone().and_then(|s| {
            field_after(&s, "Driver Version:").ok_or_else(|| "nvidia-smi printed no driver version".to_string())
        });
        let cuda = smi.and_then(|s| {
            field_after(&s, "CUDA Version:").ok_or_else(|| "nvidia-smi printed no CUDA version".to_string())
        });
        let cufile = match crate::io::cufile_status() {
            None => (
                "gds".to_string(),
                "driver open, nvidia-fs loaded (GPUDirect Storage)".to_string(),
            ),
            Some(why) if why.contains("compatibility mode") => ("compatibility".to_string(), why),
            Some(why) => ("unavailable".to_string(), why),
        };
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
            })
            .map_or(0, |kib| kib * 1024);
        Machine {
            gpu,
            driver,
            cuda,
            cufile,
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            file_system: file_system(dir),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|e| format!("unknown ({e})"), |s| s.trim().to_string()),
            tiledio: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The description as JSON (what `machine.json` holds).
    pub fn to_json(&self) -> Value {
        let either = |r: &Result<String, String>| match r {
            Ok(v) => json!({"value": v, "why_not": null}),
            Err(e) => json!({"value": null, "why_not": e}),
        };
        json!({
            "gpu": either(&self.gpu),
            "driver": either(&self.driver),
            "cuda": either(&self.cuda),
            "cufile": {"mode": self.cufile.0, "why": self.cufile.1},
            "cpu": self.cpu,
            "cpu_cores": self.cores,
            "memory_bytes": self.memory_bytes,
            "file_system": {"mount": self.file_system.0, "type": self.file_system.1, "device": self.file_system.2},
            "kernel": self.kernel,
            "tiledio": self.tiledio,
        })
    }

    /// A few Markdown lines for the report.
    pub fn to_markdown(&self) -> String {
        let either = |r: &Result<String, String>| match r {
            Ok(v) => v.clone(),
            Err(e) => format!("none ({e})"),
        };
        format!(
            "- GPU: {}\n- driver: {}; CUDA: {}\n- cuFile: {} ({})\n- CPU: {} ({} cores), memory {:.1} GiB\n- file system of the inputs: {} on {} ({})\n- kernel {}, tiledio {}\n",
            either(&self.gpu),
            either(&self.driver),
            either(&self.cuda),
            self.cufile.0,
            self.cufile.1,
            self.cpu,
            self.cores,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.file_system.1,
            self.file_system.0,
            self.file_system.2,
            self.kernel,
            self.tiledio
        )
    }
}

/// `nvidia-smi`'s output, or why not.
fn nvidia_smi() -> Result<String, String> {
    let out = Command::new("nvidia-smi")
        .output()
        .map_err(|e| format!("nvidia-smi not runnable: {e}"))?;
    if !out.status.success() {
        return Err(format!("nvidia-smi: {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The word after `key` in `s`.
fn field_after(s: &str, key: &str) -> Option<String> {
    let rest = &s[s.find(key)? + key.len()..];
    rest.split_whitespace().next().map(str::to_string)
}

/// The mount point, type and device of the file system holding `dir` (from /proc/mounts).
fn file_system(dir: &Path) -> (String, String, String) {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(String, String, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [dev, mnt, ty, ..] = f[..]
            && dir.starts_with(mnt)
            && best.as_ref().is_none_or(|b| mnt.len() >= b.0.len())
        {
            best = Some((mnt.to_string(), ty.to_string(), dev.to_string()));
        }
    }
    best.unwrap_or_else(|| ("unknown".into(), "unknown".into(), "unknown".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_without_panicking() {
        let m = Machine::probe(Path::new("/"));
        assert!(m.cores >= 1);
        assert_eq!(m.file_system.0, "/");
        let j = m.to_json();
        assert!(j["cufile"]["mode"].is_string());
        assert_eq!(
            field_after("x Driver Version: 550.1  CUDA", "Driver Version:"),
            Some("550.1".into())
        );
    }
}
