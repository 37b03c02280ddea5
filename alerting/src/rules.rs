//! Prometheus rule files: groups of alerting and recording rules, in exactly
//! Prometheus's format, validated the way `promtool check rules` does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use sextant_model::{PromDuration, SourceError, is_valid_label_name, is_valid_metric_name};

use crate::{Error, Result};

/// A parsed rule file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Its groups, in file order; names are unique.
    #[serde(default, deserialize_with = "unique_groups")]
    pub groups: Vec<RuleGroup>,
}

fn unique_groups<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<RuleGroup>, D::Error> {
    sextant_model::de::unique_by(deserializer, |g: &RuleGroup| g.name.as_str(), "group")
}

/// A group of rules evaluated together, in order, on one interval.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRuleGroup")]
pub struct RuleGroup {
    /// Unique within its file.
    pub name: String,
    /// How often to evaluate; `global.evaluation_interval` when absent.
    pub interval: Option<PromDuration>,
    /// How far in the past to evaluate, to let late data arrive.
    pub query_offset: Option<PromDuration>,
    /// Most alerts or series a rule may produce; 0 means no limit.
    pub limit: u64,
    /// Labels added to every rule's output.
    pub labels: BTreeMap<String, String>,
    /// The rules, in evaluation order.
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleGroup {
    name: String,
    interval: Option<PromDuration>,
    query_offset: Option<PromDuration>,
    #[serde(default)]
    limit: u64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

impl TryFrom<RawRuleGroup> for RuleGroup {
    type Error = String;

    fn try_from(raw: RawRuleGroup) -> Result<Self, Self::Error> {
        if raw.name.trim().is_empty() {
            return Err("a rule group needs a non-empty `name`".to_owned());
        }
        if raw.interval.is_some_and(PromDuration::is_zero) {
            return Err(format!(
                "group {:?}: `interval` must be above zero",
                raw.name
            ));
        }
        check_label_names(&raw.labels, &format!("group {:?}", raw.name))?;
        Ok(Self {
            name: raw.name,
            interval: raw.interval,
            query_offset: raw.query_offset,
            limit: raw.limit,
            labels: raw.labels,
            rules: raw.rules,
        })
    }
}

/// What an alerting rule does when its condition returns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoDataState {
    /// An alert instance in a `no_data` state of its own.
    #[default]
    NoData,
    /// Nothing: no data is fine.
    Ok,
    /// An alert that fires.
    Alerting,
}

/// How an alerting rule treats an empty result (a Sextant extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoData {
    /// How long the result must stay empty.
    pub after: PromDuration,
    pub state: NoDataState,
}

/// A log rule's condition (a Sextant extension): more than `threshold`
/// log lines matching the rule's query (its `expr`) within `window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogCondition {
    pub window: PromDuration,
    pub threshold: f64,
}

/// Whether a rule alerts or records.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    /// An alerting rule.
    Alert {
        /// The `alertname` label of its alerts.
        name: String,
        /// How long the condition must hold before the alert fires.
        for_duration: PromDuration,
        /// How long the alert keeps firing after the condition clears.
        keep_firing_for: PromDuration,
        /// Templated descriptions (`summary`, `description`, ...).
        annotations: BTreeMap<String, String>,
        /// What an empty result means, when the rule says.
        no_data: Option<NoData>,
    },
    /// A recording rule: its result is stored as a new series.
    Record {
        /// The metric name of the stored series.
        name: String,
    },
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct Rule {
    /// Alerting or recording, with what only that kind has.
    pub kind: RuleKind,
    /// The PromQL expression, or a log rule's log query.
    pub expr: String,
    /// Set for a log rule: `expr` is then a log query.
    pub logs: Option<LogCondition>,
    /// `expr` is LogQL, as a Loki rules file has it (a metric query over
    /// logs), rather than PromQL.
    pub logql: bool,
    /// Labels added to (or overriding) the result's.
    pub labels: BTreeMap<String, String>,
}

impl Rule {
    /// The alert name or recorded metric name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alert { name, .. } | RuleKind::Record { name } => name,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    #[serde(default, deserialize_with = "expr_text")]
    expr: Option<String>,
    /// A log rule's query, window and threshold (Sextant's extension).
    logs: Option<String>,
    window: Option<PromDuration>,
    threshold: Option<f64>,
    no_data_for: Option<PromDuration>,
    no_data_state: Option<NoDataState>,
    #[serde(rename = "for")]
    for_duration: Option<PromDuration>,
    keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// Prometheus reads `expr` as a YAML node, so `expr: 1` is the number 1 as PromQL.
fn expr_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    Ok(match Option::<Scalar>::deserialize(deserializer)? {
        None => None,
        Some(Scalar::Text(text)) => Some(text),
        Some(Scalar::Integer(n)) => Some(n.to_string()),
        Some(Scalar::Float(x)) => Some(x.to_string()),
    })
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, Self::Error> {
        let what = match (&raw.alert, &raw.record) {
            (Some(alert), None) => format!("alert {alert:?}"),
            (None, Some(record)) => format!("record {record:?}"),
            (Some(_), Some(_)) => {
                return Err("a rule has either `alert` or `record`, not both".to_owned());
            }
            (None, None) => return Err("a rule needs `alert` or `record`".to_owned()),
        };
        let (expr, logs, logql) = match (raw.expr, raw.logs) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{what}: a rule has either `expr` (PromQL) or `logs` (a log query), not both"
                ));
            }
            (None, Some(query)) => {
                if raw.record.is_some() {
                    return Err(format!("{what}: `logs` is only for alerting rules"));
                }
                let window = raw
                    .window
                    .filter(|w| !w.is_zero())
                    .ok_or_else(|| format!("{what}: a log rule needs a `window` above zero"))?;
                let threshold = raw.threshold.unwrap_or(0.0);
                if query.trim().is_empty() {
                    return Err(format!("{what}: `logs` must not be empty"));
                }
                (query, Some(LogCondition { window, threshold }), false)
            }
            (Some(expr), None) if !expr.trim().is_empty() => {
                if raw.window.is_some() || raw.threshold.is_some() {
                    return Err(format!(
                        "{what}: `window` and `threshold` belong to log rules (`logs`)"
                    ));
                }
                match sextant_query::promql::parse(&expr) {
                    // `sum(rate({app="x"}[5m]))` is both: no PromQL rule
                    // selects without a metric name, every LogQL one does.
                    Ok(_) if is_logql_metric(&expr) => (expr, None, true),
                    Ok(_) => (expr, None, false),
                    // Not PromQL: a Loki rules file's LogQL metric query.
                    Err(e) => match sextant_query::logql::parse::parse(&expr) {
                        Ok(sextant_query::logql::ast::Expr::Metric(_)) => (expr, None, true),
                        Ok(sextant_query::logql::ast::Expr::Log(_)) => {
                            return Err(format!(
                                "{what}: {expr:?} is a LogQL log query; a rule needs a metric query (count_over_time, rate, ...)"
                            ));
                        }
                        Err(sextant_query::Error::Parse(logql)) if looks_like_logql(&expr) => {
                            return Err(format!(
                                "{what}: invalid LogQL expression {expr:?}: {logql}"
                            ));
                        }
                        Err(_) => {
                            return Err(format!("{what}: invalid expression {expr:?}: {e}"));
                        }
                    },
                }
            }
            _ => return Err(format!("{what}: `expr` is required")),
        };
        check_label_names(&raw.labels, &what)?;
        for (name, text) in raw.labels.iter().chain(raw.annotations.iter().flatten()) {
            if let Err(e) = crate::template::Template::parse(text) {
                return Err(format!("{what}: template of {name:?}: {e}"));
            }
        }
        let no_data = match (raw.no_data_for, raw.no_data_state) {
            (None, None) => None,
            (Some(after), state) => Some(NoData {
                after,
                state: state.unwrap_or_default(),
            }),
            (None, Some(_)) => {
                return Err(format!("{what}: `no_data_state` needs `no_data_for`"));
            }
        };
        let kind = if let Some(name) = raw.alert {
            if name.trim().is_empty() {
                return Err("`alert` must not be empty".to_owned());
            }
            RuleKind::Alert {
                name,
                for_duration: raw.for_duration.unwrap_or_default(),
                keep_firing_for: raw.keep_firing_for.unwrap_or_default(),
                annotations: raw.annotations.unwrap_or_default(),
                no_data,
            }
        } else {
            let name = raw.record.unwrap_or_default();
            if !is_valid_metric_name(&name) {
                return Err(format!(
                    "{what}: `record` must be a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
                ));
            }
            let alert_only = [
                ("for", raw.for_duration.is_some()),
                ("keep_firing_for", raw.keep_firing_for.is_some()),
                ("annotations", raw.annotations.is_some()),
                ("no_data_for", no_data.is_some()),
            ];
            if let Some((field, _)) = alert_only.iter().find(|(_, present)| *present) {
                return Err(format!(
                    "{what}: `{field}` is only for alerting rules, not recording rules"
                ));
            }
            RuleKind::Record { name }
        };
        Ok(Self {
            kind,
            expr,
            logs,
            logql,
            labels: raw.labels,
        })
    }
}

/// Whether an expression that parses as PromQL is rather a LogQL metric
/// query: none of its selectors names a metric, and LogQL reads it.
fn is_logql_metric(expr: &str) -> bool {
    let nameless = sextant_query::promql::selectors(expr).is_ok_and(|sets| {
        !sets.is_empty()
            && sets
                .iter()
                .all(|set| set.iter().all(|m| m.name != "__name__"))
    });
    nameless
        && matches!(
            sextant_query::logql::parse::parse(expr),
            Ok(sextant_query::logql::ast::Expr::Metric(_))
        )
}

/// Whether an expression that is neither PromQL nor LogQL was meant as
/// LogQL (a stream selector followed by a pipeline), so its error is
/// LogQL's.
fn looks_like_logql(expr: &str) -> bool {
    let compact: String = expr.split_whitespace().collect();
    compact.contains("}|") || compact.contains("}!~")
}

fn check_label_names(labels: &BTreeMap<String, String>, owner: &str) -> Result<(), String> {
    match labels.keys().find(|name| !is_valid_label_name(name)) {
        Some(name) => Err(format!("{owner}: label name {name:?} is invalid")),
        None => Ok(()),
    }
}

/// Parses a rule file's text; `path` is only used in errors.
pub fn parse_rule_file(path: &Path, text: &str) -> Result<RuleFile> {
    if text.trim().is_empty() {
        return Ok(RuleFile { groups: Vec::new() });
    }
    // libyaml's time is quadratic in the nesting of flow collections
    // (`groups: [[[[...]]]]` 60,000 deep took half a minute of CPU).
    // Every `[` and `{` is counted, quoted or not, so no quoting hides
    // nesting; a real file has a few per rule.
    let brackets = text.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
    let limit = sextant_model::depth::max_depth()
        .saturating_mul(10)
        .max(MIN_BRACKET_LIMIT);
    if brackets > limit {
        return Err(SourceError::new(
            path,
            format!(
                "{brackets} '[' and '{{' in one rule file, more than {limit} (ten times query.max_depth, at least {MIN_BRACKET_LIMIT}): split the file or raise query.max_depth"
            ),
        )
        .into());
    }
    serde_norway::from_str(text).map_err(|err| SourceError::from_yaml(path, &err).into())
}

/// The fewest `[` and `{` a rule file may hold whatever `query.max_depth`.
const MIN_BRACKET_LIMIT: usize = 20_000;

/// Reads and parses one rule file.
pub fn load_rule_file(path: &Path) -> Result<RuleFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| SourceError::new(path, format!("cannot read rule file: {err}")))?;
    parse_rule_file(path, &text)
}

/// Expands `rule_files` patterns, relative to `base`, into the files they name,
/// sorted and without duplicates.
///
/// A glob that matches nothing is fine (as in Prometheus), but a plain path that
/// does not exist is an error: it is almost always a typo.
pub fn expand_rule_files(base: &Path, patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = BTreeSet::new();
    for pattern in patterns {
        let full = base.join(pattern);
        let full_text = full.to_string_lossy();
        let is_glob = pattern.contains(['*', '?', '[']);
        if !is_glob {
            if !full.is_file() {
                return Err(SourceError::new(&full, "rule file not found").into());
            }
            files.insert(full);
            continue;
        }
        let paths = glob::glob(&full_text).map_err(|err| Error::InvalidGlob {
            pattern: pattern.clone(),
            message: err.to_string(),
        })?;
        for path in paths {
            let path = path.map_err(|err| {
                SourceError::new(err.path(), format!("cannot read: {}", err.error()))
            })?;
            if path.is_file() {
                files.insert(path);
            }
        }
    }
    Ok(files.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<RuleFile, String> {
        parse_rule_file(Path::new("rules.yml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn loki_rules_are_told_from_prometheus_rules() {
        let language = |expr: &str| {
            let text = format!(
                "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: '{expr}'\n"
            );
            parse(&text).map(|f| f.groups[0].rules[0].logql)
        };
        // Only LogQL reads a pipeline.
        assert_eq!(
            language(r#"sum(count_over_time({app="x"} |= "failed" [5m])) > 5"#),
            Ok(true)
        );
        // Both read these; no PromQL rule selects without a metric name.
        assert_eq!(
            language(r#"sum by (app) (rate({app="x"}[5m])) > 1"#),
            Ok(true)
        );
        assert_eq!(
            language(r#"sum(rate(http_requests_total{app="x"}[5m])) > 1"#),
            Ok(false)
        );
        assert_eq!(language(r#"up{job="x"} == 0"#), Ok(false));
        assert_eq!(
            language(r#"count({__name__=~"up|scrape_.*"}) > 0"#),
            Ok(false)
        );
        let err = language(r#"sum(count_over_time({app="x"} |= [5m]))"#).unwrap_err();
        assert!(err.contains("invalid LogQL expression"), "{err}");
        let err = language(r#"{app="x"} |= "failed""#).unwrap_err();
        assert!(err.contains("a rule needs a metric query"), "{err}");
    }

    #[test]
    fn a_real_prometheus_rule_file_parses() {
        let file = parse(
            r#"
groups:
  - name: rabbitmq
    interval: 30s
    rules:
      - alert: HighNumberOfMessagesInQueue
        expr: avg_over_time(rabbitmq_queue_messages[1m]) > 100
        for: 0s
        labels:
          severity: page
        annotations:
          summary: "Messages accumulating in the queue"
          description: "{{ $labels.queue }} holds {{ $value }} messages"
  - name: orders
    rules:
      - record: job:orders_placed:rate1m
        expr: sum by (job) (rate(simplebank_demo_gateway_sell_shares_count[1m]))
      - alert: NoOrdersCompleted
        expr: |
          sum(rate(simplebank_demo_fees_charge_fee_count[5m])) == 0
        for: 5m
        keep_firing_for: 1m
      - record: one
        expr: 1
"#,
        )
        .unwrap();
        assert_eq!(file.groups.len(), 2);
        let queue = &file.groups[0];
        assert_eq!(queue.interval.unwrap().to_string(), "30s");
        assert_eq!(queue.rules[0].name(), "HighNumberOfMessagesInQueue");
        let RuleKind::Alert { annotations, .. } = &queue.rules[0].kind else {
            panic!("not an alert: {:?}", queue.rules[0]);
        };
        assert!(annotations["description"].contains("{{ $value }}"));
        let orders = &file.groups[1];
        assert_eq!(
            orders.rules[0].kind,
            RuleKind::Record {
                name: "job:orders_placed:rate1m".into()
            }
        );
        let RuleKind::Alert {
            for_duration,
            keep_firing_for,
            ..
        } = &orders.rules[1].kind
        else {
            panic!("not an alert");
        };
        assert_eq!(
            (for_duration.to_string(), keep_firing_for.to_string()),
            ("5m".into(), "1m".into())
        );
        assert_eq!(orders.rules[2].expr, "1");
    }

    #[test]
    fn an_empty_file_has_no_groups() {
        assert!(parse("").unwrap().groups.is_empty());
        assert!(parse("groups: []").unwrap().groups.is_empty());
    }

    #[test]
    fn bad_rule_files_name_the_line_and_the_reason() {
        for (text, line, reason) in [
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        fore: 5m\n",
                6,
                "unknown field `fore`",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        for: 5 minutes\n",
                6,
                "invalid duration",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n",
                4,
                "`expr` is required",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - expr: up\n",
                4,
                "needs `alert` or `record`",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - record: x\n        alert: y\n        expr: up\n",
                4,
                "not both",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - record: bad-name\n        expr: up\n",
                4,
                "valid metric name",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up\n        for: 1m\n",
                4,
                "only for alerting rules",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels: {0bad: x}\n",
                4,
                "label name \"0bad\" is invalid",
            ),
            (
                "groups:\n  - name: a\n  - name: a\n",
                2,
                "defined more than once",
            ),
            ("groups:\n  - rules: []\n", 2, "missing field `name`"),
            ("groups:\n  - name: a\n    interval: 0s\n", 2, "above zero"),
            ("group:\n  - name: a\n", 1, "unknown field `group`"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}\n=> {err}");
            assert!(
                err.starts_with(&format!("rules.yml:{line}:")),
                "{text}\n=> {err}"
            );
        }
    }

    #[test]
    fn rule_file_globs_expand_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        for name in ["b.yml", "a.yml", "c.txt"] {
            std::fs::write(dir.path().join("rules").join(name), "groups: []").unwrap();
        }
        let files = expand_rule_files(
            dir.path(),
            &[
                "rules/*.yml".into(),
                "rules/a.yml".into(),
                "none/*.yml".into(),
            ],
        )
        .unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.yml", "b.yml"]);

        let err = expand_rule_files(dir.path(), &["rules/missing.yml".into()])
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("missing.yml: rule file not found"), "{err}");
        let err = expand_rule_files(dir.path(), &["rules/[.yml".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid glob"), "{err}");
    }
}
