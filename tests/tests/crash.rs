//! The crash test: metrics, logs and spans written at once while the server is
//! killed with SIGKILL at a random moment, again and again on one data
//! directory. After every kill the stores pass `sextant check-data`, and after
//! every restart every acknowledged sample, log line, span and forward
//! chunk (acked over the Fluentd forward protocol) is there.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sextant_ingest::remote_write::{encode, proto};
use sextant_tests::{Sextant, run_sextant, url_encode};

/// Kills per run; `SEXTANT_CRASH_ITERATIONS` raises it for a longer soak.
fn iterations() -> u32 {
    std::env::var("SEXTANT_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// A small xorshift generator: the seed is printed, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the server acknowledged, by kind.
#[derive(Default)]
struct Acked {
    /// Timestamps (ms) of `crash_samples`.
    samples: Vec<i64>,
    /// Log batch ids (`request_id`), 20 lines each.
    log_batches: Vec<String>,
    /// Trace ids, 4 spans each.
    traces: Vec<String>,
    /// Forward `chunk` ids the server acked, 20 events each.
    forward_chunks: Vec<String>,
}

const LINES_PER_BATCH: usize = 20;
const SPANS_PER_TRACE: usize = 4;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

/// Posts until stopped or the server dies; records what was acknowledged.
fn write_metrics(
    url: String,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let agent = agent();
    // Half a day ago, the same for every writer of the run: the samples stay
    // within retention of the span metrics the spans make at "now".
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64
            - 12 * 3_600_000
    });
    while !stop.load(Ordering::Relaxed) {
        let n = next.fetch_add(5, Ordering::Relaxed) as i64;
        let times: Vec<i64> = (0..5).map(|i| base + (n + i) * 1000).collect();
        let request = proto::WriteRequest {
            timeseries: vec![proto::TimeSeries {
                labels: vec![proto::Label {
                    name: "__name__".into(),
                    value: "crash_samples".into(),
                }],
                samples: times
                    .iter()
                    .map(|&t| proto::Sample {
                        value: t as f64,
                        timestamp: t,
                    })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![],
        };
        let sent = agent
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .send(&encode(&request)[..]);
        match sent {
            Ok(reply) if reply.status() == 204 => acked.lock().unwrap().samples.extend(times),
            Ok(mut reply) => panic!(
                "remote write refused: {} {}",
                reply.status(),
                reply.body_mut().read_to_string().unwrap_or_default()
            ),
            Err(_) => break,
        }
    }
}

fn write_logs(url: String, run: String, stop: Arc<AtomicBool>, acked: Arc<Mutex<Acked>>) {
    let agent = agent();
    let mut batch = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("{run}-logs-{batch}");
        let body: String = (0..LINES_PER_BATCH)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"message": format!("crash line {i} of {id}"), "service": "crashtest", "request_id": id, "line": i})
                )
            })
            .collect();
        let sent = agent
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .send(body.as_bytes());
        match sent {
            Ok(reply) if reply.status() == 200 => {
                acked.lock().unwrap().log_batches.push(id);
                batch += 1;
            }
            Ok(reply) => panic!("logs refused: {}", reply.status()),
            Err(_) => break,
        }
    }
}

/// Sends PackedForward frames with a `chunk` option over one connection
/// until stopped or the server dies; records each chunk acked.
fn write_forward(
    addr: std::net::SocketAddr,
    run: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    use sextant_ingest::forward::msgpack::write;
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut chunk = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("{run}-fwd-{chunk}");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let mut entries = Vec::new();
        for i in 0..LINES_PER_BATCH {
            write::array(&mut entries, 2);
            write::event_time(&mut entries, now.as_secs() as u32, now.subsec_nanos());
            write::map(&mut entries, 3);
            write::str(&mut entries, b"message");
            write::str(
                &mut entries,
                format!("forwarded line {i} of {id}").as_bytes(),
            );
            write::str(&mut entries, b"fwd_chunk");
            write::str(&mut entries, id.as_bytes());
            write::str(&mut entries, b"line");
            write::uint(&mut entries, i as u64);
        }
        let mut frame = Vec::new();
        write::array(&mut frame, 3);
        write::str(&mut frame, b"crashtest.forward");
        write::bin(&mut frame, &entries);
        write::map(&mut frame, 2);
        write::str(&mut frame, b"chunk");
        write::str(&mut frame, id.as_bytes());
        write::str(&mut frame, b"size");
        write::uint(&mut frame, LINES_PER_BATCH as u64);
        if stream.write_all(&frame).is_err() {
            break;
        }
        let expected = sextant_ingest::forward::ack(id.as_bytes());
        let mut answer = vec![0u8; expected.len()];
        if stream.read_exact(&mut answer).is_err() {
            break;
        }
        assert_eq!(answer, expected, "the ack names another chunk");
        acked.lock().unwrap().forward_chunks.push(id);
        chunk += 1;
    }
}

fn write_spans(
    url: String,
    round: u32,
    rng_seed: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) {
    let agent = agent();
    let mut rng = Rng(rng_seed | 1);
    let mut count = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Unique across rounds: the round, a count, then randomness.
        count += 1;
        let trace_id = format!("{round:08x}{count:08x}{:016x}", rng.next());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let span_ids: Vec<String> = (0..SPANS_PER_TRACE)
            .map(|_| format!("{:016x}", rng.next()))
            .collect();
        let spans: Vec<Value> = span_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({
                    "traceId": trace_id,
                    "spanId": id,
                    "parentSpanId": if i == 0 { String::new() } else { span_ids[0].clone() },
                    "name": format!("step {i}"),
                    "kind": 2,
                    "startTimeUnixNano": (now + i as u64 * 1000).to_string(),
                    "endTimeUnixNano": (now + 1_000_000).to_string(),
                })
            })
            .collect();
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "crashtest"}}]},
            "scopeSpans": [{"spans": spans}],
        }]});
        let sent = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes());
        match sent {
            Ok(reply) if reply.status() == 200 => acked.lock().unwrap().traces.push(trace_id),
            Ok(reply) => panic!("spans refused: {}", reply.status()),
            Err(_) => break,
        }
    }
}

/// `sextant check-data` on a killed server's directory.
fn check_data(dir: &Path, iteration: u32) {
    let out = run_sextant(&["check-data", dir.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-data failed after kill {iteration}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("metrics/wal"), "{stdout}");
    assert!(stdout.contains("logs/wal"), "{stdout}");
}

/// Every acknowledged item is readable from `server`.
fn verify(server: &Sextant, acked: &Acked) {
    let Acked {
        samples,
        log_batches,
        traces,
        forward_chunks,
    } = acked;
    if !samples.is_empty() {
        let got = server.export("crash_samples");
        let points = got
            .get("crash_samples{}")
            .map(Vec::as_slice)
            .unwrap_or_default();
        for t in samples {
            assert!(
                points.binary_search_by_key(t, |p| p.0).is_ok(),
                "acknowledged sample at {t} lost ({} acknowledged, {} stored)",
                samples.len(),
                points.len()
            );
        }
    }
    for id in log_batches {
        let found = server
            .get(&format!(
                "/api/v1/logs/search?q={}&start=0&limit=1",
                url_encode(&format!("request_id:{id}"))
            ))
            .json();
        assert_eq!(
            found["total"], LINES_PER_BATCH,
            "acknowledged log batch {id} incomplete: {found}"
        );
    }
    for id in forward_chunks {
        let found = server
            .get(&format!(
                "/api/v1/logs/search?q={}&start=0&limit=1",
                url_encode(&format!("fwd_chunk:{id}"))
            ))
            .json();
        assert_eq!(
            found["total"], LINES_PER_BATCH,
            "acknowledged forward chunk {id} incomplete: {found}"
        );
    }
    for id in traces {
        let trace = server.get(&format!("/jaeger/api/traces/{id}")).json();
        let spans = trace["data"][0]["spans"].as_array().map_or(0, Vec::len);
        assert_eq!(
            spans, SPANS_PER_TRACE,
            "acknowledged trace {id} incomplete: {trace}"
        );
    }
}

#[test]
#[allow(clippy::print_stderr)] // the seed and each round's counts, for a failing run
fn acknowledged_data_survives_repeated_sigkill_and_the_stores_stay_consistent() {
    let seed = std::env::var("SEXTANT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (SEXTANT_CRASH_SEED replays it)");
    let mut rng = Rng(seed);
    let mut server = Sextant::start();
    let next_sample = Arc::new(AtomicU64::new(0));
    let mut all = Acked::default();
    let mut kept_dirs = Vec::new();
    let iterations = iterations();
    for iteration in 1..=iterations {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Acked::default()));
        let http = server.base_url();
        let otlp = format!("http://{}/v1/traces", server.addr("otlp_http", "tcp"));
        let writers = [
            std::thread::spawn({
                let (next, stop, acked) = (next_sample.clone(), stop.clone(), acked.clone());
                let url = format!("{http}/api/v1/write");
                move || write_metrics(url, next, stop, acked)
            }),
            std::thread::spawn({
                let (stop, acked) = (stop.clone(), acked.clone());
                let url = format!("{http}/api/v1/logs");
                let run = format!("{seed:x}-{iteration}");
                move || write_logs(url, run, stop, acked)
            }),
            std::thread::spawn({
                let (stop, acked) = (stop.clone(), acked.clone());
                let seed = rng.next();
                move || write_spans(otlp, iteration, seed, stop, acked)
            }),
            std::thread::spawn({
                let (stop, acked) = (stop.clone(), acked.clone());
                let addr = server.addr("forward", "tcp");
                let run = format!("{seed:x}-{iteration}");
                move || write_forward(addr, run, stop, acked)
            }),
        ];
        // Every kind has been acknowledged at least once, then a random moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let a = acked.lock().unwrap();
            if !a.samples.is_empty()
                && !a.log_batches.is_empty()
                && !a.traces.is_empty()
                && !a.forward_chunks.is_empty()
            {
                break;
            }
            drop(a);
            assert!(
                Instant::now() < deadline,
                "no writes acknowledged:\n{}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        let kept = server.kill_hard();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.join().expect("writer thread");
        }
        check_data(&kept.data_dir, iteration);
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        eprintln!(
            "kill {iteration}: {} samples, {} log lines, {} spans, {} forward events acknowledged",
            acked.samples.len(),
            acked.log_batches.len() * LINES_PER_BATCH,
            acked.traces.len() * SPANS_PER_TRACE,
            acked.forward_chunks.len() * LINES_PER_BATCH
        );
        server = Sextant::restart_on(&kept);
        verify(&server, &acked);
        all.samples.extend(acked.samples);
        all.log_batches.extend(acked.log_batches);
        all.traces.extend(acked.traces);
        all.forward_chunks.extend(acked.forward_chunks);
        // The first kill's scratch directory holds the data: kept to the end.
        kept_dirs.push(kept);
    }
    all.samples.sort_unstable();
    // Everything acknowledged in every round, read once more at the end.
    verify(&server, &all);
    let logs = server
        .get("/api/v1/logs/search?q=service:crashtest&start=0&limit=1")
        .json();
    assert!(
        logs["total"].as_u64().unwrap() >= (all.log_batches.len() * LINES_PER_BATCH) as u64,
        "{logs}"
    );
}

#[test]
fn check_data_names_what_is_damaged_and_passes_what_a_crash_leaves() {
    let server = Sextant::start();
    let lines: String = (0..30)
        .map(|i| {
            format!(
                "{}\n",
                json!({"message": format!("line {i}"), "service": "checked"})
            )
        })
        .collect();
    let reply = server.post_path("/api/v1/logs", "application/x-ndjson", lines.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.get_until("/api/v1/logs/search?q=service:checked&start=0", |v| {
        v["total"] == 30
    });
    let reply = server.post_path(
        "/api/v1/import/prometheus",
        "text/plain",
        b"checked_metric 1\n",
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    let kept = server.kill_hard();
    let dir = kept.data_dir.to_str().unwrap().to_owned();

    // A server running on it: the check refuses rather than read a moving store.
    let running = Sextant::restart_on(&kept);
    let out = run_sextant(&["check-data", &dir]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{out:?}"
    );
    let kept = running.kill_hard();

    // A write cut short by the crash is a note, not damage.
    let wal = std::fs::read_dir(kept.data_dir.join("metrics/wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u64>()
                .is_ok()
        })
        .max()
        .expect("a WAL segment");
    let mut bytes = std::fs::read(&wal).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 5]);
    std::fs::write(&wal, &bytes).unwrap();
    let out = run_sextant(&["check-data", &dir]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("repaired at start") && stdout.contains("torn"),
        "{stdout}"
    );

    // A flipped byte in an index file is damage.
    std::fs::write(&wal, &bytes[..whole]).unwrap();
    let partition = std::fs::read_dir(kept.data_dir.join("logs/active"))
        .unwrap()
        .next()
        .expect("an active log partition")
        .unwrap()
        .path();
    let store = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "store"))
        .expect("a doc store file");
    let mut data = std::fs::read(&store).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&store, &data).unwrap();
    let out = run_sextant(&["check-data", &dir]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    let store_name = store.file_name().unwrap().to_str().unwrap();
    assert!(
        stdout.contains("DAMAGED") && stdout.contains(store_name),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("problems found"),
        "{out:?}"
    );
}
