//! StatsD aggregation as statsd_exporter does it: counters accumulate,
//! gauges hold (or move by deltas), timers, histograms and distributions
//! become summaries (quantiles over a sliding window, `_sum`, `_count`),
//! sets count their distinct members per flush. A flush turns the state
//! into samples at one timestamp.

use std::collections::{HashMap, HashSet, VecDeque};

use sextant_model::{Labels, METRIC_NAME, Sample};
use sextant_storage::{MetricMetadata, SeriesSamples};

use super::mapping::{EventType, Mapper, Observer};
use super::parse::{Event, EventKind, escape_name};

/// Most observations a summary keeps for its quantiles; older ones go first.
const SUMMARY_MAX_OBSERVATIONS: usize = 10_000;

#[derive(Debug)]
enum Slot {
    Counter(f64),
    Gauge(f64),
    Summary {
        quantiles: Vec<f64>,
        max_age_ms: i64,
        window: VecDeque<(i64, f64)>,
        sum: f64,
        count: f64,
    },
    Histogram {
        bounds: Vec<f64>,
        /// Per bucket (not cumulative); the last is `+Inf`.
        counts: Vec<f64>,
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
            Self::Histogram { .. } => "histogram",
            Self::Set(_) => "set",
        }
    }
}

/// A series' state and when it was last updated.
#[derive(Debug)]
struct Entry {
    slot: Slot,
    updated_ms: i64,
    ttl_ms: i64,
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
    /// StatsD as a whole holds as many series as it may.
    #[error("StatsD already holds {0} series; new series are dropped")]
    Full(usize),
}

/// Most series StatsD holds in all, whatever the names: memory stays bounded
/// even under a flood of distinct names.
pub const MAX_SERIES: usize = 1_000_000;

/// The StatsD state between flushes.
#[derive(Debug)]
pub struct Aggregator {
    slots: HashMap<Labels, Entry>,
    /// What each raw name, tag list and type resolved to (`None`: dropped by
    /// the mapping), so repeated lines skip mapping, escaping and label building.
    resolved: HashMap<String, Option<Labels>>,
    mapper: Mapper,
    /// Each metric name's type and series count.
    names: HashMap<String, (&'static str, usize)>,
    max_series_per_metric: usize,
}

impl Aggregator {
    /// An empty aggregator that maps names with `mapper` and allows
    /// `max_series_per_metric` label sets per name (0: no limit).
    pub fn new(max_series_per_metric: usize, mapper: Mapper) -> Self {
        Self {
            slots: HashMap::new(),
            resolved: HashMap::new(),
            mapper,
            names: HashMap::new(),
            max_series_per_metric,
        }
    }

    /// Names new events with `mapper` from now on (a reloaded mapping file).
    /// Series already aggregated keep their slots until their `ttl` or forever.
    pub fn set_mapper(&mut self, mapper: Mapper) {
        self.mapper = mapper;
        self.resolved.clear();
    }

    /// Applies one event received at `now_ms`; an event the mapping drops is
    /// ignored.
    pub fn add(&mut self, event: Event, now_ms: i64) -> Result<(), Refused> {
        let event_type = match event.kind {
            EventKind::Counter(_) => EventType::Counter,
            EventKind::Gauge { .. } => EventType::Gauge,
            EventKind::Observation { .. } => EventType::Observer,
            EventKind::Set(_) => EventType::Set,
        };
        let key = resolution_key(&event, event_type);
        if let Some(resolved) = self.resolved.get(&key) {
            let Some(labels) = resolved else {
                return Ok(());
            };
            // A series forgotten since (ttl) is built again below.
            if let Some(entry) = self.slots.get_mut(labels) {
                entry.updated_ms = now_ms;
                let name = labels.metric_name().unwrap_or_default();
                return apply(&mut entry.slot, event.kind, name, now_ms);
            }
        }
        if self.resolved.len() >= 2 * MAX_SERIES {
            self.resolved.clear();
        }
        let mapped = match self.mapper.map(&event.name, event_type) {
            Some(None) => {
                self.resolved.insert(key, None);
                return Ok(());
            }
            Some(Some(mapped)) => mapped,
            None => self.mapper.unmapped(&event.name),
        };
        let name = escape_name(&mapped.name);
        let new_kind = match (&event.kind, &mapped.observer) {
            (EventKind::Counter(_), _) => "counter",
            (EventKind::Gauge { .. }, _) => "gauge",
            (EventKind::Observation { .. }, Observer::Summary { .. }) => "summary",
            (EventKind::Observation { .. }, Observer::Histogram { .. }) => "histogram",
            (EventKind::Set(_), _) => "set",
        };
        // Tags first, then the mapping's labels over them.
        let mut pairs: Vec<(String, String)> = event
            .tags
            .iter()
            .chain(&mapped.labels)
            .map(|(k, v)| (escape_name(k), v.clone()))
            .collect();
        pairs.push((METRIC_NAME.to_owned(), name.clone()));
        let labels = Labels::from_pairs(pairs);
        if !self.slots.contains_key(&labels) {
            if self.slots.len() >= MAX_SERIES {
                return Err(Refused::Full(MAX_SERIES));
            }
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
            let slot = match (&event.kind, mapped.observer) {
                (EventKind::Counter(_), _) => Slot::Counter(0.0),
                (EventKind::Gauge { .. }, _) => Slot::Gauge(0.0),
                (
                    EventKind::Observation { .. },
                    Observer::Summary {
                        quantiles,
                        max_age_ms,
                    },
                ) => Slot::Summary {
                    quantiles,
                    max_age_ms,
                    window: VecDeque::new(),
                    sum: 0.0,
                    count: 0.0,
                },
                (EventKind::Observation { .. }, Observer::Histogram { buckets }) => {
                    Slot::Histogram {
                        counts: vec![0.0; buckets.len() + 1],
                        bounds: buckets,
                        sum: 0.0,
                        count: 0.0,
                    }
                }
                (EventKind::Set(_), _) => Slot::Set(HashSet::new()),
            };
            self.slots.insert(
                labels.clone(),
                Entry {
                    slot,
                    updated_ms: now_ms,
                    ttl_ms: mapped.ttl_ms,
                },
            );
        }
        let entry = self.slots.get_mut(&labels).expect("inserted above");
        entry.updated_ms = now_ms;
        apply(&mut entry.slot, event.kind, &name, now_ms)?;
        self.resolved.insert(key, Some(labels));
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
        // Series past their mapping's ttl are forgotten.
        let names = &mut self.names;
        self.slots.retain(|labels, entry| {
            let keep = entry.ttl_ms == 0 || now_ms - entry.updated_ms <= entry.ttl_ms;
            if !keep && let Some((_, n)) = labels.metric_name().and_then(|name| names.get_mut(name))
            {
                *n -= 1;
            }
            keep
        });
        for (labels, entry) in &mut self.slots {
            match &mut entry.slot {
                Slot::Counter(v) | Slot::Gauge(v) => out.push(at(labels.clone(), *v)),
                Slot::Set(members) => {
                    out.push(at(labels.clone(), members.len() as f64));
                    members.clear();
                }
                Slot::Histogram {
                    bounds,
                    counts,
                    sum,
                    count,
                } => {
                    let name = labels.metric_name().unwrap_or_default().to_owned();
                    let bucket_labels = labels.with(METRIC_NAME, &format!("{name}_bucket"));
                    let mut cumulative = 0.0;
                    for (i, c) in counts.iter().enumerate() {
                        cumulative += c;
                        let le = bounds
                            .get(i)
                            .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                        out.push(at(bucket_labels.with("le", &le), cumulative));
                    }
                    out.push(at(labels.with(METRIC_NAME, &format!("{name}_sum")), *sum));
                    out.push(at(
                        labels.with(METRIC_NAME, &format!("{name}_count")),
                        *count,
                    ));
                }
                Slot::Summary {
                    quantiles,
                    max_age_ms,
                    window,
                    sum,
                    count,
                } => {
                    while window
                        .front()
                        .is_some_and(|(t, _)| *t <= now_ms - *max_age_ms)
                    {
                        window.pop_front();
                    }
                    let mut values: Vec<f64> = window.iter().map(|(_, v)| *v).collect();
                    values.sort_by(f64::total_cmp);
                    for &q in quantiles.iter() {
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

/// The cache key of an event: raw name, tags and type.
fn resolution_key(event: &Event, event_type: EventType) -> String {
    let mut key = String::with_capacity(event.name.len() + 16);
    key.push_str(&event.name);
    for (k, v) in &event.tags {
        key.push('\0');
        key.push_str(k);
        key.push('\u{1}');
        key.push_str(v);
    }
    key.push('\0');
    key.push(match event_type {
        EventType::Counter => 'c',
        EventType::Gauge => 'g',
        EventType::Observer => 'o',
        EventType::Set => 's',
    });
    key
}

/// Applies an event to its series' state.
fn apply(slot: &mut Slot, kind: EventKind, name: &str, now_ms: i64) -> Result<(), Refused> {
    match (slot, kind) {
        (Slot::Counter(total), EventKind::Counter(v)) => *total += v,
        (Slot::Gauge(current), EventKind::Gauge { value, relative }) => {
            *current = if relative { *current + value } else { value };
        }
        (
            Slot::Histogram {
                bounds,
                counts,
                sum,
                count,
            },
            EventKind::Observation { value, weight },
        ) => {
            let bucket = bounds
                .iter()
                .position(|b| value <= *b)
                .unwrap_or(bounds.len());
            counts[bucket] += weight;
            *sum += value * weight;
            *count += weight;
        }
        (
            Slot::Summary {
                window, sum, count, ..
            },
            EventKind::Observation { value, weight },
        ) => {
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
        (slot, kind) => {
            let new = match kind {
                EventKind::Counter(_) => "counter",
                EventKind::Gauge { .. } => "gauge",
                EventKind::Observation { .. } => "summary",
                EventKind::Set(_) => "set",
            };
            return Err(Refused::TypeConflict {
                name: name.to_owned(),
                existing: slot.kind(),
                new,
            });
        }
    }
    Ok(())
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
        let mut agg = Aggregator::new(0, Mapper::default());
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
        let mut agg = Aggregator::new(2, Mapper::default());
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

    #[test]
    fn mapped_names_histograms_drops_and_ttl() {
        let mapper = Mapper::parse(
            std::path::Path::new("m.yml"),
            r#"
mappings:
  - match: "simplebank-demo.*.request_reservation"
    name: "request_reservation"
    timer_type: histogram
    buckets: [0.05, 0.1]
    ttl: 1m
    labels:
      app: "$1"
  - match: "debug.*"
    action: drop
"#,
        )
        .unwrap();
        let mut agg = Aggregator::new(0, mapper);
        feed(
            &mut agg,
            &[
                "simplebank-demo.orders.request_reservation:40|ms",
                "simplebank-demo.orders.request_reservation:70|ms",
                "simplebank-demo.orders.request_reservation:900|ms",
                "debug.noise:1|c",
            ],
            0,
        );
        let (samples, metadata) = agg.flush(1_000);
        let bucket = |le: &str| {
            value(
                &samples,
                &format!("request_reservation_bucket{{app=\"orders\", le=\"{le}\"}}"),
            )
        };
        assert_eq!(
            (bucket("0.05"), bucket("0.1"), bucket("+Inf")),
            (1.0, 2.0, 3.0)
        );
        assert_eq!(
            value(&samples, "request_reservation_count{app=\"orders\"}"),
            3.0
        );
        assert!((value(&samples, "request_reservation_sum{app=\"orders\"}") - 1.01).abs() < 1e-12);
        assert_eq!(samples.len(), 5, "the dropped name made no series");
        assert_eq!(metadata[0].1.kind, "histogram");
        // Not updated for longer than its ttl: forgotten.
        let (samples, _) = agg.flush(62_000);
        assert!(samples.is_empty());
        assert_eq!(agg.series(), 0);
    }
}
