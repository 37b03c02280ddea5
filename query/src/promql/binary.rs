//! Binary operators: arithmetic, comparison (with and without `bool`), set
//! operators, and vector matching (`on`, `ignoring`, `group_left`,
//! `group_right`).
//!
//! Each series' match signature is interned once; the per-step work indexes
//! flat arrays by signature id instead of hashing labels.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use sextant_model::histogram::{CounterResetHint, FloatHistogram, HistogramError};
use sextant_model::{Labels, METRIC_NAME};

use super::eval::Series;
use super::eval::{Evaluator, Grid, Value, duplicate_labelset, exec, merge_same_labels};
use super::{HPoint, Point, prometheus_labels_string};
use crate::Result;

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// Applies `op`; the flag says whether a comparison holds (always true for arithmetic).
pub(crate) fn elem_binop(op: &str, l: f64, r: f64) -> (f64, bool) {
    match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// What an operation between two samples of which at least one is a
/// histogram gives: a float, a histogram, or nothing (with why).
enum HistogramOutcome {
    /// The value, whether a comparison holds, and an info to give.
    Value(f64, Option<FloatHistogram>, bool, Option<String>),
    /// The sample is dropped; Prometheus says so with an info...
    DroppedInfo(String),
    /// ... or a warning.
    DroppedWarning(String),
}

/// One side of an element operation.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

impl Operand<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Self::Float(_) => "float",
            Self::Histogram(_) => "histogram",
        }
    }
}

fn incompatible_types(op: &str, l: Operand<'_>, r: Operand<'_>) -> HistogramOutcome {
    HistogramOutcome::DroppedInfo(format!(
        "incompatible sample types encountered for binary operator {op:?}: {} {op} {}",
        l.kind(),
        r.kind()
    ))
}

/// Prometheus's `vectorElemBinop` where a histogram is involved: a histogram
/// times or divided by a float, histograms added, subtracted or compared
/// for (in)equality; anything else drops the sample with an info.
fn histogram_binop(op: &str, l: Operand<'_>, r: Operand<'_>) -> HistogramOutcome {
    let scaled = |h: &FloatHistogram, f: &dyn Fn(&mut FloatHistogram)| {
        let mut h = h.clone();
        f(&mut h);
        let _ = h.compact(0);
        HistogramOutcome::Value(0.0, Some(h), true, None)
    };
    match (l, r) {
        (Operand::Float(x), Operand::Histogram(h)) if op == "*" => scaled(h, &|h| h.mul(x)),
        (Operand::Histogram(h), Operand::Float(x)) if op == "*" => scaled(h, &|h| h.mul(x)),
        (Operand::Histogram(h), Operand::Float(x)) if op == "/" => scaled(h, &|h| h.div(x)),
        (Operand::Histogram(a), Operand::Histogram(b)) if op == "+" || op == "-" => {
            let mut result = a.clone();
            let (outcome, operation) = if op == "+" {
                (result.add(b), "addition")
            } else {
                (result.sub(b), "subtraction")
            };
            match outcome {
                Ok(notes) if notes.counter_reset_collision => HistogramOutcome::DroppedWarning(
                    format!("conflicting counter resets during histogram {operation}"),
                ),
                Ok(notes) => {
                    if op == "-" {
                        result.counter_reset_hint = CounterResetHint::Gauge;
                    }
                    let _ = result.compact(0);
                    let info = notes.nhcb_bounds_reconciled.then(|| {
                        format!("mismatched custom buckets were reconciled during {operation}")
                    });
                    HistogramOutcome::Value(0.0, Some(result), true, info)
                }
                Err(HistogramError::IncompatibleSchema) => HistogramOutcome::DroppedWarning(
                    format!("incompatible bucket layout encountered for binary operator {op}"),
                ),
                Err(_) => HistogramOutcome::DroppedWarning(format!(
                    "incompatible bucket layout encountered for binary operator {op}"
                )),
            }
        }
        (Operand::Histogram(a), Operand::Histogram(b)) if op == "==" || op == "!=" => {
            let equal = a.equals(b);
            HistogramOutcome::Value(0.0, Some(a.clone()), equal == (op == "=="), None)
        }
        _ => incompatible_types(op, l, r),
    }
}

impl Evaluator<'_> {
    /// Applies a histogram element operation's notes; `Some` is the result
    /// to keep: `(float, histogram, comparison holds)`.
    fn histogram_elem(
        &self,
        op: &str,
        l: Operand<'_>,
        r: Operand<'_>,
    ) -> Option<(f64, Option<FloatHistogram>, bool)> {
        match histogram_binop(op, l, r) {
            HistogramOutcome::Value(v, h, keep, info) => {
                if let Some(info) = info {
                    self.info(info);
                }
                Some((v, h, keep))
            }
            HistogramOutcome::DroppedInfo(m) => {
                self.info(m);
                None
            }
            HistogramOutcome::DroppedWarning(m) => {
                self.warn(m);
                None
            }
        }
    }

    pub(super) fn binary(&mut self, bin: &BinaryExpr, grid: Grid) -> Result<Value> {
        let op = bin.op.to_string().to_lowercase();
        let return_bool = bin.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&bin.lhs, grid)?;
        let rhs = self.eval(&bin.rhs, grid)?;
        match (lhs, rhs) {
            (Value::Scalar(a), Value::Scalar(b)) => Ok(Value::Scalar(
                a.iter()
                    .zip(&b)
                    .map(|(&l, &r)| {
                        let (v, keep) = elem_binop(&op, l, r);
                        if is_comparison(&op) {
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(
                self,
                &op,
                v,
                &s,
                false,
                return_bool,
                grid,
            )?)),
            (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(
                self,
                &op,
                v,
                &s,
                true,
                return_bool,
                grid,
            )?)),
            (Value::Vector(l), Value::Vector(r)) => {
                let matching = bin.modifier.as_ref().and_then(|m| m.matching.clone());
                if matches!(op.as_str(), "and" | "or" | "unless") {
                    return Ok(Value::Vector(set_op(&op, l, r, matching.as_ref(), grid)?));
                }
                let card = bin
                    .modifier
                    .as_ref()
                    .map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
                self.check_deadline()?;
                Ok(Value::Vector(vector_vector(
                    self,
                    &op,
                    l,
                    r,
                    matching.as_ref(),
                    &card,
                    return_bool,
                    self.delayed(),
                    grid,
                )?))
            }
            (l, r) => Err(exec(format!(
                "binary operator {op} is not defined between {} and {}",
                l.type_name(),
                r.type_name()
            ))),
        }
    }
}

fn vector_scalar(
    ev: &Evaluator<'_>,
    op: &str,
    series: Vec<Series>,
    scalar: &[f64],
    swap: bool,
    return_bool: bool,
    grid: Grid,
) -> Result<Vec<Series>> {
    let delayed = ev.delayed();
    let comparison = is_comparison(op);
    let drop_name = !comparison || return_bool;
    let mut out = Vec::with_capacity(series.len());
    for mut s in series {
        if !s.hpoints.is_empty() {
            let mut hpoints = std::mem::take(&mut s.hpoints);
            hpoints.retain_mut(|p| {
                let x = Operand::Float(scalar[grid.index(p.t)]);
                let h = Operand::Histogram(&p.h);
                let (l, r) = if swap { (x, h) } else { (h, x) };
                // Every operation that keeps a histogram here gives one
                // (comparisons with a float drop it).
                match ev.histogram_elem(op, l, r) {
                    Some((_, Some(h), _)) => {
                        p.h = Arc::new(h);
                        true
                    }
                    _ => false,
                }
            });
            s.hpoints = hpoints;
        }
        s.points.retain_mut(|p| {
            let r = scalar[grid.index(p.t)];
            let (l, r) = if swap { (r, p.v) } else { (p.v, r) };
            let (v, keep) = elem_binop(op, l, r);
            if return_bool {
                p.v = if keep { 1.0 } else { 0.0 };
                true
            } else if comparison {
                // A comparison keeps the vector's own value, whichever side it is on.
                keep
            } else {
                p.v = v;
                true
            }
        });
        if s.is_empty() {
            continue;
        }
        if drop_name {
            s.drop_name(delayed);
        }
        out.push(s);
    }
    if drop_name {
        merge_same_labels(out)
    } else {
        Ok(out)
    }
}

/// The labels two series are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(names)) => {
            labels.filter(|n| names.labels.iter().any(|x| x == n))
        }
        Some(LabelModifier::Exclude(names)) => {
            labels.filter(|n| n != METRIC_NAME && !names.labels.iter().any(|x| x == n))
        }
        None => labels.without_metric_name(),
    }
}

/// Interns signatures: one id per distinct label set.
#[derive(Default)]
struct Signatures {
    ids: HashMap<Labels, usize>,
    labels: Vec<Labels>,
}

impl Signatures {
    fn id(&mut self, sig: Labels) -> usize {
        let next = self.labels.len();
        *self.ids.entry(sig.clone()).or_insert_with(|| {
            self.labels.push(sig);
            next
        })
    }
}

/// Each step's points of a set of series: `(series, value)` per step, in
/// series order. A histogram point is `(series, 0)` here and its histogram
/// in the map, by `(series, step)`.
type HistogramsAt<'s> = HashMap<(usize, usize), &'s Arc<FloatHistogram>>;

fn by_step(series: &[Series], grid: Grid) -> (Vec<Vec<(usize, f64)>>, HistogramsAt<'_>) {
    let mut steps = vec![Vec::new(); grid.len()];
    let mut histograms = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        for p in &s.points {
            steps[grid.index(p.t)].push((i, p.v));
        }
        for p in &s.hpoints {
            let step = grid.index(p.t);
            steps[step].push((i, 0.0));
            histograms.insert((i, step), &p.h);
        }
    }
    if !histograms.is_empty() {
        for step in &mut steps {
            step.sort_by_key(|m| m.0);
        }
    }
    (steps, histograms)
}

fn set_op(
    op: &str,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    matching: Option<&LabelModifier>,
    grid: Grid,
) -> Result<Vec<Series>> {
    let mut sigs = Signatures::default();
    let lsig: Vec<usize> = lhs
        .iter()
        .map(|s| sigs.id(signature(&s.labels, matching)))
        .collect();
    let rsig: Vec<usize> = rhs
        .iter()
        .map(|s| sigs.id(signature(&s.labels, matching)))
        .collect();
    let steps = grid.len();
    let presence = |series: &[Series], sig: &[usize]| -> Vec<Vec<bool>> {
        let mut present = vec![Vec::new(); sigs.labels.len()];
        for (s, &g) in series.iter().zip(sig) {
            if present[g].is_empty() {
                present[g] = vec![false; steps];
            }
            for p in &s.points {
                present[g][grid.index(p.t)] = true;
            }
            for p in &s.hpoints {
                present[g][grid.index(p.t)] = true;
            }
        }
        present
    };
    let has = |present: &[Vec<bool>], g: usize, t: i64| -> bool {
        present[g].get(grid.index(t)).copied().unwrap_or(false)
    };
    let mut out = Vec::new();
    match op {
        "and" | "unless" => {
            let right = presence(&rhs, &rsig);
            let want = op == "and";
            for (mut s, g) in lhs.into_iter().zip(lsig) {
                s.points.retain(|p| has(&right, g, p.t) == want);
                s.hpoints.retain(|p| has(&right, g, p.t) == want);
                if !s.is_empty() {
                    out.push(s);
                }
            }
        }
        _ => {
            let left = presence(&lhs, &lsig);
            out.extend(lhs);
            for (mut s, g) in rhs.into_iter().zip(rsig) {
                s.points.retain(|p| !has(&left, g, p.t));
                s.hpoints.retain(|p| !has(&left, g, p.t));
                if !s.is_empty() {
                    out.push(s);
                }
            }
            return merge_same_labels(out);
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn vector_vector(
    ev: &Evaluator<'_>,
    op: &str,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    return_bool: bool,
    delayed: bool,
    grid: Grid,
) -> Result<Vec<Series>> {
    let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let include: Vec<String> = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut sigs = Signatures::default();
    let many_sig: Vec<usize> = many
        .iter()
        .map(|s| sigs.id(signature(&s.labels, matching)))
        .collect();
    let one_sig: Vec<usize> = one
        .iter()
        .map(|s| sigs.id(signature(&s.labels, matching)))
        .collect();
    let (many_steps, many_hists) = by_step(&many, grid);
    let (one_steps, one_hists) = by_step(&one, grid);

    // Per signature: the one-side member at the current step, and the step it was last matched.
    let mut right: Vec<Option<(usize, f64)>> = vec![None; sigs.labels.len()];
    let mut matched_at: Vec<usize> = vec![usize::MAX; sigs.labels.len()];
    // Many-to-one: the (signature, result series) pairs matched at the current step.
    let mut matched_results: HashSet<(usize, usize)> = HashSet::new();
    let mut out: Vec<Series> = Vec::new();
    let mut out_of_pair: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out_of_labels: HashMap<Labels, usize> = HashMap::new();
    for step in 0..grid.len() {
        // Prometheus returns at once when either side is empty at a step, so
        // a step without a partner checks nothing.
        if many_steps[step].is_empty() || one_steps[step].is_empty() {
            continue;
        }
        let t = grid.ts(step);
        for &(j, v) in &one_steps[step] {
            let g = one_sig[j];
            if let Some((other, _)) = right[g] {
                let side = if swapped { "left" } else { "right" };
                // Prometheus orders the pair by its printed form, so the message is stable.
                let a = prometheus_labels_string(&one[j].labels);
                let b = prometheus_labels_string(&one[other].labels);
                let (a, b) = if a <= b { (a, b) } else { (b, a) };
                return Err(exec(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{a}, {b}];many-to-many matching not allowed: matching labels must be unique on one side",
                    prometheus_labels_string(&sigs.labels[g])
                )));
            }
            right[g] = Some((j, v));
        }
        matched_results.clear();
        for &(i, v) in &many_steps[step] {
            let g = many_sig[i];
            let Some((j, rv)) = right[g] else { continue };
            let mut histogram = None;
            let (mut value, keep) = if many_hists.is_empty() && one_hists.is_empty() {
                let (l, r) = if swapped { (rv, v) } else { (v, rv) };
                elem_binop(op, l, r)
            } else {
                let a = match many_hists.get(&(i, step)) {
                    Some(h) => Operand::Histogram(h),
                    None => Operand::Float(v),
                };
                let b = match one_hists.get(&(j, step)) {
                    Some(h) => Operand::Histogram(h),
                    None => Operand::Float(rv),
                };
                let (l, r) = if swapped { (b, a) } else { (a, b) };
                match (l, r) {
                    (Operand::Float(l), Operand::Float(r)) => elem_binop(op, l, r),
                    _ => match ev.histogram_elem(op, l, r) {
                        Some((value, h, keep)) => {
                            histogram = h;
                            (value, keep)
                        }
                        None => continue,
                    },
                }
            };
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
                histogram = None;
            }
            let o = match out_of_pair.get(&(i, j)) {
                Some(&o) => o,
                None => {
                    let labels = result_labels(
                        &many[i].labels,
                        &one[j].labels,
                        op,
                        matching,
                        one_to_one,
                        &include,
                        return_bool && !delayed,
                    );
                    let next = out.len();
                    let o = *out_of_labels.entry(labels.clone()).or_insert_with(|| {
                        // As in Prometheus, only `bool` marks the name to be
                        // dropped later; arithmetic drops it at once and a
                        // filtering comparison keeps the left side's labels.
                        out.push(Series {
                            labels,
                            points: Vec::new(),
                            hpoints: Vec::new(),
                            drop_name: return_bool,
                        });
                        next
                    });
                    out_of_pair.insert((i, j), o);
                    o
                }
            };
            // The matching must be valid whatever the comparison then
            // filters: Prometheus checks it before looking at the result.
            if one_to_one {
                if matched_at[g] == step {
                    return Err(exec(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                matched_at[g] = step;
            } else if !matched_results.insert((g, o)) {
                return Err(exec(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            if !keep && !return_bool {
                continue;
            }
            let series = &mut out[o];
            if series.points.last().is_some_and(|p| p.t == t)
                || series.hpoints.last().is_some_and(|p| p.t == t)
            {
                return Err(duplicate_labelset());
            }
            match histogram {
                Some(h) => series.hpoints.push(HPoint { t, h: Arc::new(h) }),
                None => series.points.push(Point { t, v: value }),
            }
        }
        for &(j, _) in &one_steps[step] {
            right[one_sig[j]] = None;
        }
    }
    out.retain(|s| !s.is_empty());
    Ok(out)
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    op: &str,
    matching: Option<&LabelModifier>,
    one_to_one: bool,
    include: &[String],
    drop_bool_name: bool,
) -> Labels {
    let mut labels = if !is_comparison(op) || drop_bool_name {
        many.without_metric_name()
    } else {
        many.clone()
    };
    if one_to_one {
        labels = match matching {
            Some(LabelModifier::Include(names)) => {
                labels.filter(|n| names.labels.iter().any(|x| x == n))
            }
            Some(LabelModifier::Exclude(names)) => {
                labels.filter(|n| !names.labels.iter().any(|x| x == n))
            }
            None => labels,
        };
    }
    for name in include {
        labels = labels.with(name, one.get(name).unwrap_or(""));
    }
    labels
}
