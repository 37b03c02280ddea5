//! Logs as services send them: python-logstash over TCP and UDP (event
//! versions 0 and 1) and NDJSON over HTTP, found again through the search
//! and histogram APIs by request id, level, service and free text.

use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_tests::{Sextant, run_python, url_encode};

/// Searches until `check` accepts the answer ([`Sextant::search_until`]).
fn search_until(server: &Sextant, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    server.search_until(query, "", check)
}

fn total(n: u64) -> impl Fn(&Value) -> bool {
    move |json| json["total"] == n
}

#[test]
fn python_logstash_events_are_found_by_uuid_level_service_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "logs:\n  redact:\n    - {pattern: card_number, action: mask}\n    - {field: password, action: drop}\n",
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let addr = server.addr("logstash", "tcp");
    run_python(
        r#"
import logging, sys, logstash
host, port = sys.argv[1], int(sys.argv[2])
uuid = "a95d17ac-f2b5-4f2c-8e8e-2a3f07c68cf2"
for version in (0, 1):
    for transport in ("tcp", "udp"):
        log = logging.getLogger("gateway-%s-%d" % (transport, version))
        log.setLevel(logging.DEBUG)
        log.propagate = False
        if transport == "tcp":
            handler = logstash.TCPLogstashHandler(host, port, version=version, message_type="gateway")
        else:
            handler = logstash.LogstashHandler(host, port, version=version, message_type="gateway")
        log.addHandler(handler)
        extra = {"uuid": uuid, "transport": transport, "event_version": version}
        log.info("placing sell order", extra=extra)
        log.warning("queue is filling up", extra=dict(extra, depth=120))
        log.error("sell order failed with card 4111 1111 1111 1111",
                  extra=dict(extra, password="hunter2"))
        handler.close()
"#,
        &[&addr.ip().to_string(), &addr.port().to_string()],
    );
    let uuid = "a95d17ac-f2b5-4f2c-8e8e-2a3f07c68cf2";
    // 3 lines x 2 versions x 2 transports, all carrying the request id.
    let all = search_until(&server, &format!("uuid:\"{uuid}\""), total(12));
    let hits = all["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 12);
    for hit in hits {
        assert_eq!(hit["service"], "gateway", "{hit}");
        assert!(hit["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(hit["fields"]["transport"].is_string(), "{hit}");
    }
    // Newest first.
    let times: Vec<&str> = hits
        .iter()
        .map(|h| h["timestamp"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    search_until(&server, "level:ERROR", total(4));
    search_until(&server, "level:WARN AND fields.event_version:0", total(2));
    search_until(&server, "transport:udp AND sell", total(4));
    search_until(&server, "\"queue is filling\"", total(4));
    search_until(&server, "depth:[100 TO 200]", total(4));
    search_until(&server, "service:gateway NOT failed", total(8));

    // Redaction happened before storing: the card number is masked, the password gone.
    let failed = search_until(&server, "failed", total(4));
    for hit in failed["hits"].as_array().unwrap() {
        assert_eq!(hit["message"], "sell order failed with card ****", "{hit}");
        assert!(hit["fields"].get("password").is_none(), "{hit}");
    }
    let data = server_data_dir(&server);
    for secret in ["4111 1111 1111 1111", "hunter2"] {
        assert!(
            !dir_contains(&data, secret.as_bytes()),
            "{secret} reached the disk"
        );
    }

    // The histogram counts the same lines.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Eleven whole minutes ending after now: buckets align to the step.
    let start = now / 60 * 60 - 600;
    let histogram = server
        .get(&format!(
            "/api/v1/logs/histogram?q={}&start={}&end={}&step=60",
            url_encode(&format!("uuid:\"{uuid}\"")),
            start,
            start + 660
        ))
        .json();
    let buckets = histogram["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 11, "{histogram}");
    let counted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 12, "{histogram}");
}

fn server_data_dir(server: &Sextant) -> std::path::PathBuf {
    server.data_dir.clone()
}

fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            dir_contains(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

#[test]
fn ndjson_over_http_keeps_good_lines_and_names_bad_ones() {
    let server = Sextant::start();
    let body = concat!(
        r#"{"@timestamp": "2026-11-28T10:00:00.000001Z", "message": "settings loaded", "service": "settings", "level": "info", "request_id": "r-1"}"#,
        "\n",
        "{not json\n",
        "\n",
        r#"{"timestamp": 1795860001, "msg": "x", "app": "profile", "levelname": "ERROR", "request_id": "r-1", "duration_ms": 812}"#,
        "\n",
        "[1]\n",
    );
    let reply = server.post_path("/api/v1/logs", "application/x-ndjson", body.as_bytes());
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("stored 2 events; 2 bad lines: line 2: event is not JSON"),
        "{error}"
    );
    assert!(
        error.contains("line 5: a logstash event must be a JSON object"),
        "{error}"
    );

    let range = "&start=2026-11-28T00:00:00Z&end=2026-11-29T00:00:00Z";
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let json = server
            .get(&format!(
                "/api/v1/logs/search?q=request_id:r-1&order=asc{range}"
            ))
            .json();
        if json["total"] == 2 || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(found["total"], 2, "{found}");
    let first = &found["hits"][0];
    assert_eq!(first["timestamp"], "2026-11-28T10:00:00.000001Z");
    assert_eq!(
        (&first["service"], &first["level"]),
        (&"settings".into(), &"INFO".into())
    );
    let second = &found["hits"][1];
    assert_eq!(second["timestamp"], "2026-11-28T10:00:01.000000Z");
    assert_eq!(
        (&second["service"], &second["level"]),
        (&"profile".into(), &"ERROR".into())
    );
    assert_eq!(second["fields"]["duration_ms"], 812);
    let slow = server
        .get(&format!(
            "/api/v1/logs/search?q={}{range}",
            url_encode("duration_ms:>500")
        ))
        .json();
    assert_eq!(slow["total"], 1, "{slow}");

    for (path, reason) in [
        ("/api/v1/logs/search?q=level:(", "invalid query"),
        ("/api/v1/logs/search?limit=0", "invalid parameter \"limit\""),
        (
            "/api/v1/logs/search?order=up",
            "invalid parameter \"order\"",
        ),
        (
            "/api/v1/logs/histogram?step=-1",
            "invalid parameter \"step\"",
        ),
        ("/api/v1/logs/search?start=yesterday", "start"),
    ] {
        let reply = server.get(path);
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        let error = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(reason), "{path}: {error}");
    }
}

#[test]
fn acknowledged_logs_survive_kill_9() {
    let server = Sextant::start();
    let lines: String = (0..50)
        .map(|i| format!("{{\"message\": \"payment {i} settled\", \"service\": \"payments\", \"seq\": {i}}}\n"))
        .collect();
    let reply = server.post_path("/api/v1/logs", "application/x-ndjson", lines.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["stored"], 50);
    // Killed at once: the index may not have committed, the WAL has it.
    let kept = server.kill_hard();
    let server = Sextant::restart_on(&kept);
    let found = server
        .get("/api/v1/logs/search?q=service:payments&limit=100")
        .json();
    assert_eq!(found["total"], 50, "{found}");
}

#[test]
fn elasticsearch_bulk_as_fluent_bit_and_logstash_send_it() {
    let server = Sextant::start();
    // The handshake shippers make before sending.
    let info = server.get("/");
    assert_eq!(info.status, 200);
    assert_eq!(
        info.json()["version"]["number"]
            .as_str()
            .unwrap()
            .split('.')
            .next(),
        Some("8")
    );
    assert_eq!(info.json()["version"]["build_flavor"], "default");
    assert_eq!(
        server.get("/_license").json()["license"]["status"],
        "active"
    );
    assert_eq!(server.get("/_index_template/logs").status, 404);
    let put = server.post_path("/_ilm/policy/logs", "application/json", b"{}");
    assert_eq!(put.status, 405, "POST is not how ILM policies are made");

    // Fluent Bit's es output: create actions, the line in `log`, the index in the URL.
    let body = concat!(
        r#"{"create":{"_index":"payments"}}"#,
        "\n",
        r#"{"@timestamp":"2026-11-28T10:00:00.250Z","log":"payment accepted","request_id":"b-7","stream":"stdout"}"#,
        "\n",
        r#"{"create":{}}"#,
        "\n",
        "{this is not json}\n",
        r#"{"index":{"_index":"logstash-2026.11.28","_id":"abc"}}"#,
        "\n",
        r#"{"@timestamp":"2026-11-28T10:00:01Z","message":"payment refunded","level":"warn","request_id":"b-7"}"#,
        "\n",
    );
    let reply = server.post_path("/fluent-bit/_bulk", "application/x-ndjson", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["errors"], true);
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{answer}");
    assert_eq!(items[0]["create"]["status"], 201);
    assert_eq!(items[0]["create"]["_index"], "payments");
    assert_eq!(items[1]["create"]["status"], 400);
    assert_eq!(
        items[1]["create"]["error"]["type"],
        "mapper_parsing_exception"
    );
    assert_eq!(items[2]["index"]["_id"], "abc");
    assert_eq!(items[2]["index"]["result"], "created");

    let range = "&start=2026-11-28T00:00:00Z&end=2026-11-29T00:00:00Z&order=asc";
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let json = server
            .get(&format!("/api/v1/logs/search?q=request_id:b-7{range}"))
            .json();
        if json["total"] == 2 || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(found["total"], 2, "{found}");
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(
        (&hits[0]["message"], &hits[0]["service"]),
        (&"payment accepted".into(), &"payments".into())
    );
    assert_eq!(hits[0]["fields"]["stream"], "stdout");

    // Fluent Bit with `Compress gzip`.
    let gzipped = concat!(
        r#"{"create":{}}"#,
        "\n",
        r#"{"@timestamp":"2026-11-28T11:00:00Z","log":"compressed line","request_id":"gz-1"}"#,
        "\n",
    );
    let reply = server.post_gzip("/_bulk", "application/x-ndjson", gzipped.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["errors"], false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server
        .get(&format!("/api/v1/logs/search?q=request_id:gz-1{range}"))
        .json()["total"]
        != 1
    {
        assert!(
            Instant::now() < deadline,
            "the gzip bulk line never became searchable"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The index name, without its date, names the service.
    assert_eq!(
        (&hits[1]["service"], &hits[1]["level"]),
        (&"logstash".into(), &"WARN".into())
    );
}

/// The Python SDK's logging bridge inside a span: each record carries the
/// span's trace and span ids. Prints the trace id.
const OTEL_LOGS: &str = r#"
import logging, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Http

transport, endpoint = sys.argv[1], sys.argv[2]
exporter = Grpc(endpoint=endpoint, insecure=True) if transport == "grpc" else Http(endpoint=endpoint + "/v1/logs")
resource = Resource.create({"service.name": "profile-" + transport, "host.name": "pod-7"})
provider = LoggerProvider(resource=resource)
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
log = logging.getLogger("profile-" + transport)
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
tracer = TracerProvider(resource=resource).get_tracer("profile")
with tracer.start_as_current_span("GET /profile") as span:
    log.info("looking up ip address", extra={"ip": "10.0.0.7"})
    log.error("settings service timed out", extra={"timeout_ms": 500})
    trace_id = format(span.get_span_context().trace_id, "032x")
provider.shutdown()
print(trace_id)
"#;

#[test]
fn opentelemetry_sdk_logs_arrive_over_grpc_and_http_with_their_trace_ids() {
    let server = Sextant::start();
    for (transport, endpoint) in [
        (
            "grpc",
            format!("http://{}", server.addr("otlp_grpc", "tcp")),
        ),
        (
            "http",
            format!("http://{}", server.addr("otlp_http", "tcp")),
        ),
    ] {
        let trace_id = run_python(OTEL_LOGS, &[transport, &endpoint])
            .trim()
            .to_owned();
        assert_eq!(trace_id.len(), 32, "{trace_id}");
        let found = search_until(&server, &format!("trace_id:{trace_id}"), total(2));
        let hits = found["hits"].as_array().unwrap();
        let error = &hits[0];
        assert_eq!(error["message"], "settings service timed out", "{found}");
        assert_eq!(error["level"], "ERROR");
        assert_eq!(error["service"], format!("profile-{transport}"));
        assert_eq!(error["host"], "pod-7");
        assert_eq!(error["fields"]["timeout_ms"], 500);
        assert_eq!(error["fields"]["trace_id"], trace_id.as_str());
        assert_eq!(error["fields"]["span_id"].as_str().unwrap().len(), 16);
        assert_eq!(hits[1]["level"], "INFO");
        assert_eq!(hits[1]["fields"]["ip"], "10.0.0.7");
        search_until(
            &server,
            &format!("service:profile-{transport} AND level:ERROR"),
            total(1),
        );
    }
    // OTLP/JSON with a bad id names it.
    let url = format!("http://{}/v1/logs", server.addr("otlp_http", "tcp"));
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"},"traceId":"xyz"}]}]}]}"#;
    let reply = server.post(&url, "application/json", body);
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["message"],
        "resourceLogs[0].scopeLogs[0].logRecords[0].traceId: expected 32 hex digits, found \"xyz\""
    );
}

#[test]
fn loki_pushes_in_json_and_snappy_protobuf() {
    use sextant_ingest::loki::proto;
    let server = Sextant::start();
    let json = br#"{"streams": [{"stream": {"app": "market", "env": "prod"},
        "values": [["1795860000000000000", "order 17 placed"],
                   ["1795860001000000000", "{\"msg\": \"order 18 failed\", \"level\": \"error\"}"]]}]}"#;
    let reply = server.post_path("/loki/api/v1/push", "application/json", json);
    assert_eq!(reply.status, 204, "{}", reply.body);
    let request = proto::PushRequest {
        streams: vec![proto::Stream {
            labels: r#"{app="market", env="staging"}"#.to_owned(),
            entries: vec![proto::EntryAdapter {
                timestamp: Some(proto::Timestamp {
                    seconds: 1_795_860_002,
                    nanos: 500_000_000,
                }),
                line: "order 19 placed".to_owned(),
                structured_metadata: vec![],
            }],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&request))
        .unwrap();
    let reply = server.post_path("/loki/api/v1/push", "application/x-protobuf", &body);
    assert_eq!(reply.status, 204, "{}", reply.body);
    let range = "&start=2026-11-28T00:00:00Z&end=2026-11-29T00:00:00Z&order=asc";
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let json = server
            .get(&format!("/api/v1/logs/search?q=service:market{range}"))
            .json();
        if json["total"] == 3 || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(found["total"], 3, "{found}");
    assert_eq!(found["hits"][1]["level"], "ERROR");
    assert_eq!(found["hits"][2]["timestamp"], "2026-11-28T10:00:02.500000Z");
    assert_eq!(found["hits"][2]["fields"]["env"], "staging");
    let bad = server.post_path("/loki/api/v1/push", "application/json", b"{\"streams\": 1}");
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("\"streams\" array")
    );
}

#[test]
fn fields_show_top_values_and_tail_streams_new_lines() {
    use std::io::BufRead as _;
    let server = Sextant::start();
    let lines: String = (0..30)
        .map(|i| {
            let level = if i % 3 == 0 { "error" } else { "info" };
            format!("{{\"message\": \"request {i}\", \"service\": \"gateway\", \"level\": \"{level}\", \"route\": \"/orders/{}\"}}\n", i % 2)
        })
        .collect();
    assert_eq!(
        server
            .post_path("/api/v1/logs", "application/x-ndjson", lines.as_bytes())
            .status,
        200
    );
    search_until(&server, "service:gateway", total(30));
    let fields = server.get("/api/v1/logs/fields?q=service:gateway").json();
    assert_eq!(fields["sampled"], 30, "{fields}");
    let level = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "level")
        .unwrap()
        .clone();
    assert_eq!(level["count"], 30);
    assert_eq!(
        level["top"][0],
        serde_json::json!({"value": "INFO", "count": 20})
    );
    assert_eq!(
        level["top"][1],
        serde_json::json!({"value": "ERROR", "count": 10})
    );
    let route = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "route")
        .unwrap()
        .clone();
    assert_eq!(route["top"].as_array().unwrap().len(), 2);

    // Pages: each full page hands out the cursor of the next; no line twice.
    let mut seen = std::collections::BTreeSet::new();
    let mut pages = 0;
    let mut path = "/api/v1/logs/search?q=service:gateway&limit=12".to_owned();
    loop {
        let page = server.get(&path).json();
        assert_eq!(page["total"], 30, "{page}");
        pages += 1;
        for hit in page["hits"].as_array().unwrap() {
            assert!(seen.insert(hit["message"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!(
                    "/api/v1/logs/search?q=service:gateway&limit=12&cursor={}",
                    url_encode(cursor)
                );
            }
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (30, 3));
    let bad = server.get("/api/v1/logs/search?cursor=yesterday");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("cursor"), "{}", bad.body);

    // Tail: only what arrives after the stream opens, as server-sent events,
    // a late line stamped an hour ago included.
    let url = format!(
        "{}/api/v1/logs/tail?q={}",
        server.base_url(),
        url_encode("level:ERROR")
    );
    let response = ureq::get(&url).call().unwrap();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        "text/event-stream"
    );
    let mut reader = std::io::BufReader::new(response.into_body().into_reader());
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let fresh = format!(
        "{{\"message\": \"payment declined\", \"service\": \"payments\", \"level\": \"error\", \"timestamp\": {hour_ago}}}\n{{\"message\": \"fine\", \"level\": \"info\"}}\n"
    );
    assert_eq!(
        server
            .post_path("/api/v1/logs", "application/x-ndjson", fresh.as_bytes())
            .status,
        200
    );
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        if let Some(data) = line.strip_prefix("data: ") {
            let event: Value = serde_json::from_str(data.trim()).unwrap();
            assert_eq!(
                event["message"], "payment declined",
                "only new ERROR lines are tailed"
            );
            break;
        }
    }
    let bad = server.get("/api/v1/logs/tail?q=level:(");
    assert_eq!(bad.status, 400);
}

/// Logstash has no headers for a token: with `logs.logstash_secret`, every
/// event carries it in a field (python-logstash: a logging filter), events
/// without it are dropped and counted, and the field is never stored.
#[test]
fn with_a_shared_secret_only_events_that_carry_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, "logs:\n  logstash_secret: s3cret-value\n").unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let port = server.addr("logstash", "tcp").port().to_string();
    run_python(
        r#"
import sys, logging, logstash
port = int(sys.argv[1])

class Secret(logging.Filter):
    def filter(self, record):
        record.sextant_secret = "s3cret-value"
        return True

good = logging.getLogger("with-secret")
good.setLevel(logging.INFO)
handler = logstash.TCPLogstashHandler("127.0.0.1", port, version=1)
handler.addFilter(Secret())
good.addHandler(handler)
bad = logging.getLogger("without-secret")
bad.setLevel(logging.INFO)
plain = logstash.TCPLogstashHandler("127.0.0.1", port, version=1)
bad.addHandler(plain)
good.info("kept order", extra={"service": "orders", "uuid": "u-secret-1"})
bad.info("dropped order", extra={"service": "orders", "uuid": "u-secret-2"})
handler.close()
plain.close()
"#,
        &[&port],
    );
    let found = search_until(&server, "uuid:u-secret-1", total(1));
    let hit = &found["hits"][0];
    assert_eq!(hit["message"], "kept order");
    assert!(hit["fields"].get("sextant_secret").is_none(), "{hit}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let dropped = "sextant_listener_dropped_total{listener=\"logstash\",transport=\"tcp\"} 1\n";
    while !server.get("/metrics").body.contains(dropped) {
        assert!(Instant::now() < deadline, "{}", server.get("/metrics").body);
        std::thread::sleep(Duration::from_millis(100));
    }
    let missing = server
        .get(&format!(
            "/api/v1/logs/search?q={}",
            url_encode("uuid:u-secret-2")
        ))
        .json();
    assert_eq!(missing["total"], 0);
    assert!(
        !server.logs().contains("s3cret-value"),
        "the secret was logged"
    );
}
