//! The simulated detector: scan geometry, photon statistics, beam centre, determinism, the
//! FFT's Parseval relation, writers read back by the stores and by NumPy, preprocessing of a
//! simulated stack, and option errors.

use tiledio_io::ElementType;
use tiledio_ptycho::simulate::{Complex, Simulation, SimulationOptions};
use tiledio_ptycho::{
    Center, Device, FrameStore, Frames, NpyStore, Output, PreprocessOptions, PtychoError, RawLayout, RawStore,
    ZarrStore, dark_frame, preprocess,
};

/// A small detector: `frames` frames of 64² patterns in a 160×200 frame centred at (70, 90).
fn small(frames: u64) -> SimulationOptions {
    let mut o = SimulationOptions::new(frames, (160, 200), 64);
    o.center = (70, 90);
    o.photons = 1e5;
    o.seed = 11;
    o
}

fn nearest_neighbours(p: &[(f64, f64)]) -> Vec<f64> {
    let mut nn: Vec<f64> = p
        .iter()
        .enumerate()
        .map(|(i, a)| {
            p.iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, b)| (a.0 - b.0).hypot(a.1 - b.1))
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    nn.sort_by(f64::total_cmp);
    nn
}

#[test]
fn spiral_spacing_gives_the_overlap() {
    for (overlap, diameter) in [(0.7, 16.0), (0.5, 24.0), (0.85, 30.0)] {
        let mut o = small(300);
        o.overlap = overlap;
        o.probe_diameter = Some(diameter);
        let sim = Simulation::new(&o).unwrap();
        let p = sim.positions();
        assert_eq!(p.len(), 300);
        let step = (1.0 - overlap) * diameter;
        assert!((sim.step() - step).abs() < 1e-12);
        let nn = nearest_neighbours(p);
        let median = nn[nn.len() / 2];
        let mean = nn.iter().sum::<f64>() / nn.len() as f64;
        let measured = 1.0 - median / diameter;
        assert!(
            (measured - overlap).abs() < 0.01,
            "overlap {overlap}: measured {measured}"
        );
        assert!((mean / step - 1.0).abs() < 0.1, "mean spacing {mean} for step {step}");
        // the spacing is even: no two positions much closer than the step, no holes
        // the spacing is even: only the spiral's first few points are closer than the step
        assert!(
            nn[3] > 0.9 * step && nn[0] > 0.5 * step && nn[299] < 1.1 * step,
            "{nn:?}"
        );
        // a spiral about the origin, sqrt(N) growth: N points cover about N step² of area
        let r_max = p.iter().map(|q| q.0.hypot(q.1)).fold(0.0, f64::max);
        let area = std::f64::consts::PI * r_max * r_max;
        assert!(area / (300.0 * step * step) > 0.7 && area / (300.0 * step * step) < 1.3);
    }
    // far out (the spacing is calibrated on the first 1500 points) the step holds too
    let mut o = small(4000);
    o.probe_diameter = Some(10.0);
    let sim = Simulation::new(&o).unwrap();
    let nn = nearest_neighbours(&sim.positions()[3000..]);
    let median = nn[nn.len() / 2];
    assert!((median / 3.0 - 1.0).abs() < 0.03, "{median}");
    let sim = Simulation::new(&small(5)).unwrap();
    let m = sim.positions_m();
    assert!((m[3].0 - sim.positions()[3].0 * 10e-9).abs() < 1e-20);
}

#[test]
fn counts_are_poisson_about_the_photon_count() {
    let mut o = small(24);
    o.dark_level = 0.0;
    o.read_noise = 0.0;
    let sim = Simulation::new(&o).unwrap();
    let (h, w) = o.frame_shape;
    let mut sums = Vec::new();
    for i in 0..o.frames {
        let mut f = vec![0u16; h * w];
        let info = sim.frame_into(i, &mut f).unwrap();
        let s: u64 = f.iter().map(|&v| v as u64).sum();
        assert_eq!(s, info.photons, "frame {i}");
        assert_eq!(info.saturated, 0);
        // one Poisson total: sd sqrt(1e5) = 316
        assert!((s as f64 - 1e5).abs() < 5.0 * 316.3, "frame {i}: {s} photons");
        sums.push(s as f64);
    }
    let mean = sums.iter().sum::<f64>() / sums.len() as f64;
    let var = sums.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (sums.len() - 1) as f64;
    assert!((mean - 1e5).abs() < 5.0 * 316.3 / (24f64).sqrt(), "mean {mean}");
    // the total of independent Poisson pixels is Poisson: variance ≈ mean (loose with 24 frames)
    assert!(var / 1e5 > 0.3 && var / 1e5 < 2.2, "variance {var}");

    // with dark and read noise: the frame minus the dark map still holds the photons
    let mut o2 = o.clone();
    o2.dark_level = 200.0;
    o2.read_noise = 3.0;
    let sim2 = Simulation::new(&o2).unwrap();
    let (f, _) = sim2.frame(0).unwrap();
    let net: f64 = f.iter().zip(sim2.dark_map()).map(|(&v, &d)| v as f64 - d as f64).sum();
    // read noise adds sd 3·sqrt(H·W) ≈ 536 and rounding about as much
    assert!(
        (net - 1e5).abs() < 5.0 * (316.3f64.powi(2) + 536f64.powi(2) * 2.0).sqrt(),
        "{net}"
    );

    // saturation: a bright beam clips at 65535 and is counted
    let mut o3 = o.clone();
    o3.photons = 1e9;
    let sim3 = Simulation::new(&o3).unwrap();
    let mut f = vec![0u16; h * w];
    let info = sim3.frame_into(0, &mut f).unwrap();
    assert!(info.saturated > 0);
    assert_eq!(f.iter().filter(|&&v| v == u16::MAX).count() as u64, info.saturated);
}

/// The signed centre of mass `(y, x)` of frames minus a dark map.
fn centre_of_mass(frames: &[u16], n: usize, (h, w): (usize, usize), dark: &[f32]) -> (f64, f64) {
    let (mut m, mut my, mut mx) = (0f64, 0f64, 0f64);
    for f in 0..n {
        for y in 0..h {
            for x in 0..w {
                let v = frames[(f * h + y) * w + x] as f64 - dark[y * w + x] as f64;
                m += v;
                my += v * y as f64;
                mx += v * x as f64;
            }
        }
    }
    (my / m, mx / m)
}

#[test]
fn the_pattern_sits_at_the_beam_centre() {
    let o = small(32);
    let sim = Simulation::new(&o).unwrap();
    let (h, w) = o.frame_shape;
    let mut all = Vec::new();
    for i in 0..o.frames {
        all.extend(sim.frame(i).unwrap().0);
    }
    let (cy, cx) = centre_of_mass(&all, o.frames as usize, (h, w), sim.dark_map());
    assert!(
        (cy - 70.0).abs() < 1.0 && (cx - 90.0).abs() < 1.0,
        "centre of mass ({cy}, {cx})"
    );

    // the noiseless intensity is centred at (D/2, D/2) over the scan
    let d = o.pattern;
    let mut acc = vec![0f64; d * d];
    for i in 0..o.frames {
        for (a, v) in acc.iter_mut().zip(sim.intensity(i).unwrap()) {
            *a += v;
        }
    }
    let m: f64 = acc.iter().sum();
    let y = acc.iter().enumerate().map(|(j, v)| v * (j / d) as f64).sum::<f64>() / m;
    let x = acc.iter().enumerate().map(|(j, v)| v * (j % d) as f64).sum::<f64>() / m;
    assert!(
        (y - 32.0).abs() < 0.5 && (x - 32.0).abs() < 0.5,
        "intensity centre ({y}, {x})"
    );

    // the bright-field disc has the aperture's radius (D/8 = 8): little light beyond 12 pixels
    let outside: f64 = acc
        .iter()
        .enumerate()
        .filter(|(j, _)| ((j / d) as f64 - 32.0).hypot((j % d) as f64 - 32.0) > 12.0)
        .map(|(_, v)| v)
        .sum();
    assert!(outside / m < 0.2, "{} of the light outside the disc", outside / m);

    // a centre near the corner clips the pattern: fewer photons, still a frame
    let mut o2 = small(2);
    o2.center = (3, 5);
    o2.dark_level = 0.0;
    o2.read_noise = 0.0;
    let sim2 = Simulation::new(&o2).unwrap();
    let mut f = vec![0u16; h * w];
    let info = sim2.frame_into(1, &mut f).unwrap();
    assert!(info.photons > 20_000 && info.photons < 90_000, "{}", info.photons);
    assert!(f[(h - 1) * w + w - 1] == 0 && f[(3 * w) + 5] > 0);
}

#[test]
fn parseval_and_unit_probe() {
    let mut o = small(4);
    o.pattern = 48; // not a power of two
    o.aperture = Some(7.0);
    o.probe_diameter = Some(14.0);
    let sim = Simulation::new(&o).unwrap();
    let d = 48usize;
    let probe = sim.probe();
    let power: f64 = probe.iter().map(|c| c.norm_sqr()).sum();
    assert!((power - 1.0).abs() < 1e-12, "{power}");
    // the probe's centre of intensity is the window centre
    let cy = probe
        .iter()
        .enumerate()
        .map(|(j, c)| c.norm_sqr() * (j / d) as f64)
        .sum::<f64>();
    let cx = probe
        .iter()
        .enumerate()
        .map(|(j, c)| c.norm_sqr() * (j % d) as f64)
        .sum::<f64>();
    assert!((cy - 24.0).abs() < 0.3 && (cx - 24.0).abs() < 0.3, "({cy}, {cx})");
    for i in 0..4 {
        let psi = sim.exit_wave(i).unwrap();
        let i2 = sim.intensity(i).unwrap();
        let lhs: f64 = i2.iter().sum();
        let rhs = (d * d) as f64 * psi.iter().map(|c| c.norm_sqr()).sum::<f64>();
        assert!((lhs / rhs - 1.0).abs() < 1e-10, "frame {i}: {lhs} vs {rhs}");
        // the object attenuates: the exit wave carries at most the probe's power
        assert!(rhs / (d * d) as f64 <= 1.0 + 1e-9 && rhs / ((d * d) as f64) > 0.2);
        // the zero-frequency term at (D/2, D/2) is |Σψ|²
        let dc = psi.iter().fold(Complex::<f64>::default(), |a, c| a + *c);
        assert!((i2[24 * d + 24] / dc.norm_sqr() - 1.0).abs() < 1e-9);
    }
}

#[test]
fn frames_are_deterministic_per_index() {
    let o = small(12);
    let a = Simulation::new(&o).unwrap();
    let b = Simulation::new(&o).unwrap();
    // reverse order on b, forward on a: the same frames
    let fwd: Vec<_> = (0..12).map(|i| a.frame(i).unwrap()).collect();
    let rev: Vec<_> = (0..12).rev().map(|i| b.frame(i).unwrap()).collect();
    for i in 0..12 {
        assert_eq!(fwd[i], rev[11 - i], "frame {i}");
    }
    assert_ne!(fwd[3].0, fwd[4].0);
    assert_ne!(fwd[3].1, fwd[4].1);
    // in parallel (the writer), the same again
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.npy");
    a.write_npy(&path, &mut |_, _| {}).unwrap();
    let s = NpyStore::open(&path).unwrap();
    for i in [0u64, 7, 11] {
        let v = s.read_frames_to_vec(i..i + 1, None).unwrap();
        let px: Vec<u16> = v.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(px, fwd[i as usize].0, "frame {i}");
    }
    // another seed: another object, other noise, another dark map
    let mut o2 = o.clone();
    o2.seed = 12;
    let c = Simulation::new(&o2).unwrap();
    assert_ne!(c.frame(3).unwrap().0, fwd[3].0);
    assert_ne!(c.dark_map(), a.dark_map());
    assert_eq!(c.positions(), a.positions()); // the scan depends on the geometry only
    // dark frames: deterministic, averaging to the dark map with the read noise's spread
    let d1 = a.dark_frames(16).unwrap();
    assert_eq!(d1, b.dark_frames(16).unwrap());
    let (h, w) = o.frame_shape;
    let px = h * w;
    let mut mean_err = 0f64;
    let mut var = 0f64;
    for p in 0..px {
        let m = (0..16).map(|k| d1[k * px + p] as f64).sum::<f64>() / 16.0;
        mean_err += m - a.dark_map()[p] as f64;
        var += (0..16).map(|k| (d1[k * px + p] as f64 - m).powi(2)).sum::<f64>() / 15.0;
    }
    assert!((mean_err / px as f64).abs() < 0.02, "{}", mean_err / px as f64);
    let sd = (var / px as f64).sqrt();
    assert!((sd - 2.0).abs() < 0.1, "read noise {sd}"); // 2 counts, plus rounding (1/12)
}

#[test]
fn writers_read_back() {
    let o = small(10);
    let sim = Simulation::new(&o).unwrap();
    let (h, w) = o.frame_shape;
    let dir = tempfile::tempdir().unwrap();
    let want: Vec<u16> = (0..10).flat_map(|i| sim.frame(i).unwrap().0).collect();
    let as_u16 = |v: Vec<u8>| -> Vec<u16> { v.chunks_exact(2).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect() };

    let mut calls = Vec::new();
    let npy = dir.path().join("f.npy");
    let r = sim.write_npy(&npy, &mut |d, t| calls.push((d, t))).unwrap();
    assert_eq!((r.frames, r.bytes), (10, std::fs::metadata(&npy).unwrap().len()));
    assert_eq!(calls.last(), Some(&(10, 10)));
    assert!(calls.windows(2).all(|c| c[0].0 < c[1].0));
    let s = NpyStore::open(&npy).unwrap();
    assert_eq!((s.frames(), s.shape(), s.dtype()), (10, (h, w), ElementType::U16));
    assert_eq!(as_u16(s.read_frames_to_vec(0..10, None).unwrap()), want);

    let raw = dir.path().join("f.raw");
    sim.write_raw(&raw, &mut |_, _| {}).unwrap();
    let s = RawStore::open(&raw, RawLayout::new(0, (h, w), ElementType::U16)).unwrap();
    assert_eq!(s.frames(), 10);
    assert_eq!(as_u16(s.read_frames_to_vec(0..10, None).unwrap()), want);

    let zarr = dir.path().join("f.zarr");
    sim.write_zarr(&zarr, &mut |_, _| {}).unwrap();
    let s = ZarrStore::open(&zarr).unwrap();
    assert_eq!(as_u16(s.read_frames_to_vec(0..10, None).unwrap()), want);
    let meta: tiledio_zarr::serde_json::Value =
        tiledio_zarr::serde_json::from_slice(&std::fs::read(zarr.join("zarr.json")).unwrap()).unwrap();
    let p = &meta["attributes"]["positions_px"];
    assert_eq!(p.as_array().unwrap().len(), 10);
    assert_eq!(p[4][0].as_f64().unwrap(), sim.positions()[4].0);

    let darks = dir.path().join("dark.npy");
    sim.write_dark_npy(&darks, 8).unwrap();
    let ds = NpyStore::open(&darks).unwrap();
    assert_eq!(
        as_u16(ds.read_frames_to_vec(0..8, None).unwrap()),
        sim.dark_frames(8).unwrap()
    );

    let pos = dir.path().join("pos.npy");
    sim.write_positions_npy(&pos).unwrap();
    let bytes = std::fs::read(&pos).unwrap();
    let hd = tiledio_ptycho::parse_npy_header(&pos, &bytes).unwrap();
    assert_eq!((hd.dtype, hd.shape.clone()), (ElementType::F64, vec![10, 2]));
    let v = f64::from_le_bytes(bytes[hd.data_offset as usize + 8..][..8].try_into().unwrap());
    assert_eq!(v, sim.positions()[0].1);

    // outputs that may not be written: nothing is left behind, nothing replaced
    let e = sim.write_npy("/dev/null", &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, PtychoError::Io(_)), "{e}");
    let e = sim.write_npy(dir.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, PtychoError::Io(_)), "{e}");
    let e = sim.write_zarr(&zarr, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("f.zarr"), "{e}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
}

#[test]
fn preprocessing_a_simulated_stack_centres_the_beam() {
    let mut o = small(16);
    // bright enough that the read noise left after the dark (clamped at 0 by the centre of
    // mass, so biased towards the frame centre) does not move the automatic centre
    o.photons = 1e6;
    let sim = Simulation::new(&o).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (frames, darks) = (dir.path().join("f.npy"), dir.path().join("d.npy"));
    sim.write_npy(&frames, &mut |_, _| {}).unwrap();
    sim.write_dark_npy(&darks, 20).unwrap();
    let store = NpyStore::open(&frames).unwrap();
    let dark = dark_frame(&NpyStore::open(&darks).unwrap(), 0..20).unwrap();
    let mut p = PreprocessOptions::new(64, 2);
    p.device = Device::Cpu;
    p.center = Center::At(70, 90);
    let r = preprocess(&store, Some(&dark), &p, Output::Host, &mut |_, _| {}).unwrap();
    assert_eq!((r.frames, r.side, r.center), (16, 32, (70, 90)));
    let Frames::Host(v) = r.data else {
        panic!("not on the host")
    };
    let px: Vec<f32> = v
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    let (mut m, mut my, mut mx) = (0f64, 0f64, 0f64);
    for (j, &v) in px.iter().enumerate() {
        let (y, x) = ((j / 32) % 32, j % 32);
        m += v as f64;
        my += v as f64 * y as f64;
        mx += v as f64 * x as f64;
    }
    // the beam centre, crop pixel 32, is bin 15.75 in binned coordinates
    let (y, x) = (my / m, mx / m);
    assert!((y - 15.75).abs() < 0.75 && (x - 15.75).abs() < 0.75, "({y}, {x})");
    // almost all photons are kept (the disc is well inside the crop), dark removed
    assert!((m / 16e6 - 1.0).abs() < 0.05, "{}", m / 16e6);

    // the automatic centre finds the beam too
    let c = tiledio_ptycho::auto_center(&store, Some(&dark), 16).unwrap();
    assert!((c.0 - 70).abs() <= 1 && (c.1 - 90).abs() <= 1, "{c:?}");
}

#[test]
fn bad_options_are_refused() {
    let refuse = |f: &dyn Fn(&mut SimulationOptions), what: &str| {
        let mut o = small(4);
        f(&mut o);
        let e = Simulation::new(&o).unwrap_err();
        assert!(matches!(e, PtychoError::Usage(_)), "{what}: {e}");
        let m = e.to_string();
        assert!(m.contains(what) && !m.contains('\n'), "{what}: {m}");
    };
    refuse(&|o| o.frames = 0, "frames");
    refuse(&|o| o.frame_shape = (0, 200), "empty");
    refuse(&|o| o.frame_shape = (160, 0), "empty");
    refuse(&|o| o.pattern = 0, "below 8");
    refuse(&|o| o.pattern = 161, "larger than the frame");
    refuse(&|o| o.center = (-40, 90), "wholly outside");
    refuse(&|o| o.center = (70, 232), "wholly outside");
    refuse(&|o| o.center = (i64::MAX, 0), "wholly outside");
    refuse(&|o| o.center = (i64::MIN, 0), "wholly outside");
    refuse(&|o| o.overlap = 0.0, "overlap");
    refuse(&|o| o.overlap = 1.0, "overlap");
    refuse(&|o| o.overlap = f64::NAN, "overlap");
    refuse(&|o| o.photons = -1.0, "photons");
    refuse(&|o| o.photons = f64::INFINITY, "photons");
    refuse(&|o| o.read_noise = f64::NAN, "read noise");
    refuse(&|o| o.dark_level = 70000.0, "dark level");
    refuse(&|o| o.probe_diameter = Some(65.0), "probe diameter");
    refuse(&|o| o.probe_diameter = Some(0.0), "probe diameter");
    refuse(&|o| o.aperture = Some(33.0), "aperture");
    refuse(&|o| o.pixel_size = 0.0, "pixel size");
    refuse(
        &|o| {
            o.frame_shape = (1 << 40, 1 << 40);
            o.center = (0, 0);
        },
        "overflows",
    );
    refuse(&|o| o.frames = u64::MAX, "overflow");

    // allowed: a pattern as large as the frame, a centre at the very edge
    let mut o = small(2);
    o.pattern = 160;
    o.center = (0, 199);
    Simulation::new(&o).unwrap().frame(1).unwrap();

    let sim = Simulation::new(&small(4)).unwrap();
    assert!(matches!(sim.frame(4), Err(PtychoError::Usage(_))));
    assert!(matches!(sim.intensity(9), Err(PtychoError::Usage(_))));
    assert!(matches!(sim.frame_into(0, &mut [0u16; 10]), Err(PtychoError::Usage(_))));
}

#[test]
fn numpy_reads_the_written_frames() {
    let o = small(6);
    let sim = Simulation::new(&o).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (npy, raw, pos) = (
        dir.path().join("f.npy"),
        dir.path().join("f.raw"),
        dir.path().join("p.npy"),
    );
    sim.write_npy(&npy, &mut |_, _| {}).unwrap();
    sim.write_raw(&raw, &mut |_, _| {}).unwrap();
    sim.write_positions_npy(&pos).unwrap();
    let script = r#"
import sys, numpy as np
a = np.load(sys.argv[1])
b = np.fromfile(sys.argv[2], dtype='<u2').reshape(a.shape)
p = np.load(sys.argv[3])
assert a.dtype == np.dtype('<u2') and a.shape == (6, 160, 200), (a.dtype, a.shape)
assert (a == b).all()
print(int(a.astype(np.uint64).sum()), int(a[4, 70, 90]), int(a[5].argmax()), repr(float(p[2, 0])), repr(float(p[2, 1])))
"#;
    let out = tiledio_test_support::python::run_python(
        script,
        &[npy.to_str().unwrap(), raw.to_str().unwrap(), pos.to_str().unwrap()],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = text.split_whitespace().collect();
    let frames: Vec<Vec<u16>> = (0..6).map(|i| sim.frame(i).unwrap().0).collect();
    let sum: u64 = frames.iter().flatten().map(|&v| v as u64).sum();
    let argmax = frames[5]
        .iter()
        .enumerate()
        .fold((0, 0), |b, (j, &v)| if v > b.1 { (j, v) } else { b })
        .0;
    let p = sim.positions()[2];
    let want = [
        sum.to_string(),
        frames[4][70 * 200 + 90].to_string(),
        argmax.to_string(),
        format!("{:?}", p.0),
        format!("{:?}", p.1),
    ];
    assert_eq!(got, want);
}

/// CPU seconds of this process so far (user + system, from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = f
        .get(11..13)
        .map_or(0.0, |v| v.iter().map(|t| t.parse::<f64>().unwrap_or(0.0)).sum());
    ticks / 100.0
}

/// The demo's size: `cargo test --release -p tiledio-ptycho --test simulate -- --ignored
/// --nocapture timing` (frames made in parallel, then written as `.npy`); wall and CPU times.
#[test]
#[ignore = "a timing, run on request in release"]
fn timing_100_frames_of_512_in_2048() {
    let mut o = SimulationOptions::new(100, (2048, 2048), 512);
    o.photons = 1e7;
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    let sim = Simulation::new(&o).unwrap();
    eprintln!(
        "setup (object {}², dark map): {:.2?}, {:.2} s CPU",
        sim.object().1,
        t.elapsed(),
        cpu_seconds() - c
    );
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    for i in 0..20 {
        let _ = sim.intensity(i).unwrap();
    }
    eprintln!(
        "20 |FFT|² (serial): {:.2?}, {:.2} s CPU",
        t.elapsed(),
        cpu_seconds() - c
    );
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    let mut f = vec![0u16; 2048 * 2048];
    for i in 0..20 {
        sim.frame_into(i, &mut f).unwrap();
    }
    eprintln!(
        "20 frames (serial): {:.2?}, {:.2} s CPU",
        t.elapsed(),
        cpu_seconds() - c
    );
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    let _ = sim.dark_frames(20).unwrap();
    eprintln!(
        "20 dark frames (parallel): {:.2?}, {:.2} s CPU",
        t.elapsed(),
        cpu_seconds() - c
    );
    let dir = tempfile::tempdir().unwrap();
    let (t, c) = (std::time::Instant::now(), cpu_seconds());
    let r = sim.write_npy(dir.path().join("f.npy"), &mut |_, _| {}).unwrap();
    eprintln!(
        "{} threads: 100 frames made and written ({} MB): {:.2?}, {:.2} s CPU; {} saturated",
        rayon::current_num_threads(),
        r.bytes >> 20,
        t.elapsed(),
        cpu_seconds() - c,
        r.saturated
    );
}
