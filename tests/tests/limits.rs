//! Every configurable limit answers with its documented error naming the
//! setting, keeps the valid rest of the batch, and is counted on `/metrics`.

use std::io::Write as _;

use serde_json::{Value, json};
use sextant_tests::{Sextant, series};

const CONFIG: &str = "\
limits:
  max_request_body: 64KiB
  max_decompressed_body: 128KiB
  max_log_event: 512
  max_fields_per_log: 5
  max_spans_per_request: 3
storage:
  metrics:
    max_labels_per_series: 4
    max_label_name_length: 20
    max_label_value_length: 32
";

fn start() -> (Sextant, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    (server, dir)
}

fn error_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

#[test]
fn bodies_over_the_size_limits_get_413_naming_the_limit() {
    let (server, _dir) = start();
    let big = vec![b'x'; 70 * 1024];
    let reply = server.post_path("/api/v1/logs", "application/x-ndjson", &big);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body.contains("limits.max_request_body (65536 bytes)"),
        "{}",
        reply.body
    );
    // A small gzip body that unpacks past the limit (a gzip bomb) on each gzip path.
    let bomb = vec![b' '; 1024 * 1024];
    for path in ["/api/v1/logs", "/_bulk", "/loki/api/v1/push"] {
        let content_type = if path.starts_with("/loki") {
            "application/json"
        } else {
            "application/x-ndjson"
        };
        let reply = server.post_gzip(path, content_type, &bomb);
        assert_eq!(reply.status, 413, "{path}: {}", reply.body);
        assert!(
            reply
                .body
                .contains("limits.max_decompressed_body (131072 bytes)"),
            "{path}: {}",
            reply.body
        );
    }
    // Remote write: snappy declares its decompressed length.
    let long_name = "x".repeat(200 * 1024);
    let reply = server.remote_write(vec![series(&[("__name__", &long_name)], &[(1, 1.0)])]);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body.contains("limits.max_decompressed_body"),
        "{}",
        reply.body
    );
    // OTLP/HTTP has the same limits.
    let otlp = format!("http://{}/v1/logs", server.addr("otlp_http", "tcp"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bomb).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut answer = agent
        .post(&otlp)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .send(&gz.finish().unwrap()[..])
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body = answer.body_mut().read_to_string().unwrap();
    assert!(body.contains("limits.max_decompressed_body"), "{body}");

    for limit in ["max_request_body", "max_decompressed_body"] {
        server.wait_for_metric(
            "sextant_ingest_limit_refusals_total",
            &[("limit", limit)],
            |v| v >= 1.0,
        );
    }
}

#[test]
fn log_events_over_a_limit_are_named_and_the_rest_stored() {
    let (server, _dir) = start();
    let long = "y".repeat(600);
    let body = format!(
        "{}\n{}\n{}\n",
        json!({"message": "kept", "service": "limited"}),
        json!({"message": long, "service": "limited"}),
        json!({"message": "wide", "service": "limited", "a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}),
    );
    let reply = server.post_path("/api/v1/logs", "application/x-ndjson", body.as_bytes());
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = error_of(&reply.body);
    assert!(error.starts_with("stored 1 events; 2 bad lines"), "{error}");
    assert!(error.contains("line 2: the event is"), "{error}");
    assert!(
        error.contains("limits.max_log_event (512 bytes)"),
        "{error}"
    );
    assert!(
        error.contains("line 3: the event has 7 fields, more than limits.max_fields_per_log (5)"),
        "{error}"
    );
    // Elasticsearch bulk: the item fails with its reason, the others are created.
    let bulk = format!(
        "{}\n{}\n{}\n{}\n",
        json!({"index": {"_index": "limited"}}),
        json!({"message": "bulk kept", "service": "limited"}),
        json!({"index": {"_index": "limited"}}),
        json!({"message": long, "service": "limited"}),
    );
    let reply = server.post_path("/_bulk", "application/x-ndjson", bulk.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["errors"], true);
    assert_eq!(answer["items"][0]["index"]["status"], 201);
    assert_eq!(answer["items"][1]["index"]["status"], 400);
    let reason = answer["items"][1]["index"]["error"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("limits.max_log_event"), "{reason}");
    // logstash TCP: the long line is dropped and counted, the next one kept.
    let mut tcp = std::net::TcpStream::connect(server.addr("logstash", "tcp")).unwrap();
    writeln!(tcp, "{}", json!({"message": long, "service": "limited"})).unwrap();
    writeln!(
        tcp,
        "{}",
        json!({"message": "over tcp", "service": "limited"})
    )
    .unwrap();
    drop(tcp);
    server.get_until("/api/v1/logs/search?q=service:limited&start=0", |v| {
        v["total"] == 3
    });
    let found = server
        .get("/api/v1/logs/search?q=service:limited&start=0&limit=10")
        .json();
    let messages: Vec<&str> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"kept")
            && messages.contains(&"bulk kept")
            && messages.contains(&"over tcp"),
        "{messages:?}"
    );
    let refused_events = server.wait_for_metric(
        "sextant_ingest_limit_refusals_total",
        &[("limit", "max_log_event")],
        |v| v >= 3.0,
    );
    assert_eq!(refused_events, 3.0);
    assert_eq!(
        server.metric(
            "sextant_ingest_limit_refusals_total",
            &[("limit", "max_fields_per_log")]
        ),
        Some(1.0)
    );
}

#[test]
fn series_over_the_label_limits_are_refused_by_name_and_the_rest_kept() {
    let (server, _dir) = start();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let one = |pairs: &[(&str, &str)]| series(pairs, &[(now_ms, 1.0)]);
    let reply = server.remote_write(vec![
        one(&[("__name__", "limited_ok"), ("job", "a")]),
        one(&[
            ("__name__", "limited_wide"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
        ]),
        one(&[("__name__", "limited_long"), ("job", &"v".repeat(40))]),
        one(&[
            ("__name__", "limited_name"),
            ("a_label_name_far_too_long", "1"),
        ]),
    ]);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("stored 1 samples; 3 samples refused"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("more labels than storage.metrics.max_labels_per_series"),
        "{}",
        reply.body
    );
    server.wait_for_query("limited_ok", |v| v.as_array().is_some_and(|r| r.len() == 1));
    for reason in [
        "too_many_labels",
        "label_value_too_long",
        "label_name_too_long",
    ] {
        assert_eq!(
            server.metric("sextant_tsdb_rejected_samples_total", &[("reason", reason)]),
            Some(1.0),
            "{reason}"
        );
    }
}

#[test]
fn otlp_exports_over_a_limit_keep_what_fits_and_say_what_was_refused() {
    let (server, _dir) = start();
    let otlp = format!("http://{}", server.addr("otlp_http", "tcp"));
    let spans: Vec<Value> = (0..5)
        .map(|i| {
            json!({
                "traceId": "5b8efff798038103d269b633813fc60c",
                "spanId": format!("eee19b7ec3c1b17{i}"),
                "name": format!("span {i}"),
                "kind": 2,
                "startTimeUnixNano": "1795900000000000000",
                "endTimeUnixNano": "1795900000001000000",
            })
        })
        .collect();
    let traces = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "limited"}}]},
        "scopeSpans": [{"spans": spans}],
    }]});
    let reply = server.post(
        &format!("{otlp}/v1/traces"),
        "application/json",
        traces.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let partial = &reply.json()["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "2", "{}", reply.body);
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("5 spans, more than limits.max_spans_per_request (3); the first 3 were kept"),
        "{}",
        reply.body
    );
    let trace = server.get_until("/jaeger/api/traces/5b8efff798038103d269b633813fc60c", |v| {
        v["data"][0]["spans"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    });
    assert_eq!(trace["data"][0]["spans"].as_array().unwrap().len(), 3);

    let attributes: Vec<Value> = (0..6)
        .map(|i| json!({"key": format!("attr{i}"), "value": {"intValue": i}}))
        .collect();
    let logs = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "limited"}}]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1795900000000000000", "body": {"stringValue": "narrow"}},
            {"timeUnixNano": "1795900000000000000", "body": {"stringValue": "wide"}, "attributes": attributes},
        ]}],
    }]});
    let reply = server.post(
        &format!("{otlp}/v1/logs"),
        "application/json",
        logs.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let partial = &reply.json()["partialSuccess"];
    assert_eq!(partial["rejectedLogRecords"], "1", "{}", reply.body);
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("limits.max_fields_per_log (5)"),
        "{}",
        reply.body
    );
    assert_eq!(
        server.metric(
            "sextant_ingest_limit_refusals_total",
            &[("limit", "max_spans_per_request")]
        ),
        Some(2.0)
    );
}

#[test]
fn check_config_names_a_bad_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, "limits:\n  max_request_body: huge\n").unwrap();
    let out = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sextant.yaml:2:"), "{stderr}");
    assert!(stderr.contains("\"huge\" is not a size"), "{stderr}");
}
