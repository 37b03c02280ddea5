//! The protobuf wire format, read in place: the building blocks the remote
//! write readers and the protobuf exposition reader share. Each accepts
//! exactly what `prost` accepts for the fields it reads (the fuzz targets
//! hold them to it).

/// A protobuf field's value, by its wire type.
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
}

/// The fields of one protobuf message, in order.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        // Most varints are keys and short lengths: one byte.
        if let Some(&byte) = self.buf.get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err("the message ends inside a varint");
            };
            self.pos += 1;
            // The tenth byte may carry only the top bit.
            if i == 9 && byte > 1 {
                return Err("a varint longer than 64 bits");
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("a varint longer than 64 bits")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or("a field runs past the end of its message")?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next field's number and value; `None` at the message's end.
    pub(crate) fn next(&mut self) -> Result<Option<(u32, Value<'a>)>, &'static str> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| "a field key over 32 bits")?;
        let field = key >> 3;
        if field == 0 {
            return Err("a field numbered 0");
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("eight bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?)
                    .map_err(|_| "a length over the address space")?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            3 | 4 => return Err("a group field (deprecated; these messages have none)"),
            _ => return Err("an unknown wire type"),
        };
        Ok(Some((field, value)))
    }
}

/// Appends a `repeated uint32` field's values, packed (one length-delimited
/// run) or not (one varint), as prost takes either; a varint wider than 32
/// bits keeps its low bits, as prost does.
pub(crate) fn push_u32s(value: Value<'_>, out: &mut Vec<u32>) -> Result<(), &'static str> {
    match value {
        Value::Varint(v) => out.push(v as u32),
        Value::Bytes(packed) => {
            let mut run = Fields::new(packed);
            while run.pos < packed.len() {
                out.push(run.varint()? as u32);
            }
        }
        Value::Fixed64(_) | Value::Fixed32 => return Err("a uint32 with the wrong wire type"),
    }
    Ok(())
}

/// Appends a `repeated sint64` field's values (zigzag), packed or not.
pub(crate) fn push_sint64s(value: Value<'_>, out: &mut Vec<i64>) -> Result<(), &'static str> {
    match value {
        Value::Varint(v) => out.push(zigzag64(v)),
        Value::Bytes(packed) => {
            let mut run = Fields::new(packed);
            while run.pos < packed.len() {
                out.push(zigzag64(run.varint()?));
            }
        }
        Value::Fixed64(_) | Value::Fixed32 => return Err("a sint64 with the wrong wire type"),
    }
    Ok(())
}

/// Appends a `repeated double` field's values, packed or not.
pub(crate) fn push_doubles(value: Value<'_>, out: &mut Vec<f64>) -> Result<(), &'static str> {
    match value {
        Value::Fixed64(bits) => out.push(f64::from_bits(bits)),
        Value::Bytes(packed) => {
            if !packed.len().is_multiple_of(8) {
                return Err("packed doubles whose length is not a multiple of 8");
            }
            out.extend(
                packed
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("eight bytes"))),
            );
        }
        Value::Varint(_) | Value::Fixed32 => return Err("a double with the wrong wire type"),
    }
    Ok(())
}

/// A `sint64` from its varint.
pub(crate) fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A `sint32` from its varint (the low 32 bits, as prost reads it).
pub(crate) fn zigzag32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Splits varint-length-delimited messages off the front of `buf` (the
/// protobuf exposition format's framing): the next message, or `None` at
/// the end.
pub(crate) fn next_delimited<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, &'static str> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut reader = Fields::new(buf);
    let n = usize::try_from(reader.varint()?).map_err(|_| "a length over the address space")?;
    let message = reader.take(n)?;
    *buf = &buf[reader.pos..];
    Ok(Some(message))
}

/// A `BucketSpan` (`sint32 offset = 1`, `uint32 length = 2`), which
/// remote write and the exposition format share.
pub(crate) fn span(raw: &[u8]) -> Result<sextant_model::histogram::Span, String> {
    let mut span = sextant_model::histogram::Span::default();
    let mut fields = Fields::new(raw);
    while let Some((field, value)) = fields.next()? {
        match (field, value) {
            (1, Value::Varint(v)) => span.offset = zigzag32(v),
            (2, Value::Varint(v)) => span.length = v as u32,
            (1 | 2, _) => {
                return Err(format!(
                    "field {field} of BucketSpan has the wrong wire type"
                ));
            }
            _ => {}
        }
    }
    Ok(span)
}

pub(crate) fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    // Label names and values are nearly always ASCII, which a word at a
    // time tells; the general check goes a byte at a time through short
    // unaligned strings, and was 6% of a remote-write server's time.
    if bytes.is_ascii() {
        #[allow(unsafe_code)]
        // SAFETY: every byte is ASCII, and ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|e| format!("{what} is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_checked_ascii_or_not() {
        assert_eq!(utf8(b"", "name"), Ok(""));
        assert_eq!(
            utf8(b"node_cpu_seconds_total", "name"),
            Ok("node_cpu_seconds_total")
        );
        assert_eq!(utf8("café ☕".as_bytes(), "value"), Ok("café ☕"));
        let err = utf8(b"caf\xe9", "label value").unwrap_err();
        assert!(err.starts_with("label value is not UTF-8"), "{err}");
    }

    #[test]
    fn varints_of_one_byte_and_more() {
        let mut fields = Fields::new(&[0x7f, 0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x80]);
        assert_eq!(fields.varint(), Ok(127));
        assert_eq!(fields.varint(), Ok(128));
        assert_eq!(fields.varint(), Ok(u64::from(u32::MAX)));
        assert_eq!(fields.varint(), Err("the message ends inside a varint"));
        let mut too_long = Fields::new(&[0xff; 10]);
        assert_eq!(too_long.varint(), Err("a varint longer than 64 bits"));
    }
}
