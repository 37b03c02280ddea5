//! Range functions over windows that hold native histogram samples, as
//! Prometheus 3 evaluates them: `rate`/`increase`/`delta` and
//! `irate`/`idelta` of histograms (counter resets, gauge and counter hints),
//! `sum_over_time`/`avg_over_time` of histograms, the functions that take
//! both kinds (`count_over_time`, `last_over_time`, `resets`, ...), and the
//! float-only functions that ignore histograms with an info.
//!
//! Windows with floats only never come here: their path is the float one in
//! `functions`, untouched by histograms.

use sextant_model::histogram::{
    ArithmeticNotes, CounterResetHint, FloatHistogram, HistogramError, HistogramNote,
};

use super::eval::Evaluator;
use super::{HPoint, Point};

/// A range function's value over one window.
pub(crate) enum Sampled {
    Float(f64),
    Histogram(FloatHistogram),
}

/// The info a histogram function's note becomes.
pub(crate) fn histogram_note(note: HistogramNote, metric: &str) -> String {
    let text = match note {
        HistogramNote::QuantileNaNResult => {
            "input to histogram_quantile has NaN observations, result is NaN"
        }
        HistogramNote::QuantileNaNSkew => {
            "input to histogram_quantile has NaN observations, result is skewed higher"
        }
        HistogramNote::FractionNaNs => {
            "input to histogram_fraction has NaN observations, which are excluded from all fractions"
        }
    };
    if metric.is_empty() {
        text.to_string()
    } else {
        format!("{text} for metric name {metric:?}")
    }
}

/// Prometheus's message for a histogram operation that met both
/// exponential and custom buckets.
pub(crate) fn mixed_schemas(metric: &str) -> String {
    format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
    )
}

/// A float-only range function's float, from a window of floats only.
pub(crate) type FloatWindowFn<'f> = &'f (dyn Fn(usize, i64, &[Point]) -> Option<f64> + Send + Sync);

/// A sample of a window, float or histogram, in time order.
#[derive(Clone, Copy)]
enum Either<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

/// Both kinds of a window's samples, merged by time (a float first on a tie).
fn merged<'a>(w: &[Point], hw: &'a [HPoint]) -> Vec<(i64, Either<'a>)> {
    let mut out = Vec::with_capacity(w.len() + hw.len());
    let (mut i, mut j) = (0, 0);
    while i < w.len() || j < hw.len() {
        if j == hw.len() || (i < w.len() && w[i].t <= hw[j].t) {
            out.push((w[i].t, Either::Float(w[i].v)));
            i += 1;
        } else {
            out.push((hw[j].t, Either::Histogram(&hw[j].h)));
            j += 1;
        }
    }
    out
}

impl Evaluator<'_> {
    /// Notes from adding or subtracting histograms, as Prometheus words them.
    fn arithmetic_notes(&self, notes: ArithmeticNotes, operation: &str, collisions: bool) {
        if notes.nhcb_bounds_reconciled {
            self.info(format!(
                "mismatched custom buckets were reconciled during {operation}"
            ));
        }
        if collisions && notes.counter_reset_collision {
            self.warn(format!(
                "conflicting counter resets during histogram {operation}"
            ));
        }
    }

    /// A range function over a window with at least one histogram sample.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mixed_window(
        &self,
        name: &str,
        metric: &str,
        f: FloatWindowFn<'_>,
        step: usize,
        end: i64,
        range: i64,
        w: &[Point],
        hw: &[HPoint],
    ) -> Option<Sampled> {
        match name {
            "rate" | "increase" | "delta" => {
                if !w.is_empty() {
                    self.warn(format!(
                        "encountered a mix of histograms and floats for metric name {metric:?}"
                    ));
                    return None;
                }
                self.histogram_extrapolated_rate(
                    hw,
                    end - range,
                    end,
                    range,
                    name != "delta",
                    name == "rate",
                    metric,
                )
                .map(Sampled::Histogram)
            }
            "irate" | "idelta" => self.histogram_instant_value(w, hw, name == "irate", metric),
            "sum_over_time" | "avg_over_time" => {
                if !w.is_empty() {
                    self.warn(format!(
                        "encountered a mix of histograms and floats for metric name {metric:?}"
                    ));
                    return None;
                }
                self.histogram_sum_over_time(hw, name == "avg_over_time", metric)
                    .map(Sampled::Histogram)
            }
            "count_over_time" => Some(Sampled::Float((w.len() + hw.len()) as f64)),
            "present_over_time" => Some(Sampled::Float(1.0)),
            "last_over_time" => {
                let h = &hw[hw.len() - 1];
                match w.last() {
                    Some(p) if h.t < p.t => Some(Sampled::Float(p.v)),
                    _ => Some(Sampled::Histogram((*h.h).clone())),
                }
            }
            "first_over_time" => {
                let h = &hw[0];
                match w.first() {
                    Some(p) if p.t < h.t => Some(Sampled::Float(p.v)),
                    _ => Some(Sampled::Histogram((*h.h).clone())),
                }
            }
            "ts_of_last_over_time" => {
                let t = w.last().map_or(0, |p| p.t).max(hw[hw.len() - 1].t);
                Some(Sampled::Float(t as f64 / 1000.0))
            }
            "ts_of_first_over_time" => {
                let t = w.first().map_or(i64::MAX, |p| p.t).min(hw[0].t);
                Some(Sampled::Float(t as f64 / 1000.0))
            }
            "resets" | "changes" => {
                let samples = merged(w, hw);
                let mut n = 0usize;
                for pair in samples.windows(2) {
                    let changed = match (pair[0].1, pair[1].1) {
                        (Either::Float(a), Either::Float(b)) => {
                            if name == "resets" {
                                b < a
                            } else {
                                !(a == b || (a.is_nan() && b.is_nan()))
                            }
                        }
                        (Either::Histogram(a), Either::Histogram(b)) => {
                            if name == "resets" {
                                b.detect_reset(a)
                            } else {
                                !b.equals(a)
                            }
                        }
                        _ => true,
                    };
                    n += usize::from(changed);
                }
                Some(Sampled::Float(n as f64))
            }
            // The float-only functions: histograms are ignored, and said so
            // when there are floats to compute with.
            _ => {
                if w.is_empty() {
                    return None;
                }
                self.info(format!(
                    "ignored histograms in a range containing both floats and histograms for metric name {metric:?}"
                ));
                f(step, end, w).map(Sampled::Float)
            }
        }
    }

    /// `rate`, `increase` and `delta` of histograms: Prometheus's
    /// `histogramRate` and the extrapolation of `extrapolatedRate`.
    #[allow(clippy::too_many_arguments)]
    fn histogram_extrapolated_rate(
        &self,
        hw: &[HPoint],
        range_start: i64,
        range_end: i64,
        range: i64,
        counter: bool,
        rate: bool,
        metric: &str,
    ) -> Option<FloatHistogram> {
        if hw.len() < 2 {
            return None;
        }
        let mut result = self.histogram_rate(hw, counter, metric)?;
        let (first, last) = (&hw[0], &hw[hw.len() - 1]);
        let mut to_start = (first.t - range_start) as f64 / 1000.0;
        let mut to_end = (range_end - last.t) as f64 / 1000.0;
        let sampled = (last.t - first.t) as f64 / 1000.0;
        let avg_between = sampled / (hw.len() - 1) as f64;
        let threshold = avg_between * 1.1;
        if to_start >= threshold {
            to_start = avg_between / 2.0;
        }
        if counter {
            let mut to_zero = to_start;
            if result.count > 0.0 && first.h.count >= 0.0 {
                to_zero = sampled * (first.h.count / result.count);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg_between / 2.0;
        }
        let mut factor = 1.0;
        if sampled != 0.0 {
            factor = (sampled + to_start + to_end) / sampled;
        }
        if rate {
            factor /= range as f64 / 1000.0;
        }
        result.mul(factor);
        Some(result)
    }

    /// The change of a histogram series over a window (at least two
    /// samples), counter resets added back for counters (Prometheus's
    /// `histogramRate`); `None` with a warning when the histograms cannot be
    /// combined.
    fn histogram_rate(&self, hw: &[HPoint], counter: bool, metric: &str) -> Option<FloatHistogram> {
        let first = &hw[0].h;
        let last = &hw[hw.len() - 1].h;
        let mut prev: FloatHistogram = (**first).clone();
        let mut custom = prev.uses_custom_buckets();
        if counter
            && (first.counter_reset_hint == CounterResetHint::Gauge
                || last.counter_reset_hint == CounterResetHint::Gauge)
        {
            self.warn(format!(
                "this native histogram metric is not a counter: {metric:?}"
            ));
        }
        if counter {
            let second = &hw[1].h;
            if second.detect_reset(first) {
                prev = FloatHistogram {
                    schema: second.schema,
                    custom_values: second.custom_values.clone(),
                    ..FloatHistogram::default()
                };
                custom = second.uses_custom_buckets();
            }
        }
        if last.uses_custom_buckets() != custom {
            self.warn(mixed_schemas(metric));
            return None;
        }
        let mut min_schema = last.schema.min(prev.schema);
        for p in &hw[1..hw.len() - 1] {
            if !counter {
                continue;
            }
            if p.h.counter_reset_hint == CounterResetHint::Gauge {
                self.warn(format!(
                    "this native histogram metric is not a counter: {metric:?}"
                ));
            }
            min_schema = min_schema.min(p.h.schema);
            if p.h.uses_custom_buckets() != custom {
                self.warn(mixed_schemas(metric));
                return None;
            }
        }
        let mut h: FloatHistogram = (**last).clone();
        if !h.uses_custom_buckets()
            && min_schema < h.schema
            && h.reduce_resolution(min_schema).is_err()
        {
            return None;
        }
        match h.sub(&prev) {
            Ok(notes) => self.arithmetic_notes(notes, "subtraction", false),
            Err(HistogramError::IncompatibleSchema) => {
                self.warn(mixed_schemas(metric));
                return None;
            }
            Err(_) => return None,
        }
        if counter {
            // From the first sample, or from nothing when the second
            // already reset: its buckets do not count then.
            let mut prev: &FloatHistogram = &prev;
            for p in &hw[1..] {
                if p.h.detect_reset(prev) {
                    match h.add(prev) {
                        Ok(notes) => self.arithmetic_notes(notes, "addition", false),
                        Err(HistogramError::IncompatibleSchema) => {
                            self.warn(mixed_schemas(metric));
                            return None;
                        }
                        Err(_) => return None,
                    }
                }
                prev = &p.h;
            }
        } else if first.counter_reset_hint != CounterResetHint::Gauge
            || last.counter_reset_hint != CounterResetHint::Gauge
        {
            self.warn(format!(
                "this native histogram metric is not a gauge: {metric:?}"
            ));
        }
        h.counter_reset_hint = CounterResetHint::Gauge;
        h.compact(0).ok()?;
        Some(h)
    }

    /// `irate` and `idelta` over a window with histograms: the last two
    /// samples, which must both be histograms (Prometheus's `instantValue`).
    fn histogram_instant_value(
        &self,
        w: &[Point],
        hw: &[HPoint],
        rate: bool,
        metric: &str,
    ) -> Option<Sampled> {
        if w.len() + hw.len() < 2 {
            return None;
        }
        let samples = merged(w, hw);
        let (t0, s0) = samples[samples.len() - 2];
        let (t1, s1) = samples[samples.len() - 1];
        let interval = t1 - t0;
        if interval == 0 {
            return None;
        }
        let (Either::Histogram(h0), Either::Histogram(h1)) = (s0, s1) else {
            if let (Either::Float(a), Either::Float(b)) = (s0, s1) {
                let mut v = if rate && b < a { b } else { b - a };
                if rate {
                    v /= interval as f64 / 1000.0;
                }
                return Some(Sampled::Float(v));
            }
            self.warn(format!(
                "encountered a mix of histograms and floats for metric name {metric:?}"
            ));
            return None;
        };
        let gauge = |h: &FloatHistogram| h.counter_reset_hint == CounterResetHint::Gauge;
        if rate && (gauge(h1) || gauge(h0)) {
            self.warn(format!(
                "this native histogram metric is not a counter: {metric:?}"
            ));
        }
        if !rate && (!gauge(h1) || !gauge(h0)) {
            self.warn(format!(
                "this native histogram metric is not a gauge: {metric:?}"
            ));
        }
        let mut result = h1.clone();
        if !rate || !h1.detect_reset(h0) {
            match result.sub(h0) {
                Ok(notes) => self.arithmetic_notes(notes, "subtraction", false),
                Err(HistogramError::IncompatibleSchema) => {
                    self.warn(mixed_schemas(metric));
                    return None;
                }
                Err(_) => return None,
            }
        }
        result.counter_reset_hint = CounterResetHint::Gauge;
        result.compact(0).ok()?;
        if rate {
            result.div(interval as f64 / 1000.0);
        }
        Some(Sampled::Histogram(result))
    }

    /// `sum_over_time` (or `avg_over_time`) of a window of histograms.
    fn histogram_sum_over_time(
        &self,
        hw: &[HPoint],
        average: bool,
        metric: &str,
    ) -> Option<FloatHistogram> {
        let mut sum: FloatHistogram = (*hw[0].h).clone();
        let (mut reset, mut not_reset, mut reconciled) = (false, false, false);
        let mut track = |h: &FloatHistogram| match h.counter_reset_hint {
            CounterResetHint::CounterReset => reset = true,
            CounterResetHint::NotCounterReset => not_reset = true,
            _ => {}
        };
        track(&sum);
        for p in &hw[1..] {
            track(&p.h);
            match sum.add(&p.h) {
                Ok(notes) => reconciled |= notes.nhcb_bounds_reconciled,
                Err(HistogramError::IncompatibleSchema) => {
                    self.warn(mixed_schemas(metric));
                    return None;
                }
                Err(_) => return None,
            }
        }
        if reset && not_reset {
            self.warn("conflicting counter resets during histogram aggregation".into());
        }
        if reconciled {
            self.info("mismatched custom buckets were reconciled during aggregation".into());
        }
        if average {
            sum.div(hw.len() as f64);
        }
        Some(sum)
    }
}
