//! Cluster mode over a real 3-node NATS JetStream cluster on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_cluster::{Cluster, ClusterConfig};
use sextant_tests::{
    NatsCluster, Receiver, SeaweedFs, Sextant, parse_export, run_python, run_sextant, series,
    url_encode,
};

fn config(node: &str, nats: &NatsCluster) -> ClusterConfig {
    ClusterConfig {
        node_id: node.into(),
        nats: nats.urls(),
        partitions: 16,
        replicas: 3,
        advertise: None,
        token: None,
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

    // Blobs fenced by a lease: written while it is held, refused once it
    // is not (the last write stays), read either way.
    let held = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fence = held.clone();
    let blobs = runtime
        .block_on(nodes[0].blobs("test-blobs"))
        .unwrap()
        .fenced_by(Arc::new(move || {
            fence
                .load(std::sync::atomic::Ordering::SeqCst)
                .then_some(Duration::from_secs(5))
        }));
    blobs.put("state.json", b"one").unwrap();
    held.store(false, std::sync::atomic::Ordering::SeqCst);
    let refused = blobs.put("state.json", b"two").unwrap_err().to_string();
    assert!(refused.contains("no longer holds the lease"), "{refused}");
    assert!(blobs.delete("state.json").is_err());
    assert_eq!(
        blobs.get("state.json").unwrap().as_deref(),
        Some(&b"one"[..])
    );

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

/// A node's config: the cluster over `nats`, blocks in the shared bucket,
/// one-minute blocks so owners cut, upload and move their replay points
/// while the test runs.
fn node_config(
    dir: &std::path::Path,
    node: &str,
    nats: &NatsCluster,
    s3: &SeaweedFs,
    receiver: &str,
) -> String {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: traffic\n    interval: 1s\n    rules:\n      - alert: RequestsSeen\n        expr: count(requests_total) > 0\n        for: 0s\n",
    )
    .unwrap();
    let path = dir.join(format!("{node}.yaml"));
    let urls: Vec<String> = nats.urls().iter().map(|u| format!("\"{u}\"")).collect();
    std::fs::write(
        &path,
        format!(
            r#"
cluster:
  node_id: {node}
  nats: [{urls}]
  partitions: 8
  replicas: 3
rule_files: [rules.yml]
alerting:
  receivers:
    - name: ops
      webhooks:
        - url: {receiver}/alertmanager
          format: alertmanager
  route:
    receiver: ops
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
storage:
  metrics:
    block_duration: 1m
  object_store:
    url: s3://{bucket}/cluster
    endpoint: {endpoint}
    region: us-east-1
    access_key_id: {key}
    secret_access_key: {secret}
"#,
            urls = urls.join(", "),
            bucket = SeaweedFs::bucket(),
            endpoint = s3.endpoint(),
            key = SeaweedFs::access_key(),
            secret = SeaweedFs::secret_key(),
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// A latency histogram of job `i % 3` (schema 0, buckets filling as
/// minutes pass), four samples 15 s apart from `t`, with an exemplar.
fn latency_series(i: i64, t: i64, minute: u64) -> sextant_ingest::remote_write::proto::TimeSeries {
    use sextant_ingest::remote_write::proto;
    let histograms = (0..4u64)
        .map(|s| {
            let n = (minute * 4 + s) * (i as u64 + 1);
            proto::Histogram {
                count: Some(proto::histogram::Count::CountInt(3 * n)),
                sum: n as f64 * 0.75,
                schema: 0,
                zero_threshold: 1e-128,
                zero_count: Some(proto::histogram::ZeroCount::ZeroCountInt(0)),
                positive_spans: vec![proto::BucketSpan {
                    offset: -2,
                    length: 3,
                }],
                // Absolute n, n, n: deltas n, 0, 0.
                positive_deltas: vec![n as i64, 0, 0],
                timestamp: t + s as i64 * 15_000,
                ..Default::default()
            }
        })
        .collect();
    let mut ts = series(
        &[
            ("__name__", "latency_seconds"),
            ("job", &format!("job{}", i % 3)),
            ("instance", &format!("host{i}")),
        ],
        &[],
    );
    ts.histograms = histograms;
    ts.exemplars = vec![proto::Exemplar {
        labels: vec![proto::Label {
            name: "trace_id".into(),
            value: format!("{:032x}", i as u64 * 1000 + minute),
        }],
        value: 0.4,
        timestamp: t,
    }];
    ts
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every partition owned and every node owning some, as `node` sees it:
/// the partitions have settled after the nodes joined.
fn all_owned(node: &Sextant, partitions: usize, nodes: usize) -> bool {
    let status = node.get("/api/v1/status/cluster").json();
    status["data"]["owners"].as_object().is_some_and(|o| {
        let holders: std::collections::BTreeSet<&str> =
            o.values().filter_map(Value::as_str).collect();
        o.len() == partitions && holders.len() == nodes
    })
}

/// `GET path` on `node` until it answers 200; its JSON body.
fn data_or_body(node: &Sextant, path: &str) -> Value {
    let started = Instant::now();
    loop {
        let reply = node.get(path);
        if reply.status == 200 {
            return reply.json();
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{path} never answered: {} {}",
            reply.status,
            reply.body
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `GET path` on `node` until it answers 200; its JSON `data`.
fn data_of(node: &Sextant, path: &str) -> Value {
    let started = Instant::now();
    loop {
        let reply = node.get(path);
        if reply.status == 200 {
            return reply.json()["data"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{path} never answered: {} {}",
            reply.status,
            reply.body
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every acknowledged write `(series name, t)` named `<prefix>...` is on
/// `node` with its three samples, once. A partition whose owner is still
/// catching up (after a NATS server died, its consumer moves to another)
/// answers 503 and is asked again for up to 30 s.
fn all_acknowledged_are_there(node: &Sextant, prefix: &str, acknowledged: &[(String, i64)]) {
    let selector = format!("{{__name__=~\"{prefix}.*\"}}");
    let expected: BTreeMap<String, Vec<i64>> = acknowledged
        .iter()
        .map(|(name, now)| (format!("{name}{{}}"), vec![now - 2_000, now - 1_000, *now]))
        .collect();
    let mut exported = BTreeMap::new();
    let mut last_error = String::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let answer = node.get(&format!("/api/v1/export?match[]={}", url_encode(&selector)));
        if answer.status != 200 {
            last_error = answer.body;
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        // The answer just read: asking again could meet the next takeover.
        exported = parse_export(&answer.body)
            .into_iter()
            .map(|(k, p)| (k, p.iter().map(|(t, _)| *t).collect::<Vec<i64>>()))
            .filter(|(k, _)| expected.contains_key(k))
            .collect();
        if exported == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| exported.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    // What the node said of its partitions, to tell a lag from a loss.
    let owners: Vec<String> = node
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("caught up") || l.contains("replaying"))
        .map(|l| l.chars().take(400).collect())
        .collect();
    panic!(
        "{} of {} acknowledged writes missing, e.g. {:?} (last answer: {last_error})\n{}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)],
        owners.join("\n")
    );
}

/// Writes a series named `<prefix><i>` through `node` every 20 ms while
/// `writing` holds; what was acknowledged, and what failed.
fn write_while(
    node: &Sextant,
    prefix: &str,
    writing: &std::sync::atomic::AtomicBool,
) -> (Vec<(String, i64)>, Vec<String>) {
    let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
    let mut i = 0;
    while writing.load(std::sync::atomic::Ordering::Relaxed) {
        let name = format!("{prefix}{i}");
        let now = now_ms();
        let samples = [(now - 2_000, 1.0), (now - 1_000, 2.0), (now, 3.0)];
        let reply = node.remote_write(vec![series(&[("__name__", &name)], &samples)]);
        if reply.status == 204 {
            acknowledged.push((name, now));
        } else {
            failed.push(format!("{} {}", reply.status, reply.body));
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    (acknowledged, failed)
}

#[test]
fn three_nodes_answer_as_one_and_lose_nothing_when_one_is_killed() {
    let mut nats = NatsCluster::start(3);
    let mut s3 = SeaweedFs::start();
    let scratch = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let b_config = node_config(scratch.path(), "b", &nats, &s3, &receiver.url(""));
    let start = |node: &str| {
        let config = node_config(scratch.path(), node, &nats, &s3, &receiver.url(""));
        Sextant::builder()
            .data_dir(&scratch.path().join(format!("{node}-data")))
            .args(["--config", &config])
            .start()
    };
    let a = start("a");
    let b = start("b");
    let c = start("c");
    let single = Sextant::start();
    for node in [&a, &b, &c] {
        wait_until("every partition owned", Duration::from_secs(30), || {
            all_owned(node, 8, 3)
        });
    }

    // Half an hour of 40 series, remote-written through node a (and the
    // reference single node), in batches as Prometheus sends them.
    let end = now_ms() / 60_000 * 60_000;
    let begin = end - 30 * 60_000;
    for minute in 0..30 {
        let batch: Vec<_> = (0..40)
            .map(|i| {
                let job = format!("job{}", i % 4);
                let instance = format!("host{i}");
                let samples: Vec<(i64, f64)> = (0..4)
                    .map(|s| {
                        let t = begin + minute * 60_000 + s * 15_000;
                        (t, (minute * 4 + s) as f64 * (i + 1) as f64)
                    })
                    .collect();
                series(
                    &[
                        ("__name__", "requests_total"),
                        ("job", &job),
                        ("instance", &instance),
                    ],
                    &samples,
                )
            })
            .collect();
        for node in [&a, &single] {
            let reply = node.remote_write(batch.clone());
            assert_eq!(reply.status, 204, "{}", reply.body);
        }
    }
    // Native histograms with exemplars, six series, written the same way.
    for minute in 0..30 {
        let batch: Vec<_> = (0..6)
            .map(|i| latency_series(i, begin + minute * 60_000, minute as u64))
            .collect();
        for node in [&a, &single] {
            let reply = node.remote_write(batch.clone());
            assert_eq!(reply.status, 204, "{}", reply.body);
        }
    }
    // StatsD through nodes b and c, with the Python client: each node
    // aggregates what it took, as its own series (`instance`).
    for (node, count) in [(&b, 7), (&c, 5)] {
        let udp = node.addr("statsd", "udp");
        run_python(
            "import sys, statsd\nc = statsd.StatsClient(sys.argv[1], int(sys.argv[2]))\nfor _ in range(int(sys.argv[3])): c.incr('orders.placed')\n",
            &[
                &udp.ip().to_string(),
                &udp.port().to_string(),
                &count.to_string(),
            ],
        );
    }

    // Logs with python-logstash through node b, spans with the
    // OpenTelemetry SDK through node c: five services, eight requests each,
    // every request one log line and a trace of two spans.
    let logstash = b.addr("logstash", "tcp");
    let otlp = format!("http://{}", c.addr("otlp_http", "tcp"));
    let sent = run_python(
        r#"
import logging, sys, logstash
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry import trace
host, port, otlp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
handler = logstash.TCPLogstashHandler(host, port, version=1)
for service in ["gateway", "orders", "market", "fees", "accounts"]:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces")))
    tracer = provider.get_tracer("shop")
    log = logging.getLogger(service)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    for i in range(8):
        with tracer.start_as_current_span("handle") as root:
            with tracer.start_as_current_span("query"):
                pass
        trace_id = format(root.get_span_context().trace_id, "032x")
        log.info("request %d served", i, extra={"uuid": f"req-{service}-{i}", "trace_id": trace_id, "service": service})
        print(service, i, trace_id)
    provider.shutdown()
handler.close()
"#,
        &[
            &logstash.ip().to_string(),
            &logstash.port().to_string(),
            &otlp,
        ],
    );
    let requests: Vec<(String, String, String)> = sent
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    assert_eq!(requests.len(), 40, "{sent}");
    let telemetry_is_whole = |node: &Sextant| {
        // python-logstash does not wait for an answer: the lines may
        // still be on their way.
        node.get_until("/api/v1/logs/search?q=served&limit=100&start=0", |v| {
            v["total"] == 40
        });
        for (service, i, trace_id) in &requests {
            let trace = node.get_until(&format!("/jaeger/api/traces/{trace_id}"), |v| {
                v["data"][0]["spans"]
                    .as_array()
                    .is_some_and(|s| s.len() == 2)
            });
            assert_eq!(trace["data"][0]["spans"].as_array().unwrap().len(), 2);
            // Polled: after a NATS server died, a stream may take a few
            // seconds to elect a leader again before reads of it go on.
            node.get_until(&format!("/api/v1/correlate/req-{service}-{i}"), |v| {
                v["logs"].as_array().map(Vec::len) == Some(1)
            });
        }
        let services = node.get("/jaeger/api/services").json();
        assert_eq!(
            services["data"].as_array().map(Vec::len),
            Some(5),
            "{services}"
        );
    };
    for node in [&a, &b, &c] {
        telemetry_is_whole(node);
    }
    // The same page of hits, in the same order, from every node, and the
    // next page carries on where it ended.
    let page = |node: &Sextant, cursor: &str| {
        data_or_body(
            node,
            &format!("/api/v1/logs/search?q=served&limit=15&start=0{cursor}"),
        )
    };
    let first = page(&a, "");
    assert_eq!(first["hits"].as_array().unwrap().len(), 15);
    for node in [&b, &c] {
        assert_eq!(page(node, ""), first);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut current = first;
    let mut pages = 1;
    loop {
        for hit in current["hits"].as_array().unwrap() {
            assert!(
                seen.insert(hit["fields"]["uuid"].to_string()),
                "twice: {hit}"
            );
        }
        let Some(next) = current["next_cursor"].as_str() else {
            break;
        };
        current = page([&a, &b, &c][pages % 3], &format!("&cursor={next}"));
        pages += 1;
    }
    assert_eq!((seen.len(), pages), (40, 3));

    // Every node answers as the single node does.
    let range = format!("start={}&end={}&step=60", begin / 1000, end / 1000);
    let queries = [
        "sum by (job) (rate(requests_total[5m]))",
        "requests_total{instance=~\"host1.*\"}",
        "count(requests_total)",
        "topk(3, max_over_time(requests_total[10m]))",
        "histogram_quantile(0.9, sum by (job) (rate(latency_seconds[5m])))",
        "latency_seconds{job=\"job1\"}",
    ];
    for query in queries {
        let path = format!("/api/v1/query_range?query={}&{range}", url_encode(query));
        let expected = data_of(&single, &path);
        assert!(
            !expected["result"].as_array().unwrap().is_empty(),
            "{query}: {expected}"
        );
        for node in [&a, &b, &c] {
            assert_eq!(data_of(node, &path), expected, "{query}");
        }
    }
    // Exemplars from every partition, as the single node keeps them.
    let exemplars_path = format!(
        "/api/v1/query_exemplars?query=latency_seconds&start={}&end={}",
        begin / 1000,
        end / 1000
    );
    let mut expected = data_of(&single, &exemplars_path);
    assert_eq!(expected.as_array().map(Vec::len), Some(6), "{expected}");
    let by_labels = |v: &mut Value| {
        v.as_array_mut()
            .unwrap()
            .sort_by_key(|s| s["seriesLabels"].to_string());
    };
    by_labels(&mut expected);
    for node in [&a, &b, &c] {
        let mut got = data_of(node, &exemplars_path);
        by_labels(&mut got);
        assert_eq!(got, expected);
    }
    let series_path = format!(
        "/api/v1/series?match[]=requests_total&start={}&end={}",
        begin / 1000,
        end / 1000
    );
    let mut expected = data_of(&single, &series_path);
    let sort = |v: &mut Value| {
        v.as_array_mut().unwrap().sort_by_key(|s| s.to_string());
    };
    sort(&mut expected);
    for node in [&a, &b, &c] {
        let mut got = data_of(node, &series_path);
        sort(&mut got);
        assert_eq!(got, expected);
        assert_eq!(
            data_of(node, "/api/v1/label/job/values"),
            data_of(&single, "/api/v1/label/job/values")
        );
        node.wait_for_query("sum by (instance) (orders_placed)", |r| {
            let by_node: BTreeMap<String, String> = r
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["metric"]["instance"].to_string(),
                        s["value"][1].to_string(),
                    )
                })
                .collect();
            by_node.len() == 2
                && by_node.get("\"b\"").map(String::as_str) == Some("\"7\"")
                && by_node.get("\"c\"").map(String::as_str) == Some("\"5\"")
        });
    }
    // The rule every node has fires once: one node of the three evaluates.
    receiver.wait_for("/alertmanager", "firing notification", |b| {
        b["status"] == "firing"
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(receiver.count("/alertmanager", |_| true), 1);
    // Every node shows that alert, and a silence set through any node is
    // the cluster's: the alerting API answers from the node that evaluates.
    for node in [&a, &b, &c] {
        let alerts = node.get("/api/v1/alerts").json();
        assert_eq!(
            alerts["data"]["alerts"][0]["labels"]["alertname"], "RequestsSeen",
            "{alerts}"
        );
        assert_eq!(alerts["data"]["alerts"][0]["state"], "firing", "{alerts}");
    }
    let silence = serde_json::json!({
        "matchers": [{"name": "alertname", "value": "RequestsSeen", "isRegex": false, "isEqual": true}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2100-01-01T00:00:00Z",
        "createdBy": "ops",
        "comment": "cluster test",
    });
    for node in [&a, &b, &c] {
        let reply = node.post_path(
            "/api/v1/silences",
            "application/json",
            silence.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    for node in [&a, &b, &c] {
        let listed = node.get("/api/v1/silences").json();
        assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");
        // Alertmanager's API v2 answers from the same node.
        let v2 = node.get("/api/v2/silences").json();
        assert_eq!(v2.as_array().map(Vec::len), Some(3), "{v2}");
        let alerts = node
            .get("/api/v2/alerts?filter=alertname%3DRequestsSeen")
            .json();
        assert_eq!(
            alerts[0]["status"]["silencedBy"].as_array().map(Vec::len),
            Some(3),
            "{alerts}"
        );
    }
    // A group made through the ruler API (Grafana's alerting UI, cortextool)
    // is the cluster's too.
    let made = a.post_path(
        "/config/v1/rules/team",
        "application/yaml",
        b"name: made_by_api\ninterval: 1s\nrules:\n  - record: job:requests:count\n    expr: count(requests_total)\n",
    );
    assert_eq!(made.status, 202, "{}", made.body);
    // When the alert began: the node that evaluates next must continue it.
    let active_at = a.get("/api/v1/alerts").json()["data"]["alerts"][0]["activeAt"].clone();
    assert!(active_at.is_string(), "{active_at}");

    // What the nodes say to each other refuses bad input by name, and the
    // node goes on answering (asked for a partition it owns).
    let status = b.get("/api/v1/status/cluster").json();
    let owned = status["data"]["owned"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .expect("b owns a partition");
    for (path, body) in [
        ("/internal/v1/metrics/read", "not json"),
        (
            "/internal/v1/metrics/read",
            r#"{"op":"drop","matchers":[],"mint":0,"maxt":1,"partitions":[0]}"#,
        ),
        (
            "/internal/v1/metrics/read",
            r#"{"op":"select","matchers":[["a","~~","b"]],"mint":0,"maxt":1,"partitions":[0]}"#,
        ),
        (
            "/internal/v1/metrics/read",
            r#"{"op":"select","matchers":[["a","=~","(("]],"mint":0,"maxt":1,"partitions":[0]}"#,
        ),
        (
            "/internal/v1/logs/read",
            r#"{"partitions":[0],"call":{"op":"search","text":"((((","start_us":0,"end_us":1,"limit":1,"ascending":false,"after":null}}"#,
        ),
        (
            "/internal/v1/traces/read",
            r#"{"partitions":[0],"call":{"op":"nope"}}"#,
        ),
    ] {
        let body = body.replace("[0]", &format!("[{owned}]"));
        let reply = b.post_path(path, "application/json", body.as_bytes());
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.body);
        assert!(!reply.body.is_empty(), "{path} {body}");
    }
    assert_eq!(b.get("/-/ready").status, 200);

    // Blocks went to the bucket under each partition's prefix.
    wait_until("blocks in the bucket", Duration::from_secs(60), || {
        s3.list("cluster/metrics/")
            .iter()
            .any(|k| k.ends_with(".json"))
    });

    // A sample older than its partition's blocks is backfill, taken as a
    // single node takes it and read from every node at once (and, below,
    // after a takeover); one older than the retention keeps is refused by
    // the node that receives it, once the owner has published where the
    // retention ends (at its next checkpoint).
    let host0 = [
        ("__name__", "requests_total"),
        ("job", "job0"),
        ("instance", "host0"),
    ];
    let backfill = series(&host0, &[(begin + 1, 0.5)]);
    for node in [&a, &single] {
        let reply = node.remote_write(vec![backfill.clone()]);
        assert_eq!(reply.status, 204, "{}", reply.body);
    }
    let has_backfill = |node: &Sextant| {
        let answer = node.get(&format!(
            "/api/v1/export?match[]={}",
            url_encode("requests_total{instance=\"host0\"}")
        ));
        answer.status == 200
            && parse_export(&answer.body)
                .values()
                .flatten()
                .any(|(t, v)| *t == begin + 1 && v == "0.5")
    };
    for node in [&a, &b, &c] {
        wait_until(
            "the backfilled sample read",
            Duration::from_secs(30),
            || has_backfill(node),
        );
    }
    let ancient = series(&host0, &[(end - 40 * 86_400_000, 1.0)]);
    let started = Instant::now();
    let refused = loop {
        let reply = a.remote_write(vec![ancient.clone()]);
        if reply.status == 400 || started.elapsed() > Duration::from_secs(40) {
            break reply;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("older than the retention period keeps"),
        "{}",
        refused.body
    );

    // Kill node a in the middle of ingest through b and c, then a NATS
    // server, and stop the object store for a minute: no write fails, and
    // every one is there afterwards, once.
    let writing = std::sync::atomic::AtomicBool::new(true);
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let failed = std::sync::Mutex::new(Vec::new());
    let mut resumed = false;
    /// Stops the writers however the scope ends (a failed check included),
    /// so that the scope can join them.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&writing);
        for (k, node) in [&b, &c].into_iter().enumerate() {
            let (writing, acknowledged, failed) = (&writing, &acknowledged, &failed);
            scope.spawn(move || {
                let mut i = 0;
                while writing.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("during_kill_{k}_{i}");
                    let now = now_ms();
                    let samples = [(now - 2_000, 1.0), (now - 1_000, 2.0), (now, 3.0)];
                    let reply = node.remote_write(vec![series(&[("__name__", &name)], &samples)]);
                    if reply.status == 204 {
                        acknowledged.lock().unwrap().push((name, now));
                    } else {
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("{} {}", reply.status, reply.body));
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        let _ = a.kill_hard();
        // Until a's leases run out nobody answers for its partitions: a
        // read answers with the rest and names what it lacks.
        let query = format!(
            "/api/v1/query?query={}",
            url_encode("count(requests_total)")
        );
        let partial = b.get(&query).json();
        assert_eq!(partial["status"], "success", "{partial}");
        assert!(
            partial["warnings"]
                .to_string()
                .contains("partial answer: metrics partitions"),
            "{partial}"
        );
        let partial = b.get("/api/v1/logs/search?q=served&start=0").json();
        assert!(
            partial["warnings"]
                .to_string()
                .contains("partial answer: logs partitions"),
            "{partial}"
        );
        wait_until(
            "node a's partitions owned again",
            Duration::from_secs(15),
            || {
                let status = b.get("/api/v1/status/cluster").json();
                let owners = &status["data"]["owners"];
                owners
                    .as_object()
                    .is_some_and(|o| o.len() == 8 && o.values().all(|n| n == "b" || n == "c"))
            },
        );
        std::thread::sleep(Duration::from_secs(3));
        let before = acknowledged.lock().unwrap().len();
        nats.kill(2);
        s3.stop();
        // The streams whose leader was on the dead server elect another:
        // writes wait for that, then go on.
        let killed = Instant::now();
        while acknowledged.lock().unwrap().len() < before + 50
            && killed.elapsed() < Duration::from_secs(40)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        resumed = acknowledged.lock().unwrap().len() >= before + 50;
        // The object store stays away for a minute; writes go on (the log
        // holds them, and uploads wait).
        while killed.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(200));
        }
        s3.restart();
        writing.store(false, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(resumed, "ingest did not go on without one NATS server");
    assert_eq!(failed.into_inner().unwrap(), Vec::<String>::new());
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() > 50, "{}", acknowledged.len());
    for node in [&b, &c] {
        all_acknowledged_are_there(node, "during_kill_", &acknowledged);
        assert!(has_backfill(node), "the backfilled sample after the kill");
        telemetry_is_whole(node);
        // And the half hour written before the kill is whole, floats and
        // native histograms.
        for query in [queries[0], queries[4]] {
            let path = format!("/api/v1/query_range?query={}&{range}", url_encode(query));
            assert_eq!(data_of(node, &path), data_of(&single, &path), "{query}");
        }
    }

    // check-data reads the partitions' blocks in the bucket.
    let empty = scratch.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let checked = run_sextant(&["check-data", "--config", &b_config, empty.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(stdout.contains("cluster/metrics/p"), "{stdout}");

    // Node a, killed above, comes back on the data it left and takes its
    // share again; then a rolling restart of all three under load, each
    // stopped with SIGTERM (it hands its partitions over) while writes go
    // through another: no write fails, and every acknowledged one is there.
    let launch = |name: &str| {
        Sextant::builder()
            .data_dir(&scratch.path().join(format!("{name}-data")))
            .args([
                "--config",
                scratch
                    .path()
                    .join(format!("{name}.yaml"))
                    .to_str()
                    .unwrap(),
            ])
            .start()
    };
    let restart = |node: Sextant, name: &str| {
        let (status, _) = node.stop_with("TERM", Duration::from_secs(20));
        assert!(status.success(), "{name} stopped with {status}");
        launch(name)
    };
    let a = launch("a");
    wait_until("a owns its share again", Duration::from_secs(30), || {
        all_owned(&a, 8, 3)
    });
    let mut acknowledged = Vec::new();
    let mut failed = Vec::new();
    let mut roll = |writer: &Sextant, restarted: Sextant, name: &str, prefix: &str| {
        let writing = std::sync::atomic::AtomicBool::new(true);
        let (node, (done, refused)) = std::thread::scope(|scope| {
            let stop = StopOnDrop(&writing);
            let written = scope.spawn(|| write_while(writer, prefix, &writing));
            std::thread::sleep(Duration::from_secs(1));
            let node = restart(restarted, name);
            wait_until("the partitions settled", Duration::from_secs(30), || {
                all_owned(&node, 8, 3)
            });
            drop(stop);
            (node, written.join().unwrap())
        });
        acknowledged.extend(done);
        failed.extend(refused);
        node
    };
    let a = roll(&b, a, "a", "rolling_a_");
    let b = roll(&c, b, "b", "rolling_b_");
    let c = roll(&a, c, "c", "rolling_c_");
    assert_eq!(failed, Vec::<String>::new());
    assert!(acknowledged.len() > 40, "{}", acknowledged.len());
    all_acknowledged_are_there(&b, "rolling_", &acknowledged);

    // The ruler has moved at least once (a was killed, then all restarted),
    // and its state moved with it: the silences, the alert still firing
    // since it began, one change to firing in the history, one notification.
    wait_until(
        "a node evaluates the rules",
        Duration::from_secs(30),
        || b.get("/api/v1/alerts").json()["data"]["alerts"][0]["state"] == "firing",
    );
    for (name, node) in [("a", &a), ("b", &b), ("c", &c)] {
        let listed = node.get("/api/v1/silences").json();
        assert_eq!(listed.as_array().map(Vec::len), Some(3), "{name}: {listed}");
        let alerts = node.get("/api/v1/alerts").json();
        assert_eq!(
            alerts["data"]["alerts"][0]["activeAt"], active_at,
            "{name}: {alerts}"
        );
        let history = node.get("/api/v1/alerts/history").json();
        let fired: Vec<&Value> = history["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["to"] == "firing")
            .collect();
        assert_eq!(fired.len(), 1, "{name}: {history}");
    }
    assert_eq!(receiver.count("/alertmanager", |_| true), 1);
    let groups = b.get("/api/v1/rules").json();
    let names: Vec<&str> = groups["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(names.contains(&"made_by_api"), "{groups}");
}

#[test]
fn check_config_names_what_a_cluster_section_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| {
        let path = dir.path().join("sextant.yaml");
        std::fs::write(&path, body).unwrap();
        let out = run_sextant(&["check-config", path.to_str().unwrap()]);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let cluster = "cluster:\n  node_id: a\n  nats: [nats://127.0.0.1:4222]\n";
    let bucket = "storage:\n  object_store:\n    url: s3://b/p\n    endpoint: http://127.0.0.1:1\n    region: us-east-1\n    access_key_id: k\n    secret_access_key: s\n";
    let tokens = "auth:\n  tokens:\n    - name: ops\n      token: ops-secret\n      scopes: [query, admin]\n    - name: team\n      token: team-secret\n      scopes: [query]\n      tenant: team\n";
    let (ok, out) = check(cluster);
    assert!(!ok && out.contains("storage.object_store"), "{out}");
    let (ok, out) = check(&format!("{cluster}{bucket}{tokens}"));
    assert!(!ok && out.contains("cluster.token"), "{out}");
    let (ok, out) = check(&format!("{cluster}  token: team-secret\n{bucket}{tokens}"));
    assert!(!ok && out.contains("no tenant"), "{out}");
    let (ok, out) = check(&format!("{cluster}  token: ops-secret\n{bucket}{tokens}"));
    assert!(ok, "{out}");
    let (ok, out) = check(&format!(
        "cluster:\n  node_id: a b\n  nats: [nats://x:4222]\n{bucket}"
    ));
    assert!(!ok && out.contains("cluster.node_id"), "{out}");
}
