//! What every log protocol (logstash, syslog, bulk, Loki, OTLP) shares: the `logs`
//! settings, normalisation of a JSON event into a [`LogRecord`], and
//! redaction, applied before anything is written.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};
use sextant_model::{FieldValue, Level, LogRecord};

/// The `logs` section of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Fields, in order of preference, that name the service a log line came from.
    pub service_fields: Vec<String>,
    /// Fields whose values tie log lines and spans of one request together.
    pub correlation_fields: Vec<String>,
    /// Fields and patterns dropped or masked before anything is stored.
    pub redact: Vec<RedactRule>,
    /// A secret every event on the logstash listeners must carry in
    /// `logstash_secret_field` (logstash has no headers to put a token in);
    /// events without it are dropped and counted. The field is never stored.
    pub logstash_secret: Option<String>,
    pub logstash_secret_field: String,
    /// Fields that are stream labels to LogQL, besides the labels promtail,
    /// Alloy, Kubernetes and OpenTelemetry resources set.
    pub stream_labels: Vec<String>,
    /// The syslog listeners: who may send, how RFC 3164 times are read.
    pub syslog: crate::syslog::SyslogConfig,
    /// The Fluentd forward listener: service naming, shared key, sources.
    pub forward: crate::forward::ForwardConfig,
}

impl Default for LogsConfig {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            service_fields: strings(&["service", "service.name", "app", "application", "type"]),
            correlation_fields: strings(&[
                "trace_id",
                "span_id",
                "request_id",
                "x_request_id",
                "correlation_id",
                "uuid",
            ]),
            redact: Vec::new(),
            logstash_secret: None,
            logstash_secret_field: "sextant_secret".to_owned(),
            stream_labels: Vec::new(),
            syslog: crate::syslog::SyslogConfig::default(),
            forward: crate::forward::ForwardConfig::default(),
        }
    }
}

/// What a redaction rule does to what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactAction {
    /// Remove the field (or the matched text) entirely.
    Drop,
    /// Replace the value (or the matched text) with `****`.
    Mask,
}

/// What a redaction rule matches.
#[derive(Debug, Clone)]
pub enum RedactTarget {
    /// A field, by exact name.
    Field(String),
    /// Text anywhere in a value: a built-in pattern or a `regex:`.
    Pattern(RedactPattern),
}

/// Text patterns a redaction rule can look for.
#[derive(Debug, Clone)]
pub enum RedactPattern {
    /// Payment card numbers: 13 to 19 digits, optionally grouped by spaces or dashes.
    CardNumber,
    /// E-mail addresses.
    Email,
    /// `Bearer <token>` credentials.
    BearerToken,
    /// A user's own regular expression.
    Regex(Regex),
}

/// One entry of `logs.redact`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRedactRule")]
pub struct RedactRule {
    /// What to look for.
    pub target: RedactTarget,
    /// What to do with it.
    pub action: RedactAction,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedactRule {
    field: Option<String>,
    pattern: Option<String>,
    action: RedactAction,
}

impl TryFrom<RawRedactRule> for RedactRule {
    type Error = String;

    fn try_from(raw: RawRedactRule) -> Result<Self, Self::Error> {
        let target = match (raw.field, raw.pattern) {
            (Some(field), None) if !field.is_empty() => RedactTarget::Field(field),
            (None, Some(pattern)) => RedactTarget::Pattern(match pattern.as_str() {
                "card_number" => RedactPattern::CardNumber,
                "email" => RedactPattern::Email,
                "bearer_token" => RedactPattern::BearerToken,
                other => match other.strip_prefix("regex:") {
                    Some(expr) => RedactPattern::Regex(Regex::new(expr).map_err(|e| {
                        format!("redact pattern {other:?} is not a valid regex: {e}")
                    })?),
                    None => {
                        return Err(format!(
                            "unknown redact pattern {other:?}: use card_number, email, \
                             bearer_token or regex:<expression>"
                        ));
                    }
                },
            }),
            (Some(_), None) => return Err("redact field must not be empty".to_owned()),
            (Some(_), Some(_)) => {
                return Err("a redact rule has either `field` or `pattern`, not both".to_owned());
            }
            (None, None) => return Err("a redact rule needs `field` or `pattern`".to_owned()),
        };
        Ok(Self {
            target,
            action: raw.action,
        })
    }
}

/// Fields a timestamp is read from, in order.
const TIME_FIELDS: [&str; 3] = ["@timestamp", "timestamp", "time"];
/// Fields a level is read from, in order.
const LEVEL_FIELDS: [&str; 5] = ["level", "levelname", "severity", "log.level", "loglevel"];
/// Fields a host is read from, in order.
const HOST_FIELDS: [&str; 4] = ["host", "source_host", "hostname", "host.name"];

/// Turns JSON events into [`LogRecord`]s and redacts them, per the `logs` settings.
#[derive(Debug, Clone)]
pub struct Normalizer {
    service_fields: Vec<String>,
    rules: Vec<(CompiledTarget, RedactAction)>,
    /// `limits.max_fields_per_log` and `limits.max_log_event`.
    max_fields: usize,
    max_event: usize,
}

#[derive(Debug, Clone)]
enum CompiledTarget {
    Field(String),
    Pattern(Regex),
}

impl Default for Normalizer {
    fn default() -> Self {
        Self::new(&LogsConfig::default())
    }
}

impl Normalizer {
    /// The normaliser for `config`.
    pub fn new(config: &LogsConfig) -> Self {
        let rules = config
            .redact
            .iter()
            .map(|rule| {
                let target = match &rule.target {
                    RedactTarget::Field(name) => CompiledTarget::Field(name.clone()),
                    RedactTarget::Pattern(pattern) => CompiledTarget::Pattern(pattern.regex()),
                };
                (target, rule.action)
            })
            .collect();
        let limits = crate::limits::Limits::default();
        Self {
            service_fields: config.service_fields.clone(),
            rules,
            max_fields: limits.max_fields_per_log,
            max_event: limits.max_log_event,
        }
    }

    /// The same normaliser enforcing `limits` on every event.
    pub fn with_limits(mut self, limits: &crate::limits::Limits) -> Self {
        self.max_fields = limits.max_fields_per_log;
        self.max_event = limits.max_log_event;
        self
    }

    /// `limits.max_log_event`.
    pub fn max_event(&self) -> usize {
        self.max_event
    }

    /// Refuses (and counts) an event of `len` bytes over `limits.max_log_event`.
    pub fn check_event_size(&self, len: usize) -> Result<(), String> {
        if len > self.max_event {
            crate::limits::REFUSED.log_event.inc();
            return Err(format!(
                "the event is {len} bytes, more than limits.max_log_event ({} bytes)",
                self.max_event
            ));
        }
        Ok(())
    }

    /// The last step before a record is stored: refuses (and counts) one with
    /// more fields than `limits.max_fields_per_log`, then redacts it.
    pub fn finish(&self, record: &mut LogRecord) -> Result<(), String> {
        if record.fields.len() > self.max_fields {
            crate::limits::REFUSED.fields_per_log.inc();
            return Err(format!(
                "the event has {} fields, more than limits.max_fields_per_log ({})",
                record.fields.len(),
                self.max_fields
            ));
        }
        self.redact(record);
        Ok(())
    }

    /// A JSON object as a record: nested objects flattened to dotted keys,
    /// the timestamp (else `arrival_us`), message, host, level and service
    /// picked from their usual fields, everything else kept typed.
    /// `fallback_service` (an index name, a stream label) names the service
    /// when no field does.
    pub fn record(
        &self,
        object: Map<String, Value>,
        arrival_us: i64,
        fallback_service: Option<&str>,
    ) -> LogRecord {
        let mut fields = BTreeMap::new();
        flatten("", object, &mut fields);
        fields.remove("@version");
        let mut timestamp_us = None;
        for name in TIME_FIELDS {
            if let Some(value) = fields.get(name)
                && let Some(us) = timestamp_of(value)
            {
                timestamp_us = Some(us);
                fields.remove(name);
                break;
            }
        }
        // `log` is what Fluent Bit and Fluentd's tail inputs call it, `msg` many JSON loggers.
        let message = match ["message", "log", "msg"]
            .iter()
            .find_map(|name| fields.remove(*name))
        {
            Some(FieldValue::Str(text)) => text,
            Some(other) => other.to_text(),
            None => String::new(),
        };
        let text_of = |fields: &BTreeMap<String, FieldValue>, names: &[&str]| {
            names.iter().find_map(|name| match fields.get(*name) {
                Some(FieldValue::Str(s)) if !s.is_empty() => Some(((*name).to_owned(), s.clone())),
                _ => None,
            })
        };
        let host = match text_of(&fields, &HOST_FIELDS) {
            Some((name, host)) => {
                if name != "host.name" {
                    fields.remove(&name);
                }
                host
            }
            None => String::new(),
        };
        let level = LEVEL_FIELDS
            .iter()
            .find_map(|name| {
                let level = match fields.get(*name)? {
                    FieldValue::Str(s) => Level::parse(s),
                    FieldValue::Int(i) => Level::parse(&i.to_string()),
                    _ => None,
                }?;
                Some((*name, level))
            })
            .map_or(Level::Info, |(name, level)| {
                if name == "level" {
                    fields.remove(name);
                }
                level
            });
        let names: Vec<&str> = self.service_fields.iter().map(String::as_str).collect();
        let service = text_of(&fields, &names)
            .map(|(_, s)| s)
            .or_else(|| fallback_service.map(str::to_owned))
            .unwrap_or_default();
        LogRecord {
            timestamp_us: timestamp_us.unwrap_or(arrival_us),
            service,
            level,
            host,
            message,
            fields,
        }
    }

    /// Applies the redaction rules: fields by name dropped or masked, and
    /// pattern matches in the message and every text field removed or masked.
    pub fn redact(&self, record: &mut LogRecord) {
        for (target, action) in &self.rules {
            match target {
                CompiledTarget::Field(name) if name == "message" => match action {
                    RedactAction::Drop => record.message.clear(),
                    RedactAction::Mask => record.message = MASK.to_owned(),
                },
                CompiledTarget::Field(name) => match action {
                    RedactAction::Drop => {
                        record.fields.remove(name);
                    }
                    RedactAction::Mask => {
                        if let Some(value) = record.fields.get_mut(name) {
                            *value = FieldValue::Str(MASK.to_owned());
                        }
                    }
                },
                CompiledTarget::Pattern(regex) => {
                    let replacement = match action {
                        RedactAction::Drop => "",
                        RedactAction::Mask => MASK,
                    };
                    if regex.is_match(&record.message) {
                        record.message =
                            regex.replace_all(&record.message, replacement).into_owned();
                    }
                    for value in record.fields.values_mut() {
                        if let FieldValue::Str(text) = value
                            && regex.is_match(text)
                        {
                            *text = regex.replace_all(text, replacement).into_owned();
                        }
                    }
                }
            }
        }
    }
}

/// What a masked value reads.
pub const MASK: &str = "****";

impl RedactPattern {
    /// The expression this pattern looks for.
    pub fn regex(&self) -> Regex {
        let source = match self {
            Self::CardNumber => r"\b(?:\d[ -]?){12,18}\d\b",
            Self::Email => r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
            Self::BearerToken => r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*",
            Self::Regex(regex) => return regex.clone(),
        };
        Regex::new(source).expect("built-in redaction patterns are valid")
    }
}

fn flatten(prefix: &str, object: Map<String, Value>, out: &mut BTreeMap<String, FieldValue>) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&name, inner, out),
            Value::Null => {}
            Value::Bool(b) => {
                out.insert(name, FieldValue::Bool(b));
            }
            Value::Number(n) => {
                let value = match n.as_i64() {
                    Some(i) => FieldValue::Int(i),
                    None => FieldValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                };
                out.insert(name, value);
            }
            Value::String(s) => {
                out.insert(name, FieldValue::Str(s));
            }
            // Arrays keep their JSON text: `tags` stays searchable word by word.
            array @ Value::Array(_) => {
                out.insert(name, FieldValue::Str(array.to_string()));
            }
        }
    }
}

/// RFC 3339 text, or epoch seconds, milliseconds or microseconds by magnitude.
fn timestamp_of(value: &FieldValue) -> Option<i64> {
    let from_number = |n: f64| {
        let n = n.abs().max(n);
        let us = if n > 1e14 {
            n
        } else if n > 1e11 {
            n * 1e3
        } else {
            n * 1e6
        };
        us.is_finite().then_some(us as i64)
    };
    match value {
        FieldValue::Str(text) => sextant_model::time::parse_rfc3339_micros(text)
            .or_else(|| text.parse::<f64>().ok().and_then(from_number)),
        FieldValue::Int(i) => from_number(*i as f64),
        FieldValue::Float(f) => from_number(*f),
        FieldValue::Bool(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_logstash_v1_event_normalises() {
        let record = Normalizer::default().record(
            object(
                r#"{"@timestamp": "2026-11-28T10:00:00.123456Z", "@version": "1", "message": "placing sell order",
                    "host": "gw-1", "levelname": "WARNING", "type": "logstash", "service": "gateway",
                    "uuid": "6c3e", "order": {"qty": 10, "price": 72.5, "paid": true}, "tags": ["a", "b"]}"#,
            ),
            5,
            None,
        );
        assert_eq!(record.timestamp_us, 1_795_860_000_123_456);
        assert_eq!(record.message, "placing sell order");
        assert_eq!(
            (record.host.as_str(), record.level, record.service.as_str()),
            ("gw-1", Level::Warn, "gateway")
        );
        assert_eq!(record.fields["uuid"], FieldValue::Str("6c3e".into()));
        assert_eq!(record.fields["order.qty"], FieldValue::Int(10));
        assert_eq!(record.fields["order.price"], FieldValue::Float(72.5));
        assert_eq!(record.fields["order.paid"], FieldValue::Bool(true));
        assert_eq!(
            record.fields["tags"],
            FieldValue::Str("[\"a\",\"b\"]".into())
        );
        assert_eq!(
            record.fields["levelname"],
            FieldValue::Str("WARNING".into())
        );
        assert!(!record.fields.contains_key("@version") && !record.fields.contains_key("host"));
        let bare =
            Normalizer::default().record(object(r#"{"log": "started\n"}"#), 42, Some("orders"));
        assert_eq!(bare.message, "started\n");
        assert_eq!(
            (bare.timestamp_us, bare.service.as_str(), bare.level),
            (42, "orders", Level::Info)
        );
        let epoch =
            Normalizer::default().record(object(r#"{"timestamp": 1700000000123}"#), 0, None);
        assert_eq!(epoch.timestamp_us, 1_700_000_000_123_000);
    }

    #[test]
    fn redaction_drops_and_masks_before_storing() {
        let config: LogsConfig = serde_norway::from_str(
            "redact:\n  - {field: password, action: drop}\n  - {field: token, action: mask}\n  - {pattern: card_number, action: mask}\n  - {pattern: email, action: mask}\n  - {pattern: bearer_token, action: mask}\n",
        )
        .unwrap();
        let normalizer = Normalizer::new(&config);
        let mut record = normalizer.record(
            object(
                r#"{"message": "paid with 4111 1111 1111 1111 by ann@example.com", "password": "hunter2",
                    "token": "abc", "header": "Authorization: Bearer eyJhbGciOi.x-y_z"}"#,
            ),
            0,
            None,
        );
        normalizer.redact(&mut record);
        assert_eq!(record.message, "paid with **** by ****");
        assert!(!record.fields.contains_key("password"));
        assert_eq!(record.fields["token"], FieldValue::Str("****".into()));
        assert_eq!(
            record.fields["header"],
            FieldValue::Str("Authorization: ****".into())
        );
    }

    #[test]
    fn defaults_match_the_contract() {
        let logs = LogsConfig::default();
        assert_eq!(logs.service_fields[0], "service");
        assert!(logs.correlation_fields.iter().any(|f| f == "uuid"));
    }

    #[test]
    fn parses_field_and_pattern_rules() {
        let logs: LogsConfig = serde_norway::from_str(
            "redact:\n  - field: password\n    action: drop\n  - pattern: card_number\n    action: mask\n  - pattern: 'regex:ssn=\\d+'\n    action: mask\n",
        )
        .unwrap();
        assert!(matches!(&logs.redact[0].target, RedactTarget::Field(f) if f == "password"));
        assert_eq!(logs.redact[0].action, RedactAction::Drop);
        assert!(matches!(
            logs.redact[1].target,
            RedactTarget::Pattern(RedactPattern::CardNumber)
        ));
        assert!(matches!(
            &logs.redact[2].target,
            RedactTarget::Pattern(RedactPattern::Regex(r)) if r.is_match("ssn=123")
        ));
    }

    #[test]
    fn rejects_bad_rules_with_the_reason() {
        for (yaml, reason) in [
            (
                "redact: [{field: a, pattern: email, action: drop}]",
                "not both",
            ),
            ("redact: [{action: drop}]", "needs `field` or `pattern`"),
            (
                "redact: [{pattern: phone, action: mask}]",
                "unknown redact pattern \"phone\"",
            ),
            (
                "redact: [{pattern: 'regex:(', action: mask}]",
                "not a valid regex",
            ),
            (
                "redact: [{field: a, action: hide}]",
                "unknown variant `hide`",
            ),
            (
                "redact: [{field: a, action: drop, extra: 1}]",
                "unknown field `extra`",
            ),
        ] {
            let err = serde_norway::from_str::<LogsConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(reason), "{yaml}: {err}");
        }
    }
}
