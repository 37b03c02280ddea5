//! Cluster mode's costs against a single node, in one run on one machine:
//!
//! ```sh
//! scripts/setup-test-env >/dev/null   # nats-server and weed in the test venv, node_exporter
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/cluster                       # the full run (about four minutes)
//! target/release/cluster --duration 60 --senders 4
//! target/release/cluster --only query          # one part: ingest or query
//! ```
//!
//! `nats-server` and `weed` are the ones beside the test venv's python
//! (`$SEXTANT_TEST_PYTHON`, else what `scripts/setup-test-env` prints).
//! Every cluster gets three fresh `nats-server`s (JetStream, each routed to
//! the other two) and its own prefix in one SeaweedFS bucket; its nodes run
//! with `partitions: 16` and `replicas: 3` and are measured once every
//! partition has its owner. Every process shares this machine's cores, so
//! a cluster's figures here are its costs, not its capacity.
//!
//! 1. Ingest: node_exporter-shaped series (learned from a real
//!    node_exporter, 200 hosts) remote-written a scrape at a time, 2,000
//!    samples a request, by `--senders` (3) senders that each send their
//!    next request once the last is acknowledged, for `--duration` (20)
//!    seconds, into: a single node (no cluster); one cluster node; three
//!    cluster nodes, sender k writing to node k mod 3. Each setup gets the
//!    same requests in the same order; a request answered 5xx is sent again
//!    (as Prometheus does) and counted. Reported: samples/s acknowledged;
//!    samples/s applied, up to when the engines' counters
//!    (`sextant_tsdb_samples_appended_total`, every node's) reach what was
//!    acknowledged (the catch-up is the time after the last acknowledgement);
//!    CPU seconds of each process over that time; the ratios to the single node.
//! 2. Query: 8 hosts x ~500 series, an hour at 15 s, written to a fresh
//!    single node and a fresh three-node cluster. Once the cluster's
//!    engines hold it all and its answers are checked against the single
//!    node's, each range query (the hour at a 15 s step) runs 20 times on
//!    each, alternating, the cluster's runs rotating over its nodes: median
//!    and p90 (the fan-out's cost).
//! 3. JetStream: the records and bytes the metrics stream took during each
//!    cluster's ingest (`nats-server`'s `/jsz`: the last sequence, and one
//!    replica's bytes), and a takeover: a node of the query cluster killed
//!    (SIGKILL), the time until the others own its partitions and until a
//!    query answers as before again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_bench::{
    NatsCluster, NodeExporter, NodeWorkload, Peer, SeaweedFs, StreamState, cpu_seconds, flag_value,
    free_port, metric_value, now_ms, say, start_sextant, url_encode,
};
use sextant_ingest::remote_write::{encode, proto};

const SCRAPE_MS: i64 = 15_000;
/// Series (one sample each) in a remote-write request, Prometheus's
/// `max_samples_per_send`.
const BATCH: usize = 2_000;
const PARTITIONS: usize = 16;
const REPLICAS: usize = 3;
const NODES: [&str; 3] = ["a", "b", "c"];
const INGEST_HOSTS: usize = 200;
/// Samples prepared per second of `--duration`, above what a single node
/// took here; a setup that runs out stops early and says so.
const PREPARED_PER_SEC: usize = 1_000_000;
const QUERY_HOSTS: usize = 8;
const QUERY_SCRAPES: usize = 240;
const QUERY_RUNS: usize = 20;
/// How long the engines may take to apply what was acknowledged, and how
/// long they may stand still meanwhile.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);
const STALL_LIMIT: Duration = Duration::from_secs(15);
const METRICS_STREAM: &str = "SEXTANT_METRICS";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |flag: &str, default: usize| {
        flag_value(&args, flag).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{flag} N"))
        })
    };
    let duration = Duration::from_secs(number("--duration", 20).max(1) as u64);
    let senders = number("--senders", 3).max(1);
    let only = flag_value(&args, "--only");
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);

    let learned = {
        let exporter = NodeExporter::start(free_port());
        NodeWorkload::learn(&exporter.url, Duration::from_secs(1), 1)
    };
    let weed = SeaweedFs::start();
    let scratch = tempfile::tempdir().expect("scratch dir");
    say(&format!(
        "{} cores; {} series per node_exporter host; clusters: 3 nats-servers, {PARTITIONS} partitions, replicas {REPLICAS}, blocks to SeaweedFS",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        learned.series_per_host()
    ));
    let ingest = run("ingest").then(|| {
        ingest_part(
            &learned.with_hosts(INGEST_HOSTS),
            duration,
            senders,
            &weed,
            scratch.path(),
        )
    });
    let takeover = run("query").then(|| {
        query_part(
            &learned.with_hosts(QUERY_HOSTS),
            senders,
            &weed,
            scratch.path(),
        )
    });
    jetstream_report(ingest.as_deref(), takeover);
}

// ----------------------------------------------------------------- setups

/// The servers one measurement runs against.
struct Setup {
    name: &'static str,
    nodes: Vec<Peer>,
    /// The cluster's NATS; `None` for the single node.
    nats: Option<NatsCluster>,
}

impl Setup {
    fn single(name: &'static str, dir: &Path) -> Self {
        Self {
            name,
            nodes: vec![start_sextant(dir, &[])],
            nats: None,
        }
    }

    /// `nodes` cluster nodes over three fresh NATS servers, their blocks
    /// under a prefix named after the setup; returns once every node owns
    /// partitions, all agree who owns each, and that held for a poll.
    fn cluster(name: &'static str, dir: &Path, nodes: usize, weed: &SeaweedFs) -> Self {
        let nats = NatsCluster::start(3);
        let urls: Vec<String> = nats.urls().iter().map(|u| format!("\"{u}\"")).collect();
        let peers = NODES[..nodes]
            .iter()
            .map(|node| {
                let node_dir = dir.join(node);
                std::fs::create_dir_all(&node_dir).expect("node dir");
                let config = node_dir.join("sextant.yaml");
                std::fs::write(
                    &config,
                    format!(
                        "cluster:\n  node_id: {node}\n  nats: [{urls}]\n  partitions: {PARTITIONS}\n  replicas: {REPLICAS}\n\
                         storage:\n  object_store:\n    url: s3://{bucket}/{name}\n    endpoint: {endpoint}\n    \
                         region: us-east-1\n    access_key_id: {key}\n    secret_access_key: {secret}\n",
                        urls = urls.join(", "),
                        name = name.replace(' ', "-").replace(',', ""),
                        bucket = SeaweedFs::BUCKET,
                        endpoint = weed.endpoint(),
                        key = SeaweedFs::ACCESS_KEY,
                        secret = SeaweedFs::SECRET_KEY,
                    ),
                )
                .expect("write the node's config");
                start_sextant(&node_dir, &["--config", path_str(&config)])
            })
            .collect();
        let setup = Self {
            name,
            nodes: peers,
            nats: Some(nats),
        };
        let started = Instant::now();
        let mut last = None;
        loop {
            let owners = setup.owners();
            if owners.is_some() && owners == last {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{name}: the partitions never settled: {owners:?}"
            );
            last = owners;
            std::thread::sleep(Duration::from_secs(2));
        }
        setup
    }

    /// Partition -> owner, if every node sees the same owner for every
    /// partition and every node owns some.
    fn owners(&self) -> Option<Value> {
        let views: Vec<Value> = self
            .nodes
            .iter()
            .map(|node| {
                get_json(&format!("{}/api/v1/status/cluster", node.url))["data"]["owners"].clone()
            })
            .collect();
        let first = views[0].as_object()?;
        let holders: std::collections::BTreeSet<&str> =
            first.values().filter_map(Value::as_str).collect();
        (first.len() == PARTITIONS
            && holders.len() == self.nodes.len()
            && views.iter().all(|v| *v == views[0]))
        .then(|| views[0].clone())
    }

    /// Samples the engines appended, over every node.
    fn appended(&self) -> u64 {
        self.nodes
            .iter()
            .map(|node| {
                let page = ureq::get(&format!("{}/metrics", node.url))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_to_string().ok())
                    .unwrap_or_default();
                metric_value(&page, "sextant_tsdb_samples_appended_total") as u64
            })
            .sum()
    }

    fn log(&self) -> StreamState {
        self.nats
            .as_ref()
            .map_or_else(StreamState::default, |n| n.stream(METRICS_STREAM))
    }

    /// CPU seconds so far: each Sextant node, each NATS server, SeaweedFS
    /// and this process (the senders).
    fn cpu(&self, weed: &SeaweedFs) -> Cpu {
        Cpu {
            sextant: self
                .nodes
                .iter()
                .map(|n| cpu_seconds(n.child.id()))
                .collect(),
            nats: self.nats.as_ref().map_or_else(Vec::new, |n| {
                n.pids().into_iter().map(cpu_seconds).collect()
            }),
            weed: cpu_seconds(weed.pid()),
            client: cpu_seconds(std::process::id()),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Cpu {
    sextant: Vec<f64>,
    nats: Vec<f64>,
    weed: f64,
    client: f64,
}

impl Cpu {
    fn since(&self, before: &Self) -> Self {
        let minus = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a - b).collect();
        Self {
            sextant: minus(&self.sextant, &before.sextant),
            nats: minus(&self.nats, &before.nats),
            weed: self.weed - before.weed,
            client: self.client - before.client,
        }
    }

    fn sextant_total(&self) -> f64 {
        self.sextant.iter().sum()
    }

    fn nats_total(&self) -> f64 {
        self.nats.iter().sum()
    }
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[f64]| {
            v.iter()
                .map(|s| format!("{s:.1}"))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        write!(f, "sextant {}", list(&self.sextant))?;
        if !self.nats.is_empty() {
            write!(f, ", nats-server {}", list(&self.nats))?;
        }
        write!(f, ", weed {:.1}, senders {:.1}", self.weed, self.client)
    }
}

// ----------------------------------------------------------------- ingest

/// A remote-write request and the samples it carries.
struct Request {
    body: Vec<u8>,
    samples: u64,
}

/// `scrapes` scrapes of `workload` from `start_ms` as requests of [`BATCH`]
/// series, dealt to `senders` so that a series is always sent by the same
/// sender, in time order.
fn requests(
    workload: &NodeWorkload,
    start_ms: i64,
    scrapes: usize,
    senders: usize,
) -> Vec<Vec<Request>> {
    let labels: Vec<Vec<proto::Label>> = workload
        .labels()
        .iter()
        .map(|l| {
            l.iter()
                .map(|x| proto::Label {
                    name: x.name.to_string(),
                    value: x.value.to_string(),
                })
                .collect()
        })
        .collect();
    let mut stream = workload.scrapes(start_ms, 7);
    let scrapes: Vec<(i64, Vec<f64>)> = (0..scrapes)
        .map(|_| {
            let (t, values) = stream.next_scrape();
            (t, values.to_vec())
        })
        .collect();
    let chunks = labels.len().div_ceil(BATCH);
    let (labels, scrapes) = (&labels, &scrapes);
    std::thread::scope(|scope| {
        let encoders: Vec<_> = (0..senders)
            .map(|sender| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for (t, values) in scrapes {
                        for chunk in (sender..chunks).step_by(senders) {
                            let series = chunk * BATCH..((chunk + 1) * BATCH).min(labels.len());
                            let request = proto::WriteRequest {
                                timeseries: series
                                    .clone()
                                    .map(|i| proto::TimeSeries {
                                        labels: labels[i].clone(),
                                        samples: vec![proto::Sample {
                                            value: values[i],
                                            timestamp: *t,
                                        }],
                                        exemplars: vec![],
                                        histograms: vec![],
                                    })
                                    .collect(),
                                metadata: vec![],
                            };
                            out.push(Request {
                                body: encode(&request),
                                samples: series.len() as u64,
                            });
                        }
                    }
                    out
                })
            })
            .collect();
        encoders
            .into_iter()
            .map(|e| e.join().expect("encoder"))
            .collect()
    })
}

/// What one setup took.
struct Ingest {
    name: &'static str,
    nodes: usize,
    acked: u64,
    acked_secs: f64,
    /// Seconds from the start until the engines had applied every
    /// acknowledged sample; `None` if they had not within the limits.
    applied_secs: Option<f64>,
    applied: u64,
    refused: u64,
    ran_out: bool,
    cpu: Cpu,
    /// Log records and bytes (one replica) taken while writing.
    log: Option<(u64, u64)>,
    requests: u64,
    senders: usize,
}

impl Ingest {
    fn acked_rate(&self) -> f64 {
        self.acked as f64 / self.acked_secs
    }

    /// Mean milliseconds from sending a request to its acknowledgement.
    fn request_ms(&self) -> f64 {
        self.senders as f64 * self.acked_secs * 1000.0 / self.requests.max(1) as f64
    }

    fn applied_rate(&self) -> Option<f64> {
        self.applied_secs.map(|s| self.acked as f64 / s)
    }
}

/// Sends each sender's requests (sender k to node k mod nodes), each once
/// the last is acknowledged: for `duration`, or until a sender has none
/// left; every request if `duration` is `None`. Then waits for the engines
/// to apply what was acknowledged.
fn drive(
    setup: &Setup,
    pool: &[Vec<Request>],
    duration: Option<Duration>,
    weed: &SeaweedFs,
) -> Ingest {
    let appended_before = setup.appended();
    let log_before = setup.log();
    let cpu_before = setup.cpu(weed);
    let stop = AtomicBool::new(false);
    let refused = AtomicU64::new(0);
    let ran_out = AtomicBool::new(false);
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let (acked, requests) = std::thread::scope(|scope| {
        let senders: Vec<_> = pool
            .iter()
            .enumerate()
            .map(|(k, bodies)| {
                let url = &setup.nodes[k % setup.nodes.len()].write_url;
                let (stop, refused, ran_out) = (&stop, &refused, &ran_out);
                scope.spawn(move || {
                    let agent = agent();
                    let (mut acked, mut sent) = (0, 0);
                    for request in bodies {
                        if stop.load(Ordering::Relaxed)
                            || deadline.is_some_and(|d| Instant::now() >= d)
                        {
                            stop.store(true, Ordering::Relaxed);
                            return (acked, sent);
                        }
                        refused.fetch_add(write(&agent, url, &request.body), Ordering::Relaxed);
                        acked += request.samples;
                        sent += 1;
                    }
                    // Fewer senders from here on would lower the rate.
                    if deadline.is_some() {
                        ran_out.store(true, Ordering::Relaxed);
                        stop.store(true, Ordering::Relaxed);
                    }
                    (acked, sent)
                })
            })
            .collect();
        senders
            .into_iter()
            .map(|s| s.join().expect("sender"))
            .fold((0, 0), |(a, r), (acked, sent)| (a + acked, r + sent))
    });
    let acked_secs = started.elapsed().as_secs_f64();
    let log_after = setup.log();
    // The engines follow the log: wait until they hold what was acknowledged.
    // (A node whose page did not answer reads as 0: never "caught up".)
    let mut applied = setup.appended().saturating_sub(appended_before);
    let mut moved = Instant::now();
    while applied < acked
        && started.elapsed().as_secs_f64() < acked_secs + CATCH_UP_LIMIT.as_secs_f64()
        && moved.elapsed() < STALL_LIMIT
    {
        std::thread::sleep(Duration::from_millis(100));
        let now = setup.appended().saturating_sub(appended_before);
        if now != applied {
            moved = Instant::now();
        }
        applied = now;
    }
    let applied_secs = (applied >= acked).then(|| started.elapsed().as_secs_f64());
    let cpu = setup.cpu(weed).since(&cpu_before);
    Ingest {
        name: setup.name,
        nodes: setup.nodes.len(),
        acked,
        acked_secs,
        applied_secs,
        applied,
        refused: refused.into_inner(),
        ran_out: ran_out.into_inner(),
        cpu,
        log: setup.nats.as_ref().map(|_| {
            (
                log_after.last_seq - log_before.last_seq,
                log_after.bytes.saturating_sub(log_before.bytes),
            )
        }),
        requests,
        senders: pool.len(),
    }
}

fn ingest_part(
    workload: &NodeWorkload,
    duration: Duration,
    senders: usize,
    weed: &SeaweedFs,
    scratch: &Path,
) -> Vec<Ingest> {
    let series = workload.labels().len();
    let scrapes = (duration.as_secs() as usize * PREPARED_PER_SEC).div_ceil(series);
    let preparing = Instant::now();
    // Ending now: the newest samples are as fresh as a scrape's.
    let end = now_ms() / SCRAPE_MS * SCRAPE_MS;
    let pool = requests(
        workload,
        end - (scrapes as i64 - 1) * SCRAPE_MS,
        scrapes,
        senders,
    );
    say(&format!(
        "ingest: {series} series ({INGEST_HOSTS} hosts), {BATCH} samples a request, {senders} senders, {} s a setup; \
         {} requests ({scrapes} scrapes, {:.1} MB snappy) prepared in {:.1} s",
        duration.as_secs(),
        pool.iter().map(Vec::len).sum::<usize>(),
        pool.iter().flatten().map(|r| r.body.len()).sum::<usize>() as f64 / 1e6,
        preparing.elapsed().as_secs_f64()
    ));
    let mut results = Vec::new();
    for (name, nodes) in [
        ("single node", 0),
        ("cluster, 1 node", 1),
        ("cluster, 3 nodes", 3),
    ] {
        let dir = scratch.join(name.replace([' ', ','], ""));
        let setting_up = Instant::now();
        let setup = if nodes == 0 {
            Setup::single(name, &dir)
        } else {
            Setup::cluster(name, &dir, nodes, weed)
        };
        let ready = setting_up.elapsed().as_secs_f64();
        let result = drive(&setup, &pool, Some(duration), weed);
        say(&format!(
            "  {name}: ready in {ready:.1} s; {} requests, {} samples acknowledged in {:.1} s{}; applied {}; \
             CPU s: {}",
            result.requests,
            result.acked,
            result.acked_secs,
            if result.ran_out {
                " (the prepared requests ran out)"
            } else {
                ""
            },
            match result.applied_secs {
                Some(s) => format!(
                    "{:.1} s after the last acknowledgement",
                    s - result.acked_secs
                ),
                None => format!(
                    "ONLY {} ({:.1} %) within the limits",
                    result.applied,
                    100.0 * result.applied as f64 / result.acked.max(1) as f64
                ),
            },
            result.cpu
        ));
        drop(setup);
        let _ = std::fs::remove_dir_all(&dir);
        results.push(result);
    }
    let single = results[0].acked_rate();
    say("");
    say(&format!(
        "{:<18} {:>12} {:>7} {:>12} {:>7} {:>9} {:>7} {:>8} {:>12} {:>10} {:>11}",
        "ingest",
        "acked/s",
        "x",
        "applied/s",
        "x",
        "per node",
        "ms/req",
        "refused",
        "sextant CPU",
        "nats CPU",
        "CPU us/smp"
    ));
    for r in &results {
        let applied = r.applied_rate();
        let per_node = r.acked_rate() / r.nodes.max(1) as f64 / single;
        say(&format!(
            "{:<18} {:>12.0} {:>7.2} {:>12} {:>7} {:>9.2} {:>7.1} {:>8} {:>12.1} {:>10} {:>11.1}",
            r.name,
            r.acked_rate(),
            r.acked_rate() / single,
            applied.map_or("-".to_owned(), |a| format!("{a:.0}")),
            applied.map_or("-".to_owned(), |a| format!("{:.2}", a / single)),
            per_node,
            r.request_ms(),
            r.refused,
            r.cpu.sextant_total(),
            if r.log.is_some() {
                format!("{:.1}", r.cpu.nats_total())
            } else {
                "-".to_owned()
            },
            (r.cpu.sextant_total() + r.cpu.nats_total()) * 1e6 / r.acked.max(1) as f64,
        ));
    }
    say(
        "x: against the single node's acknowledged rate; per node: acknowledged/s per Sextant node / single (goal >= 0.6); \
         ms/req: mean time to an acknowledgement; CPU: seconds until applied; CPU us/smp: Sextant + NATS CPU per sample",
    );
    results
}

// ------------------------------------------------------------------ query

/// What the killed node's partitions took to come back.
struct Takeover {
    owned_secs: f64,
    answered_secs: Option<f64>,
}

fn query_part(
    workload: &NodeWorkload,
    senders: usize,
    weed: &SeaweedFs,
    scratch: &Path,
) -> Takeover {
    let series = workload.labels().len();
    let end = now_ms() / SCRAPE_MS * SCRAPE_MS;
    let start = end - (QUERY_SCRAPES as i64 - 1) * SCRAPE_MS;
    let pool = requests(workload, start, QUERY_SCRAPES, senders);
    say("");
    say(&format!(
        "query: {series} series ({QUERY_HOSTS} hosts) x {QUERY_SCRAPES} scrapes (an hour at 15 s), written to a fresh single node and a fresh 3-node cluster..."
    ));
    let single = Setup::single("single node", &scratch.join("query-single"));
    let cluster = Setup::cluster("query cluster", &scratch.join("query-cluster"), 3, weed);
    for setup in [&single, &cluster] {
        let loaded = drive(setup, &pool, None, weed);
        let written = (series * QUERY_SCRAPES) as u64;
        assert!(
            loaded.acked == written && loaded.applied_secs.is_some(),
            "{}: {} of {written} samples acknowledged, {} applied",
            setup.name,
            loaded.acked,
            loaded.applied
        );
        say(&format!(
            "  {}: {} samples written in {:.1} s, applied {:.1} s later",
            setup.name,
            loaded.acked,
            loaded.acked_secs,
            loaded.applied_secs.unwrap_or(f64::NAN) - loaded.acked_secs
        ));
    }
    let range = |q: &str| {
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=15",
            url_encode(q),
            start / 1000,
            end / 1000
        )
    };
    let queries = [
        "sum by (job) (rate(node_cpu_seconds_total[5m]))",
        r#"count by (job) ({job="node"})"#,
        r#"{instance=~"host-[01]:9100"}"#,
    ];
    let agent = agent();
    say(&format!(
        "  range queries over the hour at a 15 s step, {QUERY_RUNS} runs each after a warm-up, alternating; ms"
    ));
    say(&format!(
        "  {:<56} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}  {}",
        "query", "series", "single50", "single90", "clust50", "clust90", "x p50", "x p90", "answer"
    ));
    for query in queries {
        let path = range(query);
        let (_, expected) = time_get(&agent, &single.nodes[0].url, &path);
        let answers: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| time_get(&agent, &n.url, &path).1)
            .collect();
        let check = answers
            .iter()
            .map(|a| compare(a, &expected))
            .find(|c| c != "same")
            .unwrap_or_else(|| "same as single".to_owned());
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for run in 0..QUERY_RUNS {
            ours.push(time_get(&agent, &single.nodes[0].url, &path).0);
            theirs.push(time_get(&agent, &cluster.nodes[run % 3].url, &path).0);
        }
        let (s50, s90) = (percentile(&ours, 0.5), percentile(&ours, 0.9));
        let (c50, c90) = (percentile(&theirs, 0.5), percentile(&theirs, 0.9));
        say(&format!(
            "  {query:<56} {:>7} {s50:>9.1} {s90:>9.1} {c50:>9.1} {c90:>9.1} {:>7.2} {:>7.2}  {check}",
            result_series(&expected),
            c50 / s50,
            c90 / s90,
        ));
    }

    // Node c dies without a word: its leases run out, a and b take its
    // partitions and replay them from the log.
    let path = range(queries[0]);
    let (_, expected) = time_get(&agent, &single.nodes[0].url, &path);
    let mut cluster = cluster;
    let mut dead = cluster.nodes.pop().expect("node c");
    let killed = Instant::now();
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let mut owned_secs = None;
    let mut answered_secs = None;
    while killed.elapsed() < Duration::from_secs(90)
        && (owned_secs.is_none() || answered_secs.is_none())
    {
        if owned_secs.is_none() && cluster.owners().is_some() {
            owned_secs = Some(killed.elapsed().as_secs_f64());
        }
        // Refused (503, naming the partition) until an owner answers for
        // each of c's partitions.
        if answered_secs.is_none() {
            let mut reply = agent
                .get(&format!("{}{path}", cluster.nodes[0].url))
                .call()
                .expect("query during the takeover");
            let body = reply.body_mut().read_to_string().unwrap_or_default();
            if reply.status() == 200 && compare(&body, &expected) == "same" {
                answered_secs = Some(killed.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Takeover {
        owned_secs: owned_secs.unwrap_or(f64::NAN),
        answered_secs,
    }
}

// -------------------------------------------------------------- jetstream

fn jetstream_report(ingest: Option<&[Ingest]>, takeover: Option<Takeover>) {
    say("");
    say(&format!(
        "jetstream: stream {METRICS_STREAM}, {REPLICAS} replicas on 3 nats-servers; bytes are one replica's"
    ));
    for r in ingest.into_iter().flatten() {
        let Some((records, bytes)) = r.log else {
            continue;
        };
        say(&format!(
            "  {:<18} {records:>8} records {:>9.0} records/s {:>8.1} MB {:>6.1} MB/s {:>6.1} B/sample {:>5.1} records a request",
            r.name,
            records as f64 / r.acked_secs,
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / r.acked_secs,
            bytes as f64 / r.acked.max(1) as f64,
            records as f64 / r.requests.max(1) as f64,
        ));
    }
    if let Some(t) = takeover {
        say(&format!(
            "  takeover (node c of the query cluster killed): its partitions owned by a and b after {:.1} s; \
             the query answered as before after {}",
            t.owned_secs,
            t.answered_secs
                .map_or("NOT within 90 s".to_owned(), |s| format!("{s:.1} s"))
        ));
    }
}

// ---------------------------------------------------------------- helpers

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Posts a remote-write body until it is acknowledged; returns how many
/// times it was refused (5xx, as under a stream's leader election).
fn write(agent: &ureq::Agent, url: &str, body: &[u8]) -> u64 {
    let mut refused = 0;
    loop {
        let mut reply = agent
            .post(url)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .send(body)
            .unwrap_or_else(|e| panic!("remote write to {url}: {e}"));
        let status = reply.status();
        if status.is_success() {
            return refused;
        }
        let text = reply.body_mut().read_to_string().unwrap_or_default();
        assert!(
            status.is_server_error() && refused < 100,
            "remote write to {url} answered {status}: {text}"
        );
        refused += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GETs `url`; its JSON (null if it is not).
fn get_json(url: &str) -> Value {
    ureq::get(url)
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default()
}

/// GETs `base` + `path`; milliseconds and the body. Panics unless 200.
fn time_get(agent: &ureq::Agent, base: &str, path: &str) -> (f64, String) {
    let started = Instant::now();
    let mut reply = agent
        .get(&format!("{base}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let body = reply
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .expect("body");
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        reply.status(),
        200,
        "{path} on {base}: {}",
        &body[..body.floor_char_boundary(300)]
    );
    (ms, body)
}

fn result_series(body: &str) -> usize {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["data"]["result"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// "same" if the answers' data are equal; else how they differ.
fn compare(answer: &str, expected: &str) -> String {
    let data = |body: &str| {
        serde_json::from_str::<Value>(body)
            .ok()
            .map(|v| v["data"]["result"].clone())
    };
    let (Some(a), Some(e)) = (data(answer), data(expected)) else {
        return "NOT AN ANSWER".to_owned();
    };
    if a == e {
        return "same".to_owned();
    }
    let points = |v: &Value| -> usize {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| s["values"].as_array().map_or(0, Vec::len))
            .sum()
    };
    format!(
        "DIFFERS: {} series, {} points (single: {}, {})",
        a.as_array().map_or(0, Vec::len),
        points(&a),
        e.as_array().map_or(0, Vec::len),
        points(&e)
    )
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}
