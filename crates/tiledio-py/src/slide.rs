//! Whole-slide images: [`PySlide`] (`tiledio.Slide`), its associated images and batch reads.

use crate::arrays::{array_from_vec, host_out, new_array_for_overwrite, np_dtype, pair};
use crate::device::{Device, device_out, wrap};
use crate::errors::{Failure, Res, detach, guarded};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use tiledio::io::gpu::{PinnedBuffer, Stream};
use tiledio::io::{Border, DeviceArray, ElementType, Region};
use tiledio::tiff::Slide;

/// A whole-slide image (tiled TIFF, BigTIFF, SVS, OME-TIFF) opened by :func:`tiledio.open_slide`:
/// OpenSlide's attributes and ``read_region``, into NumPy arrays or GPU memory.
#[pyclass(module = "tiledio", name = "Slide", frozen)]
pub(crate) struct PySlide {
    slide: Arc<Slide>,
}

/// A new C-order GPU array whose bytes are not set, for a read that writes every byte (a
/// slide's regions: 0 outside the image). `DeviceArray::zeros` would add a pass over the whole
/// array, and a wait for it, before the read (as the Rust API's `read_level_device` does not).
fn device_array_for_overwrite(dtype: ElementType, shape: &[u64]) -> Res<DeviceArray> {
    let n = tiledio::io::ArrayLayout::contiguous(dtype, shape)?.nbytes();
    let n = usize::try_from(n).map_err(|_| Failure::argument(format!("an array of shape {shape:?} is too large")))?;
    Ok(DeviceArray::from_buffer(
        tiledio::io::gpu::DeviceBuffer::new(n)?,
        dtype,
        shape,
    )?)
}

/// Checks a `(width, height)` size.
fn size_of(obj: &Bound<'_, PyAny>) -> PyResult<(u64, u64)> {
    let (w, h) = pair::<i64>(obj, "size")?;
    if w < 0 || h < 0 {
        return Err(PyValueError::new_err(format!("size ({w}, {h}): negative")));
    }
    Ok((w as u64, h as u64))
}

/// [`PySlide::read`] with the Python arguments of ``read_region`` and ``read_level_region``
/// checked: a ``(x, y)`` location, a ``(width, height)`` size, ``device``.
#[allow(clippy::too_many_arguments)]
fn read_checked<'py>(
    slide: &PySlide,
    py: Python<'py>,
    location: &Bound<'py, PyAny>,
    level: usize,
    size: &Bound<'py, PyAny>,
    level_coords: bool,
    device: &str,
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let loc = pair::<i64>(location, "location")?;
    let size = size_of(size)?;
    slide.read(py, loc, level, size, level_coords, Device::parse(device)?, out)
}

impl PySlide {
    fn level_dims(&self, level: usize) -> PyResult<(u64, u64)> {
        self.slide.level_dimensions().get(level).copied().ok_or_else(|| {
            PyValueError::new_err(format!(
                "{}: level {level} does not exist (the slide has {})",
                self.slide.path().display(),
                self.slide.level_count()
            ))
        })
    }

    fn pixel_shape(&self, w: u64, h: u64) -> [u64; 3] {
        [h, w, self.slide.channels() as u64]
    }

    /// Reads `(x, y)` in `level`'s own pixels (`level_coords`) or level-0 pixels, `(w, h)` of
    /// `level`, into `out` or a new array on `device`.
    #[allow(clippy::too_many_arguments)]
    fn read<'py>(
        &self,
        py: Python<'py>,
        location: (i64, i64),
        level: usize,
        size: (u64, u64),
        level_coords: bool,
        device: Device,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.level_dims(level)?;
        let (w, h) = size;
        let shape = self.pixel_shape(w, h);
        let dtype = self.slide.sample_type();
        let slide = Arc::clone(&self.slide);
        let region = Region::new(&[location.1, location.0], &[h, w]);
        match device {
            Device::Cpu => {
                // every byte of the region is written (0 outside the image): no zeroing first
                let (a, bytes) = match out {
                    Some(o) => (o.clone(), host_out(o, dtype, &shape)?),
                    None => new_array_for_overwrite(py, dtype, &shape)?,
                };
                detach(py, move || {
                    // SAFETY: `a` is alive (held by this frame) and written only here.
                    let dst = unsafe { bytes.get_mut() };
                    if level_coords {
                        slide.read_level_region_into(level, &region, Border::Fill, dst)?;
                    } else {
                        slide.read_region_into(location, level, size, dst)?;
                    }
                    Ok(())
                })?;
                Ok(a)
            }
            Device::Cuda => match out {
                Some(o) => {
                    let d = device_out(o, dtype, &shape)?;
                    let p = d.ptr();
                    detach(py, move || {
                        // SAFETY: `d` keeps the caller's array alive for this call.
                        let mut v = unsafe { p.view()? };
                        if level_coords {
                            slide.read_level_region_device_into(level, &region, Border::Fill, &mut v)?;
                        } else {
                            slide.read_region_device_into(location, level, size, &mut v)?;
                        }
                        Ok(())
                    })?;
                    drop(d);
                    Ok(o.clone())
                }
                None => {
                    let arr = detach(py, move || {
                        let mut a = device_array_for_overwrite(dtype, &shape)?;
                        if level_coords {
                            slide.read_level_region_device_into(level, &region, Border::Fill, &mut a.view_mut())?;
                        } else {
                            slide.read_region_device_into(location, level, size, &mut a.view_mut())?;
                        }
                        Ok(a)
                    })?;
                    wrap(py, arr)
                }
            },
        }
    }
}

#[pymethods]
impl PySlide {
    /// Opens a slide (as :func:`tiledio.open_slide`).
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let slide = detach(py, move || Ok(Slide::open(&path)?))?;
        Ok(PySlide { slide: Arc::new(slide) })
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        crate::arrays::path_str(self.slide.path())
    }

    /// The number of levels (resolutions), 1 for a flat image.
    #[getter]
    fn level_count(&self) -> usize {
        self.slide.level_count()
    }

    /// ``(width, height)`` of each level, largest first (OpenSlide's order).
    #[getter]
    fn level_dimensions(&self) -> Vec<(u64, u64)> {
        self.slide.level_dimensions()
    }

    /// ``(width, height)`` of level 0.
    #[getter]
    fn dimensions(&self) -> (u64, u64) {
        self.slide.level_dimensions()[0]
    }

    /// The downsample factor of each level relative to level 0 (``1.0`` first).
    #[getter]
    fn level_downsamples(&self) -> Vec<f64> {
        self.slide.level_downsamples()
    }

    /// ``(width, height)`` of each level's tiles (a strip's rows for stripped levels).
    #[getter]
    fn level_tile_sizes(&self) -> Vec<(u64, u64)> {
        self.slide.level_tile_sizes()
    }

    /// Samples per pixel: 3 for RGB, 4 for RGBA, 1 for grey.
    #[getter]
    fn channels(&self) -> usize {
        self.slide.channels()
    }

    /// The element type of the pixels (a ``numpy.dtype``).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        np_dtype(py, self.slide.sample_type())
    }

    /// The slide's metadata with OpenSlide's names (``openslide.vendor``, ``openslide.mpp-x``,
    /// ``openslide.level[0].width``, ``tiff.ImageDescription``, ``aperio.*``...): a new dict.
    #[getter]
    fn properties<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.slide.properties() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The associated images (``label``, ``macro``, ``thumbnail``) as a read-only mapping of
    /// name to ``(height, width, channels)`` NumPy array, each read when it is looked up.
    #[getter]
    fn associated_images(&self) -> AssociatedImages {
        AssociatedImages {
            slide: Arc::clone(&self.slide),
        }
    }

    /// The level to read for a wanted downsample factor, as OpenSlide picks it: the largest
    /// level whose downsample does not exceed it.
    fn get_best_level_for_downsample(&self, downsample: f64) -> PyResult<usize> {
        if !downsample.is_finite() {
            return Err(PyValueError::new_err(format!(
                "downsample {downsample} is not a number"
            )));
        }
        Ok(self.slide.get_best_level_for_downsample(downsample))
    }

    /// Reads a region, as OpenSlide's ``read_region``: ``location`` is ``(x, y)`` of the top-left
    /// corner in level-0 pixels (may be negative), ``size`` is ``(width, height)`` in pixels of
    /// ``level``. Pixels outside the image are 0. Returns a ``(height, width, channels)`` array
    /// of the slide's dtype: NumPy with ``device="cpu"``, a :class:`tiledio.CudaArray` with
    /// ``device="cuda"``. ``out`` is an array to fill instead (NumPy, or with ``device="cuda"``
    /// a C-contiguous CuPy/PyTorch/JAX array of that shape and dtype); it is returned.
    ///
    /// >>> region = slide.read_region((1000, 2000), 0, (512, 512))
    /// >>> region.shape
    /// (512, 512, 3)
    #[pyo3(signature = (location, level, size, device="cpu", out=None))]
    fn read_region<'py>(
        &self,
        py: Python<'py>,
        location: &Bound<'py, PyAny>,
        level: usize,
        size: &Bound<'py, PyAny>,
        device: &str,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        read_checked(self, py, location, level, size, false, device, out)
    }

    /// Reads a region of ``level`` in that level's own pixel coordinates: ``location`` is
    /// ``(x, y)`` and ``size`` ``(width, height)``, both in pixels of ``level`` (no rounding
    /// through level-0 coordinates). Pixels outside the level are 0. Otherwise as
    /// :meth:`read_region`.
    #[pyo3(signature = (level, location, size, device="cpu", out=None))]
    fn read_level_region<'py>(
        &self,
        py: Python<'py>,
        level: usize,
        location: &Bound<'py, PyAny>,
        size: &Bound<'py, PyAny>,
        device: &str,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        read_checked(self, py, location, level, size, true, device, out)
    }

    /// Reads a whole level: a ``(height, width, channels)`` array (see :meth:`read_region`).
    #[pyo3(signature = (level=0, device="cpu", out=None))]
    fn read_level<'py>(
        &self,
        py: Python<'py>,
        level: usize,
        device: &str,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (w, h) = self.level_dims(level)?;
        let dev = Device::parse(device)?;
        self.read(py, (0, 0), level, (w, h), true, dev, out)
    }

    /// Reads many regions of one size, in batches, as cuCIM's batch ``read_region`` does:
    /// returns an iterator of ``(n, height, width, channels)`` arrays, ``n = batch_size`` (the
    /// last batch may be smaller), in the order of ``locations`` (``(x, y)`` level-0 pairs, a
    /// list or an ``(N, 2)`` array). With ``num_workers > 0`` that many threads read batches
    /// ahead of the consumer (at most about ``2 * num_workers`` batches held); with 0 each batch
    /// is read when it is asked for.
    ///
    /// >>> for batch in slide.read_regions([(0, 0), (512, 0)], 0, (256, 256), batch_size=2):
    /// ...     batch.shape
    /// (2, 256, 256, 3)
    #[pyo3(signature = (locations, level, size, device="cpu", batch_size=1, num_workers=0))]
    #[allow(clippy::too_many_arguments)]
    fn read_regions(
        &self,
        locations: &Bound<'_, PyAny>,
        level: usize,
        size: &Bound<'_, PyAny>,
        device: &str,
        batch_size: usize,
        num_workers: usize,
    ) -> PyResult<RegionBatches> {
        self.level_dims(level)?;
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let locs = locations
            .try_iter()?
            .map(|p| pair::<i64>(&p?, "locations"))
            .collect::<PyResult<Vec<_>>>()?;
        let size = size_of(size)?;
        let device = Device::parse(device)?;
        let job = Arc::new(BatchJob {
            slide: Arc::clone(&self.slide),
            locations: locs,
            level,
            size,
            device,
            batch_size,
            staging: Mutex::new(Vec::new()),
        });
        let count = job.locations.len().div_ceil(batch_size);
        let workers = (num_workers > 0 && count > 0).then(|| Workers::start(&job, num_workers.min(count)));
        Ok(RegionBatches {
            state: Mutex::new(BatchState {
                job,
                next: 0,
                count,
                workers,
            }),
        })
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(&self, _a: Bound<'_, PyAny>, _b: Bound<'_, PyAny>, _c: Bound<'_, PyAny>) {}

    fn __repr__(&self) -> String {
        format!("tiledio.Slide({:?})", self.slide.path().display().to_string())
    }
}

/// The associated images of a slide (``label``, ``macro``, ``thumbnail``): a read-only mapping
/// of name to ``(height, width, channels)`` NumPy array, read on lookup.
#[pyclass(module = "tiledio", name = "AssociatedImages", frozen, mapping)]
pub(crate) struct AssociatedImages {
    slide: Arc<Slide>,
}

impl AssociatedImages {
    fn names(&self) -> Vec<String> {
        self.slide.associated_images().into_iter().map(str::to_string).collect()
    }

    fn read<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        if self.slide.associated_image_dimensions(name).is_none() {
            return Err(PyKeyError::new_err(name.to_string()));
        }
        let slide = Arc::clone(&self.slide);
        let n = name.to_string();
        let img = detach(py, move || Ok(slide.read_associated_image(&n)?))?;
        let (h, w, c) = img.shape();
        let t = img.dtype();
        array_from_vec(py, t, &[h as u64, w as u64, c as u64], img.into_bytes())
    }
}

#[pymethods]
impl AssociatedImages {
    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.read(py, name)
    }

    fn __len__(&self) -> usize {
        self.slide.associated_images().len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.slide.associated_image_dimensions(name).is_some()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyList::new(py, self.names())?.try_iter()?.into_any())
    }

    /// The names.
    fn keys(&self) -> Vec<String> {
        self.names()
    }

    /// The images, read now.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.names().iter().map(|n| self.read(py, n)).collect()
    }

    /// ``(name, image)`` pairs, read now.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        self.names()
            .into_iter()
            .map(|n| self.read(py, &n).map(|a| (n, a)))
            .collect()
    }

    /// The image ``name``, or ``default`` when there is none.
    #[pyo3(signature = (name, default=None))]
    fn get<'py>(&self, py: Python<'py>, name: &str, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        if self.__contains__(name) {
            self.read(py, name)
        } else {
            Ok(default.unwrap_or_else(|| py.None().into_bound(py)))
        }
    }

    /// ``(width, height)`` of each image, without reading them.
    fn dimensions(&self) -> BTreeMap<String, (u64, u64)> {
        self.names()
            .into_iter()
            .filter_map(|n| self.slide.associated_image_dimensions(&n).map(|d| (n, d)))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("tiledio.AssociatedImages({:?})", self.names())
    }
}

/// What a batch read reads.
struct BatchJob {
    slide: Arc<Slide>,
    locations: Vec<(i64, i64)>,
    level: usize,
    size: (u64, u64),
    device: Device,
    batch_size: usize,
    /// Page-locked buffers the GPU batches are read into, kept between batches.
    staging: Mutex<Vec<Staging>>,
}

/// A page-locked host buffer and the stream that copies it to the GPU.
struct Staging {
    host: PinnedBuffer,
    stream: Stream,
}

/// One batch, read.
enum Batch {
    Host(Vec<u8>, [u64; 4], ElementType),
    Device(DeviceArray),
}

impl BatchJob {
    fn read(&self, index: usize) -> Res<Batch> {
        let lo = index * self.batch_size;
        let hi = (lo + self.batch_size).min(self.locations.len());
        let locs = &self.locations[lo..hi];
        let (w, h) = self.size;
        let c = self.slide.channels() as u64;
        let t = self.slide.sample_type();
        let shape = [locs.len() as u64, h, w, c];
        let each = h
            .checked_mul(w)
            .and_then(|v| v.checked_mul(c))
            .and_then(|v| v.checked_mul(t.size() as u64))
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| Failure::argument(format!("regions of {w}x{h} pixels are too large")))?;
        let total = each
            .checked_mul(locs.len())
            .ok_or_else(|| Failure::argument("the batch is too large"))?;
        match self.device {
            Device::Cpu => {
                let mut buf = tiledio::io::try_alloc_zeroed(total, "a batch of regions")?;
                for (i, &loc) in locs.iter().enumerate() {
                    self.slide
                        .read_region_into(loc, self.level, self.size, &mut buf[i * each..(i + 1) * each])?;
                }
                Ok(Batch::Host(buf, shape, t))
            }
            Device::Cuda => {
                // The batch is read on this thread into page-locked memory (a small window of
                // uncompressed tiles is copied straight out of the file's mapping), then moved
                // to the GPU in one copy: per region, a GPU read would cost a transfer, a
                // placement kernel and a wait each.
                let mut staging = self.take_staging(total)?;
                for (i, &loc) in locs.iter().enumerate() {
                    self.slide.read_region_into(
                        loc,
                        self.level,
                        self.size,
                        &mut staging.host[i * each..(i + 1) * each],
                    )?;
                }
                let mut a = device_array_for_overwrite(t, &shape)?;
                // SAFETY: `staging.host` is neither written nor freed until the stream has run
                // the copy: it is synchronised before the staging goes back to the pool.
                unsafe {
                    a.buffer_mut()
                        .copy_from_host_async(0, &staging.host[..total], &staging.stream)?
                };
                staging.stream.synchronize()?;
                self.give_back(staging);
                Ok(Batch::Device(a))
            }
        }
    }

    /// A page-locked buffer of at least `len` bytes, with a stream for its copy: one the
    /// batch's workers used before, or a new one (page-locking is slow: done once a worker).
    fn take_staging(&self, len: usize) -> Res<Staging> {
        let kept = self.staging.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match kept {
            Some(s) if s.host.len() >= len => Ok(s),
            _ => Ok(Staging {
                host: PinnedBuffer::new(len)?,
                stream: Stream::new()?,
            }),
        }
    }

    /// Keeps `staging` for the next batch.
    fn give_back(&self, staging: Staging) {
        self.staging.lock().unwrap_or_else(|p| p.into_inner()).push(staging);
    }

    /// [`BatchJob::read`] with a panic turned into an error (on a worker thread).
    fn read_caught(&self, index: usize) -> Res<Batch> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read(index))).unwrap_or_else(|_| {
            Err(Failure::io(
                "internal error (a bug in tiledio, please report it): a Rust panic in a batch reader",
            ))
        })
    }
}

/// Threads reading batches ahead.
struct Workers {
    rx: Receiver<(usize, Res<Batch>)>,
    pending: BTreeMap<usize, Res<Batch>>,
    cancel: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(job: &Arc<BatchJob>, n: usize) -> Workers {
        let count = job.locations.len().div_ceil(job.batch_size);
        let (tx, rx) = sync_channel(n);
        let next = Arc::new(AtomicUsize::new(0));
        let cancel = Arc::new(AtomicBool::new(false));
        let handles = (0..n)
            .map(|_| {
                let (job, tx, next, cancel) = (Arc::clone(job), tx.clone(), Arc::clone(&next), Arc::clone(&cancel));
                std::thread::spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count || cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        if tx.send((i, job.read_caught(i))).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Workers {
            rx,
            pending: BTreeMap::new(),
            cancel,
            handles,
        }
    }

    fn take(&mut self, i: usize) -> Res<Batch> {
        loop {
            if let Some(b) = self.pending.remove(&i) {
                return b;
            }
            match self.rx.recv() {
                Ok((j, b)) => {
                    self.pending.insert(j, b);
                }
                Err(_) => {
                    return Err(Failure::io(
                        "internal error (a bug in tiledio): the batch readers stopped early",
                    ));
                }
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        // workers never need the GIL: drain what they send until each has ended
        while !self.handles.iter().all(|h| h.is_finished()) {
            while self.rx.try_recv().is_ok() {}
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

struct BatchState {
    job: Arc<BatchJob>,
    next: usize,
    count: usize,
    workers: Option<Workers>,
}

/// The iterator :meth:`Slide.read_regions` returns: ``(n, height, width, channels)`` batches.
#[pyclass(module = "tiledio", name = "RegionBatches", frozen)]
pub(crate) struct RegionBatches {
    state: Mutex<BatchState>,
}

#[pymethods]
impl RegionBatches {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut st = self
            .state
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("this batch iterator is in use by another thread"))?;
        if st.next >= st.count {
            st.workers = None;
            return Ok(None);
        }
        let i = st.next;
        st.next += 1;
        let st = &mut *st;
        let batch = match st.workers.as_mut() {
            Some(w) => detach(py, move || w.take(i))?,
            None => {
                let job = Arc::clone(&st.job);
                detach(py, move || job.read(i))?
            }
        };
        guarded(|| match batch {
            Batch::Host(v, shape, t) => array_from_vec(py, t, &shape, v).map(Some),
            Batch::Device(a) => wrap(py, a).map(Some),
        })
    }

    /// The number of batches.
    fn __len__(&self) -> PyResult<usize> {
        let st = self
            .state
            .try_lock()
            .map_err(|_| PyRuntimeError::new_err("this batch iterator is in use by another thread"))?;
        Ok(st.count)
    }
}

/// Opens a slide.
pub(crate) fn open_slide(py: Python<'_>, path: PathBuf) -> PyResult<PySlide> {
    PySlide::new(py, path)
}
