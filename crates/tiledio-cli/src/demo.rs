//! `tiledio demo`: progress bars around [`tiledio::demo::run_demo`] and a print of what it
//! returns (what ran where and how fast, the backend and why, the files and previews written).

use crate::opts::{self, Placement};
use std::path::PathBuf;
use tiledio::demo::{DemoOptions, DemoReport, run_demo};

/// The command line's demo options (`tiledio demo`).
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// The output folder: made if missing; an existing one must be empty or an earlier
    /// demo's (holding tiledio-demo.txt), whose files are replaced.
    #[arg(long, default_value = "demo-out", value_name = "DIR")]
    out: PathBuf,
    /// Side of the synthetic slide in pixels.
    #[arg(long, default_value_t = 2048, value_name = "PIXELS")]
    side: usize,
    /// Frames of the simulated ptychography scan.
    #[arg(long, default_value_t = 64, value_name = "N")]
    frames: u64,
    /// Side of the simulated detector frames (a multiple of 4): the pattern and the crop are
    /// half of it, binned by 2.
    #[arg(long, default_value_t = 512, value_name = "PIXELS")]
    frame_side: usize,
    /// Size of the backend tour's generated file in MiB (0: no tour).
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    size_mib: usize,
    /// Folder for the tour's generated file (default: a hidden folder in --out); it is
    /// removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) placement: Placement,
}

pub(crate) fn run(a: DemoArgs) -> anyhow::Result<()> {
    let tour_bytes = a
        .size_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| anyhow::anyhow!("--size-mib {} is too large", a.size_mib))?;
    let opts = DemoOptions {
        out: a.out,
        side: a.side,
        frames: a.frames,
        frame_side: a.frame_side,
        device: a.placement.pipeline_device()?,
        tour_bytes,
        tour_dir: a.dir,
        ..DemoOptions::default()
    };
    let pb = opts::bar("");
    let mut stage = String::new();
    let r = run_demo(&opts, &mut |what, done, total| {
        if what != stage {
            stage = what.to_string();
            pb.set_message(stage.clone());
            pb.set_position(0);
        }
        pb.set_length(total);
        pb.set_position(done);
    });
    pb.finish_and_clear();
    let r = r?;
    if !opts::quiet() {
        print(&r, a.placement.cpu_note());
    }
    Ok(())
}

fn print(r: &DemoReport, note: Option<&str>) {
    println!(
        "tiledio demo: generated data through tiledio into {}/\n",
        r.out.display()
    );
    match &r.gpu {
        Ok(name) if r.cpu_reason.is_none() => println!("GPU: {name}: the kernels run there"),
        Ok(name) => println!(
            "GPU: {name}, not used: {}",
            note.unwrap_or(r.cpu_reason.as_deref().unwrap_or("the CPU was asked for"))
        ),
        Err(why) => println!("GPU: none ({why}): the kernels run on the CPU"),
    }
    println!("slide reads: {}", r.slide_backend);

    if let Some(tour) = &r.tour {
        println!(
            "\nbackend tour: {} tile-sized ranges ({} MiB) of a generated file, shuffled, page cache warm",
            tour.ranges,
            tour.rows.first().map_or(0, |row| row.bytes >> 20)
        );
        println!(
            "  {:<18} {:>8} {:>10} {:>8}  backend used, and why the others were not",
            "target", "GB/s", "ms", "verified"
        );
        for row in &tour.rows {
            println!(
                "  {:<18} {:>8.2} {:>10.1} {:>8}  {}",
                row.target,
                row.gbps(),
                row.seconds * 1e3,
                row.verified,
                row.backend
            );
        }
        if let Err(why) = &tour.gpu {
            let why = if why.is_empty() {
                note.unwrap_or("the CPU was asked for")
            } else {
                why.as_str()
            };
            println!("  {:<18} {:>8} {:>10} {:>8}  {why}", "GPU memory", "-", "-", "-");
        }
    }

    println!("\n  {:<40} {:<6} {:>9}  detail", "step", "device", "seconds");
    for s in &r.steps {
        let device = match s.on_gpu {
            Some(true) => "GPU",
            _ => "CPU",
        };
        println!("  {:<40} {device:<6} {:>9.3}  {}", s.what, s.seconds, s.detail);
    }
    let width = r
        .outputs
        .iter()
        .chain(&r.previews)
        .map(|f| f.path.display().to_string().len())
        .max()
        .unwrap_or(0);
    println!("\noutputs:");
    for f in &r.outputs {
        println!("  {:<width$}  {}: {}", f.path.display(), f.what, f.detail);
    }
    println!("previews:");
    for f in &r.previews {
        println!("  {:<width$}  {} ({})", f.path.display(), f.what, f.detail);
    }
    println!("\ndone in {:.1} s", r.seconds);
}
