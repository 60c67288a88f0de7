//! Messages of the two wire formats: decoding (recognised per message) and encoding.

use super::cbor::{self, Encoder, Value};
use super::error::StreamErrorKind as K;
use std::ops::Range;
use tiledio_io::ElementType;
use tiledio_zarr::serde_json;

/// Which wire format a message came in (or a [`super::Sender`] writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFormat {
    /// tiledio's multipart JSON header + raw frame ([`crate::stream`] docs).
    Tiledio,
    /// DECTRIS Stream V2: one CBOR message each.
    StreamV2,
}

/// How a Stream V2 image's bytes are compressed (DECTRIS CBOR tag 56500).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// A plain typed array.
    #[default]
    None,
    /// `"bslz4"`: bitshuffle + LZ4, HDF5 filter framing (elements of the array's size).
    Bslz4,
    /// `"lz4"`: LZ4, HDF5 filter framing.
    Lz4,
}

/// The pixels of one frame: `H × W` little-endian elements, held in the buffer they arrived
/// in (an uncompressed frame is never copied out of its message).
///
/// ```
/// let f = tiledio_ptycho::stream::Frame::from_vec(vec![1, 2, 3, 4]);
/// assert_eq!(f.bytes(), &[1, 2, 3, 4]);
/// assert_eq!(f.into_vec(), vec![1, 2, 3, 4]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    buf: Vec<u8>,
    range: Range<usize>,
}

impl Frame {
    /// A frame holding all of `buf`.
    pub fn from_vec(buf: Vec<u8>) -> Frame {
        let range = 0..buf.len();
        Frame { buf, range }
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }

    /// The bytes as a vector (no copy when the frame fills its buffer).
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.range.start == 0 {
            self.buf.truncate(self.range.end);
            self.buf
        } else {
            self.bytes().to_vec()
        }
    }

    /// The underlying buffer, for reuse ([`super::Receiver::recycle`]).
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

/// One message of a series, from either wire format.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A series begins.
    Start {
        /// Frames the series will have (`frames` / `number_of_images`).
        frames: u64,
        /// Frame shape `(H, W)` (`image_size_y`, `image_size_x` in Stream V2).
        shape: (usize, usize),
        /// Element type; `None` in Stream V2, where the first image tells it.
        dtype: Option<ElementType>,
        /// The wire format of the series.
        format: WireFormat,
    },
    /// One frame.
    Image {
        /// Frame index (`frame` / `image_id`), from 0.
        frame: u64,
        /// Scan position x (NaN when the message carries none: Stream V2 takes `posx` from a
        /// `user_data` map when there is one).
        posx: f64,
        /// Scan position y (as `posx`).
        posy: f64,
        /// Frame shape `(H, W)`.
        shape: (usize, usize),
        /// Element type.
        dtype: ElementType,
        /// The pixels, decompressed.
        data: Frame,
    },
    /// The series ended.
    End,
}

/// What an image message says of its frame besides the pixels (the fields of
/// [`Message::Image`] but `data`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ImageMeta {
    /// Frame index, from 0.
    pub(crate) frame: u64,
    /// Scan position x (NaN when none).
    pub(crate) posx: f64,
    /// Scan position y (NaN when none).
    pub(crate) posy: f64,
    /// Frame shape `(H, W)`.
    pub(crate) shape: (usize, usize),
    /// Element type.
    pub(crate) dtype: ElementType,
}

impl ImageMeta {
    /// The image message of these pixels.
    pub(crate) fn message(self, data: Frame) -> Message {
        Message::Image {
            frame: self.frame,
            posx: self.posx,
            posy: self.posy,
            shape: self.shape,
            dtype: self.dtype,
            data,
        }
    }
}

impl Message {
    /// An image message as its [`ImageMeta`] and pixels; any other message as it is.
    pub(crate) fn into_image(self) -> Result<(ImageMeta, Frame), Message> {
        match self {
            Message::Image {
                data,
                frame,
                posx,
                posy,
                shape,
                dtype,
            } => {
                let meta = ImageMeta {
                    frame,
                    posx,
                    posy,
                    shape,
                    dtype,
                };
                Ok((meta, data))
            }
            other => Err(other),
        }
    }
}

/// What a decoder remembers between messages (the tiledio image needs the start's shape).
#[derive(Debug, Default)]
pub(crate) struct DecodeState {
    pub(crate) shape: Option<(usize, usize)>,
    pub(crate) dtype: Option<ElementType>,
    pub(crate) channels: Vec<String>,
    /// The Stream V2 channel to take (`None`: the start's first, else the map's first).
    pub(crate) channel: Option<String>,
    /// Largest frame accepted, in bytes.
    pub(crate) max_frame: u64,
}

type DecodeResult<T> = Result<T, (K, String)>;

fn bad<T>(m: impl Into<String>) -> DecodeResult<T> {
    Err((K::Malformed, m.into()))
}

impl DecodeState {
    fn check_size(&self, shape: (usize, usize), es: usize) -> DecodeResult<usize> {
        let n = (shape.0 as u64)
            .checked_mul(shape.1 as u64)
            .and_then(|p| p.checked_mul(es as u64))
            .filter(|n| *n <= self.max_frame)
            .ok_or_else(|| {
                (
                    K::Limit,
                    format!(
                        "frame shape {shape:?} of {es}-byte elements is over the {}-byte limit",
                        self.max_frame
                    ),
                )
            })?;
        Ok(n as usize)
    }

    /// Decodes one message; keeps the part holding the frame (removed from `parts`), leaving
    /// the others for reuse. `alloc(len)` gives a buffer for decompressed pixels.
    pub(crate) fn decode(
        &mut self,
        parts: &mut Vec<Vec<u8>>,
        alloc: &mut dyn FnMut(usize) -> Vec<u8>,
    ) -> DecodeResult<Message> {
        let first = parts.first().ok_or((K::Malformed, "an empty message".to_string()))?;
        let json = first
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if json {
            self.decode_json(parts)
        } else {
            self.decode_cbor(parts, alloc)
        }
    }

    fn decode_json(&mut self, parts: &mut Vec<Vec<u8>>) -> DecodeResult<Message> {
        const MAX_HEADER: usize = 64 << 10;
        if parts[0].len() > MAX_HEADER {
            return Err((
                K::Limit,
                format!("a JSON header of {} bytes (limit {MAX_HEADER})", parts[0].len()),
            ));
        }
        let h: serde_json::Value =
            serde_json::from_slice(&parts[0]).map_err(|e| (K::Malformed, format!("JSON header: {e}")))?;
        let ty = h.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let u = |k: &str| -> DecodeResult<u64> {
            h.get(k)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| (K::Malformed, format!("{ty} header without an integer {k:?}")))
        };
        let pos = |k: &str| -> DecodeResult<f64> {
            match h.get(k) {
                None | Some(serde_json::Value::Null) => Ok(f64::NAN),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| (K::Malformed, format!("{ty} header: {k:?} is not a number"))),
            }
        };
        let want_parts = if ty == "image" { 2 } else { 1 };
        if parts.len() != want_parts {
            return bad(format!(
                "a {ty:?} message of {} parts (expected {want_parts})",
                parts.len()
            ));
        }
        match ty {
            "start" => {
                let frames = u("frames")?;
                let shape = match h.get("shape").and_then(|s| s.as_array()).map(|s| s.as_slice()) {
                    Some([a, b]) => match (a.as_u64(), b.as_u64()) {
                        (Some(a), Some(b)) => (a as usize, b as usize),
                        _ => return bad("start header: shape is not two integers"),
                    },
                    _ => return bad("start header: shape is not [H, W]"),
                };
                let dtype: ElementType = h
                    .get("dtype")
                    .and_then(|d| d.as_str())
                    .ok_or((K::Malformed, "start header without a dtype".to_string()))?
                    .parse()
                    .map_err(|e: String| (K::Unsupported, e))?;
                self.check_size(shape, dtype.size())?;
                self.shape = Some(shape);
                self.dtype = Some(dtype);
                Ok(Message::Start {
                    frames,
                    shape,
                    dtype: Some(dtype),
                    format: WireFormat::Tiledio,
                })
            }
            "image" => {
                let frame = u("frame")?;
                let (Some(shape), Some(dtype)) = (self.shape, self.dtype) else {
                    return bad(format!("image {frame} before a start message"));
                };
                let want = self.check_size(shape, dtype.size())?;
                if parts[1].len() != want {
                    return bad(format!(
                        "image {frame}: {} data bytes, a {shape:?} {dtype} frame has {want}",
                        parts[1].len()
                    ));
                }
                let meta = ImageMeta {
                    frame,
                    posx: pos("posx")?,
                    posy: pos("posy")?,
                    shape,
                    dtype,
                };
                Ok(meta.message(Frame::from_vec(parts.swap_remove(1))))
            }
            "end" => Ok(Message::End),
            other => bad(format!("unknown message type {other:?}")),
        }
    }

    fn decode_cbor(
        &mut self,
        parts: &mut Vec<Vec<u8>>,
        alloc: &mut dyn FnMut(usize) -> Vec<u8>,
    ) -> DecodeResult<Message> {
        if parts.len() != 1 {
            return bad(format!("a CBOR message of {} parts (expected 1)", parts.len()));
        }
        let buf = &parts[0];
        let mut v = cbor::decode(buf).map_err(|e| (K::Malformed, format!("CBOR: {e}")))?;
        while let Value::Tag(55799, inner) = v {
            v = *inner;
        }
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or((K::Malformed, "a CBOR message without a text \"type\"".to_string()))?;
        let u = |k: &str| -> DecodeResult<u64> {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| (K::Malformed, format!("{ty} message without an unsigned {k:?}")))
        };
        match ty {
            "start" => {
                let frames = u("number_of_images")?;
                let shape = (u("image_size_y")? as usize, u("image_size_x")? as usize);
                self.check_size(shape, 1)?;
                self.channels = match v.get("channels") {
                    Some(Value::Array(a)) => a.iter().filter_map(|c| c.as_str().map(String::from)).collect(),
                    _ => Vec::new(),
                };
                self.shape = Some(shape);
                self.dtype = None;
                Ok(Message::Start {
                    frames,
                    shape,
                    dtype: None,
                    format: WireFormat::StreamV2,
                })
            }
            "image" => {
                let frame = u("image_id")?;
                let at = |m: String| (K::Malformed, format!("image {frame}: {m}"));
                let Some(Value::Map(channels)) = v.get("data") else {
                    return Err(at("no \"data\" map".into()));
                };
                let want = self.channel.as_deref().or(self.channels.first().map(String::as_str));
                let (name, arr) = match want {
                    Some(w) => channels
                        .iter()
                        .find(|(k, _)| k.as_str() == Some(w))
                        .ok_or_else(|| at(format!("no channel {w:?} in \"data\"")))?,
                    None => channels.first().ok_or_else(|| at("an empty \"data\" map".into()))?,
                };
                let name = name.as_str().unwrap_or("?");
                let Value::Tag(40, md) = arr else {
                    return Err(at(format!(
                        "channel {name:?} is a {}, not a tag-40 multi-dimensional array",
                        arr.kind()
                    )));
                };
                let (shape, typed) = match md.as_ref() {
                    Value::Array(a) => match a.as_slice() {
                        [Value::Array(d), t] => match d.as_slice() {
                            [Value::Uint(h), Value::Uint(w)] => ((*h as usize, *w as usize), t),
                            _ => return Err(at("dimensions are not two unsigned integers".into())),
                        },
                        _ => return Err(at("tag 40 is not [dimensions, array]".into())),
                    },
                    _ => return Err(at("tag 40 is not an array".into())),
                };
                let Value::Tag(tt, content) = typed else {
                    return Err(at(format!("the array is a {}, not a typed array", typed.kind())));
                };
                let dtype = typed_array_type(*tt).ok_or_else(|| {
                    (
                        K::Unsupported,
                        format!("image {frame}: typed-array tag {tt} (only little-endian and 8-bit types are read)"),
                    )
                })?;
                if let Some(s) = self.shape
                    && s != shape
                {
                    return Err(at(format!("a {shape:?} frame in a {s:?} series")));
                }
                let n = self
                    .check_size(shape, dtype.size())
                    .map_err(|(k, m)| (k, format!("image {frame}: {m}")))?;
                let pos = |k: &str| match v.get("user_data") {
                    Some(ud @ Value::Map(_)) => ud.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN),
                    _ => f64::NAN,
                };
                let meta = ImageMeta {
                    frame,
                    posx: pos("posx"),
                    posy: pos("posy"),
                    shape,
                    dtype,
                };
                let base = buf.as_ptr() as usize;
                let offset = |b: &[u8]| b.as_ptr() as usize - base;
                enum Payload {
                    Plain(Range<usize>),
                    Packed(Compression, usize, Range<usize>),
                }
                let payload = match content.as_ref() {
                    Value::Bytes(b) => Payload::Plain(offset(b)..offset(b) + b.len()),
                    Value::Tag(56500, c) => match c.as_ref() {
                        Value::Array(a) => match a.as_slice() {
                            [Value::Text(alg), m, Value::Bytes(b)] => {
                                let comp = match *alg {
                                    "bslz4" => Compression::Bslz4,
                                    "lz4" => Compression::Lz4,
                                    other => {
                                        return Err((K::Unsupported, format!("image {frame}: compression {other:?}")));
                                    }
                                };
                                let es = m.as_u64().unwrap_or(0) as usize;
                                if comp == Compression::Bslz4 && es != dtype.size() {
                                    return Err(at(format!(
                                        "bslz4 element size {es} for {}-byte elements",
                                        dtype.size()
                                    )));
                                }
                                Payload::Packed(comp, es, offset(b)..offset(b) + b.len())
                            }
                            _ => return Err(at("tag 56500 is not [algorithm, modifier, bytes]".into())),
                        },
                        _ => return Err(at("tag 56500 is not an array".into())),
                    },
                    other => {
                        return Err(at(format!("typed array holds a {}", other.kind())));
                    }
                };
                let data = match payload {
                    Payload::Plain(r) => {
                        if r.len() != n {
                            return Err(at(format!("{} data bytes, a {shape:?} {dtype} frame has {n}", r.len())));
                        }
                        Frame {
                            buf: parts.swap_remove(0),
                            range: r,
                        }
                    }
                    Payload::Packed(comp, es, r) => {
                        let src = &parts[0][r];
                        let mut out = alloc(n);
                        super::zmtp::set_len(&mut out, n);
                        let res = match comp {
                            Compression::Bslz4 => crate::decode_bitshuffle_lz4(src, es, &mut out),
                            _ => crate::decode_lz4(src, &mut out),
                        };
                        res.map_err(|e| at(format!("{comp:?} payload: {e}")))?;
                        Frame::from_vec(out)
                    }
                };
                self.dtype = Some(dtype);
                Ok(meta.message(data))
            }
            "end" => Ok(Message::End),
            other => bad(format!("unknown message type {other:?}")),
        }
    }
}

/// The element type of an RFC 8746 typed-array tag this host reads as it is.
fn typed_array_type(tag: u64) -> Option<ElementType> {
    Some(match tag {
        64 | 68 => ElementType::U8,
        69 => ElementType::U16,
        70 => ElementType::U32,
        71 => ElementType::U64,
        72 => ElementType::I8,
        77 => ElementType::I16,
        78 => ElementType::I32,
        79 => ElementType::I64,
        85 => ElementType::F32,
        86 => ElementType::F64,
        _ => return None,
    })
}

/// The little-endian typed-array tag of an element type.
fn typed_array_tag(t: ElementType) -> u64 {
    match t {
        ElementType::U8 => 64,
        ElementType::U16 => 69,
        ElementType::U32 => 70,
        ElementType::U64 => 71,
        ElementType::I8 => 72,
        ElementType::I16 => 77,
        ElementType::I32 => 78,
        ElementType::I64 => 79,
        ElementType::F32 => 85,
        _ => 86,
    }
}

/// The Stream V2 channel a [`super::Sender`] writes.
pub(crate) const CHANNEL: &str = "threshold_1";
const SERIES_ID: u64 = 1;
const SERIES_UID: &str = "tiledio";

fn json_number(v: f64) -> String {
    if v.is_finite() { format!("{v:?}") } else { "null".into() }
}

/// The encoded parts of one message: frame `i` is the concatenation of `frames[i]`; the
/// payload (borrowed or compressed) goes last.
pub(crate) struct Encoded {
    pub(crate) head: Vec<u8>,
    pub(crate) packed: Vec<u8>,
    /// Whether the payload is a separate ZMQ frame (tiledio) or the tail of the head's frame.
    pub(crate) separate: bool,
}

/// A Stream V2 message begun: the self-described CBOR tag, a map of `fields` entries and its
/// first three, `type` (`ty`), `series_id` and `series_unique_id`.
fn v2_message(ty: &str, fields: usize) -> Encoder {
    let mut e = Encoder::default();
    e.tag(55799).map(fields);
    e.text("type").text(ty);
    e.text("series_id").uint(SERIES_ID);
    e.text("series_unique_id").text(SERIES_UID);
    e
}

pub(crate) fn encode_start(format: WireFormat, frames: u64, shape: (usize, usize), dtype: ElementType) -> Vec<u8> {
    match format {
        WireFormat::Tiledio => format!(
            r#"{{"type":"start","frames":{frames},"shape":[{},{}],"dtype":"{}"}}"#,
            shape.0,
            shape.1,
            dtype.name()
        )
        .into_bytes(),
        WireFormat::StreamV2 => {
            let mut e = v2_message("start", 7);
            e.text("number_of_images").uint(frames);
            e.text("image_size_x").uint(shape.1 as u64);
            e.text("image_size_y").uint(shape.0 as u64);
            e.text("channels").array(1).text(CHANNEL);
            e.buf
        }
    }
}

pub(crate) fn encode_end(format: WireFormat) -> Vec<u8> {
    match format {
        WireFormat::Tiledio => br#"{"type":"end"}"#.to_vec(),
        WireFormat::StreamV2 => v2_message("end", 3).buf,
    }
}

pub(crate) fn encode_image(format: WireFormat, compression: Compression, meta: &ImageMeta, data: &[u8]) -> Encoded {
    let (shape, dtype) = (meta.shape, meta.dtype);
    match format {
        WireFormat::Tiledio => Encoded {
            head: format!(
                r#"{{"type":"image","frame":{},"posx":{},"posy":{}}}"#,
                meta.frame,
                json_number(meta.posx),
                json_number(meta.posy)
            )
            .into_bytes(),
            packed: Vec::new(),
            separate: true,
        },
        WireFormat::StreamV2 => {
            let mut e = v2_message("image", 6);
            e.text("image_id").uint(meta.frame);
            e.text("user_data").map(2);
            e.text("posx").float(meta.posx).text("posy").float(meta.posy);
            e.text("data").map(1).text(CHANNEL);
            e.tag(40).array(2).array(2).uint(shape.0 as u64).uint(shape.1 as u64);
            e.tag(typed_array_tag(dtype));
            let packed = match compression {
                Compression::None => Vec::new(),
                // whole elements of 1 to 8 bytes (checked by the sender) and bitshuffle's
                // default block: the encoder has nothing to refuse
                Compression::Bslz4 => crate::encode_bitshuffle_lz4(data, dtype.size(), 0).unwrap_or_default(),
                Compression::Lz4 => crate::encode_lz4(data),
            };
            match compression {
                Compression::None => {}
                Compression::Bslz4 => {
                    e.tag(56500).array(3).text("bslz4").uint(dtype.size() as u64);
                }
                Compression::Lz4 => {
                    e.tag(56500).array(3).text("lz4").uint(0);
                }
            }
            let len = if compression == Compression::None {
                data.len()
            } else {
                packed.len()
            };
            e.head(2, len as u64);
            Encoded {
                head: e.buf,
                packed,
                separate: false,
            }
        }
    }
}
