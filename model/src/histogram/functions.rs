//! The PromQL functions over one native histogram:
//! `histogram_quantile`, `histogram_fraction`, `histogram_stddev` and
//! `histogram_stdvar` (`histogram_count`, `_sum` and `_avg` read fields;
//! see [`FloatHistogram::avg`]). Ported from Prometheus's
//! `promql/quantile.go` and `promql/functions.go`.

use super::{Bucket, FloatHistogram, arith::kahan_inc};

/// Something PromQL reports as an info annotation next to a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramNote {
    /// `histogram_quantile` landed among NaN observations: the result is NaN.
    QuantileNaNResult,
    /// `histogram_quantile` over a histogram with NaN observations, which
    /// skew the result.
    QuantileNaNSkew,
    /// `histogram_fraction` over a histogram with NaN observations, which
    /// lie in no range.
    FractionNaNs,
}

/// The `q`-quantile of the observations in `h` (Prometheus's
/// `HistogramQuantile`).
///
/// The bucket holding the rank is found walking up from the lowest bucket
/// (for q < 0.5, or when `sum` is NaN) or down from the highest. Within it
/// the value is interpolated linearly for custom buckets and the zero
/// bucket, and exponentially (linearly on a log scale) for exponential
/// buckets, mirrored for negative ones. A zero bucket of a histogram with
/// only positive (negative) buckets starts (ends) at 0; the lowest custom
/// bucket starts at 0 unless its upper bound is at most 0, and a quantile in
/// the +Inf custom bucket is that bucket's lower bound. q < 0 gives -Inf,
/// q > 1 +Inf; an empty histogram or a NaN q gives NaN.
pub fn histogram_quantile(q: f64, h: &FloatHistogram) -> (f64, Option<HistogramNote>) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, None);
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let mut buckets = h.all_buckets();
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    if !forward {
        buckets.reverse();
    }
    let mut it = buckets.into_iter();
    let mut bucket = Bucket {
        lower: 0.0,
        upper: 0.0,
        lower_inclusive: false,
        upper_inclusive: false,
        count: 0.0,
        index: 0,
    };
    let mut count = 0.0;
    for b in it.by_ref() {
        bucket = b;
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let custom = h.uses_custom_buckets();
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return (bucket.upper, None);
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return (bucket.lower, None);
        }
    }
    // Rounding can make the running count exceed the total.
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        // Only NaN observations (counted in `count`, in no bucket) should
        // leave the rank unreached; otherwise fall back to the highest bound.
        if h.sum.is_nan() {
            return (f64::NAN, Some(HistogramNote::QuantileNaNResult));
        }
        return (bucket.upper, None);
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let mut note = None;
    if h.sum.is_nan() {
        // Prometheus walks the remaining buckets to see whether NaN
        // observations are missing from them, and in doing so leaves
        // `bucket` at the last one, which the interpolation below then uses.
        // We keep that behaviour so that results agree.
        for b in it {
            bucket = b;
            count += b.count;
        }
        if count < h.count {
            note = Some(HistogramNote::QuantileNaNSkew);
        }
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return (
            bucket.lower + (bucket.upper - bucket.lower) * fraction,
            note,
        );
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            note,
        );
    }
    (
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
        note,
    )
}

/// The estimated fraction of observations between `lower` and `upper`
/// (Prometheus's `HistogramFraction`), interpolating within the buckets the
/// bounds fall into as [`histogram_quantile`] does. NaN for an empty
/// histogram or NaN bounds, 0 when `lower >= upper`.
pub fn histogram_fraction(
    lower: f64,
    upper: f64,
    h: &FloatHistogram,
) -> (f64, Option<HistogramNote>) {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return (f64::NAN, None);
    }
    if lower >= upper {
        return (0.0, None);
    }
    let custom = h.uses_custom_buckets();
    let (mut count, mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let buckets = h.all_buckets();
    let mut it = buckets.into_iter();
    for mut b in it.by_ref() {
        count += b.count;
        let mut zero_bucket = false;
        if b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        let rank_at = |v: f64| {
            if custom || zero_bucket {
                // No interpolation within a bucket that starts at -Inf:
                // it contributes nothing, like the +Inf bucket.
                if b.lower == f64::NEG_INFINITY {
                    return b.count;
                }
                rank + b.count * b.fraction_below(v, true)
            } else {
                rank + b.count * b.fraction_below(v, false)
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = rank_at(lower);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = rank_at(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    let mut note = None;
    if h.sum.is_nan() {
        // NaN observations are in `count` but in no bucket.
        for b in it {
            count += b.count;
        }
        if count < h.count {
            note = Some(HistogramNote::FractionNaNs);
        }
    } else {
        count = h.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    ((upper_rank - lower_rank) / h.count, note)
}

/// `histogram_stdvar`: the variance of the observations, estimated from
/// bucket midpoints (the geometric mean of an exponential bucket's bounds,
/// the arithmetic mean of a custom bucket's, 0 for the zero bucket) around
/// the mean `sum / count`, summed with Kahan-Neumaier compensation.
pub fn histogram_stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut variance, mut c) = (0.0, 0.0);
    let custom = h.uses_custom_buckets();
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let value = if custom {
            (b.upper + b.lower) / 2.0
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let delta = value - mean;
        (variance, c) = kahan_inc(b.count * delta * delta, variance, c);
    }
    (variance + c) / h.count
}

/// `histogram_stddev`: the square root of [`histogram_stdvar`].
pub fn histogram_stddev(h: &FloatHistogram) -> f64 {
    histogram_stdvar(h).sqrt()
}
