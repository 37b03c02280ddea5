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
//! current value of every series counted in the last [`ACTIVE_FOR`], as a
//! scrape would: a busy series costs one sample per flush rather than one
//! per export, and a quiet one still has the two samples `rate()` needs
//! (a series written only when it changes would vanish from a 5m rate
//! between calls minutes apart). Operation
//! names are capped per service
//! (`operation="other"` beyond the cap), so a span name with an id in it
//! cannot grow the series without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sextant_model::{Labels, Sample, SpanRecord};
use sextant_storage::SeriesSamples;

/// Histogram bounds in seconds (the Collector's span metrics defaults).
pub const BUCKETS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// Distinct operations kept per service; others count as `other`.
pub const MAX_OPERATIONS_PER_SERVICE: usize = 200;

/// How long after its last count a series is still written at every flush.
pub const ACTIVE_FOR_MS: i64 = 15 * 60 * 1000;

/// Spans remembered for pairing children with parents of other services.
const PAIRING_WINDOW: usize = 200_000;

#[derive(Debug, Default)]
struct Hist {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    calls: u64,
    /// Counted since the last flush.
    dirty: bool,
    /// Written at every flush until then (ms since the epoch).
    active_until_ms: i64,
}

/// The histograms of one service: by operation, then by span kind and status.
#[derive(Debug, Default)]
struct Service {
    name: String,
    operations: HashMap<String, HashMap<(&'static str, &'static str), Hist>>,
}

#[derive(Debug, Default)]
struct Edge {
    calls: u64,
    dirty: bool,
    active_until_ms: i64,
}

/// Services are numbered in the order first seen, so the hot path hashes
/// numbers and allocates nothing for a series or a span it already knows.
#[derive(Debug, Default)]
struct State {
    services: Vec<Service>,
    service_ids: HashMap<String, u32>,
    /// Calls from one service (the parent span's) to another, by number.
    edges: HashMap<(u32, u32), Edge>,
    /// Service of recently seen spans, by span id, oldest evicted first.
    seen: HashMap<u64, u32>,
    seen_order: VecDeque<u64>,
    /// Services of children whose parent has not been seen, by parent id.
    waiting: HashMap<u64, Vec<u32>>,
    waiting_order: VecDeque<u64>,
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

    fn histogram(&mut self, service: u32, span: &SpanRecord) -> &mut Hist {
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
            .entry((kind_label(span), span.status.as_str()))
            .or_default()
    }

    fn edge(&mut self, client: u32, server: u32) {
        if client != server {
            let edge = self.edges.entry((client, server)).or_default();
            edge.calls += 1;
            edge.dirty = true;
        }
    }

    fn pair(&mut self, service: u32, span: &SpanRecord) {
        let Some(id) = span_number(&span.span_id) else {
            return;
        };
        // Children that arrived first wait for this span.
        if let Some(children) = self.waiting.remove(&id) {
            for child in children {
                self.edge(service, child);
            }
        }
        if let Some(parent_id) = span_number(&span.parent_span_id) {
            match self.seen.get(&parent_id).copied() {
                Some(parent) => self.edge(parent, service),
                None => {
                    self.waiting.entry(parent_id).or_default().push(service);
                    self.waiting_order.push_back(parent_id);
                    while self.waiting_order.len() > PAIRING_WINDOW {
                        if let Some(old) = self.waiting_order.pop_front() {
                            self.waiting.remove(&old);
                        }
                    }
                }
            }
        }
        if self.seen.insert(id, service).is_none() {
            self.seen_order.push_back(id);
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
        let mut last: Option<(&str, u32)> = None;
        for span in spans {
            // Spans come grouped by resource: most share the last one's service.
            let service = match last {
                Some((name, id)) if name == span.service => id,
                _ => state.service_id(&span.service),
            };
            last = Some((&span.service, service));
            let seconds = span.duration_us as f64 / 1e6;
            let bucket = BUCKETS
                .iter()
                .position(|&b| seconds <= b)
                .unwrap_or(BUCKETS.len());
            let hist = state.histogram(service, span);
            hist.counts[bucket] += 1;
            hist.sum += seconds;
            hist.calls += 1;
            hist.dirty = true;
            state.pair(service, span);
        }
    }

    /// The current values of the series counted since the last flush, stamped `now_ms`.
    pub fn flush(&self, now_ms: i64) -> Vec<SeriesSamples> {
        let mut state = self.state.lock().expect("span metrics lock");
        let mut out = Vec::new();
        let sample = |value: f64| {
            vec![Sample {
                timestamp_ms: now_ms,
                value,
            }]
        };
        for service in &mut state.services {
            for (operation, hists) in &mut service.operations {
                for (&(kind, status), hist) in hists.iter_mut() {
                    if std::mem::take(&mut hist.dirty) {
                        hist.active_until_ms = now_ms + ACTIVE_FOR_MS;
                    }
                    if hist.active_until_ms < now_ms {
                        continue;
                    }
                    let base = [
                        ("service", service.name.as_str()),
                        ("operation", operation.as_str()),
                        ("span_kind", kind),
                        ("status_code", status),
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
            }
        }
        let State {
            services, edges, ..
        } = &mut *state;
        for (&(client, server), edge) in edges.iter_mut() {
            if std::mem::take(&mut edge.dirty) {
                edge.active_until_ms = now_ms + ACTIVE_FOR_MS;
            }
            if edge.active_until_ms < now_ms {
                continue;
            }
            out.push(SeriesSamples {
                labels: Labels::from_pairs([
                    ("__name__", "traces_service_graph_request_total"),
                    ("client", services[client as usize].name.as_str()),
                    ("server", services[server as usize].name.as_str()),
                ]),
                samples: sample(edge.calls as f64),
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
        let again = metrics.flush(3000);
        assert_eq!(
            again.len(),
            out.len(),
            "a quiet series is still written, so rate() has two samples"
        );
        assert_eq!(
            value(
                &again,
                "traces_spanmetrics_calls_total",
                &[("service", "settings")]
            ),
            Some(2.0)
        );
        assert!(
            metrics.flush(3000 + ACTIVE_FOR_MS + 1).is_empty(),
            "a series quiet for longer than ACTIVE_FOR_MS is no longer written"
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
