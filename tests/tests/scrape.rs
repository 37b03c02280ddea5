//! Prometheus scraping as users configure it: a Python `prometheus-client`
//! exporter and Debian's node exporter scraped by `scrape_configs`, read back
//! through PromQL and `/api/v1/targets`; file_sd targets coming and going
//! (staleness); reloads by `POST /-/reload` and SIGHUP.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_tests::{Helper, Sextant, free_port};

/// A `prometheus-client` exporter with one of each metric type; prints its port.
const EXPORTER: &str = r#"
import sys
from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server
orders = Counter('orders_placed', 'Orders placed.', ['app'])
orders.labels('market').inc(7, exemplar={'trace_id': 'abc123'})
Gauge('queue_depth', 'Messages waiting in the queue.').set(42)
latency = Histogram('request_latency_seconds', 'Request latency.', buckets=[0.1, 0.5, 1.0])
for v in (0.05, 0.2, 0.3, 0.7, 2.0):
    latency.observe(v, exemplar={'trace_id': '4bf92f3577b34da6a3ce929d0e0e4736'} if v == 0.7 else None)
Info('build', 'Build information.').info({'version': '1.2.3'})
Gauge('clashing', 'Carries its own job label.', ['job']).labels('inner').set(1)
server, _ = start_http_server(0, addr='127.0.0.1')
print(server.server_port, flush=True)
sys.stdin.read()
"#;

fn exporter() -> (Helper, String) {
    let helper = Helper::python(EXPORTER, &[]);
    let address = format!("127.0.0.1:{}", helper.first_line);
    (helper, address)
}

fn start_with(config: &str) -> (Sextant, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sextant.yaml");
    std::fs::write(&path, config).unwrap();
    let server = Sextant::builder()
        .args(["--config", path.to_str().unwrap()])
        .start();
    (server, dir)
}

fn value(result: &Value) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn one_equal(expected: f64) -> impl Fn(&Value) -> bool {
    move |r| r.as_array().is_some_and(|a| a.len() == 1) && value(r) == expected
}

fn empty(r: &Value) -> bool {
    r.as_array().is_some_and(Vec::is_empty)
}

fn active_targets(server: &Sextant) -> Vec<Value> {
    let json = server.get("/api/v1/targets").json();
    assert_eq!(json["status"], "success", "{json}");
    json["data"]["activeTargets"].as_array().unwrap().clone()
}

#[test]
fn a_python_prometheus_client_exporter_is_scraped_with_relabelling() {
    let (_exporter, address) = exporter();
    let unreachable = format!("127.0.0.1:{}", free_port());
    let (server, _dir) = start_with(&format!(
        r#"
scrape_configs:
  - job_name: market
    scrape_interval: 1s
    static_configs:
      - targets: ['{address}']
        labels: {{env: test}}
      - targets: ['{unreachable}', 'skip.example:80']
    relabel_configs:
      - source_labels: [__address__]
        regex: 'skip\..*'
        action: drop
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: '(python|process)_.*'
        action: drop
"#
    ));
    let up = server.wait_for_query("up{job=\"market\",env=\"test\"}", one_equal(1.0));
    assert_eq!(up[0]["metric"]["instance"], address.as_str());
    server.wait_for_query(
        &format!("up{{job=\"market\",instance=\"{unreachable}\"}}"),
        one_equal(0.0),
    );

    // prometheus-client answered in OpenMetrics: counters, _created, gauges, info.
    let orders = server.wait_for_query("orders_placed_total", one_equal(7.0));
    assert_eq!(
        orders[0]["metric"],
        serde_json::json!({
            "__name__": "orders_placed_total", "app": "market", "env": "test",
            "instance": address, "job": "market"
        })
    );
    server.wait_for_query("orders_placed_created{app=\"market\"} > 1e9", |r| {
        r.as_array().is_some_and(|a| a.len() == 1)
    });
    server.wait_for_query("queue_depth", one_equal(42.0));
    server.wait_for_query("build_info{version=\"1.2.3\"}", one_equal(1.0));
    server.wait_for_query("request_latency_seconds_count", one_equal(5.0));
    server.wait_for_query("request_latency_seconds_bucket{le=\"0.5\"}", one_equal(3.0));
    let median = server.wait_for_query(
        "histogram_quantile(0.5, request_latency_seconds_bucket)",
        |r| r.as_array().is_some_and(|a| a.len() == 1),
    );
    // Rank 2.5 falls in (0.1, 0.5] holding ranks 2..3: 0.1 + 0.4 * 0.75.
    assert!((value(&median) - 0.4).abs() < 1e-9, "{median}");
    // The target's job wins; the exposed one is kept as exported_job.
    server.wait_for_query(
        "clashing{job=\"market\",exported_job=\"inner\"}",
        one_equal(1.0),
    );
    // metric_relabel_configs dropped the runtime metrics.
    let dropped = server.wait_for_query("count({__name__=~\"python_.*|process_.*\"})", empty);
    assert!(empty(&dropped));
    // Scrape report series agree with each other.
    let scraped = value(&server.wait_for_query(
        &format!("scrape_samples_scraped{{instance=\"{address}\"}}"),
        |r| r.as_array().is_some_and(|a| a.len() == 1),
    ));
    let kept = value(&server.wait_for_query(
        &format!("scrape_samples_post_metric_relabeling{{instance=\"{address}\"}}"),
        |r| r.as_array().is_some_and(|a| a.len() == 1),
    ));
    // Two counter samples, one gauge, four buckets with _count, _sum and
    // _created, the info metric and the clashing gauge.
    assert_eq!(kept, 12.0, "scraped {scraped}");
    assert!(scraped > kept, "scraped {scraped}, kept {kept}");
    server.wait_for_query(
        &format!("scrape_duration_seconds{{instance=\"{address}\"}} < 1"),
        |r| r.as_array().is_some_and(|a| a.len() == 1),
    );
    // The OpenMetrics exemplars, as Grafana asks for them.
    let exemplars = server.get_until(
        "/api/v1/query_exemplars?query=request_latency_seconds_bucket%20or%20orders_placed_total",
        |v: &Value| v["data"].as_array().is_some_and(|a| a.len() == 2),
    );
    let data = exemplars["data"].as_array().unwrap();
    let bucket = data
        .iter()
        .find(|s| s["seriesLabels"]["__name__"] == "request_latency_seconds_bucket")
        .unwrap_or_else(|| panic!("{exemplars}"));
    assert_eq!(bucket["seriesLabels"]["le"], "1.0", "{exemplars}");
    assert_eq!(bucket["seriesLabels"]["instance"], address.as_str());
    let first = &bucket["exemplars"][0];
    assert_eq!(
        first["labels"],
        serde_json::json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    );
    assert_eq!(first["value"], "0.7");
    assert!(first["timestamp"].as_f64().unwrap() > 1e9, "{first}");
    // Scraped again, the same exemplar is kept once.
    server.wait_for_query(
        &format!("count_over_time(up{{instance=\"{address}\"}}[1m]) >= 3"),
        |r| r.as_array().is_some_and(|a| a.len() == 1),
    );
    let again = server
        .get("/api/v1/query_exemplars?query=request_latency_seconds_bucket")
        .json();
    assert_eq!(
        again["data"][0]["exemplars"].as_array().map(Vec::len),
        Some(1),
        "{again}"
    );
    let counter = data
        .iter()
        .find(|s| s["seriesLabels"]["__name__"] == "orders_placed_total")
        .unwrap();
    assert_eq!(counter["exemplars"][0]["labels"]["trace_id"], "abc123");
    assert_eq!(counter["exemplars"][0]["value"], "7");
    let metadata = server.get("/api/v1/metadata?metric=orders_placed").json();
    assert_eq!(
        metadata["data"]["orders_placed"][0]["type"], "counter",
        "{metadata}"
    );

    let targets = active_targets(&server);
    assert_eq!(targets.len(), 2, "{targets:?}");
    let healthy = targets
        .iter()
        .find(|t| t["labels"]["instance"] == address.as_str())
        .unwrap();
    assert_eq!(healthy["health"], "up");
    assert_eq!(healthy["scrapePool"], "market");
    assert_eq!(healthy["scrapeUrl"], format!("http://{address}/metrics"));
    assert_eq!(healthy["lastError"], "");
    assert_eq!(healthy["scrapeInterval"], "1s");
    assert_eq!(healthy["discoveredLabels"]["__address__"], address.as_str());
    assert!(healthy["lastScrape"].as_str().unwrap().starts_with("20"));
    let down = targets
        .iter()
        .find(|t| t["labels"]["instance"] == unreachable.as_str())
        .unwrap();
    assert_eq!(down["health"], "down");
    assert!(
        down["lastError"].as_str().unwrap().contains("refused"),
        "{down}"
    );
    let dropped = server.get("/api/v1/targets?state=dropped").json();
    assert_eq!(dropped["data"]["activeTargets"], serde_json::json!([]));
    assert_eq!(
        dropped["data"]["droppedTargets"][0]["discoveredLabels"]["__address__"],
        "skip.example:80"
    );
    assert_eq!(dropped["data"]["droppedTargetCounts"]["market"], 1);
    let bad = server.get("/api/v1/targets?state=sideways");
    assert_eq!(bad.status, 400);
}

#[test]
fn the_node_exporter_is_scraped_with_gzip_like_prometheus_does() {
    let (_node, address) = Helper::node_exporter();
    let (server, _dir) = start_with(&format!(
        "scrape_configs:\n  - job_name: node\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{address}']\n"
    ));
    server.wait_for_query("up{job=\"node\"}", one_equal(1.0));
    server.wait_for_query("node_load1{job=\"node\"} >= 0", |r| {
        r.as_array().is_some_and(|a| a.len() == 1)
    });
    server.wait_for_query("node_cpu_seconds_total{mode=\"idle\"}", |r| {
        r.as_array().is_some_and(|a| !a.is_empty())
    });
    // Every sample the scrape kept is a stored series of the job (plus the
    // five report series), at the same scrape.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stored = value(
            &server.wait_for_query("count({job=\"node\",__name__!~\"up|scrape_.*\"})", |r| {
                r.as_array().is_some_and(|a| a.len() == 1)
            }),
        );
        let kept = value(
            &server.wait_for_query("scrape_samples_post_metric_relabeling{job=\"node\"}", |r| {
                r.as_array().is_some_and(|a| a.len() == 1)
            }),
        );
        if stored == kept && kept > 200.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored {stored} series, the scrape kept {kept}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let metadata = server
        .get("/api/v1/metadata?metric=node_cpu_seconds_total")
        .json();
    assert_eq!(
        metadata["data"]["node_cpu_seconds_total"][0]["type"], "counter",
        "{metadata}"
    );
}

fn write_targets(path: &Path, targets: &[&str]) {
    let json = serde_json::json!([{ "targets": targets, "labels": { "team": "payments" } }]);
    // Write then rename, as configuration management tools do.
    let staging = path.with_extension("tmp");
    std::fs::write(&staging, json.to_string()).unwrap();
    std::fs::rename(&staging, path).unwrap();
}

#[test]
fn file_sd_targets_come_and_go_and_their_series_go_stale() {
    let (_exporter, address) = exporter();
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.json");
    write_targets(&targets, &[]);
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "scrape_configs:\n  - job_name: files\n    scrape_interval: 1s\n    file_sd_configs:\n      - files: ['*.json']\n",
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    assert!(active_targets(&server).is_empty());

    write_targets(&targets, &[&address]);
    server.wait_for_query(
        "queue_depth{job=\"files\",team=\"payments\"}",
        one_equal(42.0),
    );
    let target = &active_targets(&server)[0];
    assert_eq!(
        target["discoveredLabels"]["__meta_filepath"],
        targets.display().to_string()
    );

    // The target leaves the file: its series and `up` end with staleness
    // markers instead of lingering for the 5 minute lookback.
    write_targets(&targets, &[]);
    server.wait_for_query("queue_depth{job=\"files\"}", empty);
    server.wait_for_query("up{job=\"files\"}", empty);
    assert!(active_targets(&server).is_empty());
}

#[test]
fn reload_applies_a_new_config_and_refuses_a_broken_one() {
    let (_exporter, address) = exporter();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    let job = |name: &str| {
        format!(
            "scrape_configs:\n  - job_name: {name}\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{address}']\n"
        )
    };
    std::fs::write(&config, job("first")).unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    server.wait_for_query("up{job=\"first\"}", one_equal(1.0));

    std::fs::write(&config, job("second")).unwrap();
    let reply = server.post_path("/-/reload", "text/plain", b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.wait_for_query("up{job=\"second\"}", one_equal(1.0));
    // The removed job's series end at once.
    server.wait_for_query("up{job=\"first\"}", empty);

    std::fs::write(&config, "scrape_configs:\n  - job_name: [broken\n").unwrap();
    let reply = server.post_path("/-/reload", "text/plain", b"");
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.starts_with("failed to reload config: ") && reply.body.contains("sextant.yaml:"),
        "{}",
        reply.body
    );
    assert_eq!(
        server.metric("sextant_config_last_reload_successful", &[]),
        Some(0.0)
    );
    // The running configuration stays.
    assert_eq!(active_targets(&server)[0]["scrapePool"], "second");

    // SIGHUP reloads too.
    std::fs::write(&config, job("third")).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    server.wait_for_query("up{job=\"third\"}", one_equal(1.0));
    assert_eq!(
        server.metric("sextant_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        server.metric("sextant_config_reloads_total", &[]),
        Some(3.0)
    );
}

/// An exporter behind authentication at the book's RabbitMQ path: answers
/// `/api/metrics` only with `guest:guest` basic auth or the bearer token.
const GUARDED: &str = r#"
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ALLOWED = {'Basic Z3Vlc3Q6Z3Vlc3Q=', 'Bearer s3cret'}
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if not self.path.startswith('/api/metrics'):
            self.send_response(404); self.end_headers(); return
        if self.headers.get('Authorization') not in ALLOWED:
            self.send_response(401); self.end_headers(); return
        body = ('rabbitmq_queue_messages{queue="orders",scheme="%s"} 120\n'
                % self.headers['Authorization'].split()[0]).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
"#;

#[test]
fn basic_auth_and_bearer_tokens_reach_a_guarded_exporter() {
    let guarded = Helper::python(GUARDED, &[]);
    let address = format!("127.0.0.1:{}", guarded.first_line);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let (server, _dir) = start_with(&format!(
        r#"
scrape_configs:
  - job_name: rabbitmq
    scrape_interval: 1s
    metrics_path: /api/metrics
    basic_auth: {{username: guest, password: guest}}
    static_configs: [{{targets: ['{address}']}}]
  - job_name: bearer
    scrape_interval: 1s
    metrics_path: /api/metrics
    bearer_token_file: {token}
    static_configs: [{{targets: ['{address}']}}]
  - job_name: anonymous
    scrape_interval: 1s
    metrics_path: /api/metrics
    static_configs: [{{targets: ['{address}']}}]
"#,
        token = dir.path().join("token").display()
    ));
    server.wait_for_query(
        "rabbitmq_queue_messages{job=\"rabbitmq\",scheme=\"Basic\"}",
        one_equal(120.0),
    );
    server.wait_for_query(
        "rabbitmq_queue_messages{job=\"bearer\",scheme=\"Bearer\"}",
        one_equal(120.0),
    );
    server.wait_for_query("up{job=\"anonymous\"}", one_equal(0.0));
    let anonymous = active_targets(&server)
        .into_iter()
        .find(|t| t["scrapePool"] == "anonymous")
        .unwrap();
    assert_eq!(
        anonymous["lastError"],
        "server returned HTTP status 401 Unauthorized"
    );
}

/// Every label set and value under `job`, as one server answers `{job=...}`.
fn scraped_series(
    query: impl Fn(&str) -> Value,
    job: &str,
) -> std::collections::BTreeMap<String, String> {
    let json = query(&format!(
        "{{job=\"{job}\",__name__!=\"scrape_duration_seconds\"}}"
    ));
    json["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"].to_string(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_same_exporter_scraped_by_prometheus_gives_the_same_series() {
    let (_exporter, address) = exporter();
    let config = format!(
        r#"
scrape_configs:
  - job_name: market
    scrape_interval: 1s
    static_configs:
      - targets: ['{address}']
        labels: {{env: test, __meta_zone: eu}}
    relabel_configs:
      - source_labels: [__meta_zone]
        target_label: zone
      - source_labels: [__address__]
        regex: '([^:]+):.*'
        target_label: host
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: '(python|process)_.*'
        action: drop
      - source_labels: [__name__, app]
        regex: 'orders_placed_total;(.*)'
        target_label: market_app
        replacement: 'app-$1'
"#
    );
    let prometheus = sextant_tests::Prometheus::start(&config, &[]);
    let (server, _dir) = start_with(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ours = scraped_series(
            |q| {
                server
                    .get(&format!(
                        "/api/v1/query?query={}",
                        sextant_tests::url_encode(q)
                    ))
                    .json()
            },
            "market",
        );
        let theirs = scraped_series(
            |q| {
                prometheus.get_json(&format!(
                    "/api/v1/query?query={}",
                    sextant_tests::url_encode(q)
                ))
            },
            "market",
        );
        // `_created` values are the exporter's start times: equal in both.
        if !ours.is_empty() && ours == theirs {
            assert!(ours.len() >= 16, "{ours:#?}");
            assert!(
                ours.keys()
                    .any(|k| k.contains("\"market_app\":\"app-market\""))
            );
            assert!(
                ours.keys()
                    .any(|k| k.contains("\"exported_job\":\"inner\""))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Sextant and Prometheus disagree:\nSextant {ours:#?}\nPrometheus {theirs:#?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An HTTPS exporter with a self-signed certificate for 127.0.0.1; prints its port.
const TLS_EXPORTER: &str = r#"
import ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'tls_served_total 3\n'
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
if len(sys.argv) > 3:  # mutual TLS: clients must present a certificate from this CA
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
"#;

#[test]
fn https_targets_are_verified_against_the_jobs_ca() {
    // A CA, and a server certificate it signed for 127.0.0.1 and exporter.internal.
    let dir = tempfile::tempdir().unwrap();
    let certs = sextant_tests::TestCertificates::create(dir.path(), &["exporter.internal"]);
    let (cert, key) = (
        certs.cert.to_str().unwrap().to_owned(),
        certs.key.to_str().unwrap().to_owned(),
    );
    let ca = certs.ca.to_str().unwrap().to_owned();
    // A client certificate from the same CA, for mutual TLS.
    certs.issue(
        dir.path(),
        "client",
        "/CN=sextant",
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    );
    let exporter = Helper::python(TLS_EXPORTER, &[&cert, &key]);
    let address = format!("127.0.0.1:{}", exporter.first_line);
    let mutual = Helper::python(TLS_EXPORTER, &[&cert, &key, &ca]);
    let mutual_address = format!("127.0.0.1:{}", mutual.first_line);
    let config = format!(
        r#"
scrape_configs:
  - job_name: verified
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: test-ca.pem}}
    static_configs: [{{targets: ['{address}']}}]
  - job_name: by-name
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: test-ca.pem, server_name: exporter.internal}}
    static_configs: [{{targets: ['{address}']}}]
  - job_name: untrusted
    scrape_interval: 1s
    scheme: https
    static_configs: [{{targets: ['{address}']}}]
  - job_name: skip-verify
    scrape_interval: 1s
    scheme: https
    tls_config: {{insecure_skip_verify: true}}
    static_configs: [{{targets: ['{address}']}}]
  - job_name: mutual
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: test-ca.pem, cert_file: client.pem, key_file: client.key}}
    static_configs: [{{targets: ['{mutual_address}']}}]
  - job_name: mutual-without-certificate
    scrape_interval: 1s
    scheme: https
    tls_config: {{ca_file: test-ca.pem}}
    static_configs: [{{targets: ['{mutual_address}']}}]
"#
    );
    // Relative TLS paths resolve against the config file's directory.
    std::fs::write(dir.path().join("sextant.yaml"), config).unwrap();
    let server = Sextant::builder()
        .args([
            "--config",
            dir.path().join("sextant.yaml").to_str().unwrap(),
        ])
        .start();
    for job in ["verified", "by-name", "skip-verify", "mutual"] {
        server.wait_for_query(
            &format!("tls_served_total{{job=\"{job}\"}}"),
            one_equal(3.0),
        );
    }
    server.wait_for_query("up{job=\"untrusted\"}", one_equal(0.0));
    server.wait_for_query("up{job=\"mutual-without-certificate\"}", one_equal(0.0));
    let untrusted = active_targets(&server)
        .into_iter()
        .find(|t| t["scrapePool"] == "untrusted")
        .unwrap();
    assert_eq!(untrusted["scrapeUrl"], format!("https://{address}/metrics"));
    let error = untrusted["lastError"].as_str().unwrap();
    assert!(
        error.contains("tls") && error.contains("UnknownIssuer"),
        "{error}"
    );
}
