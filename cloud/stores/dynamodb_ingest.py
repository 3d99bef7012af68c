"""What the ingest handler needs of DynamoDB, and nothing else: its cold start compiles this
module only (the Lambda artifact carries no bytecode, so every module imported is compiled
at each cold start; bench/cloud_coldstart.py). cloud/stores/dynamodb.py's DynamoDBStore
extends IngestStore with everything the other handlers and the CLI use; the key design is
described there.

Writes are conditional (attribute_not_exists) in one TransactWriteItems per request (up to
100 readings, DynamoDB's transaction limit): all or nothing; below 100 readings the device
row's update for the new ones (counters, last seen, its seen_key in the fleet index) rides
in the same transaction. A failed condition returns the stored item
(ReturnValuesOnConditionCheckFailure=ALL_OLD), which tells a re-send (a duplicate) from
another reading under the same seq (a conflict) without another read.
"""

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from cloud.observability import log
from cloud.protocol import MAX_READINGS, Reading
from cloud.stores.base import (
    RENUMBER_CEILING,
    Delivery,
    SeqConflict,
    StoreBusy,
    delivery_counters,
    health_span,
    reading_item,
    same_content,
)

TRANSACTION_LIMIT = 100
assert MAX_READINGS <= TRANSACTION_LIMIT, "a request's readings must fit one transaction"
# Error codes that mean "later", after botocore's own retries: the caller answers 503.
THROTTLING = frozenset(
    (
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "TransactionConflictException",
    )
)
# Reasons in a cancelled transaction that another attempt may not meet.
TRANSIENT_REASONS = frozenset(("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"))
WRITE_ATTEMPTS = 5
COUNT_ATTEMPTS = 3  # a full batch's row update against racing requests of the same board
RETRY_BASE_S = 0.05  # at most 0.75 s of back-off in all, well inside the Lambda timeout
# The handler must answer before the board gives up (device/transport.py: 5 s), or the board
# sees a timeout instead of a 200 or a 503 it can act on. botocore's default for DynamoDB
# (legacy mode, 10 attempts) sleeps up to 25 s on a throttled call. Here each call gets one
# retry (standard mode: jittered, at most 1 s after a throttle, 25 ms after a 5xx), and a
# cancelled transaction is retried only while WRITE_BUDGET_S lasts; past that the board gets
# a signed 503 and comes back after Retry-After. botocore fills each transaction's
# ClientRequestToken, so its retry of a transaction that did land is not applied twice.
CALL_ATTEMPTS = 2
WRITE_BUDGET_S = 1.0
CONNECT_TIMEOUT_S = 1
READ_TIMEOUT_S = 3
_Method = TypeVar("_Method", bound=Callable[..., Any])


@contextmanager
def _store_busy_on_throttling() -> Iterator[None]:
    """Throttling, a DynamoDB 5xx, or no answer in time, after botocore's retry: StoreBusy, so
    the board gets a 503 it retries and not a 500 it cannot tell from a crash. Whether a
    timed-out write landed is unknown, and need not be: a re-sent reading is a duplicate."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    try:
        yield
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in THROTTLING or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
            raise StoreBusy(f"DynamoDB answered {code}") from error
        raise
    except (ConnectionError, HTTPClientError) as error:
        raise StoreBusy(f"DynamoDB did not answer: {type(error).__name__}") from error


def _throttling_is_store_busy(method: _Method) -> _Method:
    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _store_busy_on_throttling():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def client(
    endpoint_url: str | None = None, pool: int = 10, read_timeout: float = READ_TIMEOUT_S, **session: Any
) -> Any:
    """A DynamoDB client with the retry budget above; `pool` connections for a threaded
    server (the Lambda runs one request at a time); `read_timeout` longer only for an
    emulator on a loaded machine; `session` takes region and keys."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": CALL_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=read_timeout,
        max_pool_connections=pool,
    )
    url = endpoint_url or os.environ.get("DYNAMODB_ENDPOINT_URL")
    return boto3.client("dynamodb", endpoint_url=url, config=config, **session)


def seen_key(last_seen: int | None, device_id: str) -> str:
    return f"{last_seen or 0:012d}#{device_id}"


def tsq(ts: int, seq: int) -> str:
    return f"{ts:012d}#{seq:016d}"


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _num(attr: dict[str, str]) -> int | float:
    text = attr["N"]
    return float(text) if any(c in text for c in ".eE") else int(text)


def _reading(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": int(item["seq"]["N"]),
        "ts": int(item["ts"]["N"]),
        "t": float(item["t"]["N"]),
        "h": float(item["h"]["N"]),
    }


def _stored_reading(reason: dict[str, Any]) -> Reading:
    item = reason.get("Item")
    if item is None:
        raise RuntimeError(
            "DynamoDB did not return the stored item of a failed condition "
            "(ReturnValuesOnConditionCheckFailure): this store needs DynamoDB or an emulator "
            "that supports it, such as moto 5.2"
        )
    r = _reading(item)
    return Reading(r["seq"], r["ts"], r["t"], r["h"])


def _json_attr(item: dict[str, Any], key: str) -> Any:
    return json.loads(item[key]["S"]) if key in item else None


class IngestStore:
    """The device row read, the readings written, the row updated: one request of POST /data."""

    def __init__(
        self,
        readings_table: str,
        devices_table: str,
        dynamodb: Any = None,
    ) -> None:
        self.readings = readings_table
        self.devices = devices_table
        self.db = dynamodb or client()

    def _device(self, item: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"device_id": item["device_id"]["S"]}
        if "secret" in item:
            out["secret"] = item["secret"]["S"]
        for key in ("created_at", "last_seen", "first_seq", "max_seq", "received"):
            out[key] = _num(item[key]) if key in item else None
        out["received"] = out["received"] or 0
        out["last_status"] = _json_attr(item, "last_status")
        out["last_reading"] = _json_attr(item, "last_reading")
        out["desired"] = _json_attr(item, "desired")
        out["ota_target"] = _json_attr(item, "ota_target")
        out["desired_version"] = _num(item["desired_version"]) if "desired_version" in item else 0
        out["name"] = item["name"]["S"] if "name" in item else None
        out["room"] = item["room"]["S"] if "room" in item else None
        out["stale_after"] = _num(item["stale_after"]) if "stale_after" in item else None
        out["errors_at"] = _num(item["errors_at"]) if "errors_at" in item else None
        out["recent"] = _json_attr(item, "recent")
        return out

    @_throttling_is_store_busy
    def get_device(self, device_id: str) -> dict[str, Any] | None:
        item = self.db.get_item(TableName=self.devices, Key={"device_id": {"S": device_id}}, ConsistentRead=True).get(
            "Item"
        )
        return self._device(item) if item else None

    # -- readings -----------------------------------------------------------
    def _put(self, device_id: str, r: Reading, received_at: int, expires_at: int) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.readings,
                "Item": {
                    "device_id": {"S": device_id},
                    "seq": _n(r.seq),
                    "ts": _n(r.ts),
                    "tsq": {"S": tsq(r.ts, r.seq)},
                    "t": _n(r.t),
                    "h": _n(r.h),
                    "received_at": _n(received_at),
                    "expires_at": _n(expires_at),
                },
                "ConditionExpression": "attribute_not_exists(seq)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    @_throttling_is_store_busy
    def put_readings(self, device_id: str, readings: list[Reading], received_at: int, expires_at: int) -> list[Reading]:
        return self._write_readings(device_id, readings, received_at, expires_at, None)

    @_throttling_is_store_busy
    def store_batch(
        self, device: dict[str, Any], readings: list[Reading], status: dict[str, Any] | None, now: int, expires_at: int
    ) -> list[Reading]:
        def row(new: list[Reading]) -> dict[str, Any]:
            return self._row_update(device, Delivery(now, status, new))

        if len(readings) < TRANSACTION_LIMIT:  # the row's update rides in the readings' transaction
            return self._write_readings(device["device_id"], readings, now, expires_at, row)
        from botocore.exceptions import BotoCoreError, ClientError

        stored = self._write_readings(device["device_id"], readings, now, expires_at, None)
        try:
            self._count_full_batch(device, readings, stored, Delivery(now, status, []))
        except (BotoCoreError, ClientError) as failure:  # the readings are stored: the answer says so, not a 503
            log(
                "WARNING",
                "device row not updated after a full batch",
                device_id=device["device_id"],
                error=repr(failure),
            )
        return stored

    def _count_full_batch(
        self, device: dict[str, Any], readings: list[Reading], stored: list[Reading], delivery: Delivery
    ) -> None:
        """The row's update after a full batch, which leaves no room for it in the readings'
        transaction. The re-send repairs a row update that never came: counting moves max_seq
        past the batch, so readings above the row's max_seq were stored and never counted.
        Two requests with one batch can race (a board re-sending while its first request is
        still storing), each counting what the other stored: so the update holds only while
        max_seq is what this request read, and otherwise the row it found is read again and
        only readings past its max_seq count (besides those this request stored at or below
        the max_seq it first read, which no racer reading that row counts)."""
        from botocore.exceptions import ClientError

        counted_to = first_max = device.get("max_seq")
        counting = [r for r in readings if r in stored or first_max is None or r.seq > first_max]
        for _ in range(COUNT_ATTEMPTS):
            update = self._row_update(device, delivery._replace(stored=counting))
            if counted_to is None:
                update["ConditionExpression"] = "attribute_not_exists(max_seq)"
            else:
                update["ConditionExpression"] = "max_seq = :counted_to"
                update["ExpressionAttributeValues"][":counted_to"] = _n(counted_to)
            try:
                self.db.update_item(**update, ReturnValuesOnConditionCheckFailure="ALL_OLD")
                return
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException" or "Item" not in error.response:
                    raise
                device = self._device(error.response["Item"])
            counted_to = device.get("max_seq")
            counting = [
                r
                for r in readings
                if (counted_to is not None and r.seq > counted_to)
                or (r in stored and first_max is not None and r.seq <= first_max)
            ]
        log("WARNING", "device row moved under every count of a full batch", device_id=device["device_id"])

    def _write_readings(
        self,
        device_id: str,
        readings: list[Reading],
        received_at: int,
        expires_at: int,
        row: Callable[[list[Reading]], dict[str, Any]] | None,
    ) -> list[Reading]:
        """The readings not yet stored, in one transaction with the device row's update for
        exactly those (row) when given; returns them."""
        from botocore.exceptions import ClientError

        if len(readings) > MAX_READINGS:
            raise ValueError(f"at most {MAX_READINGS} readings per call (one request), got {len(readings)}")
        pending = list(readings)
        deadline = time.monotonic() + WRITE_BUDGET_S
        for attempt in range(WRITE_ATTEMPTS):
            if not pending:
                break
            puts = [self._put(device_id, r, received_at, expires_at) for r in pending]
            try:
                self.db.transact_write_items(TransactItems=puts + ([{"Update": row(pending)}] if row else []))
                return pending
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                codes = {why.get("Code") for why in reasons}
                if (
                    error.response["Error"]["Code"] != "TransactionCanceledException"
                    or len(reasons) != len(puts) + (1 if row else 0)
                    or not codes <= {"None", "ConditionalCheckFailed", *TRANSIENT_REASONS}
                ):
                    raise
            held = {
                r.seq: _stored_reading(why)
                for r, why in zip(pending, reasons[: len(puts)], strict=True)
                if why["Code"] == "ConditionalCheckFailed"
            }
            conflicts = [r.seq for r in pending if r.seq in held and not same_content(held[r.seq], r)]
            if conflicts:
                raise SeqConflict(conflicts, self._next_seq(device_id))
            pending = [r for r in pending if r.seq not in held]  # the rest are duplicates
            if codes & TRANSIENT_REASONS:
                pause = random.uniform(0, RETRY_BASE_S * 2**attempt)  # full jitter: racing writers spread out
                if attempt + 1 == WRITE_ATTEMPTS or time.monotonic() + pause > deadline:
                    break
                time.sleep(pause)
        if not pending:
            if row:  # all duplicates: nothing to count, last_seen and status still move
                self.db.update_item(**row([]))
            return []
        raise StoreBusy(
            "the readings transaction was cancelled by throttling or other writes until its retries ran out"
        )

    def _next_seq(self, device_id: str) -> int:
        """One past the highest seq stored below RENUMBER_CEILING (base.py), for a 409."""
        # Read only on a conflict, from the readings: the device row's max_seq leaves out seqs
        # beyond the health span, and a stale next_seq would cost the board a round.
        items = self.db.query(
            TableName=self.readings,
            KeyConditionExpression="device_id = :d AND seq < :ceiling",
            ExpressionAttributeValues={":d": {"S": device_id}, ":ceiling": _n(RENUMBER_CEILING)},
            ProjectionExpression="seq",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )["Items"]
        return int(items[0]["seq"]["N"]) + 1 if items else 0

    @_throttling_is_store_busy
    def record_delivery(self, device: dict[str, Any], delivery: Delivery) -> None:
        self.db.update_item(**self._row_update(device, delivery))

    def _row_update(self, device: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
        """The device row's update for one delivery: UpdateItem's arguments, or a transaction's Update."""
        # Seq bounds and the last reading are computed from the row read for this request:
        # a device posts one batch at a time, so a lost race only delays the health figures.
        in_span = health_span(device, [r.seq for r in delivery.stored])
        values: dict[str, Any] = {
            ":now": _n(delivery.now),
            ":n": _n(len(in_span)),
            ":seen": {"S": seen_key(delivery.now, device["device_id"])},
        }
        sets = ["last_seen = :now", "seen_key = :seen"]
        counters = delivery_counters(device, delivery)
        if counters is not None:
            sets.append("recent = :recent")
            values[":recent"] = {"S": json.dumps(counters.recent)}
            if counters.errors_at is not None:
                sets.append("errors_at = :errors_at")
                values[":errors_at"] = _n(counters.errors_at)
        if delivery.status is not None:
            sets.append("last_status = :status")
            values[":status"] = {"S": json.dumps(delivery.status)}
        if in_span:
            low, high = min(in_span), max(in_span)
            if device.get("first_seq") is None or low < device["first_seq"]:
                sets.append("first_seq = :first")
                values[":first"] = _n(low)
            if device.get("max_seq") is None or high > device["max_seq"]:
                sets.append("max_seq = :max")
                values[":max"] = _n(high)
        if delivery.stored:
            newest = max(delivery.stored, key=lambda r: (r.ts, r.seq))
            last = device.get("last_reading")
            if last is None or (newest.ts, newest.seq) >= (last["ts"], last["seq"]):
                sets.append("last_reading = :last")
                values[":last"] = {"S": json.dumps(reading_item(newest))}
        return {
            "TableName": self.devices,
            "Key": {"device_id": {"S": device["device_id"]}},
            "UpdateExpression": "SET " + ", ".join(sets) + " ADD received :n",
            "ExpressionAttributeValues": values,
        }

    def update_rollups(self, device_id: str, readings: list[Reading], expires_at: int) -> None:
        """Ingest's hook: in AWS the summaries are the stream function's work (cloud/summaries.py),
        off the request path, so a batch stays within its 4 DynamoDB calls."""
