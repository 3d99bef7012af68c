"""`dhtlink serve` holding 2,000 slow connections keeps answering signed POSTs within 1 s.

The slow clients (from five addresses) send a request line and then one header byte at a time (slowloris); then
they all close at once. Through both, a board's signed POSTs must be answered within 1 s
and stored. The test raises its own open-file limit for the 2,000 sockets (the server
raises its own); where the hard limit is lower, it holds what the limit allows.
"""

import json
import resource
import socket
import time

import pytest

from cloud import signing
from cloud.local.files import local_store
from tests.cloud import hostile
from tests.cloud.test_hostile import start_serve

SLOW = 2000
SLOW_FROM = [f"127.0.1.{n}" for n in range(1, 6)]  # 400 slow clients each
DEADLINE_S = 1.0


def _hold_files(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    return ceiling


def _signed_post(port: int, seq: int) -> float:
    now = int(time.time())
    body = json.dumps({"device_id": hostile.DEVICE, "readings": [{"seq": seq, "ts": now - 5, "t": 21.0, "h": 40.0}]})
    headers = signing.signed_headers(hostile.SECRET, hostile.DEVICE, now, "/data", body.encode())
    raw = "POST /data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    raw += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + f"Content-Length: {len(body)}\r\n\r\n" + body
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw.encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    elapsed = time.perf_counter() - started
    ((status, _headers, reply),) = hostile.parse_answers(answer)
    assert status == 200 and json.loads(reply)["accepted"] == 1, reply
    return elapsed


@pytest.mark.slow
def test_slow_connections_do_not_starve_signed_posts(tmp_path):
    slow = min(SLOW, _hold_files(SLOW + 200) - 200)
    data_dir = tmp_path / "data"
    local_store(data_dir).add_device(hostile.DEVICE, hostile.SECRET, 1)
    process, port = start_serve(data_dir)
    held: list[socket.socket] = []
    latencies = []
    try:
        for n in range(slow):
            # From several loopback addresses, each under the server's cap per client address
            # (the board posts from 127.0.0.1).
            conn = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(SLOW_FROM[n % 5], 0))
            conn.sendall(b"POST /data HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(conn)
        seq = 0
        for _round in range(6):  # ~3 s of dripping, well inside the server's 10 s request deadline
            for conn in held:
                conn.send(b"a")
            seq += 1
            latencies.append(_signed_post(port, seq))
            time.sleep(0.5)
        for conn in held:
            conn.close()
        held.clear()
        for _ in range(5):  # the mass close must not stall the server either
            seq += 1
            latencies.append(_signed_post(port, seq))
        stored = local_store(data_dir).query_readings(hostile.DEVICE, limit=1000)[0]
    finally:
        for conn in held:
            conn.close()
        process.terminate()
        process.wait(timeout=10)
    assert slow >= 1000, f"the open-file limit allows only {slow} slow connections"
    assert max(latencies) < DEADLINE_S, latencies
    assert len(stored) == seq
