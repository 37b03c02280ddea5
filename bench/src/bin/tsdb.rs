//! The metrics store against VictoriaMetrics 1.79 and Prometheus 2.42 (both
//! Debian's), on node_exporter-shaped data learned from a real node_exporter
//! and (for disk) on an application fleet's client-library metrics
//! ([`sextant_bench::fleet`]), in one run:
//!
//! ```sh
//! scripts/setup-test-env >/dev/null        # Debian's prometheus and node exporter
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/tsdb                       # the full run (several minutes)
//! target/release/tsdb --quick               # smaller sizes, same measurements
//! target/release/tsdb --only replay          # one part: disk, remote-write, import or replay
//! target/release/tsdb --only disk --shape app # one disk shape: node or app
//! target/release/tsdb --rw-hosts 200         # remote write with 200 x ~500 series
//! ```
//!
//! It reports, each side by side where a peer exists:
//! 1. disk: bytes per sample in persisted blocks (Sextant's head cut vs
//!    `promtool tsdb create-blocks-from openmetrics` on the same samples, and
//!    VictoriaMetrics' `data` and `indexdb` after the same samples through
//!    its text import, flushed and merged), for each shape;
//! 2. ingest: samples/s through each one's remote-write receiver, same payloads,
//!    same senders; and Sextant's in-process write path (WAL on);
//! 3. memory: RSS growth per head series after the remote-write load;
//! 4. import: samples/s through each one's `/api/v1/import/prometheus`
//!    (Sextant and VictoriaMetrics), history series by series, same bodies;
//! 5. restart: Sextant's WAL replay time for many series x 120 samples.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_bench::fleet::{app_fleet_entropy_bytes_per_sample, app_fleet_history};
use sextant_bench::say;
use sextant_bench::{
    NodeExporter, NodeWorkload, Peer, dir_bytes, flag_value, free_port, remote_write, rss_bytes,
    scrape_batch, start_prometheus, start_sextant, start_victoria_metrics, victoria_metrics_settle,
};
use sextant_ingest::remote_write::{encode, proto};
use sextant_model::{Labels, PromDuration};
use sextant_storage::tsdb::FsyncPolicy;
use sextant_storage::{Tsdb, TsdbConfig, TsdbStats};

const START_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000;

struct Sizes {
    disk_hosts: usize,
    disk_hours: usize,
    /// Service instances of the application fleet in the disk part.
    disk_targets: usize,
    rw_hosts: usize,
    rw_scrapes: usize,
    replay_hosts: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = flag_value(&args, "--only");
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let rw_hosts: Option<usize> = flag_value(&args, "--rw-hosts").and_then(|n| n.parse().ok());
    let sizes = if quick {
        Sizes {
            disk_hosts: 2,
            disk_hours: 4,
            disk_targets: 4,
            rw_hosts: 10,
            rw_scrapes: 40,
            replay_hosts: 100,
        }
    } else {
        Sizes {
            disk_hosts: 4,
            disk_hours: 4,
            disk_targets: 20,
            rw_hosts: 200,
            rw_scrapes: 120,
            replay_hosts: 2000,
        }
    };
    let sizes = Sizes {
        rw_hosts: rw_hosts.unwrap_or(sizes.rw_hosts),
        ..sizes
    };
    let scratch = std::env::temp_dir().join(format!("sextant-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let exporter = NodeExporter::start(free_port());
    let learned = NodeWorkload::learn(&exporter.url, Duration::from_secs(3), 1);
    drop(exporter);
    let per_host = learned.series_per_host();
    say(&format!(
        "workload: {per_host} series per host, learned from a real node_exporter scrape"
    ));

    if run("disk") {
        disk_part(
            &learned,
            &sizes,
            &scratch,
            flag_value(&args, "--shape").as_deref(),
        );
    }
    if run("remote-write") {
        remote_write_part(&learned, &sizes, &scratch);
    }
    if run("import") {
        import_part(&learned, &sizes, &scratch);
    }
    if run("replay") {
        let replay = learned.with_hosts(sizes.replay_hosts);
        let (replay_series, replay_secs) = sextant_replay(&replay, 120, &scratch.join("replay"));
        say(&format!(
            "restart: WAL replay of {replay_series} series x 120 samples: {replay_secs:.1} s"
        ));
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

fn disk_part(learned: &NodeWorkload, sizes: &Sizes, scratch: &Path, shape: Option<&str>) {
    let scrapes = sizes.disk_hours * 240;
    if shape.is_none_or(|s| s == "node") {
        let node = learned.with_hosts(sizes.disk_hosts);
        let labels = node.labels();
        let series = history(&node, scrapes, 42);
        disk_side_by_side("node_exporter", &labels, &series, &scratch.join("node"));
        say(&format!(
            "disk, node_exporter: the entropy of these values is about {:.3} B/sample: no lossless store keeps them in less (index and timestamps aside)",
            learned.entropy_bytes_per_sample()
        ));
    }
    if shape.is_none_or(|s| s == "app") {
        let (labels, series) = app_fleet_history(sizes.disk_targets, scrapes, START_MS, 42);
        disk_side_by_side("application fleet", &labels, &series, &scratch.join("app"));
        say(&format!(
            "disk, application fleet: the entropy of these values is about {:.3} B/sample for a store that keeps each series on its own (index and timestamps aside)",
            app_fleet_entropy_bytes_per_sample(sizes.disk_targets, scrapes, START_MS, 42)
        ));
    }
}

/// One shape's samples through each store, bytes per sample side by side.
fn disk_side_by_side(shape: &str, labels: &[Labels], series: &[Vec<(i64, f64)>], dir: &Path) {
    let scrapes = series.first().map_or(0, Vec::len);
    let (ours_bps, ingest_rate) = sextant_disk(shape, labels, series, &dir.join("sextant"));
    let theirs_bps = prometheus_disk(labels, series, &dir.join("promtool"));
    let vm_bps = victoria_metrics_disk(labels, series, &dir.join("victoria-metrics"));
    say(&format!(
        "disk, {shape}: {} series x {scrapes} samples: Sextant {ours_bps:.3} B/sample, VictoriaMetrics {vm_bps:.3} B/sample (ratio {:.2}), Prometheus {theirs_bps:.3} B/sample (ratio {:.2})",
        labels.len(),
        ours_bps / vm_bps,
        ours_bps / theirs_bps
    ));
    say(&format!(
        "ingest, {shape}, in-process write path (WAL on, fsync interval): {ingest_rate:.0} samples/s"
    ));
}

/// Ingest rate and memory, side by side over remote write.
fn remote_write_part(learned: &NodeWorkload, sizes: &Sizes, scratch: &Path) {
    let per_host = learned.series_per_host();
    let rw = learned.with_hosts(sizes.rw_hosts);
    let payloads = remote_write_payloads(&rw, sizes.rw_scrapes);
    let samples = (rw.hosts * per_host * sizes.rw_scrapes) as f64;
    let series = (rw.hosts * per_host) as f64;
    let sextant = start_sextant(&scratch.join("sextant-rw"), &[]);
    let (ours_rate, ours_rss) = drive(&sextant, &payloads, samples);
    drop(sextant);
    let prometheus = start_prometheus(&scratch.join("prometheus-rw"), &[]);
    let (theirs_rate, theirs_rss) = drive(&prometheus, &payloads, samples);
    drop(prometheus);
    let vm = start_victoria_metrics(&scratch.join("victoria-metrics-rw"), false, &[]);
    let (vm_rate, vm_rss) = drive(&vm, &payloads, samples);
    drop(vm);
    say(&format!(
        "ingest via remote write, {series} series x {} samples, 4 senders: Sextant {ours_rate:.0} samples/s, VictoriaMetrics {vm_rate:.0} samples/s (ratio {:.2}), Prometheus {theirs_rate:.0} samples/s (ratio {:.2})",
        sizes.rw_scrapes,
        ours_rate / vm_rate,
        ours_rate / theirs_rate
    ));
    say(&format!(
        "memory, RSS growth per series: Sextant {:.0} B, VictoriaMetrics {:.0} B (ratio {:.2}), Prometheus {:.0} B (ratio {:.2})",
        ours_rss as f64 / series,
        vm_rss as f64 / series,
        ours_rss as f64 / vm_rss as f64,
        theirs_rss as f64 / series,
        ours_rss as f64 / theirs_rss as f64
    ));
}

/// Text import rate, side by side: a quarter of the remote-write load's
/// hosts, each series' samples one after another (as `/api/v1/export`
/// or a history dump has them), in bodies of about 4 MiB, 4 senders.
fn import_part(learned: &NodeWorkload, sizes: &Sizes, scratch: &Path) {
    let work = learned.with_hosts((sizes.rw_hosts / 4).max(1));
    let labels = work.labels();
    let scrapes = sizes.rw_scrapes;
    let series = history(&work, scrapes, 11);
    let mut bodies: Vec<Vec<String>> = vec![Vec::new(); 4];
    let mut body = String::new();
    for (i, (l, samples)) in labels.iter().zip(&series).enumerate() {
        text_lines(&mut body, l, samples);
        if body.len() > 4 << 20 || i + 1 == labels.len() {
            let n = bodies.iter().map(Vec::len).sum::<usize>();
            bodies[n % 4].push(std::mem::take(&mut body));
        }
    }
    let samples = (labels.len() * scrapes) as f64;
    let megabytes = bodies.iter().flatten().map(String::len).sum::<usize>() as f64 / 1e6;
    let sextant = start_sextant(&scratch.join("sextant-import"), &[]);
    let ours = import_rate(&sextant, &bodies, samples);
    drop(sextant);
    let vm = start_victoria_metrics(&scratch.join("victoria-metrics-import"), false, &[]);
    let theirs = import_rate(&vm, &bodies, samples);
    drop(vm);
    say(&format!(
        "import via /api/v1/import/prometheus, {} series x {scrapes} samples ({megabytes:.0} MB of text), 4 senders: Sextant {ours:.0} samples/s, VictoriaMetrics {theirs:.0} samples/s (ratio {:.2})",
        labels.len(),
        ours / theirs
    ));
}

/// Every series' samples of `scrapes` scrapes from `seed`, by series.
fn history(workload: &NodeWorkload, scrapes: usize, seed: u64) -> Vec<Vec<(i64, f64)>> {
    let mut series: Vec<Vec<(i64, f64)>> =
        vec![Vec::with_capacity(scrapes); workload.labels().len()];
    let mut stream = workload.scrapes(START_MS, seed);
    for _ in 0..scrapes {
        let (t, values) = stream.next_scrape();
        for (s, v) in series.iter_mut().zip(values) {
            s.push((t, *v));
        }
    }
    series
}

/// One series' samples as text-format lines with millisecond timestamps.
fn text_lines(body: &mut String, labels: &Labels, samples: &[(i64, f64)]) {
    let name = labels.metric_name().unwrap_or_default();
    let rest: Vec<String> = labels
        .iter()
        .filter(|x| &*x.name != "__name__")
        .map(|x| format!("{}={:?}", x.name, &*x.value))
        .collect();
    let head = format!("{name}{{{}}}", rest.join(","));
    for (t, v) in samples {
        body.push_str(&format!("{head} {v} {t}\n"));
    }
}

/// Posts every body (4 senders); samples/s until the last is acknowledged.
fn import_rate(peer: &Peer, bodies: &[Vec<String>], samples: f64) -> f64 {
    let url = format!("{}/api/v1/import/prometheus", peer.url);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for mine in bodies {
            let url = url.clone();
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for body in mine {
                    let reply = agent
                        .post(&url)
                        .header("content-type", "text/plain")
                        .send(body.as_bytes())
                        .expect("import");
                    assert!(reply.status().is_success(), "import: {}", reply.status());
                }
            });
        }
    });
    samples / started.elapsed().as_secs_f64()
}

/// The engine as `sextant serve` runs it by default, with 15 days' retention.
fn open_tsdb(dir: &Path) -> Tsdb {
    Tsdb::open(
        dir,
        config(),
        PromDuration::from_secs(15 * 86_400),
        Arc::new(TsdbStats::default()),
    )
    .expect("open the metrics store")
}

fn config() -> TsdbConfig {
    TsdbConfig {
        wal_fsync: FsyncPolicy::Interval,
        ..TsdbConfig::default()
    }
}

/// Appends scrape by scrape; returns (block bytes per block sample, samples/s of append).
fn sextant_disk(
    shape: &str,
    labels: &[Labels],
    series: &[Vec<(i64, f64)>],
    dir: &Path,
) -> (f64, f64) {
    let db = open_tsdb(dir);
    let scrapes = series.first().map_or(0, Vec::len);
    let mut appending = Duration::ZERO;
    let mut total = 0usize;
    let mut values = Vec::with_capacity(series.len());
    for j in 0..scrapes {
        let t = series[0][j].0;
        values.clear();
        values.extend(series.iter().map(|s| s[j].1));
        let batch = scrape_batch(labels, t, &values);
        let started = Instant::now();
        let report = db.append(&batch).expect("append");
        appending += started.elapsed();
        total += report.accepted as usize;
    }
    db.maintain().expect("maintain");
    let (mut bytes, mut samples, mut index) = (0u64, 0u64, 0u64);
    for entry in std::fs::read_dir(dir.join("blocks"))
        .expect("blocks")
        .flatten()
    {
        let meta: sextant_storage::tsdb::BlockMeta =
            serde_json_meta(&entry.path().join("meta.json"));
        samples += meta.num_samples;
        bytes += dir_bytes(&entry.path());
        index += std::fs::metadata(entry.path().join("index")).map_or(0, |m| m.len());
    }
    say(&format!(
        "disk, {shape}: Sextant's index (labels, postings, chunk references, timestamp columns) {:.3} B/sample of it",
        index as f64 / samples.max(1) as f64
    ));
    (
        bytes as f64 / samples.max(1) as f64,
        total as f64 / appending.as_secs_f64(),
    )
}

fn serde_json_meta(path: &Path) -> sextant_storage::tsdb::BlockMeta {
    let text = std::fs::read_to_string(path).expect("meta.json");
    sextant_storage::tsdb::BlockMeta::from_json(&text).expect("meta.json parses")
}

/// The same samples through promtool into Prometheus blocks; bytes per sample.
fn prometheus_disk(labels: &[Labels], series: &[Vec<(i64, f64)>], dir: &Path) -> f64 {
    std::fs::create_dir_all(dir).expect("dir");
    let scrapes = series.first().map_or(0, Vec::len);
    let input = dir.join("input.om");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&input).expect("input"));
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|a, b| labels[*a].cmp(&labels[*b]));
    for i in order {
        let l = &labels[i];
        let name = l.metric_name().unwrap_or_default();
        let rest: Vec<String> = l
            .iter()
            .filter(|x| &*x.name != "__name__")
            .map(|x| {
                format!(
                    "{}=\"{}\"",
                    x.name,
                    x.value
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n")
                )
            })
            .collect();
        for (t, v) in &series[i] {
            writeln!(
                out,
                "{name}{{{}}} {v} {}.{:03}",
                rest.join(","),
                t / 1000,
                t % 1000
            )
            .expect("write");
        }
    }
    writeln!(out, "# EOF").expect("write");
    drop(out);
    let blocks = dir.join("blocks");
    let status = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&blocks)
        .stdout(Stdio::null())
        .status()
        .expect("run promtool");
    assert!(status.success(), "promtool failed");
    let samples: u64 = (labels.len() * scrapes) as u64;
    dir_bytes(&blocks) as f64 / samples as f64
}

/// The same samples through VictoriaMetrics' text import
/// (`/api/v1/import/prometheus`, series by series as promtool gets them),
/// flushed and merged; bytes per sample of its `data` and `indexdb`.
fn victoria_metrics_disk(labels: &[Labels], series: &[Vec<(i64, f64)>], dir: &Path) -> f64 {
    let vm = start_victoria_metrics(dir, false, &[]);
    let scrapes = series.first().map_or(0, Vec::len);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/api/v1/import/prometheus", vm.url);
    let mut body = String::new();
    let post = |body: &mut String| {
        let reply = agent.post(&url).send(body.as_bytes()).expect("import");
        assert!(reply.status().is_success(), "import: {}", reply.status());
        body.clear();
    };
    for (l, samples) in labels.iter().zip(series) {
        text_lines(&mut body, l, samples);
        if body.len() > 4 << 20 {
            post(&mut body);
        }
    }
    if !body.is_empty() {
        post(&mut body);
    }
    // Parts become searchable and merge in the background: flush, merge,
    // and wait until the directory stops shrinking.
    victoria_metrics_settle(&vm);
    let measure = || dir_bytes(&dir.join("data/data")) + dir_bytes(&dir.join("data/indexdb"));
    let mut last = u64::MAX;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_secs(2));
        let now = measure();
        if now == last {
            break;
        }
        last = now;
        victoria_metrics_settle(&vm);
    }
    let samples: u64 = (labels.len() * scrapes) as u64;
    let bytes = measure();
    drop(vm);
    bytes as f64 / samples as f64
}

/// Remote-write bodies: per scrape, 2000 series a request (Prometheus's max_samples_per_send).
fn remote_write_payloads(workload: &NodeWorkload, scrapes: usize) -> Vec<Vec<Vec<u8>>> {
    let labels = workload.labels();
    let mut stream = workload.scrapes(START_MS, 7);
    let mut per_sender: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
    for _ in 0..scrapes {
        let (t, values) = stream.next_scrape();
        for (chunk_index, chunk) in labels.chunks(2000).enumerate() {
            let offset = chunk_index * 2000;
            let request = proto::WriteRequest {
                timeseries: chunk
                    .iter()
                    .enumerate()
                    .map(|(i, l)| proto::TimeSeries {
                        labels: l
                            .iter()
                            .map(|x| proto::Label {
                                name: x.name.to_string(),
                                value: x.value.to_string(),
                            })
                            .collect(),
                        samples: vec![proto::Sample {
                            value: values[offset + i],
                            timestamp: t,
                        }],
                        exemplars: vec![],
                        histograms: vec![],
                    })
                    .collect(),
                metadata: vec![],
            };
            // One sender per chunk of series keeps each series in time order.
            per_sender[chunk_index % 4].push(encode(&request));
        }
    }
    per_sender
}

/// Sends every payload with 4 senders; returns (samples/s, RSS growth in bytes).
fn drive(peer: &Peer, payloads: &[Vec<Vec<u8>>], samples: f64) -> (f64, u64) {
    std::thread::sleep(Duration::from_millis(500));
    let baseline = rss_bytes(peer.child.id());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for bodies in payloads {
            let url = peer.write_url.clone();
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for body in bodies {
                    remote_write(&agent, &url, body);
                }
            });
        }
    });
    let rate = samples / started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    (rate, rss_bytes(peer.child.id()).saturating_sub(baseline))
}

/// Fills the WAL with `scrapes` samples for every series, then times a reopen.
fn sextant_replay(workload: &NodeWorkload, scrapes: usize, dir: &Path) -> (usize, f64) {
    let labels = workload.labels();
    {
        let db = open_tsdb(dir);
        let mut stream = workload.scrapes(START_MS, 3);
        for _ in 0..scrapes {
            let (t, values) = stream.next_scrape();
            for (chunk, values) in labels.chunks(10_000).zip(values.chunks(10_000)) {
                let batch = scrape_batch(chunk, t, values);
                db.append(&batch).expect("append");
            }
        }
        db.sync().expect("sync");
    }
    let started = Instant::now();
    let db = open_tsdb(dir);
    let took = started.elapsed().as_secs_f64();
    drop(db);
    (labels.len(), took)
}
