//! The web UI's goals in Debian's Chromium (playwright-core, as the browser
//! tests drive it), against a release server filled for the purpose:
//!
//! ```sh
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/ui
//! ```
//!
//! 1. First load of every page with an empty cache, on localhost (goal
//!    < 1 s), and the JavaScript it fetched, gzip'd (goal < 300 KB).
//! 2. A log search answering 500 rows: from the answer to the rows laid out
//!    (goal < 300 ms), the page's own User Timing measure.
//! 3. A graph of 10,000 points (one series at a 1 s step over 10,000 s):
//!    from making the chart to its first drawing (goal < 100 ms).
//!
//! `SEXTANT_SCREENSHOTS=<dir>` also saves the two pages it measured.
//!
//! No peer runs here (Grafana and Kibana are not packaged for Debian): the
//! figures stand against the goals.

/// The allocator the server uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use sextant_bench::{now_ms, say, start_sextant};

fn post(url: &str, body: String) {
    let response = ureq::post(url)
        .send(body.as_bytes())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    assert!(response.status().is_success(), "POST {url}");
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_sextant(dir.path(), &[]);
    let now = now_ms();

    // 2,000 log lines of one service over the last 50 minutes.
    let mut lines = String::new();
    for i in 0..2000i64 {
        let t = (now - 3_000_000 + i * 1500) as f64 / 1000.0;
        writeln!(
            lines,
            r#"{{"timestamp":{t},"message":"order {i} placed for account {} after checking the market","service":"bench","levelname":"{}","uuid":"req-{i:06}","route":"/orders"}}"#,
            i * 7919 % 100_000,
            ["INFO", "INFO", "WARNING", "ERROR"][(i % 4) as usize]
        )
        .expect("a string");
    }
    post(&format!("{}/api/v1/logs", server.url), lines);

    // One series with a sample a second for 10,000 seconds.
    let start_s = now / 1000 - 10_000;
    let mut text = String::new();
    for i in 0..10_000i64 {
        let value = 50.0 + 30.0 * ((i as f64) / 300.0).sin() + (i % 7) as f64;
        writeln!(
            text,
            "ui_bench_latency{{job=\"bench\"}} {value} {}",
            (start_s + i) * 1000
        )
        .expect("a string");
    }
    post(&format!("{}/api/v1/import/prometheus", server.url), text);
    // Searchable after the next commit.
    std::thread::sleep(std::time::Duration::from_secs(2));

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let env = Command::new(root.join("scripts/setup-browser-env"))
        .output()
        .expect("run scripts/setup-browser-env");
    assert!(env.status.success(), "scripts/setup-browser-env failed");
    let browser_env = String::from_utf8(env.stdout).expect("a path");
    let output = Command::new("node")
        .arg(root.join("bench/ui/ui.bench.mjs"))
        .env("BROWSER_ENV", browser_env.trim())
        .env("SEXTANT_URL", &server.url)
        .env(
            "SCREENSHOTS",
            std::env::var("SEXTANT_SCREENSHOTS").unwrap_or_default(),
        )
        .env("GRAPH_EXPR", "ui_bench_latency")
        .env("GRAPH_FROM", (start_s + 1).to_string())
        .env("GRAPH_TO", (start_s + 10_000).to_string())
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "the browser bench failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the bench prints JSON");
    for (page, load) in result["firstLoad"].as_object().expect("first loads") {
        say(&format!(
            "first load of {page} (empty cache): median {:.0} ms, max {:.0} ms; JavaScript {:.1} KB gzip'd (goals < 1000 ms, < 300 KB)",
            load["medianMs"].as_f64().unwrap_or(f64::NAN),
            load["maxMs"].as_f64().unwrap_or(f64::NAN),
            load["jsBytes"].as_f64().unwrap_or(f64::NAN) / 1000.0,
        ));
    }
    let summary = &result["summary"];
    say(&format!(
        "log search of {} rows ({} in the DOM, the rest virtual): rendered {:.1} ms after the answer (p50), max {:.1} ms (goal < 300 ms)",
        result["logRows"],
        result["logRowsInDom"],
        summary["logsRenderP50"].as_f64().unwrap_or(f64::NAN),
        summary["logsRenderMax"].as_f64().unwrap_or(f64::NAN),
    ));
    say(&format!(
        "graph of {} points: drawn in {:.1} ms (p50), max {:.1} ms (goal < 100 ms)",
        result["chartPoints"],
        summary["chartDrawP50"].as_f64().unwrap_or(f64::NAN),
        summary["chartDrawMax"].as_f64().unwrap_or(f64::NAN),
    ));
}
