//! The filter pipeline, undone chunk by chunk: bitshuffle-LZ4 (32008), LZ4 (32004), deflate (1)
//! and shuffle (2). The first filter of the pipeline (the last undone) writes straight into the
//! chunk's output, which it must fill exactly.

use super::dataset::{BITSHUFFLE, DEFLATE, Filter, LZ4, SHUFFLE};
use super::format::H5File;
use crate::bslz4::{DecodeError, declared_size, decode_bitshuffle_lz4, decode_lz4};
use crate::error::{Result, unsupported};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    BitshuffleLz4 { esize: usize },
    Lz4,
    Deflate,
    Shuffle { esize: usize },
}

/// A dataset's pipeline, checked to hold only filters this reader undoes.
#[derive(Clone, Debug, Default)]
pub(super) struct Pipeline {
    steps: Vec<Step>,
}

fn name(id: u16) -> &'static str {
    match id {
        1 => "deflate",
        2 => "shuffle",
        3 => "fletcher32",
        4 => "szip",
        5 => "nbit",
        6 => "scaleoffset",
        307 => "bzip2",
        32000 => "lzf",
        32001 => "blosc",
        32004 => "lz4",
        32008 => "bitshuffle",
        32015 => "zstd",
        32017 => "sz",
        32026 => "blosc2",
        _ => "unregistered here",
    }
}

impl Pipeline {
    /// Checks the filters of dataset `obj` of `esize`-byte elements.
    pub(super) fn new(f: &H5File, obj: &str, filters: &[Filter], esize: usize) -> Result<Pipeline> {
        let mut steps = Vec::new();
        for fl in filters {
            let bad = |why: &str| {
                unsupported(
                    &f.path,
                    format!(
                        "{obj}: filter {} ({}){why}; bitshuffle-LZ4, LZ4, deflate and shuffle are read",
                        fl.id,
                        name(fl.id)
                    ),
                )
            };
            let elem = |i: usize| fl.cd.get(i).map(|&v| v as usize).filter(|&v| v > 0).unwrap_or(esize);
            steps.push(match fl.id {
                BITSHUFFLE => {
                    match fl.cd.get(4) {
                        Some(2) => {}
                        Some(3) => return Err(bad(" with zstd")),
                        _ => return Err(bad(" without LZ4")),
                    }
                    let e = elem(2);
                    if !(1..=16).contains(&e) {
                        return Err(bad(&format!(" with {e}-byte elements")));
                    }
                    Step::BitshuffleLz4 { esize: e }
                }
                LZ4 => Step::Lz4,
                DEFLATE => Step::Deflate,
                SHUFFLE => Step::Shuffle { esize: elem(0) },
                _ => return Err(bad("")),
            });
        }
        Ok(Pipeline { steps })
    }

    /// Whether there is nothing to undo.
    pub(super) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Undoes the filters not skipped by `mask` on `raw` into `out` (exactly the chunk's size);
    /// `tmp` holds intermediate results between calls.
    pub(super) fn decode(
        &self,
        raw: &[u8],
        mask: u32,
        out: &mut [u8],
        tmp: &mut [Vec<u8>; 2],
    ) -> Result<(), DecodeError> {
        // the filters applied (not skipped by the mask), without allocating: at most 32
        let mut active = [Step::Lz4; 32];
        let mut n = 0;
        for (i, s) in self.steps.iter().enumerate() {
            if mask & (1 << i) == 0 {
                active[n] = *s;
                n += 1;
            }
        }
        let Some((&first, rest)) = active[..n].split_first() else {
            if raw.len() != out.len() {
                return Err(format!("{} bytes stored for a chunk of {}", raw.len(), out.len()));
            }
            out.copy_from_slice(raw);
            return Ok(());
        };
        let limit = out.len().saturating_mul(2).saturating_add(1 << 20);
        // the later filters, undone first, into the scratch buffers
        let [mut x, mut y] = std::mem::take(tmp);
        let mut holder = 0u8; // which buffer holds the next input: 0 raw, 1 x, 2 y
        let mut result = Ok(());
        for &s in rest.iter().rev() {
            let (input, buf): (&[u8], &mut Vec<u8>) = match holder {
                0 => (raw, &mut x),
                1 => (&x[..], &mut y),
                _ => (&y[..], &mut x),
            };
            let n = match s {
                Step::BitshuffleLz4 { .. } | Step::Lz4 => {
                    match declared_size(input)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n <= limit)
                    {
                        Some(n) => n,
                        None => {
                            result = Err("a chunk stage declares an implausible size".to_string());
                            break;
                        }
                    }
                }
                Step::Shuffle { .. } => input.len(),
                Step::Deflate => {
                    // inflated into spare capacity, grown as needed up to the limit
                    if let Err(e) = inflate_vec(input, buf, out.len(), limit) {
                        result = Err(e);
                        break;
                    }
                    holder = if holder == 1 { 2 } else { 1 };
                    continue;
                }
            };
            buf.clear();
            buf.resize(n, 0);
            match step(s, input, buf, false) {
                Ok(got) => buf.truncate(got),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            holder = if holder == 1 { 2 } else { 1 };
        }
        if result.is_ok() {
            let input = match holder {
                0 => raw,
                1 => &x[..],
                _ => &y[..],
            };
            result = step(first, input, out, true).map(|_| ());
        }
        *tmp = [x, y];
        result
    }
}

/// Undoes one filter of `src` into `dst`; `exact`: `dst` must be filled exactly. Returns the
/// bytes written.
fn step(s: Step, src: &[u8], dst: &mut [u8], exact: bool) -> Result<usize, DecodeError> {
    match s {
        Step::BitshuffleLz4 { esize } => decode_bitshuffle_lz4(src, esize, dst).map(|_| dst.len()),
        Step::Lz4 => decode_lz4(src, dst).map(|_| dst.len()),
        Step::Shuffle { esize } => {
            if src.len() != dst.len() {
                return Err(format!("shuffle: {} bytes for {}", src.len(), dst.len()));
            }
            unshuffle(src, esize, dst);
            Ok(dst.len())
        }
        Step::Deflate => {
            let mut z = flate2::Decompress::new(true);
            let status = z
                .decompress(src, dst, flate2::FlushDecompress::Finish)
                .map_err(|e| format!("deflate: {e}"))?;
            let n = z.total_out() as usize;
            if status != flate2::Status::StreamEnd {
                return Err(if n == dst.len() {
                    format!("deflate: more than {} bytes", dst.len())
                } else {
                    "deflate: truncated stream".into()
                });
            }
            if exact && n != dst.len() {
                return Err(format!("deflate: {n} bytes, {} expected", dst.len()));
            }
            Ok(n)
        }
    }
}

/// Inflates a whole zlib stream into `buf` (cleared), starting with room for `hint` bytes and
/// growing up to `limit`.
fn inflate_vec(src: &[u8], buf: &mut Vec<u8>, hint: usize, limit: usize) -> Result<(), DecodeError> {
    buf.clear();
    buf.reserve(hint.min(limit).max(64));
    let mut z = flate2::Decompress::new(true);
    loop {
        let before = z.total_in() as usize;
        let status = z
            .decompress_vec(&src[before.min(src.len())..], buf, flate2::FlushDecompress::Finish)
            .map_err(|e| format!("deflate: {e}"))?;
        if status == flate2::Status::StreamEnd {
            return Ok(());
        }
        if buf.len() < buf.capacity() {
            return Err("deflate: truncated stream".into());
        }
        if buf.len() >= limit {
            return Err(format!("deflate: more than {limit} bytes"));
        }
        let more = buf.len().min(limit - buf.len()).max(64);
        buf.reserve(more);
    }
}

/// HDF5's shuffle undone: byte `b` of element `i` is at `b * n + i`; bytes past the last whole
/// element are kept as they are.
fn unshuffle(src: &[u8], esize: usize, dst: &mut [u8]) {
    let n = src.len() / esize.max(1);
    if esize <= 1 || n <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    for b in 0..esize {
        let plane = &src[b * n..(b + 1) * n];
        for (i, &v) in plane.iter().enumerate() {
            dst[i * esize + b] = v;
        }
    }
    dst[n * esize..].copy_from_slice(&src[n * esize..]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn unshuffle_round_trip() {
        let data: Vec<u8> = (0..23u8).collect(); // 5 u32 and 3 bytes left over
        let mut shuffled = vec![0u8; 23];
        for i in 0..5 {
            for b in 0..4 {
                shuffled[b * 5 + i] = data[i * 4 + b];
            }
        }
        shuffled[20..].copy_from_slice(&data[20..]);
        let mut out = vec![0u8; 23];
        super::unshuffle(&shuffled, 4, &mut out);
        assert_eq!(out, data);
    }
}
