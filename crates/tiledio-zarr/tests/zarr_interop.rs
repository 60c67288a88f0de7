//! Arrays and OME-Zarr groups written by tiledio-zarr, read back exactly by zarr-python, and
//! OME-Zarr metadata validated by ome-zarr-models (installed from PyPI into
//! target/pydeps-ome-1.7 on first use) as well as by our structural check.

use tiledio_test_support::python;

use std::path::{Path, PathBuf};
use std::process::Command;
use tiledio_zarr::ome::{Axis, Level, MultiscaleWriter, OmeVersion, validate};
use tiledio_zarr::serde_json;
use tiledio_zarr::{ArraySpec, Compression, DataType, Durability, WriteOptions, ZarrArray, ZarrDataType, ZarrVersion};

use random::random_bytes;
use tiledio_test_support::random;

fn opts() -> WriteOptions {
    WriteOptions {
        durability: Durability::None,
        ..Default::default()
    }
}

const CHECK: &str = r#"
import sys, json, numpy as np, zarr
for path, dtype, shape in json.loads(sys.argv[1]):
    a = zarr.open_array(path, mode="r")
    want = np.fromfile(path + ".bin", dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    got = a[...]
    assert got.shape == tuple(shape), (path, got.shape)
    assert np.array_equal(got, want), path
print("ok", len(json.loads(sys.argv[1])))
"#;

#[test]
fn zarr_python_reads_what_we_write() {
    let t = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut i = 0;
    for version in [ZarrVersion::V3, ZarrVersion::V2] {
        for shards in [None, Some(vec![32u64, 32, 3])] {
            if version == ZarrVersion::V2 && shards.is_some() {
                continue;
            }
            for c in ["none", "zstd", "gzip", "blosc"] {
                for dt in [DataType::U8, DataType::U16, DataType::U32, DataType::F32] {
                    i += 1;
                    let shape = [45u64, 37, 3];
                    let n = shape.iter().product::<u64>() as usize;
                    let mut data = random_bytes(n * dt.size(), i);
                    if dt == DataType::F32 {
                        for c in data.chunks_mut(4) {
                            let v = (c[0] as f32) * 0.5 - 3.0;
                            c.copy_from_slice(&v.to_le_bytes());
                        }
                    }
                    let mut spec = ArraySpec::new(&shape, &[16, 16, 3], dt)
                        .with_compression(Compression::parse(c).unwrap())
                        .with_version(version);
                    if let Some(s) = &shards {
                        spec = spec.with_shards(s);
                    }
                    let path = t.path().join(format!("a{i}.zarr"));
                    let a = ZarrArray::create(&path, &spec).unwrap();
                    a.write_all(&data, &opts()).unwrap();
                    a.finish().unwrap();
                    std::fs::write(format!("{}.bin", path.display()), &data).unwrap();
                    cases.push(serde_json::json!([path, dt.v3_name(), shape]));
                }
            }
        }
    }
    let out = python::run_python(CHECK, &[&serde_json::to_string(&cases).unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("ok {}", cases.len())));
}

/// ome-zarr-models on PYTHONPATH (installed into target/pydeps-ome if missing).
fn ome_pythonpath() -> String {
    let base = python::pythonpath().map(|p| p.display().to_string());
    let dir = tiledio_test_support::workspace_root().join("target/pydeps-ome-1.7");
    let py = std::env::var("TILEDIO_PYTHON").unwrap_or_else(|_| "python3".into());
    let join = |extra: &Path| match &base {
        Some(b) => format!("{}:{b}", extra.display()),
        None => extra.display().to_string(),
    };
    let importable = |pp: &str| {
        Command::new(&py)
            .args([
                "-c",
                "import ome_zarr_models.v04.image as m, ome_zarr_models.v05.image; m.Image.model_rebuild()",
            ])
            .env("PYTHONPATH", pp)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let pp = join(&dir);
    if !importable(&pp) {
        let out = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--target",
            ])
            .arg(&dir)
            // Pinned: the set checked to work together (newer pydantic breaks the 0.4 models' rebuild).
            .args([
                "ome-zarr-models==1.7",
                "pydantic==2.12.5",
                "pydantic-core==2.41.5",
                "pydantic-zarr==0.9.2",
                "annotated-types",
                "typing-inspection",
                "typing-extensions",
            ])
            .output()
            .expect("run pip");
        assert!(
            out.status.success(),
            "pip install ome-zarr-models failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(importable(&pp), "ome-zarr-models installed but not importable");
    }
    pp
}

fn write_ome(root: &Path, version: OmeVersion) -> Vec<u8> {
    let w = MultiscaleWriter::create(root, version).unwrap();
    let mut levels = Vec::new();
    let mut level0 = Vec::new();
    for (l, (h, wd)) in [(64u64, 48u64), (32, 24), (16, 12)].into_iter().enumerate() {
        let spec = ArraySpec::new(&[3, h, wd], &[1, 16, 16], DataType::U8)
            .with_compression(Compression::Zstd { level: 1 })
            .with_dimension_names(&["c", "y", "x"]);
        let a = w.create_level(&l.to_string(), &spec).unwrap();
        let data = random_bytes((3 * h * wd) as usize, l as u64 + 1);
        a.write_all(&data, &opts()).unwrap();
        a.finish().unwrap();
        if l == 0 {
            level0 = data;
        }
        let s = 0.25 * (1 << l) as f64;
        levels.push(Level {
            path: l.to_string(),
            scale: vec![1.0, s, s],
        });
    }
    let axes = vec![
        Axis::channel("c"),
        Axis::space("y", Some("micrometer")),
        Axis::space("x", Some("micrometer")),
    ];
    w.finish(Some("test"), axes, levels).unwrap();
    level0
}

const OME_CHECK: &str = r#"
import sys, numpy as np, zarr
path, version = sys.argv[1], sys.argv[2]
if version == "0.5":
    from ome_zarr_models.v05.image import Image
else:
    from ome_zarr_models.v04.image import Image
g = zarr.open_group(path, mode="r")
img = Image.from_zarr(g)
ms = img.attributes.multiscales if version == "0.4" else img.ome_attributes.multiscales
ds = ms[0].datasets
assert [d.path for d in ds] == ["0", "1", "2"], ds
want = np.fromfile(path + ".bin", dtype=np.uint8).reshape(3, 64, 48)
assert np.array_equal(g["0"][...], want)
print("valid", version)
"#;

#[test]
fn ome_zarr_groups_are_valid_for_ome_zarr_models_and_zarr_python() {
    let t = tempfile::tempdir().unwrap();
    let pp = ome_pythonpath();
    for (v, s) in [(OmeVersion::V05, "0.5"), (OmeVersion::V04, "0.4")] {
        let root: PathBuf = t.path().join(format!("img{s}.zarr"));
        let level0 = write_ome(&root, v);
        std::fs::write(format!("{}.bin", root.display()), &level0).unwrap();
        let m = tiledio_zarr::ome::read_multiscales(&root).unwrap();
        assert_eq!(m.version, v);
        assert_eq!(m.levels.len(), 3);
        let py = std::env::var("TILEDIO_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = Command::new(&py)
            .args(["-c", OME_CHECK])
            .arg(&root)
            .arg(s)
            .env("PYTHONPATH", &pp)
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
            "ome-zarr-models rejected {s}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn structural_check_rejects_bad_multiscales() {
    let good = serde_json::json!({"ome": {"version": "0.5", "multiscales": [{"axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}]}]}});
    validate(&good).unwrap();
    let mut bad = good.clone();
    bad["ome"]["multiscales"][0]["axes"] = serde_json::json!([{"name": "y", "type": "space"}, {"name": "c", "type": "channel"}, {"name": "x", "type": "space"}]);
    assert!(validate(&bad).is_err(), "channel after space");
    let mut bad = good.clone();
    bad["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = serde_json::json!([1.0]);
    assert!(validate(&bad).is_err(), "scale length");
    let mut bad = good;
    bad["ome"]["version"] = serde_json::json!("0.3");
    assert!(validate(&bad).is_err(), "version");
}
