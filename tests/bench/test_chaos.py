"""The fault-injecting proxy on its own, in front of a tiny receiver."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host_tools.chaos import ChaosProxy


class Counter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.hits += 1
        body = json.dumps({"hit": self.server.hits}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    server.hits = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def send(proxy):
    """(status, whole answer?) read the way the firmware does: all of Content-Length or nothing."""
    host, port = proxy.url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as conn:
            conn.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return None, False
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return None, False
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), None
    )
    if length is None or len(body) < length:
        return None, False
    return int(head.split()[1]), True


@pytest.mark.parametrize(
    ("fault", "forwarded", "expect"),
    [
        ("drop", 0, None),
        ("error_before", 0, 503),
        ("error_after", 1, 500),
        ("reset", 1, None),
        ("truncate", 1, None),
        ("delay", 1, None),
    ],
)
def test_each_fault(upstream, fault, forwarded, expect):
    with ChaosProxy(f"http://127.0.0.1:{upstream.server_port}", {fault: 1.0}, delay_s=1.5) as proxy:
        status, _ = send(proxy)
        assert status == expect
        assert proxy.stats.faults == {fault: 1} and proxy.stats.requests == 1
    assert upstream.hits == forwarded


def test_no_faults_passes_everything_through(upstream):
    with ChaosProxy(f"http://127.0.0.1:{upstream.server_port}", {}) as proxy:
        assert [send(proxy)[0] for _ in range(5)] == [200] * 5
        assert proxy.stats.bytes_in > 0 and proxy.stats.bytes_out > 0
    assert upstream.hits == 5


def test_same_seed_same_faults(upstream):
    rates = {"drop": 0.3, "error_before": 0.3}

    def run(seed):
        with ChaosProxy(f"http://127.0.0.1:{upstream.server_port}", rates, seed=seed) as proxy:
            return [send(proxy)[0] for _ in range(12)]

    assert run(5) == run(5)


def test_bad_rates():
    with pytest.raises(ValueError, match="unknown fault"):
        ChaosProxy("http://127.0.0.1:1", {"gremlins": 0.1})
    with pytest.raises(ValueError, match="at most 1"):
        ChaosProxy("http://127.0.0.1:1", {"drop": 0.7, "delay": 0.7})
