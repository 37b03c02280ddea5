//! Remote write 2.0 (`io.prometheus.write.v2.Request`) and exemplars from
//! 1.0 and 2.0, end to end: bodies built from the spec's proto (the
//! messages in `sextant_ingest::remote_write::v2::proto` mirror
//! `prompb/io/prometheus/write/v2/types.proto`), posted to a real Sextant,
//! the `-Written` headers checked and what was stored read back through
//! PromQL and `/api/v1/metadata`.
//!
//! No real sender drives these: Debian's Prometheus is 2.42, and remote
//! write 2.0 arrived in Prometheus 3.0.

use serde_json::Value;
use sextant_ingest::remote_write::v2::{self, proto};
use sextant_ingest::remote_write::{self as v1};
use sextant_tests::{Sextant, series, url_encode};

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// An answer with the headers a 2.0 sender reads.
struct Answer {
    status: u16,
    body: String,
    /// Samples, histograms and exemplars written, as the headers say
    /// (`None` for a header that is missing).
    written: [Option<u64>; 3],
}

fn post(server: &Sextant, content_type: &str, body: &[u8]) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(format!("{}/api/v1/write", server.base_url()))
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "2.0.0")
        .send(body)
        .expect("the server answers");
    let header = |what: &str| {
        response
            .headers()
            .get(format!("x-prometheus-remote-write-{what}-written"))
            .map(|v| v.to_str().unwrap().parse().unwrap())
    };
    let written = [header("samples"), header("histograms"), header("exemplars")];
    Answer {
        status: response.status().as_u16(),
        body: response.body_mut().read_to_string().unwrap_or_default(),
        written,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A symbols table (`""` first) and the refs of strings in it.
struct Symbols(Vec<String>);

impl Symbols {
    fn new() -> Self {
        Self(vec![String::new()])
    }

    fn r#ref(&mut self, text: &str) -> u32 {
        if let Some(at) = self.0.iter().position(|s| s == text) {
            return at as u32;
        }
        self.0.push(text.to_owned());
        (self.0.len() - 1) as u32
    }

    fn labels(&mut self, pairs: &[(&str, &str)]) -> Vec<u32> {
        pairs
            .iter()
            .flat_map(|(n, v)| [self.r#ref(n), self.r#ref(v)])
            .collect()
    }
}

fn sample(timestamp: i64, value: f64, start_timestamp: i64) -> proto::Sample {
    proto::Sample {
        value,
        timestamp,
        start_timestamp,
    }
}

/// The value of an instant query at `time` (ms), as text.
fn query(server: &Sextant, expr: &str, time: i64) -> Value {
    let reply = server.get(&format!(
        "/api/v1/query?query={}&time={}",
        url_encode(expr),
        time as f64 / 1000.0
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["data"]["result"].clone()
}

#[test]
fn a_2_0_request_is_stored_with_metadata_and_start_zeros() {
    let server = Sextant::start();
    let now = now_ms();
    let start = now - 120_000;
    let mut symbols = Symbols::new();
    let requests = symbols.labels(&[("__name__", "http_requests_total"), ("job", "api")]);
    let help = symbols.r#ref("Requests served.");
    let temperature = symbols.labels(&[("__name__", "room_temperature"), ("room", "a")]);
    let celsius = symbols.r#ref("celsius");
    let trace = symbols.labels(&[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]);
    let request = proto::Request {
        symbols: symbols.0.clone(),
        timeseries: vec![
            proto::TimeSeries {
                labels_refs: requests.clone(),
                samples: vec![
                    sample(now - 60_000, 5.0, start),
                    sample(now - 30_000, 7.0, start),
                ],
                exemplars: vec![proto::Exemplar {
                    labels_refs: trace,
                    value: 0.42,
                    timestamp: now - 30_000,
                }],
                metadata: Some(proto::Metadata {
                    r#type: 1,
                    help_ref: help,
                    unit_ref: 0,
                }),
                ..proto::TimeSeries::default()
            },
            proto::TimeSeries {
                labels_refs: temperature,
                samples: vec![sample(now - 30_000, 21.5, 0)],
                metadata: Some(proto::Metadata {
                    r#type: 2,
                    help_ref: 0,
                    unit_ref: celsius,
                }),
                ..proto::TimeSeries::default()
            },
        ],
    };
    let answer = post(&server, V2, &v2::encode(&request));
    assert_eq!(answer.status, 204, "{}", answer.body);
    // The start zero is not counted, as Prometheus does not count it.
    assert_eq!(answer.written, [Some(3), Some(0), Some(1)]);
    let exemplars = server
        .get("/api/v1/query_exemplars?query=http_requests_total")
        .json();
    assert_eq!(
        exemplars["data"],
        serde_json::json!([{
            "seriesLabels": {"__name__": "http_requests_total", "job": "api"},
            "exemplars": [{
                "labels": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
                "value": "0.42",
                "timestamp": (now - 30_000) as f64 / 1000.0,
            }],
        }]),
        "{exemplars}"
    );

    let latest = query(&server, "http_requests_total", now);
    assert_eq!(latest[0]["value"][1], "7", "{latest}");
    assert_eq!(latest[0]["metric"]["job"], "api");
    // The zero at the start, then the two samples.
    let points = query(&server, "count_over_time(http_requests_total[5m])", now);
    assert_eq!(points[0]["value"][1], "3", "{points}");
    let at_start = query(&server, "http_requests_total", start + 1);
    assert_eq!(at_start[0]["value"][1], "0", "{at_start}");
    let room = query(&server, "room_temperature", now);
    assert_eq!(room[0]["value"][1], "21.5", "{room}");

    let metadata = server.get("/api/v1/metadata").json();
    let counter = &metadata["data"]["http_requests_total"][0];
    assert_eq!(counter["type"], "counter", "{metadata}");
    assert_eq!(counter["help"], "Requests served.");
    let gauge = &metadata["data"]["room_temperature"][0];
    assert_eq!(gauge["type"], "gauge", "{metadata}");
    assert_eq!(gauge["unit"], "celsius");

    // The next request repeats the start, as senders do: the zero is not
    // stored again, and nothing is refused.
    let again = proto::Request {
        symbols: symbols.0.clone(),
        timeseries: vec![proto::TimeSeries {
            labels_refs: requests,
            samples: vec![sample(now - 15_000, 9.0, start)],
            ..proto::TimeSeries::default()
        }],
    };
    let answer = post(&server, V2, &v2::encode(&again));
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(answer.written, [Some(1), Some(0), Some(0)]);
    let points = query(&server, "count_over_time(http_requests_total[5m])", now);
    assert_eq!(points[0]["value"][1], "4", "{points}");
}

#[test]
fn histograms_are_stored_and_reported_as_written() {
    let server = Sextant::start();
    let now = now_ms();
    let mut symbols = Symbols::new();
    let latency = symbols.labels(&[("__name__", "request_latency_seconds")]);
    let up = symbols.labels(&[("__name__", "up"), ("job", "api")]);
    let request = proto::Request {
        symbols: symbols.0,
        timeseries: vec![
            proto::TimeSeries {
                labels_refs: latency,
                // An empty integer histogram (schema 0, no observations).
                histograms: vec![proto::Histogram {
                    timestamp: now - 1000,
                    ..proto::Histogram::default()
                }],
                ..proto::TimeSeries::default()
            },
            proto::TimeSeries {
                labels_refs: up,
                samples: vec![sample(now - 1000, 1.0, 0)],
                ..proto::TimeSeries::default()
            },
        ],
    };
    let answer = post(&server, V2, &v2::encode(&request));
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert_eq!(answer.written, [Some(1), Some(1), Some(0)]);
    let up = query(&server, "up", now);
    assert_eq!(up[0]["value"][1], "1", "{up}");
}

#[test]
fn bad_2_0_bodies_are_refused_naming_the_field_and_the_rest_kept() {
    let server = Sextant::start();
    let now = now_ms();
    let mut symbols = Symbols::new();
    let good = symbols.labels(&[("__name__", "kept_total")]);
    let mut odd = symbols.labels(&[("__name__", "odd_total")]);
    odd.pop();
    let request = proto::Request {
        symbols: symbols.0.clone(),
        timeseries: vec![
            proto::TimeSeries {
                labels_refs: good.clone(),
                samples: vec![sample(now - 1000, 3.0, 0)],
                ..proto::TimeSeries::default()
            },
            proto::TimeSeries {
                labels_refs: odd,
                samples: vec![sample(now - 1000, 4.0, 0)],
                ..proto::TimeSeries::default()
            },
            proto::TimeSeries {
                labels_refs: vec![1, 999],
                samples: vec![sample(now - 1000, 5.0, 0)],
                ..proto::TimeSeries::default()
            },
            proto::TimeSeries {
                labels_refs: good,
                samples: vec![sample(now - 500, 6.0, 0)],
                exemplars: vec![proto::Exemplar {
                    labels_refs: vec![1],
                    value: 1.0,
                    timestamp: now - 500,
                }],
                ..proto::TimeSeries::default()
            },
        ],
    };
    let answer = post(&server, V2, &v2::encode(&request));
    assert_eq!(answer.status, 400, "{}", answer.body);
    for named in [
        "timeseries[1].labels_refs: odd length (1)",
        "timeseries[2].labels_refs[1]: 999 is outside the symbols table",
        "timeseries[3].exemplars[0].labels_refs: odd length (1)",
    ] {
        assert!(answer.body.contains(named), "{named}: {}", answer.body);
    }
    // Both good samples were kept, as Prometheus keeps them.
    assert_eq!(answer.written, [Some(2), Some(0), Some(0)]);
    let kept = query(&server, "count_over_time(kept_total[5m])", now);
    assert_eq!(kept[0]["value"][1], "2", "{kept}");
    assert_eq!(query(&server, "odd_total", now), serde_json::json!([]));

    // A request refused whole still says nothing was written.
    let bad_symbols = proto::Request {
        symbols: vec!["not empty".into(), "__name__".into()],
        timeseries: vec![],
    };
    let answer = post(&server, V2, &v2::encode(&bad_symbols));
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(
        answer.body.contains("symbols[0] must be empty"),
        "{}",
        answer.body
    );
    assert_eq!(answer.written, [Some(0), Some(0), Some(0)]);
    let answer = post(&server, V2, b"not snappy");
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.written, [Some(0), Some(0), Some(0)]);

    // An unknown message is a 415 that names it.
    let answer = post(
        &server,
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        &v2::encode(&request),
    );
    assert_eq!(answer.status, 415, "{}", answer.body);
    assert!(answer.body.contains("io.prometheus.write.v3.Request"));
}

#[test]
fn exemplars_from_1_0_are_read_and_long_ones_refused_by_name() {
    let server = Sextant::start();
    let now = now_ms();
    let exemplar = |trace: &str| v1::proto::Exemplar {
        labels: vec![v1::proto::Label {
            name: "trace_id".into(),
            value: trace.into(),
        }],
        value: 0.3,
        timestamp: now - 1000,
    };
    let mut with_exemplars = series(
        &[("__name__", "latency_seconds_bucket"), ("le", "0.5")],
        &[(now - 1000, 12.0)],
    );
    with_exemplars.exemplars = vec![exemplar("4bf92f3577b34da6a3ce929d0e0e4736")];
    let reply = server.remote_write(vec![with_exemplars.clone()]);
    assert_eq!(reply.status, 204, "{}", reply.body);

    with_exemplars.samples[0].timestamp = now - 500;
    with_exemplars.exemplars = vec![exemplar(&"f".repeat(200))];
    let reply = server.remote_write(vec![with_exemplars]);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("timeseries[0].exemplars[0]: exemplar labels hold 208 characters"),
        "{}",
        reply.body
    );
    // The samples beside it were kept.
    let kept = query(&server, "count_over_time(latency_seconds_bucket[5m])", now);
    assert_eq!(kept[0]["value"][1], "2", "{kept}");
    let refused = server.metric(
        "sextant_remote_write_refused_total",
        &[("what", "exemplar")],
    );
    assert_eq!(refused, Some(1.0));
    // The valid one was kept, on its series.
    let kept = server
        .get("/api/v1/query_exemplars?query=latency_seconds_bucket")
        .json();
    assert_eq!(
        kept["data"][0]["exemplars"][0]["labels"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{kept}"
    );
    assert_eq!(kept["data"][0]["seriesLabels"]["le"], "0.5", "{kept}");
}
