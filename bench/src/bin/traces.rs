//! Spans through the running server, as OpenTelemetry SDKs send them:
//!
//! ```sh
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/traces                             # 1M spans and 1M logs
//! target/release/traces --spans 10000000 --logs 10000000
//! ```
//!
//! 1. Ingest: OTLP/gRPC `TraceService/Export` batches of 500 spans (about
//!    400 bytes each: five services per trace, HTTP attributes, a request
//!    uuid), encoded beforehand, sent over 4 connections; the clock stops
//!    when the last trace is found by id through the Jaeger API (searchable).
//!    Reported: spans/s and MB/s of protobuf, and per CPU second the server
//!    used (its `/proc` counters). No peer is packaged for Debian (Jaeger,
//!    Tempo), so the figure stands beside Tempo's sizing guide.
//! 2. Logs carrying the same uuids, as NDJSON batches of 1,000.
//! 3. Trace by id through `/jaeger/api/traces/{id}` (p50/p99 of 200), and
//!    the correlation view of a request uuid (p50/p99 of 200), over HTTP.
//! 4. TraceQL through Tempo's `/api/search`, as Grafana's Tempo data source
//!    sends it (1 h, limit 20, spss 3): `{ resource.service.name = "orders"
//!    && duration > 100ms }` (one span in a hundred is that slow), beside
//!    the same search through the Jaeger API, and trace by id as Tempo's
//!    protobuf (`/api/v2/traces/{id}`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use prost::Message as _;
use sextant_bench::say;
use sextant_bench::{Rng, cpu_seconds, flag_value, free_port, start_sextant};
use sextant_ingest::otlp::proto::common::{AnyValue, KeyValue, Resource, any_value};
use sextant_ingest::otlp::proto::trace::{
    ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Span, Status,
};

const SERVICES: [&str; 5] = ["gateway", "orders", "market", "fees", "account"];
const ROUTES: [&str; 4] = ["/orders", "/orders/{id}", "/market/quote", "/fees"];
const BATCH: usize = 500;
const CONNECTIONS: usize = 4;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
    }
}

fn trace_id(trace: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(trace.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).to_be_bytes());
    id[8..].copy_from_slice(&trace.to_be_bytes());
    id
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn request_uuid(trace: u64) -> String {
    format!(
        "{trace:08x}-7d2e-4c11-a0b3-{:012x}",
        trace.wrapping_mul(2_654_435_761) % (1 << 48)
    )
}

/// Span `i`: traces of five spans, one per service, each a child of the one before.
fn span(i: u64, start_ns: u64, rng: &mut Rng) -> (usize, Span) {
    let trace = i / 5;
    let depth = i % 5;
    let service = depth as usize;
    let span_id = (i + 1).to_be_bytes().to_vec();
    let parent = if depth == 0 {
        Vec::new()
    } else {
        i.to_be_bytes().to_vec()
    };
    let start = start_ns + trace * 1_000_000 + depth * 10_000;
    let status = [200, 200, 200, 201, 404, 500][(rng.next_u64() % 6) as usize];
    (
        service,
        Span {
            trace_id: trace_id(trace).to_vec(),
            span_id,
            trace_state: String::new(),
            parent_span_id: parent,
            name: format!(
                "{} {}",
                ["GET", "POST"][(rng.next_u64() % 2) as usize],
                ROUTES[(rng.next_u64() % 4) as usize]
            ),
            kind: if depth == 0 { 2 } else { 3 },
            start_time_unix_nano: start,
            // One span in a hundred is slow: 100 to 300 ms.
            end_time_unix_nano: start
                + if rng.next_u64().is_multiple_of(100) {
                    100_000_000 + rng.next_u64() % 200_000_000
                } else {
                    1_000 + rng.next_u64() % 5_000_000
                },
            attributes: vec![
                text("http.method", "POST"),
                text("http.route", ROUTES[(rng.next_u64() % 4) as usize]),
                int("http.status_code", status),
                text("uuid", &request_uuid(trace)),
                text(
                    "net.peer.ip",
                    &format!("10.0.{}.{}", rng.next_u64() % 256, rng.next_u64() % 256),
                ),
                text("user_agent", "python-requests/2.31.0"),
                text(
                    "http.url",
                    &format!(
                        "https://simplebank.example{}?account={:08}&currency=EUR",
                        ROUTES[(rng.next_u64() % 4) as usize],
                        rng.next_u64() % 100_000_000
                    ),
                ),
                text("thread.name", "ThreadPoolExecutor-0_3"),
                int(
                    "thread.id",
                    140_230_000_000 + (rng.next_u64() % 1000) as i64,
                ),
            ],
            events: Vec::new(),
            links: Vec::new(),
            status: Some(Status {
                message: String::new(),
                code: if status == 500 { 2 } else { 0 },
            }),
        },
    )
}

fn batches(spans: u64, start_ns: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(11);
    let mut out = Vec::new();
    let mut i = 0;
    while i < spans {
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
        for _ in 0..BATCH.min((spans - i) as usize) {
            let (service, span) = span(i, start_ns, &mut rng);
            by_service[service].push(span);
            i += 1;
        }
        let request = ExportTraceServiceRequest {
            resource_spans: by_service
                .into_iter()
                .enumerate()
                .filter(|(_, s)| !s.is_empty())
                .map(|(n, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            text("service.name", SERVICES[n]),
                            text("host.name", &format!("{}-pod-1", SERVICES[n])),
                            text("telemetry.sdk.language", "python"),
                        ],
                    }),
                    scope_spans: vec![ScopeSpans { scope: None, spans }],
                })
                .collect(),
        };
        out.push(request.encode_to_vec());
    }
    out
}

/// Sends gRPC unary calls of `bodies` over one HTTP/2 connection.
async fn send_all(addr: std::net::SocketAddr, bodies: Vec<Vec<u8>>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    for message in bodies {
        let mut framed = Vec::with_capacity(message.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(&message);
        let request = hyper::Request::post(format!(
            "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(framed)))
        .expect("request");
        let response = sender.send_request(request).await.expect("export");
        let collected = response.into_body().collect().await.expect("answer");
        let status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert_eq!(status, "0", "export refused");
    }
}

fn get(url: &str) -> (u16, String) {
    match ureq::get(url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(ureq::Error::StatusCode(code)) => (code, String::new()),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn percentile(mut times: Vec<Duration>, p: f64) -> Duration {
    times.sort();
    times[((times.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spans: u64 =
        flag_value(&args, "--spans").map_or(1_000_000, |v| v.parse().expect("--spans N"));
    let logs: u64 = flag_value(&args, "--logs").map_or(1_000_000, |v| v.parse().expect("--logs N"));
    let dir = tempfile::tempdir().expect("temp dir");
    let grpc_port = free_port();
    let grpc = format!("127.0.0.1:{grpc_port}");
    let server = start_sextant(dir.path(), &["--otlp-grpc", &grpc]);
    let pid = server.child.id();
    let start_ns = (sextant_ingest::logstash::now_us() as u64 - 3_600_000_000) * 1000;

    let encoded = batches(spans, start_ns);
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let mut lanes: Vec<Vec<Vec<u8>>> = vec![Vec::new(); CONNECTIONS];
    for (i, batch) in encoded.into_iter().enumerate() {
        lanes[i % CONNECTIONS].push(batch);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addr: std::net::SocketAddr = grpc.parse().expect("address");
    let last = hex(&trace_id((spans - 1) / 5));
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = lanes
            .into_iter()
            .map(|lane| tokio::spawn(send_all(addr, lane)))
            .collect();
        for task in tasks {
            task.await.expect("sender");
        }
    });
    let acknowledged = started.elapsed().as_secs_f64();
    let by_id = format!("{}/jaeger/api/traces/{last}", server.url);
    while get(&by_id).0 != 200 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    say(&format!(
        "ingested {spans} spans ({} bytes each as protobuf) in {took:.1} s (acknowledged in {acknowledged:.1} s): {:.0} spans/s, {:.1} MB/s; server CPU {cpu:.1} s: {:.0} spans/s and {:.1} MB/s per core (goal >= 30,000 spans/s per core; Tempo's guide: ~5 MB/s per distributor core)",
        bytes as u64 / spans,
        spans as f64 / took,
        bytes as f64 / 1e6 / took,
        spans as f64 / cpu.max(0.001),
        bytes as f64 / 1e6 / cpu.max(0.001),
    ));

    // Logs with the same request uuids, one per span.
    let logs_url = format!("{}/api/v1/logs", server.url);
    let started = Instant::now();
    let mut batch = String::new();
    for i in 0..logs {
        let trace = (i / 5) % (spans / 5).max(1);
        let t_us = start_ns / 1000 + trace * 1000 + (i % 5) * 10;
        batch.push_str(&format!(
            r#"{{"timestamp":{},"message":"placing sell order","service":"{}","levelname":"INFO","uuid":"{}","route":"/orders"}}"#,
            t_us as f64 / 1e6,
            SERVICES[(i % 5) as usize],
            request_uuid(trace)
        ));
        batch.push('\n');
        if (i + 1) % 1000 == 0 || i + 1 == logs {
            ureq::post(&logs_url)
                .header("content-type", "application/x-ndjson")
                .send(batch.as_bytes())
                .expect("logs");
            batch.clear();
        }
    }
    say(&format!(
        "sent {logs} logs in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    std::thread::sleep(Duration::from_secs(3));

    let mut rng = Rng(3);
    let mut lookups = Vec::new();
    for _ in 0..200 {
        let trace = rng.next_u64() % (spans / 5).max(1);
        let url = format!("{}/jaeger/api/traces/{}", server.url, hex(&trace_id(trace)));
        let t = Instant::now();
        let (status, body) = get(&url);
        lookups.push(t.elapsed());
        assert_eq!(status, 200, "{url}");
        assert!(body.contains("\"spans\""));
    }
    say(&format!(
        "trace by id over {spans} spans (HTTP, Jaeger JSON): p50 {:.1} ms, p99 {:.1} ms (goal p99 < 20 ms)",
        percentile(lookups.clone(), 0.5).as_secs_f64() * 1e3,
        percentile(lookups, 0.99).as_secs_f64() * 1e3
    ));
    let mut correlations = Vec::new();
    for _ in 0..200 {
        let trace = rng.next_u64() % (spans / 5).max(1).min(logs / 5).max(1);
        let url = format!("{}/api/v1/correlate/{}", server.url, request_uuid(trace));
        let t = Instant::now();
        let (status, body) = get(&url);
        correlations.push(t.elapsed());
        assert_eq!(status, 200, "{url}");
        let view: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert!(
            !view["spans"].as_array().expect("spans").is_empty(),
            "{url}"
        );
    }
    say(&format!(
        "correlate a request uuid over {spans} spans and {logs} logs (HTTP): p50 {:.1} ms, p99 {:.1} ms (goal p99 < 100 ms)",
        percentile(correlations.clone(), 0.5).as_secs_f64() * 1e3,
        percentile(correlations, 0.99).as_secs_f64() * 1e3
    ));

    // TraceQL through Tempo's API, beside the Jaeger API's search.
    let end_s = sextant_ingest::logstash::now_us() / 1_000_000 + 1;
    let window = format!("start={}&end={end_s}", end_s - 3600);
    let traceql = r#"{ resource.service.name = "orders" && duration > 100ms }"#;
    let tempo_url = format!(
        "{}/api/search?q={}&limit=20&spss=3&{window}",
        server.url,
        encode(traceql)
    );
    // Jaeger's start and end are in microseconds.
    let jaeger_url = format!(
        "{}/jaeger/api/traces?service=orders&minDuration=100ms&limit=20&start={}&end={}",
        server.url,
        (end_s - 3600) * 1_000_000,
        end_s * 1_000_000
    );
    let mut tempo = Vec::new();
    let mut jaeger = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let (status, body) = get(&tempo_url);
        tempo.push(t.elapsed());
        assert_eq!(status, 200, "{tempo_url}: {body}");
        let found: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let traces = found["traces"].as_array().expect("traces");
        assert_eq!(traces.len(), 20, "{body}");
        let t = Instant::now();
        let (status, body) = get(&jaeger_url);
        jaeger.push(t.elapsed());
        assert_eq!(status, 200, "{jaeger_url}: {body}");
        let found: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            found["data"].as_array().map(Vec::len),
            Some(20),
            "{jaeger_url}"
        );
    }
    let tempo_p50 = percentile(tempo.clone(), 0.5).as_secs_f64() * 1e3;
    let jaeger_p50 = percentile(jaeger, 0.5).as_secs_f64() * 1e3;
    say(&format!(
        "TraceQL {traceql} over 1 h of {spans} spans (Tempo API, 20 traces): p50 {tempo_p50:.1} ms, p99 {:.1} ms (goal p50 < 100 ms); the Jaeger API's search p50 {jaeger_p50:.1} ms: {:.2}x",
        percentile(tempo, 0.99).as_secs_f64() * 1e3,
        tempo_p50 / jaeger_p50.max(0.001)
    ));
    let mut by_id = Vec::new();
    for _ in 0..200 {
        let trace = rng.next_u64() % (spans / 5).max(1);
        let url = format!("{}/api/v2/traces/{}", server.url, hex(&trace_id(trace)));
        let t = Instant::now();
        let mut answer = ureq::get(&url)
            .header("Accept", "application/protobuf")
            .call()
            .expect("trace by id");
        let body = answer.body_mut().read_to_vec().expect("body");
        by_id.push(t.elapsed());
        assert!(!body.is_empty(), "{url}");
    }
    say(&format!(
        "trace by id over {spans} spans (HTTP, Tempo protobuf): p50 {:.1} ms, p99 {:.1} ms (goal p99 < 20 ms)",
        percentile(by_id.clone(), 0.5).as_secs_f64() * 1e3,
        percentile(by_id, 0.99).as_secs_f64() * 1e3
    ));
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
