//! Cluster mode over a real 3-node NATS JetStream cluster on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_cluster::{Cluster, ClusterConfig};
use sextant_tests::NatsCluster;

fn config(node: &str, nats: &NatsCluster) -> ClusterConfig {
    ClusterConfig {
        node_id: node.into(),
        nats: nats.urls(),
        partitions: 16,
        replicas: 3,
        advertise: None,
    }
}

/// Runs `op` until it succeeds, for up to 30 s: JetStream answers "timed
/// out" while a stream elects a new leader or the machine is busy, and the
/// product retries as this does.
fn retry<T, F>(runtime: &tokio::runtime::Runtime, what: &str, mut op: impl FnMut() -> F) -> T
where
    F: Future<Output = Result<T, sextant_cluster::Error>>,
{
    let started = Instant::now();
    loop {
        match runtime.block_on(op()) {
            Ok(done) => return done,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Partition -> holder, from every member's own view of what it holds;
/// panics if two members hold one partition.
fn holders(members: &[(String, Arc<Cluster>)]) -> BTreeMap<u32, (String, u64)> {
    let mut holders = BTreeMap::new();
    for (name, member) in members {
        for (partition, epoch) in member.owned() {
            if let Some(other) = holders.insert(partition, (name.clone(), epoch)) {
                panic!(
                    "partition {partition} held by {name} (epoch {epoch}) and {} (epoch {}): {:#?}",
                    other.0,
                    other.1,
                    members.iter().map(|(_, m)| m.status()).collect::<Vec<_>>()
                );
            }
        }
    }
    holders
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Three members share 16 partitions, each held by exactly one; a member
/// that dies (no goodbye) has its partitions taken over within 15 s with
/// higher epochs; a member that leaves hands its partitions over at once.
#[test]
fn partitions_are_held_once_and_taken_over_when_a_node_dies() {
    let nats = NatsCluster::start(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut members = Vec::new();
    let mut tasks = Vec::new();
    for name in ["a", "b", "c"] {
        let member = runtime
            .block_on(Cluster::connect(&config(name, &nats), "127.0.0.1:0"))
            .unwrap();
        tasks.push(runtime.spawn(member.clone().run()));
        members.push((name.to_owned(), member));
    }
    // The first to join takes everything, then hands over to the others as
    // they join, until each holds what rendezvous hashing gives it.
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let spread = |held: &BTreeMap<u32, (String, u64)>| {
        (0..16)
            .all(|p| held.get(&p).map(|(n, _)| n.as_str()) == sextant_cluster::preferred(&names, p))
    };
    wait_until(
        "every partition held by its preferred node",
        Duration::from_secs(30),
        || spread(&holders(&members)),
    );
    // Settled: more rounds move nothing.
    let before = holders(&members);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(holders(&members), before, "partitions kept moving");
    let status = members[0].1.status();
    assert_eq!(status.members.len(), 3, "{status:?}");

    // Member c dies without a word: its leases run out and a and b take them.
    tasks.pop().unwrap().abort();
    let (_, dead) = members.pop().unwrap();
    let lost: Vec<u32> = dead.owned().keys().copied().collect();
    assert!(!lost.is_empty());
    drop(dead);
    wait_until("c's partitions taken over", Duration::from_secs(15), || {
        holders(&members).len() == 16
    });
    let after = holders(&members);
    for partition in &lost {
        assert!(
            after[partition].1 > before[partition].1,
            "partition {partition}: epoch {} after {}",
            after[partition].1,
            before[partition].1
        );
    }
    // What a and b held did not move.
    for (partition, holder) in &before {
        if !lost.contains(partition) {
            assert_eq!(
                &after[partition], holder,
                "partition {partition}: {before:?} {after:?}"
            );
        }
    }

    // A clean stop hands everything over at once.
    tasks.pop().unwrap().abort();
    let (_, leaving) = members.pop().unwrap();
    runtime.block_on(leaving.leave());
    wait_until("a holds everything", Duration::from_secs(10), || {
        holders(&members).len() == 16
    });
}

/// The partitioned log over a real 3-node JetStream: appends from two
/// nodes land in their partitions' order, a retried append (same message
/// id) is stored once, a partition reads back from any sequence, and a
/// trim drops what sealed blocks hold; a NATS node down changes none of it.
#[test]
fn the_partition_log_keeps_order_drops_retries_and_trims() {
    let mut nats = NatsCluster::start(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nodes: Vec<Arc<Cluster>> = ["a", "b"]
        .iter()
        .map(|name| {
            runtime
                .block_on(Cluster::connect(&config(name, &nats), "127.0.0.1:0"))
                .unwrap()
        })
        .collect();
    let logs: Vec<_> = nodes
        .iter()
        .map(|n| {
            runtime
                .block_on(n.log("metrics", Duration::from_secs(3600)))
                .unwrap()
        })
        .collect();
    let append = |node: usize, partition: u32, id: &str, body: &str| {
        retry(&runtime, "append", || {
            logs[node].append(partition, id, body.to_owned().into())
        })
    };
    let first = append(0, 3, "a-1", "one");
    let second = append(1, 3, "b-1", "two");
    let elsewhere = append(1, 4, "b-2", "other partition");
    assert!(second.sequence > first.sequence);
    assert!(!first.duplicate && !elsewhere.duplicate);
    // The client retries after a lost ack: the same id is stored once.
    let retried = append(1, 3, "b-1", "two");
    assert!(retried.duplicate);
    assert_eq!(retried.sequence, second.sequence);
    let read = |node: usize, partition: u32, from: u64| -> Vec<String> {
        retry(&runtime, "read", || {
            logs[node].read(partition, from, 100, Duration::from_secs(1))
        })
        .into_iter()
        .map(|(_, body)| String::from_utf8(body.to_vec()).unwrap())
        .collect()
    };
    assert_eq!(read(0, 3, 1), ["one", "two"]);
    assert_eq!(read(1, 3, second.sequence), ["two"]);
    assert_eq!(read(0, 4, 1), ["other partition"]);

    // One NATS node of three down: appends and reads go on (a stream
    // leader on the dead node is replaced within seconds).
    nats.kill(1);
    let third = append(0, 3, "a-2", "three");
    assert!(third.sequence > second.sequence);
    assert_eq!(read(1, 3, 1), ["one", "two", "three"]);

    // Trimmed up to what is sealed: the rest stays.
    retry(&runtime, "trim", || logs[0].trim(3, third.sequence));
    assert_eq!(read(0, 3, 1), ["three"]);
    assert_eq!(read(0, 4, 1), ["other partition"]);
}
