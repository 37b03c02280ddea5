//! PromQL's functions, with Prometheus's numerics (Kahan sums, its linear
//! regression, its rate extrapolation, its bucket quantile).

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::{Call, Expr, MatrixSelector};
use sextant_model::histogram::{
    FloatHistogram, HistogramNote, histogram_fraction, histogram_quantile, histogram_stddev,
    histogram_stdvar,
};
use sextant_model::{Labels, is_valid_label_name};

use super::eval::Series;
use super::eval::{
    Evaluator, Grid, RangeVector, Value, Window, WindowMemo, equality_labels, exec,
    merge_same_labels,
};
use super::histograms::{Sampled, histogram_note};
use super::{HPoint, Point, TimedValue};
use crate::Result;

/// Kahan–Neumaier summation step: adds `inc` to `sum` with compensation `c`.
#[inline]
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
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

/// Prometheus's `quantile`: linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as in Prometheus.
    values.sort_by(|a, b| {
        b.is_nan()
            .cmp(&a.is_nan())
            .then_with(|| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal))
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`, as Prometheus prints values.
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A sample value as Prometheus's HTTP API writes it: Go's shortest
/// representation, plain between 1e-6 and 1e21 and with an exponent outside
/// (`1e+21`, `1.5e-07`); `NaN`, `+Inf`, `-Inf`.
pub fn write_sample_value(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    let abs = v.abs();
    if !v.is_finite() {
        out.push_str(&format_go_float(v));
    } else if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{v:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "{mantissa}e{sign}{:02}", exponent.unsigned_abs());
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Go's `math.Max`/`math.Min`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn linear_regression(points: &[Point], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = points[0].v;
    let mut const_y = true;
    for (i, p) in points.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated
/// to the window's edges as Prometheus does.
fn extrapolated_rate(
    w: &[Point],
    range_start: i64,
    range_end: i64,
    range: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let mut result = w[w.len() - 1].v - w[0].v;
    if counter {
        let mut prev = w[0].v;
        for p in &w[1..] {
            if p.v < prev {
                result += prev;
            }
            prev = p.v;
        }
    }
    Extrapolation::default().apply(w, result, range_start, range_end, range, counter, rate)
}

/// The extrapolation of [`extrapolated_rate`], given the window's change
/// (`result`: last minus first, plus for a counter each value before a
/// reset, in time order), computed afresh as Prometheus writes it: what
/// [`Extrapolation`] must answer to the bit.
#[cfg(test)]
fn extrapolate(
    w: &[Point],
    result: f64,
    range_start: i64,
    range_end: i64,
    range: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let first = w[0];
    let last = w[w.len() - 1];
    let mut to_start = (first.t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled / (w.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if to_start >= threshold {
        to_start = avg_between / 2.0;
    }
    if counter {
        let mut to_zero = to_start;
        if result > 0.0 && first.v >= 0.0 {
            to_zero = sampled * (first.v / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_between / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// A window's timestamps as [`Extrapolation`] keys them.
type WindowTimes = (i64, i64, i64, usize);

/// Prometheus's extrapolation over the windows of one series, one after
/// another, for one function and range: what depends only on a window's timestamps
/// (four divisions, the thresholds) and the factor that follows from them
/// repeat from one step to the next when scrapes are regular, so they are
/// kept and computed again only when their inputs change. The same
/// operations on the same inputs: the same bits as computing it afresh.
#[derive(Debug, Default)]
pub(super) struct Extrapolation {
    /// By (first sample to window start, last sample to window end, first
    /// to last sample, samples): `to_start` and `to_end` after their
    /// thresholds, and `sampled`, in seconds.
    times: Option<(WindowTimes, (f64, f64, f64))>,
    /// By the bits of `to_start`, `to_end` and `sampled`: the factor.
    factor: Option<((u64, u64, u64), f64)>,
}

impl Extrapolation {
    /// The change `result` over window `w` extrapolated to the window's
    /// edges (and per second for `rate`); `range`, `counter` and `rate`
    /// must be those of every earlier call.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn apply<P: TimedValue>(
        &mut self,
        w: &[P],
        result: f64,
        range_start: i64,
        range_end: i64,
        range: i64,
        counter: bool,
        rate: bool,
    ) -> Option<f64> {
        if w.len() < 2 {
            return None;
        }
        let (first_t, first_v) = (w[0].t(), w[0].v());
        let last_t = w[w.len() - 1].t();
        let key = (
            first_t - range_start,
            range_end - last_t,
            last_t - first_t,
            w.len(),
        );
        let (mut to_start, to_end, sampled) = match self.times {
            Some((k, times)) if k == key => times,
            _ => {
                let mut to_start = key.0 as f64 / 1000.0;
                let mut to_end = key.1 as f64 / 1000.0;
                let sampled = key.2 as f64 / 1000.0;
                let avg_between = sampled / (w.len() - 1) as f64;
                let threshold = avg_between * 1.1;
                if to_start >= threshold {
                    to_start = avg_between / 2.0;
                }
                if to_end >= threshold {
                    to_end = avg_between / 2.0;
                }
                let times = (to_start, to_end, sampled);
                self.times = Some((key, times));
                times
            }
        };
        // A counter whose first value is at least twice the window's
        // change is at least twice the sampled interval away from zero,
        // which is more than `to_start` (below 1.1 times that interval):
        // the division would not change `to_start`, so it is skipped.
        let far_from_zero = first_v >= result + result;
        if counter && !far_from_zero {
            let mut to_zero = to_start;
            if result > 0.0 && first_v >= 0.0 {
                to_zero = sampled * (first_v / result);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        let key = (to_start.to_bits(), to_end.to_bits(), sampled.to_bits());
        let factor = match self.factor {
            Some((k, factor)) if k == key => factor,
            _ => {
                let mut factor = (sampled + to_start + to_end) / sampled;
                if rate {
                    factor /= range as f64 / 1000.0;
                }
                self.factor = Some((key, factor));
                factor
            }
        };
        Some(result * factor)
    }
}

fn instant_delta(w: &[Point], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut result = if rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    if rate {
        let sampled = last.t - prev.t;
        if sampled == 0 {
            return None;
        }
        result /= sampled as f64 / 1000.0;
    }
    Some(result)
}

fn avg_values(w: &[Point]) -> f64 {
    let (mut sum, mut c, mut mean) = (w[0].v, 0.0, 0.0);
    let mut incremental = false;
    let mut count = 1.0;
    for p in &w[1..] {
        count += 1.0;
        if !incremental {
            let (s, nc) = kahan_sum_inc(p.v, sum, c);
            if !s.is_infinite() {
                (sum, c) = (s, nc);
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if p.v.is_infinite() && (mean > 0.0) == (p.v > 0.0) {
                continue;
            }
            if !p.v.is_infinite() && !p.v.is_nan() {
                continue;
            }
        }
        let current = mean + c;
        (mean, c) = kahan_sum_inc(p.v / count - current / count, mean, c);
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}

fn stdvar_values(w: &[Point]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in w {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn double_exponential_smoothing(w: &[Point], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].v);
    let mut b = w[1].v - w[0].v;
    for (i, p) in w.iter().enumerate().skip(1) {
        let x = sf * p.v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, seconds: f64) -> f64 {
    let secs = seconds as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, d) = sextant_model::time::civil_from_days(days);
    let month_days = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    (match name {
        "minute" => secs.rem_euclid(3600) / 60,
        "hour" => secs.rem_euclid(86_400) / 3600,
        "day_of_week" => (days + 4).rem_euclid(7),
        "day_of_month" => d,
        "day_of_year" => month_days[..(m - 1) as usize].iter().sum::<i64>() + d,
        "days_in_month" => month_days[(m - 1) as usize],
        "month" => m,
        _ => y,
    }) as f64
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Natural order: digit runs compare as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na = std::str::from_utf8(&a[..da])
                    .unwrap_or("0")
                    .trim_start_matches('0');
                let nb = std::str::from_utf8(&b[..db])
                    .unwrap_or("0")
                    .trim_start_matches('0');
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

pub(super) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Prometheus's classic-histogram quantile over `(upper bound, count)` buckets.
/// Also says whether the counts had to be forced monotonic.
fn bucket_quantile(q: f64, buckets: Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(mut buckets) = normalize_buckets(buckets) else {
        return (f64::NAN, false);
    };
    // Force monotonic counts; ignore differences within floating-point noise.
    let mut prev = buckets[0].1;
    let mut forced = false;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1]
        .iter()
        .position(|b| b.1 >= rank)
        .unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].0, forced);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return (buckets[0].0, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Applies `f` to every point (dropping those it refuses) and drops the
/// metric name, as Prometheus's functions of an instant vector do.
fn map_points(
    series: Vec<Series>,
    delayed: bool,
    mut f: impl FnMut(usize, f64) -> Option<f64>,
    grid: Grid,
) -> Result<Vec<Series>> {
    let mut out = Vec::with_capacity(series.len());
    for mut s in series {
        // Prometheus's float functions leave histogram samples out.
        s.hpoints = Vec::new();
        s.points.retain_mut(|p| match f(grid.index(p.t), p.v) {
            Some(v) => {
                p.v = v;
                true
            }
            None => false,
        });
        if s.points.is_empty() {
            continue;
        }
        s.drop_name(delayed);
        out.push(s);
    }
    merge_same_labels(out)
}

/// Into `resets` (emptied first), the indexes of the values of `p` below
/// the one before them: where a counter was reset.
fn find_resets<P: TimedValue>(p: &[P], resets: &mut Vec<usize>) {
    resets.clear();
    // Through pairs, not indexes: no bounds check per point.
    resets.extend(
        p.windows(2)
            .enumerate()
            .filter(|(_, pair)| pair[1].v() < pair[0].v())
            .map(|(k, _)| k + 1),
    );
}

/// Whether no value of `samples` is NaN (a staleness marker is one) or
/// below the one before it: then a counter has neither resets nor
/// staleness markers. One comparison a sample, which a NaN on either
/// side fails, in a loop that does not stop early, so that it runs at
/// the speed of the loads.
pub(super) fn only_rises(samples: &[sextant_model::Sample]) -> bool {
    let first = samples.first().is_none_or(|s| !s.value.is_nan());
    first
        && samples.windows(2).fold(true, |rising, pair| {
            rising & (pair[1].value >= pair[0].value)
        })
}

/// Names that mark a counter, for `rate`'s "might not be a counter" info.
const COUNTER_SUFFIXES: [&str; 4] = ["_total", "_sum", "_count", "_bucket"];

/// Where a range function's series come from.
enum RangeSource<'e> {
    /// A range selector, read from storage series by series.
    Selector(&'e MatrixSelector, Window),
    /// A subquery's result.
    Evaluated(RangeVector),
}

impl RangeSource<'_> {
    fn window(&self) -> Window {
        match self {
            Self::Selector(_, w) => *w,
            Self::Evaluated(rv) => rv.window,
        }
    }
}

/// A range function over one window: `(step, window end, points)`.
type WindowFn = Box<dyn Fn(usize, i64, &[Point]) -> Option<f64> + Send + Sync>;

/// The range functions [`Evaluator::window_call`] knows: evaluated window
/// by window over each series on its own.
pub(super) fn is_window_function(name: &str) -> bool {
    matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "deriv"
            | "predict_linear"
            | "resets"
            | "changes"
            | "sum_over_time"
            | "avg_over_time"
            | "count_over_time"
            | "present_over_time"
            | "last_over_time"
            | "first_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
            | "max_over_time"
            | "min_over_time"
            | "ts_of_max_over_time"
            | "ts_of_min_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "quantile_over_time"
            | "mad_over_time"
            | "double_exponential_smoothing"
            | "holt_winters"
    )
}

/// Whether range function `name` keeps its series' metric names.
pub(super) fn keeps_metric_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

/// Where range function `name` takes its range argument, and its scalars.
pub(super) fn range_argument_layout(name: &str) -> (usize, &'static [usize]) {
    match name {
        "quantile_over_time" => (1, &[0]),
        "predict_linear" => (0, &[1]),
        "double_exponential_smoothing" | "holt_winters" => (0, &[1, 2]),
        _ => (0, &[]),
    }
}

/// A range function ready to run over series, one series at a time: the
/// per-series work both `range_function` (which keeps each result series)
/// and the streaming aggregation (which folds it into its group) share, so
/// the two compute the same floats in the same order.
pub(super) struct WindowCall<'n> {
    name: &'n str,
    f: WindowFn,
    window: Window,
    /// `last_over_time` and `first_over_time` keep the metric name.
    keep_name: bool,
    /// `rate` and `increase`.
    counter_function: bool,
}

impl WindowCall<'_> {
    /// Whether the result of a series whose name flag is `drop_name` drops
    /// the metric name.
    pub fn drops_name(&self, drop_name: bool) -> bool {
        !self.keep_name || drop_name
    }

    /// Evaluates the function over the non-empty windows of one series
    /// (staleness markers already removed) at `steps` of `grid`, calling
    /// `emit(step, value)` for each step with a result, in step order.
    /// `resets` is scratch space, kept by the caller across series.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_series(
        &self,
        ev: &Evaluator<'_>,
        labels: &Labels,
        points: &[Point],
        hpoints: &[HPoint],
        grid: Grid,
        steps: std::ops::Range<usize>,
        resets: &mut Vec<usize>,
        mut emit: impl FnMut(usize, Sampled),
    ) {
        let window = self.window;
        let mut floats = false;
        if hpoints.is_empty() && self.counter_function {
            find_resets(points, resets);
            floats = self.counter_windows(points, grid, steps, resets, None, |i, v| {
                emit(i, Sampled::Float(v));
            });
        } else if hpoints.is_empty() {
            window.for_each_window(points, grid, steps, |i, end, range| {
                if let Some(v) = (self.f)(i, end, &points[range]) {
                    floats = true;
                    emit(i, Sampled::Float(v));
                }
            });
        } else {
            let metric = labels.metric_name().unwrap_or("");
            window.for_each_window_mixed(points, hpoints, grid, steps, |i, end, w, hw| {
                let value = if hw.is_empty() {
                    (self.f)(i, end, w).map(Sampled::Float)
                } else {
                    ev.mixed_window(self.name, metric, &self.f, i, end, window.range, w, hw)
                };
                if let Some(value) = value {
                    floats |= matches!(value, Sampled::Float(_));
                    emit(i, value);
                }
            });
        }
        self.note_counter_name(ev, labels, floats);
    }

    /// Whether this is `rate` or `increase`, which
    /// [`WindowCall::eval_counter_samples`] evaluates.
    pub fn counts_resets(&self) -> bool {
        self.counter_function
    }

    /// [`WindowCall::eval_series`] for `rate` and `increase` over a
    /// series of float samples only, none of them a staleness marker, read
    /// where they were decoded; `emit(step, value)` as there. `rising`
    /// says that no value is below the one before it: no counter resets to
    /// look for.
    #[allow(clippy::too_many_arguments)]
    pub fn eval_counter_samples(
        &self,
        ev: &Evaluator<'_>,
        labels: &Labels,
        samples: &[sextant_model::Sample],
        rising: bool,
        grid: Grid,
        steps: std::ops::Range<usize>,
        resets: &mut Vec<usize>,
        memo: &mut WindowMemo,
        emit: impl FnMut(usize, f64),
    ) {
        debug_assert!(self.counter_function);
        if rising {
            resets.clear();
        } else {
            find_resets(samples, resets);
        }
        let floats = self.counter_windows(samples, grid, steps, resets, Some(memo), emit);
        self.note_counter_name(ev, labels, floats);
    }

    /// `rate` or `increase` over every non-empty window of `p` at `steps`,
    /// whose counter resets are at `resets` (as [`find_resets`] finds
    /// them), its windows through `memo` if there is one; whether any
    /// window had a value.
    fn counter_windows<P: TimedValue>(
        &self,
        p: &[P],
        grid: Grid,
        steps: std::ops::Range<usize>,
        resets: &[usize],
        memo: Option<&mut WindowMemo>,
        mut emit: impl FnMut(usize, f64),
    ) -> bool {
        // Each window's counter resets found among the series' resets,
        // not by a scan of the window; added in the same order, so the
        // same sums.
        let window = self.window;
        let mut floats = false;
        let rate = self.name == "rate";
        // Windows only move forward (under `@` they stay put), so the
        // resets inside one start where the last one's started or later.
        let (mut from, mut to) = (0usize, 0usize);
        let mut extrapolation = Extrapolation::default();
        let each = |i: usize, end: i64, range: std::ops::Range<usize>| {
            let (lo, hi) = (range.start, range.end);
            let w = &p[range];
            while from < resets.len() && resets[from] <= lo {
                from += 1;
            }
            to = to.max(from);
            while to < resets.len() && resets[to] < hi {
                to += 1;
            }
            let mut increase = w[w.len() - 1].v() - w[0].v();
            for &k in &resets[from..to] {
                increase += p[k - 1].v();
            }
            let value = extrapolation.apply(
                w,
                increase,
                end - window.range,
                end,
                window.range,
                true,
                rate,
            );
            if let Some(v) = value {
                floats = true;
                emit(i, v);
            }
        };
        match memo {
            Some(memo) => window.for_each_window_memo(memo, p, grid, steps, each),
            None => window.for_each_window(p, grid, steps, each),
        }
        floats
    }

    /// `rate`'s and `increase`'s info for a series with values whose name
    /// does not say counter.
    fn note_counter_name(&self, ev: &Evaluator<'_>, labels: &Labels, floats: bool) {
        if self.counter_function
            && floats
            && let Some(metric) = labels.metric_name()
            && !COUNTER_SUFFIXES
                .iter()
                .any(|suffix| metric.ends_with(suffix))
        {
            ev.info(format!(
                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
            ));
        }
    }
}

impl Evaluator<'_> {
    pub(super) fn call(&mut self, call: &Call, grid: Grid) -> Result<Value> {
        let name = call.func.name;
        let args: Vec<&Expr> = call.args.args.iter().map(|a| &**a).collect();
        let steps = grid.len();
        let what = format!("call to function {name:?}");
        if let Some(f) = math_fn(name) {
            let v = self.eval_vector(args[0], grid, &what)?;
            return Ok(Value::Vector(map_points(
                v,
                self.delayed(),
                |_, x| Some(f(x)),
                grid,
            )?));
        }
        match name {
            "time" => Ok(Value::Scalar(
                (0..steps).map(|i| grid.ts(i) as f64 / 1000.0).collect(),
            )),
            "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; steps])),
            // The query's own step, range, start and end, in seconds.
            "step" => Ok(Value::Scalar(vec![self.query_step as f64 / 1000.0; steps])),
            "range" => Ok(Value::Scalar(vec![
                (self.query_end - self.query_start)
                    as f64
                    / 1000.0;
                steps
            ])),
            "start" => Ok(Value::Scalar(vec![self.query_start as f64 / 1000.0; steps])),
            "end" => Ok(Value::Scalar(vec![self.query_end as f64 / 1000.0; steps])),
            "min_of" | "max_of" => {
                let a = self.eval_scalar(args[0], grid, &what)?;
                let b = self.eval_scalar(args[1], grid, &what)?;
                let f = if name == "min_of" { go_min } else { go_max };
                Ok(Value::Scalar(
                    a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect(),
                ))
            }
            "vector" => {
                let v = self.eval_scalar(args[0], grid, &what)?;
                Ok(Value::Vector(vec![Series::new(
                    Labels::default(),
                    v.into_iter()
                        .enumerate()
                        .map(|(i, v)| Point { t: grid.ts(i), v })
                        .collect(),
                )]))
            }
            "scalar" => {
                let series = self.eval_vector(args[0], grid, &what)?;
                let mut count = vec![0u32; steps];
                let mut value = vec![f64::NAN; steps];
                for s in &series {
                    for p in &s.points {
                        let i = grid.index(p.t);
                        count[i] += 1;
                        value[i] = p.v;
                    }
                }
                Ok(Value::Scalar(
                    value
                        .into_iter()
                        .zip(count)
                        .map(|(v, n)| if n == 1 { v } else { f64::NAN })
                        .collect(),
                ))
            }
            "timestamp" => {
                let series = match unwrap_parens(args[0]) {
                    Expr::VectorSelector(vs) => self.vector_selector(vs, grid, true)?,
                    other => {
                        let mut v = self.eval_vector(other, grid, &what)?;
                        for s in &mut v {
                            s.points.iter_mut().for_each(|p| p.v = p.t as f64 / 1000.0);
                            if !s.hpoints.is_empty() {
                                // A histogram's step has its time too.
                                s.points.extend(s.hpoints.drain(..).map(|h| Point {
                                    t: h.t,
                                    v: h.t as f64 / 1000.0,
                                }));
                                s.points.sort_by_key(|p| p.t);
                            }
                        }
                        v
                    }
                };
                Ok(Value::Vector(map_points(
                    series,
                    self.delayed(),
                    |_, v| Some(v),
                    grid,
                )?))
            }
            "absent" => {
                let series = self.eval_vector(args[0], grid, &what)?;
                let labels = match unwrap_parens(args[0]) {
                    Expr::VectorSelector(vs) => equality_labels(vs),
                    _ => Labels::default(),
                };
                let mut present = vec![false; steps];
                for s in &series {
                    for p in &s.points {
                        present[grid.index(p.t)] = true;
                    }
                    for p in &s.hpoints {
                        present[grid.index(p.t)] = true;
                    }
                }
                Ok(Value::Vector(absent_series(labels, &present, grid)))
            }
            "round" => {
                let v = self.eval_vector(args[0], grid, &what)?;
                let to = match args.get(1) {
                    Some(a) => self.eval_scalar(a, grid, &what)?,
                    None => vec![1.0; steps],
                };
                Ok(Value::Vector(map_points(
                    v,
                    self.delayed(),
                    |i, x| {
                        let inverse = 1.0 / to[i];
                        Some((x * inverse + 0.5).floor() / inverse)
                    },
                    grid,
                )?))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let v = self.eval_vector(args[0], grid, &what)?;
                let a = self.eval_scalar(args[1], grid, &what)?;
                let b = match args.get(2) {
                    Some(e) => self.eval_scalar(e, grid, &what)?,
                    None => Vec::new(),
                };
                Ok(Value::Vector(map_points(
                    v,
                    self.delayed(),
                    |i, x| match name {
                        "clamp_min" => Some(go_max(x, a[i])),
                        "clamp_max" => Some(go_min(x, a[i])),
                        _ if b[i] < a[i] => None,
                        _ => Some(go_max(a[i], go_min(b[i], x))),
                    },
                    grid,
                )?))
            }
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year"
            | "days_in_month" | "month" | "year" => {
                let v = match args.first() {
                    Some(a) => self.eval_vector(a, grid, &what)?,
                    None => vec![Series::new(
                        Labels::default(),
                        (0..steps)
                            .map(|i| Point {
                                t: grid.ts(i),
                                v: grid.ts(i) as f64 / 1000.0,
                            })
                            .collect(),
                    )],
                };
                Ok(Value::Vector(map_points(
                    v,
                    self.delayed(),
                    |_, x| Some(date_part(name, x)),
                    grid,
                )?))
            }
            "sort" | "sort_desc" => {
                self.warn_sort_in_range_query();
                let mut v = self.eval_vector(args[0], grid, &what)?;
                // Prometheus sorts floats only; histogram samples are dropped.
                for s in &mut v {
                    s.hpoints = Vec::new();
                }
                v.retain(|s| !s.points.is_empty());
                if steps == 1 {
                    let key = |s: &Series| s.points.first().map_or(f64::NAN, |p| p.v);
                    v.sort_by(|a, b| {
                        let (x, y) = (key(a), key(b));
                        let by_value = if name == "sort" {
                            x.partial_cmp(&y)
                        } else {
                            y.partial_cmp(&x)
                        };
                        x.is_nan()
                            .cmp(&y.is_nan())
                            .then(by_value.unwrap_or(std::cmp::Ordering::Equal))
                    });
                }
                Ok(Value::Vector(v))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                self.warn_sort_in_range_query();
                let mut v = self.eval_vector(args[0], grid, &what)?;
                let names = args[1..]
                    .iter()
                    .map(|a| self.eval_string(a, grid, &what))
                    .collect::<Result<Vec<String>>>()?;
                v.sort_by(|a, b| {
                    let mut ord = std::cmp::Ordering::Equal;
                    for n in &names {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        if x != y {
                            ord = natural_cmp(x, y);
                            break;
                        }
                    }
                    let ord = ord.then_with(|| a.labels.cmp(&b.labels));
                    if name == "sort_by_label_desc" {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
                Ok(Value::Vector(v))
            }
            "label_replace" => self.label_replace(&args, grid),
            "label_join" => self.label_join(&args, grid),
            "histogram_quantile" => {
                let q = self.eval_scalar(args[0], grid, &what)?;
                self.check_quantile(&q);
                let v = self.eval_vector(args[1], grid, &what)?;
                Ok(Value::Vector(self.classic_histograms(
                    v,
                    grid,
                    |i, b| bucket_quantile(q[i], b),
                    |i, h| histogram_quantile(q[i], h),
                )?))
            }
            "histogram_fraction" => {
                let lower = self.eval_scalar(args[0], grid, &what)?;
                let upper = self.eval_scalar(args[1], grid, &what)?;
                let v = self.eval_vector(args[2], grid, &what)?;
                Ok(Value::Vector(self.classic_histograms(
                    v,
                    grid,
                    |i, b| (bucket_fraction(lower[i], upper[i], b), false),
                    |i, h| histogram_fraction(lower[i], upper[i], h),
                )?))
            }
            "histogram_quantiles" => {
                let v = self.eval_vector(args[0], grid, &what)?;
                let label = self.eval_string(args[1], grid, &what)?;
                if !is_valid_label_name(&label) {
                    return Err(exec(format!("invalid label name {label:?}")));
                }
                let mut out = Vec::new();
                for q_arg in &args[2..] {
                    let q = self.eval_scalar(q_arg, grid, &what)?;
                    self.check_quantile(&q);
                    for mut s in self.classic_histograms(
                        v.clone(),
                        grid,
                        |i, b| bucket_quantile(q[i], b),
                        |i, h| histogram_quantile(q[i], h),
                    )? {
                        // Label each result with its quantile, written as Prometheus does ("0.0", "0.25").
                        s.labels = s.labels.with(&label, &format!("{:?}", q[0]));
                        out.push(s);
                    }
                }
                Ok(Value::Vector(merge_same_labels(out)?))
            }
            // These read native histograms only; float samples are ignored.
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                let f: fn(&FloatHistogram) -> f64 = match name {
                    "histogram_count" => |h| h.count,
                    "histogram_sum" => |h| h.sum,
                    "histogram_avg" => |h| h.sum / h.count,
                    "histogram_stddev" => histogram_stddev,
                    _ => histogram_stdvar,
                };
                let v = self.eval_vector(args[0], grid, &what)?;
                let mut out = Vec::with_capacity(v.len());
                for s in v {
                    if s.hpoints.is_empty() {
                        continue;
                    }
                    let points = s
                        .hpoints
                        .iter()
                        .map(|p| Point { t: p.t, v: f(&p.h) })
                        .collect();
                    let mut series = Series {
                        labels: s.labels,
                        points,
                        hpoints: Vec::new(),
                        drop_name: s.drop_name,
                    };
                    series.drop_name(self.delayed());
                    out.push(series);
                }
                Ok(Value::Vector(merge_same_labels(out)?))
            }
            _ => self.range_function(name, &args, grid),
        }
    }

    /// Classic histograms: series grouped by their labels without `le`, and
    /// `f(step, buckets)` per step over `(upper bound, count)` buckets (it
    /// also says whether the counts had to be forced monotonic). The metric
    /// name is part of the group (two histograms never mix) and dropped from
    /// the result, so two metrics that collide are an error. Series without a
    /// readable `le` are skipped with a warning, as in Prometheus.
    ///
    /// Native histograms go through `native(step, histogram)` instead; where
    /// a native histogram has the labels of a classic one's buckets at the
    /// same step, neither is evaluated and Prometheus's warning says why.
    fn classic_histograms(
        &self,
        series: Vec<Series>,
        grid: Grid,
        f: impl Fn(usize, Vec<(f64, f64)>) -> (f64, bool),
        native: impl Fn(usize, &FloatHistogram) -> (f64, Option<HistogramNote>),
    ) -> Result<Vec<Series>> {
        let mut groups: Vec<(Labels, Vec<(f64, &Series)>)> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for s in &series {
            if s.points.is_empty() {
                continue;
            }
            let le = s.labels.get("le").unwrap_or("");
            let Ok(bound) = parse_go_float(le) else {
                self.warn(format!(
                    "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {:?}",
                    self.name_in_message(&s.labels)
                ));
                continue;
            };
            let key = s.labels.filter(|n| n != "le");
            let next = groups.len();
            let g = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                next
            });
            groups[g].1.push((bound, s));
        }
        let mut out = Vec::new();
        // Steps at which a classic group meets a native histogram of its labels.
        let mut conflicts: HashMap<usize, Vec<bool>> = HashMap::new();
        for s in &series {
            if s.hpoints.is_empty() {
                continue;
            }
            let mut points = Vec::with_capacity(s.hpoints.len());
            let group = index.get(&s.labels).map(|&g| &groups[g]);
            for p in &s.hpoints {
                let step = grid.index(p.t);
                let classic_here = group.is_some_and(|(_, members)| {
                    members
                        .iter()
                        .any(|(_, m)| m.points.binary_search_by_key(&p.t, |q| q.t).is_ok())
                });
                if classic_here {
                    let name = self.name_in_message(&s.labels);
                    self.warn(if name.is_empty() {
                        "vector contains a mix of classic and native histograms".into()
                    } else {
                        format!(
                            "vector contains a mix of classic and native histograms for metric name {name:?}"
                        )
                    });
                    if let Some(&g) = index.get(&s.labels) {
                        conflicts
                            .entry(g)
                            .or_insert_with(|| vec![false; grid.len()])[step] = true;
                    }
                    continue;
                }
                let (v, note) = native(step, &p.h);
                if let Some(note) = note {
                    self.info(histogram_note(note, s.labels.metric_name().unwrap_or("")));
                }
                points.push(Point { t: p.t, v });
            }
            if !points.is_empty() {
                let mut native_series = Series::new(s.labels.clone(), points);
                native_series.drop_name = s.drop_name;
                native_series.drop_name(self.delayed());
                out.push(native_series);
            }
        }
        for (g, (labels, members)) in groups.into_iter().enumerate() {
            let mut per_step: Vec<Vec<(f64, f64)>> = vec![Vec::new(); grid.len()];
            for (bound, s) in members {
                for p in &s.points {
                    per_step[grid.index(p.t)].push((bound, p.v));
                }
            }
            let conflict = conflicts.get(&g);
            let mut points = Vec::new();
            for (i, buckets) in per_step.into_iter().enumerate() {
                if buckets.is_empty() || conflict.is_some_and(|c| c[i]) {
                    continue;
                }
                let (v, forced) = f(i, buckets);
                if forced {
                    self.info(format!(
                        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                        self.name_in_message(&labels)
                    ));
                }
                points.push(Point { t: grid.ts(i), v });
            }
            if !points.is_empty() {
                let mut s = Series::new(labels, points);
                s.drop_name(self.delayed());
                out.push(s);
            }
        }
        merge_same_labels(out)
    }

    /// The metric name Prometheus's histogram messages give: none unless
    /// names are dropped late, since otherwise it may be gone already.
    fn name_in_message<'l>(&self, labels: &'l Labels) -> &'l str {
        if self.delayed() {
            labels.metric_name().unwrap_or("")
        } else {
            ""
        }
    }

    /// Prometheus warns that `sort` has no effect on a range query's result.
    fn warn_sort_in_range_query(&self) {
        if self.query_step != 0 {
            self.warn(
                "sort is ineffective for range queries since results are always ordered by labels"
                    .into(),
            );
        }
    }

    fn label_replace(&mut self, args: &[&Expr], grid: Grid) -> Result<Value> {
        let what = "call to function \"label_replace\"";
        let v = self.eval_vector(args[0], grid, what)?;
        let strings = args[1..]
            .iter()
            .map(|a| self.eval_string(a, grid, what))
            .collect::<Result<Vec<String>>>()?;
        let [dst, replacement, src, pattern] = &strings[..] else {
            return Err(exec("label_replace takes a vector and four strings"));
        };
        let re = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
            exec(format!(
                "invalid regular expression in label_replace(): {pattern}: {e}"
            ))
        })?;
        if !is_valid_label_name(dst) && dst != sextant_model::METRIC_NAME {
            return Err(exec(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        let out = v
            .into_iter()
            .map(|mut s| {
                let value = s.labels.get(src).unwrap_or("").to_string();
                if let Some(caps) = re.captures(&value) {
                    let mut result = String::new();
                    caps.expand(replacement, &mut result);
                    s.labels = s.labels.with(dst, &result);
                    // Writing the name keeps it: the series has one again.
                    if dst == sextant_model::METRIC_NAME {
                        s.drop_name = false;
                    }
                }
                s
            })
            .collect();
        Ok(Value::Vector(merge_same_labels(out)?))
    }

    fn label_join(&mut self, args: &[&Expr], grid: Grid) -> Result<Value> {
        let what = "call to function \"label_join\"";
        let v = self.eval_vector(args[0], grid, what)?;
        let strings = args[1..]
            .iter()
            .map(|a| self.eval_string(a, grid, what))
            .collect::<Result<Vec<String>>>()?;
        if strings.len() < 2 {
            return Err(exec(
                "label_join takes a vector, a destination label, a separator and source labels",
            ));
        }
        let (dst, sep, srcs) = (&strings[0], &strings[1], &strings[2..]);
        if !is_valid_label_name(dst) && dst != sextant_model::METRIC_NAME {
            return Err(exec(format!(
                "invalid destination label name in label_join(): {dst}"
            )));
        }
        for src in srcs {
            if !is_valid_label_name(src) && src != sextant_model::METRIC_NAME {
                return Err(exec(format!(
                    "invalid source label name in label_join(): {src}"
                )));
            }
        }
        let out = v
            .into_iter()
            .map(|mut s| {
                let joined: Vec<&str> =
                    srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
                let joined = joined.join(sep);
                s.labels = s.labels.with(dst, &joined);
                if dst == sextant_model::METRIC_NAME {
                    s.drop_name = false;
                }
                s
            })
            .collect();
        Ok(Value::Vector(merge_same_labels(out)?))
    }

    /// Applies `work` to every series of a range source (in parallel when
    /// read from storage), keeping their order.
    fn map_range<T: Send>(
        &self,
        source: RangeSource<'_>,
        grid: Grid,
        work: impl Fn(Series) -> Option<T> + Sync,
    ) -> Result<Vec<T>> {
        match source {
            RangeSource::Selector(ms, window) => self.map_range_series(&ms.vs, window, grid, work),
            RangeSource::Evaluated(rv) => {
                let mut out = Vec::with_capacity(rv.series.len());
                for s in rv.series {
                    self.check_deadline()?;
                    out.extend(work(s));
                }
                Ok(out)
            }
        }
    }

    /// The scalar arguments of range function `name`, evaluated, and the
    /// index of its range argument.
    pub(super) fn range_arguments(
        &mut self,
        name: &str,
        args: &[&Expr],
        grid: Grid,
    ) -> Result<(usize, Vec<Vec<f64>>)> {
        let what = format!("call to function {name:?}");
        let (range_at, scalars) = range_argument_layout(name);
        if args.len() <= range_at || scalars.iter().any(|&i| i >= args.len()) {
            return Err(exec(format!(
                "function {name:?} is not supported by Sextant's engine yet"
            )));
        }
        let mut params: Vec<Vec<f64>> = Vec::new();
        for &i in scalars {
            params.push(self.eval_scalar(args[i], grid, &what)?);
        }
        Ok((range_at, params))
    }

    /// Range function `name` ready to run over series (its scalar
    /// arguments checked), or the error Prometheus gives for them.
    pub(super) fn window_call<'n>(
        &self,
        name: &'n str,
        params: &[Vec<f64>],
        window: Window,
        grid: Grid,
    ) -> Result<WindowCall<'n>> {
        if matches!(name, "double_exponential_smoothing" | "holt_winters") {
            for (&sf, &tf) in params[0].iter().zip(&params[1]) {
                if sf <= 0.0 || sf >= 1.0 {
                    return Err(exec(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                    )));
                }
                if tf <= 0.0 || tf >= 1.0 {
                    return Err(exec(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                    )));
                }
            }
        }
        let f: WindowFn = match name {
            "rate" | "increase" | "delta" => {
                let (counter, rate) = (name != "delta", name == "rate");
                let range = window.range;
                Box::new(move |_, end, w| {
                    extrapolated_rate(w, end - range, end, range, counter, rate)
                })
            }
            "irate" => Box::new(|_, _, w| instant_delta(w, true)),
            "idelta" => Box::new(|_, _, w| instant_delta(w, false)),
            "deriv" => Box::new(|_, _, w| (w.len() >= 2).then(|| linear_regression(w, w[0].t).0)),
            "predict_linear" => {
                let d = params[0].clone();
                Box::new(move |i, _, w| {
                    if w.len() < 2 {
                        return None;
                    }
                    let (slope, intercept) = linear_regression(w, grid.ts(i));
                    Some(slope * d[i] + intercept)
                })
            }
            "resets" => {
                Box::new(|_, _, w| Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64))
            }
            "changes" => Box::new(|_, _, w| {
                Some(
                    w.windows(2)
                        .filter(|p| !(p[1].v == p[0].v || (p[1].v.is_nan() && p[0].v.is_nan())))
                        .count() as f64,
                )
            }),
            "sum_over_time" => Box::new(|_, _, w| {
                let (s, c) = w
                    .iter()
                    .fold((0.0, 0.0), |(s, c), p| kahan_sum_inc(p.v, s, c));
                Some(s + c)
            }),
            "avg_over_time" => Box::new(|_, _, w| Some(avg_values(w))),
            "count_over_time" => Box::new(|_, _, w| Some(w.len() as f64)),
            "present_over_time" => Box::new(|_, _, _| Some(1.0)),
            "last_over_time" => Box::new(|_, _, w| Some(w[w.len() - 1].v)),
            "first_over_time" => Box::new(|_, _, w| Some(w[0].v)),
            "ts_of_last_over_time" => Box::new(|_, _, w| Some(w[w.len() - 1].t as f64 / 1000.0)),
            "ts_of_first_over_time" => Box::new(|_, _, w| Some(w[0].t as f64 / 1000.0)),
            "max_over_time" | "min_over_time" | "ts_of_max_over_time" | "ts_of_min_over_time" => {
                let max = name.contains("max");
                let ts = name.starts_with("ts_of");
                Box::new(move |_, _, w| {
                    let mut best = w[0];
                    for p in w {
                        let better = match (max, ts) {
                            (true, false) => p.v > best.v,
                            (false, false) => p.v < best.v,
                            (true, true) => p.v >= best.v,
                            (false, true) => p.v <= best.v,
                        };
                        if better || best.v.is_nan() {
                            best = *p;
                        }
                    }
                    Some(if ts { best.t as f64 / 1000.0 } else { best.v })
                })
            }
            "stddev_over_time" => Box::new(|_, _, w| Some(stdvar_values(w).sqrt())),
            "stdvar_over_time" => Box::new(|_, _, w| Some(stdvar_values(w))),
            "quantile_over_time" => {
                self.check_quantile(&params[0]);
                let q = params[0].clone();
                Box::new(move |i, _, w| Some(quantile(q[i], w.iter().map(|p| p.v).collect())))
            }
            "mad_over_time" => Box::new(|_, _, w| {
                if w.iter().any(|p| p.v.is_nan()) {
                    return Some(f64::NAN);
                }
                let median = quantile(0.5, w.iter().map(|p| p.v).collect());
                Some(quantile(
                    0.5,
                    w.iter().map(|p| (p.v - median).abs()).collect(),
                ))
            }),
            "double_exponential_smoothing" | "holt_winters" => {
                let (sf, tf) = (params[0].clone(), params[1].clone());
                Box::new(move |i, _, w| double_exponential_smoothing(w, sf[i], tf[i]))
            }
            other => {
                return Err(exec(format!(
                    "function {other:?} is not supported by Sextant's engine yet"
                )));
            }
        };
        Ok(WindowCall {
            name,
            f,
            window,
            keep_name: keeps_metric_name(name),
            counter_function: matches!(name, "rate" | "increase"),
        })
    }

    fn range_function(&mut self, name: &str, args: &[&Expr], grid: Grid) -> Result<Value> {
        let what = format!("call to function {name:?}");
        let (range_at, params) = self.range_arguments(name, args, grid)?;
        // A range selector streams from storage one series at a time; a
        // subquery is evaluated first.
        let source = match unwrap_parens(args[range_at]) {
            Expr::MatrixSelector(ms) => RangeSource::Selector(ms, self.window_of(ms)),
            other => RangeSource::Evaluated(self.eval_range(other, grid, &what)?),
        };
        let window = source.window();
        if name == "absent_over_time" {
            let mut present = vec![false; grid.len()];
            let labels = match &source {
                RangeSource::Selector(ms, _) => equality_labels(&ms.vs),
                RangeSource::Evaluated(_) => Labels::default(),
            };
            let steps_present = self.map_range(source, grid, |s| {
                let mut steps = Vec::new();
                window.for_each_window_mixed(
                    &s.points,
                    &s.hpoints,
                    grid,
                    0..grid.len(),
                    |i, _, _, _| steps.push(i),
                );
                Some(steps)
            })?;
            for i in steps_present.into_iter().flatten() {
                present[i] = true;
            }
            return Ok(Value::Vector(absent_series(labels, &present, grid)));
        }
        let call = self.window_call(name, &params, window, grid)?;
        let out = self.map_range(source, grid, |s| {
            let mut points = Vec::new();
            let mut hpoints = Vec::new();
            call.eval_series(
                self,
                &s.labels,
                &s.points,
                &s.hpoints,
                grid,
                0..grid.len(),
                &mut Vec::new(),
                |i, value| match value {
                    Sampled::Float(v) => points.push(Point { t: grid.ts(i), v }),
                    Sampled::Histogram(h) => hpoints.push(HPoint {
                        t: grid.ts(i),
                        h: Arc::new(h),
                    }),
                },
            );
            if points.is_empty() && hpoints.is_empty() {
                return None;
            }
            let mut out = Series {
                labels: s.labels,
                points,
                hpoints,
                drop_name: s.drop_name,
            };
            if call.drops_name(s.drop_name) {
                out.drop_name(self.delayed());
            }
            Some(out)
        })?;
        self.charge(out.iter().map(Series::len).sum())?;
        Ok(Value::Vector(merge_same_labels(out)?))
    }
}

fn absent_series(labels: Labels, present: &[bool], grid: Grid) -> Vec<Series> {
    let points: Vec<Point> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| Point {
            t: grid.ts(i),
            v: 1.0,
        })
        .collect();
    if points.is_empty() {
        Vec::new()
    } else {
        vec![Series::new(labels, points)]
    }
}

/// Sorts buckets by bound and merges equal bounds; `None` without a `+Inf` bucket.
fn normalize_buckets(mut buckets: Vec<(f64, f64)>) -> Option<Vec<(f64, f64)>> {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(b),
        }
    }
    Some(merged)
}

/// The fraction of observations between `lower` and `upper`, interpolating
/// linearly within finite buckets. The first bucket starts at 0 when its
/// bound is positive (as `histogram_quantile` assumes); a bucket of infinite
/// width contributes whole when the range reaches its infinite end.
fn bucket_fraction(lower: f64, upper: f64, buckets: Vec<(f64, f64)>) -> f64 {
    let Some(buckets) = normalize_buckets(buckets) else {
        return f64::NAN;
    };
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let mut inside = 0.0;
    let mut prev_count = 0.0;
    for (i, &(hi, count)) in buckets.iter().enumerate() {
        let lo = match i {
            0 if hi > 0.0 => 0.0,
            0 => f64::NEG_INFINITY,
            _ => buckets[i - 1].0,
        };
        let n = count - prev_count;
        prev_count = count;
        // A bucket of infinite width counts whole when the range reaches its
        // infinite end, and not at all otherwise.
        let reaches_infinite_end = (hi == f64::INFINITY && upper == hi && lower < hi)
            || (lo == f64::NEG_INFINITY && lower == lo && upper > lo);
        if (lower <= lo && hi <= upper) || reaches_infinite_end {
            inside += n;
        } else if lo.is_finite() && hi.is_finite() {
            let overlap = hi.min(upper) - lo.max(lower);
            if overlap > 0.0 {
                inside += n * overlap / (hi - lo);
            }
        }
    }
    inside / total
}

/// Go's `strconv.ParseFloat`, which also reads `+Inf`, `Inf` and `NaN`.
pub fn parse_go_float(s: &str) -> std::result::Result<f64, std::num::ParseFloatError> {
    match s.to_ascii_lowercase().as_str() {
        "+inf" | "inf" | "+infinity" | "infinity" => Ok(f64::INFINITY),
        "-inf" | "-infinity" => Ok(f64::NEG_INFINITY),
        "nan" => Ok(f64::NAN),
        _ => s.parse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rising_values_are_told_from_resets_and_nans() {
        let samples = |values: &[f64]| -> Vec<sextant_model::Sample> {
            values
                .iter()
                .enumerate()
                .map(|(i, &value)| sextant_model::Sample {
                    timestamp_ms: i as i64 * 15_000,
                    value,
                })
                .collect()
        };
        let stale = sextant_model::stale_nan();
        for (values, rises) in [
            (&[][..], true),
            (&[3.0][..], true),
            (&[f64::NAN][..], false),
            (&[stale][..], false),
            (&[-0.0, 0.0, 0.0, 1.5, f64::INFINITY][..], true),
            (&[0.0, -0.0][..], true),
            (&[1.0, 2.0, 1.0, 3.0][..], false),
            (&[1.0, 2.0, stale, 3.0][..], false),
            (&[f64::NAN, 1.0, 2.0][..], false),
            (&[1.0, 2.0, f64::NAN][..], false),
        ] {
            assert_eq!(only_rises(&samples(values)), rises, "{values:?}");
        }
        // Past a few hundred values, where a loop could go by blocks.
        let mut long: Vec<f64> = (0..1_000).map(f64::from).collect();
        assert!(only_rises(&samples(&long)));
        long[777] = 0.0;
        assert!(!only_rises(&samples(&long)));
    }

    /// Kept timestamp arithmetic gives what computing it afresh gives, to
    /// the bit, over regular and jittered scrapes, gaps, counters that
    /// start at zero or below, and windows of every size.
    #[test]
    fn extrapolation_with_kept_divisions_matches_extrapolate() {
        let mut seed = 3u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for (range, counter, rate) in [
            (300_000, true, true),
            (300_000, true, false),
            (120_000, false, false),
            (60_000, false, true),
        ] {
            let mut kept = Extrapolation::default();
            let mut t = 0i64;
            let mut v = if next(4) == 0 { -5.0 } else { 0.0 };
            let points: Vec<Point> = (0..5_000)
                .map(|_| {
                    t += match next(10) {
                        0 => 1 + next(100_000) as i64,
                        1 => 15_000 + next(7) as i64 - 3,
                        _ => 15_000,
                    };
                    v += (next(5) as f64) * 0.5;
                    if next(200) == 0 {
                        v = 0.0;
                    }
                    Point { t, v }
                })
                .collect();
            let (mut lo, mut hi) = (0, 0);
            for step in 0..4_000i64 {
                let end = step * 60_000 + next(3) as i64;
                while hi < points.len() && points[hi].t <= end {
                    hi += 1;
                }
                while lo < hi && points[lo].t <= end - range {
                    lo += 1;
                }
                let w = &points[lo..hi];
                let result = match w {
                    [] => 0.0,
                    [first, .., last] => last.v - first.v,
                    [one] => one.v,
                };
                let expected = extrapolate(w, result, end - range, end, range, counter, rate);
                let got = kept.apply(w, result, end - range, end, range, counter, rate);
                assert_eq!(
                    expected.map(f64::to_bits),
                    got.map(f64::to_bits),
                    "window ending {end} of {range} ms"
                );
            }
        }
    }
}
