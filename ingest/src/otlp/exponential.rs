//! OTLP exponential histograms as Prometheus native histograms, as
//! Prometheus's OTLP receiver converts them (`exponentialToNativeHistogram`):
//!
//! - the scale is the schema; a scale above 8 is brought down to 8 by
//!   merging each 2^(scale-8) neighbouring buckets, one below -4 is refused;
//! - OTel's bucket `i` covers `(base^i, base^(i+1)]` and Prometheus's
//!   `(base^(i-1), base^i]`, so an index moves up by one (after merging);
//! - dense counts become spans of populated buckets, a run of more than two
//!   empty buckets splitting a span (as Prometheus's client does);
//! - a cumulative point's counter-reset hint is "unknown", a delta point's
//!   "gauge" when asked for (Prometheus's native delta ingestion; Sextant's
//!   metrics pipeline instead sums delta points into a running total, as
//!   it does for delta sums, and asks for "unknown");
//! - a point flagged "no recorded value" is the staleness marker;
//! - the zero threshold is the point's when it sets one, else 1e-128
//!   (Prometheus always uses 1e-128: a point with a wider zero bucket would
//!   read narrower there).

use sextant_model::STALE_NAN_BITS;
use sextant_model::histogram::{CounterResetHint, Histogram, MAX_BUCKETS, Span};

use super::proto::metrics::{ExponentialBuckets, ExponentialHistogramDataPoint, NO_RECORDED_VALUE};

/// Prometheus's zero threshold for converted points.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// The largest and smallest scales Prometheus's schemas reach.
const SCHEMA_MAX: i32 = 8;
const SCHEMA_MIN: i32 = -4;

/// `point` as a native histogram, or why it cannot be one.
pub fn to_native(point: &ExponentialHistogramDataPoint, delta: bool) -> Result<Histogram, String> {
    if point.scale < SCHEMA_MIN {
        return Err(format!(
            "cannot convert an exponential histogram of scale {} (the smallest is {SCHEMA_MIN})",
            point.scale
        ));
    }
    let scale_down = (point.scale - SCHEMA_MAX).max(0) as u32;
    let (positive_spans, positive_buckets) = sparse(point.positive.as_ref(), scale_down)?;
    let (negative_spans, negative_buckets) = sparse(point.negative.as_ref(), scale_down)?;
    let stale = point.flags & NO_RECORDED_VALUE != 0;
    Ok(Histogram {
        counter_reset_hint: if delta {
            CounterResetHint::Gauge
        } else {
            CounterResetHint::Unknown
        },
        schema: point.scale.min(SCHEMA_MAX),
        zero_threshold: if point.zero_threshold > 0.0 && point.zero_threshold.is_finite() {
            point.zero_threshold
        } else {
            DEFAULT_ZERO_THRESHOLD
        },
        zero_count: point.zero_count,
        count: if stale { STALE_NAN_BITS } else { point.count },
        sum: if stale {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            point.sum.unwrap_or(0.0)
        },
        positive_spans,
        negative_spans,
        positive_buckets,
        negative_buckets,
        custom_values: Vec::new(),
    })
}

/// Dense OTel buckets as Prometheus spans and delta-encoded counts.
fn sparse(
    buckets: Option<&ExponentialBuckets>,
    scale_down: u32,
) -> Result<(Vec<Span>, Vec<i64>), String> {
    let Some(buckets) = buckets else {
        return Ok((Vec::new(), Vec::new()));
    };
    if buckets.bucket_counts.len() > MAX_BUCKETS {
        return Err(format!(
            "an exponential histogram of {} buckets (at most {MAX_BUCKETS})",
            buckets.bucket_counts.len()
        ));
    }
    // Merged counts by Prometheus index, ascending (indexes never go down).
    let mut merged: Vec<(i64, u64)> = Vec::new();
    for (i, &count) in buckets.bucket_counts.iter().enumerate() {
        let otel = i64::from(buckets.offset) + i as i64;
        let index = (otel >> scale_down) + 1;
        match merged.last_mut() {
            Some((last, total)) if *last == index => {
                *total = total
                    .checked_add(count)
                    .ok_or("an exponential histogram's bucket counts overflow")?;
            }
            _ => merged.push((index, count)),
        }
    }
    let mut spans: Vec<Span> = Vec::new();
    let mut deltas: Vec<i64> = Vec::new();
    let mut previous_count: i64 = 0;
    let mut end: Option<i64> = None; // the index after the last bucket written
    for (index, count) in merged {
        if count == 0 {
            continue;
        }
        let count = i64::try_from(count).map_err(|_| "a bucket count past 2^63")?;
        let index32 =
            i32::try_from(index).map_err(|_| format!("bucket index {index} out of range"))?;
        match end {
            None => spans.push(Span {
                offset: index32,
                length: 0,
            }),
            Some(end) => {
                let gap = index - end;
                if gap > 2 {
                    spans.push(Span {
                        offset: i32::try_from(gap).map_err(|_| "a gap out of range")?,
                        length: 0,
                    });
                } else {
                    // Small gaps are written as empty buckets.
                    for _ in 0..gap {
                        deltas.push(-previous_count);
                        previous_count = 0;
                        if let Some(span) = spans.last_mut() {
                            span.length += 1;
                        }
                    }
                }
            }
        }
        deltas.push(count - previous_count);
        previous_count = count;
        if let Some(span) = spans.last_mut() {
            span.length += 1;
        }
        end = Some(index + 1);
    }
    Ok((spans, deltas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(scale: i32, offset: i32, counts: &[u64]) -> ExponentialHistogramDataPoint {
        ExponentialHistogramDataPoint {
            scale,
            count: counts.iter().sum::<u64>() + 1,
            sum: Some(10.5),
            zero_count: 1,
            positive: Some(ExponentialBuckets {
                offset,
                bucket_counts: counts.to_vec(),
            }),
            ..Default::default()
        }
    }

    fn spans(pairs: &[(i32, u32)]) -> Vec<Span> {
        pairs
            .iter()
            .map(|&(offset, length)| Span { offset, length })
            .collect()
    }

    #[test]
    fn indexes_move_up_by_one_and_gaps_split_spans() {
        // OTel buckets 0..=6 at scale 0: counts 2, 3, 0, 0, 0, 1, 0.
        let h = to_native(&point(0, 0, &[2, 3, 0, 0, 0, 1, 0]), false).unwrap();
        assert_eq!(h.schema, 0);
        assert_eq!(h.counter_reset_hint, CounterResetHint::Unknown);
        // Prometheus indexes 1, 2, then 6 after three empty buckets.
        assert_eq!(h.positive_spans, spans(&[(1, 2), (3, 1)]));
        assert_eq!(h.positive_buckets, [2, 1, -2]);
        assert_eq!((h.count, h.zero_count, h.sum), (7, 1, 10.5));
        assert_eq!(h.zero_threshold, DEFAULT_ZERO_THRESHOLD);
        h.validate().unwrap();
        // Bucket bounds: index 1 of schema 0 is (1, 2], as OTel's index 0.
        let first = h.to_float().positive_buckets().next().unwrap();
        assert_eq!((first.lower, first.upper, first.count), (1.0, 2.0, 2.0));
    }

    #[test]
    fn small_gaps_are_empty_buckets() {
        // OTel -2..=1: 4, 0, 0, 5 → Prometheus -1..=2 in one span.
        let h = to_native(&point(1, -2, &[4, 0, 0, 5]), true).unwrap();
        assert_eq!(h.positive_spans, spans(&[(-1, 4)]));
        assert_eq!(h.positive_buckets, [4, -4, 0, 5]);
        assert_eq!(h.counter_reset_hint, CounterResetHint::Gauge);
        h.validate().unwrap();
    }

    #[test]
    fn scales_past_8_merge_neighbours() {
        // Scale 10 down to 8: four OTel buckets make one. OTel 4..=11 are
        // Prometheus (4>>2)+1 = 2 (four buckets) and 3 (four buckets).
        let h = to_native(&point(10, 4, &[1, 1, 1, 1, 2, 0, 0, 1]), false).unwrap();
        assert_eq!(h.schema, 8);
        assert_eq!(h.positive_spans, spans(&[(2, 2)]));
        assert_eq!(h.positive_buckets, [4, -1]);
        // A negative offset rounds down: OTel -1 at scale 9 is (-1>>1)+1 = 0.
        let h = to_native(&point(9, -1, &[3, 2]), false).unwrap();
        assert_eq!(h.positive_spans, spans(&[(0, 2)]));
        assert_eq!(h.positive_buckets, [3, -1]);
    }

    #[test]
    fn stale_points_and_refusals() {
        let mut p = point(0, 0, &[1]);
        p.flags = NO_RECORDED_VALUE;
        let h = to_native(&p, false).unwrap();
        assert_eq!(h.sum.to_bits(), STALE_NAN_BITS);
        let low = to_native(&point(-5, 0, &[1]), false).unwrap_err();
        assert!(low.contains("scale -5"), "{low}");
        let far = to_native(&point(0, i32::MAX, &[1]), false).unwrap_err();
        assert!(far.contains("out of range"), "{far}");
        let mut wide = point(0, 0, &[1]);
        wide.zero_threshold = 0.001;
        assert_eq!(to_native(&wide, false).unwrap().zero_threshold, 0.001);
        // Empty buckets on both sides: only the zero bucket.
        let none = to_native(&point(0, 5, &[0, 0]), false).unwrap();
        assert!(none.positive_spans.is_empty() && none.positive_buckets.is_empty());
    }
}
