//! Go's `fmt` as templates meet it: `printf`'s verbs, flags, width and
//! precision, and `strconv`'s float formatting (`%v` of a float is the
//! shortest text that reads back, in `e` form from an exponent of 6 up).

use std::fmt::Write as _;

use super::funcs::chars_take;
use super::template::{MAX_OUTPUT, Value};

/// Go's shortest-round-trip digits of `|f|` (no trailing zeros) and the
/// decimal point's position: `f = 0.d1d2d3… × 10^dp`. With `sig`, rounded
/// to that many significant digits first.
fn digits(f: f64, sig: Option<usize>) -> (String, i32) {
    if f == 0.0 {
        return (String::new(), 0);
    }
    let text = match sig {
        Some(n) => format!("{:.*e}", n.saturating_sub(1), f.abs()),
        None => format!("{:e}", f.abs()),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    if d == "0" {
        return (String::new(), 0);
    }
    (d, exp + 1)
}

/// `%e` of Go's digits with `prec` digits after the point.
fn fmt_e(d: &str, dp: i32, prec: usize, upper: bool, out: &mut String) {
    let b = d.as_bytes();
    out.push(b.first().map_or('0', |&c| c as char));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(b.get(i).map_or('0', |&c| c as char));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
}

/// `%f` of Go's digits with `prec` digits after the point.
fn fmt_f(d: &str, dp: i32, prec: usize, out: &mut String) {
    let b = d.as_bytes();
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(b.get(i).map_or('0', |&c| c as char));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i32 {
            let j = dp + i - 1;
            out.push(if j >= 0 && (j as usize) < b.len() {
                b[j as usize] as char
            } else {
                '0'
            });
        }
    }
}

/// Go's `strconv.FormatFloat(f, verb, prec, 64)` for `e`, `E`, `f`, `g`,
/// `G`; `prec` `None` is the shortest that reads back the same.
pub(super) fn format_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let mut out = String::new();
    if f.is_sign_negative() {
        out.push('-');
    }
    match verb {
        'e' | 'E' => {
            let (d, dp) = match prec {
                Some(p) => digits(f, Some(p + 1)),
                None => digits(f, None),
            };
            let p = prec.unwrap_or(d.len().saturating_sub(1));
            fmt_e(&d, dp, p, verb == 'E', &mut out);
        }
        'f' | 'F' => match prec {
            Some(p) => {
                let _ = write!(out, "{:.*}", p, f.abs());
            }
            None => {
                let (d, dp) = digits(f, None);
                let p = (d.len() as i32 - dp).max(0) as usize;
                fmt_f(&d, dp, p, &mut out);
            }
        },
        _ => {
            let shortest = prec.is_none();
            let (d, dp) = match prec {
                Some(p) => digits(f, Some(p.max(1))),
                None => digits(f, None),
            };
            let nd = d.len() as i32;
            let mut p = match prec {
                Some(p) => p.max(1) as i32,
                None => nd,
            };
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(&d, dp, (p - 1).max(0) as usize, verb == 'G', &mut out);
            } else {
                if p > dp {
                    p = nd;
                }
                fmt_f(&d, dp, (p - dp).max(0) as usize, &mut out);
            }
        }
    }
    out
}

/// Go's `strconv.Quote`.
pub(super) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The flags, width and precision of one `printf` verb.
#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

impl Spec {
    /// Pads `body` (with `sign` in front) to the width.
    fn pad(&self, out: &mut String, sign: &str, body: &str, numeric: bool) {
        let len = sign.chars().count() + body.chars().count();
        let fill = self.width.unwrap_or(0).saturating_sub(len);
        if self.minus {
            out.push_str(sign);
            out.push_str(body);
            out.extend(std::iter::repeat_n(' ', fill));
        } else if self.zero && numeric {
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', fill));
            out.push_str(body);
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(sign);
            out.push_str(body);
        }
    }

    fn string(&self, out: &mut String, text: &str) {
        let text = match self.prec {
            Some(p) => chars_take(text, p),
            None => text,
        };
        self.pad(out, "", text, false);
    }

    fn sign(&self, negative: bool) -> &'static str {
        if negative {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        }
    }

    fn integer(&self, out: &mut String, v: i64, verb: char) {
        let mag = v.unsigned_abs();
        let mut body = match verb {
            'b' => format!("{mag:b}"),
            'o' | 'O' => format!("{mag:o}"),
            'x' => format!("{mag:x}"),
            'X' => format!("{mag:X}"),
            _ => mag.to_string(),
        };
        if let Some(p) = self.prec {
            if body.len() < p {
                body = format!("{}{body}", "0".repeat(p - body.len()));
            } else if p == 0 && mag == 0 {
                body.clear();
            }
        }
        let prefix = match verb {
            'O' => "0o",
            'x' if self.sharp => "0x",
            'X' if self.sharp => "0X",
            'b' if self.sharp => "0b",
            'o' if self.sharp && !body.starts_with('0') => "0",
            _ => "",
        };
        let sign = format!("{}{prefix}", self.sign(v < 0));
        self.pad(out, &sign, &body, self.prec.is_none());
    }

    fn float(&self, out: &mut String, v: f64, verb: char) {
        let prec = match (verb, self.prec) {
            (_, Some(p)) => Some(p),
            ('e' | 'E' | 'f' | 'F', None) => Some(6),
            _ => None,
        };
        let verb = if verb == 'v' { 'g' } else { verb };
        let text = format_float(v, verb, prec);
        let (negative, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text.strip_prefix('+').unwrap_or(&text)),
        };
        let numeric = v.is_finite();
        let sign = if v.is_infinite() && !negative {
            if self.space && !self.plus { " " } else { "+" }
        } else {
            self.sign(negative)
        };
        self.pad(out, sign, body, numeric);
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use.
pub(super) fn printf(format: &str, args: &[Value<'_>]) -> Result<String, String> {
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0;
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let mut spec = Spec::default();
        let mut chars = rest.char_indices().peekable();
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(&(_, c)) = chars.peek() {
                let Some(d) = c.to_digit(10) else { break };
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars);
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            spec.prec = Some(number(&mut chars).unwrap_or(0));
        }
        if spec.width.unwrap_or(0) > MAX_OUTPUT || spec.prec.unwrap_or(0) > MAX_OUTPUT {
            return Err(format!(
                "printf width or precision larger than {MAX_OUTPUT}"
            ));
        }
        let Some((vi, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            rest = "";
            break;
        };
        rest = &rest[vi + verb.len_utf8()..];
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        format_arg(&mut out, &spec, verb, arg);
        if out.len() > MAX_OUTPUT {
            return Err(format!("output larger than {MAX_OUTPUT} bytes"));
        }
    }
    out.push_str(rest);
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}=", a.type_name());
            a.print(&mut out);
        }
        out.push(')');
    }
    Ok(out)
}

fn format_arg(out: &mut String, spec: &Spec, verb: char, arg: &Value<'_>) {
    let bad = |out: &mut String| {
        let _ = write!(out, "%!{verb}({}=", arg.type_name());
        arg.print(out);
        out.push(')');
    };
    match (verb, arg) {
        ('v', Value::Str(s)) if spec.sharp => spec.pad(out, "", &quote(s), false),
        ('v' | 's', Value::Str(s)) => spec.string(out, s),
        ('q', Value::Str(s)) => spec.pad(
            out,
            "",
            &quote(chars_take(s, spec.prec.unwrap_or(usize::MAX))),
            false,
        ),
        ('x' | 'X', Value::Str(s)) => {
            let mut hex = String::new();
            for (i, b) in s.bytes().enumerate() {
                if spec.space && i > 0 {
                    hex.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    hex.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                let _ = if verb == 'x' {
                    write!(hex, "{b:02x}")
                } else {
                    write!(hex, "{b:02X}")
                };
            }
            spec.pad(out, "", &hex, false);
        }
        ('v' | 'd' | 'b' | 'o' | 'O' | 'x' | 'X', Value::Int(i)) => spec.integer(out, *i, verb),
        ('c', Value::Int(i)) => {
            let c = u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            spec.pad(out, "", &c.to_string(), false);
        }
        ('q', Value::Int(i)) => {
            let c = u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            let q = quote(&c.to_string());
            let inner = &q[1..q.len() - 1];
            let inner = if inner == "\\\"" { "\"" } else { inner };
            let inner = if inner == "'" { "\\'" } else { inner };
            spec.pad(out, "", &format!("'{inner}'"), false);
        }
        ('v' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => spec.float(out, *f, verb),
        ('v' | 't', Value::Bool(b)) => spec.pad(out, "", if *b { "true" } else { "false" }, false),
        ('v' | 's', Value::Time(_) | Value::Labels(_) | Value::Nil) => {
            let mut text = String::new();
            arg.print(&mut text);
            spec.string(out, &text);
        }
        ('q', Value::Time(_)) => {
            let mut text = String::new();
            arg.print(&mut text);
            spec.pad(out, "", &quote(&text), false);
        }
        _ => bad(out),
    }
}
