//! Cluster mode's HTTP: `/api/v1/status/cluster` (what this node sees of
//! the cluster) and `/internal/v1/metrics/read`, where other nodes read the
//! partitions this node owns.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::{ApiError, AppState};

/// `GET /api/v1/status/cluster`: members, partition owners and what this
/// node holds; `{"mode": "single"}` without a `cluster:` section.
pub async fn status(State(state): State<AppState>) -> Response {
    let data = match state.cluster.get() {
        Some(metrics) => {
            let status = metrics.cluster().status();
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
    let Some(metrics) = state.cluster.get().cloned() else {
        return Err(ApiError::NotFound(
            "this node is not in a cluster (no cluster: section)".into(),
        ));
    };
    let request: sextant_cluster::ReadRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadData(format!("a cluster read request: {e}")))?;
    let answer = tokio::task::spawn_blocking(move || metrics.read_local(&request))
        .await
        .map_err(|e| ApiError::Internal(format!("a cluster read panicked: {e}")))?
        .map_err(ApiError::BadData)?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response())
}
