//! Rule groups managed over HTTP with the ruler API, as Grafana's data
//! source-managed rule editor, mimirtool and scripts use it: a group POSTed
//! as YAML is listed beside the file-loaded ones, fires on StatsD data and
//! notifies a webhook; a second POST with a new threshold replaces it (the
//! next evaluation resolves the alert); it survives a restart; it is
//! deleted. Bad groups get 400 naming the rule, file-loaded namespaces 409,
//! and every change is in `/api/v1/rules/changes`.

use std::path::Path;

use serde_json::Value;
use sextant_tests::{Receiver, Sextant, run_python};

const FILE_RULES: &str = r#"
groups:
  - name: from-a-file
    interval: 1s
    rules:
      - record: queue:messages:max
        expr: max(rabbitmq_queue_messages)
"#;

fn group(threshold: u32) -> String {
    format!(
        r#"name: queue
interval: 1s
rules:
  - alert: QueueBacklog
    expr: rabbitmq_queue_messages > {threshold}
    labels:
      severity: page
    annotations:
      message: "{{{{ $value }}}} messages waiting"
"#
    )
}

fn write_config(dir: &Path, receiver: &str) -> String {
    std::fs::write(dir.join("team-rules.yml"), FILE_RULES).unwrap();
    let config = dir.join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
rule_files: [team-rules.yml]
statsd:
  flush_interval: 200ms
alerting:
  receivers:
    - name: ops
      webhooks:
        - url: {receiver}/grafana
          format: grafana
  route:
    receiver: ops
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
"#
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_owned()
}

fn push_queue_depth(server: &Sextant, depth: i64) {
    let udp = server.addr("statsd", "udp");
    run_python(
        r#"
import sys, statsd
statsd.StatsClient(sys.argv[1], int(sys.argv[2]), prefix="rabbitmq").gauge("queue_messages", int(sys.argv[3]))
"#,
        &[
            &udp.ip().to_string(),
            &udp.port().to_string(),
            &depth.to_string(),
        ],
    );
}

/// A request with headers, answered whatever its status.
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
    let answer = sextant_tests::request(method, url, headers, body.unwrap_or(""));
    (answer.status, answer.body)
}

fn rule_files(server: &Sextant) -> Vec<(String, String)> {
    let rules = server.get("/api/v1/rules").json();
    rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["file"].as_str().unwrap().to_owned(),
                g["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_group_posted_as_yaml_fires_is_replaced_survives_a_restart_and_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = write_config(dir.path(), &receiver.url(""));
    let server = Sextant::builder().args(["--config", &config]).start();
    let base = server.base_url();
    let yaml = [
        ("content-type", "application/yaml"),
        ("x-grafana-user", "alice"),
    ];

    // Grafana's discovery: buildinfo's features, the flags endpoint, and a
    // probe of a group that does not exist.
    let info = server.get("/api/v1/status/buildinfo").json();
    assert_eq!(info["data"]["features"]["ruler_config_api"], "true");
    assert_eq!(server.get("/api/v1/status/flags").status, 200);
    let (status, body) = request("GET", &format!("{base}/api/v1/rules/test/test"), &[], None);
    assert_eq!(status, 404);
    assert!(
        body.contains("group does not exist") || body.contains("no rule groups found"),
        "{body}"
    );

    // Create: 202, listed beside the file's group, in JSON and YAML.
    let (status, body) = request(
        "POST",
        &format!("{base}/api/v1/rules/payments"),
        &yaml,
        Some(&group(100)),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "success"
    );
    let files = rule_files(&server);
    assert!(
        files.contains(&("payments".to_owned(), "queue".to_owned())),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|(f, g)| f.ends_with("team-rules.yml") && g == "from-a-file")
    );
    let (status, listing) = request(
        "GET",
        &format!("{base}/api/v1/rules"),
        &[("accept", "application/yaml")],
        None,
    );
    assert_eq!(status, 200);
    let listing: Value = serde_norway::from_str(&listing).unwrap();
    assert_eq!(listing["payments"][0]["name"], "queue");
    assert_eq!(listing["payments"][0]["rules"][0]["alert"], "QueueBacklog");
    assert!(
        listing
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("team-rules.yml"))
    );
    for prefix in [
        "/prometheus/config/v1/rules",
        "/config/v1/rules",
        "/api/v1/rules",
    ] {
        let (status, one) = request("GET", &format!("{base}{prefix}/payments/queue"), &[], None);
        assert_eq!(status, 200, "{prefix}: {one}");
        let one: Value = serde_norway::from_str(&one).unwrap();
        assert_eq!(
            one["rules"][0]["expr"], "rabbitmq_queue_messages > 100",
            "{prefix}"
        );
    }

    // It fires on StatsD data and notifies.
    push_queue_depth(&server, 150);
    let firing = receiver.wait_for("/grafana", "alerting", |b| b["state"] == "alerting");
    assert_eq!(firing["title"], "[Alerting] QueueBacklog");
    assert_eq!(firing["message"], "150 messages waiting");

    // Replaced with a threshold above the value: the next evaluation resolves it.
    let (status, body) = request(
        "POST",
        &format!("{base}/prometheus/config/v1/rules/payments"),
        &yaml,
        Some(&group(200)),
    );
    assert_eq!(status, 202, "{body}");
    receiver.wait_for("/grafana", "ok after the new threshold", |b| {
        b["state"] == "ok"
    });
    let (_, one) = request(
        "GET",
        &format!("{base}/api/v1/rules/payments/queue"),
        &[],
        None,
    );
    assert!(one.contains("rabbitmq_queue_messages > 200"), "{one}");

    // A log rule (Sextant's extension) through the same API.
    let (status, body) = request(
        "POST",
        &format!("{base}/api/v1/rules/payments"),
        &yaml,
        Some(
            "name: logs\nrules:\n  - alert: OrderErrors\n    logs: 'level:ERROR AND service:orders'\n    window: 5m\n    threshold: 5\n",
        ),
    );
    assert_eq!(status, 202, "{body}");

    // Refusals: a broken expression names the rule; a file's namespace is read-only.
    let (status, body) = request(
        "POST",
        &format!("{base}/api/v1/rules/payments"),
        &yaml,
        Some("name: broken\nrules:\n  - alert: BadExpr\n    expr: sum(rate(x[5m])\n"),
    );
    assert_eq!(status, 400, "{body}");
    let error = serde_json::from_str::<Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("BadExpr"), "{error}");
    assert!(error.starts_with("payments:"), "{error}");
    let (status, body) = request(
        "POST",
        &format!("{base}/api/v1/rules/team-rules"),
        &yaml,
        Some(&group(1)),
    );
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("read-only"), "{body}");
    assert!(!rule_files(&server).iter().any(|(_, g)| g == "broken"));

    // A restart keeps the API's groups.
    let kept = server.kill_hard();
    let server = Sextant::builder()
        .data_dir(&kept.data_dir)
        .args(["--config", &config])
        .start();
    let base = server.base_url();
    let files = rule_files(&server);
    assert!(
        files.contains(&("payments".to_owned(), "queue".to_owned())),
        "{files:?}"
    );
    assert!(
        files.contains(&("payments".to_owned(), "logs".to_owned())),
        "{files:?}"
    );
    let rules = server.get("/api/v1/rules").json();
    let logs_rule = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "logs")
        .unwrap();
    assert_eq!(
        logs_rule["rules"][0]["logQuery"]["threshold"].as_f64(),
        Some(5.0)
    );

    // Deleted: a group, then the namespace.
    let (status, _) = request(
        "DELETE",
        &format!("{base}/api/v1/rules/payments/queue"),
        &[("x-grafana-user", "bob")],
        None,
    );
    assert_eq!(status, 202);
    let (status, body) = request(
        "GET",
        &format!("{base}/api/v1/rules/payments/queue"),
        &[],
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert!(!rule_files(&server).iter().any(|(_, g)| g == "queue"));
    let (status, _) = request(
        "DELETE",
        &format!("{base}/config/v1/rules/payments"),
        &[],
        None,
    );
    assert_eq!(status, 202);
    let (status, _) = request("GET", &format!("{base}/api/v1/rules/payments"), &[], None);
    assert_eq!(status, 404);
    assert_eq!(
        rule_files(&server).len(),
        1,
        "only the file's group is left"
    );

    // Who changed what, when.
    let changes = server.get("/api/v1/rules/changes").json();
    let changes = changes["data"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["who"].as_str().unwrap().to_owned(),
                c["what"].as_str().unwrap().to_owned(),
                c["group"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alice".into(), "created".into(), "queue".into()),
            ("alice".into(), "replaced".into(), "queue".into()),
            ("alice".into(), "created".into(), "logs".into()),
            ("bob".into(), "deleted".into(), "queue".into()),
            (
                "anonymous".into(),
                "deleted namespace".into(),
                String::new()
            ),
        ]
    );
    assert!(changes[0]["time"].as_str().unwrap().ends_with('Z'));
    assert!(changes[1]["body"].as_str().unwrap().contains("> 200"));
}
