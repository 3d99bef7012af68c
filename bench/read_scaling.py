"""GET /data paging as a device's history grows: first page vs a page deep in the history.

Fills one device with 10k, 100k and 1M readings in a SQLite store (a real file; several
readings share a ts, as a board's re-sent batches can), then times GET /data through the
read handler for the first page and for a page 90 % of the way down (its cursor is the
(ts, seq) a client paging down would hold there). Median of --repeat runs each. Also times
the cursor condition the store used before (`ts < ? OR (ts = ? AND seq < ?)`) for the same
deep page, to show what the row-value keyset saves. Target: deep/first < 2 at every size.

    .venv/bin/python bench/read_scaling.py [--sizes 10000,100000,1000000] [--repeat 41] [--json]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud import observability, protocol, read_api  # noqa: E402
from cloud.stores.base import encode_cursor  # noqa: E402
from cloud.stores.sqlite import SQLiteStore  # noqa: E402

DEVICE = "history-01"
TOKEN = "bench-read-token-not-secret"  # noqa: S105 - a throwaway store's token
PAGE = 100
TARGET_RATIO = 2.0


def fill(store: SQLiteStore, count: int) -> list[tuple[int, int]]:
    """`count` readings, three per ts; returns (ts, seq) newest first."""
    start = 1_700_000_000
    rows = [(DEVICE, seq, start + seq // 3, 20.0 + seq % 7, 50.0, start, start + 10**8) for seq in range(count)]
    db = store._connect()
    db.execute("BEGIN")
    db.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    return [(ts, seq) for _d, seq, ts, *_ in reversed(rows)]


def timed(calls: list, repeat: int) -> list[float]:
    """Median ms of each call; the calls alternate, so a busy spell on the machine hits all alike."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for call, spent in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) * 1000 for spent in times]


def measure(count: int, repeat: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "history.sqlite3")
        order = fill(store, count)
        depth = int(count * 0.9)
        cursor = encode_cursor(list(order[depth - 1]))

        def page(cursor: str | None = None) -> None:
            params = {"device_id": DEVICE, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            event = {
                "rawPath": "/data",
                "headers": {"authorization": f"Bearer {TOKEN}"},
                "queryStringParameters": params,
                "requestContext": {"http": {"method": "GET"}},
            }
            answer = read_api.handle(event, store, protocol.token_sha256(TOKEN))
            assert answer["statusCode"] == 200 and len(json.loads(answer["body"])["items"]) == PAGE

        page()  # warm the cache as a running server's would be
        first, deep = timed([page, lambda: page(cursor)], repeat)
        ts, seq = order[depth - 1]
        old_sql = (
            "SELECT seq, ts, t, h FROM readings WHERE device_id = ? AND (ts < ? OR (ts = ? AND seq < ?)) "
            "ORDER BY ts DESC, seq DESC LIMIT ?"
        )
        db = store._connect()
        (old,) = timed([lambda: db.execute(old_sql, (DEVICE, ts, ts, seq, PAGE + 1)).fetchall()], max(3, repeat // 5))
    first, deep = round(first, 3), round(deep, 3)  # the ratio from the printed figures, so they add up
    return {
        "readings": count,
        "first_ms": first,
        "deep_ms": deep,
        "deep_over_first": round(deep / first, 2),
        "old_condition_deep_ms": round(old, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="history sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=41, help="timed runs per page (median; default 41)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes must be whole numbers separated by commas, e.g. 10000,100000")
    if any(size < 10 * PAGE for size in sizes) or args.repeat < 1:
        parser.error(f"--sizes must each be at least {10 * PAGE}; --repeat at least 1")
    observability.set_output(open(os.devnull, "w"))  # noqa: SIM115 - one request log line per page is not the figure
    results = [measure(size, args.repeat) for size in sizes]
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_average_1m": round(load, 2), "results": results}))
        return
    print(f"GET /data, {PAGE}-reading pages through the read handler, SQLite file; load average {load:.2f}")
    print(f"{'readings':>10} {'first ms':>9} {'deep ms':>8} {'deep/first':>10}  {'old OR-cursor deep ms':>21}")
    for r in results:
        verdict = "met" if r["deep_over_first"] < TARGET_RATIO else "NOT met"
        print(
            f"{r['readings']:>10} {r['first_ms']:>9} {r['deep_ms']:>8} {r['deep_over_first']:>10}  "
            f"{r['old_condition_deep_ms']:>21}   target < {TARGET_RATIO}: {verdict}"
        )


if __name__ == "__main__":
    main()
