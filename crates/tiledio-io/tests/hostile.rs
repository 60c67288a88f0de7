//! Hostile inputs and outputs: only regular files are read as data, special files are never
//! replaced, and the memory budget refuses absurd buffers.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tiledio_io::{FileHandle, FileRead, FileWriter, IoError, Settings, read_files};

/// Runs `f` on another thread and fails the test (rather than hanging it) after 20 s.
fn within_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("hung on a special file")
}

/// Makes the special files of a test in a new directory: a FIFO `fifo`, and a symbolic link
/// `link` to `target` (taken in that directory unless absolute). Returns the directory and
/// their paths.
fn special_files(fifo: &str, link: &str, target: impl AsRef<Path>) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (fifo, link) = (dir.path().join(fifo), dir.path().join(link));
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    std::os::unix::fs::symlink(dir.path().join(target), &link).unwrap();
    (dir, fifo, link)
}

#[test]
fn fifo_and_device_sources_are_refused_not_read() {
    let (_dir, fifo, zero) = special_files("chunk.fifo", "zero", "/dev/zero");
    for p in [fifo, zero] {
        let q = p.clone();
        let opened = within_timeout(move || FileHandle::open(&q).map(|_| ()));
        let q = p.clone();
        let read = within_timeout(move || {
            let mut buf = vec![0u8; 16];
            let r = FileRead {
                path: q,
                file_offset: 0,
                len: 16,
                dst_offset: 0,
            };
            read_files(&[r], &mut buf, &Settings::default()).map(|_| ())
        });
        for e in [opened.unwrap_err(), read.unwrap_err()] {
            assert!(matches!(e, IoError::NotRegularFile { .. }), "{}: {e}", p.display());
        }
    }
}

#[test]
fn special_outputs_are_never_replaced() {
    // the link's target, "elsewhere" in the directory, does not exist
    let (dir, fifo, link) = special_files("out.fifo", "out.link", "elsewhere");
    for p in [fifo.as_path(), link.as_path(), Path::new("/dev/full")] {
        let e = FileWriter::create(p).unwrap_err();
        assert!(matches!(e, IoError::NotRegularFile { .. }), "{}: {e}", p.display());
    }
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let e = FileWriter::create(dir.path()).unwrap_err();
    assert!(e.to_string().contains("existing directory"), "{e}");
}

#[test]
fn a_killed_writers_temporaries_are_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.bin");
    // a child process starts a write and is killed with SIGKILL before finishing
    let stale = dir.path().join(".out.bin.tiledio-4194305-3.tmp");
    std::fs::write(&stale, vec![1u8; 1 << 16]).unwrap();
    let w = FileWriter::create(&target).unwrap();
    assert!(!stale.exists(), "stale temporary of a dead process left behind");
    w.write_at(0, &b"ok"[..]).unwrap();
    w.finish(false).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.bin")]);
}

#[test]
fn absurd_buffers_are_refused_with_a_typed_error() {
    let e = tiledio_io::try_alloc_zeroed(usize::MAX / 2, "level 0 of x.tif").unwrap_err();
    assert!(matches!(e, IoError::OutOfMemory { .. }), "{e}");
    assert!(e.to_string().starts_with("level 0 of x.tif: "), "{e}");
}
