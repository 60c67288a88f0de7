//! The two HDF5 filters DECTRIS detectors write, decoded on the CPU: bitshuffle + LZ4 (filter
//! 32008) and LZ4 (filter 32004). Every chunk must decode to exactly its declared size from a
//! complete stream; anything else is an error (never different pixels).

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
    let mut pos = 12usize;
    let mut done = 0usize; // elements
    let mut scratch = Vec::new();
    while n - done >= 8 {
        let len = if n - done >= block { block } else { (n - done) & !7 };
        let bytes = len * elem_size;
        let src = next_block(chunk, &mut pos, || format!("element {done}"))?;
        scratch.resize(bytes, 0);
        lz4_block(src, &mut scratch).map_err(|e| format!("{e} (block at element {done})"))?;
        bitunshuffle(
            &scratch,
            len,
            elem_size,
            &mut out[done * elem_size..(done + len) * elem_size],
        );
        done += len;
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

/// Undoes bitshuffle's transpose of a block of `n` (a multiple of 8) elements of `es` bytes:
/// in the shuffled block, bit-row `8 j + k` (of `n / 8` bytes) holds bit `k` of byte `j` of
/// every element, element `i` at bit `i % 8` of byte `i / 8`.
pub(crate) fn bitunshuffle(src: &[u8], n: usize, es: usize, out: &mut [u8]) {
    let row = n / 8;
    for j in 0..es {
        let planes = &src[j * 8 * row..(j + 1) * 8 * row];
        for g in 0..row {
            let mut x = 0u64;
            for k in 0..8 {
                x |= (planes[k * row + g] as u64) << (8 * k);
            }
            let y = transpose8x8(x).to_le_bytes();
            let base = g * 8 * es + j;
            for (r, b) in y.iter().enumerate() {
                out[base + r * es] = *b;
            }
        }
    }
}

/// bitshuffle's forward transpose (for tests and fixtures written here).
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

    fn encode(data: &[u8], es: usize, block: usize) -> Vec<u8> {
        let n = data.len() / es;
        let mut c = (data.len() as u64).to_be_bytes().to_vec();
        c.extend(((block * es) as u32).to_be_bytes());
        let mut done = 0;
        while n - done >= 8 {
            let len = if n - done >= block { block } else { (n - done) & !7 };
            let sh = bitshuffle(&data[done * es..(done + len) * es], len, es);
            let b = lz4_flex::block::compress(&sh);
            c.extend((b.len() as u32).to_be_bytes());
            c.extend(b);
            done += len;
        }
        c.extend(&data[done * es..]);
        c
    }

    #[test]
    fn round_trips_with_partial_blocks_and_a_tail() {
        for (n, es, block) in [(1000, 2, 256), (8, 4, 8), (13, 2, 8), (4099, 4, 1024), (5, 2, 8)] {
            let data: Vec<u8> = (0..n * es).map(|i| (i % 7) as u8 * (i % 3) as u8).collect();
            let c = encode(&data, es, block);
            let mut out = vec![0u8; n * es];
            decode_bitshuffle_lz4(&c, es, &mut out).unwrap();
            assert_eq!(out, data);
            // damaged: truncated, too long, wrong size
            assert!(decode_bitshuffle_lz4(&c[..c.len() - 1], es, &mut out).is_err());
            let mut longer = c.clone();
            longer.push(0);
            assert!(decode_bitshuffle_lz4(&longer, es, &mut out).is_err());
            assert!(decode_bitshuffle_lz4(&c, es, &mut out[..n * es - es]).is_err());
        }
    }
}
