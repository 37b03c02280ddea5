//! The log endpoints: `POST /api/v1/logs` (NDJSON, one logstash-style event
//! a line), `GET /api/v1/logs/search` and `GET /api/v1/logs/histogram`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sextant_query::traces::{log_json, timestamp};
use sextant_storage::logs::{HitKey, LogQuery};

use crate::http::{ApiError, AppState, QueryParams};

/// Bad lines named in an error answer; the rest are counted.
const ERRORS_SHOWN: usize = 5;

/// Most hits one search returns.
const MAX_LIMIT: usize = 10_000;

/// `POST /api/v1/logs` (gzip allowed): every valid line is stored; bad lines
/// are named (400) while the valid ones of the same body are kept.
pub async fn ingest(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "" | "identity" => body,
        "gzip" => Bytes::from(state.gunzip(&body)?),
        other => {
            return Err(ApiError::Unsupported(format!(
                "Content-Encoding {other:?} is not supported; send gzip or none"
            )));
        }
    };
    let writer = state.stores()?.logs_writer.clone();
    let normalizer = state.logs.clone();
    let (stored, errors) = tokio::task::spawn_blocking(move || {
        let arrival = sextant_ingest::logstash::now_us();
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for (index, line) in body.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match sextant_ingest::logstash::parse_event(line, &normalizer, arrival) {
                Ok(mut record) => match normalizer.finish(&mut record) {
                    Ok(()) => records.push(record),
                    Err(reason) => errors.push(format!("line {}: {reason}", index + 1)),
                },
                Err(reason) => errors.push(format!("line {}: {reason}", index + 1)),
            }
        }
        writer.append_logs(&records)?;
        Ok::<_, sextant_storage::Error>((records.len(), errors))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("storing logs failed: {e}")))??;
    if errors.is_empty() {
        return Ok((StatusCode::OK, axum::Json(json!({ "stored": stored }))).into_response());
    }
    let mut shown: Vec<String> = errors.iter().take(ERRORS_SHOWN).cloned().collect();
    if errors.len() > ERRORS_SHOWN {
        shown.push(format!(
            "and {} more bad lines",
            errors.len() - ERRORS_SHOWN
        ));
    }
    Err(ApiError::BadIngest(format!(
        "stored {stored} events; {} bad lines: {}",
        errors.len(),
        shown.join("; ")
    )))
}

/// `POST /loki/api/v1/push`: snappy protobuf or JSON (gzip allowed), 204 when stored.
pub async fn loki_push(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let content_type = text(axum::http::header::CONTENT_TYPE);
    let protobuf = content_type.starts_with("application/x-protobuf")
        || content_type.starts_with("application/protobuf");
    if !protobuf && !content_type.starts_with("application/json") {
        return Err(ApiError::Unsupported(format!(
            "Content-Type {content_type:?} is not supported; send application/x-protobuf (snappy) or application/json"
        )));
    }
    let body = match text(axum::http::header::CONTENT_ENCODING).as_str() {
        "" | "identity" | "snappy" => body.to_vec(),
        "gzip" => state.gunzip(&body)?,
        other => {
            return Err(ApiError::Unsupported(format!(
                "Content-Encoding {other:?} is not supported; send gzip or none"
            )));
        }
    };
    let writer = state.stores()?.logs_writer.clone();
    let normalizer = state.logs.clone();
    let max_decompressed = state.limits.max_decompressed_body;
    tokio::task::spawn_blocking(move || {
        let push = sextant_ingest::loki::parse(&body, protobuf, &normalizer, max_decompressed)
            .map_err(ApiError::BadIngest)?;
        writer.append_logs(&push.records)?;
        if push.refused.is_empty() {
            return Ok(());
        }
        // As Loki does: the valid entries are stored, the refused ones named in a 400.
        let mut shown: Vec<String> = push.refused.iter().take(ERRORS_SHOWN).cloned().collect();
        if push.refused.len() > ERRORS_SHOWN {
            shown.push(format!("and {} more", push.refused.len() - ERRORS_SHOWN));
        }
        Err(ApiError::BadIngest(format!(
            "stored {} entries; {} refused: {}",
            push.records.len(),
            push.refused.len(),
            shown.join("; ")
        )))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("storing logs failed: {e}")))??;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The query, time range (default: the last 24 hours), limit and order of a request.
fn log_query(uri: &Uri) -> Result<LogQuery, ApiError> {
    let params = QueryParams::of(uri);
    let get = |name: &str| params.get(name);
    let now_us = sextant_ingest::logstash::now_us();
    let time = |name: &str, default: i64| -> Result<i64, ApiError> {
        match get(name) {
            None => Ok(default),
            Some(text) => sextant_query::parse_time(name, text)
                .map(|ms| ms.saturating_mul(1000))
                .map_err(|e| ApiError::BadIngest(e.to_string())),
        }
    };
    let end_us = time("end", now_us + 1)?;
    let start_us = time("start", end_us - 24 * 3600 * 1_000_000)?;
    if end_us < start_us {
        return Err(ApiError::BadIngest(
            "invalid parameter \"end\": end is before start".to_owned(),
        ));
    }
    let limit = match get("limit") {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadIngest(format!(
                    "invalid parameter \"limit\": {text:?} is not a number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let ascending = match get("order") {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(ApiError::BadIngest(format!(
                "invalid parameter \"order\": {other:?} is not asc or desc"
            )));
        }
    };
    let after = get("cursor")
        .map(|text| {
            parse_cursor(text).ok_or_else(|| {
                ApiError::BadIngest(format!(
                    "invalid parameter \"cursor\": {text:?} is not a cursor from a previous page's next_cursor"
                ))
            })
        })
        .transpose()?;
    Ok(LogQuery {
        text: get("q").unwrap_or_default().to_owned(),
        start_us,
        end_us,
        limit,
        ascending,
        after,
    })
}

/// A page boundary as the API hands it out: `<timestamp µs>.<sequence>`.
fn cursor(key: HitKey) -> String {
    format!("{}.{}", key.timestamp_us, key.seq)
}

fn parse_cursor(text: &str) -> Option<HitKey> {
    let (t, seq) = text.split_once('.')?;
    Some(HitKey {
        timestamp_us: t.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

fn query_error(err: sextant_storage::Error) -> ApiError {
    match err {
        sextant_storage::Error::BadQuery(message) => ApiError::BadIngest(message),
        other => other.into(),
    }
}

/// Runs a read of the log store on the blocking pool, answering 503 once
/// `query.timeout` has passed (parsing included); the read then finishes
/// on its own. The answer comes with what the read noted as missing
/// ([`sextant_storage::partial`]).
async fn read_logs<T: Send + 'static>(
    state: &AppState,
    what: &str,
    read: impl FnOnce() -> sextant_storage::Result<T> + Send + 'static,
) -> Result<(T, Vec<String>), ApiError> {
    let timeout = state.query.options.timeout;
    let noted = tokio::task::spawn_blocking(move || sextant_storage::partial::noting(read));
    match tokio::time::timeout(timeout, noted).await {
        Ok(done) => {
            let (read, warnings) =
                done.map_err(|e| ApiError::Internal(format!("{what} failed: {e}")))?;
            Ok((read.map_err(query_error)?, warnings))
        }
        Err(_) => Err(ApiError::Timeout(format!(
            "{what} timed out after {timeout:?} (query.timeout)"
        ))),
    }
}

/// `GET /api/v1/logs/search?q=&start=&end=&limit=&order=desc|asc&cursor=`:
/// a full page carries `next_cursor`, which `cursor=` continues from.
pub async fn search(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let query = log_query(&uri)?;
    let reader = state.stores()?.logs_reader.clone();
    let (found, warnings) = read_logs(&state, "search", move || reader.search_logs(&query)).await?;
    let hits: Vec<Value> = found.hits.iter().map(log_json).collect();
    let mut body = json!({ "total": found.total, "hits": hits });
    if let Some(next) = found.next {
        body["next_cursor"] = cursor(next).into();
    }
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    Ok(axum::Json(body).into_response())
}

/// `GET /api/v1/logs/histogram?q=&start=&end=&step=`: counts per step
/// (default: the range in 100 buckets), buckets aligned to the step.
pub async fn histogram(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let query = log_query(&uri)?;
    let step_us = match QueryParams::of(&uri).get("step") {
        Some(text) => {
            let step = text
                .parse::<f64>()
                .ok()
                .map(|s| s * 1e6)
                .or_else(|| {
                    text.parse::<sextant_model::PromDuration>()
                        .ok()
                        .map(|d| d.as_millis() as f64 * 1e3)
                })
                .filter(|s| s.is_finite() && *s >= 1e3)
                .ok_or_else(|| {
                    ApiError::BadIngest(format!(
                        "invalid parameter \"step\": {text:?} is not a duration of at least 1ms (e.g. 60, 1m)"
                    ))
                })?;
            step as i64
        }
        _ => ((query.end_us - query.start_us) / 100).max(1_000_000),
    };
    if (query.end_us - query.start_us) / step_us > 11_000 {
        return Err(ApiError::BadIngest(
            "exceeded maximum resolution of 11,000 buckets; use a larger step".to_owned(),
        ));
    }
    let reader = state.stores()?.logs_reader.clone();
    let (buckets, warnings) = read_logs(&state, "histogram", move || {
        reader.log_histogram(&query, step_us)
    })
    .await?;
    let buckets: Vec<Value> = buckets
        .into_iter()
        .map(|(t, count)| json!({ "t": timestamp(t), "count": count }))
        .collect();
    let mut body = json!({ "buckets": buckets });
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    Ok(axum::Json(body).into_response())
}

/// Documents `fields` samples, newest first, as Kibana's field list does.
const FIELD_SAMPLE: usize = 500;
/// Values shown per field.
const TOP_VALUES: usize = 5;

/// `GET /api/v1/logs/fields?q=&start=&end=`: the fields of the newest
/// matching records (up to 500) with how many carry each and its top values.
pub async fn fields(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let mut query = log_query(&uri)?;
    query.limit = FIELD_SAMPLE;
    query.ascending = false;
    let reader = state.stores()?.logs_reader.clone();
    let (found, warnings) = read_logs(&state, "fields", move || reader.search_logs(&query)).await?;
    let mut by_field: std::collections::BTreeMap<String, std::collections::HashMap<String, u64>> =
        std::collections::BTreeMap::new();
    for record in &found.hits {
        let builtin = [
            ("service", record.service.clone()),
            ("level", record.level.as_str().to_owned()),
            ("host", record.host.clone()),
        ];
        let values = builtin
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.to_owned(), v))
            .chain(record.fields.iter().map(|(n, v)| (n.clone(), v.to_text())));
        for (name, value) in values {
            *by_field.entry(name).or_default().entry(value).or_default() += 1;
        }
    }
    let fields: Vec<Value> = by_field
        .into_iter()
        .map(|(name, values)| {
            let count: u64 = values.values().sum();
            let mut top: Vec<(String, u64)> = values.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(TOP_VALUES);
            let top: Vec<Value> = top
                .into_iter()
                .map(|(value, count)| json!({ "value": value, "count": count }))
                .collect();
            json!({ "name": name, "count": count, "top": top })
        })
        .collect();
    let mut body = json!({
        "total": found.total,
        "sampled": found.hits.len(),
        "fields": fields,
    });
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    Ok(axum::Json(body).into_response())
}

/// How often the tail looks for new records.
const TAIL_POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Records a tail sends per poll at most; the rest follow at the next.
const TAIL_BATCH: usize = 1000;

/// `GET /api/v1/logs/tail?q=`: server-sent events, one record a `data:`
/// line as the search API shows it, for every matching record stored from
/// now on (whatever time it carries), in time order within each batch; a
/// comment every 15 s keeps proxies from closing an idle stream.
pub async fn tail(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let text = log_query(&uri)?.text;
    let reader = state.stores()?.logs_reader.clone();
    // Validate the query now, so a bad one is a 400 rather than a dead stream.
    let mut after = {
        let (reader, text) = (reader.clone(), text.clone());
        tokio::task::spawn_blocking(move || {
            let start = reader.log_tail_start();
            reader.tail_logs(&text, start, 1).map(|_| start)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("tail failed: {e}")))?
        .map_err(query_error)?
    };
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(16);
    tokio::spawn(async move {
        let mut since_keepalive = std::time::Duration::ZERO;
        loop {
            tokio::time::sleep(TAIL_POLL).await;
            since_keepalive += TAIL_POLL;
            let (reader, text) = (reader.clone(), text.clone());
            let polled =
                tokio::task::spawn_blocking(move || reader.tail_logs(&text, after, TAIL_BATCH))
                    .await;
            let Ok(Ok((found, next))) = polled else {
                continue;
            };
            after = next;
            let mut events = String::new();
            for record in &found {
                events.push_str("data: ");
                events.push_str(&log_json(record).to_string());
                events.push_str("\n\n");
            }
            if events.is_empty() && since_keepalive >= std::time::Duration::from_secs(15) {
                events.push_str(": keep-alive\n\n");
            }
            if !events.is_empty() {
                since_keepalive = std::time::Duration::ZERO;
                if sender.send(Ok(Bytes::from(events))).await.is_err() {
                    return; // the client went away
                }
            }
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    Ok((
        StatusCode::OK,
        [
            (axum::http::header::CONTENT_TYPE, "text/event-stream"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}
