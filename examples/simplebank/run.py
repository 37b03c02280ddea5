"""Starts Sextant and the SimpleBank example against it, with a load
generator, and prints the URLs to open. Ctrl-C stops everything.

    examples/simplebank/run                    # builds Sextant, sets up Python, runs this
    python run.py --sextant target/release/sextant [--duration 60] [--webhook URL]

Sextant gets examples/simplebank/sextant.yaml (the book's scrape, StatsD
mapping and alert settings, faster for a demo). Alerts go to `--webhook`, or
to a small alerts service here that prints what it receives. When
everything is up, one JSON line on stdout (`"ready": true`) gives every URL
and port; then a line per alert received, and the load generator's counts.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICES = ["gateway", "orders", "account-transactions", "market", "fees", "profile", "settings"]
CALLS = {"gateway": ["orders"], "orders": ["account-transactions", "market"], "market": ["fees"], "profile": ["settings"]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say(**fields):
    print(json.dumps(fields), flush=True)


def wait_ready(url, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} was not ready after {seconds} s")


def post(url, body, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def alerts_service(bind, port):
    """The book's alerts service: prints every notification it receives."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                alert = json.loads(body)
                say(alert=alert.get("title"), state=alert.get("state"), message=alert.get("message"))
            except ValueError:
                say(alert="unreadable notification", body=body.decode(errors="replace"))
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def load(gateway, profile, stop, counts):
    """Sell orders at ~20/s and a profile view at ~2/s, until stopped."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            post(f"http://127.0.0.1:{gateway}/shares/sell", {"account": f"acc-{n % 50:03d}", "shares": 1 + n % 20, "stock": ["AAPL", "MSFT", "GOOG"][n % 3]})
            counts["orders"] += 1
        except OSError as e:
            counts["errors"] += 1
            counts["last_error"] = str(e)
        if n % 10 == 0:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{profile}/profile/{uuid.uuid4()}", timeout=10):
                    counts["profiles"] += 1
            except OSError as e:
                counts["errors"] += 1
                counts["last_error"] = str(e)
        stop.wait(0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sextant", default=os.path.join(HERE, "../../target/release/sextant"), help="the sextant binary")
    parser.add_argument("--data-dir", help="Sextant's data directory (default: a temporary one)")
    parser.add_argument("--http", type=int, default=7070, help="Sextant's HTTP port (0: any free port)")
    parser.add_argument("--webhook", help="where alerts go (default: the alerts service here, printing them)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--sextant-url", help="use this running Sextant (e.g. http://sextant:7070 in the compose file) instead of starting one")
    parser.add_argument("--sextant-host", default="127.0.0.1", help="with --sextant-url: the host its StatsD, logstash and OTLP ports are on")
    parser.add_argument("--base-port", type=int, default=0, help="services on this port and the next six (default: free ports)")
    parser.add_argument("--bind", default="127.0.0.1", help="the services' listen address")
    parser.add_argument("--alerts-port", type=int, default=0, help="the alerts service's port (default: a free one)")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="simplebank-")
    ports = {s: (args.base_port + i if args.base_port else free_port()) for i, s in enumerate(SERVICES)}
    if args.sextant_url:
        http = int(args.sextant_url.rsplit(":", 1)[1].strip("/"))
        sextant_ports = {"http": http, "otlp_grpc": 4317, "otlp_http": 4318, "statsd": 8125, "logstash": 5959}
    else:
        http = args.http or free_port()
        sextant_ports = {"http": http, "otlp_grpc": free_port(), "otlp_http": free_port(), "statsd": free_port(), "logstash": free_port(), "syslog": free_port(), "forward": free_port()}
    alerts = None
    webhook = args.webhook
    if not webhook:
        alerts_port = args.alerts_port or free_port()
        alerts = alerts_service(args.bind, alerts_port)
        webhook = f"http://127.0.0.1:{alerts_port}/alerts"
    with open(os.path.join(HERE, "sextant.yaml")) as f:
        config = f.read()
    targets = ", ".join(f"'127.0.0.1:{ports[s]}'" for s in SERVICES if s != "market")
    config = (
        config.replace("__WEBHOOK__", webhook)
        .replace("__EXTERNAL_URL__", f"http://127.0.0.1:{http}")
        .replace("__RABBITMQ__", f"'127.0.0.1:{ports['market']}'")
        .replace("__SERVICES__", targets)
        .replace("__MAPPING__", os.path.join(HERE, "../../deploy/statsd_mapping.yml"))
        .replace("__RULES__", os.path.join(HERE, "rules.yml"))
    )
    config_path = os.path.join(scratch, "sextant.yaml")
    with open(config_path, "w") as f:
        f.write(config)

    children = []

    def stop_all(*_):
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    if args.sextant_url:
        base = args.sextant_url.rstrip("/")
    else:
        flags = [f"--{name.replace('_', '-')}={port}" for name, port in sextant_ports.items()]
        children.append(subprocess.Popen([args.sextant, "serve", "--config", config_path, "--data-dir", args.data_dir or os.path.join(scratch, "data"), "--log-level", "warn", *flags]))
        base = f"http://127.0.0.1:{http}"
    wait_ready(base + "/-/ready", 300)

    for name in SERVICES:
        peers = ",".join(f"{p}={ports[p]}" for p in CALLS.get(name, []))
        children.append(
            subprocess.Popen(
                [sys.executable, os.path.join(HERE, "services.py"), name, "--port", str(ports[name]), "--bind", args.bind, "--peers", peers,
                 "--sextant-host", args.sextant_host,
                 "--statsd-port", str(sextant_ports["statsd"]), "--logstash-port", str(sextant_ports["logstash"]),
                 "--otlp", f"http://{args.sextant_host}:{sextant_ports['otlp_http']}"],
                stdout=subprocess.DEVNULL,
            )
        )
    for name in SERVICES:
        wait_ready(f"http://127.0.0.1:{ports[name]}/metrics")

    # One order first, so that its uuid can be printed.
    first = post(f"http://127.0.0.1:{ports['gateway']}/shares/sell", {"account": "acc-000", "shares": 10, "stock": "AAPL"})
    stop = threading.Event()
    counts = {"orders": 1, "profiles": 0, "errors": 0}
    threading.Thread(target=load, args=(ports["gateway"], ports["profile"], stop, counts), daemon=True).start()
    say(
        ready=True,
        sextant=base,
        ports={**{f"sextant_{k}": v for k, v in sextant_ports.items()}, **ports},
        order_uuid=first["uuid"],
        correlate=f"{base}/ui/correlate?id={first['uuid']}",
        logs=f"{base}/ui/logs?q={first['uuid']}",
        traces=f"{base}/ui/traces?service=gateway",
        services=f"{base}/ui/services",
        metrics=f"{base}/ui/metrics?expr=simplebank_demo_market_place_order_stock_exchange&legend=p%7B%7Bquantile%7D%7D",
        alerts=f"{base}/ui/alerts",
        pause_market=f"http://127.0.0.1:{ports['market']}/admin/pause",
        resume_market=f"http://127.0.0.1:{ports['market']}/admin/resume",
    )
    try:
        started = time.time()
        while not args.duration or time.time() - started < args.duration:
            time.sleep(5)
            say(load={k: v for k, v in counts.items()})
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        stop_all()
        if alerts:
            alerts.shutdown()


if __name__ == "__main__":
    main()
