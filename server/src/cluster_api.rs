//! Cluster mode's HTTP: `/api/v1/status/cluster` (what this node sees of
//! the cluster) and `/internal/v1/metrics/read`, where other nodes read the
//! partitions this node owns.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

use crate::http::{ApiError, AppState};

/// Cluster mode's stores, once joined.
#[derive(Clone, Debug)]
pub struct ClusterStores {
    pub metrics: std::sync::Arc<sextant_cluster::ClusterMetrics>,
    pub logs: std::sync::Arc<sextant_cluster::ClusterLogs>,
    pub spans: std::sync::Arc<sextant_cluster::ClusterSpans>,
}

fn not_in_cluster() -> ApiError {
    ApiError::NotFound("this node is not in a cluster (no cluster: section)".into())
}

/// `GET /api/v1/status/cluster`: members, partition owners and what this
/// node holds; `{"mode": "single"}` without a `cluster:` section.
pub async fn status(State(state): State<AppState>) -> Response {
    let data = match state.cluster.get() {
        Some(stores) => {
            let status = stores.metrics.cluster().status();
            json!({
                "mode": "cluster",
                "node_id": status.node_id,
                "partitions": status.partitions,
                "members": status.members,
                "owners": status.owners,
                "owned": status.owned,
            })
        }
        None => json!({"mode": "single"}),
    };
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// `POST /internal/v1/metrics/read`: a [`sextant_cluster::ReadRequest`]
/// answered for the partitions this node owns, in the binary form
/// `sextant_cluster::wire` reads.
pub async fn metrics_read(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let metrics = state
        .cluster
        .get()
        .ok_or_else(not_in_cluster)?
        .metrics
        .clone();
    let request: sextant_cluster::ReadRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadData(format!("a cluster read request: {e}")))?;
    let answer = tokio::task::spawn_blocking(move || metrics.read_local(&request))
        .await
        .map_err(|e| ApiError::Internal(format!("a cluster read panicked: {e}")))?
        .map_err(ApiError::BadData)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response())
}

/// `POST /internal/v1/logs/read`: a [`sextant_cluster::logs::LogRead`]
/// answered for the partitions this node owns.
pub async fn logs_read(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let logs = state.cluster.get().ok_or_else(not_in_cluster)?.logs.clone();
    let read: sextant_cluster::logs::LogRead = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadData(format!("a cluster log read: {e}")))?;
    let answer = tokio::task::spawn_blocking(move || logs.read_local(&read))
        .await
        .map_err(|e| ApiError::Internal(format!("a cluster read panicked: {e}")))?
        .map_err(ApiError::BadData)?;
    Ok(axum::Json(answer).into_response())
}

/// `POST /internal/v1/traces/read`: a [`sextant_cluster::spans::SpanRead`]
/// answered for the partitions this node owns.
pub async fn traces_read(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let spans = state
        .cluster
        .get()
        .ok_or_else(not_in_cluster)?
        .spans
        .clone();
    let read: sextant_cluster::spans::SpanRead = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadData(format!("a cluster span read: {e}")))?;
    let answer = tokio::task::spawn_blocking(move || spans.read_local(&read))
        .await
        .map_err(|e| ApiError::Internal(format!("a cluster read panicked: {e}")))?
        .map_err(ApiError::BadData)?;
    Ok(axum::Json(answer).into_response())
}

/// A metrics writer that gives every series without an `instance` label
/// this node's id: what one node aggregates itself (StatsD) is its own
/// series, as two statsd_exporters scraped by one Prometheus would be.
pub struct NodeStamped {
    pub inner: std::sync::Arc<dyn sextant_storage::MetricsWriter>,
    pub node: std::sync::Arc<str>,
}

impl std::fmt::Debug for NodeStamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStamped")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl sextant_storage::MetricsWriter for NodeStamped {
    fn append(
        &self,
        batch: &[sextant_storage::SeriesSamples],
    ) -> sextant_storage::Result<sextant_storage::AppendReport> {
        let stamped: Vec<sextant_storage::SeriesSamples> = batch
            .iter()
            .map(|s| sextant_storage::SeriesSamples {
                labels: sextant_ingest::otlp::with_instance(&s.labels, &self.node),
                samples: s.samples.clone(),
            })
            .collect();
        self.inner.append(&stamped)
    }

    fn set_metadata(
        &self,
        metric: &str,
        metadata: sextant_storage::MetricMetadata,
    ) -> sextant_storage::Result<()> {
        self.inner.set_metadata(metric, metadata)
    }

    fn append_histograms(
        &self,
        batch: &[sextant_storage::SeriesHistograms],
    ) -> sextant_storage::Result<sextant_storage::AppendReport> {
        let stamped: Vec<sextant_storage::SeriesHistograms> = batch
            .iter()
            .map(|s| sextant_storage::SeriesHistograms {
                labels: sextant_ingest::otlp::with_instance(&s.labels, &self.node),
                samples: s.samples.clone(),
            })
            .collect();
        self.inner.append_histograms(&stamped)
    }

    fn append_start_zeros(
        &self,
        batch: &sextant_storage::PairBatch<'_>,
    ) -> sextant_storage::Result<u64> {
        let stamped: Vec<sextant_storage::SeriesSamples> = batch
            .iter()
            .map(|s| sextant_storage::SeriesSamples {
                labels: sextant_ingest::otlp::with_instance(&s.labels(), &self.node),
                samples: s.samples.to_vec(),
            })
            .collect();
        self.inner
            .append_start_zeros(&sextant_storage::PairBatch::of_series(&stamped))
    }

    fn append_exemplars(
        &self,
        exemplars: &[(sextant_model::Labels, sextant_model::Exemplar)],
    ) -> sextant_storage::Result<usize> {
        let stamped: Vec<_> = exemplars
            .iter()
            .map(|(labels, e)| {
                (
                    sextant_ingest::otlp::with_instance(labels, &self.node),
                    e.clone(),
                )
            })
            .collect();
        self.inner.append_exemplars(&stamped)
    }
}

/// Whether `path` reads or changes the ruler's state: rules, alerts,
/// their history, silences and the ruler API.
fn is_alerting(path: &str) -> bool {
    path.starts_with("/api/v1/alerts")
        || path.starts_with("/api/v1/silences")
        // Alertmanager's API v2: the dispatcher's alerts, silences and config.
        || path.starts_with("/api/v2/alerts")
        || path == "/api/v2/silences"
        || path.starts_with("/api/v2/silence/")
        || path == "/api/v2/status"
        || path == "/api/v2/receivers"
        || crate::ruler_api::PREFIXES
            .iter()
            .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// How long an alerting request waits for a node to hold the ruler: a
/// lease left by a dead node runs out, then the next round takes it.
const RULER_HANDOVER: Duration =
    Duration::from_secs(sextant_cluster::LEASE_TTL.as_secs() + 2 * sextant_cluster::TICK.as_secs());

/// In cluster mode, the alerting API answers from the node holding the
/// ruler (the one that evaluates and notifies): a request reaching another
/// node is forwarded there, so every node shows the same alerts and a
/// silence set through any node mutes the notifications.
pub async fn forward_alerting(
    State((cluster, body_limit)): State<(
        std::sync::Arc<std::sync::OnceLock<ClusterStores>>,
        usize,
    )>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(stores) = cluster.get() else {
        return next.run(request).await;
    };
    let node = stores.metrics.cluster();
    if !is_alerting(request.uri().path())
        || request
            .headers()
            .contains_key(sextant_cluster::peer::FORWARDED)
    {
        return next.run(request).await;
    }
    // While the ruler moves (its node stopped, its lease ran out) no node
    // holds it for a few seconds: the request waits for the next holder,
    // as long as taking it over can last, before it is refused.
    let deadline = std::time::Instant::now() + RULER_HANDOVER;
    let address = loop {
        if node.holds("ruler") {
            return next.run(request).await;
        }
        let status = node.status();
        if let Some(address) = status
            .singletons
            .get("ruler")
            .and_then(|holder| status.members.get(holder))
        {
            break address.clone();
        }
        if std::time::Instant::now() >= deadline {
            return ApiError::Unavailable(
                "no node of the cluster holds the ruler just now (one takes it within 15 s); retry"
                    .into(),
            )
            .into_response();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let method = request.method().as_str().to_owned();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let headers = request.headers();
    let header_of = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header_of(header::CONTENT_TYPE);
    // The caller's credentials go along: the ruler's node checks them too.
    let authorization = header_of(header::AUTHORIZATION);
    // Bounded as the handler's own read would be (Alertmanager's POSTs may be large).
    let body = match axum::body::to_bytes(request.into_body(), body_limit).await {
        Ok(body) => body.to_vec(),
        Err(e) => {
            return ApiError::TooLarge(format!(
                "reading the body (at most limits.max_request_body, {body_limit} bytes): {e}"
            ))
            .into_response();
        }
    };
    let forwarded = sextant_cluster::forward(
        &address,
        &method,
        &path,
        content_type.as_deref(),
        authorization.as_deref(),
        body,
    )
    .await;
    match forwarded {
        Ok((status, content_type, body)) => {
            let mut response = (
                axum::http::StatusCode::from_u16(status)
                    .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
                body,
            )
                .into_response();
            if let Some(content_type) = content_type.and_then(|c| c.parse().ok()) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        Err(e) => ApiError::Unavailable(format!(
            "the node holding the ruler ({address}) did not answer: {e}"
        ))
        .into_response(),
    }
}
