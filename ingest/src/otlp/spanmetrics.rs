//! RED metrics and the service graph from spans, computed at ingest so
//! PromQL, alerts and Grafana see traces. The series are those Tempo's
//! metrics-generator writes with its default settings (the `span-metrics`
//! and `service-graphs` processors), because Grafana's Tempo data source
//! builds its Service Graph and its table of span names from PromQL over
//! exactly these names and labels:
//!
//! - `traces_spanmetrics_calls_total{service, span_name, span_kind, status_code}`
//!   (`span_kind="SPAN_KIND_SERVER"`, `status_code="STATUS_CODE_ERROR"`, ...)
//! - `traces_spanmetrics_latency_bucket/_sum/_count{...same, le}`: span
//!   durations in seconds, Tempo's buckets ([`LATENCY_BUCKETS`]).
//! - `traces_service_graph_request_total{client, server, connection_type}`:
//!   calls from one service to another.
//! - `traces_service_graph_request_failed_total{...same}`: those where the
//!   calling or the called span has status error.
//! - `traces_service_graph_request_server_seconds_bucket/_sum/_count` and
//!   `..._client_seconds_...{...same, le}`: the called span's and the calling
//!   span's durations, in seconds, Tempo's buckets ([`GRAPH_BUCKETS`]).
//!
//! A call is a span and its parent span when their services differ (the
//! parent may arrive before or after the child, in another export; unpaired
//! spans wait in a bounded window), or a client or producer span and its
//! server or consumer child in one service. Tempo pairs only client with
//! server spans; Sextant also takes a parent of another service of any kind,
//! since services that pass the context on without a client span (the
//! book's do) would otherwise have no edges, and Jaeger's dependencies pair
//! that way too. `connection_type` is absent for a direct call,
//! `messaging_system` for producer to consumer, and `virtual_node` for the
//! call from `client="user"` that Tempo gives every root server span.
//!
//! Counters are cumulative since start; [`SpanMetrics::observe`] counts,
//! and [`SpanMetrics::flush`] (every few seconds in the server) returns the
//! current value of every series counted in the last [`ACTIVE_FOR_MS`], as a
//! scrape would: a busy series costs one sample per flush rather than one
//! per export, and a quiet one still has the two samples `rate()` needs
//! (a series written only when it changes would vanish from a 5m rate
//! between calls minutes apart). A series' first flush also writes a 0 at
//! the end of the previous minute, as Tempo does, so `rate()` counts the
//! calls made before it (a counter first seen at 1 has not increased).
//! Span names are capped per service (`span_name="other"` beyond the cap),
//! so a span name with an id in it cannot grow the series without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sextant_model::{Exemplar, Labels, Sample, SpanKind, SpanRecord, SpanStatus};
use sextant_storage::SeriesSamples;

/// Span duration bounds in seconds: Tempo's span metrics defaults
/// (`prometheus.ExponentialBuckets(0.002, 2, 14)`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
    16.384,
];

/// Call duration bounds in seconds: Tempo's service graph defaults
/// (`prometheus.ExponentialBuckets(0.1, 2, 8)`).
pub const GRAPH_BUCKETS: [f64; 8] = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8];

/// Distinct span names kept per service; others count as `other`.
pub const MAX_OPERATIONS_PER_SERVICE: usize = 200;

/// How long after its last count a series is still written at every flush.
pub const ACTIVE_FOR_MS: i64 = 15 * 60 * 1000;

/// Spans remembered for pairing children with parents of other services.
const PAIRING_WINDOW: usize = 200_000;

/// The client of a call into a root server span, as Tempo names it.
const USER: &str = "user";

/// Observations by bucket (the last is `+Inf`, not cumulative), their sum
/// and count. The bounds are the caller's.
#[derive(Debug)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    /// Per bucket, the first span counted there since the last flush, as
    /// an exemplar: (trace id, seconds, when it ended in ms). One string a
    /// bucket a flush, however many spans.
    exemplars: Vec<Option<(String, f64, i64)>>,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Self {
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
            exemplars: Vec::new(),
        }
    }

    /// Counts one observation; returns its bucket.
    fn observe(&mut self, bounds: &[f64], seconds: f64) -> usize {
        let bucket = bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(bounds.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
        bucket
    }

    /// Keeps `span` as the exemplar of `bucket` unless one waits there.
    fn exemplar(&mut self, bucket: usize, span: &SpanRecord, seconds: f64) {
        if span.trace_id.is_empty() {
            return;
        }
        if self.exemplars.len() < self.counts.len() {
            self.exemplars.resize(self.counts.len(), None);
        }
        let slot = &mut self.exemplars[bucket];
        if slot.is_none() {
            let end_ms = span.start_us.saturating_add(span.duration_us.max(0)) / 1000;
            *slot = Some((span.trace_id.clone(), seconds, end_ms));
        }
    }
}

/// When a series is written.
#[derive(Debug, Default)]
struct Activity {
    /// Counted since the last flush.
    dirty: bool,
    /// Written at every flush until then (ms since the epoch).
    active_until_ms: i64,
    /// Written at least once (its first flush adds a 0 before).
    written: bool,
}

impl Activity {
    /// `None` when the series is not written at this flush, else whether it
    /// is written for the first time.
    fn due(&mut self, now_ms: i64) -> Option<bool> {
        if std::mem::take(&mut self.dirty) {
            self.active_until_ms = now_ms + ACTIVE_FOR_MS;
        }
        if self.active_until_ms < now_ms {
            return None;
        }
        Some(!std::mem::replace(&mut self.written, true))
    }
}

/// The latency of one (span name, kind, status) of a service; its count is
/// the calls.
#[derive(Debug)]
struct SpanSeries {
    latency: Histogram,
    activity: Activity,
}

/// The span series of one service: by span name, then by kind and status.
#[derive(Debug, Default)]
struct Service {
    name: String,
    operations: HashMap<String, HashMap<(&'static str, &'static str), SpanSeries>>,
}

/// Tempo's `connection_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Connection {
    Direct,
    MessagingSystem,
    VirtualNode,
}

impl Connection {
    /// The label's value; a direct call has none (Tempo writes it empty).
    fn label(self) -> Option<&'static str> {
        match self {
            Self::Direct => None,
            Self::MessagingSystem => Some("messaging_system"),
            Self::VirtualNode => Some("virtual_node"),
        }
    }
}

/// The calls along one edge; the server histogram's count is the calls.
#[derive(Debug)]
struct Edge {
    failed: u64,
    server: Histogram,
    client: Histogram,
    activity: Activity,
}

/// What pairing needs of a span: one side of a call.
#[derive(Debug, Clone, Copy)]
struct Side {
    service: u32,
    kind: SpanKind,
    failed: bool,
    seconds: f64,
}

/// Services are numbered in the order first seen, so the hot path hashes
/// numbers and allocates nothing for a series or a span it already knows.
#[derive(Debug, Default)]
struct State {
    services: Vec<Service>,
    service_ids: HashMap<String, u32>,
    /// Calls by client and server service number and connection type.
    edges: HashMap<(u32, u32, Connection), Edge>,
    /// Recently seen spans, by span id, oldest evicted first.
    seen: HashMap<u64, Side>,
    seen_order: VecDeque<u64>,
    /// Children whose parent has not been seen, by parent id.
    waiting: HashMap<u64, Vec<Side>>,
    waiting_order: VecDeque<u64>,
}

/// The span metrics and service graph generator.
#[derive(Debug, Default)]
pub struct SpanMetrics {
    state: Mutex<State>,
}

/// `span_kind` as OTLP's enum names it.
fn kind_label(kind: SpanKind) -> &'static str {
    use SpanKind as K;
    match kind {
        K::Unspecified => "SPAN_KIND_UNSPECIFIED",
        K::Internal => "SPAN_KIND_INTERNAL",
        K::Server => "SPAN_KIND_SERVER",
        K::Client => "SPAN_KIND_CLIENT",
        K::Producer => "SPAN_KIND_PRODUCER",
        K::Consumer => "SPAN_KIND_CONSUMER",
    }
}

/// A span id as a number; `None` for an empty or non-hex id.
fn span_number(hex: &str) -> Option<u64> {
    u64::from_str_radix(hex, 16).ok()
}

impl State {
    fn service_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.service_ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
        self.services.push(Service {
            name: name.to_owned(),
            ..Service::default()
        });
        self.service_ids.insert(name.to_owned(), id);
        id
    }

    fn span_series(&mut self, service: u32, span: &SpanRecord) -> &mut SpanSeries {
        let operations = &mut self.services[service as usize].operations;
        let operation = if operations.contains_key(&span.operation)
            || operations.len() < MAX_OPERATIONS_PER_SERVICE
        {
            span.operation.as_str()
        } else {
            "other"
        };
        if !operations.contains_key(operation) {
            operations.insert(operation.to_owned(), HashMap::new());
        }
        operations
            .get_mut(operation)
            .expect("inserted above")
            .entry((kind_label(span.kind), span.status.as_str()))
            .or_insert_with(|| SpanSeries {
                latency: Histogram::new(&LATENCY_BUCKETS),
                activity: Activity::default(),
            })
    }

    fn count_call(
        &mut self,
        client: u32,
        server: u32,
        connection: Connection,
        failed: bool,
        server_seconds: f64,
        client_seconds: f64,
    ) {
        let edge = self
            .edges
            .entry((client, server, connection))
            .or_insert_with(|| Edge {
                failed: 0,
                server: Histogram::new(&GRAPH_BUCKETS),
                client: Histogram::new(&GRAPH_BUCKETS),
                activity: Activity::default(),
            });
        edge.failed += u64::from(failed);
        edge.server.observe(&GRAPH_BUCKETS, server_seconds);
        edge.client.observe(&GRAPH_BUCKETS, client_seconds);
        edge.activity.dirty = true;
    }

    /// Counts the call from `parent` to `child`, if it is one.
    fn call(&mut self, parent: Side, child: Side) {
        let client_to_server = matches!(parent.kind, SpanKind::Client | SpanKind::Producer)
            && matches!(child.kind, SpanKind::Server | SpanKind::Consumer);
        if parent.service == child.service && !client_to_server {
            return;
        }
        let connection = if parent.kind == SpanKind::Producer || child.kind == SpanKind::Consumer {
            Connection::MessagingSystem
        } else {
            Connection::Direct
        };
        self.count_call(
            parent.service,
            child.service,
            connection,
            parent.failed || child.failed,
            child.seconds,
            parent.seconds,
        );
    }

    fn pair(&mut self, side: Side, span: &SpanRecord) {
        if span.parent_span_id.is_empty() {
            // A request from outside: Tempo's virtual `user` client, whose
            // own duration is unknown (0).
            if matches!(span.kind, SpanKind::Server | SpanKind::Consumer) {
                let user = self.service_id(USER);
                self.count_call(
                    user,
                    side.service,
                    Connection::VirtualNode,
                    side.failed,
                    side.seconds,
                    0.0,
                );
            }
        }
        let Some(id) = span_number(&span.span_id) else {
            return;
        };
        // Children that arrived first wait for this span.
        if let Some(children) = self.waiting.remove(&id) {
            for child in children {
                self.call(side, child);
            }
        }
        if let Some(parent_id) = span_number(&span.parent_span_id) {
            match self.seen.get(&parent_id).copied() {
                Some(parent) => self.call(parent, side),
                None => {
                    self.waiting.entry(parent_id).or_default().push(side);
                    self.waiting_order.push_back(parent_id);
                    while self.waiting_order.len() > PAIRING_WINDOW {
                        if let Some(old) = self.waiting_order.pop_front() {
                            self.waiting.remove(&old);
                        }
                    }
                }
            }
        }
        if self.seen.insert(id, side).is_none() {
            self.seen_order.push_back(id);
            while self.seen_order.len() > PAIRING_WINDOW {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

/// The samples of one flush, stamped `now_ms`, and the exemplars of the
/// bucket series.
struct Flush {
    now_ms: i64,
    series: Vec<SeriesSamples>,
    exemplars: Vec<(Labels, Exemplar)>,
}

impl Flush {
    /// A series with `labels` and `value`; on its `first` flush with a 0 at
    /// the end of the previous minute before it (as Tempo writes).
    fn push(&mut self, labels: Labels, value: f64, first: bool) {
        let mut samples = Vec::with_capacity(2);
        if first {
            samples.push(Sample {
                timestamp_ms: self.now_ms - self.now_ms.rem_euclid(60_000) - 1,
                value: 0.0,
            });
        }
        samples.push(Sample {
            timestamp_ms: self.now_ms,
            value,
        });
        self.series.push(SeriesSamples { labels, samples });
    }

    /// `name` as a counter, and `<name>_bucket/_sum/_count` of `histogram`.
    fn histogram(
        &mut self,
        name: &str,
        base: &[(&str, &str)],
        bounds: &[String],
        histogram: &mut Histogram,
        first: bool,
    ) {
        let labels = |suffix: &str, le: Option<&str>| {
            let metric = format!("{name}{suffix}");
            Labels::from_pairs(
                base.iter()
                    .copied()
                    .chain(le.map(|le| ("le", le)))
                    .chain([("__name__", metric.as_str())]),
            )
        };
        let mut cumulative = 0;
        for (i, count) in histogram.counts.iter().enumerate() {
            cumulative += count;
            let le = bounds.get(i).map_or("+Inf", String::as_str);
            let series = labels("_bucket", Some(le));
            if let Some((trace_id, seconds, ended_ms)) =
                histogram.exemplars.get_mut(i).and_then(Option::take)
            {
                self.exemplars.push((
                    series.clone(),
                    Exemplar {
                        labels: Labels::from_pairs([("trace_id", trace_id)]),
                        value: seconds,
                        timestamp_ms: ended_ms,
                    },
                ));
            }
            self.push(series, cumulative as f64, first);
        }
        self.push(labels("_sum", None), histogram.sum, first);
        self.push(labels("_count", None), histogram.count as f64, first);
    }
}

/// `le` as Prometheus's Go client writes it (the shortest exact decimal).
fn le_labels(bounds: &[f64]) -> Vec<String> {
    bounds.iter().map(f64::to_string).collect()
}

impl SpanMetrics {
    /// Counts `spans`.
    pub fn observe(&self, spans: &[SpanRecord]) {
        let mut state = self.state.lock().expect("span metrics lock");
        let mut last: Option<(&str, u32)> = None;
        for span in spans {
            // Spans come grouped by resource: most share the last one's service.
            let service = match last {
                Some((name, id)) if name == span.service => id,
                _ => state.service_id(&span.service),
            };
            last = Some((&span.service, service));
            let seconds = span.duration_us.max(0) as f64 / 1e6;
            let series = state.span_series(service, span);
            let bucket = series.latency.observe(&LATENCY_BUCKETS, seconds);
            series.latency.exemplar(bucket, span, seconds);
            series.activity.dirty = true;
            let side = Side {
                service,
                kind: span.kind,
                failed: span.status == SpanStatus::Error,
                seconds,
            };
            state.pair(side, span);
        }
    }

    /// The current values of the series counted in the last
    /// [`ACTIVE_FOR_MS`], stamped `now_ms`.
    pub fn flush(&self, now_ms: i64) -> Vec<SeriesSamples> {
        self.flush_with_exemplars(now_ms).0
    }

    /// As [`SpanMetrics::flush`], with exemplars for the latency buckets:
    /// per bucket series, the trace of the first span counted there since
    /// the last flush (Tempo's span metrics carry the same).
    pub fn flush_with_exemplars(
        &self,
        now_ms: i64,
    ) -> (Vec<SeriesSamples>, Vec<(Labels, Exemplar)>) {
        let mut state = self.state.lock().expect("span metrics lock");
        let mut flush = Flush {
            now_ms,
            series: Vec::new(),
            exemplars: Vec::new(),
        };
        let latency_le = le_labels(&LATENCY_BUCKETS);
        let graph_le = le_labels(&GRAPH_BUCKETS);
        for service in &mut state.services {
            for (operation, by_kind) in &mut service.operations {
                for (&(kind, status), series) in by_kind.iter_mut() {
                    let Some(first) = series.activity.due(now_ms) else {
                        continue;
                    };
                    let base = [
                        ("service", service.name.as_str()),
                        ("span_name", operation.as_str()),
                        ("span_kind", kind),
                        ("status_code", status),
                    ];
                    flush.push(
                        Labels::from_pairs(
                            base.iter()
                                .copied()
                                .chain([("__name__", "traces_spanmetrics_calls_total")]),
                        ),
                        series.latency.count as f64,
                        first,
                    );
                    flush.histogram(
                        "traces_spanmetrics_latency",
                        &base,
                        &latency_le,
                        &mut series.latency,
                        first,
                    );
                }
            }
        }
        let State {
            services, edges, ..
        } = &mut *state;
        for (&(client, server, connection), edge) in edges.iter_mut() {
            let Some(first) = edge.activity.due(now_ms) else {
                continue;
            };
            let mut base = vec![
                ("client", services[client as usize].name.as_str()),
                ("server", services[server as usize].name.as_str()),
            ];
            base.extend(connection.label().map(|c| ("connection_type", c)));
            let counter =
                |name: &str| Labels::from_pairs(base.iter().copied().chain([("__name__", name)]));
            flush.push(
                counter("traces_service_graph_request_total"),
                edge.server.count as f64,
                first,
            );
            flush.push(
                counter("traces_service_graph_request_failed_total"),
                edge.failed as f64,
                first,
            );
            flush.histogram(
                "traces_service_graph_request_server_seconds",
                &base,
                &graph_le,
                &mut edge.server,
                first,
            );
            flush.histogram(
                "traces_service_graph_request_client_seconds",
                &base,
                &graph_le,
                &mut edge.client,
                first,
            );
        }
        (flush.series, flush.exemplars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        id: &str,
        parent: &str,
        service: &str,
        operation: &str,
        kind: SpanKind,
        ms: i64,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            kind,
            status: SpanStatus::Unset,
            status_message: String::new(),
            start_us: 0,
            duration_us: ms * 1000,
            attributes: Default::default(),
            resource: Default::default(),
            scope: String::new(),
            scope_version: String::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    fn failed(mut span: SpanRecord) -> SpanRecord {
        span.status = SpanStatus::Error;
        span
    }

    #[test]
    fn latency_buckets_carry_the_first_trace_of_each_flush_as_exemplar() {
        let metrics = SpanMetrics::default();
        let mut first = span("a1", "", "cart", "GET /cart", SpanKind::Server, 3);
        first.trace_id = "11".repeat(16);
        first.start_us = 5_000_000;
        let mut second = span("a2", "", "cart", "GET /cart", SpanKind::Server, 3);
        second.trace_id = "22".repeat(16);
        let mut slow = span("a3", "", "cart", "GET /cart", SpanKind::Server, 900);
        slow.trace_id = "33".repeat(16);
        metrics.observe(&[first, second, slow]);
        let (_, exemplars) = metrics.flush_with_exemplars(60_000);
        let found: Vec<(String, String, f64, i64)> = exemplars
            .iter()
            .filter(|(l, _)| l.get("__name__") == Some("traces_spanmetrics_latency_bucket"))
            .map(|(l, e)| {
                (
                    l.get("le").unwrap().to_owned(),
                    e.labels.get("trace_id").unwrap().to_owned(),
                    e.value,
                    e.timestamp_ms,
                )
            })
            .collect();
        // 3 ms falls in le=0.004 (0.002 * 2), 900 ms in le=1.024 (0.002 * 2^9).
        assert_eq!(
            found,
            [
                ("0.004".to_owned(), "11".repeat(16), 0.003, 5_003),
                ("1.024".to_owned(), "33".repeat(16), 0.9, 900),
            ]
        );
        // Nothing new counted: no exemplar again.
        assert!(metrics.flush_with_exemplars(65_000).1.is_empty());
        let mut later = span("a4", "", "cart", "GET /cart", SpanKind::Server, 3);
        later.trace_id = "44".repeat(16);
        metrics.observe(&[later]);
        let (_, again) = metrics.flush_with_exemplars(70_000);
        assert_eq!(again.len(), 1);
        assert_eq!(
            again[0].1.labels.get("trace_id"),
            Some("44".repeat(16).as_str())
        );
    }

    /// The last value of the one series named `name` whose labels other
    /// than `__name__` are exactly `pairs`.
    fn value(out: &[SeriesSamples], name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        let want = Labels::from_pairs(pairs.iter().copied().chain([("__name__", name)]));
        let found: Vec<_> = out.iter().filter(|s| s.labels == want).collect();
        assert!(found.len() <= 1, "{name}{pairs:?} written twice");
        found.first().map(|s| s.samples.last().unwrap().value)
    }

    #[test]
    fn span_calls_and_latency_in_seconds_by_tempos_labels_and_buckets() {
        let metrics = SpanMetrics::default();
        metrics.observe(&[
            span("01", "", "settings", "get", SpanKind::Server, 3),
            failed(span("02", "", "settings", "get", SpanKind::Server, 20)),
            span("03", "", "settings", "get", SpanKind::Server, 5),
        ]);
        let out = metrics.flush(90_500);
        let ok = [
            ("service", "settings"),
            ("span_name", "get"),
            ("span_kind", "SPAN_KIND_SERVER"),
            ("status_code", "STATUS_CODE_UNSET"),
        ];
        let le = |le: &str| {
            let mut pairs = ok.to_vec();
            pairs.push(("le", le));
            value(&out, "traces_spanmetrics_latency_bucket", &pairs)
        };
        assert_eq!(
            value(&out, "traces_spanmetrics_calls_total", &ok),
            Some(2.0)
        );
        // 3 ms and 5 ms: Tempo's buckets 0.002, 0.004, 0.008, ...
        assert_eq!(le("0.002"), Some(0.0));
        assert_eq!(le("0.004"), Some(1.0));
        assert_eq!(le("0.008"), Some(2.0));
        assert_eq!(le("16.384"), Some(2.0));
        assert_eq!(le("+Inf"), Some(2.0));
        assert_eq!(
            out.iter()
                .filter(
                    |s| s.labels.get("__name__") == Some("traces_spanmetrics_latency_bucket")
                        && s.labels.get("status_code") == Some("STATUS_CODE_UNSET")
                )
                .count(),
            15
        );
        let sum = value(&out, "traces_spanmetrics_latency_sum", &ok).unwrap();
        assert!((sum - 0.008).abs() < 1e-12, "{sum}");
        assert_eq!(
            value(&out, "traces_spanmetrics_latency_count", &ok),
            Some(2.0)
        );
        let error = [
            ("service", "settings"),
            ("span_name", "get"),
            ("span_kind", "SPAN_KIND_SERVER"),
            ("status_code", "STATUS_CODE_ERROR"),
        ];
        assert_eq!(
            value(&out, "traces_spanmetrics_calls_total", &error),
            Some(1.0)
        );
    }

    #[test]
    fn a_series_first_flush_starts_from_zero_at_the_end_of_the_previous_minute() {
        let metrics = SpanMetrics::default();
        metrics.observe(&[span("01", "", "settings", "get", SpanKind::Internal, 3)]);
        let first = metrics.flush(90_500);
        assert!(!first.is_empty());
        for series in &first {
            assert_eq!(
                series.samples,
                [
                    Sample {
                        timestamp_ms: 59_999,
                        value: 0.0
                    },
                    series.samples[1]
                ],
                "{:?}",
                series.labels
            );
            assert_eq!(series.samples[1].timestamp_ms, 90_500);
        }
        let second = metrics.flush(95_500);
        assert_eq!(second.len(), first.len());
        assert!(second.iter().all(|s| s.samples.len() == 1));
    }

    #[test]
    fn calls_failures_and_both_sides_seconds_in_either_arrival_order() {
        let metrics = SpanMetrics::default();
        // settings' server span arrives before profile's client span, its
        // parent; it failed.
        metrics.observe(&[failed(span(
            "c",
            "b",
            "settings",
            "get settings",
            SpanKind::Server,
            120,
        ))]);
        let out = metrics.flush(1000);
        assert_eq!(
            value(
                &out,
                "traces_service_graph_request_total",
                &[("client", "profile"), ("server", "settings")]
            ),
            None
        );
        metrics.observe(&[
            // The request from outside: a root server span of 300 ms.
            span("a", "", "profile", "GET /profile", SpanKind::Server, 300),
            span("b", "a", "profile", "call settings", SpanKind::Client, 150),
            // Context passed on from the server span, no client span.
            span("d", "a", "settings", "get settings", SpanKind::Server, 40),
            // Inside one service, not a call.
            span("e", "a", "profile", "render", SpanKind::Internal, 10),
        ]);
        let out = metrics.flush(2000);
        let edge = [("client", "profile"), ("server", "settings")];
        let at = |name: &str, le: &str| {
            value(
                &out,
                name,
                &[("client", "profile"), ("server", "settings"), ("le", le)],
            )
        };
        // Two calls: b -> c (failed, 150 ms calling, 120 ms called) and
        // a -> d (300 ms calling, 40 ms called).
        assert_eq!(
            value(&out, "traces_service_graph_request_total", &edge),
            Some(2.0)
        );
        assert_eq!(
            value(&out, "traces_service_graph_request_failed_total", &edge),
            Some(1.0)
        );
        let server = "traces_service_graph_request_server_seconds_bucket";
        assert_eq!(at(server, "0.1"), Some(1.0));
        assert_eq!(at(server, "0.2"), Some(2.0));
        assert_eq!(at(server, "12.8"), Some(2.0));
        assert_eq!(at(server, "+Inf"), Some(2.0));
        let server_sum = value(
            &out,
            "traces_service_graph_request_server_seconds_sum",
            &edge,
        )
        .unwrap();
        assert!((server_sum - 0.16).abs() < 1e-12, "{server_sum}");
        assert_eq!(
            value(
                &out,
                "traces_service_graph_request_server_seconds_count",
                &edge
            ),
            Some(2.0)
        );
        let client = "traces_service_graph_request_client_seconds_bucket";
        assert_eq!(at(client, "0.1"), Some(0.0));
        assert_eq!(at(client, "0.2"), Some(1.0));
        assert_eq!(at(client, "0.4"), Some(2.0));
        let client_sum = value(
            &out,
            "traces_service_graph_request_client_seconds_sum",
            &edge,
        )
        .unwrap();
        assert!((client_sum - 0.45).abs() < 1e-12, "{client_sum}");
        // The root server span is a call from Tempo's virtual `user`.
        let user = [
            ("client", "user"),
            ("server", "profile"),
            ("connection_type", "virtual_node"),
        ];
        assert_eq!(
            value(&out, "traces_service_graph_request_total", &user),
            Some(1.0)
        );
        assert_eq!(
            value(&out, "traces_service_graph_request_failed_total", &user),
            Some(0.0)
        );
        let user_server_sum = value(
            &out,
            "traces_service_graph_request_server_seconds_sum",
            &user,
        );
        assert!((user_server_sum.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(
            value(
                &out,
                "traces_service_graph_request_client_seconds_sum",
                &user
            ),
            Some(0.0)
        );
        // profile -> profile, settings -> anything: none.
        assert!(
            !out.iter().any(|s| {
                s.labels.get("__name__") == Some("traces_service_graph_request_total")
                    && (s.labels.get("server") == Some(s.labels.get("client").unwrap())
                        || s.labels.get("client") == Some("settings"))
            }),
            "{out:?}"
        );
        let again = metrics.flush(3000);
        assert_eq!(
            again.len(),
            out.len(),
            "a quiet series is still written, so rate() has two samples"
        );
        assert_eq!(
            value(&again, "traces_service_graph_request_total", &edge),
            Some(2.0)
        );
        assert!(
            metrics.flush(3000 + ACTIVE_FOR_MS + 1).is_empty(),
            "a series quiet for longer than ACTIVE_FOR_MS is no longer written"
        );
    }

    #[test]
    fn messaging_and_client_to_server_within_one_service() {
        let metrics = SpanMetrics::default();
        metrics.observe(&[
            span("a", "", "orders", "publish", SpanKind::Producer, 5),
            span("b", "a", "billing", "consume", SpanKind::Consumer, 250),
            span("c", "", "orders", "GET /self", SpanKind::Client, 30),
            failed(span("d", "c", "orders", "GET /self", SpanKind::Server, 20)),
        ]);
        let out = metrics.flush(1000);
        let messaging = [
            ("client", "orders"),
            ("server", "billing"),
            ("connection_type", "messaging_system"),
        ];
        assert_eq!(
            value(&out, "traces_service_graph_request_total", &messaging),
            Some(1.0)
        );
        assert_eq!(
            value(
                &out,
                "traces_service_graph_request_server_seconds_bucket",
                &[
                    ("client", "orders"),
                    ("server", "billing"),
                    ("connection_type", "messaging_system"),
                    ("le", "0.4")
                ]
            ),
            Some(1.0)
        );
        let own = [("client", "orders"), ("server", "orders")];
        assert_eq!(
            value(&out, "traces_service_graph_request_total", &own),
            Some(1.0)
        );
        assert_eq!(
            value(&out, "traces_service_graph_request_failed_total", &own),
            Some(1.0)
        );
        // The root consumer counts from `user`; the root producer and
        // client do not.
        assert_eq!(
            value(
                &out,
                "traces_service_graph_request_total",
                &[
                    ("client", "user"),
                    ("server", "orders"),
                    ("connection_type", "virtual_node")
                ]
            ),
            None
        );
    }

    #[test]
    fn span_names_are_capped_per_service() {
        let metrics = SpanMetrics::default();
        let spans: Vec<SpanRecord> = (0..MAX_OPERATIONS_PER_SERVICE + 10)
            .map(|i| {
                span(
                    &format!("{i:016x}"),
                    "",
                    "orders",
                    &format!("GET /orders/{i}"),
                    SpanKind::Internal,
                    1,
                )
            })
            .collect();
        metrics.observe(&spans);
        let out = metrics.flush(0);
        assert_eq!(
            value(
                &out,
                "traces_spanmetrics_calls_total",
                &[
                    ("service", "orders"),
                    ("span_name", "other"),
                    ("span_kind", "SPAN_KIND_INTERNAL"),
                    ("status_code", "STATUS_CODE_UNSET")
                ]
            ),
            Some(10.0)
        );
    }
}
