//! syslog as real senders send it: util-linux `logger` (RFC 5424 and RFC
//! 3164, UDP and TCP, octet-counted and newline-framed), Debian's rsyslog
//! forwarding with `omfwd` (TCP and UDP, RFC 5424 and its traditional
//! format) and `omelasticsearch` (to the `_bulk` endpoint), syslog over TLS
//! with `openssl s_client`, and `logs.syslog.allowed_sources`; every event
//! found again through the log search API with its fields.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_tests::{Sextant, TestCertificates, free_port, url_encode};

/// Searches until `check` accepts the answer ([`Sextant::search_until`]).
fn search_until(server: &Sextant, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    server.search_until(query, "&start=0", check)
}

fn total(n: u64) -> impl Fn(&Value) -> bool {
    move |json| json["total"] == n
}

/// The only hit of `query`, once there is exactly one.
fn one(server: &Sextant, query: &str) -> Value {
    search_until(server, query, total(1))["hits"][0].clone()
}

fn logger(args: &[&str]) {
    // RFC 3164 times are local and carry no zone: Sextant reads them as
    // UTC unless `logs.syslog.rfc3164_utc_offset` says otherwise.
    let out = Command::new("logger")
        .env("TZ", "UTC")
        .args(args)
        .output()
        .expect("logger (util-linux; scripts/setup-test-env installs it)");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hostname() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn logger_rfc5424_and_rfc3164_over_udp_and_tcp() {
    let server = Sextant::start();
    let udp = server.addr("syslog", "udp");
    let tcp = server.addr("syslog", "tcp");
    assert_eq!(udp.port(), tcp.port());
    let port = tcp.port().to_string();
    let base = ["-n", "127.0.0.1", "-P", &port];
    let sd = [
        "--sd-id",
        "order@32473",
        "--sd-param",
        "id=\"A-17\"",
        "--sd-param",
        r#"note="say \"hi\" [now\]""#,
    ];
    for (transport, framing) in [("-d", None), ("-T", None), ("-T", Some("--octet-count"))] {
        let name = format!(
            "{}{}",
            &transport[1..],
            if framing.is_some() { "o" } else { "" }
        );
        let mut args: Vec<&str> = base.to_vec();
        args.push(transport);
        args.extend(framing);
        let tag = format!("checkout-{name}");
        let text5424 = format!("rfc5424 payment declined via {name}");
        let mut rfc5424 = args.clone();
        rfc5424.extend([
            "--rfc5424",
            "-p",
            "local0.warning",
            "-t",
            &tag,
            "--msgid",
            "PAY",
            "--id=4242",
        ]);
        rfc5424.extend(sd);
        rfc5424.push(&text5424);
        logger(&rfc5424);
        let text3164 = format!("rfc3164 disk almost full via {name}");
        let tag3164 = format!("cron-{name}");
        let mut rfc3164 = args.clone();
        rfc3164.extend(["--rfc3164", "-p", "daemon.err", "-t", &tag3164, &text3164]);
        logger(&rfc3164);
    }
    let host = hostname();
    for name in ["d", "T", "To"] {
        let hit = one(&server, &format!("\"rfc5424 payment declined via {name}\""));
        assert_eq!(hit["service"], format!("checkout-{name}"), "{hit}");
        assert_eq!(hit["host"], host, "{hit}");
        assert_eq!(hit["level"], "WARN", "{hit}");
        let fields = &hit["fields"];
        assert_eq!(fields["facility"], "local0", "{hit}");
        assert_eq!(fields["severity"], "warning", "{hit}");
        assert_eq!(fields["msgid"], "PAY", "{hit}");
        assert_eq!(fields["procid"], "4242", "{hit}");
        assert_eq!(fields["order@32473.id"], "A-17", "{hit}");
        assert_eq!(fields["order@32473.note"], "say \"hi\" [now]", "{hit}");
        // logger's timestamps carry microseconds.
        assert!(
            !hit["timestamp"].as_str().unwrap().ends_with(".000000Z"),
            "{hit}"
        );

        let hit = one(&server, &format!("\"rfc3164 disk almost full via {name}\""));
        assert_eq!(hit["service"], format!("cron-{name}"), "{hit}");
        assert_eq!(hit["host"], host, "{hit}");
        assert_eq!(hit["level"], "ERROR", "{hit}");
        assert_eq!(hit["fields"]["facility"], "daemon", "{hit}");
        assert_eq!(hit["fields"]["severity"], "err", "{hit}");
        assert_eq!(
            hit["message"],
            format!("rfc3164 disk almost full via {name}")
        );
    }
    // Fields are searchable by name, SD fields included.
    search_until(&server, "order@32473.id:\"A-17\"", total(3));
    search_until(&server, "msgid:PAY AND level:WARN", total(3));
    search_until(&server, "facility:daemon", total(3));
    let received = server
        .metric(
            "sextant_listener_requests_total",
            &[("listener", "syslog"), ("transport", "udp")],
        )
        .unwrap();
    assert_eq!(received, 2.0);
}

/// rsyslogd run unprivileged in the foreground, on its own work directory.
struct Rsyslog {
    child: Child,
    port: u16,
}

impl Rsyslog {
    /// Starts rsyslogd with `preamble` (modules, templates) and `rules` in
    /// its `fwd` ruleset, fed by imtcp on a free port.
    fn start(dir: &Path, preamble: &str, rules: &str) -> Self {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let port = free_port();
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{}\")\nmodule(load=\"imtcp\")\n{preamble}\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"fwd\")\nruleset(name=\"fwd\") {{\n{rules}\n}}\n",
                work.display()
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .spawn()
            .expect("rsyslogd (Debian's rsyslog; scripts/setup-test-env installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rsyslog_forwards_with_omfwd_and_omelasticsearch() {
    let server = Sextant::start();
    let syslog = server.addr("syslog", "tcp").port();
    let http = server.addr("http", "tcp").port();
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("es-errors.json");
    let rsyslog = Rsyslog::start(
        dir.path(),
        r#"
module(load="omelasticsearch")
template(name="es" type="list" option.jsonf="on") {
  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="severity" name="syslogseverity-text" format="jsonf")
  property(outname="facility" name="syslogfacility-text" format="jsonf")
  property(outname="service" name="programname" format="jsonf")
  property(outname="message" name="msg" format="jsonf")
}"#,
        &format!(
            r#"
  action(type="omfwd" target="127.0.0.1" port="{syslog}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{syslog}" protocol="udp" template="RSYSLOG_SyslogProtocol23Format")
  action(type="omfwd" target="127.0.0.1" port="{syslog}" protocol="tcp")
  action(type="omfwd" target="127.0.0.1" port="{syslog}" protocol="udp")
  action(type="omelasticsearch" server="127.0.0.1" serverport="{http}" searchIndex="rsyslog" bulkmode="on" template="es" errorFile="{errors}")"#,
            errors = errors.display()
        ),
    );
    let port = rsyslog.port.to_string();
    for i in 0..3 {
        logger(&[
            "-T",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "--rfc3164",
            "-p",
            "local3.warning",
            "-t",
            "billing",
            &format!("invoice {i} overdue"),
        ]);
    }
    // Five copies of each: two in RFC 5424 (TCP, UDP), two in rsyslog's
    // traditional format (TCP, UDP), one through _bulk.
    let all = search_until(&server, "invoice AND overdue", total(15));
    let host = hostname();
    for hit in all["hits"].as_array().unwrap() {
        assert_eq!(hit["service"], "billing", "{hit}");
        assert_eq!(hit["host"], host, "{hit}");
        assert_eq!(hit["level"], "WARN", "{hit}");
        assert_eq!(hit["fields"]["facility"], "local3", "{hit}");
        assert_eq!(hit["fields"]["severity"], "warning", "{hit}");
        // rsyslog's `msg` property keeps the space after `TAG:`, and
        // omelasticsearch sends it as it is.
        let message = hit["message"].as_str().unwrap().trim_start();
        assert!(
            message.starts_with("invoice ") && message.ends_with(" overdue"),
            "{hit}"
        );
    }
    for i in 0..3 {
        search_until(&server, &format!("\"invoice {i} overdue\""), total(5));
    }
    // The syslog listeners took four per message; _bulk the fifth.
    for transport in ["tcp", "udp"] {
        server.wait_for_metric(
            "sextant_listener_requests_total",
            &[("listener", "syslog"), ("transport", transport)],
            |v| v == 6.0,
        );
        let errors = server
            .metric(
                "sextant_listener_errors_total",
                &[("listener", "syslog"), ("transport", transport)],
            )
            .unwrap();
        assert_eq!(errors, 0.0, "{}", server.logs());
    }
    assert!(
        !errors.exists(),
        "omelasticsearch reported errors: {}",
        std::fs::read_to_string(&errors).unwrap_or_default()
    );
}

#[test]
fn syslog_over_tls_with_octet_counting() {
    let dir = tempfile::tempdir().unwrap();
    let (server, certs) = TestCertificates::serving(dir.path());
    let addr = server.addr("syslog", "tcp");
    let now = Command::new("date")
        .args(["-u", "+%b %e %H:%M:%S"])
        .output()
        .expect("date")
        .stdout;
    let sshd = format!(
        "<14>{} tls-host sshd[9]: session opened over TLS",
        String::from_utf8_lossy(&now).trim_end()
    );
    let frames: String = [
        "<165>1 2026-03-15T12:00:00.000003+01:00 tls-host vault 77 AUDIT [audit@1 user=\"ann\"] \u{feff}secret read over TLS",
        sshd.as_str(),
    ]
    .iter()
    .map(|m| format!("{} {m}", m.len()))
    .collect();
    let mut client = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            // Exit when stdin ends (-quiet alone waits for the server).
            "-no_ign_eof",
            "-verify_return_error",
            "-CAfile",
            certs.ca.to_str().unwrap(),
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(frames.as_bytes())
        .unwrap();
    let audit = {
        // The server reads as the frames arrive; the client is closed after.
        let hit = one_over_tls(&server, "\"secret read over TLS\"");
        drop(client.stdin.take());
        let _ = client.wait();
        hit
    };
    assert_eq!(audit["service"], "vault", "{audit}");
    assert_eq!(audit["host"], "tls-host", "{audit}");
    assert_eq!(audit["level"], "INFO", "{audit}");
    assert_eq!(audit["timestamp"], "2026-03-15T11:00:00.000003Z", "{audit}");
    assert_eq!(audit["fields"]["audit@1.user"], "ann", "{audit}");
    assert_eq!(audit["fields"]["facility"], "local4", "{audit}");
    assert_eq!(audit["fields"]["severity"], "notice", "{audit}");
    let sshd = one_over_tls(&server, "\"session opened over TLS\"");
    assert_eq!(sshd["service"], "sshd", "{sshd}");
    assert_eq!(sshd["fields"]["procid"], "9", "{sshd}");
    // A plain-text sender on the TLS port is refused and counted.
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    let _ = plain.write_all(b"<13>plain text on the TLS port\n");
    drop(plain);
    let errors = [("listener", "syslog"), ("transport", "tcp")];
    wait_for_metric_over_tls(&server, "sextant_listener_errors_total", &errors, 1.0);
}

/// The only hit of `query`, over the HTTP API (which speaks TLS here too).
fn one_over_tls(server: &Sextant, query: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let json = tls_get(
            server,
            &format!("/api/v1/logs/search?q={}&start=0", url_encode(query)),
        );
        if json["total"] == 1 {
            return json["hits"][0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{query}: {json}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for_metric_over_tls(server: &Sextant, name: &str, labels: &[(&str, &str)], want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let selector = format!(
        "{name}{{{}}}",
        labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    loop {
        let page = tls_text(server, "/metrics");
        let value = page.lines().find_map(|l| {
            l.strip_prefix(&selector)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        });
        if value == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{selector} is {value:?}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tls_text(server: &Sextant, path: &str) -> String {
    // `openssl s_client` as a one-shot HTTPS client: the test CA is not in
    // the harness's HTTP client.
    let addr = server.addr("http", "tcp");
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    write!(
        child.stdin.as_mut().unwrap(),
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(text)
}

fn tls_get(server: &Sextant, path: &str) -> Value {
    let body = tls_text(server, path);
    // The body may be chunked: take the JSON object inside.
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |i| i + 1);
    serde_json::from_str(&body[start..end]).unwrap_or(Value::Null)
}

#[test]
fn allowed_sources_keep_out_other_networks_on_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "logs:\n  syslog:\n    allowed_sources: [10.0.0.0/8, '::1']\n",
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let port = server.addr("syslog", "tcp").port().to_string();
    logger(&["-d", "-n", "127.0.0.1", "-P", &port, "outsider over udp"]);
    // Over TCP the connection is closed on accept: a raw sender, whose
    // write may or may not fail.
    if let Ok(mut tcp) = std::net::TcpStream::connect(server.addr("syslog", "tcp")) {
        let _ = tcp.write_all(b"<13>outsider over tcp\n");
    }
    for transport in ["udp", "tcp"] {
        server.wait_for_metric(
            "sextant_listener_dropped_total",
            &[("listener", "syslog"), ("transport", transport)],
            |v| v == 1.0,
        );
    }
    assert!(
        server
            .logs()
            .contains("syslog from a source outside logs.syslog.allowed_sources dropped"),
        "{}",
        server.logs()
    );
    // Still nothing stored from 127.0.0.1 (a canary over HTTP shows the index is live).
    let canary = server.post_path(
        "/api/v1/logs",
        "application/x-ndjson",
        b"{\"message\":\"canary outsider\"}\n",
    );
    assert!(canary.status < 300, "{}", canary.body);
    search_until(&server, "outsider", total(1));
}
