//! The depth budget against the stack: every shape of nesting, as deep as
//! `query.max_depth` lets it be, parses, prints and evaluates on a thread
//! with the stack `depth::stack_size` gives query threads; one level more is
//! refused with an error that names the setting. A test binary is a debug
//! build, whose frames are larger than a release build's, so this is the
//! worst case of the stack the server's threads get.

use std::sync::Arc;

use sextant_model::{PromDuration, depth};
use sextant_query::promql::{Engine, EngineOptions, QueryValue};
use sextant_storage::{Tsdb, TsdbConfig, TsdbStats};

fn engine(dir: &std::path::Path) -> Engine {
    let db = Tsdb::open(
        dir,
        TsdbConfig::default(),
        PromDuration::from_secs(86_400),
        Arc::new(TsdbStats::default()),
    )
    .unwrap();
    Engine::new(Arc::new(db), EngineOptions::default())
}

/// `open` repeated `n` times around `inner`, each closed by `close`.
fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

fn value_of(v: &QueryValue) -> f64 {
    match v {
        QueryValue::Scalar { v, .. } => *v,
        QueryValue::Vector(s) if s.len() == 1 => s[0].v,
        other => panic!("not one number: {other:?}"),
    }
}

/// The deepest query of each shape within `max`, with its value.
fn deepest(max: usize) -> Vec<(&'static str, String, f64)> {
    vec![
        ("nested sum", nest("sum(", "vector(1)", ")", max - 2), 1.0),
        ("nested parens", nest("(", "1", ")", max - 1), 1.0),
        ("nested abs", nest("abs(", "vector(1)", ")", max - 2), 1.0),
        ("+ chain", vec!["1"; max].join("+"), max as f64),
        ("or chain", vec!["vector(1)"; max / 2].join(" or "), 1.0),
        (
            "nested subqueries",
            nest("max_over_time(", "vector(1)", "[1m:1m])", max / 2 - 2),
            1.0,
        ),
        (
            "parens around a chain in each",
            nest("(1*", "1", ")", max / 2 - 1),
            1.0,
        ),
    ]
}

#[test]
fn the_deepest_allowed_queries_fit_the_query_stack() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let max = depth::max_depth();
    assert_eq!(max, depth::DEFAULT_MAX_DEPTH);
    let queries = deepest(max);
    std::thread::Builder::new()
        .stack_size(depth::stack_size())
        .spawn(move || {
            for (shape, query, expected) in queries {
                let expr =
                    sextant_query::promql::parse(&query).unwrap_or_else(|e| panic!("{shape}: {e}"));
                // What format_query and error messages do with a tree.
                assert!(!expr.prettify().is_empty());
                assert!(!expr.to_string().is_empty());
                drop(expr);
                let instant = engine
                    .instant_query(&query, 60_000)
                    .unwrap_or_else(|e| panic!("{shape}: {e}"));
                assert_eq!(value_of(&instant), expected, "{shape}");
                let range = engine
                    .range_query(&query, 0, 600_000, 60_000)
                    .unwrap_or_else(|e| panic!("{shape}: {e}"));
                let QueryValue::Matrix(series) = range else {
                    panic!("{shape}: not a matrix")
                };
                assert_eq!(series.len(), 1, "{shape}");
                assert_eq!(series[0].points.len(), 11, "{shape}");
            }
        })
        .unwrap()
        .join()
        .expect("a query within the budget overflowed the query stack");
}

#[test]
fn one_level_more_is_refused_by_name() {
    let max = depth::max_depth();
    for (shape, query) in [
        ("nested sum", nest("sum(", "up", ")", max)),
        ("nested parens", nest("(", "1", ")", max)),
        ("+ chain", vec!["1"; max + 1].join("+")),
        ("or chain", vec!["up"; max + 1].join(" or ")),
        ("nested abs, 20,000", nest("abs(", "up", ")", 20_000)),
    ] {
        let err = sextant_query::promql::parse(&query)
            .unwrap_err()
            .to_string();
        assert!(err.contains("query.max_depth"), "{shape}: {err}");
    }
    let long = format!("up{{a=\"{}\"}}", "x".repeat(depth::max_query_bytes()));
    let err = sextant_query::promql::parse(&long).unwrap_err().to_string();
    assert!(err.contains("query.max_query_bytes"), "{err}");
}
