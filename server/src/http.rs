//! The HTTP API on `:7070`: health, readiness, self-metrics, the metrics
//! ingest and read endpoints, and an honest answer for every contract path
//! whose feature has not landed yet.
//!
//! [`ApiError`] is the one place that turns failures into HTTP statuses.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use sextant_ingest::limits::Limits;
use sextant_model::telemetry::{CONTENT_TYPE, ListenerStats};
use sextant_storage::{LogReader, LogWriter, MetricsReader, MetricsWriter, SpanReader, SpanWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api;
use crate::query_api::{self, QueryState};
use crate::runtime::Runtime;
use crate::self_metrics::SelfMetrics;
use crate::{alerting_api, es_api, logs_api, traces_api};

/// The stores, available once recovery is done.
#[derive(Clone)]
pub struct Stores {
    pub metrics_writer: Arc<dyn MetricsWriter>,
    pub metrics_reader: Arc<dyn MetricsReader>,
    pub logs_writer: Arc<dyn LogWriter>,
    pub logs_reader: Arc<dyn LogReader>,
    pub spans_writer: Arc<dyn SpanWriter>,
    pub spans_reader: Arc<dyn SpanReader>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub metrics: Arc<SelfMetrics>,
    pub stores: Arc<OnceLock<Stores>>,
    /// Ingest requests being decoded or stored at once; beyond this, 429.
    pub ingest_slots: Arc<Semaphore>,
    /// PromQL options and the queries running at once.
    pub query: QueryState,
    /// Normalisation and redaction for logs posted over HTTP.
    pub logs: Arc<sextant_ingest::logs::Normalizer>,
    /// Scraping and reloads.
    pub runtime: Arc<Runtime>,
    /// The `limits` settings.
    pub limits: Arc<Limits>,
    /// How LogQL reads records (`logs.stream_labels`).
    pub logql: Arc<sextant_query::logql::eval::Options>,
    /// Cluster mode's metrics, once joined (never set on a single node).
    pub cluster: Arc<OnceLock<crate::cluster_api::ClusterStores>>,
}

impl AppState {
    /// Fresh state around the self-metrics and the (not yet open) stores.
    pub fn new(metrics: Arc<SelfMetrics>, stores: Arc<OnceLock<Stores>>) -> Self {
        Self {
            metrics,
            stores,
            ingest_slots: Arc::new(Semaphore::new(Limits::default().max_concurrent_ingest)),
            query: QueryState::default(),
            logs: Arc::default(),
            runtime: Arc::default(),
            limits: Arc::default(),
            logql: Arc::default(),
            cluster: Arc::default(),
        }
    }

    /// The same state serving cluster mode's reads once `cluster` is set.
    pub fn with_cluster(
        mut self,
        cluster: Arc<OnceLock<crate::cluster_api::ClusterStores>>,
    ) -> Self {
        self.cluster = cluster;
        self
    }

    /// The same state enforcing `limits`. Ingest requests handled at once
    /// are bounded (each holds its decoded batch in memory), so a flood of
    /// senders gets 429 and retries (remote write does, with backoff).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.ingest_slots = Arc::new(Semaphore::new(limits.max_concurrent_ingest.max(1)));
        self.limits = Arc::new(limits);
        self
    }

    /// Undoes gzip, refusing (413, counted) more than `limits.max_decompressed_body`.
    pub fn gunzip(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let limit = self.limits.max_decompressed_body;
        sextant_ingest::net::gunzip(body, limit).map_err(|e| match e {
            sextant_ingest::net::GunzipError::TooLarge(_) => {
                sextant_ingest::limits::REFUSED.decompressed_body.inc();
                ApiError::TooLarge(format!(
                    "the body decompresses to more than limits.max_decompressed_body ({limit} bytes)"
                ))
            }
            other => other.into(),
        })
    }

    /// The same state normalising posted logs with `normalizer`.
    pub fn with_logs(mut self, normalizer: Arc<sextant_ingest::logs::Normalizer>) -> Self {
        self.logs = normalizer;
        self
    }

    /// The same state with this runtime (scrape manager, reloads).
    pub fn with_runtime(mut self, runtime: Arc<Runtime>) -> Self {
        self.runtime = runtime;
        self
    }

    /// The same state reading logs for LogQL with these options.
    pub fn with_logql(mut self, options: sextant_query::logql::eval::Options) -> Self {
        self.logql = Arc::new(options);
        self
    }

    /// The same state with these query settings.
    pub fn with_query(mut self, query: QueryState) -> Self {
        self.query = query;
        self
    }

    /// A slot for one ingest request, or 429 when every slot is taken.
    pub fn ingest_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.ingest_slots.clone().try_acquire_owned().map_err(|_| {
            self.metrics.ingest_throttled.inc();
            ApiError::Overloaded(format!(
                "{} ingest requests are already in progress (limits.max_concurrent_ingest); retry shortly",
                self.limits.max_concurrent_ingest
            ))
        })
    }

    /// The stores, or 503 while recovery runs. Inside a request whose token
    /// has a tenant, the tenant's view of them ([`crate::tenant`]).
    pub fn stores(&self) -> Result<Stores, ApiError> {
        let stores = self.stores.get().ok_or(ApiError::Unavailable(
            "Sextant is starting: the write-ahead log is being replayed".into(),
        ))?;
        Ok(match sextant_ingest::tenant::current() {
            Some(tenant) => crate::tenant::stores_for(stores, &tenant),
            None => stores.clone(),
        })
    }
}

/// A request's query-string pairs, decoded.
pub(crate) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(crate) fn of(uri: &axum::http::Uri) -> Self {
        Self(
            uri.query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// The first value of `name`, unless it is empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The pairs, in order.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// More pairs (a form body's), after these.
    pub(crate) fn extend(&mut self, more: impl IntoIterator<Item = (String, String)>) {
        self.0.extend(more);
    }

    /// Every value of `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The HTTP API. `stats` counts this listener's requests and errors.
pub fn app(state: AppState, stats: Arc<ListenerStats>) -> Router {
    let mut router = Router::new();
    // The ruler API under each prefix Mimir, Cortex and Grafana use.
    for prefix in crate::ruler_api::PREFIXES {
        router = router
            .route(
                &format!("{prefix}/{{namespace}}"),
                get(crate::ruler_api::get_namespace)
                    .post(crate::ruler_api::post_group)
                    .delete(crate::ruler_api::delete_namespace),
            )
            .route(
                &format!("{prefix}/{{namespace}}/{{group}}"),
                get(crate::ruler_api::get_group).delete(crate::ruler_api::delete_group),
            );
    }
    router
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(self_metrics))
        .route(
            "/api/v1/write",
            post(api::remote_write)
                .layer(middleware::from_fn_with_state(state.clone(), ingest_gate)),
        )
        .route(
            "/api/v1/import/prometheus",
            post(api::import_prometheus)
                .layer(middleware::from_fn_with_state(state.clone(), ingest_gate)),
        )
        .route("/api/v1/export", get(api::export).post(api::export))
        .route("/api/v1/series", get(api::series).post(api::series))
        .route("/api/v1/labels", get(api::labels).post(api::labels))
        .route("/api/v1/label/{name}/values", get(api::label_values))
        .route("/api/v1/metadata", get(api::metadata))
        .route(
            "/api/v1/query",
            get(query_api::instant).post(query_api::instant),
        )
        .route(
            "/api/v1/query_range",
            get(query_api::range).post(query_api::range),
        )
        .route(
            "/api/v1/format_query",
            get(query_api::format_query).post(query_api::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query_api::query_exemplars).post(query_api::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(query_api::buildinfo))
        .route("/api/v1/status/cluster", get(crate::cluster_api::status))
        .route(
            "/internal/v1/metrics/read",
            post(crate::cluster_api::metrics_read),
        )
        .route(
            "/internal/v1/logs/read",
            post(crate::cluster_api::logs_read),
        )
        .route(
            "/internal/v1/traces/read",
            post(crate::cluster_api::traces_read),
        )
        .route("/api/v1/targets", get(api::targets))
        .route(
            "/api/v1/logs",
            post(logs_api::ingest)
                .layer(middleware::from_fn_with_state(state.clone(), ingest_gate)),
        )
        .route("/", get(crate::ui::root).head(es_api::info_head))
        .route("/ui", get(crate::ui::page))
        .route("/ui/", get(crate::ui::page))
        .route("/ui/{*path}", get(crate::ui::file))
        .route("/_license", get(es_api::license))
        .route(
            "/_bulk",
            post(es_api::bulk)
                .put(es_api::bulk)
                .layer(middleware::from_fn_with_state(state.clone(), ingest_gate)),
        )
        .route(
            "/{index}/_bulk",
            post(es_api::bulk_index)
                .put(es_api::bulk_index)
                .layer(middleware::from_fn_with_state(state.clone(), ingest_gate)),
        )
        .route(
            "/_index_template/{name}",
            get(es_api::not_found)
                .put(es_api::acknowledge)
                .post(es_api::acknowledge),
        )
        .route(
            "/_template/{name}",
            get(es_api::not_found)
                .put(es_api::acknowledge)
                .post(es_api::acknowledge),
        )
        .route(
            "/_component_template/{name}",
            get(es_api::not_found)
                .put(es_api::acknowledge)
                .post(es_api::acknowledge),
        )
        .route(
            "/_ilm/policy/{name}",
            get(es_api::not_found).put(es_api::acknowledge),
        )
        .route(
            "/loki/api/v1/push",
            post(logs_api::loki_push)
                .layer(middleware::from_fn_with_state(state.clone(), ingest_gate)),
        )
        .merge(crate::loki_api::routes(Router::new(), "/loki/api/v1"))
        .merge(crate::loki_api::routes(Router::new(), "/loki/loki/api/v1"))
        .merge(crate::tempo_api::routes(Router::new()))
        .route("/api/v1/logs/search", get(logs_api::search))
        .route("/api/v1/logs/histogram", get(logs_api::histogram))
        .route("/api/v1/logs/fields", get(logs_api::fields))
        .route("/api/v1/logs/tail", get(logs_api::tail))
        .route("/api/v1/correlate/{id}", get(traces_api::correlate))
        .route("/jaeger/api/services", get(traces_api::services))
        .route(
            "/jaeger/api/services/{service}/operations",
            get(traces_api::service_operations),
        )
        .route("/jaeger/api/operations", get(traces_api::operations))
        .route("/jaeger/api/traces", get(traces_api::find_traces))
        .route("/jaeger/api/traces/{trace_id}", get(traces_api::trace))
        .route("/jaeger/api/dependencies", get(traces_api::dependencies))
        .route("/-/reload", post(reload).put(reload))
        .route("/api/v1/rules", get(crate::ruler_api::list_or_prometheus))
        .route("/api/v1/rules/changes", get(crate::ruler_api::changes))
        .route("/config/v1/rules", get(crate::ruler_api::list))
        .route("/prometheus/config/v1/rules", get(crate::ruler_api::list))
        .route("/rules", get(crate::ruler_api::list))
        .route("/prometheus/rules", get(crate::ruler_api::list))
        .route("/api/prom/rules", get(crate::ruler_api::list))
        .route("/loki/api/v1/rules", get(crate::ruler_api::list))
        .route("/api/v1/status/flags", get(query_api::flags))
        .route("/api/v1/alerts", get(alerting_api::alerts))
        .route("/api/v1/alerts/history", get(alerting_api::history))
        .route(
            "/api/v1/silences",
            get(alerting_api::silences).post(alerting_api::add_silence),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(alerting_api::expire_silence),
        )
        .route("/api/v2/status", get(crate::alertmanager_api::status))
        .route("/api/v2/receivers", get(crate::alertmanager_api::receivers))
        .route(
            "/api/v2/alerts",
            post(crate::alertmanager_api::post_alerts)
                .layer(middleware::from_fn_with_state(state.clone(), ingest_gate))
                .get(crate::alertmanager_api::alerts),
        )
        .route(
            "/api/v2/alerts/groups",
            get(crate::alertmanager_api::groups),
        )
        .route(
            "/api/v2/silences",
            get(crate::alertmanager_api::silences).post(crate::alertmanager_api::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(crate::alertmanager_api::silence).delete(crate::alertmanager_api::delete_silence),
        )
        .fallback(not_here)
        .layer(middleware::from_fn_with_state(
            (state.cluster.clone(), state.limits.max_request_body),
            crate::cluster_api::forward_alerting,
        ))
        .layer(DefaultBodyLimit::max(state.limits.max_request_body))
        .layer(middleware::from_fn_with_state(
            state.limits.max_request_body,
            body_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.runtime.clone(),
            crate::auth::gate,
        ))
        .layer(middleware::from_fn(browser_safety))
        .with_state(state)
        .layer(middleware::from_fn_with_state(stats, count_requests))
}

/// How much of a refused body is read and dropped before the 413, and for
/// how long: a client that writes its whole body before it reads the answer
/// (most do) would otherwise see its connection reset mid-write, not the 413.
const DRAIN_REFUSED_BODY: u64 = 16 << 20;
const DRAIN_REFUSED_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// A body whose declared length is over `limits.max_request_body` gets 413
/// naming the limit, its bytes dropped as they come (up to
/// [`DRAIN_REFUSED_BODY`], for [`DRAIN_REFUSED_FOR`]), never kept (a chunked
/// one is cut off at the limit by axum's own check).
async fn body_limit(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&n| n > limit as u64) {
        sextant_ingest::limits::REFUSED.request_body.inc();
        if length <= DRAIN_REFUSED_BODY {
            use tokio_stream::StreamExt as _;
            let mut body = request.into_body().into_data_stream();
            let drain = async { while let Some(Ok(_)) = body.next().await {} };
            let _ = tokio::time::timeout(DRAIN_REFUSED_FOR, drain).await;
        }
        return ApiError::TooLarge(format!(
            "the body is {length} bytes, more than limits.max_request_body ({limit} bytes)"
        ))
        .into_response();
    }
    next.run(request).await
}

/// `POST /-/reload`: re-reads the config file; 500 naming what is wrong when
/// it does not load (the running configuration stays), as Prometheus answers.
async fn reload(State(state): State<AppState>) -> Response {
    match state.runtime.reload().await {
        Ok(()) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {err:#}\n"),
        )
            .into_response(),
    }
}

/// What a browser needs to keep another site from using it against this
/// one: a change (POST, PUT, PATCH, DELETE) a browser sends from another
/// origin is refused (CSRF; servers and shippers send no `Origin` or
/// `Sec-Fetch-Site` and are not affected), no CORS headers are ever sent
/// (cross-origin reads stay closed), and every answer says not to sniff or
/// frame it.
async fn browser_safety(request: Request, next: Next) -> Response {
    let changes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if changes && let Some(refusal) = cross_site(request.headers()) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "status": "error", "errorType": "forbidden", "error": refusal })),
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(header::HeaderValue::from_static("nosniff"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(header::HeaderValue::from_static("frame-ancestors 'none'"));
    response
}

/// Why a browser's change request comes from another site, if it does.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return Some(
            "a change sent by a page of another site is refused (Sec-Fetch-Site: cross-site)"
                .into(),
        );
    }
    let origin = text(header::ORIGIN)?;
    let host = text(header::HOST)?;
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    (origin != "null" && !origin_host.eq_ignore_ascii_case(host))
        .then(|| format!("a change sent by a page of another origin ({origin}) is refused"))
}

async fn count_requests(
    State(stats): State<Arc<ListenerStats>>,
    request: Request,
    next: Next,
) -> Response {
    stats.requests.inc();
    let response = next.run(request).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        stats.errors.inc();
    }
    response
}

/// Takes an ingest slot before the body is read, so a flood of senders is
/// refused with 429 instead of being buffered.
async fn ingest_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.ingest_slot() {
        Ok(_slot) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn healthy() -> &'static str {
    "Sextant is Healthy.\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.metrics.is_ready() {
        "Sextant is Ready.\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Sextant is starting: listeners are binding and recovery is running.\n",
        )
            .into_response()
    }
}

async fn self_metrics(State(state): State<AppState>) -> Response {
    let mut page = state.metrics.render();
    page += &results_cache_metrics(&state.query.results_cache.stats());
    if let Some(ruler) = state.runtime.ruler() {
        let mut alerting = sextant_model::telemetry::Exposition::default();
        ruler.render_metrics(&mut alerting);
        page += &alerting.finish();
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], page).into_response()
}

fn results_cache_metrics(stats: &sextant_query::promql::results_cache::CacheStats) -> String {
    use sextant_model::telemetry::{Exposition, MetricKind};
    let mut page = Exposition::default();
    page.family(
        "sextant_query_results_cache_requests_total",
        MetricKind::Counter,
        "Cacheable range queries by what the results cache had: all of the answer (hit), part of it (partial) or nothing (miss).",
    );
    for (result, n) in [
        ("hit", stats.hits),
        ("partial", stats.partial_hits),
        ("miss", stats.misses),
    ] {
        page.sample(
            "sextant_query_results_cache_requests_total",
            &[("result", result)],
            n as f64,
        );
    }
    page.family(
        "sextant_query_results_cache_drops_total",
        MetricKind::Counter,
        "Cached range-query answers dropped: because a write or deletion changed what they cover (invalidated), or to make room (evicted).",
    );
    for (reason, n) in [
        ("invalidated", stats.invalidated),
        ("evicted", stats.evicted),
    ] {
        page.sample(
            "sextant_query_results_cache_drops_total",
            &[("reason", reason)],
            n as f64,
        );
    }
    page.single(
        "sextant_query_results_cache_bytes",
        MetricKind::Gauge,
        "Memory the cached range-query answers take (estimated), at most query.results_cache.max_bytes.",
        stats.bytes as f64,
    );
    page.finish()
}

/// Paths CONTRACTS.md promises, whose handlers later issues add.
const PLANNED: &[&str] = &["/api/v1/"];

async fn not_here(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    let path = uri.path();
    let planned = PLANNED.iter().any(|prefix| path.starts_with(prefix));
    if planned {
        ApiError::NotImplemented(format!(
            "{method} {path} is not implemented yet in this Sextant build"
        ))
    } else {
        ApiError::NotFound(format!("no endpoint at {method} {path}"))
    }
    .into_response()
}

/// Every way a request can fail, and its status.
#[derive(Debug)]
pub enum ApiError {
    /// Bad input to an ingest endpoint: 400 `{"error"}`.
    BadIngest(String),
    /// A body over the size limit: 413.
    TooLarge(String),
    /// A content type or encoding not taken: 415.
    Unsupported(String),
    /// Bad query parameters: 400 in Prometheus's envelope (`bad_data`).
    BadData(String),
    /// A query failed while evaluating: 422 `execution`.
    Execution(String),
    /// A query ran out of time: 503 `timeout`.
    Timeout(String),
    /// Storage failed: 500 (senders retry).
    Internal(String),
    /// Not ready yet: 503 with Retry-After.
    Unavailable(String),
    /// Too many requests at once: 429 with Retry-After.
    Overloaded(String),
    /// 404.
    NotFound(String),
    /// 501.
    NotImplemented(String),
}

impl From<sextant_ingest::net::GunzipError> for ApiError {
    fn from(err: sextant_ingest::net::GunzipError) -> Self {
        match err {
            sextant_ingest::net::GunzipError::Invalid(_) => Self::BadIngest(err.to_string()),
            sextant_ingest::net::GunzipError::TooLarge(_) => Self::TooLarge(err.to_string()),
        }
    }
}

impl From<sextant_storage::Error> for ApiError {
    fn from(err: sextant_storage::Error) -> Self {
        if err.is_disk_full() {
            // Retryable: nothing was acknowledged, and writes resume by
            // themselves once space is freed.
            tracing::warn!(error = %err, "write refused: the disk is full");
            return Self::Unavailable(format!(
                "the disk holding the data directory is full; nothing of this request was stored, retry once space is freed ({err})"
            ));
        }
        if let sextant_storage::Error::Unavailable(m) = err {
            return Self::Unavailable(m);
        }
        if err.is_remote_unavailable() {
            return Self::Unavailable(err.to_string());
        }
        Self::Internal(err.to_string())
    }
}

impl From<sextant_query::Error> for ApiError {
    fn from(err: sextant_query::Error) -> Self {
        match err {
            sextant_query::Error::Storage(err) => err.into(),
            err
            @ (sextant_query::Error::Execution(_) | sextant_query::Error::TooManySamples(_)) => {
                Self::Execution(err.to_string())
            }
            sextant_query::Error::Timeout(m) => Self::Timeout(m),
            other => Self::BadData(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let plain = |status: StatusCode, message: String| {
            (status, axum::Json(json!({ "error": message }))).into_response()
        };
        match self {
            Self::BadIngest(m) => plain(StatusCode::BAD_REQUEST, m),
            Self::TooLarge(m) => plain(StatusCode::PAYLOAD_TOO_LARGE, m),
            Self::Unsupported(m) => plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            Self::NotFound(m) => plain(StatusCode::NOT_FOUND, m),
            Self::NotImplemented(m) => plain(StatusCode::NOT_IMPLEMENTED, m),
            Self::BadData(m) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "status": "error", "errorType": "bad_data", "error": m })),
            )
                .into_response(),
            Self::Execution(m) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({ "status": "error", "errorType": "execution", "error": m })),
            )
                .into_response(),
            Self::Timeout(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "error", "errorType": "timeout", "error": m })),
            )
                .into_response(),
            Self::Internal(m) => {
                tracing::error!(error = %m, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({ "status": "error", "errorType": "internal", "error": m })),
                )
                    .into_response()
            }
            Self::Overloaded(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                axum::Json(json!({ "error": m })),
            )
                .into_response(),
            Self::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                axum::Json(json!({ "status": "error", "errorType": "unavailable", "error": m })),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt as _;

    use super::*;

    fn test_app() -> (Router, Arc<SelfMetrics>, Arc<ListenerStats>) {
        let stats = Arc::new(ListenerStats::new("http", "tcp"));
        let metrics = Arc::new(SelfMetrics::new(vec![stats.clone()], Default::default()));
        let state = AppState::new(metrics.clone(), Arc::new(OnceLock::new()));
        (app(state, stats.clone()), metrics, stats)
    }

    async fn call(app: &Router, method: &str, path: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn ready_flips_once_startup_is_done() {
        let (app, metrics, _) = test_app();
        assert_eq!(call(&app, "GET", "/-/healthy").await.0, StatusCode::OK);
        assert_eq!(
            call(&app, "GET", "/-/ready").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        metrics.set_ready();
        assert_eq!(call(&app, "GET", "/-/ready").await.0, StatusCode::OK);
        assert_eq!(call(&app, "HEAD", "/-/ready").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn store_endpoints_answer_503_until_recovery_is_done() {
        let (app, _, _) = test_app();
        let (status, body) = call(&app, "GET", "/api/v1/labels").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("write-ahead log is being replayed"), "{body}");
    }

    #[tokio::test]
    async fn ingest_beyond_the_concurrency_limit_gets_429_and_is_counted() {
        let stats = Arc::new(ListenerStats::new("http", "tcp"));
        let metrics = Arc::new(SelfMetrics::new(vec![stats.clone()], Default::default()));
        let state = AppState::new(metrics.clone(), Arc::new(OnceLock::new()));
        let held: Vec<_> = (0..Limits::default().max_concurrent_ingest)
            .map(|_| state.ingest_slot().unwrap())
            .collect();
        let router = app(state.clone(), stats);
        let request = Request::builder()
            .method("POST")
            .uri("/api/v1/import/prometheus")
            .body(Body::from("up 1\n"))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(metrics.ingest_throttled.get(), 1);
        drop(held);
        assert!(state.ingest_slot().is_ok());
    }

    #[tokio::test]
    async fn metrics_count_requests_and_errors() {
        let (app, _, stats) = test_app();
        call(&app, "GET", "/-/healthy").await;
        call(&app, "GET", "/nope").await;
        let (status, body) = call(&app, "GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(
                "sextant_listener_requests_total{listener=\"http\",transport=\"tcp\"} 3\n"
            ),
            "{body}"
        );
        assert!(
            body.contains("sextant_listener_errors_total{listener=\"http\",transport=\"tcp\"} 1\n"),
            "{body}"
        );
        assert!(body.contains("sextant_build_info{version=\""), "{body}");
        assert!(body.contains("sextant_tsdb_head_series 0\n"), "{body}");
        assert!(body.contains("process_resident_memory_bytes "), "{body}");
        assert_eq!(stats.requests.get(), 3);
    }

    async fn call_with(
        app: &Router,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_browser_on_another_site_cannot_make_changes_and_nothing_is_framed() {
        let (app, _, _) = test_app();
        let evil = [("host", "sextant:7070"), ("origin", "https://evil.example")];
        let refused = call_with(&app, "POST", "/-/reload", &evil).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body).contains("https://evil.example"));
        let fetch = [("sec-fetch-site", "cross-site")];
        assert_eq!(
            call_with(&app, "DELETE", "/api/v1/silences/x", &fetch)
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        // The same origin, and clients that are not browsers, get through.
        let same = [("host", "sextant:7070"), ("origin", "http://sextant:7070")];
        assert_ne!(
            call_with(&app, "POST", "/-/reload", &same).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_ne!(
            call_with(&app, "POST", "/-/reload", &[]).await.status(),
            StatusCode::FORBIDDEN
        );
        // Reads from elsewhere are answered without CORS headers, so a page
        // of another site cannot read them; nothing may be framed or sniffed.
        let read = call_with(&app, "GET", "/-/healthy", &evil).await;
        assert_eq!(read.status(), StatusCode::OK);
        assert!(read.headers().get("access-control-allow-origin").is_none());
        assert_eq!(read.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            read.headers()["content-security-policy"],
            "frame-ancestors 'none'"
        );
    }

    #[tokio::test]
    async fn unbuilt_contract_paths_say_so_and_others_are_not_found() {
        let (app, _, _) = test_app();
        let (status, body) = call(&app, "GET", "/api/v1/status/tsdb").await;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["error"],
            "GET /api/v1/status/tsdb is not implemented yet in this Sextant build"
        );
        assert_eq!(
            call(&app, "GET", "/jaeger/api/no-such").await.0,
            StatusCode::NOT_FOUND
        );
        let (status, body) = call(&app, "GET", "/wp-admin").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("no endpoint at GET /wp-admin"), "{body}");
    }
}
