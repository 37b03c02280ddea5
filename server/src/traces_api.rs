//! The Jaeger query API under `/jaeger` (what Grafana's Jaeger data source
//! and the Jaeger UI call) and the correlation view `/api/v1/correlate/{id}`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sextant_model::LogRecord;
use sextant_query::traces::{correlation, jaeger_trace, parse_go_duration};
use sextant_storage::spans::TraceQuery;

use crate::http::{AppState, QueryParams};

/// Traces a search returns unless asked otherwise (Jaeger UI's default).
const DEFAULT_LIMIT: usize = 20;
/// The most traces one search returns.
const MAX_LIMIT: usize = 1500;
/// What the correlation view gathers at most, of logs and of spans.
const CORRELATE_LIMIT: usize = 10_000;
/// Traces the correlation view follows at most.
const CORRELATE_TRACES: usize = 20;

/// Jaeger's envelope around `data`.
fn envelope(data: Value, warnings: Vec<String>) -> Response {
    let total = data.as_array().map_or(0, Vec::len);
    let mut body = json!({
        "data": data,
        "total": total,
        "limit": 0,
        "offset": 0,
        "errors": null,
    });
    // A partial answer (cluster mode) says what it lacks; Jaeger's own
    // clients ignore the extra key.
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    axum::Json(body).into_response()
}

/// Jaeger's error envelope.
fn jaeger_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({
            "data": null,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": message.into() }],
        })),
    )
        .into_response()
}

/// A request Jaeger's envelope refuses.
#[derive(Debug)]
struct JaegerError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        jaeger_error(self.status, self.message)
    }
}

fn bad_request(message: impl Into<String>) -> JaegerError {
    JaegerError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

fn unavailable(err: impl std::fmt::Display) -> JaegerError {
    JaegerError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: err.to_string(),
    }
}

fn storage_failed(err: impl std::fmt::Display) -> JaegerError {
    JaegerError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: err.to_string(),
    }
}

fn now_us() -> i64 {
    sextant_ingest::logstash::now_us()
}

/// Runs a blocking read of the span store; its answer comes with what the
/// read noted as missing ([`sextant_storage::partial`]).
async fn read_spans<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&dyn sextant_storage::SpanReader) -> sextant_storage::Result<T> + Send + 'static,
) -> Result<(T, Vec<String>), JaegerError> {
    let reader = state
        .stores()
        .map_err(|_| unavailable("Sextant is starting: the span store is being opened"))?
        .spans_reader
        .clone();
    let (read, warnings) =
        tokio::task::spawn_blocking(move || sextant_storage::partial::noting(|| read(&*reader)))
            .await
            .map_err(storage_failed)?;
    Ok((read.map_err(storage_failed)?, warnings))
}

/// `GET /jaeger/api/services`.
pub async fn services(State(state): State<AppState>) -> Response {
    match read_spans(&state, |r| r.services(i64::MIN, i64::MAX)).await {
        Ok((services, warnings)) => envelope(json!(services), warnings),
        Err(err) => err.into_response(),
    }
}

/// `GET /jaeger/api/services/{service}/operations`: operation names.
pub async fn service_operations(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Response {
    match read_spans(&state, move |r| r.operations(&service, i64::MIN, i64::MAX)).await {
        Ok((operations, warnings)) => {
            let mut names: Vec<String> = operations.into_iter().map(|(name, _)| name).collect();
            names.dedup();
            envelope(json!(names), warnings)
        }
        Err(err) => err.into_response(),
    }
}

/// `GET /jaeger/api/operations?service=&spanKind=`: `{name, spanKind}`.
pub async fn operations(State(state): State<AppState>, uri: Uri) -> Response {
    let params = QueryParams::of(&uri);
    let get = |name: &str| params.get(name).map(str::to_owned);
    let Some(service) = get("service") else {
        return bad_request("parameter 'service' is required").into_response();
    };
    let kind = get("spanKind");
    match read_spans(&state, move |r| r.operations(&service, i64::MIN, i64::MAX)).await {
        Ok((operations, warnings)) => {
            let list: Vec<Value> = operations
                .into_iter()
                .filter(|(_, k)| kind.as_deref().is_none_or(|want| want == k.as_str()))
                .map(|(name, k)| json!({ "name": name, "spanKind": k.as_str() }))
                .collect();
            envelope(json!(list), warnings)
        }
        Err(err) => err.into_response(),
    }
}

/// A `start`/`end` parameter: Jaeger sends microseconds since the epoch.
fn micros(text: &str, name: &str) -> Result<i64, JaegerError> {
    text.parse::<i64>().map_err(|_| {
        bad_request(format!(
            "parameter '{name}' must be microseconds since the epoch, found {text:?}"
        ))
    })
}

/// The trace search of a `/api/traces` request.
fn trace_query(uri: &Uri) -> Result<(TraceQuery, Vec<String>), JaegerError> {
    let params = QueryParams::of(uri);
    let get = |name: &str| params.get(name);
    let bad = bad_request;
    let end_us = match get("end") {
        Some(text) => micros(text, "end")?,
        None => now_us() + 1,
    };
    let start_us = match (get("start"), get("lookback")) {
        (Some(text), _) => micros(text, "start")?,
        (None, Some(lookback)) if lookback != "custom" => {
            end_us
                - parse_go_duration(lookback).ok_or_else(|| {
                    bad(format!(
                        "parameter 'lookback' is not a duration: {lookback:?}"
                    ))
                })?
        }
        _ => end_us - 2 * 24 * 3600 * 1_000_000,
    };
    let duration = |name: &str| -> Result<Option<i64>, JaegerError> {
        get(name)
            .map(|text| {
                parse_go_duration(text).ok_or_else(|| {
                    bad(format!(
                        "parameter '{name}' is not a duration such as 100ms or 1.5s: {text:?}"
                    ))
                })
            })
            .transpose()
    };
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n.min(MAX_LIMIT))
            .ok_or_else(|| {
                bad(format!(
                    "parameter 'limit' must be a positive number, found {text:?}"
                ))
            })?,
    };
    let mut tags = Vec::new();
    if let Some(text) = get("tags") {
        let object: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "parameter 'tags' must be a JSON object of strings: {e}"
            ))
        })?;
        for (key, value) in object {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            tags.push((key, value));
        }
    }
    for value in params.all("tag") {
        let (key, value) = value.split_once(':').ok_or_else(|| {
            bad(format!(
                "parameter 'tag' must be key:value, found {value:?}"
            ))
        })?;
        tags.push((key.to_owned(), value.to_owned()));
    }
    let trace_ids: Vec<String> = params.all("traceID").map(str::to_ascii_lowercase).collect();
    let query = TraceQuery {
        service: get("service").map(str::to_owned),
        operation: get("operation")
            .filter(|op| *op != "all")
            .map(str::to_owned),
        tags,
        min_duration_us: duration("minDuration")?,
        max_duration_us: duration("maxDuration")?,
        start_us,
        end_us,
        limit,
    };
    if query.service.is_none() && trace_ids.is_empty() {
        return Err(bad("parameter 'service' is required".to_owned()));
    }
    Ok((query, trace_ids))
}

/// `GET /jaeger/api/traces?service=&operation=&tags=&tag=&minDuration=&maxDuration=&start=&end=&lookback=&limit=&traceID=`.
pub async fn find_traces(State(state): State<AppState>, uri: Uri) -> Response {
    let (query, trace_ids) = match trace_query(&uri) {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let traces = read_spans(&state, move |r| {
        let ids = if trace_ids.is_empty() {
            r.find_trace_ids(&query)?
        } else {
            trace_ids
        };
        let mut traces = Vec::new();
        for id in ids {
            let spans = r.trace(&id)?;
            if !spans.is_empty() {
                traces.push(spans);
            }
        }
        Ok(traces)
    })
    .await;
    match traces {
        Ok((traces, warnings)) => envelope(
            Value::Array(traces.iter().map(|t| jaeger_trace(t)).collect()),
            warnings,
        ),
        Err(err) => err.into_response(),
    }
}

/// `GET /jaeger/api/traces/{traceID}`: 404 when no span of it is stored.
pub async fn trace(State(state): State<AppState>, Path(trace_id): Path<String>) -> Response {
    let id = trace_id.to_ascii_lowercase();
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad_request(format!(
            "trace id must be up to 32 hex digits, found {trace_id:?}"
        ))
        .into_response();
    }
    // Jaeger accepts ids without their leading zeros.
    let id = format!("{id:0>32}");
    match read_spans(&state, move |r| r.trace(&id)).await {
        // Not found where the trace would be, because nobody answered
        // for that partition just now: not a 404.
        Ok((spans, warnings)) if spans.is_empty() && !warnings.is_empty() => {
            jaeger_error(StatusCode::SERVICE_UNAVAILABLE, warnings.join("; "))
        }
        Ok((spans, _)) if spans.is_empty() => {
            jaeger_error(StatusCode::NOT_FOUND, "trace not found")
        }
        Ok((spans, warnings)) => envelope(json!([jaeger_trace(&spans)]), warnings),
        Err(err) => err.into_response(),
    }
}

/// `GET /jaeger/api/dependencies?endTs=&lookback=` (milliseconds).
pub async fn dependencies(State(state): State<AppState>, uri: Uri) -> Response {
    let params = QueryParams::of(&uri);
    let get = |name: &str| params.get(name).map(str::to_owned);
    let number = |name: &str, default: i64| -> Result<i64, JaegerError> {
        match get(name) {
            None => Ok(default),
            Some(text) => text.parse::<i64>().map_err(|_| {
                bad_request(format!(
                    "parameter '{name}' must be milliseconds, found {text:?}"
                ))
            }),
        }
    };
    let end_ms = match number("endTs", now_us() / 1000) {
        Ok(v) => v,
        Err(err) => return err.into_response(),
    };
    let lookback_ms = match number("lookback", 24 * 3600 * 1000) {
        Ok(v) => v,
        Err(err) => return err.into_response(),
    };
    let (start_us, end_us) = ((end_ms - lookback_ms) * 1000, end_ms * 1000 + 1);
    match read_spans(&state, move |r| r.dependencies(start_us, end_us)).await {
        Ok((edges, warnings)) => envelope(
            Value::Array(
                edges
                    .into_iter()
                    .map(|(parent, child, calls)| {
                        json!({ "parent": parent, "child": child, "callCount": calls })
                    })
                    .collect(),
            ),
            warnings,
        ),
        Err(err) => err.into_response(),
    }
}

/// `GET /api/v1/correlate/{id}?start=&end=`: every log and span carrying
/// the id (as trace id, span id or correlation field), the whole traces
/// those spans belong to, and the logs of those traces, on one timeline.
pub async fn correlate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let params = QueryParams::of(&uri);
    let time = |name: &str, default: i64| -> Result<i64, String> {
        match params.get(name) {
            None => Ok(default),
            Some(text) => sextant_query::parse_time(name, text)
                .map(|ms| ms.saturating_mul(1000))
                .map_err(|e| e.to_string()),
        }
    };
    let (start_us, end_us) = match (time("start", i64::MIN), time("end", i64::MAX)) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": e }))).into_response();
        }
    };
    let id = id.trim().to_owned();
    if id.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "the id to correlate is empty" })),
        )
            .into_response();
    }
    let stores = match state.stores() {
        Ok(stores) => stores.clone(),
        Err(_) => {
            return unavailable("Sextant is starting: the stores are being opened").into_response();
        }
    };
    let lookup_id = id.clone();
    let gathered = tokio::task::spawn_blocking(move || {
        let _stale = sextant_storage::partial::take();
        let logs_reader = stores.logs_reader.clone();
        let spans_reader = stores.spans_reader.clone();
        let id = lookup_id;
        // An id in hex is stored in lowercase.
        let mut ids = vec![id.clone()];
        if id.bytes().all(|b| b.is_ascii_hexdigit()) && id != id.to_ascii_lowercase() {
            ids.push(id.to_ascii_lowercase());
        }
        let mut logs: Vec<LogRecord> = Vec::new();
        let mut spans = Vec::new();
        for id in &ids {
            logs.extend(
                logs_reader
                    .correlated_logs(id, start_us, end_us, CORRELATE_LIMIT)?
                    .hits,
            );
            spans.extend(spans_reader.correlated_spans(id, start_us, end_us, CORRELATE_LIMIT)?);
        }
        // Whole traces, and the logs that carry their trace ids.
        let mut trace_ids: Vec<String> = spans.iter().map(|s| s.trace_id.clone()).collect();
        for log in &logs {
            if let Some(sextant_model::FieldValue::Str(t)) = log.fields.get("trace_id") {
                trace_ids.push(t.clone());
            }
        }
        trace_ids.sort();
        trace_ids.dedup();
        trace_ids.truncate(CORRELATE_TRACES);
        for trace_id in &trace_ids {
            spans.extend(spans_reader.trace(trace_id)?);
            if !ids.contains(trace_id) {
                logs.extend(
                    logs_reader
                        .correlated_logs(trace_id, start_us, end_us, CORRELATE_LIMIT)?
                        .hits,
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        spans.retain(|s| seen.insert((s.trace_id.clone(), s.span_id.clone())));
        let mut seen = std::collections::HashSet::new();
        logs.retain(|l| {
            seen.insert((
                l.timestamp_us,
                l.service.clone(),
                l.message.clone(),
                format!("{:?}", l.fields),
            ))
        });
        Ok::<_, sextant_storage::Error>((logs, spans, sextant_storage::partial::take()))
    })
    .await;
    match gathered {
        Ok(Ok((logs, spans, warnings))) => {
            let mut body = correlation(&id, logs, spans);
            if !warnings.is_empty() {
                body["warnings"] = json!(warnings);
            }
            axum::Json(body).into_response()
        }
        Ok(Err(err)) => storage_failed(err).into_response(),
        Err(err) => storage_failed(err).into_response(),
    }
}
