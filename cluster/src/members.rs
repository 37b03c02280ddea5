//! Who is in the cluster: every node heartbeats its key in a bucket whose
//! values live [`LEASE_TTL`](crate::LEASE_TTL); the keys there are the live
//! members.

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv};
use futures_util::TryStreamExt as _;

use crate::Error;
use crate::lease::open_bucket;

/// The members bucket's name.
pub const BUCKET: &str = "sextant-nodes";

/// The members bucket.
#[derive(Debug, Clone)]
pub struct Members {
    kv: kv::Store,
}

impl Members {
    /// Opens (creating) the bucket.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, Error> {
        Ok(Self {
            kv: open_bucket(js, BUCKET, replicas).await?,
        })
    }

    /// Says `node` is alive and where its HTTP API is.
    pub async fn heartbeat(&self, node: &str, advertise: &str) -> Result<(), Error> {
        self.kv
            .put(node, advertise.as_bytes().to_vec().into())
            .await
            .map(drop)
            .map_err(|e| Error::JetStream(format!("heartbeat: {e}")))
    }

    /// Takes `node` out at once (a clean stop).
    pub async fn leave(&self, node: &str) -> Result<(), Error> {
        self.kv
            .delete(node)
            .await
            .map_err(|e| Error::JetStream(format!("leave: {e}")))
    }

    /// Live members: node id -> advertised address.
    pub async fn live(&self) -> Result<BTreeMap<String, String>, Error> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(|e| Error::JetStream(format!("list members: {e}")))?
            .try_collect()
            .await
            .map_err(|e| Error::JetStream(format!("list members: {e}")))?;
        let mut live = BTreeMap::new();
        for key in keys {
            if let Some(value) = self
                .kv
                .get(&key)
                .await
                .map_err(|e| Error::JetStream(format!("read member {key}: {e}")))?
            {
                live.insert(key, String::from_utf8_lossy(&value).into_owned());
            }
        }
        Ok(live)
    }
}
