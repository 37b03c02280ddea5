//! Native histograms in remote write: 1.0's `prometheus.Histogram` and
//! 2.0's `io.prometheus.write.v2.Histogram`, which number their fields
//! alike (2.0 adds `start_timestamp`, field 17).
//!
//! A histogram whose `count` is `count_float` is a float histogram (its
//! `zero_count_float` and absolute `*_counts` are read), otherwise an
//! integer one (`zero_count_int` and delta-encoded `*_deltas`), as
//! Prometheus's `IsFloatHistogram` tells them apart. Each is checked as
//! Prometheus's TSDB checks it before storing; a bad one is refused by
//! the name of its field, and the rest of the request kept.

use sextant_model::histogram::{
    CounterResetHint, FloatHistogram, Histogram, HistogramError, HistogramSample, HistogramValue,
    Side, Span,
};

use crate::wire::{Fields, Value, push_doubles, push_sint64s, zigzag32};

/// What a histogram message says, before it is checked.
#[derive(Debug, Default)]
struct Raw {
    /// `count_float` was the last of the `count` oneof seen.
    float: bool,
    count_int: u64,
    count_float: f64,
    sum: f64,
    schema: i32,
    zero_threshold: f64,
    zero_count_int: u64,
    zero_count_float: f64,
    negative_spans: Vec<Span>,
    negative_deltas: Vec<i64>,
    negative_counts: Vec<f64>,
    positive_spans: Vec<Span>,
    positive_deltas: Vec<i64>,
    positive_counts: Vec<f64>,
    reset_hint: i32,
    timestamp: i64,
    custom_values: Vec<f64>,
}

/// Reads a histogram message. A wire-format error is the `Err` (the whole
/// request fails, as it does for prost); a histogram that decodes but is
/// not valid is refused inside, after the path of the field at fault
/// (`.positive_spans: positive side: ...`). 2.0's `start_timestamp` is
/// read and not used yet.
pub(super) fn parse(raw: &[u8]) -> Result<Result<HistogramSample, String>, String> {
    let mut h = Raw::default();
    let mut fields = Fields::new(raw);
    let wrong = |field: u32| format!("field {field} of Histogram has the wrong wire type");
    while let Some((field, value)) = fields.next()? {
        match (field, value) {
            (1, Value::Varint(v)) => (h.count_int, h.float) = (v, false),
            (2, Value::Fixed64(bits)) => (h.count_float, h.float) = (f64::from_bits(bits), true),
            (3, Value::Fixed64(bits)) => h.sum = f64::from_bits(bits),
            (4, Value::Varint(v)) => h.schema = zigzag32(v),
            (5, Value::Fixed64(bits)) => h.zero_threshold = f64::from_bits(bits),
            // The zero_count oneof: the last seen sets it, the other reads 0.
            (6, Value::Varint(v)) => (h.zero_count_int, h.zero_count_float) = (v, 0.0),
            (7, Value::Fixed64(bits)) => {
                (h.zero_count_int, h.zero_count_float) = (0, f64::from_bits(bits));
            }
            (8, Value::Bytes(span)) => h.negative_spans.push(parse_span(span)?),
            (9, value) => push_sint64s(value, &mut h.negative_deltas)?,
            (10, value) => push_doubles(value, &mut h.negative_counts)?,
            (11, Value::Bytes(span)) => h.positive_spans.push(parse_span(span)?),
            (12, value) => push_sint64s(value, &mut h.positive_deltas)?,
            (13, value) => push_doubles(value, &mut h.positive_counts)?,
            (14, Value::Varint(v)) => h.reset_hint = v as i32,
            (15, Value::Varint(v)) => h.timestamp = v as i64,
            (16, value) => push_doubles(value, &mut h.custom_values)?,
            // 2.0's start_timestamp: no zero histogram is owed for it yet.
            (17, Value::Varint(_)) => {}
            (1..=8 | 11 | 14 | 15 | 17, _) => return Err(wrong(field)),
            _ => {}
        }
    }
    Ok(h.into_sample())
}

/// A `BucketSpan`: `sint32 offset = 1`, `uint32 length = 2`.
fn parse_span(raw: &[u8]) -> Result<Span, String> {
    let mut span = Span::default();
    let mut fields = Fields::new(raw);
    while let Some((field, value)) = fields.next()? {
        match (field, value) {
            (1, Value::Varint(v)) => span.offset = zigzag32(v),
            (2, Value::Varint(v)) => span.length = v as u32,
            (1 | 2, _) => {
                return Err(format!(
                    "field {field} of BucketSpan has the wrong wire type"
                ));
            }
            _ => {}
        }
    }
    Ok(span)
}

/// The counter reset hint of `ResetHint` (an unknown value reads as unknown).
pub(crate) fn reset_hint(code: i32) -> CounterResetHint {
    match code {
        1 => CounterResetHint::CounterReset,
        2 => CounterResetHint::NotCounterReset,
        3 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    }
}

impl Raw {
    fn into_sample(self) -> Result<HistogramSample, String> {
        let float = self.float;
        let value = if float {
            HistogramValue::Float(FloatHistogram {
                counter_reset_hint: reset_hint(self.reset_hint),
                schema: self.schema,
                zero_threshold: self.zero_threshold,
                zero_count: self.zero_count_float,
                count: self.count_float,
                sum: self.sum,
                positive_spans: self.positive_spans,
                negative_spans: self.negative_spans,
                positive_buckets: self.positive_counts,
                negative_buckets: self.negative_counts,
                custom_values: self.custom_values,
            })
        } else {
            HistogramValue::Int(Histogram {
                counter_reset_hint: reset_hint(self.reset_hint),
                schema: self.schema,
                zero_threshold: self.zero_threshold,
                zero_count: self.zero_count_int,
                count: self.count_int,
                sum: self.sum,
                positive_spans: self.positive_spans,
                negative_spans: self.negative_spans,
                positive_buckets: self.positive_deltas,
                negative_buckets: self.negative_deltas,
                custom_values: self.custom_values,
            })
        };
        match value.validate() {
            Ok(()) => Ok(HistogramSample {
                timestamp_ms: self.timestamp,
                value,
            }),
            Err(e) => Err(format!(".{}: {e}", field_at_fault(&e, float))),
        }
    }
}

/// The remote write field a validation error is about.
fn field_at_fault(error: &HistogramError, float: bool) -> &'static str {
    use HistogramError as E;
    let buckets = |side: &Side| match (side, float) {
        (Side::Negative, false) => "negative_deltas",
        (Side::Negative, true) => "negative_counts",
        (_, false) => "positive_deltas",
        (_, true) => "positive_counts",
    };
    let spans = |side: &Side| match side {
        Side::Negative => "negative_spans",
        _ => "positive_spans",
    };
    match error {
        E::InvalidSchema(_) => "schema",
        E::NegativeCount(_) => "count_float",
        E::CountMismatch { .. } | E::CountNotBigEnough { .. } => "count_int",
        E::NegativeBucketCount { side, .. } | E::CountOverflow { side } => buckets(side),
        E::NegativeZeroCount(_) => "zero_count_float",
        E::SpanNegativeOffset { side, .. }
        | E::SpansBucketsMismatch { side, .. }
        | E::IndexOutOfRange { side } => spans(side),
        E::CustomBucketsZeroCount if float => "zero_count_float",
        E::CustomBucketsZeroCount => "zero_count_int",
        E::CustomBucketsZeroThreshold | E::ZeroThresholdNaN => "zero_threshold",
        E::CustomBucketsNegativeSpans => "negative_spans",
        E::CustomBucketsNegativeBuckets if float => "negative_counts",
        E::CustomBucketsNegativeBuckets => "negative_deltas",
        E::CustomBoundsTooFew { .. } => "positive_spans",
        _ => "custom_values",
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::super::proto::{self, BucketSpan, histogram};
    use super::*;

    fn span(offset: i32, length: u32) -> BucketSpan {
        BucketSpan { offset, length }
    }

    /// An integer histogram: 5 observations, 1 in the zero bucket, buckets
    /// 1 and 2 (counts 2, 1) and -1 (count 1) at schema 1.
    pub(crate) fn int_histogram() -> proto::Histogram {
        proto::Histogram {
            count: Some(histogram::Count::CountInt(5)),
            sum: 7.5,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
            negative_spans: vec![span(-1, 1)],
            negative_deltas: vec![1],
            positive_spans: vec![span(1, 2)],
            positive_deltas: vec![2, -1],
            reset_hint: 2,
            timestamp: 1234,
            ..proto::Histogram::default()
        }
    }

    #[test]
    fn an_integer_histogram_keeps_every_field() {
        let read = parse(&int_histogram().encode_to_vec()).unwrap();
        let sample = read.unwrap();
        assert_eq!(sample.timestamp_ms, 1234);
        let HistogramValue::Int(h) = sample.value else {
            panic!("not an integer histogram")
        };
        assert_eq!((h.schema, h.count, h.zero_count, h.sum), (1, 5, 1, 7.5));
        assert_eq!(h.zero_threshold, 0.001);
        assert_eq!(
            h.positive_spans,
            [Span {
                offset: 1,
                length: 2
            }]
        );
        assert_eq!(h.positive_buckets, [2, -1]);
        assert_eq!(h.negative_buckets, [1]);
        assert_eq!(h.negative_spans[0].offset, -1);
        assert_eq!(h.counter_reset_hint, CounterResetHint::NotCounterReset);
    }

    #[test]
    fn float_and_custom_bucket_histograms() {
        let nhcb = proto::Histogram {
            count: Some(histogram::Count::CountFloat(3.5)),
            sum: 2.0,
            schema: -53,
            positive_spans: vec![span(0, 3)],
            positive_counts: vec![1.0, 0.5, 2.0],
            custom_values: vec![0.1, 1.0],
            reset_hint: 3,
            ..proto::Histogram::default()
        };
        let sample = parse(&nhcb.encode_to_vec()).unwrap().unwrap();
        let HistogramValue::Float(h) = sample.value else {
            panic!("not a float histogram")
        };
        assert_eq!(h.custom_values, [0.1, 1.0]);
        assert_eq!(h.positive_buckets, [1.0, 0.5, 2.0]);
        assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
    }

    #[test]
    fn bad_histograms_name_their_field() {
        type Spoil = fn(&mut proto::Histogram);
        let cases: [(Spoil, &str); 5] = [
            (|h| h.schema = 9, ".schema: histogram has an invalid schema"),
            (
                |h| h.positive_deltas = vec![2],
                ".positive_spans: positive side: spans need 2 buckets, have 1 buckets",
            ),
            (
                |h| h.negative_deltas = vec![-1],
                ".negative_deltas: negative side: bucket number 1 has observation count of -1",
            ),
            (
                |h| h.count = Some(histogram::Count::CountInt(9)),
                ".count_int: 5 observations found in buckets, but the Count field is 9",
            ),
            (
                |h| h.custom_values = vec![1.0],
                ".custom_values: histogram with exponential schema must not have custom bounds",
            ),
        ];
        for (spoil, want) in cases {
            let mut h = int_histogram();
            spoil(&mut h);
            let err = parse(&h.encode_to_vec()).unwrap().unwrap_err();
            assert!(err.starts_with(want), "{err}\n does not start with\n{want}");
        }
        // Wire errors fail the request.
        let err = parse(&[0x20 | 2, 0]).err().unwrap();
        assert!(err.contains("field 4 of Histogram"), "{err}");
        let err = parse(&[0x52, 3, 0, 0, 0]).err().unwrap();
        assert!(err.contains("multiple of 8"), "{err}");
    }

    #[test]
    fn a_stale_marker_stays_one() {
        let stale = proto::Histogram {
            count: Some(histogram::Count::CountInt(0)),
            sum: f64::from_bits(sextant_model::STALE_NAN_BITS),
            timestamp: 5,
            ..proto::Histogram::default()
        };
        let sample = parse(&stale.encode_to_vec()).unwrap().unwrap();
        assert!(sample.value.is_stale());
    }

    #[test]
    fn the_reader_reads_what_prost_reads() {
        let mut h = int_histogram();
        h.positive_counts = vec![1.0, 2.0];
        h.negative_counts = vec![0.25];
        h.count = Some(histogram::Count::CountFloat(4.0));
        h.zero_count = Some(histogram::ZeroCount::ZeroCountFloat(0.5));
        let raw = h.encode_to_vec();
        let back = proto::Histogram::decode(raw.as_slice()).unwrap();
        let HistogramValue::Float(f) = parse(&raw).unwrap().unwrap().value else {
            panic!("not a float histogram")
        };
        assert_eq!(f.zero_count, 0.5);
        assert_eq!(f.count, 4.0);
        assert_eq!(back.positive_counts, f.positive_buckets);
        assert_eq!(back.negative_counts, f.negative_buckets);
    }
}
