//! The book's alert, end to end: a queue-depth gauge pushed with the Python
//! `statsd` client crosses 100, a Prometheus rule file fires, and webhook
//! receivers (small HTTP servers here) get Grafana's `alerting` and
//! Alertmanager's `firing`, then `ok` and `resolved`; a silence mutes; a
//! receiver that is down gets every notification once it is back, across a
//! crash of Sextant too.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_tests::{KeptData, Receiver, Sextant, run_python};

const RULES: &str = r#"
groups:
  - name: rabbitmq
    interval: 1s
    rules:
      - alert: HighNumberOfMessagesInQueue
        expr: rabbitmq_queue_messages > 100
        for: 0s
        labels:
          severity: page
        annotations:
          summary: "Messages accumulating in the queue"
          description: "{{ $value }} messages in the queue"
      - record: queue:messages:max
        expr: max(rabbitmq_queue_messages)
"#;

fn write_config(dir: &Path, receiver: &str) -> String {
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    let config = dir.join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
rule_files: [rules.yml]
statsd:
  flush_interval: 200ms
alerting:
  external_url: http://sextant.example:7070
  receivers:
    - name: ops
      webhooks:
        - url: {receiver}/grafana
          format: grafana
        - url: {receiver}/alertmanager
          format: alertmanager
          headers: {{X-Team: payments}}
  route:
    receiver: ops
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
"#
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_owned()
}

fn start(config: &str) -> Sextant {
    Sextant::builder().args(["--config", config]).start()
}

fn push_queue_depth(server: &Sextant, depth: i64) {
    let udp = server.addr("statsd", "udp");
    run_python(
        r#"
import sys, statsd
client = statsd.StatsClient(sys.argv[1], int(sys.argv[2]), prefix="rabbitmq")
client.gauge("queue_messages", int(sys.argv[3]))
"#,
        &[
            &udp.ip().to_string(),
            &udp.port().to_string(),
            &depth.to_string(),
        ],
    );
}

fn firing(body: &Value) -> bool {
    body["status"] == "firing"
}

fn alerting(body: &Value) -> bool {
    body["state"] == "alerting"
}

#[test]
fn the_books_queue_alert_fires_and_resolves_in_both_webhook_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let server = start(&write_config(dir.path(), &receiver.url("")));
    push_queue_depth(&server, 150);

    let grafana = receiver.wait_for("/grafana", "alerting notification", alerting);
    assert_eq!(grafana["title"], "[Alerting] HighNumberOfMessagesInQueue");
    assert_eq!(grafana["ruleName"], "HighNumberOfMessagesInQueue");
    assert_eq!(grafana["evalMatches"][0]["value"], 150.0);
    assert_eq!(grafana["evalMatches"][0]["tags"]["severity"], "page");
    assert_eq!(grafana["message"], "Messages accumulating in the queue");
    assert!(
        grafana["ruleUrl"]
            .as_str()
            .unwrap()
            .starts_with("http://sextant.example:7070/")
    );
    let am = receiver.wait_for("/alertmanager", "firing notification", firing);
    assert_eq!(am["version"], "4");
    assert_eq!(am["receiver"], "ops");
    assert_eq!(
        am["groupKey"],
        "{}:{alertname=\"HighNumberOfMessagesInQueue\"}"
    );
    assert_eq!(
        am["groupLabels"]["alertname"],
        "HighNumberOfMessagesInQueue"
    );
    assert_eq!(am["commonLabels"]["severity"], "page");
    assert_eq!(am["externalURL"], "http://sextant.example:7070");
    let alert = &am["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "HighNumberOfMessagesInQueue");
    assert_eq!(
        alert["annotations"]["description"],
        "150 messages in the queue"
    );
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alert["fingerprint"].as_str().unwrap().len(), 16);
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .contains("rabbitmq_queue_messages")
    );

    // The APIs show the alert firing, and the recording rule stored its series.
    let alerts = server.get("/api/v1/alerts").json();
    assert_eq!(alerts["data"]["alerts"][0]["state"], "firing");
    assert_eq!(alerts["data"]["alerts"][0]["value"], "1.5e+02");
    let rules = server.get("/api/v1/rules").json();
    let group = &rules["data"]["groups"][0];
    assert_eq!(group["name"], "rabbitmq");
    assert_eq!(group["interval"], 1.0);
    assert_eq!(group["rules"][0]["state"], "firing");
    assert_eq!(group["rules"][0]["health"], "ok");
    assert_eq!(group["rules"][1]["type"], "recording");
    let series = server.wait_for_query("ALERTS{alertstate=\"firing\"}", |r| !r[0].is_null());
    assert_eq!(
        series[0]["metric"]["alertname"],
        "HighNumberOfMessagesInQueue"
    );
    assert_eq!(series[0]["metric"]["severity"], "page");
    let recorded = server.wait_for_query("queue:messages:max", |r| !r[0].is_null());
    assert_eq!(recorded[0]["value"][1], "150");
    let only_alerting = server.get("/api/v1/rules?type=alert").json();
    assert_eq!(
        only_alerting["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The queue drains: ok and resolved, once each.
    push_queue_depth(&server, 20);
    let ok = receiver.wait_for("/grafana", "ok notification", |b| b["state"] == "ok");
    assert_eq!(ok["title"], "[OK] HighNumberOfMessagesInQueue");
    let resolved = receiver.wait_for("/alertmanager", "resolved notification", |b| {
        b["status"] == "resolved"
    });
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        receiver.count("/grafana", alerting),
        1,
        "one alerting notification"
    );
    assert_eq!(
        receiver.count("/alertmanager", firing),
        1,
        "one firing notification"
    );
    assert_eq!(
        receiver.count("/alertmanager", |b| b["status"] == "resolved"),
        1
    );

    // Every change is in the history, oldest first.
    let history = server
        .get("/api/v1/alerts/history?rule=HighNumberOfMessagesInQueue")
        .json();
    let changes: Vec<(String, String)> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["from"].as_str().unwrap().to_owned(),
                c["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("inactive".to_owned(), "pending".to_owned()),
            ("pending".to_owned(), "firing".to_owned()),
            ("firing".to_owned(), "inactive".to_owned()),
        ]
    );
    assert_eq!(history["data"][1]["value"], "1.5e+02");
    let metrics = server.get("/metrics").body;
    assert!(
        metrics.contains("sextant_webhook_deliveries_total{outcome=\"delivered\"} 4"),
        "{metrics}"
    );
}

#[test]
fn a_silence_mutes_until_it_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let server = start(&write_config(dir.path(), &receiver.url("")));
    let silence = serde_json::json!({
        "matchers": [{"name": "alertname", "value": "HighNumberOfMessagesInQueue", "isRegex": false, "isEqual": true}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2100-01-01T00:00:00Z",
        "createdBy": "ops@simplebank",
        "comment": "queue migration",
    });
    let reply = server.post_path(
        "/api/v1/silences",
        "application/json",
        silence.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = reply.json()["silenceID"].as_str().unwrap().to_owned();
    let listed = server.get("/api/v1/silences").json();
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["comment"], "queue migration");

    push_queue_depth(&server, 150);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/api/v1/alerts").json()["data"]["alerts"][0]["state"] != "firing" {
        assert!(Instant::now() < deadline, "the alert never fired");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Firing, but muted: evaluations go on for three seconds and nothing is sent.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert_eq!(
            server.get("/api/v1/alerts").json()["data"]["alerts"][0]["state"],
            "firing"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(receiver.count("/alertmanager", |_| true), 0, "silenced");

    // A bad silence is refused with the reason.
    let bad = server.post_path(
        "/api/v1/silences",
        "application/json",
        br#"{"matchers": [], "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2100-01-01T00:00:00Z"}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("at least one matcher"), "{}", bad.body);

    assert_eq!(server.delete(&format!("/api/v1/silences/{id}")).status, 200);
    assert_eq!(server.delete("/api/v1/silences/nope").status, 404);
    receiver.wait_for("/alertmanager", "firing once the silence expired", firing);
    assert_eq!(
        server.get("/api/v1/silences").json()[0]["status"]["state"],
        "expired"
    );
}

#[test]
fn a_receiver_that_was_down_gets_every_notification_even_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    // The receiver's port is known but nothing listens on it yet.
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let config = write_config(dir.path(), &format!("http://127.0.0.1:{port}"));
    let server = start(&config);
    push_queue_depth(&server, 150);
    // Firing; the webhook fails and the notification waits in the outbox.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = server.get("/metrics").body;
        if metrics.contains("sextant_webhook_deliveries_total{outcome=\"failed\"} ")
            && !metrics.contains("sextant_webhook_deliveries_total{outcome=\"failed\"} 0\n")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no failed delivery: {metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let kept: KeptData = server.kill_hard();

    let receiver = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let server = Sextant::builder()
        .data_dir(&kept.data_dir)
        .args(["--config", &config])
        .start();
    receiver.wait_for(
        "/grafana",
        "alerting notification after the restart",
        alerting,
    );
    receiver.wait_for(
        "/alertmanager",
        "firing notification after the restart",
        firing,
    );
    // The alert kept firing across the restart: it is not announced twice.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.count("/alertmanager", firing), 1);
    assert_eq!(receiver.count("/grafana", alerting), 1);
    push_queue_depth(&server, 10);
    receiver.wait_for("/alertmanager", "resolved", |b| b["status"] == "resolved");
}

#[test]
fn check_config_refuses_what_prometheus_refuses_in_rule_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let out = sextant_tests::run_sextant(&["check-config", &config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (rules, reason) in [
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n",
            "invalid expression",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    annotations: {s: '{{ $nope }}'}\n",
            "undefined variable",
        ),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    logs: 'level:ERROR'\n",
            "needs a `window`",
        ),
    ] {
        std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        let out = sextant_tests::run_sextant(&["check-config", &config]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{rules}");
        assert!(stderr.contains(reason), "{rules}: {stderr}");
        assert!(stderr.contains("rules.yml"), "{stderr}");
    }
}

#[test]
fn a_log_rule_fires_on_the_count_of_matching_lines() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = write_config(dir.path(), &receiver.url(""));
    std::fs::write(
        dir.path().join("rules.yml"),
        r#"
groups:
  - name: logs
    interval: 1s
    rules:
      - alert: OrderErrors
        logs: 'level:ERROR AND service:orders'
        window: 5m
        threshold: 5
        labels: {severity: warning}
        annotations: {summary: "{{ $value }} errors in orders"}
"#,
    )
    .unwrap();
    let server = start(&config);
    let mut batch = String::new();
    for (service, level, n) in [
        ("orders", "ERROR", 7),
        ("orders", "INFO", 20),
        ("fees", "ERROR", 9),
    ] {
        for i in 0..n {
            batch.push_str(&format!(
                "{{\"message\":\"sell order {i} failed\",\"service\":\"{service}\",\"levelname\":\"{level}\"}}\n"
            ));
        }
    }
    let reply = server.post_path("/api/v1/logs", "application/x-ndjson", batch.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = receiver.wait_for("/grafana", "alerting notification", alerting);
    assert_eq!(body["ruleName"], "OrderErrors");
    assert_eq!(body["evalMatches"][0]["value"], 7.0);
    assert_eq!(body["message"], "7 errors in orders");
    let rules = server.get("/api/v1/rules").json();
    let rule = &rules["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["query"], "level:ERROR AND service:orders");
    assert_eq!(rule["state"], "firing");
    assert_eq!(rule["logQuery"]["threshold"], 5.0);
}

#[test]
fn rule_files_reload_on_post_and_sighup_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let server = start(&config);
    let names = |server: &Sextant| -> Vec<String> {
        server.get("/api/v1/rules").json()["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&server),
        ["HighNumberOfMessagesInQueue", "queue:messages:max"]
    );
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: orders\n    rules:\n      - alert: NoOrdersCompleted\n        expr: sum(rate(orders_completed[5m])) == 0\n        for: 5m\n",
    )
    .unwrap();
    let reply = server.post_path("/-/reload", "text/plain", b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(names(&server), ["NoOrdersCompleted"]);
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: broken\n    rules:\n      - alert: X\n        expr: rate(\n",
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logs().contains("configuration reload refused") {
        assert!(Instant::now() < deadline, "{}", server.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        names(&server),
        ["NoOrdersCompleted"],
        "the running rules stay"
    );
}

#[test]
fn promtool_and_check_config_agree_on_rule_files() {
    let promtool = Path::new("/usr/bin/promtool");
    assert!(
        promtool.is_file(),
        "Debian's prometheus (promtool) is not installed: run scripts/setup-test-env"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9");
    let cases = [
        RULES,
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n",
        "groups:\n- name: g\n  rules:\n  - alert: A\n",
        "groups:\n- name: g\n  rules:\n  - alert: A\n    record: b\n    expr: up\n",
        "groups:\n- name: g\n  rules:\n  - record: 'bad name'\n    expr: up\n",
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 5x\n",
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    labels: {'0bad': x}\n",
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    annotations: {s: '{{ $nope }}'}\n",
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    annotations: {s: '{{ $labels.job'}\n",
        "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n",
        "groups:\n- name: g\n  interval: 30s\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n    labels: {team: infra}\n",
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 1m\n    keep_firing_for: 5m\n    annotations: {d: '{{ $value | humanize }} {{ humanizeDuration 3 }}'}\n",
    ];
    let mut valid = 0;
    for rules in cases {
        let file = dir.path().join("rules.yml");
        std::fs::write(&file, rules).unwrap();
        let theirs = std::process::Command::new(promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        let ours = sextant_tests::run_sextant(&["check-config", &config]);
        assert_eq!(
            ours.status.success(),
            theirs.status.success(),
            "{rules}\npromtool: {}{}\nsextant: {}",
            String::from_utf8_lossy(&theirs.stdout),
            String::from_utf8_lossy(&theirs.stderr),
            String::from_utf8_lossy(&ours.stderr)
        );
        valid += usize::from(theirs.status.success());
    }
    assert_eq!(valid, 3, "the valid files are the book's and two more");
}

#[test]
fn a_rule_without_data_goes_to_no_data_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = write_config(dir.path(), &receiver.url(""));
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: orders\n    interval: 1s\n    rules:\n      - alert: NoOrdersCompleted\n        expr: sum(rate(orders_completed_total[1m])) == 0\n        no_data_for: 2s\n",
    )
    .unwrap();
    let server = start(&config);
    let body = receiver.wait_for("/grafana", "no_data notification", |b| {
        b["state"] == "no_data"
    });
    assert_eq!(body["title"], "[No Data] NoOrdersCompleted");
    let am = receiver.wait_for("/alertmanager", "firing (no data)", firing);
    assert_eq!(am["alerts"][0]["labels"]["alertstate"], "nodata");
    let alerts = server.get("/api/v1/alerts").json();
    assert_eq!(alerts["data"]["alerts"][0]["state"], "nodata");
}

/// An HTTPS webhook receiver: prints its port, appends `path body` lines to a file.
const HTTPS_RECEIVER: &str = r#"
import http.server, ssl, sys
out = open(sys.argv[3], "a")
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        out.write(self.path + " " + body.decode() + "\n")
        out.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn https_webhooks_are_verified_against_their_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = sextant_tests::TestCertificates::create(dir.path(), &[]);
    let received = dir.path().join("received.txt");
    let receiver = sextant_tests::Helper::python(
        HTTPS_RECEIVER,
        &[
            certs.cert.to_str().unwrap(),
            certs.key.to_str().unwrap(),
            received.to_str().unwrap(),
        ],
    );
    let config = write_config(
        dir.path(),
        &format!("https://localhost:{}", receiver.first_line),
    );
    // Both webhooks trust the test CA (a path relative to the config file).
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "          format: grafana\n",
        "          format: grafana\n          tls_config: {ca_file: test-ca.pem}\n",
    );
    let text = text.replace(
        "          format: alertmanager\n",
        "          format: alertmanager\n          tls_config: {ca_file: test-ca.pem}\n",
    );
    std::fs::write(&config, text).unwrap();
    let server = start(&config);
    push_queue_depth(&server, 150);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(&received).unwrap_or_default();
        let firing = lines.lines().any(|l| {
            l.starts_with("/alertmanager ")
                && serde_json::from_str::<Value>(&l["/alertmanager ".len()..])
                    .is_ok_and(|b| b["status"] == "firing")
        });
        if firing && lines.lines().any(|l| l.starts_with("/grafana ")) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing over https: {lines}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Without the CA the system's roots are used: the receiver is not
    // trusted, and the failure is counted, logged and retried.
    let other = tempfile::tempdir().unwrap();
    let untrusted = start(&write_config(
        other.path(),
        &format!("https://localhost:{}", receiver.first_line),
    ));
    push_queue_depth(&untrusted, 150);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !untrusted.logs().contains("webhook delivery failed") {
        assert!(Instant::now() < deadline, "{}", untrusted.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(untrusted.logs().contains("tls"), "{}", untrusted.logs());
    let metrics = untrusted.get("/metrics").body;
    assert!(
        !metrics.contains("sextant_webhook_deliveries_total{outcome=\"failed\"} 0\n"),
        "{metrics}"
    );
}
