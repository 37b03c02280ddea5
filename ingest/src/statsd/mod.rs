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
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            mapping_config: None,
            flush_interval: PromDuration::from_secs(10),
            max_series_per_metric: 10_000,
        }
    }
}

/// The StatsD pipeline the listeners feed and the flusher drains.
#[derive(Debug)]
pub struct Statsd {
    aggregator: Mutex<Aggregator>,
    warning: RateLimitedWarning,
}

impl Statsd {
    /// The pipeline for `config`, naming metrics with `mapper` (a
    /// statsd_exporter mapping file, or `Mapper::default()` for none).
    pub fn new(config: &StatsdConfig, mapper: Mapper) -> Arc<Self> {
        Arc::new(Self {
            aggregator: Mutex::new(Aggregator::new(config.max_series_per_metric, mapper)),
            warning: RateLimitedWarning::new(Duration::from_secs(60)),
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
