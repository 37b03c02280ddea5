//! logstash JSON events over TCP (newline-delimited) and UDP (one per datagram), `:5959`.
//!
//! [`parse_event`] reads both event schemas python-logstash and
//! logstash-formatter write: version 0 (`@message`, `@fields`,
//! `@source_host`, `@tags`, `@type`) and version 1 (`message`, `@version`,
//! `host`, fields at the top level).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sextant_model::LogRecord;
use sextant_storage::LogWriter;
use tracing::warn;

use crate::logs::Normalizer;
use crate::net::RateLimitedWarning;

use sextant_model::telemetry::ListenerStats;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::net::{LineLimits, serve_datagrams, serve_lines_tls};

/// One event as a record, or why it is not one.
pub fn parse_event(
    bytes: &[u8],
    normalizer: &Normalizer,
    arrival_us: i64,
) -> Result<LogRecord, String> {
    normalizer.check_event_size(bytes.len())?;
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("event is not UTF-8: {e}"))?
        .trim();
    if text.is_empty() {
        return Err("empty event".to_owned());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("event is not JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err(format!(
            "a logstash event must be a JSON object, found {}",
            match value {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        ));
    };
    Ok(normalizer.record(version_one(object), arrival_us, None))
}

/// A version 0 event rewritten as version 1 (a version 1 event is returned as is).
fn version_one(mut object: Map<String, Value>) -> Map<String, Value> {
    if !object.contains_key("@message") && !object.contains_key("@fields") {
        return object;
    }
    let mut out = match object.remove("@fields") {
        Some(Value::Object(fields)) => fields,
        Some(other) => Map::from_iter([("fields".to_owned(), other)]),
        None => Map::new(),
    };
    for (old, new) in [
        ("@message", "message"),
        ("@source_host", "host"),
        ("@tags", "tags"),
        ("@type", "type"),
        ("@source_path", "path"),
        ("@source", "source"),
    ] {
        if let Some(value) = object.remove(old) {
            out.insert(new.to_owned(), value);
        }
    }
    // What remains (`@timestamp`, anything else) keeps its name.
    out.extend(object);
    out
}

type WriterSource = dyn Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync;

/// The logstash pipeline both listeners feed: parse, normalise, redact, store.
pub struct Logstash {
    normalizer: Normalizer,
    writer: Box<WriterSource>,
    warning: RateLimitedWarning,
    /// The field every event must carry, and its value, when set.
    secret: Option<(String, String)>,
}

impl std::fmt::Debug for Logstash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logstash").finish_non_exhaustive()
    }
}

impl Logstash {
    /// The pipeline writing to whatever `writer` returns (`None` while starting).
    /// `secret` is the field every event must carry and its value (see
    /// `LogsConfig::logstash_secret`), or `None` to take every event.
    pub fn new(
        normalizer: Normalizer,
        writer: impl Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync + 'static,
        secret: Option<(String, String)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            normalizer,
            writer: Box::new(writer),
            warning: RateLimitedWarning::new(Duration::from_secs(60)),
            secret,
        })
    }

    /// Takes one event (a line or a datagram). A bad event is counted as an
    /// error with a rate-limited warning naming why; one that cannot be
    /// stored yet (starting) or at all is counted as dropped.
    pub fn receive(&self, bytes: &[u8], stats: &ListenerStats, peer: SocketAddr) {
        let mut record = match parse_event(bytes, &self.normalizer, now_us()) {
            Ok(record) => record,
            Err(reason) => {
                stats.errors.inc();
                self.warning.warn(|suppressed| {
                    warn!(listener = stats.listener, %peer, suppressed, "logstash event refused: {reason}");
                });
                return;
            }
        };
        if let Some((field, secret)) = &self.secret {
            let carried = match record.fields.remove(field) {
                Some(sextant_model::FieldValue::Str(value)) => {
                    constant_time_eq(value.as_bytes(), secret.as_bytes())
                }
                _ => false,
            };
            if !carried {
                stats.dropped.inc();
                self.warning.warn(|suppressed| {
                    warn!(listener = stats.listener, %peer, suppressed, "logstash event without the shared secret (field {field:?}) dropped");
                });
                return;
            }
        }
        if let Err(reason) = self.normalizer.finish(&mut record) {
            stats.errors.inc();
            self.warning.warn(|suppressed| {
                warn!(listener = stats.listener, %peer, suppressed, "logstash event refused: {reason}");
            });
            return;
        }
        let stored = match (self.writer)() {
            Some(writer) => writer
                .append_logs(std::slice::from_ref(&record))
                .map_err(|e| e.to_string()),
            None => Err("Sextant is starting: the log store is being opened".to_owned()),
        };
        if let Err(reason) = stored {
            stats.dropped.inc();
            self.warning.warn(|suppressed| {
                warn!(listener = stats.listener, %peer, suppressed, "logstash event dropped: {reason}");
            });
        }
    }
}

/// Equality whose time depends on the lengths only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Reads newline-delimited events over TCP (TLS when `tls` is set, as
/// logstash's tcp output with `ssl_enable` sends) until shutdown.
pub async fn serve_tcp(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    logstash: Arc<Logstash>,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let limits = LineLimits {
        max_line: logstash.normalizer.max_event(),
        max_connections: 1024,
        too_long: Some(&crate::limits::REFUSED.log_event),
    };
    let counted = stats.clone();
    serve_lines_tls(listener, stats, shutdown, limits, tls, move |line, peer| {
        logstash.receive(line, &counted, peer);
    })
    .await;
}

/// Receives one event per datagram until shutdown.
pub async fn serve_udp(
    socket: UdpSocket,
    stats: Arc<ListenerStats>,
    logstash: Arc<Logstash>,
    shutdown: CancellationToken,
) {
    let counted = stats.clone();
    serve_datagrams(socket, stats, shutdown, move |datagram, peer| {
        logstash.receive(datagram, &counted, peer);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use sextant_model::{FieldValue, Level};

    use super::*;

    #[test]
    fn python_logstash_version_0_and_1_events_read_alike() {
        // What python-logstash 0.4.8 sends with version=0 (its default) and version=1.
        let v0 = br#"{"@fields": {"levelname": "ERROR", "logger": "gateway", "uuid": "e5b1", "stack_info": null},
                      "@message": "sell order failed", "@source": "Logstash://gw-1/app.py", "@source_host": "gw-1",
                      "@source_path": "/app/app.py", "@tags": [], "@timestamp": "2026-11-28T10:00:00.500000Z", "@type": "logstash"}"#;
        let v1 = br#"{"@timestamp": "2026-11-28T10:00:00.500Z", "@version": "1", "message": "sell order failed",
                      "host": "gw-1", "path": "/app/app.py", "tags": [], "type": "logstash", "levelname": "ERROR",
                      "logger_name": "gateway", "uuid": "e5b1"}"#;
        let normalizer = Normalizer::default();
        for event in [&v0[..], &v1[..]] {
            let record = parse_event(event, &normalizer, 0).unwrap();
            assert_eq!(record.message, "sell order failed");
            assert_eq!(record.level, Level::Error);
            assert_eq!(record.host, "gw-1");
            assert_eq!(record.timestamp_us, 1_795_860_000_500_000);
            assert_eq!(record.fields["uuid"], FieldValue::Str("e5b1".into()));
            assert_eq!(record.fields["path"], FieldValue::Str("/app/app.py".into()));
            // python-logstash's `type` is its message_type, "logstash" by default.
            assert_eq!(record.service, "logstash");
        }
    }

    #[test]
    fn bad_events_say_why() {
        let normalizer = Normalizer::default();
        for (event, reason) in [
            (&b"  "[..], "empty event"),
            (b"{\"message\": ", "event is not JSON: EOF while parsing"),
            (b"[1, 2]", "must be a JSON object, found an array"),
            (b"\xff{}", "event is not UTF-8"),
        ] {
            let err = parse_event(event, &normalizer, 0).unwrap_err();
            assert!(err.starts_with(reason) || err.contains(reason), "{err}");
        }
    }
}
