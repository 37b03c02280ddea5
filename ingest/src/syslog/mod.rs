//! syslog over UDP (one message per datagram) and TCP (octet-counted or
//! newline-framed, TLS when `server.tls` is set), `:5514`.
//!
//! [`parse`] reads RFC 5424 and RFC 3164 messages, [`frame`] cuts TCP
//! streams into them; this module maps them to [`LogRecord`]s and stores
//! them through the same normaliser limits and redaction as every log path:
//! severity to level, APP-NAME (or TAG) to service, HOSTNAME (else the
//! sender's address) to host, facility, severity, PROCID, MSGID and
//! structured data (`SD-ID.PARAM-NAME`) to fields.
//!
//! A message that does not parse drops its datagram, or closes its TCP
//! connection (the sender's framing can no longer be trusted); one over a
//! limit is skipped and counted, and the connection stays open.

pub mod frame;
pub mod parse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sextant_model::telemetry::ListenerStats;
use sextant_model::{FieldValue, Level, LogRecord};
use sextant_storage::LogWriter;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::logs::Normalizer;
use crate::logstash::now_us;
use crate::net::{Connection, RateLimitedWarning, serve_connections, serve_datagrams};
use crate::statsd::Cidr;
use frame::{Frame, Framer};
use parse::{Context, FACILITIES, Message, SEVERITIES};

/// Most syslog TCP connections open at once.
const MAX_CONNECTIONS: usize = 1024;

/// The `logs.syslog` section of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    /// Networks (CIDR, e.g. `10.0.0.0/8`) syslog is taken from, over UDP
    /// and TCP; datagrams and connections from elsewhere are dropped and
    /// counted. Empty: from anywhere. Syslog carries no token, so this is
    /// its access control.
    pub allowed_sources: Vec<Cidr>,
    /// The senders' offset from UTC for RFC 3164 timestamps, which carry
    /// none: `+02:00`, `-05:30` or `Z` (the default: UTC).
    pub rfc3164_utc_offset: UtcOffset,
}

/// An offset from UTC, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UtcOffset(pub i64);

impl std::str::FromStr for UtcOffset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if matches!(text, "Z" | "z" | "UTC") {
            return Ok(Self(0));
        }
        let bad = || format!("{text:?} is not an offset from UTC: write e.g. +02:00, -05:30 or Z");
        let sign = match text.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let (h, m) = text[1..].split_once(':').ok_or_else(bad)?;
        let two = |s: &str| {
            (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<i64>().ok())
                .flatten()
        };
        match (two(h), two(m)) {
            (Some(h), Some(m)) if h <= 23 && m <= 59 => Ok(Self(sign * (h * 3600 + m * 60))),
            _ => Err(bad()),
        }
    }
}

impl<'de> Deserialize<'de> for UtcOffset {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a message was not stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It is not syslog: the datagram is dropped, the connection closed.
    Broken(String),
    /// It is over a limit (`limits.max_log_event`, `max_fields_per_log`):
    /// skipped and counted.
    Limit(String),
}

/// One message as a record, or why it is not one. `arrival_us` stands in
/// for a missing timestamp, `peer` for a missing hostname.
pub fn to_record(
    bytes: &[u8],
    normalizer: &Normalizer,
    context: Context,
    peer: SocketAddr,
) -> Result<LogRecord, Refusal> {
    normalizer
        .check_event_size(bytes.len())
        .map_err(Refusal::Limit)?;
    let message = parse::parse(bytes, context).map_err(Refusal::Broken)?;
    let mut record = record_of(message, context.now_us, peer);
    normalizer.finish(&mut record).map_err(Refusal::Limit)?;
    Ok(record)
}

/// The record a message maps to (before limits and redaction).
pub fn record_of(message: Message, arrival_us: i64, peer: SocketAddr) -> LogRecord {
    let level = match message.severity {
        0..=3 => Level::Error,
        4 => Level::Warn,
        5 | 6 => Level::Info,
        _ => Level::Debug,
    };
    let mut fields: std::collections::BTreeMap<String, FieldValue> = message
        .structured_data
        .into_iter()
        .map(|(k, v)| (k, FieldValue::Str(v)))
        .collect();
    let mut text = |name: &str, value: &str| {
        fields.insert(name.to_owned(), FieldValue::Str(value.to_owned()));
    };
    text("facility", FACILITIES[usize::from(message.facility)]);
    text("severity", SEVERITIES[usize::from(message.severity)]);
    if let Some(procid) = &message.procid {
        text("procid", procid);
    }
    if let Some(msgid) = &message.msgid {
        text("msgid", msgid);
    }
    LogRecord {
        timestamp_us: message.timestamp_us.unwrap_or(arrival_us),
        service: message.app_name.unwrap_or_default(),
        level,
        host: message
            .hostname
            .unwrap_or_else(|| peer.ip().to_canonical().to_string()),
        message: message.message,
        fields,
    }
}

type WriterSource = dyn Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync;

/// The syslog pipeline both listeners feed: parse, normalise, redact, store.
pub struct Syslog {
    normalizer: Normalizer,
    writer: Box<WriterSource>,
    warning: RateLimitedWarning,
    allowed_sources: Vec<Cidr>,
    rfc3164_offset_s: i64,
}

impl std::fmt::Debug for Syslog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syslog").finish_non_exhaustive()
    }
}

impl Syslog {
    /// The pipeline for `config`, writing to whatever `writer` returns
    /// (`None` while starting).
    pub fn new(
        config: &SyslogConfig,
        normalizer: Normalizer,
        writer: impl Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            normalizer,
            writer: Box::new(writer),
            warning: RateLimitedWarning::new(Duration::from_secs(60)),
            allowed_sources: config.allowed_sources.clone(),
            rfc3164_offset_s: config.rfc3164_utc_offset.0,
        })
    }

    fn context(&self) -> Context {
        Context {
            now_us: now_us(),
            rfc3164_offset_s: self.rfc3164_offset_s,
        }
    }

    /// Whether `peer` is inside `logs.syslog.allowed_sources`; warns (rate
    /// limited) when not. The caller counts the drop.
    fn admits(&self, peer: SocketAddr, stats: &ListenerStats) -> bool {
        let allowed = self.allowed_sources.is_empty()
            || self.allowed_sources.iter().any(|c| c.contains(peer.ip()));
        if !allowed {
            self.warning.warn(|suppressed| {
                warn!(listener = stats.listener, transport = stats.transport, %peer, suppressed, "syslog from a source outside logs.syslog.allowed_sources dropped");
            });
        }
        allowed
    }

    fn refused(&self, stats: &ListenerStats, peer: SocketAddr, what: &str, reason: &str) {
        stats.errors.inc();
        self.warning.warn(|suppressed| {
            warn!(listener = stats.listener, transport = stats.transport, %peer, suppressed, "syslog {what}: {reason}");
        });
    }

    /// Stores `records` (and empties it); a failure counts them as dropped.
    fn store(&self, records: &mut Vec<LogRecord>, stats: &ListenerStats, peer: SocketAddr) {
        if records.is_empty() {
            return;
        }
        let stored = match (self.writer)() {
            Some(writer) => writer.append_logs(records).map_err(|e| e.to_string()),
            None => Err("Sextant is starting: the log store is being opened".to_owned()),
        };
        if let Err(reason) = stored {
            stats.dropped.add(records.len() as u64);
            self.warning.warn(|suppressed| {
                warn!(listener = stats.listener, transport = stats.transport, %peer, suppressed, "syslog messages dropped: {reason}");
            });
        }
        records.clear();
    }

    /// Takes one datagram: a message that does not parse, or is over a
    /// limit, is counted as an error with a rate-limited warning naming why.
    pub fn receive_datagram(&self, datagram: &[u8], stats: &ListenerStats, peer: SocketAddr) {
        if !self.admits(peer, stats) {
            stats.dropped.inc();
            return;
        }
        match to_record(datagram, &self.normalizer, self.context(), peer) {
            Ok(record) => self.store(&mut vec![record], stats, peer),
            Err(Refusal::Broken(reason)) => {
                self.refused(stats, peer, "datagram dropped", &reason);
            }
            Err(Refusal::Limit(reason)) => self.refused(stats, peer, "message refused", &reason),
        }
    }

    /// Reads one TCP connection until it ends or sends something that is
    /// not syslog. The messages of each read are stored together; storing
    /// before reading on is the sender's backpressure.
    async fn serve_connection(
        &self,
        mut stream: Connection,
        stats: &ListenerStats,
        peer: SocketAddr,
    ) {
        let mut framer = Framer::new(self.normalizer.max_event());
        let mut chunk = vec![0u8; 64 * 1024];
        let mut records = Vec::new();
        loop {
            let read = match stream.read(&mut chunk).await {
                Ok(read) => read,
                Err(err) => {
                    self.store(&mut records, stats, peer);
                    self.refused(stats, peer, "connection failed", &err.to_string());
                    return;
                }
            };
            let context = self.context();
            let mut emit = |frame: Frame<'_>| self.frame(frame, context, stats, peer, &mut records);
            let framed = if read == 0 {
                framer.finish(&mut emit)
            } else {
                framer.feed(&chunk[..read], &mut emit)
            };
            // What arrived whole before a broken frame is kept.
            self.store(&mut records, stats, peer);
            if let Err(err) = framed {
                self.refused(stats, peer, "connection closed", &err.0);
                return;
            }
            if read == 0 {
                return;
            }
        }
    }

    /// One frame off a connection: its record joins `records`; an error
    /// (not syslog) closes the connection.
    fn frame(
        &self,
        frame: Frame<'_>,
        context: Context,
        stats: &ListenerStats,
        peer: SocketAddr,
        records: &mut Vec<LogRecord>,
    ) -> Result<(), String> {
        stats.requests.inc();
        let bytes = match frame {
            Frame::Message(bytes) => bytes,
            Frame::TooLong(len) => {
                crate::limits::REFUSED.log_event.inc();
                let reason = format!(
                    "a {len}-byte message skipped: more than limits.max_log_event ({} bytes)",
                    self.normalizer.max_event()
                );
                self.refused(stats, peer, "message refused", &reason);
                return Ok(());
            }
        };
        match to_record(bytes, &self.normalizer, context, peer) {
            Ok(record) => records.push(record),
            Err(Refusal::Broken(reason)) => return Err(reason),
            Err(Refusal::Limit(reason)) => self.refused(stats, peer, "message refused", &reason),
        }
        Ok(())
    }
}

/// Reads syslog over TCP (TLS when `tls` is set, as RFC 5425 has it) until shutdown.
pub async fn serve_tcp(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    syslog: Arc<Syslog>,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let (admitting, admit_stats) = (syslog.clone(), stats.clone());
    let counted = stats.clone();
    serve_connections(
        listener,
        stats,
        shutdown,
        MAX_CONNECTIONS,
        tls,
        move |peer| admitting.admits(peer, &admit_stats),
        move |connection, peer| {
            let (syslog, stats) = (syslog.clone(), counted.clone());
            async move { syslog.serve_connection(connection, &stats, peer).await }
        },
    )
    .await;
}

/// Receives one message per datagram until shutdown.
pub async fn serve_udp(
    socket: UdpSocket,
    stats: Arc<ListenerStats>,
    syslog: Arc<Syslog>,
    shutdown: CancellationToken,
) {
    let counted = stats.clone();
    serve_datagrams(socket, stats, shutdown, move |datagram, peer| {
        syslog.receive_datagram(datagram, &counted, peer);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "192.0.2.7:514".parse().unwrap()
    }

    fn context() -> Context {
        Context {
            now_us: 1_773_576_000_000_000,
            rfc3164_offset_s: 0,
        }
    }

    #[test]
    fn messages_map_to_records() {
        let normalizer = Normalizer::default();
        let record = to_record(
            b"<132>1 2026-03-15T12:00:00.25Z web-1 checkout 4242 ORDER [meta@1 user=\"ann\"] card declined",
            &normalizer,
            context(),
            peer(),
        )
        .unwrap();
        assert_eq!(record.timestamp_us, 1_773_576_000_250_000);
        assert_eq!(
            (record.service.as_str(), record.host.as_str(), record.level),
            ("checkout", "web-1", Level::Warn)
        );
        assert_eq!(record.message, "card declined");
        let field = |name: &str| record.fields[name].to_text();
        assert_eq!(field("facility"), "local0");
        assert_eq!(field("severity"), "warning");
        assert_eq!(field("procid"), "4242");
        assert_eq!(field("msgid"), "ORDER");
        assert_eq!(field("meta@1.user"), "ann");

        // Nothing but PRI: arrival time, the sender's address, no service.
        let record = to_record(b"<7>hello", &normalizer, context(), peer()).unwrap();
        assert_eq!(record.timestamp_us, context().now_us);
        assert_eq!(
            (record.host.as_str(), record.service.as_str(), record.level),
            ("192.0.2.7", "", Level::Debug)
        );
        assert_eq!(record.fields["facility"].to_text(), "kern");
        for (pri, level) in [
            (0, Level::Error),
            (3, Level::Error),
            (5, Level::Info),
            (6, Level::Info),
        ] {
            let text = format!("<{pri}>x");
            let record = to_record(text.as_bytes(), &normalizer, context(), peer()).unwrap();
            assert_eq!(record.level, level, "{pri}");
        }
    }

    #[test]
    fn limits_and_redaction_apply() {
        let config: crate::logs::LogsConfig = serde_norway::from_str(
            "redact:\n  - {pattern: email, action: mask}\n  - {field: x@1.token, action: drop}\n",
        )
        .unwrap();
        let limits: crate::limits::Limits =
            serde_norway::from_str("max_log_event: 100\nmax_fields_per_log: 4\n").unwrap();
        let normalizer = Normalizer::new(&config).with_limits(&limits);
        let record = to_record(
            b"<13>1 - h a - - [x@1 token=\"s3cret\"] mail ann@example.com",
            &normalizer,
            context(),
            peer(),
        )
        .unwrap();
        assert_eq!(record.message, "mail ****");
        assert!(!record.fields.contains_key("x@1.token"));
        let long = format!("<13>{}", "x".repeat(100));
        assert!(matches!(
            to_record(long.as_bytes(), &normalizer, context(), peer()),
            Err(Refusal::Limit(reason)) if reason.contains("limits.max_log_event")
        ));
        let many = b"<13>1 - h a 1 m [x@1 a=\"1\" b=\"2\" c=\"3\"] five fields";
        assert!(matches!(
            to_record(many, &normalizer, context(), peer()),
            Err(Refusal::Limit(reason)) if reason.contains("limits.max_fields_per_log")
        ));
        assert!(matches!(
            to_record(b"<999>x", &normalizer, context(), peer()),
            Err(Refusal::Broken(reason)) if reason.contains("bad PRI")
        ));
    }

    #[test]
    fn offsets_read_as_written() {
        let config: SyslogConfig =
            serde_norway::from_str("allowed_sources: [10.0.0.0/8]\nrfc3164_utc_offset: '-05:30'\n")
                .unwrap();
        assert_eq!(config.rfc3164_utc_offset, UtcOffset(-19_800));
        assert!(config.allowed_sources[0].contains("10.1.2.3".parse().unwrap()));
        for bad in ["+5", "CET", "+24:00", "02:00"] {
            let err = bad.parse::<UtcOffset>().unwrap_err();
            assert!(err.contains("is not an offset from UTC"), "{bad}: {err}");
        }
        let err = serde_norway::from_str::<SyslogConfig>("allowed: []\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `allowed`"), "{err}");
    }
}
