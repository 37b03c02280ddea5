//! Forwarding the ruler's alerts to Alertmanagers, as Prometheus's notifier
//! does: `alerting.alertmanagers` in prometheus.yml's format (static and
//! file_sd targets, `relabel_configs`, `scheme`, `path_prefix`, `timeout`,
//! credentials, `tls_config`), alerts POSTed as a JSON array to
//! `<scheme>://<target><path_prefix>/api/v2/alerts`, at most 64 a request.
//!
//! Every Alertmanager has its own bounded queue (10,000 alerts, the oldest
//! dropped and counted) and its own sender, so one that is down delays no
//! other. Unlike Prometheus, which drops a batch no Alertmanager took, a
//! batch an Alertmanager refused goes back to the head of its queue and is
//! tried again with backoff, and an alert queued again replaces its older
//! copy in place: an Alertmanager that was down gets each alert's latest
//! state once it is back, in one pass.
//!
//! When an alert is sent and what its `endsAt` is are the ruler's business;
//! this room knows queues and requests. Only the ruler that evaluates feeds
//! it, so in a cluster an alert is sent by one node.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde::Deserialize;
use sextant_ingest::scrape::relabel::relabel;
use sextant_ingest::scrape::target::{TargetGroup, expand_file_globs, read_file_sd};
use sextant_ingest::scrape::{
    Authorization, BasicAuth, Credentials, FileSdConfig, RelabelConfig, Scheme, StaticConfig,
    TlsConfig,
};
use sextant_model::PromDuration;
use sextant_model::de::null_as_default;
use sextant_model::telemetry::{Counter, Exposition, MetricKind};
use tokio_util::sync::CancellationToken;

use crate::state::{LabelMap, fingerprint};

/// The most alerts one request carries (Prometheus's `maxBatchSize`).
pub const MAX_BATCH: usize = 64;
/// The most alerts waiting for one Alertmanager (Prometheus's
/// `--alertmanager.notification-queue-capacity` default).
pub const QUEUE_CAPACITY: usize = 10_000;
/// How long one request may take unless `timeout` says (Prometheus's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the file_sd files are read again. Prometheus watches them and
/// takes a change at once; five seconds is close to that and needs no watcher.
const DISCOVERY_EVERY: Duration = Duration::from_secs(5);
/// The longest wait before a refused batch is tried again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// The label holding the path alerts are POSTed to (Prometheus's).
const PATH_LABEL: &str = "__alerts_path__";

/// One entry of `alerting.alertmanagers`, in Prometheus's format.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawAlertmanagerConfig")]
pub struct AlertmanagerConfig {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Put before `/api/v2/alerts` (an Alertmanager behind a path).
    pub path_prefix: String,
    /// How long one request may take.
    pub timeout: Duration,
    pub static_configs: Vec<StaticConfig>,
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Relabelling of the discovered Alertmanagers (`__address__`,
    /// `__scheme__`, `__alerts_path__`); a dropped one is not sent to.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabelling of the alerts sent to these Alertmanagers.
    pub alert_relabel_configs: Vec<RelabelConfig>,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: Option<TlsConfig>,
    /// Where relative paths (files, CA and key files, secrets) are resolved:
    /// the config file's directory, set by whoever loads the file.
    pub base_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanagerConfig {
    #[serde(default)]
    scheme: Scheme,
    #[serde(default)]
    path_prefix: String,
    timeout: Option<PromDuration>,
    api_version: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    static_configs: Vec<StaticConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    file_sd_configs: Vec<FileSdConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    relabel_configs: Vec<RelabelConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    alert_relabel_configs: Vec<RelabelConfig>,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    tls_config: Option<TlsConfig>,
}

impl TryFrom<RawAlertmanagerConfig> for AlertmanagerConfig {
    type Error = String;

    fn try_from(raw: RawAlertmanagerConfig) -> Result<Self, Self::Error> {
        match raw.api_version.as_deref() {
            None | Some("v2") => {}
            Some("v1") => {
                return Err(
                    "alertmanagers: api_version v1 is not supported (Alertmanager \
                            removed API v1; Prometheus 2.42 and later refuse it too): use v2"
                        .to_owned(),
                );
            }
            Some(other) => {
                return Err(format!(
                    "alertmanagers: api_version {other:?} is not valid: use v2"
                ));
            }
        }
        let timeout = raw.timeout.map_or(DEFAULT_TIMEOUT, PromDuration::as_std);
        if timeout.is_zero() {
            return Err("alertmanagers: timeout must be more than 0s".to_owned());
        }
        let bearer = raw.bearer_token.is_some() || raw.bearer_token_file.is_some();
        if raw.bearer_token.is_some() && raw.bearer_token_file.is_some() {
            return Err(
                "alertmanagers: set at most one of bearer_token and bearer_token_file".to_owned(),
            );
        }
        let ways = [
            raw.basic_auth.is_some(),
            raw.authorization.is_some(),
            bearer,
        ];
        if ways.iter().filter(|set| **set).count() > 1 {
            return Err(
                "alertmanagers: set at most one of basic_auth, authorization and \
                        bearer_token/bearer_token_file"
                    .to_owned(),
            );
        }
        if let Some(basic) = &raw.basic_auth
            && basic.password.is_some()
            && basic.password_file.is_some()
        {
            return Err(
                "alertmanagers: basic_auth: set at most one of password and password_file"
                    .to_owned(),
            );
        }
        if let Some(auth) = &raw.authorization {
            if auth.kind.eq_ignore_ascii_case("basic") {
                return Err("alertmanagers: authorization type cannot be \"Basic\": \
                            use basic_auth instead"
                    .to_owned());
            }
            if auth.credentials.is_some() && auth.credentials_file.is_some() {
                return Err(
                    "alertmanagers: authorization: set at most one of credentials \
                            and credentials_file"
                        .to_owned(),
                );
            }
        }
        Ok(Self {
            scheme: raw.scheme,
            path_prefix: raw.path_prefix,
            timeout,
            static_configs: raw.static_configs,
            file_sd_configs: raw.file_sd_configs,
            relabel_configs: raw.relabel_configs,
            alert_relabel_configs: raw.alert_relabel_configs,
            basic_auth: raw.basic_auth,
            authorization: raw.authorization,
            bearer_token: raw.bearer_token,
            bearer_token_file: raw.bearer_token_file,
            tls_config: raw.tls_config,
            base_dir: PathBuf::from("."),
        })
    }
}

impl AlertmanagerConfig {
    fn credentials(&self) -> Credentials<'_> {
        Credentials {
            basic_auth: self.basic_auth.as_ref(),
            bearer_token: self.bearer_token.as_deref(),
            bearer_token_file: self.bearer_token_file.as_deref(),
            authorization: self.authorization.as_ref(),
        }
    }

    /// The path alerts are POSTed to, as Prometheus joins it.
    pub fn alerts_path(&self) -> String {
        let prefix = self.path_prefix.trim_matches('/');
        if prefix.is_empty() {
            "/api/v2/alerts".to_owned()
        } else {
            format!("/{prefix}/api/v2/alerts")
        }
    }

    /// The TLS client `tls_config` describes; an error names the bad file.
    pub fn tls_client(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        sextant_ingest::scrape::tls::client_config_for(
            self.tls_config.as_ref().unwrap_or(&TlsConfig::default()),
            &self.base_dir,
        )
    }

    /// The Alertmanagers this entry names now: static targets and those in
    /// the file_sd files, through `relabel_configs`. A file that cannot be
    /// read is an error (the caller keeps what it found before).
    pub fn discover(&self) -> Result<Vec<Endpoint>, String> {
        let mut groups: Vec<TargetGroup> = self
            .static_configs
            .iter()
            .map(|s| TargetGroup {
                targets: s.targets.iter().map(|t| t.0.clone()).collect(),
                labels: s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.0.clone(), v.clone()))
                    .collect(),
            })
            .collect();
        for sd in &self.file_sd_configs {
            for path in expand_file_globs(&self.base_dir, &sd.files) {
                groups.extend(read_file_sd(&path)?);
            }
        }
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let mut out = Vec::new();
        for group in &groups {
            for address in &group.targets {
                let mut labels = group.labels.clone();
                labels.insert("__address__".to_owned(), address.clone());
                labels.insert("__scheme__".to_owned(), scheme.to_owned());
                labels.insert(PATH_LABEL.to_owned(), self.alerts_path());
                if !relabel(&mut labels, &self.relabel_configs) {
                    continue;
                }
                let address = labels.get("__address__").cloned().unwrap_or_default();
                if address.is_empty() || address.contains('/') {
                    return Err(format!(
                        "alertmanagers: {address:?} is not a valid host:port address"
                    ));
                }
                let https = match labels.get("__scheme__").map(String::as_str) {
                    Some("https") => true,
                    Some("http") | None => false,
                    Some(other) => return Err(format!("alertmanagers: invalid scheme {other:?}")),
                };
                let path = labels
                    .get(PATH_LABEL)
                    .cloned()
                    .unwrap_or_else(|| self.alerts_path());
                out.push(Endpoint {
                    address,
                    https,
                    path,
                });
            }
        }
        Ok(out)
    }
}

/// One Alertmanager to send to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// `host:port`, or a host (then port 80 or 443).
    pub address: String,
    pub https: bool,
    /// Where alerts are POSTed, e.g. `/api/v2/alerts`.
    pub path: String,
}

impl Endpoint {
    /// The URL alerts are POSTed to (the `alertmanager` label of the counters).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.address, self.path)
    }

    /// Where to connect: the address, with the scheme's port when it has none.
    fn socket_address(&self) -> String {
        let has_port = self.address.rsplit_once(':').is_some_and(|(host, port)| {
            !port.is_empty()
                && port.chars().all(|c| c.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        });
        if has_port {
            self.address.clone()
        } else {
            format!("{}:{}", self.address, if self.https { 443 } else { 80 })
        }
    }
}

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardedAlert {
    pub labels: LabelMap,
    pub annotations: LabelMap,
    /// Ms since the epoch.
    pub starts_at_ms: i64,
    /// Ms since the epoch: when a firing alert lapses unless sent again, or
    /// when a resolved one resolved.
    pub ends_at_ms: i64,
    pub generator_url: String,
}

impl ForwardedAlert {
    fn json(&self, labels: &LabelMap) -> String {
        serde_json::json!({
            "labels": labels,
            "annotations": self.annotations,
            "startsAt": crate::notify::rfc3339(self.starts_at_ms),
            "endsAt": crate::notify::rfc3339(self.ends_at_ms),
            "generatorURL": self.generator_url,
        })
        .to_string()
    }
}

/// An alert waiting for an Alertmanager: its fingerprint and its JSON.
#[derive(Debug)]
struct Queued {
    key: String,
    json: String,
}

/// The alerts waiting for one Alertmanager, oldest first, at most one per
/// alert: an alert queued again replaces its waiting copy in place.
#[derive(Debug)]
struct Queue {
    items: VecDeque<Queued>,
    /// The sequence number of `items[0]`; an entry keeps its number.
    first: u64,
    /// Fingerprint -> sequence number of its entry.
    index: HashMap<String, u64>,
    /// Requests that failed in a row.
    failures: u32,
    /// No request before this, after a failure.
    retry_at: Option<Instant>,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
            // Room below for batches put back at the head.
            first: u64::MAX / 2,
            index: HashMap::new(),
            failures: 0,
            retry_at: None,
        }
    }
}

impl Queue {
    /// Queues an alert; returns how many older ones were dropped for room.
    fn push(&mut self, key: String, json: String) -> u64 {
        if let Some(&seq) = self.index.get(&key) {
            self.items[(seq - self.first) as usize].json = json;
            return 0;
        }
        let mut dropped = 0;
        while self.items.len() >= QUEUE_CAPACITY {
            self.pop_front();
            dropped += 1;
        }
        self.index
            .insert(key.clone(), self.first + self.items.len() as u64);
        self.items.push_back(Queued { key, json });
        dropped
    }

    fn pop_front(&mut self) -> Option<Queued> {
        let item = self.items.pop_front()?;
        self.index.remove(&item.key);
        self.first += 1;
        Some(item)
    }

    /// Takes the oldest alerts, at most [`MAX_BATCH`].
    fn take_batch(&mut self) -> Vec<Queued> {
        (0..MAX_BATCH).map_while(|_| self.pop_front()).collect()
    }

    /// Puts a batch that was not taken back at the head, except alerts
    /// queued again meanwhile (their newer copy is what counts); returns
    /// how many had no room.
    fn put_back(&mut self, batch: Vec<Queued>) -> u64 {
        let mut dropped = 0;
        for item in batch.into_iter().rev() {
            if self.index.contains_key(&item.key) {
                continue;
            }
            if self.items.len() >= QUEUE_CAPACITY {
                dropped += 1;
                continue;
            }
            self.first -= 1;
            self.index.insert(item.key.clone(), self.first);
            self.items.push_front(item);
        }
        dropped
    }
}

/// One discovered Alertmanager: its queue, its sender's wake-up and counters.
#[derive(Debug)]
struct Alertmanager {
    endpoint: Endpoint,
    url: String,
    /// Index of its entry in `alerting.alertmanagers`.
    config: usize,
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
    /// Alerts it took.
    sent: Counter,
    /// Alerts in requests that failed.
    errors: Counter,
    /// Ends its sender when it is no longer discovered.
    stop: CancellationToken,
}

/// The Alertmanagers of `alerting.alertmanagers` and what is on its way to them.
pub struct Forwarder {
    configs: Vec<AlertmanagerConfig>,
    /// Added to each alert that lacks them (Prometheus's external labels).
    external_labels: LabelMap,
    /// `alerting.alert_relabel_configs`, before each entry's own.
    alert_relabel_configs: Vec<RelabelConfig>,
    /// By (entry, URL).
    targets: Mutex<BTreeMap<(usize, String), Arc<Alertmanager>>>,
    /// Each entry's TLS client, made when first needed.
    tls: Vec<OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
    /// Alerts dropped because a queue was full.
    dropped: Counter,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("alertmanagers", &self.configs.len())
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder to `configs`' Alertmanagers; nothing is discovered or
    /// sent before [`Forwarder::start`].
    pub fn new(
        configs: Vec<AlertmanagerConfig>,
        external_labels: LabelMap,
        alert_relabel_configs: Vec<RelabelConfig>,
    ) -> Self {
        Self {
            tls: configs.iter().map(|_| OnceLock::new()).collect(),
            configs,
            external_labels,
            alert_relabel_configs,
            targets: Mutex::new(BTreeMap::new()),
            dropped: Counter::default(),
        }
    }

    /// Discovers the Alertmanagers now and every few seconds, and sends to
    /// them, until `cancel`.
    pub fn start(self: &Arc<Self>, cancel: &CancellationToken) {
        let this = self.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                let configs = this.configs.clone();
                let found = tokio::task::spawn_blocking(move || {
                    configs.iter().map(AlertmanagerConfig::discover).collect()
                })
                .await
                .unwrap_or_default();
                this.apply(found, &cancel);
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(DISCOVERY_EVERY) => {}
                }
            }
        });
    }

    /// Starts senders for new Alertmanagers and stops those gone; an entry
    /// whose discovery failed keeps the Alertmanagers it had.
    fn apply(
        self: &Arc<Self>,
        found: Vec<Result<Vec<Endpoint>, String>>,
        cancel: &CancellationToken,
    ) {
        let mut targets = self.targets.lock().expect("forwarder lock");
        for (config, result) in found.into_iter().enumerate() {
            let endpoints = match result {
                Ok(endpoints) => endpoints,
                Err(error) => {
                    tracing::warn!(%error, "cannot discover Alertmanagers; keeping the last ones found");
                    continue;
                }
            };
            let wanted: BTreeMap<String, Endpoint> =
                endpoints.into_iter().map(|e| (e.url(), e)).collect();
            targets.retain(|(c, url), am| {
                let keep = *c != config || wanted.contains_key(url);
                if !keep {
                    tracing::info!(alertmanager = %url, "Alertmanager no longer discovered");
                    am.stop.cancel();
                }
                keep
            });
            for (url, endpoint) in wanted {
                if targets.contains_key(&(config, url.clone())) {
                    continue;
                }
                tracing::info!(alertmanager = %url, "forwarding alerts to an Alertmanager");
                let am = Arc::new(Alertmanager {
                    endpoint,
                    url: url.clone(),
                    config,
                    queue: Mutex::new(Queue::default()),
                    wake: tokio::sync::Notify::new(),
                    sent: Counter::default(),
                    errors: Counter::default(),
                    stop: cancel.child_token(),
                });
                tokio::spawn(self.clone().send_loop(am.clone()));
                targets.insert((config, url), am);
            }
        }
    }

    /// Queues `alerts` for every Alertmanager, with the external labels
    /// they lack and through the alert relabelling.
    pub fn send(&self, alerts: &[ForwardedAlert]) {
        if alerts.is_empty() {
            return;
        }
        let targets: Vec<Arc<Alertmanager>> = self
            .targets
            .lock()
            .expect("forwarder lock")
            .values()
            .cloned()
            .collect();
        let mut dropped = 0;
        for alert in alerts {
            let mut labels = alert.labels.clone();
            for (name, value) in &self.external_labels {
                labels.entry(name.clone()).or_insert_with(|| value.clone());
            }
            if !relabel(&mut labels, &self.alert_relabel_configs) {
                continue;
            }
            for am in &targets {
                let own = &self.configs[am.config].alert_relabel_configs;
                let mut labels = labels.clone();
                if !relabel(&mut labels, own) || labels.is_empty() {
                    continue;
                }
                let json = alert.json(&labels);
                dropped += am
                    .queue
                    .lock()
                    .expect("queue lock")
                    .push(fingerprint(&labels), json);
            }
        }
        self.dropped.add(dropped);
        for am in &targets {
            am.wake.notify_one();
        }
    }

    async fn send_loop(self: Arc<Self>, am: Arc<Alertmanager>) {
        loop {
            let wait = {
                let queue = am.queue.lock().expect("queue lock");
                (!queue.items.is_empty()).then(|| {
                    queue.retry_at.map_or(Duration::ZERO, |at| {
                        at.saturating_duration_since(Instant::now())
                    })
                })
            };
            match wait {
                None => {
                    tokio::select! {
                        () = am.stop.cancelled() => return,
                        () = am.wake.notified() => continue,
                    }
                }
                Some(wait) if !wait.is_zero() => {
                    tokio::select! {
                        () = am.stop.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Some(_) => {}
            }
            let batch = am.queue.lock().expect("queue lock").take_batch();
            if batch.is_empty() {
                continue;
            }
            let mut body = String::from("[");
            for (i, item) in batch.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&item.json);
            }
            body.push(']');
            let timeout = self.configs[am.config].timeout;
            let outcome = tokio::select! {
                () = am.stop.cancelled() => return,
                outcome = tokio::time::timeout(timeout, self.post(&am, body)) => outcome
                    .unwrap_or_else(|_| Err(format!("POST {}: timed out after {}", am.url, PromDuration::new(timeout)))),
            };
            let count = batch.len() as u64;
            let mut queue = am.queue.lock().expect("queue lock");
            match outcome {
                Ok(()) => {
                    am.sent.add(count);
                    queue.failures = 0;
                    queue.retry_at = None;
                }
                Err(error) => {
                    am.errors.add(count);
                    self.dropped.add(queue.put_back(batch));
                    queue.failures = queue.failures.saturating_add(1);
                    // 0.5 s, 1 s, 2 s, ... up to 10 s.
                    let wait =
                        Duration::from_millis(500 << queue.failures.min(5).saturating_sub(1))
                            .min(MAX_RETRY_WAIT);
                    queue.retry_at = Some(Instant::now() + wait);
                    tracing::warn!(
                        alertmanager = %am.url,
                        count,
                        failures = queue.failures,
                        %error,
                        "cannot send alerts to an Alertmanager; they stay queued"
                    );
                }
            }
        }
    }

    /// One POST of `body` to `am`; any 2xx is taken.
    async fn post(&self, am: &Alertmanager, body: String) -> Result<(), String> {
        let config = &self.configs[am.config];
        let url = &am.url;
        let mut request = hyper::Request::post(am.endpoint.path.as_str())
            .header(hyper::header::HOST, am.endpoint.address.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("Sextant/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(value) = sextant_ingest::scrape::scraper::authorization_header(
            &config.credentials(),
            &config.base_dir,
        )? {
            request = request.header(hyper::header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("building the request: {e}"))?;
        let stream = tokio::net::TcpStream::connect(am.endpoint.socket_address())
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = if am.endpoint.https {
            let tls = self.tls[am.config]
                .get_or_init(|| config.tls_client())
                .clone()?;
            let name = sextant_ingest::scrape::tls::server_name(
                config.tls_config.as_ref(),
                &am.endpoint.address,
            )?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, stream)
                .await
                .map_err(|e| format!("POST {url}: tls: {e}"))?;
            crate::ruler::exchange(stream, request, url).await?
        } else {
            crate::ruler::exchange(stream, request, url).await?
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {url}: HTTP status {status}"))
        }
    }

    /// Writes the forwarder's counters to a `/metrics` page (Prometheus's
    /// `prometheus_notifications_*`, named `sextant_notifications_*`).
    pub fn render_metrics(&self, page: &mut Exposition) {
        let targets = self.targets.lock().expect("forwarder lock");
        page.single(
            "sextant_notifications_dropped_total",
            MetricKind::Counter,
            "Alerts dropped before an Alertmanager took them: its queue was full.",
            self.dropped.get() as f64,
        );
        page.single(
            "sextant_notifications_queue_capacity",
            MetricKind::Gauge,
            "The most alerts waiting for one Alertmanager.",
            QUEUE_CAPACITY as f64,
        );
        page.single(
            "sextant_notifications_alertmanagers_discovered",
            MetricKind::Gauge,
            "Alertmanagers alerts are forwarded to.",
            targets.len() as f64,
        );
        let families: [Family; 3] = [
            (
                "sextant_notifications_queue_length",
                MetricKind::Gauge,
                "Alerts waiting for an Alertmanager.",
                |am| am.queue.lock().expect("queue lock").items.len() as f64,
            ),
            (
                "sextant_notifications_sent_total",
                MetricKind::Counter,
                "Alerts an Alertmanager took.",
                |am| am.sent.get() as f64,
            ),
            (
                "sextant_notifications_errors_total",
                MetricKind::Counter,
                "Alerts in requests to an Alertmanager that failed (they stay queued).",
                |am| am.errors.get() as f64,
            ),
        ];
        for (name, kind, help, value) in families {
            page.family(name, kind, help);
            for am in targets.values() {
                page.sample(name, &[("alertmanager", &am.url)], value(am));
            }
        }
    }
}

/// A labelled family of the metrics page: name, kind, help, and each
/// Alertmanager's value.
type Family = (
    &'static str,
    MetricKind,
    &'static str,
    fn(&Alertmanager) -> f64,
);

/// The configs' relative paths resolve against `dir`.
pub(crate) fn set_base_dir(configs: &mut [AlertmanagerConfig], dir: &Path) {
    for config in configs {
        dir.clone_into(&mut config.base_dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AlertmanagerConfig, String> {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn prometheus_examples_parse() {
        let am = parse(
            r#"
scheme: https
path_prefix: /alertmanager/
timeout: 3s
api_version: v2
static_configs:
  - targets: ['am-1:9093', 'am-2:9093']
file_sd_configs:
  - files: ['am/*.json']
    refresh_interval: 1m
basic_auth:
  username: prom
  password_file: secrets/am-password
tls_config:
  ca_file: ca.pem
  cert_file: client.pem
  key_file: client.key
  server_name: alertmanager.internal
  insecure_skip_verify: false
"#,
        )
        .unwrap();
        assert_eq!(am.scheme, Scheme::Https);
        assert_eq!(am.timeout, Duration::from_secs(3));
        assert_eq!(am.alerts_path(), "/alertmanager/api/v2/alerts");
        assert_eq!(am.static_configs[0].targets.len(), 2);
        assert_eq!(am.file_sd_configs[0].files, ["am/*.json"]);
        assert_eq!(
            am.tls_config.as_ref().unwrap().server_name.as_deref(),
            Some("alertmanager.internal")
        );
        let found = am.discover().unwrap();
        assert_eq!(
            found.iter().map(Endpoint::url).collect::<Vec<_>>(),
            [
                "https://am-1:9093/alertmanager/api/v2/alerts",
                "https://am-2:9093/alertmanager/api/v2/alerts"
            ]
        );

        // Prometheus's stock prometheus.yml: `targets:` with nothing after it.
        let stock = parse("static_configs:\n  - targets:\n  # - alertmanager:9093\n").unwrap();
        assert!(stock.discover().unwrap().is_empty());
        assert_eq!(stock.timeout, DEFAULT_TIMEOUT);
        assert_eq!(stock.alerts_path(), "/api/v2/alerts");

        let bearer =
            parse("authorization: {credentials_file: token}\nstatic_configs: [{targets: ['h:1']}]")
                .unwrap();
        assert_eq!(bearer.authorization.unwrap().kind, "Bearer");
    }

    #[test]
    fn bad_entries_name_the_key() {
        for (yaml, reason) in [
            ("api_version: v1", "api_version v1 is not supported"),
            ("api_version: v3", "api_version \"v3\" is not valid"),
            ("timeout: 0s", "timeout must be more than 0s"),
            ("timeout: soon", "invalid duration"),
            ("scheme: ftp", "unknown variant `ftp`"),
            (
                "bearer_token: a\nbasic_auth: {username: u}",
                "at most one of basic_auth, authorization",
            ),
            (
                "bearer_token: a\nbearer_token_file: f",
                "bearer_token and bearer_token_file",
            ),
            (
                "basic_auth: {username: u, password: p, password_file: f}",
                "password and password_file",
            ),
            (
                "authorization: {type: Basic, credentials: x}",
                "use basic_auth instead",
            ),
            (
                "static_configs: [{targets: ['http://am:9093']}]",
                "without a scheme",
            ),
            (
                "kubernetes_sd_configs: []",
                "unknown field `kubernetes_sd_configs`",
            ),
            ("proxy_url: http://proxy:3128", "unknown field `proxy_url`"),
            ("tls_config: {ca_fil: x}", "unknown field `ca_fil`"),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(reason), "{yaml}\n=> {err}");
        }
    }

    #[test]
    fn file_sd_targets_are_read_and_relabelled() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("am")).unwrap();
        std::fs::write(
            dir.path().join("am/a.json"),
            r#"[{"targets": ["10.0.0.1:9093", "10.0.0.2:9093"], "labels": {"dc": "west"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("am/b.yml"), "- targets: ['am.example']\n").unwrap();
        let mut configs = vec![
            parse(
                r#"
file_sd_configs: [{files: ['am/*.json', 'am/*.yml']}]
relabel_configs:
  - source_labels: [__address__]
    regex: '10\.0\.0\.2:9093'
    action: drop
  - source_labels: [dc]
    regex: west
    target_label: __alerts_path__
    replacement: /west/api/v2/alerts
"#,
            )
            .unwrap(),
        ];
        set_base_dir(&mut configs, dir.path());
        let found = configs[0].discover().unwrap();
        assert_eq!(
            found.iter().map(Endpoint::url).collect::<Vec<_>>(),
            [
                "http://10.0.0.1:9093/west/api/v2/alerts",
                "http://am.example/api/v2/alerts"
            ]
        );
        assert_eq!(found[1].socket_address(), "am.example:80");
        assert_eq!(found[0].socket_address(), "10.0.0.1:9093");

        std::fs::write(dir.path().join("am/c.json"), "[{\"targets\": 5}]").unwrap();
        let err = configs[0].discover().unwrap_err();
        assert!(err.contains("c.json"), "{err}");
    }

    #[test]
    fn a_queue_keeps_one_copy_per_alert_and_drops_the_oldest() {
        let mut queue = Queue::default();
        assert_eq!(queue.push("a".into(), "a1".into()), 0);
        assert_eq!(queue.push("b".into(), "b1".into()), 0);
        assert_eq!(queue.push("a".into(), "a2".into()), 0);
        assert_eq!(queue.items.len(), 2);
        let batch = queue.take_batch();
        assert_eq!(
            batch.iter().map(|q| q.json.as_str()).collect::<Vec<_>>(),
            ["a2", "b1"]
        );
        // While the batch was out, b was queued again: its newer copy wins.
        queue.push("b".into(), "b2".into());
        queue.push("c".into(), "c1".into());
        assert_eq!(queue.put_back(batch), 0);
        let order: Vec<&str> = queue.items.iter().map(|q| q.json.as_str()).collect();
        assert_eq!(order, ["a2", "b2", "c1"]);
        queue.push("a".into(), "a3".into());
        assert_eq!(queue.items[0].json, "a3");

        let mut full = Queue::default();
        for i in 0..QUEUE_CAPACITY + 5 {
            full.push(format!("k{i}"), String::new());
        }
        assert_eq!(full.items.len(), QUEUE_CAPACITY);
        assert_eq!(full.items[0].key, "k5");
        let batch = full.take_batch();
        assert_eq!(batch.len(), MAX_BATCH);
        for i in 0..MAX_BATCH {
            full.push(format!("new{i}"), String::new());
        }
        // No room for the batch any more: it is dropped, and counted.
        assert_eq!(full.put_back(batch), MAX_BATCH as u64);
        assert_eq!(full.index.len(), full.items.len());
    }
}
