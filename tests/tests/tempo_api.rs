//! Grafana's Tempo data source against Sextant: the OpenTelemetry SDK sends
//! a checkout trace over OTLP, then every request the data source makes
//! (its health check, trace by id in protobuf and JSON, TraceQL and tag
//! searches, the tag and value lists) is answered in Tempo's shapes; the
//! protobuf is read back with the `opentelemetry-proto` Python classes.

use serde_json::Value;
use sextant_tests::{Sextant, request, run_python, url_encode};

const CHECKOUT: &str = r#"
import sys, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

def provider(service):
    p = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "prod"}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces")))
    return p

frontend, cart = provider("frontend"), provider("cart")
ids = []
for attempt in range(2):
    with frontend.get_tracer("web").start_as_current_span("POST /checkout", kind=SpanKind.SERVER,
            attributes={"http.method": "POST", "http.route": "/checkout", "http.status_code": 500 if attempt == 0 else 200}) as root:
        time.sleep(0.02)
        with cart.get_tracer("cart").start_as_current_span("reserve items", kind=SpanKind.CLIENT,
                attributes={"http.method": "GET", "items": 3}) as span:
            time.sleep(0.12 if attempt == 0 else 0.01)
            if attempt == 0:
                span.set_status(Status(StatusCode.ERROR, "out of stock"))
        ids.append(format(root.get_span_context().trace_id, "032x"))
frontend.shutdown()
cart.shutdown()
print(" ".join(ids))
"#;

const DECODE: &str = r#"
import sys, urllib.request
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
body = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={"Accept": "application/protobuf"})).read()
if sys.argv[2] == "v2":
    # TraceByIDResponse: field 1 is the trace, whose wire form is TracesData.
    assert body[0] == 0x0a, body[:4]
    length, shift, i = 0, 0, 1
    while True:
        b = body[i]; length |= (b & 0x7f) << shift; i += 1; shift += 7
        if b < 0x80: break
    body = body[i:i + length]
data = TracesData.FromString(body)
for rs in data.resource_spans:
    service = [a.value.string_value for a in rs.resource.attributes if a.key == "service.name"][0]
    for ss in rs.scope_spans:
        for s in ss.spans:
            print(service, s.name, s.kind, s.status.code, s.trace_id.hex(), (s.end_time_unix_nano - s.start_time_unix_nano) // 1000000)
"#;

fn get(server: &Sextant, path: &str) -> Value {
    let answer = request(
        "GET",
        &format!("{}{path}", server.base_url()),
        &[("User-Agent", "Grafana/11.3.0"), ("X-Scope-OrgID", "1")],
        "",
    );
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", answer.body))
}

fn search(server: &Sextant, q: &str) -> Vec<String> {
    let found = get(
        server,
        &format!("/api/search?q={}&limit=20&spss=3", url_encode(q)),
    );
    let mut ids: Vec<String> = found["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("{found}"))
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn grafana_reads_traces_through_the_tempo_api() {
    let server = Sextant::start();
    let otlp = format!("http://{}", server.addr("otlp_http", "tcp"));
    let out = run_python(CHECKOUT, &[&otlp]);
    let ids: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    assert_eq!(ids.len(), 2, "{out}");
    let (failed, fine) = (ids[0].clone(), ids[1].clone());
    // Wait until both traces are searchable.
    server.get_until("/api/search?q=%7B%7D&limit=20", |v: &Value| {
        v["traces"].as_array().is_some_and(|t| t.len() == 2)
    });

    // The health check.
    let echo = request("GET", &format!("{}/api/echo", server.base_url()), &[], "");
    assert_eq!((echo.status, echo.body.as_str()), (200, "echo"));
    assert!(get(&server, "/api/status/buildinfo")["version"].is_string());

    // A trace by id, as protobuf (v1 and v2) and as JSON.
    for version in ["v1", "v2"] {
        let path = if version == "v1" {
            "api/traces"
        } else {
            "api/v2/traces"
        };
        let url = format!("{}/{path}/{failed}", server.base_url());
        let spans = run_python(DECODE, &[&url, version]);
        let mut lines: Vec<&str> = spans.lines().collect();
        lines.sort();
        assert_eq!(lines.len(), 2, "{spans}");
        assert!(
            lines[0].starts_with(&format!("cart reserve items 3 2 {failed}")),
            "{spans}"
        );
        assert!(
            lines[1].starts_with(&format!("frontend POST /checkout 2 0 {failed}")),
            "{spans}"
        );
    }
    let as_json = request(
        "GET",
        &format!("{}/api/traces/{failed}", server.base_url()),
        &[("Accept", "application/json")],
        "",
    );
    let trace: Value = serde_json::from_str(&as_json.body).unwrap();
    assert_eq!(trace["batches"].as_array().unwrap().len(), 2, "{trace}");
    let missing = request(
        "GET",
        &format!("{}/api/traces/{}", server.base_url(), "ab".repeat(16)),
        &[],
        "",
    );
    assert_eq!(missing.status, 404, "{}", missing.body);
    let bad_id = request(
        "GET",
        &format!("{}/api/traces/xyz", server.base_url()),
        &[],
        "",
    );
    assert_eq!(bad_id.status, 400, "{}", bad_id.body);

    // TraceQL, with results worked out by hand from the two traces.
    let both = {
        let mut v = vec![failed.clone(), fine];
        v.sort();
        v
    };
    let only_failed = vec![failed.clone()];
    assert_eq!(search(&server, "{}"), both);
    assert_eq!(
        search(
            &server,
            r#"{ resource.service.name = "cart" && status = error }"#
        ),
        only_failed
    );
    assert_eq!(search(&server, "{ duration > 100ms }"), only_failed);
    assert_eq!(
        search(&server, r#"{ span.http.status_code >= 500 }"#),
        only_failed
    );
    assert_eq!(
        search(
            &server,
            r#"{ .http.method = "GET" } && { .http.method = "POST" }"#
        ),
        both
    );
    assert_eq!(
        search(&server, r#"{ name =~ "reserve.*" && kind = client }"#),
        both
    );
    assert_eq!(
        search(
            &server,
            r#"{ rootServiceName = "frontend" && traceDuration > 120ms }"#
        ),
        only_failed
    );
    assert_eq!(search(&server, "{ } | count() > 1"), both);
    assert_eq!(search(&server, "{ } | count() > 2"), Vec::<String>::new());
    assert_eq!(
        search(
            &server,
            r#"{ resource.deployment.environment = "staging" }"#
        ),
        Vec::<String>::new()
    );
    // The shape Grafana reads, with the span set and the selected attribute.
    let found = get(
        &server,
        &format!(
            "/api/search?q={}&spss=3",
            url_encode(r#"{ status = error } | select(span.items)"#)
        ),
    );
    let hit = &found["traces"][0];
    assert_eq!(hit["traceID"], failed.as_str());
    assert_eq!(hit["rootServiceName"], "frontend");
    assert_eq!(hit["rootTraceName"], "POST /checkout");
    assert!(hit["durationMs"].as_u64().unwrap() >= 120, "{hit}");
    let set = &hit["spanSets"][0];
    assert_eq!(set["matched"], 1);
    let span = &set["spans"][0];
    assert!(
        span["spanID"].is_string() && span["durationNanos"].is_string(),
        "{span}"
    );
    let keys: Vec<&str> = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"items"), "{span}");
    // The tag-based form.
    let tagged = get(
        &server,
        &format!(
            "/api/search?tags={}&minDuration=100ms",
            url_encode("service.name=cart")
        ),
    );
    assert_eq!(tagged["traces"].as_array().unwrap().len(), 1, "{tagged}");

    // Tags and values for the query editor.
    let tags = get(&server, "/api/v2/search/tags?scope=span");
    let span_tags = tags["scopes"][0]["tags"].as_array().unwrap();
    assert!(span_tags.iter().any(|t| t == "http.route"), "{tags}");
    let all = get(&server, "/api/v2/search/tags");
    let scopes: Vec<&str> = all["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["span", "resource", "intrinsic"]);
    let services = get(&server, "/api/v2/search/tag/resource.service.name/values");
    assert_eq!(
        services["tagValues"],
        serde_json::json!([{"type": "string", "value": "cart"}, {"type": "string", "value": "frontend"}])
    );
    // Narrowed by the query the editor holds; an unfinished one narrows nothing.
    let narrowed = get(
        &server,
        &format!(
            "/api/v2/search/tag/span.http.method/values?q={}",
            url_encode(r#"{ resource.service.name = "cart" }"#)
        ),
    );
    assert_eq!(
        narrowed["tagValues"],
        serde_json::json!([{"type": "string", "value": "GET"}])
    );
    let typing = get(
        &server,
        &format!(
            "/api/v2/search/tag/span.http.method/values?q={}",
            url_encode(r#"{ resource.service.name = "cart" && span.http.method = }"#)
        ),
    );
    assert_eq!(
        typing["tagValues"].as_array().map(Vec::len),
        Some(2),
        "{typing}"
    );
    let v1 = get(&server, "/api/search/tag/service.name/values");
    assert_eq!(v1["tagValues"], serde_json::json!(["cart", "frontend"]));
    assert!(
        get(&server, "/api/search/tags")["tagNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "http.method")
    );

    // Bad TraceQL is a 400 naming the problem.
    let bad = request(
        "GET",
        &format!(
            "{}/api/search?q={}",
            server.base_url(),
            url_encode("{ span.a = }")
        ),
        &[],
        "",
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("parse error"), "{}", bad.body);
}
