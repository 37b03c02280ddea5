//! OTLP metrics to Prometheus series, as Prometheus's OTLP receiver names
//! them: metric names with unit and `_total` suffixes, attributes as
//! sanitised labels, `service.name` as `job` and `service.instance.id` as
//! `instance`, other resource attributes on `target_info`; cumulative and
//! delta sums as counters (deltas summed here), histograms as classic
//! `_bucket`/`_sum`/`_count`, exponential histograms as native histograms
//! ([`super::exponential`]; deltas summed here too), summaries as
//! quantiles. A point that cannot be stored (a point without a value, an
//! exponential histogram of a scale below -4) is counted as rejected with a
//! reason, and the rest of the request kept.

use std::collections::{BTreeMap, HashMap};

use sextant_model::histogram::{FloatHistogram, HistogramSample, HistogramValue};
use sextant_model::{Labels, Sample, stale_nan};
use sextant_storage::{MetricMetadata, SeriesHistograms, SeriesSamples};

use super::proto::common::{AnyValue, KeyValue, any_value};
use super::proto::metrics::{
    CUMULATIVE, DELTA, Exemplar, ExportMetricsServiceRequest, HistogramDataPoint, Metric,
    NO_RECORDED_VALUE, NumberDataPoint, SummaryDataPoint, exemplar, metric, number_data_point,
};

/// Most series whose delta points are being summed; beyond, new ones are refused.
pub const MAX_DELTA_SERIES: usize = 1_000_000;

/// What one export request turned into.
#[derive(Debug, Default)]
pub struct Converted {
    pub series: Vec<SeriesSamples>,
    /// Native histograms (from exponential histograms), one sample each.
    pub histograms: Vec<SeriesHistograms>,
    pub metadata: BTreeMap<String, MetricMetadata>,
    /// Data points that could not be stored.
    pub rejected: u64,
    /// Why, one line per reason (the first few).
    pub reasons: Vec<String>,
    /// Exemplars, by the series they go with (a histogram's by bucket).
    pub exemplars: Vec<(Labels, sextant_model::Exemplar)>,
}

impl Converted {
    fn reject(&mut self, points: usize, reason: String) {
        if points == 0 {
            return;
        }
        self.rejected += points as u64;
        if self.reasons.len() < 5 && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    fn push(&mut self, labels: Labels, timestamp_ms: i64, value: f64) {
        self.series.push(SeriesSamples {
            labels,
            samples: vec![Sample {
                timestamp_ms,
                value,
            }],
        });
    }
}

/// Running totals of delta sums and histograms, so they read as counters.
#[derive(Debug, Default)]
pub struct DeltaState {
    sums: HashMap<Labels, f64>,
    histograms: HashMap<Labels, (Vec<u64>, f64, u64)>,
    /// Running totals of delta exponential histograms, by their series
    /// (before the node label).
    native: HashMap<Labels, FloatHistogram>,
    /// In cluster mode, this node's id: the totals are this node's own (an
    /// exporter's deltas may reach any node), so the series it makes of
    /// them carry [`DELTA_NODE_LABEL`], one counter per node, as two
    /// collectors' would be.
    node: Option<String>,
}

/// The label naming the node whose running totals a series of summed
/// deltas is (cluster mode).
pub const DELTA_NODE_LABEL: &str = "sextant_node";

impl DeltaState {
    fn len(&self) -> usize {
        self.sums.len() + self.histograms.len() + self.native.len()
    }

    /// Totals that are `node`'s own ([`DeltaState::node`]).
    pub fn set_node(&mut self, node: &str) {
        self.node = Some(node.to_owned());
    }

    /// Adds the node label to the series pushed since `first`.
    fn stamp(&self, out: &mut Converted, first: usize) {
        for series in &mut out.series[first..] {
            series.labels = self.stamped(&series.labels);
        }
    }

    /// `labels` with the node label, in cluster mode.
    fn stamped(&self, labels: &Labels) -> Labels {
        let Some(node) = &self.node else {
            return labels.clone();
        };
        let pairs = labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .chain([(DELTA_NODE_LABEL.to_owned(), node.clone())]);
        Labels::from_pairs(pairs)
    }
}

/// Converts one request; `now_ms` stands in for points without a time.
pub fn convert(
    request: &ExportMetricsServiceRequest,
    deltas: &mut DeltaState,
    now_ms: i64,
) -> Converted {
    let mut out = Converted::default();
    for rm in &request.resource_metrics {
        let attributes = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let resource = ResourceLabels::new(attributes);
        let before = out.series.len() + out.histograms.len();
        let mut newest = 0;
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                newest = newest.max(convert_metric(metric, &resource, deltas, now_ms, &mut out));
            }
        }
        if out.series.len() + out.histograms.len() > before && !resource.info.is_empty() {
            let mut pairs = resource.info.clone();
            pairs.push(("__name__".into(), "target_info".into()));
            pairs.extend(resource.identity.iter().cloned());
            out.push(Labels::from_pairs(pairs), newest, 1.0);
        }
    }
    out
}

/// `job`/`instance` from a resource, and its other attributes for `target_info`.
struct ResourceLabels {
    identity: Vec<(String, String)>,
    info: Vec<(String, String)>,
}

impl ResourceLabels {
    fn new(attributes: &[KeyValue]) -> Self {
        let get = |key: &str| {
            attributes
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| value_text(kv.value.as_ref()))
        };
        let mut identity = Vec::new();
        if let Some(service) = get("service.name") {
            let job = match get("service.namespace") {
                Some(ns) if !ns.is_empty() => format!("{ns}/{service}"),
                _ => service,
            };
            identity.push(("job".to_owned(), job));
        }
        if let Some(instance) = get("service.instance.id") {
            identity.push(("instance".to_owned(), instance));
        }
        let info = attributes
            .iter()
            .filter(|kv| {
                !matches!(
                    kv.key.as_str(),
                    "service.name" | "service.namespace" | "service.instance.id"
                )
            })
            .map(|kv| (label_name(&kv.key), value_text(kv.value.as_ref())))
            .collect();
        Self { identity, info }
    }
}

/// Returns the newest timestamp written.
fn convert_metric(
    metric: &Metric,
    resource: &ResourceLabels,
    deltas: &mut DeltaState,
    now_ms: i64,
    out: &mut Converted,
) -> i64 {
    let time = |nanos: u64| {
        if nanos == 0 {
            now_ms
        } else {
            i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
        }
    };
    let mut newest = 0;
    let labels_for = |attributes: &[KeyValue], name: &str, extra: Option<(&str, String)>| {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(attributes.len() + 4);
        // Attributes whose names collide after sanitising are joined with ';', as Prometheus does.
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for kv in attributes {
            by_name
                .entry(label_name(&kv.key))
                .or_default()
                .push(value_text(kv.value.as_ref()));
        }
        pairs.extend(by_name.into_iter().map(|(n, v)| (n, v.join(";"))));
        pairs.extend(resource.identity.iter().cloned());
        if let Some((n, v)) = extra {
            pairs.push((n.to_owned(), v));
        }
        pairs.push(("__name__".to_owned(), name.to_owned()));
        Labels::from_pairs(pairs)
    };
    // A metric without data carries nothing to store (Prometheus skips it too).
    let Some(data) = &metric.data else {
        return newest;
    };
    let named = |kind: Kind| metric_name(&metric.name, &metric.unit, kind);
    match data {
        metric::Data::Gauge(gauge) => {
            let name = named(Kind::Gauge);
            out.metadata.insert(name.clone(), metadata("gauge", metric));
            for point in &gauge.data_points {
                let t = time(point.time_unix_nano);
                match number(point) {
                    Some(value) => {
                        out.push(labels_for(&point.attributes, &name, None), t, value);
                        newest = newest.max(t);
                    }
                    None => {
                        out.reject(1, format!("{}: a gauge point without a value", metric.name));
                    }
                }
            }
        }
        metric::Data::Sum(sum) => {
            let counter = sum.is_monotonic;
            let name = named(if counter { Kind::Counter } else { Kind::Gauge });
            let kind = if counter { "counter" } else { "gauge" };
            out.metadata.insert(name.clone(), metadata(kind, metric));
            for point in &sum.data_points {
                let t = time(point.time_unix_nano);
                let labels = labels_for(&point.attributes, &name, None);
                let Some(value) = number(point) else {
                    out.reject(1, format!("{}: a sum point without a value", metric.name));
                    continue;
                };
                let value = match sum.aggregation_temporality {
                    DELTA if value.is_nan() => value,
                    DELTA => {
                        if !deltas.sums.contains_key(&labels) && deltas.len() >= MAX_DELTA_SERIES {
                            out.reject(
                                1,
                                format!("{}: too many delta series being summed", metric.name),
                            );
                            continue;
                        }
                        let total = deltas.sums.entry(labels.clone()).or_insert(0.0);
                        *total += value;
                        *total
                    }
                    CUMULATIVE => value,
                    other => {
                        out.reject(
                            1,
                            format!("{}: unknown aggregation temporality {other}", metric.name),
                        );
                        continue;
                    }
                };
                out.push(labels, t, value);
                if sum.aggregation_temporality == DELTA {
                    deltas.stamp(out, out.series.len() - 1);
                }
                if !point.exemplars.is_empty() {
                    let series = out.series[out.series.len() - 1].labels.clone();
                    for e in &point.exemplars {
                        out.exemplars.push((series.clone(), exemplar(e, now_ms)));
                    }
                }
                newest = newest.max(t);
            }
        }
        metric::Data::Histogram(histogram) => {
            let base = named(Kind::Histogram);
            out.metadata
                .insert(base.clone(), metadata("histogram", metric));
            for point in &histogram.data_points {
                let t = time(point.time_unix_nano);
                if point.bucket_counts.len() > 1
                    && point.bucket_counts.len() != point.explicit_bounds.len() + 1
                {
                    out.reject(1, format!(
                        "{}: {} bucket counts for {} bounds (expected one more count than bounds)",
                        metric.name, point.bucket_counts.len(), point.explicit_bounds.len()
                    ));
                    continue;
                }
                let stale = point.flags & NO_RECORDED_VALUE != 0;
                let (buckets, sum, count) = match histogram.aggregation_temporality {
                    CUMULATIVE => (
                        point.bucket_counts.clone(),
                        point.sum.unwrap_or(0.0),
                        point.count,
                    ),
                    DELTA => {
                        match accumulate(deltas, &labels_for(&point.attributes, &base, None), point)
                        {
                            Some(state) => state,
                            None => {
                                out.reject(
                                    1,
                                    format!("{}: too many delta series being summed", metric.name),
                                );
                                continue;
                            }
                        }
                    }
                    other => {
                        out.reject(
                            1,
                            format!("{}: unknown aggregation temporality {other}", metric.name),
                        );
                        continue;
                    }
                };
                let value = |v: f64| if stale { stale_nan() } else { v };
                let first = out.series.len();
                let mut cumulative = 0u64;
                for (i, bound) in point.explicit_bounds.iter().enumerate() {
                    cumulative += buckets.get(i).copied().unwrap_or(0);
                    let le = Some(("le", format_float(*bound)));
                    out.push(
                        labels_for(&point.attributes, &format!("{base}_bucket"), le),
                        t,
                        value(cumulative as f64),
                    );
                }
                out.push(
                    labels_for(
                        &point.attributes,
                        &format!("{base}_bucket"),
                        Some(("le", "+Inf".into())),
                    ),
                    t,
                    value(count as f64),
                );
                if point.sum.is_some() {
                    out.push(
                        labels_for(&point.attributes, &format!("{base}_sum"), None),
                        t,
                        value(sum),
                    );
                }
                out.push(
                    labels_for(&point.attributes, &format!("{base}_count"), None),
                    t,
                    value(count as f64),
                );
                if histogram.aggregation_temporality == DELTA {
                    deltas.stamp(out, first);
                }
                // An exemplar goes with the bucket its value falls in, as
                // Prometheus's OTLP receiver files it.
                for e in &point.exemplars {
                    let converted = exemplar(e, now_ms);
                    let bucket = point
                        .explicit_bounds
                        .iter()
                        .position(|b| converted.value <= *b)
                        .unwrap_or(point.explicit_bounds.len());
                    let series = out.series[first + bucket].labels.clone();
                    out.exemplars.push((series, converted));
                }
                newest = newest.max(t);
            }
        }
        metric::Data::Summary(summary) => {
            let base = named(Kind::Summary);
            out.metadata
                .insert(base.clone(), metadata("summary", metric));
            for point in &summary.data_points {
                let t = time(point.time_unix_nano);
                write_summary(point, &base, t, &labels_for, out);
                newest = newest.max(t);
            }
        }
        metric::Data::ExponentialHistogram(histogram) => {
            let name = named(Kind::Histogram);
            out.metadata
                .insert(name.clone(), metadata("histogram", metric));
            let temporality = histogram.aggregation_temporality;
            if temporality != CUMULATIVE && temporality != DELTA {
                out.reject(
                    histogram.data_points.len(),
                    format!(
                        "{}: unknown aggregation temporality {temporality}",
                        metric.name
                    ),
                );
                return newest;
            }
            for point in &histogram.data_points {
                let t = time(point.time_unix_nano);
                let native = match super::exponential::to_native(point, false) {
                    Ok(native) => native,
                    Err(why) => {
                        out.reject(1, format!("{}: {why}", metric.name));
                        continue;
                    }
                };
                let labels = labels_for(&point.attributes, &name, None);
                let value = if temporality == CUMULATIVE || sextant_model::is_stale_nan(native.sum)
                {
                    HistogramValue::Int(native)
                } else {
                    // Deltas become a running total, as delta sums do.
                    if !deltas.native.contains_key(&labels) && deltas.len() >= MAX_DELTA_SERIES {
                        out.reject(
                            1,
                            format!("{}: too many delta series being summed", metric.name),
                        );
                        continue;
                    }
                    let delta = native.to_float();
                    let total =
                        deltas
                            .native
                            .entry(labels.clone())
                            .or_insert_with(|| FloatHistogram {
                                schema: delta.schema,
                                zero_threshold: delta.zero_threshold,
                                ..FloatHistogram::default()
                            });
                    let mut sum = total.clone();
                    match sum.add(&delta).and_then(|_| sum.compact(0)) {
                        Ok(()) => *total = sum,
                        Err(why) => {
                            out.reject(1, format!("{}: {why}", metric.name));
                            continue;
                        }
                    }
                    HistogramValue::Float(total.clone())
                };
                let labels = if temporality == DELTA {
                    deltas.stamped(&labels)
                } else {
                    labels
                };
                for e in &point.exemplars {
                    out.exemplars.push((labels.clone(), exemplar(e, now_ms)));
                }
                out.histograms.push(SeriesHistograms {
                    labels,
                    samples: vec![HistogramSample {
                        timestamp_ms: t,
                        value,
                    }],
                });
                newest = newest.max(t);
            }
        }
    }
    newest
}

/// An OTLP exemplar as Prometheus keeps it: `trace_id` and `span_id` in
/// hex, and its filtered attributes, as labels.
fn exemplar(e: &Exemplar, now_ms: i64) -> sextant_model::Exemplar {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut pairs: Vec<(String, String)> = e
        .filtered_attributes
        .iter()
        .map(|kv| (label_name(&kv.key), value_text(kv.value.as_ref())))
        .collect();
    if !e.trace_id.is_empty() {
        pairs.push(("trace_id".to_owned(), hex(&e.trace_id)));
    }
    if !e.span_id.is_empty() {
        pairs.push(("span_id".to_owned(), hex(&e.span_id)));
    }
    sextant_model::Exemplar {
        labels: Labels::from_pairs(pairs),
        value: match e.value {
            Some(exemplar::Value::AsDouble(v)) => v,
            Some(exemplar::Value::AsInt(v)) => v as f64,
            None => 0.0,
        },
        timestamp_ms: if e.time_unix_nano == 0 {
            now_ms
        } else {
            i64::try_from(e.time_unix_nano / 1_000_000).unwrap_or(i64::MAX)
        },
    }
}

fn write_summary(
    point: &SummaryDataPoint,
    base: &str,
    t: i64,
    labels_for: &impl Fn(&[KeyValue], &str, Option<(&str, String)>) -> Labels,
    out: &mut Converted,
) {
    let stale = point.flags & NO_RECORDED_VALUE != 0;
    let value = |v: f64| if stale { stale_nan() } else { v };
    for q in &point.quantile_values {
        out.push(
            labels_for(
                &point.attributes,
                base,
                Some(("quantile", format_float(q.quantile))),
            ),
            t,
            value(q.value),
        );
    }
    out.push(
        labels_for(&point.attributes, &format!("{base}_sum"), None),
        t,
        value(point.sum),
    );
    out.push(
        labels_for(&point.attributes, &format!("{base}_count"), None),
        t,
        value(point.count as f64),
    );
}

/// Adds a delta histogram point to its running totals.
fn accumulate(
    deltas: &mut DeltaState,
    key: &Labels,
    point: &HistogramDataPoint,
) -> Option<(Vec<u64>, f64, u64)> {
    if !deltas.histograms.contains_key(key) && deltas.len() >= MAX_DELTA_SERIES {
        return None;
    }
    let state = deltas
        .histograms
        .entry(key.clone())
        .or_insert_with(|| (vec![0; point.bucket_counts.len()], 0.0, 0));
    if state.0.len() != point.bucket_counts.len() {
        // The buckets changed: start over, as a counter reset.
        *state = (vec![0; point.bucket_counts.len()], 0.0, 0);
    }
    for (total, n) in state.0.iter_mut().zip(&point.bucket_counts) {
        *total += n;
    }
    state.1 += point.sum.unwrap_or(0.0);
    state.2 += point.count;
    Some(state.clone())
}

fn number(point: &NumberDataPoint) -> Option<f64> {
    if point.flags & NO_RECORDED_VALUE != 0 {
        return Some(stale_nan());
    }
    match point.value? {
        number_data_point::Value::AsDouble(v) => Some(v),
        number_data_point::Value::AsInt(v) => Some(v as f64),
    }
}

fn metadata(kind: &str, metric: &Metric) -> MetricMetadata {
    MetricMetadata {
        kind: kind.to_owned(),
        help: metric.description.clone(),
        unit: metric.unit.clone(),
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` writes it.
fn format_float(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    format!("{value}")
}

/// An attribute value as label text (`AsString` in the collector's pdata).
pub(crate) fn value_text(value: Option<&AnyValue>) -> String {
    use any_value::Value as V;
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => format_float(*d),
        Some(other) => json_text(other).to_string(),
    }
}

fn json_text(value: &any_value::Value) -> serde_json::Value {
    use any_value::Value as V;
    match value {
        V::StringValue(s) => s.clone().into(),
        V::BoolValue(b) => (*b).into(),
        V::IntValue(i) => (*i).into(),
        V::DoubleValue(d) => (*d).into(),
        V::BytesValue(b) => String::from_utf8_lossy(b).into_owned().into(),
        V::ArrayValue(a) => a
            .values
            .iter()
            .map(|v| v.value.as_ref().map_or(serde_json::Value::Null, json_text))
            .collect(),
        V::KvlistValue(list) => list
            .values
            .iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                (kv.key.clone(), v.map_or(serde_json::Value::Null, json_text))
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// An attribute key as a Prometheus label name.
pub fn label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    name
}

/// How a metric will be read, for its suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// A metric's Prometheus name: its words joined by `_`, the unit as a suffix
/// (`ms` -> `milliseconds`, `By/s` -> `bytes_per_second`, `1` -> `ratio` on
/// gauges), and `_total` on counters.
pub fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric() && c != ':')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let unit = strip_annotations(unit);
    let (main, per) = unit.split_once('/').unwrap_or((&unit, ""));
    let main = unit_word(main.trim());
    if let Some(main) = main
        && !tokens.iter().any(|t| *t == main)
    {
        tokens.push(main.to_owned());
    }
    if let Some(per) = per_unit_word(per.trim())
        && !tokens.iter().any(|t| t == per)
    {
        tokens.push("per".to_owned());
        tokens.push(per.to_owned());
    }
    if kind == Kind::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".to_owned());
    }
    if kind == Kind::Gauge && unit.trim() == "1" && !tokens.iter().any(|t| t == "ratio") {
        tokens.push("ratio".to_owned());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn strip_annotations(unit: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn unit_word(unit: &str) -> Option<&str> {
    Some(match unit {
        "" | "1" => return None,
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other if other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => other,
        _ => return None,
    })
}

fn per_unit_word(unit: &str) -> Option<&str> {
    Some(match unit {
        "" => return None,
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other if other.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => other,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summed_deltas_are_one_counter_per_node_in_cluster_mode() {
        use super::super::proto::metrics::{Histogram, ResourceMetrics, ScopeMetrics, Sum};
        let sum = |name: &str, temporality: i32, value: f64| Metric {
            name: name.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: 1_000_000_000,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                }],
                aggregation_temporality: temporality,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let request = |value: f64| ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: None,
                scope_metrics: vec![ScopeMetrics {
                    scope: None,
                    metrics: vec![
                        sum("requests", DELTA, value),
                        sum("seen", CUMULATIVE, value),
                        Metric {
                            name: "latency".into(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    time_unix_nano: 1_000_000_000,
                                    count: 1,
                                    sum: Some(value),
                                    bucket_counts: vec![1, 0],
                                    explicit_bounds: vec![10.0],
                                    ..Default::default()
                                }],
                                aggregation_temporality: DELTA,
                            })),
                            ..Default::default()
                        },
                    ],
                }],
            }],
        };
        let mut deltas = DeltaState::default();
        deltas.set_node("b");
        convert(&request(2.0), &mut deltas, 0);
        let out = convert(&request(3.0), &mut deltas, 0);
        let by_name = |name: &str| {
            out.series
                .iter()
                .find(|s| s.labels.get("__name__") == Some(name))
                .unwrap_or_else(|| panic!("{name} in {:?}", out.series))
        };
        let total = by_name("requests_total");
        assert_eq!(total.labels.get(DELTA_NODE_LABEL), Some("b"));
        assert_eq!(total.samples[0].value, 5.0);
        assert_eq!(by_name("seen_total").labels.get(DELTA_NODE_LABEL), None);
        for name in ["latency_bucket", "latency_sum", "latency_count"] {
            assert_eq!(
                by_name(name).labels.get(DELTA_NODE_LABEL),
                Some("b"),
                "{name}"
            );
        }
        assert_eq!(by_name("latency_count").samples[0].value, 2.0);
        assert_eq!(by_name("latency_sum").samples[0].value, 5.0);
        // A single node's totals carry no such label.
        let out = convert(&request(1.0), &mut DeltaState::default(), 0);
        assert!(
            out.series
                .iter()
                .all(|s| s.labels.get(DELTA_NODE_LABEL).is_none())
        );
    }

    #[test]
    fn exponential_histograms_are_native_histograms_and_deltas_are_summed() {
        use super::super::proto::common::KeyValue;
        use super::super::proto::metrics::{
            ExponentialBuckets, ExponentialHistogram, ExponentialHistogramDataPoint,
            ResourceMetrics, ScopeMetrics,
        };
        let point = |counts: Vec<u64>, scale: i32| ExponentialHistogramDataPoint {
            time_unix_nano: 2_000_000_000,
            count: counts.iter().sum::<u64>() + 1,
            sum: Some(1.5),
            scale,
            zero_count: 1,
            positive: Some(ExponentialBuckets {
                offset: 0,
                bucket_counts: counts,
            }),
            exemplars: vec![Exemplar {
                value: Some(exemplar::Value::AsDouble(1.2)),
                trace_id: vec![0xab; 16],
                ..Default::default()
            }],
            ..Default::default()
        };
        let request =
            |temporality: i32, p: ExponentialHistogramDataPoint| ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(super::super::proto::common::Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("api".into())),
                            }),
                        }],
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: None,
                        metrics: vec![Metric {
                            name: "rpc.duration".into(),
                            unit: "s".into(),
                            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: vec![p],
                                aggregation_temporality: temporality,
                            })),
                            ..Default::default()
                        }],
                    }],
                }],
            };
        let mut deltas = DeltaState::default();
        let out = convert(&request(CUMULATIVE, point(vec![2, 1], 3)), &mut deltas, 0);
        assert_eq!(out.rejected, 0, "{:?}", out.reasons);
        assert_eq!(out.histograms.len(), 1);
        let series = &out.histograms[0];
        assert_eq!(
            series.labels.to_string(),
            "rpc_duration_seconds{job=\"api\"}"
        );
        let HistogramValue::Int(h) = &series.samples[0].value else {
            panic!("cumulative points stay integer histograms")
        };
        assert_eq!((h.schema, h.count, h.zero_count), (3, 4, 1));
        assert_eq!(series.samples[0].timestamp_ms, 2000);
        assert_eq!(out.metadata["rpc_duration_seconds"].kind, "histogram");
        assert_eq!(out.exemplars.len(), 1);
        assert_eq!(out.exemplars[0].0, series.labels);
        // Deltas add up, across a change of scale.
        convert(&request(DELTA, point(vec![2, 1], 3)), &mut deltas, 0);
        let out = convert(&request(DELTA, point(vec![1], 2)), &mut deltas, 0);
        let HistogramValue::Float(total) = &out.histograms[0].samples[0].value else {
            panic!("summed deltas are float histograms")
        };
        assert_eq!((total.count, total.zero_count, total.sum), (6.0, 2.0, 3.0));
        assert_eq!(total.schema, 2);
        total.validate().unwrap();
        // A scale Prometheus cannot hold is refused by name.
        let out = convert(&request(CUMULATIVE, point(vec![1], -5)), &mut deltas, 0);
        assert_eq!(out.rejected, 1);
        assert!(
            out.reasons[0].contains("rpc.duration: cannot convert"),
            "{:?}",
            out.reasons
        );
    }

    #[test]
    fn names_follow_prometheus_otlp_translation() {
        for (name, unit, kind, expected) in [
            (
                "http.server.duration",
                "ms",
                Kind::Histogram,
                "http_server_duration_milliseconds",
            ),
            (
                "http.server.request.count",
                "{request}",
                Kind::Counter,
                "http_server_request_count_total",
            ),
            (
                "system.network.io",
                "By/s",
                Kind::Gauge,
                "system_network_io_bytes_per_second",
            ),
            ("cpu.utilization", "1", Kind::Gauge, "cpu_utilization_ratio"),
            ("orders_total", "", Kind::Counter, "orders_total"),
            ("queue__depth", "", Kind::Gauge, "queue_depth"),
            ("latency_seconds", "s", Kind::Summary, "latency_seconds"),
            ("2xx.responses", "", Kind::Counter, "_2xx_responses_total"),
        ] {
            assert_eq!(metric_name(name, unit, kind), expected, "{name} {unit}");
        }
        assert_eq!(label_name("http.method"), "http_method");
        assert_eq!(label_name("2fa"), "key_2fa");
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("__reserved"), "__reserved");
    }
}
