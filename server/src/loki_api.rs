//! Loki's query API under `/loki/api/v1/` (and `/loki/loki/api/v1/`, the
//! paths Grafana builds from a base URL ending in `/loki`), answering
//! LogQL over the log store in Loki's shapes, so Grafana's Loki data
//! source (Explore, log panels, log volume, the label browser, Logs
//! Drilldown, live tailing) works unchanged.
//!
//! Errors are Loki's: the message as plain text, 400 for a bad query or
//! parameter.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State, WebSocketUpgrade, ws};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use sextant_query::logql::ast::{Expr, LogExpr};
use sextant_query::logql::eval::{Engine, Range, Series, Stream, Value};
use sextant_query::logql::parse;
use sextant_query::logql::stages::Labels;

use crate::http::{ApiError, AppState, QueryParams};

/// Lines read to find label sets, fields and values (Loki samples too).
const SAMPLE_LINES: usize = 5_000;
/// Loki's default `limit` of lines.
const DEFAULT_LIMIT: usize = 100;
/// The most lines one query returns.
const MAX_LIMIT: usize = 50_000;
/// How often a live tail looks for new lines.
const TAIL_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// An error in Loki's shape: the message as plain text.
#[derive(Debug)]
pub struct LokiError(StatusCode, String);

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

impl From<ApiError> for LokiError {
    fn from(err: ApiError) -> Self {
        let response = err.into_response();
        let status = response.status();
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => "Sextant is starting or busy; retry".to_owned(),
            _ => status.canonical_reason().unwrap_or("error").to_owned(),
        };
        Self(status, message)
    }
}

impl From<sextant_query::Error> for LokiError {
    fn from(err: sextant_query::Error) -> Self {
        use sextant_query::Error as E;
        let status = match &err {
            E::Parse(_) | E::BadSelector { .. } | E::BadTime { .. } => StatusCode::BAD_REQUEST,
            E::Execution(_) | E::TooManySamples(_) => StatusCode::BAD_REQUEST,
            E::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            E::Storage(sextant_storage::Error::BadQuery(_)) => StatusCode::BAD_REQUEST,
            E::Storage(e) if e.is_remote_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            E::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match err {
            // LogQL's parse errors carry their own "parse error at ...".
            E::Parse(message) | E::Execution(message) => message,
            other => other.to_string(),
        };
        Self(status, message)
    }
}

fn bad(message: impl Into<String>) -> LokiError {
    LokiError(StatusCode::BAD_REQUEST, message.into())
}

type Answer = Result<Response, LokiError>;

fn json_answer(body: Json) -> Answer {
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// Parameters from the query string and, for a POST, a form body.
fn params(uri: &Uri, body: &[u8]) -> QueryParams {
    let mut params = QueryParams::of(uri);
    if !body.is_empty() {
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    params
}

/// A Loki time: nanoseconds (or seconds when ten digits or fewer), float
/// seconds, or RFC 3339.
fn loki_time(name: &str, value: &str) -> Result<i64, LokiError> {
    let wrong = || {
        bad(format!(
            "invalid {name} {value:?}: expected nanoseconds, seconds or RFC 3339"
        ))
    };
    if value.contains(['.', 'e', 'E']) && !value.contains(['-', ':']) {
        let seconds: f64 = value.parse().map_err(|_| wrong())?;
        if !seconds.is_finite() || seconds.abs() > 9.0e9 {
            return Err(wrong());
        }
        return Ok((seconds * 1e9) as i64);
    }
    if let Ok(n) = value.parse::<i64>() {
        return Ok(if value.trim_start_matches('-').len() <= 10 {
            n.saturating_mul(1_000_000_000)
        } else {
            n
        });
    }
    sextant_model::time::parse_rfc3339_micros(value)
        .map(|us| us.saturating_mul(1000))
        .ok_or_else(wrong)
}

/// A Loki duration: Prometheus's (`5m`, `1h30m`) or float seconds, in ns.
fn loki_duration(name: &str, value: &str) -> Result<i64, LokiError> {
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds.abs() < 1e12
    {
        return Ok((seconds * 1e9) as i64);
    }
    value
        .parse::<sextant_model::PromDuration>()
        .map(|d| i64::try_from(d.as_std().as_nanos()).unwrap_or(i64::MAX))
        .map_err(|_| {
            bad(format!(
                "invalid {name} {value:?}: expected a duration like 5m or seconds"
            ))
        })
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// `start`/`end` (or `since`), defaulting to the last hour.
fn time_range(params: &QueryParams) -> Result<(i64, i64), LokiError> {
    let end = match params.get("end") {
        Some(v) => loki_time("end", v)?,
        None => now_ns(),
    };
    let start = match (params.get("start"), params.get("since")) {
        (Some(v), _) => loki_time("start", v)?,
        (None, Some(since)) => end.saturating_sub(loki_duration("since", since)?),
        (None, None) => end.saturating_sub(3_600_000_000_000),
    };
    if end < start {
        return Err(bad(
            "the query time range is invalid: end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

fn limit(params: &QueryParams) -> Result<usize, LokiError> {
    match params.get("limit") {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.min(MAX_LIMIT))
            .map_err(|_| bad(format!("invalid limit {v:?}: expected a whole number"))),
    }
}

fn forward(params: &QueryParams) -> Result<bool, LokiError> {
    match params
        .get("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("backward") => Ok(false),
        Some("forward") => Ok(true),
        Some(other) => Err(bad(format!(
            "invalid direction {other:?}: expected forward or backward"
        ))),
    }
}

fn engine(state: &AppState) -> Result<Engine, LokiError> {
    let reader = state.stores()?.logs_reader.clone();
    Ok(Engine::new(reader, (*state.logql).clone()))
}

/// Runs LogQL work on the query pool (its threads have the query stack)
/// within the query timeout.
async fn on_pool<T: Send + 'static>(
    state: &AppState,
    params: &QueryParams,
    work: impl FnOnce() -> Result<T, LokiError> + Send + 'static,
) -> Result<T, LokiError> {
    let deadline = crate::query_api::deadline_of(state, params.pairs())?;
    let out = crate::query_api::with_deadline(state, deadline, move || Ok(work())).await?;
    state.metrics.queries.inc();
    if out.is_err() {
        state.metrics.query_failures.inc();
    }
    out
}

fn parse_query(params: &QueryParams) -> Result<Expr, LokiError> {
    let text = params
        .get("query")
        .ok_or_else(|| bad("the query parameter is missing: give query=<LogQL>"))?;
    Ok(parse::parse(text)?)
}

/// Lines or numbers as Loki answers `query_range` and `query`.
fn result_json(value: &Value, started: Instant) -> Json {
    let (kind, result, entries) = match value {
        Value::Streams(streams) => (
            "streams",
            Json::Array(streams.iter().map(stream_json).collect()),
            streams.iter().map(|s| s.entries.len()).sum(),
        ),
        Value::Matrix(series) => (
            "matrix",
            Json::Array(series.iter().map(series_json).collect()),
            0,
        ),
        Value::Vector(t, samples) => (
            "vector",
            Json::Array(
                samples
                    .iter()
                    .map(
                        |(labels, v)| json!({"metric": labels, "value": [seconds(*t), number(*v)]}),
                    )
                    .collect(),
            ),
            0,
        ),
        Value::Scalar(t, v) => ("scalar", json!([seconds(*t), number(*v)]), 0),
    };
    let exec = started.elapsed().as_secs_f64();
    json!({
        "status": "success",
        "data": {
            "resultType": kind,
            "result": result,
            "stats": {
                "summary": {
                    "execTime": exec,
                    "queueTime": 0,
                    "subqueries": 0,
                    "totalEntriesReturned": entries,
                    "bytesProcessedPerSecond": 0,
                    "linesProcessedPerSecond": 0,
                    "totalBytesProcessed": 0,
                    "totalLinesProcessed": 0,
                }
            }
        }
    })
}

fn stream_json(stream: &Stream) -> Json {
    json!({
        "stream": stream.labels,
        "values": stream
            .entries
            .iter()
            .map(|(t, line)| json!([t.to_string(), line]))
            .collect::<Vec<_>>(),
    })
}

fn series_json(series: &Series) -> Json {
    json!({
        "metric": series.labels,
        "values": series
            .points
            .iter()
            .map(|(t, v)| json!([seconds(*t), number(*v)]))
            .collect::<Vec<_>>(),
    })
}

/// Seconds with millisecond precision, as a JSON number.
fn seconds(ns: i64) -> Json {
    let ms = ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn number(v: f64) -> String {
    let mut out = String::new();
    sextant_query::promql::write_sample_value(&mut out, v);
    out
}

/// Loki's default step: the range over 250 points, at least a second.
fn default_step(start: i64, end: i64) -> i64 {
    (((end - start) / 250) / 1_000_000_000).max(1) * 1_000_000_000
}

/// `GET|POST /loki/api/v1/query_range`.
pub async fn query_range(
    State(state): State<AppState>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Answer {
    let params = params(&uri, &body);
    let expr = parse_query(&params)?;
    let (start, end) = time_range(&params)?;
    let step = match params.get("step") {
        Some(v) => loki_duration("step", v)?,
        None => default_step(start, end),
    };
    if step <= 0 {
        return Err(bad(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let range = Range {
        start_ns: start,
        end_ns: end,
        step_ns: step,
        limit: limit(&params)?,
        forward: forward(&params)?,
    };
    let engine = engine(&state)?;
    let started = Instant::now();
    let value = on_pool(&state, &params, move || Ok(engine.eval(&expr, range)?)).await?;
    json_answer(result_json(&value, started))
}

/// `GET|POST /loki/api/v1/query`: a metric query at one time.
pub async fn query(State(state): State<AppState>, uri: Uri, body: axum::body::Bytes) -> Answer {
    let params = params(&uri, &body);
    let expr = parse_query(&params)?;
    let time = match params.get("time") {
        Some(v) => loki_time("time", v)?,
        None => now_ns(),
    };
    let range = Range {
        start_ns: time,
        end_ns: time,
        step_ns: 0,
        limit: limit(&params)?,
        forward: forward(&params)?,
    };
    let engine = engine(&state)?;
    let started = Instant::now();
    let value = on_pool(&state, &params, move || Ok(engine.eval(&expr, range)?)).await?;
    json_answer(result_json(&value, started))
}

/// The log query of `query=` (or `match[]`), when given.
fn selector_param(params: &QueryParams, name: &str) -> Result<Option<LogExpr>, LokiError> {
    params
        .get(name)
        .map(|text| parse::parse_log_selector(text).map_err(LokiError::from))
        .transpose()
}

/// Everything, for calls without a selector.
fn any_stream() -> LogExpr {
    parse::parse_log_selector(r#"{service_name=~".+"}"#).expect("a valid selector")
}

/// Label sets of the streams in range: the stream labels only (no
/// pipeline labels), sampled from the newest lines.
async fn stream_sets(
    state: &AppState,
    params: &QueryParams,
    selector: Option<LogExpr>,
) -> Result<BTreeMap<Labels, (u64, u64)>, LokiError> {
    let (start, end) = time_range(params)?;
    let engine = engine(state)?;
    let log = selector.unwrap_or_else(any_stream);
    on_pool(state, params, move || {
        Ok(engine.stream_sets(&log, start, end, SAMPLE_LINES)?)
    })
    .await
}

/// `GET|POST /loki/api/v1/labels` (optional `query=`).
pub async fn labels(State(state): State<AppState>, uri: Uri, body: axum::body::Bytes) -> Answer {
    let params = params(&uri, &body);
    let selector = selector_param(&params, "query")?;
    let sets = stream_sets(&state, &params, selector).await?;
    let names: BTreeSet<&String> = sets.keys().flat_map(|l| l.keys()).collect();
    json_answer(json!({"status": "success", "data": names}))
}

/// `GET /loki/api/v1/label/{name}/values` (optional `query=`).
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Answer {
    let params = params(&uri, &body);
    let selector = selector_param(&params, "query")?;
    let sets = stream_sets(&state, &params, selector).await?;
    let values: BTreeSet<&String> = sets.keys().filter_map(|l| l.get(&name)).collect();
    json_answer(json!({"status": "success", "data": values}))
}

/// `GET|POST /loki/api/v1/series?match[]=`.
pub async fn series(State(state): State<AppState>, uri: Uri, body: axum::body::Bytes) -> Answer {
    let params = params(&uri, &body);
    let selectors: Vec<LogExpr> = params
        .all("match[]")
        .chain(params.all("match"))
        .map(|m| parse::parse_log_selector(m).map_err(LokiError::from))
        .collect::<Result<_, _>>()?;
    let mut found: BTreeSet<Labels> = BTreeSet::new();
    if selectors.is_empty() {
        found.extend(stream_sets(&state, &params, None).await?.into_keys());
    }
    for selector in selectors {
        found.extend(
            stream_sets(&state, &params, Some(selector))
                .await?
                .into_keys(),
        );
    }
    json_answer(json!({"status": "success", "data": found}))
}

/// `GET|POST /loki/api/v1/index/stats?query=`: streams, lines and bytes.
pub async fn index_stats(
    State(state): State<AppState>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Answer {
    let params = params(&uri, &body);
    let selector = selector_param(&params, "query")?;
    let sets = stream_sets(&state, &params, selector).await?;
    let (entries, bytes) = sets
        .values()
        .fold((0, 0), |(e, b), (n, size)| (e + n, b + size));
    json_answer(json!({
        "streams": sets.len(),
        "chunks": sets.len(),
        "entries": entries,
        "bytes": bytes,
    }))
}

/// The labels a volume is grouped by: `targetLabels`, else the names the
/// selector matches on.
fn volume_labels(params: &QueryParams, selector: &LogExpr) -> Vec<String> {
    match params.get("targetLabels") {
        Some(labels) => labels
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => {
            let mut names: Vec<String> = selector.selector.iter().map(|m| m.name.clone()).collect();
            names.dedup();
            names
        }
    }
}

fn grouped(labels: &Labels, by: &[String], aggregate_by_series: bool) -> Labels {
    if aggregate_by_series {
        return labels.clone();
    }
    by.iter()
        .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.clone())))
        .collect()
}

/// `GET|POST /loki/api/v1/index/volume`: bytes per label set, as a vector.
pub async fn volume(State(state): State<AppState>, uri: Uri, body: axum::body::Bytes) -> Answer {
    let params = params(&uri, &body);
    let selector = selector_param(&params, "query")?.unwrap_or_else(any_stream);
    let by = volume_labels(&params, &selector);
    let series = params.get("aggregateBy") == Some("series");
    let limit = limit(&params)?;
    let (_, end) = time_range(&params)?;
    let sets = stream_sets(&state, &params, Some(selector)).await?;
    let mut volumes: BTreeMap<Labels, u64> = BTreeMap::new();
    for (labels, (_, bytes)) in &sets {
        *volumes.entry(grouped(labels, &by, series)).or_default() += bytes;
    }
    let mut ordered: Vec<(Labels, u64)> = volumes.into_iter().collect();
    ordered.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    ordered.truncate(limit);
    let result: Vec<Json> = ordered
        .into_iter()
        .map(
            |(labels, bytes)| json!({"metric": labels, "value": [seconds(end), bytes.to_string()]}),
        )
        .collect();
    json_answer(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
}

/// `GET|POST /loki/api/v1/index/volume_range`: bytes per label set per step.
pub async fn volume_range(
    State(state): State<AppState>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Answer {
    let params = params(&uri, &body);
    let selector = selector_param(&params, "query")?.unwrap_or_else(any_stream);
    let by = volume_labels(&params, &selector);
    let by_series = params.get("aggregateBy") == Some("series");
    let (start, end) = time_range(&params)?;
    let step = match params.get("step") {
        Some(v) => loki_duration("step", v)?,
        None => default_step(start, end),
    }
    .max(1_000_000);
    if (end - start) / step > 11_000 {
        return Err(bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = engine(&state)?;
    let limit = limit(&params)?;
    let volumes = on_pool(&state, &params, move || {
        let mut volumes: BTreeMap<Labels, BTreeMap<i64, u64>> = BTreeMap::new();
        let range = Range {
            start_ns: start,
            end_ns: end,
            step_ns: step,
            limit: SAMPLE_LINES * 4,
            forward: false,
        };
        for stream in engine.streams(&selector, range)? {
            let key = grouped(&stream.labels, &by, by_series);
            let slots = volumes.entry(key).or_default();
            for (t, line) in &stream.entries {
                let slot = start + (t - start).div_euclid(step) * step;
                *slots.entry(slot).or_default() += line.len() as u64;
            }
        }
        Ok(volumes)
    })
    .await?;
    let mut ordered: Vec<(Labels, BTreeMap<i64, u64>)> = volumes.into_iter().collect();
    ordered.sort_by_key(|(_, slots)| std::cmp::Reverse(slots.values().sum::<u64>()));
    ordered.truncate(limit);
    let result: Vec<Json> = ordered
        .into_iter()
        .map(|(labels, slots)| {
            json!({
                "metric": labels,
                "values": slots
                    .into_iter()
                    .map(|(t, bytes)| json!([seconds(t), bytes.to_string()]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json_answer(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
}

/// A field found in sampled lines: its type, distinct values, parsers.
#[derive(Default)]
struct Detected {
    kind: &'static str,
    values: BTreeSet<String>,
    parsers: BTreeSet<&'static str>,
}

fn value_kind(value: &str) -> &'static str {
    if value.parse::<i64>().is_ok() {
        "int"
    } else if value.parse::<f64>().is_ok() {
        "float"
    } else if value == "true" || value == "false" {
        "boolean"
    } else if sextant_query::logql::stages::go_duration(value).is_some() {
        "duration"
    } else if sextant_query::logql::stages::bytes(value).is_some() && value.ends_with(['B', 'b']) {
        "bytes"
    } else {
        "string"
    }
}

/// The fields of sampled lines: what `| json` or `| logfmt` extract.
async fn detect(
    state: &AppState,
    params: &QueryParams,
) -> Result<BTreeMap<String, Detected>, LokiError> {
    let selector = selector_param(params, "query")?.unwrap_or_else(any_stream);
    let (start, end) = time_range(params)?;
    let line_limit = match params.get("line_limit") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| bad(format!("invalid line_limit {v:?}")))?,
        None => 1000,
    }
    .clamp(1, SAMPLE_LINES);
    let engine = engine(state)?;
    on_pool(state, params, move || {
        let range = Range {
            start_ns: start,
            end_ns: end,
            step_ns: 0,
            limit: line_limit,
            forward: false,
        };
        let streams = engine.streams(&selector, range)?;
        let json = parse::parse(r#"{x="y"} | json"#).ok();
        let logfmt = parse::parse(r#"{x="y"} | logfmt"#).ok();
        let pipelines: Vec<(&'static str, sextant_query::logql::stages::Pipeline)> =
            [("json", json), ("logfmt", logfmt)]
                .into_iter()
                .filter_map(|(name, expr)| match expr {
                    Some(Expr::Log(log)) => {
                        sextant_query::logql::stages::Pipeline::new(&log.pipeline)
                            .ok()
                            .map(|p| (name, p))
                    }
                    _ => None,
                })
                .collect();
        let mut fields: BTreeMap<String, Detected> = BTreeMap::new();
        for stream in &streams {
            for (t, line) in &stream.entries {
                for (parser, pipeline) in &pipelines {
                    let mut labels = Labels::new();
                    let mut line = line.clone();
                    if !pipeline.process(*t, &mut line, &mut labels)
                        || labels.contains_key("__error__")
                    {
                        continue;
                    }
                    for (name, value) in labels {
                        let field = fields.entry(name).or_default();
                        let kind = value_kind(&value);
                        field.kind = if field.kind.is_empty() || field.kind == kind {
                            kind
                        } else {
                            "string"
                        };
                        if field.values.len() < 1000 {
                            field.values.insert(value);
                        }
                        field.parsers.insert(parser);
                    }
                }
            }
        }
        Ok(fields)
    })
    .await
}

/// `GET /loki/api/v1/detected_fields`.
pub async fn detected_fields(
    State(state): State<AppState>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Answer {
    let params = params(&uri, &body);
    let fields = detect(&state, &params).await?;
    let limit = params
        .get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1000);
    let list: Vec<Json> = fields
        .iter()
        .take(limit)
        .map(|(name, d)| {
            json!({
                "label": name,
                "type": d.kind,
                "cardinality": d.values.len(),
                "parsers": d.parsers,
            })
        })
        .collect();
    json_answer(json!({"fields": list, "limit": limit}))
}

/// `GET /loki/api/v1/detected_field/{name}/values`.
pub async fn detected_field_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Answer {
    let params = params(&uri, &body);
    let fields = detect(&state, &params).await?;
    let values: Vec<&String> = fields
        .get(&name)
        .map(|d| d.values.iter().collect())
        .unwrap_or_default();
    json_answer(json!({"values": values, "limit": 1000}))
}

/// `GET /loki/api/v1/detected_labels`: stream labels and their cardinality.
pub async fn detected_labels(
    State(state): State<AppState>,
    uri: Uri,
    body: axum::body::Bytes,
) -> Answer {
    let params = params(&uri, &body);
    let selector = selector_param(&params, "query")?;
    let sets = stream_sets(&state, &params, selector).await?;
    let mut values: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for labels in sets.keys() {
        for (name, value) in labels {
            values.entry(name).or_default().insert(value);
        }
    }
    let list: Vec<Json> = values
        .iter()
        .map(|(name, v)| json!({"label": name, "cardinality": v.len()}))
        .collect();
    json_answer(json!({"detectedLabels": list}))
}

/// `GET /loki/api/v1/patterns`: sampled lines grouped by their shape (words
/// holding digits as `<_>`), counted per step.
pub async fn patterns(State(state): State<AppState>, uri: Uri, body: axum::body::Bytes) -> Answer {
    let params = params(&uri, &body);
    let selector = selector_param(&params, "query")?.unwrap_or_else(any_stream);
    let (start, end) = time_range(&params)?;
    let step = match params.get("step") {
        Some(v) => loki_duration("step", v)?,
        None => default_step(start, end),
    }
    .max(1_000_000_000);
    let engine = engine(&state)?;
    let found = on_pool(&state, &params, move || {
        let range = Range {
            start_ns: start,
            end_ns: end,
            step_ns: 0,
            limit: SAMPLE_LINES,
            forward: false,
        };
        let mut patterns: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
        for stream in engine.streams(&selector, range)? {
            for (t, line) in &stream.entries {
                let slot = start + (t - start).div_euclid(step) * step;
                *patterns
                    .entry(pattern_of(line))
                    .or_default()
                    .entry(slot)
                    .or_default() += 1;
            }
        }
        Ok(patterns)
    })
    .await?;
    let mut ordered: Vec<(String, BTreeMap<i64, u64>)> = found.into_iter().collect();
    ordered.sort_by_key(|(_, s)| std::cmp::Reverse(s.values().sum::<u64>()));
    let data: Vec<Json> = ordered
        .into_iter()
        .take(100)
        .map(|(pattern, slots)| {
            json!({
                "pattern": pattern,
                "samples": slots
                    .into_iter()
                    .map(|(t, n)| json!([t.div_euclid(1_000_000_000), n]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json_answer(json!({"status": "success", "data": data}))
}

/// A line's shape: words that hold digits (ids, numbers, times) as `<_>`,
/// runs of them as one.
pub fn pattern_of(line: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for word in line.split_whitespace().take(200) {
        let variable = word.chars().any(|c| c.is_ascii_digit());
        let token = if variable { "<_>" } else { word };
        if !(variable && out.last() == Some(&"<_>")) {
            out.push(token);
        }
    }
    out.join(" ")
}

/// `GET /loki/api/v1/tail` over WebSocket: the lines since `start` (at
/// most `limit`), then new ones as they come, as
/// `{"streams": [...], "dropped_entries": null}` messages.
pub async fn tail(
    State(state): State<AppState>,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection>,
) -> Answer {
    let params = params(&uri, &[]);
    // The query is checked first, so a bad one is named even to a client
    // that did not ask for a WebSocket.
    let Expr::Log(log) = parse_query(&params)? else {
        return Err(bad("tail requires a log query, not a metric query"));
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let limit = limit(&params)?;
    let start = match params.get("start") {
        Some(v) => loki_time("start", v)?,
        None => now_ns() - 3_600_000_000_000,
    };
    let engine = Arc::new(engine(&state)?);
    // Where the live part starts, and the history before it, now: a bad
    // query is a 400 rather than a closed socket.
    let history = {
        let (engine, log) = (engine.clone(), log.clone());
        tokio::task::spawn_blocking(move || {
            let after = engine.tail_start();
            let range = Range {
                start_ns: start,
                end_ns: now_ns() + 1,
                step_ns: 0,
                limit,
                forward: false,
            };
            engine.streams(&log, range).map(|s| (s, after))
        })
        .await
        .map_err(|e| {
            LokiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("tail failed: {e}"),
            )
        })??
    };
    Ok(upgrade.on_upgrade(move |socket| follow(socket, engine, log, history, limit)))
}

async fn follow(
    mut socket: ws::WebSocket,
    engine: Arc<Engine>,
    log: LogExpr,
    (history, mut after): (Vec<Stream>, u64),
    limit: usize,
) {
    let mut history = history;
    for stream in &mut history {
        stream.entries.sort_by_key(|(t, _)| *t);
    }
    if !history.is_empty() && !send(&mut socket, &history).await {
        return;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(ws::Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
            () = tokio::time::sleep(TAIL_POLL) => {}
        }
        let (engine, log) = (engine.clone(), log.clone());
        let polled =
            tokio::task::spawn_blocking(move || engine.tail(&log, after, limit.max(100))).await;
        let Ok(Ok((streams, next))) = polled else {
            continue;
        };
        after = next;
        if !streams.is_empty() && !send(&mut socket, &streams).await {
            return;
        }
    }
}

async fn send(socket: &mut ws::WebSocket, streams: &[Stream]) -> bool {
    let message = json!({
        "streams": streams.iter().map(stream_json).collect::<Vec<_>>(),
        "dropped_entries": null,
    });
    socket
        .send(ws::Message::Text(message.to_string().into()))
        .await
        .is_ok()
}

/// `GET /loki/api/v1/status/buildinfo` (Grafana reads the version).
pub async fn buildinfo() -> Answer {
    json_answer(json!({
        "version": "3.0.0",
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "sextant",
        "buildUser": "sextant",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// The routes, under `prefix` (`/loki/api/v1` and `/loki/loki/api/v1`).
pub fn routes(router: axum::Router<AppState>, prefix: &str) -> axum::Router<AppState> {
    use axum::routing::get;
    router
        .route(
            &format!("{prefix}/query_range"),
            get(query_range).post(query_range),
        )
        .route(&format!("{prefix}/query"), get(query).post(query))
        .route(&format!("{prefix}/labels"), get(labels).post(labels))
        .route(&format!("{prefix}/label"), get(labels).post(labels))
        .route(
            &format!("{prefix}/label/{{name}}/values"),
            get(label_values).post(label_values),
        )
        .route(&format!("{prefix}/series"), get(series).post(series))
        .route(
            &format!("{prefix}/index/stats"),
            get(index_stats).post(index_stats),
        )
        .route(&format!("{prefix}/index/volume"), get(volume).post(volume))
        .route(
            &format!("{prefix}/index/volume_range"),
            get(volume_range).post(volume_range),
        )
        .route(&format!("{prefix}/detected_fields"), get(detected_fields))
        .route(
            &format!("{prefix}/detected_field/{{name}}/values"),
            get(detected_field_values),
        )
        .route(&format!("{prefix}/detected_labels"), get(detected_labels))
        .route(&format!("{prefix}/patterns"), get(patterns))
        .route(&format!("{prefix}/tail"), get(tail))
        .route(&format!("{prefix}/status/buildinfo"), get(buildinfo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_times_read_as_loki_reads_them() {
        assert_eq!(
            loki_time("t", "1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            loki_time("t", "1700000000123456789").unwrap(),
            1_700_000_000_123_456_789
        );
        assert_eq!(
            loki_time("t", "1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            loki_time("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        let err = loki_time("start", "yesterday").err().unwrap();
        assert!(err.1.contains("invalid start \"yesterday\""), "{}", err.1);
    }

    #[test]
    fn patterns_hide_what_varies() {
        assert_eq!(
            pattern_of("order 17 placed in 12ms by user-42"),
            "order <_> placed in <_> by <_>"
        );
        assert_eq!(pattern_of("GET /a 200 12 ms"), "GET /a <_> ms");
    }
}
