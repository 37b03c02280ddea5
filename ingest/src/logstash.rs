//! logstash JSON events over TCP (newline-delimited) and UDP (one per datagram), `:5959`.

use std::sync::Arc;

use sextant_model::telemetry::ListenerStats;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

use crate::net::{LineLimits, not_implemented, serve_datagrams, serve_lines};

/// The longest accepted event line: python-logstash events with tracebacks run to
/// tens of kilobytes, so a megabyte leaves room without letting one peer hoard memory.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Reads newline-delimited events over TCP until shutdown.
///
/// Until the logstash parser lands, every line is counted in
/// `sextant_listener_dropped_total` and a rate-limited warning says so.
pub async fn serve_tcp(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) {
    let limits = LineLimits {
        max_line: MAX_EVENT_BYTES,
        max_connections: 1024,
    };
    let handler = not_implemented(stats.clone(), "logstash");
    serve_lines(listener, stats, shutdown, limits, handler).await;
}

/// Receives one event per datagram until shutdown; dropped like TCP for now.
pub async fn serve_udp(socket: UdpSocket, stats: Arc<ListenerStats>, shutdown: CancellationToken) {
    let handler = not_implemented(stats.clone(), "logstash");
    serve_datagrams(socket, stats, shutdown, handler).await;
}
