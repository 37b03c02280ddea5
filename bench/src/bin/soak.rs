//! The soak: every ingest path at once (StatsD over UDP, remote write, logs
//! over HTTP, spans over OTLP/HTTP) at about 70 % of the most the server
//! took of that same mix in this run, plus a steady query load (PromQL range
//! queries, log searches, trace searches, correlation), for ten minutes.
//! Reports RSS over time (it must level off), p50/p99 latency of each ingest
//! and query kind, and every error.
//!
//! `cargo build --release -p sextant-server -p sextant-bench && target/release/soak`
//! (`--minutes N`, `--load 0.7`, `--calibrate-seconds 20`, `--block-duration 2m`).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;
use sextant_bench::{anon_bytes, flag_value, free_port, now_ms, rss_bytes, say, start_sextant};
use sextant_ingest::otlp::proto::common::{AnyValue, KeyValue, Resource, any_value};
use sextant_ingest::otlp::proto::trace::{
    ExportTraceServiceRequest, ResourceSpans, ScopeSpans, Span,
};
use sextant_ingest::remote_write::{encode, proto};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One unit of each ingest kind.
const SERIES_PER_WRITE: usize = 200;
const LINES_PER_POST: usize = 100;
const SPANS_PER_EXPORT: usize = 50;
const STATSD_LINES_PER_SEND: usize = 20;
/// Paced senders per ingest kind.
const SENDERS: usize = 4;
const SERVICES: [&str; 5] = ["gateway", "orders", "market", "fees", "accounts"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    RemoteWrite,
    Logs,
    Spans,
    Statsd,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::RemoteWrite, Kind::Logs, Kind::Spans, Kind::Statsd];

    fn name(self) -> &'static str {
        match self {
            Kind::RemoteWrite => "remote write",
            Kind::Logs => "logs (HTTP NDJSON)",
            Kind::Spans => "spans (OTLP/HTTP)",
            Kind::Statsd => "StatsD (UDP)",
        }
    }

    /// Items (samples, lines, spans, StatsD lines) in one unit.
    fn items(self) -> usize {
        match self {
            Kind::RemoteWrite => SERIES_PER_WRITE,
            Kind::Logs => LINES_PER_POST,
            Kind::Spans => SPANS_PER_EXPORT,
            Kind::Statsd => STATSD_LINES_PER_SEND,
        }
    }
}

/// Latencies (µs) and errors of one kind of request.
#[derive(Default)]
struct Tally {
    micros: Mutex<Vec<u64>>,
    errors: AtomicU64,
    last_error: Mutex<String>,
}

impl Tally {
    fn record(&self, started: Instant, ok: Result<(), String>) {
        match ok {
            Ok(()) => self
                .micros
                .lock()
                .unwrap()
                .push(started.elapsed().as_micros() as u64),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().unwrap() = e;
            }
        }
    }

    fn percentiles(&self) -> (usize, f64, f64) {
        let mut v = self.micros.lock().unwrap().clone();
        v.sort_unstable();
        let at = |q: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0
            }
        };
        (v.len(), at(0.5), at(0.99))
    }
}

struct Target {
    http: String,
    otlp: String,
    statsd: std::net::SocketAddr,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn status_ok(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    want: u16,
) -> Result<(), String> {
    match result {
        Ok(mut r) if r.status().as_u16() == want => {
            let _ = r.body_mut().read_to_vec();
            Ok(())
        }
        Ok(mut r) => Err(format!(
            "{} {}",
            r.status(),
            r.body_mut().read_to_string().unwrap_or_default()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// One sending thread: which it is, and the last timestamp it wrote, so
/// that each of its series sees time move forward, as a Prometheus remote
/// write shard's series do.
struct Sender {
    id: usize,
    last_ms: i64,
}

/// Sends unit `n` of `kind`.
fn send(
    kind: Kind,
    n: u64,
    sender: &mut Sender,
    target: &Target,
    agent: &ureq::Agent,
    udp: &UdpSocket,
) -> Result<(), String> {
    let now = now_ms();
    match kind {
        Kind::RemoteWrite => {
            let t = now.max(sender.last_ms + 1);
            sender.last_ms = t;
            let request = proto::WriteRequest {
                timeseries: (0..SERIES_PER_WRITE)
                    .map(|s| proto::TimeSeries {
                        labels: vec![
                            proto::Label {
                                name: "__name__".into(),
                                value: "soak_requests_total".into(),
                            },
                            proto::Label {
                                name: "instance".into(),
                                value: format!("host-{}", s % 20),
                            },
                            proto::Label {
                                name: "route".into(),
                                value: format!("/r{}", s / 20),
                            },
                            proto::Label {
                                name: "shard".into(),
                                value: sender.id.to_string(),
                            },
                        ],
                        samples: vec![proto::Sample {
                            value: (n * 10 + s as u64 % 7) as f64,
                            timestamp: t,
                        }],
                        exemplars: vec![],
                        histograms: vec![],
                    })
                    .collect(),
                metadata: vec![],
            };
            status_ok(
                agent
                    .post(format!("{}/api/v1/write", target.http))
                    .header("content-type", "application/x-protobuf")
                    .header("content-encoding", "snappy")
                    .send(&encode(&request)[..]),
                204,
            )
        }
        Kind::Logs => {
            let mut body = String::with_capacity(LINES_PER_POST * 220);
            for i in 0..LINES_PER_POST {
                let service = SERVICES[i % SERVICES.len()];
                let level = if i % 17 == 0 { "ERROR" } else { "INFO" };
                body.push_str(&format!(
                    "{{\"@timestamp\":{now},\"service\":\"{service}\",\"level\":\"{level}\",\"message\":\"order {n}-{i} handled for customer {}\",\"uuid\":\"soak-{n}-{}\",\"duration_ms\":{}}}\n",
                    i * 7919 % 1000,
                    i / 10,
                    i % 250
                ));
            }
            status_ok(
                agent
                    .post(format!("{}/api/v1/logs", target.http))
                    .header("content-type", "application/x-ndjson")
                    .send(body.as_bytes()),
                200,
            )
        }
        Kind::Spans => {
            let text = |s: &str| AnyValue {
                value: Some(any_value::Value::StringValue(s.to_owned())),
            };
            let nanos = now as u64 * 1_000_000;
            let spans: Vec<Span> = (0..SPANS_PER_EXPORT)
                .map(|i| {
                    let trace = (n << 8) | (i as u64 / 5);
                    let mut trace_id = [0u8; 16];
                    trace_id[..8].copy_from_slice(&trace.to_be_bytes());
                    trace_id[8..].copy_from_slice(&0x5a5a_u64.to_be_bytes());
                    let span_id = ((n << 16) | i as u64 | 1).to_be_bytes().to_vec();
                    Span {
                        trace_id: trace_id.to_vec(),
                        span_id,
                        name: format!("GET /orders/{}", i % 10),
                        kind: 2,
                        start_time_unix_nano: nanos + i as u64 * 1000,
                        end_time_unix_nano: nanos + i as u64 * 1000 + 2_000_000,
                        attributes: vec![
                            KeyValue {
                                key: "http.route".into(),
                                value: Some(text("/orders/{id}")),
                            },
                            KeyValue {
                                key: "uuid".into(),
                                value: Some(text(&format!("soak-{n}-{}", i / 10))),
                            },
                        ],
                        ..Default::default()
                    }
                })
                .collect();
            let request = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(text(SERVICES[n as usize % SERVICES.len()])),
                        }],
                    }),
                    scope_spans: vec![ScopeSpans { scope: None, spans }],
                }],
            };
            status_ok(
                agent
                    .post(format!("{}/v1/traces", target.otlp))
                    .header("content-type", "application/x-protobuf")
                    .send(&request.encode_to_vec()[..]),
                200,
            )
        }
        Kind::Statsd => {
            let mut datagram = String::new();
            for i in 0..STATSD_LINES_PER_SEND {
                let service = SERVICES[i % SERVICES.len()];
                match i % 3 {
                    0 => datagram.push_str(&format!("soak.{service}.requests:1|c\n")),
                    1 => datagram.push_str(&format!(
                        "soak.{service}.latency:{}|ms\n",
                        (n + i as u64) % 300
                    )),
                    _ => datagram.push_str(&format!("soak.{service}.queue:{}|g\n", n % 50)),
                }
            }
            udp.send_to(datagram.as_bytes(), target.statsd)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

/// The query mix, one of each per round.
fn queries(target: &Target, round: u64) -> Vec<(&'static str, String, u16)> {
    let now = now_ms() / 1000;
    let enc = |q: &str| {
        q.replace(' ', "%20")
            .replace('[', "%5B")
            .replace(']', "%5D")
            .replace('"', "%22")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('=', "%3D")
            .replace(':', "%3A")
            .replace('/', "%2F")
    };
    vec![
        (
            "PromQL range (5 min)",
            format!(
                "{}/api/v1/query_range?query={}&start={}&end={now}&step=15",
                target.http,
                enc("sum by (route) (rate(soak_requests_total[1m]))"),
                now - 300
            ),
            200,
        ),
        (
            "log search (errors, 15 min)",
            format!(
                "{}/api/v1/logs/search?q={}&start={}&limit=100",
                target.http,
                enc("service:orders AND level:ERROR"),
                now - 900
            ),
            200,
        ),
        (
            "trace search",
            format!(
                "{}/jaeger/api/traces?service={}&limit=20&start={}",
                target.http,
                SERVICES[round as usize % SERVICES.len()],
                (now - 900) * 1_000_000
            ),
            200,
        ),
        (
            "correlate one id",
            format!("{}/api/v1/correlate/soak-{}-1", target.http, round.max(1)),
            200,
        ),
    ]
}

/// One unlabelled sample of the server's `/metrics`.
fn metric(http: &str, name: &str) -> f64 {
    ureq::get(format!("{http}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|page| {
            page.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        })
        .unwrap_or(0.0)
}

#[allow(clippy::too_many_lines)]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let minutes: f64 =
        flag_value(&args, "--minutes").map_or(10.0, |v| v.parse().expect("--minutes"));
    let load: f64 = flag_value(&args, "--load").map_or(0.7, |v| v.parse().expect("--load"));
    let calibrate: u64 =
        flag_value(&args, "--calibrate-seconds").map_or(20, |v| v.parse().expect("seconds"));
    let dir = tempfile::tempdir().expect("temp dir");
    let (otlp_port, statsd_port) = (free_port(), free_port());
    // The head keeps every sample until it is cut into a block (at 1.5 block
    // durations; Prometheus's 2 h blocks mean 3 h). A soak of minutes would
    // only watch it fill, so blocks here are short enough to be cut during
    // the run: memory must level off once the head is cut and refilled.
    let block = flag_value(&args, "--block-duration").unwrap_or_else(|| "2m".to_owned());
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  metrics:\n    block_duration: {block}\n    out_of_order_window: 30s\n"
        ),
    )
    .expect("config");
    let peer = start_sextant(
        dir.path(),
        &[
            "--config",
            config.to_str().expect("path"),
            "--otlp-http",
            &format!("127.0.0.1:{otlp_port}"),
            "--statsd",
            &format!("127.0.0.1:{statsd_port}"),
        ],
    );
    say(&format!("soak: blocks of {block} (--block-duration)"));
    let pid = peer.child.id();
    let target = Arc::new(Target {
        http: peer.url.clone(),
        otlp: format!("http://127.0.0.1:{otlp_port}"),
        statsd: format!("127.0.0.1:{statsd_port}").parse().unwrap(),
    });
    say(&format!(
        "soak: sextant pid {pid}, data in {}",
        dir.path().display()
    ));

    // Phase 1: the most each kind gets through with all four running at once.
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let done: Vec<Arc<AtomicU64>> = Kind::ALL
        .iter()
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let threads: Vec<_> = Kind::ALL
        .iter()
        .zip(&done)
        .map(|(&kind, count)| {
            let (target, stop, count, counter) =
                (target.clone(), stop.clone(), count.clone(), counter.clone());
            std::thread::spawn(move || {
                let (agent, udp) = (agent(), UdpSocket::bind("127.0.0.1:0").unwrap());
                let mut sender = Sender {
                    id: SENDERS,
                    last_ms: 0,
                };
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if send(kind, n, &mut sender, &target, &agent, &udp).is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    if kind == Kind::Statsd {
                        // UDP has no back-pressure: the calibration paces it
                        // at what the server counts as received, below.
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(calibrate));
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());
    let max_rate: Vec<f64> = done
        .iter()
        .map(|c| c.load(Ordering::Relaxed) as f64 / calibrate as f64)
        .collect();
    let rates: Vec<f64> = max_rate.iter().map(|r| r * load).collect();
    say(&format!(
        "calibration ({calibrate} s, all kinds at once, as fast as each goes):"
    ));
    for ((kind, max), rate) in Kind::ALL.iter().zip(&max_rate).zip(&rates) {
        say(&format!(
            "  {:<20} max {:>8.1} req/s ({:>9.0} items/s) -> soak at {:>8.1} req/s ({:>9.0} items/s)",
            kind.name(),
            max,
            max * kind.items() as f64,
            rate,
            rate * kind.items() as f64
        ));
    }

    // Phase 2: paced ingest and a steady query load.
    let tallies: Vec<Arc<Tally>> = Kind::ALL
        .iter()
        .map(|_| Arc::new(Tally::default()))
        .collect();
    let query_names = [
        "PromQL range (5 min)",
        "log search (errors, 15 min)",
        "trace search",
        "correlate one id",
    ];
    let query_tallies: Vec<Arc<Tally>> = query_names
        .iter()
        .map(|_| Arc::new(Tally::default()))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for ((&kind, rate), tally) in Kind::ALL.iter().zip(&rates).zip(&tallies) {
        // Several senders per kind, each at its share of the rate, so one
        // slow answer does not hold the schedule back.
        for id in 0..SENDERS {
            let (target, stop, tally, counter) =
                (target.clone(), stop.clone(), tally.clone(), counter.clone());
            let interval = Duration::from_secs_f64(SENDERS as f64 / rate.max(0.01));
            threads.push(std::thread::spawn(move || {
                let (agent, udp) = (agent(), UdpSocket::bind("127.0.0.1:0").unwrap());
                let mut sender = Sender { id, last_ms: 0 };
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    next += interval;
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    tally.record(started, send(kind, n, &mut sender, &target, &agent, &udp));
                }
            }));
        }
    }
    {
        let (target, stop, tallies, counter) =
            (target.clone(), stop.clone(), query_tallies.clone(), counter);
        threads.push(std::thread::spawn(move || {
            let agent = agent();
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let started_round = Instant::now();
                round += 1;
                let recent = counter.load(Ordering::Relaxed).saturating_sub(200);
                for ((_, url, want), tally) in queries(&target, recent.max(round))
                    .into_iter()
                    .zip(&tallies)
                {
                    let started = Instant::now();
                    tally.record(started, status_ok(agent.get(&url).call(), want));
                }
                if let Some(rest) = Duration::from_secs(1).checked_sub(started_round.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        }));
    }
    let total = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut rss: Vec<(u64, u64)> = Vec::new();
    let mut anon: Vec<u64> = Vec::new();
    say("memory over time: s, RSS MiB, of it anonymous (heap) MiB, samples appended to the TSDB");
    while started.elapsed() < total {
        std::thread::sleep(Duration::from_secs(10).min(total.saturating_sub(started.elapsed())));
        let sample = (started.elapsed().as_secs(), rss_bytes(pid));
        anon.push(anon_bytes(pid));
        if sample.0 % 60 < 10 || started.elapsed() >= total {
            say(&format!(
                "  {:>5} s  {:>7.1}  {:>7.1}  {:>11.0}",
                sample.0,
                sample.1 as f64 / 1048576.0,
                anon.last().copied().unwrap_or(0) as f64 / 1048576.0,
                metric(&target.http, "sextant_tsdb_samples_appended_total")
            ));
        }
        rss.push(sample);
    }
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());

    say(&format!(
        "soak: {minutes} min at {:.0} % of the calibrated maximum",
        load * 100.0
    ));
    say("ingest                  requests  achieved/s  target/s   p50 ms    p99 ms   errors");
    let mut errors = 0;
    let seconds = total.as_secs_f64();
    for ((kind, tally), rate) in Kind::ALL.iter().zip(&tallies).zip(&rates) {
        let (count, p50, p99) = tally.percentiles();
        let e = tally.errors.load(Ordering::Relaxed);
        errors += e;
        say(&format!(
            "  {:<20} {count:>9} {:>11.1} {rate:>9.1} {p50:>8.2} {p99:>9.2} {e:>8}",
            kind.name(),
            count as f64 / seconds
        ));
        if e > 0 {
            say(&format!(
                "    last error: {}",
                tally.last_error.lock().unwrap()
            ));
        }
    }
    say("queries");
    for (name, tally) in query_names.iter().zip(&query_tallies) {
        let (count, p50, p99) = tally.percentiles();
        let e = tally.errors.load(Ordering::Relaxed);
        errors += e;
        say(&format!(
            "  {name:<28} {count:>6} {p50:>8.2} {p99:>9.2} {e:>8}"
        ));
        if e > 0 {
            say(&format!(
                "    last error: {}",
                tally.last_error.lock().unwrap()
            ));
        }
    }
    // StatsD has no answer: its drops are what the server counted.
    let page = ureq::get(format!("{}/metrics", target.http))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    for line in page.lines().filter(|l| {
        (l.starts_with("sextant_listener_dropped_total")
            || l.starts_with("sextant_listener_errors_total"))
            && !l.ends_with(" 0")
    }) {
        say(&format!("  /metrics: {line}"));
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    let half = rss.len() / 2;
    let first_half_max = rss[..half].iter().map(|s| s.1).max().unwrap_or(0);
    let second_half_max = rss[half..].iter().map(|s| s.1).max().unwrap_or(0);
    say(&format!(
        "RSS: max {:.1} MiB in the first half, {:.1} MiB in the second ({:+.1} %); final {:.1} MiB",
        mib(first_half_max),
        mib(second_half_max),
        (second_half_max as f64 / first_half_max.max(1) as f64 - 1.0) * 100.0,
        mib(rss.last().map_or(0, |s| s.1))
    ));
    let first = anon[..half].iter().max().copied().unwrap_or(0);
    let second = anon[half..].iter().max().copied().unwrap_or(0);
    say(&format!(
        "anonymous: max {:.1} MiB in the first half, {:.1} MiB in the second ({:+.1} %)",
        mib(first),
        mib(second),
        (second as f64 / first.max(1) as f64 - 1.0) * 100.0
    ));
    say(&format!(
        "head: {:.0} series, {:.0} chunks",
        metric(&target.http, "sextant_tsdb_head_series"),
        metric(&target.http, "sextant_tsdb_head_chunks")
    ));
    say(&format!("errors: {errors}"));
}
