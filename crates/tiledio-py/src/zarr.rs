//! Zarr arrays (`tiledio.ZarrArray`, `tiledio.ZarrWriter`) and conversions.

use crate::arrays::np_dtype;
use crate::device::{Device, Input, ReadDst, input, read_into};
use crate::errors::{Failure, Res, detach, guarded};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyEllipsis, PySlice, PyTuple};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tiledio::io::{Border, ElementType, Region, Source, Target};
use tiledio::zarr::ome::{Axis, MultiscaleWriter, OmeVersion, pyramid_level_count, write_reduced_levels};
use tiledio::zarr::{ArraySpec, Compression, WriteOptions, ZarrArray};

/// A Zarr array (v2 or v3; an OME-Zarr image's level) opened by :func:`tiledio.open_zarr`.
/// Indexing (``a[0:512, 1024:2048]``, ints, steps, ``...``) reads into NumPy; :meth:`read`
/// reads a box into NumPy or GPU memory.
#[pyclass(module = "tiledio", name = "ZarrArray", frozen)]
pub(crate) struct PyZarr {
    array: Arc<ZarrArray>,
    dtype: ElementType,
}

/// One axis of a selection: a box `[lo, hi)` and what to take from it.
enum Pick {
    /// One index (the axis is dropped).
    Index(u64),
    /// `count` elements from `first` by `step` (`first` relative to the box).
    Range { first: u64, step: i64, count: u64 },
}

/// Resolves a NumPy basic-indexing key against `shape`: per axis the box and the pick.
fn resolve(key: &Bound<'_, PyAny>, shape: &[u64]) -> PyResult<Vec<(u64, u64, Pick)>> {
    let items: Vec<Bound<'_, PyAny>> = match key.cast::<PyTuple>() {
        Ok(t) => t.iter().collect(),
        Err(_) => vec![key.clone()],
    };
    let ellipses = items.iter().filter(|i| i.is(PyEllipsis::get(key.py()))).count();
    if ellipses > 1 {
        return Err(PyIndexError::new_err(
            "an index can only have a single ellipsis ('...')",
        ));
    }
    let explicit = items.len() - ellipses;
    if explicit > shape.len() {
        return Err(PyIndexError::new_err(format!(
            "too many indices for an array of {} dimensions",
            shape.len()
        )));
    }
    let mut out = Vec::with_capacity(shape.len());
    let mut axis = 0usize;
    let full = |n: u64| {
        (
            0,
            n,
            Pick::Range {
                first: 0,
                step: 1,
                count: n,
            },
        )
    };
    for it in &items {
        if it.is(PyEllipsis::get(key.py())) {
            for _ in 0..shape.len() - explicit {
                out.push(full(shape[axis]));
                axis += 1;
            }
            continue;
        }
        let n = shape[axis];
        if let Ok(s) = it.cast::<PySlice>() {
            let len = isize::try_from(n).map_err(|_| PyIndexError::new_err("axis too long"))?;
            let ind = s.indices(len)?;
            let (start, step, count) = (ind.start as i64, ind.step as i64, ind.slicelength as u64);
            if count == 0 {
                out.push((
                    0,
                    0,
                    Pick::Range {
                        first: 0,
                        step: 1,
                        count: 0,
                    },
                ));
            } else if step > 0 {
                let lo = start as u64;
                let hi = lo + (count - 1) * step as u64 + 1;
                out.push((lo, hi, Pick::Range { first: 0, step, count }));
            } else {
                let hi = start as u64 + 1;
                let lo = (start + (count as i64 - 1) * step) as u64;
                out.push((
                    lo,
                    hi,
                    Pick::Range {
                        first: hi - 1 - lo,
                        step,
                        count,
                    },
                ));
            }
        } else if it.is_none() {
            return Err(PyIndexError::new_err(
                "numpy.newaxis (None) is not supported in Zarr indexing",
            ));
        } else if let Ok(i) = it.extract::<i64>() {
            let j = if i < 0 { i + n as i64 } else { i };
            if j < 0 || j as u64 >= n {
                return Err(PyIndexError::new_err(format!(
                    "index {i} is out of bounds for axis {axis} with size {n}"
                )));
            }
            out.push((j as u64, j as u64 + 1, Pick::Index(0)));
        } else {
            return Err(PyIndexError::new_err(
                "only integers, slices and '...' are valid Zarr indices (read a box, then index the NumPy array)",
            ));
        }
        axis += 1;
    }
    while axis < shape.len() {
        out.push(full(shape[axis]));
        axis += 1;
    }
    Ok(out)
}

impl PyZarr {
    fn open(py: Python<'_>, path: PathBuf, level: Option<usize>) -> PyResult<PyZarr> {
        let array = detach(py, move || open_array(&path, level))?;
        let dtype = array.data_type().ok_or_else(|| {
            Failure::io(format!(
                "{}: the array's data type is not one tiledio holds (uint8..uint64, int8..int64, float32, float64)",
                array.path().display()
            ))
        })?;
        Ok(PyZarr {
            array: Arc::new(array),
            dtype,
        })
    }

    /// Reads box `origin + shape` into `out` or a new array on `device`.
    fn read_box<'py>(
        &self,
        py: Python<'py>,
        origin: Vec<u64>,
        shape: Vec<u64>,
        device: Device,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = Arc::clone(&self.array);
        let region = Region::at(&origin, &shape);
        read_into(py, device, out, self.dtype, &shape, move |dst| match dst {
            ReadDst::Host(b) => Ok(a.read_region(&region, Border::Reject, Target::Host(b))?),
            ReadDst::Device(v) => Ok(a.read_region_into_view(&region, Border::Reject, v)?),
        })
    }
}

/// Opens an array, or the level `level` (default 0) of an OME-Zarr multiscale group.
fn open_array(path: &Path, level: Option<usize>) -> Res<ZarrArray> {
    match ZarrArray::open(path) {
        Ok(a) => {
            if let Some(l) = level.filter(|&l| l != 0) {
                return Err(Failure::argument(format!(
                    "{}: a Zarr array, not a multiscale group: it has no level {l}",
                    path.display()
                )));
            }
            Ok(a)
        }
        Err(e) => {
            let Ok(m) = tiledio::zarr::ome::read_multiscales(path) else {
                return Err(e.into());
            };
            let l = level.unwrap_or(0);
            let lv = m.levels.get(l).ok_or_else(|| {
                Failure::argument(format!(
                    "{}: level {l} does not exist (the multiscale image has {})",
                    path.display(),
                    m.levels.len()
                ))
            })?;
            Ok(ZarrArray::open(path.join(&lv.path))?)
        }
    }
}

#[pymethods]
impl PyZarr {
    /// Opens an array (as :func:`tiledio.open_zarr`).
    #[new]
    #[pyo3(signature = (path, level=None))]
    fn new(py: Python<'_>, path: PathBuf, level: Option<usize>) -> PyResult<Self> {
        PyZarr::open(py, path, level)
    }

    /// The array's folder.
    #[getter]
    fn path(&self) -> String {
        crate::arrays::path_str(self.array.path())
    }

    /// The shape.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.array.shape())
    }

    /// The element type (a ``numpy.dtype``).
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        np_dtype(py, self.dtype)
    }

    /// The chunk shape (the inner chunks when sharded).
    #[getter]
    fn chunks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.array.chunk_shape())
    }

    /// The shard shape, or None when the array is not sharded.
    #[getter]
    fn shards<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.array.shard_shape().map(|s| PyTuple::new(py, s)).transpose()
    }

    /// The number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.array.shape().len()
    }

    /// The number of elements.
    #[getter]
    fn size(&self) -> u64 {
        self.array.shape().iter().product()
    }

    /// 2 or 3.
    #[getter]
    fn zarr_format(&self) -> u8 {
        match self.array.version() {
            tiledio::zarr::ZarrVersion::V2 => 2,
            _ => 3,
        }
    }

    /// The array's user attributes (a new dict).
    #[getter]
    fn attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = tiledio::zarr::serde_json::to_string(self.array.attributes())
            .map_err(|e| Failure::io(format!("{}: attributes: {e}", self.array.path().display())))?;
        py.import("json")?.call_method1("loads", (s,))
    }

    /// NumPy basic indexing: ints, slices (any step), ``...``; returns a NumPy array (only the
    /// chunks the selection touches are read).
    fn __getitem__<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let sel = resolve(key, self.array.shape())?;
        let origin: Vec<u64> = sel.iter().map(|s| s.0).collect();
        let shape: Vec<u64> = sel.iter().map(|s| s.1 - s.0).collect();
        let boxed = self.read_box(py, origin, shape, Device::Cpu, None)?;
        let plain = sel
            .iter()
            .all(|(lo, hi, p)| matches!(p, Pick::Range { first: 0, step: 1, count } if *count == hi - lo));
        if plain {
            return Ok(boxed);
        }
        let mut post = Vec::with_capacity(sel.len());
        for (_, _, p) in &sel {
            post.push(match p {
                Pick::Index(i) => i.into_pyobject(py)?.into_any(),
                Pick::Range { count: 0, .. } => PySlice::new(py, 0, 0, 1).into_any(),
                Pick::Range { first, step, .. } => {
                    // slice(first, None, step): to the box's end (start, for negative steps)
                    py.import("builtins")?
                        .getattr("slice")?
                        .call1((*first, py.None(), *step))?
                }
            });
        }
        let key = PyTuple::new(py, post)?;
        let picked = boxed.get_item(key)?;
        // a copy (C order; a scalar for ints on every axis, as NumPy gives), so the result does
        // not keep the whole box alive
        picked.call_method0("copy")
    }

    /// Reads a box: ``region`` is a tuple of slices with step 1 (``numpy.s_[0:512, 256:768]``;
    /// ``...`` and open ends as in NumPy), or None for the whole array. Returns a NumPy array with
    /// ``device="cpu"``, a :class:`tiledio.CudaArray` with ``device="cuda"``; ``out`` is an array to
    /// fill instead (NumPy, or a C-contiguous GPU array with ``device="cuda"``).
    #[pyo3(signature = (region=None, device="cpu", out=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        region: Option<&Bound<'py, PyAny>>,
        device: &str,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let dev = Device::parse(device)?;
        let (origin, shape) = match region {
            None => (vec![0; self.array.shape().len()], self.array.shape().to_vec()),
            Some(r) => {
                let sel = resolve(r, self.array.shape())?;
                if sel.iter().any(|(_, _, p)| !matches!(p, Pick::Range { step: 1, .. })) {
                    return Err(PyValueError::new_err(
                        "read(): the region is slices with step 1 (index with [] for ints and steps)",
                    ));
                }
                (
                    sel.iter().map(|s| s.0).collect(),
                    sel.iter().map(|s| s.1 - s.0).collect(),
                )
            }
        };
        self.read_box(py, origin, shape, dev, out)
    }

    /// ``numpy.asarray(z)`` reads the whole array.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if copy == Some(false) {
            return Err(PyValueError::new_err(
                "a Zarr array cannot be seen as NumPy without reading (a copy)",
            ));
        }
        let a = self.read_box(
            py,
            vec![0; self.array.shape().len()],
            self.array.shape().to_vec(),
            Device::Cpu,
            None,
        )?;
        match dtype {
            Some(d) if !d.is_none() => a.call_method1("astype", (d,)),
            _ => Ok(a),
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        self.array
            .shape()
            .first()
            .map(|&n| n as usize)
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d array"))
    }

    fn __repr__(&self) -> String {
        format!(
            "tiledio.ZarrArray({:?}, shape={}, dtype={}, chunks={})",
            self.array.path().display().to_string(),
            crate::arrays::tuple_repr(self.array.shape()),
            self.dtype,
            crate::arrays::tuple_repr(self.array.chunk_shape())
        )
    }
}

/// Chunk (or shard) edges from an int (every axis, clipped to the axis) or a tuple (per axis).
fn edges(obj: &Bound<'_, PyAny>, shape: &[u64], what: &str) -> PyResult<Vec<u64>> {
    let v: Vec<u64> = if let Ok(n) = obj.extract::<u64>() {
        shape.iter().map(|&s| n.min(s.max(1))).collect()
    } else {
        let v: Vec<u64> = obj
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{what}: expected an int or a tuple of ints")))?;
        if v.len() != shape.len() {
            return Err(PyValueError::new_err(format!(
                "{what} {v:?}: {} values for an array of {} dimensions",
                v.len(),
                shape.len()
            )));
        }
        v
    };
    if v.contains(&0) {
        return Err(PyValueError::new_err(format!("{what} {v:?}: edges must be at least 1")));
    }
    Ok(v)
}

/// How a [`ZarrWriter`] stores the caller's array.
struct StoredLayout {
    /// The stored shape (`(C, H, W)` for an OME image with channels).
    shape: Vec<u64>,
    /// The stored chunk shape.
    chunk: Vec<u64>,
    /// The stored shard shape.
    shard: Option<Vec<u64>>,
    /// Whether the caller's `(H, W, C)` is stored `(C, H, W)`.
    chw: bool,
    /// OME dimension names.
    names: Option<Vec<&'static str>>,
}

fn stored_layout(
    shape: &[u64],
    chunks: &Bound<'_, PyAny>,
    shard: Option<&Bound<'_, PyAny>>,
    ome: bool,
) -> PyResult<StoredLayout> {
    if !ome {
        return Ok(StoredLayout {
            shape: shape.to_vec(),
            chunk: edges(chunks, shape, "chunks")?,
            shard: shard.map(|s| edges(s, shape, "shard")).transpose()?,
            chw: false,
            names: None,
        });
    }
    let (yx, c) = match *shape {
        [h, w] => ([h, w], None),
        [h, w, c] => ([h, w], Some(c)),
        _ => {
            return Err(PyValueError::new_err(format!(
                "ome=True: shape {shape:?} is not (H, W) or (H, W, C)"
            )));
        }
    };
    let ce = edges(chunks, &yx, "chunks")?;
    let se = shard.map(|s| edges(s, &yx, "shard")).transpose()?;
    Ok(match c {
        None => StoredLayout {
            shape: yx.to_vec(),
            chunk: ce,
            shard: se,
            chw: false,
            names: Some(vec!["y", "x"]),
        },
        Some(c) => StoredLayout {
            shape: vec![c, yx[0], yx[1]],
            chunk: vec![1, ce[0], ce[1]],
            shard: se.map(|s| vec![1, s[0], s[1]]),
            chw: true,
            names: Some(vec!["c", "y", "x"]),
        },
    })
}

/// What a [`ZarrWriter`] writes into.
struct WriterState {
    array: ZarrArray,
    group: Option<MultiscaleWriter>,
    /// The stored array's specification (the reduced levels of an OME image reuse it).
    spec: ArraySpec,
}

/// A new Zarr array (or OME-Zarr image) written region by region, then finished: nothing is
/// at ``path`` until :meth:`finish` (an unfinished writer leaves nothing behind).
/// :func:`tiledio.write_zarr` uses it; regions must cover whole chunks (shards when sharded).
#[pyclass(module = "tiledio", name = "ZarrWriter", frozen)]
pub(crate) struct ZarrWriter {
    state: RwLock<Option<WriterState>>,
    path: PathBuf,
    /// The shape as the caller sees it (`(H, W, C)` for an OME image with channels).
    shape: Vec<u64>,
    dtype: ElementType,
    /// An OME image with channels: the caller's `(H, W, C)` is stored `(C, H, W)`.
    chw: bool,
    opts: WriteOptions,
    /// OME images: the number of levels asked for (`None`: until a side fits in one chunk).
    levels: Option<usize>,
}

impl ZarrWriter {
    fn with_state<T>(&self, f: impl FnOnce(&WriterState) -> Res<T>) -> Res<T> {
        let g = self
            .state
            .read()
            .map_err(|_| Failure::io("the writer failed in another thread"))?;
        match g.as_ref() {
            Some(s) => f(s),
            None => Err(Failure::argument(format!(
                "{}: the writer is finished (or failed)",
                self.path.display()
            ))),
        }
    }
}

#[pymethods]
impl ZarrWriter {
    /// Starts a new array at ``path`` (which must not exist, or be an empty folder): ``shape``,
    /// ``dtype``, ``chunks`` (an int for every axis, or a tuple), ``shard`` (None, an int or a
    /// tuple: Zarr v3 sharding), ``codec`` (``"none"``, ``"zstd[:level]"``, ``"gzip[:level]"``,
    /// ``"blosc[:level]"``, ``"blosc-zstd[:level]"``). With ``ome=True`` an OME-Zarr 0.5 image:
    /// ``shape`` is ``(H, W)`` (axes y, x) or ``(H, W, C)`` (stored as c, y, x), ``chunks`` and
    /// ``shard`` apply to y and x. :meth:`finish` then adds the reduced levels ``"1"``,
    /// ``"2"``... (2× area averages, integers rounded half up) until a side fits in one chunk,
    /// or ``levels`` levels in all.
    #[new]
    #[pyo3(signature = (path, shape, dtype, chunks=None, shard=None, codec="zstd", ome=false, levels=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        shape: Vec<u64>,
        dtype: &Bound<'_, PyAny>,
        chunks: Option<&Bound<'_, PyAny>>,
        shard: Option<&Bound<'_, PyAny>>,
        codec: &str,
        ome: bool,
        levels: Option<usize>,
    ) -> PyResult<Self> {
        let t = crate::arrays::element_type_from(py, dtype)?;
        match levels {
            Some(_) if !ome => {
                return Err(PyValueError::new_err("levels applies to OME-Zarr images (ome=True)"));
            }
            Some(n) if !(1..=40).contains(&n) => {
                return Err(PyValueError::new_err(format!("levels={n}: 1 to 40")));
            }
            _ => {}
        }
        if shape.is_empty() {
            return Err(PyValueError::new_err("a Zarr array needs at least one dimension"));
        }
        let compression = Compression::parse(codec).map_err(Failure::from)?;
        let default = 512u64.into_pyobject(py)?.into_any();
        let chunks = chunks.unwrap_or(&default);
        let l = stored_layout(&shape, chunks, shard, ome)?;
        let mut spec = ArraySpec::new(&l.shape, &l.chunk, t).with_compression(compression);
        if let Some(s) = &l.shard {
            spec = spec.with_shards(s);
        }
        if let Some(n) = &l.names {
            spec = spec.with_dimension_names(n);
        }
        let chw = l.chw;
        let opts = WriteOptions::from_env().map_err(Failure::from)?;
        let p = path.clone();
        let state = detach(py, move || {
            if ome {
                let g = MultiscaleWriter::create(&p, OmeVersion::V05)?;
                let array = g.create_level("0", &spec)?;
                Ok(WriterState {
                    array,
                    group: Some(g),
                    spec,
                })
            } else {
                Ok(WriterState {
                    array: ZarrArray::create(&p, &spec)?,
                    group: None,
                    spec,
                })
            }
        })?;
        Ok(ZarrWriter {
            state: RwLock::new(Some(state)),
            path,
            shape,
            dtype: t,
            chw,
            opts,
            levels,
        })
    }

    /// The shape being written.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.shape)
    }

    /// The element type.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        np_dtype(py, self.dtype)
    }

    /// The chunk shape of the stored array (``(1, cy, cx)`` for an OME image with channels).
    #[getter]
    fn chunks(&self) -> PyResult<Vec<u64>> {
        Ok(self.with_state(|s| Ok(s.array.chunk_shape().to_vec()))?)
    }

    /// The storage unit (shard, or chunk) of each axis of ``shape``: regions written must
    /// start at multiples of it (and end at one, or at the array's end).
    #[getter]
    fn unit(&self) -> PyResult<Vec<u64>> {
        Ok(self.with_state(|s| {
            let u = s.array.shard_shape().unwrap_or(s.array.chunk_shape()).to_vec();
            Ok(if self.chw { vec![u[1], u[2], u[0]] } else { u })
        })?)
    }

    /// Writes ``array`` (NumPy, or any GPU array) at ``origin`` (a tuple, one int per axis of
    /// ``shape``); the region must cover whole storage units (see :attr:`unit`). Threads may
    /// write different regions at once.
    fn write(&self, py: Python<'_>, origin: Vec<u64>, array: &Bound<'_, PyAny>) -> PyResult<()> {
        let src = input(array, "array")?;
        if src.dtype() != self.dtype {
            return Err(PyValueError::new_err(format!(
                "array of {} given to a writer of {}",
                src.dtype(),
                self.dtype
            )));
        }
        let shape = src.shape().to_vec();
        if origin.len() != self.shape.len() || shape.len() != self.shape.len() {
            return Err(PyValueError::new_err(format!(
                "origin {origin:?} and array shape {shape:?} do not match the array's {} dimensions",
                self.shape.len()
            )));
        }
        let es = self.dtype.size();
        let chw = self.chw;
        let full_c = self.shape.last().copied().unwrap_or(0);
        if chw && (origin[2] != 0 || shape[2] != full_c) {
            return Err(PyValueError::new_err(format!(
                "an OME image's regions hold every channel: origin {origin:?}, shape {shape:?}"
            )));
        }
        let (o, s) = if chw {
            (vec![0, origin[0], origin[1]], vec![shape[2], shape[0], shape[1]])
        } else {
            (origin.clone(), shape.clone())
        };
        let opts = self.opts.clone();
        match src {
            Input::Host(h) => {
                let bytes = h.bytes;
                detach(py, move || {
                    // SAFETY: `h.array` is held by this frame; only read here.
                    let b = unsafe { bytes.get() };
                    self.with_state(|st| {
                        if chw {
                            let n = (shape[0] * shape[1]) as usize;
                            let mut t = tiledio::io::try_alloc_zeroed(b.len(), "a region in channel order")?;
                            tiledio::kernels::hwc_to_chw(b, &mut t, n, shape[2] as usize, es)?;
                            st.array.write_region(&o, &s, Source::Host(&t), &opts)?;
                        } else {
                            st.array.write_region(&o, &s, Source::Host(b), &opts)?;
                        }
                        Ok(())
                    })
                })?;
                drop(h);
            }
            Input::Device(d) => {
                let p = d.ptr();
                detach(py, move || {
                    // SAFETY: `d` keeps the array alive for this call; only read here.
                    let buf = unsafe { p.contiguous("array")? };
                    self.with_state(|st| {
                        if chw {
                            let n = (shape[0] * shape[1]) as usize;
                            let mut t = tiledio::io::gpu::DeviceBuffer::new(buf.len())?;
                            tiledio::kernels::hwc_to_chw_device(&buf, &mut t, n, shape[2] as usize, es)?;
                            st.array.write_region(&o, &s, Source::Device(&t), &opts)?;
                        } else {
                            st.array.write_region(&o, &s, Source::Device(&buf), &opts)?;
                        }
                        Ok(())
                    })
                })?;
                drop(d);
            }
        }
        Ok(())
    }

    /// Writes the metadata last and moves the array (or image group) into place at ``path``;
    /// returns that path. Units never written read as the fill value (0). An OME image gets
    /// its reduced levels here, each read back from the level above a band at a time.
    fn finish(&self, py: Python<'_>) -> PyResult<String> {
        let chw = self.chw;
        let want = self.levels;
        let opts = self.opts.clone();
        detach(py, move || {
            let st = self
                .state
                .write()
                .map_err(|_| Failure::io("the writer failed in another thread"))?
                .take()
                .ok_or_else(|| Failure::argument(format!("{}: the writer is already finished", self.path.display())))?;
            let a = st.array.finish()?;
            match st.group {
                None => Ok(crate::arrays::path_str(a.path())),
                Some(g) => {
                    let axes = if chw {
                        vec![Axis::channel("c"), Axis::space("y", None), Axis::space("x", None)]
                    } else {
                        vec![Axis::space("y", None), Axis::space("x", None)]
                    };
                    let r = st.spec.shape.len();
                    let (h, w) = (st.spec.shape[r - 2], st.spec.shape[r - 1]);
                    let (cy, cx) = (st.spec.chunk_shape[r - 2], st.spec.chunk_shape[r - 1]);
                    let n = want.unwrap_or_else(|| pyramid_level_count(h, w, (cy, cx)));
                    let levels = write_reduced_levels(&g, &a, &st.spec, n, &opts)?;
                    let p = g.finish(None, axes, levels)?;
                    Ok(crate::arrays::path_str(&p))
                }
            }
        })
    }

    /// Drops what was written (nothing is left at ``path``).
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        detach(py, move || {
            let st = self
                .state
                .write()
                .map_err(|_| Failure::io("the writer failed in another thread"))?
                .take();
            drop(st);
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "tiledio.ZarrWriter({:?}, shape={}, dtype={})",
            self.path.display().to_string(),
            crate::arrays::tuple_repr(&self.shape),
            self.dtype
        )
    }
}

/// Opens a Zarr array or an OME-Zarr image's level (see ``tiledio.open_zarr``).
#[pyfunction]
#[pyo3(signature = (path, level=None))]
pub(crate) fn open_zarr(py: Python<'_>, path: PathBuf, level: Option<usize>) -> PyResult<PyZarr> {
    PyZarr::open(py, path, level)
}

/// Converts between TIFF pyramids and (OME-)Zarr (see ``tiledio.convert``).
#[pyfunction]
#[pyo3(signature = (src, dst, *, levels=None, tile=None, compression=None, quality=None, chunk=None, shard=None, codec=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn convert<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    levels: Option<usize>,
    tile: Option<u32>,
    compression: Option<&str>,
    quality: Option<u8>,
    chunk: Option<u64>,
    shard: Option<u64>,
    codec: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = tiledio::convert::ConvertOptions {
        levels,
        tile,
        compression: compression.map(str::parse).transpose().map_err(Failure::from)?,
        quality,
        chunk,
        shard,
        codec: codec.map(Compression::parse).transpose().map_err(Failure::from)?,
    };
    let r = detach(py, move || {
        Ok(tiledio::convert::convert(&src, &dst, &opts, &|_, _| {})?)
    })?;
    guarded(|| {
        let d = PyDict::new(py);
        d.set_item(
            "format",
            match r.format {
                tiledio::convert::Format::Tiff => "tiff",
                tiledio::convert::Format::Zarr => "zarr",
            },
        )?;
        d.set_item("levels", r.levels.clone())?;
        d.set_item("channels", r.channels)?;
        d.set_item("dtype", r.element_type.name())?;
        Ok(d)
    })
}
