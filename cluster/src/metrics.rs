//! Metrics in cluster mode: storage's [`MetricsWriter`] and
//! [`MetricsReader`] over the partitioned log and the partition owners.
//!
//! **Writes.** A batch is split by the partition of each series
//! ([`crate::partition_of`] its labels), each part appended to its partition's
//! subject with a message id, and the batch is acknowledged once JetStream
//! has stored every part. A part that cannot be stored fails the batch
//! (503): the sender retries, and a sample written twice is the same sample
//! at the same timestamp, which the engine keeps once.
//!
//! **Owners.** For every partition this node holds a lease on, an owner
//! claims the partition in the [`Catalog`] under the lease's epoch, opens a
//! fresh engine (`<dir>/p<N>/`, blocks under `metrics/p<N>` in the object
//! store), replays the log from the catalog's point and then follows it.
//! Samples older than the head's start are backfill, kept in the head until
//! the next cut writes them into blocks, as on a single node; writers
//! refuse only what the owner would (past the retention, published in the
//! catalog). After each maintenance (head cut, compaction, retention,
//! uploads) the records whose samples are all in uploaded blocks are behind
//! it: the
//! catalog's point moves past them (a compare-and-swap under the epoch) and
//! the log is trimmed. A lost lease or a refused catalog write ends the
//! owner; whoever holds the partition next replays from the catalog.
//!
//! **Reads.** A query asks every partition: its own through their engines,
//! the others' owners over HTTP (`POST /internal/v1/metrics/read`, answered
//! by [`ClusterMetrics::read_local`]); series of different partitions are
//! different series, so the answers are merged by label order. A partition
//! that no owner answers for (within a few seconds' patience) is left out
//! and the read is noted as partial ([`sextant_storage::partial`]): the
//! query's `warnings` name it; never a silent gap.

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt as _;
use sextant_model::{Labels, MatchOp, Matcher, PromDuration};
use sextant_storage::remote::RemoteStore;
use sextant_storage::tsdb::RejectReason;
use sextant_storage::{
    AppendReport, LazySeries, MetricMetadata, MetricsReader, MetricsWriter, PairBatch, PairSeries,
    RefSeries, SeriesHistograms, SeriesSamples, Tsdb, TsdbConfig, TsdbStats,
};
use tracing::warn;

use crate::catalog::{Catalog, MinValid};
use crate::owner::{Engine, Owners};
use crate::peer::PeerClient;
use crate::wire::{self, Reader, Writer};
use crate::{Cluster, Error, PartitionLog};

/// How long the log keeps a record its owner has not trimmed.
const LOG_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest record a write makes (below NATS's 1 MiB message).
const RECORD_BYTES: usize = 768 << 10;
/// How long a write keeps retrying an append JetStream refuses for now
/// (a stream electing a leader after a NATS node died).
const APPEND_PATIENCE: Duration = Duration::from_secs(20);
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

/// Metrics across the cluster, as this node sees them.
pub struct ClusterMetrics {
    cluster: Arc<Cluster>,
    log: PartitionLog,
    metadata_kv: kv::Store,
    runtime: tokio::runtime::Handle,
    /// Message ids: this node, its start, a counter.
    ids: crate::log::MessageIds,
    owners: Arc<Owners<MetricsEngine>>,
    metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    /// Per partition, the earliest sample time its owner takes, from the
    /// catalog: older samples are refused here, as a single node refuses
    /// them, rather than acknowledged and then dropped by the owner.
    min_valid: RwLock<HashMap<u32, MinValid>>,
    catalog: Catalog,
    stats: Arc<TsdbStats>,
    http: PeerClient,
}

/// A partition's time-series engine, with the reference the engine gave
/// each series it has seen: a record's series are looked up by their label
/// strings in the record, without building their labels again.
///
/// Samples older than the head's start are backfill, taken as a single
/// node takes them: a record holding some stays in the log until a cut has
/// written them into blocks in the bucket ([`Tsdb::durable_before`] says
/// nothing while backfill waits). Writers refuse only what the engine
/// would (past the retention, or the configured out-of-order window).
struct MetricsEngine {
    tsdb: Arc<Tsdb>,
    known: Mutex<HashMap<u64, Vec<(Labels, u64)>>>,
}

impl MetricsEngine {
    fn new(tsdb: Arc<Tsdb>) -> Self {
        // The log is the durable copy, replayed into a fresh engine on
        // takeover: the engine's WAL would never be read.
        tsdb.log_nothing();
        Self {
            tsdb,
            known: Mutex::default(),
        }
    }
}

/// Series references kept per partition before the map starts over.
const KNOWN_SERIES: usize = 4_000_000;

/// The newest sample time of a record's series.
fn newest_ms<'a>(series: impl Iterator<Item = &'a [sextant_model::Sample]>) -> i64 {
    series
        .filter_map(|s| s.iter().map(|x| x.timestamp_ms).max())
        .max()
        .unwrap_or(i64::MIN)
}

impl Engine for MetricsEngine {
    fn apply(&self, records: &[(u64, Bytes)]) -> Result<Vec<Option<i64>>, String> {
        let mut newest = Vec::with_capacity(records.len());
        let mut raw = Vec::with_capacity(records.len());
        let mut first_version = Vec::new();
        let mut histograms: Vec<SeriesHistograms> = Vec::new();
        let mut exemplars: Vec<(Labels, sextant_model::Exemplar)> = Vec::new();
        for (_, payload) in records {
            if wire::is_exemplars(payload) {
                match wire::decode_exemplars(payload) {
                    Ok(more) => {
                        let newest_ms = more.iter().map(|(_, e)| e.timestamp_ms).max();
                        newest.push(Some(newest_ms.unwrap_or(i64::MIN)));
                        exemplars.extend(more);
                    }
                    Err(_) => newest.push(None),
                }
                continue;
            }
            if wire::is_histograms(payload) {
                match wire::decode_histograms(payload) {
                    Ok(series) => {
                        let newest_ms = series
                            .iter()
                            .flat_map(|s| s.samples.iter().map(|h| h.timestamp_ms))
                            .max()
                            .unwrap_or(i64::MIN);
                        newest.push(Some(newest_ms));
                        histograms.extend(series);
                    }
                    Err(_) => newest.push(None),
                }
                continue;
            }
            if payload.first() == Some(&1) {
                // Written by a version before the symbol table.
                match wire::decode_series(payload) {
                    Ok(series) => {
                        newest.push(Some(newest_ms(series.iter().map(|s| &s.samples[..]))));
                        first_version.extend(series);
                    }
                    Err(_) => newest.push(None),
                }
                continue;
            }
            match wire::decode_series_raw(payload) {
                Ok(record) => {
                    newest.push(Some(newest_ms(record.iter().map(|s| s.samples))));
                    raw.push(record);
                }
                Err(_) => newest.push(None),
            }
        }
        let decoded: Vec<PairSeries<'_, '_>> = raw.iter().flat_map(|r| r.iter()).collect();
        let mut scratch: Vec<u8> = Vec::with_capacity(256);
        let hashes: Vec<u64> = decoded
            .iter()
            .map(|s| {
                // The map's own key: quicker than the placement hash, and
                // never stored or sent.
                scratch.clear();
                for (name, value) in s.labels {
                    scratch.extend_from_slice(name.as_bytes());
                    scratch.push(0xff);
                    scratch.extend_from_slice(value.as_bytes());
                    scratch.push(0xff);
                }
                xxhash_rust::xxh64::xxh64(&scratch, 0)
            })
            .collect();
        // The map is this partition's alone: held while the engine appends,
        // it lends the labels and references of the series it knows.
        let mut known = self.known.lock().expect("known series");
        if known.len() > KNOWN_SERIES {
            known.clear();
        }
        // Where each series is in the map, or its labels built now.
        let mut slots: Vec<Option<usize>> = Vec::with_capacity(decoded.len());
        let mut fresh: Vec<Option<Labels>> = Vec::with_capacity(decoded.len());
        for (series, hash) in decoded.iter().zip(&hashes) {
            let slot = known
                .get(hash)
                .and_then(|v| v.iter().position(|(l, _)| series.is(l)));
            fresh.push(slot.is_none().then(|| series.labels()));
            slots.push(slot);
        }
        let mut batch: Vec<RefSeries<'_>> = Vec::with_capacity(decoded.len());
        for (((series, hash), slot), fresh) in decoded.iter().zip(&hashes).zip(&slots).zip(&fresh) {
            let (labels, series_ref) = match (slot, fresh) {
                (Some(slot), _) => {
                    let (labels, reference) = &known[hash][*slot];
                    (labels, *reference)
                }
                (None, Some(labels)) => (labels, 0),
                (None, None) => unreachable!("a series is known or built"),
            };
            batch.push(RefSeries {
                labels,
                series_ref,
                samples: series.samples,
            });
        }
        // Refusals (out of bounds, limits) are counted by the engine.
        self.tsdb
            .append_ref_series(&mut batch)
            .map_err(|e| e.to_string())?;
        let refs: Vec<u64> = batch.iter().map(|b| b.series_ref).collect();
        drop(batch);
        if !first_version.is_empty() {
            self.tsdb
                .append(&first_version)
                .map_err(|e| e.to_string())?;
        }
        if !histograms.is_empty() {
            self.tsdb
                .append_histograms(&histograms)
                .map_err(|e| e.to_string())?;
        }
        if !exemplars.is_empty() {
            self.tsdb
                .append_exemplars(&exemplars)
                .map_err(|e| e.to_string())?;
        }
        for (((hash, slot), fresh), reference) in hashes.iter().zip(slots).zip(fresh).zip(refs) {
            let entries = known.entry(*hash).or_default();
            match (slot, fresh) {
                (Some(slot), _) => entries[slot].1 = reference,
                (None, Some(labels)) => match entries.iter_mut().find(|(l, _)| *l == labels) {
                    // The same series twice in these records.
                    Some(entry) => entry.1 = reference,
                    None => entries.push((labels, reference)),
                },
                (None, None) => {}
            }
        }
        Ok(newest)
    }

    fn min_valid(&self) -> Option<MinValid> {
        let (ms, reason) = self.tsdb.oldest_taken();
        Some(MinValid {
            ms,
            retention: reason == RejectReason::PastRetention,
        })
    }

    fn checkpoint(&self) -> Option<i64> {
        if let Err(e) = self.tsdb.maintain() {
            warn!(error = %e, "partition maintenance failed");
        }
        self.tsdb.durable_before()
    }
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
    /// For a `select_data` read, each series' histogram samples.
    histograms: Vec<Vec<sextant_model::HistogramSample>>,
    /// For an `exemplars` read, each series' exemplars.
    exemplars: Vec<(Labels, Vec<sextant_model::Exemplar>)>,
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
        let stats = settings.stats.clone();
        let owners = Owners::new(
            cluster.clone(),
            log.clone(),
            catalog.clone(),
            "metrics",
            move |partition| open_engine(&settings, partition).map(MetricsEngine::new),
        );
        let metadata_kv = crate::lease::open_kv(
            cluster.jetstream(),
            METADATA_BUCKET,
            cluster.replicas(),
            Duration::ZERO,
        )
        .await?;
        let http = PeerClient::of(&cluster);
        Ok(Arc::new(Self {
            ids: crate::log::MessageIds::of(&cluster),
            cluster,
            log,
            metadata_kv,
            runtime: tokio::runtime::Handle::current(),
            owners,
            metadata: RwLock::default(),
            min_valid: RwLock::default(),
            catalog,
            stats,
            http,
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
        let _bounds = AbortOnDrop(tokio::spawn(self.clone().watch_bounds()));
        self.owners.clone().run().await;
    }

    /// Stops every owner (a clean stop: the next owner replays from the
    /// catalog; nothing acknowledged is only here).
    pub fn stop(&self) {
        self.owners.stop();
    }

    /// Keeps `min_valid` in step with what the owners write in the catalog.
    async fn watch_bounds(self: Arc<Self>) {
        loop {
            match self.catalog.kv().watch_all_from_revision(1).await {
                Ok(mut entries) => {
                    while let Some(entry) = entries.next().await {
                        let Ok(entry) = entry else { break };
                        if !entry.key.starts_with("metrics.p") {
                            continue;
                        }
                        if let Some((partition, min_valid)) =
                            crate::catalog::min_valid_of(&entry.key, &entry.value)
                        {
                            self.min_valid
                                .write()
                                .expect("bounds")
                                .insert(partition, min_valid);
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot watch the catalog"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
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

    fn wait<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> sextant_storage::Result<T> {
        crate::peer::wait(&self.runtime, fut)
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
        if !matches!(
            request.op.as_str(),
            "select" | "select_data" | "exemplars" | "series" | "label_names" | "label_values"
        ) {
            return Err(format!("unknown read {:?}", request.op));
        }
        let (engines, missing) = self.owners.consistent(
            &self.runtime,
            &request.partitions,
            crate::owner::READ_PATIENCE,
        );
        let mut answer = Answer::default();
        for (partition, engine) in &engines {
            let (tsdb, mint, maxt) = (&engine.tsdb, request.mint, request.maxt);
            let done = match request.op.as_str() {
                "select" => tsdb
                    .select(&matchers, mint, maxt)
                    .map(|s| answer.series.extend(s)),
                "select_data" => tsdb.select_lazy(&matchers, mint, maxt).and_then(|all| {
                    for s in all {
                        let (samples, histograms) = s.data()?;
                        if samples.is_empty() && histograms.is_empty() {
                            continue;
                        }
                        answer.series.push(SeriesSamples {
                            labels: s.labels,
                            samples,
                        });
                        answer.histograms.push(histograms);
                    }
                    Ok(())
                }),
                "exemplars" => {
                    answer.exemplars.extend(tsdb.exemplars(
                        std::slice::from_ref(&matchers),
                        mint,
                        maxt,
                    ));
                    Ok(())
                }
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
        for (i, s) in answer.series.iter().enumerate() {
            w.series(s);
            if request.op == "select_data" {
                w.histograms(answer.histograms.get(i).map_or(&[], Vec::as_slice));
            }
        }
        w.varint(answer.names.len() as u64);
        for n in &answer.names {
            w.str(n);
        }
        if request.op == "exemplars" {
            w.varint(answer.exemplars.len() as u64);
            for (labels, exemplars) in &answer.exemplars {
                w.labels(labels);
                w.varint(exemplars.len() as u64);
                for e in exemplars {
                    w.exemplar(e);
                }
            }
        }
        Ok(w.finish())
    }

    /// Asks every partition, merges, and notes the partitions no owner
    /// answered for.
    fn read(
        &self,
        op: &str,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> sextant_storage::Result<Answer> {
        let all: Vec<u32> = (0..self.cluster.partitions()).collect();
        let route = crate::peer::route_patiently(
            &self.cluster,
            || self.owners.owned(),
            &all,
            crate::owner::READ_PATIENCE,
        );
        let mut missing = route.missing;
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
        let mut bodies: Vec<Result<Vec<u8>, String>> = vec![self.read_local(&request(route.local))];
        let mut remote = Vec::new();
        for (address, partitions) in route.remote {
            let body =
                serde_json::to_vec(&request(partitions.clone())).expect("a request serialises");
            let http = self.http.clone();
            remote.push((partitions, async move {
                http.post(&address, "/internal/v1/metrics/read", body).await
            }));
        }
        let (remote_partitions, calls): (Vec<_>, Vec<_>) = remote.into_iter().unzip();
        let answers = self.wait(futures_util::future::join_all(calls))?;
        for (partitions, answer) in remote_partitions.into_iter().zip(answers) {
            match answer {
                Ok(body) => bodies.push(Ok(body)),
                Err(e) if crate::peer::refused_as_bad(&e) => {
                    return Err(sextant_storage::Error::BadQuery(e));
                }
                Err(e) => {
                    warn!(error = %e, "a node did not answer a read");
                    missing.extend(partitions);
                }
            }
        }
        let mut merged = Answer::default();
        for body in bodies {
            let body = body.map_err(sextant_storage::Error::BadQuery)?;
            decode_answer(&body, op, &mut merged, &mut missing).map_err(|e| {
                sextant_storage::Error::Unavailable(format!("a node's answer: {e}"))
            })?;
        }
        if !missing.is_empty() {
            sextant_storage::partial::note(crate::peer::partial("metrics", &missing));
        }
        if merged.histograms.is_empty() {
            merged.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        } else {
            let mut both: Vec<_> = std::mem::take(&mut merged.series)
                .into_iter()
                .zip(std::mem::take(&mut merged.histograms))
                .collect();
            both.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
            (merged.series, merged.histograms) = both.into_iter().unzip();
        }
        Ok(merged)
    }
}

fn decode_answer(
    body: &[u8],
    op: &str,
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
        if op == "select_data" {
            into.histograms.push(r.histograms()?);
        }
    }
    let n = r.count(1)?;
    for _ in 0..n {
        into.names.insert(r.str()?.to_owned());
    }
    if op == "exemplars" {
        let n = r.count(2)?;
        for _ in 0..n {
            let labels = r.labels()?;
            let count = r.count(18)?;
            let mut exemplars = Vec::with_capacity(count);
            for _ in 0..count {
                exemplars.push(r.exemplar()?);
            }
            into.exemplars.push((labels, exemplars));
        }
    }
    Ok(())
}

/// The partition a series is placed in: by its labels, names and values
/// separated ([`crate::pairs_hash`]).
fn series_partition(labels: &[(&str, &str)], partitions: u32) -> u32 {
    crate::partition_of_hash(crate::pairs_hash(labels.iter().copied()), partitions)
}

/// Splits a batch into records of at most [`RECORD_BYTES`] (a series with
/// more samples than fit is split across records).
fn encode_records(series: Vec<PairSeries<'_, '_>>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut current: Vec<PairSeries<'_, '_>> = Vec::new();
    let mut pieces: Vec<PairSeries<'_, '_>> = Vec::new();
    let mut size = 0;
    let flush = |current: &mut Vec<PairSeries<'_, '_>>, out: &mut Vec<Bytes>| {
        if !current.is_empty() {
            out.push(Bytes::from(wire::encode_series_refs(current)));
            current.clear();
        }
    };
    for s in series {
        let label_bytes: usize = s.labels.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        let per_record = ((RECORD_BYTES / 2).saturating_sub(label_bytes) / 16).max(1);
        if s.samples.len() <= per_record {
            let bytes = label_bytes + s.samples.len() * 16 + 8;
            if size + bytes > RECORD_BYTES {
                flush(&mut current, &mut out);
                size = 0;
            }
            size += bytes;
            current.push(s);
            continue;
        }
        // Too many samples for one record: pieces of their own.
        for samples in s.samples.chunks(per_record) {
            pieces.push(PairSeries {
                labels: s.labels,
                samples,
            });
        }
    }
    flush(&mut current, &mut out);
    for piece in &pieces {
        out.push(Bytes::from(wire::encode_series_refs(&[*piece])));
    }
    out
}

/// The earliest sample time a partition takes and what an older one is
/// refused as (nothing refused before its owner has said).
fn refusal(bound: Option<&MinValid>) -> (i64, RejectReason) {
    match bound {
        Some(b) if b.retention => (b.ms, RejectReason::PastRetention),
        Some(b) => (b.ms, RejectReason::OutOfBounds),
        None => (i64::MIN, RejectReason::OutOfBounds),
    }
}

impl MetricsWriter for ClusterMetrics {
    fn append(&self, batch: &[SeriesSamples]) -> sextant_storage::Result<AppendReport> {
        self.append_pairs(&PairBatch::of_series(batch))
    }

    fn append_pairs(&self, batch: &PairBatch<'_>) -> sextant_storage::Result<AppendReport> {
        let partitions = self.cluster.partitions();
        let mut report = AppendReport::default();
        // Each series' partition, and the samples its partition takes when
        // some are older than that (the series index and what is kept).
        let mut placed: Vec<u32> = Vec::with_capacity(batch.len());
        let mut trimmed: Vec<(usize, Vec<sextant_model::Sample>)> = Vec::new();
        {
            let bounds = self.min_valid.read().expect("bounds");
            for (i, series) in batch.iter().enumerate() {
                let partition = series_partition(series.labels, partitions);
                placed.push(partition);
                let (min_valid, reason) = refusal(bounds.get(&partition));
                let old = series
                    .samples
                    .iter()
                    .filter(|s| s.timestamp_ms < min_valid)
                    .count();
                if old > 0 {
                    let labels = series.labels();
                    report.reject(reason, old as u64, &labels);
                    self.stats.reject(reason, old as u64);
                    let kept = series
                        .samples
                        .iter()
                        .filter(|s| s.timestamp_ms >= min_valid)
                        .copied()
                        .collect();
                    trimmed.push((i, kept));
                }
            }
        }
        let mut trimmed = trimmed.iter().peekable();
        let mut parts: BTreeMap<u32, Vec<PairSeries<'_, '_>>> = BTreeMap::new();
        let mut total = 0u64;
        for ((i, mut series), partition) in batch.iter().enumerate().zip(placed) {
            if let Some((_, kept)) = trimmed.next_if(|(at, _)| *at == i) {
                series.samples = kept.as_slice();
            }
            if series.samples.is_empty() {
                continue;
            }
            total += series.samples.len() as u64;
            parts.entry(partition).or_default().push(series);
        }
        let mut records = Vec::new();
        for (partition, series) in parts {
            for record in encode_records(series) {
                records.push((partition, self.ids.next(), record));
            }
        }
        let log = self.log.clone();
        self.wait(async move { log.append_all(records, APPEND_PATIENCE).await })?
            .map_err(|e| {
                sextant_storage::Error::Unavailable(format!(
                    "the cluster's log did not take the write ({e}); retry"
                ))
            })?;
        report.accepted = total;
        Ok(report)
    }

    /// Each exemplar to its series' partition; its owner's engine keeps
    /// them as a single node does (bounded, duplicates taken once). All
    /// that the log stored count as taken.
    fn append_exemplars(
        &self,
        exemplars: &[(Labels, sextant_model::Exemplar)],
    ) -> sextant_storage::Result<usize> {
        let partitions = self.cluster.partitions();
        let mut parts: BTreeMap<u32, Vec<&(Labels, sextant_model::Exemplar)>> = BTreeMap::new();
        for item in exemplars {
            if item.1.invalid().is_some() {
                continue;
            }
            let pairs: Vec<(&str, &str)> = item.0.iter().map(|l| (&*l.name, &*l.value)).collect();
            parts
                .entry(series_partition(&pairs, partitions))
                .or_default()
                .push(item);
        }
        let taken = parts.values().map(Vec::len).sum();
        let mut records = Vec::new();
        for (partition, items) in parts {
            // Exemplars are small (labels of 128 characters at most).
            for part in items.chunks(1000) {
                records.push((
                    partition,
                    self.ids.next(),
                    Bytes::from(wire::encode_exemplars(part)),
                ));
            }
        }
        if records.is_empty() {
            return Ok(0);
        }
        let log = self.log.clone();
        self.wait(async move { log.append_all(records, APPEND_PATIENCE).await })?
            .map_err(|e| {
                sextant_storage::Error::Unavailable(format!(
                    "the cluster's log did not take the write ({e}); retry"
                ))
            })?;
        Ok(taken)
    }

    /// As floats: each series to its partition's log, samples older than
    /// the partition's bound refused here; the owner's engine validates
    /// and counts the rest as a single node does.
    fn append_histograms(
        &self,
        batch: &[SeriesHistograms],
    ) -> sextant_storage::Result<AppendReport> {
        let partitions = self.cluster.partitions();
        let mut report = AppendReport::default();
        // Per partition, each series' samples as one-sample chunks.
        type Encoded<'b> = Vec<(&'b Labels, Vec<Vec<u8>>)>;
        let mut parts: BTreeMap<u32, Encoded<'_>> = BTreeMap::new();
        let mut total = 0u64;
        {
            let bounds = self.min_valid.read().expect("bounds");
            for series in batch {
                let pairs: Vec<(&str, &str)> = series
                    .labels
                    .iter()
                    .map(|l| (&*l.name, &*l.value))
                    .collect();
                let partition = series_partition(&pairs, partitions);
                let (min_valid, reason) = refusal(bounds.get(&partition));
                let mut encoded = Vec::with_capacity(series.samples.len());
                for s in &series.samples {
                    if s.timestamp_ms < min_valid {
                        report.reject(reason, 1, &series.labels);
                        self.stats.reject(reason, 1);
                        continue;
                    }
                    match sextant_storage::tsdb::histogram_bytes(s.timestamp_ms, &s.value) {
                        Some(bytes) => encoded.push(bytes),
                        None => {
                            report.reject(RejectReason::InvalidHistogram, 1, &series.labels);
                            self.stats.reject(RejectReason::InvalidHistogram, 1);
                        }
                    }
                }
                if !encoded.is_empty() {
                    total += encoded.len() as u64;
                    parts
                        .entry(partition)
                        .or_default()
                        .push((&series.labels, encoded));
                }
            }
        }
        let mut records = Vec::new();
        for (partition, series) in parts {
            // Records under the size limit; a series too large for one is split.
            let mut current: Vec<(&Labels, &[Vec<u8>])> = Vec::new();
            let mut size = 0;
            for (labels, samples) in &series {
                let mut start = 0;
                while start < samples.len() {
                    let mut end = start;
                    let mut bytes = 0;
                    while end < samples.len()
                        && (end == start || size + bytes + samples[end].len() + 8 <= RECORD_BYTES)
                    {
                        bytes += samples[end].len() + 8;
                        end += 1;
                    }
                    if size + bytes > RECORD_BYTES && !current.is_empty() {
                        records.push((
                            partition,
                            self.ids.next(),
                            Bytes::from(wire::encode_histograms(&current)),
                        ));
                        current.clear();
                        size = 0;
                        continue;
                    }
                    size += bytes;
                    current.push((labels, &samples[start..end]));
                    start = end;
                }
            }
            if !current.is_empty() {
                records.push((
                    partition,
                    self.ids.next(),
                    Bytes::from(wire::encode_histograms(&current)),
                ));
            }
        }
        let log = self.log.clone();
        self.wait(async move { log.append_all(records, APPEND_PATIENCE).await })?
            .map_err(|e| {
                sextant_storage::Error::Unavailable(format!(
                    "the cluster's log did not take the write ({e}); retry"
                ))
            })?;
        report.accepted = total;
        Ok(report)
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

    /// Floats and native histograms, read from every partition at once.
    fn select_lazy(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> sextant_storage::Result<Vec<LazySeries<'_>>> {
        let answer = self.read("select_data", "", matchers, mint, maxt)?;
        Ok(answer
            .series
            .into_iter()
            .zip(answer.histograms)
            .map(|(s, histograms)| {
                let samples = s.samples;
                LazySeries::with_histograms(s.labels, move || {
                    Ok((samples.clone(), histograms.clone()))
                })
            })
            .collect())
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

    /// Each matcher set asks every partition; a series two sets select is
    /// listed once.
    fn exemplars(
        &self,
        matcher_sets: &[Vec<Matcher>],
        start_ms: i64,
        end_ms: i64,
    ) -> sextant_storage::Result<Vec<(Labels, Vec<sextant_model::Exemplar>)>> {
        let mut by_series: BTreeMap<Labels, Vec<sextant_model::Exemplar>> = BTreeMap::new();
        for matchers in matcher_sets {
            let answer = self.read("exemplars", "", matchers, start_ms, end_ms)?;
            for (labels, exemplars) in answer.exemplars {
                by_series.entry(labels).or_insert(exemplars);
            }
        }
        Ok(by_series.into_iter().collect())
    }
}

/// A fresh engine for `partition` (`<dir>/p<N>/`, blocks under
/// `metrics/p<N>` in the bucket).
fn open_engine(settings: &MetricsSettings, partition: u32) -> Result<Arc<Tsdb>, String> {
    let dir = settings.dir.join(format!("p{partition}"));
    let mut config = settings.config.clone();
    // The log is the durable copy: the engine writes no WAL
    // ([`MetricsEngine::new`]), and what it has need not sync.
    config.wal_fsync = sextant_storage::tsdb::FsyncPolicy::Never;
    // What an earlier owner here left is stale: the log and the bucket
    // hold everything, from the catalog's point.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
    }
    let kind = format!("metrics/p{partition}");
    Tsdb::open_in_bucket(
        &dir,
        config,
        settings.retention,
        settings.stats.clone(),
        Some((settings.remote.clone(), &kind)),
    )
    .map(Arc::new)
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_model::Sample;

    #[test]
    fn a_series_is_placed_by_its_labels_as_it_always_was() {
        let labels = [("__name__", "up"), ("job", "node")];
        let key = b"__name__\xffup\xffjob\xffnode\xff";
        for partitions in [1, 7, 16, 64] {
            assert_eq!(
                series_partition(&labels, partitions),
                crate::partition_of(key, partitions)
            );
        }
        // Moving a series would split it across two owners.
        assert_eq!(series_partition(&labels, 16), 2);
    }

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
        let pairs = PairBatch::of_series(&series);
        let out = encode_records(pairs.iter().collect());
        assert!(out.len() > 1);
        let mut samples = 0;
        for record in &out {
            assert!(record.len() <= crate::log::MAX_MESSAGE, "{}", record.len());
            samples += wire::decode_series_raw(record)
                .unwrap()
                .iter()
                .map(|s| s.samples.len())
                .sum::<usize>();
        }
        assert_eq!(samples, 250_000);
    }
}
