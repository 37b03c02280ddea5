//! Go's double-quoted string literals, shared by the LogQL and TraceQL lexers.

/// The double-quoted string opening at byte `open` of `src`, with Go's
/// escapes (`\n`, `\x41`, `\u00e9`, octal `\101`), as LogQL and TraceQL
/// read them: its text and the byte just after its closing quote.
pub(crate) fn go_quoted(src: &str, open: usize) -> Result<(String, usize), String> {
    let mut out: Vec<u8> = Vec::new();
    let mut chars = src[open + 1..].char_indices();
    let unterminated = || "literal not terminated: a string needs a closing \"".to_owned();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let text = String::from_utf8(out)
                    .map_err(|_| "invalid UTF-8 in string (from \\x or octal escapes)")?;
                return Ok((text, open + 1 + at + 1));
            }
            '\n' => return Err(unterminated()),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err(unterminated());
                };
                let simple = match e {
                    'a' => Some(0x07),
                    'b' => Some(0x08),
                    'f' => Some(0x0c),
                    'n' => Some(b'\n'),
                    'r' => Some(b'\r'),
                    't' => Some(b'\t'),
                    'v' => Some(0x0b),
                    '\\' => Some(b'\\'),
                    '"' => Some(b'"'),
                    _ => None,
                };
                if let Some(byte) = simple {
                    out.push(byte);
                    continue;
                }
                let (digits, radix) = match e {
                    'x' => (2, 16),
                    'u' => (4, 16),
                    'U' => (8, 16),
                    '0'..='7' => (3, 8),
                    _ => return Err(format!("invalid escape sequence \\{e} in string")),
                };
                let mut value: u32 = 0;
                let mut read = 0;
                if radix == 8 {
                    value = e.to_digit(8).unwrap_or_default();
                    read = 1;
                }
                while read < digits {
                    let Some((_, d)) = chars.next() else {
                        return Err(unterminated());
                    };
                    let Some(d) = d.to_digit(radix) else {
                        return Err(format!("invalid escape sequence \\{e} in string"));
                    };
                    value = value * radix + d;
                    read += 1;
                }
                match e {
                    'u' | 'U' => {
                        let c = char::from_u32(value).ok_or_else(|| {
                            format!("escape sequence \\{e} is not a valid Unicode code point")
                        })?;
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => out.push(u8::try_from(value).map_err(|_| {
                        "octal escape sequence is greater than 255 (\\377)".to_owned()
                    })?),
                }
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Err(unterminated())
}
