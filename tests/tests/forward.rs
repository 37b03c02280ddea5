//! The Fluentd forward protocol as its clients speak it: Fluentd's own
//! Python client (fluent-logger) in Message mode with integer and
//! nanosecond times, hand-built PackedForward and CompressedPackedForward
//! frames with `chunk` acks, the shared-key handshake, TLS and the UDP
//! heartbeat; what was sent is then found through the log search API.

use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_tests::{Sextant, TestCertificates, run_python};

/// Searches until `check` accepts the answer ([`Sextant::search_until`]).
fn search_until(server: &Sextant, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    server.search_until(query, "&start=0", check)
}

fn total(n: u64) -> impl Fn(&Value) -> bool {
    move |json| json["total"] == n
}

/// `sextant_listener_errors_total` of forward over TCP once it reaches
/// `expected` (a connection is counted as it closes), and not more.
fn assert_errors(server: &Sextant, expected: f64) {
    let labels = [("listener", "forward"), ("transport", "tcp")];
    server.wait_for_metric("sextant_listener_errors_total", &labels, |v| v >= expected);
    std::thread::sleep(Duration::from_millis(200));
    let errors = server.metric("sextant_listener_errors_total", &labels);
    assert_eq!(errors, Some(expected));
}

#[test]
fn fluent_logger_events_are_found_by_tag_with_their_fields() {
    let server = Sextant::start();
    let addr = server.addr("forward", "tcp");
    let out = run_python(
        r#"
import sys, time
from fluent import sender
host, port = sys.argv[1], int(sys.argv[2])
# As Docker's fluentd log driver sends a container's lines.
plain = sender.FluentSender("docker", host=host, port=port)
for i in range(3):
    assert plain.emit("checkout", {"container_id": "4f1c", "container_name": "/checkout-1",
                                   "source": "stdout", "log": "order %d placed" % i,
                                   "request_id": "req-%d" % i, "items": i + 1}), plain.last_error
plain.close()
# EventTime (extension type 0) with nanoseconds.
nano = sender.FluentSender("app", host=host, port=port, nanosecond_precision=True)
now = int(time.time())
assert nano.emit_with_time("payments", now + 0.123456, {"message": "card declined", "level": "error",
                                                     "nested": {"code": 51}}), nano.last_error
nano.close()
print(now)
"#,
        &[&addr.ip().to_string(), &addr.port().to_string()],
    );
    let sent_at: i64 = out.trim().parse().unwrap();

    let found = search_until(&server, "service:\"docker.checkout\"", total(3));
    for hit in found["hits"].as_array().unwrap() {
        assert_eq!(hit["service"], "docker.checkout", "{hit}");
        assert!(
            hit["message"].as_str().unwrap().starts_with("order "),
            "{hit}"
        );
        assert_eq!(hit["fields"]["container_name"], "/checkout-1", "{hit}");
        assert_eq!(hit["fields"]["source"], "stdout", "{hit}");
        assert_eq!(hit["fields"]["container_id"], "4f1c", "{hit}");
    }
    let one = search_until(&server, "request_id:\"req-2\"", total(1));
    assert_eq!(one["hits"][0]["message"], "order 2 placed");
    assert_eq!(one["hits"][0]["fields"]["items"], 3);

    let nano = search_until(&server, "service:\"app.payments\"", total(1));
    let hit = &nano["hits"][0];
    assert_eq!(hit["message"], "card declined");
    assert_eq!(hit["level"], "ERROR", "{hit}");
    assert_eq!(hit["fields"]["nested.code"], 51, "{hit}");
    // The EventTime's fraction survived (to the microsecond the store keeps).
    let timestamp = hit["timestamp"].as_str().unwrap();
    assert!(timestamp.contains(".123456"), "{timestamp}");
    let seconds = time_seconds(timestamp);
    assert_eq!(seconds, sent_at, "{timestamp}");
    assert_errors(&server, 0.0);
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`...Z`).
fn time_seconds(text: &str) -> i64 {
    let out = run_python(
        "import sys, datetime\nprint(int(datetime.datetime.fromisoformat(sys.argv[1].replace('Z', '+00:00')).timestamp()))",
        &[text],
    );
    out.trim().parse().unwrap()
}

/// A forward client written with msgpack: `send(frame)` and `ack()`, and the
/// handshake, over plain TCP or TLS.
const CLIENT: &str = r#"
import gzip, hashlib, os, socket, ssl, struct, sys, time
import msgpack

def event_time(t):
    return msgpack.ExtType(0, struct.pack(">II", int(t), int(round((t % 1) * 1e9))))

class Client:
    def __init__(self, host, port, ca=None):
        raw = socket.create_connection((host, port), timeout=10)
        if ca:
            context = ssl.create_default_context(cafile=ca)
            raw = context.wrap_socket(raw, server_hostname="localhost")
        self.sock = raw
        self.unpacker = msgpack.Unpacker(raw=False)

    def send(self, obj):
        try:
            self.sock.sendall(msgpack.packb(obj, use_bin_type=True))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server: receive() says None

    def receive(self):
        """The next value the server sends; None once it has closed the connection."""
        while True:
            for obj in self.unpacker:
                return obj
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.unpacker.feed(data)

    def handshake(self, key, hostname="client-1"):
        helo = self.receive()
        assert helo[0] == "HELO", helo
        nonce = helo[1]["nonce"]
        salt = os.urandom(16)
        digest = hashlib.sha512(salt + hostname.encode() + nonce + key.encode()).hexdigest()
        self.send(["PING", hostname, salt, digest, "", ""])
        pong = self.receive()
        assert pong[0] == "PONG", pong
        if pong[1]:
            theirs = hashlib.sha512(salt + pong[3].encode() + nonce + key.encode()).hexdigest()
            assert pong[4] == theirs, "the server's digest does not prove the key"
        return pong

def packed(tag, records, now, chunk, compress=False):
    stream = b"".join(msgpack.packb([event_time(now + i / 1000), r], use_bin_type=True)
                      for i, r in enumerate(records))
    option = {"chunk": chunk, "size": len(records)}
    if compress:
        half = len(stream) // 2
        # Two gzip members, as Fluent Bit appends them.
        stream = gzip.compress(stream[:half]) + gzip.compress(stream[half:])
        option["compressed"] = "gzip"
    return [tag, stream, option]
"#;

fn client_script(body: &str) -> String {
    format!("{CLIENT}\n{body}")
}

#[test]
fn packed_and_compressed_frames_are_acknowledged_and_searchable() {
    let server = Sextant::start();
    let addr = server.addr("forward", "tcp");
    let out = run_python(
        &client_script(
            r#"
host, port = sys.argv[1], int(sys.argv[2])
c = Client(host, port)
now = time.time()
c.send(packed("fluentbit.kube", [{"log": "packed %d" % i, "stream": "stdout", "batch": "p"} for i in range(200)], now, "chunk-packed"))
print("ack", c.receive()["ack"])
c.send(packed("fluentbit.kube", [{"log": "gzipped %d" % i, "stream": "stderr", "batch": "z"} for i in range(300)], now, "chunk-gzip", compress=True))
print("ack", c.receive()["ack"])
# Forward mode, one entry's record is not a map: refused alone, the rest kept and acked.
entries = [[event_time(now), {"message": "first", "batch": "f"}], [event_time(now), "not a map"],
           [int(now), {"message": "third", "batch": "f"}]]
c.send(["fluentd.app", entries, {"chunk": "chunk-forward", "size": 3}])
print("ack", c.receive()["ack"])
"#,
        ),
        &[&addr.ip().to_string(), &addr.port().to_string()],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["ack chunk-packed", "ack chunk-gzip", "ack chunk-forward"],
        "{out}"
    );
    // Acked means in the WAL: searchable within the commit interval.
    search_until(
        &server,
        "batch:p AND service:\"fluentbit.kube\"",
        total(200),
    );
    let gz = search_until(&server, "batch:z", total(300));
    assert_eq!(gz["hits"][0]["fields"]["stream"], "stderr");
    let fwd = search_until(&server, "batch:f AND service:\"fluentd.app\"", total(2));
    let messages: Vec<&str> = fwd["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"first") && messages.contains(&"third"),
        "{messages:?}"
    );
    assert_errors(&server, 1.0);
}

#[test]
fn with_a_shared_key_the_right_key_is_taken_and_a_wrong_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sextant.yaml");
    std::fs::write(
        &config,
        "logs:\n  forward:\n    shared_key: 'k3y-for-forward'\n    hostname: sextant-test\n",
    )
    .unwrap();
    let server = Sextant::builder()
        .args(["--config", config.to_str().unwrap()])
        .start();
    let addr = server.addr("forward", "tcp");
    let out = run_python(
        &client_script(
            r#"
host, port = sys.argv[1], int(sys.argv[2])
c = Client(host, port)
pong = c.handshake("k3y-for-forward")
print("right", pong[1], repr(pong[2]), pong[3])
c.send(["keyed.app", int(time.time()), {"message": "with the key"}, {"chunk": "k1"}])
print("ack", c.receive()["ack"])

c = Client(host, port)
pong = c.handshake("guessed")
print("wrong", pong[1], pong[2])
c.send(["keyed.app", int(time.time()), {"message": "without the key"}])
print("then", c.receive())

# No handshake at all: the event is not taken.
c = Client(host, port)
c.receive()  # HELO
c.send(["keyed.app", int(time.time()), {"message": "no handshake"}])
print("skipped", c.receive())
"#,
        ),
        &[&addr.ip().to_string(), &addr.port().to_string()],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "right True '' sextant-test",
            "ack k1",
            "wrong False shared_key mismatch",
            "then None",
            "skipped None",
        ],
        "{out}"
    );
    search_until(&server, "service:\"keyed.app\"", total(1));
    // The wrong key and the missing handshake, each its connection closed.
    assert_errors(&server, 2.0);
    let logs = server.logs();
    assert!(logs.contains("with a wrong shared key"), "{logs}");
}

#[test]
fn forward_over_tls_and_the_udp_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let (server, certs) = TestCertificates::serving(dir.path());
    let addr = server.addr("forward", "tcp");
    let ca = certs.ca.to_str().unwrap();
    let out = run_python(
        &client_script(
            r#"
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = Client(host, port, ca)
c.send(packed("tls.app", [{"message": "over tls %d" % i} for i in range(5)], time.time(), "t1"))
print("ack", c.receive()["ack"])
# A plain client on the TLS port gets a TLS alert at most: nothing stored, no ack.
plain = Client(host, port)
plain.send(["tls.app", int(time.time()), {"message": "in clear"}, {"chunk": "p1"}])
try:
    reply = plain.receive()
except socket.timeout:
    reply = None
print("plain", "acked" if isinstance(reply, dict) else "not acked")
"#,
        ),
        &[&addr.ip().to_string(), &addr.port().to_string(), ca],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["ack t1", "plain not acked"],
        "{out}"
    );

    // Heartbeats: Fluentd's out_forward (heartbeat_type udp) gets one `\0` back.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(b"\0", server.addr("forward", "udp")).unwrap();
    let mut answer = [9u8; 16];
    let (len, from) = udp.recv_from(&mut answer).unwrap();
    assert_eq!(&answer[..len], b"\0");
    assert_eq!(from, server.addr("forward", "udp"));

    // Searching goes over HTTPS here: ask from Python with the CA.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run_python(
            "import sys, ssl, urllib.request\nctx = ssl.create_default_context(cafile=sys.argv[2])\nprint(urllib.request.urlopen(sys.argv[1], context=ctx).read().decode())",
            &[
                &format!(
                    "https://{}/api/v1/logs/search?q=service:%22tls.app%22&start=0",
                    server.addr("http", "tcp")
                ),
                ca,
            ],
        );
        let json: Value = serde_json::from_str(out.trim()).unwrap();
        if json["total"] == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "{json}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
