//! Access tokens, as the real clients send them: once `auth.tokens` is
//! set, a request without a token gets 401 (and a browser's basic-auth
//! prompt), an ingest-only token cannot query, a query token cannot ingest
//! or change rules; the OpenTelemetry SDK's exporters send theirs in gRPC
//! metadata and HTTP headers; Grafana-style basic auth carries the token as
//! its password. Health probes and the UI's files stay open. No token is
//! ever logged.

use sextant_tests::{Sextant, run_python};

const CONFIG: &str = r#"
auth:
  tokens:
    - name: ops-admin
      token: admin-secret
      scopes: [admin, query]
    - name: services
      token_sha256: "0ef1b1cc7714b8962d51d48483dc481b170a6028e0c1488c0778070c42970b1f"
      scopes: [ingest]
    - name: grafana
      token: query-secret
      scopes: [query]
"#;

fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, Option<String>) {
    let answer = sextant_tests::request(method, url, headers, body);
    let challenge = answer
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (answer.status, answer.body, challenge)
}

const SPANS: &str = r#"
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

transport, endpoint, token, service = sys.argv[1:5]
headers = {"authorization": "Bearer " + token} if token else None
exporter = Grpc(endpoint=endpoint, insecure=True, headers=headers) if transport == "grpc" else Http(endpoint=endpoint + "/v1/traces", headers=headers)
provider = TracerProvider(resource=Resource.create({"service.name": service}))
spans = []
with provider.get_tracer("t").start_as_current_span("checkout") as span:
    pass
result = exporter.export([span])
print("SUCCESS" if result == SpanExportResult.SUCCESS else "FAILURE")
"#;

#[test]
fn tokens_guard_every_endpoint_by_scope_and_clients_send_them_as_they_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let base = server.base_url();
    let bearer = |t: &str| format!("Bearer {t}");

    // Probes and the UI's files are open; data is not.
    assert_eq!(request("GET", &format!("{base}/-/ready"), &[], "").0, 200);
    assert_eq!(request("GET", &format!("{base}/ui/logs"), &[], "").0, 200);
    let (status, body, challenge) =
        request("GET", &format!("{base}/api/v1/query?query=up"), &[], "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("query scope"), "{body}");
    assert!(
        challenge.unwrap().starts_with("Basic realm="),
        "a browser prompts"
    );
    let (status, _, _) = request(
        "GET",
        &format!("{base}/api/v1/query?query=up"),
        &[("authorization", "Bearer nope")],
        "",
    );
    assert_eq!(status, 401);

    // Scopes: ingest cannot query, query cannot ingest.
    let (status, body, _) = request(
        "GET",
        &format!("{base}/api/v1/query?query=up"),
        &[("authorization", &bearer("ingest-secret"))],
        "",
    );
    assert_eq!(status, 403, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        error["error"],
        "token \"services\" lacks the query scope this request needs"
    );
    let line = r#"{"message":"sell order failed","service":"orders","level":"ERROR"}"#;
    let (status, _, _) = request(
        "POST",
        &format!("{base}/api/v1/logs"),
        &[("authorization", &bearer("query-secret"))],
        line,
    );
    assert_eq!(status, 403);
    let (status, body, _) = request(
        "POST",
        &format!("{base}/api/v1/logs"),
        &[("authorization", &bearer("ingest-secret"))],
        line,
    );
    assert_eq!(status, 200, "{body}");

    // Grafana's basic auth: any user, the token as the password.
    // printf 'grafana:query-secret' | base64
    let (status, body, _) = request(
        "GET",
        &format!("{base}/api/v1/labels"),
        &[("authorization", "Basic Z3JhZmFuYTpxdWVyeS1zZWNyZXQ=")],
        "",
    );
    assert_eq!(status, 200, "{body}");

    // Admin: reloads and rule changes.
    let group = "name: queue\nrules:\n  - alert: Deep\n    expr: rabbitmq_queue_messages > 100\n";
    let (status, body, _) = request(
        "POST",
        &format!("{base}/api/v1/rules/payments"),
        &[("authorization", &bearer("query-secret"))],
        group,
    );
    assert_eq!(status, 403, "{body}");
    let (status, body, _) = request(
        "POST",
        &format!("{base}/api/v1/rules/payments"),
        &[("authorization", &bearer("admin-secret"))],
        group,
    );
    assert_eq!(status, 202, "{body}");
    let (_, changes, _) = request(
        "GET",
        &format!("{base}/api/v1/rules/changes"),
        &[("authorization", &bearer("admin-secret"))],
        "",
    );
    assert!(changes.contains("\"who\":\"ops-admin\""), "{changes}");

    // The OpenTelemetry SDK: metadata over gRPC, a header over HTTP.
    let grpc = format!("http://{}", server.addr("otlp_grpc", "tcp"));
    let http = format!("http://{}", server.addr("otlp_http", "tcp"));
    assert_eq!(
        run_python(SPANS, &["grpc", &grpc, "", "no-token"]).trim(),
        "FAILURE"
    );
    assert_eq!(
        run_python(SPANS, &["http", &http, "query-secret", "wrong-scope"]).trim(),
        "FAILURE"
    );
    assert_eq!(
        run_python(SPANS, &["grpc", &grpc, "ingest-secret", "checkout-grpc"]).trim(),
        "SUCCESS"
    );
    assert_eq!(
        run_python(SPANS, &["http", &http, "ingest-secret", "checkout-http"]).trim(),
        "SUCCESS"
    );
    let (status, body, _) = request(
        "POST",
        &format!("{http}/v1/traces"),
        &[("content-type", "application/json")],
        "{}",
    );
    assert_eq!(status, 401, "{body}");
    let services = server.get_until_with(
        "/jaeger/api/services",
        &[("authorization", "Bearer query-secret")],
        |j| j["data"].as_array().is_some_and(|s| s.len() == 2),
    );
    assert_eq!(
        services["data"],
        serde_json::json!(["checkout-grpc", "checkout-http"])
    );

    let logs = server.logs();
    for secret in ["admin-secret", "ingest-secret", "query-secret"] {
        assert!(!logs.contains(secret), "{secret} was logged");
    }
}

#[test]
fn binding_beyond_loopback_without_tokens_says_so_loudly() {
    // Every listener on a free port of every address.
    let everywhere = |dir: &std::path::Path| {
        let data = dir.join("data").to_str().unwrap().to_owned();
        let mut args = vec![
            "--data-dir".to_owned(),
            data,
            "--bind".into(),
            "0.0.0.0".into(),
        ];
        for flag in [
            "--http",
            "--otlp-grpc",
            "--otlp-http",
            "--statsd",
            "--logstash",
            "--syslog",
            "--forward",
        ] {
            args.extend([flag.to_owned(), "0".to_owned()]);
        }
        args
    };
    let scratch = tempfile::tempdir().unwrap();
    let open = Sextant::builder()
        .addresses_from_caller()
        .args(everywhere(scratch.path()))
        .start();
    assert!(
        open.logs().contains("WITHOUT AUTHENTICATION"),
        "{}",
        open.logs()
    );
    drop(open);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let guarded = Sextant::builder()
        .addresses_from_caller()
        .args(everywhere(dir.path()))
        .args(["--config", config.to_str().unwrap()])
        .start();
    let logs = guarded.logs();
    assert!(!logs.contains("WITHOUT AUTHENTICATION"), "{logs}");
    let untokened = |server: &Sextant| {
        server
            .log_events()
            .into_iter()
            .find(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("listen beyond loopback and carry no tokens"))
            })
            .map(|e| e["listeners"].as_str().unwrap().to_owned())
    };
    // The configured addresses (port 0 here): StatsD, logstash, syslog and forward.
    let listed = untokened(&guarded).expect("a warning about StatsD, logstash, syslog and forward");
    assert_eq!(listed.split(", ").count(), 4, "{listed}");
    drop(guarded);

    // Forward's shared key is its authentication: no longer listed.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        format!("{CONFIG}\nlogs:\n  forward:\n    shared_key: fwd-key\n"),
    )
    .unwrap();
    let keyed = Sextant::builder()
        .addresses_from_caller()
        .args(everywhere(dir.path()))
        .args(["--config", config.to_str().unwrap()])
        .start();
    let listed = untokened(&keyed).expect("a warning about StatsD, logstash and syslog");
    assert_eq!(listed.split(", ").count(), 3, "{listed}");
    drop(keyed);
    let loopback = Sextant::start();
    assert!(
        !loopback.logs().contains("beyond loopback"),
        "{}",
        loopback.logs()
    );
}

const TENANTS: &str = r#"
auth:
  tokens:
    - name: team-a
      token: a-secret
      scopes: [ingest, query]
      tenant: team-a
    - name: team-b
      token: b-secret
      scopes: [ingest, query]
      tenant: team-b
    - name: operator
      token: op-secret
      scopes: [ingest, query, admin]
"#;

#[test]
fn a_tenant_token_writes_as_its_tenant_and_reads_only_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, TENANTS).unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let base = server.base_url();
    let bearer = |token: &str| format!("Bearer {token}");
    let (a, b, op) = (bearer("a-secret"), bearer("b-secret"), bearer("op-secret"));
    // Both teams write the same metric name, log service and span service; team
    // b also claims to be team a in its label and field (it is overwritten).
    for (token, team) in [(&a, "a"), (&b, "b")] {
        let (status, body, _) = request(
            "POST",
            &format!("{base}/api/v1/import/prometheus"),
            &[("authorization", token)],
            &format!("checkout_total{{team=\"{team}\",tenant=\"team-a\"}} 1\n"),
        );
        assert_eq!(status, 204, "{body}");
        let line = format!(
            "{{\"message\": \"checkout by team {team}\", \"service\": \"checkout\", \"tenant\": \"team-a\", \"uuid\": \"shared-id\"}}\n"
        );
        let (status, body, _) = request(
            "POST",
            &format!("{base}/api/v1/logs"),
            &[
                ("authorization", token),
                ("content-type", "application/x-ndjson"),
            ],
            &line,
        );
        assert_eq!(status, 200, "{body}");
        let token = token.trim_start_matches("Bearer ");
        let out = run_python(
            SPANS,
            &[
                "http",
                &format!("http://{}", server.addr("otlp_http", "tcp")),
                token,
                &format!("shop-{team}"),
            ],
        );
        assert!(out.contains("SUCCESS"), "{out}");
    }
    let get = |token: &str, path: &str| {
        let (status, body, _) = request(
            "GET",
            &format!("{base}{path}"),
            &[("authorization", token)],
            "",
        );
        (
            status,
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };
    // The operator (no tenant) sees both, each stamped with its writer's tenant.
    let all = server.get_until_with(
        "/api/v1/query?query=checkout_total",
        &[("authorization", &op)],
        |v| v["data"]["result"].as_array().is_some_and(|r| r.len() == 2),
    );
    let mut tenants: Vec<(String, String)> = all["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["team"].as_str().unwrap().to_owned(),
                s["metric"]["tenant"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    tenants.sort();
    assert_eq!(
        tenants,
        [("a".into(), "team-a".into()), ("b".into(), "team-b".into())]
    );
    // Team a's metrics, series and labels show only its own series.
    let (status, mine) = get(&a, "/api/v1/query?query=checkout_total");
    assert_eq!(status, 200, "{mine}");
    let result = mine["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{mine}");
    assert_eq!(result[0]["metric"]["team"], "a");
    let (_, values) = get(&a, "/api/v1/label/team/values");
    assert_eq!(values["data"], serde_json::json!(["a"]), "{values}");
    // Logs: search, and the correlation view of an id both teams used.
    server.get_until_with(
        "/api/v1/logs/search?q=service:checkout&start=0",
        &[("authorization", &op)],
        |v| v["total"] == 2,
    );
    let (_, logs) = get(&b, "/api/v1/logs/search?q=service:checkout&start=0");
    assert_eq!(logs["total"], 1, "{logs}");
    assert_eq!(logs["hits"][0]["message"], "checkout by team b");
    assert_eq!(logs["hits"][0]["fields"]["tenant"], "team-b", "{logs}");
    let (_, correlated) = get(&b, "/api/v1/correlate/shared-id");
    let text = correlated.to_string();
    assert!(
        text.contains("team b") && !text.contains("team a"),
        "{text}"
    );
    // Traces: services and searches.
    server.get_until_with("/jaeger/api/services", &[("authorization", &op)], |v| {
        v["data"].as_array().is_some_and(|s| s.len() >= 2)
    });
    let (_, services) = get(&a, "/jaeger/api/services");
    assert_eq!(
        services["data"],
        serde_json::json!(["shop-a"]),
        "{services}"
    );
    let (_, found) = get(&a, "/jaeger/api/traces?service=shop-b&limit=10");
    assert_eq!(found["data"].as_array().map_or(0, Vec::len), 0, "{found}");
    // What spans every tenant is refused to a tenant token.
    for path in [
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/targets",
        "/metrics",
    ] {
        let (status, body) = get(&a, path);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.to_string().contains("limited to tenant"),
            "{path}: {body}"
        );
    }
}

#[test]
fn check_config_refuses_a_tenant_token_with_the_admin_scope() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "auth:\n  tokens:\n    - name: x\n      token: s\n      scopes: [admin]\n      tenant: team-a\n",
    )
    .unwrap();
    let out = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot have the admin scope"),
        "{out:?}"
    );
}
