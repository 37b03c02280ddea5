//! Native histograms on every path that carries them, end to end: a
//! protobuf exposition served by the test and scraped by both Debian's
//! Prometheus 2.42 (`--enable-feature=native-histograms`, remote-writing
//! them with `send_native_histograms: true`) and Sextant; remote write 1.0
//! and 2.0 bodies with integer, float and custom-bucket histograms and bad
//! ones; the OpenTelemetry Python SDK's exponential histograms over OTLP
//! gRPC and HTTP.
//!
//! What is stored is read back through `/api/v1/series`,
//! `sextant_tsdb_histograms_appended_total` and PromQL, compared with what
//! Prometheus answers over the same data (`histogram_count`,
//! `histogram_sum`, `histogram_quantile`, `rate`).

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_ingest::prom_proto::proto as expo;
use sextant_ingest::remote_write::{self as v1, proto::histogram, v2};
use sextant_tests::{Prometheus, Sextant, run_python, url_encode};

/// A protobuf exposition of `rpc_duration_seconds`, a native histogram
/// (schema 0) that grows by one observation in buckets 1 and 3 and the
/// zero bucket on every scrape.
fn exposition(scrapes: u64) -> Vec<u8> {
    let n = scrapes + 1;
    let histogram = expo::Histogram {
        sample_count: 3 * n,
        sample_sum: 4.5 * n as f64,
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: n,
        positive_span: vec![
            expo::BucketSpan {
                offset: 1,
                length: 1,
            },
            expo::BucketSpan {
                offset: 1,
                length: 1,
            },
        ],
        positive_delta: vec![n as i64, 0],
        ..expo::Histogram::default()
    };
    expo::encode(&[expo::MetricFamily {
        name: "rpc_duration_seconds".into(),
        help: "RPC latency.".into(),
        r#type: 4,
        metric: vec![expo::Metric {
            label: vec![expo::LabelPair {
                name: "method".into(),
                value: "get".into(),
            }],
            histogram: Some(histogram),
            ..expo::Metric::default()
        }],
        unit: String::new(),
    }])
}

/// Serves [`exposition`] over HTTP/1.0 on a thread; its address.
fn serve_exposition() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let scrapes = Arc::new(AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = exposition(scrapes.fetch_add(1, Ordering::SeqCst));
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                sextant_ingest::prom_proto::CONTENT_TYPE,
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    address
}

fn series_count(server: &Sextant, selector: &str) -> usize {
    server
        .get(&format!("/api/v1/series?match[]={}", url_encode(selector)))
        .json()["data"]
        .as_array()
        .map_or(0, Vec::len)
}

fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Sextant scraping `address` itself, and Prometheus 2.42 scraping it and
/// remote-writing to Sextant.
fn scraped_twice(address: &str) -> (Sextant, Prometheus, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sextant.yaml");
    std::fs::write(
        &path,
        format!(
            "scrape_configs:\n  - job_name: direct\n    scrape_interval: 1s\n    scrape_native_histograms: true\n    static_configs: [{{targets: ['{address}']}}]\n"
        ),
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", path.to_str().unwrap()])
        .start();
    let prometheus = Prometheus::start(
        &format!(
            "global: {{scrape_interval: 1s}}\nremote_write:\n  - url: {}/api/v1/write\n    send_native_histograms: true\nscrape_configs:\n  - job_name: relayed\n    static_configs: [{{targets: ['{address}']}}]\n",
            server.base_url()
        ),
        &["--enable-feature=native-histograms"],
    );
    (server, prometheus, dir)
}

#[test]
fn a_protobuf_exposition_reaches_sextant_scraped_and_remote_written() {
    let address = serve_exposition();
    let (server, prometheus, _dir) = scraped_twice(&address);
    wait_for("both jobs' histograms in Sextant", || {
        series_count(&server, "rpc_duration_seconds{job=\"direct\"}") == 1
            && series_count(&server, "rpc_duration_seconds{job=\"relayed\"}") == 1
    });
    // Native histograms only: no classic series were made of them.
    assert_eq!(series_count(&server, "rpc_duration_seconds_count"), 0);
    assert!(
        server
            .metric("sextant_tsdb_histograms_appended_total", &[])
            .is_some_and(|n| n >= 2.0),
        "{}",
        prometheus.logs()
    );
    assert_eq!(
        server.metric(
            "sextant_remote_write_refused_total",
            &[("what", "histogram")]
        ),
        Some(0.0)
    );
}

/// PromQL over both copies agrees with Prometheus's own answers.
#[test]
fn sextant_and_prometheus_agree_on_the_same_histograms() {
    let address = serve_exposition();
    let (server, prometheus, _dir) = scraped_twice(&address);
    // Until Prometheus has scraped for a few seconds (it may start late).
    let prometheus_has = |ago: f64| {
        let now = prometheus.get_json("/api/v1/query?query=time()")["data"]["result"][0]
            .as_f64()
            .unwrap_or(0.0);
        let answer = prometheus.get_json(&format!(
            "/api/v1/query?query=histogram_count(rpc_duration_seconds)&time={}",
            now - ago
        ));
        answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    };
    let started = Instant::now();
    while !prometheus_has(6.0) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus never scraped"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let scalar = |json: &Value| -> Option<f64> {
        json["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    };
    for expr in [
        "histogram_count(rpc_duration_seconds)",
        "histogram_sum(rpc_duration_seconds)",
        "histogram_quantile(0.5, rpc_duration_seconds)",
        "histogram_count(rate(rpc_duration_seconds[5s]))",
    ] {
        // Prometheus's own copy, at a time both have.
        let time = prometheus.get_json("/api/v1/query?query=time()")["data"]["result"][0]
            .as_f64()
            .unwrap_or(0.0)
            - 2.0;
        let their_answer = prometheus.get_json(&format!(
            "/api/v1/query?query={}&time={time}",
            url_encode(expr)
        ));
        let theirs = scalar(&their_answer);
        for job in ["direct", "relayed"] {
            let ours_expr = expr.replace(
                "rpc_duration_seconds",
                &format!("rpc_duration_seconds{{job=\"{job}\"}}"),
            );
            let ours = scalar(
                &server
                    .get(&format!(
                        "/api/v1/query?query={}&time={time}",
                        url_encode(&ours_expr)
                    ))
                    .json(),
            );
            assert!(
                ours.is_some() && theirs.is_some(),
                "{expr}: {ours:?} {theirs:?}: Prometheus answered {their_answer}"
            );
            let (ours, theirs) = (ours.unwrap(), theirs.unwrap());
            // The same target scraped at slightly different moments: counts
            // within one scrape's growth, ratios equal.
            if expr.starts_with("histogram_quantile") {
                // The same bucket and the same rank within it. Prometheus
                // 2.42 interpolates linearly inside a bucket; Prometheus 3
                // (and Sextant, as the shared test data expects)
                // exponentially: at fraction f of the schema-0 bucket
                // (l, 2l], 2.42 says l(1 + f) and 3 says l * 2^f.
                let lower = 2f64.powf(theirs.log2().floor());
                let f = (theirs - lower) / lower;
                let expected = lower * 2f64.powf(f);
                assert!(
                    (ours - expected).abs() < 1e-9,
                    "{expr} ({job}): {ours}, Prometheus 2.42 {theirs}, so {expected} expected"
                );
            } else {
                assert!(
                    (ours - theirs).abs() <= 5.0,
                    "{expr} ({job}): {ours} vs {theirs}"
                );
            }
        }
    }
}

fn written(reply: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    reply
        .headers()
        .get("x-prometheus-remote-write-histograms-written")
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

fn span(offset: i32, length: u32) -> v1::proto::BucketSpan {
    v1::proto::BucketSpan { offset, length }
}

/// An integer, a float and a custom-bucket histogram, and a bad one
/// (spans that need two buckets, one given).
fn histograms(t: i64) -> [v1::proto::Histogram; 4] {
    let int = v1::proto::Histogram {
        count: Some(histogram::Count::CountInt(3)),
        sum: 6.0,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![span(0, 2)],
        positive_deltas: vec![1, 0],
        timestamp: t,
        ..v1::proto::Histogram::default()
    };
    let float = v1::proto::Histogram {
        count: Some(histogram::Count::CountFloat(2.5)),
        sum: 1.0,
        schema: 0,
        positive_spans: vec![span(-1, 1)],
        positive_counts: vec![2.5],
        timestamp: t,
        ..v1::proto::Histogram::default()
    };
    let nhcb = v1::proto::Histogram {
        count: Some(histogram::Count::CountInt(4)),
        sum: 0.9,
        schema: -53,
        positive_spans: vec![span(0, 3)],
        positive_deltas: vec![2, -1, 0],
        custom_values: vec![0.1, 0.5],
        timestamp: t,
        ..v1::proto::Histogram::default()
    };
    let bad = v1::proto::Histogram {
        positive_deltas: vec![1],
        ..int.clone()
    };
    [int, float, nhcb, bad]
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn post(server: &Sextant, content_type: &str, body: Vec<u8>) -> (u16, Option<u64>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut reply = agent
        .post(format!("{}/api/v1/write", server.base_url()))
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .send(&body[..])
        .unwrap();
    let written = written(&reply);
    let text = reply.body_mut().read_to_string().unwrap_or_default();
    (reply.status().as_u16(), written, text)
}

#[test]
fn remote_write_histograms_are_stored_and_bad_ones_named() {
    let server = Sextant::start();
    let t = now_ms();
    // 1.0: one series per kind.
    let [int, float, nhcb, bad] = histograms(t);
    let series = |name: &str, h: Vec<v1::proto::Histogram>| v1::proto::TimeSeries {
        labels: vec![v1::proto::Label {
            name: "__name__".into(),
            value: name.into(),
        }],
        histograms: h,
        ..v1::proto::TimeSeries::default()
    };
    let request = v1::proto::WriteRequest {
        timeseries: vec![
            series("v1_int", vec![int.clone()]),
            series("v1_float", vec![float.clone()]),
            series("v1_nhcb", vec![nhcb.clone()]),
            series("v1_bad", vec![bad]),
        ],
        metadata: vec![],
    };
    let (status, _, body) = post(&server, "application/x-protobuf", v1::encode(&request));
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("stored 0 samples and 3 histograms")
            && body.contains("timeseries[3].histograms[0].positive_spans: positive side: spans need 2 buckets, have 1 buckets"),
        "{body}"
    );
    for name in ["v1_int", "v1_float", "v1_nhcb"] {
        assert_eq!(series_count(&server, name), 1, "{name}");
    }
    assert_eq!(series_count(&server, "v1_bad"), 0);

    // 2.0: the header tells what was stored.
    let symbols: Vec<String> = ["", "__name__", "v2_int", "v2_float", "v2_nhcb"]
        .map(String::from)
        .to_vec();
    let series = |name: u32, h: v1::proto::Histogram| v2::proto::TimeSeries {
        labels_refs: vec![1, name],
        histograms: vec![v1::proto::Histogram {
            timestamp: t + 1000,
            ..h
        }],
        ..v2::proto::TimeSeries::default()
    };
    let request = v2::proto::Request {
        symbols,
        timeseries: vec![series(2, int), series(3, float), series(4, nhcb)],
    };
    let (status, histograms, body) = post(
        &server,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        v2::encode(&request),
    );
    assert_eq!((status, histograms), (204, Some(3)), "{body}");
    let mut bad_request = request;
    bad_request.timeseries[0].histograms[0].schema = 11;
    bad_request.timeseries[0].histograms[0].timestamp += 1000;
    let (status, histograms, body) = post(
        &server,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        v2::encode(&bad_request),
    );
    assert_eq!(status, 400, "{body}");
    // The float and NHCB ones were at the same time as before: the store
    // keeps them (equal duplicates) or refuses them, but never the bad one.
    assert!(histograms.is_some_and(|n| n <= 2), "{histograms:?}");
    assert!(
        body.contains("timeseries[0].histograms[0].schema: histogram has an invalid schema"),
        "{body}"
    );
    assert!(
        server
            .metric("sextant_tsdb_histograms_appended_total", &[])
            .is_some_and(|n| n >= 6.0)
    );
}

/// The OpenTelemetry SDK with exponential histograms; prints `True True`.
const SDK: &str = r#"
import sys
from opentelemetry.sdk.metrics import MeterProvider, Histogram
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import View, ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

transport, endpoint, service = sys.argv[1:4]
if transport == 'grpc':
    exporter = Grpc(endpoint=endpoint, insecure=True, timeout=10)
else:
    exporter = Http(endpoint=endpoint + '/v1/metrics', timeout=10)
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3600000)
view = View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation())
provider = MeterProvider(resource=Resource.create({'service.name': service}),
                         metric_readers=[reader], views=[view])
latency = provider.get_meter('checkout').create_histogram('checkout.latency', unit='ms')
for ms in (3, 12, 12.5, 250, 0):
    latency.record(ms, {'route': '/pay'})
first = reader.force_flush(timeout_millis=10000)
latency.record(40, {'route': '/pay'})
second = reader.force_flush(timeout_millis=10000)
provider.shutdown()
print(first, second)
"#;

fn otlp_exponential(transport: &str) {
    let server = Sextant::start();
    let endpoint = match transport {
        "grpc" => format!("http://{}", server.addr("otlp_grpc", "tcp")),
        _ => format!("http://{}", server.addr("otlp_http", "tcp")),
    };
    let service = format!("checkout-{transport}");
    let out = run_python(SDK, &[transport, &endpoint, &service]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["True", "True"]);
    let selector = format!("checkout_latency_milliseconds{{job=\"{service}\",route=\"/pay\"}}");
    assert_eq!(series_count(&server, &selector), 1);
    // Two flushes, and a third export at shutdown.
    assert_eq!(
        server.metric("sextant_tsdb_histograms_appended_total", &[]),
        Some(3.0)
    );
    // No classic series were made of them.
    assert_eq!(
        series_count(&server, "checkout_latency_milliseconds_bucket"),
        0
    );
    let query = |q: &str| {
        server.wait_for_query(q, |r| r.as_array().is_some_and(|a| a.len() == 1))[0]["value"][1]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(query(&format!("histogram_count({selector})")), "6");
    assert_eq!(query(&format!("histogram_sum({selector})")), "317.5");
}

#[test]
fn the_python_sdk_exports_exponential_histograms_over_grpc() {
    otlp_exponential("grpc");
}

#[test]
fn the_python_sdk_exports_exponential_histograms_over_http() {
    otlp_exponential("http");
}
