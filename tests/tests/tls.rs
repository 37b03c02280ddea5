//! TLS on the HTTP API and OTLP (HTTP and gRPC), as clients configured for
//! it use it: Python's `ssl` with the CA file, and the OpenTelemetry SDK's
//! OTLP/HTTP exporter with `certificate_file` and gRPC exporter with SSL
//! channel credentials. A renewed certificate written over the
//! files is served without a restart; plain HTTP to a TLS port gets nothing.

use std::path::Path;

use sextant_tests::{Sextant, TestCertificates, run_python};

/// GETs `url` trusting `ca`; prints the status, the certificate's CN and the body.
const GET: &str = r#"
import sys, ssl, json, urllib.request
url, ca = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile=ca)
with urllib.request.urlopen(url, context=context, timeout=10) as r:
    cert = r.fp.raw._sock.getpeercert()
    cn = [v for rdn in cert["subject"] for (k, v) in rdn if k == "commonName"][0]
    print(r.status, cn, r.read().decode()[:200].replace("\n", " "))
"#;

const EXPORT: &str = r#"
import os, sys
# requests lets these override a session's CA file (requests#3829); this
# machine sets them to the system bundle, which does not hold the test CA.
for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(name, None)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
endpoint, ca = sys.argv[1], sys.argv[2]
exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", certificate_file=ca)
provider = TracerProvider(resource=Resource.create({"service.name": "tls-checkout"}))
with provider.get_tracer("t").start_as_current_span("pay") as span:
    pass
print("SUCCESS" if exporter.export([span]) == SpanExportResult.SUCCESS else "FAILURE")
"#;

const EXPORT_GRPC: &str = r#"
import sys, grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
endpoint, ca = sys.argv[1], sys.argv[2]
credentials = grpc.ssl_channel_credentials(root_certificates=open(ca, "rb").read())
exporter = OTLPSpanExporter(endpoint=endpoint, credentials=credentials)
provider = TracerProvider(resource=Resource.create({"service.name": "tls-grpc"}))
with provider.get_tracer("t").start_as_current_span("pay") as span:
    pass
print("SUCCESS" if exporter.export([span]) == SpanExportResult.SUCCESS else "FAILURE")
"#;

fn replace(from: &Path, to: &Path) {
    let staging = to.with_extension("new");
    std::fs::copy(from, &staging).unwrap();
    std::fs::rename(&staging, to).unwrap();
}

#[test]
fn https_and_otlp_over_tls_work_and_a_renewed_certificate_is_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (server, certs) = TestCertificates::serving(dir.path());
    let ca = certs.ca.to_str().unwrap();
    let http = server.addr("http", "tcp");
    let otlp = server.addr("otlp_http", "tcp");

    let ready = run_python(
        GET,
        &[&format!("https://127.0.0.1:{}/-/ready", http.port()), ca],
    );
    assert!(ready.starts_with("200 localhost"), "{ready}");
    let exported = run_python(EXPORT, &[&format!("https://127.0.0.1:{}", otlp.port()), ca]);
    assert_eq!(exported.trim(), "SUCCESS");
    let grpc = server.addr("otlp_grpc", "tcp");
    let exported = run_python(
        EXPORT_GRPC,
        &[&format!("https://localhost:{}", grpc.port()), ca],
    );
    assert_eq!(exported.trim(), "SUCCESS");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let services = run_python(
            GET,
            &[
                &format!("https://127.0.0.1:{}/jaeger/api/services", http.port()),
                ca,
            ],
        );
        if services.contains("tls-checkout") && services.contains("tls-grpc") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{services}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Plain HTTP to the TLS port gets no answer.
    let plain = std::process::Command::new(sextant_tests::python())
        .args([
            "-c",
            "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)",
        ])
        .arg(format!("http://127.0.0.1:{}/-/ready", http.port()))
        .output()
        .unwrap();
    assert!(!plain.status.success(), "plain HTTP was answered");

    // A renewed certificate (a new subject) over the same files.
    let (renewed_cert, renewed_key) = certs.issue(
        dir.path(),
        "renewed",
        "/CN=renewed",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    );
    replace(&renewed_key, &certs.key);
    replace(&renewed_cert, &certs.cert);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = run_python(
            GET,
            &[&format!("https://127.0.0.1:{}/-/ready", http.port()), ca],
        );
        if answer.starts_with("200 renewed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {answer}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(
        server.logs().contains("TLS certificate reloaded"),
        "{}",
        server.logs()
    );
}

/// OTLP/HTTP and gRPC exports with and without a client certificate.
const EXPORT_MUTUAL: &str = r#"
import os, sys, grpc
for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(name, None)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
http, grpc_endpoint, ca, cert, key = sys.argv[1:6]
provider = TracerProvider(resource=Resource.create({"service.name": "mtls-checkout"}))
with provider.get_tracer("t").start_as_current_span("pay") as span:
    pass
def outcome(exporter):
    try:
        return "SUCCESS" if exporter.export([span]) == SpanExportResult.SUCCESS else "FAILURE"
    except Exception as e:
        return "FAILURE"
read = lambda p: open(p, "rb").read()
print("http-with-cert", outcome(HttpExporter(endpoint=http + "/v1/traces", certificate_file=ca,
      client_certificate_file=cert, client_key_file=key, timeout=5)))
print("http-without-cert", outcome(HttpExporter(endpoint=http + "/v1/traces", certificate_file=ca, timeout=5)))
with_cert = grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert))
print("grpc-with-cert", outcome(GrpcExporter(endpoint=grpc_endpoint, credentials=with_cert, timeout=5)))
without = grpc.ssl_channel_credentials(root_certificates=read(ca))
print("grpc-without-cert", outcome(GrpcExporter(endpoint=grpc_endpoint, credentials=without, timeout=5)))
"#;

/// One logstash event over TLS, with the client certificate when given.
const LOGSTASH_TLS: &str = r#"
import sys, ssl, socket, json
host, port, ca, message = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=ca)
if len(sys.argv) > 6:
    context.load_cert_chain(sys.argv[5], sys.argv[6])
try:
    with socket.create_connection((host, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall((json.dumps({"message": message, "service": "mtls", "@version": "1"}) + "\n").encode())
            # The server's refusal of a missing certificate arrives after the handshake (TLS 1.3).
            tls.settimeout(1)
            try:
                tls.recv(1)
            except socket.timeout:
                pass
    print("SENT")
except (ssl.SSLError, OSError) as e:
    print("REFUSED", type(e).__name__)
"#;

#[test]
fn ingest_listeners_require_a_client_certificate_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::create(dir.path(), &[]);
    let (client_cert, client_key) = certs.issue(
        dir.path(),
        "client",
        "/CN=checkout-service",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  tls:\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n",
            certs.cert.display(),
            certs.key.display(),
            certs.ca.display()
        ),
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let ca = certs.ca.to_str().unwrap();
    let (cert, key) = (client_cert.to_str().unwrap(), client_key.to_str().unwrap());
    let listening: Vec<_> = server
        .log_events()
        .into_iter()
        .filter(|e| e["message"] == "listening" && e["transport"] == "tcp")
        .collect();
    for event in &listening {
        let ingest_only = ["otlp_grpc", "otlp_http", "logstash", "syslog", "forward"]
            .contains(&event["listener"].as_str().unwrap());
        assert_eq!(event["mutual_tls"], ingest_only, "{event}");
    }

    let out = run_python(
        EXPORT_MUTUAL,
        &[
            &format!("https://{}", server.addr("otlp_http", "tcp")),
            &format!(
                "https://localhost:{}",
                server.addr("otlp_grpc", "tcp").port()
            ),
            ca,
            cert,
            key,
        ],
    );
    for expected in [
        "http-with-cert SUCCESS",
        "http-without-cert FAILURE",
        "grpc-with-cert SUCCESS",
        "grpc-without-cert FAILURE",
    ] {
        assert!(out.contains(expected), "{expected}:\n{out}");
    }

    let logstash = server.addr("logstash", "tcp");
    let (host, port) = (logstash.ip().to_string(), logstash.port().to_string());
    let out = run_python(LOGSTASH_TLS, &[&host, &port, ca, "without a certificate"]);
    assert!(out.contains("SENT") || out.contains("REFUSED"), "{out}");
    let out = run_python(
        LOGSTASH_TLS,
        &[&host, &port, ca, "with a certificate", cert, key],
    );
    assert!(out.contains("SENT"), "{out}");

    // The HTTP API keeps server-only TLS: its answers need no client certificate.
    let search = run_python(
        GET,
        &[
            &format!(
                "https://{}/api/v1/logs/search?q=service:mtls&start=0",
                server.addr("http", "tcp")
            ),
            ca,
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut search = search;
    while !search.contains("with a certificate") {
        assert!(std::time::Instant::now() < deadline, "{search}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        search = run_python(
            GET,
            &[
                &format!(
                    "https://{}/api/v1/logs/search?q=service:mtls&start=0",
                    server.addr("http", "tcp")
                ),
                ca,
            ],
        );
    }
    assert!(search.starts_with("200 localhost"), "{search}");
    assert!(
        search.contains("\"total\":1"),
        "only the event with a certificate is kept: {search}"
    );
    let traces = run_python(
        GET,
        &[
            &format!("https://{}/jaeger/api/services", server.addr("http", "tcp")),
            ca,
        ],
    );
    assert!(traces.contains("mtls-checkout"), "{traces}");
}
