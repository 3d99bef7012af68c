"""The readings table's stream -> hour and day summaries for the dashboard's charts.

Ingest stays within its DynamoDB budget (4 calls a batch): the summaries are brought up to
date here, from the stream of new readings, a batch of records at a time. Each summary is
recomputed from what is stored (cloud/rollups.py), so a retried or repeated record changes
nothing and a record missed by a failed run is covered by the next one in the same hour.
The template's filter passes only INSERTs of readings (summary items carry no `ts`).
"""

import os
import time
from typing import Any

from cloud.observability import log
from cloud.settings import lambda_store
from cloud.stores.base import Store


def handle(event: dict[str, Any], store: Store) -> dict[str, Any]:
    """Summaries of every device in the batch; a device whose summaries fail is reported as
    a batch item failure at its first record (Lambda's ReportBatchItemFailures): Lambda
    retries the stream from there, the devices before it stay done, and after the
    template's retries the rest goes to the on-failure queue, never silently away."""
    started = time.perf_counter()
    touched: dict[str, tuple[list[int], int, str]] = {}
    records = event.get("Records") or []
    for record in records:
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        device_id = (image.get("device_id") or {}).get("S", "")
        ts = (image.get("ts") or {}).get("N")
        if record.get("eventName") != "INSERT" or ts is None or "#" in device_id:
            continue
        sequence = (record.get("dynamodb") or {}).get("SequenceNumber", "")
        stamps, expires_at, first = touched.get(device_id, ([], 0, sequence))
        stamps.append(int(ts))
        touched[device_id] = (stamps, max(expires_at, int((image.get("expires_at") or {}).get("N", "0"))), first)
    failed: list[str] = []
    for device_id, (stamps, expires_at, first) in touched.items():
        try:
            store.summarise(device_id, stamps, expires_at)
        except Exception as error:  # noqa: BLE001 - any failure: this device's records are retried, not lost
            log("ERROR", "summaries failed", device_id=device_id, error=f"{type(error).__name__}: {error}")
            failed.append(first)
    log(
        "INFO",
        "summaries updated",
        records=len(records),
        devices=len(touched),
        failed=len(failed),
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    # Lambda resumes a stream batch at the lowest sequence number reported.
    return {"batchItemFailures": [{"itemIdentifier": min(failed, key=_sequence_order)}] if failed else []}


def _sequence_order(sequence: str) -> tuple[int, str]:
    return (len(sequence), sequence)  # stream sequence numbers are decimal strings of growing length


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _settings, store = lambda_store()
    return handle(event, store)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_store()  # in the init phase, which runs at full CPU, not on the first request
