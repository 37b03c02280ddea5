//! From a job's configuration to the targets it scrapes: static and file
//! groups, Prometheus's target labels (`__address__`, `__scheme__`,
//! `__metrics_path__`, `__param_*`, ...), `relabel_configs`, and the URL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sextant_model::{Labels, PromDuration};

use super::config::{Scheme, ScrapeConfig};
use super::relabel::{LabelMap, relabel};

/// A job with its defaults filled in from the `global` section.
#[derive(Debug, Clone)]
pub struct Job {
    pub config: ScrapeConfig,
    pub interval: Duration,
    pub timeout: Duration,
    /// Where relative file paths in the job (password, token, TLS files) are resolved.
    pub base_dir: PathBuf,
}

impl Job {
    /// `config` with `global`'s interval and timeout where it has none, as
    /// Prometheus fills them (the timeout capped at the job's interval).
    pub fn new(config: ScrapeConfig, global_interval: Duration, global_timeout: Duration) -> Self {
        let interval = config
            .scrape_interval
            .map_or(global_interval, |d| d.as_std());
        let timeout = config
            .scrape_timeout
            .map_or_else(|| global_timeout.min(interval), |d| d.as_std());
        Self {
            config,
            interval,
            timeout,
            base_dir: PathBuf::from("."),
        }
    }

    /// The same job resolving relative file paths against `dir` (the config file's directory).
    pub fn with_base_dir(mut self, dir: &Path) -> Self {
        dir.clone_into(&mut self.base_dir);
        self
    }

    /// A file path as written in the job, resolved.
    pub fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// Targets sharing labels, from the config file or a file_sd file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A target to scrape, after relabelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The labels before relabelling (Prometheus's `discoveredLabels`).
    pub discovered: LabelMap,
    /// The labels every series from this target gets (`job`, `instance`, ...).
    pub labels: Labels,
    /// `host:port` to connect to.
    pub address: String,
    /// What is sent after the address: path and query.
    pub path_and_query: String,
    pub scheme: Scheme,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// The URL scraped.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}{}", self.address, self.path_and_query)
    }

    /// Identifies the target across reloads: its labels and URL.
    pub fn key(&self) -> u64 {
        let text = format!("{}\u{ff}{}", self.labels, self.url());
        xxhash_rust::xxh64::xxh64(text.as_bytes(), 0)
    }
}

/// What became of one discovered address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Active(Target),
    /// Dropped by `relabel_configs`, with its discovered labels.
    Dropped(LabelMap),
}

/// Turns one address of a group into a target, as Prometheus's
/// `PopulateLabels` does. An error names what makes the target unusable.
pub fn resolve(job: &Job, group: &TargetGroup, address: &str) -> Result<Resolved, String> {
    let config = &job.config;
    let mut labels: LabelMap = group.labels.clone();
    labels.insert("__address__".into(), address.to_owned());
    let mut default = |name: &str, value: String| {
        labels.entry(name.to_owned()).or_insert(value);
    };
    default("job", config.job_name.clone());
    default(
        "__scheme__",
        match config.scheme {
            Scheme::Http => "http".into(),
            Scheme::Https => "https".into(),
        },
    );
    default("__metrics_path__", config.metrics_path.clone());
    default(
        "__scrape_interval__",
        PromDuration::new(job.interval).to_string(),
    );
    default(
        "__scrape_timeout__",
        PromDuration::new(job.timeout).to_string(),
    );
    for (name, values) in &config.params {
        if let Some(first) = values.first() {
            default(&format!("__param_{name}"), first.clone());
        }
    }
    let discovered = labels.clone();
    if !relabel(&mut labels, &config.relabel_configs) {
        return Ok(Resolved::Dropped(discovered));
    }
    let address = labels
        .get("__address__")
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or("no address left after relabelling")?;
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid host:port address"));
    }
    let scheme = match labels.get("__scheme__").map(String::as_str) {
        Some("http") | None => Scheme::Http,
        Some("https") => Scheme::Https,
        Some(other) => return Err(format!("invalid scheme {other:?}")),
    };
    let duration = |name: &str, fallback: Duration| -> Result<Duration, String> {
        match labels.get(name) {
            None => Ok(fallback),
            Some(text) => text
                .parse::<PromDuration>()
                .map(PromDuration::as_std)
                .map_err(|e| format!("{name} {text:?}: {e}")),
        }
    };
    let interval = duration("__scrape_interval__", job.interval)?;
    let timeout = duration("__scrape_timeout__", job.timeout)?;
    if interval.is_zero() {
        return Err("scrape interval cannot be 0".to_owned());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout {} is greater than scrape interval {}",
            PromDuration::new(timeout),
            PromDuration::new(interval)
        ));
    }
    let path = labels
        .get("__metrics_path__")
        .cloned()
        .unwrap_or_else(|| config.metrics_path.clone());
    // Job params, with `__param_*` labels overriding their first value.
    let mut query = form_pairs(config, &labels);
    let path_and_query = if query.is_empty() {
        path
    } else {
        query.insert(0, '?');
        format!("{path}{query}")
    };
    labels
        .entry("instance".into())
        .or_insert_with(|| address.clone());
    let kept = labels
        .into_iter()
        .filter(|(name, value)| !name.starts_with("__") && !value.is_empty());
    Ok(Resolved::Active(Target {
        discovered,
        labels: Labels::from_pairs(kept),
        address,
        path_and_query,
        scheme,
        interval,
        timeout,
    }))
}

fn form_pairs(config: &ScrapeConfig, labels: &LabelMap) -> String {
    let mut params: BTreeMap<String, Vec<String>> = config.params.clone();
    for (name, value) in labels {
        if let Some(param) = name.strip_prefix("__param_") {
            let values = params.entry(param.to_owned()).or_default();
            match values.first_mut() {
                Some(first) => first.clone_from(value),
                None => values.push(value.clone()),
            }
        }
    }
    let mut out = String::new();
    for (name, values) in &params {
        for value in values {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&percent_encode(name));
            out.push('=');
            out.push_str(&percent_encode(value));
        }
    }
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The files a file_sd glob names now; relative globs are resolved against `base`.
pub fn expand_file_globs(base: &Path, patterns: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pattern in patterns {
        let full = base.join(pattern);
        let Some(text) = full.to_str() else { continue };
        if let Ok(paths) = glob::glob(text) {
            out.extend(paths.flatten());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Reads a file_sd file (JSON, or YAML for `.yml`/`.yaml`); every group gets
/// `__meta_filepath`.
pub fn read_file_sd(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
    let mut groups: Vec<TargetGroup> = if yaml {
        serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    for group in &mut groups {
        for target in &group.targets {
            target
                .parse::<super::config::Target>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        group
            .labels
            .insert("__meta_filepath".into(), path.display().to_string());
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> Job {
        let config: ScrapeConfig = serde_norway::from_str(yaml).unwrap();
        Job::new(config, Duration::from_secs(60), Duration::from_secs(10))
    }

    fn group(labels: &[(&str, &str)]) -> TargetGroup {
        TargetGroup {
            targets: Vec::new(),
            labels: labels
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_static_target_gets_job_instance_and_its_url() {
        let job = job("job_name: node\nscrape_interval: 15s\nparams: {module: [http_2xx]}");
        let Resolved::Active(target) =
            resolve(&job, &group(&[("env", "prod")]), "node-1:9100").unwrap()
        else {
            panic!("dropped")
        };
        assert_eq!(
            target.labels.to_string(),
            "{env=\"prod\", instance=\"node-1:9100\", job=\"node\"}"
        );
        assert_eq!(target.url(), "http://node-1:9100/metrics?module=http_2xx");
        assert_eq!(target.interval, Duration::from_secs(15));
        assert_eq!(target.timeout, Duration::from_secs(10));
        assert_eq!(target.discovered["__address__"], "node-1:9100");
        assert_eq!(target.discovered["__scrape_interval__"], "15s");
    }

    #[test]
    fn relabelling_rewrites_drops_and_sets_the_url() {
        let job = job(r#"
job_name: blackbox
relabel_configs:
  - source_labels: [__address__]
    target_label: __param_target
  - source_labels: [__param_target]
    target_label: instance
  - target_label: __address__
    replacement: 127.0.0.1:9115
  - source_labels: [instance]
    regex: 'skip.*'
    action: drop
"#);
        let Resolved::Active(target) = resolve(&job, &group(&[]), "example.org").unwrap() else {
            panic!("dropped")
        };
        assert_eq!(target.address, "127.0.0.1:9115");
        assert_eq!(target.path_and_query, "/metrics?target=example.org");
        assert_eq!(target.labels.get("instance"), Some("example.org"));
        assert!(matches!(
            resolve(&job, &group(&[]), "skip.example.org").unwrap(),
            Resolved::Dropped(_)
        ));
    }

    #[test]
    fn file_sd_reads_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("a.json");
        std::fs::write(
            &json,
            r#"[{"targets": ["h1:1", "h2:2"], "labels": {"team": "db"}}]"#,
        )
        .unwrap();
        let yaml = dir.path().join("b.yml");
        std::fs::write(&yaml, "- targets: ['h3:3']\n").unwrap();
        std::fs::write(
            dir.path().join("bad.json"),
            "[{\"targets\": [\"http://x\"]}]",
        )
        .unwrap();
        let files = expand_file_globs(dir.path(), &["*.json".into(), "*.yml".into()]);
        assert_eq!(files.len(), 3);
        let groups = read_file_sd(&json).unwrap();
        assert_eq!(groups[0].targets, ["h1:1", "h2:2"]);
        assert_eq!(groups[0].labels["team"], "db");
        assert_eq!(
            groups[0].labels["__meta_filepath"],
            json.display().to_string()
        );
        assert_eq!(read_file_sd(&yaml).unwrap()[0].targets, ["h3:3"]);
        let err = read_file_sd(&dir.path().join("bad.json")).unwrap_err();
        assert!(err.contains("without a scheme"), "{err}");
    }
}
