//! The counters Sextant keeps about itself, and the writer that renders them as
//! Prometheus text exposition format 0.0.4 for `GET /metrics`.
//!
//! Counters are plain atomics so that hot paths pay one relaxed add; nothing
//! here allocates per event.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero (usable in a `static`).
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one, stopping at zero.
    pub fn dec(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// Sets the value.
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n`, stopping at zero.
    pub fn sub(&self, n: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One contributor's part of a [`Gauge`] that several share (the
/// partitions a cluster node owns, each its own engine): each change moves
/// the gauge by the difference, so the gauge reads the sum of the parts.
#[derive(Debug, Default)]
pub struct GaugeShare(AtomicU64);

impl GaugeShare {
    /// Makes this part `value`.
    pub fn set(&self, gauge: &Gauge, value: u64) {
        let old = self.0.swap(value, Ordering::Relaxed);
        if value >= old {
            gauge.add(value - old);
        } else {
            gauge.sub(old - value);
        }
    }

    /// Adds `n` to this part.
    pub fn add(&self, gauge: &Gauge, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
        gauge.add(n);
    }

    /// Takes `n` from this part, stopping at zero.
    pub fn sub(&self, gauge: &Gauge, n: u64) {
        let old = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            })
            .unwrap_or(0);
        gauge.sub(n.min(old));
    }
}

/// The kind of a metric family, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up; resets on restart.
    Counter,
    /// Goes up and down.
    Gauge,
    /// No declared type.
    Untyped,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Untyped => "untyped",
        }
    }
}

/// Builds a page in the Prometheus text exposition format, version 0.0.4.
///
/// Call [`Exposition::family`] once per metric name, then [`Exposition::sample`]
/// for each of its series, before the next family.
///
/// ```
/// use sextant_model::telemetry::{Exposition, MetricKind};
/// let mut page = Exposition::default();
/// page.family("sextant_up", MetricKind::Gauge, "Whether Sextant is up.");
/// page.sample("sextant_up", &[("listener", "http")], 1.0);
/// assert_eq!(
///     page.finish(),
///     "# HELP sextant_up Whether Sextant is up.\n# TYPE sextant_up gauge\nsextant_up{listener=\"http\"} 1\n"
/// );
/// ```
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// The content type of [`Exposition::finish`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Exposition {
    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// Writes one sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, label_value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                for c in label_value.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        if value.is_nan() {
            self.out.push_str("NaN");
        } else if value.is_infinite() {
            self.out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(self.out, "{value}");
        }
        self.out.push('\n');
    }

    /// Shorthand for a family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: MetricKind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The finished page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// What one listener has seen since start: one per protocol and transport
/// (`statsd` over `udp`, `http` over `tcp`, ...).
#[derive(Debug)]
pub struct ListenerStats {
    /// The listener's name, as in the CLI flag (`http`, `otlp_grpc`, `statsd`, ...).
    pub listener: &'static str,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Bytes read from the socket.
    pub received_bytes: Counter,
    /// Requests (HTTP and gRPC), lines (TCP line protocols) or datagrams (UDP).
    pub requests: Counter,
    /// TCP connections accepted.
    pub connections: Counter,
    /// TCP connections open now.
    pub open_connections: Gauge,
    /// Requests answered with an error or that failed to be read.
    pub errors: Counter,
    /// Requests, lines or datagrams received and deliberately discarded.
    pub dropped: Counter,
}

impl ListenerStats {
    /// Fresh, zeroed counters for one listener.
    pub fn new(listener: &'static str, transport: &'static str) -> Self {
        Self {
            listener,
            transport,
            received_bytes: Counter::default(),
            requests: Counter::default(),
            connections: Counter::default(),
            open_connections: Gauge::default(),
            errors: Counter::default(),
            dropped: Counter::default(),
        }
    }
}

/// Renders every listener's counters, one family per counter.
pub fn render_listeners(page: &mut Exposition, listeners: &[Arc<ListenerStats>]) {
    type Field = fn(&ListenerStats) -> f64;
    let families: [(&str, MetricKind, &str, Field); 6] = [
        (
            "sextant_listener_received_bytes_total",
            MetricKind::Counter,
            "Bytes read from the listener's sockets.",
            |s| s.received_bytes.get() as f64,
        ),
        (
            "sextant_listener_requests_total",
            MetricKind::Counter,
            "Requests (HTTP, gRPC), lines (TCP line protocols) or datagrams (UDP) received.",
            |s| s.requests.get() as f64,
        ),
        (
            "sextant_listener_connections_total",
            MetricKind::Counter,
            "TCP connections accepted.",
            |s| s.connections.get() as f64,
        ),
        (
            "sextant_listener_open_connections",
            MetricKind::Gauge,
            "TCP connections open now.",
            |s| s.open_connections.get() as f64,
        ),
        (
            "sextant_listener_errors_total",
            MetricKind::Counter,
            "Requests answered with an error, or that could not be read.",
            |s| s.errors.get() as f64,
        ),
        (
            "sextant_listener_dropped_total",
            MetricKind::Counter,
            "Requests, lines or datagrams received and discarded because no handler takes them yet.",
            |s| s.dropped.get() as f64,
        ),
    ];
    for (name, kind, help, field) in families {
        page.family(name, kind, help);
        for stats in listeners {
            page.sample(
                name,
                &[("listener", stats.listener), ("transport", stats.transport)],
                field(stats),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_help() {
        let mut page = Exposition::default();
        page.family("m", MetricKind::Counter, "a \\ b\nc");
        page.sample("m", &[("l", "q\"\\\n")], 2.5);
        page.sample("m", &[], f64::NAN);
        page.sample("m", &[], f64::INFINITY);
        page.sample("m", &[], f64::NEG_INFINITY);
        assert_eq!(
            page.finish(),
            "# HELP m a \\\\ b\\nc\n# TYPE m counter\nm{l=\"q\\\"\\\\\\n\"} 2.5\nm NaN\nm +Inf\nm -Inf\n"
        );
    }

    #[test]
    fn gauge_does_not_underflow() {
        let g = Gauge::default();
        g.dec();
        assert_eq!(g.get(), 0);
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
    }

    #[test]
    fn renders_each_listener_under_each_family() {
        let http = Arc::new(ListenerStats::new("http", "tcp"));
        let statsd = Arc::new(ListenerStats::new("statsd", "udp"));
        http.requests.add(3);
        statsd.dropped.inc();
        let mut page = Exposition::default();
        render_listeners(&mut page, &[http, statsd]);
        let text = page.finish();
        assert!(
            text.contains(
                "sextant_listener_requests_total{listener=\"http\",transport=\"tcp\"} 3\n"
            )
        );
        assert!(
            text.contains(
                "sextant_listener_dropped_total{listener=\"statsd\",transport=\"udp\"} 1\n"
            )
        );
        assert_eq!(text.matches("# TYPE ").count(), 6);
    }
}
