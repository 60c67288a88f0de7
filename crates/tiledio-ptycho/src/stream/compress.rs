//! Encoders for the compressed byte strings of Stream V2 (CBOR tag 56500): bitshuffle + LZ4
//! and LZ4, both in the HDF5 filter framing that DECTRIS specifies for the tag ("bslz4":
//! filter 32008, "lz4": filter 32004), so that [`crate::decode_bitshuffle_lz4`] and
//! [`crate::decode_lz4`] read them back unchanged.

/// bitshuffle's default block: 8 KiB of elements, a multiple of 8 elements, at least 128.
fn default_block(elem_size: usize) -> usize {
    ((8192 / elem_size.max(1)) & !7).max(128)
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

/// Bitshuffle + LZ4 in the HDF5 framing: 8-byte big-endian size, 4-byte big-endian block
/// size in bytes, per block a 4-byte big-endian compressed length and the LZ4 block of the
/// shuffled elements, then the last `n % 8` elements as they are.
pub(crate) fn encode_bitshuffle_lz4(data: &[u8], elem_size: usize) -> Vec<u8> {
    let es = elem_size.max(1);
    let n = data.len() / es;
    let block = default_block(es);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    out.extend((data.len() as u64).to_be_bytes());
    out.extend(((block * es) as u32).to_be_bytes());
    let mut scratch = vec![0u8; block * es];
    let mut done = 0usize;
    while n - done >= 8 {
        let len = if n - done >= block { block } else { (n - done) & !7 };
        let sh = &mut scratch[..len * es];
        bitshuffle_into(&data[done * es..(done + len) * es], len, es, sh);
        let c = lz4_flex::block::compress(sh);
        out.extend((c.len() as u32).to_be_bytes());
        out.extend(c);
        done += len;
    }
    out.extend(&data[done * es..]);
    out
}

/// LZ4 in the HDF5 framing (8-byte big-endian size, 4-byte big-endian block size, per block a
/// 4-byte big-endian length and the block; a block that does not shrink is stored as is).
pub(crate) fn encode_lz4(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 1 << 20;
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    out.extend((data.len() as u64).to_be_bytes());
    out.extend((BLOCK as u32).to_be_bytes());
    for b in data.chunks(BLOCK) {
        let c = lz4_flex::block::compress(b);
        if c.len() >= b.len() {
            out.extend((b.len() as u32).to_be_bytes());
            out.extend(b);
        } else {
            out.extend((c.len() as u32).to_be_bytes());
            out.extend(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_round_trip_through_the_crate_decoders() {
        for (n, es) in [(0, 2), (5, 2), (8, 1), (4099, 2), (10_000, 4), (3000, 8), (65_537, 1)] {
            let data: Vec<u8> = (0..n * es).map(|i| ((i * 7) % 13) as u8 * (i % 3) as u8).collect();
            let c = encode_bitshuffle_lz4(&data, es);
            let mut out = vec![0u8; data.len()];
            crate::decode_bitshuffle_lz4(&c, es, &mut out).unwrap();
            assert_eq!(out, data, "bslz4 n {n} es {es}");
            let c = encode_lz4(&data);
            let mut out = vec![0u8; data.len()];
            crate::decode_lz4(&c, &mut out).unwrap();
            assert_eq!(out, data, "lz4 n {n} es {es}");
        }
        // incompressible data is stored as is
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut out = vec![0u8; noise.len()];
        crate::decode_lz4(&encode_lz4(&noise), &mut out).unwrap();
        assert_eq!(out, noise);
    }
}
