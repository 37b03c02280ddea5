//! StatsD ingest against Etsy's `statsd` daemon (npm), on the same packets, in one run:
//!
//! ```sh
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/statsd            # installs statsd@0.9.0 under ~/.cache/sextant once
//! target/release/statsd --senders 4   # four sender threads share each rate
//! ```
//!
//! One sender thread (or `--senders N`) sends UDP datagrams of 20 counter lines at each server
//! in turn, paced at a target rate for 3 seconds, for rising rates. Each
//! server's count of the lines it took is read back (Sextant: PromQL on the
//! flushed counter; statsd: its management port's `counters`), and the
//! kernel's UDP receive-buffer drops (`RcvbufErrors`) are read from
//! `/proc/net/snmp` around each run. Reported per rate: the share of lines
//! lost; the highest rate each takes without loss is the result.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sextant_bench::say;
use sextant_bench::{flag_value, free_port, start_sextant};

const LINES_PER_DATAGRAM: usize = 20;
const SECONDS: u64 = 3;
/// Target rates, lines per second.
const RATES: [u64; 5] = [250_000, 500_000, 1_000_000, 1_500_000, 2_000_000];

/// The kernel's count of UDP datagrams dropped for a full receive buffer.
fn rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let (Some(names), Some(values)) = (udp.first(), udp.get(1)) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Sends `rate` lines a second for `SECONDS` from `senders` threads (each a
/// share of the rate, its own socket); returns the lines sent and whether
/// every sender kept up.
fn send_paced(port: u16, rate: u64, senders: usize) -> (u64, bool) {
    let threads: Vec<_> = (0..senders)
        .map(|_| std::thread::spawn(move || send_one(port, rate / senders as u64)))
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("sender"))
        .fold((0, true), |(sent, ok), (s, k)| (sent + s, ok && k))
}

/// One sender: a burst every millisecond.
fn send_one(port: u16, rate: u64) -> (u64, bool) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let datagram = "bench.hits:1|c\n".repeat(LINES_PER_DATAGRAM);
    let datagram = datagram.trim_end().as_bytes();
    let per_ms = rate as f64 / 1000.0 / LINES_PER_DATAGRAM as f64;
    let started = Instant::now();
    let mut sent = 0u64;
    let total = rate * SECONDS / LINES_PER_DATAGRAM as u64;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * 1000.0 + 1.0) * per_ms) as u64;
        while sent < due.min(total) {
            let _ = socket.send_to(datagram, ("127.0.0.1", port));
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let kept_up = started.elapsed() < Duration::from_millis(SECONDS * 1000 + 200);
    (sent * LINES_PER_DATAGRAM as u64, kept_up)
}

/// Runs every rate against one server; `read` gives its total lines so far.
fn run_rates(name: &str, port: u16, senders: usize, read: impl Fn() -> f64) -> u64 {
    let mut best = 0;
    let mut before = read();
    for rate in RATES {
        let drops = rcvbuf_errors();
        let (sent, kept_up) = send_paced(port, rate, senders);
        let (now, _) = settle(&read);
        let taken = now - before;
        before = now;
        let lost = 1.0 - taken / sent as f64;
        say(&format!(
            "  {name:<8} {rate:>9} lines/s for {SECONDS} s: took {taken:>9.0} of {sent} ({:.2}% lost; kernel receive-buffer drops {} datagrams){}",
            100.0 * lost,
            rcvbuf_errors() - drops,
            if kept_up {
                ""
            } else {
                " [the sender fell behind]"
            }
        ));
        if taken as u64 == sent && kept_up {
            best = rate;
        }
    }
    best
}

/// Polls `read` until the count stops moving for a second; returns the count
/// and when it last moved.
fn settle(read: &impl Fn() -> f64) -> (f64, Instant) {
    let mut last = read();
    let mut moved = Instant::now();
    while moved.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
        let now = read();
        if now != last {
            last = now;
            moved = Instant::now();
        }
    }
    (last, moved)
}

fn etsy_statsd() -> PathBuf {
    let prefix = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join(".cache/sextant/etsy-statsd");
    let main = prefix.join("node_modules/statsd/stats.js");
    if !main.is_file() {
        say("installing statsd@0.9.0 from npm...");
        let status = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg("statsd@0.9.0")
            .status()
            .expect("run npm");
        assert!(status.success(), "npm install statsd failed");
    }
    main
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Etsy statsd's current counters, from its management port.
fn etsy_counter(mgmt: u16, name: &str) -> f64 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", mgmt)) else {
        return 0.0;
    };
    let _ = stream.write_all(b"counters\n");
    let mut text = String::new();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim() == "END" {
            break;
        }
        text.push_str(&line);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = reader.read_to_string(&mut String::new());
    let key = format!("'{name}': ");
    text.find(&key)
        .and_then(|i| {
            text[i + key.len()..]
                .split([',', '\n', '}'])
                .next()
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let senders: usize =
        flag_value(&args, "--senders").map_or(1, |v| v.parse().expect("--senders N"));
    let scratch = tempfile::tempdir().expect("scratch");
    say(&format!(
        "StatsD: datagrams of {LINES_PER_DATAGRAM} counter lines from {senders} sender thread(s) over loopback, {SECONDS} s per rate"
    ));

    // Sextant, flushing every 200 ms.
    let config = scratch.path().join("sextant.yaml");
    std::fs::write(&config, "statsd:\n  flush_interval: 200ms\n").expect("config");
    let statsd_port = free_port();
    let sextant = start_sextant(
        &scratch.path().join("sextant"),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--statsd",
            &format!("127.0.0.1:{statsd_port}"),
        ],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let read_sextant = || -> f64 {
        let Ok(mut reply) = agent
            .get(&format!("{}/api/v1/query?query=bench_hits", sextant.url))
            .call()
        else {
            return 0.0;
        };
        let text = reply.body_mut().read_to_string().unwrap_or_default();
        text.split("\"value\":[")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let ours = run_rates("Sextant", statsd_port, senders, read_sextant);
    drop(sextant);

    // Etsy statsd, no backend, counters kept.
    let main = etsy_statsd();
    let (port, mgmt) = (free_port(), free_port());
    let config = scratch.path().join("statsd.js");
    std::fs::write(
        &config,
        format!(
            "{{ port: {port}, mgmt_port: {mgmt}, address: '127.0.0.1', mgmt_address: '127.0.0.1', backends: [], flushInterval: 3600000, deleteCounters: false }}\n"
        ),
    )
    .expect("statsd config");
    let _node = Node(
        Command::new("node")
            .arg(&main)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start statsd"),
    );
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", mgmt)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let theirs = run_rates("statsd", port, senders, || etsy_counter(mgmt, "bench.hits"));
    let ratio = if theirs == 0 {
        "no ratio: statsd lost lines at every rate".to_owned()
    } else {
        format!("ratio {:.2}", ours as f64 / theirs as f64)
    };
    say(&format!(
        "highest rate taken without loss: Sextant {ours} lines/s, statsd {theirs} lines/s ({ratio}; goal >= 1,000,000)"
    ));
}
