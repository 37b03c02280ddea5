//! One log line in the shape every log protocol is normalised into.

use std::collections::BTreeMap;

/// A log line: when, from which service, how severe, the message, and every
/// other field the sender attached, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Microseconds since the epoch, UTC.
    pub timestamp_us: i64,
    /// The service that wrote it (empty when none could be found).
    pub service: String,
    pub level: Level,
    /// The host it came from (empty when unknown).
    pub host: String,
    pub message: String,
    /// Every other field, nested objects flattened to dotted keys.
    pub fields: BTreeMap<String, FieldValue>,
}

/// A field's value, typed as it arrived (as JSON: the bare value).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl FieldValue {
    /// The value as JSON, typed.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Str(s) => s.as_str().into(),
            Self::Int(i) => (*i).into(),
            Self::Float(x) => (*x).into(),
            Self::Bool(b) => (*b).into(),
        }
    }

    /// A JSON scalar as a value (`None` for null, arrays and objects).
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        use serde_json::Value;
        Some(match value {
            Value::String(s) => Self::Str(s.clone()),
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Float(n.as_f64()?),
            },
            Value::Null | Value::Array(_) | Value::Object(_) => return None,
        })
    }

    /// The value as text, as search and display show it.
    pub fn to_text(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

/// Severity, normalised from the many spellings senders use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl Level {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    /// A level name as loggers write it (`warning`, `CRITICAL`, `err`, `5`
    /// as syslog's notice...), or `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let lower = text.trim().to_ascii_lowercase();
        Some(match lower.as_str() {
            "trace" | "verbose" | "finest" | "finer" => Self::Trace,
            "debug" | "fine" | "dbg" | "7" => Self::Debug,
            "info" | "information" | "informational" | "notice" | "6" | "5" => Self::Info,
            "warn" | "warning" | "4" => Self::Warn,
            "error" | "err" | "fatal" | "critical" | "crit" | "alert" | "emerg" | "emergency"
            | "panic" | "severe" | "3" | "2" | "1" | "0" => Self::Error,
            _ => return None,
        })
    }

    /// An OpenTelemetry severity number (1-24).
    pub fn from_otel(number: i32) -> Option<Self> {
        Some(match number {
            1..=4 => Self::Trace,
            5..=8 => Self::Debug,
            9..=12 => Self::Info,
            13..=16 => Self::Warn,
            17..=24 => Self::Error,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_normalise() {
        for (text, level) in [
            ("INFO", Level::Info),
            ("warning", Level::Warn),
            ("CRITICAL", Level::Error),
            ("err", Level::Error),
            ("Debug", Level::Debug),
            ("notice", Level::Info),
        ] {
            assert_eq!(Level::parse(text), Some(level), "{text}");
        }
        assert_eq!(Level::parse("loud"), None);
        assert_eq!(Level::from_otel(17), Some(Level::Error));
        assert_eq!(Level::from_otel(9).map(Level::as_str), Some("INFO"));
    }
}
