//! A bounded MessagePack reader: just what the forward protocol needs.
//!
//! Two halves. [`Scanner`] finds where one top-level value ends in a stream
//! that is still arriving, without recursion, resumably (bytes already
//! measured are not walked again), and refuses nesting deeper than its
//! budget. [`Reader`] then walks a value known to be whole. Neither
//! allocates by a length prefix: a container's capacity is capped by the
//! bytes that remain (every element takes at least one), strings and
//! binaries are borrowed from the input.

use serde_json::{Map, Number, Value};

/// Why bytes are not the MessagePack that was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes end inside a value.
    #[error("truncated: the bytes end inside a value")]
    Truncated,
    /// 0xc1 is never used.
    #[error("byte 0xc1 at offset {0} is not MessagePack")]
    Reserved(usize),
    /// Containers inside containers deeper than the budget.
    #[error("nested deeper than query.max_depth ({0})")]
    TooDeep(usize),
    /// A value of another type than the protocol allows there.
    #[error("{0}")]
    Unexpected(String),
}

/// What a value's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Marker {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A UTF-8 string (by the format; the bytes are not checked) of this many bytes.
    Str(usize),
    /// Raw bytes, this many.
    Bin(usize),
    /// This many elements.
    Array(usize),
    /// This many key/value pairs.
    Map(usize),
    /// An extension type and its payload length.
    Ext(i8, usize),
}

impl Marker {
    /// The type's name, for errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nil => "nil",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::UInt(_) => "an integer",
            Self::Float(_) => "a float",
            Self::Str(_) => "a string",
            Self::Bin(_) => "a binary",
            Self::Array(_) => "an array",
            Self::Map(_) => "a map",
            Self::Ext(..) => "an extension",
        }
    }
}

/// Reads a marker at the start of `bytes`: the marker and the header's length.
/// `Ok(None)` when `bytes` end inside the header.
fn header(bytes: &[u8], offset: usize) -> Result<Option<(Marker, usize)>, Error> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let be = |n: usize| -> Option<u64> {
        let field = bytes.get(1..1 + n)?;
        Some(field.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    // Lengths are at most u32, so they always fit a usize on the targets we build for.
    let len = |n: usize| be(n).map(|v| usize::try_from(v).unwrap_or(usize::MAX));
    let marker = match first {
        0x00..=0x7f => return Ok(Some((Marker::UInt(u64::from(first)), 1))),
        0x80..=0x8f => return Ok(Some((Marker::Map(usize::from(first & 0x0f)), 1))),
        0x90..=0x9f => return Ok(Some((Marker::Array(usize::from(first & 0x0f)), 1))),
        0xa0..=0xbf => return Ok(Some((Marker::Str(usize::from(first & 0x1f)), 1))),
        0xe0..=0xff => return Ok(Some((Marker::Int(i64::from(first as i8)), 1))),
        0xc0 => return Ok(Some((Marker::Nil, 1))),
        0xc1 => return Err(Error::Reserved(offset)),
        0xc2 => return Ok(Some((Marker::Bool(false), 1))),
        0xc3 => return Ok(Some((Marker::Bool(true), 1))),
        0xc4 => len(1).map(|n| (Marker::Bin(n), 2)),
        0xc5 => len(2).map(|n| (Marker::Bin(n), 3)),
        0xc6 => len(4).map(|n| (Marker::Bin(n), 5)),
        0xc7..=0xc9 => {
            let width = 1 << (first - 0xc7);
            match (len(width), bytes.get(1 + width)) {
                (Some(n), Some(&kind)) => Some((Marker::Ext(kind as i8, n), 2 + width)),
                _ => None,
            }
        }
        0xca => be(4).map(|v| {
            let bits = u32::try_from(v).unwrap_or(0);
            (Marker::Float(f64::from(f32::from_bits(bits))), 5)
        }),
        0xcb => be(8).map(|v| (Marker::Float(f64::from_bits(v)), 9)),
        0xcc => be(1).map(|v| (Marker::UInt(v), 2)),
        0xcd => be(2).map(|v| (Marker::UInt(v), 3)),
        0xce => be(4).map(|v| (Marker::UInt(v), 5)),
        0xcf => be(8).map(|v| (Marker::UInt(v), 9)),
        0xd0 => be(1).map(|v| (Marker::Int(i64::from(v as u8 as i8)), 2)),
        0xd1 => be(2).map(|v| (Marker::Int(i64::from(v as u16 as i16)), 3)),
        0xd2 => be(4).map(|v| (Marker::Int(i64::from(v as u32 as i32)), 5)),
        0xd3 => be(8).map(|v| (Marker::Int(v as i64), 9)),
        0xd4..=0xd8 => bytes
            .get(1)
            .map(|&kind| (Marker::Ext(kind as i8, 1 << (first - 0xd4)), 2)),
        0xd9 => len(1).map(|n| (Marker::Str(n), 2)),
        0xda => len(2).map(|n| (Marker::Str(n), 3)),
        0xdb => len(4).map(|n| (Marker::Str(n), 5)),
        0xdc => len(2).map(|n| (Marker::Array(n), 3)),
        0xdd => len(4).map(|n| (Marker::Array(n), 5)),
        0xde => len(2).map(|n| (Marker::Map(n), 3)),
        0xdf => len(4).map(|n| (Marker::Map(n), 5)),
    };
    Ok(marker)
}

/// How many payload bytes follow a marker's header (containers: none, their
/// elements are values of their own).
fn payload(marker: Marker) -> usize {
    match marker {
        Marker::Str(n) | Marker::Bin(n) | Marker::Ext(_, n) => n,
        _ => 0,
    }
}

/// Values still owed by the containers being walked, innermost last.
fn owed(marker: Marker) -> Option<u64> {
    match marker {
        Marker::Array(n) => Some(n as u64),
        Marker::Map(n) => Some(2 * n as u64),
        _ => None,
    }
}

/// Finds where one whole value ends in a growing buffer. Call [`Scanner::scan`]
/// with the buffer each time it has grown; the walk resumes where it stopped.
#[derive(Debug)]
pub struct Scanner {
    /// Where the next unmeasured value starts.
    pos: usize,
    /// For each open container, how many values it still owes.
    open: Vec<u64>,
    max_depth: usize,
}

impl Scanner {
    /// A scanner refusing containers nested deeper than `max_depth`.
    pub fn new(max_depth: usize) -> Self {
        Self {
            pos: 0,
            open: Vec::new(),
            max_depth,
        }
    }

    /// `Ok(Some(len))` when `buffer[..len]` is one whole value (the scanner
    /// then starts over for the next); `Ok(None)` when more bytes are needed.
    /// `buffer` must start where the value starts and only ever grow.
    pub fn scan(&mut self, buffer: &[u8]) -> Result<Option<usize>, Error> {
        loop {
            let rest = buffer.get(self.pos..).unwrap_or_default();
            let Some((marker, header_len)) = header(rest, self.pos)? else {
                return Ok(None);
            };
            if let Some(count) = owed(marker) {
                self.pos += header_len;
                if count > 0 {
                    if self.open.len() >= self.max_depth {
                        return Err(Error::TooDeep(self.max_depth));
                    }
                    self.open.push(count);
                    continue;
                }
            } else {
                let whole = header_len.saturating_add(payload(marker));
                if rest.len() < whole {
                    return Ok(None);
                }
                self.pos += whole;
            }
            // One value ended: settle it with the containers it closes.
            loop {
                match self.open.last_mut() {
                    None => {
                        let len = self.pos;
                        self.pos = 0;
                        return Ok(Some(len));
                    }
                    Some(owed) => {
                        *owed -= 1;
                        if *owed > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                }
            }
        }
    }

    /// Bytes measured so far of the value in progress.
    pub fn measured(&self) -> usize {
        self.pos
    }
}

/// Walks whole values in a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, following containers at most `max_depth` deep.
    pub fn new(bytes: &'a [u8], max_depth: usize) -> Self {
        Self {
            bytes,
            pos: 0,
            max_depth,
        }
    }

    /// Where the reader is.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The next value's marker, consuming its header (not a string's bytes:
    /// take those with [`Reader::take`]).
    pub fn marker(&mut self) -> Result<Marker, Error> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let (marker, len) = header(rest, self.pos)?.ok_or(Error::Truncated)?;
        self.pos += len;
        Ok(marker)
    }

    /// The next value's marker, consuming nothing.
    pub fn peek(&self) -> Result<Marker, Error> {
        self.clone().marker()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let taken = self.bytes.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(taken)
    }

    /// A string or binary's bytes (the forward protocol's tags, options
    /// and packed entries come as either).
    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], Error> {
        match self.marker()? {
            Marker::Str(n) | Marker::Bin(n) => self.take(n),
            other => Err(Error::Unexpected(format!(
                "{what} must be a string, found {}",
                other.name()
            ))),
        }
    }

    /// Skips one whole value, without recursion.
    pub fn skip(&mut self) -> Result<(), Error> {
        let mut owed: u64 = 1;
        while owed > 0 {
            let marker = self.marker()?;
            owed -= 1;
            match self::owed(marker) {
                Some(count) => owed = owed.saturating_add(count),
                None => {
                    self.take(payload(marker))?;
                }
            }
        }
        Ok(())
    }

    /// One value as JSON, at most `max_depth` containers deep: a binary
    /// or a string that is not UTF-8 becomes text with replacement
    /// characters; map keys that are not strings are written as text; an
    /// EventTime inside a record becomes seconds as a float; other
    /// extensions and NaN become null.
    pub fn json(&mut self) -> Result<Value, Error> {
        self.json_at(0)
    }

    fn json_at(&mut self, depth: usize) -> Result<Value, Error> {
        let marker = self.marker()?;
        Ok(match marker {
            Marker::Nil => Value::Null,
            Marker::Bool(b) => Value::Bool(b),
            Marker::Int(i) => Value::from(i),
            Marker::UInt(u) => Value::from(u),
            Marker::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Marker::Str(n) | Marker::Bin(n) => {
                Value::String(String::from_utf8_lossy(self.take(n)?).into_owned())
            }
            Marker::Ext(kind, n) => {
                let data = self.take(n)?;
                match event_time(kind, data) {
                    Some((s, ns)) => Number::from_f64(f64::from(s) + f64::from(ns) / 1e9)
                        .map_or(Value::Null, Value::Number),
                    None => Value::Null,
                }
            }
            Marker::Array(n) => {
                self.enter(depth)?;
                let mut items = Vec::with_capacity(n.min(self.remaining()));
                for _ in 0..n {
                    items.push(self.json_at(depth + 1)?);
                }
                Value::Array(items)
            }
            Marker::Map(n) => {
                self.enter(depth)?;
                let mut map = Map::new();
                for _ in 0..n {
                    // A container as a key would be written as text inside
                    // text at each level: its length would double per level.
                    let at = self.pos;
                    let key = match self.json_at(depth + 1)? {
                        Value::String(key) => key,
                        Value::Array(_) | Value::Object(_) => {
                            return Err(Error::Unexpected(format!(
                                "a map key at offset {at} is an array or a map; keys must be strings, numbers, booleans or nil"
                            )));
                        }
                        other => other.to_string(),
                    };
                    let value = self.json_at(depth + 1)?;
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        })
    }

    fn enter(&self, depth: usize) -> Result<(), Error> {
        if depth >= self.max_depth {
            return Err(Error::TooDeep(self.max_depth));
        }
        Ok(())
    }
}

/// Fluentd's EventTime (extension type 0, 8 bytes): seconds and nanoseconds.
pub fn event_time(kind: i8, data: &[u8]) -> Option<(u32, u32)> {
    if kind != 0 {
        return None;
    }
    let data: &[u8; 8] = data.try_into().ok()?;
    let seconds = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let nanos = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    Some((seconds, nanos))
}

/// Writers for the few values the server sends (HELO, PONG, ack) and tests build.
pub mod write {
    /// A fixed or 32-bit array header.
    pub fn array(out: &mut Vec<u8>, n: u32) {
        if n < 16 {
            out.push(0x90 | n as u8);
        } else {
            out.push(0xdd);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// A fixed or 32-bit map header.
    pub fn map(out: &mut Vec<u8>, n: u32) {
        if n < 16 {
            out.push(0x80 | n as u8);
        } else {
            out.push(0xdf);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// A string.
    pub fn str(out: &mut Vec<u8>, s: &[u8]) {
        let n = s.len();
        if n < 32 {
            out.push(0xa0 | n as u8);
        } else if let Ok(n) = u8::try_from(n) {
            out.extend_from_slice(&[0xd9, n]);
        } else if let Ok(n) = u16::try_from(n) {
            out.push(0xda);
            out.extend_from_slice(&n.to_be_bytes());
        } else {
            out.push(0xdb);
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
        }
        out.extend_from_slice(s);
    }

    /// A binary.
    pub fn bin(out: &mut Vec<u8>, b: &[u8]) {
        if let Ok(n) = u8::try_from(b.len()) {
            out.extend_from_slice(&[0xc4, n]);
        } else if let Ok(n) = u16::try_from(b.len()) {
            out.push(0xc5);
            out.extend_from_slice(&n.to_be_bytes());
        } else {
            out.push(0xc6);
            out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
        }
        out.extend_from_slice(b);
    }

    /// A boolean.
    pub fn bool(out: &mut Vec<u8>, b: bool) {
        out.push(if b { 0xc3 } else { 0xc2 });
    }

    /// An unsigned integer, always as uint64.
    pub fn uint(out: &mut Vec<u8>, n: u64) {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }

    /// An EventTime.
    pub fn event_time(out: &mut Vec<u8>, seconds: u32, nanos: u32) {
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&seconds.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scanner_resumes_and_measures_one_value_at_a_time() {
        let mut value = Vec::new();
        write::array(&mut value, 3);
        write::str(&mut value, b"app.web");
        write::event_time(&mut value, 1_700_000_000, 5);
        write::map(&mut value, 1);
        write::str(&mut value, b"log");
        write::str(&mut value, &[b'x'; 300]);
        let mut stream = value.clone();
        stream.extend_from_slice(&value);
        let mut scanner = Scanner::new(8);
        // Byte by byte, as a slow connection would deliver it.
        for end in 0..value.len() {
            assert_eq!(scanner.scan(&stream[..end]).unwrap(), None, "{end}");
        }
        assert_eq!(scanner.scan(&stream).unwrap(), Some(value.len()));
        assert_eq!(
            scanner.scan(&stream[value.len()..]).unwrap(),
            Some(value.len())
        );
    }

    #[test]
    fn nesting_beyond_the_budget_is_refused_without_recursing() {
        let deep = vec![0x91u8; 100_000];
        assert_eq!(Scanner::new(100).scan(&deep), Err(Error::TooDeep(100)));
        let mut nested = vec![0x91u8; 10];
        nested.push(0xc0);
        assert_eq!(Scanner::new(100).scan(&nested), Ok(Some(11)));
        assert_eq!(
            Reader::new(&nested, 5).json(),
            Err(Error::TooDeep(5)),
            "the reader keeps its own budget"
        );
        assert_eq!(Reader::new(&nested, 10).json().unwrap().to_string(), {
            "[[[[[[[[[[null]]]]]]]]]]"
        });
    }

    #[test]
    fn containers_as_map_keys_are_refused() {
        // Maps whose key is a map, 200 deep: as text inside text, the key
        // would double in length at each level.
        let mut nested = vec![0x81u8; 200];
        nested.extend(std::iter::repeat_n(0xc0, 201));
        let err = Reader::new(&nested, 1000).json().unwrap_err();
        assert!(err.to_string().contains("is an array or a map"), "{err}");
        // An array key too; scalar keys are kept as text.
        assert!(Reader::new(&[0x81, 0x90, 0x01], 10).json().is_err());
        assert_eq!(
            Reader::new(&[0x82, 0xc0, 0x01, 0xc2, 0x02], 10)
                .json()
                .unwrap()
                .to_string(),
            r#"{"false":2,"null":1}"#
        );
    }

    #[test]
    fn huge_length_prefixes_allocate_nothing() {
        // An array of 2^32-1 elements with none present, a 4 GiB string.
        for bytes in [
            &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        ] {
            assert_eq!(Scanner::new(10).scan(bytes), Ok(None));
            assert_eq!(Reader::new(bytes, 10).json(), Err(Error::Truncated));
            assert_eq!(Reader::new(bytes, 10).skip(), Err(Error::Truncated));
        }
        assert_eq!(Scanner::new(10).scan(&[0xc1]), Err(Error::Reserved(0)));
    }

    #[test]
    fn values_read_as_json() {
        let bytes = [
            0x86, // map of 6
            0xa1, b'a', 0xd0, 0x80, // -128
            0xa1, b'b', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, // 1.5
            0xa1, b'c', 0xc4, 0x02, 0xff, b'z', // bin, not UTF-8
            0x01, 0xc3, // key 1: true
            0xa1, b'e', 0xd7, 0x00, 0, 0, 0, 10, 0x1d, 0xcd, 0x65, 0x00, // 10.5 s
            0xa1, b'f', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        let json = Reader::new(&bytes, 4).json().unwrap();
        assert_eq!(
            json.to_string(),
            r#"{"1":true,"a":-128,"b":1.5,"c":"�z","e":10.5,"f":18446744073709551615}"#
        );
    }
}
