"""The alerts function on the readings table's stream: value rules over each stored
batch, after the board has had its answer (ingest never waits for this).

The event source mapping passes only INSERTs of readings (cloud/template.yaml); the same
rule is kept here, since a summary item (cloud/rollups.py, no ts) that reached the
parser would fail the batch and stall the stream. A record that
fails raises, and Lambda retries the batch: state writes are versioned and a replayed
reading older than a state's last change is skipped, so a retry notifies nothing twice.
"""

import time
from typing import Any

from cloud.alerts.scheduled import lambda_evaluator
from cloud.observability import log, metrics


def readings_by_device(event: dict[str, Any]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Each device's readings, with the stream sequence number of its first record."""
    batches: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for record in event.get("Records", []):
        change = record.get("dynamodb") or {}
        image = change.get("NewImage")
        if record.get("eventName") != "INSERT" or not image or "ts" not in image:
            continue
        device_id = image["device_id"]["S"]
        first, readings = batches.setdefault(device_id, (change.get("SequenceNumber", ""), []))
        readings.append(
            {
                "seq": int(image["seq"]["N"]),
                "ts": int(image["ts"]["N"]),
                "t": float(image["t"]["N"]),
                "h": float(image["h"]["N"]),
            }
        )
    return batches


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Value rules device by device; a device that fails is reported at its first record
    (ReportBatchItemFailures): Lambda retries from there, and after the template's retries
    the records go to the on-failure queue. The devices before it are not evaluated twice."""
    evaluator = lambda_evaluator()
    started = time.perf_counter()
    now = int(time.time())
    transitions = 0
    failed: list[str] = []
    batches = readings_by_device(event)
    rules = evaluator.rules() if batches else []
    for device_id, (first, readings) in batches.items():
        try:
            transitions += evaluator.on_stored(device_id, readings, now, rules)
        except Exception as error:  # noqa: BLE001 - any failure: this device's records are retried, not lost
            log("ERROR", "alert evaluation failed", device_id=device_id, error=f"{type(error).__name__}: {error}")
            failed.append(first)
            break  # Lambda retries from the lowest reported record: the devices after it are retried too
    log(
        "INFO",
        "stored readings evaluated",
        devices=len(batches),
        readings=sum(len(readings) for _first, readings in batches.values()),
        transitions=transitions,
        failed=len(failed),
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    metrics("stream", AlertTransitions=transitions)
    return {"transitions": transitions, "batchItemFailures": [{"itemIdentifier": f} for f in failed]}
