"""Local endpoint under load: many devices posting signed 20-reading batches over real HTTP.

The endpoint (LocalEndpoint, SQLite store) runs in its own process, as `dhtlink serve`
does; this process registers the devices in the same data dir, then runs one thread per
simulated device, each with its own keep-alive HTTP/1.1 connection, posting batches back
to back (no think time: this measures capacity, not a realistic fleet). Every answer
must be a 200 that accepted the whole batch. Reports readings/s over the whole run and
p50/p99 request latency. Bounded by --batches per device and by --max-seconds.

In the same run it measures the limit the HTTP server is judged against: the ingest
handler called with no HTTP at the same concurrency (one thread per device, the same
signed 20-reading batches, the same store settings, so commits are shared as in the
server), printed beside the server's figure with the load average at both ends.

    .venv/bin/python bench/endpoint_load.py [--devices 50] [--batches 20] [--json]
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

from cloud import ingest, observability, signing  # noqa: E402
from cloud.local.server import to_event  # noqa: E402
from host_tools import registry  # noqa: E402

BATCH = 20
TARGET_READINGS_S = 2000
TARGET_P99_MS = 50
TARGET_FRACTION_OF_LIMIT = 0.5

SERVER = """
import io, sys
from cloud import observability
from cloud.local import LocalEndpoint
observability.set_output(io.StringIO())  # request logs are not the figures
with LocalEndpoint(sys.argv[1], read_token="bench-read-token-not-secret") as endpoint:
    print(endpoint.port, flush=True)
    sys.stdin.read()  # until the bench closes our stdin
"""


class Device(threading.Thread):
    def __init__(
        self, device_id: str, secret: str, port: int, batches: int, deadline: float, period: float, offset: float
    ) -> None:
        super().__init__(name=device_id, daemon=True)
        self.device_id, self.secret, self.port = device_id, secret, port
        self.batches, self.deadline = batches, deadline
        self.period, self.offset = period, offset  # paced: a batch every `period` s; 0 = back to back
        self.latencies: list[float] = []
        self.stored = 0
        self.failure: str | None = None

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        start = time.perf_counter() + self.offset
        try:
            for n in range(self.batches):
                if time.monotonic() > self.deadline:
                    return
                due = start + n * self.period
                if self.period and due > time.perf_counter():
                    time.sleep(due - time.perf_counter())
                now = int(time.time())
                readings = [
                    {"seq": s, "ts": now - 600 + s % 600, "t": 20.0 + s % 7, "h": 50.5}
                    for s in range(n * BATCH, (n + 1) * BATCH)
                ]
                body = json.dumps({"device_id": self.device_id, "readings": readings}).encode()
                headers = signing.signed_headers(self.secret, self.device_id, now, "/data", body)
                # Latency from when the batch was due: a late send (server backlog) counts against it.
                started = min(due, time.perf_counter()) if self.period else time.perf_counter()
                connection.request("POST", "/data", body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                self.latencies.append(time.perf_counter() - started)
                if response.status != 200 or json.loads(answer)["accepted"] != BATCH:
                    self.failure = f"{self.device_id} batch {n}: HTTP {response.status} {answer[:200]!r}"
                    return
                self.stored += BATCH
        except (OSError, http.client.HTTPException) as error:
            self.failure = f"{self.device_id}: {error!r}"
        finally:
            connection.close()


def _signed_events(device_id: str, secret: str, batches: int) -> list[dict[str, Any]]:
    """The events the server would build from a device's requests: the same signed batches."""
    events = []
    for n in range(batches):
        now = int(time.time())
        readings = [
            {"seq": s, "ts": now - 600 + s % 600, "t": 20.0 + s % 7, "h": 50.5}
            for s in range(n * BATCH, (n + 1) * BATCH)
        ]
        body = json.dumps({"device_id": device_id, "readings": readings}).encode()
        headers = {k.lower(): v for k, v in signing.signed_headers(secret, device_id, now, "/data", body).items()}
        events.append(to_event("POST", "/data", "", headers, body, "127.0.0.1", f"{device_id}-{n}"))
    return events


def handler_limit(devices: int, batches: int) -> dict[str, Any]:
    """Readings/s of ingest.handle with no HTTP, at the server's concurrency: one thread per
    device, as many devices and batches as the HTTP phase, the same store (registry's
    local_store, as `dhtlink serve` opens it), so concurrent commits share an fsync as they
    do in the server. The events are signed before the clock starts: the server's clients
    sign in another process, not in the server's."""
    with tempfile.TemporaryDirectory() as data_dir:
        store = registry.local_store(data_dir)
        work = {}
        for n in range(devices):
            device_id = f"limit-{n:03d}"
            work[device_id] = _signed_events(device_id, registry.add_device(store, device_id), batches)
        failures: list[str] = []

        def post_all(events: list[dict[str, Any]]) -> None:
            for event in events:
                answer = ingest.handle(event, store, time.time(), 400 * 86400)
                if answer["statusCode"] != 200:
                    failures.append(f"the handler answered {answer['statusCode']}: {answer['body'][:200]}")
                    return

        threads = [threading.Thread(target=post_all, args=(events,)) for events in work.values()]
        observability.set_output(open(os.devnull, "w"))  # noqa: SIM115 - request logs are not the figures
        try:
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
        finally:
            observability.set_output(None)
    if failures:
        raise SystemExit(failures[0])
    return {"threads": devices, "batches": devices * batches, "readings_per_s": round(devices * batches * BATCH / wall)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_load(devices: int, batches: int, max_seconds: float, rate: float = 0) -> dict[str, Any]:
    """rate: readings/s offered by the whole fleet, spread evenly over the devices; 0 = back to back."""
    with tempfile.TemporaryDirectory() as data_dir:
        store = registry.local_store(data_dir)
        secrets = {f"load-{n:03d}": registry.add_device(store, f"load-{n:03d}") for n in range(devices)}
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, data_dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            port = int(server.stdout.readline())
            deadline = time.monotonic() + max_seconds
            period = devices * BATCH / rate if rate else 0.0
            threads = [
                Device(d, s, port, batches, deadline, period, period * n / devices)
                for n, (d, s) in enumerate(secrets.items())
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max_seconds + 15)
            wall = time.perf_counter() - started
        finally:
            server.stdin.close()
            server.wait(timeout=10)
        stored_in_file = sum(len(store.query_readings(d, limit=10**6)[0]) for d in secrets)
    failures = [t.failure for t in threads if t.failure]
    if failures:
        raise SystemExit(f"{len(failures)} device(s) failed; first: {failures[0]}")
    latencies = [x for t in threads for x in t.latencies]
    stored = sum(t.stored for t in threads)
    if stored_in_file != stored:
        raise SystemExit(f"the devices were told {stored} readings were stored; the SQLite file holds {stored_in_file}")
    return {
        "devices": devices,
        "batch": BATCH,
        "offered_readings_per_s": rate or None,
        "requests": len(latencies),
        "readings": stored,
        "wall_s": round(wall, 2),
        "readings_per_s": round(stored / wall),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "stopped_by_time_limit": stored < devices * batches * BATCH,
    }


def report(result: dict[str, Any]) -> None:
    mode = (
        f"paced at {result['offered_readings_per_s']} readings/s offered"
        if result["offered_readings_per_s"]
        else "back to back (capacity)"
    )
    print(
        f"{result['devices']} devices, {mode}: "
        f"{result['requests']} requests in {result['wall_s']} s"
        + (" (stopped by --max-seconds)" if result["stopped_by_time_limit"] else "")
    )
    throughput = "met" if result["readings_per_s"] >= TARGET_READINGS_S else "NOT met"
    tail = "met" if result["p99_ms"] < TARGET_P99_MS else "NOT met"
    print(f"  readings/s   {result['readings_per_s']:8d}   target >= {TARGET_READINGS_S}: {throughput}")
    print(f"  latency p50  {result['p50_ms']:8.1f} ms")
    print(f"  latency p99  {result['p99_ms']:8.1f} ms  target < {TARGET_P99_MS} ms: {tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50, help="concurrent simulated devices (default 50)")
    parser.add_argument("--batches", type=int, default=20, help="batches per device and phase (default 20)")
    parser.add_argument("--max-seconds", type=float, default=60, help="stop a phase after this long (default 60)")
    parser.add_argument(
        "--rate",
        type=float,
        default=2 * TARGET_READINGS_S,
        help=f"readings/s the fleet offers in the paced phase (default {2 * TARGET_READINGS_S}: twice the target)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    for name in ("devices", "batches", "max_seconds", "rate"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    # Capacity: every device posts back to back. Then latency at the offered rate: a fleet
    # posting flat out measures queueing (latency = devices in flight / throughput), not service time.
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {
        "limit": handler_limit(args.devices, args.batches),
        "capacity": run_load(args.devices, args.batches, args.max_seconds, 0),
        "paced": run_load(args.devices, args.batches, args.max_seconds, args.rate),
    }
    results["fraction_of_limit"] = round(results["capacity"]["readings_per_s"] / results["limit"]["readings_per_s"], 2)
    results["load_average_1m"] = {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)}
    if args.json:
        print(json.dumps(results))
        return
    load = results["load_average_1m"]
    print(f"local endpoint (SQLite store, own process), {BATCH}-reading signed batches over keep-alive HTTP/1.1")
    print(f"load average (1 min) {load['start']} at the start, {load['end']} at the end")
    limit, served = results["limit"]["readings_per_s"], results["capacity"]["readings_per_s"]
    print(f"  in process, no HTTP ({results['limit']['threads']} threads)   {limit:8d} readings/s")
    print(f"  dhtlink serve, HTTP ({args.devices} devices)      {served:8d} readings/s")
    for name in ("capacity", "paced"):
        report(results[name])
    verdict = "met" if results["fraction_of_limit"] >= TARGET_FRACTION_OF_LIMIT else "NOT met"
    print(f"  capacity / limit  {results['fraction_of_limit']:.2f}   target >= {TARGET_FRACTION_OF_LIMIT}: {verdict}")


if __name__ == "__main__":
    main()
