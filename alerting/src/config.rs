//! The `alerting` section: receivers and a routing tree in Alertmanager's
//! shape, and Prometheus's `alertmanagers` to forward the ruler's alerts to.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sextant_ingest::scrape::RelabelConfig;
use sextant_model::de::null_as_default;
use sextant_model::{Matcher, PromDuration};

use crate::forward::AlertmanagerConfig;

/// Prometheus's `--rules.alert.resend-delay` default.
const DEFAULT_RESEND_DELAY_MS: i64 = 60_000;

/// Where alerts go and how they are grouped on the way.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RawAlertingConfig")]
pub struct AlertingConfig {
    /// The URL users reach Sextant at, used in `generatorURL` and `ruleUrl`.
    pub external_url: Option<String>,
    /// Named notification targets.
    pub receivers: Vec<Receiver>,
    /// The routing tree; absent means alerts are recorded but sent nowhere.
    pub route: Option<Route>,
    /// Firing alerts that mute others (a critical alert mutes its warnings).
    pub inhibit_rules: Vec<InhibitRule>,
    /// How long an alert another ruler sent without `endsAt` fires after it
    /// was last sent (Alertmanager's `global.resolve_timeout`, 5m).
    pub resolve_timeout: Option<PromDuration>,
    /// Alertmanagers the ruler's own alerts are forwarded to, as
    /// Prometheus's `alerting.alertmanagers`.
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// Relabelling of every forwarded alert (Prometheus's
    /// `alerting.alert_relabel_configs`).
    pub alert_relabel_configs: Vec<RelabelConfig>,
    /// How often a firing alert is forwarded again (Prometheus's
    /// `--rules.alert.resend-delay`, 1m).
    pub resend_delay: Option<PromDuration>,
    /// Labels added to forwarded alerts that lack them: `global.external_labels`,
    /// filled in by whoever reads the whole config file.
    pub external_labels: BTreeMap<String, String>,
}

/// An inhibition rule, in Alertmanager's shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Alerts that mute (when firing).
    #[serde(default)]
    pub source_matchers: Vec<Matcher>,
    /// Alerts that are muted.
    #[serde(default)]
    pub target_matchers: Vec<Matcher>,
    /// Labels source and target must share.
    #[serde(default)]
    pub equal: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertingConfig {
    external_url: Option<String>,
    #[serde(default)]
    receivers: Vec<Receiver>,
    route: Option<Route>,
    #[serde(default)]
    inhibit_rules: Vec<InhibitRule>,
    resolve_timeout: Option<PromDuration>,
    // Prometheus's own `alerting:` block, as in a prometheus.yml.
    #[serde(default, deserialize_with = "null_as_default")]
    alertmanagers: Vec<AlertmanagerConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    alert_relabel_configs: Vec<RelabelConfig>,
    resend_delay: Option<PromDuration>,
}

impl TryFrom<RawAlertingConfig> for AlertingConfig {
    type Error = String;

    fn try_from(raw: RawAlertingConfig) -> Result<Self, Self::Error> {
        if let Some(url) = &raw.external_url {
            check_http_url(url, "alerting.external_url")?;
        }
        let mut names = BTreeSet::new();
        for receiver in &raw.receivers {
            if !names.insert(receiver.name.as_str()) {
                return Err(format!("receiver {:?} is defined twice", receiver.name));
            }
        }
        if let Some(route) = &raw.route {
            if route.receiver.is_none() {
                return Err("the top-level route needs a `receiver`".to_owned());
            }
            route.check_receivers(&names)?;
        }
        if raw.resend_delay.is_some_and(|d| d.as_std().is_zero()) {
            return Err("alerting.resend_delay must be more than 0s".to_owned());
        }
        Ok(Self {
            external_url: raw.external_url,
            receivers: raw.receivers,
            route: raw.route,
            inhibit_rules: raw.inhibit_rules,
            resolve_timeout: raw.resolve_timeout,
            alertmanagers: raw.alertmanagers,
            alert_relabel_configs: raw.alert_relabel_configs,
            resend_delay: raw.resend_delay,
            external_labels: BTreeMap::new(),
        })
    }
}

impl AlertingConfig {
    /// `resend_delay` in milliseconds (1m when unset, as Prometheus).
    pub fn resend_delay_ms(&self) -> i64 {
        self.resend_delay
            .map_or(DEFAULT_RESEND_DELAY_MS, |d| d.as_millis() as i64)
    }

    /// Resolves the relative paths of `alertmanagers` (file_sd files,
    /// secrets, TLS files) against `dir`, the config file's directory.
    pub fn set_base_dir(&mut self, dir: &std::path::Path) {
        crate::forward::set_base_dir(&mut self.alertmanagers, dir);
    }

    /// `resolve_timeout` in milliseconds (5m when unset).
    pub fn resolve_timeout_ms(&self) -> i64 {
        self.resolve_timeout
            .map_or(crate::external::DEFAULT_RESOLVE_TIMEOUT_MS, |d| {
                d.as_millis() as i64
            })
    }

    /// The section as an Alertmanager config file (what Alertmanager's
    /// `/api/v2/status` shows as `config.original`, and `amtool config
    /// routes` draws): secrets as `<secret>`, and Sextant's own webhook
    /// settings (`format`, `headers`), which Alertmanager would refuse, left out.
    pub fn alertmanager_yaml(&self) -> String {
        let config = am::Config {
            global: am::Global {
                resolve_timeout: self
                    .resolve_timeout
                    .map_or_else(|| "5m".to_owned(), |d| d.to_string()),
            },
            route: self.route.as_ref().map(am::Route::from),
            inhibit_rules: self
                .inhibit_rules
                .iter()
                .map(|r| am::InhibitRule {
                    source_matchers: r.source_matchers.iter().map(ToString::to_string).collect(),
                    target_matchers: r.target_matchers.iter().map(ToString::to_string).collect(),
                    equal: r.equal.clone(),
                })
                .collect(),
            receivers: self
                .receivers
                .iter()
                .map(|r| am::Receiver {
                    name: r.name.clone(),
                    webhook_configs: r.webhooks.iter().map(am::Webhook::from).collect(),
                })
                .collect(),
            templates: Vec::new(),
        };
        serde_norway::to_string(&config).unwrap_or_default()
    }
}

/// Alertmanager's config file, as far as Sextant's section maps onto it.
mod am {
    use serde::Serialize;

    const SECRET: &str = "<secret>";

    #[derive(Serialize)]
    pub(super) struct Config {
        pub global: Global,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub route: Option<Route>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub inhibit_rules: Vec<InhibitRule>,
        pub receivers: Vec<Receiver>,
        pub templates: Vec<String>,
    }

    #[derive(Serialize)]
    pub(super) struct Global {
        pub resolve_timeout: String,
    }

    #[derive(Serialize)]
    pub(super) struct Route {
        #[serde(skip_serializing_if = "Option::is_none")]
        receiver: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        group_by: Option<Vec<String>>,
        #[serde(rename = "continue")]
        continue_matching: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        matchers: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        group_wait: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        group_interval: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        repeat_interval: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        routes: Vec<Route>,
    }

    impl From<&super::Route> for Route {
        fn from(r: &super::Route) -> Self {
            Self {
                receiver: r.receiver.clone(),
                group_by: r.group_by.clone(),
                continue_matching: r.continue_matching,
                matchers: r.matchers.iter().map(ToString::to_string).collect(),
                group_wait: r.group_wait.map(|d| d.to_string()),
                group_interval: r.group_interval.map(|d| d.to_string()),
                repeat_interval: r.repeat_interval.map(|d| d.to_string()),
                routes: r.routes.iter().map(Self::from).collect(),
            }
        }
    }

    #[derive(Serialize)]
    pub(super) struct InhibitRule {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub source_matchers: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub target_matchers: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub equal: Vec<String>,
    }

    #[derive(Serialize)]
    pub(super) struct Receiver {
        pub name: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub webhook_configs: Vec<Webhook>,
    }

    #[derive(Serialize)]
    pub(super) struct Webhook {
        send_resolved: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        http_config: Option<HttpConfig>,
        url: String,
        max_alerts: u64,
    }

    #[derive(Serialize, Default)]
    struct HttpConfig {
        #[serde(skip_serializing_if = "Option::is_none")]
        authorization: Option<Authorization>,
        #[serde(skip_serializing_if = "Option::is_none")]
        basic_auth: Option<BasicAuth>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tls_config: Option<TlsConfig>,
    }

    #[derive(Serialize)]
    struct Authorization {
        #[serde(rename = "type")]
        kind: &'static str,
        credentials: &'static str,
    }

    #[derive(Serialize)]
    struct BasicAuth {
        username: String,
        password: &'static str,
    }

    #[derive(Serialize)]
    struct TlsConfig {
        ca_file: String,
    }

    impl From<&super::Webhook> for Webhook {
        fn from(hook: &super::Webhook) -> Self {
            let mut http = HttpConfig::default();
            match (&hook.basic_auth_user, &hook.authorization) {
                (Some(user), _) => {
                    http.basic_auth = Some(BasicAuth {
                        username: user.clone(),
                        password: SECRET,
                    });
                }
                (None, Some(_)) => {
                    http.authorization = Some(Authorization {
                        kind: "Bearer",
                        credentials: SECRET,
                    });
                }
                (None, None) => {}
            }
            http.tls_config = hook.ca_file.as_ref().map(|f| TlsConfig {
                ca_file: f.display().to_string(),
            });
            let any = http.authorization.is_some()
                || http.basic_auth.is_some()
                || http.tls_config.is_some();
            Self {
                send_resolved: hook.send_resolved,
                http_config: any.then_some(http),
                url: hook.url.clone(),
                max_alerts: hook.max_alerts,
            }
        }
    }
}

fn check_http_url(url: &str, what: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{what} {url:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{what} {url:?} has no host"));
    }
    Ok(())
}

/// A named notification target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Referenced by routes.
    pub name: String,
    /// Webhooks to POST notifications to.
    #[serde(default, alias = "webhook_configs")]
    pub webhooks: Vec<Webhook>,
}

/// The body format a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Alertmanager's webhook payload, version 4.
    #[default]
    Alertmanager,
    /// Grafana's legacy alert notification (`evalMatches`, `state: alerting|ok`).
    Grafana,
}

/// One webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawWebhook")]
pub struct Webhook {
    /// Where to POST.
    pub url: String,
    /// The payload format.
    pub format: WebhookFormat,
    /// Extra request headers (an `Authorization` header, say).
    pub headers: BTreeMap<String, String>,
    /// Whether to notify when alerts resolve.
    pub send_resolved: bool,
    /// Most alerts in one notification; 0 means all.
    pub max_alerts: u64,
    /// The `Authorization` header from `basic_auth` or `bearer_token`.
    pub authorization: Option<String>,
    /// `basic_auth`'s user name (shown in Alertmanager's status; the password is not).
    pub basic_auth_user: Option<String>,
    /// For an `https://` URL: the CA bundle that signs the receiver's
    /// certificate (PEM); the system's roots when absent.
    pub ca_file: Option<std::path::PathBuf>,
}

/// TLS settings of a webhook, in Alertmanager's `tls_config` shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookTls {
    ca_file: Option<std::path::PathBuf>,
}

/// HTTP basic authentication credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    #[serde(default)]
    format: WebhookFormat,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "yes")]
    send_resolved: bool,
    #[serde(default)]
    max_alerts: u64,
    basic_auth: Option<BasicAuth>,
    bearer_token: Option<String>,
    tls_config: Option<WebhookTls>,
}

fn yes() -> bool {
    true
}

impl TryFrom<RawWebhook> for Webhook {
    type Error = String;

    fn try_from(raw: RawWebhook) -> Result<Self, Self::Error> {
        check_http_url(&raw.url, "webhook url")?;
        let basic_auth_user = raw.basic_auth.as_ref().map(|b| b.username.clone());
        let authorization = match (raw.basic_auth, raw.bearer_token) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "webhook {}: set `basic_auth` or `bearer_token`, not both",
                    raw.url
                ));
            }
            (Some(basic), None) => Some(format!(
                "Basic {}",
                base64(format!("{}:{}", basic.username, basic.password).as_bytes())
            )),
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        Ok(Self {
            ca_file: raw.tls_config.and_then(|t| t.ca_file),
            authorization,
            basic_auth_user,
            url: raw.url,
            format: raw.format,
            headers: raw.headers,
            send_resolved: raw.send_resolved,
            max_alerts: raw.max_alerts,
        })
    }
}

/// A node of the routing tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The receiver for alerts that stop here; inherited from the parent when absent.
    pub receiver: Option<String>,
    /// Labels that split alerts into notification groups; `...` groups by all labels.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// How long to wait before the first notification of a new group.
    pub group_wait: Option<PromDuration>,
    /// How long to wait before notifying about new alerts in a group.
    pub group_interval: Option<PromDuration>,
    /// How long to wait before repeating a notification.
    pub repeat_interval: Option<PromDuration>,
    /// Alerts this route takes; all when empty.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// Whether to keep matching sibling routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<Route>,
}

impl Route {
    fn check_receivers(&self, names: &BTreeSet<&str>) -> Result<(), String> {
        if let Some(receiver) = &self.receiver
            && !names.contains(receiver.as_str())
        {
            return Err(format!(
                "route refers to receiver {receiver:?}, which is not defined in `receivers`"
            ));
        }
        self.routes
            .iter()
            .try_for_each(|r| r.check_receivers(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AlertingConfig, String> {
        serde_norway::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn webhook_credentials_become_an_authorization_header() {
        let config = parse(
            r#"
receivers:
  - name: basic
    webhooks:
      - url: http://hooks.example/a
        basic_auth: {username: alertbot, password: "s3cret!"}
      - url: http://hooks.example/b
        bearer_token: abc.def
"#,
        )
        .unwrap();
        let hooks = &config.receivers[0].webhooks;
        // base64("alertbot:s3cret!")
        assert_eq!(
            hooks[0].authorization.as_deref(),
            Some("Basic YWxlcnRib3Q6czNjcmV0IQ==")
        );
        assert_eq!(hooks[1].authorization.as_deref(), Some("Bearer abc.def"));
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        let both = parse(
            "receivers:\n  - name: x\n    webhooks:\n      - url: http://h/\n        bearer_token: t\n        basic_auth: {username: u}\n",
        )
        .unwrap_err();
        assert!(both.contains("not both"), "{both}");
    }

    #[test]
    fn the_section_shows_as_an_alertmanager_config_without_secrets() {
        let config = parse(
            r#"
resolve_timeout: 2m
receivers:
  - name: ops
    webhooks:
      - url: http://hooks.example/a
        format: grafana
        headers: {X-Token: hidden-header}
        basic_auth: {username: alertbot, password: "s3cret!"}
      - url: https://hooks.example/b
        bearer_token: abc.def
        send_resolved: false
  - name: pager
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity=~"warning|info"']
    equal: [alertname]
"#,
        )
        .unwrap();
        assert_eq!(config.resolve_timeout_ms(), 120_000);
        let yaml = config.alertmanager_yaml();
        for secret in ["s3cret", "abc.def", "hidden-header", "grafana"] {
            assert!(!yaml.contains(secret), "{secret} in\n{yaml}");
        }
        let value: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(value["global"]["resolve_timeout"].as_str(), Some("2m"));
        assert_eq!(value["route"]["receiver"].as_str(), Some("ops"));
        assert_eq!(value["route"]["group_wait"].as_str(), Some("0s"));
        let child = &value["route"]["routes"][0];
        assert_eq!(child["matchers"][0].as_str(), Some("severity=\"critical\""));
        assert_eq!(child["continue"].as_bool(), Some(true));
        let hooks = &value["receivers"][0]["webhook_configs"];
        assert_eq!(hooks[0]["url"].as_str(), Some("http://hooks.example/a"));
        let basic = &hooks[0]["http_config"]["basic_auth"];
        assert_eq!(basic["username"].as_str(), Some("alertbot"));
        assert_eq!(basic["password"].as_str(), Some("<secret>"));
        let bearer = &hooks[1]["http_config"]["authorization"];
        assert_eq!(bearer["credentials"].as_str(), Some("<secret>"));
        assert_eq!(hooks[1]["send_resolved"].as_bool(), Some(false));
        assert_eq!(
            value["inhibit_rules"][0]["target_matchers"][0].as_str(),
            Some("severity=~\"warning|info\"")
        );
        assert_eq!(value["receivers"][1]["name"].as_str(), Some("pager"));
        assert_eq!(
            AlertingConfig::default().resolve_timeout_ms(),
            5 * 60_000,
            "Alertmanager's default"
        );
    }

    #[test]
    fn the_contract_example_parses() {
        let config = parse(
            r#"
external_url: http://sextant.example:7070
receivers:
  - name: ops
    webhooks:
      - url: http://alerts.example/hook
        format: grafana
        headers: {}
  - name: pager
    webhook_configs:
      - url: https://pager.example/hook
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
"#,
        )
        .unwrap();
        assert_eq!(
            config.receivers[0].webhooks[0].format,
            WebhookFormat::Grafana
        );
        assert_eq!(
            config.receivers[1].webhooks[0].format,
            WebhookFormat::Alertmanager
        );
        let route = config.route.unwrap();
        assert_eq!(route.repeat_interval.unwrap().to_string(), "4h");
        assert!(route.routes[0].matchers[0].matches("critical"));
    }

    #[test]
    fn prometheus_alerting_blocks_parse_beside_receivers() {
        // As in a prometheus.yml, with Sextant's own receivers alongside.
        let config = parse(
            r#"
resend_delay: 30s
alert_relabel_configs:
  - regex: replica
    action: labeldrop
alertmanagers:
  - static_configs:
      - targets: ['am-1:9093']
    timeout: 5s
  - scheme: https
    path_prefix: /am
    bearer_token_file: token
    file_sd_configs:
      - files: [am.json]
        refresh_interval: 30s
receivers:
  - name: ops
route:
  receiver: ops
"#,
        )
        .unwrap();
        assert_eq!(config.resend_delay_ms(), 30_000);
        assert_eq!(config.alertmanagers.len(), 2);
        assert_eq!(config.alert_relabel_configs.len(), 1);
        assert_eq!(config.alertmanagers[1].alerts_path(), "/am/api/v2/alerts");
        let mut config = config;
        config.set_base_dir(std::path::Path::new("/etc/sextant"));
        assert_eq!(
            config.alertmanagers[1].base_dir,
            std::path::Path::new("/etc/sextant")
        );
        assert_eq!(
            AlertingConfig::default().resend_delay_ms(),
            60_000,
            "Prometheus's --rules.alert.resend-delay"
        );
        // Nothing after `alertmanagers:` is none.
        assert!(
            parse(
                "alertmanagers:
"
            )
            .unwrap()
            .alertmanagers
            .is_empty()
        );
    }

    #[test]
    fn bad_alerting_sections_are_rejected_with_a_reason() {
        for (yaml, reason) in [
            (
                "route: {receiver: nobody}",
                "receiver \"nobody\", which is not defined",
            ),
            (
                "receivers: [{name: a}]\nroute: {receiver: a, routes: [{receiver: b}]}",
                "receiver \"b\"",
            ),
            ("receivers: [{name: a}, {name: a}]", "defined twice"),
            (
                "receivers: [{name: a}]\nroute: {group_by: [x]}",
                "needs a `receiver`",
            ),
            (
                "receivers: [{name: a, webhooks: [{url: 'ftp://x'}]}]",
                "must start with http",
            ),
            (
                "receivers: [{name: a, webhooks: [{url: 'http://'}]}]",
                "has no host",
            ),
            (
                "receivers: [{name: a, webhooks: [{url: 'http://x', format: slack}]}]",
                "unknown variant `slack`",
            ),
            ("route: {receiver: a, matchers: ['sev']}", "invalid matcher"),
            (
                "alertmanagers: [{static_configs: [{targets: [am:9093]}], api_version: v1}]",
                "api_version v1 is not supported",
            ),
            (
                "alertmanagers: [{static_configs: [{targets: [am:9093]}], timeoutt: 5s}]",
                "unknown field `timeoutt`",
            ),
            ("resend_delay: 0s", "resend_delay must be more than 0s"),
            ("resend_delay: often", "invalid duration"),
            ("external_url: sextant:7070", "must start with http"),
        ] {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(reason), "{yaml}\n=> {err}");
        }
    }
}
