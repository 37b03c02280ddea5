//! PromQL through the Prometheus HTTP API, as Grafana's Prometheus data source
//! calls it, and side by side with the real Prometheus 2.42 on the same data.

use std::collections::BTreeMap;

use serde_json::Value;
use sextant_tests::{Prometheus, Sextant, url_encode};

/// A small deterministic generator, so every run compares the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1e6
    }
}

/// One series: labels in exposition notation and `(ms, value)` samples.
struct TestSeries {
    name: String,
    labels: String,
    samples: Vec<(i64, f64)>,
}

const STEP_MS: i64 = 15_000;
const SAMPLES: i64 = 3 * 240; // three hours at 15 s

/// Scrape-like data: per target, every 15 s with a jitter of 1..499 ms shared
/// by the target's series (all of a scrape has one timestamp). Query times
/// end in .500 s, so no sample sits on a window boundary: Prometheus 2.42's
/// closed windows and Prometheus 3's left-open ones then agree.
fn dataset(base: i64) -> Vec<TestSeries> {
    let mut rng = Rng(42);
    let mut out = Vec::new();
    let buckets = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    for job in ["api", "web"] {
        for instance in 0..3 {
            let target = format!("job=\"{job}\",instance=\"i-{instance}\"");
            let times: Vec<i64> = (0..SAMPLES)
                .map(|k| base + k * STEP_MS + 1 + (rng.next() % 499) as i64)
                .collect();
            let series = |name: &str, extra: &str, values: Vec<f64>| TestSeries {
                name: name.into(),
                labels: if extra.is_empty() {
                    target.clone()
                } else {
                    format!("{target},{extra}")
                },
                samples: times.iter().copied().zip(values).collect(),
            };
            for code in ["200", "500"] {
                let mut v = 1000.0 + (rng.next() % 100) as f64;
                let values = (0..SAMPLES)
                    .map(|k| {
                        if job == "web" && instance == 1 && code == "500" && k == 300 {
                            v = 3.0; // a counter reset
                        } else {
                            v += (rng.next() % 20) as f64;
                        }
                        v
                    })
                    .collect();
                out.push(series(
                    "http_requests_total",
                    &format!("code=\"{code}\""),
                    values,
                ));
            }
            let mut memory = 1.0e9 + (rng.next() % 1000) as f64 * 1e5;
            let values = (0..SAMPLES)
                .map(|_| {
                    memory += (rng.unit() - 0.45) * 4.0e6;
                    memory
                })
                .collect();
            out.push(series("node_memory_bytes", "", values));
            let mut temperature = rng.unit() * 4.0 - 2.0;
            let values = (0..SAMPLES)
                .map(|_| {
                    temperature += rng.unit() - 0.5;
                    (temperature * 100.0).round() / 100.0
                })
                .collect();
            out.push(series("temperature_celsius", "", values));
            let values = (0..SAMPLES)
                .map(|k| {
                    if (k / 40 + instance) % 7 == 3 {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect();
            out.push(series("up", "", values));
            // A classic histogram of request durations.
            let mut counts = [0.0f64; 7];
            let (mut sum, mut count) = (0.0, 0.0);
            let mut rows: Vec<([f64; 7], f64, f64)> = Vec::new();
            for _ in 0..SAMPLES {
                for _ in 0..(rng.next() % 12) {
                    let d = -rng.unit().max(1e-6).ln() * 0.3;
                    sum += d;
                    count += 1.0;
                    for (i, le) in buckets.iter().enumerate() {
                        if *le == "+Inf" || d <= le.parse::<f64>().unwrap() {
                            counts[i] += 1.0;
                        }
                    }
                }
                rows.push((counts, (sum * 1e6_f64).round() / 1e6, count));
            }
            for (i, le) in buckets.iter().enumerate() {
                let values = rows.iter().map(|r| r.0[i]).collect();
                out.push(series(
                    "request_duration_seconds_bucket",
                    &format!("le=\"{le}\""),
                    values,
                ));
            }
            out.push(series(
                "request_duration_seconds_sum",
                "",
                rows.iter().map(|r| r.1).collect(),
            ));
            out.push(series(
                "request_duration_seconds_count",
                "",
                rows.iter().map(|r| r.2).collect(),
            ));
        }
    }
    out
}

/// OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.
fn openmetrics(data: &[TestSeries]) -> String {
    let mut text = String::new();
    for s in data {
        for (t, v) in &s.samples {
            text.push_str(&format!(
                "{}{{{}}} {v} {}.{:03}\n",
                s.name,
                s.labels,
                t / 1000,
                t % 1000
            ));
        }
    }
    text.push_str("# EOF\n");
    text
}

/// Prometheus text with millisecond timestamps, for `/api/v1/import/prometheus`.
fn import_text(data: &[TestSeries]) -> String {
    let mut text = String::new();
    for s in data {
        for (t, v) in &s.samples {
            text.push_str(&format!("{}{{{}}} {v} {t}\n", s.name, s.labels));
        }
    }
    text
}

fn load_into_sextant(sextant: &Sextant, data: &[TestSeries]) {
    let reply = sextant.post_path(
        "/api/v1/import/prometheus",
        "text/plain",
        import_text(data).as_bytes(),
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
}

fn base_time() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 4 * 3_600_000) / 60_000 * 60_000
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn grafana_requests_get_prometheus_shapes() {
    let sextant = Sextant::start();
    let base = base_time();
    let data = dataset(base);
    load_into_sextant(&sextant, &data);
    let secs = |ms: i64| format!("{}", ms as f64 / 1000.0);
    let (start, end) = (base + 3_600_000, base + 7_200_000);

    // Grafana posts range queries as a form, with times and step in seconds.
    let body = form(&[
        ("query", "sum by (job) (rate(http_requests_total[5m]))"),
        ("start", &secs(start)),
        ("end", &secs(end)),
        ("step", "60"),
    ]);
    let reply = sextant.post_path(
        "/api/v1/query_range",
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type.starts_with("application/json"));
    let json = reply.json();
    assert_eq!(json["status"], "success");
    assert_eq!(json["data"]["resultType"], "matrix");
    let result = json["data"]["result"].as_array().unwrap();
    let jobs: Vec<&str> = result
        .iter()
        .map(|s| s["metric"]["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["api", "web"]);
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(
        values.len(),
        61,
        "one point a minute for an hour, both ends included"
    );
    assert_eq!(values[0][0].as_f64().unwrap(), start as f64 / 1000.0);
    let rate: f64 = values[0][1].as_str().unwrap().parse().unwrap();
    // Three instances and two codes each add 9.5 requests per scrape on average.
    assert!(
        (rate - 6.0 * 9.5 / 15.0).abs() < 1.0,
        "implausible rate {rate}"
    );

    // Instant query, POST form, vector result.
    let body = form(&[("query", "up"), ("time", &secs(end))]);
    let reply = sextant.post_path(
        "/api/v1/query",
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    );
    let json = reply.json();
    assert_eq!(json["data"]["resultType"], "vector");
    let result = json["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 6);
    assert_eq!(result[0]["metric"]["__name__"], "up");
    assert_eq!(result[0]["value"][0].as_f64().unwrap(), end as f64 / 1000.0);
    assert!(result[0]["value"][1].is_string());

    // Scalars and strings, and the special values as Prometheus writes them.
    for (query, expected) in [
        ("1+1", "2"),
        ("0/0", "NaN"),
        ("1/0", "+Inf"),
        ("-1/0", "-Inf"),
    ] {
        let json = sextant
            .get(&format!(
                "/api/v1/query?query={}&time=1000",
                url_encode(query)
            ))
            .json();
        assert_eq!(json["data"]["resultType"], "scalar");
        assert_eq!(
            json["data"]["result"],
            serde_json::json!([1000, expected]),
            "{query}"
        );
    }
    let json = sextant
        .get("/api/v1/query?query=%22hello%22&time=1.5")
        .json();
    assert_eq!(json["data"]["result"], serde_json::json!([1.5, "hello"]));

    // A range vector from an instant query is a matrix of raw samples.
    let json = sextant
        .get(&format!(
            "/api/v1/query?query={}&time={}",
            url_encode("up{instance=\"i-0\",job=\"api\"}[1m]"),
            secs(end)
        ))
        .json();
    assert_eq!(json["data"]["resultType"], "matrix");
    assert_eq!(
        json["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Hints ride beside the data, as Prometheus 3 sends them (Grafana shows them).
    let json = sextant
        .get(&format!(
            "/api/v1/query?query={}&time={}",
            url_encode("rate(node_memory_bytes[5m])"),
            secs(end)
        ))
        .json();
    assert_eq!(json["data"]["result"].as_array().unwrap().len(), 6);
    assert_eq!(
        json["infos"],
        serde_json::json!([
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"node_memory_bytes\""
        ])
    );
    assert!(json.get("warnings").is_none());

    // What Grafana asks for besides queries.
    let json = sextant.get("/api/v1/status/buildinfo").json();
    assert_eq!(json["status"], "success");
    assert!(json["data"]["version"].as_str().unwrap().starts_with("3."));
    let json = sextant
        .get(&format!(
            "/api/v1/query_exemplars?query=up&start={}&end={}",
            secs(start),
            secs(end)
        ))
        .json();
    assert_eq!(json["data"], serde_json::json!([]));
    let reply = sextant.post_path(
        "/api/v1/labels",
        "application/x-www-form-urlencoded",
        form(&[
            ("match[]", "up"),
            ("start", &secs(start)),
            ("end", &secs(end)),
        ])
        .as_bytes(),
    );
    assert_eq!(
        reply.json()["data"],
        serde_json::json!(["__name__", "instance", "job"])
    );
    let json = sextant
        .get(&format!(
            "/api/v1/label/job/values?start={}&end={}",
            secs(start),
            secs(end)
        ))
        .json();
    assert_eq!(json["data"], serde_json::json!(["api", "web"]));
    let json = sextant
        .get(&format!(
            "/api/v1/format_query?query={}",
            url_encode("sum(rate(x[5m]))by(job)")
        ))
        .json();
    assert_eq!(json["data"], "sum by (job) (rate(x[5m]))");
    // The engine's work shows in Sextant's own metrics.
    assert!(sextant.metric("sextant_queries_total", &[]).unwrap() >= 7.0);
}

#[test]
fn bad_queries_get_prometheus_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, "query:\n  max_samples: 1000\n").unwrap();
    let sextant = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let base = base_time();
    load_into_sextant(&sextant, &dataset(base));
    let at = (base + 7_200_000) / 1000;

    let error = |path: String| {
        let reply = sextant.get(&path);
        let json = reply.json();
        assert_eq!(json["status"], "error", "{path}: {}", reply.body);
        (
            reply.status,
            json["errorType"].as_str().unwrap().to_owned(),
            json["error"].as_str().unwrap().to_owned(),
        )
    };
    // Parse errors: 400 bad_data naming the parameter and the problem.
    let (status, kind, message) = error(format!(
        "/api/v1/query?query={}",
        url_encode("sum(rate(x[5m])")
    ));
    assert_eq!((status, kind.as_str()), (400, "bad_data"));
    assert_eq!(
        message,
        "invalid parameter \"query\": parse error: unclosed left parenthesis"
    );
    let (status, _, message) = error(format!("/api/v1/query?query={}", url_encode("rate(x)")));
    assert_eq!(status, 400);
    assert!(
        message.contains("expected type matrix in call to function 'rate', got vector"),
        "{message}"
    );
    let (status, _, message) = error("/api/v1/query?query=".into());
    assert_eq!(status, 400);
    assert!(
        message.contains("no expression found in input"),
        "{message}"
    );
    let (status, _, message) = error("/api/v1/query?query=up&time=yesterday".into());
    assert_eq!(status, 400);
    assert!(message.contains("invalid parameter \"time\""), "{message}");
    // Range parameters.
    for (params, expected) in [
        (
            "start=10&end=20&step=0",
            "zero or negative query resolution step widths are not accepted",
        ),
        (
            "start=20&end=10&step=1",
            "end timestamp must not be before start time",
        ),
        (
            "start=0&end=100000&step=1",
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        ("start=0&end=10", "invalid parameter \"step\": missing"),
        (
            "start=0&end=10&step=fast",
            "invalid parameter \"step\": cannot parse \"fast\" to a valid duration",
        ),
    ] {
        let (status, kind, message) = error(format!("/api/v1/query_range?query=up&{params}"));
        assert_eq!((status, kind.as_str()), (400, "bad_data"), "{params}");
        assert!(message.contains(expected), "{params}: {message}");
    }
    // Evaluation errors: 422 execution.
    let query = url_encode("http_requests_total + on(job) node_memory_bytes");
    let (status, kind, message) = error(format!("/api/v1/query?query={query}&time={at}"));
    assert_eq!((status, kind.as_str()), (422, "execution"));
    assert!(
        message.contains("many-to-many matching not allowed"),
        "{message}"
    );
    // A query holding more samples than `query.max_samples` fails instead of growing.
    let query = url_encode("http_requests_total[1h]");
    let (status, kind, message) = error(format!("/api/v1/query?query={query}&time={at}"));
    assert_eq!((status, kind.as_str()), (422, "execution"));
    assert!(
        message.contains("query processing would load too many samples into memory"),
        "{message}"
    );
    // A query past its timeout: 503 timeout.
    let query = url_encode("sum_over_time(up[5m])");
    let (status, kind, message) = error(format!(
        "/api/v1/query?query={query}&time={at}&timeout=0.000001"
    ));
    assert_eq!((status, kind.as_str()), (503, "timeout"));
    assert!(message.contains("query timed out"), "{message}");
    assert!(sextant.metric("sextant_query_failures_total", &[]).unwrap() >= 3.0);
}

/// A result normalised for comparison: its type and labels -> points (ms, value).
type Normalised = (String, BTreeMap<String, Vec<(i64, f64)>>);

/// The result of an API answer, or its error type.
fn normalise(json: &Value) -> Result<Normalised, String> {
    if json["status"] != "success" {
        return Err(json["errorType"].as_str().unwrap_or("?").to_owned());
    }
    let kind = json["data"]["resultType"].as_str().unwrap().to_owned();
    let point = |p: &Value| -> (i64, f64) {
        let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
        let v = match p[1].as_str().unwrap() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            s => s.parse().unwrap_or(f64::NAN),
        };
        (t, v)
    };
    let mut out = BTreeMap::new();
    match kind.as_str() {
        "scalar" | "string" => {
            let r = &json["data"]["result"];
            let t = (r[0].as_f64().unwrap() * 1000.0).round() as i64;
            let v = r[1].as_str().unwrap();
            out.insert(format!("{kind}:{v}"), vec![(t, v.parse().unwrap_or(0.0))]);
        }
        _ => {
            for s in json["data"]["result"].as_array().unwrap() {
                let labels = serde_json::to_string(&s["metric"]).unwrap();
                let points = match s.get("values") {
                    Some(values) => values.as_array().unwrap().iter().map(point).collect(),
                    None => vec![point(&s["value"])],
                };
                out.insert(labels, points);
            }
        }
    }
    Ok((kind, out))
}

fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9)
}

#[test]
fn promql_matches_prometheus_2_42_on_the_same_data() {
    let base = base_time();
    let data = dataset(base);
    let prometheus = Prometheus::start_with_backfill(
        "global:\n  scrape_interval: 1h\n",
        &["--storage.tsdb.retention.time=30d"],
        Some(&openmetrics(&data)),
    );
    let sextant = Sextant::start();
    load_into_sextant(&sextant, &data);

    let pinned = (base + 5_400_000 + 500) / 1000;
    let pinned = format!("{pinned}.5");
    let queries: Vec<String> = [
        "up",
        "http_requests_total{code=\"500\"}",
        "http_requests_total offset 5m",
        "node_memory_bytes offset -2m",
        "rate(http_requests_total[5m])",
        "irate(http_requests_total[5m])",
        "increase(http_requests_total[10m])",
        "delta(node_memory_bytes[10m])",
        "idelta(node_memory_bytes[5m])",
        "deriv(node_memory_bytes[15m])",
        "predict_linear(node_memory_bytes[15m], 3600)",
        "resets(http_requests_total[30m])",
        "changes(up[30m])",
        "sum(rate(http_requests_total[5m]))",
        "sum by (job) (rate(http_requests_total[5m]))",
        "sum without (instance) (rate(http_requests_total[5m]))",
        "avg by (job) (node_memory_bytes)",
        "min by (job) (node_memory_bytes) / max by (job) (node_memory_bytes)",
        "count by (code) (http_requests_total)",
        "group by (job) (up)",
        "stddev by (job) (node_memory_bytes)",
        "stdvar(temperature_celsius)",
        "topk(2, rate(http_requests_total[5m]))",
        "bottomk by (job) (1, node_memory_bytes)",
        "quantile(0.9, rate(http_requests_total[5m]))",
        "quantile by (job) (0.25, temperature_celsius)",
        "count_values(\"state\", up)",
        "histogram_quantile(0.99, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
        "histogram_quantile(0.5, sum by (job, le) (rate(request_duration_seconds_bucket[5m])))",
        "histogram_quantile(0.9, rate(request_duration_seconds_bucket[10m]))",
        "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
        "sum by (job) (rate(http_requests_total{code=\"500\"}[5m])) / sum by (job) (rate(http_requests_total[5m]))",
        "rate(http_requests_total{code=\"500\"}[5m]) / ignoring(code) rate(http_requests_total{code=\"200\"}[5m])",
        "http_requests_total / on(job, instance) group_left node_memory_bytes",
        "up * on(job, instance) group_right node_memory_bytes",
        "http_requests_total > 2000",
        "http_requests_total > bool 2000",
        "up == 1",
        "up and on(instance) (node_memory_bytes > 1e9)",
        "http_requests_total unless on(job, instance) (up == 0)",
        "up or on(job) node_memory_bytes",
        "1 - up",
        "2 ^ temperature_celsius",
        "temperature_celsius % 0.7",
        "-temperature_celsius",
        // Prometheus 2.46 began dropping the metric name for atan2 (as for
        // every arithmetic operator), which Sextant does; compare without it.
        "sum by (job, instance) (temperature_celsius atan2 1)",
        "avg_over_time(node_memory_bytes[10m])",
        "sum_over_time(up[10m])",
        "min_over_time(temperature_celsius[10m])",
        "max_over_time(temperature_celsius[10m])",
        "count_over_time(up[7m])",
        "last_over_time(temperature_celsius[10m])",
        "quantile_over_time(0.9, temperature_celsius[30m])",
        "stddev_over_time(temperature_celsius[10m])",
        "stdvar_over_time(temperature_celsius[10m])",
        "present_over_time(up[5m])",
        "absent(nonexistent{job=\"x\"})",
        "absent(up)",
        "absent_over_time(up{job=\"api\"}[5m])",
        "label_replace(up, \"host\", \"$1\", \"instance\", \"i-(.*)\")",
        "label_join(up, \"id\", \"/\", \"job\", \"instance\")",
        "clamp(temperature_celsius, -1, 1)",
        "clamp_min(temperature_celsius, 0)",
        "clamp_max(temperature_celsius, 0)",
        "abs(temperature_celsius)",
        "sgn(temperature_celsius)",
        "round(temperature_celsius, 0.5)",
        "ceil(temperature_celsius)",
        "floor(temperature_celsius)",
        "sqrt(node_memory_bytes)",
        "exp(temperature_celsius)",
        "ln(node_memory_bytes)",
        "log2(node_memory_bytes)",
        "log10(node_memory_bytes)",
        "sin(temperature_celsius) + cos(temperature_celsius)",
        "deg(temperature_celsius)",
        "scalar(sum(up)) * 2",
        "vector(1) + on() group_left sum(up)",
        "time() - timestamp(up)",
        "timestamp(rate(http_requests_total[5m]))",
        "hour(timestamp(up))",
        "minute()",
        "day_of_week()",
        "day_of_month()",
        "day_of_year()",
        "days_in_month()",
        "month()",
        "year()",
        "sort_desc(sum by (job) (node_memory_bytes))",
        "max_over_time(rate(http_requests_total[5m])[30m:1m])",
        "avg_over_time(sum by (job) (rate(http_requests_total[2m]))[15m:30s])",
        "rate(http_requests_total[5m] offset 10m)",
        &format!("sum(http_requests_total @ {pinned})"),
        &format!("rate(http_requests_total[5m] @ {pinned})"),
        "sum(up @ start())",
        "max_over_time(temperature_celsius[10m:1m] @ end())",
        "1 + 2 * 3",
        "(1 > bool 2) + 5",
    ]
    .iter()
    .map(|q| q.to_string())
    .collect();

    let instants = [
        base + 3_600_000 + 500,
        base + 7_777_000 + 500,
        base + 10_500_500,
    ];
    let ranges = [
        (base + 3_600_500, base + 10_800_500 - 60_000, 60_000),
        (base + 9_000_500, base + 9_900_500, 17_000),
    ];
    let secs = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let mut requests = Vec::new();
    for q in &queries {
        for t in instants {
            requests.push(format!(
                "/api/v1/query?query={}&time={}",
                url_encode(q),
                secs(t)
            ));
        }
        for (start, end, step) in ranges {
            requests.push(format!(
                "/api/v1/query_range?query={}&start={}&end={}&step={}",
                url_encode(q),
                secs(start),
                secs(end),
                step / 1000
            ));
        }
    }
    let mut mismatches = Vec::new();
    let mut points = 0usize;
    let mut with_data = 0usize;
    for path in &requests {
        let theirs = normalise(&prometheus.get_json(path));
        let ours = normalise(&sextant.get(path).json());
        match (&theirs, &ours) {
            (Ok((kind_a, a)), Ok((kind_b, b))) => {
                with_data += usize::from(!a.is_empty());
                if kind_a != kind_b || a.keys().ne(b.keys()) {
                    mismatches.push(format!(
                        "{path}\n  prometheus {kind_a} {:?}\n  sextant    {kind_b} {:?}",
                        a.keys().collect::<Vec<_>>(),
                        b.keys().collect::<Vec<_>>()
                    ));
                    continue;
                }
                for (labels, pa) in a {
                    let pb = &b[labels];
                    points += pa.len();
                    let same = pa.len() == pb.len()
                        && pa
                            .iter()
                            .zip(pb)
                            .all(|(x, y)| x.0 == y.0 && same_float(x.1, y.1));
                    if !same {
                        let first = pa
                            .iter()
                            .zip(pb)
                            .find(|(x, y)| !(x.0 == y.0 && same_float(x.1, y.1)));
                        mismatches.push(format!(
                            "{path}\n  {labels}: {} vs {} points, first difference {first:?}",
                            pa.len(),
                            pb.len()
                        ));
                        break;
                    }
                }
            }
            (Err(a), Err(b)) if a == b => {}
            _ => mismatches.push(format!(
                "{path}\n  prometheus {theirs:?}\n  sextant {ours:?}"
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} requests differ from Prometheus 2.42:\n{}",
        mismatches.len(),
        requests.len(),
        mismatches
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        points > 50_000,
        "the comparison covered only {points} points"
    );
    // Only `absent(up)` and the absent_over_time of a present series are empty.
    assert!(
        with_data + 10 >= requests.len(),
        "only {with_data} of {} requests returned data",
        requests.len()
    );
    // Shown with --nocapture: how much was compared.
    let summary = format!(
        "{} requests, {points} points compared, {with_data} with data\n",
        requests.len()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), summary.as_bytes());
}
