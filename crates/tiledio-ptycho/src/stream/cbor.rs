//! A small bounded CBOR (RFC 8949) decoder and encoder: what Stream V2 messages use.
//!
//! Decoding borrows byte and text strings from the message (an 8 MiB frame is never copied to
//! be parsed), bounds nesting depth, and never allocates more items than the remaining input
//! could hold (every item takes at least one byte). Indefinite-length arrays and maps are
//! read; indefinite-length strings (chunked, which would need a copy) are refused.

/// A decoded CBOR data item; strings borrow from the input.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    /// Major type 0.
    Uint(u64),
    /// Major type 1: the value is `-1 - n`.
    Nint(u64),
    /// Major type 2.
    Bytes(&'a [u8]),
    /// Major type 3.
    Text(&'a str),
    /// Major type 4.
    Array(Vec<Value<'a>>),
    /// Major type 5, in input order.
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// Major type 6.
    Tag(u64, Box<Value<'a>>),
    /// `false` / `true`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined` and other simple values.
    Simple(u8),
    /// Half, single or double precision.
    Float(f64),
}

impl<'a> Value<'a> {
    /// The value of `key` in a map with text keys.
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(m) => m
                .iter()
                .find_map(|(k, v)| matches!(k, Value::Text(t) if *t == key).then_some(v)),
            _ => None,
        }
    }

    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(v) => Some(*v),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Uint(v) => Some(*v as f64),
            Value::Nint(v) => Some(-1.0 - *v as f64),
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// A short name of the item's type, for errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Uint(_) | Value::Nint(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::Text(_) => "text string",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Tag(..) => "tag",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
            Value::Simple(_) => "simple value",
            Value::Float(_) => "float",
        }
    }
}

/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 32;

/// Decodes exactly one data item filling `input`.
pub(crate) fn decode(input: &[u8]) -> Result<Value<'_>, String> {
    let mut d = Decoder { buf: input, pos: 0 };
    let v = d.item(0)?;
    if d.pos != input.len() {
        return Err(format!(
            "{} bytes left over after the CBOR item (at byte {})",
            input.len() - d.pos,
            d.pos
        ));
    }
    Ok(v)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// The "break" stop code of indefinite-length items.
const BREAK: u8 = 0xff;

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "truncated CBOR: {n} bytes wanted at byte {}, {} left",
                    self.pos,
                    self.buf.len() - self.pos
                )
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The argument of a head with additional information `ai`; `None` for indefinite length.
    fn arg(&mut self, ai: u8, at: usize) -> Result<Option<u64>, String> {
        Ok(Some(match ai {
            0..=23 => ai as u64,
            24 => self.take(1)?[0] as u64,
            25 => u16::from_be_bytes([self.take(1)?[0], self.take(1)?[0]]) as u64,
            26 => u32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default()) as u64,
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default()),
            31 => return Ok(None),
            _ => return Err(format!("reserved additional information {ai} at byte {at}")),
        }))
    }

    fn len(&self, n: u64, what: &str, at: usize) -> Result<usize, String> {
        // every item (or string byte) takes at least one byte of input
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.remaining())
            .ok_or_else(|| {
                format!(
                    "{what} of {n} at byte {at} is longer than the {} bytes left",
                    self.remaining()
                )
            })
    }

    fn item(&mut self, depth: usize) -> Result<Value<'a>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("CBOR nested deeper than {MAX_DEPTH} at byte {}", self.pos));
        }
        let at = self.pos;
        let ib = self.take(1)?[0];
        let (major, ai) = (ib >> 5, ib & 0x1f);
        if major == 7 {
            return match ai {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                0..=19 | 23 => Ok(Value::Simple(ai)),
                24 => Ok(Value::Simple(self.take(1)?[0])),
                25 => {
                    let b = self.take(2)?;
                    Ok(Value::Float(half_to_f64(u16::from_be_bytes([b[0], b[1]]))))
                }
                26 => Ok(Value::Float(
                    f32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default()) as f64,
                )),
                27 => Ok(Value::Float(f64::from_be_bytes(
                    self.take(8)?.try_into().unwrap_or_default(),
                ))),
                31 => Err(format!("unexpected break at byte {at}")),
                _ => Err(format!("reserved simple value {ai} at byte {at}")),
            };
        }
        let arg = self.arg(ai, at)?;
        match (major, arg) {
            (0, Some(n)) => Ok(Value::Uint(n)),
            (1, Some(n)) => Ok(Value::Nint(n)),
            (2, Some(n)) => {
                let n = self.len(n, "byte string", at)?;
                Ok(Value::Bytes(self.take(n)?))
            }
            (3, Some(n)) => {
                let n = self.len(n, "text string", at)?;
                let s = self.take(n)?;
                std::str::from_utf8(s)
                    .map(Value::Text)
                    .map_err(|_| format!("text string at byte {at} is not UTF-8"))
            }
            (2 | 3, None) => Err(format!("indefinite-length string at byte {at} (not supported)")),
            (4, n) => {
                let mut v = Vec::new();
                match n {
                    Some(n) => {
                        let n = self.len(n, "array", at)?;
                        v.reserve(n);
                        for _ in 0..n {
                            v.push(self.item(depth + 1)?);
                        }
                    }
                    None => {
                        while self.peek()? != BREAK {
                            v.push(self.item(depth + 1)?);
                        }
                        self.pos += 1;
                    }
                }
                Ok(Value::Array(v))
            }
            (5, n) => {
                let mut v = Vec::new();
                match n {
                    Some(n) => {
                        let n = self.len(n, "map", at)?;
                        v.reserve(n / 2);
                        for _ in 0..n {
                            let k = self.item(depth + 1)?;
                            v.push((k, self.item(depth + 1)?));
                        }
                    }
                    None => {
                        while self.peek()? != BREAK {
                            let k = self.item(depth + 1)?;
                            v.push((k, self.item(depth + 1)?));
                        }
                        self.pos += 1;
                    }
                }
                Ok(Value::Map(v))
            }
            (6, Some(t)) => Ok(Value::Tag(t, Box::new(self.item(depth + 1)?))),
            _ => Err(format!("malformed CBOR head {ib:#04x} at byte {at}")),
        }
    }

    fn peek(&self) -> Result<u8, String> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| format!("truncated CBOR: an indefinite-length item runs past byte {}", self.pos))
    }
}

fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let mant = (h & 0x3ff) as f64;
    sign * match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mant / 1024.0) * 2f64.powi(e as i32 - 15),
    }
}

/// Appends CBOR heads and items to a buffer.
#[derive(Default)]
pub(crate) struct Encoder {
    pub(crate) buf: Vec<u8>,
}

impl Encoder {
    pub(crate) fn head(&mut self, major: u8, n: u64) -> &mut Self {
        let m = major << 5;
        if n < 24 {
            self.buf.push(m | n as u8);
        } else if n <= u8::MAX as u64 {
            self.buf.extend([m | 24, n as u8]);
        } else if n <= u16::MAX as u64 {
            self.buf.push(m | 25);
            self.buf.extend((n as u16).to_be_bytes());
        } else if n <= u32::MAX as u64 {
            self.buf.push(m | 26);
            self.buf.extend((n as u32).to_be_bytes());
        } else {
            self.buf.push(m | 27);
            self.buf.extend(n.to_be_bytes());
        }
        self
    }
    pub(crate) fn uint(&mut self, n: u64) -> &mut Self {
        self.head(0, n)
    }
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        self.head(3, s.len() as u64);
        self.buf.extend(s.as_bytes());
        self
    }
    #[cfg(test)]
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.buf.extend(b);
        self
    }
    pub(crate) fn array(&mut self, n: usize) -> &mut Self {
        self.head(4, n as u64)
    }
    pub(crate) fn map(&mut self, n: usize) -> &mut Self {
        self.head(5, n as u64)
    }
    pub(crate) fn tag(&mut self, t: u64) -> &mut Self {
        self.head(6, t)
    }
    pub(crate) fn float(&mut self, v: f64) -> &mut Self {
        self.buf.push(0xfb);
        self.buf.extend(v.to_be_bytes());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_bounds() {
        let mut e = Encoder::default();
        e.tag(55799).map(3).text("type").text("image");
        e.text("n").array(2).uint(300).float(-1.5);
        e.text("d").tag(69).bytes(&[1, 2, 3, 4]);
        let v = decode(&e.buf).unwrap();
        let Value::Tag(55799, m) = v else { panic!() };
        assert_eq!(m.get("type").and_then(Value::as_str), Some("image"));
        assert_eq!(
            m.get("n"),
            Some(&Value::Array(vec![Value::Uint(300), Value::Float(-1.5)]))
        );
        assert_eq!(m.get("d"), Some(&Value::Tag(69, Box::new(Value::Bytes(&[1, 2, 3, 4])))));
        // every strict prefix is an error, never a panic
        for k in 0..e.buf.len() {
            assert!(decode(&e.buf[..k]).is_err(), "prefix {k}");
        }
        // a huge declared length is refused before allocating
        assert!(decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[0x5b, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
        // deep nesting is refused
        assert!(decode(&[0x81; 100]).is_err());
        // indefinite array, half float
        assert_eq!(
            decode(&[0x9f, 0x01, 0xf9, 0x3c, 0x00, 0xff]).unwrap(),
            Value::Array(vec![Value::Uint(1), Value::Float(1.0)])
        );
    }
}
