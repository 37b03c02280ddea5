//! Streaming aggregation: `sum by (job) (rate(x[5m]))`, and every
//! accumulating aggregation (`sum`, `avg`, `count`, `group`, `min`, `max`,
//! `stddev`, `stdvar`) of a range function over a range selector, evaluated
//! without the per-series matrix between the two: each series' window
//! values go straight into its group's accumulators, and the series'
//! samples and scratch buffers are reused for the next.
//!
//! The answer must be the general path's to the bit, so this path keeps its
//! order of floating-point operations: per group and step the members are
//! folded in series (label) order. Work is split across threads by time,
//! not by series: each worker owns a contiguous run of steps, selects the
//! series with data in its windows and folds all of them, in order, into
//! accumulators no other worker touches. Only the chunks at the boundary
//! between two runs are decoded twice.
//!
//! What this path does not do, it leaves to the general path: subqueries
//! (already materialised), `@` over more than one step (every step reads
//! the same window), selectors whose series could collide once their metric
//! names are dropped (the general path merges or refuses them), and splits
//! that would decode much of the data more than once.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Instant;

use promql_parser::parser::{AggregateExpr, Call, Expr, LabelModifier, VectorSelector};
use sextant_model::histogram::FloatHistogram;
use sextant_model::{Labels, METRIC_NAME, is_stale_nan};
use sextant_storage::LazySeries;

use super::Point;
use super::aggregate::{Acc, Fold, HistogramAcc, group_key};
use super::eval::{Evaluator, Grid, Series, Window, timed_out};
use super::functions::{
    WindowCall, is_window_function, keeps_metric_name, range_argument_layout, unwrap_parens,
};
use super::histograms::Sampled;
use crate::{Error, Result};

/// Most threads one aggregation folds on.
const MAX_PARTS: usize = 8;
/// Fewer steps than this per thread are not worth a thread.
const MIN_STEPS_PER_PART: usize = 32;

/// One worker's share: a run of steps, its series, and its groups'
/// accumulators over those steps.
struct Part<'a> {
    steps: Range<usize>,
    series: Vec<LazySeries<'a>>,
}

/// A group's accumulators over one part's steps.
struct PartGroup {
    key: Labels,
    /// The labels of the group's first series with a value in this part:
    /// series come in label order, so the smallest over all parts is the
    /// group's first appearance, which orders the groups.
    first: Labels,
    accs: Vec<Option<Acc>>,
    /// Empty until a histogram arrives.
    haccs: Vec<Option<HistogramAcc>>,
}

/// A group over all parts.
struct MergedGroup {
    labels: Labels,
    /// The labels of its first series over all parts.
    first: Labels,
    /// Its accumulators in each part that has them, parts in step order.
    parts: Vec<(usize, PartGroup)>,
}

/// What a worker hands back: its groups and how many points the general
/// path would have held for its steps.
struct Folded {
    groups: Vec<PartGroup>,
    points: usize,
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
    /// its steps split into `parts` runs folded on as many threads.
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
        let mut runs = Vec::with_capacity(parts);
        for steps in split_steps(grid.len(), parts) {
            let first = window.at.unwrap_or(grid.ts(steps.start)) - window.offset;
            let last = window.at.unwrap_or(grid.ts(steps.end - 1)) - window.offset;
            let series = self.select_lazy(&ms.vs, first - window.range + 1, last)?;
            runs.push(Part { steps, series });
        }
        let ev: &Evaluator<'_> = self;
        let work = |part: Part<'_>| ev.fold_part(&call, modifier, fold, strip_name, grid, part);
        let folded: Vec<Result<Folded>> = if runs.len() == 1 {
            runs.into_iter().map(work).collect()
        } else {
            let work = &work;
            std::thread::scope(|scope| {
                let handles: Vec<_> = runs
                    .into_iter()
                    .map(|part| scope.spawn(move || work(part)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Execution("a query worker failed".into()))
                        })
                    })
                    .collect()
            })
        };
        let folded: Vec<Folded> = folded.into_iter().collect::<Result<_>>()?;
        // What the general path holds for the call's value, counted as it
        // counts it (by the function, then by the node).
        let points = folded.iter().map(|f| f.points).sum();
        self.charge(points)?;
        self.charge(points)?;
        self.held = before + points;
        Ok(self.assemble(fold, grid, folded, drop_name))
    }

    /// One worker: every series of `part`, in order, folded into its
    /// group's accumulators for the part's steps.
    fn fold_part(
        &self,
        call: &WindowCall<'_>,
        modifier: Option<&LabelModifier>,
        fold: Fold,
        strip_name: bool,
        grid: Grid,
        part: Part<'_>,
    ) -> Result<Folded> {
        let steps = part.steps;
        let mut groups: Vec<PartGroup> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut points: Vec<Point> = Vec::new();
        let mut resets: Vec<usize> = Vec::new();
        let mut held = 0usize;
        for s in part.series {
            if Instant::now() > self.deadline {
                return Err(timed_out(self.options.timeout));
            }
            let (samples, histograms) = s.data()?;
            points.clear();
            points.extend(samples.iter().map(|p| Point {
                t: p.timestamp_ms,
                v: p.value,
            }));
            drop(samples);
            // Staleness markers are rare: copied in bulk, then dropped.
            if points.iter().any(|p| is_stale_nan(p.v)) {
                points.retain(|p| !is_stale_nan(p.v));
            }
            let hpoints = super::eval::histogram_points(&histograms);
            if points.is_empty() && hpoints.is_empty() {
                continue;
            }
            let key = group_key(modifier, &s.labels, strip_name);
            let mut g = index.get(&key).copied();
            // The metric name the general path's aggregation would see.
            let metric = if strip_name {
                ""
            } else {
                s.labels.metric_name().unwrap_or("")
            };
            let labels = &s.labels;
            call.eval_series(
                self,
                labels,
                &points,
                &hpoints,
                grid,
                steps.clone(),
                &mut resets,
                |step, value| {
                    held += 1;
                    let g = *g.get_or_insert_with(|| {
                        index.insert(key.clone(), groups.len());
                        groups.push(PartGroup {
                            key: key.clone(),
                            first: labels.clone(),
                            accs: vec![None; steps.len()],
                            haccs: Vec::new(),
                        });
                        groups.len() - 1
                    });
                    let group = &mut groups[g];
                    let at = step - steps.start;
                    match value {
                        Sampled::Float(v) => match &mut group.accs[at] {
                            Some(acc) => acc.add(fold, v),
                            slot => *slot = Some(Acc::new(fold, v)),
                        },
                        Sampled::Histogram(h) => {
                            self.fold_histogram(fold, group, at, steps.len(), h, metric);
                        }
                    }
                },
            );
        }
        Ok(Folded {
            groups,
            points: held,
        })
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

    /// The groups of all parts as result series, in order of first
    /// appearance, each with its steps in time order.
    fn assemble(
        &self,
        fold: Fold,
        grid: Grid,
        folded: Vec<Folded>,
        drop_name: bool,
    ) -> Vec<Series> {
        let runs = split_steps(grid.len(), folded.len());
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut merged: Vec<MergedGroup> = Vec::new();
        for (p, part) in folded.into_iter().enumerate() {
            for group in part.groups {
                match index.get(&group.key) {
                    Some(&g) => {
                        let entry = &mut merged[g];
                        if group.first < entry.first {
                            entry.first = group.first.clone();
                        }
                        entry.parts.push((p, group));
                    }
                    None => {
                        index.insert(group.key.clone(), merged.len());
                        merged.push(MergedGroup {
                            labels: group.key.clone(),
                            first: group.first.clone(),
                            parts: vec![(p, group)],
                        });
                    }
                }
            }
        }
        merged.sort_by(|a, b| a.first.cmp(&b.first));
        let mut out = Vec::with_capacity(merged.len());
        for MergedGroup { labels, parts, .. } in merged {
            let mut points = Vec::new();
            let mut hpoints = Vec::new();
            for (p, group) in &parts {
                self.group_results(
                    fold,
                    grid,
                    runs[*p].start,
                    &group.accs,
                    &group.haccs,
                    &mut points,
                    &mut hpoints,
                );
            }
            if points.is_empty() && hpoints.is_empty() {
                continue;
            }
            out.push(Series {
                labels,
                points,
                hpoints,
                drop_name,
            });
        }
        out
    }
}

/// How many runs of steps to fold in parallel; 0 when the general path,
/// which spreads series over the cores instead, does better: a grid too
/// short to split (an instant query) or every step reading the same window
/// (`@`), unless there is one core anyway. A run shorter than the range
/// would decode much of its neighbours' data again, so there are fewer.
pub(super) fn part_count(cores: usize, window: Window, grid: Grid) -> usize {
    let steps = grid.len();
    if steps == 0 {
        return 0;
    }
    let mut parts = if window.at.is_some() {
        1
    } else {
        cores.min(MAX_PARTS).min(steps / MIN_STEPS_PER_PART).max(1)
    };
    while parts > 1 && ((steps / parts) as i64).saturating_mul(grid.step) < window.range {
        parts -= 1;
    }
    if parts == 1 && cores > 1 {
        return 0;
    }
    parts
}

/// `0..steps` cut into `parts` contiguous runs, the longer ones first.
pub(super) fn split_steps(steps: usize, parts: usize) -> Vec<Range<usize>> {
    let (per, extra) = (steps / parts, steps % parts);
    let mut start = 0;
    (0..parts)
        .map(|p| {
            let len = per + usize::from(p < extra);
            let run = start..start + len;
            start += len;
            run
        })
        .collect()
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

    /// Counters `x_total` (resets, gaps, staleness markers, a series
    /// without `job`), gauges `g` (NaN, ±Inf, values whose sum overflows),
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
                if k % (40 + i) == 39 {
                    value = next(); // counter reset
                }
                let v = if k % 97 == 50 { stale_nan() } else { value };
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
        /// Streamed in this many runs of steps.
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
    fn steps_split_into_contiguous_runs() {
        assert_eq!(split_steps(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(split_steps(2, 2), vec![0..1, 1..2]);
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
        // An instant query and `@` go to the general path on more cores.
        let instant = Grid {
            start: 0,
            end: 0,
            step: 1,
        };
        assert_eq!(part_count(2, window, instant), 0);
        let pinned = Window {
            at: Some(0),
            ..window
        };
        assert_eq!(part_count(2, pinned, grid), 0);
        // A range longer than a run would decode most samples twice.
        let day = Window {
            range: 24 * 60 * MINUTE,
            ..window
        };
        assert_eq!(part_count(2, day, grid), 0);
    }
}
