//! Sealed metric blocks in S3-compatible object storage, against a real
//! SeaweedFS on loopback: blocks appear in the bucket behind their
//! manifests; a server whose local copies are gone answers the same range
//! query from the bucket; an outage of the store delays uploads without
//! refusing ingest or readiness, and the backlog drains once it is back;
//! and a wrong bucket, refused credentials or an unreachable endpoint stop
//! the start with a message that names which.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sextant_tests::{SeaweedFs, Sextant, free_port, run_python, run_sextant, series, sextant_bin};

fn config(dir: &Path, endpoint: &str, bucket: &str, secret: &str) -> String {
    config_with_blocks(dir, endpoint, bucket, secret, "1m", DEFAULT_CACHE)
}

/// A cache that holds everything these tests write.
const DEFAULT_CACHE: u64 = 1 << 30;

fn config_with_blocks(
    dir: &Path,
    endpoint: &str,
    bucket: &str,
    secret: &str,
    block_duration: &str,
    cache_size: u64,
) -> String {
    let path = dir.join("sextant.yaml");
    std::fs::write(
        &path,
        format!(
            r#"
storage:
  seal_idle: 2s
  metrics:
    block_duration: {block_duration}
  object_store:
    url: s3://{bucket}/team
    endpoint: {endpoint}
    region: us-east-1
    access_key_id: {}
    secret_access_key: {secret}
    cache_size: {cache_size}
"#,
            SeaweedFs::access_key()
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// A SeaweedFS with its bucket, and a data directory and config that use it.
struct Setup {
    s3: SeaweedFs,
    /// Holds the config file and the data directory: keep it alive.
    _scratch: tempfile::TempDir,
    data: std::path::PathBuf,
    config: String,
}

fn setup(block_duration: &str) -> Setup {
    setup_with_cache(block_duration, DEFAULT_CACHE)
}

fn setup_with_cache(block_duration: &str, cache_size: u64) -> Setup {
    let s3 = SeaweedFs::start();
    let scratch = tempfile::tempdir().unwrap();
    let config = config_with_blocks(
        scratch.path(),
        &s3.endpoint(),
        SeaweedFs::bucket(),
        SeaweedFs::secret_key(),
        block_duration,
        cache_size,
    );
    Setup {
        data: scratch.path().join("data"),
        s3,
        _scratch: scratch,
        config,
    }
}

fn start(data: &Path, config: &str) -> Sextant {
    Sextant::builder()
        .data_dir(data)
        .args(["--config", config])
        .start()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `minutes` of one sample every 15 s for `name` from `start` (ms).
fn write_minutes(server: &Sextant, name: &str, start: i64, minutes: i64) -> (i64, i64) {
    let end = start + minutes * 60_000;
    let samples: Vec<(i64, f64)> = (0..=minutes * 4)
        .map(|i| (start + i * 15_000, i as f64))
        .collect();
    let reply = server.remote_write(vec![
        series(&[("__name__", name), ("job", "a")], &samples),
        series(&[("__name__", name), ("job", "b")], &samples),
    ]);
    assert_eq!(reply.status, 204, "{}", reply.body);
    (start, end)
}

fn metric(server: &Sextant, name: &str) -> f64 {
    server.metric(name, &[]).unwrap_or(0.0)
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn manifests(s3: &SeaweedFs) -> Vec<String> {
    s3.list("team/metrics/")
        .into_iter()
        .filter(|k| {
            k.strip_prefix("team/metrics/")
                .is_some_and(|name| name.ends_with(".json") && !name.contains('/'))
        })
        .collect()
}

#[test]
fn blocks_live_in_the_bucket_and_answer_after_the_local_copies_are_gone() {
    let Setup {
        mut s3,
        data,
        config,
        _scratch: _keep,
    } = setup("1m");
    let server = start(&data, &config);
    let now = now_ms() / 15_000 * 15_000;
    let (first, end) = write_minutes(&server, "orders_total", now - 30 * 60_000, 30);

    // 1 m blocks are cut every 15 s, compacted into longer ones, uploaded:
    // about 50 s alone, longer beside the cluster test on two cores.
    wait_until("blocks in the bucket", Duration::from_secs(240), || {
        manifests(&s3).len() >= 2 && metric(&server, "sextant_object_store_backlog_blocks") == 0.0
    });
    for manifest in manifests(&s3) {
        let id = manifest.trim_end_matches(".json").to_owned();
        let files = s3.list(&format!("{id}/"));
        // Compaction may delete a block meanwhile: its manifest goes first.
        if !manifests(&s3).contains(&manifest) {
            continue;
        }
        for file in ["chunks", "index", "meta.json"] {
            assert!(
                files.contains(&format!("{id}/{file}")),
                "{manifest} published without {file}: {files:?}"
            );
        }
    }
    assert!(metric(&server, "sextant_object_store_uploads_total") >= 2.0);
    let query = format!(
        "/api/v1/query_range?query=sum%20by%20(job)%20(orders_total)&start={}&end={}&step=60",
        first / 1000,
        end / 1000
    );
    let before = server.get(&query).json();
    assert_eq!(
        before["data"]["result"].as_array().unwrap().len(),
        2,
        "{before}"
    );

    // The store down: ingest, readiness and queries go on; new blocks wait.
    s3.stop();
    let uploaded = metric(&server, "sextant_object_store_uploads_total");
    // Later samples move the head on, so more blocks are cut meanwhile.
    let (_, later) = write_minutes(&server, "payments_total", end, 6);
    wait_until(
        "a backlog while the store is down",
        Duration::from_secs(90),
        || {
            metric(&server, "sextant_object_store_backlog_blocks") > 0.0
                && metric(&server, "sextant_object_store_write_failures_total") > 0.0
        },
    );
    assert_eq!(server.get("/-/ready").status, 200);
    assert_eq!(server.get(&query).json()["data"], before["data"]);
    s3.restart();
    wait_until("the backlog drained", Duration::from_secs(120), || {
        metric(&server, "sextant_object_store_backlog_blocks") == 0.0
    });
    assert!(metric(&server, "sextant_object_store_uploads_total") > uploaded);

    // Lose the local copies and the cache: the blocks are read from the
    // bucket, by ranges.
    let (status, took) = server.stop_with("TERM", Duration::from_secs(10));
    assert!(status.success(), "stopped with {status} after {took:?}");
    std::fs::remove_dir_all(data.join("metrics/blocks")).unwrap();
    std::fs::remove_dir_all(data.join("cache")).unwrap();
    let server = start(&data, &config);
    // With the store down, a query over blocks only in the bucket is a 503
    // that names the store.
    s3.stop();
    let down = server.get(&query);
    assert_eq!(down.status, 503, "{}", down.body);
    assert!(down.body.contains("object store"), "{}", down.body);
    s3.restart();
    let after = server.get(&query).json();
    assert_eq!(after["data"], before["data"], "answered from the bucket");
    assert!(metric(&server, "sextant_object_store_range_reads_total") > 0.0);
    assert!(
        std::fs::read_dir(data.join("metrics/blocks")).map_or(0, |d| d.count()) == 0,
        "no block was downloaded whole"
    );
    let payments = server
        .get(&format!(
            "/api/v1/query?query=count(payments_total)&time={}",
            later / 1000
        ))
        .json();
    assert_eq!(payments["data"]["result"][0]["value"][1], "2", "{payments}");
}

/// With a cache too small for them, the local copies of uploaded splits
/// go, and searches read the bucket by ranges.
#[test]
fn log_and_span_splits_live_in_the_bucket() {
    let Setup {
        s3,
        data,
        config,
        _scratch: _keep,
    } = setup_with_cache("1m", 1);
    let server = start(&data, &config);
    // Yesterday's records, sent by the real clients: their day has ended,
    // so they seal after 2 s idle. python-logstash stamps a record with its
    // `created`, which a filter moves back a day; the OpenTelemetry SDK takes
    // explicit start and end times.
    let at_us = (now_ms() - 26 * 3_600_000) * 1000;
    let logstash = server.addr("logstash", "tcp");
    let otlp = format!("http://{}", server.addr("otlp_http", "tcp"));
    let trace_id = run_python(
        r#"
import logging, sys, logstash
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
host, port, otlp, at_us = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
provider = TracerProvider(resource=Resource.create({"service.name": "orders"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces")))
span = provider.get_tracer("shop").start_span("POST /orders", start_time=at_us * 1000)
trace_id = format(span.get_span_context().trace_id, "032x")
span.end(end_time=at_us * 1000 + 5_000_000)
provider.shutdown()

class Yesterday(logging.Filter):
    def filter(self, record):
        record.created = at_us / 1e6
        return True

log = logging.getLogger("orders")
log.setLevel(logging.INFO)
log.propagate = False
handler = logstash.TCPLogstashHandler(host, port, version=1, message_type="orders")
handler.addFilter(Yesterday())
log.addHandler(handler)
log.info("order 42 placed", extra={"uuid": "req-42", "trace_id": trace_id})
handler.close()
print(trace_id)
"#,
        &[
            &logstash.ip().to_string(),
            &logstash.port().to_string(),
            &otlp,
            &at_us.to_string(),
        ],
    );
    let trace_id = trace_id.trim();
    assert_eq!(trace_id.len(), 32, "{trace_id}");

    let published = |kind: &str| {
        s3.list(&format!("team/{kind}/"))
            .into_iter()
            .filter(|k| k.ends_with(".json") && k.matches('/').count() == 2)
            .count()
    };
    wait_until(
        "a log split and a span split in the bucket",
        Duration::from_secs(60),
        || published("logs") >= 1 && published("traces") >= 1,
    );
    let search = "/api/v1/logs/search?q=uuid:req-42&start=0";
    let trace = format!("/jaeger/api/traces/{trace_id}");
    let correlate = format!(
        "/api/v1/correlate/{trace_id}?start={}&end={}",
        at_us / 1_000_000 - 3600,
        at_us / 1_000_000 + 3600
    );
    let logs_before = server.get(search).json();
    assert_eq!(logs_before["total"], 1, "{logs_before}");
    let correlated_before = server.get(&correlate).json();
    assert_eq!(
        (
            correlated_before["logs"].as_array().map(Vec::len),
            correlated_before["spans"].as_array().map(Vec::len)
        ),
        (Some(1), Some(1)),
        "{correlated_before}"
    );
    let trace_before = server.get(&trace).json();
    assert_eq!(
        trace_before["data"][0]["spans"].as_array().unwrap().len(),
        1,
        "{trace_before}"
    );

    // The cache has room for neither local copy: both go, and the splits
    // are searched in the bucket.
    let splits_on_disk = |kind: &str| {
        std::fs::read_dir(data.join(kind).join("splits"))
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count()
    };
    wait_until("the local copies dropped", Duration::from_secs(30), || {
        splits_on_disk("logs") == 0 && splits_on_disk("traces") == 0
    });
    assert!(metric(&server, "sextant_object_store_cache_evictions_total") >= 2.0);
    let reads = metric(&server, "sextant_object_store_range_reads_total");
    assert_eq!(
        server.get(search).json(),
        logs_before,
        "logs from the bucket"
    );
    assert_eq!(
        server.get(&trace).json(),
        trace_before,
        "the trace from the bucket"
    );
    assert_eq!(server.get(&correlate).json(), correlated_before);
    assert!(metric(&server, "sextant_object_store_range_reads_total") > reads);

    drop(server);
    std::fs::remove_dir_all(data.join("cache")).unwrap();
    let server = start(&data, &config);
    assert_eq!(
        server.get(search).json(),
        logs_before,
        "logs from the bucket"
    );
    assert_eq!(
        server.get(&trace).json(),
        trace_before,
        "the trace from the bucket"
    );
    assert_eq!(server.get(&correlate).json(), correlated_before);
}

/// `sextant serve` killed with SIGKILL while it cuts, compacts and uploads
/// blocks, four times: every manifest in the bucket has all its files at
/// their sizes (no half block is visible), and every acknowledged sample is
/// counted once, also after the local copies are gone.
#[test]
fn kill_9_during_uploads_leaves_no_half_block_and_loses_nothing() {
    // 20 s blocks: maintenance every 5 s, so each round cuts, compacts and
    // uploads before it is killed.
    let Setup {
        s3,
        data,
        config,
        _scratch: _keep,
    } = setup("20s");
    let base = now_ms() / 60_000 * 60_000;
    let mut written = 0;
    let mut last = base;
    for round in 0..4u64 {
        let server = start(&data, &config);
        // Ten minutes further each round: the head moves on and blocks are cut.
        let (_, end) = write_minutes(&server, "kill_total", base + round as i64 * 600_000, 10);
        // 41 samples a series; a round's first repeats the last one's end.
        written += 2 * if round == 0 { 41 } else { 40 };
        last = end;
        std::thread::sleep(Duration::from_millis(5_500 + 1_700 * round));
        server.kill_hard();
    }
    let server = start(&data, &config);
    wait_until("the backlog drained", Duration::from_secs(120), || {
        metric(&server, "sextant_object_store_backlog_blocks") == 0.0
    });
    let count = format!(
        "/api/v1/query?query=sum(count_over_time(kill_total[2h]))&time={}",
        last / 1000
    );
    let counted = |server: &Sextant| -> String {
        server.get(&count).json()["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(counted(&server), written.to_string());
    assert!(!manifests(&s3).is_empty(), "no block reached the bucket");
    for manifest in manifests(&s3) {
        let listed: Value = serde_json::from_slice(&s3.get(&manifest)).unwrap();
        let id = manifest.trim_end_matches(".json");
        let files = s3.list(&format!("{id}/"));
        for entry in listed["files"].as_array().unwrap() {
            let (name, size) = (entry[0].as_str().unwrap(), entry[1].as_u64().unwrap());
            let key = format!("{id}/{name}");
            assert!(
                files.contains(&key),
                "{manifest} names {name}, not in the bucket"
            );
            assert_eq!(s3.get(&key).len() as u64, size, "{key}");
        }
    }
    drop(server);
    std::fs::remove_dir_all(data.join("metrics/blocks")).unwrap();
    std::fs::remove_dir_all(data.join("cache")).unwrap();
    let server = start(&data, &config);
    assert_eq!(counted(&server), written.to_string(), "from the bucket");
    drop(server);

    // check-data reads the bucket too: whole, then with a file gone.
    let check = || run_sextant(&["check-data", "--config", &config, data.to_str().unwrap()]);
    let clean = check();
    let stdout = String::from_utf8_lossy(&clean.stdout);
    assert!(
        clean.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(stdout.contains("team/metrics/"), "{stdout}");
    let victim = manifests(&s3)[0].trim_end_matches(".json").to_owned();
    s3.delete(&format!("{victim}/chunks"));
    let damaged = check();
    let stdout = String::from_utf8_lossy(&damaged.stdout);
    assert!(!damaged.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("DAMAGED  {victim}: chunks is missing")),
        "{stdout}"
    );
}

/// Runs `sextant serve` and expects it to stop on its own, saying `why`.
fn refused_start(config: &str, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(sextant_bin())
        .args(["serve", "--config", config, "--data-dir"])
        .arg(dir.path())
        .args([
            "--http",
            "127.0.0.1:0",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
        ])
        .args(["--statsd", "127.0.0.1:0", "--logstash", "127.0.0.1:0"])
        .args(["--syslog", "127.0.0.1:0", "--forward", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("sextant kept running with {config} (expected: {why})");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(why), "expected {why:?} in: {stderr}");
}

#[test]
fn a_wrong_bucket_credentials_or_endpoint_stop_the_start_by_name() {
    let s3 = SeaweedFs::start();
    let dir = tempfile::tempdir().unwrap();
    let wrong = |name: &str, endpoint: &str, bucket: &str, secret: &str| {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        config(&sub, endpoint, bucket, secret)
    };
    refused_start(
        &wrong(
            "bucket",
            &s3.endpoint(),
            "no-such-bucket",
            SeaweedFs::secret_key(),
        ),
        "the bucket does not exist",
    );
    refused_start(
        &wrong(
            "secret",
            &s3.endpoint(),
            SeaweedFs::bucket(),
            "not-the-secret",
        ),
        "the credentials were refused",
    );
    let closed = format!("http://127.0.0.1:{}", free_port());
    refused_start(
        &wrong(
            "endpoint",
            &closed,
            SeaweedFs::bucket(),
            SeaweedFs::secret_key(),
        ),
        "it cannot be reached",
    );
}
