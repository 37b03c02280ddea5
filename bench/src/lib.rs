//! Side-by-side benchmarks: Sextant against the peer it replaces (Prometheus,
//! Alertmanager, node_exporter, statsd_exporter), measured in one run on one
//! machine and reported as ratios.
//!
//! Each benchmark is a binary under `bench/src/bin/` whose doc comment gives the
//! command that reproduces it. Timed assertions never appear in tests;
//! performance claims live here.
//!
//! This library holds what the benchmarks share: a workload shaped like real
//! node_exporter data ([`NodeWorkload`]) and process measurements.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sextant_ingest::prom_text;
use sextant_model::{Labels, Sample};
use sextant_storage::SeriesSamples;

/// How one series' value moves from scrape to scrape.
#[derive(Debug, Clone, Copy)]
enum Motion {
    /// Never changes (info metrics, sizes, flags).
    Constant,
    /// Grows by about `per_scrape` a scrape, rounded to `digits` decimals.
    Counter { per_scrape: f64, digits: i32 },
    /// Wanders by about `step` a scrape, rounded to `digits` decimals.
    Gauge { step: f64, digits: i32 },
    /// A fresh measurement each scrape (durations), printed with `digits`
    /// decimals as the exporter prints them (Go durations: nanoseconds, 9).
    Noise { scale: f64, digits: i32 },
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
            let motion = if v1.to_bits() == v2.to_bits() {
                Motion::Constant
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
                }
            } else {
                Motion::Gauge {
                    step: (v2 - v1).abs().max(10f64.powi(-digits)),
                    digits,
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
    values: Vec<f64>,
    started: bool,
}

impl Scrapes<'_> {
    /// The next scrape: its timestamp and every series' value.
    pub fn next_scrape(&mut self) -> (i64, &[f64]) {
        if self.started {
            let per_host = self.workload.template.len();
            for (i, v) in self.values.iter_mut().enumerate() {
                *v = step(*v, self.workload.template[i % per_host].2, &mut self.rng);
            }
        }
        self.started = true;
        let late = if self.rng.next_u64().is_multiple_of(50) {
            1 + (self.rng.next_u64() % 40) as i64
        } else {
            0
        };
        let t = self.next_ms + late;
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

fn step(v: f64, motion: Motion, rng: &mut Rng) -> f64 {
    match motion {
        Motion::Constant => v,
        Motion::Counter { per_scrape, digits } => {
            if per_scrape == 0.0 || rng.unit() < 0.3 {
                v
            } else {
                round_to(v + per_scrape * (0.5 + rng.unit()), digits)
            }
        }
        Motion::Gauge { step, digits } => {
            if rng.unit() < 0.5 {
                v
            } else {
                round_to(v + step * (rng.unit() * 2.0 - 1.0), digits)
            }
        }
        Motion::Noise { scale, digits } => round_to(scale * (0.5 + rng.unit()), digits),
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
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
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
pub fn bytes_by_extension(dir: &std::path::Path) -> Vec<(String, u64)> {
    fn walk(dir: &std::path::Path, out: &mut std::collections::BTreeMap<String, u64>) {
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

/// Starts the release `sextant` beside this bench binary, data in `dir/data`.
pub fn start_sextant(dir: &std::path::Path, extra: &[&str]) -> Peer {
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
        ("--log-level", "warn".into()),
    ] {
        if !extra.contains(&flag) {
            defaults.extend([flag.to_owned(), value]);
        }
    }
    let child = Command::new(&binary)
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .args(&defaults)
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start {}: {e} (cargo build --release -p sextant-server)",
                binary.display()
            )
        });
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/-/ready"));
    Peer {
        child,
        write_url: format!("{url}/api/v1/write"),
        url,
    }
}

/// Starts Debian's Prometheus 2.42 with its remote-write receiver on, data in `dir/data`.
pub fn start_prometheus(dir: &std::path::Path, extra: &[&str]) -> Peer {
    start_prometheus_with(dir, "global:\n  scrape_interval: 15s\n", extra)
}

/// As [`start_prometheus`], with `config` as its prometheus.yml.
pub fn start_prometheus_with(dir: &std::path::Path, config: &str, extra: &[&str]) -> Peer {
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
