//! The CPU hot paths of the benchmark suite (what runs when there is no GPU, and the references
//! of the CUDA kernels): tile placement (chunk scatter into a window), a batch of JPEG tiles
//! decoded and placed (a whole level of a JPEG slide, page-cached), Sobel magnitude, colour
//! deconvolution (`rgb2hed`) and ptychography frame preprocessing (crop, bin, dark).
//!
//! Small inputs and short settings, so that `cargo bench --bench cpu_hot_paths -- --quick`
//! finishes in seconds; GPU figures come from `tiledio bench all` on a GPU machine.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use tiledio::io::ElementType;
use tiledio::kernels::{ChunkLayout, ColourMap, ColourOp, PtychoParams, PtychoPlan, Sobel, SobelOutput};

/// A reproducible RGB u8 image of `side`² (the suite's synthetic slide).
fn image(side: u64) -> Vec<u8> {
    use tiledio::tiff::RowSource;
    tiledio::bench::read::SyntheticSlide { side }
        .read_rows(0, side)
        .unwrap()
        .into_bytes()
}

fn short<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g
}

fn tile_placement(c: &mut Criterion) {
    // 64 tiles of 256 × 256 × 3 placed into a 2048² RGB window
    let (side, tile) = (2048u64, 256u64);
    let l = ChunkLayout::new(
        &[side, side, 3],
        &[tile, tile, 3],
        &[tile, tile, 3],
        &[0, 0, 0],
        &[side, side, 3],
        1,
        0,
    )
    .unwrap();
    let n = (side / tile) * (side / tile);
    let units: Vec<u64> = (0..n).collect();
    let staging = image(side);
    let mut window = vec![0u8; staging.len()];
    let mut g = short(c, "tile_placement");
    g.throughput(Throughput::Bytes(staging.len() as u64));
    g.bench_function("scatter 64 tiles of 256² RGB into 2048²", |b| {
        b.iter(|| l.scatter_host(&staging, &mut window, &units).unwrap())
    });
    g.finish();
}

fn jpeg_decode_batch(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let p = tiledio::bench::read::generated_slide(dir.path(), 1024, 256, true).unwrap();
    let slide = tiledio::tiff::Slide::open(&p).unwrap();
    let mut g = short(c, "jpeg_decode_batch");
    g.throughput(Throughput::Bytes(1024 * 1024 * 3));
    g.bench_function("16 JPEG tiles of 256² decoded + placed (read_level)", |b| {
        b.iter(|| slide.read_level(0).unwrap())
    });
    g.finish();
}

fn sobel_cpu(c: &mut Criterion) {
    let side = 1024u64;
    let src = image(side);
    let s = Sobel::whole(ElementType::U8, 3, [side, side], SobelOutput::Magnitude).unwrap();
    let mut out = vec![0f32; s.output_pixels()];
    let mut g = short(c, "sobel_cpu");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("Sobel magnitude of 1024² RGB u8", |b| {
        b.iter(|| s.host(&src, &mut out).unwrap())
    });
    g.finish();
}

fn colour_cpu(c: &mut Criterion) {
    let side = 1024u64;
    let src = image(side);
    let m = ColourMap::new(ColourOp::RgbToHed, ElementType::U8, (side * side) as usize).unwrap();
    let mut out = vec![0f32; m.output_values()];
    let mut g = short(c, "colour_cpu");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("rgb2hed of 1024² RGB u8", |b| {
        b.iter(|| m.host(&src, &mut out).unwrap())
    });
    g.finish();
}

fn frame_preprocessing_cpu(c: &mut Criterion) {
    let (frames, side) = (16usize, 512usize);
    let p = PtychoParams::new((side, side), 256, 2);
    let ob = p.out_frame_bytes();
    let plan = PtychoPlan::new(p, None, None, None).unwrap();
    let input: Vec<u8> = (0..frames * side * side)
        .flat_map(|i| ((i * 2_654_435_761 % 4096) as u16).to_ne_bytes())
        .collect();
    let mut out = vec![0u8; frames * ob];
    let mut g = short(c, "frame_preprocessing_cpu");
    g.throughput(Throughput::Elements(frames as u64));
    g.bench_function("16 frames of 512² u16: crop 256, bin 2, f32", |b| {
        b.iter(|| plan.run_host(&input, frames, 0, side, &mut out).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    tile_placement,
    jpeg_decode_batch,
    sobel_cpu,
    colour_cpu,
    frame_preprocessing_cpu
);
criterion_main!(benches);
