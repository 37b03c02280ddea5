//! The log store on generated logstash events (~300 bytes, realistic
//! cardinality), in process:
//!
//! ```sh
//! cargo build --release -p sextant-bench
//! target/release/logs                  # 1M events
//! target/release/logs --docs 10000000  # the issue's 10M (about 3 GB of JSON)
//! ```
//!
//! 1. Indexing: events (made beforehand, as NDJSON in memory) are parsed,
//!    normalised and appended in batches of 1,000 (WAL, then the index),
//!    with a commit every second as the server does; the clock stops when
//!    the last commit makes everything searchable. Reported: MB/s of raw
//!    JSON and events/s, overall and per CPU second used.
//! 2. Disk: the store's bytes against the raw JSON's.
//! 3. Search over the whole set, events spread over 24 hours: exact
//!    request-id lookups (p50/p99 of 200), a free-text term in a 1 hour
//!    window (p50 of 50), a 24 hour histogram at 5 minute steps (p50 of 20).
//! 4. Sealing: the day's partition merged into one immutable split, as every
//!    finished day is kept; its size against the raw JSON's.

/// The allocator the server uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::{Duration, Instant};

use sextant_bench::say;
use sextant_bench::{
    Rng, bytes_by_extension, cpu_seconds, dir_bytes, event, flag_value, request_uuid,
};
use sextant_ingest::logs::Normalizer;
use sextant_storage::logs::{LogQuery, LogStore, LogStoreConfig, SplitConfig};

const DAY_US: i64 = 24 * 3600 * 1_000_000;

fn percentile(mut times: Vec<Duration>, p: f64) -> Duration {
    times.sort();
    times[((times.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let docs: u64 = flag_value(&args, "--docs").map_or(1_000_000, |v| v.parse().expect("--docs N"));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = std::sync::Arc::new(
        LogStore::open(
            dir.path(),
            LogStoreConfig {
                splits: SplitConfig {
                    seal_idle_us: 0,
                    ..SplitConfig::default()
                },
                ..LogStoreConfig::default()
            },
        )
        .expect("open the store"),
    );
    let normalizer = Normalizer::default();
    let start_us = 1_795_824_000_000_000; // 2026-11-28T00:00:00Z
    let mut rng = Rng(7);

    // The events arrive as bytes: making them is not the store's work.
    let mut input = String::new();
    for i in 0..docs {
        input.push_str(&event(i, &mut rng, start_us, docs));
        input.push('\n');
    }
    let raw_bytes = input.len() as u64;
    let started = Instant::now();
    let cpu_before = cpu_seconds(std::process::id());
    let mut last_commit = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for line in input.lines() {
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
    let cpu = cpu_seconds(std::process::id()) - cpu_before;
    say(&format!(
        "indexed {docs} events, {:.0} MB of JSON ({} bytes an event) in {took:.1} s: {:.1} MB/s, {:.0} events/s; {cpu:.1} CPU s, {:.1} MB/s per core busy (goal >= 15 MB/s per core)",
        raw_bytes as f64 / 1e6,
        raw_bytes / docs,
        raw_bytes as f64 / 1e6 / took,
        docs as f64 / took,
        raw_bytes as f64 / 1e6 / cpu.max(0.001),
    ));
    // Let background merges settle before measuring the disk.
    std::thread::sleep(Duration::from_secs(5));
    let disk = dir_bytes(dir.path());
    say(&format!(
        "on disk while the day is written: {:.0} MB, {:.2}x the raw JSON (goal <= 0.25x)",
        disk as f64 / 1e6,
        disk as f64 / raw_bytes as f64
    ));
    let parts: Vec<String> = bytes_by_extension(dir.path())
        .into_iter()
        .map(|(ext, bytes)| format!("{ext} {:.1} MB", bytes as f64 / 1e6))
        .collect();
    say(&format!("  by kind: {}", parts.join(", ")));

    let all_day = |text: String| LogQuery {
        text,
        start_us,
        end_us: start_us + DAY_US,
        limit: 100,
        ascending: false,
        after: None,
    };
    let mut lookups = Vec::new();
    for k in 0..200u64 {
        let uuid = request_uuid((k * 7919) % (docs / 10));
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
    logql(&store, start_us, docs);
    // The day over: its partition is merged and sealed into a split, as
    // every day but the current one is kept.
    let sealing = Instant::now();
    store
        .maintain_at(start_us + 2 * DAY_US)
        .expect("seal the day");
    let sealed = dir_bytes(dir.path());
    say(&format!(
        "sealed into one split in {:.1} s: {:.0} MB, {:.2}x the raw JSON (goal <= 0.25x)",
        sealing.elapsed().as_secs_f64(),
        sealed as f64 / 1e6,
        sealed as f64 / raw_bytes as f64
    ));
    let parts: Vec<String> = bytes_by_extension(dir.path())
        .into_iter()
        .map(|(ext, bytes)| format!("{ext} {:.1} MB", bytes as f64 / 1e6))
        .collect();
    say(&format!("  by kind: {}", parts.join(", ")));
    let uuid = request_uuid(7);
    let t = Instant::now();
    let found = store
        .search(&all_day(format!("uuid:\"{uuid}\"")))
        .expect("search");
    say(&format!(
        "request-id lookup in the sealed split: {:.1} ms ({} hits)",
        t.elapsed().as_secs_f64() * 1e3,
        found.total
    ));
}

/// LogQL over the same day, each query beside what Sextant's own search
/// API does for the same question.
fn logql(store: &std::sync::Arc<LogStore>, start_us: i64, docs: u64) {
    use sextant_query::logql::eval::{Engine, Options, Range};
    use sextant_query::logql::parse::parse;
    let reader: std::sync::Arc<dyn sextant_storage::LogReader> = store.clone();
    let engine = Engine::new(reader, Options::default());
    let hour_ns = 3_600_000_000_000i64;
    let run = |query: &str, start_ns: i64, end_ns: i64, step_ns: i64, limit: usize| {
        let expr = parse(query).expect("a valid query");
        let t = Instant::now();
        engine
            .eval(
                &expr,
                Range {
                    start_ns,
                    end_ns,
                    step_ns,
                    limit,
                    forward: false,
                },
            )
            .expect("the query runs");
        t.elapsed()
    };
    let own = |text: String, from_us: i64, to_us: i64, limit: usize| {
        let t = Instant::now();
        store
            .search(&LogQuery {
                text,
                start_us: from_us,
                end_us: to_us,
                limit,
                ascending: false,
                after: None,
            })
            .expect("search");
        t.elapsed()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    // A request id in one service's hour.
    let (mut by_logql, mut by_search) = (Vec::new(), Vec::new());
    for k in 0..200u64 {
        let i = (k * 7919) % docs;
        let request = i / 10;
        let uuid = request_uuid(request);
        let t_us = start_us + (i as i64) * (DAY_US / docs as i64);
        let from_us = t_us - t_us.rem_euclid(3_600_000_000);
        let query = format!(r#"{{service_name=~".+"}} |= "{uuid}""#);
        by_logql.push(run(
            &query,
            from_us * 1000,
            from_us * 1000 + hour_ns,
            1_000_000_000,
            100,
        ));
        by_search.push(own(
            format!("uuid:\"{uuid}\""),
            from_us,
            from_us + 3_600_000_000,
            100,
        ));
    }
    let (p99, own_p99) = (
        percentile(by_logql.clone(), 0.99),
        percentile(by_search.clone(), 0.99),
    );
    say(&format!(
        "LogQL {{service_name=~\".+\"}} |= \"<request id>\" over 1 h: p50 {:.1} ms, p99 {:.1} ms (goal p99 < 20 ms); own search p99 {:.1} ms: {:.2}x (goal <= 1.2x)",
        ms(percentile(by_logql, 0.5)),
        ms(p99),
        ms(own_p99),
        p99.as_secs_f64() / own_p99.as_secs_f64().max(1e-9)
    ));
    // Lines per level per minute over the day.
    let (mut counts, mut histograms) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        counts.push(run(
            r#"sum by (level) (count_over_time({service_name=~".+"}[1m]))"#,
            start_us * 1000 + 60_000_000_000,
            (start_us + DAY_US) * 1000,
            60_000_000_000,
            0,
        ));
        let t = Instant::now();
        for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] {
            store
                .histogram(
                    &LogQuery {
                        text: format!("level:{level}"),
                        start_us,
                        end_us: start_us + DAY_US,
                        limit: 0,
                        ascending: false,
                        after: None,
                    },
                    60_000_000,
                )
                .expect("histogram");
        }
        histograms.push(t.elapsed());
    }
    let (p50, own_p50) = (percentile(counts, 0.5), percentile(histograms, 0.5));
    say(&format!(
        "LogQL sum by (level) (count_over_time({{service_name=~\".+\"}}[1m])) over 24 h: p50 {:.1} ms (goal < 300 ms); own histograms per level {:.1} ms: {:.2}x (goal <= 1.2x)",
        ms(p50),
        ms(own_p50),
        p50.as_secs_f64() / own_p50.as_secs_f64().max(1e-9)
    ));
    // Slow requests of one service in an hour, parsed from the line.
    let (mut slow, mut own_slow) = (Vec::new(), Vec::new());
    for k in 0..20 {
        let from_us = start_us + (k % 23) * 3_600_000_000;
        let service = sextant_bench::SERVICES[(k % 10) as usize];
        slow.push(run(
            &format!(r#"{{service_name="{service}"}} | json | duration_ms > 500"#),
            from_us * 1000,
            from_us * 1000 + hour_ns,
            1_000_000_000,
            1000,
        ));
        own_slow.push(own(
            format!("service:\"{service}\" AND duration_ms:>500"),
            from_us,
            from_us + 3_600_000_000,
            1000,
        ));
    }
    let (p50, own_p50) = (percentile(slow, 0.5), percentile(own_slow, 0.5));
    say(&format!(
        "LogQL {{service_name=\"x\"}} | json | duration_ms > 500 over 1 h (1000 lines): p50 {:.1} ms (goal < 200 ms); own search p50 {:.1} ms: {:.2}x (goal <= 1.2x)",
        ms(p50),
        ms(own_p50),
        p50.as_secs_f64() / own_p50.as_secs_f64().max(1e-9)
    ));
}
