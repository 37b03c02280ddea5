//! RED metrics from spans, computed at ingest so PromQL and alerts see
//! traces, named as Tempo's and the OpenTelemetry Collector's generators
//! name them:
//!
//! - `traces_spanmetrics_calls_total{service, operation, span_kind, status_code}`
//! - `traces_spanmetrics_duration_seconds_bucket/_sum/_count{...same, le}`
//! - `traces_service_graph_request_total{client, server}`: a call from one
//!   service to another, found by pairing a span with its parent span of
//!   another service (the parent may arrive before or after the child, in
//!   another export; unpaired spans wait in a bounded window).
//!
//! Counters are cumulative since start; [`SpanMetrics::observe`] counts,
//! and [`SpanMetrics::flush`] (every few seconds in the server) returns the
//! current value of every series touched since the last flush, so a busy
//! series costs one sample per flush rather than one per export. Operation
//! names are capped per service
//! (`operation="other"` beyond the cap), so a span name with an id in it
//! cannot grow the series without bound.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use sextant_model::{Labels, Sample, SpanRecord};
use sextant_storage::SeriesSamples;

/// Histogram bounds in seconds (the Collector's span metrics defaults).
pub const BUCKETS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// Distinct operations kept per service; others count as `other`.
pub const MAX_OPERATIONS_PER_SERVICE: usize = 200;

/// Spans remembered for pairing children with parents of other services.
const PAIRING_WINDOW: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    service: String,
    operation: String,
    kind: &'static str,
    status: &'static str,
}

#[derive(Debug, Default)]
struct Hist {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    calls: u64,
}

#[derive(Debug, Default)]
struct State {
    series: HashMap<Key, Hist>,
    operations: HashMap<String, HashSet<String>>,
    edges: HashMap<(String, String), u64>,
    /// Service of recently seen spans, by span id, oldest evicted first.
    seen: HashMap<String, String>,
    seen_order: VecDeque<String>,
    /// Services of children whose parent has not been seen, by parent id.
    waiting: HashMap<String, Vec<String>>,
    waiting_order: VecDeque<String>,
    /// Series and edges counted since the last flush.
    dirty: HashSet<Key>,
    dirty_edges: HashSet<(String, String)>,
}

/// The span metrics generator.
#[derive(Debug, Default)]
pub struct SpanMetrics {
    state: Mutex<State>,
}

fn kind_label(span: &SpanRecord) -> &'static str {
    use sextant_model::SpanKind as K;
    match span.kind {
        K::Unspecified => "SPAN_KIND_UNSPECIFIED",
        K::Internal => "SPAN_KIND_INTERNAL",
        K::Server => "SPAN_KIND_SERVER",
        K::Client => "SPAN_KIND_CLIENT",
        K::Producer => "SPAN_KIND_PRODUCER",
        K::Consumer => "SPAN_KIND_CONSUMER",
    }
}

impl State {
    fn edge(&mut self, client: &str, server: &str, touched: &mut HashSet<(String, String)>) {
        if client == server {
            return;
        }
        let key = (client.to_owned(), server.to_owned());
        *self.edges.entry(key.clone()).or_default() += 1;
        touched.insert(key);
    }

    fn pair(&mut self, span: &SpanRecord, touched: &mut HashSet<(String, String)>) {
        // Children that arrived first wait for this span.
        if let Some(children) = self.waiting.remove(&span.span_id) {
            for child in children {
                self.edge(&span.service, &child, touched);
            }
        }
        if !span.parent_span_id.is_empty() {
            match self.seen.get(&span.parent_span_id).cloned() {
                Some(parent) => self.edge(&parent, &span.service, touched),
                None => {
                    self.waiting
                        .entry(span.parent_span_id.clone())
                        .or_default()
                        .push(span.service.clone());
                    self.waiting_order.push_back(span.parent_span_id.clone());
                    while self.waiting_order.len() > PAIRING_WINDOW {
                        if let Some(old) = self.waiting_order.pop_front() {
                            self.waiting.remove(&old);
                        }
                    }
                }
            }
        }
        if self
            .seen
            .insert(span.span_id.clone(), span.service.clone())
            .is_none()
        {
            self.seen_order.push_back(span.span_id.clone());
            while self.seen_order.len() > PAIRING_WINDOW {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

impl SpanMetrics {
    /// Counts `spans`.
    pub fn observe(&self, spans: &[SpanRecord]) {
        let mut state = self.state.lock().expect("span metrics lock");
        let mut touched_edges = std::mem::take(&mut state.dirty_edges);
        for span in spans {
            let operations = state.operations.entry(span.service.clone()).or_default();
            let operation = if operations.contains(&span.operation)
                || operations.len() < MAX_OPERATIONS_PER_SERVICE
            {
                operations.insert(span.operation.clone());
                span.operation.clone()
            } else {
                "other".to_owned()
            };
            let key = Key {
                service: span.service.clone(),
                operation,
                kind: kind_label(span),
                status: span.status.as_str(),
            };
            let seconds = span.duration_us as f64 / 1e6;
            let hist = state.series.entry(key.clone()).or_default();
            let bucket = BUCKETS
                .iter()
                .position(|&b| seconds <= b)
                .unwrap_or(BUCKETS.len());
            hist.counts[bucket] += 1;
            hist.sum += seconds;
            hist.calls += 1;
            state.dirty.insert(key);
            state.pair(span, &mut touched_edges);
        }
        state.dirty_edges = touched_edges;
    }

    /// The current values of the series counted since the last flush, stamped `now_ms`.
    pub fn flush(&self, now_ms: i64) -> Vec<SeriesSamples> {
        let mut state = self.state.lock().expect("span metrics lock");
        let touched = std::mem::take(&mut state.dirty);
        let touched_edges = std::mem::take(&mut state.dirty_edges);
        let mut out = Vec::new();
        let sample = |value: f64| {
            vec![Sample {
                timestamp_ms: now_ms,
                value,
            }]
        };
        for key in touched {
            let hist = &state.series[&key];
            let base = [
                ("service", key.service.as_str()),
                ("operation", key.operation.as_str()),
                ("span_kind", key.kind),
                ("status_code", key.status),
            ];
            let labels = |name: &str, extra: Option<(&str, &str)>| {
                Labels::from_pairs(
                    base.iter()
                        .copied()
                        .chain(extra)
                        .chain([("__name__", name)]),
                )
            };
            out.push(SeriesSamples {
                labels: labels("traces_spanmetrics_calls_total", None),
                samples: sample(hist.calls as f64),
            });
            let mut cumulative = 0;
            for (i, count) in hist.counts.iter().enumerate() {
                cumulative += count;
                let le = BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                out.push(SeriesSamples {
                    labels: labels(
                        "traces_spanmetrics_duration_seconds_bucket",
                        Some(("le", &le)),
                    ),
                    samples: sample(cumulative as f64),
                });
            }
            out.push(SeriesSamples {
                labels: labels("traces_spanmetrics_duration_seconds_sum", None),
                samples: sample(hist.sum),
            });
            out.push(SeriesSamples {
                labels: labels("traces_spanmetrics_duration_seconds_count", None),
                samples: sample(hist.calls as f64),
            });
        }
        for (client, server) in touched_edges {
            let calls = state.edges[&(client.clone(), server.clone())];
            out.push(SeriesSamples {
                labels: Labels::from_pairs([
                    ("__name__", "traces_service_graph_request_total"),
                    ("client", client.as_str()),
                    ("server", server.as_str()),
                ]),
                samples: sample(calls as f64),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::{SpanKind, SpanStatus};

    fn span(id: &str, parent: &str, service: &str, operation: &str, ms: i64) -> SpanRecord {
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            kind: SpanKind::Server,
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

    fn value(out: &[SeriesSamples], name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        out.iter()
            .find(|s| {
                s.labels.get("__name__") == Some(name)
                    && pairs.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| s.samples[0].value)
    }

    #[test]
    fn calls_durations_and_edges_in_either_arrival_order() {
        let metrics = SpanMetrics::default();
        // The child (settings) arrives before its parent (profile).
        metrics.observe(&[span("b", "a", "settings", "get", 3)]);
        let out = metrics.flush(1000);
        assert_eq!(
            value(
                &out,
                "traces_spanmetrics_calls_total",
                &[("service", "settings")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &out,
                "traces_spanmetrics_duration_seconds_bucket",
                &[("le", "0.002")]
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &out,
                "traces_spanmetrics_duration_seconds_bucket",
                &[("le", "0.004")]
            ),
            Some(1.0)
        );
        assert_eq!(value(&out, "traces_service_graph_request_total", &[]), None);
        metrics.observe(&[span("a", "", "profile", "GET /profile", 20)]);
        metrics.observe(&[span("c", "a", "settings", "get", 1)]);
        let out = metrics.flush(2000);
        assert_eq!(
            value(
                &out,
                "traces_service_graph_request_total",
                &[("client", "profile"), ("server", "settings")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &out,
                "traces_spanmetrics_duration_seconds_count",
                &[("service", "settings"), ("span_kind", "SPAN_KIND_SERVER")]
            ),
            Some(2.0)
        );
        let sum = value(
            &out,
            "traces_spanmetrics_duration_seconds_sum",
            &[("service", "settings")],
        );
        assert!((sum.unwrap() - 0.004).abs() < 1e-9);
        assert_eq!(out[0].samples[0].timestamp_ms, 2000);
        assert!(
            metrics.flush(3000).is_empty(),
            "nothing new, nothing written"
        );
    }

    #[test]
    fn operation_names_are_capped_per_service() {
        let metrics = SpanMetrics::default();
        let spans: Vec<SpanRecord> = (0..MAX_OPERATIONS_PER_SERVICE + 10)
            .map(|i| {
                span(
                    &format!("{i:016x}"),
                    "",
                    "orders",
                    &format!("GET /orders/{i}"),
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
                &[("operation", "other")]
            ),
            Some(10.0)
        );
    }
}
