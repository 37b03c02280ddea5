//! PromQL: any text either fails to parse with an error or evaluates (to a
//! value or an error) over a small store, as an instant and a range query;
//! nothing panics, and nothing recurses past the depth budget (see
//! `sextant_fuzz`).

#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use sextant_model::{Labels, Matcher, Sample};
use sextant_query::promql::{Engine, EngineOptions};
use sextant_storage::{MetricMetadata, MetricsReader, Result, SeriesSamples};

/// Three series over ten minutes, one a histogram bucket.
struct Fixed(Vec<SeriesSamples>);

impl MetricsReader for Fixed {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>> {
        Ok(self
            .0
            .iter()
            .filter(|s| s.labels.matches(matchers))
            .map(|s| SeriesSamples {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|p| p.timestamp_ms >= mint && p.timestamp_ms <= maxt)
                    .copied()
                    .collect(),
            })
            .collect())
    }
    fn series(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<Labels>> {
        Ok(Vec::new())
    }
    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn metadata(&self) -> BTreeMap<String, MetricMetadata> {
        BTreeMap::new()
    }
}

fn store() -> Fixed {
    let series = |pairs: &[(&str, &str)], f: fn(i64) -> f64| SeriesSamples {
        labels: Labels::from_pairs(pairs.iter().copied()),
        samples: (0..40)
            .map(|i| Sample {
                timestamp_ms: i * 15_000,
                value: f(i),
            })
            .collect(),
    };
    Fixed(vec![
        series(&[("__name__", "x"), ("job", "a")], |i| i as f64),
        series(&[("__name__", "x"), ("job", "b")], |i| (i % 7) as f64),
        series(&[("__name__", "h_bucket"), ("le", "+Inf")], |i| {
            (i * 2) as f64
        }),
    ])
}

fuzz_target!(
    init: sextant_fuzz::catch_stack_overflows(),
    |data: &[u8]| {
    // The parser crate panics on some inputs (a subquery step too large for a
    // Duration); `promql::parse` catches those and answers a parse error.
    // Silence the hook so a caught panic does not count as a crash; one that
    // escapes still aborts the run.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let data = sextant_fuzz::expand(data);
    let Ok(text) = std::str::from_utf8(&data) else { return };
    let options = EngineOptions {
        max_samples: 100_000,
        timeout: std::time::Duration::from_secs(5),
        ..EngineOptions::default()
    };
    let engine = Engine::new(Arc::new(store()), options);
    sextant_fuzz::on_small_stack(|| {
        // What format_query and error messages do with a tree, too.
        if let Ok(expr) = sextant_query::promql::parse(text) {
            let _ = expr.prettify();
            let _ = expr.to_string();
        }
        let _ = engine.instant_query(text, 300_000);
        let _ = engine.range_query(text, 0, 600_000, 60_000);
    });
});
