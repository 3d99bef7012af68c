"""The fault-injecting proxy on its own, in front of a tiny receiver."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host_tools.sim.chaos import ChaosProxy


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


def exchange(proxy, device_id="dev-1", body=b"{}"):
    """The raw answer to one POST through the proxy, or None when the connection failed."""
    host, port = proxy.url.removeprefix("http://").split(":")
    request = b"POST /data HTTP/1.1\r\nHost: x\r\nX-Device-Id: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        device_id.encode(),
        len(body),
        body,
    )
    try:
        with socket.create_connection((host, int(port)), timeout=1) as conn:
            conn.sendall(request)
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return None
    return data


def send(proxy):
    """(status, whole answer?) read the way the firmware does: all of Content-Length or nothing."""
    data = exchange(proxy)
    if data is None:
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
        ("twin", 2, 200),
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


def parse(answer):
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("impostor", "status", "content_type", "body_has"),
    [
        ("portal", 200, "text/html", b"accept the terms"),
        ("gateway_403", 403, "application/json", b'{"message":"Forbidden"}'),
        ("gateway_404", 404, "application/json", b'{"message":"Not Found"}'),
        ("gateway_413", 413, "application/json", b'{"message":"Request Entity Too Large"}'),
        ("gateway_429", 429, "application/json", b'{"message":"Too Many Requests"}'),
        ("redirect", 302, "text/html", b""),
    ],
)
def test_impostors_answer_in_the_receivers_place_unsigned(upstream, impostor, status, content_type, body_has):
    with ChaosProxy(f"http://127.0.0.1:{upstream.server_port}", {impostor: 1.0}) as proxy:
        got_status, headers, body = parse(exchange(proxy))
        assert proxy.stats.faults == {impostor: 1}
    assert (got_status, headers["content-type"].split(";")[0]) == (status, content_type)
    assert body_has in body
    assert "x-signature" not in headers
    if impostor.startswith("gateway_"):
        assert "apigw-requestid" in headers
    if impostor == "redirect":
        assert headers["location"].startswith("http://")
    assert upstream.hits == 0  # nothing reached the receiver


def test_a_forged_ack_claims_the_whole_batch_and_moves_the_clock_an_hour(upstream):
    batch = json.dumps({"device_id": "dev-1", "readings": [{"seq": i} for i in range(7)]}).encode()
    with ChaosProxy(f"http://127.0.0.1:{upstream.server_port}", {"forged_ack": 1.0}) as proxy:
        before = time.time()
        status, headers, body = parse(exchange(proxy, body=batch))
    forged = json.loads(body)
    assert status == 200 and "x-signature" not in headers
    assert forged["accepted"] == 7 and forged["rejected"] == []
    assert forged["server_time"] >= before + 3600 - 1
    assert upstream.hits == 0


def test_replay_answers_with_an_earlier_genuine_answer_for_the_same_device(upstream):
    rates = {"replay": 0.5}
    with ChaosProxy(f"http://127.0.0.1:{upstream.server_port}", rates, seed=3) as proxy:
        answers = [exchange(proxy, "dev-1") for _ in range(12)]
        other = exchange(proxy, "dev-2")
        replayed = proxy.stats.faults["replay"]
    bodies = [json.loads(parse(a)[2]) for a in answers]
    # Each genuine answer counts a new hit; a replay repeats the hit number of the last one.
    hits_seen = [b["hit"] for b in bodies]
    assert replayed >= 3
    assert len(set(hits_seen)) < len(hits_seen)
    assert all(later >= earlier for earlier, later in zip(hits_seen, hits_seen[1:], strict=False))
    # The first request of a device has nothing to replay: it is forwarded.
    assert json.loads(parse(other)[2])["hit"] == upstream.hits
