//! Engine behaviour the Prometheus test files do not pin down: `limit_ratio`'s
//! split, and the limits that stop a query instead of letting it grow.

use std::sync::Arc;
use std::time::Duration;

use sextant_model::{Labels, PromDuration, Sample};
use sextant_query::Error;
use sextant_query::promql::{Engine, EngineOptions, QueryValue};
use sextant_storage::{SeriesSamples, Tsdb, TsdbConfig, TsdbStats};

/// 200 series `x{i="0".."199"}`, one sample a minute for an hour.
fn store(dir: &std::path::Path) -> Arc<Tsdb> {
    let db = Tsdb::open(
        dir,
        TsdbConfig::default(),
        PromDuration::from_secs(365 * 86_400),
        Arc::new(TsdbStats::default()),
    )
    .unwrap();
    let batch: Vec<SeriesSamples> = (0..200)
        .map(|i| SeriesSamples {
            labels: Labels::from_pairs([("__name__", "x".to_string()), ("i", i.to_string())]),
            samples: (0..60)
                .map(|m| Sample {
                    timestamp_ms: m * 60_000,
                    value: (i * m) as f64,
                })
                .collect(),
        })
        .collect();
    db.append(&batch).unwrap();
    Arc::new(db)
}

fn labels_of(value: QueryValue) -> Vec<String> {
    let QueryValue::Vector(v) = value else {
        panic!("not a vector: {value:?}")
    };
    let mut out: Vec<String> = v.iter().map(|s| s.labels.to_string()).collect();
    out.sort();
    out
}

#[test]
fn limit_ratio_splits_a_vector_in_two_stable_halves() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(store(dir.path()), EngineOptions::default());
    let at = 30 * 60_000;
    let kept = labels_of(engine.instant_query("limit_ratio(0.3, x)", at).unwrap());
    let rest = labels_of(engine.instant_query("limit_ratio(-0.7, x)", at).unwrap());
    // Roughly the ratio, disjoint, and together everything.
    assert!(
        (30..=90).contains(&kept.len()),
        "{} of 200 kept",
        kept.len()
    );
    assert!(kept.iter().all(|l| !rest.contains(l)));
    assert_eq!(kept.len() + rest.len(), 200);
    // The same series at another time: the choice depends on labels only.
    assert_eq!(
        kept,
        labels_of(
            engine
                .instant_query("limit_ratio(0.3, x)", at + 600_000)
                .unwrap()
        )
    );
    assert!(labels_of(engine.instant_query("limit_ratio(0, x)", at).unwrap()).is_empty());
    assert_eq!(
        labels_of(engine.instant_query("limit_ratio(1, x)", at).unwrap()).len(),
        200
    );
    let err = engine.instant_query("limit_ratio(NaN, x)", at).unwrap_err();
    assert_eq!(err.to_string(), "Ratio value is NaN");
}

#[test]
fn a_query_over_its_sample_budget_fails_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        max_samples: 5_000,
        ..EngineOptions::default()
    };
    let engine = Engine::new(store(dir.path()), options);
    // 200 series x 60 samples = 12k raw samples over the budget of 5k...
    let err = engine.range_query("x", 0, 3_540_000, 60_000).unwrap_err();
    assert!(matches!(err, Error::TooManySamples(5_000)), "{err}");
    // ...while an aggregate over a short window stays within it.
    engine.instant_query("sum(rate(x[5m]))", 1_800_000).unwrap();
}

#[test]
fn a_query_past_its_deadline_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        timeout: Duration::from_nanos(1),
        ..EngineOptions::default()
    };
    let engine = Engine::new(store(dir.path()), options);
    let err = engine
        .range_query("rate(x[5m])", 0, 3_540_000, 60_000)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
}

#[test]
fn hints_come_back_as_prometheus_words_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(store(dir.path()), EngineOptions::default());
    let (_, notes) = engine
        .instant_query_annotated("rate(x[5m])", 1_800_000)
        .unwrap();
    assert_eq!(
        notes.infos,
        [
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\""
        ]
    );
    assert!(notes.warnings.is_empty());
    let (_, notes) = engine
        .range_query_annotated("sort(quantile(1.5, x))", 0, 600_000, 60_000)
        .unwrap();
    assert_eq!(
        notes.warnings,
        [
            "PromQL warning: quantile value should be between 0 and 1, got 1.5",
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels",
        ]
    );
    let (_, notes) = engine.instant_query_annotated("sum(x)", 1_800_000).unwrap();
    assert_eq!(notes, Default::default());
}
