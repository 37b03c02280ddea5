//! Logs in cluster mode: storage's [`LogWriter`] and [`LogReader`] over the
//! partitioned log (`SEXTANT_LOGS`) and the partition owners' log stores,
//! as [`crate::metrics`] does for series.
//!
//! A record's partition is its stream: service and host. Reads ask every
//! partition and merge by time. A hit's key across the cluster is its
//! timestamp, then its partition and its sequence in that partition's store
//! (`partition << 48 | seq`), so pages never overlap or skip; a live tail
//! keeps one cursor per partition on the node that serves it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sextant_model::LogRecord;
use sextant_storage::logs::{
    HitKey, LogHits, LogQuery, LogStore, LogStoreConfig, SplitConfig, record_from_json_bytes,
    record_to_json,
};
use sextant_storage::remote::RemoteStore;
use sextant_storage::{LogReader, LogWriter};

use crate::catalog::Catalog;
use crate::log::MessageIds;
use crate::owner::{Engine, Owners};
use crate::peer::PeerClient;
use crate::{Cluster, Error, PartitionLog, partition_of};

/// How long the log keeps a record its owner has not trimmed: logs are
/// sealed by the day, so at least two days.
const LOG_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const RECORD_BYTES: usize = 768 << 10;
const APPEND_PATIENCE: Duration = Duration::from_secs(20);
/// Bits of a cluster-wide hit key's sequence that hold the local one.
const SEQ_BITS: u32 = 48;
/// A live tail nobody has read for this long is forgotten.
const TAIL_IDLE: Duration = Duration::from_secs(300);

/// Where and how partition log stores are opened.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `<data>/cluster/logs`.
    pub dir: PathBuf,
    pub config: LogStoreConfig,
    pub remote: Arc<RemoteStore>,
}

/// A partition's log store.
struct LogEngine(LogStore);

impl Engine for LogEngine {
    fn apply(&self, records: &[(u64, Bytes)]) -> Result<Vec<Option<i64>>, String> {
        let mut newest = Vec::with_capacity(records.len());
        let mut all = Vec::new();
        for (_, payload) in records {
            let decoded: Option<Vec<LogRecord>> = wire_items(payload)
                .and_then(|items| items.into_iter().map(record_from_json_bytes).collect());
            match decoded {
                Some(decoded) => {
                    newest.push(Some(
                        decoded
                            .iter()
                            .map(|r| r.timestamp_us)
                            .max()
                            .unwrap_or(i64::MIN),
                    ));
                    all.extend(decoded);
                }
                None => newest.push(None),
            }
        }
        self.0.append(&all).map_err(|e| e.to_string())?;
        Ok(newest)
    }

    fn tick(&self) -> Result<(), String> {
        self.0.commit().map_err(|e| e.to_string())
    }

    fn checkpoint(&self) -> Option<i64> {
        if let Err(e) = self.0.maintain() {
            tracing::warn!(error = %e, "log partition maintenance failed");
        }
        self.0.durable_before_us()
    }
}

fn wire_items(payload: &[u8]) -> Option<Vec<&[u8]>> {
    crate::wire::decode_items(payload).ok()
}

/// What a read asks of some partitions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogRead {
    pub partitions: Vec<u32>,
    pub call: LogCall,
}

/// One of [`LogReader`]'s questions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LogCall {
    Search {
        text: String,
        start_us: i64,
        end_us: i64,
        limit: usize,
        ascending: bool,
        /// A cluster-wide hit key.
        after: Option<(i64, u64)>,
    },
    Histogram {
        text: String,
        start_us: i64,
        end_us: i64,
        step_us: i64,
    },
    Correlated {
        id: String,
        start_us: i64,
        end_us: i64,
        limit: usize,
    },
    Tail {
        text: String,
        /// Partition -> the store's sequence to follow on from; a partition
        /// without one starts at its store's end.
        after: BTreeMap<u32, u64>,
        limit: usize,
    },
}

/// Some partitions' answer.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LogAnswer {
    /// Partitions asked for that this node does not answer for.
    pub missing: Vec<u32>,
    pub total: usize,
    /// (timestamp µs, cluster-wide sequence, the record as JSON).
    pub hits: Vec<(i64, u64, String)>,
    pub buckets: Vec<(i64, u64)>,
    pub cursors: BTreeMap<u32, u64>,
}

/// A live tail: when it was last read, and a cursor per partition.
type Tail = (Instant, BTreeMap<u32, u64>);

/// Logs across the cluster, as this node sees them.
pub struct ClusterLogs {
    cluster: Arc<Cluster>,
    log: PartitionLog,
    runtime: tokio::runtime::Handle,
    ids: MessageIds,
    http: PeerClient,
    owners: Arc<Owners<LogEngine>>,
    /// Live tails: id -> last read and a cursor per partition.
    tails: Mutex<HashMap<u64, Tail>>,
}

impl std::fmt::Debug for ClusterLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLogs").finish_non_exhaustive()
    }
}

impl ClusterLogs {
    /// Opens the logs' partitioned log.
    pub async fn open(cluster: Arc<Cluster>, settings: LogSettings) -> Result<Arc<Self>, Error> {
        let log = cluster.log("logs", LOG_MAX_AGE).await?;
        let catalog = Catalog::open(cluster.jetstream(), cluster.replicas()).await?;
        let owners = Owners::new(
            cluster.clone(),
            log.clone(),
            catalog,
            "logs",
            move |partition| open_store(&settings, partition).map(LogEngine),
        );
        let http = PeerClient::of(&cluster);
        Ok(Arc::new(Self {
            ids: MessageIds::of(&cluster),
            cluster,
            log,
            runtime: tokio::runtime::Handle::current(),
            http,
            owners,
            tails: Mutex::default(),
        }))
    }

    /// Starts and stops owners as leases come and go; runs until aborted.
    pub async fn run(self: Arc<Self>) {
        self.owners.clone().run().await;
    }

    /// Stops every owner.
    pub fn stop(&self) {
        self.owners.stop();
    }

    /// Answers `read` for the partitions this node owns, once each has
    /// applied what its log held when the read began.
    /// The body of `/internal/v1/logs/read`.
    pub fn read_local(&self, read: &LogRead) -> Result<LogAnswer, String> {
        let mut answer = LogAnswer::default();
        let (engines, missing) =
            self.owners
                .consistent(&self.runtime, &read.partitions, crate::owner::READ_PATIENCE);
        answer.missing = missing;
        for (partition, engine) in engines {
            let store = &engine.0;
            let tag = u64::from(partition) << SEQ_BITS;
            let keyed = |hits: Vec<(HitKey, LogRecord)>| {
                hits.into_iter().map(move |(key, record)| {
                    (
                        key.timestamp_us,
                        tag | key.seq,
                        String::from_utf8(record_to_json(&record)).unwrap_or_default(),
                    )
                })
            };
            match &read.call {
                LogCall::Search {
                    text,
                    start_us,
                    end_us,
                    limit,
                    ascending,
                    after,
                } => {
                    let after = after.map(|(timestamp_us, key)| HitKey {
                        timestamp_us,
                        seq: local_after(partition, key),
                    });
                    let (total, hits) = store
                        .search_keyed(&LogQuery {
                            text: text.clone(),
                            start_us: *start_us,
                            end_us: *end_us,
                            limit: *limit,
                            ascending: *ascending,
                            after,
                        })
                        .map_err(|e| e.to_string())?;
                    answer.total += total;
                    answer.hits.extend(keyed(hits));
                }
                LogCall::Histogram {
                    text,
                    start_us,
                    end_us,
                    step_us,
                } => {
                    let buckets = store
                        .histogram(
                            &LogQuery {
                                text: text.clone(),
                                start_us: *start_us,
                                end_us: *end_us,
                                limit: 0,
                                ascending: false,
                                after: None,
                            },
                            *step_us,
                        )
                        .map_err(|e| e.to_string())?;
                    add_buckets(&mut answer.buckets, buckets);
                }
                LogCall::Correlated {
                    id,
                    start_us,
                    end_us,
                    limit,
                } => {
                    let hits = store
                        .correlated(id, *start_us, *end_us, *limit)
                        .map_err(|e| e.to_string())?;
                    answer.total += hits.total;
                    answer.hits.extend(hits.hits.into_iter().map(|record| {
                        (
                            record.timestamp_us,
                            tag,
                            String::from_utf8(record_to_json(&record)).unwrap_or_default(),
                        )
                    }));
                }
                LogCall::Tail { text, after, limit } => {
                    let from = after
                        .get(&partition)
                        .copied()
                        .unwrap_or_else(|| store.tail_start());
                    let (records, next) =
                        store.tail(text, from, *limit).map_err(|e| e.to_string())?;
                    answer.cursors.insert(partition, next);
                    answer.hits.extend(records.into_iter().map(|record| {
                        (
                            record.timestamp_us,
                            tag,
                            String::from_utf8(record_to_json(&record)).unwrap_or_default(),
                        )
                    }));
                }
            }
        }
        Ok(answer)
    }

    /// Asks every partition; notes the ones no owner answered for.
    fn read(&self, call: LogCall) -> sextant_storage::Result<LogAnswer> {
        let all: Vec<u32> = (0..self.cluster.partitions()).collect();
        crate::peer::fan_out(
            &self.cluster,
            &self.runtime,
            &self.http,
            || self.owners.owned(),
            &all,
            ("logs", "/internal/v1/logs/read"),
            |partitions| LogRead {
                partitions,
                call: call.clone(),
            },
            |read| self.read_local(read),
            |answer| std::mem::take(&mut answer.missing),
            |merged, answer| {
                merged.total += answer.total;
                merged.hits.extend(answer.hits);
                add_buckets(&mut merged.buckets, answer.buckets);
                merged.cursors.extend(answer.cursors);
                merged.missing.extend(answer.missing);
            },
        )
    }
}

/// The sequence to search a partition's store after, for a cluster-wide
/// key `(t, key)`: hits order by time, then partition, then sequence.
fn local_after(partition: u32, key: u64) -> u64 {
    let (p, seq) = ((key >> SEQ_BITS) as u32, key & ((1 << SEQ_BITS) - 1));
    match partition.cmp(&p) {
        // Earlier partitions: every hit at that time is on the far side
        // (newest first) or already shown (oldest first).
        std::cmp::Ordering::Less => u64::MAX,
        std::cmp::Ordering::Equal => seq,
        std::cmp::Ordering::Greater => 0,
    }
}

fn add_buckets(into: &mut Vec<(i64, u64)>, buckets: Vec<(i64, u64)>) {
    if into.is_empty() {
        *into = buckets;
        return;
    }
    for (t, n) in buckets {
        match into.binary_search_by_key(&t, |(t, _)| *t) {
            Ok(i) => into[i].1 += n,
            Err(i) => into.insert(i, (t, n)),
        }
    }
}

fn records_of(hits: Vec<(i64, u64, String)>) -> Vec<LogRecord> {
    hits.into_iter()
        .filter_map(|(_, _, json)| record_from_json_bytes(json.as_bytes()))
        .collect()
}

/// A fresh store for `partition` (`<dir>/p<N>/`, splits under `logs/p<N>`).
fn open_store(settings: &LogSettings, partition: u32) -> Result<LogStore, String> {
    let dir = settings.dir.join(format!("p{partition}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
    }
    let config = LogStoreConfig {
        splits: SplitConfig {
            remote: Some(settings.remote.clone()),
            remote_kind: Some(format!("logs/p{partition}")),
            ..settings.config.splits.clone()
        },
        ..settings.config.clone()
    };
    LogStore::open(&dir, config).map_err(|e| e.to_string())
}

/// The partition a record's stream lives in.
fn stream_partition(record: &LogRecord, partitions: u32) -> u32 {
    let mut key = Vec::with_capacity(record.service.len() + record.host.len() + 1);
    key.extend_from_slice(record.service.as_bytes());
    key.push(0xff);
    key.extend_from_slice(record.host.as_bytes());
    partition_of(&key, partitions)
}

impl LogWriter for ClusterLogs {
    fn append_logs(&self, records: &[LogRecord]) -> sextant_storage::Result<()> {
        let partitions = self.cluster.partitions();
        let mut parts: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for record in records {
            parts
                .entry(stream_partition(record, partitions))
                .or_default()
                .push(record_to_json(record));
        }
        self.log.append_items_from_blocking(
            &self.runtime,
            parts,
            RECORD_BYTES,
            &self.ids,
            APPEND_PATIENCE,
        )
    }
}

impl LogReader for ClusterLogs {
    fn search_logs(&self, query: &LogQuery) -> sextant_storage::Result<LogHits> {
        let mut answer = self.read(LogCall::Search {
            text: query.text.clone(),
            start_us: query.start_us,
            end_us: query.end_us,
            limit: query.limit,
            ascending: query.ascending,
            after: query.after.map(|k| (k.timestamp_us, k.seq)),
        })?;
        if query.ascending {
            answer.hits.sort_by_key(|(t, k, _)| (*t, *k));
        } else {
            answer
                .hits
                .sort_by_key(|(t, k, _)| std::cmp::Reverse((*t, *k)));
        }
        answer.hits.truncate(query.limit);
        let next = (answer.hits.len() == query.limit && query.limit > 0)
            .then(|| {
                answer.hits.last().map(|(t, k, _)| HitKey {
                    timestamp_us: *t,
                    seq: *k,
                })
            })
            .flatten();
        Ok(LogHits {
            total: answer.total,
            hits: records_of(answer.hits),
            next,
        })
    }

    fn log_histogram(
        &self,
        query: &LogQuery,
        step_us: i64,
    ) -> sextant_storage::Result<Vec<(i64, u64)>> {
        Ok(self
            .read(LogCall::Histogram {
                text: query.text.clone(),
                start_us: query.start_us,
                end_us: query.end_us,
                step_us,
            })?
            .buckets)
    }

    fn log_tail_start(&self) -> u64 {
        let mut tails = self.tails.lock().expect("tails");
        tails.retain(|_, (used, _)| used.elapsed() < TAIL_IDLE);
        let id = self.ids.number();
        tails.insert(id, (Instant::now(), BTreeMap::new()));
        id
    }

    fn tail_logs(
        &self,
        text: &str,
        after: u64,
        limit: usize,
    ) -> sextant_storage::Result<(Vec<LogRecord>, u64)> {
        let cursors = self
            .tails
            .lock()
            .expect("tails")
            .get(&after)
            .map(|(_, c)| c.clone())
            .unwrap_or_default();
        let mut answer = self.read(LogCall::Tail {
            text: text.to_owned(),
            after: cursors,
            limit,
        })?;
        // Not cut to `limit`: each partition's cursor has moved past all
        // it returned.
        answer.hits.sort_by_key(|(t, _, _)| *t);
        self.tails
            .lock()
            .expect("tails")
            .insert(after, (Instant::now(), answer.cursors));
        Ok((records_of(answer.hits), after))
    }

    fn correlated_logs(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> sextant_storage::Result<LogHits> {
        let mut answer = self.read(LogCall::Correlated {
            id: id.to_owned(),
            start_us,
            end_us,
            limit,
        })?;
        answer.hits.sort_by_key(|(t, _, _)| *t);
        answer.hits.truncate(limit);
        Ok(LogHits {
            total: answer.total,
            hits: records_of(answer.hits),
            next: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_key_pages_each_partition_from_the_right_place() {
        let key = (3u64 << SEQ_BITS) | 17;
        assert_eq!(local_after(3, key), 17);
        assert_eq!(local_after(2, key), u64::MAX);
        assert_eq!(local_after(4, key), 0);
        let mut buckets = vec![(0, 1), (10, 2)];
        add_buckets(&mut buckets, vec![(0, 5), (10, 1), (20, 4)]);
        assert_eq!(buckets, [(0, 6), (10, 3), (20, 4)]);
    }
}
