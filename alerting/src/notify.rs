//! From alerts to notifications, as Alertmanager does it: alerts walk the
//! routing tree to receivers, gather in groups by `group_by` labels, and a
//! group notifies `group_wait` after it forms, then at most every
//! `group_interval` when something changed, and again every
//! `repeat_interval` while alerts fire. Silences and inhibition mute alerts on
//! the way. A notification becomes one webhook body per webhook, in
//! Alertmanager's v4 shape or Grafana's legacy shape.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sextant_model::{MatchOp, Matcher};

use crate::config::{AlertingConfig, InhibitRule, Route, WebhookFormat};
use crate::state::{LabelMap, fingerprint};

/// Alertmanager's defaults.
const GROUP_WAIT_MS: i64 = 30_000;
const GROUP_INTERVAL_MS: i64 = 5 * 60_000;
const REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// Where an alert stands for a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    /// Firing because its rule had no data.
    NoData,
    Resolved,
}

/// An alert as the notifier sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyAlert {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub status: Status,
    pub value: f64,
    pub starts_at_ms: i64,
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

impl NotifyAlert {
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }
}

/// A silence, in Alertmanager's v2 shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    #[serde(default)]
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    /// RFC 3339.
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    /// RFC 3339: when it was last set (Alertmanager's `updatedAt`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub updated_at: String,
}

/// One matcher of a silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Silence {
    /// Checks the silence and returns its matchers compiled; the error names what is wrong.
    pub fn compile(&self) -> Result<Vec<Matcher>, String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher".to_owned());
        }
        let (Some(start), Some(end)) = (self.starts_at_ms(), self.ends_at_ms()) else {
            return Err("startsAt and endsAt must be RFC 3339 times".to_owned());
        };
        if end <= start {
            return Err("endsAt must be after startsAt".to_owned());
        }
        let matchers = self
            .matchers
            .iter()
            .map(|m| {
                if m.name.is_empty() {
                    return Err("a matcher needs a name".to_owned());
                }
                let op = match (m.is_regex, m.is_equal) {
                    (false, true) => MatchOp::Equal,
                    (false, false) => MatchOp::NotEqual,
                    (true, true) => MatchOp::Regex,
                    (true, false) => MatchOp::NotRegex,
                };
                Matcher::new(m.name.clone(), op, m.value.clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if matchers.iter().all(Matcher::matches_empty) {
            return Err("at least one matcher must not match the empty string".to_owned());
        }
        Ok(matchers)
    }

    pub fn starts_at_ms(&self) -> Option<i64> {
        sextant_model::time::parse_rfc3339_micros(&self.starts_at).map(|us| us / 1000)
    }

    pub fn ends_at_ms(&self) -> Option<i64> {
        sextant_model::time::parse_rfc3339_micros(&self.ends_at).map(|us| us / 1000)
    }

    /// `active`, `pending` or `expired` at `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        match (self.starts_at_ms(), self.ends_at_ms()) {
            (Some(s), _) if now_ms < s => "pending",
            (_, Some(e)) if now_ms >= e => "expired",
            _ => "active",
        }
    }
}

/// A new silence id: a random UUID (version 4), as Alertmanager's.
pub fn new_silence_id() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Each RandomState is keyed afresh from the process's random seed.
    let random = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(nanos);
        h.write_u64(count);
        h.write_u64(salt);
        h.finish()
    };
    let (hi, lo) = (random(1), random(2));
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0xc000 << 48)) | (0x8000 << 48);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn matches_all(matchers: &[Matcher], labels: &LabelMap) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    sextant_model::time::rfc3339_utc(i128::from(ms) * 1_000_000, 3)
}

/// A sample value as Prometheus's APIs write alert values (`1.5e+02`).
pub fn value_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// A flattened route with everything inherited resolved.
#[derive(Debug, Clone)]
struct FlatRoute {
    /// Matchers from the root to here, for the group key.
    path: Vec<String>,
    matchers: Vec<Matcher>,
    receiver: String,
    group_by: Option<Vec<String>>,
    group_wait_ms: i64,
    group_interval_ms: i64,
    repeat_interval_ms: i64,
    continue_matching: bool,
    children: Vec<usize>,
}

/// A group of alerts that notify together.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Group {
    pub key: String,
    pub receiver: String,
    pub labels: LabelMap,
    route: usize,
    alerts: BTreeMap<String, NotifyAlert>,
    next_flush_ms: i64,
    last_notified_ms: Option<i64>,
    /// Fingerprints the receiver was last told are firing.
    notified_firing: BTreeSet<String>,
}

impl Group {
    /// The alerts of the group, resolved ones not yet told included.
    pub fn alerts(&self) -> impl Iterator<Item = &NotifyAlert> {
        self.alerts.values()
    }
}

/// What mutes alerts at one moment, for Alertmanager's API: the active
/// silences, and each inhibition rule with its firing sources indexed by
/// the values of its `equal` labels.
#[derive(Debug)]
pub struct Suppression {
    silences: Vec<(String, Vec<Matcher>)>,
    rules: Vec<InhibitIndex>,
}

#[derive(Debug)]
struct InhibitIndex {
    target: Vec<Matcher>,
    equal: Vec<String>,
    /// The values of `equal` -> the sources with them (labels, fingerprint).
    sources: std::collections::HashMap<Vec<Option<String>>, Vec<(LabelMap, String)>>,
}

impl Suppression {
    /// The ids of the active silences that mute `labels`.
    pub fn silenced_by(&self, labels: &LabelMap) -> Vec<String> {
        self.silences
            .iter()
            .filter(|(_, matchers)| matches_all(matchers, labels))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The fingerprints of the firing alerts that inhibit `labels`, as the
    /// dispatcher mutes them.
    pub fn inhibited_by(&self, labels: &LabelMap) -> Vec<String> {
        let mut by = BTreeSet::new();
        for rule in &self.rules {
            if !matches_all(&rule.target, labels) {
                continue;
            }
            let key: Vec<Option<String>> =
                rule.equal.iter().map(|n| labels.get(n).cloned()).collect();
            for (source, fp) in rule.sources.get(&key).into_iter().flatten() {
                if source != labels {
                    by.insert(fp.clone());
                }
            }
        }
        by.into_iter().collect()
    }
}

/// What is due to a receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: LabelMap,
    pub alerts: Vec<NotifyAlert>,
}

/// One webhook request to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub receiver: String,
    pub url: String,
    /// The CA bundle for an `https://` URL (the system's roots when absent).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// The routing tree, the groups, silences and inhibition.
#[derive(Debug, Default)]
pub struct Dispatcher {
    routes: Vec<FlatRoute>,
    inhibit: Vec<(Vec<Matcher>, Vec<Matcher>, Vec<String>)>,
    config: AlertingConfig,
    pub groups: BTreeMap<String, Group>,
    pub silences: Vec<Silence>,
}

fn flatten(
    route: &Route,
    parent: Option<&FlatRoute>,
    path: Vec<String>,
    out: &mut Vec<FlatRoute>,
) -> usize {
    let inherit = |own: Option<sextant_model::PromDuration>, from: Option<i64>, default: i64| {
        own.map_or(from.unwrap_or(default), |d| d.as_millis() as i64)
    };
    let flat = FlatRoute {
        path,
        matchers: route.matchers.clone(),
        receiver: route
            .receiver
            .clone()
            .or_else(|| parent.map(|p| p.receiver.clone()))
            .unwrap_or_default(),
        group_by: route
            .group_by
            .clone()
            .or_else(|| parent.and_then(|p| p.group_by.clone())),
        group_wait_ms: inherit(
            route.group_wait,
            parent.map(|p| p.group_wait_ms),
            GROUP_WAIT_MS,
        ),
        group_interval_ms: inherit(
            route.group_interval,
            parent.map(|p| p.group_interval_ms),
            GROUP_INTERVAL_MS,
        ),
        repeat_interval_ms: inherit(
            route.repeat_interval,
            parent.map(|p| p.repeat_interval_ms),
            REPEAT_INTERVAL_MS,
        ),
        continue_matching: route.continue_matching,
        children: Vec::new(),
    };
    let index = out.len();
    out.push(flat);
    for child in &route.routes {
        let mut path = out[index].path.clone();
        let matchers: Vec<String> = child
            .matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    MatchOp::Equal => "=",
                    MatchOp::NotEqual => "!=",
                    MatchOp::Regex => "=~",
                    MatchOp::NotRegex => "!~",
                };
                format!("{}{op}{:?}", m.name, m.value)
            })
            .collect();
        path.push(format!("{{{}}}", matchers.join(",")));
        let parent = out[index].clone();
        let child_index = flatten(child, Some(&parent), path, out);
        out[index].children.push(child_index);
    }
    index
}

impl Dispatcher {
    pub fn new(config: &AlertingConfig) -> Self {
        let mut routes = Vec::new();
        if let Some(route) = &config.route {
            flatten(route, None, vec!["{}".to_owned()], &mut routes);
        }
        let inhibit = config
            .inhibit_rules
            .iter()
            .map(|r: &InhibitRule| {
                (
                    r.source_matchers.clone(),
                    r.target_matchers.clone(),
                    r.equal.clone(),
                )
            })
            .collect();
        Self {
            routes,
            inhibit,
            config: config.clone(),
            groups: BTreeMap::new(),
            silences: Vec::new(),
        }
    }

    /// The routes an alert goes to: the deepest matching ones, as Alertmanager walks.
    fn matching(&self, node: usize, labels: &LabelMap, out: &mut Vec<usize>) -> bool {
        let route = &self.routes[node];
        if !matches_all(&route.matchers, labels) {
            return false;
        }
        let mut matched_child = false;
        for &child in &route.children {
            if self.matching(child, labels, out) {
                matched_child = true;
                if !self.routes[child].continue_matching {
                    break;
                }
            }
        }
        if !matched_child {
            out.push(node);
        }
        true
    }

    /// Takes the current alerts of one evaluation (firing, no-data and
    /// recently resolved; pending ones are not notified).
    pub fn receive(&mut self, alerts: Vec<NotifyAlert>, now_ms: i64) {
        if self.routes.is_empty() {
            return;
        }
        for alert in alerts {
            let mut routes = Vec::new();
            self.matching(0, &alert.labels, &mut routes);
            for route_index in routes {
                let route = &self.routes[route_index];
                let labels: LabelMap = match &route.group_by {
                    Some(names) if names.iter().any(|n| n == "...") => alert.labels.clone(),
                    Some(names) => names
                        .iter()
                        .filter_map(|n| alert.labels.get(n).map(|v| (n.clone(), v.clone())))
                        .collect(),
                    None => LabelMap::new(),
                };
                let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                let key = format!("{}:{{{}}}", route.path.join("/"), pairs.join(", "));
                let fp = alert.fingerprint();
                let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
                    key,
                    receiver: route.receiver.clone(),
                    labels,
                    route: route_index,
                    next_flush_ms: now_ms + route.group_wait_ms,
                    ..Group::default()
                });
                match group.alerts.get(&fp) {
                    // A resolved alert is not revived by an older firing copy.
                    Some(old)
                        if old.status == Status::Resolved
                            && alert.status != Status::Resolved
                            && alert.starts_at_ms <= old.ends_at_ms.unwrap_or(i64::MIN) => {}
                    _ => {
                        group.alerts.insert(fp, alert.clone());
                    }
                }
            }
        }
    }

    /// The receivers of the routes `labels` takes, each once, in the tree's order.
    pub fn receivers_of(&self, labels: &LabelMap) -> Vec<String> {
        if self.routes.is_empty() {
            return Vec::new();
        }
        let mut routes = Vec::new();
        self.matching(0, labels, &mut routes);
        let mut out: Vec<String> = Vec::new();
        for index in routes {
            let name = &self.routes[index].receiver;
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// The configured receivers' names.
    pub fn receiver_names(&self) -> Vec<String> {
        self.config
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// What mutes alerts at `now_ms`: the active silences, and the firing
    /// alerts of the groups as inhibition sources (as [`Dispatcher::flush`] sees them).
    pub fn suppression(&self, now_ms: i64) -> Suppression {
        let silences = self
            .silences
            .iter()
            .filter(|s| s.state(now_ms) == "active")
            .filter_map(|s| Some((s.id.clone(), s.compile().ok()?)))
            .collect();
        let firing = self.firing_alerts();
        let rules = self
            .inhibit
            .iter()
            .map(|(source, target, equal)| {
                let mut sources: std::collections::HashMap<_, Vec<_>> = Default::default();
                for alert in firing.iter().filter(|a| matches_all(source, &a.labels)) {
                    let key: Vec<Option<String>> =
                        equal.iter().map(|n| alert.labels.get(n).cloned()).collect();
                    sources
                        .entry(key)
                        .or_default()
                        .push((alert.labels.clone(), alert.fingerprint()));
                }
                InhibitIndex {
                    target: target.clone(),
                    equal: equal.clone(),
                    sources,
                }
            })
            .collect();
        Suppression { silences, rules }
    }

    /// The matchers of the silences active at `now_ms`, compiled once per flush.
    fn active_silences(&self, now_ms: i64) -> Vec<Vec<Matcher>> {
        self.silences
            .iter()
            .filter(|s| s.state(now_ms) == "active")
            .filter_map(|s| s.compile().ok())
            .collect()
    }

    fn muted(
        &self,
        alert: &NotifyAlert,
        silences: &[Vec<Matcher>],
        firing: &[&NotifyAlert],
    ) -> bool {
        silences
            .iter()
            .any(|matchers| matches_all(matchers, &alert.labels))
            || self.inhibit.iter().any(|(source, target, equal)| {
                matches_all(target, &alert.labels)
                    && firing.iter().any(|s| {
                        s.labels != alert.labels
                            && matches_all(source, &s.labels)
                            && equal.iter().all(|n| s.labels.get(n) == alert.labels.get(n))
                    })
            })
    }

    fn firing_alerts(&self) -> Vec<&NotifyAlert> {
        self.groups
            .values()
            .flat_map(|g| g.alerts.values())
            .filter(|a| a.status != Status::Resolved)
            .collect()
    }

    /// Drops groups whose route index no longer exists (after a reload with
    /// a smaller routing tree); their alerts arrive again at the next evaluation.
    pub fn forget_unknown_routes(&mut self) {
        let routes = self.routes.len();
        self.groups.retain(|_, g| g.route < routes);
    }

    /// The earliest time a group may flush.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush_ms).min()
    }

    /// The notifications due at `now_ms`.
    pub fn flush(&mut self, now_ms: i64) -> Vec<Notification> {
        let firing_now: Vec<NotifyAlert> = self.firing_alerts().into_iter().cloned().collect();
        let firing_refs: Vec<&NotifyAlert> = firing_now.iter().collect();
        let silences = self.active_silences(now_ms);
        let mut out = Vec::new();
        let keys: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(group) = self.groups.get(&key) else {
                continue;
            };
            let route = &self.routes[group.route];
            let (interval, repeat) = (route.group_interval_ms, route.repeat_interval_ms);
            let visible: Vec<NotifyAlert> = group
                .alerts
                .values()
                .filter(|a| !self.muted(a, &silences, &firing_refs))
                .cloned()
                .collect();
            let firing: BTreeSet<String> = visible
                .iter()
                .filter(|a| a.status != Status::Resolved)
                .map(NotifyAlert::fingerprint)
                .collect();
            let resolved_news = visible.iter().any(|a| {
                a.status == Status::Resolved && group.notified_firing.contains(&a.fingerprint())
            });
            let new_firing = !firing.is_subset(&group.notified_firing);
            let repeat_due = !firing.is_empty()
                && group
                    .last_notified_ms
                    .is_none_or(|last| now_ms - last >= repeat);
            let send = new_firing || resolved_news || repeat_due;
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            if send {
                // Resolved alerts the receiver never heard fire are left out.
                let alerts: Vec<NotifyAlert> = visible
                    .into_iter()
                    .filter(|a| {
                        a.status != Status::Resolved
                            || group.notified_firing.contains(&a.fingerprint())
                    })
                    .collect();
                out.push(Notification {
                    receiver: group.receiver.clone(),
                    group_key: group.key.clone(),
                    group_labels: group.labels.clone(),
                    alerts,
                });
                group.notified_firing = firing;
                group.last_notified_ms = Some(now_ms);
            }
            // Resolved alerts have been told (or never needed telling).
            let notified = &group.notified_firing;
            group
                .alerts
                .retain(|fp, a| a.status != Status::Resolved || notified.contains(fp));
            if send {
                group.alerts.retain(|_, a| a.status != Status::Resolved);
            }
            group.next_flush_ms = now_ms + interval;
            if group.alerts.is_empty() && group.notified_firing.is_empty() {
                self.groups.remove(&key);
            }
        }
        out
    }

    /// The webhook requests for a notification.
    pub fn deliveries(&self, notification: &Notification) -> Vec<Delivery> {
        let external = self
            .config
            .external_url
            .clone()
            .unwrap_or_else(|| "http://localhost:7070".to_owned());
        let Some(receiver) = self
            .config
            .receivers
            .iter()
            .find(|r| r.name == notification.receiver)
        else {
            return Vec::new();
        };
        receiver
            .webhooks
            .iter()
            .filter_map(|hook| {
                let mut alerts = notification.alerts.clone();
                if !hook.send_resolved {
                    alerts.retain(|a| a.status != Status::Resolved);
                }
                if alerts.is_empty() {
                    return None;
                }
                let body = match hook.format {
                    WebhookFormat::Alertmanager => {
                        alertmanager_body(notification, &alerts, hook.max_alerts, &external)
                    }
                    WebhookFormat::Grafana => grafana_body(notification, &alerts, &external),
                };
                let mut headers = hook.headers.clone();
                if let Some(auth) = &hook.authorization {
                    headers.insert("authorization".to_owned(), auth.clone());
                }
                Some(Delivery {
                    receiver: receiver.name.clone(),
                    url: hook.url.clone(),
                    ca_file: hook.ca_file.clone(),
                    headers,
                    body: body.to_string(),
                })
            })
            .collect()
    }
}

/// The labels (or annotations) every alert shares.
fn common(alerts: &[NotifyAlert], pick: fn(&NotifyAlert) -> &LabelMap) -> LabelMap {
    let Some(first) = alerts.first() else {
        return LabelMap::new();
    };
    pick(first)
        .iter()
        .filter(|(k, v)| alerts.iter().all(|a| pick(a).get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Alertmanager's webhook payload, version 4.
fn alertmanager_body(
    notification: &Notification,
    alerts: &[NotifyAlert],
    max_alerts: u64,
    external: &str,
) -> Value {
    let firing = alerts.iter().any(|a| a.status != Status::Resolved);
    let shown = if max_alerts > 0 {
        alerts.len().min(max_alerts as usize)
    } else {
        alerts.len()
    };
    let list: Vec<Value> = alerts[..shown]
        .iter()
        .map(|a| {
            json!({
                "status": if a.status == Status::Resolved { "resolved" } else { "firing" },
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at_ms),
                "endsAt": a.ends_at_ms.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint(),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": alerts.len() - shown,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": notification.receiver,
        "groupLabels": notification.group_labels,
        "commonLabels": common(alerts, |a| &a.labels),
        "commonAnnotations": common(alerts, |a| &a.annotations),
        "externalURL": external,
        "alerts": list,
    })
}

/// A stable number for a rule name (Grafana's `ruleId` is a database id).
fn rule_id(name: &str) -> u64 {
    u64::from_str_radix(
        &fingerprint(&LabelMap::from([("r".to_owned(), name.to_owned())]))[..8],
        16,
    )
    .unwrap_or(0)
}

/// Grafana's legacy alert notification, as the book's webhook receives it.
fn grafana_body(notification: &Notification, alerts: &[NotifyAlert], external: &str) -> Value {
    let name = common(alerts, |a| &a.labels)
        .get("alertname")
        .cloned()
        .or_else(|| alerts[0].labels.get("alertname").cloned())
        .unwrap_or_default();
    let active: Vec<&NotifyAlert> = alerts
        .iter()
        .filter(|a| a.status != Status::Resolved)
        .collect();
    let (state, title) = if active.iter().any(|a| a.status == Status::Firing) {
        ("alerting", format!("[Alerting] {name}"))
    } else if !active.is_empty() {
        ("no_data", format!("[No Data] {name}"))
    } else {
        ("ok", format!("[OK] {name}"))
    };
    let matches: Vec<Value> = active
        .iter()
        .filter(|a| a.status == Status::Firing)
        .map(|a| {
            let tags: LabelMap = a
                .labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            json!({
                "value": a.value,
                "metric": if pairs.is_empty() { name.clone() } else { format!("{{{}}}", pairs.join(", ")) },
                "tags": tags,
            })
        })
        .collect();
    let source = active.first().copied().or(alerts.first());
    let message = source
        .and_then(|a| {
            ["message", "summary", "description"]
                .iter()
                .find_map(|k| a.annotations.get(*k).cloned())
        })
        .unwrap_or_default();
    json!({
        "title": title,
        "ruleId": rule_id(&name),
        "ruleName": name,
        "ruleUrl": format!("{}/alerts?rule={}", external.trim_end_matches('/'), name),
        "state": state,
        "message": message,
        "evalMatches": matches,
        "tags": notification.group_labels,
        "orgId": 1,
        "dashboardId": 0,
        "panelId": 0,
        "imageUrl": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> AlertingConfig {
        serde_norway::from_str(text).unwrap()
    }

    fn alert(name: &str, severity: &str, status: Status, value: f64) -> NotifyAlert {
        NotifyAlert {
            labels: LabelMap::from([
                ("alertname".to_owned(), name.to_owned()),
                ("severity".to_owned(), severity.to_owned()),
            ]),
            annotations: LabelMap::from([("summary".to_owned(), "queue filling".to_owned())]),
            status,
            value,
            starts_at_ms: 1_000,
            ends_at_ms: (status == Status::Resolved).then_some(9_000),
            generator_url: "http://sextant/graph".to_owned(),
        }
    }

    const CONFIG: &str = r#"
external_url: http://sextant.example:7070
receivers:
  - name: ops
    webhooks: [{url: "http://hooks/ops", format: grafana}]
  - name: pager
    webhooks: [{url: "http://hooks/pager"}]
  - name: record
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
    - matchers: ['severity="info"']
      receiver: record
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
"#;

    #[test]
    fn group_wait_interval_repeat_and_resolved_as_alertmanager() {
        let mut d = Dispatcher::new(&config(CONFIG));
        d.receive(vec![alert("Queue", "warning", Status::Firing, 150.0)], 0);
        assert!(
            d.flush(5_000).is_empty(),
            "group_wait holds the first notification"
        );
        let sent = d.flush(10_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].receiver, "ops");
        assert_eq!(sent[0].group_key, "{}:{alertname=\"Queue\"}");
        // Nothing new: nothing sent at the next interval; repeated after repeat_interval.
        d.receive(
            vec![alert("Queue", "warning", Status::Firing, 160.0)],
            20_000,
        );
        assert!(d.flush(70_000).is_empty());
        assert_eq!(d.flush(10_000 + 3_600_000).len(), 1);
        // Resolved: one notification, then the group is gone.
        d.receive(
            vec![alert("Queue", "warning", Status::Resolved, 90.0)],
            3_700_000,
        );
        let sent = d.flush(3_700_000 + 60_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].alerts[0].status, Status::Resolved);
        assert!(d.flush(3_900_000).is_empty());
        assert!(d.groups.is_empty());
    }

    #[test]
    fn routes_silences_and_inhibition() {
        let mut d = Dispatcher::new(&config(CONFIG));
        d.receive(
            vec![
                alert("Disk", "critical", Status::Firing, 1.0),
                alert("Disk", "warning", Status::Firing, 1.0),
                alert("Info", "info", Status::Firing, 1.0),
            ],
            0,
        );
        let sent = d.flush(10_000);
        let receivers: BTreeSet<&str> = sent.iter().map(|n| n.receiver.as_str()).collect();
        assert_eq!(
            receivers,
            BTreeSet::from(["pager", "record"]),
            "the warning is inhibited"
        );
        assert!(
            d.deliveries(sent.iter().find(|n| n.receiver == "record").unwrap())
                .is_empty()
        );
        d.silences.push(Silence {
            id: "s1".to_owned(),
            matchers: vec![SilenceMatcher {
                name: "alertname".to_owned(),
                value: "Queue".to_owned(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: rfc3339(0),
            ends_at: rfc3339(1_000_000),
            created_by: "me".to_owned(),
            comment: "maintenance".to_owned(),
            updated_at: String::new(),
        });
        d.receive(vec![alert("Queue", "warning", Status::Firing, 1.0)], 20_000);
        assert!(
            d.flush(40_000)
                .iter()
                .all(|n| n.group_key != "{}:{alertname=\"Queue\"}")
        );
    }

    #[test]
    fn the_api_sees_receivers_silences_and_inhibitions_as_the_flush_mutes() {
        let mut d = Dispatcher::new(&config(CONFIG));
        let critical = alert("Disk", "critical", Status::Firing, 1.0);
        let warning = alert("Disk", "warning", Status::Firing, 1.0);
        let other = alert("Queue", "warning", Status::Firing, 1.0);
        d.receive(vec![critical.clone(), warning.clone(), other.clone()], 0);
        assert_eq!(d.receivers_of(&critical.labels), ["pager"]);
        assert_eq!(d.receivers_of(&warning.labels), ["ops"]);
        assert_eq!(d.receiver_names(), ["ops", "pager", "record"]);
        d.silences.push(Silence {
            id: "s1".to_owned(),
            matchers: vec![SilenceMatcher {
                name: "alertname".to_owned(),
                value: "Q.*".to_owned(),
                is_regex: true,
                is_equal: true,
            }],
            starts_at: rfc3339(0),
            ends_at: rfc3339(1_000_000),
            created_by: "me".to_owned(),
            comment: String::new(),
            updated_at: String::new(),
        });
        let now = d.suppression(10_000);
        assert_eq!(now.inhibited_by(&warning.labels), [critical.fingerprint()]);
        assert!(now.inhibited_by(&critical.labels).is_empty());
        assert!(
            now.inhibited_by(&other.labels).is_empty(),
            "another alertname"
        );
        assert_eq!(now.silenced_by(&other.labels), ["s1"]);
        assert!(now.silenced_by(&warning.labels).is_empty());
        assert!(
            d.suppression(1_000_000)
                .silenced_by(&other.labels)
                .is_empty(),
            "expired"
        );
        // What the API says is what the flush does.
        let sent = d.flush(10_000);
        assert!(sent.iter().all(|n| {
            n.alerts
                .iter()
                .all(|a| a.labels != warning.labels && a.labels != other.labels)
        }));
    }

    #[test]
    fn silence_ids_are_uuids() {
        let a = new_silence_id();
        assert_ne!(a, new_silence_id());
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{a}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn both_webhook_shapes() {
        let d = Dispatcher::new(&config(CONFIG));
        let notification = Notification {
            receiver: "ops".to_owned(),
            group_key: "{}:{alertname=\"Queue\"}".to_owned(),
            group_labels: LabelMap::from([("alertname".to_owned(), "Queue".to_owned())]),
            alerts: vec![alert("Queue", "warning", Status::Firing, 150.0)],
        };
        let body: Value = serde_json::from_str(&d.deliveries(&notification)[0].body).unwrap();
        assert_eq!(body["state"], "alerting");
        assert_eq!(body["title"], "[Alerting] Queue");
        assert_eq!(body["ruleName"], "Queue");
        assert_eq!(body["message"], "queue filling");
        assert_eq!(body["evalMatches"][0]["value"], 150.0);
        assert_eq!(body["evalMatches"][0]["tags"]["severity"], "warning");
        assert_eq!(
            body["ruleUrl"],
            "http://sextant.example:7070/alerts?rule=Queue"
        );
        let mut paging = notification;
        paging.receiver = "pager".to_owned();
        paging.alerts[0].status = Status::Resolved;
        paging.alerts[0].ends_at_ms = Some(9_000);
        let body: Value = serde_json::from_str(&d.deliveries(&paging)[0].body).unwrap();
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["receiver"], "pager");
        assert_eq!(body["groupLabels"]["alertname"], "Queue");
        assert_eq!(body["commonLabels"]["severity"], "warning");
        assert_eq!(body["commonAnnotations"]["summary"], "queue filling");
        assert_eq!(body["externalURL"], "http://sextant.example:7070");
        let a = &body["alerts"][0];
        assert_eq!(a["status"], "resolved");
        assert_eq!(a["startsAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(a["endsAt"], "1970-01-01T00:00:09.000Z");
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
        assert_eq!(a["generatorURL"], "http://sextant/graph");
    }
}
