//! Aggregation operators: `sum by (job) (...)` and friends.
//!
//! A series' group is decided once from its labels; accumulators then run per
//! (group, step). Operators that rank or count values (`topk`, `quantile`,
//! `count_values`, `limitk`) collect each step's members first.

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::{AggregateExpr, LabelModifier};
use sextant_model::histogram::{CounterResetHint, FloatHistogram, HistogramError};
use sextant_model::{Labels, METRIC_NAME, is_valid_label_name};

use super::eval::Series;
use super::eval::{Evaluator, Grid, Value, exec};
use super::functions::{format_go_float, kahan_sum_inc, quantile};
use super::gosort::go_sort;
use super::histograms::mixed_schemas;
use super::{HPoint, Point};
use crate::Result;

/// The aggregations that fold each step's members into one running value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fold {
    Sum,
    Avg,
    Count,
    Group,
    Min,
    Max,
    Stddev,
    Stdvar,
}

impl Fold {
    pub fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "count" => Self::Count,
            "group" => Self::Group,
            "min" => Self::Min,
            "max" => Self::Max,
            "stddev" => Self::Stddev,
            "stdvar" => Self::Stdvar,
            _ => return None,
        })
    }

    /// The operator as written in PromQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Count => "count",
            Self::Group => "group",
            Self::Min => "min",
            Self::Max => "max",
            Self::Stddev => "stddev",
            Self::Stdvar => "stdvar",
        }
    }
}

/// Prometheus's running state of one group at one step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Acc {
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental_mean: bool,
}

impl Acc {
    #[inline]
    pub fn new(op: Fold, v: f64) -> Self {
        if matches!(op, Fold::Stddev | Fold::Stdvar) {
            // Welford from zero, so that a lone NaN gives NaN.
            let mut acc = Self {
                count: 0.0,
                value: 0.0,
                kahan: 0.0,
                mean: 0.0,
                incremental_mean: false,
            };
            acc.add(op, v);
            return acc;
        }
        let value = match op {
            Fold::Group => 1.0,
            Fold::Stddev | Fold::Stdvar => 0.0,
            _ => v,
        };
        Self {
            count: 1.0,
            value,
            kahan: 0.0,
            mean: v,
            incremental_mean: false,
        }
    }

    /// Folds `v` in. `sum`, by far the most common, is inlined into the
    /// loops that fold a series' steps; the others are a call away.
    #[inline]
    pub fn add(&mut self, op: Fold, v: f64) {
        if op == Fold::Sum {
            (self.value, self.kahan) = kahan_sum_inc(v, self.value, self.kahan);
        } else {
            self.add_other(op, v);
        }
    }

    /// [`Acc::add`] for every fold but `sum`.
    #[inline(never)]
    fn add_other(&mut self, op: Fold, v: f64) {
        match op {
            Fold::Sum => (self.value, self.kahan) = kahan_sum_inc(v, self.value, self.kahan),
            Fold::Avg => {
                self.count += 1.0;
                if !self.incremental_mean {
                    let (sum, c) = kahan_sum_inc(v, self.value, self.kahan);
                    if !sum.is_infinite() {
                        (self.value, self.kahan) = (sum, c);
                        return;
                    }
                    // The sum would overflow: continue with an incremental mean.
                    self.incremental_mean = true;
                    self.mean = self.value / (self.count - 1.0);
                    self.kahan /= self.count - 1.0;
                }
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                let current = self.mean + self.kahan;
                (self.mean, self.kahan) =
                    kahan_sum_inc(v / self.count - current / self.count, self.mean, self.kahan);
            }
            Fold::Count => self.count += 1.0,
            Fold::Max if self.value < v || self.value.is_nan() => self.value = v,
            Fold::Min if self.value > v || self.value.is_nan() => self.value = v,
            Fold::Stddev | Fold::Stdvar => {
                self.count += 1.0;
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (v - self.mean);
            }
            _ => {}
        }
    }

    #[inline]
    fn result(&self, op: Fold) -> f64 {
        match op {
            Fold::Sum => self.value + self.kahan,
            Fold::Avg if self.incremental_mean => self.mean + self.kahan,
            Fold::Avg => (self.value + self.kahan) / self.count,
            Fold::Count => self.count,
            Fold::Stdvar => self.value / self.count,
            Fold::Stddev => (self.value / self.count).sqrt(),
            _ => self.value,
        }
    }
}

/// The running sum of a group's histograms at one step (`sum`, `avg`).
#[derive(Debug, Clone)]
pub(super) struct HistogramAcc {
    sum: FloatHistogram,
    count: f64,
    /// Exponential and custom buckets met: the group has no value here.
    incompatible: bool,
    reset_seen: bool,
    not_reset_seen: bool,
}

impl HistogramAcc {
    fn new(h: &FloatHistogram) -> Self {
        let mut acc = Self {
            sum: h.clone(),
            count: 1.0,
            incompatible: false,
            reset_seen: false,
            not_reset_seen: false,
        };
        acc.track(h);
        acc
    }

    fn track(&mut self, h: &FloatHistogram) {
        match h.counter_reset_hint {
            CounterResetHint::CounterReset => self.reset_seen = true,
            CounterResetHint::NotCounterReset => self.not_reset_seen = true,
            _ => {}
        }
    }

    /// Adds `h` to a group's sum at one step (`slot`), as Prometheus
    /// does: a group whose histograms cannot be added has no value there.
    /// `metric` names the group's metric in the warning.
    pub fn fold(ev: &Evaluator<'_>, slot: &mut Option<Self>, h: &FloatHistogram, metric: &str) {
        let Some(acc) = slot else {
            *slot = Some(Self::new(h));
            return;
        };
        if acc.incompatible {
            return;
        }
        acc.track(h);
        acc.count += 1.0;
        match acc.sum.add(h) {
            Ok(notes) if notes.nhcb_bounds_reconciled => {
                ev.info("mismatched custom buckets were reconciled during aggregation".into());
            }
            Ok(_) => {}
            Err(e) => {
                if e == HistogramError::IncompatibleSchema {
                    ev.warn(mixed_schemas(metric));
                }
                acc.incompatible = true;
            }
        }
    }
}

/// The group of a series with `labels` under `modifier` (`by`/`without`);
/// with `strip_name`, as if the series had lost its metric name.
pub(super) fn group_key(
    modifier: Option<&LabelModifier>,
    labels: &Labels,
    strip_name: bool,
) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(names)) => labels
            .filter(|n| !(strip_name && n == METRIC_NAME) && names.labels.iter().any(|x| x == n)),
        Some(LabelModifier::Exclude(names)) => {
            labels.filter(|n| n != METRIC_NAME && !names.labels.iter().any(|x| x == n))
        }
    }
}

impl Evaluator<'_> {
    pub(super) fn aggregate(&mut self, agg: &AggregateExpr, grid: Grid) -> Result<Value> {
        let op = agg.op.to_string().to_lowercase();
        let (scalar_param, string_param) = match &agg.param {
            None => (None, None),
            Some(p) => match self.eval(p, grid)? {
                Value::Scalar(v) => (Some(v), None),
                Value::String(s) => (None, Some(s)),
                other => {
                    return Err(exec(format!(
                        "expected type scalar or string as the parameter of {op}, got {}",
                        other.type_name()
                    )));
                }
            },
        };
        let k_is_nan = scalar_param
            .as_ref()
            .is_some_and(|p| p.iter().any(|k| k.is_nan()));
        if matches!(op.as_str(), "topk" | "bottomk" | "limitk") && k_is_nan {
            return Err(exec("Parameter value is NaN"));
        }
        if op == "limit_ratio" && k_is_nan {
            return Err(exec("Ratio value is NaN"));
        }
        let fold = Fold::parse(&op);
        if let Some(fold) = fold
            && let Some(out) = self.stream_aggregate(agg, fold, grid)?
        {
            return Ok(Value::Vector(out));
        }
        let input = self.eval_vector(&agg.expr, grid, &format!("aggregation {op}"))?;
        let key_of = |labels: &Labels| group_key(agg.modifier.as_ref(), labels, false);
        // Groups in order of first appearance.
        let mut group_index: HashMap<Labels, usize> = HashMap::new();
        let mut group_labels: Vec<Labels> = Vec::new();
        let mut group_of: Vec<usize> = Vec::with_capacity(input.len());
        for s in &input {
            let key = key_of(&s.labels);
            let next = group_labels.len();
            let g = *group_index.entry(key.clone()).or_insert_with(|| {
                group_labels.push(key);
                next
            });
            group_of.push(g);
        }
        let steps = grid.len();
        let out = if let Some(fold) = fold {
            let mut accs: Vec<Vec<Option<Acc>>> = vec![vec![None; steps]; group_labels.len()];
            // Per group and step: whether a member there had its name dropped.
            let mut dropped: Vec<Vec<bool>> = vec![vec![false; steps]; group_labels.len()];
            for (s, &g) in input.iter().zip(&group_of) {
                self.check_deadline()?;
                for p in &s.points {
                    let step = grid.index(p.t);
                    dropped[g][step] |= s.drop_name;
                    let slot = &mut accs[g][step];
                    match slot {
                        Some(acc) => acc.add(fold, p.v),
                        None => *slot = Some(Acc::new(fold, p.v)),
                    }
                }
            }
            let has_histograms = input.iter().any(|s| !s.hpoints.is_empty());
            let haccs = if has_histograms {
                self.aggregate_histograms(
                    fold,
                    &input,
                    &group_of,
                    group_labels.len(),
                    &mut accs,
                    &mut dropped,
                    grid,
                )?
            } else {
                Vec::new()
            };
            let mut out = Vec::with_capacity(group_labels.len());
            for (g, (labels, accs)) in group_labels.into_iter().zip(accs).enumerate() {
                let mut points = Vec::new();
                let mut hpoints = Vec::new();
                let haccs = haccs.get(g).map_or(&[][..], Vec::as_slice);
                let last =
                    self.group_results(fold, grid, 0, &accs, haccs, &mut points, &mut hpoints);
                let Some(last) = last else { continue };
                // Prometheus sets the group's flag at every step, so the last one stands.
                out.push(Series {
                    labels,
                    points,
                    hpoints,
                    drop_name: dropped[g][last],
                });
            }
            out
        } else {
            match op.as_str() {
                "topk" | "bottomk" | "limitk" | "limit_ratio" | "quantile" | "count_values" => {
                    let param = scalar_param.as_deref();
                    self.ranking(
                        &op,
                        param,
                        string_param.as_deref(),
                        agg.modifier.as_ref(),
                        &input,
                        &group_of,
                        group_labels,
                        grid,
                    )?
                }
                other => return Err(exec(format!("unsupported aggregation operator {other:?}"))),
            }
        };
        Ok(Value::Vector(out))
    }

    /// A group's results at the steps `first..` its accumulators cover
    /// (`haccs` empty when it met no histogram), appended to `points` and
    /// `hpoints`; the last step with a result.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn group_results(
        &self,
        fold: Fold,
        grid: Grid,
        first: usize,
        accs: &[Option<Acc>],
        haccs: &[Option<HistogramAcc>],
        points: &mut Vec<Point>,
        hpoints: &mut Vec<HPoint>,
    ) -> Option<usize> {
        let mut last = None;
        for (at, a) in accs.iter().enumerate() {
            let i = first + at;
            let h = haccs.get(at).and_then(Option::as_ref);
            match (a, h) {
                (Some(_), Some(_)) => {
                    self.warn("encountered a mix of histograms and floats for aggregation".into());
                }
                (Some(a), None) => {
                    points.push(Point {
                        t: grid.ts(i),
                        v: a.result(fold),
                    });
                    last = Some(i);
                }
                (None, Some(h)) => {
                    if h.reset_seen && h.not_reset_seen {
                        self.warn("conflicting counter resets during histogram aggregation".into());
                    }
                    if h.incompatible {
                        continue;
                    }
                    let mut value = h.sum.clone();
                    if fold == Fold::Avg {
                        value.div(h.count);
                    }
                    let _ = value.compact(0);
                    hpoints.push(HPoint {
                        t: grid.ts(i),
                        h: Arc::new(value),
                    });
                    last = Some(i);
                }
                (None, None) => {}
            }
        }
        last
    }

    /// The histogram members of `sum`, `avg`, `count`, `group`, `min`,
    /// `max`, `stddev` and `stdvar`, after the floats went into `accs`:
    /// `count` and `group` count them, `sum` and `avg` add them up (the
    /// returned accumulators, per group and step), the others ignore them
    /// with Prometheus's info.
    #[allow(clippy::too_many_arguments)]
    fn aggregate_histograms(
        &self,
        fold: Fold,
        input: &[Series],
        group_of: &[usize],
        groups: usize,
        accs: &mut [Vec<Option<Acc>>],
        dropped: &mut [Vec<bool>],
        grid: Grid,
    ) -> Result<Vec<Vec<Option<HistogramAcc>>>> {
        let steps = grid.len();
        let mut haccs: Vec<Vec<Option<HistogramAcc>>> = Vec::new();
        if matches!(fold, Fold::Sum | Fold::Avg) {
            haccs = vec![vec![None; steps]; groups];
        }
        for (s, &g) in input.iter().zip(group_of) {
            if s.hpoints.is_empty() {
                continue;
            }
            self.check_deadline()?;
            match fold {
                Fold::Count | Fold::Group => {
                    for p in &s.hpoints {
                        let step = grid.index(p.t);
                        dropped[g][step] |= s.drop_name;
                        match &mut accs[g][step] {
                            Some(acc) => acc.add(fold, 0.0),
                            slot => *slot = Some(Acc::new(fold, 0.0)),
                        }
                    }
                }
                Fold::Sum | Fold::Avg => {
                    let metric = s.labels.metric_name().unwrap_or("");
                    for p in &s.hpoints {
                        let step = grid.index(p.t);
                        dropped[g][step] |= s.drop_name;
                        HistogramAcc::fold(self, &mut haccs[g][step], &p.h, metric);
                    }
                }
                _ => self.info(format!("ignored histogram in {} aggregation", fold.name())),
            }
        }
        Ok(haccs)
    }

    /// Aggregations that look at each step's members together.
    #[allow(clippy::too_many_arguments)]
    fn ranking(
        &mut self,
        op: &str,
        param: Option<&[f64]>,
        label: Option<&str>,
        modifier: Option<&LabelModifier>,
        input: &[Series],
        group_of: &[usize],
        group_labels: Vec<Labels>,
        grid: Grid,
    ) -> Result<Vec<Series>> {
        let steps = grid.len();
        if op == "count_values" {
            let label = label.ok_or_else(|| exec("count_values needs a label name"))?;
            if !is_valid_label_name(label) {
                return Err(exec(format!("invalid label name {label:?}")));
            }
        }
        // Members per step, in input order; histograms aside (`hist_at`).
        let mut at_step: Vec<Vec<(usize, f64)>> = vec![Vec::new(); steps];
        let mut hist_at: HashMap<(usize, usize), &Arc<FloatHistogram>> = HashMap::new();
        for (i, s) in input.iter().enumerate() {
            for p in &s.points {
                at_step[grid.index(p.t)].push((i, p.v));
            }
        }
        if input.iter().any(|s| !s.hpoints.is_empty()) {
            for (i, s) in input.iter().enumerate() {
                for p in &s.hpoints {
                    let step = grid.index(p.t);
                    hist_at.insert((i, step), &p.h);
                    at_step[step].push((i, 0.0));
                }
            }
            for members in &mut at_step {
                members.sort_by_key(|m| m.0);
            }
        }
        let hist_of = |i: usize, step: usize| hist_at.get(&(i, step)).map(|h| Arc::clone(h));
        let mut out: Vec<Series> = Vec::new();
        let mut out_index: HashMap<Labels, usize> = HashMap::new();
        // An output series takes its name flag from its first sample, as in Prometheus.
        let mut push_value = |out: &mut Vec<Series>,
                              labels: Labels,
                              t: i64,
                              v: f64,
                              h: Option<Arc<FloatHistogram>>,
                              drop_name: bool| {
            let i = *out_index.entry(labels.clone()).or_insert_with(|| {
                out.push(Series {
                    labels,
                    points: Vec::new(),
                    hpoints: Vec::new(),
                    drop_name,
                });
                out.len() - 1
            });
            match h {
                Some(h) => out[i].hpoints.push(HPoint { t, h }),
                None => out[i].points.push(Point { t, v }),
            }
            i
        };

        for (step, members) in at_step.iter().enumerate() {
            self.check_deadline()?;
            if members.is_empty() {
                continue;
            }
            let t = grid.ts(step);
            let p = param.map(|p| p[step]);
            // Members per group, groups in order of first appearance at this step.
            let mut groups: Vec<(usize, Vec<(usize, f64)>)> = Vec::new();
            let mut slot: HashMap<usize, usize> = HashMap::new();
            let is_hist = |i: usize| !hist_at.is_empty() && hist_at.contains_key(&(i, step));
            for &(i, v) in members {
                if is_hist(i) && matches!(op, "topk" | "bottomk" | "quantile") {
                    self.info(format!("ignored histogram in {op} aggregation"));
                    continue;
                }
                let g = group_of[i];
                let at = *slot.entry(g).or_insert_with(|| {
                    groups.push((g, Vec::new()));
                    groups.len() - 1
                });
                groups[at].1.push((i, v));
            }
            match op {
                "topk" | "bottomk" | "limitk" => {
                    let k = p.unwrap_or(f64::NAN);
                    if k.is_nan() || k.abs() >= 9.223_372_036_854_776e18 {
                        return Err(exec(format!(
                            "Scalar value {} overflows int64",
                            format_go_float(k)
                        )));
                    }
                    // Prometheus never keeps more than there are input series.
                    let k = (k as i64).min(input.len() as i64);
                    if k < 1 {
                        continue;
                    }
                    let k = k as usize;
                    for (_, members) in groups {
                        let chosen = match op {
                            "topk" => select_k(&members, k, Rank::Top),
                            "bottomk" => select_k(&members, k, Rank::Bottom),
                            _ => members.into_iter().take(k).collect(),
                        };
                        for (i, v) in chosen {
                            let s = &input[i];
                            let h = hist_of(i, step);
                            push_value(&mut out, s.labels.clone(), t, v, h, s.drop_name);
                        }
                    }
                }
                "limit_ratio" => {
                    let ratio = p.unwrap_or(f64::NAN).clamp(-1.0, 1.0);
                    for (_, members) in groups {
                        for (i, v) in members {
                            let s = &input[i];
                            if ratio_sampled(&s.labels, ratio) {
                                let h = hist_of(i, step);
                                push_value(&mut out, s.labels.clone(), t, v, h, s.drop_name);
                            }
                        }
                    }
                }
                "quantile" => {
                    let q = p.unwrap_or(f64::NAN);
                    self.check_quantile(&[q]);
                    for (g, members) in groups {
                        let values: Vec<f64> = members.iter().map(|m| m.1).collect();
                        let dropped = members.iter().any(|m| input[m.0].drop_name);
                        let o = push_value(
                            &mut out,
                            group_labels[g].clone(),
                            t,
                            quantile(q, values),
                            None,
                            false,
                        );
                        // As for `sum`, the flag of the group's latest step stands.
                        out[o].drop_name = dropped;
                    }
                }
                "count_values" => {
                    // As in Prometheus, the value label is set first and the
                    // grouping then applies to it too: `by` keeps it, and it
                    // can overwrite a label of the input.
                    let label = label.unwrap_or_default();
                    let mut counts: Vec<(Labels, f64)> = Vec::new();
                    let mut at: HashMap<Labels, usize> = HashMap::new();
                    for (_, members) in groups {
                        for (i, v) in members {
                            let value = match hist_of(i, step) {
                                Some(h) => h.to_prometheus_string(),
                                None => format_go_float(v),
                            };
                            let labeled = input[i].labels.with(label, &value);
                            let key = match modifier {
                                None => labeled.filter(|n| n == label),
                                Some(LabelModifier::Include(names)) => labeled
                                    .filter(|n| n == label || names.labels.iter().any(|x| x == n)),
                                Some(LabelModifier::Exclude(names)) => labeled.filter(|n| {
                                    n != METRIC_NAME
                                        && (n == label || !names.labels.iter().any(|x| x == n))
                                }),
                            };
                            match at.get(&key) {
                                Some(&c) => counts[c].1 += 1.0,
                                None => {
                                    at.insert(key.clone(), counts.len());
                                    counts.push((key, 1.0));
                                }
                            }
                        }
                    }
                    for (labels, n) in counts {
                        push_value(&mut out, labels, t, n, None, false);
                    }
                }
                _ => unreachable!("ranking operators are listed by the caller"),
            }
        }
        Ok(out)
    }
}

/// Whether `limit_ratio(ratio, ...)` keeps a series: as Prometheus, by where
/// the xxhash of its labels falls in [0, 1) — below `ratio` when it is
/// positive, at or above `1 + ratio` when negative — so the same series are
/// kept at every step and `limit_ratio(r)` and `limit_ratio(r - 1)` split a
/// vector in two.
fn ratio_sampled(labels: &Labels, ratio: f64) -> bool {
    let mut bytes = Vec::with_capacity(128);
    for l in labels {
        bytes.extend_from_slice(l.name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(l.value.as_bytes());
        bytes.push(0xff);
    }
    let offset = xxhash_rust::xxh64::xxh64(&bytes, 0) as f64 / u64::MAX as f64;
    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
}

/// Which end `topk`/`bottomk` keep.
#[derive(Debug, Clone, Copy)]
enum Rank {
    Top,
    Bottom,
}

impl Rank {
    /// The order of Prometheus's `vectorByValueHeap` (`Top`) and
    /// `vectorByReverseValueHeap` (`Bottom`): NaN is "less" than anything, so
    /// it sits at the root and is the first to be replaced.
    fn less(self, a: f64, b: f64) -> bool {
        a.is_nan()
            || match self {
                Self::Top => a < b,
                Self::Bottom => a > b,
            }
    }
}

/// `topk`/`bottomk` of one group at one step, choosing among equal values as
/// Prometheus does: the members, in input order, go through a heap of at
/// most `k` (Go's `container/heap`) whose root is the weakest kept member,
/// replaced only by a strictly better value; the survivors are then ordered
/// best first by Go's `sort.Sort(sort.Reverse(heap))`. A plain stable sort
/// would choose other series among ties, because the heap moves members
/// around as it replaces its root.
fn select_k(members: &[(usize, f64)], k: usize, rank: Rank) -> Vec<(usize, f64)> {
    let less = |a: &(usize, f64), b: &(usize, f64)| rank.less(a.1, b.1);
    let mut heap: Vec<(usize, f64)> = Vec::with_capacity(k);
    for &m in members {
        if heap.len() < k {
            heap.push(m);
            let last = heap.len() - 1;
            heap_up(&mut heap, last, less);
            continue;
        }
        let root = heap[0].1;
        let better = match rank {
            Rank::Top => root < m.1,
            Rank::Bottom => root > m.1,
        };
        if better || (root.is_nan() && !m.1.is_nan()) {
            heap[0] = m;
            if k > 1 && !heap_down(&mut heap, 0, less) {
                heap_up(&mut heap, 0, less);
            }
        }
    }
    if heap.len() > 1 {
        go_sort(&mut heap, |a, b| less(b, a));
    }
    heap
}

/// Go's `container/heap` `up`.
fn heap_up<T>(h: &mut [T], mut j: usize, less: impl Fn(&T, &T) -> bool) {
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

/// Go's `container/heap` `down`; says whether the element moved.
fn heap_down<T>(h: &mut [T], i0: usize, less: impl Fn(&T, &T) -> bool) -> bool {
    let n = h.len();
    let mut i = i0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        if j1 + 1 < n && less(&h[j1 + 1], &h[j1]) {
            j = j1 + 1;
        }
        if !less(&h[j], &h[i]) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
    i > i0
}
