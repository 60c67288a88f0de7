//! Decoding one tile (or strip) into a full-size tile slot: LZW, deflate, zstd, PackBits and
//! JPEG (libjpeg-turbo, with shared JPEGTables), then byte order and predictor. Every codec
//! checks that a tile decodes to exactly its size and that its stream is complete and valid.

use crate::error::{Result, TiffError};
use crate::image::SampleType;
use crate::page::{Compression, Page};
use tiledio_io::FileHandle;

/// Decodes tile `i` of `page` from its stored bytes `raw` into `out` (one full tile:
/// `tile_h × tile_w × pixel bytes`, native byte order).
pub(crate) fn decode_tile(fh: &FileHandle, page: &Page, i: usize, raw: &[u8], out: &mut [u8]) -> Result<()> {
    let fail = |codec: &'static str, reason: String| TiffError::Decode {
        path: fh.path().to_path_buf(),
        page: page.index,
        tile: i,
        offset: page.offsets.get(i).copied().unwrap_or(0),
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
        Compression::Lzw => lzw(raw, dst).map_err(|e| fail("lzw", e))?,
        Compression::Deflate => deflate(raw, dst).map_err(|e| fail("deflate", e))?,
        Compression::Zstd => zstd_exact(raw, dst).map_err(|e| fail("zstd", e))?,
        Compression::PackBits => packbits(raw, dst).map_err(|e| fail("packbits", e))?,
        Compression::Jpeg => {
            jpeg::decode(page, raw, dst, rows).map_err(|e| fail("jpeg", e))?;
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

/// LZW (TIFF's MSB-first variant with the early code-size switch): the stream must fill `dst`
/// exactly and then end, with the end-of-information code or by running out of input
/// (libtiff and imagecodecs accept both). A stream that decodes to more is an error.
fn lzw(raw: &[u8], dst: &mut [u8]) -> Result<(), String> {
    let want = dst.len();
    let mut dec = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
    let mut filled = 0;
    let mut input = raw;
    let mut ended = false;
    while filled < want {
        let r = dec.decode_bytes(input, &mut dst[filled..]);
        filled += r.consumed_out;
        input = &input[r.consumed_in..];
        match r.status {
            Ok(weezl::LzwStatus::Ok) if r.consumed_in == 0 && r.consumed_out == 0 => break,
            Ok(weezl::LzwStatus::Ok) => {}
            Ok(weezl::LzwStatus::Done) => {
                ended = true;
                break;
            }
            Ok(weezl::LzwStatus::NoProgress) => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    if filled < want {
        return Err(format!("{filled} of {want} bytes decoded"));
    }
    // the tile is full: whatever input is left must decode to nothing
    let mut extra = [0u8; 64];
    while !ended {
        let r = dec.decode_bytes(input, &mut extra);
        input = &input[r.consumed_in..];
        if r.consumed_out > 0 {
            return Err(more(want));
        }
        match r.status {
            Ok(weezl::LzwStatus::Ok) if r.consumed_in == 0 => ended = true,
            Ok(weezl::LzwStatus::Ok) => {}
            Ok(_) => ended = true,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Deflate (zlib): the stream must fill `dst` exactly and reach its end, with its adler32
/// checked. Bytes after the end of the zlib stream are ignored, as libdeflate does.
fn deflate(raw: &[u8], dst: &mut [u8]) -> Result<(), String> {
    use flate2::{Decompress, FlushDecompress, Status};
    let want = dst.len();
    // the fast path: the whole stream in one call, straight into the tile (a one-shot
    // `Finish` on a fresh stream); anything but an exact fill goes on below to say why
    let mut d = Decompress::new(true);
    match d.decompress(raw, dst, FlushDecompress::Finish) {
        Ok(Status::StreamEnd) if d.total_out() as usize == want => return Ok(()),
        Ok(Status::StreamEnd) => return Err(format!("{} of {want} bytes decoded", d.total_out())),
        Err(e) => return Err(e.to_string()),
        Ok(_) => {}
    }
    let mut d = Decompress::new(true);
    let mut extra = [0u8; 64];
    loop {
        let (i, o) = (d.total_in() as usize, d.total_out() as usize);
        let input = raw.get(i..).unwrap_or_default();
        let (out, spill) = if o < want {
            (&mut dst[o..], false)
        } else {
            (&mut extra[..], true)
        };
        let st = d
            .decompress(input, out, FlushDecompress::None)
            .map_err(|e| e.to_string())?;
        let (ni, no) = (d.total_in() as usize, d.total_out() as usize);
        if spill && no > o {
            return Err(more(want));
        }
        match st {
            Status::StreamEnd if no == want => return Ok(()),
            Status::StreamEnd => return Err(format!("{no} of {want} bytes decoded")),
            _ if ni == i && no == o => {
                return Err(format!(
                    "the stream ends early (truncated or damaged): {} of {want} bytes decoded",
                    no.min(want)
                ));
            }
            _ => {}
        }
    }
}

/// Zstandard: one or more complete frames (checksums and declared content sizes checked by
/// libzstd) decoding to exactly `dst`; anything after the last frame is an error, as in
/// `ZSTD_decompress`.
fn zstd_exact(raw: &[u8], dst: &mut [u8]) -> Result<(), String> {
    let want = dst.len();
    let n = zstd::bulk::decompress_to_buffer(raw, dst).map_err(|e| {
        if e.to_string().contains("too small") {
            more(want)
        } else {
            e.to_string()
        }
    })?;
    if n != want {
        return Err(format!("{n} of {want} bytes decoded"));
    }
    Ok(())
}

/// PackBits: runs must fill `dst` exactly; after that only no-op bytes (0x80) may follow
/// (imagecodecs refuses anything else; libtiff ignores it).
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
            if src.len() < k {
                return Err("literal run past the end of the data".into());
            }
            if o + k > dst.len() {
                return Err(more(dst.len()));
            }
            dst[o..o + k].copy_from_slice(&src[..k]);
            src = &src[k..];
            o += k;
        } else if n != -128 {
            let k = (1 - n as isize) as usize;
            let (&v, rest) = src.split_first().ok_or("repeat run past the end of the data")?;
            src = rest;
            if o + k > dst.len() {
                return Err(more(dst.len()));
            }
            dst[o..o + k].fill(v);
            o += k;
        }
    }
    if src.iter().any(|&b| b != 0x80) {
        return Err(more(dst.len()));
    }
    Ok(())
}

fn more(want: usize) -> String {
    format!("the stream decodes to more than the tile's {want} bytes")
}

/// JPEG through libjpeg-turbo (as built by `mozjpeg-sys`; its decoder is libjpeg-turbo's),
/// decoding exactly as libtiff, OpenSlide and imagecodecs do: the JPEGTables stream read
/// first (tables only), then the tile's stream; the colour space decided by the stream's
/// markers (JFIF/Adobe/component ids), not the TIFF Photometric tag (Aperio tags YCbCr-coded
/// tiles RGB); islow IDCT, fancy upsampling. Every libjpeg error, and every warning about
/// corrupt data (premature end, bad Huffman code, ...: libjpeg would fill with grey), is an
/// error: a libjpeg error unwinds out of the C code (`error_exit` panics through `C-unwind`
/// frames, with `resume_unwind` so no panic message is printed) to a `catch_unwind` here.
mod jpeg {
    use crate::page::Page;
    use mozjpeg_sys as j;
    use std::ffi::c_int;
    use std::panic::AssertUnwindSafe;

    const JPEG_HEADER_OK: c_int = 1;
    const JPEG_HEADER_TABLES_ONLY: c_int = 2;

    /// What an unwinding libjpeg error carries.
    struct Failure(String);

    fn message(cinfo: &mut j::jpeg_common_struct) -> String {
        let buf = [0u8; 80];
        // SAFETY: `err` was set to our error manager, whose format_message is libjpeg's (set
        // by jpeg_std_error); it writes at most JMSG_LENGTH_MAX (80) bytes into the buffer.
        unsafe {
            if let Some(f) = (*cinfo.err).format_message {
                f(cinfo, &buf);
            }
        }
        let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    unsafe extern "C-unwind" fn error_exit(cinfo: &mut j::jpeg_common_struct) {
        let m = message(cinfo);
        std::panic::resume_unwind(Box::new(Failure(m)));
    }

    unsafe extern "C-unwind" fn emit_message(cinfo: &mut j::jpeg_common_struct, level: c_int) {
        if level >= 0 {
            return; // trace messages
        }
        let m = message(cinfo);
        // warnings about metadata change no pixel; every other one means corrupt data
        let harmless = m.starts_with("Warning: unknown JFIF") || m.starts_with("Unknown Adobe") || m.contains("ICC");
        if !harmless {
            std::panic::resume_unwind(Box::new(Failure(m)));
        }
    }

    unsafe extern "C-unwind" fn output_message(_cinfo: &mut j::jpeg_common_struct) {}

    /// Decodes `raw` into the first `rows` rows of `dst` (rows of `tile_w × spp` bytes).
    pub(super) fn decode(page: &Page, raw: &[u8], dst: &mut [u8], rows: usize) -> Result<(), String> {
        // SAFETY: all-zero is a valid value of these C structs (null pointers, None
        // callbacks, zero enums); jpeg_std_error fills in the error manager.
        let mut err: Box<j::jpeg_error_mgr> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: as above.
        let mut cinfo: Box<j::jpeg_decompress_struct> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `err` outlives `cinfo`'s use of it (both live to the end of this function).
        unsafe {
            j::jpeg_std_error(&mut err);
        }
        err.error_exit = Some(error_exit);
        err.emit_message = Some(emit_message);
        err.output_message = Some(output_message);
        cinfo.common.err = &mut *err;
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: cinfo is set up for jpeg_create_decompress; the input slices outlive
            // the decode; the row pointers point into `dst`, each with room for a row.
            unsafe { run(&mut cinfo, page, raw, dst, rows) }
        }));
        // SAFETY: valid after jpeg_create_decompress, and a no-op on the zeroed struct
        // (mem is null) if creating it failed; frees everything libjpeg allocated.
        unsafe { j::jpeg_destroy_decompress(&mut cinfo) };
        match r {
            Ok(r) => r,
            Err(p) => match p.downcast::<Failure>() {
                Ok(f) => Err(f.0),
                Err(p) => std::panic::resume_unwind(p),
            },
        }
    }

    unsafe fn run(
        c: &mut j::jpeg_decompress_struct,
        page: &Page,
        raw: &[u8],
        dst: &mut [u8],
        rows: usize,
    ) -> Result<(), String> {
        // SAFETY (whole function): the caller set up `c.common.err`; the slices given to
        // jpeg_mem_src stay alive and unchanged while libjpeg reads them.
        unsafe {
            j::jpeg_create_decompress(c);
            if let Some(t) = page.jpeg_tables.as_deref().filter(|t| !t.is_empty()) {
                j::jpeg_mem_src(c, t.as_ptr(), t.len() as _);
                if j::jpeg_read_header(c, 0) != JPEG_HEADER_TABLES_ONLY {
                    return Err("JPEGTables is not a tables-only stream".into());
                }
            }
            if raw.is_empty() {
                return Err("empty stream".into());
            }
            j::jpeg_mem_src(c, raw.as_ptr(), raw.len() as _);
            if j::jpeg_read_header(c, 1) != JPEG_HEADER_OK {
                return Err("no image in the stream".into());
            }
            let (w, h) = (c.image_width as usize, c.image_height as usize);
            let tw = page.tile_w as usize;
            // a stream larger than its tile (up to 65535x65535 from a few bytes) is not decoded
            if w > tw || h > page.tile_h as usize {
                return Err(format!("JPEG of {w}x{h} for a {tw}x{} tile", page.tile_h));
            }
            if w < tw.min(page.width as usize) || h < rows.min(page.height as usize) {
                return Err(format!("JPEG of {w}x{h} for a {tw}x{rows} tile"));
            }
            let comps = c.num_components as usize;
            if comps != page.spp || !(comps == 1 || comps == 3) {
                return Err(format!("{comps} components in the stream, {} expected", page.spp));
            }
            c.out_color_space = if comps == 1 {
                j::J_COLOR_SPACE::JCS_GRAYSCALE
            } else {
                j::J_COLOR_SPACE::JCS_RGB
            };
            c.dct_method = j::J_DCT_METHOD::JDCT_ISLOW;
            c.do_fancy_upsampling = 1;
            if j::jpeg_start_decompress(c) == 0 {
                return Err("suspended".into());
            }
            if c.output_width as usize != w || c.output_height as usize != h || c.output_components as usize != comps {
                return Err("unexpected output geometry".into());
            }
            let stride = tw * comps;
            let n = rows.min(h);
            if dst.len() < (n.max(1) - 1) * stride + w * comps {
                return Err("internal: tile slot too small".into());
            }
            let base = dst.as_mut_ptr();
            let mut ptrs: Vec<*mut u8> = (0..n).map(|r| base.add(r * stride)).collect();
            while (c.output_scanline as usize) < n {
                let at = c.output_scanline as usize;
                let got = j::jpeg_read_scanlines(c, ptrs.as_mut_ptr().add(at), (n - at) as _);
                if got == 0 {
                    return Err("no scanlines decoded".into());
                }
            }
            if n == h {
                // reads up to EOI: a stream that ends early is a (premature end) error
                j::jpeg_finish_decompress(c);
            }
            Ok(())
        }
    }
}

pub(crate) fn swap_bytes(buf: &mut [u8], size: usize) {
    for c in buf.chunks_exact_mut(size) {
        c.reverse();
    }
}

fn undo_horizontal(buf: &mut [u8], row_bytes: usize, spp: usize, dtype: SampleType) {
    // A horizontal predictor on floats is not valid TIFF; leave the bytes alone.
    if dtype.is_float() {
        return;
    }
    // integer samples of any width: wrapping sums in native order (bytes already swapped)
    fn run<const N: usize>(row: &mut [u8], spp: usize, add: fn([u8; N], [u8; N]) -> [u8; N]) {
        let n = row.len() / N;
        for k in spp..n {
            let prev: [u8; N] = row[(k - spp) * N..(k - spp + 1) * N].try_into().unwrap_or([0; N]);
            let cur: [u8; N] = row[k * N..(k + 1) * N].try_into().unwrap_or([0; N]);
            row[k * N..(k + 1) * N].copy_from_slice(&add(cur, prev));
        }
    }
    for row in buf.chunks_exact_mut(row_bytes) {
        match dtype.size() {
            1 => run::<1>(row, spp, |a, b| [a[0].wrapping_add(b[0])]),
            2 => run::<2>(row, spp, |a, b| {
                u16::from_ne_bytes(a).wrapping_add(u16::from_ne_bytes(b)).to_ne_bytes()
            }),
            4 => run::<4>(row, spp, |a, b| {
                u32::from_ne_bytes(a).wrapping_add(u32::from_ne_bytes(b)).to_ne_bytes()
            }),
            _ => run::<8>(row, spp, |a, b| {
                u64::from_ne_bytes(a).wrapping_add(u64::from_ne_bytes(b)).to_ne_bytes()
            }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn deflate_exact_more_less_and_damaged() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut dst = vec![0u8; 4000];
        let z = zlib(&data[..4000]);
        deflate(&z, &mut dst).unwrap();
        assert_eq!(dst, data[..4000]);
        let mut trailing = z.clone();
        trailing.extend_from_slice(b"junk");
        deflate(&trailing, &mut dst).unwrap();
        let e = deflate(&zlib(&data), &mut dst).unwrap_err();
        assert!(e.contains("more than the tile"), "{e}");
        let e = deflate(&zlib(&data[..3999]), &mut dst).unwrap_err();
        assert!(e.contains("3999 of 4000"), "{e}");
        let mut bad = z.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(deflate(&bad, &mut dst).is_err());
        assert!(deflate(&z[..z.len() - 2], &mut dst).is_err());
    }

    #[test]
    fn packbits_exact_fill_then_only_no_ops() {
        let mut dst = [0u8; 6];
        // a literal run of 3, a repeat run of 3, then no-op bytes (imagecodecs accepts those)
        let s = [2, 1, 2, 3, 0xFE, 9, 0x80, 0x80];
        packbits(&s, &mut dst).unwrap();
        assert_eq!(dst, [1, 2, 3, 9, 9, 9]);
        for bad in [
            &[2, 1, 2, 3, 0xFE, 9, 0][..],
            &[2, 1, 2, 3, 0xFD, 9],
            &[2, 1, 2, 3, 0xFE],
        ] {
            assert!(packbits(bad, &mut dst).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn zstd_frames_exact() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 13) as u8).collect();
        let mut dst = vec![0u8; 3000];
        let mut two = zstd::bulk::compress(&data[..1000], 3).unwrap();
        two.extend(zstd::bulk::compress(&data[1000..], 3).unwrap());
        zstd_exact(&two, &mut dst).unwrap();
        assert_eq!(dst, data);
        let more = zstd::bulk::compress(&[&data[..], b"x"].concat(), 3).unwrap();
        assert!(zstd_exact(&more, &mut dst).unwrap_err().contains("more than the tile"));
        assert!(zstd_exact(&two[..two.len() - 1], &mut dst).is_err());
        let mut trailing = two.clone();
        trailing.push(0);
        assert!(zstd_exact(&trailing, &mut dst).is_err());
    }

    #[test]
    fn lzw_with_or_without_end_code() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 31 % 7) as u8).collect();
        let enc = |d: &[u8]| {
            weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                .encode(d)
                .unwrap()
        };
        let mut dst = vec![0u8; 2000];
        let z = enc(&data);
        lzw(&z, &mut dst).unwrap();
        assert_eq!(dst, data);
        // without the end-of-information code (its 9-12 bits dropped): accepted, as libtiff does
        lzw(&z[..z.len() - 2], &mut dst).unwrap_or_else(|_| lzw(&z[..z.len() - 1], &mut dst).unwrap());
        assert!(
            lzw(&enc(&[&data[..], &[1, 2]].concat()), &mut dst)
                .unwrap_err()
                .contains("more than the tile")
        );
        assert!(lzw(&enc(&data[..1999]), &mut dst).is_err());
    }
}
