//! The engine: ties the WAL, the head and the blocks together, and runs head
//! cuts, compaction and retention.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sextant_model::telemetry::GaugeShare;
use sextant_model::{Exemplar, HistogramSample, Labels, MatchOp, Matcher, PromDuration, Sample};
use tracing::{info, warn};

use super::block::{Block, BlockWriter};
use super::exemplars::{ExemplarReport, ExemplarStore};
use super::head::{
    HeadInner, HeadLimits, MemSeries, RejectReason, ReplayShard, SplitSeries, hash_pairs,
    merge_last_wins, merge_last_wins_by,
};
use super::head_chunks::ChunkFiles;
use super::stats::TsdbStats;
use super::wal::{self, FsyncPolicy, Record, Wal};
use crate::block_store::{BlockStore, LocalBlockStore};
use crate::{Error, LazySeries, PairBatch, Result};

/// The `storage.metrics` settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbConfig {
    /// When the WAL is fsynced: `always`, `interval` or `never`.
    pub wal_fsync: FsyncPolicy,
    /// The fsync period for the `interval` policy.
    pub wal_fsync_interval: PromDuration,
    /// How far behind a series' newest sample a late sample may arrive
    /// (and, for samples older than the head, how far before the head's
    /// start). The default takes samples of any age the retention keeps.
    pub out_of_order_window: PromDuration,
    /// The time span of a block cut from the head.
    pub block_duration: PromDuration,
    /// Most series in the head; 0 means no limit.
    pub max_series: usize,
    /// Most series per metric name in the head; 0 means no limit.
    pub max_series_per_metric: usize,
    /// Most labels (the metric name included) a new series may have; 0 means no limit.
    pub max_labels_per_series: usize,
    /// Longest label name of a new series, in bytes; 0 means no limit.
    pub max_label_name_length: usize,
    /// Longest label value of a new series, in bytes; 0 means no limit.
    pub max_label_value_length: usize,
    /// Most exemplars kept (the oldest dropped first); 0 keeps none.
    /// Prometheus's `storage.exemplars.max_exemplars`.
    pub max_exemplars: usize,
    /// Most buckets (both sides, or custom bounds) a native histogram
    /// sample may have; more is refused as `too_many_buckets`. 0 means no
    /// limit below the engine's own (65,536).
    pub max_native_histogram_buckets: usize,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        Self {
            wal_fsync: FsyncPolicy::Interval,
            wal_fsync_interval: PromDuration::from_secs(1),
            out_of_order_window: PromDuration::from_secs(100 * 365 * 86_400),
            block_duration: PromDuration::from_secs(2 * 3600),
            max_series: 5_000_000,
            max_series_per_metric: 1_000_000,
            // Mimir's defaults are 30 labels and 2048-byte values; OTLP's
            // target_info carries every resource attribute, so more room here.
            max_labels_per_series: 128,
            max_label_name_length: 1024,
            max_label_value_length: 4096,
            max_exemplars: super::exemplars::DEFAULT_MAX_EXEMPLARS,
            max_native_histogram_buckets: 4096,
        }
    }
}

/// Samples of one series, the unit of writing and reading.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Native histogram samples of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesHistograms {
    pub labels: Labels,
    pub samples: Vec<HistogramSample>,
}

/// One sample of a series a writer has seen before: `series_ref` is what
/// the engine called the series last time (0 when unknown), so a repeated
/// series (every scrape of a target) skips the lookup by labels. The engine
/// writes the reference back; a reference to a series that has since left
/// the head is looked up by labels again.
#[derive(Debug, Clone)]
pub struct RefSample<'a> {
    pub labels: &'a Labels,
    pub series_ref: u64,
    pub sample: Sample,
}

/// A series' samples by the reference the engine wrote back last time (0
/// when unknown), as [`RefSample`] is for one sample.
#[derive(Debug)]
pub struct RefSeries<'a> {
    pub labels: &'a Labels,
    pub series_ref: u64,
    pub samples: &'a [Sample],
}

/// One series' samples on their way in, with where to put its reference.
struct AppendItem<'a> {
    labels: ItemLabels<'a>,
    series_ref: Option<&'a mut u64>,
    samples: &'a [Sample],
}

/// A series to append to, by its labels or by label pairs sorted by name
/// (labels are then built only for a new series or a refusal's message).
#[derive(Clone, Copy)]
enum ItemLabels<'a> {
    Built(&'a Labels),
    Pairs(&'a [(&'a str, &'a str)]),
}

impl std::fmt::Display for ItemLabels<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Built(labels) => labels.fmt(f),
            Self::Pairs(pairs) => Labels::from_pairs(pairs.iter().copied()).fmt(f),
        }
    }
}

/// How an append treats a sample the series cannot take in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Appending {
    /// Samples: out-of-order ones within the window are kept, the rest
    /// refused and counted.
    Samples,
    /// Start-timestamp zeros: kept only when newer than all the series
    /// holds; otherwise skipped, not counted.
    NewestOnly,
}

/// What an append kept and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Samples stored.
    pub accepted: u64,
    /// Samples refused, per reason.
    pub rejected: BTreeMap<RejectKey, u64>,
    /// The first refused series and why, for the sender's error message.
    pub first_rejection: Option<String>,
}

/// A sortable key for [`RejectReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectKey(u8);

impl RejectKey {
    fn of(reason: RejectReason) -> Self {
        Self(reason as u8)
    }
}

impl AppendReport {
    /// Counts `n` samples of `labels` refused for `reason` (a writer that
    /// refuses before the engine sees them: cluster mode's).
    pub fn reject(&mut self, reason: RejectReason, n: u64, labels: &Labels) {
        if n == 0 {
            return;
        }
        *self.rejected.entry(RejectKey::of(reason)).or_default() += n;
        if self.first_rejection.is_none() {
            self.first_rejection = Some(format!("{labels}: {}", reason.describe()));
        }
    }

    /// Samples refused in all.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Type, help and unit of a metric name, as clients declare them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// A counter of changes to what queries over the past answer: writes at
/// or before `watermark` (the newest time a results cache holds) and
/// deletions. Sequentially consistent, so a writer that finds the
/// watermark below its sample (and moves nothing) wrote before the cache
/// raised it, hence before the cache's query read the store.
#[derive(Debug)]
struct ChangeEpoch {
    epoch: AtomicU64,
    watermark: AtomicI64,
}

impl Default for ChangeEpoch {
    fn default() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
        }
    }
}

impl ChangeEpoch {
    /// After samples, the oldest at `oldest`, became visible.
    fn wrote(&self, oldest: Option<i64>) {
        if oldest.is_some_and(|t| t <= self.watermark.load(Ordering::SeqCst)) {
            self.changed();
        }
    }

    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn epoch(&self, cached_until_ms: i64) -> u64 {
        self.watermark.fetch_max(cached_until_ms, Ordering::SeqCst);
        self.epoch.load(Ordering::SeqCst)
    }
}

/// The time-series engine over one data directory.
pub struct Tsdb {
    dir: PathBuf,
    config: TsdbConfig,
    retention_ms: i64,
    head: RwLock<HeadInner>,
    wal: Wal,
    blocks: RwLock<Vec<Arc<Block>>>,
    store: Arc<dyn BlockStore>,
    stats: Arc<TsdbStats>,
    maintenance: Mutex<()>,
    /// Whether appends go to the WAL ([`Tsdb::log_nothing`]).
    logged: AtomicBool,
    /// This engine's parts of the gauges in `stats`, which a cluster
    /// node's partitions share: the gauges read their sum.
    shares: GaugeShares,
    block_seq: AtomicU32,
    metadata: Mutex<BTreeMap<String, MetricMetadata>>,
    exemplars: ExemplarStore,
    /// What a query results cache needs to know ([`Tsdb::results_epoch`]).
    changes: ChangeEpoch,
    /// Samples moved out of the head whose blocks are being written:
    /// readers find them here until the blocks are listed.
    frozen: RwLock<Vec<Arc<Frozen>>>,
    /// Cuts made ([`Tsdb::persist_before`]), counted under the head lock: a
    /// reader that selected head series before one reads them again.
    head_cuts: AtomicU64,
    /// Whether samples older than the head's start are taken
    /// ([`Tsdb::refuse_backfill`]).
    backfill: AtomicBool,
    /// Samples older than the head's start waiting in the head for their blocks.
    backfill_pending: AtomicU64,
    /// When the oldest of those arrived (wall-clock ms), `i64::MAX` when none.
    backfill_since: AtomicI64,
    /// Samples before this are past retention (`i64::MIN` before any data).
    oldest_kept: AtomicI64,
}

/// Series moved out of the head ([`HeadInner::split_before`]), in label
/// order, while their blocks are written.
#[derive(Debug)]
struct Frozen {
    series: Vec<SplitSeries>,
    /// Where the head started before they left it: older samples are
    /// backfill.
    backfill_below: i64,
}

/// Backfilled samples that make maintenance write their blocks at once
/// rather than wait (they sit in the head's out-of-order maps meanwhile).
const BACKFILL_FLUSH_SAMPLES: u64 = 1_000_000;

/// An engine's parts of its stats' gauges ([`GaugeShare`]).
#[derive(Debug, Default)]
struct GaugeShares {
    head_series: GaugeShare,
    head_chunks: GaugeShare,
    backfill_pending: GaugeShare,
    blocks: GaugeShare,
    block_bytes: GaugeShare,
}

impl Drop for Tsdb {
    /// A closed engine (a partition handed over) counts no more.
    fn drop(&mut self) {
        let (stats, shares) = (&self.stats, &self.shares);
        shares.head_series.set(&stats.head_series, 0);
        shares.head_chunks.set(&stats.head_chunks, 0);
        shares.backfill_pending.set(&stats.backfill_pending, 0);
        shares.blocks.set(&stats.blocks, 0);
        shares.block_bytes.set(&stats.block_bytes, 0);
    }
}

impl std::fmt::Debug for Tsdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsdb")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Tsdb {
    /// Opens the engine in `dir` (`<data>/metrics`): loads blocks, replays the WAL.
    pub fn open(
        dir: &Path,
        config: TsdbConfig,
        retention: PromDuration,
        stats: Arc<TsdbStats>,
    ) -> Result<Self> {
        Self::open_with_remote(dir, config, retention, stats, None)
    }

    /// As [`Tsdb::open`], with sealed blocks also kept in object storage
    /// under `<prefix>/metrics/` (see [`crate::remote`]).
    pub fn open_with_remote(
        dir: &Path,
        config: TsdbConfig,
        retention: PromDuration,
        stats: Arc<TsdbStats>,
        remote: Option<Arc<crate::remote::RemoteStore>>,
    ) -> Result<Self> {
        Self::open_in_bucket(
            dir,
            config,
            retention,
            stats,
            remote.map(|r| (r, "metrics")),
        )
    }

    /// As [`Tsdb::open_with_remote`], with the blocks under `kind` in the
    /// bucket (`metrics`, or `metrics/p3` for a cluster partition).
    pub fn open_in_bucket(
        dir: &Path,
        config: TsdbConfig,
        retention: PromDuration,
        stats: Arc<TsdbStats>,
        remote: Option<(Arc<crate::remote::RemoteStore>, &str)>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        let blocks_dir = dir.join("blocks");
        let store: Arc<dyn BlockStore> = match remote {
            Some((remote, kind)) => Arc::new(
                crate::remote::ObjectBlockStore::open(&blocks_dir, remote, kind)
                    .map_err(io_err("open the block store"))?,
            ),
            None => Arc::new(
                LocalBlockStore::open(&blocks_dir).map_err(io_err("open the block store"))?,
            ),
        };
        let blocks = Self::load_blocks(&store)?;
        let min_valid_time = blocks
            .iter()
            .map(|b| b.meta.max_time)
            .max()
            .unwrap_or(i64::MIN);
        let wal_dir = dir.join("wal");
        let started = std::time::Instant::now();
        let (report, mut head, replayed_samples, backfilled) =
            replay_wal(&wal_dir, min_valid_time).map_err(io_err("replay the metrics WAL"))?;
        let chunks_dir = dir.join("chunks_head");
        match ChunkFiles::open(&chunks_dir) {
            Ok(files) => head.use_chunk_files(files),
            Err(err) => warn!(
                dir = %chunks_dir.display(),
                %err,
                "sealed head chunks stay in memory: their directory cannot be used"
            ),
        }
        if report.repaired {
            stats.wal_replay_repairs.inc();
        }
        info!(
            series = head.series_count(),
            samples = replayed_samples,
            blocks = blocks.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "metrics store opened"
        );
        let wal = Wal::open(&wal_dir, config.wal_fsync, stats.clone())
            .map_err(io_err("open the metrics WAL"))?;
        let metadata = std::fs::read(dir.join("metadata.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let exemplars = ExemplarStore::open(Some(&dir.join("exemplars.log")), config.max_exemplars)
            .map_err(io_err("open the exemplar log"))?;
        let db = Self {
            dir: dir.to_owned(),
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            config,
            head: RwLock::new(head),
            wal,
            blocks: RwLock::new(blocks),
            store,
            stats,
            maintenance: Mutex::new(()),
            logged: AtomicBool::new(true),
            shares: GaugeShares::default(),
            block_seq: AtomicU32::new(0),
            metadata: Mutex::new(metadata),
            exemplars,
            changes: ChangeEpoch::default(),
            frozen: RwLock::new(Vec::new()),
            head_cuts: AtomicU64::new(0),
            backfill: AtomicBool::new(true),
            backfill_pending: AtomicU64::new(0),
            backfill_since: AtomicI64::new(i64::MAX),
            oldest_kept: AtomicI64::new(i64::MIN),
        };
        if backfilled > 0 {
            db.note_backfill(backfilled);
        }
        db.update_oldest_kept();
        db.refresh_stats();
        Ok(db)
    }

    fn load_blocks(store: &Arc<dyn BlockStore>) -> Result<Vec<Arc<Block>>> {
        let ids = store.list().map_err(io_err("list blocks"))?;
        // Several at a time: a block only in the bucket costs two requests.
        const OPENERS: usize = 8;
        let opened: Vec<io::Result<Block>> = std::thread::scope(|scope| {
            let workers: Vec<_> = ids
                .chunks(ids.len().div_ceil(OPENERS).max(1))
                .map(|batch| {
                    scope.spawn(move || {
                        batch
                            .iter()
                            .map(|id| Block::open(store.clone(), id))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a block opener panicked"))
                .collect()
        });
        let mut blocks = Vec::new();
        for (id, block) in ids.iter().zip(opened) {
            match block {
                Ok(block) => blocks.push(Arc::new(block)),
                Err(err) => {
                    return Err(Error::Io {
                        context: format!("open block {id}"),
                        source: err,
                    });
                }
            }
        }
        // A compaction that crashed after publishing its result but before
        // deleting its sources leaves both: the sources go now.
        let replaced: HashSet<String> = blocks
            .iter()
            .flat_map(|b| b.meta.parents.iter().cloned())
            .collect();
        let mut kept = Vec::new();
        for block in blocks {
            if replaced.contains(&block.meta.id) {
                warn!(block = %block.meta.id, "deleting a block already compacted into another");
                store
                    .delete(&block.meta.id)
                    .map_err(io_err("delete a compacted block"))?;
            } else {
                kept.push(block);
            }
        }
        kept.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
        Ok(kept)
    }

    fn limits(&self) -> HeadLimits {
        HeadLimits {
            ooo_window_ms: i64::try_from(self.config.out_of_order_window.as_millis())
                .unwrap_or(i64::MAX),
            oldest_ms: self.oldest_kept.load(Ordering::Relaxed),
            backfill: self.backfill.load(Ordering::Relaxed),
            max_series: self.config.max_series,
            max_series_per_metric: self.config.max_series_per_metric,
            max_labels_per_series: self.config.max_labels_per_series,
            max_label_name_length: self.config.max_label_name_length,
            max_label_value_length: self.config.max_label_value_length,
        }
    }

    /// Appends samples. Acknowledged (Ok) means logged per the fsync policy;
    /// refused samples are counted in the report and the rest kept.
    pub fn append(&self, batch: &[SeriesSamples]) -> Result<AppendReport> {
        self.append_items(
            batch.iter().map(|s| AppendItem {
                labels: ItemLabels::Built(&s.labels),
                series_ref: None,
                samples: &s.samples,
            }),
            Appending::Samples,
        )
    }

    /// Zero samples at series' start timestamps: each kept only where it is
    /// newer than everything its series holds (a series unknown until now
    /// included), the rest skipped without a count, as Prometheus's
    /// `AppendSTZeroSample` skips an out-of-order start. How many were kept.
    pub fn append_start_zeros(&self, batch: &[SeriesSamples]) -> Result<u64> {
        let report = self.append_items(
            batch.iter().map(|s| AppendItem {
                labels: ItemLabels::Built(&s.labels),
                series_ref: None,
                samples: &s.samples,
            }),
            Appending::NewestOnly,
        )?;
        Ok(report.accepted)
    }

    /// As [`Tsdb::append`], one sample per item, by series reference where known.
    pub fn append_refs(&self, batch: &mut [RefSample<'_>]) -> Result<AppendReport> {
        self.append_items(
            batch.iter_mut().map(|s| AppendItem {
                labels: ItemLabels::Built(s.labels),
                series_ref: Some(&mut s.series_ref),
                samples: std::slice::from_ref(&s.sample),
            }),
            Appending::Samples,
        )
    }

    /// As [`Tsdb::append_refs`], several samples per series: what a cluster
    /// partition's owner applies, its series references kept between
    /// records so a known series skips the lookup by labels.
    pub fn append_ref_series(&self, batch: &mut [RefSeries<'_>]) -> Result<AppendReport> {
        self.append_items(
            batch.iter_mut().map(|s| AppendItem {
                labels: ItemLabels::Built(s.labels),
                series_ref: Some(&mut s.series_ref),
                samples: s.samples,
            }),
            Appending::Samples,
        )
    }

    /// As [`Tsdb::append`], series given as label pairs borrowed from the
    /// bytes they came in (remote write): a series the head has is found
    /// without building its labels.
    pub fn append_pairs(&self, batch: &PairBatch<'_>) -> Result<AppendReport> {
        self.append_items(
            batch.iter().map(|s| AppendItem {
                labels: ItemLabels::Pairs(s.labels),
                series_ref: None,
                samples: s.samples,
            }),
            Appending::Samples,
        )
    }

    fn append_items<'a>(
        &self,
        batch: impl Iterator<Item = AppendItem<'a>>,
        appending: Appending,
    ) -> Result<AppendReport> {
        let limits = self.limits();
        let mut report = AppendReport::default();
        let reject =
            |report: &mut AppendReport, reason: RejectReason, n: u64, labels: ItemLabels<'_>| {
                if n == 0 || appending == Appending::NewestOnly {
                    return;
                }
                self.stats.reject(reason, n);
                *report.rejected.entry(RejectKey::of(reason)).or_default() += n;
                if report.first_rejection.is_none() {
                    report.first_rejection = Some(format!("{labels}: {}", reason.describe()));
                }
            };
        let batch: Vec<AppendItem<'a>> = batch.collect();
        // Series given by label pairs are looked up all at once; their
        // hashes need no lock.
        let by_pairs: Vec<&[(&str, &str)]> = batch
            .iter()
            .filter_map(|item| match item.labels {
                ItemLabels::Pairs(pairs) => Some(pairs),
                ItemLabels::Built(_) => None,
            })
            .collect();
        let hashes: Vec<u64> = by_pairs.iter().map(|p| hash_pairs(p)).collect();
        let seq;
        {
            let mut head = self.head.write().expect("head lock");
            let mut found_by_pairs = head.lookup_hashed(&by_pairs, &hashes).into_iter();
            let mut created = Vec::new();
            // Sized once (a sample a series, at least): a large batch would
            // otherwise leave a trail of outgrown buffers in the allocator.
            let mut accepted: Vec<(u64, i64, f64)> = Vec::with_capacity(batch.len());
            let mut backfilled = 0u64;
            for series in batch {
                let found = match series.labels {
                    ItemLabels::Pairs(_) => found_by_pairs.next().flatten(),
                    ItemLabels::Built(_) => None,
                };
                let known = series
                    .series_ref
                    .as_deref()
                    .copied()
                    .filter(|&id| id != 0 && head.series(id).is_some());
                let resolved = match (known.or(found), series.labels) {
                    (Some(id), _) => Ok(id),
                    (None, ItemLabels::Built(labels)) => {
                        head.get_or_create(labels, &limits, &mut created)
                    }
                    // Not there before this batch (an earlier item may have made it).
                    (None, ItemLabels::Pairs(pairs)) => head.get_or_create(
                        &Labels::from_pairs(pairs.iter().copied()),
                        &limits,
                        &mut created,
                    ),
                };
                let id = match resolved {
                    Ok(id) => {
                        if let Some(slot) = series.series_ref {
                            *slot = id;
                        }
                        id
                    }
                    Err(reason) => {
                        reject(
                            &mut report,
                            reason,
                            series.samples.len() as u64,
                            series.labels,
                        );
                        continue;
                    }
                };
                for s in series.samples {
                    if appending == Appending::NewestOnly {
                        if head.is_newest(id, s.timestamp_ms) {
                            accepted.push((id, s.timestamp_ms, s.value));
                        }
                        continue;
                    }
                    match head.check(id, s.timestamp_ms, &limits) {
                        Ok(()) => {
                            backfilled += u64::from(s.timestamp_ms < head.min_valid_time);
                            accepted.push((id, s.timestamp_ms, s.value));
                        }
                        Err(reason) => reject(&mut report, reason, 1, series.labels),
                    }
                }
            }
            if accepted.is_empty() && created.is_empty() {
                return Ok(report);
            }
            let mut series_record = Vec::new();
            let logged = self.logged.load(Ordering::Relaxed);
            if logged && !created.is_empty() {
                wal::encode_series(
                    &mut series_record,
                    created.iter().map(|id| (*id, head.label_pairs(*id))),
                );
            }
            let mut samples_record = Vec::new();
            if logged && !accepted.is_empty() {
                wal::encode_samples(&mut samples_record, &accepted);
            }
            let records: Vec<&[u8]> = [&series_record[..], &samples_record[..]]
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect();
            seq = match if logged {
                self.wal.write(&records)
            } else {
                Ok(0)
            } {
                Ok(seq) => seq,
                Err(err) => {
                    // Nothing of this batch is logged, so nothing of it may stay.
                    head.forget(&created);
                    return Err(io_err("write the metrics WAL")(err));
                }
            };
            // Logged: the records go before the head grows, so it can grow
            // into their room rather than past it.
            drop(records);
            drop((series_record, samples_record));
            let mut new_chunks = 0;
            for (id, t, v) in &accepted {
                new_chunks += head.apply(*id, *t, *v);
            }
            if new_chunks > 0 {
                head.write_sealed();
            }
            self.note_backfill(backfilled);
            self.changes
                .wrote(accepted.iter().map(|(_, t, _)| *t).min());
            self.stats.series_created.add(created.len() as u64);
            let shares = &self.shares;
            shares
                .head_series
                .set(&self.stats.head_series, head.series_count() as u64);
            shares
                .head_chunks
                .add(&self.stats.head_chunks, new_chunks as u64);
            report.accepted = accepted.len() as u64;
        }
        self.stats.samples_appended.add(report.accepted);
        self.wal
            .commit(seq)
            .map_err(io_err("fsync the metrics WAL"))?;
        Ok(report)
    }

    /// Appends native histogram samples, as [`Tsdb::append`] appends floats:
    /// each is checked (Prometheus's validation, the bucket limit, the
    /// series' window), logged, then stored; refused ones are counted by
    /// reason and the rest kept.
    pub fn append_histograms(&self, batch: &[SeriesHistograms]) -> Result<AppendReport> {
        let limits = self.limits();
        let max_buckets = match self.config.max_native_histogram_buckets {
            0 => super::histogram_chunk::MAX_CHUNK_BUCKETS,
            n => n.min(super::histogram_chunk::MAX_CHUNK_BUCKETS),
        };
        let mut report = AppendReport::default();
        let reject = |report: &mut AppendReport, reason: RejectReason, n: u64, labels: &Labels| {
            if n == 0 {
                return;
            }
            self.stats.reject(reason, n);
            *report.rejected.entry(RejectKey::of(reason)).or_default() += n;
            if report.first_rejection.is_none() {
                report.first_rejection = Some(format!("{labels}: {}", reason.describe()));
            }
        };
        // Validation and encoding need no lock.
        type Checked<'b> = (&'b Labels, Vec<(&'b HistogramSample, Vec<u8>)>);
        let mut checked: Vec<Checked<'_>> = Vec::new();
        for series in batch {
            let mut ok = Vec::with_capacity(series.samples.len());
            for s in &series.samples {
                if s.value.bucket_count() > max_buckets {
                    reject(&mut report, RejectReason::TooManyBuckets, 1, &series.labels);
                    continue;
                }
                let valid = s.value.is_stale() || s.value.validate().is_ok();
                match wal::histogram_bytes(s.timestamp_ms, &s.value).filter(|_| valid) {
                    Some(bytes) => ok.push((s, bytes)),
                    None => reject(
                        &mut report,
                        RejectReason::InvalidHistogram,
                        1,
                        &series.labels,
                    ),
                }
            }
            if !ok.is_empty() {
                checked.push((&series.labels, ok));
            }
        }
        if checked.is_empty() {
            return Ok(report);
        }
        let seq;
        {
            let mut head = self.head.write().expect("head lock");
            let mut created = Vec::new();
            let mut accepted: Vec<(u64, &HistogramSample, &[u8])> = Vec::new();
            let mut backfilled = 0u64;
            for (labels, samples) in &checked {
                let id = match head.get_or_create(labels, &limits, &mut created) {
                    Ok(id) => id,
                    Err(reason) => {
                        reject(&mut report, reason, samples.len() as u64, labels);
                        continue;
                    }
                };
                for (s, bytes) in samples {
                    match head.check(id, s.timestamp_ms, &limits) {
                        Ok(()) => {
                            backfilled += u64::from(s.timestamp_ms < head.min_valid_time);
                            accepted.push((id, s, bytes));
                        }
                        Err(reason) => reject(&mut report, reason, 1, labels),
                    }
                }
            }
            if accepted.is_empty() && created.is_empty() {
                return Ok(report);
            }
            let logged = self.logged.load(Ordering::Relaxed);
            let mut series_record = Vec::new();
            if logged && !created.is_empty() {
                wal::encode_series(
                    &mut series_record,
                    created.iter().map(|id| (*id, head.label_pairs(*id))),
                );
            }
            let mut histograms_record = Vec::new();
            if logged && !accepted.is_empty() {
                let refs: Vec<(u64, &[u8])> = accepted
                    .iter()
                    .map(|(id, _, bytes)| (*id, *bytes))
                    .collect();
                wal::encode_histograms(&mut histograms_record, &refs);
            }
            let records: Vec<&[u8]> = [&series_record[..], &histograms_record[..]]
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect();
            seq = match if logged {
                self.wal.write(&records)
            } else {
                Ok(0)
            } {
                Ok(seq) => seq,
                Err(err) => {
                    head.forget(&created);
                    return Err(io_err("write the metrics WAL")(err));
                }
            };
            let mut new_chunks = 0;
            for (id, s, _) in &accepted {
                new_chunks += head.apply_histogram(*id, s.timestamp_ms, &s.value);
            }
            if new_chunks > 0 {
                head.write_sealed();
            }
            self.note_backfill(backfilled);
            self.changes
                .wrote(accepted.iter().map(|(_, s, _)| s.timestamp_ms).min());
            self.stats.series_created.add(created.len() as u64);
            let shares = &self.shares;
            shares
                .head_series
                .set(&self.stats.head_series, head.series_count() as u64);
            shares
                .head_chunks
                .add(&self.stats.head_chunks, new_chunks as u64);
            report.accepted = accepted.len() as u64;
        }
        self.stats.histograms_appended.add(report.accepted);
        self.wal
            .commit(seq)
            .map_err(io_err("fsync the metrics WAL"))?;
        Ok(report)
    }

    /// Every series matching `matchers` with its samples in `[mint, maxt]`
    /// (inclusive), sorted by labels, merged across blocks and head.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>> {
        self.select_lazy(matchers, mint, maxt)?
            .into_iter()
            .map(|s| {
                let samples = s.samples()?;
                Ok(SeriesSamples {
                    labels: s.labels,
                    samples,
                })
            })
            .filter(|s| s.as_ref().map_or(true, |s| !s.samples.is_empty()))
            .collect()
    }

    /// The series matching `matchers` with data in `[mint, maxt]`, in label
    /// order, merged across blocks and head; each decodes its samples (only
    /// the overlapping chunks) when asked, so readers can decode in parallel.
    pub fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<LazySeries<'_>>> {
        self.select_lazy_again(matchers, mint, maxt, 4)
    }

    /// [`Tsdb::select_lazy`]; a series read after a cut moved head samples
    /// out (to a frozen set or a block this selection did not see) is
    /// selected again, up to `rereads` times.
    fn select_lazy_again(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        rereads: u8,
    ) -> Result<Vec<LazySeries<'_>>> {
        #[derive(Clone, Copy)]
        enum Source {
            Block(usize, usize),
            Frozen(usize, usize),
            Head(u64),
        }
        // Cuts counted before the snapshots: a cut between them and the
        // head's list below moves samples out of the head into a frozen
        // set this selection did not take, and is noticed then.
        let cuts = self.head_cuts.load(Ordering::Acquire);
        // Frozen series before blocks: a flush lists its blocks before it
        // lets go of their series, so one of the two holds them.
        let frozen: Arc<Vec<Arc<Frozen>>> =
            Arc::new(self.frozen.read().expect("frozen lock").clone());
        let blocks: Arc<Vec<Arc<Block>>> =
            Arc::new(self.blocks.read().expect("blocks lock").clone());
        // Blocks in object storage are read ahead all at once, each on its
        // own thread: their indexes and chunks then cost one round trip or
        // two in all, not two per block. (Errors surface below.)
        let remote: Vec<&Arc<Block>> = blocks
            .iter()
            .filter(|b| b.is_remote() && b.overlaps(mint, maxt))
            .collect();
        if remote.len() > 1 {
            const READERS: usize = 8;
            std::thread::scope(|scope| {
                for batch in remote.chunks(remote.len().div_ceil(READERS)) {
                    scope.spawn(move || {
                        for block in batch {
                            if let Ok(selected) = block.select_series(matchers, mint, maxt) {
                                let indexes: Vec<usize> =
                                    selected.iter().map(|(i, _)| *i).collect();
                                let _ = block.prefetch(&indexes, mint, maxt);
                            }
                        }
                    });
                }
            });
        }
        // One label-ordered list per block and one for the head. Blocks go
        // in the order they were written (their ids), then what is being
        // flushed, then the head: for one timestamp the later source wins.
        // Labels are borrowed from the blocks and frozen sets (the head's
        // are built for the list): each series' labels are cloned once, for
        // its `LazySeries`, not once per source.
        let mut lists: Vec<Vec<(Cow<'_, Labels>, Source)>> = Vec::new();
        let mut written: Vec<(usize, &Arc<Block>)> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.overlaps(mint, maxt))
            .collect();
        written.sort_by(|a, b| a.1.meta.id.cmp(&b.1.meta.id));
        // Blocks that share no time may be read in time order instead,
        // which lets each series' samples from them be appended as read.
        let mut by_time = written.clone();
        by_time.sort_by_key(|(_, b)| b.meta.min_time);
        if by_time
            .windows(2)
            .all(|w| w[0].1.meta.max_time <= w[1].1.meta.min_time)
        {
            written = by_time;
        }
        for (b, block) in written {
            let selected = block
                .select_series(matchers, mint, maxt)
                .map_err(io_err(format!("read block {}", block.meta.id)))?;
            if block.is_remote() {
                let indexes: Vec<usize> = selected.iter().map(|(i, _)| *i).collect();
                block
                    .prefetch(&indexes, mint, maxt)
                    .map_err(io_err(format!("read block {}", block.meta.id)))?;
            }
            lists.push(
                selected
                    .into_iter()
                    .map(|(i, labels)| (Cow::Borrowed(labels), Source::Block(b, i)))
                    .collect(),
            );
        }
        for (f, set) in frozen.iter().enumerate() {
            lists.push(
                set.series
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.labels.matches(matchers) && s.data.overlaps(mint, maxt))
                    .map(|(i, s)| (Cow::Borrowed(&s.labels), Source::Frozen(f, i)))
                    .collect(),
            );
        }
        between_snapshots(self);
        {
            let head = self.head.read().expect("head lock");
            // A cut since the snapshots: the samples it moved are in
            // neither what was taken nor the head (a series may have left
            // the head whole). Selected again, all sources.
            if self.head_cuts.load(Ordering::Acquire) != cuts && rereads > 0 {
                drop(head);
                return self.select_lazy_again(matchers, mint, maxt, rereads - 1);
            }
            lists.push(
                head.select_ids_in_label_order(matchers)
                    .into_iter()
                    .filter_map(|id| {
                        let series = head.series(id)?;
                        series
                            .overlaps(mint, maxt)
                            .then(|| Some((Cow::Owned(head.labels(id)?), Source::Head(id))))
                            .flatten()
                    })
                    .collect(),
            );
        }
        lists.retain(|l| !l.is_empty());
        // Merge: a series in several blocks (or a block and the head) reads from each.
        let mut merged: Vec<(Cow<'_, Labels>, Vec<Source>)> = Vec::new();
        if lists.len() == 1 {
            merged = lists
                .pop()
                .unwrap_or_default()
                .into_iter()
                .map(|(l, s)| (l, vec![s]))
                .collect();
        } else if same_series(&lists) {
            // Usually every block holds the same series (and the head too):
            // their sources side by side, without a sort.
            let mut lists: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
            if let Some((first, rest)) = lists.split_first_mut() {
                for (labels, source) in first {
                    let mut sources = Vec::with_capacity(rest.len() + 1);
                    sources.push(source);
                    sources.extend(rest.iter_mut().filter_map(|l| l.next()).map(|(_, s)| s));
                    merged.push((labels, sources));
                }
            }
        } else {
            let mut all: Vec<(Cow<'_, Labels>, Source)> = lists.into_iter().flatten().collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            for (labels, source) in all {
                match merged.last_mut() {
                    Some((last, sources)) if *last == labels => sources.push(source),
                    _ => merged.push((labels, vec![source])),
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|(labels, sources)| {
                let labels = labels.into_owned();
                let blocks = blocks.clone();
                let frozen = frozen.clone();
                let again = sources
                    .iter()
                    .any(|s| matches!(s, Source::Head(_)))
                    .then(|| labels.clone());
                LazySeries::filling(labels, move |data: &mut Data| {
                    for source in &sources {
                        let (floats_from, histograms_from) = (data.0.len(), data.1.len());
                        match *source {
                            Source::Block(b, i) => blocks[b]
                                .data_into(i, mint, maxt, &mut data.0, &mut data.1)
                                .map_err(io_err(format!("read block {}", blocks[b].meta.id)))?,
                            Source::Frozen(f, i) => {
                                series_data_into(&frozen[f].series[i].data, mint, maxt, data)
                                    .map_err(io_err("read a head chunk"))?;
                            }
                            // The head source comes last. After a cut its
                            // samples before the cut's bound are in a frozen
                            // set or a block this selection did not take:
                            // the series is selected again, all sources.
                            Source::Head(id) => {
                                let head = self.head.read().expect("head lock");
                                if self.head_cuts.load(Ordering::Acquire) != cuts
                                    && rereads > 0
                                    && let Some(labels) = &again
                                {
                                    drop(head);
                                    *data =
                                        self.read_series_again(labels, mint, maxt, rereads - 1)?;
                                    return Ok(());
                                }
                                if let Some(s) = head.series(id) {
                                    series_data_into(s, mint, maxt, data)
                                        .map_err(io_err("read a head chunk"))?;
                                }
                                drop(head);
                            }
                        }
                        merge_appended(data, floats_from, histograms_from);
                    }
                    Ok(())
                })
            })
            .collect())
    }

    /// One series' samples in `[mint, maxt]` from every source as they
    /// are now.
    fn read_series_again(
        &self,
        labels: &Labels,
        mint: i64,
        maxt: i64,
        rereads: u8,
    ) -> Result<Data> {
        let matchers: Vec<Matcher> = labels
            .iter()
            .filter_map(|l| Matcher::new(&*l.name, MatchOp::Equal, &*l.value).ok())
            .collect();
        match self
            .select_lazy_again(&matchers, mint, maxt, rereads)?
            .into_iter()
            .find(|s| s.labels == *labels)
        {
            Some(series) => series.data(),
            None => Ok(Data::default()),
        }
    }

    /// Label sets of series matching `matchers` with samples in `[mint, maxt]`.
    pub fn series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>> {
        // As in `select_lazy_again`: a cut between the snapshots and the
        // head's list could hide a series that left the head whole.
        let mut tries = 0;
        loop {
            let cuts = self.head_cuts.load(Ordering::Acquire);
            let out = self.series_once(matchers, mint, maxt)?;
            tries += 1;
            if self.head_cuts.load(Ordering::Acquire) == cuts || tries > 4 {
                return Ok(out);
            }
        }
    }

    /// [`Tsdb::series`] from the sources as they are now, frozen sets and
    /// blocks before the head.
    fn series_once(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<Labels>> {
        let mut out: BTreeSet<Labels> = BTreeSet::new();
        let frozen = self.frozen.read().expect("frozen lock").clone();
        for set in &frozen {
            out.extend(
                set.series
                    .iter()
                    .filter(|s| s.labels.matches(matchers) && s.data.has_samples_in(mint, maxt))
                    .map(|s| s.labels.clone()),
            );
        }
        let blocks: Vec<Arc<Block>> = self.blocks.read().expect("blocks lock").clone();
        for block in blocks.iter().filter(|b| b.overlaps(mint, maxt)) {
            out.extend(
                block
                    .series_labels(matchers, mint, maxt)
                    .map_err(io_err(format!("read block {}", block.meta.id)))?
                    .into_iter()
                    .cloned(),
            );
        }
        between_snapshots(self);
        let head = self.head.read().expect("head lock");
        for id in head.select_ids(matchers) {
            let series = head.series(id).expect("selected");
            if series.has_samples_in(mint, maxt)
                && let Some(labels) = head.labels(id)
            {
                out.insert(labels);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Label names of matching series in `[mint, maxt]`, sorted.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<String>> {
        let names: BTreeSet<String> = self
            .series(matchers, mint, maxt)?
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.to_string()))
            .collect();
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` on matching series in `[mint, maxt]`, sorted.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>> {
        let values: BTreeSet<String> = self
            .series(matchers, mint, maxt)?
            .iter()
            .filter_map(|l| l.get(name).map(str::to_owned))
            .collect();
        Ok(values.into_iter().collect())
    }

    /// Records a metric's type, help and unit (kept across restarts).
    pub fn set_metadata(&self, name: &str, metadata: MetricMetadata) -> Result<()> {
        let mut all = self.metadata.lock().expect("metadata lock");
        if all.get(name) == Some(&metadata) {
            return Ok(());
        }
        all.insert(name.to_owned(), metadata);
        let bytes = serde_json::to_vec(&*all)
            .map_err(|e| io_err("encode metadata")(io::Error::other(e)))?;
        let tmp = self.dir.join("metadata.json.tmp");
        std::fs::write(&tmp, bytes).map_err(io_err("write metadata"))?;
        std::fs::rename(&tmp, self.dir.join("metadata.json")).map_err(io_err("write metadata"))
    }

    /// Keeps exemplars of their series (see [`super::exemplars`]).
    pub fn append_exemplars(&self, batch: &[(Labels, Exemplar)]) -> Result<ExemplarReport> {
        self.exemplars
            .append(batch)
            .map_err(io_err("write the exemplar log"))
    }

    /// The exemplars in `[start_ms, end_ms]` of the series any matcher set
    /// selects, by series.
    pub fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        self.exemplars.select(matcher_sets, start_ms, end_ms)
    }

    /// Every metric's metadata, by name.
    pub fn metadata(&self) -> BTreeMap<String, MetricMetadata> {
        self.metadata.lock().expect("metadata lock").clone()
    }

    /// Fsyncs the WAL (shutdown, and the interval flusher).
    pub fn sync(&self) -> Result<()> {
        self.wal.sync().map_err(io_err("fsync the metrics WAL"))
    }

    /// Runs the WAL flusher until `stop` says so.
    pub fn run_wal_flusher(&self, stop: impl Fn() -> bool) {
        self.wal
            .run_flusher(self.config.wal_fsync_interval.as_std(), stop);
    }

    /// Cuts blocks from the head, compacts blocks and applies retention.
    pub fn maintain(&self) -> Result<()> {
        let _one_at_a_time = self.maintenance.lock().expect("maintenance lock");
        self.cut_head()?;
        if let Err(err) = self.compact() {
            self.stats.compaction_failures.inc();
            return Err(err);
        }
        self.update_oldest_kept();
        self.apply_retention()?;
        self.reopen_evicted()?;
        self.refresh_stats();
        Ok(())
    }

    /// The earliest time the engine takes samples at: older ones are out
    /// of bounds (their time is in a block already).
    pub fn min_valid_time(&self) -> i64 {
        self.head.read().expect("head lock").min_valid_time
    }

    /// The earliest sample time the engine takes now, and what an older
    /// sample is refused as: the retention's end, or with backfill refused
    /// or bounded by `out_of_order_window`, the head's start less the window.
    pub fn oldest_taken(&self) -> (i64, RejectReason) {
        let limits = self.limits();
        let start = self.min_valid_time();
        let bounds = if limits.backfill {
            start.saturating_sub(limits.ooo_window_ms)
        } else {
            start
        };
        if limits.oldest_ms >= bounds {
            (limits.oldest_ms, RejectReason::PastRetention)
        } else {
            (bounds, RejectReason::OutOfBounds)
        }
    }

    /// The time before which every sample the head was given is in a block
    /// that has left this machine (uploaded to the object store): `None`
    /// while a published block still waits for its upload, while backfill
    /// (older samples, of any age) waits in the head for its blocks, and
    /// while samples moved out of the head wait for theirs.
    pub fn durable_before(&self) -> Option<i64> {
        let _one_at_a_time = self.maintenance.lock().expect("maintenance lock");
        let before = self.head.read().expect("head lock").min_valid_time;
        let waiting = self.backfill_pending.load(Ordering::Relaxed) > 0
            || !self.frozen.read().expect("frozen lock").is_empty();
        (self.store.backlog() == 0 && !waiting).then_some(before)
    }

    /// Reopens the blocks whose local copies the object store's cache
    /// dropped: from the bucket now, so the copies' space is freed once
    /// the queries that hold them end.
    fn reopen_evicted(&self) -> Result<()> {
        for id in self.store.take_evicted() {
            let Some(old) = self
                .blocks
                .read()
                .expect("blocks lock")
                .iter()
                .find(|b| b.meta.id == id)
                .cloned()
            else {
                continue;
            };
            let block = Arc::new(old.reopen().map_err(io_err("reopen a block"))?);
            let mut blocks = self.blocks.write().expect("blocks lock");
            if let Some(slot) = blocks.iter_mut().find(|b| b.meta.id == id) {
                *slot = block;
            }
        }
        Ok(())
    }

    fn block_range(&self) -> i64 {
        i64::try_from(self.config.block_duration.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// The head range `[mint, mint + range)` due to be cut next, given the
    /// head's oldest and newest sample times.
    fn due_cut(&self, min: i64, max: i64) -> Option<i64> {
        let range = self.block_range();
        // Keep half a block of recent data in the head, as Prometheus does,
        // so late samples within the window still find their series there.
        (max.saturating_sub(min) >= range + range / 2).then(|| min.div_euclid(range) * range)
    }

    /// Where the head would start once the cuts due for data from
    /// `start` to `max` are made (cuts are of whole aligned block ranges,
    /// half a block of recent data left behind).
    fn cut_bound(&self, start: i64, max: i64) -> Option<i64> {
        let range = self.block_range();
        let first = self.due_cut(start, max)?.saturating_add(range);
        // Each due cut moves the start to the next aligned range end; the
        // last is the first aligned end above `max` less one and a half ranges.
        let last = (max.saturating_sub(range + range / 2))
            .div_euclid(range)
            .saturating_mul(range)
            .saturating_add(range);
        (last >= first).then_some(last)
    }

    fn cut_head(&self) -> Result<()> {
        let (bound, current) = {
            let head = self.head.read().expect("head lock");
            let bound = head
                .time_range()
                .and_then(|(min, max)| self.cut_bound(min.max(head.min_valid_time), max));
            (bound, head.min_valid_time)
        };
        let backfill_due = self.backfill_pending.load(Ordering::Relaxed) > 0
            && (bound.is_some()
                || self.backfill_due()
                || now_ms().saturating_sub(self.backfill_since.load(Ordering::Relaxed))
                    >= self.block_range() / 2);
        let leftover = !self.frozen.read().expect("frozen lock").is_empty();
        match bound {
            Some(bound) => self.persist_before(bound),
            None if (backfill_due || leftover) && current > i64::MIN => {
                self.persist_before(current)
            }
            None => Ok(()),
        }
    }

    /// Whether enough backfilled samples wait in the head that maintenance
    /// should write them now rather than at its next turn.
    pub fn backfill_due(&self) -> bool {
        self.backfill_pending.load(Ordering::Relaxed) >= BACKFILL_FLUSH_SAMPLES
    }

    /// Counts samples older than the head's start taken into the head.
    fn note_backfill(&self, n: u64) {
        if n > 0 {
            let pending = self.backfill_pending.fetch_add(n, Ordering::Relaxed) + n;
            self.shares
                .backfill_pending
                .set(&self.stats.backfill_pending, pending);
            let _ = self.backfill_since.compare_exchange(
                i64::MAX,
                now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Refuses samples older than the head's start, as Prometheus without
    /// an out-of-order window does.
    pub fn refuse_backfill(&self) {
        self.backfill.store(false, Ordering::Relaxed);
    }

    /// Writes no more appends to the WAL: for an engine whose input is
    /// durable elsewhere and replayed from there into a fresh engine (a
    /// cluster partition, fed from its log), the WAL would be written and
    /// never read.
    pub fn log_nothing(&self) {
        self.logged.store(false, Ordering::Relaxed);
    }

    /// Moves every sample before `bound` out of the head (the due range of
    /// recent data and whatever was backfilled before it), writes them as
    /// blocks of aligned block ranges, then drops them from the WAL.
    fn persist_before(&self, bound: i64) -> Result<()> {
        // What an earlier flush could not write goes first.
        self.write_frozen()?;
        let (last, live, first_new_id) = {
            let mut head = self.head.write().expect("head lock");
            // From here the head starts at `bound`; older samples still
            // arriving are backfill, flushed next time.
            let previous_start = head.min_valid_time;
            let split = head.split_before(bound);
            self.head_cuts.fetch_add(1, Ordering::AcqRel);
            self.backfill_pending.store(0, Ordering::Relaxed);
            self.backfill_since.store(i64::MAX, Ordering::Relaxed);
            self.shares
                .backfill_pending
                .set(&self.stats.backfill_pending, 0);
            self.stats.series_removed.add(split.series_removed as u64);
            let shares = &self.shares;
            shares
                .head_chunks
                .sub(&self.stats.head_chunks, split.chunks_removed as u64);
            shares
                .head_series
                .set(&self.stats.head_series, head.series_count() as u64);
            if !split.series.is_empty() {
                self.frozen
                    .write()
                    .expect("frozen lock")
                    .push(Arc::new(Frozen {
                        series: split.series,
                        backfill_below: previous_start,
                    }));
            }
            // Rolled under the head lock: every record in the segments up to
            // `last` is applied, so its samples before `bound` just left.
            let last = self.wal.roll().map_err(io_err("roll the metrics WAL"))?;
            (last, head.ids(), head.next_id())
        };
        self.write_frozen()?;
        // Series created after the snapshot above (ids from `first_new_id` on)
        // may have their records in the segments being checkpointed: keep them.
        self.wal
            .checkpoint(last, bound, |id| live.contains(&id) || id >= first_new_id)
            .map_err(io_err("checkpoint the metrics WAL"))?;
        Ok(())
    }

    /// The compaction ranges, smallest first: the block range, then 3x
    /// steps up to a tenth of the retention (and 31 days).
    fn compaction_ranges(&self) -> Vec<i64> {
        let base = self.block_range();
        let max_range = (self.retention_ms / 10).clamp(base, 31 * 24 * 3600 * 1000);
        let mut ranges = vec![base];
        while let Some(next) = ranges.last().and_then(|r| r.checked_mul(3))
            && next <= max_range
        {
            ranges.push(next);
        }
        ranges
    }

    /// Writes every frozen set as blocks; each block is listed as it is
    /// published, and the set let go of once all are. Recent samples go
    /// into blocks of the block range; a backfilled one into the aligned
    /// slot of the largest compaction range that ends before where the
    /// head started, so a month of backfill makes a few large blocks
    /// rather than hundreds of small ones. Slots of one size never
    /// overlap, and a smaller block lies inside any larger one it meets,
    /// so compaction merges them.
    fn write_frozen(&self) -> Result<()> {
        let levels = self.compaction_ranges();
        loop {
            let Some(set) = self.frozen.read().expect("frozen lock").first().cloned() else {
                return Ok(());
            };
            let bound = set.backfill_below;
            let slot_of = |t: i64| -> (i64, i64) {
                let mut chosen = levels[0];
                for &range in levels[1..].iter().filter(|_| t < bound) {
                    let end = t.div_euclid(range).saturating_add(1).saturating_mul(range);
                    if end > bound {
                        break;
                    }
                    chosen = range;
                }
                (t.div_euclid(chosen).saturating_mul(chosen), chosen)
            };
            // Which series have samples in which slot.
            let mut slots: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
            for (i, series) in set.series.iter().enumerate() {
                let (samples, histograms) = series_data(&series.data, i64::MIN, i64::MAX)
                    .map_err(io_err("read a head chunk"))?;
                let mut seen: BTreeSet<(i64, i64)> = BTreeSet::new();
                let mut last: Option<(i64, i64)> = None;
                let times = samples
                    .iter()
                    .map(|s| s.timestamp_ms)
                    .chain(histograms.iter().map(|s| s.timestamp_ms));
                for t in times {
                    if let Some((start, range)) = last
                        && t >= start
                        && t - start < range
                    {
                        continue;
                    }
                    let slot = slot_of(t);
                    seen.insert(slot);
                    last = Some(slot);
                }
                for slot in seen {
                    slots.entry(slot).or_default().push(i);
                }
            }
            for ((mint, range), members) in slots {
                let maxt = mint.saturating_add(range);
                let block = self.write_block(mint, maxt, |writer| {
                    for &i in &members {
                        let series = &set.series[i];
                        let (samples, histograms) = series_data(&series.data, mint, maxt - 1)?;
                        writer.add_series(series.labels.clone(), &samples, &histograms)?;
                    }
                    Ok(())
                })?;
                let mut blocks = self.blocks.write().expect("blocks lock");
                blocks.push(block);
                blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
                self.stats.head_cuts.inc();
            }
            self.frozen
                .write()
                .expect("frozen lock")
                .retain(|f| !Arc::ptr_eq(f, &set));
        }
    }

    /// Writes one level-1 block of `[mint, maxt)` with what `fill` adds
    /// (series in label order), publishes and opens it.
    fn write_block(
        &self,
        mint: i64,
        maxt: i64,
        fill: impl FnOnce(&mut BlockWriter) -> io::Result<()>,
    ) -> Result<Arc<Block>> {
        let id = self.new_block_id();
        let staging = self
            .store
            .staging_dir(&id)
            .map_err(io_err("stage a block"))?;
        let mut writer = BlockWriter::new(staging).map_err(io_err("write a block"))?;
        fill(&mut writer).map_err(io_err("write a block"))?;
        let (staging, meta) = writer
            .finish(&id, mint, maxt, 1, Vec::new())
            .map_err(io_err("write a block"))?;
        self.store
            .publish(&id, &staging)
            .map_err(io_err("publish a block"))?;
        let block = Block::open(self.store.clone(), &id).map_err(io_err("open a new block"))?;
        info!(block = %id, series = meta.num_series, samples = meta.num_samples, "head cut into a block");
        Ok(Arc::new(block))
    }

    /// The newest sample time held, in blocks or the head.
    fn newest_time(&self) -> Option<i64> {
        let blocks = self.blocks.read().expect("blocks lock");
        let block_max = blocks.iter().map(|b| b.meta.max_time).max();
        let head_max = self
            .head
            .read()
            .expect("head lock")
            .time_range()
            .map(|r| r.1);
        block_max.max(head_max)
    }

    /// Sets the oldest time retention keeps, from the newest data held.
    fn update_oldest_kept(&self) {
        if let Some(newest) = self.newest_time() {
            self.oldest_kept
                .store(newest.saturating_sub(self.retention_ms), Ordering::Relaxed);
        }
    }

    fn new_block_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = self.block_seq.fetch_add(1, Ordering::Relaxed);
        format!("{:020x}{:08x}", nanos as u64, seq)
    }

    /// Merges adjacent blocks into larger ones: 3x the block range, then 3x
    /// that, up to a tenth of the retention (and 31 days).
    fn compact(&self) -> Result<()> {
        for range in self.compaction_ranges().into_iter().skip(1) {
            while let Some(group) = self.compactable_group(range) {
                self.merge_blocks(&group)?;
            }
        }
        Ok(())
    }

    /// Two or more blocks inside one aligned `range` that no new data can join.
    fn compactable_group(&self, range: i64) -> Option<Vec<Arc<Block>>> {
        let blocks = self.blocks.read().expect("blocks lock").clone();
        let closed_before = self.head.read().expect("head lock").min_valid_time;
        let mut groups: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for block in blocks {
            let slot = block.meta.min_time.div_euclid(range);
            if (block.meta.max_time - 1).div_euclid(range) == slot {
                groups.entry(slot).or_default().push(block);
            }
        }
        groups.into_iter().find_map(|(slot, mut group)| {
            let end = (slot + 1) * range;
            // Written order, so a later block's sample wins a timestamp
            // both hold (backfill over older data), as it does on read.
            group.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
            (group.len() >= 2 && end <= closed_before).then_some(group)
        })
    }

    fn merge_blocks(&self, group: &[Arc<Block>]) -> Result<()> {
        let id = self.new_block_id();
        let staging = self
            .store
            .staging_dir(&id)
            .map_err(io_err("stage a block"))?;
        let mut writer = BlockWriter::new(staging).map_err(io_err("write a block"))?;
        // A k-way merge by labels over the sources' label-ordered series; for
        // equal labels the later source wins per timestamp.
        let mut sources: Vec<SeriesIter<'_>> = group
            .iter()
            .map(|b| b.all_series() as SeriesIter<'_>)
            .collect();
        let mut heap: BinaryHeap<Reverse<(Labels, usize)>> = BinaryHeap::new();
        let mut pending: Vec<Data> = vec![Default::default(); sources.len()];
        for i in 0..sources.len() {
            pull(&mut sources, i, &mut heap, &mut pending)?;
        }
        while let Some(Reverse((labels, first))) = heap.pop() {
            let mut parts = vec![(first, std::mem::take(&mut pending[first]))];
            pull(&mut sources, first, &mut heap, &mut pending)?;
            while heap
                .peek()
                .is_some_and(|Reverse((next, _))| *next == labels)
            {
                let Reverse((_, j)) = heap.pop().expect("peeked");
                parts.push((j, std::mem::take(&mut pending[j])));
                pull(&mut sources, j, &mut heap, &mut pending)?;
            }
            parts.sort_by_key(|(source, _)| *source);
            let (samples, histograms) = parts
                .into_iter()
                .map(|(_, data)| data)
                .reduce(merge_data)
                .unwrap_or_default();
            writer
                .add_series(labels, &samples, &histograms)
                .map_err(io_err("write a block"))?;
        }
        let mint = group.iter().map(|b| b.meta.min_time).min().unwrap_or(0);
        let maxt = group.iter().map(|b| b.meta.max_time).max().unwrap_or(0);
        let level = group.iter().map(|b| b.meta.level).max().unwrap_or(1) + 1;
        let parents: Vec<String> = group.iter().map(|b| b.meta.id.clone()).collect();
        let (staging, meta) = writer
            .finish(&id, mint, maxt, level, parents.clone())
            .map_err(io_err("write a block"))?;
        self.store
            .publish(&id, &staging)
            .map_err(io_err("publish a block"))?;
        let block =
            Arc::new(Block::open(self.store.clone(), &id).map_err(io_err("open a new block"))?);
        {
            let mut blocks = self.blocks.write().expect("blocks lock");
            blocks.retain(|b| !parents.contains(&b.meta.id));
            blocks.push(block);
            blocks.sort_by_key(|b| (b.meta.min_time, b.meta.max_time));
        }
        for parent in &parents {
            self.store
                .delete(parent)
                .map_err(io_err("delete a compacted block"))?;
        }
        info!(block = %id, sources = parents.len(), series = meta.num_series, level, "blocks compacted");
        self.stats.compactions.inc();
        Ok(())
    }

    /// For a query results cache: raises the watermark below which any
    /// write counts as a change to `cached_until_ms`, then returns the
    /// change epoch. A result computed after this call and stored with
    /// the epoch stays right, for its steps up to the watermark, for as
    /// long as the epoch is unchanged: every append that lands at or
    /// before the watermark (late, out of order, backfilled), and every
    /// deletion, moves the epoch once it is visible to readers.
    pub fn results_epoch(&self, cached_until_ms: i64) -> u64 {
        self.changes.epoch(cached_until_ms)
    }

    fn apply_retention(&self) -> Result<()> {
        let Some(newest) = self.newest_time() else {
            return Ok(());
        };
        let cutoff = newest.saturating_sub(self.retention_ms);
        let expired: Vec<Arc<Block>> = self
            .blocks
            .read()
            .expect("blocks lock")
            .iter()
            .filter(|b| b.meta.max_time <= cutoff)
            .cloned()
            .collect();
        for block in expired {
            self.blocks
                .write()
                .expect("blocks lock")
                .retain(|b| b.meta.id != block.meta.id);
            self.changes.changed();
            self.store
                .delete(&block.meta.id)
                .map_err(io_err("delete an expired block"))?;
            info!(block = %block.meta.id, "block past retention deleted");
            self.stats.retention_deletions.inc();
        }
        Ok(())
    }

    fn refresh_stats(&self) {
        let (stats, shares) = (&self.stats, &self.shares);
        let blocks = self.blocks.read().expect("blocks lock");
        shares.blocks.set(&stats.blocks, blocks.len() as u64);
        shares
            .block_bytes
            .set(&stats.block_bytes, blocks.iter().map(|b| b.bytes).sum());
        let head = self.head.read().expect("head lock");
        shares
            .head_series
            .set(&stats.head_series, head.series_count() as u64);
        shares
            .head_chunks
            .set(&stats.head_chunks, head.chunk_count() as u64);
        self.wal.refresh_size();
    }

    /// The counters this engine keeps.
    pub fn stats(&self) -> &Arc<TsdbStats> {
        &self.stats
    }

    /// How often maintenance should run.
    pub fn maintenance_interval(&self) -> Duration {
        // Blocks of a few minutes (tests, small installations) are cut and
        // compacted on their own time scale.
        Duration::from_secs(60).min(self.config.block_duration.as_std() / 4)
    }

    /// The current wall clock in milliseconds, for callers without a timestamp.
    pub fn now_ms() -> i64 {
        now_ms()
    }
}

/// A series' float and histogram samples.
type Data = (Vec<Sample>, Vec<HistogramSample>);

type SeriesIter<'a> =
    Box<dyn Iterator<Item = io::Result<(Labels, Vec<Sample>, Vec<HistogramSample>)>> + 'a>;

/// Merges a series' data from two sources, the second winning per timestamp
/// (over floats and histograms alike).
fn merge_data(first: Data, second: Data) -> Data {
    let (mut floats, mut histograms) = first;
    if !second.0.is_empty() && !histograms.is_empty() {
        let newer: HashSet<i64> = second.0.iter().map(|s| s.timestamp_ms).collect();
        histograms.retain(|h| !newer.contains(&h.timestamp_ms));
    }
    if !second.1.is_empty() && !floats.is_empty() {
        let newer: HashSet<i64> = second.1.iter().map(|s| s.timestamp_ms).collect();
        floats.retain(|s| !newer.contains(&s.timestamp_ms));
    }
    (
        merge_last_wins(floats, second.0),
        merge_last_wins_by(histograms, second.1, |s| s.timestamp_ms),
    )
}

/// What runs between a selection's snapshots and its list of the head.
#[cfg(test)]
type SnapshotHook = Option<Box<dyn FnOnce(&Tsdb)>>;

// Run once on this thread between a selection's snapshots of frozen sets
// and blocks and its list of the head: tests cut the head there.
#[cfg(test)]
thread_local! {
    static BETWEEN_SNAPSHOTS: std::cell::RefCell<SnapshotHook> =
        const { std::cell::RefCell::new(None) };
}

/// What a test set to run between a selection's snapshots and its list
/// of the head ([`BETWEEN_SNAPSHOTS`]); nothing outside tests.
fn between_snapshots(_db: &Tsdb) {
    #[cfg(test)]
    if let Some(run) = BETWEEN_SNAPSHOTS.with(|hook| hook.borrow_mut().take()) {
        run(_db);
    }
}

/// Whether label-ordered `lists` all hold the same series in the same
/// order, so that merging them is pairing them up.
fn same_series<T>(lists: &[Vec<(Cow<'_, Labels>, T)>]) -> bool {
    let Some((first, rest)) = lists.split_first() else {
        return true;
    };
    rest.iter()
        .all(|list| list.len() == first.len() && list.iter().zip(first).all(|(a, b)| a.0 == b.0))
}

/// Merges what a source appended to `data` (its floats from
/// `floats_from`, its histograms from `histograms_from`) with what the
/// sources before it gave, as [`merge_data`] does: usually the new floats
/// all come later and nothing moves.
fn merge_appended(data: &mut Data, floats_from: usize, histograms_from: usize) {
    let added_histograms = data.1.len() > histograms_from;
    let in_order = floats_from == 0
        || data.0.len() == floats_from
        || data.0[floats_from - 1].timestamp_ms < data.0[floats_from].timestamp_ms;
    let nothing_before = floats_from == 0 && histograms_from == 0;
    if nothing_before || (in_order && histograms_from == 0 && !added_histograms) {
        return;
    }
    let more = (
        data.0.split_off(floats_from),
        data.1.split_off(histograms_from),
    );
    *data = merge_data(std::mem::take(data), more);
}

/// Moves source `i`'s next series into `pending[i]` and the heap.
fn pull(
    sources: &mut [SeriesIter<'_>],
    i: usize,
    heap: &mut BinaryHeap<Reverse<(Labels, usize)>>,
    pending: &mut [Data],
) -> Result<()> {
    if let Some(next) = sources[i].next() {
        let (labels, samples, histograms) = next.map_err(io_err("read a block for compaction"))?;
        pending[i] = (samples, histograms);
        heap.push(Reverse((labels, i)));
    }
    Ok(())
}

/// A head (or frozen) series' samples in `[mint, maxt]`.
fn series_data(s: &MemSeries, mint: i64, maxt: i64) -> io::Result<Data> {
    let histograms = if s.has_histograms() {
        s.histograms(mint, maxt)?
    } else {
        Vec::new()
    };
    Ok((s.samples(mint, maxt)?, histograms))
}

/// As [`series_data`], appended to `data`: the floats decoded straight
/// into it.
fn series_data_into(s: &MemSeries, mint: i64, maxt: i64, data: &mut Data) -> io::Result<()> {
    if s.has_histograms() {
        data.1.extend(s.histograms(mint, maxt)?);
    }
    s.samples_into(mint, maxt, &mut data.0)
}

/// Replay threads applying samples, each owning the series whose id falls in
/// its shard; the WAL is read and decoded on another thread.
const REPLAY_SHARDS: usize = 2;

/// Replays the WAL into a head that starts at `min_valid_time`; samples
/// before it are backfill not yet in a block (or, after a crash between a
/// flush's publishing and its checkpoint, in one already: the next flush
/// writes them again and compaction merges the copies). Returns the
/// samples replayed and how many of them are backfill.
fn replay_wal(
    dir: &Path,
    min_valid_time: i64,
) -> io::Result<(wal::ReplayReport, HeadInner, u64, u64)> {
    use std::sync::mpsc::sync_channel;
    type Work = (
        Vec<(u64, Labels)>,
        Vec<(u64, i64, f64)>,
        Vec<(u64, HistogramSample)>,
    );
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(REPLAY_SHARDS);
        let mut workers = Vec::with_capacity(REPLAY_SHARDS);
        for _ in 0..REPLAY_SHARDS {
            let (send, receive) = sync_channel::<Work>(64);
            senders.push(send);
            workers.push(scope.spawn(move || {
                let mut shard = ReplayShard::default();
                let mut applied = 0u64;
                for (series, samples, histograms) in receive {
                    for (id, labels) in series {
                        shard.insert(id, labels);
                    }
                    applied += (samples.len() + histograms.len()) as u64;
                    for (id, t, v) in samples {
                        shard.apply(id, t, v);
                    }
                    for (id, s) in histograms {
                        shard.apply_histogram(id, s.timestamp_ms, &s.value);
                    }
                }
                (shard, applied)
            }));
        }
        let shard_of = |id: u64| (id % REPLAY_SHARDS as u64) as usize;
        let mut backfilled = 0u64;
        let report = wal::replay(dir, |record| {
            let mut parts: Vec<Work> = (0..REPLAY_SHARDS).map(|_| Default::default()).collect();
            match record {
                Record::Series(series) => {
                    for (id, pairs) in series {
                        parts[shard_of(id)].0.push((id, Labels::from_pairs(pairs)));
                    }
                }
                Record::Samples(samples) => {
                    for sample in samples {
                        backfilled += u64::from(sample.1 < min_valid_time);
                        parts[shard_of(sample.0)].1.push(sample);
                    }
                }
                Record::Histograms(samples) => {
                    for sample in samples {
                        backfilled += u64::from(sample.1.timestamp_ms < min_valid_time);
                        parts[shard_of(sample.0)].2.push(sample);
                    }
                }
            }
            for (part, sender) in parts.into_iter().zip(&senders) {
                if !part.0.is_empty() || !part.1.is_empty() || !part.2.is_empty() {
                    // A worker only hangs up by panicking, which join reports.
                    let _ = sender.send(part);
                }
            }
        });
        drop(senders);
        let mut shards = Vec::with_capacity(REPLAY_SHARDS);
        let mut applied = 0;
        for worker in workers {
            let (shard, n) = worker.join().expect("a replay worker does not panic");
            shards.push(shard);
            applied += n;
        }
        let report = report?;
        Ok((
            report,
            HeadInner::from_replayed(min_valid_time, shards),
            applied,
            backfilled,
        ))
    })
}

#[cfg(test)]
mod tests {
    use sextant_model::histogram::Span;
    use sextant_model::{CounterResetHint, FloatHistogram, Histogram, HistogramValue};

    use super::super::block::BlockMeta;

    use super::*;

    const MIN: i64 = 60_000;

    fn config() -> TsdbConfig {
        TsdbConfig {
            wal_fsync: FsyncPolicy::Never,
            block_duration: PromDuration::from_secs(3600),
            out_of_order_window: PromDuration::from_secs(600),
            ..TsdbConfig::default()
        }
    }

    fn open(dir: &Path) -> Tsdb {
        Tsdb::open(
            dir,
            config(),
            PromDuration::from_secs(30 * 24 * 3600),
            Arc::new(TsdbStats::default()),
        )
        .unwrap()
    }

    fn series(
        name: &str,
        instance: &str,
        points: impl IntoIterator<Item = (i64, f64)>,
    ) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs([
                ("__name__", name),
                ("instance", instance),
                ("job", "node"),
            ]),
            samples: points
                .into_iter()
                .map(|(timestamp_ms, value)| Sample {
                    timestamp_ms,
                    value,
                })
                .collect(),
        }
    }

    /// 10 series x one sample a minute for `minutes`, starting at `start`.
    fn load(db: &Tsdb, start: i64, minutes: i64) -> Vec<SeriesSamples> {
        let batch: Vec<SeriesSamples> = (0..10)
            .map(|i| {
                series(
                    "node_cpu_seconds_total",
                    &format!("host{i}:9100"),
                    (0..minutes).map(|m| (start + m * MIN, (m * (i + 1)) as f64 + 0.25)),
                )
            })
            .collect();
        let report = db.append(&batch).unwrap();
        assert_eq!(report.accepted, (10 * minutes) as u64, "{report:?}");
        batch
    }

    #[test]
    fn sealed_head_chunks_are_read_from_their_files_across_cuts_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let start = 1_700_000_000_000 - 1_700_000_000_000 % (3600 * 1000);
        // 300 samples a series: two sealed chunks and an open one.
        let batch = load(&db, start, 300);
        let places = || db.head.read().unwrap().sealed_chunks_by_place();
        assert_eq!(places(), (0, 20), "every sealed chunk is in a file");
        let segments = || {
            std::fs::read_dir(dir.path().join("chunks_head"))
                .unwrap()
                .count()
        };
        assert_eq!(segments(), 1);
        assert_eq!(everything(&db), sorted(batch.clone()));
        // A cut through the middle of the second chunks: what stays of them
        // is encoded again and written out too.
        db.persist_before(start + 3 * 3600 * 1000).unwrap();
        assert_eq!(places(), (0, 10));
        assert_eq!(everything(&db), sorted(batch.clone()));
        drop(db);
        // A restart deletes the old segment; the replayed samples (120 a
        // series, from the cut on) fill the open chunks, and the next
        // sample seals them into a new segment.
        let db = open(dir.path());
        assert_eq!(segments(), 0);
        let more = load(&db, start + 300 * MIN, 1);
        assert_eq!(db.head.read().unwrap().sealed_chunks_by_place(), (0, 10));
        assert_eq!(segments(), 1);
        assert_eq!(everything(&db), overlay(&batch, &more));
    }

    /// Remote write's path: series by label pairs, looked up for a whole
    /// batch at once. A series new to the head and named twice in one
    /// batch is made once; known and new series mix; the samples land on
    /// the series their labels name.
    #[test]
    fn label_pair_batches_find_known_series_and_make_new_ones_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let append = |items: &[(&str, i64, f64)]| {
            let mut batch = PairBatch::with_capacity(items.len(), 3 * items.len(), items.len());
            for &(host, t, v) in items {
                // Unsorted, as a sender may send them.
                batch.push_label("job", "node");
                batch.push_label("__name__", "up");
                batch.push_label("instance", host);
                batch.push_sample(Sample {
                    timestamp_ms: t,
                    value: v,
                });
                batch.end_series();
            }
            db.append_pairs(&batch).unwrap()
        };
        let report = append(&[("a", MIN, 1.0), ("a", 2 * MIN, 2.0), ("b", MIN, 3.0)]);
        assert_eq!(report.accepted, 3, "{report:?}");
        assert_eq!(db.stats.series_created.get(), 2);
        let report = append(&[
            ("b", 2 * MIN, 4.0),
            ("c", 2 * MIN, 5.0),
            ("a", 3 * MIN, 6.0),
            ("c", 3 * MIN, 7.0),
        ]);
        assert_eq!(report.accepted, 4, "{report:?}");
        assert_eq!(db.stats.series_created.get(), 3);
        let up = |host, points: &[(i64, f64)]| SeriesSamples {
            samples: points
                .iter()
                .map(|&(timestamp_ms, value)| Sample {
                    timestamp_ms,
                    value,
                })
                .collect(),
            ..series("up", host, [])
        };
        assert_eq!(
            everything(&db),
            vec![
                up("a", &[(MIN, 1.0), (2 * MIN, 2.0), (3 * MIN, 6.0)]),
                up("b", &[(MIN, 3.0), (2 * MIN, 4.0)]),
                up("c", &[(2 * MIN, 5.0), (3 * MIN, 7.0)]),
            ]
        );
    }

    fn everything(db: &Tsdb) -> Vec<SeriesSamples> {
        let all = Matcher::new("__name__", MatchOp::Regex, ".+").unwrap();
        db.select(&[all], i64::MIN, i64::MAX).unwrap()
    }

    fn sorted(mut batch: Vec<SeriesSamples>) -> Vec<SeriesSamples> {
        batch.sort_by(|a, b| a.labels.cmp(&b.labels));
        batch
    }

    fn open_backfilling(dir: &Path) -> Tsdb {
        let config = TsdbConfig {
            out_of_order_window: TsdbConfig::default().out_of_order_window,
            ..config()
        };
        Tsdb::open(
            dir,
            config,
            PromDuration::from_secs(30 * 24 * 3600),
            Arc::new(TsdbStats::default()),
        )
        .unwrap()
    }

    /// Merges `extra` into `base` by labels; on one timestamp `extra` wins.
    fn overlay(base: &[SeriesSamples], extra: &[SeriesSamples]) -> Vec<SeriesSamples> {
        let mut all: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
        for s in base.iter().chain(extra) {
            let points = all.entry(s.labels.clone()).or_default();
            for p in &s.samples {
                points.insert(p.timestamp_ms, p.value);
            }
        }
        all.into_iter()
            .map(|(labels, points)| SeriesSamples {
                labels,
                samples: points
                    .into_iter()
                    .map(|(timestamp_ms, value)| Sample {
                        timestamp_ms,
                        value,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Samples of any age within retention are taken into a running store
    /// (before its blocks too), read at once, written as blocks that
    /// compaction merges with the older ones, and kept across restarts.
    #[test]
    fn backfill_of_any_age_is_read_at_once_compacted_in_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_backfilling(dir.path());
        let live = load(&db, 24 * 60 * MIN, 600);
        db.maintain().unwrap();
        assert!(db.blocks.read().unwrap().len() >= 2);
        let head_start = db.min_valid_time();
        // Last day's data for the same series (one timestamp overwritten
        // inside the live range's blocks), and a series the head never had.
        let mut old: Vec<SeriesSamples> = (0..10)
            .map(|i| {
                series(
                    "node_cpu_seconds_total",
                    &format!("host{i}:9100"),
                    (0..24 * 60)
                        .step_by(2)
                        .map(|m| (m * MIN, -(m as f64) - 0.5)),
                )
            })
            .collect();
        old.push(series(
            "node_boot_time_seconds",
            "gone:9100",
            (0..24 * 60).map(|m| (m * MIN, 1.7e9)),
        ));
        old.push(series(
            "node_cpu_seconds_total",
            "host3:9100",
            [(24 * 60 * MIN + 5 * MIN, 42.0)],
        ));
        assert!(5 * MIN + 24 * 60 * MIN < head_start);
        let report = db.append(&old).unwrap();
        assert_eq!(report.rejected_total(), 0, "{report:?}");
        let expected = overlay(&live, &old);
        assert_eq!(everything(&db), expected, "read from the head");
        assert!(db.backfill_pending.load(Ordering::Relaxed) > 0);
        let blocks_before = db.blocks.read().unwrap().len();
        // Not flushed while young and few; then written out once due.
        db.maintain().unwrap();
        assert_eq!(db.blocks.read().unwrap().len(), blocks_before);
        db.backfill_since.store(0, Ordering::Relaxed);
        db.maintain().unwrap();
        assert_eq!(db.backfill_pending.load(Ordering::Relaxed), 0);
        assert_eq!(db.min_valid_time(), head_start);
        assert_eq!(everything(&db), expected, "read from blocks");
        // The backfilled day is merged into aligned blocks that do not overlap.
        {
            let blocks = db.blocks.read().unwrap();
            for pair in blocks.windows(2) {
                assert!(
                    pair[0].meta.max_time <= pair[1].meta.min_time,
                    "overlapping blocks after compaction: {:?} {:?}",
                    (pair[0].meta.min_time, pair[0].meta.max_time),
                    (pair[1].meta.min_time, pair[1].meta.max_time)
                );
            }
            assert!(blocks.iter().any(|b| b.meta.min_time == 0));
        }
        drop(db);
        let db = open_backfilling(dir.path());
        assert_eq!(everything(&db), expected, "after a restart");
    }

    /// A cut between a read's snapshots of frozen sets and blocks and its
    /// list of the head moves samples (and whole series) where the read
    /// did not look: the read notices and selects again, never a gap.
    #[test]
    fn a_cut_in_the_middle_of_a_read_hides_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_backfilling(dir.path());
        let live = load(&db, 24 * 60 * MIN, 600);
        db.maintain().unwrap();
        let old = vec![
            series(
                "node_cpu_seconds_total",
                "host1:9100",
                (0..600).map(|m| (m * MIN, m as f64)),
            ),
            series(
                "node_boot_time_seconds",
                "gone:9100",
                (0..600).map(|m| (m * MIN, 1.7e9)),
            ),
        ];
        let report = db.append(&old).unwrap();
        assert_eq!(report.rejected_total(), 0, "{report:?}");
        let expected = overlay(&live, &old);
        let cut = |db: &Tsdb| {
            let cuts = db.head_cuts.load(Ordering::Relaxed);
            db.backfill_since.store(0, Ordering::Relaxed);
            db.maintain().unwrap();
            assert!(db.head_cuts.load(Ordering::Relaxed) > cuts, "no cut");
            assert_eq!(db.backfill_pending.load(Ordering::Relaxed), 0);
        };
        BETWEEN_SNAPSHOTS.with(|hook| *hook.borrow_mut() = Some(Box::new(cut)));
        assert_eq!(everything(&db), expected);
        assert!(BETWEEN_SNAPSHOTS.with(|hook| hook.borrow().is_none()));

        // The labels too: a series only backfill held leaves the head whole.
        let more = vec![series(
            "node_boot_time_seconds",
            "gone-too:9100",
            (0..600).map(|m| (m * MIN, 1.7e9)),
        )];
        db.append(&more).unwrap();
        BETWEEN_SNAPSHOTS.with(|hook| *hook.borrow_mut() = Some(Box::new(cut)));
        let boot = Matcher::new("__name__", MatchOp::Equal, "node_boot_time_seconds").unwrap();
        let instances: Vec<String> = db
            .series(&[boot], i64::MIN, i64::MAX)
            .unwrap()
            .iter()
            .filter_map(|l| l.get("instance").map(str::to_owned))
            .collect();
        assert!(BETWEEN_SNAPSHOTS.with(|hook| hook.borrow().is_none()));
        assert!(
            instances.iter().any(|i| i == "gone-too:9100"),
            "{instances:?}"
        );
    }

    /// Backfill that was acknowledged but not yet written as blocks comes
    /// back from the WAL after a crash, and a flush cut short by one is
    /// written again: nothing is lost and nothing doubles.
    #[test]
    fn acknowledged_backfill_survives_a_crash_before_or_during_its_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_backfilling(dir.path());
        let live = load(&db, 24 * 60 * MIN, 600);
        db.maintain().unwrap();
        let old: Vec<SeriesSamples> = (0..3)
            .map(|i| {
                series(
                    "node_memory_free_bytes",
                    &format!("host{i}:9100"),
                    (0..600).map(|m| (m * MIN, (m * 1000 + i) as f64)),
                )
            })
            .collect();
        db.append(&old).unwrap();
        // A crash before any flush: the WAL brings the backfill back.
        std::mem::forget(db);
        let db = open_backfilling(dir.path());
        let expected = overlay(&live, &old);
        assert_eq!(everything(&db), expected);
        assert!(db.backfill_pending.load(Ordering::Relaxed) > 0);
        // A crash after the flush published its blocks but before the WAL
        // checkpoint: the replayed copy is flushed again and merged.
        {
            let mut head = db.head.write().unwrap();
            let bound = head.min_valid_time;
            let split = head.split_before(bound);
            db.frozen.write().unwrap().push(Arc::new(Frozen {
                series: split.series,
                backfill_below: bound,
            }));
        }
        db.write_frozen().unwrap();
        std::mem::forget(db);
        let db = open_backfilling(dir.path());
        assert_eq!(everything(&db), expected);
        db.backfill_since.store(0, Ordering::Relaxed);
        db.maintain().unwrap();
        assert_eq!(everything(&db), expected);
        let blocks = db.blocks.read().unwrap();
        for pair in blocks.windows(2) {
            assert!(pair[0].meta.max_time <= pair[1].meta.min_time);
        }
    }

    /// Past retention is refused by name; a store configured with an
    /// out-of-order window keeps refusing what lies beyond it.
    /// What a cluster partition publishes and trims its log by: the
    /// retention's end is the oldest sample taken, and nothing counts as
    /// durable while backfill waits in the head for its blocks.
    #[test]
    fn backfill_holds_back_durability_until_its_blocks_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_backfilling(dir.path());
        load(&db, 24 * 60 * MIN, 600);
        db.maintain().unwrap();
        let head_start = db.min_valid_time();
        assert_eq!(db.durable_before(), Some(head_start));
        let newest = 24 * 60 * MIN + 599 * MIN;
        assert_eq!(
            db.oldest_taken(),
            (newest - 30 * 24 * 3600 * 1000, RejectReason::PastRetention)
        );
        let report = db
            .append(&[series("node_cpu_seconds_total", "host0:9100", [(MIN, 1.0)])])
            .unwrap();
        assert_eq!(report.rejected_total(), 0, "{report:?}");
        assert_eq!(db.durable_before(), None, "backfill waits in the head");
        db.backfill_since.store(0, Ordering::Relaxed);
        db.maintain().unwrap();
        assert_eq!(db.durable_before(), Some(head_start));
        // An engine that refuses backfill takes nothing before its head.
        db.refuse_backfill();
        assert_eq!(db.oldest_taken(), (head_start, RejectReason::OutOfBounds));
    }

    #[test]
    fn backfill_past_retention_or_the_configured_window_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(
            dir.path(),
            TsdbConfig {
                out_of_order_window: TsdbConfig::default().out_of_order_window,
                ..config()
            },
            PromDuration::from_secs(24 * 3600),
            Arc::new(TsdbStats::default()),
        )
        .unwrap();
        load(&db, 48 * 60 * MIN, 600);
        db.maintain().unwrap();
        let report = db
            .append(&[series("old", "a", [(MIN, 1.0), (40 * 60 * MIN, 2.0)])])
            .unwrap();
        assert_eq!(report.accepted, 1);
        assert!(
            report
                .first_rejection
                .unwrap()
                .contains("older than the retention period keeps")
        );
        assert_eq!(db.stats.rejected_past_retention.get(), 1);
    }

    #[test]
    fn blocks_whose_local_copies_the_cache_drops_are_read_from_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        // No room for any local copy.
        let remote = Arc::new(crate::remote::RemoteStore::in_memory(cache.path(), 1));
        let db = Tsdb::open_with_remote(
            dir.path(),
            config(),
            PromDuration::from_secs(30 * 24 * 3600),
            Arc::new(TsdbStats::default()),
            Some(remote.clone()),
        )
        .unwrap();
        let written = sorted(load(&db, 0, 300));
        db.maintain().unwrap();
        let blocks = dir.path().join("blocks");
        let local_blocks = || {
            std::fs::read_dir(&blocks)
                .unwrap()
                .filter(|e| {
                    !e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with('.')
                })
                .count()
        };
        assert!(!db.blocks.read().unwrap().is_empty());
        for _ in 0..500 {
            if remote.stats.backlog.load(Ordering::Relaxed) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(remote.stats.backlog.load(Ordering::Relaxed), 0);
        // The next maintenance drops the copies and reopens the blocks.
        db.maintain().unwrap();
        assert_eq!(local_blocks(), 0);
        let before = remote.stats.range_reads.load(Ordering::Relaxed);
        assert_eq!(everything(&db), written);
        assert!(remote.stats.range_reads.load(Ordering::Relaxed) > before);
    }

    /// A start zero is kept only when it is the newest of its series,
    /// even inside the out-of-order window, and a skipped one is no refusal.
    #[test]
    fn start_zeros_are_kept_only_where_they_are_newest() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let zero = |t: i64| vec![series("requests_total", "a", [(t, 0.0)])];
        assert_eq!(db.append_start_zeros(&zero(10 * MIN)).unwrap(), 1);
        db.append(&[series("requests_total", "a", [(11 * MIN, 5.0)])])
            .unwrap();
        // The same start again (each request repeats it), and an older one.
        assert_eq!(db.append_start_zeros(&zero(10 * MIN)).unwrap(), 0);
        assert_eq!(db.append_start_zeros(&zero(9 * MIN)).unwrap(), 0);
        // A reset: the new start is after everything held.
        assert_eq!(db.append_start_zeros(&zero(12 * MIN)).unwrap(), 1);
        let got = db.select(&[], 0, i64::MAX).unwrap();
        let points: Vec<(i64, f64)> = got[0]
            .samples
            .iter()
            .map(|s| (s.timestamp_ms, s.value))
            .collect();
        assert_eq!(points, [(10 * MIN, 0.0), (11 * MIN, 5.0), (12 * MIN, 0.0)]);
        assert_eq!(db.stats.rejected_too_old.get(), 0);
    }

    #[test]
    fn what_is_appended_reads_back_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let written = sorted(load(&db, 0, 30));
        assert_eq!(everything(&db), written);
        let cpu = Matcher::new("instance", MatchOp::Equal, "host3:9100").unwrap();
        let one = db.select(&[cpu], 10 * MIN, 12 * MIN).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].samples.len(), 3);
        assert_eq!(
            db.label_values("instance", &[], 0, i64::MAX).unwrap().len(),
            10
        );
        assert_eq!(
            db.label_names(&[], 0, i64::MAX).unwrap(),
            ["__name__", "instance", "job"]
        );
        drop(db);
        let db = open(dir.path());
        assert_eq!(everything(&db), written);
    }

    #[test]
    fn the_head_is_cut_into_blocks_compacted_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        // Ten hours of data: the head keeps 1.5 h, the rest goes into 1 h blocks.
        let written = sorted(load(&db, 0, 600));
        db.maintain().unwrap();
        let stats = db.stats().clone();
        assert!(stats.head_cuts.get() >= 8, "{}", stats.head_cuts.get());
        // 1 h blocks in aligned 3 h ranges that are closed get compacted.
        assert!(stats.compactions.get() >= 2, "{}", stats.compactions.get());
        assert_eq!(everything(&db), written);
        let blocks_before = db.blocks.read().unwrap().len();
        drop(db);
        let db = open(dir.path());
        assert_eq!(db.blocks.read().unwrap().len(), blocks_before);
        assert_eq!(everything(&db), written);
        // Samples before the newest block's end are refused as out of bounds.
        let late = db
            .append(&[series("node_cpu_seconds_total", "host0:9100", [(MIN, 1.0)])])
            .unwrap();
        assert_eq!(late.accepted, 0);
        assert_eq!(late.rejected_total(), 1);
        assert!(
            late.first_rejection
                .unwrap()
                .contains("older than the newest persisted block")
        );
    }

    fn int_histogram(schema: i32, counts: &[u64], sum: f64) -> Histogram {
        let mut deltas = Vec::new();
        let mut previous = 0i64;
        for &c in counts {
            deltas.push(c as i64 - previous);
            previous = c as i64;
        }
        Histogram {
            schema,
            zero_threshold: if schema == -53 { 0.0 } else { 0.001 },
            zero_count: 0,
            count: counts.iter().sum(),
            sum,
            positive_spans: vec![Span {
                offset: if schema == -53 { 0 } else { -2 },
                length: counts.len() as u32,
            }],
            positive_buckets: deltas,
            custom_values: if schema == -53 {
                (1..counts.len()).map(|i| i as f64 * 0.25).collect()
            } else {
                Vec::new()
            },
            ..Histogram::default()
        }
    }

    /// Ten hours a minute apart of: an integer histogram that resets at
    /// 5 h and widens its buckets at 7 h, a float one, an NHCB one, and a
    /// series that turns from floats to histograms at 3 h and ends in a
    /// stale marker.
    fn histogram_batch() -> (Vec<SeriesSamples>, Vec<SeriesHistograms>) {
        let labels = |name: &str| Labels::from_pairs([("__name__", name), ("job", "api")]);
        let minutes = 600i64;
        let mut int = Vec::new();
        let mut float = Vec::new();
        let mut nhcb = Vec::new();
        let mut mixed = Vec::new();
        for m in 0..minutes {
            let n = if m < 300 { m as u64 } else { (m - 300) as u64 };
            let counts: Vec<u64> = if m < 420 {
                vec![n, 2 * n, n / 3, 1]
            } else {
                vec![n, 2 * n, n / 3, 1, n / 7]
            };
            let h = int_histogram(3, &counts, n as f64 * 1.5);
            float.push(HistogramSample {
                timestamp_ms: m * MIN,
                value: HistogramValue::Float(FloatHistogram {
                    sum: h.sum * 0.1,
                    ..h.to_float()
                }),
            });
            int.push(HistogramSample {
                timestamp_ms: m * MIN,
                value: HistogramValue::Int(h),
            });
            nhcb.push(HistogramSample {
                timestamp_ms: m * MIN,
                value: HistogramValue::Int(int_histogram(-53, &[m as u64, 1, 3 * m as u64], 2.0)),
            });
            if m >= 180 {
                let mut h = int_histogram(0, &[m as u64], m as f64);
                if m == minutes - 1 {
                    h.sum = sextant_model::stale_nan();
                }
                mixed.push(HistogramSample {
                    timestamp_ms: m * MIN,
                    value: HistogramValue::Int(h),
                });
            }
        }
        let floats = vec![SeriesSamples {
            labels: labels("mixed"),
            samples: (0..180)
                .map(|m| Sample {
                    timestamp_ms: m * MIN,
                    value: m as f64,
                })
                .collect(),
        }];
        let histograms = vec![
            SeriesHistograms {
                labels: labels("float"),
                samples: float,
            },
            SeriesHistograms {
                labels: labels("int"),
                samples: int,
            },
            SeriesHistograms {
                labels: labels("mixed"),
                samples: mixed,
            },
            SeriesHistograms {
                labels: labels("nhcb"),
                samples: nhcb,
            },
        ];
        (floats, histograms)
    }

    /// Every series' floats and histograms, hints cleared (the chunks
    /// decide them); the hints come back separately.
    #[allow(clippy::type_complexity)]
    fn all_data(
        db: &Tsdb,
    ) -> Vec<(
        String,
        Vec<Sample>,
        Vec<HistogramSample>,
        Vec<CounterResetHint>,
    )> {
        let all = Matcher::new("__name__", MatchOp::Regex, ".+").unwrap();
        db.select_lazy(&[all], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| {
                let (floats, mut histograms) = s.data().unwrap();
                let hints = histograms
                    .iter()
                    .map(|h| h.value.counter_reset_hint())
                    .collect();
                for h in &mut histograms {
                    match &mut h.value {
                        HistogramValue::Int(h) => {
                            h.counter_reset_hint = CounterResetHint::Unknown;
                        }
                        HistogramValue::Float(h) => {
                            h.counter_reset_hint = CounterResetHint::Unknown;
                        }
                    }
                }
                (
                    s.labels.metric_name().unwrap().to_owned(),
                    floats,
                    histograms,
                    hints,
                )
            })
            .collect()
    }

    /// What a cut moved out of the head waits in a frozen set until its
    /// blocks are written; reads take it from there, series of only
    /// histograms too (they once looked newest at no time, and a read
    /// passed them by until their blocks were listed).
    #[test]
    fn histograms_waiting_in_a_frozen_set_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let (floats, histograms) = histogram_batch();
        db.append(&floats).unwrap();
        db.append_histograms(&histograms).unwrap();
        // Hints aside: the chunk a cut goes through is written anew. As
        // text: a stale marker's NaN equals nothing.
        let data = |db: &Tsdb| {
            let all: Vec<_> = all_data(db)
                .into_iter()
                .map(|(name, floats, histograms, _)| (name, floats, histograms))
                .collect();
            format!("{all:?}")
        };
        let expected = data(&db);
        {
            let mut head = db.head.write().unwrap();
            let split = head.split_before(400 * MIN);
            assert_eq!(split.series.len(), 4);
            db.frozen.write().unwrap().push(Arc::new(Frozen {
                series: split.series,
                backfill_below: i64::MIN,
            }));
        }
        assert_eq!(data(&db), expected);
        let histograms_only = Matcher::new("__name__", MatchOp::Equal, "nhcb").unwrap();
        let selected = db.select_lazy(&[histograms_only], 0, 10 * MIN).unwrap();
        assert_eq!(selected.len(), 1);
        assert_eq!(selected[0].data().unwrap().1.len(), 11);
    }

    /// As a cluster's partition owner runs: half an hour of floats, then
    /// the same half hour of histograms (backfill by then), with
    /// one-minute blocks cut, flushed and compacted all the while. A
    /// reader going over the histograms never sees fewer than it saw.
    #[test]
    fn reads_during_cuts_and_backfill_flushes_never_lose_what_they_saw() {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let config = TsdbConfig {
                block_duration: PromDuration::from_secs(60),
                out_of_order_window: TsdbConfig::default().out_of_order_window,
                ..config()
            };
            let stats = Arc::new(TsdbStats::default());
            let retention = PromDuration::from_secs(30 * 24 * 3600);
            let db = Tsdb::open(dir.path(), config, retention, stats).unwrap();
            let end = now_ms() / MIN * MIN;
            let begin = end - 30 * MIN;
            let at = |minute: i64, s: i64| begin + minute * MIN + s * 15_000;
            let stop = AtomicBool::new(false);
            let name = Matcher::new("__name__", MatchOp::Equal, "latency_seconds").unwrap();
            let lost = std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        db.maintain().unwrap();
                        std::thread::sleep(Duration::from_micros(200));
                    }
                });
                let reader = scope.spawn(|| {
                    let mut seen: BTreeMap<Labels, usize> = BTreeMap::new();
                    let mut lost = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let selected = db.select_lazy(std::slice::from_ref(&name), begin, end);
                        for s in selected.unwrap() {
                            let now = s.data().unwrap().1.len();
                            let before = seen.entry(s.labels.clone()).or_default();
                            if now < *before {
                                lost.push(format!("{}: {before} then {now}", s.labels));
                            }
                            *before = now;
                        }
                    }
                    lost
                });
                for minute in 0..30 {
                    let floats: Vec<SeriesSamples> = (0..40)
                        .map(|i| {
                            let points = (0..4).map(|s| (at(minute, s), (minute * 4 + s) as f64));
                            series("requests_total", &format!("host{i}"), points)
                        })
                        .collect();
                    db.append(&floats).unwrap();
                }
                for minute in 0..30 {
                    let histograms: Vec<SeriesHistograms> = (0..6)
                        .map(|i| SeriesHistograms {
                            labels: Labels::from_pairs([
                                ("__name__", "latency_seconds".to_owned()),
                                ("instance", format!("host{i}")),
                            ]),
                            samples: (0..4)
                                .map(|s| {
                                    let n = ((minute * 4 + s) * (i + 1)) as u64;
                                    HistogramSample {
                                        timestamp_ms: at(minute, s),
                                        value: HistogramValue::Int(int_histogram(
                                            0,
                                            &[n, n, n],
                                            n as f64,
                                        )),
                                    }
                                })
                                .collect(),
                        })
                        .collect();
                    let report = db.append_histograms(&histograms).unwrap();
                    assert_eq!(report.rejected_total(), 0, "{report:?}");
                    std::thread::sleep(Duration::from_millis(2));
                }
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::Relaxed);
                reader.join().unwrap()
            });
            assert!(lost.is_empty(), "{lost:?}");
            let all = db.select_lazy(&[name], begin, end).unwrap();
            assert_eq!(all.len(), 6);
            for s in all {
                assert_eq!(s.data().unwrap().1.len(), 120, "{}", s.labels);
            }
        }
    }

    #[test]
    fn histograms_go_through_the_wal_blocks_and_compaction_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let (floats, histograms) = histogram_batch();
        db.append(&floats).unwrap();
        let report = db.append_histograms(&histograms).unwrap();
        assert_eq!(report.accepted, 600 * 3 + 420, "{report:?}");
        assert_eq!(report.rejected_total(), 0);
        // Sealed histogram chunks are read from the chunk files, as floats are.
        let (in_memory, in_files) = db.head.read().unwrap().sealed_chunks_by_place();
        assert_eq!(in_memory, 0);
        assert!(in_files >= 15, "{in_files} sealed chunks in files");
        let expected: Vec<(String, Vec<Sample>, Vec<HistogramSample>)> = histograms
            .iter()
            .map(|s| {
                let floats = floats
                    .iter()
                    .find(|f| f.labels == s.labels)
                    .map(|f| f.samples.clone())
                    .unwrap_or_default();
                (
                    s.labels.metric_name().unwrap().to_owned(),
                    floats,
                    s.samples.clone(),
                )
            })
            .collect();
        let check = |db: &Tsdb| {
            let got = all_data(db);
            let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
            assert_eq!(names, ["float", "int", "mixed", "nhcb"]);
            for ((name, f, h, hints), (_, ef, eh)) in got.iter().zip(&expected) {
                assert_eq!(f, ef, "{name} floats");
                assert_eq!(h.len(), eh.len(), "{name} histograms");
                for (a, b) in h.iter().zip(eh) {
                    // A stale marker keeps only its time and sum, as in Prometheus.
                    if b.value.is_stale() {
                        assert!(a.value.is_stale() && a.timestamp_ms == b.timestamp_ms);
                        continue;
                    }
                    // A chunk recoded for a new bucket gives earlier samples
                    // that bucket, empty: the same histogram.
                    let same = |v: &HistogramValue| {
                        let mut f = v.to_float();
                        f.compact(0).unwrap();
                        f
                    };
                    assert_eq!(a.timestamp_ms, b.timestamp_ms, "{name}");
                    assert_eq!(
                        same(&a.value),
                        same(&b.value),
                        "{name} at {}",
                        a.timestamp_ms
                    );
                    assert_eq!(
                        std::mem::discriminant(&a.value),
                        std::mem::discriminant(&b.value)
                    );
                }
                if name == "int" {
                    // The reset at 5 h starts a chunk that says so.
                    assert_eq!(hints[300], CounterResetHint::CounterReset);
                    assert_eq!(hints[301], CounterResetHint::NotCounterReset);
                }
            }
            let mixed = &got[2];
            assert!(mixed.2.last().unwrap().value.is_stale());
        };
        check(&db);
        // From the WAL.
        drop(db);
        let db = open(dir.path());
        check(&db);
        // Cut into blocks and compacted, then reopened from the blocks.
        db.maintain().unwrap();
        assert!(db.stats().head_cuts.get() >= 8);
        assert!(db.stats().compactions.get() >= 2);
        check(&db);
        drop(db);
        let db = open(dir.path());
        check(&db);
        let check = crate::check::check_block(&db.store, &db.blocks.read().unwrap()[0].meta.id);
        assert!(check.is_ok(), "{check:?}");
    }

    #[test]
    fn bad_histograms_are_refused_by_reason_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(
            dir.path(),
            TsdbConfig {
                max_native_histogram_buckets: 8,
                ..config()
            },
            PromDuration::from_secs(30 * 24 * 3600),
            Arc::new(TsdbStats::default()),
        )
        .unwrap();
        let labels = Labels::from_pairs([("__name__", "h")]);
        let good = int_histogram(1, &[1, 2, 3], 1.0);
        let wide = int_histogram(1, &[1; 9], 1.0);
        let mut wrong_count = good.clone();
        wrong_count.count += 1;
        let sample = |t: i64, h: &Histogram| HistogramSample {
            timestamp_ms: t,
            value: HistogramValue::Int(h.clone()),
        };
        let report = db
            .append_histograms(&[SeriesHistograms {
                labels,
                samples: vec![
                    sample(MIN, &good),
                    sample(2 * MIN, &wide),
                    sample(3 * MIN, &wrong_count),
                    sample(4 * MIN, &good),
                ],
            }])
            .unwrap();
        assert_eq!(report.accepted, 2);
        assert_eq!(
            report
                .rejected
                .get(&RejectKey::of(RejectReason::TooManyBuckets)),
            Some(&1)
        );
        assert_eq!(
            report
                .rejected
                .get(&RejectKey::of(RejectReason::InvalidHistogram)),
            Some(&1)
        );
        assert!(
            report
                .first_rejection
                .unwrap()
                .contains("max_native_histogram_buckets"),
        );
        assert_eq!(db.stats().rejected_too_many_buckets.get(), 1);
        assert_eq!(db.stats().rejected_invalid_histogram.get(), 1);
        let got = all_data(&db);
        assert_eq!(got[0].2.len(), 2);
    }

    #[test]
    fn engines_that_share_their_stats_add_up_in_the_gauges() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let stats = Arc::new(TsdbStats::default());
        let open = |dir: &Path| {
            Tsdb::open(
                dir,
                config(),
                PromDuration::from_secs(30 * 24 * 3600),
                stats.clone(),
            )
            .unwrap()
        };
        let (a, b) = (open(one.path()), open(two.path()));
        load(&a, 0, 600);
        load(&b, 0, 60);
        a.maintain().unwrap();
        b.maintain().unwrap();
        let series = |db: &Tsdb| db.head.read().unwrap().series_count() as u64;
        let (a_series, b_series) = (series(&a), series(&b));
        assert!(a_series > 0 && b_series > 0);
        assert_eq!(stats.head_series.get(), a_series + b_series);
        let a_blocks = a.blocks.read().unwrap().len() as u64;
        assert!(a_blocks > 0);
        assert_eq!(stats.blocks.get(), a_blocks);
        let wal = stats.wal_size_bytes.get();
        // A partition handed over counts no more.
        drop(a);
        assert_eq!(stats.head_series.get(), b_series);
        assert_eq!(stats.blocks.get(), 0);
        assert!(stats.wal_size_bytes.get() < wal);
        drop(b);
        assert_eq!(stats.head_series.get(), 0);
        assert_eq!(stats.head_chunks.get(), 0);
        assert_eq!(stats.wal_size_bytes.get(), 0);
    }

    #[test]
    fn an_engine_that_logs_nothing_writes_no_wal_and_still_cuts() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        db.log_nothing();
        let written = sorted(load(&db, 0, 600));
        assert_eq!(db.stats().wal_bytes_written.get(), 0);
        assert_eq!(everything(&db), written);
        db.maintain().unwrap();
        assert!(db.stats().head_cuts.get() > 0);
        assert_eq!(everything(&db), written);
    }

    #[test]
    fn a_crash_between_block_and_wal_checkpoint_loses_and_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let written = sorted(load(&db, 0, 200));
        db.sync().unwrap();
        // The state just before the cut: WAL with everything, no blocks.
        copy_dir(dir.path(), crashed.path());
        db.maintain().unwrap();
        // ... and the block the cut published, as if the process died right after.
        let first_block = db.blocks.read().unwrap()[0].meta.id.clone();
        copy_dir(
            &dir.path().join("blocks").join(&first_block),
            &crashed.path().join("blocks").join(&first_block),
        );
        drop(db);
        let db = open(crashed.path());
        assert_eq!(everything(&db), written);
        db.maintain().unwrap();
        assert_eq!(everything(&db), written);
    }

    #[test]
    fn a_crash_mid_compaction_keeps_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let written = sorted(load(&db, 0, 400));
        db.maintain().unwrap();
        let compacted: Vec<BlockMeta> = db
            .blocks
            .read()
            .unwrap()
            .iter()
            .filter(|b| !b.meta.parents.is_empty())
            .map(|b| b.meta.clone())
            .collect();
        assert!(!compacted.is_empty());
        drop(db);
        // Put one compacted block's sources back, as if deletion never happened:
        // rebuild them by cutting the same data in a scratch store.
        let scratch = tempfile::tempdir().unwrap();
        let other = Tsdb::open(
            scratch.path(),
            TsdbConfig { ..config() },
            PromDuration::from_secs(30 * 24 * 3600),
            Arc::new(TsdbStats::default()),
        )
        .unwrap();
        load(&other, 0, 400);
        other.cut_head().unwrap();
        let parent_ids: Vec<String> = other
            .blocks
            .read()
            .unwrap()
            .iter()
            .map(|b| b.meta.id.clone())
            .collect();
        drop(other);
        let target = &compacted[0];
        let mut meta = target.clone();
        meta.parents = parent_ids.clone();
        std::fs::write(
            dir.path().join("blocks").join(&target.id).join("meta.json"),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        for id in &parent_ids {
            copy_dir(
                &scratch.path().join("blocks").join(id),
                &dir.path().join("blocks").join(id),
            );
        }
        let db = open(dir.path());
        let ids: Vec<String> = db
            .blocks
            .read()
            .unwrap()
            .iter()
            .map(|b| b.meta.id.clone())
            .collect();
        assert!(parent_ids.iter().all(|p| !ids.contains(p)), "{ids:?}");
        assert_eq!(everything(&db), written);
    }

    #[test]
    fn retention_deletes_whole_expired_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(
            dir.path(),
            config(),
            PromDuration::from_secs(4 * 3600),
            Arc::new(TsdbStats::default()),
        )
        .unwrap();
        load(&db, 0, 600);
        db.maintain().unwrap();
        assert!(db.stats().retention_deletions.get() >= 1);
        let oldest = everything(&db)[0].samples[0].timestamp_ms;
        // Newest data is at ~10 h; everything before 6 h is gone, in whole blocks.
        assert!(oldest >= 5 * 3600 * 1000, "{oldest}");
        assert!(oldest % (3600 * 1000) == 0, "{oldest}");
    }

    #[test]
    fn overwrites_and_late_samples_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        db.append(&[series("up", "a", [(10 * MIN, 1.0), (20 * MIN, 1.0)])])
            .unwrap();
        let report = db
            .append(&[series(
                "up",
                "a",
                [(15 * MIN, 0.5), (20 * MIN, 0.0), (MIN, 9.0)],
            )])
            .unwrap();
        assert_eq!(report.accepted, 2);
        assert_eq!(report.rejected_total(), 1);
        let got: Vec<(i64, f64)> = everything(&db)[0]
            .samples
            .iter()
            .map(|s| (s.timestamp_ms, s.value))
            .collect();
        assert_eq!(got, [(10 * MIN, 1.0), (15 * MIN, 0.5), (20 * MIN, 0.0)]);
        drop(db);
        let db = open(dir.path());
        assert_eq!(everything(&db)[0].samples.len(), 3);
        assert_eq!(everything(&db)[0].samples[2].value, 0.0);
    }

    #[test]
    fn metadata_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let meta = MetricMetadata {
            kind: "counter".into(),
            help: "Seconds the CPUs spent in each mode.".into(),
            unit: String::new(),
        };
        db.set_metadata("node_cpu_seconds_total", meta.clone())
            .unwrap();
        drop(db);
        assert_eq!(open(dir.path()).metadata()["node_cpu_seconds_total"], meta);
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    #[test]
    fn a_series_selected_before_a_cut_and_read_after_it_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let live = load(&db, 24 * 60 * MIN, 600);
        let all = Matcher::new("__name__", MatchOp::Regex, ".+").unwrap();
        let lazy = db.select_lazy(&[all], i64::MIN, i64::MAX).unwrap();
        assert!(db.blocks.read().unwrap().is_empty());
        // The cut moves most samples into blocks this selection never saw.
        db.maintain().unwrap();
        assert!(!db.blocks.read().unwrap().is_empty());
        let read: Vec<SeriesSamples> = lazy
            .iter()
            .map(|s| SeriesSamples {
                labels: s.labels.clone(),
                samples: s.samples().unwrap(),
            })
            .collect();
        let count = |b: &[SeriesSamples]| b.iter().map(|s| s.samples.len()).sum::<usize>();
        let live = sorted(live);
        assert!(
            read == live,
            "{} samples read of {} written",
            count(&read),
            count(&live)
        );
    }

    #[test]
    fn lazy_select_lists_head_series_in_label_order_as_series_come() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let all = |db: &Tsdb| -> Vec<String> {
            let m = Matcher::new("__name__", MatchOp::Equal, "up").unwrap();
            db.select_lazy(&[m], 0, i64::MAX)
                .unwrap()
                .iter()
                .map(|s| s.labels.get("instance").unwrap().to_owned())
                .collect()
        };
        // Created out of label order.
        for instance in ["c", "a", "b"] {
            db.append(&[series("up", instance, [(MIN, 1.0)])]).unwrap();
        }
        assert_eq!(all(&db), ["a", "b", "c"]);
        // A new series after the order was cached takes its place.
        db.append(&[series("up", "aa", [(2 * MIN, 1.0)])]).unwrap();
        assert_eq!(all(&db), ["a", "aa", "b", "c"]);
        let lazy = {
            let m = Matcher::new("instance", MatchOp::Equal, "aa").unwrap();
            db.select_lazy(&[m], 0, i64::MAX).unwrap()
        };
        assert_eq!(
            lazy[0].samples().unwrap(),
            [Sample {
                timestamp_ms: 2 * MIN,
                value: 1.0
            }]
        );
    }
}
