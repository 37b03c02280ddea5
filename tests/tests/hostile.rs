//! The hostile-input battery: one table per endpoint that takes a language
//! or a structure, filled with what an attacker (or a broken generator)
//! sends: nesting up to 100,000 deep, 100,000-term chains, huge regex
//! alternations and repetition counts, invalid UTF-8, numbers past f64,
//! absurd steps and ranges, times outside any calendar.
//!
//! Every input must be answered, with a 4xx or a real answer, never a 5xx
//! and never a dead process: the client gives each request a generous
//! timeout (a hang fails the test, however fast the answer otherwise is),
//! `/-/ready` is asked after every input, and after each table a normal
//! query must still give its value. Inputs that a limit refuses must name
//! the limit's setting.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use sextant_tests::Sextant;

/// One hostile request.
struct Case {
    name: String,
    method: &'static str,
    /// Path and query string, already encoded.
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// Text the answer must contain (a refusal naming its setting).
    must_say: Option<&'static str>,
}

struct Answer {
    status: u16,
    body: String,
}

/// Sends one request over its own connection, written by hand: the inputs
/// include URLs longer than HTTP client crates build and bytes they refuse.
fn send(base: &str, case: &Case) -> Answer {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    // Not a speed assertion: a request that hangs this long is a hang.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "{} {} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\ncontent-type: {}\r\ncontent-length: {}\r\n\r\n",
        case.method,
        case.path,
        case.content_type,
        case.body.len()
    )
    .into_bytes();
    request.extend_from_slice(&case.body);
    // The server may answer (413, 431) before it has read everything.
    let _ = stream.write_all(&request);
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .unwrap_or_else(|e| panic!("{}: no answer: {e}", case.name));
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{}: no status line: {status_line:?}", case.name));
    let mut streaming = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        streaming |= line
            .to_ascii_lowercase()
            .starts_with("content-type: text/event-stream");
    }
    // A tail that was accepted streams for ever: its status is the answer.
    let mut body = Vec::new();
    if !streaming {
        let _ = reader.take(64 << 20).read_to_end(&mut body);
    }
    Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends every case and checks the answer and that the server lives on.
fn run_table(server: &Sextant, table: &str, cases: &[Case], base: &str) {
    let mut report = Vec::new();
    for case in cases {
        let started = std::time::Instant::now();
        let answer = send(base, case);
        let elapsed = started.elapsed();
        let first_line: String = answer.body.chars().take(160).collect();
        // The time is for the record only (shown with --nocapture).
        report.push(format!(
            "{table} | {} | {} | {:.0?} | {first_line}",
            case.name, answer.status, elapsed
        ));
        assert!(
            (200..500).contains(&answer.status),
            "{table}: {}: status {} ({first_line})\n{}",
            case.name,
            answer.status,
            server.logs()
        );
        if let Some(text) = case.must_say {
            assert!(
                answer.body.contains(text),
                "{table}: {}: {} does not say {text:?}: {first_line}",
                case.name,
                answer.status
            );
        }
        let ready = server.get("/-/ready");
        assert_eq!(
            ready.status,
            200,
            "{table}: {}: server not ready after it\n{}",
            case.name,
            server.logs()
        );
    }
    // What each input got, for the record (shown with --nocapture).
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{}", report.join("\n"));
    }
    still_answers(server);
}

/// A normal query and a normal log search still work.
fn still_answers(server: &Sextant) {
    let two = server
        .get("/api/v1/query?query=vector(1)%2Bvector(1)")
        .json();
    assert_eq!(two["data"]["result"][0]["value"][1], "2", "{two}");
    let found = server.get("/api/v1/logs/search?q=canary&start=0").json();
    assert!(found.to_string().contains("canary line"), "{found}");
}

/// Percent-encodes `bytes` for a query string or form body, leaving the
/// characters queries are made of readable where the URI grammar allows.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~()*!,:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Form fields: names and raw values.
type Pairs<'a> = Vec<(&'a str, &'a [u8])>;

fn form(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

const DEPTH: Option<&str> = Some("query.max_depth");
const BYTES: Option<&str> = Some("query.max_query_bytes");
/// Either of the two.
const LIMIT: Option<&str> = Some("query.max_");

/// PromQL inputs: (name, text, what a refusal must name).
fn promql_inputs() -> Vec<(String, Vec<u8>, Option<&'static str>)> {
    let mut inputs: Vec<(String, Vec<u8>, Option<&'static str>)> = Vec::new();
    let mut add = |name: &str, text: String, must: Option<&'static str>| {
        inputs.push((name.to_owned(), text.into_bytes(), must));
    };
    for n in [1_000, 10_000, 50_000] {
        // A thousand levels is at the budget: answered or refused, by name.
        let deep = if n == 1_000 { None } else { DEPTH };
        add(
            &format!("sum( nested {n}"),
            nest("sum(", "up", ")", n),
            deep,
        );
        add(
            &format!("abs( nested {n}"),
            nest("abs(", "up", ")", n),
            deep,
        );
        add(&format!("( nested {n}"), nest("(", "1", ")", n), deep);
        add(&format!("{n}-term 1+1"), chain("1", "+", n), deep);
        // 50,000 of them are over the length limit before the depth limit.
        add(&format!("{n} ORs"), chain("up", " or ", n), deep.and(LIMIT));
        add(&format!("- - - {n}"), format!("{}1", "-".repeat(n)), deep);
    }
    add(
        "max_over_time( subqueries nested 1,000",
        nest("max_over_time(", "up", "[5m:1m])", 1_000),
        DEPTH,
    );
    add("( nested 100,000", nest("(", "1", ")", 100_000), DEPTH);
    add("100,000-term 1+1", chain("1", "+", 100_000), DEPTH);
    add("100,000 ORs", chain("up", " or ", 100_000), BYTES);
    add("unclosed ( 100,000", "(".repeat(100_000), DEPTH);
    add(
        "unclosed [ 100,000",
        format!("up{}", "[".repeat(100_000)),
        DEPTH,
    );
    add(
        "nested { 100,000",
        format!("up{}", "{".repeat(100_000)),
        DEPTH,
    );
    add(
        "query over max bytes",
        format!("up{{a=\"{}\"}}", "x".repeat(300_000)),
        BYTES,
    );
    // Regexes: the regex crate's own nest and size limits refuse these.
    let alternation: Vec<String> = (0..20_000).map(|i| format!("host-{i}")).collect();
    add(
        "regex alternation of 20,000",
        format!("up{{instance=~\"{}\"}}", alternation.join("|")),
        None,
    );
    add(
        "regex repetition a{1000}{1000}",
        "up{job=~\"a{1000}{1000}\"}".into(),
        None,
    );
    add(
        "regex repetition (a{100}){100}{100}",
        "up{job=~\"(a{100}){100}{100}\"}".into(),
        None,
    );
    add(
        "regex nested 10,000",
        format!("up{{job=~\"{}\"}}", nest("(", "a", ")", 10_000)),
        None,
    );
    add(
        "regex 100,000 stars",
        format!("up{{job=~\"{}\"}}", "a*".repeat(50_000)),
        None,
    );
    add(
        "label_replace huge regex",
        format!(
            "label_replace(up, \"a\", \"$1\", \"job\", \"{}\")",
            nest("(", "a", ")", 5_000)
        ),
        None,
    );
    // Numbers and durations past any range.
    add("1e400", "1e400".into(), None);
    add("huge integer", "9".repeat(400), None);
    add(
        "range of 1e12 years",
        "rate(up[1000000000000y])".into(),
        None,
    );
    add("offset 1e12 years", "up offset 1000000000000y".into(), None);
    add(
        "negative offset 1e12 years",
        "up offset -1000000000000y".into(),
        None,
    );
    add("@ 1e30", "up @ 1e30".into(), None);
    add("@ -1e30", "up @ -1e30".into(), None);
    add(
        "subquery 1000y:1ms",
        "max_over_time(vector(1)[1000y:1ms])".into(),
        None,
    );
    add("subquery step 0", "max_over_time(up[5m:0s])".into(), None);
    add(
        "nested subqueries 10y:1s",
        nest("max_over_time(", "vector(1)", "[10y:1s])", 3),
        None,
    );
    add(
        "quantile_over_time NaN",
        "quantile_over_time(NaN, up[5m])".into(),
        None,
    );
    add("topk 1e30", "topk(1e30, up)".into(), None);
    add("topk -1", "topk(-1, up)".into(), None);
    add(
        "count_values huge label",
        format!("count_values(\"{}\", up)", "l".repeat(100_000)),
        None,
    );
    add(
        "histogram_quantile 1e308",
        "histogram_quantile(1e308, up)".into(),
        None,
    );
    add(
        "predict_linear 1e308",
        "predict_linear(up[5m], 1e308)".into(),
        None,
    );
    add("round to 0", "round(up, 0)".into(), None);
    add(
        "string 200 KB",
        format!("\"{}\"", "s".repeat(200_000)),
        None,
    );
    // Not UTF-8, or not text at all.
    inputs.push((
        "invalid UTF-8".into(),
        b"up{job=\"\xff\xfe\"}".to_vec(),
        None,
    ));
    inputs.push(("lone continuation bytes".into(), vec![0x80; 1000], None));
    inputs.push(("NUL bytes".into(), b"up\0\0\0".to_vec(), None));
    inputs.push(("empty".into(), Vec::new(), None));
    inputs
}

fn promql_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, query, must) in promql_inputs() {
        let paths: [(&str, Pairs<'_>); 4] = [
            ("/api/v1/query", vec![("time", b"100")]),
            (
                "/api/v1/query_range",
                vec![("start", b"0"), ("end", b"3600"), ("step", b"60")],
            ),
            ("/api/v1/format_query", vec![]),
            (
                "/api/v1/query_exemplars",
                vec![("start", b"0"), ("end", b"3600")],
            ),
        ];
        for (path, extra) in paths {
            let mut pairs: Vec<(&str, &[u8])> = vec![("query", &query)];
            pairs.extend(extra);
            cases.push(Case {
                name: format!("{path} {name}"),
                method: "POST",
                path: path.to_owned(),
                content_type: "application/x-www-form-urlencoded",
                body: form(&pairs),
                must_say: must,
            });
        }
    }
    // One small hostile query by GET too, as Grafana sends them.
    cases.push(Case {
        name: "GET /api/v1/query sum( nested 1,000".into(),
        method: "GET",
        path: format!(
            "/api/v1/query?query={}",
            encode(nest("sum(", "up", ")", 1_000).as_bytes())
        ),
        content_type: "text/plain",
        body: Vec::new(),
        must_say: DEPTH,
    });
    cases
}

/// Absurd times, steps and ranges on the query APIs.
fn time_cases() -> Vec<Case> {
    let q = |path: &str, params: &str| Case {
        name: format!("{path}?{params}"),
        method: "GET",
        path: format!("{path}?query=up&{params}"),
        content_type: "text/plain",
        body: Vec::new(),
        must_say: None,
    };
    let mut cases = Vec::new();
    for t in [
        "1e300",
        "-1e300",
        "NaN",
        "Inf",
        "9223372036854775807",
        "-9223372036854775808",
        "99999-12-31T00:00:00Z",
        "2024-13-45T99:99:99Z",
        "%FF%FE",
    ] {
        cases.push(q("/api/v1/query", &format!("time={t}")));
        cases.push(q(
            "/api/v1/query_range",
            &format!("start={t}&end=100&step=15"),
        ));
        cases.push(q(
            "/api/v1/query_range",
            &format!("start=0&end={t}&step=15"),
        ));
        cases.push(q("/api/v1/series", &format!("match[]=up&start={t}")));
        cases.push(q("/api/v1/labels", &format!("end={t}")));
        cases.push(q("/api/v1/logs/search", &format!("q=canary&start={t}")));
        cases.push(q("/api/v1/logs/histogram", &format!("q=canary&end={t}")));
        cases.push(q("/jaeger/api/traces", &format!("service=x&start={t}")));
    }
    for step in [
        "0",
        "-1",
        "1e-300",
        "1e300",
        "NaN",
        "0.0001",
        "1000000000000y",
        "%FF",
    ] {
        cases.push(q(
            "/api/v1/query_range",
            &format!("start=0&end=3600&step={step}"),
        ));
        cases.push(q(
            "/api/v1/logs/histogram",
            &format!("q=canary&step={step}"),
        ));
    }
    cases.push(q(
        "/api/v1/query_range",
        "start=-1e300&end=1e300&step=1e300",
    ));
    cases.push(q("/api/v1/query_range", "start=0&end=1e15&step=1"));
    cases.push(q("/api/v1/query", "timeout=1e300s"));
    cases.push(q("/api/v1/query", "timeout=-5s"));
    cases.push(q("/api/v1/query", "lookback_delta=1000000000000y"));
    cases.push(q("/api/v1/query", "lookback_delta=%FF"));
    cases
}

/// `match[]` on the series, labels, values and export paths.
fn selector_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("match[]=up{{i=\"{i}\"}}"))
        .collect();
    let inputs: Vec<(String, String)> = vec![
        ("10,000 match[]".into(), many.join("&")),
        (
            "match[] nested ( 10,000".into(),
            format!(
                "match[]={}",
                encode(nest("(", "up", ")", 10_000).as_bytes())
            ),
        ),
        (
            "match[] nested { 10,000".into(),
            format!("match[]=up{}", encode("{".repeat(10_000).as_bytes())),
        ),
        (
            "match[] regex nested 10,000".into(),
            format!(
                "match[]={}",
                encode(format!("up{{a=~\"{}\"}}", nest("(", "a", ")", 10_000)).as_bytes())
            ),
        ),
        (
            "match[] invalid UTF-8".into(),
            "match[]=up{a=%22%FF%22}".into(),
        ),
        (
            "match[] 20,000 or".into(),
            format!(
                "match[]={}",
                encode(format!("{{{}}}", chain("a=\"1\"", " or ", 20_000)).as_bytes())
            ),
        ),
    ];
    for (name, params) in inputs {
        for path in ["/api/v1/series", "/api/v1/labels", "/api/v1/export"] {
            cases.push(Case {
                name: format!("{path} {name}"),
                method: "POST",
                path: path.to_owned(),
                content_type: "application/x-www-form-urlencoded",
                body: params.clone().into_bytes(),
                must_say: None,
            });
        }
        // GET only, as in Prometheus: the long ones end at the URL limit.
        cases.push(Case {
            name: format!("/api/v1/label/job/values {name}"),
            method: "GET",
            path: format!("/api/v1/label/job/values?{params}"),
            content_type: "text/plain",
            body: Vec::new(),
            must_say: None,
        });
    }
    cases
}

/// The log search language on search, histogram, fields and tail.
fn log_query_cases() -> Vec<Case> {
    let inputs: Vec<(String, Vec<u8>, Option<&'static str>)> = vec![
        (
            "( nested 10,000".into(),
            nest("(", "a", ")", 10_000).into_bytes(),
            DEPTH,
        ),
        // Past 64 KiB a URL is refused whole (414) before any handler.
        (
            "( nested 100,000".into(),
            nest("(", "a", ")", 100_000).into_bytes(),
            None,
        ),
        (
            "quoted )s hiding ( nested 5,000".into(),
            format!("\"{}\" {}", ")".repeat(5_000), nest("(", "a", ")", 5_000)).into_bytes(),
            DEPTH,
        ),
        (
            "6,000 ORs (as many as a URL holds)".into(),
            chain("a", " OR ", 6_000).into_bytes(),
            None,
        ),
        (
            "6,000 NOTs".into(),
            format!("{}a", "NOT ".repeat(6_000)).into_bytes(),
            None,
        ),
        (
            "3,000 ANDs of fields".into(),
            chain("route:x", " AND ", 3_000).into_bytes(),
            None,
        ),
        (
            "regex repetition".into(),
            b"message:/a{1000}{1000}/".to_vec(),
            None,
        ),
        (
            "regex nested 5,000".into(),
            format!("message:/{}/", nest("(", "a", ")", 5_000)).into_bytes(),
            None,
        ),
        (
            "range past f64".into(),
            b"n:[1e400 TO 1e500]".to_vec(),
            None,
        ),
        (
            "range of huge integers".into(),
            format!("n:>{}", "9".repeat(400)).into_bytes(),
            None,
        ),
        ("unterminated quote".into(), b"\"abc".to_vec(), None),
        ("unterminated range".into(), b"n:[1 TO".to_vec(), None),
        ("wildcards".into(), "*a".repeat(10_000).into_bytes(), None),
        // Found by the log_query fuzz target: tantivy's parser takes time
        // quadratic in one unquoted term's length (8 s for 40 KB).
        // Found by the log_query fuzz target: tantivy panicked on it.
        (
            "range bound not a number".into(),
            b"duration_ms:[1 TO 5-]".to_vec(),
            Some("is not a number"),
        ),
        (
            "40 KB unquoted term".into(),
            format!("{}/dmessage:er", vec!["o/a"; 10_000].join(".")).into_bytes(),
            Some("outside quotes"),
        ),
        ("fuzzy".into(), b"a~100000".to_vec(), None),
        ("boost".into(), b"a^1e400".to_vec(), None),
        ("invalid UTF-8".into(), b"\xff\xfe(".to_vec(), None),
        // Found by the log_query fuzz target: tantivy asserted on the NUL.
        (
            "NUL in a field name".into(),
            b"\0uuid:R *".to_vec(),
            Some("control character"),
        ),
        (
            "NUL in a JSON path".into(),
            b"route\0.x:y".to_vec(),
            Some("control character"),
        ),
        (
            "URL over 64 KiB".into(),
            "a ".repeat(150_000).into_bytes(),
            None,
        ),
    ];
    let mut cases = Vec::new();
    for (name, q, must) in inputs {
        for path in [
            "/api/v1/logs/search",
            "/api/v1/logs/histogram",
            "/api/v1/logs/fields",
            "/api/v1/logs/tail",
        ] {
            cases.push(Case {
                name: format!("{path} {name}"),
                method: "GET",
                path: format!("{path}?q={}&start=0", encode(&q)),
                content_type: "text/plain",
                body: Vec::new(),
                must_say: must,
            });
        }
    }
    cases
}

/// LogQL on every Loki path that takes it: nesting in each place the
/// grammar recurses (brackets, aggregations, binary chains, label filters,
/// templates), long pipelines, hostile regexes, and bad parameters.
fn logql_cases() -> Vec<Case> {
    let sel = r#"{service_name="canary"}"#;
    let mut inputs: Vec<(String, String, Option<&'static str>)> = Vec::new();
    // Past 64 KiB a URL is refused whole (414) before any handler, so
    // the deepest inputs name no setting.
    for (n, must) in [(10_000, DEPTH), (50_000, None)] {
        inputs.push((
            format!("( nested {n}"),
            nest("(", "vector(1)", ")", n),
            must,
        ));
        inputs.push((
            format!("sum( nested {n}"),
            nest("sum(", &format!("count_over_time({sel}[1m])"), ")", n),
            must,
        ));
        inputs.push((
            format!("label filter ( nested {n}"),
            format!("{sel} | logfmt | {}", nest("(", "a=\"b\"", ")", n)),
            must,
        ));
    }
    inputs.push(("+ chain 5,000".into(), chain("vector(1)", "+", 5_000), None));
    inputs.push(("^ chain 10,000".into(), chain("2", "^", 10_000), None));
    inputs.push((
        "unary - chain 10,000".into(),
        format!("{}1", "-".repeat(10_000)),
        None,
    ));
    inputs.push((
        "label filter or-chain 5,000".into(),
        format!("{sel} | logfmt | {}", chain("a=\"b\"", " or ", 5_000)),
        None,
    ));
    inputs.push((
        "5,000 pipeline stages".into(),
        format!("{sel}{}", " |= \"a\"".repeat(5_000)),
        None,
    ));
    inputs.push((
        "5,000 line_format if-nesting".into(),
        format!(
            "{sel} | line_format \"{}x{}\"",
            "{{if .a}}".repeat(5_000),
            "{{end}}".repeat(5_000)
        ),
        None,
    ));
    inputs.push((
        "regex repetition".into(),
        format!("{sel} |~ \"a{{1000}}{{1000}}\""),
        None,
    ));
    inputs.push((
        "regex nested 5,000".into(),
        format!("{sel} |~ \"{}\"", nest("(", "a", ")", 5_000)),
        None,
    ));
    inputs.push((
        "number past f64".into(),
        format!("{sel} | logfmt | n > 1e400"),
        None,
    ));
    inputs.push((
        "range past i64".into(),
        format!("count_over_time({sel}[{}y])", "9".repeat(30)),
        None,
    ));
    inputs.push(("unterminated string".into(), r#"{a="b"#.into(), None));
    inputs.push(("empty selector".into(), "{}".into(), None));
    inputs.push((
        "unclosed template".into(),
        format!("{sel} | line_format \"{{{{.a\""),
        None,
    ));
    inputs.push((
        "URL over 64 KiB".into(),
        format!("{sel} |= \"{}\"", "a".repeat(150_000)),
        None,
    ));
    let mut cases = Vec::new();
    for (name, q, must) in inputs {
        for (path, param) in [
            ("/loki/api/v1/query_range", "query"),
            ("/loki/api/v1/query", "query"),
            ("/loki/api/v1/labels", "query"),
            ("/loki/api/v1/series", "match[]"),
            ("/loki/api/v1/index/stats", "query"),
            ("/loki/api/v1/detected_fields", "query"),
            ("/loki/api/v1/tail", "query"),
        ] {
            cases.push(Case {
                name: format!("{path} {name}"),
                method: "GET",
                path: format!("{path}?{param}={}&start=0", encode(q.as_bytes())),
                content_type: "text/plain",
                body: Vec::new(),
                must_say: must,
            });
        }
    }
    let invalid = encode(b"{a=\"\xff\xfe\"}");
    let good = encode(sel.as_bytes());
    for (name, path) in [
        (
            "invalid UTF-8",
            format!("/loki/api/v1/query_range?query={invalid}"),
        ),
        (
            "step of a nanosecond over a year",
            format!(
                "/loki/api/v1/query_range?query={}&start=0&end=31536000&step=0.000000001",
                encode(format!("count_over_time({sel}[1m])").as_bytes())
            ),
        ),
        (
            "negative step",
            format!("/loki/api/v1/query_range?query={good}&step=-5"),
        ),
        (
            "start past any calendar",
            format!("/loki/api/v1/query_range?query={good}&start=99999999999999999999999"),
        ),
        (
            "limit past usize",
            format!("/loki/api/v1/query_range?query={good}&limit=99999999999999999999999"),
        ),
        (
            "direction sideways",
            format!("/loki/api/v1/query_range?query={good}&direction=sideways"),
        ),
        (
            "volume step of a nanosecond",
            format!(
                "/loki/api/v1/index/volume_range?query={good}&start=0&end=31536000&step=0.000000001"
            ),
        ),
        (
            "pattern step of a nanosecond",
            format!("/loki/api/v1/patterns?query={good}&start=0&end=31536000&step=0.000000001"),
        ),
    ] {
        cases.push(Case {
            name: name.into(),
            method: "GET",
            path,
            content_type: "text/plain",
            body: Vec::new(),
            must_say: None,
        });
    }
    cases
}

/// TraceQL on every Tempo path that takes it: nesting in each place the
/// grammar recurses (brackets in a filter, spanset brackets, unary
/// operators, arithmetic), long chains, pipelines, hostile regexes, and
/// bad parameters.
fn traceql_cases() -> Vec<Case> {
    let mut inputs: Vec<(String, String, Option<&'static str>)> = Vec::new();
    // Past 64 KiB a URL is refused whole (414) before any handler, so
    // the deepest inputs name no setting.
    for (n, must) in [(10_000, DEPTH), (50_000, None)] {
        inputs.push((
            format!("( in a filter nested {n}"),
            format!("{{ {} }}", nest("(", ".a = 1", ")", n)),
            must,
        ));
        inputs.push((
            format!("spanset ( nested {n}"),
            nest("(", "{ }", ")", n),
            must,
        ));
        inputs.push((
            format!("! nested {n}"),
            format!("{{ {}true }}", "!".repeat(n)),
            must,
        ));
        inputs.push((
            format!("arithmetic ( nested {n}"),
            format!("{{ {} > 1 }}", nest("(", ".n + 1", ")", n)),
            must,
        ));
    }
    // Chains and pipelines as long as fit in a URL (64 KiB encoded).
    inputs.push((
        "&& chain 2,000".into(),
        format!("{{{}}}", chain(".a=1", "&&", 2_000)),
        None,
    ));
    inputs.push((
        "spanset || chain 2,000".into(),
        chain("{.a=1}", "||", 2_000),
        None,
    ));
    inputs.push((
        "^ chain 10,000".into(),
        format!("{{ {} > 1 }}", chain("2", "^", 10_000)),
        None,
    ));
    inputs.push((
        "2,000 pipeline stages".into(),
        format!("{{}}{}", "|count()>0".repeat(2_000)),
        None,
    ));
    inputs.push((
        "regex repetition".into(),
        r#"{ name =~ "a{1000}{1000}" }"#.into(),
        None,
    ));
    inputs.push((
        "regex nested 5,000".into(),
        format!("{{ name =~ \"{}\" }}", nest("(", "a", ")", 5_000)),
        None,
    ));
    inputs.push(("number past f64".into(), "{ .n > 1e400 }".into(), None));
    inputs.push((
        "duration past i64".into(),
        format!("{{ duration > {}h }}", "9".repeat(30)),
        None,
    ));
    inputs.push(("unterminated string".into(), r#"{ .a = "b }"#.into(), None));
    inputs.push(("unclosed filter".into(), "{ .a = 1".into(), None));
    inputs.push(("type clash".into(), r#"{ duration = "x" }"#.into(), None));
    inputs.push((
        "URL over 64 KiB".into(),
        format!("{{ .a = \"{}\" }}", "a".repeat(150_000)),
        None,
    ));
    let mut cases = Vec::new();
    for (name, q, must) in inputs {
        for (path, param) in [
            ("/api/search", "q"),
            ("/api/v2/search/tags", "q"),
            ("/api/v2/search/tag/resource.service.name/values", "q"),
        ] {
            cases.push(Case {
                name: format!("{path} {name}"),
                method: "GET",
                path: format!("{path}?{param}={}&start=0", encode(q.as_bytes())),
                content_type: "text/plain",
                body: Vec::new(),
                must_say: must,
            });
        }
    }
    let good = encode(b"{ }");
    for (name, path) in [
        (
            "invalid UTF-8",
            format!("/api/search?q={}", encode(b"{ .a = \"\xff\xfe\" }")),
        ),
        (
            "start past any calendar",
            format!("/api/search?q={good}&start=99999999999999999999999"),
        ),
        (
            "end before start",
            format!("/api/search?q={good}&start=2000&end=1000"),
        ),
        (
            "limit past usize",
            format!("/api/search?q={good}&limit=99999999999999999999999"),
        ),
        ("spss negative", format!("/api/search?q={good}&spss=-1")),
        (
            "tags without a value",
            "/api/search?tags=novalue".to_owned(),
        ),
        (
            "tags with an unclosed quote",
            "/api/search?tags=a%3D%22b".to_owned(),
        ),
        (
            "minDuration not a duration",
            format!("/api/search?q={good}&minDuration=fast"),
        ),
        (
            "maxDuration past i64",
            format!("/api/search?maxDuration={}h", "9".repeat(30)),
        ),
        ("trace id not hex", "/api/traces/zz".to_owned()),
        (
            "trace id too long",
            format!("/api/v2/traces/{}", "a".repeat(100)),
        ),
        (
            "trace by id start past any calendar",
            format!(
                "/api/v2/traces/{}?start=99999999999999999999999",
                "ab".repeat(16)
            ),
        ),
        (
            "tag values of a tag of 100 KiB",
            format!("/api/v2/search/tag/{}/values", "a".repeat(60_000)),
        ),
    ] {
        cases.push(Case {
            name: name.into(),
            method: "GET",
            path,
            content_type: "text/plain",
            body: Vec::new(),
            must_say: None,
        });
    }
    cases
}

/// Jaeger's `tags` (a JSON object) and its other parameters.
fn jaeger_cases() -> Vec<Case> {
    let inputs: Vec<(&str, String)> = vec![
        (
            "tags nested arrays 100,000",
            format!(
                "tags={}",
                encode(format!("{{\"a\":{}}}", nest("[", "1", "]", 100_000)).as_bytes())
            ),
        ),
        (
            "tags nested arrays 5,000",
            format!(
                "tags={}",
                encode(format!("{{\"a\":{}}}", nest("[", "1", "]", 5_000)).as_bytes())
            ),
        ),
        (
            "tags nested objects 2,000",
            format!(
                "tags={}",
                encode(nest("{\"a\":", "1", "}", 2_000).as_bytes())
            ),
        ),
        (
            "tags nested objects 10,000",
            format!(
                "tags={}",
                encode(nest("{\"a\":", "1", "}", 10_000).as_bytes())
            ),
        ),
        (
            "tags 10,000 keys",
            format!(
                "tags={}",
                encode(
                    format!(
                        "{{{}}}",
                        (0..10_000)
                            .map(|i| format!("\"k{i}\":\"v\""))
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                    .as_bytes()
                )
            ),
        ),
        (
            "tags invalid UTF-8",
            "tags=%7B%22a%22%3A%22%FF%22%7D".into(),
        ),
        ("tags not JSON", "tags=%7B%7B%7B".into()),
        (
            "tags NUL in a key",
            "tags=%7B%22a%5Cu0000b%22%3A%22x%22%7D".into(),
        ),
        (
            "tags NUL in a value",
            "tags=%7B%22a%22%3A%22x%5Cu0000%22%7D".into(),
        ),
        ("tag NUL in a key", "tag=a%00b:x".into()),
        (
            "tags huge number",
            format!(
                "tags={}",
                encode(format!("{{\"a\":{}}}", "9".repeat(1000)).as_bytes())
            ),
        ),
        ("minDuration 1e400s", "minDuration=1e400s".into()),
        (
            "maxDuration 1000000000000h",
            "maxDuration=1000000000000h".into(),
        ),
        ("limit -1", "limit=-1".into()),
        ("limit 1e30", "limit=1000000000000000000000000000000".into()),
        ("lookback garbage", "lookback=%FF%FF".into()),
        ("lookback 1e12 hours", "lookback=1000000000000h".into()),
        ("end before start", "start=10&end=5".into()),
    ];
    inputs
        .into_iter()
        .map(|(name, params)| Case {
            name: format!("/jaeger/api/traces {name}"),
            method: "GET",
            path: format!("/jaeger/api/traces?service=canary&{params}"),
            content_type: "text/plain",
            body: Vec::new(),
            must_say: None,
        })
        .collect()
}

/// NDJSON and Elasticsearch bulk bodies.
fn log_body_cases() -> Vec<Case> {
    let deep_object = nest("{\"a\":", "1", "}", 100_000);
    let deep_array = format!(
        "{{\"message\":\"x\",\"a\":{}}}",
        nest("[", "1", "]", 100_000)
    );
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("object nested 100,000", format!("{deep_object}\n{{\"message\":\"kept\"}}\n").into_bytes()),
        ("array nested 100,000", format!("{deep_array}\n").into_bytes()),
        ("object nested 127", format!("{}\n", nest("{\"a\":", "1", "}", 127)).into_bytes()),
        ("invalid UTF-8 line", b"{\"message\":\"\xff\xfe\"}\n{\"message\":\"kept\"}\n".to_vec()),
        ("number past f64", b"{\"message\":\"x\",\"n\":1e400}\n".to_vec()),
        ("huge integer", format!("{{\"message\":\"x\",\"n\":{}}}\n", "9".repeat(10_000)).into_bytes()),
        ("20,000 fields", format!("{{\"message\":\"x\",{}}}\n", (0..20_000).map(|i| format!("\"f{i}\":{i}")).collect::<Vec<_>>().join(",")).into_bytes()),
        ("timestamp outside any calendar", b"{\"message\":\"x\",\"@timestamp\":\"99999-99-99T99:99:99Z\"}\n{\"message\":\"x\",\"@timestamp\":1e300}\n".to_vec()),
        ("not JSON", b"{{{{{{\n".to_vec()),
    ];
    let mut cases = Vec::new();
    for (name, body) in bodies {
        cases.push(Case {
            name: format!("/api/v1/logs {name}"),
            method: "POST",
            path: "/api/v1/logs".into(),
            content_type: "application/x-ndjson",
            body: body.clone(),
            must_say: None,
        });
        let mut bulk = Vec::new();
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            bulk.extend_from_slice(b"{\"index\":{}}\n");
            bulk.extend_from_slice(line);
            bulk.push(b'\n');
        }
        cases.push(Case {
            name: format!("/_bulk {name}"),
            method: "POST",
            path: "/_bulk".into(),
            content_type: "application/x-ndjson",
            body: bulk,
            must_say: None,
        });
    }
    cases
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A protobuf field of wire type 2.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    varint(bytes.len(), &mut out);
    out.extend_from_slice(bytes);
    out
}

/// An OTLP `AnyValue` of kvlists nested `depth` deep.
fn deep_any_value(depth: usize) -> Vec<u8> {
    let mut value = field(1, b"leaf"); // string_value
    for _ in 0..depth {
        let key_value = [field(1, b"k"), field(2, &value)].concat();
        let list = field(1, &key_value);
        value = field(6, &list); // kvlist_value
    }
    value
}

/// OTLP bodies, protobuf and JSON, for logs, traces and metrics.
fn otlp_cases() -> Vec<Case> {
    let deep_json_value = nest(
        "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":",
        "{\"stringValue\":\"x\"}",
        "}]}}",
        30_000,
    );
    let json_logs = format!(
        "{{\"resourceLogs\":[{{\"scopeLogs\":[{{\"logRecords\":[{{\"body\":{deep_json_value}}}]}}]}}]}}"
    );
    let json_traces = format!(
        "{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"x\",\"attributes\":[{{\"key\":\"a\",\"value\":{deep_json_value}}}]}}]}}]}}]}}"
    );
    let nested_arrays = nest("[", "1", "]", 100_000);
    // ExportLogsServiceRequest { resource_logs { scope_logs { log_records { body } } } }
    let record = field(5, &deep_any_value(10_000));
    let proto_logs = field(1, &field(2, &field(2, &record)));
    let mut cases = Vec::new();
    let mut add = |name: &str, path: &str, content_type: &'static str, body: Vec<u8>| {
        cases.push(Case {
            name: format!("{path} {name}"),
            method: "POST",
            path: path.to_owned(),
            content_type,
            body,
            must_say: None,
        });
    };
    add(
        "JSON body kvlist nested 30,000",
        "/v1/logs",
        "application/json",
        json_logs.into_bytes(),
    );
    add(
        "JSON attribute kvlist nested 30,000",
        "/v1/traces",
        "application/json",
        json_traces.into_bytes(),
    );
    for path in ["/v1/logs", "/v1/traces", "/v1/metrics"] {
        add(
            "JSON arrays nested 100,000",
            path,
            "application/json",
            nested_arrays.clone().into_bytes(),
        );
        add(
            "invalid UTF-8",
            path,
            "application/json",
            b"{\"resourceLogs\":\"\xff\"}".to_vec(),
        );
        add(
            "protobuf garbage",
            path,
            "application/x-protobuf",
            vec![0xff; 1000],
        );
    }
    add(
        "protobuf kvlist nested 10,000",
        "/v1/logs",
        "application/x-protobuf",
        proto_logs,
    );
    cases
}

/// Remote write bodies, 1.0 and 2.0: refused whole (4xx) or kept in part
/// with the rest named, never a 5xx.
fn remote_write_cases(t: i64) -> Vec<Case> {
    use sextant_ingest::remote_write::{encode, proto as v1, v2};
    const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
    let snappy = |raw: &[u8]| snap::raw::Encoder::new().compress_vec(raw).unwrap();
    let v2_request = |symbols: Vec<String>, timeseries: Vec<v2::proto::TimeSeries>| {
        v2::encode(&v2::proto::Request {
            symbols,
            timeseries,
        })
    };
    let sample = |offset: i64| v2::proto::Sample {
        value: 1.0,
        timestamp: t - offset,
        start_timestamp: 0,
    };
    let named: Vec<String> = ["", "__name__", "hostile_total"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    // 100,000 symbols, the one series naming the last.
    let mut many_symbols = named.clone();
    many_symbols.extend((0..100_000).map(|i| format!("s{i}")));
    let last = (many_symbols.len() - 1) as u32;
    // 50,000 series with an odd number of label refs each.
    let odd_series: Vec<v2::proto::TimeSeries> = (0..50_000)
        .map(|i| v2::proto::TimeSeries {
            labels_refs: vec![1],
            samples: vec![sample(i)],
            ..Default::default()
        })
        .collect();
    // One exemplar with 200,000 label refs, and 10,000 exemplars too long.
    let exemplar = |labels_refs: Vec<u32>| v2::proto::Exemplar {
        labels_refs,
        value: 1.0,
        timestamp: 1,
    };
    let mut long_symbols = named.clone();
    long_symbols.push("trace_id".into());
    long_symbols.push("x".repeat(10_000));
    let v1_long_exemplars = v1::TimeSeries {
        labels: vec![v1::Label {
            name: "__name__".into(),
            value: "hostile_total".into(),
        }],
        samples: vec![v1::Sample {
            value: 1.0,
            timestamp: t,
        }],
        exemplars: (0..10_000)
            .map(|_| v1::Exemplar {
                labels: vec![v1::Label {
                    name: "trace_id".into(),
                    value: "y".repeat(500),
                }],
                value: 1.0,
                timestamp: 1,
            })
            .collect(),
        histograms: vec![],
    };
    // Native histograms built to hurt: spans of 4 billion buckets, a
    // million buckets, indexes 2^31 apart, counts that overflow, a schema
    // out of range, custom bounds going down.
    let hostile_histogram = |h: v1::Histogram| v1::TimeSeries {
        labels: vec![v1::Label {
            name: "__name__".into(),
            value: "hostile_seconds".into(),
        }],
        histograms: vec![v1::Histogram { timestamp: t, ..h }],
        ..Default::default()
    };
    let int_count = |n: u64| Some(v1::histogram::Count::CountInt(n));
    let span = |offset: i32, length: u32| v1::BucketSpan { offset, length };
    let histogram_bodies: Vec<(&str, v1::Histogram)> = vec![
        (
            "1.0 a span of 4 billion buckets",
            v1::Histogram {
                count: int_count(1),
                positive_spans: vec![span(0, u32::MAX)],
                positive_deltas: vec![1],
                ..Default::default()
            },
        ),
        (
            "1.0 a histogram of a million buckets",
            v1::Histogram {
                count: int_count(1_000_000),
                positive_spans: vec![span(0, 1_000_000)],
                positive_deltas: std::iter::once(1)
                    .chain(std::iter::repeat_n(0, 999_999))
                    .collect(),
                ..Default::default()
            },
        ),
        (
            "1.0 buckets 2^31 apart",
            v1::Histogram {
                count: int_count(2),
                positive_spans: vec![span(i32::MIN, 1), span(i32::MAX, 1)],
                positive_deltas: vec![1, 0],
                ..Default::default()
            },
        ),
        (
            "1.0 counts that overflow",
            v1::Histogram {
                count: int_count(u64::MAX),
                positive_spans: vec![span(0, 3)],
                positive_deltas: vec![i64::MAX, i64::MAX, i64::MAX],
                ..Default::default()
            },
        ),
        (
            "1.0 schema 99",
            v1::Histogram {
                count: int_count(1),
                schema: 99,
                positive_spans: vec![span(0, 1)],
                positive_deltas: vec![1],
                ..Default::default()
            },
        ),
        (
            "1.0 custom bounds going down",
            v1::Histogram {
                count: int_count(3),
                schema: -53,
                custom_values: vec![5.0, 1.0, f64::NAN],
                positive_spans: vec![span(0, 3)],
                positive_deltas: vec![1, 0, 0],
                ..Default::default()
            },
        ),
    ];
    // A snappy header that promises 4 GiB.
    let mut promise = Vec::new();
    varint(u32::MAX as usize, &mut promise);
    promise.extend_from_slice(&[0; 16]);
    let bodies: Vec<(&str, &'static str, Vec<u8>, Option<&'static str>)> = vec![
        ("2.0 not snappy", V2, vec![0xff; 1000], None),
        ("2.0 snappy of garbage", V2, snappy(&[0xff; 1000]), None),
        (
            "2.0 promises 4 GiB",
            V2,
            promise.clone(),
            Some("limits.max_decompressed_body"),
        ),
        (
            "2.0 symbols[0] not empty",
            V2,
            v2_request(vec!["x".into()], vec![]),
            Some("symbols[0] must be empty"),
        ),
        (
            "2.0 label refs at u32::MAX",
            V2,
            v2_request(
                named.clone(),
                vec![v2::proto::TimeSeries {
                    labels_refs: vec![u32::MAX, u32::MAX],
                    samples: vec![sample(1)],
                    ..Default::default()
                }],
            ),
            Some("timeseries[0].labels_refs[0]"),
        ),
        (
            "2.0 100,000 symbols",
            V2,
            v2_request(
                many_symbols,
                vec![v2::proto::TimeSeries {
                    labels_refs: vec![1, 2, last, last],
                    samples: vec![sample(1)],
                    ..Default::default()
                }],
            ),
            None,
        ),
        (
            "2.0 50,000 series with odd label refs",
            V2,
            v2_request(named.clone(), odd_series),
            Some("and 49995 more"),
        ),
        (
            "2.0 an exemplar with 199,999 label refs",
            V2,
            v2_request(
                named,
                vec![v2::proto::TimeSeries {
                    labels_refs: vec![1, 2],
                    samples: vec![sample(1)],
                    exemplars: vec![exemplar(vec![1; 199_999])],
                    ..Default::default()
                }],
            ),
            Some("timeseries[0].exemplars[0].labels_refs: odd length (199999)"),
        ),
        (
            "2.0 10,000 exemplars of 10,000 characters",
            V2,
            v2_request(
                long_symbols,
                vec![v2::proto::TimeSeries {
                    labels_refs: vec![1, 2],
                    samples: vec![sample(1)],
                    exemplars: vec![exemplar(vec![3, 4]); 10_000],
                    ..Default::default()
                }],
            ),
            Some("timeseries[0].exemplars[0]"),
        ),
        (
            "2.0 a 1.0 body",
            V2,
            encode(&v1::WriteRequest {
                timeseries: vec![v1_long_exemplars.clone()],
                metadata: vec![],
            }),
            None,
        ),
        (
            "1.0 10,000 exemplars too long",
            "application/x-protobuf",
            encode(&v1::WriteRequest {
                timeseries: vec![v1_long_exemplars],
                metadata: vec![],
            }),
            Some("exemplar labels hold"),
        ),
        (
            "1.0 every hostile histogram at once",
            "application/x-protobuf",
            encode(&v1::WriteRequest {
                timeseries: histogram_bodies
                    .iter()
                    .map(|(_, h)| hostile_histogram(h.clone()))
                    .collect(),
                metadata: vec![],
            }),
            Some("histograms[0]"),
        ),
        (
            "unknown proto",
            "application/x-protobuf;proto=io.prometheus.write.v9.Request",
            snappy(b""),
            Some("io.prometheus.write.v9.Request"),
        ),
        (
            "not protobuf at all",
            "text/plain",
            b"up 1".to_vec(),
            Some("text/plain"),
        ),
    ];
    let mut bodies = bodies;
    for (name, h) in histogram_bodies {
        // Valid but over the bucket limit: refused by the store, naming it.
        // Two buckets 2^31 apart are a valid histogram: stored (204).
        let must_say = if name.contains("million") {
            Some("storage.metrics.max_native_histogram_buckets")
        } else if name.contains("apart") {
            None
        } else {
            Some("histograms[0]")
        };
        bodies.push((
            name,
            "application/x-protobuf",
            encode(&v1::WriteRequest {
                timeseries: vec![hostile_histogram(h)],
                metadata: vec![],
            }),
            must_say,
        ));
    }
    bodies
        .into_iter()
        .map(|(name, content_type, body, must_say)| Case {
            name: name.to_owned(),
            method: "POST",
            path: "/api/v1/write".to_owned(),
            content_type,
            body,
            must_say,
        })
        .collect()
}

/// Rule groups through the ruler API: PromQL, YAML and templates.
fn ruler_cases() -> Vec<Case> {
    let group = |expr: &str, annotation: &str| {
        format!(
            "name: hostile\nrules:\n  - alert: Hostile\n    expr: {}\n    annotations:\n      summary: {}\n",
            serde_json::to_string(expr).unwrap(),
            serde_json::to_string(annotation).unwrap()
        )
    };
    let laughs = {
        let mut yaml = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
        let mut previous = "a";
        for name in names {
            yaml += &format!(
                "{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"
            );
            previous = name;
        }
        yaml + "name: laughs\nrules: []\n"
    };
    let inputs: Vec<(&str, String, Option<&'static str>)> = vec![
        (
            "expr sum( nested 5,000",
            group(&nest("sum(", "up", ")", 5_000), "x"),
            DEPTH,
        ),
        (
            "expr 20,000-term chain",
            group(&chain("1", "+", 20_000), "x"),
            DEPTH,
        ),
        (
            "expr 100,000 nested (",
            group(&nest("(", "1", ")", 100_000), "x"),
            DEPTH,
        ),
        (
            "template pipeline of 100,000",
            group(
                "up",
                &format!("{{{{ $value{} }}}}", " | humanize".repeat(100_000)),
            ),
            DEPTH,
        ),
        ("template unclosed", group("up", "{{ $value"), None),
        (
            "YAML sequences nested 100,000",
            nest("[", "1", "]", 100_000),
            DEPTH,
        ),
        (
            "YAML mappings nested 20,000",
            nest("{a: ", "1", "}", 20_000),
            DEPTH,
        ),
        ("YAML billion laughs", laughs, None),
        (
            "rules nested sequences 9,000 (under the limit)",
            format!("name: x\nrules: {}\n", nest("[", "1", "]", 9_000)),
            None,
        ),
        (
            "rules nested sequences 100,000",
            format!("name: x\nrules: {}\n", nest("[", "1", "]", 100_000)),
            DEPTH,
        ),
        (
            "labels nested mappings 50,000",
            format!(
                "name: x\nlabels: {}\nrules: []\n",
                nest("{a: ", "1", "}", 50_000)
            ),
            DEPTH,
        ),
        (
            "YAML invalid UTF-8",
            "name: \u{fffd}\n".replace('\u{fffd}', "\u{7f}") + "rules: [\u{1}]\n",
            None,
        ),
    ];
    let mut cases: Vec<Case> = inputs
        .into_iter()
        .map(|(name, body, must)| Case {
            name: format!("ruler {name}"),
            method: "POST",
            path: "/config/v1/rules/hostile".into(),
            content_type: "application/yaml",
            body: body.into_bytes(),
            must_say: must,
        })
        .collect();
    cases.push(Case {
        name: "ruler raw invalid UTF-8".into(),
        method: "POST",
        path: "/config/v1/rules/hostile".into(),
        content_type: "application/yaml",
        body: b"name: \xff\xfe\nrules: []\n".to_vec(),
        must_say: None,
    });
    cases
}

/// Alertmanager's API v2: alerts as Prometheus posts them, silences as
/// amtool and Grafana post them, and `filter=` matchers.
fn alertmanager_cases() -> Vec<Case> {
    let post = |name: &str, path: &str, body: Vec<u8>, must_say: Option<&'static str>| Case {
        name: name.to_owned(),
        method: "POST",
        path: path.to_owned(),
        content_type: "application/json",
        body,
        must_say,
    };
    let alerts = |name: &str, body: String, must: Option<&'static str>| {
        post(name, "/api/v2/alerts", body.into_bytes(), must)
    };
    let silence = |name: &str,
                   matchers: String,
                   times: (&str, &str),
                   must: Option<&'static str>| {
        let body = format!(
            r#"{{"matchers":{matchers},"startsAt":"{}","endsAt":"{}","createdBy":"hostile","comment":"x"}}"#,
            times.0, times.1
        );
        post(name, "/api/v2/silences", body.into_bytes(), must)
    };
    let one = |name: &str, value: &str, is_regex: bool| {
        format!(
            r#"[{{"name":{},"value":{},"isRegex":{is_regex}}}]"#,
            serde_json::to_string(name).unwrap(),
            serde_json::to_string(value).unwrap()
        )
    };
    let until = ("2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z");
    let many_alerts: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"labels":{{"alertname":"Hostile","n":"{i}"}},"endsAt":"2000-01-01T00:00:00Z"}}"#))
        .collect();
    let many_labels: Vec<String> = (0..50_000).map(|i| format!(r#""l{i}":"v""#)).collect();
    let alternation: Vec<String> = (0..100_000).map(|i| format!("v{i}")).collect();
    let many_matchers: Vec<String> = (0..3_000).map(|i| format!("l{i}=\"v\"")).collect();
    let filter = |name: &str, value: &[u8], must: Option<&'static str>| Case {
        name: format!("filter {name}"),
        method: "GET",
        path: format!("/api/v2/alerts?filter={}", encode(value)),
        content_type: "text/plain",
        body: Vec::new(),
        must_say: must,
    };
    vec![
        alerts(
            "10,000 alerts, resolved",
            format!("[{}]", many_alerts.join(",")),
            None,
        ),
        alerts(
            "arrays nested 100,000",
            nest("[", "1", "]", 100_000),
            Some("invalid alerts"),
        ),
        alerts(
            "labels nested 100,000",
            format!(r#"[{{"labels":{}}}]"#, nest(r#"{"a":"#, "1", "}", 100_000)),
            Some("invalid alerts"),
        ),
        alerts("a number as a label value", r#"[{"labels":{"a":1}}]"#.into(), Some("invalid alerts")),
        alerts("null", "null".into(), Some("invalid alerts")),
        alerts("an object", r#"{"labels":{"a":"b"}}"#.into(), Some("JSON array")),
        alerts("no labels", r#"[{"labels":{}}]"#.into(), Some("at least one label pair")),
        alerts("bad label name", r#"[{"labels":{"1\u0000":"x"}}]"#.into(), Some("invalid name")),
        alerts(
            "50,000 labels",
            format!(r#"[{{"labels":{{{}}},"endsAt":"2000-01-01T00:00:00Z"}}]"#, many_labels.join(",")),
            None,
        ),
        alerts(
            "a 1 MB label value",
            format!(r#"[{{"labels":{{"a":"{}"}},"endsAt":"2000-01-01T00:00:00Z"}}]"#, "x".repeat(1 << 20)),
            None,
        ),
        alerts(
            "startsAt month 13",
            r#"[{"labels":{"a":"b"},"startsAt":"2024-13-01T00:00:00Z"}]"#.into(),
            Some("startsAt"),
        ),
        alerts(
            "endsAt with an offset of 10^12 hours",
            r#"[{"labels":{"a":"b"},"endsAt":"2024-01-01T00:00:00+1000000000000:00"}]"#.into(),
            Some("endsAt"),
        ),
        alerts(
            "ends before it starts",
            r#"[{"labels":{"a":"b"},"startsAt":"9999-12-31T23:59:59Z","endsAt":"0001-01-02T00:00:00Z"}]"#.into(),
            Some("start time must be before end time"),
        ),
        Case {
            name: "alerts invalid UTF-8".into(),
            method: "POST",
            path: "/api/v2/alerts".into(),
            content_type: "application/json",
            body: b"[{\"labels\":{\"a\":\"\xff\xfe\"}}]".to_vec(),
            must_say: Some("invalid alerts"),
        },
        silence("no matchers", "[]".into(), until, Some("at least one matcher")),
        silence(
            "10,000 matchers",
            format!(
                "[{}]",
                (0..10_000)
                    .map(|i| format!(r#"{{"name":"l{i}","value":"v","isRegex":false}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            ("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"),
            Some("end time can't be in the past"),
        ),
        silence(
            "regex alternation of 100,000",
            one("a", &alternation.join("|"), true),
            ("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"),
            None,
        ),
        silence(
            "regex repetition {1000000}",
            one("a", "x{1000000}", true),
            until,
            Some("invalid regex"),
        ),
        silence(
            "regex nested 100,000",
            one("a", &nest("(", "x", ")", 100_000), true),
            until,
            Some("invalid regex"),
        ),
        silence("bad label name", one("a b", "x", false), until, Some("invalid label name")),
        silence(
            "year 0000 to 9999",
            one("a", "x", false),
            ("0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
            None,
        ),
        silence(
            "times that are not times",
            one("a", "x", false),
            ("2024-01-01T25:00:00Z", "tomorrow"),
            Some("RFC 3339"),
        ),
        post(
            "silence nested 100,000",
            "/api/v2/silences",
            nest("[", "1", "]", 100_000).into_bytes(),
            Some("invalid silence"),
        ),
        post(
            "silence update of an unknown 1 MB id",
            "/api/v2/silences",
            format!(
                r#"{{"id":"{}","matchers":{},"startsAt":"2020-01-01T00:00:00Z","endsAt":"2100-01-01T00:00:00Z","createdBy":"x","comment":"x"}}"#,
                "i".repeat(1 << 20),
                one("a", "x", false)
            )
            .into_bytes(),
            Some("not found"),
        ),
        filter("unterminated", b"alertname=\"x", Some("bad matcher format")),
        filter(
            "braces nested 10,000",
            nest("{", "a=b", "}", 10_000).as_bytes(),
            Some("bad matcher format"),
        ),
        filter(
            "regex nested 10,000",
            format!("a=~{}", nest("(", "x", ")", 10_000)).as_bytes(),
            Some("bad matcher format"),
        ),
        filter(
            "regex repetition",
            b"a=~\"(x{1000}){1000}\"",
            Some("bad matcher format"),
        ),
        filter(
            "alternation of 3,000",
            format!("a=~\"{}\"", alternation[..3_000].join("|")).as_bytes(),
            None,
        ),
        filter("3,000 matchers", many_matchers.join(",").as_bytes(), None),
        filter("invalid UTF-8", b"a=\"\xff\xfe\"", None),
        Case {
            name: "receiver regex repetition".into(),
            method: "GET",
            path: "/api/v2/alerts/groups?receiver=(a%7B1000%7D)%7B1000%7D".into(),
            content_type: "text/plain",
            body: Vec::new(),
            must_say: Some("receiver"),
        },
        Case {
            name: "active is not a boolean".into(),
            method: "GET",
            path: "/api/v2/alerts?active=%00".into(),
            content_type: "text/plain",
            body: Vec::new(),
            must_say: Some("active"),
        },
        Case {
            name: "silences filter nested 10,000".into(),
            method: "GET",
            path: format!("/api/v2/silences?filter={}", encode(nest("{", "a=b", "}", 10_000).as_bytes())),
            content_type: "text/plain",
            body: Vec::new(),
            must_say: Some("bad matcher format"),
        },
    ]
}

fn start() -> Sextant {
    let server = Sextant::start();
    let canary = server.post_path(
        "/api/v1/logs",
        "application/x-ndjson",
        b"{\"message\":\"canary line\",\"service\":\"canary\"}\n",
    );
    assert!(canary.status < 300, "{}", canary.body);
    server.get_until("/api/v1/logs/search?q=canary&start=0", |v: &Value| {
        v.to_string().contains("canary line")
    });
    // A span, so that trace searches for its service reach the tag query.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let span = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"canary"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /canary","kind":2,"startTimeUnixNano":"{}","endTimeUnixNano":"{now_ns}","attributes":[{{"key":"http.route","value":{{"stringValue":"/canary"}}}}]}}]}}]}}]}}"#,
        now_ns - 1_000_000
    );
    let otlp = format!("http://{}/v1/traces", server.addr("otlp_http", "tcp"));
    let sent = server.post(&otlp, "application/json", span.as_bytes());
    assert_eq!(sent.status, 200, "{}", sent.body);
    server.get_until(
        "/jaeger/api/traces?service=canary&lookback=1h",
        |v: &Value| v.to_string().contains("GET /canary"),
    );
    server
}

#[test]
fn promql_on_every_query_path() {
    let server = start();
    let base = server.base_url();
    run_table(&server, "promql", &promql_cases(), &base);
    run_table(&server, "times", &time_cases(), &base);
    run_table(&server, "match[]", &selector_cases(), &base);
}

#[test]
fn log_and_trace_languages_and_bodies() {
    let server = start();
    let base = server.base_url();
    run_table(&server, "log query", &log_query_cases(), &base);
    run_table(&server, "logql", &logql_cases(), &base);
    run_table(&server, "jaeger", &jaeger_cases(), &base);
    run_table(&server, "traceql", &traceql_cases(), &base);
    run_table(&server, "log bodies", &log_body_cases(), &base);
    let otlp = format!("http://{}", server.addr("otlp_http", "tcp"));
    run_table(&server, "otlp", &otlp_cases(), &otlp);
    // The valid lines of the hostile batches were kept.
    server.get_until("/api/v1/logs/search?q=kept&start=0", |v: &Value| {
        v.to_string().contains("\"kept\"")
    });
}

#[test]
fn remote_write_bodies() {
    let server = start();
    let base = server.base_url();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    run_table(&server, "remote write", &remote_write_cases(t), &base);
    // What the hostile batches held that was good was kept.
    let kept = server
        .get(&format!(
            "/api/v1/query?query=hostile_total&time={}",
            t / 1000 + 1
        ))
        .json();
    assert_eq!(kept["data"]["result"][0]["value"][1], "1", "{kept}");
}

#[test]
fn rule_groups_and_templates() {
    let server = start();
    let base = server.base_url();
    run_table(&server, "ruler", &ruler_cases(), &base);
    // Nothing hostile was stored.
    let rules = server.get("/api/v1/rules").json();
    assert!(!rules.to_string().contains("Hostile"), "{rules}");
    run_table(&server, "alertmanager", &alertmanager_cases(), &base);
    // The alerts were taken resolved, so none fires; the API still answers.
    let firing = server.get("/api/v2/alerts?filter=alertname%3DHostile");
    assert_eq!(firing.status, 200, "{}", firing.body);
    assert_eq!(firing.json(), serde_json::json!([]));
    // Without a routing tree an alert is kept and listed, with no receiver.
    let canary = server.post_path(
        "/api/v2/alerts",
        "application/json",
        br#"[{"labels":{"alertname":"Canary"}}]"#,
    );
    assert_eq!(canary.status, 200, "{}", canary.body);
    let listed = server
        .get("/api/v2/alerts?filter=alertname%3DCanary")
        .json();
    assert_eq!(listed[0]["receivers"], serde_json::json!([]), "{listed}");
}

/// `sextant check-config` refuses a rule file nested past the budget by
/// name, and takes it once the config's `query.max_depth` allows it: the
/// file is read on a thread with the stack that budget needs.
#[test]
fn check_config_applies_the_depth_budget_to_rule_files() {
    let dir = tempfile::tempdir().unwrap();
    let expr = nest("sum(", "up", ")", 5_000);
    std::fs::write(
        dir.path().join("deep.yml"),
        format!(
            "groups:\n  - name: deep\n    rules:\n      - record: deep\n        expr: {expr}\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(&config, "rule_files: [deep.yml]\n").unwrap();
    let refused = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("query.max_depth"), "{stderr}");
    std::fs::write(
        &config,
        "rule_files: [deep.yml]\nquery:\n  max_depth: 6000\n",
    )
    .unwrap();
    let taken = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(String::from_utf8_lossy(&taken.stdout).contains("1 groups, 1 rules"));
    // Flow collections nested 100,000 deep (the YAML parser's time is
    // quadratic in that): refused before the parser sees them.
    std::fs::write(
        dir.path().join("deep.yml"),
        format!("groups: {}x{}\n", "[".repeat(100_000), "]".repeat(100_000)),
    )
    .unwrap();
    let refused = sextant_tests::run_sextant(&["check-config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("deep.yml: 100000 '['"), "{stderr}");
}

/// Whether the server closed `stream` within a few seconds (EOF or reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn syslog_frames_and_datagrams() {
    let server = start();
    let tcp = server.addr("syslog", "tcp");
    let udp = server.addr("syslog", "udp");
    let errors = |transport| {
        server
            .metric(
                "sextant_listener_errors_total",
                &[("listener", "syslog"), ("transport", transport)],
            )
            .unwrap()
    };
    // A good message opens the connection each bad frame then breaks: what
    // came before the break is kept, only that connection is closed.
    let cases: [(&str, &[u8], &str); 6] = [
        ("bad PRI", b"<999>1 - - - - - - x\n", "bad PRI <999>"),
        (
            "truncated octet count",
            b"40 <13>1 - - - - - - cut short",
            "bytes short of the counted message's end",
        ),
        (
            "huge octet count",
            b"99999999999999999999 <13>x",
            "more than 10 digits",
        ),
        (
            "garbage",
            b"\x00\x01GET / HTTP/1.1\r\n\r\n",
            "starts with an octet count or <PRI>",
        ),
        ("invalid UTF-8", b"<13>bad \xff\xfe bytes\n", "is not UTF-8"),
        (
            "unterminated SD",
            b"<13>1 - - - - - [x@1 a=\"1\"\n",
            "is not closed with ]",
        ),
    ];
    let udp_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, (name, bad, reason)) in cases.iter().enumerate() {
        let before = errors("tcp");
        let mut stream = TcpStream::connect(tcp).unwrap();
        let kept = format!("<13>1 - - hostile - - - kept before {i}\n");
        stream.write_all(kept.as_bytes()).unwrap();
        stream.write_all(bad).unwrap();
        if name.starts_with("truncated") {
            // The count promises more than ever comes: the stream ends.
            stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert!(
            closed_by_server(&mut stream),
            "{name}: connection left open"
        );
        server.wait_for_metric(
            "sextant_listener_errors_total",
            &[("listener", "syslog"), ("transport", "tcp")],
            |v| v == before + 1.0,
        );
        // The warning is rate-limited (one a minute): the first one names
        // its reason; the parser's and framer's unit tests check the others.
        if i == 0 {
            assert!(
                server.logs().contains(reason),
                "{name}: no warning saying {reason:?}"
            );
        }
        server.get_until(
            &format!("/api/v1/logs/search?q=%22kept+before+{i}%22&start=0"),
            |v: &Value| v["total"] == 1,
        );
        // The same bytes as a datagram: dropped and counted (framing cases
        // are not syslog messages either).
        let before = errors("udp");
        udp_socket.send_to(bad, udp).unwrap();
        server.wait_for_metric(
            "sextant_listener_errors_total",
            &[("listener", "syslog"), ("transport", "udp")],
            |v| v == before + 1.0,
        );
    }
    // A counted frame over limits.max_log_event is skipped whole and the
    // connection stays in step: the next frame on it is kept.
    let refusals = |server: &Sextant| {
        server
            .metric(
                "sextant_ingest_limit_refusals_total",
                &[("limit", "max_log_event")],
            )
            .unwrap()
    };
    let before = refusals(&server);
    let mut stream = TcpStream::connect(tcp).unwrap();
    let huge = 2 << 20;
    stream.write_all(format!("{huge} <13>").as_bytes()).unwrap();
    stream.write_all(&vec![b'x'; huge - 4]).unwrap();
    stream
        .write_all(b"<13>1 - - hostile - - - after the huge frame\n")
        .unwrap();
    server.get_until(
        "/api/v1/logs/search?q=%22after+the+huge+frame%22&start=0",
        |v: &Value| v["total"] == 1,
    );
    assert_eq!(refusals(&server), before + 1.0);
    drop(stream);
    // Another listener and both syslog transports still serve.
    udp_socket
        .send_to(b"<13>1 - h hostile - - - udp still served", udp)
        .unwrap();
    server.get_until(
        "/api/v1/logs/search?q=%22udp+still+served%22&start=0",
        |v: &Value| v["total"] == 1 && v["hits"][0]["service"] == "hostile",
    );
    still_answers(&server);
}

/// One hostile forward frame: its bytes, sent over a connection of its own.
struct FrameCase {
    name: &'static str,
    bytes: Vec<u8>,
    /// What the server's warning says, when it is the first of its minute.
    says: &'static str,
}

fn forward_frame_cases() -> Vec<FrameCase> {
    use sextant_ingest::forward::msgpack::write;
    let packed = |payload: &[u8], compressed: bool| {
        let mut frame = Vec::new();
        write::array(&mut frame, 3);
        write::str(&mut frame, b"hostile");
        write::bin(&mut frame, payload);
        write::map(&mut frame, u32::from(compressed));
        if compressed {
            write::str(&mut frame, b"compressed");
            write::str(&mut frame, b"gzip");
        }
        frame
    };
    let mut entry = Vec::new();
    write::array(&mut entry, 2);
    write::uint(&mut entry, 1);
    write::map(&mut entry, 1);
    write::str(&mut entry, b"log");
    write::str(&mut entry, b"x");
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut bomb, &vec![0u8; 8 << 20]).unwrap();
    let bomb = bomb.finish().unwrap();
    let mut deep_record = Vec::new();
    write::array(&mut deep_record, 3);
    write::str(&mut deep_record, b"hostile");
    write::uint(&mut deep_record, 1);
    write::map(&mut deep_record, 1);
    write::str(&mut deep_record, b"a");
    deep_record.extend(std::iter::repeat_n(0x91, 100_000));
    deep_record.push(0xc0);
    let mut oversized = Vec::new();
    write::array(&mut oversized, 3);
    write::str(&mut oversized, b"hostile");
    // Claims 3 MiB, sends 2.1 MiB: past limits.max_request_body (2 MiB here).
    oversized.push(0xc6);
    oversized.extend_from_slice(&(3u32 << 20).to_be_bytes());
    oversized.extend(std::iter::repeat_n(b'a', (2 << 20) + 100_000));
    vec![
        FrameCase {
            name: "truncated frame",
            bytes: packed(&entry, false)[..10].to_vec(),
            says: "closed inside a frame",
        },
        FrameCase {
            name: "array of 4 billion elements",
            bytes: vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, b't'],
            says: "closed inside a frame",
        },
        FrameCase {
            name: "4 GiB tag",
            bytes: vec![0x93, 0xdb, 0xff, 0xff, 0xff, 0xff, b't'],
            says: "closed inside a frame",
        },
        FrameCase {
            name: "packed entries claiming 4 GiB",
            bytes: vec![0x93, 0xa1, b't', 0xc6, 0xff, 0xff, 0xff, 0xf0, 0x01],
            says: "closed inside a frame",
        },
        FrameCase {
            name: "frame beyond max_request_body",
            bytes: oversized,
            says: "limits.max_request_body",
        },
        FrameCase {
            name: "nested 100,000 deep",
            bytes: std::iter::repeat_n(0x91, 100_000).collect(),
            says: "query.max_depth",
        },
        FrameCase {
            name: "record nested 100,000 deep",
            bytes: deep_record,
            says: "query.max_depth",
        },
        FrameCase {
            name: "bad gzip",
            bytes: packed(b"\x1f\x8b\x08\x00 not really gzip", true),
            says: "not valid gzip",
        },
        FrameCase {
            name: "gzip bomb",
            bytes: packed(&bomb, true),
            says: "limits.max_decompressed_body",
        },
        FrameCase {
            name: "packed entry cut short",
            bytes: packed(&entry[..entry.len() - 1], false),
            says: "packed entries are broken",
        },
        FrameCase {
            name: "tag is an integer",
            bytes: vec![0x93, 0x01, 0x01, 0x80],
            says: "the tag must be a string",
        },
        FrameCase {
            name: "frame is a map",
            bytes: vec![0x81, 0xa1, b'a', 0x01],
            says: "a forward frame is an array",
        },
        FrameCase {
            name: "byte 0xc1",
            bytes: vec![0x93, 0xc1],
            says: "0xc1",
        },
        FrameCase {
            name: "time is a map",
            bytes: vec![0x93, 0xa1, b't', 0x80, 0x80],
            says: "found a map",
        },
    ]
}

/// Reads until the server closes (or resets) the connection; what it sent.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
}

#[test]
fn forward_frames_close_only_their_connection() {
    use sextant_ingest::forward::msgpack::write;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "limits:\n  max_request_body: 2MiB\n  max_decompressed_body: 4MiB\n",
    )
    .unwrap();
    // Every closed connection's reason is logged at debug level (the
    // warning is rate-limited), so each case can be told apart.
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .args(["--log-level", "info,sextant_ingest::forward=debug"])
        .start();
    let addr = server.addr("forward", "tcp");
    let closed_saying = |says: &str| {
        server
            .log_events()
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("forward connection closed") && m.contains(says))
            })
            .count()
    };
    let labels = [("listener", "forward"), ("transport", "tcp")];
    // A well-behaved client, connected throughout.
    let mut good = TcpStream::connect(addr).unwrap();
    good.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let frame = |message: &str, chunk: &str| {
        let mut frame = Vec::new();
        write::array(&mut frame, 4);
        write::str(&mut frame, b"steady");
        write::uint(
            &mut frame,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
        write::map(&mut frame, 1);
        write::str(&mut frame, b"message");
        write::str(&mut frame, message.as_bytes());
        write::map(&mut frame, 1);
        write::str(&mut frame, b"chunk");
        write::str(&mut frame, chunk.as_bytes());
        frame
    };
    let ask = |stream: &mut TcpStream, message: &str, chunk: &str| {
        stream.write_all(&frame(message, chunk)).unwrap();
        let expected = sextant_ingest::forward::ack(chunk.as_bytes());
        let mut answer = vec![0u8; expected.len()];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(answer, expected);
    };
    ask(&mut good, "before", "g1");

    let cases = forward_frame_cases();
    for (i, case) in cases.iter().enumerate() {
        let before = server
            .metric("sextant_listener_errors_total", &labels)
            .unwrap_or(0.0);
        let said = closed_saying(case.says);
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // The server may close before it has read everything.
        let _ = stream.write_all(&case.bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let answer = read_to_close(&mut stream);
        assert!(answer.is_empty(), "{}: answered {answer:?}", case.name);
        server.wait_for_metric("sextant_listener_errors_total", &labels, |v| {
            v >= before + 1.0
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while closed_saying(case.says) <= said {
            assert!(
                std::time::Instant::now() < deadline,
                "{}: no closing reason saying {:?}:\n{}",
                case.name,
                case.says,
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            server.get("/-/ready").status,
            200,
            "{}: not ready",
            case.name
        );
        // The steady client is unaffected, its connection still open.
        ask(
            &mut good,
            &format!("after case {i}"),
            &format!("g{}", i + 2),
        );
    }
    assert_eq!(
        server.metric("sextant_listener_errors_total", &labels),
        Some(cases.len() as f64)
    );
    // The rate-limited warning was logged once, naming the first case's fault.
    let warnings: Vec<Value> = server
        .log_events()
        .into_iter()
        .filter(|e| e["level"] == "WARN" && e["listener"] == "forward")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains(cases[0].says),
        "{warnings:?}"
    );
    // Every steady message was stored; nothing from the hostile ones.
    server.get_until(
        "/api/v1/logs/search?q=service:steady&start=0",
        |v: &Value| v["total"] == cases.len() + 1,
    );
    let hostile = server
        .get("/api/v1/logs/search?q=service:hostile&start=0")
        .json();
    assert_eq!(hostile["total"], 0, "{hostile}");
}
