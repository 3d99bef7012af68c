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
    started = time.perf_counter()
    touched: dict[str, tuple[list[int], int]] = {}
    for record in event.get("Records") or []:
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        device_id = (image.get("device_id") or {}).get("S", "")
        ts = (image.get("ts") or {}).get("N")
        if record.get("eventName") != "INSERT" or ts is None or "#" in device_id:
            continue
        stamps, expires_at = touched.get(device_id, ([], 0))
        stamps.append(int(ts))
        touched[device_id] = (stamps, max(expires_at, int((image.get("expires_at") or {}).get("N", "0"))))
    for device_id, (stamps, expires_at) in touched.items():
        store.summarise(device_id, stamps, expires_at)
    log(
        "INFO",
        "summaries updated",
        records=len(event.get("Records") or []),
        devices=len(touched),
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return {"batchItemFailures": []}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _settings, store = lambda_store()
    return handle(event, store)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_store()  # in the init phase, which runs at full CPU, not on the first request
