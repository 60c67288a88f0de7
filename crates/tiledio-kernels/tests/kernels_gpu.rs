//! GPU kernels against their CPU references on random data. Run on a machine with a CUDA GPU:
//! `cargo test -p tiledio-kernels --test kernels_gpu -- --include-ignored`.

use tiledio_io::ElementType;
use tiledio_io::gpu::{self, DeviceBuffer};
use tiledio_kernels::{ChunkLayout, LaunchArgs};

use tiledio_test_support::random::random_bytes as noise;

/// (shape, unit, inner, window origin, window shape, element bytes, byte swap)
type Case = (Vec<u64>, Vec<u64>, Vec<u64>, Vec<i64>, Vec<u64>, usize, usize);

fn cases() -> Vec<Case> {
    vec![
        // Zarr-like: whole arrays, regions, shards with inner chunks, edge chunks
        (
            vec![301, 257, 3],
            vec![64, 64, 3],
            vec![64, 64, 3],
            vec![0, 0, 0],
            vec![301, 257, 3],
            1,
            0,
        ),
        (
            vec![301, 257, 3],
            vec![128, 128, 3],
            vec![32, 32, 3],
            vec![0, 0, 0],
            vec![301, 257, 3],
            2,
            0,
        ),
        (
            vec![301, 257, 3],
            vec![64, 64, 3],
            vec![64, 64, 3],
            vec![17, 5, 0],
            vec![200, 250, 3],
            4,
            0,
        ),
        (
            vec![7, 33, 41],
            vec![2, 16, 8],
            vec![1, 8, 4],
            vec![1, 3, 2],
            vec![5, 30, 39],
            8,
            0,
        ),
        (vec![100_003], vec![4096], vec![1024], vec![0], vec![100_003], 1, 0),
        // rows longer than a GPU segment (16 KiB)
        (
            vec![9, 70_000],
            vec![4, 70_000],
            vec![4, 70_000],
            vec![0, 0],
            vec![9, 70_000],
            1,
            0,
        ),
        (
            vec![9, 70_000],
            vec![4, 30_000],
            vec![4, 30_000],
            vec![0, 3],
            vec![9, 69_990],
            2,
            2,
        ),
        // TIFF-like: tiles of RGB pixels, windows before and past the image, big-endian u16
        (
            vec![1000, 777],
            vec![256, 256],
            vec![256, 256],
            vec![-37, -5],
            vec![300, 129],
            3,
            0,
        ),
        (
            vec![1000, 777],
            vec![256, 256],
            vec![256, 256],
            vec![900, 700],
            vec![300, 129],
            6,
            2,
        ),
        (
            vec![1000, 777],
            vec![256, 256],
            vec![256, 256],
            vec![0, 0],
            vec![1000, 777],
            24,
            8,
        ),
        // strips as wide as the image
        (
            vec![1000, 777],
            vec![300, 777],
            vec![300, 777],
            vec![0, 0],
            vec![1000, 777],
            3,
            0,
        ),
    ]
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn chunk_gather_and_scatter_equal_the_cpu() {
    assert!(gpu::available(), "no GPU");
    for (i, (shape, unit, inner, wo, ws, es, swap)) in cases().into_iter().enumerate() {
        let l = ChunkLayout::new(&shape, &unit, &inner, &wo, &ws, es, 8)
            .unwrap()
            .with_byte_swap(swap)
            .unwrap();
        let total: u64 = l.unit_grid().iter().product();
        // every other unit, in reverse order
        let units: Vec<u64> = (0..total).rev().filter(|u| u % 2 == 0 || total < 4).collect();
        let fill = &noise(es, i as u64 + 100);
        let window = noise(l.window_bytes(), i as u64);
        let staging0 = noise(units.len() * l.slot_bytes(), i as u64 + 50);

        let mut st_cpu = staging0.clone();
        l.gather_host(&window, &mut st_cpu, &units, fill).unwrap();
        let win_dev = DeviceBuffer::from_host(&window).unwrap();
        let mut st_dev = DeviceBuffer::from_host(&staging0).unwrap();
        l.gather_device(&win_dev, &mut st_dev, &units, fill).unwrap();
        assert!(st_dev.to_host_vec().unwrap() == st_cpu, "case {i}: gather differs");

        let mut w_cpu = window.clone();
        l.scatter_host(&staging0, &mut w_cpu, &units).unwrap();
        let st_dev = DeviceBuffer::from_host(&staging0).unwrap();
        let mut w_dev = DeviceBuffer::from_host(&window).unwrap();
        l.scatter_device(&st_dev, &mut w_dev, &units).unwrap();
        assert!(w_dev.to_host_vec().unwrap() == w_cpu, "case {i}: scatter differs");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn fill_equals_the_cpu() {
    assert!(gpu::available(), "no GPU");
    for (len, pat) in [(1usize, vec![5u8]), (100_001, vec![1, 2, 3]), (1 << 20, vec![9; 8])] {
        let mut cpu = vec![0u8; len + 7];
        tiledio_kernels::fill_host(&mut cpu[..len], &pat);
        let mut d = DeviceBuffer::zeroed(len + 7).unwrap();
        tiledio_kernels::fill_device(&mut d, len, &pat).unwrap();
        assert_eq!(d.to_host_vec().unwrap(), cpu);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn downsample_equals_the_cpu_for_every_type() {
    assert!(gpu::available(), "no GPU");
    for (i, t) in ElementType::ALL.into_iter().enumerate() {
        for (h, w, c) in [(257usize, 131usize, 3usize), (1, 1, 1), (2, 5, 4), (64, 64, 1)] {
            let mut src = noise(h * w * c * t.size(), (i * 10 + h) as u64);
            if t.is_float() {
                // finite values (NaN payloads are not what is compared here)
                for (k, b) in src.chunks_exact_mut(t.size()).enumerate() {
                    let v = (k as f64 * 0.37).sin() * 1e3;
                    if t == ElementType::F32 {
                        b.copy_from_slice(&(v as f32).to_ne_bytes());
                    } else {
                        b.copy_from_slice(&v.to_ne_bytes());
                    }
                }
            }
            let out = h.div_ceil(2) * w.div_ceil(2) * c * t.size();
            let mut cpu = vec![0u8; out];
            tiledio_kernels::downsample2x(&src, &mut cpu, h, w, c, t).unwrap();
            let s = DeviceBuffer::from_host(&src).unwrap();
            let mut d = DeviceBuffer::new(out).unwrap();
            tiledio_kernels::downsample2x_device(&s, &mut d, h, w, c, t).unwrap();
            assert!(d.to_host_vec().unwrap() == cpu, "{t} {h}x{w}x{c} differs");
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn transposes_equal_the_cpu() {
    assert!(gpu::available(), "no GPU");
    for (n, c, es) in [
        (100_003usize, 3usize, 1usize),
        (4097, 4, 2),
        (999, 2, 4),
        (500, 5, 8),
        (77, 3, 3),
        (10, 2, 16),
    ] {
        let src = noise(n * c * es, (n + c + es) as u64);
        let s = DeviceBuffer::from_host(&src).unwrap();
        let mut d = DeviceBuffer::new(src.len()).unwrap();
        let mut cpu = vec![0u8; src.len()];
        tiledio_kernels::hwc_to_chw(&src, &mut cpu, n, c, es).unwrap();
        tiledio_kernels::hwc_to_chw_device(&s, &mut d, n, c, es).unwrap();
        assert!(d.to_host_vec().unwrap() == cpu, "hwc_to_chw {n} {c} {es}");
        tiledio_kernels::chw_to_hwc(&src, &mut cpu, n, c, es).unwrap();
        tiledio_kernels::chw_to_hwc_device(&s, &mut d, n, c, es).unwrap();
        assert!(d.to_host_vec().unwrap() == cpu, "chw_to_hwc {n} {c} {es}");
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn compile_cache_tells_sources_apart_and_typed_args_launch() {
    let g = gpu::gpu().unwrap();
    let a = r#"extern "C" __global__ void k_a(unsigned char* p) { p[0] = 1; }"#;
    let b = r#"extern "C" __global__ void k_b(unsigned char* p, int v) { p[threadIdx.x] = (unsigned char)v; }"#;
    g.compile("tiledio_kernels_cache_test", a)
        .unwrap()
        .function("k_a")
        .unwrap();
    // same name, other source: compiled anew, not the cached module of `a`
    let k = g
        .compile("tiledio_kernels_cache_test", b)
        .unwrap()
        .function("k_b")
        .unwrap();
    let mut d = DeviceBuffer::zeroed(4).unwrap();
    // SAFETY: k_b(u8*, int) writes 4 bytes with 4 threads.
    unsafe { LaunchArgs::new().write(&mut d).scalar(7i32).launch(&k, 1, 4).unwrap() };
    assert_eq!(d.to_host_vec().unwrap(), vec![7; 4]);
}
