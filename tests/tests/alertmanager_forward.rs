//! Sextant forwarding its ruler's alerts to a real Alertmanager, as
//! Prometheus does: Debian's Alertmanager 0.25 behind a route prefix, TLS
//! (a test CA) and basic auth, configured in Sextant with Prometheus's
//! `alerting.alertmanagers` block, routes what it gets to a webhook the test
//! runs. The firing alert arrives with the external labels, its resolution
//! follows, and an alert that fires while the Alertmanager is down arrives
//! once it is back.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_tests::{Receiver, Sextant, TestCertificates, free_port, series};

/// bcrypt of `s3cret` (cost 5), for the Alertmanager's `basic_auth_users`.
const PASSWORD_HASH: &str = "$2b$05$abcdefghijklmnopqrstuuLK7U1u6pVRmL7L1BBM2aS35PSZnDXlK";

/// Debian's `prometheus-alertmanager` on `127.0.0.1:port` under
/// `/alertmanager`, over TLS with basic auth, routing every alert to
/// `hook` at once; a fresh storage directory each start. Killed on drop.
struct Alertmanager {
    child: Child,
    _storage: tempfile::TempDir,
}

impl Alertmanager {
    fn start(dir: &Path, port: u16, hook: &str) -> Self {
        let binary = Path::new("/usr/bin/prometheus-alertmanager");
        assert!(
            binary.is_file(),
            "Debian's prometheus-alertmanager is not installed: run scripts/setup-test-env"
        );
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                r#"
route:
  receiver: hook
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook}
        send_resolved: true
"#
            ),
        )
        .unwrap();
        let web = dir.join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  sextant: '{PASSWORD_HASH}'\n",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ),
        )
        .unwrap();
        let storage = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.join(format!("alertmanager-{port}.log"))).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.config.file={}", web.display()))
            .arg(format!("--storage.path={}", storage.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.route-prefix=/alertmanager")
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus-alertmanager");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Alertmanager never listened on {port}:\n{}",
                std::fs::read_to_string(dir.join(format!("alertmanager-{port}.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            _storage: storage,
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The alert for `queue` in a webhook body with `status`, if there is one.
fn alert_for<'a>(body: &'a Value, queue: &str, status: &str) -> Option<&'a Value> {
    body["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["queue"] == queue && a["status"] == status)
}

/// Polls a `/metrics` sample until `pred` holds (60 s at most).
fn wait_for_metric(
    server: &Sextant,
    name: &str,
    labels: &[(&str, &str)],
    pred: impl Fn(f64) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.metric(name, labels).is_some_and(&pred) {
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} never reached the expected value:\n{}",
            server.get("/metrics").body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn alerts_reach_a_real_alertmanager_resolve_and_survive_its_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::create(dir.path(), &[]);
    // The Alertmanager's certificate and key: `server.pem` and `server.key`.
    assert_eq!(certs.cert, dir.path().join("server.pem"));
    std::fs::write(dir.path().join("am-password"), "s3cret\n").unwrap();
    let hooks = Receiver::start();
    let port = free_port();
    let alertmanager = Alertmanager::start(dir.path(), port, &hooks.url("/am"));

    std::fs::write(
        dir.path().join("rules.yml"),
        r#"
groups:
  - name: queues
    interval: 1s
    rules:
      - alert: QueueBacklog
        expr: queue_depth > 10
        labels:
          severity: page
        annotations:
          summary: 'queue {{ $labels.queue }} holds {{ $value }} messages'
"#,
    )
    .unwrap();
    // Prometheus's own block, relative paths as in a prometheus.yml; no
    // receivers of Sextant's own, so the Alertmanager is the only way out.
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
global:
  evaluation_interval: 1s
  external_labels:
    cluster: eu-1
rule_files: [rules.yml]
alerting:
  external_url: http://sextant.example:7070
  resend_delay: 2s
  alertmanagers:
    - scheme: https
      path_prefix: /alertmanager
      timeout: 5s
      api_version: v2
      basic_auth:
        username: sextant
        password_file: am-password
      tls_config:
        ca_file: test-ca.pem
      static_configs:
        - targets: ['127.0.0.1:{port}']
"#
        ),
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let am_url = format!("https://127.0.0.1:{port}/alertmanager/api/v2/alerts");

    // A backlog on the orders queue fires; the Alertmanager's webhook gets it.
    let reply = server.remote_write(vec![series(
        &[("__name__", "queue_depth"), ("queue", "orders")],
        &[(now_ms(), 50.0)],
    )]);
    assert_eq!(reply.status, 204, "{}", reply.body);
    let body = hooks.wait_for("/am", "the firing orders alert", |b| {
        alert_for(b, "orders", "firing").is_some()
    });
    let alert = alert_for(&body, "orders", "firing").unwrap();
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "QueueBacklog", "{body}");
    assert_eq!(labels["severity"], "page", "{body}");
    assert_eq!(labels["cluster"], "eu-1", "external label: {body}");
    assert_eq!(
        alert["annotations"]["summary"], "queue orders holds 50 messages",
        "{body}"
    );
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with("http://sextant.example:7070/graph?g0.expr=queue_depth"),
        "{generator}"
    );
    wait_for_metric(
        &server,
        "sextant_notifications_sent_total",
        &[("alertmanager", &am_url)],
        |n| n >= 1.0,
    );
    assert_eq!(
        server.metric("sextant_notifications_alertmanagers_discovered", &[]),
        Some(1.0)
    );

    // The backlog clears: the resolution reaches the webhook too.
    let reply = server.remote_write(vec![series(
        &[("__name__", "queue_depth"), ("queue", "orders")],
        &[(now_ms(), 0.0)],
    )]);
    assert_eq!(reply.status, 204, "{}", reply.body);
    let body = hooks.wait_for("/am", "the resolved orders alert", |b| {
        alert_for(b, "orders", "resolved").is_some()
    });
    let resolved = alert_for(&body, "orders", "resolved").unwrap();
    assert_eq!(resolved["labels"]["cluster"], "eu-1", "{body}");
    assert_ne!(resolved["endsAt"], "0001-01-01T00:00:00Z", "{body}");

    // The Alertmanager goes away; the payments queue backs up meanwhile.
    drop(alertmanager);
    let errors_before = server
        .metric(
            "sextant_notifications_errors_total",
            &[("alertmanager", &am_url)],
        )
        .unwrap_or(0.0);
    let reply = server.remote_write(vec![series(
        &[("__name__", "queue_depth"), ("queue", "payments")],
        &[(now_ms(), 99.0)],
    )]);
    assert_eq!(reply.status, 204, "{}", reply.body);
    // Sextant tried and failed while it was down...
    wait_for_metric(
        &server,
        "sextant_notifications_errors_total",
        &[("alertmanager", &am_url)],
        |n| n > errors_before,
    );
    assert_eq!(
        hooks.count("/am", |b| alert_for(b, "payments", "firing").is_some()),
        0
    );
    // ...and once it is back (same port, empty storage) the alert arrives.
    let _alertmanager = Alertmanager::start(dir.path(), port, &hooks.url("/am"));
    let body = hooks.wait_for_within("/am", "the payments alert after the downtime", 90, |b| {
        alert_for(b, "payments", "firing").is_some()
    });
    let alert = alert_for(&body, "payments", "firing").unwrap();
    assert_eq!(alert["labels"]["cluster"], "eu-1", "{body}");
    assert_eq!(
        alert["annotations"]["summary"], "queue payments holds 99 messages",
        "{body}"
    );
    assert_eq!(
        server.metric("sextant_notifications_dropped_total", &[]),
        Some(0.0)
    );
}

#[test]
fn check_config_names_a_bad_alertmanagers_entry() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, reason) in [
        (
            "alerting:\n  alertmanagers:\n    - api_version: v1\n      static_configs: [{targets: ['am:9093']}]\n",
            "api_version v1 is not supported",
        ),
        (
            "alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['am:9093']}]\n      timeuot: 5s\n",
            "unknown field `timeuot`",
        ),
        (
            "alerting:\n  alertmanagers:\n    - scheme: https\n      tls_config: {ca_file: missing-ca.pem}\n      static_configs: [{targets: ['am:9093']}]\n",
            "missing-ca.pem",
        ),
        (
            "alerting:\n  resend_delay: 0s\n",
            "resend_delay must be more than 0s",
        ),
    ] {
        let config = dir.path().join("sextant.yaml");
        std::fs::write(&config, yaml).unwrap();
        let out = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}\n{stderr}");
        assert!(stderr.contains(reason), "{yaml}\n=> {stderr}");
    }
    // Prometheus's stock block (an empty `targets:`) and a working one pass.
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets:\n          # - alertmanager:9093\n    - static_configs: [{targets: ['am:9093']}]\n      path_prefix: /am\n",
    )
    .unwrap();
    let out = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("alertmanagers: 2"), "{stdout}");
}
