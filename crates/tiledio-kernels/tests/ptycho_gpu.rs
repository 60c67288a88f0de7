//! The fused ptychography kernel against its CPU reference on random data (bit for bit: both
//! do the same f32 operations in the same order, IEEE division, no contraction), and its speed.
//! Run on a machine with a CUDA GPU:
//! `cargo test --release -p tiledio-kernels --test ptycho_gpu -- --include-ignored --nocapture`.

use std::time::Instant;
use tiledio_io::ElementType;
use tiledio_io::gpu::{DeviceBuffer, Event, Stream};
use tiledio_kernels::{PtychoDevice, PtychoParams, PtychoPlan};

use tiledio_test_support::random::Rng;

#[path = "common/ptycho_options.rs"]
mod common;

fn random_frames(rng: &mut Rng, n: usize, t: ElementType, max: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|_| {
            let v = rng.below(max + 1);
            match t {
                ElementType::U8 => vec![v as u8],
                ElementType::U16 => (v as u16).to_ne_bytes().to_vec(),
                ElementType::U32 => (v as u32).to_ne_bytes().to_vec(),
                _ => (v as f32 * 0.37).to_ne_bytes().to_vec(),
            }
        })
        .collect()
}

/// One random case: frames of `h × w` of `input`, crop and bin as given, the rest (centre,
/// clamp order, reduction, orientation, output type, dark, flat, mask) random; GPU equals CPU
/// bit for bit, saturation counts included.
#[allow(clippy::too_many_arguments)]
fn check_case(
    rng: &mut Rng,
    stream: &Stream,
    case: &str,
    (h, w): (usize, usize),
    crop: usize,
    bin: usize,
    input: ElementType,
    nf: usize,
) {
    let mut p = PtychoParams::new((h, w), crop, bin);
    p.input = input;
    if rng.below(2) == 0 {
        p.center = Some((rng.below(h as u64) as i64, rng.below(w as u64) as i64));
    }
    common::randomise(&mut p, rng);
    let max = if input == ElementType::U8 { 255 } else { 65535 };
    // integer-valued darks keep sums exact (the bitwise comparison holds for any values)
    let dark: Vec<f32> = (0..h * w).map(|_| rng.below(max / 2) as f32).collect();
    let flat: Option<Vec<f32>> =
        (rng.below(3) == 0).then(|| (0..h * w).map(|_| (rng.below(40) as f32 - 4.0) / 16.0).collect());
    let mask: Option<Vec<u8>> = (rng.below(3) == 0).then(|| (0..h * w).map(|_| (rng.below(9) == 0) as u8).collect());
    let plan = PtychoPlan::new(p.clone(), Some(&dark), flat.as_deref(), mask.as_deref()).unwrap();
    let rows = p.rows_needed();
    let raw = random_frames(rng, nf * rows.len() * w, input, max);
    let mut want = vec![0u8; nf * p.out_frame_bytes()];
    let want_sat = plan.run_host(&raw, nf, rows.start, rows.len(), &mut want).unwrap();

    let mut dev = PtychoDevice::new(&plan).unwrap();
    let d_in = DeviceBuffer::from_host(&raw).unwrap();
    let mut d_out = DeviceBuffer::new(want.len().max(1)).unwrap();
    dev.run(&d_in, nf, rows.start, rows.len(), &mut d_out, stream).unwrap();
    let sat = dev.take_saturated(stream).unwrap();
    let got = d_out.to_host_vec().unwrap();
    let es = p.output.size();
    if let Some(i) = (0..want.len() / es).find(|&i| got[i * es..(i + 1) * es] != want[i * es..(i + 1) * es]) {
        panic!(
            "case {case}: {nf} frames, {p:?}: element {i}: GPU {:?}, CPU {:?}",
            &got[i * es..(i + 1) * es],
            &want[i * es..(i + 1) * es]
        );
    }
    assert_eq!(sat, want_sat, "case {case}");
}

const INPUTS: [ElementType; 4] = [ElementType::U8, ElementType::U16, ElementType::U32, ElementType::F32];

#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_equals_cpu_on_random_frames() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    // ordered with the default stream, where the synchronous uploads of the inputs run
    let stream = Stream::new_ordered_with_default().unwrap();
    for case in 0..60 {
        let h = 16 + rng.below(300) as usize;
        let w = 16 + rng.below(300) as usize;
        let bin = [1, 2, 3, 4, 8][rng.below(5) as usize];
        let crop = bin * (1 + rng.below(64) as usize);
        let input = INPUTS[rng.below(4) as usize];
        let nf = 1 + rng.below(9) as usize;
        check_case(&mut rng, &stream, &case.to_string(), (h, w), crop, bin, input, nf);
    }
}

/// Large frames, so that each thread walks several frames (the kernels for bins of 1, 2 and 4
/// take them four at a time: 150 frames give groups of 38, 10 and 3, none a multiple of 4).
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_equals_cpu_when_threads_walk_many_frames() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let stream = Stream::new_ordered_with_default().unwrap();
    for (case, bin) in [1usize, 2, 4, 3].into_iter().enumerate() {
        let input = INPUTS[case];
        check_case(
            &mut rng,
            &stream,
            &format!("bin {bin}"),
            (520, 530),
            512 / bin * bin,
            bin,
            input,
            150,
        );
    }
}

/// 2048² u16 frames, crop 1024 about the centre, bin 2, sum, f32 out: the kernel alone on
/// frames already in GPU memory (the crop's 1024 rows of each).
#[test]
#[ignore = "needs a CUDA GPU"]
fn kernel_time_per_frame_2048_crop_1024_bin_2() {
    let p = PtychoParams::new((2048, 2048), 1024, 2);
    let dark: Vec<f32> = (0..2048 * 2048).map(|i| (i % 7) as f32 + 100.0).collect();
    let plan = PtychoPlan::new(p.clone(), Some(&dark), None, None).unwrap();
    let mut dev = PtychoDevice::new(&plan).unwrap();
    let rows = p.rows_needed();
    // ordered with the default stream, where the synchronous uploads of the inputs run
    let stream = Stream::new_ordered_with_default().unwrap();
    for (nf, whole) in [(64usize, false), (64, true), (256, false)] {
        let (row0, nrows) = if whole { (0, 2048) } else { (rows.start, rows.len()) };
        let d_in = DeviceBuffer::zeroed(nf * nrows * 2048 * 2).unwrap();
        let mut d_out = DeviceBuffer::new(nf * p.out_frame_bytes()).unwrap();
        dev.run(&d_in, nf, row0, nrows, &mut d_out, &stream).unwrap();
        stream.synchronize().unwrap();
        let (e0, e1) = (Event::new().unwrap(), Event::new().unwrap());
        let reps = 20;
        let t = Instant::now();
        e0.record(&stream).unwrap();
        for _ in 0..reps {
            dev.run(&d_in, nf, row0, nrows, &mut d_out, &stream).unwrap();
        }
        e1.record(&stream).unwrap();
        e1.synchronize().unwrap();
        let per = t.elapsed().as_secs_f64() / (reps * nf) as f64;
        println!(
            "ptycho kernel: batch {nf}, input rows {nrows}: {:.2} µs/frame ({:.0} frames/s)",
            per * 1e6,
            1.0 / per
        );
    }
}
