//! Outputs that cannot hurt: every output is written under a temporary name beside its target
//! and renamed into place when complete; a non-regular target (device, FIFO, symlink, socket)
//! is refused, never replaced; an output that is the input is refused; temporaries are removed
//! on failure, on SIGINT/SIGTERM ([`remove_temporaries`], called by the CLI's signal handler),
//! and — for those of processes that were killed outright — by the next run writing beside
//! them ([`remove_stale_temporaries`]).

use crate::error::{IoError, Result};
use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporaries of this process that are still being written.
static LIVE: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Option<HashSet<PathBuf>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Set once [`remove_temporaries`] has run: the process is going away, and no new temporary
/// may appear behind the clean-up's back.
static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn shutting_down() -> bool {
    SHUTTING_DOWN.load(std::sync::atomic::Ordering::SeqCst)
}

/// Makes a temporary with `make` and registers it, both under the registry's lock, so a signal's
/// clean-up ([`remove_temporaries`]) either waits and removes it or has already refused it:
/// there is no moment in which it exists unregistered.
pub(crate) fn create_registered<T>(temp: &Path, make: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut guard = live();
    refuse_when_shutting_down(temp)?;
    let made = make()?;
    guard.get_or_insert_with(HashSet::new).insert(temp.to_path_buf());
    Ok(made)
}

pub(crate) fn unregister(temp: &Path) {
    if let Some(s) = live().as_mut() {
        s.remove(temp);
    }
}

/// Removes every temporary file and folder this process is still writing, and refuses new
/// ones from then on. Meant for a signal handler's thread (SIGINT, SIGTERM) just before the
/// process exits, so an interrupted write leaves nothing behind: writers still running fail
/// (their output is gone) rather than re-create what was removed.
///
/// ```no_run
/// tiledio_io::remove_temporaries(); // then exit: no write can start after this
/// ```
pub fn remove_temporaries() {
    // the flag before the lock: a writer holding the lock finishes registering (and is then
    // removed below); one taking it after sees the flag and makes nothing
    SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::SeqCst);
    let paths: Vec<PathBuf> = live().take().map(|s| s.into_iter().collect()).unwrap_or_default();
    // writers still running may add files to a folder while it is removed: go again until
    // every temporary is gone (a few rounds at most; new ones are refused)
    for _ in 0..50 {
        for p in &paths {
            remove_any(p);
        }
        if paths.iter().all(|p| std::fs::symlink_metadata(p).is_err()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn remove_any(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
}

const TAG: &str = ".tiledio-";

/// A unique hidden temporary name beside `path`: `.NAME.tiledio-PID-N.tmp`, so a crash leaves
/// nothing under the real name and the next run can tell whose it was.
pub(crate) fn temp_name(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = N.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}{TAG}{}-{n}.tmp", std::process::id()))
}

/// The process id in a temporary name made by [`temp_name`] for a target named `name`.
fn temp_owner(file_name: &str, name: &str) -> Option<i32> {
    let rest = file_name.strip_prefix('.')?.strip_prefix(name)?.strip_prefix(TAG)?;
    let rest = rest.strip_suffix(".tmp")?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return true; // not ours to judge
    }
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes the temporaries beside `target` left by processes that no longer exist (killed
/// with SIGKILL, or a machine that lost power), so a re-run starts clean. Returns how many
/// were removed. Temporaries of live processes (a concurrent writer) are left alone.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let target = dir.path().join("out.tif");
/// // a temporary of a process that cannot exist (pid 2^22 + 1 is above Linux's pid_max)
/// std::fs::write(dir.path().join(".out.tif.tiledio-4194305-0.tmp"), b"partial")?;
/// assert_eq!(tiledio_io::remove_stale_temporaries(&target), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_stale_temporaries(target: &Path) -> usize {
    let (Some(name), dir) = (target.file_name(), parent_dir(target)) else {
        return 0;
    };
    let name = name.to_string_lossy();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let f = e.file_name();
        let Some(pid) = temp_owner(&f.to_string_lossy(), &name) else {
            continue;
        };
        if pid as u32 != std::process::id() && !process_alive(pid) {
            remove_any(&e.path());
            removed += 1;
        }
    }
    removed
}

fn parent_dir(p: &Path) -> &Path {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// What a file-system entry is, for messages ("a FIFO", "a symbolic link", ...).
///
/// ```
/// let t = std::fs::symlink_metadata("/dev/null")?.file_type();
/// assert_eq!(tiledio_io::file_kind(t), "a character device");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn file_kind(ft: std::fs::FileType) -> &'static str {
    FILE_KINDS
        .iter()
        .find(|(is, _)| is(&ft))
        .map_or("not a regular file", |&(_, kind)| kind)
}

/// A test of a file type and the name of the kind it finds.
type KindTest = (fn(&std::fs::FileType) -> bool, &'static str);

/// [`file_kind`]'s tests, in order: the first that holds names the kind (a symbolic link is
/// named as such, not by what it points to).
const FILE_KINDS: [KindTest; 7] = [
    (std::fs::FileType::is_symlink, "a symbolic link"),
    (std::fs::FileType::is_dir, "a directory"),
    (FileTypeExt::is_fifo, "a FIFO"),
    (FileTypeExt::is_char_device, "a character device"),
    (FileTypeExt::is_block_device, "a block device"),
    (FileTypeExt::is_socket, "a socket"),
    (std::fs::FileType::is_file, "a regular file"),
];

/// What an output will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// A single file (replaced atomically if a regular file of that name exists).
    File,
    /// A directory (a Zarr array or group), which must not exist or be empty.
    Directory,
}

/// Checks, before any work starts, that `output` can be written as `kind`: its folder exists;
/// it is not a symlink, device, FIFO or socket (those are refused, never replaced); a file
/// output is not an existing directory; a directory output is absent or empty; and it is none
/// of `inputs` (same path, or the same file by device and inode).
///
/// ```
/// use tiledio_io::{OutputKind, check_output};
/// let dir = tempfile::tempdir()?;
/// let input = dir.path().join("in.tif");
/// std::fs::write(&input, b"x")?;
/// assert!(check_output(&dir.path().join("out.tif"), &[&input], OutputKind::File).is_ok());
/// assert!(check_output(&input, &[&input], OutputKind::File).is_err());
/// assert!(check_output(std::path::Path::new("/dev/null"), &[], OutputKind::File).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// [`IoError::NotRegularFile`] or [`IoError::BadOutput`] saying what is wrong.
pub fn check_output(output: &Path, inputs: &[&Path], kind: OutputKind) -> Result<()> {
    let bad = |reason: String| IoError::BadOutput {
        path: output.to_path_buf(),
        reason,
    };
    let dir = parent_dir(output);
    if !dir.is_dir() {
        return Err(bad(format!("folder {} does not exist", dir.display())));
    }
    if output.file_name().is_none() {
        return Err(bad("names no file".into()));
    }
    for input in inputs {
        if same_path(input, output) {
            return Err(bad("is the input; choose another output".into()));
        }
    }
    let meta = match std::fs::symlink_metadata(output) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(bad(format!("cannot inspect: {e}"))),
    };
    let ft = meta.file_type();
    for input in inputs {
        if let Ok(im) = std::fs::metadata(input)
            && im.dev() == meta.dev()
            && im.ino() == meta.ino()
        {
            return Err(bad("is the input (the same file); choose another output".into()));
        }
    }
    match kind {
        OutputKind::File if ft.is_file() => Ok(()),
        OutputKind::File if ft.is_dir() => Err(bad("is an existing directory".into())),
        OutputKind::Directory if ft.is_dir() => {
            let empty = std::fs::read_dir(output)
                .map_err(|e| bad(format!("cannot list: {e}")))?
                .next()
                .is_none();
            if empty {
                Ok(())
            } else {
                Err(bad(
                    "already exists and is not empty; remove it or choose another name".into()
                ))
            }
        }
        OutputKind::Directory if ft.is_file() => Err(bad("is an existing file, not a directory".into())),
        _ => Err(IoError::NotRegularFile {
            path: output.to_path_buf(),
            kind: file_kind(ft),
        }),
    }
}

/// Whether two paths name the same place (compared after resolving the folder part).
fn same_path(a: &Path, b: &Path) -> bool {
    let resolve = |p: &Path| -> Option<PathBuf> {
        let dir = std::fs::canonicalize(parent_dir(p)).ok()?;
        Some(dir.join(p.file_name()?))
    };
    match (resolve(a), resolve(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// A directory output being written: a hidden temporary directory beside the target,
/// renamed into place by [`OutputDir::commit`] only if the target is still absent (or empty),
/// so concurrent writers never mix (one wins, the others get an error) and an interrupted
/// write never leaves a half array at the final path. Dropped uncommitted, it is removed.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let target = dir.path().join("out.zarr");
/// let out = tiledio_io::OutputDir::create(&target)?;
/// std::fs::write(out.path().join("zarr.json"), b"{}")?;
/// assert!(!target.exists());
/// out.commit()?;
/// assert!(target.join("zarr.json").is_file());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OutputDir {
    target: PathBuf,
    temp: PathBuf,
    done: bool,
}

impl OutputDir {
    /// Checks `target` ([`check_output`] as a directory), removes stale temporaries of dead
    /// processes beside it, and creates the temporary directory.
    ///
    /// # Errors
    /// As [`check_output`]; [`IoError::Open`] if the directory cannot be created.
    pub fn create(target: impl AsRef<Path>) -> Result<OutputDir> {
        let target = target.as_ref().to_path_buf();
        check_output(&target, &[], OutputKind::Directory)?;
        remove_stale_temporaries(&target);
        let temp = temp_name(&target);
        create_registered(&temp, || {
            std::fs::create_dir(&temp).map_err(|e| IoError::open(&temp, e))
        })?;
        Ok(OutputDir {
            target,
            temp,
            done: false,
        })
    }

    /// Where to write the contents now.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the finished directory into place. An empty directory at the target is replaced;
    /// anything else there (another writer finished first) is an error and this output is
    /// removed.
    ///
    /// # Errors
    /// [`IoError::BadOutput`] when the target appeared meanwhile; [`IoError::Commit`].
    pub fn commit(mut self) -> Result<PathBuf> {
        self.done = true;
        let r = self.rename_into_place();
        unregister(&self.temp);
        if r.is_err() {
            remove_any(&self.temp);
        }
        r.map(|()| self.target.clone())
    }

    fn rename_into_place(&self) -> Result<()> {
        // an empty directory at the target (made by the user beforehand) gives way; a
        // non-empty one makes rmdir fail and the no-replace rename below refuse
        if std::fs::symlink_metadata(&self.target).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_dir(&self.target);
        }
        rename_noreplace(&self.temp, &self.target).map_err(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) || e.raw_os_error() == Some(libc::ENOTEMPTY) {
                IoError::BadOutput {
                    path: self.target.clone(),
                    reason: "was created by someone else while this output was written; nothing replaced".into(),
                }
            } else {
                IoError::Commit {
                    path: self.target.clone(),
                    temp: self.temp.clone(),
                    source: e,
                }
            }
        })
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.done {
            unregister(&self.temp);
            remove_any(&self.temp);
        }
    }
}

/// After [`remove_temporaries`], no new temporary is made.
pub(crate) fn refuse_when_shutting_down(temp: &Path) -> Result<()> {
    if shutting_down() {
        return Err(IoError::BadOutput {
            path: temp.to_path_buf(),
            reason: "not written: the process is being interrupted".into(),
        });
    }
    Ok(())
}

/// `rename` that fails with EEXIST instead of replacing an existing target.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like rename(2).
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOSYS) {
        // a file system without RENAME_NOREPLACE: check, then rename (a small race remains)
        if std::fs::symlink_metadata(to).is_ok() {
            return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
        }
        return std::fs::rename(from, to);
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_parse_back() {
        let t = temp_name(Path::new("/x/out.zarr"));
        let f = t.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(temp_owner(&f, "out.zarr"), Some(std::process::id() as i32));
        assert_eq!(temp_owner(&f, "out"), None);
        assert_eq!(temp_owner(".out.zarr.tiledio-12-x.tmp", "out.zarr"), None);
    }

    #[test]
    fn concurrent_directory_outputs_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.zarr");
        let a = OutputDir::create(&target).unwrap();
        let b = OutputDir::create(&target).unwrap();
        std::fs::write(a.path().join("who"), b"a").unwrap();
        std::fs::write(b.path().join("who"), b"b").unwrap();
        a.commit().unwrap();
        let e = b.commit().unwrap_err();
        assert!(matches!(e, IoError::BadOutput { .. }), "{e}");
        assert_eq!(std::fs::read(target.join("who")).unwrap(), b"a");
        // the loser's temporary is gone
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn uncommitted_outputs_are_removed() {
        // (the signal clean-up is tested in tests/interrupt.rs: it ends all writes of a process)
        let dir = tempfile::tempdir().unwrap();
        let a = OutputDir::create(dir.path().join("a.zarr")).unwrap();
        let p = a.path().to_path_buf();
        assert!(p.is_dir());
        drop(a);
        assert!(!p.exists());
    }

    #[test]
    fn special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        for p in [Path::new("/dev/null"), link.as_path()] {
            let e = check_output(p, &[], OutputKind::File).unwrap_err();
            assert!(matches!(e, IoError::NotRegularFile { .. }), "{e}");
        }
        let e = check_output(dir.path(), &[], OutputKind::File).unwrap_err();
        assert!(e.to_string().contains("existing directory"), "{e}");
    }
}
