//! Prometheus's test tables for `model/histogram` (prometheus/prometheus,
//! commit d15adb9ad7, Apache-2.0: `float_histogram_test.go` and
//! `histogram_test.go`), re-expressed in Rust case by case. Each case
//! keeps its Go name; the checks (in `mod.rs`) follow the Go test loops.

// Go's tables scale by 3.1415 here and there.
#![allow(clippy::approx_constant)]

use super::*;

/// Prometheus: `TestFloatHistogramAdd`.
#[test]
fn prometheus_float_histogram_add() {
    check_add(
        "same bucket layout",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 19.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![4.0, 2.0, 9.0, 10.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "same bucket layout, defined differently",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (1, 1), (0, 2)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(-2, 2), (1, 2), (0, 1)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            negative_spans: spans(&[(3, 7)]),
            negative_buckets: vec![1.0, 1.0, 0.0, 0.0, 0.0, 4.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 19.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-2, 2), (1, 1), (0, 2)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
            negative_spans: spans(&[(3, 5), (0, 2)]),
            negative_buckets: vec![4.0, 2.0, 0.0, 0.0, 0.0, 9.0, 10.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "non-overlapping spans",
        FloatHistogram {
            zero_threshold: 0.001,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.001,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(0, 2), (3, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
            negative_spans: spans(&[(-9, 2), (3, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.001,
            zero_count: 19.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-2, 4), (0, 6)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
            negative_spans: spans(&[(-9, 2), (3, 2), (5, 2), (3, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "non-overlapping spans inverted order",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(0, 2), (3, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
            negative_spans: spans(&[(-6, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 19.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-2, 2), (0, 5), (0, 3)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
            negative_spans: spans(&[(-6, 2), (1, 2), (4, 2), (3, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0, 3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "overlapping spans",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(-1, 4), (0, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 19.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-2, 4), (0, 4)]),
            positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "overlapping spans inverted order",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(-1, 4), (0, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 19.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-2, 5), (0, 3)]),
            positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "schema change",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            schema: 0,
            positive_spans: spans(&[(-1, 4), (0, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            schema: 1,
            positive_spans: spans(&[(-4, 3), (5, 5)]),
            positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
            negative_spans: spans(&[(6, 3), (6, 4)]),
            negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 19.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-2, 5), (0, 3)]),
            positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "larger zero bucket in first histogram",
        FloatHistogram {
            zero_threshold: 1.0,
            zero_count: 17.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(1, 2), (0, 3)]),
            positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 1.0,
            zero_count: 29.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(1, 2), (0, 3)]),
            positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "larger zero bucket in second histogram",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 1.0,
            zero_count: 17.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(1, 2), (0, 3)]),
            positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 1.0,
            zero_count: 29.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(1, 5)]),
            positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "larger zero threshold in first histogram ends up inside a populated bucket of second histogram",
        FloatHistogram {
            zero_threshold: 0.2,
            zero_count: 17.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(1, 2), (0, 3)]),
            positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.25,
            zero_count: 29.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-1, 1), (1, 5)]),
            positive_buckets: vec![0.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "larger zero threshold in second histogram ends up inside a populated bucket of first histogram",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            positive_spans: spans(&[(-2, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.2,
            zero_count: 17.0,
            count: 21.0,
            sum: 1.234,
            positive_spans: spans(&[(1, 2), (0, 3)]),
            positive_buckets: vec![2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.25,
            zero_count: 29.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(1, 5)]),
            positive_buckets: vec![2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "schema change combined with larger zero bucket in second histogram",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            schema: 0,
            positive_spans: spans(&[(-2, 5), (0, 3)]),
            positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.25,
            zero_count: 12.0,
            count: 30.0,
            sum: 2.345,
            schema: 1,
            positive_spans: spans(&[(-3, 2), (5, 5)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
            negative_spans: spans(&[(6, 3), (6, 4)]),
            negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.25,
            zero_count: 22.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-1, 7)]),
            positive_buckets: vec![6.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "schema change combined with larger zero bucket in first histogram",
        FloatHistogram {
            zero_threshold: 0.25,
            zero_count: 8.0,
            count: 21.0,
            sum: 1.234,
            schema: 0,
            positive_spans: spans(&[(-1, 4), (0, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
            negative_spans: spans(&[(4, 2), (1, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 2.345,
            schema: 1,
            positive_spans: spans(&[(-4, 3), (5, 5)]),
            positive_buckets: vec![1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 3.0, 4.0],
            negative_spans: spans(&[(6, 3), (6, 4)]),
            negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.25,
            zero_count: 20.0,
            count: 51.0,
            sum: 3.579,
            positive_spans: spans(&[(-1, 4), (0, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![3.0, 2.0, 1.0, 4.0, 9.0, 6.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "same custom bucket layout",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 2.345,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 11.0,
            sum: 1.234,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 26.0,
            sum: 3.579,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "same custom bucket layout, defined differently",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 2.345,
            positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 11.0,
            sum: 1.234,
            positive_spans: spans(&[(0, 2), (1, 2), (0, 1)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 26.0,
            sum: 3.579,
            positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 7.0, 13.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "non-overlapping spans with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 2.345,
            positive_spans: spans(&[(0, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 20.0,
            sum: 1.234,
            positive_spans: spans(&[(2, 2), (3, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 35.0,
            sum: 3.579,
            positive_spans: spans(&[(0, 4), (0, 6)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "non-overlapping spans inverted order with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 20.0,
            sum: 1.234,
            positive_spans: spans(&[(2, 2), (3, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 2.345,
            positive_spans: spans(&[(0, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 35.0,
            sum: 3.579,
            positive_spans: spans(&[(0, 4), (0, 6)]),
            positive_buckets: vec![1.0, 0.0, 5.0, 4.0, 3.0, 4.0, 7.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "overlapping spans with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 2.345,
            positive_spans: spans(&[(0, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 27.0,
            sum: 1.234,
            positive_spans: spans(&[(1, 4), (0, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 42.0,
            sum: 3.579,
            positive_spans: spans(&[(0, 4), (0, 4)]),
            positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "overlapping spans inverted order with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 27.0,
            sum: 1.234,
            positive_spans: spans(&[(1, 4), (0, 3)]),
            positive_buckets: vec![5.0, 4.0, 2.0, 3.0, 6.0, 2.0, 5.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 2.345,
            positive_spans: spans(&[(0, 2), (2, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 42.0,
            sum: 3.579,
            positive_spans: spans(&[(0, 4), (0, 4)]),
            positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 6.0, 10.0, 9.0, 5.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_add(
        "custom buckets with partial intersection",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 10.0,
            sum: 100.0,
            positive_spans: spans(&[(0, 3)]),
            positive_buckets: vec![2.0, 3.0, 5.0],
            custom_values: vec![1.0, 2.5],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 8.0,
            sum: 80.0,
            positive_spans: spans(&[(0, 4)]),
            positive_buckets: vec![1.0, 2.0, 3.0, 2.0],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 18.0,
            sum: 180.0,
            positive_spans: spans(&[(0, 2)]),
            positive_buckets: vec![3.0, 15.0],
            custom_values: vec![1.0],
            ..Default::default()
        }),
        "",
        false,
        true,
    );
    check_add(
        "different custom bucket layout - intersection and rollup",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0,
            sum: 2.345,
            positive_spans: spans(&[(0, 1), (1, 1)]),
            positive_buckets: vec![1.0, 5.0],
            custom_values: vec![2.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 220.0,
            sum: 1.234,
            positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
            positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 226.0,
            sum: 3.579,
            positive_spans: spans(&[(0, 3)]),
            positive_buckets: vec![((1.0 + 10.0) + 20.0), 40.0, ((5.0 + 50.0) + 100.0)],
            custom_values: vec![2.0, 4.0],
            ..Default::default()
        }),
        "",
        false,
        true,
    );
    check_add(
        "custom buckets with no common boundaries except +Inf",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 50.0,
            positive_spans: spans(&[(0, 2)]),
            positive_buckets: vec![1.0, 2.0],
            custom_values: vec![1.5],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 30.0,
            sum: 40.0,
            positive_spans: spans(&[(0, 2)]),
            positive_buckets: vec![10.0, 20.0],
            custom_values: vec![2.5],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 33.0,
            sum: 90.0,
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![(((1.0 + 2.0) + 10.0) + 20.0)],
            ..Default::default()
        }),
        "",
        false,
        true,
    );
    check_add(
        "mix exponential and custom buckets histograms",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 59.0,
            sum: 1.234,
            schema: 0,
            positive_spans: spans(&[(-2, 5), (0, 3)]),
            positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 11.0,
            sum: 12.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        None,
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas",
        false,
        false,
    );
    check_add(
        "warn on counter reset hint collision",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            counter_reset_hint: CounterResetHint::CounterReset,
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            counter_reset_hint: CounterResetHint::NotCounterReset,
            ..Default::default()
        },
        None,
        "",
        true,
        false,
    );
}

/// Prometheus: `TestFloatHistogramSub`.
#[test]
fn prometheus_float_histogram_sub() {
    check_sub(
        "same bucket layout",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 21.0,
            sum: 12.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![1.0, 1.0, 4.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 3.0,
            count: 9.0,
            sum: 11.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![2.0, 0.0, 1.0, 2.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_sub(
        "schema change",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 59.0,
            sum: 1.234,
            schema: 0,
            positive_spans: spans(&[(-2, 5), (0, 3)]),
            positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 2.0,
            count: 19.0,
            sum: 0.345,
            schema: 1,
            positive_spans: spans(&[(-4, 3), (5, 5)]),
            positive_buckets: vec![1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0, 4.0],
            negative_spans: spans(&[(6, 3), (6, 4)]),
            negative_buckets: vec![3.0, 0.5, 0.5, 2.0, 3.0, 2.0, 4.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 6.0,
            count: 40.0,
            sum: 0.889,
            positive_spans: spans(&[(-2, 5), (0, 3)]),
            positive_buckets: vec![1.0, 5.0, 4.0, 2.0, 2.0, 2.0, 0.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![1.0, 9.0, 1.0, 4.0, 9.0, 1.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_sub(
        "same custom bucket layout",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 23.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 11.0,
            sum: 12.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 4.0,
            sum: 11.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 1.0, 1.0, 1.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        }),
        "",
        false,
        false,
    );
    check_sub(
        "different custom bucket layout - with intersection and rollup",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 220.0,
            sum: 9.9,
            positive_spans: spans(&[(0, 2), (1, 1), (0, 2)]),
            positive_buckets: vec![10.0, 20.0, 40.0, 50.0, 100.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 6.0,
            sum: 4.4,
            positive_spans: spans(&[(0, 1), (1, 1)]),
            positive_buckets: vec![1.0, 5.0],
            custom_values: vec![2.0, 4.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        },
        Some(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 214.0,
            sum: 5.5,
            positive_spans: spans(&[(0, 3)]),
            positive_buckets: vec![((10.0 + 20.0) - 1.0), 40.0, ((50.0 + 100.0) - 5.0)],
            custom_values: vec![2.0, 4.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        }),
        "",
        false,
        true,
    );
    check_sub(
        "mix exponential and custom buckets histograms",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 8.0,
            count: 59.0,
            sum: 1.234,
            schema: 0,
            positive_spans: spans(&[(-2, 5), (0, 3)]),
            positive_buckets: vec![2.0, 5.0, 4.0, 2.0, 3.0, 6.0, 7.0, 5.0],
            negative_spans: spans(&[(3, 3), (1, 3)]),
            negative_buckets: vec![4.0, 10.0, 1.0, 4.0, 14.0, 7.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 11.0,
            sum: 12.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![0.0, 0.0, 2.0, 3.0, 6.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ..Default::default()
        },
        None,
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas",
        false,
        false,
    );
    check_sub(
        "warn on counter reset hint collision",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            counter_reset_hint: CounterResetHint::CounterReset,
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            counter_reset_hint: CounterResetHint::NotCounterReset,
            ..Default::default()
        },
        None,
        "",
        true,
        false,
    );
}

/// Prometheus: `TestFloatHistogramMul`.
#[test]
fn prometheus_float_histogram_mul() {
    check_mul(
        "zero value",
        FloatHistogram {
            ..Default::default()
        },
        3.1415,
        FloatHistogram {
            ..Default::default()
        },
    );
    check_mul(
        "zero multiplier",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        0.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 0.0,
            count: 0.0,
            sum: 0.0,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![0.0, 0.0, 0.0, 0.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![0.0, 0.0, 0.0, 0.0],
            ..Default::default()
        },
    );
    check_mul(
        "no-op",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        1.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
    );
    check_mul(
        "double",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        2.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: (3493.3 * 2.0),
            sum: (2349209.324 * 2.0),
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![2.0, 6.6, 8.4, 0.2],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![6.2, 6.0, (1.234e5 * 2.0), 2000.0],
            ..Default::default()
        },
    );
    check_mul(
        "triple",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        3.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 33.0,
            count: 90.0,
            sum: 69.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![3.0, 0.0, 9.0, 12.0, 21.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![9.0, 3.0, 15.0, 18.0],
            ..Default::default()
        },
    );
    check_mul(
        "negation",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        -1.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: -11.0,
            count: -30.0,
            sum: -23.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![-1.0, 0.0, -3.0, -4.0, -7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![-3.0, -1.0, -5.0, -6.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        },
    );
    check_mul(
        "negative multiplier",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        -2.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: -22.0,
            count: -60.0,
            sum: -46.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![-2.0, 0.0, -6.0, -8.0, -14.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![-6.0, -2.0, -10.0, -12.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        },
    );
    check_mul(
        "no-op with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        1.0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
    );
    check_mul(
        "triple with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        3.0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 90.0,
            sum: 69.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![3.0, 0.0, 9.0, 12.0, 21.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
    );
}

/// Prometheus: `TestFloatHistogramDiv`.
#[test]
fn prometheus_float_histogram_div() {
    check_div(
        "zero value",
        FloatHistogram {
            ..Default::default()
        },
        3.1415,
        FloatHistogram {
            ..Default::default()
        },
    );
    check_div(
        "zero divisor",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        0.0,
        FloatHistogram {
            zero_threshold: 0.01,
            count: f64::INFINITY,
            sum: f64::INFINITY,
            zero_count: f64::INFINITY,
            ..Default::default()
        },
    );
    check_div(
        "no-op",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        1.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
    );
    check_div(
        "half",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        2.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 15.0,
            sum: 11.5,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![0.5, 0.0, 1.5, 2.0, 3.5],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![1.5, 0.5, 2.5, 3.0],
            ..Default::default()
        },
    );
    check_div(
        "negation",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        -1.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: -5.5,
            count: -3493.3,
            sum: -2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![-1.0, -3.3, -4.2, -0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![-3.1, -3.0, -1.234e5, -1000.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        },
    );
    check_div(
        "negative half",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 11.0,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.0, 1.0, 5.0, 6.0],
            ..Default::default()
        },
        -2.0,
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: -5.5,
            count: -15.0,
            sum: -11.5,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![-0.5, 0.0, -1.5, -2.0, -3.5],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![-1.5, -0.5, -2.5, -3.0],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        },
    );
    check_div(
        "no-op with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        1.0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
    );
    check_div(
        "half with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 30.0,
            sum: 23.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.0, 4.0, 7.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        2.0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 11.5,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![0.5, 0.0, 1.5, 2.0, 3.5],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
    );
}

/// Prometheus: `TestFloatHistogramDetectReset`.
#[test]
fn prometheus_float_histogram_detect_reset() {
    check_detect_reset(
        "zero values",
        FloatHistogram {
            ..Default::default()
        },
        FloatHistogram {
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "no buckets to some buckets",
        FloatHistogram {
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "some buckets to no buckets",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "one bucket appears, nothing else changes",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "one bucket disappears, nothing else changes",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "an unpopulated bucket disappears, nothing else changes",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "an unpopulated bucket at the end disappears, nothing else changes",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (1, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.0],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 1), (1, 2)]),
            positive_buckets: vec![1.0, 3.3, 4.2],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "an unpopulated bucket disappears in a histogram with nothing else",
        FloatHistogram {
            positive_spans: spans(&[(23, 1)]),
            positive_buckets: vec![0.0],
            ..Default::default()
        },
        FloatHistogram {
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "zero count goes up",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.6,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "zero count goes down",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.4,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "count goes up",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.4,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "count goes down",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.2,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "sum goes up",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349210.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "sum goes down",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349200.0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "one positive bucket goes up",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "one positive bucket goes down",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "one negative bucket goes up",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.1, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "one negative bucket goes down",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 2.9, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "zero threshold decreases",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.009,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "zero threshold increases without touching any existing buckets",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.011,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "zero threshold increases enough to cover existing buckets",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 1.0,
            zero_count: 7.73,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(1, 3)]),
            positive_buckets: vec![3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "zero threshold increases into the middle of an existing buckets",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.3,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "schema increases without any other changes",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 1,
            positive_spans: spans(&[(-5, 4), (2, 6)]),
            positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
            negative_spans: spans(&[(5, 4), (6, 4)]),
            negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "schema decreases without any other changes",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 1,
            positive_spans: spans(&[(-5, 4), (2, 6)]),
            positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
            negative_spans: spans(&[(5, 4), (6, 4)]),
            negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "schema decreases and a bucket goes up",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 1,
            positive_spans: spans(&[(-5, 4), (2, 6)]),
            positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
            negative_spans: spans(&[(5, 4), (6, 4)]),
            negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 4.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "schema decreases and a bucket goes down",
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 1,
            positive_spans: spans(&[(-5, 4), (2, 6)]),
            positive_buckets: vec![0.4, 0.6, 1.0, 0.23, 2.0, 1.3, 1.2, 3.0, 0.05, 0.05],
            negative_spans: spans(&[(5, 4), (6, 4)]),
            negative_buckets: vec![2.0, 1.1, 2.0, 1.0, 0.234e5, 1e5, 500.0, 500.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.01,
            zero_count: 5.5,
            count: 3493.3,
            sum: 2349209.324,
            schema: 0,
            positive_spans: spans(&[(-2, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 2.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "no buckets to some buckets with custom bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "some buckets to no buckets with custom bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "one bucket appears, nothing else changes with custom bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "one bucket disappears, nothing else changes with custom bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 1.23, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "an unpopulated bucket disappears, nothing else changes with custom bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "one positive bucket goes up with custom bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.3, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "one positive bucket goes down with custom bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3493.3,
            sum: 2349209.324,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![1.0, 0.0, 3.3, 4.1, 0.1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "mismatched custom bounds - no reset when all buckets increase",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 200.0,
            sum: 1000.0,
            positive_spans: spans(&[(0, 4)]),
            positive_buckets: vec![20.0, 35.0, 40.0, 50.0],
            custom_values: vec![0.0, 1.0, 2.0, 3.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 200.0,
            sum: 1000.0,
            positive_spans: spans(&[(0, 5)]),
            positive_buckets: vec![25.0, 15.0, 40.0, 50.0, 70.0],
            custom_values: vec![0.0, 0.5, 1.0, 2.0, 3.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "mismatched custom bounds - reset in middle bucket",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 100.0,
            sum: 500.0,
            positive_spans: spans(&[(1, 4)]),
            positive_buckets: vec![10.0, 15.0, 20.0, 25.0],
            custom_values: vec![0.0, 1.0, 3.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 100.0,
            sum: 500.0,
            positive_spans: spans(&[(1, 5)]),
            positive_buckets: vec![10.0, 16.0, 10.0, 5.0, 25.0],
            custom_values: vec![0.0, 1.0, 2.0, 3.0, 5.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "mismatched custom bounds - reset in last bucket",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 100.0,
            sum: 500.0,
            positive_spans: spans(&[(1, 3)]),
            positive_buckets: vec![10.0, 20.0, 20.0],
            custom_values: vec![0.0, 1.0, 2.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 100.0,
            sum: 500.0,
            positive_spans: spans(&[(1, 4)]),
            positive_buckets: vec![100.0, 200.0, 8.0, 7.0],
            custom_values: vec![0.0, 1.0, 2.0, 3.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "mismatched custom bounds - no common bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 100.0,
            sum: 500.0,
            positive_spans: spans(&[(1, 3)]),
            positive_buckets: vec![10.0, 20.0, 30.0],
            custom_values: vec![4.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 100.0,
            sum: 500.0,
            positive_spans: spans(&[(1, 3)]),
            positive_buckets: vec![15.0, 25.0, 35.0],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "mismatched custom bounds - sparse common bounds",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 200.0,
            sum: 1000.0,
            positive_spans: spans(&[(0, 4)]),
            positive_buckets: vec![10.0, 20.0, 30.0, 40.0],
            custom_values: vec![0.0, 1.0, 3.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 200.0,
            sum: 1000.0,
            positive_spans: spans(&[(0, 5)]),
            positive_buckets: vec![15.0, 25.0, 70.0, 50.0, 100.0],
            custom_values: vec![0.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "reset detected with mismatched custom bounds and split bucket spans",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 200.0,
            sum: 1000.0,
            positive_spans: spans(&[(0, 2), (1, 3)]),
            positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0],
            custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 200.0,
            sum: 1000.0,
            positive_spans: spans(&[(0, 3), (1, 2)]),
            positive_buckets: vec![15.0, 25.0, 35.0, 25.0, 60.0],
            custom_values: vec![0.0, 1.0, 3.0, 4.0, 5.0, 7.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "no reset with mismatched custom bounds and split bucket spans",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 300.0,
            sum: 1500.0,
            positive_spans: spans(&[(0, 2), (2, 3)]),
            positive_buckets: vec![10.0, 20.0, 30.0, 40.0, 50.0],
            custom_values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ..Default::default()
        },
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 300.0,
            sum: 1500.0,
            positive_spans: spans(&[(0, 3), (1, 2)]),
            positive_buckets: vec![12.0, 25.0, 45.0, 75.0, 95.0],
            custom_values: vec![0.0, 0.5, 1.0, 3.0, 5.0, 7.0],
            ..Default::default()
        },
        false,
    );
    check_detect_reset(
        "reset when a populated bucket following an empty one disappears",
        FloatHistogram {
            zero_threshold: 0.001,
            count: 10.0,
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![5.0],
            negative_spans: spans(&[(1, 2)]),
            negative_buckets: vec![0.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.001,
            count: 20.0,
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![20.0],
            ..Default::default()
        },
        true,
    );
    check_detect_reset(
        "reset when current ends before a later populated previous bucket",
        FloatHistogram {
            zero_threshold: 0.001,
            count: 7.0,
            positive_spans: spans(&[(0, 3)]),
            positive_buckets: vec![2.0, 0.0, 5.0],
            ..Default::default()
        },
        FloatHistogram {
            zero_threshold: 0.001,
            count: 100.0,
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![100.0],
            ..Default::default()
        },
        true,
    );
}

/// Prometheus: `TestFloatHistogramCompact`.
#[test]
fn prometheus_float_histogram_compact() {
    check_compact(
        "empty histogram",
        FloatHistogram {
            ..Default::default()
        },
        0,
        FloatHistogram {
            ..Default::default()
        },
    );
    check_compact(
        "nothing should happen",
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0],
            ..Default::default()
        },
    );
    check_compact(
        "eliminate zero offsets",
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (0, 3), (0, 1)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (0, 2), (2, 1), (0, 1)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 5)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 4), (2, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "eliminate zero length",
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (2, 0), (3, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (0, 0), (2, 0), (1, 4)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "eliminate multiple zero length spans",
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (2, 0), (2, 0), (2, 0), (3, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (9, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets at start or end",
        FloatHistogram {
            positive_spans: spans(&[(-4, 4), (5, 3)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets at start and end",
        FloatHistogram {
            positive_spans: spans(&[(-4, 4), (5, 6)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
            negative_spans: spans(&[(-2, 4), (3, 5)]),
            negative_buckets: vec![0.0, 0.0, 3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets in the middle",
        FloatHistogram {
            positive_spans: spans(&[(5, 4)]),
            positive_buckets: vec![1.0, 3.0, 0.0, 2.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(5, 2), (1, 1)]),
            positive_buckets: vec![1.0, 3.0, 2.0],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets at start or end of spans, even in the middle",
        FloatHistogram {
            positive_spans: spans(&[(-4, 6), (3, 6)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
            negative_spans: spans(&[(0, 2), (2, 6)]),
            negative_buckets: vec![3.1, 3.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets at start and end - also merge spans due to maxEmptyBuckets",
        FloatHistogram {
            positive_spans: spans(&[(-4, 4), (5, 3)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0, 0.0],
            ..Default::default()
        },
        10,
        FloatHistogram {
            positive_spans: spans(&[(-2, 10)]),
            positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 9)]),
            negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets from the middle of a span",
        FloatHistogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (2, 1), (3, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 2), (1, 2)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "cut out a span containing only empty buckets",
        FloatHistogram {
            positive_spans: spans(&[(-4, 3), (2, 2), (3, 4)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (7, 4)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets from the middle of a span, avoiding none due to maxEmptyBuckets",
        FloatHistogram {
            positive_spans: spans(&[(-2, 4)]),
            positive_buckets: vec![1.0, 0.0, 0.0, 3.3],
            ..Default::default()
        },
        1,
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (2, 1)]),
            positive_buckets: vec![1.0, 3.3],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets and merge spans due to maxEmptyBuckets",
        FloatHistogram {
            positive_spans: spans(&[(-2, 4), (3, 1)]),
            positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2],
            ..Default::default()
        },
        1,
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (2, 1), (3, 1)]),
            positive_buckets: vec![1.0, 3.3, 4.2],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets from the middle of a span, avoiding some due to maxEmptyBuckets",
        FloatHistogram {
            positive_spans: spans(&[(-4, 6), (3, 3), (10, 2)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
            ..Default::default()
        },
        1,
        FloatHistogram {
            positive_spans: spans(&[(-2, 1), (2, 1), (3, 3), (10, 2)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0, 3.0],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "avoiding all cutting of empty buckets from the middle of a chunk due to maxEmptyBuckets",
        FloatHistogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
            ..Default::default()
        },
        2,
        FloatHistogram {
            positive_spans: spans(&[(-2, 4), (3, 3)]),
            positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "everything merged into one span due to maxEmptyBuckets",
        FloatHistogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 0.0, 0.0, 3.3, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![3.1, 3.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
            ..Default::default()
        },
        3,
        FloatHistogram {
            positive_spans: spans(&[(-2, 10)]),
            positive_buckets: vec![1.0, 0.0, 0.0, 3.3, 0.0, 0.0, 0.0, 4.2, 0.1, 3.3],
            negative_spans: spans(&[(0, 10)]),
            negative_buckets: vec![3.1, 3.0, 0.0, 0.0, 0.0, 1.234e5, 1000.0, 0.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "more than one span merged in the same pass",
        FloatHistogram {
            positive_spans: spans(&[(-2, 2), (2, 2), (2, 2)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3, 2.0],
            negative_spans: spans(&[(0, 1), (1, 1), (1, 1)]),
            negative_buckets: vec![3.1, 1000.0, 4.0],
            ..Default::default()
        },
        3,
        FloatHistogram {
            positive_spans: spans(&[(-2, 10)]),
            positive_buckets: vec![1.0, 3.3, 0.0, 0.0, 4.2, 0.1, 0.0, 0.0, 3.3, 2.0],
            negative_spans: spans(&[(0, 5)]),
            negative_buckets: vec![3.1, 0.0, 1000.0, 0.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "only empty buckets and maxEmptyBuckets greater zero",
        FloatHistogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            negative_spans: spans(&[(0, 7)]),
            negative_buckets: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            ..Default::default()
        },
        3,
        FloatHistogram {
            positive_spans: spans(&[]),
            positive_buckets: vec![],
            negative_spans: spans(&[]),
            negative_buckets: vec![],
            ..Default::default()
        },
    );
    check_compact(
        "multiple spans of only empty buckets",
        FloatHistogram {
            positive_spans: spans(&[(-10, 2), (2, 1), (3, 3)]),
            positive_buckets: vec![0.0, 0.0, 0.0, 0.0, 2.0, 3.0],
            negative_spans: spans(&[(-10, 2), (2, 1), (3, 3)]),
            negative_buckets: vec![2.0, 3.0, 0.0, 0.0, 0.0, 0.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            positive_spans: spans(&[(-1, 2)]),
            positive_buckets: vec![2.0, 3.0],
            negative_spans: spans(&[(-10, 2)]),
            negative_buckets: vec![2.0, 3.0],
            ..Default::default()
        },
    );
    check_compact(
        "nothing should happen with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 1), (2, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
    );
    check_compact(
        "eliminate zero offsets with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 1), (0, 3), (0, 1)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 5)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "eliminate multiple zero length spans with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (2, 0), (2, 0), (2, 0), (3, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (9, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
    );
    check_compact(
        "cut empty buckets at start and end with custom buckets",
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 4), (5, 6)]),
            positive_buckets: vec![0.0, 0.0, 1.0, 3.3, 4.2, 0.1, 3.3, 0.0, 0.0, 0.0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        },
        0,
        FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(2, 2), (5, 3)]),
            positive_buckets: vec![1.0, 3.3, 4.2, 0.1, 3.3],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
            ..Default::default()
        },
    );
}

/// Prometheus: `TestFloatHistogramReduceResolution`.
#[test]
fn prometheus_float_histogram_reduce_resolution() {
    check_reduce(
        "valid float histogram",
        FloatHistogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (0, 0), (3, 2)]),
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0],
            negative_spans: spans(&[(0, 4), (0, 0), (3, 2)]),
            negative_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0],
            ..Default::default()
        },
        -1,
        Some(FloatHistogram {
            schema: -1,
            positive_spans: spans(&[(-1, 3), (1, 1)]),
            positive_buckets: vec![1.0, 4.0, 2.0, 2.0],
            negative_spans: spans(&[(0, 3), (1, 1)]),
            negative_buckets: vec![1.0, 4.0, 2.0, 2.0],
            ..Default::default()
        }),
    );
    check_reduce(
        "not enough buckets",
        FloatHistogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (0, 0), (3, 2)]),
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0],
            ..Default::default()
        },
        -1,
        None,
    );
    check_reduce(
        "too many buckets",
        FloatHistogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (0, 0), (3, 2)]),
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0, 5.0],
            ..Default::default()
        },
        -1,
        None,
    );
    check_reduce(
        "negative offset",
        FloatHistogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (-1, 0), (3, 2)]),
            positive_buckets: vec![1.0, 3.0, 1.0, 2.0, 1.0, 1.0],
            ..Default::default()
        },
        -1,
        None,
    );
}

/// Prometheus: `TestHistogramCompact`.
#[test]
fn prometheus_histogram_compact() {
    check_int_compact(
        "empty histogram",
        Histogram {
            ..Default::default()
        },
        0,
        Histogram {
            ..Default::default()
        },
    );
    check_int_compact(
        "nothing should happen",
        Histogram {
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1, 3, -3, 42],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![5, 3, 123400, 1000],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1, 3, -3, 42],
            negative_spans: spans(&[(3, 2), (3, 2)]),
            negative_buckets: vec![5, 3, 123400, 1000],
            ..Default::default()
        },
    );
    check_int_compact(
        "eliminate zero offsets",
        Histogram {
            positive_spans: spans(&[(-2, 1), (0, 3), (0, 1)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (0, 2), (2, 1), (0, 1)]),
            negative_buckets: vec![5, 3, 123400, 1000, 3, 4],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 5)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 4), (2, 2)]),
            negative_buckets: vec![5, 3, 123400, 1000, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "eliminate zero length",
        Histogram {
            positive_spans: spans(&[(-2, 2), (2, 0), (3, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (0, 0), (2, 0), (1, 4)]),
            negative_buckets: vec![5, 3, 123400, 1000, 3, 4],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![5, 3, 123400, 1000, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "eliminate multiple zero length spans",
        Histogram {
            positive_spans: spans(&[(-2, 2), (2, 0), (2, 0), (2, 0), (3, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 2), (9, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut empty buckets at start or end",
        Histogram {
            positive_spans: spans(&[(-4, 4), (5, 3)]),
            positive_buckets: vec![0, 0, 1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, 3, 4, -9],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![5, 3, -4, -2, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut empty buckets at start and end",
        Histogram {
            positive_spans: spans(&[(-4, 4), (5, 6)]),
            positive_buckets: vec![0, 0, 1, 3, -3, 42, 3, -46, 0, 0],
            negative_spans: spans(&[(-2, 4), (3, 5)]),
            negative_buckets: vec![0, 0, 5, 3, -4, -2, 3, 4, -9],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![5, 3, -4, -2, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut empty buckets at start or end of spans, even in the middle",
        Histogram {
            positive_spans: spans(&[(-4, 6), (3, 6)]),
            positive_buckets: vec![0, 0, 1, 3, -4, 0, 1, 42, 3, -46, 0, 0],
            negative_spans: spans(&[(0, 2), (2, 6)]),
            negative_buckets: vec![5, 3, -8, 4, -2, 3, 4, -9],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 4)]),
            negative_buckets: vec![5, 3, -4, -2, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut empty buckets at start or end but merge spans due to maxEmptyBuckets",
        Histogram {
            positive_spans: spans(&[(-4, 4), (5, 3)]),
            positive_buckets: vec![0, 0, 1, 3, -3, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, 3, 4, -9],
            ..Default::default()
        },
        10,
        Histogram {
            positive_spans: spans(&[(-2, 10)]),
            positive_buckets: vec![1, 3, -4, 0, 0, 0, 0, 1, 42, 3],
            negative_spans: spans(&[(0, 9)]),
            negative_buckets: vec![5, 3, -8, 0, 0, 4, -2, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut empty buckets from the middle of a span",
        Histogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0, 0, 1, -1, 0, 3, -2, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, -2, 3, 4],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 1), (2, 1), (3, 3)]),
            positive_buckets: vec![1, 2, -2, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 2), (1, 2)]),
            negative_buckets: vec![5, 3, -4, -2, 1, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut out a span containing only empty buckets",
        Histogram {
            positive_spans: spans(&[(-4, 3), (2, 2), (3, 4)]),
            positive_buckets: vec![0, 0, 1, -1, 0, 3, -2, 42, 3],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-2, 1), (7, 4)]),
            positive_buckets: vec![1, 2, -2, 42, 3],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut empty buckets from the middle of a span, avoiding some due to maxEmptyBuckets",
        Histogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0, 0, 1, -1, 0, 3, -2, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, -2, 3, 4],
            ..Default::default()
        },
        1,
        Histogram {
            positive_spans: spans(&[(-2, 1), (2, 1), (3, 3)]),
            positive_buckets: vec![1, 2, -2, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, -2, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "avoiding all cutting of empty buckets from the middle of a chunk due to maxEmptyBuckets",
        Histogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0, 0, 1, -1, 0, 3, -2, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, -2, 3, 4],
            ..Default::default()
        },
        2,
        Histogram {
            positive_spans: spans(&[(-2, 4), (3, 3)]),
            positive_buckets: vec![1, -1, 0, 3, -2, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, -2, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "everything merged into one span due to maxEmptyBuckets",
        Histogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0, 0, 1, -1, 0, 3, -2, 42, 3],
            negative_spans: spans(&[(0, 2), (3, 5)]),
            negative_buckets: vec![5, 3, -4, -2, -2, 3, 4],
            ..Default::default()
        },
        3,
        Histogram {
            positive_spans: spans(&[(-2, 10)]),
            positive_buckets: vec![1, -1, 0, 3, -3, 0, 0, 1, 42, 3],
            negative_spans: spans(&[(0, 10)]),
            negative_buckets: vec![5, 3, -8, 0, 0, 4, -2, -2, 3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "more than one span merged in the same pass",
        Histogram {
            count: 30,
            positive_spans: spans(&[(0, 2), (2, 2), (2, 2)]),
            positive_buckets: vec![1, 1, 1, 1, 1, 1],
            negative_spans: spans(&[(0, 1), (1, 1), (1, 1)]),
            negative_buckets: vec![2, 1, 1],
            ..Default::default()
        },
        3,
        Histogram {
            count: 30,
            positive_spans: spans(&[(0, 10)]),
            positive_buckets: vec![1, 1, -2, 0, 3, 1, -4, 0, 5, 1],
            negative_spans: spans(&[(0, 5)]),
            negative_buckets: vec![2, -2, 3, -3, 4],
            ..Default::default()
        },
    );
    check_int_compact(
        "only empty buckets and maxEmptyBuckets greater zero",
        Histogram {
            positive_spans: spans(&[(-4, 6), (3, 3)]),
            positive_buckets: vec![0, 0, 0, 0, 0, 0, 0, 0, 0],
            negative_spans: spans(&[(0, 7)]),
            negative_buckets: vec![0, 0, 0, 0, 0, 0, 0],
            ..Default::default()
        },
        3,
        Histogram {
            positive_spans: spans(&[]),
            positive_buckets: vec![],
            negative_spans: spans(&[]),
            negative_buckets: vec![],
            ..Default::default()
        },
    );
    check_int_compact(
        "multiple spans of only empty buckets",
        Histogram {
            positive_spans: spans(&[(-10, 2), (2, 1), (3, 3)]),
            positive_buckets: vec![0, 0, 0, 0, 2, 3],
            negative_spans: spans(&[(-10, 2), (2, 1), (3, 3)]),
            negative_buckets: vec![2, 3, -5, 0, 0, 0],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(-1, 2)]),
            positive_buckets: vec![2, 3],
            negative_spans: spans(&[(-10, 2)]),
            negative_buckets: vec![2, 3],
            ..Default::default()
        },
    );
    check_int_compact(
        "nothing should happen with custom buckets",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1, 3, -3, 42],
            custom_values: vec![5.0, 10.0, 15.0],
            ..Default::default()
        },
        0,
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 1), (2, 3)]),
            positive_buckets: vec![1, 3, -3, 42],
            custom_values: vec![5.0, 10.0, 15.0],
            ..Default::default()
        },
    );
    check_int_compact(
        "eliminate zero offsets with custom buckets",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 1), (0, 3), (0, 1)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
        0,
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 5)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
    );
    check_int_compact(
        "eliminate zero length with custom buckets",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 2), (2, 0), (3, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
        0,
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
    );
    check_int_compact(
        "all zero-length spans with non-empty buckets",
        Histogram {
            positive_spans: spans(&[(0, 0), (2, 0)]),
            positive_buckets: vec![1, 3],
            negative_spans: spans(&[(1, 0)]),
            negative_buckets: vec![2],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[]),
            positive_buckets: vec![],
            negative_spans: spans(&[]),
            negative_buckets: vec![],
            ..Default::default()
        },
    );
    check_int_compact(
        "more buckets than spans account for",
        Histogram {
            positive_spans: spans(&[(0, 1), (2, 1)]),
            positive_buckets: vec![1, 2, 3, 4],
            negative_spans: spans(&[(0, 1)]),
            negative_buckets: vec![5, 6],
            ..Default::default()
        },
        0,
        Histogram {
            positive_spans: spans(&[(0, 1), (2, 1)]),
            positive_buckets: vec![1, 2, 3, 4],
            negative_spans: spans(&[(0, 1)]),
            negative_buckets: vec![5, 6],
            ..Default::default()
        },
    );
    check_int_compact(
        "eliminate multiple zero length spans with custom buckets",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 2), (2, 0), (2, 0), (2, 0), (3, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
        0,
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 2), (9, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
    );
    check_int_compact(
        "cut empty buckets at start or end of spans, even in the middle, with custom buckets",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-4, 6), (3, 6)]),
            positive_buckets: vec![0, 0, 1, 3, -4, 0, 1, 42, 3, -46, 0, 0],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
        0,
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-2, 2), (5, 3)]),
            positive_buckets: vec![1, 3, -3, 42, 3],
            custom_values: vec![5.0, 10.0, 15.0, 20.0],
            ..Default::default()
        },
    );
}

/// Prometheus: `TestHistogramReduceResolution`.
#[test]
fn prometheus_histogram_reduce_resolution() {
    check_int_reduce(
        "valid histogram",
        Histogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (0, 0), (3, 2)]),
            positive_buckets: vec![1, 2, -2, 1, -1, 0],
            negative_spans: spans(&[(0, 4), (0, 0), (3, 2)]),
            negative_buckets: vec![1, 2, -2, 1, -1, 0],
            ..Default::default()
        },
        -1,
        Some(Histogram {
            schema: -1,
            positive_spans: spans(&[(-1, 3), (1, 1)]),
            positive_buckets: vec![1, 3, -2, 0],
            negative_spans: spans(&[(0, 3), (1, 1)]),
            negative_buckets: vec![1, 3, -2, 0],
            ..Default::default()
        }),
    );
    check_int_reduce(
        "not enough buckets",
        Histogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (0, 0), (3, 2)]),
            positive_buckets: vec![1, 2, -2, 1, -1],
            ..Default::default()
        },
        -1,
        None,
    );
    check_int_reduce(
        "too many buckets",
        Histogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (0, 0), (3, 2)]),
            positive_buckets: vec![1, 2, -2, 1, -1, 0, 3],
            ..Default::default()
        },
        -1,
        None,
    );
    check_int_reduce(
        "negative offset",
        Histogram {
            schema: 0,
            positive_spans: spans(&[(-2, 4), (-1, 0), (3, 2)]),
            positive_buckets: vec![1, 2, -2, 1, -1, 0],
            ..Default::default()
        },
        -1,
        None,
    );
}

/// Prometheus: `TestHistogramValidation`.
#[test]
fn prometheus_histogram_validation() {
    check_validation(
        "valid histogram",
        Histogram {
            count: 12,
            zero_count: 2,
            zero_threshold: 0.001,
            sum: 19.4,
            schema: 1,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            negative_spans: spans(&[(0, 2), (1, 2)]),
            negative_buckets: vec![1, 1, -1, 0],
            ..Default::default()
        },
        "",
        false,
    );
    check_validation(
        "valid histogram with NaN observations that has its Count (4) higher than the actual total of buckets (2 + 1)",
        Histogram {
            zero_count: 2,
            count: 4,
            sum: f64::NAN,
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![1],
            ..Default::default()
        },
        "",
        false,
    );
    check_validation(
        "rejects histogram without NaN observations that has its Count (4) higher than the actual total of buckets (2 + 1)",
        Histogram {
            zero_count: 2,
            count: 4,
            sum: 333.0,
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![1],
            ..Default::default()
        },
        "3 observations found in buckets, but the Count field is 4: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)",
        true,
    );
    check_validation(
        "rejects histogram that has too few negative buckets",
        Histogram {
            negative_spans: spans(&[(0, 1)]),
            negative_buckets: vec![],
            ..Default::default()
        },
        "negative side: spans need 1 buckets, have 0 buckets: histogram spans specify different number of buckets than provided",
        false,
    );
    check_validation(
        "rejects histogram that has too few positive buckets",
        Histogram {
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![],
            ..Default::default()
        },
        "positive side: spans need 1 buckets, have 0 buckets: histogram spans specify different number of buckets than provided",
        false,
    );
    check_validation(
        "rejects histogram that has too many negative buckets",
        Histogram {
            negative_spans: spans(&[(0, 1)]),
            negative_buckets: vec![1, 2],
            ..Default::default()
        },
        "negative side: spans need 1 buckets, have 2 buckets: histogram spans specify different number of buckets than provided",
        false,
    );
    check_validation(
        "rejects histogram that has too many positive buckets",
        Histogram {
            positive_spans: spans(&[(0, 1)]),
            positive_buckets: vec![1, 2],
            ..Default::default()
        },
        "positive side: spans need 1 buckets, have 2 buckets: histogram spans specify different number of buckets than provided",
        false,
    );
    check_validation(
        "rejects a histogram that has a negative span with a negative offset",
        Histogram {
            negative_spans: spans(&[(-1, 1), (-1, 1)]),
            negative_buckets: vec![1, 2],
            ..Default::default()
        },
        "negative side: span number 2 with offset -1: histogram has a span whose offset is negative",
        false,
    );
    check_validation(
        "rejects a histogram which has a positive span with a negative offset",
        Histogram {
            positive_spans: spans(&[(-1, 1), (-1, 1)]),
            positive_buckets: vec![1, 2],
            ..Default::default()
        },
        "positive side: span number 2 with offset -1: histogram has a span whose offset is negative",
        false,
    );
    check_validation(
        "rejects a histogram that has a negative bucket with a negative count",
        Histogram {
            negative_spans: spans(&[(-1, 1)]),
            negative_buckets: vec![-1],
            ..Default::default()
        },
        "negative side: bucket number 1 has observation count of -1: histogram has a bucket whose observation count is negative",
        false,
    );
    check_validation(
        "rejects a histogram that has a positive bucket with a negative count",
        Histogram {
            positive_spans: spans(&[(-1, 1)]),
            positive_buckets: vec![-1],
            ..Default::default()
        },
        "positive side: bucket number 1 has observation count of -1: histogram has a bucket whose observation count is negative",
        false,
    );
    check_validation(
        "rejects a histogram that has a lower count than count in buckets",
        Histogram {
            count: 0,
            negative_spans: spans(&[(-1, 1)]),
            positive_spans: spans(&[(-1, 1)]),
            negative_buckets: vec![1],
            positive_buckets: vec![1],
            ..Default::default()
        },
        "2 observations found in buckets, but the Count field is 0: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)",
        true,
    );
    check_validation(
        "rejects a histogram that doesn't count the zero bucket in its count",
        Histogram {
            count: 2,
            zero_count: 1,
            negative_spans: spans(&[(-1, 1)]),
            positive_spans: spans(&[(-1, 1)]),
            negative_buckets: vec![1],
            positive_buckets: vec![1],
            ..Default::default()
        },
        "3 observations found in buckets, but the Count field is 2: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)",
        true,
    );
    check_validation(
        "rejects an exponential histogram with custom buckets schema",
        Histogram {
            count: 12,
            zero_count: 2,
            zero_threshold: 0.001,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            negative_spans: spans(&[(0, 2), (1, 2)]),
            negative_buckets: vec![1, 1, -1, 0],
            ..Default::default()
        },
        "custom buckets: only 0 custom bounds defined which is insufficient to cover total span length of 5: histogram custom bounds are too few",
        false,
    );
    check_validation(
        "rejects a custom buckets histogram with exponential schema",
        Histogram {
            count: 5,
            sum: 19.4,
            schema: 0,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        "histogram with exponential schema must not have custom bounds",
        true,
    );
    check_validation(
        "rejects a custom buckets histogram with zero/negative buckets",
        Histogram {
            count: 12,
            zero_count: 2,
            zero_threshold: 0.001,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            negative_spans: spans(&[(0, 2), (1, 2)]),
            negative_buckets: vec![1, 1, -1, 0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        "custom buckets: must have zero count of 0",
        true,
    );
    check_validation(
        "rejects a custom buckets histogram with negative offset in first span",
        Histogram {
            count: 5,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(-1, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        "custom buckets: span number 1 with offset -1: histogram has a span whose offset is negative",
        false,
    );
    check_validation(
        "rejects a custom buckets histogram with negative offset in subsequent spans",
        Histogram {
            count: 5,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (-1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        "custom buckets: span number 2 with offset -1: histogram has a span whose offset is negative",
        false,
    );
    check_validation(
        "rejects a custom buckets histogram with non-matching bucket counts",
        Histogram {
            count: 5,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        "custom buckets: spans need 4 buckets, have 3 buckets: histogram spans specify different number of buckets than provided",
        false,
    );
    check_validation(
        "rejects a custom buckets histogram with too few bounds",
        Histogram {
            count: 5,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            custom_values: vec![1.0, 2.0, 3.0],
            ..Default::default()
        },
        "custom buckets: only 3 custom bounds defined which is insufficient to cover total span length of 5: histogram custom bounds are too few",
        false,
    );
    check_validation(
        "valid custom buckets histogram",
        Histogram {
            count: 5,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0],
            ..Default::default()
        },
        "",
        false,
    );
    check_validation(
        "valid custom buckets histogram with extra bounds",
        Histogram {
            count: 5,
            sum: 19.4,
            schema: CUSTOM_BUCKETS_SCHEMA,
            positive_spans: spans(&[(0, 2), (1, 2)]),
            positive_buckets: vec![1, 1, -1, 0],
            custom_values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            ..Default::default()
        },
        "",
        false,
    );
    check_validation(
        "reject custom buckets histogram with non-increasing bound",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![0.0, 0.0],
            ..Default::default()
        },
        "custom buckets: previous bound is 0.000000 and current is 0.000000: histogram custom bounds must be in strictly increasing order",
        false,
    );
    check_validation(
        "reject custom buckets histogram with explicit +Inf bound",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0, f64::INFINITY],
            ..Default::default()
        },
        "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds must be finite",
        false,
    );
    check_validation(
        "valid custom buckets histogram with explicit -Inf bound",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![f64::NEG_INFINITY, 1.0],
            ..Default::default()
        },
        "",
        false,
    );
    check_validation(
        "reject custom buckets histogram with NaN bound",
        Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0, f64::NAN, 3.0],
            ..Default::default()
        },
        "custom buckets: histogram custom bounds must not be NaN",
        false,
    );
    check_validation(
        "schema too high",
        Histogram {
            schema: 10,
            ..Default::default()
        },
        "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema 10",
        false,
    );
    check_validation(
        "schema too low",
        Histogram {
            schema: -10,
            ..Default::default()
        },
        "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema -10",
        false,
    );
}
