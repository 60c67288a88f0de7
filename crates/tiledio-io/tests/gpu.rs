//! GPU reads and writes compared with host reads on random data, for every backend.
//! Run on a GPU machine with `--include-ignored`.

use std::path::PathBuf;
use tiledio_io::gpu::DeviceBuffer;
use tiledio_io::{Backend, BackendChoice, FileHandle, FileWriter, IoError, ReadRange, Settings};
use tiledio_test_support::random::random_bytes;

fn scratch_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// Tile-like ranges: unordered, with gaps, some adjacent, some unaligned.
fn ranges(file_len: usize, seed: u64) -> (Vec<ReadRange>, usize) {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    let mut dst = 0;
    for _ in 0..300 {
        let off = (next() % file_len as u64) as usize;
        let len = ((next() % 900_000) as usize).min(file_len - off);
        out.push(ReadRange {
            file_offset: off as u64,
            len,
            dst_offset: dst,
        });
        dst += len;
    }
    // A long run of back-to-back ranges, as a tifffile-written slide has.
    let mut off = 1234;
    for _ in 0..40 {
        out.push(ReadRange {
            file_offset: off,
            len: 786_432,
            dst_offset: dst,
        });
        dst += 786_432;
        off += 786_432;
    }
    (out, dst)
}

fn check_backend(choice: BackendChoice, direct: bool) -> tiledio_io::BackendReport {
    let dir = scratch_dir();
    let path = dir.path().join("data.bin");
    let data = random_bytes(96 << 20, 42);
    std::fs::write(&path, &data).unwrap();
    let s = Settings {
        backend: choice,
        direct_io: direct,
        ..Settings::default()
    };
    let fh = FileHandle::open_with(&path, &s).unwrap();
    let (rs, total) = ranges(data.len(), 7);
    let mut host = vec![0u8; total];
    fh.read_ranges(&rs, &mut host).unwrap();
    let mut dev = DeviceBuffer::new(total).unwrap();
    dev.fill(0x5A).unwrap();
    let st = fh.read_ranges(&rs, &mut dev).unwrap();
    let back = dev.to_host_vec().unwrap();
    assert!(
        back == host,
        "{choice:?} (direct {direct}): GPU bytes differ from host bytes"
    );
    for r in rs.iter().take(20) {
        assert_eq!(
            &back[r.dst_offset..r.dst_offset + r.len],
            &data[r.file_offset as usize..r.file_offset as usize + r.len]
        );
    }
    let report = fh.backend_report().unwrap();
    assert_eq!(st.backend, report.backend);
    eprintln!("{choice:?} direct={direct}: {report}");
    report
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn staged_reads_equal_host_reads() {
    assert_eq!(check_backend(BackendChoice::Staged, false).backend, Backend::Staged);
    assert_eq!(check_backend(BackendChoice::Staged, true).backend, Backend::Staged);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn mmap_reads_equal_host_reads() {
    assert_eq!(check_backend(BackendChoice::Mmap, false).backend, Backend::Mmap);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn auto_reads_equal_host_reads_and_explain_the_choice() {
    let r = check_backend(BackendChoice::Auto, false);
    // Every backend not chosen carries a reason.
    assert!(r.rejected.iter().all(|(_, why)| !why.is_empty()));
    assert!(r.rejected.iter().any(|(b, _)| *b == Backend::CuFile) || r.backend == Backend::CuFile);
}

/// With the udev entry (the default of on-device.sh) cuFile registers the file and is used when
/// asked for; with `CUFILE_UDEV=0` registration is refused and the fallback says so.
#[test]
#[ignore = "needs a CUDA GPU"]
fn cufile_taken_with_udev_entry_and_reason_reported_without() {
    let udev = std::env::var("CUFILE_UDEV").map(|v| v != "0").unwrap_or(true);
    let r = check_backend(BackendChoice::CuFile, false);
    if udev {
        assert_eq!(r.backend, Backend::CuFile, "{r}");
    } else {
        assert_eq!(r.backend, Backend::Staged, "{r}");
        let why = &r
            .rejected
            .iter()
            .find(|(b, _)| *b == Backend::CuFile)
            .expect("cuFile reason")
            .1;
        assert!(why.contains("cuFileHandleRegister"), "{why}");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn writes_from_gpu_read_back_equal() {
    let dir = scratch_dir();
    let data = random_bytes(40 << 20, 9);
    let dev = DeviceBuffer::from_host(&data).unwrap();
    for choice in [BackendChoice::Staged, BackendChoice::CuFile] {
        let path = dir.path().join(format!("w-{choice:?}.bin"));
        let s = Settings {
            backend: choice,
            ..Settings::default()
        };
        let w = FileWriter::create_with(&path, &s).unwrap();
        let st = w.write_at(0, &dev).unwrap();
        w.finish(true).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == data,
            "{choice:?} ({}) wrote different bytes",
            st.backend
        );
        eprintln!("write {choice:?}: {}", st.backend);
    }
    // Many files from one device buffer.
    let files: Vec<tiledio_io::FileWrite> = (0..40)
        .map(|i| tiledio_io::FileWrite {
            path: dir.path().join(format!("chunk{i}")),
            src_offset: i << 20,
            len: 1 << 20,
        })
        .collect();
    tiledio_io::write_files(&files, &dev, &Settings::default(), false).unwrap();
    let reads: Vec<tiledio_io::FileRead> = files
        .iter()
        .map(|f| tiledio_io::FileRead {
            path: f.path.clone(),
            file_offset: 0,
            len: f.len,
            dst_offset: f.src_offset,
        })
        .collect();
    let mut back = DeviceBuffer::zeroed(40 << 20).unwrap();
    tiledio_io::read_files(&reads, &mut back, &Settings::default()).unwrap();
    assert!(back.to_host_vec().unwrap() == data);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn out_of_gpu_memory_is_a_typed_error() {
    let err = DeviceBuffer::new(1 << 50).unwrap_err();
    assert!(
        matches!(err, IoError::OutOfDeviceMemory { requested, .. } if requested == 1 << 50),
        "{err}"
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn nvrtc_kernel_runs() {
    let g = tiledio_io::gpu::gpu().unwrap();
    let m = g
        .compile(
            "io_test_add",
            r#"extern "C" __global__ void add(unsigned char* p, unsigned long long n, unsigned char v) {
                unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
                if (i < n) p[i] += v; }"#,
        )
        .unwrap();
    let k = m.function("add").unwrap();
    let data = random_bytes(1 << 20, 3);
    let d = DeviceBuffer::from_host(&data).unwrap();
    let (mut p, mut n, mut v) = (d.device_ptr(), data.len() as u64, 3u8);
    let mut args = [
        &mut p as *mut u64 as *mut _,
        &mut n as *mut u64 as *mut _,
        &mut v as *mut u8 as *mut _,
    ];
    // SAFETY: arguments match the kernel's (pointer, length, value).
    unsafe { k.launch(((1 << 20) / 256, 1, 1), (256, 1, 1), 0, &mut args).unwrap() };
    g.synchronize().unwrap();
    let back = d.to_host_vec().unwrap();
    assert!(back.iter().zip(&data).all(|(b, a)| *b == a.wrapping_add(3)));
}

/// A 32 MiB file of random bytes, tile-like ranges of it and the bytes they select.
fn random_file_and_ranges(dir: &std::path::Path, seed: u64) -> (PathBuf, Vec<ReadRange>, Vec<u8>) {
    let path = dir.join("f.bin");
    let data = random_bytes(32 << 20, seed);
    std::fs::write(&path, &data).unwrap();
    let (rs, total) = ranges(data.len(), seed + 1);
    let mut want = vec![0u8; total];
    for r in &rs {
        want[r.dst_offset..r.dst_offset + r.len]
            .copy_from_slice(&data[r.file_offset as usize..r.file_offset as usize + r.len]);
    }
    (path, rs, want)
}

/// Reads land in memory tiledio did not allocate (a framework's allocation, here a plain
/// `cuMemAlloc` made outside `DeviceBuffer`), through the foreign-pointer view, which frees
/// nothing when dropped; and tiledio works while another context is current on the thread
/// (as after PyTorch or CuPy switched contexts): the current context is checked, not cached.
#[test]
#[ignore = "needs a CUDA GPU"]
fn reads_fill_foreign_memory_and_survive_a_context_switch() {
    use cudarc::driver::{result, sys};
    let g = tiledio_io::gpu::gpu().unwrap();
    let dir = scratch_dir();
    let (path, rs, want) = random_file_and_ranges(dir.path(), 77);
    let total = want.len();
    g.bind().unwrap();
    // SAFETY: a plain allocation with tiledio's (primary) context current, freed below.
    let foreign = unsafe { result::malloc_sync(total) }.unwrap();
    for backend in [BackendChoice::Staged, BackendChoice::CuFile, BackendChoice::Mmap] {
        let s = Settings {
            backend,
            ..Settings::default()
        };
        // SAFETY: `foreign` is live device memory of `total` bytes used by nothing else.
        let mut view = unsafe { DeviceBuffer::from_raw_parts(foreign, total) };
        assert!(!view.is_owned());
        FileHandle::open_with(&path, &s)
            .unwrap()
            .read_ranges(&rs, &mut view)
            .unwrap();
        drop(view);
        let mut back = vec![0u8; total];
        // SAFETY: copies `total` bytes of the live allocation.
        unsafe { result::memcpy_dtoh_sync(&mut back, foreign) }.unwrap();
        assert!(back == want, "{backend:?}: the foreign buffer holds other bytes");
    }
    // another context current on this thread: tiledio switches back to its own for its work
    let dev = result::device::get(0).unwrap();
    let mut other: sys::CUcontext = std::ptr::null_mut();
    // SAFETY: creates (and below destroys) a context of device 0.
    let r = unsafe { sys::cuCtxCreate_v4(&mut other, std::ptr::null_mut(), 0, dev) };
    assert_eq!(r, sys::CUresult::CUDA_SUCCESS);
    let mut d = DeviceBuffer::new(total).unwrap();
    FileHandle::open(&path).unwrap().read_ranges(&rs, &mut d).unwrap();
    assert!(d.to_host_vec().unwrap() == want, "wrong bytes after a context switch");
    // SAFETY: frees what was allocated above, in tiledio's context.
    unsafe {
        g.bind().unwrap();
        result::free_sync(foreign).unwrap();
        sys::cuCtxDestroy_v2(other);
    }
}

/// A tiny kernel `k(unsigned char* p, u64 n, unsigned char v)`: `p[i] ^= v` (or `+= v`), loaded
/// with cudarc directly so the test depends on nothing but the driver.
fn byte_kernel(op: &str) -> cudarc::driver::sys::CUfunction {
    use cudarc::driver::result;
    // loading a module needs tiledio's context current on this thread
    tiledio_io::gpu::gpu().unwrap().bind().unwrap();
    let src = format!(
        r#"extern "C" __global__ void k(unsigned char* p, unsigned long long n, unsigned char v) {{
            for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
                 i += (unsigned long long)gridDim.x * blockDim.x) p[i] {op}= v; }}"#
    );
    let ptx = cudarc::nvrtc::compile_ptx(src).unwrap();
    let image = std::ffi::CString::new(ptx.to_src()).unwrap();
    // SAFETY: a NUL-terminated PTX image; the module lives for the process.
    unsafe {
        let m = result::module::load_data(image.as_ptr() as *const std::ffi::c_void).unwrap();
        result::module::get_function(m, std::ffi::CString::new("k").unwrap()).unwrap()
    }
}

fn launch_bytes(f: cudarc::driver::sys::CUfunction, d: &DeviceBuffer, v: u8, s: &tiledio_io::gpu::Stream) {
    let (mut p, mut n, mut v) = (d.device_ptr(), d.len() as u64, v);
    let mut args = [
        &mut p as *mut u64 as *mut std::ffi::c_void,
        &mut n as *mut u64 as *mut std::ffi::c_void,
        &mut v as *mut u8 as *mut std::ffi::c_void,
    ];
    // SAFETY: the argument types match the kernel's; `d` outlives the launch (synchronised below).
    unsafe {
        cudarc::driver::result::launch_kernel(f, (256, 1, 1), (256, 1, 1), 0, s.as_raw() as _, &mut args).unwrap();
    }
}

/// Stream order both ways, and overlap: on stream A, a memset queued before the read is
/// overwritten by it and a kernel queued after it sees the read's bytes; meanwhile a kernel
/// runs on stream B over another buffer. Nothing waits on the device as a whole.
#[test]
#[ignore = "needs a CUDA GPU"]
fn async_reads_order_with_kernels_on_two_streams() {
    use cudarc::driver::result;
    use tiledio_io::gpu::Stream;
    let dir = scratch_dir();
    let (path, rs, want) = random_file_and_ranges(dir.path(), 91);
    let total = want.len();
    let xor = byte_kernel("^");
    let add = byte_kernel("+");
    for backend in [BackendChoice::Staged, BackendChoice::CuFile, BackendChoice::Mmap] {
        let s = Settings {
            backend,
            ..Settings::default()
        };
        let fh = FileHandle::open_with(&path, &s).unwrap();
        let (a, b) = (Stream::new().unwrap(), Stream::new().unwrap());
        let mut dst = DeviceBuffer::new(total).unwrap();
        let other_init = random_bytes(16 << 20, 93);
        let other = DeviceBuffer::from_host(&other_init).unwrap();
        // SAFETY: dst is live; the memset is queued on a, before the read
        unsafe { result::memset_d8_async(dst.device_ptr(), 0xAB, total, a.as_raw() as _) }.unwrap();
        launch_bytes(add, &other, 3, &b);
        fh.read_ranges_async(&rs, &mut dst, &a).unwrap();
        launch_bytes(xor, &dst, 0x5A, &a);
        launch_bytes(add, &other, 4, &b);
        a.synchronize().unwrap();
        b.synchronize().unwrap();
        let got = dst.to_host_vec().unwrap();
        let expect: Vec<u8> = want.iter().map(|x| x ^ 0x5A).collect();
        assert!(
            got == expect,
            "{backend:?}: the read and the kernel after it were not in stream order"
        );
        let o = other.to_host_vec().unwrap();
        assert!(
            o.iter().zip(&other_init).all(|(x, y)| *x == y.wrapping_add(7)),
            "{backend:?}: stream b"
        );
    }
}
