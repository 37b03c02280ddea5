//! The PromQL conformance runner: executes Prometheus's own PromQL test files
//! from `$PROMQL_TESTDATA` (default `../shared/promql-testdata` beside the
//! checkout) through Sextant's storage and engine.
//!
//! Each file's `load` commands are appended to a fresh on-disk store, each
//! `eval` runs through [`Engine`], and the result is compared with the file's
//! expectation (floats equal within Prometheus's relative 1e-6, NaN equal to
//! NaN). The runner prints a table per file and lists every skipped case with
//! its reason; it fails if any case that is not skipped fails.
//!
//! Run one file: `PROMQL_FILE=functions.test cargo nextest run -p sextant-query promql`.
//!
//! Sextant's own cases, in the same format, follow the conformance test:
//! each pins a rule of Prometheus's engine that the shared files do not reach.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sextant_model::histogram::{
    ClassicHistogram, FloatHistogram, HistogramLiteral, HistogramSample, HistogramValue, Span,
};
use sextant_model::{Labels, PromDuration, Sample, stale_nan};
use sextant_query::promql::{Annotations, Engine, EngineOptions, QueryValue, Series};
use sextant_query::promqltest::{
    Command, EvalAt, EvalCase, MessageMatch, TestSeries, TestValue, parse_test_file,
};
use sextant_storage::{
    MetricsReader, SeriesHistograms, SeriesSamples, Tsdb, TsdbConfig, TsdbStats,
};

fn testdata_dir() -> PathBuf {
    std::env::var_os("PROMQL_TESTDATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/promql-testdata"),
        PathBuf::from,
    )
}

/// Functions and operators the engine leaves out on purpose, with why.
const NOT_SUPPORTED: &[(&str, &str)] = &[
    ("info(", "info() joins info metrics (experimental)"),
    // In Go the string literal "a\xc5z" is three bytes, not valid UTF-8,
    // and the error quotes the byte as `\xc5`; a Rust string cannot hold
    // that byte (the parser reads the escape as 'Å'), so the message differs.
    (
        r#"count_values("a\xc5z""#,
        "a string literal with a byte that is not UTF-8 cannot be represented",
    ),
];

struct Store {
    _dir: tempfile::TempDir,
    db: Arc<Tsdb>,
}

impl Store {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = TsdbConfig {
            out_of_order_window: PromDuration::from_secs(100 * 365 * 86_400),
            ..TsdbConfig::default()
        };
        let db = Tsdb::open(
            dir.path(),
            config,
            PromDuration::from_secs(1000 * 365 * 86_400),
            Arc::new(TsdbStats::default()),
        )
        .unwrap();
        Self {
            _dir: dir,
            db: Arc::new(db),
        }
    }

    fn load(&mut self, interval_ms: i64, native: bool, series: &[TestSeries]) {
        let mut batch = Vec::new();
        let mut histograms = Vec::new();
        for s in series {
            let mut samples = Vec::new();
            let mut hist_samples = Vec::new();
            for (i, v) in s.values.iter().enumerate() {
                let timestamp_ms = i as i64 * interval_ms;
                let value = match v {
                    TestValue::Float(f) => *f,
                    TestValue::Stale => stale_nan(),
                    TestValue::Missing => continue,
                    TestValue::Histogram(h) => {
                        hist_samples.push(HistogramSample {
                            timestamp_ms,
                            value: HistogramValue::Float(h.histogram.clone()),
                        });
                        continue;
                    }
                };
                samples.push(Sample {
                    timestamp_ms,
                    value,
                });
            }
            batch.push(SeriesSamples {
                labels: s.labels.clone(),
                samples,
            });
            if !hist_samples.is_empty() {
                histograms.push(SeriesHistograms {
                    labels: s.labels.clone(),
                    samples: hist_samples,
                });
            }
        }
        if native {
            histograms.extend(classic_to_native(interval_ms, series));
        }
        let report = self.db.append(&batch).unwrap();
        assert_eq!(
            report.rejected_total(),
            0,
            "load refused samples: {report:?}"
        );
        let report = self.db.append_histograms(&histograms).unwrap();
        assert_eq!(
            report.rejected_total(),
            0,
            "load refused histogram samples: {report:?}"
        );
    }
}

/// `load_with_nhcb`: every classic histogram (`_bucket` series with `le`,
/// `_count`, `_sum`) also loaded as a native histogram with custom buckets
/// named by the base name, as Prometheus's test loader does.
fn classic_to_native(interval_ms: i64, series: &[TestSeries]) -> Vec<SeriesHistograms> {
    let mut by_base: BTreeMap<Labels, BTreeMap<i64, ClassicHistogram>> = BTreeMap::new();
    for s in series {
        let name = s.labels.metric_name().unwrap_or_default();
        let (kind, base) = if let Some(b) = name.strip_suffix("_bucket") {
            ("bucket", b)
        } else if let Some(b) = name.strip_suffix("_sum") {
            ("sum", b)
        } else if let Some(b) = name.strip_suffix("_count") {
            ("count", b)
        } else {
            continue;
        };
        let le = if kind == "bucket" {
            match s
                .labels
                .get("le")
                .and_then(|le| sextant_query::promql::parse_go_float(le).ok())
            {
                Some(le) if !le.is_nan() => Some(le),
                _ => continue,
            }
        } else {
            None
        };
        let key = s
            .labels
            .with(sextant_model::METRIC_NAME, base)
            .filter(|n| n != "le");
        let at = by_base.entry(key).or_default();
        for (i, v) in s.values.iter().enumerate() {
            let TestValue::Float(f) = v else { continue };
            let h = at.entry(i as i64 * interval_ms).or_default();
            match (kind, le) {
                ("bucket", Some(le)) => h.set_bucket_count(le, *f),
                ("count", _) => h.set_count(*f),
                _ => h.set_sum(*f),
            }
        }
    }
    by_base
        .into_iter()
        .map(|(labels, at)| SeriesHistograms {
            samples: at
                .into_iter()
                .map(|(timestamp_ms, h)| HistogramSample {
                    timestamp_ms,
                    value: HistogramValue::Float(
                        h.convert()
                            .unwrap_or_else(|e| panic!("{labels}: {e}"))
                            .to_float(),
                    ),
                })
                .collect(),
            labels,
        })
        .collect()
}

/// Spans equal once zero-length spans are folded into the next (Prometheus's `spansMatch`).
fn spans_match(a: &[Span], b: &[Span]) -> bool {
    let fold = |spans: &[Span]| -> Vec<Span> {
        let mut out = Vec::new();
        let mut carry = 0;
        for s in spans {
            if s.length == 0 {
                carry += s.offset;
                continue;
            }
            out.push(Span {
                offset: s.offset + carry,
                length: s.length,
            });
            carry = 0;
        }
        out
    };
    fold(a) == fold(b)
}

fn buckets_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| almost_equal(*x, *y))
}

/// Prometheus's `compareNativeHistogram` on both histograms compacted.
fn histograms_match(expected: &HistogramLiteral, got: &FloatHistogram) -> bool {
    let mut exp = expected.histogram.clone();
    let mut cur = got.clone();
    if exp.compact(0).is_err() || cur.compact(0).is_err() {
        return false;
    }
    exp.schema == cur.schema
        && almost_equal(exp.count, cur.count)
        && almost_equal(exp.sum, cur.sum)
        && (!exp.uses_custom_buckets() || exp.custom_values == cur.custom_values)
        && exp.zero_threshold == cur.zero_threshold
        && almost_equal(exp.zero_count, cur.zero_count)
        && spans_match(&exp.negative_spans, &cur.negative_spans)
        && buckets_match(&exp.negative_buckets, &cur.negative_buckets)
        && spans_match(&exp.positive_spans, &cur.positive_spans)
        && buckets_match(&exp.positive_buckets, &cur.positive_buckets)
        && (!expected.counter_reset_hint_set || exp.counter_reset_hint == cur.counter_reset_hint)
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let abs_sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < 1e-6
}

/// Expected points of a series: `(t, value)` for each value that is not `_`.
fn expected_points(s: &TestSeries, start: i64, step: i64) -> Vec<(i64, f64)> {
    s.values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            TestValue::Float(f) => Some((start + i as i64 * step, *f)),
            _ => None,
        })
        .collect()
}

/// Expected histogram points of a series.
fn expected_histograms(s: &TestSeries, start: i64, step: i64) -> Vec<(i64, &HistogramLiteral)> {
    s.values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            TestValue::Histogram(h) => Some((start + i as i64 * step, &**h)),
            _ => None,
        })
        .collect()
}

fn compare_matrix(
    expected: &[TestSeries],
    actual: &[Series],
    start: i64,
    step: i64,
) -> Result<(), String> {
    for s in expected {
        let Some(got) = actual.iter().find(|g| g.labels == s.labels) else {
            continue;
        };
        let want = expected_histograms(s, start, step);
        let same = want.len() == got.histograms.len()
            && want
                .iter()
                .zip(&got.histograms)
                .all(|(w, g)| w.0 == g.t && histograms_match(w.1, &g.h));
        if !same {
            return Err(format!(
                "{}: expected histograms {:?}, got {:?}",
                s.labels,
                want.iter()
                    .map(|(t, h)| format!("{t}: {}", h.histogram))
                    .collect::<Vec<_>>(),
                got.histograms
                    .iter()
                    .map(|p| format!("{}: {}", p.t, p.h))
                    .collect::<Vec<_>>()
            ));
        }
    }
    let expected: Vec<(&Labels, Vec<(i64, f64)>)> = expected
        .iter()
        .filter(|s| s.has_histograms() || !expected_points(s, start, step).is_empty())
        .map(|s| (&s.labels, expected_points(s, start, step)))
        .collect();
    if expected.len() != actual.len() {
        return Err(format!(
            "expected {} series, got {}: {}",
            expected.len(),
            actual.len(),
            actual
                .iter()
                .map(|s| s.labels.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (labels, points) in &expected {
        let Some(got) = actual.iter().find(|s| &s.labels == *labels) else {
            return Err(format!("missing series {labels}"));
        };
        let got: Vec<(i64, f64)> = got.points.iter().map(|p| (p.t, p.v)).collect();
        let same = got.len() == points.len()
            && got
                .iter()
                .zip(points)
                .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
        if !same {
            return Err(format!("{labels}: expected {points:?}, got {got:?}"));
        }
    }
    Ok(())
}

/// Prometheus appends the expression's position, `(1:25)`, to each message;
/// Sextant's parser gives no positions, so messages are compared without it.
fn without_position(text: &str) -> &str {
    match text.rfind(" (") {
        Some(i) if text.ends_with(')') && text[i + 2..text.len() - 1].contains(':') => &text[..i],
        _ => text,
    }
}

fn regex_without_position(pattern: &str) -> &str {
    for tail in [r" \([0-9]+:[0-9]+\)", r" \(1:21\)"] {
        if let Some(p) = pattern.strip_suffix(tail) {
            return p;
        }
    }
    pattern
}

/// Checks one kind of annotation (warnings or infos) against the case.
fn check_annotations(
    kind: &str,
    expected: Option<bool>,
    message: Option<&MessageMatch>,
    got: &[String],
) -> Result<(), String> {
    match expected {
        Some(true) if got.is_empty() => Err(format!("expected a {kind}, got none")),
        Some(false) if !got.is_empty() => Err(format!("expected no {kind}, got {got:?}")),
        _ => {
            let matched = match message {
                None => true,
                Some(MessageMatch::Exact(m)) => got.iter().any(|g| g == without_position(m)),
                Some(MessageMatch::Regex(r)) => {
                    let re = regex::Regex::new(&format!("^(?:{})$", regex_without_position(r)))
                        .map_err(|e| e.to_string())?;
                    got.iter().any(|g| re.is_match(g))
                }
            };
            if matched {
                Ok(())
            } else {
                Err(format!("expected {kind} {message:?}, got {got:?}"))
            }
        }
    }
}

fn check(
    case: &EvalCase,
    result: sextant_query::Result<(QueryValue, Annotations)>,
) -> Result<(), String> {
    if let Some(fail) = &case.expect.fail {
        let err = match result {
            Ok(v) => return Err(format!("expected an error, got {v:?}")),
            Err(e) => e.to_string(),
        };
        return match fail {
            None => Ok(()),
            Some(pattern) if case.expect.fail_is_regex => {
                let re = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
                if re.is_match(&err) {
                    Ok(())
                } else {
                    Err(format!("error {err:?} does not match /{pattern}/"))
                }
            }
            Some(msg) => {
                if err.contains(msg.as_str()) {
                    Ok(())
                } else {
                    Err(format!("error {err:?}, expected {msg:?}"))
                }
            }
        };
    }
    let (result, annotations) = result.map_err(|e| format!("unexpected error: {e}"))?;
    check_annotations(
        "warning",
        case.expect.warn,
        case.expect.warn_message.as_ref(),
        &annotations.warnings,
    )?;
    check_annotations(
        "info",
        case.expect.info,
        case.expect.info_message.as_ref(),
        &annotations.infos,
    )?;
    if let Some(s) = &case.expect.string {
        return match result {
            QueryValue::String { v, .. } if &v == s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    if let Some(x) = case.expect.scalar {
        return match result {
            QueryValue::Scalar { v, .. } if almost_equal(v, x) => Ok(()),
            // A range query of a scalar gives one series without labels.
            QueryValue::Matrix(m) if matches!(case.at, EvalAt::Range { .. }) => {
                if m.len() == 1 && m[0].points.iter().all(|p| almost_equal(p.v, x)) {
                    Ok(())
                } else {
                    Err(format!("expected scalar {x}, got {m:?}"))
                }
            }
            other => Err(format!("expected scalar {x}, got {other:?}")),
        };
    }
    match (case.at, result) {
        (EvalAt::Instant(t), QueryValue::Vector(got)) => {
            if case.expect.range_vector.is_some() {
                return Err(format!("expected a range vector, got vector {got:?}"));
            }
            let expected: Vec<(&Labels, &TestValue)> = case
                .series
                .iter()
                .filter_map(|s| match s.values.first() {
                    Some(v @ (TestValue::Float(_) | TestValue::Histogram(_))) => {
                        Some((&s.labels, v))
                    }
                    _ => None,
                })
                .collect();
            if expected.len() != got.len() {
                return Err(format!(
                    "expected {} samples, got {}: {}",
                    expected.len(),
                    got.len(),
                    got.iter()
                        .map(|s| match &s.histogram {
                            Some(h) => format!("{} {h}", s.labels),
                            None => format!("{} {}", s.labels, s.v),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for (i, (labels, v)) in expected.iter().enumerate() {
                let found = if case.expect.ordered {
                    Some(&got[i]).filter(|g| &g.labels == *labels)
                } else {
                    got.iter().find(|g| &g.labels == *labels)
                };
                let Some(g) = found else {
                    return Err(format!("missing {labels} (position {i})"));
                };
                let same = g.t == t
                    && match (v, &g.histogram) {
                        (TestValue::Float(v), None) => almost_equal(g.v, *v),
                        (TestValue::Histogram(h), Some(got)) => histograms_match(h, got),
                        _ => false,
                    };
                if !same {
                    let got = match &g.histogram {
                        Some(h) => h.to_string(),
                        None => g.v.to_string(),
                    };
                    let want = match v {
                        TestValue::Histogram(h) => h.histogram.to_string(),
                        other => format!("{other:?}"),
                    };
                    return Err(format!("{labels}: expected {want}, got {got} at {}", g.t));
                }
            }
            Ok(())
        }
        (EvalAt::Instant(_), QueryValue::Matrix(got)) => {
            let Some((from, _, step)) = case.expect.range_vector else {
                return Err(format!("expected a vector, got matrix {got:?}"));
            };
            compare_matrix(&case.series, &got, from, step)
        }
        (EvalAt::Range { start, step, .. }, QueryValue::Matrix(got)) => {
            compare_matrix(&case.series, &got, start, step)
        }
        (_, other) => Err(format!("unexpected result {other:?}")),
    }
}

/// Why a case is skipped, if it is.
fn skip_reason(case: &EvalCase) -> Option<String> {
    if let Some(reason) = case.unsupported() {
        return Some(reason.into());
    }
    for (needle, why) in NOT_SUPPORTED {
        if case.expr.contains(needle) {
            return Some((*why).into());
        }
    }
    None
}

#[derive(Default)]
struct FileReport {
    passed: usize,
    failed: Vec<String>,
    skipped: Vec<String>,
}

fn run_file(text: &str, options: &EngineOptions) -> FileReport {
    let commands = parse_test_file(text).unwrap();
    let mut report = FileReport::default();
    let mut store = Store::new();
    for command in commands {
        match command {
            Command::Clear => store = Store::new(),
            Command::Load {
                interval_ms,
                native_histograms,
                series,
                ..
            } => store.load(interval_ms, native_histograms, &series),
            Command::Eval(case) => {
                if let Some(reason) = skip_reason(&case) {
                    report
                        .skipped
                        .push(format!("line {}: {} ({reason})", case.line, case.expr));
                    continue;
                }
                let reader: Arc<dyn MetricsReader> = store.db.clone();
                let engine = Engine::new(reader, options.clone());
                let result = match case.at {
                    EvalAt::Instant(t) => engine.instant_query_annotated(&case.expr, t),
                    EvalAt::Range { start, end, step } => {
                        engine.range_query_annotated(&case.expr, start, end, step)
                    }
                };
                match check(&case, result) {
                    Ok(()) => report.passed += 1,
                    Err(why) => report
                        .failed
                        .push(format!("line {}: {}\n      {why}", case.line, case.expr)),
                }
            }
        }
    }
    report
}

#[test]
fn promql_conformance() {
    let dir = testdata_dir();
    let only = std::env::var("PROMQL_FILE").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {} (set PROMQL_TESTDATA): {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .filter(|p| {
            only.as_ref()
                .is_none_or(|o| p.file_name().is_some_and(|n| n == o.as_str()))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let mut out = String::new();
    let mut total_failed = 0;
    let mut total_passed = 0;
    out.push_str(&format!(
        "{:<24} {:>7} {:>7} {:>8}\n",
        "file", "passed", "failed", "skipped"
    ));
    let mut details = String::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        // Every eval of the file is accounted for by the parser.
        let written = text.lines().filter(|l| l.starts_with("eval")).count();
        let report = run_file(&text, &prometheus_test_options());
        assert_eq!(
            report.passed + report.failed.len() + report.skipped.len(),
            written,
            "{name}: an eval was lost"
        );
        out.push_str(&format!(
            "{name:<24} {:>7} {:>7} {:>8}\n",
            report.passed,
            report.failed.len(),
            report.skipped.len()
        ));
        total_failed += report.failed.len();
        total_passed += report.passed;
        for s in &report.skipped {
            details.push_str(&format!("{name}: SKIP {s}\n"));
        }
        for f in &report.failed {
            details.push_str(&format!("{name}: FAIL {f}\n"));
        }
    }
    out.push_str(&format!(
        "total passed {total_passed}, failed {total_failed}\n"
    ));
    // Shown with --nocapture, and on failure.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr().lock(),
        format!("{details}\n{out}").as_bytes(),
    );
    assert_eq!(
        total_failed, 0,
        "PromQL conformance failures:\n{details}\n{out}"
    );
}

/// The engine as Prometheus's `promqltest` sets it up: delayed name removal on.
fn prometheus_test_options() -> EngineOptions {
    EngineOptions {
        delayed_name_removal: true,
        ..EngineOptions::default()
    }
}

/// Runs cases written in the test-file format; fails listing every case that failed.
fn assert_cases(text: &str, options: &EngineOptions) {
    let report = run_file(text, options);
    assert!(
        report.failed.is_empty() && report.skipped.is_empty(),
        "failed:\n{}\nskipped:\n{}",
        report.failed.join("\n"),
        report.skipped.join("\n")
    );
    assert!(report.passed > 0, "no case ran");
}

/// A comparison does not hide invalid vector matching: Prometheus checks the
/// matching before the comparison filters the result.
#[test]
fn comparisons_fail_on_invalid_matching_even_when_nothing_passes() {
    assert_cases(
        r#"
load 1m
    reqs{job="api", instance="a"} 1
    reqs{job="api", instance="b"} 2
    limit{job="api", tier="x"} 100
    limit{job="api", tier="y"} 200
    cap{job="api"} 100
    m{job="api", tier="p"} 1
    m{job="api", tier="q"} 2

eval_fail instant at 0m reqs > on(job) limit
    expect fail msg: found duplicate series for the match group {job="api"} on the right hand-side of the operation: [{__name__="limit", job="api", tier="x"}, {__name__="limit", job="api", tier="y"}];many-to-many matching not allowed: matching labels must be unique on one side

eval_fail instant at 0m reqs > ignoring(instance, tier) limit
    expect fail msg: found duplicate series for the match group {job="api"} on the right hand-side of the operation

eval_fail instant at 0m limit < on(job) group_right cap
    expect fail msg: found duplicate series for the match group {job="api"} on the left hand-side of the operation

eval_fail instant at 0m reqs > on(job) cap
    expect fail msg: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)

eval_fail instant at 0m reqs > ignoring(instance) cap
    expect fail msg: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)

eval_fail range from 0 to 2m step 1m reqs >= on(job) cap
    expect fail msg: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)

eval_fail instant at 0m m > on(job) group_left(tier) limit{tier="x"}
    expect fail msg: multiple matches for labels: grouping labels must ensure unique matches

eval instant at 0m reqs > on(job) group_left cap
"#,
        &EngineOptions::default(),
    );
}

/// Matching is only checked where both sides have samples: a side that is
/// empty at a step matches nothing there, so its duplicates do not matter.
#[test]
fn matching_is_checked_only_where_both_sides_have_samples() {
    assert_cases(
        r#"
load 1m
    early{job="api"} 1 1 stale
    dup{job="api", copy="1"} _ _ 5 5
    dup{job="api", copy="2"} _ _ 6 6

eval range from 0 to 3m step 1m early > on(job) dup

eval_fail range from 0 to 3m step 1m (early or dup) > on(job) dup
    expect fail msg: found duplicate series for the match group {job="api"}

eval_fail instant at 2m dup + ignoring(copy) dup
    expect fail msg: found duplicate series for the match group {job="api"} on the right hand-side of the operation: [{__name__="dup", copy="1", job="api"}, {__name__="dup", copy="2", job="api"}]
"#,
        &EngineOptions::default(),
    );
}

/// Series in messages print as Go's `labels.Labels`: the name as a label,
/// pairs joined by ", ", values quoted by `strconv.Quote`; the two series of
/// a duplicate pair in the order of their printed form.
#[test]
fn messages_print_label_sets_as_prometheus() {
    assert_cases(
        r#"
load 1m
    left{job="a"} 1
    right{job="a", path="/b\"q\\"} 1
    right{job="a", path="/a\tb"} 1

eval_fail instant at 0m left / on(job) {__name__=~"right.*"}
    expect fail msg: found duplicate series for the match group {job="a"} on the right hand-side of the operation: [{__name__="right", job="a", path="/a\tb"}, {__name__="right", job="a", path="/b\"q\\"}]
"#,
        &EngineOptions::default(),
    );
}

/// `topk`/`bottomk` choose among equal values as Prometheus's heap does, not
/// as a stable sort would, and order what they keep as Go's sort leaves it.
#[test]
fn topk_and_bottomk_break_ties_as_prometheus() {
    assert_cases(
        r#"
load 1m
    score{id="a"} 5
    score{id="b"} 5
    score{id="c"} 6
    score{id="d"} 5
    lat{id="a", job="x"} 5
    lat{id="b", job="x"} 5
    lat{id="c", job="x"} 4
    lat{id="d", job="x"} 5
    lat{id="e", job="y"} NaN
    lat{id="f", job="y"} NaN
    lat{id="g", job="y"} 1

eval_ordered instant at 0m topk(2, score)
    score{id="c"} 6
    score{id="b"} 5

eval_ordered instant at 0m bottomk(2, score)
    score{id="a"} 5
    score{id="b"} 5

eval_ordered instant at 0m bottomk by (job) (2, lat)
    lat{id="c", job="x"} 4
    lat{id="b", job="x"} 5
    lat{id="g", job="y"} 1
    lat{id="e", job="y"} NaN

eval_ordered instant at 0m topk(1, lat{job="y"})
    lat{id="g", job="y"} 1

eval range from 0 to 2m step 1m topk(2, score)
    score{id="c"} 6 6 6
    score{id="b"} 5 5 5

eval_ordered instant at 0m topk(9, score)
    score{id="c"} 6
    score{id="a"} 5
    score{id="b"} 5
    score{id="d"} 5
"#,
        &EngineOptions::default(),
    );
}

/// With delayed name removal, functions only mark the name to be dropped: a
/// later `label_replace`/`label_join` can read it (and keep it by writing
/// it), `by (__name__)` still groups by it, and names collide only at the end.
#[test]
fn delayed_name_removal_keeps_the_name_until_the_end() {
    let cases = r#"
load 1m
    hits_total{job="a"} 0+60x5
    misses_total{job="a"} 0+120x5
    temp{job="b"} -3x5

eval instant at 5m label_replace(rate(hits_total[5m]), "src", "$1", "__name__", "(.+)")
    {job="a", src="hits_total"} 1

eval instant at 5m label_join(abs(temp), "what", "-", "__name__", "job")
    {job="b", what="temp-b"} 3

eval instant at 5m label_replace(rate(hits_total[5m]), "__name__", "per_second_$1", "__name__", "(.+)")
    per_second_hits_total{job="a"} 1

eval instant at 5m label_replace(rate(hits_total[5m]), "__name__", "x", "job", "nomatch")
    {job="a"} 1

eval instant at 5m sum by (__name__) (rate({__name__=~".+_total"}[5m]))
    expect fail msg: vector cannot contain metrics with the same labelset

eval instant at 5m sum by (__name__) (temp or rate(hits_total[5m]))
    temp -3
    {} 1

eval instant at 5m sum by (__name__) (label_replace(rate(hits_total[5m]), "__name__", "$1", "__name__", "(.+)") or temp)
    hits_total 1
    temp -3

eval instant at 5m sum by (job) (rate({__name__=~".+_total"}[5m]))
    {job="a"} 3

eval instant at 5m topk by (__name__) (1, rate({__name__=~".+_total"}[5m]))
    expect fail msg: vector cannot contain metrics with the same labelset

eval instant at 5m -{__name__=~".+_total"}
    expect fail msg: vector cannot contain metrics with the same labelset

eval range from 0 to 5m step 1m -hits_total or -misses_total
    {job="a"} 0 -60 -120 -180 -240 -300

eval instant at 5m last_over_time(rate(hits_total[2m])[3m:1m])
    {job="a"} 1

eval instant at 5m last_over_time(hits_total[3m])
    hits_total{job="a"} 300

eval instant at 5m hits_total > bool on(job) rate(hits_total[5m])
    {job="a"} 1
"#;
    assert_cases(cases, &prometheus_test_options());
}

/// Without delayed name removal (Prometheus 3's default) the name goes as
/// soon as a function drops it.
#[test]
fn names_drop_at_once_by_default() {
    let cases = r#"
load 1m
    hits_total{job="a"} 0+60x5
    misses_total{job="b"} 0+120x5
    temp{job="a"} 1x5

eval instant at 5m label_replace(rate(hits_total[5m]), "src", "$1", "__name__", "(.+)")
    {job="a"} 1

eval instant at 5m sum by (__name__) (rate({__name__=~".+_total"}[5m]))
    {} 3

eval instant at 5m sum by (__name__) (temp or rate(misses_total[5m]))
    temp 1
    {} 2

eval_fail instant at 5m -{job="a"}
    expect fail msg: vector cannot contain metrics with the same labelset
"#;
    assert_cases(cases, &EngineOptions::default());
}

/// Native histograms: a counter reset inside a rate window, the operations
/// that keep a histogram (`*`, `/`, `+` of two) and those that drop it with
/// Prometheus's info, a mix of floats and histograms in `sum`, staleness,
/// and the API-visible values Prometheus gives for each.
#[test]
fn native_histograms_follow_prometheus() {
    assert_cases(
        r#"
load 1m
    reqs_total {{schema:0 count:4 sum:8 buckets:[4]}} {{schema:0 count:8 sum:16 buckets:[8]}} {{schema:0 count:2 sum:4 buckets:[2]}} {{schema:0 count:6 sum:12 buckets:[6]}}
    mixed{kind="h"} {{schema:0 count:1 sum:1 buckets:[1]}}
    mixed{kind="f"} 3
    gone {{schema:0 count:1 sum:2 buckets:[1]}} stale

# The window holds 8, 2 (a reset), 6. As in Prometheus, a reset right after
# the first sample leaves the first out: the increase is 6, extrapolated by
# half a minute to the window's start: 6 * 180 / 120 = 9.
eval instant at 3m increase(reqs_total[3m])
    {} {{schema:0 count:9 sum:18 buckets:[9] counter_reset_hint:gauge}}

eval instant at 3m resets(reqs_total[4m])
    {} 1

eval instant at 0m reqs_total * 2
    {} {{schema:0 count:8 sum:16 buckets:[8]}}

eval instant at 0m 0.5 * reqs_total
    {} {{schema:0 count:2 sum:4 buckets:[2]}}

eval instant at 0m reqs_total / 4
    {} {{schema:0 count:1 sum:2 buckets:[1]}}

eval instant at 1m reqs_total + reqs_total offset 1m
    {} {{schema:0 count:12 sum:24 buckets:[12]}}

eval instant at 0m reqs_total + 1
    expect info msg: PromQL info: incompatible sample types encountered for binary operator "+": histogram + float

eval instant at 0m reqs_total > 1
    expect info msg: PromQL info: incompatible sample types encountered for binary operator ">": histogram > float

eval instant at 0m sum(mixed)
    expect warn msg: PromQL warning: encountered a mix of histograms and floats for aggregation

eval instant at 0m count(mixed)
    {} 2

eval instant at 0m max(mixed)
    expect info msg: PromQL info: ignored histogram in max aggregation
    {} 3

eval instant at 0m histogram_count(mixed)
    {kind="h"} 1

eval instant at 0m gone
    gone {{schema:0 count:1 sum:2 buckets:[1]}}

eval instant at 1m gone

eval range from 0 to 2m step 1m timestamp(gone)
    {} 0 _ _

eval instant at 3m sum_over_time(reqs_total[2m])
    {} {{schema:0 count:8 sum:16 buckets:[8]}}

eval instant at 3m last_over_time(reqs_total[2m])
    reqs_total {{schema:0 count:6 sum:12 buckets:[6]}}
"#,
        &prometheus_test_options(),
    );
}
