"""The fleet-wide jobs against a moto-backed store of 10k and 100k devices: the scheduled
alert job (stale + rising rules over every device) and one batch of the summary stream
function, each in a fresh Python process as a Lambda runs it, timed and weighed.

    .venv/bin/python bench/fleet_jobs.py [--sizes 10000 100000] [--shard 00|all] [--json]

The alert job runs as the template schedules it, one shard of the fleet (--shard 00, a
16th of the devices), or over the whole fleet (--shard all).

The store is DynamoDB's API served by moto (host_tools/dynamodb_server.py) in another
process, so the figures are the job's own: peak RSS of its process (VmHWM), the
Python heap's peak (tracemalloc), its CPU time (our code and botocore's parsing; moto's
work is in the server's process) and the wall time (which moto's speed dominates: moto
answers a GSI Query by walking the whole table). The fleet is written as the handlers
write it (cloud/stores/dynamodb.py's row and state shapes): every device reporting, 1 %
silent for an hour (the stale rule opens on them), every device with a rising-rule state.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud.alerts.rules import parse_rule  # noqa: E402
from cloud.stores.dynamodb import (  # noqa: E402
    STATE_PK,
    DynamoDBStore,
    create_alerts_table,
    create_tables,
    device_shard,
    seen_key,
)
from host_tools.dynamodb_server import LOCAL_SESSION, MotoServer  # noqa: E402

NOW = int(time.time())  # the handlers take "now" from the clock
SUMMARY_BATCH = 100  # records of one stream batch (cloud/template.yaml's BatchSize), one device each
STALE_SHARE = 0.01

# Runs in the child: the handler as the Lambda runtime calls it, measured from inside.
JOB = """
import json, sys, time, tracemalloc

def high_water_mb():
    # VmHWM: this process's peak RSS. Not getrusage's ru_maxrss, which Linux carries over
    # from the parent across fork and exec (the bench's own tables would show).
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)

job = sys.argv[1]
if job == "alerts":
    from cloud.alerts import scheduled as module
else:
    from cloud import summaries as module
event = json.loads(sys.stdin.read())
rss_before = high_water_mb()
calls = []
import cloud.stores.dynamodb_ingest
cloud.stores.dynamodb_ingest.READ_TIMEOUT_S = 600  # moto is slow (it walks the table)
from cloud.settings import lambda_store
store = lambda_store()[1]
store.db.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
runs = []
for run in ("first", "warm"):  # the first call of a fresh process loads botocore's models
    calls.clear()
    tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    answer = module.handler(event, None)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    heap = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    runs.append({
        "run": run,
        "answer": answer,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "heap_peak_mb": round(heap / 2**20, 1),
        "requests": len(calls),
    })
print(json.dumps({
    "runs": runs,
    "rss_peak_mb": high_water_mb(),
    "rss_at_start_mb": rss_before,
}))
"""


def _batches(items: list[dict], size: int = 25):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _write(db, table: str, items: list[dict]) -> None:
    for chunk in _batches(items):
        pending = {table: [{"PutRequest": {"Item": item}} for item in chunk]}
        while pending:
            pending = db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def populate(db, prefix: str, devices: int, rng: random.Random) -> list[str]:
    """Tables named prefix-*, holding `devices` rows, their rising-rule states, two rules,
    and an hour of readings for the first SUMMARY_BATCH devices. Returns the device ids."""
    readings, registry, alerts = f"{prefix}-readings", f"{prefix}-devices", f"{prefix}-alerts"
    create_tables(db, readings, registry)
    create_alerts_table(db, alerts)
    store = DynamoDBStore(readings, registry, db, alerts_table=alerts)
    stale = parse_rule({"device": "*", "stale": "30m", "email": True}, rule_id="stale001", created_at=NOW - 86400)
    rising = parse_rule(
        {"device": "*", "metric": "dropped", "rising": True, "email": True}, rule_id="rising01", created_at=NOW - 86400
    )
    for rule in (stale, rising):
        store.put_alert_rule(rule.as_item(), None)
    ids = [f"board-{n:07d}" for n in range(devices)]
    rows, states = [], []
    for device_id in ids:
        last_seen = NOW - (3600 if rng.random() < STALE_SHARE else rng.randrange(60, 1200))
        dropped = rng.randrange(0, 3)
        status = {"fw": "0.3.0", "rssi": -60, "heap_free": 51234, "boot": 7, "sensor_errors": 0, "dropped": dropped}
        rows.append(
            {
                "device_id": {"S": device_id},
                "secret": {"S": "ab" * 32},
                "fleet_shard": {"S": device_shard(device_id)},
                "seen_key": {"S": seen_key(last_seen, device_id)},
                "created_at": {"N": str(NOW - 86400 * 30)},
                "last_seen": {"N": str(last_seen)},
                "last_status": {"S": json.dumps(status)},
                "last_reading": {"S": json.dumps({"seq": 4000, "ts": last_seen - 30, "t": 21.5, "h": 48.0})},
                "first_seq": {"N": "0"},
                "max_seq": {"N": "4000"},
                "received": {"N": "4001"},
            }
        )
        state = {"rule_id": rising.rule_id, "device_id": device_id, "status": "ok", "counter": dropped, "rises": []}
        states.append(
            {
                "pk": {"S": STATE_PK + device_shard(device_id)},
                "sk": {"S": f"{device_id}#{rising.rule_id}"},
                "state": {"S": json.dumps(state)},
                "version": {"N": "1"},
            }
        )
    _write(db, registry, rows)
    _write(db, alerts, states)
    hour = [
        {
            "device_id": {"S": device_id},
            "seq": {"N": str(seq)},
            "ts": {"N": str(NOW - 3600 + seq * 300)},
            "tsq": {"S": f"{NOW - 3600 + seq * 300:012d}#{seq:016d}"},
            "t": {"N": "21.5"},
            "h": {"N": "48.0"},
            "received_at": {"N": str(NOW)},
            "expires_at": {"N": str(NOW + 86400 * 400)},
        }
        for device_id in ids[:SUMMARY_BATCH]
        for seq in range(12)  # fleet B's hour: a reading every 5 minutes
    ]
    _write(db, readings, hour)
    return ids


def stream_event(ids: list[str], prefix: str) -> dict:
    """One stream batch as Lambda hands it over: the newest reading of SUMMARY_BATCH devices."""
    return {
        "Records": [
            {
                "eventName": "INSERT",
                "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{prefix}-readings/stream/x",
                "dynamodb": {
                    "SequenceNumber": str(10**20 + n),
                    "NewImage": {
                        "device_id": {"S": device_id},
                        "seq": {"N": "11"},
                        "ts": {"N": str(NOW - 60)},
                        "t": {"N": "21.5"},
                        "h": {"N": "48.0"},
                        "expires_at": {"N": str(NOW + 86400 * 400)},
                    },
                },
            }
            for n, device_id in enumerate(ids[:SUMMARY_BATCH])
        ]
    }


def run_job(job: str, event: dict, url: str, prefix: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_LAMBDA_FUNCTION_NAME=f"dhtlink-bench-{job}",
        AWS_DEFAULT_REGION=LOCAL_SESSION["region_name"],
        AWS_ACCESS_KEY_ID=LOCAL_SESSION["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=LOCAL_SESSION["aws_secret_access_key"],
        DYNAMODB_ENDPOINT_URL=url,
        READINGS_TABLE=f"{prefix}-readings",
        DEVICES_TABLE=f"{prefix}-devices",
        ALERTS_TABLE=f"{prefix}-alerts",
        RETENTION_DAYS="400",
        PYTHONPATH=str(REPO),
    )
    out = subprocess.run(
        [sys.executable, "-c", JOB, job],
        input=json.dumps(event),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{job} failed:\n{out.stderr.strip()[-3000:]}")
    for line in out.stdout.splitlines():
        if '"level": "ERROR"' in line:
            print(f"  {job}: {line[:400]}", file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--shard", default="00", help="the alert run's shard, or all (default 00)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with MotoServer() as server:
        import boto3
        from botocore.config import Config

        db = boto3.client(
            "dynamodb",
            endpoint_url=server.url,
            config=Config(read_timeout=600, retries={"total_max_attempts": 1}),
            **LOCAL_SESSION,
        )
        for size in args.sizes:
            prefix = f"fleet{size}"
            started = time.perf_counter()
            ids = populate(db, prefix, size, random.Random(size))
            written = time.perf_counter() - started
            tick = {"source": "aws.events"} if args.shard == "all" else {"shard": args.shard}
            alerts = run_job("alerts", tick, server.url, prefix)
            summary = run_job("summary", stream_event(ids, prefix), server.url, prefix)
            results.append({"devices": size, "populate_s": round(written, 1), "alerts": alerts, "summary": summary})
            if not args.json:
                print(f"{size:>7} devices (written in {written:.0f} s), alert run of shard {args.shard}", flush=True)
                for name, figures in (("alert job", alerts), ("summary batch", summary)):
                    print(
                        f"  {name:<14} RSS peak {figures['rss_peak_mb']:6.1f} MB (after imports "
                        f"{figures['rss_at_start_mb']:.1f})",
                        flush=True,
                    )
                    for run in figures["runs"]:
                        print(
                            f"    {run['run']:<6} wall {run['wall_s']:7.1f} s  cpu {run['cpu_s']:6.2f} s  "
                            f"heap peak {run['heap_peak_mb']:6.1f} MB  requests {run['requests']}  "
                            f"-> {json.dumps(run['answer'])}",
                            flush=True,
                        )
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"results": results, "load_average": load, "cores": os.cpu_count()}))
    else:
        print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at the end")


if __name__ == "__main__":
    main()
