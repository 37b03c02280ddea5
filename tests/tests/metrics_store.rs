//! The metrics store as its users meet it: a real Prometheus remote-writing to
//! Sextant, backfill through the import endpoint, and a `kill -9` in the middle
//! of heavy ingest, each read back sample for sample.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_ingest::remote_write::{encode, proto};
use sextant_tests::{Prometheus, Sextant, url_encode};

#[test]
fn remote_write_from_a_real_prometheus_arrives_intact() {
    let sextant = Sextant::start();
    let sextant_addr = sextant.addr("http", "tcp");
    let prometheus = Prometheus::start(
        &format!(
            r#"
global:
  scrape_interval: 1s
  external_labels:
    monitor: 'simplebank-demo'
scrape_configs:
  - job_name: 'sextant'
    static_configs:
      - targets: ['{sextant_addr}']
remote_write:
  - url: http://{sextant_addr}/api/v1/write
    queue_config:
      batch_send_deadline: 200ms
    metadata_config:
      send_interval: 1s
"#
        ),
        &[],
    );
    // Wait until Sextant holds a few seconds of Prometheus's scrapes of it.
    let selector = "up{job=\"sextant\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = sextant.export(selector);
        if got.values().any(|points| points.len() >= 5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing arrived:\n{}\n{}",
            prometheus.logs(),
            sextant.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // What Prometheus itself stored, raw, for the same series...
    let theirs = prometheus.get_json(&format!(
        "/api/v1/query?query={}",
        url_encode("up{job=\"sextant\"}[10m]")
    ));
    let result = &theirs["data"]["result"][0];
    assert_eq!(result["metric"]["instance"], sextant_addr.to_string());
    let their_points: Vec<(i64, String)> = result["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let seconds = p[0].as_f64().unwrap();
            (
                (seconds * 1000.0).round() as i64,
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(their_points.len() >= 5, "{theirs}");
    // ... must all be in Sextant, with external labels attached, once sent.
    let key =
        format!("up{{instance=\"{sextant_addr}\",job=\"sextant\",monitor=\"simplebank-demo\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ours = sextant.export(selector);
        let points = ours.get(&key).cloned().unwrap_or_default();
        let ours: HashMap<i64, String> = points.into_iter().collect();
        let missing: Vec<&(i64, String)> = their_points
            .iter()
            .filter(|(t, v)| ours.get(t) != Some(v))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "samples Prometheus stored are missing or differ in Sextant: {missing:?}\nSextant has: {ours:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Every sextant_* family Prometheus scraped arrived, with its metadata.
    let labels = sextant.get("/api/v1/label/__name__/values").json();
    let names: Vec<&str> = labels["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for family in [
        "sextant_build_info",
        "sextant_tsdb_head_series",
        "scrape_duration_seconds",
    ] {
        assert!(names.contains(&family), "{family} not in {names:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let meta = sextant
            .get("/api/v1/metadata?metric=sextant_build_info")
            .json();
        if meta["data"]["sextant_build_info"][0]["type"] == "gauge" {
            break;
        }
        assert!(Instant::now() < deadline, "no metadata: {meta}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let dropped = sextant.metric(
        "sextant_tsdb_rejected_samples_total",
        &[("reason", "too_old")],
    );
    assert_eq!(dropped, Some(0.0));
}

#[test]
fn backfill_of_100k_samples_reads_back_exactly() {
    let sextant = Sextant::start();
    let mut body =
        String::from("# TYPE backfill_value gauge\n# HELP backfill_value Imported history.\n");
    let mut expected: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let start = 1_700_000_000_000i64;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for series in 0..100 {
        let key = format!("backfill_value{{host=\"host-{series}\",job=\"import\"}}");
        for i in 0..1000i64 {
            // xorshift: values with full float precision, a few special ones.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let value = match (series + i) % 250 {
                0 => "NaN".to_owned(),
                1 => "+Inf".to_owned(),
                _ => format!("{}", (x >> 11) as f64 / (1u64 << 53) as f64 * 1e6 - 5e5),
            };
            let t = start + i * 15_000 + (x % 7) as i64;
            body.push_str(&format!(
                "backfill_value{{job=\"import\",host=\"host-{series}\"}} {value} {t}\n"
            ));
            expected.entry(key.clone()).or_default().push((t, value));
        }
    }
    let reply = sextant.post_path("/api/v1/import/prometheus", "text/plain", body.as_bytes());
    assert_eq!(reply.status, 204, "{}", reply.body);
    let got = sextant.export("backfill_value");
    assert_eq!(got.len(), 100);
    let total: usize = got.values().map(Vec::len).sum();
    assert_eq!(total, 100_000);
    for (key, points) in &expected {
        let ours = &got[key];
        assert_eq!(ours.len(), points.len(), "{key}");
        for ((t1, v1), (t2, v2)) in ours.iter().zip(points) {
            assert_eq!(t1, t2, "{key}");
            if v2 == "NaN" || v2 == "+Inf" {
                assert_eq!(v1, v2, "{key}@{t1}");
            } else {
                let (a, b): (f64, f64) = (v1.parse().unwrap(), v2.parse().unwrap());
                assert_eq!(a.to_bits(), b.to_bits(), "{key}@{t1}: {v1} vs {v2}");
            }
        }
    }
    let meta = sextant.get("/api/v1/metadata").json();
    assert_eq!(
        meta["data"]["backfill_value"][0]["help"],
        "Imported history."
    );
}

#[test]
fn bad_ingest_bodies_are_refused_with_the_reason_and_good_lines_kept() {
    let sextant = Sextant::start();
    let reply = sextant.post_path(
        "/api/v1/write",
        "application/x-protobuf",
        b"definitely not snappy",
    );
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["error"].as_str().unwrap().contains("snappy"),
        "{}",
        reply.body
    );
    let reply = sextant.post_path(
        "/api/v1/write",
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        b"x",
    );
    assert_eq!(reply.status, 415);
    assert!(
        reply.body.contains("proto=io.prometheus.write.v3.Request"),
        "{}",
        reply.body
    );
    let reply = sextant.post_path(
        "/api/v1/import/prometheus",
        "text/plain",
        b"ok_metric 1 1700000000000\nbroken{ 2\nok_metric 3 1700000015000\n",
    );
    assert_eq!(reply.status, 400);
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("stored 2 samples"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    assert_eq!(
        sextant.export("ok_metric").values().next().unwrap().len(),
        2
    );
    let reply = sextant.get("/api/v1/series?match[]=up%7B");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["errorType"], "bad_data");
}

#[test]
fn kill_9_during_heavy_ingest_loses_nothing_acknowledged() {
    let sextant = Sextant::start();
    let url = format!("{}/api/v1/write", sextant.base_url());
    let acked: Arc<Mutex<Vec<(usize, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    const SERIES: usize = 200;
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let (url, acked, stop) = (url.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                let mut batch = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    // One batch: every series, 10 samples each, at times unique to this batch.
                    let base = 1_700_000_000_000 + batch * 10_000;
                    let request = proto::WriteRequest {
                        timeseries: (0..SERIES)
                            .map(|s| proto::TimeSeries {
                                labels: vec![
                                    proto::Label {
                                        name: "__name__".into(),
                                        value: "load_test".into(),
                                    },
                                    proto::Label {
                                        name: "series".into(),
                                        value: format!("{s}"),
                                    },
                                    proto::Label {
                                        name: "writer".into(),
                                        value: format!("{writer}"),
                                    },
                                ],
                                samples: (0..10)
                                    .map(|i| proto::Sample {
                                        value: (batch * 10 + i) as f64,
                                        timestamp: base + i * 1000,
                                    })
                                    .collect(),
                                exemplars: vec![],
                                histograms: vec![],
                            })
                            .collect(),
                        metadata: vec![],
                    };
                    let sent = agent
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .send(&encode(&request)[..]);
                    match sent {
                        Ok(reply) if reply.status() == 204 => {
                            acked.lock().unwrap().push((writer, base));
                            batch += 1;
                        }
                        Ok(reply) => panic!("write refused: {}", reply.status()),
                        // The server died mid-request: that batch was never acknowledged.
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    // Let a good amount through, then crash the server mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 300 {
        assert!(Instant::now() < deadline, "ingest too slow to test");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kept = sextant.kill_hard();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let restarted = Sextant::restart_on(&kept);
    let got = restarted.export("load_test");
    for (writer, base) in &acked {
        for s in [0, SERIES / 2, SERIES - 1] {
            let key = format!("load_test{{series=\"{s}\",writer=\"{writer}\"}}");
            let points = got
                .get(&key)
                .unwrap_or_else(|| panic!("{key} lost entirely"));
            for i in 0..10 {
                let t = base + i * 1000;
                assert!(
                    points.binary_search_by_key(&t, |p| p.0).is_ok(),
                    "acknowledged sample {key}@{t} lost after kill -9 ({} batches acknowledged)",
                    acked.len()
                );
            }
        }
    }
    let total: usize = got.values().map(Vec::len).sum();
    assert!(total >= acked.len() * SERIES * 10, "{total} < acknowledged");
}

/// A dashboard's range query answered again from the results cache, then
/// late samples written into the cached range: the next answer has them.
#[test]
fn a_cached_range_query_sees_late_samples() {
    use sextant_tests::series;
    let sextant = Sextant::start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let now = now - now % 60_000;
    let start = now - 30 * 60_000;
    // Every 15 s for 30 minutes, value 1, except 9 to 7 minutes ago.
    let gap = (now - 9 * 60_000)..(now - 7 * 60_000);
    let samples: Vec<(i64, f64)> = (0..=120)
        .map(|i| start + i * 15_000)
        .filter(|t| !gap.contains(t))
        .map(|t| (t, 1.0))
        .collect();
    let reply = sextant.remote_write(vec![series(
        &[("__name__", "late_test"), ("job", "a")],
        &samples,
    )]);
    assert_eq!(reply.status, 204, "{}", reply.body);
    let path = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        url_encode("max_over_time(late_test[1m])"),
        start / 1000,
        now / 1000
    );
    let values = |reply: sextant_tests::Reply| -> Vec<(i64, String)> {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        json["data"]["result"][0]["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                (
                    p[0].as_i64().expect("t"),
                    p[1].as_str().expect("v").to_owned(),
                )
            })
            .collect()
    };
    let cold = values(sextant.get(&path));
    let again = values(sextant.get(&path));
    assert_eq!(cold, again);
    let requests = |result: &str| {
        sextant
            .metric(
                "sextant_query_results_cache_requests_total",
                &[("result", result)],
            )
            .unwrap_or(0.0)
    };
    assert_eq!(requests("miss"), 1.0);
    assert_eq!(
        requests("partial"),
        1.0,
        "the newest 5 minutes are evaluated again"
    );
    let eight_ago = (now - 8 * 60_000) / 1000;
    assert!(
        !cold.iter().any(|(t, _)| *t == eight_ago),
        "no sample within a minute of 8 minutes ago yet: {cold:?}"
    );
    // The gap's samples arrive late (within the out-of-order window).
    let late: Vec<(i64, f64)> = gap.step_by(15_000).map(|t| (t, 100.0)).collect();
    let reply = sextant.remote_write(vec![series(
        &[("__name__", "late_test"), ("job", "a")],
        &late,
    )]);
    assert_eq!(reply.status, 204, "{}", reply.body);
    let after = values(sextant.get(&path));
    assert!(
        after.contains(&(eight_ago, "100".to_owned())),
        "the late samples are in the answer: {after:?}"
    );
    assert_eq!(
        sextant.metric(
            "sextant_query_results_cache_drops_total",
            &[("reason", "invalidated")]
        ),
        Some(1.0)
    );
}

/// Last month's history imported into a running server whose store has
/// cut blocks already (every sample older than the newest block):
/// taken, queryable at once, written into blocks, and a SIGKILL in the
/// middle of the import loses nothing acknowledged.
#[test]
fn last_months_history_imports_into_a_live_store_through_a_crash() {
    const SERIES: i64 = 20;
    const STEP: i64 = 5 * 60_000;
    const DAY: i64 = 24 * 3600 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "storage:\n  metrics:\n    block_duration: 1m\nretention:\n  metrics: 60d\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let start = || {
        Sextant::builder()
            .data_dir(&data)
            .args(["--config", config.to_str().unwrap()])
            .start()
    };
    let sextant = start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Live data for the last five minutes: the head is cut into blocks.
    let live: Vec<_> = (0..3)
        .map(|i| {
            let points: Vec<(i64, f64)> = (0..20)
                .map(|k| (now - 300_000 + k * 15_000, k as f64))
                .collect();
            sextant_tests::series(
                &[("__name__", "live_gauge"), ("instance", &format!("i{i}"))],
                &points,
            )
        })
        .collect();
    assert_eq!(sextant.remote_write(live).status, 204);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sextant.metric("sextant_tsdb_blocks", &[]).unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "no block was cut");
        std::thread::sleep(Duration::from_millis(250));
    }
    // A day per request, 30 days back from an hour ago.
    let first = (now - DAY / 24 - 30 * DAY).div_euclid(STEP) * STEP;
    let mut expected: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let days: Vec<String> = (0..30)
        .map(|day| {
            let mut body = String::new();
            for s in 0..SERIES {
                for k in 0..DAY / STEP {
                    let t = first + day * DAY + k * STEP;
                    let value = format!("{}", (s * 1_000_003 + day * 1000 + k) as f64 / 8.0);
                    body.push_str(&format!(
                        "month_import{{host=\"h{s}\",job=\"history\"}} {value} {t}\n"
                    ));
                    expected
                        .entry(format!("month_import{{host=\"h{s}\",job=\"history\"}}"))
                        .or_default()
                        .push((t, value));
                }
            }
            body
        })
        .collect();
    let import = |sextant: &Sextant, body: &str| {
        let reply = sextant.post_path("/api/v1/import/prometheus", "text/plain", body.as_bytes());
        assert_eq!(reply.status, 204, "{}", reply.body);
    };
    for body in &days[..10] {
        import(&sextant, body);
    }
    // Queryable at once, from the head.
    let counted = sextant.wait_for_query(
        &format!("sum(count_over_time(month_import[31d] @ {}))", now / 1000),
        |r| r[0]["value"][1] == "57600",
    );
    assert_eq!(counted[0]["value"][1], "57600");
    // The rest from another thread, killed while it sends.
    let url = format!("{}/api/v1/import/prometheus", sextant.base_url());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (acked, rest) = (acked.clone(), days[10..].to_vec());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            for (i, body) in rest.iter().enumerate() {
                match agent
                    .post(&url)
                    .header("content-type", "text/plain")
                    .send(body.as_bytes())
                {
                    Ok(reply) if reply.status() == 204 => acked.lock().unwrap().push(10 + i),
                    _ => return,
                }
            }
        })
    };
    while acked.lock().unwrap().len() < 5 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let kept = sextant.kill_hard();
    sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let out = sextant_tests::run_sextant(&["check-data", kept.data_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "check-data after the kill: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(kept);
    let sextant = start();
    // Every acknowledged day is whole after the crash; then the rest.
    let got = sextant.export("month_import");
    for day in (0..10).chain(acked.iter().copied()) {
        let (from, to) = (first + day as i64 * DAY, first + (day as i64 + 1) * DAY);
        for (key, points) in &expected {
            let ours: Vec<&(i64, String)> = got
                .get(key)
                .map(|p| p.iter().filter(|(t, _)| *t >= from && *t < to).collect())
                .unwrap_or_default();
            let theirs: Vec<&(i64, String)> = points
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .collect();
            assert_eq!(ours, theirs, "{key}, acknowledged day {day}");
        }
    }
    for (day, body) in days.iter().enumerate().skip(10) {
        if !acked.contains(&day) {
            import(&sextant, body);
        }
    }
    let check = |sextant: &Sextant, when: &str| {
        let got = sextant.export("month_import");
        assert_eq!(got.len(), SERIES as usize, "{when}");
        for (key, points) in &expected {
            assert_eq!(&got[key], points, "{key} {when}");
        }
    };
    check(&sextant, "from the head");
    // Written into blocks within half a block range (30 s here).
    let deadline = Instant::now() + Duration::from_secs(120);
    while sextant
        .metric("sextant_tsdb_backfill_pending_samples", &[])
        .unwrap_or(1.0)
        > 0.0
    {
        assert!(Instant::now() < deadline, "the backfill was never written");
        std::thread::sleep(Duration::from_millis(250));
    }
    check(&sextant, "from blocks");
    for reason in ["out_of_bounds", "too_old", "past_retention"] {
        assert_eq!(
            sextant.metric("sextant_tsdb_rejected_samples_total", &[("reason", reason)]),
            Some(0.0),
            "{reason}"
        );
    }
}
