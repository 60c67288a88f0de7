//! The two HDF5 filters DECTRIS detectors write, decoded and encoded on the CPU: bitshuffle +
//! LZ4 (filter 32008) and LZ4 (filter 32004). Every chunk must decode to exactly its declared
//! size from a complete stream; anything else is an error (never different pixels). The
//! encoders (for the HDF5 writer and Stream V2 senders) write the same framing; one bit
//! transpose serves both directions.

/// Why a chunk did not decode.
pub type DecodeError = String;

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap_or_default())
}
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap_or_default())
}

/// The uncompressed size a bitshuffle-LZ4 or LZ4 chunk declares (its first 8 bytes, big-endian).
///
/// ```
/// assert_eq!(tiledio_ptycho::declared_size(&[0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]), Some(256));
/// ```
pub fn declared_size(chunk: &[u8]) -> Option<u64> {
    (chunk.len() >= 12).then(|| be_u64(chunk))
}

/// Decodes one LZ4 block into exactly `out.len()` bytes.
fn lz4_block(src: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    match lz4_flex::block::decompress_into(src, out) {
        Ok(n) if n == out.len() => Ok(()),
        Ok(n) => Err(format!("an LZ4 block decoded to {n} bytes, not {}", out.len())),
        Err(e) => Err(format!("LZ4 block: {e}")),
    }
}

/// Decodes a bitshuffle-LZ4 chunk (HDF5 filter 32008: 8-byte big-endian total size, 4-byte
/// big-endian block size in bytes, then for each block a 4-byte big-endian compressed length and
/// an LZ4 block holding the bit-shuffled elements; the last `n % 8` elements follow uncompressed
/// and unshuffled) of `elem_size`-byte elements into `out`, which must be exactly the chunk's
/// size.
///
/// ```
/// // 3 u16 elements (fewer than 8): no block, the elements are copied as they are
/// let mut chunk = vec![0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0x20, 0];
/// chunk.extend([1, 0, 2, 0, 3, 0]);
/// let mut out = [0u8; 6];
/// tiledio_ptycho::decode_bitshuffle_lz4(&chunk, 2, &mut out)?;
/// assert_eq!(out, [1, 0, 2, 0, 3, 0]);
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// A one-line reason: a header that disagrees with `out`, a truncated stream, an LZ4 error, a
/// block decoding short, or bytes left over.
pub fn decode_bitshuffle_lz4(chunk: &[u8], elem_size: usize, out: &mut [u8]) -> Result<(), DecodeError> {
    if !(1..=16).contains(&elem_size) {
        return Err(format!("element size {elem_size}"));
    }
    if chunk.len() < 12 {
        return Err(format!("{} bytes: shorter than the 12-byte header", chunk.len()));
    }
    let total = be_u64(chunk);
    if total != out.len() as u64 {
        return Err(format!("declares {total} bytes, the chunk holds {}", out.len()));
    }
    if !out.len().is_multiple_of(elem_size) {
        return Err(format!(
            "{} bytes is not a whole number of {elem_size}-byte elements",
            out.len()
        ));
    }
    let block_bytes = be_u32(&chunk[8..]) as usize;
    let n = out.len() / elem_size;
    // bitshuffle's default block (0 in the filter options) is chosen by the writer; the header
    // holds the one used, a multiple of 8 elements
    let block = block_bytes / elem_size;
    if n >= 8 && (block == 0 || !block_bytes.is_multiple_of(elem_size) || !block.is_multiple_of(8)) {
        return Err(format!("block size of {block_bytes} bytes"));
    }
    // find the blocks first (each is preceded by its compressed length), then decode them in
    // parallel: a megabyte frame has dozens of independent blocks, and a stream's receiving
    // thread would otherwise decode them one after another
    let mut pos = 12usize;
    let mut done = 0usize; // elements
    let mut blocks: Vec<(&[u8], usize)> = Vec::new(); // (compressed block, first element)
    while n - done >= 8 {
        let len = if n - done >= block { block } else { (n - done) & !7 };
        blocks.push((next_block(chunk, &mut pos, || format!("element {done}"))?, done));
        done += len;
    }
    let decode = |scratch: &mut Vec<u8>, (src, first): (&[u8], usize), dst: &mut [u8]| -> Result<(), DecodeError> {
        scratch.resize(dst.len(), 0);
        lz4_block(src, scratch).map_err(|e| format!("{e} (block at element {first})"))?;
        bitunshuffle(scratch, dst.len() / elem_size, elem_size, dst);
        Ok(())
    };
    let body = &mut out[..done * elem_size];
    if blocks.len() >= 4 {
        use rayon::prelude::*;
        body.par_chunks_mut(block * elem_size)
            .zip(blocks.par_iter())
            .try_for_each_init(Vec::new, |scratch, (dst, &b)| decode(scratch, b, dst))?;
    } else {
        let mut scratch = Vec::new();
        for (dst, &b) in body.chunks_mut(block.max(1) * elem_size).zip(&blocks) {
            decode(&mut scratch, b, dst)?;
        }
    }
    let rest = (n - done) * elem_size;
    let tail = chunk
        .get(pos..pos + rest)
        .ok_or_else(|| format!("the last {rest} bytes run past the chunk"))?;
    out[done * elem_size..].copy_from_slice(tail);
    pos += rest;
    if pos != chunk.len() {
        return Err(format!("{} bytes left over after the data", chunk.len() - pos));
    }
    Ok(())
}

/// Decodes an HDF5 LZ4 chunk (filter 32004: 8-byte big-endian total size, 4-byte big-endian
/// block size, then for each block a 4-byte big-endian compressed length and the block, stored
/// as is when that length equals the block's size) into `out`, exactly the chunk's size.
///
/// ```
/// let data = b"hello hello hello hello";
/// let block = lz4_flex::block::compress(data);
/// let mut chunk = (data.len() as u64).to_be_bytes().to_vec();
/// chunk.extend(1024u32.to_be_bytes());
/// chunk.extend((block.len() as u32).to_be_bytes());
/// chunk.extend(&block);
/// let mut out = vec![0u8; data.len()];
/// tiledio_ptycho::decode_lz4(&chunk, &mut out)?;
/// assert_eq!(&out, data);
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// A one-line reason, as [`decode_bitshuffle_lz4`].
pub fn decode_lz4(chunk: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    if chunk.len() < 12 {
        return Err(format!("{} bytes: shorter than the 12-byte header", chunk.len()));
    }
    let total = be_u64(chunk);
    if total != out.len() as u64 {
        return Err(format!("declares {total} bytes, the chunk holds {}", out.len()));
    }
    let block = be_u32(&chunk[8..]) as usize;
    if block == 0 && !out.is_empty() {
        return Err("block size 0".into());
    }
    let mut pos = 12usize;
    let mut done = 0usize;
    while done < out.len() {
        let len = block.min(out.len() - done);
        let src = next_block(chunk, &mut pos, || format!("byte {done}"))?;
        let csize = src.len();
        let dst = &mut out[done..done + len];
        if csize == len {
            dst.copy_from_slice(src);
        } else {
            lz4_block(src, dst).map_err(|e| format!("{e} (block at byte {done})"))?;
        }
        done += len;
    }
    if pos != chunk.len() {
        return Err(format!("{} bytes left over after the data", chunk.len() - pos));
    }
    Ok(())
}

/// Transposes the 8×8 bit matrix held in `x` (byte `r`, bit `c` ↔ byte `c`, bit `r`).
#[inline(always)]
fn transpose8x8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// Bytes `g0 .. g0 + 8` of the 8 bit-rows `p`, transposed: element `c` holds byte `g0 + c` of
/// every row (row `k` in byte `k`), the input of [`transpose8x8`] for group `g0 + c`.
fn gather8(p: &[&[u8]; 8], g0: usize) -> [u64; 8] {
    let mut r: [u64; 8] = std::array::from_fn(|k| {
        let b = &p[k][g0..g0 + 8];
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    });
    if r == [0; 8] {
        return r;
    }
    // 8×8 byte transpose in three rounds of swaps: 1-byte, 2-byte, then 4-byte blocks
    for (shift, mask, step) in [
        (8, 0x00FF_00FF_00FF_00FFu64, 1),
        (16, 0x0000_FFFF_0000_FFFF, 2),
        (32, 0x0000_0000_FFFF_FFFF, 4),
    ] {
        for k in 0..8 {
            if k & step == 0 {
                let t = ((r[k] >> shift) ^ r[k + step]) & mask;
                r[k + step] ^= t;
                r[k] ^= t << shift;
            }
        }
    }
    r
}

/// One group's bit transpose ([`transpose8x8`]) as bytes, zero skipped.
fn bits8(x: u64) -> [u8; 8] {
    if x == 0 { [0; 8] } else { transpose8x8(x).to_le_bytes() }
}

/// Undoes bitshuffle's transpose of a block of `n` (a multiple of 8) elements of `es` bytes:
/// in the shuffled block, bit-row `8 j + k` (of `n / 8` bytes) holds bit `k` of byte `j` of
/// every element, element `i` at bit `i % 8` of byte `i / 8`.
pub(crate) fn bitunshuffle(src: &[u8], n: usize, es: usize, out: &mut [u8]) {
    let row = n / 8;
    let (src, out) = (&src[..es * 8 * row], &mut out[..n * es]);
    // the 8 bit-rows of byte j of every element, each `row` bytes (sliced once, so the loop
    // below indexes within them without further checks in the common case)
    let rows_of = |j: usize| -> [&[u8]; 8] { std::array::from_fn(|k| &src[(j * 8 + k) * row..(j * 8 + k + 1) * row]) };
    // gathers byte g of the 8 bit-rows and transposes them: bytes j of elements 8g .. 8g+8.
    // Detector frames are mostly small counts: the high bytes' rows are zero, skip the work.
    let gather = |p: &[&[u8]; 8], g: usize| -> [u8; 8] {
        let x = u64::from_le_bytes(std::array::from_fn(|k| p[k][g]));
        if x == 0 { [0; 8] } else { transpose8x8(x).to_le_bytes() }
    };
    if es == 2 {
        // the detectors' u16: both bytes of 8 elements at once, 16 contiguous output bytes;
        // 8 groups at a time where the rows allow (one u64 load per bit-row and an 8×8 byte
        // transpose instead of 64 byte loads), and 8 groups of zeros skipped at once
        let (lo, hi) = (rows_of(0), rows_of(1));
        let wide = row / 8 * 8;
        for g0 in (0..wide).step_by(8) {
            let a = gather8(&lo, g0);
            let b = gather8(&hi, g0);
            let o = &mut out[g0 * 16..(g0 + 8) * 16];
            if a == [0; 8] && b == [0; 8] {
                o.fill(0);
                continue;
            }
            for c in 0..8 {
                let (x, y) = (bits8(a[c]), bits8(b[c]));
                let oc = &mut o[c * 16..(c + 1) * 16];
                for r in 0..8 {
                    oc[2 * r] = x[r];
                    oc[2 * r + 1] = y[r];
                }
            }
        }
        for (g, o) in out.chunks_exact_mut(16).enumerate().skip(wide) {
            let (a, b) = (gather(&lo, g), gather(&hi, g));
            for r in 0..8 {
                o[2 * r] = a[r];
                o[2 * r + 1] = b[r];
            }
        }
        return;
    }
    for j in 0..es {
        let p = rows_of(j);
        for g in 0..row {
            let y = gather(&p, g);
            let base = g * 8 * es + j;
            for (r, b) in y.iter().enumerate() {
                out[base + r * es] = *b;
            }
        }
    }
}

/// bitshuffle's transpose of `n` (a multiple of 8) elements of `es` bytes into `out`: bit-row
/// `8 j + k` (of `n / 8` bytes) holds bit `k` of byte `j` of every element.
fn bitshuffle_into(src: &[u8], n: usize, es: usize, out: &mut [u8]) {
    let row = n / 8;
    for j in 0..es {
        let planes = &mut out[j * 8 * row..(j + 1) * 8 * row];
        for g in 0..row {
            let mut x = 0u64;
            for r in 0..8 {
                x |= (src[(g * 8 + r) * es + j] as u64) << (8 * r);
            }
            let y = transpose8x8(x).to_le_bytes();
            for (k, b) in y.iter().enumerate() {
                planes[k * row + g] = *b;
            }
        }
    }
}

/// bitshuffle's default block for `elem_size`-byte elements (`bshuf_default_block_size`):
/// 8 KiB of elements, rounded down to a multiple of 8 elements, at least 128.
pub(crate) fn default_block(elem_size: usize) -> usize {
    ((8192 / elem_size.max(1)) & !7).max(128)
}

/// Appends the LZ4 block of `src` to `out`; returns its length.
fn lz4_append(src: &[u8], out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.resize(at + lz4_flex::block::get_maximum_output_size(src.len()), 0);
    match lz4_flex::block::compress_into(src, &mut out[at..]) {
        Ok(n) => out.truncate(at + n),
        Err(_) => {
            // not reached: the output has the largest size a block can take
            out.truncate(at);
            out.extend(lz4_flex::block::compress(src));
        }
    }
    out.len() - at
}

/// Encodes `data` (`elem_size`-byte elements) as a bitshuffle-LZ4 chunk (HDF5 filter 32008, the
/// framing [`decode_bitshuffle_lz4`] reads): 8-byte big-endian size, 4-byte big-endian block
/// size in bytes, for each block of `block` elements (0: bitshuffle's default, 8 KiB of
/// elements; otherwise a multiple of 8) a 4-byte big-endian length and the LZ4 block of the
/// bit-shuffled elements (the last block shortened to a multiple of 8 elements), then the last
/// `n % 8` elements as they are.
///
/// ```
/// let data: Vec<u8> = (0..1000u16).flat_map(|v| (v / 10).to_le_bytes()).collect();
/// let chunk = tiledio_ptycho::encode_bitshuffle_lz4(&data, 2, 0)?;
/// assert!(chunk.len() < data.len() / 4);
/// let mut back = vec![0u8; data.len()];
/// tiledio_ptycho::decode_bitshuffle_lz4(&chunk, 2, &mut back)?;
/// assert_eq!(back, data);
/// # Ok::<(), String>(())
/// ```
///
/// # Errors
/// A one-line reason: an element size outside 1..=16, data that is not whole elements, a block
/// that is not a multiple of 8 or whose size in bytes does not fit the header.
pub fn encode_bitshuffle_lz4(data: &[u8], elem_size: usize, block: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    encode_bitshuffle_lz4_into(data, elem_size, block, &mut out)?;
    Ok(out)
}

/// [`encode_bitshuffle_lz4`] appending to `out` (whose earlier bytes are kept).
pub(crate) fn encode_bitshuffle_lz4_into(
    data: &[u8],
    elem_size: usize,
    block: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let es = elem_size;
    if !(1..=16).contains(&es) {
        return Err(format!("element size {es}"));
    }
    if !data.len().is_multiple_of(es) {
        return Err(format!(
            "{} bytes is not a whole number of {es}-byte elements",
            data.len()
        ));
    }
    let block = if block == 0 { default_block(es) } else { block };
    let block_bytes = block
        .checked_mul(es)
        .and_then(|b| u32::try_from(b).ok())
        .filter(|_| block.is_multiple_of(8))
        .ok_or_else(|| format!("a block of {block} elements of {es} bytes"))?;
    let n = data.len() / es;
    out.extend((data.len() as u64).to_be_bytes());
    out.extend(block_bytes.to_be_bytes());
    let mut scratch = vec![0u8; block.min(n) * es];
    let mut done = 0usize;
    while n - done >= 8 {
        let len = if n - done >= block { block } else { (n - done) & !7 };
        let sh = &mut scratch[..len * es];
        bitshuffle_into(&data[done * es..(done + len) * es], len, es, sh);
        let at = out.len();
        out.extend([0u8; 4]);
        let c = lz4_append(sh, out);
        let c = u32::try_from(c).map_err(|_| format!("an LZ4 block of {c} bytes"))?;
        out[at..at + 4].copy_from_slice(&c.to_be_bytes());
        done += len;
    }
    out.extend(&data[done * es..]);
    Ok(())
}

/// The block size [`encode_lz4`] uses: 1 MiB.
pub(crate) const LZ4_BLOCK: usize = 1 << 20;

/// Encodes `data` as an HDF5 LZ4 chunk (filter 32004, the framing [`decode_lz4`] reads):
/// 8-byte big-endian size, 4-byte big-endian block size (1 MiB), then for each block a 4-byte
/// big-endian length and the LZ4 block, or the block as it is where LZ4 does not shrink it.
///
/// ```
/// let data = vec![7u8; 5000];
/// let chunk = tiledio_ptycho::encode_lz4(&data);
/// assert!(chunk.len() < 100);
/// let mut back = vec![0u8; data.len()];
/// tiledio_ptycho::decode_lz4(&chunk, &mut back)?;
/// assert_eq!(back, data);
/// # Ok::<(), String>(())
/// ```
pub fn encode_lz4(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    encode_lz4_into(data, &mut out);
    out
}

/// [`encode_lz4`] appending to `out` (whose earlier bytes are kept).
pub(crate) fn encode_lz4_into(data: &[u8], out: &mut Vec<u8>) {
    out.extend((data.len() as u64).to_be_bytes());
    out.extend((LZ4_BLOCK as u32).to_be_bytes());
    for b in data.chunks(LZ4_BLOCK) {
        let at = out.len();
        out.extend([0u8; 4]);
        let mut c = lz4_append(b, out);
        if c >= b.len() {
            // stored as is: the decoders take a block of its own size as uncompressed
            out.truncate(at + 4);
            out.extend(b);
            c = b.len();
        }
        out[at..at + 4].copy_from_slice(&(c as u32).to_be_bytes());
    }
}

/// bitshuffle's transpose by its bitwise definition (the tests' reference).
#[cfg(test)]
pub(crate) fn bitshuffle(src: &[u8], n: usize, es: usize) -> Vec<u8> {
    let row = n / 8;
    let mut out = vec![0u8; n * es];
    for i in 0..n {
        for j in 0..es {
            for k in 0..8 {
                if src[i * es + j] >> k & 1 == 1 {
                    out[(8 * j + k) * row + i / 8] |= 1 << (i % 8);
                }
            }
        }
    }
    out
}

/// The next compressed block of a chunk at `*pos` (a 4-byte big-endian size, then the block),
/// moving `*pos` past it; `at` names the block's place in the output for errors.
fn next_block<'a>(chunk: &'a [u8], pos: &mut usize, at: impl Fn() -> String) -> Result<&'a [u8], String> {
    let p = *pos;
    let csize = chunk
        .get(p..p.saturating_add(4))
        .map(be_u32)
        .ok_or_else(|| format!("truncated at byte {p} (block at {})", at()))? as usize;
    let src = chunk.get(p + 4..(p + 4).saturating_add(csize)).ok_or_else(|| {
        format!(
            "block at byte {} of {csize} bytes runs past the chunk ({})",
            p + 4,
            chunk.len()
        )
    })?;
    *pos = p + 4 + csize;
    Ok(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshuffle_inverts_the_bitwise_definition() {
        for es in [1, 2, 4, 8] {
            for n in [8, 16, 64, 1024] {
                let src: Vec<u8> = (0..n * es).map(|i| (i * 37 % 251) as u8 ^ (i >> 3) as u8).collect();
                let sh = bitshuffle(&src, n, es);
                let mut back = vec![0u8; n * es];
                bitunshuffle(&sh, n, es, &mut back);
                assert_eq!(back, src, "es {es} n {n}");
            }
        }
    }

    /// Photon-count-like data (small values, most bit-rows zero: the decoder skips those).
    #[test]
    fn unshuffle_of_sparse_counts() {
        for es in [1, 2, 4] {
            let n = 4096;
            let src: Vec<u8> = (0..n)
                .flat_map(|i| {
                    let v = if i % 97 == 0 { (i % 5) as u32 } else { 0 };
                    v.to_le_bytes()[..es].to_vec()
                })
                .collect();
            let mut back = vec![0u8; n * es];
            bitunshuffle(&bitshuffle(&src, n, es), n, es, &mut back);
            assert_eq!(back, src, "es {es}");
        }
    }

    #[test]
    fn the_forward_transpose_is_the_bitwise_definition() {
        for es in [1, 2, 4, 8, 16] {
            for n in [8, 16, 64, 1024] {
                let src: Vec<u8> = (0..n * es).map(|i| (i * 37 % 251) as u8 ^ (i >> 3) as u8).collect();
                let mut sh = vec![0u8; n * es];
                bitshuffle_into(&src, n, es, &mut sh);
                assert_eq!(sh, bitshuffle(&src, n, es), "es {es} n {n}");
            }
        }
    }

    #[test]
    fn round_trips_with_partial_blocks_and_a_tail() {
        for (n, es, block) in [
            (1000, 2, 256),
            (8, 4, 8),
            (13, 2, 8),
            (4099, 4, 1024),
            (5, 2, 8),
            (0, 2, 0),
        ] {
            let data: Vec<u8> = (0..n * es).map(|i| (i % 7) as u8 * (i % 3) as u8).collect();
            let c = encode_bitshuffle_lz4(&data, es, block).unwrap();
            let mut out = vec![0u8; n * es];
            decode_bitshuffle_lz4(&c, es, &mut out).unwrap();
            assert_eq!(out, data);
            if n == 0 {
                continue;
            }
            // damaged: truncated, too long, wrong size
            assert!(decode_bitshuffle_lz4(&c[..c.len() - 1], es, &mut out).is_err());
            let mut longer = c.clone();
            longer.push(0);
            assert!(decode_bitshuffle_lz4(&longer, es, &mut out).is_err());
            assert!(decode_bitshuffle_lz4(&c, es, &mut out[..n * es - es]).is_err());
        }
    }

    #[test]
    fn encoders_round_trip_through_the_decoders() {
        for (n, es) in [
            (0, 2),
            (5, 2),
            (8, 1),
            (4099, 2),
            (10_000, 4),
            (3000, 8),
            (65_537, 1),
            (700, 16),
        ] {
            let data: Vec<u8> = (0..n * es).map(|i| ((i * 7) % 13) as u8 * (i % 3) as u8).collect();
            let c = encode_bitshuffle_lz4(&data, es, 0).unwrap();
            // the header holds bitshuffle's default block, in bytes
            assert_eq!(be_u32(&c[8..]) as usize, default_block(es) * es);
            let mut out = vec![0u8; data.len()];
            decode_bitshuffle_lz4(&c, es, &mut out).unwrap();
            assert_eq!(out, data, "bslz4 n {n} es {es}");
            let c = encode_lz4(&data);
            let mut out = vec![0u8; data.len()];
            decode_lz4(&c, &mut out).unwrap();
            assert_eq!(out, data, "lz4 n {n} es {es}");
        }
        // incompressible data is stored as is, across more than one block
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..LZ4_BLOCK + 5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let c = encode_lz4(&noise);
        assert_eq!(c.len(), 12 + 4 + LZ4_BLOCK + 4 + 5000);
        let mut out = vec![0u8; noise.len()];
        decode_lz4(&c, &mut out).unwrap();
        assert_eq!(out, noise);
        // bad arguments are errors, not panics
        assert!(encode_bitshuffle_lz4(&[0; 6], 4, 0).is_err());
        assert!(encode_bitshuffle_lz4(&[0; 8], 0, 0).is_err());
        assert!(encode_bitshuffle_lz4(&[0; 8], 2, 12).is_err());
        assert!(encode_bitshuffle_lz4(&[0; 8], 16, 1 << 29).is_err());
    }
}
