//! `sextant serve`: open the data directory, bind every listener, run until
//! SIGTERM or SIGINT, then drain and exit.

use std::future::{Future, IntoFuture};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sextant_ingest::scrape::ScrapeManager;
use sextant_ingest::{forward, logstash, net::CountingListener, otlp, statsd, syslog};
use sextant_model::telemetry::ListenerStats;
use sextant_query::promql::EngineOptions;
use sextant_storage::logs::{LogStore, LogStoreConfig, SplitConfig};
use sextant_storage::spans::{SpanStore, SpanStoreConfig};
use sextant_storage::{DataDir, RetentionConfig, Tsdb, TsdbStats};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::http::{AppState, Stores};
use crate::query_api::QueryState;
use crate::runtime::Runtime;
use crate::self_metrics::SelfMetrics;
use crate::settings::{Endpoint, Settings};

/// How often new logs are committed to the index (made searchable).
const LOG_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How often span metrics are written to the metrics store.
const SPAN_METRICS_FLUSH: Duration = Duration::from_secs(5);
/// How long in-flight work may take to finish after a stop signal; the
/// contract allows 10 s from signal to exit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// Runs the server until a stop signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // Watch for stop signals from the start, so one during recovery is a clean stop too.
    let mut stop = StopSignals::watch()?;
    let data_dir = DataDir::open(&settings.data_dir)?;
    info!(
        version = crate::VERSION,
        revision = crate::REVISION,
        data_dir = %data_dir.path().display(),
        "starting Sextant"
    );
    warn_if_exposed(&settings);

    let stats = |listener, transport| Arc::new(ListenerStats::new(listener, transport));
    let tsdb_stats = Arc::new(TsdbStats::default());
    let metrics = Arc::new(SelfMetrics::new(
        vec![
            stats("http", "tcp"),
            stats("otlp_grpc", "tcp"),
            stats("otlp_http", "tcp"),
            stats("statsd", "udp"),
            stats("statsd", "tcp"),
            stats("logstash", "tcp"),
            stats("logstash", "udp"),
            stats("syslog", "tcp"),
            stats("syslog", "udp"),
            stats("forward", "tcp"),
            stats("forward", "udp"),
        ],
        tsdb_stats.clone(),
    ));
    let stores: Arc<OnceLock<Stores>> = Arc::new(OnceLock::new());

    let listeners = &settings.listeners;
    // TLS for the HTTP listeners, when configured: a certificate that
    // cannot be used stops the start, naming the file.
    let tls_files = settings.file().and_then(|f| f.server.tls.as_ref());
    let tls = match tls_files {
        Some(files) => Some(sextant_ingest::net::tls_acceptor(files).map_err(anyhow::Error::msg)?),
        None => None,
    };
    // The ingest-only listeners also ask for a client certificate when
    // `client_ca_file` is set (mutual TLS).
    let ingest_tls = match tls_files {
        Some(files) => {
            Some(sextant_ingest::net::ingest_tls_acceptor(files).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let mutual = tls_files.is_some_and(|f| f.client_ca_file.is_some());
    let http = bind_tcp("http", &listeners.http, tls.is_some(), false).await?;
    let http_address = http.local_addr().context("the HTTP listener's address")?;
    let cluster_stores: Arc<OnceLock<crate::cluster_api::ClusterStores>> = Arc::default();
    let otlp_grpc = bind_tcp("otlp_grpc", &listeners.otlp_grpc, tls.is_some(), mutual).await?;
    let otlp_http = bind_tcp("otlp_http", &listeners.otlp_http, tls.is_some(), mutual).await?;
    let (statsd_tcp, statsd_udp) =
        bind_tcp_and_udp("statsd", &listeners.statsd, false, false).await?;
    let (logstash_tcp, logstash_udp) =
        bind_tcp_and_udp("logstash", &listeners.logstash, tls.is_some(), mutual).await?;
    let (syslog_tcp, syslog_udp) =
        bind_tcp_and_udp("syslog", &listeners.syslog, tls.is_some(), mutual).await?;
    let (forward_tcp, forward_udp) =
        bind_tcp_and_udp("forward", &listeners.forward, tls.is_some(), mutual).await?;

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let statsd_config = settings
        .file()
        .map(|f| f.statsd.clone())
        .unwrap_or_default();
    let statsd_mapping = settings
        .config
        .as_ref()
        .and_then(|c| c.statsd_mapping.clone())
        .unwrap_or_default();
    let statsd_pipeline = statsd::Statsd::new(&statsd_config, statsd_mapping);
    let limits = settings
        .file()
        .map(|f| f.limits.clone())
        .unwrap_or_default();
    let log_normalizer = Arc::new(
        sextant_ingest::logs::Normalizer::new(
            &settings.file().map(|f| f.logs.clone()).unwrap_or_default(),
        )
        .with_limits(&limits),
    );
    let runtime = Arc::new(Runtime::new(
        settings.config.as_ref().map(|c| c.path.clone()),
        statsd_pipeline.clone(),
        metrics.clone(),
    ));
    runtime.set_tokens(
        settings
            .file()
            .map(|f| f.auth.tokens.clone())
            .unwrap_or_default(),
    );
    {
        let stats = metrics.listener("http", "tcp");
        let state = AppState::new(metrics.clone(), stores.clone())
            .with_query(query_state(&settings))
            .with_logql(logql_options(&settings))
            .with_logs(log_normalizer.clone())
            .with_limits(limits.clone())
            .with_runtime(runtime.clone())
            .with_cluster(cluster_stores.clone());
        let app = crate::http::app(state, stats.clone());
        let stop = shutdown.clone().cancelled_owned();
        match tls.clone() {
            Some(acceptor) => tasks.spawn(named(
                "http",
                axum::serve(
                    sextant_ingest::net::TlsListener::new(http, stats, acceptor)?,
                    app,
                )
                .with_graceful_shutdown(stop),
            )),
            None => tasks.spawn(named(
                "http",
                axum::serve(CountingListener::new(http, stats), app).with_graceful_shutdown(stop),
            )),
        };
    }
    let otlp_pipeline = {
        let stores = stores.clone();
        let log_stores = stores.clone();
        let span_stores = stores.clone();
        otlp::Otlp::new(
            move || stores.get().map(|s| s.metrics_writer.clone()),
            move || log_stores.get().map(|s| s.logs_writer.clone()),
            move || span_stores.get().map(|s| s.spans_writer.clone()),
            (*log_normalizer).clone(),
            limits.clone(),
        )
    };
    otlp_pipeline.set_auth(Arc::new(crate::auth::OtlpAuth(runtime.clone())));
    if let Some(cluster) = settings.file().and_then(|f| f.cluster.as_ref()) {
        otlp_pipeline.set_span_metrics_instance(&cluster.node_id);
        otlp_pipeline.set_delta_node(&cluster.node_id);
    }
    {
        // Span metrics reach the metrics store every few seconds, and once more at shutdown.
        let (otlp, shutdown) = (otlp_pipeline.clone(), shutdown.clone());
        tasks.spawn(infallible(async move {
            let mut tick = tokio::time::interval(SPAN_METRICS_FLUSH);
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    () = shutdown.cancelled() => true,
                };
                let flushing = otlp.clone();
                let _ = tokio::task::spawn_blocking(move || flushing.flush_span_metrics()).await;
                if last {
                    return;
                }
            }
        }));
    }
    tasks.spawn(named(
        "otlp_grpc",
        otlp::serve_grpc(
            otlp_grpc,
            otlp_pipeline.clone(),
            metrics.listener("otlp_grpc", "tcp"),
            shutdown.clone().cancelled_owned(),
            ingest_tls.clone(),
        ),
    ));
    tasks.spawn(named(
        "otlp_http",
        otlp::serve_http(
            otlp_http,
            otlp_pipeline,
            metrics.listener("otlp_http", "tcp"),
            shutdown.clone(),
            ingest_tls.clone(),
        ),
    ));
    tasks.spawn(infallible(statsd::serve_udp(
        statsd_udp,
        metrics.listener("statsd", "udp"),
        statsd_pipeline.clone(),
        shutdown.clone(),
    )));
    tasks.spawn(infallible(statsd::serve_tcp(
        statsd_tcp,
        metrics.listener("statsd", "tcp"),
        statsd_pipeline.clone(),
        shutdown.clone(),
    )));
    {
        let stores = stores.clone();
        // In cluster mode each node aggregates what it took: its series
        // carry its id as `instance`.
        let node: Option<Arc<str>> = settings
            .file()
            .and_then(|f| f.cluster.as_ref())
            .map(|c| c.node_id.as_str().into());
        tasks.spawn(infallible(statsd::run_flusher(
            statsd_pipeline,
            move || {
                let writer = stores.get().map(|s| s.metrics_writer.clone())?;
                Some(match &node {
                    Some(node) => Arc::new(crate::cluster_api::NodeStamped {
                        inner: writer,
                        node: node.clone(),
                    }),
                    None => writer,
                })
            },
            statsd_config
                .flush_interval
                .as_std()
                .max(Duration::from_millis(100)),
            shutdown.clone(),
        )));
    }
    let logstash_pipeline = {
        let stores = stores.clone();
        let logs = settings.file().map(|f| f.logs.clone()).unwrap_or_default();
        let secret = logs
            .logstash_secret
            .map(|secret| (logs.logstash_secret_field, secret));
        logstash::Logstash::new(
            (*log_normalizer).clone(),
            move || stores.get().map(|s| s.logs_writer.clone()),
            secret,
        )
    };
    tasks.spawn(infallible(logstash::serve_tcp(
        logstash_tcp,
        metrics.listener("logstash", "tcp"),
        logstash_pipeline.clone(),
        shutdown.clone(),
        ingest_tls.clone(),
    )));
    let forward_pipeline = {
        let stores = stores.clone();
        let config = settings
            .file()
            .map(|f| f.logs.forward.clone())
            .unwrap_or_default();
        forward::Forward::new(config, (*log_normalizer).clone(), &limits, move || {
            stores.get().map(|s| s.logs_writer.clone())
        })
    };
    tasks.spawn(infallible(forward::serve_tcp(
        forward_tcp,
        metrics.listener("forward", "tcp"),
        forward_pipeline.clone(),
        shutdown.clone(),
        ingest_tls.clone(),
    )));
    tasks.spawn(infallible(forward::serve_udp(
        forward_udp,
        metrics.listener("forward", "udp"),
        forward_pipeline,
        shutdown.clone(),
    )));
    tasks.spawn(infallible(logstash::serve_udp(
        logstash_udp,
        metrics.listener("logstash", "udp"),
        logstash_pipeline,
        shutdown.clone(),
    )));
    let syslog_pipeline = {
        let stores = stores.clone();
        let config = settings
            .file()
            .map(|f| f.logs.syslog.clone())
            .unwrap_or_default();
        syslog::Syslog::new(&config, (*log_normalizer).clone(), move || {
            stores.get().map(|s| s.logs_writer.clone())
        })
    };
    tasks.spawn(infallible(syslog::serve_tcp(
        syslog_tcp,
        metrics.listener("syslog", "tcp"),
        syslog_pipeline.clone(),
        shutdown.clone(),
        ingest_tls,
    )));
    tasks.spawn(infallible(syslog::serve_udp(
        syslog_udp,
        metrics.listener("syslog", "udp"),
        syslog_pipeline,
        shutdown.clone(),
    )));

    // Recovery runs with the listeners already bound: /-/healthy answers and
    // /-/ready says 503 until the WAL is replayed.
    let file = settings.file();
    let tsdb_config = file.map(|f| f.storage.metrics.clone()).unwrap_or_default();
    let retention = file
        .map(|f| f.retention.metrics)
        .unwrap_or_else(|| RetentionConfig::default().metrics);
    let metrics_dir = data_dir.path().join("metrics");
    // The bucket is checked before anything is opened: a wrong URL, refused
    // credentials or a missing bucket stop the start by name.
    let remote = match file.and_then(|f| f.storage.object_store.clone()) {
        Some(config) => {
            let cache_dir = data_dir.path().join("cache");
            let remote = tokio::task::spawn_blocking(move || {
                sextant_storage::remote::RemoteStore::connect(&config, &cache_dir)
            })
            .await
            .context("connecting to the object store panicked")??;
            let remote = Arc::new(remote);
            let _ = metrics.object_store.set(remote.stats.clone());
            Some(remote)
        }
        None => None,
    };
    let seal_idle_us = file.and_then(|f| f.storage.seal_idle).map(|d| {
        i64::try_from(d.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_mul(1000)
    });
    let cluster_config = file.and_then(|f| f.cluster.clone());
    // In cluster mode the metrics live in the partitions' engines; this
    // node's own engine keeps its data local (its bucket prefix holds the
    // partitions' blocks, which it must not take for its own).
    let tsdb_remote = if cluster_config.is_some() {
        None
    } else {
        remote.clone()
    };
    let (partition_config, partition_retention) = (tsdb_config.clone(), retention);
    let opening = tokio::task::spawn_blocking(move || {
        Tsdb::open_with_remote(
            &metrics_dir,
            tsdb_config,
            retention,
            tsdb_stats,
            tsdb_remote,
        )
    });
    let tsdb = tokio::select! {
        opened = opening => opened.context("opening the metrics store panicked")??,
        signal = stop.next() => {
            // Replay only reads the WAL: stopping halfway loses nothing.
            info!(signal, "stopping during recovery");
            shutdown.cancel();
            tasks.abort_all();
            return Ok(());
        }
    };
    let tsdb = Arc::new(tsdb);
    let logs_dir = data_dir.path().join("logs");
    let log_config = LogStoreConfig {
        splits: SplitConfig {
            retention_us: file
                .map(|f| f.retention.logs)
                .unwrap_or_else(|| RetentionConfig::default().logs)
                .as_millis() as i64
                * 1000,
            seal_idle_us: seal_idle_us.unwrap_or(SplitConfig::default().seal_idle_us),
            // In cluster mode this store is unused (the partitions' are):
            // it must not take the partitions' splits in the bucket.
            remote: remote.clone().filter(|_| cluster_config.is_none()),
            ..SplitConfig::default()
        },
        correlation_fields: file
            .map(|f| f.logs.correlation_fields.clone())
            .unwrap_or_else(|| LogStoreConfig::default().correlation_fields),
    };
    let partition_log_config = log_config.clone();
    let opening = tokio::task::spawn_blocking(move || LogStore::open(&logs_dir, log_config));
    let log_store = tokio::select! {
        opened = opening => Arc::new(opened.context("opening the log store panicked")??),
        signal = stop.next() => {
            info!(signal, "stopping during recovery");
            shutdown.cancel();
            tasks.abort_all();
            return Ok(());
        }
    };
    let traces_dir = data_dir.path().join("traces");
    let span_config = SpanStoreConfig {
        splits: SplitConfig {
            retention_us: file
                .map(|f| f.retention.traces)
                .unwrap_or_else(|| RetentionConfig::default().traces)
                .as_millis() as i64
                * 1000,
            seal_idle_us: seal_idle_us.unwrap_or(SplitConfig::default().seal_idle_us),
            // As logs.
            remote: remote.clone().filter(|_| cluster_config.is_none()),
            ..SplitConfig::default()
        },
        correlation_fields: file
            .map(|f| f.logs.correlation_fields.clone())
            .unwrap_or_else(|| SpanStoreConfig::default().correlation_fields),
    };
    let partition_span_config = span_config.clone();
    let opening = tokio::task::spawn_blocking(move || SpanStore::open(&traces_dir, span_config));
    let span_store = tokio::select! {
        opened = opening => Arc::new(opened.context("opening the span store panicked")??),
        signal = stop.next() => {
            info!(signal, "stopping during recovery");
            shutdown.cancel();
            tasks.abort_all();
            return Ok(());
        }
    };
    // Cluster mode: join, then read and write metrics, logs and spans
    // through the partitions (config checks made sure the object store is
    // there).
    let mut cluster_tasks = Vec::new();
    let joined = match (cluster_config, remote.clone()) {
        (Some(config), Some(remote)) => {
            let advertise = config
                .advertise
                .clone()
                .unwrap_or_else(|| http_address.to_string());
            let cluster = sextant_cluster::Cluster::connect(&config, &advertise)
                .await
                .context("joining the cluster")?;
            cluster_tasks.push(tokio::spawn(cluster.clone().run()));
            let partitions = sextant_cluster::ClusterMetrics::open(
                cluster.clone(),
                sextant_cluster::MetricsSettings {
                    dir: data_dir.path().join("cluster").join("metrics"),
                    config: partition_config,
                    retention: partition_retention,
                    stats: tsdb.stats().clone(),
                    remote: remote.clone(),
                },
            )
            .await
            .context("opening the cluster's metrics log")?;
            cluster_tasks.push(tokio::spawn(partitions.clone().run()));
            let logs = sextant_cluster::ClusterLogs::open(
                cluster.clone(),
                sextant_cluster::LogSettings {
                    dir: data_dir.path().join("cluster").join("logs"),
                    config: partition_log_config,
                    remote: remote.clone(),
                },
            )
            .await
            .context("opening the cluster's log of logs")?;
            cluster_tasks.push(tokio::spawn(logs.clone().run()));
            let spans = sextant_cluster::ClusterSpans::open(
                cluster.clone(),
                sextant_cluster::SpanSettings {
                    dir: data_dir.path().join("cluster").join("traces"),
                    config: partition_span_config,
                    remote,
                },
            )
            .await
            .context("opening the cluster's log of spans")?;
            cluster_tasks.push(tokio::spawn(spans.clone().run()));
            let parts = crate::cluster_api::ClusterStores {
                metrics: partitions,
                logs,
                spans,
            };
            let _ = cluster_stores.set(parts.clone());
            Some((cluster, parts))
        }
        _ => None,
    };
    let mut node_stores = Stores {
        metrics_writer: tsdb.clone(),
        metrics_reader: tsdb.clone(),
        logs_writer: log_store.clone(),
        logs_reader: log_store.clone(),
        spans_writer: span_store.clone(),
        spans_reader: span_store.clone(),
    };
    if let Some((_, parts)) = &joined {
        node_stores = Stores {
            metrics_writer: parts.metrics.clone(),
            metrics_reader: parts.metrics.clone(),
            logs_writer: parts.logs.clone(),
            logs_reader: parts.logs.clone(),
            spans_writer: parts.spans.clone(),
            spans_reader: parts.spans.clone(),
        };
    }
    let metrics_writer = node_stores.metrics_writer.clone();
    let metrics_reader = node_stores.metrics_reader.clone();
    let _ = stores.set(node_stores.clone());
    let background = Background::start(&tsdb, &log_store, &span_store);
    let log_store_reader = node_stores.logs_reader.clone();
    let tsdb_writer = metrics_writer.clone();
    let scraper = ScrapeManager::new(
        metrics_writer,
        shutdown.child_token(),
        metrics.scrape.clone(),
    );
    runtime
        .start_scraping(scraper, settings.config.as_ref())
        .await;
    {
        use crate::alerting_api::{
            ClusterState, DataDirState, LogStoreCounter, MetricsSink, groups_of,
        };
        use sextant_alerting::ruler::StateStore;
        // A single node keeps its alerting state in its data directory; the
        // nodes of a cluster share theirs in NATS, so that whichever node
        // evaluates the rules next continues the alerts, silences and
        // notifications of the last.
        // Only the ruler's holder writes it: a node whose lease ran out, or
        // may have, writes nothing more.
        let state: Arc<dyn StateStore> = match &joined {
            Some((cluster, _)) => {
                let holder = cluster.clone();
                Arc::new(ClusterState(
                    cluster
                        .blobs("sextant-alerting")
                        .await
                        .context("opening the cluster's alerting state")?
                        .fenced_by(Arc::new(move || holder.holds_for("ruler"))),
                ))
            }
            None => Arc::new(DataDirState(
                sextant_storage::StateDir::open(&data_dir.path().join("alerting"))
                    .context("opening the alerting state directory")?,
            )),
        };
        let engine =
            sextant_query::promql::Engine::new(metrics_reader, query_state(&settings).options);
        let interval_ms = file.map_or(60_000, |f| f.global.evaluation_interval.as_millis() as i64);
        let config = file.map(|f| f.alerting.clone()).unwrap_or_default();
        let file_groups = groups_of(settings.config.as_ref());
        let loading_groups = file_groups.clone();
        let (ruler, namespaces) = tokio::task::spawn_blocking(move || {
            let namespaces = crate::ruler_api::RuleNamespaces::open(state.clone())
                .context("loading the rule groups created through the ruler API")?;
            let mut groups = loading_groups;
            groups.extend(namespaces.loaded_groups());
            let ruler = sextant_alerting::ruler::Ruler::new(
                engine,
                Arc::new(LogStoreCounter(log_store_reader, logql_options(&settings))),
                Arc::new(MetricsSink(tsdb_writer)),
                state,
                config,
                interval_ms,
                groups,
            );
            anyhow::Ok((Arc::new(ruler), Arc::new(namespaces)))
        })
        .await
        .context("loading the alerting state panicked")??;
        if let Some((cluster, _)) = &joined {
            // One node of the cluster evaluates the rules and sends the
            // notifications: the one holding the ruler's lease. When it
            // takes the lease, it reads the groups made through the ruler
            // API again (the state itself the ruler reads).
            cluster.join_singleton("ruler");
            let cluster = cluster.clone();
            ruler.set_gate(Arc::new(move || cluster.holds("ruler")));
            let runtime = Arc::downgrade(&runtime);
            ruler.on_activate(Arc::new(move || {
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                if let Some(namespaces) = runtime.rule_namespaces()
                    && let Err(e) = namespaces.reload()
                {
                    tracing::warn!(error = %e, "cannot read the ruler API's groups again");
                }
                runtime.apply_rule_groups();
            }));
        }
        runtime.start_alerting(ruler, namespaces, file_groups, shutdown.child_token());
    }

    metrics.set_ready();
    info!("ready");

    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot watch SIGHUP")?;
    loop {
        tokio::select! {
            signal = stop.next() => {
                info!(signal, "stopping: draining connections");
                break;
            }
            Some(()) = hangups.recv() => {
                info!("SIGHUP: reloading the configuration");
                // A refused reload is logged and counted; the server keeps running.
                let _ = runtime.reload().await;
            }
            Some(ended) = tasks.join_next() => {
                // A listener ended on its own: stop everything rather than run half a server.
                shutdown.cancel();
                tasks.abort_all();
                bail!("a listener stopped unexpectedly: {}", describe(ended));
            }
        }
    }
    shutdown.cancel();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(ended) = tasks.join_next().await {
            if let Ok(Err(err)) = &ended {
                warn!(error = %err, "listener ended with an error during shutdown");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            timeout_secs = DRAIN_TIMEOUT.as_secs(),
            "connections still open after the drain timeout; closing them"
        );
        tasks.abort_all();
    }
    if let Some(ruler) = runtime.ruler().cloned() {
        // The alerts other rulers sent are written every few seconds: the
        // last changes now, while this node still holds the ruler.
        let _ = tokio::task::spawn_blocking(move || ruler.save_now()).await;
    }
    if let Some((cluster, parts)) = joined {
        // Hand the partitions over at once rather than let the leases run
        // out: their next owners replay them from the log.
        parts.metrics.stop();
        parts.logs.stop();
        parts.spans.stop();
        // The membership loop first, so that it takes nothing back.
        for task in cluster_tasks {
            task.abort();
        }
        cluster.leave().await;
    }
    background.stop();
    if let Err(err) = tsdb.sync() {
        warn!(error = %err, "final WAL fsync failed");
    }
    if let Err(err) = log_store.commit() {
        warn!(error = %err, "final log index commit failed; the log WAL will be replayed at start");
    }
    if let Err(err) = span_store.commit() {
        warn!(error = %err, "final span index commit failed; the span WAL will be replayed at start");
    }
    drop(data_dir);
    info!("stopped");
    Ok(())
}

/// The engine's background threads: the WAL flusher and maintenance (head
/// cuts, compaction, retention).
struct Background {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start(tsdb: &Arc<Tsdb>, logs: &Arc<LogStore>, spans: &Arc<SpanStore>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            // New logs and spans become searchable within about a second.
            let (logs, spans, stop) = (logs.clone(), spans.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("log-commit".into())
                    .spawn(move || {
                        let mut since_maintenance = Duration::ZERO;
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(LOG_COMMIT_INTERVAL);
                            if let Err(err) = logs.commit() {
                                warn!(error = %err, "log index commit failed");
                            }
                            if let Err(err) = spans.commit() {
                                warn!(error = %err, "span index commit failed");
                            }
                            since_maintenance += LOG_COMMIT_INTERVAL;
                            if since_maintenance
                                >= logs
                                    .maintenance_interval()
                                    .min(spans.maintenance_interval())
                            {
                                since_maintenance = Duration::ZERO;
                                // Retention and sealing finished days into splits.
                                if let Err(err) = logs.maintain() {
                                    warn!(error = %err, "log store maintenance failed");
                                }
                                if let Err(err) = spans.maintain() {
                                    warn!(error = %err, "span store maintenance failed");
                                }
                            }
                        }
                    })
                    .expect("spawn the log committer"),
            );
        }
        {
            let (tsdb, stop) = (tsdb.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("wal-flusher".into())
                    .spawn(move || tsdb.run_wal_flusher(|| stop.load(Ordering::Relaxed)))
                    .expect("spawn the WAL flusher"),
            );
        }
        {
            let (tsdb, stop) = (tsdb.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("tsdb-maintenance".into())
                    .spawn(move || {
                        let tick = Duration::from_millis(200);
                        let mut waited = Duration::ZERO;
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(tick);
                            waited += tick;
                            // Much backfill waiting in the head is written out
                            // without waiting for the turn (memory stays bounded).
                            if waited >= tsdb.maintenance_interval() || tsdb.backfill_due() {
                                waited = Duration::ZERO;
                                if let Err(err) = tsdb.maintain() {
                                    warn!(error = %err, "metrics store maintenance failed");
                                }
                            }
                        }
                    })
                    .expect("spawn maintenance"),
            );
        }
        Self { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

type TaskResult = anyhow::Result<()>;

async fn named<E>(name: &'static str, task: impl IntoFuture<Output = Result<(), E>>) -> TaskResult
where
    E: std::error::Error + Send + Sync + 'static,
{
    task.await.with_context(|| format!("{name} listener"))
}

async fn infallible(task: impl Future<Output = ()>) -> TaskResult {
    task.await;
    Ok(())
}

fn describe(ended: Result<TaskResult, tokio::task::JoinError>) -> String {
    match ended {
        Ok(Ok(())) => "it returned".to_owned(),
        Ok(Err(err)) => format!("{err:#}"),
        Err(err) => err.to_string(),
    }
}

/// Binds a TCP listener; the "listening" line says whether it speaks TLS
/// and whether it requires client certificates (`mutual_tls`).
async fn bind_tcp(
    name: &str,
    endpoint: &Endpoint,
    tls: bool,
    mutual_tls: bool,
) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind((endpoint.host.as_str(), endpoint.port))
        .await
        .with_context(|| format!("cannot bind the {name} listener to {endpoint} (tcp)"))?;
    info!(listener = name, transport = "tcp", addr = %listener.local_addr()?, tls, mutual_tls, "listening");
    Ok(listener)
}

/// Binds TCP and UDP on one port. With port 0 the free port TCP got is then
/// tried for UDP, a few times over, so both transports share one number.
async fn bind_tcp_and_udp(
    name: &str,
    endpoint: &Endpoint,
    tls: bool,
    mutual_tls: bool,
) -> anyhow::Result<(TcpListener, UdpSocket)> {
    const ATTEMPTS: usize = 16;
    for _ in 0..ATTEMPTS {
        let tcp = TcpListener::bind((endpoint.host.as_str(), endpoint.port))
            .await
            .with_context(|| format!("cannot bind the {name} listener to {endpoint} (tcp)"))?;
        let addr = tcp.local_addr()?;
        match UdpSocket::bind(addr).await {
            Ok(udp) => {
                info!(listener = name, transport = "tcp", %addr, tls, mutual_tls, "listening");
                info!(listener = name, transport = "udp", %addr, "listening");
                return Ok((tcp, udp));
            }
            Err(err) if endpoint.port == 0 && err.kind() == ErrorKind::AddrInUse => continue,
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("cannot bind the {name} listener to {addr} (udp)"));
            }
        }
    }
    bail!("cannot find a port free for both TCP and UDP for the {name} listener on {endpoint}")
}

/// SIGTERM and SIGINT, watched from start-up on.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Waits for the next stop signal and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Binding beyond loopback with no access tokens gets a loud warning; with
/// tokens, StatsD, logstash, syslog and forward (which carry none;
/// forward's `logs.forward.shared_key` counts as its authentication) beyond
/// loopback still do.
fn warn_if_exposed(settings: &Settings) {
    let l = &settings.listeners;
    let forward_keyed = settings
        .file()
        .is_some_and(|f| f.logs.forward.shared_key.is_some());
    let forward: &[&Endpoint] = if forward_keyed { &[] } else { &[&l.forward] };
    let exposed = |listeners: &[&Endpoint]| {
        listeners
            .iter()
            .filter(|e| !is_loopback(&e.host))
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    if settings.file().is_some_and(|f| !f.auth.tokens.is_empty()) {
        let open = exposed(&[&[&l.statsd, &l.logstash, &l.syslog][..], forward].concat());
        if !open.is_empty() {
            warn!(
                listeners = %open.join(", "),
                "StatsD, logstash, syslog or forward listen beyond loopback and carry no tokens: set statsd.allowed_sources, logs.logstash_secret, logs.syslog.allowed_sources and logs.forward.shared_key, or restrict who can reach them"
            );
        }
        return;
    }
    let open = exposed(
        &[
            &[
                &l.http,
                &l.otlp_grpc,
                &l.otlp_http,
                &l.statsd,
                &l.logstash,
                &l.syslog,
            ][..],
            forward,
        ]
        .concat(),
    );
    if !open.is_empty() {
        warn!(
            listeners = %open.join(", "),
            "listening beyond loopback WITHOUT AUTHENTICATION: anyone who can reach these \
             addresses can read and write this Sextant's data; set auth.tokens"
        );
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// PromQL settings from the config file's `query` section and the global
/// evaluation interval (the default subquery step, as in Prometheus).
/// LogQL's stream labels: the usual ones and `logs.stream_labels`.
fn logql_options(settings: &Settings) -> sextant_query::logql::eval::Options {
    let mut options = sextant_query::logql::eval::Options::default();
    if let Some(file) = settings.file() {
        options
            .stream_labels
            .extend(file.logs.stream_labels.iter().cloned());
    }
    options
}

fn query_state(settings: &Settings) -> QueryState {
    let file = settings.file();
    let query = file.map(|f| f.query.clone()).unwrap_or_default();
    let step = file.map_or(60_000, |f| f.global.evaluation_interval.as_millis());
    let options = EngineOptions {
        lookback_delta_ms: i64::try_from(query.lookback_delta.as_millis()).unwrap_or(i64::MAX),
        default_subquery_step_ms: i64::try_from(step).unwrap_or(60_000).max(1),
        max_samples: query.max_samples,
        timeout: query.timeout.as_std(),
        delayed_name_removal: query.delayed_name_removal,
        ..EngineOptions::default()
    };
    let cache = sextant_query::promql::results_cache::CacheConfig {
        max_bytes: query.results_cache.max_bytes,
        freshness_ms: i64::try_from(query.results_cache.freshness.as_millis()).unwrap_or(i64::MAX),
    };
    QueryState::new(options, query.max_concurrency).with_results_cache(cache)
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_hosts_count_as_private() {
        for host in ["127.0.0.1", "127.0.0.5", "::1", "localhost"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "sextant.example"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
