//! Classic histograms (`_bucket{le=...}`, `_count`, `_sum` series) turned
//! into native histograms with custom buckets (NHCB, schema -53), as
//! Prometheus's `convertnhcb` package does for scrapes with
//! `convert_classic_histograms_to_nhcb` and for its PromQL test loader.

use super::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Histogram, HistogramValue, Span, delta};

/// Why a classic histogram does not convert. The messages are Prometheus's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NhcbError {
    #[error("bucket boundary must not be NaN")]
    NaNBucket,
    #[error("bucket count must be non-negative: le={le}, count={count}")]
    NegativeBucketCount { le: String, count: String },
    #[error("count must be non-negative: count={0}")]
    NegativeCount(String),
    #[error("count is not cumulative: {0}")]
    NotCumulative(String),
    #[error("count mismatch: count={count} != le={le} count={bucket_count}")]
    CountMismatch {
        count: String,
        le: String,
        bucket_count: String,
    },
}

/// One classic histogram at one timestamp, collected piece by piece (the
/// cumulative count of each `le` bucket, `_count`, `_sum`) in any order,
/// then converted (Prometheus's `TempHistogram`). The first problem met is
/// kept and returned by [`ClassicHistogram::convert`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassicHistogram {
    /// `(le, cumulative count)`, ascending by `le`.
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    sum: f64,
    error: Option<NhcbError>,
}

fn g(v: f64) -> String {
    super::format_go_g(v)
}

impl ClassicHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the cumulative count of the bucket with upper bound `le`; a
    /// repeated bound is ignored, counts must not decrease with the bound.
    pub fn set_bucket_count(&mut self, le: f64, count: f64) {
        if self.error.is_some() {
            return;
        }
        if le.is_nan() {
            self.error = Some(NhcbError::NaNBucket);
            return;
        }
        if count < 0.0 {
            self.error = Some(NhcbError::NegativeBucketCount {
                le: g(le),
                count: g(count),
            });
            return;
        }
        let i = self.buckets.partition_point(|b| b.0 < le);
        if self.buckets.get(i).is_some_and(|b| b.0 == le) {
            return;
        }
        if i > 0 && count < self.buckets[i - 1].1 {
            self.error = Some(NhcbError::NotCumulative(format!(
                "{} < {}",
                g(count),
                g(self.buckets[i - 1].1)
            )));
            return;
        }
        if let Some(next) = self.buckets.get(i)
            && count > next.1
        {
            self.error = Some(NhcbError::NotCumulative(format!(
                "{} > {}",
                g(count),
                g(next.1)
            )));
            return;
        }
        self.buckets.insert(i, (le, count));
    }

    /// Records `_count`.
    pub fn set_count(&mut self, count: f64) {
        if self.error.is_some() {
            return;
        }
        if count < 0.0 {
            self.error = Some(NhcbError::NegativeCount(g(count)));
            return;
        }
        self.count = Some(count);
    }

    /// Records `_sum`.
    pub fn set_sum(&mut self, sum: f64) {
        if self.error.is_none() {
            self.sum = sum;
        }
    }

    /// The native histogram: integer counts when every count is a whole
    /// number (compacted as Prometheus does, keeping runs of up to two empty
    /// buckets), float counts otherwise (compacted fully). Without `_count`
    /// the highest bucket's count is the count; without a `+Inf` bucket one
    /// holding the count is added. The `+Inf` bucket must hold the count.
    pub fn convert(&self) -> Result<HistogramValue, NhcbError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut buckets = self.buckets.clone();
        let count = match (self.count, buckets.last()) {
            (Some(c), _) => c,
            (None, Some(last)) => last.1,
            (None, None) => 0.0,
        };
        if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
            buckets.push((f64::INFINITY, count));
        }
        let last = buckets[buckets.len() - 1];
        let integral = |v: f64| v == v.round() && v.abs() < 9.0e18;
        let custom_values: Vec<f64> = buckets
            .iter()
            .filter(|b| b.0 != f64::INFINITY)
            .map(|b| b.0)
            .collect();
        let span = vec![Span {
            offset: 0,
            length: buckets.len() as u32,
        }];
        if buckets.iter().all(|b| integral(b.1)) && integral(count) && count >= 0.0 {
            let mut absolute = Vec::with_capacity(buckets.len());
            let mut previous = 0i64;
            for b in &buckets {
                let c = b.1 as i64;
                absolute.push(c.wrapping_sub(previous));
                previous = c;
            }
            if count as u64 != last.1 as u64 {
                return Err(NhcbError::CountMismatch {
                    count: format!("{}", count as u64),
                    le: g(last.0),
                    bucket_count: g(last.1),
                });
            }
            let mut h = Histogram {
                schema: CUSTOM_BUCKETS_SCHEMA,
                count: count as u64,
                sum: self.sum,
                positive_spans: span,
                positive_buckets: delta(&absolute),
                custom_values,
                ..Histogram::default()
            };
            // Compaction only fails on inconsistent spans, which these are not.
            let _ = h.compact(2);
            return Ok(HistogramValue::Int(h));
        }
        let mut previous = 0.0;
        let counts = buckets
            .iter()
            .map(|b| {
                let c = b.1 - previous;
                previous = b.1;
                c
            })
            .collect();
        if count != last.1 {
            return Err(NhcbError::CountMismatch {
                count: g(count),
                le: g(last.0),
                bucket_count: g(last.1),
            });
        }
        let mut h = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count,
            sum: self.sum,
            positive_spans: span,
            positive_buckets: counts,
            custom_values,
            ..FloatHistogram::default()
        };
        let _ = h.compact(0);
        Ok(HistogramValue::Float(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_counts_give_an_integer_histogram() {
        let mut c = ClassicHistogram::new();
        c.set_bucket_count(1.0, 2.0);
        c.set_bucket_count(f64::INFINITY, 5.0);
        c.set_bucket_count(0.5, 1.0);
        c.set_count(5.0);
        c.set_sum(7.5);
        let HistogramValue::Int(h) = c.convert().unwrap() else {
            panic!("expected integer counts")
        };
        assert_eq!(h.schema, CUSTOM_BUCKETS_SCHEMA);
        assert_eq!(h.custom_values, [0.5, 1.0]);
        assert_eq!((h.count, h.sum), (5, 7.5));
        let f = h.to_float();
        assert_eq!(f.positive_buckets, [1.0, 1.0, 3.0]);
        h.validate().unwrap();
    }

    #[test]
    fn fractional_counts_and_a_missing_inf_bucket() {
        let mut c = ClassicHistogram::new();
        c.set_bucket_count(1.0, 0.5);
        c.set_bucket_count(2.0, 0.5);
        c.set_count(2.5);
        let HistogramValue::Float(h) = c.convert().unwrap() else {
            panic!("expected float counts")
        };
        assert_eq!(h.custom_values, [1.0, 2.0]);
        // The empty middle bucket is compacted away.
        assert_eq!(
            h.positive_spans,
            [
                Span {
                    offset: 0,
                    length: 1
                },
                Span {
                    offset: 1,
                    length: 1
                }
            ]
        );
        assert_eq!(h.positive_buckets, [0.5, 2.0]);
    }

    #[test]
    fn problems_are_named() {
        let mut c = ClassicHistogram::new();
        c.set_bucket_count(1.0, 3.0);
        c.set_bucket_count(2.0, 2.0);
        assert_eq!(
            c.convert().unwrap_err().to_string(),
            "count is not cumulative: 2 < 3"
        );
        let mut c = ClassicHistogram::new();
        c.set_bucket_count(f64::INFINITY, 3.0);
        c.set_count(4.0);
        assert!(matches!(
            c.convert().unwrap_err(),
            NhcbError::CountMismatch { .. }
        ));
    }
}
