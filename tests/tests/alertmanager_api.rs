//! Alertmanager's API v2 on Sextant, as its clients use it: Debian's
//! `amtool` lists, adds and expires silences and posts alerts; Debian's
//! Prometheus 2.42 sends its firing alerts, which reach a webhook through
//! Sextant's route; and each endpoint's answer has Alertmanager 0.25's
//! shape, bad input included.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sextant_tests::{Prometheus, Receiver, Sextant, request};

/// Two receivers, pages routed to the pager; a page inhibits the warning
/// of the same alertname; webhooks at `{hooks}/ops` and `{hooks}/pager`.
fn start(dir: &Path, hooks: &str, extra: &str) -> Sextant {
    let config = dir.join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
alerting:
  resolve_timeout: 2s
  receivers:
    - name: ops
      webhooks:
        - url: {hooks}/ops
          bearer_token: do-not-show
    - name: pager
      webhooks:
        - url: {hooks}/pager
  route:
    receiver: ops
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['severity="page"']
        receiver: pager
  inhibit_rules:
    - source_matchers: ['severity="page"']
      target_matchers: ['severity="warning"']
      equal: [alertname]
{extra}"#
        ),
    )
    .unwrap();
    Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .data_dir(&dir.join("data"))
        .start()
}

/// Runs amtool against `server`; asserts exit code 0 and returns stdout.
fn amtool(server: &Sextant, args: &[&str]) -> String {
    let out = Command::new(sextant_tests::amtool())
        .arg(format!("--alertmanager.url={}", server.base_url()))
        .args(args)
        .output()
        .expect("run amtool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "amtool {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn alert_names(alerts: &Value) -> Vec<String> {
    let mut names: Vec<String> = alerts
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {alerts}"))
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn amtool_adds_queries_and_expires_as_against_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let server = start(dir.path(), &hooks.url(""), "");

    // config.original is an Alertmanager config amtool can draw.
    let routes = amtool(&server, &["config", "routes"]);
    assert!(
        routes.contains("{severity=\"page\"}  receiver: pager"),
        "{routes}"
    );

    amtool(
        &server,
        &[
            "alert",
            "add",
            "alertname=DiskFull",
            "severity=page",
            "--annotation=summary=disk is full",
        ],
    );
    let paged = hooks.wait_for("/pager", "amtool's alert", |b| b["status"] == "firing");
    assert_eq!(paged["alerts"][0]["labels"]["alertname"], "DiskFull");
    assert_eq!(paged["alerts"][0]["annotations"]["summary"], "disk is full");
    assert_eq!(paged["receiver"], "pager");

    let listed: Value = serde_json::from_str(&amtool(&server, &["alert", "query", "-o", "json"]))
        .expect("amtool's JSON");
    assert_eq!(alert_names(&listed), ["DiskFull"]);
    assert_eq!(listed[0]["receivers"][0]["name"], "pager");
    let simple = amtool(&server, &["alert", "query", "alertname=DiskFull"]);
    assert!(simple.contains("disk is full"), "{simple}");
    assert!(!amtool(&server, &["alert", "query", "alertname=Other"]).contains("DiskFull"));

    let id = amtool(
        &server,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "--comment=replacing the disk",
            "--author=ops",
        ],
    )
    .trim()
    .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let silences = amtool(&server, &["silence", "query"]);
    assert!(
        silences.contains(&id) && silences.contains("replacing the disk"),
        "{silences}"
    );
    // Silenced: amtool's default query leaves it out, --silenced shows it.
    assert!(!amtool(&server, &["alert", "query"]).contains("DiskFull"));
    assert!(amtool(&server, &["alert", "query", "--silenced"]).contains("DiskFull"));

    amtool(&server, &["silence", "expire", &id]);
    let expired = server.get(&format!("/api/v2/silence/{id}")).json();
    assert_eq!(expired["status"]["state"], "expired");
    assert!(!amtool(&server, &["silence", "query"]).contains(&id));
    assert!(amtool(&server, &["silence", "query", "--expired"]).contains(&id));
}

fn post_json(server: &Sextant, path: &str, body: &Value) -> sextant_tests::Reply {
    server.post_path(path, "application/json", body.to_string().as_bytes())
}

/// An error answer: a JSON string, as Alertmanager writes them.
fn error_text(reply: &sextant_tests::Reply) -> String {
    match reply.json() {
        Value::String(text) => text,
        other => panic!("not a JSON string: {other}"),
    }
}

#[test]
fn every_endpoint_answers_in_alertmanagers_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let limits = "limits:\n  max_request_body: 256KiB\n";
    let server = start(dir.path(), &hooks.url(""), limits);

    let status = server.get("/api/v2/status").json();
    assert_eq!(
        status["cluster"],
        json!({"status": "disabled", "peers": []})
    );
    for field in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(
            status["versionInfo"][field].is_string(),
            "{field}: {status}"
        );
    }
    assert!(
        status["uptime"].as_str().unwrap().ends_with('Z'),
        "{status}"
    );
    let original = status["config"]["original"].as_str().unwrap();
    assert!(original.contains("resolve_timeout: 2s"), "{original}");
    assert!(original.contains("webhook_configs"), "{original}");
    assert!(original.contains("credentials: <secret>"), "{original}");
    assert!(!original.contains("do-not-show"), "{original}");
    assert_eq!(
        server.get("/api/v2/receivers").json(),
        json!([{"name": "ops"}, {"name": "pager"}])
    );

    // A page, the warning it inhibits, and one with no end: resolve_timeout ends it.
    let later = "2100-01-01T00:00:00Z";
    let page = json!({"labels": {"alertname": "Disk", "severity": "page", "instance": "a"},
        "annotations": {"summary": "full"}, "endsAt": later, "generatorURL": "http://prom/graph"});
    let posted = post_json(
        &server,
        "/api/v2/alerts",
        &json!([page,
            {"labels": {"alertname": "Disk", "severity": "warning"}, "endsAt": later},
            {"labels": {"alertname": "Flaky", "severity": "info", "empty": ""}}]),
    );
    assert_eq!(posted.status, 200, "{}", posted.body);
    let alerts = server.get("/api/v2/alerts").json();
    assert_eq!(alert_names(&alerts), ["Disk", "Disk", "Flaky"]);
    let by_severity = |alerts: &Value, severity: &str| -> Value {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["severity"] == severity)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let paged = by_severity(&alerts, "page");
    // Alertmanager 0.25's fingerprint for these labels.
    assert_eq!(paged["fingerprint"], "b67213edc156728d");
    assert_eq!(paged["receivers"], json!([{"name": "pager"}]));
    assert_eq!(
        paged["status"],
        json!({"state": "active", "silencedBy": [], "inhibitedBy": []})
    );
    assert_eq!(paged["generatorURL"], "http://prom/graph");
    assert_eq!(paged["endsAt"], "2100-01-01T00:00:00.000Z");
    for field in ["startsAt", "updatedAt", "annotations"] {
        assert!(!paged[field].is_null(), "{field}: {paged}");
    }
    let warning = by_severity(&alerts, "warning");
    assert_eq!(warning["status"]["state"], "suppressed");
    assert_eq!(
        warning["status"]["inhibitedBy"],
        json!(["b67213edc156728d"])
    );
    assert!(
        by_severity(&alerts, "info")["labels"]
            .get("empty")
            .is_none(),
        "empty labels are dropped"
    );

    // GET's filters.
    let names = |query: &str| alert_names(&server.get(&format!("/api/v2/alerts?{query}")).json());
    assert_eq!(names("filter=alertname%3D%22Disk%22"), ["Disk", "Disk"]);
    assert_eq!(
        names("filter=%7Balertname%3D%22Disk%22%2Cseverity%3D~%22pa.%2A%22%7D"),
        ["Disk"]
    );
    assert_eq!(names("inhibited=false"), ["Disk", "Flaky"]);
    assert_eq!(names("active=false"), ["Disk"]);
    assert_eq!(names("receiver=pag.%2A"), ["Disk"]);
    assert_eq!(names("receiver=pag"), Vec::<String>::new(), "anchored");
    assert_eq!(names("silenced=false&unprocessed=true").len(), 3);

    // Groups as the dispatcher holds them.
    let groups = server.get("/api/v2/alerts/groups").json();
    let pager_group = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["receiver"]["name"] == "pager")
        .unwrap_or_else(|| panic!("no pager group: {groups}"));
    assert_eq!(pager_group["labels"], json!({"alertname": "Disk"}));
    assert_eq!(pager_group["alerts"][0]["fingerprint"], "b67213edc156728d");
    let only_ops = server.get("/api/v2/alerts/groups?receiver=ops").json();
    assert!(
        only_ops
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["receiver"]["name"] == "ops"),
        "{only_ops}"
    );

    // Sent without endsAt: resolved after resolve_timeout (2s), as Alertmanager.
    let resolved = hooks.wait_for("/ops", "Flaky resolved by the timeout", |b| {
        b["status"] == "resolved" && b["alerts"][0]["labels"]["alertname"] == "Flaky"
    });
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // Silences: create, read, filter, mute, update in place, expire.
    let silence = json!({"matchers": [{"name": "alertname", "value": "Disk", "isRegex": false}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": later, "createdBy": "ops", "comment": "disk swap"});
    let created = post_json(&server, "/api/v2/silences", &silence);
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.json()["silenceID"].as_str().unwrap().to_owned();
    let got = server.get(&format!("/api/v2/silence/{id}")).json();
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["status"], json!({"state": "active"}));
    assert_eq!(
        got["matchers"],
        json!([{"name": "alertname", "value": "Disk", "isRegex": false, "isEqual": true}])
    );
    assert_eq!(
        (&got["createdBy"], &got["comment"]),
        (&json!("ops"), &json!("disk swap"))
    );
    assert_eq!(got["endsAt"], "2100-01-01T00:00:00.000Z");
    assert_ne!(
        got["startsAt"], "2020-01-01T00:00:00.000Z",
        "a start in the past is now"
    );
    assert!(got["updatedAt"].is_string());
    let listed = |filter: &str| {
        server
            .get(&format!("/api/v2/silences?filter={filter}"))
            .json()
    };
    assert_eq!(listed("alertname%3DDisk")[0]["id"], id.as_str());
    assert_eq!(listed("alertname%3DOther"), json!([]));
    let muted = by_severity(&server.get("/api/v2/alerts").json(), "page");
    assert_eq!(muted["status"]["silencedBy"], json!([id]));
    assert_eq!(names("silenced=false"), Vec::<String>::new());
    let mut longer = got;
    longer["endsAt"] = json!("2101-01-01T00:00:00Z");
    let updated = post_json(&server, "/api/v2/silences", &longer);
    assert_eq!(updated.json()["silenceID"], id.as_str(), "updated in place");
    assert_eq!(
        server.get(&format!("/api/v2/silence/{id}")).json()["endsAt"],
        "2101-01-01T00:00:00.000Z"
    );
    assert_eq!(server.delete(&format!("/api/v2/silence/{id}")).status, 200);
    assert_eq!(
        server.get(&format!("/api/v2/silence/{id}")).json()["status"]["state"],
        "expired"
    );
    let unknown = server.get("/api/v2/silence/no-such-silence");
    assert_eq!(unknown.status, 404);
    assert_eq!(error_text(&unknown), "silence no-such-silence not found");
    assert_eq!(server.delete("/api/v2/silence/no-such-silence").status, 404);

    // Resolving by sending endsAt in the past, as Prometheus does.
    let mut resolve = page;
    resolve["endsAt"] = json!("2020-01-01T00:00:00Z");
    resolve["startsAt"] = json!("2019-12-31T00:00:00Z");
    assert_eq!(
        post_json(&server, "/api/v2/alerts", &json!([resolve])).status,
        200
    );
    hooks.wait_for("/pager", "the page resolved", |b| b["status"] == "resolved");
    let left = server.get("/api/v2/alerts").json();
    assert_eq!(alert_names(&left), ["Disk"]);
    assert_eq!(
        left[0]["status"]["state"], "active",
        "no longer inhibited: {left}"
    );

    // Bad input: 400 with a JSON string naming what is wrong.
    for (method, path, body, says) in [
        (
            "GET",
            "/api/v2/alerts?filter=alertname%3D%22Disk",
            "",
            "unterminated quoted value",
        ),
        (
            "GET",
            "/api/v2/alerts?active=maybe",
            "",
            "invalid value \"maybe\" for parameter active",
        ),
        (
            "GET",
            "/api/v2/alerts?receiver=(",
            "",
            "failed to parse receiver param",
        ),
        (
            "GET",
            "/api/v2/alerts/groups?filter=sev",
            "",
            "bad matcher format",
        ),
        (
            "GET",
            "/api/v2/silences?filter=a%3D~%22(%22",
            "",
            "invalid regex",
        ),
        (
            "POST",
            "/api/v2/alerts",
            "{\"labels\": {}}",
            "want a JSON array",
        ),
        ("POST", "/api/v2/alerts", "[{\"labels\": ", "invalid alerts"),
        (
            "POST",
            "/api/v2/alerts",
            "[{\"labels\": {\"alertname\": \"Kept\"}}, {\"labels\": {}}]",
            "alert 1: at least one label pair required",
        ),
        (
            "POST",
            "/api/v2/alerts",
            "[{\"labels\": {\"a\": \"b\"}, \"startsAt\": \"2025-01-01T00:00:00Z\", \"endsAt\": \"2024-01-01T00:00:00Z\"}]",
            "start time must be before end time",
        ),
        (
            "POST",
            "/api/v2/silences",
            "{\"matchers\": [{\"name\": \"a\", \"value\": \"b\"}], \"startsAt\": \"2020-01-01T00:00:00Z\", \"endsAt\": \"2100-01-01T00:00:00Z\", \"createdBy\": \"x\"}",
            "comment is required",
        ),
        (
            "POST",
            "/api/v2/silences",
            "{\"matchers\": [{\"name\": \"a\", \"value\": \"b\"}], \"startsAt\": \"2020-01-01T00:00:00Z\", \"endsAt\": \"2021-01-01T00:00:00Z\", \"createdBy\": \"x\", \"comment\": \"y\"}",
            "end time can't be in the past",
        ),
        ("POST", "/api/v2/silences", "not json", "invalid silence"),
    ] {
        let answer = request(method, &format!("{}{path}", server.base_url()), &[], body);
        assert_eq!(
            answer.status, 400,
            "{method} {path} {body}: {}",
            answer.body
        );
        let text: String = serde_json::from_str(&answer.body)
            .unwrap_or_else(|e| panic!("{path}: not a JSON string ({e}): {}", answer.body));
        assert!(text.contains(says), "{method} {path} {body}: {text}");
    }
    // The valid alert of a partly bad batch was taken, as Alertmanager takes it.
    assert!(alert_names(&server.get("/api/v2/alerts").json()).contains(&"Kept".to_owned()));
    let unknown_update = post_json(
        &server,
        "/api/v2/silences",
        &json!({"id": "nope", "matchers": [{"name": "a", "value": "b", "isRegex": false}],
            "startsAt": "2020-01-01T00:00:00Z", "endsAt": later, "createdBy": "x", "comment": "y"}),
    );
    assert_eq!(unknown_update.status, 404);
    assert_eq!(error_text(&unknown_update), "silence nope not found");

    // 10,000 alerts in one POST: bounded by limits.max_request_body.
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"labels": {"alertname": "Many", "n": i.to_string()}}))
        .collect();
    let refused = post_json(&server, "/api/v2/alerts", &json!(many));
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert!(
        refused.body.contains("limits.max_request_body"),
        "{}",
        refused.body
    );
    assert!(!alert_names(&server.get("/api/v2/alerts").json()).contains(&"Many".to_owned()));

    // The alerts other rulers sent are kept across a restart.
    let (stopped, _) = server.stop_with("TERM", Duration::from_secs(15));
    assert!(stopped.success(), "{stopped}");
    let server = start(dir.path(), &hooks.url(""), limits);
    let kept = server.get("/api/v2/alerts?filter=alertname%3DDisk").json();
    assert_eq!(kept[0]["fingerprint"], "ca035b8d28b423fc", "{kept}");
}

#[test]
fn prometheus_alerts_reach_a_webhook_through_sextants_route() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Receiver::start();
    let server = start(dir.path(), &hooks.url(""), "");
    let rules = dir.path().join("prometheus-rules.yml");
    std::fs::write(
        &rules,
        r#"
groups:
  - name: from-prometheus
    rules:
      - alert: PrometheusPages
        expr: vector(1)
        for: 0s
        labels:
          severity: page
        annotations:
          summary: "sent by Prometheus"
"#,
    )
    .unwrap();
    let prometheus = Prometheus::start(
        &format!(
            r#"
global:
  evaluation_interval: 1s
rule_files: ["{}"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{}"]
"#,
            rules.display(),
            server.addr("http", "tcp")
        ),
        // Its first send may come before it found its Alertmanager; it
        // sends again after this (a minute by default).
        &["--rules.alert.resend-delay=1s"],
    );
    let from_prometheus = |b: &Value| b["alerts"][0]["labels"]["alertname"] == "PrometheusPages";
    let deadline = Instant::now() + Duration::from_secs(60);
    while hooks.count("/pager", from_prometheus) == 0 {
        assert!(
            Instant::now() < deadline,
            "Prometheus's alert never reached the webhook:\n{}",
            prometheus.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let paged = hooks.wait_for("/pager", "Prometheus's alert", from_prometheus);
    assert_eq!(paged["status"], "firing");
    assert_eq!(paged["receiver"], "pager");
    let alert = &paged["alerts"][0];
    assert_eq!(alert["annotations"]["summary"], "sent by Prometheus");
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .contains("g0.expr=vector"),
        "{alert}"
    );
    let listed = server
        .get("/api/v2/alerts?filter=alertname%3DPrometheusPages")
        .json();
    assert_eq!(listed[0]["receivers"], json!([{"name": "pager"}]));
    assert_ne!(
        listed[0]["endsAt"], "0001-01-01T00:00:00Z",
        "Prometheus sends an end it moves on while the alert fires"
    );
}
