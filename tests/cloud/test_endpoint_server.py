"""The local endpoint's HTTP server: timeouts, the connection cap, keep-alive, framing, failures."""

import io
import json
import resource
import socket
import time

import pytest

from cloud import observability, signing
from cloud.local import LocalEndpoint
from cloud.local.server import CLIENT_CONNECTION_CAP
from tests.cloud.hostile import parse_answers


def _connect(endpoint: LocalEndpoint) -> socket.socket:
    return socket.create_connection(("127.0.0.1", endpoint.port), timeout=5)


def _read_until_closed(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def _signed_post(secret: str, device_id: str, seq: int, chunked: bool = False) -> bytes:
    now = int(time.time())
    body = json.dumps({"device_id": device_id, "readings": [{"seq": seq, "ts": now - 5, "t": 20.0, "h": 50.0}]})
    headers = signing.signed_headers(secret, device_id, now, "/data", body.encode())
    head = "POST /data HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if chunked:
        half = len(body) // 2
        chunks = f"{half:x}\r\n{body[:half]}\r\n{len(body) - half:x}\r\n{body[half:]}\r\n0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n" + chunks).encode()
    return (head + f"Content-Length: {len(body)}\r\n\r\n" + body).encode()


def _one_answer(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    size = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < size:
        rest += conn.recv(65536)
    (answer,) = parse_answers(head + b"\r\n\r\n" + rest)
    return answer


def test_keep_alive_and_chunked_bodies(tmp_path):
    with LocalEndpoint(tmp_path) as endpoint:
        secret = endpoint.add_device("porch")
        with _connect(endpoint) as conn:
            for seq, chunked in ((1, False), (2, True), (3, False)):
                conn.sendall(_signed_post(secret, "porch", seq, chunked))
                status, _headers, body = _one_answer(conn)
                assert status == 200 and json.loads(body)["accepted"] == 1
        assert [r["seq"] for r in endpoint.store.query_readings("porch")[0]] == [3, 2, 1]


def test_a_request_not_received_in_time_gets_408_and_the_connection_closes(tmp_path):
    with LocalEndpoint(tmp_path, read_timeout_s=1) as endpoint, _connect(endpoint) as conn:
        conn.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for _ in range(5):  # dripping bytes keeps waitress's inactivity timer reset; not this deadline
            time.sleep(0.3)
            try:
                conn.sendall(b"X")
            except OSError:
                break
        ((status, headers, body),) = parse_answers(_read_until_closed(conn))
        assert status == 408 and json.loads(body)["error"] == "request_timeout"
        assert headers["connection"] == "close"
        assert time.monotonic() - started < 8  # 1 s limit, checked every second, on a busy machine


def test_an_idle_keep_alive_connection_is_closed(tmp_path):
    with LocalEndpoint(tmp_path, idle_timeout_s=1) as endpoint, _connect(endpoint) as conn:
        started = time.monotonic()
        assert conn.recv(1) == b""
        assert time.monotonic() - started < 8  # 1 s limit, checked every second, on a busy machine


def _wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server's loop did not catch up"
        time.sleep(0.02)


def test_the_connection_cap_refuses_with_a_json_503(tmp_path):
    with LocalEndpoint(tmp_path, connection_cap=5) as endpoint:
        held = [_connect(endpoint) for _ in range(5)]
        _wait_for(lambda: len(endpoint._server.active_channels) == 5)  # the loop has taken them all
        with _connect(endpoint) as refused:
            ((status, headers, body),) = parse_answers(_read_until_closed(refused))
        assert status == 503 and json.loads(body)["error"] == "unavailable"
        assert headers["retry-after"].isdigit()
        held.pop().close()
        _wait_for(lambda: len(endpoint._server.active_channels) < 5)
        with _connect(endpoint) as conn:
            conn.sendall(b"GET /devices HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _one_answer(conn)[0] == 401  # served again: no token, but an answer
        for conn in held:
            conn.close()


class _BrokenStore:
    def get_device(self, device_id):
        raise RuntimeError("disk on fire")


def test_an_unexpected_exception_is_a_json_500_and_a_log_line_naming_the_request(tmp_path):
    lines = io.StringIO()
    observability.set_output(lines)
    try:
        with LocalEndpoint(tmp_path, store=_BrokenStore(), read_token="t" * 24) as endpoint, _connect(endpoint) as conn:
            conn.sendall(_signed_post("00" * 32, "porch", 1))
            status, _headers, body = _one_answer(conn)
    finally:
        observability.set_output(None)
    answer = json.loads(body)
    assert status == 500 and answer["error"] == "internal_error"
    assert "disk on fire" not in answer["message"] and "Traceback" not in answer["message"]
    (logged,) = [json.loads(line) for line in lines.getvalue().splitlines() if "unhandled" in line]
    assert logged["level"] == "ERROR" and logged["route"] == "POST /data" and logged["device_id"] == "porch"
    assert logged["request_id"] in answer["message"] and "disk on fire" in logged["exception"]


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("PUT", "/data", 405, "GET, POST"),
        ("POST", "/devices", 405, "GET"),
        ("GET", "/nope", 404, None),
        ("POST", "/", 405, "GET"),  # the dashboard's page
    ],
)
def test_routes_and_methods(tmp_path, method, path, status, allow):
    with LocalEndpoint(tmp_path) as endpoint, _connect(endpoint) as conn:
        conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        got, headers, body = _one_answer(conn)
    assert got == status and set(json.loads(body)) == {"error", "message"}
    assert headers.get("allow") == allow


def test_one_client_holding_4000_idle_sockets_does_not_lock_boards_out(tmp_path):
    """The issue's attack: one address opens 4,000 connections and sends nothing. It gets
    its share (CLIENT_CONNECTION_CAP) and then JSON 503s; a board elsewhere is still served."""
    wanted = 4000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted + 300 if hard == resource.RLIM_INFINITY else min(wanted + 300, hard)
    if soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    attempts = min(wanted, ceiling - 300)
    assert attempts > CLIENT_CONNECTION_CAP, f"the open-file limit allows only {attempts} sockets"
    held = []
    with LocalEndpoint(tmp_path) as endpoint:
        secret = endpoint.add_device("board-1")
        try:
            for _ in range(attempts):
                conn = socket.socket()
                conn.bind(("127.0.0.2", 0))  # the hostile client's own address on the loopback
                conn.settimeout(5)
                conn.connect(("127.0.0.1", endpoint.port))
                held.append(conn)
            _wait_for(lambda: len(endpoint._server.active_channels) == CLIENT_CONNECTION_CAP)
            with _connect(endpoint) as board:
                board.sendall(_signed_post(secret, "board-1", 1))
                status, _headers, body = _one_answer(board)
            assert status == 200 and json.loads(body)["accepted"] == 1, body
            with socket.socket() as extra:
                extra.bind(("127.0.0.2", 0))
                extra.settimeout(5)
                extra.connect(("127.0.0.1", endpoint.port))
                ((status, _headers, body),) = parse_answers(_read_until_closed(extra))
            assert status == 503 and str(CLIENT_CONNECTION_CAP) in json.loads(body)["message"]
        finally:
            for conn in held:
                conn.close()
