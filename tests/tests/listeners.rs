//! Listeners whose protocol has not landed yet, reached by the real client
//! libraries users run today, must say so honestly: count what arrived as
//! dropped, answer HTTP 501 or gRPC UNIMPLEMENTED, never 200.

use sextant_tests::{Sextant, run_python};

fn dropped(server: &Sextant, listener: &str, transport: &str, at_least: f64) -> f64 {
    server.wait_for_metric(
        "sextant_listener_dropped_total",
        &[("listener", listener), ("transport", transport)],
        |v| v >= at_least,
    )
}

#[test]
fn otlp_exporters_are_told_the_signal_is_not_implemented() {
    let server = Sextant::start();
    let grpc = server.addr("otlp_grpc", "tcp");
    let http = server.addr("otlp_http", "tcp");
    let out = run_python(
        r#"
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

provider = TracerProvider()
with provider.get_tracer("profile").start_as_current_span("GET /profile") as span:
    pass
spans = [span]
grpc = GrpcExporter(endpoint=sys.argv[1], insecure=True, timeout=5)
http = HttpExporter(endpoint=sys.argv[2] + "/v1/traces", timeout=5)
print(grpc.export(spans).name, http.export(spans).name)
"#,
        &[&grpc.to_string(), &format!("http://{http}")],
    );
    assert_eq!(out.trim(), "FAILURE FAILURE", "{out}");
    assert!(dropped(&server, "otlp_grpc", "tcp", 1.0) >= 1.0);
    assert!(dropped(&server, "otlp_http", "tcp", 1.0) >= 1.0);

    // What an exporter gets over plain HTTP: 501 with a JSON error that says why.
    let reply = server.post(
        &format!("http://{http}/v1/traces"),
        "application/json",
        b"{\"resourceSpans\": []}",
    );
    assert_eq!(reply.status, 501);
    assert_eq!(
        reply.json()["error"],
        "OTLP/HTTP /v1/traces is not implemented yet in this Sextant build"
    );
}

#[test]
fn unbuilt_http_api_paths_answer_501_with_a_json_error() {
    let server = Sextant::start();
    let reply = server.get("/api/v1/alerts");
    assert_eq!(reply.status, 501);
    assert_eq!(
        reply.json()["error"],
        "GET /api/v1/alerts is not implemented yet in this Sextant build"
    );
    let reply = server.get("/no/such/thing");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "no endpoint at GET /no/such/thing");
}
