"""Warm handler: time and DynamoDB calls for one signed 20-reading batch.

Calls `cloud.ingest.handle` (the function the Lambda entry point wraps) in a warm
process, once per batch, with fresh seqs each time, against:
  dynamodb  DynamoDBStore on moto (in-process `mock_aws`): moto's own Python work is
            inside the figure, so it is an upper bound on our code's time, not a
            prediction of DynamoDB latency;
  sqlite    SQLiteStore on a file in a temporary directory (the local endpoint's store).
DynamoDB API calls are counted on the client with a botocore `before-call` hook, for a
new batch, the same batch re-sent (all duplicates), a mixed batch (half re-sent, half
new) and a conflicting batch (stored seqs with other readings: a board whose counter
restarted, answered 409). Target: at most 4 per batch, registry lookup included.

    .venv/bin/python bench/cloud_warm.py [--batches 20] [--json]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud import ingest, observability, signing  # noqa: E402
from cloud.stores.base import Store  # noqa: E402

BATCH = 20
DEVICE = "bench-warm-01"
SECRET = "5e" * 32
RETENTION_S = 400 * 86400
TARGET_CALLS = 4


# A reading's ts depends on its seq only, so a batch sent again later is byte for byte the
# same readings (a duplicate, not a seq conflict).
T0 = int(time.time()) - 3600


def signed_event(first_seq: int, now: int, t: float = 21.5) -> dict[str, Any]:
    readings = [{"seq": s, "ts": T0 + s % 3000, "t": t, "h": 40.25} for s in range(first_seq, first_seq + BATCH)]
    body = json.dumps({"device_id": DEVICE, "readings": readings, "status": {"fw": "0.1.0", "rssi": -60}}).encode()
    headers = {k.lower(): v for k, v in signing.signed_headers(SECRET, DEVICE, now, "/data", body).items()}
    return {
        "version": "2.0",
        "rawPath": "/data",
        "headers": headers,
        "body": body.decode(),
        "isBase64Encoded": False,
        "requestContext": {"http": {"method": "POST", "path": "/data"}},
    }


def time_batches(
    store: Store, batches: int, in_calls: Callable[[], float] = lambda: 0.0
) -> tuple[list[float], list[float], Callable[[], dict[str, Any]]]:
    """Handler times (s) for `batches` new batches, the same minus the time inside store calls
    (`in_calls()` is a running total), and a re-send of the last batch."""
    times, outside = [], []
    event = None
    for n in range(batches + 1):  # the first batch warms caches (code paths, SQLite pages) and is not counted
        now = int(time.time())
        event = signed_event(n * BATCH, now)
        started, calls_before = time.perf_counter(), in_calls()
        answer = ingest.handle(event, store, now, RETENTION_S)
        elapsed = time.perf_counter() - started
        in_store = in_calls() - calls_before
        if answer["statusCode"] != 200 or json.loads(answer["body"])["accepted"] != BATCH:
            raise SystemExit(f"batch {n} was not stored: {answer['body']}")
        if n:
            times.append(elapsed)
            outside.append(elapsed - in_store)
    last = event

    def resend() -> dict[str, Any]:
        return json.loads(ingest.handle(last, store, int(time.time()), RETENTION_S)["body"])

    return times, outside, resend


def summary(times: list[float]) -> dict[str, float]:
    median = statistics.median(times)
    return {"median_ms": round(median * 1000, 2), "per_reading_ms": round(median * 1000 / BATCH, 3)}


def bench_dynamodb(batches: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from cloud.stores.dynamodb import DynamoDBStore, create_tables

    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[key] = value  # moto intercepts every call; these keep boto3 off any real account
    os.environ.pop("AWS_PROFILE", None)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        store = DynamoDBStore("readings", "devices", client)
        store.add_device(DEVICE, SECRET, int(time.time()))
        calls: list[str] = []
        in_calls = [0.0]  # seconds spent inside DynamoDB calls (moto's work here, the network in AWS)
        call_started: list[float] = []

        def before_call(model: Any, **_: Any) -> None:
            calls.append(model.name)
            call_started.append(time.perf_counter())

        def after_call(**_: Any) -> None:
            in_calls[0] += time.perf_counter() - call_started.pop()

        client.meta.events.register("before-call.dynamodb", before_call)
        client.meta.events.register("after-call.dynamodb", after_call)
        times, outside, resend = time_batches(store, batches, lambda: in_calls[0])
        new_batch_calls = round(len(calls) / (batches + 1), 2)

        def calls_of(send: Callable[[], dict[str, Any]], expected: dict[str, Any]) -> list[str]:
            calls.clear()
            answer = send()
            if {key: answer.get(key) for key in expected} != expected:
                raise SystemExit(f"unexpected answer {answer}, wanted {expected}")
            return list(calls)

        stored_seqs = (batches + 1) * BATCH
        resent = calls_of(resend, {"duplicates": BATCH})
        mixed = calls_of(
            lambda: send(store, signed_event(stored_seqs - BATCH // 2, int(time.time()))),
            {"accepted": BATCH // 2, "duplicates": BATCH // 2},
        )
        conflict = calls_of(
            lambda: send(store, signed_event(0, int(time.time()), t=30.0)),
            {"error": "seq_conflict", "next_seq": stored_seqs + BATCH // 2},
        )
        return {
            **summary(times),
            "outside_calls_ms": round(statistics.median(outside) * 1000, 2),
            "calls_new_batch": new_batch_calls,
            "calls_resent_batch": len(resent),
            "calls_resent_detail": resent,
            "calls_mixed_batch": len(mixed),
            "calls_mixed_detail": mixed,
            "calls_conflict_batch": len(conflict),
            "calls_conflict_detail": conflict,
        }


def send(store: Store, event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(ingest.handle(event, store, int(time.time()), RETENTION_S)["body"])


def bench_sqlite(batches: int) -> dict[str, Any]:
    from cloud.stores.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as data_dir:
        store = SQLiteStore(Path(data_dir) / "store.sqlite3")
        store.add_device(DEVICE, SECRET, int(time.time()))
        times, _, _ = time_batches(store, batches)
        return summary(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="batches timed per store (default 20)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error("--batches must be at least 1")
    with open(os.devnull, "w") as sink:
        observability.set_output(sink)  # the handler's log lines are not the figures
        result = {"batch": BATCH, "dynamodb_moto": bench_dynamodb(args.batches), "sqlite": bench_sqlite(args.batches)}
        observability.set_output(None)
    if args.json:
        print(json.dumps(result))
        return
    dyn, lite = result["dynamodb_moto"], result["sqlite"]
    kinds = ("new", "resent", "mixed", "conflict")
    met = "met" if max(dyn[f"calls_{kind}_batch"] for kind in kinds) <= TARGET_CALLS else "NOT met"
    print(f"warm ingest handler, {BATCH}-reading signed batch, median of {args.batches}")
    print(f"  SQLite            {lite['median_ms']:7.2f} ms/batch  {lite['per_reading_ms']:6.3f} ms/reading")
    print(f"  DynamoDB (moto)   {dyn['median_ms']:7.2f} ms/batch  {dyn['per_reading_ms']:6.3f} ms/reading")
    print(f"    of which outside the DynamoDB calls (our code + botocore): {dyn['outside_calls_ms']:.2f} ms/batch")
    print(f"  DynamoDB calls per batch (target <= {TARGET_CALLS}: {met})")
    print(f"    new                          {dyn['calls_new_batch']}")
    for kind, label in (
        ("resent", "re-sent (all duplicates)"),
        ("mixed", "half re-sent, half new"),
        ("conflict", "seq conflict (409)"),
    ):
        print(f"    {label:28} {dyn[f'calls_{kind}_batch']} ({', '.join(dyn[f'calls_{kind}_detail'])})")


if __name__ == "__main__":
    main()
