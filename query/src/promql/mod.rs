//! PromQL: parsing (the `promql-parser` crate) and evaluation over the metrics
//! store with Prometheus's semantics.
//!
//! Every expression is evaluated over a grid of steps (`start..=end` every
//! `step`; an instant query is a grid of one step). Values flow between nodes
//! as whole series, not step by step: a series' labels are fixed across steps,
//! so grouping, matching and name handling are decided once per series and
//! the per-step work is arithmetic on sorted point lists. Range selectors and
//! subqueries stay unevaluated windows ([`eval::RangeVector`]) until the
//! function that consumes them walks each series' windows in one pass.
//!
//! Windows follow Prometheus 3: a range `[5m]` at `t` holds samples in
//! `(t-5m, t]`, and an instant selector looks back over `(t-lookback, t]`.

mod aggregate;
mod binary;
mod eval;
mod functions;
mod gosort;
mod histograms;
mod nesting;
pub mod results_cache;
mod stream;

pub use functions::{parse_go_float, write_sample_value};

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use promql_parser::parser::Expr;
use sextant_model::histogram::FloatHistogram;
use sextant_model::{Labels, depth};
use sextant_storage::MetricsReader;

use crate::{Error, Result};

/// Limits and defaults of evaluation.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta_ms: i64,
    /// The step of a subquery written without one (Prometheus: the global
    /// evaluation interval, 1m by default).
    pub default_subquery_step_ms: i64,
    /// Most samples and points one query may hold at once.
    pub max_samples: usize,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Prometheus's `promql-delayed-name-removal` feature: operations that
    /// drop `__name__` only mark a series, and the names go at the end of
    /// the query, so `label_replace(rate(x[5m]), "n", "$1", "__name__", "(.+)")`
    /// still reads the name. Off by default, as in Prometheus 3.
    pub delayed_name_removal: bool,
    /// Whether an aggregation of a range function over a selector
    /// (`sum(rate(x[5m]))`) folds each series' values straight into its
    /// group (see `promql::stream`); off, the per-series result is built
    /// first. The answers are the same to the bit; on by default, off for
    /// comparing the two (`promql_engine` in `bench/`).
    pub stream_aggregations: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            default_subquery_step_ms: 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            delayed_name_removal: false,
            stream_aggregations: true,
        }
    }
}

/// A point of a series: milliseconds and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

/// A time and a value, as a [`Point`] or as storage's sample holds them:
/// what lets a range function read decoded samples where they lie,
/// without a copy into points.
pub(crate) trait TimedValue: Copy {
    /// Milliseconds since the epoch.
    fn t(self) -> i64;
    fn v(self) -> f64;
}

impl TimedValue for Point {
    #[inline(always)]
    fn t(self) -> i64 {
        self.t
    }

    #[inline(always)]
    fn v(self) -> f64 {
        self.v
    }
}

impl TimedValue for sextant_model::Sample {
    #[inline(always)]
    fn t(self) -> i64 {
        self.timestamp_ms
    }

    #[inline(always)]
    fn v(self) -> f64 {
        self.value
    }
}

/// A native histogram point of a series: milliseconds and histogram.
/// Histograms are shared (`Arc`) between the steps that select the same sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HPoint {
    pub t: i64,
    pub h: Arc<FloatHistogram>,
}

/// A series with its points, sorted by time. A series may have float points,
/// histogram points, or both (at different times).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
    /// Native histogram points, sorted by time (Prometheus's `histograms`).
    pub histograms: Vec<HPoint>,
}

/// A label set as Prometheus prints it in messages (Go's `labels.Labels`
/// `String()`): `{__name__="up", job="a"}`, the metric name an ordinary label
/// and each value quoted as Go's `strconv.Quote` quotes it.
pub(crate) fn prometheus_labels_string(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&label.name);
        out.push('=');
        go_quote(&label.value, &mut out);
    }
    out.push('}');
    out
}

/// Go's `strconv.Quote`.
fn go_quote(value: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            ' '..='~' => out.push(c),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if go_is_print(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// Go's `unicode.IsPrint` for a non-ASCII character: letters, marks,
/// numbers, punctuation and symbols. Rust's `escape_debug` leaves exactly
/// those unescaped (it excludes the same categories: controls, formats,
/// surrogates, private use, unassigned and separators), except that it also
/// escapes a grapheme extender at the start of a string, hence the prefix.
fn go_is_print(c: char) -> bool {
    let mut probe = String::from("a");
    probe.push(c);
    probe.escape_debug().count() == probe.chars().count()
}

impl From<eval::Series> for Series {
    fn from(s: eval::Series) -> Self {
        Self {
            labels: s.labels,
            points: s.points,
            histograms: s.hpoints,
        }
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub t: i64,
    /// The float value (0 when the sample is a histogram).
    pub v: f64,
    /// The native histogram, when the sample is one (then `v` means nothing).
    pub histogram: Option<Arc<FloatHistogram>>,
}

/// What a query returns, in the Prometheus API's four shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Scalar {
        t: i64,
        v: f64,
    },
    String {
        t: i64,
        v: String,
    },
    /// In the engine's order (meaningful after `sort`, `topk`, ...).
    Vector(Vec<InstantSample>),
    /// Sorted by labels for range queries.
    Matrix(Vec<Series>),
}

impl QueryValue {
    /// The API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Scalar { .. } => "scalar",
            Self::String { .. } => "string",
            Self::Vector(_) => "vector",
            Self::Matrix(_) => "matrix",
        }
    }
}

/// Warnings and infos a query produced, worded as Prometheus words them
/// (without the expression position Prometheus appends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    /// The answer lacks data a store could not read just now (cluster
    /// mode: a partition briefly without an owner); `warnings` say which.
    pub partial: bool,
}

/// Parses a PromQL expression; the error reads like Prometheus's.
///
/// Text longer than `query.max_query_bytes` or nested deeper than
/// `query.max_depth` is refused before the parser sees it (see `nesting`),
/// so every tree this returns is within the depth budget that the threads
/// running queries have stack for.
pub fn parse(query: &str) -> Result<Expr> {
    if query.trim().is_empty() {
        return Err(Error::Parse("no expression found in input".into()));
    }
    depth::check_length(query).map_err(|e| Error::Parse(e.to_string()))?;
    depth::check_depth(nesting::depth_bound(query)).map_err(|e| Error::Parse(e.to_string()))?;
    // The parser is a dependency; a panic in it must not take a request down.
    std::panic::catch_unwind(|| promql_parser::parser::parse(query))
        .unwrap_or_else(|_| Err("the expression could not be parsed".into()))
        .map_err(Error::Parse)
}

/// Every selector's matcher sets in `query` (a selector with `or` gives several).
pub fn selectors(query: &str) -> Result<Vec<Vec<sextant_model::Matcher>>> {
    fn walk(e: &Expr, out: &mut Vec<Vec<sextant_model::Matcher>>) -> Result<()> {
        match e {
            Expr::VectorSelector(vs) => out.extend(eval::selector_matchers(vs)?),
            Expr::MatrixSelector(ms) => out.extend(eval::selector_matchers(&ms.vs)?),
            Expr::Aggregate(a) => {
                walk(&a.expr, out)?;
                if let Some(p) = &a.param {
                    walk(p, out)?;
                }
            }
            Expr::Unary(u) => walk(&u.expr, out)?,
            Expr::Binary(b) => {
                walk(&b.lhs, out)?;
                walk(&b.rhs, out)?;
            }
            Expr::Paren(p) => walk(&p.expr, out)?,
            Expr::Subquery(s) => walk(&s.expr, out)?,
            Expr::Call(c) => {
                for a in &c.args.args {
                    walk(a, out)?;
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&parse(query)?, &mut out)?;
    Ok(out)
}

/// Evaluates PromQL over a metrics reader.
#[derive(Clone)]
pub struct Engine {
    reader: Arc<dyn MetricsReader>,
    options: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(reader: Arc<dyn MetricsReader>, options: EngineOptions) -> Self {
        Self { reader, options }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `t` (ms).
    pub fn instant_query(&self, query: &str, t: i64) -> Result<QueryValue> {
        Ok(self.instant_query_annotated(query, t)?.0)
    }

    /// Evaluates `query` at every `step` from `start` to `end` (all ms).
    pub fn range_query(&self, query: &str, start: i64, end: i64, step: i64) -> Result<QueryValue> {
        Ok(self.range_query_annotated(query, start, end, step)?.0)
    }

    /// As [`Engine::instant_query`], with the query's warnings and infos.
    pub fn instant_query_annotated(
        &self,
        query: &str,
        t: i64,
    ) -> Result<(QueryValue, Annotations)> {
        self.instant_query_expr(&parse(query)?, t)
    }

    /// As [`Engine::instant_query_annotated`], for an expression [`parse`] gave.
    pub fn instant_query_expr(&self, expr: &Expr, t: i64) -> Result<(QueryValue, Annotations)> {
        let grid = eval::Grid {
            start: t,
            end: t,
            step: 1,
        };
        let mut ev = self.evaluator(t, t, 0);
        let value = ev.eval(expr, grid)?;
        let annotations = ev.annotations();
        let value = match value {
            eval::Value::Scalar(v) => QueryValue::Scalar { t, v: v[0] },
            eval::Value::String(s) => QueryValue::String { t, v: s },
            eval::Value::Vector(series) => {
                let series = ev.finish(series)?;
                eval::check_unique_labels(series.iter().map(|s| &s.labels))?;
                QueryValue::Vector(
                    series
                        .into_iter()
                        .filter_map(|s| {
                            if let Some(p) = s.points.first() {
                                return Some(InstantSample {
                                    labels: s.labels,
                                    t,
                                    v: p.v,
                                    histogram: None,
                                });
                            }
                            let h = s.hpoints.into_iter().next()?;
                            Some(InstantSample {
                                labels: s.labels,
                                t,
                                v: 0.0,
                                histogram: Some(h.h),
                            })
                        })
                        .collect(),
                )
            }
            eval::Value::Matrix(rv) => {
                let mut out = Vec::new();
                let (lo, hi) = rv.window.window_bounds(t);
                for s in rv.series {
                    let points: Vec<Point> = s
                        .points
                        .iter()
                        .filter(|p| p.t > lo && p.t <= hi)
                        .copied()
                        .collect();
                    let hpoints: Vec<HPoint> = s
                        .hpoints
                        .iter()
                        .filter(|p| p.t > lo && p.t <= hi)
                        .cloned()
                        .collect();
                    if !points.is_empty() || !hpoints.is_empty() {
                        out.push(eval::Series {
                            points,
                            hpoints,
                            ..s
                        });
                    }
                }
                let mut out: Vec<Series> = ev.finish(out)?.into_iter().map(Series::from).collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                QueryValue::Matrix(out)
            }
        };
        Ok((value, annotations))
    }

    /// As [`Engine::range_query`], with the query's warnings and infos.
    pub fn range_query_annotated(
        &self,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<(QueryValue, Annotations)> {
        self.range_query_expr(&parse(query)?, start, end, step)
    }

    /// As [`Engine::range_query_annotated`], for an expression [`parse`] gave.
    pub fn range_query_expr(
        &self,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<(QueryValue, Annotations)> {
        if step <= 0 {
            return Err(Error::Execution(
                "zero or negative query resolution step widths are not accepted".into(),
            ));
        }
        let grid = eval::Grid { start, end, step };
        let mut ev = self.evaluator(start, end, step);
        let value = ev.eval(expr, grid)?;
        let mut series = match value {
            eval::Value::Scalar(values) => vec![Series {
                labels: Labels::default(),
                points: values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Point { t: grid.ts(i), v })
                    .collect(),
                histograms: Vec::new(),
            }],
            eval::Value::Vector(series) => {
                ev.finish(series)?.into_iter().map(Series::from).collect()
            }
            eval::Value::Matrix(_) => {
                return Err(Error::Execution(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector".into(),
                ));
            }
            eval::Value::String(_) => {
                return Err(Error::Execution(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector".into(),
                ));
            }
        };
        series.retain(|s| !s.points.is_empty() || !s.histograms.is_empty());
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        eval::check_unique_labels(series.iter().map(|s| &s.labels))?;
        Ok((QueryValue::Matrix(series), ev.annotations()))
    }

    fn evaluator(&self, start: i64, end: i64, step: i64) -> eval::Evaluator<'_> {
        // What an earlier read on this thread noted is not this query's.
        let _stale = sextant_storage::partial::take();
        eval::Evaluator {
            reader: &*self.reader,
            options: &self.options,
            query_start: start,
            query_end: end,
            query_step: step,
            deadline: Instant::now() + self.options.timeout,
            held: 0,
            notes: Default::default(),
            partial: Default::default(),
            stream_aggregations: self.options.stream_aggregations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_panics_become_parse_errors() {
        // promql-parser panics converting this step into a Duration.
        let err = parse("rate(x[5m:3111111111111111111111111111111111111])").unwrap_err();
        assert!(matches!(err, Error::Parse(_)), "{err}");
        assert!(parse("").is_err());
        assert!(parse("sum(rate(x[5m]))").is_ok());
    }

    #[test]
    fn label_sets_print_as_go_prints_them() {
        let labels = Labels::from_pairs([
            ("__name__", "up"),
            ("path", "/a\"b\\c"),
            ("ctl", "\t\n\u{1}\u{7f}"),
            ("text", "é😀"),
            ("hidden", "\u{200b}\u{a0}\u{e000}\u{1d173}"),
        ]);
        assert_eq!(
            prometheus_labels_string(&labels),
            r#"{__name__="up", ctl="\t\n\x01\x7f", hidden="\u200b\u00a0\ue000\U0001d173", path="/a\"b\\c", text="é😀"}"#
        );
        assert_eq!(prometheus_labels_string(&Labels::default()), "{}");
    }
}
