//! Native histograms: Prometheus's sparse, high-resolution histograms, their
//! arithmetic, and the PromQL functions over them (pure code, no storage).
//!
//! # Encoding
//!
//! A native histogram counts observations in buckets whose bounds follow
//! from a *schema*. For an exponential schema `s` (-4..=8) every power of two
//! is split into `2^s` buckets, so bucket `i` covers `(2^((i-1)/2^s),
//! 2^(i/2^s)]`; bucket 0 ends at 1. Negative observations go into a mirrored
//! set of buckets (bucket `i` covers `[-2^(i/2^s), -2^((i-1)/2^s))`), and
//! observations with an absolute value up to `zero_threshold` into the *zero
//! bucket* (`zero_count`). Schema -53 (NHCB, native histograms with custom
//! buckets) takes upper bounds from `custom_values` instead: bucket `i` covers
//! `(custom_values[i-1], custom_values[i]]`, the first starts at -Inf and the
//! one past the last bound ends at +Inf; it has no zero bucket and no
//! negative buckets.
//!
//! Only populated stretches of buckets are stored. Each side has *spans*
//! (`offset`, `length`): the first span's offset is the index of its first
//! bucket, each later span's offset the number of buckets skipped since the
//! end of the previous span (never negative). The counts of the buckets the
//! spans cover follow in order: absolute in a [`FloatHistogram`],
//! delta-encoded in a [`Histogram`] (the first count absolute, each next one
//! the difference to its predecessor), as in the protobuf exposition format
//! and Prometheus's chunks.
//!
//! # Semantics
//!
//! Everything follows Prometheus's `model/histogram` package and
//! `promql/quantile.go` (commit d15adb9ad7 of prometheus/prometheus): the
//! same validation rules and messages, the same bucket bounds bit for bit,
//! the same reconciliation of zero buckets and schemas in [`FloatHistogram::add`],
//! the same counter reset rules, the same quantile interpolation. Where the
//! bucket *layout* an operation leaves behind could differ (Prometheus may
//! leave adjacent spans unmerged), the buckets and their counts are the same
//! and [`FloatHistogram::compact`] brings both to one form.
//!
//! Unlike Prometheus, nothing here panics: inconsistent histograms (spans
//! that do not match the buckets, indices beyond `i32`) make operations
//! return a [`HistogramError`], and no operation grows a histogram beyond
//! [`MAX_BUCKETS`].

mod arith;
mod bounds;
mod functions;
mod nhcb;
mod text;

pub use arith::ArithmeticNotes;
pub use bounds::{
    CUSTOM_BUCKETS_SCHEMA, EXPONENTIAL_SCHEMA_MAX, EXPONENTIAL_SCHEMA_MIN, bucket_bound,
    exponential_bound, is_custom_buckets_schema, is_exponential_schema, is_valid_schema,
    target_index,
};
pub use functions::{
    HistogramNote, histogram_fraction, histogram_quantile, histogram_stddev, histogram_stdvar,
};
pub use nhcb::{ClassicHistogram, NhcbError};
pub use text::{
    ApiBucket, ApiHistogram, HistogramLiteral, ParseHistogramError, expand_histogram_series,
    format_api_float, format_go_g, parse_histogram_literal,
};

use std::fmt;

/// The most buckets (both sides together, or custom bounds) any operation
/// here produces: more than an exponential schema can address across the
/// range of an `f64` (about 2^19 per side at schema 8), so valid histograms
/// never reach it, while a hostile one (buckets at indices 2^31 apart) gets
/// an error instead of gigabytes of empty buckets.
pub const MAX_BUCKETS: usize = 1 << 21;

/// A stretch of consecutive buckets. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// For the first span the index of its first bucket; for later spans the
    /// number of buckets skipped since the previous span ended (>= 0).
    pub offset: i32,
    /// How many buckets the span covers.
    pub length: u32,
}

/// What is known about a counter reset at this sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum CounterResetHint {
    /// Nothing is known; readers detect resets themselves.
    #[default]
    Unknown,
    /// The counter was definitely reset here.
    CounterReset,
    /// The counter was definitely not reset here.
    NotCounterReset,
    /// A gauge histogram: counts go up and down, resets do not apply.
    Gauge,
}

/// A native histogram sample's value as it is stored: integer counts (as
/// scraped and sent), or float counts (recording rules, OTLP conversions
/// with fractional scaling, remote write's float histograms).
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramValue {
    Int(Histogram),
    Float(FloatHistogram),
}

impl HistogramValue {
    /// The histogram with float counts, as PromQL computes with it.
    pub fn to_float(&self) -> FloatHistogram {
        match self {
            Self::Int(h) => h.to_float(),
            Self::Float(h) => h.clone(),
        }
    }

    /// Checks it as Prometheus does before storing it.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Int(h) => h.validate(),
            Self::Float(h) => h.validate(),
        }
    }

    /// Whether this is Prometheus's staleness marker (a sum that is the stale NaN).
    pub fn is_stale(&self) -> bool {
        crate::is_stale_nan(self.sum())
    }

    pub fn sum(&self) -> f64 {
        match self {
            Self::Int(h) => h.sum,
            Self::Float(h) => h.sum,
        }
    }

    pub fn schema(&self) -> i32 {
        match self {
            Self::Int(h) => h.schema,
            Self::Float(h) => h.schema,
        }
    }

    /// Buckets held: both sides' and, for custom buckets, the bounds.
    pub fn bucket_count(&self) -> usize {
        match self {
            Self::Int(h) => {
                h.positive_buckets.len() + h.negative_buckets.len() + h.custom_values.len()
            }
            Self::Float(h) => {
                h.positive_buckets.len() + h.negative_buckets.len() + h.custom_values.len()
            }
        }
    }

    pub fn counter_reset_hint(&self) -> CounterResetHint {
        match self {
            Self::Int(h) => h.counter_reset_hint,
            Self::Float(h) => h.counter_reset_hint,
        }
    }
}

/// One native histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    pub value: HistogramValue,
}

/// A native histogram with integer counts, as it is exposed, sent over
/// remote write and stored. Bucket counts are delta-encoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    pub counter_reset_hint: CounterResetHint,
    /// -4..=8 for exponential buckets, [`CUSTOM_BUCKETS_SCHEMA`] for custom ones.
    pub schema: i32,
    /// Observations with an absolute value up to this go into the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Observations in total (NaN observations count here but in no bucket).
    pub count: u64,
    /// Sum of observations (also Prometheus's staleness marker when it is the stale NaN).
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// The first count absolute, every next one the delta to the previous.
    pub positive_buckets: Vec<i64>,
    pub negative_buckets: Vec<i64>,
    /// Upper bounds of the custom buckets (schema -53 only), strictly
    /// increasing, finite; the last bucket up to +Inf is implied.
    pub custom_values: Vec<f64>,
}

/// A native histogram with float counts, as PromQL computes with them
/// (rates and averages make counts fractional). Bucket counts are absolute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    /// -4..=8 for exponential buckets, [`CUSTOM_BUCKETS_SCHEMA`] for custom ones.
    pub schema: i32,
    /// Observations with an absolute value up to this go into the zero bucket.
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub negative_spans: Vec<Span>,
    /// Absolute counts of the buckets the spans cover.
    pub positive_buckets: Vec<f64>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (schema -53 only).
    pub custom_values: Vec<f64>,
}

/// One bucket with its bounds, as the bucket iterators yield it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket<C = f64> {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: C,
    /// The bucket's index in its schema (meaningless for the zero bucket).
    pub index: i32,
}

impl Bucket<f64> {
    /// The fraction (0..=1) of this bucket's width at or below `v`, for `v`
    /// strictly inside finite bounds: linear for custom buckets and the zero
    /// bucket, on a logarithmic scale for exponential buckets (Prometheus's
    /// `Bucket.FractionBelow`).
    pub fn fraction_below(&self, v: f64, linear: bool) -> f64 {
        if linear {
            return (v - self.lower) / (self.upper - self.lower);
        }
        let log_lower = self.lower.abs().log2();
        let log_upper = self.upper.abs().log2();
        let log_v = v.abs().log2();
        if v > 0.0 {
            return (log_v - log_lower) / (log_upper - log_lower);
        }
        1.0 - (log_v - log_upper) / (log_lower - log_upper)
    }
}

impl fmt::Display for Bucket<f64> {
    /// `[lower,upper):count` with brackets for inclusive ends, as Prometheus writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = if self.lower_inclusive { '[' } else { '(' };
        let close = if self.upper_inclusive { ']' } else { ')' };
        write!(
            f,
            "{open}{},{}{close}:{}",
            format_go_g(self.lower),
            format_go_g(self.upper),
            format_go_g(self.count)
        )
    }
}

/// Which side of a histogram a problem is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Positive,
    Negative,
    /// The buckets of a custom-bucket histogram.
    Custom,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Positive => "positive side",
            Side::Negative => "negative side",
            Side::Custom => "custom buckets",
        })
    }
}

/// Why a histogram is invalid or an operation on it failed. The messages
/// are Prometheus's, so that an error a user sees reads the same.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    #[error(
        "histogram has an invalid schema, which must be between -4 and 8 for exponential buckets, or -53 for custom buckets, got schema {0}"
    )]
    InvalidSchema(i32),
    // Prometheus's message has the two spaces.
    #[error("observation count is  {0}: histogram's observation count is negative")]
    NegativeCount(String),
    #[error(
        "{side}: bucket number {number} has observation count of {count}: histogram has a bucket whose observation count is negative"
    )]
    NegativeBucketCount {
        side: Side,
        /// 1-based, as Prometheus counts.
        number: usize,
        count: String,
    },
    #[error(
        "zero bucket has observation count of {0}: histogram has a bucket whose observation count is negative"
    )]
    NegativeZeroCount(String),
    #[error(
        "{side}: span number {number} with offset {offset}: histogram has a span whose offset is negative"
    )]
    SpanNegativeOffset {
        side: Side,
        /// 1-based.
        number: usize,
        offset: i32,
    },
    #[error(
        "{side}: spans need {needed} buckets, have {have} buckets: histogram spans specify different number of buckets than provided"
    )]
    SpansBucketsMismatch {
        side: Side,
        needed: u64,
        have: usize,
    },
    #[error(
        "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
    )]
    CountMismatch { in_buckets: u64, count: u64 },
    #[error(
        "{in_buckets} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"
    )]
    CountNotBigEnough { in_buckets: u64, count: u64 },
    #[error("{side}: bucket counts overflow 64 bits")]
    CountOverflow { side: Side },
    #[error("custom buckets: histogram custom bounds must not be NaN")]
    CustomBoundsNaN,
    #[error(
        "custom buckets: previous bound is {previous} and current is {current}: histogram custom bounds must be in strictly increasing order"
    )]
    CustomBoundsNotIncreasing { previous: String, current: String },
    #[error(
        "custom buckets: last +Inf bound must not be explicitly defined: histogram custom bounds must be finite"
    )]
    CustomBoundsInfinite,
    #[error(
        "custom buckets: only {bounds} custom bounds defined which is insufficient to cover total span length of {span_length}: histogram custom bounds are too few"
    )]
    CustomBoundsTooFew { bounds: usize, span_length: u64 },
    #[error("custom buckets: must have zero count of 0")]
    CustomBucketsZeroCount,
    #[error("custom buckets: must have zero threshold of 0")]
    CustomBucketsZeroThreshold,
    #[error("custom buckets: must not have negative spans")]
    CustomBucketsNegativeSpans,
    #[error("custom buckets: must not have negative buckets")]
    CustomBucketsNegativeBuckets,
    #[error("histogram with exponential schema must not have custom bounds")]
    ExponentialWithCustomBounds,
    #[error(
        "cannot apply this operation on histograms with a mix of exponential and custom bucket schemas"
    )]
    IncompatibleSchema,
    #[error("cannot reduce resolution from schema {from} to {to}")]
    CannotReduceResolution { from: i32, to: i32 },
    #[error("{side}: bucket indices beyond the 32-bit range")]
    IndexOutOfRange { side: Side },
    #[error("more than {MAX_BUCKETS} buckets")]
    TooManyBuckets,
    #[error("zero threshold is NaN")]
    ZeroThresholdNaN,
    #[error("zero buckets could not be reconciled")]
    ZeroBucketsNotReconciled,
    #[error("error combining histograms: cannot merge from schema {from} to {to}")]
    CannotMergeSchema { from: i32, to: i32 },
}

/// The `Result` of histogram operations.
pub type Result<T, E = HistogramError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Walking spans.

/// Yields `(bucket index, position in the counts)` for the buckets the spans
/// cover, stopping early (as Prometheus's iterators do) when the counts run
/// out or an index leaves the `i32` range; never panics.
#[derive(Debug, Clone)]
struct SpanWalk<'a> {
    spans: &'a [Span],
    n_counts: usize,
    span: usize,
    in_span: u32,
    pos: usize,
    next_index: i64,
}

impl<'a> SpanWalk<'a> {
    fn new(spans: &'a [Span], n_counts: usize) -> Self {
        Self {
            spans,
            n_counts,
            span: 0,
            in_span: 0,
            pos: 0,
            next_index: spans.first().map_or(0, |s| i64::from(s.offset)),
        }
    }
}

impl Iterator for SpanWalk<'_> {
    type Item = (i32, usize);

    fn next(&mut self) -> Option<(i32, usize)> {
        if self.pos >= self.n_counts {
            return None;
        }
        // Skip exhausted (and zero-length) spans.
        while self.in_span >= self.spans.get(self.span)?.length {
            self.span += 1;
            self.in_span = 0;
            self.next_index += i64::from(self.spans.get(self.span)?.offset);
        }
        let index = i32::try_from(self.next_index).ok()?;
        let item = (index, self.pos);
        self.pos += 1;
        self.in_span += 1;
        self.next_index += 1;
        Some(item)
    }
}

/// Checks that `spans` cover exactly `n_counts` buckets, that no span but the
/// first (for custom buckets: none) has a negative offset, and that every
/// index fits in an `i32`.
fn check_spans(spans: &[Span], n_counts: usize, side: Side, custom: bool) -> Result<()> {
    let mut needed: u64 = 0;
    let mut index: i64 = 0;
    for (n, span) in spans.iter().enumerate() {
        if span.offset < 0 && (n > 0 || custom) {
            return Err(HistogramError::SpanNegativeOffset {
                side,
                number: n + 1,
                offset: span.offset,
            });
        }
        needed += u64::from(span.length);
        index += i64::from(span.offset) + i64::from(span.length);
        if span.length > 0
            && (index - i64::from(span.length) < i64::from(i32::MIN)
                || index - 1 > i64::from(i32::MAX))
        {
            return Err(HistogramError::IndexOutOfRange { side });
        }
    }
    if needed != n_counts as u64 {
        return Err(HistogramError::SpansBucketsMismatch {
            side,
            needed,
            have: n_counts,
        });
    }
    Ok(())
}

/// The buckets of one side as `(index, count)` in ascending index order,
/// after checking the spans (see [`check_spans`]).
fn decode<C: Copy>(
    spans: &[Span],
    counts: &[C],
    side: Side,
    custom: bool,
) -> Result<Vec<(i32, C)>> {
    check_spans(spans, counts.len(), side, custom)?;
    Ok(SpanWalk::new(spans, counts.len())
        .map(|(i, p)| (i, counts[p]))
        .collect())
}

/// Spans and counts for `(index, count)` pairs in strictly ascending index
/// order: consecutive indices share a span, every gap starts a new one.
fn encode<C: Copy>(buckets: &[(i32, C)], side: Side) -> Result<(Vec<Span>, Vec<C>)> {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::with_capacity(buckets.len());
    let mut last: Option<i32> = None;
    for &(index, count) in buckets {
        match last {
            Some(prev) if i64::from(index) == i64::from(prev) + 1 => {
                if let Some(span) = spans.last_mut() {
                    span.length += 1;
                }
            }
            Some(prev) => {
                let gap = i64::from(index) - i64::from(prev) - 1;
                let offset =
                    i32::try_from(gap).map_err(|_| HistogramError::IndexOutOfRange { side })?;
                spans.push(Span { offset, length: 1 });
            }
            None => spans.push(Span {
                offset: index,
                length: 1,
            }),
        }
        counts.push(count);
        last = Some(index);
    }
    Ok((spans, counts))
}

/// Absolute counts from delta-encoded ones (the sum wraps as in Go).
fn undelta(deltas: &[i64]) -> Vec<i64> {
    let mut current = 0i64;
    deltas
        .iter()
        .map(|&d| {
            current = current.wrapping_add(d);
            current
        })
        .collect()
}

/// Delta-encoded counts from absolute ones.
fn delta(absolute: &[i64]) -> Vec<i64> {
    let mut previous = 0i64;
    absolute
        .iter()
        .map(|&a| {
            let d = a.wrapping_sub(previous);
            previous = a;
            d
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Bucket iteration.

/// The bounds of bucket `index` on one side.
fn bucket_at<C>(
    index: i32,
    count: C,
    schema: i32,
    custom_values: &[f64],
    positive: bool,
) -> Bucket<C> {
    let upper = bucket_bound(index, schema, custom_values);
    let lower = bucket_bound(index.saturating_sub(1), schema, custom_values);
    let (lower, upper) = if positive {
        (lower, upper)
    } else {
        (-upper, -lower)
    };
    let (lower_inclusive, upper_inclusive) = if is_custom_buckets_schema(schema) {
        (index == 0, true)
    } else {
        (lower < 0.0, upper > 0.0)
    };
    Bucket {
        lower,
        upper,
        lower_inclusive,
        upper_inclusive,
        count,
        index,
    }
}

/// The buckets of one side of a [`FloatHistogram`], ascending by index (for
/// the negative side that is descending by value).
#[derive(Debug, Clone)]
pub struct FloatBuckets<'a> {
    walk: SpanWalk<'a>,
    counts: &'a [f64],
    schema: i32,
    custom_values: &'a [f64],
    positive: bool,
}

impl Iterator for FloatBuckets<'_> {
    type Item = Bucket<f64>;

    fn next(&mut self) -> Option<Bucket<f64>> {
        let (index, pos) = self.walk.next()?;
        Some(bucket_at(
            index,
            self.counts[pos],
            self.schema,
            self.custom_values,
            self.positive,
        ))
    }
}

/// The buckets of one side of a [`Histogram`] with absolute counts,
/// ascending by index.
#[derive(Debug, Clone)]
pub struct IntBuckets<'a> {
    walk: SpanWalk<'a>,
    deltas: &'a [i64],
    current: i64,
    schema: i32,
    custom_values: &'a [f64],
    positive: bool,
}

impl Iterator for IntBuckets<'_> {
    type Item = Bucket<u64>;

    fn next(&mut self) -> Option<Bucket<u64>> {
        let (index, pos) = self.walk.next()?;
        self.current = self.current.wrapping_add(self.deltas[pos]);
        // A negative absolute count only exists in an invalid histogram;
        // it reads as 0 rather than as a huge number.
        let count = u64::try_from(self.current).unwrap_or(0);
        Some(bucket_at(
            index,
            count,
            self.schema,
            self.custom_values,
            self.positive,
        ))
    }
}

// ---------------------------------------------------------------------------
// Validation, shared by both kinds.

fn check_custom_bounds(bounds: &[f64], spans: &[Span], n_counts: usize) -> Result<()> {
    let mut previous = f64::NEG_INFINITY;
    for (i, &current) in bounds.iter().enumerate() {
        if current.is_nan() {
            return Err(HistogramError::CustomBoundsNaN);
        }
        if i > 0 && current <= previous {
            return Err(HistogramError::CustomBoundsNotIncreasing {
                previous: format!("{previous:.6}"),
                current: format!("{current:.6}"),
            });
        }
        previous = current;
    }
    if previous == f64::INFINITY {
        return Err(HistogramError::CustomBoundsInfinite);
    }
    check_spans(spans, n_counts, Side::Custom, true)?;
    let span_length: u64 = spans
        .iter()
        .map(|s| u64::from(s.length) + s.offset.max(0) as u64)
        .sum();
    if (bounds.len() as u64) + 1 < span_length {
        return Err(HistogramError::CustomBoundsTooFew {
            bounds: bounds.len(),
            span_length,
        });
    }
    Ok(())
}

fn check_float_counts(counts: &[f64], side: Side) -> Result<()> {
    match counts.iter().position(|&c| c < 0.0) {
        Some(i) => Err(HistogramError::NegativeBucketCount {
            side,
            number: i + 1,
            count: format_go_g(counts[i]),
        }),
        None => Ok(()),
    }
}

/// Sums delta-encoded counts, refusing negative absolute counts.
fn check_int_counts(deltas: &[i64], side: Side) -> Result<u64> {
    let mut current = 0i64;
    let mut total = 0u64;
    for (i, &d) in deltas.iter().enumerate() {
        current = current
            .checked_add(d)
            .ok_or(HistogramError::CountOverflow { side })?;
        if current < 0 {
            return Err(HistogramError::NegativeBucketCount {
                side,
                number: i + 1,
                count: current.to_string(),
            });
        }
        total = total
            .checked_add(current as u64)
            .ok_or(HistogramError::CountOverflow { side })?;
    }
    Ok(total)
}

impl Histogram {
    /// Whether this histogram has custom buckets (schema -53).
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// Checks the histogram as Prometheus's `Histogram.Validate` does: a
    /// valid schema, spans that match the buckets, no negative counts,
    /// custom bounds strictly increasing and finite and enough for the spans
    /// (and no zero bucket or negative side with custom buckets), and a
    /// `count` equal to the sum of all buckets, or at least that sum when
    /// `sum` is NaN (NaN observations count in `count` but in no bucket).
    pub fn validate(&self) -> Result<()> {
        let mut n_count = 0u64;
        if self.uses_custom_buckets() {
            check_custom_bounds(
                &self.custom_values,
                &self.positive_spans,
                self.positive_buckets.len(),
            )?;
            if self.zero_count != 0 {
                return Err(HistogramError::CustomBucketsZeroCount);
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBucketsZeroThreshold);
            }
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeSpans);
            }
            if !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeBuckets);
            }
        } else if is_exponential_schema(self.schema) {
            check_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                Side::Positive,
                false,
            )?;
            check_spans(
                &self.negative_spans,
                self.negative_buckets.len(),
                Side::Negative,
                false,
            )?;
            n_count = check_int_counts(&self.negative_buckets, Side::Negative)?;
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialWithCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        let p_count = check_int_counts(&self.positive_buckets, Side::Positive)?;
        let in_buckets = n_count
            .checked_add(p_count)
            .and_then(|c| c.checked_add(self.zero_count))
            .ok_or(HistogramError::CountOverflow {
                side: Side::Positive,
            })?;
        if self.sum.is_nan() {
            if in_buckets > self.count {
                return Err(HistogramError::CountNotBigEnough {
                    in_buckets,
                    count: self.count,
                });
            }
        } else if in_buckets != self.count {
            return Err(HistogramError::CountMismatch {
                in_buckets,
                count: self.count,
            });
        }
        Ok(())
    }

    /// The same histogram with float counts and absolute buckets
    /// (Prometheus's `ToFloat`; for custom buckets the unused zero bucket
    /// and negative side are dropped).
    pub fn to_float(&self) -> FloatHistogram {
        let custom = self.uses_custom_buckets();
        let abs = |deltas: &[i64]| -> Vec<f64> {
            let mut current = 0.0;
            deltas
                .iter()
                .map(|&d| {
                    current += d as f64;
                    current
                })
                .collect()
        };
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: if custom { 0.0 } else { self.zero_threshold },
            zero_count: if custom { 0.0 } else { self.zero_count as f64 },
            count: self.count as f64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: if custom {
                Vec::new()
            } else {
                self.negative_spans.clone()
            },
            positive_buckets: abs(&self.positive_buckets),
            negative_buckets: if custom {
                Vec::new()
            } else {
                abs(&self.negative_buckets)
            },
            custom_values: if custom {
                self.custom_values.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// The positive buckets with absolute counts, ascending.
    pub fn positive_buckets(&self) -> IntBuckets<'_> {
        IntBuckets {
            walk: SpanWalk::new(&self.positive_spans, self.positive_buckets.len()),
            deltas: &self.positive_buckets,
            current: 0,
            schema: self.schema,
            custom_values: &self.custom_values,
            positive: true,
        }
    }

    /// The negative buckets with absolute counts, ascending by index
    /// (descending by value).
    pub fn negative_buckets(&self) -> IntBuckets<'_> {
        IntBuckets {
            walk: SpanWalk::new(&self.negative_spans, self.negative_buckets.len()),
            deltas: &self.negative_buckets,
            current: 0,
            schema: self.schema,
            custom_values: &[],
            positive: false,
        }
    }

    /// Prometheus's `Histogram.Equals`: the same data, `sum` compared by its
    /// bits (so a NaN sum equals the same NaN), the same buckets in the same
    /// layout (zero-length spans aside), custom bounds only for custom schemas.
    pub fn equals(&self, other: &Histogram) -> bool {
        self.schema == other.schema
            && self.count == other.count
            && self.sum.to_bits() == other.sum.to_bits()
            && (!self.uses_custom_buckets() || self.custom_values == other.custom_values)
            && self.zero_threshold == other.zero_threshold
            && self.zero_count == other.zero_count
            && spans_match(&self.negative_spans, &other.negative_spans)
            && self.negative_buckets == other.negative_buckets
            && spans_match(&self.positive_spans, &other.positive_spans)
            && self.positive_buckets == other.positive_buckets
    }
}

impl FloatHistogram {
    /// Whether this histogram has custom buckets (schema -53).
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// Checks the histogram as Prometheus's `FloatHistogram.Validate` does:
    /// like [`Histogram::validate`], except that `count` is not compared with
    /// the buckets (float rounding would make that check fail spuriously).
    pub fn validate(&self) -> Result<()> {
        if self.uses_custom_buckets() {
            check_custom_bounds(
                &self.custom_values,
                &self.positive_spans,
                self.positive_buckets.len(),
            )?;
            if self.zero_count != 0.0 {
                return Err(HistogramError::CustomBucketsZeroCount);
            }
            if self.zero_threshold != 0.0 {
                return Err(HistogramError::CustomBucketsZeroThreshold);
            }
            if !self.negative_spans.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeSpans);
            }
            if !self.negative_buckets.is_empty() {
                return Err(HistogramError::CustomBucketsNegativeBuckets);
            }
        } else if is_exponential_schema(self.schema) {
            check_spans(
                &self.positive_spans,
                self.positive_buckets.len(),
                Side::Positive,
                false,
            )?;
            check_spans(
                &self.negative_spans,
                self.negative_buckets.len(),
                Side::Negative,
                false,
            )?;
            check_float_counts(&self.negative_buckets, Side::Negative)?;
            if self.zero_count < 0.0 {
                return Err(HistogramError::NegativeZeroCount(format_go_g(
                    self.zero_count,
                )));
            }
            if !self.custom_values.is_empty() {
                return Err(HistogramError::ExponentialWithCustomBounds);
            }
        } else {
            return Err(HistogramError::InvalidSchema(self.schema));
        }
        if self.count < 0.0 {
            return Err(HistogramError::NegativeCount(format_go_g(self.count)));
        }
        check_float_counts(&self.positive_buckets, Side::Positive)
    }

    /// The positive buckets, ascending.
    pub fn positive_buckets(&self) -> FloatBuckets<'_> {
        FloatBuckets {
            walk: SpanWalk::new(&self.positive_spans, self.positive_buckets.len()),
            counts: &self.positive_buckets,
            schema: self.schema,
            custom_values: &self.custom_values,
            positive: true,
        }
    }

    /// The negative buckets, ascending by index (descending by value).
    pub fn negative_buckets(&self) -> FloatBuckets<'_> {
        FloatBuckets {
            walk: SpanWalk::new(&self.negative_spans, self.negative_buckets.len()),
            counts: &self.negative_buckets,
            schema: self.schema,
            custom_values: &[],
            positive: false,
        }
    }

    /// The zero bucket, `[-zero_threshold, zero_threshold]`; `None` for
    /// custom buckets, which have none.
    pub fn zero_bucket(&self) -> Option<Bucket<f64>> {
        (!self.uses_custom_buckets()).then_some(Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        })
    }

    /// Every bucket in ascending order of value: the negative buckets, the
    /// zero bucket if it holds observations, the positive buckets. A bucket
    /// that overlaps the zero bucket is cut at the zero threshold
    /// (Prometheus's `AllBucketIterator`; reverse it for
    /// `AllReverseBucketIterator`).
    pub fn all_buckets(&self) -> Vec<Bucket<f64>> {
        let mut out: Vec<Bucket<f64>> = self.negative_buckets().collect();
        out.reverse();
        let threshold = self.zero_threshold;
        let clip = |mut b: Bucket<f64>| {
            if b.upper < 0.0 && b.upper > -threshold {
                b.upper = -threshold;
            } else if b.lower > 0.0 && b.lower < threshold {
                b.lower = threshold;
            }
            b
        };
        for b in &mut out {
            *b = clip(*b);
        }
        if self.zero_count > 0.0
            && let Some(zero) = self.zero_bucket()
        {
            out.push(zero);
        }
        out.extend(self.positive_buckets().map(clip));
        out
    }

    /// Prometheus's `FloatHistogram.Equals`: counts and sums compared by
    /// their bits (NaN equals the same NaN, 0 differs from -0), the zero
    /// threshold by value, custom bounds only for custom schemas, and the
    /// same bucket layout (zero-length spans aside).
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let bits_eq = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        self.schema == other.schema
            && self.count.to_bits() == other.count.to_bits()
            && self.sum.to_bits() == other.sum.to_bits()
            && (!self.uses_custom_buckets() || self.custom_values == other.custom_values)
            && self.zero_threshold == other.zero_threshold
            && self.zero_count.to_bits() == other.zero_count.to_bits()
            && spans_match(&self.negative_spans, &other.negative_spans)
            && bits_eq(&self.negative_buckets, &other.negative_buckets)
            && spans_match(&self.positive_spans, &other.positive_spans)
            && bits_eq(&self.positive_buckets, &other.positive_buckets)
    }

    /// Whether a count, the sum, a bucket or a custom bound is infinite (a
    /// sum of histograms that overflowed).
    pub fn has_overflow(&self) -> bool {
        [self.zero_count, self.count, self.sum]
            .iter()
            .chain(&self.positive_buckets)
            .chain(&self.negative_buckets)
            .chain(&self.custom_values)
            .any(|v| v.is_infinite())
    }

    /// `histogram_avg`: the mean observation.
    pub fn avg(&self) -> f64 {
        self.sum / self.count
    }
}

/// Whether two span lists describe the same layout once zero-length spans
/// are folded into the span after them (Prometheus's `spansMatch`).
fn spans_match(a: &[Span], b: &[Span]) -> bool {
    /// Takes the span at `*i`; a zero-length one absorbs the next spans
    /// until one with a length (whose offset it adds up).
    fn take(spans: &[Span], i: &mut usize) -> Span {
        let mut span = spans[*i];
        *i += 1;
        if span.length == 0 {
            while *i < spans.len() && spans[*i].length == 0 {
                span.offset = span.offset.wrapping_add(spans[*i].offset);
                *i += 1;
            }
            if *i < spans.len() {
                span.offset = span.offset.wrapping_add(spans[*i].offset);
                span.length = spans[*i].length;
                *i += 1;
            }
        }
        span
    }
    let all_empty = |spans: &[Span]| spans.iter().all(|s| s.length == 0);
    let (mut i, mut j) = (0, 0);
    loop {
        if i >= a.len() {
            return all_empty(&b[j.min(b.len())..]);
        }
        if j >= b.len() {
            return all_empty(&a[i..]);
        }
        let (x, y) = (take(a, &mut i), take(b, &mut j));
        if x.length == 0 && y.length == 0 {
            return true;
        }
        if x != y {
            return false;
        }
    }
}

#[cfg(test)]
mod tests;
