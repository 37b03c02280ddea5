//! `GET /metrics`: Sextant's own metrics in Prometheus text format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sextant_ingest::scrape::ScrapeStats;
use sextant_model::telemetry::{Counter, Exposition, ListenerStats, MetricKind, render_listeners};
use sextant_storage::TsdbStats;

/// Everything `/metrics` reports, shared by every listener.
#[derive(Debug)]
pub struct SelfMetrics {
    started: Instant,
    start_unix: f64,
    /// One entry per listener and transport.
    pub listeners: Vec<Arc<ListenerStats>>,
    /// Set once every listener is bound and recovery is done.
    pub ready: AtomicBool,
    /// The time-series engine's counters.
    pub tsdb: Arc<TsdbStats>,
    /// Ingest requests refused with 429 because too many were in progress.
    pub ingest_throttled: Counter,
    /// PromQL queries answered, failed, and the time spent on them (µs).
    pub queries: Counter,
    pub query_failures: Counter,
    pub query_micros: Counter,
    /// The scrape manager's counters.
    pub scrape: Arc<ScrapeStats>,
    /// Config reloads tried and failed, and whether the last one worked.
    pub reloads: Counter,
    pub reload_failures: Counter,
    pub last_reload_ok: AtomicBool,
    /// The object store's counters, once it is connected.
    pub object_store: std::sync::OnceLock<Arc<sextant_storage::remote::RemoteStats>>,
}

impl SelfMetrics {
    pub fn new(listeners: Vec<Arc<ListenerStats>>, tsdb: Arc<TsdbStats>) -> Self {
        Self {
            started: Instant::now(),
            start_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            listeners,
            ready: AtomicBool::new(false),
            tsdb,
            ingest_throttled: Counter::default(),
            queries: Counter::default(),
            query_failures: Counter::default(),
            query_micros: Counter::default(),
            scrape: Arc::default(),
            reloads: Counter::default(),
            reload_failures: Counter::default(),
            last_reload_ok: AtomicBool::new(true),
            object_store: std::sync::OnceLock::new(),
        }
    }

    /// When the process started, in ms since the epoch.
    pub fn start_unix_ms(&self) -> i64 {
        (self.start_unix * 1000.0) as i64
    }

    /// The counters of the named listener and transport.
    pub fn listener(&self, name: &str, transport: &str) -> Arc<ListenerStats> {
        self.listeners
            .iter()
            .find(|s| s.listener == name && s.transport == transport)
            .cloned()
            .unwrap_or_else(|| panic!("no listener stats for {name}/{transport}"))
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The whole page.
    pub fn render(&self) -> String {
        let mut page = Exposition::default();
        page.family(
            "sextant_build_info",
            MetricKind::Gauge,
            "Sextant's version and the commit it was built from; always 1.",
        );
        page.sample(
            "sextant_build_info",
            &[("version", crate::VERSION), ("revision", crate::REVISION)],
            1.0,
        );
        page.single(
            "sextant_ready",
            MetricKind::Gauge,
            "1 once every listener is bound and recovery is done.",
            if self.is_ready() { 1.0 } else { 0.0 },
        );
        page.single(
            "sextant_uptime_seconds",
            MetricKind::Gauge,
            "Seconds since this process started.",
            self.started.elapsed().as_secs_f64(),
        );
        page.single(
            "process_start_time_seconds",
            MetricKind::Gauge,
            "Start time of the process since the Unix epoch, in seconds.",
            self.start_unix,
        );
        if let Some(process) = ProcessStats::read() {
            process.render(&mut page);
        }
        render_listeners(&mut page, &self.listeners);
        if let Some(remote) = self.object_store.get() {
            let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
            for (name, kind, help, value) in [
                (
                    "sextant_object_store_uploads_total",
                    MetricKind::Counter,
                    "Blocks uploaded to the object store (files, then the manifest that publishes them).",
                    count(&remote.uploads),
                ),
                (
                    "sextant_object_store_uploaded_bytes_total",
                    MetricKind::Counter,
                    "Bytes of block files uploaded.",
                    count(&remote.uploaded_bytes),
                ),
                (
                    "sextant_object_store_write_failures_total",
                    MetricKind::Counter,
                    "Uploads and deletes that failed and wait to be retried.",
                    count(&remote.upload_failures),
                ),
                (
                    "sextant_object_store_downloads_total",
                    MetricKind::Counter,
                    "Block files downloaded into the local copy.",
                    count(&remote.downloads),
                ),
                (
                    "sextant_object_store_range_reads_total",
                    MetricKind::Counter,
                    "Pages of block and split files fetched from the object store by range for queries (cache misses).",
                    count(&remote.range_reads),
                ),
                (
                    "sextant_object_store_downloaded_bytes_total",
                    MetricKind::Counter,
                    "Bytes of block files downloaded.",
                    count(&remote.downloaded_bytes),
                ),
                (
                    "sextant_object_store_deletes_total",
                    MetricKind::Counter,
                    "Blocks deleted from the object store (compaction, retention).",
                    count(&remote.deletes),
                ),
                (
                    "sextant_object_store_backlog_blocks",
                    MetricKind::Gauge,
                    "Blocks sealed locally and not yet in the object store.",
                    count(&remote.backlog),
                ),
                (
                    "sextant_object_store_cache_bytes",
                    MetricKind::Gauge,
                    "Bytes the object store's local cache holds: fetched pages and local copies of uploaded blocks.",
                    count(&remote.cache_bytes),
                ),
                (
                    "sextant_object_store_cache_evictions_total",
                    MetricKind::Counter,
                    "Entries the object store's cache budget (cache_size) pushed out.",
                    count(&remote.cache_evictions),
                ),
            ] {
                page.single(name, kind, help, value);
            }
        }
        page.single(
            "sextant_http_ingest_throttled_total",
            MetricKind::Counter,
            "Ingest requests refused with 429 because too many were in progress.",
            self.ingest_throttled.get() as f64,
        );
        page.family(
            "sextant_ingest_limit_refusals_total",
            MetricKind::Counter,
            "Requests, events or spans refused by a limit in the `limits` settings, by limit.",
        );
        for (limit, counter) in sextant_ingest::limits::REFUSED.each() {
            page.sample(
                "sextant_ingest_limit_refusals_total",
                &[("limit", limit)],
                counter.get() as f64,
            );
        }
        page.family(
            "sextant_remote_write_refused_total",
            MetricKind::Counter,
            "What remote write refused from requests whose rest was kept: 2.0 series (bad references, no __name__), exemplars, native histogram samples.",
        );
        for (what, counter) in sextant_ingest::remote_write::REFUSED.each() {
            page.sample(
                "sextant_remote_write_refused_total",
                &[("what", what)],
                counter.get() as f64,
            );
        }
        page.single(
            "sextant_queries_total",
            MetricKind::Counter,
            "PromQL queries evaluated (instant and range).",
            self.queries.get() as f64,
        );
        page.single(
            "sextant_query_failures_total",
            MetricKind::Counter,
            "PromQL queries that failed while evaluating (bad queries are refused before).",
            self.query_failures.get() as f64,
        );
        page.single(
            "sextant_query_duration_seconds_total",
            MetricKind::Counter,
            "Time spent evaluating PromQL queries.",
            self.query_micros.get() as f64 / 1e6,
        );
        let counters = [
            (
                "sextant_scrapes_total",
                "Scrapes attempted.",
                self.scrape.scrapes.get(),
            ),
            (
                "sextant_scrape_failures_total",
                "Scrapes that failed (target down, timeout, limit exceeded).",
                self.scrape.failures.get(),
            ),
            (
                "sextant_scrape_samples_total",
                "Samples stored from scrapes, after metric relabelling.",
                self.scrape.samples.get(),
            ),
            (
                "sextant_scrape_bad_lines_total",
                "Exposition lines that did not parse and were skipped.",
                self.scrape.bad_lines.get(),
            ),
            (
                "sextant_config_reloads_total",
                "Configuration reloads tried (SIGHUP or POST /-/reload).",
                self.reloads.get(),
            ),
            (
                "sextant_config_reload_failures_total",
                "Configuration reloads refused because the new file was invalid.",
                self.reload_failures.get(),
            ),
        ];
        for (name, help, value) in counters {
            page.single(name, MetricKind::Counter, help, value as f64);
        }
        page.single(
            "sextant_config_last_reload_successful",
            MetricKind::Gauge,
            "Whether the last configuration reload succeeded.",
            if self.last_reload_ok.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        );
        self.tsdb.render(&mut page);
        page.finish()
    }
}

/// What the kernel says about this process (Linux only; absent elsewhere).
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    open_fds: f64,
    max_fds: Option<f64>,
    threads: f64,
}

impl ProcessStats {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces; fields resume after its ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After the ')' field 3 (state) is index 0, so field N is index N - 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let ticks = Self::sysconf(libc::_SC_CLK_TCK).unwrap_or(100.0);
        let page_size = Self::sysconf(libc::_SC_PAGESIZE).unwrap_or(4096.0);
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                line.split_whitespace().nth(3)?.parse::<f64>().ok()
            });
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            threads: field(20)?,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page_size,
            open_fds,
            max_fds,
        })
    }

    #[allow(unsafe_code)]
    fn sysconf(name: libc::c_int) -> Option<f64> {
        // SAFETY: sysconf only reads a configuration value; any name is allowed.
        let value = unsafe { libc::sysconf(name) };
        (value > 0).then_some(value as f64)
    }

    fn render(&self, page: &mut Exposition) {
        page.single(
            "process_cpu_seconds_total",
            MetricKind::Counter,
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds,
        );
        page.single(
            "process_resident_memory_bytes",
            MetricKind::Gauge,
            "Resident memory size in bytes.",
            self.resident_bytes,
        );
        page.single(
            "process_virtual_memory_bytes",
            MetricKind::Gauge,
            "Virtual memory size in bytes.",
            self.virtual_bytes,
        );
        page.single(
            "process_open_fds",
            MetricKind::Gauge,
            "Number of open file descriptors.",
            self.open_fds,
        );
        if let Some(max_fds) = self.max_fds {
            page.single(
                "process_max_fds",
                MetricKind::Gauge,
                "Maximum number of open file descriptors.",
                max_fds,
            );
        }
        page.single(
            "process_threads",
            MetricKind::Gauge,
            "Number of OS threads in the process.",
            self.threads,
        );
    }
}
