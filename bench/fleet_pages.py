"""How long one page of GET /devices takes on a large fleet in the SQLite store, for each
sort and status filter the dashboard asks for.

N devices (default 100,000) are written straight into a SQLite store: last seen spread
over the last 50 minutes, 1 % of them silent for two hours (stale), 0.1 % never seen,
0.5 % with errors in the last day. Each (sort, status) pair is asked for its first page
and for the page after 10 others (following next_cursor), through the read handler
in-process; the median of --runs is printed in milliseconds.

    .venv/bin/python bench/fleet_pages.py [--devices 100000] [--runs 5] [--json]
"""

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud import observability, read_api  # noqa: E402
from cloud.protocol import token_sha256  # noqa: E402
from cloud.stores.sqlite import SQLiteStore  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - a throwaway token for the in-process handler


def fill(store: SQLiteStore, count: int, now: int) -> None:
    rows = []
    for i in range(count):
        seen: int | None = now - (i * 7919) % 3000
        errors_at = None
        if i % 100 == 1:
            seen = now - 7200
        if i % 1000 == 2:
            seen = None
        if i % 200 == 3:
            errors_at = now - 600
        rows.append((f"node-{i:07d}", "ab" * 32, now - 86400, seen, errors_at))
    db = store._connect()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO devices (device_id, secret, created_at, last_seen, errors_at) VALUES (?, ?, ?, ?, ?)", rows
    )
    db.execute("COMMIT")


def page_ms(store: SQLiteStore, params: dict[str, str], skip: int) -> float:
    cursor = None
    for _ in range(skip):
        body = json.loads(
            read_api.handle(_event({**params, **({"cursor": cursor} if cursor else {})}), store, _HASH)["body"]
        )
        cursor = body["next_cursor"]
        if cursor is None:
            return float("nan")
    started = time.perf_counter()
    answer = read_api.handle(_event({**params, **({"cursor": cursor} if cursor else {})}), store, _HASH)
    elapsed = (time.perf_counter() - started) * 1000
    assert answer["statusCode"] == 200, answer["body"]
    return elapsed


_HASH = token_sha256(TOKEN)


def _event(params: dict[str, str]) -> dict:
    return {
        "rawPath": "/devices",
        "headers": {"authorization": f"Bearer {TOKEN}"},
        "queryStringParameters": params,
        "requestContext": {"http": {"method": "GET", "path": "/devices"}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    observability.set_output(io.StringIO())
    now = int(time.time())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "store.sqlite3")
        fill(store, args.devices, now)
        for sort in ("id", "-last_seen", "last_seen"):
            for status in ("all", "stale", "problems"):
                params = {"limit": "50", "sort": sort, "status": status}
                for skip in (0, 10):
                    runs = [page_ms(store, params, skip) for _ in range(args.runs)]
                    results[f"sort={sort} status={status} page={skip + 1}"] = round(statistics.median(runs), 2)
    output = {"devices": args.devices, "ms_median": results, "load_average": [round(x, 2) for x in os.getloadavg()]}
    if args.json:
        print(json.dumps(output, indent=2))
    else:
        print(f"GET /devices?limit=50 on {args.devices} devices (SQLite, in-process), median of {args.runs} runs")
        for name, ms in results.items():
            print(f"  {name:<40} {ms} ms")
        print(f"  load average {output['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
