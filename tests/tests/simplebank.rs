//! The book's SimpleBank, end to end, exactly as the README's quick start
//! runs it (`examples/simplebank/run.py`, here with the freshly built
//! binary): seven Python services with the real client libraries and a
//! load generator. Through the public APIs: one order's uuid correlates to
//! the log lines of all five services of the sell flow and the spans of its
//! trace, in time order; the Place Order timers are summaries with their
//! quantiles; the statsd_exporter mapping file's labels are applied;
//! pausing market's consumer piles up the queue past 100 and the alerts
//! service gets Grafana's `alerting`, and resuming it gets `ok`.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_tests::{Receiver, python, sextant_bin, url_encode};

/// The example's process tree, stopped (SIGTERM: run.py stops its children) on drop.
struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

fn get(base: &str, path: &str) -> Value {
    let url = format!("{base}{path}");
    match ureq::get(&url).call() {
        Ok(mut r) => r.body_mut().read_json().unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn until(what: &str, seconds: u64, mut check: impl FnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {seconds} s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_books_simplebank_correlates_times_maps_and_alerts_end_to_end() {
    let receiver = Receiver::start();
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/simplebank/run.py");
    let mut child = Command::new(python())
        .arg(&run)
        .args(["--http", "0", "--duration", "300", "--webhook"])
        .arg(receiver.url("/alerts"))
        .arg("--sextant")
        .arg(sextant_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the example");
    let stdout = child.stdout.take().unwrap();
    let _example = Example(child);
    let mut lines = BufReader::new(stdout).lines();
    let ready: Value = loop {
        let line = lines
            .next()
            .expect("run.py printed its ready line")
            .unwrap();
        let json: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if json["ready"] == true {
            break json;
        }
    };
    // Keep draining run.py's output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let base = ready["sextant"].as_str().unwrap().to_owned();
    let order = ready["order_uuid"].as_str().unwrap().to_owned();

    // One order's uuid: the log lines of all five services and its trace.
    let five = [
        "account-transactions",
        "fees",
        "gateway",
        "market",
        "orders",
    ];
    let correlated = until("the order's logs and spans", 60, || {
        let c = get(&base, &format!("/api/v1/correlate/{order}"));
        let services: Vec<&str> = c["services"]
            .as_array()?
            .iter()
            .filter(|s| s["logs"].as_u64() > Some(0))
            .filter_map(|s| s["name"].as_str())
            .collect();
        let spans = c["spans"].as_array()?.len();
        // Eight lines (gateway 2, orders 2, account-transactions 1, market
        // 2, fees 1) and seven spans (market's three: the enqueue, the
        // consumer's place_order and its stock exchange call).
        (services == five && spans == 7 && c["logs"].as_array()?.len() == 8).then_some(c.clone())
    });
    let timeline = correlated["timeline"].as_array().unwrap();
    let times: Vec<&str> = timeline
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "the timeline is in time order");
    // The gateway's span or its first line (logged inside that span, but
    // stamped to the millisecond by python-logstash) comes first.
    assert_eq!(
        timeline[0]["service"], "gateway",
        "the gateway starts it: {}",
        timeline[0]
    );
    let traces = correlated["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "one trace: {traces:?}");
    let trace_id = traces[0]["trace_id"].as_str().unwrap();
    for span in correlated["spans"].as_array().unwrap() {
        assert_eq!(span["trace_id"], trace_id, "{span}");
    }
    let span_services: Vec<&str> = correlated["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    for service in five {
        assert!(span_services.contains(&service), "no span of {service}");
    }
    let trace = get(&base, &format!("/jaeger/api/traces/{trace_id}"));
    assert_eq!(
        trace["data"][0]["spans"].as_array().unwrap().len(),
        correlated["spans"].as_array().unwrap().len()
    );

    // The Place Order timers as summaries, with the dashboards' quantiles.
    let quantiles = until("the stock exchange timer's quantiles", 30, || {
        let r = get(
            &base,
            &format!(
                "/api/v1/query?query={}",
                url_encode("simplebank_demo_market_place_order_stock_exchange")
            ),
        );
        let q: Vec<String> = r["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|s| s["metric"]["quantile"].as_str().map(str::to_owned))
            .collect();
        (q.len() == 3).then(|| serde_json::json!(q))
    });
    assert_eq!(quantiles, serde_json::json!(["0.5", "0.9", "0.99"]));
    let count = get(
        &base,
        &format!(
            "/api/v1/query?query={}",
            url_encode("simplebank_demo_orders_place_order_count")
        ),
    );
    assert!(
        count["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            >= 1.0,
        "{count}"
    );
    let metadata = get(
        &base,
        "/api/v1/metadata?metric=simplebank_demo_market_place_order_stock_exchange",
    );
    assert_eq!(
        metadata["data"]["simplebank_demo_market_place_order_stock_exchange"][0]["type"],
        "summary"
    );

    // The mapping file: one metric, the service as `app`.
    let mapped = until("request_reservation{app}", 30, || {
        let r = get(
            &base,
            &format!(
                "/api/v1/query?query={}",
                url_encode("count by (app) (request_reservation)")
            ),
        );
        let mut apps: Vec<String> = r["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|s| s["metric"]["app"].as_str().map(str::to_owned))
            .collect();
        apps.sort();
        (apps.len() == 2).then(|| serde_json::json!(apps))
    });
    assert_eq!(
        mapped,
        serde_json::json!(["account-transactions", "orders"])
    );

    // The queue piles up while market does not consume: alerting, then ok.
    let pause = ready["pause_market"].as_str().unwrap();
    ureq::post(pause).send_empty().expect("pause market");
    let alerting = receiver.wait_for_within("/alerts", "an alerting notification", 90, |b| {
        b["state"] == "alerting"
    });
    assert_eq!(alerting["title"], "[Alerting] HighNumberOfMessagesInQueue");
    assert_eq!(alerting["message"], "Messages accumulating in the queue");
    let tags = &alerting["evalMatches"][0]["tags"];
    assert_eq!(tags["exporter"], "rabbitmq");
    assert_eq!(tags["job"], "rabbitmq");
    assert_eq!(
        tags["queue"],
        "evt-orders_service-order_created--market_service.place_order"
    );
    assert!(alerting["evalMatches"][0]["value"].as_f64().unwrap() > 100.0);
    let resume = ready["resume_market"].as_str().unwrap();
    ureq::post(resume).send_empty().expect("resume market");
    let ok = receiver.wait_for_within("/alerts", "an ok notification", 90, |b| b["state"] == "ok");
    assert_eq!(ok["title"], "[OK] HighNumberOfMessagesInQueue");
    assert_eq!(ok["evalMatches"], serde_json::json!([]));
}
