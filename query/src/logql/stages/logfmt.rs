//! A logfmt decoder with the rules of go-logfmt as Loki adapted it: keys
//! run to `=` or a space, values to a space, or are quoted with JSON-style
//! escapes; a key alone is a key with no value.

use std::borrow::Cow;

/// Reads `key=value` pairs off one line.
pub(super) struct Decoder<'a> {
    line: &'a str,
    pos: usize,
    key: &'a str,
    value: Cow<'a, str>,
    err: Option<String>,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(line: &'a str) -> Self {
        Self {
            line,
            pos: 0,
            key: "",
            value: Cow::Borrowed(""),
            err: None,
        }
    }

    /// Whether the whole line has been read.
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// The key of the last pair read.
    pub(super) fn key(&self) -> &'a str {
        self.key
    }

    /// The value of the last pair read (empty for a bare key).
    pub(super) fn take_value(&mut self) -> Cow<'a, str> {
        std::mem::replace(&mut self.value, Cow::Borrowed(""))
    }

    /// The last syntax error met, if any.
    pub(super) fn error(&self) -> Option<&str> {
        self.err.as_deref()
    }

    fn unexpected(&mut self, c: u8) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : unexpected '{}'",
            self.pos + 1,
            c as char
        ));
    }

    fn syntax(&mut self, msg: &str) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : {msg}",
            self.pos + 1
        ));
    }

    /// Skips to the next space after a malformed pair; always false.
    fn skip_value(&mut self) -> bool {
        let b = self.line.as_bytes();
        match b[self.pos..].iter().position(|&c| c <= b' ') {
            Some(p) => self.pos += p,
            None => self.pos = b.len(),
        }
        false
    }

    /// Reads the next pair: true when there is one (the key may be empty
    /// only if the line held nothing but a value), false at the end of the
    /// line or on a malformed pair (then `error` says what).
    pub(super) fn next(&mut self) -> bool {
        self.key = "";
        self.value = Cow::Borrowed("");
        let line = self.line;
        let b = line.as_bytes();
        // Leading garbage: spaces and control characters.
        match b[self.pos.min(b.len())..].iter().position(|&c| c > b' ') {
            Some(p) => self.pos += p,
            None => {
                self.pos = b.len();
                return false;
            }
        }
        // The key.
        let start = self.pos;
        loop {
            if self.pos >= b.len() {
                self.key = &line[start..];
                return true;
            }
            let c = b[self.pos];
            if c == b'=' {
                if self.pos == start {
                    self.unexpected(c);
                    return self.skip_value();
                }
                self.key = &line[start..self.pos];
                break;
            }
            if c == b'"' {
                self.unexpected(c);
                return self.skip_value();
            }
            if c <= b' ' {
                self.key = &line[start..self.pos];
                return true;
            }
            self.pos += 1;
        }
        // The `=`.
        self.pos += 1;
        if self.pos >= b.len() {
            return true;
        }
        let c = b[self.pos];
        if c <= b' ' {
            return true;
        }
        if c == b'"' {
            return self.quoted();
        }
        // A bare value.
        let start = self.pos;
        while self.pos < b.len() {
            let c = b[self.pos];
            if c == b'=' || c == b'"' {
                self.unexpected(c);
                return self.skip_value();
            }
            if c <= b' ' {
                break;
            }
            self.pos += 1;
        }
        self.value = Cow::Borrowed(&line[start..self.pos]);
        true
    }

    /// At a `"`: a quoted value.
    fn quoted(&mut self) -> bool {
        let line = self.line;
        let b = line.as_bytes();
        let open = self.pos;
        let mut escaped = false;
        let mut has_escape = false;
        let mut i = open + 1;
        while i < b.len() {
            let c = b[i];
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                has_escape = true;
                escaped = true;
            } else if c == b'"' {
                self.pos = i + 1;
                let inner = &line[open + 1..i];
                if !has_escape {
                    self.value = Cow::Borrowed(inner);
                    return true;
                }
                match unquote(inner) {
                    Some(v) => {
                        self.value = Cow::Owned(v);
                        return true;
                    }
                    None => {
                        self.syntax("invalid quoted value");
                        return false;
                    }
                }
            }
            i += 1;
        }
        self.pos = b.len();
        self.syntax("unterminated quoted value");
        false
    }
}

/// Resolves the escapes of a quoted logfmt value (JSON's, plus `\'`);
/// `None` when one is malformed or a control character is unescaped.
fn unquote(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c < ' ' {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            c @ ('"' | '\\' | '/' | '\'') => out.push(c),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex4 = |chars: &mut std::str::Chars<'_>| -> Option<u32> {
                    let mut v = 0;
                    for _ in 0..4 {
                        v = v * 16 + chars.next()?.to_digit(16)?;
                    }
                    Some(v)
                };
                let hi = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&hi) {
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('\\')
                        && ahead.next() == Some('u')
                        && let Some(lo) =
                            hex4(&mut ahead).filter(|lo| (0xDC00..0xE000).contains(lo))
                    {
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        chars = ahead;
                        continue;
                    }
                    out.push('\u{FFFD}');
                } else {
                    out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                }
            }
            _ => return None,
        }
    }
    Some(out)
}
