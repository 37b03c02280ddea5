//! A range-query results cache, as Grafana dashboards need it: a panel
//! asks for the same query over a window that moves forward by a step or
//! two each refresh, so all but the newest minutes were answered before.
//!
//! A range query's steps are evaluated independently of each other (each
//! as an instant query at its own time; subquery steps are aligned to
//! absolute time), so a cached answer for some steps can be joined to
//! fresh answers for the others. Per query (tenant, text, step, the
//! step's phase and every option that changes answers) one extent of
//! steps is kept, in memory, up to `freshness` before now: the newest
//! steps are always evaluated, because their samples are still arriving.
//!
//! It never answers stale points: each extent remembers the store's change
//! epoch ([`MetricsReader::results_epoch`]) from before its evaluation,
//! and the store moves that epoch for every write at or before the newest
//! cached time (late samples, out-of-order samples, backfill, imports)
//! and for every deletion; an extent with another epoch is dropped. A
//! store that cannot tell (cluster mode) gets nothing cached.
//!
//! Not cached: queries with `@` or a negative `offset` (their steps look at
//! other times than their own), answers with warnings or infos (those are
//! about the whole range), and extents bigger than a quarter of the cache.
//! Least recently used extents go first when the cache is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use promql_parser::parser::{Expr, Offset};
use sextant_model::Labels;

use super::{Annotations, Engine, QueryValue, Result, Series};

/// What one cached extent is the answer to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The tenant the request was made as (`None`: no tenant).
    pub tenant: Option<Arc<str>>,
    /// The query as written.
    pub query: String,
    pub step_ms: i64,
    /// Where the steps fall: the range's start modulo the step.
    pub phase_ms: i64,
    pub lookback_delta_ms: i64,
    pub default_subquery_step_ms: i64,
    pub delayed_name_removal: bool,
}

/// Settings: `query.results_cache.*`.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Most bytes of cached points and labels (estimated); 0 turns the
    /// cache off.
    pub max_bytes: usize,
    /// How far before now nothing is cached (samples may still arrive).
    pub freshness_ms: i64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            freshness_ms: 5 * 60 * 1000,
        }
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Range queries answered wholly from the cache.
    pub hits: u64,
    /// Range queries answered partly from the cache.
    pub partial_hits: u64,
    /// Cacheable range queries with nothing usable cached.
    pub misses: u64,
    /// Extents dropped because the store changed under them.
    pub invalidated: u64,
    /// Extents dropped to make room.
    pub evicted: u64,
    /// Bytes held now (estimated).
    pub bytes: u64,
}

struct Extent {
    /// The first and last cached step.
    from: i64,
    to: i64,
    series: Vec<Series>,
    epoch: u64,
    bytes: usize,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    extents: HashMap<CacheKey, Extent>,
    bytes: usize,
    tick: u64,
    stats: CacheStats,
}

/// The cache; share one per server.
pub struct ResultsCache {
    config: CacheConfig,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ResultsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsCache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ResultsCache {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.inner.lock().expect("results cache lock");
        CacheStats {
            bytes: inner.bytes as u64,
            ..inner.stats
        }
    }

    /// The key for a range query from `start_ms` at `step_ms` on `engine`
    /// as `tenant`.
    pub fn key(
        engine: &Engine,
        tenant: Option<Arc<str>>,
        query: &str,
        start_ms: i64,
        step_ms: i64,
    ) -> CacheKey {
        let o = &engine.options;
        CacheKey {
            tenant,
            query: query.to_owned(),
            step_ms,
            phase_ms: start_ms.rem_euclid(step_ms.max(1)),
            lookback_delta_ms: o.lookback_delta_ms,
            default_subquery_step_ms: o.default_subquery_step_ms,
            delayed_name_removal: o.delayed_name_removal,
        }
    }

    /// Answers `expr` over `[start, end]` at `step` (as
    /// [`Engine::range_query_expr`]), from the cache where it can, and
    /// keeps what is older than `now_ms - freshness` for next time.
    pub fn range_query(
        &self,
        engine: &Engine,
        key: CacheKey,
        expr: &Expr,
        start: i64,
        end: i64,
        now_ms: i64,
    ) -> Result<(QueryValue, Annotations)> {
        let step = key.step_ms;
        if self.config.max_bytes == 0 || step <= 0 || !cacheable(expr) {
            return engine.range_query_expr(expr, start, end, step);
        }
        // The newest step that may be cached: `freshness` before now, on
        // this query's grid.
        let phase = key.phase_ms;
        let horizon = now_ms.saturating_sub(self.config.freshness_ms);
        let until = horizon - (horizon - phase).rem_euclid(step);
        let Some(epoch) = engine.reader.results_epoch(until) else {
            return engine.range_query_expr(expr, start, end, step);
        };
        // What is cached and usable: the same epoch, overlapping the request.
        let cached = {
            let mut inner = self.inner.lock().expect("results cache lock");
            inner.tick += 1;
            let tick = inner.tick;
            let usable = match inner.extents.get_mut(&key) {
                Some(e) if e.epoch != epoch => Err(()),
                Some(e) if e.from <= end && e.to >= start => {
                    e.last_used = tick;
                    Ok(Some((
                        e.from.max(start),
                        e.to.min(end),
                        trim(&e.series, start, end),
                    )))
                }
                _ => Ok(None),
            };
            match usable {
                Err(()) => {
                    if let Some(e) = inner.extents.remove(&key) {
                        inner.bytes -= e.bytes;
                    }
                    inner.stats.invalidated += 1;
                    None
                }
                Ok(found) => found,
            }
        };
        let (value, notes) = match cached {
            Some((from, to, series)) => {
                let mut parts = vec![series];
                let mut notes = Annotations::default();
                if start < from {
                    let (value, n) = engine.range_query_expr(expr, start, from - step, step)?;
                    merge(&mut notes, n);
                    parts.push(matrix(value));
                }
                if to + step <= end {
                    let (value, n) = engine.range_query_expr(expr, to + step, end, step)?;
                    merge(&mut notes, n);
                    parts.push(matrix(value));
                }
                {
                    let mut inner = self.inner.lock().expect("results cache lock");
                    if parts.len() == 1 {
                        inner.stats.hits += 1;
                    } else {
                        inner.stats.partial_hits += 1;
                    }
                }
                (QueryValue::Matrix(join(parts)), notes)
            }
            None => {
                self.inner.lock().expect("results cache lock").stats.misses += 1;
                engine.range_query_expr(expr, start, end, step)?
            }
        };
        let clean = notes.warnings.is_empty() && notes.infos.is_empty() && !notes.partial;
        if let QueryValue::Matrix(series) = &value
            && clean
            && start <= until
        {
            self.keep(
                key,
                start,
                end.min(until),
                trim(series, start, until),
                epoch,
            );
        }
        Ok((value, notes))
    }

    fn keep(&self, key: CacheKey, from: i64, to: i64, series: Vec<Series>, epoch: u64) {
        let bytes = size_of(&key) + series.iter().map(series_bytes).sum::<usize>();
        if bytes > self.config.max_bytes / 4 {
            return;
        }
        let mut inner = self.inner.lock().expect("results cache lock");
        inner.tick += 1;
        let extent = Extent {
            from,
            to,
            series,
            epoch,
            bytes,
            last_used: inner.tick,
        };
        if let Some(old) = inner.extents.insert(key, extent) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        while inner.bytes > self.config.max_bytes {
            let Some(oldest) = inner
                .extents
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.extents.remove(&oldest) {
                inner.bytes -= e.bytes;
                inner.stats.evicted += 1;
            }
        }
    }
}

/// Whether each step of `expr` reads only samples at or before the step's
/// own time, wherever the range starts and ends (no `@`, no negative
/// `offset`). Walked without recursion.
pub fn cacheable(expr: &Expr) -> bool {
    let mut todo = vec![expr];
    while let Some(e) = todo.pop() {
        match e {
            Expr::VectorSelector(vs) => {
                if vs.at.is_some() || matches!(vs.offset, Some(Offset::Neg(_))) {
                    return false;
                }
            }
            Expr::MatrixSelector(ms) => {
                if ms.vs.at.is_some() || matches!(ms.vs.offset, Some(Offset::Neg(_))) {
                    return false;
                }
            }
            Expr::Subquery(sq) => {
                if sq.at.is_some() || matches!(sq.offset, Some(Offset::Neg(_))) {
                    return false;
                }
                todo.push(&sq.expr);
            }
            Expr::Aggregate(a) => {
                todo.push(&a.expr);
                if let Some(p) = &a.param {
                    todo.push(p);
                }
            }
            Expr::Unary(u) => todo.push(&u.expr),
            Expr::Binary(b) => {
                todo.push(&b.lhs);
                todo.push(&b.rhs);
            }
            Expr::Paren(p) => todo.push(&p.expr),
            Expr::Call(c) => todo.extend(c.args.args.iter().map(|a| &**a)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
            Expr::Extension(_) => return false,
        }
    }
    true
}

fn merge(notes: &mut Annotations, more: Annotations) {
    notes.warnings.extend(more.warnings);
    notes.infos.extend(more.infos);
    notes.partial |= more.partial;
}

fn matrix(value: QueryValue) -> Vec<Series> {
    match value {
        QueryValue::Matrix(series) => series,
        _ => Vec::new(),
    }
}

/// The series' points within `[from, to]`; series left without any dropped.
fn trim(series: &[Series], from: i64, to: i64) -> Vec<Series> {
    series
        .iter()
        .filter_map(|s| {
            let points: Vec<_> = s
                .points
                .iter()
                .filter(|p| p.t >= from && p.t <= to)
                .copied()
                .collect();
            let histograms: Vec<_> = s
                .histograms
                .iter()
                .filter(|p| p.t >= from && p.t <= to)
                .cloned()
                .collect();
            (!points.is_empty() || !histograms.is_empty()).then(|| Series {
                labels: s.labels.clone(),
                points,
                histograms,
            })
        })
        .collect()
}

/// Parts of one answer over disjoint step ranges, joined series by series
/// (by labels), each series' points in time order, series in label order
/// as the engine sorts them.
fn join(parts: Vec<Vec<Series>>) -> Vec<Series> {
    let mut by_labels: HashMap<Labels, Series> = HashMap::new();
    for part in parts {
        for s in part {
            match by_labels.get_mut(&s.labels) {
                Some(have) => {
                    have.points.extend(s.points);
                    have.histograms.extend(s.histograms);
                }
                None => {
                    by_labels.insert(s.labels.clone(), s);
                }
            }
        }
    }
    let mut out: Vec<Series> = by_labels.into_values().collect();
    for s in &mut out {
        s.points.sort_by_key(|p| p.t);
        s.histograms.sort_by_key(|p| p.t);
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

fn size_of(key: &CacheKey) -> usize {
    std::mem::size_of::<CacheKey>() + key.query.len() + key.tenant.as_ref().map_or(0, |t| t.len())
}

fn series_bytes(s: &Series) -> usize {
    let labels: usize = s
        .labels
        .iter()
        .map(|l| l.name.len() + l.value.len() + 32)
        .sum();
    std::mem::size_of::<Series>()
        + labels
        + s.points.len() * std::mem::size_of::<super::Point>()
        + s.histograms
            .iter()
            .map(|p| {
                let h = &p.h;
                64 + (h.positive_buckets.len() + h.negative_buckets.len()) * 24
                    + h.custom_values.len() * 8
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use sextant_model::{PromDuration, Sample};
    use sextant_storage::{MetricsReader, SeriesSamples, Tsdb, TsdbConfig, TsdbStats};

    use super::*;
    use crate::promql::{EngineOptions, parse};

    const MIN: i64 = 60_000;
    /// "Now" in these tests: four hours after the first sample.
    const NOW: i64 = 1_800_000_000_000;
    const START: i64 = NOW - 4 * 60 * MIN;

    fn store() -> (tempfile::TempDir, Arc<Tsdb>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TsdbConfig {
            // Late samples anywhere in these four hours are accepted.
            out_of_order_window: PromDuration::from_secs(6 * 3600),
            ..TsdbConfig::default()
        };
        let db = Tsdb::open(
            dir.path(),
            config,
            PromDuration::from_secs(30 * 86_400),
            Arc::new(TsdbStats::default()),
        )
        .expect("open");
        (dir, Arc::new(db))
    }

    fn write(db: &Tsdb, job: &str, samples: impl IntoIterator<Item = (i64, f64)>) {
        let labels = Labels::from_pairs([("__name__", "requests_total"), ("job", job)]);
        let samples = samples
            .into_iter()
            .map(|(timestamp_ms, value)| Sample {
                timestamp_ms,
                value,
            })
            .collect();
        let report = db
            .append(&[SeriesSamples { labels, samples }])
            .expect("append");
        assert!(report.rejected.is_empty(), "{report:?}");
    }

    /// A counter per job every 15 s from START to NOW, `rate` per job.
    fn filled() -> (tempfile::TempDir, Arc<Tsdb>) {
        let (dir, db) = store();
        for (job, per_step) in [("a", 1.0), ("b", 3.0)] {
            write(
                &db,
                job,
                (0..=4 * 240).map(|i| (START + i * 15_000, i as f64 * per_step)),
            );
        }
        (dir, db)
    }

    fn engine(db: &Arc<Tsdb>) -> Engine {
        let reader: Arc<dyn MetricsReader> = db.clone();
        Engine::new(reader, EngineOptions::default())
    }

    fn ask(cache: &ResultsCache, db: &Arc<Tsdb>, q: &str, start: i64, end: i64) -> Vec<Series> {
        let engine = engine(db);
        let key = ResultsCache::key(&engine, None, q, start, MIN);
        let (value, _) = cache
            .range_query(&engine, key, &parse(q).expect("parse"), start, end, NOW)
            .expect("query");
        matrix(value)
    }

    fn uncached(db: &Arc<Tsdb>, q: &str, start: i64, end: i64) -> Vec<Series> {
        matrix(
            engine(db)
                .range_query_expr(&parse(q).expect("parse"), start, end, MIN)
                .expect("query")
                .0,
        )
    }

    #[test]
    fn a_moved_window_is_answered_from_the_cache_and_equals_a_cold_answer() {
        let (_dir, db) = filled();
        let cache = ResultsCache::new(CacheConfig::default());
        let q = "sum by (job) (rate(requests_total[5m]))";
        let (start, end) = (START + 30 * MIN, NOW);
        let first = ask(&cache, &db, q, start, end);
        assert_eq!(first, uncached(&db, q, start, end));
        assert_eq!(first.len(), 2);
        assert_eq!(cache.stats().misses, 1);
        // A dashboard refresh: the window moved by two steps.
        let (start, end) = (start + 2 * MIN, end + 2 * MIN);
        let moved = ask(&cache, &db, q, start, end);
        assert_eq!(moved, uncached(&db, q, start, end));
        assert_eq!(cache.stats().partial_hits, 1);
        // Entirely within what is cached: nothing evaluated.
        let inside = ask(&cache, &db, q, start + 10 * MIN, start + 60 * MIN);
        assert_eq!(inside, uncached(&db, q, start + 10 * MIN, start + 60 * MIN));
        assert_eq!(cache.stats().hits, 1);
        assert!(cache.stats().bytes > 0);
    }

    #[test]
    fn late_samples_in_a_cached_range_are_seen() {
        let (_dir, db) = filled();
        let cache = ResultsCache::new(CacheConfig::default());
        let q = "sum(requests_total)";
        let (start, end) = (START, NOW);
        ask(&cache, &db, q, start, end);
        // A third job's samples arrive late, an hour into the cached range.
        write(
            &db,
            "c",
            (0..40).map(|i| (START + 60 * MIN + i * 15_000, 1000.0)),
        );
        let after = ask(&cache, &db, q, start, end);
        assert_eq!(after, uncached(&db, q, start, end));
        let at = |t: i64| after[0].points.iter().find(|p| p.t == t).map(|p| p.v);
        let before = at(START + 50 * MIN).expect("a point before the late samples");
        assert_eq!(
            at(START + 61 * MIN),
            Some(before + 1000.0 + 4.0 * 4.0 * 11.0)
        );
        assert_eq!(cache.stats().invalidated, 1);
        // Samples newer than anything cached leave the cache alone.
        write(&db, "a", [(NOW + 15_000, 99_999.0)]);
        ask(&cache, &db, q, start, end);
        assert_eq!(cache.stats().invalidated, 1);
        assert_eq!(cache.stats().hits + cache.stats().partial_hits, 1);
    }

    #[test]
    fn tenants_queries_and_options_never_share_answers() {
        let (_dir, db) = filled();
        let cache = ResultsCache::new(CacheConfig::default());
        let engine = engine(&db);
        let q = "requests_total";
        let a = ResultsCache::key(&engine, Some("a".into()), q, START, MIN);
        let b = ResultsCache::key(&engine, Some("b".into()), q, START, MIN);
        let none = ResultsCache::key(&engine, None, q, START, MIN);
        let shifted = ResultsCache::key(&engine, None, q, START + 1000, MIN);
        assert_ne!(a, b);
        assert_ne!(a, none);
        assert_ne!(none, shifted);
        let other_lookback = Engine::new(
            db,
            EngineOptions {
                lookback_delta_ms: MIN,
                ..EngineOptions::default()
            },
        );
        assert_ne!(
            none,
            ResultsCache::key(&other_lookback, None, q, START, MIN)
        );
        let expr = parse(q).expect("parse");
        cache
            .range_query(&engine, a, &expr, START, NOW, NOW)
            .expect("query");
        cache
            .range_query(&engine, b, &expr, START, NOW, NOW)
            .expect("query");
        assert_eq!(cache.stats().misses, 2);
    }

    #[test]
    fn at_and_negative_offsets_are_not_cached() {
        for q in [
            "x @ 100",
            "rate(x[5m] @ end())",
            "x offset -5m",
            "max_over_time(x[10m:1m] offset -1m)",
            "sum(x) / on() group_left sum(y @ start())",
        ] {
            assert!(!cacheable(&parse(q).expect("parse")), "{q}");
        }
        for q in [
            "x offset 5m",
            "rate(x[5m])",
            "max_over_time(rate(x[5m])[1h:1m])",
            "1",
        ] {
            assert!(cacheable(&parse(q).expect("parse")), "{q}");
        }
        let (_dir, db) = filled();
        let cache = ResultsCache::new(CacheConfig::default());
        ask(&cache, &db, "requests_total @ 1800000000", START, NOW);
        assert_eq!(cache.stats(), CacheStats::default());
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let (_dir, db) = filled();
        let cache = ResultsCache::new(CacheConfig {
            max_bytes: 64 << 10,
            freshness_ms: 5 * MIN,
        });
        for k in 0..20 {
            let q = format!("requests_total * {k}");
            assert_eq!(
                ask(&cache, &db, &q, START, NOW),
                uncached(&db, &q, START, NOW)
            );
        }
        let stats = cache.stats();
        assert!(stats.bytes <= 64 << 10, "{stats:?}");
        assert!(stats.evicted > 0, "{stats:?}");
    }
}
