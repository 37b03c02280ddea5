//! One span of a trace, in the shape OTLP spans are normalised into.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::FieldValue;

/// A span: one operation of one service within a trace. Its JSON form
/// (serde) is what the span store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The resource's `service.name` (`unknown_service` when it has none).
    pub service: String,
    /// The span's name.
    pub operation: String,
    pub kind: SpanKind,
    pub status: SpanStatus,
    /// The status message, when the status is an error.
    pub status_message: String,
    /// Microseconds since the epoch, UTC.
    pub start_us: i64,
    pub duration_us: i64,
    /// The span's attributes, nested values flattened to dotted keys.
    pub attributes: BTreeMap<String, FieldValue>,
    /// The resource's attributes (`service.name`, `host.name`, ...).
    pub resource: BTreeMap<String, FieldValue>,
    /// The instrumentation scope's name and version.
    pub scope: String,
    pub scope_version: String,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
}

/// Something that happened during a span (an exception, a retry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub timestamp_us: i64,
    pub name: String,
    pub attributes: BTreeMap<String, FieldValue>,
}

/// A reference to a span of another (or the same) trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
}

/// OTLP's span kinds.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// OTLP's enum number.
    pub fn from_otel(number: i32) -> Self {
        match number {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// As Jaeger and span metrics name it: `server`, `client`, ... (and
    /// `unspecified`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "unspecified" => Self::Unspecified,
            "internal" => Self::Internal,
            "server" => Self::Server,
            "client" => Self::Client,
            "producer" => Self::Producer,
            "consumer" => Self::Consumer,
            _ => return None,
        })
    }
}

/// OTLP's status codes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error,
}

impl SpanStatus {
    pub fn from_otel(number: i32) -> Self {
        match number {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    /// `STATUS_CODE_UNSET`, `STATUS_CODE_OK`, `STATUS_CODE_ERROR`: the
    /// values span metrics label with, as the OpenTelemetry Collector does.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "STATUS_CODE_UNSET",
            Self::Ok => "STATUS_CODE_OK",
            Self::Error => "STATUS_CODE_ERROR",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "STATUS_CODE_UNSET" => Self::Unset,
            "STATUS_CODE_OK" => Self::Ok,
            "STATUS_CODE_ERROR" => Self::Error,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_round_trip_through_their_names() {
        for n in 0..6 {
            let kind = SpanKind::from_otel(n);
            assert_eq!(SpanKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(SpanKind::from_otel(9), SpanKind::Unspecified);
        for n in 0..3 {
            let status = SpanStatus::from_otel(n);
            assert_eq!(SpanStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(SpanStatus::from_otel(2).as_str(), "STATUS_CODE_ERROR");
    }
}
