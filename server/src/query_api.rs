//! PromQL over HTTP, as Prometheus serves it: `/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/format_query`, `/api/v1/query_exemplars`
//! and `/api/v1/status/buildinfo`, GET or POST form, in Prometheus's envelope.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sextant_model::PromDuration;
use sextant_query::parse_time;
use sextant_query::promql::results_cache::{CacheConfig, ResultsCache};
use sextant_query::promql::{Annotations, Engine, EngineOptions, QueryValue, write_sample_value};

use crate::api::{blocking, param, params, success};
use crate::http::{ApiError, AppState};

/// Prometheus refuses range queries with more points than this per series.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Writes a query result in Prometheus's envelope straight into text: a
/// range query can return millions of points, too many for a JSON tree.
fn result_body(value: &QueryValue, notes: &Annotations) -> String {
    use std::fmt::Write as _;
    fn string(out: &mut String, text: &str) {
        // serde_json escapes exactly as JSON requires.
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    }
    fn timestamp(out: &mut String, ms: i64) {
        // Seconds, with milliseconds only when there are some (as Prometheus).
        if ms < 0 {
            let _ = write!(out, "{}", ms as f64 / 1000.0);
            return;
        }
        out.push_str(itoa::Buffer::new().format(ms / 1000));
        let frac = ms % 1000;
        if frac != 0 {
            let digits = format!("{frac:03}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
    }
    fn point(out: &mut String, t: i64, v: f64) {
        out.push('[');
        timestamp(out, t);
        out.push_str(",\"");
        sample_value(out, v);
        out.push_str("\"]");
    }
    /// `[t, {"count":..,"sum":..,"buckets":[..]}]`, Prometheus's histogram point.
    fn histogram_point(out: &mut String, t: i64, h: &sextant_model::histogram::FloatHistogram) {
        out.push('[');
        timestamp(out, t);
        out.push(',');
        h.write_api_json(out);
        out.push(']');
    }
    fn metric(out: &mut String, labels: &sextant_model::Labels) {
        out.push_str("{\"metric\":{");
        for (i, l) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, &l.name);
            out.push(':');
            string(out, &l.value);
        }
        out.push('}');
    }
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.push_str(value.type_name());
    out.push_str("\",\"result\":");
    match value {
        QueryValue::Scalar { t, v } => point(&mut out, *t, *v),
        QueryValue::String { t, v } => {
            out.push('[');
            timestamp(&mut out, *t);
            out.push(',');
            string(&mut out, v);
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                metric(&mut out, &s.labels);
                match &s.histogram {
                    Some(h) => {
                        out.push_str(",\"histogram\":");
                        histogram_point(&mut out, s.t, h);
                    }
                    None => {
                        out.push_str(",\"value\":");
                        point(&mut out, s.t, s.v);
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            // Large matrices are written in parts on all cores, then joined.
            let write_part = |part: &[sextant_query::promql::Series]| {
                let mut out =
                    String::with_capacity(part.iter().map(|s| 64 + s.points.len() * 24).sum());
                for s in part {
                    metric(&mut out, &s.labels);
                    // As Prometheus: `values` when there are floats,
                    // `histograms` when there are histograms, or both.
                    if !s.points.is_empty() || s.histograms.is_empty() {
                        out.push_str(",\"values\":[");
                        for (j, p) in s.points.iter().enumerate() {
                            if j > 0 {
                                out.push(',');
                            }
                            point(&mut out, p.t, p.v);
                        }
                        out.push(']');
                    }
                    if !s.histograms.is_empty() {
                        out.push_str(",\"histograms\":[");
                        for (j, p) in s.histograms.iter().enumerate() {
                            if j > 0 {
                                out.push(',');
                            }
                            histogram_point(&mut out, p.t, &p.h);
                        }
                        out.push(']');
                    }
                    out.push_str("},");
                }
                out
            };
            let points: usize = series
                .iter()
                .map(|s| s.points.len() + 8 * s.histograms.len())
                .sum();
            let threads = std::thread::available_parallelism()
                .map_or(1, usize::from)
                .min(8);
            let parts: Vec<String> = if points < 100_000 || threads == 1 || series.len() < 2 {
                vec![write_part(series)]
            } else {
                let per = series.len().div_ceil(threads);
                std::thread::scope(|scope| {
                    let handles: Vec<_> = series
                        .chunks(per)
                        .map(|part| scope.spawn(move || write_part(part)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_default())
                        .collect()
                })
            };
            out.reserve(parts.iter().map(String::len).sum::<usize>() + 2);
            out.push('[');
            for part in &parts {
                out.push_str(part);
            }
            if out.ends_with(',') {
                out.pop();
            }
            out.push(']');
        }
    }
    out.push('}');
    // Prometheus 3 reports hints beside the data; Grafana shows them.
    for (key, list) in [("warnings", &notes.warnings), ("infos", &notes.infos)] {
        if !list.is_empty() {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":[");
            for (i, note) in list.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(&mut out, note);
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// [`write_sample_value`]'s text, written quicker: a range query's answer
/// holds millions of values, and formatting them was most of its time.
///
/// ryu and Rust's formatting both write the shortest digits that read back
/// as the value, and differ only when two such strings lie equally near
/// it: ryu then takes the even last digit, Rust rounds up. That needs a
/// value whose exact decimal expansion has one digit more than the
/// shortest string, so at most 18 significant digits, and a shortest string
/// of 16 digits or more (up to 15 digits there is one string: two
/// candidates lie further apart than a double's rounding interval is
/// wide). A value with more than 30 bits after its binary point has a
/// longer expansion (5^30 alone has 21 digits). Those ambiguous values, an
/// exponent, and values that are not finite go the general way.
fn sample_value(out: &mut String, v: f64) {
    if v.is_finite() && (v == 0.0 || (1e-6..1e21).contains(&v.abs())) {
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(v);
        // Leading zeros and a trailing ".0" count too: a few values more
        // are checked than need be.
        if !text.contains('e')
            && (text.bytes().filter(u8::is_ascii_digit).count() <= 15 || fraction_bits(v) > 30)
        {
            out.push_str(text.strip_suffix(".0").unwrap_or(text));
            return;
        }
    }
    write_sample_value(out, v);
}

/// How many bits after the binary point a finite double's exact value has.
fn fraction_bits(v: f64) -> i32 {
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let mantissa = match exponent {
        0 => bits & ((1 << 52) - 1),
        _ => (bits & ((1 << 52) - 1)) | (1 << 52),
    };
    if mantissa == 0 {
        return 0;
    }
    // The value is mantissa * 2^(exponent - 1075) (1 for subnormals).
    (1075 - exponent.max(1) - mantissa.trailing_zeros() as i32).max(0)
}

/// A duration parameter in seconds: Prometheus's notation (`15s`, `1m30s`)
/// or a number of seconds.
fn parse_duration_param(name: &str, value: &str) -> Result<f64, ApiError> {
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds.abs() < 1e15 {
            return Ok(seconds);
        }
    } else if let Ok(d) = value.parse::<PromDuration>() {
        return Ok(d.as_std().as_secs_f64());
    }
    Err(ApiError::BadData(format!(
        "invalid parameter {name:?}: cannot parse {value:?} to a valid duration"
    )))
}

fn time_param(pairs: &[(String, String)], name: &str) -> Result<Option<i64>, ApiError> {
    param(pairs, name)
        .map(|v| {
            parse_time(name, v).map_err(|_| {
                ApiError::BadData(format!(
                    "invalid parameter {name:?}: cannot parse {v:?} to a valid timestamp"
                ))
            })
        })
        .transpose()
}

/// The engine for one request: the server's options, narrowed by the
/// request's `timeout` and `lookback_delta`.
fn engine_for(state: &AppState, pairs: &[(String, String)]) -> Result<Engine, ApiError> {
    let reader = state.stores()?.metrics_reader.clone();
    let mut options: EngineOptions = state.query.options.clone();
    if let Some(t) = param(pairs, "timeout") {
        let seconds = parse_duration_param("timeout", t)?;
        if seconds > 0.0 {
            options.timeout = options.timeout.min(Duration::from_secs_f64(seconds));
        }
    }
    if let Some(l) = param(pairs, "lookback_delta") {
        let ms = (parse_duration_param("lookback_delta", l)? * 1000.0).round() as i64;
        if ms > 0 {
            options.lookback_delta_ms = ms;
        }
    }
    Ok(Engine::new(reader, options))
}

/// The `query` parameter's text.
fn query_text(pairs: &[(String, String)]) -> String {
    param(pairs, "query").unwrap_or_default().to_owned()
}

/// Parses a query; call it on the blocking pool (within the deadline), since
/// a long or deep expression takes a while to refuse.
fn parse_query(query: &str) -> Result<sextant_query::promql::Expr, ApiError> {
    sextant_query::promql::parse(query)
        .map_err(|e| ApiError::BadData(format!("invalid parameter \"query\": {e}")))
}

/// When a request's query must be answered by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: std::time::Instant,
    /// The request's `timeout` or `query.timeout`, whichever is shorter.
    timeout: Duration,
}

/// Runs `work` on the blocking pool (whose threads have the query stack)
/// and gives up waiting at `deadline`; the work then finishes on its own,
/// holding a query slot, so abandoned work cannot pile up past
/// `query.max_concurrency`.
pub(crate) async fn with_deadline<T: Send + 'static>(
    state: &AppState,
    deadline: Deadline,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let slot = state
        .query
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Unavailable("Sextant is shutting down".into()))?;
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    });
    match tokio::time::timeout_at(deadline.at.into(), task).await {
        Ok(done) => done.map_err(|e| ApiError::Internal(format!("query worker failed: {e}")))?,
        Err(_) => Err(ApiError::Timeout(format!(
            "query timed out after {:?} (the request's timeout or query.timeout)",
            deadline.timeout
        ))),
    }
}

/// When a request's query must be answered by: its `timeout` or the
/// server's, counted from when the request came in.
pub(crate) fn deadline_of(
    state: &AppState,
    pairs: &[(String, String)],
) -> Result<Deadline, ApiError> {
    let mut timeout = state.query.options.timeout;
    if let Some(t) = param(pairs, "timeout") {
        let seconds = parse_duration_param("timeout", t)?;
        if seconds > 0.0 {
            timeout = timeout.min(Duration::from_secs_f64(seconds));
        }
    }
    Ok(Deadline {
        at: std::time::Instant::now() + timeout,
        timeout,
    })
}

/// Evaluates a parsed query, at most `max_concurrency` at once, and writes
/// the answer.
async fn run(
    state: &AppState,
    deadline: Deadline,
    work: impl FnOnce() -> Result<(QueryValue, Annotations), ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let value = with_deadline(state, deadline, work).await;
    state.metrics.queries.inc();
    state
        .metrics
        .query_micros
        .add(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    if value.is_err() {
        state.metrics.query_failures.inc();
    }
    let body = blocking(move || {
        let (value, notes) = value?;
        Ok(result_body(&value, &notes))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET|POST /api/v1/query?query=&time=&timeout=`.
pub async fn instant(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &body);
    let deadline = deadline_of(&state, &pairs)?;
    let time = time_param(&pairs, "time")?.unwrap_or_else(sextant_storage::Tsdb::now_ms);
    let engine = engine_for(&state, &pairs)?;
    let query = query_text(&pairs);
    run(&state, deadline, move || {
        let expr = parse_query(&query)?;
        Ok(engine.instant_query_expr(&expr, time)?)
    })
    .await
}

/// `GET|POST /api/v1/query_range?query=&start=&end=&step=&timeout=`.
pub async fn range(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &body);
    let start = time_param(&pairs, "start")?
        .ok_or_else(|| ApiError::BadData("invalid parameter \"start\": missing".into()))?;
    let end = time_param(&pairs, "end")?
        .ok_or_else(|| ApiError::BadData("invalid parameter \"end\": missing".into()))?;
    if end < start {
        return Err(ApiError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    let step = param(&pairs, "step")
        .ok_or_else(|| ApiError::BadData("invalid parameter \"step\": missing".into()))
        .and_then(|s| parse_duration_param("step", s))
        .map(|seconds| (seconds * 1000.0).round() as i64)?;
    if step <= 0 {
        return Err(ApiError::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    let deadline = deadline_of(&state, &pairs)?;
    let engine = engine_for(&state, &pairs)?;
    let query = query_text(&pairs);
    let cache = state.query.results_cache.clone();
    let key = ResultsCache::key(
        &engine,
        sextant_ingest::tenant::current(),
        &query,
        start,
        step,
    );
    run(&state, deadline, move || {
        let expr = parse_query(&query)?;
        let now = sextant_storage::Tsdb::now_ms();
        Ok(cache.range_query(&engine, key, &expr, start, end, now)?)
    })
    .await
}

/// `GET|POST /api/v1/format_query?query=`: the expression pretty-printed.
pub async fn format_query(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &body);
    let deadline = deadline_of(&state, &pairs)?;
    let query = query_text(&pairs);
    let pretty = with_deadline(
        &state,
        deadline,
        move || Ok(parse_query(&query)?.prettify()),
    )
    .await?;
    Ok(success(Value::String(pretty)))
}

/// `GET|POST /api/v1/query_exemplars`: the exemplars of the series each
/// selector of `query` picks, in `[start, end]` (default: all), as
/// Prometheus answers: `[{seriesLabels, exemplars: [{labels, value,
/// timestamp}]}]`.
pub async fn query_exemplars(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = params(&uri, &headers, &body);
    let deadline = deadline_of(&state, &pairs)?;
    let query = query_text(&pairs);
    let start = time_param(&pairs, "start")?.unwrap_or(i64::MIN);
    let end = time_param(&pairs, "end")?.unwrap_or(i64::MAX);
    if end < start {
        return Err(ApiError::BadData(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    let reader = state.stores()?.metrics_reader.clone();
    let found = with_deadline(&state, deadline, move || {
        let sets = sextant_query::promql::selectors(&query)
            .map_err(|e| ApiError::BadData(format!("invalid parameter \"query\": {e}")))?;
        reader
            .exemplars(&sets, start, end)
            .map_err(|e| ApiError::from(sextant_query::Error::Storage(e)))
    })
    .await?;
    let data: Vec<Value> = found
        .into_iter()
        .map(|(series, exemplars)| {
            json!({
                "seriesLabels": labels_json(&series),
                "exemplars": exemplars.iter().map(|e| json!({
                    "labels": labels_json(&e.labels),
                    "value": crate::api::format_value(e.value),
                    "timestamp": e.timestamp_ms as f64 / 1000.0,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(success(Value::Array(data)))
}

fn labels_json(labels: &sextant_model::Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|l| (l.name.to_string(), Value::String(l.value.to_string())))
            .collect(),
    )
}

/// `GET /api/v1/status/buildinfo`. `version` is the Prometheus API level
/// Sextant answers to (Grafana enables features by it); Sextant's own version
/// and revision are beside it.
pub async fn buildinfo() -> Response {
    success(json!({
        // What Mimir reports here, and Grafana reads: rule groups can be
        // edited through the ruler API (ruler_api.rs).
        "features": {
            "ruler_config_api": "true",
            "alertmanager_config_api": "false",
            "query_sharding": "false",
            "federated_rules": "false",
        },
        "version": PROMETHEUS_COMPATIBLE_VERSION,
        "revision": crate::REVISION,
        "branch": "main",
        "buildUser": "sextant",
        "buildDate": "",
        "goVersion": "n/a (Rust)",
        "sextantVersion": crate::VERSION,
    }))
}

/// `GET /api/v1/status/flags`: Prometheus's flags endpoint. Grafana's
/// alerting probes it and, when it answers, asks the ruler API whether
/// rules can be edited (where vanilla Prometheus says no).
pub async fn flags() -> Response {
    success(json!({
        "sextant.version": crate::VERSION,
        "ruler.api": "true",
    }))
}

/// The Prometheus release whose query API Sextant follows.
pub const PROMETHEUS_COMPATIBLE_VERSION: &str = "3.0.0";

/// Query settings shared by handlers.
#[derive(Debug, Clone)]
pub struct QueryState {
    pub options: EngineOptions,
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Range-query answers for the next refresh (`query.results_cache`).
    pub results_cache: Arc<ResultsCache>,
}

impl QueryState {
    /// With the results cache's defaults.
    pub fn new(options: EngineOptions, max_concurrency: usize) -> Self {
        Self {
            options,
            slots: Arc::new(tokio::sync::Semaphore::new(max_concurrency.max(1))),
            results_cache: Arc::new(ResultsCache::new(CacheConfig::default())),
        }
    }

    pub fn with_results_cache(self, config: CacheConfig) -> Self {
        Self {
            results_cache: Arc::new(ResultsCache::new(config)),
            ..self
        }
    }
}

impl Default for QueryState {
    fn default() -> Self {
        Self::new(EngineOptions::default(), 20)
    }
}

#[cfg(test)]
mod tests {
    use sextant_model::Labels;
    use sextant_query::promql::{InstantSample, Point, Series};

    use super::*;

    proptest::proptest! {
        /// The quick value writer writes what the general one writes, for
        /// any bits and for the short decimals exporters print.
        #[test]
        fn quick_values_are_written_as_the_general_writer_writes_them(
            bits: u64,
            units in -10_000_000_000i64..10_000_000_000,
            digits in 0i32..12,
            big in 1i64 << 40..1i64 << 53,
            shift in 0i32..64,
        ) {
            // Random doubles, short decimals, and wide integers over a power
            // of two: the last are where two shortest strings can tie.
            let halves = big as f64 / 2f64.powi(shift);
            for v in [f64::from_bits(bits), units as f64 / 10f64.powi(digits), halves] {
                let (mut quick, mut general) = (String::new(), String::new());
                sample_value(&mut quick, v);
                write_sample_value(&mut general, v);
                proptest::prop_assert_eq!(quick, general);
            }
        }
    }

    #[test]
    fn fraction_bits_of_doubles() {
        assert_eq!(fraction_bits(0.0), 0);
        assert_eq!(fraction_bits(3.0), 0);
        assert_eq!(fraction_bits(1e20), 0);
        assert_eq!(fraction_bits(0.5), 1);
        assert_eq!(fraction_bits(-2.75), 2);
        assert_eq!(fraction_bits(500_000.000_488_281_25), 11);
        assert_eq!(fraction_bits(5e-324), 1074);
    }

    #[test]
    fn quick_values_at_the_edges_of_the_plain_notation() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-6,
            9.99e-7,
            1e-5,
            1e15,
            1e16,
            1e17,
            1.5e20,
            9.9e20,
            1e21,
            123_456_789.123,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            // Halfway between two shortest strings: ryu and Rust choose
            // differently.
            f64::from_bits(4_819_976_847_763_759_956), // 175901440771866.625
            500_000.000_488_281_25,
            1.0 / 60.0,
            1.7e9 + 0.1,
        ] {
            let (mut quick, mut general) = (String::new(), String::new());
            sample_value(&mut quick, v);
            write_sample_value(&mut general, v);
            assert_eq!(quick, general, "{v:e}");
        }
    }

    #[test]
    fn results_are_written_as_prometheus_writes_them() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        let matrix = QueryValue::Matrix(vec![Series {
            labels: labels.clone(),
            points: vec![
                Point { t: 1_000, v: 1.5 },
                Point {
                    t: 1_250,
                    v: f64::NAN,
                },
                Point {
                    t: 1_001,
                    v: f64::INFINITY,
                },
                Point { t: -1_500, v: -0.0 },
            ],
            histograms: Vec::new(),
        }]);
        let json: Value =
            serde_json::from_str(&result_body(&matrix, &Annotations::default())).unwrap();
        assert_eq!(
            json,
            json!({"status": "success", "data": {"resultType": "matrix", "result": [{
                "metric": {"__name__": "up", "job": "a\"b"},
                "values": [[1, "1.5"], [1.25, "NaN"], [1.001, "+Inf"], [-1.5, "-0"]],
            }]}})
        );
        // Go's notation: plain between 1e-6 and 1e21, an exponent outside.
        for (v, text) in [
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-07"),
            (-2.5e300, "-2.5e+300"),
            (1e20, "100000000000000000000"),
            (0.000001, "0.000001"),
        ] {
            let vector = QueryValue::Vector(vec![InstantSample {
                labels: labels.clone(),
                t: 2_000,
                v,
                histogram: None,
            }]);
            let json: Value =
                serde_json::from_str(&result_body(&vector, &Annotations::default())).unwrap();
            assert_eq!(json["data"]["result"][0]["value"], json!([2, text]));
        }
        let scalar = QueryValue::Scalar {
            t: 0,
            v: f64::NEG_INFINITY,
        };
        let json: Value =
            serde_json::from_str(&result_body(&scalar, &Annotations::default())).unwrap();
        assert_eq!(
            json["data"],
            json!({"resultType": "scalar", "result": [0, "-Inf"]})
        );
    }

    #[test]
    fn histograms_are_written_as_prometheus_writes_them() {
        let (literal, _) = sextant_model::histogram::parse_histogram_literal(
            "{{schema:0 count:5 sum:8 buckets:[1 4]}}",
        )
        .unwrap();
        let h = Arc::new(literal.histogram);
        let expected = json!({"count": "5", "sum": "8", "buckets": [
            [0, "0.5", "1", "1"],
            [0, "1", "2", "4"],
        ]});
        let labels = Labels::from_pairs([("__name__", "latency")]);
        let vector = QueryValue::Vector(vec![InstantSample {
            labels: labels.clone(),
            t: 2_500,
            v: 0.0,
            histogram: Some(h.clone()),
        }]);
        let json: Value =
            serde_json::from_str(&result_body(&vector, &Annotations::default())).unwrap();
        assert_eq!(
            json["data"]["result"],
            json!([{"metric": {"__name__": "latency"}, "histogram": [2.5, expected]}])
        );
        // A series with floats and histograms has both keys; with
        // histograms only, no `values`.
        let matrix = QueryValue::Matrix(vec![
            Series {
                labels,
                points: vec![Point { t: 1_000, v: 3.0 }],
                histograms: vec![sextant_query::promql::HPoint {
                    t: 2_000,
                    h: h.clone(),
                }],
            },
            Series {
                labels: Labels::from_pairs([("__name__", "other")]),
                points: Vec::new(),
                histograms: vec![sextant_query::promql::HPoint { t: 3_000, h }],
            },
        ]);
        let json: Value =
            serde_json::from_str(&result_body(&matrix, &Annotations::default())).unwrap();
        assert_eq!(
            json["data"]["result"],
            json!([
                {"metric": {"__name__": "latency"}, "values": [[1, "3"]],
                 "histograms": [[2, expected]]},
                {"metric": {"__name__": "other"}, "histograms": [[3, expected]]},
            ])
        );
    }
}
