//! Tuning knobs with defaults, each overridable by a `TILEDIO_*` environment variable.

use crate::error::{IoError, Result};

/// Which backend moves bytes between files and GPU memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// Pick per file: cuFile where GPUDirect Storage really works, else the staged POSIX engine.
    #[default]
    Auto,
    /// cuFile, even in its compatibility mode; falls back (with the reason) when it cannot be used.
    CuFile,
    /// Parallel `pread` into pinned staging buffers, overlapped with asynchronous copies to the GPU.
    Staged,
    /// `mmap` of the file, registered with the driver, copied straight to the GPU.
    Mmap,
}

impl std::str::FromStr for BackendChoice {
    type Err = IoError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cufile" | "gds" => Ok(Self::CuFile),
            "staged" | "posix" => Ok(Self::Staged),
            "mmap" => Ok(Self::Mmap),
            _ => Err(IoError::Setting {
                name: "TILEDIO_BACKEND",
                value: s.to_string(),
                reason: "expected auto, cufile, staged or mmap",
            }),
        }
    }
}

/// How reads and writes are split and run.
///
/// [`Settings::default`] holds the built-in defaults; [`Settings::from_env`] applies the
/// `TILEDIO_*` environment variables on top of them.
///
/// ```
/// let s = tiledio_io::Settings { threads: 8, ..Default::default() };
/// assert_eq!(s.threads, 8);
/// assert_eq!(s.task_size, 4 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Worker threads per call (`TILEDIO_THREADS`, default 16): I/O threads block in the kernel,
    /// so more threads than cores keeps the device queue full.
    pub threads: usize,
    /// Largest piece one worker reads or writes at a time (`TILEDIO_TASK_SIZE`, default 4 MiB).
    pub task_size: usize,
    /// Pinned staging buffers per worker for GPU transfers (`TILEDIO_STAGING_SLOTS`, default 3):
    /// two or more let a worker read the next piece while the last one is still being copied.
    pub staging_slots: usize,
    /// Bypass the page cache with `O_DIRECT` where the file system allows (`TILEDIO_DIRECT_IO`,
    /// default off): faster for cold data read once, slower for data already cached.
    pub direct_io: bool,
    /// Backend for GPU targets (`TILEDIO_BACKEND`: auto, cufile, staged, mmap).
    pub backend: BackendChoice,
    /// Ranges whose gap in the file is at most this many bytes are read as one
    /// (`TILEDIO_COALESCE_GAP`, default 64 KiB).
    pub coalesce_gap: u64,
    /// Largest host buffer a single call may allocate for data whose size comes from a file
    /// (`TILEDIO_MAX_MEMORY`, default half of physical memory): beyond it a read or convert
    /// fails with a typed error instead of aborting the process.
    pub max_memory: u64,
    /// The CUDA device this process uses (`TILEDIO_DEVICE`, default 0). One device per process,
    /// as Dask-CUDA and Slurm give each worker its own GPU.
    pub device: i32,
    /// The most device memory kept between calls as scratch (`TILEDIO_SCRATCH_CAP`, default
    /// 4 GiB): larger scratch buffers are freed after use; [`crate::Context::trim`] frees the rest.
    pub scratch_cap: u64,
    /// Threads of the CPU work of a call: tile decoding and encoding, CPU kernels, placement
    /// (`TILEDIO_COMPUTE_THREADS`, default 0: one per core). Separate from the I/O threads,
    /// which mostly wait on the storage.
    pub compute_threads: usize,
    /// Copy small host reads (at most `task_size` bytes in one call) out of a read-only
    /// mapping of the file instead of `pread` (`TILEDIO_MAPPED_READS`, default on): a slide
    /// window's many short row segments then cost no system calls. Off when `direct_io` is on.
    pub mapped_reads: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            threads: 16,
            task_size: 4 << 20,
            staging_slots: 3,
            direct_io: false,
            backend: BackendChoice::Auto,
            coalesce_gap: 64 << 10,
            max_memory: crate::memory::default_budget(),
            device: 0,
            scratch_cap: 4 << 30,
            compute_threads: 0,
            mapped_reads: true,
        }
    }
}

/// Parses sizes such as `4194304`, `4M`, `4MiB`, `512k`.
fn parse_size(name: &'static str, v: &str) -> Result<u64> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(IoError::Setting {
                name,
                value: v.into(),
                reason: "expected a size such as 4194304, 4M or 512KiB",
            });
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or(IoError::Setting {
            name,
            value: v.into(),
            reason: "expected a size such as 4194304, 4M or 512KiB",
        })
}

/// Parses `TILEDIO_DEVICE` (a device ordinal, 0 to 1023).
pub(crate) fn device_ordinal(v: &str) -> Result<i32> {
    v.trim()
        .parse::<i32>()
        .ok()
        .filter(|d| (0..1024).contains(d))
        .ok_or(IoError::Setting {
            name: "TILEDIO_DEVICE",
            value: v.into(),
            reason: "expected a device ordinal such as 0 or 1",
        })
}

fn parse_bool(name: &'static str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" => Ok(false),
        _ => Err(IoError::Setting {
            name,
            value: v.into(),
            reason: "expected on/off, 1/0, true/false",
        }),
    }
}

/// Parses a whole number of things (threads, slots); `reason` says what was expected.
fn parse_count(name: &'static str, v: &str, reason: &'static str) -> Result<usize> {
    v.trim().parse().map_err(|_| IoError::Setting {
        name,
        value: v.into(),
        reason,
    })
}

impl Settings {
    /// The defaults with any `TILEDIO_*` environment variables applied.
    ///
    /// # Errors
    /// [`IoError::Setting`] when a variable's value cannot be parsed or is out of range.
    pub fn from_env() -> Result<Settings> {
        Self::default().with_vars(|k| std::env::var(k).ok())
    }

    /// Applies variables from `get` (the environment, or a map in tests).
    pub(crate) fn with_vars(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        if let Some(v) = get("TILEDIO_THREADS") {
            self.threads = parse_count("TILEDIO_THREADS", &v, "expected a whole number")?;
        }
        if let Some(v) = get("TILEDIO_TASK_SIZE") {
            self.task_size = parse_size("TILEDIO_TASK_SIZE", &v)? as usize;
        }
        if let Some(v) = get("TILEDIO_STAGING_SLOTS") {
            self.staging_slots = parse_count("TILEDIO_STAGING_SLOTS", &v, "expected a whole number")?;
        }
        if let Some(v) = get("TILEDIO_DIRECT_IO") {
            self.direct_io = parse_bool("TILEDIO_DIRECT_IO", &v)?;
        }
        if let Some(v) = get("TILEDIO_BACKEND") {
            self.backend = v.parse()?;
        }
        if let Some(v) = get("TILEDIO_COALESCE_GAP") {
            self.coalesce_gap = parse_size("TILEDIO_COALESCE_GAP", &v)?;
        }
        if let Some(v) = get("TILEDIO_MAX_MEMORY") {
            self.max_memory = parse_size("TILEDIO_MAX_MEMORY", &v)?;
        }
        if let Some(v) = get("TILEDIO_DEVICE") {
            self.device = device_ordinal(&v)?;
        }
        if let Some(v) = get("TILEDIO_SCRATCH_CAP") {
            self.scratch_cap = parse_size("TILEDIO_SCRATCH_CAP", &v)?;
        }
        if let Some(v) = get("TILEDIO_MAPPED_READS") {
            self.mapped_reads = parse_bool("TILEDIO_MAPPED_READS", &v)?;
        }
        if let Some(v) = get("TILEDIO_COMPUTE_THREADS") {
            self.compute_threads = parse_count(
                "TILEDIO_COMPUTE_THREADS",
                &v,
                "expected a whole number (0: one per core)",
            )?;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks the values are usable.
    ///
    /// # Errors
    /// [`IoError::Setting`] naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=1024).contains(&self.threads) {
            return Err(IoError::Setting {
                name: "TILEDIO_THREADS",
                value: self.threads.to_string(),
                reason: "must be 1 to 1024",
            });
        }
        if self.task_size < 4096 || self.task_size > (1 << 30) || !self.task_size.is_multiple_of(4096) {
            return Err(IoError::Setting {
                name: "TILEDIO_TASK_SIZE",
                value: self.task_size.to_string(),
                reason: "must be a multiple of 4096 between 4 KiB and 1 GiB",
            });
        }
        if !(1..=16).contains(&self.staging_slots) {
            return Err(IoError::Setting {
                name: "TILEDIO_STAGING_SLOTS",
                value: self.staging_slots.to_string(),
                reason: "must be 1 to 16",
            });
        }
        if self.compute_threads > 1024 {
            return Err(IoError::Setting {
                name: "TILEDIO_COMPUTE_THREADS",
                value: self.compute_threads.to_string(),
                reason: "must be 0 (one per core) to 1024",
            });
        }
        if self.max_memory < 1 << 20 {
            return Err(IoError::Setting {
                name: "TILEDIO_MAX_MEMORY",
                value: self.max_memory.to_string(),
                reason: "must be at least 1 MiB",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_overrides_apply() {
        let s = Settings::default()
            .with_vars(vars(&[
                ("TILEDIO_THREADS", "4"),
                ("TILEDIO_TASK_SIZE", "1MiB"),
                ("TILEDIO_DIRECT_IO", "on"),
                ("TILEDIO_BACKEND", "staged"),
                ("TILEDIO_DEVICE", "1"),
                ("TILEDIO_SCRATCH_CAP", "0"),
                ("TILEDIO_COMPUTE_THREADS", "3"),
            ]))
            .unwrap();
        assert_eq!(
            (
                s.threads,
                s.task_size,
                s.direct_io,
                s.backend,
                s.device,
                s.scratch_cap,
                s.compute_threads
            ),
            (4, 1 << 20, true, BackendChoice::Staged, 1, 0, 3)
        );
    }

    #[test]
    fn bad_env_values_are_named() {
        for (k, v) in [
            ("TILEDIO_THREADS", "many"),
            ("TILEDIO_TASK_SIZE", "3 furlongs"),
            ("TILEDIO_TASK_SIZE", "1000"),
            ("TILEDIO_BACKEND", "carrier-pigeon"),
            ("TILEDIO_DIRECT_IO", "maybe"),
            ("TILEDIO_THREADS", "0"),
            ("TILEDIO_MAX_MEMORY", "lots"),
            ("TILEDIO_MAX_MEMORY", "1k"),
            ("TILEDIO_DEVICE", "-1"),
            ("TILEDIO_DEVICE", "gpu0"),
            ("TILEDIO_SCRATCH_CAP", "big"),
            ("TILEDIO_COMPUTE_THREADS", "-2"),
            ("TILEDIO_COMPUTE_THREADS", "5000"),
        ] {
            let err = Settings::default().with_vars(vars(&[(k, v)])).unwrap_err();
            assert!(matches!(err, IoError::Setting { .. }), "{k}={v}: {err}");
            // range and parse errors alike name the variable the user set
            assert!(err.to_string().contains(k), "{k}={v}: {err}");
        }
    }
}
