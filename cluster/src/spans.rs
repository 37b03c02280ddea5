//! Spans in cluster mode: storage's [`SpanWriter`] and [`SpanReader`] over
//! the partitioned log (`SEXTANT_TRACES`) and the partition owners' span
//! stores, as [`crate::metrics`] does for series.
//!
//! A span's partition is its trace's, so a whole trace lives in one store:
//! a trace by id asks one partition, and the dependency graph (each span
//! joined with its parent) is counted per partition and summed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sextant_model::{SpanKind, SpanRecord};
use sextant_storage::remote::RemoteStore;
use sextant_storage::spans::{SpanStore, SpanStoreConfig, TraceQuery};
use sextant_storage::{SpanReader, SpanWriter};

use crate::catalog::Catalog;
use crate::log::MessageIds;
use crate::owner::{Engine, Owners};
use crate::peer::PeerClient;
use crate::{Cluster, Error, PartitionLog, partition_of};

/// How long the log keeps a span its owner has not trimmed.
const LOG_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const RECORD_BYTES: usize = 768 << 10;
const APPEND_PATIENCE: Duration = Duration::from_secs(20);

/// Where and how partition span stores are opened.
#[derive(Debug, Clone)]
pub struct SpanSettings {
    /// `<data>/cluster/traces`.
    pub dir: PathBuf,
    pub config: SpanStoreConfig,
    pub remote: Arc<RemoteStore>,
}

/// A partition's span store.
struct SpanEngine(SpanStore);

impl Engine for SpanEngine {
    fn apply(&self, records: &[(u64, Bytes)]) -> Result<Vec<Option<i64>>, String> {
        let mut newest = Vec::with_capacity(records.len());
        let mut all = Vec::new();
        for (_, payload) in records {
            let decoded: Option<Vec<SpanRecord>> =
                crate::wire::decode_items(payload).ok().and_then(|items| {
                    items
                        .into_iter()
                        .map(|item| serde_json::from_slice(item).ok())
                        .collect()
                });
            match decoded {
                Some(decoded) => {
                    newest.push(Some(
                        decoded.iter().map(|s| s.start_us).max().unwrap_or(i64::MIN),
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
            tracing::warn!(error = %e, "span partition maintenance failed");
        }
        self.0.durable_before_us()
    }
}

/// What a read asks of some partitions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpanRead {
    pub partitions: Vec<u32>,
    pub call: SpanCall,
}

/// One of [`SpanReader`]'s questions.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SpanCall {
    Services {
        start_us: i64,
        end_us: i64,
    },
    Operations {
        service: String,
        start_us: i64,
        end_us: i64,
    },
    FindTraceIds {
        service: Option<String>,
        operation: Option<String>,
        tags: Vec<(String, String)>,
        min_duration_us: Option<i64>,
        max_duration_us: Option<i64>,
        start_us: i64,
        end_us: i64,
        limit: usize,
    },
    Trace {
        id: String,
    },
    Dependencies {
        start_us: i64,
        end_us: i64,
    },
    Correlated {
        id: String,
        start_us: i64,
        end_us: i64,
        limit: usize,
    },
}

/// Some partitions' answer.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SpanAnswer {
    pub missing: Vec<u32>,
    pub names: BTreeSet<String>,
    pub operations: BTreeSet<(String, SpanKind)>,
    /// Trace ids, each partition's newest first, in partition order.
    pub ids: Vec<Vec<String>>,
    pub spans: Vec<SpanRecord>,
    pub dependencies: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Spans across the cluster, as this node sees them.
pub struct ClusterSpans {
    cluster: Arc<Cluster>,
    log: PartitionLog,
    runtime: tokio::runtime::Handle,
    ids: MessageIds,
    http: PeerClient,
    owners: Arc<Owners<SpanEngine>>,
}

impl std::fmt::Debug for ClusterSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSpans").finish_non_exhaustive()
    }
}

/// The partition a trace lives in.
fn trace_partition(trace_id: &str, partitions: u32) -> u32 {
    partition_of(trace_id.to_ascii_lowercase().as_bytes(), partitions)
}

impl ClusterSpans {
    /// Opens the spans' partitioned log.
    pub async fn open(cluster: Arc<Cluster>, settings: SpanSettings) -> Result<Arc<Self>, Error> {
        let log = cluster.log("traces", LOG_MAX_AGE).await?;
        let catalog = Catalog::open(cluster.jetstream(), cluster.replicas()).await?;
        let owners = Owners::new(
            cluster.clone(),
            log.clone(),
            catalog,
            "traces",
            move |partition| open_store(&settings, partition).map(SpanEngine),
        );
        let http = PeerClient::of(&cluster);
        Ok(Arc::new(Self {
            ids: MessageIds::of(&cluster),
            cluster,
            log,
            runtime: tokio::runtime::Handle::current(),
            http,
            owners,
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
    /// The body of `/internal/v1/traces/read`.
    pub fn read_local(&self, read: &SpanRead) -> Result<SpanAnswer, String> {
        let mut answer = SpanAnswer::default();
        let (engines, missing) =
            self.owners
                .consistent(&self.runtime, &read.partitions, crate::owner::READ_PATIENCE);
        answer.missing = missing;
        for (_, engine) in engines {
            let store = &engine.0;
            let e = |e: sextant_storage::Error| e.to_string();
            match &read.call {
                SpanCall::Services { start_us, end_us } => {
                    answer
                        .names
                        .extend(store.services(*start_us, *end_us).map_err(e)?);
                }
                SpanCall::Operations {
                    service,
                    start_us,
                    end_us,
                } => {
                    answer
                        .operations
                        .extend(store.operations(service, *start_us, *end_us).map_err(e)?);
                }
                SpanCall::FindTraceIds {
                    service,
                    operation,
                    tags,
                    min_duration_us,
                    max_duration_us,
                    start_us,
                    end_us,
                    limit,
                } => {
                    answer.ids.push(
                        store
                            .find_trace_ids(&TraceQuery {
                                service: service.clone(),
                                operation: operation.clone(),
                                tags: tags.clone(),
                                min_duration_us: *min_duration_us,
                                max_duration_us: *max_duration_us,
                                start_us: *start_us,
                                end_us: *end_us,
                                limit: *limit,
                            })
                            .map_err(e)?,
                    );
                }
                SpanCall::Trace { id } => answer.spans.extend(store.trace(id).map_err(e)?),
                SpanCall::Dependencies { start_us, end_us } => {
                    for (parent, child, calls) in
                        store.dependencies(*start_us, *end_us).map_err(e)?
                    {
                        *answer
                            .dependencies
                            .entry(parent)
                            .or_default()
                            .entry(child)
                            .or_default() += calls;
                    }
                }
                SpanCall::Correlated {
                    id,
                    start_us,
                    end_us,
                    limit,
                } => answer.spans.extend(
                    store
                        .correlated(id, *start_us, *end_us, *limit)
                        .map_err(e)?,
                ),
            }
        }
        Ok(answer)
    }

    /// Asks `partitions`; fails naming the ones no owner answered for.
    fn read(
        &self,
        partitions: impl IntoIterator<Item = u32>,
        call: SpanCall,
    ) -> sextant_storage::Result<SpanAnswer> {
        let partitions: Vec<u32> = partitions.into_iter().collect();
        crate::peer::fan_out(
            &self.cluster,
            &self.runtime,
            &self.http,
            || self.owners.owned(),
            &partitions,
            ("traces", "/internal/v1/traces/read"),
            |partitions| SpanRead {
                partitions,
                call: call.clone(),
            },
            |read| self.read_local(read),
            |answer| std::mem::take(&mut answer.missing),
            |merged, answer| {
                merged.missing.extend(answer.missing);
                merged.names.extend(answer.names);
                merged.operations.extend(answer.operations);
                merged.ids.extend(answer.ids);
                merged.spans.extend(answer.spans);
                for (parent, children) in answer.dependencies {
                    let into = merged.dependencies.entry(parent).or_default();
                    for (child, calls) in children {
                        *into.entry(child).or_default() += calls;
                    }
                }
            },
        )
    }

    fn all(&self) -> std::ops::Range<u32> {
        0..self.cluster.partitions()
    }
}

/// A fresh store for `partition` (`<dir>/p<N>/`, splits under `traces/p<N>`).
fn open_store(settings: &SpanSettings, partition: u32) -> Result<SpanStore, String> {
    let dir = settings.dir.join(format!("p{partition}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("clear {}: {e}", dir.display()))?;
    }
    let mut config = settings.config.clone();
    config.splits.remote = Some(settings.remote.clone());
    config.splits.remote_kind = Some(format!("traces/p{partition}"));
    SpanStore::open(&dir, config).map_err(|e| e.to_string())
}

impl SpanWriter for ClusterSpans {
    fn append_spans(&self, spans: &[SpanRecord]) -> sextant_storage::Result<()> {
        let partitions = self.cluster.partitions();
        let mut parts: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for span in spans {
            parts
                .entry(trace_partition(&span.trace_id, partitions))
                .or_default()
                .push(serde_json::to_vec(span).expect("a span serialises"));
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

impl SpanReader for ClusterSpans {
    fn services(&self, start_us: i64, end_us: i64) -> sextant_storage::Result<Vec<String>> {
        Ok(self
            .read(self.all(), SpanCall::Services { start_us, end_us })?
            .names
            .into_iter()
            .collect())
    }

    fn operations(
        &self,
        service: &str,
        start_us: i64,
        end_us: i64,
    ) -> sextant_storage::Result<Vec<(String, SpanKind)>> {
        Ok(self
            .read(
                self.all(),
                SpanCall::Operations {
                    service: service.to_owned(),
                    start_us,
                    end_us,
                },
            )?
            .operations
            .into_iter()
            .collect())
    }

    fn find_trace_ids(&self, query: &TraceQuery) -> sextant_storage::Result<Vec<String>> {
        let answer = self.read(
            self.all(),
            SpanCall::FindTraceIds {
                service: query.service.clone(),
                operation: query.operation.clone(),
                tags: query.tags.clone(),
                min_duration_us: query.min_duration_us,
                max_duration_us: query.max_duration_us,
                start_us: query.start_us,
                end_us: query.end_us,
                limit: query.limit,
            },
        )?;
        // Each partition's newest first, taken in turns: no partition's
        // traces crowd out the others'.
        let mut lists: Vec<std::vec::IntoIter<String>> =
            answer.ids.into_iter().map(Vec::into_iter).collect();
        let mut ids = Vec::new();
        while ids.len() < query.limit {
            let mut any = false;
            for list in &mut lists {
                if let Some(id) = list.next()
                    && ids.len() < query.limit
                {
                    ids.push(id);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        Ok(ids)
    }

    fn trace(&self, trace_id: &str) -> sextant_storage::Result<Vec<SpanRecord>> {
        let partition = trace_partition(trace_id, self.cluster.partitions());
        Ok(self
            .read(
                [partition],
                SpanCall::Trace {
                    id: trace_id.to_owned(),
                },
            )?
            .spans)
    }

    fn dependencies(
        &self,
        start_us: i64,
        end_us: i64,
    ) -> sextant_storage::Result<Vec<(String, String, u64)>> {
        Ok(self
            .read(self.all(), SpanCall::Dependencies { start_us, end_us })?
            .dependencies
            .into_iter()
            .flat_map(|(parent, children)| {
                children
                    .into_iter()
                    .map(move |(child, calls)| (parent.clone(), child, calls))
            })
            .collect())
    }

    fn correlated_spans(
        &self,
        id: &str,
        start_us: i64,
        end_us: i64,
        limit: usize,
    ) -> sextant_storage::Result<Vec<SpanRecord>> {
        let mut spans = self
            .read(
                self.all(),
                SpanCall::Correlated {
                    id: id.to_owned(),
                    start_us,
                    end_us,
                    limit,
                },
            )?
            .spans;
        spans.sort_by_key(|s| s.start_us);
        spans.truncate(limit);
        Ok(spans)
    }
}
