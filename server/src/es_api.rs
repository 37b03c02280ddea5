//! The Elasticsearch face log shippers need: `_bulk` (and `/{index}/_bulk`)
//! into the log store with Elasticsearch's per-item answer, and the
//! handshake around it (`GET /` and `HEAD /` with an 8.x version,
//! `GET /_license`, index templates and ILM policies acknowledged), so
//! Fluent Bit, Fluentd, Logstash and Filebeat outputs work unchanged.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::http::{ApiError, AppState};

/// The Elasticsearch version announced; shippers check the major.
pub const ES_VERSION: &str = "8.11.0";

fn es_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

/// `GET /`: the cluster info shippers read the version from.
pub async fn info() -> Response {
    es_json(
        StatusCode::OK,
        json!({
            "name": "sextant",
            "cluster_name": "sextant",
            "cluster_uuid": "sextant-logs",
            "version": {
                "number": ES_VERSION,
                "build_flavor": "default",
                "build_type": "sextant",
                "lucene_version": "9.8.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }),
    )
}

/// `HEAD /`.
pub async fn info_head() -> Response {
    let mut response = StatusCode::OK.into_response();
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

/// `GET /_license`.
pub async fn license() -> Response {
    es_json(
        StatusCode::OK,
        json!({ "license": { "status": "active", "type": "basic", "uid": "sextant", "issued_to": "sextant" } }),
    )
}

/// Index templates, component templates and ILM policies: acknowledged and
/// not kept (Sextant's logs have one schema and their own retention).
pub async fn acknowledge() -> Response {
    es_json(StatusCode::OK, json!({ "acknowledged": true }))
}

/// `GET` of a template or policy: none exists, so shippers go on to create it.
pub async fn not_found(Path(name): Path<String>) -> Response {
    es_json(
        StatusCode::NOT_FOUND,
        json!({ "error": { "type": "resource_not_found_exception", "reason": format!("{name} does not exist") }, "status": 404 }),
    )
}

/// `POST /_bulk`.
pub async fn bulk(
    state: State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    bulk_into(state, None, &headers, body).await
}

/// `POST /{index}/_bulk`.
pub async fn bulk_index(
    state: State<AppState>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    bulk_into(state, Some(index), &headers, body).await
}

async fn bulk_into(
    State(state): State<AppState>,
    index: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "" | "identity" => body.to_vec(),
        "gzip" => state.gunzip(&body)?,
        other => {
            return Err(ApiError::Unsupported(format!(
                "Content-Encoding {other:?} is not supported; send gzip or none"
            )));
        }
    };
    let writer = state.stores()?.logs_writer.clone();
    let normalizer = state.logs.clone();
    let items = tokio::task::spawn_blocking(move || {
        let arrival = sextant_ingest::logstash::now_us();
        let items = sextant_ingest::bulk::parse(&body, index.as_deref(), &normalizer, arrival);
        let records: Vec<sextant_model::LogRecord> = items
            .iter()
            .filter_map(|item| item.outcome.as_ref().ok().cloned())
            .collect();
        writer.append_logs(&records)?;
        Ok::<_, sextant_storage::Error>(items)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("bulk failed: {e}")))??;
    let errors = items.iter().any(|item| item.outcome.is_err());
    let answers: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            let id = if item.id.is_empty() {
                format!("sextant-{n}")
            } else {
                item.id.clone()
            };
            let answer = match &item.outcome {
                Ok(_) => json!({
                    "_index": item.index, "_id": id, "_version": 1, "result": "created",
                    "_shards": { "total": 1, "successful": 1, "failed": 0 },
                    "_seq_no": n, "_primary_term": 1, "status": 201,
                }),
                Err(error) => json!({
                    "_index": item.index, "_id": id, "status": error.status,
                    "error": { "type": error.kind, "reason": error.reason },
                }),
            };
            json!({ item.action.clone(): answer })
        })
        .collect();
    Ok(es_json(
        StatusCode::OK,
        json!({
            "took": started.elapsed().as_millis() as u64,
            "errors": errors,
            "items": answers,
        }),
    ))
}
