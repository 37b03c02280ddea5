//! LogQL's tokens, as Loki's lexer reads them: Go strings (quoted with
//! escapes, or raw in backticks), numbers that become durations (`250ms`)
//! or byte sizes (`20MB`) when a unit follows without a space, ranges
//! (`[5m]`) as one token, `--flags`, and `#` comments to the end of a line.
//!
//! Keywords are not tokens of their own: the parser reads identifiers in
//! context (`json`, `by`, `or`...), case-insensitively as Loki does.

use sextant_model::PromDuration;

/// One token and where it starts and ends in the text (byte offsets).
#[derive(Debug, Clone)]
pub(super) struct Token<'a> {
    pub kind: Tk<'a>,
    pub start: usize,
    pub end: usize,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tk<'a> {
    /// `[a-zA-Z_][a-zA-Z0-9_.]*`: a name or a keyword.
    Ident(&'a str),
    /// A string, unquoted.
    Str(String),
    /// A plain number.
    Num(f64),
    /// A number with a duration unit: seconds.
    Dur(f64),
    /// A number with a byte-size unit: bytes.
    Bytes(f64),
    /// `[5m]`: milliseconds.
    Range(i64),
    /// `--strict`, `--keep-empty`.
    Flag(&'static str),
    /// An operator or a bracket.
    Punct(&'static str),
    /// The end of the text.
    Eof,
    /// What the lexer could not read; the last token.
    Err(String),
}

/// Operators, longest first so that `|=` wins over `|`.
const PUNCTS: [&str; 27] = [
    "|=", "|~", "|>", "!=", "!~", "!>", "=~", "==", ">=", "<=", "{", "}", "(", ")", ",", "=", "|",
    ">", "<", "+", "-", "*", "/", "%", "^", "[", "]",
];

/// The flags `logfmt` takes.
const FLAGS: [&str; 2] = ["--strict", "--keep-empty"];

/// Splits `src` into tokens; the last is [`Tk::Eof`], or [`Tk::Err`] where
/// the text stops making sense (tokens before it are still read, so a
/// syntax error earlier in the query is reported first).
pub(super) fn tokenize(src: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    loop {
        // Whitespace and comments.
        while i < bytes.len() {
            if bytes[i].is_ascii_whitespace() {
                i += 1;
            } else if bytes[i] == b'#' {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            } else {
                break;
            }
        }
        let start = i;
        if i >= bytes.len() {
            tokens.push(Token {
                kind: Tk::Eof,
                start,
                end: start,
            });
            return tokens;
        }
        let (kind, end) = match lex_one(src, i) {
            Ok(token) => token,
            Err(message) => {
                tokens.push(Token {
                    kind: Tk::Err(message),
                    start,
                    end: start,
                });
                return tokens;
            }
        };
        tokens.push(Token { kind, start, end });
        i = end;
    }
}

/// The token starting at `i` (not whitespace) and where it ends.
fn lex_one(src: &str, i: usize) -> Result<(Tk<'_>, usize), String> {
    let bytes = src.as_bytes();
    let b = bytes[i];
    match b {
        b'"' => lex_quoted(src, i),
        b'`' => match src[i + 1..].find('`') {
            // Go drops carriage returns from raw strings.
            Some(len) => Ok((
                Tk::Str(src[i + 1..i + 1 + len].replace('\r', "")),
                i + len + 2,
            )),
            None => Err("literal not terminated: a raw string needs a closing `".to_owned()),
        },
        b'[' => lex_range(src, i),
        b'0'..=b'9' => Ok(lex_number(src, i)),
        b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => Ok(lex_number(src, i)),
        b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
            let len = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'))
                .count();
            Ok((Tk::Ident(&src[i..i + len]), i + len))
        }
        b'-' if bytes.get(i + 1) == Some(&b'-')
            && bytes.get(i + 2).is_some_and(u8::is_ascii_alphabetic) =>
        {
            let len = 2 + bytes[i + 2..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic() || **b == b'-')
                .count();
            let text = &src[i..i + len];
            match FLAGS.iter().find(|f| **f == text) {
                Some(flag) => Ok((Tk::Flag(flag), i + len)),
                None => Err(format!(
                    "unknown flag {text} (logfmt takes --strict and --keep-empty)"
                )),
            }
        }
        _ => match PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            Some(p) => Ok((Tk::Punct(p), i + p.len())),
            None => {
                let c = src[i..].chars().next().unwrap_or_default();
                Err(format!("unexpected character {c:?}"))
            }
        },
    }
}

/// A double-quoted string with Go's escapes.
fn lex_quoted(src: &str, open: usize) -> Result<(Tk<'_>, usize), String> {
    crate::gostr::go_quoted(src, open).map(|(text, end)| (Tk::Str(text), end))
}

/// `[5m]`: a Prometheus duration between brackets.
fn lex_range(src: &str, open: usize) -> Result<(Tk<'_>, usize), String> {
    let Some(len) = src[open + 1..].find(']') else {
        return Err("missing closing ']' in duration".to_owned());
    };
    let text = src[open + 1..open + 1 + len].trim();
    let duration: PromDuration = text.parse().map_err(|e| format!("{e}"))?;
    if duration.is_zero() {
        return Err(format!(
            "invalid range [{text}]: it must be longer than zero"
        ));
    }
    let ms = i64::try_from(duration.as_millis())
        .map_err(|_| format!("invalid range [{text}]: too long"))?;
    Ok((Tk::Range(ms), open + len + 2))
}

/// A number, and the duration or byte size it is when a unit follows it
/// without a space (Loki's lexer reads `10s` and `20MB` the same way).
/// The most characters after a number that are read as its unit.
const MAX_UNIT_RUN: usize = 64;

fn lex_number(src: &str, start: usize) -> (Tk<'_>, usize) {
    let bytes = src.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    digits(&mut i);
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        digits(&mut i);
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < bytes.len() && matches!(bytes[j], b'+' | b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            i = j;
            digits(&mut i);
        }
    }
    let number = &src[start..i];
    // A unit and what follows it (`1h30m`, `1.5KiB`), looked at no
    // further than any duration or size is long: a longer run is no unit,
    // and a text of many numbers is lexed in linear time.
    let unit_run = |accept: fn(char) -> bool| {
        let mut run = src[i..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || accept(*c))
            .take(MAX_UNIT_RUN + 1);
        let len: usize = run.by_ref().take(MAX_UNIT_RUN).map(char::len_utf8).sum();
        if run.next().is_some() { 0 } else { len }
    };
    let len = unit_run(|c| matches!(c, 'n' | 'u' | 'µ' | 'μ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y'));
    if len > 0
        && let Some(seconds) = parse_filter_duration(&src[start..i + len])
    {
        return (Tk::Dur(seconds), i + len);
    }
    let len = unit_run(|c| matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P'));
    if len > 0
        && let Some(bytes) = parse_bytes(&src[start..i + len])
    {
        return (Tk::Bytes(bytes), i + len);
    }
    // Every run of digits with an optional fraction and exponent parses.
    (Tk::Num(number.parse().unwrap_or(f64::NAN)), i)
}

/// A duration in a label filter or an offset: Prometheus's syntax (`1d`,
/// `1h30m`) first, then Go's (`1.5s`, `10us`), in seconds.
pub(super) fn parse_filter_duration(text: &str) -> Option<f64> {
    match text.parse::<PromDuration>() {
        Ok(d) => Some(d.as_std().as_secs_f64()),
        Err(_) => parse_duration_go(text),
    }
}

/// A duration as Go's `time.ParseDuration` reads it (`250ms`, `1.5s`,
/// `1h2m`, `-3ns`, `10us`, `5µs`, or `0`), in seconds; `None` if it is not
/// one or does not fit Go's 292 years.
pub fn parse_duration_go(text: &str) -> Option<f64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos = 0.0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut number_len = int_len;
        let mut frac_len = 0;
        if rest.as_bytes().get(int_len) == Some(&b'.') {
            frac_len = rest[int_len + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            number_len = int_len + 1 + frac_len;
        }
        // At least one digit, before or after the point.
        if int_len + frac_len == 0 {
            return None;
        }
        let int_part = if int_len == 0 { "0" } else { &rest[..int_len] };
        let frac_part = if frac_len == 0 {
            "0"
        } else {
            &rest[int_len + 1..number_len]
        };
        let value: f64 = format!("{int_part}.{frac_part}").parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(at, _)| at);
        let nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += value * nanos;
    }
    // Go keeps durations in an int64 of nanoseconds.
    if total_nanos > i64::MAX as f64 {
        return None;
    }
    let seconds = total_nanos / 1e9;
    Some(if negative { -seconds } else { seconds })
}

/// A byte size as go-humanize's `ParseBytes` reads it (`20MB`, `1KiB`,
/// `5 B`, `1.5gb`, `1,000 kB`, or a bare number of bytes), in whole bytes:
/// units are case-insensitive, `k`/`kB` is 1000 and `Ki`/`KiB` 1024, up to
/// exabytes. `None` if it is not one.
pub fn parse_bytes(text: &str) -> Option<f64> {
    let text = text.trim();
    let number_len = text
        .bytes()
        .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b','))
        .count();
    let number = text[..number_len].replace(',', "");
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let unit = text[number_len..].trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let power = |base: f64, exp: i32| base.powi(exp);
    let scale = match unit {
        "" => 1.0,
        "k" => power(1000.0, 1),
        "ki" => power(1024.0, 1),
        "m" => power(1000.0, 2),
        "mi" => power(1024.0, 2),
        "g" => power(1000.0, 3),
        "gi" => power(1024.0, 3),
        "t" => power(1000.0, 4),
        "ti" => power(1024.0, 4),
        "p" => power(1000.0, 5),
        "pi" => power(1024.0, 5),
        "e" => power(1000.0, 6),
        "ei" => power(1024.0, 6),
        _ => return None,
    };
    let bytes = (value * scale).trunc();
    // go-humanize answers an unsigned 64-bit count.
    (bytes < u64::MAX as f64).then_some(bytes)
}
