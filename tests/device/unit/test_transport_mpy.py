"""The transport's reaction to every response class, against a real HTTP server on loopback."""

import json
import socket
import ssl
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cloud import signing

SECRET = "ab" * 32


class Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted behaviour; records the requests."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((dict(self.headers.items()), body))
        action = self.server.script.pop(0) if self.server.script else ("json", 200, {"accepted": 1})
        kind = action[0]
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if kind == "delay":
            time.sleep(action[1])
        status, payload = (action[1], action[2]) if kind == "json" else (200, {"accepted": 1})
        if kind == "json" and status == 200:
            readings = json.loads(body)["readings"]
            payload = {
                "accepted": len(readings),
                "duplicates": 0,
                "rejected": [],
                "server_time": int(time.time()),
                **payload,
            }
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) + (10 if kind == "truncate" else 0)))
        self.end_headers()
        self.wfile.write(data)
        if kind == "truncate":
            self.close_connection = True


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    srv.daemon_threads = True
    srv.script, srv.requests = [], []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


FAKE_CLOCK = """
import time
valid_now = [True]
def unix():
    return int(time.time())
def valid():
    return valid_now[0]
set_to = []
def set_unix(ts, spool):
    set_to.append(ts)
"""


def deliver(mpy, server, readings=3, batch=20, scheme="http", tls_ca=None, compiled=False, spool_max=100):
    mpy.fake("fakeclock", FAKE_CLOCK)
    config = {
        "device_id": "dev-1",
        "secret": SECRET,
        "endpoint": f"{scheme}://127.0.0.1:{server.server_port}/data",
        "batch_size": batch,
        "interval_s": 60,
        "tls_ca": tls_ca,
    }
    run = mpy.compiled_json if compiled else mpy.json
    return run(f"""
        import json, time, spool, transport, fakeclock, log
        log.echo = False
        sp = spool.Spool({spool_max})
        for i in range({readings}):
            sp.append(int(time.time()) - 100 + i, 200, 500, True)
        rtc = {{}}
        cfg = json.loads({json.dumps(config)!r})
        n = transport.deliver(cfg, sp, fakeclock, rtc, {{"fw": "t"}}, log, time.ticks_add(time.ticks_ms(), 30000))
        print(json.dumps({{"requests": n, "depth": sp.depth(), "dropped": sp.dropped, "rtc": rtc,
                          "clock_set": fakeclock.set_to}}))
    """)


def test_ack_removes_the_batch_and_requests_are_signed(mpy, server):
    out = deliver(mpy, server, readings=3)
    assert (out["requests"], out["depth"]) == (1, 0)
    headers, body = server.requests[0]
    assert signing.verify(SECRET, "dev-1", headers["X-Timestamp"], "POST", "/data", body, headers["X-Signature"])
    assert json.loads(body)["readings"][0] == {
        "seq": 0,
        "ts": json.loads(body)["readings"][0]["ts"],
        "t": 20.0,
        "h": 50.0,
    }


def test_batches_until_empty(mpy, server):
    out = deliver(mpy, server, readings=7, batch=3)
    assert (out["requests"], out["depth"]) == (3, 0)


def test_stale_sets_the_clock_and_retries(mpy, server):
    server.script = [("json", 401, {"error": "stale_timestamp", "message": "m", "server_time": 1795000000})]
    out = deliver(mpy, server)
    assert out["clock_set"] == [1795000000] and out["depth"] == 0 and out["requests"] == 2


def test_poison_batch_is_dropped_and_counted(mpy, server):
    server.script = [("json", 400, {"error": "invalid_body", "message": "m"})]
    out = deliver(mpy, server)
    assert (out["depth"], out["dropped"]) == (0, 3)
    assert out["rtc"]["last_error"] == "400 invalid_body"


def test_unauthorized_keeps_the_readings(mpy, server):
    server.script = [("json", 401, {"error": "unauthorized", "message": "m"})]
    out = deliver(mpy, server)
    assert (out["depth"], out["dropped"]) == (3, 0) and out["rtc"]["tx_fails"] == 1


@pytest.mark.parametrize(
    "action",
    [("json", 500, {"error": "x"}), ("json", 503, {}), ("reset",), ("truncate",)],
    ids=["500", "503", "reset", "truncated"],
)
def test_server_and_network_failures_keep_the_batch_and_back_off(mpy, server, action):
    server.script = [action]
    out = deliver(mpy, server)
    assert (out["depth"], out["dropped"], out["requests"]) == (3, 0, 1)
    assert out["rtc"]["tx_fails"] == 1 and out["rtc"]["tx_next"] > time.time() + 25


def test_timeout_is_shorter_than_the_watchdog(mpy, server):
    server.script = [("delay", 7)]
    started = time.monotonic()
    out = deliver(mpy, server)
    assert out["depth"] == 3 and time.monotonic() - started < 7


def test_connection_refused_keeps_the_batch(mpy):
    class Closed:
        server_port = 9  # discard: nothing listens on loopback

    out = deliver(mpy, Closed())
    assert (out["depth"], out["requests"]) == (3, 1) and "send" in out["rtc"]["last_error"]


def test_rejected_readings_are_final_and_acknowledged(mpy, server):
    server.script = [("json", 200, {"accepted": 2, "rejected": [{"seq": 1, "error": "out_of_range"}]})]
    out = deliver(mpy, server)
    assert (out["depth"], out["dropped"], out["requests"]) == (0, 0, 1)
    assert "reading 1 rejected by the receiver: out_of_range" in (mpy.workdir / "log.txt").read_text()


def self_signed(tmp_path, name):
    key, cert, der = (tmp_path / f"{name}.{ext}" for ext in ("key", "pem", "der"))
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER", "-out", str(der)], check=True)
    return key, cert, der


@pytest.mark.parametrize("ca", [None, "server", "other"])
def test_https_endpoint_is_spoken_over_tls(mpy, server, tmp_path, ca):
    key, cert, _ = self_signed(tmp_path, "server")
    if ca:
        # tls_ca names a DER certificate on the board; "other" is not the server's.
        der = self_signed(tmp_path, ca)[2] if ca == "other" else tmp_path / "server.der"
        (mpy.workdir / "ca.der").write_bytes(der.read_bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    out = deliver(mpy, server, scheme="https", tls_ca="ca.der" if ca else None)
    if ca == "other":
        # A server that cannot prove it holds the configured CA is never sent readings.
        assert (out["requests"], out["depth"]) == (1, 3) and out["rtc"]["tx_fails"] == 1
        assert server.requests == []
        return
    assert (out["requests"], out["depth"]) == (1, 0)
    headers, body = server.requests[0]
    assert signing.verify(SECRET, "dev-1", headers["X-Timestamp"], "POST", "/data", body, headers["X-Signature"])


def test_a_full_batch_of_100_fits_the_heap_and_the_body_limit(mpy, server):
    out = deliver(mpy, server, readings=250, batch=100, compiled=True, spool_max=1000)
    assert (out["requests"], out["depth"]) == (3, 0)
    sizes = [len(body) for _, body in server.requests]
    assert [len(json.loads(b)["readings"]) for _, b in server.requests] == [100, 100, 50]
    assert max(sizes) < 32 * 1024
