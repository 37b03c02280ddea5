//! The YAML config file: every section CONTRACTS.md names, parsed into typed
//! structs that reject unknown keys with `file:line:column` and a reason.
//!
//! Sections that users already have elsewhere keep that tool's format
//! (`global`, `scrape_configs` and `rule_files` as in prometheus.yml, `alerting`
//! in Alertmanager's shape). Relative paths inside the file are resolved against
//! the file's own directory, as Prometheus does for rule files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use sextant_alerting::AlertingConfig;
use sextant_alerting::rules::{RuleFile, expand_rule_files, load_rule_file};
use sextant_ingest::logs::LogsConfig;
use sextant_ingest::scrape::{LabelName, ScrapeConfig};
use sextant_ingest::statsd::StatsdConfig;
use sextant_ingest::statsd::mapping::Mapper;
use sextant_model::de::{null_as_default, unique_by};
use sextant_model::{PromDuration, SourceError};
use sextant_storage::{RetentionConfig, StorageConfig};

use crate::cli::LogFormat;

/// The whole config file. Every section is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The CLI flags, same names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: ServerSection,
    /// As in prometheus.yml.
    #[serde(default, deserialize_with = "null_as_default")]
    pub global: GlobalConfig,
    /// Exactly Prometheus's format.
    #[serde(default, deserialize_with = "unique_jobs")]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Globs of Prometheus rule files.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rule_files: Vec<String>,
    /// StatsD aggregation.
    #[serde(default, deserialize_with = "null_as_default")]
    pub statsd: StatsdConfig,
    /// How long data is kept.
    #[serde(default, deserialize_with = "null_as_default")]
    pub retention: RetentionConfig,
    /// Log fields and redaction.
    #[serde(default, deserialize_with = "null_as_default")]
    pub logs: LogsConfig,
    /// Receivers and routes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub alerting: AlertingConfig,
    /// Access tokens.
    #[serde(default, deserialize_with = "null_as_default")]
    pub auth: AuthConfig,
    /// The stores' tuning: WAL fsync policy, out-of-order window, limits.
    #[serde(default, deserialize_with = "null_as_default")]
    pub storage: StorageConfig,
    /// PromQL limits and defaults.
    #[serde(default, deserialize_with = "null_as_default")]
    pub query: QuerySection,
    /// How much one request, event or export may carry.
    #[serde(default, deserialize_with = "null_as_default")]
    pub limits: sextant_ingest::limits::Limits,
    /// Several nodes as one over NATS JetStream; absent: a single node.
    #[serde(default)]
    pub cluster: Option<sextant_cluster::ClusterConfig>,
}

/// The `query` section: Prometheus's `--query.*` flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// How far back an instant selector looks for a sample.
    pub lookback_delta: PromDuration,
    /// Longest a query may run before it fails with `timeout`.
    pub timeout: PromDuration,
    /// Most samples one query may hold in memory at once.
    pub max_samples: usize,
    /// Queries evaluated at once; more wait their turn.
    pub max_concurrency: usize,
    /// How deep any query (PromQL, log search, alert templates) may nest:
    /// brackets, calls and chained operators. Deeper ones are refused before
    /// they are parsed. Read at start; a reload keeps the first value.
    pub max_depth: usize,
    /// The longest query text, in bytes, in any query language.
    pub max_query_bytes: usize,
    /// Prometheus's `--enable-feature=promql-delayed-name-removal`: the
    /// metric name is dropped at the end of the query rather than by each
    /// function, so `label_replace` after `rate()` still sees it. Off by
    /// default, as in Prometheus 3.
    pub delayed_name_removal: bool,
    /// The range-query results cache, for dashboards that refresh.
    #[serde(deserialize_with = "null_as_default")]
    pub results_cache: ResultsCacheSection,
}

/// `query.results_cache`: range-query answers kept in memory, all but
/// their newest `freshness`, and dropped when a write lands in them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResultsCacheSection {
    /// Most memory the cached answers may take; 0 turns the cache off.
    #[serde(deserialize_with = "sextant_ingest::limits::byte_size")]
    pub max_bytes: usize,
    /// The newest part of every range that is never cached, because its
    /// samples may still be arriving (VictoriaMetrics'
    /// `-search.cacheTimestampOffset`).
    pub freshness: PromDuration,
}

impl Default for ResultsCacheSection {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            freshness: PromDuration::from_secs(5 * 60),
        }
    }
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            lookback_delta: PromDuration::from_secs(5 * 60),
            timeout: PromDuration::from_secs(2 * 60),
            max_samples: 50_000_000,
            max_concurrency: 20,
            max_depth: sextant_model::depth::DEFAULT_MAX_DEPTH,
            max_query_bytes: sextant_model::depth::DEFAULT_MAX_QUERY_BYTES,
            delayed_name_removal: false,
            results_cache: ResultsCacheSection::default(),
        }
    }
}

fn unique_jobs<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ScrapeConfig>, D::Error> {
    unique_by(
        deserializer,
        |j: &ScrapeConfig| j.job_name.as_str(),
        "scrape job",
    )
}

/// The `server` section: the CLI flags under the same names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub data_dir: Option<PathBuf>,
    pub bind: Option<String>,
    pub http: Option<ListenAddr>,
    pub otlp_grpc: Option<ListenAddr>,
    pub otlp_http: Option<ListenAddr>,
    pub statsd: Option<ListenAddr>,
    pub logstash: Option<ListenAddr>,
    pub syslog: Option<ListenAddr>,
    pub forward: Option<ListenAddr>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    /// TLS for the HTTP and OTLP/HTTP listeners: `cert_file` and `key_file`
    /// (PEM, relative to this file), re-read when they change.
    pub tls: Option<sextant_ingest::net::TlsFiles>,
}

/// The `global` section, as in prometheus.yml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// Default scrape interval.
    pub scrape_interval: PromDuration,
    /// Default scrape timeout as written; see [`GlobalConfig::scrape_timeout`].
    #[serde(rename = "scrape_timeout")]
    pub scrape_timeout_written: Option<PromDuration>,
    /// Default scrape protocols.
    pub scrape_protocols: Option<Vec<sextant_ingest::scrape::ScrapeProtocol>>,
    /// Whether jobs read native histograms by default (Prometheus 3.8's key; false).
    pub scrape_native_histograms: Option<bool>,
    /// Jobs' default for `always_scrape_classic_histograms`.
    pub always_scrape_classic_histograms: bool,
    /// Jobs' default for `convert_classic_histograms_to_nhcb`.
    pub convert_classic_histograms_to_nhcb: bool,
    /// Default rule group interval.
    pub evaluation_interval: PromDuration,
    /// Default rule query offset.
    pub rule_query_offset: Option<PromDuration>,
    /// Labels added to alerts and to series sent elsewhere.
    pub external_labels: BTreeMap<LabelName, String>,
    /// Default scrape limits; 0 means none.
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub body_size_limit: Option<String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        // Prometheus's own defaults.
        Self {
            scrape_interval: PromDuration::from_secs(60),
            scrape_timeout_written: None,
            scrape_protocols: None,
            scrape_native_histograms: None,
            always_scrape_classic_histograms: false,
            convert_classic_histograms_to_nhcb: false,
            evaluation_interval: PromDuration::from_secs(60),
            rule_query_offset: None,
            external_labels: BTreeMap::new(),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            target_limit: 0,
            body_size_limit: None,
        }
    }
}

impl GlobalConfig {
    /// What jobs take from here when they do not say.
    pub fn scrape_defaults(&self) -> sextant_ingest::scrape::ScrapeDefaults {
        sextant_ingest::scrape::ScrapeDefaults {
            scrape_protocols: self.scrape_protocols.clone(),
            scrape_native_histograms: self.scrape_native_histograms,
            always_scrape_classic_histograms: self.always_scrape_classic_histograms,
            convert_classic_histograms_to_nhcb: self.convert_classic_histograms_to_nhcb,
        }
    }

    /// The default scrape timeout: as written, else Prometheus's 10 s capped at
    /// the scrape interval.
    pub fn scrape_timeout(&self) -> PromDuration {
        self.scrape_timeout_written
            .unwrap_or_else(|| PromDuration::from_secs(10).min(self.scrape_interval))
    }
}

/// The `auth` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default, deserialize_with = "unique_tokens")]
    pub tokens: Vec<TokenConfig>,
}

fn unique_tokens<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<TokenConfig>, D::Error> {
    unique_by(deserializer, |t: &TokenConfig| t.name.as_str(), "token")
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Query,
    Admin,
}

/// One access token.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawToken")]
pub struct TokenConfig {
    pub name: String,
    pub secret: TokenSecret,
    pub scopes: Vec<Scope>,
    pub tenant: Option<String>,
}

/// How a token's secret is written in the file. Its `Debug` never shows it.
#[derive(Clone)]
pub enum TokenSecret {
    /// Hex SHA-256 of the token: the file never holds the token itself.
    Sha256(String),
    /// The token in plain text, for tests.
    Plain(String),
}

impl TokenSecret {
    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        match self {
            Self::Plain(token) => constant_time_eq(token.as_bytes(), presented.as_bytes()),
            Self::Sha256(hex) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
                let mine: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                constant_time_eq(hex.as_bytes(), mine.as_bytes())
            }
        }
    }
}

/// Equality whose time depends on the lengths only, not on where bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sha256(_) => "Sha256(<redacted>)",
            Self::Plain(_) => "Plain(<redacted>)",
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    token_sha256: Option<String>,
    token: Option<String>,
    scopes: Vec<Scope>,
    tenant: Option<String>,
}

impl TryFrom<RawToken> for TokenConfig {
    type Error = String;

    fn try_from(raw: RawToken) -> Result<Self, Self::Error> {
        let name = &raw.name;
        let secret = match (raw.token_sha256, raw.token) {
            (Some(hash), None) => {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "token {name:?}: token_sha256 must be 64 hex digits (e.g. `printf %s TOKEN | sha256sum`)"
                    ));
                }
                TokenSecret::Sha256(hash.to_ascii_lowercase())
            }
            (None, Some(plain)) if !plain.is_empty() => TokenSecret::Plain(plain),
            (None, Some(_)) => return Err(format!("token {name:?}: token must not be empty")),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "token {name:?}: give either token_sha256 or token, not both"
                ));
            }
            (None, None) => return Err(format!("token {name:?}: needs token_sha256 or token")),
        };
        if raw.scopes.is_empty() {
            return Err(format!(
                "token {name:?}: scopes must name at least one of ingest, query, admin"
            ));
        }
        if let Some(tenant) = &raw.tenant
            && !crate::tenant::valid_name(tenant)
        {
            return Err(format!(
                "token {name:?}: tenant {tenant:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if raw.tenant.is_some() && raw.scopes.contains(&Scope::Admin) {
            return Err(format!(
                "token {name:?}: a token with a tenant cannot have the admin scope (rules, silences and reloads span every tenant)"
            ));
        }
        Ok(Self {
            name: raw.name,
            secret,
            scopes: raw.scopes,
            tenant: raw.tenant,
        })
    }
}

/// A listener address as written on the command line or in the file:
/// `PORT`, `:PORT` (both on the `--bind` host) or `HOST:PORT` (`[::1]:PORT` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// `None` means the `--bind` host.
    pub host: Option<String>,
    /// 0 picks a free port.
    pub port: u16,
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("invalid listen address {text:?}: {why} (expected PORT, :PORT or HOST:PORT)")
        };
        let port = |p: &str| p.parse::<u16>().map_err(|_| bad("port must be 0-65535"));
        let brackets = || bad("an IPv6 host goes in brackets: [::1]:PORT");
        let (host, p) = if let Some(rest) = text.strip_prefix('[') {
            let (host, p) = rest.split_once("]:").ok_or_else(brackets)?;
            if host.is_empty() {
                return Err(bad("empty host"));
            }
            (Some(host), p)
        } else {
            match text.matches(':').count() {
                0 => (None, text),
                1 => {
                    let (host, p) = text.split_once(':').unwrap_or_default();
                    ((!host.is_empty()).then_some(host), p)
                }
                _ => return Err(brackets()),
            }
        };
        Ok(Self {
            host: host.map(str::to_owned),
            port: port(p)?,
        })
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // YAML reads `http: 7070` as a number; accept it like the string.
        struct AddrVisitor;

        impl serde::de::Visitor<'_> for AddrVisitor {
            type Value = ListenAddr;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("PORT, :PORT or HOST:PORT")
            }

            fn visit_u64<E: serde::de::Error>(self, port: u64) -> Result<ListenAddr, E> {
                self.visit_str(&port.to_string())
            }

            fn visit_i64<E: serde::de::Error>(self, port: i64) -> Result<ListenAddr, E> {
                self.visit_str(&port.to_string())
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ListenAddr, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(AddrVisitor)
    }
}

/// A config file that parsed, with the rule files it names.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The file itself.
    pub path: PathBuf,
    /// Its contents.
    pub file: ConfigFile,
    /// Every rule file matched by `rule_files`, parsed.
    pub rule_files: Vec<(PathBuf, RuleFile)>,
    /// The statsd_exporter mapping file `statsd.mapping_config` names, compiled.
    pub statsd_mapping: Option<Mapper>,
}

impl LoadedConfig {
    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    /// Resolves a path written in the file.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir().join(path)
    }
}

/// Parses config text; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, SourceError> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    let file: ConfigFile =
        serde_norway::from_str(text).map_err(|err| SourceError::from_yaml(path, &err))?;
    check_scrape_timeouts(&file).map_err(|message| SourceError::new(path, message))?;
    check_query_budgets(&file.query).map_err(|message| SourceError::new(path, message))?;
    Ok(file)
}

/// The depth budget sizes every runtime thread's stack (about 48 KiB a
/// level), so it is kept to what a machine can reserve.
fn check_query_budgets(query: &QuerySection) -> Result<(), String> {
    const MAX_DEPTH: usize = 100_000;
    if !(1..=MAX_DEPTH).contains(&query.max_depth) {
        return Err(format!(
            "query.max_depth must be 1 to {MAX_DEPTH}, not {}",
            query.max_depth
        ));
    }
    if query.max_query_bytes == 0 {
        return Err("query.max_query_bytes must be at least 1".to_owned());
    }
    Ok(())
}

/// Prometheus refuses a scrape timeout longer than the scrape interval.
fn check_scrape_timeouts(file: &ConfigFile) -> Result<(), String> {
    let global = &file.global;
    if global.scrape_timeout() > global.scrape_interval {
        return Err(format!(
            "global: scrape_timeout {} is greater than scrape_interval {}",
            global.scrape_timeout(),
            global.scrape_interval
        ));
    }
    let protocols = |list: &Option<Vec<sextant_ingest::scrape::ScrapeProtocol>>| {
        list.as_deref()
            .map_or(Ok(()), sextant_ingest::scrape::check_scrape_protocols)
    };
    protocols(&global.scrape_protocols).map_err(|e| format!("global: {e}"))?;
    for job in &file.scrape_configs {
        protocols(&job.scrape_protocols)
            .map_err(|e| format!("scrape job {:?}: {e}", job.job_name))?;
        let interval = job.scrape_interval.unwrap_or(global.scrape_interval);
        // As in Prometheus, a job without its own timeout takes the smaller of
        // the global timeout and its own interval.
        let timeout = job
            .scrape_timeout
            .unwrap_or_else(|| global.scrape_timeout().min(interval));
        if timeout > interval {
            return Err(format!(
                "scrape job {:?}: scrape_timeout {timeout} is greater than scrape_interval {interval}",
                job.job_name
            ));
        }
    }
    Ok(())
}

/// Reads and checks a config file and every rule file it names.
pub fn load(path: &Path) -> anyhow::Result<LoadedConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file = parse(path, &text)?;
    let mut loaded = LoadedConfig {
        path: path.to_owned(),
        file,
        rule_files: Vec::new(),
        statsd_mapping: None,
    };
    // The budgets apply to the rule files this file names (at start: a
    // running server keeps the budgets its threads' stacks were sized for).
    let query = &loaded.file.query;
    sextant_model::depth::set_limits(query.max_depth, query.max_query_bytes);
    let rule_paths = expand_rule_files(loaded.base_dir(), &loaded.file.rule_files)?;
    // Their expressions are parsed on a thread with the query stack, as
    // queries are, whatever thread loads the config.
    loaded.rule_files = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("rule-files".into())
            .stack_size(sextant_model::depth::stack_size())
            .spawn_scoped(scope, || {
                rule_paths
                    .into_iter()
                    .map(|rule_path| Ok((rule_path.clone(), load_rule_file(&rule_path)?)))
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .context("starting the thread that reads rule files")?
            .join()
            .map_err(|_| anyhow::anyhow!("reading the rule files failed"))?
    })?;
    // Webhook CA files, like every path in the file, are relative to it.
    let base = loaded.base_dir().to_owned();
    let alerting = &mut loaded.file.alerting;
    alerting.set_base_dir(&base);
    // Prometheus adds its external labels to the alerts it sends.
    alerting.external_labels = loaded
        .file
        .global
        .external_labels
        .iter()
        .map(|(name, value)| (name.0.clone(), value.clone()))
        .collect();
    for (i, am) in alerting.alertmanagers.iter().enumerate() {
        // A TLS file that is missing or unusable is named now, not at the first alert.
        let https = am.scheme == sextant_ingest::scrape::Scheme::Https;
        if (https || am.tls_config.is_some())
            && let Err(e) = am.tls_client()
        {
            anyhow::bail!("{}: alerting.alertmanagers[{i}]: {e}", path.display());
        }
    }
    for receiver in &mut loaded.file.alerting.receivers {
        for hook in &mut receiver.webhooks {
            if let Some(ca_file) = &mut hook.ca_file {
                *ca_file = base.join(&*ca_file);
                if !ca_file.is_file() {
                    anyhow::bail!(
                        "{}: webhook {}: tls_config.ca_file {} not found",
                        path.display(),
                        hook.url,
                        ca_file.display()
                    );
                }
            }
        }
    }
    if let Some(tls) = &mut loaded.file.server.tls {
        for (key, file) in [
            ("cert_file", &mut tls.cert_file),
            ("key_file", &mut tls.key_file),
        ] {
            *file = base.join(&*file);
            if !file.is_file() {
                anyhow::bail!(
                    "{}: server.tls.{key} {} not found",
                    path.display(),
                    file.display()
                );
            }
        }
    }
    if let Some(cluster) = &loaded.file.cluster {
        cluster.validate().map_err(|e| SourceError::new(path, e))?;
        let tokens = &loaded.file.auth.tokens;
        if !tokens.is_empty() {
            // The nodes read each other's partitions over HTTP: with tokens
            // on, they need one of them.
            let Some(token) = &cluster.token else {
                return Err(SourceError::new(
                    path,
                    "cluster.token is needed with auth.tokens: the token the nodes send each other (one of auth.tokens, with the query scope and no tenant)",
                )
                .into());
            };
            let usable = tokens.iter().any(|t| {
                t.secret.matches(token) && t.scopes.contains(&Scope::Query) && t.tenant.is_none()
            });
            if !usable {
                return Err(SourceError::new(
                    path,
                    "cluster.token must be one of auth.tokens with the query scope and no tenant",
                )
                .into());
            }
        }
        if loaded.file.storage.object_store.is_none() {
            return Err(SourceError::new(
                path,
                "cluster needs storage.object_store: the nodes share their sealed blocks there",
            )
            .into());
        }
    }
    if let Some(mapping) = &loaded.file.statsd.mapping_config {
        let mapping = loaded.resolve(mapping);
        if !mapping.is_file() {
            return Err(SourceError::new(
                path,
                format!("statsd.mapping_config: {} not found", mapping.display()),
            )
            .into());
        }
        loaded.statsd_mapping = Some(Mapper::load(&mapping)?);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<ConfigFile, String> {
        parse(Path::new("sextant.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_contract_example_parses() {
        let file = parse_text(include_str!("../../deploy/sextant.yaml")).unwrap();
        assert_eq!(file.global.scrape_interval.to_string(), "5s");
        assert_eq!(file.scrape_configs.len(), 2);
        assert_eq!(file.alerting.receivers.len(), 2);
        assert_eq!(file.retention.logs.to_string(), "1w");
        assert!(file.logs.correlation_fields.iter().any(|f| f == "uuid"));
    }

    #[test]
    fn a_stock_prometheus_yml_parses() {
        // The shape Prometheus ships as its default config, with `rule_files:`
        // left null by its commented-out entries.
        let file = parse_text(
            r#"
global:
  scrape_interval: 15s # Set the scrape interval to every 15 seconds.
  evaluation_interval: 15s
  external_labels:
    monitor: 'simplebank-demo'

rule_files:
  # - "first_rules.yml"

scrape_configs:
  - job_name: "prometheus"
    static_configs:
      - targets: ["localhost:9090"]
"#,
        )
        .unwrap();
        assert!(file.rule_files.is_empty());
        assert_eq!(file.scrape_configs[0].job_name, "prometheus");
        assert_eq!(
            file.global.external_labels[&LabelName("monitor".into())],
            "simplebank-demo"
        );
    }

    #[test]
    fn query_budgets_are_checked() {
        let file = parse_text("query:\n  max_depth: 200\n  max_query_bytes: 4096\n").unwrap();
        assert_eq!(
            (file.query.max_depth, file.query.max_query_bytes),
            (200, 4096)
        );
        for bad in [
            "query:\n  max_depth: 0\n",
            "query:\n  max_depth: 1000000000\n",
        ] {
            let err = parse_text(bad).unwrap_err();
            assert!(err.contains("query.max_depth must be 1 to 100000"), "{err}");
        }
        let err = parse_text("query:\n  max_query_bytes: 0\n").unwrap_err();
        assert!(err.contains("query.max_query_bytes"), "{err}");
    }

    #[test]
    fn empty_and_null_sections_take_defaults() {
        let file = parse_text("").unwrap();
        assert_eq!(file.global.scrape_interval.to_string(), "1m");
        let file = parse_text("server:\nglobal:\nalerting:\nscrape_configs:\n").unwrap();
        assert!(file.server.data_dir.is_none());
        assert_eq!(file.statsd.flush_interval.to_string(), "10s");
    }

    #[test]
    fn listen_addresses_take_every_written_form() {
        let addr = |text: &str| text.parse::<ListenAddr>();
        assert_eq!(
            addr("7070").unwrap(),
            ListenAddr {
                host: None,
                port: 7070
            }
        );
        assert_eq!(
            addr(":0").unwrap(),
            ListenAddr {
                host: None,
                port: 0
            }
        );
        assert_eq!(
            addr("0.0.0.0:4317").unwrap(),
            ListenAddr {
                host: Some("0.0.0.0".into()),
                port: 4317
            }
        );
        assert_eq!(
            addr("[::1]:8125").unwrap(),
            ListenAddr {
                host: Some("::1".into()),
                port: 8125
            }
        );
        assert_eq!(
            addr("localhost:1").unwrap().host.as_deref(),
            Some("localhost")
        );
        for (bad, why) in [
            ("70000", "0-65535"),
            ("host:", "0-65535"),
            (":x", "0-65535"),
            ("::1:80", "brackets"),
            (":", "0-65535"),
            ("[::1]80", "brackets"),
        ] {
            let err = addr(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let file = parse_text("server:\n  http: 7071\n  statsd: '127.0.0.2:0'").unwrap();
        assert_eq!(file.server.http.unwrap().port, 7071);
        assert_eq!(
            file.server.statsd.unwrap().host.as_deref(),
            Some("127.0.0.2")
        );
    }

    #[test]
    fn mistakes_name_the_line_and_the_reason() {
        for (text, at, reason) in [
            (
                "server:\n  data_dir: x\n  htp: 1\n",
                "sextant.yaml:3:3:",
                "unknown field `htp`",
            ),
            (
                "serve:\n  data_dir: x\n",
                "sextant.yaml:1:1:",
                "unknown field `serve`",
            ),
            (
                "retention:\n  logs: 7days\n",
                "sextant.yaml:2:9:",
                "invalid duration",
            ),
            (
                "server:\n  http: 'a:b'\n",
                "sextant.yaml:2:9:",
                "invalid listen address",
            ),
            (
                "server:\n  log_format: xml\n",
                "sextant.yaml:2:15:",
                "unknown variant `xml`",
            ),
            (
                "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
                "sextant.yaml:2:3:",
                "scrape job \"a\" is defined more than once",
            ),
            (
                "auth:\n  tokens:\n    - name: ci\n      token_sha256: abc\n      scopes: [ingest]\n",
                "sextant.yaml:3:5:",
                "64 hex digits",
            ),
            (
                "auth:\n  tokens:\n    - name: ci\n      token: t\n      scopes: [write]\n",
                "sextant.yaml:5:16:",
                "unknown variant `write`",
            ),
            (
                "global:\n  scrape_timeout: 2m\n",
                "sextant.yaml:",
                "greater than scrape_interval",
            ),
            (
                "scrape_configs:\n  - job_name: fast\n    scrape_interval: 1s\n    scrape_timeout: 5s\n",
                "sextant.yaml:",
                "scrape job \"fast\": scrape_timeout 5s is greater than scrape_interval 1s",
            ),
            (
                "global:\n\tscrape_interval: 5s\n",
                "sextant.yaml:2:",
                "cannot start any token",
            ),
        ] {
            let err = parse_text(text).unwrap_err();
            assert!(err.starts_with(at), "{text}\n=> {err}");
            assert!(err.contains(reason), "{text}\n=> {err}");
        }
    }

    #[test]
    fn a_job_without_a_timeout_fits_its_interval() {
        // 10s global timeout, 5s job interval: Prometheus lowers the timeout, no error.
        parse_text("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n").unwrap();
    }

    #[test]
    fn loading_follows_rule_files_and_mapping_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(
            dir.path().join("rules/queue.yml"),
            "groups:\n  - name: q\n    rules:\n      - alert: A\n        expr: up == 0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("mapping.yml"), "mappings: []\n").unwrap();
        let config = dir.path().join("sextant.yaml");
        std::fs::write(
            &config,
            "rule_files: ['rules/*.yml']\nstatsd:\n  mapping_config: mapping.yml\n",
        )
        .unwrap();
        let loaded = load(&config).unwrap();
        assert_eq!(loaded.rule_files.len(), 1);
        assert_eq!(loaded.rule_files[0].1.groups[0].rules[0].name(), "A");

        std::fs::write(
            dir.path().join("rules/broken.yml"),
            "groups:\n  - name: b\n    rules:\n      - alert: B\n        exp: up\n",
        )
        .unwrap();
        let err = format!("{:#}", load(&config).unwrap_err());
        assert!(err.contains("broken.yml:5:9: "), "{err}");
        assert!(err.contains("unknown field `exp`"), "{err}");

        std::fs::remove_file(dir.path().join("rules/broken.yml")).unwrap();
        std::fs::remove_file(dir.path().join("mapping.yml")).unwrap();
        let err = format!("{:#}", load(&config).unwrap_err());
        assert!(err.contains("statsd.mapping_config"), "{err}");
        assert!(err.contains("mapping.yml not found"), "{err}");
    }
}
