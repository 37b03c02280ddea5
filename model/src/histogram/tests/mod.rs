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

/// Parses a test-language literal that must be valid.
#[track_caller]
fn lit(text: &str) -> FloatHistogram {
    let (literal, rest) = parse_histogram_literal(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(rest, "", "{text}");
    literal.histogram
}

/// Prometheus's test runner's float comparison (relative 1e-6).
#[track_caller]
fn assert_close(got: f64, want: f64, what: &str) {
    let ok = if want.is_nan() {
        got.is_nan()
    } else if want.is_infinite() || want == 0.0 {
        got == want
    } else {
        ((got - want) / want).abs() < 1e-6
    };
    assert!(ok, "{what}: got {got}, want {want}");
}

// ---------------------------------------------------------------------------
// Bounds and iteration.

#[test]
fn buckets_have_prometheus_bounds_and_ends() {
    // Schema 0: positive bucket i is (2^(i-1), 2^i], negative [-2^i, -2^(i-1)).
    let h = lit("{{count:6 sum:1 offset:-1 buckets:[1 2] n_offset:1 n_buckets:[3]}}");
    let positive: Vec<_> = h.positive_buckets().collect();
    assert_eq!(
        positive,
        vec![
            Bucket {
                lower: 0.25,
                upper: 0.5,
                lower_inclusive: false,
                upper_inclusive: true,
                count: 1.0,
                index: -1
            },
            Bucket {
                lower: 0.5,
                upper: 1.0,
                lower_inclusive: false,
                upper_inclusive: true,
                count: 2.0,
                index: 0
            },
        ]
    );
    let negative: Vec<_> = h.negative_buckets().collect();
    assert_eq!(
        negative,
        vec![Bucket {
            lower: -2.0,
            upper: -1.0,
            lower_inclusive: true,
            upper_inclusive: false,
            count: 3.0,
            index: 1
        }]
    );
    assert_eq!(negative[0].to_string(), "[-2,-1):3");

    // Schema -4: 2^16 per bucket; schema 8: 2^(1/256).
    let coarse = lit("{{schema:-4 count:1 buckets:[1]}}");
    let b = coarse.positive_buckets().next().unwrap();
    assert_eq!((b.lower, b.upper), (1.0 / 65536.0, 1.0));
    let fine = lit("{{schema:8 count:1 offset:256 buckets:[1]}}");
    let b = fine.positive_buckets().next().unwrap();
    assert_eq!((b.lower, b.upper), (1.9945921121709396, 2.0));

    // Custom buckets: (-Inf, 1], (1, 5], (5, +Inf]; only the first is closed below.
    let custom = lit("{{schema:-53 count:3 custom_values:[1 5] buckets:[1 1 1]}}");
    let bounds: Vec<_> = custom
        .positive_buckets()
        .map(|b| (b.lower, b.upper, b.lower_inclusive))
        .collect();
    assert_eq!(
        bounds,
        vec![
            (f64::NEG_INFINITY, 1.0, true),
            (1.0, 5.0, false),
            (5.0, f64::INFINITY, false)
        ]
    );
}

#[test]
fn the_int_iterator_undoes_the_deltas() {
    let h = Histogram {
        count: 9,
        positive_spans: spans(&[(0, 2), (1, 1)]),
        positive_buckets: vec![2, 1, -1],
        ..Default::default()
    };
    let got: Vec<_> = h.positive_buckets().map(|b| (b.index, b.count)).collect();
    assert_eq!(got, vec![(0, 2), (1, 3), (3, 2)]);
    assert_eq!(h.to_float().positive_buckets, vec![2.0, 3.0, 2.0]);
}

#[test]
fn all_buckets_ascend_and_cut_at_the_zero_threshold() {
    // Schema 0 with a zero threshold of 0.7: bucket 0 (0.5, 1] overlaps it.
    let h = lit("{{count:6 sum:0 z_bucket:1 z_bucket_w:0.7 buckets:[1 2] n_buckets:[3]}}");
    let all: Vec<_> = h
        .all_buckets()
        .iter()
        .map(|b| (b.lower, b.upper, b.count))
        .collect();
    assert_eq!(
        all,
        vec![
            (-1.0, -0.7, 3.0),
            (-0.7, 0.7, 1.0),
            (0.7, 1.0, 1.0),
            (1.0, 2.0, 2.0)
        ]
    );
    // An empty zero bucket is left out.
    let h = lit("{{count:1 buckets:[1]}}");
    assert_eq!(h.all_buckets().len(), 1);
}

#[test]
fn iterators_stop_on_inconsistent_spans() {
    let h = FloatHistogram {
        positive_spans: spans(&[(0, 5)]),
        positive_buckets: vec![1.0, 2.0],
        negative_spans: spans(&[(i32::MAX, 3)]),
        negative_buckets: vec![1.0, 1.0, 1.0],
        ..Default::default()
    };
    assert_eq!(h.positive_buckets().count(), 2);
    // Indices beyond i32 end the walk instead of wrapping.
    assert_eq!(h.negative_buckets().count(), 1);
    assert!(matches!(
        h.validate(),
        Err(HistogramError::SpansBucketsMismatch {
            side: Side::Positive,
            needed: 5,
            have: 2
        })
    ));
}

// ---------------------------------------------------------------------------
// Validation.

#[test]
fn validation_names_the_problem() {
    let float_error = |h: FloatHistogram| h.validate().unwrap_err().to_string();
    assert_eq!(
        float_error(FloatHistogram {
            count: -1.0,
            ..Default::default()
        }),
        "observation count is  -1: histogram's observation count is negative"
    );
    assert_eq!(
        float_error(FloatHistogram {
            zero_count: -2.0,
            ..Default::default()
        }),
        "zero bucket has observation count of -2: histogram has a bucket whose observation count is negative"
    );
    assert_eq!(
        float_error(FloatHistogram {
            schema: 9,
            ..Default::default()
        }),
        "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema 9"
    );
    assert_eq!(
        float_error(FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            custom_values: vec![1.0, 1.0],
            ..Default::default()
        }),
        "custom buckets: previous bound is 1.000000 and current is 1.000000: histogram custom bounds must be in strictly increasing order"
    );
    assert_eq!(
        float_error(FloatHistogram {
            positive_spans: spans(&[(i32::MAX, 2)]),
            positive_buckets: vec![1.0, 1.0],
            ..Default::default()
        }),
        "positive side: bucket indices beyond the 32-bit range"
    );
    // Float histograms do not compare the count with the buckets...
    assert!(lit("{{count:1 buckets:[5]}}").validate().is_ok());
    // ...integer ones do, and allow more observations than buckets hold
    // when the sum is NaN (NaN observations are in no bucket).
    let mut h = Histogram {
        count: 3,
        positive_spans: spans(&[(0, 1)]),
        positive_buckets: vec![2],
        ..Default::default()
    };
    assert!(matches!(
        h.validate(),
        Err(HistogramError::CountMismatch {
            in_buckets: 2,
            count: 3
        })
    ));
    h.sum = f64::NAN;
    assert!(h.validate().is_ok());
    h.count = 1;
    assert!(matches!(
        h.validate(),
        Err(HistogramError::CountNotBigEnough {
            in_buckets: 2,
            count: 1
        })
    ));
    // Deltas that overflow are refused, not wrapped.
    let h = Histogram {
        positive_spans: spans(&[(0, 2)]),
        positive_buckets: vec![i64::MAX, 1],
        ..Default::default()
    };
    assert!(matches!(
        h.validate(),
        Err(HistogramError::CountOverflow { .. })
    ));
}

// ---------------------------------------------------------------------------
// Arithmetic beyond Prometheus's tables.

#[test]
fn adding_across_schemas_reduces_to_the_coarser_one() {
    // Schema 1 buckets 1 and 2 ((1,√2], (√2,2]) make schema 0 bucket 1 ((1,2]).
    let mut a = lit("{{schema:1 count:3 sum:4 offset:1 buckets:[1 2]}}");
    let b = lit("{{schema:0 count:1 sum:1 offset:1 buckets:[1]}}");
    a.add(&b).unwrap();
    assert_same(
        "schema 1 + 0",
        &a,
        &lit("{{schema:0 count:4 sum:5 offset:1 buckets:[4]}}"),
    );
    // Subtraction does the same and may leave empty buckets, which compact removes.
    let mut c = lit("{{schema:0 count:4 sum:5 offset:1 buckets:[4 1]}}");
    c.sub(&lit("{{schema:1 count:4 sum:5 offset:1 buckets:[2 2]}}"))
        .unwrap();
    assert_eq!(c.positive_buckets, vec![0.0, 1.0]);
    c.compact(0).unwrap();
    assert_same(
        "after compact",
        &c,
        &lit("{{schema:0 count:0 sum:0 offset:2 buckets:[1]}}"),
    );
}

#[test]
fn zero_buckets_widen_to_a_bound_no_populated_bucket_straddles() {
    // a's zero bucket is 0.75 wide; b's bucket 0 (0.5, 1] straddles it, so
    // the common threshold moves out to 1 and b's bucket 0 joins the zero bucket.
    let mut a = lit("{{count:3 sum:0 z_bucket:1 z_bucket_w:0.75 offset:1 buckets:[2]}}");
    let b = lit("{{count:4 sum:0 z_bucket:1 z_bucket_w:0.1 buckets:[1 2] n_buckets:[1]}}");
    a.add(&b).unwrap();
    assert_same(
        "reconciled",
        &a,
        &lit("{{count:7 sum:0 z_bucket:4 z_bucket_w:1 offset:1 buckets:[4]}}"),
    );
    // A NaN threshold cannot be reconciled.
    let mut a = lit("{{count:1 z_bucket:1}}");
    a.zero_threshold = f64::NAN;
    assert_eq!(a.add(&b), Err(HistogramError::ZeroThresholdNaN));
}

#[test]
fn custom_buckets_with_different_bounds_meet_on_shared_bounds() {
    // Prometheus 3: (-Inf,1] and (1,5] of a fold into (-Inf,5], b's (-Inf,2]
    // and (2,5] likewise; 10 is not shared, so (5,10] and (10,+Inf] fold into +Inf.
    let mut a = lit("{{schema:-53 count:4 sum:10 custom_values:[1 5 10] buckets:[1 1 1 1]}}");
    let b = lit("{{schema:-53 count:3 sum:6 custom_values:[2 5] buckets:[1 1 1]}}");
    let notes = a.add(&b).unwrap();
    assert!(notes.nhcb_bounds_reconciled);
    assert_same(
        "intersected",
        &a,
        &lit("{{schema:-53 count:7 sum:16 custom_values:[5] buckets:[4 3]}}"),
    );
    // Mixing custom and exponential buckets is an error and changes nothing.
    let before = a.clone();
    assert_eq!(
        a.add(&lit("{{count:1 buckets:[1]}}")),
        Err(HistogramError::IncompatibleSchema)
    );
    assert_same("unchanged", &a, &before);
}

#[test]
fn counter_reset_hints_combine_as_in_prometheus() {
    use CounterResetHint::*;
    let with = |hint| FloatHistogram {
        counter_reset_hint: hint,
        ..Default::default()
    };
    for (a, b, result, collision) in [
        (Gauge, CounterReset, Gauge, false),
        (NotCounterReset, Gauge, Gauge, false),
        (Unknown, CounterReset, Unknown, false),
        (CounterReset, Unknown, Unknown, false),
        (CounterReset, NotCounterReset, Unknown, true),
        (NotCounterReset, NotCounterReset, NotCounterReset, false),
    ] {
        let mut h = with(a);
        let notes = h.add(&with(b)).unwrap();
        assert_eq!(
            (h.counter_reset_hint, notes.counter_reset_collision),
            (result, collision),
            "{a:?} + {b:?}"
        );
    }
    let mut h = with(NotCounterReset);
    h.mul(-1.0);
    assert_eq!(h.counter_reset_hint, Gauge);
}

#[test]
fn division_by_zero_drops_the_buckets() {
    let mut h = lit("{{count:2 sum:-3 buckets:[2]}}");
    h.div(0.0);
    assert_eq!((h.count, h.sum), (f64::INFINITY, f64::NEG_INFINITY));
    assert!(h.zero_count.is_nan());
    assert!(h.positive_buckets.is_empty() && h.positive_spans.is_empty());
}

#[test]
fn detect_reset_follows_prometheus_rules_for_custom_bounds() {
    let previous = lit("{{schema:-53 count:3 custom_values:[1 5] buckets:[1 1 1]}}");
    // Same counts on the shared bound 5: no reset.
    let current = lit("{{schema:-53 count:3 custom_values:[2 5] buckets:[1 1 1]}}");
    assert!(!current.detect_reset(&previous));
    // Fewer observations up to 5 than before: a reset.
    let current = lit("{{schema:-53 count:3 custom_values:[2 5] buckets:[1 0 2]}}");
    assert!(current.detect_reset(&previous));
    // Exponential to custom is a reset; a NotCounterReset hint overrides all.
    let mut exponential = lit("{{count:3 buckets:[3]}}");
    assert!(previous.detect_reset(&exponential) || previous.count < exponential.count);
    assert!(exponential.detect_reset(&previous));
    exponential.counter_reset_hint = CounterResetHint::NotCounterReset;
    exponential.count = 0.0;
    assert!(!exponential.detect_reset(&previous));
}

#[test]
fn hostile_histograms_get_errors_not_gigabytes() {
    // Buckets 2^31 indices apart: compacting them into one span would need
    // billions of empty buckets.
    let mut far = FloatHistogram {
        positive_spans: spans(&[(i32::MIN, 1), (i32::MAX, 1), (i32::MAX - 1, 1)]),
        positive_buckets: vec![1.0, 1.0, 1.0],
        ..Default::default()
    };
    assert!(far.validate().is_ok());
    let before = far.clone();
    assert_eq!(far.compact(usize::MAX), Err(HistogramError::TooManyBuckets));
    assert_same("unchanged", &far, &before);
    far.compact(1000).unwrap();
    assert_same("nothing to fill", &far, &before);
    let mut h = Histogram {
        count: 2,
        positive_spans: spans(&[(i32::MIN, 1), (i32::MAX, 1)]),
        positive_buckets: vec![1, 0],
        ..Default::default()
    };
    assert_eq!(h.compact(usize::MAX), Err(HistogramError::TooManyBuckets));

    // A bucket at i32::MIN plus one at i32::MAX cannot be spanned at all.
    let mut low = FloatHistogram {
        positive_spans: spans(&[(i32::MIN, 1)]),
        positive_buckets: vec![1.0],
        ..Default::default()
    };
    let high = FloatHistogram {
        positive_spans: spans(&[(i32::MAX, 1)]),
        positive_buckets: vec![1.0],
        ..Default::default()
    };
    assert_eq!(
        low.add(&high),
        Err(HistogramError::IndexOutOfRange {
            side: Side::Positive
        })
    );

    // Inconsistent spans: an error, the receiver unchanged.
    let broken = FloatHistogram {
        positive_spans: spans(&[(0, 3)]),
        positive_buckets: vec![1.0],
        ..Default::default()
    };
    let mut a = lit("{{count:1 buckets:[1]}}");
    assert!(a.add(&broken).is_err());
    assert_same("unchanged", &a, &lit("{{count:1 buckets:[1]}}"));
    assert!(
        a.clone()
            .sub(&FloatHistogram {
                schema: 100,
                ..Default::default()
            })
            .is_err()
    );

    // Read-only functions answer something for anything.
    for h in [
        broken,
        far,
        FloatHistogram {
            schema: i32::MIN,
            count: 1.0,
            ..Default::default()
        },
    ] {
        let _ = h.detect_reset(&lit("{{count:1 buckets:[1]}}"));
        let _ = lit("{{count:1 buckets:[1]}}").detect_reset(&h);
        let _ = histogram_quantile(0.5, &h);
        let _ = histogram_fraction(0.0, 1.0, &h);
        let _ = histogram_stdvar(&h);
        let _ = h.to_string();
        let _ = h.to_api_json();
    }
}

// ---------------------------------------------------------------------------
// PromQL functions. Expected values from Prometheus's
// promql/promqltest/testdata/native_histograms.test unless worked out here.

#[test]
fn quantiles_match_prometheus() {
    let h1 = "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}";
    let h2 = "{{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}";
    let h3 = "{{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}";
    let custom = "{{schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]}}";
    let cases: &[(&str, f64, f64)] = &[
        (h1, 1.001, f64::INFINITY),
        (h1, 1.0, 16.0),
        (h1, 0.99, 15.67072476139083),
        (h1, 0.9, 12.99603834169977),
        (h1, 0.6, 4.594793419988138),
        (h1, 0.5, 1.5874010519681994),
        (h1, 0.1, 0.0006),
        (h1, 0.0, 0.0),
        (h1, -1.0, f64::NEG_INFINITY),
        (h2, 1.0, 0.0),
        (h2, 0.99, -0.00006),
        (h2, 0.9, -0.0006),
        (h2, 0.5, -1.5874010519681996),
        (h2, 0.1, -12.996038341699768),
        (h2, 0.0, -16.0),
        (h3, 1.0, 16.0),
        (h3, 0.99, 15.34822590920423),
        (h3, 0.9, 10.556063286183155),
        (h3, 0.7, 1.2030250360821164),
        (h3, 0.55, 0.0006),
        (h3, 0.5, 0.0),
        (h3, 0.45, -0.0006),
        (h3, 0.3, -1.2030250360821169),
        (h3, 0.1, -10.556063286183155),
        (h3, 0.01, -15.34822590920423),
        (h3, 0.0, -16.0),
        ("{{schema:-1 sum:6 count:5 buckets:[0 5]}}", 0.5, 2.0),
        (
            "{{schema:0 sum:4 count:5 buckets:[0 5]}}",
            0.5,
            std::f64::consts::SQRT_2,
        ),
        ("{{schema:1 sum:4 count:5 buckets:[0 5]}}", 0.5, 1.189207),
        (
            "{{schema:0 sum:4 count:5 buckets:[0 0 5]}}",
            0.5,
            2.82842712474619,
        ),
        // Custom buckets, by hand: (-Inf,5]:1 (5,10]:2 (10,+Inf]:1. The
        // median is halfway into (5,10]; the first bucket starts at 0; a
        // quantile in the +Inf bucket is its lower bound.
        (custom, 0.5, 7.5),
        (custom, 0.1, 2.0),
        (custom, 0.9, 10.0),
        (
            "{{schema:-53 count:2 custom_values:[-3 5] buckets:[2]}}",
            0.2,
            -3.0,
        ),
        ("{{count:0}}", 0.5, f64::NAN),
        (h1, f64::NAN, f64::NAN),
    ];
    for &(text, q, want) in cases {
        let (got, note) = histogram_quantile(q, &lit(text));
        assert_close(got, want, &format!("histogram_quantile({q}, {text})"));
        assert_eq!(note, None);
    }
}

#[test]
fn quantiles_note_nan_observations() {
    // 3 observations, 2 in buckets: the third was NaN.
    let h = lit("{{count:3 sum:NaN buckets:[1 1]}}");
    let (v, note) = histogram_quantile(0.9, &h);
    assert!(v.is_nan());
    assert_eq!(note, Some(HistogramNote::QuantileNaNResult));
    let (v, note) = histogram_quantile(0.1, &h);
    assert_eq!(note, Some(HistogramNote::QuantileNaNSkew));
    assert!(v > 0.5 && v <= 2.0, "{v}");
    let (v, note) = histogram_fraction(0.0, 1.0, &h);
    assert_eq!(note, Some(HistogramNote::FractionNaNs));
    assert_close(v, 1.0 / 3.0, "fraction with NaNs");
}

#[test]
fn fractions_match_prometheus() {
    let custom = "{{schema:-53 sum:5 count:4 custom_values:[5 10] buckets:[1 2 1]}}";
    let cases: &[(&str, f64, f64, f64)] = &[
        ("{{schema:-1 sum:6 count:5 buckets:[0 5]}}", 0.0, 2.0, 0.5),
        (
            "{{schema:0 sum:4 count:5 buckets:[0 5]}}",
            0.0,
            std::f64::consts::SQRT_2,
            0.5,
        ),
        (
            "{{schema:1 sum:4 count:5 buckets:[0 5]}}",
            0.0,
            1.189207,
            0.5,
        ),
        (
            "{{schema:0 sum:4 count:5 buckets:[0 0 5]}}",
            0.0,
            2.82842712474619,
            0.5,
        ),
        // By hand: all of (1,2] below 2; a quarter of the observations.
        ("{{count:4 sum:5 buckets:[1 1 2]}}", 1.0, 2.0, 0.25),
        (
            "{{count:4 sum:5 buckets:[1 1 2]}}",
            f64::NEG_INFINITY,
            f64::INFINITY,
            1.0,
        ),
        ("{{count:4 sum:5 buckets:[1 1 2]}}", 3.0, 2.0, 0.0),
        // Custom: (-Inf,5] counts from 0, half of (5,10] is below 7.5.
        (custom, 0.0, 7.5, 0.5),
        (custom, 10.0, 100.0, 0.0),
        (custom, f64::NEG_INFINITY, f64::INFINITY, 1.0),
        ("{{count:0}}", 0.0, 1.0, f64::NAN),
        (custom, f64::NAN, 1.0, f64::NAN),
    ];
    for &(text, lower, upper, want) in cases {
        let (got, note) = histogram_fraction(lower, upper, &lit(text));
        assert_close(
            got,
            want,
            &format!("histogram_fraction({lower}, {upper}, {text})"),
        );
        assert_eq!(note, None);
    }
}

#[test]
fn stddev_and_stdvar_match_prometheus() {
    let zeros = |n: usize| "0 ".repeat(n);
    let h3 = format!(
        "{{{{schema:3 count:7 sum:62 z_bucket:1 buckets:[{}1 {}1 0 1 {}1] n_buckets:[{}1 {}1]}}}}",
        zeros(13),
        zeros(10),
        zeros(27),
        zeros(24),
        zeros(21)
    );
    let cases: Vec<(String, f64, f64)> = vec![
        ("{{schema:2 count:4 sum:10 buckets:[1 0 0 0 1 0 0 1 1]}}".into(), 1.0787993180043811, 1.163807968526718),
        ("{{schema:8 count:10 sum:10 buckets:[1 2 3 4]}}".into(), 0.0048960313898237465, 2.3971123370139447e-05),
        (h3.clone(), 42.94723640026, 1844.4651144196398),
        (
            "{{schema:0 count:10 sum:-112946 z_bucket:0 n_buckets:[0 0 1 1 1 0 1 1 0 0 3 0 0 0 1 0 0 1]}}".into(),
            27556.344499842,
            759352122.1939945,
        ),
        ("{{schema:0 count:10 sum:-100 z_bucket:0 n_buckets:[0 0 0 0 10]}}".into(), 1.3137084989848, 1.725830020304794),
        (h3.replace("sum:62", "sum:NaN"), f64::NAN, f64::NAN),
        (h3.replace("sum:62", "sum:Inf"), f64::INFINITY, f64::INFINITY),
        // By hand: midpoints 1.5 and 2.5 around a mean of 2.
        ("{{schema:-53 count:2 sum:4 custom_values:[1 2 3] offset:1 buckets:[1 1]}}".into(), 0.5, 0.25),
    ];
    for (text, stddev, stdvar) in cases {
        let h = lit(&text);
        assert_close(histogram_stddev(&h), stddev, &format!("stddev {text}"));
        assert_close(histogram_stdvar(&h), stdvar, &format!("stdvar {text}"));
    }
    assert_eq!(lit("{{count:4 sum:10}}").avg(), 2.5);
}

// ---------------------------------------------------------------------------
// Text and JSON.

#[test]
fn go_number_formats() {
    for (v, g, api) in [
        (1.0, "1", "1"),
        (0.25, "0.25", "0.25"),
        (123456.0, "123456", "123456"),
        (1e6, "1e+06", "1000000"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "1e-05", "0.00001"),
        (1.5e-7, "1.5e-07", "1.5e-07"),
        (1e21, "1e+21", "1e+21"),
        (-0.0, "-0", "-0"),
        (f64::NAN, "NaN", "NaN"),
        (f64::INFINITY, "+Inf", "+Inf"),
        (f64::NEG_INFINITY, "-Inf", "-Inf"),
    ] {
        assert_eq!(format_go_g(v), g, "%g of {v}");
        assert_eq!(format_api_float(v), api, "API form of {v}");
    }
}

#[test]
fn literals_parse_every_key() {
    let (literal, rest) = parse_histogram_literal(
        "{{schema:1 count:-3.5 sum:1e3 z_bucket:+2 z_bucket_w:0.001 offset:-2 buckets:[1 2_0 Inf] n_offset:3 n_buckets:[ 4 NaN ] counter_reset_hint:not_reset}}x3 7",
    )
    .unwrap();
    assert_eq!(rest, "x3 7");
    assert!(literal.counter_reset_hint_set);
    let h = literal.histogram;
    assert_eq!(
        (h.schema, h.count, h.sum, h.zero_count, h.zero_threshold),
        (1, -3.5, 1000.0, 2.0, 0.001)
    );
    assert_eq!(h.positive_spans, spans(&[(-2, 3)]));
    assert_eq!(h.positive_buckets, vec![1.0, 20.0, f64::INFINITY]);
    assert_eq!(h.negative_spans, spans(&[(3, 2)]));
    assert!(h.negative_buckets[0] == 4.0 && h.negative_buckets[1].is_nan());
    assert_eq!(h.counter_reset_hint, CounterResetHint::NotCounterReset);
    // An octal integer, as Go's ParseInt with base 0 reads it.
    assert_eq!(lit("{{count:010}}").count, 8.0);
    assert_eq!(lit("{{}}"), FloatHistogram::default());
    assert_eq!(lit("{{ }}"), FloatHistogram::default());
    assert!(
        !parse_histogram_literal("{{count:1}}")
            .unwrap()
            .0
            .counter_reset_hint_set
    );
}

#[test]
fn bad_literals_say_what_is_wrong() {
    let error = |text: &str| parse_histogram_literal(text).unwrap_err().to_string();
    assert_eq!(
        error("{{count:1 count:2}}"),
        "histogram at byte 10: duplicate key \"count\" in histogram"
    );
    assert_eq!(
        error("{{cnt:1}}"),
        "histogram at byte 2: unknown histogram description key \"cnt\""
    );
    assert_eq!(
        error("{{count:x}}"),
        "histogram at byte 8: bad number \"x\""
    );
    assert_eq!(
        error("{{schema:1.5}}"),
        "histogram at byte 9: expected an integer, got 1.5"
    );
    assert_eq!(
        error("{{counter_reset_hint:maybe}}"),
        "histogram at byte 26: unknown counter_reset_hint \"maybe\""
    );
    assert!(error("{{count:1").contains("expected"));
    assert!(
        error("{{buckets:[1 2}}").contains("expected a space or `]`"),
        "{}",
        error("{{buckets:[1 2}}")
    );
    assert!(error("count:1}}").contains("expected `{{`"));
}

#[test]
fn display_writes_the_test_literal() {
    let h = lit(
        "{{schema:0 count:3 sum:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] counter_reset_hint:gauge}}",
    );
    assert_eq!(
        h.to_string(),
        "{{count:3 sum:4 z_bucket:1 z_bucket_w:0.001 counter_reset_hint:gauge buckets:[1 2]}}"
    );
    // Spans are joined into one per side, gaps filled, empty ends dropped.
    let h = FloatHistogram {
        schema: 2,
        count: 3.0,
        positive_spans: spans(&[(-3, 2), (2, 1)]),
        positive_buckets: vec![0.0, 1.0, 2.0],
        negative_spans: spans(&[(1, 1)]),
        negative_buckets: vec![1e6],
        ..Default::default()
    };
    assert_eq!(
        h.to_string(),
        "{{schema:2 count:3 offset:-2 buckets:[1 0 0 2] n_offset:1 n_buckets:[1e+06]}}"
    );
    let custom = lit("{{schema:-53 count:3 custom_values:[1 5] buckets:[1 2]}}");
    assert_eq!(
        custom.to_string(),
        "{{schema:-53 count:3 custom_values:[1 5] buckets:[1 2]}}"
    );
    // Too sparse for one span: Prometheus's description instead.
    let sparse = FloatHistogram {
        count: 2.0,
        positive_spans: spans(&[(-1000, 1), (100_000, 1)]),
        positive_buckets: vec![1.0, 1.0],
        ..Default::default()
    };
    assert!(
        sparse
            .to_string()
            .starts_with("{count:2, sum:0, (4.6663180925160944e-302,"),
        "{sparse}"
    );
}

#[test]
fn prometheus_string_lists_populated_buckets() {
    let h = lit("{{count:5 sum:8 z_bucket:1 z_bucket_w:0.5 buckets:[1 0 2] n_buckets:[1]}}");
    assert_eq!(
        h.to_prometheus_string(),
        "{count:5, sum:8, [-1,-0.5):1, [-0.5,0.5]:1, (0.5,1]:1, (2,4]:2}"
    );
}

#[test]
fn api_json_is_prometheus_shape() {
    let h = lit("{{count:5 sum:8 z_bucket:1 z_bucket_w:0.5 buckets:[1 2] n_buckets:[1]}}");
    let mut out = String::new();
    h.write_api_json(&mut out);
    assert_eq!(
        out,
        r#"{"count":"5","sum":"8","buckets":[[1,"-1","-0.5","1"],[3,"-0.5","0.5","1"],[0,"0.5","1","1"],[0,"1","2","2"]]}"#
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        h.to_api_json()
    );
    // Custom buckets: the first is closed at -Inf; no buckets, no key.
    let custom = lit("{{schema:-53 count:2 sum:1 custom_values:[1] buckets:[1 1]}}");
    assert_eq!(
        custom.to_api_json(),
        serde_json::json!({"count": "2", "sum": "1", "buckets": [[3, "-Inf", "1", "1"], [0, "1", "+Inf", "1"]]})
    );
    assert_eq!(
        lit("{{count:0}}").to_api_json(),
        serde_json::json!({"count": "0", "sum": "0"})
    );
}

#[test]
fn series_notation_expands_by_adding() {
    let base = lit("{{schema:0 sum:0 count:0 buckets:[0 0 0]}}");
    let inc = lit("{{schema:0 sum:1 count:2 buckets:[1 1]}}");
    let series = expand_histogram_series(&base, &inc, 2, false).unwrap();
    assert_eq!(series.len(), 3);
    assert_same(
        "last",
        &compacted(series[2].clone()),
        &lit("{{count:4 sum:2 buckets:[2 2]}}"),
    );
    let down = expand_histogram_series(&series[2], &inc, 1, true).unwrap();
    assert_same(
        "down",
        &compacted(down[1].clone()),
        &lit("{{count:2 sum:1 buckets:[1 1]}}"),
    );
    // Like Prometheus, an increment coarser than the running histogram is refused.
    let coarse = lit("{{schema:-1 count:1 buckets:[1]}}");
    assert_eq!(
        expand_histogram_series(&base, &coarse, 1, false)
            .unwrap_err()
            .to_string(),
        "error combining histograms: cannot merge from schema -1 to 0"
    );
}

/// Every `{{...}}` literal in the shared PromQL test files parses, the
/// `{{a}}+{{b}}xN` notation expands, and each histogram survives a trip
/// through [`Display`](std::fmt::Display) and back. Skipped when the
/// shared files are not there.
#[test]
#[allow(clippy::print_stderr)] // A skip should be visible in the test output.
fn every_literal_in_the_shared_promql_testdata_parses() {
    let dir = std::env::var_os("PROMQL_TESTDATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/promql-testdata")
        });
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no PromQL test data at {}", dir.display());
        return;
    };
    let mut literals = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "test") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let at = |what: &str| format!("{}:{}: {what}", path.display(), n + 1);
            let mut rest = line;
            while let Some(start) = rest.find("{{") {
                let (first, after) = parse_histogram_literal(&rest[start..])
                    .unwrap_or_else(|e| panic!("{}", at(&e.to_string())));
                literals += 1;
                let h = &first.histogram;
                let again = lit(&h.to_string());
                assert!(
                    compacted(again).equals(&compacted(h.clone())),
                    "{}",
                    at(&h.to_string())
                );
                rest = after;
                if let Some(op) = rest.strip_prefix(['+', '-'])
                    && op.starts_with("{{")
                {
                    let (increment, after) = parse_histogram_literal(op)
                        .unwrap_or_else(|e| panic!("{}", at(&e.to_string())));
                    literals += 1;
                    let times: usize = after
                        .strip_prefix('x')
                        .map(|t| {
                            t[..t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len())]
                                .parse()
                                .unwrap()
                        })
                        .unwrap_or(0);
                    expand_histogram_series(h, &increment.histogram, times, rest.starts_with('-'))
                        .unwrap_or_else(|e| panic!("{}", at(&e.to_string())));
                    rest = after;
                }
            }
        }
    }
    assert!(
        literals > 100,
        "only {literals} histogram literals found in {}",
        dir.display()
    );
}
