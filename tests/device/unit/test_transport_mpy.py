"""The delivery's reaction to every answer, one test per row of the reaction table
(protocol v1.1), against a real HTTP server on loopback that signs its answers as the
receiver does (cloud.signing.sign_answer) or, playing an impostor, does not."""

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


def ok(**extra):
    """The receiver's signed 200 for the request's readings."""
    return {"status": 200, "ack": True, "body": extra}


def answer(status, body, sign=True, headers=None):
    """A scripted answer: sign=True signs it for the request it answers, sign="other" for
    another request, sign=<secret hex> with that secret, sign=False not at all; body is
    a dict (sent as JSON) or bytes (sent as they are)."""
    return {"status": status, "body": body, "sign": sign, "headers": headers or {}}


class Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted behaviour; records the requests."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((dict(self.headers.items()), body))
        action = self.server.script.pop(0) if self.server.script else ok()
        if action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if action == "replay":
            # The last signed answer, word for word: signed, but for another request.
            status, data, headers = self.server.answers[-1]
            return self._send(status, data, headers)
        if isinstance(action, tuple) and action[0] == "delay":
            time.sleep(action[1])
            action = ok()
        truncate = action == "truncate"
        if truncate:
            action = ok()
        status, payload = action["status"], action["body"]
        if action.get("ack"):
            readings = json.loads(body)["readings"]
            payload = {
                "accepted": len(readings),
                "duplicates": 0,
                "rejected": [],
                "server_time": int(time.time()),
                **payload,
            }
        data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json" if isinstance(payload, dict) else "text/html"}
        headers.update(action.get("headers", {}))
        sign = action.get("sign", True)
        if sign:
            request_signature = self.headers["X-Signature"] if sign != "other" else "v1=" + "7" * 64
            secret = sign if isinstance(sign, str) and sign != "other" else SECRET
            headers["X-Signature"] = signing.sign_answer(secret, request_signature, status, data)
            self.server.answers.append((status, data, headers))
        if truncate:
            headers["Content-Length"] = str(len(data) + 10)
        self._send(status, data, headers)
        if truncate:
            self.close_connection = True

    def _send(self, status, data, headers):
        self.send_response(status)
        headers = dict(headers)
        if headers.pop("chunked", None):
            self.send_header("Transfer-Encoding", "chunked")
        else:
            headers.setdefault("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    srv.daemon_threads = True
    srv.script, srv.requests, srv.answers = [], [], []
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


def deliver(mpy, server, readings=3, batch=20, scheme="http", tls_ca=None, compiled=False, spool_max=100, calls=1):
    """Spool `readings` and run the delivery `calls` times (each call is a sending wake,
    backoff ignored); returns what the board holds and counted afterwards."""
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
        import json, time, spool, delivery, transport, fakeclock, log
        log.echo = False
        sp = spool.Spool({spool_max})
        for i in range({readings}):
            sp.append(int(time.time()) - 100 + i, 200, 500, True)
        rtc = {{}}
        cfg = json.loads({json.dumps(config)!r})
        n = 0
        for _ in range({calls}):
            n += delivery.deliver(cfg, sp, fakeclock, rtc, {{"fw": "t"}}, log, time.ticks_add(time.ticks_ms(), 30000),
                          bytearray(transport.buffer_size(cfg["batch_size"])))
        sp = spool.Spool({spool_max})   # what survives a reboot
        print(json.dumps({{"requests": n, "depth": sp.depth(), "dropped": sp.dropped, "drops": sp.drops, "rtc": rtc,
                          "clock_set": fakeclock.set_to, "next_seq": sp.next_seq,
                          "now": int(time.time())}}))
    """)


def sent(server, i=0):
    """The readings of the i-th request."""
    return json.loads(server.requests[i][1])["readings"]


def kept_and_backed_off(out, readings=3):
    """The batch is still on the board, nothing was dropped, the clock was not touched,
    and the next try waits."""
    assert (out["depth"], out["dropped"], out["clock_set"]) == (readings, 0, [])
    assert out["rtc"]["tx_fails"] == 1 and out["rtc"]["tx_next"] >= out["now"] + 25


# -- signed 2xx: acknowledged ------------------------------------------------------


def test_ack_removes_the_batch_and_requests_are_signed(mpy, server):
    out = deliver(mpy, server, readings=3)
    assert (out["requests"], out["depth"]) == (1, 0)
    headers, body = server.requests[0]
    assert signing.verify(SECRET, "dev-1", headers["X-Timestamp"], "POST", "/data", body, headers["X-Signature"])
    assert json.loads(body)["readings"][0] == {"seq": 0, "ts": sent(server)[0]["ts"], "t": 20.0, "h": 50.0}


def test_batches_until_empty(mpy, server):
    out = deliver(mpy, server, readings=7, batch=3)
    assert (out["requests"], out["depth"]) == (3, 0)


def test_a_signed_ack_may_set_the_clock(mpy, server):
    server.script = [ok(server_time=int(time.time()) + 3600)]
    out = deliver(mpy, server)
    assert out["depth"] == 0 and out["clock_set"] and out["clock_set"][0] >= out["now"] + 3500


def test_rejected_readings_are_final_and_acknowledged(mpy, server):
    server.script = [ok(accepted=2, rejected=[{"seq": 1, "error": "t_out_of_range"}])]
    out = deliver(mpy, server)
    assert (out["depth"], out["dropped"], out["requests"]) == (0, 0, 1)
    assert "reading 1 rejected by the receiver: t_out_of_range" in (mpy.workdir / "log.txt").read_text()


# -- signed 401 stale_timestamp: set the clock, retry ------------------------------


def test_stale_sets_the_clock_and_retries(mpy, server):
    server.script = [answer(401, {"error": "stale_timestamp", "message": "m", "server_time": 1795000000})]
    out = deliver(mpy, server)
    assert out["clock_set"] == [1795000000] and out["depth"] == 0 and out["requests"] == 2


# -- signed 409 seq_conflict: renumber the unsent readings, retry ------------------


def test_seq_conflict_renumbers_and_the_retry_lands(mpy, server):
    conflict = {"error": "seq_conflict", "message": "m", "next_seq": 500, "conflicts": [0, 1]}
    server.script = [answer(409, conflict)]
    out = deliver(mpy, server, readings=5, batch=3)
    first, retry = sent(server, 0), sent(server, 1)
    assert [r["seq"] for r in first] == [0, 1, 2] and [r["seq"] for r in retry] == [500, 501, 502]
    assert [{**r, "seq": 0} for r in first] == [{**r, "seq": 0} for r in retry], "only seq changes"
    assert [r["seq"] for r in sent(server, 2)] == [503, 504], "every unsent reading renumbered"
    assert (out["depth"], out["dropped"], out["next_seq"], out["requests"]) == (0, 0, 505, 3)


def test_readings_below_the_lowest_conflict_keep_their_seqs(mpy, server):
    # 0 and 1 may be re-sends the receiver already stored under those seqs: renumbering
    # them would store them twice. Only the conflict and what follows it move.
    conflict = {"error": "seq_conflict", "message": "m", "next_seq": 500, "conflicts": [3, 2]}
    server.script = [answer(409, conflict)]
    out = deliver(mpy, server, readings=5)
    assert [r["seq"] for r in sent(server, 1)] == [0, 1, 500, 501, 502]
    assert [r["ts"] for r in sent(server, 1)] == [r["ts"] for r in sent(server, 0)]
    assert (out["depth"], out["next_seq"]) == (0, 503)


def test_a_second_conflict_in_one_wake_keeps_the_batch(mpy, server):
    conflict = {"error": "seq_conflict", "message": "m", "next_seq": 500, "conflicts": [0]}
    server.script = [answer(409, conflict), answer(409, {**conflict, "next_seq": 900})]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert out["next_seq"] == 503 and out["requests"] == 2


def test_a_conflict_without_next_seq_keeps_the_batch(mpy, server):
    server.script = [answer(409, {"error": "seq_conflict", "message": "m"})]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert out["next_seq"] == 3


def test_a_next_seq_past_32_bits_keeps_the_batch(mpy, server):
    # The receiver keeps next_seq below 2**32 (docs/protocol.md); a board keeps seqs in 32
    # bits, so one past it is neither renumbered into nor a reason to drop.
    server.script = [answer(409, {"error": "seq_conflict", "message": "m", "next_seq": 2**53, "conflicts": [0]})]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert out["next_seq"] == 3 and out["dropped"] == 0


# -- signed other 4xx: poison ------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_a_signed_4xx_is_poison_dropped_and_counted(mpy, server, status):
    server.script = [answer(status, {"error": "invalid_body", "message": "readings[0].t must be a number"})]
    out = deliver(mpy, server)
    assert (out["depth"], out["dropped"]) == (0, 3)
    assert out["drops"] == {"drop_full": 0, "drop_clock": 0, "drop_poison": 3}
    assert out["rtc"]["last_error"] == f"{status} invalid_body"
    log = (mpy.workdir / "log.txt").read_text()
    assert f"batch of 3 dropped, receiver said {status} invalid_body: readings[0].t must be a number" in log


# -- unverified answers: keep, back off, count -------------------------------------

# A server_time years from any clock the board could have (a fixed value: one taken at
# import would drift towards the board's clock the longer the run took to get here).
FORGED_TIME = 2_000_000_000
IMPOSTORS = {
    "captive portal 200 page": answer(
        200, b"<html><body>Welcome to Hotel Wi-Fi. <a href=/login>Log in</a></body></html>", sign=False
    ),
    "forged 200 ack, server_time years off": answer(
        200, {"accepted": 3, "duplicates": 0, "rejected": [], "server_time": FORGED_TIME}, sign=False
    ),
    "gateway 403": answer(403, {"message": "Forbidden"}, sign=False),
    "gateway 404": answer(404, {"message": "Not Found"}, sign=False),
    "gateway 413": answer(413, {"message": "Request Entity Too Large"}, sign=False),
    "gateway 429": answer(429, {"message": "Too Many Requests"}, sign=False),
    "gateway 503": answer(503, {"message": "Service Unavailable"}, sign=False),
    "302 redirect": answer(302, b"", sign=False, headers={"Location": "http://portal.example/login"}),
    "signed with another secret": answer(200, {"accepted": 3, "server_time": FORGED_TIME}, sign="cd" * 32),
    "signed for another request": answer(200, {"accepted": 3, "server_time": FORGED_TIME}, sign="other"),
    "unsigned stale_timestamp": answer(
        401, {"error": "stale_timestamp", "message": "m", "server_time": FORGED_TIME}, sign=False
    ),
    "unsigned 400": answer(400, {"error": "invalid_body", "message": "m"}, sign=False),
    "unsigned 409": answer(409, {"error": "seq_conflict", "message": "m", "next_seq": 900}, sign=False),
    "chunked page without a length": answer(200, b"", sign=False, headers={"chunked": True}),
    "portal cookie longer than any header of ours": answer(
        200, b"<html>login</html>", sign=False, headers={"Set-Cookie": "s=" + "x" * 3000}
    ),
}


@pytest.mark.parametrize("impostor", IMPOSTORS.values(), ids=IMPOSTORS.keys())
def test_an_answer_not_signed_for_the_request_changes_nothing(mpy, server, impostor):
    server.script = [impostor]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert out["rtc"]["unverified"] == 1 and out["next_seq"] == 3
    assert "not signed for this request" in out["rtc"]["last_error"]


def test_a_replayed_ack_does_not_acknowledge_the_next_batch(mpy, server):
    server.script = [ok(), "replay"]
    out = deliver(mpy, server, readings=6, batch=3)
    kept_and_backed_off(out, readings=3)
    assert out["rtc"]["unverified"] == 1 and [r["seq"] for r in sent(server, 1)] == [3, 4, 5]


def test_an_answer_larger_than_ours_could_be_is_unverified(mpy, server):
    server.script = [answer(200, b"<html>" + b"x" * 20000 + b"</html>", sign=True)]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert out["rtc"]["unverified"] == 1


def test_unauthorized_keeps_the_readings(mpy, server):
    # The receiver does not know the board (or its secret): it cannot sign, and says 401.
    server.script = [answer(401, {"error": "unauthorized", "message": "m"}, sign=False)]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert "re-provision" in (mpy.workdir / "log.txt").read_text()


def test_unverified_answers_are_reported_in_the_next_status(mpy, server):
    server.script = [IMPOSTORS["gateway 429"], IMPOSTORS["captive portal 200 page"], ok()]
    out = deliver(mpy, server, calls=3)
    assert out["depth"] == 0 and out["rtc"]["unverified"] == 2
    status = json.loads(server.requests[2][1])["status"]
    assert status == {
        "fw": "t",
        "unverified": 2,
        "dropped": 0,
        "drop_full": 0,
        "drop_clock": 0,
        "drop_poison": 0,
    }


# -- Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sign", "retry_after", "low", "high"),
    [(True, "1800", 1800, 2250), (False, "1800", 1800, 2250), (False, "999999999", 3600, 4500)],
    ids=["signed 503", "gateway 429", "capped at an hour"],
)
def test_retry_after_is_honoured(mpy, server, sign, retry_after, low, high):
    status = 503 if sign is True else 429
    server.script = [
        answer(status, {"error": "throttled", "message": "m"}, sign=sign, headers={"Retry-After": retry_after})
    ]
    out = deliver(mpy, server)
    wait = out["rtc"]["tx_next"] - out["now"]
    assert out["depth"] == 3 and low - 2 <= wait <= high + 2


def test_a_retry_after_date_falls_back_to_the_backoff(mpy, server):
    date = {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}
    server.script = [answer(503, {"message": "m"}, sign=False, headers=date)]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert out["rtc"]["tx_next"] - out["now"] <= 62


# -- 5xx, timeout, DNS/connection error, truncated answer: keep, back off -----------


@pytest.mark.parametrize(
    "action",
    [answer(500, {"error": "internal"}), answer(503, {}), "reset", "truncate"],
    ids=["signed 500", "signed 503", "reset", "truncated"],
)
def test_server_and_network_failures_keep_the_batch_and_back_off(mpy, server, action):
    server.script = [action]
    out = deliver(mpy, server)
    kept_and_backed_off(out)
    assert out["requests"] == 1 and out["rtc"].get("unverified", 0) == 0


def test_timeout_is_shorter_than_the_watchdog(mpy, server):
    server.script = [("delay", 7)]
    started = time.monotonic()
    out = deliver(mpy, server)
    assert out["depth"] == 3 and time.monotonic() - started < 7


def test_connection_refused_keeps_the_batch(mpy):
    class Closed:
        server_port = 9  # discard: nothing listens on loopback

    out = deliver(mpy, Closed())
    kept_and_backed_off(out)
    assert out["requests"] == 1 and "send" in out["rtc"]["last_error"]


def test_an_unknown_host_keeps_the_batch(mpy, server):
    mpy.fake("fakeclock", FAKE_CLOCK)
    out = mpy.json(f"""
        import json, time, spool, delivery, transport, fakeclock, log
        log.echo = False
        sp = spool.Spool(100)
        sp.append(int(time.time()), 200, 500, True)
        rtc = {{}}
        cfg = {{"device_id": "d", "secret": {SECRET!r}, "endpoint": "http://no-such-host.invalid/data",
               "batch_size": 20, "interval_s": 60}}
        delivery.deliver(cfg, sp, fakeclock, rtc, {{}}, log, time.ticks_add(time.ticks_ms(), 30000),
                          bytearray(transport.buffer_size(cfg["batch_size"])))
        print(json.dumps([sp.depth(), rtc["tx_fails"], rtc["last_error"]]))
    """)
    assert out[:2] == [1, 1] and out[2].startswith("send")


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


def test_a_re_send_is_byte_for_byte_the_first_send(mpy, server):
    # Readings taken before the clock was set go out converted by their epoch's offset; the
    # answer to the first send is lost and the clock is set again before the re-send.
    # The receiver tells a re-send from a seq conflict by content: the readings must match.
    mpy.fake("fakeclock", FAKE_CLOCK)
    server.script = ["truncate", ok()]
    endpoint = f"http://127.0.0.1:{server.server_port}/data"
    mpy.json(f"""
        import json, time, spool, delivery, transport, fakeclock, log
        log.echo = False
        sp = spool.Spool(100)
        sp.new_clock_epoch()
        for i in range(3):
            sp.append(946684900 + 60 * i, 200 + i, 500, False)
        sp.set_clock_offset(int(time.time()) - 946685100)
        rtc = {{}}
        cfg = {{"device_id": "dev-1", "secret": {SECRET!r}, "endpoint": {endpoint!r}, "batch_size": 20,
               "interval_s": 60}}
        delivery.deliver(cfg, sp, fakeclock, rtc, {{}}, log, time.ticks_add(time.ticks_ms(), 30000),
                          bytearray(transport.buffer_size(cfg["batch_size"])))
        sp.set_clock_offset(int(time.time()) + 3600 - 946685100)
        sp = spool.Spool(100)
        delivery.deliver(cfg, sp, fakeclock, rtc, {{}}, log, time.ticks_add(time.ticks_ms(), 30000),
                          bytearray(transport.buffer_size(cfg["batch_size"])))
        print(json.dumps(sp.depth()))
    """)
    first, resend = sent(server, 0), sent(server, 1)
    assert len(first) == 3 and first == resend
    assert [r["ts"] for r in first] == [int(r["ts"]) for r in first] and first[2]["ts"] - first[0]["ts"] == 120
