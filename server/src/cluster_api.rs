//! Cluster mode's HTTP: `/api/v1/status/cluster` (what this node sees of
//! the cluster) and `/internal/v1/metrics/read`, where other nodes read the
//! partitions this node owns.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
}
