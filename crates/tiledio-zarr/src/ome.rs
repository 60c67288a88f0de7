//! OME-Zarr 0.4 and 0.5 multiscale images: a group whose `multiscales` metadata lists one array
//! per resolution level, with axes and scale transforms.
//!
//! 0.5 is Zarr v3 (`zarr.json` with `attributes.ome`); 0.4 is Zarr v2 (`.zgroup` and `.zattrs`
//! with `multiscales`). The group metadata is written last ([`MultiscaleWriter::finish`]), so
//! an interrupted conversion is not a valid image.

use crate::array::{ZarrArray, read_json, sync_fs, write_small};
use crate::error::{Result, ZarrError};
use crate::spec::ZarrDataType;
use crate::spec::{ArraySpec, ZarrVersion};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// OME-Zarr (NGFF) version.
///
/// ```
/// assert_eq!(tiledio_zarr::ome::OmeVersion::V05.zarr_version(), tiledio_zarr::ZarrVersion::V3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OmeVersion {
    /// 0.4 (Zarr v2).
    V04,
    /// 0.5 (Zarr v3), the default.
    #[default]
    V05,
}

impl OmeVersion {
    /// The Zarr version its arrays use.
    pub fn zarr_version(self) -> ZarrVersion {
        match self {
            OmeVersion::V04 => ZarrVersion::V2,
            OmeVersion::V05 => ZarrVersion::V3,
        }
    }
}

/// One axis.
///
/// ```
/// let a = tiledio_zarr::ome::Axis::space("y", Some("micrometer"));
/// assert_eq!(a.kind, "space");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axis {
    /// Name (`"t"`, `"c"`, `"z"`, `"y"`, `"x"`).
    pub name: String,
    /// `"time"`, `"channel"` or `"space"`.
    pub kind: String,
    /// Unit (e.g. `"micrometer"`), for space and time axes.
    pub unit: Option<String>,
}

impl Axis {
    /// A space axis.
    pub fn space(name: &str, unit: Option<&str>) -> Axis {
        Axis {
            name: name.into(),
            kind: "space".into(),
            unit: unit.map(Into::into),
        }
    }

    /// A channel axis.
    pub fn channel(name: &str) -> Axis {
        Axis {
            name: name.into(),
            kind: "channel".into(),
            unit: None,
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"name": self.name, "type": self.kind});
        if let Some(u) = &self.unit {
            v["unit"] = json!(u);
        }
        v
    }
}

/// One resolution level: its array path and its scale per axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Array path inside the group (`"0"`, `"1"`, ...).
    pub path: String,
    /// Physical size of one element along each axis (e.g. MPP × downsample for y and x).
    pub scale: Vec<f64>,
}

/// The `multiscales` entry of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Multiscales {
    /// OME-Zarr version.
    pub version: OmeVersion,
    /// Image name.
    pub name: Option<String>,
    /// Axes, in array dimension order.
    pub axes: Vec<Axis>,
    /// Levels, finest first.
    pub levels: Vec<Level>,
}

impl Multiscales {
    /// The `multiscales` list as JSON (one image).
    ///
    /// ```
    /// use tiledio_zarr::ome::*;
    /// let m = Multiscales { version: OmeVersion::V05, name: Some("slide".into()),
    ///     axes: vec![Axis::channel("c"), Axis::space("y", Some("micrometer")), Axis::space("x", Some("micrometer"))],
    ///     levels: vec![Level { path: "0".into(), scale: vec![1.0, 0.25, 0.25] }] };
    /// let j = m.to_json();
    /// assert_eq!(j[0]["datasets"][0]["coordinateTransformations"][0]["scale"][1], 0.25);
    /// validate(&m.group_attributes())?;
    /// # Ok::<(), tiledio_zarr::ZarrError>(())
    /// ```
    pub fn to_json(&self) -> Value {
        let datasets: Vec<Value> = self
            .levels
            .iter()
            .map(|l| json!({"path": l.path, "coordinateTransformations": [{"type": "scale", "scale": l.scale}]}))
            .collect();
        let mut m = json!({"axes": self.axes.iter().map(Axis::to_json).collect::<Vec<_>>(), "datasets": datasets});
        if self.version == OmeVersion::V04 {
            m["version"] = json!("0.4");
        }
        if let Some(n) = &self.name {
            m["name"] = json!(n);
        }
        json!([m])
    }

    /// The group attributes holding this: `{"ome": {"version": "0.5", "multiscales": ...}}` for
    /// 0.5, `{"multiscales": ...}` for 0.4.
    pub fn group_attributes(&self) -> Value {
        match self.version {
            OmeVersion::V05 => json!({"ome": {"version": "0.5", "multiscales": self.to_json()}}),
            OmeVersion::V04 => json!({"multiscales": self.to_json()}),
        }
    }
}

fn invalid(message: impl Into<String>) -> ZarrError {
    ZarrError::Metadata {
        path: PathBuf::from("<multiscales>"),
        message: message.into(),
    }
}

/// A structural check of OME-Zarr group attributes against the 0.4 / 0.5 specification's rules
/// for `multiscales` (the rules of its JSON schema, written out): version, 2–5 axes with unique
/// names, at most one channel and no more than 3 space axes, time before channel before space,
/// at least one dataset, each with exactly one `scale` transform (optionally followed by one
/// `translation`) of the axes' length.
///
/// # Errors
/// [`ZarrError::Metadata`] naming the broken rule.
pub fn validate(attrs: &Value) -> Result<()> {
    let (version, ms) = if let Some(ome) = attrs.get("ome") {
        (ome["version"].as_str().unwrap_or(""), &ome["multiscales"])
    } else {
        (
            attrs["multiscales"][0]["version"].as_str().unwrap_or(""),
            &attrs["multiscales"],
        )
    };
    if version != "0.4" && version != "0.5" {
        return Err(invalid(format!("version {version:?}: 0.4 or 0.5 expected")));
    }
    let list = ms
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| invalid("multiscales must be a non-empty list"))?;
    for m in list {
        let axes = m["axes"].as_array().ok_or_else(|| invalid("axes missing"))?;
        if !(2..=5).contains(&axes.len()) {
            return Err(invalid(format!("{} axes: 2 to 5 expected", axes.len())));
        }
        let mut names = std::collections::HashSet::new();
        let mut order = Vec::new();
        for a in axes {
            let n = a["name"].as_str().ok_or_else(|| invalid("axis without a name"))?;
            if !names.insert(n) {
                return Err(invalid(format!("duplicate axis {n}")));
            }
            let t = a["type"].as_str().unwrap_or("");
            order.push(match t {
                "time" => 0,
                "channel" => 1,
                "space" => 2,
                _ => 3,
            });
        }
        let spaces = order.iter().filter(|&&o| o == 2).count();
        if !(2..=3).contains(&spaces) {
            return Err(invalid(format!("{spaces} space axes: 2 or 3 expected")));
        }
        if order.iter().filter(|&&o| o == 1).count() > 1 || order.iter().filter(|&&o| o == 0).count() > 1 {
            return Err(invalid("more than one time or channel axis"));
        }
        if order.windows(2).any(|w| w[0] > w[1] && w[0] != 3 && w[1] != 3) {
            return Err(invalid("axes must be ordered time, channel, space"));
        }
        let ds = m["datasets"]
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| invalid("datasets must be a non-empty list"))?;
        for d in ds {
            let Some(p) = d["path"].as_str() else {
                return Err(invalid("dataset without a path"));
            };
            check_dataset_path(p)?;
            let t = d["coordinateTransformations"]
                .as_array()
                .ok_or_else(|| invalid("dataset without coordinateTransformations"))?;
            let ok_kinds =
                matches!(t.len(), 1 | 2) && t[0]["type"] == "scale" && (t.len() == 1 || t[1]["type"] == "translation");
            if !ok_kinds {
                return Err(invalid(
                    "transformations must be one scale, then optionally one translation",
                ));
            }
            for tr in t {
                let key = if tr["type"] == "scale" { "scale" } else { "translation" };
                let v = tr[key]
                    .as_array()
                    .ok_or_else(|| invalid(format!("{key} values missing")))?;
                if v.len() != axes.len() || v.iter().any(|x| !x.is_number()) {
                    return Err(invalid(format!(
                        "{key} has {} numbers for {} axes",
                        v.len(),
                        axes.len()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Checks a `multiscales` dataset path names something strictly inside the group, as
/// zarr-python requires: relative, not empty, without `.`, `..` or empty components.
fn check_dataset_path(p: &str) -> Result<()> {
    let bad = |why: &str| invalid(format!("OME multiscales dataset path {p:?}: {why}"));
    if p.is_empty() {
        return Err(bad("empty"));
    }
    if p.starts_with('/') || p.starts_with('\\') {
        return Err(bad("absolute; it must be relative to the group"));
    }
    if p.split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\\') || c.contains('\0'))
    {
        return Err(bad("must stay inside the group (no \"..\", \".\" or empty components)"));
    }
    Ok(())
}

/// The folder of dataset `p` of the group at `root`, checked to lie inside the group after
/// symlinks are resolved (when it exists).
fn dataset_dir(root: &Path, p: &str) -> Result<PathBuf> {
    check_dataset_path(p).map_err(|e| relabel(root, e))?;
    let dir = root.join(p);
    if let (Ok(r), Ok(d)) = (root.canonicalize(), dir.canonicalize())
        && !d.starts_with(&r)
    {
        return Err(ZarrError::Metadata {
            path: root.into(),
            message: format!(
                "OME multiscales dataset path {p:?} resolves to {}, outside the group",
                d.display()
            ),
        });
    }
    Ok(dir)
}

/// An error of [`validate`] (path `<multiscales>`) reported against the group folder.
fn relabel(root: &Path, e: ZarrError) -> ZarrError {
    match e {
        ZarrError::Metadata { message, .. } => ZarrError::Metadata {
            path: root.into(),
            message,
        },
        e => e,
    }
}

/// Writes an OME-Zarr multiscale image: create arrays per level with
/// [`MultiscaleWriter::create_level`], write and finish them, then [`MultiscaleWriter::finish`]
/// writes the group metadata, last.
///
/// ```
/// use tiledio_zarr::{ArraySpec, DataType, ome::*};
/// # let dir = tempfile::tempdir()?;
/// let w = MultiscaleWriter::create(dir.path().join("img.zarr"), OmeVersion::V05)?;
/// let a = w.create_level("0", &ArraySpec::new(&[3, 8, 8], &[1, 4, 4], DataType::U8))?;
/// a.write_all(&vec![5u8; 192], &Default::default())?;
/// a.finish()?;
/// let axes = vec![Axis::channel("c"), Axis::space("y", Some("micrometer")), Axis::space("x", Some("micrometer"))];
/// w.finish(Some("img"), axes, vec![Level { path: "0".into(), scale: vec![1.0, 0.5, 0.5] }])?;
/// let m = read_multiscales(dir.path().join("img.zarr"))?;
/// assert_eq!(m.levels[0].scale, [1.0, 0.5, 0.5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MultiscaleWriter {
    /// The temporary group folder, renamed into place by [`MultiscaleWriter::finish`].
    out: tiledio_io::OutputDir,
    version: OmeVersion,
    durability: crate::array::Durability,
}

impl MultiscaleWriter {
    /// Starts a new group at `root` (which must not exist, or be an empty folder), written in a
    /// hidden temporary folder beside it and renamed into place by
    /// [`MultiscaleWriter::finish`]: an interrupted conversion leaves nothing at `root`, and of
    /// two concurrent writers one wins, the other gets an error.
    ///
    /// # Errors
    /// [`ZarrError::AlreadyExists`], [`ZarrError::Io`] for a path that cannot be an output.
    pub fn create(root: impl AsRef<Path>, version: OmeVersion) -> Result<MultiscaleWriter> {
        let out = crate::array::new_output_dir(root.as_ref())?;
        Ok(MultiscaleWriter {
            out,
            version,
            durability: crate::array::Durability::AtEnd,
        })
    }

    /// Sets when the group is flushed to storage: [`Durability::AtEnd`](crate::Durability)
    /// (the default) flushes the file system once before the group metadata is written;
    /// [`Durability::None`](crate::Durability) leaves it to the page cache (scratch outputs and
    /// benchmarks that measure the writes, not the disk). Per-chunk flushing is the levels'
    /// own [`WriteOptions`](crate::WriteOptions).
    ///
    /// ```
    /// use tiledio_zarr::Durability;
    /// use tiledio_zarr::ome::{MultiscaleWriter, OmeVersion};
    /// # let dir = tempfile::tempdir()?;
    /// let w = MultiscaleWriter::create(dir.path().join("x.zarr"), OmeVersion::V05)?.with_durability(Durability::None);
    /// # drop(w);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_durability(mut self, durability: crate::array::Durability) -> MultiscaleWriter {
        self.durability = durability;
        self
    }

    /// The folder being written (the temporary one until [`MultiscaleWriter::finish`]).
    pub fn root(&self) -> &Path {
        self.out.path()
    }

    /// Creates the array of one level (its Zarr version forced to the OME version's).
    ///
    /// # Errors
    /// As [`ZarrArray::create`].
    pub fn create_level(&self, path: &str, spec: &ArraySpec) -> Result<ZarrArray> {
        let spec = spec.clone().with_version(self.version.zarr_version());
        ZarrArray::create_in_place(self.root().join(path), &spec)
    }

    /// Validates and writes the group metadata (flushed to storage unless
    /// [`MultiscaleWriter::with_durability`] said otherwise): the image is complete.
    ///
    /// # Errors
    /// [`ZarrError::Metadata`] when the multiscales are invalid ([`validate`]); write errors.
    pub fn finish(self, name: Option<&str>, axes: Vec<Axis>, levels: Vec<Level>) -> Result<PathBuf> {
        let m = Multiscales {
            version: self.version,
            name: name.map(Into::into),
            axes,
            levels,
        };
        let attrs = m.group_attributes();
        validate(&attrs)?;
        let root = self.out.path().to_path_buf();
        for l in &m.levels {
            if !(root.join(&l.path).join("zarr.json").is_file() || root.join(&l.path).join(".zarray").is_file()) {
                return Err(ZarrError::NotFound {
                    path: self.out.target().join(&l.path),
                });
            }
        }
        let sync = self.durability != crate::array::Durability::None;
        if sync {
            sync_fs(&root)?;
        }
        let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
        match self.version {
            OmeVersion::V05 => {
                let g = json!({"zarr_format": 3, "node_type": "group", "attributes": attrs});
                write_small(&root.join("zarr.json"), &pretty(&g), sync)?;
            }
            OmeVersion::V04 => {
                write_small(&root.join(".zattrs"), &pretty(&attrs), sync)?;
                write_small(&root.join(".zgroup"), &pretty(&json!({"zarr_format": 2})), sync)?;
            }
        }
        Ok(self.out.commit()?)
    }
}

/// Reads the `multiscales` of an OME-Zarr group (0.4 or 0.5; the first image).
///
/// # Errors
/// [`ZarrError::NotFound`] when the folder is not a group; [`ZarrError::Metadata`] when it has
/// no valid multiscales.
pub fn read_multiscales(root: impl AsRef<Path>) -> Result<Multiscales> {
    let root = root.as_ref();
    let attrs = if let Some(g) = read_json(&root.join("zarr.json"))? {
        if g["node_type"] != "group" {
            return Err(ZarrError::Metadata {
                path: root.into(),
                message: "not a group".into(),
            });
        }
        g["attributes"].clone()
    } else if root.join(".zgroup").is_file() {
        read_json(&root.join(".zattrs"))?.unwrap_or_default()
    } else {
        return Err(ZarrError::NotFound { path: root.into() });
    };
    validate(&attrs).map_err(|e| relabel(root, e))?;
    let (version, m) = match attrs.get("ome") {
        Some(o) => (OmeVersion::V05, o["multiscales"][0].clone()),
        None => (OmeVersion::V04, attrs["multiscales"][0].clone()),
    };
    let axes = m["axes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| Axis {
            name: a["name"].as_str().unwrap_or("").into(),
            kind: a["type"].as_str().unwrap_or("").into(),
            unit: a["unit"].as_str().map(Into::into),
        })
        .collect();
    let datasets = || m["datasets"].as_array().into_iter().flatten();
    for d in datasets() {
        dataset_dir(root, d["path"].as_str().unwrap_or(""))?;
    }
    let levels = datasets()
        .map(|d| Level {
            path: d["path"].as_str().unwrap_or("").into(),
            scale: d["coordinateTransformations"][0]["scale"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect(),
        })
        .collect();
    Ok(Multiscales {
        version,
        name: m["name"].as_str().map(Into::into),
        axes,
        levels,
    })
}

/// A pyramid of interleaved images (a whole-slide image's levels), read a band of rows at a
/// time: what [`write_pyramid`] converts.
pub trait PyramidSource {
    /// The element type (8-bit unless said otherwise).
    fn data_type(&self) -> crate::DataType {
        crate::DataType::U8
    }
    /// Number of levels, finest first.
    fn level_count(&self) -> usize;
    /// `(width, height)` of a level.
    fn level_dimensions(&self, level: usize) -> (u64, u64);
    /// Samples per pixel (3 for RGB).
    fn channels(&self) -> u64;
    /// Rows `y0..y0 + rows` of a level, full width, as `rows × width × channels` elements
    /// (native byte order).
    ///
    /// # Errors
    /// Whatever the source reports, as text.
    fn read_band(&self, level: usize, y0: u64, rows: u64) -> std::result::Result<Vec<u8>, String>;
}

/// Options of [`write_pyramid`].
#[derive(Debug, Clone)]
pub struct PyramidOptions {
    /// Chunk edge (y and x).
    pub chunk: u64,
    /// Shard edge (y and x), v3 only.
    pub shard: Option<u64>,
    /// Chunk compression.
    pub compression: crate::Compression,
    /// OME-Zarr version.
    pub version: OmeVersion,
    /// Microns per pixel at level 0 (scale 1.0 when unknown).
    pub mpp: Option<f64>,
    /// Write options (durability, I/O settings).
    pub write: crate::WriteOptions,
}

/// Converts a pyramid to an OME-Zarr multiscale image with axes `c, y, x` (channel first, as the
/// specification orders them), one array per level (`"0"`, `"1"`, ...), scale = MPP × the
/// level's downsample. Memory is bounded by one band of shard (or chunk) rows. `progress` is
/// called with the bytes done and the total after each band. The group metadata is written
/// last: an interrupted conversion is not a valid image.
///
/// ```
/// use tiledio_zarr::ome::*;
/// struct Flat;
/// impl PyramidSource for Flat {
///     fn level_count(&self) -> usize { 2 }
///     fn level_dimensions(&self, l: usize) -> (u64, u64) { (40 >> l, 30 >> l) }
///     fn channels(&self) -> u64 { 3 }
///     fn read_band(&self, l: usize, _y0: u64, rows: u64) -> Result<Vec<u8>, String> {
///         Ok(vec![7u8; (rows * (40 >> l) * 3) as usize])
///     }
/// }
/// # let dir = tempfile::tempdir()?;
/// let opts = PyramidOptions { chunk: 16, shard: None, compression: Default::default(),
///     version: OmeVersion::V05, mpp: Some(0.5), write: Default::default() };
/// write_pyramid(&Flat, dir.path().join("p.zarr"), &opts, &mut |_, _| {})?;
/// let m = read_multiscales(dir.path().join("p.zarr"))?;
/// assert_eq!(m.levels[1].scale, [1.0, 1.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ZarrError::Usage`] for an empty pyramid or a band of the wrong size (also when the
/// source fails, with its message); array write errors.
pub fn write_pyramid(
    src: &dyn PyramidSource,
    out: impl AsRef<Path>,
    opts: &PyramidOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PathBuf> {
    let n = src.level_count();
    if n == 0 {
        return Err(crate::error::usage("pyramid without levels"));
    }
    let c = src.channels();
    let dt = src.data_type();
    let es = dt.size() as u64;
    let overflow = || crate::error::usage("pyramid level sizes overflow");
    let mut total = 0u64;
    for l in 0..n {
        let (w, h) = src.level_dimensions(l);
        let b = w
            .checked_mul(h)
            .and_then(|x| x.checked_mul(c))
            .and_then(|x| x.checked_mul(es))
            .ok_or_else(overflow)?;
        total = total.checked_add(b).ok_or_else(overflow)?;
    }
    let w0 = src.level_dimensions(0).0 as f64;
    let w = MultiscaleWriter::create(out, opts.version)?.with_durability(opts.write.durability);
    let mut levels = Vec::new();
    let mut done = 0u64;
    for l in 0..n {
        let (wd, ht) = src.level_dimensions(l);
        let mut spec = ArraySpec::new(&[c, ht, wd], &[1, opts.chunk, opts.chunk], dt)
            .with_compression(opts.compression)
            .with_dimension_names(&["c", "y", "x"]);
        if let Some(s) = opts.shard
            && opts.version == OmeVersion::V05
        {
            spec = spec.with_shards(&[1, s, s]);
        }
        let a = w.create_level(&l.to_string(), &spec)?;
        let band = spec.unit_shape()[1];
        let mut y0 = 0;
        while y0 < ht {
            let rows = band.min(ht - y0);
            let hwc = src
                .read_band(l, y0, rows)
                .map_err(|e| crate::error::usage(format!("level {l} rows {y0}+{rows}: {e}")))?;
            let want = rows * wd * c * es;
            if hwc.len() as u64 != want {
                return Err(crate::error::usage(format!(
                    "level {l} rows {y0}+{rows}: the source gave {} bytes, expected {want} ({rows} x {wd} x {c} of {})",
                    hwc.len(),
                    dt.v3_name()
                )));
            }
            let chw = hwc_to_chw(&hwc, rows, wd, c, es);
            a.write_region(&[0, y0, 0], &[c, rows, wd], &chw, &opts.write)?;
            done += want;
            progress(done, total);
            y0 += rows;
        }
        a.finish()?;
        let ds = w0 / wd as f64;
        let s = opts.mpp.map_or(ds, |m| m * ds);
        levels.push(Level {
            path: l.to_string(),
            scale: vec![1.0, s, s],
        });
    }
    let unit = opts.mpp.map(|_| "micrometer");
    w.finish(
        None,
        vec![Axis::channel("c"), Axis::space("y", unit), Axis::space("x", unit)],
        levels,
    )
}

/// The number of levels of a 2× pyramid over a level 0 of `height × width`: halving (sides
/// rounded up) until a side fits in one chunk (`chunk` is `(rows, columns)`), at most 40.
///
/// ```
/// use tiledio_zarr::ome::pyramid_level_count;
/// assert_eq!(pyramid_level_count(1000, 3000, (256, 256)), 3); // 1000, 500, 250 rows
/// assert_eq!(pyramid_level_count(200, 3000, (256, 256)), 1);
/// ```
pub fn pyramid_level_count(height: u64, width: u64, chunk: (u64, u64)) -> usize {
    let (mut h, mut w, mut n) = (height, width, 1);
    while h > chunk.0.max(1) && w > chunk.1.max(1) && n < 40 {
        (h, w, n) = (h.div_ceil(2), w.div_ceil(2), n + 1);
    }
    n
}

/// Writes the reduced levels `"1"` to `"{levels - 1}"` of a multiscale image being written by
/// `w`, each a 2× area average of the level above ([`tiledio_kernels::downsample2x`]: integers
/// rounded half up, the same pixels as the TIFF pyramid writer's levels), read back from the
/// level above one band of storage units (shard or chunk rows) at a time, so memory stays
/// bounded by a band. `level0` is the finished level `"0"` and `spec` its specification: the
/// last two axes are y and x, any leading axes (channels) are halved plane by plane, and the
/// reduced levels keep its chunks, shards, codec and dimension names. Returns the
/// [`Level`]s of all levels (level 0's included) for [`MultiscaleWriter::finish`]: scale 1
/// on leading axes, the level's downsample on y and x.
///
/// ```
/// use tiledio_zarr::{ArraySpec, DataType, WriteOptions};
/// use tiledio_zarr::ome::*;
/// # let dir = tempfile::tempdir()?;
/// let g = MultiscaleWriter::create(dir.path().join("p.zarr"), OmeVersion::V05)?;
/// let spec = ArraySpec::new(&[4, 6], &[2, 2], DataType::U8).with_dimension_names(&["y", "x"]);
/// let a = g.create_level("0", &spec)?;
/// a.write_all(&(0..24u8).collect::<Vec<_>>()[..], &WriteOptions::default())?;
/// let levels = write_reduced_levels(&g, &a.finish()?, &spec, 2, &WriteOptions::default())?;
/// assert_eq!(levels[1].scale, [2.0, 2.0]);
/// let root = g.finish(None, vec![Axis::space("y", None), Axis::space("x", None)], levels)?;
/// let l1 = tiledio_zarr::ZarrArray::open(root.join("1"))?;
/// assert_eq!(l1.shape(), [2, 3]);
/// assert_eq!(l1.read_to_vec()?, [4, 6, 8, 16, 18, 20]); // (0 + 1 + 6 + 7 + 2) / 4 = 4 ...
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ZarrError::Usage`] for `levels` outside 1..=40, a spec of rank below 2 or not matching
/// `level0`; the arrays' read and write errors.
pub fn write_reduced_levels(
    w: &MultiscaleWriter,
    level0: &ZarrArray,
    spec: &ArraySpec,
    levels: usize,
    opts: &crate::WriteOptions,
) -> Result<Vec<Level>> {
    let r = spec.shape.len();
    if !(1..=40).contains(&levels) {
        return Err(crate::error::usage(format!("{levels} levels (1 to 40)")));
    }
    if r < 2 || level0.shape() != spec.shape.as_slice() {
        return Err(crate::error::usage(format!(
            "reduced levels of an array of shape {:?} from a specification of shape {:?} (rank 2 or more, the same shape)",
            level0.shape(),
            spec.shape
        )));
    }
    let (h0, w0) = (spec.shape[r - 2], spec.shape[r - 1]);
    let lead = spec.shape[..r - 2].to_vec();
    let planes: u64 = lead.iter().product();
    let es = spec.data_type.size();
    let scale = |h: u64, wd: u64| -> Vec<f64> {
        let mut s = vec![1.0; r - 2];
        s.push(h0 as f64 / h.max(1) as f64);
        s.push(w0 as f64 / wd.max(1) as f64);
        s
    };
    let mut out = vec![Level {
        path: "0".into(),
        scale: vec![1.0; r],
    }];
    let mut above: Option<ZarrArray> = None;
    for l in 1..levels {
        let src = above.as_ref().unwrap_or(level0);
        let (sh, sw) = (src.shape()[r - 2], src.shape()[r - 1]);
        let (dh, dw) = (sh.div_ceil(2), sw.div_ceil(2));
        let mut ls = spec.clone();
        ls.shape = lead.iter().copied().chain([dh, dw]).collect();
        let dst = w.create_level(&l.to_string(), &ls)?;
        let band = ls.unit_shape()[r - 2].max(1);
        let mut y = 0;
        // (an empty level has no bands: nothing to read or write)
        while y < dh && dw > 0 {
            let rows = band.min(dh - y);
            let (sy, srows) = (2 * y, (2 * rows).min(sh - 2 * y));
            let mut o = lead.iter().map(|_| 0i64).collect::<Vec<_>>();
            o.extend([sy as i64, 0]);
            let mut shape = lead.clone();
            shape.extend([srows, sw]);
            let region = tiledio_io::Region::new(&o, &shape);
            let bytes = |n: u64, c: u64| {
                n.checked_mul(c)
                    .and_then(|n| n.checked_mul(es as u64))
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| n.checked_mul(planes as usize).is_some())
                    .ok_or_else(|| crate::error::usage(format!("level {l}: a band of {n} x {c} is too large")))
            };
            let (plane_in, plane_out) = (bytes(srows, sw)?, bytes(rows, dw)?);
            let mut a = tiledio_io::try_alloc_zeroed(plane_in * planes as usize, "a band of the level above")?;
            src.read_region(&region, tiledio_io::Border::Reject, &mut a[..])?;
            let mut b = tiledio_io::try_alloc_zeroed(plane_out * planes as usize, "a band of the reduced level")?;
            for (i, o) in a.chunks_exact(plane_in).zip(b.chunks_exact_mut(plane_out)) {
                tiledio_kernels::downsample2x(i, o, srows as usize, sw as usize, 1, spec.data_type)
                    .map_err(|e| crate::error::usage(format!("level {l}: {e}")))?;
            }
            let mut at = vec![0u64; r - 2];
            at.extend([y, 0]);
            let mut bs = lead.clone();
            bs.extend([rows, dw]);
            dst.write_region(&at, &bs, &b, opts)?;
            y += rows;
        }
        above = Some(dst.finish()?);
        out.push(Level {
            path: l.to_string(),
            scale: scale(dh, dw),
        });
    }
    Ok(out)
}

/// Interleaved `h × w × c` elements of `es` bytes to planar `c × h × w`
/// ([`tiledio_kernels::hwc_to_chw`]).
fn hwc_to_chw(hwc: &[u8], h: u64, w: u64, c: u64, es: u64) -> Vec<u8> {
    let mut out = vec![0u8; hwc.len()];
    // the caller checked hwc.len() == h * w * c * es
    let done = tiledio_kernels::hwc_to_chw(hwc, &mut out, (h * w) as usize, c as usize, es as usize);
    debug_assert!(done.is_ok());
    out
}

/// One level as `(width, height, channels, interleaved bytes)`.
pub type HwcLevel = (u64, u64, u64, Vec<u8>);

/// Reads every level of an image as interleaved `height × width × channels` bytes: an OME-Zarr
/// group (axes `c, y, x` or `y, x`) or a plain array (`y, x` or `y, x, c`), for writing a TIFF
/// pyramid. Returns `(width, height, channels, bytes)` per level, finest first.
///
/// # Errors
/// [`ZarrError::NotFound`] / [`ZarrError::Metadata`]; [`ZarrError::Unsupported`] for other
/// layouts or element types than 8-bit.
pub fn read_levels_hwc(path: impl AsRef<Path>) -> Result<Vec<HwcLevel>> {
    let path = path.as_ref();
    // A folder that is an array is read as one; anything else must be a valid OME-Zarr group.
    let is_array = path.join(".zarray").is_file()
        || read_json(&path.join("zarr.json"))?.is_some_and(|m| m["node_type"] == "array");
    let (arrays, channel_first): (Vec<(Option<String>, PathBuf)>, bool) = if is_array {
        (vec![(None, path.to_path_buf())], false)
    } else {
        let m = read_multiscales(path)?;
        let cf = m.axes.first().is_some_and(|a| a.kind == "channel");
        let levels = m
            .levels
            .iter()
            .map(|l| Ok((Some(l.path.clone()), dataset_dir(path, &l.path)?)))
            .collect::<Result<_>>()?;
        (levels, cf)
    };
    let mut out = Vec::new();
    for (level, p) in arrays {
        let a = ZarrArray::open(&p).map_err(|e| match (&level, e) {
            (Some(l), e @ (ZarrError::NotFound { .. } | ZarrError::Metadata { .. })) => ZarrError::Metadata {
                path: path.into(),
                message: format!("OME multiscales dataset path {l:?}: not a Zarr array ({e})"),
            },
            (_, e) => e,
        })?;
        if a.element_size() != 1 {
            return Err(ZarrError::Unsupported {
                what: format!(
                    "{}: {}-byte elements (8-bit only for TIFF)",
                    p.display(),
                    a.element_size()
                ),
            });
        }
        let s = a.shape().to_vec();
        let data = a.read_to_vec()?;
        let (h, w, c, hwc) = match (s.len(), channel_first) {
            (2, _) => (s[0], s[1], 1, data),
            (3, true) => {
                // read_to_vec succeeded, so c * h * w bytes are in memory and fit a usize
                let (c, h, w) = (s[0] as usize, s[1] as usize, s[2] as usize);
                let plane = h * w;
                if c.checked_mul(plane) != Some(data.len()) {
                    return Err(crate::error::usage(format!(
                        "{}: shape {s:?} does not match {} bytes",
                        p.display(),
                        data.len()
                    )));
                }
                let mut o = tiledio_io::try_alloc_zeroed(data.len(), &format!("{}: interleaved level", p.display()))?;
                for ch in 0..c {
                    for (i, v) in data[ch * plane..(ch + 1) * plane].iter().enumerate() {
                        o[i * c + ch] = *v;
                    }
                }
                (s[1], s[2], s[0], o)
            }
            (3, false) => (s[0], s[1], s[2], data),
            _ => {
                return Err(ZarrError::Unsupported {
                    what: format!("{}: shape {s:?} is not an image", p.display()),
                });
            }
        };
        out.push((w, h, c, hwc));
    }
    Ok(out)
}
