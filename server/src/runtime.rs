//! What can change while the server runs: the scrape jobs, the StatsD
//! mapping and the rule files, reloaded from the config file on SIGHUP and `POST /-/reload`.
//! A file that does not load is refused and the running state kept.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use sextant_alerting::ruler::Ruler;
use sextant_ingest::scrape::ScrapeManager;
use sextant_ingest::statsd::Statsd;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{self, LoadedConfig, TokenConfig};
use crate::self_metrics::SelfMetrics;

/// The server's reloadable parts.
#[derive(Debug, Default)]
pub struct Runtime {
    config_path: Option<PathBuf>,
    statsd: Option<Arc<Statsd>>,
    scrape: OnceLock<Arc<ScrapeManager>>,
    ruler: OnceLock<(Arc<Ruler>, CancellationToken)>,
    /// Rule groups created through the ruler API.
    rule_namespaces: OnceLock<Arc<crate::ruler_api::RuleNamespaces>>,
    /// The config's access tokens, as last loaded (the ruler API's writes
    /// need one with the admin scope once there are any).
    tokens: std::sync::RwLock<Vec<TokenConfig>>,
    /// The groups of the config's rule files, as last loaded.
    file_groups: std::sync::Mutex<Vec<sextant_alerting::ruler::LoadedGroup>>,
    metrics: Option<Arc<SelfMetrics>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Runtime {
    /// The runtime for a server started from `config_path` (if any).
    pub fn new(
        config_path: Option<PathBuf>,
        statsd: Arc<Statsd>,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        Self {
            config_path,
            statsd: Some(statsd),
            scrape: OnceLock::new(),
            ruler: OnceLock::new(),
            rule_namespaces: OnceLock::new(),
            file_groups: std::sync::Mutex::new(Vec::new()),
            tokens: std::sync::RwLock::new(Vec::new()),
            metrics: Some(metrics),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The scrape manager, once the store is open.
    pub fn scrape(&self) -> Option<&Arc<ScrapeManager>> {
        self.scrape.get()
    }

    /// The rule evaluator and notifier, once the stores are open.
    pub fn ruler(&self) -> Option<&Arc<Ruler>> {
        self.ruler.get().map(|(ruler, _)| ruler)
    }

    /// Starts evaluating rules and notifying until `cancel`.
    /// Starts evaluating: the rule files' groups (`file_groups`, which the
    /// ruler was made with) and those created through the ruler API.
    pub fn start_alerting(
        &self,
        ruler: Arc<Ruler>,
        namespaces: Arc<crate::ruler_api::RuleNamespaces>,
        file_groups: Vec<sextant_alerting::ruler::LoadedGroup>,
        cancel: CancellationToken,
    ) {
        *self.file_groups.lock().expect("file groups lock") = file_groups;
        let _ = self.rule_namespaces.set(namespaces);
        let _ = self.ruler.set((ruler, cancel));
        self.apply_rule_groups();
    }

    /// Replaces the access tokens (at start and on reload).
    pub fn set_tokens(&self, tokens: Vec<TokenConfig>) {
        *self.tokens.write().expect("tokens lock") = tokens;
    }

    /// The tokens configured now.
    pub fn tokens(&self) -> Vec<TokenConfig> {
        self.tokens.read().expect("tokens lock").clone()
    }

    /// The rule groups created through the ruler API, once alerting runs.
    pub fn rule_namespaces(&self) -> Option<&Arc<crate::ruler_api::RuleNamespaces>> {
        self.rule_namespaces.get()
    }

    /// The rule files the config named, as last loaded.
    pub fn rule_file_paths(&self) -> Vec<PathBuf> {
        let groups = self.file_groups.lock().expect("file groups lock");
        let mut paths: Vec<PathBuf> = groups.iter().map(|g| g.file.clone()).collect();
        paths.dedup();
        paths
    }

    /// Every group, from files and the API.
    fn all_rule_groups(&self) -> Vec<sextant_alerting::ruler::LoadedGroup> {
        let mut groups = self.file_groups.lock().expect("file groups lock").clone();
        if let Some(namespaces) = self.rule_namespaces.get() {
            groups.extend(namespaces.loaded_groups());
        }
        groups
    }

    /// Has the ruler evaluate the current groups (after a change through the API).
    pub fn apply_rule_groups(&self) {
        if let Some((ruler, cancel)) = self.ruler.get() {
            ruler.replace_groups(self.all_rule_groups(), cancel);
        }
    }

    /// Starts scraping `config`'s jobs with `manager`.
    pub async fn start_scraping(&self, manager: Arc<ScrapeManager>, config: Option<&LoadedConfig>) {
        let manager = self.scrape.get_or_init(|| manager);
        if let Some(config) = config {
            apply_scrape(manager, config).await;
        }
    }

    /// Re-reads the config file and applies what may change at run time.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let _one = self.reloading.lock().await;
        if let Some(metrics) = &self.metrics {
            metrics.reloads.inc();
        }
        let result = self.reload_inner().await;
        if let Some(metrics) = &self.metrics {
            metrics
                .last_reload_ok
                .store(result.is_ok(), Ordering::Relaxed);
            if result.is_err() {
                metrics.reload_failures.inc();
            }
        }
        match &result {
            Ok(()) => info!("configuration reloaded"),
            Err(err) => {
                warn!(error = %format!("{err:#}"), "configuration reload refused; keeping the running configuration");
            }
        }
        result
    }

    async fn reload_inner(&self) -> anyhow::Result<()> {
        let Some(path) = self.config_path.clone() else {
            anyhow::bail!("Sextant was started without --config; there is nothing to reload");
        };
        let loaded = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .context("loading the config file")??;
        if let Some(statsd) = &self.statsd {
            statsd.set_mapper(loaded.statsd_mapping.clone().unwrap_or_default());
        }
        self.set_tokens(loaded.file.auth.tokens.clone());
        if let Some(manager) = self.scrape.get() {
            apply_scrape(manager, &loaded).await;
        }
        if let Some((ruler, cancel)) = self.ruler.get() {
            *self.file_groups.lock().expect("file groups lock") =
                crate::alerting_api::groups_of(Some(&loaded));
            ruler.reload(self.all_rule_groups(), loaded.file.alerting.clone(), cancel);
        }
        Ok(())
    }
}

async fn apply_scrape(manager: &Arc<ScrapeManager>, config: &LoadedConfig) {
    let global = &config.file.global;
    let interval: Duration = global.scrape_interval.as_std();
    let timeout: Duration = global.scrape_timeout().as_std();
    let defaults = global.scrape_defaults();
    let mut jobs = config.file.scrape_configs.clone();
    for job in &mut jobs {
        job.inherit(&defaults);
    }
    manager
        .apply(&jobs, interval, timeout, config.base_dir())
        .await;
}
