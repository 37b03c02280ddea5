//! Log ingest settings shared by every log protocol (logstash, bulk, Loki, OTLP).

use regex::Regex;
use serde::Deserialize;

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

#[cfg(test)]
mod tests {
    use super::*;

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
