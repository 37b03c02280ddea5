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
use sextant_storage::{AppendReport, MetricMetadata, MetricsReader, SeriesSamples, Tsdb};

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

/// `POST /api/v1/write`: Prometheus remote write 1.0.
///
/// 204 when everything was stored; 400 (not retried by senders) for a body
/// that does not decode or when some samples were refused, the rest kept;
/// 5xx (retried) when storage failed.
pub async fn remote_write(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let content_type = header_text(&headers, header::CONTENT_TYPE);
    if content_type.contains("io.prometheus.write.v2") {
        return Err(ApiError::Unsupported(
            "remote write 2.0 is not supported; send prometheus.WriteRequest (remote write 1.0)"
                .into(),
        ));
    }
    let encoding = header_text(&headers, header::CONTENT_ENCODING);
    if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("snappy") {
        return Err(ApiError::Unsupported(format!(
            "Content-Encoding {encoding:?} is not supported; remote write bodies are snappy"
        )));
    }
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
    let (report, histograms) = blocking(move || {
        let batch = remote_write::parse(&raw).map_err(|e| ApiError::BadIngest(e.to_string()))?;
        for (name, kind, help, unit) in batch.metadata {
            writer.set_metadata(&name, MetricMetadata { kind, help, unit })?;
        }
        Ok((
            writer.append_pairs(&batch.series)?,
            batch.histograms_dropped,
        ))
    })
    .await?;
    let mut problems = Vec::new();
    if let Some(first) = &report.first_rejection {
        problems.push(format!(
            "{} samples refused (first: {first})",
            report.rejected_total()
        ));
    }
    if histograms > 0 {
        problems.push(format!(
            "{histograms} native histogram samples refused: not supported yet"
        ));
    }
    if problems.is_empty() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::BadIngest(format!(
            "stored {} samples; {}",
            report.accepted,
            problems.join("; ")
        )))
    }
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
    let text = String::from_utf8(body.to_vec())
        .map_err(|e| ApiError::BadIngest(format!("body is not UTF-8: {e}")))?;
    let (report, errors) = blocking(move || {
        let parsed = prom_text::parse(&text);
        let now = Tsdb::now_ms();
        let mut order: Vec<Labels> = Vec::new();
        let mut by_series: HashMap<Labels, Vec<Sample>> = HashMap::new();
        for s in parsed.samples {
            let samples = by_series.entry(s.labels.clone()).or_insert_with(|| {
                order.push(s.labels);
                Vec::new()
            });
            samples.push(Sample {
                timestamp_ms: s.timestamp_ms.unwrap_or(now),
                value: s.value,
            });
        }
        let batch: Vec<SeriesSamples> = order
            .into_iter()
            .map(|labels| {
                let mut samples = by_series.remove(&labels).unwrap_or_default();
                samples.sort_by_key(|s| s.timestamp_ms);
                SeriesSamples { labels, samples }
            })
            .collect();
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
