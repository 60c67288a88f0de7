//! Chunk indexes → one table of chunk locations: the v1 B-tree (type 1, raw data chunks) and
//! the 1.10 indexes single chunk, implicit, fixed array and extensible array.

use super::dataset::Index;
use super::format::{BtreeV1, Cur, H5File, UNDEF};
use crate::error::{PtychoError, Result, unsupported};
use std::collections::HashMap;

/// The most chunks a dataset may have.
const MAX_CHUNKS: u64 = 1 << 22;

/// Where one chunk is: absolute file offset (`UNDEF`: never written), stored size, filter mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    pub addr: u64,
    pub size: u64,
    pub mask: u32,
}

const MISSING: Loc = Loc {
    addr: UNDEF,
    size: 0,
    mask: 0,
};

/// Every chunk of a dataset seen as 3-D `(N, H, W)`, row-major over the chunk grid.
#[derive(Debug)]
pub(super) struct Table {
    pub grid: [u64; 3],
    pub chunk: [u64; 3],
    pub locs: Vec<Loc>,
}

/// What the table builder needs to know about the dataset.
pub(super) struct Geometry<'a> {
    pub dims: &'a [u64],
    pub maxdims: &'a [u64],
    pub chunk: &'a [u64],
    pub esize: usize,
    pub filtered: bool,
    /// The most bytes a stored (filtered) chunk may take.
    pub max_stored: u64,
}

impl Geometry<'_> {
    pub(super) fn chunk_bytes(&self) -> u64 {
        self.chunk.iter().product::<u64>() * self.esize as u64
    }
}

fn to3(v: &[u64], pad: u64) -> [u64; 3] {
    match *v {
        [a, b] => [pad, a, b],
        [a, b, c] => [a, b, c],
        _ => [pad, pad, pad],
    }
}

pub(super) fn chunk_err(f: &H5File, obj: &str, chunk: u64, offset: u64, message: impl Into<String>) -> PtychoError {
    PtychoError::Chunk {
        path: f.path.clone(),
        dataset: obj.to_string(),
        chunk,
        offset,
        message: message.into(),
    }
}

/// Reads the chunk index into a table (every location bounds-checked against the file).
pub(super) fn table(f: &H5File, obj: &str, g: &Geometry<'_>, index: &Index) -> Result<Table> {
    let rank = g.dims.len();
    let grid_r: Vec<u64> = g.dims.iter().zip(g.chunk).map(|(d, c)| d.div_ceil(*c)).collect();
    let total = grid_r
        .iter()
        .try_fold(1u64, |a, &b| a.checked_mul(b))
        .filter(|&t| t <= MAX_CHUNKS)
        .ok_or_else(|| f.err(obj, 0, format!("chunk grid {grid_r:?} has too many chunks")))?;
    tiledio_io::check_memory(total * std::mem::size_of::<Loc>() as u64, "HDF5 chunk table")?;
    let mut locs = vec![MISSING; total as usize];
    // strides of the linear chunk index the 1.10 indexes use: row-major over the chunk grid of
    // the maximum dimensions (the first dimension's extent never matters)
    let mut strides = vec![1u64; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        let m = g.maxdims[d + 1];
        if m == UNDEF {
            return Err(unsupported(
                &f.path,
                format!("{obj}: an unlimited dimension other than the first"),
            ));
        }
        strides[d] = strides[d + 1]
            .checked_mul(m.div_ceil(g.chunk[d + 1]).max(1))
            .ok_or_else(|| f.err(obj, 0, "chunk index overflows"))?;
    }
    let linear = |t: u64| -> u64 {
        // table index (row-major over the current grid) → the index's linear index
        let mut rem = t;
        let mut idx = 0u64;
        for d in (0..rank).rev() {
            let c = rem % grid_r[d];
            rem /= grid_r[d];
            idx = idx.saturating_add(c.saturating_mul(strides[d]));
        }
        idx
    };
    let cb = g.chunk_bytes();
    match *index {
        Index::BtreeV1(addr) => {
            if addr != UNDEF {
                btree_v1(f, obj, g, &grid_r, addr, &mut locs)?;
            }
        }
        Index::Single { addr, filtered } => {
            if total != 1 {
                return Err(f.err(obj, 0, format!("single-chunk index for a grid of {total} chunks")));
            }
            let (size, mask) = filtered.unwrap_or((cb, 0));
            locs[0] = Loc { addr, size, mask };
        }
        Index::Implicit(addr) => {
            if g.filtered {
                return Err(f.err(obj, 0, "implicit chunk index on filtered data"));
            }
            if addr != UNDEF {
                for (t, l) in locs.iter_mut().enumerate() {
                    let off = linear(t as u64).checked_mul(cb).and_then(|o| o.checked_add(addr));
                    *l = Loc {
                        addr: off.unwrap_or(UNDEF - 1),
                        size: cb,
                        mask: 0,
                    };
                }
            }
        }
        Index::FixedArray(addr) => {
            if addr != UNDEF {
                let elems = fixed_array(f, obj, g, addr)?;
                for (t, l) in locs.iter_mut().enumerate() {
                    let i = linear(t as u64);
                    *l = usize::try_from(i)
                        .ok()
                        .and_then(|i| elems.get(i))
                        .copied()
                        .unwrap_or(MISSING);
                }
            }
        }
        Index::ExtensibleArray(addr) => {
            if addr != UNDEF {
                let mut ea = ExtArray::open(f, obj, g, addr)?;
                for (t, l) in locs.iter_mut().enumerate() {
                    *l = ea.get(linear(t as u64))?;
                }
            }
        }
    }
    // absolute offsets, checked against the file; unfiltered chunks are exactly their size
    for (t, l) in locs.iter_mut().enumerate() {
        if l.addr == UNDEF {
            *l = MISSING;
            continue;
        }
        if !g.filtered && l.size != cb {
            return Err(chunk_err(
                f,
                obj,
                t as u64,
                l.addr,
                format!("unfiltered chunk of {} bytes, {cb} expected", l.size),
            ));
        }
        if l.size > g.max_stored || l.size == 0 {
            return Err(chunk_err(
                f,
                obj,
                t as u64,
                l.addr,
                format!("stored size {} for a chunk of {cb} bytes", l.size),
            ));
        }
        let a = f.abs_opt(l.addr, l.size).ok_or_else(|| {
            chunk_err(
                f,
                obj,
                t as u64,
                l.addr,
                format!("{} bytes run past the end of the file ({} bytes)", l.size, f.len),
            )
        })?;
        l.addr = a;
    }
    Ok(Table {
        grid: to3(&grid_r, 1),
        chunk: to3(g.chunk, 1),
        locs,
    })
}

fn btree_v1(f: &H5File, obj: &str, g: &Geometry<'_>, grid: &[u64], root: u64, locs: &mut [Loc]) -> Result<()> {
    let rank = g.dims.len();
    let tree = BtreeV1 {
        node_type: 1,
        key: 8 + 8 * (rank + 1),
        max_nodes: 1 << 20,
        what: "chunk B-tree",
        cyclic: "chunk B-tree too deep or cyclic".into(),
    };
    f.walk_btree_v1(obj, root, &tree, |c, leaf| {
        let size = u64::from(c.u32()?);
        let mask = c.u32()?;
        let offs = (0..=rank).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
        let child = c.addr()?;
        if !leaf {
            return Ok(child);
        }
        let mut t = 0u64;
        let mut inside = true;
        for d in 0..rank {
            if offs[d] % g.chunk[d] != 0 {
                return Err(c.err(format!("chunk offset {offs:?} not on the chunk grid")));
            }
            let i = offs[d] / g.chunk[d];
            inside &= i < grid[d];
            t = t * grid[d] + i.min(grid[d].saturating_sub(1));
        }
        if offs[rank] != 0 {
            return Err(c.err(format!("chunk offset {offs:?} with a non-zero element offset")));
        }
        if inside {
            let l = &mut locs[t as usize];
            if l.addr != UNDEF {
                return Err(chunk_err(f, obj, t, child, "chunk listed twice in the B-tree"));
            }
            *l = Loc {
                addr: child,
                size,
                mask,
            };
        }
        Ok(child)
    })
}

/// Decodes `n` index elements (an address, and for filtered chunks a size and a filter mask).
fn elements(c: &mut Cur<'_>, n: u64, esz: usize, g: &Geometry<'_>, so: usize) -> Result<Vec<Loc>> {
    let mut v = Vec::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let addr = c.addr()?;
        let (size, mask) = if g.filtered {
            let s = c.uint(esz - so - 4)?;
            (s, c.u32()?)
        } else {
            (g.chunk_bytes(), 0)
        };
        v.push(Loc { addr, size, mask });
    }
    Ok(v)
}

/// The start of a fixed or extensible array header after signature `sig`: version, client
/// class and entry size. Returns the entry size, checked against the dataset.
fn array_header(f: &H5File, obj: &str, c: &mut Cur<'_>, sig: &[u8; 4], g: &Geometry<'_>) -> Result<usize> {
    c.sig(sig)?;
    let _v = c.u8()?;
    let client = c.u8()?;
    let esz = c.u8()? as usize;
    element_size(f, obj, c.at, client, esz, g)?;
    Ok(esz)
}

fn element_size(f: &H5File, obj: &str, at: u64, client: u8, esz: usize, g: &Geometry<'_>) -> Result<()> {
    let ok = match (client, g.filtered) {
        (0, false) => esz == f.so,
        (1, true) => esz > f.so + 4 && esz <= f.so + 4 + 8,
        _ => false,
    };
    if !ok {
        return Err(f.err(
            obj,
            at,
            format!(
                "chunk index of class {client} with {esz}-byte entries for {} data",
                if g.filtered { "filtered" } else { "unfiltered" }
            ),
        ));
    }
    Ok(())
}

fn bit(bits: &[u8], i: u64) -> bool {
    bits.get((i / 8) as usize).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

fn fixed_array(f: &H5File, obj: &str, g: &Geometry<'_>, addr: u64) -> Result<Vec<Loc>> {
    let hlen = (4 + 4 + f.sl + f.so + 4) as u64;
    let (h, at) = f.read_checked(obj, addr, hlen, "fixed array header")?;
    let mut c = Cur::new(f, obj, "fixed array header", &h, at);
    let esz = array_header(f, obj, &mut c, b"FAHD", g)?;
    let page_bits = c.u8()?;
    let n = c.len()?;
    let dblk = c.addr()?;
    if n > MAX_CHUNKS || page_bits > 32 {
        return Err(c.err(format!("{n} entries, pages of 2^{page_bits}")));
    }
    if dblk == UNDEF {
        return Ok(Vec::new());
    }
    let page = 1u64 << page_bits;
    let prefix = (4 + 2 + f.so) as u64;
    if n <= page {
        let (b, bat) = f.read_checked(obj, dblk, prefix + n * esz as u64 + 4, "fixed array data block")?;
        let mut c = Cur::new(f, obj, "fixed array data block", &b, bat);
        c.sig(b"FADB")?;
        c.skip(2 + f.so)?;
        return elements(&mut c, n, esz, g, f.so);
    }
    let npages = n.div_ceil(page);
    let bitmap = npages.div_ceil(8);
    let (b, bat) = f.read_checked(obj, dblk, prefix + bitmap + 4, "fixed array data block")?;
    let mut c = Cur::new(f, obj, "fixed array data block", &b, bat);
    c.sig(b"FADB")?;
    c.skip(2 + f.so)?;
    let bits = c.bytes(bitmap as usize)?.to_vec();
    let mut out = Vec::with_capacity(n as usize);
    let mut pa = dblk + prefix + bitmap + 4;
    for p in 0..npages {
        let k = page.min(n - p * page);
        let plen = k * esz as u64 + 4;
        if bit(&bits, p) {
            let (b, bat) = f.read_checked(obj, pa, plen, "fixed array page")?;
            let mut c = Cur::new(f, obj, "fixed array page", &b, bat);
            out.extend(elements(&mut c, k, esz, g, f.so)?);
        } else {
            out.extend(std::iter::repeat_n(MISSING, k as usize));
        }
        pa += plen;
    }
    Ok(out)
}

/// An extensible array being read: its parameters, index block and the blocks read so far.
struct ExtArray<'a> {
    f: &'a H5File,
    obj: &'a str,
    g: &'a Geometry<'a>,
    hdr: u64,
    esz: usize,
    max_bits: u8,
    idx_elmts: u64,
    min_elmts: u64,
    page_nelmts: u64,
    arr_off: usize,
    /// Per super block: data blocks, elements per data block, first element, first data block.
    sblk: Vec<(u64, u64, u64, u64)>,
    iblock_nsblks: usize,
    ielems: Vec<Loc>,
    dblk_addrs: Vec<u64>,
    sblk_addrs: Vec<u64>,
    /// Data block address → its elements (or pages).
    blocks: HashMap<u64, Vec<Loc>>,
    /// Super block address → (data block addresses, page-init bitmaps).
    supers: HashMap<u64, (Vec<u64>, Vec<u8>)>,
    max_idx: u64,
}

fn log2(v: u64) -> u32 {
    63 - v.max(1).leading_zeros()
}

impl<'a> ExtArray<'a> {
    fn open(f: &'a H5File, obj: &'a str, g: &'a Geometry<'a>, addr: u64) -> Result<ExtArray<'a>> {
        let hlen = (4 + 2 + 6 + 6 * f.sl + f.so + 4) as u64;
        let (h, at) = f.read_checked(obj, addr, hlen, "extensible array header")?;
        let mut c = Cur::new(f, obj, "extensible array header", &h, at);
        let esz = array_header(f, obj, &mut c, b"EAHD", g)?;
        let max_bits = c.u8()?;
        let idx_elmts = u64::from(c.u8()?);
        let min_elmts = u64::from(c.u8()?);
        let min_ptrs = u64::from(c.u8()?);
        let page_bits = c.u8()?;
        let pow2 = |v: u64| v > 0 && v.is_power_of_two();
        if !(1..=64).contains(&max_bits)
            || !pow2(min_elmts)
            || !pow2(min_ptrs)
            || page_bits > 32
            || u32::from(max_bits) < log2(min_elmts)
        {
            return Err(c.err(format!(
                "parameters: max bits {max_bits}, data block minimum {min_elmts}, pointers {min_ptrs}, page bits {page_bits}"
            )));
        }
        c.skip(4 * f.sl)?;
        let max_idx = c.len()?;
        c.skip(f.sl)?;
        let iblock = c.addr()?;
        let nsblks = 1 + (u32::from(max_bits) - log2(min_elmts)) as usize;
        let mut sblk = Vec::with_capacity(nsblks);
        let (mut start_idx, mut start_dblk) = (0u64, 0u64);
        for u in 0..nsblks {
            let nd = 1u64.checked_shl(u as u32 / 2).unwrap_or(0);
            let ne = 1u64
                .checked_shl((u as u32).div_ceil(2))
                .unwrap_or(0)
                .saturating_mul(min_elmts);
            sblk.push((nd, ne, start_idx, start_dblk));
            start_idx = start_idx.saturating_add(nd.saturating_mul(ne));
            start_dblk = start_dblk.saturating_add(nd);
        }
        let iblock_nsblks = (2 * log2(min_ptrs)) as usize;
        let ndblk = 2 * (min_ptrs - 1);
        let nsblk_addrs = nsblks.saturating_sub(iblock_nsblks) as u64;
        let mut ea = ExtArray {
            f,
            obj,
            g,
            hdr: addr,
            esz,
            max_bits,
            idx_elmts,
            min_elmts,
            page_nelmts: 1 << page_bits,
            arr_off: usize::from(max_bits).div_ceil(8),
            sblk,
            iblock_nsblks,
            ielems: Vec::new(),
            dblk_addrs: Vec::new(),
            sblk_addrs: Vec::new(),
            blocks: HashMap::new(),
            supers: HashMap::new(),
            max_idx,
        };
        if iblock == UNDEF {
            ea.max_idx = 0;
            return Ok(ea);
        }
        let ilen = (4 + 2 + f.so) as u64 + idx_elmts * esz as u64 + (ndblk + nsblk_addrs) * f.so as u64 + 4;
        let (b, bat) = f.read_checked(obj, iblock, ilen, "extensible array index block")?;
        let mut c = Cur::new(f, obj, "extensible array index block", &b, bat);
        c.sig(b"EAIB")?;
        c.skip(2)?;
        ea.check_header(&mut c)?;
        ea.ielems = elements(&mut c, idx_elmts, esz, g, f.so)?;
        ea.dblk_addrs = (0..ndblk).map(|_| c.addr()).collect::<Result<_>>()?;
        ea.sblk_addrs = (0..nsblk_addrs).map(|_| c.addr()).collect::<Result<_>>()?;
        Ok(ea)
    }

    /// The start of a data or super block after signature `sig`: version and client class, the
    /// header's address (checked) and the block's offset.
    fn block_prefix(&self, c: &mut Cur<'_>, sig: &[u8; 4]) -> Result<()> {
        c.sig(sig)?;
        c.skip(2)?;
        self.check_header(c)?;
        c.skip(self.arr_off)
    }

    fn check_header(&self, c: &mut Cur<'_>) -> Result<()> {
        let h = c.addr()?;
        if h != self.hdr {
            return Err(c.err(format!("points to header {h}, not {}", self.hdr)));
        }
        Ok(())
    }

    /// The element at linear index `idx` (missing where never written).
    fn get(&mut self, idx: u64) -> Result<Loc> {
        if idx >= self.max_idx || (self.max_bits < 64 && idx >> self.max_bits != 0) {
            return Ok(MISSING);
        }
        if idx < self.idx_elmts {
            return Ok(self.ielems.get(idx as usize).copied().unwrap_or(MISSING));
        }
        let j = idx - self.idx_elmts;
        let s = log2(j / self.min_elmts + 1) as usize;
        let Some(&(nd, ne, start_idx, start_dblk)) = self.sblk.get(s) else {
            return Ok(MISSING);
        };
        let Some(local) = j.checked_sub(start_idx) else {
            return Ok(MISSING);
        };
        let (d, e) = (local / ne, local % ne);
        let (daddr, page_init) = if s < self.iblock_nsblks {
            let Some(&a) = self.dblk_addrs.get((start_dblk + d) as usize) else {
                return Ok(MISSING);
            };
            (a, None)
        } else {
            let Some(&sa) = self.sblk_addrs.get(s - self.iblock_nsblks) else {
                return Ok(MISSING);
            };
            if sa == UNDEF {
                return Ok(MISSING);
            }
            let (addrs, bits) = self.super_block(sa, nd, ne)?;
            let a = addrs.get(d as usize).copied().unwrap_or(UNDEF);
            let npages = if ne > self.page_nelmts {
                ne / self.page_nelmts
            } else {
                0
            };
            let per = npages.div_ceil(8);
            let init = if npages > 0 {
                let p = e / self.page_nelmts;
                Some(bit(&bits[((d * per) as usize).min(bits.len())..], p))
            } else {
                None
            };
            (a, init)
        };
        if daddr == UNDEF || page_init == Some(false) {
            return Ok(MISSING);
        }
        if ne > self.page_nelmts {
            // paged data block: the page holding element e
            let p = e / self.page_nelmts;
            let prefix = (4 + 2 + self.f.so + self.arr_off + 4) as u64;
            let plen = self.page_nelmts * self.esz as u64 + 4;
            let pa = daddr
                .checked_add(prefix)
                .and_then(|v| v.checked_add(p.checked_mul(plen)?))
                .ok_or_else(|| self.f.err(self.obj, daddr, "extensible array page address overflows"))?;
            if !self.blocks.contains_key(&pa) {
                let (b, bat) = self.f.read_checked(self.obj, pa, plen, "extensible array page")?;
                let mut c = Cur::new(self.f, self.obj, "extensible array page", &b, bat);
                let v = elements(&mut c, self.page_nelmts, self.esz, self.g, self.f.so)?;
                self.blocks.insert(pa, v);
            }
            return Ok(self.blocks[&pa]
                .get((e % self.page_nelmts) as usize)
                .copied()
                .unwrap_or(MISSING));
        }
        if !self.blocks.contains_key(&daddr) {
            let len = (4 + 2 + self.f.so + self.arr_off) as u64 + ne * self.esz as u64 + 4;
            let (b, bat) = self
                .f
                .read_checked(self.obj, daddr, len, "extensible array data block")?;
            let mut c = Cur::new(self.f, self.obj, "extensible array data block", &b, bat);
            self.block_prefix(&mut c, b"EADB")?;
            let v = elements(&mut c, ne, self.esz, self.g, self.f.so)?;
            self.blocks.insert(daddr, v);
        }
        // a block cached under this address by another super block may be shorter
        Ok(self.blocks[&daddr].get(e as usize).copied().unwrap_or(MISSING))
    }

    fn super_block(&mut self, sa: u64, nd: u64, ne: u64) -> Result<(Vec<u64>, Vec<u8>)> {
        if let Some(v) = self.supers.get(&sa) {
            return Ok(v.clone());
        }
        let npages = if ne > self.page_nelmts {
            ne / self.page_nelmts
        } else {
            0
        };
        let bitmap = nd.saturating_mul(npages.div_ceil(8));
        let len = ((4 + 2 + self.f.so + self.arr_off + 4) as u64)
            .saturating_add(bitmap)
            .saturating_add(nd.saturating_mul(self.f.so as u64));
        let (b, bat) = self.f.read_checked(self.obj, sa, len, "extensible array super block")?;
        let mut c = Cur::new(self.f, self.obj, "extensible array super block", &b, bat);
        self.block_prefix(&mut c, b"EASB")?;
        let bits = c.bytes(bitmap as usize)?.to_vec();
        let addrs = (0..nd).map(|_| c.addr()).collect::<Result<Vec<_>>>()?;
        self.supers.insert(sa, (addrs.clone(), bits.clone()));
        Ok((addrs, bits))
    }
}
