//! Partition owners, whatever they store: for every partition this node
//! holds a lease on, an owner claims the partition in the [`Catalog`] under
//! the lease's epoch, opens a fresh engine, replays the partitioned log from
//! the catalog's point and then follows it. After each maintenance the
//! records whose data is all in the object store are behind it: the
//! catalog's point moves past them (a compare-and-swap under the epoch) and
//! the log is trimmed. A lost lease or a refused catalog write ends the
//! owner; whoever holds the partition next replays from the catalog.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _};
use tracing::{info, warn};

use crate::catalog::Catalog;
use crate::{Cluster, Error, PartitionLog};

/// How long a read waits for an owner to apply what its log held when the
/// read began, before it names the partition as lagging.
pub(crate) const READ_PATIENCE: Duration = Duration::from_secs(10);
/// How long an owner goes without a record before it asks whether the log
/// has more than it was given.
const STALL_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often an owner seals, uploads and moves its replay point.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);
/// How often an owner makes what it applied searchable (log and span
/// engines commit; the metrics engine needs nothing).
const TICK_EVERY: Duration = Duration::from_millis(500);

/// What an owner runs on its partition: one of today's engines.
pub(crate) trait Engine: Send + Sync + 'static {
    /// Stores records read from the log; the newest timestamp of each (in
    /// the unit of [`Engine::checkpoint`]), `None` for one that cannot be
    /// read (skipped, with a warning).
    fn apply(&self, records: &[(u64, Bytes)]) -> Result<Vec<Option<i64>>, String>;
    /// Makes what was applied visible to reads.
    fn tick(&self) -> Result<(), String> {
        Ok(())
    }
    /// Maintenance (cut, seal, compact, retention), then the time before
    /// which everything applied is in the object store; `None` while
    /// uploads wait.
    fn checkpoint(&self) -> Option<i64>;
    /// The earliest sample time the engine still takes (ms), when it
    /// refuses older ones, and why.
    fn min_valid(&self) -> Option<crate::catalog::MinValid> {
        None
    }
}

/// One partition this node owns.
pub(crate) struct Owner<E> {
    epoch: u64,
    pub(crate) engine: Arc<E>,
    /// Caught up with the log once: its answers are complete.
    ready: AtomicBool,
    /// Every record before this sequence is visible to reads.
    visible: AtomicU64,
    stop: AtomicBool,
}

type Open<E> = dyn Fn(u32) -> Result<E, String> + Send + Sync;

/// The owners of one kind of data on this node.
pub(crate) struct Owners<E> {
    cluster: Arc<Cluster>,
    pub(crate) log: PartitionLog,
    catalog: Catalog,
    kind: &'static str,
    /// Opens a fresh engine for a partition (on a blocking thread).
    open: Arc<Open<E>>,
    map: RwLock<BTreeMap<u32, Arc<Owner<E>>>>,
    /// Partitions whose owner is starting (claiming, opening, replaying).
    starting: Mutex<BTreeSet<u32>>,
}

impl<E: Engine> Owners<E> {
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        log: PartitionLog,
        catalog: Catalog,
        kind: &'static str,
        open: impl Fn(u32) -> Result<E, String> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            cluster,
            log,
            catalog,
            kind,
            open: Arc::new(open),
            map: RwLock::default(),
            starting: Mutex::default(),
        })
    }

    /// The engines of those of `partitions` this node owns, each once it
    /// has made visible every record its log held when this was called
    /// (waiting up to `patience`): a read through them sees every write
    /// acknowledged before it. The partitions that are not, apart.
    pub(crate) fn consistent(
        &self,
        runtime: &tokio::runtime::Handle,
        partitions: &[u32],
        patience: Duration,
    ) -> (Vec<(u32, Arc<E>)>, Vec<u32>) {
        let mut missing = Vec::new();
        let mut owned = Vec::new();
        for &partition in partitions {
            match self.map.read().expect("owners").get(&partition) {
                Some(owner) if owner.ready.load(Ordering::Relaxed) => {
                    owned.push((partition, owner.clone()));
                }
                _ => missing.push(partition),
            }
        }
        let deadline = Instant::now() + patience;
        let log = self.log.clone();
        let wanted: Vec<u32> = owned.iter().map(|(p, _)| *p).collect();
        // The ends of the partitions' logs, asked again while JetStream
        // does not answer (a leader election, a busy machine).
        let ends = crate::peer::wait(runtime, async move {
            let ask = |partition: u32| {
                let log = log.clone();
                async move {
                    loop {
                        match log.last_sequence(partition).await {
                            Ok(end) => return Ok(end),
                            Err(e) if Instant::now() < deadline => {
                                tracing::debug!(partition, error = %e, "the end of a partition: retried");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            };
            futures_util::future::join_all(wanted.into_iter().map(ask)).await
        });
        let Ok(ends) = ends else {
            missing.extend(owned.iter().map(|(p, _)| *p));
            return (Vec::new(), missing);
        };
        let mut out = Vec::new();
        for ((partition, owner), end) in owned.into_iter().zip(ends) {
            let Ok(end) = end else {
                missing.push(partition);
                continue;
            };
            while owner.visible.load(Ordering::Acquire) <= end && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if owner.visible.load(Ordering::Acquire) > end {
                out.push((partition, owner.engine.clone()));
            } else {
                tracing::warn!(
                    kind = self.kind,
                    partition,
                    "partition lags its log; its answer would be partial"
                );
                missing.push(partition);
            }
        }
        (out, missing)
    }

    /// Partitions this node owns now (caught up or not).
    pub(crate) fn owned(&self) -> Vec<u32> {
        self.map.read().expect("owners").keys().copied().collect()
    }

    /// Stops every owner (a clean stop: the next owner replays from the
    /// catalog; nothing acknowledged is only here).
    pub(crate) fn stop(&self) {
        for owner in self.map.read().expect("owners").values() {
            owner.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Starts and stops owners as this node's leases come and go; runs
    /// until aborted.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            self.reconcile();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn reconcile(self: &Arc<Self>) {
        let held = self.cluster.owned();
        self.map
            .write()
            .expect("owners")
            .retain(|partition, owner| {
                let keep = held.get(partition) == Some(&owner.epoch);
                if !keep {
                    info!(
                        kind = self.kind,
                        partition,
                        epoch = owner.epoch,
                        "partition no longer owned here"
                    );
                    owner.stop.store(true, Ordering::Relaxed);
                }
                keep
            });
        for (partition, epoch) in held {
            if self.map.read().expect("owners").contains_key(&partition)
                || !self.starting.lock().expect("starting").insert(partition)
            {
                continue;
            }
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.own(partition, epoch).await {
                    warn!(kind = this.kind, partition, epoch, error = %e, "partition owner stopped");
                }
                this.starting.lock().expect("starting").remove(&partition);
                let mut map = this.map.write().expect("owners");
                if map.get(&partition).is_some_and(|o| o.epoch == epoch) {
                    map.remove(&partition);
                }
            });
        }
    }

    /// Owns `partition` under `epoch` until told to stop or fenced out.
    async fn own(self: &Arc<Self>, partition: u32, epoch: u64) -> Result<(), Error> {
        let kind = self.kind;
        let node = self.cluster.node_id().to_owned();
        let key = format!("{kind}.p{partition}");
        let Some(mut checkpoint) = self.catalog.claim(&key, epoch, &node).await? else {
            warn!(
                kind,
                partition, epoch, "a later owner has claimed the partition"
            );
            return Ok(());
        };
        let open = self.open.clone();
        let engine = tokio::task::spawn_blocking(move || open(partition))
            .await
            .map_err(|e| {
                Error::JetStream(format!(
                    "opening {kind} partition {partition} panicked: {e}"
                ))
            })?
            .map_err(|e| Error::JetStream(format!("open {kind} partition {partition}: {e}")))?;
        let owner = Arc::new(Owner {
            epoch,
            engine: Arc::new(engine),
            ready: AtomicBool::new(false),
            visible: AtomicU64::new(checkpoint.from.max(1)),
            stop: AtomicBool::new(false),
        });
        if self.cluster.owned().get(&partition) != Some(&epoch) {
            return Ok(());
        }
        self.map
            .write()
            .expect("owners")
            .insert(partition, owner.clone());
        self.starting.lock().expect("starting").remove(&partition);
        info!(
            kind,
            partition,
            epoch,
            from = checkpoint.from,
            "replaying the partition"
        );
        let started = Instant::now();
        let caught_up = |owner: &Owner<E>| {
            if !owner.ready.swap(true, Ordering::Relaxed) {
                info!(
                    kind,
                    partition,
                    secs = started.elapsed().as_secs_f64(),
                    "partition caught up"
                );
            }
        };
        let mut messages = self.log.follow(partition, checkpoint.from).await?;
        // (sequence, newest timestamp) of each record not yet in the bucket.
        let mut unsealed: VecDeque<(u64, i64)> = VecDeque::new();
        let mut next = checkpoint.from.max(1);
        let mut last_checkpoint = Instant::now();
        // The bound writers were last told (through the catalog).
        let mut told_min_valid: Option<crate::catalog::MinValid> = None;
        let mut last_tick = Instant::now();
        let mut untold = false;
        let mut last_message = Instant::now();
        let mut last_stall_check = Instant::now();
        while !owner.stop.load(Ordering::Relaxed) {
            let mut batch = Vec::new();
            let mut pending = u64::MAX;
            match tokio::time::timeout(Duration::from_millis(250), messages.next()).await {
                // Nothing more in the log just now: caught up, unless the
                // consumer is stuck (its NATS server died and it did not
                // move): then it is made again from where it stopped.
                Err(_) => {
                    pending = 0;
                    if last_message.elapsed() >= STALL_CHECK_EVERY
                        && last_stall_check.elapsed() >= STALL_CHECK_EVERY
                    {
                        last_stall_check = Instant::now();
                        let behind = self
                            .log
                            .last_sequence(partition)
                            .await
                            .is_ok_and(|last| last >= next);
                        if behind {
                            warn!(
                                kind,
                                partition,
                                next,
                                "the partition's consumer stalled; following the log again"
                            );
                            messages = self.log.follow(partition, next).await?;
                            last_message = Instant::now();
                            continue;
                        }
                    }
                }
                Ok(None) => return Err(Error::JetStream("the partition's log ended".into())),
                Ok(Some(message)) => {
                    last_message = Instant::now();
                    batch.push(message);
                    while batch.len() < 512 {
                        match messages.next().now_or_never() {
                            Some(Some(message)) => batch.push(message),
                            _ => break,
                        }
                    }
                }
            }
            let mut records = Vec::with_capacity(batch.len());
            for message in batch {
                let message = message
                    .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
                let info = message
                    .info()
                    .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
                pending = info.pending;
                next = info.stream_sequence + 1;
                // A message is one record or a batch of them (the log's
                // batcher): the engine sees records, the sequence is the
                // message's.
                match crate::wire::split_batch(&message.payload) {
                    Ok(parts) => {
                        records.extend(parts.into_iter().map(|r| (info.stream_sequence, r)));
                    }
                    Err(e) => warn!(
                        kind,
                        partition,
                        sequence = info.stream_sequence,
                        error = %e,
                        "an unreadable batch in the log is skipped"
                    ),
                }
            }
            if !records.is_empty() {
                let engine = owner.engine.clone();
                let sequences: Vec<u64> = records.iter().map(|(s, _)| *s).collect();
                let newest = tokio::task::spawn_blocking(move || engine.apply(&records))
                    .await
                    .map_err(|e| Error::JetStream(format!("apply panicked: {e}")))?
                    // The local engine failed (a full disk): stop owning,
                    // so the partition moves to a node that can store it.
                    .map_err(|e| {
                        Error::JetStream(format!(
                            "{kind} partition {partition}'s engine refused a write: {e}"
                        ))
                    })?;
                // The newest time of each message: of all its records.
                let mut by_message: Vec<(u64, Option<i64>)> = Vec::new();
                for (sequence, newest) in sequences.into_iter().zip(newest) {
                    if newest.is_none() {
                        warn!(
                            kind,
                            partition, sequence, "an unreadable record in the log is skipped"
                        );
                    }
                    match by_message.last_mut() {
                        Some((last, time)) if *last == sequence => *time = (*time).max(newest),
                        _ => by_message.push((sequence, newest)),
                    }
                }
                for (sequence, newest) in by_message {
                    if let Some(newest) = newest {
                        unsealed.push_back((sequence, newest));
                    }
                }
                untold = true;
            }
            if untold && (pending == 0 || last_tick.elapsed() >= TICK_EVERY) {
                let engine = owner.engine.clone();
                tokio::task::spawn_blocking(move || engine.tick())
                    .await
                    .map_err(|e| Error::JetStream(format!("commit panicked: {e}")))?
                    .map_err(|e| Error::JetStream(format!("{kind} partition {partition}: {e}")))?;
                last_tick = Instant::now();
                untold = false;
                owner.visible.store(next, Ordering::Release);
            } else if !untold {
                owner.visible.store(next, Ordering::Release);
            }
            if pending == 0 && !untold {
                caught_up(&owner);
            }
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                last_checkpoint = Instant::now();
                let engine = owner.engine.clone();
                let durable = tokio::task::spawn_blocking(move || engine.checkpoint())
                    .await
                    .map_err(|e| Error::JetStream(format!("maintenance panicked: {e}")))?;
                // The replay point moves once what lies before it is in the
                // bucket; the bound writers refuse below whenever it rises
                // (a cut announced), uploads waiting or not.
                let mut from = checkpoint.from;
                if let Some(before) = durable {
                    while unsealed.front().is_some_and(|(_, newest)| *newest < before) {
                        unsealed.pop_front();
                    }
                    from = unsealed.front().map_or(next, |(sequence, _)| *sequence);
                }
                let min_valid = owner.engine.min_valid();
                if from > checkpoint.from || min_valid != told_min_valid {
                    let moved = from > checkpoint.from;
                    if !self
                        .catalog
                        .advance(&key, &mut checkpoint, from, &node, min_valid)
                        .await?
                    {
                        warn!(kind, partition, epoch, "fenced out by a later owner");
                        break;
                    }
                    told_min_valid = min_valid;
                    if moved && let Err(e) = self.log.trim(partition, from).await {
                        warn!(kind, partition, error = %e, "cannot trim the partition's log");
                    }
                }
            }
        }
        Ok(())
    }
}
