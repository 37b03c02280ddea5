//! Log ingest over the Fluentd forward protocol against NDJSON over HTTP,
//! into Sextant, on the same events:
//!
//! ```sh
//! cargo build --release -p sextant-server -p sextant-bench --bin sextant --bin forward
//! target/release/forward                 # 200,000 events
//! target/release/forward --events 1000000 --batch 2000
//! ```
//!
//! Each side gets a fresh server. The events are Docker `fluentd` log-driver
//! records (container id and name, stream, the line) with a request id, a
//! status and a duration; NDJSON sends them as `POST /api/v1/logs` bodies of
//! `--batch` lines (with `service` and `@timestamp` fields), forward as
//! PackedForward frames of `--batch` entries (tag = service, EventTime) with
//! a `chunk`, each acked before the next is sent, as Fluent Bit and
//! Fluentd's `out_forward` with `require_ack_response` send. The clock runs
//! from the first byte sent until a search finds every event; the result is
//! events per second until searchable, and forward's ratio to NDJSON.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sextant_bench::{Rng, flag_value, free_port, say, start_sextant, url_encode};
use sextant_ingest::forward::msgpack::write;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One event's fields, as both encodings carry them.
struct Event {
    seconds: u32,
    nanos: u32,
    container: u64,
    log: String,
    request_id: String,
    status: u64,
    duration_ms: u64,
}

fn events(n: usize) -> Vec<Event> {
    let mut rng = Rng(0x5eed_f0f0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let start = now.as_secs() as u32 - 3600;
    (0..n)
        .map(|i| Event {
            seconds: start + (i / 100) as u32 % 3600,
            nanos: (i % 100) as u32 * 10_000_000,
            container: rng.next_u64() % 16,
            log: format!(
                "{} {} took {}ms",
                sextant_bench::MESSAGES[(rng.next_u64() % 8) as usize],
                sextant_bench::ROUTES[(rng.next_u64() % 6) as usize],
                rng.next_u64() % 2000
            ),
            request_id: sextant_bench::request_uuid(i as u64 / 10),
            status: [200, 200, 201, 404, 500][(rng.next_u64() % 5) as usize],
            duration_ms: rng.next_u64() % 2000,
        })
        .collect()
}

fn ndjson_line(e: &Event, service: &str, out: &mut String) {
    let t = i64::from(e.seconds);
    let (y, mo, d) = sextant_model::time::civil_from_days(t / 86_400);
    let s = t % 86_400;
    out.push_str(&format!(
        r#"{{"@timestamp":"{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z","service":"{service}","container_id":"c0ffee{:02}","container_name":"/web-{}","source":"stdout","log":"{}","request_id":"{}","status":{},"duration_ms":{}}}"#,
        s / 3600,
        s % 3600 / 60,
        s % 60,
        e.nanos,
        e.container,
        e.container,
        e.log,
        e.request_id,
        e.status,
        e.duration_ms
    ));
    out.push('\n');
}

fn forward_entry(e: &Event, out: &mut Vec<u8>) {
    write::array(out, 2);
    write::event_time(out, e.seconds, e.nanos);
    write::map(out, 7);
    for (key, value) in [
        ("container_id", format!("c0ffee{:02}", e.container)),
        ("container_name", format!("/web-{}", e.container)),
        ("source", "stdout".to_owned()),
        ("log", e.log.clone()),
        ("request_id", e.request_id.clone()),
    ] {
        write::str(out, key.as_bytes());
        write::str(out, value.as_bytes());
    }
    write::str(out, b"status");
    write::uint(out, e.status);
    write::str(out, b"duration_ms");
    write::uint(out, e.duration_ms);
}

/// Waits until a search for `service` counts `n`; the time it took from `started`.
fn until_searchable(url: &str, service: &str, n: usize, started: Instant) -> Duration {
    let query = format!(
        "{url}/api/v1/logs/search?q={}&start=0&limit=1",
        url_encode(&format!("service:{service}"))
    );
    loop {
        let total = ureq::get(&query)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0);
        if total as usize >= n {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{service}: {total} of {n} searchable after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = flag_value(&args, "--events").map_or(200_000, |v| v.parse().expect("--events"));
    let batch: usize = flag_value(&args, "--batch").map_or(1000, |v| v.parse().expect("--batch"));
    let events = events(n);
    let scratch = tempfile::tempdir().expect("scratch");

    // NDJSON over HTTP.
    let bodies: Vec<String> = events
        .chunks(batch)
        .map(|chunk| {
            let mut body = String::new();
            for e in chunk {
                ndjson_line(e, "ndjson", &mut body);
            }
            body
        })
        .collect();
    let ndjson_bytes: usize = bodies.iter().map(String::len).sum();
    let sextant = start_sextant(&scratch.path().join("ndjson"), &[]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}/api/v1/logs", sextant.url);
    let started = Instant::now();
    for body in &bodies {
        let reply = agent
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .send(body.as_bytes())
            .expect("POST /api/v1/logs");
        assert_eq!(reply.status(), 200);
    }
    let sent = started.elapsed();
    let ndjson = until_searchable(&sextant.url, "ndjson", n, started);
    drop(sextant);
    say(&format!(
        "ndjson/http:  {n} events ({:.1} MiB) sent in {:.2}s, searchable after {:.2}s: {:.0} events/s",
        ndjson_bytes as f64 / 1048576.0,
        sent.as_secs_f64(),
        ndjson.as_secs_f64(),
        n as f64 / ndjson.as_secs_f64()
    ));

    // Forward, PackedForward with acks.
    let frames: Vec<(Vec<u8>, Vec<u8>)> = events
        .chunks(batch)
        .enumerate()
        .map(|(i, chunk)| {
            let mut entries = Vec::new();
            for e in chunk {
                forward_entry(e, &mut entries);
            }
            let id = format!("chunk-{i:08}");
            let mut frame = Vec::with_capacity(entries.len() + 64);
            write::array(&mut frame, 3);
            write::str(&mut frame, b"forward");
            write::bin(&mut frame, &entries);
            write::map(&mut frame, 2);
            write::str(&mut frame, b"chunk");
            write::str(&mut frame, id.as_bytes());
            write::str(&mut frame, b"size");
            write::uint(&mut frame, chunk.len() as u64);
            (frame, sextant_ingest::forward::ack(id.as_bytes()))
        })
        .collect();
    let forward_bytes: usize = frames.iter().map(|(f, _)| f.len()).sum();
    let port = free_port();
    let sextant = start_sextant(
        &scratch.path().join("forward"),
        &["--forward", &format!("127.0.0.1:{port}")],
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect forward");
    stream.set_nodelay(true).expect("nodelay");
    let started = Instant::now();
    for (frame, ack) in &frames {
        stream.write_all(frame).expect("send a frame");
        let mut answer = vec![0u8; ack.len()];
        stream.read_exact(&mut answer).expect("read the ack");
        assert_eq!(&answer, ack);
    }
    let sent = started.elapsed();
    let forward = until_searchable(&sextant.url, "forward", n, started);
    say(&format!(
        "forward/tcp:  {n} events ({:.1} MiB) sent and acked in {:.2}s, searchable after {:.2}s: {:.0} events/s",
        forward_bytes as f64 / 1048576.0,
        sent.as_secs_f64(),
        forward.as_secs_f64(),
        n as f64 / forward.as_secs_f64()
    ));
    say(&format!(
        "forward / ndjson: {:.2}x",
        ndjson.as_secs_f64() / forward.as_secs_f64()
    ));
}
