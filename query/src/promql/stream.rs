//! Streaming aggregation: `sum by (job) (rate(x[5m]))`, and every
//! accumulating aggregation (`sum`, `avg`, `count`, `group`, `min`, `max`,
//! `stddev`, `stdvar`) of a range function over a range selector, evaluated
//! without the per-series matrix between the two: each series' window
//! values go straight into its group's accumulators, and the series'
//! samples and scratch buffers are reused for the next.
//!
//! The answer must be the general path's to the bit, so this path keeps its
//! order of floating-point operations: per group and step the members are
//! folded in series (label) order. The work that needs no other series
//! (decoding, the function over every window) is spread over threads a
//! batch of series at a time; each finished batch waits until those
//! before it are folded, and whichever worker finds the next batch ready
//! folds it. Every chunk is decoded once, and the series with the head's
//! data (slower to read) do not hold one worker up while the other idles,
//! as a split of the steps between the threads did.
//!
//! What this path does not do, it leaves to the general path: subqueries
//! (already materialised), `@` over more than one step (every step reads
//! the same window), selectors whose series could collide once their metric
//! names are dropped (the general path merges or refuses them), and splits
//! that would decode much of the data more than once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use promql_parser::parser::{AggregateExpr, Call, Expr, LabelModifier, VectorSelector};
use sextant_model::histogram::FloatHistogram;
use sextant_model::{Labels, METRIC_NAME, is_stale_nan};
use sextant_storage::{LazySeries, SeriesData};

use super::Point;
use super::aggregate::{Acc, Fold, HistogramAcc, group_key};
use super::eval::{Evaluator, Grid, Series, Window, WindowMemo, timed_out};
use super::functions::{
    WindowCall, is_window_function, keeps_metric_name, only_rises, range_argument_layout,
    unwrap_parens,
};
use super::histograms::Sampled;
use crate::Result;

/// Most threads one aggregation folds on.
const MAX_PARTS: usize = 8;

/// Series a worker takes at a time.
const BATCH_SERIES: usize = 16;

/// A series' values at the steps that have one, and what its group needs.
struct SeriesValues {
    key: Labels,
    labels: Labels,
    metric: String,
    floats: Vec<(usize, f64)>,
    histograms: Vec<(usize, FloatHistogram)>,
}

/// A worker's buffers, reused from one series to the next.
#[derive(Default)]
struct Scratch {
    data: SeriesData,
    points: Vec<Point>,
    resets: Vec<usize>,
    windows: WindowMemo,
}

/// The groups so far and the points the general path would have held.
#[derive(Default)]
struct Folder {
    groups: Vec<PartGroup>,
    index: HashMap<Labels, usize>,
    points: usize,
}

/// Value buffers folded and emptied, for the next series: allocated
/// afresh for each, they would keep the allocator handing back new pages.
type Spare = Mutex<Vec<Vec<(usize, f64)>>>;

/// Batches computed out of order wait here until the ones before them
/// are folded.
struct Ordered {
    folder: Folder,
    next: usize,
    ready: BTreeMap<usize, Vec<Option<SeriesValues>>>,
}

/// A group's accumulators over the grid's steps.
struct PartGroup {
    key: Labels,
    /// The labels of the group's first series with a value, which order
    /// the groups.
    first: Labels,
    accs: Vec<Option<Acc>>,
    /// Empty until a histogram arrives.
    haccs: Vec<Option<HistogramAcc>>,
}

impl Evaluator<'_> {
    /// Evaluates `agg` by streaming when its shape allows (see the module
    /// documentation); `None` leaves it to the general path.
    pub(super) fn stream_aggregate(
        &mut self,
        agg: &AggregateExpr,
        fold: Fold,
        grid: Grid,
    ) -> Result<Option<Vec<Series>>> {
        if !self.stream_aggregations {
            return Ok(None);
        }
        let Some((call, ms)) = streamable(agg) else {
            return Ok(None);
        };
        // Series whose names go could come to share labels: the general
        // path merges them (or refuses them) before aggregating.
        if !keeps_metric_name(call.func.name) && !self.delayed() && !pins_metric_name(&ms.vs) {
            return Ok(None);
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let parts = part_count(cores, self.window_of(ms), grid);
        if parts == 0 {
            return Ok(None);
        }
        self.fold_range_call(agg.modifier.as_ref(), fold, call, ms, grid, parts)
            .map(Some)
    }

    /// `fold` by `modifier` over range function `call` of selector `ms`,
    /// its series read and evaluated on `parts` threads.
    pub(super) fn fold_range_call(
        &mut self,
        modifier: Option<&LabelModifier>,
        fold: Fold,
        call: &Call,
        ms: &promql_parser::parser::MatrixSelector,
        grid: Grid,
        parts: usize,
    ) -> Result<Vec<Series>> {
        // As the general path evaluates the call node: its scalars first,
        // then the check of them, then the read.
        let before = self.held;
        self.check_deadline()?;
        let name = call.func.name;
        let args: Vec<&Expr> = call.args.args.iter().map(|a| &**a).collect();
        let (_, params) = self.range_arguments(name, &args, grid)?;
        let window = self.window_of(ms);
        let call = self.window_call(name, &params, window, grid)?;
        let drop_name = call.drops_name(false);
        let strip_name = drop_name && !self.delayed();
        let first = window.at.unwrap_or(grid.ts(0)) - window.offset;
        let last = window.at.unwrap_or(grid.ts(grid.len() - 1)) - window.offset;
        let series = self.select_lazy(&ms.vs, first - window.range + 1, last)?;
        let mut folder = Folder::default();
        let spare = Spare::default();
        let workers = parts.min(series.len().div_ceil(BATCH_SERIES)).max(1);
        if workers == 1 {
            let mut scratch = Scratch::default();
            for s in series {
                let values =
                    self.series_values(&call, modifier, strip_name, grid, s, &mut scratch, &spare)?;
                self.fold_series(fold, grid.len(), &mut folder, values, &spare);
            }
        } else {
            self.fold_in_parallel(
                &call,
                modifier,
                fold,
                strip_name,
                grid,
                series,
                workers,
                &mut folder,
                &spare,
            )?;
        }
        // What the general path holds for the call's value, counted as it
        // counts it (by the function, then by the node).
        let points = folder.points;
        self.charge(points)?;
        self.charge(points)?;
        self.held = before + points;
        Ok(self.assemble(fold, grid, folder, drop_name))
    }

    /// The values of every series, computed on `workers` threads a batch
    /// at a time, folded in series order by whichever worker finds the
    /// next batch ready.
    #[allow(clippy::too_many_arguments)]
    fn fold_in_parallel(
        &self,
        call: &WindowCall<'_>,
        modifier: Option<&LabelModifier>,
        fold: Fold,
        strip_name: bool,
        grid: Grid,
        series: Vec<LazySeries<'_>>,
        workers: usize,
        folder: &mut Folder,
        spare: &Spare,
    ) -> Result<()> {
        let mut batches: Vec<Mutex<Vec<LazySeries<'_>>>> = Vec::new();
        let mut series = series.into_iter();
        loop {
            let batch: Vec<LazySeries<'_>> = series.by_ref().take(BATCH_SERIES).collect();
            if batch.is_empty() {
                break;
            }
            batches.push(Mutex::new(batch));
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let shared = Mutex::new(Ordered {
            folder: std::mem::take(folder),
            next: 0,
            ready: BTreeMap::new(),
        });
        let work = || -> Result<()> {
            let mut scratch = Scratch::default();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches.len() || failed.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let batch = std::mem::take(&mut *batches[b].lock().expect("batch lock"));
                let mut values = Vec::with_capacity(batch.len());
                for s in batch {
                    match self.series_values(
                        call,
                        modifier,
                        strip_name,
                        grid,
                        s,
                        &mut scratch,
                        spare,
                    ) {
                        Ok(v) => values.push(v),
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                let mut guard = shared.lock().expect("fold lock");
                let ordered = &mut *guard;
                ordered.ready.insert(b, values);
                while let Some(values) = ordered.ready.remove(&ordered.next) {
                    ordered.next += 1;
                    for v in values {
                        self.fold_series(fold, grid.len(), &mut ordered.folder, v, spare);
                    }
                }
            }
        };
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let work = &work;
            let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
            super::eval::joined(handles)
        });
        results.into_iter().collect::<Result<()>>()?;
        *folder = shared.into_inner().expect("fold lock").folder;
        Ok(())
    }

    /// One series' values at every step of `grid`, with its group's key:
    /// the work that needs no other series.
    #[allow(clippy::too_many_arguments)]
    fn series_values(
        &self,
        call: &WindowCall<'_>,
        modifier: Option<&LabelModifier>,
        strip_name: bool,
        grid: Grid,
        s: LazySeries<'_>,
        scratch: &mut Scratch,
        spare: &Spare,
    ) -> Result<Option<SeriesValues>> {
        if Instant::now() > self.deadline {
            return Err(timed_out(self.options.timeout));
        }
        s.data_into(&mut scratch.data)?;
        let (samples, histograms) = &scratch.data;
        let counter = histograms.is_empty() && call.counts_resets();
        // A counter that only rises has no staleness markers (NaNs) to
        // look for, nor resets.
        let rising = counter && only_rises(samples);
        // Staleness markers are rare: looked for in one pass that does
        // not stop at the first (and so goes at the speed of the loads).
        let stale = !rising
            && samples
                .iter()
                .fold(false, |stale, p| stale | is_stale_nan(p.value));
        if samples.is_empty() && histograms.is_empty() {
            return Ok(None);
        }
        // At most a value a step: sized once, not grown push by push into
        // memory the allocator has to fault in afresh for every query.
        let mut floats = spare
            .lock()
            .expect("spare lock")
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(grid.len()));
        let mut histogram_values = Vec::new();
        if counter && !stale {
            // `rate` and `increase` read the samples where they lie.
            call.eval_counter_samples(
                self,
                &s.labels,
                samples,
                rising,
                grid,
                0..grid.len(),
                &mut scratch.resets,
                &mut scratch.windows,
                |step, v| floats.push((step, v)),
            );
        } else {
            let points = &mut scratch.points;
            points.clear();
            points.extend(samples.iter().map(|p| Point {
                t: p.timestamp_ms,
                v: p.value,
            }));
            if stale {
                points.retain(|p| !is_stale_nan(p.v));
            }
            let hpoints = super::eval::histogram_points(histograms);
            call.eval_series(
                self,
                &s.labels,
                points,
                &hpoints,
                grid,
                0..grid.len(),
                &mut scratch.resets,
                |step, value| match value {
                    Sampled::Float(v) => floats.push((step, v)),
                    Sampled::Histogram(h) => histogram_values.push((step, h)),
                },
            );
        }
        if floats.is_empty() && histogram_values.is_empty() {
            spare.lock().expect("spare lock").push(floats);
            return Ok(None);
        }
        let key = group_key(modifier, &s.labels, strip_name);
        // The metric name the general path's aggregation would see.
        let metric = if strip_name {
            String::new()
        } else {
            s.labels.metric_name().unwrap_or("").to_string()
        };
        Ok(Some(SeriesValues {
            key,
            labels: s.labels,
            metric,
            floats,
            histograms: histogram_values,
        }))
    }

    /// One series' values into its group's accumulators; series must come
    /// in label order, as the general path folds them.
    fn fold_series(
        &self,
        fold: Fold,
        steps: usize,
        folder: &mut Folder,
        values: Option<SeriesValues>,
        spare: &Spare,
    ) {
        let Some(mut values) = values else { return };
        folder.points += values.floats.len() + values.histograms.len();
        let g = match folder.index.get(&values.key) {
            Some(&g) => g,
            None => {
                folder.index.insert(values.key.clone(), folder.groups.len());
                folder.groups.push(PartGroup {
                    key: values.key,
                    first: values.labels,
                    accs: vec![None; steps],
                    haccs: Vec::new(),
                });
                folder.groups.len() - 1
            }
        };
        let group = &mut folder.groups[g];
        // A series has at most one value a step: its floats and its
        // histograms touch different accumulators, in any order.
        for &(at, v) in &values.floats {
            match &mut group.accs[at] {
                Some(acc) => acc.add(fold, v),
                slot => *slot = Some(Acc::new(fold, v)),
            }
        }
        values.floats.clear();
        spare.lock().expect("spare lock").push(values.floats);
        for (at, h) in values.histograms {
            self.fold_histogram(fold, group, at, steps, h, &values.metric);
        }
    }

    /// A histogram value into a group: `count` and `group` count it, `sum`
    /// and `avg` add it up, the others ignore it with Prometheus's info.
    fn fold_histogram(
        &self,
        fold: Fold,
        group: &mut PartGroup,
        at: usize,
        steps: usize,
        h: FloatHistogram,
        metric: &str,
    ) {
        match fold {
            Fold::Count | Fold::Group => match &mut group.accs[at] {
                Some(acc) => acc.add(fold, 0.0),
                slot => *slot = Some(Acc::new(fold, 0.0)),
            },
            Fold::Sum | Fold::Avg => {
                if group.haccs.is_empty() {
                    group.haccs = vec![None; steps];
                }
                HistogramAcc::fold(self, &mut group.haccs[at], &h, metric);
            }
            _ => self.info(format!("ignored histogram in {} aggregation", fold.name())),
        }
    }

    /// The groups as result series, in order of first appearance.
    fn assemble(&self, fold: Fold, grid: Grid, folder: Folder, drop_name: bool) -> Vec<Series> {
        let mut groups = folder.groups;
        groups.sort_by(|a, b| a.first.cmp(&b.first));
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let mut points = Vec::new();
            let mut hpoints = Vec::new();
            self.group_results(
                fold,
                grid,
                0,
                &group.accs,
                &group.haccs,
                &mut points,
                &mut hpoints,
            );
            if points.is_empty() && hpoints.is_empty() {
                continue;
            }
            out.push(Series {
                labels: group.key,
                points,
                hpoints,
                drop_name,
            });
        }
        out
    }
}

/// How many threads fold; 0 when the general path, which spreads series
/// over the cores too, does as well: an instant query, or every step
/// reading the same window (`@`), unless there is one core anyway.
pub(super) fn part_count(cores: usize, window: Window, grid: Grid) -> usize {
    let steps = grid.len();
    if steps == 0 {
        return 0;
    }
    if (steps == 1 || window.at.is_some()) && cores > 1 {
        return 0;
    }
    cores.clamp(1, MAX_PARTS)
}

/// Whether every series a selector matches has the same metric name, so
/// that dropping it leaves their labels distinct.
fn pins_metric_name(vs: &VectorSelector) -> bool {
    vs.name.is_some()
        || (vs.matchers.or_matchers.is_empty()
            && vs
                .matchers
                .matchers
                .iter()
                .any(|m| m.name == METRIC_NAME && m.op == promql_parser::label::MatchOp::Equal))
}

/// The call and selector of an aggregation this path can evaluate.
fn streamable(agg: &AggregateExpr) -> Option<(&Call, &promql_parser::parser::MatrixSelector)> {
    if agg.param.is_some() {
        return None;
    }
    let Expr::Call(call) = unwrap_parens(&agg.expr) else {
        return None;
    };
    let name = call.func.name;
    if !is_window_function(name) {
        return None;
    }
    let (range_at, scalars) = range_argument_layout(name);
    let args = &call.args.args;
    if args.len() <= range_at || scalars.iter().any(|&i| i >= args.len()) {
        return None;
    }
    let Expr::MatrixSelector(ms) = unwrap_parens(&args[range_at]) else {
        return None;
    };
    Some((call, ms))
}

#[cfg(test)]
mod tests {
    //! The streaming path against the general one, bit for bit: results,
    //! name flags, warnings and infos, and the samples the query held.

    use std::fmt::Write as _;
    use std::sync::Arc;

    use sextant_model::histogram::{
        CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, HistogramSample, HistogramValue,
        Span,
    };
    use sextant_model::{Labels, PromDuration, Sample, stale_nan};
    use sextant_storage::{SeriesHistograms, SeriesSamples, Tsdb, TsdbConfig, TsdbStats};

    use super::*;
    use crate::promql::eval::Value;
    use crate::promql::{Engine, EngineOptions, parse};

    const MINUTE: i64 = 60_000;

    /// Counters `x_total` (resets, gaps, staleness markers in most, a
    /// series without `job`), gauges `g` (NaN, ±Inf, values whose sum overflows),
    /// native histograms `h` (two exponential schemas and custom buckets,
    /// which cannot be added to them) and a float series `h` beside them.
    fn store(dir: &std::path::Path) -> Arc<Tsdb> {
        let db = Tsdb::open(
            dir,
            TsdbConfig::default(),
            PromDuration::from_secs(365 * 86_400),
            Arc::new(TsdbStats::default()),
        )
        .unwrap();
        let mut seed = 7u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut batch = Vec::new();
        for i in 0..12i64 {
            let mut pairs = vec![
                ("__name__", "x_total".to_string()),
                ("instance", format!("i{i}")),
            ];
            match i % 3 {
                0 => pairs.push(("job", "a".into())),
                1 => pairs.push(("job", "b".into())),
                _ => {}
            }
            let mut value = 0.0;
            let mut samples = Vec::new();
            for k in 0..480i64 {
                // Series 4 misses 20 minutes; every series jitters a little.
                if i == 4 && (120..200).contains(&k) {
                    continue;
                }
                if (k + i) % 11 == 0 {
                    continue;
                }
                let t = k * 15_000 + (i * 997 + k * 31) % 4_000;
                value += (next() * 10.0).floor() * 0.1 + next() * 1e-3;
                // Series 7 only rises: neither resets nor staleness markers.
                if k % (40 + i) == 39 && i != 7 {
                    value = next(); // counter reset
                }
                // A quarter of the series have no staleness markers:
                // `rate` and `increase` read theirs without a copy.
                let v = if k % 97 == 50 && i % 4 != 3 {
                    stale_nan()
                } else {
                    value
                };
                samples.push(Sample {
                    timestamp_ms: t,
                    value: v,
                });
            }
            batch.push(SeriesSamples {
                labels: Labels::from_pairs(pairs),
                samples,
            });
        }
        for i in 0..9i64 {
            let job = if i % 2 == 0 { "a" } else { "b" };
            let samples = (0..240i64)
                .filter(|k| (k * 7 + i) % 13 != 0)
                .map(|k| {
                    let v = match (i, k % 50) {
                        (2, 10..=12) => f64::NAN,
                        (3, 20) => f64::INFINITY,
                        (5, 21) => f64::NEG_INFINITY,
                        (7, _) => 1.5e308,
                        (8, 30) => stale_nan(),
                        _ => (next() - 0.5) * 100.0,
                    };
                    Sample {
                        timestamp_ms: k * 30_000 + i * 1_000,
                        value: v,
                    }
                })
                .collect();
            batch.push(SeriesSamples {
                labels: Labels::from_pairs([
                    ("__name__", "g".to_string()),
                    ("instance", format!("i{i}")),
                    ("job", job.to_string()),
                ]),
                samples,
            });
        }
        batch.push(SeriesSamples {
            labels: Labels::from_pairs([("__name__", "h"), ("instance", "f"), ("job", "b")]),
            samples: (0..240i64)
                .map(|k| Sample {
                    timestamp_ms: k * 30_000,
                    value: k as f64,
                })
                .collect(),
        });
        db.append(&batch).unwrap();
        let histogram = |schema: i32, k: i64, scale: f64| {
            let b = [
                1.0 * k as f64 * scale,
                2.0 * k as f64,
                0.5 * k as f64 * scale,
            ];
            let custom = schema == CUSTOM_BUCKETS_SCHEMA;
            FloatHistogram {
                counter_reset_hint: CounterResetHint::Unknown,
                schema,
                zero_threshold: if custom { 0.0 } else { 0.001 },
                zero_count: if custom { 0.0 } else { k as f64 },
                count: b.iter().sum::<f64>() + if custom { 0.0 } else { k as f64 },
                sum: k as f64 * 3.3 * scale,
                positive_spans: vec![Span {
                    offset: 0,
                    length: 3,
                }],
                negative_spans: Vec::new(),
                positive_buckets: b.to_vec(),
                negative_buckets: Vec::new(),
                custom_values: if custom { vec![0.5, 1.0] } else { Vec::new() },
            }
        };
        let series = [
            ("a", "0", 0, 1.0),
            ("a", "1", 1, 1.7),
            ("b", "2", CUSTOM_BUCKETS_SCHEMA, 1.3),
            ("b", "3", 0, 0.9),
        ];
        let histograms: Vec<SeriesHistograms> = series
            .iter()
            .map(|&(job, instance, schema, scale)| SeriesHistograms {
                labels: Labels::from_pairs([
                    ("__name__", "h"),
                    ("instance", instance),
                    ("job", job),
                ]),
                samples: (1..200i64)
                    .map(|k| HistogramSample {
                        timestamp_ms: k * 30_000 + 500,
                        value: HistogramValue::Float(histogram(schema, k % 70 + 1, scale)),
                    })
                    .collect(),
            })
            .collect();
        db.append_histograms(&histograms).unwrap();
        Arc::new(db)
    }

    /// How a query is evaluated.
    #[derive(Debug, Clone, Copy)]
    enum Path {
        General,
        /// As the engine chooses.
        Auto,
        /// Streamed on this many threads.
        Streamed(usize),
    }

    /// Everything a result is: series with their name flags and the bits
    /// of every value, annotations, and the samples held.
    fn evaluate(engine: &Engine, query: &str, grid: Grid, path: Path) -> String {
        let expr = parse(query).unwrap();
        let mut ev = engine.evaluator(grid.start, grid.end, grid.step);
        ev.stream_aggregations = !matches!(path, Path::General);
        let value = match path {
            Path::General | Path::Auto => ev.eval(&expr, grid).map(|v| match v {
                Value::Vector(series) => series,
                other => panic!("not a vector: {other:?}"),
            }),
            Path::Streamed(parts) => {
                let Expr::Aggregate(agg) = &expr else {
                    panic!("not an aggregation: {query}")
                };
                let fold = Fold::parse(&agg.op.to_string().to_lowercase()).unwrap();
                let (call, ms) = streamable(agg).unwrap();
                // Counted as `eval` counts the aggregation's node.
                let before = ev.held;
                ev.fold_range_call(agg.modifier.as_ref(), fold, call, ms, grid, parts)
                    .and_then(|series| {
                        let size = series.iter().map(Series::len).sum();
                        ev.charge(size)?;
                        ev.held = before + size;
                        Ok(series)
                    })
            }
        };
        let mut out = String::new();
        match value {
            Err(e) => writeln!(out, "error: {e}").unwrap(),
            Ok(series) => {
                for s in series {
                    write!(out, "{} drop={}:", s.labels, s.drop_name).unwrap();
                    for p in &s.points {
                        write!(out, " {}={:x}", p.t, p.v.to_bits()).unwrap();
                    }
                    for p in &s.hpoints {
                        write!(out, " {}={:?}", p.t, p.h).unwrap();
                    }
                    out.push('\n');
                }
            }
        }
        let notes = ev.annotations();
        writeln!(out, "warnings: {:?}", notes.warnings).unwrap();
        writeln!(out, "infos: {:?}", notes.infos).unwrap();
        writeln!(out, "held: {}", ev.held).unwrap();
        out
    }

    fn assert_same(engine: &Engine, query: &str, grid: Grid) {
        let general = evaluate(engine, query, grid, Path::General);
        // A result, an error or a warning why there is none.
        assert!(
            general.lines().count() > 3
                || general.contains("error")
                || !general.contains("warnings: []"),
            "{query} has no result to compare:\n{general}"
        );
        let mut paths = vec![Path::Auto];
        if streamable_query(engine, query) {
            paths.extend([1, 2, 3, 7].map(Path::Streamed));
        }
        for path in paths {
            let streamed = evaluate(engine, query, grid, path);
            assert_eq!(general, streamed, "{query} over {grid:?}, {path:?}");
        }
    }

    /// Whether the engine may stream `query` at all (whatever the grid).
    fn streamable_query(engine: &Engine, query: &str) -> bool {
        let Expr::Aggregate(agg) = parse(query).unwrap() else {
            return false;
        };
        let Some((call, ms)) = streamable(&agg) else {
            return false;
        };
        keeps_metric_name(call.func.name)
            || engine.options().delayed_name_removal
            || pins_metric_name(&ms.vs)
    }

    fn grids() -> Vec<Grid> {
        vec![
            Grid {
                start: 0,
                end: 120 * MINUTE,
                step: MINUTE,
            },
            Grid {
                start: 7 * MINUTE + 333,
                end: 95 * MINUTE,
                step: 37_000,
            },
            Grid {
                start: 61 * MINUTE,
                end: 61 * MINUTE,
                step: 1,
            },
        ]
    }

    const FUNCTIONS: [&str; 17] = [
        "rate(x_total[5m])",
        "increase(x_total[2m])",
        "irate(x_total[1m])",
        "resets(x_total[10m])",
        "rate(x_total[5m] offset 7m)",
        "rate(x_total[5m] offset -3m)",
        "rate(x_total[5m] @ 3000)",
        "delta(g[5m])",
        "sum_over_time(g[3m])",
        "avg_over_time(g[5m])",
        "max_over_time(g[2m])",
        "count_over_time(g[90s])",
        "last_over_time(g[1m])",
        "quantile_over_time(0.3, g[4m])",
        "predict_linear(g[5m], 60)",
        "rate(h[5m])",
        "sum_over_time(h[2m])",
    ];

    const OPS: [&str; 8] = [
        "sum", "avg", "count", "group", "min", "max", "stddev", "stdvar",
    ];

    const GROUPINGS: [&str; 5] = [
        "",
        " by (job)",
        " by (job, absent)",
        " without (instance)",
        " by (__name__, job)",
    ];

    #[test]
    fn streamed_aggregations_match_the_general_path() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(store(dir.path()), EngineOptions::default());
        for grid in grids() {
            for f in FUNCTIONS {
                for op in OPS {
                    for by in GROUPINGS {
                        assert_same(&engine, &format!("{op}{by} ({f})"), grid);
                    }
                }
            }
        }
    }

    #[test]
    fn streamed_aggregations_match_with_delayed_name_removal() {
        let dir = tempfile::tempdir().unwrap();
        let options = EngineOptions {
            delayed_name_removal: true,
            ..EngineOptions::default()
        };
        let engine = Engine::new(store(dir.path()), options);
        for grid in grids() {
            for f in ["rate(x_total[5m])", "last_over_time(g[1m])", "rate(h[5m])"] {
                for op in ["sum", "avg", "count"] {
                    for by in GROUPINGS {
                        assert_same(&engine, &format!("{op}{by} ({f})"), grid);
                    }
                }
            }
        }
    }

    #[test]
    fn selectors_that_may_collide_without_names_take_the_general_path() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(store(dir.path()), EngineOptions::default());
        for query in [
            r#"sum by (instance) (rate({__name__=~"x_total|g"}[5m]))"#,
            r#"sum(rate({__name__="x_total" or __name__="g"}[5m]))"#,
            r#"sum by (job) (rate({__name__="x_total", job="a"}[5m]))"#,
            "sum by (job) (rate((x_total[5m])))",
            "sum by (job) (rate(x_total[5m:1m]))",
        ] {
            for grid in grids() {
                assert_same(&engine, query, grid);
            }
        }
        assert!(!streamable_query(
            &engine,
            r#"sum(rate({__name__=~"x_total|g"}[5m]))"#
        ));
        assert!(streamable_query(
            &engine,
            r#"sum(rate({__name__="x_total"}[5m]))"#
        ));
    }

    #[test]
    fn instant_queries_and_pinned_windows_take_the_general_path_on_more_cores() {
        let grid = Grid {
            start: 0,
            end: 1_439 * MINUTE,
            step: MINUTE,
        };
        let window = Window {
            range: 5 * MINUTE,
            offset: 0,
            at: None,
        };
        assert_eq!(part_count(2, window, grid), 2);
        assert_eq!(part_count(64, window, grid), MAX_PARTS);
        assert_eq!(part_count(1, window, grid), 1);
        let instant = Grid {
            start: 0,
            end: 0,
            step: 1,
        };
        assert_eq!(part_count(2, window, instant), 0);
        assert_eq!(part_count(1, window, instant), 1);
        let pinned = Window {
            at: Some(0),
            ..window
        };
        assert_eq!(part_count(2, pinned, grid), 0);
        // A range longer than the grid's step costs no decoding twice.
        let day = Window {
            range: 24 * 60 * MINUTE,
            ..window
        };
        assert_eq!(part_count(2, day, grid), 2);
    }
}
