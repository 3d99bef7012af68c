"""The receiver on DynamoDB over HTTP beside SQLite, in the same run: 50 concurrent boards
posting signed 20-reading batches back to back to the local endpoint (own process), whose
store is the SQLite file, then DynamoDB tables on a DynamoDB server (moto's server app, own
process, host_tools/dynamodb_server.py) reached over HTTP as a Lambda reaches DynamoDB.

A third run puts one board on DynamoDB: the emulator serves one request at a time (moto is
not thread-safe), so at 50 boards its queue is most of the latency, which DynamoDB, serving
each partition in parallel, would not add.

Per batch it prints the handler's latency p50/p99 (the ingest handler's own `ms`, from its
log lines: store calls included, HTTP parsing and queueing excluded), the end-to-end latency
the boards saw, and DynamoDB calls per batch by operation, counted on the endpoint's client.
Every 5th batch a board sends twice at once on two connections (its retry racing the
original), so the figures include duplicates and racing writes; the endpoint counts the
writes that overlapped another of the same board. A 503 (store busy) is sent again, as a
board would, and counted; every batch must end in a 200, and the tables (or the file) must
then hold each reading once.

    .venv/bin/python bench/store_load.py [--devices 50] [--batches 10] [--json]
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud import signing  # noqa: E402
from cloud.stores.dynamodb import DynamoDBStore, create_tables  # noqa: E402
from host_tools import registry  # noqa: E402
from host_tools.dynamodb_server import MotoServer  # noqa: E402

BATCH = 20
TWIN_EVERY = 5
BUSY_RETRIES = 5
BUSY_PAUSE_S = 1.0  # shorter than a board's Retry-After: the bench measures, it does not wait politely
READINGS, DEVICES = "load-readings", "load-devices"

SERVER = """
import collections, json, sys, threading
from cloud import observability
from cloud.local import LocalEndpoint
from host_tools import registry
from host_tools.sim.fleet import OverlapCounter
data_dir, kind, url = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(data_dir + "/endpoint.log", "w")
observability.set_output(log)
calls = collections.Counter()
if kind == "dynamodb":
    from cloud.stores.dynamodb import DynamoDBStore, client
    from host_tools.dynamodb_server import LOCAL_SESSION
    db = client(url, pool=64, **LOCAL_SESSION)
    db.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
    store = OverlapCounter(DynamoDBStore(sys.argv[4], sys.argv[5], db))
else:
    store = OverlapCounter(registry.local_store(data_dir))
with LocalEndpoint(data_dir, read_token="bench-read-token-not-secret", store=store) as endpoint:
    print(endpoint.port, flush=True)
    sys.stdin.read()  # until the bench closes our stdin
    totals = endpoint.totals
log.close()
print(json.dumps({"calls": dict(calls), "totals": totals, "overlapping": store.overlapping}), flush=True)
"""


def post(port: int, device_id: str, secret: str, readings: list[dict[str, Any]]) -> tuple[int, bytes, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"device_id": device_id, "readings": readings}).encode()
        headers = signing.signed_headers(secret, device_id, int(time.time()), "/data", body)
        started = time.perf_counter()
        connection.request("POST", "/data", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(), time.perf_counter() - started
    finally:
        connection.close()


def deliver(port: int, device_id: str, secret: str, readings: list[dict[str, Any]], out: dict[str, Any]) -> None:
    """As a board does: a 503 (store busy) is sent again after a pause; anything else but a 200 fails."""
    for _ in range(BUSY_RETRIES):
        status, body, took = post(port, device_id, secret, readings)
        out["latencies"].append(took)
        if status != 503:
            break
        out["busy"] += 1
        time.sleep(BUSY_PAUSE_S)
    if status != 200:
        out["failures"].append(f"{device_id} seq {readings[0]['seq']}: HTTP {status} {body[:160]!r}")


def board(port: int, device_id: str, secret: str, batches: int, out: dict[str, Any]) -> None:
    now = int(time.time())
    for n in range(batches):
        seqs = range(n * BATCH, (n + 1) * BATCH)
        readings = [{"seq": s, "ts": now - 3000 + s, "t": 20.0 + s % 7, "h": 50.5} for s in seqs]
        sends = 2 if n % TWIN_EVERY == TWIN_EVERY - 1 else 1
        twins = [threading.Thread(target=deliver, args=(port, device_id, secret, readings, out)) for _ in range(sends)]
        for thread in twins:
            thread.start()
        for thread in twins:
            thread.join(120)


def handler_ms(log_file: Path) -> list[float]:
    figures = []
    for line in log_file.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("message") == "batch stored":
            figures.append(entry["ms"])
    return figures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(kind: str, devices: int, batches: int) -> dict[str, Any]:
    # The DynamoDB server runs in both phases, so both share the machine with it.
    with tempfile.TemporaryDirectory() as data_dir, MotoServer() as moto:
        ids = [f"load-{n:03d}" for n in range(devices)]
        if kind == "dynamodb":
            db = moto.client()
            create_tables(db, READINGS, DEVICES)
            store: Any = DynamoDBStore(READINGS, DEVICES, db)
        else:
            store = registry.local_store(data_dir)
        secrets = {d: registry.add_device(store, d) for d in ids}
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, data_dir, kind, moto.url, READINGS, DEVICES],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        out: dict[str, Any] = {"latencies": [], "failures": [], "busy": 0}
        try:
            port = int(server.stdout.readline())
            threads = [threading.Thread(target=board, args=(port, d, secrets[d], batches, out)) for d in ids]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(600)
            wall = time.perf_counter() - started
        finally:
            server.stdin.close()
            figures = json.loads(server.stdout.readline() or "{}")
            server.wait(timeout=30)
        handler = handler_ms(Path(data_dir) / "endpoint.log")
        held = [store.query_readings(d, limit=10**4)[0] for d in ids]
    if out["failures"]:
        raise SystemExit(f"{len(out['failures'])} failed batch(es); first: {out['failures'][0]}")
    stored = sum(len(items) for items in held)
    if stored != devices * batches * BATCH or any(len({i["seq"] for i in items}) != len(items) for items in held):
        raise SystemExit(f"{kind}: the store holds {stored} readings; the boards sent {devices * batches * BATCH}")
    posts = figures["totals"].get("200", 0)
    return {
        "store": kind,
        "devices": devices,
        "posts": posts,
        "wall_s": round(wall, 1),
        "handler_p50_ms": round(statistics.median(handler), 1),
        "handler_p99_ms": round(percentile(handler, 0.99), 1),
        "end_to_end_p50_ms": round(statistics.median(out["latencies"]) * 1000, 1),
        "end_to_end_p99_ms": round(percentile(out["latencies"], 0.99) * 1000, 1),
        "calls_per_batch": {op: round(n / posts, 3) for op, n in sorted(figures["calls"].items())},
        "duplicates": figures["totals"].get("duplicates", 0),
        "racing_writes": sum(figures["overlapping"].values()),
        "busy_503": out["busy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50, help="concurrent boards (default 50)")
    parser.add_argument("--batches", type=int, default=10, help="batches per board (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not 1 <= args.devices <= 200 or not 1 <= args.batches <= 100:
        parser.error("--devices must be 1-200 and --batches 1-100")
    # DynamoDB once more with one board: the emulator serves one request at a time, so at 50
    # boards its queue is most of the latency; one board shows the time of the calls themselves.
    runs = [("sqlite", args.devices), ("dynamodb", args.devices), ("dynamodb", 1)]
    results = [run(kind, devices, args.batches) for kind, devices in runs]
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"results": results, "load_average": load}))
        return
    print(f"{args.devices} boards at once, {BATCH}-reading signed batches, every {TWIN_EVERY}th sent twice at once;")
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores, shared)")
    for r in results:
        calls = ", ".join(f"{op} {n}" for op, n in r["calls_per_batch"].items()) or "(in-process SQLite)"
        print(f"  {r['store']:<8} {r['devices']} board(s): {r['posts']} batches in {r['wall_s']} s")
        print(f"           handler p50 {r['handler_p50_ms']} ms, p99 {r['handler_p99_ms']} ms")
        print(f"           end to end p50 {r['end_to_end_p50_ms']} ms, p99 {r['end_to_end_p99_ms']} ms")
        print(f"           calls per batch: {calls}")
        print(
            f"           duplicates absorbed {r['duplicates']}, racing writes {r['racing_writes']}, "
            f"503 store busy (sent again) {r['busy_503']}"
        )


if __name__ == "__main__":
    main()
