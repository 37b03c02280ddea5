//! The Prometheus protobuf exposition format
//! (`application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;
//! encoding=delimited`): varint-length-delimited `MetricFamily` messages,
//! the only exposition that carries native histograms.
//!
//! [`parse`] is the pure parser: bytes in, the samples the scrape loop
//! writes out, as Prometheus's `textparse.ProtobufParser` presents them:
//!
//! - counters, gauges and untyped metrics: one sample under the family's
//!   name; a counter's exemplar goes with it;
//! - summaries: `_count`, `_sum`, then one sample per quantile (its
//!   `quantile` label written as OpenMetrics writes floats: `0.5`, `1.0`);
//! - histograms with native parts (spans, a zero threshold or a zero
//!   count): one native histogram under the family's name (float counts
//!   when `sample_count_float` or `zero_count_float` is set; a gauge
//!   histogram's hint is "gauge"), with the exemplars that carry a
//!   timestamp, compacted as Prometheus compacts it; the classic series
//!   too with [`Options::keep_classic`];
//! - other histograms (or every histogram when native histograms are not
//!   scraped): classic `_count`, `_sum` and `_bucket` series (a `+Inf`
//!   bucket added when the exposition has none), each bucket with its
//!   exemplar; or, with [`Options::convert_to_nhcb`], one native histogram
//!   with custom buckets (schema -53) instead, the classic series kept only
//!   with [`Options::keep_classic`].
//!
//! A timestamp of 0 means none (proto3 cannot tell them apart). Start
//! (created) timestamps are read past: no zero samples are owed for them.
//!
//! Bad input never fails the whole body where the rest can be read: a
//! family that does not decode, or a histogram that is not valid (checked
//! as Prometheus's TSDB checks it), is skipped and named in
//! [`Exposition::errors`]; only a broken length prefix ends the reading.
//! The parser does not recurse and its output is bounded by the input
//! (see [`MAX_EXPANSION`]).

use sextant_model::Labels;
use sextant_model::histogram::{
    ClassicHistogram, CounterResetHint, FloatHistogram, Histogram, HistogramValue, Span,
    format_go_g,
};

use crate::wire::{
    Fields, Value, next_delimited, push_doubles, push_sint64s, span, utf8, zigzag32,
};

/// The messages of `io/prometheus/client/metrics.proto`, for exposing
/// (tests, and the fuzz target's comparison with prost).
pub mod proto {
    /// `MetricFamily`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricFamily {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub help: String,
        /// 0 counter, 1 gauge, 2 summary, 3 untyped, 4 histogram, 5 gauge histogram.
        #[prost(int32, tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    /// `Metric`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "2")]
        pub gauge: Option<Gauge>,
        #[prost(message, optional, tag = "3")]
        pub counter: Option<Counter>,
        #[prost(message, optional, tag = "4")]
        pub summary: Option<Summary>,
        #[prost(message, optional, tag = "5")]
        pub untyped: Option<Gauge>,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
        /// Milliseconds since the epoch; 0 for none.
        #[prost(int64, tag = "6")]
        pub timestamp_ms: i64,
    }

    /// `LabelPair`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `Gauge` (and `Untyped`, alike).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        #[prost(double, tag = "1")]
        pub value: f64,
    }

    /// `Counter`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Counter {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(message, optional, tag = "2")]
        pub exemplar: Option<Exemplar>,
        #[prost(message, optional, tag = "3")]
        pub start_timestamp: Option<Timestamp>,
    }

    /// `Quantile`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Quantile {
        #[prost(double, tag = "1")]
        pub quantile: f64,
        #[prost(double, tag = "2")]
        pub value: f64,
    }

    /// `Summary`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub quantile: Vec<Quantile>,
        #[prost(message, optional, tag = "4")]
        pub start_timestamp: Option<Timestamp>,
    }

    /// `Histogram`: classic buckets, native parts, or both.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        /// Overrides `sample_count` when above 0 (a float histogram).
        #[prost(double, tag = "4")]
        pub sample_count_float: f64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(message, repeated, tag = "3")]
        pub bucket: Vec<Bucket>,
        #[prost(message, optional, tag = "15")]
        pub start_timestamp: Option<Timestamp>,
        #[prost(sint32, tag = "5")]
        pub schema: i32,
        #[prost(double, tag = "6")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "7")]
        pub zero_count: u64,
        #[prost(double, tag = "8")]
        pub zero_count_float: f64,
        #[prost(message, repeated, tag = "9")]
        pub negative_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "10")]
        pub negative_delta: Vec<i64>,
        #[prost(double, repeated, tag = "11")]
        pub negative_count: Vec<f64>,
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "13")]
        pub positive_delta: Vec<i64>,
        #[prost(double, repeated, tag = "14")]
        pub positive_count: Vec<f64>,
        #[prost(message, repeated, tag = "16")]
        pub exemplars: Vec<Exemplar>,
    }

    /// `Bucket` of a classic histogram.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Bucket {
        #[prost(uint64, tag = "1")]
        pub cumulative_count: u64,
        #[prost(double, tag = "4")]
        pub cumulative_count_float: f64,
        #[prost(double, tag = "2")]
        pub upper_bound: f64,
        #[prost(message, optional, tag = "3")]
        pub exemplar: Option<Exemplar>,
    }

    /// `BucketSpan`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }

    /// `Exemplar`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(message, optional, tag = "3")]
        pub timestamp: Option<Timestamp>,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// Families as an exposition body: each length-delimited.
    pub fn encode(families: &[MetricFamily]) -> Vec<u8> {
        use prost::Message as _;
        let mut out = Vec::new();
        for family in families {
            family
                .encode_length_delimited(&mut out)
                .expect("a Vec grows as needed");
        }
        out
    }
}

/// The media type Prometheus asks for with `PrometheusProto`.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/// How many bytes of labels the samples of one body may hold together, per
/// byte of the body (a histogram's labels are written once and repeated for
/// each of its buckets): a hostile body cannot make gigabytes of labels.
pub const MAX_EXPANSION: usize = 64;

/// Whether a `Content-Type` announces this format.
pub fn is_protobuf(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        return false;
    }
    // The proto parameter, if given, must name MetricFamily.
    parts
        .filter_map(|p| p.split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("proto"))
        .all(|(_, v)| v.trim().trim_matches('"') == "io.prometheus.client.MetricFamily")
}

/// What to make of histograms (the scrape config's native histogram keys).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Read native histograms (`scrape_native_histograms`); without it
    /// every histogram is read as a classic one.
    pub native_histograms: bool,
    /// Also write the classic series of a histogram that is read as a
    /// native one (`always_scrape_classic_histograms`).
    pub keep_classic: bool,
    /// Read classic histograms as native histograms with custom buckets
    /// (`convert_classic_histograms_to_nhcb`).
    pub convert_to_nhcb: bool,
}

/// A metric family's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    /// Prometheus's name for the type: `counter`, `gauge`, `summary`,
    /// `histogram`, `gaugehistogram`, `unknown`.
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// A sample's value.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Float(f64),
    Histogram(HistogramValue),
}

/// An exemplar as exposed; its time, when it has one, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoExemplar {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// One sample of the exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoSample {
    /// The metric name, with `_count`, `_sum`, `_bucket` where they apply.
    pub name: String,
    /// The labels as exposed (in order, `__name__` not among them), then
    /// `le` or `quantile` where they apply.
    pub labels: Vec<(String, String)>,
    pub value: SampleValue,
    /// Milliseconds since the epoch, when the exposition gives one.
    pub timestamp_ms: Option<i64>,
    pub exemplars: Vec<ProtoExemplar>,
}

impl ProtoSample {
    /// The name and labels as one string, unique per series of a body: a
    /// key for the scrape cache (`name{a="1",le="0.5"}`).
    pub fn key(&self) -> String {
        let mut key = String::with_capacity(
            self.name.len()
                + 2
                + self
                    .labels
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 4)
                    .sum::<usize>(),
        );
        key.push_str(&self.name);
        key.push('{');
        for (n, v) in &self.labels {
            key.push_str(n);
            key.push_str("=\"");
            for c in v.chars() {
                if matches!(c, '"' | '\\') {
                    key.push('\\');
                }
                key.push(c);
            }
            key.push_str("\",");
        }
        key.push('}');
        key
    }
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Families that had metrics, in order.
    pub families: Vec<Family>,
    pub samples: Vec<ProtoSample>,
    /// What was skipped, each naming its family (`metric family 3 "rpc":
    /// ...`); the rest was read.
    pub errors: Vec<String>,
}

/// Reads a whole body. See the module docs for what becomes of each type.
pub fn parse(body: &[u8], options: Options) -> Exposition {
    let mut out = Exposition::default();
    let mut rest = body;
    let budget = body.len().saturating_mul(MAX_EXPANSION).max(1 << 20);
    let mut reader = Reader {
        options,
        out: &mut out,
        label_bytes: 0,
        budget,
    };
    let mut number = 0usize;
    loop {
        let message = match next_delimited(&mut rest) {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(e) => {
                reader.out.errors.push(format!(
                    "after metric family {number}: {e} (the rest of the body was not read)"
                ));
                break;
            }
        };
        number += 1;
        let samples_before = reader.out.samples.len();
        match reader.family(message) {
            Ok(()) => {}
            Err(FamilyError::Skip(e)) => {
                reader.out.samples.truncate(samples_before);
                reader
                    .out
                    .errors
                    .push(format!("metric family {number}: {e}"));
            }
            Err(FamilyError::Budget) => {
                reader.out.samples.truncate(samples_before);
                reader.out.errors.push(format!(
                    "metric family {number}: the body's samples would hold more than {budget} bytes of labels ({MAX_EXPANSION} per byte of the body; the rest of the body was not read)"
                ));
                break;
            }
        }
    }
    out
}

enum FamilyError {
    /// The family is skipped, the rest read.
    Skip(String),
    /// The labels budget is spent: reading stops.
    Budget,
}

impl From<String> for FamilyError {
    fn from(e: String) -> Self {
        Self::Skip(e)
    }
}

impl From<&'static str> for FamilyError {
    fn from(e: &'static str) -> Self {
        Self::Skip(e.to_owned())
    }
}

struct Reader<'o> {
    options: Options,
    out: &'o mut Exposition,
    label_bytes: usize,
    budget: usize,
}

/// The metric types of `io.prometheus.client.MetricType`.
const COUNTER: i32 = 0;
const GAUGE: i32 = 1;
const SUMMARY: i32 = 2;
const UNTYPED: i32 = 3;
const HISTOGRAM: i32 = 4;
const GAUGE_HISTOGRAM: i32 = 5;

impl Reader<'_> {
    fn family(&mut self, raw: &[u8]) -> Result<(), FamilyError> {
        let (mut name, mut help, mut unit, mut kind) = ("", "", "", COUNTER);
        let mut metrics: Vec<&[u8]> = Vec::new();
        let mut fields = Fields::new(raw);
        while let Some((field, value)) = fields.next()? {
            match (field, value) {
                (1, Value::Bytes(text)) => name = utf8(text, "the family's name")?,
                (2, Value::Bytes(text)) => help = utf8(text, "the family's help")?,
                (3, Value::Varint(v)) => kind = v as i32,
                (4, Value::Bytes(metric)) => metrics.push(metric),
                (5, Value::Bytes(text)) => unit = utf8(text, "the family's unit")?,
                (1..=5, _) => {
                    return Err(
                        format!("field {field} of MetricFamily has the wrong wire type").into(),
                    );
                }
                _ => {}
            }
        }
        // Empty families are skipped, as Prometheus skips them.
        if metrics.is_empty() {
            return Ok(());
        }
        if name.is_empty() {
            return Err("a metric family without a name".into());
        }
        let type_name = match kind {
            COUNTER => "counter",
            GAUGE => "gauge",
            SUMMARY => "summary",
            UNTYPED => "unknown",
            HISTOGRAM => "histogram",
            GAUGE_HISTOGRAM => "gaugehistogram",
            other => return Err(format!("{name:?}: unknown metric type {other}").into()),
        };
        let mut errors = Vec::new();
        for (i, metric) in metrics.into_iter().enumerate() {
            match self.metric(name, kind, metric) {
                Ok(()) => {}
                Err(FamilyError::Skip(e)) => errors.push(format!("{name:?} metric {i}: {e}")),
                Err(FamilyError::Budget) => return Err(FamilyError::Budget),
            }
        }
        self.out.families.push(Family {
            name: name.to_owned(),
            kind: type_name,
            help: help.to_owned(),
            unit: unit.to_owned(),
        });
        // A bad metric is skipped; the family's other metrics are kept.
        if let Some(first) = errors.first() {
            let more = errors.len() - 1;
            let tail = if more > 0 {
                format!(" (and {more} more in this family)")
            } else {
                String::new()
            };
            self.out
                .errors
                .push(format!("metric family {name:?}: {first}{tail}"));
        }
        Ok(())
    }

    /// Reads one `Metric` of a family of type `kind` into samples.
    fn metric(&mut self, family: &str, kind: i32, raw: &[u8]) -> Result<(), FamilyError> {
        let mut labels: Vec<(String, String)> = Vec::new();
        let mut timestamp = 0i64;
        let mut part: Option<(u32, &[u8])> = None;
        let mut fields = Fields::new(raw);
        while let Some((field, value)) = fields.next()? {
            match (field, value) {
                (1, Value::Bytes(pair)) => labels.push(label_pair(pair)?),
                (2 | 3 | 4 | 5 | 7, Value::Bytes(bytes)) => {
                    // A message field sent twice would be merged by prost;
                    // exposition libraries never do, so the last one wins.
                    part = Some((field, bytes));
                }
                (6, Value::Varint(v)) => timestamp = v as i64,
                (1..=7, _) => {
                    return Err(format!("field {field} of Metric has the wrong wire type").into());
                }
                _ => {}
            }
        }
        let timestamp_ms = (timestamp != 0).then_some(timestamp);
        let emit = |this: &mut Self,
                    name: String,
                    extra: Option<(&str, String)>,
                    value: SampleValue,
                    exemplars: Vec<ProtoExemplar>|
         -> Result<(), FamilyError> {
            let mut labels = labels.clone();
            if let Some((n, v)) = extra {
                labels.push((n.to_owned(), v));
            }
            this.label_bytes +=
                name.len() + labels.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
            if this.label_bytes > this.budget {
                return Err(FamilyError::Budget);
            }
            this.out.samples.push(ProtoSample {
                name,
                labels,
                value,
                timestamp_ms,
                exemplars,
            });
            Ok(())
        };
        // The value message of the family's type; another type's is ignored.
        let wanted = match kind {
            COUNTER => 3,
            GAUGE => 2,
            SUMMARY => 4,
            UNTYPED => 5,
            _ => 7,
        };
        let body = part
            .filter(|(f, _)| *f == wanted)
            .map_or(&[][..], |(_, b)| b);
        match kind {
            COUNTER | GAUGE | UNTYPED => {
                let (value, exemplar) = simple_value(body, kind == COUNTER)?;
                emit(
                    self,
                    family.to_owned(),
                    None,
                    SampleValue::Float(value),
                    exemplar.into_iter().collect(),
                )
            }
            SUMMARY => {
                let summary = read_summary(body)?;
                let f = SampleValue::Float;
                emit(
                    self,
                    format!("{family}_count"),
                    None,
                    f(summary.count as f64),
                    vec![],
                )?;
                emit(self, format!("{family}_sum"), None, f(summary.sum), vec![])?;
                for (q, v) in summary.quantiles {
                    emit(
                        self,
                        family.to_owned(),
                        Some(("quantile", om_float(q))),
                        f(v),
                        vec![],
                    )?;
                }
                Ok(())
            }
            _ => {
                let h = read_histogram(body)?;
                let gauge = kind == GAUGE_HISTOGRAM;
                let native = self.options.native_histograms && h.is_native();
                let mut classic = !native || self.options.keep_classic && !h.buckets.is_empty();
                if native {
                    let value = h
                        .native(gauge)
                        .map_err(|e| format!("native histogram: {e}"))?;
                    emit(
                        self,
                        family.to_owned(),
                        None,
                        SampleValue::Histogram(value),
                        h.native_exemplars(),
                    )?;
                } else if self.options.convert_to_nhcb {
                    let value = h
                        .nhcb(gauge)
                        .map_err(|e| format!("converting to NHCB: {e}"))?;
                    // Exemplars with the NHCB as with a native histogram.
                    emit(
                        self,
                        family.to_owned(),
                        None,
                        SampleValue::Histogram(value),
                        h.native_exemplars(),
                    )?;
                    classic = self.options.keep_classic;
                }
                if classic {
                    let f = SampleValue::Float;
                    let count = h.count();
                    emit(self, format!("{family}_count"), None, f(count), vec![])?;
                    emit(self, format!("{family}_sum"), None, f(h.sum), vec![])?;
                    let bucket = format!("{family}_bucket");
                    let mut inf = false;
                    for b in &h.buckets {
                        inf = b.upper_bound == f64::INFINITY;
                        emit(
                            self,
                            bucket.clone(),
                            Some(("le", om_float(b.upper_bound))),
                            f(b.count()),
                            b.exemplar.clone().into_iter().collect(),
                        )?;
                        if inf {
                            break;
                        }
                    }
                    if !inf {
                        emit(self, bucket, Some(("le", "+Inf".into())), f(count), vec![])?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A float as OpenMetrics writes it (Prometheus's `FormatOpenMetricsFloat`):
/// Go's `%g`, with `.0` added to a whole number.
pub fn om_float(v: f64) -> String {
    let mut text = format_go_g(v);
    if v.is_finite() && !text.contains(['e', '.']) {
        text.push_str(".0");
    }
    text
}

fn label_pair(raw: &[u8]) -> Result<(String, String), String> {
    let (mut name, mut value) = ("", "");
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Bytes(text)) => name = utf8(text, "a label name")?,
            (2, Value::Bytes(text)) => value = utf8(text, "a label value")?,
            (1 | 2, _) => return Err("a label's name or value is not a string".into()),
            _ => {}
        }
    }
    if name.is_empty() {
        return Err("a label without a name".into());
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `google.protobuf.Timestamp` in milliseconds.
fn timestamp_ms(raw: &[u8]) -> Result<i64, String> {
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Varint(v)) => seconds = v as i64,
            (2, Value::Varint(v)) => nanos = v as i32,
            (1 | 2, _) => return Err("a timestamp field has the wrong wire type".into()),
            _ => {}
        }
    }
    Ok(seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(nanos / 1_000_000)))
}

fn read_exemplar(raw: &[u8]) -> Result<ProtoExemplar, String> {
    let mut pairs = Vec::new();
    let mut value = 0.0;
    let mut timestamp = None;
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Bytes(pair)) => pairs.push(label_pair(pair)?),
            (2, Value::Fixed64(bits)) => value = f64::from_bits(bits),
            (3, Value::Bytes(t)) => timestamp = Some(timestamp_ms(t)?),
            (1..=3, _) => return Err(format!("field {field} of Exemplar has the wrong wire type")),
            _ => {}
        }
    }
    Ok(ProtoExemplar {
        labels: Labels::from_pairs(pairs),
        value,
        timestamp_ms: timestamp,
    })
}

/// `Gauge`, `Untyped` (`double value = 1`) or `Counter` (`value = 1`,
/// `exemplar = 2`, `start_timestamp = 3`).
fn simple_value(raw: &[u8], counter: bool) -> Result<(f64, Option<ProtoExemplar>), String> {
    let mut value = 0.0;
    let mut exemplar = None;
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Fixed64(bits)) => value = f64::from_bits(bits),
            (2, Value::Bytes(e)) if counter => exemplar = Some(read_exemplar(e)?),
            (3, Value::Bytes(_)) if counter => {}
            (1, _) => return Err("a metric's value is not a double".into()),
            (2 | 3, _) if counter => {
                return Err(format!("field {field} of Counter has the wrong wire type"));
            }
            _ => {}
        }
    }
    Ok((value, exemplar))
}

#[derive(Default)]
struct Summary {
    count: u64,
    sum: f64,
    quantiles: Vec<(f64, f64)>,
}

fn read_summary(raw: &[u8]) -> Result<Summary, String> {
    let mut s = Summary::default();
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Varint(v)) => s.count = v,
            (2, Value::Fixed64(bits)) => s.sum = f64::from_bits(bits),
            (3, Value::Bytes(q)) => {
                let (mut quantile, mut value) = (0.0, 0.0);
                let mut qf = Fields::new(q);
                while let Some((field, part)) = qf.next()? {
                    match (field, part) {
                        (1, Value::Fixed64(bits)) => quantile = f64::from_bits(bits),
                        (2, Value::Fixed64(bits)) => value = f64::from_bits(bits),
                        (1 | 2, _) => return Err("a quantile field is not a double".into()),
                        _ => {}
                    }
                }
                s.quantiles.push((quantile, value));
            }
            (4, Value::Bytes(_)) => {}
            (1..=4, _) => return Err(format!("field {field} of Summary has the wrong wire type")),
            _ => {}
        }
    }
    Ok(s)
}

/// A classic bucket.
#[derive(Default)]
struct Bucket {
    cumulative_count: u64,
    cumulative_count_float: f64,
    upper_bound: f64,
    exemplar: Option<ProtoExemplar>,
}

impl Bucket {
    /// `cumulative_count_float` overrides `cumulative_count` when above 0.
    fn count(&self) -> f64 {
        if self.cumulative_count_float > 0.0 {
            self.cumulative_count_float
        } else {
            self.cumulative_count as f64
        }
    }
}

/// The `Histogram` message.
#[derive(Default)]
struct ProtoHistogram {
    sample_count: u64,
    sample_count_float: f64,
    sum: f64,
    buckets: Vec<Bucket>,
    schema: i32,
    zero_threshold: f64,
    zero_count: u64,
    zero_count_float: f64,
    negative_spans: Vec<Span>,
    negative_deltas: Vec<i64>,
    negative_counts: Vec<f64>,
    positive_spans: Vec<Span>,
    positive_deltas: Vec<i64>,
    positive_counts: Vec<f64>,
    exemplars: Vec<ProtoExemplar>,
}

fn read_histogram(raw: &[u8]) -> Result<ProtoHistogram, String> {
    let mut h = ProtoHistogram::default();
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Varint(v)) => h.sample_count = v,
            (2, Value::Fixed64(bits)) => h.sum = f64::from_bits(bits),
            (3, Value::Bytes(b)) => h.buckets.push(read_bucket(b)?),
            (4, Value::Fixed64(bits)) => h.sample_count_float = f64::from_bits(bits),
            (5, Value::Varint(v)) => h.schema = zigzag32(v),
            (6, Value::Fixed64(bits)) => h.zero_threshold = f64::from_bits(bits),
            (7, Value::Varint(v)) => h.zero_count = v,
            (8, Value::Fixed64(bits)) => h.zero_count_float = f64::from_bits(bits),
            (9, Value::Bytes(s)) => h.negative_spans.push(span(s)?),
            (10, part) => push_sint64s(part, &mut h.negative_deltas)?,
            (11, part) => push_doubles(part, &mut h.negative_counts)?,
            (12, Value::Bytes(s)) => h.positive_spans.push(span(s)?),
            (13, part) => push_sint64s(part, &mut h.positive_deltas)?,
            (14, part) => push_doubles(part, &mut h.positive_counts)?,
            (15, Value::Bytes(_)) => {}
            (16, Value::Bytes(e)) => h.exemplars.push(read_exemplar(e)?),
            (1..=16, _) => {
                return Err(format!(
                    "field {field} of Histogram has the wrong wire type"
                ));
            }
            _ => {}
        }
    }
    Ok(h)
}

fn read_bucket(raw: &[u8]) -> Result<Bucket, String> {
    let mut b = Bucket::default();
    let mut fields = Fields::new(raw);
    while let Some((field, part)) = fields.next()? {
        match (field, part) {
            (1, Value::Varint(v)) => b.cumulative_count = v,
            (2, Value::Fixed64(bits)) => b.upper_bound = f64::from_bits(bits),
            (3, Value::Bytes(e)) => b.exemplar = Some(read_exemplar(e)?),
            (4, Value::Fixed64(bits)) => b.cumulative_count_float = f64::from_bits(bits),
            (1..=4, _) => return Err(format!("field {field} of Bucket has the wrong wire type")),
            _ => {}
        }
    }
    Ok(b)
}

impl ProtoHistogram {
    /// Prometheus's `isNativeHistogram`: any span, a zero threshold or a
    /// zero count makes it one (an empty native histogram sends a span of
    /// length 0 to say so).
    fn is_native(&self) -> bool {
        !self.positive_spans.is_empty()
            || !self.negative_spans.is_empty()
            || self.zero_threshold > 0.0
            || self.zero_count > 0
    }

    /// `sample_count_float` overrides `sample_count` when above 0.
    fn count(&self) -> f64 {
        if self.sample_count_float > 0.0 {
            self.sample_count_float
        } else {
            self.sample_count as f64
        }
    }

    fn native(&self, gauge: bool) -> Result<HistogramValue, String> {
        let hint = if gauge {
            CounterResetHint::Gauge
        } else {
            CounterResetHint::Unknown
        };
        let value = if self.sample_count_float > 0.0 || self.zero_count_float > 0.0 {
            let mut h = FloatHistogram {
                counter_reset_hint: hint,
                schema: self.schema,
                zero_threshold: self.zero_threshold,
                zero_count: self.zero_count_float,
                count: self.sample_count_float,
                sum: self.sum,
                positive_spans: self.positive_spans.clone(),
                negative_spans: self.negative_spans.clone(),
                positive_buckets: self.positive_counts.clone(),
                negative_buckets: self.negative_counts.clone(),
                custom_values: Vec::new(),
            };
            h.validate().map_err(|e| e.to_string())?;
            h.compact(0).map_err(|e| e.to_string())?;
            HistogramValue::Float(h)
        } else {
            let mut h = Histogram {
                counter_reset_hint: hint,
                schema: self.schema,
                zero_threshold: self.zero_threshold,
                zero_count: self.zero_count,
                count: self.sample_count,
                sum: self.sum,
                positive_spans: self.positive_spans.clone(),
                negative_spans: self.negative_spans.clone(),
                positive_buckets: self.positive_deltas.clone(),
                negative_buckets: self.negative_deltas.clone(),
                custom_values: Vec::new(),
            };
            h.validate().map_err(|e| e.to_string())?;
            h.compact(0).map_err(|e| e.to_string())?;
            HistogramValue::Int(h)
        };
        Ok(value)
    }

    fn nhcb(&self, gauge: bool) -> Result<HistogramValue, String> {
        let mut classic = ClassicHistogram::new();
        classic.set_count(self.count());
        classic.set_sum(self.sum);
        for b in &self.buckets {
            classic.set_bucket_count(b.upper_bound, b.count());
        }
        let mut value = classic.convert().map_err(|e| e.to_string())?;
        if gauge {
            match &mut value {
                HistogramValue::Int(h) => h.counter_reset_hint = CounterResetHint::Gauge,
                HistogramValue::Float(h) => h.counter_reset_hint = CounterResetHint::Gauge,
            }
        }
        value.validate().map_err(|e| e.to_string())?;
        Ok(value)
    }

    /// A native histogram's exemplars: those of `exemplars` with a
    /// timestamp, else those of the buckets with one (as Prometheus takes
    /// them; an exemplar without a time cannot be ordered against others).
    fn native_exemplars(&self) -> Vec<ProtoExemplar> {
        let timed = |e: &&ProtoExemplar| e.timestamp_ms.is_some();
        if self.exemplars.is_empty() {
            self.buckets
                .iter()
                .filter_map(|b| b.exemplar.as_ref())
                .filter(timed)
                .cloned()
                .collect()
        } else {
            self.exemplars.iter().filter(timed).cloned().collect()
        }
    }
}

#[cfg(test)]
mod tests;
