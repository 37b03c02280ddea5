//! The scrape manager: one loop per target, spread over the interval,
//! file_sd files watched, and a reload that keeps the loops (and their
//! series caches) of targets that did not change.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sextant_model::{Labels, telemetry::Counter};
use sextant_storage::MetricsWriter;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::config::ScrapeConfig;
use super::relabel::LabelMap;
use super::scraper::{
    self, DEFAULT_BODY_LIMIT, ScrapeCache, ScrapeContext, ScrapeOutcome, report_batch,
};
use super::target::{Job, Resolved, Target, TargetGroup, expand_file_globs, read_file_sd, resolve};

/// How often file_sd files are checked for changes.
const FILE_SD_POLL: Duration = Duration::from_secs(5);

/// A target's health as `/api/v1/targets` shows it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// `up`, `down` or `unknown` (not scraped yet).
    pub state: &'static str,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
}

/// One active target, for the targets API.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    pub pool: String,
    pub target: Arc<Target>,
    pub health: Health,
}

/// One target relabelling dropped.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub pool: String,
    pub discovered: LabelMap,
}

/// Counters the manager keeps about itself for `/metrics`.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub scrapes: Counter,
    pub failures: Counter,
    pub samples: Counter,
    pub bad_lines: Counter,
}

struct Running {
    target: Arc<Target>,
    health: Arc<Mutex<Health>>,
    stop: CancellationToken,
    /// Set before `stop` when the target goes away: write staleness markers.
    retire: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<ScrapeCache>,
}

struct Pool {
    job: Arc<Job>,
    fingerprint: String,
    groups: BTreeMap<String, Vec<TargetGroup>>,
    active: HashMap<u64, Running>,
    dropped: Vec<LabelMap>,
    errors: Vec<String>,
    watcher: Option<CancellationToken>,
}

/// Active targets (pool, target, live health) and dropped ones.
type Snapshot = (
    Vec<(String, Arc<Target>, Arc<Mutex<Health>>)>,
    Vec<DroppedTarget>,
);

/// Runs every scrape job.
pub struct ScrapeManager {
    writer: Arc<dyn MetricsWriter>,
    pools: tokio::sync::Mutex<BTreeMap<String, Pool>>,
    /// A copy for the targets API, which must not wait on a reload.
    snapshot: Mutex<Snapshot>,
    shutdown: CancellationToken,
    pub stats: Arc<ScrapeStats>,
}

impl std::fmt::Debug for ScrapeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeManager").finish_non_exhaustive()
    }
}

impl ScrapeManager {
    /// A manager writing to `writer`; every loop ends when `shutdown` is cancelled.
    pub fn new(
        writer: Arc<dyn MetricsWriter>,
        shutdown: CancellationToken,
        stats: Arc<ScrapeStats>,
    ) -> Arc<Self> {
        Arc::new(Self {
            writer,
            pools: tokio::sync::Mutex::new(BTreeMap::new()),
            snapshot: Mutex::new((Vec::new(), Vec::new())),
            shutdown,
            stats,
        })
    }

    /// Applies a (re)loaded config: removed jobs stop (their series go
    /// stale), changed jobs restart their targets keeping each one's series
    /// cache, unchanged jobs keep running untouched.
    pub async fn apply(
        self: &Arc<Self>,
        configs: &[ScrapeConfig],
        global_interval: Duration,
        global_timeout: Duration,
        base_dir: &Path,
    ) {
        let mut pools = self.pools.lock().await;
        let wanted: BTreeMap<&str, &ScrapeConfig> =
            configs.iter().map(|c| (c.job_name.as_str(), c)).collect();
        let gone: Vec<String> = pools
            .keys()
            .filter(|name| !wanted.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(pool) = pools.remove(&name) {
                if let Some(watcher) = &pool.watcher {
                    watcher.cancel();
                }
                for (_, running) in pool.active {
                    retire(running).await;
                }
            }
        }
        for (name, config) in wanted {
            let job = Arc::new(
                Job::new(config.clone(), global_interval, global_timeout).with_base_dir(base_dir),
            );
            let fingerprint = format!("{job:?}{}", base_dir.display());
            if pools
                .get(name)
                .is_some_and(|p| p.fingerprint == fingerprint)
            {
                continue;
            }
            let mut groups = BTreeMap::new();
            groups.insert(
                String::new(),
                config
                    .static_configs
                    .iter()
                    .map(|s| TargetGroup {
                        targets: s.targets.iter().map(|t| t.0.clone()).collect(),
                        labels: s
                            .labels
                            .iter()
                            .map(|(n, v)| (n.0.clone(), v.clone()))
                            .collect(),
                    })
                    .collect(),
            );
            let patterns: Vec<String> = config
                .file_sd_configs
                .iter()
                .flat_map(|f| f.files.iter().cloned())
                .collect();
            let mut errors = Vec::new();
            for path in expand_file_globs(base_dir, &patterns) {
                match read_file_sd(&path) {
                    Ok(file_groups) => {
                        groups.insert(path.display().to_string(), file_groups);
                    }
                    Err(err) => errors.push(err),
                }
            }
            let mut pool = match pools.remove(name) {
                Some(mut old) => {
                    if let Some(watcher) = old.watcher.take() {
                        watcher.cancel();
                    }
                    old.job = job;
                    old.fingerprint = fingerprint;
                    old.groups = groups;
                    old.errors = errors;
                    old
                }
                None => Pool {
                    job,
                    fingerprint,
                    groups,
                    active: HashMap::new(),
                    dropped: Vec::new(),
                    errors,
                    watcher: None,
                },
            };
            for err in &pool.errors {
                warn!(job = name, error = %err, "file_sd file could not be read; keeping its last targets");
            }
            self.sync(&mut pool, true).await;
            if !patterns.is_empty() {
                let stop = self.shutdown.child_token();
                pool.watcher = Some(stop.clone());
                let refresh = config
                    .file_sd_configs
                    .iter()
                    .filter_map(|f| f.refresh_interval)
                    .map(|d| d.as_std())
                    .min()
                    .unwrap_or(Duration::from_secs(300))
                    .max(Duration::from_secs(1));
                tokio::spawn(self.clone().watch_files(
                    name.to_owned(),
                    patterns,
                    base_dir.to_owned(),
                    refresh.min(FILE_SD_POLL),
                    stop,
                ));
            }
            pools.insert(name.to_owned(), pool);
        }
        self.publish(&pools);
    }

    /// Starts loops for new targets and retires those no longer discovered.
    /// With `restart`, targets that stay are restarted under the pool's
    /// (new) job, keeping their series caches.
    async fn sync(self: &Arc<Self>, pool: &mut Pool, restart: bool) {
        let mut wanted: HashMap<u64, Target> = HashMap::new();
        let mut dropped = Vec::new();
        for group in pool.groups.values().flatten() {
            for address in &group.targets {
                match resolve(&pool.job, group, address) {
                    Ok(Resolved::Active(target)) => {
                        wanted.insert(target.key(), target);
                    }
                    Ok(Resolved::Dropped(discovered)) => dropped.push(discovered),
                    Err(err) => {
                        warn!(job = %pool.job.config.job_name, address, error = %err, "target skipped");
                        pool.errors.push(format!("{address}: {err}"));
                    }
                }
            }
        }
        pool.dropped = dropped;
        let keys: Vec<u64> = pool.active.keys().copied().collect();
        let mut caches: HashMap<u64, ScrapeCache> = HashMap::new();
        for key in keys {
            if !wanted.contains_key(&key) {
                if let Some(running) = pool.active.remove(&key) {
                    retire(running).await;
                }
            } else if restart && let Some(running) = pool.active.remove(&key) {
                running.stop.cancel();
                if let Ok(cache) = running.task.await {
                    caches.insert(key, cache);
                }
            }
        }
        for (key, target) in wanted {
            if pool.active.contains_key(&key) {
                continue;
            }
            let cache = caches.remove(&key).unwrap_or_default();
            let running = self.start(pool.job.clone(), Arc::new(target), cache);
            pool.active.insert(key, running);
        }
    }

    fn start(self: &Arc<Self>, job: Arc<Job>, target: Arc<Target>, cache: ScrapeCache) -> Running {
        let health = Arc::new(Mutex::new(Health {
            state: "unknown",
            ..Health::default()
        }));
        let stop = self.shutdown.child_token();
        let retire = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(self.clone().scrape_loop(
            job,
            target.clone(),
            health.clone(),
            cache,
            stop.clone(),
            retire.clone(),
        ));
        Running {
            target,
            health,
            stop,
            retire,
            task,
        }
    }

    async fn scrape_loop(
        self: Arc<Self>,
        job: Arc<Job>,
        target: Arc<Target>,
        health: Arc<Mutex<Health>>,
        mut cache: ScrapeCache,
        stop: CancellationToken,
        retire: Arc<std::sync::atomic::AtomicBool>,
    ) -> ScrapeCache {
        let context = Arc::new(ScrapeContext::new(target.clone(), &job.config));
        let limit = job
            .config
            .body_size_limit
            .as_deref()
            .and_then(parse_size)
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_BODY_LIMIT);
        // Spread targets over the interval: each starts at its own offset.
        let interval = target.interval;
        let interval_ms = interval.as_millis().max(1) as u64;
        let offset = Duration::from_millis(target.key() % interval_ms);
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let phase =
            Duration::from_millis((since_epoch.as_millis() % u128::from(interval_ms)) as u64);
        let wait = if offset >= phase {
            offset - phase
        } else {
            interval - (phase - offset)
        };
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + wait, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_report: Option<i64> = None;
        // Built once per loop; a bad CA file fails every scrape with its reason.
        let tls = (target.scheme == super::config::Scheme::Https)
            .then(|| super::tls::client_config(&job));
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let now_ms = wall_ms();
            let started = Instant::now();
            let fetched = tokio::select! {
                () = stop.cancelled() => break,
                fetched = tokio::time::timeout(target.timeout, scraper::fetch(&target, &job, tls.as_ref(), limit)) => {
                    fetched.unwrap_or_else(|_| Err(format!(
                        "Get \"{}\": context deadline exceeded (scrape timeout {:?})",
                        target.url(), target.timeout
                    )))
                }
            };
            self.stats.scrapes.inc();
            let writer = self.writer.clone();
            let ctx = context.clone();
            let result = tokio::task::spawn_blocking(move || {
                let outcome = match fetched {
                    Ok(fetched) => scraper::ingest_body(
                        &fetched.body,
                        fetched.format,
                        &ctx,
                        &mut cache,
                        writer.as_ref(),
                        now_ms,
                    ),
                    Err(err) => Err(err),
                };
                if outcome.is_err()
                    && let Err(err) =
                        scraper::mark_all_stale(&mut cache, &ctx, writer.as_ref(), now_ms)
                {
                    warn!(error = %err, "writing staleness markers failed");
                }
                (cache, outcome)
            })
            .await;
            let outcome: Result<ScrapeOutcome, String>;
            (cache, outcome) = match result {
                Ok(pair) => pair,
                Err(err) => {
                    warn!(error = %err, "scrape task failed");
                    (
                        ScrapeCache::default(),
                        Err(format!("scrape task failed: {err}")),
                    )
                }
            };
            let duration = started.elapsed();
            let (up, values, error) = match &outcome {
                Ok(o) => {
                    self.stats.samples.add(o.post_relabel);
                    self.stats.bad_lines.add(o.bad_lines.len() as u64);
                    let error = o.bad_lines.first().map(|first| {
                        format!(
                            "{} lines could not be parsed and were skipped; first: {first}",
                            o.bad_lines.len()
                        )
                    });
                    (
                        1.0,
                        [o.scraped as f64, o.post_relabel as f64, o.added as f64],
                        error.unwrap_or_default(),
                    )
                }
                Err(err) => {
                    self.stats.failures.inc();
                    debug!(target = %target.url(), error = %err, "scrape failed");
                    (0.0, [0.0; 3], err.clone())
                }
            };
            let report = report_batch(
                &target.labels,
                [
                    up,
                    scraper::seconds(duration),
                    values[0],
                    values[1],
                    values[2],
                ],
                now_ms,
            );
            let writer = self.writer.clone();
            match tokio::task::spawn_blocking(move || writer.append(&report)).await {
                Ok(Ok(_)) => last_report = Some(now_ms),
                Ok(Err(err)) => warn!(error = %err, "writing scrape report series failed"),
                Err(err) => warn!(error = %err, "writing scrape report series failed"),
            }
            let mut h = health.lock().expect("health lock");
            h.state = if up > 0.0 { "up" } else { "down" };
            h.last_error = error;
            h.last_scrape = Some(SystemTime::now());
            h.last_duration = duration;
        }
        if retire.load(std::sync::atomic::Ordering::SeqCst) {
            // The target went away: its series and report series end now.
            let now_ms = wall_ms().max(last_report.map_or(0, |t| t + 1));
            let writer = self.writer.clone();
            let labels: Labels = target.labels.clone();
            let result = tokio::task::spawn_blocking(move || {
                let stale = report_batch(&labels, [sextant_model::stale_nan(); 5], now_ms);
                let _ = writer.append(&stale);
                let _ = scraper::mark_all_stale(&mut cache, &context, writer.as_ref(), now_ms);
                cache
            })
            .await;
            return result.unwrap_or_default();
        }
        cache
    }

    /// Re-reads a job's file_sd files when they change.
    async fn watch_files(
        self: Arc<Self>,
        job: String,
        patterns: Vec<String>,
        base_dir: PathBuf,
        poll: Duration,
        stop: CancellationToken,
    ) {
        let mut last = file_stamps(&base_dir, &patterns);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(poll) => {}
            }
            let now = file_stamps(&base_dir, &patterns);
            if now == last {
                continue;
            }
            last = now;
            let mut pools = self.pools.lock().await;
            if stop.is_cancelled() {
                return;
            }
            let Some(mut pool) = pools.remove(&job) else {
                return;
            };
            let files = expand_file_globs(&base_dir, &patterns);
            pool.groups.retain(|source, _| source.is_empty());
            pool.errors.clear();
            for path in files {
                match read_file_sd(&path) {
                    Ok(groups) => {
                        pool.groups.insert(path.display().to_string(), groups);
                    }
                    Err(err) => {
                        warn!(job, error = %err, "file_sd file could not be read");
                        pool.errors.push(err);
                    }
                }
            }
            self.sync(&mut pool, false).await;
            pools.insert(job.clone(), pool);
            self.publish(&pools);
        }
    }

    fn publish(&self, pools: &BTreeMap<String, Pool>) {
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        for (name, pool) in pools {
            for running in pool.active.values() {
                active.push((name.clone(), running.target.clone(), running.health.clone()));
            }
            dropped.extend(pool.dropped.iter().map(|d| DroppedTarget {
                pool: name.clone(),
                discovered: d.clone(),
            }));
        }
        active.sort_by(|a, b| (&a.0, a.1.url()).cmp(&(&b.0, b.1.url())));
        *self.snapshot.lock().expect("snapshot lock") = (active, dropped);
    }

    /// Active and dropped targets, with each active target's current health.
    pub fn targets(&self) -> (Vec<ActiveTarget>, Vec<DroppedTarget>) {
        let snapshot = self.snapshot.lock().expect("snapshot lock");
        let active = snapshot
            .0
            .iter()
            .map(|(pool, target, health)| ActiveTarget {
                pool: pool.clone(),
                target: target.clone(),
                health: health.lock().expect("health lock").clone(),
            })
            .collect();
        (active, snapshot.1.clone())
    }
}

async fn retire(running: Running) {
    running
        .retire
        .store(true, std::sync::atomic::Ordering::SeqCst);
    running.stop.cancel();
    let _ = running.task.await;
}

fn file_stamps(base: &Path, patterns: &[String]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    expand_file_globs(base, patterns)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (path, modified, len)
        })
        .collect()
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `10MB`, `512KiB`, `1GB`, or a plain byte count, as Prometheus's `body_size_limit`.
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" | "KIB" => 1024.0,
        "MB" | "MIB" => 1024.0 * 1024.0,
        "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        "TB" | "TIB" => 1024.0_f64.powi(4),
        _ => return None,
    };
    Some((number * factor) as usize)
}
