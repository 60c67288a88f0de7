//! The element type of an array, shared by every format crate.

/// The type of one array element (one sample of a pixel).
///
/// ```
/// use tiledio_io::ElementType;
/// assert_eq!(ElementType::U16.size(), 2);
/// assert_eq!(ElementType::I8.name(), "int8");
/// assert_eq!("float64".parse::<ElementType>().unwrap(), ElementType::F64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ElementType {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 64-bit.
    U64,
    /// Signed 8-bit.
    I8,
    /// Signed 16-bit.
    I16,
    /// Signed 32-bit.
    I32,
    /// Signed 64-bit.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
}

impl ElementType {
    /// Every element type, smallest first within each kind.
    pub const ALL: [ElementType; 10] = [
        ElementType::U8,
        ElementType::U16,
        ElementType::U32,
        ElementType::U64,
        ElementType::I8,
        ElementType::I16,
        ElementType::I32,
        ElementType::I64,
        ElementType::F32,
        ElementType::F64,
    ];

    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(tiledio_io::ElementType::F64.size(), 8);
    /// ```
    pub fn size(self) -> usize {
        use ElementType::*;
        match self {
            U8 | I8 => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
        }
    }

    /// The NumPy name ("uint8", "int16", "float32", ...).
    ///
    /// ```
    /// assert_eq!(tiledio_io::ElementType::U64.name(), "uint64");
    /// ```
    pub fn name(self) -> &'static str {
        use ElementType::*;
        match self {
            U8 => "uint8",
            U16 => "uint16",
            U32 => "uint32",
            U64 => "uint64",
            I8 => "int8",
            I16 => "int16",
            I32 => "int32",
            I64 => "int64",
            F32 => "float32",
            F64 => "float64",
        }
    }

    /// The NumPy `.npy` descriptor, little-endian ("|u1", "<i2", "<f8", ...).
    ///
    /// ```
    /// assert_eq!(tiledio_io::ElementType::I16.npy_descr(), "<i2");
    /// ```
    pub fn npy_descr(self) -> &'static str {
        use ElementType::*;
        match self {
            U8 => "|u1",
            U16 => "<u2",
            U32 => "<u4",
            U64 => "<u8",
            I8 => "|i1",
            I16 => "<i2",
            I32 => "<i4",
            I64 => "<i8",
            F32 => "<f4",
            F64 => "<f8",
        }
    }

    /// Whether it is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, ElementType::F32 | ElementType::F64)
    }

    /// Whether it is a signed integer type.
    pub fn is_signed_int(self) -> bool {
        matches!(
            self,
            ElementType::I8 | ElementType::I16 | ElementType::I32 | ElementType::I64
        )
    }
}

impl std::fmt::Display for ElementType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ElementType {
    type Err = String;
    /// Parses a NumPy name ("uint8", "float32", ...).
    fn from_str(s: &str) -> Result<Self, String> {
        ElementType::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            format!("unknown element type {s:?} (expected uint8..uint64, int8..int64, float32, float64)")
        })
    }
}
