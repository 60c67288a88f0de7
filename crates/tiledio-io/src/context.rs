//! The per-settings context: what used to be process globals (the staging pool, the I/O
//! threads, rayon's global pool for CPU work, the GPU scratch buffer) now belongs to a
//! [`Context`], one per distinct [`Settings`], shared by every handle and call made with those
//! settings.

use crate::engine::StagingSet;
use crate::error::{IoError, Result};
use crate::gpu::DeviceBuffer;
use crate::settings::Settings;
use std::sync::{Arc, Mutex};

/// The resources of every call made with one [`Settings`]: a persistent pool of I/O threads
/// (`settings.threads` of them, as KvikIO keeps one thread pool), a pool of compute threads for
/// CPU work (`settings.compute_threads`, [`Context::compute`]), the pinned staging sets of GPU
/// transfers, and a capped cache of GPU scratch memory. Contexts are made on first use and kept;
/// [`Context::trim`] gives back the memory they cache.
///
/// ```
/// use tiledio_io::{Context, Settings};
/// let s = Settings { threads: 4, ..Default::default() };
/// let a = Context::for_settings(&s)?;
/// let b = Context::for_settings(&s)?;
/// assert!(std::sync::Arc::ptr_eq(&a, &b)); // one context per distinct settings
/// assert_eq!(a.settings().threads, 4);
/// // CPU work of the format crates runs on the context's compute threads
/// let sum: u64 = a.compute(|| { use rayon::prelude::*; (0..1000u64).into_par_iter().sum() });
/// assert_eq!(sum, 499_500);
/// a.trim();
/// # Ok::<(), tiledio_io::IoError>(())
/// ```
pub struct Context {
    settings: Settings,
    io_pool: rayon::ThreadPool,
    /// The writes' I/O threads, started on the first write (`settings.threads` of them).
    write_pool: std::sync::OnceLock<Option<rayon::ThreadPool>>,
    compute_pool: rayon::ThreadPool,
    staging: Mutex<Vec<StagingSet>>,
    scratch: Mutex<Vec<DeviceBuffer>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A pool of `threads` threads named `{name}-0`, `{name}-1`, ...; one that cannot be started
/// is an [`IoError::Setting`] on `setting` (the variable that asked for the threads), `reason`.
fn thread_pool(
    threads: usize,
    name: &'static str,
    setting: &'static str,
    reason: &'static str,
) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|_| IoError::Setting {
            name: setting,
            value: threads.to_string(),
            reason,
        })
}

static CONTEXTS: Mutex<Vec<Arc<Context>>> = Mutex::new(Vec::new());

impl Context {
    /// The context of `settings` (made on first use).
    ///
    /// # Errors
    /// [`IoError::Setting`] for settings out of range; [`IoError::Internal`]-free: a thread pool
    /// that cannot be started is reported as [`IoError::Setting`] on `TILEDIO_THREADS`.
    pub fn for_settings(settings: &Settings) -> Result<Arc<Context>> {
        let mut all = CONTEXTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = all.iter().find(|c| c.settings == *settings) {
            return Ok(c.clone());
        }
        settings.validate()?;
        let io_pool = thread_pool(
            settings.threads,
            "tiledio-io",
            "TILEDIO_THREADS",
            "the I/O threads could not be started",
        )?;
        let compute_pool = thread_pool(
            settings.compute_threads,
            "tiledio-cpu",
            "TILEDIO_COMPUTE_THREADS",
            "the compute threads could not be started",
        )?;
        // pinned staging is the memory a context holds most of (threads × slots × task size):
        // the contexts made before give theirs back, so a process that moves between settings
        // (a benchmark sweep) holds one context's worth, not one per setting ever used
        for old in all.iter() {
            old.free_staging();
        }
        let c = Arc::new(Context {
            settings: settings.clone(),
            io_pool,
            write_pool: std::sync::OnceLock::new(),
            compute_pool,
            staging: Mutex::new(Vec::new()),
            scratch: Mutex::new(Vec::new()),
        });
        all.push(c.clone());
        Ok(c)
    }

    /// The context of the defaults with the `TILEDIO_*` environment applied.
    ///
    /// # Errors
    /// [`IoError::Setting`] naming a variable whose value cannot be used (never swallowed).
    pub fn from_env() -> Result<Arc<Context>> {
        Self::for_settings(&Settings::from_env()?)
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Frees the staging sets and the scratch memory this context keeps (pinned host memory and
    /// device memory), e.g. before handing the GPU to another library.
    pub fn trim(&self) {
        self.free_staging();
        self.scratch.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Frees the kept staging sets, each after the copies queued on its stream have finished
    /// (a set is kept as soon as its copies are queued; its pinned slots must outlive them).
    fn free_staging(&self) {
        let sets = std::mem::take(&mut *self.staging.lock().unwrap_or_else(|p| p.into_inner()));
        for set in sets {
            // a failed wait means the context is unusable anyway; the memory is freed regardless
            let _ = set.stream.synchronize();
        }
    }

    /// Frees the cached memory of every context.
    pub fn trim_all() {
        for c in CONTEXTS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            c.trim();
        }
    }

    /// Device scratch of at least `len` bytes: a kept buffer when one is large enough, else a
    /// new one. Given back when the guard drops, and kept if within `settings.scratch_cap`.
    ///
    /// # Errors
    /// As [`DeviceBuffer::new`].
    pub fn scratch(&self, len: usize) -> Result<Scratch<'_>> {
        let mut kept = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        // the smallest kept buffer that is large enough
        let fit = kept
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= len)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let buf = match fit {
            Some(i) => kept.swap_remove(i),
            None => {
                drop(kept);
                DeviceBuffer::new(len)?
            }
        };
        Ok(Scratch {
            ctx: self,
            buf: Some(buf),
        })
    }

    /// Bytes of device scratch kept now.
    pub fn scratch_kept(&self) -> u64 {
        self.scratch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|b| b.len() as u64)
            .sum()
    }

    /// Runs `f` on this context's compute threads: rayon's parallel iterators inside `f` use
    /// them (not rayon's global pool), so two libraries in one process, or two settings, do not
    /// fight over one pool. The format crates run their decoding, encoding and CPU kernels
    /// inside it; a call from within the pool runs `f` directly.
    pub fn compute<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.compute_pool.install(f)
    }

    /// The number of compute threads ([`Context::compute`]).
    pub fn compute_threads(&self) -> usize {
        self.compute_pool.current_num_threads()
    }

    /// Runs `f` on the reads' or the writes' I/O pool (tasks spawned in it run on those
    /// threads). The writes' pool starts on first use; if its threads cannot be started, the
    /// writes share the reads' pool.
    pub(crate) fn io_scope<'s, R: Send>(
        &self,
        pool: crate::engine::Pool,
        f: impl FnOnce(&rayon::Scope<'s>) -> R + Send,
    ) -> R {
        let writes = || {
            self.write_pool
                .get_or_init(|| {
                    let why = "the write threads could not be started";
                    thread_pool(self.settings.threads, "tiledio-write", "TILEDIO_THREADS", why).ok()
                })
                .as_ref()
        };
        match pool {
            crate::engine::Pool::Writes => match writes() {
                Some(p) => p.scope(f),
                None => self.io_pool.scope(f),
            },
            crate::engine::Pool::Reads => self.io_pool.scope(f),
        }
    }

    /// A staging set with slots of at least `slot_len` bytes from this context's pool, or none.
    pub(crate) fn take_staging(&self, slot_len: usize, slots: usize) -> Option<StagingSet> {
        let mut pool = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let i = pool.iter().position(|s| s.fits(slot_len, slots))?;
        Some(pool.swap_remove(i))
    }

    /// Keeps a staging set for the next call.
    pub(crate) fn keep_staging(&self, set: StagingSet) {
        self.staging.lock().unwrap_or_else(|p| p.into_inner()).push(set);
    }
}

/// Device scratch memory lent by a [`Context`]; derefs to the [`DeviceBuffer`].
pub struct Scratch<'a> {
    ctx: &'a Context,
    buf: Option<DeviceBuffer>,
}

impl std::fmt::Debug for Scratch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch({:?})", self.buf)
    }
}

impl std::ops::Deref for Scratch<'_> {
    type Target = DeviceBuffer;
    fn deref(&self) -> &DeviceBuffer {
        self.buf.as_ref().unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl std::ops::DerefMut for Scratch<'_> {
    fn deref_mut(&mut self) -> &mut DeviceBuffer {
        self.buf.as_mut().unwrap_or_else(|| unreachable!("present until drop"))
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let Some(b) = self.buf.take() else {
            return;
        };
        let cap = self.ctx.settings.scratch_cap;
        if b.len() as u64 > cap {
            return; // freed now
        }
        // kept: up to SCRATCH_KEPT buffers (a pipeline's reader and writer each hold one at
        // once), the smallest given back first when the total would pass the cap
        let mut kept = self.ctx.scratch.lock().unwrap_or_else(|p| p.into_inner());
        kept.push(b);
        kept.sort_by_key(|k| std::cmp::Reverse(k.len()));
        let mut total = 0u64;
        let keep = kept
            .iter()
            .take(SCRATCH_KEPT)
            .take_while(|k| {
                total += k.len() as u64;
                total <= cap
            })
            .count();
        let freed = kept.split_off(keep);
        drop(kept);
        drop(freed);
    }
}

/// The most device scratch buffers a context keeps between calls.
const SCRATCH_KEPT: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_runs_on_the_contexts_own_threads() {
        let s = Settings {
            compute_threads: 3,
            threads: 2,
            ..Default::default()
        };
        let ctx = Context::for_settings(&s).unwrap();
        assert_eq!(ctx.compute_threads(), 3);
        let names: Vec<String> = ctx.compute(|| {
            use rayon::prelude::*;
            (0..64)
                .into_par_iter()
                .map(|_| std::thread::current().name().unwrap_or("").to_string())
                .collect()
        });
        assert!(names.iter().all(|n| n.starts_with("tiledio-cpu-")), "{names:?}");
        // nested: a call from inside the pool runs directly, on the same threads
        let inner = ctx.compute(|| ctx.compute(|| std::thread::current().name().map(str::to_string)));
        assert!(inner.is_some_and(|n| n.starts_with("tiledio-cpu-")));
    }
}
