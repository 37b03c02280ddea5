//! Sealed data in S3-compatible object storage (SeaweedFS on loopback)
//! against the same data on local disk, in one run:
//!
//! ```sh
//! scripts/setup-test-env >/dev/null      # SeaweedFS's `weed` and boto3
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/object_store                     # 2,000 series x 24 h, 1M log lines
//! target/release/object_store --latency-ms 25     # the store 25 ms away
//! target/release/object_store --logs 10000000     # the issue's 10M log lines
//! target/release/object_store --series 500 --logs 200000 --only metrics
//! ```
//!
//! `weed` is `$SEXTANT_WEED`, else the one beside the test venv's python
//! (`$SEXTANT_TEST_PYTHON`, else what `scripts/setup-test-env` prints); the
//! bucket is created and listed with `tests/python/s3.py` in that venv.
//!
//! Two servers get the same data and the same config (`seal_idle: 2s`,
//! 2 h blocks); one of them also has `storage.object_store` pointing at
//! SeaweedFS through a latency proxy (below).
//!
//! 1. Metrics: `--series` series (10 jobs x instances x 10 histogram
//!    buckets, default 2,000) over `--hours` (24) at 15 s, ending an hour
//!    ago, by remote write. The head is cut into 2 h blocks, compacted and
//!    uploaded; once the backlog is empty and nothing was uploaded for a
//!    minute (a maintenance round), the upload throughput is reported as
//!    bytes uploaded over the time from the first block seen waiting (or
//!    uploaded) to the last upload (`/metrics` polled every 100 ms; that
//!    time includes the cutting and compacting that feed the uploads).
//!    Then two range queries over the whole span at a 60 s step (an
//!    aggregation over every series, and 10 raw series) run on the local
//!    server (median of 5 after a warm-up), and on the object-store server
//!    *cold* (stopped, its local blocks, splits and cache deleted,
//!    restarted: the first run, every block read from the bucket by ranges)
//!    and *warm* (the same query again, median of 5). Each query gets its
//!    own cold restart. Reported: times, their ratios to local, and what was
//!    fetched (`sextant_object_store_*` deltas: whole-object downloads,
//!    range reads, bytes), at the restart and by the query.
//! 2. Logs: `--logs` NDJSON lines (logstash-shaped, as in `logs.rs`; a
//!    request id `uuid` shared by ~10 lines) posted to `/api/v1/logs`, spread
//!    over yesterday (UTC), so the day is sealed into a split 2 s after the
//!    last line and uploaded. Then 200 request-id lookups (`uuid:"..."`, all
//!    time): p50/p99 on the local server, cold (after the same stop, delete,
//!    restart) and warm (the same 200 again), with bytes fetched.
//!
//! Latency (`--latency-ms N`, default 0): Sextant reaches SeaweedFS through
//! a TCP proxy in this process that holds each request N ms before passing
//! it on. A request is recognised without parsing HTTP: bytes from Sextant
//! begin a new request when they are the first on a connection, or the
//! first since SeaweedFS last sent anything (HTTP/1.1 without pipelining,
//! which is what Sextant's client speaks). So every request pays N ms once,
//! as a store N ms away (one round trip) would add to its first byte; large
//! bodies are not slowed further, and connection set-up costs nothing extra.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_bench::{
    Peer, Rng, SeaweedFs, dir_bytes, event, flag_value, free_port, metric_value, now_ms,
    request_uuid, say, url_encode,
};
use sextant_ingest::remote_write::{encode, proto};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const STEP_MS: i64 = 15_000;
const DAY_US: i64 = 24 * 3600 * 1_000_000;
/// Runs of a warm query whose median is reported.
const WARM_RUNS: usize = 5;
/// Request ids looked up, each once per round.
const LOOKUPS: u64 = 200;
/// Where the object-store server keeps its data in the bucket.
const BUCKET: &str = SeaweedFs::BUCKET;
const PREFIX: &str = "bench";
const ACCESS_KEY: &str = SeaweedFs::ACCESS_KEY;
const SECRET_KEY: &str = SeaweedFs::SECRET_KEY;
/// The TSDB's maintenance period for 2 h blocks: once nothing has been
/// uploaded for longer than this, no maintenance round has more to upload.
const METRICS_QUIET: Duration = Duration::from_secs(65);
/// How often `/metrics` is read while waiting for uploads.
const POLL: Duration = Duration::from_millis(100);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |flag: &str, default: u64| {
        flag_value(&args, flag).map_or(default, |v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{flag} N"))
        })
    };
    let latency = Duration::from_millis(number("--latency-ms", 0));
    let series = number("--series", 2_000).max(100) as usize;
    let hours = number("--hours", 24).max(4) as i64;
    let docs = number("--logs", 1_000_000).max(LOOKUPS * 10);
    let only = flag_value(&args, "--only");
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);

    let weed = SeaweedFs::start();
    // The proxy's own runtime; everything else here is blocking code.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let proxy = start_proxy(&runtime, weed.s3_addr(), latency);
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut remote = Node::create(
        &scratch.path().join("object-store"),
        Some(&format!("http://{proxy}")),
    );
    let mut local = Node::create(&scratch.path().join("local"), None);
    remote.start();
    local.start();
    say(&format!(
        "store latency: {} ms added to each request (proxy on {proxy} in front of SeaweedFS's S3 on {})",
        latency.as_millis(),
        weed.s3_addr()
    ));
    say(&format!(
        "object-store server: {}; local server: {}",
        remote.describe(),
        local.describe()
    ));
    if run("metrics") {
        metrics_part(&mut remote, &mut local, series, hours);
    }
    if run("logs") {
        logs_part(&mut remote, &mut local, &weed, docs);
    }
    remote.stop();
    local.stop();
}

// ---------------------------------------------------------------- metrics

/// One series: its labels and how its counter grows each scrape.
struct Gen {
    labels: Vec<proto::Label>,
    value: f64,
    rate: f64,
}

/// Remote-write bodies of `scrapes` samples per series from `start`,
/// `per_body` scrapes of every series in each, in time order.
fn bodies(series: &mut [Gen], start: i64, scrapes: i64, per_body: i64) -> Vec<Vec<u8>> {
    let mut rng = Rng(11);
    let mut out = Vec::new();
    let mut k = 0;
    while k < scrapes {
        let n = per_body.min(scrapes - k);
        let timeseries = series
            .iter_mut()
            .map(|g| proto::TimeSeries {
                labels: g.labels.clone(),
                samples: (0..n)
                    .map(|i| {
                        g.value += (g.rate * rng.unit() * 2.0).round();
                        proto::Sample {
                            value: g.value,
                            timestamp: start + (k + i) * STEP_MS,
                        }
                    })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            })
            .collect();
        out.push(encode(&proto::WriteRequest {
            timeseries,
            metadata: vec![],
        }));
        k += n;
    }
    out
}

fn metrics_part(remote: &mut Node, local: &mut Node, series: usize, hours: i64) {
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    let instances = series / 100;
    let mut gens = Vec::new();
    for job in 0..10 {
        for instance in 0..instances {
            for (i, le) in les.iter().enumerate() {
                gens.push(Gen {
                    labels: [
                        (
                            "__name__",
                            "http_request_duration_seconds_bucket".to_owned(),
                        ),
                        ("instance", format!("host-{instance}:9100")),
                        ("job", format!("service-{job}")),
                        ("le", (*le).to_owned()),
                    ]
                    .into_iter()
                    .map(|(name, value)| proto::Label {
                        name: name.to_owned(),
                        value,
                    })
                    .collect(),
                    value: 0.0,
                    rate: 1.0 + i as f64,
                });
            }
        }
    }
    let scrapes = hours * 3600 * 1000 / STEP_MS;
    let end = (now_ms() - 3_600_000) / STEP_MS * STEP_MS;
    let start = end - (scrapes - 1) * STEP_MS;
    let samples = gens.len() as f64 * scrapes as f64;
    say(&format!(
        "metrics: {} series x {hours} h at 15 s ({:.1}M samples) ending an hour ago, 2 h blocks; written to both servers by remote write...",
        gens.len(),
        samples / 1e6
    ));
    let payload = bodies(&mut gens, start, scrapes, 20);

    // Blocks may be cut and uploaded while the load is still going on.
    let mut watch = UploadWatch::new(remote);
    let loading = Instant::now();
    std::thread::scope(|scope| {
        let loads = [remote.url(), local.url()].map(|url| {
            let payload = &payload;
            scope.spawn(move || {
                let agent = agent();
                for body in payload {
                    sextant_bench::remote_write(&agent, &format!("{url}/api/v1/write"), body);
                }
            })
        });
        while !loads.iter().all(|l| l.is_finished()) {
            watch.poll(remote);
            std::thread::sleep(POLL);
        }
    });
    drop(payload);
    say(&format!(
        "  written to both in {:.1} s; waiting for blocks to be cut, compacted and uploaded...",
        loading.elapsed().as_secs_f64()
    ));
    wait_for(
        "the metric blocks to settle",
        Duration::from_secs(30 * 60),
        || {
            let backlog = watch.poll(remote);
            let same_blocks = ["sextant_tsdb_head_cuts_total", "sextant_tsdb_blocks"]
                .iter()
                .all(|m| remote.metric(m) == local.metric(m));
            watch.uploads > 0.0
                && backlog == 0.0
                && watch.quiet_for() >= METRICS_QUIET
                && same_blocks
        },
    );
    // The local server's: the object-store server's local copies are a
    // cache, which may already have let some go.
    let blocks_on_disk = dir_bytes(&local.data().join("metrics/blocks"));
    say(&format!(
        "  uploads: {:.0} ({:.0} blocks cut, {:.0} compactions), {}: {} over the {:.1} s from the first block waiting to the last upload; \
         {:.2}x the {} of blocks kept (compaction uploads data again)",
        watch.uploads,
        remote.metric("sextant_tsdb_head_cuts_total"),
        remote.metric("sextant_tsdb_compactions_total"),
        bytes(watch.bytes),
        rate(watch.bytes, watch.active_secs()),
        watch.active_secs(),
        watch.bytes / blocks_on_disk.max(1) as f64,
        bytes(blocks_on_disk as f64),
    ));

    let range = |q: &str| {
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            url_encode(q),
            (end - hours * 3_600_000) / 1000,
            end / 1000
        )
    };
    let queries = [
        "sum by (job) (rate(http_request_duration_seconds_bucket[5m]))",
        r#"http_request_duration_seconds_bucket{job="service-3",instance="host-0:9100"}"#,
    ];
    say(&format!(
        "  {hours} h range queries at a 60 s step; local and warm: median of {WARM_RUNS}; fetched: whole downloads / range reads / bytes"
    ));
    say(&format!(
        "  {:<78} {:>9} {:>9} {:>8} {:>9} {:>8}  {:<28} {}",
        "query",
        "local ms",
        "cold ms",
        "x local",
        "warm ms",
        "x local",
        "cold fetched",
        "warm fetched (a run)"
    ));
    let agent = agent();
    for query in queries {
        let path = range(query);
        let (_, expected) = get(&agent, local, &path);
        let local_ms = median(
            (0..WARM_RUNS)
                .map(|_| get(&agent, local, &path).0)
                .collect(),
        );

        let start_fetch = remote.restart_cold();
        let before = Fetched::read(remote);
        let (cold_ms, answer) = get(&agent, remote, &path);
        let cold_fetch = Fetched::read(remote).since(&before);
        let before = Fetched::read(remote);
        let warm_ms = median(
            (0..WARM_RUNS)
                .map(|_| get(&agent, remote, &path).0)
                .collect(),
        );
        let warm_fetch = Fetched::read(remote).since(&before).per(WARM_RUNS);
        say(&format!(
            "  {query:<78} {local_ms:>9.1} {cold_ms:>9.1} {:>8.2} {warm_ms:>9.1} {:>8.2}  {:<28} {}",
            cold_ms / local_ms,
            warm_ms / local_ms,
            cold_fetch,
            warm_fetch,
        ));
        say(&format!(
            "    (restart: ready in {:.1} s, {} fetched at start; {} series, {})",
            remote.ready_secs,
            start_fetch,
            result_series(&answer),
            if same_data(&answer, &expected) {
                "same answer as local".to_owned()
            } else {
                format!("ANSWER DIFFERS FROM LOCAL: {}", excerpt(&answer))
            }
        ));
    }
}

// ------------------------------------------------------------------- logs

/// Lines a request to `/api/v1/logs` carries (~3 MB).
const LINES_PER_POST: u64 = 10_000;

fn logs_part(remote: &mut Node, local: &mut Node, weed: &SeaweedFs, docs: u64) {
    let day_us = now_ms() * 1000 / DAY_US * DAY_US - DAY_US;
    let (y, mo, d) = sextant_model::time::civil_from_days(day_us / DAY_US);
    say(&format!(
        "logs: {docs} lines over {y:04}-{mo:02}-{d:02} (yesterday, UTC) posted as NDJSON to both servers, {LINES_PER_POST} a request..."
    ));
    let manifests = || {
        weed.list(&format!("{PREFIX}/logs/"))
            .into_iter()
            .filter(|k| k.ends_with(".json") && k.matches('/').count() == 2)
            .count()
    };
    let splits_before = manifests();
    let mut watch = UploadWatch::new(remote);
    let posting = Instant::now();
    let raw = std::thread::scope(|scope| {
        let posts = [remote.url(), local.url()].map(|url| {
            scope.spawn(move || {
                // Each sender makes the same lines from the same seed.
                let agent = agent();
                let mut rng = Rng(7);
                let mut raw = 0;
                let mut i = 0;
                while i < docs {
                    let mut body = String::new();
                    for j in i..(i + LINES_PER_POST).min(docs) {
                        body.push_str(&event(j, &mut rng, day_us, docs));
                        body.push('\n');
                    }
                    raw += body.len() as u64;
                    let mut reply = agent
                        .post(&format!("{url}/api/v1/logs"))
                        .header("content-type", "application/x-ndjson")
                        .send(body.as_bytes())
                        .expect("post logs");
                    let text = reply.body_mut().read_to_string().unwrap_or_default();
                    assert_eq!(reply.status(), 200, "posting logs to {url}: {text}");
                    i += LINES_PER_POST;
                }
                raw
            })
        });
        let [raw, _] = posts.map(|p| p.join().expect("log sender"));
        raw
    });
    let posted = posting.elapsed().as_secs_f64();
    say(&format!(
        "  posted {} of NDJSON to each in {posted:.1} s; waiting for the day to be sealed and uploaded...",
        bytes(raw as f64)
    ));
    // No partition left active. (The object-store server's local copy of
    // a split is only a cache, which a big split may already have left.)
    let sealed = |node: &Node| {
        std::fs::read_dir(node.data().join("logs/active")).map_or(0, |d| d.count()) == 0
    };
    let mut splits = 0;
    wait_for(
        "the log split to be uploaded",
        Duration::from_secs(60 * 60),
        || {
            let backlog = watch.poll(remote);
            if backlog > 0.0 || watch.quiet_for() < Duration::from_secs(5) {
                return false;
            }
            splits = manifests() - splits_before;
            splits > 0
                && sealed(remote)
                && sealed(local)
                && dir_bytes(&local.data().join("logs/splits")) > 0
        },
    );
    let split_bytes = dir_bytes(&local.data().join("logs/splits"));
    say(&format!(
        "  {splits} split(s) in the bucket, the last upload {:.1} s after the last post; {:.0} uploads, {} ({:.2}x the raw JSON): {} over the {:.1} s from the split waiting to its upload",
        watch
            .last
            .map_or(0.0, |t| (t - posting).as_secs_f64() - posted),
        watch.uploads,
        bytes(watch.bytes),
        watch.bytes / raw as f64,
        rate(watch.bytes, watch.active_secs()),
        watch.active_secs(),
    ));
    say(&format!(
        "  local split(s): {} on disk",
        bytes(split_bytes as f64)
    ));

    let ids: Vec<String> = (0..LOOKUPS)
        .map(|k| request_uuid((k * 7919) % (docs / 10)))
        .collect();
    let agent = agent();
    let (local_times, expected) = lookups(&agent, local, &ids);
    if let Some(missing) = expected.iter().position(|&n| n == 0) {
        panic!("{} not found on the local server", ids[missing]);
    }
    let start_fetch = remote.restart_cold();
    let before = Fetched::read(remote);
    let (cold_times, cold_totals) = lookups(&agent, remote, &ids);
    let cold_fetch = Fetched::read(remote).since(&before);
    let before = Fetched::read(remote);
    let (warm_times, warm_totals) = lookups(&agent, remote, &ids);
    let warm_fetch = Fetched::read(remote).since(&before);
    let differ = expected
        .iter()
        .zip(cold_totals.iter().zip(&warm_totals))
        .filter(|(e, (c, w))| e != c || e != w)
        .count();
    say(&format!(
        "  request-id lookups (uuid:\"...\", all time), {LOOKUPS} ids; fetched: whole downloads / range reads / bytes"
    ));
    say(&format!(
        "  {:<7} {:>9} {:>9} {:>8} {:>9} {:>8} {:>10}  {}",
        "",
        "first ms",
        "p50 ms",
        "x local",
        "p99 ms",
        "x local",
        "total s",
        "fetched (all lookups)"
    ));
    let local_p50 = percentile(&local_times, 0.5);
    let local_p99 = percentile(&local_times, 0.99);
    for (name, times, fetched) in [
        ("local", &local_times, "-".to_owned()),
        ("cold", &cold_times, cold_fetch.to_string()),
        ("warm", &warm_times, warm_fetch.to_string()),
    ] {
        let (p50, p99) = (percentile(times, 0.5), percentile(times, 0.99));
        say(&format!(
            "  {name:<7} {:>9.1} {p50:>9.1} {:>8.2} {p99:>9.1} {:>8.2} {:>10.2}  {fetched}",
            times[0],
            p50 / local_p50,
            p99 / local_p99,
            times.iter().sum::<f64>() / 1000.0,
        ));
    }
    say(&format!(
        "  (restart: ready in {:.1} s, {start_fetch} fetched at start; {} hits a lookup on average; {})",
        remote.ready_secs,
        expected.iter().sum::<u64>() / LOOKUPS,
        if differ == 0 {
            "every count as local".to_owned()
        } else {
            format!("{differ} LOOKUPS COUNT DIFFERENTLY FROM LOCAL")
        }
    ));
}

/// Looks each id up once; milliseconds and hit counts, in order.
fn lookups(agent: &ureq::Agent, node: &Node, ids: &[String]) -> (Vec<f64>, Vec<u64>) {
    ids.iter()
        .map(|id| {
            let q = url_encode(&format!("uuid:\"{id}\""));
            let (ms, body) = get(agent, node, &format!("/api/v1/logs/search?q={q}&start=0"));
            let total = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["total"].as_u64())
                .unwrap_or(0);
            // A miss is counted against local's answer, not fatal.
            (ms, total)
        })
        .unzip()
}

// ------------------------------------------------------------ the servers

/// One Sextant server: its directory (config, log, data) and process.
struct Node {
    root: PathBuf,
    config: PathBuf,
    with_store: bool,
    peer: Option<Peer>,
    /// Seconds the last start took to answer `/-/ready`.
    ready_secs: f64,
}

impl Node {
    /// Writes the config under `root`, with the bucket behind `endpoint`
    /// if given; starts nothing.
    fn create(root: &Path, endpoint: Option<&str>) -> Self {
        std::fs::create_dir_all(root).expect("server dir");
        let mut config =
            "storage:\n  seal_idle: 2s\n  metrics:\n    block_duration: 2h\n".to_owned();
        if let Some(endpoint) = endpoint {
            // The cache's directory is the default one, named so that it is
            // plain what a cold restart deletes.
            config.push_str(&format!(
                "  object_store:\n    url: s3://{BUCKET}/{PREFIX}\n    endpoint: {endpoint}\n    region: us-east-1\n    \
                 access_key_id: {ACCESS_KEY}\n    secret_access_key: {SECRET_KEY}\n    \
                 cache_size: 268435456\n    cache_dir: {}\n",
                root.join("data/cache").display()
            ));
        }
        let config_path = root.join("sextant.yaml");
        std::fs::write(&config_path, &config).expect("write the config");
        Self {
            root: root.to_owned(),
            config: config_path,
            with_store: endpoint.is_some(),
            peer: None,
            ready_secs: 0.0,
        }
    }

    fn name(&self) -> &'static str {
        if self.with_store {
            "the object-store server"
        } else {
            "the local server"
        }
    }

    /// The config in one line, for the report.
    fn describe(&self) -> String {
        std::fs::read_to_string(&self.config)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("secret") && !l.contains("key_id"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn url(&self) -> String {
        self.peer.as_ref().expect("server running").url.clone()
    }

    /// Starts the server and waits until it is ready; panics with the end of
    /// its log if it stops instead.
    fn start(&mut self) {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("sextant.log"))
            .expect("open sextant.log");
        let child = Command::new(sextant_binary())
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.data())
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args(["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
            .args(["--statsd", "127.0.0.1:0", "--logstash", "127.0.0.1:0"])
            .args(["--syslog", "127.0.0.1:0", "--forward", "127.0.0.1:0"])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start sextant: {e} (cargo build --release -p sextant-server)")
            });
        let url = format!("http://127.0.0.1:{port}");
        let mut peer = Peer {
            child,
            write_url: format!("{url}/api/v1/write"),
            url,
        };
        let started = Instant::now();
        let probe: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        loop {
            if let Some(status) = peer.child.try_wait().expect("wait") {
                panic!("{} exited with {status}:\n{}", self.name(), self.log_tail());
            }
            if probe.get(&format!("{}/-/ready", peer.url)).call().is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{} not ready after 10 minutes:\n{}",
                self.name(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.ready_secs = started.elapsed().as_secs_f64();
        self.peer = Some(peer);
    }

    /// Stops the server with SIGTERM (SIGKILL after a minute).
    fn stop(&mut self) {
        let Some(mut peer) = self.peer.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &peer.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if peer.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Dropping the peer kills it if it is still running.
    }

    /// Stops the server, deletes its local copies of sealed data and its
    /// cache, and starts it again: everything sealed is now in the bucket
    /// only. Returns what the start fetched.
    fn restart_cold(&mut self) -> Fetched {
        self.stop();
        let data = self.data();
        for dir in ["metrics/blocks", "logs/splits", "traces/splits", "cache"] {
            match std::fs::remove_dir_all(data.join(dir)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("delete {dir}: {e}"),
            }
        }
        self.start();
        Fetched::read(self)
    }

    /// The server's `/metrics` page.
    fn metrics(&self) -> String {
        ureq::get(&format!("{}/metrics", self.url()))
            .call()
            .expect("GET /metrics")
            .body_mut()
            .read_to_string()
            .expect("/metrics body")
    }

    /// One sample of `/metrics` (see [`metric_value`]).
    fn metric(&self, name: &str) -> f64 {
        metric_value(&self.metrics(), name)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.root.join("sextant.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The release `sextant` beside this binary.
fn sextant_binary() -> PathBuf {
    std::env::current_exe()
        .expect("exe")
        .with_file_name("sextant")
}

/// What the object store counters say was fetched.
#[derive(Debug, Clone, Copy, Default)]
struct Fetched {
    downloads: f64,
    range_reads: f64,
    bytes: f64,
}

impl Fetched {
    fn read(node: &Node) -> Self {
        let page = node.metrics();
        Self {
            downloads: metric_value(&page, "sextant_object_store_downloads_total"),
            range_reads: metric_value(&page, "sextant_object_store_range_reads_total"),
            bytes: metric_value(&page, "sextant_object_store_downloaded_bytes_total"),
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            downloads: self.downloads - before.downloads,
            range_reads: self.range_reads - before.range_reads,
            bytes: self.bytes - before.bytes,
        }
    }

    fn per(&self, runs: usize) -> Self {
        let n = runs as f64;
        Self {
            downloads: self.downloads / n,
            range_reads: self.range_reads / n,
            bytes: self.bytes / n,
        }
    }
}

impl std::fmt::Display for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Through `pad`, so a table's width and alignment apply.
        f.pad(&format!(
            "{:.0} / {:.0} / {}",
            self.downloads,
            self.range_reads,
            bytes(self.bytes)
        ))
    }
}

/// Uploads seen on `/metrics`: how many, how many bytes, and when the
/// counters last moved.
struct UploadWatch {
    base_uploads: f64,
    base_bytes: f64,
    /// Since the watch began.
    uploads: f64,
    bytes: f64,
    /// The first poll that saw a block waiting or an upload.
    first: Option<Instant>,
    /// The last poll that saw an upload.
    last: Option<Instant>,
    began: Instant,
}

impl UploadWatch {
    fn new(node: &Node) -> Self {
        Self {
            base_uploads: node.metric("sextant_object_store_uploads_total"),
            base_bytes: node.metric("sextant_object_store_uploaded_bytes_total"),
            uploads: 0.0,
            bytes: 0.0,
            first: None,
            last: None,
            began: Instant::now(),
        }
    }

    /// Reads the counters; returns the backlog (blocks not yet uploaded).
    fn poll(&mut self, node: &Node) -> f64 {
        let page = node.metrics();
        let uploads = metric_value(&page, "sextant_object_store_uploads_total") - self.base_uploads;
        let bytes =
            metric_value(&page, "sextant_object_store_uploaded_bytes_total") - self.base_bytes;
        let backlog = metric_value(&page, "sextant_object_store_backlog_blocks");
        let now = Instant::now();
        if backlog > 0.0 {
            self.first.get_or_insert(now);
        }
        if uploads != self.uploads || bytes != self.bytes {
            self.first.get_or_insert(now);
            self.last = Some(now);
            self.uploads = uploads;
            self.bytes = bytes;
        }
        backlog
    }

    /// How long the counters have not moved.
    fn quiet_for(&self) -> Duration {
        self.last.unwrap_or(self.began).elapsed()
    }

    /// Seconds from the first poll that saw a block waiting (or uploaded)
    /// to the last that saw an upload: at least one poll.
    fn active_secs(&self) -> f64 {
        match (self.first, self.last) {
            (Some(first), Some(last)) => (last - first).as_secs_f64().max(POLL.as_secs_f64()),
            _ => 0.0,
        }
    }
}

// ------------------------------------------------------------ the proxy

/// Listens on a loopback port and relays each connection to `upstream`,
/// holding every request `delay` before passing it on (see the module doc).
fn start_proxy(
    runtime: &tokio::runtime::Runtime,
    upstream: SocketAddr,
    delay: Duration,
) -> SocketAddr {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy address");
    runtime.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(relay(client, upstream, delay));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    addr
}

/// Copies bytes both ways until either side closes.
async fn relay(client: tokio::net::TcpStream, upstream: SocketAddr, delay: Duration) {
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Whether the server has sent anything since the client last did: then
    // the client's next bytes begin a new request. True at first, so a new
    // connection's first request is held too.
    let answered = Arc::new(AtomicBool::new(true));
    let requests = {
        let answered = answered.clone();
        async move {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                if answered.swap(false, Ordering::AcqRel) && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if to_server.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown().await;
        }
    };
    let responses = async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            answered.store(true, Ordering::Release);
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_client.shutdown().await;
    };
    tokio::join!(requests, responses);
}

// ---------------------------------------------------------------- helpers

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// GETs `path` on `node`; milliseconds and the body. Panics unless 200.
fn get(agent: &ureq::Agent, node: &Node, path: &str) -> (f64, String) {
    let started = Instant::now();
    let mut reply = agent
        .get(&format!("{}{path}", node.url()))
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
        "{path} on {}: {}\n{}",
        node.name(),
        excerpt(&body),
        node.log_tail()
    );
    (ms, body)
}

/// Calls `done` every [`POLL`] until it says yes; panics after `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(POLL);
    }
}

fn result_series(body: &str) -> usize {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["data"]["result"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn same_data(a: &str, b: &str) -> bool {
    let data = |body: &str| {
        serde_json::from_str::<Value>(body)
            .ok()
            .map(|v| v["data"].clone())
    };
    data(a).is_some() && data(a) == data(b)
}

fn excerpt(body: &str) -> &str {
    &body[..body.floor_char_boundary(300)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(times: &[f64], p: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bytes(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} kB", n / 1e3)
    }
}

fn rate(bytes: f64, secs: f64) -> String {
    if secs > 0.0 {
        format!("{:.1} MB/s", bytes / 1e6 / secs)
    } else {
        "-".to_owned()
    }
}
