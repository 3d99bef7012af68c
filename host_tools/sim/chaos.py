"""A fault-injecting HTTP proxy between boards and a receiver (loopback only).

Each request draws at most one fault from a seeded RNG, in request order:
  drop          close the connection before forwarding (nothing stored)
  error_before  answer 503 without forwarding (nothing stored)
  error_after   forward (stored), then answer 500: the board must retry, the receiver dedupe
  reset         forward, send part of the answer, then reset the connection (RST)
  truncate      forward, send the answer with its body cut short, then close
  delay         forward, then hold the answer past the board's timeout
  twin          forward the request twice at once and answer with the first reply: a board's
                retry racing its original, still in flight at the receiver (a slow Lambda
                goes on after the board timed out), so both write the same batch together

and impostors, things on the path that answer in the receiver's place (nothing forwarded,
nothing stored; a board that trusted any of them would lose the batch or its clock):
  portal        a captive portal's 200 HTML login page
  forged_ack    an unsigned 200 JSON ack of the whole batch, server_time an hour ahead
  gateway_403, gateway_404, gateway_413, gateway_429
                API Gateway's own answers, with its bodies ({"message": ...}) and headers
  redirect      a 302 to a login page
  replay        a genuine signed answer the receiver gave this device for an earlier
                request (forwarded as usual while the proxy holds none for the device)
"""

import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from socketserver import StreamRequestHandler, ThreadingTCPServer

NETWORK_FAULTS = ("drop", "error_before", "error_after", "reset", "truncate", "delay", "twin")
# API Gateway (HTTP API) answers these itself, before any Lambda runs.
GATEWAY_ANSWERS = {
    403: (b"Forbidden", b"Forbidden"),
    404: (b"Not Found", b"Not Found"),
    413: (b"Payload Too Large", b"Request Entity Too Large"),
    429: (b"Too Many Requests", b"Too Many Requests"),
}
IMPOSTORS = ("portal", "forged_ack", *(f"gateway_{code}" for code in GATEWAY_ANSWERS), "redirect", "replay")
FAULTS = NETWORK_FAULTS + IMPOSTORS
MAX_REQUEST = 64 * 1024
FORGED_CLOCK_OFFSET_S = 3600
PORTAL_PAGE = (
    b"<!DOCTYPE html><html><head><title>Welcome to Hotel WiFi</title></head><body>"
    b"<h1>Welcome!</h1><p>Please accept the terms of use to access the internet.</p>"
    b'<form method="post" action="/login"><input type="checkbox" name="accept"> I accept'
    b'<button type="submit">Connect</button></form></body></html>'
)


def _answer(status: bytes, headers: list[bytes], body: bytes) -> bytes:
    head = [b"HTTP/1.1 " + status, *headers, b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _request_header(request: bytes, name: bytes) -> str | None:
    head = request.partition(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def impostor_answer(kind: str, request: bytes, now: float) -> bytes:
    """What an impostor on the path answers to this request, in the receiver's place."""
    if kind == "portal":
        return _answer(b"200 OK", [b"Content-Type: text/html; charset=utf-8"], PORTAL_PAGE)
    if kind == "forged_ack":
        try:
            count = len(json.loads(request.partition(b"\r\n\r\n")[2])["readings"])
        except (ValueError, KeyError, TypeError):
            count = 1
        forged = {"accepted": count, "duplicates": 0, "rejected": [], "server_time": int(now) + FORGED_CLOCK_OFFSET_S}
        return _answer(b"200 OK", [b"Content-Type: application/json"], json.dumps(forged).encode())
    if kind == "redirect":
        return _answer(
            b"302 Found", [b"Location: http://login.portal.invalid/?continue=%2Fdata", b"Content-Type: text/html"], b""
        )
    code = int(kind.removeprefix("gateway_"))
    reason, message = GATEWAY_ANSWERS[code]
    return _answer(
        b"%d %s" % (code, reason),
        [b"Content-Type: application/json", b"apigw-requestid: Zx3kQjXoIAMEb7w="],
        b'{"message":"%s"}' % message,
    )


@dataclass
class Stats:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    faults: dict[str, int] = field(default_factory=dict)


class _Handler(StreamRequestHandler):
    server: "_Server"

    def _read_request(self) -> bytes | None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline(8192)
            if not line:
                return None
            head += line
            if len(head) > MAX_REQUEST:
                return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        body = self.rfile.read(min(length, MAX_REQUEST))
        # One request per connection toward the receiver, so each fault hits one request.
        head = b"\r\n".join(
            line for line in head.rstrip(b"\r\n").split(b"\r\n") if not line.lower().startswith(b"connection:")
        )
        return head + b"\r\nConnection: close\r\n\r\n" + body

    def _forward(self, request: bytes) -> bytes:
        host, port = self.server.upstream
        with socket.create_connection((host, port), timeout=30) as upstream:
            upstream.sendall(request)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def _twins(self, request: bytes) -> bytes:
        start = threading.Barrier(2)
        replies: list[bytes] = []

        def send() -> None:
            start.wait(timeout=5)
            try:
                replies.append(self._forward(request))
            except OSError:
                pass

        other = threading.Thread(target=send, daemon=True)
        other.start()
        send()
        other.join(timeout=35)
        return replies[0] if replies else b""

    def handle(self) -> None:
        request = self._read_request()
        if request is None:
            return
        fault = self.server.draw()
        stats = self.server.stats
        with self.server.lock:
            stats.requests += 1
            stats.bytes_in += len(request)
            if fault:
                stats.faults[fault] = stats.faults.get(fault, 0) + 1
        if fault == "drop":
            return
        if fault == "error_before":
            self._reply(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        device_id = _request_header(request, b"x-device-id") or ""
        if fault == "replay":
            with self.server.lock:
                earlier = self.server.answers.get(device_id)
            if earlier is not None:
                self._reply(earlier)
                return
        elif fault in IMPOSTORS:
            self._reply(impostor_answer(fault, request, time.time()))
            return
        response = self._twins(request) if fault == "twin" else self._forward(request)
        if response.startswith(b"HTTP/1.1 200") or response.startswith(b"HTTP/1.0 200"):
            with self.server.lock:
                self.server.answers[device_id] = response  # for a later replay
        if fault == "error_after":
            body = b'{"error":"internal","message":"injected by the chaos proxy"}'
            self._reply(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
        elif fault == "reset":
            self._reply(response[: max(1, len(response) // 3)])
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault == "truncate":
            self._reply(response[: len(response) - max(1, min(20, len(response) // 4))])
        elif fault == "delay":
            time.sleep(self.server.delay_s)
            self._reply(response)
        else:
            self._reply(response)

    def _reply(self, data: bytes) -> None:
        with self.server.lock:
            self.server.stats.bytes_out += len(data)
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass  # the board gave up first: that is the point of some faults


class _Server(ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    upstream: tuple[str, int]
    stats: Stats
    lock: threading.Lock
    delay_s: float
    answers: dict[str, bytes]
    rng: random.Random
    rates: list[tuple[str, float]]

    def draw(self) -> str | None:
        with self.lock:
            roll = self.rng.random()
        for kind, probability in self.rates:
            if roll < probability:
                return kind
            roll -= probability
        return None


class ChaosProxy:
    """`with ChaosProxy("http://127.0.0.1:8080", {"drop": 0.05, ...}, seed=1) as proxy:` boards use proxy.url."""

    def __init__(self, upstream: str, rates: dict[str, float], seed: int = 1, delay_s: float = 6.0) -> None:
        unknown = set(rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {', '.join(FAULTS)}")
        if sum(rates.values()) > 1 or any(p < 0 for p in rates.values()):
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        parsed = urllib.parse.urlsplit(upstream)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._server.stats = Stats()
        self._server.lock = threading.Lock()
        self._server.delay_s = delay_s
        self._server.answers = {}
        self._server.rng = random.Random(seed)
        self._server.rates = [(kind, rates[kind]) for kind in FAULTS if rates.get(kind)]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"  # bound to loopback above

    @property
    def stats(self) -> Stats:
        return self._server.stats

    def __enter__(self) -> "ChaosProxy":
        self._thread = threading.Thread(target=self._server.serve_forever, name="chaos-proxy", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
