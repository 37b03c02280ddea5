//! The evaluator: walks the syntax tree over a grid of steps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};
use sextant_model::histogram::{CounterResetHint, FloatHistogram, HistogramSample};
use sextant_model::{Labels, MatchOp, Matcher, Sample, is_stale_nan};
use sextant_storage::{LazySeries, MetricsReader};

use super::{EngineOptions, HPoint, Point, TimedValue};
use crate::time::MAX_TIME_MS;
use crate::{Error, Result};

/// The steps an expression is evaluated at: `start..=end` every `step` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Grid {
    pub fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step + 1) as usize
        }
    }

    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    /// The step index of a timestamp on this grid.
    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }
}

/// A series between nodes: labels fixed across steps, points on the grid.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub labels: Labels,
    /// Float points.
    pub points: Vec<Point>,
    /// Native histogram points, sorted by time like `points`. On a grid a
    /// step has a float or a histogram, never both; a range's raw samples
    /// may interleave the two.
    pub hpoints: Vec<HPoint>,
    /// Prometheus's `DropName`: an operation dropped the metric name. With
    /// delayed name removal the name stays in `labels` until the query ends
    /// (so later steps can still read and group by it); without, it is gone
    /// already and the flag changes nothing.
    pub drop_name: bool,
}

impl Series {
    pub fn new(labels: Labels, points: Vec<Point>) -> Self {
        Self {
            labels,
            points,
            hpoints: Vec::new(),
            drop_name: false,
        }
    }

    /// A series with float and histogram points.
    pub fn with_histograms(labels: Labels, points: Vec<Point>, hpoints: Vec<HPoint>) -> Self {
        Self {
            labels,
            points,
            hpoints,
            drop_name: false,
        }
    }

    /// Whether the series has no point at all.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.hpoints.is_empty()
    }

    /// Points held (floats and histograms).
    pub fn len(&self) -> usize {
        self.points.len() + self.hpoints.len()
    }

    /// Drops the metric name: now, or at the end of the query when delayed.
    pub fn drop_name(&mut self, delayed: bool) {
        self.drop_name = true;
        if !delayed {
            self.labels = self.labels.without_metric_name();
        }
    }
}

/// A value between nodes.
#[derive(Debug)]
pub(crate) enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    /// Series with points on the grid's steps.
    Vector(Vec<Series>),
    /// A range selector or subquery, not yet cut into windows.
    Matrix(RangeVector),
    String(String),
}

impl Value {
    fn size(&self) -> usize {
        match self {
            Self::Scalar(v) => v.len(),
            Self::Vector(s) => s.iter().map(Series::len).sum(),
            Self::Matrix(rv) => rv.series.iter().map(Series::len).sum(),
            Self::String(_) => 1,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Scalar(_) => "scalar",
            Self::Vector(_) => "instant vector",
            Self::Matrix(_) => "range vector",
            Self::String(_) => "string",
        }
    }
}

/// Raw points of a range selector or subquery and how to window them.
#[derive(Debug)]
pub(crate) struct RangeVector {
    pub series: Vec<Series>,
    pub window: Window,
}

/// How a range is cut at each step `ts`: the window is `(end - range, end]`
/// with `end = (at or ts) - offset`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl Window {
    /// The exclusive lower and inclusive upper bound of the window at `ts`.
    pub fn window_bounds(&self, ts: i64) -> (i64, i64) {
        let end = self.at.unwrap_or(ts) - self.offset;
        (end - self.range, end)
    }

    /// Calls `f(step, window_end, floats, histograms)` for every step of
    /// `steps` whose window over `points` and `hpoints` is not empty.
    pub fn for_each_window_mixed(
        &self,
        points: &[Point],
        hpoints: &[HPoint],
        grid: Grid,
        steps: std::ops::Range<usize>,
        mut f: impl FnMut(usize, i64, &[Point], &[HPoint]),
    ) {
        let (mut lo, mut hi) = (0usize, 0usize);
        let (mut hlo, mut hhi) = (0usize, 0usize);
        for i in steps {
            let (start, end) = self.window_bounds(grid.ts(i));
            while hi < points.len() && points[hi].t <= end {
                hi += 1;
            }
            while hhi < hpoints.len() && hpoints[hhi].t <= end {
                hhi += 1;
            }
            if self.at.is_some() {
                lo = 0;
                hlo = 0;
            }
            while lo < hi && points[lo].t <= start {
                lo += 1;
            }
            while hlo < hhi && hpoints[hlo].t <= start {
                hlo += 1;
            }
            if lo < hi || hlo < hhi {
                f(i, end, &points[lo..hi], &hpoints[hlo..hhi]);
            }
        }
    }

    /// Calls `f(step, window_end, window)` for every step of `steps` whose
    /// window over `points` is not empty; the window as the range of
    /// `points` it covers.
    pub fn for_each_window<P: TimedValue>(
        &self,
        points: &[P],
        grid: Grid,
        steps: std::ops::Range<usize>,
        mut f: impl FnMut(usize, i64, std::ops::Range<usize>),
    ) {
        let (mut lo, mut hi) = (0usize, 0usize);
        for i in steps {
            let (start, end) = self.window_bounds(grid.ts(i));
            while hi < points.len() && points[hi].t() <= end {
                hi += 1;
            }
            if self.at.is_some() {
                lo = 0;
            }
            while lo < hi && points[lo].t() <= start {
                lo += 1;
            }
            if lo < hi {
                f(i, end, lo..hi);
            }
        }
    }
}

/// The windows of a few runs of timestamps over a grid, kept for the next
/// series with the same timestamps: every sample of one scrape has the
/// scrape's time, so a target's series share them, and in label order the
/// buckets of one histogram (`le` sorts last) come one after another. A
/// hit costs a comparison of the timestamps instead of a walk over them.
#[derive(Debug, Default)]
pub(crate) struct WindowMemo {
    /// The most recently used first.
    runs: Vec<WindowRun>,
}

/// One run of timestamps and its non-empty windows, `[step, lo, hi]`.
#[derive(Debug)]
struct WindowRun {
    times: Vec<i64>,
    grid: Grid,
    steps: std::ops::Range<usize>,
    window: (i64, i64, Option<i64>),
    windows: Vec<[u32; 3]>,
}

/// Runs of timestamps a [`WindowMemo`] keeps.
const MEMO_RUNS: usize = 4;

impl WindowRun {
    fn fits<P: TimedValue>(
        &self,
        points: &[P],
        grid: Grid,
        steps: &std::ops::Range<usize>,
        window: &Window,
    ) -> bool {
        self.grid == grid
            && self.steps == *steps
            && self.window == (window.range, window.offset, window.at)
            && self.times.len() == points.len()
            && self.times.first() == points.first().map(|p| p.t()).as_ref()
            && self.times.last() == points.last().map(|p| p.t()).as_ref()
            && self.times.iter().zip(points).all(|(t, p)| *t == p.t())
    }
}

impl Window {
    /// [`Window::for_each_window`] through `memo`: the windows of
    /// timestamps it has seen are not walked again.
    pub fn for_each_window_memo<P: TimedValue>(
        &self,
        memo: &mut WindowMemo,
        points: &[P],
        grid: Grid,
        steps: std::ops::Range<usize>,
        mut f: impl FnMut(usize, i64, std::ops::Range<usize>),
    ) {
        // Indices as u32: longer series (or grids) walk as before.
        if points.len() > u32::MAX as usize || steps.end > u32::MAX as usize {
            return self.for_each_window(points, grid, steps, f);
        }
        let found = memo
            .runs
            .iter()
            .position(|run| run.fits(points, grid, &steps, self));
        let at = match found {
            Some(at) => at,
            None => {
                let mut run = if memo.runs.len() >= MEMO_RUNS {
                    memo.runs.pop().expect("a run")
                } else {
                    WindowRun {
                        times: Vec::new(),
                        grid,
                        steps: steps.clone(),
                        window: (0, 0, None),
                        windows: Vec::new(),
                    }
                };
                run.times.clear();
                run.times.extend(points.iter().map(|p| p.t()));
                run.windows.clear();
                self.for_each_window(points, grid, steps.clone(), |i, _, range| {
                    run.windows
                        .push([i as u32, range.start as u32, range.end as u32]);
                });
                (run.grid, run.steps, run.window) =
                    (grid, steps, (self.range, self.offset, self.at));
                memo.runs.push(run);
                memo.runs.len() - 1
            }
        };
        // The one used is tried first next time.
        memo.runs[..=at].rotate_right(1);
        for &[i, lo, hi] in &memo.runs[0].windows {
            let i = i as usize;
            f(
                i,
                self.window_bounds(grid.ts(i)).1,
                lo as usize..hi as usize,
            );
        }
    }
}

/// Most threads one query evaluates on.
const MAX_WORKERS: usize = 8;
/// Fewer series than this per thread are not worth a thread.
const MIN_SERIES_PER_WORKER: usize = 64;

pub(crate) fn timed_out(timeout: std::time::Duration) -> Error {
    Error::Timeout(format!(
        "query timed out in expression evaluation after {timeout:?}"
    ))
}

pub(crate) struct Evaluator<'a> {
    pub reader: &'a dyn MetricsReader,
    pub options: &'a EngineOptions,
    pub query_start: i64,
    pub query_end: i64,
    /// The query's step in ms; 0 for an instant query.
    pub query_step: i64,
    pub deadline: Instant,
    /// Samples and points held by the values alive now.
    pub held: usize,
    /// Warnings and infos so far (sets: each said once).
    pub notes: std::sync::Mutex<(
        std::collections::BTreeSet<String>,
        std::collections::BTreeSet<String>,
    )>,
    /// Whether a read answered without part of its data (cluster mode: a
    /// partition briefly without an owner); its warnings say which.
    pub partial: std::sync::atomic::AtomicBool,
    /// Whether aggregations of range functions may stream
    /// ([`super::stream`]); off only to compare with the general path.
    pub stream_aggregations: bool,
}

pub(crate) fn exec(msg: impl Into<String>) -> Error {
    Error::Execution(msg.into())
}

impl<'a> Evaluator<'a> {
    /// Records a warning (`PromQL warning: ...`).
    pub fn warn(&self, message: String) {
        self.notes
            .lock()
            .expect("notes lock")
            .0
            .insert(format!("PromQL warning: {message}"));
    }

    /// Records an info (`PromQL info: ...`).
    pub fn info(&self, message: String) {
        self.notes
            .lock()
            .expect("notes lock")
            .1
            .insert(format!("PromQL info: {message}"));
    }

    pub fn annotations(&self) -> super::Annotations {
        let notes = self.notes.lock().expect("notes lock");
        super::Annotations {
            warnings: notes.0.iter().cloned().collect(),
            infos: notes.1.iter().cloned().collect(),
            partial: self.partial.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Takes what the reads just made noted about missing data
    /// ([`sextant_storage::partial`]) as warnings, worded as they came.
    fn take_partial(&self) {
        let noted = sextant_storage::partial::take();
        if noted.is_empty() {
            return;
        }
        self.partial
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.notes.lock().expect("notes lock").0.extend(noted);
    }

    /// Warns about a quantile outside [0, 1], as Prometheus does.
    pub fn check_quantile(&self, q: &[f64]) {
        if let Some(bad) = q.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            self.warn(format!(
                "quantile value should be between 0 and 1, got {}",
                super::functions::format_go_float(*bad)
            ));
        }
    }

    /// Whether names are dropped at the end of the query (see [`Series::drop_name`]).
    pub fn delayed(&self) -> bool {
        self.options.delayed_name_removal
    }

    /// The end of the query: with delayed name removal, the marked names go
    /// now, and series that come to share labels merge, failing where they
    /// share a step (Prometheus's `cleanupMetricLabels`).
    pub fn finish(&self, series: Vec<Series>) -> Result<Vec<Series>> {
        if !self.delayed() || !series.iter().any(|s| s.drop_name) {
            return Ok(series);
        }
        let series = series
            .into_iter()
            .map(|mut s| {
                if s.drop_name {
                    s.labels = s.labels.without_metric_name();
                }
                s
            })
            .collect();
        merge_same_labels(series)
    }

    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(timed_out(self.options.timeout));
        }
        Ok(())
    }

    /// Counts `n` more samples held; fails past the limit.
    pub fn charge(&mut self, n: usize) -> Result<()> {
        self.held += n;
        if self.held > self.options.max_samples {
            return Err(Error::TooManySamples(self.options.max_samples));
        }
        Ok(())
    }

    pub fn eval(&mut self, expr: &Expr, grid: Grid) -> Result<Value> {
        self.check_deadline()?;
        // A subquery's grid (`x[1000y:1ms]`) can have more steps than a value
        // could ever hold: refuse it before anything is allocated for it.
        if grid.len() > self.options.max_samples {
            return Err(Error::TooManySamples(self.options.max_samples));
        }
        let before = self.held;
        let value = self.eval_node(expr, grid)?;
        // The children are consumed; what stays held is this node's value.
        let size = value.size();
        self.charge(size)?;
        self.held = before + size;
        Ok(value)
    }

    fn eval_node(&mut self, expr: &Expr, grid: Grid) -> Result<Value> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; grid.len()])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, grid),
            Expr::Unary(u) => match self.eval(&u.expr, grid)? {
                Value::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Value::Scalar(v))
                }
                Value::Vector(series) => {
                    let series = series
                        .into_iter()
                        .map(|mut s| {
                            s.drop_name(self.delayed());
                            s.points.iter_mut().for_each(|p| p.v = -p.v);
                            s
                        })
                        .collect();
                    Ok(Value::Vector(merge_same_labels(series)?))
                }
                other => Err(exec(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.vector_selector(vs, grid, false)?)),
            Expr::MatrixSelector(ms) => {
                let window = self.window_of(ms);
                let series = self.map_range_series(&ms.vs, window, grid, Some)?;
                self.charge(series.iter().map(|s| s.points.len()).sum())?;
                Ok(Value::Matrix(RangeVector { series, window }))
            }
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, grid)?)),
            Expr::Call(call) => self.call(call, grid),
            Expr::Aggregate(agg) => self.aggregate(agg, grid),
            Expr::Binary(bin) => self.binary(bin, grid),
            Expr::Extension(_) => Err(exec("extension expressions are not supported")),
        }
    }

    /// Evaluates an expression that must give one number per step.
    pub fn eval_scalar(&mut self, expr: &Expr, grid: Grid, what: &str) -> Result<Vec<f64>> {
        match self.eval(expr, grid)? {
            Value::Scalar(v) => Ok(v),
            other => Err(exec(format!(
                "expected type scalar in {what}, got {}",
                other.type_name()
            ))),
        }
    }

    pub fn eval_string(&mut self, expr: &Expr, grid: Grid, what: &str) -> Result<String> {
        match self.eval(expr, grid)? {
            Value::String(s) => Ok(s),
            other => Err(exec(format!(
                "expected type string in {what}, got {}",
                other.type_name()
            ))),
        }
    }

    pub fn eval_vector(&mut self, expr: &Expr, grid: Grid, what: &str) -> Result<Vec<Series>> {
        match self.eval(expr, grid)? {
            Value::Vector(v) => Ok(v),
            other => Err(exec(format!(
                "expected type instant vector in {what}, got {}",
                other.type_name()
            ))),
        }
    }

    pub fn eval_range(&mut self, expr: &Expr, grid: Grid, what: &str) -> Result<RangeVector> {
        match self.eval(expr, grid)? {
            Value::Matrix(v) => Ok(v),
            other => Err(exec(format!(
                "expected type range vector in {what}, got {}",
                other.type_name()
            ))),
        }
    }

    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|at| match at {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(t) => system_time_ms(*t),
        })
    }

    /// The series matching `vs` with samples in `[mint, maxt]`, in label
    /// order, not yet decoded.
    pub(super) fn select_lazy(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<LazySeries<'a>>> {
        let sets = selector_matchers(vs)?;
        if sets.len() == 1 {
            let selected = self.reader.select_lazy(&sets[0], mint, maxt);
            self.take_partial();
            return Ok(selected?);
        }
        // `{a="1" or b="2"}`: the union, each series once, in label order.
        let mut by_labels: BTreeMap<Labels, LazySeries<'a>> = BTreeMap::new();
        for matchers in &sets {
            let selected = self.reader.select_lazy(matchers, mint, maxt);
            self.take_partial();
            for s in selected? {
                by_labels.entry(s.labels.clone()).or_insert(s);
            }
        }
        Ok(by_labels.into_values().collect())
    }

    /// Decodes every series and applies `work` to it, on all cores, keeping
    /// the input order. Each worker holds one series' samples at a time.
    fn par_map<T: Send>(
        &self,
        mut series: Vec<LazySeries<'a>>,
        work: impl Fn(Labels, Vec<Sample>, Vec<HistogramSample>) -> Option<T> + Sync,
    ) -> Result<Vec<T>> {
        let deadline = self.deadline;
        let timeout = self.options.timeout;
        let run = |part: Vec<LazySeries<'a>>| -> Result<Vec<T>> {
            let mut out = Vec::with_capacity(part.len());
            for s in part {
                if Instant::now() > deadline {
                    return Err(timed_out(timeout));
                }
                let (samples, histograms) = s.data()?;
                if let Some(t) = work(s.labels, samples, histograms) {
                    out.push(t);
                }
            }
            Ok(out)
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_WORKERS)
            .min(series.len().div_ceil(MIN_SERIES_PER_WORKER))
            .max(1);
        if threads == 1 {
            return run(series);
        }
        let total = series.len();
        let per = total.div_ceil(threads);
        let mut parts_in = Vec::with_capacity(threads);
        while series.len() > per {
            let tail = series.split_off(series.len() - per);
            parts_in.push(tail);
        }
        parts_in.push(series);
        parts_in.reverse();
        let run = &run;
        let parts: Vec<Result<Vec<T>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts_in
                .into_iter()
                .map(|part| scope.spawn(move || run(part)))
                .collect();
            joined(handles)
        });
        let mut out = Vec::with_capacity(total);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }

    /// An instant selector: at each step the newest sample in `(t - lookback, t]`
    /// (shifted by offset and pinned by `@`), unless it is a staleness marker.
    /// With `timestamps`, the value is the sample's time in seconds (`timestamp()`).
    pub fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        grid: Grid,
        timestamps: bool,
    ) -> Result<Vec<Series>> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let lookback = self.options.lookback_delta_ms;
        let first = at.unwrap_or(grid.start) - offset;
        let last = at.unwrap_or(grid.end) - offset;
        let lazy = self.select_lazy(vs, first - lookback + 1, last)?;
        let out = self.par_map(lazy, |labels, samples, histograms| {
            if !histograms.is_empty() {
                return select_mixed(
                    labels,
                    &samples,
                    &histograms,
                    grid,
                    at,
                    offset,
                    lookback,
                    timestamps,
                );
            }
            let mut points = Vec::new();
            let mut next = 0usize;
            for i in 0..grid.len() {
                let ts = grid.ts(i);
                let t = at.unwrap_or(ts) - offset;
                if at.is_some() {
                    next = 0;
                }
                while next < samples.len() && samples[next].timestamp_ms <= t {
                    next += 1;
                }
                if next == 0 {
                    continue;
                }
                let sample = samples[next - 1];
                if sample.timestamp_ms <= t - lookback || is_stale_nan(sample.value) {
                    continue;
                }
                let v = if timestamps {
                    sample.timestamp_ms as f64 / 1000.0
                } else {
                    sample.value
                };
                points.push(Point { t: ts, v });
            }
            (!points.is_empty()).then(|| Series::new(labels, points))
        })?;
        self.charge(out.iter().map(Series::len).sum())?;
        Ok(out)
    }

    /// The window of a range selector.
    pub fn window_of(&self, ms: &promql_parser::parser::MatrixSelector) -> Window {
        Window {
            range: duration_ms(&ms.range),
            offset: offset_ms(&ms.vs.offset),
            at: self.at_ms(&ms.vs.at),
        }
    }

    /// Applies `work` to each series of a range selector, with its samples
    /// (staleness markers removed) over every window of the grid; in parallel,
    /// in label order.
    pub fn map_range_series<T: Send>(
        &self,
        vs: &VectorSelector,
        window: Window,
        grid: Grid,
        work: impl Fn(Series) -> Option<T> + Sync,
    ) -> Result<Vec<T>> {
        let first = window.at.unwrap_or(grid.start) - window.offset;
        let last = window.at.unwrap_or(grid.end) - window.offset;
        let lazy = self.select_lazy(vs, first - window.range + 1, last)?;
        self.par_map(lazy, |labels, samples, histograms| {
            let mut points: Vec<Point> = samples
                .iter()
                .map(|p| Point {
                    t: p.timestamp_ms,
                    v: p.value,
                })
                .collect();
            // Staleness markers are rare: copied in bulk, then dropped.
            if points.iter().any(|p| is_stale_nan(p.v)) {
                points.retain(|p| !is_stale_nan(p.v));
            }
            let hpoints = histogram_points(&histograms);
            if points.is_empty() && hpoints.is_empty() {
                return None;
            }
            work(Series::with_histograms(labels, points, hpoints))
        })
    }

    fn subquery(
        &mut self,
        sq: &promql_parser::parser::SubqueryExpr,
        grid: Grid,
    ) -> Result<RangeVector> {
        let offset = offset_ms(&sq.offset);
        let at = self.at_ms(&sq.at);
        let range = duration_ms(&sq.range);
        let step = sq
            .step
            .as_ref()
            .map_or(self.options.default_subquery_step_ms, duration_ms);
        if step <= 0 {
            return Err(exec("zero or negative subquery step"));
        }
        let (first, last) = match at {
            Some(a) => (a - offset, a - offset),
            None => (grid.start - offset, grid.end - offset),
        };
        // The first step-aligned time after the earliest window's start.
        let mut start = step * ((first - range) / step);
        if start <= first - range {
            start += step;
        }
        let inner = Grid {
            start,
            end: last,
            step,
        };
        let series = match self.eval(&sq.expr, inner)? {
            Value::Vector(series) => series,
            other => {
                return Err(exec(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )));
            }
        };
        // As Prometheus does, a subquery's histograms lose their "reset" and
        // "not a reset" hints: its steps may skip or repeat the samples the
        // hints were about.
        let mut series = series;
        for s in &mut series {
            for p in &mut s.hpoints {
                if matches!(
                    p.h.counter_reset_hint,
                    CounterResetHint::CounterReset | CounterResetHint::NotCounterReset
                ) {
                    Arc::make_mut(&mut p.h).counter_reset_hint = CounterResetHint::Unknown;
                }
            }
        }
        Ok(RangeVector {
            series,
            window: Window { range, offset, at },
        })
    }
}

/// An instant selector over a series with histogram samples: at each step
/// the newest sample, float or histogram, in the lookback window, unless it
/// is a staleness marker (a histogram whose sum is the stale NaN).
#[allow(clippy::too_many_arguments)]
fn select_mixed(
    labels: Labels,
    samples: &[Sample],
    histograms: &[HistogramSample],
    grid: Grid,
    at: Option<i64>,
    offset: i64,
    lookback: i64,
    timestamps: bool,
) -> Option<Series> {
    let mut points = Vec::new();
    let mut hpoints: Vec<HPoint> = Vec::new();
    let (mut next, mut hnext) = (0usize, 0usize);
    // The histogram last converted, shared by the steps that select it.
    let mut converted: Option<(usize, Arc<FloatHistogram>)> = None;
    for i in 0..grid.len() {
        let ts = grid.ts(i);
        let t = at.unwrap_or(ts) - offset;
        if at.is_some() {
            next = 0;
            hnext = 0;
        }
        while next < samples.len() && samples[next].timestamp_ms <= t {
            next += 1;
        }
        while hnext < histograms.len() && histograms[hnext].timestamp_ms <= t {
            hnext += 1;
        }
        let float = next.checked_sub(1).map(|j| &samples[j]);
        let hist = hnext.checked_sub(1).map(|j| (j, &histograms[j]));
        let use_hist = match (float, hist) {
            (None, None) => continue,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(f), Some((_, h))) => h.timestamp_ms > f.timestamp_ms,
        };
        if use_hist {
            let Some((j, h)) = hist else { continue };
            if h.timestamp_ms <= t - lookback || h.value.is_stale() {
                continue;
            }
            if timestamps {
                points.push(Point {
                    t: ts,
                    v: h.timestamp_ms as f64 / 1000.0,
                });
                continue;
            }
            let shared = match &converted {
                Some((k, fh)) if *k == j => fh.clone(),
                _ => {
                    let fh = Arc::new(read_histogram(&h.value));
                    converted = Some((j, fh.clone()));
                    fh
                }
            };
            hpoints.push(HPoint { t: ts, h: shared });
        } else {
            let Some(sample) = float else { continue };
            if sample.timestamp_ms <= t - lookback || is_stale_nan(sample.value) {
                continue;
            }
            let v = if timestamps {
                sample.timestamp_ms as f64 / 1000.0
            } else {
                sample.value
            };
            points.push(Point { t: ts, v });
        }
    }
    (!points.is_empty() || !hpoints.is_empty())
        .then(|| Series::with_histograms(labels, points, hpoints))
}

/// A series' stored histograms as points, stale markers dropped.
pub(super) fn histogram_points(histograms: &[HistogramSample]) -> Vec<HPoint> {
    histograms
        .iter()
        .filter(|h| !h.value.is_stale())
        .map(|h| HPoint {
            t: h.timestamp_ms,
            h: Arc::new(read_histogram(&h.value)),
        })
        .collect()
}

/// A stored histogram as PromQL reads it. As in Prometheus, a "counter
/// reset" hint is not trusted on read: storage only knows it for the first
/// sample of a chunk, and the chunk before may be gone or have been written
/// later (Prometheus's iterators answer "unknown" there), so the reset is
/// detected from the counts instead.
pub(super) fn read_histogram(v: &sextant_model::histogram::HistogramValue) -> FloatHistogram {
    let mut h = v.to_float();
    if h.counter_reset_hint == CounterResetHint::CounterReset {
        h.counter_reset_hint = CounterResetHint::Unknown;
    }
    h
}

/// Merges two lists sorted by time; `None` when both have the same time.
fn merge_sorted<P: Clone>(a: &[P], b: &[P], t: impl Fn(&P) -> i64) -> Option<Vec<P>> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && t(&a[i]) < t(&b[j])) {
            out.push(a[i].clone());
            i += 1;
        } else if i == a.len() || t(&b[j]) < t(&a[i]) {
            out.push(b[j].clone());
            j += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether a float point and a histogram point share a time.
fn share_a_time(points: &[Point], hpoints: &[HPoint]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < points.len() && j < hpoints.len() {
        match points[i].t.cmp(&hpoints[j].t) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// The matcher sets of a selector: one, or several for `{a="1" or b="2"}`.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let convert = |m: &promql_parser::label::Matcher| -> Result<Matcher> {
        let op = match m.op {
            PMatchOp::Equal => MatchOp::Equal,
            PMatchOp::NotEqual => MatchOp::NotEqual,
            PMatchOp::Re(_) => MatchOp::Regex,
            PMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        Matcher::new(m.name.clone(), op, m.value.clone()).map_err(Error::Parse)
    };
    let name = vs
        .name
        .as_ref()
        .map(|n| Matcher::new(sextant_model::METRIC_NAME, MatchOp::Equal, n.clone()));
    let mut sets = Vec::new();
    let groups: Vec<&Vec<promql_parser::label::Matcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![&vs.matchers.matchers]
    } else {
        vs.matchers.or_matchers.iter().collect()
    };
    for group in groups {
        let mut set: Vec<Matcher> = group.iter().map(convert).collect::<Result<_>>()?;
        if let Some(name) = &name {
            set.push(name.clone().map_err(Error::Parse)?);
        }
        sets.push(set);
    }
    Ok(sets)
}

/// The labels `absent()` reports for a selector: its equality matchers, each
/// name once.
pub(crate) fn equality_labels(vs: &VectorSelector) -> Labels {
    // Prometheus's rule: the first `=` matcher of a name sets it; any other
    // matcher of that name removes it again.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut has: Vec<&str> = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        for m in &vs.matchers.matchers {
            if m.name == sextant_model::METRIC_NAME {
                continue;
            }
            if m.op == PMatchOp::Equal && !has.contains(&m.name.as_str()) {
                pairs.retain(|(n, _)| *n != m.name);
                pairs.push((m.name.clone(), m.value.clone()));
                has.push(&m.name);
            } else {
                pairs.retain(|(n, _)| *n != m.name);
            }
        }
    }
    Labels::from_pairs(pairs)
}

/// A duration in ms, at most [`crate::time::MAX_TIME_MS`]: a range or offset
/// of a million years is answered like one of 142,000, and arithmetic on
/// times and durations cannot overflow.
pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).map_or(MAX_TIME_MS, |ms| ms.min(MAX_TIME_MS))
}

pub(crate) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// Series that came to share labels (a dropped metric name) become one,
/// unless they have points at the same step: Prometheus's "vector cannot
/// contain metrics with the same labelset".
pub(crate) fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let target = &mut out[i];
                target.points = merge_sorted(&target.points, &s.points, |p| p.t)
                    .ok_or_else(duplicate_labelset)?;
                if !s.hpoints.is_empty() || !target.hpoints.is_empty() {
                    target.hpoints = merge_sorted(&target.hpoints, &s.hpoints, |p| p.t)
                        .ok_or_else(duplicate_labelset)?;
                    if share_a_time(&target.points, &target.hpoints) {
                        return Err(duplicate_labelset());
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

pub(crate) fn duplicate_labelset() -> Error {
    exec("vector cannot contain metrics with the same labelset")
}

/// Fails when two series of a result share labels.
pub(crate) fn check_unique_labels<'l>(labels: impl Iterator<Item = &'l Labels>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(duplicate_labelset());
        }
    }
    Ok(())
}

/// What each of a query's worker threads answered; a worker that panicked
/// answers an error.
pub(super) fn joined<T>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>,
) -> Vec<Result<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(Error::Execution("a query worker failed".into())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(
        window: &Window,
        memo: Option<&mut WindowMemo>,
        points: &[Point],
        grid: Grid,
        steps: std::ops::Range<usize>,
    ) -> Vec<(usize, i64, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        let f = |i, end, range| out.push((i, end, range));
        match memo {
            Some(memo) => window.for_each_window_memo(memo, points, grid, steps, f),
            None => window.for_each_window(points, grid, steps, f),
        }
        out
    }

    #[test]
    fn remembered_windows_are_the_walked_ones() {
        // Six runs of timestamps (scrapes 15 s apart, some late, some
        // missed), more than the memo keeps; series drawn from them in an
        // order that hits, misses and evicts; and lengths, grids and
        // windows that differ where the timestamps agree.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut draw = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let runs: Vec<Vec<Point>> = (0..6)
            .map(|_| {
                let mut t = 1_000_000 + (draw() % 15_000) as i64;
                (0..400)
                    .filter_map(|_| {
                        t += 15_000
                            + if draw() % 10 == 0 {
                                (draw() % 900) as i64
                            } else {
                                0
                            };
                        (draw() % 20 != 0).then_some(Point { t, v: 1.0 })
                    })
                    .collect()
            })
            .collect::<Vec<_>>();
        // The last two agree but for one timestamp in the middle.
        let mut runs = runs;
        runs[5] = runs[4].clone();
        runs[5][200].t += 14_000;
        let grids = [
            Grid {
                start: 1_200_000,
                end: 7_000_000,
                step: 60_000,
            },
            Grid {
                start: 1_000_000,
                end: 7_200_000,
                step: 17_000,
            },
        ];
        let shapes = [
            Window {
                range: 300_000,
                offset: 0,
                at: None,
            },
            Window {
                range: 60_000,
                offset: 30_000,
                at: None,
            },
            Window {
                range: 300_000,
                offset: 0,
                at: Some(4_000_000),
            },
        ];
        let mut memo = WindowMemo::default();
        let mut hits = 0;
        for n in 0..300 {
            let run = &runs[(draw() % 6) as usize];
            let points = if n % 7 == 0 {
                &run[..run.len() - 1]
            } else {
                &run[..]
            };
            let grid = grids[n / 150];
            let window = shapes[n / 50 % 3];
            let steps = if n % 10 == 9 {
                3..grid.len() - 2
            } else {
                0..grid.len()
            };
            let hit = memo
                .runs
                .iter()
                .any(|r| r.fits(points, grid, &steps, &window));
            hits += usize::from(hit);
            let remembered = windows(&window, Some(&mut memo), points, grid, steps.clone());
            let walked = windows(&window, None, points, grid, steps);
            assert_eq!(remembered, walked, "series {n}");
            assert!(!walked.is_empty());
            assert!(memo.runs.len() <= MEMO_RUNS);
        }
        assert!(hits > 10 && hits < 290, "{hits} hits");
    }
}
