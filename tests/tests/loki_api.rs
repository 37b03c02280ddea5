//! Grafana's Loki data source against Sextant: logs pushed the way
//! promtail/Alloy (Loki JSON and snappy protobuf), python-logstash and the
//! OpenTelemetry SDK send them, then read back with the requests Grafana's
//! Loki data source makes (its health check, Explore's log and metric
//! queries, the log-volume histogram, the label browser, Logs Drilldown's
//! calls) and a WebSocket tail from a real WebSocket client.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sextant_tests::{Sextant, request, run_python, url_encode};

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `GET path` with the headers Grafana adds; the JSON answer (must be 200).
fn grafana(server: &Sextant, path: &str) -> Value {
    let answer = request(
        "GET",
        &format!("{}{path}", server.base_url()),
        &[
            ("X-Query-Tags", "Source=grafana-explore"),
            ("X-Loki-Response-Encoding-Flags", "categorize-labels"),
            ("X-Scope-OrgID", "1"),
            ("User-Agent", "Grafana/11.3.0"),
        ],
        "",
    );
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", answer.body))
}

fn query_range(server: &Sextant, query: &str, window: &str, extra: &str) -> Value {
    grafana(
        server,
        &format!(
            "/loki/api/v1/query_range?query={}{window}{extra}",
            url_encode(query)
        ),
    )
}

/// Every line of a streams answer, oldest first.
fn lines(answer: &Value) -> Vec<String> {
    let mut all: Vec<(i64, String)> = answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|v| {
            (
                v[0].as_str().unwrap().parse().unwrap(),
                v[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    all.sort();
    all.into_iter().map(|(_, l)| l).collect()
}

const OTEL_LOGS: &str = r#"
import sys, logging
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
provider = LoggerProvider(resource=Resource.create({"service.name": "checkout", "k8s.namespace.name": "shop"}))
provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=sys.argv[1])))
logger = logging.getLogger("checkout")
logger.addHandler(LoggingHandler(logger_provider=provider))
logger.setLevel(logging.INFO)
logger.warning("payment retried for cart 77")
provider.shutdown()
"#;

const LOGSTASH: &str = r#"
import sys, logging, logstash
logger = logging.getLogger("orders")
logger.setLevel(logging.INFO)
logger.addHandler(logstash.TCPLogstashHandler("127.0.0.1", int(sys.argv[1]), version=1))
for i, (ms, route) in enumerate([(120, "/orders"), (750, "/orders"), (980, "/pay"), (40, "/health")]):
    extra = {"service": "orders", "uuid": "5f0c3a2e-9b1d-4c7a-8e55-%012d" % i, "duration_ms": ms, "route": route}
    if ms > 500:
        logger.error("slow order %d" % i, extra=extra)
    else:
        logger.info("order %d placed" % i, extra=extra)
"#;

#[test]
fn grafana_reads_pushed_logs_through_the_loki_api() {
    let server = Sextant::start();
    let t0 = now_s() - 600;
    // promtail's JSON: plain lines and a logfmt line with stream labels.
    let json = format!(
        r#"{{"streams": [{{"stream": {{"app": "market", "env": "prod", "job": "market/web"}},
        "values": [["{a}000000000", "GET /quotes 200 12ms"],
                   ["{b}000000000", "level=error msg=\"quote feed down\" duration=1.5s size=20KB"],
                   ["{c}000000000", "GET /quotes 500 3ms"]]}}]}}"#,
        a = t0,
        b = t0 + 1,
        c = t0 + 2
    );
    let reply = server.post_path("/loki/api/v1/push", "application/json", json.as_bytes());
    assert_eq!(reply.status, 204, "{}", reply.body);
    // Alloy's snappy protobuf.
    {
        use sextant_ingest::loki::proto;
        let request = proto::PushRequest {
            streams: vec![proto::Stream {
                labels: r#"{app="market", env="staging", job="market/web"}"#.to_owned(),
                entries: vec![proto::EntryAdapter {
                    timestamp: Some(proto::Timestamp {
                        seconds: t0 + 3,
                        nanos: 250_000_000,
                    }),
                    line: "\u{1b}[31mGET /quotes 200 7ms\u{1b}[0m".to_owned(),
                    structured_metadata: vec![],
                }],
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&prost::Message::encode_to_vec(&request))
            .unwrap();
        let reply = server.post_path("/loki/api/v1/push", "application/x-protobuf", &body);
        assert_eq!(reply.status, 204, "{}", reply.body);
    }
    let logstash = server.addr("logstash", "tcp");
    run_python(LOGSTASH, &[&logstash.port().to_string()]);
    let otlp = format!("http://{}/v1/logs", server.addr("otlp_http", "tcp"));
    run_python(OTEL_LOGS, &[&otlp]);

    let window = format!("&start={}000000000&end={}000000000", t0 - 60, now_s() + 60);
    let window = window.as_str();
    // Wait until every line is searchable (the store commits each second).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = query_range(&server, r#"{service_name=~".+"}"#, window, "&limit=100");
        if lines(&all).len() == 9 || Instant::now() > deadline {
            assert_eq!(lines(&all).len(), 9, "{all}");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // Save & test: an instant `vector(1)+vector(1)` answers one sample of 2.
    let health = grafana(
        &server,
        &format!(
            "/loki/api/v1/query?query={}&time={}000000000",
            url_encode("vector(1)+vector(1)"),
            now_s()
        ),
    );
    assert_eq!(health["status"], "success");
    assert_eq!(health["data"]["resultType"], "vector", "{health}");
    assert_eq!(health["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(health["data"]["result"][0]["value"][1], "2");

    // Explore: a stream selector, newest first, nanosecond strings.
    let market = query_range(
        &server,
        r#"{app="market", env="prod"}"#,
        window,
        "&limit=1000&direction=backward&step=1",
    );
    assert_eq!(market["data"]["resultType"], "streams");
    let stream = &market["data"]["result"][0];
    assert_eq!(stream["stream"]["service_name"], "market", "{market}");
    assert_eq!(stream["stream"]["job"], "market/web");
    assert_eq!(stream["values"][0][0], format!("{}000000000", t0 + 2));
    assert_eq!(stream["values"][0][1], "GET /quotes 500 3ms");
    assert_eq!(stream["values"].as_array().unwrap().len(), 3);
    // The limit and the direction.
    let first = query_range(
        &server,
        r#"{app="market"}"#,
        window,
        "&limit=2&direction=forward",
    );
    assert_eq!(
        lines(&first),
        [
            "GET /quotes 200 12ms",
            "level=error msg=\"quote feed down\" duration=1.5s size=20KB"
        ]
    );
    // The same under the /loki base URL Grafana may be given.
    let prefixed = grafana(
        &server,
        &format!(
            "/loki/loki/api/v1/query_range?query={}{window}",
            url_encode(r#"{app="market"}"#)
        ),
    );
    assert_eq!(lines(&prefixed).len(), 4);

    // Line filters, chained and with `or`; regex; decolorize.
    let filtered = query_range(
        &server,
        r#"{app="market"} |= "GET" != "500" |~ "quotes (200|404)""#,
        window,
        "",
    );
    assert_eq!(lines(&filtered).len(), 2, "{filtered}");
    let either = query_range(
        &server,
        r#"{app="market"} |= "feed down" or "500""#,
        window,
        "",
    );
    assert_eq!(lines(&either).len(), 2, "{either}");
    let plain = query_range(&server, r#"{env="staging"} | decolorize"#, window, "");
    assert_eq!(lines(&plain), ["GET /quotes 200 7ms"]);

    // logfmt with duration and bytes comparisons; line_format. The line's
    // `level` meets the stream label and is kept as `level_extracted`.
    let slow = query_range(
        &server,
        r#"{app="market"} | logfmt | duration > 1s and size >= 20KB | line_format "{{.level_extracted}}: {{.msg}}""#,
        window,
        "",
    );
    assert_eq!(lines(&slow), ["error: quote feed down"], "{slow}");
    // pattern.
    let statuses = query_range(
        &server,
        r#"{app="market", env="prod"} |= "GET" | pattern "<method> <path> <status> <_>" | status = "500""#,
        window,
        "",
    );
    assert_eq!(lines(&statuses), ["GET /quotes 500 3ms"]);
    assert_eq!(statuses["data"]["result"][0]["stream"]["path"], "/quotes");

    // python-logstash: the line is the event as JSON, so `| json` and
    // `|= "<request id>"` work as on JSON lines pushed to Loki.
    let by_id = query_range(
        &server,
        r#"{service_name="orders"} |= "5f0c3a2e-9b1d-4c7a-8e55-000000000001""#,
        window,
        "",
    );
    let found = lines(&by_id);
    assert_eq!(found.len(), 1, "{by_id}");
    let event: Value = serde_json::from_str(&found[0]).unwrap();
    assert_eq!(event["message"], "slow order 1");
    assert_eq!(event["duration_ms"], 750);
    let slow_orders = query_range(
        &server,
        r#"{service_name="orders"} | json | duration_ms > 500 | keep route, level"#,
        window,
        "",
    );
    assert_eq!(lines(&slow_orders).len(), 2, "{slow_orders}");
    for stream in slow_orders["data"]["result"].as_array().unwrap() {
        let labels = stream["stream"].as_object().unwrap();
        assert_eq!(labels.len(), 2, "{labels:?}");
        assert_eq!(labels["level"], "error");
    }
    // OpenTelemetry: the resource's service and namespace are stream labels.
    let otel = query_range(
        &server,
        r#"{service_name="checkout", k8s_namespace_name="shop"}"#,
        window,
        "",
    );
    assert_eq!(lines(&otel), ["payment retried for cart 77"], "{otel}");
    assert_eq!(otel["data"]["result"][0]["stream"]["level"], "warn");

    // Metric queries: the log-volume histogram Grafana draws under Explore.
    let step = 60;
    let volume = query_range(
        &server,
        r#"sum by (level, detected_level) (count_over_time({service_name="orders"} | drop __error__ [1m]))"#,
        window,
        &format!("&step={step}"),
    );
    assert_eq!(volume["data"]["resultType"], "matrix", "{volume}");
    let mut per_level: Vec<(String, f64)> = volume["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let total: f64 = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v[1].as_str().unwrap().parse::<f64>().unwrap())
                .sum();
            (s["metric"]["level"].as_str().unwrap().to_owned(), total)
        })
        .collect();
    per_level.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        per_level,
        [("error".to_owned(), 2.0), ("info".to_owned(), 2.0)],
        "{volume}"
    );
    // Unwrapped values, by a label of the pipeline, at one time.
    let at = now_s();
    let worst = grafana(
        &server,
        &format!(
            "/loki/api/v1/query?query={}&time={at}",
            url_encode(
                r#"max_over_time({service_name="orders"} | json | unwrap duration_ms [1h]) by (route)"#
            )
        ),
    );
    let mut routes: Vec<(String, String)> = worst["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["route"].as_str().unwrap().to_owned(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("/health".to_owned(), "40".to_owned()),
            ("/orders".to_owned(), "750".to_owned()),
            ("/pay".to_owned(), "980".to_owned())
        ],
        "{worst}"
    );
    // Binary operators between metric queries, with a comparison.
    let ratio = grafana(
        &server,
        &format!(
            "/loki/api/v1/query?query={}&time={at}",
            url_encode(
                r#"sum(count_over_time({service_name="orders", level="error"}[1h])) / sum(count_over_time({service_name="orders"}[1h])) > bool 0.4"#
            )
        ),
    );
    assert_eq!(ratio["data"]["result"][0]["value"][1], "1", "{ratio}");
    // An error the pipeline left is refused, naming the way out.
    let refused = request(
        "GET",
        &format!(
            "{}/loki/api/v1/query?query={}&time={at}",
            server.base_url(),
            url_encode(r#"sum(count_over_time({app="market"} | json [1h]))"#)
        ),
        &[],
        "",
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("JSONParserErr"), "{}", refused.body);

    // The label browser.
    let span = format!("start={}000000000&end={}000000000", t0 - 60, now_s() + 60);
    let labels = grafana(&server, &format!("/loki/api/v1/labels?{span}"));
    for name in [
        "service_name",
        "level",
        "app",
        "env",
        "job",
        "k8s_namespace_name",
    ] {
        assert!(
            labels["data"].as_array().unwrap().iter().any(|l| l == name),
            "{name}: {labels}"
        );
    }
    let services = grafana(
        &server,
        &format!("/loki/api/v1/label/service_name/values?{span}"),
    );
    assert_eq!(
        services["data"],
        serde_json::json!(["checkout", "market", "orders"])
    );
    let envs = grafana(
        &server,
        &format!(
            "/loki/api/v1/label/env/values?{span}&query={}",
            url_encode(r#"{app="market"}"#)
        ),
    );
    assert_eq!(envs["data"], serde_json::json!(["prod", "staging"]));
    let series = grafana(
        &server,
        &format!(
            "/loki/api/v1/series?{span}&match[]={}",
            url_encode(r#"{app="market"}"#)
        ),
    );
    let mut series_envs: Vec<&str> = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["env"].as_str().unwrap())
        .collect();
    series_envs.sort();
    series_envs.dedup();
    assert_eq!(series_envs, ["prod", "staging"], "{series}");

    // Index statistics and volumes (Logs Drilldown).
    let stats = grafana(
        &server,
        &format!(
            "/loki/api/v1/index/stats?{span}&query={}",
            url_encode(r#"{app="market"}"#)
        ),
    );
    assert_eq!(stats["entries"], 4, "{stats}");
    assert!(stats["bytes"].as_u64().unwrap() > 40);
    let volumes = grafana(
        &server,
        &format!(
            "/loki/api/v1/index/volume?{span}&query={}",
            url_encode(r#"{service_name=~".+"}"#)
        ),
    );
    let named: Vec<&str> = volumes["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["service_name"].as_str().unwrap())
        .collect();
    assert_eq!(named.len(), 3, "{volumes}");
    let ranged = grafana(
        &server,
        &format!(
            "/loki/api/v1/index/volume_range?{span}&step=60&query={}",
            url_encode(r#"{service_name="orders"}"#)
        ),
    );
    assert_eq!(ranged["data"]["resultType"], "matrix");
    assert_eq!(
        ranged["data"]["result"][0]["metric"]["service_name"],
        "orders"
    );
    let fields = grafana(
        &server,
        &format!(
            "/loki/api/v1/detected_fields?{span}&query={}",
            url_encode(r#"{service_name="orders"}"#)
        ),
    );
    let duration = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == "duration_ms")
        .unwrap_or_else(|| panic!("{fields}"));
    assert_eq!(duration["type"], "int");
    assert_eq!(duration["cardinality"], 4);
    assert_eq!(duration["parsers"], serde_json::json!(["json"]));
    let values = grafana(
        &server,
        &format!(
            "/loki/api/v1/detected_field/route/values?{span}&query={}",
            url_encode(r#"{service_name="orders"}"#)
        ),
    );
    assert_eq!(
        values["values"],
        serde_json::json!(["/health", "/orders", "/pay"])
    );
    let detected = grafana(
        &server,
        &format!(
            "/loki/api/v1/detected_labels?{span}&query={}",
            url_encode(r#"{app="market"}"#)
        ),
    );
    let env = detected["detectedLabels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["label"] == "env")
        .unwrap_or_else(|| panic!("{detected}"));
    assert_eq!(env["cardinality"], 2);
    let patterns = grafana(
        &server,
        &format!(
            "/loki/api/v1/patterns?{span}&query={}",
            url_encode(r#"{app="market"}"#)
        ),
    );
    let shapes: Vec<&str> = patterns["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pattern"].as_str().unwrap())
        .collect();
    assert!(shapes.contains(&"GET /quotes <_>"), "{patterns}");
}

#[test]
fn bad_logql_gets_loki_errors_naming_what_is_wrong() {
    let server = Sextant::start();
    let ask = |path: &str, query: &str| {
        request(
            "GET",
            &format!(
                "{}/loki/api/v1/{path}?query={}",
                server.base_url(),
                url_encode(query)
            ),
            &[],
            "",
        )
    };
    let cases = [
        ("query_range", r#"{app="x""#, "parse error"),
        ("query_range", r#"{app=~".*"}"#, "at least one"),
        ("query_range", r#"{app="x"} |~ "(""#, "regex"),
        ("query_range", r#"sum_over_time({app="x"}[5m])"#, "unwrap"),
        ("query_range", r#"rate({app="x"}[5x])"#, "parse error"),
        (
            "query",
            r#"{app="x"}"#,
            "log queries are not supported as an instant query type",
        ),
        ("query_range", "", "query"),
        ("labels", r#"{app="x"} |"#, "parse error"),
    ];
    for (path, query, expected) in cases {
        let answer = ask(path, query);
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert!(
            answer
                .body
                .to_lowercase()
                .contains(&expected.to_lowercase()),
            "{query}: {}",
            answer.body
        );
    }
    let deep = format!("{}vector(1){}", "(".repeat(5_000), ")".repeat(5_000));
    let answer = ask("query", &deep);
    assert_eq!(
        answer.status,
        400,
        "{}",
        &answer.body[..answer.body.len().min(300)]
    );
    assert!(
        answer.body.contains("query.max_depth"),
        "{}",
        &answer.body[..300.min(answer.body.len())]
    );
    let bad_time = request(
        "GET",
        &format!(
            "{}/loki/api/v1/query_range?query={}&start=yesterday",
            server.base_url(),
            url_encode(r#"{app="x"}"#)
        ),
        &[],
        "",
    );
    assert_eq!(bad_time.status, 400);
    assert!(bad_time.body.contains("invalid start"), "{}", bad_time.body);
    // The server is still there.
    assert_eq!(server.get("/-/healthy").status, 200);
}

const TAIL: &str = r#"
import asyncio, json, sys, urllib.parse, websockets
async def main():
    url = sys.argv[1] + "/loki/api/v1/tail?" + urllib.parse.urlencode({"query": sys.argv[2], "limit": "10", "start": sys.argv[3]})
    seen = []
    async with websockets.connect(url) as ws:
        print("connected", flush=True)
        while len(seen) < int(sys.argv[4]):
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert "dropped_entries" in message, message
            for stream in message["streams"]:
                for ts, line in stream["values"]:
                    seen.append(line)
                    print(json.dumps({"labels": stream["stream"], "ts": ts, "line": line}), flush=True)
asyncio.run(main())
"#;

#[test]
fn a_websocket_client_tails_new_lines() {
    let server = Sextant::start();
    let t0 = now_s();
    let push = |line: &str, t: i64| {
        let body = format!(
            r#"{{"streams": [{{"stream": {{"app": "tailme"}}, "values": [["{t}000000000", "{line}"]]}}]}}"#
        );
        let reply = server.post_path("/loki/api/v1/push", "application/json", body.as_bytes());
        assert_eq!(reply.status, 204, "{}", reply.body);
    };
    push("before the tail", t0 - 5);
    push("not this one: other", t0 - 4);
    std::thread::sleep(Duration::from_millis(1500));
    let ws = server.base_url().replace("http://", "ws://");
    let mut child = std::process::Command::new(sextant_tests::python())
        .args([
            "-c",
            TAIL,
            &ws,
            r#"{app="tailme"} != "other""#,
            &format!("{}000000000", t0 - 60),
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    push("during the tail", now_s());
    push("other during the tail", now_s());
    push("and after", now_s());
    let deadline = Instant::now() + Duration::from_secs(40);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = lines.iter().map(|l| l["line"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        ["before the tail", "during the tail", "and after"],
        "{stdout}"
    );
    assert_eq!(lines[1]["labels"]["app"], "tailme");
    assert!(lines[1]["ts"].as_str().unwrap().len() >= 19);
}

/// A rules file as Loki's ruler takes it, unchanged.
const LOKI_RULES: &str = r#"
groups:
  - name: orders-logs
    interval: 1s
    rules:
      - alert: OrdersFailing
        expr: sum by (service_name) (count_over_time({service_name="orders"} |= "failed" [5m])) > 1
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service_name }} logged {{ $value }} failures"
      - record: service:log_lines:rate5m
        expr: sum by (service_name) (rate({service_name=~".+"}[5m]))
"#;

#[test]
fn a_loki_rules_file_alerts_and_records_from_logs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("loki-rules.yml"), LOKI_RULES).unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, "rule_files: [loki-rules.yml]\n").unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let t = now_s();
    let body = format!(
        r#"{{"streams": [{{"stream": {{"service": "orders"}}, "values": [["{t}000000000", "payment failed"], ["{t}100000000", "payment failed again"], ["{t}200000000", "order placed"]]}}]}}"#
    );
    let reply = server.post_path("/loki/api/v1/push", "application/json", body.as_bytes());
    assert_eq!(reply.status, 204, "{}", reply.body);
    let alerts = server.get_until("/api/v1/alerts", |v: &Value| {
        v["data"]["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["state"] == "firing"))
    });
    let alert = &alerts["data"]["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "OrdersFailing");
    assert_eq!(alert["labels"]["service_name"], "orders");
    assert_eq!(alert["annotations"]["summary"], "orders logged 2 failures");
    // The recording rule's series is queryable with PromQL.
    // 3 lines in 5 minutes.
    let recorded = server.wait_for_query("service:log_lines:rate5m", |r: &Value| {
        r.as_array().is_some_and(|r| !r.is_empty())
    });
    assert_eq!(
        recorded[0]["metric"]["service_name"], "orders",
        "{recorded}"
    );
    assert_eq!(recorded[0]["value"][1], "0.01", "{recorded}");
    // A broken LogQL rule is refused by name at check-config.
    std::fs::write(
        dir.path().join("bad.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(count_over_time({app=\"x\"} |= [5m]))\n",
    )
    .unwrap();
    let bad_config = dir.path().join("bad.yaml");
    std::fs::write(&bad_config, "rule_files: [bad.yml]\n").unwrap();
    let out = sextant_tests::run_sextant(&["check-config", bad_config.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("invalid LogQL expression"), "{text}");
}
