//! Writing a simulation as HDF5: one file (`/entry/data/data`), or a DECTRIS Eiger-like master
//! with its data files, through [`crate::Hdf5Writer`] and [`crate::write_hdf5_links`].

use super::Simulation;
use super::write::Written;
use crate::error::{Result, usage};
use crate::{Hdf5ExternalLink, Hdf5Layout, Hdf5Writer, write_hdf5_links};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tiledio_io::ElementType;

/// The dataset every file gets, as DECTRIS data files have it.
const DATASET: &str = "/entry/data/data";

/// Data files of an Eiger-like master: the open one, and those finished.
struct DataFiles {
    current: Option<Hdf5Writer>,
    done: Vec<PathBuf>,
    bytes: u64,
}

impl Simulation {
    /// Writes every frame as an HDF5 file with the dataset `/entry/data/data` `(N, H, W)` of
    /// `uint16` stored as `layout` (made in parallel, chunks compressed in parallel, written
    /// batch by batch under a temporary name, renamed when complete); `progress(done, total)`
    /// after each batch. Reads back with [`crate::Hdf5Store`] and h5py (hdf5plugin for the
    /// filters).
    ///
    /// ```
    /// use tiledio_ptycho::simulate::{Simulation, SimulationOptions};
    /// use tiledio_ptycho::{FrameStore, Hdf5Layout, Hdf5Store};
    /// # let dir = tempfile::tempdir()?; let path = dir.path().join("sim.h5");
    /// let sim = Simulation::new(&SimulationOptions::new(3, (64, 64), 32))?;
    /// sim.write_hdf5(&path, Hdf5Layout::BitshuffleLz4 { block: 0 }, &mut |_, _| {})?;
    /// let s = Hdf5Store::open(&path, "/entry/data/data")?;
    /// assert_eq!(s.read_frames_to_vec(2..3, None)?,
    ///     sim.frame(2)?.0.iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<u8>>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Hdf5Writer::create`] and [`Hdf5Writer::push_frames`]: nothing is left at the path
    /// on error.
    pub fn write_hdf5(
        &self,
        path: impl AsRef<Path>,
        layout: Hdf5Layout,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Written> {
        let writer = Mutex::new(Hdf5Writer::create(
            path,
            DATASET,
            self.opts.frame_shape,
            ElementType::U16,
            layout,
        )?);
        let saturated = self.stream_frames(false, progress, &|_, _, bytes| {
            writer.lock().unwrap_or_else(|e| e.into_inner()).push_frames(bytes)
        })?;
        let bytes = writer.into_inner().unwrap_or_else(|e| e.into_inner()).finish()?;
        Ok(Written {
            frames: self.opts.frames,
            saturated,
            bytes,
        })
    }

    /// Writes every frame as a DECTRIS Eiger-like file set: data files
    /// `SCAN_data_000001.h5`, `SCAN_data_000002.h5`, … beside `master` (which must be named
    /// `SCAN_master.h5`), each with `/entry/data/data` of up to `frames_per_file` frames of
    /// `uint16` stored as `layout` (DECTRIS writes `BitshuffleLz4 { block: 0 }`), then the master
    /// with the external links `/entry/data/data_000001`, … to them (written last: a master
    /// exists only when all its data files do). [`crate::Hdf5Store::open_eiger_master`] and
    /// h5py read the master as the whole stack. `bytes` in the result is the sum over the
    /// files.
    ///
    /// ```
    /// use tiledio_ptycho::simulate::{Simulation, SimulationOptions};
    /// use tiledio_ptycho::{FrameStore, Hdf5Layout, Hdf5Store};
    /// # let dir = tempfile::tempdir()?; let master = dir.path().join("scan_master.h5");
    /// let sim = Simulation::new(&SimulationOptions::new(5, (64, 64), 32))?;
    /// sim.write_eiger(&master, 2, Hdf5Layout::BitshuffleLz4 { block: 0 }, &mut |_, _| {})?;
    /// assert!(dir.path().join("scan_data_000003.h5").exists());
    /// let s = Hdf5Store::open_eiger_master(&master)?;
    /// assert_eq!((s.frames(), s.datasets()), (5, 3));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`crate::PtychoError::Usage`] for a master not named `*_master.h5` or `frames_per_file`
    /// of 0; otherwise as [`Simulation::write_hdf5`] and [`write_hdf5_links`]. On error the data
    /// files this call finished are removed and no master is written.
    pub fn write_eiger(
        &self,
        master: impl AsRef<Path>,
        frames_per_file: u64,
        layout: Hdf5Layout,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Written> {
        let master = master.as_ref();
        let stem = master
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix("_master.h5"))
            .filter(|s| !s.is_empty())
            .ok_or_else(|| usage(format!("{}: an Eiger master is named SCAN_master.h5", master.display())))?;
        if frames_per_file == 0 {
            return Err(usage(format!("{}: 0 frames per data file", master.display())));
        }
        let dir = master.parent().unwrap_or(Path::new(""));
        let name = |i: u64| format!("{stem}_data_{i:06}.h5");
        let (h, w) = self.opts.frame_shape;
        let fb = h * w * 2;
        let files = Mutex::new(DataFiles {
            current: None,
            done: Vec::new(),
            bytes: 0,
        });
        let result = (|| -> Result<(u64, u64)> {
            let saturated = self.stream_frames(false, progress, &|_, _, mut bytes| {
                let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
                while !bytes.is_empty() {
                    let mut wr = match f.current.take() {
                        Some(wr) => wr,
                        None => {
                            let i = f.done.len() as u64 + 1;
                            Hdf5Writer::create(dir.join(name(i)), DATASET, (h, w), ElementType::U16, layout)?
                        }
                    };
                    let room = (frames_per_file - wr.frames()) as usize;
                    let take = bytes.len().min(room.saturating_mul(fb));
                    wr.push_frames(&bytes[..take])?;
                    bytes = &bytes[take..];
                    if wr.frames() == frames_per_file {
                        let path = wr.path().to_path_buf();
                        f.bytes += wr.finish()?;
                        f.done.push(path);
                    } else {
                        f.current = Some(wr);
                    }
                }
                Ok(())
            })?;
            let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(wr) = f.current.take() {
                let path = wr.path().to_path_buf();
                f.bytes += wr.finish()?;
                f.done.push(path);
            }
            let links: Vec<Hdf5ExternalLink> = (1..=f.done.len() as u64)
                .map(|i| Hdf5ExternalLink {
                    name: format!("data_{i:06}"),
                    file: name(i),
                    path: DATASET.into(),
                })
                .collect();
            let m = write_hdf5_links(master, "/entry/data", &links)?;
            Ok((saturated, f.bytes + m))
        })();
        match result {
            Ok((saturated, bytes)) => Ok(Written {
                frames: self.opts.frames,
                saturated,
                bytes,
            }),
            Err(e) => {
                let f = files.into_inner().unwrap_or_else(|e| e.into_inner());
                for p in &f.done {
                    let _ = std::fs::remove_file(p);
                }
                Err(e)
            }
        }
    }
}
