//! Strict codecs: a tile decodes to exactly its size from a complete, valid stream, or the read
//! fails with a typed error naming file, page, tile and offset. Regression files for each codec
//! (testdata/tiff/malformed, written by make_fixtures.py), a differential mutation test against
//! tifffile (testdata/tiff/codecs), and bounded decode memory for tiles declaring huge sizes.

use tiledio_test_support::python;

use std::path::{Path, PathBuf};
use tiledio_io::IoError;
use tiledio_tiff::{Slide, TiffError};

fn tiff_dir() -> PathBuf {
    tiledio_test_support::workspace_root().join("testdata/tiff")
}

fn read0(path: &Path) -> Result<Vec<u8>, TiffError> {
    Ok(Slide::open(path)?.read_level(0)?.bytes().to_vec())
}

/// Reads a malformed file; the error must be a Decode error of `codec` whose reason contains
/// `reason` and whose message names the file, page, tile and byte offset.
fn decode_error(name: &str, codec: &str, reason: &str) {
    let path = tiff_dir().join("malformed").join(name);
    let e = read0(&path).expect_err(name);
    match &e {
        TiffError::Decode {
            codec: c,
            reason: r,
            page: 0,
            tile: 0,
            offset,
            ..
        } => {
            assert_eq!(*c, codec, "{name}: {e}");
            assert!(r.contains(reason), "{name}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(name)
                    && msg.contains("page 0")
                    && msg.contains("tile 0")
                    && msg.contains(&format!("offset {offset}")),
                "{msg}"
            );
            assert!(*offset > 0, "{msg}");
        }
        _ => panic!("{name}: not a decode error: {e}"),
    }
}

/// One test per malformed codec fixture: `test: file, codec, reason` checks [`decode_error`].
macro_rules! decode_error_tests {
    ($($test:ident: $file:literal, $codec:literal, $reason:literal;)*) => {
        $(
            #[test]
            fn $test() {
                decode_error($file, $codec, $reason);
            }
        )*
    };
}

decode_error_tests! {
    tiff_codec_deflate_more_than_tile: "deflate-more-than-tile.tif", "deflate", "more than the tile";
    // the stream fills the tile exactly; only its checksum is wrong
    tiff_codec_deflate_bad_adler32: "deflate-bad-adler32.tif", "deflate", "";
    tiff_codec_deflate_truncated: "deflate-truncated.tif", "deflate", "";
    tiff_codec_zstd_more_than_tile: "zstd-more-than-tile.tif", "zstd", "more than the tile";
    tiff_codec_zstd_trailing_data: "zstd-trailing-data.tif", "zstd", "";
    tiff_codec_packbits_more_than_tile: "packbits-more-than-tile.tif", "packbits", "more than the tile";
    // tifffile silently drops the extra bytes; a stream that does not match its tile is refused
    tiff_codec_lzw_more_than_tile: "lzw-more-than-tile.tif", "lzw", "more than the tile";
    // libjpeg only warns ("premature end of data segment") and fills with grey
    tiff_codec_jpeg_truncated_is_an_error: "jpeg-truncated.tif", "jpeg", "";
}

/// The valid small codec fixtures (and the stripped PackBits one, whose last strip is short)
/// read as tifffile reads them.
#[test]
fn tiff_codec_fixtures_read() {
    for name in codec_fixtures() {
        read0(&tiff_dir().join("codecs").join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn codec_fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tiff_dir().join("codecs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tif"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    names
}

/// The tile (or strip) offsets and byte counts of the first IFD of a little-endian classic
/// TIFF, with where each count is stored: enough to aim mutations at tile data.
struct Tiles {
    offsets: Vec<u64>,
    counts: Vec<u64>,
    /// (position of the count array, bytes per count)
    count_at: (usize, usize),
}

fn tiles_of(d: &[u8]) -> Tiles {
    assert_eq!(&d[..4], b"II*\0", "little-endian classic TIFF");
    let u16_at = |p: usize| u16::from_le_bytes([d[p], d[p + 1]]) as u64;
    let u32_at = |p: usize| u32::from_le_bytes(d[p..p + 4].try_into().unwrap()) as u64;
    let ifd = u32_at(4) as usize;
    let n = u16_at(ifd) as usize;
    let mut arrays = std::collections::HashMap::new();
    for e in 0..n {
        let p = ifd + 2 + 12 * e;
        let (tag, typ, count) = (u16_at(p), u16_at(p + 2), u32_at(p + 4) as usize);
        let size = if typ == 3 { 2 } else { 4 };
        let at = if size * count <= 4 {
            p + 8
        } else {
            u32_at(p + 8) as usize
        };
        let vals: Vec<u64> = (0..count)
            .map(|i| {
                if size == 2 {
                    u16_at(at + 2 * i)
                } else {
                    u32_at(at + 4 * i)
                }
            })
            .collect();
        arrays.insert(tag, (vals, at, size));
    }
    let (o, c) = if arrays.contains_key(&324) {
        (324, 325)
    } else {
        (273, 279)
    };
    Tiles {
        offsets: arrays[&o].0.clone(),
        counts: arrays[&c].0.clone(),
        count_at: (arrays[&c].1, arrays[&c].2),
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to three damages to the tile data of a file: flipped bytes, overwritten spans (in the
/// middle or the last bytes, where checksums live), zeroed spans, and byte counts made smaller
/// (a cut stream) or larger (trailing bytes of the next tile).
fn mutate(orig: &[u8], t: &Tiles, rng: &mut Rng) -> Vec<u8> {
    let mut d = orig.to_vec();
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(t.offsets.len());
        let (off, cnt) = (t.offsets[i] as usize, t.counts[i] as usize);
        match rng.below(6) {
            0 => {
                for _ in 0..1 + rng.below(3) {
                    d[off + rng.below(cnt)] ^= 1 + rng.below(255) as u8;
                }
            }
            1 => {
                let k = 1 + rng.below(4.min(cnt));
                for b in &mut d[off + cnt - k..off + cnt] {
                    *b = rng.next() as u8;
                }
            }
            2 => {
                let at = off + rng.below(cnt);
                let end = (at + 2 + rng.below(8)).min(off + cnt);
                for b in &mut d[at..end] {
                    *b = rng.next() as u8;
                }
            }
            3 => {
                let at = off + rng.below(cnt);
                let end = (at + 1 + rng.below(16)).min(off + cnt);
                d[at..end].fill(0);
            }
            k => {
                let new = if k == 4 {
                    1 + rng.below(cnt.saturating_sub(1).max(1))
                } else {
                    (cnt + 1 + rng.below(16)).min(d.len() - off)
                };
                let (at, size) = t.count_at;
                let p = at + i * size;
                if size == 2 {
                    d[p..p + 2].copy_from_slice(&(new.min(65535) as u16).to_le_bytes());
                } else {
                    d[p..p + 4].copy_from_slice(&(new as u32).to_le_bytes());
                }
            }
        }
    }
    d
}

const TIFFFILE_READ_ALL: &str = r#"
import os, sys, numpy as np, tifffile
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    if not name.endswith(".tif"):
        continue
    f = os.path.join(d, name)
    try:
        a = np.ascontiguousarray(tifffile.imread(f, key=0))
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        open(f + ".raw", "wb").write(a.tobytes())
    except Exception as e:
        open(f + ".err", "w").write(f"{type(e).__name__}: {e}")
"#;

/// Differential test against tifffile on damaged compressed files (deflate, zstd, LZW,
/// PackBits tiled and stripped, JPEG): tifffile raises ⇒ we raise; tifffile decodes ⇒ we give
/// the same pixels or raise (we are stricter: a stream that decodes to more than its tile, or
/// a JPEG libjpeg only warns about, is an error here). One Python process reads every file.
#[test]
fn tiff_codecs_mutations_agree_with_tifffile() {
    const PER_FIXTURE: usize = 120;
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x7469_6c65_6469_6f21);
    let mut files = Vec::new();
    for name in codec_fixtures() {
        let orig = std::fs::read(tiff_dir().join("codecs").join(&name)).unwrap();
        let t = tiles_of(&orig);
        let stem = name.trim_end_matches(".tif");
        let p = tmp.path().join(format!("{stem}-orig.tif"));
        std::fs::write(&p, &orig).unwrap();
        files.push(p);
        for k in 0..PER_FIXTURE {
            let p = tmp.path().join(format!("{stem}-{k:03}.tif"));
            std::fs::write(&p, mutate(&orig, &t, &mut rng)).unwrap();
            files.push(p);
        }
    }
    python::run_python(TIFFFILE_READ_ALL, &[tmp.path().to_str().unwrap()]);
    let (mut both_ok, mut both_err, mut only_we_err) = (0, 0, 0);
    let mut violations = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let theirs = std::fs::read(f.with_extension("tif.raw")).ok();
        let their_err = std::fs::read_to_string(f.with_extension("tif.err")).ok();
        assert!(theirs.is_some() != their_err.is_some(), "{name}: no tifffile result");
        let ours = std::panic::catch_unwind(|| read0(f)).unwrap_or_else(|_| panic!("{name}: panicked"));
        match (theirs, ours) {
            (Some(t), Ok(o)) if t == o => both_ok += 1,
            (Some(t), Ok(o)) => violations.push(format!(
                "{name}: pixels differ from tifffile's ({} vs {} bytes, {} differ)",
                o.len(),
                t.len(),
                o.iter().zip(&t).filter(|(a, b)| a != b).count()
            )),
            (Some(_), Err(_)) => {
                if name.ends_with("-orig.tif") {
                    violations.push(format!("{name}: the valid file failed"));
                }
                only_we_err += 1;
            }
            (None, Err(_)) => both_err += 1,
            (None, Ok(_)) => violations.push(format!(
                "{name}: tifffile raised ({}) but we decoded",
                their_err.unwrap()
            )),
        }
    }
    println!(
        "{} files: {both_ok} same pixels, {both_err} both errors, {only_we_err} only we error",
        files.len()
    );
    assert!(
        violations.is_empty(),
        "{} of {} files:\n{}",
        violations.len(),
        files.len(),
        violations.join("\n")
    );
    assert!(both_err >= files.len() / 4 && both_ok >= 6, "too few informative cases");
}

/// A 4 KiB TIFF declaring one 65536x16384 tile (1 GiB decoded, the most a page may declare): refused with a typed
/// out-of-memory error before any scratch is allocated, instead of a gigabyte per decoding
/// thread; and tiles that fit the budget only a few at a time still decode. Runs in a child
/// process with TILEDIO_MAX_MEMORY=8M (a 2 MiB decode scratch budget), so the result does not
/// depend on this machine's memory.
#[test]
fn tiff_codec_huge_declared_tiles_are_bounded() {
    tiledio_test_support::run_in_child(
        "huge_tiles_child",
        &[("TILEDIO_MAX_MEMORY", "8M"), ("RAYON_NUM_THREADS", "4")],
        &["--ignored"],
    );
}

/// A little-endian TIFF of one page: `w × h` 8-bit pixels of `spp` samples in `tw × th` tiles
/// stored as given (deflate when `compression` is 8).
fn tiff_tiles(w: u32, h: u32, tw: u32, th: u32, spp: u16, compression: u16, tiles: &[Vec<u8>]) -> Vec<u8> {
    let n = tiles.len() as u32;
    let mut entries: Vec<(u16, u16, u32, u32)> = vec![
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 1, 8),
        (259, 3, 1, compression as u32),
        (262, 3, 1, if spp == 3 { 2 } else { 1 }),
        (277, 3, 1, spp as u32),
        (322, 4, 1, tw),
        (323, 4, 1, th),
    ];
    let ifd_len = 2 + 12 * (entries.len() + 2) + 4;
    let arrays_at = 8 + ifd_len as u32;
    let data_at = arrays_at + if n > 1 { 8 * n } else { 0 };
    let mut offsets = Vec::new();
    let mut at = data_at;
    for t in tiles {
        offsets.push(at);
        at += t.len() as u32;
    }
    let counts: Vec<u32> = tiles.iter().map(|t| t.len() as u32).collect();
    if n > 1 {
        entries.push((324, 4, n, arrays_at));
        entries.push((325, 4, n, arrays_at + 4 * n));
    } else {
        entries.push((324, 4, 1, offsets[0]));
        entries.push((325, 4, 1, counts[0]));
    }
    let mut d = b"II*\0".to_vec();
    d.extend_from_slice(&8u32.to_le_bytes());
    d.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, typ, count, v) in entries {
        d.extend_from_slice(&tag.to_le_bytes());
        d.extend_from_slice(&typ.to_le_bytes());
        d.extend_from_slice(&count.to_le_bytes());
        if typ == 3 {
            d.extend_from_slice(&(v as u16).to_le_bytes());
            d.extend_from_slice(&[0, 0]);
        } else {
            d.extend_from_slice(&v.to_le_bytes());
        }
    }
    d.extend_from_slice(&0u32.to_le_bytes());
    if n > 1 {
        for v in offsets.iter().chain(&counts) {
            d.extend_from_slice(&v.to_le_bytes());
        }
    }
    for t in tiles {
        d.extend_from_slice(t);
    }
    d
}

/// A zlib stream of `data` in stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut z = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, c) in chunks.iter().enumerate() {
        z.push(u8::from(i + 1 == chunks.len()));
        z.extend_from_slice(&(c.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(c.len() as u16)).to_le_bytes());
        z.extend_from_slice(c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    z
}

#[test]
#[ignore = "run by tiff_codec_huge_declared_tiles_are_bounded with TILEDIO_MAX_MEMORY set"]
fn huge_tiles_child() {
    assert_eq!(std::env::var("TILEDIO_MAX_MEMORY").as_deref(), Ok("8M"));
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("huge.tif");
    std::fs::write(&p, tiff_tiles(65536, 16384, 65536, 16384, 1, 8, &[vec![0u8; 4096]])).unwrap();
    let s = Slide::open(&p).unwrap();
    for e in [
        s.read_region((0, 0), 0, (64, 64)).unwrap_err(),
        s.read_region((1000, 9000), 0, (3, 2)).unwrap_err(),
    ] {
        assert!(
            matches!(&e, TiffError::Io(IoError::OutOfMemory { bytes, budget, .. }) if *bytes == 1 << 30 && *budget == 2 << 20),
            "{e}"
        );
        assert!(e.to_string().contains("page 0, tile 0"), "{e}");
    }
    // four 1 MiB tiles, two decoding at a time (4 threads, 2 MiB of scratch)
    let tiles: Vec<Vec<u8>> = (0..4u8).map(|k| zlib_stored(&vec![k * 50; 1 << 20])).collect();
    let p = tmp.path().join("big.tif");
    std::fs::write(&p, tiff_tiles(2048, 2048, 1024, 1024, 1, 8, &tiles)).unwrap();
    let img = Slide::open(&p).unwrap().read_region((1000, 1000), 0, (48, 48)).unwrap();
    let b = img.bytes();
    assert_eq!((b[0], b[47], b[48 * 47], b[48 * 48 - 1]), (0, 50, 100, 150));
}
