//! The foundation as a new user meets it: `sextant serve` with flags, env and a
//! config file; readiness; `/metrics` read by Prometheus's own Python parser;
//! shutdown on signals; the data directory lock; `check-config`; and every
//! listener reached by a real client library.

use std::net::TcpListener;
use std::time::Duration;

use sextant_tests::{Sextant, run_python, run_sextant};

#[test]
fn serve_binds_every_listener_and_reports_healthy_and_ready() {
    let server = Sextant::start();
    let healthy = server.get("/-/healthy");
    assert_eq!(healthy.status, 200);
    assert_eq!(server.get("/-/ready").status, 200);
    assert_eq!(server.metric("sextant_ready", &[]), Some(1.0));
    // Each listener logged a distinct real port (TCP and UDP share one per protocol).
    let http = server.addr("http", "tcp");
    assert_ne!(http.port(), 0);
    assert_eq!(
        server.addr("statsd", "tcp").port(),
        server.addr("statsd", "udp").port()
    );
    assert_eq!(
        server.addr("logstash", "tcp").port(),
        server.addr("logstash", "udp").port()
    );
}

#[test]
fn metrics_page_parses_with_prometheus_client_parser() {
    let server = Sextant::start();
    server.get("/-/healthy");
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.content_type
    );
    // prometheus_client's own text-format parser: every family, type and sample.
    let parsed = run_python(
        r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
page = sys.stdin.read() if len(sys.argv) < 2 else sys.argv[1]
out = {}
for family in text_string_to_metric_families(page):
    for s in family.samples:
        key = s.name + json.dumps(dict(sorted(s.labels.items())), sort_keys=True)
        out[key] = {"type": family.type, "value": s.value}
print(json.dumps(out))
"#,
        &[&reply.body],
    );
    let samples: serde_json::Value = serde_json::from_str(&parsed).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let build_info = samples
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.starts_with("sextant_build_info"))
        .unwrap_or_else(|| panic!("no build info in {parsed}"));
    assert!(
        build_info
            .0
            .contains(&format!("\"version\": \"{version}\"")),
        "{}",
        build_info.0
    );
    assert_eq!(build_info.1["value"], 1.0);
    for (listener, transport) in [
        ("http", "tcp"),
        ("otlp_grpc", "tcp"),
        ("otlp_http", "tcp"),
        ("statsd", "udp"),
        ("statsd", "tcp"),
        ("logstash", "tcp"),
        ("logstash", "udp"),
        ("syslog", "tcp"),
        ("syslog", "udp"),
    ] {
        let key = format!(
            "sextant_listener_requests_total{{\"listener\": \"{listener}\", \"transport\": \"{transport}\"}}"
        );
        assert_eq!(samples[&key]["type"], "counter", "{key} in {parsed}");
    }
    let http_requests =
        &samples["sextant_listener_requests_total{\"listener\": \"http\", \"transport\": \"tcp\"}"];
    // At least the readiness polls, /-/healthy and this /metrics request.
    assert!(http_requests["value"].as_f64().unwrap() >= 2.0, "{parsed}");
    let rss = &samples["process_resident_memory_bytes{}"];
    assert!(rss["value"].as_f64().unwrap() > 1e6, "{parsed}");
    let received = &samples["sextant_listener_received_bytes_total{\"listener\": \"http\", \"transport\": \"tcp\"}"];
    assert!(received["value"].as_f64().unwrap() > 0.0, "{parsed}");
}

#[test]
fn sigterm_and_sigint_stop_the_server_with_exit_zero() {
    for signal in ["TERM", "INT"] {
        let server = Sextant::start();
        let (status, took) = server.stop_with(signal, Duration::from_secs(10));
        assert!(status.success(), "SIG{signal}: exit {status}");
        assert!(took < Duration::from_secs(10), "SIG{signal} took {took:?}");
    }
}

#[test]
fn sigterm_with_a_client_connected_still_exits_promptly() {
    let server = Sextant::start();
    // An idle keep-alive HTTP connection and an open logstash TCP stream.
    let _http = std::net::TcpStream::connect(server.addr("http", "tcp")).unwrap();
    let _logstash = std::net::TcpStream::connect(server.addr("logstash", "tcp")).unwrap();
    server.wait_for_metric(
        "sextant_listener_open_connections",
        &[("listener", "logstash"), ("transport", "tcp")],
        |v| v >= 1.0,
    );
    let (status, _) = server.stop_with("TERM", Duration::from_secs(10));
    assert!(status.success(), "exit {status}");
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused_clearly() {
    let first = Sextant::start();
    let out = run_sextant(&[
        "serve",
        "--data-dir",
        first.data_dir.to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp-http",
        "127.0.0.1:0",
        "--statsd",
        "127.0.0.1:0",
        "--logstash",
        "127.0.0.1:0",
        "--syslog",
        "127.0.0.1:0",
        "--forward",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is already in use by another Sextant process"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    // The first one is unaffected.
    assert_eq!(first.get("/-/ready").status, 200);
}

#[test]
fn an_occupied_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let out = run_sextant(&[
        "serve",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--http",
        &format!("127.0.0.1:{port}"),
        "--otlp-grpc",
        "0",
        "--otlp-http",
        "0",
        "--statsd",
        "0",
        "--logstash",
        "0",
        "--syslog",
        "0",
        "--forward",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot bind the http listener to 127.0.0.1:{port} (tcp)"
        )),
        "{stderr}"
    );
}

#[test]
fn flags_beat_env_which_beats_the_file_which_beats_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "server:\n  data_dir: from-file\n  bind: 127.0.0.3\n  http: 0\n  otlp_grpc: 0\n  otlp_http: 0\n  statsd: 0\n  logstash: 0\n  syslog: 0\n  forward: 0\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // File only: its data dir (relative to the file) and its bind host.
    let server = Sextant::builder()
        .addresses_from_caller()
        .args(["--config", config])
        .start();
    assert!(dir.path().join("from-file/LOCK").is_file());
    assert_eq!(server.addr("http", "tcp").ip().to_string(), "127.0.0.3");
    drop(server);

    // Env beats the file.
    let env_dir = dir.path().join("from-env");
    let server = Sextant::builder()
        .addresses_from_caller()
        .args(["--config", config])
        .env("SEXTANT_DATA_DIR", env_dir.to_str().unwrap())
        .env("SEXTANT_BIND", "127.0.0.2")
        .start();
    assert!(env_dir.join("LOCK").is_file());
    assert_eq!(server.addr("statsd", "udp").ip().to_string(), "127.0.0.2");
    drop(server);

    // A flag beats env; a listener address with its own host beats --bind.
    let flag_dir = dir.path().join("from-flag");
    let server = Sextant::builder()
        .addresses_from_caller()
        .args(["--config", config, "--data-dir", flag_dir.to_str().unwrap()])
        .args(["--bind", "127.0.0.4", "--logstash", "127.0.0.5:0"])
        .env("SEXTANT_DATA_DIR", env_dir.to_str().unwrap())
        .env("SEXTANT_BIND", "127.0.0.2")
        .start();
    assert!(flag_dir.join("LOCK").is_file());
    assert_eq!(
        server.addr("otlp_http", "tcp").ip().to_string(),
        "127.0.0.4"
    );
    assert_eq!(server.addr("logstash", "tcp").ip().to_string(), "127.0.0.5");
}

#[test]
fn check_config_accepts_the_example_and_names_the_line_of_a_mistake() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/sextant.yaml");
    let out = run_sextant(&["check-config", example]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(
        stdout.contains("simplebank.yml: 2 groups, 5 rules"),
        "{stdout}"
    );
    assert!(
        stdout.contains("simplebank-logs.yml: 1 groups, 2 rules"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "global:\n  scrape_interval: 15s\n  scrape_intreval: 5s\n",
    )
    .unwrap();
    let out = run_sextant(&["check-config", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:3: ", broken.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown field `scrape_intreval`"),
        "{stderr}"
    );

    // A broken rule file named by the config is reported at its own line.
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: q\n    rules:\n      - alert: QueueHigh\n        expr: rabbitmq_queue_messages > 100\n        for: 30 seconds\n",
    )
    .unwrap();
    let config = dir.path().join("with-rules.yaml");
    std::fs::write(&config, "rule_files: [rules.yml]\n").unwrap();
    let out = run_sextant(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rules.yml:6:14: "), "{stderr}");
    assert!(
        stderr.contains("invalid duration \"30 seconds\""),
        "{stderr}"
    );
}

#[test]
fn a_stock_prometheus_config_and_rule_file_pass_check_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("alerts.rules.yml"),
        r#"groups:
- name: example
  rules:
  - alert: HighRequestLatency
    expr: job:request_latency_seconds:mean5m{job="myjob"} > 0.5
    for: 10m
    labels:
      severity: page
    annotations:
      summary: High request latency
  - record: code:prometheus_http_requests_total:sum
    expr: sum by (code) (prometheus_http_requests_total)
"#,
    )
    .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        r#"# my global config
global:
  scrape_interval: 15s # Set the scrape interval to every 15 seconds. Default is every 1 minute.
  evaluation_interval: 15s # Evaluate rules every 15 seconds. The default is every 1 minute.
  # scrape_timeout is set to the global default (10s).

# Load rules once and periodically evaluate them according to the global 'evaluation_interval'.
rule_files:
  - "*.rules.yml"

scrape_configs:
  - job_name: "prometheus"
    static_configs:
      - targets: ["localhost:9090"]
        labels:
          app: "prometheus"
  - job_name: "node"
    scrape_interval: 5s
    metrics_path: /metrics
    scheme: http
    honor_labels: true
    file_sd_configs:
      - files: ["targets/*.json"]
        refresh_interval: 1m
    relabel_configs:
      - source_labels: [__address__]
        regex: "(.*):9100"
        target_label: instance
        replacement: "$1"
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "go_.*"
        action: drop
"#,
    )
    .unwrap();
    let out = run_sextant(&["check-config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("scrape jobs: 2 [\"prometheus\", \"node\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("alerts.rules.yml: 1 groups, 2 rules"),
        "{stdout}"
    );
}

#[test]
fn bad_flags_are_refused_with_the_reason() {
    let out = run_sextant(&["serve", "--http", "localhost:http"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--http: invalid listen address \"localhost:http\""),
        "{stderr}"
    );

    let data = tempfile::tempdir().unwrap();
    let out = run_sextant(&[
        "serve",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--log-level",
        "info,[[[",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid --log-level"), "{stderr}");

    let out = run_sextant(&["serve", "--log-format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value 'xml' for '--log-format"),
        "{stderr}"
    );
}

#[test]
fn version_and_help_follow_the_contract() {
    let out = run_sextant(&["--version"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("sextant {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );

    let out = run_sextant(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--data-dir",
        "--bind",
        "--http",
        "--otlp-grpc",
        "--otlp-http",
        "--statsd",
        "--logstash",
        "--syslog",
        "--forward",
        "SEXTANT_DATA_DIR",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
