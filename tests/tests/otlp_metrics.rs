//! OTLP metrics as OpenTelemetry SDKs send them: a Python `opentelemetry-sdk`
//! MeterProvider exporting over gRPC and HTTP (cumulative and delta, gzip),
//! read back through PromQL under the names Prometheus's OTLP receiver gives;
//! OTLP/JSON and bad bodies posted directly.

use serde_json::{Value, json};
use sextant_tests::{Sextant, run_python};

const SDK: &str = r#"
import sys
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider, Counter, Histogram
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader, AggregationTemporality
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http
from opentelemetry.exporter.otlp.proto.http import Compression as HttpGzip
from grpc import Compression as GrpcGzip

transport, endpoint, service, temporality = sys.argv[1:5]
preferred = {} if temporality == 'cumulative' else {
    Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
if transport == 'grpc':
    exporter = Grpc(endpoint=endpoint, insecure=True, preferred_temporality=preferred,
                    compression=GrpcGzip.Gzip, timeout=10)
else:
    exporter = Http(endpoint=endpoint + '/v1/metrics', preferred_temporality=preferred,
                    compression=HttpGzip.Gzip, timeout=10)
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3600000)
resource = Resource.create({'service.name': service, 'service.instance.id': 'pod-1',
                            'deployment.environment': 'test'})
provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = provider.get_meter('simplebank.orders', '1.0')
orders = meter.create_counter('orders.placed', unit='{order}', description='Orders placed.')
latency = meter.create_histogram('order.latency', unit='ms', description='Order latency.')
queue = meter.create_up_down_counter('queue.depth')
meter.create_observable_gauge('cpu.utilization', unit='1',
    callbacks=[lambda options: [Observation(0.25, {'cpu': '0'})]])
orders.add(5, {'market': 'lse'})
orders.add(2, {'market': 'lse'})
for ms in (12, 30, 250):
    latency.record(ms, {'route': '/orders'})
queue.add(10)
queue.add(-3)
first = reader.force_flush(timeout_millis=10000)
# Inside a sampled span, the SDK keeps the measurement as an exemplar.
from opentelemetry.sdk.trace import TracerProvider
with TracerProvider().get_tracer('simplebank').start_as_current_span('place order') as span:
    orders.add(3, {'market': 'lse'})
    latency.record(900, {'route': '/orders'})
    trace_id = format(span.get_span_context().trace_id, '032x')
second = reader.force_flush(timeout_millis=10000)
provider.shutdown()
print(first, second, trace_id)
"#;

fn value(result: &Value) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

fn one_equal(expected: f64) -> impl Fn(&Value) -> bool {
    move |r| r.as_array().is_some_and(|a| a.len() == 1) && value(r) == expected
}

fn export_and_check(transport: &str, temporality: &str) {
    let server = Sextant::start();
    let endpoint = match transport {
        "grpc" => format!("http://{}", server.addr("otlp_grpc", "tcp")),
        _ => format!("http://{}", server.addr("otlp_http", "tcp")),
    };
    let service = format!("orders-{transport}-{temporality}");
    let out = run_python(SDK, &[transport, &endpoint, &service, temporality]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words[..2],
        ["True", "True"],
        "the SDK's exports must succeed"
    );
    let trace_id = words[2];

    let job = format!("job=\"{service}\",instance=\"pod-1\"");
    let orders = server.wait_for_query(
        &format!("orders_placed_total{{{job},market=\"lse\"}}"),
        one_equal(10.0),
    );
    assert_eq!(
        orders[0]["metric"].as_object().unwrap().len(),
        4,
        "{orders}"
    );
    server.wait_for_query(
        &format!("order_latency_milliseconds_count{{{job}}}"),
        one_equal(4.0),
    );
    server.wait_for_query(
        &format!("order_latency_milliseconds_sum{{{job}}}"),
        one_equal(1192.0),
    );
    for (le, count) in [
        ("10", 0.0),
        ("25", 1.0),
        ("100", 2.0),
        ("250", 3.0),
        ("1000", 4.0),
        ("+Inf", 4.0),
    ] {
        server.wait_for_query(
            &format!("order_latency_milliseconds_bucket{{{job},route=\"/orders\",le=\"{le}\"}}"),
            one_equal(count),
        );
    }
    // The measurement taken in a span is the exemplar of its bucket.
    let exemplars = server.get_until(
        &format!(
            "/api/v1/query_exemplars?query={}",
            sextant_tests::url_encode(&format!("order_latency_milliseconds_bucket{{{job}}}"))
        ),
        |v: &Value| v["data"].as_array().is_some_and(|d| !d.is_empty()),
    );
    let with_trace: Vec<(&str, &Value)> = exemplars["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["exemplars"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["labels"]["trace_id"] == trace_id)
                .map(move |e| (s["seriesLabels"]["le"].as_str().unwrap(), e))
        })
        .collect();
    assert_eq!(with_trace.len(), 1, "{exemplars}");
    assert_eq!(with_trace[0].0, "1000", "{exemplars}");
    assert_eq!(with_trace[0].1["value"], "900");
    assert_eq!(
        with_trace[0].1["labels"]["span_id"].as_str().map(str::len),
        Some(16)
    );
    server.wait_for_query(&format!("queue_depth{{{job}}}"), one_equal(7.0));
    server.wait_for_query(
        &format!("cpu_utilization_ratio{{{job},cpu=\"0\"}}"),
        one_equal(0.25),
    );
    server.wait_for_query(
        &format!(
            "target_info{{{job},deployment_environment=\"test\",telemetry_sdk_language=\"python\"}}"
        ),
        one_equal(1.0),
    );
    let metadata = server.get("/api/v1/metadata").json();
    assert_eq!(
        metadata["data"]["orders_placed_total"][0]["type"],
        "counter"
    );
    assert_eq!(
        metadata["data"]["order_latency_milliseconds"][0]["type"],
        "histogram"
    );
    assert_eq!(
        metadata["data"]["order_latency_milliseconds"][0]["help"],
        "Order latency."
    );
}

#[test]
fn the_python_sdk_exports_cumulative_metrics_over_grpc() {
    export_and_check("grpc", "cumulative");
}

#[test]
fn the_python_sdk_exports_delta_metrics_over_http() {
    export_and_check("http", "delta");
}

#[test]
fn otlp_json_and_bad_bodies_get_clear_answers() {
    let server = Sextant::start();
    let url = format!("http://{}/v1/metrics", server.addr("otlp_http", "tcp"));
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gateway"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "http.requests", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
              "dataPoints": [{"asInt": "42", "timeUnixNano": "0",
                "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}]}]}},
            {"name": "latency", "exponentialHistogram": {"dataPoints": [{"timeUnixNano": "0"}, {}]}},
            {"name": "json.latency", "exponentialHistogram": {"aggregationTemporality": 2,
              "dataPoints": [{"timeUnixNano": "0", "count": "3", "sum": 1.5, "scale": 1,
                "zeroCount": "1", "positive": {"offset": 0, "bucketCounts": ["1", "1"]}}]}}
        ]}]
    }]});
    let reply = server.post(&url, "application/json", body.to_string().as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["partialSuccess"]["rejectedDataPoints"], "2");
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("latency: unknown aggregation temporality 0"),
        "{answer}"
    );
    // An exponential histogram in OTLP/JSON is a native histogram.
    let series = server.get("/api/v1/series?match[]=json_latency");
    assert_eq!(
        series.json()["data"],
        json!([{"__name__": "json_latency", "job": "gateway"}]),
        "{}",
        series.body
    );
    // The valid rest of the request was kept.
    server.wait_for_query(
        "http_requests_total{job=\"gateway\",http_status_code=\"200\"}",
        one_equal(42.0),
    );

    let bad_json = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"asDouble":"lots"}]}}]}]}]}"#;
    let reply = server.post(&url, "application/json", bad_json);
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["message"],
        "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asDouble: expected a number, found \"lots\""
    );
    let reply = server.post(&url, "application/x-protobuf", b"\xff\xff\xff");
    assert_eq!(reply.status, 400);
    let reply = server.post(&url, "text/plain", b"hello");
    assert_eq!(reply.status, 415);
    assert!(
        server
            .metric(
                "sextant_listener_errors_total",
                &[("listener", "otlp_http"), ("transport", "tcp")]
            )
            .unwrap()
            >= 3.0
    );
}

/// An exemplar acknowledged with its point is there after a SIGKILL, and
/// one that arrives again is kept once.
#[test]
fn acknowledged_exemplars_survive_kill_9() {
    let server = Sextant::start();
    let url = format!("http://{}/v1/metrics", server.addr("otlp_http", "tcp"));
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gateway"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "http.requests", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
              "dataPoints": [{"asInt": "42", "timeUnixNano": now_ns, "exemplars": [{
                "asInt": "1", "timeUnixNano": now_ns,
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "filteredAttributes": [{"key": "user.id", "value": {"stringValue": "u-7"}}]}]}]}}
        ]}]
    }]});
    for _ in 0..2 {
        let reply = server.post(&url, "application/json", body.to_string().as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let expected = json!([{
        "seriesLabels": {"__name__": "http_requests_total", "job": "gateway"},
        "exemplars": [{
            "labels": {"span_id": "eee19b7ec3c1b174", "trace_id": "5b8efff798038103d269b633813fc60c", "user_id": "u-7"},
            "value": "1",
            "timestamp": (now_ns.parse::<u128>().unwrap() / 1_000_000) as f64 / 1000.0,
        }]
    }]);
    let path = "/api/v1/query_exemplars?query=http_requests_total";
    assert_eq!(server.get(path).json()["data"], expected);
    let kept = server.kill_hard();
    let server = Sextant::restart_on(&kept);
    assert_eq!(server.get(path).json()["data"], expected);
}
