//! LogQL over the log store.
//!
//! A record is seen as Loki would hold it: its *stream labels* are
//! `service_name` (and `service`), `level` (lower case, as Loki's
//! `detected_level`), `host`, and the fields named in
//! `logs.stream_labels` (by default the labels promtail, Alloy and
//! Kubernetes set, and the OpenTelemetry resource attributes Loki
//! promotes, dots as underscores). Its *line* is the message, or, when the
//! record has other fields, the record as the JSON object it came in as
//! (`{"message": ..., "route": ..., "duration_ms": 12}`), so `| json`
//! gives those fields back and `|= "<request id>"` finds an id held in a
//! field as it would in Loki's copy of the line. A record from
//! OpenTelemetry keeps its body as the line and its attributes as
//! structured metadata (labels), as Loki's OTLP endpoint stores them.
//!
//! What the index can decide is pushed down to it: the selector's
//! matchers on the service, level and host exactly, and, for the line
//! filters `|=` before the first parser, the words the filtered text
//! surely contains (a superset, each line is then checked). Counting
//! queries over the index's own labels count from its timestamp column
//! without reading a record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sextant_model::{FieldValue, Level, LogRecord, MatchOp, Matcher};
use sextant_storage::LogReader;
use sextant_storage::logs::LogQuery;

use super::ast::{
    AggOp, BinOp, Binary, Expr, Grouping, LabelReplace, LineOp, LogExpr, MetricExpr, RangeAgg,
    RangeOp, Stage, VectorAgg,
};
use super::stages::{Labels, Pipeline, label_filter, unwrap_value};
use crate::{Error, Result};

/// The stream labels a record gets from its fields unless configured
/// otherwise: what promtail, Alloy and Kubernetes set, and the resource
/// attributes Loki promotes from OpenTelemetry.
pub const DEFAULT_STREAM_LABELS: &[&str] = &[
    "job",
    "app",
    "application",
    "env",
    "environment",
    "namespace",
    "pod",
    "container",
    "cluster",
    "filename",
    "instance",
    "component",
    "region",
    "stream",
    "source",
    "cloud.availability_zone",
    "cloud.region",
    "container.name",
    "deployment.environment",
    "deployment.environment.name",
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.cronjob.name",
    "k8s.daemonset.name",
    "k8s.deployment.name",
    "k8s.job.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.replicaset.name",
    "k8s.statefulset.name",
    "service.instance.id",
    "service.namespace",
];

/// How LogQL runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Field names that are stream labels (`logs.stream_labels`).
    pub stream_labels: Vec<String>,
    /// The most log lines one query may read (a metric query over more is
    /// refused, naming the limit).
    pub max_lines: usize,
    /// The most series a metric query may give.
    pub max_series: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stream_labels: DEFAULT_STREAM_LABELS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_lines: 20_000_000,
            max_series: 10_000,
        }
    }
}

/// Log lines of one stream (one label set), timestamps in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub labels: Labels,
    pub entries: Vec<(i64, String)>,
}

/// One series of a metric query's answer, timestamps in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// A query's answer, as Loki's `resultType`s.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `streams`
    Streams(Vec<Stream>),
    /// `matrix`
    Matrix(Vec<Series>),
    /// `vector`, at one time (ns).
    Vector(i64, Vec<(Labels, f64)>),
    /// `scalar`, at one time (ns).
    Scalar(i64, f64),
}

/// The time range and shape of a query.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// Nanoseconds, inclusive.
    pub start_ns: i64,
    /// Nanoseconds, inclusive for metric steps, exclusive for lines.
    pub end_ns: i64,
    /// Nanoseconds between metric points; zero for an instant query.
    pub step_ns: i64,
    /// The most lines a log query returns.
    pub limit: usize,
    /// Oldest first.
    pub forward: bool,
}

/// LogQL over a [`LogReader`].
pub struct Engine {
    reader: Arc<dyn LogReader>,
    options: Options,
    stream_labels: BTreeSet<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Loki's message for a log query asked as an instant query.
pub const INSTANT_LOG_QUERY: &str = "log queries are not supported as an instant query type, please change your query to a range query type";

impl Engine {
    pub fn new(reader: Arc<dyn LogReader>, options: Options) -> Self {
        let stream_labels = options.stream_labels.iter().cloned().collect();
        Self {
            reader,
            options,
            stream_labels,
        }
    }

    /// Where a live tail starts: lines appended from now on follow it.
    pub fn tail_start(&self) -> u64 {
        self.reader.log_tail_start()
    }

    /// Answers a parsed query over `range` (`step_ns` zero: at `end_ns`).
    pub fn eval(&self, expr: &Expr, range: Range) -> Result<Value> {
        match expr {
            Expr::Log(log) => {
                if range.step_ns == 0 && range.start_ns == range.end_ns {
                    return Err(Error::Parse(INSTANT_LOG_QUERY.into()));
                }
                Ok(Value::Streams(self.streams(log, range)?))
            }
            Expr::Metric(metric) => {
                let instant = range.step_ns <= 0;
                let steps: Vec<i64> = if instant {
                    vec![range.end_ns]
                } else {
                    let count = ((range.end_ns - range.start_ns) / range.step_ns) as usize + 1;
                    if count > 11_000 {
                        return Err(Error::Parse(format!(
                            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX): {count} points asked for"
                        )));
                    }
                    (0..count)
                        .map(|i| range.start_ns + i as i64 * range.step_ns)
                        .collect()
                };
                let evaluated = self.metric(metric, &steps)?;
                Ok(match evaluated {
                    Evaluated::Scalar(values) if instant => Value::Scalar(steps[0], values[0]),
                    Evaluated::Scalar(values) => Value::Matrix(vec![Series {
                        labels: Labels::new(),
                        points: steps.iter().copied().zip(values).collect(),
                    }]),
                    Evaluated::Vector(series) if instant => Value::Vector(
                        steps[0],
                        series
                            .into_iter()
                            .filter_map(|s| s.values[0].map(|v| (s.labels, v)))
                            .collect(),
                    ),
                    Evaluated::Vector(series) => Value::Matrix(
                        series
                            .into_iter()
                            .filter_map(|s| {
                                let points: Vec<(i64, f64)> = steps
                                    .iter()
                                    .zip(&s.values)
                                    .filter_map(|(t, v)| v.map(|v| (*t, v)))
                                    .collect();
                                (!points.is_empty()).then_some(Series {
                                    labels: s.labels,
                                    points,
                                })
                            })
                            .collect(),
                    ),
                })
            }
        }
    }

    /// The lines of a log query in `[start, end)`, at most `limit`, grouped
    /// by their labels after the pipeline.
    pub fn streams(&self, log: &LogExpr, range: Range) -> Result<Vec<Stream>> {
        let pipeline = compile(&log.pipeline)?;
        let mut streams: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
        let mut kept = 0;
        // A pipeline drops some lines: read more than the limit at once, so
        // one pass of the index usually answers.
        let page = if log.pipeline.is_empty() {
            range.limit
        } else {
            range.limit.saturating_mul(2)
        };
        if range.limit > 0 {
            self.scan(
                log,
                &pipeline,
                range.start_ns,
                range.end_ns,
                range.forward,
                page,
                &mut |t, line, labels| {
                    streams.entry(labels).or_default().push((t, line));
                    kept += 1;
                    kept < range.limit
                },
            )?;
        }
        Ok(streams
            .into_iter()
            .map(|(labels, entries)| Stream { labels, entries })
            .collect())
    }

    /// The label sets of the streams a selector matches in `[start, end)`
    /// (read from at most `sample` lines, newest first), with how many
    /// lines and bytes each had.
    pub fn stream_sets(
        &self,
        log: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        sample: usize,
    ) -> Result<BTreeMap<Labels, (u64, u64)>> {
        let pipeline = compile(&log.pipeline)?;
        let mut sets: BTreeMap<Labels, (u64, u64)> = BTreeMap::new();
        let mut seen = 0;
        self.scan(
            log,
            &pipeline,
            start_ns,
            end_ns,
            false,
            sample,
            &mut |_, line, labels| {
                let counts = sets.entry(labels).or_default();
                counts.0 += 1;
                counts.1 += line.len() as u64;
                seen += 1;
                seen < sample
            },
        )?;
        Ok(sets)
    }

    /// Lines appended since `after` (a [`LogReader::log_tail_start`] or the
    /// last answer's), through the pipeline, and where to go on from.
    pub fn tail(&self, log: &LogExpr, after: u64, limit: usize) -> Result<(Vec<Stream>, u64)> {
        let pipeline = compile(&log.pipeline)?;
        let (records, next) =
            self.reader
                .tail_logs(&pushdown(&log.selector, &log.pipeline), after, limit)?;
        let mut streams: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
        for record in &records {
            if let Some((t, line, labels)) = self.run(record, log, &pipeline) {
                streams.entry(labels).or_default().push((t, line));
            }
        }
        Ok((
            streams
                .into_iter()
                .map(|(labels, entries)| Stream { labels, entries })
                .collect(),
            next,
        ))
    }

    /// A record as LogQL sees it: its stream labels and its line.
    pub fn entry_of(&self, record: &LogRecord) -> (Labels, String) {
        let mut labels = Labels::new();
        let service = if record.service.is_empty() {
            "unknown_service"
        } else {
            record.service.as_str()
        };
        labels.insert("service_name".into(), service.into());
        if !record.service.is_empty() {
            labels.insert("service".into(), record.service.clone());
        }
        labels.insert("level".into(), level_label(record.level).into());
        if !record.host.is_empty() {
            labels.insert("host".into(), record.host.clone());
        }
        let mut rest = Vec::new();
        for (name, value) in &record.fields {
            // OpenTelemetry resource attributes are kept as `resource.*`.
            let label = name.strip_prefix("resource.").unwrap_or(name);
            // The field the service was read from is the service label.
            let names_service = matches!(label, "service" | "service_name" | "service.name")
                && matches!(value, FieldValue::Str(s) if *s == record.service);
            if names_service {
                continue;
            }
            if self.stream_labels.contains(label) {
                labels.insert(label_name(label), text_of(value));
            } else {
                rest.push((name, value));
            }
        }
        if rest.is_empty() {
            return (labels, record.message.clone());
        }
        // OpenTelemetry's log body is the line and its attributes are
        // structured metadata, as Loki's OTLP endpoint stores them.
        let from_otlp = rest
            .iter()
            .any(|(name, _)| name.starts_with("resource.") || *name == "otel.scope.name");
        if from_otlp {
            for (name, value) in rest {
                labels
                    .entry(label_name(name))
                    .or_insert_with(|| text_of(value));
            }
            return (labels, record.message.clone());
        }
        let mut object = serde_json::Map::new();
        if !record.message.is_empty() {
            object.insert("message".into(), record.message.clone().into());
        }
        for (name, value) in rest {
            object.insert(name.clone(), value.to_json());
        }
        (labels, serde_json::Value::Object(object).to_string())
    }

    /// Runs one record through the selector and the pipeline.
    fn run(
        &self,
        record: &LogRecord,
        log: &LogExpr,
        pipeline: &Pipeline,
    ) -> Option<(i64, String, Labels)> {
        let (mut labels, mut line) = self.entry_of(record);
        let selected = log
            .selector
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map_or("", |v| v.as_str())));
        if !selected {
            return None;
        }
        let t = record.timestamp_us.saturating_mul(1000);
        pipeline
            .process(t, &mut line, &mut labels)
            .then_some((t, line, labels))
    }

    /// Feeds each matching line of `[start, end)` in the order asked for
    /// to `each` until it answers false; pages through the store
    /// `page` records at a time.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        log: &LogExpr,
        pipeline: &Pipeline,
        start_ns: i64,
        end_ns: i64,
        forward: bool,
        page: usize,
        each: &mut dyn FnMut(i64, String, Labels) -> bool,
    ) -> Result<()> {
        let text = pushdown(&log.selector, &log.pipeline);
        let mut query = LogQuery {
            text,
            start_us: start_ns.div_euclid(1000),
            end_us: end_ns.div_euclid(1000) + i64::from(end_ns.rem_euclid(1000) != 0),
            limit: page.clamp(100, 10_000),
            ascending: forward,
            after: None,
        };
        let mut read = 0usize;
        loop {
            let hits = self.reader.search_logs(&query)?;
            for record in &hits.hits {
                read += 1;
                let Some((t, line, labels)) = self.run(record, log, pipeline) else {
                    continue;
                };
                if t < start_ns || t >= end_ns {
                    continue;
                }
                if !each(t, line, labels) {
                    return Ok(());
                }
            }
            if read > self.options.max_lines {
                return Err(Error::Execution(format!(
                    "the query would read more than {} log lines; narrow its selector or time range",
                    self.options.max_lines
                )));
            }
            match hits.next {
                Some(next) => {
                    query.after = Some(next);
                    query.limit = (query.limit * 2).min(10_000);
                }
                None => return Ok(()),
            }
        }
    }

    fn metric(&self, expr: &MetricExpr, steps: &[i64]) -> Result<Evaluated> {
        match expr {
            MetricExpr::Literal(v) => Ok(Evaluated::Scalar(vec![*v; steps.len()])),
            MetricExpr::VectorOf(v) => Ok(Evaluated::Vector(vec![StepSeries {
                labels: Labels::new(),
                values: vec![Some(*v); steps.len()],
            }])),
            MetricExpr::Range(agg) => Ok(Evaluated::Vector(self.range_agg(agg, steps, None)?)),
            MetricExpr::Vector(agg) => self.vector_agg(agg, steps),
            MetricExpr::Binary(binary) => self.binary(binary, steps),
            MetricExpr::LabelReplace(replace) => self.label_replace(replace, steps),
        }
    }

    fn vector_agg(&self, agg: &VectorAgg, steps: &[i64]) -> Result<Evaluated> {
        // Counting by labels the index holds needs no record read.
        let inner = match (&*agg.inner, agg.op) {
            (MetricExpr::Range(range), AggOp::Sum) => {
                self.range_agg(range, steps, agg.grouping.as_ref())?
            }
            (inner, _) => match self.metric(inner, steps)? {
                Evaluated::Vector(series) => series,
                Evaluated::Scalar(_) => {
                    return Err(Error::Parse(format!(
                        "parse error : unexpected scalar argument to {}, expected a vector",
                        agg_name(agg.op)
                    )));
                }
            },
        };
        Ok(Evaluated::Vector(aggregate(agg, inner, steps.len())))
    }

    /// Evaluates a range aggregation at every step; `outer` is the
    /// grouping of a `sum` around it, which lets a count be made from the
    /// index's timestamp column when the grouping labels are the index's.
    fn range_agg(
        &self,
        agg: &RangeAgg,
        steps: &[i64],
        outer: Option<&Grouping>,
    ) -> Result<Vec<StepSeries>> {
        let range_ns = agg.range.range_ms.saturating_mul(1_000_000);
        let offset_ns = agg.range.offset_ms.saturating_mul(1_000_000);
        if let Some(series) = self.counted_by_index(agg, steps, range_ns, offset_ns, outer)? {
            return Ok(series);
        }
        let log = &agg.range.log;
        let pipeline = compile(&log.pipeline)?;
        let first = steps[0] - offset_ns - range_ns;
        let last = steps[steps.len() - 1] - offset_ns;
        let mut samples: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        let mut error: Option<Error> = None;
        let max_series = self.options.max_series;
        self.scan(
            log,
            &pipeline,
            first,
            last,
            true,
            10_000,
            &mut |t, line, mut labels| {
                let value = match &agg.range.unwrap {
                    None => match agg.op {
                        RangeOp::BytesOverTime | RangeOp::BytesRate => line.len() as f64,
                        _ => 1.0,
                    },
                    Some(unwrap) => {
                        let value = unwrap_value(&mut labels, &unwrap.label, unwrap.conversion);
                        if !unwrap
                            .post_filters
                            .iter()
                            .all(|f| label_filter(f, &mut labels))
                        {
                            return true;
                        }
                        // Loki keeps the unwrapped label only when grouped by it.
                        if !agg.grouping.as_ref().is_some_and(|g| {
                            !g.without && g.labels.contains(&unwrap.label)
                        }) {
                            labels.remove(&unwrap.label);
                        }
                        match value {
                            Some(v) => v,
                            None if labels.contains_key("__error__") => 0.0,
                            None => return true,
                        }
                    }
                };
                if let Some(kind) = labels.get("__error__").filter(|e| !e.is_empty()) {
                    error = Some(Error::Execution(format!(
                        "pipeline error: '{kind}' for series: '{}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )",
                        labels_text(&labels)
                    )));
                    return false;
                }
                labels.remove("__error__");
                labels.remove("__error_details__");
                let labels = match &agg.grouping {
                    Some(grouping) => group_labels(&labels, grouping),
                    None => labels,
                };
                let known = samples.len();
                let entry = samples.entry(labels);
                if known >= max_series && matches!(entry, std::collections::hash_map::Entry::Vacant(_)) {
                    error = Some(too_many_series(max_series));
                    return false;
                }
                entry.or_default().push((t, value));
                true
            },
        )?;
        if let Some(error) = error {
            return Err(error);
        }
        if agg.op == RangeOp::AbsentOverTime {
            return Ok(absent(agg, &samples, steps, range_ns, offset_ns));
        }
        let mut out: Vec<StepSeries> = samples
            .into_iter()
            .map(|(labels, mut points)| {
                points.sort_by_key(|(t, _)| *t);
                let values = windows(&points, steps, range_ns, offset_ns, |window| {
                    over_time(agg.op, agg.param, window, range_ns)
                });
                StepSeries { labels, values }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// `count_over_time`/`rate` of a selector the index decides exactly,
    /// with no pipeline that changes lines or labels, summed by labels the
    /// index holds: counted per bucket from the timestamp column.
    fn counted_by_index(
        &self,
        agg: &RangeAgg,
        steps: &[i64],
        range_ns: i64,
        offset_ns: i64,
        outer: Option<&Grouping>,
    ) -> Result<Option<Vec<StepSeries>>> {
        let Some(grouping) = outer else {
            return Ok(None);
        };
        if !matches!(agg.op, RangeOp::CountOverTime | RangeOp::Rate)
            || agg.range.unwrap.is_some()
            || agg.grouping.is_some()
            || grouping.without
            || !agg.range.log.pipeline.iter().all(counts_alike)
            || !agg
                .range
                .log
                .selector
                .iter()
                .all(|m| exact_pushdown(m).is_some())
        {
            return Ok(None);
        }
        // Labels fixed by the selector, and whether the grouping needs the level.
        let fixed: BTreeMap<&str, &str> = agg
            .range
            .log
            .selector
            .iter()
            .filter(|m| m.op == MatchOp::Equal)
            .map(|m| (m.name.as_str(), m.value.as_str()))
            .collect();
        let mut by_level = false;
        for name in &grouping.labels {
            match name.as_str() {
                "level" => by_level = true,
                "detected_level" => {}
                other if fixed.contains_key(other) => {}
                _ => return Ok(None),
            }
        }
        let step_ns = if steps.len() > 1 {
            steps[1] - steps[0]
        } else {
            range_ns
        };
        // Buckets from the first window's start that every window starts
        // and ends on, in microseconds.
        let bucket_us = gcd(step_ns, range_ns) / 1000;
        if step_ns % 1000 != 0
            || range_ns % 1000 != 0
            || offset_ns % 1000 != 0
            || steps[0] % 1000 != 0
            || bucket_us <= 0
        {
            return Ok(None);
        }
        let start_us = (steps[0] - offset_ns - range_ns) / 1000;
        let end_us = (steps[steps.len() - 1] - offset_ns) / 1000;
        if (end_us - start_us) / bucket_us > 1_000_000 {
            return Ok(None);
        }
        let base = pushdown(&agg.range.log.selector, &[]);
        let levels: Vec<Option<Level>> = if by_level {
            [
                Level::Trace,
                Level::Debug,
                Level::Info,
                Level::Warn,
                Level::Error,
            ]
            .into_iter()
            .map(Some)
            .collect()
        } else {
            vec![None]
        };
        let mut out = Vec::new();
        for level in levels {
            let text = match level {
                Some(level) if base.is_empty() => format!("level:\"{}\"", level.as_str()),
                Some(level) => format!("{base} AND level:\"{}\"", level.as_str()),
                None => base.clone(),
            };
            let Some(buckets) = self.reader.log_histogram_from_start(
                &LogQuery {
                    text,
                    start_us,
                    end_us,
                    limit: 0,
                    ascending: true,
                    after: None,
                },
                bucket_us,
            )?
            else {
                return Ok(None);
            };
            if buckets.iter().all(|(_, n)| *n == 0) {
                continue;
            }
            let points: Vec<(i64, f64)> = buckets
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(t, n)| (t * 1000, n as f64))
                .collect();
            let values = windows(&points, steps, range_ns, offset_ns, |window| {
                let count: f64 = window.iter().map(|(_, n)| n).sum();
                Some(if agg.op == RangeOp::Rate {
                    count / (range_ns as f64 / 1e9)
                } else {
                    count
                })
            });
            let mut labels = Labels::new();
            for name in &grouping.labels {
                if name == "level" {
                    if let Some(level) = level {
                        labels.insert(name.clone(), level_label(level).into());
                    }
                } else if let Some(value) = fixed.get(name.as_str()) {
                    labels.insert(name.clone(), (*value).to_owned());
                }
            }
            out.push(StepSeries { labels, values });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Some(out))
    }

    fn binary(&self, binary: &Binary, steps: &[i64]) -> Result<Evaluated> {
        let lhs = self.metric(&binary.lhs, steps)?;
        let rhs = self.metric(&binary.rhs, steps)?;
        binary_op(binary, lhs, rhs, steps.len())
    }

    fn label_replace(&self, replace: &LabelReplace, steps: &[i64]) -> Result<Evaluated> {
        let regex = regex::Regex::new(&format!("^(?s:{})$", replace.regex)).map_err(|e| {
            Error::Parse(format!(
                "invalid regular expression in label_replace(): {e}"
            ))
        })?;
        let series = match self.metric(&replace.inner, steps)? {
            Evaluated::Vector(series) => series,
            scalar => return Ok(scalar),
        };
        Ok(Evaluated::Vector(
            series
                .into_iter()
                .map(|mut s| {
                    let source = s.labels.get(&replace.src).cloned().unwrap_or_default();
                    if let Some(captures) = regex.captures(&source) {
                        let mut value = String::new();
                        captures.expand(&replace.replacement, &mut value);
                        if value.is_empty() {
                            s.labels.remove(&replace.dst);
                        } else {
                            s.labels.insert(replace.dst.clone(), value);
                        }
                    }
                    s
                })
                .collect(),
        ))
    }
}

/// A metric sub-expression's values at every step.
enum Evaluated {
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
}

struct StepSeries {
    labels: Labels,
    values: Vec<Option<f64>>,
}

fn compile(stages: &[Stage]) -> Result<Pipeline> {
    Pipeline::new(stages).map_err(Error::Parse)
}

/// A stage that changes no count: dropping or keeping labels.
fn counts_alike(stage: &Stage) -> bool {
    matches!(stage, Stage::Drop(sels) if sels.iter().all(|s| matches!(s, super::ast::LabelSel::Name(n) if n.starts_with("__error"))))
}

fn too_many_series(limit: usize) -> Error {
    Error::Execution(format!(
        "maximum of series ({limit}) reached for a single query"
    ))
}

fn agg_name(op: AggOp) -> &'static str {
    match op {
        AggOp::Sum => "sum",
        AggOp::Avg => "avg",
        AggOp::Min => "min",
        AggOp::Max => "max",
        AggOp::Count => "count",
        AggOp::Stddev => "stddev",
        AggOp::Stdvar => "stdvar",
        AggOp::Topk => "topk",
        AggOp::Bottomk => "bottomk",
        AggOp::Sort => "sort",
        AggOp::SortDesc => "sort_desc",
    }
}

/// `level` as Loki's `detected_level` writes it.
fn level_label(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// A field name as a label name: anything but letters, digits and `_` as `_`.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn text_of(value: &FieldValue) -> String {
    match value {
        FieldValue::Str(s) => s.clone(),
        other => other.to_json().to_string(),
    }
}

/// `{a="b", c="d"}`.
pub fn labels_text(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::from(v.as_str())))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// The index clause deciding a matcher exactly, when there is one.
fn exact_pushdown(m: &Matcher) -> Option<String> {
    let field = match m.name.as_str() {
        "service_name" | "service" => "service",
        "host" => "host",
        "level" => "level",
        _ => return None,
    };
    let stored = |value: &str| -> Option<String> {
        if value.contains(['"', '\\']) || value.chars().any(char::is_control) {
            return None;
        }
        if field == "level" {
            let level = Level::parse(value)?;
            return (level_label(level) == value).then(|| level.as_str().to_owned());
        }
        Some(value.to_owned())
    };
    match m.op {
        MatchOp::Equal
            if field == "service" && m.name == "service_name" && m.value == "unknown_service" =>
        {
            None
        }
        MatchOp::Equal => match stored(&m.value) {
            Some(v) => Some(format!("{field}:\"{v}\"")),
            // A level no record has: nothing matches.
            None if field == "level" => Some("level:\"NONE\"".into()),
            None => None,
        },
        MatchOp::NotEqual if field != "level" => {
            stored(&m.value).map(|v| format!("-{field}:\"{v}\""))
        }
        MatchOp::Regex if m.matches_empty() => Some(String::new()),
        MatchOp::Regex if m.value == ".+" || m.value == ".*" => Some(String::new()),
        MatchOp::Regex => {
            let options = m.set_matches()?;
            let clauses: Option<Vec<String>> = options
                .iter()
                .map(|o| stored(o).map(|v| format!("{field}:\"{v}\"")))
                .collect();
            let clauses = clauses?;
            Some(if clauses.len() == 1 {
                clauses[0].clone()
            } else {
                format!("({})", clauses.join(" OR "))
            })
        }
        _ => None,
    }
}

/// What the index can decide of a selector and the line filters before
/// the first parser, as the store's query text: every record the query
/// keeps matches it.
pub fn pushdown(selector: &[Matcher], pipeline: &[Stage]) -> String {
    let mut clauses: Vec<String> = selector
        .iter()
        .filter_map(exact_pushdown)
        .filter(|c| !c.is_empty())
        .collect();
    for stage in pipeline {
        match stage {
            Stage::LineFilter(filter) if filter.op == LineOp::Contains => {
                let alternatives: Option<Vec<String>> =
                    filter.values.iter().map(|v| words_clause(v)).collect();
                if let Some(alternatives) = alternatives {
                    clauses.push(if alternatives.len() == 1 {
                        alternatives[0].clone()
                    } else {
                        format!("({})", alternatives.join(" OR "))
                    });
                }
            }
            Stage::LineFilter(_) => {}
            // After a parser or a format, the line or labels may differ
            // from what the index holds.
            _ => break,
        }
    }
    // A clause made of negations only needs something to subtract from.
    if !clauses.is_empty() && clauses.iter().all(|c| c.starts_with('-')) {
        clauses.insert(0, "*".into());
    }
    clauses.join(" AND ")
}

/// The index clause for a line holding `needle`: the words the needle
/// holds whole (not its first or last when they may be parts of longer
/// words), as a phrase in the message or a field's value, or the needle
/// as a whole request id. `None` when no word is surely whole, or the
/// needle may span the JSON a line is written in (quotes, colons...).
fn words_clause(needle: &str) -> Option<String> {
    if needle.contains(['"', ':', ',', '{', '}', '[', ']', '\\'])
        || needle.chars().any(char::is_control)
    {
        return None;
    }
    let mut words: Vec<&str> = Vec::new();
    let mut start = None;
    for (i, c) in needle.char_indices() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            words.push(&needle[s..i]);
        }
    }
    let ends_in_word = start.is_some();
    if let Some(s) = start {
        words.push(&needle[s..]);
    }
    let mut inner: &[&str] = &words;
    if needle.starts_with(char::is_alphanumeric) && !inner.is_empty() {
        inner = &inner[1..];
    }
    if ends_in_word && !inner.is_empty() {
        inner = &inner[..inner.len() - 1];
    }
    // Tokens longer than 40 bytes are not indexed.
    let inner: Vec<String> = inner
        .iter()
        .filter(|w| w.len() <= 40)
        .map(|w| w.to_lowercase())
        .collect();
    if inner.is_empty() {
        return None;
    }
    let words = inner.join(" ");
    let id = needle.trim();
    let mut options = vec![format!("message:\"{words}\""), format!("all:\"{words}\"")];
    if !id.contains(char::is_whitespace) && !id.is_empty() {
        options.push(format!("corr:\"{id}\""));
    }
    Some(format!("({})", options.join(" OR ")))
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The value of `aggregate` over the points in `[t - offset - range, t - offset)`
/// for every step `t` (points sorted by time).
fn windows(
    points: &[(i64, f64)],
    steps: &[i64],
    range_ns: i64,
    offset_ns: i64,
    aggregate: impl Fn(&[(i64, f64)]) -> Option<f64>,
) -> Vec<Option<f64>> {
    let (mut lo, mut hi) = (0, 0);
    steps
        .iter()
        .map(|t| {
            let end = t - offset_ns;
            let start = end - range_ns;
            while lo < points.len() && points[lo].0 < start {
                lo += 1;
            }
            hi = hi.max(lo);
            while hi < points.len() && points[hi].0 < end {
                hi += 1;
            }
            if lo == hi {
                None
            } else {
                aggregate(&points[lo..hi])
            }
        })
        .collect()
}

fn over_time(op: RangeOp, param: Option<f64>, window: &[(i64, f64)], range_ns: i64) -> Option<f64> {
    let seconds = range_ns as f64 / 1e9;
    let values = window.iter().map(|(_, v)| *v);
    let n = window.len() as f64;
    Some(match op {
        RangeOp::CountOverTime => n,
        RangeOp::Rate => values.sum::<f64>() / seconds,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => values.sum(),
        RangeOp::BytesRate => values.sum::<f64>() / seconds,
        RangeOp::AbsentOverTime => return None,
        RangeOp::AvgOverTime => values.sum::<f64>() / n,
        RangeOp::MinOverTime => values.fold(f64::INFINITY, f64::min),
        RangeOp::MaxOverTime => values.fold(f64::NEG_INFINITY, f64::max),
        RangeOp::StddevOverTime => variance(values).sqrt(),
        RangeOp::StdvarOverTime => variance(values),
        RangeOp::QuantileOverTime => {
            let mut sorted: Vec<f64> = values.collect();
            sorted.sort_by(f64::total_cmp);
            quantile(param.unwrap_or(0.5), &sorted)
        }
        RangeOp::FirstOverTime => window[0].1,
        RangeOp::LastOverTime => window[window.len() - 1].1,
        RangeOp::RateCounter => {
            let mut increase = 0.0;
            for pair in window.windows(2) {
                let (a, b) = (pair[0].1, pair[1].1);
                increase += if b < a { b } else { b - a };
            }
            increase / seconds
        }
    })
}

fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in values {
        n += 1.0;
        let delta = v - mean;
        mean += delta / n;
        m2 += delta * (v - mean);
    }
    if n == 0.0 { f64::NAN } else { m2 / n }
}

/// Prometheus's quantile over sorted values.
fn quantile(q: f64, sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let rank = q * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(sorted.len() - 1);
    let weight = rank - rank.floor();
    sorted[lower] * (1.0 - weight) + sorted[upper] * weight
}

fn absent(
    agg: &RangeAgg,
    samples: &HashMap<Labels, Vec<(i64, f64)>>,
    steps: &[i64],
    range_ns: i64,
    offset_ns: i64,
) -> Vec<StepSeries> {
    let mut all: Vec<(i64, f64)> = samples.values().flatten().copied().collect();
    all.sort_by_key(|(t, _)| *t);
    let present = windows(&all, steps, range_ns, offset_ns, |_| Some(1.0));
    let values: Vec<Option<f64>> = present
        .into_iter()
        .map(|p| if p.is_some() { None } else { Some(1.0) })
        .collect();
    if values.iter().all(Option::is_none) {
        return Vec::new();
    }
    let labels = agg
        .range
        .log
        .selector
        .iter()
        .filter(|m| m.op == MatchOp::Equal)
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    vec![StepSeries { labels, values }]
}

fn group_labels(labels: &Labels, grouping: &Grouping) -> Labels {
    if grouping.without {
        labels
            .iter()
            .filter(|(k, _)| !grouping.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    } else {
        grouping
            .labels
            .iter()
            .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.clone())))
            .collect()
    }
}

fn aggregate(agg: &VectorAgg, series: Vec<StepSeries>, steps: usize) -> Vec<StepSeries> {
    match agg.op {
        AggOp::Sort | AggOp::SortDesc => {
            let mut series = series;
            let key = |s: &StepSeries| {
                s.values
                    .iter()
                    .rev()
                    .flatten()
                    .next()
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            series.sort_by(|a, b| {
                let order = key(a).total_cmp(&key(b));
                if agg.op == AggOp::SortDesc {
                    order.reverse()
                } else {
                    order
                }
            });
            return series;
        }
        AggOp::Topk | AggOp::Bottomk => return top(agg, series, steps),
        _ => {}
    }
    let grouping = agg.grouping.clone().unwrap_or_default();
    let mut groups: BTreeMap<Labels, Vec<StepSeries>> = BTreeMap::new();
    for s in series {
        groups
            .entry(group_labels(&s.labels, &grouping))
            .or_default()
            .push(s);
    }
    groups
        .into_iter()
        .map(|(labels, members)| {
            let values = (0..steps)
                .map(|i| {
                    let present: Vec<f64> = members.iter().filter_map(|s| s.values[i]).collect();
                    if present.is_empty() {
                        return None;
                    }
                    let n = present.len() as f64;
                    Some(match agg.op {
                        AggOp::Sum => present.iter().sum(),
                        AggOp::Avg => present.iter().sum::<f64>() / n,
                        AggOp::Min => present.iter().copied().fold(f64::INFINITY, f64::min),
                        AggOp::Max => present.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        AggOp::Count => n,
                        AggOp::Stddev => variance(present.into_iter()).sqrt(),
                        AggOp::Stdvar => variance(present.into_iter()),
                        _ => unreachable!("handled above"),
                    })
                })
                .collect();
            StepSeries { labels, values }
        })
        .collect()
}

fn top(agg: &VectorAgg, series: Vec<StepSeries>, steps: usize) -> Vec<StepSeries> {
    let k = agg.param.unwrap_or(1.0).max(0.0) as usize;
    let grouping = agg.grouping.clone().unwrap_or_default();
    let mut keep = vec![vec![false; steps]; series.len()];
    let mut groups: BTreeMap<Labels, Vec<usize>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        groups
            .entry(group_labels(&s.labels, &grouping))
            .or_default()
            .push(i);
    }
    for members in groups.values() {
        #[allow(clippy::needless_range_loop)]
        for step in 0..steps {
            let mut present: Vec<(usize, f64)> = members
                .iter()
                .filter_map(|&i| series[i].values[step].map(|v| (i, v)))
                .collect();
            present.sort_by(|a, b| {
                let order = a.1.total_cmp(&b.1);
                if agg.op == AggOp::Topk {
                    order.reverse()
                } else {
                    order
                }
            });
            for (i, _) in present.into_iter().take(k) {
                keep[i][step] = true;
            }
        }
    }
    series
        .into_iter()
        .zip(keep)
        .filter_map(|(mut s, keep)| {
            for (v, k) in s.values.iter_mut().zip(keep) {
                if !k {
                    *v = None;
                }
            }
            s.values.iter().any(Option::is_some).then_some(s)
        })
        .collect()
}

fn arithmetic(op: BinOp, a: f64, b: f64) -> Option<f64> {
    Some(match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Eq => f64::from(a == b),
        BinOp::Ne => f64::from(a != b),
        BinOp::Gt => f64::from(a > b),
        BinOp::Ge => f64::from(a >= b),
        BinOp::Lt => f64::from(a < b),
        BinOp::Le => f64::from(a <= b),
        BinOp::And | BinOp::Or | BinOp::Unless => return None,
    })
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le
    )
}

/// `a op b` at one step: the value it gives (`None` drops the sample).
fn apply(op: BinOp, return_bool: bool, a: f64, b: f64, keep: f64) -> Option<f64> {
    let v = arithmetic(op, a, b)?;
    if is_comparison(op) && !return_bool {
        (v == 1.0).then_some(keep)
    } else {
        Some(v)
    }
}

fn match_key(labels: &Labels, binary: &Binary) -> Labels {
    match &binary.matching {
        Some(m) if m.on => labels
            .iter()
            .filter(|(k, _)| m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(m) => labels
            .iter()
            .filter(|(k, _)| !m.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => labels.clone(),
    }
}

fn binary_op(binary: &Binary, lhs: Evaluated, rhs: Evaluated, steps: usize) -> Result<Evaluated> {
    let op = binary.op;
    if matches!(op, BinOp::And | BinOp::Or | BinOp::Unless) {
        let (Evaluated::Vector(lhs), Evaluated::Vector(rhs)) = (lhs, rhs) else {
            return Err(Error::Parse(
                "set operators (and, or, unless) are only allowed between vectors".into(),
            ));
        };
        return Ok(Evaluated::Vector(set_op(binary, lhs, rhs, steps)));
    }
    Ok(match (lhs, rhs) {
        (Evaluated::Scalar(a), Evaluated::Scalar(b)) => Evaluated::Scalar(
            a.iter()
                .zip(&b)
                .map(|(a, b)| arithmetic(op, *a, *b).unwrap_or(f64::NAN))
                .collect(),
        ),
        (Evaluated::Vector(series), Evaluated::Scalar(b)) => Evaluated::Vector(
            series
                .into_iter()
                .map(|mut s| {
                    for (v, b) in s.values.iter_mut().zip(&b) {
                        *v = v.and_then(|a| apply(op, binary.return_bool, a, *b, a));
                    }
                    s
                })
                .filter(|s| s.values.iter().any(Option::is_some))
                .collect(),
        ),
        (Evaluated::Scalar(a), Evaluated::Vector(series)) => Evaluated::Vector(
            series
                .into_iter()
                .map(|mut s| {
                    for (v, a) in s.values.iter_mut().zip(&a) {
                        *v = v.and_then(|b| apply(op, binary.return_bool, *a, b, b));
                    }
                    s
                })
                .filter(|s| s.values.iter().any(Option::is_some))
                .collect(),
        ),
        (Evaluated::Vector(lhs), Evaluated::Vector(rhs)) => {
            let group = binary.matching.as_ref().and_then(|m| m.group.as_ref());
            // The "one" side is indexed by its matching labels.
            let (many, one, many_is_left) = match group {
                Some(g) if !g.left => (rhs, lhs, false),
                _ => (lhs, rhs, true),
            };
            let mut index: HashMap<Labels, usize> = HashMap::new();
            for (i, s) in one.iter().enumerate() {
                if let Some(&j) = index.get(&match_key(&s.labels, binary)) {
                    let overlap =
                        (0..steps).any(|k| s.values[k].is_some() && one[j].values[k].is_some());
                    if overlap {
                        return Err(Error::Execution(format!(
                            "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                            labels_text(&match_key(&s.labels, binary)),
                            if many_is_left { "right" } else { "left" },
                            labels_text(&s.labels),
                            labels_text(&one[j].labels),
                        )));
                    }
                    continue;
                }
                index.insert(match_key(&s.labels, binary), i);
            }
            let mut out: Vec<StepSeries> = Vec::new();
            let mut seen: HashMap<Labels, usize> = HashMap::new();
            for s in many {
                let key = match_key(&s.labels, binary);
                let Some(&j) = index.get(&key) else { continue };
                let other = &one[j];
                // Prometheus's result labels: the "many" side's with a
                // group, else the matching labels (all, `on`'s, or all but
                // `ignoring`'s).
                let mut labels = if group.is_some() {
                    s.labels.clone()
                } else {
                    key
                };
                if let Some(g) = group {
                    for name in &g.include {
                        match other.labels.get(name) {
                            Some(v) => labels.insert(name.clone(), v.clone()),
                            None => labels.remove(name),
                        };
                    }
                }
                let values: Vec<Option<f64>> = (0..steps)
                    .map(|i| {
                        let (a, b) = if many_is_left {
                            (s.values[i]?, other.values[i]?)
                        } else {
                            (other.values[i]?, s.values[i]?)
                        };
                        apply(op, binary.return_bool, a, b, a)
                    })
                    .collect();
                if values.iter().all(Option::is_none) {
                    continue;
                }
                if let Some(&k) = seen.get(&labels) {
                    // Two matches landing on one label set at one step.
                    for (i, v) in values.iter().enumerate() {
                        if v.is_some() && out[k].values[i].is_some() {
                            return Err(Error::Execution(
                                "found duplicate series for the match group; many-to-many matching not allowed: matching labels must be unique on one side".into(),
                            ));
                        }
                        if v.is_some() {
                            out[k].values[i] = *v;
                        }
                    }
                    continue;
                }
                seen.insert(labels.clone(), out.len());
                out.push(StepSeries { labels, values });
            }
            Evaluated::Vector(out)
        }
    })
}

fn set_op(
    binary: &Binary,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    steps: usize,
) -> Vec<StepSeries> {
    let key = |s: &StepSeries| match &binary.matching {
        Some(_) => match_key(&s.labels, binary),
        None => s.labels.clone(),
    };
    let mut right: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (i, s) in rhs.iter().enumerate() {
        right.entry(key(s)).or_default().push(i);
    }
    let present_right = |k: &Labels, step: usize| {
        right
            .get(k)
            .is_some_and(|is| is.iter().any(|&i| rhs[i].values[step].is_some()))
    };
    match binary.op {
        BinOp::And | BinOp::Unless => lhs
            .into_iter()
            .filter_map(|mut s| {
                let k = key(&s);
                for step in 0..steps {
                    let there = present_right(&k, step);
                    if (binary.op == BinOp::And) != there {
                        s.values[step] = None;
                    }
                }
                s.values.iter().any(Option::is_some).then_some(s)
            })
            .collect(),
        _ => {
            let mut left_keys: Vec<Vec<bool>> = Vec::new();
            let mut keys: HashMap<Labels, usize> = HashMap::new();
            for s in &lhs {
                let k = key(s);
                let i = *keys.entry(k).or_insert_with(|| {
                    left_keys.push(vec![false; steps]);
                    left_keys.len() - 1
                });
                for (seen, v) in left_keys[i].iter_mut().zip(&s.values) {
                    *seen |= v.is_some();
                }
            }
            let mut out = lhs;
            for mut s in rhs {
                if let Some(&i) = keys.get(&key(&s)) {
                    for (v, seen) in s.values.iter_mut().zip(&left_keys[i]) {
                        if *seen {
                            *v = None;
                        }
                    }
                }
                if s.values.iter().any(Option::is_some) {
                    out.push(s);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::parse::parse;
    use sextant_storage::logs::{LogStore, LogStoreConfig};

    const S: i64 = 1_000_000_000;
    /// 2026-11-28T00:00:00Z, in seconds.
    const T0: i64 = 1_795_824_000;

    fn record(
        t_s: i64,
        service: &str,
        level: Level,
        message: &str,
        fields: &[(&str, FieldValue)],
    ) -> LogRecord {
        LogRecord {
            timestamp_us: t_s * 1_000_000,
            service: service.to_owned(),
            level,
            host: "h1".to_owned(),
            message: message.to_owned(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// A store with the MySQL-ish lines of Loki's metric query examples.
    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), LogStoreConfig::default()).unwrap();
        let job = |j: &str| ("job", FieldValue::Str(j.to_owned()));
        let records = vec![
            // mysql: 4 lines in the first minute, 2 of them errors.
            record(T0 + 1, "mysql", Level::Info, "query ok", &[job("mysql")]),
            record(
                T0 + 10,
                "mysql",
                Level::Error,
                "error: timeout after 5s",
                &[job("mysql")],
            ),
            record(
                T0 + 20,
                "mysql",
                Level::Error,
                "error: deadlock",
                &[job("mysql")],
            ),
            record(T0 + 30, "mysql", Level::Info, "query ok", &[job("mysql")]),
            // mysql: one line in the second minute.
            record(T0 + 70, "mysql", Level::Info, "query ok", &[job("mysql")]),
            // nginx: JSON-ish records with request times.
            record(
                T0 + 5,
                "nginx",
                Level::Info,
                "GET /a",
                &[
                    job("nginx"),
                    ("path", FieldValue::Str("/a".into())),
                    ("request_time", FieldValue::Float(0.5)),
                ],
            ),
            record(
                T0 + 15,
                "nginx",
                Level::Info,
                "GET /a",
                &[
                    job("nginx"),
                    ("path", FieldValue::Str("/a".into())),
                    ("request_time", FieldValue::Float(1.5)),
                ],
            ),
            record(
                T0 + 25,
                "nginx",
                Level::Info,
                "GET /b",
                &[
                    job("nginx"),
                    ("path", FieldValue::Str("/b".into())),
                    ("request_time", FieldValue::Float(0.25)),
                ],
            ),
            record(
                T0 + 35,
                "nginx",
                Level::Warn,
                "GET /a",
                &[
                    job("nginx"),
                    ("path", FieldValue::Str("/a".into())),
                    ("request_time", FieldValue::Float(2.0)),
                ],
            ),
        ];
        store.append(&records).unwrap();
        store.commit().unwrap();
        let reader: Arc<dyn LogReader> = Arc::new(store);
        (dir, Engine::new(reader, Options::default()))
    }

    fn instant(engine: &Engine, query: &str, t_s: i64) -> Vec<(String, f64)> {
        let expr = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let range = Range {
            start_ns: t_s * S,
            end_ns: t_s * S,
            step_ns: 0,
            limit: 100,
            forward: false,
        };
        match engine
            .eval(&expr, range)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
        {
            Value::Vector(_, samples) => {
                let mut out: Vec<(String, f64)> = samples
                    .into_iter()
                    .map(|(l, v)| (labels_text(&l), v))
                    .collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                out
            }
            Value::Scalar(_, v) => vec![(String::new(), v)],
            other => panic!("{query}: {other:?}"),
        }
    }

    fn range(
        engine: &Engine,
        query: &str,
        start_s: i64,
        end_s: i64,
        step_s: i64,
    ) -> Vec<(String, Vec<(i64, f64)>)> {
        let expr = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let range = Range {
            start_ns: start_s * S,
            end_ns: end_s * S,
            step_ns: step_s * S,
            limit: 100,
            forward: false,
        };
        match engine
            .eval(&expr, range)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
        {
            Value::Matrix(series) => series
                .into_iter()
                .map(|s| {
                    (
                        labels_text(&s.labels),
                        s.points.into_iter().map(|(t, v)| (t / S - T0, v)).collect(),
                    )
                })
                .collect(),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn counts_and_rates_over_windows() {
        let (_dir, engine) = engine();
        // "count_over_time({job="mysql"}[5m])": every mysql line of the window.
        assert_eq!(
            instant(&engine, r#"count_over_time({job="mysql"}[5m])"#, T0 + 120),
            [(r#"{host="h1", job="mysql", level="error", service="mysql", service_name="mysql"}"#.to_owned(), 2.0),
             (r#"{host="h1", job="mysql", level="info", service="mysql", service_name="mysql"}"#.to_owned(), 3.0)]
        );
        // "sum by (host) (rate({job="mysql"} |= "error" != "timeout" [1m]))"
        assert_eq!(
            instant(
                &engine,
                r#"sum by (host) (rate({job="mysql"} |= "error" != "timeout" [1m]))"#,
                T0 + 60
            ),
            [(r#"{host="h1"}"#.to_owned(), 1.0 / 60.0)]
        );
        // Per minute, by level, from the index's counts and from the lines alike.
        let by_index = range(
            &engine,
            r#"sum by (level) (count_over_time({service_name="mysql"}[1m]))"#,
            T0 + 60,
            T0 + 120,
            60,
        );
        let by_lines = range(
            &engine,
            r#"sum by (level) (count_over_time({service_name="mysql"} |= "" [1m]))"#,
            T0 + 60,
            T0 + 120,
            60,
        );
        assert_eq!(
            by_index,
            [
                (r#"{level="error"}"#.to_owned(), vec![(60, 2.0)]),
                (r#"{level="info"}"#.to_owned(), vec![(60, 2.0), (120, 1.0)])
            ]
        );
        assert_eq!(by_index, by_lines);
        // bytes_over_time: "query ok" is 8 bytes.
        assert_eq!(
            instant(
                &engine,
                r#"sum(bytes_over_time({job="mysql", level="info"}[1m]))"#,
                T0 + 60
            ),
            [("{}".to_owned(), 16.0)]
        );
        // offset moves the window back.
        assert_eq!(
            instant(
                &engine,
                r#"sum(count_over_time({job="mysql"}[1m] offset 1m))"#,
                T0 + 120
            ),
            [("{}".to_owned(), 4.0)]
        );
        // absent_over_time answers 1 only where nothing is.
        assert_eq!(
            instant(&engine, r#"absent_over_time({job="mysql"}[1m])"#, T0 + 60),
            []
        );
        assert_eq!(
            instant(&engine, r#"absent_over_time({job="nobody"}[1m])"#, T0 + 60),
            [(r#"{job="nobody"}"#.to_owned(), 1.0)]
        );
    }

    #[test]
    fn unwrapped_values_aggregate_by_pipeline_labels() {
        let (_dir, engine) = engine();
        // "quantile_over_time(0.99, {...} | json | __error__ = "" | unwrap request_time [1m]) by (path)"
        let q = instant(
            &engine,
            r#"quantile_over_time(0.5, {job="nginx"} | json | __error__ = "" | unwrap request_time [1m]) by (path)"#,
            T0 + 60,
        );
        assert_eq!(
            q,
            [
                (r#"{path="/a"}"#.to_owned(), 1.5),
                (r#"{path="/b"}"#.to_owned(), 0.25)
            ]
        );
        let avg = instant(
            &engine,
            r#"avg_over_time({job="nginx"} | json | unwrap request_time [1m]) by (path)"#,
            T0 + 60,
        );
        assert_eq!(
            avg,
            [
                (r#"{path="/a"}"#.to_owned(), 4.0 / 3.0),
                (r#"{path="/b"}"#.to_owned(), 0.25)
            ]
        );
        let sum = instant(
            &engine,
            r#"sum(sum_over_time({job="nginx"} | json | unwrap request_time [1m]))"#,
            T0 + 60,
        );
        assert_eq!(sum, [("{}".to_owned(), 4.25)]);
        // The unwrapped label leaves the series' labels.
        let max = instant(
            &engine,
            r#"max by (path) (max_over_time({job="nginx"} | json | unwrap request_time [1m]))"#,
            T0 + 60,
        );
        assert_eq!(
            max,
            [
                (r#"{path="/a"}"#.to_owned(), 2.0),
                (r#"{path="/b"}"#.to_owned(), 0.25)
            ]
        );
        // A label that is no number is an error unless filtered out.
        let expr = parse(r#"sum(sum_over_time({job="nginx"} | json | unwrap path [1m]))"#).unwrap();
        let err = engine
            .eval(
                &expr,
                Range {
                    start_ns: (T0 + 60) * S,
                    end_ns: (T0 + 60) * S,
                    step_ns: 0,
                    limit: 100,
                    forward: false,
                },
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("SampleExtractionErr"), "{err}");
        let skipped = instant(
            &engine,
            r#"sum(sum_over_time({job="nginx"} | json | unwrap path | __error__="" [1m]))"#,
            T0 + 60,
        );
        assert_eq!(skipped, []);
    }

    #[test]
    fn aggregations_and_binary_operators() {
        let (_dir, engine) = engine();
        let top = instant(
            &engine,
            r#"topk(1, sum by (service_name) (count_over_time({service_name=~"mysql|nginx"}[2m])))"#,
            T0 + 120,
        );
        assert_eq!(top, [(r#"{service_name="mysql"}"#.to_owned(), 5.0)]);
        let bottom = instant(
            &engine,
            r#"bottomk(1, sum by (service_name) (count_over_time({service_name=~".+"}[2m])))"#,
            T0 + 120,
        );
        assert_eq!(bottom, [(r#"{service_name="nginx"}"#.to_owned(), 4.0)]);
        let ratio = instant(
            &engine,
            r#"sum by (job) (count_over_time({job="mysql"} |= "error" [1m])) / sum by (job) (count_over_time({job="mysql"}[1m]))"#,
            T0 + 60,
        );
        assert_eq!(ratio, [(r#"{job="mysql"}"#.to_owned(), 0.5)]);
        let filtered = instant(
            &engine,
            r#"sum by (service_name) (count_over_time({service_name=~".+"}[2m])) > 4"#,
            T0 + 120,
        );
        assert_eq!(filtered, [(r#"{service_name="mysql"}"#.to_owned(), 5.0)]);
        let as_bool = instant(
            &engine,
            r#"sum by (service_name) (count_over_time({service_name=~".+"}[2m])) > bool 4"#,
            T0 + 120,
        );
        assert_eq!(
            as_bool,
            [
                (r#"{service_name="mysql"}"#.to_owned(), 1.0),
                (r#"{service_name="nginx"}"#.to_owned(), 0.0)
            ]
        );
        assert_eq!(
            instant(&engine, "vector(1)+vector(1)", T0),
            [("{}".to_owned(), 2.0)]
        );
        assert_eq!(instant(&engine, "2 * 3 + 1", T0), [(String::new(), 7.0)]);
        let replaced = instant(
            &engine,
            r#"label_replace(sum by (service_name) (count_over_time({service_name="nginx"}[1m])), "svc", "$1-x", "service_name", "(ng).*")"#,
            T0 + 60,
        );
        assert_eq!(
            replaced,
            [(r#"{service_name="nginx", svc="ng-x"}"#.to_owned(), 4.0)]
        );
        let grouped = instant(
            &engine,
            r#"sum by (level, service_name) (count_over_time({service_name=~".+"}[1m])) / on (service_name) group_left sum by (service_name) (count_over_time({service_name=~".+"}[1m]))"#,
            T0 + 60,
        );
        assert_eq!(
            grouped,
            [
                (r#"{level="error", service_name="mysql"}"#.to_owned(), 0.5),
                (r#"{level="info", service_name="mysql"}"#.to_owned(), 0.5),
                (r#"{level="info", service_name="nginx"}"#.to_owned(), 0.75),
                (r#"{level="warn", service_name="nginx"}"#.to_owned(), 0.25),
            ]
        );
    }

    #[test]
    fn log_queries_keep_the_limit_order_and_labels() {
        let (_dir, engine) = engine();
        let expr = parse(r#"{job="nginx"} | json | request_time > 1 | line_format "{{.path}} took {{.request_time}}""#).unwrap();
        let range = Range {
            start_ns: T0 * S,
            end_ns: (T0 + 60) * S,
            step_ns: S,
            limit: 100,
            forward: true,
        };
        let Value::Streams(streams) = engine.eval(&expr, range).unwrap() else {
            panic!()
        };
        let lines: Vec<&str> = streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|(_, l)| l.as_str()))
            .collect();
        assert_eq!(lines, ["/a took 1.5", "/a took 2.0"], "{streams:?}");
        // Backward with a limit gives the newest.
        let expr = parse(r#"{job="mysql"}"#).unwrap();
        let range = Range {
            start_ns: T0 * S,
            end_ns: (T0 + 600) * S,
            step_ns: S,
            limit: 2,
            forward: false,
        };
        let Value::Streams(streams) = engine.eval(&expr, range).unwrap() else {
            panic!()
        };
        let mut times: Vec<i64> = streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|(t, _)| t / S - T0))
            .collect();
        times.sort();
        assert_eq!(times, [30, 70]);
        // An instant log query is refused as Loki refuses it.
        let range = Range {
            start_ns: T0 * S,
            end_ns: T0 * S,
            step_ns: 0,
            limit: 2,
            forward: false,
        };
        assert!(
            engine
                .eval(&expr, range)
                .unwrap_err()
                .to_string()
                .contains("instant query type")
        );
    }

    #[test]
    fn pushdown_is_a_superset_of_what_the_line_filter_keeps() {
        let m = |name: &str, op, value: &str| Matcher::new(name, op, value).unwrap();
        let contains = |v: &str| {
            Stage::LineFilter(super::super::ast::LineFilter {
                op: LineOp::Contains,
                values: vec![v.to_owned()],
            })
        };
        assert_eq!(
            pushdown(
                &[
                    m("service_name", MatchOp::Equal, "orders"),
                    m("level", MatchOp::Equal, "error")
                ],
                &[]
            ),
            r#"service:"orders" AND level:"ERROR""#
        );
        assert_eq!(
            pushdown(&[m("level", MatchOp::Regex, "error|warn")], &[]),
            r#"(level:"ERROR" OR level:"WARN")"#
        );
        assert_eq!(
            pushdown(&[m("service", MatchOp::NotEqual, "a")], &[]),
            r#"* AND -service:"a""#
        );
        // Only words the needle holds whole: "rder" may end a longer word.
        assert_eq!(
            pushdown(&[], &[contains("rder 17 failed")]),
            r#"(message:"17" OR all:"17")"#
        );
        assert_eq!(
            pushdown(&[], &[contains("5f0c3a2e-9b1d-4c7a")]),
            r#"(message:"9b1d" OR all:"9b1d" OR corr:"5f0c3a2e-9b1d-4c7a")"#
        );
        assert_eq!(pushdown(&[], &[contains("abc")]), "");
        assert_eq!(pushdown(&[], &[contains("\"status\":500")]), "");
    }
}
