//! The fused ptychography preprocessing's CPU reference against a naive step-by-step version
//! (crop with zero padding, dark, clamp, flat, mask, bin, orientation, conversion), on random
//! frames, for many option sets; and its validation messages.

use tiledio_io::ElementType;
use tiledio_kernels::{ClampOrder, KernelError, OutputType, PtychoParams, PtychoPlan, Reduce, center_of_mass};

use tiledio_test_support::random::Rng;

#[path = "common/ptycho_options.rs"]
mod common;

/// The preprocessing written out step by step on whole frames.
#[allow(clippy::too_many_arguments)]
fn naive(
    p: &PtychoParams,
    frames: &[Vec<f32>],
    dark: Option<&[f32]>,
    flat: Option<&[f32]>,
    mask: Option<&[u8]>,
) -> (Vec<Vec<f32>>, u64) {
    let (h, w) = p.frame_shape;
    let (s, b) = (p.crop, p.bin);
    let n = s / b;
    let (y0, x0) = p.window_origin();
    let mut sat = 0;
    let out = frames
        .iter()
        .map(|f| {
            // window values, None where the pixel contributes nothing
            let mut win = vec![None; s * s];
            for u in 0..s {
                for v in 0..s {
                    let (y, x) = (y0 + u as i64, x0 + v as i64);
                    if y < 0 || x < 0 || y >= h as i64 || x >= w as i64 {
                        continue;
                    }
                    let i = y as usize * w + x as usize;
                    let mut px = f[i] - dark.map_or(0.0, |d| d[i]);
                    if p.clamp == ClampOrder::ClampThenBin {
                        px = px.max(0.0);
                    }
                    let fl = flat.map_or(1.0, |fl| fl[i]);
                    if mask.is_some_and(|m| m[i] != 0) || fl <= 0.0 {
                        continue;
                    }
                    win[u * s + v] = Some(px / fl);
                }
            }
            let mut binned = vec![0f32; n * n];
            for by in 0..n {
                for bx in 0..n {
                    let mut sum = 0f32;
                    for dy in 0..b {
                        for dx in 0..b {
                            if let Some(v) = win[(by * b + dy) * s + bx * b + dx] {
                                sum += v;
                            }
                        }
                    }
                    if p.clamp == ClampOrder::BinThenClamp {
                        sum = sum.max(0.0);
                    }
                    if p.reduce == Reduce::Mean {
                        sum /= (b * b) as f32;
                    }
                    binned[by * n + bx] = sum;
                }
            }
            // orientation: transpose, flip up-down, flip left-right, as array operations
            let mut a = binned;
            if p.orientation.transpose {
                a = (0..n * n).map(|i| a[(i % n) * n + i / n]).collect();
            }
            if p.orientation.flip_ud {
                a = (0..n * n).map(|i| a[(n - 1 - i / n) * n + i % n]).collect();
            }
            if p.orientation.flip_lr {
                a = (0..n * n).map(|i| a[(i / n) * n + n - 1 - i % n]).collect();
            }
            let max = match p.output {
                OutputType::F32 => f32::INFINITY,
                OutputType::U32 => 4_294_967_295.0,
                OutputType::U16 => 65535.0,
            };
            a.iter()
                .map(|&v| {
                    if p.output == OutputType::F32 {
                        return v;
                    }
                    let r = v.round_ties_even().max(0.0);
                    if r > max {
                        sat += 1;
                        max
                    } else {
                        r
                    }
                })
                .collect()
        })
        .collect();
    (out, sat)
}

fn encode(v: &[f32], t: ElementType) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| match t {
            ElementType::U8 => vec![x as u8],
            ElementType::U16 => (x as u16).to_ne_bytes().to_vec(),
            ElementType::U32 => (x as u32).to_ne_bytes().to_vec(),
            _ => x.to_ne_bytes().to_vec(),
        })
        .collect()
}

fn decode(b: &[u8], t: OutputType) -> Vec<f32> {
    match t {
        OutputType::F32 => b.chunks(4).map(|c| f32::from_ne_bytes(c.try_into().unwrap())).collect(),
        OutputType::U32 => b
            .chunks(4)
            .map(|c| u32::from_ne_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        OutputType::U16 => b
            .chunks(2)
            .map(|c| u16::from_ne_bytes(c.try_into().unwrap()) as f32)
            .collect(),
    }
}

#[test]
fn cpu_reference_equals_the_naive_steps_for_many_option_sets() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for case in 0..120 {
        let h = 8 + rng.below(40) as usize;
        let w = 8 + rng.below(40) as usize;
        let bin = [1, 2, 3, 4][rng.below(4) as usize];
        let crop = bin * (1 + rng.below(12) as usize);
        let input = [ElementType::U8, ElementType::U16, ElementType::U32, ElementType::F32][rng.below(4) as usize];
        let mut p = PtychoParams::new((h, w), crop, bin);
        p.input = input;
        p.center = match rng.below(3) {
            0 => None,
            _ => Some((rng.below(h as u64 + 10) as i64 - 5, rng.below(w as u64 + 10) as i64 - 5)),
        };
        common::randomise(&mut p, &mut rng);
        let max = match input {
            ElementType::U8 => 255,
            ElementType::U16 | ElementType::F32 => 65535,
            _ => 1 << 22,
        };
        let nf = 1 + rng.below(4) as usize;
        let frames: Vec<Vec<f32>> = (0..nf)
            .map(|_| (0..h * w).map(|_| rng.below(max + 1) as f32).collect())
            .collect();
        let dark: Option<Vec<f32>> =
            (rng.below(3) > 0).then(|| (0..h * w).map(|_| rng.below(max / 2) as f32 + 0.25).collect());
        let flat: Option<Vec<f32>> =
            (rng.below(3) == 0).then(|| (0..h * w).map(|_| (rng.below(40) as f32 - 4.0) / 16.0).collect());
        let mask: Option<Vec<u8>> =
            (rng.below(3) == 0).then(|| (0..h * w).map(|_| (rng.below(10) == 0) as u8).collect());
        let plan = PtychoPlan::new(p.clone(), dark.as_deref(), flat.as_deref(), mask.as_deref()).unwrap();
        let (want, want_sat) = naive(&p, &frames, dark.as_deref(), flat.as_deref(), mask.as_deref());

        // whole frames, then only the rows the crop needs
        let rows = p.rows_needed();
        for (row0, nrows) in [(0, h), (rows.start, rows.len())] {
            let mut raw = Vec::new();
            for f in &frames {
                raw.extend(encode(&f[row0 * w..(row0 + nrows) * w], input));
            }
            let mut out = vec![0u8; nf * p.out_frame_bytes()];
            let sat = plan.run_host(&raw, nf, row0, nrows, &mut out).unwrap();
            let got = decode(&out, p.output);
            let want_flat: Vec<f32> = want.iter().flatten().copied().collect();
            assert_eq!(got.len(), want_flat.len());
            for (i, (a, b)) in got.iter().zip(&want_flat).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits(),
                    "case {case} {p:?} rows {row0}+{nrows}: element {i}: {a} != {b}"
                );
            }
            assert_eq!(sat, want_sat, "case {case}");
        }
    }
}

#[test]
fn u16_output_saturates_and_counts() {
    let mut p = PtychoParams::new((4, 4), 4, 2);
    p.output = OutputType::U16;
    let plan = PtychoPlan::new(p, None, None, None).unwrap();
    let raw: Vec<u8> = [60000u16; 16].iter().flat_map(|v| v.to_ne_bytes()).collect();
    let mut out = vec![0u8; 4 * 2];
    assert_eq!(plan.run_host(&raw, 1, 0, 4, &mut out).unwrap(), 4);
    assert!(out.chunks(2).all(|c| u16::from_ne_bytes([c[0], c[1]]) == u16::MAX));
}

#[test]
fn invalid_options_are_one_line_errors() {
    let msg = |r: Result<PtychoPlan, KernelError>| match r {
        Err(KernelError::Invalid(m)) => {
            assert!(!m.contains('\n'));
            m
        }
        other => panic!("expected Invalid, got {other:?}"),
    };
    let p = PtychoParams::new((64, 64), 30, 4);
    assert!(msg(PtychoPlan::new(p, None, None, None)).contains("not divisible"));
    let p = PtychoParams::new((64, 64), 32, 4);
    assert!(msg(PtychoPlan::new(p.clone(), Some(&[0.0; 63 * 64]), None, None)).contains("dark"));
    assert!(msg(PtychoPlan::new(p.clone(), None, None, Some(&[0; 10]))).contains("mask"));
    let mut q = p.clone();
    q.input = ElementType::I16;
    assert!(msg(PtychoPlan::new(q, None, None, None)).contains("int16"));
    let plan = PtychoPlan::new(p.clone(), None, None, None).unwrap();
    // the crop needs rows 16..48; rows 20..48 are not enough
    let raw = vec![0u8; 28 * 64 * 2];
    let mut out = vec![0u8; p.out_frame_bytes()];
    let e = plan.run_host(&raw, 1, 20, 28, &mut out).unwrap_err();
    assert!(e.to_string().contains("needs frame rows 16..48"), "{e}");
    let e = plan.run_host(&raw, 2, 16, 28, &mut out).unwrap_err();
    assert!(matches!(e, KernelError::Invalid(_)));
}

#[test]
fn centre_of_mass_of_two_frames() {
    let (h, w) = (9, 11);
    let mut a = vec![0u16; h * w * 2];
    a[3 * w + 4] = 10;
    a[h * w + 5 * w + 8] = 30;
    let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let (y, x) = center_of_mass(&bytes, 2, h, w, ElementType::U16, None)
        .unwrap()
        .unwrap();
    assert!((y - 4.5).abs() < 1e-12 && (x - 7.0).abs() < 1e-12, "{y},{x}");
    let dark = vec![100.0f32; h * w];
    assert_eq!(
        center_of_mass(&bytes, 2, h, w, ElementType::U16, Some(&dark)).unwrap(),
        None
    );
}
