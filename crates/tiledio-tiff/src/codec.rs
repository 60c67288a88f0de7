//! Decoding one tile (or strip) into a full-size tile slot: LZW, deflate, zstd, PackBits and
//! JPEG (with shared JPEGTables, YCbCr→RGB as libjpeg does), then byte order and predictor.

use crate::error::{Result, TiffError};
use crate::image::SampleType;
use crate::page::{Compression, Page};
use std::io::Read;
use tiledio_io::FileHandle;

/// Decodes tile `i` of `page` from its stored bytes `raw` into `out` (one full tile:
/// `tile_h × tile_w × pixel bytes`, native byte order).
pub(crate) fn decode_tile(fh: &FileHandle, page: &Page, i: usize, raw: &[u8], out: &mut [u8]) -> Result<()> {
    let fail = |codec: &'static str, reason: String| TiffError::Decode {
        path: fh.path().to_path_buf(),
        page: page.index,
        tile: i,
        codec,
        reason,
    };
    let rows = page.stored_rows(i) as usize;
    let row_bytes = page.tile_w as usize * page.pixel_bytes();
    let want = rows * row_bytes;
    let dst = &mut out[..want];
    match page.compression {
        Compression::None => {
            if raw.len() < want {
                return Err(short(fh, page, i, raw.len(), want));
            }
            dst.copy_from_slice(&raw[..want]);
        }
        Compression::Lzw => {
            let mut dec = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
            let mut filled = 0;
            let mut input = raw;
            while filled < want {
                let r = dec.decode_bytes(input, &mut dst[filled..]);
                filled += r.consumed_out;
                input = &input[r.consumed_in..];
                match r.status {
                    Ok(weezl::LzwStatus::Ok) if r.consumed_in == 0 && r.consumed_out == 0 => break,
                    Ok(weezl::LzwStatus::Ok) => {}
                    Ok(_) => break,
                    Err(e) => return Err(fail("lzw", e.to_string())),
                }
            }
            if filled < want {
                return Err(fail("lzw", format!("{filled} of {want} bytes decoded")));
            }
        }
        Compression::Deflate => {
            read_full(flate2::read::ZlibDecoder::new(raw), dst).map_err(|e| fail("deflate", e))?;
        }
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| fail("zstd", e.to_string()))?;
            read_full(d, dst).map_err(|e| fail("zstd", e))?;
        }
        Compression::PackBits => packbits(raw, dst).map_err(|e| fail("packbits", e))?,
        Compression::Jpeg => {
            jpeg(page, raw, dst, rows).map_err(|e| fail("jpeg", e))?;
            return Ok(());
        }
    }
    let size = page.dtype.size();
    if page.big_endian && size > 1 && page.predictor != 3 {
        swap_bytes(dst, size);
    }
    match page.predictor {
        2 => undo_horizontal(dst, row_bytes, page.spp, page.dtype),
        3 => undo_float(dst, row_bytes, page.spp, size, page.tile_w as usize)
            .map_err(|e| fail("floating-point predictor", e))?,
        _ => {}
    }
    Ok(())
}

fn short(fh: &FileHandle, page: &Page, i: usize, got: usize, want: usize) -> TiffError {
    TiffError::BadTile {
        path: fh.path().to_path_buf(),
        page: page.index,
        tile: i,
        reason: format!("{got} stored bytes, {want} needed"),
    }
}

/// Reads until `dst` is full; fewer bytes is an error.
fn read_full(mut r: impl Read, dst: &mut [u8]) -> Result<(), String> {
    let mut filled = 0;
    while filled < dst.len() {
        match r.read(&mut dst[filled..]) {
            Ok(0) => return Err(format!("{filled} of {} bytes decoded", dst.len())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

fn packbits(mut src: &[u8], dst: &mut [u8]) -> Result<(), String> {
    let mut o = 0;
    while o < dst.len() {
        let (&n, rest) = src
            .split_first()
            .ok_or_else(|| format!("{o} of {} bytes decoded", dst.len()))?;
        src = rest;
        let n = n as i8;
        if n >= 0 {
            let k = n as usize + 1;
            if src.len() < k || o + k > dst.len() {
                return Err("literal run past the end".into());
            }
            dst[o..o + k].copy_from_slice(&src[..k]);
            src = &src[k..];
            o += k;
        } else if n != -128 {
            let k = (1 - n as isize) as usize;
            let (&v, rest) = src.split_first().ok_or("repeat run past the end")?;
            src = rest;
            if o + k > dst.len() {
                return Err("repeat run past the end of the tile".into());
            }
            dst[o..o + k].fill(v);
            o += k;
        }
    }
    Ok(())
}

/// Decodes a JPEG tile (tables merged), converting YCbCr to RGB like libjpeg: whether the
/// stream is YCbCr or RGB is decided by its markers (JFIF/Adobe/component ids), not the TIFF
/// Photometric tag (Aperio tags YCbCr-coded tiles RGB).
fn jpeg(page: &Page, raw: &[u8], dst: &mut [u8], rows: usize) -> Result<(), String> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let merged;
    let stream: &[u8] = match &page.jpeg_tables {
        Some(t) if t.len() >= 4 && raw.len() >= 2 && t.ends_with(&[0xFF, 0xD9]) && raw.starts_with(&[0xFF, 0xD8]) => {
            let mut m = Vec::with_capacity(t.len() + raw.len());
            m.extend_from_slice(&t[..t.len() - 2]);
            m.extend_from_slice(&raw[2..]);
            merged = m;
            &merged
        }
        _ => raw,
    };
    let cs = if page.spp == 1 {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let opts = DecoderOptions::new_fast()
        .jpeg_set_out_colorspace(cs)
        .set_max_width(65536)
        .set_max_height(65536)
        .set_strict_mode(false);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(stream), opts);
    dec.decode_headers().map_err(|e| format!("{e:?}"))?;
    let (w, h) = dec.dimensions().ok_or("no dimensions")?;
    let tw = page.tile_w as usize;
    // a stream larger than its tile (up to 65536x65536 from a few bytes) is not decoded
    if w > tw || h > page.tile_h as usize {
        return Err(format!("JPEG of {w}x{h} for a {tw}x{} tile", page.tile_h));
    }
    let comps = dec.output_colorspace().map(|c| c.num_components()).unwrap_or(0);
    if comps != page.spp {
        return Err(format!("{comps} components decoded, {} expected", page.spp));
    }
    if w == tw && h == rows && dst.len() == w * h * page.spp {
        // the common case: decode straight into the slot
        return dec.decode_into(dst).map_err(|e| format!("{e:?}"));
    }
    let pix = dec.decode().map_err(|e| format!("{e:?}"))?;
    if w < tw.min(page.width as usize) || h < rows.min(page.height as usize).min(rows) {
        return Err(format!("JPEG of {w}x{h} for a {tw}x{rows} tile"));
    }
    let px = page.spp;
    let cw = w.min(tw) * px;
    for r in 0..rows.min(h) {
        dst[r * tw * px..r * tw * px + cw].copy_from_slice(&pix[r * w * px..r * w * px + cw]);
    }
    Ok(())
}

pub(crate) fn swap_bytes(buf: &mut [u8], size: usize) {
    for c in buf.chunks_exact_mut(size) {
        c.reverse();
    }
}

fn undo_horizontal(buf: &mut [u8], row_bytes: usize, spp: usize, dtype: SampleType) {
    for row in buf.chunks_exact_mut(row_bytes) {
        match dtype {
            SampleType::U8 => {
                for i in spp..row.len() {
                    row[i] = row[i].wrapping_add(row[i - spp]);
                }
            }
            SampleType::U16 => {
                let n = row.len() / 2;
                let get = |r: &[u8], k: usize| u16::from_ne_bytes([r[2 * k], r[2 * k + 1]]);
                for k in spp..n {
                    let v = get(row, k).wrapping_add(get(row, k - spp));
                    row[2 * k..2 * k + 2].copy_from_slice(&v.to_ne_bytes());
                }
            }
            // A horizontal predictor on floats is not valid TIFF; leave the bytes alone.
            SampleType::F32 => {}
        }
    }
}

/// Undoes the floating-point predictor (3): byte-wise differencing over the row, then the
/// byte planes (most significant first) reassembled into native-order samples.
fn undo_float(buf: &mut [u8], row_bytes: usize, spp: usize, size: usize, width: usize) -> Result<(), String> {
    let mut tmp = vec![0u8; row_bytes];
    let n = width * spp;
    for row in buf.chunks_exact_mut(row_bytes) {
        for i in spp..row.len() {
            row[i] = row[i].wrapping_add(row[i - spp]);
        }
        for k in 0..n {
            for b in 0..size {
                // plane b holds byte b counting from the most significant one
                let v = row[b * n + k];
                let idx = if cfg!(target_endian = "little") {
                    size - 1 - b
                } else {
                    b
                };
                tmp[k * size + idx] = v;
            }
        }
        row.copy_from_slice(&tmp);
    }
    Ok(())
}
