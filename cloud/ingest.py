"""POST /data: parse, authenticate, validate, store, answer (protocol v1.1).

Every answer to a request whose signature verified is signed (X-Signature over the exact
body bytes sent): a board acts only on answers it can verify, so an unsigned 200 from a
captive portal or a forged clock can never cost it a reading.
"""

import os
import time
from typing import Any

from cloud import alerts, fleet, listeners, protocol, signing
from cloud.observability import lambda_handler, log, metrics
from cloud.responses import error, respond
from cloud.settings import lambda_ingest_store
from cloud.stores.base import SeqConflict, Store, StoreBusy

# How long a board waits after a 503 (store throttled or locked). Throttling in DynamoDB
# clears within seconds; the board adds its own jitter so a fleet does not return at once.
RETRY_AFTER_S = 5


def handle(event: dict[str, Any], store: Store, now: float, retention_s: int) -> dict[str, Any]:
    started = time.perf_counter()
    device_id = None
    signer: tuple[str, str] | None = None  # (secret, request X-Signature) once the request verified
    try:
        body = protocol.raw_body(event)
        device_id, timestamp, signature = protocol.check_envelope(event, body)
        device = store.get_device(device_id)
        protocol.check_signature(event, body, device_id, timestamp, signature, device["secret"] if device else None)
        assert device is not None
        signer = (device["secret"], signature)
        protocol.check_freshness(timestamp, now)
        batch = protocol.parse_body(body, device_id, now, retention_s)
        received_at = int(now)
        # The readings and the device row's counters for them commit together: a kill between
        # two writes left `received` short for good (the re-send finds only duplicates).
        stored = store.store_batch(device, batch.readings, batch.status, received_at, received_at + retention_s)
    except protocol.Reject as reject:
        # `dhtlink provision` proves the endpoint with a signed batch of no readings: its 400 is
        # the expected answer, not a problem for whoever reads the log.
        probe = signer is not None and reject.error == "bad_batch_size" and protocol.holds_no_readings(body)
        log(
            "INFO" if probe else "WARNING",
            "provisioning probe answered" if probe else "request rejected",
            route="POST /data",
            device_id=device_id,
            status=reject.status,
            error=reject.error,
        )
        metrics("POST /data", **({"AuthFailed": 1} if reject.status == 401 else {"BadRequest": 1}))
        return _signed(error(reject.status, reject.error, reject.message, **reject.extra), signer)
    except SeqConflict as conflict:
        log(
            "WARNING",
            "seq conflict",
            route="POST /data",
            device_id=device_id,
            status=409,
            conflicts=conflict.count,
            next_seq=conflict.next_seq,
        )
        metrics("POST /data", SeqConflict=1)
        return _signed(_conflict_answer(conflict), signer)
    except StoreBusy as busy:
        log("WARNING", "store busy", route="POST /data", device_id=device_id, status=503, cause=str(busy))
        metrics("POST /data", StoreBusy=1)
        answer = error(503, "store_busy", "the store is busy; nothing was stored: send the batch again later")
        answer["headers"]["Retry-After"] = str(RETRY_AFTER_S)
        return _signed(answer, signer)
    _summarise(store, device_id, batch, received_at + retention_s)
    alerts.after_store(store, device_id, stored, received_at)  # queued, never awaited: the answer goes first
    listeners.after_store(store, device_id, stored, received_at)  # likewise (the MQTT bridge)
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
    document = {
        "accepted": len(stored),
        "duplicates": duplicates,
        "rejected": batch.rejected,
        "server_time": received_at,
    }
    document.update(fleet.answer_keys(device, batch.status))  # signed with the rest: the board may trust them
    return _signed(respond(200, document), signer)


def _summarise(store: Store, device_id: str, batch: protocol.Batch, expires_at: int) -> None:
    """Hour and day summaries of the batch, re-sent readings too (that repairs them). After
    the readings are stored, so a busy store here must not turn the answer into a 503 that
    says nothing was stored: the next batch in those hours recomputes them."""
    try:
        store.update_rollups(device_id, batch.readings, expires_at)
    except StoreBusy as busy:
        log("WARNING", "summaries not updated", route="POST /data", device_id=device_id, cause=str(busy))


def _conflict_answer(conflict: SeqConflict) -> dict[str, Any]:
    named = ", ".join(map(str, conflict.seqs))
    more = conflict.count - len(conflict.seqs)
    return error(
        409,
        "seq_conflict",
        f"seq {named}{f' and {more} more' if more else ''} already hold other readings: renumber from next_seq",
        next_seq=conflict.next_seq,
        conflicts=conflict.seqs,
    )


def _signed(answer: dict[str, Any], signer: tuple[str, str] | None) -> dict[str, Any]:
    """Add the answer's X-Signature when the request verified (protocol v1.1); the body
    string is what goes on the wire, as is (isBase64Encoded false)."""
    if signer is not None:
        secret, request_signature = signer
        body = answer["body"].encode()
        answer["headers"]["X-Signature"] = signing.sign_answer(secret, request_signature, answer["statusCode"], body)
    return answer


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, store = lambda_ingest_store()
    return handle(event, store, time.time(), settings.retention_s)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_ingest_store()  # in the init phase, which runs at full CPU, not on the first request
