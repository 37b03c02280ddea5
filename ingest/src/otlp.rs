//! OpenTelemetry's OTLP: traces, logs and metrics over gRPC (`:4317`) and
//! HTTP (`:4318`, `/v1/traces`, `/v1/logs`, `/v1/metrics`).
//!
//! Until the OTLP decoders land, both listeners answer honestly that the
//! signal is not implemented (HTTP 501, gRPC `UNIMPLEMENTED`), so an SDK's
//! exporter reports a permanent failure instead of believing its data was kept.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sextant_model::telemetry::ListenerStats;
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::net::{CountingListener, CountingStream};

/// The OTLP/HTTP router: every request is counted; none is accepted yet.
pub fn http_router(stats: Arc<ListenerStats>) -> Router {
    Router::new()
        .fallback(http_not_implemented)
        .with_state(stats)
}

async fn http_not_implemented(
    State(stats): State<Arc<ListenerStats>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Response {
    stats.requests.inc();
    let path = uri.path();
    let known = matches!(path, "/v1/traces" | "/v1/logs" | "/v1/metrics");
    let (status, message) = if known && method == Method::POST {
        stats.dropped.inc();
        (
            StatusCode::NOT_IMPLEMENTED,
            format!("OTLP/HTTP {path} is not implemented yet in this Sextant build"),
        )
    } else if known {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} {path}: OTLP/HTTP accepts POST only"),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("no OTLP/HTTP endpoint at {path}; use /v1/traces, /v1/logs or /v1/metrics"),
        )
    };
    stats.errors.inc();
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Serves OTLP/HTTP on `listener` until `shutdown` is cancelled.
pub async fn serve_http(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = http_router(stats.clone());
    axum::serve(CountingListener::new(listener, stats), router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes.
pub async fn serve_grpc(
    listener: TcpListener,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    // No OTLP service is registered yet, so every call reaches the fallback.
    let routes = tonic::service::Routes::from(
        Router::new()
            .fallback(grpc_not_implemented)
            .with_state(stats.clone()),
    );
    let incoming = TcpListenerStream::new(listener).map(move |accepted| {
        accepted.map(|stream| {
            let _ = stream.set_nodelay(true);
            CountingStream::new(stream, stats.clone())
        })
    });
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(routes, incoming, shutdown)
        .await
}

async fn grpc_not_implemented(
    State(stats): State<Arc<ListenerStats>>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    stats.requests.inc();
    stats.dropped.inc();
    stats.errors.inc();
    tonic::Status::unimplemented(format!(
        "{} is not implemented yet in this Sextant build",
        uri.path()
    ))
    .into_http::<axum::body::Body>()
}
