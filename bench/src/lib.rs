//! Side-by-side benchmarks: Sextant against the peer it replaces (Prometheus,
//! Alertmanager, node_exporter, statsd_exporter), measured in one run on one
//! machine and reported as ratios.
//!
//! Each benchmark is a binary under `bench/src/bin/` whose doc comment gives the
//! command that reproduces it. Timed assertions never appear in tests;
//! performance claims live here.
//!
//! This library holds what the benchmarks share: a workload shaped like real
//! node_exporter data ([`NodeWorkload`]), an application fleet's
//! ([`fleet`]), and process measurements.

pub mod fleet;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sextant_ingest::prom_text;
use sextant_model::{Labels, Sample};
use sextant_storage::SeriesSamples;

/// How one series' value moves from scrape to scrape.
#[derive(Debug, Clone, Copy)]
enum Motion {
    /// Never changes (info metrics, sizes, flags).
    Constant,
    /// Grows by about `per_scrape` a scrape, rounded to `digits` decimals,
    /// or to whole `unit`s (see [`unit_of`]).
    Counter {
        per_scrape: f64,
        digits: i32,
        unit: f64,
    },
    /// Wanders by about `step` a scrape, rounded to `digits` decimals or
    /// whole `unit`s.
    Gauge { step: f64, digits: i32, unit: f64 },
    /// A fresh measurement each scrape (durations), printed with `digits`
    /// decimals as the exporter prints them (Go durations: nanoseconds, 9).
    Noise { scale: f64, digits: i32 },
    /// A clock read at each scrape (`node_time_seconds`): the time between
    /// scrapes plus up to [`CLOCK_JITTER`] of latency, with `digits`
    /// decimals.
    Clock { digits: i32 },
}

/// How much later than the scrape's timestamp a scraped clock reads it, at
/// most: the request's latency, in seconds.
const CLOCK_JITTER: f64 = 0.002;

/// The unit two integer readings move in: the largest power of two
/// dividing both, when it is at least 256 (memory and disk sizes move by
/// whole 4 KiB pages or 512 B sectors; two unrelated integers share such a
/// divisor once in 65,536), else 1.
fn unit_of(v1: f64, v2: f64) -> f64 {
    let whole = |v: f64| v.fract() == 0.0 && v.abs() < 9e15;
    if !whole(v1) || !whole(v2) {
        return 1.0;
    }
    let zeros = ((v1 as i64) | (v2 as i64)).trailing_zeros();
    if (8..53).contains(&zeros) {
        2f64.powi(zeros as i32)
    } else {
        1.0
    }
}

/// One learned series: its labels, first value and motion.
type TemplateSeries = (Vec<(String, String)>, f64, Motion);

/// node_exporter-shaped data: the series set and starting values of a real
/// node_exporter scrape, evolved scrape by scrape the way each series was seen
/// to move between two real scrapes, for any number of hosts.
#[derive(Debug, Clone)]
pub struct NodeWorkload {
    template: Vec<TemplateSeries>,
    /// Hosts; each gets every template series with its own `instance`.
    pub hosts: usize,
}

/// Digits after the decimal point in the shortest text for `v` (capped at 9).
fn digits_of(v: f64) -> i32 {
    let text = format!("{v}");
    text.split_once('.')
        .map_or(0, |(_, f)| f.len().min(9) as i32)
}

impl NodeWorkload {
    /// Scrapes a real node_exporter twice, `gap` apart, and learns from it.
    pub fn learn(exporter_url: &str, gap: Duration, hosts: usize) -> Self {
        let first = scrape(exporter_url);
        std::thread::sleep(gap);
        let second = scrape(exporter_url);
        let secs = gap.as_secs_f64();
        let mut template = Vec::new();
        for (key, (pairs, v1)) in &first {
            let Some((_, v2)) = second.get(key) else {
                continue;
            };
            let name = pairs
                .iter()
                .find(|(n, _)| n == "__name__")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            let digits = digits_of(*v1).max(digits_of(*v2));
            let unit = unit_of(*v1, *v2);
            let motion = if v1.to_bits() == v2.to_bits() {
                Motion::Constant
            } else if name.ends_with("_seconds")
                && !name.ends_with("_total")
                && (v2 - v1 - secs).abs() < 0.5
            {
                Motion::Clock {
                    digits: digits.max(1),
                }
            } else if name.ends_with("_seconds") && !name.ends_with("_total") {
                Motion::Noise {
                    scale: v2.abs().max(1e-6),
                    digits: digits.max(1),
                }
            } else if name.ends_with("_total") || name.ends_with("_count") || name.ends_with("_sum")
            {
                Motion::Counter {
                    per_scrape: ((v2 - v1) / secs * 15.0).max(0.0),
                    digits,
                    unit,
                }
            } else {
                Motion::Gauge {
                    step: (v2 - v1).abs().max(10f64.powi(-digits)),
                    digits,
                    unit,
                }
            };
            template.push((pairs.clone(), *v1, motion));
        }
        template.sort_by(|a, b| a.0.cmp(&b.0));
        Self { template, hosts }
    }

    /// The same series and motions for another number of hosts.
    pub fn with_hosts(&self, hosts: usize) -> Self {
        Self {
            template: self.template.clone(),
            hosts,
        }
    }

    /// Series per host.
    pub fn series_per_host(&self) -> usize {
        self.template.len()
    }

    /// The entropy of the values this workload makes, in bytes a sample
    /// averaged over its series: the least a lossless store can keep them
    /// in, on average, since each series moves by independent draws
    /// (timestamps, shared by a host's series, and the index left out). An
    /// estimate: a uniform draw over a width of `w` units of the last digit
    /// (or of the series' unit) counts `log2(1 + w)` bits.
    pub fn entropy_bytes_per_sample(&self) -> f64 {
        let either = |p: f64| -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
        let spread = |width: f64, digits: i32| (1.0 + width * 10f64.powi(digits)).log2();
        let in_units = |width: f64, digits: i32, unit: f64| {
            if unit > 1.0 {
                (1.0 + width / unit).log2()
            } else {
                spread(width, digits)
            }
        };
        let bits: f64 = self
            .template
            .iter()
            .map(|(_, _, motion)| match *motion {
                Motion::Constant => 0.0,
                Motion::Counter {
                    per_scrape: 0.0, ..
                } => 0.0,
                // Held still 30% of scrapes, else up by 0.5..1.5 per_scrape.
                Motion::Counter {
                    per_scrape,
                    digits,
                    unit,
                } => either(0.3) + 0.7 * in_units(per_scrape, digits, unit),
                // Held still half the scrapes, else moved within ±step.
                Motion::Gauge { step, digits, unit } => {
                    either(0.5) + 0.5 * in_units(2.0 * step, digits, unit)
                }
                // Drawn afresh within 0.5..1.5 scale.
                Motion::Noise { scale, digits } => spread(scale, digits),
                // The latency; the scrape times are a host's, shared.
                Motion::Clock { digits } => spread(CLOCK_JITTER, digits),
            })
            .sum();
        bits / 8.0 / self.template.len() as f64
    }

    /// Every series' labels.
    pub fn labels(&self) -> Vec<Labels> {
        (0..self.hosts)
            .flat_map(|h| {
                self.template
                    .iter()
                    .map(move |(pairs, _, _)| host_labels(pairs, h))
            })
            .collect()
    }

    /// Scrapes 15 s apart from `start_ms`, each the value of every series
    /// (in [`NodeWorkload::labels`] order). A scrape lands a few milliseconds
    /// late one time in fifty, as real scrapes sometimes do.
    pub fn scrapes(&self, start_ms: i64, seed: u64) -> Scrapes<'_> {
        let values = (0..self.hosts)
            .flat_map(|_| self.template.iter().map(|(_, v, _)| *v))
            .collect();
        Scrapes {
            workload: self,
            rng: Rng(seed | 1),
            next_ms: start_ms,
            last_ms: start_ms,
            values,
            started: false,
        }
    }
}

/// One scrape as an append batch: every series with its one sample.
pub fn scrape_batch(labels: &[Labels], t: i64, values: &[f64]) -> Vec<SeriesSamples> {
    labels
        .iter()
        .zip(values)
        .map(|(l, v)| SeriesSamples {
            labels: l.clone(),
            samples: vec![Sample {
                timestamp_ms: t,
                value: *v,
            }],
        })
        .collect()
}

/// The scrape-by-scrape stream of a [`NodeWorkload`].
#[derive(Debug)]
pub struct Scrapes<'a> {
    workload: &'a NodeWorkload,
    rng: Rng,
    next_ms: i64,
    /// The last scrape's timestamp.
    last_ms: i64,
    values: Vec<f64>,
    started: bool,
}

impl Scrapes<'_> {
    /// The next scrape: its timestamp and every series' value.
    pub fn next_scrape(&mut self) -> (i64, &[f64]) {
        let late = if self.rng.next_u64().is_multiple_of(50) {
            1 + (self.rng.next_u64() % 40) as i64
        } else {
            0
        };
        let t = self.next_ms + late;
        if self.started {
            let per_host = self.workload.template.len();
            let elapsed = (t - self.last_ms) as f64 / 1000.0;
            for (i, v) in self.values.iter_mut().enumerate() {
                let motion = self.workload.template[i % per_host].2;
                *v = step(*v, motion, elapsed, &mut self.rng);
            }
        }
        self.started = true;
        self.last_ms = t;
        self.next_ms += 15_000;
        (t, &self.values)
    }
}

fn host_labels(pairs: &[(String, String)], host: usize) -> Labels {
    Labels::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.clone())).chain([
        ("instance", format!("host-{host}:9100")),
        ("job", "node".to_owned()),
    ]))
}

fn round_to(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    // Through text, as an exporter prints it.
    format!("{:.*}", digits.max(0) as usize, (v * scale).round() / scale)
        .parse()
        .unwrap_or(v)
}

/// Rounded to whole `unit`s where it has one, else to `digits` decimals.
fn round_in(v: f64, digits: i32, unit: f64) -> f64 {
    if unit > 1.0 {
        (v / unit).round() * unit
    } else {
        round_to(v, digits)
    }
}

/// The value after `v` by `motion`, `elapsed` seconds since the last scrape.
fn step(v: f64, motion: Motion, elapsed: f64, rng: &mut Rng) -> f64 {
    match motion {
        Motion::Constant => v,
        Motion::Counter {
            per_scrape,
            digits,
            unit,
        } => {
            if per_scrape == 0.0 || rng.unit() < 0.3 {
                v
            } else {
                round_in(v + per_scrape * (0.5 + rng.unit()), digits, unit)
            }
        }
        Motion::Gauge { step, digits, unit } => {
            if rng.unit() < 0.5 {
                v
            } else {
                round_in(v + step * (rng.unit() * 2.0 - 1.0), digits, unit)
            }
        }
        Motion::Noise { scale, digits } => round_to(scale * (0.5 + rng.unit()), digits),
        Motion::Clock { digits } => round_to(v + elapsed + CLOCK_JITTER * rng.unit(), digits),
    }
}

/// xorshift64: fast, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

type Scrape = HashMap<String, (Vec<(String, String)>, f64)>;

fn scrape(url: &str) -> Scrape {
    let body = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("scrape {url}: {e}"))
        .body_mut()
        .read_to_string()
        .expect("scrape body");
    prom_text::parse(&body)
        .samples
        .into_iter()
        .filter(|s| s.value.is_finite())
        .map(|s| {
            let pairs: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            (s.labels.to_string(), (pairs, s.value))
        })
        .collect()
}

/// A node_exporter from Debian on a loopback port, killed on drop.
#[derive(Debug)]
pub struct NodeExporter {
    child: Child,
    /// Its `/metrics` URL.
    pub url: String,
}

impl NodeExporter {
    /// Starts `/usr/bin/prometheus-node-exporter` on `port`.
    pub fn start(port: u16) -> Self {
        let child = Command::new("/usr/bin/prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter (scripts/setup-test-env installs it)");
        let exporter = Self {
            child,
            url: format!("http://127.0.0.1:{port}/metrics"),
        };
        for _ in 0..100 {
            if ureq::get(&exporter.url).call().is_ok() {
                return exporter;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node exporter did not start");
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// Anonymous resident memory of `pid` (the heap, not mapped files), bytes.
pub fn anon_bytes(pid: u32) -> u64 {
    status_bytes(pid, "RssAnon:")
}

/// A kB figure of `/proc/<pid>/status`, in bytes (0 when unreadable).
fn status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Total bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes under `dir` per file extension (tantivy's `.idx`, `.pos`, `.store`, ...), largest first.
pub fn bytes_by_extension(dir: &Path) -> Vec<(String, u64)> {
    fn walk(dir: &Path, out: &mut std::collections::BTreeMap<String, u64>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => walk(&entry.path(), out),
                Ok(m) => {
                    let path = entry.path();
                    let ext = path
                        .extension()
                        .map_or_else(|| "(none)".to_owned(), |e| e.to_string_lossy().into_owned());
                    *out.entry(ext).or_default() += m.len();
                }
                Err(_) => {}
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, &mut out);
    let mut out: Vec<(String, u64)> = out.into_iter().collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

/// CPU seconds (user and system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A server under test (Sextant or Prometheus), killed on drop.
#[derive(Debug)]
pub struct Peer {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its remote-write receiver.
    pub write_url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(url: &str) {
    for _ in 0..600 {
        if ureq::get(url).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never became ready");
}

/// Starts the release `sextant` beside this bench binary, data in
/// `dir/data`, its log in `dir/sextant.log`; panics with the log's end if
/// it exits before it is ready.
pub fn start_sextant(dir: &Path, extra: &[&str]) -> Peer {
    let port = free_port();
    let binary = std::env::current_exe()
        .expect("exe")
        .with_file_name("sextant");
    // Listeners the bench does not use get port 0, unless `extra` names them.
    let mut defaults: Vec<String> = Vec::new();
    for (flag, value) in [
        ("--http", format!("127.0.0.1:{port}")),
        ("--otlp-grpc", "0".into()),
        ("--otlp-http", "0".into()),
        ("--statsd", "0".into()),
        ("--logstash", "0".into()),
        ("--syslog", "0".into()),
        ("--forward", "0".into()),
        ("--log-level", "warn".into()),
    ] {
        if !extra.contains(&flag) {
            defaults.extend([flag.to_owned(), value]);
        }
    }
    std::fs::create_dir_all(dir).expect("sextant's dir");
    let log_path = dir.join("sextant.log");
    let log = std::fs::File::create(&log_path).expect("create sextant.log");
    let child = Command::new(&binary)
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .args(&defaults)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (cargo build --release -p sextant-server)",
                binary.display()
            )
        });
    let url = format!("http://127.0.0.1:{port}");
    let mut peer = Peer {
        child,
        write_url: format!("{url}/api/v1/write"),
        url,
    };
    let started = Instant::now();
    while ureq::get(&format!("{}/-/ready", peer.url)).call().is_err() {
        if let Some(status) = peer.child.try_wait().expect("wait") {
            panic!("sextant exited with {status}:\n{}", log_tail(&log_path, 40));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sextant never became ready:\n{}",
            log_tail(&log_path, 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    peer
}

/// Starts Debian's Prometheus 2.42 with its remote-write receiver on, data in `dir/data`.
pub fn start_prometheus(dir: &Path, extra: &[&str]) -> Peer {
    start_prometheus_with(dir, "global:\n  scrape_interval: 15s\n", extra)
}

/// As [`start_prometheus`], with `config` as its prometheus.yml.
pub fn start_prometheus_with(dir: &Path, config: &str, extra: &[&str]) -> Peer {
    std::fs::create_dir_all(dir).expect("dir");
    let port = free_port();
    std::fs::write(dir.join("prometheus.yml"), config).expect("config");
    let child = Command::new("/usr/bin/prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/-/ready"));
    Peer {
        child,
        write_url: format!("{url}/api/v1/write"),
        url,
    }
}

/// Starts Debian's VictoriaMetrics (1.79) single-node, data in `dir/data`,
/// retention long enough for any bench's timestamps, no latency offset (it
/// hides the newest 30 s by default) and, unless `cache` is true, its
/// rollup result cache off (`-search.disableCache`).
pub fn start_victoria_metrics(dir: &Path, cache: bool, extra: &[&str]) -> Peer {
    std::fs::create_dir_all(dir).expect("dir");
    let port = free_port();
    let log = std::fs::File::create(dir.join("victoria-metrics.log")).expect("log");
    let mut command = Command::new("/usr/bin/victoria-metrics");
    command
        .arg(format!("-storageDataPath={}", dir.join("data").display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .args([
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ]);
    if !cache {
        command.arg("-search.disableCache");
    }
    let child = command
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start victoria-metrics (scripts/setup-test-env installs it)");
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/health"));
    Peer {
        child,
        write_url: format!("{url}/api/v1/write"),
        url,
    }
}

/// Asks VictoriaMetrics to make everything it took in searchable now
/// (`/internal/force_flush`) and to merge its parts (`/internal/force_merge`).
pub fn victoria_metrics_settle(peer: &Peer) {
    for path in ["/internal/force_flush", "/internal/force_merge"] {
        let _ = ureq::get(&format!("{}{path}", peer.url)).call();
    }
}

/// Posts one snappy remote-write body; panics unless it is accepted.
pub fn remote_write(agent: &ureq::Agent, url: &str, body: &[u8]) {
    let reply = agent
        .post(url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .send(body)
        .expect("remote write");
    assert!(
        reply.status().is_success(),
        "remote write to {url} answered {}",
        reply.status()
    );
}

/// The value after `flag` on the command line (`--only range`), if given.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Prints a line of results at once (runs are long; output should not wait).
pub fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Milliseconds since the epoch, UTC.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ------------------------------------------------ logstash events (logs, object_store)

const DAY_US: i64 = 24 * 3600 * 1_000_000;

pub const SERVICES: [&str; 10] = [
    "gateway",
    "orders",
    "market",
    "fees",
    "account",
    "profile",
    "settings",
    "payments",
    "transactions",
    "notifications",
];
pub const MESSAGES: [&str; 8] = [
    "placing sell order",
    "order placed",
    "order failed: insufficient funds",
    "charging fee",
    "looking up ip address",
    "settings loaded from cache",
    "request completed",
    "upstream timed out after retry",
];
pub const ROUTES: [&str; 6] = [
    "/orders",
    "/orders/{id}",
    "/profile",
    "/fees",
    "/market/quote",
    "/health",
];

/// Event `i` as python-logstash (v1) writes it; requests share a uuid over ~10 lines.
pub fn event(i: u64, rng: &mut Rng, start_us: i64, docs: u64) -> String {
    let t = start_us + (i as i64) * (DAY_US / docs as i64);
    let seconds = t / 1_000_000;
    let micros = t % 1_000_000;
    let (y, mo, d) = sextant_model::time::civil_from_days(seconds / 86_400);
    let s = seconds % 86_400;
    let service = SERVICES[(rng.next_u64() % 10) as usize];
    let message = MESSAGES[(rng.next_u64() % 8) as usize];
    let level = match rng.next_u64() % 20 {
        0 => "ERROR",
        1 | 2 => "WARNING",
        _ => "INFO",
    };
    let request = i / 10;
    format!(
        r#"{{"@timestamp":"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z","@version":"1","message":"{message}","host":"{service}-{}","levelname":"{level}","logger_name":"simplebank.{service}","type":"{service}","uuid":"{}","route":"{}","status":{},"duration_ms":{}}}"#,
        s / 3600,
        s % 3600 / 60,
        s % 60,
        rng.next_u64() % 50,
        request_uuid(request),
        ROUTES[(rng.next_u64() % 6) as usize],
        [200, 200, 200, 201, 404, 500][(rng.next_u64() % 6) as usize],
        rng.next_u64() % 2000,
    )
}

/// The uuid every line of request `request` carries.
pub fn request_uuid(request: u64) -> String {
    format!(
        "{request:08x}-4e1f-4c2a-9b7d-{:012x}",
        request.wrapping_mul(2_654_435_761) % (1 << 48)
    )
}

/// `text` percent-encoded for a query string.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// --------------------------------------- SeaweedFS and NATS (object_store, cluster)

/// A sample's value on a `/metrics` page, summed over its series (0 if absent).
pub fn metric_value(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// SeaweedFS (`weed server` with its S3 gateway) on loopback ports, with
/// bucket [`SeaweedFs::BUCKET`] and one admin identity; killed and its
/// leftovers removed on drop. The same set-up as the tests' harness: weed
/// cannot bind port 0 and its gRPC ports default to HTTP + 10000, so all
/// eight ports are picked and passed; telemetry (which phones home) and the
/// Iceberg and Lance listeners (fixed ports) are off. `weed` is
/// `$SEXTANT_WEED`, else the one beside [`test_python`].
#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    dir: tempfile::TempDir,
    /// Master, volume, filer and S3: each an HTTP and a gRPC port.
    ports: [u16; 8],
    python: PathBuf,
}

const WEED_MASTER: usize = 0;
const WEED_VOLUME: usize = 2;
const WEED_FILER: usize = 4;
const WEED_S3: usize = 6;

impl SeaweedFs {
    /// The bucket [`SeaweedFs::start`] creates.
    pub const BUCKET: &str = "sextant";
    /// The one identity's access key (an admin).
    pub const ACCESS_KEY: &str = "sextant-bench";
    /// The one identity's secret key.
    pub const SECRET_KEY: &str = "sextant-bench-secret";

    /// Starts SeaweedFS on fresh loopback ports and data; returns once S3
    /// takes a write and the bucket exists.
    pub fn start() -> Self {
        let weed_env = std::env::var_os("SEXTANT_WEED").map(PathBuf::from);
        let python = std::env::var_os("SEXTANT_TEST_PYTHON")
            .map(PathBuf::from)
            .or_else(|| {
                weed_env
                    .as_ref()
                    .map(|w| w.with_file_name("python"))
                    .filter(|p| p.is_file())
            })
            .unwrap_or_else(test_python);
        let weed = weed_env.unwrap_or_else(|| python.with_file_name("weed"));
        assert!(
            weed.is_file(),
            "{} not found: run scripts/setup-test-env or set SEXTANT_WEED",
            weed.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("data")).expect("weed data dir");
        let identities = serde_json::json!({"identities": [{
            "name": "sextant",
            "credentials": [{"accessKey": Self::ACCESS_KEY, "secretKey": Self::SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]});
        std::fs::write(dir.path().join("s3.json"), identities.to_string()).expect("s3.json");
        // free_port gives each port back at once: insist on eight distinct.
        let mut ports = [0; 8];
        for i in 0..ports.len() {
            ports[i] = loop {
                let port = free_port();
                if !ports[..i].contains(&port) {
                    break port;
                }
            };
        }
        let path = |name: &str| dir.path().join(name).display().to_string();
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("weed.log");
        let p = ports;
        let child = Command::new(&weed)
            // Without it glog also writes weed.* files to /tmp.
            .arg("-logtostderr")
            .arg("server")
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-dir={}", path("data")))
            .arg(format!("-master.port={}", p[WEED_MASTER]))
            .arg(format!("-master.port.grpc={}", p[WEED_MASTER + 1]))
            .args([
                "-master.volumeSizeLimitMB=64",
                "-master.telemetry=false",
                "-master.electionTimeout=1s",
                "-master.resumeState=false",
            ])
            .arg(format!("-volume.port={}", p[WEED_VOLUME]))
            .arg(format!("-volume.port.grpc={}", p[WEED_VOLUME + 1]))
            // Room for the volumes a 10M-line run needs (64 MB each).
            .args(["-volume.max=64", "-volume.preStopSeconds=0", "-filer"])
            .arg(format!("-filer.port={}", p[WEED_FILER]))
            .arg(format!("-filer.port.grpc={}", p[WEED_FILER + 1]))
            .arg(format!("-filer.localSocket={}", path("filer.sock")))
            .arg("-s3")
            .arg(format!("-s3.port={}", p[WEED_S3]))
            .arg(format!("-s3.port.grpc={}", p[WEED_S3 + 1]))
            .arg(format!("-s3.config={}", path("s3.json")))
            .arg(format!("-s3.localSocket={}", path("s3.sock")))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("weed.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", weed.display()));
        let mut weed = Self {
            child,
            dir,
            ports,
            python,
        };
        // Listings may be answered before the volume server has joined the
        // master: only a write (s3.py's probe) proves the store ready.
        let started = Instant::now();
        while std::net::TcpStream::connect(weed.s3_addr()).is_err() {
            if let Some(status) = weed.child.try_wait().expect("wait") {
                panic!("weed exited with {status}:\n{}", weed.log_tail());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "SeaweedFS's S3 never listened:\n{}",
                weed.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        weed.s3(&["wait", "60"]);
        weed.s3(&["create-bucket"]);
        weed
    }

    /// The S3 endpoint's address (path-style, region `us-east-1`).
    pub fn s3_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[WEED_S3]))
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3_addr())
    }

    /// The process id, for [`cpu_seconds`].
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The keys under `prefix` in the bucket.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.s3(&["list", prefix])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Runs `tests/python/s3.py` (boto3) against the store, straight (not
    /// through the proxy); panics with its error output if it fails.
    fn s3(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/s3.py");
        let out = Command::new(&self.python)
            .arg(&script)
            .arg(format!("http://{}", self.s3_addr()))
            .args(args)
            .env("S3_BUCKET", Self::BUCKET)
            .env("S3_ACCESS_KEY", Self::ACCESS_KEY)
            .env("S3_SECRET_KEY", Self::SECRET_KEY)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "s3.py {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log_tail(&self) -> String {
        log_tail(&self.dir.path().join("weed.log"), 40)
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // SIGKILL: SIGTERM's graceful gRPC stop takes seconds.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for (server, grpc) in [
            ("master", WEED_MASTER + 1),
            ("volume", WEED_VOLUME + 1),
            ("filer", WEED_FILER + 1),
            ("s3", WEED_S3 + 1),
        ] {
            let socket = format!("/tmp/seaweedfs-{server}-grpc-{}.sock", self.ports[grpc]);
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// The test venv's python: `$SEXTANT_TEST_PYTHON`, else what
/// `scripts/setup-test-env` prints (installing what is missing).
/// `nats-server` and `weed` live beside it.
pub fn test_python() -> PathBuf {
    if let Some(python) = std::env::var_os("SEXTANT_TEST_PYTHON") {
        return python.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-test-env");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The last `lines` lines of a log file (empty if unreadable), for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A NATS cluster with JetStream on loopback, as the tests' harness runs
/// one: `nats-server` from the test venv, one process per node with its own
/// store, each routed to the others. Dropping it kills every node and
/// removes the stores.
#[derive(Debug)]
pub struct NatsCluster {
    dir: tempfile::TempDir,
    /// Per node: client, route and monitoring ports.
    ports: Vec<[u16; 3]>,
    children: Vec<Child>,
}

/// Where a JetStream stream stands, as one of its replicas reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamState {
    /// The last message's sequence: messages ever stored.
    pub last_seq: u64,
    /// Bytes held now (one replica's copy).
    pub bytes: u64,
}

impl NatsCluster {
    /// Starts `nodes` (two or more) servers and waits until each answers
    /// `/healthz` and the JetStream meta group has a leader every node
    /// follows, which sees the others current.
    pub fn start(nodes: usize) -> Self {
        assert!(nodes >= 2, "a NATS cluster of {nodes}");
        let bin = test_python().with_file_name("nats-server");
        assert!(
            bin.is_file(),
            "{} not found: run scripts/setup-test-env",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut taken = Vec::new();
        let mut port = || loop {
            let port = free_port();
            if !taken.contains(&port) {
                taken.push(port);
                break port;
            }
        };
        let ports: Vec<[u16; 3]> = (0..nodes).map(|_| [port(), port(), port()]).collect();
        let children = (0..nodes)
            .map(|node| {
                let [client, route, monitor] = ports[node];
                let routes: Vec<String> = (0..nodes)
                    .filter(|other| *other != node)
                    .map(|other| format!("\"nats-route://127.0.0.1:{}\"", ports[other][1]))
                    .collect();
                // Room for a fast run's log: three replicas of every record
                // land on this one disk.
                let config = format!(
                    "server_name: n{node}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                     jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n\
                     cluster {{\n  name: sextant-bench\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n",
                    store = dir.path().join(format!("n{node}-store")).display(),
                    routes = routes.join(", ")
                );
                let config_path = dir.path().join(format!("n{node}.conf"));
                std::fs::write(&config_path, config).expect("write the NATS config");
                let log = std::fs::File::create(dir.path().join(format!("n{node}.log")))
                    .expect("create the NATS log");
                Command::new(&bin)
                    .arg("-c")
                    .arg(&config_path)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("clone the NATS log"))
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
            })
            .collect();
        let mut cluster = Self {
            dir,
            ports,
            children,
        };
        cluster.wait_ready();
        cluster
    }

    /// Client URLs of the nodes, `nats://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{}", p[0]))
            .collect()
    }

    /// Process ids of the nodes, for [`cpu_seconds`].
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Stream `name` as node 0 (a replica of every stream of a cluster of
    /// up to three) reports it on `/jsz`; the default if it does not exist.
    pub fn stream(&self, name: &str) -> StreamState {
        let jsz = self.monitor(0, "/jsz?streams=true").unwrap_or_default();
        jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
            .find(|stream| stream["name"] == name)
            .map(|stream| StreamState {
                last_seq: stream["state"]["last_seq"].as_u64().unwrap_or(0),
                bytes: stream["state"]["bytes"].as_u64().unwrap_or(0),
            })
            .unwrap_or_default()
    }

    /// A monitoring page of node `node` as JSON, if it answers.
    fn monitor(&self, node: usize, path: &str) -> Option<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.ports[node][2]);
        let mut reply = ureq::get(&url).call().ok()?;
        serde_json::from_str(&reply.body_mut().read_to_string().ok()?).ok()
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            for node in 0..self.children.len() {
                if let Ok(Some(status)) = self.children[node].try_wait() {
                    panic!(
                        "nats-server n{node} exited with {status}:\n{}",
                        log_tail(&self.dir.path().join(format!("n{node}.log")), 40)
                    );
                }
            }
            // Every node healthy and following one meta leader, which
            // sees every other node current: streams can be placed.
            let metas: Vec<serde_json::Value> = (0..self.children.len())
                .filter_map(|node| {
                    self.monitor(node, "/healthz")?;
                    Some(self.monitor(node, "/jsz")?["meta_cluster"].clone())
                })
                .collect();
            let leader = metas.first().and_then(|m| m["leader"].as_str());
            let formed = metas.len() == self.children.len()
                && leader.is_some_and(|leader| {
                    metas.iter().all(|m| m["leader"] == leader)
                        && metas.iter().any(|m| {
                            m["replicas"].as_array().is_some_and(|peers| {
                                peers.iter().all(|p| p["name"] != leader)
                                    && peers.iter().filter(|p| p["current"] == true).count() + 1
                                        >= self.children.len()
                            })
                        })
                });
            if formed {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the NATS cluster never elected a current JetStream leader:\n{}",
                log_tail(&self.dir.path().join("n0.log"), 40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_pages_move_in_pages_and_other_integers_by_one() {
        // Two real readings of node_memory_MemFree_bytes, 15 s apart.
        assert_eq!(unit_of(21_935_472_640.0, 22_013_046_784.0), 4096.0);
        // go_memstats_alloc_bytes: both happen to be multiples of 16 only.
        assert_eq!(unit_of(924_592.0, 1_800_432.0), 1.0);
        assert_eq!(unit_of(15.28, 16.37), 1.0);
        let mut rng = Rng(9);
        let motion = Motion::Gauge {
            step: 77_574_144.0,
            digits: 0,
            unit: 4096.0,
        };
        let mut v = 21_935_472_640.0;
        for _ in 0..100 {
            v = step(v, motion, 15.0, &mut rng);
            assert_eq!(v % 4096.0, 0.0, "{v}");
        }
        // A clock moves with the scrapes, a little late.
        let clock = Motion::Clock { digits: 6 };
        let next = step(1_796_505_309.261569, clock, 15.0, &mut rng);
        assert!((15.0..15.0 + CLOCK_JITTER).contains(&(next - 1_796_505_309.261569)));
    }
}
