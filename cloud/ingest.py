"""POST /data: parse, authenticate, validate, store, answer (protocol v1)."""

import os
import time
from typing import Any

from cloud import protocol
from cloud.observability import log, metrics
from cloud.responses import error, respond
from cloud.settings import lambda_store
from cloud.stores.base import Delivery, Store


def handle(event: dict[str, Any], store: Store, now: float, retention_s: int) -> dict[str, Any]:
    started = time.perf_counter()
    device_id = None
    try:
        body = protocol.raw_body(event)
        device_id, timestamp, signature = protocol.check_envelope(event, body)
        device = store.get_device(device_id)
        protocol.check_signature(event, body, device_id, timestamp, signature, device["secret"] if device else None)
        protocol.check_freshness(timestamp, now)
        batch = protocol.parse_body(body, device_id, now, retention_s)
    except protocol.Reject as reject:
        log(
            "WARNING",
            "request rejected",
            route="POST /data",
            device_id=device_id,
            status=reject.status,
            error=reject.error,
        )
        metrics("POST /data", **({"AuthFailed": 1} if reject.status == 401 else {"BadRequest": 1}))
        return error(reject.status, reject.error, reject.message, **reject.extra)
    assert device is not None
    received_at = int(now)
    stored = store.put_readings(device_id, batch.readings, received_at, received_at + retention_s)
    store.record_delivery(device, Delivery(received_at, batch.status, stored))
    duplicates = len(batch.readings) - len(stored)
    log(
        "INFO",
        "batch stored",
        route="POST /data",
        device_id=device_id,
        status=200,
        accepted=len(stored),
        duplicates=duplicates,
        rejected=len(batch.rejected),
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    metrics("POST /data", Accepted=len(stored), Duplicates=duplicates, Rejected=len(batch.rejected))
    return respond(
        200,
        {
            "accepted": len(stored),
            "duplicates": duplicates,
            "rejected": batch.rejected,
            "server_time": received_at,
        },
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, store = lambda_store()
    return handle(event, store, time.time(), settings.retention_s)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_store()  # in the init phase, which runs at full CPU, not on the first request
