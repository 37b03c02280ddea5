//! StatsD and DogStatsD over UDP and TCP (`:8125`).

pub mod aggregate;
pub mod mapping;
pub mod parse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use sextant_model::PromDuration;
use sextant_model::telemetry::ListenerStats;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use sextant_storage::MetricsWriter;
use tracing::warn;

use self::aggregate::Aggregator;
use self::mapping::Mapper;
use crate::net::{LineLimits, RateLimitedWarning, serve_datagrams, serve_lines};

/// The `statsd` section of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdConfig {
    /// A statsd_exporter mapping file, in its unchanged format; relative paths
    /// are resolved against the config file's directory.
    pub mapping_config: Option<PathBuf>,
    /// How often aggregates are written to the metrics store.
    pub flush_interval: PromDuration,
    /// Most label sets one metric name may have; events for more are
    /// dropped and counted (0: no limit).
    pub max_series_per_metric: usize,
    /// Networks (CIDR, e.g. `10.0.0.0/8`, `::1/128`) StatsD is taken from;
    /// datagrams and lines from elsewhere are dropped and counted. Empty:
    /// from anywhere. StatsD carries no token, so this is its access control.
    pub allowed_sources: Vec<Cidr>,
}

/// A network: an address and how many of its leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: std::net::IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4 address also as `::ffff:a.b.c.d`).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, bits) = text.split_once('/').unwrap_or((text, ""));
        let network: std::net::IpAddr = address.trim().parse().map_err(|_| {
            format!("{text:?} is not a network: write it as 10.0.0.0/8 or fd00::/8")
        })?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let bits = if bits.is_empty() {
            max
        } else {
            bits.trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?
        };
        Ok(Self { network, bits })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            mapping_config: None,
            flush_interval: PromDuration::from_secs(10),
            max_series_per_metric: 10_000,
            allowed_sources: Vec::new(),
        }
    }
}

/// The StatsD pipeline the listeners feed and the flusher drains.
#[derive(Debug)]
pub struct Statsd {
    aggregator: Mutex<Aggregator>,
    warning: RateLimitedWarning,
    allowed_sources: Vec<Cidr>,
}

impl Statsd {
    /// The pipeline for `config`, naming metrics with `mapper` (a
    /// statsd_exporter mapping file, or `Mapper::default()` for none).
    pub fn new(config: &StatsdConfig, mapper: Mapper) -> Arc<Self> {
        Arc::new(Self {
            aggregator: Mutex::new(Aggregator::new(config.max_series_per_metric, mapper)),
            warning: RateLimitedWarning::new(Duration::from_secs(60)),
            allowed_sources: config.allowed_sources.clone(),
        })
    }

    /// Swaps in a reloaded mapping file.
    pub fn set_mapper(&self, mapper: Mapper) {
        self.aggregator
            .lock()
            .expect("statsd lock")
            .set_mapper(mapper);
    }

    /// Takes one datagram or line: each line's events are aggregated; a line
    /// that does not parse is counted as an error and the rest kept; an event
    /// refused (type conflict, series budget) is counted as dropped.
    pub fn receive(&self, payload: &[u8], stats: &ListenerStats, peer: SocketAddr) {
        if !self.allowed_sources.is_empty()
            && !self.allowed_sources.iter().any(|c| c.contains(peer.ip()))
        {
            stats.dropped.inc();
            self.warning.warn(|suppressed| {
                warn!(listener = stats.listener, %peer, suppressed, "StatsD from a source outside statsd.allowed_sources dropped");
            });
            return;
        }
        let now = now_ms();
        let text = String::from_utf8_lossy(payload);
        let mut aggregator = self.aggregator.lock().expect("statsd lock");
        for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
            let outcome = parse::parse_line(line).map(|events| {
                for event in events {
                    if let Err(refused) = aggregator.add(event, now) {
                        stats.dropped.inc();
                        self.warning.warn(|suppressed| {
                            warn!(listener = stats.listener, %peer, suppressed, "StatsD event dropped: {refused}");
                        });
                    }
                }
            });
            if let Err(reason) = outcome {
                stats.errors.inc();
                self.warning.warn(|suppressed| {
                    warn!(listener = stats.listener, %peer, suppressed, "StatsD line refused: {reason}");
                });
            }
        }
    }

    /// Writes every aggregate at `now` through `writer`.
    pub fn flush(&self, writer: &dyn MetricsWriter, now: i64) -> sextant_storage::Result<()> {
        let (batch, metadata) = self.aggregator.lock().expect("statsd lock").flush(now);
        for (name, meta) in metadata {
            writer.set_metadata(&name, meta)?;
        }
        writer.append(&batch)?;
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Receives StatsD datagrams until shutdown.
pub async fn serve_udp(
    socket: UdpSocket,
    stats: Arc<ListenerStats>,
    statsd: Arc<Statsd>,
    shutdown: CancellationToken,
) {
    let counted = stats.clone();
    serve_datagrams(socket, stats, shutdown, move |payload, peer| {
        statsd.receive(payload, &counted, peer);
    })
    .await;
}

/// Reads newline-delimited StatsD lines over TCP until shutdown.
pub async fn serve_tcp(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    statsd: Arc<Statsd>,
    shutdown: CancellationToken,
) {
    let limits = LineLimits {
        max_line: 64 * 1024,
        max_connections: 1024,
        too_long: None,
    };
    let counted = stats.clone();
    serve_lines(listener, stats, shutdown, limits, move |line, peer| {
        statsd.receive(line, &counted, peer);
    })
    .await;
}

/// Writes the aggregates every `interval` (with the flush time as their
/// timestamp) once `writer` has a store to give, and once more at shutdown.
pub async fn run_flusher(
    statsd: Arc<Statsd>,
    writer: impl Fn() -> Option<Arc<dyn MetricsWriter>> + Send + 'static,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = ticks.tick() => false,
        };
        if let Some(writer) = writer() {
            let statsd = statsd.clone();
            let flushed =
                tokio::task::spawn_blocking(move || statsd.flush(writer.as_ref(), now_ms())).await;
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(err)) => warn!(error = %err, "StatsD flush failed"),
                Err(err) => warn!(error = %err, "StatsD flush task failed"),
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_and_refuse_bad_text() {
        let lan: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(lan.contains("10.20.30.40".parse().unwrap()));
        assert!(lan.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!lan.contains("11.0.0.1".parse().unwrap()));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("203.0.113.9".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(
            "10.0.0.0/33"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!("lan".parse::<Cidr>().unwrap_err().contains("not a network"));
    }
}
