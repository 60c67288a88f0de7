//! What every subcommand shares: where the work runs (`--device`), how file bytes reach GPU
//! memory (`--backend`), `--quiet`, and progress bars (on a terminal only).

use anyhow::bail;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Sets `--quiet` for the run (called once, from `main`).
pub(crate) fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// Whether `--quiet` was given: no progress bars, no reports; errors still print.
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// `--device`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeviceArg {
    /// The GPU if there is one, else the CPU (saying why).
    #[default]
    Auto,
    /// The GPU, or an error.
    Gpu,
    /// The CPU.
    Cpu,
}

/// `--backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendArg {
    /// Chosen per file: cuFile where GPUDirect Storage really works, else staged (the reason
    /// is reported).
    Auto,
    /// NVIDIA cuFile (GPUDirect Storage), even in its compatibility mode.
    Cufile,
    /// Parallel reads into pinned staging buffers, overlapped with copies to the GPU.
    Staged,
    /// The file mapped, registered with the driver and copied to the GPU.
    Mmap,
    /// Parallel reads into host memory: the work runs on the CPU.
    Host,
}

impl BackendArg {
    /// The `TILEDIO_BACKEND` value of a GPU backend; `None` for `host`.
    pub(crate) fn env_value(self) -> Option<&'static str> {
        match self {
            BackendArg::Auto => Some("auto"),
            BackendArg::Cufile => Some("cufile"),
            BackendArg::Staged => Some("staged"),
            BackendArg::Mmap => Some("mmap"),
            BackendArg::Host => None,
        }
    }
}

/// `--device` and `--backend`, for subcommands that read files and compute.
#[derive(Args, Clone, Debug)]
pub(crate) struct Placement {
    /// Where the work runs: auto (the GPU if there is one, else the CPU, saying why), gpu, cpu.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub(crate) device: DeviceArg,
    /// How file bytes reach GPU memory: auto (chosen per file, the reason reported), cufile,
    /// staged, mmap; host reads into host memory, so the work runs on the CPU. Sets
    /// TILEDIO_BACKEND for this run [default: auto, or TILEDIO_BACKEND].
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub(crate) backend: Option<BackendArg>,
}

impl Placement {
    /// The device once `--backend` is taken into account (`host` means the CPU).
    ///
    /// # Errors
    /// `--backend host` with `--device gpu`; a GPU backend with `--device cpu`.
    pub(crate) fn device(&self) -> anyhow::Result<DeviceArg> {
        match (self.backend, self.device) {
            (Some(BackendArg::Host), DeviceArg::Gpu) => {
                bail!(
                    "--backend host reads into host memory, so the work runs on the CPU: drop --device gpu or choose another backend"
                )
            }
            (Some(BackendArg::Host), _) => Ok(DeviceArg::Cpu),
            (Some(b), DeviceArg::Cpu) if b != BackendArg::Auto => bail!(
                "--backend {} moves file bytes to GPU memory; with --device cpu nothing goes there: drop one of them",
                b.to_possible_value().map_or("?".into(), |v| v.get_name().to_string())
            ),
            (_, d) => Ok(d),
        }
    }

    /// The pipeline's device.
    pub(crate) fn pipeline_device(&self) -> anyhow::Result<tiledio::pipeline::Device> {
        Ok(match self.device()? {
            DeviceArg::Auto => tiledio::pipeline::Device::Auto,
            DeviceArg::Gpu => tiledio::pipeline::Device::Gpu,
            DeviceArg::Cpu => tiledio::pipeline::Device::Cpu,
        })
    }

    /// The ptychography preprocessor's device.
    pub(crate) fn ptycho_device(&self) -> anyhow::Result<tiledio::ptycho::Device> {
        Ok(ptycho_device(self.device()?))
    }

    /// Why the CPU, when `--backend host` chose it.
    pub(crate) fn cpu_note(&self) -> Option<&'static str> {
        (self.backend == Some(BackendArg::Host)).then_some("--backend host")
    }
}

/// The ptychography preprocessor's device for `d`.
pub(crate) fn ptycho_device(d: DeviceArg) -> tiledio::ptycho::Device {
    match d {
        DeviceArg::Auto => tiledio::ptycho::Device::Auto,
        DeviceArg::Gpu => tiledio::ptycho::Device::Gpu,
        DeviceArg::Cpu => tiledio::ptycho::Device::Cpu,
    }
}

/// Whether bars are drawn: a terminal on stderr and no `--quiet`.
fn drawn() -> bool {
    !quiet() && std::io::stderr().is_terminal()
}

/// A progress bar of `done/total` steps with `message`, on stderr, drawn only on a terminal
/// without `--quiet`.
pub(crate) fn bar(message: &str) -> ProgressBar {
    // cleared when dropped too, so an error's line is not left behind a half bar
    let pb = ProgressBar::new(0).with_finish(ProgressFinish::AndClear);
    if !drawn() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(message.to_string());
    pb
}

/// A spinner with `message` for work without a count, drawn as [`bar`] is.
pub(crate) fn spinner(message: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner().with_finish(ProgressFinish::AndClear);
    if drawn() {
        pb.enable_steady_tick(Duration::from_millis(120));
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(message.to_string());
    pb
}

/// A `progress(done, total)` callback moving `pb`.
pub(crate) fn progress(pb: &ProgressBar) -> impl FnMut(u64, u64) + '_ {
    |done, total| {
        pb.set_length(total);
        pb.set_position(done);
    }
}
