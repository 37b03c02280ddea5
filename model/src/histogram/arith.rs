//! Arithmetic on native histograms: scaling, adding and subtracting
//! (reconciling schemas and zero buckets), compaction, resolution
//! reduction, and counter reset detection, as Prometheus's `FloatHistogram`
//! does them.
//!
//! The operations work on each side's buckets as a sorted list of
//! `(index, count)` pairs and encode spans afresh at the end, rather than
//! editing spans in place as Prometheus does: the buckets and counts come
//! out the same, and nothing is changed unless the whole operation succeeds.

use super::{
    CounterResetHint, FloatHistogram, Histogram, HistogramError, MAX_BUCKETS, Result, Side, Span,
    bucket_at, check_spans, decode, delta, encode, exponential_bound, is_exponential_schema,
    target_index, undelta,
};

/// A side's buckets: `(index, count)` in strictly ascending index order.
type Sparse<C = f64> = Vec<(i32, C)>;

/// What an addition or subtraction noticed besides its result; PromQL
/// turns these into warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArithmeticNotes {
    /// One operand's hint said `CounterReset`, the other's `NotCounterReset`;
    /// the result's hint is `Unknown`.
    pub counter_reset_collision: bool,
    /// The operands had custom buckets with different bounds; both were
    /// mapped onto the bounds they share (the result has only those).
    pub nhcb_bounds_reconciled: bool,
}

/// A count type the layout operations treat alike: float counts and the
/// absolute integer counts decoded from deltas.
trait Count: Copy + std::ops::Add<Output = Self> {
    const ZERO: Self;
    /// Empty as Prometheus's compaction sees it (`== 0`; NaN is not empty).
    fn is_empty(self) -> bool;
    fn add_wrapping(self, other: Self) -> Self;
}

impl Count for f64 {
    const ZERO: f64 = 0.0;
    fn is_empty(self) -> bool {
        self == 0.0
    }
    fn add_wrapping(self, other: f64) -> f64 {
        self + other
    }
}

impl Count for i64 {
    const ZERO: i64 = 0;
    fn is_empty(self) -> bool {
        self == 0
    }
    fn add_wrapping(self, other: i64) -> i64 {
        self.wrapping_add(other)
    }
}

/// Neumaier's variant of Kahan summation, as Prometheus's `kahansum.Inc`:
/// returns the new (plain) sum and the new compensation.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Adjusts the receiver's hint for an addition or subtraction, as
/// Prometheus's `adjustCounterReset`; true on a reset/not-reset collision.
fn adjust_counter_reset(hint: &mut CounterResetHint, other: CounterResetHint) -> bool {
    use CounterResetHint::*;
    match (*hint, other) {
        (a, b) if a == b => false,
        (Gauge, _) => false,
        (_, Gauge) => {
            *hint = Gauge;
            false
        }
        (Unknown, _) => false,
        (_, Unknown) => {
            *hint = Unknown;
            false
        }
        _ => {
            *hint = Unknown;
            true
        }
    }
}

/// Merges `b` into `a` by index (adding counts, or subtracting with
/// `negate`), skipping `b`'s buckets for which `skip` holds. Buckets of
/// either side are kept even when the result is 0.
fn merge(a: Sparse, b: &[(i32, f64)], negate: bool, skip: impl Fn(i32) -> bool) -> Sparse {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    for &(index, count) in b {
        if skip(index) {
            continue;
        }
        // Prometheus multiplies by -1, which makes a new empty bucket -0.
        let count = if negate { -count } else { count };
        while let Some(&(ia, ca)) = a.peek() {
            if ia >= index {
                break;
            }
            out.push((ia, ca));
            a.next();
        }
        match a.peek() {
            Some(&(ia, ca)) if ia == index => {
                out.push((index, ca + count));
                a.next();
            }
            _ => out.push((index, count)),
        }
    }
    out.extend(a);
    out
}

/// The buckets of a finer schema merged into a coarser one (Prometheus's
/// `reduceResolution`): counts of buckets that land in the same target
/// bucket are added in order; empty buckets stay.
fn reduce<C: Count>(buckets: Sparse<C>, from: i32, to: i32) -> Sparse<C> {
    if from == to {
        return buckets;
    }
    let mut out: Sparse<C> = Vec::with_capacity(buckets.len());
    for (index, count) in buckets {
        let target = target_index(index, from, to);
        match out.last_mut() {
            Some((last, sum)) if *last == target => *sum = sum.add_wrapping(count),
            _ => out.push((target, count)),
        }
    }
    out
}

/// Compaction of one side (Prometheus's `compactBuckets`): empty buckets at
/// the ends of the populated range go, runs of more than `max_empty` empty
/// or absent buckets between populated ones become gaps between spans, and
/// shorter runs become explicit empty buckets within one span.
fn compact_side<C: Count>(buckets: Sparse<C>, max_empty: usize) -> Result<Sparse<C>> {
    let mut out: Sparse<C> = Vec::with_capacity(buckets.len());
    let mut last_populated: Option<i32> = None;
    // Empty buckets seen since the last populated one, kept as they are
    // (an empty float bucket may be -0) if the run is short enough.
    let mut empties: Sparse<C> = Vec::new();
    for (index, count) in buckets {
        if count.is_empty() {
            empties.push((index, count));
            continue;
        }
        if let Some(prev) = last_populated {
            let gap = i64::from(index) - i64::from(prev) - 1;
            if (gap as u64) <= max_empty as u64 {
                if out.len() as u64 + gap as u64 >= MAX_BUCKETS as u64 {
                    return Err(HistogramError::TooManyBuckets);
                }
                let mut stored = empties.iter().peekable();
                for i in i64::from(prev) + 1..i64::from(index) {
                    let i = i as i32;
                    match stored.peek() {
                        Some(&&(si, sc)) if si == i => {
                            out.push((i, sc));
                            stored.next();
                        }
                        _ => out.push((i, C::ZERO)),
                    }
                }
            }
        }
        empties.clear();
        out.push((index, count));
        last_populated = Some(index);
    }
    Ok(out)
}

/// Compacts one side's spans and counts. Only the layout matters here, so
/// custom buckets may start at a negative index as exponential ones may.
/// Counts beyond what the spans cover (an invalid histogram) stay after the
/// compacted ones, or go when the spans cover nothing, as in Prometheus;
/// spans that need more counts than there are remain an error.
fn compact_counts<C: Count>(
    spans: &[Span],
    counts: &[C],
    side: Side,
    max_empty: usize,
) -> Result<(Vec<Span>, Vec<C>)> {
    let (covered, extra) = match check_spans(spans, counts.len(), side, false) {
        Err(HistogramError::SpansBucketsMismatch { needed, .. })
            if needed < counts.len() as u64 =>
        {
            let needed = needed as usize;
            (
                &counts[..needed],
                if needed == 0 {
                    &[][..]
                } else {
                    &counts[needed..]
                },
            )
        }
        Err(e) => return Err(e),
        Ok(()) => (counts, &[][..]),
    };
    let buckets = compact_side(decode(spans, covered, side, false)?, max_empty)?;
    if buckets.len() > MAX_BUCKETS {
        return Err(HistogramError::TooManyBuckets);
    }
    let (spans, mut counts) = encode(&buckets, side)?;
    counts.extend_from_slice(extra);
    Ok((spans, counts))
}

/// An exponential histogram's zero bucket and sides, taken apart for
/// zero bucket reconciliation.
struct Exponential {
    schema: i32,
    zero_threshold: f64,
    zero_count: f64,
    positive: Sparse,
    negative: Sparse,
}

impl Exponential {
    fn of(h: &FloatHistogram) -> Result<Self> {
        if !is_exponential_schema(h.schema) {
            return Err(HistogramError::InvalidSchema(h.schema));
        }
        if h.zero_threshold.is_nan() {
            return Err(HistogramError::ZeroThresholdNaN);
        }
        Ok(Self {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: h.zero_count,
            positive: decode(
                &h.positive_spans,
                &h.positive_buckets,
                Side::Positive,
                false,
            )?,
            negative: decode(
                &h.negative_spans,
                &h.negative_buckets,
                Side::Negative,
                false,
            )?,
        })
    }

    /// What the zero count would be with the larger threshold `larger`, and
    /// the threshold actually needed: one that ends inside a populated
    /// bucket is moved out to that bucket's far bound (Prometheus's
    /// `zeroCountForLargerThreshold`).
    fn zero_count_for_larger_threshold(&self, mut larger: f64) -> (f64, f64) {
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        let mut count = self.zero_count;
        // Each restart moves `larger` out past another negative bucket, so
        // there are at most as many restarts as negative buckets.
        for _ in 0..=self.negative.len() {
            count = self.zero_count;
            for &(index, c) in &self.positive {
                let b = bucket_at(index, c, self.schema, &[], true);
                if b.lower >= larger {
                    break;
                }
                count += c;
                if b.upper > larger {
                    if c != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            let mut restart = false;
            for &(index, c) in &self.negative {
                let b = bucket_at(index, c, self.schema, &[], false);
                if b.upper <= -larger {
                    break;
                }
                count += c;
                if b.lower < -larger {
                    if c != 0.0 {
                        // The positive side has to be counted again.
                        larger = -b.lower;
                        restart = true;
                    }
                    break;
                }
            }
            if !restart {
                break;
            }
        }
        (count, larger)
    }

    /// Drops the buckets inside the (widened) zero bucket, whose counts the
    /// zero count already holds, and then, as Prometheus does by compacting,
    /// every empty bucket.
    fn trim_buckets_in_zero_bucket(&mut self) {
        let threshold = self.zero_threshold;
        let schema = self.schema;
        for (side, positive) in [(&mut self.positive, true), (&mut self.negative, false)] {
            for (index, count) in side.iter_mut() {
                let b = bucket_at(*index, *count, schema, &[], positive);
                let outside = if positive {
                    b.lower >= threshold
                } else {
                    b.upper <= -threshold
                };
                if outside {
                    break;
                }
                *count = 0.0;
            }
            side.retain(|&(_, c)| c != 0.0);
        }
    }

    /// Widens the receiver's and (virtually) the other's zero bucket to a
    /// common threshold that cuts no populated bucket in either (Prometheus's
    /// `reconcileZeroBuckets`); returns the other's zero count at it.
    fn reconcile_zero_buckets(&mut self, other: &Exponential) -> Result<f64> {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        // Each round moves a threshold out to a bucket bound or to the other
        // threshold, so this many rounds are more than enough.
        let rounds = 2
            * (self.positive.len()
                + self.negative.len()
                + other.positive.len()
                + other.negative.len())
            + 4;
        for _ in 0..rounds {
            if other_threshold == self.zero_threshold {
                return Ok(other_count);
            }
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        Err(HistogramError::ZeroBucketsNotReconciled)
    }
}

/// The bounds two custom-bucket histograms share.
fn intersect_custom_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Adds custom buckets onto the coarser `bounds` (a subset of `src_bounds`)
/// into `target`/`comp` (one slot per bound plus +Inf): each bucket goes to
/// the first target bound at or above its own upper bound.
fn map_custom(
    buckets: &[(i32, f64)],
    src_bounds: &[f64],
    bounds: &[f64],
    negate: bool,
    target: &mut [f64],
    comp: &mut [f64],
) {
    let last = target.len() - 1;
    let mut next_bound = 0;
    for &(index, value) in buckets {
        let mut t = last;
        if index < 0 {
            t = 0;
        } else if let Some(&src_bound) = src_bounds.get(index as usize) {
            while next_bound < bounds.len() {
                if bounds[next_bound] >= src_bound {
                    t = next_bound;
                    break;
                }
                next_bound += 1;
            }
        }
        let value = if negate { -value } else { value };
        (target[t], comp[t]) = kahan_inc(value, target[t], comp[t]);
    }
}

impl FloatHistogram {
    /// Scales counts, zero count and sum by `factor`; a negative factor
    /// makes the result a gauge histogram.
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|c| *c *= factor);
        self.negative_buckets.iter_mut().for_each(|c| *c *= factor);
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Divides like [`mul`](Self::mul) multiplies. Division by zero makes
    /// count, zero count and sum ±Inf or NaN and removes all buckets, as
    /// Prometheus does.
    pub fn div(&mut self, scalar: f64) {
        self.zero_count /= scalar;
        self.count /= scalar;
        self.sum /= scalar;
        if scalar == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return;
        }
        self.positive_buckets.iter_mut().for_each(|c| *c /= scalar);
        self.negative_buckets.iter_mut().for_each(|c| *c /= scalar);
        if scalar < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
    }

    /// Adds `other` to this histogram (Prometheus's `FloatHistogram.Add`).
    ///
    /// Exponential histograms are brought to a common zero bucket (the wider
    /// one, widened further so that it cuts no populated bucket; buckets of
    /// the receiver that fall inside go, as do its empty buckets) and to the
    /// coarser schema. Custom-bucket histograms with the same bounds add
    /// bucket by bucket; with different bounds, as Prometheus 3 does, both
    /// are mapped onto the bounds they share and
    /// [`ArithmeticNotes::nhcb_bounds_reconciled`] is set. Mixing
    /// exponential and custom buckets is an error. The result keeps every
    /// bucket either operand had, empty ones included; [`compact`](Self::compact)
    /// removes those. On error the receiver is unchanged.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<ArithmeticNotes> {
        self.add_or_sub(other, false)
    }

    /// Subtracts `other` from this histogram, reconciling as [`add`](Self::add) does.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<ArithmeticNotes> {
        self.add_or_sub(other, true)
    }

    fn add_or_sub(&mut self, other: &FloatHistogram, negate: bool) -> Result<ArithmeticNotes> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        if self.uses_custom_buckets() {
            let a = decode(
                &self.positive_spans,
                &self.positive_buckets,
                Side::Positive,
                true,
            )?;
            let b = decode(
                &other.positive_spans,
                &other.positive_buckets,
                Side::Positive,
                true,
            )?;
            let (buckets, bounds) = if self.custom_values == other.custom_values {
                (merge(a, &b, negate, |_| false), None)
            } else {
                let bounds = intersect_custom_bounds(&self.custom_values, &other.custom_values);
                let mut target = vec![0.0; bounds.len() + 1];
                let mut comp = vec![0.0; bounds.len() + 1];
                map_custom(
                    &a,
                    &self.custom_values,
                    &bounds,
                    false,
                    &mut target,
                    &mut comp,
                );
                map_custom(
                    &b,
                    &other.custom_values,
                    &bounds,
                    negate,
                    &mut target,
                    &mut comp,
                );
                let buckets = (0..target.len())
                    .filter(|&i| target[i] != 0.0 || comp[i] != 0.0)
                    .map(|i| (i as i32, target[i]))
                    .collect();
                (buckets, Some(bounds))
            };
            let (spans, counts) = encode(&buckets, Side::Positive)?;
            let collision =
                adjust_counter_reset(&mut self.counter_reset_hint, other.counter_reset_hint);
            if negate {
                self.count -= other.count;
                self.sum -= other.sum;
            } else {
                self.count += other.count;
                self.sum += other.sum;
            }
            self.positive_spans = spans;
            self.positive_buckets = counts;
            let reconciled = bounds.is_some();
            if let Some(bounds) = bounds {
                self.custom_values = bounds;
            }
            return Ok(ArithmeticNotes {
                counter_reset_collision: collision,
                nhcb_bounds_reconciled: reconciled,
            });
        }

        let mut a = Exponential::of(self)?;
        let b = Exponential::of(other)?;
        let other_zero_count = a.reconcile_zero_buckets(&b)?;
        let schema = a.schema.min(b.schema);
        let threshold = a.zero_threshold;
        // Buckets of `other` inside the common zero bucket are already in
        // its zero count.
        let skip = |index: i32| exponential_bound(index, schema) <= threshold;
        let positive = merge(
            reduce(a.positive, a.schema, schema),
            &reduce(b.positive, b.schema, schema),
            negate,
            skip,
        );
        let negative = merge(
            reduce(a.negative, a.schema, schema),
            &reduce(b.negative, b.schema, schema),
            negate,
            skip,
        );
        let (positive_spans, positive_buckets) = encode(&positive, Side::Positive)?;
        let (negative_spans, negative_buckets) = encode(&negative, Side::Negative)?;

        let collision =
            adjust_counter_reset(&mut self.counter_reset_hint, other.counter_reset_hint);
        self.schema = schema;
        self.zero_threshold = threshold;
        self.zero_count = if negate {
            a.zero_count - other_zero_count
        } else {
            a.zero_count + other_zero_count
        };
        if negate {
            self.count -= other.count;
            self.sum -= other.sum;
        } else {
            self.count += other.count;
            self.sum += other.sum;
        }
        self.positive_spans = positive_spans;
        self.positive_buckets = positive_buckets;
        self.negative_spans = negative_spans;
        self.negative_buckets = negative_buckets;
        Ok(ArithmeticNotes {
            counter_reset_collision: collision,
            nhcb_bounds_reconciled: false,
        })
    }

    /// Removes empty buckets at the ends of the populated range, turns runs
    /// of more than `max_empty_buckets` empty or absent buckets into gaps
    /// between spans and merges spans closer than that, filling the gap with
    /// empty buckets (Prometheus's `Compact`). `compact(0)` gives the one
    /// layout every histogram with the same buckets shares. Fails (leaving
    /// the histogram unchanged) on inconsistent spans or when filling gaps
    /// would exceed [`MAX_BUCKETS`].
    pub fn compact(&mut self, max_empty_buckets: usize) -> Result<()> {
        let positive = compact_counts(
            &self.positive_spans,
            &self.positive_buckets,
            Side::Positive,
            max_empty_buckets,
        )?;
        let negative = compact_counts(
            &self.negative_spans,
            &self.negative_buckets,
            Side::Negative,
            max_empty_buckets,
        )?;
        (self.positive_spans, self.positive_buckets) = positive;
        (self.negative_spans, self.negative_buckets) = negative;
        Ok(())
    }

    /// Merges buckets into the coarser exponential `target_schema`, which
    /// must be below the current schema (Prometheus's `ReduceResolution`;
    /// the current schema may be one of the finer schemas up to 52 that
    /// Prometheus reduces on ingestion).
    pub fn reduce_resolution(&mut self, target_schema: i32) -> Result<()> {
        if self.uses_custom_buckets()
            || !is_exponential_schema(target_schema)
            || target_schema >= self.schema
        {
            return Err(HistogramError::CannotReduceResolution {
                from: self.schema,
                to: target_schema,
            });
        }
        let positive = decode(
            &self.positive_spans,
            &self.positive_buckets,
            Side::Positive,
            false,
        )?;
        let negative = decode(
            &self.negative_spans,
            &self.negative_buckets,
            Side::Negative,
            false,
        )?;
        let positive = reduce(positive, self.schema, target_schema);
        let negative = reduce(negative, self.schema, target_schema);
        let (ps, pb) = encode(&positive, Side::Positive)?;
        let (ns, nb) = encode(&negative, Side::Negative)?;
        (
            self.positive_spans,
            self.positive_buckets,
            self.negative_spans,
            self.negative_buckets,
        ) = (ps, pb, ns, nb);
        self.schema = target_schema;
        Ok(())
    }

    /// Whether this histogram, following `previous` in a counter series,
    /// marks a counter reset (Prometheus's `DetectReset`): the hint decides
    /// if it is `CounterReset` or `NotCounterReset`; otherwise a reset is a
    /// smaller count, a finer schema, a narrower zero bucket, a switch to
    /// custom buckets, or any bucket (the previous histogram's mapped onto
    /// this one's schema and zero bucket, or for custom buckets with
    /// different bounds onto the bounds both share) with a smaller count.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if self.custom_values != previous.custom_values {
                return self.detect_reset_with_mismatched_custom_bounds(previous);
            }
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let previous_sides = Exponential {
            schema: previous.schema,
            zero_threshold: previous.zero_threshold,
            zero_count: previous.zero_count,
            positive: previous
                .positive_buckets()
                .map(|b| (b.index, b.count))
                .collect(),
            negative: previous
                .negative_buckets()
                .map(|b| (b.index, b.count))
                .collect(),
        };
        let (previous_zero_count, threshold) =
            previous_sides.zero_count_for_larger_threshold(self.zero_threshold);
        if threshold != self.zero_threshold {
            return true;
        }
        if self.zero_count < previous_zero_count {
            return true;
        }
        let schema = self.schema;
        let skip_below = |buckets: Sparse| -> Sparse {
            // Buckets at or below the zero threshold are in the zero bucket.
            if threshold == 0.0 || !is_exponential_schema(schema) {
                return buckets;
            }
            buckets
                .into_iter()
                .filter(|&(i, _)| exponential_bound(i, schema) > threshold)
                .collect()
        };
        let current_positive = skip_below(
            self.positive_buckets()
                .map(|b| (b.index, b.count))
                .collect(),
        );
        let current_negative = skip_below(
            self.negative_buckets()
                .map(|b| (b.index, b.count))
                .collect(),
        );
        let previous_positive =
            skip_below(reduce(previous_sides.positive, previous.schema, schema));
        let previous_negative =
            skip_below(reduce(previous_sides.negative, previous.schema, schema));
        buckets_decreased(&current_positive, &previous_positive)
            || buckets_decreased(&current_negative, &previous_negative)
    }

    fn detect_reset_with_mismatched_custom_bounds(&self, previous: &FloatHistogram) -> bool {
        let bounds = intersect_custom_bounds(&self.custom_values, &previous.custom_values);
        let mapped = |h: &FloatHistogram| {
            let buckets: Sparse = h.positive_buckets().map(|b| (b.index, b.count)).collect();
            let mut target = vec![0.0; bounds.len() + 1];
            let mut comp = vec![0.0; bounds.len() + 1];
            map_custom(
                &buckets,
                &h.custom_values,
                &bounds,
                false,
                &mut target,
                &mut comp,
            );
            target
        };
        mapped(self)
            .iter()
            .zip(&mapped(previous))
            .any(|(c, p)| c < p)
    }
}

/// Whether any of `previous`'s buckets has a smaller count in `current`
/// (absent counts as 0, but an absent bucket only resets when the previous
/// count was not 0: Prometheus's `detectReset`).
fn buckets_decreased(current: &[(i32, f64)], previous: &[(i32, f64)]) -> bool {
    let mut current = current.iter().peekable();
    for &(index, count) in previous {
        while current.next_if(|&&(i, _)| i < index).is_some() {}
        match current.peek() {
            Some(&&(i, c)) if i == index => {
                if c < count {
                    return true;
                }
            }
            _ => {
                if count != 0.0 {
                    return true;
                }
            }
        }
    }
    false
}

impl Histogram {
    /// Like [`FloatHistogram::compact`], on delta-encoded counts.
    pub fn compact(&mut self, max_empty_buckets: usize) -> Result<()> {
        let (ps, pb) = compact_counts(
            &self.positive_spans,
            &undelta(&self.positive_buckets),
            Side::Positive,
            max_empty_buckets,
        )?;
        let (ns, nb) = compact_counts(
            &self.negative_spans,
            &undelta(&self.negative_buckets),
            Side::Negative,
            max_empty_buckets,
        )?;
        (self.positive_spans, self.positive_buckets) = (ps, delta(&pb));
        (self.negative_spans, self.negative_buckets) = (ns, delta(&nb));
        Ok(())
    }

    /// Like [`FloatHistogram::reduce_resolution`], on delta-encoded counts.
    pub fn reduce_resolution(&mut self, target_schema: i32) -> Result<()> {
        if self.uses_custom_buckets()
            || !is_exponential_schema(target_schema)
            || target_schema >= self.schema
        {
            return Err(HistogramError::CannotReduceResolution {
                from: self.schema,
                to: target_schema,
            });
        }
        let positive = decode(
            &self.positive_spans,
            &undelta(&self.positive_buckets),
            Side::Positive,
            false,
        )?;
        let negative = decode(
            &self.negative_spans,
            &undelta(&self.negative_buckets),
            Side::Negative,
            false,
        )?;
        let (ps, pb) = encode(
            &reduce(positive, self.schema, target_schema),
            Side::Positive,
        )?;
        let (ns, nb) = encode(
            &reduce(negative, self.schema, target_schema),
            Side::Negative,
        )?;
        (self.positive_spans, self.positive_buckets) = (ps, delta(&pb));
        (self.negative_spans, self.negative_buckets) = (ns, delta(&nb));
        self.schema = target_schema;
        Ok(())
    }
}
