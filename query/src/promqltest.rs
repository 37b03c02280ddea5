//! Prometheus's PromQL test-file format (`promql/promqltest` in Prometheus),
//! parsed into commands, so that those suites run through Sextant's storage
//! and engine unchanged.
//!
//! A file is a sequence of commands separated by blank lines:
//! - `load 5m` / `load_with_nhcb 5m`, then indented series lines
//!   `name{labels} 1+2x3 _ stale NaN`;
//! - `eval instant at 50m EXPR` / `eval range from 0 to 10m step 1m EXPR`
//!   (`eval_fail ...` expects an error), then indented `expect ...` directives
//!   and expected series lines (or a bare scalar);
//! - `clear`.
//!
//! Native-histogram values (`{{...}}`, `{{a}}+{{b}}x3`) are parsed into
//! histograms, with whether they named a counter reset hint (compared only then).

use sextant_model::histogram::{
    HistogramLiteral, expand_histogram_series, parse_histogram_literal,
};
use sextant_model::{Labels, MatchOp, PromDuration};

use crate::parse_selector;

/// One value of a series line.
#[derive(Debug, Clone, PartialEq)]
pub enum TestValue {
    /// A float sample.
    Float(f64),
    /// Prometheus's staleness marker.
    Stale,
    /// No sample at this step (`_`).
    Missing,
    /// A native histogram sample.
    Histogram(Box<HistogramLiteral>),
}

/// A series and its values at successive steps.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSeries {
    pub labels: Labels,
    pub values: Vec<TestValue>,
}

impl TestSeries {
    /// Whether any value is a native histogram.
    pub fn has_histograms(&self) -> bool {
        self.values
            .iter()
            .any(|v| matches!(v, TestValue::Histogram(_)))
    }
}

/// When an expression is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalAt {
    /// At one time, in ms since the epoch.
    Instant(i64),
    /// From `start` to `end` every `step`, all in ms.
    Range { start: i64, end: i64, step: i64 },
}

/// What an eval expects besides (or instead of) result series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expectations {
    /// `eval_fail` or `expect fail`: the query must fail; with a message or regex when given.
    pub fail: Option<Option<String>>,
    /// The failure message is a regex (`expect fail regex: ...`), not exact text.
    pub fail_is_regex: bool,
    /// Results must come in this order.
    pub ordered: bool,
    /// A string result.
    pub string: Option<String>,
    /// A scalar result.
    pub scalar: Option<f64>,
    /// The instant query returns a range vector sampled `from`/`to`/`step`.
    pub range_vector: Option<(i64, i64, i64)>,
    /// Warning/info annotations expected (`Some(true)`), forbidden (`Some(false)`) or unchecked.
    pub warn: Option<bool>,
    pub info: Option<bool>,
    /// The expected warning's text (`expect warn msg: ...`) or pattern (`regex:`).
    pub warn_message: Option<MessageMatch>,
    /// The expected info's text or pattern.
    pub info_message: Option<MessageMatch>,
}

/// An expected message: exact text, or a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageMatch {
    Exact(String),
    Regex(String),
}

/// One eval case.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalCase {
    /// 1-based line of the `eval` command.
    pub line: usize,
    pub expr: String,
    pub at: EvalAt,
    pub expect: Expectations,
    pub series: Vec<TestSeries>,
}

impl EvalCase {
    /// Why a runner should skip this case, if it should (nothing the
    /// format expresses is left out today).
    pub fn unsupported(&self) -> Option<&'static str> {
        None
    }
}

/// One command of a test file.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Series to load, `interval_ms` apart starting at 0.
    Load {
        line: usize,
        interval_ms: i64,
        /// `load_with_nhcb`: classic histograms converted to native ones.
        native_histograms: bool,
        series: Vec<TestSeries>,
    },
    Eval(Box<EvalCase>),
    /// Drop everything loaded.
    Clear,
}

/// A line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TestFileError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole test file.
pub fn parse_test_file(text: &str) -> Result<Vec<Command>, TestFileError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut commands = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i];
        let trimmed = line.trim();
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |message: String| TestFileError {
            line: line_no,
            message,
        };
        // The command's indented (or, for load, any non-blank) body.
        let mut body: Vec<(usize, &str)> = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && is_body_line(lines[i]) {
            body.push((i + 1, lines[i].trim()));
            i += 1;
        }
        let (word, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        match word {
            "clear" => commands.push(Command::Clear),
            "load" | "load_with_nhcb" => {
                let interval_ms = duration_ms(rest.trim()).map_err(err)?;
                let series = body
                    .iter()
                    .filter(|(_, l)| !l.starts_with('#'))
                    .map(|(n, l)| {
                        parse_series_line(l).map_err(|m| TestFileError {
                            line: *n,
                            message: m,
                        })
                    })
                    .collect::<Result<_, _>>()?;
                commands.push(Command::Load {
                    line: line_no,
                    interval_ms,
                    native_histograms: word == "load_with_nhcb",
                    series,
                });
            }
            "eval" | "eval_fail" | "eval_ordered" | "eval_warn" | "eval_info" => {
                let mut case = parse_eval_header(rest.trim(), line_no).map_err(err)?;
                match word {
                    "eval_fail" => case.expect.fail = Some(None),
                    "eval_ordered" => case.expect.ordered = true,
                    "eval_warn" => case.expect.warn = Some(true),
                    "eval_info" => case.expect.info = Some(true),
                    _ => {}
                }
                for (n, l) in &body {
                    parse_eval_body_line(&mut case, l).map_err(|m| TestFileError {
                        line: *n,
                        message: m,
                    })?;
                }
                commands.push(Command::Eval(Box::new(case)));
            }
            other => return Err(err(format!("unknown command {other:?}"))),
        }
    }
    Ok(commands)
}

/// Body lines are indented; a command starts at column 0.
fn is_body_line(line: &str) -> bool {
    line.starts_with([' ', '\t'])
}

fn duration_ms(text: &str) -> Result<i64, String> {
    let negative = text.starts_with('-');
    let d: PromDuration = text
        .trim_start_matches('-')
        .parse()
        .map_err(|e: sextant_model::DurationError| e.to_string())?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{text:?} is too long"))?;
    Ok(if negative { -ms } else { ms })
}

fn parse_eval_header(text: &str, line: usize) -> Result<EvalCase, String> {
    let (at, expr) = if let Some(rest) = text.strip_prefix("instant at ") {
        let (time, expr) = rest
            .split_once(char::is_whitespace)
            .ok_or("missing expression")?;
        (EvalAt::Instant(duration_ms(time)?), expr)
    } else if let Some(rest) = text.strip_prefix("range from ") {
        let mut words = rest.splitn(6, char::is_whitespace);
        let start = duration_ms(words.next().unwrap_or_default())?;
        if words.next() != Some("to") {
            return Err("expected `range from START to END step STEP EXPR`".into());
        }
        let end = duration_ms(words.next().unwrap_or_default())?;
        if words.next() != Some("step") {
            return Err("expected `step` after the range end".into());
        }
        let step = duration_ms(words.next().unwrap_or_default())?;
        let expr = words.next().ok_or("missing expression")?;
        (EvalAt::Range { start, end, step }, expr)
    } else {
        return Err(format!(
            "expected `instant at` or `range from`, got {text:?}"
        ));
    };
    Ok(EvalCase {
        line,
        expr: expr.trim().to_owned(),
        at,
        expect: Expectations::default(),
        series: Vec::new(),
    })
}

fn parse_eval_body_line(case: &mut EvalCase, line: &str) -> Result<(), String> {
    if line.starts_with('#') {
        return Ok(());
    }
    if let Some(directive) = line.strip_prefix("expect ") {
        let (word, rest) = directive
            .split_once(char::is_whitespace)
            .unwrap_or((directive, ""));
        let detail = rest
            .trim()
            .strip_prefix("msg:")
            .or_else(|| rest.trim().strip_prefix("regex:"))
            .map(|m| m.trim().to_owned());
        match word {
            "fail" => {
                case.expect.fail_is_regex = rest.trim().starts_with("regex:");
                case.expect.fail = Some(detail);
            }
            "ordered" => case.expect.ordered = true,
            "warn" => {
                case.expect.warn = Some(true);
                case.expect.warn_message = message_match(rest);
            }
            "no_warn" => case.expect.warn = Some(false),
            "info" => {
                case.expect.info = Some(true);
                case.expect.info_message = message_match(rest);
            }
            "no_info" => case.expect.info = Some(false),
            "string" => case.expect.string = Some(unquote(rest.trim())?),
            "range" => {
                let spec = rest
                    .trim()
                    .strip_prefix("vector from ")
                    .ok_or("expected `expect range vector from A to B step S`")?;
                let words: Vec<&str> = spec.split_whitespace().collect();
                let [from, "to", to, "step", step] = words[..] else {
                    return Err("expected `expect range vector from A to B step S`".into());
                };
                case.expect.range_vector =
                    Some((duration_ms(from)?, duration_ms(to)?, duration_ms(step)?));
            }
            other => return Err(format!("unknown expectation {other:?}")),
        }
        return Ok(());
    }
    if let Some(value) = parse_number(line) {
        case.expect.scalar = Some(value);
        return Ok(());
    }
    case.series.push(parse_series_line(line)?);
    Ok(())
}

fn message_match(rest: &str) -> Option<MessageMatch> {
    let rest = rest.trim();
    if let Some(m) = rest.strip_prefix("msg:") {
        Some(MessageMatch::Exact(m.trim().to_owned()))
    } else {
        rest.strip_prefix("regex:")
            .map(|r| MessageMatch::Regex(r.trim().to_owned()))
    }
}

fn unquote(text: &str) -> Result<String, String> {
    let quote = text.chars().next().ok_or("expected a quoted string")?;
    let inner = text
        .strip_prefix(quote)
        .and_then(|t| t.strip_suffix(quote))
        .filter(|_| matches!(quote, '"' | '\'' | '`'))
        .ok_or_else(|| format!("expected a quoted string, got {text:?}"))?;
    Ok(inner.to_owned())
}

fn parse_number(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Inf" | "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// `name{labels} values...`: the series descriptor ends where its braces close
/// (or at the first blank after a bare name).
fn parse_series_line(line: &str) -> Result<TestSeries, String> {
    let split = match line.find('{') {
        Some(open) if !line[..open].contains(char::is_whitespace) => {
            closing_brace(line, open).ok_or("unterminated '{' in series")? + 1
        }
        _ => line.find(char::is_whitespace).unwrap_or(line.len()),
    };
    let (descriptor, values) = line.split_at(split);
    let labels = if descriptor == "{}" {
        Labels::default()
    } else {
        let matchers = parse_selector(descriptor).map_err(|e| e.to_string())?;
        if matchers.iter().any(|m| m.op != MatchOp::Equal) {
            return Err(format!("series {descriptor:?} must use only `=`"));
        }
        Labels::from_pairs(matchers.into_iter().map(|m| (m.name, m.value)))
    };
    Ok(TestSeries {
        labels,
        values: parse_values(values)?,
    })
}

/// The index of the `}` that closes the `{` at `open`, skipping quoted strings.
fn closing_brace(text: &str, open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text[open..].char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => escaped = true,
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => escaped = false,
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '}') => return Some(open + i),
            (None, _) => {}
        }
    }
    None
}

/// Expands `1 2+3x4 _x2 stale {{...}}x3` into values.
fn parse_values(text: &str) -> Result<Vec<TestValue>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            // `{{..}}`, `{{..}}xN` or `{{..}}+{{..}}xN`: one or N+1 histograms.
            let (base, after) = parse_histogram_literal(rest).map_err(|e| e.to_string())?;
            rest = after;
            let mut increment = None;
            if let Some(after) = rest.strip_prefix(['+', '-'])
                && after.starts_with("{{")
            {
                let subtract = rest.starts_with('-');
                let (inc, after) = parse_histogram_literal(after).map_err(|e| e.to_string())?;
                increment = Some((inc, subtract));
                rest = after;
            }
            let mut repeat = 0;
            if let Some(after) = rest.strip_prefix('x') {
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                repeat = after[..digits]
                    .parse()
                    .map_err(|_| "expected a count after `x`".to_owned())?;
                rest = &after[digits..];
            }
            rest = rest.trim_start();
            match increment {
                None => out.extend(std::iter::repeat_n(
                    TestValue::Histogram(Box::new(base)),
                    repeat + 1,
                )),
                Some((inc, subtract)) => {
                    let series =
                        expand_histogram_series(&base.histogram, &inc.histogram, repeat, subtract)
                            .map_err(|e| e.to_string())?;
                    out.extend(series.into_iter().map(|histogram| {
                        TestValue::Histogram(Box::new(HistogramLiteral {
                            histogram,
                            counter_reset_hint_set: base.counter_reset_hint_set,
                        }))
                    }));
                }
            }
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        rest = rest[end..].trim_start();
        expand_token(token, &mut out)?;
    }
    Ok(out)
}

fn expand_token(token: &str, out: &mut Vec<TestValue>) -> Result<(), String> {
    let bad = || format!("invalid value {token:?}");
    match token {
        "_" => out.push(TestValue::Missing),
        "stale" => out.push(TestValue::Stale),
        _ => {
            if let Some(times) = token.strip_prefix("_x") {
                let n: usize = times.parse().map_err(|_| bad())?;
                out.extend(std::iter::repeat_n(TestValue::Missing, n));
                return Ok(());
            }
            let Some((head, times)) = token.rsplit_once('x') else {
                out.push(TestValue::Float(parse_number(token).ok_or_else(bad)?));
                return Ok(());
            };
            let n: usize = times.parse().map_err(|_| bad())?;
            // `a+bxN` / `a-bxN`: N+1 values stepping by b; `axN`: N+1 copies of a.
            let split = head
                .char_indices()
                .skip(1)
                .find(|&(i, c)| matches!(c, '+' | '-') && !head[..i].ends_with(['e', 'E']))
                .map(|(i, _)| i);
            let (start, step) = match split {
                Some(i) => {
                    let start = parse_number(&head[..i]).ok_or_else(bad)?;
                    let magnitude = parse_number(&head[i + 1..]).ok_or_else(bad)?;
                    (
                        start,
                        if head[i..].starts_with('-') {
                            -magnitude
                        } else {
                            magnitude
                        },
                    )
                }
                None => (parse_number(head).ok_or_else(bad)?, 0.0),
            };
            for k in 0..=n {
                out.push(TestValue::Float(start + step * k as f64));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(values: &[TestValue]) -> Vec<f64> {
        values
            .iter()
            .map(|v| match v {
                TestValue::Float(f) => *f,
                other => panic!("not a float: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn value_notation_expands() {
        assert_eq!(
            floats(&parse_values("1 2+3x2 10-1x1 5x2").unwrap()),
            [1.0, 2.0, 5.0, 8.0, 10.0, 9.0, 5.0, 5.0, 5.0]
        );
        assert_eq!(
            parse_values("_ _x2 stale NaN").unwrap()[..4],
            [
                TestValue::Missing,
                TestValue::Missing,
                TestValue::Missing,
                TestValue::Stale
            ]
        );
        assert_eq!(
            floats(&parse_values("-2+-1x2 1e3").unwrap()),
            [-2.0, -3.0, -4.0, 1000.0]
        );
        let values = parse_values("0 {{schema:0 sum:1 count:1}}x2 {{count:1}}").unwrap();
        assert_eq!(values.len(), 5);
        assert_eq!(values[0], TestValue::Float(0.0));
        let TestValue::Histogram(h) = &values[3] else {
            panic!("not a histogram: {:?}", values[3])
        };
        assert_eq!((h.histogram.sum, h.histogram.count), (1.0, 1.0));
        let values = parse_values("{{sum:2 count:2}}+{{sum:3 count:3}}x5 1").unwrap();
        assert_eq!(values.len(), 7);
        let TestValue::Histogram(h) = &values[5] else {
            panic!("not a histogram: {:?}", values[5])
        };
        assert_eq!((h.histogram.sum, h.histogram.count), (17.0, 17.0));
        assert!(parse_values("1+x").is_err());
    }

    #[test]
    fn a_file_parses_into_commands() {
        let commands = parse_test_file(
            "# comment\nload 5m\n\thttp_requests{path=\"/foo\", job=\"a b\"}\t1+1x2\n\tup 1\n\n\
             eval instant at 10m rate(http_requests[5m])\n  expect no_warn\n  {path=\"/foo\", job=\"a b\"} 0.0033\n\n\
             eval range from 0 to 10m step 5m up\n    up 1 1 1\n\n\
             eval_fail instant at 0 foo(\n\n\
             eval instant at 1m \"x\"\n  expect string \"x\"\n\n\
             eval instant at 1m 1\n  1\n\nclear\n",
        )
        .unwrap();
        assert_eq!(commands.len(), 7);
        let Command::Load {
            interval_ms,
            series,
            ..
        } = &commands[0]
        else {
            panic!()
        };
        assert_eq!(*interval_ms, 300_000);
        assert_eq!(series[0].labels.get("job"), Some("a b"));
        assert_eq!(floats(&series[0].values), [1.0, 2.0, 3.0]);
        let Command::Eval(case) = &commands[1] else {
            panic!()
        };
        assert_eq!(
            (case.line, case.at, case.expect.warn),
            (6, EvalAt::Instant(600_000), Some(false))
        );
        assert_eq!(case.series[0].labels.get("__name__"), None);
        let Command::Eval(range) = &commands[2] else {
            panic!()
        };
        assert_eq!(
            range.at,
            EvalAt::Range {
                start: 0,
                end: 600_000,
                step: 300_000
            }
        );
        let Command::Eval(fail) = &commands[3] else {
            panic!()
        };
        assert_eq!(fail.expect.fail, Some(None));
        let Command::Eval(string) = &commands[4] else {
            panic!()
        };
        assert_eq!(string.expect.string.as_deref(), Some("x"));
        let Command::Eval(scalar) = &commands[5] else {
            panic!()
        };
        assert_eq!(scalar.expect.scalar, Some(1.0));
        assert_eq!(commands[6], Command::Clear);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_test_file("load 5m\n  up 1\n\nevaluate instant at 0 up\n").unwrap_err();
        assert_eq!(err.line, 4);
        let err = parse_test_file("load 5m\n  up{a=~\"x\"} 1\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("only `=`"), "{err}");
    }
}
