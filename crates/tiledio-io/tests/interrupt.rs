//! The signal clean-up ([`tiledio_io::remove_temporaries`]): it removes every temporary file
//! and folder in flight and refuses new ones, so it is the only test in this binary.

use tiledio_io::{FileWriter, OutputDir};

#[test]
fn the_signal_clean_up_removes_temporaries_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = OutputDir::create(dir.path().join("b.zarr")).unwrap();
    std::fs::create_dir(out.path().join("c")).unwrap();
    std::fs::write(out.path().join("c/0"), b"chunk").unwrap();
    let file = FileWriter::create(dir.path().join("f.tif")).unwrap();
    file.write_at(0, &b"partial"[..]).unwrap();
    tiledio_io::remove_temporaries();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temporaries left");
    // writers still running fail cleanly; nothing new appears
    assert!(out.commit().is_err());
    assert!(file.finish(false).is_err());
    assert!(OutputDir::create(dir.path().join("c.zarr")).is_err());
    assert!(FileWriter::create(dir.path().join("g.tif")).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
