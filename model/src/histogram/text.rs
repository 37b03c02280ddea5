//! Native histograms as text: the literal PromQL's test files and promtool
//! write (`{{schema:0 count:3 sum:4 buckets:[1 2]}}`), Prometheus's
//! one-line description, and the JSON shape of its HTTP API.

use std::fmt::{self, Write as _};

use super::{CounterResetHint, FloatHistogram, HistogramError, MAX_BUCKETS, Side, Span, decode};

/// The most buckets a test-format literal may fill in when written out
/// with one span per side; sparser histograms are written in
/// [`FloatHistogram::to_prometheus_string`]'s form instead.
const MAX_LITERAL_BUCKETS: i64 = 10_000;

/// `v` as Go's `%g` writes it (shortest representation, an exponent below
/// 1e-4 and from 1e6 on): `1`, `0.25`, `1e+06`, `1.5e-07`, `NaN`, `+Inf`.
pub fn format_go_g(v: f64) -> String {
    format_go_float(v, |exp| !(-4..6).contains(&exp))
}

/// `v` as Prometheus's HTTP API writes a sample value: shortest
/// representation, plain from 1e-6 to below 1e21 and with an exponent
/// outside (`1e+21`, `1.5e-07`), `NaN`, `+Inf`, `-Inf`.
pub fn format_api_float(v: f64) -> String {
    let abs = v.abs();
    let exponent = abs != 0.0 && !(1e-6..1e21).contains(&abs);
    format_go_float(v, |_| exponent)
}

fn format_go_float(v: f64, use_exponent: impl Fn(i32) -> bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let scientific = format!("{v:e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if v != 0.0 && use_exponent(exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{v}")
    }
}

/// A histogram literal of PromQL's test language, and whether it named its
/// counter reset hint (tests compare hints only then).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramLiteral {
    pub histogram: FloatHistogram,
    pub counter_reset_hint_set: bool,
}

/// A histogram literal that does not parse: what is wrong, and where
/// (a byte offset into the text given to the parser).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("histogram at byte {position}: {message}")]
pub struct ParseHistogramError {
    pub position: usize,
    pub message: String,
}

/// Parses the histogram literal at the start of `text` (`{{` ... `}}`) and
/// returns it with the text after the closing `}}`, where a test file's
/// value sequence may continue (`+{{...}}x3`).
///
/// Keys, each at most once, separated by spaces: `schema`, `count`, `sum`,
/// `z_bucket`, `z_bucket_w`, `offset`, `n_offset` (integers or numbers as
/// Prometheus's test language writes them, `Inf` and `NaN` included),
/// `buckets`, `n_buckets`, `custom_values` (`[1 2 3]`), and
/// `counter_reset_hint` (`unknown`, `reset`, `not_reset`, `gauge`). Buckets
/// form one span per side starting at the offset. The literal is not
/// validated: tests load invalid histograms on purpose.
pub fn parse_histogram_literal(
    text: &str,
) -> Result<(HistogramLiteral, &str), ParseHistogramError> {
    let mut p = Parser { text, pos: 0 };
    p.expect("{{")?;
    let mut h = FloatHistogram::default();
    let mut hint_set = false;
    let mut seen: Vec<&str> = Vec::new();
    let mut positive: (Vec<f64>, i32) = (Vec::new(), 0);
    let mut negative: (Vec<f64>, i32) = (Vec::new(), 0);
    loop {
        let spaced = p.skip_spaces();
        if p.eat("}}") {
            break;
        }
        if !seen.is_empty() && !spaced {
            return Err(p.error("expected a space or `}}` after a value"));
        }
        let key_at = p.pos;
        let key = p.word();
        if key.is_empty() {
            return Err(p.error("expected a histogram description key, e.g. buckets:[5 10 7]"));
        }
        if seen.contains(&key) {
            return Err(ParseHistogramError {
                position: key_at,
                message: format!("duplicate key \"{key}\" in histogram"),
            });
        }
        seen.push(key);
        p.expect(":")?;
        match key {
            "schema" => h.schema = p.int()?,
            "count" => h.count = p.number()?,
            "sum" => h.sum = p.number()?,
            "z_bucket" => h.zero_count = p.number()?,
            "z_bucket_w" => h.zero_threshold = p.number()?,
            "offset" => positive.1 = p.int()?,
            "n_offset" => negative.1 = p.int()?,
            "buckets" => positive.0 = p.list()?,
            "n_buckets" => negative.0 = p.list()?,
            "custom_values" => h.custom_values = p.list()?,
            "counter_reset_hint" => {
                hint_set = true;
                h.counter_reset_hint = match p.word() {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(p.error(&format!("unknown counter_reset_hint {other:?}"))),
                };
            }
            _ => {
                return Err(ParseHistogramError {
                    position: key_at,
                    message: format!("unknown histogram description key {key:?}"),
                });
            }
        }
    }
    let side = |(buckets, offset): (Vec<f64>, i32)| {
        let spans = if buckets.is_empty() {
            Vec::new()
        } else {
            vec![Span {
                offset,
                length: buckets.len() as u32,
            }]
        };
        (spans, buckets)
    };
    (h.positive_spans, h.positive_buckets) = side(positive);
    (h.negative_spans, h.negative_buckets) = side(negative);
    Ok((
        HistogramLiteral {
            histogram: h,
            counter_reset_hint_set: hint_set,
        },
        &text[p.pos..],
    ))
}

/// The histograms of a test file's `{{base}}+{{inc}}xN` (or `-`): `base`
/// and then `N` more, each adding (subtracting) `inc` to the one before, as
/// Prometheus's test language expands them. Like Prometheus it refuses an
/// increment with a coarser schema than the running histogram.
pub fn expand_histogram_series(
    base: &FloatHistogram,
    increment: &FloatHistogram,
    times: usize,
    subtract: bool,
) -> Result<Vec<FloatHistogram>, HistogramError> {
    let mut out = vec![base.clone()];
    let mut current = base.clone();
    for _ in 0..times {
        if current.schema > increment.schema {
            return Err(HistogramError::CannotMergeSchema {
                from: increment.schema,
                to: current.schema,
            });
        }
        if subtract {
            current.sub(increment)?;
        } else {
            current.add(increment)?;
        }
        out.push(current.clone());
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn error(&self, message: &str) -> ParseHistogramError {
        ParseHistogramError {
            position: self.pos,
            message: message.to_owned(),
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseHistogramError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{token}`")))
        }
    }

    /// Skips spaces and tabs; whether there were any.
    fn skip_spaces(&mut self) -> bool {
        let n = self.rest().len() - self.rest().trim_start_matches([' ', '\t']).len();
        self.pos += n;
        n > 0
    }

    /// A run of letters, digits and underscores.
    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    /// A number as the test language writes it: an optional sign, then
    /// decimal digits with `.`, an exponent and `_` separators (a leading 0
    /// makes an integer octal, as Go's `ParseInt` with base 0 reads it), or
    /// `Inf`/`NaN`.
    fn number(&mut self) -> Result<f64, ParseHistogramError> {
        let start = self.pos;
        let negative = if self.eat("-") {
            true
        } else {
            self.eat("+");
            false
        };
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let mut n = 0;
        while n < bytes.len() {
            let c = bytes[n];
            let sign_in_exponent =
                (c == b'+' || c == b'-') && n > 0 && matches!(bytes[n - 1], b'e' | b'E');
            if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || sign_in_exponent {
                n += 1;
            } else {
                break;
            }
        }
        let token = &rest[..n];
        self.pos += n;
        let bad = || ParseHistogramError {
            position: start,
            message: format!("bad number {:?}", &self.text[start..self.pos]),
        };
        let value = parse_go_number(token).ok_or_else(bad)?;
        Ok(if negative { -value } else { value })
    }

    /// An integer that fits an `i32` (schemas and offsets).
    fn int(&mut self) -> Result<i32, ParseHistogramError> {
        let start = self.pos;
        let v = self.number()?;
        if v.fract() != 0.0 || !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v) {
            return Err(ParseHistogramError {
                position: start,
                message: format!("expected an integer, got {}", format_go_g(v)),
            });
        }
        Ok(v as i32)
    }

    /// `[n n n]`.
    fn list(&mut self) -> Result<Vec<f64>, ParseHistogramError> {
        self.expect("[")?;
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            if self.eat("]") {
                return Ok(out);
            }
            if out.len() >= MAX_BUCKETS {
                return Err(self.error(&format!("more than {MAX_BUCKETS} values")));
            }
            if !out.is_empty() && !self.text[..self.pos].ends_with([' ', '\t']) {
                return Err(self.error("expected a space or `]`"));
            }
            out.push(self.number()?);
        }
    }
}

/// A number token of the test language without its sign.
fn parse_go_number(token: &str) -> Option<f64> {
    match token.to_ascii_lowercase().as_str() {
        "inf" => return Some(f64::INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if token.is_empty() || token.starts_with('_') || token.ends_with('_') || token.contains("__") {
        return None;
    }
    let digits = token.replace('_', "");
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        let parsed = if digits.len() > 1 && digits.starts_with('0') {
            i64::from_str_radix(&digits[1..], 8).ok()
        } else {
            digits.parse::<i64>().ok()
        };
        if let Some(i) = parsed {
            return Some(i as f64);
        }
    }
    if !digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    digits.parse::<f64>().ok()
}

impl fmt::Display for FloatHistogram {
    /// The test-language literal Prometheus's `TestExpression` writes: only
    /// fields that are not zero, each side as one span (gaps filled with
    /// empty buckets). A histogram too sparse for that (or with spans that
    /// do not match its buckets) is written as
    /// [`to_prometheus_string`](Self::to_prometheus_string) writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((positive, negative)) = self.literal_sides() else {
            return f.write_str(&self.to_prometheus_string());
        };
        let mut parts: Vec<String> = Vec::new();
        if self.schema != 0 {
            parts.push(format!("schema:{}", self.schema));
        }
        if self.count != 0.0 {
            parts.push(format!("count:{}", format_go_g(self.count)));
        }
        if self.sum != 0.0 {
            parts.push(format!("sum:{}", format_go_g(self.sum)));
        }
        if self.zero_count != 0.0 {
            parts.push(format!("z_bucket:{}", format_go_g(self.zero_count)));
        }
        if self.zero_threshold != 0.0 {
            parts.push(format!("z_bucket_w:{}", format_go_g(self.zero_threshold)));
        }
        if self.uses_custom_buckets() {
            parts.push(format!("custom_values:{}", list(&self.custom_values)));
        }
        match self.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => parts.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotCounterReset => parts.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
        }
        for ((offset, buckets), (offset_key, buckets_key)) in [
            (positive, ("offset", "buckets")),
            (negative, ("n_offset", "n_buckets")),
        ] {
            if buckets.is_empty() {
                continue;
            }
            if offset != 0 {
                parts.push(format!("{offset_key}:{offset}"));
            }
            parts.push(format!("{buckets_key}:{}", list(&buckets)));
        }
        write!(f, "{{{{{}}}}}", parts.join(" "))
    }
}

fn list(values: &[f64]) -> String {
    let mut out = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format_go_g(*v));
    }
    out.push(']');
    out
}

/// One side as the literal writes it: the offset of its first populated
/// bucket and the counts from there to the last populated one.
type LiteralSide = (i32, Vec<f64>);

impl FloatHistogram {
    /// Each side compacted to one span, if that is small enough.
    fn literal_sides(&self) -> Option<(LiteralSide, LiteralSide)> {
        let custom = self.uses_custom_buckets();
        let side = |spans: &[Span], counts: &[f64], side| -> Option<LiteralSide> {
            let buckets = decode(spans, counts, side, custom).ok()?;
            let Some(&(first, _)) = buckets.iter().find(|(_, c)| *c != 0.0) else {
                return Some((0, Vec::new()));
            };
            let last = buckets
                .iter()
                .rev()
                .find(|(_, c)| *c != 0.0)
                .map_or(first, |&(i, _)| i);
            if i64::from(last) - i64::from(first) >= MAX_LITERAL_BUCKETS {
                return None;
            }
            let mut out = vec![0.0; (i64::from(last) - i64::from(first) + 1) as usize];
            for &(i, c) in &buckets {
                if (first..=last).contains(&i) {
                    out[(i - first) as usize] = c;
                }
            }
            Some((first, out))
        };
        Some((
            side(&self.positive_spans, &self.positive_buckets, Side::Positive)?,
            side(&self.negative_spans, &self.negative_buckets, Side::Negative)?,
        ))
    }

    /// Prometheus's `FloatHistogram.String`: count, sum and every populated
    /// bucket in ascending order, e.g. `{count:5, sum:8, [-2,-1):1, (1,2]:4}`.
    pub fn to_prometheus_string(&self) -> String {
        let mut out = format!(
            "{{count:{}, sum:{}",
            format_go_g(self.count),
            format_go_g(self.sum)
        );
        let negative: Vec<_> = self.negative_buckets().filter(|b| b.count != 0.0).collect();
        for b in negative.iter().rev() {
            let _ = write!(out, ", {b}");
        }
        if self.zero_count != 0.0
            && let Some(zero) = self.zero_bucket()
        {
            let _ = write!(out, ", {zero}");
        }
        for b in self.positive_buckets().filter(|b| b.count != 0.0) {
            let _ = write!(out, ", {b}");
        }
        out.push('}');
        out
    }

    /// The histogram as Prometheus's HTTP API presents it: count, sum, and
    /// the populated buckets in ascending order with their bounds.
    pub fn to_api(&self) -> ApiHistogram {
        let buckets = self
            .all_buckets()
            .into_iter()
            .filter(|b| b.count != 0.0)
            .map(|b| ApiBucket {
                boundary_rule: match (b.lower_inclusive, b.upper_inclusive) {
                    (false, true) => 0,
                    (true, false) => 1,
                    (false, false) => 2,
                    (true, true) => 3,
                },
                lower: b.lower,
                upper: b.upper,
                count: b.count,
            })
            .collect();
        ApiHistogram {
            count: self.count,
            sum: self.sum,
            buckets,
        }
    }

    /// Appends the JSON Prometheus's API writes for this histogram
    /// (`jsonutil.MarshalHistogram`), e.g.
    /// `{"count":"5","sum":"8","buckets":[[0,"1","2","4"]]}`; without
    /// populated buckets there is no `buckets` key.
    pub fn write_api_json(&self, out: &mut String) {
        self.to_api().write_json(out);
    }

    /// The same JSON as [`write_api_json`](Self::write_api_json), as a value.
    pub fn to_api_json(&self) -> serde_json::Value {
        let api = self.to_api();
        let mut map = serde_json::Map::new();
        map.insert("count".into(), format_api_float(api.count).into());
        map.insert("sum".into(), format_api_float(api.sum).into());
        if !api.buckets.is_empty() {
            let buckets = api
                .buckets
                .iter()
                .map(|b| {
                    serde_json::json!([
                        b.boundary_rule,
                        format_api_float(b.lower),
                        format_api_float(b.upper),
                        format_api_float(b.count)
                    ])
                })
                .collect();
            map.insert("buckets".into(), serde_json::Value::Array(buckets));
        }
        serde_json::Value::Object(map)
    }
}

/// A histogram as Prometheus's HTTP API presents it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiHistogram {
    pub count: f64,
    pub sum: f64,
    /// Populated buckets only, ascending.
    pub buckets: Vec<ApiBucket>,
}

/// One bucket in the API's form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiBucket {
    /// Which ends are inclusive: 0 upper only, 1 lower only, 2 neither,
    /// 3 both (Prometheus's `jsonutil`).
    pub boundary_rule: u8,
    pub lower: f64,
    pub upper: f64,
    pub count: f64,
}

impl ApiHistogram {
    /// Appends `{"count":"..","sum":"..","buckets":[[rule,"lower","upper","count"],..]}`.
    pub fn write_json(&self, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"count":"{}","sum":"{}""#,
            format_api_float(self.count),
            format_api_float(self.sum)
        );
        if !self.buckets.is_empty() {
            out.push_str(r#","buckets":["#);
            for (i, b) in self.buckets.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    r#"[{},"{}","{}","{}"]"#,
                    b.boundary_rule,
                    format_api_float(b.lower),
                    format_api_float(b.upper),
                    format_api_float(b.count)
                );
            }
            out.push(']');
        }
        out.push('}');
    }
}
