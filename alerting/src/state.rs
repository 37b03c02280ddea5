//! The life of an alert: one instance per label set of a rule's result,
//! inactive -> pending (while `for` runs) -> firing -> resolved, as
//! Prometheus's alerting rules move them, plus `no_data` when a rule asks
//! for it. Every change is a [`Transition`] for the history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rules::{NoDataState, Rule, RuleKind};
use crate::template::{Context, Template};

/// Labels or annotations by name.
pub type LabelMap = BTreeMap<String, String>;

/// How long a resolved alert is kept (and sent as resolved), as Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Where an alert instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Resolved (or never active).
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition has held for `for`.
    Firing,
    /// The rule's expression returned nothing for its `no_data_for`.
    NoData,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::NoData => "nodata",
        }
    }
}

/// One alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub state: AlertState,
    /// The value of the sample that made it (the match count of a log rule).
    pub value: f64,
    /// When the condition began to hold, ms.
    pub active_at_ms: i64,
    /// When it began firing, ms.
    pub fired_at_ms: Option<i64>,
    /// When it resolved, ms.
    pub resolved_at_ms: Option<i64>,
    /// When the condition stopped holding while `keep_firing_for` keeps it firing.
    pub keep_firing_since_ms: Option<i64>,
}

/// A change of an alert's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub rule: String,
    pub group: String,
    pub labels: LabelMap,
    pub from: AlertState,
    pub to: AlertState,
    pub value: f64,
    pub at_ms: i64,
}

/// Alertmanager's fingerprint: FNV-1a 64 over the sorted label pairs.
pub fn fingerprint(labels: &LabelMap) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, value) in labels {
        eat(name.as_bytes());
        eat(&[0xff]);
        eat(value.as_bytes());
        eat(&[0xff]);
    }
    format!("{hash:016x}")
}

/// The alert instances of one alerting rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleAlerts {
    /// By fingerprint.
    pub alerts: BTreeMap<String, Alert>,
    /// The last evaluation whose result was not empty, ms.
    pub last_data_ms: Option<i64>,
    /// The first evaluation, ms (no data is counted from here at first).
    pub first_eval_ms: Option<i64>,
}

/// Where and when a rule is evaluated.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation<'a> {
    /// The group's name.
    pub group: &'a str,
    /// Labels the group adds to every rule's output.
    pub group_labels: &'a LabelMap,
    pub now_ms: i64,
    /// For `$externalURL` in templates.
    pub external_url: &'a str,
}

/// What one evaluation of an alerting rule returned: labels and value per sample.
pub type Results = Vec<(LabelMap, f64)>;

impl RuleAlerts {
    /// Moves the instances on by one evaluation at `now_ms` with `results`;
    /// fails (changing nothing) when two results have the same labels once
    /// the rule's labels are applied.
    pub fn evaluate(
        &mut self,
        rule: &Rule,
        at: &Evaluation<'_>,
        results: Results,
        transitions: &mut Vec<Transition>,
    ) -> Result<(), String> {
        let Evaluation {
            group,
            group_labels,
            now_ms,
            external_url,
        } = *at;
        let RuleKind::Alert {
            name,
            for_duration,
            keep_firing_for,
            annotations,
            no_data,
        } = &rule.kind
        else {
            return Ok(());
        };
        self.first_eval_ms.get_or_insert(now_ms);
        let mut seen: BTreeMap<String, (LabelMap, LabelMap, f64)> = BTreeMap::new();
        let empty = results.is_empty();
        // Templates are parsed once per evaluation, not once per alert.
        let compile = |map: &'_ BTreeMap<String, String>| -> Vec<(String, Template)> {
            map.iter()
                .map(|(k, v)| {
                    let template = Template::parse(v).unwrap_or_else(|e| {
                        Template::literal(format!("<error expanding template: {e}>"))
                    });
                    (k.clone(), template)
                })
                .collect()
        };
        let label_templates = compile(&rule.labels);
        let annotation_templates = compile(annotations);
        for (mut labels, value) in results {
            labels.remove("__name__");
            let context = Context {
                labels: &labels,
                value,
                external_url,
            };
            let mut extra: LabelMap = group_labels.clone();
            for (k, t) in &label_templates {
                extra.insert(k.clone(), t.expand(&context));
            }
            let expanded: LabelMap = annotation_templates
                .iter()
                .map(|(k, t)| (k.clone(), t.expand(&context)))
                .collect();
            for (k, v) in extra {
                if v.is_empty() {
                    labels.remove(&k);
                } else {
                    labels.insert(k, v);
                }
            }
            labels.insert("alertname".to_owned(), name.clone());
            let fp = fingerprint(&labels);
            if seen.contains_key(&fp) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_owned(),
                );
            }
            seen.insert(fp, (labels, expanded, value));
        }
        let mut note = |alert: &Alert, from: AlertState, to: AlertState| {
            transitions.push(Transition {
                rule: name.clone(),
                group: group.to_owned(),
                labels: alert.labels.clone(),
                from,
                to,
                value: alert.value,
                at_ms: now_ms,
            });
        };
        // No data: one instance with the rule's own labels.
        let no_data_fp = no_data.map(|nd| {
            let mut labels = group_labels.clone();
            for (k, v) in &rule.labels {
                if !v.contains("{{") {
                    labels.insert(k.clone(), v.clone());
                }
            }
            labels.insert("alertname".to_owned(), name.clone());
            labels.insert("alertstate".to_owned(), "nodata".to_owned());
            (nd, fingerprint(&labels), labels)
        });
        if !empty {
            self.last_data_ms = Some(now_ms);
        }
        if let Some((nd, fp, labels)) = no_data_fp {
            let since = self.last_data_ms.or(self.first_eval_ms).unwrap_or(now_ms);
            let silent_for = now_ms - since;
            if empty && silent_for >= nd.after.as_millis() as i64 && nd.state != NoDataState::Ok {
                let to = match nd.state {
                    NoDataState::Alerting => AlertState::Firing,
                    _ => AlertState::NoData,
                };
                let live = self
                    .alerts
                    .get(&fp)
                    .is_some_and(|a| a.state != AlertState::Inactive);
                if !live {
                    let alert = Alert {
                        labels,
                        annotations: LabelMap::new(),
                        state: to,
                        value: 0.0,
                        active_at_ms: since,
                        fired_at_ms: Some(now_ms),
                        resolved_at_ms: None,
                        keep_firing_since_ms: None,
                    };
                    note(&alert, AlertState::Inactive, to);
                    self.alerts.insert(fp.clone(), alert);
                }
                seen.insert(fp, (LabelMap::new(), LabelMap::new(), f64::NAN));
            }
        }
        for (fp, (labels, annotations, value)) in &seen {
            if value.is_nan() {
                continue;
            }
            match self.alerts.get_mut(fp) {
                Some(alert) if alert.state != AlertState::Inactive => {
                    alert.value = *value;
                    alert.annotations = annotations.clone();
                    alert.keep_firing_since_ms = None;
                }
                _ => {
                    let alert = Alert {
                        labels: labels.clone(),
                        annotations: annotations.clone(),
                        state: AlertState::Pending,
                        value: *value,
                        active_at_ms: now_ms,
                        fired_at_ms: None,
                        resolved_at_ms: None,
                        keep_firing_since_ms: None,
                    };
                    note(&alert, AlertState::Inactive, AlertState::Pending);
                    self.alerts.insert(fp.clone(), alert);
                }
            }
        }
        let keep_ms = keep_firing_for.as_millis() as i64;
        let mut forget = Vec::new();
        for (fp, alert) in &mut self.alerts {
            if seen.contains_key(fp) {
                if alert.state == AlertState::Pending
                    && now_ms - alert.active_at_ms >= for_duration.as_millis() as i64
                {
                    alert.state = AlertState::Firing;
                    alert.fired_at_ms = Some(now_ms);
                    note(alert, AlertState::Pending, AlertState::Firing);
                }
                continue;
            }
            match alert.state {
                AlertState::Pending => {
                    note(alert, AlertState::Pending, AlertState::Inactive);
                    forget.push(fp.clone());
                }
                AlertState::Firing | AlertState::NoData => {
                    if alert.state == AlertState::Firing && keep_ms > 0 {
                        let since = *alert.keep_firing_since_ms.get_or_insert(now_ms);
                        if now_ms - since < keep_ms {
                            continue;
                        }
                    }
                    let from = alert.state;
                    alert.state = AlertState::Inactive;
                    alert.resolved_at_ms = Some(now_ms);
                    note(alert, from, AlertState::Inactive);
                }
                AlertState::Inactive => {
                    if alert
                        .resolved_at_ms
                        .is_none_or(|r| now_ms - r > RESOLVED_RETENTION_MS)
                    {
                        forget.push(fp.clone());
                    }
                }
            }
        }
        for fp in forget {
            self.alerts.remove(&fp);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rule_file;

    fn at(now_ms: i64) -> Evaluation<'static> {
        static EMPTY: LabelMap = LabelMap::new();
        Evaluation {
            group: "q",
            group_labels: &EMPTY,
            now_ms,
            external_url: "",
        }
    }

    fn rule(text: &str) -> Rule {
        let file = parse_rule_file(std::path::Path::new("r.yml"), text).unwrap();
        file.groups[0].rules[0].clone()
    }

    fn result(queue: &str, value: f64) -> Results {
        vec![(
            LabelMap::from([
                ("__name__".to_owned(), "rabbitmq_queue_messages".to_owned()),
                ("queue".to_owned(), queue.to_owned()),
            ]),
            value,
        )]
    }

    #[test]
    fn pending_then_firing_then_resolved_as_prometheus_moves_them() {
        let rule = rule(
            "groups:\n- name: q\n  rules:\n  - alert: Queue\n    expr: x > 100\n    for: 1m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.queue }} holds {{ $value }}'}\n",
        );
        let mut alerts = RuleAlerts::default();
        let mut log = Vec::new();
        let step = |alerts: &mut RuleAlerts, log: &mut Vec<Transition>, results, t| {
            alerts.evaluate(&rule, &at(t), results, log).unwrap();
        };
        step(&mut alerts, &mut log, result("orders", 150.0), 0);
        let alert = alerts.alerts.values().next().unwrap().clone();
        assert_eq!(alert.state, AlertState::Pending);
        assert_eq!(alert.labels["alertname"], "Queue");
        assert_eq!(alert.labels["severity"], "page");
        assert!(!alert.labels.contains_key("__name__"));
        assert_eq!(alert.annotations["summary"], "orders holds 150");
        step(&mut alerts, &mut log, result("orders", 160.0), 30_000);
        assert_eq!(
            alerts.alerts.values().next().unwrap().state,
            AlertState::Pending
        );
        step(&mut alerts, &mut log, result("orders", 170.0), 60_000);
        let alert = alerts.alerts.values().next().unwrap().clone();
        assert_eq!(alert.state, AlertState::Firing);
        assert_eq!(alert.fired_at_ms, Some(60_000));
        assert_eq!(alert.annotations["summary"], "orders holds 170");
        step(&mut alerts, &mut log, Vec::new(), 90_000);
        let alert = alerts.alerts.values().next().unwrap().clone();
        assert_eq!(alert.state, AlertState::Inactive);
        assert_eq!(alert.resolved_at_ms, Some(90_000));
        let states: Vec<(AlertState, AlertState)> = log.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(
            states,
            [
                (AlertState::Inactive, AlertState::Pending),
                (AlertState::Pending, AlertState::Firing),
                (AlertState::Firing, AlertState::Inactive),
            ]
        );
        // A pending alert whose condition clears is forgotten, not resolved.
        step(&mut alerts, &mut log, result("billing", 150.0), 100_000);
        step(&mut alerts, &mut log, Vec::new(), 110_000);
        assert!(
            alerts
                .alerts
                .values()
                .all(|a| a.labels["queue"] == "orders")
        );
        // Resolved alerts are forgotten after 15 minutes.
        step(
            &mut alerts,
            &mut log,
            Vec::new(),
            90_000 + RESOLVED_RETENTION_MS + 1,
        );
        assert!(alerts.alerts.is_empty());
    }

    #[test]
    fn keep_firing_for_and_for_zero() {
        let rule = rule(
            "groups:\n- name: q\n  rules:\n  - alert: Q\n    expr: x > 1\n    keep_firing_for: 1m\n",
        );
        let mut alerts = RuleAlerts::default();
        let mut log = Vec::new();
        alerts
            .evaluate(&rule, &at(0), result("a", 2.0), &mut log)
            .unwrap();
        assert_eq!(
            alerts.alerts.values().next().unwrap().state,
            AlertState::Firing
        );
        alerts
            .evaluate(&rule, &at(30_000), Vec::new(), &mut log)
            .unwrap();
        assert_eq!(
            alerts.alerts.values().next().unwrap().state,
            AlertState::Firing
        );
        alerts
            .evaluate(&rule, &at(60_000), Vec::new(), &mut log)
            .unwrap();
        assert_eq!(
            alerts.alerts.values().next().unwrap().state,
            AlertState::Firing
        );
        alerts
            .evaluate(&rule, &at(90_001), Vec::new(), &mut log)
            .unwrap();
        assert_eq!(
            alerts.alerts.values().next().unwrap().state,
            AlertState::Inactive
        );
    }

    #[test]
    fn no_data_is_a_state_of_its_own_and_clears_when_data_returns() {
        let rule = rule(
            "groups:\n- name: q\n  rules:\n  - alert: NoOrders\n    expr: rate(orders[1m]) > 0\n    no_data_for: 2m\n",
        );
        let mut alerts = RuleAlerts::default();
        let mut log = Vec::new();
        alerts
            .evaluate(&rule, &at(0), Vec::new(), &mut log)
            .unwrap();
        assert!(alerts.alerts.is_empty(), "not silent long enough yet");
        alerts
            .evaluate(&rule, &at(120_000), Vec::new(), &mut log)
            .unwrap();
        let alert = alerts.alerts.values().next().unwrap().clone();
        assert_eq!(alert.state, AlertState::NoData);
        assert_eq!(alert.labels["alertstate"], "nodata");
        alerts
            .evaluate(&rule, &at(150_000), result("a", 1.0), &mut log)
            .unwrap();
        let states: Vec<AlertState> = alerts.alerts.values().map(|a| a.state).collect();
        assert!(states.contains(&AlertState::Inactive), "{states:?}");
        assert!(states.contains(&AlertState::Pending) || states.contains(&AlertState::Firing));
    }

    #[test]
    fn duplicate_label_sets_are_an_error() {
        let rule = rule(
            "groups:\n- name: q\n  rules:\n  - alert: Q\n    expr: x > 1\n    labels: {queue: same}\n",
        );
        let mut results = result("a", 2.0);
        results.extend(result("b", 3.0));
        let err = RuleAlerts::default()
            .evaluate(&rule, &at(0), results, &mut Vec::new())
            .unwrap_err();
        assert!(err.contains("same labelset"), "{err}");
    }
}
