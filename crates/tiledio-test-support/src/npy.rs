//! NumPy `.npy` fixtures (version 1 and 2 headers, C order), read whole for comparisons.

use std::path::Path;

/// A `.npy` array: its dtype descr (`<u1` or `|u1`, `<u2`, `<f4`, `<f8`), shape and raw data.
#[derive(Debug, Clone, PartialEq)]
pub struct Npy {
    /// The dtype, as NumPy writes it (`<f4`).
    pub descr: String,
    /// The shape.
    pub shape: Vec<u64>,
    /// The array's bytes, little-endian, C order.
    pub data: Vec<u8>,
}

impl Npy {
    /// Reads `path`; panics (a test failure) naming the file when it is not a C-order `.npy`.
    pub fn load(path: &Path) -> Npy {
        let name = path.display();
        let b = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&b[..6], b"\x93NUMPY", "{name}: not a .npy file");
        let (hlen, start) = if b[6] == 1 {
            (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
        } else {
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        };
        let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
        let field = |key: &str| {
            let at = header.find(key).unwrap_or_else(|| panic!("{name}: no {key}")) + key.len();
            header[at..].trim_start_matches([' ', ':']).to_string()
        };
        let descr = field("'descr'")[1..4].to_string();
        assert!(field("'fortran_order'").starts_with("False"), "{name}: Fortran order");
        let s = field("'shape'");
        let shape = s[1..s.find(')').unwrap()]
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().parse().unwrap())
            .collect();
        Npy {
            descr,
            shape,
            data: b[start + hlen..].to_vec(),
        }
    }

    /// The values of a `<f8` array.
    pub fn f64s(&self) -> Vec<f64> {
        assert_eq!(self.descr, "<f8");
        self.data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// The values of a `<f4` or `<f8` array, as `f64`.
    pub fn floats(&self) -> Vec<f64> {
        match self.descr.as_str() {
            "<f4" => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            "<f8" => self.f64s(),
            d => panic!("expected a float array, not {d}"),
        }
    }

    /// The bytes of a `u1` array.
    pub fn u8s(&self) -> Vec<u8> {
        assert!(self.descr == "|u1" || self.descr == "<u1", "{}", self.descr);
        self.data.clone()
    }
}
