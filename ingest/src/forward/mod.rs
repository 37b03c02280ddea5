//! The Fluentd forward protocol (msgpack over TCP, `:24224`), as Fluentd's
//! `out_forward`, Fluent Bit's `forward` output, Docker's `fluentd` log
//! driver and the fluent-logger libraries send it.
//!
//! All four modes of the v1 specification are read: Message
//! `[tag, time, record, option?]`, Forward `[tag, [[time, record], ...], option?]`,
//! PackedForward `[tag, <entries as one msgpack stream>, option?]` and
//! CompressedPackedForward (the same, gzip, `compressed: "gzip"`). The
//! `chunk` option is answered `{"ack": chunk}` once the frame's records are
//! in the log store's WAL (they survive a kill -9 from then on); `size` must
//! match. With `logs.forward.shared_key` the server opens with HELO and
//! takes nothing before a PING whose digest proves the key (user/password
//! authentication is not offered). UDP on the same port answers heartbeats
//! with one `\0` byte, as Fluentd's `in_forward` does.
//!
//! [`decode_frame`] is the pure parser (bytes to events, no I/O); the
//! listener around it reads frames, stops reading while a frame is being
//! stored (backpressure), and closes only the connection that sent a broken
//! frame.

pub mod msgpack;

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use sextant_model::LogRecord;
use sextant_model::telemetry::ListenerStats;
use sextant_storage::LogWriter;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use self::msgpack::{Marker, Reader, Scanner, write};
use crate::logs::Normalizer;
use crate::net::{Connection, RateLimitedWarning, serve_connections};
use crate::statsd::Cidr;

/// The `logs.forward` section of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// Where a record's service comes from: `tag` (the Fluentd tag, the
    /// default), or the name of a record field (the tag when the record has
    /// no such field; the tag is then kept in the field `tag`).
    pub service_from: String,
    /// The key clients prove with the handshake (Fluentd's `<security>
    /// shared_key`). Unset: no handshake, every client is taken.
    pub shared_key: Option<String>,
    /// The name this server gives in PONG (Fluentd's `self_hostname`);
    /// unset: the machine's host name.
    pub hostname: Option<String>,
    /// Networks (CIDR) forward clients and heartbeats are taken from;
    /// connections from elsewhere are closed at once and counted as dropped.
    /// Empty: from anywhere.
    pub allowed_sources: Vec<Cidr>,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            service_from: "tag".to_owned(),
            shared_key: None,
            hostname: None,
            allowed_sources: Vec::new(),
        }
    }
}

/// How much one frame may carry.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// `query.max_depth`: how deep containers may nest.
    pub max_depth: usize,
    /// `limits.max_decompressed_body`: what a compressed frame may unpack to.
    pub max_decompressed: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_depth: sextant_model::depth::DEFAULT_MAX_DEPTH,
            max_decompressed: crate::limits::Limits::default().max_decompressed_body,
        }
    }
}

/// One event of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Microseconds since the epoch; `None` for time 0 (Fluentd's "now").
    pub time_us: Option<i64>,
    pub record: Map<String, Value>,
    /// Bytes of its `[time, record]` entry, as sent.
    pub size: usize,
}

/// A frame read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub tag: String,
    /// The events that read well, in order.
    pub events: Vec<Event>,
    /// Why each entry that did not was refused (its frame is otherwise kept).
    pub refused: Vec<String>,
    /// The `chunk` option, to answer with once the events are stored.
    pub chunk: Option<Vec<u8>>,
}

/// Reads one frame. An `Err` is a frame that cannot be read as a whole (not
/// the protocol's shape, packed entries cut short, bad gzip, `size` not
/// matching); an entry that is well-formed msgpack but not an event (a
/// record that is not a map, a time that is not a time) is refused alone and
/// named in [`Frame::refused`].
pub fn decode_frame(bytes: &[u8], limits: &FrameLimits) -> Result<Frame, String> {
    let mut r = Reader::new(bytes, limits.max_depth);
    let len = match r.marker().map_err(|e| e.to_string())? {
        Marker::Array(n @ 2..=4) => n,
        other => {
            return Err(format!(
                "a forward frame is an array of 2 to 4 elements (tag, entries or time and record, option), found {}",
                describe(other)
            ));
        }
    };
    let tag = r.bytes("the tag").map_err(|e| e.to_string())?;
    let tag = std::str::from_utf8(tag)
        .map_err(|_| "the tag is not UTF-8".to_owned())?
        .to_owned();
    let second = r.peek().map_err(|e| e.to_string())?;
    let mut frame = Frame {
        tag,
        events: Vec::new(),
        refused: Vec::new(),
        chunk: None,
    };
    let option_at = |mode_len: usize, r: &mut Reader<'_>| -> Result<Options, String> {
        if len > mode_len {
            let options = read_options(r)?;
            for _ in mode_len + 1..len {
                r.skip().map_err(|e| e.to_string())?;
            }
            Ok(options)
        } else {
            Ok(Options::default())
        }
    };
    let entries_seen;
    match second {
        Marker::Array(n) => {
            // Forward mode: the entries as an array.
            r.marker().map_err(|e| e.to_string())?;
            for _ in 0..n {
                let entry = whole_value(&mut r, bytes)?;
                push_entry(&mut frame, entry, limits);
            }
            entries_seen = n;
            let options = option_at(2, &mut r)?;
            frame.chunk = options.chunk;
            check_size(options.size, entries_seen)?;
        }
        Marker::Str(_) | Marker::Bin(_) => {
            // PackedForward: the entries as one msgpack stream in a string.
            let packed = r.bytes("the entries").map_err(|e| e.to_string())?;
            let options = option_at(2, &mut r)?;
            let unpacked;
            let stream = match options.compressed.as_deref() {
                None | Some("text") => packed,
                Some("gzip") => {
                    unpacked = gunzip_members(packed, limits.max_decompressed)?;
                    &unpacked[..]
                }
                Some(other) => {
                    return Err(format!(
                        "compressed: {other:?} is not a compression this server reads (gzip)"
                    ));
                }
            };
            let mut inner = Reader::new(stream, limits.max_depth);
            let mut n = 0;
            while !inner.is_empty() {
                let start = inner.position();
                let entry = whole_value(&mut inner, stream)
                    .map_err(|e| format!("the packed entries are broken at byte {start}: {e}"))?;
                push_entry(&mut frame, entry, limits);
                n += 1;
            }
            entries_seen = n;
            frame.chunk = options.chunk;
            check_size(options.size, entries_seen)?;
        }
        Marker::Int(_) | Marker::UInt(_) | Marker::Float(_) | Marker::Ext(..) => {
            // Message mode: one event.
            if len < 3 {
                return Err("a Message-mode frame needs a tag, a time and a record".to_owned());
            }
            let start = r.position();
            let time = read_time(&mut r);
            let record = whole_value(&mut r, bytes)?;
            let size = r.position() - start;
            match time.and_then(|time_us| {
                let record = read_record(record, limits)?;
                Ok(Event {
                    time_us,
                    record,
                    size,
                })
            }) {
                Ok(event) => frame.events.push(event),
                Err(reason) => frame.refused.push(reason),
            }
            let options = option_at(3, &mut r)?;
            frame.chunk = options.chunk;
            check_size(options.size, 1)?;
        }
        other => {
            return Err(format!(
                "the second element of a forward frame is a time, the entries or packed entries, found {}",
                other.name()
            ));
        }
    }
    if !r.is_empty() {
        return Err(format!(
            "{} bytes follow the frame's last element",
            r.remaining()
        ));
    }
    Ok(frame)
}

fn describe(marker: Marker) -> String {
    match marker {
        Marker::Array(n) => format!("an array of {n}"),
        other => other.name().to_owned(),
    }
}

/// The bytes of the next whole value, which the reader then skips.
fn whole_value<'a>(r: &mut Reader<'a>, bytes: &'a [u8]) -> Result<&'a [u8], String> {
    let start = r.position();
    r.skip().map_err(|e| e.to_string())?;
    Ok(&bytes[start..r.position()])
}

fn check_size(size: Option<u64>, seen: usize) -> Result<(), String> {
    match size {
        Some(size) if size != seen as u64 => Err(format!(
            "the size option says {size} events, the frame holds {seen}"
        )),
        _ => Ok(()),
    }
}

/// Reads one `[time, record]` entry into the frame, or names why not.
fn push_entry(frame: &mut Frame, entry: &[u8], limits: &FrameLimits) {
    let mut r = Reader::new(entry, limits.max_depth);
    let event = match r.marker() {
        Ok(Marker::Array(2..)) => read_time(&mut r).and_then(|time_us| {
            let record = whole_value(&mut r, entry)?;
            Ok(Event {
                time_us,
                record: read_record(record, limits)?,
                size: entry.len(),
            })
        }),
        Ok(other) => Err(format!(
            "an entry is an array of time and record, found {}",
            describe(other)
        )),
        Err(e) => Err(e.to_string()),
    };
    match event {
        Ok(event) => frame.events.push(event),
        Err(reason) => frame.refused.push(reason),
    }
}

/// An event time: integer seconds, a float (Fluent Bit), or an EventTime.
/// 0 means "now" (`None`).
fn read_time(r: &mut Reader<'_>) -> Result<Option<i64>, String> {
    const MICROS: i64 = 1_000_000;
    let us = match r.marker().map_err(|e| e.to_string())? {
        Marker::UInt(s) => i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(MICROS),
        Marker::Int(s) => s.saturating_mul(MICROS),
        Marker::Float(f) if f.is_finite() => (f * 1e6).round() as i64,
        Marker::Ext(kind, n) => {
            let data = r.take(n).map_err(|e| e.to_string())?;
            let (s, ns) = msgpack::event_time(kind, data).ok_or_else(|| {
                format!("the event time is an extension of type {kind} and {n} bytes, not an EventTime (type 0, 8 bytes)")
            })?;
            i64::from(s) * MICROS + i64::from(ns) / 1000
        }
        other => {
            return Err(format!(
                "the event time must be an integer, a float or an EventTime, found {}",
                other.name()
            ));
        }
    };
    Ok((us != 0).then_some(us))
}

fn read_record(bytes: &[u8], limits: &FrameLimits) -> Result<Map<String, Value>, String> {
    let mut r = Reader::new(bytes, limits.max_depth);
    match r.peek().map_err(|e| e.to_string())? {
        Marker::Map(_) => match r.json().map_err(|e| e.to_string())? {
            Value::Object(map) => Ok(map),
            _ => Err("the record is not a map".to_owned()),
        },
        other => Err(format!("a record must be a map, found {}", other.name())),
    }
}

#[derive(Debug, Default)]
struct Options {
    chunk: Option<Vec<u8>>,
    size: Option<u64>,
    compressed: Option<String>,
}

fn read_options(r: &mut Reader<'_>) -> Result<Options, String> {
    let mut options = Options::default();
    let n = match r.marker().map_err(|e| e.to_string())? {
        Marker::Map(n) => n,
        Marker::Nil => return Ok(options),
        other => return Err(format!("the option must be a map, found {}", other.name())),
    };
    for _ in 0..n {
        let key = match r.peek().map_err(|e| e.to_string())? {
            Marker::Str(_) | Marker::Bin(_) => r.bytes("a key").map_err(|e| e.to_string())?,
            _ => {
                r.skip().map_err(|e| e.to_string())?;
                r.skip().map_err(|e| e.to_string())?;
                continue;
            }
        };
        match key {
            b"chunk" => {
                let chunk = r.bytes("the chunk option").map_err(|e| e.to_string())?;
                options.chunk = Some(chunk.to_vec());
            }
            b"size" => match r.marker().map_err(|e| e.to_string())? {
                Marker::UInt(n) => options.size = Some(n),
                other => {
                    return Err(format!(
                        "the size option must be a count, found {}",
                        other.name()
                    ));
                }
            },
            b"compressed" => {
                let how = r
                    .bytes("the compressed option")
                    .map_err(|e| e.to_string())?;
                options.compressed = Some(String::from_utf8_lossy(how).into_owned());
            }
            // `fluent_signal`, `pos` and the like: nothing for us to do.
            _ => r.skip().map_err(|e| e.to_string())?,
        }
    }
    Ok(options)
}

/// Undoes gzip, every member of it (Fluent Bit and Fluentd append one per
/// flush), reading at most `limit` bytes of output.
fn gunzip_members(bytes: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the packed entries are not valid gzip: {e}"))?;
    if out.len() > limit {
        crate::limits::REFUSED.decompressed_body.inc();
        return Err(format!(
            "the packed entries decompress to more than limits.max_decompressed_body ({limit} bytes)"
        ));
    }
    Ok(out)
}

/// The `{"ack": chunk}` answer.
pub fn ack(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 8);
    write::map(&mut out, 1);
    write::str(&mut out, b"ack");
    write::str(&mut out, chunk);
    out
}

type WriterSource = dyn Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync;

/// Most forward connections open at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 1024;
/// How much is read from a socket at a time.
const READ_SIZE: usize = 64 * 1024;
/// How long a TLS handshake or the HELO/PING exchange may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a PING may be.
const MAX_PING: usize = 64 * 1024;
/// How long a connection waits for room in the shared buffer budget before
/// it is closed.
const BUDGET_WAIT: Duration = Duration::from_secs(30);

/// The forward pipeline the listeners feed: decode, normalise, redact, store, ack.
pub struct Forward {
    normalizer: Normalizer,
    writer: Box<WriterSource>,
    warning: RateLimitedWarning,
    config: ForwardConfig,
    hostname: String,
    limits: FrameLimits,
    /// `limits.max_request_body`: the largest frame.
    max_frame: usize,
    /// Bytes of unfinished frames all connections may hold at once, beyond
    /// one read each: a connection that needs more waits (and does not
    /// read) until others finish.
    budget: Arc<Semaphore>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward").finish_non_exhaustive()
    }
}

/// What storing a run of frames came to.
#[derive(Debug, Default)]
struct Stored {
    /// Answers owed, in order.
    acks: Vec<Vec<u8>>,
    /// Why the connection must close (a broken frame, the store refusing).
    close: Option<String>,
}

impl Forward {
    /// The pipeline writing to whatever `writer` returns (`None` while starting).
    pub fn new(
        config: ForwardConfig,
        normalizer: Normalizer,
        limits: &crate::limits::Limits,
        writer: impl Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync + 'static,
    ) -> Arc<Self> {
        let hostname = config.hostname.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "sextant".to_owned())
        });
        let budget_bytes = limits
            .max_decompressed_body
            .max(limits.max_request_body.saturating_mul(2))
            .min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            normalizer,
            writer: Box::new(writer),
            warning: RateLimitedWarning::new(Duration::from_secs(60)),
            config,
            hostname,
            limits: FrameLimits {
                max_depth: sextant_model::depth::max_depth(),
                max_decompressed: limits.max_decompressed_body,
            },
            max_frame: limits.max_request_body,
            budget: Arc::new(Semaphore::new(budget_bytes)),
        })
    }

    fn allowed(&self, peer: SocketAddr) -> bool {
        let sources = &self.config.allowed_sources;
        sources.is_empty() || sources.iter().any(|c| c.contains(peer.ip()))
    }

    /// The frames' events as records, ready to store; refusals counted.
    fn records(&self, frame: Frame, stats: &ListenerStats, peer: SocketAddr) -> Vec<LogRecord> {
        for reason in &frame.refused {
            stats.errors.inc();
            self.warning.warn(|suppressed| {
                warn!(listener = stats.listener, %peer, suppressed, tag = %frame.tag, "forward entry refused: {reason}");
            });
        }
        let arrival = crate::logstash::now_us();
        let by_tag = self.config.service_from == "tag";
        let mut records = Vec::with_capacity(frame.events.len());
        for event in frame.events {
            let outcome = self.normalizer.check_event_size(event.size).and_then(|()| {
                let mut record = self.normalizer.record(
                    event.record,
                    event.time_us.unwrap_or(arrival),
                    Some(&frame.tag),
                );
                if by_tag {
                    record.service.clone_from(&frame.tag);
                } else {
                    record.service = match record.fields.get(&self.config.service_from) {
                        Some(sextant_model::FieldValue::Str(s)) if !s.is_empty() => s.clone(),
                        _ => frame.tag.clone(),
                    };
                    record.fields.insert(
                        "tag".to_owned(),
                        sextant_model::FieldValue::Str(frame.tag.clone()),
                    );
                }
                self.normalizer.finish(&mut record)?;
                Ok(record)
            });
            match outcome {
                Ok(record) => records.push(record),
                Err(reason) => {
                    stats.errors.inc();
                    self.warning.warn(|suppressed| {
                        warn!(listener = stats.listener, %peer, suppressed, tag = %frame.tag, "forward event refused: {reason}");
                    });
                }
            }
        }
        records
    }

    /// Decodes and stores `frames` of `data` in one append; blocking.
    fn store(
        &self,
        data: &[u8],
        frames: &[Range<usize>],
        stats: &ListenerStats,
        peer: SocketAddr,
    ) -> Stored {
        let mut stored = Stored::default();
        let mut records = Vec::new();
        for range in frames {
            stats.requests.inc();
            match decode_frame(&data[range.clone()], &self.limits) {
                Ok(mut frame) => {
                    let chunk = frame.chunk.take();
                    records.extend(self.records(frame, stats, peer));
                    if let Some(chunk) = chunk {
                        stored.acks.push(ack(&chunk));
                    }
                }
                Err(reason) => {
                    stored.close = Some(format!("broken frame: {reason}"));
                    break;
                }
            }
        }
        if records.is_empty() {
            return stored;
        }
        let appended = match (self.writer)() {
            Some(writer) => writer.append_logs(&records).map_err(|e| e.to_string()),
            None => Err("Sextant is starting: the log store is being opened".to_owned()),
        };
        if let Err(reason) = appended {
            stats.dropped.add(records.len() as u64);
            // Unacknowledged: the client sends the chunk again.
            stored.acks.clear();
            stored.close = Some(format!(
                "{} events not stored, chunks left unacknowledged: {reason}",
                records.len()
            ));
        }
        stored
    }

    /// Serves one connection until it ends; `Err` names why it was closed.
    async fn connection<S>(
        self: &Arc<Self>,
        mut stream: S,
        peer: SocketAddr,
        stats: &Arc<ListenerStats>,
    ) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buffer = Vec::with_capacity(READ_SIZE);
        if let Some(key) = &self.config.shared_key {
            buffer = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.handshake(&mut stream, key))
                .await
                .map_err(|_| {
                    format!("no PING within {HANDSHAKE_TIMEOUT:?} of HELO (shared_key is set)")
                })??;
        }
        let mut scanner = Scanner::new(self.limits.max_depth);
        let mut held: Option<OwnedSemaphorePermit> = None;
        loop {
            // Every whole frame buffered goes to the store in one append.
            let mut frames = Vec::new();
            let mut start = 0;
            let mut broken = None;
            loop {
                match scanner.scan(&buffer[start..]) {
                    Ok(Some(len)) => {
                        frames.push(start..start + len);
                        start += len;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        broken = Some(format!("broken frame: {e}"));
                        break;
                    }
                }
            }
            if !frames.is_empty() {
                let rest = buffer[start..].to_vec();
                let data = std::mem::replace(&mut buffer, rest);
                let (forward, counted) = (self.clone(), stats.clone());
                let stored = tokio::task::spawn_blocking(move || {
                    forward.store(&data, &frames, &counted, peer)
                })
                .await
                .map_err(|e| format!("storing a frame failed: {e}"))?;
                for answer in &stored.acks {
                    stream
                        .write_all(answer)
                        .await
                        .map_err(|e| format!("cannot send an ack: {e}"))?;
                }
                if !stored.acks.is_empty() {
                    stream
                        .flush()
                        .await
                        .map_err(|e| format!("cannot send an ack: {e}"))?;
                }
                if let Some(reason) = stored.close {
                    return Err(reason);
                }
                held = None;
                if buffer.capacity() > 4 * READ_SIZE {
                    buffer.shrink_to(READ_SIZE.max(buffer.len()));
                }
            }
            if let Some(reason) = broken {
                return Err(reason);
            }
            if buffer.len() > self.max_frame {
                crate::limits::REFUSED.request_body.inc();
                return Err(format!(
                    "a frame of more than limits.max_request_body ({} bytes)",
                    self.max_frame
                ));
            }
            // Beyond the first read, an unfinished frame holds room in the
            // shared budget; waiting for it is not reading (backpressure).
            if buffer.len() >= READ_SIZE {
                let want = buffer.len() + READ_SIZE;
                let have = held.as_ref().map_or(0, |p| p.num_permits());
                if want > have {
                    let more = u32::try_from(want - have).unwrap_or(u32::MAX);
                    let permit = tokio::time::timeout(
                        BUDGET_WAIT,
                        self.budget.clone().acquire_many_owned(more),
                    )
                    .await
                    .map_err(|_| {
                        format!(
                            "no room for a frame of more than {} bytes within {BUDGET_WAIT:?}: the forward buffers are full",
                            buffer.len()
                        )
                    })?
                    .map_err(|e| e.to_string())?;
                    match held.as_mut() {
                        Some(held) => held.merge(permit),
                        None => held = Some(permit),
                    }
                }
            }
            buffer.reserve(READ_SIZE);
            let read = stream
                .read_buf(&mut buffer)
                .await
                .map_err(|e| format!("read failed: {e}"))?;
            if read == 0 {
                if buffer.is_empty() {
                    return Ok(());
                }
                return Err(format!(
                    "the connection closed inside a frame ({} bytes of it received)",
                    buffer.len()
                ));
            }
        }
    }

    /// HELO, PING, PONG. Returns what the client sent after its PING.
    async fn handshake<S>(&self, stream: &mut S, key: &str) -> Result<Vec<u8>, String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| "no randomness for the HELO nonce".to_owned())?;
        let mut helo = Vec::new();
        write::array(&mut helo, 2);
        write::str(&mut helo, b"HELO");
        write::map(&mut helo, 3);
        write::str(&mut helo, b"nonce");
        write::bin(&mut helo, &nonce);
        write::str(&mut helo, b"auth");
        write::bin(&mut helo, b"");
        write::str(&mut helo, b"keepalive");
        write::bool(&mut helo, true);
        stream
            .write_all(&helo)
            .await
            .map_err(|e| format!("cannot send HELO: {e}"))?;
        stream
            .flush()
            .await
            .map_err(|e| format!("cannot send HELO: {e}"))?;

        let mut buffer = Vec::with_capacity(1024);
        let mut scanner = Scanner::new(4);
        let len = loop {
            if let Some(len) = scanner
                .scan(&buffer)
                .map_err(|e| format!("broken PING: {e}"))?
            {
                break len;
            }
            if buffer.len() > MAX_PING {
                return Err(format!("a PING of more than {MAX_PING} bytes"));
            }
            buffer.reserve(1024);
            let read = stream
                .read_buf(&mut buffer)
                .await
                .map_err(|e| format!("read failed: {e}"))?;
            if read == 0 {
                return Err("the connection closed before PING".to_owned());
            }
        };
        let ping = read_ping(&buffer[..len])?;
        let expected = digest(&[ping.salt, ping.hostname, &nonce, key.as_bytes()]);
        let matches = crate::logstash::constant_time_eq(ping.digest, expected.as_bytes());
        let mut pong = Vec::new();
        write::array(&mut pong, 5);
        write::str(&mut pong, b"PONG");
        write::bool(&mut pong, matches);
        if matches {
            write::str(&mut pong, b"");
            write::str(&mut pong, self.hostname.as_bytes());
            let ours = digest(&[ping.salt, self.hostname.as_bytes(), &nonce, key.as_bytes()]);
            write::str(&mut pong, ours.as_bytes());
        } else {
            write::str(&mut pong, b"shared_key mismatch");
            write::str(&mut pong, self.hostname.as_bytes());
            write::str(&mut pong, b"");
        }
        stream
            .write_all(&pong)
            .await
            .map_err(|e| format!("cannot send PONG: {e}"))?;
        stream
            .flush()
            .await
            .map_err(|e| format!("cannot send PONG: {e}"))?;
        if !matches {
            let host = String::from_utf8_lossy(ping.hostname).into_owned();
            return Err(format!(
                "PING from {host:?} with a wrong shared key (logs.forward.shared_key): refused"
            ));
        }
        Ok(buffer[len..].to_vec())
    }
}

struct Ping<'a> {
    hostname: &'a [u8],
    salt: &'a [u8],
    digest: &'a [u8],
}

/// `['PING', hostname, shared_key_salt, sha512_hex(salt + hostname + nonce + key), username, password]`.
fn read_ping(bytes: &[u8]) -> Result<Ping<'_>, String> {
    let mut r = Reader::new(bytes, 4);
    let broken = |e: msgpack::Error| format!("broken PING: {e}");
    match r.marker().map_err(broken)? {
        Marker::Array(4..) => {}
        other => {
            return Err(format!(
                "expected PING (an array of 4 to 6), found {}",
                describe(other)
            ));
        }
    }
    if r.bytes("the message type").map_err(broken)? != b"PING" {
        return Err("expected PING after HELO".to_owned());
    }
    Ok(Ping {
        hostname: r.bytes("the PING hostname").map_err(broken)?,
        salt: r.bytes("the PING salt").map_err(broken)?,
        digest: r.bytes("the PING digest").map_err(broken)?,
    })
}

/// Lower-case hex SHA-512 of the parts, one after another.
fn digest(parts: &[&[u8]]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA512);
    for part in parts {
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accepts forward connections (TLS when `tls` is set) until shutdown.
pub async fn serve_tcp(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    forward: Arc<Forward>,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let admit = {
        let (forward, stats) = (forward.clone(), stats.clone());
        move |peer: SocketAddr| {
            let allowed = forward.allowed(peer);
            if !allowed {
                forward.warning.warn(|suppressed| {
                    warn!(listener = stats.listener, %peer, suppressed, "forward connection from outside logs.forward.allowed_sources closed");
                });
            }
            allowed
        }
    };
    let serve = {
        let stats = stats.clone();
        move |stream: Connection, peer: SocketAddr| {
            let (forward, stats) = (forward.clone(), stats.clone());
            async move {
                if let Err(reason) = forward.connection(stream, peer, &stats).await {
                    stats.errors.inc();
                    // Every one at debug level; a warning at most once a minute.
                    debug!(listener = stats.listener, %peer, "forward connection closed: {reason}");
                    forward.warning.warn(|suppressed| {
                        warn!(listener = stats.listener, transport = stats.transport, %peer, suppressed, "forward connection closed: {reason}");
                    });
                }
            }
        }
    };
    serve_connections(
        listener,
        stats,
        shutdown,
        MAX_CONNECTIONS,
        tls,
        admit,
        serve,
    )
    .await;
}

/// Answers heartbeat datagrams with one `\0` byte until shutdown.
pub async fn serve_udp(
    socket: UdpSocket,
    stats: Arc<ListenerStats>,
    forward: Arc<Forward>,
    shutdown: CancellationToken,
) {
    let mut datagram = [0u8; 1024];
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut datagram) => received,
        };
        match received {
            Ok((len, peer)) => {
                stats.received_bytes.add(len as u64);
                stats.requests.inc();
                if !forward.allowed(peer) {
                    stats.dropped.inc();
                    continue;
                }
                if let Err(err) = socket.send_to(&[0], peer).await {
                    debug!(listener = stats.listener, %peer, error = %err, "heartbeat answer not sent");
                }
            }
            Err(err) => {
                stats.errors.inc();
                debug!(listener = stats.listener, error = %err, "recv failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
