//! The running alerting system: every rule group evaluated on its interval
//! (concurrently across groups, aligned to the interval so evaluations do
//! not drift), recording rules written back, alert states moved on and kept
//! across restarts, notifications routed and grouped by the [`Dispatcher`],
//! and a durable outbox that writes every webhook request before sending it
//! and retries with backoff until it is delivered or a day has passed.
//!
//! The ruler reads metrics through the PromQL engine, counts log lines and
//! writes recorded samples through the small traits below, and keeps its
//! state through [`StateStore`]: it opens no file itself.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde::{Deserialize, Serialize};
use sextant_model::Labels;
use sextant_model::telemetry::{Counter, Exposition, MetricKind};
use sextant_query::promql::{Engine, QueryValue};
use tokio_util::sync::CancellationToken;

use crate::AlertingConfig;
use crate::external::{ExternalAlerts, PostedAlert};
use crate::forward::{ForwardedAlert, Forwarder};
use crate::notify::{Delivery, Dispatcher, NotifyAlert, Silence, Status};
use crate::rules::{Rule, RuleGroup, RuleKind};
use crate::state::{AlertState, LabelMap, RuleAlerts, Transition};

/// Counts log lines for log rules.
pub trait LogCounter: Send + Sync {
    /// Lines matching `query` with timestamps in `[start_ms, end_ms]`.
    fn count(&self, query: &str, start_ms: i64, end_ms: i64) -> Result<u64, String>;

    /// A LogQL metric query's samples at `t_ms` (a Loki rule's `expr`).
    fn logql(&self, expr: &str, t_ms: i64) -> Result<Vec<(LabelMap, f64)>, String> {
        let _ = (expr, t_ms);
        Err("LogQL rules need the log store".to_owned())
    }
}

/// Stores what recording rules compute.
pub trait SampleSink: Send + Sync {
    fn write(&self, samples: Vec<(Labels, i64, f64)>) -> Result<(), String>;

    /// Native histogram results (a recording rule over histograms); the
    /// default refuses them.
    fn write_histograms(
        &self,
        samples: Vec<(Labels, i64, sextant_model::histogram::FloatHistogram)>,
    ) -> Result<(), String> {
        if samples.is_empty() {
            return Ok(());
        }
        Err("this store does not keep native histograms".to_owned())
    }
}

/// One sample of a rule's result: labels, float value, and the native
/// histogram when the sample is one (its float value is then 0, as
/// Prometheus's alert `$value` of a histogram sample).
type RuleSample = (
    LabelMap,
    f64,
    Option<Arc<sextant_model::histogram::FloatHistogram>>,
);

/// Durable named blobs: written whole and atomically, or not at all.
pub trait StateStore: Send + Sync {
    fn put(&self, name: &str, bytes: &[u8]) -> std::io::Result<()>;
    fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>>;
    fn delete(&self, name: &str) -> std::io::Result<()>;
    /// Names starting with `prefix`.
    fn list(&self, prefix: &str) -> std::io::Result<Vec<String>>;
}

/// A rule group and the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedGroup {
    pub file: PathBuf,
    pub group: RuleGroup,
}

/// The most state changes kept for `/api/v1/alerts/history`.
const HISTORY: usize = 10_000;
/// How long the outbox keeps trying one notification.
const DELIVERY_EXPIRY_MS: i64 = 24 * 3_600_000;
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: i64 = 60_000;

/// What the last evaluation of a rule found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleHealth {
    /// Evaluations that failed since start.
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub eval_seconds: f64,
}

#[derive(Debug, Clone)]
struct GroupRun {
    file: PathBuf,
    group: RuleGroup,
    interval_ms: i64,
    health: Vec<RuleHealth>,
    alerts: Vec<RuleAlerts>,
    last_eval_ms: Option<i64>,
    eval_seconds: f64,
    /// When each alert (rule index, fingerprint) was last forwarded to the
    /// Alertmanagers, ms (Prometheus's `LastSentAt`; kept in memory only:
    /// after a restart or a takeover everything is sent again at once).
    last_forwarded: BTreeMap<(usize, String), i64>,
}

impl GroupRun {
    fn key(&self) -> String {
        state_key(&format!("{};{}", self.file.display(), self.group.name))
    }

    /// Takes each rule's alerts from `saved` (group key -> rule name ->
    /// alerts); a rule it lacks starts with none.
    fn keep_alerts(&mut self, saved: &BTreeMap<String, BTreeMap<String, RuleAlerts>>) {
        let kept = saved.get(&self.key());
        self.alerts = self
            .group
            .rules
            .iter()
            .map(|r| {
                kept.and_then(|k| k.get(r.name()))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
    }
}

/// The key a group's saved state goes by: its file's name (not its
/// directory, so that the nodes of a cluster, whose configs may sit in
/// different directories, find each other's state) and the group's name.
/// Keys saved with the whole path, as earlier versions did, come out the
/// same.
fn state_key(key: &str) -> String {
    match key.split_once(';') {
        Some((path, group)) => {
            let file = Path::new(path)
                .file_name()
                .map_or_else(|| path.into(), |f| f.to_string_lossy());
            format!("{file};{group}")
        }
        None => key.to_owned(),
    }
}

/// A webhook request waiting in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: String,
    pub delivery: Delivery,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    #[serde(skip)]
    in_flight: bool,
}

/// The alert instances of one rule group, kept in `rules/<fingerprint>`
/// and written when one of them changes state.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedGroup {
    key: String,
    /// By rule name.
    alerts: BTreeMap<String, RuleAlerts>,
}

/// The notifier's groups and the silences, kept in `notify.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedNotify {
    groups: BTreeMap<String, crate::notify::Group>,
    silences: Vec<Silence>,
}

/// Everything the store keeps for the ruler.
#[derive(Default)]
struct Saved {
    notify: SavedNotify,
    history: VecDeque<Transition>,
    /// Group key -> rule name -> its alerts.
    alerts: BTreeMap<String, BTreeMap<String, RuleAlerts>>,
    outbox: BTreeMap<String, OutboxEntry>,
    next_id: u64,
    external: ExternalAlerts,
}

impl Saved {
    /// What the store holds; a store that cannot be read is an error (a
    /// document that cannot be decoded is skipped with an error logged).
    fn read(store: &dyn StateStore) -> std::io::Result<Self> {
        let notify: SavedNotify = load(store, "notify.json")?.unwrap_or_default();
        let history: VecDeque<Transition> = load(store, "history.json")?.unwrap_or_default();
        let external: ExternalAlerts = load(store, EXTERNAL)?.unwrap_or_default();
        let mut alerts = BTreeMap::new();
        for name in store.list("rules/")? {
            if let Some(group) = load::<SavedGroup>(store, &name)? {
                let key = state_key(&group.key);
                // A group saved under its whole path (earlier versions)
                // gives way to the same group saved under its key since.
                if name == group_file(&key) || !alerts.contains_key(&key) {
                    alerts.insert(key, group.alerts);
                }
            }
        }
        let mut outbox = BTreeMap::new();
        let mut next_id = 0;
        for name in store.list("outbox/")? {
            if let Some(entry) = load::<OutboxEntry>(store, &name)? {
                let n = entry
                    .id
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                next_id = next_id.max(n + 1);
                outbox.insert(entry.id.clone(), entry);
            }
        }
        Ok(Self {
            notify,
            history,
            alerts,
            outbox,
            next_id,
            external,
        })
    }
}

/// The document `name`: `None` when there is none or it cannot be decoded
/// (logged); an error when the store cannot be read.
fn load<T: serde::de::DeserializeOwned>(
    store: &dyn StateStore,
    name: &str,
) -> std::io::Result<Option<T>> {
    let Some(bytes) = store.get(name)? else {
        return Ok(None);
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(Some(value)),
        Err(e) => {
            tracing::error!(name, error = %e, "unreadable alerting state; going on without it");
            Ok(None)
        }
    }
}

/// Where the alerts other rulers sent are kept.
const EXTERNAL: &str = "external.json";
/// The most often they are written.
const EXTERNAL_SAVE_MS: i64 = 5_000;

fn group_file(key: &str) -> String {
    format!(
        "rules/{}.json",
        crate::state::fingerprint(&LabelMap::from([("group".to_owned(), key.to_owned())]))
    )
}

#[derive(Debug)]
struct Inner {
    config: AlertingConfig,
    groups: Vec<GroupRun>,
    dispatcher: Dispatcher,
    history: VecDeque<Transition>,
    outbox: BTreeMap<String, OutboxEntry>,
    next_id: u64,
    /// Alerts other rulers sent (`POST /api/v2/alerts`).
    external: ExternalAlerts,
}

#[derive(Debug, Default)]
struct Stats {
    evaluations: Counter,
    evaluation_failures: Counter,
    notifications: Counter,
    delivered: Counter,
    delivery_failures: Counter,
    expired: Counter,
}

/// The rule evaluator, notifier and outbox.
pub struct Ruler {
    engine: Engine,
    logs: Arc<dyn LogCounter>,
    sink: Arc<dyn SampleSink>,
    store: Arc<dyn StateStore>,
    default_interval_ms: i64,
    inner: Mutex<Inner>,
    flush_wake: tokio::sync::Notify,
    send_wake: tokio::sync::Notify,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stats: Stats,
    /// Whether this process evaluates now (cluster mode: the node holding
    /// the ruler's lease); always when unset.
    gate: std::sync::OnceLock<Gate>,
    /// What the gate said last: when it opens, the state is read again
    /// from the store, where the node that held it before left it.
    active: Mutex<bool>,
    /// Called when the gate opens, before the state is read again.
    on_activate: std::sync::OnceLock<Arc<dyn Fn() + Send + Sync>>,
    /// One write of the external alerts at a time, in the order they were encoded.
    external_writes: Mutex<()>,
    /// Whether the external alerts changed since they were last written.
    external_dirty: std::sync::atomic::AtomicBool,
    /// When they were last written, ms.
    external_saved_ms: std::sync::atomic::AtomicI64,
    /// The forwarder to `alerting.alertmanagers`, while it runs, and what stops it.
    forwarder: Mutex<Option<(Arc<Forwarder>, CancellationToken)>>,
}

/// Says whether rule groups are evaluated here now.
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

impl std::fmt::Debug for Ruler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ruler").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link to a rule's expression in the UI, as Prometheus writes it.
fn generator_url(external: &str, expr: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external.trim_end_matches('/'),
        percent_encode(expr)
    )
}

/// Alerts worth telling the dispatcher about.
fn to_notify(alerts: &RuleAlerts, expr: &str, external: &str) -> Vec<NotifyAlert> {
    let generator_url = generator_url(external, expr);
    alerts
        .alerts
        .values()
        .filter_map(|a| {
            let status = match a.state {
                AlertState::Firing => Status::Firing,
                AlertState::NoData => Status::NoData,
                AlertState::Inactive if a.resolved_at_ms.is_some() && a.fired_at_ms.is_some() => {
                    Status::Resolved
                }
                _ => return None,
            };
            Some(NotifyAlert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                status,
                value: a.value,
                starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                ends_at_ms: a.resolved_at_ms.filter(|_| status == Status::Resolved),
                generator_url: generator_url.clone(),
            })
        })
        .collect()
}

/// The alerts of `run`'s last evaluation at `t_ms` that are due to go to the
/// Alertmanagers, as Prometheus's `sendAlerts` picks them: firing ones not
/// sent for `resend_ms` (with `endsAt` four times the larger of the resend
/// delay and the group's interval ahead, so that an Alertmanager resolves
/// them itself if Sextant stops sending), and resolved ones (kept for 15
/// minutes) when they resolved since last sent, or again every `resend_ms`
/// (with `endsAt` when they resolved). Marks them sent.
fn to_forward(
    run: &mut GroupRun,
    t_ms: i64,
    resend_ms: i64,
    external: &str,
) -> Vec<ForwardedAlert> {
    let valid_until = t_ms.saturating_add(4 * resend_ms.max(run.interval_ms));
    let mut last_forwarded = BTreeMap::new();
    let mut out = Vec::new();
    for (index, (rule, alerts)) in run.group.rules.iter().zip(&run.alerts).enumerate() {
        if !matches!(rule.kind, RuleKind::Alert { .. }) {
            continue;
        }
        for (fingerprint, alert) in &alerts.alerts {
            let ends_at_ms = match alert.state {
                AlertState::Firing | AlertState::NoData => valid_until,
                AlertState::Inactive if alert.fired_at_ms.is_some() => {
                    let Some(resolved) = alert.resolved_at_ms else {
                        continue;
                    };
                    resolved
                }
                AlertState::Inactive | AlertState::Pending => continue,
            };
            let key = (index, fingerprint.clone());
            let last = run.last_forwarded.get(&key).copied();
            let due = match last {
                None => true,
                Some(last) => {
                    alert.resolved_at_ms.is_some_and(|r| r > last) || last + resend_ms < t_ms
                }
            };
            if !due {
                last_forwarded.insert(key, last.unwrap_or(t_ms));
                continue;
            }
            last_forwarded.insert(key, t_ms);
            out.push(ForwardedAlert {
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
                ends_at_ms,
                generator_url: generator_url(external, &rule.expr),
            });
        }
    }
    // Alerts gone from the rules are forgotten.
    run.last_forwarded = last_forwarded;
    out
}

impl Ruler {
    /// A ruler over `groups`, with the state a previous run saved.
    pub fn new(
        engine: Engine,
        logs: Arc<dyn LogCounter>,
        sink: Arc<dyn SampleSink>,
        store: Arc<dyn StateStore>,
        config: AlertingConfig,
        default_interval_ms: i64,
        groups: Vec<LoadedGroup>,
    ) -> Self {
        let saved = Saved::read(&*store).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the alerting state; starting without it");
            Saved::default()
        });
        let mut dispatcher = Dispatcher::new(&config);
        dispatcher.groups = saved.notify.groups;
        dispatcher.silences = saved.notify.silences;
        let ruler = Self {
            engine,
            logs,
            sink,
            store,
            default_interval_ms,
            inner: Mutex::new(Inner {
                config,
                groups: Vec::new(),
                dispatcher,
                history: saved.history,
                outbox: saved.outbox,
                next_id: saved.next_id,
                external: saved.external,
            }),
            flush_wake: tokio::sync::Notify::new(),
            send_wake: tokio::sync::Notify::new(),
            tasks: Mutex::new(Vec::new()),
            stats: Stats::default(),
            gate: std::sync::OnceLock::new(),
            active: Mutex::new(false),
            on_activate: std::sync::OnceLock::new(),
            external_writes: Mutex::new(()),
            external_dirty: std::sync::atomic::AtomicBool::new(false),
            external_saved_ms: std::sync::atomic::AtomicI64::new(0),
            forwarder: Mutex::new(None),
        };
        ruler.set_groups(groups, Some(&saved.alerts));
        ruler
    }

    fn set_groups(
        &self,
        groups: Vec<LoadedGroup>,
        saved: Option<&BTreeMap<String, BTreeMap<String, RuleAlerts>>>,
    ) {
        let mut inner = self.inner.lock().expect("ruler lock");
        let old: BTreeMap<String, BTreeMap<String, RuleAlerts>> = inner
            .groups
            .iter()
            .map(|g| {
                (
                    g.key(),
                    g.group
                        .rules
                        .iter()
                        .zip(&g.alerts)
                        .map(|(r, a)| (r.name().to_owned(), a.clone()))
                        .collect(),
                )
            })
            .collect();
        let previous = saved.unwrap_or(&old);
        inner.groups = groups
            .into_iter()
            .map(|loaded| {
                let mut run = GroupRun {
                    interval_ms: loaded
                        .group
                        .interval
                        .map_or(self.default_interval_ms, |d| d.as_millis() as i64)
                        .max(1),
                    file: loaded.file,
                    group: loaded.group,
                    health: Vec::new(),
                    alerts: Vec::new(),
                    last_eval_ms: None,
                    eval_seconds: 0.0,
                    last_forwarded: BTreeMap::new(),
                };
                run.keep_alerts(previous);
                run.health = vec![RuleHealth::default(); run.group.rules.len()];
                run
            })
            .collect();
    }

    /// Evaluates only while `gate` says so (cluster mode: one node of the
    /// cluster evaluates, so an alert is sent once, not once per node).
    pub fn set_gate(&self, gate: Gate) {
        let _ = self.gate.set(gate);
    }

    /// Has `hook` called whenever the gate opens, before the state is read
    /// again (cluster mode: the groups made through the ruler API are read
    /// again and handed to [`Ruler::replace_groups`]).
    pub fn on_activate(&self, hook: Arc<dyn Fn() + Send + Sync>) {
        let _ = self.on_activate.set(hook);
    }

    /// Whether this process evaluates and notifies now. When the gate has
    /// just opened, the state is first read again from the store: another
    /// node held it until now and left its alerts, silences, notification
    /// groups and outbox there.
    fn active(&self) -> bool {
        let Some(gate) = self.gate.get() else {
            return true;
        };
        let mut was = self.active.lock().expect("gate lock");
        let now = gate();
        if now && !*was {
            if let Some(hook) = self.on_activate.get() {
                hook();
            }
            // Evaluating on a state that could not be read would resolve
            // and notify again what the last node sent, and overwrite its
            // silences: not until the store answers.
            if let Err(e) = self.restore() {
                tracing::warn!(error = %e, "cannot read the alerting state; not evaluating yet");
                return false;
            }
            self.flush_wake.notify_one();
            self.send_wake.notify_one();
        }
        *was = now;
        now
    }

    /// [`Ruler::active`] from a task: the store is read on a blocking thread.
    async fn active_now(self: &Arc<Self>) -> bool {
        if self.gate.get().is_none() {
            return true;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.active())
            .await
            .unwrap_or(false)
    }

    /// Replaces the state in memory with the store's.
    fn restore(&self) -> std::io::Result<()> {
        let saved = Saved::read(&*self.store)?;
        let mut inner = self.inner.lock().expect("ruler lock");
        inner.dispatcher.groups = saved.notify.groups;
        inner.dispatcher.silences = saved.notify.silences;
        inner.dispatcher.forget_unknown_routes();
        inner.history = saved.history;
        inner.outbox = saved.outbox;
        inner.next_id = inner.next_id.max(saved.next_id);
        inner.external = saved.external;
        for run in &mut inner.groups {
            run.keep_alerts(&saved.alerts);
        }
        tracing::info!(
            alerts = saved.alerts.len(),
            silences = inner.dispatcher.silences.len(),
            outbox = inner.outbox.len(),
            "this node evaluates the rules now: alerting state read from the store"
        );
        Ok(())
    }

    /// Starts evaluating, notifying and delivering until `cancel`.
    pub fn start(self: &Arc<Self>, cancel: &CancellationToken) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        let groups = self.inner.lock().expect("ruler lock").groups.len();
        for index in 0..groups {
            tasks.push(tokio::spawn(self.clone().group_loop(index, cancel.clone())));
        }
        tasks.push(tokio::spawn(self.clone().flush_loop(cancel.clone())));
        tasks.push(tokio::spawn(self.clone().send_loop(cancel.clone())));
        drop(tasks);
        self.start_forwarder(cancel);
    }

    /// Starts forwarding to `alerting.alertmanagers` unless it runs already
    /// (a change of groups through the ruler API leaves it alone).
    fn start_forwarder(&self, cancel: &CancellationToken) {
        // The ruler's lock first, never under the forwarder's: an evaluation
        // takes them in that order.
        let config = self.inner.lock().expect("ruler lock").config.clone();
        let mut running = self.forwarder.lock().expect("forwarder lock");
        if running.is_some() || config.alertmanagers.is_empty() {
            return;
        }
        let forwarder = Arc::new(Forwarder::new(
            config.alertmanagers,
            config.external_labels,
            config.alert_relabel_configs,
        ));
        let stop = cancel.child_token();
        forwarder.start(&stop);
        *running = Some((forwarder, stop));
    }

    /// Stops forwarding (a reload starts it again with the new config;
    /// whatever was queued is sent again at the next evaluation).
    fn stop_forwarder(&self) {
        if let Some((_, stop)) = self.forwarder.lock().expect("forwarder lock").take() {
            stop.cancel();
        }
    }

    /// Replaces the rule groups and the receivers and routes (a reload):
    /// alert states of rules that stay, notification groups and silences are kept.
    pub fn reload(
        self: &Arc<Self>,
        groups: Vec<LoadedGroup>,
        config: AlertingConfig,
        cancel: &CancellationToken,
    ) {
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        self.stop_forwarder();
        {
            let mut inner = self.inner.lock().expect("ruler lock");
            let mut dispatcher = Dispatcher::new(&config);
            dispatcher.groups = std::mem::take(&mut inner.dispatcher.groups);
            dispatcher.silences = std::mem::take(&mut inner.dispatcher.silences);
            // Groups whose route is gone start over under the new tree.
            dispatcher.forget_unknown_routes();
            inner.dispatcher = dispatcher;
            inner.config = config;
        }
        self.set_groups(groups, None);
        self.start(cancel);
    }

    /// Replaces the rule groups and keeps the receivers and routes: what a
    /// change through the ruler API needs. Alerts of groups that stay keep
    /// their state, as on [`Ruler::reload`].
    pub fn replace_groups(self: &Arc<Self>, groups: Vec<LoadedGroup>, cancel: &CancellationToken) {
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        self.set_groups(groups, None);
        self.start(cancel);
    }

    async fn group_loop(self: Arc<Self>, index: usize, cancel: CancellationToken) {
        let (interval, offset) = {
            let inner = self.inner.lock().expect("ruler lock");
            let Some(group) = inner.groups.get(index) else {
                return;
            };
            let key = group.key();
            let hash = crate::state::fingerprint(&LabelMap::from([("g".to_owned(), key)]));
            let offset = i64::from_str_radix(&hash[..8], 16).unwrap_or(0) % group.interval_ms;
            (group.interval_ms, offset)
        };
        loop {
            let now = now_ms();
            // The next tick of this group's own grid: no drift, and groups spread out.
            let at = (now - offset).div_euclid(interval) * interval + offset + interval;
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis((at - now).max(0) as u64)) => {}
            }
            if !self.active_now().await {
                continue;
            }
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.evaluate_group(index, at)).await;
            self.flush_wake.notify_one();
        }
    }

    fn results(&self, rule: &Rule, t_ms: i64) -> Result<Vec<RuleSample>, String> {
        if let Some(logs) = &rule.logs {
            let window = logs.window.as_millis() as i64;
            let count = self.logs.count(&rule.expr, t_ms - window, t_ms)? as f64;
            return Ok(if count > logs.threshold {
                vec![(LabelMap::new(), count, None)]
            } else {
                Vec::new()
            });
        }
        if rule.logql {
            return Ok(self
                .logs
                .logql(&rule.expr, t_ms)?
                .into_iter()
                .map(|(l, v)| (l, v, None))
                .collect());
        }
        // A partial answer (cluster mode: a partition briefly without an
        // owner) would resolve alerts for want of data: the evaluation
        // fails instead, and the alerts stay as they were.
        let answer = self
            .engine
            .instant_query_annotated(&rule.expr, t_ms)
            .and_then(|(value, notes)| {
                if notes.partial {
                    Err(sextant_query::Error::Execution(notes.warnings.join("; ")))
                } else {
                    Ok(value)
                }
            });
        match answer {
            Ok(QueryValue::Vector(samples)) => Ok(samples
                .into_iter()
                .map(|s| {
                    let labels: LabelMap = s
                        .labels
                        .iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect();
                    (labels, s.v, s.histogram)
                })
                .collect()),
            Ok(QueryValue::Scalar { v, .. }) => Ok(vec![(LabelMap::new(), v, None)]),
            Ok(other) => Err(format!(
                "rule result is not a vector or scalar: {}",
                other.type_name()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Evaluates one group at `t_ms` (called on a blocking thread).
    fn evaluate_group(&self, index: usize, t_ms: i64) {
        let (group, file, external, current, previous_health) = {
            let inner = self.inner.lock().expect("ruler lock");
            let Some(run) = inner.groups.get(index) else {
                return;
            };
            (
                run.group.clone(),
                run.file.clone(),
                inner.config.external_url.clone().unwrap_or_default(),
                run.alerts.clone(),
                run.health.clone(),
            )
        };
        let eval_t = t_ms - group.query_offset.map_or(0, |d| d.as_millis() as i64);
        let started = std::time::Instant::now();
        let mut transitions = Vec::new();
        let mut notify = Vec::new();
        let mut healths = Vec::new();
        let mut new_alerts = Vec::new();
        for (rule, mut alerts) in group.rules.iter().zip(current) {
            let rule_started = std::time::Instant::now();
            self.stats.evaluations.inc();
            let outcome = self.results(rule, eval_t).and_then(|results| {
                if group.limit > 0 && results.len() as u64 > group.limit {
                    return Err(format!(
                        "exceeded limit of {} with {} series",
                        group.limit,
                        results.len()
                    ));
                }
                match &rule.kind {
                    RuleKind::Record { name } => {
                        self.record(rule, name, &group.labels, results, t_ms)
                    }
                    RuleKind::Alert { .. } => {
                        let at = crate::state::Evaluation {
                            group: &group.name,
                            group_labels: &group.labels,
                            now_ms: t_ms,
                            external_url: &external,
                        };
                        let results = results.into_iter().map(|(l, v, _)| (l, v)).collect();
                        alerts.evaluate(rule, &at, results, &mut transitions)?;
                        notify.extend(to_notify(&alerts, &rule.expr, &external));
                        self.write_alert_series(&alerts, t_ms);
                        Ok(())
                    }
                }
            });
            if outcome.is_err() {
                self.stats.evaluation_failures.inc();
            }
            let failures = previous_health.get(healths.len()).map_or(0, |h| h.failures)
                + u64::from(outcome.is_err());
            if let Err(e) = &outcome {
                tracing::warn!(group = %group.name, rule = %rule.name(), error = %e, "rule evaluation failed");
            }
            healths.push(RuleHealth {
                failures,
                last_error: outcome.err(),
                last_eval_ms: Some(t_ms),
                eval_seconds: rule_started.elapsed().as_secs_f64(),
            });
            new_alerts.push(alerts);
        }
        // Saved when an alert changed state (a value that moved is not worth
        // a write), encoded under the lock and written after it.
        let changed = !transitions.is_empty();
        let saved = changed.then(|| SavedGroup {
            key: format!("{};{}", file.display(), group.name),
            alerts: group
                .rules
                .iter()
                .zip(&new_alerts)
                .map(|(r, a)| (r.name().to_owned(), a.clone()))
                .collect(),
        });
        let mut inner = self.inner.lock().expect("ruler lock");
        let Some(run) = inner.groups.get_mut(index) else {
            return;
        };
        if run.file != file || run.group.name != group.name {
            return;
        }
        run.alerts = new_alerts;
        run.health = healths;
        run.last_eval_ms = Some(t_ms);
        run.eval_seconds = started.elapsed().as_secs_f64();
        let forwarder = self
            .forwarder
            .lock()
            .expect("forwarder lock")
            .as_ref()
            .map(|(f, _)| f.clone());
        let resend_ms = inner.config.resend_delay_ms();
        let forwarded = match (&forwarder, inner.groups.get_mut(index)) {
            (Some(_), Some(run)) => to_forward(run, t_ms, resend_ms, &external),
            _ => Vec::new(),
        };
        inner.dispatcher.receive(notify, now_ms());
        for transition in transitions {
            if inner.history.len() >= HISTORY {
                inner.history.pop_front();
            }
            inner.history.push_back(transition);
        }
        let history = saved.as_ref().map(|_| serde_json::to_vec(&inner.history));
        drop(inner);
        if let Some(forwarder) = forwarder {
            forwarder.send(&forwarded);
        }
        if let (Some(saved), Some(history)) = (saved, history) {
            self.put(&group_file(&saved.key), &saved);
            match history {
                Ok(bytes) => {
                    if let Err(e) = self.store.put("history.json", &bytes) {
                        tracing::error!(error = %e, "cannot save the alert history");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode the alert history"),
            }
        }
    }

    fn record(
        &self,
        rule: &Rule,
        name: &str,
        group_labels: &BTreeMap<String, String>,
        results: Vec<RuleSample>,
        t_ms: i64,
    ) -> Result<(), String> {
        let mut out = Vec::with_capacity(results.len());
        let mut histograms = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (mut labels, value, histogram) in results {
            labels.insert("__name__".to_owned(), name.to_owned());
            for (k, v) in group_labels.iter().chain(&rule.labels) {
                if v.is_empty() {
                    labels.remove(k);
                } else {
                    labels.insert(k.clone(), v.clone());
                }
            }
            let labels = Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            if !seen.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .to_owned(),
                );
            }
            match histogram {
                Some(h) => histograms.push((labels, t_ms, (*h).clone())),
                None => out.push((labels, t_ms, value)),
            }
        }
        if !histograms.is_empty() {
            self.sink.write_histograms(histograms)?;
        }
        if out.is_empty() {
            return Ok(());
        }
        self.sink.write(out)
    }

    /// `ALERTS` and `ALERTS_FOR_STATE` series, as Prometheus writes them, so
    /// PromQL and dashboards see which alerts are pending or firing.
    fn write_alert_series(&self, alerts: &RuleAlerts, t_ms: i64) {
        let mut out = Vec::new();
        for alert in alerts.alerts.values() {
            let state = match alert.state {
                AlertState::Pending => "pending",
                AlertState::Firing => "firing",
                AlertState::NoData => "nodata",
                AlertState::Inactive => continue,
            };
            let pairs = |name: &'static str, extra: Option<(&'static str, &'static str)>| {
                Labels::from_pairs(
                    alert
                        .labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .chain([("__name__", name)])
                        .chain(extra),
                )
            };
            out.push((pairs("ALERTS", Some(("alertstate", state))), t_ms, 1.0));
            out.push((
                pairs("ALERTS_FOR_STATE", None),
                t_ms,
                alert.active_at_ms as f64 / 1000.0,
            ));
        }
        if !out.is_empty()
            && let Err(e) = self.sink.write(out)
        {
            tracing::warn!(error = %e, "cannot write the ALERTS series");
        }
    }

    fn put(&self, name: &str, value: &impl Serialize) {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                if let Err(e) = self.store.put(name, &bytes) {
                    tracing::error!(name, error = %e, "cannot save the alerting state");
                }
            }
            Err(e) => tracing::error!(name, error = %e, "cannot encode the alerting state"),
        }
    }

    fn save_notify(&self, inner: &Inner) {
        self.put(
            "notify.json",
            &SavedNotify {
                groups: inner.dispatcher.groups.clone(),
                silences: inner.dispatcher.silences.clone(),
            },
        );
    }

    /// Waits while another node evaluates; false once `cancel` fires.
    async fn idle(&self, cancel: &CancellationToken, wake: &tokio::sync::Notify) -> bool {
        tokio::select! {
            () = cancel.cancelled() => false,
            () = wake.notified() => true,
            () = tokio::time::sleep(Duration::from_secs(2)) => true,
        }
    }

    async fn flush_loop(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            if !self.active_now().await {
                if !self.idle(&cancel, &self.flush_wake).await {
                    return;
                }
                continue;
            }
            self.expire_external();
            self.save_external(false);
            let wait = {
                let mut inner = self.inner.lock().expect("ruler lock");
                let now = now_ms();
                let notifications = inner.dispatcher.flush(now);
                let mut queued = false;
                for notification in &notifications {
                    self.stats.notifications.inc();
                    for delivery in inner.dispatcher.deliveries(notification) {
                        let id = format!("{now}-{}", inner.next_id);
                        inner.next_id += 1;
                        let entry = OutboxEntry {
                            id: id.clone(),
                            delivery,
                            created_ms: now,
                            attempts: 0,
                            next_attempt_ms: now,
                            last_error: None,
                            in_flight: false,
                        };
                        // Written before it is sent: a crash cannot lose it.
                        match serde_json::to_vec(&entry) {
                            Ok(bytes) => {
                                if let Err(e) = self.store.put(&format!("outbox/{id}"), &bytes) {
                                    tracing::error!(error = %e, "cannot write a notification to the outbox");
                                }
                            }
                            Err(e) => tracing::error!(error = %e, "cannot encode a notification"),
                        }
                        inner.outbox.insert(id, entry);
                        queued = true;
                    }
                }
                if !notifications.is_empty() {
                    self.save_notify(&inner);
                }
                if queued {
                    self.send_wake.notify_one();
                }
                let save = self
                    .external_dirty
                    .load(std::sync::atomic::Ordering::Acquire)
                    .then(|| {
                        self.external_saved_ms
                            .load(std::sync::atomic::Ordering::Acquire)
                            + EXTERNAL_SAVE_MS
                    });
                let due = [
                    inner.dispatcher.next_due_ms(),
                    inner.external.next_end_ms(),
                    save,
                ]
                .into_iter()
                .flatten()
                .min();
                due.map_or(60_000, |due| (due - now).clamp(1, 60_000))
            };
            tokio::select! {
                () = cancel.cancelled() => {
                    // Stopping: what changed since the last write is kept.
                    self.save_external(true);
                    return;
                }
                () = self.flush_wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
    }

    async fn send_loop(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            if !self.active_now().await {
                if !self.idle(&cancel, &self.send_wake).await {
                    return;
                }
                continue;
            }
            let now = now_ms();
            let (due, wait) = {
                let mut inner = self.inner.lock().expect("ruler lock");
                let mut due = Vec::new();
                let mut expired = Vec::new();
                for entry in inner.outbox.values_mut() {
                    if entry.in_flight {
                        continue;
                    }
                    if now - entry.created_ms > DELIVERY_EXPIRY_MS {
                        expired.push(entry.id.clone());
                    } else if entry.next_attempt_ms <= now {
                        entry.in_flight = true;
                        due.push(entry.clone());
                    }
                }
                for id in expired {
                    inner.outbox.remove(&id);
                    self.stats.expired.inc();
                    let _ = self.store.delete(&format!("outbox/{id}"));
                    tracing::warn!(id = %id, "a notification expired undelivered after a day");
                }
                let wait = inner
                    .outbox
                    .values()
                    .filter(|e| !e.in_flight)
                    .map(|e| e.next_attempt_ms - now)
                    .min()
                    .unwrap_or(60_000)
                    .clamp(1, 60_000);
                (due, wait)
            };
            for entry in due {
                let this = self.clone();
                tokio::spawn(async move { this.deliver(entry).await });
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.send_wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
    }

    async fn deliver(self: Arc<Self>, entry: OutboxEntry) {
        let outcome = tokio::time::timeout(Duration::from_secs(10), post(&entry.delivery))
            .await
            .unwrap_or_else(|_| Err("timed out after 10s".to_owned()));
        let mut inner = self.inner.lock().expect("ruler lock");
        match outcome {
            Ok(()) => {
                self.stats.delivered.inc();
                inner.outbox.remove(&entry.id);
                if let Err(e) = self.store.delete(&format!("outbox/{}", entry.id)) {
                    tracing::error!(error = %e, "cannot remove a delivered notification");
                }
            }
            Err(error) => {
                self.stats.delivery_failures.inc();
                let Some(stored) = inner.outbox.get_mut(&entry.id) else {
                    return;
                };
                stored.in_flight = false;
                stored.attempts += 1;
                // Exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... up to a minute.
                let base = (500i64 << stored.attempts.min(10)).min(MAX_BACKOFF_MS);
                let jitter =
                    (now_ms() ^ (i64::from(stored.attempts) * 7919)).rem_euclid(base / 4 + 1);
                stored.next_attempt_ms = now_ms() + base - base / 8 + jitter;
                tracing::warn!(
                    receiver = %stored.delivery.receiver,
                    url = %stored.delivery.url,
                    attempts = stored.attempts,
                    error = %error,
                    "webhook delivery failed; will retry"
                );
                stored.last_error = Some(error);
                if let Ok(bytes) = serde_json::to_vec(&*stored) {
                    let _ = self.store.put(&format!("outbox/{}", stored.id), &bytes);
                }
                drop(inner);
                self.send_wake.notify_one();
            }
        }
    }

    /// The groups with their rules, for `/api/v1/rules`, in Prometheus's shape.
    pub fn rules_json(&self, kind: Option<&str>) -> serde_json::Value {
        use serde_json::json;
        let inner = self.inner.lock().expect("ruler lock");
        let groups: Vec<serde_json::Value> = inner
            .groups
            .iter()
            .map(|g| {
                let rules: Vec<serde_json::Value> = g
                    .group
                    .rules
                    .iter()
                    .zip(&g.alerts)
                    .zip(&g.health)
                    .filter(|((r, _), _)| match kind {
                        Some("alert") => matches!(r.kind, RuleKind::Alert { .. }),
                        Some("record") => matches!(r.kind, RuleKind::Record { .. }),
                        _ => true,
                    })
                    .map(|((rule, alerts), health)| {
                        let health_word = match (&health.last_error, health.last_eval_ms) {
                            (Some(_), _) => "err",
                            (None, Some(_)) => "ok",
                            (None, None) => "unknown",
                        };
                        let common = |mut v: serde_json::Value| {
                            v["health"] = json!(health_word);
                            v["lastError"] = json!(health.last_error.clone().unwrap_or_default());
                            v["evaluationTime"] = json!(health.eval_seconds);
                            v["lastEvaluation"] = json!(
                                health
                                    .last_eval_ms
                                    .map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), crate::notify::rfc3339)
                            );
                            v
                        };
                        match &rule.kind {
                            RuleKind::Record { name } => common(json!({
                                "name": name,
                                "query": rule.expr,
                                "labels": rule.labels,
                                "type": "recording",
                            })),
                            RuleKind::Alert {
                                name,
                                for_duration,
                                keep_firing_for,
                                annotations,
                                ..
                            } => {
                                let active: Vec<serde_json::Value> = alerts
                                    .alerts
                                    .values()
                                    .filter(|a| a.state != AlertState::Inactive)
                                    .map(alert_json)
                                    .collect();
                                let state = alerts
                                    .alerts
                                    .values()
                                    .map(|a| a.state)
                                    .max_by_key(|s| match s {
                                        AlertState::Inactive => 0,
                                        AlertState::Pending => 1,
                                        AlertState::NoData => 2,
                                        AlertState::Firing => 3,
                                    })
                                    .unwrap_or(AlertState::Inactive);
                                let mut v = common(json!({
                                    "state": state.as_str(),
                                    "name": name,
                                    "query": rule.expr,
                                    "duration": for_duration.as_millis() / 1000,
                                    "keepFiringFor": keep_firing_for.as_millis() / 1000,
                                    "labels": rule.labels,
                                    "annotations": annotations,
                                    "alerts": active,
                                    "type": "alerting",
                                }));
                                if let Some(logs) = &rule.logs {
                                    v["logQuery"] = json!({
                                        "window": logs.window.to_string(),
                                        "threshold": logs.threshold,
                                    });
                                }
                                v
                            }
                        }
                    })
                    .collect();
                json!({
                    "name": g.group.name,
                    "file": g.file.display().to_string(),
                    "rules": rules,
                    "interval": g.interval_ms as f64 / 1000.0,
                    "limit": g.group.limit,
                    "evaluationTime": g.eval_seconds,
                    "lastEvaluation": g.last_eval_ms.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), crate::notify::rfc3339),
                })
            })
            .collect();
        json!({ "groups": groups })
    }

    /// Active alerts, for `/api/v1/alerts`, in Prometheus's shape.
    pub fn alerts_json(&self) -> serde_json::Value {
        let inner = self.inner.lock().expect("ruler lock");
        let alerts: Vec<serde_json::Value> = inner
            .groups
            .iter()
            .flat_map(|g| g.alerts.iter())
            .flat_map(|a| a.alerts.values())
            .filter(|a| a.state != AlertState::Inactive)
            .map(alert_json)
            .collect();
        serde_json::json!({ "alerts": alerts })
    }

    /// State changes, oldest first, of `rule` (all rules when `None`).
    pub fn history_json(&self, rule: Option<&str>) -> serde_json::Value {
        let inner = self.inner.lock().expect("ruler lock");
        let changes: Vec<serde_json::Value> = inner
            .history
            .iter()
            .filter(|t| rule.is_none_or(|r| t.rule == r))
            .map(|t| {
                serde_json::json!({
                    "rule": t.rule,
                    "group": t.group,
                    "labels": t.labels,
                    "from": t.from.as_str(),
                    "to": t.to.as_str(),
                    "value": crate::notify::value_text(t.value),
                    "timestamp": crate::notify::rfc3339(t.at_ms),
                })
            })
            .collect();
        serde_json::json!(changes)
    }

    /// Silences with their state, in Alertmanager's v2 shape.
    pub fn silences_json(&self) -> serde_json::Value {
        let inner = self.inner.lock().expect("ruler lock");
        let now = now_ms();
        let list: Vec<serde_json::Value> = inner
            .dispatcher
            .silences
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["status"] = serde_json::json!({ "state": s.state(now) });
                v
            })
            .collect();
        serde_json::json!(list)
    }

    /// Adds (or, with a known id, replaces) a silence; returns its id.
    pub fn add_silence(&self, mut silence: Silence) -> Result<String, String> {
        silence.compile()?;
        let mut inner = self.inner.lock().expect("ruler lock");
        silence.updated_at = crate::notify::rfc3339(now_ms());
        if silence.id.is_empty() {
            silence.id = crate::notify::new_silence_id();
        } else if !inner.dispatcher.silences.iter().any(|s| s.id == silence.id) {
            return Err(format!("silence {} not found", silence.id));
        }
        let id = silence.id.clone();
        inner.dispatcher.silences.retain(|s| s.id != id);
        inner.dispatcher.silences.push(silence);
        self.save_notify(&inner);
        Ok(id)
    }

    /// Expires a silence now; false when there is none with that id.
    pub fn expire_silence(&self, id: &str) -> bool {
        let mut inner = self.inner.lock().expect("ruler lock");
        let now = now_ms();
        let Some(silence) = inner.dispatcher.silences.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        if silence.state(now) != "expired" {
            silence.updated_at = crate::notify::rfc3339(now);
            silence.ends_at = crate::notify::rfc3339(now);
            if silence.starts_at_ms().is_some_and(|s| s > now) {
                silence.starts_at = silence.ends_at.clone();
            }
        }
        self.save_notify(&inner);
        drop(inner);
        self.flush_wake.notify_one();
        true
    }

    /// Takes alerts another ruler sent (`POST /api/v2/alerts`) as
    /// Alertmanager does: the valid ones are kept and routed like the
    /// ruler's own; the error names the invalid ones, and new ones refused
    /// because [`crate::external::MAX_ALERTS`] are kept.
    pub fn post_alerts(&self, alerts: Vec<PostedAlert>) -> Result<(), String> {
        const SHOWN: usize = 10;
        let now = now_ms();
        let timeout = self
            .inner
            .lock()
            .expect("ruler lock")
            .config
            .resolve_timeout_ms();
        let mut errors = Vec::new();
        let mut invalid = 0;
        let mut accepted = Vec::with_capacity(alerts.len());
        for (index, alert) in alerts.into_iter().enumerate() {
            match alert.accept(now, timeout) {
                Ok(alert) => accepted.push(alert),
                Err(e) => {
                    invalid += 1;
                    if errors.len() < SHOWN {
                        errors.push(format!("alert {index}: {e}"));
                    }
                }
            }
        }
        if invalid > SHOWN {
            errors.push(format!("and {} more invalid alerts", invalid - SHOWN));
        }
        if !accepted.is_empty() {
            let mut inner = self.inner.lock().expect("ruler lock");
            let (notify, refused) = inner.external.put(accepted, now);
            if refused > 0 {
                errors.push(format!(
                    "{refused} new alerts refused: Sextant keeps at most {} alerts from other rulers",
                    crate::external::MAX_ALERTS
                ));
            }
            inner.dispatcher.receive(notify, now);
            drop(inner);
            self.external_dirty
                .store(true, std::sync::atomic::Ordering::Release);
            self.save_external(false);
            self.flush_wake.notify_one();
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Resolves the external alerts whose end passed, for the dispatcher.
    fn expire_external(&self) {
        let mut inner = self.inner.lock().expect("ruler lock");
        let now = now_ms();
        let (resolved, changed) = inner.external.expire(now);
        if !changed {
            return;
        }
        inner.dispatcher.receive(resolved, now);
        drop(inner);
        self.external_dirty
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Writes what is written lazily (the external alerts) if it changed.
    pub fn save_now(&self) {
        self.save_external(true);
    }

    /// Writes the external alerts when they changed, at most every
    /// [`EXTERNAL_SAVE_MS`] unless `now` (a sender re-sends them anyway:
    /// Prometheus posts 64 at a time, every minute).
    fn save_external(&self, now: bool) {
        use std::sync::atomic::Ordering;
        if !self.external_dirty.load(Ordering::Acquire)
            || (!now
                && now_ms() - self.external_saved_ms.load(Ordering::Acquire) < EXTERNAL_SAVE_MS)
        {
            return;
        }
        let _write = self.external_writes.lock().expect("external writes lock");
        if !self.external_dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let bytes = serde_json::to_vec(&self.inner.lock().expect("ruler lock").external);
        self.external_saved_ms.store(now_ms(), Ordering::Release);
        match bytes {
            Ok(bytes) => {
                if let Err(e) = self.store.put(EXTERNAL, &bytes) {
                    // Tried again at the next save.
                    self.external_dirty.store(true, Ordering::Release);
                    tracing::error!(error = %e, "cannot save the alerts other rulers sent");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the alerts other rulers sent"),
        }
    }

    /// The alerts firing now, the ruler's own and those other rulers sent,
    /// as Alertmanager's API lists them: by fingerprint.
    pub fn api_alerts(&self) -> Vec<ApiAlert> {
        let inner = self.inner.lock().expect("ruler lock");
        listed(&inner, now_ms()).into_values().collect()
    }

    /// The dispatcher's groups with the alerts firing in them now.
    pub fn api_groups(&self) -> Vec<ApiGroup> {
        let inner = self.inner.lock().expect("ruler lock");
        let listed = listed(&inner, now_ms());
        inner
            .dispatcher
            .groups
            .values()
            .filter_map(|group| {
                let mut alerts: Vec<ApiAlert> = group
                    .alerts()
                    .filter(|a| a.status != Status::Resolved)
                    .filter_map(|a| listed.get(&a.fingerprint()).cloned())
                    .collect();
                alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
                (!alerts.is_empty()).then(|| ApiGroup {
                    labels: group.labels.clone(),
                    receiver: group.receiver.clone(),
                    alerts,
                })
            })
            .collect()
    }

    /// The configured receivers' names.
    pub fn receiver_names(&self) -> Vec<String> {
        let inner = self.inner.lock().expect("ruler lock");
        inner.dispatcher.receiver_names()
    }

    /// The `alerting` section in force.
    pub fn alerting_config(&self) -> AlertingConfig {
        self.inner.lock().expect("ruler lock").config.clone()
    }

    /// Every silence, expired ones included.
    pub fn silence_list(&self) -> Vec<Silence> {
        let inner = self.inner.lock().expect("ruler lock");
        inner.dispatcher.silences.clone()
    }

    /// Creates or updates a silence as Alertmanager's v2 API does: times are
    /// written in UTC, a start in the past is now, an end in the past is
    /// refused; with the id of a silence whose matchers and (once active)
    /// start stay, it is changed in place, otherwise that silence is
    /// expired and a new one made. Returns the id.
    pub fn set_silence(&self, mut silence: Silence) -> Result<String, SilenceError> {
        silence.compile().map_err(SilenceError::Invalid)?;
        if let Some(m) = silence
            .matchers
            .iter()
            .find(|m| !sextant_model::is_valid_label_name(&m.name))
        {
            return Err(SilenceError::Invalid(format!(
                "invalid label name {:?}",
                m.name
            )));
        }
        let (Some(starts), Some(ends)) = (silence.starts_at_ms(), silence.ends_at_ms()) else {
            return Err(SilenceError::Invalid(
                "startsAt and endsAt must be RFC 3339 times".to_owned(),
            ));
        };
        let now = now_ms();
        if ends < now {
            return Err(SilenceError::Invalid(
                "end time can't be in the past".to_owned(),
            ));
        }
        let stamp = crate::notify::rfc3339;
        silence.starts_at = stamp(starts);
        silence.ends_at = stamp(ends);
        silence.updated_at = stamp(now);
        let mut inner = self.inner.lock().expect("ruler lock");
        let silences = &mut inner.dispatcher.silences;
        if !silence.id.is_empty() {
            let Some(previous) = silences.iter_mut().find(|s| s.id == silence.id) else {
                let id: String = silence.id.chars().take(64).collect();
                let more = if id.len() < silence.id.len() {
                    "…"
                } else {
                    ""
                };
                return Err(SilenceError::NotFound(format!(
                    "silence {id}{more} not found"
                )));
            };
            let in_place = previous.matchers == silence.matchers
                && match previous.state(now) {
                    "active" => previous.starts_at_ms() == Some(starts),
                    "pending" => starts >= now,
                    _ => false,
                };
            if in_place {
                *previous = silence.clone();
            } else {
                if previous.state(now) != "expired" {
                    previous.ends_at = stamp(now);
                    if previous.starts_at_ms().is_some_and(|s| s > now) {
                        previous.starts_at = previous.ends_at.clone();
                    }
                    previous.updated_at = stamp(now);
                }
                silence.id = String::new();
            }
        }
        if silence.id.is_empty() {
            silence.id = crate::notify::new_silence_id();
            if starts < now {
                silence.starts_at = stamp(now);
            }
            silences.push(silence.clone());
        }
        self.save_notify(&inner);
        drop(inner);
        self.flush_wake.notify_one();
        Ok(silence.id)
    }

    /// Writes the ruler's counters to a `/metrics` page.
    pub fn render_metrics(&self, page: &mut Exposition) {
        if let Some((forwarder, _)) = &*self.forwarder.lock().expect("forwarder lock") {
            forwarder.render_metrics(page);
        }
        let s = &self.stats;
        page.single(
            "sextant_rule_evaluations_total",
            MetricKind::Counter,
            "Rule evaluations.",
            s.evaluations.get() as f64,
        );
        page.single(
            "sextant_rule_evaluation_failures_total",
            MetricKind::Counter,
            "Rule evaluations that failed.",
            s.evaluation_failures.get() as f64,
        );
        page.single(
            "sextant_alert_notifications_total",
            MetricKind::Counter,
            "Notifications sent to receivers (before delivery).",
            s.notifications.get() as f64,
        );
        page.family(
            "sextant_webhook_deliveries_total",
            MetricKind::Counter,
            "Webhook requests by outcome.",
        );
        for (outcome, n) in [
            ("delivered", s.delivered.get()),
            ("failed", s.delivery_failures.get()),
            ("expired", s.expired.get()),
        ] {
            page.sample(
                "sextant_webhook_deliveries_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
        let inner = self.inner.lock().expect("ruler lock");
        page.single(
            "sextant_webhook_outbox",
            MetricKind::Gauge,
            "Webhook requests waiting to be delivered.",
            inner.outbox.len() as f64,
        );
        page.family(
            "sextant_rule_group_last_duration_seconds",
            MetricKind::Gauge,
            "How long the last evaluation of a rule group took.",
        );
        for g in &inner.groups {
            page.sample(
                "sextant_rule_group_last_duration_seconds",
                &[("rule_group", &g.key())],
                g.eval_seconds,
            );
        }
        for (family, kind, help) in [
            (
                "sextant_rule_last_evaluation_seconds",
                MetricKind::Gauge,
                "How long the last evaluation of a rule took.",
            ),
            (
                "sextant_rule_evaluation_failures_by_rule_total",
                MetricKind::Counter,
                "Failed evaluations of a rule since start.",
            ),
        ] {
            page.family(family, kind, help);
            for g in &inner.groups {
                let key = g.key();
                for (rule, health) in g.group.rules.iter().zip(&g.health) {
                    let value = if kind == MetricKind::Counter {
                        health.failures as f64
                    } else {
                        health.eval_seconds
                    };
                    page.sample(
                        family,
                        &[("rule_group", &key), ("rule", rule.name())],
                        value,
                    );
                }
            }
        }
    }
}

/// Why a silence was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilenceError {
    /// No silence has the id given.
    NotFound(String),
    /// The silence is not valid; the text says why.
    Invalid(String),
}

/// An alert as Alertmanager's API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiAlert {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    pub fingerprint: String,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub updated_at_ms: i64,
    pub generator_url: String,
    /// The receivers of the routes it takes.
    pub receivers: Vec<String>,
    /// The active silences muting it.
    pub silenced_by: Vec<String>,
    /// The fingerprints of the alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// A notification group as Alertmanager's API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiGroup {
    pub labels: LabelMap,
    pub receiver: String,
    pub alerts: Vec<ApiAlert>,
}

/// The alerts firing at `now`, by fingerprint: the rules' firing and
/// no-data alerts (ending, as Prometheus would send them, four intervals,
/// at least a minute each, after their last evaluation), then those other
/// rulers sent.
fn listed(inner: &Inner, now: i64) -> BTreeMap<String, ApiAlert> {
    let suppression = inner.dispatcher.suppression(now);
    let external_url = inner.config.external_url.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut add = |labels: &LabelMap,
                   annotations: &LabelMap,
                   (starts, ends, updated): (i64, i64, i64),
                   url: String| {
        let fingerprint = crate::state::fingerprint(labels);
        if out.contains_key(&fingerprint) {
            return;
        }
        let alert = ApiAlert {
            labels: labels.clone(),
            annotations: annotations.clone(),
            fingerprint: fingerprint.clone(),
            starts_at_ms: starts,
            ends_at_ms: ends,
            updated_at_ms: updated,
            generator_url: url,
            receivers: inner.dispatcher.receivers_of(labels),
            silenced_by: suppression.silenced_by(labels),
            inhibited_by: suppression.inhibited_by(labels),
        };
        out.insert(fingerprint, alert);
    };
    for run in &inner.groups {
        let updated = run.last_eval_ms.unwrap_or(now);
        let ends = updated.saturating_add(4 * run.interval_ms.max(60_000));
        for (rule, alerts) in run.group.rules.iter().zip(&run.alerts) {
            for alert in alerts
                .alerts
                .values()
                .filter(|a| matches!(a.state, AlertState::Firing | AlertState::NoData))
            {
                add(
                    &alert.labels,
                    &alert.annotations,
                    (
                        alert.fired_at_ms.unwrap_or(alert.active_at_ms),
                        ends,
                        updated,
                    ),
                    generator_url(&external_url, &rule.expr),
                );
            }
        }
    }
    for alert in inner.external.firing(now) {
        add(
            &alert.labels,
            &alert.annotations,
            (alert.starts_at_ms, alert.ends_at_ms, alert.updated_at_ms),
            alert.generator_url.clone(),
        );
    }
    out
}

fn alert_json(a: &crate::state::Alert) -> serde_json::Value {
    serde_json::json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": crate::notify::rfc3339(a.active_at_ms),
        "value": crate::notify::value_text(a.value),
    })
}

/// Where Linux distributions keep their CA bundle.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A TLS client trusting `ca_file`, or the system's roots.
fn tls_client(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let bundle = match ca_file {
        Some(path) => path.to_owned(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or("no CA bundle found on this system; set the webhook's tls_config.ca_file")?,
    };
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&bundle)
        .and_then(Iterator::collect)
        .map_err(|e| format!("{}: {e}", bundle.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!("{}: no usable CA certificate", bundle.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One HTTP/1.1 exchange over `io` (plain TCP or TLS).
pub(crate) async fn exchange<IO>(
    io: IO,
    request: hyper::Request<Full<Bytes>>,
    url: &str,
) -> Result<hyper::StatusCode, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// POSTs a webhook body over HTTP or HTTPS; any 2xx is delivered.
async fn post(delivery: &Delivery) -> Result<(), String> {
    let url = &delivery.url;
    let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return Err(format!("{url}: not an http:// or https:// URL")),
    };
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    let address = if host.len() == authority.len() {
        format!("{authority}:{}", if https { 443 } else { 80 })
    } else {
        authority.to_owned()
    };
    let mut request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("Sextant/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in &delivery.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(delivery.body.clone())))
        .map_err(|e| format!("building the request: {e}"))?;
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = if https {
        let config = tls_client(delivery.ca_file.as_deref())?;
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|e| format!("{url}: invalid TLS server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| format!("POST {url}: tls: {e}"))?;
        exchange(tls, request, url).await?
    } else {
        exchange(stream, request, url).await?
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST {url}: HTTP status {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::parse_rule_file;

    /// A group of one rule, `Queue`, firing at once on `x > 100`, every 10 s.
    fn group() -> GroupRun {
        let file = parse_rule_file(
            Path::new("r.yml"),
            "groups:\n- name: q\n  interval: 10s\n  rules:\n  - record: y\n    expr: x\n  - alert: Queue\n    expr: x > 100\n",
        )
        .unwrap();
        let group = file.groups[0].clone();
        GroupRun {
            file: PathBuf::from("r.yml"),
            interval_ms: 10_000,
            health: Vec::new(),
            alerts: vec![RuleAlerts::default(); group.rules.len()],
            group,
            last_eval_ms: None,
            eval_seconds: 0.0,
            last_forwarded: BTreeMap::new(),
        }
    }

    fn evaluate(run: &mut GroupRun, value: Option<f64>, t_ms: i64) -> Vec<ForwardedAlert> {
        let at = crate::state::Evaluation {
            group: "q",
            group_labels: &LabelMap::new(),
            now_ms: t_ms,
            external_url: "",
        };
        let results = value
            .map(|v| {
                vec![(
                    LabelMap::from([("queue".to_owned(), "orders".to_owned())]),
                    v,
                )]
            })
            .unwrap_or_default();
        let rule = run.group.rules[1].clone();
        run.alerts[1]
            .evaluate(&rule, &at, results, &mut Vec::new())
            .unwrap();
        to_forward(run, t_ms, 60_000, "http://sextant:7070")
    }

    #[test]
    fn alerts_are_forwarded_as_prometheus_sends_them() {
        let mut run = group();
        let sent = evaluate(&mut run, Some(150.0), 1_000_000);
        assert_eq!(sent.len(), 1);
        let alert = &sent[0];
        assert_eq!(alert.labels["alertname"], "Queue");
        assert_eq!(alert.starts_at_ms, 1_000_000);
        // Four times the larger of the resend delay (1m) and the interval (10s).
        assert_eq!(alert.ends_at_ms, 1_000_000 + 240_000);
        assert!(
            alert
                .generator_url
                .starts_with("http://sextant:7070/graph?g0.expr=x")
        );
        // Not again before the resend delay has passed...
        for t in [1_010_000, 1_050_000, 1_060_000] {
            assert!(evaluate(&mut run, Some(150.0), t).is_empty(), "at {t}");
        }
        // ...then again, ending later.
        let again = evaluate(&mut run, Some(150.0), 1_070_000);
        assert_eq!(again[0].ends_at_ms, 1_070_000 + 240_000);
        assert_eq!(again[0].starts_at_ms, 1_000_000);
        // Resolved: sent at once, ending when it resolved, and again after the delay.
        let resolved = evaluate(&mut run, None, 1_080_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].ends_at_ms, 1_080_000);
        assert!(evaluate(&mut run, None, 1_090_000).is_empty());
        let repeated = evaluate(&mut run, None, 1_150_000);
        assert_eq!(repeated[0].ends_at_ms, 1_080_000);
        // Gone after 15 minutes, and forgotten.
        assert!(evaluate(&mut run, None, 1_080_000 + 16 * 60_000).is_empty());
        assert!(run.last_forwarded.is_empty());
    }

    #[test]
    fn pending_alerts_are_not_forwarded() {
        let file = parse_rule_file(
            Path::new("r.yml"),
            "groups:\n- name: q\n  rules:\n  - alert: Slow\n    expr: x > 1\n    for: 5m\n",
        )
        .unwrap();
        let group = file.groups[0].clone();
        let mut run = GroupRun {
            file: PathBuf::from("r.yml"),
            interval_ms: 60_000,
            health: Vec::new(),
            alerts: vec![RuleAlerts::default()],
            group,
            last_eval_ms: None,
            eval_seconds: 0.0,
            last_forwarded: BTreeMap::new(),
        };
        let at = crate::state::Evaluation {
            group: "q",
            group_labels: &LabelMap::new(),
            now_ms: 0,
            external_url: "",
        };
        let rule = run.group.rules[0].clone();
        run.alerts[0]
            .evaluate(&rule, &at, vec![(LabelMap::new(), 2.0)], &mut Vec::new())
            .unwrap();
        assert!(to_forward(&mut run, 0, 60_000, "").is_empty());
    }
}
