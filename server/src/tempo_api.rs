//! Tempo's query API, as Grafana's Tempo data source and Traces Drilldown
//! call it: `/api/echo`, `/api/status/buildinfo`, traces by id (protobuf
//! `tempopb.Trace`, wire-identical to OTLP's `TracesData`, or JSON),
//! TraceQL and tag searches, and the tag name and value lists.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use serde_json::{Value, json};
use sextant_ingest::otlp::proto::common::{
    AnyValue, InstrumentationScope, KeyValue, Resource, any_value,
};
use sextant_ingest::otlp::proto::trace::{
    Event, Link, ResourceSpans, ScopeSpans, Span, Status as SpanStatusProto,
};
use sextant_model::{FieldValue, SpanKind, SpanRecord, SpanStatus};
use sextant_query::traceql;
use sextant_storage::spans::TraceQuery;

use crate::http::{AppState, QueryParams};

/// Traces a search returns unless asked otherwise (Tempo's default).
const DEFAULT_LIMIT: usize = 20;
/// The most traces one search returns.
const MAX_LIMIT: usize = 1000;
/// Spans shown per span set unless asked otherwise (Tempo's `spss`).
const DEFAULT_SPSS: usize = 3;
/// Traces read to list tag names and values (the newest of the range).
const TAG_SAMPLE_TRACES: usize = 200;
/// Matching spans read per trace to list tags narrowed by a query.
const TAG_SAMPLE_SPANS: usize = 100;

/// An error as Tempo answers: the message as plain text.
#[derive(Debug)]
pub struct TempoError(StatusCode, String);

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

fn bad(message: impl Into<String>) -> TempoError {
    TempoError(StatusCode::BAD_REQUEST, message.into())
}

impl From<sextant_query::Error> for TempoError {
    fn from(err: sextant_query::Error) -> Self {
        use sextant_query::Error as E;
        match err {
            E::Parse(message) => TempoError(StatusCode::BAD_REQUEST, message),
            E::Execution(message) => TempoError(StatusCode::BAD_REQUEST, message),
            E::Storage(e) if e.is_remote_unavailable() => {
                TempoError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            other => TempoError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

type Answer = Result<Response, TempoError>;

fn json_answer(body: Value) -> Answer {
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

fn now_us() -> i64 {
    sextant_ingest::logstash::now_us()
}

/// Runs a blocking read of the span store on the query pool.
async fn read<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&dyn sextant_storage::SpanReader) -> Result<T, TempoError> + Send + 'static,
) -> Result<T, TempoError> {
    let reader = state
        .stores()
        .map_err(|_| {
            TempoError(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sextant is starting: the span store is being opened".into(),
            )
        })?
        .spans_reader
        .clone();
    let deadline = crate::query_api::deadline_of(state, &[])
        .map_err(|_| TempoError(StatusCode::INTERNAL_SERVER_ERROR, "no deadline".into()))?;
    crate::query_api::with_deadline(state, deadline, move || Ok(work(&*reader)))
        .await
        .map_err(|e| {
            let response = e.into_response();
            TempoError(
                response.status(),
                "the search ran out of time or slots".into(),
            )
        })?
}

/// `GET /api/echo`: Grafana's health check.
pub async fn echo() -> Response {
    (StatusCode::OK, "echo").into_response()
}

/// `GET /api/status/buildinfo`.
pub async fn buildinfo() -> Answer {
    json_answer(json!({
        "version": "2.6.0",
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "sextant",
        "buildUser": "sextant",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// A trace id as 32 lower-case hex digits (leading zeros may be left out).
fn trace_id(text: &str) -> Result<String, TempoError> {
    let id = text.to_ascii_lowercase();
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!(
            "invalid trace id {text:?}: expected up to 32 hex digits"
        )));
    }
    Ok(format!("{id:0>32}"))
}

/// Whether the caller asked for JSON rather than Tempo's default protobuf.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("json") && !accept.contains("protobuf"))
}

async fn trace_spans(
    state: &AppState,
    id: String,
    uri: &Uri,
) -> Result<Vec<SpanRecord>, TempoError> {
    // `start`/`end` (seconds, optional) bound where to look, as Tempo's
    // blocks: a trace with no span starting in them is not found.
    let params = QueryParams::of(uri);
    let start_us = seconds_param(&params, "start")?.unwrap_or(i64::MIN);
    let end_us = seconds_param(&params, "end")?.map_or(i64::MAX, |e| e + 1_000_000);
    if start_us >= end_us {
        return Err(bad("invalid time range: start must be before end"));
    }
    let spans = read(state, move |r| {
        r.trace(&id)
            .map_err(|e| TempoError::from(sextant_query::Error::Storage(e)))
    })
    .await?;
    if !spans
        .iter()
        .any(|s| (start_us..end_us).contains(&s.start_us))
    {
        return Err(TempoError(StatusCode::NOT_FOUND, "trace not found".into()));
    }
    Ok(spans)
}

/// `GET /api/traces/{id}`: `tempopb.Trace` (its `batches` are OTLP's
/// `ResourceSpans`), or `{"batches": [...]}` as JSON.
pub async fn trace_v1(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let spans = trace_spans(&state, trace_id(&id)?, &uri).await?;
    let batches = resource_spans(&spans);
    if wants_json(&headers) {
        return json_answer(json!({
            "batches": batches.iter().map(resource_spans_json).collect::<Vec<_>>()
        }));
    }
    let body = TraceMessage { batches }.encode_to_vec();
    Ok(([(header::CONTENT_TYPE, "application/protobuf")], body).into_response())
}

/// `GET /api/v2/traces/{id}`: `TraceByIDResponse` wrapping the trace.
pub async fn trace_v2(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Answer {
    let spans = trace_spans(&state, trace_id(&id)?, &uri).await?;
    let batches = resource_spans(&spans);
    if wants_json(&headers) {
        return json_answer(json!({
            "trace": {
                "resourceSpans": batches.iter().map(resource_spans_json).collect::<Vec<_>>()
            }
        }));
    }
    let body = TraceByIdMessage {
        trace: Some(TraceMessage { batches }),
    }
    .encode_to_vec();
    Ok(([(header::CONTENT_TYPE, "application/protobuf")], body).into_response())
}

/// `tempopb.Trace`.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceMessage {
    #[prost(message, repeated, tag = "1")]
    batches: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDResponse` (its metrics left out).
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdMessage {
    #[prost(message, optional, tag = "1")]
    trace: Option<TraceMessage>,
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn any_value(value: &FieldValue) -> AnyValue {
    AnyValue {
        value: Some(match value {
            FieldValue::Str(s) => any_value::Value::StringValue(s.clone()),
            FieldValue::Int(i) => any_value::Value::IntValue(*i),
            FieldValue::Float(x) => any_value::Value::DoubleValue(*x),
            FieldValue::Bool(b) => any_value::Value::BoolValue(*b),
        }),
    }
}

fn key_values(map: &BTreeMap<String, FieldValue>) -> Vec<KeyValue> {
    map.iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(any_value(v)),
        })
        .collect()
}

fn kind_number(kind: SpanKind) -> i32 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn status_number(status: SpanStatus) -> i32 {
    match status {
        SpanStatus::Unset => 0,
        SpanStatus::Ok => 1,
        SpanStatus::Error => 2,
    }
}

/// Spans back as OTLP: one `ResourceSpans` per resource, one
/// `ScopeSpans` per instrumentation scope, in the order first seen.
fn resource_spans(spans: &[SpanRecord]) -> Vec<ResourceSpans> {
    let mut out: Vec<(BTreeMap<String, FieldValue>, ResourceSpans)> = Vec::new();
    for span in spans {
        let mut resource = span.resource.clone();
        resource
            .entry("service.name".to_owned())
            .or_insert_with(|| FieldValue::Str(span.service.clone()));
        let at = match out.iter().position(|(r, _)| *r == resource) {
            Some(at) => at,
            None => {
                out.push((
                    resource.clone(),
                    ResourceSpans {
                        resource: Some(Resource {
                            attributes: key_values(&resource),
                        }),
                        scope_spans: Vec::new(),
                    },
                ));
                out.len() - 1
            }
        };
        let batch = &mut out[at].1;
        let scope_at = match batch.scope_spans.iter().position(|s| {
            s.scope
                .as_ref()
                .is_some_and(|s| s.name == span.scope && s.version == span.scope_version)
        }) {
            Some(at) => at,
            None => {
                batch.scope_spans.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: span.scope.clone(),
                        version: span.scope_version.clone(),
                        ..Default::default()
                    }),
                    spans: Vec::new(),
                });
                batch.scope_spans.len() - 1
            }
        };
        let start = u64::try_from(span.start_us.saturating_mul(1000)).unwrap_or(0);
        let end =
            start.saturating_add(u64::try_from(span.duration_us.saturating_mul(1000)).unwrap_or(0));
        batch.scope_spans[scope_at].spans.push(Span {
            trace_id: hex_bytes(&span.trace_id),
            span_id: hex_bytes(&span.span_id),
            trace_state: String::new(),
            parent_span_id: hex_bytes(&span.parent_span_id),
            name: span.operation.clone(),
            kind: kind_number(span.kind),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: key_values(&span.attributes),
            events: span
                .events
                .iter()
                .map(|e| Event {
                    time_unix_nano: u64::try_from(e.timestamp_us.saturating_mul(1000)).unwrap_or(0),
                    name: e.name.clone(),
                    attributes: key_values(&e.attributes),
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|l| Link {
                    trace_id: hex_bytes(&l.trace_id),
                    span_id: hex_bytes(&l.span_id),
                })
                .collect(),
            status: Some(SpanStatusProto {
                message: span.status_message.clone(),
                code: status_number(span.status),
            }),
        });
    }
    out.into_iter().map(|(_, batch)| batch).collect()
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn any_json(value: &Option<AnyValue>) -> Value {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => json!({"stringValue": s}),
        Some(any_value::Value::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(any_value::Value::DoubleValue(x)) => json!({"doubleValue": x}),
        Some(any_value::Value::BoolValue(b)) => json!({"boolValue": b}),
        _ => json!({}),
    }
}

fn attributes_json(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| json!({"key": kv.key, "value": any_json(&kv.value)}))
        .collect()
}

/// OTLP's span kinds and status codes by number, as protobuf JSON names them.
const KIND_NAMES: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_NAMES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// A `ResourceSpans` as Tempo's JSON (protobuf JSON: ids in base64).
fn resource_spans_json(batch: &ResourceSpans) -> Value {
    json!({
        "resource": {
            "attributes": attributes_json(batch.resource.as_ref().map_or(&[][..], |r| &r.attributes)),
        },
        "scopeSpans": batch.scope_spans.iter().map(|scope| {
            json!({
                "scope": {
                    "name": scope.scope.as_ref().map_or("", |s| s.name.as_str()),
                    "version": scope.scope.as_ref().map_or("", |s| s.version.as_str()),
                },
                "spans": scope.spans.iter().map(|span| {
                    let mut out = json!({
                        "traceId": base64(&span.trace_id),
                        "spanId": base64(&span.span_id),
                        "name": span.name,
                        "kind": KIND_NAMES[span.kind.clamp(0, 5) as usize],
                        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
                        "attributes": attributes_json(&span.attributes),
                        "status": {
                            "code": STATUS_NAMES[span.status.as_ref().map_or(0, |s| s.code.clamp(0, 2)) as usize],
                            "message": span.status.as_ref().map_or("", |s| s.message.as_str()),
                        },
                    });
                    if !span.parent_span_id.is_empty() {
                        out["parentSpanId"] = json!(base64(&span.parent_span_id));
                    }
                    if !span.events.is_empty() {
                        out["events"] = json!(span.events.iter().map(|e| json!({
                            "timeUnixNano": e.time_unix_nano.to_string(),
                            "name": e.name,
                            "attributes": attributes_json(&e.attributes),
                        })).collect::<Vec<_>>());
                    }
                    out
                }).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })
}

/// Seconds (Tempo's `start`/`end`) as microseconds.
fn seconds_param(params: &QueryParams, name: &str) -> Result<Option<i64>, TempoError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|s| (0..=1 << 40).contains(s))
                .map(|s| s * 1_000_000)
                .ok_or_else(|| bad(format!("invalid {name} {v:?}: expected unix seconds")))
        })
        .transpose()
}

fn duration_param(params: &QueryParams, name: &str) -> Result<Option<i64>, TempoError> {
    params
        .get(name)
        .map(|v| {
            sextant_query::traces::parse_go_duration(v).ok_or_else(|| {
                bad(format!(
                    "invalid {name} {v:?}: expected a duration like 100ms"
                ))
            })
        })
        .transpose()
}

fn count_param(
    params: &QueryParams,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, TempoError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map(|n| n.clamp(1, max))
            .map_err(|_| bad(format!("invalid {name} {v:?}: expected a whole number"))),
    }
}

/// `tags=key=value key2="value 2"` (logfmt, as Tempo's tag search takes it).
fn tag_pairs(text: &str) -> Result<Vec<(String, String)>, TempoError> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| bad(format!("invalid tags {text:?}: expected key=value pairs")))?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| bad(format!("invalid tags {text:?}: unterminated quote")))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        out.push((key.trim().to_owned(), value.to_owned()));
        rest = after.trim_start();
    }
    Ok(out)
}

/// A TraceQL query for a tag search: each tag an equality on an
/// unscoped attribute (`service.name` on the resource, `name` the span name).
fn tags_as_traceql(tags: &[(String, String)]) -> String {
    let conditions: Vec<String> = tags
        .iter()
        .map(|(k, v)| {
            let value = Value::from(v.as_str()).to_string();
            match k.as_str() {
                "service.name" => format!("resource.service.name = {value}"),
                "name" => format!("name = {value}"),
                "status.code" | "status" => format!("status = {}", v.to_ascii_lowercase()),
                other => format!(".\"{}\" = {value}", other.replace('"', "\\\"")),
            }
        })
        .collect();
    format!("{{ {} }}", conditions.join(" && "))
}

/// `GET /api/search`: TraceQL (`q=`) or tags (`tags=`, `minDuration`,
/// `maxDuration`), `limit`, `spss`, `start`/`end` in seconds.
pub async fn search(State(state): State<AppState>, uri: Uri) -> Answer {
    let params = QueryParams::of(&uri);
    let end_us = seconds_param(&params, "end")?.unwrap_or_else(now_us) + 1_000_000;
    let start_us = seconds_param(&params, "start")?.unwrap_or(end_us - 3_600_000_000 - 1_000_000);
    if start_us >= end_us {
        return Err(bad("invalid time range: start must be before end"));
    }
    let text = match (params.get("q"), params.get("tags")) {
        (Some(q), _) => q.to_owned(),
        (None, Some(tags)) => tags_as_traceql(&tag_pairs(tags)?),
        (None, None) => "{}".to_owned(),
    };
    let query = traceql::parse::parse(&text)?;
    let request = traceql::eval::SearchRequest {
        query,
        start_us,
        end_us,
        limit: count_param(&params, "limit", DEFAULT_LIMIT, MAX_LIMIT)?,
        spans_per_spanset: count_param(&params, "spss", DEFAULT_SPSS, 1000)?,
        min_duration_us: duration_param(&params, "minDuration")?,
        max_duration_us: duration_param(&params, "maxDuration")?,
    };
    let started = std::time::Instant::now();
    let found = read(&state, move |reader| {
        traceql::eval::search(reader, &request).map_err(TempoError::from)
    })
    .await?;
    let _ = started;
    let traces: Vec<Value> = found.iter().map(trace_match_json).collect();
    json_answer(json!({
        "traces": traces,
        "metrics": {
            "inspectedTraces": found.len(),
            "completedJobs": 1,
            "totalJobs": 1,
        },
    }))
}

fn field_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Str(s) => json!({"stringValue": s}),
        FieldValue::Int(i) => json!({"intValue": i.to_string()}),
        FieldValue::Float(x) => json!({"doubleValue": x}),
        FieldValue::Bool(b) => json!({"boolValue": b}),
    }
}

fn trace_match_json(found: &traceql::eval::TraceMatch) -> Value {
    let span_sets: Vec<Value> = found
        .span_sets
        .iter()
        .map(|set| {
            let mut out = json!({
                "spans": set.spans.iter().map(|span| {
                    let mut attributes: Vec<Value> = vec![json!({
                        "key": "service.name",
                        "value": {"stringValue": span.service},
                    })];
                    attributes.extend(span.attributes.iter().map(|(k, v)| json!({"key": k, "value": field_json(v)})));
                    json!({
                        "spanID": span.span_id,
                        "name": span.name,
                        "startTimeUnixNano": span.start_ns.to_string(),
                        "durationNanos": span.duration_ns.to_string(),
                        "attributes": attributes,
                    })
                }).collect::<Vec<_>>(),
                "matched": set.matched,
            });
            if !set.attributes.is_empty() {
                out["attributes"] = json!(set
                    .attributes
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": field_json(v)}))
                    .collect::<Vec<_>>());
            }
            out
        })
        .collect();
    let mut out = json!({
        "traceID": found.trace_id,
        "rootServiceName": found.root_service_name,
        "rootTraceName": found.root_trace_name,
        "startTimeUnixNano": found.start_ns.to_string(),
        "durationMs": found.duration_ms,
    });
    if let Some(first) = span_sets.first() {
        out["spanSet"] = first.clone();
    }
    out["spanSets"] = json!(span_sets);
    out
}

/// The narrowing query of a tag list (`q=`): `None` for none, for `{}`, or
/// for an unfinished query (Grafana's editor sends the query being typed,
/// and Tempo lists tags unnarrowed then); a query past the budget is
/// refused, as every language here refuses it.
fn narrowing(params: &QueryParams) -> Result<Option<traceql::ast::Query>, TempoError> {
    let Some(q) = params.get("q") else {
        return Ok(None);
    };
    if q.chars().filter(|c| !c.is_whitespace()).eq("{}".chars()) {
        return Ok(None);
    }
    match traceql::parse::parse(q) {
        Ok(query) => Ok(Some(query)),
        Err(sextant_query::Error::Parse(message)) if message.contains("query.max_") => {
            Err(bad(message))
        }
        Err(_) => Ok(None),
    }
}

/// Tag names and values by scope, from the newest traces of the range
/// (`start`/`end` in seconds), or from the spans `q=` matches there.
async fn sampled_tags(
    state: &AppState,
    params: &QueryParams,
) -> Result<BTreeMap<&'static str, BTreeMap<String, BTreeSet<String>>>, TempoError> {
    let end_us = seconds_param(params, "end")?.unwrap_or_else(now_us) + 1_000_000;
    let start_us = seconds_param(params, "start")?.unwrap_or(end_us - 3_600_000_000 - 1_000_000);
    let narrowing = narrowing(params)?;
    read(state, move |reader| {
        let storage = |e| TempoError::from(sextant_query::Error::Storage(e));
        // The traces to read, and in each the spans to take (all when None).
        let traces: Vec<(String, Option<BTreeSet<String>>)> = match narrowing {
            None => {
                let sample = TraceQuery {
                    service: None,
                    operation: None,
                    tags: Vec::new(),
                    min_duration_us: None,
                    max_duration_us: None,
                    start_us,
                    end_us,
                    limit: TAG_SAMPLE_TRACES,
                };
                reader
                    .find_trace_ids(&sample)
                    .map_err(storage)?
                    .into_iter()
                    .map(|id| (id, None))
                    .collect()
            }
            Some(query) => {
                let mut request = traceql::eval::SearchRequest::new(query, start_us, end_us);
                request.limit = TAG_SAMPLE_TRACES;
                request.spans_per_spanset = TAG_SAMPLE_SPANS;
                traceql::eval::search(reader, &request)?
                    .into_iter()
                    .map(|found| {
                        let spans = found
                            .span_sets
                            .iter()
                            .flat_map(|set| set.spans.iter().map(|s| s.span_id.clone()))
                            .collect();
                        (found.trace_id, Some(spans))
                    })
                    .collect()
            }
        };
        let mut tags: BTreeMap<&'static str, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (id, wanted) in traces {
            for span in reader.trace(&id).map_err(storage)? {
                if wanted.as_ref().is_some_and(|w| !w.contains(&span.span_id)) {
                    continue;
                }
                let mut add = |scope: &'static str, key: &str, value: String| {
                    let values = tags
                        .entry(scope)
                        .or_default()
                        .entry(key.to_owned())
                        .or_default();
                    if values.len() < 1000 {
                        values.insert(value);
                    }
                };
                for (k, v) in &span.attributes {
                    add("span", k, text_of(v));
                }
                for (k, v) in &span.resource {
                    add("resource", k, text_of(v));
                }
                add("resource", "service.name", span.service.clone());
                add("intrinsic", "name", span.operation.clone());
                add("intrinsic", "status", status_name(span.status).to_owned());
                add("intrinsic", "kind", kind_name(span.kind).to_owned());
            }
        }
        Ok(tags)
    })
    .await
}

fn text_of(value: &FieldValue) -> String {
    match value {
        FieldValue::Str(s) => s.clone(),
        other => other.to_json().to_string(),
    }
}

fn type_of(value: &str) -> &'static str {
    if value.parse::<i64>().is_ok() {
        "int"
    } else if value.parse::<f64>().is_ok() {
        "float"
    } else if value == "true" || value == "false" {
        "bool"
    } else {
        "string"
    }
}

fn status_name(status: SpanStatus) -> &'static str {
    match status {
        SpanStatus::Unset => "unset",
        SpanStatus::Ok => "ok",
        SpanStatus::Error => "error",
    }
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// The intrinsics TraceQL knows, listed as Tempo lists them.
const INTRINSICS: [&str; 8] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

/// `GET /api/v2/search/tags?scope=`.
pub async fn tags_v2(State(state): State<AppState>, uri: Uri) -> Answer {
    let params = QueryParams::of(&uri);
    let wanted = params.get("scope").unwrap_or("all").to_owned();
    if ![
        "all",
        "span",
        "resource",
        "intrinsic",
        "event",
        "link",
        "instrumentation",
    ]
    .contains(&wanted.as_str())
    {
        return Err(bad(format!(
            "invalid scope {wanted:?}: expected span, resource, intrinsic or all"
        )));
    }
    let tags = sampled_tags(&state, &params).await?;
    let mut scopes = Vec::new();
    for scope in ["span", "resource"] {
        if wanted == "all" || wanted == scope {
            let names: Vec<&String> = tags
                .get(scope)
                .map(|t| t.keys().collect())
                .unwrap_or_default();
            scopes.push(json!({"name": scope, "tags": names}));
        }
    }
    if wanted == "all" || wanted == "intrinsic" {
        scopes.push(json!({"name": "intrinsic", "tags": INTRINSICS}));
    }
    json_answer(json!({ "scopes": scopes }))
}

/// `GET /api/search/tags`: every tag name.
pub async fn tags_v1(State(state): State<AppState>, uri: Uri) -> Answer {
    let params = QueryParams::of(&uri);
    let tags = sampled_tags(&state, &params).await?;
    let names: BTreeSet<&String> = ["span", "resource"]
        .iter()
        .filter_map(|s| tags.get(s))
        .flat_map(|t| t.keys())
        .collect();
    json_answer(json!({ "tagNames": names }))
}

/// The values of `tag` (`span.x`, `resource.x`, `.x` or an intrinsic).
fn tag_values(
    tags: &BTreeMap<&'static str, BTreeMap<String, BTreeSet<String>>>,
    tag: &str,
) -> BTreeSet<String> {
    let (scopes, name): (&[&str], &str) = if let Some(name) = tag.strip_prefix("span.") {
        (&["span"], name)
    } else if let Some(name) = tag.strip_prefix("resource.") {
        (&["resource"], name)
    } else if let Some(name) = tag.strip_prefix('.') {
        (&["span", "resource"], name)
    } else if INTRINSICS.contains(&tag) {
        (&["intrinsic"], tag)
    } else {
        (&["span", "resource"], tag)
    };
    scopes
        .iter()
        .filter_map(|s| tags.get(s).and_then(|t| t.get(name)))
        .flatten()
        .cloned()
        .collect()
}

/// `GET /api/v2/search/tag/{tag}/values`: `{"tagValues": [{type, value}]}`.
pub async fn tag_values_v2(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    uri: Uri,
) -> Answer {
    let params = QueryParams::of(&uri);
    let tags = sampled_tags(&state, &params).await?;
    let values: Vec<Value> = tag_values(&tags, &tag)
        .into_iter()
        .map(|v| {
            let kind = match tag.as_str() {
                "status" => "keyword",
                "kind" => "keyword",
                _ => type_of(&v),
            };
            json!({"type": kind, "value": v})
        })
        .collect();
    json_answer(json!({ "tagValues": values }))
}

/// `GET /api/search/tag/{tag}/values`: `{"tagValues": ["a", ...]}`.
pub async fn tag_values_v1(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    uri: Uri,
) -> Answer {
    let params = QueryParams::of(&uri);
    let tags = sampled_tags(&state, &params).await?;
    json_answer(json!({ "tagValues": tag_values(&tags, &tag) }))
}

/// The routes.
pub fn routes(router: axum::Router<AppState>) -> axum::Router<AppState> {
    use axum::routing::get;
    router
        .route("/api/echo", get(echo))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tag_values_v2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_base64_as_protobuf_json_writes_bytes() {
        assert_eq!(base64(&[0xde, 0xad, 0xbe, 0xef]), "3q2+7w==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn tag_searches_read_as_traceql() {
        let tags = tag_pairs(r#"service.name=cart http.method="GET /x""#).unwrap();
        assert_eq!(
            tags_as_traceql(&tags),
            r#"{ resource.service.name = "cart" && ."http.method" = "GET /x" }"#
        );
        assert!(tag_pairs("novalue").is_err());
    }
}
