//! Native histograms against Prometheus 2.42 (Debian, with
//! `--enable-feature=native-histograms`), on the same data in one run:
//!
//! ```sh
//! scripts/setup-test-env >/dev/null        # Debian's prometheus
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/histograms                # the full run
//! target/release/histograms --quick        # smaller sizes, same measurements
//! target/release/histograms --only disk    # one part: disk, remote-write or query
//! ```
//!
//! The data: latency histograms as a Prometheus client library exposes
//! them with `NativeHistogramBucketFactor: 1.1` (schema 3), one series per
//! endpoint, each with its own log-normal latency and request rate,
//! scraped every 15 s; buckets appear as rarer latencies are first seen.
//!
//! It reports, side by side:
//! 1. disk: bytes per histogram sample in persisted blocks (Sextant's head
//!    cut vs the blocks of a Prometheus snapshot, index included);
//! 2. ingest: histogram samples/s through each one's remote-write receiver,
//!    the same bodies from the same four senders;
//! 3. query: `histogram_quantile(0.99, sum by (le) (rate(...[5m])))` over
//!    10k series as classic buckets against `histogram_quantile(0.99,
//!    sum(rate(...[5m])))` over the same data as native histograms, in
//!    Sextant and in Prometheus.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_bench::{
    Peer, Rng, dir_bytes, flag_value, remote_write, say, start_prometheus, start_sextant,
};
use sextant_ingest::remote_write::{encode, proto};
use sextant_model::histogram::Span;
use sextant_model::{Histogram, HistogramSample, HistogramValue, Labels, PromDuration};
use sextant_storage::tsdb::FsyncPolicy;
use sextant_storage::{SeriesHistograms, Tsdb, TsdbConfig, TsdbStats};

const START_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000;
const SCRAPE_MS: i64 = 15_000;
const SCHEMA: i32 = 3;

struct Sizes {
    disk_series: usize,
    disk_hours: usize,
    rw_series: usize,
    rw_scrapes: usize,
    query_series: usize,
    query_hours: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = flag_value(&args, "--only");
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let sizes = if quick {
        Sizes {
            disk_series: 50,
            disk_hours: 4,
            rw_series: 200,
            rw_scrapes: 40,
            query_series: 1_000,
            query_hours: 1,
        }
    } else {
        Sizes {
            disk_series: 300,
            disk_hours: 4,
            rw_series: 2_000,
            rw_scrapes: 120,
            query_series: 10_000,
            query_hours: 1,
        }
    };
    let scratch = std::env::temp_dir().join(format!("sextant-hbench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    if run("disk") {
        disk_part(&sizes, &scratch);
    }
    if run("remote-write") {
        remote_write_part(&sizes, &scratch);
    }
    if run("query") {
        query_part(&sizes, &scratch);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// One endpoint's latency histogram, observed scrape by scrape.
struct Endpoint {
    labels: Labels,
    /// ln of the median latency in seconds, and the spread.
    mu: f64,
    sigma: f64,
    /// Mean observations per scrape.
    rate: f64,
    buckets: BTreeMap<i32, u64>,
    count: u64,
    sum: f64,
}

impl Endpoint {
    fn new(i: usize, rng: &mut Rng) -> Self {
        let handler = format!("/api/v{}/handler{}", i % 3 + 1, i);
        Self {
            labels: Labels::from_pairs([
                ("__name__", "http_request_duration_seconds"),
                ("handler", handler.as_str()),
                ("instance", &format!("app-{}:8080", i % 17)),
                ("job", "app"),
            ]),
            mu: (0.02 + 0.3 * rng.unit()).ln(),
            sigma: 0.3 + 0.7 * rng.unit(),
            rate: 2.0 + 300.0 * rng.unit() * rng.unit(),
            buckets: BTreeMap::new(),
            count: 0,
            sum: 0.0,
        }
    }

    /// One scrape interval's requests.
    fn observe(&mut self, rng: &mut Rng) {
        let n = (self.rate * (0.7 + 0.6 * rng.unit())).round() as u64;
        for _ in 0..n {
            // Box-Muller.
            let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let v = (self.mu + self.sigma * z).exp();
            let index = (v.log2() * f64::from(1 << SCHEMA)).ceil() as i32;
            *self.buckets.entry(index).or_default() += 1;
            self.count += 1;
            self.sum += v;
        }
    }

    /// The histogram as a client library exposes it: spans with gaps of up
    /// to two empty buckets filled in, counts delta-encoded.
    fn histogram(&self) -> Histogram {
        let mut spans: Vec<Span> = Vec::new();
        let mut deltas = Vec::new();
        let (mut previous_index, mut previous_count) = (None::<i32>, 0i64);
        for (&index, &count) in &self.buckets {
            match previous_index {
                None => spans.push(Span {
                    offset: index,
                    length: 1,
                }),
                Some(p) if index - p <= 3 => {
                    for _ in 0..index - p - 1 {
                        deltas.push(-previous_count);
                        previous_count = 0;
                        spans.last_mut().expect("a span").length += 1;
                    }
                    spans.last_mut().expect("a span").length += 1;
                }
                Some(p) => spans.push(Span {
                    offset: index - p - 1,
                    length: 1,
                }),
            }
            deltas.push(count as i64 - previous_count);
            previous_count = count as i64;
            previous_index = Some(index);
        }
        Histogram {
            schema: SCHEMA,
            zero_threshold: 2f64.powi(-128),
            count: self.count,
            sum: self.sum,
            positive_spans: spans,
            positive_buckets: deltas,
            ..Histogram::default()
        }
    }
}

/// `series` endpoints scraped `scrapes` times: per scrape, each one's histogram.
fn workload(series: usize, scrapes: usize, seed: u64) -> (Vec<Labels>, Vec<Vec<Histogram>>) {
    let mut rng = Rng(seed);
    let mut endpoints: Vec<Endpoint> = (0..series).map(|i| Endpoint::new(i, &mut rng)).collect();
    let labels = endpoints.iter().map(|e| e.labels.clone()).collect();
    let mut out = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        out.push(
            endpoints
                .iter_mut()
                .map(|e| {
                    e.observe(&mut rng);
                    e.histogram()
                })
                .collect(),
        );
    }
    (labels, out)
}

fn disk_part(sizes: &Sizes, scratch: &Path) {
    let scrapes = sizes.disk_hours * 3600 * 1000 / SCRAPE_MS as usize;
    let (labels, data) = workload(sizes.disk_series, scrapes, 42);
    let buckets: usize = data
        .last()
        .map_or(0, |s| s.iter().map(|h| h.positive_buckets.len()).sum());
    say(&format!(
        "workload: {} latency histograms (schema {SCHEMA}, {:.0} buckets each at the end) x {scrapes} scrapes 15 s apart",
        sizes.disk_series,
        buckets as f64 / sizes.disk_series as f64
    ));
    let ours = sextant_disk(&labels, &data, &scratch.join("disk"));
    let theirs = prometheus_disk(&labels, &data, &scratch.join("prometheus-disk"));
    say(&format!(
        "disk: bytes per native histogram sample, blocks incl. index: Sextant {ours:.2} B, Prometheus {theirs:.2} B (ratio {:.2})",
        ours / theirs
    ));
}

fn sextant_disk(labels: &[Labels], data: &[Vec<Histogram>], dir: &Path) -> f64 {
    let db = Tsdb::open(
        dir,
        TsdbConfig {
            wal_fsync: FsyncPolicy::Interval,
            ..TsdbConfig::default()
        },
        PromDuration::from_secs(15 * 86_400),
        Arc::new(TsdbStats::default()),
    )
    .expect("open the metrics store");
    for (i, scrape) in data.iter().enumerate() {
        let t = START_MS + i as i64 * SCRAPE_MS;
        let batch: Vec<SeriesHistograms> = labels
            .iter()
            .zip(scrape)
            .map(|(l, h)| SeriesHistograms {
                labels: l.clone(),
                samples: vec![HistogramSample {
                    timestamp_ms: t,
                    value: HistogramValue::Int(h.clone()),
                }],
            })
            .collect();
        let report = db.append_histograms(&batch).expect("append");
        assert_eq!(report.rejected_total(), 0, "{report:?}");
    }
    db.maintain().expect("maintain");
    let (mut bytes, mut samples) = (0u64, 0u64);
    for entry in std::fs::read_dir(dir.join("blocks"))
        .expect("blocks")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
    {
        let text = std::fs::read_to_string(entry.path().join("meta.json")).expect("meta.json");
        let meta = sextant_storage::tsdb::BlockMeta::from_json(&text).expect("meta.json parses");
        samples += meta.num_samples;
        bytes += dir_bytes(&entry.path());
    }
    assert!(samples > 0, "no block was cut");
    bytes as f64 / samples as f64
}

/// `prometheus.Histogram` of remote write 1.0, integer counts.
fn proto_histogram(h: &Histogram, t: i64) -> proto::Histogram {
    use proto::histogram::{Count, ZeroCount};
    let spans = |spans: &[Span]| -> Vec<proto::BucketSpan> {
        spans
            .iter()
            .map(|s| proto::BucketSpan {
                offset: s.offset,
                length: s.length,
            })
            .collect()
    };
    proto::Histogram {
        count: Some(Count::CountInt(h.count)),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(ZeroCount::ZeroCountInt(h.zero_count)),
        negative_spans: spans(&h.negative_spans),
        negative_deltas: h.negative_buckets.clone(),
        positive_spans: spans(&h.positive_spans),
        positive_deltas: h.positive_buckets.clone(),
        timestamp: t,
        ..Default::default()
    }
}

fn label_pairs(labels: &Labels) -> Vec<proto::Label> {
    labels
        .iter()
        .map(|l| proto::Label {
            name: l.name.to_string(),
            value: l.value.to_string(),
        })
        .collect()
}

/// Remote-write bodies, one per scrape of up to 2000 series (Prometheus's
/// `max_samples_per_send`), snappy-compressed.
fn bodies(labels: &[Labels], data: &[Vec<Histogram>]) -> Vec<Vec<u8>> {
    let pairs: Vec<Vec<proto::Label>> = labels.iter().map(label_pairs).collect();
    let mut out = Vec::new();
    for (i, scrape) in data.iter().enumerate() {
        let t = START_MS + i as i64 * SCRAPE_MS;
        for part in (0..labels.len()).collect::<Vec<_>>().chunks(2000) {
            let request = proto::WriteRequest {
                timeseries: part
                    .iter()
                    .map(|&s| proto::TimeSeries {
                        labels: pairs[s].clone(),
                        histograms: vec![proto_histogram(&scrape[s], t)],
                        ..Default::default()
                    })
                    .collect(),
                metadata: Vec::new(),
            };
            out.push(encode(&request));
        }
    }
    out
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn prometheus_native() -> Vec<&'static str> {
    vec![
        "--enable-feature=native-histograms",
        "--web.enable-admin-api",
    ]
}

/// The same histograms through Prometheus's remote-write receiver, then a
/// snapshot of its head and blocks; bytes per sample of the snapshot.
fn prometheus_disk(labels: &[Labels], data: &[Vec<Histogram>], dir: &Path) -> f64 {
    let prometheus = start_prometheus(dir, &prometheus_native());
    let agent = agent();
    for body in bodies(labels, data) {
        remote_write(&agent, &prometheus.write_url, &body);
    }
    let text = agent
        .post(&format!("{}/api/v1/admin/tsdb/snapshot", prometheus.url))
        .send_empty()
        .expect("snapshot")
        .body_mut()
        .read_to_string()
        .expect("snapshot answer");
    let reply: serde_json::Value = serde_json::from_str(&text).expect("snapshot json");
    let name = reply["data"]["name"].as_str().expect("snapshot name");
    let snapshot = dir.join("data/snapshots").join(name);
    let (mut bytes, mut samples) = (0u64, 0u64);
    for entry in std::fs::read_dir(&snapshot).expect("snapshot").flatten() {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(entry.path().join("meta.json")).expect("meta.json"),
        )
        .expect("meta.json parses");
        samples += meta["stats"]["numSamples"].as_u64().unwrap_or(0);
        bytes += dir_bytes(&entry.path());
    }
    drop(prometheus);
    let expected = (labels.len() * data.len()) as u64;
    assert_eq!(
        samples, expected,
        "Prometheus kept {samples} of {expected} samples"
    );
    bytes as f64 / samples as f64
}

/// Sends each sender's bodies (in time order) from its own thread;
/// histogram samples per second.
fn drive(peer: &Peer, per_sender: &[Vec<Vec<u8>>], samples: f64) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for bodies in per_sender {
            let url = peer.write_url.clone();
            scope.spawn(move || {
                let agent = agent();
                for body in bodies {
                    remote_write(&agent, &url, body);
                }
            });
        }
    });
    samples / started.elapsed().as_secs_f64()
}

fn remote_write_part(sizes: &Sizes, scratch: &Path) {
    let (labels, data) = workload(sizes.rw_series, sizes.rw_scrapes, 7);
    // Four senders, each with its own quarter of the series (as
    // Prometheus's shards), so a series' samples arrive in order.
    let quarter = labels.len().div_ceil(4);
    let per_sender: Vec<Vec<Vec<u8>>> = (0..4)
        .map(|k| {
            let range = (k * quarter).min(labels.len())..((k + 1) * quarter).min(labels.len());
            let part: Vec<Vec<Histogram>> =
                data.iter().map(|s| s[range.clone()].to_vec()).collect();
            bodies(&labels[range], &part)
        })
        .collect();
    let samples = (labels.len() * data.len()) as f64;
    let sextant = start_sextant(&scratch.join("sextant-rw"), &[]);
    let ours = drive(&sextant, &per_sender, samples);
    drop(sextant);
    let prometheus = start_prometheus(&scratch.join("prometheus-rw"), &prometheus_native());
    let theirs = drive(&prometheus, &per_sender, samples);
    drop(prometheus);
    say(&format!(
        "ingest via remote write, {} histogram series x {} samples, 4 senders: Sextant {ours:.0} samples/s, Prometheus {theirs:.0} samples/s (ratio {:.2})",
        labels.len(),
        data.len(),
        ours / theirs
    ));
}

/// Classic buckets of the same observations: `le` bounds at every eighth
/// schema-3 boundary (powers of two) from 1/1024 s to 64 s, plus +Inf.
fn classic_bounds() -> Vec<f64> {
    (-10..=6).map(|e| 2f64.powi(e)).collect()
}

fn classic_series(labels: &Labels, h: &Histogram, t: i64) -> Vec<proto::TimeSeries> {
    let name = labels.metric_name().unwrap_or_default();
    let base: Vec<proto::Label> = label_pairs(labels)
        .into_iter()
        .filter(|l| l.name != "__name__")
        .collect();
    let with = |suffix: &str, le: Option<String>| {
        let mut pairs = vec![proto::Label {
            name: "__name__".into(),
            value: format!("{name}{suffix}"),
        }];
        pairs.extend(base.iter().cloned());
        if let Some(le) = le {
            pairs.push(proto::Label {
                name: "le".into(),
                value: le,
            });
        }
        pairs.sort_by(|a, b| a.name.cmp(&b.name));
        pairs
    };
    let sample = |v: f64| proto::Sample {
        value: v,
        timestamp: t,
    };
    let float = h.to_float();
    let buckets = float.all_buckets();
    let mut out = Vec::new();
    for bound in classic_bounds() {
        let below: f64 = buckets
            .iter()
            .filter(|b| b.upper <= bound)
            .map(|b| b.count)
            .sum();
        out.push(proto::TimeSeries {
            labels: with(
                "_bucket",
                Some(sextant_model::histogram::format_go_g(bound)),
            ),
            samples: vec![sample(below)],
            ..Default::default()
        });
    }
    out.push(proto::TimeSeries {
        labels: with("_bucket", Some("+Inf".into())),
        samples: vec![sample(float.count)],
        ..Default::default()
    });
    out.push(proto::TimeSeries {
        labels: with("_count", None),
        samples: vec![sample(float.count)],
        ..Default::default()
    });
    out.push(proto::TimeSeries {
        labels: with("_sum", None),
        samples: vec![sample(float.sum)],
        ..Default::default()
    });
    out
}

fn query_part(sizes: &Sizes, scratch: &Path) {
    let scrapes = sizes.query_hours * 3600 * 1000 / SCRAPE_MS as usize;
    let (labels, data) = workload(sizes.query_series, scrapes, 99);
    let mut native = bodies(&labels, &data);
    for (i, scrape) in data.iter().enumerate() {
        let t = START_MS + i as i64 * SCRAPE_MS;
        let series: Vec<proto::TimeSeries> = labels
            .iter()
            .zip(scrape)
            .flat_map(|(l, h)| classic_series(l, h, t))
            .collect();
        for part in series.chunks(2000) {
            let request = proto::WriteRequest {
                timeseries: part.to_vec(),
                metadata: Vec::new(),
            };
            native.push(encode(&request));
        }
    }
    let end_s = (START_MS + scrapes as i64 * SCRAPE_MS) / 1000;
    let start_s = end_s - 3600 * sizes.query_hours as i64 + 300;
    let range = format!("start={start_s}&end={end_s}&step=60");
    let queries = [
        (
            "classic",
            "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        ),
        (
            "native",
            "histogram_quantile(0.99, sum(rate(http_request_duration_seconds[5m])))",
        ),
    ];
    let time = |peer: &Peer, query: &str| -> (f64, String) {
        let agent = agent();
        let url = format!(
            "{}/api/v1/query_range?query={}&{range}",
            peer.url,
            sextant_bench::url_encode(query)
        );
        let mut best = f64::MAX;
        let mut body = String::new();
        for _ in 0..5 {
            let started = Instant::now();
            let mut reply = agent.get(&url).call().expect("query");
            body = reply.body_mut().read_to_string().expect("body");
            best = best.min(started.elapsed().as_secs_f64());
        }
        (best * 1000.0, body)
    };
    let mut results = Vec::new();
    for (name, peer) in [
        ("Sextant", start_sextant(&scratch.join("sextant-q"), &[])),
        (
            "Prometheus",
            start_prometheus(&scratch.join("prometheus-q"), &prometheus_native()),
        ),
    ] {
        let agent = agent();
        for body in &native {
            remote_write(&agent, &peer.write_url, body);
        }
        std::thread::sleep(Duration::from_secs(1));
        for (kind, query) in queries {
            let (ms, body) = time(&peer, query);
            let value: serde_json::Value = serde_json::from_str(&body).expect("query json");
            let points = value["data"]["result"][0]["values"]
                .as_array()
                .map_or(0, Vec::len);
            results.push((name, kind, ms, points));
        }
    }
    for (name, kind, ms, points) in &results {
        say(&format!(
            "query: {name} {kind} histogram_quantile over {} series, 1 h at 60 s steps: {ms:.0} ms ({points} points)",
            sizes.query_series
        ));
    }
    let of = |name: &str, kind: &str| {
        results
            .iter()
            .find(|r| r.0 == name && r.1 == kind)
            .map_or(f64::NAN, |r| r.2)
    };
    say(&format!(
        "query: native / classic time: Sextant {:.2}, Prometheus {:.2}; Sextant / Prometheus: native {:.2}, classic {:.2}",
        of("Sextant", "native") / of("Sextant", "classic"),
        of("Prometheus", "native") / of("Prometheus", "classic"),
        of("Sextant", "native") / of("Prometheus", "native"),
        of("Sextant", "classic") / of("Prometheus", "classic"),
    ));
}
