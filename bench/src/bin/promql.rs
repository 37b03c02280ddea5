//! PromQL latency against Prometheus 2.42 (Debian), on the same data, in one run:
//!
//! ```sh
//! scripts/setup-test-env >/dev/null
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/promql            # the full run (about ten minutes)
//! target/release/promql --quick    # 1k series x 6 h and 10k instant series
//! target/release/promql --only instant   # one part: range or instant
//! ```
//!
//! 1. Range queries over 10k series x 24 h at 15 s (a histogram of 10 jobs x
//!    100 instances x 10 buckets), 24 h at a 60 s step as Grafana asks for a
//!    day: `rate`, `sum by (job) (rate)`, `histogram_quantile` over `sum by (le)`.
//! 2. Instant queries over 100k series (1000 instances x 100 routes, 10 minutes
//!    of samples): `sum(rate)`, `topk`, `count by`.
//!
//! Both servers receive the same remote-write bodies in time order. Each query
//! runs once to warm up, then 7 times alternating between the servers; the
//! medians and their ratio (Sextant / Prometheus) are printed. The responses
//! are checked to hold the same number of series.

use std::time::{Duration, Instant};

use sextant_bench::{Peer, Rng, flag_value, remote_write, start_prometheus, start_sextant};
use sextant_bench::{now_ms, say, url_encode};
use sextant_ingest::remote_write::{encode, proto};

const STEP_MS: i64 = 15_000;
const RUNS: usize = 7;

/// One series: its labels, and how its value moves each scrape.
struct Gen {
    labels: Vec<(String, String)>,
    value: f64,
    rate: f64,
}

fn proto_labels(labels: &[(String, String)]) -> Vec<proto::Label> {
    labels
        .iter()
        .map(|(n, v)| proto::Label {
            name: n.clone(),
            value: v.clone(),
        })
        .collect()
}

/// Remote-write bodies: `scrapes` samples per series from `start`, `per_body`
/// scrapes per body, split by series among `senders` so each series stays in
/// time order within one sender.
fn bodies(
    series: &mut [Gen],
    start: i64,
    scrapes: i64,
    per_body: i64,
    senders: usize,
    rng: &mut Rng,
) -> Vec<Vec<Vec<u8>>> {
    let mut out = vec![Vec::new(); senders];
    let chunk = series.len().div_ceil(senders);
    let mut k = 0;
    while k < scrapes {
        let n = per_body.min(scrapes - k);
        for (sender, group) in series.chunks_mut(chunk).enumerate() {
            let timeseries = group
                .iter_mut()
                .map(|g| {
                    let samples = (0..n)
                        .map(|i| {
                            g.value += (g.rate * rng.unit() * 2.0).round();
                            proto::Sample {
                                value: g.value,
                                timestamp: start + (k + i) * STEP_MS,
                            }
                        })
                        .collect();
                    proto::TimeSeries {
                        labels: proto_labels(&g.labels),
                        samples,
                        exemplars: vec![],
                        histograms: vec![],
                    }
                })
                .collect();
            out[sender].push(encode(&proto::WriteRequest {
                timeseries,
                metadata: vec![],
            }));
        }
        k += n;
    }
    out
}

fn load(peer: &Peer, bodies: &[Vec<Vec<u8>>]) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for list in bodies {
            let url = peer.write_url.clone();
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(300)))
                    .build()
                    .into();
                for body in list {
                    remote_write(&agent, &url, body);
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// Runs `path` (a query URL path) once; returns seconds and series in the answer.
fn time_query(agent: &ureq::Agent, peer: &Peer, path: &str) -> (f64, usize) {
    let started = Instant::now();
    let mut reply = agent
        .get(&format!("{}{path}", peer.url))
        .call()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let body = reply
        .body_mut()
        .with_config()
        .limit(8 << 30)
        .read_to_string()
        .expect("body");
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        reply.status(),
        200,
        "{path}: {}",
        &body[..body.len().min(500)]
    );
    // Series are counted by their "metric" keys, identically for both answers.
    (elapsed, body.matches("\"metric\":").count())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Times each query on both servers; prints one line per query.
fn compare(sextant: &Peer, prometheus: &Peer, queries: &[(String, String)]) -> Vec<f64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut ratios = Vec::new();
    for (name, path) in queries {
        let (_, ours_series) = time_query(&agent, sextant, path);
        let (_, theirs_series) = time_query(&agent, prometheus, path);
        assert_eq!(
            ours_series, theirs_series,
            "{name}: the answers differ in size"
        );
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            ours.push(time_query(&agent, sextant, path).0);
            theirs.push(time_query(&agent, prometheus, path).0);
        }
        let (ours, theirs) = (median(ours), median(theirs));
        ratios.push(ours / theirs);
        say(&format!(
            "  {name:<58} {ours_series:>6} series  Sextant {:>8.1} ms  Prometheus {:>8.1} ms  ratio {:.2}",
            ours * 1000.0,
            theirs * 1000.0,
            ours / theirs
        ));
    }
    ratios
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = flag_value(&args, "--only");
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let (instances, hours, instant_instances) = if quick { (10, 6, 100) } else { (100, 24, 1000) };
    let scratch = tempfile::tempdir().expect("scratch dir");
    let sextant = start_sextant(&scratch.path().join("sextant"), &[]);
    let prometheus = start_prometheus(
        &scratch.path().join("prometheus"),
        &[
            "--storage.tsdb.retention.time=30d",
            "--query.max-samples=500000000",
        ],
    );
    let mut rng = Rng(11);

    let range_ratios = if run("range") {
        range_part(&sextant, &prometheus, instances, hours, quick, &mut rng)
    } else {
        Vec::new()
    };
    let instant_ratios = if run("instant") {
        instant_part(&sextant, &prometheus, instant_instances, &mut rng)
    } else {
        Vec::new()
    };
    say(&format!(
        "worst ratio: range {:.2}, instant {:.2} (goal <= 0.5)",
        range_ratios.iter().copied().fold(0.0, f64::max),
        instant_ratios.iter().copied().fold(0.0, f64::max)
    ));
}

/// Range queries: 10 jobs x `instances` x 10 buckets, `hours` of history.
fn range_part(
    sextant: &Peer,
    prometheus: &Peer,
    instances: usize,
    hours: i64,
    quick: bool,
    rng: &mut Rng,
) -> Vec<f64> {
    let les = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
    ];
    let mut series = Vec::new();
    for job in 0..10 {
        for instance in 0..instances {
            for (i, le) in les.iter().enumerate() {
                series.push(Gen {
                    labels: vec![
                        (
                            "__name__".into(),
                            "http_request_duration_seconds_bucket".into(),
                        ),
                        ("instance".into(), format!("host-{instance}:9100")),
                        ("job".into(), format!("service-{job}")),
                        ("le".into(), (*le).into()),
                    ],
                    value: 0.0,
                    rate: 1.0 + i as f64,
                });
            }
        }
    }
    let end = now_ms() / STEP_MS * STEP_MS;
    let scrapes = hours * 3600 * 1000 / STEP_MS;
    let start = end - (scrapes - 1) * STEP_MS;
    say(&format!(
        "loading {} series x {scrapes} samples ({hours} h at 15 s) into both over remote write...",
        series.len()
    ));
    let payload = bodies(&mut series, start, scrapes, 20, 2, rng);
    let ours_load = load(sextant, &payload);
    let theirs_load = load(prometheus, &payload);
    drop(payload);
    let samples = series.len() as f64 * scrapes as f64;
    say(&format!(
        "  loaded: Sextant {:.0} samples/s, Prometheus {:.0} samples/s",
        samples / ours_load,
        samples / theirs_load
    ));
    // Let both finish cutting and compacting blocks before timing.
    std::thread::sleep(Duration::from_secs(if quick { 5 } else { 90 }));

    let range = |q: &str| {
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            url_encode(q),
            (end - hours * 3_600_000 + 600_000) / 1000,
            end / 1000
        )
    };
    let range_queries: Vec<(String, String)> = [
        "rate(http_request_duration_seconds_bucket[5m])",
        "sum by (job) (rate(http_request_duration_seconds_bucket[5m]))",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ]
    .iter()
    .map(|q| (q.to_string(), range(q)))
    .collect();
    say(&format!(
        "range queries, {} series x {hours} h, 60 s step (median of {RUNS}):",
        series.len()
    ));
    compare(sextant, prometheus, &range_queries)
}

/// Instant queries over `instant_instances` x 100 routes.
fn instant_part(
    sextant: &Peer,
    prometheus: &Peer,
    instant_instances: usize,
    rng: &mut Rng,
) -> Vec<f64> {
    let mut wide = Vec::new();
    for instance in 0..instant_instances {
        for route in 0..100 {
            wide.push(Gen {
                labels: vec![
                    ("__name__".into(), "app_requests_total".into()),
                    ("instance".into(), format!("pod-{instance}")),
                    ("route".into(), format!("/api/v{}/r{route}", route % 3)),
                ],
                value: 0.0,
                rate: 3.0,
            });
        }
    }
    let wide_scrapes = 40;
    let wide_end = now_ms() / STEP_MS * STEP_MS;
    let wide_start = wide_end - (wide_scrapes - 1) * STEP_MS;
    say(&format!(
        "loading {} series x {wide_scrapes} samples...",
        wide.len()
    ));
    let payload = bodies(&mut wide, wide_start, wide_scrapes, 40, 2, rng);
    load(sextant, &payload);
    load(prometheus, &payload);
    drop(payload);
    std::thread::sleep(Duration::from_secs(5));
    let instant = |q: &str| {
        format!(
            "/api/v1/query?query={}&time={}",
            url_encode(q),
            wide_end / 1000
        )
    };
    let instant_queries: Vec<(String, String)> = [
        "sum(rate(app_requests_total[5m]))",
        "topk(10, rate(app_requests_total[5m]))",
        "count by (route) (app_requests_total)",
        "sum by (instance) (app_requests_total)",
    ]
    .iter()
    .map(|q| (q.to_string(), instant(q)))
    .collect();
    say(&format!(
        "instant queries over {} series (median of {RUNS}):",
        wide.len()
    ));
    compare(sextant, prometheus, &instant_queries)
}
