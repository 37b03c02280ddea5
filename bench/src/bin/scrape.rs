//! Scraping: the exposition parser's throughput, and Sextant against
//! Prometheus 2.42 (Debian) scraping the same large target, in one run:
//!
//! ```sh
//! scripts/setup-test-env >/dev/null
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/scrape                # about two minutes
//! target/release/scrape --copies 50    # a smaller page
//! ```
//!
//! The page is a real node_exporter page (Debian's, started here) copied
//! `--copies` times (default 200) with a `shard` label per copy, HELP and
//! TYPE kept once: the shape of a large exporter (kube-state-metrics, a
//! busy application) at tens of megabytes.
//!
//! 1. Parser: `prom_text::Parser` over the page (every line tokenised, every
//!    label sliced out, values and timestamps read), and `prom_text::parse`
//!    (the same into owned label sets, as the import endpoint uses), on one
//!    core, best of 5. The goal is >= 100 MB/s for the first.
//! 2. Side by side: the page is served over HTTP by this process; Sextant and
//!    Prometheus each scrape it every 10 s for `--scrapes` scrapes (default
//!    6). Reported per server: the median `scrape_duration_seconds` (fetch,
//!    parse and append of the whole page) and process CPU seconds per scrape.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_bench::say;
use sextant_bench::{
    NodeExporter, Peer, cpu_seconds, flag_value, free_port, start_prometheus_with, start_sextant,
};
use sextant_ingest::prom_text::{self, Entry, Format, Parser};

/// `copies` copies of a node_exporter page, each series with a `shard` label.
fn build_page(copies: usize) -> String {
    let exporter = NodeExporter::start(free_port());
    let page = ureq::get(&exporter.url)
        .call()
        .expect("scrape node exporter")
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .expect("page");
    let mut out = String::with_capacity(page.len() * copies);
    for line in page.lines().filter(|l| l.starts_with('#')) {
        out.push_str(line);
        out.push('\n');
    }
    for copy in 0..copies {
        for line in page
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            match line.find(['{', ' ']) {
                Some(i) if line.as_bytes()[i] == b'{' => {
                    out.push_str(&line[..=i]);
                    out.push_str(&format!("shard=\"{copy}\","));
                    out.push_str(&line[i + 1..]);
                }
                Some(i) => {
                    out.push_str(&line[..i]);
                    out.push_str(&format!("{{shard=\"{copy}\"}}"));
                    out.push_str(&line[i..]);
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
    }
    out
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        let out = f();
        best = best.min(started.elapsed());
        last = Some(out);
    }
    (best, last.expect("at least one run"))
}

fn parser_throughput(page: &str) {
    let mb = page.len() as f64 / 1e6;
    let (streaming, (samples, labels)) = best_of(5, || {
        let mut parser = Parser::new(page, Format::Prometheus);
        let (mut samples, mut labels, mut errors) = (0u64, 0u64, 0u64);
        while let Some(entry) = parser.next() {
            match entry {
                Ok(Entry::Sample(s)) => {
                    samples += 1;
                    labels += parser.labels().len() as u64;
                    std::hint::black_box(s.value);
                }
                Ok(_) => {}
                Err(_) => errors += 1,
            }
        }
        assert_eq!(errors, 0, "the page must parse cleanly");
        (samples, labels)
    });
    let (owned, parsed) = best_of(5, || prom_text::parse(page));
    assert_eq!(parsed.samples.len() as u64, samples);
    say(&format!(
        "page: {mb:.1} MB, {samples} samples, {labels} labels ({} bytes a line)",
        page.len() as u64 / samples.max(1)
    ));
    say(&format!(
        "parser (streaming, labels sliced): {:.0} MB/s, {:.1}M samples/s (goal >= 100 MB/s)",
        mb / streaming.as_secs_f64(),
        samples as f64 / streaming.as_secs_f64() / 1e6
    ));
    say(&format!(
        "parser (owned label sets, import): {:.0} MB/s",
        mb / owned.as_secs_f64()
    ));
}

/// The scrape pipeline in this process: parse, cache, target labels and
/// append into a store, per page after the first (steady state).
fn ingest_in_process(page: &str) {
    use sextant_ingest::scrape::scraper::{ScrapeCache, ScrapeContext, ingest};
    use sextant_ingest::scrape::target::{Job, Resolved, TargetGroup, resolve};
    use sextant_storage::{RetentionConfig, Tsdb, TsdbConfig, TsdbStats};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Tsdb::open(
        dir.path(),
        TsdbConfig::default(),
        RetentionConfig::default().metrics,
        Arc::new(TsdbStats::default()),
    )
    .expect("open store");
    let config = serde_norway::from_str("job_name: big").expect("job");
    let job = Job::new(config, Duration::from_secs(10), Duration::from_secs(10));
    let group = TargetGroup::default();
    let Ok(Resolved::Active(target)) = resolve(&job, &group, "127.0.0.1:1") else {
        panic!("target");
    };
    let context = ScrapeContext::new(Arc::new(target), &job.config);
    let mut cache = ScrapeCache::default();
    let mut times = Vec::new();
    for i in 0..6 {
        let started = Instant::now();
        let outcome = ingest(
            page,
            Format::Prometheus,
            &context,
            &mut cache,
            &db,
            1_000 + i * 10_000,
        )
        .expect("ingest");
        times.push(started.elapsed());
        assert_eq!(outcome.refused, 0);
    }
    times.remove(0);
    times.sort();
    say(&format!(
        "scrape ingest in process (parse, cache, labels, append): median {:.0} ms a page after the first",
        times[times.len() / 2].as_secs_f64() * 1000.0
    ));
}

/// Serves `page` to every GET on a loopback port, as an exporter would.
fn serve(page: Arc<String>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let page = page.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                // Read the request head.
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut stream = &stream;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    page.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(page.as_bytes());
            });
        }
    });
    port
}

fn query(peer: &Peer, expr: &str) -> Vec<f64> {
    let mut reply = ureq::post(&format!("{}/api/v1/query", peer.url))
        .send_form([("query", expr)])
        .expect("query");
    let mut text = String::new();
    reply
        .body_mut()
        .as_reader()
        .read_to_string(&mut text)
        .expect("body");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["data"]["result"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .filter_map(|s| s["value"][1].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let copies: usize =
        flag_value(&args, "--copies").map_or(200, |v| v.parse().expect("--copies N"));
    let scrapes: usize =
        flag_value(&args, "--scrapes").map_or(6, |v| v.parse().expect("--scrapes N"));
    let page = build_page(copies);
    parser_throughput(&page);
    ingest_in_process(&page);
    if args.iter().any(|a| a == "--parse-only") {
        return;
    }

    let port = serve(Arc::new(page));
    let job = format!(
        "global:\n  scrape_interval: 10s\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: big\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let sextant_dir = dir.path().join("sextant");
    std::fs::create_dir_all(&sextant_dir).expect("dir");
    let config = sextant_dir.join("sextant.yaml");
    std::fs::write(&config, &job).expect("config");
    let mut results = Vec::new();
    for name in ["sextant", "prometheus"] {
        let peer = if name == "sextant" {
            start_sextant(&sextant_dir, &["--config", config.to_str().expect("path")])
        } else {
            start_prometheus_with(&dir.path().join("prometheus"), &job, &[])
        };
        let pid = peer.child.id();
        // Let the first scrape (series creation) pass, then measure steady scrapes.
        let wait_for = |n: f64| loop {
            let count = query(&peer, "count_over_time(up{job=\"big\"}[10m])");
            if count.first().copied().unwrap_or(0.0) >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        wait_for(2.0);
        let cpu_before = cpu_seconds(pid);
        let started = Instant::now();
        wait_for(2.0 + scrapes as f64);
        let cpu = cpu_seconds(pid) - cpu_before;
        let elapsed = started.elapsed();
        let durations = query(
            &peer,
            "quantile_over_time(0.5, scrape_duration_seconds{job=\"big\"}[10m])",
        );
        let samples = query(&peer, "scrape_samples_scraped{job=\"big\"}");
        let median = durations.first().copied().unwrap_or(f64::NAN);
        say(&format!(
            "{name}: {} samples a scrape, median scrape_duration_seconds {median:.3} s, {:.3} CPU s a scrape ({scrapes} scrapes in {:.0} s)",
            samples.first().copied().unwrap_or(0.0),
            cpu / scrapes as f64,
            elapsed.as_secs_f64()
        ));
        results.push((median, cpu / scrapes as f64));
        drop(peer);
    }
    say(&format!(
        "ratio Sextant / Prometheus: scrape duration {:.2}, CPU per scrape {:.2}",
        results[0].0 / results[1].0,
        results[0].1 / results[1].1
    ));
}
