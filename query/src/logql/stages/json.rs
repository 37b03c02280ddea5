//! JSON for `| json` and `| unpack`, read straight off the line's bytes.
//!
//! Nothing here recurses: nested objects and arrays are walked with an
//! explicit stack on the heap, so a line of a million `[` costs memory in
//! proportion to the line and never the thread's stack. Values are sliced
//! out of the line as written; only strings with escapes are copied.

use std::borrow::Cow;

/// The kind of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    String,
    Number,
    Bool,
    Null,
    Object,
    Array,
}

/// One step of a `| json a="b.c[0]"` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// Parses Loki's JSON expression syntax: `a.b`, `a["key with space"]`,
/// `list[0]`, `a.list[0]["b"]`.
pub(super) fn parse_path(text: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| format!("invalid JSON expression {text:?}: {why}");
    let b = text.as_bytes();
    let mut i = 0;
    let mut steps = Vec::new();
    let ident_start = |c: u8| c.is_ascii_alphabetic() || c == b'_';
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n') {
            *i += 1;
        }
    };
    // Whether the next field must follow a `.` (after the first step).
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        match b[i] {
            b'.' if !steps.is_empty() => {
                i += 1;
                skip_ws(&mut i);
                if i >= b.len() || !ident_start(b[i]) {
                    return Err(bad("expected a field name after '.'"));
                }
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                steps.push(Step::Key(text[start..i].to_owned()));
            }
            c if ident_start(c) && steps.is_empty() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                steps.push(Step::Key(text[start..i].to_owned()));
            }
            b'[' => {
                i += 1;
                skip_ws(&mut i);
                if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let start = i;
                    while i < b.len() && b[i] != b'"' && b[i] != b']' {
                        i += 1;
                    }
                    let key = text[start..i].to_owned();
                    if i < b.len() && b[i] == b'"' {
                        i += 1;
                    }
                    steps.push(Step::Key(key));
                } else if i < b.len() && b[i].is_ascii_digit() {
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    let index = text[start..i]
                        .parse()
                        .map_err(|_| bad("array index out of range"))?;
                    steps.push(Step::Index(index));
                } else {
                    return Err(bad("expected a quoted key or an index after '['"));
                }
                skip_ws(&mut i);
                if i >= b.len() || b[i] != b']' {
                    return Err(bad("expected ']'"));
                }
                i += 1;
            }
            _ => return Err(bad(&format!("unexpected {:?}", &text[i..]))),
        }
    }
    if steps.is_empty() {
        return Err(bad("empty"));
    }
    Ok(steps)
}

/// A cursor over a JSON text.
pub(super) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn err(&self, what: &str) -> String {
        match self.peek() {
            None => format!("unexpected end of JSON input, {what}"),
            Some(_) => {
                let ch = self.text[self.pos..].chars().next().unwrap_or(' ');
                format!("unexpected {ch:?} at offset {}, {what}", self.pos)
            }
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// At a `"`: returns the string's contents as written (escapes kept)
    /// and moves past the closing quote.
    fn raw_string(&mut self) -> Result<&'a str, String> {
        let b = self.bytes();
        let start = self.pos + 1;
        let mut i = start;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(&self.text[start..i]);
                }
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        self.pos = b.len();
        Err("unterminated string in JSON input".to_owned())
    }

    /// Moves past one scalar (number, `true`, `false`, `null`).
    fn scalar(&mut self) -> Result<Kind, String> {
        let b = self.bytes();
        let start = self.pos;
        for (word, kind) in [
            ("true", Kind::Bool),
            ("false", Kind::Bool),
            ("null", Kind::Null),
        ] {
            if self.text[start..].starts_with(word) {
                self.pos += word.len();
                return Ok(kind);
            }
        }
        let mut i = start;
        while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
            i += 1;
        }
        let number = &self.text[start..i];
        if number.is_empty() || !number.bytes().any(|c| c.is_ascii_digit()) {
            return Err(self.err("expected a JSON value"));
        }
        self.pos = i;
        Ok(Kind::Number)
    }

    /// Moves past one value of any kind, nested as deep as it likes,
    /// checking its syntax; returns its kind and the text it spans.
    pub(super) fn value(&mut self) -> Result<(Kind, &'a str), String> {
        self.ws();
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'"') => {
                self.raw_string()?;
                return Ok((Kind::String, &self.text[start..self.pos]));
            }
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            _ => {
                let kind = self.scalar()?;
                return Ok((kind, &self.text[start..self.pos]));
            }
        };
        // A container: closers still expected, innermost last.
        let mut closers: Vec<u8> = Vec::new();
        #[derive(Clone, Copy, PartialEq)]
        enum St {
            Value,
            ValueOrClose,
            KeyOrClose,
            Key,
            CommaOrClose,
        }
        let mut st = St::Value;
        loop {
            self.ws();
            let c = self.peek();
            match st {
                St::ValueOrClose | St::KeyOrClose if c == closers.last().copied() => {
                    self.pos += 1;
                    closers.pop();
                    if closers.is_empty() {
                        break;
                    }
                    st = St::CommaOrClose;
                }
                St::ValueOrClose => st = St::Value,
                St::KeyOrClose => st = St::Key,
                St::Key => {
                    if c != Some(b'"') {
                        return Err(self.err("expected an object key"));
                    }
                    self.raw_string()?;
                    self.expect(b':', "expected ':' after an object key")?;
                    st = St::Value;
                }
                St::Value => match c {
                    Some(b'{') => {
                        self.pos += 1;
                        closers.push(b'}');
                        st = St::KeyOrClose;
                    }
                    Some(b'[') => {
                        self.pos += 1;
                        closers.push(b']');
                        st = St::ValueOrClose;
                    }
                    Some(b'"') => {
                        self.raw_string()?;
                        st = St::CommaOrClose;
                    }
                    _ => {
                        self.scalar()?;
                        st = St::CommaOrClose;
                    }
                },
                St::CommaOrClose => match c {
                    Some(b',') => {
                        self.pos += 1;
                        st = if closers.last() == Some(&b'}') {
                            St::Key
                        } else {
                            St::Value
                        };
                    }
                    Some(x) if Some(&x) == closers.last() => {
                        self.pos += 1;
                        closers.pop();
                        if closers.is_empty() {
                            break;
                        }
                    }
                    _ => return Err(self.err("expected ',' or a closing bracket")),
                },
            }
        }
        Ok((kind, &self.text[start..self.pos]))
    }

    /// After the opening `{` or `[` or a member: moves past the `,` before
    /// the next member (true) or the closing bracket (false).
    fn next_member(&mut self, close: u8) -> Result<bool, String> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.err("expected ',' or a closing bracket")),
        }
    }

    /// Right after an opening bracket: whether the container is empty
    /// (and if so moves past its closing bracket).
    fn empty_container(&mut self, close: u8) -> bool {
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// One `"key": ` of an object: the key as written, positioned at the value.
    fn key(&mut self) -> Result<&'a str, String> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(self.err("expected an object key"));
        }
        let key = self.raw_string()?;
        self.expect(b':', "expected ':' after an object key")?;
        self.ws();
        Ok(key)
    }
}

/// The contents of a JSON string (without its quotes) with escapes
/// resolved; `None` for a malformed escape. A lone surrogate decodes to
/// U+FFFD, as Go does.
pub(super) fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('\\') {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (_, e) = chars.next()?;
        match e {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex4 = |chars: &mut std::str::CharIndices<'_>| -> Option<u32> {
                    let mut v = 0;
                    for _ in 0..4 {
                        v = v * 16 + chars.next()?.1.to_digit(16)?;
                    }
                    Some(v)
                };
                let hi = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate: a low one must follow to make a pair.
                    let rest = chars.as_str();
                    if let Some(after) = rest.strip_prefix("\\u") {
                        let mut ahead = after.char_indices();
                        if let Some(lo) =
                            hex4(&mut ahead).filter(|lo| (0xDC00..0xE000).contains(lo))
                        {
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                            for _ in 0..6 {
                                chars.next();
                            }
                            continue;
                        }
                    }
                    out.push('\u{FFFD}');
                } else {
                    out.push(char::from_u32(hi).unwrap_or('\u{FFFD}'));
                }
            }
            _ => return None,
        }
    }
    Some(Cow::Owned(out))
}

/// A label value from a JSON string: unescaped, with U+FFFD (the mark of
/// bytes that were not UTF-8) turned into a space, as Loki does.
pub(super) fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    let s = unescape(raw)?;
    if s.contains('\u{FFFD}') {
        return Some(Cow::Owned(s.replace('\u{FFFD}', " ")));
    }
    Some(s)
}

/// Appends one key of a flattened name: trimmed, a `_` between parts, a
/// `_` before a leading digit, and every character outside
/// `[a-zA-Z0-9_]` as `_`. Blank parts add nothing.
pub(super) fn append_sanitized(name: &mut String, part: &str) {
    let part = part.trim();
    if part.is_empty() {
        return;
    }
    if !name.is_empty() || part.starts_with(|c: char| c.is_ascii_digit()) {
        name.push('_');
    }
    name.extend(part.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// `| json` without parameters: calls `emit(name, value)` for every string,
/// number and boolean of the object `line`, nested objects' keys joined
/// with `_`; arrays and nulls are skipped. Err says why the line is not a
/// JSON object (labels emitted before the fault stay, as in Loki).
pub(super) fn flatten(line: &str, mut emit: impl FnMut(&str, Cow<'_, str>)) -> Result<(), String> {
    let mut sc = Scanner::new(line);
    sc.ws();
    if sc.peek() != Some(b'{') {
        return Err(sc.err("expected a JSON object"));
    }
    sc.pos += 1;
    // The joined name of the enclosing objects, and its length before
    // each level was appended.
    let mut prefix = String::new();
    let mut levels: Vec<usize> = Vec::new();
    let mut name = String::new();
    let mut first = true;
    loop {
        // Next member of the current object, or its end.
        let more = if first {
            !sc.empty_container(b'}')
        } else {
            sc.next_member(b'}')?
        };
        first = false;
        if !more {
            match levels.pop() {
                Some(len) => {
                    prefix.truncate(len);
                    continue;
                }
                None => return Ok(()),
            }
        }
        let key = sc.key()?;
        match sc.peek() {
            Some(b'{') => {
                sc.pos += 1;
                levels.push(prefix.len());
                append_sanitized(&mut prefix, key);
                first = true;
            }
            Some(b'"') => {
                let raw = sc.raw_string()?;
                let value =
                    string_value(raw).ok_or_else(|| format!("invalid escape in string {raw:?}"))?;
                name.clear();
                name.push_str(&prefix);
                append_sanitized(&mut name, key);
                if !name.is_empty() {
                    emit(&name, value);
                }
            }
            _ => {
                let (kind, text) = sc.value()?;
                if matches!(kind, Kind::Number | Kind::Bool) {
                    name.clear();
                    name.push_str(&prefix);
                    append_sanitized(&mut name, key);
                    if !name.is_empty() {
                        emit(&name, Cow::Borrowed(text));
                    }
                }
            }
        }
    }
}

/// The value at `path` in `line`: `Ok(None)` when the path leads nowhere,
/// Err when the JSON is malformed on the way.
pub(super) fn lookup<'a>(line: &'a str, path: &[Step]) -> Result<Option<(Kind, &'a str)>, String> {
    let mut sc = Scanner::new(line);
    for step in path {
        sc.ws();
        match step {
            Step::Key(want) => {
                if sc.peek() != Some(b'{') {
                    return Ok(None);
                }
                sc.pos += 1;
                if sc.empty_container(b'}') {
                    return Ok(None);
                }
                loop {
                    let key = sc.key()?;
                    let matched = match unescape(key) {
                        Some(k) => k == want.as_str(),
                        None => false,
                    };
                    if matched {
                        break;
                    }
                    sc.value()?;
                    if !sc.next_member(b'}')? {
                        return Ok(None);
                    }
                }
            }
            Step::Index(want) => {
                if sc.peek() != Some(b'[') {
                    return Ok(None);
                }
                sc.pos += 1;
                if sc.empty_container(b']') {
                    return Ok(None);
                }
                let mut at = 0;
                while at < *want {
                    sc.value()?;
                    if !sc.next_member(b']')? {
                        return Ok(None);
                    }
                    at += 1;
                }
            }
        }
    }
    sc.value().map(Some)
}

/// The label value of a looked-up JSON value: strings unescaped, null
/// empty, everything else as written.
pub(super) fn value_text(kind: Kind, text: &str) -> Option<Cow<'_, str>> {
    match kind {
        Kind::String => string_value(&text[1..text.len() - 1]),
        Kind::Null => Some(Cow::Borrowed("")),
        _ => Some(Cow::Borrowed(text)),
    }
}

/// What `| unpack` finds: the string members (key as written, value) and
/// the packed line.
pub(super) type Unpacked<'a> = (Vec<(&'a str, Cow<'a, str>)>, Option<String>);

/// `| unpack`: the object's string members, and `_entry` (the packed
/// line) if there is one. Non-string members are skipped.
pub(super) fn unpack(line: &str) -> Result<Unpacked<'_>, String> {
    let mut sc = Scanner::new(line);
    if sc.peek() != Some(b'{') {
        return Err("expecting a JSON object".to_owned());
    }
    sc.pos += 1;
    let mut members = Vec::new();
    let mut entry = None;
    if sc.empty_container(b'}') {
        return Ok((members, entry));
    }
    loop {
        let key = sc.key()?;
        let (kind, text) = sc.value()?;
        if kind == Kind::String {
            let raw = &text[1..text.len() - 1];
            if key == "_entry" {
                let value = unescape(raw).ok_or_else(|| format!("invalid escape in {raw:?}"))?;
                entry = Some(value.into_owned());
            } else {
                let value =
                    string_value(raw).ok_or_else(|| format!("invalid escape in {raw:?}"))?;
                members.push((key, value));
            }
        }
        if !sc.next_member(b'}')? {
            return Ok((members, entry));
        }
    }
}
