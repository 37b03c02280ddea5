//! The catalog: per partition, the sequence its next owner replays the
//! partitioned log from, in a JetStream key-value bucket (`sextant-catalog`,
//! kept for good).
//!
//! Every write names the epoch of the lease its writer holds and is a
//! compare-and-swap on the revision that writer last saw. A new owner first
//! *claims* the key under its (higher) epoch; from then on every write of
//! an older owner fails, so a stale owner that still believes it holds the
//! partition can never move the replay point past records the new owner has
//! not stored. This, not the lease, is what fences owners.

use async_nats::jetstream::{self, kv};

use crate::Error;
use crate::lease::open_kv;

/// The catalog bucket's name.
pub const BUCKET: &str = "sextant-catalog";

/// The catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    kv: kv::Store,
}

/// A partition's replay point, as its current owner holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The epoch of the owner that wrote it last.
    pub epoch: u64,
    /// The first sequence not yet in the object store: replay starts here.
    pub from: u64,
    revision: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    epoch: u64,
    from: u64,
    node: String,
    /// The partition engine's earliest time it still takes samples at
    /// (ms; metrics only): writers refuse older ones, as a single node does.
    #[serde(default)]
    min_valid_ms: Option<i64>,
    /// Whether that bound is where the retention ends (refused as
    /// `past_retention`), not where the head starts (`out_of_bounds`).
    #[serde(default)]
    min_valid_is_retention: bool,
}

/// The earliest sample time a partition's engine takes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MinValid {
    pub ms: i64,
    /// Older samples are past the retention (else out of bounds).
    pub retention: bool,
}

/// The earliest sample time each partition of `kind` takes, as its owner
/// last wrote it in `entries` (catalog key -> value).
pub(crate) fn min_valid_of(key: &str, value: &[u8]) -> Option<(u32, MinValid)> {
    let partition = key.rsplit_once(".p")?.1.parse().ok()?;
    let entry: Entry = serde_json::from_slice(value).ok()?;
    Some((
        partition,
        MinValid {
            ms: entry.min_valid_ms?,
            retention: entry.min_valid_is_retention,
        },
    ))
}

impl Catalog {
    /// The bucket itself, to watch.
    pub(crate) fn kv(&self) -> &kv::Store {
        &self.kv
    }

    /// Opens (creating) the bucket.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, Error> {
        Ok(Self {
            kv: open_kv(js, BUCKET, replicas, std::time::Duration::ZERO).await?,
        })
    }

    /// Claims `key` for the owner `node` of `epoch`, keeping its replay
    /// point; `None` when an owner of a later epoch has claimed it already
    /// (this one is stale).
    pub async fn claim(
        &self,
        key: &str,
        epoch: u64,
        node: &str,
    ) -> Result<Option<Checkpoint>, Error> {
        let err = |e: &dyn std::fmt::Display| Error::JetStream(format!("catalog {key}: {e}"));
        loop {
            let current = self.kv.entry(key).await.map_err(|e| err(&e))?;
            let (from, revision) = match current {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    let stored: Entry = serde_json::from_slice(&entry.value)
                        .map_err(|e| err(&format!("unreadable entry: {e}")))?;
                    if stored.epoch > epoch {
                        return Ok(None);
                    }
                    (stored.from, Some(entry.revision))
                }
                _ => (0, None),
            };
            let value = encode(epoch, from, node);
            let written = match revision {
                Some(revision) => self.kv.update(key, value, revision).await.map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
                None => self.kv.create(key, value).await.map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
            };
            match written {
                Ok(revision) => {
                    return Ok(Some(Checkpoint {
                        epoch,
                        from,
                        revision,
                    }));
                }
                // Someone wrote between the read and the write: read again.
                Err((true, _)) => continue,
                Err((false, e)) => return Err(err(&e)),
            }
        }
    }

    /// Moves the replay point to `from`; `false` when an owner of a later
    /// epoch has claimed the key since (this owner is fenced out).
    pub async fn advance(
        &self,
        key: &str,
        checkpoint: &mut Checkpoint,
        from: u64,
        node: &str,
        min_valid: Option<MinValid>,
    ) -> Result<bool, Error> {
        let value = serde_json::to_vec(&Entry {
            epoch: checkpoint.epoch,
            from,
            node: node.to_owned(),
            min_valid_ms: min_valid.map(|m| m.ms),
            min_valid_is_retention: min_valid.is_some_and(|m| m.retention),
        })
        .expect("a catalog entry serialises");
        match self.kv.update(key, value.into(), checkpoint.revision).await {
            Ok(revision) => {
                checkpoint.revision = revision;
                checkpoint.from = from;
                Ok(true)
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(Error::JetStream(format!("catalog {key}: {e}"))),
        }
    }
}

fn encode(epoch: u64, from: u64, node: &str) -> bytes::Bytes {
    serde_json::to_vec(&Entry {
        epoch,
        from,
        node: node.to_owned(),
        min_valid_ms: None,
        min_valid_is_retention: false,
    })
    .expect("a catalog entry serialises")
    .into()
}
