//! `sextant check-data DIR`: every store under a data directory read back and
//! checked without changing anything. What a crash may leave and the next
//! start repairs (a torn WAL tail, never acknowledged) is a note; anything
//! else is a problem.

use std::path::Path;
use std::sync::Arc;

use crate::block_store::{BlockStore, LocalBlockStore};
use crate::tsdb::{Block, verify_wal};

/// What a check found, in the order it looked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// What was read and found whole, one line each.
    pub checked: Vec<String>,
    /// What a crash leaves behind and the next start repairs.
    pub notes: Vec<String>,
    /// Damage: data that cannot be read back, or disagrees with itself.
    pub problems: Vec<String>,
}

impl CheckReport {
    pub(crate) fn checked(&mut self, line: String) {
        self.checked.push(line);
    }

    pub(crate) fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    pub(crate) fn problem(&mut self, line: String) {
        self.problems.push(line);
    }

    /// No problems were found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the data directory at `dir`: the metrics WAL and blocks, the log
/// and span stores, and the alerting documents. The caller holds the
/// directory's lock, so nothing writes while it reads.
pub fn check_data_dir(dir: &Path) -> CheckReport {
    let mut report = CheckReport::default();
    check_metrics(&dir.join("metrics"), &mut report);
    let logs = dir.join("logs");
    if logs.is_dir() {
        crate::splits::check(&logs, crate::logs::decodes, &mut report);
    }
    let traces = dir.join("traces");
    if traces.is_dir() {
        crate::splits::check(&traces, crate::spans::decodes, &mut report);
    }
    check_json_documents(&dir.join("alerting"), &mut report);
    report
}

fn check_metrics(dir: &Path, report: &mut CheckReport) {
    let wal = dir.join("wal");
    if wal.is_dir() {
        match verify_wal(&wal) {
            Ok(check) => {
                report.checked(format!(
                    "{}: {} segments, {} records",
                    wal.display(),
                    check.segments,
                    check.records
                ));
                if let Some(torn) = check.torn_tail {
                    report.note(format!(
                        "{torn}; a write a crash cut short, cut off at the next start"
                    ));
                }
                check.problems.into_iter().for_each(|p| report.problem(p));
            }
            Err(e) => report.problem(format!("{}: {e}", wal.display())),
        }
    }
    let blocks_dir = dir.join("blocks");
    if !blocks_dir.is_dir() {
        return;
    }
    let store: Arc<dyn BlockStore> = match LocalBlockStore::open(&blocks_dir) {
        Ok(store) => Arc::new(store),
        Err(e) => return report.problem(format!("{}: {e}", blocks_dir.display())),
    };
    let ids = match store.list() {
        Ok(ids) => ids,
        Err(e) => return report.problem(format!("{}: {e}", blocks_dir.display())),
    };
    for id in ids {
        let path = blocks_dir.join(&id);
        match check_block(&store, &id) {
            Ok(line) => report.checked(format!("{}: {line}", path.display())),
            Err(e) => report.problem(format!("{}: {e}", path.display())),
        }
    }
    let metadata = dir.join("metadata.json");
    if let Ok(bytes) = std::fs::read(&metadata)
        && let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes)
    {
        report.problem(format!("{}: not JSON: {e}", metadata.display()));
    }
}

/// Every chunk of a block decoded, its series in label order, its samples
/// inside the block's time range and in time order, its counts as its meta says.
pub(crate) fn check_block(store: &Arc<dyn BlockStore>, id: &str) -> Result<String, String> {
    let block = Block::open(store.clone(), id).map_err(|e| e.to_string())?;
    let meta = block.meta.clone();
    if meta.id != id {
        return Err(format!("meta.json names block {}", meta.id));
    }
    let (mut series, mut samples) = (0u64, 0u64);
    let mut previous: Option<sextant_model::Labels> = None;
    for item in block.all_series() {
        let (labels, points, histograms) = item.map_err(|e| e.to_string())?;
        if previous.as_ref().is_some_and(|p| *p >= labels) {
            return Err(format!("series {labels} is out of label order"));
        }
        let times: Vec<i64> = points.iter().map(|p| p.timestamp_ms).collect();
        let histogram_times: Vec<i64> = histograms.iter().map(|h| h.timestamp_ms).collect();
        if let Some(bad) = times
            .iter()
            .chain(&histogram_times)
            .find(|&&t| t < meta.min_time || t >= meta.max_time)
        {
            return Err(format!(
                "series {labels} has a sample at {} outside the block's [{}, {})",
                bad, meta.min_time, meta.max_time
            ));
        }
        if !times.windows(2).all(|w| w[0] < w[1])
            || !histogram_times.windows(2).all(|w| w[0] < w[1])
        {
            return Err(format!("series {labels} has samples out of time order"));
        }
        series += 1;
        samples += (points.len() + histograms.len()) as u64;
        previous = Some(labels);
    }
    if (series, samples) != (meta.num_series, meta.num_samples) {
        return Err(format!(
            "{series} series and {samples} samples, but meta.json says {} and {}",
            meta.num_series, meta.num_samples
        ));
    }
    Ok(format!("block, {series} series, {samples} samples"))
}

/// The alerting documents are written whole (temp file, rename): each must parse.
fn check_json_documents(dir: &Path, report: &mut CheckReport) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut count = 0;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            check_json_documents(&path, report);
            continue;
        }
        if path.extension().is_some_and(|e| e == "json") {
            count += 1;
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string())
                });
            if let Err(e) = parsed {
                report.problem(format!("{}: {e}", path.display()));
            }
        }
    }
    if count > 0 {
        report.checked(format!("{}: {count} JSON documents", dir.display()));
    }
}
