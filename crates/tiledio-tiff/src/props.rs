//! Slide properties with OpenSlide's names: `openslide.*`, `tiff.*`, and vendor keys
//! (`aperio.*` from an Aperio ImageDescription).

use crate::ifd::Ifd;
use std::collections::BTreeMap;

/// Whether an ImageDescription is Aperio's.
pub(crate) fn is_aperio(desc: Option<&str>) -> bool {
    desc.is_some_and(|d| d.starts_with("Aperio"))
}

/// `tiff.*` keys of the first page, as OpenSlide names them.
pub(crate) fn tiff_props(ifd: &Ifd, p: &mut BTreeMap<String, String>) {
    for (tag, name) in [
        (270, "ImageDescription"),
        (271, "Make"),
        (272, "Model"),
        (305, "Software"),
        (306, "DateTime"),
        (315, "Artist"),
        (316, "HostComputer"),
        (33432, "Copyright"),
        (269, "DocumentName"),
    ] {
        if let Some(v) = ifd.ascii(tag) {
            p.insert(format!("tiff.{name}"), v);
        }
    }
    for (tag, name) in [(282, "XResolution"), (283, "YResolution")] {
        if let Some(v) = ifd.real(tag) {
            p.insert(format!("tiff.{name}"), fmt_f64(v));
        }
    }
    if ifd.tags.contains_key(&282) {
        let unit = match ifd.uint(296).unwrap_or(2) {
            1 => "none",
            3 => "centimeter",
            _ => "inch",
        };
        p.insert("tiff.ResolutionUnit".into(), unit.into());
    }
}

/// Microns per pixel from the resolution tags (centimetres or inches), as OpenSlide does.
pub(crate) fn mpp_from_resolution(ifd: &Ifd, p: &mut BTreeMap<String, String>) {
    let per_unit = match ifd.uint(296).unwrap_or(2) {
        3 => 10_000.0,
        2 => 25_400.0,
        _ => return,
    };
    for (tag, key) in [(282, "openslide.mpp-x"), (283, "openslide.mpp-y")] {
        if let Some(r) = ifd.real(tag).filter(|r| *r > 0.0 && r.is_finite()) {
            // 1 pixel per unit is the "no real resolution" default of many writers
            if r > 1.0 {
                p.insert(key.into(), fmt_f64(per_unit / r));
            }
        }
    }
}

/// `aperio.*` keys from an Aperio description: `header|Key = Value|Key = Value...`; sets
/// `openslide.mpp-x/y` from `MPP` and `openslide.objective-power` from `AppMag`.
pub(crate) fn aperio_props(desc: &str, p: &mut BTreeMap<String, String>) {
    let mut parts = desc.split('|');
    parts.next();
    for kv in parts {
        if let Some((k, v)) = kv.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            if !k.is_empty() {
                p.insert(format!("aperio.{k}"), v.to_string());
            }
        }
    }
    if let Some(m) = p.get("aperio.MPP").cloned() {
        p.insert("openslide.mpp-x".into(), m.clone());
        p.insert("openslide.mpp-y".into(), m);
    }
    if let Some(m) = p.get("aperio.AppMag").cloned() {
        p.insert("openslide.objective-power".into(), m);
    }
}

/// Physical pixel size from OME-XML (`PhysicalSizeX="0.25"`; micrometres unless another unit
/// is given) into `openslide.mpp-x/y`.
pub(crate) fn ome_props(desc: &str, p: &mut BTreeMap<String, String>) {
    for (attr, key) in [
        ("PhysicalSizeX", "openslide.mpp-x"),
        ("PhysicalSizeY", "openslide.mpp-y"),
    ] {
        let unit_attr = format!("{attr}Unit=\"");
        let unit_ok = match desc.find(&unit_attr) {
            Some(i) => desc[i + unit_attr.len()..].starts_with("µm") || desc[i + unit_attr.len()..].starts_with("um"),
            None => true,
        };
        let pat = format!("{attr}=\"");
        if let Some(i) = desc.find(&pat) {
            let rest = &desc[i + pat.len()..];
            if let Some(v) = rest.split('"').next().and_then(|v| v.parse::<f64>().ok())
                && unit_ok
            {
                p.insert(key.into(), fmt_f64(v));
            }
        }
    }
}

/// Formats like OpenSlide (`%g`-ish, without trailing zeros).
pub(crate) fn fmt_f64(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('e') { format!("{v:.6}") } else { s }
}
