//! The `scrape_configs` section, in exactly Prometheus's format so that a
//! `prometheus.yml` scrape section pastes unchanged.
//!
//! Defaults that depend on the `global` section (interval, timeout) stay `None`
//! here and are filled in by whoever composes the whole config.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use sextant_model::{PromDuration, is_valid_label_name};

/// One entry of `scrape_configs`: a job and the targets it scrapes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of every series this job scrapes.
    pub job_name: String,
    /// How often to scrape; `global.scrape_interval` when absent.
    pub scrape_interval: Option<PromDuration>,
    /// How long a scrape may take; `global.scrape_timeout` when absent.
    pub scrape_timeout: Option<PromDuration>,
    /// Protocols to negotiate, most preferred first (e.g. `OpenMetricsText1.0.0`);
    /// `global.scrape_protocols` when absent, else Prometheus's defaults
    /// (`PrometheusProto` first when native histograms are scraped).
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Whether to read native histograms (protobuf exposition only);
    /// `global.scrape_native_histograms` when absent, else false, as in Prometheus.
    pub scrape_native_histograms: Option<bool>,
    /// Whether to also keep the classic series of a histogram read as a
    /// native one; `global.always_scrape_classic_histograms` when absent.
    pub always_scrape_classic_histograms: Option<bool>,
    /// Whether to read classic histograms as native histograms with custom
    /// buckets; `global.convert_classic_histograms_to_nhcb` when absent.
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    /// A native histogram with more buckets is brought to a lower
    /// resolution until it has no more; one that cannot be fails the
    /// scrape, as in Prometheus. 0 means no limit.
    #[serde(default)]
    pub native_histogram_bucket_limit: u64,
    /// A native histogram whose bucket growth factor is below this is
    /// brought to a lower resolution until it is not. 0 (or up to 1) means
    /// no limit.
    #[serde(default)]
    pub native_histogram_min_bucket_factor: f64,
    /// The HTTP path to scrape.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Scheme,
    /// URL query parameters sent with every scrape.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep labels from the target when they clash with server-attached ones.
    #[serde(default)]
    pub honor_labels: bool,
    /// Use the timestamps the target exposes.
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Mark series stale even when the target gave explicit timestamps.
    #[serde(default)]
    pub track_timestamps_staleness: bool,
    /// Whether to ask for gzip.
    #[serde(default = "yes")]
    pub enable_compression: bool,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// A bearer token sent as `Authorization: Bearer ...`.
    pub bearer_token: Option<String>,
    /// A file holding the bearer token.
    pub bearer_token_file: Option<String>,
    /// A generic `Authorization` header.
    pub authorization: Option<Authorization>,
    /// TLS settings for `https` targets.
    pub tls_config: Option<TlsConfig>,
    /// Whether to follow HTTP redirects.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Whether HTTP/2 may be used.
    #[serde(default = "yes")]
    pub enable_http2: bool,
    /// Targets listed in the file itself.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Targets read from JSON or YAML files, re-read when they change.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Relabelling applied to targets before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabelling applied to scraped samples before storing.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Per-scrape limit on samples; 0 means none.
    #[serde(default)]
    pub sample_limit: u64,
    /// Per-scrape limit on labels per series; 0 means none.
    #[serde(default)]
    pub label_limit: u64,
    /// Limit on a label name's length; 0 means none.
    #[serde(default)]
    pub label_name_length_limit: u64,
    /// Limit on a label value's length; 0 means none.
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Limit on targets after relabelling; 0 means none.
    #[serde(default)]
    pub target_limit: u64,
    /// Limit on an uncompressed scrape body, e.g. `10MB`; absent means none.
    pub body_size_limit: Option<String>,

    // Service discovery mechanisms Sextant does not offer: named so that a pasted
    // prometheus.yml gets a reason, not just "unknown field".
    #[serde(default, rename = "kubernetes_sd_configs")]
    _kubernetes: Option<UnsupportedDiscovery>,
    #[serde(default, rename = "consul_sd_configs")]
    _consul: Option<UnsupportedDiscovery>,
    #[serde(default, rename = "dns_sd_configs")]
    _dns: Option<UnsupportedDiscovery>,
    #[serde(default, rename = "ec2_sd_configs")]
    _ec2: Option<UnsupportedDiscovery>,
    #[serde(default, rename = "docker_sd_configs")]
    _docker: Option<UnsupportedDiscovery>,
    #[serde(default, rename = "http_sd_configs")]
    _http: Option<UnsupportedDiscovery>,
}

/// A format to ask targets for, as `scrape_protocols` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ScrapeProtocol {
    /// The protobuf exposition (the only one with native histograms).
    PrometheusProto,
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0_0_4,
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1_0_0,
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText0_0_1,
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText1_0_0,
}

impl ScrapeProtocol {
    /// Prometheus's default order.
    pub const DEFAULT: [ScrapeProtocol; 4] = [
        Self::OpenMetricsText1_0_0,
        Self::OpenMetricsText0_0_1,
        Self::PrometheusText1_0_0,
        Self::PrometheusText0_0_4,
    ];
    /// Prometheus's order when native histograms are scraped.
    pub const PROTO_FIRST: [ScrapeProtocol; 5] = [
        Self::PrometheusProto,
        Self::OpenMetricsText1_0_0,
        Self::OpenMetricsText0_0_1,
        Self::PrometheusText1_0_0,
        Self::PrometheusText0_0_4,
    ];

    /// The media type asked for.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::PrometheusProto => crate::prom_proto::CONTENT_TYPE,
            Self::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            Self::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            Self::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            Self::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
        }
    }

    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::PrometheusProto => "PrometheusProto",
            Self::PrometheusText0_0_4 => "PrometheusText0.0.4",
            Self::PrometheusText1_0_0 => "PrometheusText1.0.0",
            Self::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
            Self::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
        }
    }
}

/// Why a `scrape_protocols` list is refused (as Prometheus refuses it).
pub fn check_scrape_protocols(protocols: &[ScrapeProtocol]) -> Result<(), String> {
    if protocols.is_empty() {
        return Err("scrape_protocols cannot be empty".to_owned());
    }
    for (i, p) in protocols.iter().enumerate() {
        if protocols[..i].contains(p) {
            return Err(format!(
                "duplicated protocol in scrape_protocols: {}",
                p.name()
            ));
        }
    }
    Ok(())
}

/// What `global` lends the jobs that do not say (Prometheus's global keys).
#[derive(Debug, Clone, Default)]
pub struct ScrapeDefaults {
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    pub scrape_native_histograms: Option<bool>,
    pub always_scrape_classic_histograms: bool,
    pub convert_classic_histograms_to_nhcb: bool,
}

impl ScrapeConfig {
    /// Fills what the job leaves to `global`, as Prometheus does.
    pub fn inherit(&mut self, global: &ScrapeDefaults) {
        if self.scrape_native_histograms.is_none() {
            self.scrape_native_histograms = global.scrape_native_histograms;
        }
        if self.scrape_protocols.is_none() {
            self.scrape_protocols = global.scrape_protocols.clone();
        }
        self.always_scrape_classic_histograms
            .get_or_insert(global.always_scrape_classic_histograms);
        self.convert_classic_histograms_to_nhcb
            .get_or_insert(global.convert_classic_histograms_to_nhcb);
    }

    /// Whether native histograms are read.
    pub fn native_histograms(&self) -> bool {
        self.scrape_native_histograms == Some(true)
    }

    /// The protocols asked for, most preferred first.
    pub fn protocols(&self) -> Vec<ScrapeProtocol> {
        match &self.scrape_protocols {
            Some(list) => list.clone(),
            None if self.native_histograms() => ScrapeProtocol::PROTO_FIRST.to_vec(),
            None => ScrapeProtocol::DEFAULT.to_vec(),
        }
    }

    /// The `Accept` header, weighted as Prometheus weighs it (`q=0.6` for
    /// the first of five possible protocols, one tenth less for each next,
    /// then `*/*`).
    pub fn accept_header(&self) -> String {
        let mut weight = 6;
        let mut parts = Vec::new();
        for p in self.protocols() {
            parts.push(format!("{};q=0.{weight}", p.media_type()));
            weight -= 1;
        }
        parts.push(format!("*/*;q=0.{weight}"));
        parts.join(",")
    }

    /// How the protobuf exposition's histograms are read.
    pub fn histogram_options(&self) -> crate::prom_proto::Options {
        crate::prom_proto::Options {
            native_histograms: self.native_histograms(),
            keep_classic: self.always_scrape_classic_histograms == Some(true),
            convert_to_nhcb: self.convert_classic_histograms_to_nhcb == Some(true),
        }
    }

    /// The job's credentials, as its requests send them.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            basic_auth: self.basic_auth.as_ref(),
            bearer_token: self.bearer_token.as_deref(),
            bearer_token_file: self.bearer_token_file.as_deref(),
            authorization: self.authorization.as_ref(),
        }
    }
}

/// The credentials of Prometheus's HTTP client config (a scrape job, an
/// Alertmanager): the first one set becomes the `Authorization` header
/// ([`crate::scrape::scraper::authorization_header`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub basic_auth: Option<&'a BasicAuth>,
    pub bearer_token: Option<&'a str>,
    pub bearer_token_file: Option<&'a str>,
    pub authorization: Option<&'a Authorization>,
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

fn yes() -> bool {
    true
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

/// HTTP basic authentication for scrapes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// The password, inline.
    pub password: Option<String>,
    /// A file holding the password.
    pub password_file: Option<String>,
}

/// A generic `Authorization` header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme, `Bearer` by default.
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    /// The credentials, inline.
    pub credentials: Option<String>,
    /// A file holding the credentials.
    pub credentials_file: Option<String>,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

/// TLS settings for scraping `https` targets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// CA certificate file to verify the target with.
    pub ca_file: Option<String>,
    /// Inline CA certificate.
    pub ca: Option<String>,
    /// Client certificate file.
    pub cert_file: Option<String>,
    /// Inline client certificate.
    pub cert: Option<String>,
    /// Client key file.
    pub key_file: Option<String>,
    /// Inline client key.
    pub key: Option<String>,
    /// Server name to verify instead of the target's host.
    pub server_name: Option<String>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
    /// Lowest TLS version, e.g. `TLS12`.
    pub min_version: Option<String>,
}

/// Targets listed inline, with labels attached to all of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses (`targets:` with nothing after it, as in
    /// Prometheus's sample `alerting` block, is none).
    #[serde(default, deserialize_with = "sextant_model::de::null_as_default")]
    pub targets: Vec<Target>,
    /// Labels attached to every series scraped from these targets.
    #[serde(default)]
    pub labels: BTreeMap<LabelName, String>,
}

/// Targets read from files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// File globs (`*.json`, `*.yml`, `*.yaml`).
    pub files: Vec<String>,
    /// How often to re-read the files besides reacting to changes.
    pub refresh_interval: Option<PromDuration>,
}

/// A scrape target address: `host:port`, without scheme or path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target(pub String);

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err("a scrape target must not be empty".to_owned());
        }
        if text.contains("://") {
            return Err(format!(
                "scrape target {text:?} must be host:port without a scheme; \
                 set `scheme: https` and `metrics_path` on the job instead"
            ));
        }
        if text.contains('/') {
            return Err(format!(
                "scrape target {text:?} must be host:port without a path; set `metrics_path` instead"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        sextant_model::de::from_str(deserializer)
    }
}

/// A label name checked against `[a-zA-Z_][a-zA-Z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelName(pub String);

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LabelName {
    type Err = sextant_model::LabelNameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if is_valid_label_name(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(sextant_model::LabelNameError(text.to_owned()))
        }
    }
}

impl<'de> Deserialize<'de> for LabelName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        sextant_model::de::from_str(deserializer)
    }
}

/// A service discovery mechanism that is named in Prometheus but not offered here.
#[derive(Debug, Clone)]
struct UnsupportedDiscovery;

impl<'de> Deserialize<'de> for UnsupportedDiscovery {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "this service discovery mechanism is not supported by Sextant; \
             use static_configs or file_sd_configs",
        ))
    }
}

/// What a relabelling step does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    /// Set `target_label` to `replacement` with the regex's groups expanded.
    #[default]
    Replace,
    /// Keep only targets whose joined source labels match.
    Keep,
    /// Drop targets whose joined source labels match.
    Drop,
    /// Keep targets whose joined source labels equal `target_label`'s value.
    KeepEqual,
    /// Drop targets whose joined source labels equal `target_label`'s value.
    DropEqual,
    /// Set `target_label` to a hash of the source labels modulo `modulus`.
    HashMod,
    /// Copy labels whose names match to names built from `replacement`.
    LabelMap,
    /// Remove labels whose names match.
    LabelDrop,
    /// Remove labels whose names do not match.
    LabelKeep,
    /// Set `target_label` to the joined source labels in lower case.
    Lowercase,
    /// Set `target_label` to the joined source labels in upper case.
    Uppercase,
}

/// One relabelling step, as in Prometheus's `relabel_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRelabelConfig")]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` and matched.
    pub source_labels: Vec<LabelName>,
    /// Joins the source label values.
    pub separator: String,
    /// The label written by replace, hashmod, lowercase, uppercase.
    pub target_label: Option<String>,
    /// Matched against the whole joined value (anchored at both ends).
    pub regex: Regex,
    /// The regex as written, unanchored.
    pub regex_source: String,
    /// For hashmod.
    pub modulus: u64,
    /// For replace and labelmap; `$1` by default.
    pub replacement: String,
    /// What to do.
    pub action: RelabelAction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    #[serde(default)]
    source_labels: Vec<LabelName>,
    #[serde(default = "default_separator")]
    separator: String,
    target_label: Option<String>,
    #[serde(default = "default_regex")]
    regex: String,
    #[serde(default)]
    modulus: u64,
    #[serde(default = "default_replacement")]
    replacement: String,
    #[serde(default)]
    action: RelabelAction,
}

fn default_separator() -> String {
    ";".to_owned()
}

fn default_regex() -> String {
    "(.*)".to_owned()
}

fn default_replacement() -> String {
    "$1".to_owned()
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = String;

    fn try_from(raw: RawRelabelConfig) -> Result<Self, Self::Error> {
        use RelabelAction as A;
        let regex = Regex::new(&format!("^(?s:{})$", raw.regex))
            .map_err(|e| format!("relabel regex {:?} is invalid: {e}", raw.regex))?;
        let needs_target = matches!(
            raw.action,
            A::Replace | A::HashMod | A::Lowercase | A::Uppercase | A::KeepEqual | A::DropEqual
        );
        if needs_target && raw.target_label.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "relabel action {:?} requires `target_label`",
                action_name(raw.action)
            ));
        }
        if raw.action == A::HashMod && raw.modulus == 0 {
            return Err("relabel action \"hashmod\" requires a non-zero `modulus`".to_owned());
        }
        if matches!(raw.action, A::LabelDrop | A::LabelKeep)
            && (!raw.source_labels.is_empty() || raw.target_label.is_some())
        {
            return Err(format!(
                "relabel action {:?} takes only `regex`, not `source_labels` or `target_label`",
                action_name(raw.action)
            ));
        }
        if let Some(target) = &raw.target_label {
            // Replace may write templated names like `$1`; the rest need a plain label name.
            let templated = raw.action == A::Replace && target.contains('$');
            if !templated && !is_valid_label_name(target) {
                return Err(format!(
                    "relabel target_label {target:?} is not a valid label name"
                ));
            }
        }
        Ok(Self {
            source_labels: raw.source_labels,
            separator: raw.separator,
            target_label: raw.target_label,
            regex,
            regex_source: raw.regex,
            modulus: raw.modulus,
            replacement: raw.replacement,
            action: raw.action,
        })
    }
}

fn action_name(action: RelabelAction) -> &'static str {
    match action {
        RelabelAction::Replace => "replace",
        RelabelAction::Keep => "keep",
        RelabelAction::Drop => "drop",
        RelabelAction::KeepEqual => "keepequal",
        RelabelAction::DropEqual => "dropequal",
        RelabelAction::HashMod => "hashmod",
        RelabelAction::LabelMap => "labelmap",
        RelabelAction::LabelDrop => "labeldrop",
        RelabelAction::LabelKeep => "labelkeep",
        RelabelAction::Lowercase => "lowercase",
        RelabelAction::Uppercase => "uppercase",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<ScrapeConfig>, String> {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn the_books_jobs_parse_with_prometheus_defaults() {
        let jobs = parse(
            r#"
- job_name: 'statsd'
  scrape_interval: 5s
  static_configs:
    - targets: ['statsd-exporter:9102']
      labels:
        exporter: 'statsd'
- job_name: 'rabbitmq'
  metrics_path: /api/metrics
  static_configs:
    - targets: ['rabbitmq:15672']
      labels:
        exporter: 'rabbitmq'
"#,
        )
        .unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].scrape_interval.unwrap().to_string(), "5s");
        assert_eq!(jobs[0].metrics_path, "/metrics");
        assert!(jobs[0].honor_timestamps);
        assert_eq!(jobs[1].metrics_path, "/api/metrics");
        assert_eq!(jobs[1].static_configs[0].targets[0].0, "rabbitmq:15672");
        assert_eq!(
            jobs[1].static_configs[0].labels[&LabelName("exporter".into())],
            "rabbitmq"
        );
    }

    #[test]
    fn relabelling_is_checked_and_anchored() {
        let jobs = parse(
            r#"
- job_name: node
  relabel_configs:
    - source_labels: [__address__]
      regex: '(.*):\d+'
      target_label: instance
    - action: labeldrop
      regex: 'tmp_.*'
    - source_labels: [__address__]
      modulus: 4
      target_label: __tmp_hash
      action: hashmod
"#,
        )
        .unwrap();
        let relabel = &jobs[0].relabel_configs;
        assert_eq!(relabel[0].action, RelabelAction::Replace);
        assert!(relabel[0].regex.is_match("host:9100"));
        assert!(!relabel[0].regex.is_match("xhost:9100/"));
        assert_eq!(relabel[0].replacement, "$1");
        assert_eq!(relabel[1].action, RelabelAction::LabelDrop);
        assert_eq!(relabel[2].modulus, 4);
    }

    #[test]
    fn bad_jobs_are_rejected_with_a_reason() {
        for (yaml, reason) in [
            (
                "- job_name: a\n  scrape_intervall: 5s",
                "unknown field `scrape_intervall`",
            ),
            ("- job_name: a\n  scrape_interval: 5", "invalid duration"),
            ("- job_name: a\n  scheme: ftp", "unknown variant `ftp`"),
            (
                "- job_name: a\n  static_configs: [{targets: ['http://x:1']}]",
                "without a scheme",
            ),
            (
                "- job_name: a\n  static_configs: [{targets: ['x:1/metrics']}]",
                "without a path",
            ),
            (
                "- job_name: a\n  static_configs: [{targets: ['x:1'], labels: {bad-name: v}}]",
                "invalid label name \"bad-name\"",
            ),
            (
                "- job_name: a\n  kubernetes_sd_configs: [{role: pod}]",
                "not supported by Sextant",
            ),
            (
                "- job_name: a\n  relabel_configs: [{regex: '(', target_label: x}]",
                "relabel regex \"(\" is invalid",
            ),
            (
                "- job_name: a\n  relabel_configs: [{action: hashmod, target_label: x}]",
                "non-zero `modulus`",
            ),
            (
                "- job_name: a\n  relabel_configs: [{action: uppercase}]",
                "requires `target_label`",
            ),
            (
                "- job_name: a\n  relabel_configs: [{action: labeldrop, source_labels: [a]}]",
                "takes only `regex`",
            ),
            (
                "- job_name: a\n  relabel_configs: [{action: lowercase, target_label: 'a-b'}]",
                "not a valid label name",
            ),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(reason), "{yaml}\n=> {err}");
        }
    }
}
