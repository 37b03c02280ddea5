//! StatsD and DogStatsD over UDP and TCP (`:8125`).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use sextant_model::PromDuration;
use sextant_model::telemetry::ListenerStats;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::net::{LineLimits, not_implemented, serve_datagrams, serve_lines};

/// The `statsd` section of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdConfig {
    /// A statsd_exporter mapping file, in its unchanged format; relative paths
    /// are resolved against the config file's directory.
    pub mapping_config: Option<PathBuf>,
    /// How often aggregates are written to the metrics store.
    pub flush_interval: PromDuration,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            mapping_config: None,
            flush_interval: PromDuration::from_secs(10),
        }
    }
}

/// Receives StatsD datagrams until shutdown.
///
/// Until the StatsD parser lands, every datagram is counted in
/// `sextant_listener_dropped_total` and a rate-limited warning says so.
pub async fn serve_udp(socket: UdpSocket, stats: Arc<ListenerStats>, shutdown: CancellationToken) {
    let handler = not_implemented(stats.clone(), "StatsD");
    serve_datagrams(socket, stats, shutdown, handler).await;
}

/// Reads newline-delimited StatsD lines over TCP until shutdown; dropped like UDP for now.
pub async fn serve_tcp(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) {
    let limits = LineLimits {
        max_line: 64 * 1024,
        max_connections: 1024,
    };
    let handler = not_implemented(stats.clone(), "StatsD");
    serve_lines(listener, stats, shutdown, limits, handler).await;
}
