//! Without a usable GPU every host path works and GPU paths say why they cannot run.
//! (Its own test binary: the GPU is probed once per process.)

use tiledio_io::{FileHandle, IoError, ReadRange, gpu};

#[test]
fn without_a_gpu_host_io_works_and_gpu_calls_explain() {
    let has_libcuda = ["libcuda.so.1", "libcuda.so"]
        .iter()
        .any(|n| unsafe { libloading_probe(n) });
    // SAFETY: set before any GPU probe in this process (single test in this binary).
    unsafe { std::env::set_var("TILEDIO_NO_GPU", "1") };
    let err = gpu::gpu().unwrap_err();
    assert!(
        matches!(&err, IoError::NoGpu { reason } if reason.contains("TILEDIO_NO_GPU")),
        "{err}"
    );
    assert!(!gpu::available());
    let err = gpu::DeviceBuffer::new(16).unwrap_err();
    assert!(matches!(err, IoError::NoGpu { .. }), "{err}");
    let why = tiledio_io::cufile_status().expect("cuFile cannot be usable without a GPU");
    assert!(why.contains("no GPU"), "{why}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"0123456789").unwrap();
    let fh = FileHandle::open(&path).unwrap();
    assert!(matches!(fh.backend_report(), Err(IoError::NoGpu { .. })));
    let mut buf = [0u8; 3];
    let st = fh
        .read_ranges(
            &[ReadRange {
                file_offset: 7,
                len: 3,
                dst_offset: 0,
            }],
            &mut buf[..],
        )
        .unwrap();
    assert_eq!(&buf, b"789");
    assert_eq!(st.backend, tiledio_io::Backend::Host);
    eprintln!("libcuda present on this machine: {has_libcuda}");
}

/// Whether the dynamic loader finds `name` (the probe cudarc makes, without panicking).
unsafe fn libloading_probe(name: &str) -> bool {
    let c = std::ffi::CString::new(name).unwrap();
    unsafe extern "C" {
        fn dlopen(filename: *const std::ffi::c_char, flag: i32) -> *mut std::ffi::c_void;
    }
    // SAFETY: dlopen with RTLD_LAZY of a library name; the handle is leaked deliberately.
    !unsafe { dlopen(c.as_ptr(), 1) }.is_null()
}
