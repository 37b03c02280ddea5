//! The end-to-end sandbox: starts the real `sextant` binary on ephemeral ports
//! with a temporary data directory, waits for `/-/ready`, and stops it.
//!
//! Tests built on it speak the real protocols, with real client libraries
//! where they exist (the Python venv that `scripts/setup-test-env` installs),
//! and query back what they sent. Nothing here mocks Sextant.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_ingest::remote_write::proto::TimeSeries;

/// How long a server may take to bind its listeners and become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The `sextant` binary under test: `$SEXTANT_BIN`, else the one cargo built
/// next to this test executable (`target/<profile>/sextant`).
pub fn sextant_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SEXTANT_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> -> target/<profile>/sextant
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .join("sextant");
    assert!(
        bin.is_file(),
        "{} not found: build it first (`cargo build --bin sextant`) or set SEXTANT_BIN",
        bin.display()
    );
    bin
}

/// Runs `sextant` with `args` to completion (for `check-config`, `--version`, ...).
pub fn run_sextant(args: &[&str]) -> Output {
    Command::new(sextant_bin())
        .args(args)
        .output()
        .expect("run sextant")
}

/// How to start a server.
#[derive(Debug, Default)]
pub struct SextantBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    ports_from_flags: bool,
}

impl SextantBuilder {
    /// Adds command-line arguments after `serve`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Uses this data directory instead of a fresh temporary one.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Leaves listener addresses and the data dir to the caller's flags, env or config.
    pub fn addresses_from_caller(mut self) -> Self {
        self.ports_from_flags = true;
        self
    }

    /// Spawns the server and waits until it is ready.
    pub fn start(self) -> Sextant {
        let scratch = tempfile::tempdir().expect("temp dir");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| scratch.path().join("data"));
        let mut command = Command::new(sextant_bin());
        command.arg("serve");
        if !self.ports_from_flags {
            command.arg("--data-dir").arg(&data_dir);
            for listener in [
                "--http",
                "--otlp-grpc",
                "--otlp-http",
                "--statsd",
                "--logstash",
                "--syslog",
                "--forward",
            ] {
                command.args([listener, "127.0.0.1:0"]);
            }
        }
        command
            .args(["--log-format", "json"])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn sextant");
        let log = Arc::new(ServerLog::default());
        for pipe in [
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    log.push(line);
                }
            });
        }
        let mut server = Sextant {
            child: Some(child),
            scratch: Some(scratch),
            data_dir,
            log,
            addrs: HashMap::new(),
            http: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        };
        server.wait_until_ready();
        server
    }
}

/// Lines a server wrote, shared with the threads that read its pipes.
#[derive(Debug, Default)]
struct ServerLog {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl ServerLog {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.grew.notify_all();
    }
}

/// A running server. Dropping it kills the process.
#[derive(Debug)]
pub struct Sextant {
    child: Option<Child>,
    scratch: Option<tempfile::TempDir>,
    /// The data directory it runs on.
    pub data_dir: PathBuf,
    log: Arc<ServerLog>,
    /// `listener/transport` -> bound address, from its "listening" log lines.
    addrs: HashMap<String, SocketAddr>,
    http: ureq::Agent,
}

/// An HTTP answer: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

impl Sextant {
    /// A server on ephemeral ports with a fresh data directory.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Options for starting a server.
    pub fn builder() -> SextantBuilder {
        SextantBuilder::default()
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let wanted = [
            "http/tcp",
            "otlp_grpc/tcp",
            "otlp_http/tcp",
            "statsd/tcp",
            "statsd/udp",
            "logstash/tcp",
            "logstash/udp",
            "syslog/tcp",
            "syslog/udp",
            "forward/tcp",
            "forward/udp",
        ];
        loop {
            self.addrs = self.bound_addresses();
            if wanted.iter().all(|w| self.addrs.contains_key(*w)) {
                break;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "sextant exited with {status} before binding:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sextant did not log all listeners within {START_TIMEOUT:?}:\n{}",
                self.logs()
            );
            let lines = self.log.lines.lock().unwrap();
            let _ = self
                .log
                .grew
                .wait_timeout(lines, Duration::from_millis(100))
                .unwrap();
        }
        // Over TLS the plain client here cannot ask: the log says when ready.
        let tls = self
            .logs()
            .lines()
            .any(|l| l.contains("\"listener\":\"http\"") && l.contains("\"tls\":true"));
        while tls && !self.logs().contains("\"message\":\"ready\"") {
            assert!(
                Instant::now() < deadline,
                "sextant did not log ready:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        while !tls && self.get("/-/ready").status != 200 {
            assert!(
                Instant::now() < deadline,
                "/-/ready did not turn 200:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn bound_addresses(&self) -> HashMap<String, SocketAddr> {
        self.log_events()
            .into_iter()
            .filter(|event| event["message"] == "listening")
            .filter_map(|event| {
                let key = format!(
                    "{}/{}",
                    event["listener"].as_str()?,
                    event["transport"].as_str()?
                );
                Some((key, event["addr"].as_str()?.parse().ok()?))
            })
            .collect()
    }

    /// Every JSON log line the server has written so far.
    pub fn log_events(&self) -> Vec<Value> {
        self.log
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Everything the server has written so far, one line each.
    pub fn logs(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// The address a listener bound, e.g. `addr("statsd", "udp")`.
    pub fn addr(&self, listener: &str, transport: &str) -> SocketAddr {
        self.addrs[&format!("{listener}/{transport}")]
    }

    /// Searches logs (`/api/v1/logs/search?q=<query>&limit=1000` and
    /// `params`, e.g. `&start=0`) until `check` accepts the answer; panics
    /// with the last answer and the server's log after 20 s.
    pub fn search_until(&self, query: &str, params: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reply = self.get(&format!(
                "/api/v1/logs/search?q={}&limit=1000{params}",
                url_encode(query)
            ));
            assert_eq!(reply.status, 200, "{}", reply.body);
            let json = reply.json();
            if check(&json) {
                return json;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: {json}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls an instant query until `check` accepts its result (the
    /// `data.result` JSON array); panics with the last result after 20 s.
    pub fn wait_for_query(&self, query: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let json = self
                .get(&format!("/api/v1/query?query={}", url_encode(query)))
                .json();
            let result = json["data"]["result"].clone();
            if check(&result) {
                return result;
            }
            assert!(Instant::now() < deadline, "{query} never matched: {json}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GETs `path` until `check` accepts its JSON (a body that is not JSON
    /// counts as null); panics with the last answer after 30 s.
    pub fn get_until(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.get_until_with(path, &[], check)
    }

    /// [`Sextant::get_until`] with request headers (a token, say).
    pub fn get_until_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("{}{path}", self.base_url());
            let mut request = self.http.get(&url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let reply = self.reply(request.call());
            let json: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            if check(&json) {
                return json;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} {}",
                reply.status,
                reply.body
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `http://127.0.0.1:PORT` of the HTTP API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr("http", "tcp"))
    }

    /// GETs a path on the HTTP API.
    pub fn get(&self, path: &str) -> Reply {
        let url = format!("{}{path}", self.base_url());
        self.reply(self.http.get(&url).call())
    }

    /// POSTs a gzip-compressed body (`Content-Encoding: gzip`) to a path of the HTTP API.
    pub fn post_gzip(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(body).expect("gzip");
        let compressed = encoder.finish().expect("gzip");
        self.reply(
            self.http
                .post(format!("{}{path}", self.base_url()))
                .header("content-type", content_type)
                .header("content-encoding", "gzip")
                .send(&compressed[..]),
        )
    }

    /// POSTs a body to a URL.
    pub fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Reply {
        self.reply(
            self.http
                .post(url)
                .header("content-type", content_type)
                .send(body),
        )
    }

    fn reply(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response =
            result.unwrap_or_else(|e| panic!("HTTP request failed: {e}\n{}", self.logs()));
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Reply {
            status: response.status().as_u16(),
            content_type,
            body: response
                .body_mut()
                .with_config()
                .limit(1 << 30)
                .read_to_string()
                .expect("read body"),
        }
    }

    /// The value of one sample on `/metrics`, by name and exact labels.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let page = self.get("/metrics").body;
        let selector = if labels.is_empty() {
            name.to_owned()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        page.lines()
            .find_map(|line| line.strip_prefix(&selector)?.strip_prefix(' '))
            .map(|value| value.parse().expect("sample value"))
    }

    /// Polls a `/metrics` sample until `pred` holds; panics with the page after `timeout`.
    pub fn wait_for_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        pred: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(value) = self.metric(name, labels).filter(|v| pred(*v)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} never reached the expected value:\n{}",
                self.get("/metrics").body
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (e.g. "TERM") and waits for the exit, at most `limit`.
    /// Returns the exit status and how long the exit took.
    pub fn stop_with(mut self, signal: &str, limit: Duration) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let sent = Instant::now();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return (status, sent.elapsed());
            }
            if sent.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "sextant still running {limit:?} after SIG{signal}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A data directory that outlived its server (kept for a restart).
#[derive(Debug)]
pub struct KeptData {
    _scratch: Option<tempfile::TempDir>,
    /// The data directory.
    pub data_dir: PathBuf,
}

impl Sextant {
    /// Kills the server with SIGKILL, as a crash would, keeping its data directory.
    pub fn kill_hard(mut self) -> KeptData {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        KeptData {
            _scratch: self.scratch.take(),
            data_dir: self.data_dir.clone(),
        }
    }

    /// Starts a server on the data directory a killed one left.
    pub fn restart_on(kept: &KeptData) -> Self {
        Self::builder().data_dir(&kept.data_dir).start()
    }

    /// A DELETE to the HTTP API.
    pub fn delete(&self, path: &str) -> Reply {
        let url = format!("{}{path}", self.base_url());
        self.reply(self.http.delete(&url).call())
    }

    /// Remote-writes `series` (snappy protobuf), whatever the answer.
    pub fn remote_write(&self, series: Vec<TimeSeries>) -> Reply {
        let request = sextant_ingest::remote_write::proto::WriteRequest {
            timeseries: series,
            metadata: vec![],
        };
        self.post_path(
            "/api/v1/write",
            "application/x-protobuf",
            &sextant_ingest::remote_write::encode(&request),
        )
    }

    /// A POST to the HTTP API with a body.
    pub fn post_path(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        let url = format!("{}{path}", self.base_url());
        self.post(&url, content_type, body)
    }

    /// Every sample of the series matching `selector`, via `/api/v1/export`:
    /// labels (as `name{a="b"}` text) -> (timestamps, values).
    pub fn export(&self, selector: &str) -> HashMap<String, Vec<(i64, String)>> {
        let url = format!("/api/v1/export?match[]={}", url_encode(selector));
        let reply = self.get(&url);
        assert_eq!(reply.status, 200, "{}", reply.body);
        parse_export(&reply.body)
    }
}

/// An `/api/v1/export` answer's lines as [`Sextant::export`] returns them.
pub fn parse_export(body: &str) -> HashMap<String, Vec<(i64, String)>> {
    body.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("export line is JSON");
            let metric = v["metric"].as_object().expect("metric");
            let name = metric.get("__name__").and_then(Value::as_str).unwrap_or("");
            let labels: Vec<String> = metric
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let key = format!("{name}{{{}}}", labels.join(","));
            let points = v["timestamps"]
                .as_array()
                .expect("timestamps")
                .iter()
                .zip(v["values"].as_array().expect("values"))
                .map(|(t, v)| {
                    (
                        t.as_i64().expect("ms"),
                        v.as_str().expect("value").to_owned(),
                    )
                })
                .collect();
            (key, points)
        })
        .collect()
}

/// One remote-write series: its labels and `(timestamp ms, value)` samples.
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    use sextant_ingest::remote_write::proto;
    TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| proto::Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| proto::Sample { value, timestamp })
            .collect(),
        exemplars: vec![],
        histograms: vec![],
    }
}

/// Percent-encodes a query parameter value.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A free TCP port on loopback (released before use, so a rare race is possible).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Eight distinct free ports (each released at once, so they may be taken
/// again before use).
fn distinct_free_ports() -> [u16; 8] {
    let mut ports = [0; 8];
    for i in 0..ports.len() {
        ports[i] = loop {
            let port = free_port();
            if !ports[..i].contains(&port) {
                break port;
            }
        };
    }
    ports
}

/// Debian's Prometheus 2.42, started on loopback with a given config, as a peer.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Prometheus {
    /// Starts `/usr/bin/prometheus` with `config` (YAML) and extra flags; waits for ready.
    pub fn start(config: &str, extra_flags: &[&str]) -> Self {
        Self::start_with_backfill(config, extra_flags, None)
    }

    /// As [`Prometheus::start`], with `openmetrics` (OpenMetrics text ending in
    /// `# EOF`) first turned into blocks by `promtool tsdb create-blocks-from`.
    pub fn start_with_backfill(
        config: &str,
        extra_flags: &[&str],
        openmetrics: Option<&str>,
    ) -> Self {
        let binary = Path::new("/usr/bin/prometheus");
        assert!(
            binary.is_file(),
            "Debian's prometheus is not installed: run scripts/setup-test-env"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        if let Some(text) = openmetrics {
            let input = dir.path().join("backfill.om");
            std::fs::write(&input, text).expect("write backfill.om");
            let out = Command::new("/usr/bin/promtool")
                .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
                .arg(&input)
                .arg(dir.path().join("data"))
                .output()
                .expect("run promtool");
            assert!(
                out.status.success(),
                "promtool backfill failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let peer = Self {
            child,
            _dir: dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = agent
                .get(&format!("{}/-/ready", peer.url))
                .call()
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if ready {
                return peer;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                peer.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What Prometheus logged.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GETs an API path and returns the JSON body.
    pub fn get_json(&self, path: &str) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut reply = agent
            .get(&format!("{}{path}", self.url))
            .call()
            .expect("prometheus request");
        let text = reply.body_mut().read_to_string().expect("body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sextant {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A helper process (an exporter, a peer) killed when dropped.
#[derive(Debug)]
pub struct Helper {
    child: Child,
    /// What it printed on its first stdout line (e.g. the port it bound).
    pub first_line: String,
}

impl Helper {
    /// Spawns `command` and waits for its first stdout line.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn helper");
        let mut first_line = String::new();
        let stdout = child.stdout.take().expect("helper stdout");
        BufReader::new(stdout)
            .read_line(&mut first_line)
            .expect("helper's first line");
        Self {
            child,
            first_line: first_line.trim().to_owned(),
        }
    }

    /// A Python script in the test venv that prints one line once it is serving.
    pub fn python(script: &str, args: &[&str]) -> Self {
        let mut command = Command::new(python());
        command.arg("-c").arg(script).args(args);
        Self::spawn(command)
    }

    /// Debian's `prometheus-node-exporter` on a free loopback port; returns it and `host:port`.
    pub fn node_exporter() -> (Self, String) {
        let binary = Path::new("/usr/bin/prometheus-node-exporter");
        assert!(
            binary.is_file(),
            "Debian's prometheus-node-exporter is not installed: run scripts/setup-test-env"
        );
        let address = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary)
            .arg(format!("--web.listen-address={address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus-node-exporter");
        let deadline = Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "node exporter never listened on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let helper = Self {
            child,
            first_line: address.clone(),
        };
        (helper, address)
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$var` when set, else what `scripts/<script>` prints (it installs what is
/// missing, idempotently).
fn from_env_or_setup(var: &str, script: &str) -> PathBuf {
    if let Some(value) = std::env::var_os(var) {
        return value.into();
    }
    run_setup(script)
}

/// Runs `scripts/<script>` (which installs what is missing) and returns
/// what it printed.
fn run_setup(script: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(script);
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
}

/// The Python interpreter of the test venv: `$SEXTANT_TEST_PYTHON`, else the
/// one `scripts/setup-test-env` reports (installing it when missing).
pub fn python() -> PathBuf {
    from_env_or_setup("SEXTANT_TEST_PYTHON", "setup-test-env")
}

/// The directory whose `node_modules/` holds playwright-core for the browser
/// tests: `$SEXTANT_TEST_BROWSER_ENV`, else the one
/// `scripts/setup-browser-env` reports (installing it and Debian's chromium
/// when missing).
pub fn browser_env() -> PathBuf {
    from_env_or_setup("SEXTANT_TEST_BROWSER_ENV", "setup-browser-env")
}

/// Runs a Python script in the test venv with `args`; panics with its output on failure.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Debian's `amtool` (package `prometheus-alertmanager`) from `PATH`;
/// when it is missing, `scripts/setup-test-env` is run to install it.
pub fn amtool() -> PathBuf {
    let find = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("amtool"))
                .find(|p| p.is_file())
        })
    };
    if let Some(found) = find() {
        return found;
    }
    run_setup("setup-test-env");
    find().expect(
        "amtool is not on PATH: scripts/setup-test-env installs Debian's prometheus-alertmanager",
    )
}

/// Runs `openssl` with `args`; panics with its error output if it fails.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (scripts/setup-test-env installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Certificates made with `openssl` for TLS tests: a CA (`test-ca.pem`,
/// `test-ca.key`), and a server certificate it signed for `127.0.0.1`,
/// `localhost` and any further DNS names asked for.
#[derive(Debug)]
pub struct TestCertificates {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCertificates {
    /// A server with `server.tls` set to fresh certificates written into
    /// `dir`, and those certificates.
    pub fn serving(dir: &Path) -> (Sextant, Self) {
        let certs = Self::create(dir, &[]);
        let config = dir.join("sextant.yaml");
        std::fs::write(
            &config,
            format!(
                "server:\n  tls:\n    cert_file: {}\n    key_file: {}\n",
                certs.cert.display(),
                certs.key.display()
            ),
        )
        .unwrap();
        let server = Sextant::builder()
            .args(["--config", config.to_str().unwrap()])
            .start();
        (server, certs)
    }

    /// Writes the certificates into `dir`.
    pub fn create(dir: &Path, dns_names: &[&str]) -> Self {
        let path = |name: &str| dir.join(name);
        let text = |p: &Path| p.to_str().expect("path").to_owned();
        let (ca, ca_key) = (path("test-ca.pem"), path("test-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Sextant test CA",
            "-keyout",
            &text(&ca_key),
            "-out",
            &text(&ca),
        ]);
        let names: String = dns_names.iter().map(|n| format!(",DNS:{n}")).collect();
        let mut certs = Self {
            ca,
            ca_key,
            cert: PathBuf::new(),
            key: PathBuf::new(),
        };
        (certs.cert, certs.key) = certs.issue(
            dir,
            "server",
            "/CN=localhost",
            &format!(
                "subjectAltName=IP:127.0.0.1,DNS:localhost{names}\nbasicConstraints=CA:FALSE\n"
            ),
        );
        certs
    }

    /// A certificate for `subject` with the `extensions` (openssl's extfile
    /// syntax) signed by the CA, as `dir/<name>.pem` and its key `dir/<name>.key`.
    pub fn issue(
        &self,
        dir: &Path,
        name: &str,
        subject: &str,
        extensions: &str,
    ) -> (PathBuf, PathBuf) {
        let path = |ext: &str| {
            dir.join(format!("{name}.{ext}"))
                .to_str()
                .expect("path")
                .to_owned()
        };
        std::fs::write(path("ext"), extensions).expect("write the extension file");
        let (cert, key, csr) = (path("pem"), path("key"), path("csr"));
        openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &csr,
        ]);
        let (ca, ca_key) = (
            self.ca.to_str().expect("path"),
            self.ca_key.to_str().expect("path"),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &path("ext"),
            "-out",
            &cert,
        ]);
        (cert.into(), key.into())
    }
}

/// A webhook receiver: records every JSON body POSTed to it, by path.
#[derive(Debug)]
pub struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Receiver {
    /// A receiver on a free loopback port.
    pub fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// A receiver on `listener` (a port chosen, or kept, by the caller).
    pub fn on(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                if let Ok(json) = serde_json::from_slice(&body) {
                    seen.lock().unwrap().push((path, json));
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { port, bodies }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits (up to 30 s) for a body at `path` that `check` accepts; returns it.
    pub fn wait_for(&self, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(path, what, 30, check)
    }

    /// Waits up to `seconds` for a body at `path` that `check` accepts; returns it.
    pub fn wait_for_within(
        &self,
        path: &str,
        what: &str,
        seconds: u64,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some((_, body)) = self
                .bodies
                .lock()
                .unwrap()
                .iter()
                .find(|(p, b)| p == path && check(b))
            {
                return body.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} at {path}; got {:?}",
                self.bodies.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many bodies at `path` `check` accepts.
    pub fn count(&self, path: &str, check: impl Fn(&Value) -> bool) -> usize {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, b)| p == path && check(b))
            .count()
    }
}

/// An HTTP answer whatever its status: status, body and the headers asked for.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: ureq::http::HeaderMap,
}

/// Sends `method url` with `headers` and `body`, and returns the answer
/// whatever its status (a token test wants its 401s and 403s).
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = agent
        .run(builder.body(body.to_owned()).expect("a request"))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// The order of [`SeaweedFs`]'s ports: master, volume, filer and S3 servers,
/// each with an HTTP and a gRPC port.
const WEED_MASTER: usize = 0;
const WEED_VOLUME: usize = 2;
const WEED_FILER: usize = 4;
const WEED_S3: usize = 6;

/// How long SeaweedFS may take, after a start or restart, to take a write:
/// about 3 s on an idle machine; the margin is for a busy one.
const WEED_START_TIMEOUT: Duration = Duration::from_secs(60);

/// SeaweedFS 4.48 (`weed server`, which `scripts/setup-test-env` installs in
/// the test venv from `tests/python/seaweedfs.txt`) as the S3 server the
/// object-storage tests run Sextant against, with bucket [`SeaweedFs::bucket`]
/// created.
///
/// Everything listens on loopback ports from [`free_port`] (weed cannot bind
/// port 0, and its gRPC ports default to HTTP + 10000, so each is passed);
/// telemetry, which phones home, and the Iceberg and Lance listeners, which
/// take fixed ports, are off. `-master.electionTimeout=1s` and
/// `-master.resumeState=false` bring a restart on the same data to writes in
/// ~3 s instead of 13–17 s. It is stopped with SIGKILL: SIGTERM's graceful
/// gRPC stop takes over 7 s. Dropping it kills it and removes the data and
/// the `/tmp/seaweedfs-*-grpc-<port>.sock` files weed leaves.
///
/// [`SeaweedFs::list`], [`SeaweedFs::put`] and friends go through boto3
/// (`tests/python/s3.py`), a client independent of Sextant's.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ports: [u16; 8],
    python: PathBuf,
}

impl SeaweedFs {
    /// Starts SeaweedFS on fresh ports and data, waits until S3 takes a
    /// write, and creates the bucket.
    pub fn start() -> Self {
        let python = python();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("data")).expect("create the data dir");
        let identities = serde_json::json!({"identities": [{
            "name": "sextant",
            "credentials": [{"accessKey": Self::access_key(), "secretKey": Self::secret_key()}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]});
        std::fs::write(dir.path().join("s3.json"), identities.to_string()).expect("write s3.json");
        let mut weed = Self {
            child: None,
            dir,
            ports: [0; 8],
            python,
        };
        // free_port releases each port at once, so another process (a test
        // running beside this one) may bind one first: then weed exits, and
        // it starts again on other ports.
        for attempt in 1.. {
            weed.ports = distinct_free_ports();
            match weed.try_spawn_and_wait() {
                Ok(()) => break,
                Err(logs) if attempt < 3 && logs.contains("address already in use") => {
                    let data = weed.dir.path().join("data");
                    std::fs::remove_dir_all(&data).expect("clear the data dir");
                    std::fs::create_dir(&data).expect("create the data dir");
                }
                Err(logs) => panic!("{logs}"),
            }
        }
        weed.s3(&["create-bucket"]);
        weed
    }

    /// The access key of the one identity, an admin.
    pub const fn access_key() -> &'static str {
        "sextant-test"
    }

    /// The secret key of the one identity.
    pub const fn secret_key() -> &'static str {
        "sextant-test-secret"
    }

    /// The bucket [`SeaweedFs::start`] creates.
    pub const fn bucket() -> &'static str {
        "sextant"
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT` (path-style, region `us-east-1`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[WEED_S3])
    }

    /// The keys under `prefix` in the bucket, sorted by bytes (SeaweedFS
    /// itself lists in directory-tree order: `b1/x` before `b1.json`).
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.s3(&["list", prefix])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Stores `body` as `key` in the bucket.
    pub fn put(&self, key: &str, body: &[u8]) {
        self.s3_with_stdin(&["put", key], body);
    }

    /// The bytes of `key` in the bucket; panics if it is missing.
    pub fn get(&self, key: &str) -> Vec<u8> {
        self.s3_with_stdin(&["get", key], b"")
    }

    /// Deletes `key` from the bucket.
    pub fn delete(&self, key: &str) {
        self.s3(&["delete", key]);
    }

    /// Kills SeaweedFS with SIGKILL, as a crash or an outage would, keeping
    /// its data and ports for [`SeaweedFs::restart`]. Does nothing if stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (stopping it first if running) on the same ports and
    /// data, and waits until S3 takes a write.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait();
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    /// The last 100 lines weed logged (over all its starts), for failure messages.
    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(100)..].join("\n")
    }

    fn spawn_and_wait(&mut self) {
        if let Err(logs) = self.try_spawn_and_wait() {
            panic!("{logs}");
        }
    }

    /// Starts weed and waits until S3 takes a write; what it logged, if it
    /// exited before S3 listened.
    fn try_spawn_and_wait(&mut self) -> Result<(), String> {
        let weed = self.python.with_file_name("weed");
        assert!(
            weed.is_file(),
            "{} not found: run scripts/setup-test-env",
            weed.display()
        );
        let dir = self.dir.path();
        let path = |name: &str| dir.join(name).to_str().expect("utf-8 path").to_owned();
        let p = self.ports;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("weed.log"))
            .expect("open weed.log");
        let child = Command::new(&weed)
            // A global flag: without it glog also writes weed.* files to /tmp.
            .arg("-logtostderr")
            .arg("server")
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-dir={}", path("data")))
            .arg(format!("-master.port={}", p[WEED_MASTER]))
            .arg(format!("-master.port.grpc={}", p[WEED_MASTER + 1]))
            .args([
                "-master.volumeSizeLimitMB=64",
                "-master.telemetry=false",
                "-master.electionTimeout=1s",
                "-master.resumeState=false",
            ])
            .arg(format!("-volume.port={}", p[WEED_VOLUME]))
            .arg(format!("-volume.port.grpc={}", p[WEED_VOLUME + 1]))
            .args(["-volume.max=16", "-volume.preStopSeconds=0", "-filer"])
            .arg(format!("-filer.port={}", p[WEED_FILER]))
            .arg(format!("-filer.port.grpc={}", p[WEED_FILER + 1]))
            .arg(format!("-filer.localSocket={}", path("filer.sock")))
            .arg("-s3")
            .arg(format!("-s3.port={}", p[WEED_S3]))
            .arg(format!("-s3.port.grpc={}", p[WEED_S3 + 1]))
            .arg(format!("-s3.config={}", path("s3.json")))
            .arg(format!("-s3.localSocket={}", path("s3.sock")))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone weed.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", weed.display()));
        self.child = Some(child);
        // Cheap polls, watching the process, until S3 listens; then boto3
        // (slow to import) waits for a write to go through.
        let deadline = Instant::now() + WEED_START_TIMEOUT;
        let s3 = SocketAddr::from(([127, 0, 0, 1], p[WEED_S3]));
        while std::net::TcpStream::connect_timeout(&s3, Duration::from_secs(1)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                return Err(format!(
                    "weed exited with {status} before S3 listened:\n{}",
                    self.logs()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS S3 never listened on {s3}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let left = deadline.saturating_duration_since(Instant::now()).as_secs() + 1;
        let out = self.s3_output(&["wait", &left.to_string()], b"");
        self.assert_running("while waiting for S3");
        assert!(
            out.status.success(),
            "SeaweedFS S3 never took a write: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        Ok(())
    }

    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("weed exited with {status} {when}:\n{}", self.logs());
        }
    }

    /// Runs `tests/python/s3.py ENDPOINT args...`; panics with its stderr on failure.
    fn s3(&self, args: &[&str]) -> String {
        String::from_utf8(self.s3_with_stdin(args, b"")).expect("utf-8 output")
    }

    fn s3_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.s3_output(args, stdin);
        assert!(
            out.status.success(),
            "s3.py {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn s3_output(&self, args: &[&str], stdin: &[u8]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/s3.py");
        let mut child = Command::new(&self.python)
            .arg(script)
            .arg(self.endpoint())
            .args(args)
            .env("S3_BUCKET", Self::bucket())
            .env("S3_ACCESS_KEY", Self::access_key())
            .env("S3_SECRET_KEY", Self::secret_key())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run s3.py");
        let mut pipe = child.stdin.take().expect("s3.py stdin");
        pipe.write_all(stdin).expect("write s3.py's stdin");
        drop(pipe);
        child.wait_with_output().expect("wait for s3.py")
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
        for (server, grpc) in [
            ("master", WEED_MASTER + 1),
            ("volume", WEED_VOLUME + 1),
            ("filer", WEED_FILER + 1),
            ("s3", WEED_S3 + 1),
        ] {
            let socket = format!("/tmp/seaweedfs-{server}-grpc-{}.sock", self.ports[grpc]);
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// A NATS cluster with JetStream on loopback: `nats-server` from the test
/// venv (`tests/python/nats.txt`), one process per node, each with its own
/// store directory, routed to the others. Dropping it kills every node.
#[derive(Debug)]
pub struct NatsCluster {
    dir: tempfile::TempDir,
    /// Per node: client, route and monitoring ports.
    ports: Vec<[u16; 3]>,
    children: Vec<Option<Child>>,
}

const NATS_START_TIMEOUT: Duration = Duration::from_secs(60);

impl NatsCluster {
    /// Starts `nodes` servers and waits until JetStream is ready on each.
    pub fn start(nodes: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut taken = Vec::new();
        let mut port = || loop {
            let port = free_port();
            if !taken.contains(&port) {
                taken.push(port);
                break port;
            }
        };
        let ports: Vec<[u16; 3]> = (0..nodes).map(|_| [port(), port(), port()]).collect();
        let mut cluster = Self {
            dir,
            ports,
            children: (0..nodes).map(|_| None).collect(),
        };
        for node in 0..nodes {
            cluster.spawn(node);
        }
        for node in 0..nodes {
            cluster.wait_ready(node);
        }
        cluster.wait_meta_current();
        cluster
    }

    /// Polls `/jsz` until the JetStream meta group has a leader and every
    /// other running node is current with it, so streams can be placed.
    fn wait_meta_current(&self) {
        let running: Vec<usize> = (0..self.children.len())
            .filter(|n| self.children[*n].is_some())
            .collect();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let deadline = Instant::now() + NATS_START_TIMEOUT;
        loop {
            let metas: Vec<Value> = running
                .iter()
                .filter_map(|node| {
                    let url = format!("http://127.0.0.1:{}/jsz", self.ports[*node][2]);
                    let mut answer = agent.get(&url).call().ok()?;
                    let jsz: Value = answer.body_mut().read_json().ok()?;
                    Some(jsz["meta_cluster"].clone())
                })
                .collect();
            let leader = metas
                .first()
                .and_then(|m| m["leader"].as_str())
                .unwrap_or("");
            // Every node lists the others; only the leader tracks whether
            // each of them is current.
            let formed = metas.len() == running.len()
                && !leader.is_empty()
                && metas.iter().all(|m| m["leader"] == leader)
                && metas.iter().any(|m| {
                    m["replicas"].as_array().is_some_and(|peers| {
                        peers.iter().all(|p| p["name"] != leader)
                            && peers.iter().filter(|p| p["current"] == true).count() + 1
                                >= running.len()
                    })
                });
            if formed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the NATS cluster never elected a current JetStream leader:\n{}",
                self.logs(running[0])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Client URLs of the nodes, `nats://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{}", p[0]))
            .collect()
    }

    /// Kills node `node` with SIGKILL (its store stays for [`NatsCluster::restart`]).
    pub fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.children[node].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `node` again on its ports and store, and waits for it.
    pub fn restart(&mut self, node: usize) {
        self.kill(node);
        self.spawn(node);
        self.wait_ready(node);
        self.wait_meta_current();
    }

    /// The last 50 lines node `node` logged.
    pub fn logs(&self, node: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(format!("n{node}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(50)..].join("\n")
    }

    fn spawn(&mut self, node: usize) {
        let bin = python().with_file_name("nats-server");
        assert!(
            bin.is_file(),
            "{} not found: run scripts/setup-test-env",
            bin.display()
        );
        let dir = self.dir.path();
        let [client, route, monitor] = self.ports[node];
        let routes: Vec<String> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != node)
            .map(|(_, p)| format!("\"nats-route://127.0.0.1:{}\"", p[1]))
            .collect();
        let config = format!(
            r#"server_name: n{node}
listen: 127.0.0.1:{client}
http: 127.0.0.1:{monitor}
jetstream {{
  store_dir: "{store}"
  max_memory_store: 256MB
  max_file_store: 2GB
}}
cluster {{
  name: sextant-test
  listen: 127.0.0.1:{route}
  routes: [{routes}]
}}
"#,
            store = dir.join(format!("n{node}-store")).display(),
            routes = routes.join(", ")
        );
        let config_path = dir.join(format!("n{node}.conf"));
        std::fs::write(&config_path, config).expect("write the NATS config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("n{node}.log")))
            .expect("open the NATS log");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the NATS log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        self.children[node] = Some(child);
    }

    /// Polls the node's `/healthz` until JetStream answers there.
    fn wait_ready(&mut self, node: usize) {
        let url = format!("http://127.0.0.1:{}/healthz", self.ports[node][2]);
        let deadline = Instant::now() + NATS_START_TIMEOUT;
        loop {
            if let Some(child) = self.children[node].as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "nats-server n{node} exited with {status}:\n{}",
                    self.logs(node)
                );
            }
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .into();
            if agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "NATS n{node} never became ready:\n{}",
                self.logs(node)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in 0..self.children.len() {
            self.kill(node);
        }
    }
}
