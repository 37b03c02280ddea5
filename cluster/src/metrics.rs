//! Metrics in cluster mode: storage's [`MetricsWriter`] and
//! [`MetricsReader`] over the partitioned log and the partition owners.
//!
//! **Writes.** A batch is split by the partition of each series
//! ([`partition_of`] its labels), each part appended to its partition's
//! subject with a message id, and the batch is acknowledged once JetStream
//! has stored every part. A part that cannot be stored fails the batch
//! (503): the sender retries, and a sample written twice is the same sample
//! at the same timestamp, which the engine keeps once.
//!
//! **Owners.** For every partition this node holds a lease on, an owner
//! claims the partition in the [`Catalog`] under the lease's epoch, opens a
//! fresh engine (`<dir>/p<N>/`, blocks under `metrics/p<N>` in the object
//! store), replays the log from the catalog's point and then follows it.
//! After each maintenance (head cut, compaction, retention, uploads) the
//! records whose samples are all in uploaded blocks are behind it: the
//! catalog's point moves past them (a compare-and-swap under the epoch) and
//! the log is trimmed. A lost lease or a refused catalog write ends the
//! owner; whoever holds the partition next replays from the catalog.
//!
//! **Reads.** A query asks every partition: its own through their engines,
//! the others' owners over HTTP (`POST /internal/v1/metrics/read`, answered
//! by [`ClusterMetrics::read_local`]); series of different partitions are
//! different series, so the answers are merged by label order. A partition
//! that no owner answers for fails the query with 503 naming it: never a
//! silent gap.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _};
use sextant_model::{Labels, MatchOp, Matcher, PromDuration};
use sextant_storage::remote::RemoteStore;
use sextant_storage::{
    AppendReport, MetricMetadata, MetricsReader, MetricsWriter, SeriesSamples, Tsdb, TsdbConfig,
    TsdbStats,
};
use tracing::{info, warn};

use crate::catalog::Catalog;
use crate::wire::{self, Reader, Writer};
use crate::{Cluster, Error, PartitionLog, partition_of};

/// How long the log keeps a record its owner has not trimmed.
const LOG_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest record a write makes (below NATS's 1 MiB message).
const RECORD_BYTES: usize = 768 << 10;
/// How long a write keeps retrying an append JetStream refuses for now
/// (a stream electing a leader after a NATS node died).
const APPEND_PATIENCE: Duration = Duration::from_secs(10);
/// How long a node waits for another's answer to a read.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an owner cuts, uploads and moves its replay point.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// The bucket of metric metadata (type, help, unit), shared by all nodes.
const METADATA_BUCKET: &str = "sextant-metadata";

/// Where and how partition engines are opened.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// Local directory of the partition engines (`<data>/cluster/metrics`).
    pub dir: PathBuf,
    pub config: TsdbConfig,
    pub retention: PromDuration,
    pub stats: Arc<TsdbStats>,
    /// The object store the partitions' blocks go to.
    pub remote: Arc<RemoteStore>,
}

/// One partition this node owns.
struct Owner {
    epoch: u64,
    tsdb: Arc<Tsdb>,
    /// Caught up with the log: its answers are complete.
    ready: AtomicBool,
    stop: AtomicBool,
}

/// Metrics across the cluster, as this node sees them.
pub struct ClusterMetrics {
    cluster: Arc<Cluster>,
    log: PartitionLog,
    catalog: Catalog,
    metadata_kv: kv::Store,
    runtime: tokio::runtime::Handle,
    settings: MetricsSettings,
    /// Message ids: this node, its start, a counter.
    id_prefix: String,
    next_id: AtomicU64,
    owners: RwLock<BTreeMap<u32, Arc<Owner>>>,
    /// Partitions whose owner is starting (claiming, opening, replaying).
    starting: Mutex<BTreeSet<u32>>,
    metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    http: PeerClient,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMetrics")
            .field("node", &self.cluster.node_id())
            .finish_non_exhaustive()
    }
}

/// What a read asks of a partition.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReadRequest {
    /// `select`, `series`, `label_names` or `label_values`.
    pub op: String,
    /// The label of `label_values`.
    #[serde(default)]
    pub name: String,
    /// `[name, op, value]`, op one of `=`, `!=`, `=~`, `!~`.
    pub matchers: Vec<[String; 3]>,
    pub mint: i64,
    pub maxt: i64,
    pub partitions: Vec<u32>,
}

/// The merged answer of every partition.
#[derive(Default)]
struct Answer {
    series: Vec<SeriesSamples>,
    names: BTreeSet<String>,
}

impl ClusterMetrics {
    /// Opens the metrics log, the catalog and the metadata bucket.
    pub async fn open(
        cluster: Arc<Cluster>,
        settings: MetricsSettings,
    ) -> Result<Arc<Self>, Error> {
        let log = cluster.log("metrics", LOG_MAX_AGE).await?;
        let catalog = Catalog::open(cluster.jetstream(), cluster.replicas()).await?;
        let metadata_kv = crate::lease::open_kv(
            cluster.jetstream(),
            METADATA_BUCKET,
            cluster.replicas(),
            Duration::ZERO,
        )
        .await?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Ok(Arc::new(Self {
            id_prefix: format!("{}-{started:x}", cluster.node_id()),
            cluster,
            log,
            catalog,
            metadata_kv,
            runtime: tokio::runtime::Handle::current(),
            settings,
            next_id: AtomicU64::new(0),
            owners: RwLock::default(),
            starting: Mutex::default(),
            metadata: RwLock::default(),
            http: PeerClient,
        }))
    }

    /// The cluster this node is in.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Starts and stops partition owners as this node's leases come and go,
    /// and keeps the metadata in step with the bucket; runs until aborted.
    pub async fn run(self: Arc<Self>) {
        struct AbortOnDrop(tokio::task::JoinHandle<()>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _watcher = AbortOnDrop(tokio::spawn(self.clone().watch_metadata()));
        loop {
            self.reconcile();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops every owner (a clean stop: the next owner replays from the
    /// catalog; nothing acknowledged is only here).
    pub fn stop(&self) {
        for owner in self.owners.read().expect("owners").values() {
            owner.stop.store(true, Ordering::Relaxed);
        }
    }

    fn reconcile(self: &Arc<Self>) {
        let held = self.cluster.owned();
        {
            let mut owners = self.owners.write().expect("owners");
            owners.retain(|partition, owner| {
                let keep = held.get(partition) == Some(&owner.epoch);
                if !keep {
                    info!(
                        partition,
                        epoch = owner.epoch,
                        "partition no longer owned here"
                    );
                    owner.stop.store(true, Ordering::Relaxed);
                }
                keep
            });
        }
        for (partition, epoch) in held {
            if self.owners.read().expect("owners").contains_key(&partition) {
                continue;
            }
            if !self.starting.lock().expect("starting").insert(partition) {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.own(partition, epoch).await {
                    warn!(partition, epoch, error = %e, "partition owner stopped");
                }
                this.starting.lock().expect("starting").remove(&partition);
                let mut owners = this.owners.write().expect("owners");
                if owners.get(&partition).is_some_and(|o| o.epoch == epoch) {
                    owners.remove(&partition);
                }
            });
        }
    }

    /// Owns `partition` under `epoch` until told to stop or fenced out.
    async fn own(self: &Arc<Self>, partition: u32, epoch: u64) -> Result<(), Error> {
        let node = self.cluster.node_id().to_owned();
        let key = format!("metrics.p{partition}");
        let Some(mut checkpoint) = self.catalog.claim(&key, epoch, &node).await? else {
            warn!(partition, epoch, "a later owner has claimed the partition");
            return Ok(());
        };
        let tsdb = self.open_engine(partition).await?;
        let owner = Arc::new(Owner {
            epoch,
            tsdb,
            ready: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        self.starting.lock().expect("starting").remove(&partition);
        if self.cluster.owned().get(&partition) != Some(&epoch) {
            return Ok(());
        }
        self.owners
            .write()
            .expect("owners")
            .insert(partition, owner.clone());
        info!(
            partition,
            epoch,
            from = checkpoint.from,
            "replaying the partition"
        );
        let started = Instant::now();
        let mut messages = self.log.follow(partition, checkpoint.from).await?;
        // (sequence, newest sample) of each record not yet in the bucket.
        let mut unsealed: VecDeque<(u64, i64)> = VecDeque::new();
        let mut next = checkpoint.from.max(1);
        let mut last_checkpoint = Instant::now();
        while !owner.stop.load(Ordering::Relaxed) {
            let mut batch = Vec::new();
            let mut pending = u64::MAX;
            match tokio::time::timeout(Duration::from_millis(250), messages.next()).await {
                Err(_) => {
                    if !owner.ready.swap(true, Ordering::Relaxed) {
                        info!(
                            partition,
                            secs = started.elapsed().as_secs_f64(),
                            "partition caught up"
                        );
                    }
                }
                Ok(None) => return Err(Error::JetStream("the partition's log ended".into())),
                Ok(Some(message)) => {
                    batch.push(message);
                    while batch.len() < 512 {
                        match messages.next().now_or_never() {
                            Some(Some(message)) => batch.push(message),
                            _ => break,
                        }
                    }
                }
            }
            let mut series = Vec::new();
            for message in batch {
                let message = message
                    .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
                let info = message
                    .info()
                    .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
                let sequence = info.stream_sequence;
                pending = info.pending;
                next = sequence + 1;
                match wire::decode_series(&message.payload) {
                    Ok(records) => {
                        let newest = records
                            .iter()
                            .filter_map(|s| s.samples.iter().map(|x| x.timestamp_ms).max())
                            .max()
                            .unwrap_or(i64::MIN);
                        unsealed.push_back((sequence, newest));
                        series.extend(records);
                    }
                    Err(e) => {
                        warn!(partition, sequence, error = %e, "an unreadable record in the log is skipped");
                    }
                }
            }
            if !series.is_empty() {
                let tsdb = owner.tsdb.clone();
                let report = tokio::task::spawn_blocking(move || tsdb.append(&series))
                    .await
                    .map_err(|e| Error::JetStream(format!("append panicked: {e}")))?;
                if let Err(e) = report {
                    // The local engine failed (a full disk): stop owning, so
                    // the partition moves to a node that can store it.
                    return Err(Error::JetStream(format!(
                        "partition {partition}'s engine refused a write: {e}"
                    )));
                }
            }
            if pending == 0 && !owner.ready.swap(true, Ordering::Relaxed) {
                info!(
                    partition,
                    secs = started.elapsed().as_secs_f64(),
                    "partition caught up"
                );
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                last_checkpoint = Instant::now();
                let tsdb = owner.tsdb.clone();
                let durable = tokio::task::spawn_blocking(move || {
                    if let Err(e) = tsdb.maintain() {
                        warn!(error = %e, "partition maintenance failed");
                    }
                    tsdb.durable_before()
                })
                .await
                .map_err(|e| Error::JetStream(format!("maintenance panicked: {e}")))?;
                let Some(before) = durable else { continue };
                while unsealed.front().is_some_and(|(_, newest)| *newest < before) {
                    unsealed.pop_front();
                }
                let from = unsealed.front().map_or(next, |(sequence, _)| *sequence);
                if from > checkpoint.from {
                    if !self
                        .catalog
                        .advance(&key, &mut checkpoint, from, &node)
                        .await?
                    {
                        warn!(partition, epoch, "fenced out by a later owner");
                        break;
                    }
                    if let Err(e) = self.log.trim(partition, from).await {
                        warn!(partition, error = %e, "cannot trim the partition's log");
                    }
                }
            }
        }
        Ok(())
    }

    async fn open_engine(&self, partition: u32) -> Result<Arc<Tsdb>, Error> {
        let dir = self.settings.dir.join(format!("p{partition}"));
        let mut config = self.settings.config.clone();
        // The log is the durable copy: the engine's own WAL need not sync.
        config.wal_fsync = sextant_storage::tsdb::FsyncPolicy::Never;
        let (retention, stats, remote) = (
            self.settings.retention,
            self.settings.stats.clone(),
            self.settings.remote.clone(),
        );
        tokio::task::spawn_blocking(move || {
            // What an earlier owner here left is stale: the log and the
            // bucket hold everything, from the catalog's point.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| format!("clear {}: {e}", dir.display()))?;
            }
            let kind = format!("metrics/p{partition}");
            Tsdb::open_in_bucket(&dir, config, retention, stats, Some((remote, &kind)))
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| Error::JetStream(format!("opening partition {partition} panicked: {e}")))?
        .map_err(|e| Error::JetStream(format!("open partition {partition}: {e}")))
    }

    async fn watch_metadata(self: Arc<Self>) {
        loop {
            match self.metadata_kv.watch_all_from_revision(1).await {
                Ok(mut entries) => {
                    while let Some(entry) = entries.next().await {
                        let Ok(entry) = entry else { break };
                        let name = entry.key.replace('=', ":");
                        let mut map = self.metadata.write().expect("metadata");
                        match serde_json::from_slice::<MetricMetadata>(&entry.value) {
                            Ok(m) if entry.operation == kv::Operation::Put => {
                                map.insert(name, m);
                            }
                            _ => {
                                map.remove(&name);
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot watch the metadata bucket"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Runs `fut` on the server's runtime and waits for it from this
    /// (blocking) thread.
    fn wait<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> sextant_storage::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| sextant_storage::Error::Unavailable("Sextant is stopping".into()))
    }

    /// Answers `request` for the partitions this node owns and has caught
    /// up; the others are listed as missing. The body of
    /// `/internal/v1/metrics/read`.
    pub fn read_local(&self, request: &ReadRequest) -> Result<Vec<u8>, String> {
        let matchers = request
            .matchers
            .iter()
            .map(|[name, op, value]| {
                let op = match op.as_str() {
                    "=" => MatchOp::Equal,
                    "!=" => MatchOp::NotEqual,
                    "=~" => MatchOp::Regex,
                    "!~" => MatchOp::NotRegex,
                    other => return Err(format!("unknown matcher operator {other:?}")),
                };
                Matcher::new(name.clone(), op, value.clone())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut missing = Vec::new();
        let mut answer = Answer::default();
        for partition in &request.partitions {
            let owner = self
                .owners
                .read()
                .expect("owners")
                .get(partition)
                .filter(|o| o.ready.load(Ordering::Relaxed))
                .cloned();
            let Some(owner) = owner else {
                missing.push(*partition);
                continue;
            };
            let (tsdb, mint, maxt) = (&owner.tsdb, request.mint, request.maxt);
            let done = match request.op.as_str() {
                "select" => tsdb
                    .select(&matchers, mint, maxt)
                    .map(|s| answer.series.extend(s)),
                "series" => tsdb.series(&matchers, mint, maxt).map(|s| {
                    answer
                        .series
                        .extend(s.into_iter().map(|labels| SeriesSamples {
                            labels,
                            samples: Vec::new(),
                        }));
                }),
                "label_names" => tsdb
                    .label_names(&matchers, mint, maxt)
                    .map(|n| answer.names.extend(n)),
                "label_values" => tsdb
                    .label_values(&request.name, &matchers, mint, maxt)
                    .map(|n| answer.names.extend(n)),
                other => return Err(format!("unknown read {other:?}")),
            };
            done.map_err(|e| format!("partition {partition}: {e}"))?;
        }
        let mut w = Writer::new();
        w.varint(missing.len() as u64);
        for p in missing {
            w.varint(u64::from(p));
        }
        w.varint(answer.series.len() as u64);
        for s in &answer.series {
            w.series(s);
        }
        w.varint(answer.names.len() as u64);
        for n in &answer.names {
            w.str(n);
        }
        Ok(w.finish())
    }

    /// Asks every partition, merges, and fails naming the partitions no
    /// owner answered for.
    fn read(
        &self,
        op: &str,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> sextant_storage::Result<Answer> {
        let status = self.cluster.status();
        let me = self.cluster.node_id().to_owned();
        let mut by_node: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut missing: BTreeSet<u32> = BTreeSet::new();
        for partition in 0..status.partitions {
            match status.owners.get(&partition) {
                Some(owner) => by_node.entry(owner.clone()).or_default().push(partition),
                None => {
                    missing.insert(partition);
                }
            }
        }
        // Partitions this node took since the last round count as its own.
        for partition in self.owners.read().expect("owners").keys() {
            if missing.remove(partition) {
                by_node.entry(me.clone()).or_default().push(*partition);
            }
        }
        let request = |partitions: Vec<u32>| ReadRequest {
            op: op.to_owned(),
            name: name.to_owned(),
            matchers: matchers
                .iter()
                .map(|m| {
                    let op = match m.op {
                        MatchOp::Equal => "=",
                        MatchOp::NotEqual => "!=",
                        MatchOp::Regex => "=~",
                        MatchOp::NotRegex => "!~",
                    };
                    [m.name.clone(), op.to_owned(), m.value.clone()]
                })
                .collect(),
            mint,
            maxt,
            partitions,
        };
        let mut bodies: Vec<Result<Vec<u8>, String>> = Vec::new();
        let mut remote = Vec::new();
        for (node, partitions) in by_node {
            if node == me {
                bodies.push(self.read_local(&request(partitions)));
                continue;
            }
            let Some(address) = status.members.get(&node).cloned() else {
                missing.extend(partitions);
                continue;
            };
            let body =
                serde_json::to_vec(&request(partitions.clone())).expect("a request serialises");
            let http = self.http;
            remote.push((partitions, async move { http.read(&address, body).await }));
        }
        let (remote_partitions, calls): (Vec<_>, Vec<_>) = remote.into_iter().unzip();
        let answers = self.wait(futures_util::future::join_all(calls))?;
        for (partitions, answer) in remote_partitions.into_iter().zip(answers) {
            match answer {
                Ok(body) => bodies.push(Ok(body)),
                Err(e) => {
                    warn!(error = %e, "a node did not answer a read");
                    missing.extend(partitions);
                }
            }
        }
        let mut merged = Answer::default();
        for body in bodies {
            let body = body.map_err(sextant_storage::Error::BadQuery)?;
            decode_answer(&body, &mut merged, &mut missing).map_err(|e| {
                sextant_storage::Error::Unavailable(format!("a node's answer: {e}"))
            })?;
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(u32::to_string).collect();
            return Err(sextant_storage::Error::Unavailable(format!(
                "metrics partitions {} have no owner answering just now (a node joined or left; \
                 they are taken over within 15 s): the answer would be partial, retry",
                list.join(", ")
            )));
        }
        merged.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(merged)
    }

    fn message_id(&self) -> String {
        format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }
}

fn decode_answer(
    body: &[u8],
    into: &mut Answer,
    missing: &mut BTreeSet<u32>,
) -> Result<(), String> {
    let mut r = Reader::new(body)?;
    let n = r.count(1)?;
    for _ in 0..n {
        missing.insert(u32::try_from(r.varint()?).map_err(|_| "partition out of range")?);
    }
    let n = r.count(2)?;
    for _ in 0..n {
        into.series.push(r.series()?);
    }
    let n = r.count(1)?;
    for _ in 0..n {
        into.names.insert(r.str()?.to_owned());
    }
    Ok(())
}

/// The key a series is placed by: its labels, names and values separated.
fn series_key(labels: &Labels) -> Vec<u8> {
    let mut key = Vec::new();
    for label in labels.iter() {
        key.extend_from_slice(label.name.as_bytes());
        key.push(0xff);
        key.extend_from_slice(label.value.as_bytes());
        key.push(0xff);
    }
    key
}

/// Splits a batch into records of at most [`RECORD_BYTES`] (a series with
/// more samples than fit is split across records).
fn records(series: Vec<SeriesSamples>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut current: Vec<SeriesSamples> = Vec::new();
    let mut size = 0;
    for s in series {
        let label_bytes: usize = s
            .labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 4)
            .sum();
        let per_record = ((RECORD_BYTES / 2).saturating_sub(label_bytes) / 16).max(1);
        for samples in s.samples.chunks(per_record) {
            let bytes = label_bytes + samples.len() * 16 + 8;
            if size + bytes > RECORD_BYTES && !current.is_empty() {
                out.push(Bytes::from(wire::encode_series(&current)));
                current.clear();
                size = 0;
            }
            size += bytes;
            current.push(SeriesSamples {
                labels: s.labels.clone(),
                samples: samples.to_vec(),
            });
        }
    }
    if !current.is_empty() {
        out.push(Bytes::from(wire::encode_series(&current)));
    }
    out
}

impl MetricsWriter for ClusterMetrics {
    fn append(&self, batch: &[SeriesSamples]) -> sextant_storage::Result<AppendReport> {
        let partitions = self.cluster.partitions();
        let mut parts: BTreeMap<u32, Vec<SeriesSamples>> = BTreeMap::new();
        let mut total = 0u64;
        for series in batch {
            if series.samples.is_empty() {
                continue;
            }
            total += series.samples.len() as u64;
            parts
                .entry(partition_of(&series_key(&series.labels), partitions))
                .or_default()
                .push(series.clone());
        }
        let mut appends = Vec::new();
        for (partition, series) in parts {
            for record in records(series) {
                let (log, id) = (self.log.clone(), self.message_id());
                appends.push(async move {
                    let deadline = Instant::now() + APPEND_PATIENCE;
                    loop {
                        match log.append(partition, &id, record.clone()).await {
                            Ok(_) => return Ok(()),
                            Err(e) if Instant::now() < deadline => {
                                tracing::debug!(partition, error = %e, "append retried");
                                tokio::time::sleep(Duration::from_millis(250)).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                });
            }
        }
        let results = self.wait(futures_util::future::join_all(appends))?;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(sextant_storage::Error::Unavailable(format!(
                "the cluster's log did not take the write ({e}); retry"
            )));
        }
        Ok(AppendReport {
            accepted: total,
            ..AppendReport::default()
        })
    }

    fn set_metadata(&self, metric: &str, metadata: MetricMetadata) -> sextant_storage::Result<()> {
        if self.metadata.read().expect("metadata").get(metric) == Some(&metadata) {
            return Ok(());
        }
        self.metadata
            .write()
            .expect("metadata")
            .insert(metric.to_owned(), metadata.clone());
        let (kv, key) = (self.metadata_kv.clone(), metric.replace(':', "="));
        let value = serde_json::to_vec(&metadata).expect("metadata serialises");
        self.runtime.spawn(async move {
            if let Err(e) = kv.put(&key, value.into()).await {
                warn!(metric = %key, error = %e, "cannot share a metric's metadata");
            }
        });
        Ok(())
    }
}

impl MetricsReader for ClusterMetrics {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> sextant_storage::Result<Vec<SeriesSamples>> {
        Ok(self.read("select", "", matchers, mint, maxt)?.series)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> sextant_storage::Result<Vec<Labels>> {
        let mut labels: Vec<Labels> = self
            .read("series", "", matchers, mint, maxt)?
            .series
            .into_iter()
            .map(|s| s.labels)
            .collect();
        labels.dedup();
        Ok(labels)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> sextant_storage::Result<Vec<String>> {
        Ok(self
            .read("label_names", "", matchers, mint, maxt)?
            .names
            .into_iter()
            .collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> sextant_storage::Result<Vec<String>> {
        Ok(self
            .read("label_values", name, matchers, mint, maxt)?
            .names
            .into_iter()
            .collect())
    }

    fn metadata(&self) -> BTreeMap<String, MetricMetadata> {
        self.metadata.read().expect("metadata").clone()
    }
}

/// Reads from other nodes over HTTP/1.1.
#[derive(Debug, Clone, Copy)]
struct PeerClient;

impl PeerClient {
    async fn read(&self, address: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
        tokio::time::timeout(
            READ_TIMEOUT,
            self.post(address, "/internal/v1/metrics/read", body),
        )
        .await
        .map_err(|_| format!("{address} did not answer within {READ_TIMEOUT:?}"))?
    }

    async fn post(&self, address: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, String> {
        use http_body_util::BodyExt as _;
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect to {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("{address}: {e}"))?;
        tokio::spawn(connection);
        let request = hyper::Request::post(format!("http://{address}{path}"))
            .header(hyper::header::HOST, address)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|e| format!("{address}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{address}: {e}"))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{address}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{address} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::Sample;

    #[test]
    fn a_large_batch_becomes_records_under_the_limit_and_loses_nothing() {
        let series: Vec<SeriesSamples> = (0..50)
            .map(|i| SeriesSamples {
                labels: Labels::from_pairs([("__name__", format!("m{i}"))]),
                samples: (0..5_000)
                    .map(|t| Sample {
                        timestamp_ms: t,
                        value: t as f64,
                    })
                    .collect(),
            })
            .collect();
        let out = records(series);
        assert!(out.len() > 1);
        let mut samples = 0;
        for record in &out {
            assert!(record.len() <= crate::log::MAX_MESSAGE, "{}", record.len());
            samples += wire::decode_series(record)
                .unwrap()
                .iter()
                .map(|s| s.samples.len())
                .sum::<usize>();
        }
        assert_eq!(samples, 250_000);
    }
}
