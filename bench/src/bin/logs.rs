//! The log store on generated logstash events (~300 bytes, realistic
//! cardinality), in process:
//!
//! ```sh
//! cargo build --release -p sextant-bench
//! target/release/logs                  # 1M events
//! target/release/logs --docs 10000000  # the issue's 10M (about 3 GB of JSON)
//! ```
//!
//! 1. Indexing: events are normalised from JSON and appended in batches of
//!    1,000 (WAL, then the index), with a commit every second as the server
//!    does; the clock stops when the last commit makes everything
//!    searchable. Reported: MB/s of raw JSON and events/s, on one writer.
//! 2. Disk: the store's bytes against the raw JSON's.
//! 3. Search over the whole set, events spread over 24 hours: exact
//!    request-id lookups (p50/p99 of 200), a free-text term in a 1 hour
//!    window (p50 of 50), a 24 hour histogram at 5 minute steps (p50 of 20).

use std::io::Write as _;
use std::time::{Duration, Instant};

use sextant_bench::{Rng, dir_bytes, flag_value};
use sextant_ingest::logs::Normalizer;
use sextant_storage::logs::{LogQuery, LogStore};

const SERVICES: [&str; 10] = [
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
const MESSAGES: [&str; 8] = [
    "placing sell order",
    "order placed",
    "order failed: insufficient funds",
    "charging fee",
    "looking up ip address",
    "settings loaded from cache",
    "request completed",
    "upstream timed out after retry",
];
const ROUTES: [&str; 6] = [
    "/orders",
    "/orders/{id}",
    "/profile",
    "/fees",
    "/market/quote",
    "/health",
];
const DAY_US: i64 = 24 * 3600 * 1_000_000;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Event `i` as python-logstash (v1) writes it; requests share a uuid over ~10 lines.
fn event(i: u64, rng: &mut Rng, start_us: i64, docs: u64) -> String {
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
        r#"{{"@timestamp":"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z","@version":"1","message":"{message}","host":"{service}-{}","levelname":"{level}","logger_name":"simplebank.{service}","type":"{service}","uuid":"{request:08x}-4e1f-4c2a-9b7d-{:012x}","route":"{}","status":{},"duration_ms":{}}}"#,
        s / 3600,
        s % 3600 / 60,
        s % 60,
        rng.next_u64() % 50,
        request.wrapping_mul(2_654_435_761) % (1 << 48),
        ROUTES[(rng.next_u64() % 6) as usize],
        [200, 200, 200, 201, 404, 500][(rng.next_u64() % 6) as usize],
        rng.next_u64() % 2000,
    )
}

fn percentile(mut times: Vec<Duration>, p: f64) -> Duration {
    times.sort();
    times[((times.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let docs: u64 = flag_value(&args, "--docs").map_or(1_000_000, |v| v.parse().expect("--docs N"));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LogStore::open(dir.path()).expect("open the store");
    let normalizer = Normalizer::default();
    let start_us = 1_795_824_000_000_000; // 2026-11-28T00:00:00Z
    let mut rng = Rng(7);

    let mut raw_bytes = 0u64;
    let started = Instant::now();
    let mut last_commit = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..docs {
        let line = event(i, &mut rng, start_us, docs);
        raw_bytes += line.len() as u64 + 1;
        let record = sextant_ingest::logstash::parse_event(line.as_bytes(), &normalizer, 0)
            .expect("valid event");
        batch.push(record);
        if batch.len() == 1000 {
            store.append(&batch).expect("append");
            batch.clear();
            if last_commit.elapsed() >= Duration::from_secs(1) {
                store.commit().expect("commit");
                last_commit = Instant::now();
            }
        }
    }
    store.append(&batch).expect("append");
    store.commit().expect("commit");
    let took = started.elapsed().as_secs_f64();
    say(&format!(
        "indexed {docs} events, {:.0} MB of JSON ({} bytes an event) in {took:.1} s: {:.1} MB/s, {:.0} events/s (goal >= 15 MB/s)",
        raw_bytes as f64 / 1e6,
        raw_bytes / docs,
        raw_bytes as f64 / 1e6 / took,
        docs as f64 / took,
    ));
    // Let background merges settle before measuring the disk.
    std::thread::sleep(Duration::from_secs(5));
    let disk = dir_bytes(dir.path());
    say(&format!(
        "on disk: {:.0} MB, {:.2}x the raw JSON (goal <= 0.25x)",
        disk as f64 / 1e6,
        disk as f64 / raw_bytes as f64
    ));

    let all_day = |text: String| LogQuery {
        text,
        start_us,
        end_us: start_us + DAY_US,
        limit: 100,
        ascending: false,
    };
    let mut lookups = Vec::new();
    for k in 0..200u64 {
        let request = (k * 7919) % (docs / 10);
        let uuid = format!(
            "{request:08x}-4e1f-4c2a-9b7d-{:012x}",
            request.wrapping_mul(2_654_435_761) % (1 << 48)
        );
        let t = Instant::now();
        let found = store
            .search(&all_day(format!("uuid:\"{uuid}\"")))
            .expect("search");
        lookups.push(t.elapsed());
        assert!(found.total >= 1, "uuid {uuid} not found");
    }
    say(&format!(
        "request-id lookup over {docs}: p50 {:.1} ms, p99 {:.1} ms (goal p99 < 50 ms)",
        percentile(lookups.clone(), 0.5).as_secs_f64() * 1e3,
        percentile(lookups, 0.99).as_secs_f64() * 1e3
    ));
    let mut terms = Vec::new();
    for k in 0..50 {
        let from = start_us + (k % 23) * 3_600_000_000;
        let query = LogQuery {
            start_us: from,
            end_us: from + 3_600_000_000,
            ..all_day("timed".to_owned())
        };
        let t = Instant::now();
        store.search(&query).expect("search");
        terms.push(t.elapsed());
    }
    say(&format!(
        "free-text term, 1 h window: p50 {:.1} ms (goal < 100 ms)",
        percentile(terms, 0.5).as_secs_f64() * 1e3
    ));
    let mut histograms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let buckets = store
            .histogram(&all_day("level:ERROR".to_owned()), 300_000_000)
            .expect("histogram");
        histograms.push(t.elapsed());
        assert_eq!(buckets.len(), 288);
    }
    say(&format!(
        "histogram over 24 h (level:ERROR, 5 min steps): p50 {:.1} ms (goal < 200 ms)",
        percentile(histograms, 0.5).as_secs_f64() * 1e3
    ));
}
