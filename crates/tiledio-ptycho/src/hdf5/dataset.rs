//! A dataset's messages: dataspace, datatype, fill value, data layout and filter pipeline.

use super::format::{Cur, H5File, Message};
use crate::error::{Result, unsupported};
use tiledio_io::ElementType;

/// Filter ids this reader decodes.
pub(super) const DEFLATE: u16 = 1;
pub(super) const SHUFFLE: u16 = 2;
pub(super) const LZ4: u16 = 32004;
pub(super) const BITSHUFFLE: u16 = 32008;

/// One filter of a pipeline.
#[derive(Clone, Debug)]
pub(super) struct Filter {
    pub id: u16,
    pub cd: Vec<u32>,
}

/// How the chunks are indexed.
#[derive(Clone, Debug)]
pub(super) enum Index {
    /// Version-1 B-tree (layout message version 3).
    BtreeV1(u64),
    /// One chunk: its address, its stored size when filtered, and its filter mask.
    Single { addr: u64, filtered: Option<(u64, u32)> },
    /// Chunks back to back from an address (unfiltered, allocated early).
    Implicit(u64),
    /// A fixed array (no unlimited dimension).
    FixedArray(u64),
    /// An extensible array (one unlimited dimension).
    ExtensibleArray(u64),
}

/// Where the data is.
#[derive(Clone, Debug)]
pub(super) enum Layout {
    /// One block (`UNDEF`: never written).
    Contiguous { addr: u64, size: u64 },
    /// Chunks of `chunk` elements per dimension.
    Chunked { chunk: Vec<u64>, index: Index },
}

/// What the messages of a dataset say.
#[derive(Clone, Debug)]
pub(super) struct Info {
    pub dims: Vec<u64>,
    pub maxdims: Vec<u64>,
    pub dtype: ElementType,
    pub big_endian: bool,
    pub layout: Layout,
    pub filters: Vec<Filter>,
    /// The fill value in file byte order (`None`: zeros).
    pub fill: Option<Vec<u8>>,
}

fn find(msgs: &[Message], kind: u16) -> Option<&Message> {
    msgs.iter().find(|m| m.kind == kind)
}

/// Parses a dataset's messages; `obj` names it in errors.
pub(super) fn parse(f: &H5File, obj: &str, msgs: &[Message]) -> Result<Info> {
    let missing = |what: &str| f.err(obj, 0, format!("not a dataset (no {what} message)"));
    let space = find(msgs, 0x01).ok_or_else(|| missing("dataspace"))?;
    let dtype_m = find(msgs, 0x03).ok_or_else(|| missing("datatype"))?;
    let layout_m = find(msgs, 0x08).ok_or_else(|| missing("data layout"))?;
    let (dims, maxdims) = dataspace(f, obj, space)?;
    let (dtype, big_endian) = datatype(f, obj, dtype_m)?;
    let layout = layout(f, obj, layout_m, dims.len(), dtype.size())?;
    let filters = match find(msgs, 0x0b) {
        Some(m) => pipeline(f, obj, m)?,
        None => Vec::new(),
    };
    let fill = fill_value(f, obj, msgs, dtype.size())?;
    Ok(Info {
        dims,
        maxdims,
        dtype,
        big_endian,
        layout,
        filters,
        fill,
    })
}

fn dataspace(f: &H5File, obj: &str, m: &Message) -> Result<(Vec<u64>, Vec<u64>)> {
    let mut c = Cur::new(f, obj, "dataspace message", &m.data, m.at);
    let v = c.u8()?;
    let rank = c.u8()? as usize;
    let flags = c.u8()?;
    match v {
        1 => c.skip(5)?,
        2 => {
            let kind = c.u8()?;
            if kind != 1 {
                return Err(f.err(
                    obj,
                    m.at,
                    format!(
                        "a {} dataspace holds no frames",
                        ["scalar", "simple", "null"].get(kind as usize).unwrap_or(&"unknown")
                    ),
                ));
            }
        }
        v => return Err(c.err(format!("version {v} (1 or 2 expected)"))),
    }
    if rank > 32 {
        return Err(c.err(format!("rank {rank}")));
    }
    let dims = (0..rank).map(|_| c.len()).collect::<Result<Vec<_>>>()?;
    let maxdims = if flags & 1 != 0 {
        (0..rank).map(|_| c.len()).collect::<Result<Vec<_>>>()?
    } else {
        dims.clone()
    };
    Ok((dims, maxdims))
}

fn datatype(f: &H5File, obj: &str, m: &Message) -> Result<(ElementType, bool)> {
    if m.flags & 0x02 != 0 {
        return Err(unsupported(&f.path, format!("{obj}: a shared (committed) datatype")));
    }
    let mut c = Cur::new(f, obj, "datatype message", &m.data, m.at);
    let cv = c.u8()?;
    let (class, _version) = (cv & 0x0f, cv >> 4);
    let bits = c.bytes(3)?;
    let size = c.u32()?;
    let big = bits[0] & 1 != 0;
    let t = match class {
        0 => {
            let offset = c.u16()?;
            let precision = c.u16()?;
            let signed = bits[0] & 0x08 != 0;
            if offset != 0 || u32::from(precision) != size * 8 {
                return Err(unsupported(
                    &f.path,
                    format!("{obj}: a {precision}-bit integer at bit {offset} of {size} bytes"),
                ));
            }
            match (size, signed) {
                (1, false) => ElementType::U8,
                (2, false) => ElementType::U16,
                (4, false) => ElementType::U32,
                (8, false) => ElementType::U64,
                (1, true) => ElementType::I8,
                (2, true) => ElementType::I16,
                (4, true) => ElementType::I32,
                (8, true) => ElementType::I64,
                _ => return Err(unsupported(&f.path, format!("{obj}: a {size}-byte integer"))),
            }
        }
        1 => {
            if bits[0] & 0x40 != 0 {
                return Err(unsupported(&f.path, format!("{obj}: VAX-order floats")));
            }
            let _offset = c.u16()?;
            let precision = c.u16()?;
            match (size, precision) {
                (4, 32) => ElementType::F32,
                (8, 64) => ElementType::F64,
                _ => {
                    return Err(unsupported(
                        &f.path,
                        format!("{obj}: a {precision}-bit float of {size} bytes"),
                    ));
                }
            }
        }
        k => {
            let name = [
                "integer",
                "float",
                "time",
                "string",
                "bitfield",
                "opaque",
                "compound",
                "reference",
                "enum",
                "variable-length",
                "array",
                "complex",
            ]
            .get(k as usize)
            .copied()
            .unwrap_or("unknown");
            return Err(unsupported(
                &f.path,
                format!("{obj}: datatype class {k} ({name}); integers and IEEE floats only"),
            ));
        }
    };
    Ok((t, big && t.size() > 1))
}

fn layout(f: &H5File, obj: &str, m: &Message, rank: usize, esize: usize) -> Result<Layout> {
    let mut c = Cur::new(f, obj, "data layout message", &m.data, m.at);
    let v = c.u8()?;
    if !(3..=5).contains(&v) {
        return Err(unsupported(
            &f.path,
            format!("{obj}: data layout message version {v} (3, 4 and 5 are read)"),
        ));
    }
    let class = c.u8()?;
    match class {
        0 => Err(unsupported(
            &f.path,
            format!("{obj}: compact layout (data inside the header)"),
        )),
        1 => {
            let addr = c.addr()?;
            let size = c.len()?;
            Ok(Layout::Contiguous { addr, size })
        }
        2 => {
            let chunk_err = |c: &Cur<'_>, dims: &[u64]| {
                c.err(format!(
                    "chunk dimensions {dims:?} for rank {rank} and {esize}-byte elements"
                ))
            };
            if v == 3 {
                let nd = c.u8()? as usize;
                let addr = c.addr()?;
                let dims = (0..nd).map(|_| c.u32().map(u64::from)).collect::<Result<Vec<_>>>()?;
                if nd != rank + 1 || dims[rank] != esize as u64 || dims[..rank].contains(&0) {
                    return Err(chunk_err(&c, &dims));
                }
                return Ok(Layout::Chunked {
                    chunk: dims[..rank].to_vec(),
                    index: Index::BtreeV1(addr),
                });
            }
            let flags = c.u8()?;
            let nd = c.u8()? as usize;
            let enc = c.u8()? as usize;
            if !(1..=8).contains(&enc) {
                return Err(c.err(format!("dimension size of {enc} bytes")));
            }
            let dims = (0..nd).map(|_| c.uint(enc)).collect::<Result<Vec<_>>>()?;
            if nd != rank + 1 || dims[rank] != esize as u64 || dims[..rank].contains(&0) {
                return Err(chunk_err(&c, &dims));
            }
            let kind = c.u8()?;
            let index = match kind {
                1 => {
                    let filtered = if flags & 2 != 0 {
                        Some((c.len()?, c.u32()?))
                    } else {
                        None
                    };
                    Index::Single {
                        addr: c.addr()?,
                        filtered,
                    }
                }
                2 => Index::Implicit(c.addr()?),
                3 => {
                    c.skip(1)?;
                    Index::FixedArray(c.addr()?)
                }
                4 => {
                    c.skip(5)?;
                    Index::ExtensibleArray(c.addr()?)
                }
                5 => {
                    return Err(unsupported(
                        &f.path,
                        format!("{obj}: chunk index v2 B-tree (more than one unlimited dimension)"),
                    ));
                }
                k => return Err(c.err(format!("chunk index type {k}"))),
            };
            Ok(Layout::Chunked {
                chunk: dims[..rank].to_vec(),
                index,
            })
        }
        3 => Err(unsupported(&f.path, format!("{obj}: virtual dataset layout"))),
        k => Err(c.err(format!("layout class {k}"))),
    }
}

fn pipeline(f: &H5File, obj: &str, m: &Message) -> Result<Vec<Filter>> {
    let mut c = Cur::new(f, obj, "filter pipeline message", &m.data, m.at);
    let v = c.u8()?;
    let n = c.u8()?;
    if v == 1 {
        c.skip(6)?;
    } else if v != 2 {
        return Err(c.err(format!("version {v} (1 or 2 expected)")));
    }
    if n > 32 {
        return Err(c.err(format!("{n} filters")));
    }
    let mut out = Vec::new();
    for _ in 0..n {
        let id = c.u16()?;
        let name_len = if v == 1 || id >= 256 { c.u16()? as usize } else { 0 };
        let _flags = c.u16()?;
        let ncd = c.u16()? as usize;
        if v == 1 {
            c.skip(name_len)?; // padded to 8 already
        } else {
            c.skip(name_len)?;
        }
        let cd = (0..ncd).map(|_| c.u32()).collect::<Result<Vec<_>>>()?;
        if v == 1 && ncd % 2 == 1 {
            c.skip(4)?;
        }
        out.push(Filter { id, cd });
    }
    Ok(out)
}

fn fill_value(f: &H5File, obj: &str, msgs: &[Message], esize: usize) -> Result<Option<Vec<u8>>> {
    let value = if let Some(m) = find(msgs, 0x05) {
        let mut c = Cur::new(f, obj, "fill value message", &m.data, m.at);
        let v = c.u8()?;
        match v {
            1 | 2 => {
                c.skip(2)?;
                let defined = c.u8()?;
                if v == 2 && defined == 0 {
                    None
                } else {
                    let n = c.u32()? as usize;
                    Some(c.bytes(n)?.to_vec())
                }
            }
            3 => {
                let flags = c.u8()?;
                if flags & 0x20 != 0 {
                    let n = c.u32()? as usize;
                    Some(c.bytes(n)?.to_vec())
                } else {
                    None
                }
            }
            v => return Err(c.err(format!("version {v} (1, 2 or 3 expected)"))),
        }
    } else if let Some(m) = find(msgs, 0x04) {
        let mut c = Cur::new(f, obj, "fill value message", &m.data, m.at);
        let n = c.u32()? as usize;
        Some(c.bytes(n)?.to_vec())
    } else {
        None
    };
    match value {
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.len() != esize => Err(f.err(
            obj,
            0,
            format!("fill value of {} bytes for {esize}-byte elements", v.len()),
        )),
        Some(v) if v.iter().all(|&b| b == 0) => Ok(None),
        v => Ok(v),
    }
}
