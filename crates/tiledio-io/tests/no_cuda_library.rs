//! On a machine without the NVIDIA driver (CI), the GPU probe reports the missing library
//! instead of panicking; on a GPU machine it finds the GPU.

#[test]
fn missing_libcuda_is_a_reason_not_a_panic() {
    let present = ["libcuda.so.1", "libcuda.so"].iter().any(|n| {
        let c = std::ffi::CString::new(*n).unwrap();
        unsafe extern "C" {
            fn dlopen(filename: *const std::ffi::c_char, flag: i32) -> *mut std::ffi::c_void;
        }
        // SAFETY: dlopen of a library name with RTLD_LAZY.
        !unsafe { dlopen(c.as_ptr(), 1) }.is_null()
    });
    match tiledio_io::gpu::gpu() {
        Ok(g) => assert!(present, "found GPU {} without libcuda?", g.name()),
        Err(tiledio_io::IoError::NoGpu { reason }) => {
            if !present {
                assert!(reason.contains("libcuda not found"), "{reason}");
            }
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    // cuFile's status never panics either, and names a cause when unusable.
    if let Some(why) = tiledio_io::cufile_status() {
        assert!(!why.is_empty());
    }
}
