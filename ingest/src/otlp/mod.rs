//! OpenTelemetry's OTLP over gRPC (`:4317`) and HTTP (`:4318`).
//!
//! Metrics, logs and traces are taken on both: `MetricsService/Export` and
//! `POST /v1/metrics`, `LogsService/Export` and `POST /v1/logs`,
//! `TraceService/Export` and `POST /v1/traces` (protobuf or JSON, gzip).
//! Metrics are converted as Prometheus's OTLP receiver converts them
//! ([`metrics`]), logs into log records ([`logs`]), spans into span records
//! ([`traces`]) whose RED metrics go to the metrics store
//! ([`spanmetrics`]); all are written to their store before the answer,
//! and what cannot be stored is named in a partial success.

pub mod exponential;
pub mod json;
pub mod logs;
pub mod metrics;
pub mod proto;
pub mod spanmetrics;
pub mod traces;

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use sextant_model::telemetry::ListenerStats;
use sextant_storage::{LogWriter, MetricsWriter, SpanWriter};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use self::metrics::DeltaState;
use self::proto::logs::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use self::proto::metrics::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use self::proto::trace::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use self::spanmetrics::SpanMetrics;
use crate::limits::Limits;
use crate::logs::Normalizer;
use crate::net::{CountingListener, CountingStream};

/// The gRPC path of the metrics export call.
pub const METRICS_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// The gRPC path of the logs export call.
pub const LOGS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The gRPC path of the trace export call.
pub const TRACES_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type WriterSource = dyn Fn() -> Option<Arc<dyn MetricsWriter>> + Send + Sync;
type LogWriterSource = dyn Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync;
type SpanWriterSource = dyn Fn() -> Option<Arc<dyn SpanWriter>> + Send + Sync;

/// What both OTLP listeners share: where metrics and logs go, the delta
/// totals, and log normalisation (redaction).
pub struct Otlp {
    writer: Box<WriterSource>,
    log_writer: Box<LogWriterSource>,
    span_writer: Box<SpanWriterSource>,
    span_metrics: SpanMetrics,
    normalizer: Normalizer,
    deltas: Mutex<DeltaState>,
    slots: Arc<Semaphore>,
    /// The `limits` settings: body sizes, spans per export, exports at once.
    limits: Limits,
    /// Checks every export's credentials once set (no checks before).
    auth: std::sync::OnceLock<Arc<dyn ExportAuth>>,
    /// `instance` given to span metrics that have none: in cluster mode
    /// each node counts the spans it took, so its series are its own.
    span_metrics_instance: std::sync::OnceLock<Arc<str>>,
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otlp").finish_non_exhaustive()
    }
}

/// Who may export: the server checks the credentials a request carries
/// (HTTP headers, or gRPC metadata, which arrive as headers too).
pub trait ExportAuth: Send + Sync + std::fmt::Debug {
    /// Ok with the token's tenant, if it has one (what is exported is
    /// stamped with it).
    fn check(&self, headers: &HeaderMap) -> Result<Option<Arc<str>>, AuthRefusal>;
}

/// Why an export was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRefusal {
    /// 401 / UNAUTHENTICATED: no credentials, or unknown ones.
    Unauthenticated(String),
    /// 403 / PERMISSION_DENIED: known credentials without the right to export.
    Forbidden(String),
}

/// Why an export was not taken.
#[derive(Debug)]
pub enum ExportError {
    /// The body could not be read: permanent (400, INVALID_ARGUMENT).
    Invalid(String),
    /// Try again later (503/429, UNAVAILABLE): starting, overloaded, or the store failed.
    Retry(String),
}

impl Otlp {
    /// The OTLP pipeline writing metrics to whatever `writer` returns, logs
    /// to whatever `log_writer` returns and spans to whatever `span_writer`
    /// returns (`None` while starting).
    pub fn new(
        writer: impl Fn() -> Option<Arc<dyn MetricsWriter>> + Send + Sync + 'static,
        log_writer: impl Fn() -> Option<Arc<dyn LogWriter>> + Send + Sync + 'static,
        span_writer: impl Fn() -> Option<Arc<dyn SpanWriter>> + Send + Sync + 'static,
        normalizer: Normalizer,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Self {
            writer: Box::new(writer),
            log_writer: Box::new(log_writer),
            span_writer: Box::new(span_writer),
            span_metrics: SpanMetrics::default(),
            normalizer,
            deltas: Mutex::new(DeltaState::default()),
            slots: Arc::new(Semaphore::new(limits.max_concurrent_ingest.max(1))),
            limits,
            auth: std::sync::OnceLock::new(),
            span_metrics_instance: std::sync::OnceLock::new(),
        })
    }

    /// Has every export's credentials checked by `auth` from now on.
    pub fn set_auth(&self, auth: Arc<dyn ExportAuth>) {
        let _ = self.auth.set(auth);
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<Option<Arc<str>>, AuthRefusal> {
        self.auth.get().map_or(Ok(None), |auth| auth.check(headers))
    }

    /// One of the export slots, or a retryable refusal when all are taken.
    fn slot(
        &self,
        stats: &ListenerStats,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, ExportError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            stats.dropped.inc();
            ExportError::Retry(format!(
                "{} OTLP exports are already in progress (limits.max_concurrent_ingest); retry shortly",
                self.limits.max_concurrent_ingest
            ))
        })
    }

    /// Stores one logs export (redacted) before answering.
    pub async fn export_logs(
        self: &Arc<Self>,
        request: ExportLogsServiceRequest,
        stats: &ListenerStats,
    ) -> Result<ExportLogsServiceResponse, ExportError> {
        let _slot = self.slot(stats)?;
        let Some(writer) = (self.log_writer)() else {
            return Err(ExportError::Retry(
                "Sextant is starting: the log store is being opened".into(),
            ));
        };
        let this = self.clone();
        let tenant = crate::tenant::current();
        let refused = on_blocking_thread(move || {
            let now_us = now_ms().saturating_mul(1000);
            let (mut records, refused) = logs::convert(&request, &this.normalizer, now_us);
            if let Some(tenant) = &tenant {
                records
                    .iter_mut()
                    .for_each(|r| crate::tenant::stamp_log(r, tenant));
            }
            writer.append_logs(&records)?;
            Ok::<_, sextant_storage::Error>(refused)
        })
        .await?;
        if !refused.is_empty() {
            stats.dropped.add(refused.len() as u64);
        }
        Ok(ExportLogsServiceResponse {
            partial_success: (!refused.is_empty()).then(|| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(refused.len()).unwrap_or(i64::MAX),
                error_message: summary(&refused),
            }),
        })
    }

    /// Stores one trace export, then its span metrics; refused spans are
    /// named in the partial success.
    pub async fn export_traces(
        self: &Arc<Self>,
        request: ExportTraceServiceRequest,
        stats: &ListenerStats,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        let _slot = self.slot(stats)?;
        let Some(spans) = (self.span_writer)() else {
            return Err(ExportError::Retry(
                "Sextant is starting: the span store is being opened".into(),
            ));
        };
        let this = self.clone();
        let tenant = crate::tenant::current();
        let converted = on_blocking_thread(move || {
            let mut converted = traces::convert(request);
            if let Some(tenant) = &tenant {
                converted
                    .spans
                    .iter_mut()
                    .for_each(|s| crate::tenant::stamp_span(s, tenant));
            }
            let max = this.limits.max_spans_per_request;
            if converted.spans.len() > max {
                let excess = converted.spans.len() - max;
                crate::limits::REFUSED.spans_per_request.add(excess as u64);
                converted.reasons.push(format!(
                    "the export has {} spans, more than limits.max_spans_per_request ({max}); the first {max} were kept",
                    converted.spans.len()
                ));
                converted.rejected += excess as u64;
                converted.spans.truncate(max);
            }
            spans.append_spans(&converted.spans)?;
            // Counted once kept; written by the next flush.
            this.span_metrics.observe(&converted.spans);
            Ok::<_, sextant_storage::Error>(converted)
        })
        .await?;
        if converted.rejected > 0 {
            stats.dropped.add(converted.rejected);
        }
        Ok(ExportTraceServiceResponse {
            partial_success: (converted.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(converted.rejected).unwrap_or(i64::MAX),
                error_message: converted.reasons.join("; "),
            }),
        })
    }

    /// Writes the span metrics counted since the last flush to the metrics
    /// store (every few seconds in the server). A failure is logged; the
    /// counts stay, and their series are written again when next counted.
    pub fn flush_span_metrics(&self) {
        let Some(metrics) = (self.writer)() else {
            return;
        };
        let (mut series, mut exemplars) = self.span_metrics.flush_with_exemplars(now_ms());
        if series.is_empty() {
            return;
        }
        if let Some(instance) = self.span_metrics_instance.get() {
            for s in &mut series {
                s.labels = with_instance(&s.labels, instance);
            }
            for (labels, _) in &mut exemplars {
                *labels = with_instance(labels, instance);
            }
        }
        if let Err(err) = metrics.append(&series) {
            tracing::warn!(error = %err, "storing span metrics failed");
        }
        if !exemplars.is_empty()
            && let Err(err) = metrics.append_exemplars(&exemplars)
        {
            tracing::warn!(error = %err, "storing span metrics' exemplars failed");
        }
    }

    /// Gives span metrics `instance="<instance>"` where they have none
    /// (cluster mode: the node id, so two nodes' counts of the same
    /// service are two series, as two exporters' would be).
    pub fn set_span_metrics_instance(&self, instance: &str) {
        let _ = self.span_metrics_instance.set(instance.into());
    }

    /// Series summed from deltas carry `sextant_node="<node>"` (cluster
    /// mode: each node keeps its own running totals).
    pub fn set_delta_node(&self, node: &str) {
        self.deltas.lock().expect("delta lock").set_node(node);
    }

    /// Converts and stores one metrics export; returns the partial success, if any.
    pub async fn export_metrics(
        self: &Arc<Self>,
        request: ExportMetricsServiceRequest,
        stats: &ListenerStats,
    ) -> Result<ExportMetricsServiceResponse, ExportError> {
        let _slot = self.slot(stats)?;
        let Some(writer) = (self.writer)() else {
            return Err(ExportError::Retry(
                "Sextant is starting: the write-ahead log is being replayed".into(),
            ));
        };
        let this = self.clone();
        let tenant = crate::tenant::current();
        let stored = on_blocking_thread(move || {
            let now = now_ms();
            let mut converted = {
                let mut deltas = this.deltas.lock().expect("delta lock");
                metrics::convert(&request, &mut deltas, now)
            };
            if let Some(tenant) = &tenant {
                for series in &mut converted.series {
                    series.labels = crate::tenant::stamp_labels(&series.labels, tenant);
                }
                for series in &mut converted.histograms {
                    series.labels = crate::tenant::stamp_labels(&series.labels, tenant);
                }
                for (series, _) in &mut converted.exemplars {
                    *series = crate::tenant::stamp_labels(series, tenant);
                }
            }
            for (name, meta) in &converted.metadata {
                writer.set_metadata(name, meta.clone())?;
            }
            let mut report = writer.append(&converted.series)?;
            if !converted.histograms.is_empty() {
                let histograms = writer.append_histograms(&converted.histograms)?;
                report.accepted += histograms.accepted;
                for (reason, n) in histograms.rejected {
                    *report.rejected.entry(reason).or_default() += n;
                }
                if report.first_rejection.is_none() {
                    report.first_rejection = histograms.first_rejection;
                }
            }
            if !converted.exemplars.is_empty() {
                writer.append_exemplars(&converted.exemplars)?;
            }
            Ok::<_, sextant_storage::Error>((converted, report))
        })
        .await?;
        let (converted, report) = stored;
        let mut reasons = converted.reasons;
        if let Some(first) = &report.first_rejection {
            reasons.push(format!(
                "{} samples refused by the store (first: {first})",
                report.rejected_total()
            ));
        }
        let rejected = converted.rejected + report.rejected_total();
        if rejected > 0 {
            stats.dropped.add(rejected);
        }
        Ok(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: reasons.join("; "),
            }),
        })
    }
}

/// Runs a conversion and store off the async threads; a failure (or a
/// panic) asks the sender to retry.
async fn on_blocking_thread<T: Send + 'static>(
    work: impl FnOnce() -> sextant_storage::Result<T> + Send + 'static,
) -> Result<T, ExportError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ExportError::Retry(format!("storing failed: {e}")))?
        .map_err(|e| {
            ExportError::Retry(if e.is_disk_full() {
                format!("the disk holding the data directory is full; nothing was stored, retry once space is freed ({e})")
            } else {
                format!("storing failed: {e}")
            })
        })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Clone)]
struct HttpState {
    otlp: Arc<Otlp>,
    stats: Arc<ListenerStats>,
}

/// The OTLP/HTTP router.
pub fn http_router(otlp: Arc<Otlp>, stats: Arc<ListenerStats>) -> Router {
    Router::new()
        .route("/v1/metrics", axum::routing::post(http_metrics))
        .route("/v1/logs", axum::routing::post(http_logs))
        .route("/v1/traces", axum::routing::post(http_traces))
        .fallback(http_fallback)
        .layer(DefaultBodyLimit::max(otlp.limits.max_request_body))
        .layer(axum::middleware::from_fn_with_state(
            otlp.clone(),
            http_gate,
        ))
        .with_state(HttpState { otlp, stats })
}

/// OTLP/HTTP's credentials check: 401 or 403 with a `google.rpc.Status`
/// in the request's encoding.
async fn http_gate(
    State(otlp): State<Arc<Otlp>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    match otlp.authorize(request.headers()) {
        Ok(tenant) => crate::tenant::TENANT.scope(tenant, next.run(request)).await,
        Err(refusal) => {
            let encoding = if request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/json"))
            {
                Encoding::Json
            } else {
                Encoding::Protobuf
            };
            let (status, message) = match refusal {
                AuthRefusal::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
                AuthRefusal::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            };
            status_response(encoding, status, message)
        }
    }
}

/// OTLP/gRPC's credentials check, on the call's metadata: UNAUTHENTICATED
/// or PERMISSION_DENIED.
async fn grpc_gate(
    State(otlp): State<Arc<Otlp>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    match otlp.authorize(request.headers()) {
        Ok(tenant) => crate::tenant::TENANT.scope(tenant, next.run(request)).await,
        Err(AuthRefusal::Unauthenticated(m)) => {
            tonic::Status::unauthenticated(m).into_http::<axum::body::Body>()
        }
        Err(AuthRefusal::Forbidden(m)) => {
            tonic::Status::permission_denied(m).into_http::<axum::body::Body>()
        }
    }
}

/// How an OTLP/HTTP body is encoded; the answer uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn http_metrics(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let otlp = state.otlp.clone();
    let stats = state.stats.clone();
    http_export(
        &state,
        &headers,
        &body,
        "ExportMetricsServiceRequest",
        json::metrics_request,
        metrics_response_json,
        |request| async move { otlp.export_metrics(request, &stats).await },
    )
    .await
}

async fn http_logs(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let otlp = state.otlp.clone();
    let stats = state.stats.clone();
    http_export(
        &state,
        &headers,
        &body,
        "ExportLogsServiceRequest",
        json::logs_request,
        logs_response_json,
        |request| async move { otlp.export_logs(request, &stats).await },
    )
    .await
}

async fn http_traces(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let otlp = state.otlp.clone();
    let stats = state.stats.clone();
    http_export(
        &state,
        &headers,
        &body,
        "ExportTraceServiceRequest",
        json::traces_request,
        traces_response_json,
        |request| async move { otlp.export_traces(request, &stats).await },
    )
    .await
}

fn logs_response_json(response: &ExportLogsServiceResponse) -> String {
    match &response.partial_success {
        None => "{}".to_owned(),
        Some(partial) => serde_json::json!({
            "partialSuccess": {
                "rejectedLogRecords": partial.rejected_log_records.to_string(),
                "errorMessage": partial.error_message,
            }
        })
        .to_string(),
    }
}

fn traces_response_json(response: &ExportTraceServiceResponse) -> String {
    match &response.partial_success {
        None => "{}".to_owned(),
        Some(partial) => serde_json::json!({
            "partialSuccess": {
                "rejectedSpans": partial.rejected_spans.to_string(),
                "errorMessage": partial.error_message,
            }
        })
        .to_string(),
    }
}

/// One OTLP/HTTP export: the body decoded (protobuf or JSON, gzip), handed
/// to `export`, and the answer (or a `google.rpc.Status`) in the request's encoding.
async fn http_export<Req, Resp, Fut>(
    state: &HttpState,
    headers: &HeaderMap,
    body: &[u8],
    message: &str,
    from_json: fn(&[u8]) -> Result<Req, String>,
    to_json: fn(&Resp) -> String,
    export: impl FnOnce(Req) -> Fut,
) -> Response
where
    Req: prost::Message + Default,
    Resp: prost::Message,
    Fut: Future<Output = Result<Resp, ExportError>>,
{
    state.stats.requests.inc();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let content_type = text(header::CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            state.stats.errors.inc();
            return status_response(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {other:?} is not supported; send application/x-protobuf or application/json"
                ),
            );
        }
    };
    let outcome = async {
        let body = decompress(
            text(header::CONTENT_ENCODING),
            body,
            state.otlp.limits.max_decompressed_body,
        )
        .map_err(ExportError::Invalid)?;
        let request = match encoding {
            Encoding::Protobuf => Req::decode(&body[..])
                .map_err(|e| ExportError::Invalid(format!("body is not an {message}: {e}")))?,
            Encoding::Json => from_json(&body).map_err(ExportError::Invalid)?,
        };
        export(request).await
    }
    .await;
    match outcome {
        Ok(response) => {
            let body = match encoding {
                Encoding::Protobuf => response.encode_to_vec(),
                Encoding::Json => to_json(&response).into_bytes(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type_of(encoding))],
                body,
            )
                .into_response()
        }
        Err(ExportError::Invalid(message)) => {
            state.stats.errors.inc();
            status_response(encoding, StatusCode::BAD_REQUEST, message)
        }
        Err(ExportError::Retry(message)) => {
            let mut response = status_response(encoding, StatusCode::SERVICE_UNAVAILABLE, message);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            response
        }
    }
}

fn content_type_of(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    }
}

fn metrics_response_json(response: &ExportMetricsServiceResponse) -> String {
    match &response.partial_success {
        None => "{}".to_owned(),
        Some(partial) => serde_json::json!({
            "partialSuccess": {
                "rejectedDataPoints": partial.rejected_data_points.to_string(),
                "errorMessage": partial.error_message,
            }
        })
        .to_string(),
    }
}

/// An error answer: a `google.rpc.Status` in the request's encoding.
fn status_response(encoding: Encoding, status: StatusCode, message: String) -> Response {
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
        StatusCode::NOT_FOUND => 5,
        StatusCode::UNAUTHORIZED => 16, // UNAUTHENTICATED
        StatusCode::FORBIDDEN => 7,     // PERMISSION_DENIED
        StatusCode::NOT_IMPLEMENTED | StatusCode::METHOD_NOT_ALLOWED => 12, // UNIMPLEMENTED
        _ => 14,                        // UNAVAILABLE
    };
    let body = match encoding {
        Encoding::Protobuf => proto::Status { code, message }.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message, "error": message })
            .to_string()
            .into_bytes(),
    };
    (
        status,
        [(header::CONTENT_TYPE, content_type_of(encoding))],
        body,
    )
        .into_response()
}

/// Several refusal reasons in one message: the first few, then how many more.
fn summary(reasons: &[String]) -> String {
    let mut shown: Vec<&str> = reasons.iter().take(3).map(String::as_str).collect();
    let more = reasons.len().saturating_sub(3);
    let tail = format!("and {more} more");
    if more > 0 {
        shown.push(&tail);
    }
    shown.join("; ")
}

/// Undoes `Content-Encoding: gzip` (or none), at most `limit` bytes
/// (`limits.max_decompressed_body`).
fn decompress(encoding: &str, body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(body.to_vec()),
        "gzip" => crate::net::gunzip(body, limit).map_err(|e| match e {
            crate::net::GunzipError::TooLarge(_) => {
                crate::limits::REFUSED.decompressed_body.inc();
                format!("the body decompresses to more than limits.max_decompressed_body ({limit} bytes)")
            }
            other => other.to_string(),
        }),
        other => Err(format!(
            "Content-Encoding {other:?} is not supported; send gzip or none"
        )),
    }
}

async fn http_fallback(
    State(state): State<HttpState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let stats = &state.stats;
    stats.requests.inc();
    let path = uri.path();
    let known = matches!(path, "/v1/traces" | "/v1/logs" | "/v1/metrics");
    let (status, message) = if known {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} {path}: OTLP/HTTP accepts POST only"),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("no OTLP/HTTP endpoint at {path}; use /v1/traces, /v1/logs or /v1/metrics"),
        )
    };
    stats.errors.inc();
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Serves OTLP/HTTP on `listener` until `shutdown` is cancelled.
pub async fn serve_http(
    listener: TcpListener,
    otlp: Arc<Otlp>,
    stats: Arc<ListenerStats>,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    let router = http_router(otlp, stats.clone());
    match tls {
        Some(acceptor) => {
            axum::serve(
                crate::net::TlsListener::new(listener, stats, acceptor)?,
                router,
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        }
        None => {
            axum::serve(CountingListener::new(listener, stats), router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
    }
}

type ExportFuture<Resp> = std::pin::Pin<Box<dyn Future<Output = Result<Resp, ExportError>> + Send>>;

/// An export call as a tonic unary service: `export` stores the request.
struct Unary<Req, Resp> {
    state: HttpState,
    export: fn(Arc<Otlp>, Req, Arc<ListenerStats>) -> ExportFuture<Resp>,
}

impl<Req, Resp> Clone for Unary<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            export: self.export,
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> tonic::server::UnaryService<Req>
    for Unary<Req, Resp>
{
    type Response = Resp;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<tonic::Response<Self::Response>, tonic::Status>> + Send>,
    >;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let state = self.state.clone();
        let exported = (self.export)(
            state.otlp.clone(),
            request.into_inner(),
            state.stats.clone(),
        );
        Box::pin(async move {
            state.stats.requests.inc();
            match exported.await {
                Ok(response) => Ok(tonic::Response::new(response)),
                Err(ExportError::Invalid(message)) => {
                    state.stats.errors.inc();
                    Err(tonic::Status::invalid_argument(message))
                }
                Err(ExportError::Retry(message)) => Err(tonic::Status::unavailable(message)),
            }
        })
    }
}

async fn grpc_unary<Req, Resp>(service: Unary<Req, Resp>, request: Request) -> Response
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
{
    // A message is checked once decompressed, so the larger limit applies.
    let limit = service.state.otlp.limits.max_decompressed_body;
    let codec = tonic_prost::ProstCodec::<Resp, Req>::default();
    let mut grpc = tonic::server::Grpc::new(codec)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    grpc.unary(service, request)
        .await
        .map(axum::body::Body::new)
}

async fn grpc_metrics(State(state): State<HttpState>, request: Request) -> Response {
    let service = Unary {
        state,
        export: |otlp, request: ExportMetricsServiceRequest, stats| {
            Box::pin(async move { otlp.export_metrics(request, &stats).await })
        },
    };
    grpc_unary(service, request).await
}

async fn grpc_traces(State(state): State<HttpState>, request: Request) -> Response {
    let service = Unary {
        state,
        export: |otlp, request: ExportTraceServiceRequest, stats| {
            Box::pin(async move { otlp.export_traces(request, &stats).await })
        },
    };
    grpc_unary(service, request).await
}

async fn grpc_logs(State(state): State<HttpState>, request: Request) -> Response {
    let service = Unary {
        state,
        export: |otlp, request: ExportLogsServiceRequest, stats| {
            Box::pin(async move { otlp.export_logs(request, &stats).await })
        },
    };
    grpc_unary(service, request).await
}

/// Serves OTLP/gRPC on `listener` until `shutdown` completes.
pub async fn serve_grpc(
    listener: TcpListener,
    otlp: Arc<Otlp>,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), tonic::transport::Error> {
    let routes = tonic::service::Routes::from(
        Router::new()
            .route(METRICS_EXPORT_PATH, axum::routing::post(grpc_metrics))
            .route(LOGS_EXPORT_PATH, axum::routing::post(grpc_logs))
            .route(TRACES_EXPORT_PATH, axum::routing::post(grpc_traces))
            .fallback(grpc_fallback)
            .layer(axum::middleware::from_fn_with_state(
                otlp.clone(),
                grpc_gate,
            ))
            .with_state(HttpState {
                otlp,
                stats: stats.clone(),
            }),
    );
    if let Some(acceptor) = tls {
        let incoming = match crate::net::TlsListener::new(listener, stats, acceptor) {
            Ok(tls) => tls.into_incoming(),
            Err(err) => {
                tracing::error!(error = %err, "the OTLP/gRPC TLS listener could not start");
                return Ok(());
            }
        };
        return tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(routes, incoming, shutdown)
            .await;
    }
    let incoming = TcpListenerStream::new(listener).map(move |accepted| {
        accepted.map(|stream| {
            let _ = stream.set_nodelay(true);
            CountingStream::new(stream, stats.clone())
        })
    });
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(routes, incoming, shutdown)
        .await
}

async fn grpc_fallback(State(state): State<HttpState>, OriginalUri(uri): OriginalUri) -> Response {
    let stats = &state.stats;
    stats.requests.inc();
    stats.errors.inc();
    tonic::Status::unimplemented(format!(
        "{} is not an OTLP export service; use TraceService, MetricsService or LogsService",
        uri.path()
    ))
    .into_http::<axum::body::Body>()
}

/// `labels` with `instance="<instance>"` added unless they have one.
pub fn with_instance(labels: &sextant_model::Labels, instance: &str) -> sextant_model::Labels {
    if labels.get("instance").is_some() {
        return labels.clone();
    }
    sextant_model::Labels::from_pairs(
        labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .chain(std::iter::once((
                Arc::from("instance"),
                Arc::from(instance),
            ))),
    )
}
