//! The PromQL engine alone, in this process, over the `promql` bench's range
//! data (a histogram of 10 jobs x `instances` x 10 buckets, 15 s samples),
//! without HTTP or JSON: where the time of an aggregating range query goes,
//! and a process to point a profiler at.
//!
//! ```sh
//! cargo build --release -p sextant-bench --bin promql_engine
//! target/release/promql_engine                 # 10k series x 24 h, each query 5 times
//! target/release/promql_engine --instances 20 --hours 6 --runs 50 --query 'sum(rate(x[5m]))'
//! target/release/promql_engine --compare       # each run also without streaming aggregation
//! perf record -F 999 -p $(pgrep promql_engine) # while it runs
//! ```

use std::sync::Arc;
use std::time::Instant;

use sextant_bench::{Rng, flag_value, say};
use sextant_model::{Labels, PromDuration, Sample};
use sextant_query::promql::{Engine, EngineOptions, QueryValue, parse};
use sextant_storage::{MetricsReader, SeriesSamples, Tsdb, TsdbConfig, TsdbStats};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STEP_MS: i64 = 15_000;
const START_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |flag: &str, default: i64| {
        flag_value(&args, flag)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let instances = number("--instances", 100);
    let hours = number("--hours", 24);
    let runs = number("--runs", 5);
    let queries: Vec<String> = match flag_value(&args, "--query") {
        Some(q) => vec![q],
        None => [
            "sum by (job) (rate(x[5m]))",
            "sum(rate(x[5m]))",
            "histogram_quantile(0.99, sum by (le) (rate(x[5m])))",
            "rate(x[5m])",
        ]
        .iter()
        .map(|q| q.replace("x[", "http_request_duration_seconds_bucket["))
        .collect(),
    };
    let dir = tempfile::tempdir().expect("scratch dir");
    let db = Tsdb::open(
        dir.path(),
        TsdbConfig::default(),
        PromDuration::from_secs(400 * 86_400),
        Arc::new(TsdbStats::default()),
    )
    .expect("open");
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    let mut labels = Vec::new();
    let mut rates = Vec::new();
    for job in 0..10 {
        for instance in 0..instances {
            for (i, le) in les.iter().enumerate() {
                labels.push(Labels::from_pairs([
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("instance", &format!("host-{instance}:9100")),
                    ("job", &format!("service-{job}")),
                    ("le", le),
                ]));
                rates.push(1.0 + i as f64);
            }
        }
    }
    let scrapes = hours * 3600 * 1000 / STEP_MS;
    let mut values = vec![0.0f64; labels.len()];
    let mut rng = Rng(11);
    let started = Instant::now();
    // 20 scrapes at a time, as the promql bench's remote-write bodies.
    let mut k = 0;
    while k < scrapes {
        let n = 20.min(scrapes - k);
        let batch: Vec<SeriesSamples> = labels
            .iter()
            .zip(values.iter_mut().zip(&rates))
            .map(|(l, (v, rate))| SeriesSamples {
                labels: l.clone(),
                samples: (0..n)
                    .map(|i| {
                        *v += (rate * rng.unit() * 2.0).round();
                        Sample {
                            timestamp_ms: START_MS + (k + i) * STEP_MS,
                            value: *v,
                        }
                    })
                    .collect(),
            })
            .collect();
        db.append(&batch).expect("append");
        k += n;
        if k % 480 == 0 {
            db.maintain().expect("maintain");
        }
    }
    db.maintain().expect("maintain");
    say(&format!(
        "loaded {} series x {scrapes} samples in {:.1} s",
        labels.len(),
        started.elapsed().as_secs_f64()
    ));
    let reader: Arc<dyn MetricsReader> = Arc::new(db);
    let options = EngineOptions {
        max_samples: usize::MAX,
        ..EngineOptions::default()
    };
    // `--compare`: each run asks the general path too, right before, so
    // both see the same load.
    let mut engines = vec![("", Engine::new(reader.clone(), options.clone()))];
    if args.iter().any(|a| a == "--compare") {
        let general = EngineOptions {
            stream_aggregations: false,
            ..options
        };
        engines.insert(0, ("general ", Engine::new(reader, general)));
    }
    let end = START_MS + (scrapes - 1) * STEP_MS;
    let start = end - hours * 3_600_000 + 600_000;
    for q in &queries {
        let expr = parse(q).expect("parse");
        let mut times = vec![Vec::new(); engines.len()];
        let mut cpu = vec![Vec::new(); engines.len()];
        let mut size = 0;
        for _ in 0..runs {
            for (e, (_, engine)) in engines.iter().enumerate() {
                let t = Instant::now();
                let c = cpu_seconds();
                let (value, _) = engine
                    .range_query_expr(&expr, start, end, 60_000)
                    .expect("query");
                times[e].push(t.elapsed().as_secs_f64());
                cpu[e].push(cpu_seconds() - c);
                if let QueryValue::Matrix(m) = value {
                    size = m.len();
                }
            }
        }
        for (e, (path, _)) in engines.iter().enumerate() {
            times[e].sort_by(f64::total_cmp);
            cpu[e].sort_by(f64::total_cmp);
            say(&format!(
                "  {path}{q:<70} {size:>6} series  median {:>8.1} ms  best {:>8.1} ms  cpu median {:>8.1} ms",
                times[e][runs as usize / 2] * 1000.0,
                times[e][0] * 1000.0,
                cpu[e][runs as usize / 2] * 1000.0
            ));
        }
    }
}

/// CPU time this process spent so far, all threads (user and system), in
/// seconds; 0 where `/proc` is not there. On a busy machine wall time
/// measures the neighbours too; this does not.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
