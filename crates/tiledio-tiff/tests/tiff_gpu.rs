//! GPU reads equal host reads (run on a machine with a CUDA GPU:
//! `cargo test -p tiledio --test tiff_gpu -- --include-ignored`).

use tiledio_tiff::{
    Compression, DeviceImage, HostImage, ReadOptions, Slide, WriteOptions, write_pyramid, write_pyramid_device,
};

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn compare(slide: &Slide) {
    for level in 0..slide.level_count() {
        let host = slide.read_level(level).unwrap();
        let dev = slide.read_level_device(level).unwrap().to_host().unwrap();
        assert!(host == dev, "{}: level {level} differs", slide.path().display());
        for (loc, size) in [
            ((-37i64, -5i64), (300u64, 129u64)),
            ((1000, 17), (64, 500)),
            ((5, 5), (1, 1)),
        ] {
            let o = ReadOptions::with_background(7);
            let h = slide.read_region_with(loc, level, size, &o).unwrap();
            let d = slide
                .read_region_device_with(loc, level, size, &o)
                .unwrap()
                .to_host()
                .unwrap();
            assert!(
                h == d,
                "{}: level {level} region {loc:?} {size:?} differs",
                slide.path().display()
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn tiff_gpu_reads_equal_host_reads_on_random_data() {
    let dir = tempfile::tempdir().unwrap();
    let img = HostImage::from_u8(1000, 1200, 3, noise(1000 * 1200 * 3, 5)).unwrap();
    for (i, c) in [
        Compression::None,
        Compression::Deflate,
        Compression::Zstd,
        Compression::Lzw,
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.path().join(format!("{i}.tif"));
        write_pyramid(&p, &img, &WriteOptions::default().tile(128).compression(c)).unwrap();
        let s = Slide::open(&p).unwrap();
        assert_eq!(s.read_level_device(0).unwrap().to_host().unwrap(), img);
        compare(&s);
    }
    let u16s: Vec<u16> = noise(700 * 500 * 2 * 2, 9)
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let img16 = HostImage::from_u16(700, 500, 2, u16s).unwrap();
    let p = dir.path().join("u16.tif");
    write_pyramid(&p, &img16, &WriteOptions::default().tile(64)).unwrap();
    compare(&Slide::open(&p).unwrap());
    // writing from GPU memory
    let d = DeviceImage::from_host(&img).unwrap();
    let p = dir.path().join("fromgpu.tif");
    write_pyramid_device(&p, &d, &WriteOptions::default().tile(256)).unwrap();
    assert_eq!(Slide::open(&p).unwrap().read_level(0).unwrap(), img);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn tiff_gpu_fixtures_equal_host_reads() {
    let dir = tiledio_test_support::workspace_root().join("testdata/tiff");
    for name in [
        "tifffile_none_rgb8.tif",
        "tifffile_bigendian_u16.tif",
        "tifffile_zstd_f32.tif",
        "tifffile_strips_rgb8.tif",
        "svs_like.svs",
        "vips_jpeg_pyramid.tif",
        "tifffile_ome_subifds.ome.tif",
        "tiffcp_tiled_lzw.tif",
    ] {
        compare(&Slide::open(dir.join(name)).unwrap());
    }
}
