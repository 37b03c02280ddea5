//! Named blobs every node reads and writes: a JetStream object store
//! bucket, replicated as the cluster's other buckets are.
//!
//! The alerting state lives here in cluster mode (alert instances per rule
//! group, notification groups, silences, history, the outbox), so that the
//! node that takes the ruler over continues where the last one stopped.
//! An object store rather than a key-value bucket: a blob (the history of
//! ten thousand changes) can be larger than one NATS message, and an
//! object is replaced whole, its new chunks first and its metadata last.
//!
//! Writes can be fenced by a lease ([`SharedBlobs::fenced_by`]): a node
//! whose lease ran out, or may have, writes nothing, and a write it began
//! while it held the lease is given up when the lease could run out.
//!
//! The methods are synchronous, as the alerting state's trait is: they wait
//! for NATS from the calling thread ([`crate::peer::wait`]).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;

use crate::Error;

/// How long one call waits for NATS.
const PATIENCE: Duration = Duration::from_secs(10);

/// How long this node may still write, `None` once it may not.
pub type Fence = Arc<dyn Fn() -> Option<Duration> + Send + Sync>;

/// A bucket of named blobs.
#[derive(Clone)]
pub struct SharedBlobs {
    store: object_store::ObjectStore,
    bucket: String,
    runtime: tokio::runtime::Handle,
    fence: Option<Fence>,
}

impl std::fmt::Debug for SharedBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBlobs")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

fn unavailable(what: String) -> io::Error {
    io::Error::other(what)
}

impl SharedBlobs {
    /// Opens (creating) the object store bucket `bucket`.
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        replicas: usize,
    ) -> Result<Self, Error> {
        let store = match js.get_object_store(bucket).await {
            Ok(store) => store,
            Err(_) => match js
                .create_object_store(object_store::Config {
                    bucket: bucket.to_owned(),
                    num_replicas: replicas,
                    ..object_store::Config::default()
                })
                .await
            {
                Ok(store) => store,
                // Another node made it just now.
                Err(e) if e.to_string().contains("already in use") => js
                    .get_object_store(bucket)
                    .await
                    .map_err(|e| Error::JetStream(format!("bucket {bucket}: {e}")))?,
                Err(e) => return Err(crate::lease::bucket_error(bucket, replicas, &e)),
            },
        };
        Ok(Self {
            store,
            bucket: bucket.to_owned(),
            runtime: tokio::runtime::Handle::current(),
            fence: None,
        })
    }

    /// These blobs, written only while `fence` allows (e.g. while this node
    /// holds a lease, [`crate::Cluster::holds_for`]), each try cut off
    /// when the time it allowed is up.
    pub fn fenced_by(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Runs `op` and waits for it, again while NATS answers that it is
    /// not ready (a bucket just made, a stream electing its leader), up
    /// to [`PATIENCE`] in all.
    /// A write (`writes`) is also held to the fence, before each try and
    /// during it.
    fn call<T, F>(
        &self,
        what: String,
        writes: bool,
        op: impl Fn() -> F + Send + 'static,
    ) -> io::Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, String>> + Send + 'static,
    {
        let bucket = self.bucket.clone();
        let fence = self.fence.clone().filter(|_| writes);
        let patient = async move {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let mut left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Some(fence) = &fence {
                    match fence() {
                        Some(allowed) => left = left.min(allowed),
                        None => {
                            return Err("this node no longer holds the lease that guards \
                                        these writes; they are left to its holder"
                                .to_owned());
                        }
                    }
                }
                let error = match tokio::time::timeout(left, op()).await {
                    Ok(Ok(done)) => return Ok(done),
                    Ok(Err(e)) => e,
                    Err(_) if fence.is_some() => {
                        return Err(format!(
                            "NATS did not answer within {left:?}, while this node \
                             surely held the lease that guards these writes"
                        ));
                    }
                    Err(_) => return Err(format!("NATS did not answer within {PATIENCE:?}")),
                };
                let transient = ["no responders", "timed out", "leader", "temporarily"]
                    .iter()
                    .any(|t| error.contains(t));
                if !transient || tokio::time::Instant::now() >= deadline {
                    return Err(error);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        crate::peer::wait(&self.runtime, patient)
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(|e| unavailable(format!("{what} in bucket {bucket}: {e}")))
    }

    /// Replaces `name` with `bytes`.
    pub fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let store = self.store.clone();
        let key = name.to_owned();
        let data = Arc::new(bytes.to_vec());
        self.call(format!("write {name}"), true, move || {
            let (store, key, data) = (store.clone(), key.clone(), data.clone());
            async move {
                store
                    .put(key.as_str(), &mut data.as_slice())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
    }

    /// The blob `name`, if there is one.
    pub fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let store = self.store.clone();
        let key = name.to_owned();
        self.call(format!("read {name}"), false, move || {
            let (store, key) = (store.clone(), key.clone());
            async move {
                let mut object = match store.get(&key).await {
                    Ok(object) => object,
                    Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
                        return Ok(None);
                    }
                    Err(e) => return Err(e.to_string()),
                };
                let mut bytes = Vec::with_capacity(object.info().size);
                object
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Some(bytes))
            }
        })
    }

    /// Removes `name` (nothing when there is none).
    pub fn delete(&self, name: &str) -> io::Result<()> {
        let store = self.store.clone();
        let key = name.to_owned();
        self.call(format!("delete {name}"), true, move || {
            let (store, key) = (store.clone(), key.clone());
            async move {
                match store.delete(&key).await {
                    Ok(()) => Ok(()),
                    Err(e)
                        if e.kind() == object_store::DeleteErrorKind::NotFound
                            || e.to_string().contains("not found") =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        })
    }

    /// Names starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let store = self.store.clone();
        let prefix = prefix.to_owned();
        self.call("list blobs".to_owned(), false, move || {
            let (store, prefix) = (store.clone(), prefix.clone());
            async move {
                let mut list = store.list().await.map_err(|e| e.to_string())?;
                let mut names = Vec::new();
                while let Some(info) = list.next().await {
                    let info = info.map_err(|e| e.to_string())?;
                    if !info.deleted && info.name.starts_with(&prefix) {
                        names.push(info.name);
                    }
                }
                names.sort();
                names.dedup();
                Ok(names)
            }
        })
    }
}
