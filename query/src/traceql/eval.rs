//! TraceQL over the span store.
//!
//! **What is matched.** A search has a time range: the spans that *start*
//! in `[start, end)` are the spans a query sees (its first spanset); a
//! trace matches when the query, run on them, yields a spanset that is not
//! empty. Trace-level intrinsics (`rootName`, `rootServiceName`,
//! `traceDuration`) and the relations the structural operators follow are
//! read from the whole trace. The root is the span without a parent (the
//! earliest, if several), or the earliest span when none is; a trace lasts
//! from its earliest start to its latest end. Values compare as Tempo
//! compares them: numbers of any kind by value (durations in nanoseconds),
//! strings with strings, a value of one type with one of another (a string
//! attribute with a number) or with a missing attribute is false, whatever
//! the operator (`!=` included), and `= nil` / `!= nil` test presence. An
//! unscoped `.name` is the span's attribute and its resource's: a
//! comparison holds if it holds for either (so do `event.` attributes and
//! `event:`/`link:` intrinsics, for any of the span's events or links).
//! `&&` and `||` treat anything but `true` as false.
//!
//! **How traces are found.** The store is asked for candidate traces,
//! newest matching span first, under conditions every match surely meets
//! (see [`pushdown`]): for a filter that every result span must pass, the
//! equality tests on `resource.service.name`, `name` and string span
//! attributes, and the bounds on `duration`, when that filter's top level is
//! a conjunction. Each candidate is then read whole and the query run on
//! it exactly, so a candidate too many costs time, never a wrong answer.
//! Candidates are asked for twice the limit at first; while the store
//! answers with as many as asked, it is asked again for twice as many (the
//! traces already read skipped). When it answers with fewer, its scan may
//! have stopped short of the range's start (the span store reads at most
//! 50,000 spans per call): the range then ends next just after the newest
//! time the last answer's traces could have matched at, which every trace
//! it did not give matches at or before, since it gives traces newest
//! matching span first. At most [`MAX_TRACES_READ`] traces are read per
//! search. The answer holds the first `limit` matches in that order (the
//! traces whose newest matching span is newest), newest trace start first.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use sextant_model::{FieldValue, SpanKind, SpanRecord, SpanStatus};
use sextant_storage::SpanReader;
use sextant_storage::spans::TraceQuery;

use super::ast::{
    Aggregate, AggregateOp, Attribute, AttributeScope, BinaryOp, Element, FieldExpr, Intrinsic,
    Pipeline, Query, ScalarExpr, ScalarFilter, SpansetExpr, SpansetOp, SpansetOperator, Static,
    UnaryOp, go_duration, status_name,
};
use crate::{Error, Result};

/// Traces a search answers when it does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// Spans shown per spanset when a search does not say (Tempo's `spss`).
pub const DEFAULT_SPANS_PER_SPANSET: usize = 3;
/// The most traces one search reads whole.
pub const MAX_TRACES_READ: usize = 5000;
/// Candidates asked for per trace wanted, at first: when the store's
/// conditions are the whole query every candidate matches, and when they
/// are not a full page asks again for twice as many.
const CANDIDATES_PER_MATCH: usize = 2;
/// The fewest and most candidates asked for at once.
const MIN_BATCH: usize = 40;
const MAX_BATCH: usize = 10_000;
/// The most pages of candidates one search asks for.
const MAX_PAGES: usize = 500;
/// Longer values are not pushed down: the index may not keep terms that long.
const MAX_PUSHED_VALUE: usize = 1024;

/// A trace search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    /// Spans starting in `[start_us, end_us)` are searched.
    pub start_us: i64,
    pub end_us: i64,
    /// Traces, at most; 0 for [`DEFAULT_LIMIT`].
    pub limit: usize,
    /// Spans shown per spanset; 0 for [`DEFAULT_SPANS_PER_SPANSET`].
    pub spans_per_spanset: usize,
    /// Only traces lasting at least this long (`minDuration`).
    pub min_duration_us: Option<i64>,
    /// Only traces lasting at most this long (`maxDuration`).
    pub max_duration_us: Option<i64>,
}

impl SearchRequest {
    /// A search of `[start_us, end_us)` with the defaults.
    pub fn new(query: Query, start_us: i64, end_us: i64) -> Self {
        Self {
            query,
            start_us,
            end_us,
            limit: DEFAULT_LIMIT,
            spans_per_spanset: DEFAULT_SPANS_PER_SPANSET,
            min_duration_us: None,
            max_duration_us: None,
        }
    }
}

/// A trace that matched, as Tempo's search answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceMatch {
    pub trace_id: String,
    pub root_service_name: String,
    pub root_trace_name: String,
    /// The earliest span's start, nanoseconds since the epoch.
    pub start_ns: i64,
    /// From the earliest start to the latest end.
    pub duration_ms: u64,
    pub span_sets: Vec<SpanSet>,
}

/// A spanset the query yielded.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSet {
    /// The first `spans_per_spanset` spans, earliest first.
    pub spans: Vec<MatchedSpan>,
    /// How many spans the spanset holds.
    pub matched: usize,
    /// What the pipeline computed: `count()`, `avg(duration)`,
    /// `by(resource.service.name)`, named as written (durations as Go
    /// writes them, `83.333333ms`, statuses and kinds by name).
    pub attributes: Vec<(String, FieldValue)>,
}

/// A span of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSpan {
    pub span_id: String,
    pub name: String,
    pub service: String,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// The span's values of what `select(...)` named (attributes by name
    /// without their scope; absent ones left out).
    pub attributes: Vec<(String, FieldValue)>,
}

/// Finds the traces `request` matches: see the module's documentation.
pub fn search(reader: &dyn SpanReader, request: &SearchRequest) -> Result<Vec<TraceMatch>> {
    let limit = match request.limit {
        0 => DEFAULT_LIMIT,
        n => n,
    };
    if request.start_us >= request.end_us {
        return Ok(Vec::new());
    }
    let mut pushed = pushdown(&request.query);
    // Every span lasts no longer than its trace.
    if let Some(max) = request.max_duration_us {
        pushed.max_duration_us = Some(pushed.max_duration_us.map_or(max, |m| m.min(max)));
    }
    let selects = selected(&request.query);
    let mut batch = limit
        .saturating_mul(CANDIDATES_PER_MATCH)
        .clamp(MIN_BATCH, MAX_BATCH);
    let mut end = request.end_us;
    // Each trace read: the starts of its spans in the range that the store
    // could have matched, ascending.
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    let mut matches = Vec::new();
    'pages: for _ in 0..MAX_PAGES {
        if end <= request.start_us {
            break;
        }
        let ids = reader.find_trace_ids(&TraceQuery {
            service: pushed.service.clone(),
            operation: pushed.operation.clone(),
            tags: pushed.tags.clone(),
            min_duration_us: pushed.min_duration_us,
            max_duration_us: pushed.max_duration_us,
            start_us: request.start_us,
            end_us: end,
            limit: batch,
        })?;
        let mut fresh = false;
        // The newest time the page's traces may have matched at: every
        // trace the store has not given yet matches at or before it.
        let mut newest: Option<i64> = None;
        for id in &ids {
            let starts = match seen.entry(id.clone()) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    fresh = true;
                    let spans = reader.trace(id)?;
                    let starts = candidate_starts(&spans, &pushed, request);
                    if let Some(found) = evaluate(&spans, request, &selects)? {
                        matches.push(found);
                    }
                    entry.insert(starts)
                }
            };
            let before_end = starts.partition_point(|s| *s < end);
            // None seen (the trace changed since): assume the newest.
            let at = before_end
                .checked_sub(1)
                .map_or(end.saturating_sub(1), |i| starts[i]);
            newest = Some(newest.map_or(at, |n| n.min(at)));
            if matches.len() >= limit || seen.len() >= MAX_TRACES_READ {
                break 'pages;
            }
        }
        if ids.len() >= batch {
            // A full page: the reader may hold more in this range. Asking
            // for a longer list again is safe whatever order the reader
            // keeps (a cluster interleaves its partitions' lists).
            if batch < MAX_BATCH {
                batch = (batch * 2).min(MAX_BATCH);
                continue;
            }
        } else if !fresh {
            // A short page of traces already read: nothing more.
            break;
        }
        // The reader gave all it would in this range; its scan may have
        // stopped short (the span store reads at most 50,000 spans per
        // call), so the range ends next just after the newest time the
        // page's traces may have matched at, and every trace the reader
        // holds but did not give matches at or before that.
        let Some(newest) = newest else {
            break;
        };
        let next_end = newest.saturating_add(1);
        if next_end >= end {
            break;
        }
        end = next_end;
    }
    matches.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    matches.truncate(limit);
    Ok(matches)
}

// ---- pushdown ---------------------------------------------------------

/// What a search asks of the store: conditions one span of every
/// matching trace meets (in the search's range).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pushdown {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub tags: Vec<(String, String)>,
    pub min_duration_us: Option<i64>,
    pub max_duration_us: Option<i64>,
}

impl Pushdown {
    /// How much it narrows, roughly.
    fn weight(&self) -> usize {
        2 * usize::from(self.service.is_some())
            + 2 * usize::from(self.operation.is_some())
            + self.tags.len()
            + usize::from(self.min_duration_us.is_some())
            + usize::from(self.max_duration_us.is_some())
    }
}

/// The conditions to ask the store for candidates with.
///
/// Every span of a query's answer passes each spanset filter that is an
/// element of the top-level pipeline, an operand of `&&` or of a
/// structural operator there (the right-hand one only, for `!>` and the
/// other negations), or one of those in a bracketed pipeline: a match has
/// a span in the range passing it. Of those filters, the one that narrows
/// most is pushed down, its top-level `&&` terms that the store decides as
/// TraceQL does:
///
/// - `resource.service.name = "x"` as the service: the span store's
///   service is the resource's `service.name` when it is a non-empty
///   string (ingest sets it so);
/// - `name = "x"` as the operation, matched whole;
/// - `span.x = "v"` as a tag: the store matches a tag whole, against the
///   span's attribute (as text, or as the number or boolean the text reads
///   as), its resource's, or, for the attributes it keeps for correlation,
///   any of those: a superset of TraceQL's string equality. Not
///   `span.span_id`, which the store reads as the span's own id, and not
///   `resource.x` or `.x`, which the store would miss when `x` is kept for
///   correlation (only span attributes are);
/// - `duration` compared with a duration (or integer nanoseconds) as the
///   bounds, in whole microseconds, inclusive, on the store's span
///   duration.
///
/// Empty and overlong values are not pushed.
pub fn pushdown(query: &Query) -> Pushdown {
    let mut filters = Vec::new();
    necessary_in_pipeline(&query.pipeline, &mut filters);
    filters
        .into_iter()
        .map(conjunction_pushdown)
        .max_by_key(Pushdown::weight)
        .unwrap_or_default()
}

fn necessary_in_pipeline<'q>(pipeline: &'q Pipeline, out: &mut Vec<&'q FieldExpr>) {
    for element in &pipeline.elements {
        if let Element::Spanset(expr) = element {
            necessary_in_spanset(expr, out);
        }
    }
}

fn necessary_in_spanset<'q>(expr: &'q SpansetExpr, out: &mut Vec<&'q FieldExpr>) {
    match expr {
        SpansetExpr::Filter(condition) => out.push(condition),
        SpansetExpr::Wrapped(pipeline) => necessary_in_pipeline(pipeline, out),
        SpansetExpr::Op(op) => {
            use SpansetOperator as S;
            match op.op {
                S::Or => {}
                S::NotChild | S::NotParent | S::NotDescendant | S::NotAncestor | S::NotSibling => {
                    necessary_in_spanset(&op.rhs, out);
                }
                _ => {
                    necessary_in_spanset(&op.lhs, out);
                    necessary_in_spanset(&op.rhs, out);
                }
            }
        }
    }
}

/// The store's conditions for the `&&` terms of one filter.
fn conjunction_pushdown(condition: &FieldExpr) -> Pushdown {
    let mut out = Pushdown::default();
    let mut stack = vec![condition];
    while let Some(term) = stack.pop() {
        let FieldExpr::Binary(b) = term else {
            continue;
        };
        if b.op == BinaryOp::And {
            stack.push(&b.rhs);
            stack.push(&b.lhs);
            continue;
        }
        // The field on the left.
        let (op, field, value) = match (&b.lhs, &b.rhs) {
            (FieldExpr::Static(v), field) => (mirror(b.op), field, v),
            (field, FieldExpr::Static(v)) => (b.op, field, v),
            _ => continue,
        };
        match (field, value) {
            (FieldExpr::Intrinsic(Intrinsic::Duration), Static::Duration(ns) | Static::Int(ns)) => {
                duration_bounds(&mut out, op, *ns);
            }
            (_, Static::Str(text)) if op == BinaryOp::Eq && pushable_value(text) => match field {
                FieldExpr::Intrinsic(Intrinsic::Name) if out.operation.is_none() => {
                    out.operation = Some(text.clone());
                }
                FieldExpr::Attribute(a)
                    if !a.parent
                        && a.scope == AttributeScope::Resource
                        && a.name == "service.name"
                        && out.service.is_none() =>
                {
                    out.service = Some(text.clone());
                }
                FieldExpr::Attribute(a)
                    if !a.parent
                        && a.scope == AttributeScope::Span
                        && pushable_tag_name(&a.name) =>
                {
                    out.tags.push((a.name.clone(), text.clone()));
                }
                _ => {}
            },
            _ => {}
        }
    }
    out
}

/// `a op b` as `b op' a`.
fn mirror(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Ge => BinaryOp::Le,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Le => BinaryOp::Ge,
        other => other,
    }
}

/// `duration op ns` as whole-microsecond bounds on the span's duration,
/// which the store keeps in microseconds (a span of `d` µs lasts `d *
/// 1000` ns).
fn duration_bounds(out: &mut Pushdown, op: BinaryOp, ns: i64) {
    let floor = ns.div_euclid(1000);
    let ceil = floor + i64::from(ns.rem_euclid(1000) != 0);
    let (min, max) = match op {
        BinaryOp::Gt => (Some(floor.saturating_add(1)), None),
        BinaryOp::Ge => (Some(ceil), None),
        BinaryOp::Lt => (None, Some(ceil.saturating_sub(1))),
        BinaryOp::Le => (None, Some(floor)),
        BinaryOp::Eq => (Some(ceil), Some(floor)),
        _ => (None, None),
    };
    if let Some(min) = min {
        out.min_duration_us = Some(out.min_duration_us.map_or(min, |m| m.max(min)));
    }
    if let Some(max) = max {
        out.max_duration_us = Some(out.max_duration_us.map_or(max, |m| m.min(max)));
    }
}

fn pushable_value(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_PUSHED_VALUE
}

/// A span attribute name the store's tag search reads as TraceQL does: not
/// `span_id` (the store's own id), and a plain dotted path (no escapes,
/// control characters or empty segments, which the index's JSON paths
/// read differently).
fn pushable_tag_name(name: &str) -> bool {
    name != "span_id"
        && name.len() <= MAX_PUSHED_VALUE
        && !name.split('.').any(str::is_empty)
        && !name.chars().any(|c| c == '\\' || c.is_control())
}

/// Whether the store could match `span` under `pushed`: a superset of what
/// it matches (tags loosely: the attribute or resource attribute as text,
/// number or boolean, any string attribute, or the span id).
fn may_match(pushed: &Pushdown, span: &SpanRecord) -> bool {
    if pushed.service.as_ref().is_some_and(|s| *s != span.service)
        || pushed
            .operation
            .as_ref()
            .is_some_and(|o| *o != span.operation)
        || pushed.min_duration_us.is_some_and(|m| span.duration_us < m)
        || pushed.max_duration_us.is_some_and(|m| span.duration_us > m)
    {
        return false;
    }
    pushed.tags.iter().all(|(name, value)| {
        let loosely = |v: &FieldValue| match v {
            FieldValue::Str(s) => s == value,
            FieldValue::Int(i) => {
                value.parse::<i64>() == Ok(*i) || value.parse::<f64>().is_ok_and(|x| x == *i as f64)
            }
            FieldValue::Float(x) => value.parse::<f64>().is_ok_and(|y| y == *x),
            FieldValue::Bool(b) => value.parse::<bool>() == Ok(*b),
        };
        span.attributes.get(name).is_some_and(loosely)
            || span.resource.get(name).is_some_and(loosely)
            || span
                .attributes
                .values()
                .any(|v| matches!(v, FieldValue::Str(s) if s == value))
            || span.span_id == *value
    })
}

/// The starts of the spans of a trace in the request's range that the
/// store could have matched, ascending.
fn candidate_starts(spans: &[SpanRecord], pushed: &Pushdown, request: &SearchRequest) -> Vec<i64> {
    let mut starts: Vec<i64> = spans
        .iter()
        .filter(|s| s.start_us >= request.start_us && s.start_us < request.end_us)
        .filter(|s| may_match(pushed, s))
        .map(|s| s.start_us)
        .collect();
    starts.sort_unstable();
    starts
}

/// What `select(...)` names anywhere in the query, each once.
fn selected(query: &Query) -> Vec<&FieldExpr> {
    fn in_pipeline<'q>(pipeline: &'q Pipeline, out: &mut Vec<&'q FieldExpr>) {
        for element in &pipeline.elements {
            match element {
                Element::Select(fields) => {
                    for field in fields {
                        let name = field.to_string();
                        if !out.iter().any(|f| f.to_string() == name) {
                            out.push(field);
                        }
                    }
                }
                Element::Spanset(expr) => in_spanset(expr, out),
                _ => {}
            }
        }
    }
    fn in_spanset<'q>(expr: &'q SpansetExpr, out: &mut Vec<&'q FieldExpr>) {
        match expr {
            SpansetExpr::Filter(_) => {}
            SpansetExpr::Wrapped(pipeline) => in_pipeline(pipeline, out),
            SpansetExpr::Op(op) => {
                in_spanset(&op.lhs, out);
                in_spanset(&op.rhs, out);
            }
        }
    }
    let mut out = Vec::new();
    in_pipeline(&query.pipeline, &mut out);
    out
}

// ---- one trace ----------------------------------------------------------

/// A trace read whole, with its tree.
struct Trace<'a> {
    spans: &'a [SpanRecord],
    /// Each span's parent, when it is in the trace.
    parent: Vec<Option<usize>>,
    child_count: Vec<i64>,
    root: usize,
    start_us: i64,
    end_us: i64,
}

impl<'a> Trace<'a> {
    fn new(spans: &'a [SpanRecord]) -> Self {
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(spans.len());
        for (i, span) in spans.iter().enumerate() {
            by_id.entry(span.span_id.as_str()).or_insert(i);
        }
        let parent: Vec<Option<usize>> = spans
            .iter()
            .map(|s| {
                if s.parent_span_id.is_empty() {
                    None
                } else {
                    by_id.get(s.parent_span_id.as_str()).copied()
                }
            })
            .collect();
        let mut child_count = vec![0; spans.len()];
        for p in parent.iter().flatten() {
            child_count[*p] += 1;
        }
        let earliest = |roots_only: bool| {
            (0..spans.len())
                .filter(|i| !roots_only || spans[*i].parent_span_id.is_empty())
                .min_by_key(|i| (spans[*i].start_us, *i))
        };
        let root = earliest(true).or_else(|| earliest(false)).unwrap_or(0);
        let start_us = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
        let end_us = spans
            .iter()
            .map(|s| s.start_us.saturating_add(s.duration_us))
            .max()
            .unwrap_or(0);
        Self {
            spans,
            parent,
            child_count,
            root,
            start_us,
            end_us,
        }
    }

    fn duration_us(&self) -> i64 {
        self.end_us.saturating_sub(self.start_us)
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    /// For every span, whether one of its ancestors is in `mask`.
    fn below(&self, mask: &[bool]) -> Vec<bool> {
        const UNKNOWN: u8 = 0;
        const VISITING: u8 = 1;
        const DONE: u8 = 2;
        let n = self.len();
        let mut state = vec![UNKNOWN; n];
        let mut out = vec![false; n];
        let mut path = Vec::new();
        for start in 0..n {
            if state[start] == DONE {
                continue;
            }
            path.clear();
            let mut i = start;
            // The answer for the last span on the path.
            let value = loop {
                if state[i] == VISITING {
                    // A cycle of parents: nothing above it counts.
                    break false;
                }
                state[i] = VISITING;
                path.push(i);
                match self.parent[i] {
                    None => break false,
                    Some(p) if mask[p] => break true,
                    Some(p) if state[p] == DONE => break out[p],
                    Some(p) => i = p,
                }
            };
            let mut value = value;
            for &node in path.iter().rev() {
                out[node] = value;
                state[node] = DONE;
                value = mask[node] || value;
            }
        }
        out
    }

    /// For every span, whether it is an ancestor of a span in `mask`.
    fn above(&self, mask: &[bool]) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            let mut at = self.parent[i];
            while let Some(p) = at {
                if out[p] {
                    break;
                }
                out[p] = true;
                at = self.parent[p];
            }
        }
        out
    }

    /// For every span, whether it is a parent of a span in `mask`.
    fn parents_of(&self, mask: &[bool]) -> Vec<bool> {
        let mut out = vec![false; self.len()];
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            if let Some(p) = self.parent[i] {
                out[p] = true;
            }
        }
        out
    }

    /// For every span, whether its parent is in `mask`.
    fn children_of(&self, mask: &[bool]) -> Vec<bool> {
        self.parent
            .iter()
            .map(|p| p.is_some_and(|p| mask[p]))
            .collect()
    }

    /// For every span, whether another span with the same parent is in `mask`.
    fn siblings_of(&self, mask: &[bool]) -> Vec<bool> {
        let mut per_parent: HashMap<usize, usize> = HashMap::new();
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            if let Some(p) = self.parent[i] {
                *per_parent.entry(p).or_default() += 1;
            }
        }
        (0..self.len())
            .map(|i| {
                self.parent[i].is_some_and(|p| {
                    per_parent.get(&p).copied().unwrap_or(0) > usize::from(mask[i])
                })
            })
            .collect()
    }
}

/// A spanset while the pipeline runs: span indexes, ascending.
#[derive(Debug, Clone)]
struct Set {
    spans: Vec<usize>,
    attributes: Vec<(String, FieldValue)>,
}

impl Set {
    fn add_attribute(&mut self, name: String, value: FieldValue) {
        match self.attributes.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((name, value)),
        }
    }
}

/// The trace's answer to the request, if it matches.
fn evaluate(
    spans: &[SpanRecord],
    request: &SearchRequest,
    selects: &[&FieldExpr],
) -> Result<Option<TraceMatch>> {
    if spans.is_empty() {
        return Ok(None);
    }
    let trace = Trace::new(spans);
    let duration_us = trace.duration_us();
    if request.min_duration_us.is_some_and(|m| duration_us < m)
        || request.max_duration_us.is_some_and(|m| duration_us > m)
    {
        return Ok(None);
    }
    let in_range: Vec<usize> = (0..trace.len())
        .filter(|i| {
            let start = spans[*i].start_us;
            start >= request.start_us && start < request.end_us
        })
        .collect();
    if in_range.is_empty() {
        return Ok(None);
    }
    let first = Set {
        spans: in_range,
        attributes: Vec::new(),
    };
    let sets = eval_pipeline(&request.query.pipeline, vec![first], &trace)?;
    if sets.is_empty() {
        return Ok(None);
    }
    let per_set = match request.spans_per_spanset {
        0 => DEFAULT_SPANS_PER_SPANSET,
        n => n,
    };
    let root = &spans[trace.root];
    let span_sets = sets
        .into_iter()
        .map(|set| {
            let mut order = set.spans.clone();
            order.sort_by_key(|i| (spans[*i].start_us, *i));
            SpanSet {
                matched: order.len(),
                spans: order
                    .iter()
                    .take(per_set)
                    .map(|i| matched_span(&trace, *i, selects))
                    .collect(),
                attributes: set.attributes,
            }
        })
        .collect();
    Ok(Some(TraceMatch {
        trace_id: root.trace_id.clone(),
        root_service_name: root.service.clone(),
        root_trace_name: root.operation.clone(),
        start_ns: trace.start_us.saturating_mul(1000),
        duration_ms: u64::try_from(duration_us / 1000).unwrap_or(0),
        span_sets,
    }))
}

fn matched_span(trace: &Trace<'_>, i: usize, selects: &[&FieldExpr]) -> MatchedSpan {
    let span = &trace.spans[i];
    let mut attributes = Vec::new();
    for field in selects {
        let name = match field {
            // Tempo shows these as the span's own fields.
            FieldExpr::Intrinsic(
                Intrinsic::Name
                | Intrinsic::Duration
                | Intrinsic::TraceDuration
                | Intrinsic::RootName
                | Intrinsic::RootServiceName
                | Intrinsic::TraceId
                | Intrinsic::SpanId,
            ) => continue,
            FieldExpr::Intrinsic(intrinsic) => intrinsic.as_str().to_owned(),
            FieldExpr::Attribute(attribute) => attribute.name.clone(),
            _ => continue,
        };
        match first(eval_field(field, trace, i)) {
            Value::Nil => {}
            value => {
                if !attributes.iter().any(|(n, _)| *n == name) {
                    attributes.push((name, field_value(&value)));
                }
            }
        }
    }
    MatchedSpan {
        span_id: span.span_id.clone(),
        name: span.operation.clone(),
        service: span.service.clone(),
        start_ns: span.start_us.saturating_mul(1000),
        duration_ns: span.duration_us.saturating_mul(1000),
        attributes,
    }
}

// The functions a nesting recurses through (`eval_pipeline`,
// `eval_element`, `eval_spanset`, `spanset_op`, `eval_field`) hold little
// and leave the rest to helpers that return before the recursion goes on,
// so that a query as deep as the budget allows runs on a small stack.

fn eval_pipeline(pipeline: &Pipeline, input: Vec<Set>, trace: &Trace<'_>) -> Result<Vec<Set>> {
    let mut sets = input;
    for element in &pipeline.elements {
        if sets.is_empty() {
            break;
        }
        sets = eval_element(element, sets, trace)?;
    }
    Ok(sets)
}

fn eval_element(element: &Element, sets: Vec<Set>, trace: &Trace<'_>) -> Result<Vec<Set>> {
    match element {
        Element::Spanset(expr) => {
            let mut out = Vec::new();
            for set in &sets {
                let found = eval_spanset(expr, set, trace)?;
                out.extend(found);
            }
            Ok(out)
        }
        other => Ok(apply_stage(other, sets, trace)),
    }
}

/// An element other than a spanset expression.
#[inline(never)]
fn apply_stage(element: &Element, sets: Vec<Set>, trace: &Trace<'_>) -> Vec<Set> {
    match element {
        Element::Scalar(filter) => sets
            .into_iter()
            .filter_map(|set| scalar_filter(filter, set, trace))
            .collect(),
        Element::By(expr) => group_by(expr, sets, trace),
        Element::Coalesce => vec![Set {
            spans: indexes(&mask_of(trace.len(), &sets)),
            attributes: Vec::new(),
        }],
        Element::Select(_) | Element::Spanset(_) => sets,
    }
}

fn indexes(mask: &[bool]) -> Vec<usize> {
    mask.iter()
        .enumerate()
        .filter(|(_, m)| **m)
        .map(|(i, _)| i)
        .collect()
}

fn mask_of<'s>(n: usize, sets: impl IntoIterator<Item = &'s Set>) -> Vec<bool> {
    let mut mask = vec![false; n];
    for set in sets {
        for i in &set.spans {
            mask[*i] = true;
        }
    }
    mask
}

/// A spanset expression on one input spanset: the spansets it yields (none empty).
fn eval_spanset(expr: &SpansetExpr, input: &Set, trace: &Trace<'_>) -> Result<Vec<Set>> {
    match expr {
        SpansetExpr::Filter(condition) => Ok(filter_set(condition, input, trace)),
        SpansetExpr::Wrapped(pipeline) => eval_pipeline(pipeline, vec![input.clone()], trace),
        SpansetExpr::Op(op) => spanset_op(op, input, trace),
    }
}

#[inline(never)]
fn filter_set(condition: &FieldExpr, input: &Set, trace: &Trace<'_>) -> Vec<Set> {
    let spans: Vec<usize> = input
        .spans
        .iter()
        .copied()
        .filter(|i| truthy(&eval_field(condition, trace, *i)))
        .collect();
    with_spans(input, spans)
}

/// A spanset of `spans` carrying `input`'s attributes; none when empty.
fn with_spans(input: &Set, spans: Vec<usize>) -> Vec<Set> {
    if spans.is_empty() {
        return Vec::new();
    }
    vec![Set {
        spans,
        attributes: input.attributes.clone(),
    }]
}

fn spanset_op(op: &SpansetOp, input: &Set, trace: &Trace<'_>) -> Result<Vec<Set>> {
    let lhs = eval_spanset(&op.lhs, input, trace)?;
    if lhs.is_empty() && op.op == SpansetOperator::And {
        return Ok(Vec::new());
    }
    let rhs = eval_spanset(&op.rhs, input, trace)?;
    combine(op.op, &lhs, &rhs, input, trace)
}

/// Both sides' spansets joined by the operator.
#[inline(never)]
fn combine(
    op: SpansetOperator,
    lhs: &[Set],
    rhs: &[Set],
    input: &Set,
    trace: &Trace<'_>,
) -> Result<Vec<Set>> {
    let spans = match op {
        SpansetOperator::And if lhs.is_empty() || rhs.is_empty() => return Ok(Vec::new()),
        SpansetOperator::And | SpansetOperator::Or => {
            indexes(&mask_of(trace.len(), lhs.iter().chain(rhs)))
        }
        structural => {
            if rhs.is_empty() {
                return Ok(Vec::new());
            }
            if lhs.len() > 1 || rhs.len() > 1 {
                return Err(Error::Execution(
                    "spanset operators are not supported for multiple spansets per trace. consider using coalesce()"
                        .to_owned(),
                ));
            }
            let l = mask_of(trace.len(), lhs);
            let r = mask_of(trace.len(), rhs);
            indexes(&relate(structural, &l, &r, trace))
        }
    };
    Ok(with_spans(input, spans))
}

/// The spans a structural operator keeps, from the left and right sides' masks.
fn relate(op: SpansetOperator, l: &[bool], r: &[bool], trace: &Trace<'_>) -> Vec<bool> {
    use SpansetOperator as S;
    let keep = |r: &[bool], related: &[bool], negated: bool| -> Vec<bool> {
        r.iter()
            .zip(related)
            .map(|(in_r, rel)| *in_r && (*rel != negated))
            .collect()
    };
    let union = |a: Vec<bool>, b: Vec<bool>| -> Vec<bool> {
        a.into_iter().zip(b).map(|(x, y)| x || y).collect()
    };
    match op {
        S::Child => keep(r, &trace.children_of(l), false),
        S::NotChild => keep(r, &trace.children_of(l), true),
        S::UnionChild => union(
            keep(r, &trace.children_of(l), false),
            keep(l, &trace.parents_of(r), false),
        ),
        S::Parent => keep(r, &trace.parents_of(l), false),
        S::NotParent => keep(r, &trace.parents_of(l), true),
        S::UnionParent => union(
            keep(r, &trace.parents_of(l), false),
            keep(l, &trace.children_of(r), false),
        ),
        S::Descendant => keep(r, &trace.below(l), false),
        S::NotDescendant => keep(r, &trace.below(l), true),
        S::UnionDescendant => union(
            keep(r, &trace.below(l), false),
            keep(l, &trace.above(r), false),
        ),
        S::Ancestor => keep(r, &trace.above(l), false),
        S::NotAncestor => keep(r, &trace.above(l), true),
        S::UnionAncestor => union(
            keep(r, &trace.above(l), false),
            keep(l, &trace.below(r), false),
        ),
        S::Sibling => keep(r, &trace.siblings_of(l), false),
        S::NotSibling => keep(r, &trace.siblings_of(l), true),
        S::UnionSibling => union(
            keep(r, &trace.siblings_of(l), false),
            keep(l, &trace.siblings_of(r), false),
        ),
        S::And | S::Or => union(l.to_vec(), r.to_vec()),
    }
}

fn group_by(expr: &FieldExpr, sets: Vec<Set>, trace: &Trace<'_>) -> Vec<Set> {
    let label = format!("by({expr})");
    let mut out = Vec::new();
    for set in sets {
        let mut groups: Vec<Set> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for i in &set.spans {
            let value = first(eval_field(expr, trace, *i));
            let key = format!("{value:?}");
            let at = *index.entry(key).or_insert_with(|| {
                let mut group = Set {
                    spans: Vec::new(),
                    attributes: set.attributes.clone(),
                };
                group.add_attribute(label.clone(), field_value(&value));
                groups.push(group);
                groups.len() - 1
            });
            groups[at].spans.push(*i);
        }
        out.extend(groups);
    }
    out
}

/// The spanset, with what it computed, if the filter holds for it.
fn scalar_filter(filter: &ScalarFilter, mut set: Set, trace: &Trace<'_>) -> Option<Set> {
    let mut computed = Vec::new();
    let lhs = scalar(&filter.lhs, &set, trace, &mut computed);
    let rhs = scalar(&filter.rhs, &set, trace, &mut computed);
    if matches!(lhs, Value::Nil) || matches!(rhs, Value::Nil) {
        return None;
    }
    if !compare(filter.op, &lhs, &rhs) {
        return None;
    }
    for (name, value) in computed {
        set.add_attribute(name, field_value(&value));
    }
    Some(set)
}

fn scalar<'a>(
    expr: &'a ScalarExpr,
    set: &Set,
    trace: &Trace<'a>,
    computed: &mut Vec<(String, Value<'a>)>,
) -> Value<'a> {
    match expr {
        ScalarExpr::Static(value) => static_value(value),
        ScalarExpr::Aggregate(aggregate) => {
            let value = aggregate_value(aggregate, set, trace);
            if !matches!(value, Value::Nil) {
                computed.push((aggregate.to_string(), value.clone()));
            }
            value
        }
        ScalarExpr::Binary(b) => {
            let lhs = scalar(&b.lhs, set, trace, computed);
            let rhs = scalar(&b.rhs, set, trace, computed);
            arithmetic(b.op, &lhs, &rhs)
        }
    }
}

/// An aggregate over a spanset; `Nil` when no span has a number for it.
fn aggregate_value<'a>(aggregate: &'a Aggregate, set: &Set, trace: &Trace<'a>) -> Value<'a> {
    let Some(field) = &aggregate.field else {
        return Value::Int(i64::try_from(set.spans.len()).unwrap_or(i64::MAX));
    };
    let values = set
        .spans
        .iter()
        .map(|i| first(eval_field(field, trace, *i)))
        .filter(|v| matches!(v, Value::Int(_) | Value::Float(_) | Value::Duration(_)));
    match aggregate.op {
        AggregateOp::Count => Value::Nil,
        AggregateOp::Min | AggregateOp::Max => {
            let mut best: Option<Value<'a>> = None;
            for value in values {
                let better = best.as_ref().is_none_or(|b| {
                    let ordering = numeric_order(&value, b);
                    if aggregate.op == AggregateOp::Min {
                        ordering == Some(std::cmp::Ordering::Less)
                    } else {
                        ordering == Some(std::cmp::Ordering::Greater)
                    }
                });
                if better {
                    best = Some(value);
                }
            }
            best.unwrap_or(Value::Nil)
        }
        AggregateOp::Sum | AggregateOp::Avg => {
            let mut count: i64 = 0;
            let mut int_sum: Option<i128> = Some(0);
            let mut float_sum = 0.0;
            let mut all_int = true;
            let mut all_duration = true;
            for value in values {
                count += 1;
                match value {
                    Value::Int(i) => {
                        all_duration = false;
                        int_sum = int_sum.and_then(|s| s.checked_add(i128::from(i)));
                        float_sum += i as f64;
                    }
                    Value::Duration(d) => {
                        all_int = false;
                        int_sum = int_sum.and_then(|s| s.checked_add(i128::from(d)));
                        float_sum += d as f64;
                    }
                    Value::Float(x) => {
                        all_int = false;
                        all_duration = false;
                        float_sum += x;
                    }
                    _ => {}
                }
            }
            if count == 0 {
                return Value::Nil;
            }
            let int_total = int_sum.and_then(|s| i64::try_from(s).ok());
            match (aggregate.op, all_int, all_duration, int_total) {
                (AggregateOp::Sum, true, _, Some(total)) => Value::Int(total),
                (AggregateOp::Sum, _, true, Some(total)) => Value::Duration(total),
                (AggregateOp::Sum, _, _, _) => Value::Float(float_sum),
                (_, _, true, Some(total)) => Value::Duration(total / count),
                _ => Value::Float(float_sum / count as f64),
            }
        }
    }
}

// ---- values -------------------------------------------------------------

/// A value computed for a span.
#[derive(Debug, Clone, PartialEq)]
enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// Nanoseconds.
    Duration(i64),
    Status(SpanStatus),
    Kind(SpanKind),
    /// Candidates, two or more, none `Many` or `Nil`: a comparison holds
    /// when it holds for one; arithmetic takes the first.
    Many(Vec<Value<'a>>),
}

fn from_field(value: &FieldValue) -> Value<'_> {
    match value {
        FieldValue::Str(s) => Value::Str(s),
        FieldValue::Int(i) => Value::Int(*i),
        FieldValue::Float(x) => Value::Float(*x),
        FieldValue::Bool(b) => Value::Bool(*b),
    }
}

fn static_value(value: &Static) -> Value<'_> {
    match value {
        Static::Nil => Value::Nil,
        Static::Bool(b) => Value::Bool(*b),
        Static::Int(i) => Value::Int(*i),
        Static::Float(x) => Value::Float(*x),
        Static::Str(s) => Value::Str(s),
        Static::Duration(ns) => Value::Duration(*ns),
        Static::Status(s) => Value::Status(*s),
        Static::Kind(k) => Value::Kind(*k),
    }
}

/// Candidates as one value.
fn many(mut values: Vec<Value<'_>>) -> Value<'_> {
    values.retain(|v| !matches!(v, Value::Nil));
    match values.len() {
        0 => Value::Nil,
        1 => values.pop().unwrap_or(Value::Nil),
        _ => Value::Many(values),
    }
}

fn first(value: Value<'_>) -> Value<'_> {
    match value {
        Value::Many(mut values) if !values.is_empty() => values.swap_remove(0),
        Value::Many(_) => Value::Nil,
        other => other,
    }
}

fn truthy(value: &Value<'_>) -> bool {
    matches!(value, Value::Bool(true))
}

/// A value as a search result shows it: durations as Go writes them,
/// statuses and kinds by name, nil as `nil`.
fn field_value(value: &Value<'_>) -> FieldValue {
    match value {
        Value::Nil => FieldValue::Str("nil".to_owned()),
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Int(i) => FieldValue::Int(*i),
        Value::Float(x) => FieldValue::Float(*x),
        Value::Str(s) => FieldValue::Str((*s).to_owned()),
        Value::Duration(ns) => FieldValue::Str(go_duration(*ns)),
        Value::Status(s) => FieldValue::Str(status_name(*s).to_owned()),
        Value::Kind(k) => FieldValue::Str(k.as_str().to_owned()),
        Value::Many(values) => values
            .first()
            .map_or(FieldValue::Str("nil".to_owned()), field_value),
    }
}

fn eval_field<'a>(expr: &'a FieldExpr, trace: &Trace<'a>, span: usize) -> Value<'a> {
    match expr {
        FieldExpr::Static(value) => static_value(value),
        FieldExpr::Attribute(attribute) => attribute_value(attribute, trace, span),
        FieldExpr::Intrinsic(intrinsic) => intrinsic_value(*intrinsic, trace, span),
        FieldExpr::Binary(b) => match b.op {
            BinaryOp::And => Value::Bool(
                truthy(&eval_field(&b.lhs, trace, span))
                    && truthy(&eval_field(&b.rhs, trace, span)),
            ),
            BinaryOp::Or => Value::Bool(
                truthy(&eval_field(&b.lhs, trace, span))
                    || truthy(&eval_field(&b.rhs, trace, span)),
            ),
            op => {
                let lhs = eval_field(&b.lhs, trace, span);
                let rhs = eval_field(&b.rhs, trace, span);
                if op.is_comparison() {
                    Value::Bool(compare(op, &lhs, &rhs))
                } else {
                    arithmetic(op, &lhs, &rhs)
                }
            }
        },
        FieldExpr::Regex(r) => {
            let value = eval_field(&r.lhs, trace, span);
            let test = |v: &Value<'_>| match v {
                Value::Str(s) => r.regex.is_match(s) != r.negated,
                _ => false,
            };
            Value::Bool(match &value {
                Value::Many(values) => values.iter().any(test),
                v => test(v),
            })
        }
        FieldExpr::Unary(op, inner) => {
            let value = eval_field(inner, trace, span);
            match op {
                UnaryOp::Exists => Value::Bool(!matches!(value, Value::Nil)),
                UnaryOp::NotExists => Value::Bool(matches!(value, Value::Nil)),
                UnaryOp::Not => match first(value) {
                    Value::Bool(b) => Value::Bool(!b),
                    _ => Value::Nil,
                },
                UnaryOp::Neg => match first(value) {
                    Value::Int(i) => i.checked_neg().map_or(Value::Nil, Value::Int),
                    Value::Float(x) => Value::Float(-x),
                    Value::Duration(d) => d.checked_neg().map_or(Value::Nil, Value::Duration),
                    _ => Value::Nil,
                },
            }
        }
    }
}

fn attribute_value<'a>(attribute: &'a Attribute, trace: &Trace<'a>, span: usize) -> Value<'a> {
    let index = if attribute.parent {
        match trace.parent[span] {
            Some(p) => p,
            None => return Value::Nil,
        }
    } else {
        span
    };
    let s = &trace.spans[index];
    let name = attribute.name.as_str();
    let resource = || match s.resource.get(name) {
        Some(v) => from_field(v),
        // The store's service is the resource's service.name.
        None if name == "service.name" => Value::Str(&s.service),
        None => Value::Nil,
    };
    match attribute.scope {
        AttributeScope::Span => s.attributes.get(name).map_or(Value::Nil, from_field),
        AttributeScope::Resource => resource(),
        AttributeScope::None => {
            let own = s.attributes.get(name).map_or(Value::Nil, from_field);
            let resource = resource();
            if own == resource {
                own
            } else {
                many(vec![own, resource])
            }
        }
        AttributeScope::Event => many(
            s.events
                .iter()
                .filter_map(|e| e.attributes.get(name))
                .map(from_field)
                .collect(),
        ),
    }
}

fn intrinsic_value<'a>(intrinsic: Intrinsic, trace: &Trace<'a>, span: usize) -> Value<'a> {
    let s = &trace.spans[span];
    let text = |t: &'a str| {
        if t.is_empty() {
            Value::Nil
        } else {
            Value::Str(t)
        }
    };
    match intrinsic {
        Intrinsic::Duration => Value::Duration(s.duration_us.saturating_mul(1000)),
        Intrinsic::Name => Value::Str(&s.operation),
        Intrinsic::Status => Value::Status(s.status),
        Intrinsic::StatusMessage => Value::Str(&s.status_message),
        Intrinsic::Kind => Value::Kind(s.kind),
        Intrinsic::RootName => Value::Str(&trace.spans[trace.root].operation),
        Intrinsic::RootServiceName => Value::Str(&trace.spans[trace.root].service),
        Intrinsic::TraceDuration => Value::Duration(trace.duration_us().saturating_mul(1000)),
        Intrinsic::TraceId => Value::Str(&s.trace_id),
        Intrinsic::SpanId => Value::Str(&s.span_id),
        Intrinsic::ParentId => text(&s.parent_span_id),
        Intrinsic::ChildCount => Value::Int(trace.child_count[span]),
        Intrinsic::EventName => many(s.events.iter().map(|e| Value::Str(&e.name)).collect()),
        Intrinsic::EventTimeSinceStart => many(
            s.events
                .iter()
                .map(|e| {
                    Value::Duration(
                        e.timestamp_us
                            .saturating_sub(s.start_us)
                            .saturating_mul(1000),
                    )
                })
                .collect(),
        ),
        Intrinsic::LinkTraceId => many(s.links.iter().map(|l| Value::Str(&l.trace_id)).collect()),
        Intrinsic::LinkSpanId => many(s.links.iter().map(|l| Value::Str(&l.span_id)).collect()),
        Intrinsic::InstrumentationName => text(&s.scope),
        Intrinsic::InstrumentationVersion => text(&s.scope_version),
    }
}

fn as_f64(value: &Value<'_>) -> Option<f64> {
    match value {
        Value::Int(i) | Value::Duration(i) => Some(*i as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

/// How two numbers order (integers and durations exactly).
fn numeric_order(a: &Value<'_>, b: &Value<'_>) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x) | Value::Duration(x), Value::Int(y) | Value::Duration(y)) => Some(x.cmp(y)),
        _ => as_f64(a)?.partial_cmp(&as_f64(b)?),
    }
}

/// A comparison, as Tempo makes it: false across types and with nil.
fn compare(op: BinaryOp, lhs: &Value<'_>, rhs: &Value<'_>) -> bool {
    use std::cmp::Ordering;
    if let Value::Many(values) = lhs {
        return values.iter().any(|v| compare(op, v, rhs));
    }
    if let Value::Many(values) = rhs {
        return values.iter().any(|v| compare(op, lhs, v));
    }
    let ordering = match (lhs, rhs) {
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, BinaryOp::Eq | BinaryOp::Ne) => {
            Some(a.cmp(b))
        }
        (Value::Status(a), Value::Status(b)) if matches!(op, BinaryOp::Eq | BinaryOp::Ne) => {
            Some(a.cmp(b))
        }
        (Value::Kind(a), Value::Kind(b)) if matches!(op, BinaryOp::Eq | BinaryOp::Ne) => {
            Some(a.cmp(b))
        }
        (a, b) if as_f64(a).is_some() && as_f64(b).is_some() => match numeric_order(a, b) {
            Some(ordering) => Some(ordering),
            // NaN: unequal to everything, ordered with nothing.
            None => return op == BinaryOp::Ne,
        },
        _ => return false,
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        BinaryOp::Eq => ordering == Ordering::Equal,
        BinaryOp::Ne => ordering != Ordering::Equal,
        BinaryOp::Gt => ordering == Ordering::Greater,
        BinaryOp::Ge => ordering != Ordering::Less,
        BinaryOp::Lt => ordering == Ordering::Less,
        BinaryOp::Le => ordering != Ordering::Greater,
        _ => false,
    }
}

/// Arithmetic: integers exactly (nil on overflow or division by zero),
/// anything else numeric as floats; nil for the rest.
fn arithmetic<'a>(op: BinaryOp, lhs: &Value<'a>, rhs: &Value<'a>) -> Value<'a> {
    let (lhs, rhs) = (first(lhs.clone()), first(rhs.clone()));
    if let (Value::Int(a), Value::Int(b)) = (&lhs, &rhs) {
        let (a, b) = (*a, *b);
        let exact = match op {
            BinaryOp::Add => a.checked_add(b),
            BinaryOp::Sub => a.checked_sub(b),
            BinaryOp::Mul => a.checked_mul(b),
            BinaryOp::Div => a.checked_div(b),
            BinaryOp::Mod => a.checked_rem(b),
            BinaryOp::Pow if b >= 0 => u32::try_from(b).ok().and_then(|b| a.checked_pow(b)),
            BinaryOp::Pow => return Value::Float((a as f64).powf(b as f64)),
            _ => None,
        };
        return exact.map_or(Value::Nil, Value::Int);
    }
    let (Some(a), Some(b)) = (as_f64(&lhs), as_f64(&rhs)) else {
        return Value::Nil;
    };
    Value::Float(match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        BinaryOp::Pow => a.powf(b),
        _ => return Value::Nil,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sextant_model::SpanEvent;
    use sextant_storage::spans::{SpanStore, SpanStoreConfig};

    use super::*;
    use crate::traceql::parse;

    const BASE_US: i64 = 1_700_000_000_000_000;
    const CHECKOUT: &str = "0af7651916cd43dd8448eb211c80319c";
    const SEARCH: &str = "1bf7651916cd43dd8448eb211c80319d";
    const HOME: &str = "2cf7651916cd43dd8448eb211c80319e";

    fn str_value(s: &str) -> FieldValue {
        FieldValue::Str(s.to_owned())
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        trace: &str,
        id: &str,
        parent: &str,
        service: &str,
        operation: &str,
        kind: SpanKind,
        start_ms: i64,
        duration_ms: i64,
        attributes: &[(&str, FieldValue)],
    ) -> SpanRecord {
        SpanRecord {
            trace_id: trace.to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            service: service.to_owned(),
            operation: operation.to_owned(),
            kind,
            status: SpanStatus::Unset,
            status_message: String::new(),
            start_us: BASE_US + start_ms * 1000,
            duration_us: duration_ms * 1000,
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            resource: BTreeMap::from([
                ("service.name".to_owned(), str_value(service)),
                ("host.name".to_owned(), str_value("box-1")),
            ]),
            scope: "test".to_owned(),
            scope_version: String::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A checkout (frontend server -> cart client -> cart server, failing;
    /// 120/80/70 ms), then a search, then an older home page view.
    fn traces() -> Vec<SpanRecord> {
        let mut cart = span(
            CHECKOUT,
            "00000000000000a3",
            "00000000000000a2",
            "cart",
            "POST /cart",
            SpanKind::Server,
            100_015,
            70,
            &[
                ("http.method", str_value("POST")),
                ("http.route", str_value("/cart")),
                ("http.status_code", FieldValue::Int(500)),
            ],
        );
        cart.status = SpanStatus::Error;
        cart.status_message = "out of stock".to_owned();
        cart.events.push(SpanEvent {
            timestamp_us: cart.start_us + 5000,
            name: "exception".to_owned(),
            attributes: BTreeMap::from([(
                "exception.message".to_owned(),
                str_value("stock service timeout"),
            )]),
        });
        vec![
            span(
                HOME,
                "00000000000000c1",
                "",
                "frontend",
                "GET /home",
                SpanKind::Server,
                50_000,
                150,
                &[
                    ("http.method", str_value("GET")),
                    ("http.status_code", FieldValue::Int(200)),
                ],
            ),
            span(
                CHECKOUT,
                "00000000000000a1",
                "",
                "frontend",
                "GET /checkout",
                SpanKind::Server,
                100_000,
                120,
                &[
                    ("http.method", str_value("GET")),
                    ("http.route", str_value("/checkout")),
                    ("http.status_code", FieldValue::Int(200)),
                ],
            ),
            span(
                CHECKOUT,
                "00000000000000a2",
                "00000000000000a1",
                "frontend",
                "cart.add",
                SpanKind::Client,
                100_010,
                80,
                &[("http.method", str_value("POST"))],
            ),
            cart,
            span(
                SEARCH,
                "00000000000000b1",
                "",
                "search",
                "GET /search",
                SpanKind::Server,
                200_000,
                30,
                &[
                    ("http.method", str_value("GET")),
                    ("http.route", str_value("/search")),
                    ("http.status_code", FieldValue::Int(200)),
                ],
            ),
        ]
    }

    fn store(dir: &std::path::Path, spans: &[SpanRecord]) -> SpanStore {
        let store = SpanStore::open(dir, SpanStoreConfig::default()).unwrap();
        store.append(spans).unwrap();
        store.commit().unwrap();
        store
    }

    fn request(query: &str) -> SearchRequest {
        let query = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        SearchRequest::new(query, BASE_US, BASE_US + 3_600_000_000)
    }

    fn run(reader: &dyn SpanReader, query: &str) -> Vec<TraceMatch> {
        search(reader, &request(query)).unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// `trace id: span ids of each spanset`, newest trace first.
    fn summary(found: &[TraceMatch]) -> Vec<String> {
        found
            .iter()
            .map(|t| {
                let sets: Vec<String> = t
                    .span_sets
                    .iter()
                    .map(|s| {
                        let ids: Vec<&str> = s.spans.iter().map(|s| &s.span_id[14..]).collect();
                        format!("{}/{}", ids.join(","), s.matched)
                    })
                    .collect();
                format!("{}: {}", &t.trace_id[..3], sets.join(" "))
            })
            .collect()
    }

    #[test]
    fn the_documented_queries_find_the_traces_they_describe() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &traces());
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{ resource.service.name = "cart" && status = error }"#,
                &["0af: a3/1"],
            ),
            ("{ duration > 100ms }", &["0af: a1/1", "2cf: c1/1"]),
            (
                r#"{ span.http.method = "GET" } && { resource.service.name = "cart" }"#,
                &["0af: a1,a3/2"],
            ),
            ("{ .http.status_code >= 500 }", &["0af: a3/1"]),
            (
                r#"{ name =~ "GET.*" }"#,
                &["1bf: b1/1", "0af: a1/1", "2cf: c1/1"],
            ),
            // Anchored: the whole name must match.
            (r#"{ name =~ "checkout" }"#, &[]),
            (r#"{ name =~ ".*checkout" }"#, &["0af: a1/1"]),
            (r#"{ name !~ "GET.*" }"#, &["0af: a2,a3/2"]),
            ("{ } | count() > 2", &["0af: a1,a2,a3/3"]),
            (
                "{ } | avg(duration) > 50ms",
                &["0af: a1,a2,a3/3", "2cf: c1/1"],
            ),
            (
                r#"{ rootServiceName = "frontend" }"#,
                &["0af: a1,a2,a3/3", "2cf: c1/1"],
            ),
            (
                "{ traceDuration > 100ms }",
                &["0af: a1,a2,a3/3", "2cf: c1/1"],
            ),
            (
                "{ kind = server } | select(span.http.route)",
                &["1bf: b1/1", "0af: a1,a3/2", "2cf: c1/1"],
            ),
            (
                "{ span.missing = nil }",
                &["1bf: b1/1", "0af: a1,a2,a3/3", "2cf: c1/1"],
            ),
            ("{ span.http.route != nil && kind = client }", &[]),
            // A string attribute compared with a number, or a missing one
            // with anything, is false.
            (r#"{ span.http.status_code = "500" }"#, &[]),
            (
                r#"{ span.http.route != "/cart" }"#,
                &["1bf: b1/1", "0af: a1/1"],
            ),
            (r#"{ .service.name = "search" }"#, &["1bf: b1/1"]),
            (
                r#"{ resource.host.name = "box-1" && name = "cart.add" }"#,
                &["0af: a2/1"],
            ),
            (
                r#"{ rootName = "GET /checkout" && kind = client }"#,
                &["0af: a2/1"],
            ),
            (r#"{ statusMessage = "out of stock" }"#, &["0af: a3/1"]),
            (
                r#"{ span:childCount = 1 && span:parentID != nil }"#,
                &["0af: a2/1"],
            ),
            (r#"{ span:parentID = "00000000000000a1" }"#, &["0af: a2/1"]),
            (
                r#"{ event:name = "exception" && event.exception.message =~ ".*timeout" }"#,
                &["0af: a3/1"],
            ),
            ("{ event:timeSinceStart = 5ms }", &["0af: a3/1"]),
            (
                r#"{ parent.resource.service.name = "frontend" && kind = server }"#,
                &["0af: a3/1"],
            ),
            (
                r#"{ instrumentation:name = "test" && duration < 40ms }"#,
                &["1bf: b1/1"],
            ),
            // `&&` and `||` bind alike, left to right, as in Tempo.
            (
                "{ duration * 2 >= 240ms || span.http.status_code % 100 = 0 && status = error }",
                &["0af: a3/1"],
            ),
            (
                "{ duration * 2 >= 240ms || (span.http.status_code % 100 = 0 && status = error) }",
                &["0af: a1,a3/2", "2cf: c1/1"],
            ),
            // Structure.
            (
                r#"{ resource.service.name = "frontend" } >> { status = error }"#,
                &["0af: a3/1"],
            ),
            ("{ kind = server } > { kind = client }", &["0af: a2/1"]),
            ("{ kind = client } < { }", &["0af: a1/1"]),
            ("{ status = error } << { }", &["0af: a1,a2/2"]),
            ("{ } ~ { }", &[]),
            (
                "{ kind = server } !> { }",
                &["1bf: b1/1", "0af: a1,a3/2", "2cf: c1/1"],
            ),
            ("{ kind = server } &> { kind = client }", &["0af: a1,a2/2"]),
            (
                "{ status = error } !<< { kind = server }",
                &["1bf: b1/1", "0af: a3/1", "2cf: c1/1"],
            ),
            (
                "{ name = \"GET /checkout\" } &>> { status = error }",
                &["0af: a1,a3/2"],
            ),
            // Pipelines.
            (
                "{ } | by(resource.service.name) | count() = 2",
                &["0af: a1,a2/2"],
            ),
            (
                "{ } | by(kind) | coalesce() | count() = 3",
                &["0af: a1,a2,a3/3"],
            ),
            (
                "({ kind = server } | count() > 1) && { kind = client }",
                &["0af: a1,a2,a3/3"],
            ),
            (
                "{ } | { status = error } | max(duration) < 1s",
                &["0af: a3/1"],
            ),
            (
                "{ } | sum(span.http.status_code) = 700",
                &["0af: a1,a2,a3/3"],
            ),
            ("{ } | min(duration) < 50ms", &["1bf: b1/1"]),
            (
                "{ span.http.method = \"GET\" } || { status = error }",
                &["1bf: b1/1", "0af: a1,a3/2", "2cf: c1/1"],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(summary(&run(&store, query)), *expected, "{query}");
        }
    }

    #[test]
    fn a_match_carries_its_trace_and_what_the_pipeline_computed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &traces());
        let found = run(&store, "{ } | avg(duration) > 50ms");
        let checkout = &found[0];
        assert_eq!(checkout.trace_id, CHECKOUT);
        assert_eq!(checkout.root_service_name, "frontend");
        assert_eq!(checkout.root_trace_name, "GET /checkout");
        assert_eq!(checkout.start_ns, (BASE_US + 100_000_000) * 1000);
        assert_eq!(checkout.duration_ms, 120);
        let set = &checkout.span_sets[0];
        assert_eq!(
            set.attributes,
            [("avg(duration)".to_owned(), str_value("90ms"))]
        );
        assert_eq!(set.spans[2].name, "POST /cart");
        assert_eq!(set.spans[2].service, "cart");
        assert_eq!(set.spans[2].duration_ns, 70_000_000);
        assert_eq!(set.spans[2].start_ns, (BASE_US + 100_015_000) * 1000);
        assert_eq!(
            run(&store, "{ } | count() > 2")[0].span_sets[0].attributes,
            [("count()".to_owned(), FieldValue::Int(3))]
        );
        let selected = run(
            &store,
            "{ kind = server } | select(span.http.route, status, resource.host.name, duration)",
        );
        let spans = &selected[1].span_sets[0].spans;
        assert_eq!(
            spans[1].attributes,
            [
                ("http.route".to_owned(), str_value("/cart")),
                ("status".to_owned(), str_value("error")),
                ("host.name".to_owned(), str_value("box-1")),
            ]
        );
        let home = &selected[2].span_sets[0].spans[0];
        assert_eq!(
            home.attributes[0],
            ("status".to_owned(), str_value("unset"))
        );
        assert_eq!(home.attributes.len(), 2, "no route: left out");
        let by = run(&store, "{ } | by(resource.service.name)");
        let sets = &by[1].span_sets;
        assert_eq!(sets.len(), 2);
        assert_eq!(
            sets[1].attributes,
            [("by(resource.service.name)".to_owned(), str_value("cart"))]
        );
    }

    #[test]
    fn limits_range_and_trace_duration_narrow_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &traces());
        let mut req = request("{ }");
        req.limit = 2;
        assert_eq!(
            summary(&search(&store, &req).unwrap()),
            ["1bf: b1/1", "0af: a1,a2,a3/3"]
        );
        req.limit = 20;
        req.spans_per_spanset = 1;
        assert_eq!(
            summary(&search(&store, &req).unwrap()),
            ["1bf: b1/1", "0af: a1/3", "2cf: c1/1"]
        );
        req.spans_per_spanset = 3;
        // Spans starting in the range are the ones searched.
        req.start_us = BASE_US + 100_012_000;
        req.end_us = BASE_US + 150_000_000;
        assert_eq!(summary(&search(&store, &req).unwrap()), ["0af: a3/1"]);
        req.start_us = BASE_US;
        req.end_us = BASE_US + 3_600_000_000;
        req.min_duration_us = Some(100_000);
        req.max_duration_us = Some(130_000);
        assert_eq!(summary(&search(&store, &req).unwrap()), ["0af: a1,a2,a3/3"]);
        req.end_us = req.start_us;
        assert!(search(&store, &req).unwrap().is_empty());
    }

    #[test]
    fn structure_between_several_spansets_is_refused_at_run_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &traces());
        let err = search(&store, &request("({ } | by(kind)) > { }")).unwrap_err();
        assert!(
            err.to_string().contains("consider using coalesce()"),
            "{err}"
        );
    }

    #[test]
    fn what_is_pushed_down() {
        let cases: &[(&str, Pushdown)] = &[
            (
                r#"{ resource.service.name = "cart" && name = "POST /cart" && span.http.method = "POST" && duration > 100ms && duration <= 2s }"#,
                Pushdown {
                    service: Some("cart".into()),
                    operation: Some("POST /cart".into()),
                    tags: vec![("http.method".into(), "POST".into())],
                    min_duration_us: Some(100_001),
                    max_duration_us: Some(2_000_000),
                },
            ),
            (
                "{ 1500ns <= duration && duration < 2500ns }",
                Pushdown {
                    min_duration_us: Some(2),
                    max_duration_us: Some(2),
                    ..Pushdown::default()
                },
            ),
            (
                r#"{ } && { resource.service.name = "cart" } | count() > 1"#,
                Pushdown {
                    service: Some("cart".into()),
                    ..Pushdown::default()
                },
            ),
            (
                r#"{ name = "a" } !>> { resource.service.name = "b" }"#,
                Pushdown {
                    service: Some("b".into()),
                    ..Pushdown::default()
                },
            ),
            (
                r#"({ name = "a" } | count() > 1) > { }"#,
                Pushdown {
                    operation: Some("a".into()),
                    ..Pushdown::default()
                },
            ),
            (r#"{ name = "a" } || { name = "b" }"#, Pushdown::default()),
            (r#"{ name = "a" || duration > 1s }"#, Pushdown::default()),
            (
                r#"{ name = "a" || name = "c" && span.x = "b" }"#,
                Pushdown {
                    tags: vec![("x".into(), "b".into())],
                    ..Pushdown::default()
                },
            ),
            (r#"{ name != "a" && name =~ "b" }"#, Pushdown::default()),
            // Not decided by the store as TraceQL decides them.
            (
                r#"{ resource.k8s.pod = "a" && .x = "b" && span.span_id = "c" && span.n = 5 && name = "" && parent.span.y = "d" && span."a..b" = "e" && span."a\\b" = "f" }"#,
                Pushdown::default(),
            ),
            (
                "{ span:duration >= 1ms }",
                Pushdown {
                    min_duration_us: Some(1000),
                    ..Pushdown::default()
                },
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(pushdown(&parse(query).unwrap()), *expected, "{query}");
        }
    }

    #[test]
    fn deep_queries_within_budget_run_on_a_test_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &traces());
        let depth = sextant_model::depth::max_depth() - 10;
        let nest = |open: &str, inner: &str, close: &str| {
            format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
        };
        let queries = [
            format!("{{ {}(status = error) }}", "!!".repeat(depth / 2 - 1)),
            format!("{{ {} }}", nest("(", "status = error", ")")),
            nest("(", "{ status = error }", ")"),
            nest("({ } | ", "{ status = error }", ")"),
            format!(
                "{{ status = error }}{}",
                " || { name = \"none\" }".repeat(depth - 1)
            ),
            format!(
                "{}{{ status = error }}",
                "{ name = \"none\" } || ".repeat(depth - 1)
            ),
            format!(
                "{}{{ status = error }}{}",
                "{ } >> (".repeat(depth / 2 - 1),
                ")".repeat(depth / 2 - 1)
            ),
            format!(
                "{{ status = error && duration > {} }}",
                vec!["1ns"; depth / 2].join(" + ")
            ),
        ];
        for query in &queries {
            assert_eq!(
                summary(&run(&store, query)),
                ["0af: a3/1"],
                "{}...",
                &query[..40]
            );
        }
    }

    /// The store, with nothing pushed down to it.
    struct Unfiltered<'a>(&'a SpanStore);

    impl SpanReader for Unfiltered<'_> {
        fn services(&self, start_us: i64, end_us: i64) -> sextant_storage::Result<Vec<String>> {
            self.0.services(start_us, end_us)
        }
        fn operations(
            &self,
            service: &str,
            start_us: i64,
            end_us: i64,
        ) -> sextant_storage::Result<Vec<(String, SpanKind)>> {
            self.0.operations(service, start_us, end_us)
        }
        fn find_trace_ids(&self, query: &TraceQuery) -> sextant_storage::Result<Vec<String>> {
            self.0.find_trace_ids(&TraceQuery {
                start_us: query.start_us,
                end_us: query.end_us,
                limit: query.limit,
                ..TraceQuery::default()
            })
        }
        fn trace(&self, trace_id: &str) -> sextant_storage::Result<Vec<SpanRecord>> {
            self.0.trace(trace_id)
        }
        fn dependencies(
            &self,
            start_us: i64,
            end_us: i64,
        ) -> sextant_storage::Result<Vec<(String, String, u64)>> {
            self.0.dependencies(start_us, end_us)
        }
        fn correlated_spans(
            &self,
            id: &str,
            start_us: i64,
            end_us: i64,
            limit: usize,
        ) -> sextant_storage::Result<Vec<SpanRecord>> {
            self.0.correlated(id, start_us, end_us, limit)
        }
    }

    /// The store giving at most `cap` trace ids per call, however many are
    /// asked for (as a store scanning a bounded number of spans may), and
    /// counting its calls.
    struct Stingy<'a> {
        store: &'a SpanStore,
        cap: usize,
        calls: AtomicUsize,
    }

    impl SpanReader for Stingy<'_> {
        fn services(&self, start_us: i64, end_us: i64) -> sextant_storage::Result<Vec<String>> {
            self.store.services(start_us, end_us)
        }
        fn operations(
            &self,
            service: &str,
            start_us: i64,
            end_us: i64,
        ) -> sextant_storage::Result<Vec<(String, SpanKind)>> {
            self.store.operations(service, start_us, end_us)
        }
        fn find_trace_ids(&self, query: &TraceQuery) -> sextant_storage::Result<Vec<String>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut ids = self.store.find_trace_ids(query)?;
            ids.truncate(self.cap);
            Ok(ids)
        }
        fn trace(&self, trace_id: &str) -> sextant_storage::Result<Vec<SpanRecord>> {
            self.store.trace(trace_id)
        }
        fn dependencies(
            &self,
            start_us: i64,
            end_us: i64,
        ) -> sextant_storage::Result<Vec<(String, String, u64)>> {
            self.store.dependencies(start_us, end_us)
        }
        fn correlated_spans(
            &self,
            id: &str,
            start_us: i64,
            end_us: i64,
            limit: usize,
        ) -> sextant_storage::Result<Vec<SpanRecord>> {
            self.store.correlated(id, start_us, end_us, limit)
        }
    }

    /// The store's answers for two partitions (by the trace id's last
    /// digit), each newest first, taken in turns, as the cluster's reader
    /// gives them; counting its calls.
    struct Interleaved<'a> {
        store: &'a SpanStore,
        calls: AtomicUsize,
    }

    impl SpanReader for Interleaved<'_> {
        fn services(&self, start_us: i64, end_us: i64) -> sextant_storage::Result<Vec<String>> {
            self.store.services(start_us, end_us)
        }
        fn operations(
            &self,
            service: &str,
            start_us: i64,
            end_us: i64,
        ) -> sextant_storage::Result<Vec<(String, SpanKind)>> {
            self.store.operations(service, start_us, end_us)
        }
        fn find_trace_ids(&self, query: &TraceQuery) -> sextant_storage::Result<Vec<String>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let all = self.store.find_trace_ids(&TraceQuery {
                limit: 100_000,
                ..query.clone()
            })?;
            let (even, odd): (Vec<String>, Vec<String>) = all
                .into_iter()
                .partition(|id| id.ends_with(['0', '2', '4', '6', '8', 'a', 'c', 'e']));
            let mut lists = [even.into_iter(), odd.into_iter()];
            let mut ids = Vec::new();
            while ids.len() < query.limit {
                let before = ids.len();
                for list in &mut lists {
                    if let Some(id) = list.next()
                        && ids.len() < query.limit
                    {
                        ids.push(id);
                    }
                }
                if ids.len() == before {
                    break;
                }
            }
            Ok(ids)
        }
        fn trace(&self, trace_id: &str) -> sextant_storage::Result<Vec<SpanRecord>> {
            self.store.trace(trace_id)
        }
        fn dependencies(
            &self,
            start_us: i64,
            end_us: i64,
        ) -> sextant_storage::Result<Vec<(String, String, u64)>> {
            self.store.dependencies(start_us, end_us)
        }
        fn correlated_spans(
            &self,
            id: &str,
            start_us: i64,
            end_us: i64,
            limit: usize,
        ) -> sextant_storage::Result<Vec<SpanRecord>> {
            self.store.correlated(id, start_us, end_us, limit)
        }
    }

    #[test]
    fn a_rare_match_is_found_past_full_answers() {
        // 250 traces; only the oldest is marked, by nothing pushed down.
        let spans: Vec<SpanRecord> = (0..250_i64)
            .map(|t| {
                let marker = if t == 0 { "yes" } else { "no" };
                span(
                    &format!("{t:032x}"),
                    &format!("{:016x}", t + 1),
                    "",
                    "frontend",
                    "GET /",
                    SpanKind::Server,
                    t * 1000,
                    10,
                    &[("marker", str_value(marker))],
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &spans);
        let mut req = request(r#"{ .marker = "yes" }"#);
        req.limit = 1;
        let expected = ["000: 01/1"];
        assert_eq!(summary(&search(&store, &req).unwrap()), expected);
        let interleaved = Interleaved {
            store: &store,
            calls: AtomicUsize::new(0),
        };
        assert_eq!(summary(&search(&interleaved, &req).unwrap()), expected);
        // 40 ids, then 80, 160 and 320 asked for: the last answer is short.
        assert_eq!(interleaved.calls.load(Ordering::Relaxed), 4);
        let stingy = Stingy {
            store: &store,
            cap: 3,
            calls: AtomicUsize::new(0),
        };
        assert_eq!(summary(&search(&stingy, &req).unwrap()), expected);
    }

    /// Many traces of one to four spans, some failing, some slow.
    fn many_traces() -> Vec<SpanRecord> {
        let services = ["frontend", "cart", "search", "auth"];
        let mut spans = Vec::new();
        for t in 0..60_i64 {
            let trace = format!("{t:032x}");
            for s in 0..(t % 4 + 1) {
                let id = format!("{:016x}", t * 16 + s + 1);
                let parent = if s == 0 {
                    String::new()
                } else {
                    format!("{:016x}", t * 16 + s)
                };
                let service = services[usize::try_from((t + s) % 4).unwrap()];
                let method = if (t + s) % 3 == 0 { "GET" } else { "POST" };
                let mut record = span(
                    &trace,
                    &id,
                    &parent,
                    service,
                    &format!("{method} /{service}"),
                    if s == 0 {
                        SpanKind::Server
                    } else {
                        SpanKind::Client
                    },
                    t * 1000 + s,
                    (t * 7 + s * 13) % 200,
                    &[
                        ("http.method", str_value(method)),
                        (
                            "http.status_code",
                            FieldValue::Int(if (t + s) % 5 == 0 { 500 } else { 200 }),
                        ),
                    ],
                );
                if (t + s) % 5 == 0 {
                    record.status = SpanStatus::Error;
                }
                spans.push(record);
            }
        }
        spans
    }

    #[test]
    fn pushdown_and_paging_never_lose_a_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), &many_traces());
        let queries = [
            "{ }",
            r#"{ resource.service.name = "cart" && status = error }"#,
            r#"{ span.http.method = "GET" && duration > 100ms }"#,
            r#"{ name = "POST /auth" && duration <= 50ms }"#,
            r#"{ span.http.method = "GET" } && { resource.service.name = "search" }"#,
            r#"{ resource.service.name = "frontend" } >> { status = error && duration >= 10ms }"#,
            "{ } | count() > 2",
            "{ duration < 30ms } | avg(duration) > 10ms",
            r#"{ .http.status_code = 500 } !> { span.http.method = "POST" }"#,
        ];
        for query in queries {
            let mut all = request(query);
            all.limit = 1000;
            let expected = search(&Unfiltered(&store), &all).unwrap();
            assert_eq!(search(&store, &all).unwrap(), expected, "{query}");
            assert!(!expected.is_empty(), "{query}");
            // Three ids per page: the search pages down the range.
            let stingy = Stingy {
                store: &store,
                cap: 3,
                calls: AtomicUsize::new(0),
            };
            assert_eq!(search(&stingy, &all).unwrap(), expected, "{query}, paged");
            let interleaved = Interleaved {
                store: &store,
                calls: AtomicUsize::new(0),
            };
            assert_eq!(
                search(&interleaved, &all).unwrap(),
                expected,
                "{query}, interleaved"
            );
            assert!(
                stingy.calls.load(Ordering::Relaxed) >= expected.len() / 3,
                "{query}"
            );
            // A limit keeps the traces whose matching spans are newest.
            let mut few = all.clone();
            few.limit = 4;
            let first = search(&stingy, &few).unwrap();
            assert_eq!(first.len(), expected.len().min(4), "{query}");
            assert_eq!(first[..], expected[..first.len()], "{query}");
        }
    }
}
