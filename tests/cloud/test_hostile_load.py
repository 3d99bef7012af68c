"""`dhtlink serve` holding 2,000 slow connections keeps answering signed POSTs.

The slow clients (from five addresses) send a request line and then one header byte at a time (slowloris); then
they all close at once. Through both, a board's signed POSTs must be answered and stored,
and none may wait for the slow clients to be dropped. The test raises its own open-file
limit for the 2,000 sockets (the server raises its own); where the hard limit is lower, it
holds what the limit allows.

How fast they are answered is a figure of the machine's load as much as of the server (each
drip is 2,000 bytes the server reads before the POST that follows it): `bench/hostile_load.py`
runs this same scenario and judges the 1 s target beside the load average.
"""

import json
import os
import resource
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud import signing
from cloud.local.files import local_store
from cloud.local.server import READ_TIMEOUT_S
from tests.cloud import hostile
from tests.cloud.test_hostile import start_serve

SLOW = 2000
SLOW_FROM = [f"127.0.1.{n}" for n in range(1, 6)]  # 400 slow clients each
# The 1 s target, as the server's own CPU time while a POST waits for its answer: what it does
# before answering (reading the drip, accepting, the POST itself), which the load on the
# machine stretches in wall time (1.06 s was the most at load average 20 on 2 cores).
DEADLINE_CPU_S = 1.0
# Half the server's deadline for receiving a request: a POST queued until the slow clients
# time out takes longer than this, whatever the load.
STARVED_S = READ_TIMEOUT_S / 2


def _hold_files(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    return ceiling


def _cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system, every thread), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


@dataclass
class Outcome:
    slow: int  # slow connections held
    latencies: list[float]  # of each signed POST, seconds
    server_cpu: list[float]  # the server's CPU seconds while each POST waited
    posted: int
    stored: int


def slowloris(data_dir: Path, wanted: int = SLOW) -> Outcome:
    """The scenario: `wanted` slow connections dripping, a signed POST after each drip, then
    all of them closed at once and five more POSTs."""
    slow = min(wanted, _hold_files(wanted + 200) - 200)
    local_store(data_dir).add_device(hostile.DEVICE, hostile.SECRET, 1)
    process, port = start_serve(data_dir)
    held: list[socket.socket] = []
    latencies: list[float] = []
    server_cpu: list[float] = []

    def post(seq: int) -> None:
        before = _cpu_s(process.pid)
        latencies.append(_signed_post(port, seq))
        server_cpu.append(_cpu_s(process.pid) - before)

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
            post(seq)
            time.sleep(0.5)
        for conn in held:
            conn.close()
        held.clear()
        for _ in range(5):  # the mass close must not stall the server either
            seq += 1
            post(seq)
        stored = len(local_store(data_dir).query_readings(hostile.DEVICE, limit=1000)[0])
    finally:
        for conn in held:
            conn.close()
        process.terminate()
        process.wait(timeout=10)
    return Outcome(slow, latencies, server_cpu, seq, stored)


@pytest.mark.slow
def test_slow_connections_do_not_starve_signed_posts(tmp_path):
    outcome = slowloris(tmp_path / "data")
    assert outcome.slow >= 1000, f"the open-file limit allows only {outcome.slow} slow connections"
    assert outcome.stored == outcome.posted
    assert max(outcome.latencies) < STARVED_S, outcome.latencies
    # Before accepting in batches, the first POST after 2,000 connects took 2.5 s on a quiet machine.
    assert max(outcome.server_cpu) < DEADLINE_CPU_S, outcome.server_cpu
