//! StatsD aggregation as statsd_exporter does it: counters accumulate,
//! gauges hold (or move by deltas), timers, histograms and distributions
//! become summaries (quantiles over a sliding window, `_sum`, `_count`),
//! sets count their distinct members per flush. A flush turns the state
//! into samples at one timestamp.

use std::collections::{HashMap, HashSet, VecDeque};

use sextant_model::{Labels, METRIC_NAME, Sample};
use sextant_storage::{MetricMetadata, SeriesSamples};

use super::parse::{Event, EventKind, escape_name};

/// Quantiles of a timer's summary, as statsd_exporter's defaults.
pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// How long an observation counts towards a summary's quantiles (statsd_exporter: 10m).
const SUMMARY_MAX_AGE_MS: i64 = 10 * 60 * 1000;
/// Most observations a summary keeps for its quantiles; older ones go first.
const SUMMARY_MAX_OBSERVATIONS: usize = 10_000;

#[derive(Debug)]
enum Slot {
    Counter(f64),
    Gauge(f64),
    Summary {
        window: VecDeque<(i64, f64)>,
        sum: f64,
        count: f64,
    },
    Set(HashSet<String>),
}

impl Slot {
    fn kind(&self) -> &'static str {
        match self {
            Self::Counter(_) => "counter",
            Self::Gauge(_) => "gauge",
            Self::Summary { .. } => "summary",
            Self::Set(_) => "set",
        }
    }
}

/// What an event could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The name already holds another type (statsd_exporter refuses these too).
    #[error("{name:?} is already a {existing}, not a {new}")]
    TypeConflict {
        name: String,
        existing: &'static str,
        new: &'static str,
    },
    /// The metric already has as many series as allowed.
    #[error("{name:?} already has {limit} series; new label sets are dropped")]
    TooManySeries { name: String, limit: usize },
}

/// The StatsD state between flushes.
#[derive(Debug)]
pub struct Aggregator {
    slots: HashMap<Labels, Slot>,
    /// Each metric name's type and series count.
    names: HashMap<String, (&'static str, usize)>,
    max_series_per_metric: usize,
}

impl Aggregator {
    /// An empty aggregator allowing `max_series_per_metric` label sets per name (0: no limit).
    pub fn new(max_series_per_metric: usize) -> Self {
        Self {
            slots: HashMap::new(),
            names: HashMap::new(),
            max_series_per_metric,
        }
    }

    /// Applies one event received at `now_ms`.
    pub fn add(&mut self, event: Event, now_ms: i64) -> Result<(), Refused> {
        let name = escape_name(&event.name);
        let new_kind = match event.kind {
            EventKind::Counter(_) => "counter",
            EventKind::Gauge { .. } => "gauge",
            EventKind::Observation { .. } => "summary",
            EventKind::Set(_) => "set",
        };
        let mut pairs: Vec<(String, String)> = event
            .tags
            .iter()
            .map(|(k, v)| (escape_name(k), v.clone()))
            .collect();
        pairs.push((METRIC_NAME.to_owned(), name.clone()));
        let labels = Labels::from_pairs(pairs);
        if !self.slots.contains_key(&labels) {
            let (kind, count) = self.names.entry(name.clone()).or_insert((new_kind, 0));
            if *kind != new_kind {
                return Err(Refused::TypeConflict {
                    name,
                    existing: kind,
                    new: new_kind,
                });
            }
            if self.max_series_per_metric > 0 && *count >= self.max_series_per_metric {
                return Err(Refused::TooManySeries {
                    name,
                    limit: self.max_series_per_metric,
                });
            }
            *count += 1;
            let slot = match &event.kind {
                EventKind::Counter(_) => Slot::Counter(0.0),
                EventKind::Gauge { .. } => Slot::Gauge(0.0),
                EventKind::Observation { .. } => Slot::Summary {
                    window: VecDeque::new(),
                    sum: 0.0,
                    count: 0.0,
                },
                EventKind::Set(_) => Slot::Set(HashSet::new()),
            };
            self.slots.insert(labels.clone(), slot);
        }
        let slot = self.slots.get_mut(&labels).expect("inserted above");
        match (slot, event.kind) {
            (Slot::Counter(total), EventKind::Counter(v)) => *total += v,
            (Slot::Gauge(current), EventKind::Gauge { value, relative }) => {
                *current = if relative { *current + value } else { value };
            }
            (Slot::Summary { window, sum, count }, EventKind::Observation { value, weight }) => {
                *sum += value * weight;
                *count += weight;
                if window.len() == SUMMARY_MAX_OBSERVATIONS {
                    window.pop_front();
                }
                window.push_back((now_ms, value));
            }
            (Slot::Set(members), EventKind::Set(member)) => {
                members.insert(member);
            }
            (slot, _) => {
                return Err(Refused::TypeConflict {
                    name,
                    existing: slot.kind(),
                    new: new_kind,
                });
            }
        }
        Ok(())
    }

    /// Every series' value at `now_ms`, and each metric's type. Sets start
    /// over; summaries forget observations older than their window.
    pub fn flush(&mut self, now_ms: i64) -> (Vec<SeriesSamples>, Vec<(String, MetricMetadata)>) {
        let mut out = Vec::with_capacity(self.slots.len());
        let at = |labels: Labels, value: f64| SeriesSamples {
            labels,
            samples: vec![Sample {
                timestamp_ms: now_ms,
                value,
            }],
        };
        for (labels, slot) in &mut self.slots {
            match slot {
                Slot::Counter(v) | Slot::Gauge(v) => out.push(at(labels.clone(), *v)),
                Slot::Set(members) => {
                    out.push(at(labels.clone(), members.len() as f64));
                    members.clear();
                }
                Slot::Summary { window, sum, count } => {
                    while window
                        .front()
                        .is_some_and(|(t, _)| *t <= now_ms - SUMMARY_MAX_AGE_MS)
                    {
                        window.pop_front();
                    }
                    let mut values: Vec<f64> = window.iter().map(|(_, v)| *v).collect();
                    values.sort_by(f64::total_cmp);
                    for q in QUANTILES {
                        let value = if values.is_empty() {
                            f64::NAN
                        } else {
                            // Nearest rank.
                            let rank = (q * values.len() as f64).ceil() as usize;
                            values[rank.clamp(1, values.len()) - 1]
                        };
                        out.push(at(labels.with("quantile", &q.to_string()), value));
                    }
                    let name = labels.metric_name().unwrap_or_default();
                    out.push(at(labels.with(METRIC_NAME, &format!("{name}_sum")), *sum));
                    out.push(at(
                        labels.with(METRIC_NAME, &format!("{name}_count")),
                        *count,
                    ));
                }
            }
        }
        let metadata = self
            .names
            .iter()
            .map(|(name, (kind, _))| {
                let kind = if *kind == "set" { "gauge" } else { kind };
                (
                    name.clone(),
                    MetricMetadata {
                        kind: kind.to_owned(),
                        help: format!("StatsD {kind} {name}"),
                        unit: String::new(),
                    },
                )
            })
            .collect();
        (out, metadata)
    }

    /// How many series are held.
    pub fn series(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_line;
    use super::*;

    fn feed(agg: &mut Aggregator, lines: &[&str], now: i64) {
        for line in lines {
            for event in parse_line(line).unwrap() {
                agg.add(event, now).unwrap();
            }
        }
    }

    fn value(samples: &[SeriesSamples], series: &str) -> f64 {
        samples
            .iter()
            .find(|s| s.labels.to_string() == series)
            .unwrap_or_else(|| {
                panic!(
                    "no {series} in {:?}",
                    samples
                        .iter()
                        .map(|s| s.labels.to_string())
                        .collect::<Vec<_>>()
                )
            })
            .samples[0]
            .value
    }

    #[test]
    fn counters_gauges_timers_and_sets_flush_like_statsd_exporter() {
        let mut agg = Aggregator::new(0);
        feed(
            &mut agg,
            &[
                "orders.placed:1|c",
                "orders.placed:2|c|@0.5",
                "queue.depth:10|g",
                "queue.depth:-3|g",
                "users:alice|s",
                "users:bob|s",
                "users:alice|s",
                "place_order:100|ms",
                "place_order:200|ms|#app:market",
                "place_order:300|ms",
            ],
            1_000,
        );
        let (samples, metadata) = agg.flush(10_000);
        assert_eq!(value(&samples, "orders_placed{}"), 5.0);
        assert_eq!(value(&samples, "queue_depth{}"), 7.0);
        assert_eq!(value(&samples, "users{}"), 2.0);
        assert_eq!(value(&samples, "place_order{quantile=\"0.5\"}"), 0.1);
        assert_eq!(value(&samples, "place_order{quantile=\"0.99\"}"), 0.3);
        assert_eq!(value(&samples, "place_order_sum{}"), 0.4);
        assert_eq!(value(&samples, "place_order_count{}"), 2.0);
        assert_eq!(value(&samples, "place_order_count{app=\"market\"}"), 1.0);
        assert!(samples.iter().all(|s| s.samples[0].timestamp_ms == 10_000));
        let kind = |n: &str| {
            metadata
                .iter()
                .find(|(m, _)| m == n)
                .unwrap()
                .1
                .kind
                .clone()
        };
        assert_eq!(kind("orders_placed"), "counter");
        assert_eq!(kind("place_order"), "summary");
        assert_eq!(kind("users"), "gauge");
        // Counters keep counting, sets start over, old observations age out.
        feed(&mut agg, &["orders.placed:1|c"], 20_000);
        let (samples, _) = agg.flush(11 * 60 * 1000);
        assert_eq!(value(&samples, "orders_placed{}"), 6.0);
        assert_eq!(value(&samples, "users{}"), 0.0);
        assert!(value(&samples, "place_order{quantile=\"0.5\"}").is_nan());
        assert_eq!(value(&samples, "place_order_count{}"), 2.0);
    }

    #[test]
    fn conflicting_types_and_series_over_budget_are_refused() {
        let mut agg = Aggregator::new(2);
        feed(&mut agg, &["x:1|c"], 0);
        let err = agg
            .add(parse_line("x:1|g").unwrap().remove(0), 0)
            .unwrap_err();
        assert_eq!(err.to_string(), "\"x\" is already a counter, not a gauge");
        feed(&mut agg, &["x:1|c|#a:1"], 0);
        let err = agg
            .add(parse_line("x:1|c|#a:2").unwrap().remove(0), 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"x\" already has 2 series; new label sets are dropped"
        );
        assert_eq!(agg.series(), 2);
    }
}
