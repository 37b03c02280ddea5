//! The web UI in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/ui/ui.test.mjs`) against a server fed the way the book's services
//! feed it: python-logstash lines carrying a request uuid from four
//! services, the OpenTelemetry SDK's spans of the profile -> settings call
//! over OTLP/HTTP, StatsD timers and the queue gauge that fires an alert.
//! The script searches the uuid, expands and filters a line, opens the
//! trace from it, correlates, graphs PromQL, and sees the alert and its
//! history; it saves a screenshot of each page.

use std::path::{Path, PathBuf};
use std::process::Command;

use sextant_tests::{Sextant, browser_env, run_python};

const RULES: &str = r#"
groups:
  - name: rabbitmq
    interval: 1s
    rules:
      - alert: HighNumberOfMessagesInQueue
        expr: rabbitmq_queue_messages > 100
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "Messages accumulating in the queue"
"#;

/// Logs, spans and metrics of one sell order; prints its trace id and uuid.
const SIMPLEBANK: &str = r#"
import sys, time, uuid, logging, logstash, statsd
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.propagate import inject, extract
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

otlp, logstash_port, statsd_host, statsd_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def provider(service):
    p = TracerProvider(resource=Resource.create({"service.name": service, "host.name": service + "-pod-1"}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces")))
    return p

log = logging.getLogger("simplebank")
log.setLevel(logging.INFO)
handler = logstash.TCPLogstashHandler("127.0.0.1", logstash_port, version=1)
log.addHandler(handler)
request_id = str(uuid.uuid4())

log.info("sell order received", extra={"uuid": request_id, "service": "gateway", "route": "/shares/sell"})
time.sleep(0.01)
profile, settings = provider("profile"), provider("settings")
tracer = profile.get_tracer("profile")
with tracer.start_as_current_span("GET /profile", kind=SpanKind.SERVER, attributes={"uuid": request_id, "http.status_code": 200}) as root:
    trace_id = format(root.get_span_context().trace_id, "032x")
    log.info("profile requested", extra={"uuid": request_id, "trace_id": trace_id, "service": "profile"})
    with tracer.start_as_current_span("lookup ip", kind=SpanKind.CLIENT, attributes={"uuid": request_id}):
        time.sleep(0.005)
    headers = {}
    inject(headers)
    with settings.get_tracer("settings").start_as_current_span("get settings", context=extract(headers),
            kind=SpanKind.SERVER, attributes={"uuid": request_id}) as span:
        span.add_event("cache miss", {"key": "prefs"})
        time.sleep(0.005)
        span.set_status(Status(StatusCode.ERROR, "settings store unavailable"))
        log.warning("settings store unavailable", extra={"uuid": request_id, "trace_id": trace_id, "service": "settings"})
time.sleep(0.01)
log.info("placing sell order", extra={"uuid": request_id, "service": "orders", "qty": 10})
log.error("sell order failed", extra={"uuid": request_id, "service": "orders", "qty": 10})
# Other requests, so that the search has something to leave out.
for i in range(20):
    log.info("heartbeat", extra={"uuid": str(uuid.uuid4()), "service": "gateway"})
profile.shutdown()
settings.shutdown()
handler.close()

client = statsd.StatsClient(statsd_host, statsd_port, prefix="simplebank-demo")
for ms in [12, 15, 20, 33, 41, 18, 25]:
    client.timing("market.place_order_stock_exchange", ms)
statsd.StatsClient(statsd_host, statsd_port, prefix="rabbitmq").gauge("queue_messages", 150)
print(trace_id, request_id)
"#;

/// Where the screenshots go: `$SEXTANT_SCREENSHOTS`, else `target/ui-screenshots`.
fn screenshots() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEXTANT_SCREENSHOTS") {
        return dir.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("ui-screenshots")
}

#[test]
fn an_engineer_follows_a_sell_order_through_logs_traces_metrics_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "rule_files: [rules.yml]\nstatsd:\n  flush_interval: 200ms\n",
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let statsd = server.addr("statsd", "udp");
    let out = run_python(
        SIMPLEBANK,
        &[
            &format!("http://{}", server.addr("otlp_http", "tcp")),
            &server.addr("logstash", "tcp").port().to_string(),
            &statsd.ip().to_string(),
            &statsd.port().to_string(),
        ],
    );
    let mut words = out.split_whitespace();
    let (trace_id, request_id) = (words.next().unwrap(), words.next().unwrap());

    // Everything is searchable and the alert fires before the browser looks.
    server.get_until(&format!("/api/v1/correlate/{request_id}"), |j| {
        j["logs"].as_array().is_some_and(|l| l.len() == 5)
            && j["spans"].as_array().is_some_and(|s| s.len() == 3)
    });
    server.get_until("/api/v1/alerts", |j| {
        j["data"]["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["state"] == "firing"))
    });
    // Two flushes of the span metrics: the services page shows rates.
    server.wait_for_query(
        "sum by (service) (rate(traces_spanmetrics_calls_total[5m]))",
        |r| r.as_array().is_some_and(|a| a.len() == 2),
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/ui.test.mjs");
    let output = Command::new("node")
        .arg(&script)
        .env("BROWSER_ENV", browser_env())
        .env("SEXTANT_URL", server.base_url())
        .env("SCREENSHOTS", screenshots())
        .env("REQUEST_ID", request_id)
        .env("TRACE_ID", trace_id)
        .env("LOG_LINES", "5")
        .env("SERVICES", "gateway,orders,profile,settings")
        .env("ALERT", "HighNumberOfMessagesInQueue")
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\n--- server\n{}",
        server.logs()
    );
    for step in [
        "ok - search a request uuid and see its log lines",
        "ok - open the trace from a log line",
        "ok - open the correlation view",
        "ok - run a PromQL query with completion and see a graph",
        "ok - open a trace from an exemplar on a latency graph",
        "ok - see the firing alert and its history",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}
