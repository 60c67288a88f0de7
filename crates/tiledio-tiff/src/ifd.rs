//! TIFF / BigTIFF header and IFD parsing. Every count, size and offset is bounded and checked
//! against the file length; IFD loops are detected.

use crate::error::{Result, TiffError};
use std::collections::{BTreeMap, HashSet};
use tiledio_io::FileHandle;

/// Most entries one IFD may hold.
const MAX_ENTRIES: u64 = 4096;
/// Most pages (IFDs, SubIFDs included) a file may hold.
pub(crate) const MAX_PAGES: usize = 65_536;
/// Largest out-of-line value of one tag we load (bytes).
const MAX_VALUE_BYTES: u64 = 256 << 20;
/// Out-of-line values all pages together may load past the file's length (bytes). The values
/// of a sound file do not overlap, so they add up to less than its length; this margin covers
/// values shared between pages. Without it, IFDs pointing at one large value would load it
/// once each: thousands of times a small file's size.
const MAX_SHARED_VALUE_BYTES: u64 = 64 << 20;

/// Byte order and flavour of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) big_endian: bool,
    pub(crate) bigtiff: bool,
    pub(crate) first_ifd: u64,
}

/// A tag's value, widened.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// BYTE, SHORT, LONG, LONG8, IFD, IFD8.
    Uint(Vec<u64>),
    /// SBYTE, SSHORT, SLONG, SLONG8.
    Int(Vec<i64>),
    /// RATIONAL, SRATIONAL, FLOAT, DOUBLE.
    Real(Vec<f64>),
    /// ASCII and UNDEFINED.
    Bytes(Vec<u8>),
}

/// One parsed IFD: tag -> value and the next IFD's offset.
#[derive(Clone, Debug)]
pub(crate) struct Ifd {
    pub(crate) tags: BTreeMap<u16, Value>,
    pub(crate) next: u64,
}

/// Reads bytes of the file through the I/O layer, bounded by its length.
pub(crate) struct Reader<'a> {
    pub(crate) fh: &'a FileHandle,
    pub(crate) header: Header,
}

pub(crate) fn malformed(fh: &FileHandle, page: usize, reason: impl Into<String>) -> TiffError {
    TiffError::Malformed {
        path: fh.path().to_path_buf(),
        page,
        reason: reason.into(),
    }
}

/// Reads `len` bytes at `offset`, or a `Malformed` error if they are not all in the file.
pub(crate) fn read_bytes(fh: &FileHandle, page: usize, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
    let end = offset.checked_add(len);
    if end.is_none_or(|e| e > fh.len()) {
        return Err(malformed(
            fh,
            page,
            format!(
                "{what}: {len} bytes at offset {offset} end past the end of the file ({} bytes)",
                fh.len()
            ),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    if len > 0 {
        fh.read_at(offset, &mut buf)?;
    }
    Ok(buf)
}

/// Parses the 8- or 16-byte header.
pub(crate) fn read_header(fh: &FileHandle) -> Result<Header> {
    let not = |reason: &str| TiffError::NotTiff {
        path: fh.path().to_path_buf(),
        reason: reason.into(),
    };
    if fh.len() < 8 {
        return Err(not("shorter than a TIFF header (8 bytes)"));
    }
    let n = fh.len().min(16);
    let mut b = vec![0u8; n as usize];
    fh.read_at(0, &mut b)?;
    let big_endian = match &b[..2] {
        b"II" => false,
        b"MM" => true,
        _ => return Err(not("no II/MM byte-order mark")),
    };
    let e = Endian(big_endian);
    match e.u16(&b[2..4]) {
        42 => Ok(Header {
            big_endian,
            bigtiff: false,
            first_ifd: e.u32(&b[4..8]) as u64,
        }),
        43 => {
            if n < 16 {
                return Err(not("shorter than a BigTIFF header (16 bytes)"));
            }
            if e.u16(&b[4..6]) != 8 || e.u16(&b[6..8]) != 0 {
                return Err(not("BigTIFF header with an offset size other than 8"));
            }
            Ok(Header {
                big_endian,
                bigtiff: true,
                first_ifd: e.u64(&b[8..16]),
            })
        }
        m => Err(not(&format!("magic number {m}, not 42 (TIFF) or 43 (BigTIFF)"))),
    }
}

/// Byte-order helper.
#[derive(Clone, Copy)]
pub(crate) struct Endian(pub(crate) bool);

impl Endian {
    pub(crate) fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.0 {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }
    pub(crate) fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.0 {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }
    pub(crate) fn u64(self, b: &[u8]) -> u64 {
        let a: [u8; 8] = b[..8].try_into().unwrap_or([0; 8]);
        if self.0 {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }
}

fn type_size(t: u16) -> Option<u64> {
    Some(match t {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => return None,
    })
}

fn decode_value(e: Endian, t: u16, count: usize, b: &[u8]) -> Option<Value> {
    let chunks = |n: usize| b.chunks_exact(n).take(count);
    Some(match t {
        1 => Value::Uint(b.iter().take(count).map(|&v| v as u64).collect()),
        2 | 7 => Value::Bytes(b[..count.min(b.len())].to_vec()),
        3 => Value::Uint(chunks(2).map(|c| e.u16(c) as u64).collect()),
        4 | 13 => Value::Uint(chunks(4).map(|c| e.u32(c) as u64).collect()),
        16 | 18 => Value::Uint(chunks(8).map(|c| e.u64(c)).collect()),
        6 => Value::Int(b.iter().take(count).map(|&v| v as i8 as i64).collect()),
        8 => Value::Int(chunks(2).map(|c| e.u16(c) as i16 as i64).collect()),
        9 => Value::Int(chunks(4).map(|c| e.u32(c) as i32 as i64).collect()),
        17 => Value::Int(chunks(8).map(|c| e.u64(c) as i64).collect()),
        5 => Value::Real(
            chunks(8)
                .map(|c| ratio(e.u32(c) as f64, e.u32(&c[4..]) as f64))
                .collect(),
        ),
        10 => Value::Real(
            chunks(8)
                .map(|c| ratio(e.u32(c) as i32 as f64, e.u32(&c[4..]) as i32 as f64))
                .collect(),
        ),
        11 => Value::Real(chunks(4).map(|c| f32::from_bits(e.u32(c)) as f64).collect()),
        12 => Value::Real(chunks(8).map(|c| f64::from_bits(e.u64(c))).collect()),
        _ => return None,
    })
}

fn ratio(n: f64, d: f64) -> f64 {
    if d == 0.0 { 0.0 } else { n / d }
}

impl Reader<'_> {
    /// Reads the IFD at `offset` (page index `page` for messages), loading at most `budget`
    /// bytes of out-of-line values (taken off it).
    pub(crate) fn read_ifd(&self, offset: u64, page: usize, budget: &mut u64) -> Result<Ifd> {
        let fh = self.fh;
        let e = Endian(self.header.big_endian);
        let big = self.header.bigtiff;
        let (count_size, entry_size, ptr_size) = if big { (8u64, 20u64, 8u64) } else { (2, 12, 4) };
        if offset < 8 || offset >= fh.len() {
            return Err(malformed(
                fh,
                page,
                format!("IFD offset {offset} is not inside the file"),
            ));
        }
        let cb = read_bytes(fh, page, offset, count_size, "IFD entry count")?;
        let n = if big { e.u64(&cb) } else { e.u16(&cb) as u64 };
        if n == 0 || n > MAX_ENTRIES {
            return Err(malformed(
                fh,
                page,
                format!("IFD at {offset} has {n} entries (allowed 1..={MAX_ENTRIES})"),
            ));
        }
        let body = read_bytes(fh, page, offset + count_size, n * entry_size + ptr_size, "IFD entries")?;
        let mut tags = BTreeMap::new();
        for i in 0..n as usize {
            let ent = &body[i * entry_size as usize..(i + 1) * entry_size as usize];
            let tag = e.u16(&ent[0..2]);
            let typ = e.u16(&ent[2..4]);
            let count = if big {
                e.u64(&ent[4..12])
            } else {
                e.u32(&ent[4..8]) as u64
            };
            let field = if big { &ent[12..20] } else { &ent[8..12] };
            let Some(tsize) = type_size(typ) else { continue };
            let Some(nbytes) = count.checked_mul(tsize) else {
                return Err(malformed(fh, page, format!("tag {tag}: count {count} overflows")));
            };
            let bytes = if nbytes <= field.len() as u64 {
                field[..nbytes as usize].to_vec()
            } else {
                if !wanted(tag) {
                    continue;
                }
                if nbytes > MAX_VALUE_BYTES {
                    return Err(malformed(
                        fh,
                        page,
                        format!("tag {tag}: value of {nbytes} bytes is too large"),
                    ));
                }
                if nbytes > *budget {
                    return Err(malformed(
                        fh,
                        page,
                        format!(
                            "tag {tag}: out-of-line tag values add up to more than the file's length \
                             plus {MAX_SHARED_VALUE_BYTES} bytes (values shared by many IFDs?)"
                        ),
                    ));
                }
                *budget -= nbytes;
                let at = if big { e.u64(field) } else { e.u32(field) as u64 };
                read_bytes(fh, page, at, nbytes, &format!("tag {tag} value"))?
            };
            if let Some(v) = decode_value(e, typ, count as usize, &bytes) {
                tags.insert(tag, v);
            }
        }
        let np = &body[(n * entry_size) as usize..];
        let next = if big { e.u64(np) } else { e.u32(np) as u64 };
        Ok(Ifd { tags, next })
    }

    /// Reads the IFD at `off` as page `page`, after checking that no page was read from that
    /// offset before (an IFD loop; `what` names the offset in the message) and that there is
    /// room for another page.
    fn read_new_ifd(
        &self,
        off: u64,
        what: &str,
        page: usize,
        seen: &mut HashSet<u64>,
        budget: &mut u64,
    ) -> Result<Ifd> {
        if !seen.insert(off) {
            return Err(malformed(
                self.fh,
                page,
                format!("IFD loop: {what} {off} visited twice"),
            ));
        }
        if page >= MAX_PAGES {
            return Err(malformed(self.fh, page, "too many IFDs"));
        }
        self.read_ifd(off, page, budget)
    }

    /// Reads the main IFD chain, then the SubIFDs of each page (appended, with their parent).
    /// Returns `(ifd, parent)` pairs; `parent` is `None` for main-chain pages.
    pub(crate) fn read_all(&self) -> Result<Vec<(Ifd, Option<usize>)>> {
        let mut seen = HashSet::new();
        let mut budget = self.fh.len().saturating_add(MAX_SHARED_VALUE_BYTES);
        let mut out: Vec<(Ifd, Option<usize>)> = Vec::new();
        let mut off = self.header.first_ifd;
        while off != 0 {
            let ifd = self.read_new_ifd(off, "offset", out.len(), &mut seen, &mut budget)?;
            off = ifd.next;
            out.push((ifd, None));
        }
        if out.is_empty() {
            return Err(malformed(self.fh, 0, "no IFD (first IFD offset is 0)"));
        }
        let main = out.len();
        for parent in 0..main {
            let subs = out[parent].0.uints(330).unwrap_or_default();
            for s in subs {
                let ifd = self.read_new_ifd(s, "SubIFD offset", out.len(), &mut seen, &mut budget)?;
                out.push((ifd, Some(parent)));
            }
        }
        Ok(out)
    }
}

/// Out-of-line values we load; others (private blobs, XMP, ICC...) are skipped unread.
fn wanted(tag: u16) -> bool {
    matches!(
        tag,
        256..=259 | 262 | 270..=273 | 277..=279 | 282..=284 | 296 | 305..=306 | 315..=317
            | 322..=325 | 330 | 338 | 339 | 347 | 530 | 32997 | 33432
    )
}

impl Ifd {
    /// The unsigned integer values of a tag.
    pub(crate) fn uints(&self, tag: u16) -> Option<Vec<u64>> {
        match self.tags.get(&tag)? {
            Value::Uint(v) => Some(v.clone()),
            Value::Int(v) => Some(v.iter().map(|&x| x.max(0) as u64).collect()),
            Value::Bytes(b) => Some(b.iter().map(|&x| x as u64).collect()),
            Value::Real(_) => None,
        }
    }
    /// The first unsigned value of a tag.
    pub(crate) fn uint(&self, tag: u16) -> Option<u64> {
        match self.tags.get(&tag)? {
            Value::Uint(v) => v.first().copied(),
            Value::Int(v) => v.first().map(|&x| x.max(0) as u64),
            _ => None,
        }
    }
    /// The first value of a numeric tag as a float.
    pub(crate) fn real(&self, tag: u16) -> Option<f64> {
        match self.tags.get(&tag)? {
            Value::Real(v) => v.first().copied(),
            Value::Uint(v) => v.first().map(|&x| x as f64),
            Value::Int(v) => v.first().map(|&x| x as f64),
            Value::Bytes(_) => None,
        }
    }
    /// An ASCII tag as text (up to the first NUL).
    pub(crate) fn ascii(&self, tag: u16) -> Option<String> {
        match self.tags.get(&tag)? {
            Value::Bytes(b) => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                Some(String::from_utf8_lossy(&b[..end]).into_owned())
            }
            _ => None,
        }
    }
    /// A BYTE/UNDEFINED tag's raw bytes.
    pub(crate) fn bytes(&self, tag: u16) -> Option<Vec<u8>> {
        match self.tags.get(&tag)? {
            Value::Bytes(b) => Some(b.clone()),
            Value::Uint(v) => Some(v.iter().map(|&x| x as u8).collect()),
            _ => None,
        }
    }
}
