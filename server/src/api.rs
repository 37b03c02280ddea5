//! The metrics endpoints over the time-series engine: remote write and text
//! import in; export, series, label names and label values out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sextant_ingest::{prom_text, remote_write};
use sextant_model::{Labels, Matcher, Sample};
use sextant_query::{parse_selector, parse_time};
use sextant_storage::{
    AppendReport, MetricMetadata, MetricsReader, SeriesHistograms, SeriesSamples, Tsdb,
};

use crate::http::{ApiError, AppState};

/// How many line errors an import error message lists before summarising.
const ERRORS_SHOWN: usize = 5;

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The remote write protobuf messages, as `Content-Type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMessage {
    /// `prometheus.WriteRequest` (remote write 1.0).
    V1,
    /// `io.prometheus.write.v2.Request` (remote write 2.0).
    V2,
}

/// Reads `Content-Type` as Prometheus's receiver does (client_golang's
/// `ParseProtoMsg`): none or `application/x-protobuf` is 1.0, a `proto=`
/// parameter names the message; anything else is a 415 naming it.
fn write_message(content_type: &str) -> Result<WriteMessage, ApiError> {
    let content_type = content_type.trim();
    if content_type.is_empty() {
        return Ok(WriteMessage::V1);
    }
    let mut parts = content_type.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(ApiError::Unsupported(format!(
            "Content-Type {content_type:?} is not remote write: send application/x-protobuf, with proto=prometheus.WriteRequest (1.0, the default) or proto={} (2.0)",
            remote_write::v2::PROTO
        )));
    }
    for parameter in parts {
        let Some((key, value)) = parameter.split_once('=') else {
            return Err(ApiError::Unsupported(format!(
                "Content-Type {content_type:?}: parameter {parameter:?} is not key=value"
            )));
        };
        if key.trim() == "proto" {
            return match value.trim() {
                "prometheus.WriteRequest" => Ok(WriteMessage::V1),
                v if v == remote_write::v2::PROTO => Ok(WriteMessage::V2),
                other => Err(ApiError::Unsupported(format!(
                    "unknown remote write message proto={other}; this server takes prometheus.WriteRequest and {}",
                    remote_write::v2::PROTO
                ))),
            };
        }
    }
    Ok(WriteMessage::V1)
}

/// What a remote write stored, and what it refused.
#[derive(Debug, Default)]
struct Written {
    samples: u64,
    histograms: u64,
    exemplars: usize,
    /// Each refusal, naming its field or series.
    problems: Vec<String>,
}

impl Written {
    /// The `X-Prometheus-Remote-Write-*-Written` headers a 2.0 sender reads
    /// (it counts a 2xx without them as a failure).
    fn headers(&self) -> [(&'static str, String); 3] {
        [
            (
                "x-prometheus-remote-write-samples-written",
                self.samples.to_string(),
            ),
            (
                "x-prometheus-remote-write-histograms-written",
                self.histograms.to_string(),
            ),
            (
                "x-prometheus-remote-write-exemplars-written",
                self.exemplars.to_string(),
            ),
        ]
    }

    /// 204, or 400 naming what was refused (senders do not retry a 400;
    /// the rest was kept).
    fn outcome(&self) -> Result<StatusCode, ApiError> {
        if self.problems.is_empty() {
            return Ok(StatusCode::NO_CONTENT);
        }
        let mut shown: Vec<&str> = self
            .problems
            .iter()
            .take(ERRORS_SHOWN)
            .map(String::as_str)
            .collect();
        let more = self.problems.len().saturating_sub(ERRORS_SHOWN);
        let more = format!("and {more} more");
        if self.problems.len() > ERRORS_SHOWN {
            shown.push(&more);
        }
        let histograms = if self.histograms > 0 {
            format!(" and {} histograms", self.histograms)
        } else {
            String::new()
        };
        Err(ApiError::BadIngest(format!(
            "stored {} samples{histograms}; {}",
            self.samples,
            shown.join("; ")
        )))
    }
}

/// Stores a parsed request: start-timestamp zeros, samples, metadata and
/// exemplars. Storage failures are the `Err`; refusals are in `problems`.
fn store_batch(
    writer: &dyn sextant_storage::MetricsWriter,
    batch: remote_write::WriteBatch<'_>,
) -> Result<Written, ApiError> {
    let remote_write::WriteBatch {
        series,
        metadata,
        histograms,
        histograms_refused,
        exemplars,
        exemplars_refused,
        start_zeros,
        mut problems,
    } = batch;
    let refused = &remote_write::REFUSED;
    refused.exemplars.add(exemplars_refused as u64);
    refused.histograms.add(histograms_refused as u64);
    refused
        .series
        .add((problems.len() - exemplars_refused - histograms_refused) as u64);
    // The zeros first: each must be older than its series' samples.
    if !start_zeros.is_empty() {
        let mut zeros = sextant_storage::PairBatch::default();
        let mut owed = start_zeros.iter().peekable();
        for (i, s) in series.iter().enumerate() {
            while let Some(&(_, start)) = owed.next_if(|(at, _)| *at == i) {
                zeros.push_canonical(
                    s.labels,
                    &[Sample {
                        timestamp_ms: start,
                        value: 0.0,
                    }],
                );
            }
        }
        writer.append_start_zeros(&zeros)?;
    }
    let report = writer.append_pairs(&series)?;
    for m in metadata {
        writer.set_metadata(
            m.metric,
            MetricMetadata {
                kind: m.kind.to_owned(),
                help: m.help.to_owned(),
                unit: m.unit.to_owned(),
            },
        )?;
    }
    let mut written = Written {
        samples: report.accepted,
        ..Written::default()
    };
    if !histograms.is_empty() {
        let mut batch: Vec<SeriesHistograms> = Vec::new();
        let mut pending = histograms.into_iter().peekable();
        for (i, s) in series.iter().enumerate() {
            if pending.peek().is_some_and(|(at, _)| *at == i) {
                let mut samples = Vec::new();
                while let Some((_, sample)) = pending.next_if(|(at, _)| *at == i) {
                    samples.push(sample);
                }
                batch.push(SeriesHistograms {
                    labels: s.labels(),
                    samples,
                });
            }
        }
        let report = writer.append_histograms(&batch)?;
        written.histograms = report.accepted;
        if let Some(first) = &report.first_rejection {
            refused.histograms.add(report.rejected_total());
            problems.push(format!(
                "{} native histogram samples refused (first: {first})",
                report.rejected_total()
            ));
        }
    }
    if !exemplars.is_empty() {
        let mut owned = Vec::with_capacity(exemplars.len());
        let mut pending = exemplars.into_iter().peekable();
        for (i, s) in series.iter().enumerate() {
            if pending.peek().is_some_and(|(at, _)| *at == i) {
                let labels = s.labels();
                while let Some((_, exemplar)) = pending.next_if(|(at, _)| *at == i) {
                    owned.push((labels.clone(), exemplar));
                }
            }
        }
        // As Prometheus: a failing exemplar store fails no request.
        written.exemplars = writer.append_exemplars(&owned).unwrap_or_else(|err| {
            tracing::warn!(error = %err, "exemplars from remote write not stored");
            0
        });
    }
    if let Some(first) = &report.first_rejection {
        problems.push(format!(
            "{} samples refused (first: {first})",
            report.rejected_total()
        ));
    }
    written.problems = problems;
    Ok(written)
}

/// `POST /api/v1/write`: Prometheus remote write 1.0 and 2.0, told apart by
/// `Content-Type` as Prometheus tells them.
///
/// 204 when everything was stored; 400 (not retried by senders) for a body
/// that does not decode, or naming what was refused when the rest was kept
/// (as Prometheus's 2.0 receiver keeps it); 5xx (retried) when storage
/// failed. Every 2.0 answer carries the `-Written` headers.
pub async fn remote_write(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let message = write_message(header_text(&headers, header::CONTENT_TYPE))?;
    // No Content-Encoding is taken as snappy, as Prometheus takes it.
    let encoding = header_text(&headers, header::CONTENT_ENCODING);
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("snappy") {
        return Err(ApiError::Unsupported(format!(
            "Content-Encoding {encoding:?} is not supported; remote write bodies are snappy"
        )));
    }
    let outcome = write_body(&state, message, body).await;
    if message == WriteMessage::V1 {
        return outcome
            .and_then(|w| w.outcome())
            .map(IntoResponse::into_response);
    }
    Ok(match outcome {
        Ok(written) => (written.headers(), written.outcome()).into_response(),
        // Nothing was stored: a body that does not decode, or storage failed.
        Err(err) => (Written::default().headers(), err).into_response(),
    })
}

async fn write_body(
    state: &AppState,
    message: WriteMessage,
    body: Bytes,
) -> Result<Written, ApiError> {
    let writer = state.stores()?.metrics_writer.clone();
    let limit = state.limits.max_decompressed_body;
    let raw = remote_write::decompress(&body, limit).map_err(|e| match e {
        remote_write::RemoteWriteError::TooLarge { size, .. } => {
            sextant_ingest::limits::REFUSED.decompressed_body.inc();
            ApiError::TooLarge(format!(
                "the body decompresses to {size} bytes, more than limits.max_decompressed_body ({limit} bytes)"
            ))
        }
        other => ApiError::BadIngest(other.to_string()),
    })?;
    blocking(move || {
        let batch = match message {
            WriteMessage::V1 => remote_write::parse(&raw),
            WriteMessage::V2 => remote_write::v2::parse(&raw),
        }
        .map_err(|e| ApiError::BadIngest(e.to_string()))?;
        store_batch(&*writer, batch)
    })
    .await
}

/// `POST /api/v1/import/prometheus`: Prometheus text format for backfill;
/// lines without a timestamp take the time of arrival.
pub async fn import_prometheus(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let encoding = header_text(&headers, header::CONTENT_ENCODING);
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
        return Err(ApiError::Unsupported(format!(
            "Content-Encoding {encoding:?} is not supported; send plain text"
        )));
    }
    let writer = state.stores()?.metrics_writer.clone();
    let (report, errors) = blocking(move || {
        let text = std::str::from_utf8(&body)
            .map_err(|e| ApiError::BadIngest(format!("body is not UTF-8: {e}")))?;
        let parsed = prom_text::parse_runs(text);
        let now = Tsdb::now_ms();
        // A series' runs joined (a dump has each series in one run; lines
        // of a page interleave them), its samples put in time order.
        let mut batch: Vec<SeriesSamples> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for run in parsed.runs {
            let points = run.points.into_iter().map(|(t, value)| Sample {
                timestamp_ms: t.unwrap_or(now),
                value,
            });
            match index.get(&run.labels) {
                Some(&i) => batch[i].samples.extend(points),
                None => {
                    index.insert(run.labels.clone(), batch.len());
                    batch.push(SeriesSamples {
                        labels: run.labels,
                        samples: points.collect(),
                    });
                }
            }
        }
        for series in &mut batch {
            if !series.samples.is_sorted_by_key(|s| s.timestamp_ms) {
                series.samples.sort_by_key(|s| s.timestamp_ms);
            }
        }
        for (name, meta) in parsed.metadata {
            writer.set_metadata(
                &name,
                MetricMetadata {
                    kind: meta.kind.unwrap_or_default(),
                    help: meta.help.unwrap_or_default(),
                    unit: meta.unit.unwrap_or_default(),
                },
            )?;
        }
        Ok((writer.append(&batch)?, parsed.errors))
    })
    .await?;
    import_outcome(&report, &errors)
}

fn import_outcome(
    report: &AppendReport,
    errors: &[prom_text::LineError],
) -> Result<StatusCode, ApiError> {
    if errors.is_empty() && report.rejected_total() == 0 {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut parts: Vec<String> = errors
        .iter()
        .take(ERRORS_SHOWN)
        .map(ToString::to_string)
        .collect();
    if errors.len() > ERRORS_SHOWN {
        parts.push(format!(
            "and {} more bad lines",
            errors.len() - ERRORS_SHOWN
        ));
    }
    if let Some(first) = &report.first_rejection {
        parts.push(format!(
            "{} samples refused (first: {first})",
            report.rejected_total()
        ));
    }
    Err(ApiError::BadIngest(format!(
        "stored {} samples; {}",
        report.accepted,
        parts.join("; ")
    )))
}

/// Query parameters from the URL and, for POST, a form body.
pub(crate) fn params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if header_text(headers, header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded") {
        pairs.extend(form_urlencoded::parse(body).into_owned());
    }
    pairs
}

pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every `match[]` selector, parsed.
fn selectors(pairs: &[(String, String)]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    pairs
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| parse_selector(v).map_err(ApiError::from))
        .collect()
}

/// `start` and `end`, all of time when absent.
fn time_range(pairs: &[(String, String)]) -> Result<(i64, i64), ApiError> {
    let start = param(pairs, "start")
        .map(|v| parse_time("start", v))
        .transpose()?
        .unwrap_or(i64::MIN);
    let end = param(pairs, "end")
        .map(|v| parse_time("end", v))
        .transpose()?
        .unwrap_or(i64::MAX);
    if end < start {
        return Err(ApiError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    Ok((start, end))
}

pub(crate) fn success(data: Value) -> Response {
    axum::Json(json!({ "status": "success", "data": data })).into_response()
}

/// As [`success`], with `warnings` when there are any (a partial answer in
/// cluster mode names the partitions it lacks).
pub(crate) fn success_warned(data: Value, warnings: Vec<String>) -> Response {
    if warnings.is_empty() {
        return success(data);
    }
    axum::Json(json!({ "status": "success", "data": data, "warnings": warnings })).into_response()
}

pub(crate) fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|l| (l.name.to_string(), Value::String(l.value.to_string())))
            .collect(),
    )
}

/// Formats a sample value as Prometheus's API does.
pub fn format_value(v: f64) -> String {
    let mut out = String::new();
    sextant_query::promql::write_sample_value(&mut out, v);
    out
}

/// `GET|POST /api/v1/export?match[]=...&start=&end=`: raw samples as JSON
/// lines, `{"metric": {...}, "values": ["1.5", ...], "timestamps": [ms, ...]}`
/// (VictoriaMetrics' export shape, values as strings so NaN and ±Inf survive).
pub async fn export(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &body);
    let selectors = selectors(&pairs)?;
    if selectors.is_empty() {
        return Err(ApiError::BadData("no match[] parameter provided".into()));
    }
    let (start, end) = time_range(&pairs)?;
    let reader = state.stores()?.metrics_reader.clone();
    let out = blocking(move || {
        let mut all: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let _stale = sextant_storage::partial::take();
        for matchers in selectors {
            for s in reader.select(&matchers, start, end)? {
                all.insert(s.labels, s.samples);
            }
        }
        // An export has nowhere to say it is partial, and a copy made from
        // one would lack data without anyone knowing: refused instead.
        let partial = sextant_storage::partial::take();
        if !partial.is_empty() {
            return Err(ApiError::Unavailable(format!(
                "{}; retry the export",
                partial.join("; ")
            )));
        }
        let mut out = String::new();
        for (labels, samples) in all {
            let line = json!({
                "metric": labels_json(&labels),
                "values": samples.iter().map(|s| format_value(s.value)).collect::<Vec<_>>(),
                "timestamps": samples.iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(),
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        Ok(out)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

/// Runs `lookup` for every `match[]` selector (or once without matchers when
/// `match[]` is optional and absent) over `start`/`end`, off the async
/// threads, and unions the results, with what the reads noted as missing.
async fn union_over_selectors<T, F>(
    state: &AppState,
    pairs: &[(String, String)],
    match_required: bool,
    lookup: F,
) -> Result<(BTreeSet<T>, Vec<String>), ApiError>
where
    T: Ord + Send + 'static,
    F: Fn(&dyn MetricsReader, &[Matcher], i64, i64) -> sextant_storage::Result<Vec<T>>
        + Send
        + 'static,
{
    let mut selectors = selectors(pairs)?;
    if selectors.is_empty() {
        if match_required {
            return Err(ApiError::BadData("no match[] parameter provided".into()));
        }
        selectors.push(Vec::new());
    }
    let (start, end) = time_range(pairs)?;
    let reader = state.stores()?.metrics_reader.clone();
    blocking(move || {
        let (found, partial) = sextant_storage::partial::noting(|| {
            let mut found = BTreeSet::new();
            for matchers in selectors {
                found.extend(lookup(reader.as_ref(), &matchers, start, end)?);
            }
            Ok::<_, sextant_storage::Error>(found)
        });
        Ok((found?, partial))
    })
    .await
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &body);
    let (found, warnings) = union_over_selectors(&state, &pairs, true, |r, m, start, end| {
        r.series(m, start, end)
    })
    .await?;
    Ok(success_warned(
        Value::Array(found.iter().map(labels_json).collect()),
        warnings,
    ))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &body);
    let (names, warnings) = union_over_selectors(&state, &pairs, false, |r, m, start, end| {
        r.label_names(m, start, end)
    })
    .await?;
    Ok(success_warned(json!(names), warnings))
}

/// `GET /api/v1/label/{name}/values`.
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !sextant_model::is_valid_label_name(&name) {
        return Err(ApiError::BadData(format!("invalid label name: {name:?}")));
    }
    let pairs = params(&uri, &headers, &[]);
    let (values, warnings) =
        union_over_selectors(&state, &pairs, false, move |r, m, start, end| {
            r.label_values(&name, m, start, end)
        })
        .await?;
    Ok(success_warned(json!(values), warnings))
}

/// `GET /api/v1/metadata?metric=&limit=`: type, help and unit per metric name.
pub async fn metadata(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &[]);
    let limit = match param(&pairs, "limit") {
        Some(text) => Some(
            text.parse::<usize>()
                .map_err(|_| ApiError::BadData(format!("invalid limit {text:?}")))?,
        ),
        None => None,
    };
    let wanted = param(&pairs, "metric");
    let all = state.stores()?.metrics_reader.metadata();
    let data: serde_json::Map<String, Value> = all
        .into_iter()
        .filter(|(name, _)| wanted.is_none_or(|w| w == name))
        .take(limit.filter(|l| *l > 0).unwrap_or(usize::MAX))
        .map(|(name, m)| {
            let kind = if m.kind.is_empty() {
                "unknown".to_owned()
            } else {
                m.kind
            };
            (
                name,
                json!([{ "type": kind, "help": m.help, "unit": m.unit }]),
            )
        })
        .collect();
    Ok(success(Value::Object(data)))
}

/// `GET /api/v1/targets`: Prometheus's shape, with `state=active|dropped|any`
/// and `scrapePool=` filters.
pub async fn targets(State(state): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let params: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let wanted = param("state").unwrap_or("any").to_ascii_lowercase();
    if !matches!(wanted.as_str(), "active" | "dropped" | "any") {
        return Err(ApiError::BadData(format!(
            "invalid parameter \"state\": {wanted:?} is not one of active, dropped, any"
        )));
    }
    let pool = param("scrapePool");
    let (active, dropped) = state
        .runtime
        .scrape()
        .map(|m| m.targets())
        .unwrap_or_default();
    let in_pool = |name: &str| pool.is_none_or(|p| p == name);
    let labels_json = |labels: &Labels| -> serde_json::Map<String, Value> {
        labels
            .iter()
            .map(|l| (l.name.to_string(), Value::from(&*l.value)))
            .collect()
    };
    let active_json: Vec<Value> = active
        .iter()
        .filter(|t| wanted != "dropped" && in_pool(&t.pool))
        .map(|t| {
            let health = &t.health;
            let last_scrape = health.last_scrape.map_or_else(
                || "0001-01-01T00:00:00Z".to_owned(),
                |at| {
                    let nanos = at
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as i128);
                    sextant_model::time::rfc3339_utc(nanos, 9)
                },
            );
            json!({
                "discoveredLabels": t.target.discovered,
                "labels": labels_json(&t.target.labels),
                "scrapePool": t.pool,
                "scrapeUrl": t.target.url(),
                "globalUrl": t.target.url(),
                "lastError": health.last_error,
                "lastScrape": last_scrape,
                "lastScrapeDuration": health.last_duration.as_secs_f64(),
                "health": health.state,
                "scrapeInterval": sextant_model::PromDuration::new(t.target.interval).to_string(),
                "scrapeTimeout": sextant_model::PromDuration::new(t.target.timeout).to_string(),
            })
        })
        .collect();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &dropped {
        *counts.entry(&t.pool).or_default() += 1;
    }
    let dropped_json: Vec<Value> = dropped
        .iter()
        .filter(|t| wanted != "active" && in_pool(&t.pool))
        .map(|t| json!({ "discoveredLabels": t.discovered, "scrapePool": t.pool }))
        .collect();
    let body = json!({
        "status": "success",
        "data": {
            "activeTargets": active_json,
            "droppedTargets": dropped_json,
            "droppedTargetCounts": counts,
        }
    });
    Ok(axum::Json(body).into_response())
}
