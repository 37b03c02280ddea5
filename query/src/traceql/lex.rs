//! TraceQL's tokens, as Tempo's lexer (`pkg/traceql/lexer.go`) reads them:
//! Go strings (quoted with escapes, or raw in backticks), integers and
//! floats that become durations when a unit follows without a space
//! (`100ms`, `1.5s`, `1h30m`, `2d`), attributes read whole after their
//! scope (`span.`, `resource.`, `parent.`, `event.`, or a bare `.`: the
//! name runs to the first space or one of `{}()=~!<>&|^,`, and may have
//! quoted parts, `span."http status"`), and the scopes of scoped
//! intrinsics (`span:`, `trace:`...).
//!
//! Keywords are not tokens of their own: the parser reads identifiers in
//! context, case-sensitively as Tempo does.

use sextant_model::PromDuration;

use super::ast::{AttributeScope, is_attribute_char};

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
    /// `[a-zA-Z_][a-zA-Z0-9_]*`: a keyword, an intrinsic, an enum value.
    Ident(&'a str),
    /// An attribute, its scope read.
    Attr(Box<AttrToken>),
    /// `span:`, `trace:`, `event:`, `link:`, `instrumentation:`.
    Colon(&'static str),
    /// A string, unquoted.
    Str(String),
    Int(i64),
    Float(f64),
    /// A number with a duration unit: nanoseconds.
    Dur(i64),
    /// An operator or a bracket.
    Punct(&'static str),
    /// The end of the text.
    Eof,
    /// What the lexer could not read; the last token.
    Err(String),
}

/// An attribute as the lexer reads it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AttrToken {
    pub scope: AttrScope,
    pub parent: bool,
    pub name: String,
}

/// Scopes an attribute may be written with (the parser refuses those
/// Sextant does not keep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttrScope {
    Known(AttributeScope),
    Link,
    Instrumentation,
}

/// Operators, longest first so that `!>>` wins over `!>` and `!`.
const PUNCTS: [&str; 36] = [
    "!>>", "!<<", "&>>", "&<<", "&&", "||", "!=", "!~", "=~", "==", ">=", "<=", ">>", "<<", "!>",
    "!<", "&>", "&<", "&~", "{", "}", "(", ")", ",", "=", "!", "|", ">", "<", "~", "+", "-", "*",
    "/", "%", "^",
];

/// Words that start an attribute when a `.` follows them at once.
const DOT_SCOPES: [(&str, AttrScope); 5] = [
    ("span", AttrScope::Known(AttributeScope::Span)),
    ("resource", AttrScope::Known(AttributeScope::Resource)),
    ("event", AttrScope::Known(AttributeScope::Event)),
    ("link", AttrScope::Link),
    ("instrumentation", AttrScope::Instrumentation),
];

/// Words that scope an intrinsic when a `:` follows them at once.
const COLON_SCOPES: [&str; 5] = ["span", "trace", "event", "link", "instrumentation"];

/// Splits `src` into tokens; the last is [`Tk::Eof`], or [`Tk::Err`] where
/// the text stops making sense (tokens before it are still read, so a
/// syntax error earlier in the query is reported first).
pub(super) fn tokenize(src: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
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
        match lex_one(src, i) {
            Ok((kind, end)) => {
                tokens.push(Token { kind, start, end });
                i = end;
            }
            Err((message, at)) => {
                tokens.push(Token {
                    kind: Tk::Err(message),
                    start: at,
                    end: at,
                });
                return tokens;
            }
        }
    }
}

/// An error and where it is.
type LexError = (String, usize);

/// The token starting at `i` (not whitespace) and where it ends.
fn lex_one(src: &str, i: usize) -> Result<(Tk<'_>, usize), LexError> {
    let bytes = src.as_bytes();
    match bytes[i] {
        b'"' => lex_quoted(src, i).map_err(|e| (e, i)),
        b'`' => match src[i + 1..].find('`') {
            // Go drops carriage returns from raw strings.
            Some(len) => Ok((
                Tk::Str(src[i + 1..i + 1 + len].replace('\r', "")),
                i + len + 2,
            )),
            None => Err((
                "literal not terminated: a raw string needs a closing `".to_owned(),
                i,
            )),
        },
        b'0'..=b'9' => lex_number(src, i),
        b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => lex_number(src, i),
        b'.' => {
            let (name, end) = attribute_name(src, i + 1)?;
            Ok((
                attr(AttrScope::Known(AttributeScope::None), false, name),
                end,
            ))
        }
        b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
            let len = bytes[i..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .count();
            let word = &src[i..i + len];
            let end = i + len;
            match bytes.get(end) {
                Some(b'.') => {
                    if word == "parent" {
                        return parent_attribute(src, end + 1);
                    }
                    if let Some((_, scope)) = DOT_SCOPES.iter().find(|(w, _)| *w == word) {
                        let (name, end) = attribute_name(src, end + 1)?;
                        return Ok((attr(*scope, false, name), end));
                    }
                }
                Some(b':') => {
                    if let Some(scope) = COLON_SCOPES.iter().find(|w| **w == word) {
                        return Ok((Tk::Colon(scope), end + 1));
                    }
                }
                _ => {}
            }
            Ok((Tk::Ident(word), end))
        }
        _ => match PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            Some(p) => Ok((Tk::Punct(p), i + p.len())),
            None => {
                let c = src[i..].chars().next().unwrap_or_default();
                Err((format!("unexpected character {c:?}"), i))
            }
        },
    }
}

fn attr(scope: AttrScope, parent: bool, name: String) -> Tk<'static> {
    Tk::Attr(Box::new(AttrToken {
        scope,
        parent,
        name,
    }))
}

/// After `parent.`: `span.x`, `resource.x`, or an unscoped `x`.
fn parent_attribute(src: &str, at: usize) -> Result<(Tk<'_>, usize), LexError> {
    for (prefix, scope) in [
        ("span.", AttributeScope::Span),
        ("resource.", AttributeScope::Resource),
    ] {
        if src[at..].starts_with(prefix) {
            let (name, end) = attribute_name(src, at + prefix.len())?;
            return Ok((attr(AttrScope::Known(scope), true, name), end));
        }
    }
    let (name, end) = attribute_name(src, at)?;
    Ok((
        attr(AttrScope::Known(AttributeScope::None), true, name),
        end,
    ))
}

/// An attribute's name from `at`: unquoted runs of attribute characters
/// and quoted parts (where `\"` and `\\` are the only escapes), until a
/// character that ends it. An empty name is an error.
fn attribute_name(src: &str, at: usize) -> Result<(String, usize), LexError> {
    let mut name = String::new();
    let mut chars = src[at..].char_indices().peekable();
    let mut end = src.len();
    while let Some(&(offset, c)) = chars.peek() {
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some((escape_at, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\'))) => name.push(e),
                        _ => {
                            return Err((
                                "invalid escape sequence in a quoted attribute name (only \\\" and \\\\ are)"
                                    .to_owned(),
                                at + escape_at,
                            ));
                        }
                    },
                    c => name.push(c),
                }
            }
            if !closed {
                return Err((
                    "unexpected end of query, expecting \" to close a quoted attribute name"
                        .to_owned(),
                    at + offset,
                ));
            }
        } else if is_attribute_char(c) {
            name.push(c);
            chars.next();
        } else {
            end = at + offset;
            break;
        }
    }
    if name.is_empty() && end == at {
        return Err((
            "expecting an attribute name after the scope (such as span.http.method or .name)"
                .to_owned(),
            at,
        ));
    }
    Ok((name, end))
}

/// A double-quoted string with Go's escapes.
fn lex_quoted(src: &str, open: usize) -> Result<(Tk<'_>, usize), String> {
    crate::gostr::go_quoted(src, open).map(|(text, end)| (Tk::Str(text), end))
}

/// Characters a duration's units are made of (`ns`, `us`, `µs`, `ms`, `s`,
/// `m`, `h`, `d`, `w`, `y`).
fn is_duration_char(c: char) -> bool {
    c.is_ascii_digit()
        || matches!(
            c,
            '.' | 'n' | 's' | 'u' | 'm' | 'h' | 'µ' | 'μ' | 'd' | 'w' | 'y'
        )
}

/// The longest run of duration characters after a number that is read as a
/// duration (`1h2m3s4ms5us6ns` is 14; Go's longest useful one, fractions
/// with all their digits included, is well inside this).
const MAX_DURATION_UNIT: usize = 64;

/// A number as Go's scanner reads it (`12`, `1.5`, `.5`, `1e3`), and the
/// duration it is when a unit follows it without a space.
fn lex_number(src: &str, start: usize) -> Result<(Tk<'_>, usize), LexError> {
    let bytes = src.as_bytes();
    let mut i = start;
    let digits = |i: &mut usize| {
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    digits(&mut i);
    let mut float = false;
    if i < bytes.len() && bytes[i] == b'.' {
        float = true;
        i += 1;
        digits(&mut i);
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < bytes.len() && matches!(bytes[j], b'+' | b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            float = true;
            i = j;
            digits(&mut i);
        }
    }
    let number = &src[start..i];
    // Tempo reads every duration character up to a space and tries the
    // whole as a duration. Read that way, `.1.1.1…` would read the rest of
    // the text again for every number in it (a 64 KiB query lexed for
    // seconds), so a run longer than any duration anyone writes is not one.
    let mut unit_len = 0;
    for c in src[i..].chars().take_while(|c| is_duration_char(*c)) {
        unit_len += c.len_utf8();
        if unit_len > MAX_DURATION_UNIT {
            unit_len = 0;
            break;
        }
    }
    if unit_len > 0 {
        let text = &src[start..i + unit_len];
        match parse_duration(text) {
            Some(Ok(ns)) => return Ok((Tk::Dur(ns), i + unit_len)),
            Some(Err(())) => {
                return Err((
                    format!("duration {text} is out of range (at most about 292 years)"),
                    start,
                ));
            }
            None => {}
        }
    }
    if float {
        match number.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok((Tk::Float(x), i)),
            _ => Err((format!("number {number} is out of range"), start)),
        }
    } else {
        match number.parse::<i64>() {
            Ok(n) => Ok((Tk::Int(n), i)),
            Err(_) => Err((
                format!("integer {number} is out of range (a 64-bit integer)"),
                start,
            )),
        }
    }
}

/// A duration as Tempo reads one: Prometheus's syntax (`1d`, `1h30m`)
/// first, then Go's (`1.5s`, `10us`, `5µs`), in nanoseconds; `None` when
/// it is not one, `Some(Err)` when it is but does not fit Go's 292 years.
pub(super) fn parse_duration(text: &str) -> Option<Result<i64, ()>> {
    if let Ok(d) = text.parse::<PromDuration>() {
        return Some(i64::try_from(d.as_std().as_nanos()).map_err(|_| ()));
    }
    parse_go_duration(text).map(|ns| i64::try_from(ns).map_err(|_| ()))
}

/// Go's `time.ParseDuration` without a sign, exactly, in nanoseconds
/// (a `u128`, so an overlong one is seen as such).
fn parse_go_duration(text: &str) -> Option<u128> {
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut frac = "";
        let mut number_len = int_len;
        if rest.as_bytes().get(int_len) == Some(&b'.') {
            let frac_len = rest[int_len + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            frac = &rest[int_len + 1..int_len + 1 + frac_len];
            number_len = int_len + 1 + frac_len;
        }
        if int_len + frac.len() == 0 {
            return None;
        }
        let whole: u128 = if int_len == 0 {
            0
        } else {
            rest[..int_len].parse().ok()?
        };
        rest = &rest[number_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(at, _)| at);
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        // Go keeps the fraction's first digits that matter, and truncates;
        // 19 of them times the largest unit stays well inside a u128.
        let mut fraction_ns: u128 = 0;
        let mut scale: u128 = 1;
        for d in frac.bytes().take(19) {
            fraction_ns = fraction_ns * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        total = total
            .checked_add(whole.checked_mul(unit)?)?
            .checked_add(fraction_ns.checked_mul(unit)? / scale)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tk<'_>> {
        tokenize(src).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn durations_in_both_syntaxes() {
        let cases: &[(&str, Option<i64>)] = &[
            ("100ms", Some(100_000_000)),
            ("1.5s", Some(1_500_000_000)),
            ("2m", Some(120_000_000_000)),
            ("1h", Some(3_600_000_000_000)),
            ("1h30m", Some(5_400_000_000_000)),
            ("10us", Some(10_000)),
            ("10µs", Some(10_000)),
            ("5ns", Some(5)),
            ("2d", Some(172_800_000_000_000)),
            ("1w", Some(604_800_000_000_000)),
            ("0.5ms", Some(500_000)),
            ("1.0000000001s", Some(1_000_000_000)),
            ("5", None),
            ("5x", None),
            ("ms", None),
        ];
        for (text, ns) in cases {
            assert_eq!(parse_duration(text).map(Result::unwrap), *ns, "{text}");
        }
        assert_eq!(parse_duration("300y"), Some(Err(())));
        assert_eq!(parse_duration("9999999999h"), Some(Err(())));
        // A fraction longer than any clock reads is truncated, not overflowed.
        let long = format!("0.{}h", "2".repeat(60));
        assert_eq!(parse_duration(&long), Some(Ok(799_999_999_999)));
        assert_eq!(
            parse_duration(&format!(".{}s", "9".repeat(40))),
            Some(Ok(999_999_999))
        );
    }

    #[test]
    fn an_overlong_run_after_a_number_is_not_a_duration() {
        // 20 parts: read whole, as Tempo does.
        assert_eq!(kinds(&"1s".repeat(20))[0], Tk::Dur(20_000_000_000));
        // 40 parts (79 characters after the first number) are not a
        // duration: the number stands alone and the rest is a word.
        let long = "1s".repeat(40);
        let t = kinds(&long);
        assert_eq!(t[0], Tk::Int(1));
        assert_eq!(t[1], Tk::Ident(&long[1..]));
        // The fuzzer's slow input: every number after the first used to
        // read the rest of the text again; each now reads at most the cap.
        let dots = format!("{{ .1{} }}", "1.1".repeat(20_000));
        let t = kinds(&dots);
        assert_eq!(t.len(), 20_000 + 4, "{{, the numbers, }}, the end");
        assert!(t[1..20_001].iter().all(|k| *k == Tk::Float(0.11)));
        assert_eq!(t[20_001], Tk::Float(0.1));
        assert_eq!(t[20_002], Tk::Punct("}"));
    }

    #[test]
    fn attributes_are_read_whole() {
        let t = kinds(r#"{ span.http.status_code>=500 && resource."service name"="a" }"#);
        assert_eq!(t[0], Tk::Punct("{"));
        assert_eq!(
            t[1],
            attr(
                AttrScope::Known(AttributeScope::Span),
                false,
                "http.status_code".into()
            )
        );
        assert_eq!(t[2], Tk::Punct(">="));
        assert_eq!(t[3], Tk::Int(500));
        assert_eq!(
            t[5],
            attr(
                AttrScope::Known(AttributeScope::Resource),
                false,
                "service name".into()
            )
        );
        let t = kinds("parent.span.a parent.b .c-d span:duration 1.5e3 .5");
        assert_eq!(
            t[0],
            attr(AttrScope::Known(AttributeScope::Span), true, "a".into())
        );
        assert_eq!(
            t[1],
            attr(AttrScope::Known(AttributeScope::None), true, "b".into())
        );
        assert_eq!(
            t[2],
            attr(AttrScope::Known(AttributeScope::None), false, "c-d".into())
        );
        assert_eq!(t[3], Tk::Colon("span"));
        assert_eq!(t[4], Tk::Ident("duration"));
        assert_eq!(t[5], Tk::Float(1500.0));
        assert_eq!(t[6], Tk::Float(0.5));
        assert_eq!(t[7], Tk::Eof);
    }
}
