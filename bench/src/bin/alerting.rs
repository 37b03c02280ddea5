//! Rule evaluation against Prometheus 2.42 (Debian), on the same data and the
//! same rule file, in one run; then notification latency.
//!
//! ```sh
//! scripts/setup-test-env >/dev/null
//! cargo build --release -p sextant-server -p sextant-bench
//! target/release/alerting            # 100k series, 1,000 alert + 1,000 recording rules
//! target/release/alerting --quick    # 10k series, 100 + 100 rules
//! ```
//!
//! 1. 100k series (`app_requests_total`, 1000 instances x 100 routes, 20
//!    minutes at 15 s) are remote-written to one server; a rule file of 20
//!    groups at a 15 s interval, each with 50 recording rules
//!    (`sum by (route) (rate(...[5m]))` over one instance each) and 50
//!    alerting rules (`rate(...[5m]) > 0.25` per route of one instance, some
//!    firing), is evaluated for 75 s. Reported: each group's last evaluation
//!    time (median and max over groups, from `/api/v1/rules`) and the CPU the
//!    server used per evaluation round. The servers run one after the other
//!    (the machine has two cores), each on freshly loaded data.
//! 2. Notification latency: a gauge written over remote write crosses its
//!    threshold; the time from the evaluation that fires (the alert's
//!    `activeAt`) to the webhook request arriving, with `group_wait: 0s`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::time::{Duration, Instant};

use sextant_bench::{
    Peer, Rng, cpu_seconds, flag_value, remote_write, start_prometheus_with, start_sextant,
};
use sextant_bench::{now_ms, say};
use sextant_ingest::remote_write::{encode, proto};

const STEP_MS: i64 = 15_000;
const GROUPS: usize = 20;

fn label(name: &str, value: &str) -> proto::Label {
    proto::Label {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

/// Remote-write bodies of `instances` x 100 counters, `scrapes` samples each up to now.
fn bodies(instances: usize, scrapes: i64) -> Vec<Vec<u8>> {
    let mut rng = Rng(7);
    let end = now_ms() / STEP_MS * STEP_MS;
    let start = end - (scrapes - 1) * STEP_MS;
    let mut out = Vec::new();
    for chunk in (0..instances).collect::<Vec<_>>().chunks(10) {
        let mut timeseries = Vec::new();
        for &instance in chunk {
            for route in 0..100 {
                let mut value = 0.0;
                let samples = (0..scrapes)
                    .map(|i| {
                        value += (3.0 * rng.unit() * 2.0_f64).round();
                        proto::Sample {
                            value,
                            timestamp: start + i * STEP_MS,
                        }
                    })
                    .collect();
                timeseries.push(proto::TimeSeries {
                    labels: vec![
                        label("__name__", "app_requests_total"),
                        label("instance", &format!("pod-{instance}")),
                        label("route", &format!("/r{route}")),
                    ],
                    samples,
                    exemplars: vec![],
                    histograms: vec![],
                });
            }
        }
        out.push(encode(&proto::WriteRequest {
            timeseries,
            metadata: vec![],
        }));
    }
    out
}

fn rule_file(instances: usize, per_group: usize) -> String {
    let mut text = String::from("groups:\n");
    let mut instance = 0;
    for g in 0..GROUPS {
        text += &format!("  - name: group-{g}\n    interval: 15s\n    rules:\n");
        for _ in 0..per_group {
            let i = instance % instances;
            text += &format!(
                "      - record: instance:app_requests:rate5m_{instance}\n        expr: sum by (route) (rate(app_requests_total{{instance=\"pod-{i}\"}}[5m]))\n"
            );
            text += &format!(
                "      - alert: BusyRoute{instance}\n        expr: rate(app_requests_total{{instance=\"pod-{i}\"}}[5m]) > 0.25\n        for: 1m\n        labels: {{severity: warning}}\n        annotations: {{summary: '{{{{ $labels.route }}}} at {{{{ $value | humanize }}}}/s'}}\n"
            );
            instance += 1;
        }
    }
    text
}

fn load(peer: &Peer, bodies: &[Vec<u8>]) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into();
    for body in bodies {
        remote_write(&agent, &peer.write_url, body);
    }
}

fn get_json(url: &str) -> serde_json::Value {
    let body = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .expect("body");
    serde_json::from_str(&body).expect("JSON")
}

/// Evaluates for `seconds`; returns (median group time, max group time, CPU per round, rules evaluated).
fn measure(peer: &Peer, seconds: u64) -> (f64, f64, f64, usize) {
    // Let the first round run before the CPU clock starts.
    std::thread::sleep(Duration::from_secs(20));
    let pid = peer.child.id();
    let cpu_before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = cpu_seconds(pid) - cpu_before;
    let rules = get_json(&format!("{}/api/v1/rules", peer.url));
    let groups = rules["data"]["groups"].as_array().expect("groups");
    let mut times: Vec<f64> = groups
        .iter()
        .map(|g| g["evaluationTime"].as_f64().unwrap_or(0.0))
        .collect();
    times.sort_by(f64::total_cmp);
    let healthy = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["health"] == "ok")
        .count();
    let rounds = seconds as f64 / 15.0;
    (
        times[times.len() / 2],
        times[times.len() - 1],
        cpu / rounds,
        healthy,
    )
}

fn evaluation_part(quick: bool) -> (f64, f64, f64, f64) {
    let (instances, per_group) = if quick { (100, 5) } else { (1000, 50) };
    let scratch = tempfile::tempdir().expect("scratch");
    let rules_path = scratch.path().join("rules.yml");
    std::fs::write(&rules_path, rule_file(instances, per_group)).expect("rules");
    let rules = GROUPS * per_group;
    say(&format!(
        "{} series, {rules} recording + {rules} alerting rules in {GROUPS} groups at 15 s",
        instances * 100
    ));

    let payload = bodies(instances, 80);
    let config = scratch.path().join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 15s\nrule_files: ['{}']\n",
            rules_path.display()
        ),
    )
    .expect("config");
    let sextant = start_sextant(
        &scratch.path().join("sextant"),
        &["--config", config.to_str().expect("path")],
    );
    load(&sextant, &payload);
    let (s_median, s_max, s_cpu, s_ok) = measure(&sextant, 75);
    drop(sextant);
    say(&format!(
        "sextant: group evaluation median {:.1} ms, max {:.1} ms; CPU {:.2} s per 15 s round; {s_ok} rules healthy",
        s_median * 1e3,
        s_max * 1e3,
        s_cpu
    ));

    let payload = bodies(instances, 80);
    let prometheus = start_prometheus_with(
        &scratch.path().join("prometheus"),
        &format!(
            "global:\n  evaluation_interval: 15s\nrule_files: ['{}']\n",
            rules_path.display()
        ),
        &[],
    );
    load(&prometheus, &payload);
    let (p_median, p_max, p_cpu, p_ok) = measure(&prometheus, 75);
    drop(prometheus);
    say(&format!(
        "prometheus 2.42: group evaluation median {:.1} ms, max {:.1} ms; CPU {:.2} s per 15 s round; {p_ok} rules healthy",
        p_median * 1e3,
        p_max * 1e3,
        p_cpu
    ));
    say(&format!(
        "ratios (sextant / prometheus): median group time {:.2}, max group time {:.2}, CPU per round {:.2}",
        s_median / p_median,
        s_max / p_max,
        s_cpu / p_cpu
    ));
    (s_median, s_max, p_median, p_max)
}

/// Webhook arrival times, recorded by a tiny HTTP server.
fn receiver() -> (u16, std::sync::mpsc::Receiver<(Instant, i64)>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let arrived = (Instant::now(), now_ms());
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            let _ = send.send(arrived);
        }
    });
    (port, receive)
}

fn latency_part() {
    let scratch = tempfile::tempdir().expect("scratch");
    let (port, arrivals) = receiver();
    std::fs::write(
        scratch.path().join("rules.yml"),
        "groups:\n  - name: queue\n    interval: 1s\n    rules:\n      - alert: QueueFull\n        expr: queue_depth > 100\n",
    )
    .expect("rules");
    let config = scratch.path().join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            "rule_files: [rules.yml]\nalerting:\n  receivers:\n    - name: hook\n      webhooks: [{{url: 'http://127.0.0.1:{port}/'}}]\n  route:\n    receiver: hook\n    group_wait: 0s\n    group_interval: 1s\n"
        ),
    )
    .expect("config");
    let sextant = start_sextant(
        &scratch.path().join("sextant"),
        &["--config", config.to_str().expect("path")],
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut latencies = Vec::new();
    for round in 0..20 {
        let depth = if round % 2 == 0 { 150.0 } else { 10.0 };
        let body = encode(&proto::WriteRequest {
            timeseries: vec![proto::TimeSeries {
                labels: vec![label("__name__", "queue_depth")],
                samples: vec![proto::Sample {
                    value: depth,
                    timestamp: now_ms(),
                }],
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![],
        });
        remote_write(&agent, &sextant.write_url, &body);
        let (_, arrived_ms) = arrivals
            .recv_timeout(Duration::from_secs(10))
            .expect("a notification within 10 s");
        if depth > 100.0 {
            // The evaluation that fired is the alert's activeAt.
            let alerts = get_json(&format!("{}/api/v1/alerts", sextant.url));
            let active_at = alerts["data"]["alerts"][0]["activeAt"]
                .as_str()
                .and_then(sextant_model::time::parse_rfc3339_micros)
                .expect("activeAt")
                / 1000;
            latencies.push(arrived_ms - active_at);
        }
        while arrivals.try_recv().is_ok() {}
    }
    latencies.sort_unstable();
    say(&format!(
        "notification latency, evaluation to webhook (group_wait 0s), {} firings: median {} ms, max {} ms (goal < 100 ms)",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    ));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = flag_value(&args, "--only");
    if only.as_deref().is_none_or(|o| o == "rules") {
        evaluation_part(quick);
    }
    if only.as_deref().is_none_or(|o| o == "latency") {
        latency_part();
    }
}
