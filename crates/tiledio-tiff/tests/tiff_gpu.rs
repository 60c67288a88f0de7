//! GPU reads equal host reads (run on a machine with a CUDA GPU:
//! `cargo test -p tiledio-tiff --test tiff_gpu -- --include-ignored`).

use tiledio_tiff::{
    Compression, DeviceImage, HostImage, ReadOptions, Slide, WriteOptions, write_pyramid, write_pyramid_device,
};

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn compare(slide: &Slide) {
    for level in 0..slide.level_count() {
        let host = slide.read_level(level).unwrap();
        let dev = slide.read_level_device(level).unwrap().to_host().unwrap();
        assert!(host == dev, "{}: level {level} differs", slide.path().display());
        for (loc, size) in [
            ((-37i64, -5i64), (300u64, 129u64)),
            ((1000, 17), (64, 500)),
            ((5, 5), (1, 1)),
        ] {
            let o = ReadOptions::with_background(7);
            let h = slide.read_region_with(loc, level, size, &o).unwrap();
            let d = slide
                .read_region_device_with(loc, level, size, &o)
                .unwrap()
                .to_host()
                .unwrap();
            assert!(
                h == d,
                "{}: level {level} region {loc:?} {size:?} differs",
                slide.path().display()
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn tiff_gpu_reads_equal_host_reads_on_random_data() {
    let dir = tempfile::tempdir().unwrap();
    let img = HostImage::from_u8(1000, 1200, 3, noise(1000 * 1200 * 3, 5)).unwrap();
    for (i, c) in [
        Compression::None,
        Compression::Deflate,
        Compression::Zstd,
        Compression::Lzw,
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.path().join(format!("{i}.tif"));
        write_pyramid(&p, &img, &WriteOptions::default().tile(128).compression(c)).unwrap();
        let s = Slide::open(&p).unwrap();
        assert_eq!(s.read_level_device(0).unwrap().to_host().unwrap(), img);
        compare(&s);
    }
    let u16s: Vec<u16> = noise(700 * 500 * 2 * 2, 9)
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let img16 = HostImage::from_u16(700, 500, 2, u16s).unwrap();
    let p = dir.path().join("u16.tif");
    write_pyramid(&p, &img16, &WriteOptions::default().tile(64)).unwrap();
    compare(&Slide::open(&p).unwrap());
    // writing from GPU memory
    let d = DeviceImage::from_host(&img).unwrap();
    let p = dir.path().join("fromgpu.tif");
    write_pyramid_device(&p, &d, &WriteOptions::default().tile(256)).unwrap();
    assert_eq!(Slide::open(&p).unwrap().read_level(0).unwrap(), img);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn tiff_gpu_fixtures_equal_host_reads() {
    let dir = tiledio_test_support::workspace_root().join("testdata/tiff");
    for name in [
        "tifffile_none_rgb8.tif",
        "tifffile_bigendian_u16.tif",
        "tifffile_zstd_f32.tif",
        "tifffile_strips_rgb8.tif",
        "svs_like.svs",
        "vips_jpeg_pyramid.tif",
        "tifffile_ome_subifds.ome.tif",
        "tiffcp_tiled_lzw.tif",
    ] {
        compare(&Slide::open(dir.join(name)).unwrap());
    }
}

/// CuPy allocates the destination in another process (plain `cudaMalloc`, its pool off) and
/// shares it through a CUDA IPC handle; we open it, view it with `DeviceView::from_raw`
/// and read a slide region straight into it; CuPy then compares its array with tifffile's.
/// Needs Python with CuPy and tifffile (the GPU machine has both).
#[test]
#[ignore = "needs a CUDA GPU"]
fn tiff_gpu_reads_into_memory_cupy_allocated() {
    use cudarc::driver::sys;
    use std::io::{BufRead, Write};
    const SCRIPT: &str = r#"
import sys, cupy as cp, numpy as np, tifffile
cp.cuda.set_allocator(None)  # one cudaMalloc per array: the IPC handle is the array's own
path, x, y, w, h = sys.argv[1], *map(int, sys.argv[2:6])
ref = tifffile.imread(path, key=0)
if ref.ndim == 2: ref = ref[..., None]
a = cp.zeros((h, w, ref.shape[2]), dtype=ref.dtype)
print(bytes(cp.cuda.runtime.ipcGetMemHandle(a.data.ptr)).hex(), a.nbytes, flush=True)
sys.stdin.readline()
got = cp.asnumpy(a)
print("equal" if np.array_equal(got, ref[y:y + h, x:x + w]) else "differ", flush=True)
"#;
    let g = tiledio_io::gpu::gpu().unwrap();
    for (name, (x, y, w, h)) in [
        ("tifffile_none_rgb8.tif", (17i64, 9i64, 200u64, 150u64)),
        ("tifffile_deflate_rgb8.tif", (0, 0, 128, 96)),
    ] {
        let path = tiledio_test_support::testdata("tiff").join(name);
        let mut child = std::process::Command::new("python3")
            .args(["-c", SCRIPT, path.to_str().unwrap()])
            .args([x.to_string(), y.to_string(), w.to_string(), h.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with cupy and tifffile");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace();
        let hex = parts.next().expect("an IPC handle from CuPy");
        let nbytes: usize = parts.next().unwrap().parse().unwrap();
        let mut handle = sys::CUipcMemHandle_st { reserved: [0; 64] };
        for (i, b) in handle.reserved.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap() as std::ffi::c_char;
        }
        g.bind().unwrap();
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: a handle CuPy exported for a live allocation of `nbytes` bytes.
        let r = unsafe { sys::cuIpcOpenMemHandle_v2(&mut ptr, handle, 1) };
        assert_eq!(r, sys::CUresult::CUDA_SUCCESS);
        {
            // SAFETY: the opened allocation is `nbytes` long (checked against the shape) and
            // nothing else writes it now.
            let shape = [h, w, 3];
            assert_eq!(shape.iter().product::<u64>() as usize, nbytes);
            let mut view =
                unsafe { tiledio_io::DeviceView::from_raw(ptr, tiledio_io::ElementType::U8, &shape, None) }.unwrap();
            let slide = Slide::open(&path).unwrap();
            slide.read_region_device_into((x, y), 0, (w, h), &mut view).unwrap();
            g.synchronize().unwrap();
        }
        // SAFETY: opened above, closed once.
        unsafe { sys::cuIpcCloseMemHandle(ptr) };
        child.stdin.as_mut().unwrap().write_all(b"filled\n").unwrap();
        let mut verdict = String::new();
        out.read_line(&mut verdict).unwrap();
        assert_eq!(verdict.trim(), "equal", "{name}: CuPy's array differs from tifffile");
        assert!(child.wait().unwrap().success());
    }
}
