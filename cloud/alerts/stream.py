"""The alerts function on the readings table's stream: value rules over each stored
batch, after the board has had its answer (ingest never waits for this).

The event source mapping passes only INSERTs of readings (cloud/template.yaml); the same
rule is kept here, since a summary item (cloud/rollups.py, no ts) that reached the
parser would fail the batch and stall the stream. A record that
fails raises, and Lambda retries the batch: state writes are versioned and a replayed
reading older than a state's last change is skipped, so a retry notifies nothing twice.
"""

import time
from collections import defaultdict
from typing import Any

from cloud.alerts.scheduled import lambda_evaluator
from cloud.observability import log, metrics


def readings_by_device(event: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in event.get("Records", []):
        image = (record.get("dynamodb") or {}).get("NewImage")
        if record.get("eventName") != "INSERT" or not image or "ts" not in image:
            continue
        batches[image["device_id"]["S"]].append(
            {
                "seq": int(image["seq"]["N"]),
                "ts": int(image["ts"]["N"]),
                "t": float(image["t"]["N"]),
                "h": float(image["h"]["N"]),
            }
        )
    return batches


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    evaluator = lambda_evaluator()
    started = time.perf_counter()
    now = int(time.time())
    transitions = 0
    batches = readings_by_device(event)
    for device_id, readings in batches.items():
        transitions += evaluator.on_stored(device_id, readings, now)
    log(
        "INFO",
        "stored readings evaluated",
        devices=len(batches),
        readings=sum(map(len, batches.values())),
        transitions=transitions,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    metrics("stream", AlertTransitions=transitions)
    return {"transitions": transitions}
