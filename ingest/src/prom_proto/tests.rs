use super::proto::*;
use super::proto::{Bucket, Summary};
use super::*;

fn label(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: name.into(),
        value: value.into(),
    }
}

fn family(name: &str, kind: i32, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: name.into(),
        help: format!("{name} help"),
        r#type: kind,
        metric,
        unit: String::new(),
    }
}

fn exemplar(value: f64, seconds: Option<i64>) -> Exemplar {
    Exemplar {
        label: vec![label("trace_id", "abc")],
        value,
        timestamp: seconds.map(|seconds| Timestamp { seconds, nanos: 0 }),
    }
}

/// A histogram with both classic buckets (le 1, 2; no +Inf) and native
/// parts: schema 0, buckets 1 and 2 with 2 and 1 observations, 1 in the
/// zero bucket.
fn both() -> proto::Histogram {
    proto::Histogram {
        sample_count: 4,
        sample_sum: 3.5,
        bucket: vec![
            Bucket {
                cumulative_count: 3,
                upper_bound: 1.0,
                exemplar: Some(exemplar(0.7, None)),
                ..Bucket::default()
            },
            Bucket {
                cumulative_count: 4,
                upper_bound: 2.0,
                exemplar: Some(exemplar(1.5, Some(100))),
                ..Bucket::default()
            },
        ],
        schema: 0,
        zero_threshold: 1e-128,
        zero_count: 1,
        positive_span: vec![BucketSpan {
            offset: 1,
            length: 2,
        }],
        positive_delta: vec![2, -1],
        ..proto::Histogram::default()
    }
}

fn histogram_metric(h: proto::Histogram) -> Metric {
    Metric {
        label: vec![label("path", "/a")],
        histogram: Some(h),
        ..Metric::default()
    }
}

fn names(e: &Exposition) -> Vec<String> {
    e.samples.iter().map(ProtoSample::key).collect()
}

const NATIVE: Options = Options {
    native_histograms: true,
    keep_classic: false,
    convert_to_nhcb: false,
};

#[test]
fn counters_gauges_and_summaries_read_as_prometheus_reads_them() {
    let body = encode(&[
        family(
            "requests_total",
            0,
            vec![Metric {
                label: vec![label("code", "200")],
                counter: Some(Counter {
                    value: 7.0,
                    exemplar: Some(exemplar(1.0, Some(5))),
                    start_timestamp: Some(Timestamp {
                        seconds: 1,
                        nanos: 0,
                    }),
                }),
                timestamp_ms: 1234,
                ..Metric::default()
            }],
        ),
        family(
            "temperature",
            1,
            vec![Metric {
                gauge: Some(Gauge { value: -3.5 }),
                ..Metric::default()
            }],
        ),
        family(
            "rpc_seconds",
            2,
            vec![Metric {
                summary: Some(Summary {
                    sample_count: 10,
                    sample_sum: 2.5,
                    quantile: vec![
                        Quantile {
                            quantile: 0.5,
                            value: 0.2,
                        },
                        Quantile {
                            quantile: 1.0,
                            value: 0.9,
                        },
                    ],
                    start_timestamp: None,
                }),
                ..Metric::default()
            }],
        ),
        family("empty", 1, vec![]),
    ]);
    let e = parse(&body, Options::default());
    assert!(e.errors.is_empty(), "{:?}", e.errors);
    assert_eq!(
        names(&e),
        [
            "requests_total{code=\"200\",}",
            "temperature{}",
            "rpc_seconds_count{}",
            "rpc_seconds_sum{}",
            "rpc_seconds{quantile=\"0.5\",}",
            "rpc_seconds{quantile=\"1.0\",}",
        ]
    );
    let counter = &e.samples[0];
    assert_eq!(counter.value, SampleValue::Float(7.0));
    assert_eq!(counter.timestamp_ms, Some(1234));
    assert_eq!(counter.exemplars[0].timestamp_ms, Some(5000));
    assert_eq!(e.samples[1].timestamp_ms, None);
    assert_eq!(e.samples[2].value, SampleValue::Float(10.0));
    let kinds: Vec<&str> = e.families.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, ["counter", "gauge", "summary"]);
    assert_eq!(e.families[2].help, "rpc_seconds help");
}

#[test]
fn a_histogram_with_native_parts_is_one_native_histogram() {
    let body = encode(&[family("latency", 4, vec![histogram_metric(both())])]);
    let e = parse(&body, NATIVE);
    assert!(e.errors.is_empty(), "{:?}", e.errors);
    assert_eq!(names(&e), ["latency{path=\"/a\",}"]);
    let SampleValue::Histogram(HistogramValue::Int(h)) = &e.samples[0].value else {
        panic!("{:?}", e.samples[0].value)
    };
    assert_eq!((h.count, h.zero_count, h.sum, h.schema), (4, 1, 3.5, 0));
    assert_eq!(h.positive_buckets, [2, -1]);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Unknown);
    // Only the exemplar with a timestamp goes with a native histogram.
    assert_eq!(e.samples[0].exemplars.len(), 1);
    assert_eq!(e.samples[0].exemplars[0].value, 1.5);

    // With always_scrape_classic_histograms the classic series follow.
    let keep = Options {
        keep_classic: true,
        ..NATIVE
    };
    let e = parse(&body, keep);
    assert_eq!(
        names(&e),
        [
            "latency{path=\"/a\",}",
            "latency_count{path=\"/a\",}",
            "latency_sum{path=\"/a\",}",
            "latency_bucket{path=\"/a\",le=\"1.0\",}",
            "latency_bucket{path=\"/a\",le=\"2.0\",}",
            "latency_bucket{path=\"/a\",le=\"+Inf\",}",
        ]
    );
    // A classic bucket keeps its exemplar, timestamp or not.
    assert_eq!(e.samples[3].exemplars[0].value, 0.7);
    assert_eq!(e.samples[5].value, SampleValue::Float(4.0));

    // Without scrape_native_histograms only the classic series.
    let e = parse(&body, Options::default());
    assert_eq!(e.samples.len(), 5);
    assert!(
        e.samples
            .iter()
            .all(|s| matches!(s.value, SampleValue::Float(_)))
    );
}

#[test]
fn float_and_gauge_histograms() {
    let float = proto::Histogram {
        sample_count_float: 2.5,
        sample_sum: 1.0,
        schema: 2,
        zero_threshold: 0.001,
        zero_count_float: 0.5,
        negative_span: vec![BucketSpan {
            offset: 0,
            length: 1,
        }],
        negative_count: vec![2.0],
        ..proto::Histogram::default()
    };
    let body = encode(&[family("g", 5, vec![histogram_metric(float)])]);
    let e = parse(&body, NATIVE);
    assert!(e.errors.is_empty(), "{:?}", e.errors);
    let SampleValue::Histogram(HistogramValue::Float(h)) = &e.samples[0].value else {
        panic!("{:?}", e.samples[0].value)
    };
    assert_eq!((h.count, h.zero_count, h.schema), (2.5, 0.5, 2));
    assert_eq!(h.negative_buckets, [2.0]);
    assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
    assert_eq!(e.families[0].kind, "gaugehistogram");
}

#[test]
fn classic_histograms_convert_to_custom_buckets() {
    let mut classic = both();
    classic.zero_threshold = 0.0;
    classic.zero_count = 0;
    classic.positive_span.clear();
    classic.positive_delta.clear();
    let body = encode(&[family("latency", 4, vec![histogram_metric(classic)])]);
    let nhcb = Options {
        convert_to_nhcb: true,
        ..NATIVE
    };
    let e = parse(&body, nhcb);
    assert!(e.errors.is_empty(), "{:?}", e.errors);
    assert_eq!(names(&e), ["latency{path=\"/a\",}"]);
    let SampleValue::Histogram(HistogramValue::Int(h)) = &e.samples[0].value else {
        panic!("{:?}", e.samples[0].value)
    };
    assert_eq!(h.schema, -53);
    assert_eq!(h.custom_values, [1.0, 2.0]);
    assert_eq!(h.count, 4);
    let absolute: Vec<u64> = h.positive_buckets().map(|b| b.count).collect();
    assert_eq!(absolute, [3, 1]);
    // And the classic series too, when asked.
    let e = parse(
        &body,
        Options {
            keep_classic: true,
            ..nhcb
        },
    );
    assert_eq!(e.samples.len(), 6);
}

#[test]
fn bad_input_is_named_and_the_rest_kept() {
    let mut bad = both();
    bad.positive_delta = vec![2];
    let good = family(
        "up",
        1,
        vec![Metric {
            gauge: Some(Gauge { value: 1.0 }),
            ..Metric::default()
        }],
    );
    let mut with_good_metric = family("latency", 4, vec![histogram_metric(bad)]);
    with_good_metric.metric.push(histogram_metric(both()));
    let unknown_type = family("odd", 9, vec![Metric::default()]);
    let mut body = encode(&[with_good_metric, unknown_type, good]);
    let e = parse(&body, NATIVE);
    assert_eq!(e.errors.len(), 2, "{:?}", e.errors);
    assert!(
        e.errors[0].starts_with("metric family \"latency\": \"latency\" metric 0: native histogram: positive side: spans need 2 buckets, have 1 buckets"),
        "{}",
        e.errors[0]
    );
    assert!(
        e.errors[1].contains("metric family 2: \"odd\": unknown metric type 9"),
        "{}",
        e.errors[1]
    );
    assert_eq!(names(&e), ["latency{path=\"/a\",}", "up{}"]);
    // A length prefix past the end stops the reading, keeping what came before.
    body.extend_from_slice(&[0x20, 1, 2]);
    let e = parse(&body, NATIVE);
    assert_eq!(e.samples.len(), 2);
    assert!(
        e.errors.last().unwrap().contains("after metric family 3"),
        "{:?}",
        e.errors
    );
    // A family that does not decode is skipped.
    let e = parse(&[3, 0x0a, 5, b'x'], NATIVE);
    assert!(
        e.errors[0].starts_with("metric family 1:"),
        "{:?}",
        e.errors
    );
}

#[test]
fn labels_cannot_multiply_past_the_budget() {
    // One metric with a long label and a classic histogram of many buckets.
    let buckets = (0..2000)
        .map(|i| Bucket {
            cumulative_count: i,
            upper_bound: i as f64,
            ..Bucket::default()
        })
        .collect();
    let metric = Metric {
        label: vec![label("big", &"x".repeat(100_000))],
        histogram: Some(proto::Histogram {
            sample_count: 2000,
            bucket: buckets,
            ..proto::Histogram::default()
        }),
        ..Metric::default()
    };
    let body = encode(&[family("h", 4, vec![metric])]);
    let e = parse(&body, Options::default());
    assert!(e.samples.is_empty());
    assert!(e.errors[0].contains("bytes of labels"), "{:?}", e.errors);
}

#[test]
fn floats_are_written_as_openmetrics_writes_them() {
    assert_eq!(om_float(1.0), "1.0");
    assert_eq!(om_float(0.25), "0.25");
    assert_eq!(om_float(1e6), "1e+06");
    assert_eq!(om_float(f64::INFINITY), "+Inf");
    assert_eq!(om_float(-2.0), "-2.0");
}

#[test]
fn the_content_type_is_recognised() {
    assert!(is_protobuf(CONTENT_TYPE));
    assert!(is_protobuf(
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    ));
    assert!(!is_protobuf(
        "application/vnd.google.protobuf; proto=other.Message"
    ));
    assert!(!is_protobuf("text/plain; version=0.0.4"));
}
