//! The filter kernels (Sobel, colour, Macenko) on the GPU against their CPU references on
//! random data, bit for bit, and tiled-vs-whole-image identity on the GPU. Run on a machine
//! with a CUDA GPU: `cargo test -p tiledio-kernels --test filters_gpu -- --include-ignored`.

use tiledio_io::ElementType;
use tiledio_io::gpu::{DeviceBuffer, Stream};
use tiledio_kernels::{ColourMap, ColourOp, MacenkoNormalizer, MacenkoParams, Rect, Sobel, SobelOutput};
use tiledio_test_support::random::random_samples;

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

const TYPES: [(ElementType, usize); 6] = [
    (ElementType::U8, 1),
    (ElementType::U8, 3),
    (ElementType::U16, 1),
    (ElementType::U16, 3),
    (ElementType::F32, 1),
    (ElementType::F32, 3),
];

const WHATS: [SobelOutput; 3] = [SobelOutput::Magnitude, SobelOutput::Horizontal, SobelOutput::Vertical];

#[test]
#[ignore = "needs a CUDA GPU"]
fn sobel_gpu_equals_cpu_bit_for_bit() {
    for shape in [[1u64, 1u64], [1, 77], [77, 1], [2, 3], [333, 517], [1000, 1029]] {
        for (t, c) in TYPES {
            let n = (shape[0] * shape[1]) as usize * c;
            let img = random_samples(n, t.size(), t == ElementType::F32, shape[0] * 31 + c as u64);
            let src = DeviceBuffer::from_host(&img).unwrap();
            for what in WHATS {
                let s = Sobel::whole(t, c, shape, what).unwrap();
                let mut cpu = vec![0f32; s.output_pixels()];
                s.host(&img, &mut cpu).unwrap();
                let mut dst = DeviceBuffer::new(s.output_pixels() * 4).unwrap();
                s.device(&src, &mut dst).unwrap();
                let gpu = floats(&dst.to_host_vec().unwrap());
                assert!(
                    same_bits(&cpu, &gpu),
                    "{shape:?} {t} x{c} {what:?}: GPU differs from CPU"
                );
            }
        }
    }
}

/// Cuts the window `w` of a row-major image of `shape` with `px` bytes a pixel.
fn cut(image: &[u8], shape: [u64; 2], px: usize, w: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity((w.shape[0] * w.shape[1]) as usize * px);
    for y in w.origin[0]..w.origin[0] + w.shape[0] {
        let a = ((y * shape[1] + w.origin[1]) as usize) * px;
        out.extend_from_slice(&image[a..a + w.shape[1] as usize * px]);
    }
    out
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn sobel_gpu_tiled_equals_whole_image() {
    let shape = [301u64, 259u64];
    let stream = Stream::new().unwrap();
    for (t, c) in [(ElementType::U8, 3), (ElementType::F32, 1), (ElementType::U16, 1)] {
        let px = c * t.size();
        let img = random_samples((shape[0] * shape[1]) as usize * c, t.size(), t == ElementType::F32, 99);
        for what in WHATS {
            let s = Sobel::whole(t, c, shape, what).unwrap();
            let src = DeviceBuffer::from_host(&img).unwrap();
            let mut dst = DeviceBuffer::new(s.output_pixels() * 4).unwrap();
            s.device(&src, &mut dst).unwrap();
            let whole = floats(&dst.to_host_vec().unwrap());
            for tile in [[1u64, 1u64], [2, 2], [7, 7], [64, 64], [100, 37], [301, 5]] {
                let mut tiled = vec![f32::NAN; whole.len()];
                for ty in (0..shape[0]).step_by(tile[0] as usize) {
                    for tx in (0..shape[1]).step_by(tile[1] as usize) {
                        let o = Rect::new([ty, tx], [tile[0].min(shape[0] - ty), tile[1].min(shape[1] - tx)]);
                        let w = o.with_halo(shape, 1);
                        let part = Sobel::new(t, c, shape, w, o, what).unwrap();
                        let tsrc = DeviceBuffer::from_host(&cut(&img, shape, px, w)).unwrap();
                        let mut tdst = DeviceBuffer::new(part.output_pixels() * 4).unwrap();
                        // SAFETY: the stream is waited for before the buffers are dropped.
                        unsafe { part.device_on(&tsrc, &mut tdst, &stream).unwrap() };
                        stream.synchronize().unwrap();
                        let v = floats(&tdst.to_host_vec().unwrap());
                        for (j, row) in v.chunks(o.shape[1] as usize).enumerate() {
                            let a = ((ty + j as u64) * shape[1] + tx) as usize;
                            tiled[a..a + row.len()].copy_from_slice(row);
                        }
                    }
                }
                assert!(
                    same_bits(&tiled, &whole),
                    "{t} x{c} {what:?} tile {tile:?}: tiled differs"
                );
            }
        }
    }
}

/// Sobel of a device-resident 16384² f32 image vs a device-to-device copy of it (a rough
/// figure; the reported measurement is the bench binary's).
#[test]
#[ignore = "needs a CUDA GPU"]
fn sobel_gpu_rough_timing() {
    let n = 16384u64;
    let s = Sobel::whole(ElementType::F32, 1, [n, n], SobelOutput::Magnitude).unwrap();
    let src = DeviceBuffer::zeroed(s.src_bytes()).unwrap();
    let mut dst = DeviceBuffer::new(s.output_pixels() * 4).unwrap();
    let stream = Stream::new().unwrap();
    let time = |f: &mut dyn FnMut()| {
        f();
        stream.synchronize().unwrap();
        let t0 = std::time::Instant::now();
        for _ in 0..20 {
            f();
        }
        stream.synchronize().unwrap();
        t0.elapsed().as_secs_f64() / 20.0 * 1e3
    };
    // SAFETY: the buffers outlive the stream's work (synchronised in `time`).
    let ms = time(&mut || unsafe { s.device_on(&src, &mut dst, &stream).unwrap() });
    let mut copy = DeviceBuffer::new(s.src_bytes()).unwrap();
    let t0 = std::time::Instant::now();
    for _ in 0..20 {
        copy.copy_from_device(0, &src, 0, s.src_bytes()).unwrap();
    }
    tiledio_io::gpu::gpu().unwrap().synchronize().unwrap();
    let copy_ms = t0.elapsed().as_secs_f64() / 20.0 * 1e3;
    println!("sobel magnitude {n}x{n} f32: {ms:.3} ms; device-to-device copy: {copy_ms:.3} ms");
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn colour_gpu_equals_cpu_bit_for_bit() {
    let pixels = 300_001usize;
    let ops = [
        ColourOp::Gray,
        ColourOp::OpticalDensity {
            source_intensity: 240.0,
        },
        ColourOp::OpticalDensity {
            source_intensity: 255.0,
        },
        ColourOp::RgbToHed,
    ];
    for t in [ElementType::U8, ElementType::U16, ElementType::F32] {
        // f32: values in [0, 1.5) and some negatives, as an image may hold
        let src = if t == ElementType::F32 {
            random_samples(pixels * 3, 2, false, 5)
                .chunks(2)
                .flat_map(|b| (u16::from_ne_bytes([b[0], b[1]]) as f32 / 43690.0 - 0.01).to_ne_bytes())
                .collect()
        } else {
            random_samples(pixels * 3, t.size(), false, 5)
        };
        let dsrc = DeviceBuffer::from_host(&src).unwrap();
        for op in ops {
            let m = ColourMap::new(op, t, pixels).unwrap();
            let mut cpu = vec![0f32; m.output_values()];
            m.host(&src, &mut cpu).unwrap();
            let mut dst = DeviceBuffer::new(m.output_values() * 4).unwrap();
            m.device(&dsrc, &mut dst).unwrap();
            assert!(
                same_bits(&cpu, &floats(&dst.to_host_vec().unwrap())),
                "{op:?} {t}: GPU differs"
            );
        }
    }
    // hed2rgb of stains over a wide range (negative, zero, large)
    let stains: Vec<u8> = random_samples(pixels * 3, 2, false, 6)
        .chunks(2)
        .flat_map(|b| ((u16::from_ne_bytes([b[0], b[1]]) as f32 - 16384.0) / 8192.0).to_ne_bytes())
        .collect();
    let m = ColourMap::new(ColourOp::HedToRgb, ElementType::F32, pixels).unwrap();
    let mut cpu = vec![0f32; m.output_values()];
    m.host(&stains, &mut cpu).unwrap();
    let dsrc = DeviceBuffer::from_host(&stains).unwrap();
    let mut dst = DeviceBuffer::new(m.output_values() * 4).unwrap();
    let stream = Stream::new().unwrap();
    // SAFETY: synchronised before the buffers are used or dropped.
    unsafe { m.device_on(&dsrc, &mut dst, &stream).unwrap() };
    stream.synchronize().unwrap();
    assert!(
        same_bits(&cpu, &floats(&dst.to_host_vec().unwrap())),
        "hed2rgb: GPU differs"
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn macenko_gpu_map_equals_cpu() {
    // an H&E-like image: random stain amounts, some background
    let n = 512 * 517;
    let r = random_samples(n * 2, 1, false, 11);
    let img: Vec<u8> = (0..n)
        .flat_map(|i| {
            let (h, e) = (r[2 * i] as f64 / 160.0, r[2 * i + 1] as f64 / 255.0);
            let (h, e) = if i % 7 == 0 { (0.0, 0.0) } else { (h, e) };
            [(0.65, 0.07), (0.70, 0.99), (0.29, 0.11)].map(|(a, b)| (240.0 * (-(a * h + b * e)).exp()).round() as u8)
        })
        .collect();
    let norm = MacenkoNormalizer::fit(&img, MacenkoParams::default()).unwrap();
    let mut cpu = vec![0u8; img.len()];
    norm.host(&img, &mut cpu).unwrap();
    let src = DeviceBuffer::from_host(&img).unwrap();
    let mut dst = DeviceBuffer::new(img.len()).unwrap();
    norm.device(&src, &mut dst, img.len()).unwrap();
    assert_eq!(cpu, dst.to_host_vec().unwrap());
}
