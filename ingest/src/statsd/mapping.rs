//! statsd_exporter mapping files, read unchanged: `mappings` with glob or
//! regex `match`es, `name` and `labels` templates (`$1`, `${1}`),
//! `match_metric_type`, `action: drop`, `timer_type`/`observer_type`
//! (summary or histogram) with `buckets`/`histogram_options` and
//! `quantiles`/`summary_options`, `ttl`, and `defaults` for all of them.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use sextant_model::{PromDuration, SourceError};

/// Prometheus's default histogram buckets, statsd_exporter's default too.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// statsd_exporter's default summary quantiles.
pub const DEFAULT_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MatchType {
    Glob,
    Regex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MetricType {
    Counter,
    Gauge,
    #[serde(alias = "timer", alias = "histogram", alias = "distribution")]
    Observer,
}

/// How a timer, histogram or distribution is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObserverType {
    Summary,
    Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    #[default]
    Map,
    Drop,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantileConfig {
    quantile: f64,
    #[serde(default)]
    #[allow(dead_code)]
    error: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistogramOptions {
    buckets: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryOptions {
    quantiles: Option<Vec<QuantileConfig>>,
    max_age: Option<PromDuration>,
    /// Accepted for compatibility: how client_golang ages its streams; the
    /// window here is exact.
    #[allow(dead_code)]
    age_buckets: Option<u32>,
    #[allow(dead_code)]
    buf_cap: Option<u32>,
}

/// Options a mapping and the defaults share.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    match_type: Option<MatchType>,
    #[serde(alias = "timer_type")]
    observer_type: Option<ObserverType>,
    buckets: Option<Vec<f64>>,
    quantiles: Option<Vec<QuantileConfig>>,
    histogram_options: Option<HistogramOptions>,
    summary_options: Option<SummaryOptions>,
    ttl: Option<PromDuration>,
    /// Accepted for compatibility: mappings are always tried in file order.
    #[allow(dead_code)]
    glob_disable_ordering: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingConfig {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Accepted for compatibility; Sextant's metadata help is generated.
    #[serde(default)]
    #[allow(dead_code)]
    help: Option<String>,
    #[serde(default)]
    action: Action,
    #[serde(default)]
    match_metric_type: Option<MetricType>,
    #[serde(flatten)]
    options: Options,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    defaults: Options,
    #[serde(default)]
    mappings: Vec<MappingConfig>,
}

/// One compiled mapping.
#[derive(Debug, Clone)]
struct Mapping {
    regex: Regex,
    name: String,
    labels: Vec<(String, String)>,
    action: Action,
    metric_type: Option<MetricType>,
    observer: Observer,
    ttl_ms: i64,
}

/// How an observation metric is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum Observer {
    /// Quantiles over the observations of the last `max_age_ms`.
    Summary {
        quantiles: Vec<f64>,
        max_age_ms: i64,
    },
    Histogram {
        buckets: Vec<f64>,
    },
}

/// statsd_exporter's summary window: 10 minutes.
pub const DEFAULT_MAX_AGE_MS: i64 = 10 * 60 * 1000;

/// What a mapping made of a StatsD name.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub observer: Observer,
    /// A series not updated for this long is forgotten (0: kept).
    pub ttl_ms: i64,
}

/// The compiled mapping file.
#[derive(Debug, Clone)]
pub struct Mapper {
    mappings: Vec<Mapping>,
    /// For names no mapping matches.
    default_observer: Observer,
    default_ttl_ms: i64,
}

impl Default for Mapper {
    fn default() -> Self {
        Self {
            mappings: Vec::new(),
            default_observer: Observer::Summary {
                quantiles: DEFAULT_QUANTILES.to_vec(),
                max_age_ms: DEFAULT_MAX_AGE_MS,
            },
            default_ttl_ms: 0,
        }
    }
}

/// The kind of event a mapping may be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Counter,
    Gauge,
    Observer,
    Set,
}

/// A glob as statsd_exporter reads it: `*` stands for any run of characters
/// within one dot-separated component, and is captured as `$n`.
fn glob_regex(glob: &str) -> String {
    let mut out = String::from("^");
    for c in glob.chars() {
        if c == '*' {
            out.push_str("([^.]*)");
        } else {
            out.push_str(&regex::escape(&c.to_string()));
        }
    }
    out.push('$');
    out
}

fn ttl_ms(ttl: Option<PromDuration>) -> i64 {
    ttl.map_or(0, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
}

fn observer_of(options: &Options, fallback: &Observer) -> Observer {
    match options.observer_type {
        Some(ObserverType::Histogram) => Observer::Histogram {
            buckets: options
                .histogram_options
                .as_ref()
                .and_then(|h| h.buckets.clone())
                .or_else(|| options.buckets.clone())
                .unwrap_or_else(|| DEFAULT_BUCKETS.to_vec()),
        },
        Some(ObserverType::Summary) => Observer::Summary {
            quantiles: options
                .summary_options
                .as_ref()
                .and_then(|s| s.quantiles.as_ref())
                .or(options.quantiles.as_ref())
                .map(|q| q.iter().map(|q| q.quantile).collect())
                .unwrap_or_else(|| DEFAULT_QUANTILES.to_vec()),
            max_age_ms: options
                .summary_options
                .as_ref()
                .and_then(|s| s.max_age)
                .map_or(DEFAULT_MAX_AGE_MS, |a| ttl_ms(Some(a))),
        },
        None => fallback.clone(),
    }
}

impl Mapper {
    /// Reads a mapping file; errors point at the file, line and column.
    pub fn load(path: &Path) -> Result<Self, SourceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| SourceError::new(path, format!("cannot read mapping file: {err}")))?;
        Self::parse(path, &text)
    }

    /// Parses mapping-file text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SourceError> {
        let file: MappingFile = if text.trim().is_empty() {
            MappingFile::default()
        } else {
            serde_norway::from_str(text).map_err(|err| SourceError::from_yaml(path, &err))?
        };
        let base = Mapper::default().default_observer;
        let default_observer = observer_of(&file.defaults, &base);
        let mut mappings = Vec::with_capacity(file.mappings.len());
        for (i, m) in file.mappings.into_iter().enumerate() {
            let bad = |why: String| {
                SourceError::new(path, format!("mapping {} ({:?}): {why}", i + 1, m.pattern))
            };
            let match_type = m
                .options
                .match_type
                .or(file.defaults.match_type)
                .unwrap_or(MatchType::Glob);
            let pattern = match match_type {
                MatchType::Glob => glob_regex(&m.pattern),
                MatchType::Regex => format!("^(?:{})$", m.pattern),
            };
            let regex = Regex::new(&pattern).map_err(|e| bad(format!("invalid match: {e}")))?;
            if m.action == Action::Map && m.name.is_empty() {
                return Err(bad(
                    "a mapping needs a name unless its action is drop".into()
                ));
            }
            for bound in m.options.buckets.iter().chain(
                m.options
                    .histogram_options
                    .iter()
                    .filter_map(|h| h.buckets.as_ref()),
            ) {
                if bound.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(bad(format!("buckets must increase: {bound:?}")));
                }
            }
            let observer = observer_of(&m.options, &default_observer);
            let ttl = m.options.ttl.or(file.defaults.ttl);
            mappings.push(Mapping {
                regex,
                name: m.name,
                labels: m.labels.into_iter().collect(),
                action: m.action,
                metric_type: m.match_metric_type,
                observer,
                ttl_ms: ttl_ms(ttl),
            });
        }
        Ok(Self {
            mappings,
            default_observer,
            default_ttl_ms: ttl_ms(file.defaults.ttl),
        })
    }

    /// The first mapping matching `name` (and its type): `Some(None)` when
    /// it drops the event, `None` when no mapping matches.
    pub fn map(&self, name: &str, kind: EventType) -> Option<Option<Mapped>> {
        for m in &self.mappings {
            if let Some(limit) = m.metric_type {
                let same = matches!(
                    (limit, kind),
                    (MetricType::Counter, EventType::Counter)
                        | (MetricType::Gauge, EventType::Gauge)
                        | (MetricType::Observer, EventType::Observer)
                );
                if !same {
                    continue;
                }
            }
            let Some(captures) = m.regex.captures(name) else {
                continue;
            };
            if m.action == Action::Drop {
                return Some(None);
            }
            let expand = |template: &str| {
                let mut out = String::new();
                captures.expand(template, &mut out);
                out
            };
            return Some(Some(Mapped {
                name: expand(&m.name),
                labels: m
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), expand(v)))
                    .collect(),
                observer: m.observer.clone(),
                ttl_ms: m.ttl_ms,
            }));
        }
        None
    }

    /// What an unmapped name becomes: itself, no labels, the defaults.
    pub fn unmapped(&self, name: &str) -> Mapped {
        Mapped {
            name: name.to_owned(),
            labels: Vec::new(),
            observer: self.default_observer.clone(),
            ttl_ms: self.default_ttl_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(text: &str) -> Mapper {
        Mapper::parse(Path::new("mapping.yml"), text).unwrap()
    }

    #[test]
    fn the_books_mapping_names_the_service_in_a_label() {
        let m = mapper(
            "mappings:\n  - match: \"simplebank-demo.*.request_reservation\"\n    name: \"request_reservation\"\n    labels:\n      app: \"$1\"\n",
        );
        let mapped = m
            .map(
                "simplebank-demo.orders.request_reservation",
                EventType::Observer,
            )
            .unwrap()
            .unwrap();
        assert_eq!(mapped.name, "request_reservation");
        assert_eq!(mapped.labels, [("app".to_owned(), "orders".to_owned())]);
        assert_eq!(
            mapped.observer,
            Observer::Summary {
                quantiles: DEFAULT_QUANTILES.to_vec(),
                max_age_ms: DEFAULT_MAX_AGE_MS
            }
        );
        // `*` stays within one component.
        assert!(
            m.map(
                "simplebank-demo.a.b.request_reservation",
                EventType::Observer
            )
            .is_none()
        );
    }

    #[test]
    fn regex_types_actions_and_observers() {
        let m = mapper(
            r#"
defaults:
  timer_type: histogram
  buckets: [0.1, 1]
mappings:
  - match: "(.*)\\.(.*)--(.*)\\.status\\.(.*)\\.count"
    match_type: regex
    name: "request_total"
    labels: { hostname: "${1}", exec: "$2", protocol: "$3", code: "$4" }
  - match: "noisy.*"
    match_metric_type: counter
    action: drop
  - match: "noisy.*"
    name: "noisy"
  - match: "lat.*"
    observer_type: summary
    quantiles: [{quantile: 0.75, error: 0.01}]
    name: "latency_$1"
"#,
        );
        let mapped = m
            .map("web1.api--http.status.500.count", EventType::Counter)
            .unwrap()
            .unwrap();
        assert_eq!(mapped.name, "request_total");
        assert!(
            mapped
                .labels
                .contains(&("hostname".to_owned(), "web1".to_owned()))
        );
        assert!(
            mapped
                .labels
                .contains(&("code".to_owned(), "500".to_owned()))
        );
        assert_eq!(m.map("noisy.x", EventType::Counter), Some(None));
        assert_eq!(
            m.map("noisy.x", EventType::Gauge).unwrap().unwrap().name,
            "noisy"
        );
        let lat = m.map("lat.db", EventType::Observer).unwrap().unwrap();
        assert_eq!(lat.name, "latency_db");
        assert_eq!(
            lat.observer,
            Observer::Summary {
                quantiles: vec![0.75],
                max_age_ms: DEFAULT_MAX_AGE_MS
            }
        );
        assert_eq!(
            m.unmapped("x").observer,
            Observer::Histogram {
                buckets: vec![0.1, 1.0]
            }
        );
    }

    #[test]
    fn bad_files_say_where_and_why() {
        for (text, says) in [
            ("mappings:\n  - match: \"a.*\"\n", "needs a name"),
            (
                "mappings:\n  - match: \"(\"\n    match_type: regex\n    name: x\n",
                "invalid match",
            ),
            (
                "mappings:\n  - match: a\n    name: x\n    buckets: [1, 0.5]\n",
                "buckets must increase",
            ),
            (
                "mappings:\n  - match: a\n    name: x\n    colour: red\n",
                "colour",
            ),
        ] {
            let err = Mapper::parse(Path::new("m.yml"), text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says) && err.contains("m.yml"), "{text}: {err}");
        }
    }
}
