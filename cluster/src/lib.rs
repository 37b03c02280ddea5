//! Cluster mode: several Sextant nodes as one, over NATS JetStream.
//!
//! Nothing here is home-made consensus: every decision that needs one
//! answer across nodes is a compare-and-swap on a JetStream key-value
//! bucket, whose replication is NATS's.
//!
//! - [`members`]: each node heartbeats a key with a time to live in the
//!   `sextant-nodes` bucket; the live keys are the members.
//! - [`lease`]: a lease is a key in the `sextant-leases` bucket, created by
//!   its holder (a create fails while someone holds it), renewed by
//!   compare-and-swap on its revision, and gone when its holder stops renewing
//!   (the bucket's time to live). The revision of the create is the lease's
//!   **epoch**: it only grows, so whatever a holder writes under its epoch can
//!   be fenced against a later holder.
//! - [`Cluster`] puts them together: every node runs the same loop, which
//!   heartbeats, renews what it holds, and takes or hands over partitions so
//!   that each is held by the live member that rendezvous hashing prefers
//!   (a free partition the preferred member does not take is taken by anyone
//!   after a few rounds, so none stays orphaned).
//! - [`log`]: the partitioned log writes go through before their owners
//!   apply them.
//!
//! A lease alone does not prove sole ownership: with NATS nodes killed and
//! restarted in turn, two members were seen each holding a partition (a
//! renewal acknowledged by a stream state the next leader did not have).
//! Whatever an owner writes must therefore be fenced by its epoch where it
//! lands, not only guarded by the lease.
//!
//! The partition of a series, stream or trace is [`partition_of`], a hash
//! that must never change between versions: it decides where data lives.

pub mod blobs;
pub mod catalog;
pub mod lease;
pub mod log;
pub mod logs;
pub mod members;
pub mod metrics;
mod owner;
pub mod peer;
pub mod spans;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use tracing::{info, warn};

pub use blobs::SharedBlobs;
pub use catalog::{Catalog, Checkpoint};
pub use lease::{Lease, Leases};
pub use log::{Appended, PartitionLog};
pub use logs::{ClusterLogs, LogSettings};
pub use members::Members;
pub use metrics::{ClusterMetrics, MetricsSettings, ReadRequest};
pub use peer::forward;
pub use spans::{ClusterSpans, SpanSettings};

/// `cluster:` in the config file. Without it a node runs alone.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster.
    pub node_id: String,
    /// NATS server URLs (`nats://host:4222`); any of them is enough to join.
    pub nats: Vec<String>,
    /// How many partitions data is spread over. Fixed for a cluster's life.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// JetStream replicas of every stream and bucket.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The address other nodes reach this node's HTTP API at; the HTTP
    /// listen address when unset.
    #[serde(default)]
    pub advertise: Option<String>,
    /// The token nodes send each other when `auth.tokens` is set: one of
    /// those tokens, with the `query` scope and no tenant.
    #[serde(default)]
    pub token: Option<String>,
}

/// Never shows the token.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("node_id", &self.node_id)
            .field("nats", &self.nats)
            .field("partitions", &self.partitions)
            .field("replicas", &self.replicas)
            .field("advertise", &self.advertise)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

fn default_partitions() -> u32 {
    16
}

fn default_replicas() -> usize {
    3
}

impl ClusterConfig {
    /// What is wrong with the section, named by its key.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id.is_empty()
            || !self
                .node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "cluster.node_id {:?} must be letters, digits, '-' or '_'",
                self.node_id
            ));
        }
        if self.nats.is_empty() {
            return Err("cluster.nats names no NATS server".into());
        }
        if !(1..=4096).contains(&self.partitions) {
            return Err(format!(
                "cluster.partitions {} must be between 1 and 4096",
                self.partitions
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!(
                "cluster.replicas {} must be between 1 and 5 (JetStream's limit)",
                self.replicas
            ));
        }
        Ok(())
    }
}

/// What can go wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No NATS server of `cluster.nats` answered.
    #[error("cannot reach NATS at {urls}: {reason}")]
    Unreachable { urls: String, reason: String },
    /// JetStream refused or failed an operation.
    #[error("NATS JetStream: {0}")]
    JetStream(String),
}

/// How long a lease or a heartbeat lives unrenewed.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a node heartbeats, renews and rebalances.
pub const TICK: Duration = Duration::from_secs(2);
/// Rounds a partition stays free before any node, preferred or not, takes it.
const ORPHAN_ROUNDS: u32 = 3;

/// FNV-1a's starting value.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits: stable across versions and platforms.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    stable_hash_more(FNV_OFFSET, bytes)
}

/// FNV-1a of what `hash` was computed over, then `bytes`: a key hashed in
/// pieces, without putting it together.
fn stable_hash_more(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// [`stable_hash`] of label pairs as `name 0xff value 0xff ...`, the key a
/// series is placed and known by.
pub(crate) fn pairs_hash<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut hash = FNV_OFFSET;
    for (name, value) in pairs {
        hash = stable_hash_more(hash, name.as_bytes());
        hash = stable_hash_more(hash, &[0xff]);
        hash = stable_hash_more(hash, value.as_bytes());
        hash = stable_hash_more(hash, &[0xff]);
    }
    hash
}

/// MurmurHash3's finaliser: every input bit moves every output bit, which
/// FNV alone does not do for short keys.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The partition `key` (a series' labels, a stream, a trace id) lives in.
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    partition_of_hash(stable_hash(key), partitions)
}

/// [`partition_of`] a key whose [`stable_hash`] is `hash`.
pub(crate) fn partition_of_hash(hash: u64, partitions: u32) -> u32 {
    (mix(hash) % u64::from(partitions.max(1))) as u32
}

/// The member rendezvous hashing prefers for `partition`: the one with the
/// highest weight for it.
pub fn preferred(members: &[String], partition: u32) -> Option<&str> {
    members
        .iter()
        .max_by_key(|m| mix(stable_hash(m.as_bytes()) ^ mix(u64::from(partition))))
        .map(String::as_str)
}

/// A partition's key in the lease bucket.
fn partition_lease(partition: u32) -> String {
    format!("partition.{partition}")
}

/// What a node sees of the cluster, for `/api/v1/status/cluster`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    pub node_id: String,
    pub partitions: u32,
    /// Live members: node id -> advertised address.
    pub members: BTreeMap<String, String>,
    /// Partition -> the node holding it (absent: free just now).
    pub owners: BTreeMap<u32, String>,
    /// The partitions this node holds, with their epochs.
    pub owned: BTreeMap<u32, u64>,
    /// Singleton -> the node holding it (absent: free just now).
    pub singletons: BTreeMap<String, String>,
}

/// One node's membership of the cluster.
pub struct Cluster {
    config: ClusterConfig,
    advertise: String,
    js: jetstream::Context,
    members: Members,
    leases: Leases,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Partitions held, with their leases.
    held: BTreeMap<u32, Lease>,
    /// Singletons this node runs when it holds their lease: name -> the
    /// lease and when its last renewal was sent, while held.
    singletons: BTreeMap<String, Option<(Lease, std::time::Instant)>>,
    /// Rounds each partition has been seen free.
    free_rounds: HashMap<u32, u32>,
    status: Status,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to NATS and opens (creating) the cluster's buckets.
    pub async fn connect(config: &ClusterConfig, advertise: &str) -> Result<Arc<Self>, Error> {
        config.validate().map_err(Error::JetStream)?;
        let urls = config.nats.join(",");
        let client = async_nats::ConnectOptions::new()
            .name(format!("sextant {}", config.node_id))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(config.nats.as_slice())
            .await
            .map_err(|e| Error::Unreachable {
                urls: urls.clone(),
                reason: e.to_string(),
            })?;
        // With retries on, connect returns at once: wait for the first
        // connection, so that a wrong address is an error at start.
        let mut waited = Duration::ZERO;
        while client.connection_state() != async_nats::connection::State::Connected {
            if waited >= Duration::from_secs(10) {
                return Err(Error::Unreachable {
                    urls,
                    reason: "no server answered within 10 s".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
        let js = jetstream::new(client);
        // A NATS cluster that has just started may still be electing its
        // JetStream leader: creating the buckets is retried for a while.
        let mut attempts = 0;
        let (members, leases) = loop {
            let opened = async {
                let members = Members::open(&js, config.replicas).await?;
                let leases = Leases::open(&js, &config.node_id, config.replicas).await?;
                Ok::<_, Error>((members, leases))
            }
            .await;
            match opened {
                Ok(opened) => break opened,
                Err(e) if attempts < 30 && is_transient(&e) => {
                    attempts += 1;
                    warn!(error = %e, "JetStream not ready; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        };
        info!(node = %config.node_id, nats = %urls, "joined the cluster");
        Ok(Arc::new(Self {
            config: config.clone(),
            advertise: advertise.to_owned(),
            js,
            members,
            leases,
            state: Mutex::default(),
        }))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// The partitioned log of `kind` (`metrics`, `logs`, `traces`), records
    /// kept for `max_age` at most.
    pub async fn log(&self, kind: &str, max_age: Duration) -> Result<PartitionLog, Error> {
        patiently(|| {
            PartitionLog::open(
                &self.js,
                kind,
                self.config.partitions,
                self.config.replicas,
                max_age,
            )
        })
        .await
    }

    /// The token this node sends the others, if any.
    pub fn token(&self) -> Option<&str> {
        self.config.token.as_deref()
    }

    /// The bucket of named blobs `bucket`, every node's (opened, created
    /// if need be).
    pub async fn blobs(&self, bucket: &str) -> Result<SharedBlobs, Error> {
        patiently(|| SharedBlobs::open(&self.js, bucket, self.config.replicas)).await
    }

    /// The JetStream context the node talks through.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// JetStream replicas of every stream and bucket.
    pub fn replicas(&self) -> usize {
        self.config.replicas
    }

    /// How many partitions data is spread over.
    pub fn partitions(&self) -> u32 {
        self.config.partitions
    }

    /// Competes for the singleton `name` (`ruler`, ...) from the next round
    /// on: one node of the cluster holds it at a time.
    pub fn join_singleton(&self, name: &str) {
        self.state
            .lock()
            .expect("cluster state")
            .singletons
            .entry(name.to_owned())
            .or_default();
    }

    /// Whether this node holds the singleton `name` now: its lease was
    /// renewed recently enough that nobody else can have taken it (a
    /// margin of 3 s before it could run out).
    pub fn holds(&self, name: &str) -> bool {
        self.holds_for(name).is_some()
    }

    /// How much longer this node surely holds the singleton `name` if its
    /// lease is not renewed again ([`Cluster::holds`]); `None` when it may
    /// not hold it now.
    pub fn holds_for(&self, name: &str) -> Option<Duration> {
        let valid = LEASE_TTL.saturating_sub(Duration::from_secs(3));
        self.state
            .lock()
            .expect("cluster state")
            .singletons
            .get(name)
            .and_then(Option::as_ref)
            .and_then(|(_, renewed)| valid.checked_sub(renewed.elapsed()))
            .filter(|left| !left.is_zero())
    }

    /// The lease bucket, for singletons (rule groups, the dispatcher).
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// What this node last saw.
    pub fn status(&self) -> Status {
        self.state.lock().expect("cluster state").status.clone()
    }

    /// The partitions held now, with their epochs.
    pub fn owned(&self) -> BTreeMap<u32, u64> {
        self.state
            .lock()
            .expect("cluster state")
            .held
            .iter()
            .map(|(p, l)| (*p, l.epoch))
            .collect()
    }

    /// Heartbeats, renews and rebalances every [`TICK`] until the task is
    /// dropped or aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.round().await {
                warn!(node = %self.config.node_id, error = %e, "cluster round failed; retrying");
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Hands every partition back, so that others take them at once (a
    /// clean stop; a crash lets the leases run out instead).
    pub async fn leave(&self) {
        let held: Vec<Lease> = {
            let mut state = self.state.lock().expect("cluster state");
            std::mem::take(&mut state.held).into_values().collect()
        };
        let singletons: Vec<Lease> = {
            let mut state = self.state.lock().expect("cluster state");
            state
                .singletons
                .values_mut()
                .filter_map(|l| l.take().map(|(l, _)| l))
                .collect()
        };
        for lease in held.into_iter().chain(singletons) {
            let _ = self.leases.release(&lease).await;
        }
        let _ = self.members.leave(&self.config.node_id).await;
    }

    /// Renews the singletons held and tries to take the others.
    async fn singleton_round(&self) -> Result<(), Error> {
        let singletons: Vec<(String, Option<Lease>)> = {
            let state = self.state.lock().expect("cluster state");
            state
                .singletons
                .iter()
                .map(|(n, l)| (n.clone(), l.as_ref().map(|(l, _)| l.clone())))
                .collect()
        };
        for (name, lease) in singletons {
            let sent = std::time::Instant::now();
            let now_held = match lease {
                Some(mut lease) => match self.leases.renew(&mut lease).await {
                    Ok(true) => Some(lease),
                    Ok(false) => {
                        warn!(singleton = %name, "singleton lease lost");
                        None
                    }
                    Err(e) => {
                        warn!(singleton = %name, error = %e, "cannot renew a singleton lease");
                        continue;
                    }
                },
                None => {
                    let lease = self.leases.acquire(&format!("singleton.{name}")).await?;
                    if let Some(lease) = &lease {
                        info!(singleton = %name, epoch = lease.epoch, "singleton taken");
                    }
                    lease
                }
            };
            self.state
                .lock()
                .expect("cluster state")
                .singletons
                .insert(name, now_held.map(|l| (l, sent)));
        }
        Ok(())
    }

    /// One round: heartbeat, renew, then take or hand over partitions.
    pub async fn round(&self) -> Result<(), Error> {
        self.members
            .heartbeat(&self.config.node_id, &self.advertise)
            .await?;
        let members = self.members.live().await?;
        let names: Vec<String> = members.keys().cloned().collect();
        // Renew what is held; a lease that cannot be renewed is lost.
        let held: Vec<(u32, Lease)> = {
            let state = self.state.lock().expect("cluster state");
            state.held.iter().map(|(p, l)| (*p, l.clone())).collect()
        };
        for (partition, mut lease) in held {
            match self.leases.renew(&mut lease).await {
                Ok(true) => {
                    self.state
                        .lock()
                        .expect("cluster state")
                        .held
                        .insert(partition, lease);
                }
                Ok(false) => {
                    warn!(partition, epoch = lease.epoch, "partition lease lost");
                    self.state
                        .lock()
                        .expect("cluster state")
                        .held
                        .remove(&partition);
                }
                // NATS unreachable just now: keep it, the next round retries
                // (the lease runs out on its own if this goes on).
                Err(e) => return Err(e),
            }
        }
        let mut owners = BTreeMap::new();
        for partition in 0..self.config.partitions {
            let key = partition_lease(partition);
            let holder = self.leases.holder(&key).await?;
            let me = self.config.node_id.as_str();
            let prefers_me = preferred(&names, partition) == Some(me);
            match holder {
                Some(holder) => {
                    self.state
                        .lock()
                        .expect("cluster state")
                        .free_rounds
                        .remove(&partition);
                    // Held by me while a live member is preferred: hand it over.
                    if holder == me
                        && !prefers_me
                        && preferred(&names, partition).is_some_and(|p| members.contains_key(p))
                    {
                        let lease = self
                            .state
                            .lock()
                            .expect("cluster state")
                            .held
                            .remove(&partition);
                        if let Some(lease) = lease {
                            info!(
                                partition,
                                "handing the partition over to its preferred node"
                            );
                            self.leases.release(&lease).await?;
                            continue;
                        }
                    }
                    owners.insert(partition, holder);
                }
                None => {
                    let rounds = {
                        let mut state = self.state.lock().expect("cluster state");
                        let rounds = state.free_rounds.entry(partition).or_default();
                        *rounds += 1;
                        *rounds
                    };
                    if (prefers_me || rounds > ORPHAN_ROUNDS)
                        && let Some(lease) = self.leases.acquire(&key).await?
                    {
                        info!(partition, epoch = lease.epoch, "partition taken");
                        let mut state = self.state.lock().expect("cluster state");
                        state.free_rounds.remove(&partition);
                        state.held.insert(partition, lease);
                        owners.insert(partition, me.to_owned());
                    }
                }
            }
        }
        self.singleton_round().await?;
        let names: Vec<String> = self
            .state
            .lock()
            .expect("cluster state")
            .singletons
            .keys()
            .cloned()
            .collect();
        let mut singletons = BTreeMap::new();
        for name in names {
            if let Some(holder) = self.leases.holder(&format!("singleton.{name}")).await? {
                singletons.insert(name, holder);
            }
        }
        let mut state = self.state.lock().expect("cluster state");
        let owned = state.held.iter().map(|(p, l)| (*p, l.epoch)).collect();
        state.status = Status {
            node_id: self.config.node_id.clone(),
            partitions: self.config.partitions,
            members,
            owners,
            owned,
            singletons,
        };
        Ok(())
    }
}

/// Errors a NATS cluster gives while it is still forming or electing a
/// JetStream leader: worth retrying for a while at start.
/// Runs `op` again while JetStream is not ready (a cluster just started
/// placing its peers, a stream electing its leader), for up to 30 s.
async fn patiently<T, F>(op: impl Fn() -> F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let mut attempts = 0;
    loop {
        match op().await {
            Err(e) if attempts < 30 && is_transient(&e) => {
                attempts += 1;
                warn!(error = %e, "JetStream not ready; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            done => return done,
        }
    }
}

fn is_transient(e: &Error) -> bool {
    let text = e.to_string();
    [
        "timed out",
        "no suitable peers",
        "peer offline",
        "temporarily unavailable",
        "no responders",
    ]
    .iter()
    .any(|t| text.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // Fixed forever: data placement depends on it.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[partition_of(format!("series-{i}").as_bytes(), 16) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn rendezvous_moves_only_what_a_member_change_must() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut counts = BTreeMap::new();
        for p in 0..64 {
            let before = preferred(&three, p).unwrap();
            *counts.entry(before).or_insert(0) += 1;
            let after = preferred(&two, p).unwrap();
            if before != "c" {
                assert_eq!(before, after, "partition {p} moved needlessly");
            }
        }
        assert!(counts.values().all(|&c| c >= 12), "{counts:?}");
    }

    #[test]
    fn a_bad_section_is_named() {
        let config = ClusterConfig {
            node_id: "n 1".into(),
            nats: vec![],
            partitions: 16,
            replicas: 3,
            advertise: None,
            token: None,
        };
        assert!(config.validate().unwrap_err().contains("cluster.node_id"));
        let config = ClusterConfig {
            node_id: "n1".into(),
            ..config
        };
        assert!(config.validate().unwrap_err().contains("cluster.nats"));
    }
}
