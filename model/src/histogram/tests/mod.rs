//! Tests of the native histogram model. `prometheus.rs` holds Prometheus's
//! own test tables re-expressed in Rust; the tests here are worked out by
//! hand or taken from Prometheus's PromQL test files.

use super::*;

mod prometheus;

/// Spans from `(offset, length)` pairs.
pub(super) fn spans(pairs: &[(i32, u32)]) -> Vec<Span> {
    pairs
        .iter()
        .map(|&(offset, length)| Span { offset, length })
        .collect()
}

fn float_eq(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn floats_eq(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| float_eq(*x, *y))
}

/// Equality as Go's `require.Equal` sees it: every field, layouts exactly,
/// floats by value (so 0 equals -0), NaN equal to NaN.
fn same(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.counter_reset_hint == b.counter_reset_hint
        && a.schema == b.schema
        && float_eq(a.zero_threshold, b.zero_threshold)
        && float_eq(a.zero_count, b.zero_count)
        && float_eq(a.count, b.count)
        && float_eq(a.sum, b.sum)
        && a.positive_spans == b.positive_spans
        && a.negative_spans == b.negative_spans
        && floats_eq(&a.positive_buckets, &b.positive_buckets)
        && floats_eq(&a.negative_buckets, &b.negative_buckets)
        && floats_eq(&a.custom_values, &b.custom_values)
}

#[track_caller]
fn assert_same(name: &str, got: &FloatHistogram, want: &FloatHistogram) {
    assert!(same(got, want), "{name}:\n got  {got:?}\n want {want:?}");
}

fn compacted(mut h: FloatHistogram) -> FloatHistogram {
    h.compact(0).expect("compact");
    h
}

/// Prometheus's `testHistogramAdd`/`testFloatHistogramSub`: both operands
/// valid; the result, compacted, equals the expectation compacted.
#[allow(clippy::too_many_arguments)]
fn check_arith(
    op: &str,
    name: &str,
    a: FloatHistogram,
    b: FloatHistogram,
    expected: Option<FloatHistogram>,
    error: &str,
    collision: bool,
    reconciled: bool,
) {
    a.validate().unwrap_or_else(|e| panic!("{name}: a: {e}"));
    b.validate().unwrap_or_else(|e| panic!("{name}: b: {e}"));
    let mut result = a.clone();
    let outcome = if op == "add" {
        result.add(&b)
    } else {
        result.sub(&b)
    };
    match outcome {
        Err(e) => {
            assert_eq!(e.to_string(), error, "{name}");
            assert!(!collision && !reconciled, "{name}");
            assert_same(name, &result, &a);
        }
        Ok(notes) => {
            assert_eq!(error, "", "{name}: expected an error");
            assert_eq!(
                notes.counter_reset_collision, collision,
                "{name}: collision"
            );
            assert_eq!(
                notes.nhcb_bounds_reconciled, reconciled,
                "{name}: reconciled"
            );
            if let Some(expected) = expected {
                assert_same(name, &compacted(result), &compacted(expected));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_add(
    name: &str,
    a: FloatHistogram,
    b: FloatHistogram,
    expected: Option<FloatHistogram>,
    error: &str,
    collision: bool,
    reconciled: bool,
) {
    check_arith("add", name, a, b, expected, error, collision, reconciled);
}

#[allow(clippy::too_many_arguments)]
fn check_sub(
    name: &str,
    a: FloatHistogram,
    b: FloatHistogram,
    expected: Option<FloatHistogram>,
    error: &str,
    collision: bool,
    reconciled: bool,
) {
    check_arith("sub", name, a, b, expected, error, collision, reconciled);
}

fn check_mul(name: &str, mut h: FloatHistogram, factor: f64, expected: FloatHistogram) {
    h.mul(factor);
    assert_same(name, &h, &expected);
}

fn check_div(name: &str, mut h: FloatHistogram, scalar: f64, expected: FloatHistogram) {
    h.div(scalar);
    assert_same(name, &h, &expected);
}

fn check_detect_reset(name: &str, previous: FloatHistogram, current: FloatHistogram, reset: bool) {
    assert_eq!(current.detect_reset(&previous), reset, "{name}");
}

fn check_compact(name: &str, mut h: FloatHistogram, max_empty: usize, expected: FloatHistogram) {
    let was_valid = h.validate().is_ok();
    h.compact(max_empty)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_same(name, &h, &expected);
    if was_valid {
        h.validate()
            .unwrap_or_else(|e| panic!("{name}: compact made it invalid: {e}"));
    }
}

fn check_reduce(name: &str, mut h: FloatHistogram, target: i32, expected: Option<FloatHistogram>) {
    match (h.reduce_resolution(target), expected) {
        (Ok(()), Some(expected)) => assert_same(name, &h, &expected),
        (Err(_), None) => {}
        (outcome, _) => panic!("{name}: {outcome:?}"),
    }
}

fn check_int_compact(name: &str, mut h: Histogram, max_empty: usize, expected: Histogram) {
    let was_valid = h.validate().is_ok();
    h.compact(max_empty)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(h, expected, "{name}");
    if was_valid {
        h.validate()
            .unwrap_or_else(|e| panic!("{name}: compact made it invalid: {e}"));
    }
}

fn check_int_reduce(name: &str, mut h: Histogram, target: i32, expected: Option<Histogram>) {
    match (h.reduce_resolution(target), expected) {
        (Ok(()), Some(expected)) => assert_eq!(h, expected, "{name}"),
        (Err(_), None) => {}
        (outcome, _) => panic!("{name}: {outcome:?}"),
    }
}

fn check_validation(name: &str, h: Histogram, error: &str, skip_float: bool) {
    let message = |r: Result<()>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(message(h.validate()), error, "{name}");
    if !skip_float {
        assert_eq!(
            message(h.to_float().validate()),
            error,
            "{name} (as floats)"
        );
    }
}
