//! The functions a LogQL template may call: Go's template builtins, Loki's
//! own, and the part of sprig Loki registers, with the argument types and
//! results Go gives them.

use std::borrow::Cow;
use std::fmt::Write as _;

use regex::Regex;

use super::gofmt::printf;
use super::gotime;
use super::template::{Env, MAX_OUTPUT, Value};

/// A template function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    // Builtins of Go's text/template.
    And,
    Or,
    Not,
    Len,
    Index,
    Print,
    Printf,
    Println,
    Html,
    UrlQuery,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    // Loki's.
    Line,
    Timestamp,
    ToLower,
    ToUpper,
    GoReplace,
    GoTrim,
    TrimLeft,
    TrimRight,
    GoTrimPrefix,
    GoTrimSuffix,
    TrimSpace,
    RegexReplaceAll,
    RegexReplaceAllLiteral,
    Count,
    UrlDecode,
    UrlEncode,
    Bytes,
    Duration,
    UnixEpochMillis,
    UnixEpochNanos,
    UnixToTime,
    AlignLeft,
    AlignRight,
    B64Dec,
    // Sprig's.
    B64Enc,
    Lower,
    Upper,
    Title,
    Trunc,
    Substr,
    Contains,
    HasPrefix,
    HasSuffix,
    Indent,
    NIndent,
    Replace,
    Repeat,
    Trim,
    TrimAll,
    TrimSuffix,
    TrimPrefix,
    Int,
    Float64,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Addf,
    Subf,
    Mulf,
    Divf,
    Max,
    Min,
    Maxf,
    Minf,
    Ceil,
    Floor,
    Round,
    Date,
    Now,
    UnixEpoch,
    Default,
}

/// Name, function, fewest and most arguments (`None`: any number).
pub(super) const TABLE: &[(&str, Func, usize, Option<usize>)] = &[
    ("and", Func::And, 1, None),
    ("or", Func::Or, 1, None),
    ("not", Func::Not, 1, Some(1)),
    ("len", Func::Len, 1, Some(1)),
    ("index", Func::Index, 1, None),
    ("print", Func::Print, 0, None),
    ("printf", Func::Printf, 1, None),
    ("println", Func::Println, 0, None),
    ("html", Func::Html, 0, None),
    ("urlquery", Func::UrlQuery, 0, None),
    ("eq", Func::Eq, 2, None),
    ("ne", Func::Ne, 2, Some(2)),
    ("lt", Func::Lt, 2, Some(2)),
    ("le", Func::Le, 2, Some(2)),
    ("gt", Func::Gt, 2, Some(2)),
    ("ge", Func::Ge, 2, Some(2)),
    ("__line__", Func::Line, 0, Some(0)),
    ("__timestamp__", Func::Timestamp, 0, Some(0)),
    ("ToLower", Func::ToLower, 1, Some(1)),
    ("ToUpper", Func::ToUpper, 1, Some(1)),
    ("Replace", Func::GoReplace, 4, Some(4)),
    ("Trim", Func::GoTrim, 2, Some(2)),
    ("TrimLeft", Func::TrimLeft, 2, Some(2)),
    ("TrimRight", Func::TrimRight, 2, Some(2)),
    ("TrimPrefix", Func::GoTrimPrefix, 2, Some(2)),
    ("TrimSuffix", Func::GoTrimSuffix, 2, Some(2)),
    ("TrimSpace", Func::TrimSpace, 1, Some(1)),
    ("regexReplaceAll", Func::RegexReplaceAll, 3, Some(3)),
    (
        "regexReplaceAllLiteral",
        Func::RegexReplaceAllLiteral,
        3,
        Some(3),
    ),
    ("count", Func::Count, 2, Some(2)),
    ("urldecode", Func::UrlDecode, 1, Some(1)),
    ("urlencode", Func::UrlEncode, 1, Some(1)),
    ("bytes", Func::Bytes, 1, Some(1)),
    ("duration", Func::Duration, 1, Some(1)),
    ("duration_seconds", Func::Duration, 1, Some(1)),
    ("unixEpochMillis", Func::UnixEpochMillis, 1, Some(1)),
    ("unixEpochNanos", Func::UnixEpochNanos, 1, Some(1)),
    ("unixToTime", Func::UnixToTime, 1, Some(1)),
    ("alignLeft", Func::AlignLeft, 2, Some(2)),
    ("alignRight", Func::AlignRight, 2, Some(2)),
    ("b64dec", Func::B64Dec, 1, Some(1)),
    ("b64enc", Func::B64Enc, 1, Some(1)),
    ("lower", Func::Lower, 1, Some(1)),
    ("upper", Func::Upper, 1, Some(1)),
    ("title", Func::Title, 1, Some(1)),
    ("trunc", Func::Trunc, 2, Some(2)),
    ("substr", Func::Substr, 3, Some(3)),
    ("contains", Func::Contains, 2, Some(2)),
    ("hasPrefix", Func::HasPrefix, 2, Some(2)),
    ("hasSuffix", Func::HasSuffix, 2, Some(2)),
    ("indent", Func::Indent, 2, Some(2)),
    ("nindent", Func::NIndent, 2, Some(2)),
    ("replace", Func::Replace, 3, Some(3)),
    ("repeat", Func::Repeat, 2, Some(2)),
    ("trim", Func::Trim, 1, Some(1)),
    ("trimAll", Func::TrimAll, 2, Some(2)),
    ("trimSuffix", Func::TrimSuffix, 2, Some(2)),
    ("trimPrefix", Func::TrimPrefix, 2, Some(2)),
    ("int", Func::Int, 1, Some(1)),
    ("float64", Func::Float64, 1, Some(1)),
    ("add", Func::Add, 0, None),
    ("sub", Func::Sub, 2, Some(2)),
    ("mul", Func::Mul, 1, None),
    ("div", Func::Div, 2, Some(2)),
    ("mod", Func::Mod, 2, Some(2)),
    ("addf", Func::Addf, 0, None),
    ("subf", Func::Subf, 1, None),
    ("mulf", Func::Mulf, 1, None),
    ("divf", Func::Divf, 1, None),
    ("max", Func::Max, 1, None),
    ("min", Func::Min, 1, None),
    ("maxf", Func::Maxf, 1, None),
    ("minf", Func::Minf, 1, None),
    ("ceil", Func::Ceil, 1, Some(1)),
    ("floor", Func::Floor, 1, Some(1)),
    ("round", Func::Round, 2, Some(3)),
    ("date", Func::Date, 2, Some(2)),
    ("now", Func::Now, 0, Some(0)),
    ("unixEpoch", Func::UnixEpoch, 1, Some(1)),
    ("default", Func::Default, 1, None),
];

/// Functions Loki has that this engine does not (they need time zones,
/// date parsing or values other than strings, numbers and times).
const UNSUPPORTED: &[&str] = &["toDate", "toDateInZone", "fromJson", "js", "call", "slice"];

/// The function called `name`, with its fewest and most arguments.
pub(super) fn lookup(name: &str) -> Result<(Func, usize, Option<usize>), String> {
    if let Some(&(_, f, min, max)) = TABLE.iter().find(|(n, ..)| *n == name) {
        return Ok((f, min, max));
    }
    if UNSUPPORTED.contains(&name) {
        return Err(format!("function {name:?} is not supported"));
    }
    Err(format!("function {name:?} not defined"))
}

/// The name a function is called by (for error messages).
pub(super) fn name(f: Func) -> &'static str {
    TABLE
        .iter()
        .find(|(_, g, ..)| *g == f)
        .map_or("?", |(n, ..)| n)
}

/// Whether the function's first argument is a regex (compiled once when
/// it is written as a literal).
pub(super) fn takes_regex(f: Func) -> bool {
    matches!(
        f,
        Func::RegexReplaceAll | Func::RegexReplaceAllLiteral | Func::Count
    )
}

fn wrong_type(expected: &str, got: &Value<'_>) -> String {
    format!(
        "wrong type for value; expected {expected}; got {}",
        got.type_name()
    )
}

fn s<'v>(v: &'v Value<'_>) -> Result<&'v str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(wrong_type("string", other)),
    }
}

fn int(v: &Value<'_>) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(wrong_type("int", other)),
    }
}

fn float(v: &Value<'_>) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        other => Err(wrong_type("float64", other)),
    }
}

fn time(v: &Value<'_>) -> Result<i64, String> {
    match v {
        Value::Time(t) => Ok(*t),
        other => Err(wrong_type("time.Time", other)),
    }
}

/// A count (of repeats, spaces, characters) that must not blow the output
/// limit up.
fn size(n: i64, unit: usize) -> Result<usize, String> {
    let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
    if n.saturating_mul(unit.max(1)) > MAX_OUTPUT {
        return Err(too_large());
    }
    Ok(n)
}

fn too_large() -> String {
    format!("result would be larger than {MAX_OUTPUT} bytes")
}

/// Go's `strings.Replace` (at most `n` replacements when given; an empty
/// `old` matches around every character), refused when the result would
/// pass the output limit.
fn replace(text: &str, old: &str, new: &str, n: Option<usize>) -> Result<String, String> {
    let limit = n.unwrap_or(usize::MAX);
    let found = if old.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(old).count()
    }
    .min(limit);
    if text.len().saturating_add(found.saturating_mul(new.len())) > MAX_OUTPUT {
        return Err(too_large());
    }
    Ok(text.replacen(old, new, limit))
}

/// Go's `Regexp.ReplaceAllString` (`$1`, `${name}` expanded) or
/// `ReplaceAllLiteralString`, refused when the result would pass the
/// output limit.
fn regex_replace(re: &Regex, text: &str, repl: &str, literal: bool) -> Result<String, String> {
    let refs = if literal {
        0
    } else {
        repl.matches('$').count()
    };
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&text[last..m.start()]);
        // An expansion is at most the replacement plus the whole match per `$`.
        let bound = repl.len().saturating_add(refs.saturating_mul(m.len()));
        if out.len().saturating_add(bound) > MAX_OUTPUT {
            return Err(too_large());
        }
        if literal {
            out.push_str(repl);
        } else {
            caps.expand(repl, &mut out);
        }
        last = m.end();
    }
    out.push_str(&text[last..]);
    if out.len() > MAX_OUTPUT {
        return Err(too_large());
    }
    Ok(out)
}

fn owned<'a>(s: String) -> Value<'a> {
    Value::Str(Cow::Owned(s))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: a sign, then `0x`, `0o`, `0b`, a
/// leading `0` (octal) or decimal digits, `_` allowed between digits.
pub(super) fn parse_go_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let digits = digits.replace('_', "");
    let magnitude = i128::from(u64::from_str_radix(&digits, radix).ok()?);
    let v = if neg { -magnitude } else { magnitude };
    i64::try_from(v).ok()
}

/// Go's `strconv.ParseFloat`.
pub(super) fn parse_go_float(text: &str) -> Option<f64> {
    text.parse().ok()
}

/// sprig's `toInt64` (spf13/cast): numbers truncate, strings parse
/// (`12.00` as 12), anything unreadable is 0.
fn to_i64(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            // cast trims a zero decimal part before parsing.
            let mut text: &str = s;
            if let Some(dot) = text.rfind('.')
                && text.len() > dot + 1
                && text[dot + 1..].bytes().all(|c| c == b'0')
            {
                text = &text[..dot];
            }
            parse_go_int(text).unwrap_or(0)
        }
        _ => 0,
    }
}

/// sprig's `toFloat64`.
fn to_f64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => parse_go_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// An exact decimal `m × 10^e`, as shopspring/decimal (which sprig's
/// float functions use) holds the shortest text of a float.
#[derive(Clone, Copy)]
struct Dec {
    m: i128,
    e: i32,
}

impl Dec {
    fn of(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let (neg, mantissa) = match mantissa.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, mantissa),
        };
        let frac_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let m: i128 = digits.parse().ok()?;
        Some(Dec {
            m: if neg { -m } else { m },
            e: exp - frac_digits,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.m, self.e).parse().unwrap_or(f64::NAN)
    }

    fn scaled(self, e: i32) -> Option<i128> {
        // self.e >= e
        let shift = u32::try_from(self.e - e).ok()?;
        self.m.checked_mul(10i128.checked_pow(shift)?)
    }

    fn add(self, other: Dec) -> Option<Dec> {
        let e = self.e.min(other.e);
        Some(Dec {
            m: self.scaled(e)?.checked_add(other.scaled(e)?)?,
            e,
        })
    }

    fn mul(self, other: Dec) -> Option<Dec> {
        Some(Dec {
            m: self.m.checked_mul(other.m)?,
            e: self.e.checked_add(other.e)?,
        })
    }

    /// Division to 16 decimal places, rounded half away from zero.
    fn div(self, other: Dec) -> Option<Dec> {
        if other.m == 0 {
            return None;
        }
        // (a.m × 10^a.e) / (b.m × 10^b.e) = q × 10^-16
        let shift = self.e - other.e + 16;
        let (num, den) = if shift >= 0 {
            (
                self.m.checked_mul(10i128.checked_pow(shift as u32)?)?,
                other.m,
            )
        } else {
            (
                self.m,
                other.m.checked_mul(10i128.checked_pow((-shift) as u32)?)?,
            )
        };
        let mut q = num / den;
        let r = num % den;
        if r.unsigned_abs().checked_mul(2)? >= den.unsigned_abs() {
            q += if (num < 0) == (den < 0) { 1 } else { -1 };
        }
        Some(Dec { m: q, e: -16 })
    }
}

/// A float operation done in decimal, as sprig does it; falls back to
/// binary floating point where the decimal would not fit.
fn dec_op(a: f64, b: f64, op: char) -> Result<f64, String> {
    if op == '/' && b == 0.0 {
        return Err("division by zero".to_owned());
    }
    let exact = Dec::of(a).zip(Dec::of(b)).and_then(|(x, y)| match op {
        '+' => x.add(y),
        '-' => x.add(Dec { m: -y.m, e: y.e }),
        '*' => x.mul(y),
        _ => x.div(y),
    });
    Ok(match exact {
        Some(d) => d.to_f64(),
        None => match op {
            '+' => a + b,
            '-' => a - b,
            '*' => a * b,
            _ => a / b,
        },
    })
}

/// Go's `strings.Title`: the first letter of every word upper-cased.
fn title(text: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            !c.is_alphanumeric()
        }
    };
    let mut prev = ' ';
    text.chars()
        .map(|c| {
            let out = if is_separator(prev) {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64enc(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Loki's `b64dec`: standard base64, padding added when missing; on
/// malformed input the result is Go's error text.
fn b64dec(text: &str) -> String {
    let mut padded = text.to_owned();
    let rem = padded.len() % 4;
    if rem == 2 || rem == 3 {
        padded.push_str(&"=".repeat(4 - rem));
    }
    let b = padded.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let illegal = |at: usize| format!("illegal base64 data at input byte {at}");
    if !b.len().is_multiple_of(4) {
        return illegal(b.len() / 4 * 4);
    }
    for (ci, chunk) in b.chunks(4).enumerate() {
        let mut n = 0u32;
        let mut pads = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if i >= 2 && ci * 4 + 4 == b.len() => {
                    pads += 1;
                    0
                }
                _ => return illegal(ci * 4 + i),
            };
            if pads > 0 && c != b'=' {
                return illegal(ci * 4 + i);
            }
            n = n << 6 | u32::from(v);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pads]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `url.QueryEscape`.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &c in text.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(c as char);
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{c:02X}");
            }
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(text: &str) -> Result<String, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]);
                        return Err(format!("invalid URL escape {bad:?}"));
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `strings.Trim` family with a cutset.
fn trim_set<'s>(text: &'s str, cutset: &str, left: bool, right: bool) -> &'s str {
    let in_set = |c: char| cutset.contains(c);
    let mut t = text;
    if left {
        t = t.trim_start_matches(in_set);
    }
    if right {
        t = t.trim_end_matches(in_set);
    }
    t
}

pub(super) fn chars_take(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn chars_skip(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((at, _)) => &text[at..],
        None => "",
    }
}

/// Go's `fmt.Sprint` of several values: a space between two operands when
/// neither is a string.
pub(super) fn sprint(args: &[Value<'_>]) -> String {
    let mut out = String::new();
    let mut prev_string = true;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        a.print(&mut out);
        prev_string = is_string;
    }
    out
}

/// The go comparison kinds.
fn compare(a: &Value<'_>, b: &Value<'_>) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Less)),
        (Value::Str(x), Value::Str(y)) => Ok(x.as_ref().cmp(y.as_ref())),
        (Value::Bool(_), Value::Bool(_)) | (Value::Time(_), Value::Time(_)) => {
            Err("invalid type for comparison".to_owned())
        }
        _ => Err("incompatible types for comparison".to_owned()),
    }
}

fn equal(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Time(x), Value::Time(y)) => Ok(x == y),
        (Value::Nil, Value::Nil) => Ok(true),
        (Value::Labels(_), _) | (_, Value::Labels(_)) => {
            Err("non-comparable type map[string]string".to_owned())
        }
        (Value::Float(x), Value::Float(y)) => Ok(x == y),
        _ => compare(a, b).map(|o| o.is_eq()),
    }
}

/// Calls a function that is not `and`/`or` (those the evaluator does, as
/// they do not evaluate every argument).
pub(super) fn call<'a>(
    f: Func,
    args: &[Value<'a>],
    env: &Env<'a>,
    regex: Option<&Regex>,
) -> Result<Value<'a>, String> {
    let str_result = |s: &str| -> Value<'a> { owned(s.to_owned()) };
    let re = |pattern: &Value<'_>| -> Result<Cow<'_, Regex>, String> {
        match regex {
            Some(r) => Ok(Cow::Borrowed(r)),
            None => Regex::new(s(pattern)?)
                .map(Cow::Owned)
                .map_err(|e| e.to_string()),
        }
    };
    Ok(match f {
        Func::And | Func::Or => unreachable!("evaluated lazily by the template"),
        Func::Not => Value::Bool(!args[0].truth()),
        Func::Len => match &args[0] {
            Value::Str(s) => Value::Int(s.len() as i64),
            Value::Labels(l) => Value::Int(l.len() as i64),
            other => return Err(format!("len of type {}", other.type_name())),
        },
        Func::Index => {
            let mut item = args[0].clone();
            for key in &args[1..] {
                item = match (&item, key) {
                    (Value::Labels(l), Value::Str(k)) => match l.get(k.as_ref()) {
                        Some(v) => Value::Str(Cow::Borrowed(v.as_str())),
                        None => Value::Str(Cow::Borrowed("")),
                    },
                    (Value::Str(text), Value::Int(i)) => {
                        match usize::try_from(*i)
                            .ok()
                            .and_then(|i| text.as_bytes().get(i))
                        {
                            Some(b) => Value::Int(i64::from(*b)),
                            None => return Err(format!("index out of range: {i}")),
                        }
                    }
                    (item, key) => {
                        return Err(format!(
                            "can't index item of type {} with {}",
                            item.type_name(),
                            key.type_name()
                        ));
                    }
                };
            }
            item
        }
        Func::Print => owned(sprint(args)),
        Func::Println => {
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                a.print(&mut out);
            }
            out.push('\n');
            owned(out)
        }
        Func::Printf => owned(printf(s(&args[0])?, &args[1..])?),
        Func::Html => owned(html_escape(&sprint(args))),
        Func::UrlQuery => owned(query_escape(&sprint(args))),
        Func::Eq => {
            let mut any = false;
            for b in &args[1..] {
                if equal(&args[0], b)? {
                    any = true;
                    break;
                }
            }
            Value::Bool(any)
        }
        Func::Ne => Value::Bool(!equal(&args[0], &args[1])?),
        Func::Lt => Value::Bool(compare(&args[0], &args[1])?.is_lt()),
        Func::Le => Value::Bool(compare(&args[0], &args[1])?.is_le()),
        Func::Gt => Value::Bool(compare(&args[0], &args[1])?.is_gt()),
        Func::Ge => Value::Bool(compare(&args[0], &args[1])?.is_ge()),
        Func::Line => Value::Str(Cow::Borrowed(env.line)),
        Func::Timestamp => Value::Time(env.ts),
        Func::ToLower | Func::Lower => owned(s(&args[0])?.to_lowercase()),
        Func::ToUpper | Func::Upper => owned(s(&args[0])?.to_uppercase()),
        Func::GoReplace => {
            let (text, old, new, n) = (s(&args[0])?, s(&args[1])?, s(&args[2])?, int(&args[3])?);
            owned(replace(text, old, new, usize::try_from(n).ok())?)
        }
        Func::GoTrim => str_result(trim_set(s(&args[0])?, s(&args[1])?, true, true)),
        Func::TrimLeft => str_result(trim_set(s(&args[0])?, s(&args[1])?, true, false)),
        Func::TrimRight => str_result(trim_set(s(&args[0])?, s(&args[1])?, false, true)),
        Func::GoTrimPrefix => {
            let text = s(&args[0])?;
            str_result(text.strip_prefix(s(&args[1])?).unwrap_or(text))
        }
        Func::GoTrimSuffix => {
            let text = s(&args[0])?;
            str_result(text.strip_suffix(s(&args[1])?).unwrap_or(text))
        }
        Func::TrimSpace | Func::Trim => str_result(s(&args[0])?.trim()),
        Func::RegexReplaceAll | Func::RegexReplaceAllLiteral => {
            let r = re(&args[0])?;
            let literal = f == Func::RegexReplaceAllLiteral;
            owned(regex_replace(&r, s(&args[1])?, s(&args[2])?, literal)?)
        }
        Func::Count => {
            let r = re(&args[0])?;
            Value::Int(r.find_iter(s(&args[1])?).count() as i64)
        }
        Func::UrlDecode => owned(query_unescape(s(&args[0])?)?),
        Func::UrlEncode => owned(query_escape(s(&args[0])?)),
        Func::Bytes => {
            let text = s(&args[0])?;
            Value::Float(super::bytes(text).ok_or_else(|| format!("invalid byte size {text:?}"))?)
        }
        Func::Duration => {
            let text = s(&args[0])?;
            Value::Float(
                super::go_duration(text)
                    .ok_or_else(|| format!("time: invalid duration {text:?}"))?,
            )
        }
        Func::UnixEpochMillis => owned(time(&args[0])?.div_euclid(1_000_000).to_string()),
        Func::UnixEpochNanos => owned(time(&args[0])?.to_string()),
        Func::UnixEpoch => owned(gotime::unix_seconds(time(&args[0])?).to_string()),
        Func::UnixToTime => {
            let text = s(&args[0])?;
            let bad = || format!("unable to parse time '{text}'");
            let n: i64 = text.parse().map_err(|_| bad())?;
            let ns = match text.len() {
                5 => n.checked_mul(86_400_000_000_000),
                10 => n.checked_mul(1_000_000_000),
                13 => n.checked_mul(1_000_000),
                16 => n.checked_mul(1_000),
                19 => Some(n),
                _ => None,
            };
            Value::Time(ns.ok_or_else(bad)?)
        }
        Func::AlignLeft | Func::AlignRight => {
            let (count, text) = (int(&args[0])?, s(&args[1])?);
            let len = text.chars().count() as i64;
            if count < 0 || count == len {
                str_result(text)
            } else if count > len {
                let pad = " ".repeat(size(count - len, 1)?);
                owned(if f == Func::AlignLeft {
                    format!("{text}{pad}")
                } else {
                    format!("{pad}{text}")
                })
            } else if f == Func::AlignLeft {
                str_result(chars_take(text, count as usize))
            } else {
                str_result(chars_skip(text, (len - count) as usize))
            }
        }
        Func::B64Dec => owned(b64dec(s(&args[0])?)),
        Func::B64Enc => owned(b64enc(s(&args[0])?.as_bytes())),
        Func::Title => owned(title(s(&args[0])?)),
        Func::Trunc => {
            let (c, text) = (int(&args[0])?, s(&args[1])?);
            let len = text.chars().count() as i64;
            if c < 0 && len + c > 0 {
                str_result(chars_skip(text, (len + c) as usize))
            } else if c >= 0 && len > c {
                str_result(chars_take(text, c as usize))
            } else {
                str_result(text)
            }
        }
        Func::Substr => {
            let (start, end, text) = (int(&args[0])?, int(&args[1])?, s(&args[2])?);
            let len = text.chars().count() as i64;
            let end = end.min(len);
            let start = start.min(len);
            if start < 0 {
                if end < 0 {
                    str_result("")
                } else {
                    str_result(chars_take(text, end as usize))
                }
            } else if end < 0 {
                str_result(chars_skip(text, start as usize))
            } else if start > end {
                str_result("")
            } else {
                str_result(chars_take(
                    chars_skip(text, start as usize),
                    (end - start) as usize,
                ))
            }
        }
        Func::Contains => Value::Bool(s(&args[1])?.contains(s(&args[0])?)),
        Func::HasPrefix => Value::Bool(s(&args[1])?.starts_with(s(&args[0])?)),
        Func::HasSuffix => Value::Bool(s(&args[1])?.ends_with(s(&args[0])?)),
        Func::Indent | Func::NIndent => {
            let (n, text) = (int(&args[0])?, s(&args[1])?);
            let pad = " ".repeat(size(n, text.lines().count().max(1))?);
            let mut out = String::new();
            if f == Func::NIndent {
                out.push('\n');
            }
            out.push_str(&pad);
            out.push_str(&text.replace('\n', &format!("\n{pad}")));
            owned(out)
        }
        Func::Replace => owned(replace(s(&args[2])?, s(&args[0])?, s(&args[1])?, None)?),
        Func::Repeat => {
            let (n, text) = (int(&args[0])?, s(&args[1])?);
            owned(text.repeat(size(n, text.len())?))
        }
        Func::TrimAll => str_result(trim_set(s(&args[1])?, s(&args[0])?, true, true)),
        Func::TrimSuffix => {
            let text = s(&args[1])?;
            str_result(text.strip_suffix(s(&args[0])?).unwrap_or(text))
        }
        Func::TrimPrefix => {
            let text = s(&args[1])?;
            str_result(text.strip_prefix(s(&args[0])?).unwrap_or(text))
        }
        Func::Int => Value::Int(to_i64(&args[0])),
        Func::Float64 => Value::Float(to_f64(&args[0])),
        Func::Add => Value::Int(args.iter().fold(0i64, |a, b| a.wrapping_add(to_i64(b)))),
        Func::Sub => Value::Int(to_i64(&args[0]).wrapping_sub(to_i64(&args[1]))),
        Func::Mul => Value::Int(
            args[1..]
                .iter()
                .fold(to_i64(&args[0]), |a, b| a.wrapping_mul(to_i64(b))),
        ),
        Func::Div | Func::Mod => {
            let (a, b) = (to_i64(&args[0]), to_i64(&args[1]));
            if b == 0 {
                return Err("runtime error: integer divide by zero".to_owned());
            }
            Value::Int(if f == Func::Div {
                a.wrapping_div(b)
            } else {
                a.wrapping_rem(b)
            })
        }
        Func::Addf => {
            let mut acc = 0.0;
            for a in args {
                acc = dec_op(acc, to_f64(a), '+')?;
            }
            Value::Float(acc)
        }
        Func::Subf | Func::Mulf | Func::Divf => {
            let op = match f {
                Func::Subf => '-',
                Func::Mulf => '*',
                _ => '/',
            };
            let mut acc = to_f64(&args[0]);
            for a in &args[1..] {
                acc = dec_op(acc, to_f64(a), op)?;
            }
            Value::Float(acc)
        }
        Func::Max => Value::Int(args.iter().map(to_i64).max().unwrap_or(0)),
        Func::Min => Value::Int(args.iter().map(to_i64).min().unwrap_or(0)),
        Func::Maxf => Value::Float(args.iter().map(to_f64).fold(f64::NEG_INFINITY, f64::max)),
        Func::Minf => Value::Float(args.iter().map(to_f64).fold(f64::INFINITY, f64::min)),
        Func::Ceil => Value::Float(to_f64(&args[0]).ceil()),
        Func::Floor => Value::Float(to_f64(&args[0]).floor()),
        Func::Round => {
            let (v, places) = (to_f64(&args[0]), int(&args[1])?);
            let round_on = match args.get(2) {
                Some(r) => float(r)?,
                None => 0.5,
            };
            let pow = 10f64.powi(places.clamp(-400, 400) as i32);
            let digit = pow * v;
            let frac = digit.fract();
            let rounded = if frac >= round_on {
                digit.ceil()
            } else {
                digit.floor()
            };
            Value::Float(rounded / pow)
        }
        Func::Date => {
            let layout = s(&args[0])?;
            let ns = match &args[1] {
                Value::Time(t) => *t,
                Value::Int(secs) => secs.saturating_mul(1_000_000_000),
                other => return Err(wrong_type("time.Time", other)),
            };
            owned(gotime::format_layout(ns, layout))
        }
        Func::Now => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            Value::Time(now)
        }
        Func::Default => {
            let given = args.get(1);
            match given {
                Some(v) if !v.is_empty() => v.clone(),
                _ => args[0].clone(),
            }
        }
    })
}
