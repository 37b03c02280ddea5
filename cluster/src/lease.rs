//! Leases in a JetStream key-value bucket.
//!
//! A lease is a key whose value names its holder. It is taken with a create
//! (which fails while the key exists), renewed with an update that names the
//! revision the holder last wrote (which fails once anyone else has written
//! it), and it ends when its holder deletes it or stops renewing: the bucket
//! keeps a value for [`LEASE_TTL`], so an unrenewed key
//! disappears. The revision of the create is the lease's epoch.

use async_nats::jetstream::{self, kv};

use crate::{Error, LEASE_TTL};

/// The lease bucket's name.
pub const BUCKET: &str = "sextant-leases";

/// A lease held by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The key, e.g. `partition.3`.
    pub key: String,
    /// The revision that created it: grows with every new holder.
    pub epoch: u64,
    /// The revision this holder last wrote.
    revision: u64,
}

/// The lease bucket, as one node uses it.
#[derive(Debug, Clone)]
pub struct Leases {
    kv: kv::Store,
    node: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Holder {
    node: String,
}

impl Leases {
    /// Opens (creating) the bucket.
    pub async fn open(js: &jetstream::Context, node: &str, replicas: usize) -> Result<Self, Error> {
        let kv = open_bucket(js, BUCKET, replicas).await?;
        Ok(Self {
            kv,
            node: node.to_owned(),
        })
    }

    fn value(&self) -> bytes::Bytes {
        serde_json::to_vec(&Holder {
            node: self.node.clone(),
        })
        .expect("a holder serialises")
        .into()
    }

    /// Takes `key` if nobody holds it.
    pub async fn acquire(&self, key: &str) -> Result<Option<Lease>, Error> {
        match self.kv.create(key, self.value()).await {
            Ok(revision) => Ok(Some(Lease {
                key: key.to_owned(),
                epoch: revision,
                revision,
            })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(Error::JetStream(format!("take lease {key}: {e}"))),
        }
    }

    /// Renews `lease`; `false` when someone else holds it now.
    pub async fn renew(&self, lease: &mut Lease) -> Result<bool, Error> {
        match self
            .kv
            .update(&lease.key, self.value(), lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                Ok(true)
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(Error::JetStream(format!("renew lease {}: {e}", lease.key))),
        }
    }

    /// Ends `lease` now, unless someone else already holds the key.
    pub async fn release(&self, lease: &Lease) -> Result<(), Error> {
        match self
            .kv
            .delete_expect_revision(&lease.key, Some(lease.revision))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(Error::JetStream(format!(
                "release lease {}: {e}",
                lease.key
            ))),
        }
    }

    /// Who holds `key` now, if anyone.
    pub async fn holder(&self, key: &str) -> Result<Option<String>, Error> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|e| Error::JetStream(format!("read lease {key}: {e}")))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| serde_json::from_slice::<Holder>(&e.value).ok())
            .map(|h| h.node))
    }
}

/// Opens (creating) a bucket whose values live [`LEASE_TTL`], read from
/// its stream's leader only: a replica that lags (one just restarted) may
/// not answer for it, or a node could see a lease as free that is not.
pub(crate) async fn open_bucket(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
) -> Result<kv::Store, Error> {
    open_kv(js, bucket, replicas, LEASE_TTL).await
}

/// As [`open_bucket`], values living `max_age` (zero: for good).
pub(crate) async fn open_kv(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
    max_age: std::time::Duration,
) -> Result<kv::Store, Error> {
    let stream_name = format!("KV_{bucket}");
    if js.get_stream(&stream_name).await.is_err() {
        let created = js
            .create_key_value(kv::Config {
                bucket: bucket.into(),
                history: 1,
                max_age,
                num_replicas: replicas,
                ..kv::Config::default()
            })
            .await;
        match created {
            Ok(_) => {}
            // Another node made it just now (and may have changed it).
            Err(e) if e.to_string().contains("already in use") => {}
            Err(e) => return Err(bucket_error(bucket, replicas, &e)),
        }
    }
    let mut stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| Error::JetStream(format!("bucket {bucket}: {e}")))?;
    let mut config = stream
        .info()
        .await
        .map_err(|e| Error::JetStream(format!("bucket {bucket}: {e}")))?
        .config
        .clone();
    if config.allow_direct {
        config.allow_direct = false;
        js.update_stream(config)
            .await
            .map_err(|e| Error::JetStream(format!("bucket {bucket}: {e}")))?;
    }
    js.get_key_value(bucket)
        .await
        .map_err(|e| Error::JetStream(format!("bucket {bucket}: {e}")))
}

/// A bucket that could not be made, with what usually causes it.
pub(crate) fn bucket_error(bucket: &str, replicas: usize, err: &dyn std::fmt::Display) -> Error {
    let text = err.to_string();
    let hint = if text.contains("insufficient resources") || text.contains("replicas") {
        format!(" (cluster.replicas is {replicas}: JetStream needs at least that many servers)")
    } else if text.contains("not enabled") || text.contains("timed out") {
        " (is JetStream enabled on the NATS servers?)".to_owned()
    } else {
        String::new()
    };
    Error::JetStream(format!("create bucket {bucket}: {text}{hint}"))
}
