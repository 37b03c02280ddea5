//! Golden tests: the inputs and outputs Loki's documentation gives for each
//! stage (written out by hand from the docs, not produced by this code),
//! then the error cases and hostile inputs.

use sextant_model::{MatchOp, Matcher};

use super::*;
use crate::logql::ast::{self, CmpOp, Conversion, LabelFilter, LabelFmt, LabelSel, LineOp, Stage};

pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn matcher(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher::new(name, op, value).unwrap()
}

/// Runs `stages` over one entry: the line and labels it comes out with, or
/// None when it was dropped.
pub(super) fn run(
    stages: &[Stage],
    line: &str,
    stream: &[(&str, &str)],
) -> Option<(String, Labels)> {
    let pipeline = Pipeline::new(stages).unwrap();
    let mut line = line.to_owned();
    let mut lbls = labels(stream);
    pipeline
        .process(1_656_331_200_000_000_000, &mut line, &mut lbls)
        .then_some((line, lbls))
}

pub(super) fn json() -> Stage {
    Stage::Parser(ast::Parser::Json(Vec::new()))
}

pub(super) fn json_params(params: &[(&str, &str)]) -> Stage {
    Stage::Parser(ast::Parser::Json(
        params
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
    ))
}

pub(super) fn logfmt(strict: bool, keep_empty: bool, params: &[(&str, &str)]) -> Stage {
    Stage::Parser(ast::Parser::Logfmt {
        strict,
        keep_empty,
        params: params
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
    })
}

pub(super) fn line_filter(op: LineOp, values: &[&str]) -> Stage {
    Stage::LineFilter(ast::LineFilter {
        op,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    })
}

pub(super) fn is(name: &str, op: MatchOp, value: &str) -> LabelFilter {
    LabelFilter::Match(matcher(name, op, value))
}

pub(super) fn no_errors() -> Stage {
    Stage::LabelFilter(is("__error__", MatchOp::Equal, ""))
}

pub(super) fn line_format(template: &str) -> Stage {
    Stage::LineFormat(template.to_owned())
}

/// Renders a template over `stream` labels and the line "test line".
pub(super) fn render(template: &str, stream: &[(&str, &str)]) -> String {
    let (line, lbls) = run(&[line_format(template)], "test line", stream).unwrap();
    assert!(
        !lbls.contains_key("__error__"),
        "{template}: {:?}",
        lbls.get("__error_details__")
    );
    line
}

// ---- json ---------------------------------------------------------------

const DOC_JSON: &str = r#"{
    "protocol": "HTTP/2.0",
    "servers": ["129.0.1.1","10.2.1.3"],
    "request": {
        "time": "6.032",
        "method": "GET",
        "host": "foo.grafana.net",
        "size": "55",
        "headers": {
          "Accept": "*/*",
          "User-Agent": "curl/7.68.0"
        }
    },
    "response": {
        "status": 401,
        "size": "228",
        "latency_seconds": "6.031"
    }
}"#;

#[test]
fn json_flattens_the_documented_example() {
    let (line, lbls) = run(&[json()], DOC_JSON, &[]).unwrap();
    assert_eq!(line, DOC_JSON);
    assert_eq!(
        lbls,
        labels(&[
            ("protocol", "HTTP/2.0"),
            ("request_time", "6.032"),
            ("request_method", "GET"),
            ("request_host", "foo.grafana.net"),
            ("request_size", "55"),
            ("request_headers_Accept", "*/*"),
            ("request_headers_User_Agent", "curl/7.68.0"),
            ("response_status", "401"),
            ("response_size", "228"),
            ("response_latency_seconds", "6.031"),
        ])
    );
}

#[test]
fn json_sanitizes_keys_as_documented() {
    // { "a.b": {c: "d"}, e: "f" } -> {a_b_c="d", e="f"}
    let (_, lbls) = run(&[json()], r#"{ "a.b": {"c": "d"}, "e": "f" }"#, &[]).unwrap();
    assert_eq!(lbls, labels(&[("a_b_c", "d"), ("e", "f")]));
}

#[test]
fn json_values_as_written_bools_and_nulls() {
    let line = r#"{"n": 1.50, "neg": -2e3, "ok": true, "no": false, "nil": null, "esc": "a\"b\u00e9\n", "1st": "x", "": "y", "list": [{"a": 1}]}"#;
    let (_, lbls) = run(&[json()], line, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("n", "1.50"),
            ("neg", "-2e3"),
            ("ok", "true"),
            ("no", "false"),
            ("esc", "a\"b\u{e9}\n"),
            ("_1st", "x"),
        ])
    );
}

#[test]
fn json_parameters_as_documented() {
    let stage = json_params(&[
        ("first_server", "servers[0]"),
        ("ua", r#"request.headers["User-Agent"]"#),
    ]);
    let (_, lbls) = run(&[stage], DOC_JSON, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[("first_server", "129.0.1.1"), ("ua", "curl/7.68.0")])
    );

    // Arrays and objects come out as JSON.
    let line = r#"{"servers": ["129.0.1.1","10.2.1.3"], "request": {"headers": {"Accept": "*/*", "User-Agent": "curl/7.68.0"}}}"#;
    let stage = json_params(&[("server_list", "servers"), ("headers", "request.headers")]);
    let (_, lbls) = run(&[stage], line, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("server_list", r#"["129.0.1.1","10.2.1.3"]"#),
            (
                "headers",
                r#"{"Accept": "*/*", "User-Agent": "curl/7.68.0"}"#
            ),
        ])
    );

    // `| json servers` is `| json servers="servers"`; a missing path is empty.
    let stage = json_params(&[("servers", "servers"), ("missing", "nope.none[3]")]);
    let (_, lbls) = run(&[stage], line, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[("servers", r#"["129.0.1.1","10.2.1.3"]"#), ("missing", ""),])
    );

    assert!(Pipeline::new(&[json_params(&[("a", "b..c")])]).is_err());
    assert!(Pipeline::new(&[json_params(&[("a", "b[x]")])]).is_err());
}

#[test]
fn json_errors_keep_the_line_and_label_it() {
    let (line, lbls) = run(&[json()], "INFO GET / loki.net 200", &[("job", "varlogs")]).unwrap();
    assert_eq!(line, "INFO GET / loki.net 200");
    assert_eq!(lbls["__error__"], "JSONParserErr");
    assert!(!lbls["__error_details__"].is_empty());
    assert_eq!(lbls["job"], "varlogs");

    // Truncated JSON: what came before the fault stays.
    let (_, lbls) = run(&[json()], r#"{"a": "1", "b": "#, &[]).unwrap();
    assert_eq!(lbls["a"], "1");
    assert_eq!(lbls["__error__"], "JSONParserErr");

    // The documented ways to drop them.
    assert!(run(&[json(), no_errors()], "not json", &[]).is_none());
    let not_json_err = Stage::LabelFilter(is("__error__", MatchOp::NotEqual, "JSONParserErr"));
    assert!(run(&[json(), not_json_err.clone()], "not json", &[]).is_none());
    assert!(run(&[json(), not_json_err], r#"{"a":1}"#, &[]).is_some());
}

#[test]
fn json_names_an_existing_stream_label_extracted_and_keeps_the_first() {
    let (_, lbls) = run(
        &[json()],
        r#"{"level": "error", "a": "1", "a": "2", "nested": {"level": "x"}}"#,
        &[("level", "info")],
    )
    .unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("level", "info"),
            ("level_extracted", "error"),
            ("a", "1"),
            ("nested_level", "x"),
        ])
    );
    // A second parser does not overwrite what the first extracted.
    let (_, lbls) = run(&[json(), logfmt(false, false, &[])], r#"{"a":"json"}"#, &[]).unwrap();
    assert_eq!(lbls["a"], "json");
}

// ---- logfmt -------------------------------------------------------------

const DOC_LOGFMT: &str =
    r#"at=info method=GET path=/ host=grafana.net fwd="124.133.124.161" service=8ms status=200"#;

#[test]
fn logfmt_as_documented() {
    let (_, lbls) = run(&[logfmt(false, false, &[])], DOC_LOGFMT, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("at", "info"),
            ("method", "GET"),
            ("path", "/"),
            ("host", "grafana.net"),
            ("fwd", "124.133.124.161"),
            ("service", "8ms"),
            ("status", "200"),
        ])
    );
    // `| logfmt host, fwd_ip="fwd"`
    let stage = logfmt(false, false, &[("host", "host"), ("fwd_ip", "fwd")]);
    let (_, lbls) = run(&[stage], DOC_LOGFMT, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[("host", "grafana.net"), ("fwd_ip", "124.133.124.161")])
    );
}

#[test]
fn logfmt_strict_and_lenient() {
    // Non-strict skips the documented invalid pairs and goes on.
    let line = r#"=value foo=bar=buzz fo"o=bar key=value key2="value in double quotes""#;
    let (_, lbls) = run(&[logfmt(false, false, &[])], line, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[("key", "value"), ("key2", "value in double quotes")])
    );
    // Strict stops at the first and says so.
    let (line_out, lbls) = run(&[logfmt(true, false, &[])], "a=1 foo=bar=buzz b=2", &[]).unwrap();
    assert_eq!(line_out, "a=1 foo=bar=buzz b=2");
    assert_eq!(lbls["a"], "1");
    assert!(!lbls.contains_key("b"));
    assert_eq!(lbls["__error__"], "LogfmtParserErr");
    assert!(
        lbls["__error_details__"].contains("unexpected '='"),
        "{lbls:?}"
    );
    let (_, lbls) = run(&[logfmt(true, false, &[])], r#"a="unterminated"#, &[]).unwrap();
    assert_eq!(lbls["__error__"], "LogfmtParserErr");
    // Well-formed lines are fine in strict mode.
    let (_, lbls) = run(&[logfmt(true, false, &[])], DOC_LOGFMT, &[]).unwrap();
    assert!(!lbls.contains_key("__error__"));
}

#[test]
fn logfmt_keep_empty_and_escapes() {
    let line = r#"flag key= msg="say \"hi\"\n" uni="\u00e9" a-b=1"#;
    let (_, lbls) = run(&[logfmt(false, false, &[])], line, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[("msg", "say \"hi\"\n"), ("uni", "\u{e9}"), ("a_b", "1")])
    );
    let (_, lbls) = run(&[logfmt(false, true, &[])], line, &[]).unwrap();
    assert_eq!(lbls["flag"], "");
    assert_eq!(lbls["key"], "");
    // A requested key is there even when missing from the line.
    let (_, lbls) = run(
        &[logfmt(false, false, &[("flag", "flag"), ("zz", "zz")])],
        line,
        &[],
    )
    .unwrap();
    assert_eq!(lbls, labels(&[("flag", ""), ("zz", "")]));
}

// ---- pattern ------------------------------------------------------------

#[test]
fn pattern_as_documented() {
    let line = r#"0.191.12.2 - - [10/Jun/2021:09:14:29 +0000] "GET /api/plugins/versioncheck HTTP/1.1" 200 2 "-" "Go-http-client/2.0" "13.76.247.102, 34.120.177.193" "TLSv1.2" "US" """#;
    let stage = Stage::Parser(ast::Parser::Pattern(
        r#"<ip> - - <_> "<method> <uri> <_>" <status> <size> <_> "<agent>" <_>"#.to_owned(),
    ));
    let (_, lbls) = run(&[stage], line, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("ip", "0.191.12.2"),
            ("method", "GET"),
            ("uri", "/api/plugins/versioncheck"),
            ("status", "200"),
            ("size", "2"),
            ("agent", "Go-http-client/2.0"),
        ])
    );

    let line = r#"level=debug ts=2021-06-10T09:24:13.472094048Z caller=logging.go:66 traceID=0568b66ad2d9294c msg="POST /loki/api/v1/push (204) 16.652862ms""#;
    let stage = Stage::Parser(ast::Parser::Pattern(
        r#"<_> msg="<method> <path> (<status>) <latency>""#.to_owned(),
    ));
    let (_, lbls) = run(&[stage], line, &[]).unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("method", "POST"),
            ("path", "/loki/api/v1/push"),
            ("status", "204"),
            ("latency", "16.652862ms"),
        ])
    );

    // Anchored at the start: a leading literal must begin the line.
    let stage = Stage::Parser(ast::Parser::Pattern("msg=<m>".to_owned()));
    let (_, lbls) = run(&[stage], "level=1 msg=x", &[]).unwrap();
    assert!(lbls.is_empty());
}

#[test]
fn pattern_rejects_what_the_docs_call_invalid() {
    for bad in ["<_> foo <_>", "no captures", "<a><b>", "<a> x <a>", ""] {
        let stage = Stage::Parser(ast::Parser::Pattern(bad.to_owned()));
        let err = Pipeline::new(&[stage]).unwrap_err();
        assert!(err.contains("pattern"), "{bad}: {err}");
    }
    assert!(Pipeline::new(&[line_filter(LineOp::Pattern, &["<named> x"])]).is_err());
}

// ---- regexp, unpack -----------------------------------------------------

#[test]
fn regexp_as_documented() {
    let stage = Stage::Parser(ast::Parser::Regexp(
        r"(?P<method>\w+) (?P<path>[\w|/]+) \((?P<status>\d+?)\) (?P<duration>.*)".to_owned(),
    ));
    let (_, lbls) = run(
        std::slice::from_ref(&stage),
        "POST /api/prom/api/v1/query_range (200) 1.5s",
        &[],
    )
    .unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("method", "POST"),
            ("path", "/api/prom/api/v1/query_range"),
            ("status", "200"),
            ("duration", "1.5s"),
        ])
    );
    // No match: nothing added, no error.
    let (_, lbls) = run(&[stage], "nothing to see", &[("job", "x")]).unwrap();
    assert_eq!(lbls, labels(&[("job", "x")]));
    // A named group is required.
    let stage = Stage::Parser(ast::Parser::Regexp(r"(\w+)".to_owned()));
    assert!(Pipeline::new(&[stage]).unwrap_err().contains("named"));
    let stage = Stage::Parser(ast::Parser::Regexp(r"(?P<a>".to_owned()));
    assert!(Pipeline::new(&[stage]).unwrap_err().contains("regexp"));
}

#[test]
fn unpack_as_documented() {
    let line = r#"{"container": "myapp", "pod": "pod-3223f", "_entry": "original log message"}"#;
    let stage = Stage::Parser(ast::Parser::Unpack);
    let (line, lbls) = run(std::slice::from_ref(&stage), line, &[]).unwrap();
    assert_eq!(line, "original log message");
    assert_eq!(
        lbls,
        labels(&[("container", "myapp"), ("pod", "pod-3223f")])
    );
    // Combined with a parser of the unpacked line.
    let packed = r#"{"app":"x","_entry":"level=warn msg=\"slow\""}"#;
    let (line, lbls) = run(&[stage.clone(), logfmt(false, false, &[])], packed, &[]).unwrap();
    assert_eq!(line, "level=warn msg=\"slow\"");
    assert_eq!(
        lbls,
        labels(&[("app", "x"), ("level", "warn"), ("msg", "slow")])
    );
    let (_, lbls) = run(&[stage], "plain text", &[]).unwrap();
    assert_eq!(lbls["__error__"], "JSONParserErr");
}

// ---- label filters ------------------------------------------------------

pub(super) fn duration(name: &str, op: CmpOp, seconds: f64) -> LabelFilter {
    LabelFilter::Duration {
        name: name.to_owned(),
        op,
        seconds,
    }
}

pub(super) fn size(name: &str, op: CmpOp, bytes: f64) -> LabelFilter {
    LabelFilter::Bytes {
        name: name.to_owned(),
        op,
        bytes,
    }
}

pub(super) fn number(name: &str, op: CmpOp, value: f64) -> LabelFilter {
    LabelFilter::Number {
        name: name.to_owned(),
        op,
        value,
    }
}

pub(super) fn and(a: LabelFilter, b: LabelFilter) -> LabelFilter {
    LabelFilter::And(Box::new(a), Box::new(b))
}

pub(super) fn or(a: LabelFilter, b: LabelFilter) -> LabelFilter {
    LabelFilter::Or(Box::new(a), Box::new(b))
}

#[test]
fn label_filters_as_documented() {
    // | duration >= 20ms or size == 20KB and method!~"2.."
    let filter = or(
        duration("duration", CmpOp::Ge, 0.020),
        and(
            size("size", CmpOp::Eq, 20_000.0),
            is("method", MatchOp::NotRegex, "2.."),
        ),
    );
    let keep = |pairs: &[(&str, &str)]| label_filter(&filter, &mut labels(pairs));
    assert!(keep(&[
        ("duration", "25ms"),
        ("size", "1KB"),
        ("method", "200")
    ]));
    assert!(keep(&[
        ("duration", "1ms"),
        ("size", "20KB"),
        ("method", "GET")
    ]));
    assert!(!keep(&[
        ("duration", "1ms"),
        ("size", "20KB"),
        ("method", "204")
    ]));
    assert!(!keep(&[
        ("duration", "1ms"),
        ("size", "20KiB"),
        ("method", "GET")
    ]));
    // | (duration >= 20ms or size == 20KB) and method!~"2.."
    let grouped = and(
        or(
            duration("duration", CmpOp::Ge, 0.020),
            size("size", CmpOp::Eq, 20_000.0),
        ),
        is("method", MatchOp::NotRegex, "2.."),
    );
    assert!(!label_filter(
        &grouped,
        &mut labels(&[("duration", "25ms"), ("method", "200")])
    ));

    // The query at the top of the docs:
    // |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500
    let stages = [
        line_filter(LineOp::Contains, &["metrics.go"]),
        logfmt(false, false, &[]),
        Stage::LabelFilter(and(
            duration("duration", CmpOp::Gt, 10.0),
            number("throughput_mb", CmpOp::Lt, 500.0),
        )),
    ];
    assert!(
        run(
            &stages,
            "caller=metrics.go:83 duration=1m2.5s throughput_mb=42.5",
            &[]
        )
        .is_some()
    );
    assert!(
        run(
            &stages,
            "caller=metrics.go:83 duration=9s throughput_mb=42.5",
            &[]
        )
        .is_none()
    );
    assert!(
        run(
            &stages,
            "caller=metrics.go:83 duration=1m throughput_mb=500",
            &[]
        )
        .is_none()
    );
    assert!(run(&stages, "caller=other.go duration=1m throughput_mb=1", &[]).is_none());
}

#[test]
fn label_filter_conversion_errors_keep_the_entry() {
    let mut lbls = labels(&[("status", "abc")]);
    assert!(label_filter(&number("status", CmpOp::Gt, 5.0), &mut lbls));
    assert_eq!(lbls["__error__"], "LabelFilterErr");
    assert!(lbls["__error_details__"].contains("abc"));
    // An earlier, more useful error is kept.
    let mut lbls = labels(&[("d", "abc"), ("__error__", "JSONParserErr")]);
    assert!(label_filter(&duration("d", CmpOp::Gt, 1.0), &mut lbls));
    assert_eq!(lbls["__error__"], "JSONParserErr");
    // An absent label fails a conversion filter but is "" to a matcher.
    let mut lbls = labels(&[]);
    assert!(!label_filter(&number("status", CmpOp::Ne, 5.0), &mut lbls));
    assert!(!lbls.contains_key("__error__"));
    assert!(label_filter(&is("status", MatchOp::Equal, ""), &mut lbls));
    // Only string matchers read __error__: `| __error__ > 0` matches nothing.
    let mut lbls = labels(&[("__error__", "JSONParserErr")]);
    assert!(!label_filter(
        &number("__error__", CmpOp::Gt, 0.0),
        &mut lbls
    ));
    // In a pipeline, then dropped with __error__="".
    let stages = [
        logfmt(false, false, &[]),
        Stage::LabelFilter(size("size", CmpOp::Gt, 1.0)),
        no_errors(),
    ];
    assert!(run(&stages, "size=lots", &[]).is_none());
    assert!(run(&stages, "size=2B", &[]).is_some());
    assert!(run(&stages, "size=1", &[]).is_none());
}

#[test]
fn durations_and_bytes() {
    assert_eq!(go_duration("1h2m3.5s"), Some(3723.5));
    assert_eq!(go_duration("250ms"), Some(0.25));
    assert_eq!(go_duration("10us"), Some(0.00001));
    assert_eq!(go_duration("5µs"), Some(0.000005));
    assert_eq!(go_duration("3ns"), Some(0.000000003));
    assert_eq!(go_duration("-1s"), Some(-1.0));
    assert_eq!(go_duration("0"), Some(0.0));
    assert_eq!(go_duration(".5s"), Some(0.5));
    assert_eq!(go_duration("1.5h"), Some(5400.0));
    for bad in [
        "",
        "1",
        "1d",
        "s",
        "1.s.",
        "abc",
        "9999999999999999999h",
        "-",
    ] {
        assert_eq!(go_duration(bad), None, "{bad}");
    }
    assert_eq!(bytes("20MB"), Some(20_000_000.0));
    assert_eq!(bytes("1.5 KiB"), Some(1536.0));
    assert_eq!(bytes("512"), Some(512.0));
    assert_eq!(bytes("3kB"), Some(3000.0));
    assert_eq!(bytes("42mb"), Some(42_000_000.0));
    assert_eq!(bytes("1GiB"), Some(1_073_741_824.0));
    assert_eq!(bytes("2 PB"), Some(2e15));
    assert_eq!(bytes("1,024 B"), Some(1024.0));
    for bad in ["", "MB", "5 parsecs", "-5MB"] {
        assert_eq!(bytes(bad), None, "{bad}");
    }
}

#[test]
fn unwrap_values_and_errors() {
    let mut lbls = labels(&[
        ("latency", "0.25"),
        ("took", "1m30s"),
        ("size", "3 kB"),
        ("bad", "fast"),
    ]);
    assert_eq!(
        unwrap_value(&mut lbls, "latency", Conversion::Number),
        Some(0.25)
    );
    assert_eq!(
        unwrap_value(&mut lbls, "took", Conversion::Duration),
        Some(90.0)
    );
    assert_eq!(
        unwrap_value(&mut lbls, "size", Conversion::Bytes),
        Some(3000.0)
    );
    // Absent: no sample, no error.
    assert_eq!(unwrap_value(&mut lbls, "missing", Conversion::Number), None);
    assert!(!lbls.contains_key("__error__"));
    assert_eq!(unwrap_value(&mut lbls, "bad", Conversion::Number), None);
    assert_eq!(lbls["__error__"], "SampleExtractionErr");
    assert!(lbls["__error_details__"].contains("fast"));
    // The post filter `| __error__=""` then drops it.
    assert!(!label_filter(
        &is("__error__", MatchOp::Equal, ""),
        &mut lbls
    ));
}

// ---- line filters, decolorize -------------------------------------------

#[test]
fn line_filters_with_or() {
    let keep = |stage: Stage, line: &str| run(&[stage], line, &[]).is_some();
    assert!(keep(
        line_filter(LineOp::Contains, &["error"]),
        "an error here"
    ));
    assert!(!keep(
        line_filter(LineOp::Contains, &["error"]),
        "an ERROR here"
    ));
    assert!(keep(line_filter(LineOp::Contains, &["a", "b"]), "xbx"));
    assert!(!keep(line_filter(LineOp::NotContains, &["a", "b"]), "xbx"));
    assert!(keep(line_filter(LineOp::NotContains, &["a", "b"]), "xyz"));
    assert!(keep(
        line_filter(LineOp::Regex, &["tsdb-ops.*io:2003"]),
        "x tsdb-ops-1.io:2003 y"
    ));
    assert!(keep(
        line_filter(LineOp::Regex, &[r"error=\w+"]),
        "level=1 error=timeout"
    ));
    assert!(!keep(
        line_filter(LineOp::Regex, &[r"error=\w+"]),
        "error= x"
    ));
    assert!(keep(line_filter(LineOp::Regex, &["(?i)error"]), "ERROR"));
    assert!(keep(line_filter(LineOp::Regex, &["^a$", "(?i)B"]), "b"));
    assert!(!keep(line_filter(LineOp::NotRegex, &["^a$", "(?i)B"]), "b"));
    // {job="mysql"} |= "error" != "timeout"
    let stages = [
        line_filter(LineOp::Contains, &["error"]),
        line_filter(LineOp::NotContains, &["timeout"]),
    ];
    let pipeline = Pipeline::new(&stages).unwrap();
    assert!(pipeline.only_line_filters());
    assert!(run(&stages, "error: disk", &[]).is_some());
    assert!(run(&stages, "error: timeout", &[]).is_none());
    assert!(Pipeline::new(&[line_filter(LineOp::Regex, &["a", "("])]).is_err());
    assert!(!Pipeline::new(&[json()]).unwrap().only_line_filters());
    assert!(
        !Pipeline::new(&[Stage::Decolorize])
            .unwrap()
            .only_line_filters()
    );
}

#[test]
fn pattern_line_filter_as_documented() {
    let pattern =
        r#"<_> caller=http.go:194 level=debug <_> msg="POST /push.v1.PusherService/Push <_>"#;
    let lines = [
        r#"ts=2024-04-05T08:40:13.585911094Z caller=http.go:194 level=debug traceID=23e54a271db607cc orgID=3648 msg="POST /push.v1.PusherService/Push (200) 12.684035ms""#,
        r#"ts=2024-04-05T08:41:06.551403339Z caller=http.go:194 level=debug traceID=54325a1a15b42e2d orgID=1218 msg="POST /push.v1.PusherService/Push (200) 1.664285ms""#,
        r#"ts=2024-04-05T08:41:05.88999067Z caller=http.go:194 level=debug traceID=6892d7ef67b4d65c orgID=3648 msg="POST /push.v1.PusherService/Push (200) 2.314337ms""#,
    ];
    for line in lines {
        assert!(run(&[line_filter(LineOp::Pattern, &[pattern])], line, &[]).is_some());
        assert!(run(&[line_filter(LineOp::NotPattern, &[pattern])], line, &[]).is_none());
    }
    let other = "ts=1 caller=http.go:194 level=info msg=x";
    assert!(run(&[line_filter(LineOp::Pattern, &[pattern])], other, &[]).is_none());
    // The whole line must match: a trailing literal ends it, captures are non-empty.
    let p =
        |pat: &str, line: &str| run(&[line_filter(LineOp::Pattern, &[pat])], line, &[]).is_some();
    assert!(!p("<_> bar", "foo bar baz"));
    assert!(p("<_> baz", "foo bar baz"));
    assert!(p("foo <_>", "foo bar baz"));
    assert!(!p("foo <_>", "xfoo bar"));
    assert!(!p("<_> bar <_>", " bar "));
    assert!(p("", ""));
    assert!(!p("", "x"));
    assert!(p("<_>", "anything"));
}

#[test]
fn decolorize_strips_ansi() {
    let (line, _) = run(
        &[Stage::Decolorize],
        "\u{1b}[31mred\u{1b}[0m and \u{1b}[1;32mbold green\u{1b}[0m",
        &[],
    )
    .unwrap();
    assert_eq!(line, "red and bold green");
}

// ---- line_format, templates ---------------------------------------------

#[test]
fn line_format_as_documented() {
    // | logfmt | line_format "{{.ip}} {{.status}} {{div .duration 1000}}"
    let stages = [
        logfmt(false, false, &[]),
        line_format("{{.ip}} {{.status}} {{div .duration 1000}}"),
    ];
    let (line, _) = run(&stages, "ip=1.1.1.1 status=200 duration=3000", &[]).unwrap();
    assert_eq!(line, "1.1.1.1 200 3");
    let stages = [
        logfmt(false, false, &[]),
        line_format("{{.query}} {{.duration}}"),
    ];
    let (line, _) = run(&stages, r#"query="sum(rate(x[1m]))" duration=1.2s"#, &[]).unwrap();
    assert_eq!(line, "sum(rate(x[1m])) 1.2s");
    // A missing label is empty.
    assert_eq!(
        render("foo {{.foo}}buzz{{  .bar  }}", &[("bar", "blop")]),
        "foo buzzblop"
    );
    assert_eq!(render("{{.missing}}", &[]), "");
}

#[test]
fn template_functions_as_documented() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (
            r#"{{ .path | replace " " "_" | trunc 5 | upper }}"#,
            &[("path", "a b c d e f")],
            "A_B_C",
        ),
        (
            r#"{{ if and (contains "he" "hello") (contains "llo" "hello") }} yes {{end}}"#,
            &[],
            " yes ",
        ),
        (
            r#"{{ if or (contains "he" "hello") (contains "llo" "hello") }} yes {{end}}"#,
            &[],
            " yes ",
        ),
        (
            r#"{{ if contains "ErrTimeout" .err }} timeout {{else if contains "he" "hello"}} yes {{else}} no {{end}}"#,
            &[("err", "x")],
            " yes ",
        ),
        (
            r#"{{ if contains "ErrTimeout" .err }} timeout {{else if contains "he" "hello"}} yes {{else}} no {{end}}"#,
            &[("err", "ErrTimeout!")],
            " timeout ",
        ),
        (
            r#"{{ if eq "ErrTimeout" .err }} timeout {{end}}"#,
            &[("err", "ErrTimeout")],
            " timeout ",
        ),
        (
            r#"{{ if hasPrefix "he" "hello" }} yes {{end}}"#,
            &[],
            " yes ",
        ),
        (r#"{{ __line__ | lower }}"#, &[], "test line"),
        (
            r#"{{ __timestamp__ | date "2006-01-02" }}"#,
            &[],
            "2022-06-27",
        ),
        (r#"{{ __timestamp__ | unixEpoch }}"#, &[], "1656331200"),
        (
            r#"{{ __timestamp__ }}"#,
            &[],
            "2022-06-27 12:00:00 +0000 UTC",
        ),
        (r#"{{ alignLeft 5 "hello world"}}"#, &[], "hello"),
        (r#"{{ alignLeft 5 "hi"}}"#, &[], "hi   "),
        (r#"{{ alignRight 5 "hello world"}}"#, &[], "world"),
        (r#"{{ alignRight 5 "hi"}}"#, &[], "   hi"),
        (
            r#"{{ .foo | b64enc }}"#,
            &[("foo", "i'm a string, encode me!")],
            "aSdtIGEgc3RyaW5nLCBlbmNvZGUgbWUh",
        ),
        (
            r#"{{ b64dec .foo }} {{ b64dec .bar }}"#,
            &[("foo", "Zm9vYmE"), ("bar", "Zm9vYg")],
            "fooba foob",
        ),
        (r#"{{ default "-" "" }}"#, &[], "-"),
        (r#"{{ default "-" "foo" }}"#, &[], "foo"),
        (
            r#"{{.http_request_headers_x_forwarded_for | default "-"}}"#,
            &[],
            "-",
        ),
        (r#"{{ lower  "HELLO"}}"#, &[], "hello"),
        (r#"{{ upper  "hello"}}"#, &[], "HELLO"),
        (r#"{{ title "hello world"}}"#, &[], "Hello World"),
        (
            r#"{{ indent 4 .query }}"#,
            &[("query", "a\nb")],
            "    a\n    b",
        ),
        (r#"{{ nindent 2 "foo" }}"#, &[], "\n  foo"),
        (r#"{{ repeat 3 "hello" }}"#, &[], "hellohellohello"),
        (
            r#"{{ printf "The IP address was %s" .remote_addr }}"#,
            &[("remote_addr", "129.168.1.1")],
            "The IP address was 129.168.1.1",
        ),
        (
            r#"{{ printf "%-40.40s" .request_uri}} {{printf "%-5.5s" .request_method}}"#,
            &[
                ("request_uri", "/id/609259548/hpr.html"),
                ("request_method", "GET"),
            ],
            "/id/609259548/hpr.html                   GET  ",
        ),
        (
            r#"{{ replace "hello" "world" "hello world" }}"#,
            &[],
            "world world",
        ),
        (
            r#"{{ .cluster | replace "-cluster" "" }}"#,
            &[("cluster", "eu-cluster")],
            "eu",
        ),
        (r#"{{ substr 0 5 "hello world"}}"#, &[], "hello"),
        (r#"{{ substr 6 11 "hello world"}}"#, &[], "world"),
        (r#"{{ trim "   hello    " }}"#, &[], "hello"),
        (r#"{{ trimAll "$" "$5.00" }}"#, &[], "5.00"),
        (r#"{{ trimPrefix "-" "-hello" }}"#, &[], "hello"),
        (r#"{{ trimSuffix "-" "hello-" }}"#, &[], "hello"),
        (r#"{{ trunc 5 "hello world"}}"#, &[], "hello"),
        (r#"{{ trunc -5 "hello world"}}"#, &[], "world"),
        (
            r#"{{ .u | urlencode }}"#,
            &[("u", "/a b?c=d&e")],
            "%2Fa+b%3Fc%3Dd%26e",
        ),
        (
            r#"{{ .u | urldecode }}"#,
            &[("u", "%2Fa+b%3Fc%3Dd%26e")],
            "/a b?c=d&e",
        ),
        (r#"{{ add 3 2 5 }}"#, &[], "10"),
        (r#"{{ addf 3.5 2 5 }}"#, &[], "10.5"),
        (r#"{{ div 10 2}}"#, &[], "5"),
        (r#"{{ divf 10 2 4}}"#, &[], "1.25"),
        (r#"{{ "3.5" | float64 }}"#, &[], "3.5"),
        (r#"{{ floor 123.9999 }}"#, &[], "123"),
        (r#"{{ ceil 123.001 }}"#, &[], "124"),
        (r#"{{ "3" | int }}"#, &[], "3"),
        (r#"{{ max 1 2 3 }}"#, &[], "3"),
        (r#"{{ maxf 1 2.5 3 }}"#, &[], "3"),
        (r#"{{ min 1 2 3 }}"#, &[], "1"),
        (r#"{{ mul 5 2 3}}"#, &[], "30"),
        (r#"{{ mulf 5.5 2 2.5 }}"#, &[], "27.5"),
        (r#"{{ mod 10 3}}"#, &[], "1"),
        (r#"{{ round 123.555555 3 }}"#, &[], "123.556"),
        (r#"{{ round 123.88571428571 5 .2 }}"#, &[], "123.88572"),
        (r#"{{ sub 5 2 }}"#, &[], "3"),
        (r#"{{ subf  5.5 2 1.5 }}"#, &[], "2"),
        (r#"{{ count "a|b" "abab" }}"#, &[], "4"),
        (r#"{{ count "o" "foo" }}"#, &[], "2"),
        (r#"{{ __line__ | count "XYZ"}}"#, &[], "0"),
        (
            r#"{{ regexReplaceAll "(a*)bc" .some_label "${1}a" }}"#,
            &[("some_label", "aabc-bc")],
            "aaa-a",
        ),
        (
            r#"{{ regexReplaceAllLiteral "(ts=)" .timestamp "timestamp=" }}"#,
            &[("timestamp", "ts=1")],
            "timestamp=1",
        ),
    ];
    for (template, stream, want) in cases {
        assert_eq!(render(template, stream), *want, "{template}");
    }
}

#[test]
fn template_results_from_lokis_own_tests() {
    let four = [
        ("foo", "1.5"),
        ("bar", "5"),
        ("baz", "10.5"),
        ("bazz", "20.2"),
    ];
    assert_eq!(
        render(
            "{{ addf .foo 1.5 | subf .bar 1.5 | mulf .baz | divf .bazz }}",
            &four
        ),
        "3.8476190476190477"
    );
    let four = [
        ("foo", "1.5"),
        ("bar", "3.5"),
        ("baz", "10.5"),
        ("bazz", "20.4"),
    ];
    assert_eq!(
        render(
            "{{ round (addf .foo 1.5 | subf .bar | mulf .baz | divf .bazz) 5 .2}}",
            &four
        ),
        "3.88572"
    );
    let four = [("foo", "1"), ("bar", "3"), ("baz", "10"), ("bazz", "20")];
    assert_eq!(
        render("{{ add .foo 1 | sub .bar | mul .baz | div .bazz}}", &four),
        "2"
    );
    assert_eq!(render(r#"{{ "2.5" | float64 | int | add 10}}"#, &[]), "12");
    assert_eq!(render("{{ .foo | bytes }}", &[("foo", "3MB")]), "3e+06");
    assert_eq!(render("{{ .foo | bytes }}", &[("foo", "3 kB")]), "3000");
    assert_eq!(render("{{ .foo | duration }}", &[("foo", "3ms")]), "0.003");
    assert_eq!(
        render("{{ .foo | duration_seconds }}", &[("foo", "3m10s")]),
        "190"
    );
    assert_eq!(
        render(
            "{{.foo | substr 1 3 }} {{ .bar  | trunc 1 }} {{ .bar  | trunc 3 }}",
            &[("foo", "blip"), ("bar", "blop")]
        ),
        "li b blo"
    );
    assert_eq!(
        render(
            r#"{{.foo | trim }} {{ .bar  | trimAll "op" }} {{ .bar  | trimPrefix "b" }} {{ .bar  | trimSuffix "p" }}"#,
            &[("foo", "  blip "), ("bar", "blop")]
        ),
        "blip bl lop blo"
    );
    assert_eq!(
        render(
            r#"foo{{.foo}}buzz{{ Replace .bar "blop" "bar" -1 }}"#,
            &[("foo", "blip"), ("bar", "blop")]
        ),
        "fooblipbuzzbar"
    );
    assert_eq!(
        render(r#"{{ "foo\n bar" | indent 4 }}"#, &[]),
        "    foo\n     bar"
    );
    assert_eq!(
        render(
            r#"{{ if  .foo | hasSuffix "Ip" }}yes{{end}}-{{ if  .foo | hasSuffix "pw"}}no{{end}}"#,
            &[("foo", "BLIp")]
        ),
        "yes-"
    );
    assert_eq!(
        render(
            r#"{{ regexReplaceAllLiteral "(p)" .foo "${1}" }}"#,
            &[("foo", "BLIp")]
        ),
        "BLI${1}"
    );
    assert_eq!(
        render(
            "ceil is {{ ceil .foo }} and floor is {{floor .foo }}",
            &[("foo", "5.3")]
        ),
        "ceil is 6 and floor is 5"
    );
    assert_eq!(
        render(
            "minf is {{ minf .foo .bar .baz }} and maxf is {{maxf .foo .bar .baz}}",
            &[("foo", "5.3"), ("bar", "10.5"), ("baz", "15.2")]
        ),
        "minf is 5.3 and maxf is 15.2"
    );
    assert_eq!(
        render("{{ .foo | unixToTime }}", &[("foo", "1679577215")]),
        "2023-03-23 13:13:35 +0000 UTC"
    );
    assert_eq!(
        render(
            "{{ .foo | unixToTime | unixEpochMillis }}",
            &[("foo", "1257894000000")]
        ),
        "1257894000000"
    );
}

#[test]
fn template_syntax_go_has() {
    assert_eq!(render("a  {{- .x -}}  b", &[("x", "X")]), "aXb");
    assert_eq!(render("a {{/* a comment */}}b", &[]), "a b");
    assert_eq!(render("a {{- /* trimmed */ -}} b", &[]), "ab");
    assert_eq!(render("{{ `raw \\n` }}", &[]), "raw \\n");
    assert_eq!(render(r#"{{ "tab\tquote\"" }}"#, &[]), "tab\tquote\"");
    assert_eq!(
        render("{{ 'a' }} {{ 0x1F }} {{ -3 }} {{ 1e3 }} {{ true }}", &[]),
        "97 31 -3 1000 true"
    );
    assert_eq!(render("{{ if not .x }}empty{{ end }}", &[]), "empty");
    assert_eq!(
        render(
            r#"{{ if eq .status "500" "503" }}bad{{ else }}ok{{ end }}"#,
            &[("status", "503")]
        ),
        "bad"
    );
    assert_eq!(
        render(
            r#"{{ if ne .a "x" }}1{{end}}{{ if lt 1 2 }}2{{end}}{{ if ge "b" "a" }}3{{end}}"#,
            &[("a", "y")]
        ),
        "123"
    );
    assert_eq!(
        render(
            r#"{{ or .missing "fallback" }} {{ and .a .b }}"#,
            &[("a", "A"), ("b", "B")]
        ),
        "fallback B"
    );
    assert_eq!(
        render(
            "{{ len .a }} {{ index . \"a\" }} {{ $.a }}",
            &[("a", "héllo")]
        ),
        "6 héllo héllo"
    );
    assert_eq!(render("{{ . }}", &[("a", "1"), ("b", "2")]), "map[a:1 b:2]");
    assert_eq!(
        render(r#"{{ print "a" 1 2 "b" }}|{{ println 1 "x" }}"#, &[]),
        "a1 2b|1 x\n"
    );
    assert_eq!(
        render(
            r#"{{ printf "%d|%5.2f|%v|%q|%x|%05d|%+d|%t|%%" 42 3.14159 2.5 "q" 255 -42 7 true }}"#,
            &[]
        ),
        "42| 3.14|2.5|\"q\"|ff|-0042|+7|true|%"
    );
    assert_eq!(
        render(r#"{{ printf "%d %s" "x" }}"#, &[]),
        "%!d(string=x) %!s(MISSING)"
    );
    assert_eq!(
        render(
            r#"{{ printf "%e %g %g %v" 123456.0 0.00001 1e21 100000000.0 }}"#,
            &[]
        ),
        "1.234560e+05 1e-05 1e+21 1e+08"
    );
    assert_eq!(
        render(r#"{{ html "<a href='x'>" }} {{ urlquery "a b" }}"#, &[]),
        "&lt;a href=&#39;x&#39;&gt; a+b"
    );
    assert_eq!(
        render("{{ .x | printf \"%s!\" | upper }}", &[("x", "hi")]),
        "HI!"
    );
    assert_eq!(
        render("{{ (.x) }}{{ ( upper ( lower .x ) ) }}", &[("x", "Ab")]),
        "AbAB"
    );
}

#[test]
fn template_errors_are_compile_errors() {
    for (bad, why) in [
        ("{{ nope .x }}", "not defined"),
        ("{{ .x", "unclosed action"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ if .x }}a", "without {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ }}", "missing value"),
        (
            "{{ upper }}",
            "wrong number of args for upper: want 1 got 0",
        ),
        ("{{ .x | now }}", "wrong number of args for now"),
        (
            r#"{{ replace "test" .foo }}"#,
            "wrong number of args for replace",
        ),
        (
            r#"{{ .foo Replace "foo" }}"#,
            "can't give argument to non-function .foo",
        ),
        ("{{ range .x }}{{ end }}", "not supported"),
        ("{{ $x := 1 }}", "not supported"),
        ("{{ toDate \"2006\" .x }}", "not supported"),
        ("{{ (upper .x }}", "unclosed left paren"),
        (r#"{{ "unterminated }}"#, "unterminated"),
        (r#"{{ count "(" .x }}"#, "invalid regex"),
        ("{{ 12abc }}", "bad number"),
    ] {
        let err = Pipeline::new(&[line_format(bad)]).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
        assert!(err.contains("line_format"), "{bad}: {err}");
    }
    let err = Pipeline::new(&[Stage::LabelFormat(vec![LabelFmt::Template {
        dst: "a".to_owned(),
        template: "{{ nope }}".to_owned(),
    }])])
    .unwrap_err();
    assert!(
        err.contains("label_format") && err.contains("\"a\""),
        "{err}"
    );
}

#[test]
fn template_runtime_errors_keep_the_line() {
    for (template, why) in [
        ("{{ div 1 .zero }}", "integer divide by zero"),
        ("{{ eq .status 500 }}", "incompatible types"),
        ("{{ upper 5 }}", "expected string"),
        ("{{ trunc .n .s }}", "expected int"),
        ("{{ .a.b }}", "can't evaluate field b"),
        ("{{ .u | urldecode }}", "invalid URL escape"),
        ("{{ .d | duration }}", "invalid duration"),
        ("{{ repeat 1000000000 \"xy\" }}", "larger than"),
        ("{{ printf \"%999999999d\" 1 }}", "larger than"),
    ] {
        let stream = [
            ("zero", "0"),
            ("status", "500"),
            ("n", "1"),
            ("s", "x"),
            ("a", "x"),
            ("u", "%zz"),
            ("d", "soon"),
        ];
        let (line, lbls) = run(&[line_format(template)], "original", &stream).unwrap();
        assert_eq!(line, "original", "{template}");
        assert_eq!(lbls["__error__"], "TemplateFormatErr", "{template}");
        assert!(
            lbls["__error_details__"].contains(why),
            "{template}: {}",
            lbls["__error_details__"]
        );
    }
}

// ---- label_format, drop, keep --------------------------------------------

pub(super) fn rename(dst: &str, src: &str) -> LabelFmt {
    LabelFmt::Rename {
        dst: dst.to_owned(),
        src: src.to_owned(),
    }
}

pub(super) fn template(dst: &str, template: &str) -> LabelFmt {
    LabelFmt::Template {
        dst: dst.to_owned(),
        template: template.to_owned(),
    }
}

#[test]
fn label_format_as_documented() {
    let stream = [("foo", "blip"), ("bar", "blop")];
    // dst=src renames: the source goes.
    let (_, lbls) = run(
        &[Stage::LabelFormat(vec![rename("baz", "foo")])],
        "l",
        &stream,
    )
    .unwrap();
    assert_eq!(lbls, labels(&[("bar", "blop"), ("baz", "blip")]));
    let (_, lbls) = run(
        &[Stage::LabelFormat(vec![rename("bar", "foo")])],
        "l",
        &stream,
    )
    .unwrap();
    assert_eq!(lbls, labels(&[("bar", "blip")]));
    // dst="{{.src}}" keeps the source.
    let (_, lbls) = run(
        &[Stage::LabelFormat(vec![template("dst", "{{.foo}}")])],
        "l",
        &stream,
    )
    .unwrap();
    assert_eq!(
        lbls,
        labels(&[("foo", "blip"), ("bar", "blop"), ("dst", "blip")])
    );
    // Templates see the labels from before the stage's renames.
    let stage = Stage::LabelFormat(vec![
        template("blip", "{{.foo | ToUpper }} and {{.bar}}"),
        rename("bar", "foo"),
    ]);
    let (_, lbls) = run(&[stage], "l", &stream).unwrap();
    assert_eq!(lbls, labels(&[("blip", "BLIP and blop"), ("bar", "blip")]));
    let stage = Stage::LabelFormat(vec![template("status", "{{div .status 100 }}")]);
    let (_, lbls) = run(&[stage], "l", &[("status", "200")]).unwrap();
    assert_eq!(lbls, labels(&[("status", "2")]));
    let stage = Stage::LabelFormat(vec![
        template("line", "{{ __line__ }}"),
        template("ts", "{{ __timestamp__ | unixEpoch }}"),
    ]);
    let (_, lbls) = run(&[stage], "test line", &[]).unwrap();
    assert_eq!(lbls, labels(&[("line", "test line"), ("ts", "1656331200")]));
    // A label once per stage; __error__ cannot be formatted.
    let dup = Stage::LabelFormat(vec![rename("foo", "bar"), template("foo", "new")]);
    assert!(
        Pipeline::new(&[dup])
            .unwrap_err()
            .contains("multiple label name")
    );
    assert!(Pipeline::new(&[Stage::LabelFormat(vec![rename("__error__", "bar")])]).is_err());
    // ... but may be renamed in two stages.
    let two = [
        Stage::LabelFormat(vec![rename("foo", "bar")]),
        Stage::LabelFormat(vec![template("foo", "new {{.foo}}")]),
    ];
    let (_, lbls) = run(&two, "l", &stream).unwrap();
    assert_eq!(lbls, labels(&[("foo", "new blop")]));
    // A runtime error marks the entry and leaves the label alone.
    let stage = Stage::LabelFormat(vec![template("bar", "{{ div 1 0 }}")]);
    let (_, lbls) = run(&[stage], "l", &stream).unwrap();
    assert_eq!(lbls["bar"], "blop");
    assert_eq!(lbls["__error__"], "TemplateFormatErr");
}

const DROP_LINE_1: &str = r#"{"app": "some-api-service", "level": "info", "method": "GET", "path": "/", "host": "grafana.net", "status": "200"}"#;
const DROP_LINE_2: &str = r#"{"app": "other-service", "level": "info", "method": "GET", "path": "/", "host": "grafana.net", "status": "200"}"#;

#[test]
fn drop_as_documented() {
    // {job="varlogs"}|json|drop level, method="GET"
    let stages = [
        json(),
        Stage::Drop(vec![
            LabelSel::Name("level".to_owned()),
            LabelSel::Matcher(matcher("method", MatchOp::Equal, "GET")),
        ]),
    ];
    let line = r#"{"level": "info", "method": "GET", "path": "/", "host": "grafana.net", "status": "200"}"#;
    let (out, lbls) = run(&stages, line, &[]).unwrap();
    assert_eq!(out, line);
    assert_eq!(
        lbls,
        labels(&[("host", "grafana.net"), ("path", "/"), ("status", "200")])
    );

    // {job="varlogs"}|json|drop __error__
    let stages = [
        json(),
        Stage::Drop(vec![LabelSel::Name("__error__".to_owned())]),
    ];
    let (out, lbls) = run(&stages, "INFO GET / loki.net 200", &[("job", "varlogs")]).unwrap();
    assert_eq!(out, "INFO GET / loki.net 200");
    assert!(!lbls.contains_key("__error__"));
    let stages = [
        json(),
        Stage::Drop(vec![
            LabelSel::Name("__error__".to_owned()),
            LabelSel::Name("__error_details__".to_owned()),
        ]),
    ];
    let (_, lbls) = run(&stages, "INFO GET / loki.net 200", &[("job", "varlogs")]).unwrap();
    assert_eq!(lbls, labels(&[("job", "varlogs")]));

    // {job="varlogs"}|json|drop level, path, app=~"some-api.*"
    let stages = [
        json(),
        Stage::Drop(vec![
            LabelSel::Name("level".to_owned()),
            LabelSel::Name("path".to_owned()),
            LabelSel::Matcher(matcher("app", MatchOp::Regex, "some-api.*")),
        ]),
    ];
    let (_, lbls) = run(&stages, DROP_LINE_1, &[("job", "varlogs")]).unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("host", "grafana.net"),
            ("job", "varlogs"),
            ("method", "GET"),
            ("status", "200")
        ])
    );
    let (_, lbls) = run(&stages, DROP_LINE_2, &[("job", "varlogs")]).unwrap();
    assert_eq!(
        lbls,
        labels(&[
            ("app", "other-service"),
            ("host", "grafana.net"),
            ("job", "varlogs"),
            ("method", "GET"),
            ("status", "200"),
        ])
    );
}

#[test]
fn keep_as_documented() {
    // {job="varlogs"}|json|keep level, method="GET"
    let stages = [
        json(),
        Stage::Keep(vec![
            LabelSel::Name("level".to_owned()),
            LabelSel::Matcher(matcher("method", MatchOp::Equal, "GET")),
        ]),
    ];
    let get = r#"{"level": "info", "method": "GET", "path": "/", "host": "grafana.net", "status": "200"}"#;
    let post = r#"{"level": "info", "method": "POST", "path": "/", "host": "grafana.net", "status": "200"}"#;
    let (_, lbls) = run(&stages, get, &[("job", "varlogs")]).unwrap();
    assert_eq!(lbls, labels(&[("level", "info"), ("method", "GET")]));
    let (_, lbls) = run(&stages, post, &[("job", "varlogs")]).unwrap();
    assert_eq!(lbls, labels(&[("level", "info")]));

    // {job="varlogs"}|json|keep level, tenant, app=~"some-api.*"
    let stages = [
        json(),
        Stage::Keep(vec![
            LabelSel::Name("level".to_owned()),
            LabelSel::Name("tenant".to_owned()),
            LabelSel::Matcher(matcher("app", MatchOp::Regex, "some-api.*")),
        ]),
    ];
    let (_, lbls) = run(&stages, DROP_LINE_1, &[("job", "varlogs")]).unwrap();
    assert_eq!(
        lbls,
        labels(&[("app", "some-api-service"), ("level", "info")])
    );
    let (_, lbls) = run(&stages, DROP_LINE_2, &[("job", "varlogs")]).unwrap();
    assert_eq!(lbls, labels(&[("level", "info")]));

    // keep does not drop the error labels.
    let stages = [
        json(),
        Stage::Keep(vec![LabelSel::Name("level".to_owned())]),
    ];
    let (_, lbls) = run(&stages, "not json", &[("job", "varlogs")]).unwrap();
    assert_eq!(lbls["__error__"], "JSONParserErr");
    assert!(lbls.contains_key("__error_details__"));
    assert!(!lbls.contains_key("job"));
}

#[test]
fn a_dropped_stream_label_still_decides_the_extracted_suffix() {
    let stages = [
        Stage::Drop(vec![LabelSel::Name("level".to_owned())]),
        json(),
    ];
    let (_, lbls) = run(&stages, r#"{"level":"error"}"#, &[("level", "info")]).unwrap();
    assert_eq!(lbls, labels(&[("level_extracted", "error")]));
    // A label label_format made is not a stream label: a parser may not
    // overwrite it either (it was set first).
    let stages = [Stage::LabelFormat(vec![template("level", "fmt")]), json()];
    let (_, lbls) = run(&stages, r#"{"level":"error"}"#, &[]).unwrap();
    assert_eq!(lbls, labels(&[("level", "fmt")]));
}
