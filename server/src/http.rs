//! The HTTP API on `:7070`: health, readiness, self-metrics, and an honest
//! answer for every contract path whose feature has not landed yet.
//!
//! This module is the one place that turns outcomes into HTTP statuses.

use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sextant_model::telemetry::{CONTENT_TYPE, ListenerStats};

use crate::self_metrics::SelfMetrics;

/// The HTTP API. `stats` counts this listener's requests and errors.
pub fn app(metrics: Arc<SelfMetrics>, stats: Arc<ListenerStats>) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(self_metrics))
        .fallback(not_here)
        .with_state(metrics)
        .layer(middleware::from_fn_with_state(stats, count_requests))
}

async fn count_requests(
    State(stats): State<Arc<ListenerStats>>,
    request: Request,
    next: Next,
) -> Response {
    stats.requests.inc();
    let response = next.run(request).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        stats.errors.inc();
    }
    response
}

async fn healthy() -> &'static str {
    "Sextant is Healthy.\n"
}

async fn ready(State(metrics): State<Arc<SelfMetrics>>) -> Response {
    if metrics.is_ready() {
        "Sextant is Ready.\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sextant is starting: listeners are binding and recovery is running.\n",
        )
            .into_response()
    }
}

async fn self_metrics(State(metrics): State<Arc<SelfMetrics>>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render()).into_response()
}

/// Paths CONTRACTS.md promises, whose handlers later issues add.
const PLANNED: &[&str] = &[
    "/api/v1/",
    "/_bulk",
    "/_license",
    "/_index_template",
    "/_template",
    "/_ilm",
    "/loki/api/v1/",
    "/jaeger/",
    "/-/reload",
];

async fn not_here(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    let planned = path == "/"
        || path.ends_with("/_bulk")
        || PLANNED.iter().any(|prefix| path.starts_with(prefix));
    let (status, message) = if planned {
        (
            StatusCode::NOT_IMPLEMENTED,
            format!("{method} {path} is not implemented yet in this Sextant build"),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("no endpoint at {method} {path}"),
        )
    };
    (status, axum::Json(json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt as _;

    use super::*;

    fn test_app() -> (Router, Arc<SelfMetrics>, Arc<ListenerStats>) {
        let stats = Arc::new(ListenerStats::new("http", "tcp"));
        let metrics = Arc::new(SelfMetrics::new(vec![stats.clone()]));
        (app(metrics.clone(), stats.clone()), metrics, stats)
    }

    async fn call(app: &Router, method: &str, path: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn ready_flips_once_startup_is_done() {
        let (app, metrics, _) = test_app();
        assert_eq!(call(&app, "GET", "/-/healthy").await.0, StatusCode::OK);
        assert_eq!(
            call(&app, "GET", "/-/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.set_ready();
        assert_eq!(call(&app, "GET", "/-/ready").await.0, StatusCode::OK);
        assert_eq!(call(&app, "HEAD", "/-/ready").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_count_requests_and_errors() {
        let (app, _, stats) = test_app();
        call(&app, "GET", "/-/healthy").await;
        call(&app, "GET", "/nope").await;
        let (status, body) = call(&app, "GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(
                "sextant_listener_requests_total{listener=\"http\",transport=\"tcp\"} 3\n"
            ),
            "{body}"
        );
        assert!(
            body.contains("sextant_listener_errors_total{listener=\"http\",transport=\"tcp\"} 1\n"),
            "{body}"
        );
        assert!(body.contains("sextant_build_info{version=\""), "{body}");
        assert!(body.contains("process_resident_memory_bytes "), "{body}");
        assert_eq!(stats.requests.get(), 3);
    }

    #[tokio::test]
    async fn unbuilt_contract_paths_say_so_and_others_are_not_found() {
        let (app, _, _) = test_app();
        let (status, body) = call(&app, "GET", "/api/v1/query?query=up").await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["error"],
            "GET /api/v1/query is not implemented yet in this Sextant build"
        );
        assert_eq!(
            call(&app, "POST", "/fluentd-20180202/_bulk").await.0,
            StatusCode::NOT_IMPLEMENTED
        );
        let (status, body) = call(&app, "GET", "/wp-admin").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no endpoint at GET /wp-admin"), "{body}");
    }
}
