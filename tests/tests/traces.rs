//! Traces as the book's services send them: the Python OpenTelemetry SDK
//! exporting over OTLP gRPC and HTTP, the profile service calling the
//! settings service with the trace context passed in HTTP headers, a
//! request uuid on every span and in python-logstash log lines; read back
//! through the Jaeger query API, span metrics and the service graph in
//! PromQL (the queries Grafana's Tempo data source sends) and the
//! correlation view.

use sextant_tests::{Sextant, run_python, url_encode};

const PROFILE_AND_SETTINGS: &str = r#"
import sys, uuid, logging, logstash
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.propagate import inject, extract
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

transport, endpoint, logstash_port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def provider(service):
    exporter = Grpc(endpoint=endpoint, insecure=True) if transport == "grpc" else Http(endpoint=endpoint + "/v1/traces")
    p = TracerProvider(resource=Resource.create({"service.name": service + "-" + transport, "host.name": "pod-3"}))
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p

profile, settings = provider("profile"), provider("settings")
request_id = str(uuid.uuid4())
log = logging.getLogger("simplebank-" + transport)
log.setLevel(logging.INFO)
handler = logstash.TCPLogstashHandler("127.0.0.1", logstash_port, version=1)
log.addHandler(handler)

tracer = profile.get_tracer("profile")
with tracer.start_as_current_span("GET /profile", kind=SpanKind.SERVER,
        attributes={"uuid": request_id, "http.status_code": 200}) as root:
    log.info("profile requested", extra={"uuid": request_id, "service": "profile-" + transport})
    with tracer.start_as_current_span("lookup ip", kind=SpanKind.CLIENT, attributes={"uuid": request_id}):
        pass
    # The call to the settings service: the context travels in the headers.
    headers = {}
    inject(headers)
    assert "traceparent" in headers
    with settings.get_tracer("settings").start_as_current_span("get settings", context=extract(headers),
            kind=SpanKind.SERVER, attributes={"uuid": request_id}) as span:
        span.add_event("cache miss", {"key": "prefs"})
        span.set_status(Status(StatusCode.ERROR, "settings store unavailable"))
        log.warning("settings store unavailable", extra={"uuid": request_id, "service": "settings-" + transport})
    trace_id = format(root.get_span_context().trace_id, "032x")
profile.shutdown()
settings.shutdown()
handler.close()
print(trace_id, request_id)
"#;

#[test]
fn the_books_profile_and_settings_trace_through_jaeger_metrics_and_correlation() {
    let server = Sextant::start();
    let logstash_port = server.addr("logstash", "tcp").port().to_string();
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
        let out = run_python(
            PROFILE_AND_SETTINGS,
            &[transport, &endpoint, &logstash_port],
        );
        let mut words = out.split_whitespace();
        let (trace_id, request_id) = (words.next().unwrap(), words.next().unwrap());
        let (profile, settings) = (
            format!("profile-{transport}"),
            format!("settings-{transport}"),
        );

        // Services and operations, in both of Jaeger's forms.
        server.get_until("/jaeger/api/services", |j| {
            j["data"].as_array().is_some_and(|s| {
                s.contains(&profile.as_str().into()) && s.contains(&settings.as_str().into())
            })
        });
        let operations = server
            .get(&format!("/jaeger/api/services/{profile}/operations"))
            .json();
        assert_eq!(
            operations["data"],
            serde_json::json!(["GET /profile", "lookup ip"])
        );
        let client = server
            .get(&format!(
                "/jaeger/api/operations?service={profile}&spanKind=client"
            ))
            .json();
        assert_eq!(
            client["data"],
            serde_json::json!([{"name": "lookup ip", "spanKind": "client"}])
        );

        // The trace by its request uuid (a tag), with its three spans.
        let tags = url_encode(&format!("{{\"uuid\":\"{request_id}\"}}"));
        let found = server.get_until(
            &format!("/jaeger/api/traces?service={settings}&tags={tags}&limit=20&lookback=1h"),
            |j| {
                j["data"]
                    .as_array()
                    .is_some_and(|d| d.len() == 1 && d[0]["spans"].as_array().unwrap().len() == 3)
            },
        );
        let trace = &found["data"][0];
        assert_eq!(trace["traceID"], trace_id);
        let spans = trace["spans"].as_array().unwrap();
        let by_name = |name: &str| spans.iter().find(|s| s["operationName"] == name).unwrap();
        let root = by_name("GET /profile");
        assert_eq!(root["references"], serde_json::json!([]));
        let child = by_name("get settings");
        assert_eq!(child["references"][0]["refType"], "CHILD_OF");
        assert_eq!(
            child["references"][0]["spanID"], root["spanID"],
            "parent from the headers"
        );
        assert_eq!(
            trace["processes"][child["processID"].as_str().unwrap()]["serviceName"],
            settings.as_str()
        );
        let tags = child["tags"].as_array().unwrap();
        assert!(
            tags.contains(&serde_json::json!({"key": "error", "type": "bool", "value": true})),
            "{child}"
        );
        assert_eq!(child["logs"][0]["fields"][0]["value"], "cache miss");
        assert!(root["duration"].as_i64().unwrap() >= child["duration"].as_i64().unwrap());

        // Other searches: repeated tag=, an operation, a duration bound, none.
        let by_tag = server
            .get(&format!(
                "/jaeger/api/traces?service={profile}&tag=http.status_code:200"
            ))
            .json();
        assert!(
            by_tag["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["traceID"] == trace_id)
        );
        let by_operation = server
            .get(&format!(
                "/jaeger/api/traces?service={profile}&operation={}",
                url_encode("lookup ip")
            ))
            .json();
        assert_eq!(by_operation["data"].as_array().unwrap().len(), 1);
        let too_slow = server
            .get(&format!(
                "/jaeger/api/traces?service={profile}&minDuration=1h"
            ))
            .json();
        assert_eq!(too_slow["data"], serde_json::json!([]));
        let bad = server.get(&format!(
            "/jaeger/api/traces?service={profile}&minDuration=fast"
        ));
        assert_eq!(bad.status, 400);
        assert!(
            bad.json()["errors"][0]["msg"]
                .as_str()
                .unwrap()
                .contains("minDuration")
        );

        // By id; an unknown id is a 404.
        let by_id = server.get(&format!("/jaeger/api/traces/{trace_id}")).json();
        assert_eq!(by_id["data"][0]["spans"].as_array().unwrap().len(), 3);
        assert_eq!(
            server
                .get("/jaeger/api/traces/0123456789abcdef0123456789abcdef")
                .status,
            404
        );

        // The dependency edge, and the span metrics through PromQL.
        let deps = server
            .get("/jaeger/api/dependencies?lookback=3600000")
            .json();
        assert!(
            deps["data"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!({
                    "parent": profile, "child": settings, "callCount": 1
                })),
            "{deps}"
        );
        server.wait_for_query(
            &format!("traces_spanmetrics_calls_total{{service=\"{settings}\",span_name=\"get settings\",status_code=\"STATUS_CODE_ERROR\",span_kind=\"SPAN_KIND_SERVER\"}}"),
            |r| r.as_array().is_some_and(|r| r.len() == 1 && r[0]["value"][1] == "1"),
        );
        server.wait_for_query(
            &format!("sum(traces_spanmetrics_latency_count{{service=\"{profile}\"}})"),
            |r| {
                r.as_array()
                    .is_some_and(|r| r.len() == 1 && r[0]["value"][1] == "2")
            },
        );
        let edge = format!("client=\"{profile}\",server=\"{settings}\"");
        for (name, count) in [
            ("traces_service_graph_request_total", "1"),
            ("traces_service_graph_request_failed_total", "1"),
            ("traces_service_graph_request_server_seconds_count", "1"),
            ("traces_service_graph_request_client_seconds_count", "1"),
        ] {
            server.wait_for_query(&format!("{name}{{{edge}}}"), |r| {
                r.as_array()
                    .is_some_and(|r| r.len() == 1 && r[0]["value"][1] == count)
            });
        }
        grafana_service_graph_and_span_table(&server, &profile, &settings);
        // The latency buckets carry the trace as an exemplar, so a graph of
        // them links to it (Grafana's "exemplars" toggle).
        let exemplars = server.get_until(
            &format!(
                "/api/v1/query_exemplars?query={}",
                url_encode(&format!(
                    "traces_spanmetrics_latency_bucket{{service=\"{profile}\",span_name=\"GET /profile\"}}"
                ))
            ),
            |j| j["data"].as_array().is_some_and(|d| !d.is_empty()),
        );
        let linked: Vec<&str> = exemplars["data"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["exemplars"].as_array().unwrap())
            .map(|e| e["labels"]["trace_id"].as_str().unwrap())
            .collect();
        assert_eq!(linked, [trace_id], "{exemplars}");

        // The correlation view: the uuid finds both log lines and all three
        // spans, on one timeline in time order, grouped by service.
        let view = server.get_until(&format!("/api/v1/correlate/{request_id}"), |j| {
            j["logs"].as_array().is_some_and(|l| l.len() == 2)
                && j["spans"].as_array().is_some_and(|s| s.len() == 3)
        });
        assert_eq!(view["id"], request_id);
        let timeline = view["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), 5);
        let times: Vec<&str> = timeline
            .iter()
            .map(|e| e["timestamp"].as_str().unwrap())
            .collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "time order");
        assert_eq!(timeline.iter().filter(|e| e["kind"] == "log").count(), 2);
        let services: Vec<&str> = view["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(services, [profile.as_str(), settings.as_str()]);
        assert_eq!(view["traces"][0]["trace_id"], trace_id);
        let tree = &view["traces"][0]["tree"];
        assert_eq!(tree[0]["operation"], "GET /profile");
        assert_eq!(tree[0]["children"].as_array().unwrap().len(), 2);
        // The trace id correlates too (the spans, by trace id).
        let by_trace = server.get(&format!("/api/v1/correlate/{trace_id}")).json();
        assert_eq!(by_trace["spans"].as_array().unwrap().len(), 3);
    }
}

/// Runs the PromQL that Grafana's Tempo data source sends to its linked
/// Prometheus data source for the Service Graph and the table of span names
/// beside it, as `public/app/plugins/datasource/tempo/datasource.ts` builds
/// them (`makePromServiceMapRequest`: `sum by (client, server) (rate(<m>[$__range]))`
/// and `group by (client, connection_type, server) (<m>)` for each metric of
/// `serviceMapMetrics` in `graphTransform.ts`; `rateQuery` and
/// `errorAndDurationQuery`: `rateMetric`, `errorRateMetric` and
/// `durationMetric` through `buildExpr`), with `$__range` at 1h, and checks
/// the profile -> settings call and the `user` -> profile request.
fn grafana_service_graph_and_span_table(server: &Sextant, profile: &str, settings: &str) {
    let pair = |s: &serde_json::Value, from: &str, to: &str| {
        s["metric"]["client"] == from && s["metric"]["server"] == to
    };
    let rate_of = |r: &serde_json::Value, from: &str, to: &str| -> Option<f64> {
        r.as_array()?
            .iter()
            .find(|s| pair(s, from, to))
            .and_then(|s| s["value"][1].as_str()?.parse().ok())
    };
    // graphTransform.ts: secondsMetric, totalsMetric, failedMetric, histogramMetric.
    for metric in [
        "traces_service_graph_request_server_seconds_sum",
        "traces_service_graph_request_total",
        "traces_service_graph_request_failed_total",
        "traces_service_graph_request_server_seconds_bucket",
    ] {
        // The counters start from a 0 written before their first value, so
        // a call made once has a rate.
        server.wait_for_query(
            &format!("sum by (client, server) (rate({metric}[1h]))"),
            |r| {
                rate_of(r, profile, settings).is_some_and(|v| v > 0.0)
                    && rate_of(r, "user", profile).is_some_and(|v| {
                        if metric == "traces_service_graph_request_failed_total" {
                            v == 0.0
                        } else {
                            v > 0.0
                        }
                    })
            },
        );
        let labels = server.wait_for_query(
            &format!("group by (client, connection_type, server) ({metric})"),
            |r| rate_of(r, profile, settings).is_some() && rate_of(r, "user", profile).is_some(),
        );
        let labels = labels.as_array().unwrap();
        let direct = labels.iter().find(|s| pair(s, profile, settings)).unwrap();
        assert_eq!(
            direct["metric"],
            serde_json::json!({"client": profile, "server": settings}),
            "a direct call has no connection_type"
        );
        let user = labels.iter().find(|s| pair(s, "user", profile)).unwrap();
        assert_eq!(user["metric"]["connection_type"], "virtual_node");
    }
    // The request histogram link of a node and an edge.
    let p90 = server.wait_for_query(
        &format!("histogram_quantile(0.9, sum(rate(traces_service_graph_request_server_seconds_bucket{{client=\"{profile}\",server=\"{settings}\"}}[1h])) by (le, client, server))"),
        |r| r.as_array().is_some_and(|r| r.len() == 1),
    );
    let p90: f64 = p90[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(p90 > 0.0 && p90 <= 0.1, "{p90}");

    // The span table: the top server span names, then their error rate and
    // 90th percentile duration.
    let names = server.wait_for_query(
        r#"topk(5, sum(rate(traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER"}[1h])) by (span_name))"#,
        |r| r.as_array().is_some_and(|r| r.len() == 2),
    );
    let mut names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["span_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["GET /profile", "get settings"]);
    let errors = server.wait_for_query(
        r#"topk(5, sum(rate(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR",span_name=~"GET /profile|get settings"}[1h])) by (span_name))"#,
        |r| r.as_array().is_some_and(|r| r.len() == 1),
    );
    assert_eq!(errors[0]["metric"]["span_name"], "get settings");
    for name in names {
        let p90 = server.wait_for_query(
            &format!(r#"histogram_quantile(.9, sum(rate(traces_spanmetrics_latency_bucket{{span_name=~"{name}"}}[1h])) by (le))"#),
            |r| r.as_array().is_some_and(|r| r.len() == 1),
        );
        let p90: f64 = p90[0]["value"][1].as_str().unwrap().parse().unwrap();
        assert!(p90 > 0.0 && p90 <= 16.384, "{name}: {p90}");
    }
    // The query editor's check that service graph metrics exist
    // (ServiceGraphSection.tsx: getTagKeys with this __name__ filter).
    let keys = server
        .get(&format!(
            "/api/v1/labels?match[]={}",
            url_encode(r#"{__name__=~"traces_service_graph_request_server_seconds_sum|traces_service_graph_request_total|traces_service_graph_request_failed_total"}"#)
        ))
        .json();
    for key in ["client", "server", "connection_type"] {
        assert!(
            keys["data"].as_array().unwrap().contains(&key.into()),
            "{keys}"
        );
    }
}

#[test]
fn bad_spans_are_refused_by_name_and_the_rest_kept() {
    let server = Sextant::start();
    let url = format!("http://{}/v1/traces", server.addr("otlp_http", "tcp"));
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},
      "scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"place order","kind":"SPAN_KIND_SERVER",
         "startTimeUnixNano":"1795824000000000000","endTimeUnixNano":"1795824000250000000"},
        {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"no trace"}]}]}]}"#;
    let reply = server.post(&url, "application/json", body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("\"no trace\"")
    );
    let trace = server.get_until("/jaeger/api/traces/5b8efff798038103d269b633813fc60c", |j| {
        j["data"].is_array()
    });
    assert_eq!(trace["data"][0]["spans"][0]["duration"], 250_000);
    let bad = server.post(
        &url,
        "application/json",
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"zz"}]}]}]}"#,
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["message"]
            .as_str()
            .unwrap()
            .contains("spans[0].spanId"),
        "{}",
        bad.body
    );
    let not_protobuf = server.post(&url, "application/x-protobuf", b"\xff\xff\xff");
    assert_eq!(not_protobuf.status, 400);
}

#[test]
fn acknowledged_spans_survive_kill_9() {
    let server = Sextant::start();
    let url = format!("http://{}/v1/traces", server.addr("otlp_http", "tcp"));
    let spans: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"traceId":"00000000000000000000000000000a{i:02x}","spanId":"10000000000000{i:02x}","name":"settle payment","startTimeUnixNano":"1795824000000000000","endTimeUnixNano":"1795824000100000000"}}"#
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"payments"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let reply = server.post(&url, "application/json", body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Killed at once: the index may not have committed, the WAL has it.
    let kept = server.kill_hard();
    let server = Sextant::restart_on(&kept);
    for i in [0, 17, 39] {
        let trace = server
            .get(&format!(
                "/jaeger/api/traces/00000000000000000000000000000a{i:02x}"
            ))
            .json();
        assert_eq!(
            trace["data"][0]["spans"][0]["operationName"], "settle payment",
            "{trace}"
        );
    }
    let services = server.get("/jaeger/api/services").json();
    assert_eq!(services["data"], serde_json::json!(["payments"]));
}
