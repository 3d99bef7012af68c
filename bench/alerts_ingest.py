"""Ingest latency with alerts: does a broken notifier cost the board anything?

One local endpoint (SQLite) with the local alerts worker, one device posting signed
batches of 20 readings over a keep-alive HTTP/1.1 connection, each batch crossing an
'above 30' rule twice (so every batch opens and resolves an alert: two notifications).
Three runs with the same load: no alert rule; a webhook that never answers (each
attempt times out); a webhook that answers 500 (retried with backoff). Prints p50/p99/max
of the POST round trip and how many notifications were attempted. The board's answer
must not move with the notifier.

    .venv/bin/python bench/alerts_ingest.py [--batches 200] [--json]
"""

import argparse
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud import observability, signing  # noqa: E402
from cloud.alerts import admin  # noqa: E402
from cloud.alerts.local import LocalAlerts  # noqa: E402
from cloud.alerts.notify import Notifier  # noqa: E402
from cloud.local import LocalEndpoint  # noqa: E402

DEVICE = "bench-alerts"


class DeadWebhook:
    """A receiver on loopback that hangs (accepts, never answers) or answers 500."""

    def __init__(self, mode: str) -> None:
        self.attempts = 0
        bench = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                bench.attempts += 1
                if mode == "hang":
                    time.sleep(30)
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(mode: str, batches: int) -> dict[str, object]:
    observability.set_output(io.StringIO())
    data = Path(tempfile.mkdtemp(prefix=f"alerts-bench-{mode}-"))
    webhook = DeadWebhook(mode) if mode != "no-rule" else None
    with LocalEndpoint(data, read_token="bench-read-token-not-secret") as endpoint:  # noqa: S106 - bench only
        secret = endpoint.add_device(DEVICE)
        # the defaults `dhtlink serve` uses: 3 attempts, 5 s timeout, 1 s then 2 s backoff
        notifier = Notifier(endpoint.store)
        with LocalAlerts(endpoint.store, time.time, 3600, notifier) as alerts:
            if webhook:
                admin.add_rule(endpoint.store, {"device": DEVICE, "metric": "t", "above": 30}, webhook.url)
            connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=10)
            latencies = []
            now = int(time.time())
            for batch in range(batches):
                readings = [
                    {"seq": batch * 20 + i, "ts": now - 280 + batch, "t": 35.0 if i in (5, 6) else 20.0, "h": 50.0}
                    for i in range(20)
                ]
                body = json.dumps({"device_id": DEVICE, "readings": readings}).encode()
                headers = signing.signed_headers(secret, DEVICE, int(time.time()), "/data", body)
                started = time.perf_counter()
                connection.request("POST", "/data", body=body, headers=headers)
                answer = connection.getresponse()
                payload = json.loads(answer.read())
                latencies.append((time.perf_counter() - started) * 1000)
                assert answer.status == 200 and payload["accepted"] == 20, payload
            connection.close()
            alerts.wait_idle(60, deliveries=False)  # evaluated, while the dead webhook still holds deliveries
            stored = len(endpoint.store.query_readings(DEVICE, limit=batches * 20)[0])
            transitions = len(endpoint.store.alert_events(int(time.time()) + 600, limit=1000))
            alerts.stop(drain_s=0)
    if webhook:
        webhook.close()
    observability.set_output(None)
    latencies.sort()
    return {
        "mode": mode,
        "batches": batches,
        "stored": stored,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "max_ms": round(latencies[-1], 2),
        "transitions_recorded": transitions,
        "webhook_attempts": webhook.attempts if webhook else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [run(mode, args.batches) for mode in ("no-rule", "hang", "500")]
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_average_1m": load, "runs": results}))
        return 0
    print(f"ingest latency, {args.batches} batches of 20 over one keep-alive connection (load average {load:.2f})")
    for r in results:
        print(
            f"  {r['mode']:<8} p50 {r['p50_ms']:>6} ms  p99 {r['p99_ms']:>6} ms  max {r['max_ms']:>6} ms  "
            f"stored {r['stored']}  transitions {r['transitions_recorded']}  webhook attempts {r['webhook_attempts']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
