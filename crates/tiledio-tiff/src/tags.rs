//! IFD entries and their serialisation (little-endian, classic TIFF or BigTIFF).

/// One IFD entry: tag, field type, count, and the little-endian value bytes.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) tag: u16,
    typ: u16,
    count: u64,
    data: Vec<u8>,
}

impl Entry {
    pub(crate) fn shorts(tag: u16, v: &[u16]) -> Entry {
        Entry {
            tag,
            typ: 3,
            count: v.len() as u64,
            data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    pub(crate) fn long(tag: u16, v: u32) -> Entry {
        Entry {
            tag,
            typ: 4,
            count: 1,
            data: v.to_le_bytes().to_vec(),
        }
    }
    pub(crate) fn ascii(tag: u16, s: &str) -> Entry {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        Entry {
            tag,
            typ: 2,
            count: data.len() as u64,
            data,
        }
    }
    pub(crate) fn rational(tag: u16, v: f64) -> Entry {
        let den = 10_000u32;
        let num = (v * den as f64).round().clamp(0.0, u32::MAX as f64) as u32;
        let mut data = num.to_le_bytes().to_vec();
        data.extend_from_slice(&den.to_le_bytes());
        Entry {
            tag,
            typ: 5,
            count: 1,
            data,
        }
    }
    /// LONG (classic) or LONG8 (BigTIFF) offsets or byte counts.
    pub(crate) fn offsets(tag: u16, v: &[u64], big: bool) -> Entry {
        if big {
            Entry {
                tag,
                typ: 16,
                count: v.len() as u64,
                data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            }
        } else {
            Entry {
                tag,
                typ: 4,
                count: v.len() as u64,
                data: v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect(),
            }
        }
    }
    /// IFD (classic) or IFD8 (BigTIFF) pointers.
    pub(crate) fn ifds(tag: u16, v: &[u64], big: bool) -> Entry {
        let mut e = Entry::offsets(tag, v, big);
        e.typ = if big { 18 } else { 13 };
        e
    }
}

fn field_size(big: bool) -> usize {
    if big { 8 } else { 4 }
}

/// Bytes an IFD takes, out-of-line values included (each padded to an even length).
pub(crate) fn ifd_size(entries: &[Entry], big: bool) -> u64 {
    let (head, ent, next) = if big { (8, 20, 8) } else { (2, 12, 4) };
    let extra: usize = entries
        .iter()
        .filter(|e| e.data.len() > field_size(big))
        .map(|e| e.data.len().next_multiple_of(2))
        .sum();
    (head + ent * entries.len() + next + extra) as u64
}

/// Serialises an IFD placed at `at`, its out-of-line values right after it.
pub(crate) fn encode_ifd(entries: &[Entry], at: u64, big: bool, next: u64) -> Vec<u8> {
    let fs = field_size(big);
    let (head, ent, nsize) = if big { (8, 20, 8) } else { (2, 12, 4) };
    let mut out = Vec::with_capacity(ifd_size(entries, big) as usize);
    let mut extra = Vec::new();
    let mut extra_at = at + (head + ent * entries.len() + nsize) as u64;
    if big {
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    } else {
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.typ.to_le_bytes());
        if big {
            out.extend_from_slice(&e.count.to_le_bytes());
        } else {
            out.extend_from_slice(&(e.count as u32).to_le_bytes());
        }
        let mut field = vec![0u8; fs];
        if e.data.len() <= fs {
            field[..e.data.len()].copy_from_slice(&e.data);
        } else {
            let p = if big {
                extra_at.to_le_bytes().to_vec()
            } else {
                (extra_at as u32).to_le_bytes().to_vec()
            };
            field.copy_from_slice(&p);
            extra.extend_from_slice(&e.data);
            if e.data.len() % 2 == 1 {
                extra.push(0);
            }
            extra_at += e.data.len().next_multiple_of(2) as u64;
        }
        out.extend_from_slice(&field);
    }
    if big {
        out.extend_from_slice(&next.to_le_bytes());
    } else {
        out.extend_from_slice(&(next as u32).to_le_bytes());
    }
    out.extend_from_slice(&extra);
    out
}
