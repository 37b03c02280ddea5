//! The partitioned log: one JetStream stream per kind of data
//! (`SEXTANT_METRICS`, ...) with a subject per partition
//! (`sextant.metrics.<partition>`), replicated by NATS. A node that receives
//! a write appends it to its partition's subject and acknowledges its client
//! only once JetStream has; the partition's owner reads the subject from a
//! sequence on, and trims what its sealed blocks hold.
//!
//! Every append carries a message id: JetStream drops a second append with
//! the same id within the stream's duplicate window, so a retried write
//! (the ack lost on the way back) is never stored twice.
//!
//! Writes of requests that arrive together are appended together: each
//! partition has a batcher that gathers what comes in while a small record
//! waits [`LINGER`] for company and while [`IN_FLIGHT`] appends of its
//! partition wait for JetStream, and appends it as one message
//! ([`crate::wire::encode_batch`]). Under load a message carries many
//! requests' records. Every message is compressed whole
//! ([`crate::wire::compress`]): JetStream's cost grows with messages (each
//! is replicated on its own) and with bytes. Each writer is still
//! acknowledged only once its message is stored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::Error;

/// How long JetStream remembers message ids.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// NATS's default largest message; larger writes are split by the caller.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Largest message a batcher makes (below NATS's 1 MiB with headers).
const MAX_BATCH: usize = 900 << 10;
/// Appends of one partition a batcher has waiting for JetStream at once.
const IN_FLIGHT: usize = 2;
/// How long a batcher waits for more after a small record: JetStream's
/// cost goes by messages (each is replicated on its own), and writes that
/// arrive this close together go out as one.
const LINGER: Duration = Duration::from_millis(2);
/// A record at least this large goes out without waiting for others.
const LINGER_BELOW: usize = 128 << 10;

/// One kind of data's partitioned log.
#[derive(Debug, Clone)]
pub struct PartitionLog {
    js: jetstream::Context,
    stream: stream::Stream,
    kind: String,
    partitions: u32,
    /// Each partition's batcher, started at the first [`PartitionLog::append_all`].
    batchers: Arc<OnceLock<Vec<tokio::sync::mpsc::UnboundedSender<Pending>>>>,
}

/// A record waiting in its partition's batcher.
#[derive(Debug)]
struct Pending {
    id: String,
    payload: Bytes,
    deadline: Instant,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Message ids of one process: its node id and start time, then a count,
/// so that no two processes and no two appends share one.
#[derive(Debug)]
pub(crate) struct MessageIds {
    prefix: String,
    next: AtomicU64,
}

impl MessageIds {
    pub(crate) fn of(cluster: &crate::Cluster) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Self {
            prefix: format!("{}-{started:x}", cluster.node_id()),
            next: AtomicU64::new(0),
        }
    }

    /// A number no other call of this process gets.
    pub(crate) fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh message id.
    pub(crate) fn next(&self) -> String {
        format!("{}-{}", self.prefix, self.number())
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The record's sequence in the stream.
    pub sequence: u64,
    /// Whether JetStream already had a record with this message id (the
    /// sequence is then the earlier record's).
    pub duplicate: bool,
}

impl PartitionLog {
    /// Opens (creating) the stream for `kind` (`metrics`, `logs`, `traces`):
    /// records are kept for `max_age` at most, in `replicas` copies.
    pub async fn open(
        js: &jetstream::Context,
        kind: &str,
        partitions: u32,
        replicas: usize,
        max_age: Duration,
    ) -> Result<Self, Error> {
        let name = format!("SEXTANT_{}", kind.to_ascii_uppercase());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![format!("sextant.{kind}.*")],
                num_replicas: replicas,
                max_age,
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(|e| crate::lease::bucket_error(&name, replicas, &e))?;
        Ok(Self {
            js: js.clone(),
            stream,
            kind: kind.to_owned(),
            partitions,
            batchers: Arc::default(),
        })
    }

    fn subject(&self, partition: u32) -> Result<String, Error> {
        if partition >= self.partitions {
            return Err(Error::JetStream(format!(
                "partition {partition} out of 0..{}",
                self.partitions
            )));
        }
        Ok(format!("sextant.{}.{partition}", self.kind))
    }

    /// Appends `payload` to `partition` under message id `id`; returns once
    /// JetStream has stored it (in `replicas` copies).
    pub async fn append(
        &self,
        partition: u32,
        id: &str,
        payload: Bytes,
    ) -> Result<Appended, Error> {
        if payload.len() > MAX_MESSAGE {
            return Err(Error::JetStream(format!(
                "a record of {} bytes is over NATS's {MAX_MESSAGE}",
                payload.len()
            )));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let ack = self
            .js
            .publish_with_headers(self.subject(partition)?, headers, payload)
            .await
            .map_err(|e| Error::JetStream(format!("append to partition {partition}: {e}")))?
            .await
            .map_err(|e| Error::JetStream(format!("append to partition {partition}: {e}")))?;
        Ok(Appended {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Appends every `(partition, message id, payload)` through the
    /// partitions' batchers, each retried for up to `patience` while
    /// JetStream refuses it for now (a stream electing a leader after a
    /// NATS node died); the first failure.
    pub async fn append_all(
        &self,
        records: Vec<(u32, String, Bytes)>,
        patience: Duration,
    ) -> Result<(), Error> {
        let batchers = self.batchers.get_or_init(|| {
            // The batchers' own log has none: when the last handle on this
            // one goes, their channels close and they end.
            let bare = Self {
                batchers: Arc::default(),
                ..self.clone()
            };
            (0..self.partitions)
                .map(|partition| {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    tokio::spawn(bare.clone().batch(partition, rx));
                    tx
                })
                .collect()
        });
        let deadline = Instant::now() + patience;
        let mut waits = Vec::with_capacity(records.len());
        for (partition, id, payload) in records {
            self.subject(partition)?;
            let (done, wait) = tokio::sync::oneshot::channel();
            let pending = Pending {
                id,
                payload,
                deadline,
                done,
            };
            batchers[partition as usize]
                .send(pending)
                .map_err(|_| Error::JetStream("the log's batcher has stopped".into()))?;
            waits.push(wait);
        }
        for wait in futures_util::future::join_all(waits).await {
            wait.map_err(|_| Error::JetStream("the log's batcher has stopped".into()))?
                .map_err(Error::JetStream)?;
        }
        Ok(())
    }

    /// `partition`'s batcher: takes what is waiting, up to [`MAX_BATCH`],
    /// as one message once one of its [`IN_FLIGHT`] appends is free.
    async fn batch(self, partition: u32, mut queue: tokio::sync::mpsc::UnboundedReceiver<Pending>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut carried: Option<Pending> = None;
        loop {
            let first = match carried.take() {
                Some(first) => first,
                None => match queue.recv().await {
                    Some(first) => first,
                    None => return,
                },
            };
            if first.payload.len() < LINGER_BELOW {
                tokio::time::sleep(LINGER).await;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut size = first.payload.len();
            let mut batch = vec![first];
            while let Ok(next) = queue.try_recv() {
                if size + next.payload.len() + 10 > MAX_BATCH {
                    carried = Some(next);
                    break;
                }
                size += next.payload.len() + 10;
                batch.push(next);
            }
            let log = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let (id, message) = if batch.len() == 1 {
                    (
                        batch[0].id.clone(),
                        crate::wire::compress(&batch[0].payload),
                    )
                } else {
                    // The first record's id is unique, and so is this.
                    let records: Vec<Bytes> = batch.iter().map(|p| p.payload.clone()).collect();
                    (
                        format!("{}+{}", batch[0].id, batch.len()),
                        crate::wire::compress(&crate::wire::encode_batch(&records)),
                    )
                };
                let payload = Bytes::from(message);
                let deadline = batch
                    .iter()
                    .map(|p| p.deadline)
                    .min()
                    .unwrap_or_else(Instant::now);
                let done = log
                    .append_until(partition, &id, payload, deadline)
                    .await
                    .map_err(|e| e.to_string());
                for pending in batch {
                    let _ = pending.done.send(done.clone());
                }
            });
        }
    }

    /// [`PartitionLog::append`], retried until `deadline` while JetStream
    /// refuses it.
    async fn append_until(
        &self,
        partition: u32,
        id: &str,
        payload: Bytes,
        deadline: Instant,
    ) -> Result<(), Error> {
        loop {
            match self.append(partition, id, payload.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(partition, error = %e, "append retried");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The sequence of `partition`'s newest record (0: none), from the
    /// stream's leader: a read that waits for its owner to have applied
    /// this much sees every write acknowledged before it began.
    pub async fn last_sequence(&self, partition: u32) -> Result<u64, Error> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.subject(partition)?)
            .await
        {
            Ok(message) => Ok(message.sequence),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(Error::JetStream(format!(
                "the end of partition {partition}: {e}"
            ))),
        }
    }

    /// Appends each partition's items, packed into records of at most
    /// `record_bytes`, each under a fresh message id from `ids`; waits from
    /// this (blocking) thread, and names a failure as the 503 a sender
    /// retries.
    pub(crate) fn append_items_from_blocking(
        &self,
        runtime: &tokio::runtime::Handle,
        parts: std::collections::BTreeMap<u32, Vec<Vec<u8>>>,
        record_bytes: usize,
        ids: &MessageIds,
        patience: Duration,
    ) -> sextant_storage::Result<()> {
        let mut messages = Vec::new();
        for (partition, items) in parts {
            for payload in crate::wire::pack_items(items, record_bytes) {
                messages.push((partition, ids.next(), payload));
            }
        }
        let log = self.clone();
        crate::peer::wait(
            runtime,
            async move { log.append_all(messages, patience).await },
        )?
        .map_err(|e| {
            sextant_storage::Error::Unavailable(format!(
                "the cluster's log did not take the write ({e}); retry"
            ))
        })
    }

    /// Up to `max` records of `partition` from sequence `from` on, in order,
    /// waiting up to `wait` for the first.
    pub async fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<(u64, Bytes)>, Error> {
        let consumer = self
            .stream
            .create_consumer(consumer::pull::Config {
                filter_subject: self.subject(partition)?,
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..consumer::pull::Config::default()
            })
            .await
            .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message
                .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
            let info = message
                .info()
                .map_err(|e| Error::JetStream(format!("read partition {partition}: {e}")))?;
            out.push((info.stream_sequence, message.message.payload.clone()));
        }
        let _ = self
            .stream
            .delete_consumer(&consumer.cached_info().name)
            .await;
        Ok(out)
    }

    /// Every record of `partition` from sequence `from` on, in order, then
    /// each new one as it is appended (an ordered consumer: NATS recreates
    /// it from the last sequence seen if it is lost).
    pub async fn follow(
        &self,
        partition: u32,
        from: u64,
    ) -> Result<consumer::pull::Ordered, Error> {
        self.stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: self.subject(partition)?,
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ..consumer::pull::OrderedConfig::default()
            })
            .await
            .map_err(|e| Error::JetStream(format!("follow partition {partition}: {e}")))?
            .messages()
            .await
            .map_err(|e| Error::JetStream(format!("follow partition {partition}: {e}")))
    }

    /// Drops `partition`'s records before sequence `keep_from` (what the
    /// partition's sealed blocks hold).
    pub async fn trim(&self, partition: u32, keep_from: u64) -> Result<(), Error> {
        self.stream
            .purge()
            .filter(self.subject(partition)?)
            .sequence(keep_from)
            .await
            .map(drop)
            .map_err(|e| Error::JetStream(format!("trim partition {partition}: {e}")))
    }
}
