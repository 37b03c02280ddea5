"""SimpleBank's services, written for Sextant's example with the client
libraries the book's services use: `statsd` timers, `python-logstash` log
lines carrying the request uuid, OpenTelemetry spans exported over OTLP/HTTP
with the trace context passed in HTTP headers, and `prometheus-client`
metrics scraped from /metrics.

    python services.py <service> --port 8001 --peers orders=8002,... [--sextant-host 127.0.0.1 ...]

Selling shares: the gateway (POST /shares/sell) makes a request uuid and
calls orders; orders reserves the shares with account-transactions and
publishes `order_created` on market's queue; market's consumer places the
order on the stock exchange (the slow part) and has fees charge a fee. The
queue's depth is `rabbitmq_queue_messages` on market's /metrics, as
RabbitMQ's exporter names it. POST /admin/pause and /admin/resume on market
stop and start its consumer, so the queue can be made to accumulate.

Tracing pair: profile (GET /profile/<uuid>) looks up the caller's IP and
calls settings (GET /settings/<uuid>), which continues the trace.
"""

import argparse
import json
import logging
import queue
import random
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import logstash
import statsd
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

QUEUE_NAME = "evt-orders_service-order_created--market_service.place_order"

REQUESTS = Counter("simplebank_http_requests_total", "HTTP requests handled", ["service", "endpoint", "code"])
LATENCY = Histogram("simplebank_http_request_duration_seconds", "HTTP request latency", ["service", "endpoint"])
QUEUE_DEPTH = Gauge("rabbitmq_queue_messages", "Messages ready in the queue", ["queue", "vhost"])


class Service:
    def __init__(self, args):
        self.name = args.service
        self.peers = dict(p.split("=") for p in args.peers.split(",") if p)
        self.timers = statsd.StatsClient(args.sextant_host, args.statsd_port, prefix="simplebank-demo." + self.name)
        provider = TracerProvider(resource=Resource.create({"service.name": self.name, "host.name": self.name + "-1"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=args.otlp + "/v1/traces"), schedule_delay_millis=500))
        self.provider = provider
        self.tracer = provider.get_tracer("simplebank." + self.name)
        self.log = logging.getLogger("simplebank." + self.name)
        self.log.setLevel(logging.DEBUG if self.name == "gateway" else logging.INFO)
        handler = logstash.TCPLogstashHandler(args.sextant_host, args.logstash_port, version=1)
        name = self.name

        class AddService(logging.Filter):
            def filter(self, record):
                record.service = name
                return True

        handler.addFilter(AddService())
        self.log.addHandler(handler)
        self.queue = queue.Queue()
        self.consuming = threading.Event()
        self.consuming.set()

    def call(self, peer, path, request_id, body=None):
        """An HTTP call to another service, the trace context and request id in its headers."""
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        inject(headers)
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.peers[peer]}{path}", data=data if body is not None else None, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    # ---- the sell flow

    def gateway_sell(self, body, request_id):
        with self.timers.timer("sell_shares"):
            self.log.info("placing sell order", extra={"uuid": request_id, "account": body.get("account"), "shares": body.get("shares")})
            answer = self.call("orders", "/orders", request_id, body)
            self.log.info("sell order accepted", extra={"uuid": request_id, "order_id": answer["order_id"]})
            return {"uuid": request_id, **answer}

    def orders_create(self, body, request_id):
        with self.timers.timer("place_order"):
            order_id = str(uuid.uuid4())
            self.log.info("creating sell order", extra={"uuid": request_id, "order_id": order_id})
            with self.timers.timer("request_reservation"):
                self.call("account-transactions", "/reservations", request_id, {"order_id": order_id, **body})
            self.call("market", "/queue/order_created", request_id, {"order_id": order_id, **body})
            self.log.info("published order_created", extra={"uuid": request_id, "order_id": order_id})
            return {"order_id": order_id, "status": "pending"}

    def account_reserve(self, body, request_id):
        with self.timers.timer("request_reservation"):
            time.sleep(random.uniform(0.002, 0.01))
            self.log.info("shares reserved", extra={"uuid": request_id, "order_id": body["order_id"], "shares": body.get("shares")})
            return {"reserved": True}

    def market_enqueue(self, body, request_id):
        # The queue is where the book's RabbitMQ sat: the consumer continues the trace.
        carrier = {}
        inject(carrier)
        self.queue.put((body, request_id, carrier))
        QUEUE_DEPTH.labels(QUEUE_NAME, "/").set(self.queue.qsize())
        with self.timers.timer("create_event"):
            self.log.info("order_created received", extra={"uuid": request_id, "order_id": body["order_id"]})
        return {"queued": self.queue.qsize()}

    def market_consume(self):
        while True:
            self.consuming.wait()
            body, request_id, carrier = self.queue.get()
            QUEUE_DEPTH.labels(QUEUE_NAME, "/").set(self.queue.qsize())
            with self.tracer.start_as_current_span("place_order", context=extract(carrier), kind=SpanKind.CONSUMER, attributes={"uuid": request_id, "messaging.destination.name": QUEUE_NAME}):
                with self.tracer.start_as_current_span("stock exchange", kind=SpanKind.CLIENT, attributes={"uuid": request_id, "peer.service": "stock-exchange"}):
                    with self.timers.timer("place_order_stock_exchange"):
                        time.sleep(random.uniform(0.005, 0.04))
                self.log.info("order placed on the stock exchange", extra={"uuid": request_id, "order_id": body["order_id"]})
                try:
                    self.call("fees", "/fees", request_id, body)
                except Exception as e:  # noqa: BLE001 - a failed fee is logged, the order stays placed
                    self.log.error("charging the fee failed: %s", e, extra={"uuid": request_id, "order_id": body["order_id"]})

    def fees_charge(self, body, request_id):
        with self.timers.timer("charge_fee"):
            time.sleep(random.uniform(0.001, 0.005))
            fee = round(0.5 + 0.001 * int(body.get("shares", 1)), 2)
            self.log.info("fee charged", extra={"uuid": request_id, "order_id": body["order_id"], "fee": fee})
            return {"fee": fee}

    # ---- the tracing pair

    def profile_get(self, user, request_id):
        with self.tracer.start_as_current_span("lookup ip", kind=SpanKind.CLIENT, attributes={"uuid": request_id, "peer.service": "ip-api"}):
            time.sleep(random.uniform(0.002, 0.01))
        settings = self.call("settings", f"/settings/{user}", request_id)
        self.log.info("profile served", extra={"uuid": request_id, "user": user})
        return {"user": user, "settings": settings}

    def settings_get(self, user, request_id):
        span = trace.get_current_span()
        if random.random() < 0.1:
            span.add_event("cache miss", {"key": "prefs"})
            time.sleep(0.01)
        self.log.info("settings read", extra={"uuid": request_id, "user": user})
        return {"theme": "dark", "currency": "EUR"}


def handler_for(service):
    routes = {
        ("gateway", "POST", "/shares/sell"): lambda h, b, r: service.gateway_sell(b, r),
        ("orders", "POST", "/orders"): lambda h, b, r: service.orders_create(b, r),
        ("account-transactions", "POST", "/reservations"): lambda h, b, r: service.account_reserve(b, r),
        ("market", "POST", "/queue/order_created"): lambda h, b, r: service.market_enqueue(b, r),
        ("fees", "POST", "/fees"): lambda h, b, r: service.fees_charge(b, r),
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, code, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_request(self, method):
            path = self.path.split("?")[0]
            if path == "/metrics":
                return self.answer(200, generate_latest(), CONTENT_TYPE_LATEST)
            if service.name == "market" and path in ("/admin/pause", "/admin/resume"):
                (service.consuming.clear if path == "/admin/pause" else service.consuming.set)()
                return self.answer(200, {"consuming": service.consuming.is_set(), "queued": service.queue.qsize()})
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            request_id = self.headers.get("X-Request-ID") or str(uuid.uuid4())
            route = routes.get((service.name, method, path))
            if route is None and method == "GET" and service.name in ("profile", "settings") and path.startswith(f"/{service.name}/"):
                user = path.split("/", 2)[2]
                route = (lambda h, b, r: service.profile_get(user, r)) if service.name == "profile" else (lambda h, b, r: service.settings_get(user, r))
            if route is None:
                return self.answer(404, {"error": f"{service.name} has no {method} {path}"})
            endpoint = path if service.name not in ("profile", "settings") else f"/{service.name}/<uuid>"
            started = time.perf_counter()
            with service.tracer.start_as_current_span(f"{method} {endpoint}", context=extract({k.lower(): v for k, v in self.headers.items()}), kind=SpanKind.SERVER, attributes={"uuid": request_id, "http.method": method, "http.route": endpoint}) as span:
                try:
                    result = route(self, body, request_id)
                    code = 200
                except Exception as e:  # noqa: BLE001 - the caller gets a 500 naming the failure
                    span.set_status(Status(StatusCode.ERROR, str(e)))
                    service.log.error("request failed: %s", e, extra={"uuid": request_id})
                    result, code = {"error": str(e)}, 500
                span.set_attribute("http.status_code", code)
            LATENCY.labels(service.name, endpoint).observe(time.perf_counter() - started)
            REQUESTS.labels(service.name, endpoint, str(code)).inc()
            self.answer(code, result)

        def do_GET(self):
            self.handle_request("GET")

        def do_POST(self):
            self.handle_request("POST")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service", choices=["gateway", "orders", "account-transactions", "market", "fees", "profile", "settings"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--peers", default="", help="name=port,... of the services this one calls")
    parser.add_argument("--bind", default="127.0.0.1", help="listen address")
    parser.add_argument("--sextant-host", default="127.0.0.1")
    parser.add_argument("--statsd-port", type=int, default=8125)
    parser.add_argument("--logstash-port", type=int, default=5959)
    parser.add_argument("--otlp", default="http://127.0.0.1:4318", help="OTLP/HTTP endpoint")
    args = parser.parse_args()
    service = Service(args)
    if service.name == "market":
        QUEUE_DEPTH.labels(QUEUE_NAME, "/").set(0)
        for _ in range(4):
            threading.Thread(target=service.market_consume, daemon=True).start()
    server = ThreadingHTTPServer((args.bind, args.port), handler_for(service))
    print(json.dumps({"service": service.name, "port": args.port}), flush=True)
    try:
        server.serve_forever()
    finally:
        service.provider.shutdown()


if __name__ == "__main__":
    main()
