//! PromQL latency against VictoriaMetrics 1.79 (its rollup cache off) and
//! Prometheus 2.42 (both Debian's), on the same data, in one run:
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
//!    day: `rate`, `sum by (job) (rate)`, `sum(rate)`, `histogram_quantile`
//!    over `sum by (le)`; every cache off (Sextant's results cache,
//!    VictoriaMetrics' rollup cache).
//! 2. Instant queries over 100k series (1000 instances x 100 routes, 10 minutes
//!    of samples): `sum(rate)`, `topk`, `count by`.
//! 3. After part 1, both restarted with their caches on: each range query
//!    as a refreshing dashboard asks it, the window moved a step each time.
//!
//! Every server receives the same remote-write bodies in time order. Each
//! query runs once to warm up, then 7 times alternating between the servers;
//! the medians and Sextant's ratio to each peer (Sextant / peer) are printed.
//! The responses are checked to hold the same number of series.

use std::time::{Duration, Instant};

use sextant_bench::{
    Peer, Rng, flag_value, remote_write, start_prometheus, start_sextant, start_victoria_metrics,
    victoria_metrics_settle,
};
use sextant_bench::{now_ms, say, url_encode};
use sextant_ingest::remote_write::{encode, proto};

const STEP_MS: i64 = 15_000;
/// The range queries' step, as Grafana asks for a day.
const STEP_S: i64 = 60;
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

/// Times each query on every server (Sextant first); prints one line per
/// query with each peer's time and Sextant's ratio to it. Returns, per
/// query, Sextant's ratio to each peer, and Sextant's median seconds.
fn compare(peers: &[(&str, &Peer)], queries: &[(String, String)]) -> (Vec<Vec<f64>>, Vec<f64>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut ratios = Vec::new();
    let mut sextant_times = Vec::new();
    for (name, path) in queries {
        let sizes: Vec<usize> = peers
            .iter()
            .map(|(_, peer)| time_query(&agent, peer, path).1)
            .collect();
        for ((peer, size), expected) in peers.iter().zip(&sizes).zip(std::iter::repeat(sizes[0])) {
            assert_eq!(
                *size, expected,
                "{name}: {} answers {size} series, Sextant {expected}",
                peer.0
            );
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
        for _ in 0..RUNS {
            for (i, (_, peer)) in peers.iter().enumerate() {
                times[i].push(time_query(&agent, peer, path).0);
            }
        }
        let medians: Vec<f64> = times.into_iter().map(median).collect();
        let mut line = format!(
            "  {name:<58} {:>6} series  Sextant {:>8.1} ms",
            sizes[0],
            medians[0] * 1000.0
        );
        let mut row = Vec::new();
        for ((peer, _), theirs) in peers.iter().zip(&medians).skip(1) {
            let ratio = medians[0] / theirs;
            line.push_str(&format!(
                "  {peer} {:>8.1} ms (ratio {ratio:.2})",
                theirs * 1000.0
            ));
            row.push(ratio);
        }
        say(&line);
        ratios.push(row);
        sextant_times.push(medians[0]);
    }
    (ratios, sextant_times)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = flag_value(&args, "--only");
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let (instances, hours, instant_instances) = if quick { (10, 6, 100) } else { (100, 24, 1000) };
    let scratch = tempfile::tempdir().expect("scratch dir");
    let sextant_dir = scratch.path().join("sextant");
    let vm_dir = scratch.path().join("victoria-metrics");
    // The cold pass: every cache off.
    let no_cache = scratch.path().join("no-cache.yml");
    std::fs::write(&no_cache, "query:\n  results_cache:\n    max_bytes: 0\n").expect("config");
    let no_cache = no_cache.to_str().expect("utf-8 path").to_owned();
    let sextant = start_sextant(&sextant_dir, &["--config", &no_cache]);
    let victoria_metrics = start_victoria_metrics(&vm_dir, false, &[]);
    let prometheus = start_prometheus(
        &scratch.path().join("prometheus"),
        &[
            "--storage.tsdb.retention.time=30d",
            "--query.max-samples=500000000",
        ],
    );
    let peers = [
        ("Sextant", &sextant),
        ("VictoriaMetrics", &victoria_metrics),
        ("Prometheus", &prometheus),
    ];
    let mut rng = Rng(11);

    let mut ratios = Vec::new();
    let mut range_queries = Vec::new();
    if run("range") {
        let (r, queries) = range_part(&peers, instances, hours, quick, &mut rng);
        ratios.extend(r);
        range_queries = queries;
    }
    if run("instant") {
        ratios.extend(instant_part(&peers, instant_instances, &mut rng));
    }
    for (i, (peer, _)) in peers.iter().enumerate().skip(1) {
        let worst = ratios.iter().map(|r| r[i - 1]).fold(0.0, f64::max);
        say(&format!("worst ratio to {peer}: {worst:.2}"));
    }
    if !range_queries.is_empty() {
        // The second pass: caches on, a dashboard refreshing each query.
        drop((sextant, victoria_metrics, prometheus));
        let sextant = start_sextant(&sextant_dir, &[]);
        let victoria_metrics = start_victoria_metrics(&vm_dir, true, &[]);
        refresh_part(
            &[
                ("Sextant", &sextant),
                ("VictoriaMetrics", &victoria_metrics),
            ],
            &range_queries,
        );
    }
}

/// Each range query as a dashboard refreshing every minute asks it: the
/// same window moved forward a step each time, after one first ask.
/// Prints the median refresh time of each peer with its cache on, and
/// Sextant's refresh against its own cold time from the first pass.
fn refresh_part(peers: &[(&str, &Peer)], queries: &[RangeQuery]) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    say(&format!(
        "dashboard refresh, caches on (the window moved {STEP_S} s each time, median of {RUNS}):"
    ));
    for q in queries {
        let mut line = format!("  {:<58}", q.query);
        let mut medians = Vec::new();
        for (name, peer) in peers {
            let path = |k: i64| q.path(k * STEP_S);
            time_query(&agent, peer, &path(0));
            let times: Vec<f64> = (1..=RUNS as i64)
                .map(|k| time_query(&agent, peer, &path(k)).0)
                .collect();
            let m = median(times);
            medians.push(m);
            line.push_str(&format!("  {name} {:>8.1} ms", m * 1000.0));
        }
        line.push_str(&format!(
            "  Sextant refresh / Sextant cold {:.2}, / VictoriaMetrics refresh {:.2}",
            medians[0] / q.sextant_cold,
            medians[0] / medians[1]
        ));
        say(&line);
    }
}

/// A range query of the first pass, for the refresh pass.
struct RangeQuery {
    query: String,
    start_s: i64,
    end_s: i64,
    /// Sextant's median time in the cold pass.
    sextant_cold: f64,
}

impl RangeQuery {
    fn path(&self, shift_s: i64) -> String {
        format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={STEP_S}",
            url_encode(&self.query),
            self.start_s + shift_s,
            self.end_s + shift_s
        )
    }
}

/// Loads `payload` into every peer, one after the other; prints the rates.
fn load_all(peers: &[(&str, &Peer)], payload: &[Vec<Vec<u8>>], samples: f64) {
    let mut line = String::from("  loaded:");
    for (name, peer) in peers {
        let took = load(peer, payload);
        line.push_str(&format!(" {name} {:.0} samples/s", samples / took));
        if *name == "VictoriaMetrics" {
            victoria_metrics_settle(peer);
        }
    }
    say(&line);
}

/// Range queries: 10 jobs x `instances` x 10 buckets, `hours` of history.
fn range_part(
    peers: &[(&str, &Peer)],
    instances: usize,
    hours: i64,
    quick: bool,
    rng: &mut Rng,
) -> (Vec<Vec<f64>>, Vec<RangeQuery>) {
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
        "loading {} series x {scrapes} samples ({hours} h at 15 s) into each over remote write...",
        series.len()
    ));
    let payload = bodies(&mut series, start, scrapes, 20, 2, rng);
    load_all(peers, &payload, series.len() as f64 * scrapes as f64);
    drop(payload);
    // Let all finish cutting and compacting blocks before timing.
    std::thread::sleep(Duration::from_secs(if quick { 5 } else { 90 }));

    let mut queries: Vec<RangeQuery> = [
        "rate(http_request_duration_seconds_bucket[5m])",
        "sum by (job) (rate(http_request_duration_seconds_bucket[5m]))",
        "sum(rate(http_request_duration_seconds_bucket[5m]))",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ]
    .iter()
    .map(|q| RangeQuery {
        query: q.to_string(),
        start_s: (end - hours * 3_600_000 + 600_000) / 1000,
        end_s: end / 1000,
        sextant_cold: f64::NAN,
    })
    .collect();
    let range_queries: Vec<(String, String)> = queries
        .iter()
        .map(|q| (q.query.clone(), q.path(0)))
        .collect();
    say(&format!(
        "range queries, {} series x {hours} h, 60 s step (median of {RUNS}):",
        series.len()
    ));
    let (ratios, sextant_times) = compare(peers, &range_queries);
    for (q, t) in queries.iter_mut().zip(sextant_times) {
        q.sextant_cold = t;
    }
    (ratios, queries)
}

/// Instant queries over `instant_instances` x 100 routes.
fn instant_part(peers: &[(&str, &Peer)], instant_instances: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
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
    load_all(peers, &payload, wide.len() as f64 * wide_scrapes as f64);
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
    compare(peers, &instant_queries).0
}
