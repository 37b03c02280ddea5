//! StatsD as services send it: the Python `statsd` client over UDP and TCP,
//! and raw DogStatsD packets, aggregated like statsd_exporter and read back
//! through PromQL.

use sextant_tests::{Sextant, run_python};

/// A server flushing StatsD aggregates every 200 ms.
fn start() -> (Sextant, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "statsd:\n  flush_interval: 200ms\n  max_series_per_metric: 3\n",
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    (server, dir)
}

fn wait_for(
    server: &Sextant,
    query: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    server.wait_for_query(query, check)
}

fn value_of(result: &serde_json::Value) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn python_statsd_counters_gauges_and_timers_arrive_as_prometheus_metrics() {
    let (server, _dir) = start();
    let udp = server.addr("statsd", "udp");
    let tcp = server.addr("statsd", "tcp");
    run_python(
        r#"
import sys, statsd
host, udp_port, tcp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
udp = statsd.StatsClient(host, udp_port, prefix="simplebank-demo.market")
for ms in (72.8, 30.0, 150.0):
    udp.timing("place_order_stock_exchange", ms)
udp.incr("orders", 3)
udp.incr("orders")
udp.gauge("queue_depth", 10)
udp.gauge("queue_depth", -4, delta=True)
udp.set("customers", "alice")
udp.set("customers", "bob")
tcp = statsd.TCPStatsClient(host, tcp_port, prefix="simplebank-demo.fees")
tcp.connect()
tcp.incr("charged", 2)
tcp.timing("charge_fee", 12.5)
tcp.close()
"#,
        &[
            &udp.ip().to_string(),
            &udp.port().to_string(),
            &tcp.port().to_string(),
        ],
    );
    let orders = wait_for(&server, "simplebank_demo_market_orders", |r| {
        r.as_array().is_some_and(|a| a.len() == 1) && value_of(r) == 4.0
    });
    assert_eq!(
        orders[0]["metric"]["__name__"],
        "simplebank_demo_market_orders"
    );
    let depth = wait_for(&server, "simplebank_demo_market_queue_depth", |r| {
        !r[0].is_null()
    });
    assert_eq!(value_of(&depth), 6.0);
    // Timers become summaries in seconds: quantiles, _sum and _count.
    let count = wait_for(
        &server,
        "simplebank_demo_market_place_order_stock_exchange_count",
        |r| !r[0].is_null(),
    );
    assert_eq!(value_of(&count), 3.0);
    let sum = wait_for(
        &server,
        "simplebank_demo_market_place_order_stock_exchange_sum",
        |r| !r[0].is_null(),
    );
    assert!((value_of(&sum) - 0.2528).abs() < 1e-9, "{sum}");
    let median = wait_for(
        &server,
        "simplebank_demo_market_place_order_stock_exchange{quantile=\"0.5\"}",
        |r| !r[0].is_null(),
    );
    assert!((value_of(&median) - 0.0728).abs() < 1e-9, "{median}");
    // Over TCP too.
    let charged = wait_for(&server, "simplebank_demo_fees_charged", |r| !r[0].is_null());
    assert_eq!(value_of(&charged), 2.0);
    let fee = wait_for(&server, "simplebank_demo_fees_charge_fee_count", |r| {
        !r[0].is_null()
    });
    assert_eq!(value_of(&fee), 1.0);
    // Metadata says what each became.
    let meta = server.get("/api/v1/metadata").json();
    assert_eq!(
        meta["data"]["simplebank_demo_market_orders"][0]["type"],
        "counter"
    );
    assert_eq!(
        meta["data"]["simplebank_demo_market_place_order_stock_exchange"][0]["type"],
        "summary"
    );
}

#[test]
fn dogstatsd_packets_with_tags_rates_and_packed_values() {
    let (server, _dir) = start();
    let udp = server.addr("statsd", "udp");
    let packet = [
        "api.requests:1|c|@0.25|#service:orders,env:prod",
        "api.latency:100:200:300|ms|#service:orders",
        "api.errors:not-a-number|c",
        "api.requests:1|g",
        "api.requests:1|c|#service:a",
        "api.requests:1|c|#service:b",
        "api.requests:1|c|#service:c",
    ]
    .join("\n");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(packet.as_bytes(), udp).unwrap();
    // The sample rate scales the counter; tags become labels.
    let requests = wait_for(&server, "api_requests{service=\"orders\"}", |r| {
        !r[0].is_null()
    });
    assert_eq!(value_of(&requests), 4.0);
    assert_eq!(requests[0]["metric"]["env"], "prod");
    let latency = wait_for(&server, "api_latency_count", |r| !r[0].is_null());
    assert_eq!(value_of(&latency), 3.0);
    assert_eq!(latency[0]["metric"]["service"], "orders");
    // The bad line is an error, the type conflict and the fourth label set of
    // api_requests (budget 3) are dropped; the rest of the packet was kept.
    server.wait_for_metric(
        "sextant_listener_errors_total",
        &[("listener", "statsd"), ("transport", "udp")],
        |v| v == 1.0,
    );
    server.wait_for_metric(
        "sextant_listener_dropped_total",
        &[("listener", "statsd"), ("transport", "udp")],
        |v| v == 2.0,
    );
    let all = wait_for(&server, "api_requests", |r| {
        r.as_array().is_some_and(|a| a.len() == 3)
    });
    assert_eq!(all.as_array().unwrap().len(), 3);
}

#[test]
fn the_books_statsd_exporter_mapping_gives_the_series_it_promises() {
    // deploy/statsd_mapping.yml, unchanged: simplebank-demo.*.request_reservation
    // -> request_reservation{app="$1"}.
    let dir = tempfile::tempdir().unwrap();
    let mapping =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/statsd_mapping.yml");
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        format!(
            "statsd:\n  flush_interval: 200ms\n  mapping_config: {}\n",
            mapping.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let udp = server.addr("statsd", "udp");
    run_python(
        r#"
import sys, statsd
client = statsd.StatsClient(sys.argv[1], int(sys.argv[2]))
for service, ms in (("orders", 20), ("orders", 40), ("gateway", 10)):
    client.timing("simplebank-demo.%s.request_reservation" % service, ms)
client.incr("simplebank-demo.orders.unmapped")
"#,
        &[&udp.ip().to_string(), &udp.port().to_string()],
    );
    let counts = wait_for(&server, "request_reservation_count", |r| {
        r.as_array().is_some_and(|a| a.len() == 2)
    });
    let by_app: std::collections::BTreeMap<String, f64> = counts
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["metric"].as_object().unwrap();
            // Exactly the promised labels: the name and app.
            assert_eq!(labels.len(), 2, "{s}");
            (
                s["metric"]["app"].as_str().unwrap().to_owned(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_app,
        [("gateway".to_owned(), 1.0), ("orders".to_owned(), 2.0)].into()
    );
    let sum = wait_for(&server, "request_reservation_sum{app=\"orders\"}", |r| {
        !r[0].is_null()
    });
    assert!((value_of(&sum) - 0.06).abs() < 1e-9, "{sum}");
    // Names no mapping matches keep statsd_exporter's escaping.
    let unmapped = wait_for(&server, "simplebank_demo_orders_unmapped", |r| {
        !r[0].is_null()
    });
    assert_eq!(value_of(&unmapped), 1.0);
}

#[test]
fn a_bad_mapping_file_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mapping.yml"),
        "mappings:\n  - match: \"a.*\"\n    labels: {x: \"$1\"}\n",
    )
    .unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, "statsd:\n  mapping_config: mapping.yml\n").unwrap();
    let out = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mapping.yml") && stderr.contains("needs a name"),
        "{stderr}"
    );
}

#[test]
fn a_changed_mapping_file_applies_after_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.yml");
    let rule = |name: &str| {
        format!(
            "mappings:\n  - match: 'shop.*.orders'\n    name: '{name}'\n    labels:\n      shop: '$1'\n"
        )
    };
    std::fs::write(&mapping, rule("orders_before")).unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "statsd:\n  flush_interval: 200ms\n  mapping_config: mapping.yml\n",
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let udp = server.addr("statsd", "udp");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(b"shop.lyon.orders:2|c", udp).unwrap();
    wait_for(&server, "orders_before{shop=\"lyon\"}", |r| {
        r.as_array().is_some_and(|a| a.len() == 1) && value_of(r) == 2.0
    });

    std::fs::write(&mapping, rule("orders_after")).unwrap();
    let reply = server.post_path("/-/reload", "text/plain", b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    socket.send_to(b"shop.lyon.orders:5|c", udp).unwrap();
    wait_for(&server, "orders_after{shop=\"lyon\"}", |r| {
        r.as_array().is_some_and(|a| a.len() == 1) && value_of(r) == 5.0
    });

    // A broken mapping is refused and the running one kept.
    std::fs::write(
        &mapping,
        "mappings:\n  - match: 'a.*'\n    labels: {x: '$1'}\n",
    )
    .unwrap();
    let reply = server.post_path("/-/reload", "text/plain", b"");
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("needs a name"), "{}", reply.body);
    socket.send_to(b"shop.paris.orders:1|c", udp).unwrap();
    wait_for(&server, "orders_after{shop=\"paris\"}", |r| {
        r.as_array().is_some_and(|a| a.len() == 1) && value_of(r) == 1.0
    });
}

/// StatsD carries no token: `statsd.allowed_sources` is its access control.
#[test]
fn statsd_from_outside_the_allowed_sources_is_dropped_and_counted() {
    let send = r#"
import sys, statsd
statsd.StatsClient(sys.argv[1], int(sys.argv[2]), prefix="gate").incr("hits", 5)
"#;
    for (allowed, kept) in [("10.0.0.0/8", false), ("127.0.0.0/8", true)] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sextant.yaml");
        std::fs::write(
            &config,
            format!(
                "statsd:\n  flush_interval: 200ms\n  allowed_sources: ['{allowed}', 'fd00::/8']\n"
            ),
        )
        .unwrap();
        let server = Sextant::builder()
            .args(["--config", config.to_str().unwrap()])
            .start();
        let udp = server.addr("statsd", "udp");
        run_python(send, &[&udp.ip().to_string(), &udp.port().to_string()]);
        if kept {
            let hits = server.wait_for_query("gate_hits", |r| !r[0].is_null());
            assert_eq!(value_of(&hits), 5.0);
        } else {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let dropped =
                "sextant_listener_dropped_total{listener=\"statsd\",transport=\"udp\"} 1\n";
            while !server.get("/metrics").body.contains(dropped) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{}",
                    server.get("/metrics").body
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            let result = server.get("/api/v1/query?query=gate_hits").json();
            assert_eq!(result["data"]["result"], serde_json::json!([]), "{allowed}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, "statsd:\n  allowed_sources: ['10.0.0.0/33']\n").unwrap();
    let out = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the prefix length must be 0 to 32"),
        "{stderr}"
    );
}
